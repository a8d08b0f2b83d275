/*
 * bench_bert_forward.c — times the CPU forward of BERT-base and sets it beside OpenBLAS SGEMM on
 * the same GEMM shapes, measured in the same run. A benchmark, not a test (not registered with
 * CTest); scripts/bench_cpu_forward.sh builds and runs it.
 *
 * What it measures: bert_forward (bert_build + bert_init, recording off, eval mode, logits only)
 * at batch B and sequence S, full-length rows; wall time of each forward including the host
 * reading back the logits; median of --runs after --warmup forwards.
 *
 * FLOPs counted (multiply-add = 2), per forward:
 *     L * [ 2*B*S*(4*H*H + 2*H*I)     q, k, v, attention-output and the two FFN GEMMs
 *         + 4*B*S*S*H ]               q k^T and probs v over all heads (2*B*S*S*H each)
 *   + 2*B*H*H + 2*B*H*C               pooler and classifier
 * Elementwise work (embeddings, LayerNorm, GELU, softmax, bias) is not counted.
 *
 * The SGEMM reference runs exactly the GEMMs of one forward with cblas_sgemm on buffers of the
 * same shapes and layouts (weights (out, in), x W^T; per head q_h k_h^T and p_h v_h with the heads
 * read in place at leading dimension H, one call per (batch, head) as the engine's backend does),
 * median of the same number of runs. Its GFLOP/s over the same FLOP count is the ceiling the
 * engine's forward can reach with OpenBLAS; the per-shape lines show where it comes from.
 *
 * Usage: bench_bert_forward [--batch B] [--seq S] [--layers L] [--runs N] [--warmup W]
 *                           [--json-out FILE]   (also write the numbers as one JSON object)
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops.h"
#include "engine/rng.h"
#include "models/bert.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *random_buffer(size_t n, Rng *r) {
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)(rng_next_double(r) - 0.5);
    return p;
}

/* ---------------------------------------------------------------- the SGEMM reference */

typedef struct {
    int BS, H, FF, S, B, nh, d; /* FF: intermediate size (I is complex.h's) */
    float *x, *wq, *q, *k, *v, *ctx, *wi, *inter, *wo, *out, *probs;
} GemmBufs;

/* y (rows, out) = x (rows, in) w^T, w (out, in): the engine's op_linear GEMM. */
static void linear(float *y, const float *x, const float *w, int rows, int out, int in) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
}

static void attention_qk(GemmBufs *g) {
    for (int b = 0; b < g->B; b++)
        for (int h = 0; h < g->nh; h++) /* scores (S, S) = q_h (S, d) k_h^T, lda = H */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->S, g->S, g->d, 1.0f,
                        g->q + (size_t)b * g->S * g->H + (size_t)h * g->d, g->H,
                        g->k + (size_t)b * g->S * g->H + (size_t)h * g->d, g->H, 0.0f,
                        g->probs + ((size_t)b * g->nh + h) * g->S * g->S, g->S);
}

static void attention_pv(GemmBufs *g) {
    for (int b = 0; b < g->B; b++)
        for (int h = 0; h < g->nh; h++) /* ctx_h (S, d) = p_h (S, S) v_h (S, d), ld = H */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->S, g->d, g->S, 1.0f,
                        g->probs + ((size_t)b * g->nh + h) * g->S * g->S, g->S,
                        g->v + (size_t)b * g->S * g->H + (size_t)h * g->d, g->H, 0.0f,
                        g->ctx + (size_t)b * g->S * g->H + (size_t)h * g->d, g->H);
}

/* Every GEMM of one encoder layer, in forward order. */
static void gemm_layer(GemmBufs *g) {
    linear(g->q, g->x, g->wq, g->BS, g->H, g->H);
    linear(g->k, g->x, g->wq, g->BS, g->H, g->H);
    linear(g->v, g->x, g->wq, g->BS, g->H, g->H);
    attention_qk(g);
    attention_pv(g);
    linear(g->out, g->ctx, g->wq, g->BS, g->H, g->H);
    linear(g->inter, g->out, g->wi, g->BS, g->FF, g->H);
    linear(g->out, g->inter, g->wo, g->BS, g->H, g->FF);
}

typedef struct {
    const char *what;
    double flops;
    void (*run)(GemmBufs *);
} Shape;

static void s_hh(GemmBufs *g) { linear(g->q, g->x, g->wq, g->BS, g->H, g->H); }
static void s_ih(GemmBufs *g) { linear(g->inter, g->out, g->wi, g->BS, g->FF, g->H); }
static void s_hi(GemmBufs *g) { linear(g->out, g->inter, g->wo, g->BS, g->H, g->FF); }

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    int B = 8, S = 128, runs = 7, warmup = 2, layers = 12;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seq") && i + 1 < argc) S = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json-out") && i + 1 < argc) json_path = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--batch B] [--seq S] [--layers L] [--runs N] [--warmup W] "
                            "[--json-out FILE]\n", argv[0]);
            return 2;
        }
    }
    if (B < 1 || S < 1 || S > 512 || runs < 1 || warmup < 0 || layers < 0) {
        fprintf(stderr, "distill: error: bench_bert_forward: expected batch >= 1, 1 <= seq <= 512, "
                        "runs >= 1, warmup >= 0, layers >= 0\n");
        return 2;
    }

    BertConfig cfg = bert_config_default(); /* BERT-base: 12 x 768, 12 heads, FFN 3072, vocab 30522 */
    cfg.num_hidden_layers = layers;
    const int H = cfg.hidden_size, FF = cfg.intermediate_size, nh = cfg.num_attention_heads;
    const int C = cfg.num_labels, L = layers;
    const double flops = (double)L * (2.0 * B * S * (4.0 * H * H + 2.0 * H * FF) + 4.0 * B * S * (double)S * H) +
                         2.0 * B * H * H + 2.0 * B * H * C;

    Bert *m = bert_build(&cfg, device_cpu());
    bert_init(m, 1234);
    Rng r = rng_new(99);
    int32_t *ids = xmalloc((size_t)B * S * 4), *types = xmalloc((size_t)B * S * 4), *lengths = xmalloc((size_t)B * 4);
    for (int b = 0; b < B; b++) {
        lengths[b] = S;
        for (int s = 0; s < S; s++) {
            ids[b * S + s] = 1 + (int)rng_next_below(&r, (uint64_t)cfg.vocab_size - 1);
            types[b * S + s] = s >= S / 2;
        }
    }

    Ctx *c = ctx_new(device_cpu(), 1);
    ctx_set_record(c, false);
    c->training = false;
    /* SGEMM reference buffers, same shapes as the forward's operands. */
    GemmBufs g = {B * S, H, FF, S, B, nh, H / nh, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t bsh = (size_t)B * S * H;
    g.x = random_buffer(bsh, &r);
    g.wq = random_buffer((size_t)H * H, &r);
    g.q = random_buffer(bsh, &r);
    g.k = random_buffer(bsh, &r);
    g.v = random_buffer(bsh, &r);
    g.ctx = random_buffer(bsh, &r);
    g.out = random_buffer(bsh, &r);
    g.wi = random_buffer((size_t)FF * H, &r);
    g.wo = random_buffer((size_t)H * FF, &r);
    g.inter = random_buffer((size_t)B * S * FF, &r);
    g.probs = random_buffer((size_t)B * nh * S * S, &r);
    float *pool = random_buffer((size_t)B * H, &r), *pooled = random_buffer((size_t)B * H, &r);
    float *wc = random_buffer((size_t)C * H, &r);

    /* Engine forward and the SGEMM-only pass alternate, iteration by iteration, so a change in
     * machine load hits both medians alike. */
    double *t_engine = xmalloc((size_t)(runs + warmup) * sizeof(double));
    double *t_gemm = xmalloc((size_t)(runs + warmup) * sizeof(double));
    float *logits = xmalloc((size_t)B * C * sizeof(float));
    for (int it = 0; it < warmup + runs; it++) {
        int bs[2] = {B, S}, b1[1] = {B};
        double t0 = now_seconds();
        BertInput in = {ctx_from_host(c, DT_I32, 2, bs, ids), ctx_from_host(c, DT_I32, 2, bs, types),
                        ctx_from_host(c, DT_I32, 1, b1, lengths), lengths};
        BertOutput out;
        bert_forward(c, m, &in, NULL, &out);
        tensor_to_host(out.logits, logits);
        double t1 = now_seconds();
        if (it >= warmup) t_engine[it - warmup] = t1 - t0;
        ctx_reset(c);

        t0 = now_seconds();
        for (int l = 0; l < L; l++) gemm_layer(&g);
        linear(pooled, pool, g.wq, B, H, H);
        linear(logits, pooled, wc, B, C, H);
        t1 = now_seconds();
        if (it >= warmup) t_gemm[it - warmup] = t1 - t0;
    }
    double engine_s = median(t_engine, runs);
    double gemm_s = median(t_gemm, runs);
    size_t arena_mb = c->arena->high_water >> 20;

    Shape shapes[] = {
        {"x W^T  (B*S x H) <- (B*S x H)(H x H)   q/k/v/attn-out", 2.0 * B * S * H * (double)H, s_hh},
        {"x W^T  (B*S x I) <- (B*S x H)(H x I)   FFN in", 2.0 * B * S * H * (double)FF, s_ih},
        {"x W^T  (B*S x H) <- (B*S x I)(I x H)   FFN out", 2.0 * B * S * H * (double)FF, s_hi},
        {"q k^T  B*heads x (S x S) <- (S x d)(d x S)", 2.0 * B * S * (double)S * H, attention_qk},
        {"p v    B*heads x (S x d) <- (S x S)(S x d)", 2.0 * B * S * (double)S * H, attention_pv},
    };
    const int nshape = (int)(sizeof shapes / sizeof shapes[0]);
    double shape_gflops[8];
    for (int si = 0; si < nshape; si++) {
        double ts[16];
        int reps = 9;
        shapes[si].run(&g); /* warm-up */
        for (int k = 0; k < reps; k++) {
            double t0 = now_seconds();
            shapes[si].run(&g);
            ts[k] = now_seconds() - t0;
        }
        shape_gflops[si] = shapes[si].flops / median(ts, reps) / 1e9;
    }

    const double engine_gf = flops / engine_s / 1e9, gemm_gf = flops / gemm_s / 1e9;
    printf("BERT forward, CPU, recording off: batch %d, seq %d, %d layers, hidden %d, %d heads, "
           "FFN %d\n", B, S, L, H, nh, FF);
    printf("threads: OpenMP %d, OpenBLAS %d (%s)\n", omp_get_max_threads(),
           openblas_get_num_threads(), openblas_get_config());
    printf("FLOPs per forward: L*(2*B*S*(4*H^2 + 2*H*I) + 4*B*S^2*H) + 2*B*H^2 + 2*B*H*C "
           "= %.2f GFLOP\n", flops / 1e9);
    printf("engine forward : median %8.2f ms over %d runs (%d warm-up) -> %7.2f GFLOP/s "
           "(arena high water %zu MiB)\n", engine_s * 1e3, runs, warmup, engine_gf, arena_mb);
    printf("OpenBLAS SGEMM : median %8.2f ms for the same GEMMs      -> %7.2f GFLOP/s\n",
           gemm_s * 1e3, gemm_gf);
    printf("engine / SGEMM-only throughput: %.2f\n", engine_gf / gemm_gf);
    for (int si = 0; si < nshape; si++)
        printf("  SGEMM %-56s %7.2f GFLOP/s\n", shapes[si].what, shape_gflops[si]);
    if (json_path) {
        FILE *jf = fopen(json_path, "w");
        if (!jf) {
            fprintf(stderr, "distill: error: %s: cannot open for writing\n", json_path);
            return 1;
        }
        fprintf(jf, "{\"batch\": %d, \"seq\": %d, \"layers\": %d, \"hidden\": %d, \"heads\": %d, "
                    "\"intermediate\": %d, \"runs\": %d, \"warmup\": %d, \"omp_threads\": %d, "
                    "\"openblas_threads\": %d, \"gflop\": %.3f, \"engine_ms\": %.2f, "
                    "\"engine_gflops\": %.2f, \"sgemm_ms\": %.2f, \"sgemm_gflops\": %.2f, "
                    "\"arena_mb\": %zu}\n",
                B, S, L, H, nh, FF, runs, warmup, omp_get_max_threads(), openblas_get_num_threads(),
                flops / 1e9, engine_s * 1e3, engine_gf, gemm_s * 1e3, gemm_gf, arena_mb);
        fclose(jf);
    }

    free(t_engine);
    free(t_gemm);
    free(ids);
    free(types);
    free(lengths);
    free(logits);
    free(pool);
    free(pooled);
    free(wc);
    float *bufs[] = {g.x, g.wq, g.q, g.k, g.v, g.ctx, g.out, g.wi, g.wo, g.inter, g.probs};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    ctx_free(c);
    bert_free(m);
    return 0;
}
