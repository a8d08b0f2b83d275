/*
 * test_ops_core.c — engine checks beyond single ops (run from test_ops.c's main): the CPU backend
 * table is complete and aligned; AdamW matches torch.optim.AdamW's update in f64; the reduction
 * kernels give the same bits at 1 and 3 threads; ctx_reset + re-run of a small network reproduces
 * its loss and gradients bitwise; misuse (bad shapes, a missing kernel, bad ids, wrong dtype)
 * aborts with a message naming the op.
 */
#include "op_check.h"
#include "engine/optim.h"
#include "engine/params.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- determinism */

/* A small network through most ops; returns the loss, gradients into ps->grad. */
static float tiny_step(Ctx *c, ParamStore *ps, Tensor *ids, Tensor *lens, Tensor *mask,
                       Tensor *labels, Tensor *teacher) {
    ctx_reset(c);
    c->rng_counter = 0;
    c->training = true;
    c->record = true;
    params_zero_grad(ps);
    const int heads = 3;
    Tensor *h = op_embedding(c, params_find(ps, "emb"), ids);                 /* (2, 5, 12) */
    h = op_layernorm(c, h, params_find(ps, "ln.g"), params_find(ps, "ln.b"), 1e-12f);
    h = op_dropout(c, h, 0.1f);
    Tensor *q = op_linear(c, h, params_find(ps, "q.w"), params_find(ps, "q.b"));
    Tensor *k = op_linear(c, h, params_find(ps, "k.w"), params_find(ps, "k.b"));
    Tensor *sc = op_attention_qk(c, q, k, heads);                             /* (2, 3, 5, 5) */
    Tensor *p = op_scale_mask_softmax(c, sc, mask, 0.5f);
    Tensor *ctxv = op_attention_pv(c, p, h, heads);                          /* (2, 5, 12) */
    Tensor *f = op_linear_gelu(c, ctxv, params_find(ps, "f.w"), params_find(ps, "f.b"));
    h = op_add_layernorm(c, op_linear(c, f, params_find(ps, "o.w"), NULL), h,
                         params_find(ps, "ln.g"), params_find(ps, "ln.b"), 1e-12f);
    Tensor *pooled = op_tanh(c, op_take_token(c, h, 0));                      /* (2, 12) */
    Tensor *mp = op_mean_pool(c, h, lens);
    Tensor *logits = op_linear(c, op_add(c, pooled, mp), params_find(ps, "c.w"), NULL); /* (2, 3) */
    Tensor *loss = op_add(c, op_cross_entropy(c, logits, labels),
                          op_scale(c, op_kl_logits(c, logits, teacher, 2.0f), 4.0f));
    loss = op_add(c, loss, op_mse_ignore(c, sc, op_scale(c, sc, 0.5f), -100.0f));
    ctx_backward(c, loss);
    return op_item(loss);
}

static void test_reproducible(void) {
    const char *op = "ctx_reset + re-run";
    ParamStore *ps = params_new(device_cpu());
    params_add(ps, "emb", 2, (int[]){11, 12}, false);
    params_add(ps, "ln.g", 1, (int[]){12}, true);
    params_add(ps, "ln.b", 1, (int[]){12}, true);
    params_add(ps, "q.w", 2, (int[]){12, 12}, false);
    params_add(ps, "q.b", 1, (int[]){12}, true);
    params_add(ps, "k.w", 2, (int[]){12, 12}, false);
    params_add(ps, "k.b", 1, (int[]){12}, true);
    params_add(ps, "f.w", 2, (int[]){37, 12}, false);
    params_add(ps, "f.b", 1, (int[]){37}, true);
    params_add(ps, "o.w", 2, (int[]){12, 37}, false);
    params_add(ps, "c.w", 2, (int[]){3, 12}, false);
    params_finalize(ps);
    for (size_t i = 0; i < ps->total; i++) ps->data[i] = (float)(rng_next_double(&g_rng) - 0.5);
    int32_t idv[10] = {1, 4, 2, 9, 10, 0, 3, 3, 7, 0}, lenv[2] = {5, 3}, labv[2] = {2, 0};
    float maskv[10] = {0, 0, 0, 0, 0, 0, 0, 0, -10000, -10000};
    Tensor *ids = mk_i32(2, (int[]){2, 5}, idv), *lens = mk_i32(1, (int[]){2}, lenv);
    Tensor *labels = mk_i32(1, (int[]){2}, labv);
    Tensor *mask = ctx_from_host(g_in, DT_F32, 2, (int[]){2, 5}, maskv);
    Tensor *teacher = mk(2, (int[]){2, 3}, -2, 2, false);
    Ctx *c = ctx_new(device_cpu(), 42);
    size_t gbytes = ps->total * sizeof(float);
    float *g1 = xmalloc(gbytes);
    float l1 = tiny_step(c, ps, ids, lens, mask, labels, teacher);
    memcpy(g1, ps->grad, gbytes);
    float l2 = tiny_step(c, ps, ids, lens, mask, labels, teacher);
    expect_bitwise(op, "loss bitwise identical", &l1, &l2, sizeof l1);
    expect_bitwise(op, "parameter gradients bitwise identical", g1, ps->grad, gbytes);
    double gn = c->be->sumsq(ps->grad, ps->total);
    expect(isfinite(l1) && gn > 0 && isfinite(gn), op, "finite loss, nonzero gradients");
    /* a training step's way to the norm (sumsq_to into a buffer, read back with its other sums)
     * gives grad_global_norm's bits; a NULL store is skipped by both */
    ParamStore *stores[2] = {ps, NULL};
    double parts[2] = {-1.0, -1.0};
    grad_sumsq_to(stores, 2, parts);
    double norm_a = grad_global_norm(stores, 2), norm_b = grad_norm_from_parts(stores, 2, parts);
    expect_bitwise(op, "grad_norm_from_parts(grad_sumsq_to) is grad_global_norm bitwise", &norm_a, &norm_b,
                   sizeof norm_a);
    ctx_free(c);
    free(g1);
    params_free(ps);
}

/* Kernels whose results must not depend on the thread count (fixed-chunk reductions). */
static void run_thread_kernels(const Backend *be, int threads, float *outs, size_t rows, int cols,
                               const float *x, const float *g, const float *w, double *ss) {
    omp_set_num_threads(threads);
    size_t n = rows * cols;
    float *o = outs;
    float *mean = xcalloc(rows, sizeof(float)), *rstd = xcalloc(rows, sizeof(float));
    memset(outs, 0, (6 * n + 8 * cols + 4) * sizeof(float));
    be->layernorm_fwd(o, mean, rstd, x, w, w, (int)rows, cols, 1e-5f);
    be->layernorm_bwd(o + n, o + 2 * n, o + 2 * n + cols, g, x, mean, rstd, w, (int)rows, cols);
    be->bias_bwd(o + 2 * n + 2 * cols, g, (int)rows, cols);
    be->gelu_bwd(o + 2 * n + 3 * cols, o + 3 * n + 3 * cols, g, x, w, (int)rows, cols);
    be->softmax_fwd(o + 3 * n + 4 * cols, x, rows, cols);
    be->mse_fwd(o + 4 * n + 4 * cols, x, g, -INFINITY, n);
    be->xent_fwd(o + 4 * n + 4 * cols + 1, o + 4 * n + 4 * cols + 2, x, NULL, o + 3 * n + 4 * cols,
                 0.5f, 1, (int)rows, cols);
    int32_t ids[64];
    for (int i = 0; i < 64; i++) ids[i] = (i * 7) % 5;
    be->embedding_bwd(o + 5 * n + 4 * cols + 2, g, ids, -1, 64, cols); /* rows >= 64 */
    *ss = be->sumsq(x, n);
    free(mean);
    free(rstd);
}

static void test_thread_independence(void) {
    const char *op = "cpu kernels";
    const Backend *be = backend_cpu();
    size_t rows = 301;
    int cols = 37;
    size_t n = rows * cols, total = 6 * n + 8 * cols + 4;
    float *x = xmalloc(n * sizeof(float)), *g = xmalloc(n * sizeof(float)), *w = xmalloc(cols * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(rng_next_double(&g_rng) * 4 - 2), g[i] = (float)(rng_next_double(&g_rng) - 0.5);
    for (int i = 0; i < cols; i++) w[i] = (float)(rng_next_double(&g_rng) + 0.5);
    float *a = xmalloc(total * sizeof(float)), *b = xmalloc(total * sizeof(float));
    double sa, sb;
    int saved = omp_get_max_threads();
    run_thread_kernels(be, 1, a, rows, cols, x, g, w, &sa);
    run_thread_kernels(be, 3, b, rows, cols, x, g, w, &sb);
    omp_set_num_threads(saved);
    expect_bitwise(op, "same bits at 1 and 3 threads (reductions, losses)", a, b, total * sizeof(float));
    expect_bitwise(op, "sumsq same bits at 1 and 3 threads", &sa, &sb, sizeof sa);
    double ref = 0.0;
    for (size_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
    g_checks++;
    if (!(fabs(sa - ref) <= 1e-12 * ref)) /* f64 sums of 11137 terms: ~1e-16 * 1e4 relative */
        fail("sumsq", "got %.17g want %.17g", sa, ref);
    free(x), free(g), free(w), free(a), free(b);
}

/* AdamW against torch.optim.AdamW's update written in f64, three steps. */
static void test_adamw(void) {
    const char *op = "adamw";
    const Backend *be = backend_cpu();
    enum { n = 37 };
    float p[n], m[n] = {0}, v[n] = {0}, g[n];
    double P[n], Mm[n] = {0}, Vv[n] = {0};
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f, gs = 0.5f;
    for (int i = 0; i < n; i++) P[i] = p[i] = (float)(rng_next_double(&g_rng) - 0.5);
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < n; i++) g[i] = (float)(rng_next_double(&g_rng) - 0.5);
        float bc1 = 1.0f - powf(b1, (float)t), bc2 = 1.0f - powf(b2, (float)t);
        be->adamw(p, m, v, g, n, lr, b1, b2, eps, wd, bc1, bc2, gs);
        for (int i = 0; i < n; i++) {
            double gi = (double)g[i] * gs;
            P[i] *= 1.0 - (double)lr * wd;
            Mm[i] = b1 * Mm[i] + (1.0 - b1) * gi;
            Vv[i] = b2 * Vv[i] + (1.0 - b2) * gi * gi;
            P[i] -= (double)lr / bc1 * Mm[i] / (sqrt(Vv[i]) / sqrt((double)bc2) + eps);
        }
    }
    /* Each step moves p by ~lr with f32 rounding ~10 ulps of the update; three steps, values ~0.5:
     * 1e-6 relative to max|p|. */
    expect_close(op, "three steps vs f64 torch.optim.AdamW", p, P, n, 1e-6);
}

static void die_linear_shapes(void) {
    Tensor *x = mk(2, (int[]){3, 5}, 0, 1, false), *w = mk(2, (int[]){4, 6}, 0, 1, false);
    op_linear(g_c, x, w, NULL);
}
static void die_embedding_id(void) {
    int32_t ids[3] = {0, 13, 2};
    Tensor *w = mk(2, (int[]){13, 7}, 0, 1, false);
    op_embedding(g_c, w, mk_i32(1, (int[]){3}, ids));
}
static void die_missing_kernel(void) {
    static Backend partial;
    partial = *backend_cpu();
    partial.tanh_fwd = NULL;
    g_c->be = &partial;
    op_tanh(g_c, mk(1, (int[]){3}, 0, 1, false));
}
static void die_dtype(void) {
    int32_t v[3] = {1, 2, 3};
    op_gelu(g_c, mk_i32(1, (int[]){3}, v));
}

static void test_aborts(void) {
    expect_abort("op_linear shapes", die_linear_shapes, "op_linear: expected x (..., in) and w (out, in), found x [3, 5] w [4, 6]");
    expect_abort("op_embedding bad id", die_embedding_id, "op_embedding: id 13 at position 1 is outside [0, 13)");
    expect_abort("missing kernel", die_missing_kernel, "distill: error: op tanh is not supported on device cpu");
    expect_abort("op_gelu dtype", die_dtype, "op_gelu: x must be f32, found i32");
}

void test_backend_table(void) {
    const Backend *be = backend_cpu();
    /* Every entry of the CPU table is filled (the reference backend has no gaps): the device and
     * memory entries and every kernel of engine/kernels.def. */
    const char *missing = backend_missing_entry(be);
    if (missing) printf("cpu backend: table entry %s is NULL\n", missing);
    expect(!missing && be->name && be->type == DEV_CPU, "cpu backend", "every table entry is filled");
    void *p = be->alloc(100);
    expect(((uintptr_t)p & 63) == 0, "cpu backend", "alloc is 64-byte aligned");
    be->free(p);
    expect(be->init(0) == DISTILL_OK && be->device_count() == 1, "cpu backend", "init(0), one device");
}

void test_engine_core(void) {
    test_adamw();
    test_reproducible();
    test_thread_independence();
    test_aborts();
}
