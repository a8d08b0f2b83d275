/*
 * textio.c — TSV/CSV/JSONL row reader for `distill prepare` (see textio.h for the promise).
 *
 * The file is read into memory once. TSV fields point into that buffer; CSV fields are unquoted
 * into a scratch buffer (stored as offsets, so the scratch may grow); JSONL lines are parsed with
 * cJSON and the wanted values copied to the scratch buffer.
 */
#include "textio.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

typedef struct {
    size_t off, n;
} Field;

struct TextReader {
    char *path;
    TextFormat fmt;
    char *buf;
    size_t len, pos; /* pos: the next unread byte */
    long line;       /* line number of pos */
    bool header;
    int text_idx, pair_idx, label_idx; /* TSV/CSV columns, -1: none */
    char *text_key, *pair_key, *label_key; /* JSONL keys, NULL: none */
    Field *fields;
    int nfields, fields_cap;
    const char *fields_base; /* buf (TSV) or scratch (CSV) */
    char *scratch;
    size_t scratch_len, scratch_cap;
    char desc[512];
};

const char *text_format_name(TextFormat f) {
    switch (f) {
    case TEXT_TSV: return "tsv";
    case TEXT_CSV: return "csv";
    case TEXT_JSONL: return "jsonl";
    default: return "auto";
    }
}

TextFormat text_format_parse(const char *name) {
    if (!strcmp(name, "tsv")) return TEXT_TSV;
    if (!strcmp(name, "csv")) return TEXT_CSV;
    if (!strcmp(name, "jsonl")) return TEXT_JSONL;
    return TEXT_AUTO;
}

static TextFormat format_from_path(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot) return TEXT_AUTO;
    if (!strcasecmp(dot, ".tsv") || !strcasecmp(dot, ".tab")) return TEXT_TSV;
    if (!strcasecmp(dot, ".csv")) return TEXT_CSV;
    if (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".json") || !strcasecmp(dot, ".ndjson")) return TEXT_JSONL;
    return TEXT_AUTO;
}

TextFormat text_format(const TextReader *r) { return r->fmt; }
bool text_has_pair(const TextReader *r) { return r->fmt == TEXT_JSONL ? r->pair_key != NULL : r->pair_idx >= 0; }
bool text_has_label(const TextReader *r) { return r->fmt == TEXT_JSONL ? r->label_key != NULL : r->label_idx >= 0; }
const char *text_columns(const TextReader *r) { return r->desc; }

/* ------------------------------------------------------------------ scratch and fields */

static size_t scratch_put(TextReader *r, const char *s, size_t n) {
    if (r->scratch_len + n + 1 > r->scratch_cap) {
        r->scratch_cap = 2 * (r->scratch_len + n + 1) + 256;
        r->scratch = xrealloc(r->scratch, r->scratch_cap);
    }
    size_t off = r->scratch_len;
    memcpy(r->scratch + off, s, n);
    r->scratch_len += n;
    r->scratch[r->scratch_len] = '\0';
    return off;
}

static void field_add(TextReader *r, size_t off, size_t n) {
    if (r->nfields == r->fields_cap) {
        r->fields_cap = r->fields_cap ? 2 * r->fields_cap : 16;
        r->fields = xrealloc(r->fields, (size_t)r->fields_cap * sizeof(Field));
    }
    r->fields[r->nfields].off = off;
    r->fields[r->nfields].n = n;
    r->nfields++;
}

/* ------------------------------------------------------------------ records (TSV, CSV) */

/* Next line [*s, *s+*n) without '\n' or a final '\r'; advances pos and line. false at EOF. */
static bool next_line(TextReader *r, const char **s, size_t *n) {
    if (r->pos >= r->len) return false;
    const char *p = r->buf + r->pos;
    const char *nl = memchr(p, '\n', r->len - r->pos);
    size_t k = nl ? (size_t)(nl - p) : r->len - r->pos;
    r->pos += k + (nl ? 1 : 0);
    r->line++;
    if (k > 0 && p[k - 1] == '\r') k--;
    *s = p;
    *n = k;
    return true;
}

static int read_tsv(TextReader *r, long *start) {
    const char *s;
    size_t n;
    do {
        if (!next_line(r, &s, &n)) return 0;
    } while (n == 0);
    *start = r->line;
    r->nfields = 0;
    r->fields_base = r->buf;
    size_t a = 0;
    for (size_t i = 0; i <= n; i++)
        if (i == n || s[i] == '\t') {
            field_add(r, (size_t)(s - r->buf) + a, i - a);
            a = i + 1;
        }
    return 1;
}

/* Skips to the end of the current line (after a bad CSV record). */
static void skip_line(TextReader *r) {
    const char *s;
    size_t n;
    next_line(r, &s, &n);
}

static int read_csv(TextReader *r, long *start) {
    /* skip blank lines */
    for (;;) {
        if (r->pos >= r->len) return 0;
        const char *p = r->buf + r->pos;
        if (*p == '\n') { r->pos++, r->line++; continue; }
        if (*p == '\r' && r->pos + 1 < r->len && p[1] == '\n') { r->pos += 2, r->line++; continue; }
        break;
    }
    long first = r->line + 1;
    *start = first;
    r->nfields = 0;
    r->scratch_len = 0;
    scratch_put(r, "", 0); /* the scratch exists even when every field is empty ("" or ,,) */
    r->scratch_len = 0;
    r->fields_base = NULL; /* the scratch, resolved by the caller after reading */
    const char *b = r->buf;
    size_t i = r->pos, end = r->len;
    for (;;) { /* one field per iteration */
        size_t off = r->scratch_len;
        if (i < end && b[i] == '"') {
            i++;
            for (;;) {
                if (i >= end) {
                    distill_set_error("%s:%ld: a quoted field is not closed before the end of the file", r->path, first);
                    return -2;
                }
                if (b[i] == '"') {
                    if (i + 1 < end && b[i + 1] == '"') {
                        scratch_put(r, "\"", 1);
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                size_t j = i;
                while (j < end && b[j] != '"') j++;
                for (size_t k = i; k < j; k++) r->line += b[k] == '\n';
                scratch_put(r, b + i, j - i);
                i = j;
            }
            if (i < end && b[i] == '\r' && i + 1 < end && b[i + 1] == '\n') i++;
            if (i < end && b[i] != ',' && b[i] != '\n') {
                long bad_line = r->line + 1;
                r->pos = i;
                skip_line(r);
                distill_set_error("%s:%ld: expected ',' or the end of the line after a closing quote, found '%c'",
                                  r->path, bad_line, b[i]);
                return -1;
            }
        } else {
            size_t j = i;
            while (j < end && b[j] != ',' && b[j] != '\n') j++;
            size_t k = j;
            if (k > i && b[k - 1] == '\r' && (k == end || b[k] == '\n')) k--;
            scratch_put(r, b + i, k - i);
            i = j;
        }
        field_add(r, off, r->scratch_len - off);
        if (i >= end || b[i] == '\n') {
            if (i < end) i++;
            r->line++;
            r->pos = i;
            return 1;
        }
        i++; /* the comma */
    }
}

static int read_record(TextReader *r, long *start) {
    int k = r->fmt == TEXT_TSV ? read_tsv(r, start) : read_csv(r, start);
    if (k == 1 && r->fmt == TEXT_CSV) r->fields_base = r->scratch;
    return k;
}

static bool field_is(const TextReader *r, int i, const char *name) {
    const Field *f = &r->fields[i];
    return f->n == strlen(name) && !memcmp(r->fields_base + f->off, name, f->n);
}

static int field_find(const TextReader *r, const char *name) {
    for (int i = 0; i < r->nfields; i++)
        if (field_is(r, i, name)) return i;
    return -1;
}

static bool is_index(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

static bool looks_numeric(const char *s, size_t n) {
    char tmp[64];
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0 || n >= sizeof tmp) return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *endp;
    errno = 0;
    strtod(tmp, &endp);
    return *endp == '\0' && errno == 0;
}

/* ------------------------------------------------------------------ opening */

static Status read_file(TextReader *r) {
    FILE *f = fopen(r->path, "rb");
    if (!f) {
        distill_set_error("%s: cannot open the input file: %s", r->path, strerror(errno));
        return DISTILL_ERR;
    }
    size_t cap = 1 << 20;
    r->buf = xmalloc(cap + 1);
    r->len = 0;
    for (;;) {
        size_t got = fread(r->buf + r->len, 1, cap - r->len, f);
        r->len += got;
        if (r->len < cap) break;
        cap *= 2;
        r->buf = xrealloc(r->buf, cap + 1);
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        distill_set_error("%s: read error", r->path);
        return DISTILL_ERR;
    }
    r->buf[r->len] = '\0';
    if (r->len >= 3 && !memcmp(r->buf, "\xEF\xBB\xBF", 3)) r->pos = 3; /* byte-order mark */
    return DISTILL_OK;
}

/* Resolves a TSV/CSV column given by name (needs the header) or index. -1 and an error if absent. */
static int resolve_column(TextReader *r, const char *what, const char *spec, int ncols) {
    if (is_index(spec)) {
        long k = strtol(spec, NULL, 10);
        if (k >= ncols) {
            distill_set_error("%s:1: %s column %ld does not exist (the first row has %d column%s)", r->path, what, k,
                              ncols, ncols == 1 ? "" : "s");
            return -1;
        }
        return (int)k;
    }
    int k = field_find(r, spec);
    if (k < 0) {
        char cols[256] = "";
        for (int i = 0; i < r->nfields && strlen(cols) < 200; i++) {
            const Field *f = &r->fields[i];
            /* an empty field may have no buffer behind it (fields_base NULL): no pointer arithmetic then */
            snprintf(cols + strlen(cols), sizeof cols - strlen(cols), "%s%.*s", i ? ", " : "", (int)f->n,
                     f->n ? r->fields_base + f->off : "");
        }
        distill_set_error("%s:1: no %s column named '%s' in the header (its columns: %s)", r->path, what, spec, cols);
    }
    return k;
}

static Status open_delimited(TextReader *r, const TextSpec *spec) {
    size_t pos0 = r->pos;
    long line0 = r->line, start;
    int k = read_record(r, &start);
    if (k == 0) {
        distill_set_error("%s: the file has no rows", r->path);
        return DISTILL_ERR;
    }
    if (k < 0) return DISTILL_ERR;
    int ncols = r->nfields;
    bool named = (spec->text_col && !is_index(spec->text_col)) || (spec->pair_col && !is_index(spec->pair_col)) ||
                 (!spec->no_label && spec->label_col && !is_index(spec->label_col));
    static const char *const usual[] = {"sentence", "text", "sentence1", "sentence2", "label"};
    bool header = named;
    for (int i = 0; i < 5 && !header; i++) header = field_find(r, usual[i]) >= 0;
    if (!header && !spec->no_label && ncols >= 2) {
        /* the label field of row 1 is not a number while row 2's is */
        int li = spec->label_col ? (int)strtol(spec->label_col, NULL, 10) : ncols - 1;
        if (li < ncols && !looks_numeric(r->fields_base + r->fields[li].off, r->fields[li].n)) {
            long s2;
            if (read_record(r, &s2) == 1 && li < r->nfields &&
                looks_numeric(r->fields_base + r->fields[li].off, r->fields[li].n))
                header = true;
            r->pos = pos0, r->line = line0; /* read row 1 again: its fields are needed below */
            if (read_record(r, &start) != 1) return DISTILL_ERR;
        }
    }
    r->header = header;
    const char *text_name = NULL;
    if (spec->text_col) {
        r->text_idx = resolve_column(r, "text", spec->text_col, ncols);
    } else if (header) {
        static const char *const names[] = {"sentence", "text", "sentence1"};
        r->text_idx = -1;
        for (int i = 0; i < 3 && r->text_idx < 0; i++)
            if ((r->text_idx = field_find(r, names[i])) >= 0) text_name = names[i];
        if (r->text_idx < 0)
            distill_set_error("%s:1: no 'sentence', 'text' or 'sentence1' column in the header: pass --text NAME|INDEX",
                              r->path);
    } else {
        r->text_idx = 0;
    }
    if (r->text_idx < 0) return DISTILL_ERR;
    r->pair_idx = -1;
    if (spec->pair_col) {
        if ((r->pair_idx = resolve_column(r, "text-pair", spec->pair_col, ncols)) < 0) return DISTILL_ERR;
    } else if (header && text_name && !strcmp(text_name, "sentence1")) {
        r->pair_idx = field_find(r, "sentence2");
    }
    r->label_idx = -1;
    if (!spec->no_label) {
        if (spec->label_col) {
            r->label_idx = resolve_column(r, "label", spec->label_col, ncols);
        } else if (header) {
            r->label_idx = field_find(r, "label");
            if (r->label_idx < 0)
                distill_set_error("%s:1: no 'label' column in the header: pass --label NAME|INDEX, or --no-label",
                                  r->path);
        } else if (ncols >= 2) {
            r->label_idx = ncols - 1;
        } else {
            distill_set_error("%s:1: one column and no header: pass --no-label for unlabelled text", r->path);
        }
        if (r->label_idx < 0) return DISTILL_ERR;
    }
    if (r->text_idx == r->label_idx || (r->pair_idx >= 0 && (r->pair_idx == r->text_idx || r->pair_idx == r->label_idx))) {
        distill_set_error("%s: the text, text-pair and label columns must differ", r->path);
        return DISTILL_ERR;
    }
    /* description */
    int at = 0;
    const int idx[3] = {r->text_idx, r->pair_idx, r->label_idx};
    static const char *const what[3] = {"text", "text-pair", "label"};
    for (int i = 0; i < 3; i++) {
        if (idx[i] < 0) continue;
        const Field *f = &r->fields[idx[i]];
        if (header)
            at += snprintf(r->desc + at, sizeof r->desc - (size_t)at, "%s%s=%.*s (column %d)", at ? ", " : "",
                           what[i], (int)(f->n > 40 ? 40 : f->n), r->fields_base + f->off, idx[i]);
        else
            at += snprintf(r->desc + at, sizeof r->desc - (size_t)at, "%s%s=column %d", at ? ", " : "", what[i], idx[i]);
        if (at >= (int)sizeof r->desc) break;
    }
    if (at < (int)sizeof r->desc)
        snprintf(r->desc + at, sizeof r->desc - (size_t)at, header ? "; header row" : "; no header row");
    if (!header) r->pos = pos0, r->line = line0;
    return DISTILL_OK;
}

static char *json_default_key(cJSON *obj, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (cJSON_GetObjectItemCaseSensitive(obj, names[i])) return xstrdup(names[i]);
    return NULL;
}

static Status open_jsonl(TextReader *r, const TextSpec *spec) {
    const char *cols[3] = {spec->text_col, spec->pair_col, spec->no_label ? NULL : spec->label_col};
    for (int i = 0; i < 3; i++)
        if (cols[i] && is_index(cols[i])) {
            distill_set_error("%s: JSONL columns are keys, not indices ('%s')", r->path, cols[i]);
            return DISTILL_ERR;
        }
    /* defaults from the first object */
    size_t pos0 = r->pos;
    long line0 = r->line;
    const char *s;
    size_t n;
    do {
        if (!next_line(r, &s, &n)) {
            distill_set_error("%s: the file has no rows", r->path);
            return DISTILL_ERR;
        }
    } while (n == 0);
    cJSON *obj = cJSON_ParseWithLength(s, n);
    long first = r->line;
    r->pos = pos0, r->line = line0;
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        distill_set_error("%s:%ld: expected a JSON object", r->path, first);
        return DISTILL_ERR;
    }
    static const char *const text_names[] = {"sentence", "text", "sentence1"};
    r->text_key = spec->text_col ? xstrdup(spec->text_col) : json_default_key(obj, text_names, 3);
    if (spec->pair_col) r->pair_key = xstrdup(spec->pair_col);
    else if (r->text_key && !strcmp(r->text_key, "sentence1") && cJSON_GetObjectItemCaseSensitive(obj, "sentence2"))
        r->pair_key = xstrdup("sentence2");
    if (!spec->no_label) {
        if (spec->label_col) r->label_key = xstrdup(spec->label_col);
        else if (cJSON_GetObjectItemCaseSensitive(obj, "label")) r->label_key = xstrdup("label");
    }
    cJSON_Delete(obj);
    if (!r->text_key) {
        distill_set_error("%s:%ld: no \"sentence\", \"text\" or \"sentence1\" key: pass --text KEY", r->path, first);
        return DISTILL_ERR;
    }
    if (!spec->no_label && !r->label_key) {
        distill_set_error("%s:%ld: no \"label\" key: pass --label KEY, or --no-label", r->path, first);
        return DISTILL_ERR;
    }
    int at = snprintf(r->desc, sizeof r->desc, "text=\"%s\"", r->text_key);
    if (r->pair_key && at < (int)sizeof r->desc)
        at += snprintf(r->desc + at, sizeof r->desc - (size_t)at, ", text-pair=\"%s\"", r->pair_key);
    if (r->label_key && at < (int)sizeof r->desc)
        snprintf(r->desc + at, sizeof r->desc - (size_t)at, ", label=\"%s\"", r->label_key);
    return DISTILL_OK;
}

Status text_open(TextReader **out, const TextSpec *spec) {
    *out = NULL;
    TextReader *r = xcalloc(1, sizeof *r);
    r->path = xstrdup(spec->path);
    r->fmt = spec->format != TEXT_AUTO ? spec->format : format_from_path(spec->path);
    r->text_idx = r->pair_idx = r->label_idx = -1;
    if (r->fmt == TEXT_AUTO) {
        distill_set_error("%s: cannot tell the format from the file name: pass --format tsv|csv|jsonl", spec->path);
        text_close(r);
        return DISTILL_ERR;
    }
    Status s = read_file(r);
    if (s == DISTILL_OK) s = r->fmt == TEXT_JSONL ? open_jsonl(r, spec) : open_delimited(r, spec);
    if (s != DISTILL_OK) {
        text_close(r);
        return DISTILL_ERR;
    }
    *out = r;
    return DISTILL_OK;
}

void text_close(TextReader *r) {
    if (!r) return;
    free(r->path);
    free(r->buf);
    free(r->fields);
    free(r->scratch);
    free(r->text_key);
    free(r->pair_key);
    free(r->label_key);
    free(r);
}

/* ------------------------------------------------------------------ rows */

static int next_delimited(TextReader *r, TextRow *row) {
    long start;
    int k = read_record(r, &start);
    row->line = start;
    if (k <= 0) {
        if (k == -1) row->line = r->line;
        return k;
    }
    int need = r->text_idx;
    if (r->pair_idx > need) need = r->pair_idx;
    if (r->label_idx > need) need = r->label_idx;
    if (need >= r->nfields) {
        const char *what = need == r->label_idx ? "label" : need == r->pair_idx ? "text-pair" : "text";
        distill_set_error("%s:%ld: expected %d columns (the %s is column %d), found %d", r->path, start, need + 1, what,
                          need, r->nfields);
        return -1;
    }
    const char *base = r->fields_base;
    row->text = base + r->fields[r->text_idx].off;
    row->text_len = r->fields[r->text_idx].n;
    row->pair = r->pair_idx >= 0 ? base + r->fields[r->pair_idx].off : NULL;
    row->pair_len = r->pair_idx >= 0 ? r->fields[r->pair_idx].n : 0;
    row->label = r->label_idx >= 0 ? base + r->fields[r->label_idx].off : NULL;
    row->label_len = r->label_idx >= 0 ? r->fields[r->label_idx].n : 0;
    return 1;
}

/* Copies a JSON string (or, for a label, a number or boolean) into the scratch buffer. */
static int json_value(TextReader *r, cJSON *obj, const char *key, bool label, size_t *off, size_t *n, long line) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        distill_set_error("%s:%ld: no \"%s\" key", r->path, line, key);
        return -1;
    }
    char num[64];
    const char *s = NULL;
    if (cJSON_IsString(v)) {
        s = v->valuestring;
    } else if (label && cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 1e15) snprintf(num, sizeof num, "%.0f", d);
        else snprintf(num, sizeof num, "%.17g", d);
        s = num;
    } else if (label && cJSON_IsBool(v)) {
        s = cJSON_IsTrue(v) ? "true" : "false";
    } else {
        distill_set_error("%s:%ld: \"%s\" is not a %s", r->path, line, key, label ? "string or number" : "string");
        return -1;
    }
    *n = strlen(s);
    *off = scratch_put(r, s, *n);
    return 1;
}

static int next_jsonl(TextReader *r, TextRow *row) {
    const char *s;
    size_t n;
    do {
        if (!next_line(r, &s, &n)) return 0;
    } while (n == 0);
    row->line = r->line;
    cJSON *obj = cJSON_ParseWithLength(s, n);
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        distill_set_error("%s:%ld: expected a JSON object", r->path, row->line);
        return -1;
    }
    r->scratch_len = 0;
    size_t to = 0, tn = 0, po = 0, pn = 0, lo = 0, ln = 0;
    int k = json_value(r, obj, r->text_key, false, &to, &tn, row->line);
    if (k == 1 && r->pair_key) k = json_value(r, obj, r->pair_key, false, &po, &pn, row->line);
    if (k == 1 && r->label_key) k = json_value(r, obj, r->label_key, true, &lo, &ln, row->line);
    cJSON_Delete(obj);
    if (k != 1) return k;
    row->text = r->scratch + to, row->text_len = tn;
    row->pair = r->pair_key ? r->scratch + po : NULL, row->pair_len = pn;
    row->label = r->label_key ? r->scratch + lo : NULL, row->label_len = ln;
    return 1;
}

int text_next(TextReader *r, TextRow *row) {
    memset(row, 0, sizeof *row);
    return r->fmt == TEXT_JSONL ? next_jsonl(r, row) : next_delimited(r, row);
}
