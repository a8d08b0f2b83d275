/*
 * cmd_predict.c — `distill predict`: run a model (Hugging Face folder or training checkpoint) on
 * text and write one JSON object per input row (JSONL): logits, class probabilities, the predicted
 * label, or the sentence embedding.
 *
 * Promises:
 * - Rows are tokenised exactly as `distill prepare` tokenises them for the same model
 *   (model_io.h), run in batches with dynamic padding (rows are sorted by length inside a window
 *   of 16 batches, so a batch pads little), and written in input order.
 * - The model runs in evaluation mode: no tape, no dropout. Embeddings: `cls` is the last hidden
 *   state at [CLS]; `mean` the mean of the last hidden state over the attention mask (as
 *   sentence-transformers' Pooling(mean)); `--normalize` divides by the L2 norm (floored at 1e-12,
 *   as torch.nn.functional.normalize).
 * - Numbers are printed with 9 significant digits, enough to give back the exact float32.
 * - Errors are "distill: error: ..." with exit 1 (2 for usage errors). --out is written to a
 *   temporary file beside it and renamed into place only when every row succeeded: on error
 *   nothing is left and an existing file keeps its old content.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "model_io.h"
#include "runtime.h"

#include "data/textio.h"
#include "io/atomic.h"
#include "engine/ops.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WINDOW_BATCHES 16    /* rows sorted by length within this many batches ... */
#define WINDOW_MAX_ROWS 8192 /* ... or this many rows (memory: rows x max_seq x 5 bytes) */

typedef enum { OUT_DEFAULT = 0, OUT_LOGITS, OUT_PROBS, OUT_LABEL, OUT_EMBEDDING } OutKind;

typedef struct {
    const char *model, *text, *pair, *input, *format, *out, *device;
    OutKind kind;
    const char *pooling; /* NULL = default (mean) */
    bool normalize;
    int batch, max_seq, threads;
    bool max_seq_set;
} PredictArgs;

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "distill: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see distill predict --help)\n");
    return 2;
}

static int fail(void) {
    distill_print_error(distill_error());
    return 1;
}

/* A positive integer option value; -1 when malformed. */
static int parse_count(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 1 << 24) return -1;
    return (int)v;
}

static int parse_args(int argc, char **argv, PredictArgs *a) {
    memset(a, 0, sizeof *a);
    a->batch = 32;
    a->max_seq = 128;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            help_predict(stdout, 0);
            return -1;
        }
        if (!strcmp(k, "--normalize")) {
            a->normalize = true;
            continue;
        }
        static const char *const with_value[] = {
            "--model", "--text", "--text-pair", "--input", "--format", "--output", "--pooling",
            "--batch-size", "--max-seq", "--out", "--threads", "--device"};
        bool known = false;
        for (size_t j = 0; j < sizeof with_value / sizeof with_value[0]; j++)
            known |= !strcmp(k, with_value[j]);
        if (!known) return usage_error("predict: unknown option '%s'", k);
        if (i + 1 >= argc) return usage_error("predict: %s needs a value", k);
        const char *v = argv[++i];
        if (!strcmp(k, "--model")) a->model = v;
        else if (!strcmp(k, "--text")) a->text = v;
        else if (!strcmp(k, "--text-pair")) a->pair = v;
        else if (!strcmp(k, "--input")) a->input = v;
        else if (!strcmp(k, "--format")) a->format = v;
        else if (!strcmp(k, "--out")) a->out = v;
        else if (!strcmp(k, "--device")) a->device = v;
        else if (!strcmp(k, "--pooling")) {
            if (strcmp(v, "cls") && strcmp(v, "mean"))
                return usage_error("predict: --pooling: expected cls or mean, found '%s'", v);
            a->pooling = v;
        } else if (!strcmp(k, "--output")) {
            if (!strcmp(v, "logits")) a->kind = OUT_LOGITS;
            else if (!strcmp(v, "probs")) a->kind = OUT_PROBS;
            else if (!strcmp(v, "label")) a->kind = OUT_LABEL;
            else if (!strcmp(v, "embedding")) a->kind = OUT_EMBEDDING;
            else
                return usage_error(
                    "predict: --output: expected logits, probs, label or embedding, found '%s'", v);
        } else {
            int n = parse_count(v);
            if (n < 0) {
                fprintf(stderr, "distill: error: predict: %s: expected a positive integer, found "
                        "'%s'\n", k, v);
                return 2;
            }
            if (!strcmp(k, "--batch-size")) a->batch = n;
            else if (!strcmp(k, "--threads")) a->threads = n;
            else a->max_seq = n, a->max_seq_set = true;
        }
    }
    if (!a->model) return usage_error("predict: %s is required", "--model");
    if (!a->input && !a->text)
        return usage_error("predict: %s", "give the text: --text T [--text-pair T2], or --input FILE");
    if (!a->input && a->format) return usage_error("predict: %s", "--format needs --input");
    if (a->kind != OUT_EMBEDDING && a->kind != OUT_DEFAULT && (a->pooling || a->normalize))
        return usage_error("predict: %s", "--pooling and --normalize apply to --output embedding");
    return 0;
}

/* ---------------------------------------------------------------- output */

/* The float as the shortest decimal of <= 9 significant digits that reads back as the same
 * float32, as a double cJSON prints without extra digits. */
static double f32_json(float f) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", f);
    return strtod(buf, NULL);
}

static cJSON *float_array(const double *v, int n) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(f32_json((float)v[i])));
    return arr;
}

typedef struct {
    OutKind kind;
    bool mean_pool, normalize;
    bool multi_label;
    int dim;            /* values per row: num_labels or hidden size */
    char **labels;      /* (num_labels) */
} OutSpec;

/* Writes one row's JSON line; v holds the row's logits or embedding (dim floats). */
static Status write_row(FILE *f, const OutSpec *o, const float *v) {
    int d = o->dim;
    double *x = xmalloc((size_t)d * sizeof *x);
    for (int i = 0; i < d; i++) x[i] = v[i];
    cJSON *obj = cJSON_CreateObject();
    if (o->kind == OUT_LOGITS) {
        cJSON_AddItemToObject(obj, "logits", float_array(x, d));
    } else if (o->kind == OUT_EMBEDDING) {
        if (o->normalize) {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += x[i] * x[i];
            double norm = fmax(sqrt(ss), 1e-12);
            for (int i = 0; i < d; i++) x[i] /= norm;
        }
        cJSON_AddItemToObject(obj, "embedding", float_array(x, d));
    } else {
        if (o->multi_label) {
            for (int i = 0; i < d; i++) x[i] = 1.0 / (1.0 + exp(-x[i]));
        } else {
            double mx = x[0], sum = 0;
            for (int i = 1; i < d; i++) mx = fmax(mx, x[i]);
            for (int i = 0; i < d; i++) sum += (x[i] = exp(x[i] - mx));
            for (int i = 0; i < d; i++) x[i] /= sum;
        }
        if (o->kind == OUT_PROBS) {
            cJSON_AddItemToObject(obj, "probs", float_array(x, d));
        } else {
            int best = 0;
            for (int i = 1; i < d; i++)
                if (v[i] > v[best]) best = i; /* argmax of the logits: ties go to the first */
            cJSON_AddStringToObject(obj, "label", o->labels[best]);
            cJSON_AddNumberToObject(obj, "id", best);
            cJSON_AddNumberToObject(obj, "score", f32_json((float)x[best]));
        }
    }
    char *line = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    free(x);
    bool ok = line && fputs(line, f) >= 0 && fputc('\n', f) != EOF;
    free(line);
    if (!ok) {
        /* the caller names the file (predict_output_error) */
        distill_set_error("cannot write: %s", strerror(errno));
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

/* ---------------------------------------------------------------- batching */

typedef struct {
    int cap, S;          /* rows per window, max_seq */
    long rows, truncated; /* rows tokenised so far, and those cut to S */
    int n;               /* rows held */
    int32_t *ids;        /* (cap, S) */
    uint8_t *types;      /* (cap, S) */
    int *len;            /* (cap) */
    float *res;          /* (cap, dim) */
} Window;

typedef struct {
    int len, idx;
} LenIdx;

static int by_length(const void *pa, const void *pb) {
    const LenIdx *a = pa, *b = pb;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Runs the window's rows through the model, batch by batch, into w->res. */
static void run_window(Ctx *c, Bert *m, const OutSpec *o, int batch, Window *w) {
    LenIdx *order = xmalloc((size_t)w->n * sizeof *order);
    for (int i = 0; i < w->n; i++) order[i] = (LenIdx){w->len[i], i};
    qsort(order, (size_t)w->n, sizeof *order, by_length);
    int32_t *ids = xmalloc((size_t)batch * w->S * sizeof *ids);
    int32_t *types = xmalloc((size_t)batch * w->S * sizeof *types);
    int32_t *lengths = xmalloc((size_t)batch * sizeof *lengths);
    float *host = xmalloc((size_t)batch * o->dim * sizeof *host);
    for (int start = 0; start < w->n; start += batch) {
        int B = w->n - start < batch ? w->n - start : batch;
        int S = order[start + B - 1].len; /* sorted: the last row is the longest */
        for (int b = 0; b < B; b++) {
            int r = order[start + b].idx, L = w->len[r];
            lengths[b] = L;
            for (int s = 0; s < S; s++) {
                ids[b * S + s] = s < L ? w->ids[(size_t)r * w->S + s] : m->cfg.pad_token_id;
                types[b * S + s] = s < L ? w->types[(size_t)r * w->S + s] : 0;
            }
        }
        int bs[2] = {B, S}, b1[1] = {B};
        BertInput in = {
            .input_ids = ctx_from_host(c, DT_I32, 2, bs, ids),        /* (B, S) */
            .token_type_ids = ctx_from_host(c, DT_I32, 2, bs, types), /* (B, S) */
            .lengths = ctx_from_host(c, DT_I32, 1, b1, lengths),      /* (B) */
            .lengths_host = lengths,
        };
        BertRequest req = {.no_logits = o->kind == OUT_EMBEDDING};
        BertOutput out;
        bert_forward(c, m, &in, &req, &out);
        Tensor *r; /* (B, dim) */
        if (o->kind != OUT_EMBEDDING) r = out.logits;
        else if (o->mean_pool) r = op_mean_pool(c, out.sequence, in.lengths);
        else r = op_take_token(c, out.sequence, 0);
        DCHECK(r && r->ndim == 2 && r->shape[0] == B && r->shape[1] == o->dim);
        tensor_to_host(r, host);
        for (int b = 0; b < B; b++)
            memcpy(w->res + (size_t)order[start + b].idx * o->dim, host + (size_t)b * o->dim,
                   (size_t)o->dim * sizeof(float));
        ctx_reset(c);
    }
    free(order);
    free(ids);
    free(types);
    free(lengths);
    free(host);
}

/* ---------------------------------------------------------------- the output file */

typedef struct {
    FILE *f;          /* where rows go: standard output, or the temporary file's stream */
    AtomicFile af;    /* --out: the temporary file beside it (io/atomic.h) */
    const char *path; /* NULL: standard output */
} OutFile;

static Status out_open(OutFile *of, const char *path) {
    memset(of, 0, sizeof *of);
    of->path = path;
    if (!path) {
        of->f = stdout;
        return DISTILL_OK;
    }
    if (io_atomic_begin(&of->af, path) != DISTILL_OK) return DISTILL_ERR;
    of->f = of->af.fp;
    return DISTILL_OK;
}

/* Success: flush, sync and rename into place. */
static Status out_commit(OutFile *of) {
    if (!of->path) {
        if (fflush(stdout) != 0) {
            distill_set_error("writing standard output: %s", strerror(errno));
            return DISTILL_ERR;
        }
        return DISTILL_OK;
    }
    of->f = NULL;
    return io_atomic_commit(&of->af);
}

/* Failure: remove the temporary file (nothing to do for standard output). */
static void out_abort(OutFile *of) {
    of->f = NULL;
    io_atomic_abort(&of->af);
}

/* ---------------------------------------------------------------- the command */

/* Checks the output kind against the model and fills the output spec. */
static Status plan_output(const PredictArgs *a, const LoadedModel *lm, OutSpec *o) {
    const BertConfig *cfg = &lm->model->cfg;
    bool regression = cfg->num_labels == 1 || !strcmp(cfg->problem_type, "regression");
    o->kind = a->kind;
    if (o->kind == OUT_DEFAULT) o->kind = cfg->num_labels > 0 && !regression ? OUT_LABEL
                                         : cfg->num_labels > 0 ? OUT_LOGITS : OUT_EMBEDDING;
    o->mean_pool = !a->pooling || !strcmp(a->pooling, "mean");
    o->normalize = a->normalize;
    o->multi_label = !strcmp(cfg->problem_type, "multi_label_classification");
    o->labels = lm->labels;
    if (o->kind == OUT_EMBEDDING) {
        o->dim = cfg->hidden_size;
        return DISTILL_OK;
    }
    o->dim = cfg->num_labels;
    static const char *const names[] = {"", "logits", "probs", "label", "embedding"};
    if (cfg->num_labels == 0) {
        distill_set_error("%s: --output %s needs a classifier, but the model has none (it is a "
                          "BertModel): only --output embedding is supported", a->model,
                          names[o->kind]);
        return DISTILL_ERR;
    }
    if (regression && o->kind != OUT_LOGITS) {
        distill_set_error("%s: --output %s: the model is a regression model (one output): use "
                          "--output logits", a->model, names[o->kind]);
        return DISTILL_ERR;
    }
    if (o->multi_label && o->kind == OUT_LABEL) {
        distill_set_error("%s: --output label: the model is multi-label "
                          "(multi_label_classification): use --output probs", a->model);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

/* Tokenises one row into slot w->n of the window. where: "FILE:LINE" or "--text" for messages. */
static Status add_row(const Tokenizer *tok, TokenizerState *ts, Window *w, const char *t,
                      size_t tl, const char *p, size_t pl, const char *where) {
    int len;
    uint8_t *types = w->types + (size_t)w->n * w->S;
    int32_t *ids = w->ids + (size_t)w->n * w->S;
    bool cut = false;
    if (tokenizer_encode(tok, ts, t, tl, p, pl, w->S, ids, types, &len, &cut)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", distill_error());
        distill_set_error("%s: %s", where, msg);
        return DISTILL_ERR;
    }
    w->len[w->n++] = len;
    w->rows++;
    w->truncated += cut;
    return DISTILL_OK;
}

static Status flush_window(Ctx *c, Bert *m, const OutSpec *o, int batch, Window *w, FILE *f) {
    if (w->n == 0) return DISTILL_OK;
    run_window(c, m, o, batch, w);
    for (int i = 0; i < w->n; i++)
        if (write_row(f, o, w->res + (size_t)i * o->dim)) return DISTILL_ERR;
    w->n = 0;
    return DISTILL_OK;
}

static Status predict(const PredictArgs *a, const LoadedModel *lm, TextReader *rd, FILE *f) {
    OutSpec o;
    if (plan_output(a, lm, &o)) return DISTILL_ERR;
    Bert *m = lm->model;
    /* Window: WINDOW_BATCHES batches, but no more than WINDOW_MAX_ROWS rows unless one batch is. */
    int cap = a->batch * WINDOW_BATCHES;
    if (cap > WINDOW_MAX_ROWS) cap = a->batch > WINDOW_MAX_ROWS ? a->batch : WINDOW_MAX_ROWS;
    Window w = {.cap = cap, .S = a->max_seq};
    if (!rd) w.cap = 1;
    w.ids = xmalloc((size_t)w.cap * w.S * sizeof *w.ids);
    w.types = xmalloc((size_t)w.cap * w.S * sizeof *w.types);
    w.len = xmalloc((size_t)w.cap * sizeof *w.len);
    w.res = xmalloc((size_t)w.cap * o.dim * sizeof *w.res);
    TokenizerState *ts = tokenizer_state_new();
    Ctx *c = ctx_new(lm->device, 0);
    c->record = false;   /* inference: no tape */
    c->training = false; /* no dropout */
    Status s = DISTILL_OK;
    if (!rd) {
        s = add_row(lm->tok, ts, &w, a->text, strlen(a->text), a->pair, a->pair ? strlen(a->pair) : 0,
                    "--text");
    } else {
        TextRow row;
        int r;
        while (s == DISTILL_OK && (r = text_next(rd, &row)) != 0) {
            if (r < 0) {
                s = DISTILL_ERR; /* text_next set "FILE:LINE: ..." */
                break;
            }
            char where[4200];
            snprintf(where, sizeof where, "%s:%ld", a->input, row.line);
            s = add_row(lm->tok, ts, &w, row.text, row.text_len, row.pair, row.pair_len, where);
            if (s == DISTILL_OK && w.n == w.cap) s = flush_window(c, m, &o, a->batch, &w, f);
        }
    }
    if (s == DISTILL_OK) s = flush_window(c, m, &o, a->batch, &w, f);
    if (s == DISTILL_OK && w.truncated > 0)
        fprintf(stderr, "distill: note: predict: %ld of %ld rows were longer than %d tokens and were truncated "
                        "(--max-seq %d%s)\n", w.truncated, w.rows, w.S, w.S,
                a->max_seq_set ? "" : ": the default, or the model's position table if smaller");
    ctx_free(c);
    tokenizer_state_free(ts);
    free(w.ids);
    free(w.types);
    free(w.len);
    free(w.res);
    return s;
}

/* Checks --max-seq and pairs against the model's positions and token types. */
static Status check_shapes(PredictArgs *a, const LoadedModel *lm, bool pairs) {
    const BertConfig *cfg = &lm->model->cfg;
    if (a->max_seq > cfg->max_position_embeddings) {
        if (a->max_seq_set) {
            distill_set_error("--max-seq %d: the model has only %d positions "
                              "(max_position_embeddings)", a->max_seq,
                              cfg->max_position_embeddings);
            return DISTILL_ERR;
        }
        a->max_seq = cfg->max_position_embeddings;
    }
    if (a->max_seq < (pairs ? 3 : 2)) {
        distill_set_error("--max-seq %d: expected at least %d ([CLS] and [SEP]%s)", a->max_seq,
                          pairs ? 3 : 2, pairs ? " twice" : "");
        return DISTILL_ERR;
    }
    if (pairs && cfg->type_vocab_size < 2) {
        distill_set_error("%s: the model has type_vocab_size %d, so it cannot take text pairs",
                          a->model, cfg->type_vocab_size);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

int cmd_predict(int argc, char **argv) {
    PredictArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (a.threads) runtime_set_threads(a.threads);

    ModelOpenOptions mo = {.device = device_cpu(), .quiet = true, .need_tokenizer = true};
    if (a.device && runtime_pick_device(a.device, &mo.device)) return fail();
    LoadedModel lm;
    if (model_open(a.model, &mo, &lm)) return fail();

    TextReader *rd = NULL;
    if (a.input) {
        TextSpec spec = {.path = a.input, .text_col = a.text, .pair_col = a.pair, .no_label = true};
        if (a.format) {
            spec.format = text_format_parse(a.format);
            if (spec.format == TEXT_AUTO) {
                model_close(&lm);
                return usage_error("predict: --format: expected tsv, csv or jsonl, found '%s'",
                                   a.format);
            }
        }
        if (text_open(&rd, &spec)) {
            model_close(&lm);
            return fail();
        }
    }
    bool pairs = rd ? text_has_pair(rd) : a.pair != NULL;
    OutFile of = {0};
    Status s = check_shapes(&a, &lm, pairs);
    if (s == DISTILL_OK) s = out_open(&of, a.out);
    if (s == DISTILL_OK) {
        s = predict(&a, &lm, rd, of.f);
        if (s != DISTILL_OK && !strncmp(distill_error(), "cannot write: ", 14)) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", distill_error());
            distill_set_error("%s: %s", of.path ? of.path : "standard output", msg);
        }
    }
    if (s == DISTILL_OK) s = out_commit(&of);
    else out_abort(&of);
    if (rd) text_close(rd);
    model_close(&lm);
    return s == DISTILL_OK ? 0 : fail();
}
