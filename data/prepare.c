/*
 * prepare.c — text -> tokenised HDF5 (see prepare.h for the promise).
 *
 * Two passes over the rows. Pass 1 reads every row (textio.h), checks it (columns, UTF-8,
 * label) and keeps its strings in one arena; once all labels are known the label mapping is
 * fixed. Pass 2 tokenises blocks of rows in parallel (OpenMP, one TokenizerState per thread)
 * and writes each block as whole chunks, so the file is written once, front to back.
 */
#define _POSIX_C_SOURCE 200809L
#include "prepare.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "io/atomic.h"
#include "io/h5.h"
#include "tokenizer.h"

enum { GZIP_LEVEL = 1, MAX_WARNINGS = 20 };

typedef struct {
    long line;
    size_t text_off, pair_off, label_off;
    uint32_t text_len, pair_len, label_len;
    int32_t label;  /* classification */
    float target;   /* regression */
} Row;

typedef struct {
    const PrepareOptions *opt;
    Row *rows;
    long n, cap;
    char *arena;
    size_t alen, acap;
    long skipped;
    char **names; /* label names (string labels), sorted or as given */
    int n_names;
    bool int_labels;
    bool has_pair; /* the input has a text-pair column */
} Ctx;

PrepareOptions prepare_default_options(void) {
    PrepareOptions o;
    memset(&o, 0, sizeof o);
    o.max_seq = 128;
    o.do_lower_case = true;
    o.progress = true;
    return o;
}

static size_t arena_put(Ctx *c, const char *s, size_t n) {
    if (c->alen + n + 1 > c->acap) {
        c->acap = 2 * (c->alen + n + 1) + (1 << 16);
        c->arena = xrealloc(c->arena, c->acap);
    }
    size_t off = c->alen;
    memcpy(c->arena + off, s, n);
    c->arena[off + n] = '\0';
    c->alen += n + 1;
    return off;
}

/* A bad row: an error (DISTILL_ERR, message kept), or with skip_bad_rows a warning and a count. */
static Status bad_row(Ctx *c) {
    if (!c->opt->skip_bad_rows) return DISTILL_ERR;
    c->skipped++;
    if (c->skipped <= MAX_WARNINGS) fprintf(stderr, "distill: warning: %s (row skipped)\n", distill_error());
    return DISTILL_OK;
}

static void trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t' || **s == '\r')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r')) (*n)--;
}

static bool parse_int(const char *s, long *v) {
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end || errno || x < INT32_MIN || x > INT32_MAX) return false;
    for (const char *p = s; *p; p++)
        if (!(*p >= '0' && *p <= '9') && !(p == s && (*p == '-' || *p == '+'))) return false;
    *v = x;
    return true;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* --labels a,b,c -> c->names (in the given order). */
static Status parse_label_list(Ctx *c) {
    const char *s = c->opt->labels;
    int cap = 8;
    c->names = xmalloc((size_t)cap * sizeof(char *));
    for (;;) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        const char *t = s;
        trim(&t, &n);
        if (n == 0) {
            distill_set_error("--labels '%s': an empty label name", c->opt->labels);
            return DISTILL_ERR;
        }
        char *name = xmalloc(n + 1);
        memcpy(name, t, n);
        name[n] = '\0';
        for (int i = 0; i < c->n_names; i++)
            if (!strcmp(c->names[i], name)) {
                distill_set_error("--labels '%s': '%s' is listed twice", c->opt->labels, name);
                free(name);
                return DISTILL_ERR;
            }
        if (c->n_names == cap) c->names = xrealloc(c->names, (size_t)(cap *= 2) * sizeof(char *));
        c->names[c->n_names++] = name;
        if (!e) break;
        s = e + 1;
    }
    return DISTILL_OK;
}

/* Pass 1: read, check and keep every row. */
static Status read_rows(Ctx *c, TextReader *r) {
    const PrepareOptions *o = c->opt;
    const char *path = o->input_path;
    TextRow tr;
    int k;
    while ((k = text_next(r, &tr)) != 0) {
        if (k == -2) return DISTILL_ERR;
        if (k == -1) {
            if (bad_row(c) != DISTILL_OK) return DISTILL_ERR;
            continue;
        }
        long at = utf8_invalid_at(tr.text, tr.text_len);
        const char *where = "text";
        if (at < 0 && tr.pair) at = utf8_invalid_at(tr.pair, tr.pair_len), where = "text pair";
        if (at < 0 && tr.label) at = utf8_invalid_at(tr.label, tr.label_len), where = "label";
        if (at >= 0) {
            distill_set_error("%s:%ld: invalid UTF-8 in the %s at byte %ld", path, tr.line, where, at + 1);
            if (bad_row(c) != DISTILL_OK) return DISTILL_ERR;
            continue;
        }
        Row row = {.line = tr.line};
        if (tr.label) {
            const char *l = tr.label;
            size_t ln = tr.label_len;
            trim(&l, &ln);
            char tmp[128];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(ln > 100 ? 100 : ln), l);
            if (ln == 0) {
                distill_set_error("%s:%ld: the label is empty", path, tr.line);
                if (bad_row(c) != DISTILL_OK) return DISTILL_ERR;
                continue;
            }
            if (o->regression) {
                char *end;
                double d = strtod(tmp, &end);
                if (ln > 100 || *end || !isfinite(d)) {
                    distill_set_error("%s:%ld: expected a number as the label (--regression), found '%s'", path,
                                      tr.line, tmp);
                    if (bad_row(c) != DISTILL_OK) return DISTILL_ERR;
                    continue;
                }
                row.target = (float)d;
            } else if (o->labels) {
                row.label = -1;
                for (int i = 0; i < c->n_names; i++)
                    if (strlen(c->names[i]) == ln && !memcmp(c->names[i], l, ln)) row.label = i;
                if (row.label < 0) {
                    distill_set_error("%s:%ld: unknown label '%s' (--labels %s)", path, tr.line, tmp, o->labels);
                    if (bad_row(c) != DISTILL_OK) return DISTILL_ERR;
                    continue;
                }
            }
            row.label_off = arena_put(c, l, ln);
            row.label_len = (uint32_t)ln;
        }
        if (tr.text_len > UINT32_MAX || tr.pair_len > UINT32_MAX) {
            distill_set_error("%s:%ld: the text is longer than 4 GiB", path, tr.line);
            if (bad_row(c) != DISTILL_OK) return DISTILL_ERR;
            continue;
        }
        row.text_off = arena_put(c, tr.text, tr.text_len);
        row.text_len = (uint32_t)tr.text_len;
        if (tr.pair) {
            row.pair_off = arena_put(c, tr.pair, tr.pair_len);
            row.pair_len = (uint32_t)tr.pair_len;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 4096;
            c->rows = xrealloc(c->rows, (size_t)c->cap * sizeof(Row));
        }
        c->rows[c->n++] = row;
    }
    return DISTILL_OK;
}

/* Classification labels without --labels: integers, or sorted distinct strings. */
static Status map_labels(Ctx *c) {
    bool all_int = true;
    for (long i = 0; i < c->n && all_int; i++) {
        long v;
        all_int = parse_int(c->arena + c->rows[i].label_off, &v);
    }
    if (all_int) {
        c->int_labels = true;
        long w = 0;
        for (long i = 0; i < c->n; i++) {
            long v;
            parse_int(c->arena + c->rows[i].label_off, &v);
            if (v < 0) {
                distill_set_error("%s:%ld: the label %ld is negative (class labels are 0, 1, ...)", c->opt->input_path,
                                  c->rows[i].line, v);
                if (bad_row(c) != DISTILL_OK) return DISTILL_ERR;
                continue;
            }
            c->rows[i].label = (int32_t)v;
            c->rows[w++] = c->rows[i];
        }
        c->n = w;
        return DISTILL_OK;
    }
    char **all = xmalloc((size_t)(c->n ? c->n : 1) * sizeof(char *));
    for (long i = 0; i < c->n; i++) all[i] = c->arena + c->rows[i].label_off;
    qsort(all, (size_t)c->n, sizeof(char *), cmp_str);
    c->names = xmalloc((size_t)(c->n ? c->n : 1) * sizeof(char *));
    for (long i = 0; i < c->n; i++)
        if (i == 0 || strcmp(all[i], all[i - 1])) c->names[c->n_names++] = xstrdup(all[i]);
    free(all);
    for (long i = 0; i < c->n; i++) {
        const char *key = c->arena + c->rows[i].label_off;
        char **hit = bsearch(&key, c->names, (size_t)c->n_names, sizeof(char *), cmp_str);
        DCHECK(hit);
        c->rows[i].label = (int32_t)(hit - c->names);
    }
    return DISTILL_OK;
}

/* ------------------------------------------------------------------ writing */

static hid_t create_dataset(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims,
                            const hsize_t *chunk) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, rank, chunk);
    H5Pset_shuffle(pl);
    H5Pset_deflate(pl, GZIP_LEVEL);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    H5Sclose(sp);
    if (d < 0) distill_set_error("cannot create the dataset /%s: %s", name, h5_error_text());
    return d;
}

/* Writes rows [r0, r0 + n) of a dataset whose rows are `cols` wide (cols 0: 1-D). */
static Status write_rows(hid_t d, hid_t memtype, hsize_t r0, hsize_t n, hsize_t cols, const void *buf,
                         const char *name) {
    int rank = cols ? 2 : 1;
    hsize_t start[2] = {r0, 0}, count[2] = {n, cols};
    hid_t fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (e >= 0) e = H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0) {
        distill_set_error("cannot write /%s: %s", name, h5_error_text());
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

static void progress(const PrepareOptions *o, long done, long total, bool end) {
    if (!o->progress || !isatty(STDERR_FILENO)) return;
    fprintf(stderr, "\rdistill prepare: %ld/%ld rows (%.0f%%)%s", done, total, total ? 100.0 * done / total : 100.0,
            end ? "\n" : "");
    fflush(stderr);
}

static Status write_file(Ctx *c, const Tokenizer *tok, const char *tmp, PrepareStats *stats) {
    const PrepareOptions *o = c->opt;
    const int S = o->max_seq;
    const hsize_t N = (hsize_t)c->n;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        distill_set_error("%s: cannot create the output file: %s", o->output_path, h5_error_text());
        return DISTILL_ERR;
    }
    /* chunks of about 256 KiB of input_ids; a block is 16 chunks of rows */
    hsize_t crow = (hsize_t)(65536 / S > 0 ? 65536 / S : 1);
    if (crow > N) crow = N;
    const long block = (long)crow * 16;
    hsize_t dims2[2] = {N, (hsize_t)S}, chunk2[2] = {crow, (hsize_t)S};
    hsize_t dims1[1] = {N}, chunk1[1] = {N < 65536 ? N : 65536};
    hid_t d_ids = create_dataset(f, "input_ids", H5T_STD_I32LE, 2, dims2, chunk2);
    hid_t d_types = d_ids < 0 ? -1 : create_dataset(f, "token_type_ids", H5T_STD_U8LE, 2, dims2, chunk2);
    hid_t d_len = d_types < 0 ? -1 : create_dataset(f, "lengths", H5T_STD_I32LE, 1, dims1, chunk1);
    hid_t d_lab = -1;
    bool labelled = !o->no_label;
    if (d_len >= 0 && labelled)
        d_lab = create_dataset(f, "labels", o->regression ? H5T_IEEE_F32LE : H5T_STD_I32LE, 1, dims1, chunk1);
    Status st = (d_ids < 0 || d_types < 0 || d_len < 0 || (labelled && d_lab < 0)) ? DISTILL_ERR : DISTILL_OK;

    int nthreads = omp_get_max_threads();
    TokenizerState **states = xcalloc((size_t)nthreads, sizeof(TokenizerState *));
    for (int i = 0; i < nthreads; i++) states[i] = tokenizer_state_new();
    int32_t *ids = xmalloc((size_t)block * (size_t)S * sizeof(int32_t)); /* [block, S] */
    uint8_t *types = xmalloc((size_t)block * (size_t)S);                 /* [block, S] */
    int32_t *lengths = xmalloc((size_t)block * sizeof(int32_t));         /* [block] */
    long truncated = 0;
    char err[1024] = "";
    for (long b0 = 0; st == DISTILL_OK && b0 < c->n; b0 += block) {
        long nb = c->n - b0 < block ? c->n - b0 : block;
        memset(ids, 0, (size_t)nb * (size_t)S * sizeof(int32_t));
        memset(types, 0, (size_t)nb * (size_t)S);
        long trunc = 0;
#pragma omp parallel reduction(+ : trunc)
        {
            TokenizerState *ts = states[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 256)
            for (long i = 0; i < nb; i++) {
                const Row *r = &c->rows[b0 + i];
                int len = 0;
                bool cut = false;
                if (tokenizer_encode(tok, ts, c->arena + r->text_off, r->text_len,
                                     c->has_pair ? c->arena + r->pair_off : NULL,
                                     r->pair_len, S, ids + (size_t)i * (size_t)S, types + (size_t)i * (size_t)S, &len,
                                     &cut) != DISTILL_OK) {
#pragma omp critical
                    if (!err[0]) snprintf(err, sizeof err, "%s:%ld: %s", o->input_path, r->line, distill_error());
                }
                lengths[i] = len;
                trunc += cut;
            }
        }
        truncated += trunc;
        if (err[0]) {
            distill_set_error("%s", err);
            st = DISTILL_ERR;
            break;
        }
        st = write_rows(d_ids, H5T_NATIVE_INT32, (hsize_t)b0, (hsize_t)nb, (hsize_t)S, ids, "input_ids");
        if (st == DISTILL_OK)
            st = write_rows(d_types, H5T_NATIVE_UINT8, (hsize_t)b0, (hsize_t)nb, (hsize_t)S, types, "token_type_ids");
        if (st == DISTILL_OK) st = write_rows(d_len, H5T_NATIVE_INT32, (hsize_t)b0, (hsize_t)nb, 0, lengths, "lengths");
        progress(o, b0 + nb, c->n, b0 + nb == c->n);
    }
    for (int i = 0; i < nthreads; i++) tokenizer_state_free(states[i]);
    free(states);
    free(ids);
    free(types);
    free(lengths);

    if (st == DISTILL_OK && labelled) {
        if (o->regression) {
            float *v = xmalloc((size_t)c->n * sizeof(float));
            for (long i = 0; i < c->n; i++) v[i] = c->rows[i].target;
            st = write_rows(d_lab, H5T_NATIVE_FLOAT, 0, N, 0, v, "labels");
            free(v);
        } else {
            int32_t *v = xmalloc((size_t)c->n * sizeof(int32_t));
            for (long i = 0; i < c->n; i++) v[i] = c->rows[i].label;
            st = write_rows(d_lab, H5T_NATIVE_INT32, 0, N, 0, v, "labels");
            free(v);
        }
    }
    int V = tokenizer_vocab_size(tok);
    if (st == DISTILL_OK) {
        const char **vocab = xmalloc((size_t)V * sizeof(char *));
        for (int i = 0; i < V; i++) vocab[i] = tokenizer_token(tok, i);
        st = h5d_put_strs(o->output_path, f, "vocab", vocab, (size_t)V);
        free(vocab);
    }
    int num_labels = 0;
    if (labelled && !o->regression) {
        if (c->int_labels)
            for (long i = 0; i < c->n; i++) num_labels = c->rows[i].label + 1 > num_labels ? c->rows[i].label + 1 : num_labels;
        else
            num_labels = c->n_names;
    }
    hid_t root = f;
    if (st == DISTILL_OK) st = h5a_put_int(o->output_path, root, "max_seq", H5T_STD_I32LE, S);
    if (st == DISTILL_OK) st = h5a_put_int(o->output_path, root, "vocab_size", H5T_STD_I32LE, V);
    if (st == DISTILL_OK) st = h5a_put_str(o->output_path, root, "vocab_sha256", tokenizer_vocab_sha256(tok));
    if (st == DISTILL_OK) st = h5a_put_int(o->output_path, root, "do_lower_case", H5T_STD_U8LE, o->do_lower_case);
    if (st == DISTILL_OK && c->n_names > 0)
        st = h5a_put_strs(o->output_path, root, "label_names", (const char *const *)c->names,
                          (size_t)c->n_names);
    if (st == DISTILL_OK && num_labels > 0) st = h5a_put_int(o->output_path, root, "num_labels", H5T_STD_I32LE, num_labels);
    if (st == DISTILL_OK) st = h5a_put_str(o->output_path, root, "source", o->input_path);
    if (st == DISTILL_OK) st = h5a_put_str(o->output_path, root, "created_by", o->created_by ? o->created_by : "distill prepare");
    /* rows cut to max_seq, for `distill eval`'s report (older files lack it) */
    if (st == DISTILL_OK) st = h5a_put_int(o->output_path, root, "truncated_rows", H5T_STD_I64LE, truncated);
    if (d_ids >= 0) H5Dclose(d_ids);
    if (d_types >= 0) H5Dclose(d_types);
    if (d_len >= 0) H5Dclose(d_len);
    if (d_lab >= 0) H5Dclose(d_lab);
    if (H5Fclose(f) < 0 && st == DISTILL_OK) {
        distill_set_error("%s: cannot finish writing: %s", o->output_path, h5_error_text());
        st = DISTILL_ERR;
    }
    stats->truncated = truncated;
    stats->num_labels = num_labels;
    return st;
}

Status prepare_run(const PrepareOptions *o, PrepareStats *stats) {
    double t0 = now_seconds();
    memset(stats, 0, sizeof *stats);
    if (o->max_seq < 3 || o->max_seq > 1 << 16) {
        distill_set_error("--max-seq %d: expected 3 to 65536", o->max_seq);
        return DISTILL_ERR;
    }
    if (o->regression && o->labels) {
        distill_set_error("--regression and --labels cannot be used together");
        return DISTILL_ERR;
    }
    if (o->no_label && (o->labels || o->regression || o->label_col)) {
        distill_set_error("--no-label cannot be used with --label, --labels or --regression");
        return DISTILL_ERR;
    }
    if (!strcmp(o->input_path, o->output_path)) {
        distill_set_error("%s: the output would overwrite the input", o->output_path);
        return DISTILL_ERR;
    }
    Ctx c = {.opt = o};
    Tokenizer *tok = NULL;
    TextReader *r = NULL;
    Status st = DISTILL_ERR;
    TokenizerOptions topt = tokenizer_default_options();
    topt.do_lower_case = o->do_lower_case;
    if (o->labels && parse_label_list(&c) != DISTILL_OK) goto done;
    if (tokenizer_load(&tok, o->vocab_path, &topt) != DISTILL_OK) goto done;
    if (tokenizer_cls_id(tok) < 0 || tokenizer_sep_id(tok) < 0) {
        distill_set_error("%s: the vocabulary has no [CLS] or no [SEP] token", o->vocab_path);
        goto done;
    }
    TextSpec spec = {.path = o->input_path, .format = o->format, .text_col = o->text_col, .pair_col = o->pair_col,
                     .label_col = o->label_col, .no_label = o->no_label};
    if (text_open(&r, &spec) != DISTILL_OK) goto done;
    c.has_pair = text_has_pair(r);
    snprintf(stats->columns, sizeof stats->columns, "%s", text_columns(r));
    if (read_rows(&c, r) != DISTILL_OK) goto done;
    if (!o->no_label && !o->regression && !o->labels && map_labels(&c) != DISTILL_OK) goto done;
    if (c.n == 0) {
        distill_set_error("%s: no rows to write%s", o->input_path, c.skipped ? " (every row was bad)" : "");
        goto done;
    }
    if (c.skipped > MAX_WARNINGS)
        fprintf(stderr, "distill: warning: ... and %ld more bad rows skipped\n", c.skipped - MAX_WARNINGS);
    /* HDF5 writes a temporary file beside the output (made first, so a missing folder gets the
     * system's message), which is then fsynced and renamed into place (io/atomic.h). */
    AtomicFile af;
    if (io_atomic_begin_named(&af, o->output_path) != DISTILL_OK) goto done;
    H5Quiet q;
    h5_quiet_begin(&q);
    st = write_file(&c, tok, af.tmp, stats);
    h5_quiet_end(&q);
    if (st == DISTILL_OK) st = io_atomic_commit(&af);
    else io_atomic_abort(&af);
    stats->rows = c.n;
    stats->skipped = c.skipped;
    stats->seconds = now_seconds() - t0;
done:
    if (st != DISTILL_OK) stats->skipped = c.skipped;
    text_close(r);
    tokenizer_free(tok);
    for (int i = 0; i < c.n_names; i++) free(c.names[i]);
    free(c.names);
    free(c.rows);
    free(c.arena);
    return st;
}
