/*
 * config_tree.c — the located YAML tree behind config.c (see config_tree.h): libyaml's document
 * API copied into YNodes that keep line:column or the override they came from, --set overrides
 * applied to the tree, core-schema scalar typing, and the message helpers.
 */
#define _POSIX_C_SOURCE 200809L
#include "config_tree.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* ------------------------------------------------------------------ nodes */

static YNode *ynew(YKind kind, int origin, int line, int col) {
    YNode *n = xcalloc(1, sizeof *n);
    n->kind = kind;
    n->origin = origin;
    n->line = line;
    n->col = col;
    return n;
}

static YNode *ynew_scalar(const char *text, bool plain, int origin) {
    YNode *n = ynew(YN_SCALAR, origin, 0, 0);
    n->text = xstrdup(text);
    n->plain = plain;
    return n;
}

static void ypush(YNode *n, YNode *key, YNode *val) {
    if (n->n == n->cap) {
        n->cap = n->cap ? 2 * n->cap : 4;
        n->vals = xrealloc(n->vals, (size_t)n->cap * sizeof *n->vals);
        if (n->kind == YN_MAP) n->keys = xrealloc(n->keys, (size_t)n->cap * sizeof *n->keys);
    }
    if (n->kind == YN_MAP) n->keys[n->n] = key;
    n->vals[n->n++] = val;
}

void ytree_free(YNode *n) {
    if (!n) return;
    for (int i = 0; i < n->n; i++) {
        if (n->kind == YN_MAP) ytree_free(n->keys[i]);
        ytree_free(n->vals[i]);
    }
    free(n->keys);
    free(n->vals);
    free(n->text);
    free(n);
}

YNode *ymap_get(const YNode *map, const char *key, const YNode **key_node) {
    if (key_node) *key_node = NULL;
    if (!map || map->kind != YN_MAP) return NULL;
    for (int i = 0; i < map->n; i++)
        if (!strcmp(map->keys[i]->text, key)) {
            if (key_node) *key_node = map->keys[i];
            return map->vals[i];
        }
    return NULL;
}

/* ------------------------------------------------------------------ messages */

void ywhere(const YSrc *src, const YNode *at, char *buf, size_t cap) {
    if (at && at->origin >= 0 && at->origin < src->n_over) {
        const char *o = src->over[at->origin];
        if (strlen(o) > 100) snprintf(buf, cap, "--set %.97s...", o);
        else snprintf(buf, cap, "--set %s", o);
    } else if (at && at->line > 0) {
        snprintf(buf, cap, "%s:%d:%d", src->file, at->line, at->col);
    } else {
        snprintf(buf, cap, "%s", src->file);
    }
}

static bool text_is_null(const char *t) {
    return !t[0] || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") || !strcmp(t, "NULL");
}

static bool text_bool(const char *t, bool *out) {
    if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE")) { *out = true; return true; }
    if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE")) { *out = false; return true; }
    return false;
}

/* [-+]?[0-9]+ */
static bool text_is_int(const char *t) {
    if (*t == '+' || *t == '-') t++;
    if (!isdigit((unsigned char)*t)) return false;
    while (isdigit((unsigned char)*t)) t++;
    return *t == '\0';
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? — YAML 1.2 core schema floats (and ints). */
static bool text_is_decimal(const char *t) {
    if (*t == '+' || *t == '-') t++;
    int digits = 0;
    while (isdigit((unsigned char)*t)) { t++; digits++; }
    if (*t == '.') {
        t++;
        while (isdigit((unsigned char)*t)) { t++; digits++; }
    }
    if (!digits) return false;
    if (*t == 'e' || *t == 'E') {
        t++;
        if (*t == '+' || *t == '-') t++;
        if (!isdigit((unsigned char)*t)) return false;
        while (isdigit((unsigned char)*t)) t++;
    }
    return *t == '\0';
}

static bool text_is_special_float(const char *t) {
    if (*t == '+' || *t == '-') t++;
    return !strcmp(t, ".inf") || !strcmp(t, ".Inf") || !strcmp(t, ".INF") || !strcmp(t, ".nan") ||
           !strcmp(t, ".NaN") || !strcmp(t, ".NAN");
}

/* 0x.., 0o.. (core schema ints we do not accept, but must quote when writing). */
static bool text_is_radix_int(const char *t) {
    if (t[0] != '0' || (t[1] != 'x' && t[1] != 'o') || !t[2]) return false;
    for (const char *p = t + 2; *p; p++)
        if (!(t[1] == 'x' ? isxdigit((unsigned char)*p) : (*p >= '0' && *p <= '7'))) return false;
    return true;
}

bool ytext_is_typed(const char *text) {
    bool b;
    return text_is_null(text) || text_bool(text, &b) || text_is_decimal(text) ||
           text_is_special_float(text) || text_is_radix_int(text);
}

void ydescribe(const YNode *n, char *buf, size_t cap) {
    if (yis_null(n)) { snprintf(buf, cap, "nothing"); return; }
    if (n->kind == YN_SEQ) { snprintf(buf, cap, n->n ? "a list" : "an empty list"); return; }
    if (n->kind == YN_MAP) { snprintf(buf, cap, n->n ? "a mapping" : "an empty mapping"); return; }
    char shown[72];
    if (strlen(n->text) > 60) snprintf(shown, sizeof shown, "%.57s...", n->text);
    else snprintf(shown, sizeof shown, "%s", n->text);
    bool typed = ytext_is_typed(n->text);
    if (n->plain && typed) snprintf(buf, cap, "%s", shown);
    else if (typed) snprintf(buf, cap, "the string '%s'", shown);
    else snprintf(buf, cap, "'%s'", shown);
}

Status yfail(const YSrc *src, const YNode *at, const char *key, const char *fmt, ...) {
    char where[160], msg[768];
    ywhere(src, at, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (key && key[0]) distill_set_error("%s: %s: %s", where, key, msg);
    else distill_set_error("%s: %s", where, msg);
    return DISTILL_ERR;
}

/* ------------------------------------------------------------------ typing */

bool yis_null(const YNode *n) { return !n || (n->kind == YN_SCALAR && n->plain && text_is_null(n->text)); }

bool yscalar_bool(const YNode *n, bool *out) {
    return n && n->kind == YN_SCALAR && n->plain && text_bool(n->text, out);
}

bool yscalar_num(const YNode *n, double *out) {
    if (!n || n->kind != YN_SCALAR || !n->plain || !text_is_decimal(n->text)) return false;
    errno = 0;
    double v = strtod(n->text, NULL);
    if (!isfinite(v)) return false; /* overflow to inf */
    *out = v;
    return true;
}

bool yscalar_int(const YNode *n, int64_t *out) {
    if (!n || n->kind != YN_SCALAR || !n->plain) return false;
    if (text_is_int(n->text)) {
        errno = 0;
        long long v = strtoll(n->text, NULL, 10);
        if (errno == ERANGE) return false;
        *out = v;
        return true;
    }
    double d;
    /* 1e3 or 100.0 name an integer exactly; 2^53 bounds the integers a double holds exactly. */
    if (yscalar_num(n, &d) && d == floor(d) && fabs(d) <= 9007199254740992.0) {
        *out = (int64_t)d;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------ suggestions */

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 1 << 20;
    int prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof(int));
    }
    return prev[lb];
}

const char *yclosest(const char *word, const char *const *cands) {
    const char *best = NULL;
    int best_d = 1 << 20;
    size_t lw = strlen(word);
    for (const char *const *c = cands; *c; c++) {
        int d = edit_distance(word, *c);
        size_t lc = strlen(*c);
        /* a typo (a few edits, at most a third of the word) or a truncation ("warmup" for
         * "warmup_steps", "temp" for "temperature") */
        bool prefix = lw >= 3 && lc >= 3 && (!strncmp(word, *c, lc) || !strncmp(*c, word, lw));
        bool close = d <= 2 && (size_t)d * 3 <= (lw > lc ? lw : lc);
        if ((close || prefix) && d < best_d) { best = *c; best_d = d; }
    }
    return best;
}

/* ------------------------------------------------------------------ loading */

typedef struct Copier {
    const YSrc *src;
    yaml_document_t *doc;
    int origin;
    int count;
} Copier;

/* Copies `yn` (at key path `path`, for messages) into *out. */
static Status copy_node(Copier *cp, yaml_node_t *yn, const char *path, int depth, YNode **out) {
    *out = NULL;
    int line = cp->origin < 0 ? (int)yn->start_mark.line + 1 : 0;
    int col = cp->origin < 0 ? (int)yn->start_mark.column + 1 : 0;
    YNode where = {.line = line, .col = col, .origin = cp->origin};
    if (depth > YTREE_MAX_DEPTH) {
        char shown[64];
        snprintf(shown, sizeof shown, strlen(path) > 40 ? "%.40s..." : "%s", path);
        return yfail(cp->src, &where, shown, "expected at most %d levels of nesting, found deeper "
                     "(a recursive alias?)", YTREE_MAX_DEPTH);
    }
    if (++cp->count > YTREE_MAX_NODES)
        return yfail(cp->src, &where, path, "expected at most %d YAML nodes, found more (alias "
                     "expansion?)", YTREE_MAX_NODES);
    switch (yn->type) {
    case YAML_SCALAR_NODE: {
        YNode *n = ynew(YN_SCALAR, cp->origin, line, col);
        n->text = xmalloc(yn->data.scalar.length + 1);
        memcpy(n->text, yn->data.scalar.value, yn->data.scalar.length);
        n->text[yn->data.scalar.length] = '\0';
        if (strlen(n->text) != yn->data.scalar.length) {
            ytree_free(n);
            return yfail(cp->src, &where, path, "expected text, found a NUL character");
        }
        n->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        *out = n;
        return DISTILL_OK;
    }
    case YAML_SEQUENCE_NODE: {
        YNode *n = ynew(YN_SEQ, cp->origin, line, col);
        for (yaml_node_item_t *it = yn->data.sequence.items.start; it < yn->data.sequence.items.top; it++) {
            YNode *kid;
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%d]", path, n->n);
            if (copy_node(cp, yaml_document_get_node(cp->doc, *it), sub, depth + 1, &kid)) {
                ytree_free(n);
                return DISTILL_ERR;
            }
            ypush(n, NULL, kid);
        }
        *out = n;
        return DISTILL_OK;
    }
    case YAML_MAPPING_NODE: {
        YNode *n = ynew(YN_MAP, cp->origin, line, col);
        for (yaml_node_pair_t *p = yn->data.mapping.pairs.start; p < yn->data.mapping.pairs.top; p++) {
            YNode *k = NULL, *v = NULL;
            if (copy_node(cp, yaml_document_get_node(cp->doc, p->key), path, depth + 1, &k)) goto fail;
            if (k->kind != YN_SCALAR) {
                char found[96];
                ydescribe(k, found, sizeof found);
                yfail(cp->src, k, path, "expected a key name, found %s as a key", found);
                ytree_free(k);
                goto fail;
            }
            char sub[256];
            snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", k->text);
            const YNode *first;
            ymap_get(n, k->text, &first);
            if (first) {
                char at[160];
                ywhere(cp->src, first, at, sizeof at);
                yfail(cp->src, k, sub, "expected each key once, found it again (first at %s)", at);
                ytree_free(k);
                goto fail;
            }
            if (copy_node(cp, yaml_document_get_node(cp->doc, p->value), sub, depth + 1, &v)) {
                ytree_free(k);
                goto fail;
            }
            ypush(n, k, v);
        }
        *out = n;
        return DISTILL_OK;
    fail:
        ytree_free(n);
        return DISTILL_ERR;
    }
    default:
        return yfail(cp->src, &where, path, "expected a YAML node, found an empty one");
    }
}

static Status parser_error(const YSrc *src, yaml_parser_t *p, int origin) {
    YNode where = {.line = (int)p->problem_mark.line + 1, .col = (int)p->problem_mark.column + 1,
                   .origin = origin};
    if (origin >= 0) where.line = where.col = 0;
    if (p->error == YAML_READER_ERROR) { /* encoding errors carry a byte offset, not a mark */
        where.line = where.col = 0;
        return yfail(src, &where, NULL, "expected UTF-8 text, found %s at byte %zu",
                     p->problem ? p->problem : "an unreadable stream", p->problem_offset);
    }
    /* libyaml's problems read "found character that ...", "did not find expected key", ... */
    const char *problem = p->problem ? p->problem : "an unreadable stream";
    const char *lead = strncmp(problem, "found ", 6) ? "found a syntax error: " : "";
    if (p->context)
        return yfail(src, &where, NULL, "expected valid YAML, %s%s (%s)", lead, problem, p->context);
    return yfail(src, &where, NULL, "expected valid YAML, %s%s", lead, problem);
}

/* Parses one YAML document from `p` into *root (NULL when empty); rejects a second document. */
static Status load_stream(const YSrc *src, yaml_parser_t *p, int origin, YNode **root) {
    *root = NULL;
    yaml_document_t doc;
    if (!yaml_parser_load(p, &doc)) return parser_error(src, p, origin);
    Status st = DISTILL_OK;
    yaml_node_t *top = yaml_document_get_root_node(&doc);
    if (top) {
        Copier cp = {.src = src, .doc = &doc, .origin = origin};
        st = copy_node(&cp, top, "", 0, root);
    }
    yaml_document_delete(&doc);
    if (st) return st;
    yaml_document_t next;
    if (!yaml_parser_load(p, &next)) {
        ytree_free(*root);
        *root = NULL;
        return parser_error(src, p, origin);
    }
    yaml_node_t *second = yaml_document_get_root_node(&next);
    if (second) {
        YNode where = {.line = (int)second->start_mark.line + 1, .col = (int)second->start_mark.column + 1,
                       .origin = origin};
        yaml_document_delete(&next);
        ytree_free(*root);
        *root = NULL;
        return yfail(src, &where, NULL, "expected one YAML document, found a second one");
    }
    yaml_document_delete(&next);
    return DISTILL_OK;
}

Status ytree_load_file(const YSrc *src, YNode **root) {
    *root = NULL;
    if (!src->file || !strcmp(src->file, "(no file)")) return DISTILL_OK;
    struct stat sb;
    if (stat(src->file, &sb) != 0) {
        distill_set_error("%s: expected a readable YAML config file, found: %s", src->file, strerror(errno));
        return DISTILL_ERR;
    }
    if (S_ISDIR(sb.st_mode)) {
        distill_set_error("%s: expected a YAML config file, found a directory", src->file);
        return DISTILL_ERR;
    }
    FILE *f = fopen(src->file, "rb");
    if (!f) {
        distill_set_error("%s: expected a readable YAML config file, found: %s", src->file, strerror(errno));
        return DISTILL_ERR;
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        distill_set_error("%s: expected to start the YAML parser, found it out of memory", src->file);
        return DISTILL_ERR;
    }
    yaml_parser_set_input_file(&p, f);
    Status st = load_stream(src, &p, -1, root);
    yaml_parser_delete(&p);
    fclose(f);
    return st;
}

/* ------------------------------------------------------------------ overrides */

typedef struct KeyPart {
    char name[64];  /* the component as written */
    bool numeric;   /* all digits: an index into a list (or a key in a mapping) */
    bool bracket;   /* written [n]: an index only */
    int index;
} KeyPart;

#define MAX_KEY_PARTS 16

static bool is_key_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-'; }

/* Splits "a.b[2].c" / "a.b.2.c" into parts; false on malformed text. */
static bool split_key(const char *key, KeyPart *parts, int *n_parts) {
    int n = 0;
    const char *p = key;
    for (;;) {
        if (n == MAX_KEY_PARTS) return false;
        KeyPart *kp = &parts[n];
        memset(kp, 0, sizeof *kp);
        size_t len = 0;
        while (is_key_char(p[len])) len++;
        if (!len || len >= sizeof kp->name) return false;
        memcpy(kp->name, p, len);
        kp->numeric = true;
        for (size_t i = 0; i < len; i++)
            if (!isdigit((unsigned char)p[i])) kp->numeric = false;
        if (kp->numeric) {
            if (len > 6) return false;
            kp->index = atoi(kp->name);
        }
        n++;
        p += len;
        while (*p == '[') {
            if (n == MAX_KEY_PARTS) return false;
            kp = &parts[n];
            memset(kp, 0, sizeof *kp);
            p++;
            len = 0;
            while (isdigit((unsigned char)p[len])) len++;
            if (!len || len > 6 || p[len] != ']') return false;
            memcpy(kp->name, p, len);
            kp->numeric = kp->bracket = true;
            kp->index = atoi(kp->name);
            n++;
            p += len + 1;
        }
        if (*p == '\0') break;
        if (*p != '.') return false;
        p++;
    }
    *n_parts = n;
    return true;
}

static void path_append(char *path, size_t cap, const KeyPart *kp, bool as_index) {
    size_t l = strlen(path);
    if (as_index) snprintf(path + l, cap - l, "[%d]", kp->index);
    else snprintf(path + l, cap - l, "%s%.63s", l ? "." : "", kp->name);
}

Status ytree_apply_override(const YSrc *src, YNode **root, int i) {
    const char *text = src->over[i];
    YNode here = {.origin = i};
    const char *eq = strchr(text, '=');
    char key[256];
    KeyPart parts[MAX_KEY_PARTS];
    int n_parts = 0;
    if (!eq || eq == text || (size_t)(eq - text) >= sizeof key)
        return yfail(src, &here, NULL, "expected key.sub=value, found no key=value in '%s'", text);
    memcpy(key, text, (size_t)(eq - text));
    key[eq - text] = '\0';
    if (!split_key(key, parts, &n_parts))
        return yfail(src, &here, NULL, "expected a key like optimizer.lr or losses[1].weight, found '%s'", key);

    /* the value, typed as YAML */
    YNode *value = NULL;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return yfail(src, &here, key, "expected to parse the value, found no memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)(eq + 1), strlen(eq + 1));
    Status st = load_stream(src, &p, i, &value);
    yaml_parser_delete(&p);
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", distill_error());
        /* re-key the parser's message: "--set k=v: expected valid YAML, found ..." */
        const char *tail = strstr(msg, ": expected");
        return yfail(src, &here, key, "%s", tail ? tail + 2 : msg);
    }
    if (!value) value = ynew_scalar("", true, i);

    /* walk, creating what is missing */
    YNode **slot = root;
    char path[256] = "";
    for (int k = 0; k < n_parts; k++) {
        const KeyPart *kp = &parts[k];
        bool last = k == n_parts - 1;
        if (yis_null(*slot)) {
            ytree_free(*slot);
            *slot = ynew(kp->numeric ? YN_SEQ : YN_MAP, i, 0, 0);
        }
        YNode *cur = *slot;
        if (cur->kind == YN_SEQ) {
            if (!kp->numeric) {
                ytree_free(value);
                return yfail(src, &here, path, "expected an index into this list ([0]..[%d]), found '%s'",
                             cur->n - 1, kp->name);
            }
            path_append(path, sizeof path, kp, true);
            if (kp->index > cur->n) {
                ytree_free(value);
                return yfail(src, &here, path, "expected an index of the list's %d items (or %d to "
                             "append), found %d", cur->n, cur->n, kp->index);
            }
            if (kp->index == cur->n) ypush(cur, NULL, NULL);
            slot = &cur->vals[kp->index];
        } else if (cur->kind == YN_MAP) {
            if (kp->bracket) {
                ytree_free(value);
                char found[96];
                ydescribe(cur, found, sizeof found);
                return yfail(src, &here, path[0] ? path : kp->name, "expected a list to index, found %s", found);
            }
            path_append(path, sizeof path, kp, false);
            int j = 0;
            while (j < cur->n && strcmp(cur->keys[j]->text, kp->name)) j++;
            if (j == cur->n) ypush(cur, ynew_scalar(kp->name, true, i), NULL);
            slot = &cur->vals[j];
        } else {
            char found[96];
            ydescribe(cur, found, sizeof found);
            ytree_free(value);
            return yfail(src, &here, path, "expected a mapping or list to set '%s' in, found %s", kp->name, found);
        }
        if (last) {
            ytree_free(*slot);
            *slot = value;
        }
    }
    return DISTILL_OK;
}
