/*
 * cmd_eval.c — `distill eval`: accuracy, F1 (of class 1 for two classes, macro-F1 for more) and
 * MCC of a model on a prepared file, with per-class counts, precision, recall and F1 in --json, and
 * its inference latency per sample at batch 1 and batch 32.
 *
 * Latency is measured on the file's own rows (the first rows, in order, dynamic padding as in
 * training), tape off, dropout off, after one warm-up pass; the figure is the median over
 * repetitions of (wall time of the batch forward) / (rows in the batch). `--random L,H,A,I` times
 * a randomly initialised model of that shape (e.g. BERT-base 12,768,12,3072) instead: for latency
 * only, its accuracy is meaningless and not printed.
 *
 * Inputs are checked as training checks them, before anything runs (exit 1, nothing written):
 * a model needs labels in the file and a classifier (else no metric can be computed); the file's
 * vocabulary hash must be the model's (--allow-vocab-mismatch overrides: the ids would mean other
 * words); every row must fit the model's position table, or `--max-seq N` cuts the longer rows
 * (longest segment first, [SEP]s kept, as `distill prepare --max-seq N` cuts) and the report
 * says how many. The report also says how many rows `distill prepare` truncated (the file's
 * truncated_rows attribute; older files: the rows at max_seq, an upper bound).
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../data/loader.h"
#include "../data/tokenizer.h"
#include "../engine/ops.h"
#include "cli.h"
#include "model_io.h"
#include "runtime.h"
#include "trainer.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds per sample of forwards at batch `bs` over the first rows of ds. */
static double time_latency(Ctx *c, Bert *m, const Dataset *ds, int bs, int rows, int reps) {
    LoaderOptions lo = {.batch_size = bs, .rank = 0, .world = 1, .seed = 0, .shuffle = false, .drop_last = false};
    Loader *ld;
    if (loader_new(&ld, ds, &lo) != DISTILL_OK) return NAN;
    int nb = (rows + bs - 1) / bs;
    if (nb > loader_steps_per_epoch(ld)) nb = (int)loader_steps_per_epoch(ld);
    double *samples = xmalloc((size_t)(nb * reps + 1) * sizeof(double));
    int ns = 0;
    bool old = ctx_set_record(c, false);
    c->training = false;
    for (int rep = -1; rep < reps; rep++) { /* rep -1: warm-up */
        LoaderCursor start = {0, 0};
        loader_seek(ld, start);
        for (int i = 0; i < nb; i++) {
            Batch b;
            loader_next(ld, &b);
            if (b.rows == 0) continue;
            ctx_reset(c);
            double t0 = now_seconds();
            BertInput in;
            batch_to_input(c, &b, &in);
            BertRequest req = {0};
            BertOutput o;
            bert_forward(c, m, &in, &req, &o);
            (void)o;
            ctx_sync(c); /* waits for the device */
            double dt = now_seconds() - t0;
            if (rep >= 0) samples[ns++] = dt / b.rows;
        }
    }
    ctx_reset(c);
    ctx_set_record(c, old);
    loader_free(ld);
    qsort(samples, (size_t)ns, sizeof *samples, cmp_double);
    double med = ns ? samples[ns / 2] : NAN;
    free(samples);
    return med;
}

/* A class's name as a JSON string (escaped by cJSON), or null when the file names no classes. */
static void json_label(const char *name) {
    cJSON *j = name ? cJSON_CreateString(name) : NULL;
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(text ? text : "null", stdout);
    cJSON_free(text);
    cJSON_Delete(j);
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Rows `distill prepare` truncated: the truncated_rows attribute (*exact true); files written
 * before it was recorded: the rows at max_seq, an upper bound (*exact false). */
static int64_t prepare_truncated(const Dataset *ds, bool *exact) {
    long long v = ds->truncated_rows;
    *exact = v >= 0;
    if (v >= 0) return (int64_t)v;
    int64_t full = 0;
    for (int64_t i = 0; i < ds->rows; i++) full += ds->lengths[i] == ds->max_seq;
    return full;
}

static int longest_row(const Dataset *ds) {
    int n = 0;
    for (int64_t i = 0; i < ds->rows; i++) n = ds->lengths[i] > n ? ds->lengths[i] : n;
    return n;
}

/* Cuts, in place, every row longer than n tokens to n, as the tokenizer truncates (tokenizers'
 * LongestFirst over the two segments, data/tokenizer.c), keeping [CLS] and the [SEP]s: a row is
 * [CLS] a [SEP] or [CLS] a [SEP] b [SEP], the segments told apart by the token types. A row that
 * `prepare` already truncated with a pair can differ by one token between its two segments from
 * what `prepare --max-seq n` would give (the kept lengths, not the originals, are cut). n >= 3.
 * Returns the rows cut; ds->max_seq becomes n. */
static int64_t cut_rows(Dataset *ds, int n) {
    int32_t *ids = xmalloc((size_t)ds->max_seq * sizeof *ids);
    uint8_t *types = xmalloc((size_t)ds->max_seq);
    int64_t cut = 0, w = 0;
    for (int64_t r = 0; r < ds->rows; r++) {
        int L = ds->lengths[r];
        const int64_t at = ds->offsets[r];
        memcpy(ids, ds->ids + at, (size_t)L * sizeof *ids);
        memcpy(types, ds->types + at, (size_t)L);
        ds->offsets[r] = w;
        if (L <= n) {
            memmove(ds->ids + w, ids, (size_t)L * sizeof *ids);
            memmove(ds->types + w, types, (size_t)L);
            w += L;
            continue;
        }
        int t1 = 0;
        for (int j = 0; j < L; j++) t1 += types[j] != 0;
        bool pair = t1 > 0;
        int n1 = L - t1 - 2, n2 = pair ? t1 - 1 : 0, budget = n - (pair ? 3 : 2);
        int k1 = n1, k2 = n2;
        if (!pair) {
            k1 = budget;
        } else { /* tokenizers' LongestFirst, as tokenizer_encode */
            tokenizer_truncate_pair(&k1, &k2, budget);
        }
        int32_t *oi = ds->ids + w;
        uint8_t *ot = ds->types + w;
        int k = 0;
        oi[k] = ids[0], ot[k++] = 0;                                /* [CLS] */
        for (int j = 0; j < k1; j++) oi[k] = ids[1 + j], ot[k++] = 0;
        oi[k] = ids[1 + n1], ot[k++] = 0;                           /* [SEP] */
        if (pair) {
            for (int j = 0; j < k2; j++) oi[k] = ids[2 + n1 + j], ot[k++] = types[2 + n1 + j];
            oi[k] = ids[L - 1], ot[k++] = types[L - 1];             /* [SEP] */
        }
        ds->lengths[r] = k;
        w += k;
        cut++;
    }
    ds->offsets[ds->rows] = w;
    ds->max_seq = n;
    free(ids);
    free(types);
    return cut;
}

/* The SHA-256 of the model's vocabulary, as `distill prepare` records it for a data file
 * (tokenizer_vocab_sha256), and its token count. DISTILL_ERR when the model has none. */
static Status model_vocab_sha(const LoadedModel *lm, char out[65], int *ntok) {
    Tokenizer *t = NULL;
    TokenizerOptions to = tokenizer_default_options();
    Status st = DISTILL_ERR;
    if (lm->vocab_path[0]) st = tokenizer_load(&t, lm->vocab_path, &to);
    else if (lm->n_vocab > 0) st = tokenizer_from_tokens(&t, (const char *const *)lm->vocab, lm->n_vocab, &to);
    if (st != DISTILL_OK) return DISTILL_ERR;
    memcpy(out, tokenizer_vocab_sha256(t), 65);
    *ntok = tokenizer_vocab_size(t);
    tokenizer_free(t);
    return DISTILL_OK;
}

/* The checks a model's evaluation needs (see the top of the file); `lm` NULL for --random. */
static Status check_inputs(const LoadedModel *lm, const Bert *m, const Dataset *ds, const char *model_name,
                           bool allow_vocab) {
    if (lm && m->cfg.num_labels < 1) {
        distill_set_error("eval: %s has no classifier (a BertModel: embeddings only): no metrics can be computed "
                          "(distill predict --output embedding runs it)", model_name);
        return DISTILL_ERR;
    }
    if (lm) {
        char sha[65];
        int ntok = 0;
        if (model_vocab_sha(lm, sha, &ntok) != DISTILL_OK) {
            fprintf(stderr, "distill: warning: %s has no readable vocabulary: cannot check that %s was prepared "
                            "with it\n", model_name, ds->path);
        } else if (strcmp(sha, ds->vocab_sha256) != 0) {
            if (!allow_vocab) {
                distill_set_error("eval: %s was prepared with another vocabulary than the model's: data %d tokens, "
                                  "sha256 %s; model %s: %d tokens, sha256 %s. The same ids would mean other "
                                  "words; prepare the data again with the model's vocabulary, or pass "
                                  "--allow-vocab-mismatch to score it anyway",
                                  ds->path, ds->vocab_size, ds->vocab_sha256, model_name, ntok, sha);
                return DISTILL_ERR;
            }
            fprintf(stderr, "distill: warning: %s was prepared with another vocabulary (sha256 %.12s...) than %s's "
                            "(sha256 %.12s...); scoring it anyway (--allow-vocab-mismatch)\n",
                    ds->path, ds->vocab_sha256, model_name, sha);
        }
    }
    if (ds->vocab_size > m->cfg.vocab_size) {
        distill_set_error("eval: %s holds token ids up to %d but %s has only %d rows in its word embedding",
                          ds->path, ds->vocab_size - 1, model_name, m->cfg.vocab_size);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}


/* A positive integer option value; -1 when malformed. */
static int parse_count(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    return end == s || *end || v < 1 || v > (1 << 24) ? -1 : (int)v;
}

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *data_path = NULL, *random_shape = NULL, *device_name = "cpu";
    int batch = 32, latency_rows = 64, threads = 0, max_seq = 0;
    bool latency = true, json = false, allow_vocab = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return help_eval(stdout, 0);
        if (!strcmp(a, "--no-latency")) {
            latency = false;
            continue;
        }
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(a, "--allow-vocab-mismatch")) {
            allow_vocab = true;
            continue;
        }
        static const char *const with_value[] = {"--model", "--random", "--data", "--batch-size", "--latency-rows",
                                                 "--threads", "--device", "--max-seq"};
        bool known = false;
        for (size_t j = 0; j < sizeof with_value / sizeof with_value[0]; j++) known |= !strcmp(a, with_value[j]);
        if (!known) {
            fprintf(stderr, "distill: error: eval: unexpected argument '%s'\n(see distill eval --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "distill: error: eval: %s needs a value\n(see distill eval --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--random")) random_shape = v;
        else if (!strcmp(a, "--data")) data_path = v;
        else if (!strcmp(a, "--device")) device_name = v;
        else {
            int n = parse_count(v);
            if (n < 0 || (!strcmp(a, "--max-seq") && n < 3)) {
                fprintf(stderr, "distill: error: eval: %s: expected %s, found '%s'\n", a,
                        !strcmp(a, "--max-seq") ? "an integer of at least 3 ([CLS] a [SEP] b [SEP])"
                                                : "a positive integer", v);
                return 2;
            }
            if (!strcmp(a, "--batch-size")) batch = n;
            else if (!strcmp(a, "--latency-rows")) latency_rows = n;
            else if (!strcmp(a, "--threads")) threads = n;
            else max_seq = n;
        }
    }
    if ((!model_path) == (!random_shape)) {
        fprintf(stderr, "distill: error: eval: give the model: --model DIR|CKPT.h5 or --random L,H,A,I (one of "
                        "them)\n(see distill eval --help)\n");
        return 2;
    }
    if (!data_path) {
        fprintf(stderr, "distill: error: eval: --data FILE.h5 is required\n(see distill eval --help)\n");
        return 2;
    }
    runtime_set_threads(threads);
    Device dev;
    if (runtime_pick_device(device_name, &dev) != DISTILL_OK) {
        distill_print_error(distill_error());
        return 1;
    }
    Dataset *ds = NULL;
    LoadedModel lm;
    memset(&lm, 0, sizeof lm);
    Bert *m = NULL;
    int rc = 1;
    if (dataset_open(&ds, data_path, true) != DISTILL_OK) goto done;
    if (model_path && ds->label_kind == LABELS_NONE) {
        distill_set_error("eval: %s has no labels (prepared with --no-label?): no metrics can be computed "
                          "(prepare it with its label column; `distill eval --random L,H,A,I` times latency "
                          "without labels)", data_path);
        goto done;
    }
    long long size_bytes = -1;
    if (model_path) {
        ModelOpenOptions mo = {.device = dev, .quiet = true, .need_tokenizer = false};
        if (model_open(model_path, &mo, &lm) != DISTILL_OK) goto done;
        m = lm.model;
        char p[4200];
        snprintf(p, sizeof p, "%s/model.safetensors", model_path);
        size_bytes = file_size(p);
        if (size_bytes < 0) size_bytes = file_size(model_path);
    } else {
        int L, H, A, I;
        if (sscanf(random_shape, "%d,%d,%d,%d", &L, &H, &A, &I) != 4 || L < 1 || H < 1 || A < 1 || I < 1 || H % A) {
            distill_set_error("--random: expected L,H,A,I (layers, hidden, heads, FFN; heads divide hidden), found '%s'",
                              random_shape);
            goto done;
        }
        BertConfig c = bert_config_default();
        c.num_hidden_layers = L;
        c.hidden_size = H;
        c.num_attention_heads = A;
        c.intermediate_size = I;
        c.vocab_size = ds->vocab_size;
        c.num_labels = ds->label_kind == LABELS_REGRESSION ? 1 : (ds->num_labels > 1 ? ds->num_labels : 2);
        m = bert_build(&c, dev);
        bert_init(m, 1234);
        size_bytes = (long long)bert_config_param_count(&c) * 4; /* what an F32 safetensors holds */
    }
    if (check_inputs(model_path ? &lm : NULL, m, ds, model_path ? model_path : random_shape, allow_vocab) != DISTILL_OK)
        goto done;
    const int positions = m->cfg.max_position_embeddings, longest = longest_row(ds);
    if (max_seq > positions) {
        distill_set_error("eval: --max-seq %d: expected at most %s's %d positions (max_position_embeddings)", max_seq,
                          model_path ? model_path : random_shape, positions);
        goto done;
    }
    if (!max_seq && longest > positions) {
        distill_set_error("eval: %s has rows of up to %d tokens but %s has only %d positions "
                          "(max_position_embeddings): pass --max-seq %d to cut the longer rows, or prepare the "
                          "data with --max-seq %d", data_path, longest, model_path ? model_path : random_shape,
                          positions, positions, positions);
        goto done;
    }
    bool trunc_exact;
    const int64_t truncated = prepare_truncated(ds, &trunc_exact);
    const int file_max_seq = ds->max_seq;
    int64_t cut = max_seq && longest > max_seq ? cut_rows(ds, max_seq) : 0;
    Ctx *c = ctx_new(dev, 0);
    MetricValues v;
    memset(&v, 0, sizeof v);
    bool have_metrics = model_path != NULL; /* labels and classifier checked above */
    if (have_metrics && evaluate_model(c, m, ds, batch, &v) != DISTILL_OK) {
        ctx_free(c);
        goto done;
    }
    double lat1 = NAN, lat32 = NAN;
    if (latency) {
        lat1 = time_latency(c, m, ds, 1, latency_rows, 3);
        lat32 = time_latency(c, m, ds, 32, 4 * 32, 3);
    }
    ctx_free(c);
    size_t nparams = params_count(m->params, "");
    if (json) {
        printf("{\"model\":\"%s\",\"data\":\"%s\",\"rows\":%lld,\"parameters\":%zu,\"file_bytes\":%lld,"
               "\"layers\":%d,\"hidden\":%d,\"heads\":%d,\"intermediate\":%d,\"threads\":%d",
               model_path ? model_path : random_shape, data_path, (long long)ds->rows, nparams, size_bytes,
               m->cfg.num_hidden_layers, m->cfg.hidden_size, m->cfg.num_attention_heads, m->cfg.intermediate_size,
               runtime_threads());
        if (have_metrics && m->cfg.num_labels == 1)
            printf(",\"loss\":%.6g,\"mse\":%.6g,\"pearson\":%.6g,\"spearman\":%.6g", v.loss, v.mse, v.pearson, v.spearman);
        else if (have_metrics) {
            printf(",\"loss\":%.6g,\"accuracy\":%.6g,\"%s\":%.6g,\"mcc\":%.6g,\"per_class\":[", v.loss, v.accuracy,
                   metrics_f1_name(v.num_classes), v.f1, v.mcc);
            for (int k = 0; k < v.num_classes; k++) {
                const ClassMetrics *pc = &v.per_class[k];
                printf("%s{\"class\":%d,\"label\":", k ? "," : "", k);
                json_label(k < ds->n_label_names && ds->label_names ? ds->label_names[k] : NULL);
                printf(",\"support\":%lld,\"predicted\":%lld,\"tp\":%lld,\"precision\":%.6g,\"recall\":%.6g,"
                       "\"f1\":%.6g}", pc->support, pc->predicted, pc->tp, pc->precision, pc->recall, pc->f1);
            }
            printf("]");
        }
        printf(",\"max_seq\":%d,\"truncated_rows\":%lld,\"truncated_rows_exact\":%s,\"cut_rows\":%lld", ds->max_seq,
               (long long)truncated, trunc_exact ? "true" : "false", (long long)cut);
        if (latency) printf(",\"latency_ms_b1\":%.4f,\"latency_ms_b32\":%.4f", lat1 * 1e3, lat32 * 1e3);
        printf("}\n");
    } else {
        char b[32];
        printf("model      %s (%d layers, hidden %d, %d heads, FFN %d; %s parameters)\n",
               model_path ? model_path : random_shape, m->cfg.num_hidden_layers, m->cfg.hidden_size,
               m->cfg.num_attention_heads, m->cfg.intermediate_size, fmt_count(nparams, b, sizeof b));
        printf("data       %s (%lld rows, max_seq %d; %s%lld truncated by distill prepare%s", data_path,
               (long long)ds->rows, file_max_seq, trunc_exact ? "" : "at most ", (long long)truncated,
               trunc_exact ? "" : ": the rows at max_seq, the file does not record it");
        if (max_seq) printf("; %lld cut to --max-seq %d", (long long)cut, max_seq);
        printf(")\n");
        if (have_metrics && m->cfg.num_labels == 1)
            printf("loss %.4f  mse %.4f  pearson %.4f  spearman %.4f\n", v.loss, v.mse, v.pearson, v.spearman);
        else if (have_metrics)
            printf("loss %.4f  accuracy %.4f  %s %.4f  mcc %.4f\n", v.loss, v.accuracy, metrics_f1_name(v.num_classes),
                   v.f1, v.mcc);
        if (latency)
            printf("latency per sample (%d threads): batch 1 %.3f ms, batch 32 %.3f ms\n", runtime_threads(),
                   lat1 * 1e3, lat32 * 1e3);
    }
    rc = 0;
done:
    if (rc) distill_print_error(distill_error());
    if (model_path) model_close(&lm);
    else bert_free(m);
    dataset_free(ds);
    return rc;
}
