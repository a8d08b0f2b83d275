/*
 * test_onnx_tool.c — the C half of the ONNX tests and of scripts/deploy_report.py: export a model
 * with checkpoints/onnx_export.h, and run the engine's own forward on the same inputs (for the
 * logits comparison and the engine's latency).
 *
 *   test_onnx_tool export SRC OUT.onnx [--opset N] [--fp16] [--num-labels N] [--num-layers K]
 *                  [--vocab-sha256 HEX]
 *       SRC is a Hugging Face folder (hf_load) or a training checkpoint .h5 (ckpt_load_model_only).
 *       Prints one line "exported ..." or "distill: error: ..." (exit 1).
 *   test_onnx_tool ckpt SRC OUT.h5 [--num-labels N] [--num-layers K]
 *       Saves the model of SRC as a training checkpoint (ckpt_save, student only), so a test can
 *       export from a checkpoint.
 *   test_onnx_tool run SRC INPUT OUT.safetensors [--num-labels N] [--num-layers K] [--threads T]
 *                  [--batch-one] [--repeat R]
 *       The engine's forward (eval mode, recording off) on INPUT — text: "B S", B rows of S token
 *       ids, B rows of S token type ids, one row of B lengths (the attention mask is
 *       position < length) — written as safetensors: "logits" (B, C) with a classifier, else
 *       "last_hidden_state" (B, S, H) and "pooler_output" (B, H) when the model has a pooler.
 *       --batch-one runs row by row at batch 1 on the row's own length (a classifier is needed)
 *       and --repeat R times after one warm-up pass; it prints one JSON line: rows, threads,
 *       ms_per_sample (median over rows of the per-row mean), ms_per_sample_mean.
 * Exit codes: 0 success, 1 a reported error, 2 usage.
 */
#include "checkpoints/ckpt.h"
#include "checkpoints/hf.h"
#include "checkpoints/onnx_export.h"
#include "checkpoints/safetensors.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int usage(void) {
    fprintf(stderr, "usage: test_onnx_tool export|ckpt|run ... (see the file's comment)\n");
    return 2;
}

static int fail(void) {
    distill_print_error(distill_error());
    return 1;
}

typedef struct {
    int num_labels, num_layers, threads, repeat, opset;
    bool fp16, batch_one;
    const char *vocab_sha256;
} Opts;

static int parse_opts(int argc, char **argv, int first, Opts *o) {
    *o = (Opts){.num_labels = -1, .threads = 0, .repeat = 1};
    for (int i = first; i < argc; i++) {
        const char *k = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(k, "--fp16")) o->fp16 = true;
        else if (!strcmp(k, "--batch-one")) o->batch_one = true;
        else if (!strcmp(k, "--num-labels") && has) o->num_labels = atoi(argv[++i]);
        else if (!strcmp(k, "--num-layers") && has) o->num_layers = atoi(argv[++i]);
        else if (!strcmp(k, "--threads") && has) o->threads = atoi(argv[++i]);
        else if (!strcmp(k, "--repeat") && has) o->repeat = atoi(argv[++i]);
        else if (!strcmp(k, "--opset") && has) o->opset = atoi(argv[++i]);
        else if (!strcmp(k, "--vocab-sha256") && has) o->vocab_sha256 = argv[++i];
        else return -1;
    }
    return o->repeat >= 1 ? 0 : -1;
}

/* A folder through hf_load, a file through ckpt_load_model_only (the student). */
static Status load_model(const char *src, const Opts *o, Bert **out) {
    struct stat st;
    if (stat(src, &st) != 0) {
        distill_set_error("%s: expected a Hugging Face folder or a training checkpoint, found "
                          "nothing there", src);
        return DISTILL_ERR;
    }
    if (S_ISDIR(st.st_mode)) {
        HfLoadOptions ho = hf_load_defaults();
        ho.num_labels = o->num_labels;
        ho.num_layers = o->num_layers;
        ho.quiet = true;
        return hf_load(src, device_cpu(), &ho, out, NULL);
    }
    TrainCheckpoint ck;
    if (ckpt_load_model_only(src, device_cpu(), &ck)) return DISTILL_ERR;
    *out = ck.student;
    ck.student = NULL;
    ckpt_free(&ck);
    return DISTILL_OK;
}

static int cmd_export(int argc, char **argv) {
    Opts o;
    if (argc < 4 || parse_opts(argc, argv, 4, &o)) return usage();
    Bert *m;
    if (load_model(argv[2], &o, &m)) return fail();
    OnnxExportOptions eo = onnx_export_defaults();
    eo.opset = o.opset;
    eo.fp16 = o.fp16;
    eo.vocab_sha256 = o.vocab_sha256;
    eo.source = argv[2];
    Status s = onnx_export(m, argv[3], &eo);
    if (s == DISTILL_OK)
        printf("exported %s -> %s (%d layers, hidden %d, %d labels, %s)\n", argv[2], argv[3],
               m->cfg.num_hidden_layers, m->cfg.hidden_size, m->cfg.num_labels,
               o.fp16 ? "fp16" : "fp32");
    bert_free(m);
    return s ? fail() : 0;
}

static bool read_ints(FILE *fp, int32_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fscanf(fp, "%d", &dst[i]) != 1) return false;
    return true;
}

typedef struct {
    int B, S;
    int32_t *ids, *types, *lengths; /* (B, S), (B, S), (B) */
} Batch;

static int read_batch(const char *path, Batch *b) {
    FILE *fp = fopen(path, "r");
    if (!fp || fscanf(fp, "%d %d", &b->B, &b->S) != 2 || b->B < 1 || b->S < 1) {
        fprintf(stderr, "test_onnx_tool: %s: expected \"B S\" first\n", path);
        if (fp) fclose(fp);
        return 2;
    }
    size_t n = (size_t)b->B * b->S;
    b->ids = xmalloc(n * sizeof *b->ids);
    b->types = xmalloc(n * sizeof *b->types);
    b->lengths = xmalloc((size_t)b->B * sizeof *b->lengths);
    bool ok = read_ints(fp, b->ids, n) && read_ints(fp, b->types, n) &&
              read_ints(fp, b->lengths, (size_t)b->B);
    fclose(fp);
    for (int i = 0; ok && i < b->B; i++) ok = b->lengths[i] >= 1 && b->lengths[i] <= b->S;
    if (!ok) {
        fprintf(stderr, "test_onnx_tool: %s: expected %d x %d ids, types, then %d lengths in "
                "[1, %d]\n", path, b->B, b->S, b->B, b->S);
        return 2;
    }
    return 0;
}

/* One forward of rows [r0, r0 + nb) cut to S columns; returns the outputs (in c's arena). */
static void forward(Ctx *c, Bert *m, const Batch *b, int r0, int nb, int S, BertOutput *out) {
    int32_t *ids = xmalloc((size_t)nb * S * sizeof *ids), *types = xmalloc((size_t)nb * S * sizeof *types);
    for (int r = 0; r < nb; r++) {
        memcpy(ids + (size_t)r * S, b->ids + (size_t)(r0 + r) * b->S, (size_t)S * sizeof *ids);
        memcpy(types + (size_t)r * S, b->types + (size_t)(r0 + r) * b->S, (size_t)S * sizeof *types);
    }
    int bs[2] = {nb, S}, b1[1] = {nb};
    BertInput in = {
        .input_ids = ctx_from_host(c, DT_I32, 2, bs, ids),        /* (nb, S) */
        .token_type_ids = ctx_from_host(c, DT_I32, 2, bs, types), /* (nb, S) */
        .lengths = ctx_from_host(c, DT_I32, 1, b1, b->lengths + r0), /* (nb) */
        .lengths_host = b->lengths + r0,
    };
    BertRequest req = {.want_pooled = m->cfg.has_pooler};
    bert_forward(c, m, &in, &req, out);
    free(ids);
    free(types);
}

static float *to_host(const Tensor *t) {
    float *h = xmalloc(t->numel * sizeof *h);
    tensor_to_host(t, h);
    return h;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_run(int argc, char **argv) {
    Opts o;
    if (argc < 5 || parse_opts(argc, argv, 5, &o)) return usage();
    Batch b;
    int rc = read_batch(argv[3], &b);
    if (rc) return rc;
    if (o.threads > 0) {
        omp_set_num_threads(o.threads);
        openblas_set_num_threads(o.threads);
    }
    Bert *m;
    if (load_model(argv[2], &o, &m)) return fail();
    Ctx *c = ctx_new(device_cpu(), 1);
    c->record = false;
    c->training = false;
    StWriteTensor w[2];
    float *keep[2] = {NULL, NULL};
    int nw = 0;
    const int C = m->cfg.num_labels, H = m->cfg.hidden_size;
    if (o.batch_one) {
        if (C == 0) {
            fprintf(stderr, "test_onnx_tool: --batch-one needs a model with a classifier\n");
            return 2;
        }
        float *logits = xmalloc((size_t)b.B * C * sizeof *logits);
        double *ms = xmalloc((size_t)b.B * sizeof *ms);
        double total = 0;
        for (int pass = 0; pass <= o.repeat; pass++) { /* pass 0 warms up */
            for (int r = 0; r < b.B; r++) {
                BertOutput out;
                double t0 = now_seconds();
                forward(c, m, &b, r, 1, b.lengths[r], &out);
                tensor_to_host(out.logits, logits + (size_t)r * C); /* waits for the result */
                double dt = now_seconds() - t0;
                ctx_reset(c);
                if (pass == 0) ms[r] = 0;
                else ms[r] += 1e3 * dt / o.repeat, total += 1e3 * dt;
            }
        }
        double mean = total / ((double)o.repeat * b.B);
        qsort(ms, (size_t)b.B, sizeof *ms, cmp_double);
        printf("{\"rows\": %d, \"threads\": %d, \"ms_per_sample\": %.4f, "
               "\"ms_per_sample_mean\": %.4f}\n", b.B, o.threads, ms[b.B / 2], mean);
        w[nw++] = (StWriteTensor){.name = "logits", .ndim = 2, .shape = {b.B, C}, .data = logits};
        keep[0] = logits;
        free(ms);
    } else {
        BertOutput out;
        forward(c, m, &b, 0, b.B, b.S, &out);
        if (C > 0) {
            keep[0] = to_host(out.logits);
            w[nw++] = (StWriteTensor){.name = "logits", .ndim = 2, .shape = {b.B, C}, .data = keep[0]};
        } else {
            keep[0] = to_host(out.sequence);
            w[nw++] = (StWriteTensor){.name = "last_hidden_state", .ndim = 3,
                                      .shape = {b.B, b.S, H}, .data = keep[0]};
            if (out.pooled) {
                keep[1] = to_host(out.pooled);
                w[nw++] = (StWriteTensor){.name = "pooler_output", .ndim = 2, .shape = {b.B, H},
                                          .data = keep[1]};
            }
        }
    }
    rc = st_write_f32(argv[4], w, nw, NULL, 0) ? fail() : 0;
    free(keep[0]);
    free(keep[1]);
    ctx_free(c);
    bert_free(m);
    free(b.ids);
    free(b.types);
    free(b.lengths);
    return rc;
}

static int cmd_ckpt(int argc, char **argv) {
    Opts o;
    if (argc < 4 || parse_opts(argc, argv, 4, &o)) return usage();
    Bert *m;
    if (load_model(argv[2], &o, &m)) return fail();
    TrainCheckpoint ck;
    ckpt_init(&ck);
    ck.student = m;
    Status s = ckpt_save(argv[3], &ck);
    bert_free(m);
    return s ? fail() : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    if (!strcmp(argv[1], "export")) return cmd_export(argc, argv);
    if (!strcmp(argv[1], "run")) return cmd_run(argc, argv);
    if (!strcmp(argv[1], "ckpt")) return cmd_ckpt(argc, argv);
    return usage();
}
