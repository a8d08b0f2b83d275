/*
 * test_ops.c — unit tests of every op in engine/ops.h on the CPU backend.
 *
 * For each op: the forward against a float64 reference written naively here, on random inputs of
 * odd sizes (1, 3, 5, 7, 13, 37: never multiples of 32); the backward against central finite
 * differences of L = sum(R * out) for a random R, computed in double around the f32 op; a second
 * backward must double the gradients (the += rule); outputs and gradients are checked for writes
 * past their end (guard bytes in the arena) and inputs for modification (harness: op_check.h,
 * where the finite-difference step and GRAD_TOL are derived). Fused ops are compared with their
 * unfused composition; dropout's mask, keep rate and backward are checked. test_ops_core.c adds
 * the backend table, AdamW, thread-count independence, ctx_reset reproducibility and misuse aborts.
 *
 * Exit status: 0 when every check passed, 1 otherwise; each failure prints the op and worst error.
 */
#include "op_check.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- run functions */

static Tensor *run_embedding(Ctx *c, Tensor **in, const OpCase *oc) { return op_embedding(c, in[0], in[1]); }
static Tensor *run_embedding_padded(Ctx *c, Tensor **in, const OpCase *oc) {
    return op_embedding_padded(c, in[0], in[1], oc->i[0]);
}
static Tensor *run_linear(Ctx *c, Tensor **in, const OpCase *oc) { return op_linear(c, in[0], in[1], in[2]); }
static Tensor *run_linear_gelu(Ctx *c, Tensor **in, const OpCase *oc) { return op_linear_gelu(c, in[0], in[1], in[2]); }
static Tensor *run_linear_then_gelu(Ctx *c, Tensor **in, const OpCase *oc) {
    return op_gelu(c, op_linear(c, in[0], in[1], in[2]));
}
static Tensor *run_matmul(Ctx *c, Tensor **in, const OpCase *oc) { return op_matmul(c, in[0], in[1], oc->i[0], oc->i[1]); }
static Tensor *run_add(Ctx *c, Tensor **in, const OpCase *oc) { return op_add(c, in[0], in[1] ? in[1] : in[0]); }
static Tensor *run_scale(Ctx *c, Tensor **in, const OpCase *oc) { return op_scale(c, in[0], oc->f[0]); }
static Tensor *run_bias_add(Ctx *c, Tensor **in, const OpCase *oc) { return op_bias_add(c, in[0], in[1]); }
static Tensor *run_gelu(Ctx *c, Tensor **in, const OpCase *oc) { return op_gelu(c, in[0]); }
static Tensor *run_bias_gelu(Ctx *c, Tensor **in, const OpCase *oc) { return op_bias_gelu(c, in[0], in[1]); }
static Tensor *run_bias_then_gelu(Ctx *c, Tensor **in, const OpCase *oc) { return op_gelu(c, op_bias_add(c, in[0], in[1])); }
static Tensor *run_tanh(Ctx *c, Tensor **in, const OpCase *oc) { return op_tanh(c, in[0]); }
static Tensor *run_dropout(Ctx *c, Tensor **in, const OpCase *oc) { return op_dropout(c, in[0], oc->f[0]); }
static Tensor *run_layernorm(Ctx *c, Tensor **in, const OpCase *oc) { return op_layernorm(c, in[0], in[1], in[2], oc->f[0]); }
static Tensor *run_add_layernorm(Ctx *c, Tensor **in, const OpCase *oc) {
    return op_add_layernorm(c, in[0], in[3], in[1], in[2], oc->f[0]);
}
static Tensor *run_add_then_layernorm(Ctx *c, Tensor **in, const OpCase *oc) {
    return op_layernorm(c, op_add(c, in[0], in[3]), in[1], in[2], oc->f[0]);
}
static Tensor *run_softmax(Ctx *c, Tensor **in, const OpCase *oc) { return op_softmax(c, in[0]); }
static Tensor *run_scale_mask(Ctx *c, Tensor **in, const OpCase *oc) { return op_scale_mask(c, in[0], in[1], oc->f[0]); }
static Tensor *run_scale_mask_softmax(Ctx *c, Tensor **in, const OpCase *oc) {
    return op_scale_mask_softmax(c, in[0], in[1], oc->f[0]);
}
static Tensor *run_scale_mask_then_softmax(Ctx *c, Tensor **in, const OpCase *oc) {
    return op_softmax(c, op_scale_mask(c, in[0], in[1], oc->f[0]));
}
static Tensor *run_attention_qk(Ctx *c, Tensor **in, const OpCase *oc) { return op_attention_qk(c, in[0], in[1], oc->i[0]); }
static Tensor *run_attention_pv(Ctx *c, Tensor **in, const OpCase *oc) { return op_attention_pv(c, in[0], in[1], oc->i[0]); }
static Tensor *run_take_token(Ctx *c, Tensor **in, const OpCase *oc) { return op_take_token(c, in[0], oc->i[0]); }
static Tensor *run_mean_pool(Ctx *c, Tensor **in, const OpCase *oc) { return op_mean_pool(c, in[0], in[1]); }
static Tensor *run_cross_entropy(Ctx *c, Tensor **in, const OpCase *oc) { return op_cross_entropy(c, in[0], in[1]); }
static Tensor *run_soft_ce(Ctx *c, Tensor **in, const OpCase *oc) { return op_soft_cross_entropy(c, in[0], in[1], oc->f[0]); }
static Tensor *run_kl_logits(Ctx *c, Tensor **in, const OpCase *oc) { return op_kl_logits(c, in[0], in[1], oc->f[0]); }
static Tensor *run_mse(Ctx *c, Tensor **in, const OpCase *oc) { return op_mse(c, in[0], in[1]); }
static Tensor *run_mse_ignore(Ctx *c, Tensor **in, const OpCase *oc) { return op_mse_ignore(c, in[0], in[1], oc->f[0]); }
static Tensor *run_cosine(Ctx *c, Tensor **in, const OpCase *oc) { return op_cosine_loss(c, in[0], in[1]); }
static Tensor *run_kl_probs(Ctx *c, Tensor **in, const OpCase *oc) { return op_kl_probs(c, in[0], in[1]); }

/* ---------------------------------------------------------------- dense */

static void test_embedding(void) {
    enum { V = 13, H = 7, N0 = 3, N1 = 5 };
    int32_t ids[N0 * N1];
    for (int i = 0; i < N0 * N1; i++) ids[i] = (int32_t)rng_next_below(&g_rng, V);
    ids[0] = 0, ids[14] = V - 1, ids[9] = ids[3]; /* both ends of the table and a repeated id */
    OpCase oc = {.name = "op_embedding", .run = run_embedding, .nin = 2};
    oc.in[0] = mk(2, (int[]){V, H}, -1, 1, true);
    oc.in[1] = mk_i32(2, (int[]){N0, N1}, ids);
    Tensor *out = fwd(&oc);
    expect(shape_is(out, 3, (int[]){N0, N1, H}), oc.name, "output shape (3, 5, 7)");
    double ref[N0 * N1 * H];
    for (int i = 0; i < N0 * N1; i++)
        for (int h = 0; h < H; h++) ref[i * H + h] = tdata(oc.in[0])[ids[i] * H + h];
    expect_close(oc.name, "forward (a copy: exact)", tdata(out), ref, N0 * N1 * H, 0.0);
    check_grad(&oc);
}

/* op_embedding_padded: the forward is the plain lookup (the padding row is read like any other);
 * the gradient is the plain one with row padding_idx left untouched (exactly 0 here), as torch's
 * nn.Embedding(padding_idx). A finite difference would see the padding row's real influence, so
 * the gradient is checked against the scatter-add reference instead: sums of <= 15 products of
 * |R| <= 1 in float, so 15 * 2^-24 relative to the largest entry (tolerance 1e-6) covers rounding. */
static void test_embedding_padded(void) {
    enum { V = 11, H = 5, N = 15, PAD = 3 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)rng_next_below(&g_rng, V);
    ids[2] = PAD, ids[7] = PAD, ids[11] = 0; /* the padding id twice */
    OpCase oc = {.name = "op_embedding_padded", .run = run_embedding_padded, .nin = 2};
    oc.i[0] = PAD;
    oc.in[0] = mk(2, (int[]){V, H}, -1, 1, true);
    oc.in[1] = mk_i32(1, (int[]){N}, ids);
    Tensor *out = fwd(&oc);
    double fref[N * H], ref[V * H];
    for (int i = 0; i < N; i++)
        for (int h = 0; h < H; h++) fref[i * H + h] = tdata(oc.in[0])[ids[i] * H + h];
    expect_close(oc.name, "forward (a copy: exact)", tdata(out), fref, N * H, 0.0);
    float R[N * H];
    for (int j = 0; j < N * H; j++) R[j] = (float)(2.0 * rng_next_double(&g_rng) - 1.0);
    backward_seed(g_c, out, R);
    for (int j = 0; j < V * H; j++) ref[j] = 0.0;
    for (int i = 0; i < N; i++)
        if (ids[i] != PAD)
            for (int h = 0; h < H; h++) ref[ids[i] * H + h] += R[i * H + h];
    expect(oc.in[0]->grad != NULL, oc.name, "the weight got a gradient");
    if (oc.in[0]->grad) {
        expect_close(oc.name, "gradient (padding row untouched)", tdata(oc.in[0]->grad), ref, V * H, 1e-6);
        bool zero = true;
        for (int h = 0; h < H; h++) zero = zero && tdata(oc.in[0]->grad)[PAD * H + h] == 0.0f;
        expect(zero, oc.name, "padding row gradient is exactly 0");
    }
}

static void linear_ref(double *ref, const Tensor *x, const Tensor *w, const Tensor *b, bool gelu) {
    int in = w->shape[1], outf = w->shape[0];
    size_t rows = tensor_rows(x);
    for (size_t r = 0; r < rows; r++)
        for (int o = 0; o < outf; o++) {
            double s = b ? tdata(b)[o] : 0.0;
            for (int k = 0; k < in; k++) s += (double)tdata(x)[r * in + k] * tdata(w)[(size_t)o * in + k];
            ref[r * outf + o] = gelu ? 0.5 * s * (1.0 + erf(s / sqrt(2.0))) : s;
        }
}

static void test_linear(void) {
    /* (x shape, out, bias?) */
    struct { int ndim, shape[3], outf; bool bias; } cfg[] = {
        {3, {2, 3, 13}, 7, true},
        {2, {1, 37}, 1, false},
        {2, {5, 1}, 3, true},
    };
    for (size_t t = 0; t < sizeof cfg / sizeof cfg[0]; t++) {
        int in = cfg[t].shape[cfg[t].ndim - 1];
        OpCase oc = {.name = "op_linear", .run = run_linear, .nin = 3};
        oc.in[0] = mk(cfg[t].ndim, cfg[t].shape, -1, 1, true);
        oc.in[1] = mk(2, (int[]){cfg[t].outf, in}, -1, 1, true);
        oc.in[2] = cfg[t].bias ? mk(1, &cfg[t].outf, -1, 1, true) : NULL;
        Tensor *out = fwd(&oc);
        double *ref = xmalloc(out->numel * sizeof(double));
        linear_ref(ref, oc.in[0], oc.in[1], oc.in[2], false);
        /* A K-term f32 dot product: error <= K * EPS32 * sum|x w|, and sum|x w| is a few times
         * max|ref| for uniform inputs; K <= 37 gives ~2e-6 * few: 1e-5. */
        expect_close(oc.name, "forward", tdata(out), ref, out->numel, 1e-5);
        check_grad(&oc);

        OpCase og = oc;
        og.name = "op_linear_gelu";
        og.run = run_linear_gelu;
        out = fwd(&og);
        linear_ref(ref, og.in[0], og.in[1], og.in[2], true);
        /* The dot product as above, then erf GELU (erff within a few ulps): 1e-5. */
        expect_close(og.name, "forward", tdata(out), ref, out->numel, 1e-5);
        check_grad(&og);
        OpCase ou = og;
        ou.name = "linear+gelu";
        ou.run = run_linear_then_gelu;
        expect_fused_matches(&og, &ou);
        free(ref);
    }
}

static void test_matmul(void) {
    enum { Bt = 3, M = 7, K = 13, N = 5 };
    for (int a3 = 0; a3 < 2; a3++)
        for (int b3 = 0; b3 < 2; b3++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    OpCase oc = {.name = "op_matmul", .run = run_matmul, .nin = 2};
                    oc.i[0] = ta, oc.i[1] = tb;
                    int as[3] = {Bt, ta ? K : M, ta ? M : K}, bs[3] = {Bt, tb ? N : K, tb ? K : N};
                    oc.in[0] = a3 ? mk(3, as, -1, 1, true) : mk(2, as + 1, -1, 1, true);
                    oc.in[1] = b3 ? mk(3, bs, -1, 1, true) : mk(2, bs + 1, -1, 1, true);
                    Tensor *out = fwd(&oc);
                    bool batched = a3 || b3;
                    int nb = batched ? Bt : 1;
                    expect(batched ? shape_is(out, 3, (int[]){Bt, M, N}) : shape_is(out, 2, (int[]){M, N}),
                           oc.name, "output shape");
                    double *ref = xmalloc((size_t)nb * M * N * sizeof(double));
                    const float *A = tdata(oc.in[0]), *B = tdata(oc.in[1]);
                    for (int b = 0; b < nb; b++)
                        for (int i = 0; i < M; i++)
                            for (int j = 0; j < N; j++) {
                                double s = 0.0;
                                for (int k = 0; k < K; k++) {
                                    const float *Ab = A + (a3 ? (size_t)b * M * K : 0);
                                    const float *Bb = B + (b3 ? (size_t)b * K * N : 0);
                                    double av = ta ? Ab[k * M + i] : Ab[i * K + k];
                                    double bv = tb ? Bb[j * K + k] : Bb[k * N + j];
                                    s += av * bv;
                                }
                                ref[((size_t)b * M + i) * N + j] = s;
                            }
                    char what[64];
                    snprintf(what, sizeof what, "forward a%dD b%dD ta=%d tb=%d", 2 + a3, 2 + b3, ta, tb);
                    /* K = 13 term dot products: 13 * EPS32 * few; 1e-5. */
                    expect_close(oc.name, what, tdata(out), ref, out->numel, 1e-5);
                    check_grad(&oc);
                    free(ref);
                }
}

/* ---------------------------------------------------------------- elementwise */

static void test_elementwise(void) {
    int shape[3] = {3, 7, 13};
    size_t n = 3 * 7 * 13;
    double *ref = xmalloc(n * sizeof(double));

    OpCase oa = {.name = "op_add", .run = run_add, .nin = 2};
    oa.in[0] = mk(3, shape, -1, 1, true);
    oa.in[1] = mk(3, shape, -1, 1, true);
    Tensor *out = fwd(&oa);
    for (size_t i = 0; i < n; i++) ref[i] = (double)tdata(oa.in[0])[i] + tdata(oa.in[1])[i];
    expect_close(oa.name, "forward", tdata(out), ref, n, EPS32); /* one rounding */
    check_grad(&oa);
    OpCase oself = {.name = "op_add(a, a)", .run = run_add, .nin = 1};
    oself.in[0] = oa.in[0];
    check_grad(&oself); /* both paths accumulate into one gradient */

    OpCase os = {.name = "op_scale", .run = run_scale, .nin = 1, .f = {-1.7f}};
    os.in[0] = oa.in[0];
    out = fwd(&os);
    for (size_t i = 0; i < n; i++) ref[i] = -1.7 * tdata(os.in[0])[i];
    /* f32(-1.7) differs from -1.7 by <= EPS32 relative, plus one rounding. */
    expect_close(os.name, "forward", tdata(out), ref, n, 2 * EPS32);
    check_grad(&os);

    OpCase ob = {.name = "op_bias_add", .run = run_bias_add, .nin = 2};
    ob.in[0] = oa.in[0];
    ob.in[1] = mk(1, (int[]){13}, -1, 1, true);
    out = fwd(&ob);
    for (size_t i = 0; i < n; i++) ref[i] = (double)tdata(ob.in[0])[i] + tdata(ob.in[1])[i % 13];
    expect_close(ob.name, "forward", tdata(out), ref, n, EPS32);
    check_grad(&ob);

    OpCase og = {.name = "op_gelu", .run = run_gelu, .nin = 1};
    og.in[0] = mk(3, shape, -4, 4, true);
    out = fwd(&og);
    for (size_t i = 0; i < n; i++) {
        double x = tdata(og.in[0])[i];
        ref[i] = 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    }
    /* erff/expf are accurate to a few ulps; a handful of f32 operations: 1e-6. */
    expect_close(og.name, "forward (exact erf)", tdata(out), ref, n, 1e-6);
    check_grad(&og);

    OpCase obg = {.name = "op_bias_gelu", .run = run_bias_gelu, .nin = 2};
    obg.in[0] = og.in[0];
    obg.in[1] = mk(1, (int[]){13}, -1, 1, true);
    out = fwd(&obg);
    for (size_t i = 0; i < n; i++) {
        double x = (double)(tdata(obg.in[0])[i] + tdata(obg.in[1])[i % 13]); /* the f32 sum, as the op */
        ref[i] = 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    }
    expect_close(obg.name, "forward", tdata(out), ref, n, 1e-6);
    check_grad(&obg);
    OpCase obu = obg;
    obu.name = "bias_add+gelu";
    obu.run = run_bias_then_gelu;
    expect_fused_matches(&obg, &obu);

    OpCase ot = {.name = "op_tanh", .run = run_tanh, .nin = 1};
    ot.in[0] = mk(3, shape, -3, 3, true);
    out = fwd(&ot);
    for (size_t i = 0; i < n; i++) ref[i] = tanh((double)tdata(ot.in[0])[i]);
    expect_close(ot.name, "forward", tdata(out), ref, n, 1e-6); /* tanhf: a few ulps */
    check_grad(&ot);
    free(ref);
}

static void test_dropout(void) {
    const char *op = "op_dropout";
    const float p = 0.3f;
    enum { N0 = 37, N1 = 541 }; /* 20017 elements */
    Tensor *x = mk(2, (int[]){N0, N1}, 0.5, 1.5, true); /* nonzero, so a kept value is never 0 */
    size_t n = x->numel;

    /* Identity when not training or p == 0: the input itself comes back. */
    OpCase oc = {.name = op, .run = run_dropout, .nin = 1, .f = {p}};
    oc.in[0] = x;
    expect(fwd(&oc) == x && g_c->rng_counter == 0, op, "identity (and no RNG use) when not training");
    oc.training = true;
    oc.f[0] = 0.0f;
    expect(fwd(&oc) == x, op, "identity when p == 0");

    oc.f[0] = p;
    oc.rng0 = 12345;
    Tensor *out = fwd(&oc);
    expect(g_c->rng_counter == 12345 + n, op, "advances rng_counter by numel");
    float *first = xmalloc(n * sizeof(float));
    memcpy(first, out->data, n * sizeof(float));
    size_t kept = 0;
    bool values_ok = true;
    const float keep_scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        bool keep = dropout_keep(g_c->seed, 12345 + i, p);
        if (keep) kept++;
        float want = keep ? tdata(x)[i] * keep_scale : 0.0f;
        if (first[i] != want) values_ok = false;
    }
    expect(values_ok, op, "kept values are x/(1-p), dropped are 0, mask = dropout_keep(seed, offset+i)");
    /* Keep count ~ Binomial(n, 1-p): within 6 standard deviations (false alarm < 1e-8). */
    double mean = n * (1.0 - p), sd = sqrt(n * p * (1.0 - p));
    g_checks++;
    if (fabs((double)kept - mean) > 6 * sd)
        fail(op, "kept %zu of %zu, expected %.0f +- %.0f (6 sd)", kept, n, mean, 6 * sd);
    else
        printf("ok   %-24s keep rate %.4f (expected %.4f, 6 sd = %.4f)\n", op, (double)kept / n,
               1.0 - p, 6 * sd / n);
    out = fwd(&oc);
    expect_bitwise(op, "same (seed, offset) gives the same mask", first, out->data, n * sizeof(float));
    oc.rng0 = 12345 + n;
    out = fwd(&oc);
    expect(memcmp(first, out->data, n * sizeof(float)) != 0, op, "a new offset gives a new mask");

    /* Backward: dx = R * mask / (1 - p), regenerated from (seed, offset). */
    oc.rng0 = 777;
    out = fwd(&oc);
    float *R = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) R[i] = (float)(2.0 * rng_next_double(&g_rng) - 1.0);
    backward_seed(g_c, out, R);
    bool bwd_ok = true;
    for (size_t i = 0; i < n; i++) {
        float want = tdata(out)[i] != 0.0f ? R[i] * keep_scale : 0.0f;
        if (tdata(x->grad)[i] != want) bwd_ok = false;
    }
    expect(bwd_ok, op, "backward uses the forward's mask");
    /* FD on a small tensor (the op is linear: FD is exact up to rounding). */
    OpCase small = {.name = op, .run = run_dropout, .nin = 1, .f = {p}, .training = true, .rng0 = 99};
    small.in[0] = mk(2, (int[]){7, 13}, -1, 1, true);
    check_grad(&small);
    free(R);
    free(first);
}

/* ---------------------------------------------------------------- normalisation */

static void layernorm_ref(double *ref, const float *x, const Tensor *g, const Tensor *b, size_t rows,
                          int cols, double eps) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < cols; c++) m += xr[c];
        m /= cols;
        for (int c = 0; c < cols; c++) v += (xr[c] - m) * (xr[c] - m);
        v /= cols; /* biased, as torch.nn.LayerNorm */
        for (int c = 0; c < cols; c++)
            ref[r * cols + c] = (xr[c] - m) / sqrt(v + eps) * tdata(g)[c] + tdata(b)[c];
    }
}

static void test_layernorm(void) {
    int shape[3] = {3, 7, 37};
    size_t n = 3 * 7 * 37;
    OpCase oc = {.name = "op_layernorm", .run = run_layernorm, .nin = 3, .f = {1e-5f}};
    oc.in[0] = mk(3, shape, -2, 3, true);
    oc.in[1] = mk(1, (int[]){37}, 0.5, 1.5, true);
    oc.in[2] = mk(1, (int[]){37}, -1, 1, true);
    Tensor *out = fwd(&oc);
    double *ref = xmalloc(n * sizeof(double));
    layernorm_ref(ref, tdata(oc.in[0]), oc.in[1], oc.in[2], 21, 37, 1e-5);
    /* Stats in f64 then rounded; (x - mean) * rstd * gamma + beta is ~5 f32 roundings of values
     * up to ~3 * max|ref|: 1e-6. */
    expect_close(oc.name, "forward (biased variance)", tdata(out), ref, n, 1e-6);
    check_grad(&oc);

    OpCase of = oc;
    of.name = "op_add_layernorm";
    of.run = run_add_layernorm;
    of.nin = 4;
    of.in[3] = mk(3, shape, -1, 1, true);
    out = fwd(&of);
    float *sum = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) sum[i] = tdata(of.in[0])[i] + tdata(of.in[3])[i];
    layernorm_ref(ref, sum, of.in[1], of.in[2], 21, 37, 1e-5);
    expect_close(of.name, "forward", tdata(out), ref, n, 1e-6);
    check_grad(&of);
    OpCase ou = of;
    ou.name = "add+layernorm";
    ou.run = run_add_then_layernorm;
    expect_fused_matches(&of, &ou);
    /* Only the residual requiring grad (the other path of the fused backward). */
    of.in[0]->requires_grad = false;
    check_grad(&of);
    of.in[0]->requires_grad = true;

    /* A single-column LayerNorm: variance 0, output = beta. */
    OpCase o1 = {.name = "op_layernorm (N=1)", .run = run_layernorm, .nin = 3, .f = {1e-5f}};
    o1.in[0] = mk(2, (int[]){5, 1}, -2, 2, true);
    o1.in[1] = mk(1, (int[]){1}, 0.5, 1.5, true);
    o1.in[2] = mk(1, (int[]){1}, -1, 1, true);
    out = fwd(&o1);
    double r1[5];
    for (int i = 0; i < 5; i++) r1[i] = tdata(o1.in[2])[0];
    expect_close(o1.name, "forward", tdata(out), r1, 5, EPS32);
    free(sum);
    free(ref);
}

/* ---------------------------------------------------------------- softmax and attention */

static void softmax_ref(double *ref, const double *x, size_t rows, int cols) {
    for (size_t r = 0; r < rows; r++) {
        const double *xr = x + r * cols;
        double m = -INFINITY, s = 0.0;
        for (int c = 0; c < cols; c++) m = xr[c] > m ? xr[c] : m;
        for (int c = 0; c < cols; c++) s += exp(xr[c] - m);
        for (int c = 0; c < cols; c++) ref[r * cols + c] = exp(xr[c] - m) / s;
    }
}

static void test_softmax(void) {
    int shape[3] = {3, 7, 13};
    size_t n = 3 * 7 * 13;
    OpCase oc = {.name = "op_softmax", .run = run_softmax, .nin = 1};
    oc.in[0] = mk(3, shape, -3, 3, true);
    Tensor *out = fwd(&oc);
    double *x = dcopy(oc.in[0]), *ref = xmalloc(n * sizeof(double));
    softmax_ref(ref, x, 21, 13);
    /* expf to a few ulps, a 13-term f64 sum, one division: 1e-6. */
    expect_close(oc.name, "forward", tdata(out), ref, n, 1e-6);
    check_grad(&oc);

    /* Edge rows: all -FLT_MAX (a fully masked row), all -inf, some -inf, huge values. */
    float edge[4][5] = {{-FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX},
                        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY},
                        {1.0f, -INFINITY, 2.0f, -INFINITY, 0.5f},
                        {3e38f, 3e38f, -3e38f, 0.0f, 1e38f}};
    Tensor *e = ctx_from_host(g_in, DT_F32, 2, (int[]){4, 5}, edge);
    OpCase oe = {.name = "op_softmax (edge rows)", .run = run_softmax, .nin = 1};
    oe.in[0] = e;
    out = fwd(&oe);
    double eref[20] = {0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2};
    double ex[5] = {1.0, -INFINITY, 2.0, -INFINITY, 0.5};
    softmax_ref(eref + 10, ex, 1, 5);
    double hx[5] = {3e38, 3e38, -3e38, 0.0, 1e38};
    softmax_ref(eref + 15, hx, 1, 5);
    expect_close(oe.name, "forward: valid distributions", tdata(out), eref, 20, 1e-6);

    /* scale_mask: x (B, H, R, C), mask (B, C) with 0 / -10000 entries. */
    enum { B = 2, H = 3, Rr = 5, C = 7 };
    int xs[4] = {B, H, Rr, C};
    size_t nx = (size_t)B * H * Rr * C;
    float mask[B * C];
    for (int i = 0; i < B * C; i++) mask[i] = (i % C) < 4 + (i / C) ? 0.0f : -10000.0f;
    OpCase om = {.name = "op_scale_mask", .run = run_scale_mask, .nin = 2, .f = {0.37f}};
    om.in[0] = mk(4, xs, -3, 3, true);
    om.in[1] = ctx_from_host(g_in, DT_F32, 2, (int[]){B, C}, mask);
    out = fwd(&om);
    double *mref = xmalloc(nx * sizeof(double));
    for (size_t i = 0; i < nx; i++) {
        size_t b = i / ((size_t)H * Rr * C), c = i % C;
        mref[i] = (double)0.37f * tdata(om.in[0])[i] + mask[b * C + c];
    }
    /* scale*x + mask: two roundings of values up to |mask|. */
    expect_close(om.name, "forward", tdata(out), mref, nx, 2 * EPS32);
    /* Gradient check with an O(1) mask: next to -10000 an f32 output's ulp (~1e-3) would swamp
     * the finite difference (0.37 * 2h ~ 6e-3) of this linear op. */
    OpCase omg = om;
    omg.in[1] = mk(2, (int[]){B, C}, -3, 0, false);
    check_grad(&omg);
    OpCase om0 = om;
    om0.name = "op_scale_mask (no mask)";
    om0.in[1] = NULL;
    check_grad(&om0);

    OpCase osm = om;
    osm.name = "op_scale_mask_softmax";
    osm.run = run_scale_mask_softmax;
    out = fwd(&osm);
    double *sref = xmalloc(nx * sizeof(double));
    softmax_ref(sref, mref, nx / C, C);
    expect_close(osm.name, "forward", tdata(out), sref, nx, 1e-6); /* as softmax */
    check_grad(&osm);
    OpCase osu = osm;
    osu.name = "scale_mask+softmax";
    osu.run = run_scale_mask_then_softmax;
    expect_fused_matches(&osm, &osu);
    OpCase os1 = osm;
    os1.name = "op_scale_mask_softmax (s=1)";
    os1.f[0] = 1.0f;
    check_grad(&os1);

    /* A fully masked batch row with a -FLT_MAX mask (Hugging Face's finfo.min): every probability
     * row of that batch entry is still a valid distribution (uniform). */
    for (int c = 0; c < C; c++) mask[C + c] = -FLT_MAX;
    Tensor *fm = ctx_from_host(g_in, DT_F32, 2, (int[]){B, C}, mask);
    OpCase ofm = {.name = "op_scale_mask_softmax", .run = run_scale_mask_softmax, .nin = 2, .f = {4.0f}};
    ofm.in[0] = om.in[0];
    ofm.in[1] = fm;
    out = fwd(&ofm);
    bool valid = true;
    for (size_t r = (size_t)H * Rr; r < 2 * (size_t)H * Rr; r++)
        for (int c = 0; c < C; c++)
            if (!(fabs(tdata(out)[r * C + c] - 1.0 / C) < 1e-6)) valid = false;
    expect(valid, ofm.name, "fully masked rows (mask -FLT_MAX) give a uniform distribution");
    free(x);
    free(ref);
    free(mref);
    free(sref);
}

static void test_attention(void) {
    enum { B = 2, Sq = 5, Sk = 4, heads = 3, d = 7, hd = heads * d };
    OpCase oq = {.name = "op_attention_qk", .run = run_attention_qk, .nin = 2, .i = {heads}};
    oq.in[0] = mk(3, (int[]){B, Sq, hd}, -1, 1, true);
    oq.in[1] = mk(3, (int[]){B, Sk, hd}, -1, 1, true);
    Tensor *out = fwd(&oq);
    expect(shape_is(out, 4, (int[]){B, heads, Sq, Sk}), oq.name, "output shape (B, heads, Sq, Sk)");
    double ref[B * heads * Sq * Sk];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < Sq; i++)
                for (int j = 0; j < Sk; j++) {
                    double s = 0.0;
                    for (int t = 0; t < d; t++)
                        s += (double)tdata(oq.in[0])[(b * Sq + i) * hd + h * d + t] *
                             tdata(oq.in[1])[(b * Sk + j) * hd + h * d + t];
                    ref[((b * heads + h) * Sq + i) * Sk + j] = s;
                }
    expect_close(oq.name, "forward", tdata(out), ref, out->numel, 1e-5); /* 7-term dots, as matmul */
    check_grad(&oq);

    OpCase op = {.name = "op_attention_pv", .run = run_attention_pv, .nin = 2, .i = {heads}};
    op.in[0] = mk(4, (int[]){B, heads, Sq, Sk}, 0, 1, true);
    op.in[1] = mk(3, (int[]){B, Sk, hd}, -1, 1, true);
    out = fwd(&op);
    expect(shape_is(out, 3, (int[]){B, Sq, hd}), op.name, "output shape (B, Sq, heads*d)");
    double pref[B * Sq * hd];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < Sq; i++)
                for (int t = 0; t < d; t++) {
                    double s = 0.0;
                    for (int j = 0; j < Sk; j++)
                        s += (double)tdata(op.in[0])[((b * heads + h) * Sq + i) * Sk + j] *
                             tdata(op.in[1])[(b * Sk + j) * hd + h * d + t];
                    pref[(b * Sq + i) * hd + h * d + t] = s;
                }
    expect_close(op.name, "forward", tdata(out), pref, out->numel, 1e-5);
    check_grad(&op);
}

/* ---------------------------------------------------------------- pooling */

static void test_pooling(void) {
    enum { B = 3, S = 5, H = 7 };
    Tensor *x = mk(3, (int[]){B, S, H}, -1, 1, true);
    int pos[3] = {0, 2, S - 1};
    for (int p = 0; p < 3; p++) {
        OpCase ot = {.name = "op_take_token", .run = run_take_token, .nin = 1, .i = {pos[p]}};
        ot.in[0] = x;
        Tensor *out = fwd(&ot);
        double ref[B * H];
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) ref[b * H + h] = tdata(x)[(b * S + pos[p]) * H + h];
        expect_close(ot.name, "forward (a copy: exact)", tdata(out), ref, B * H, 0.0);
        check_grad(&ot);
    }
    int32_t len[B] = {S, 1, 3};
    OpCase om = {.name = "op_mean_pool", .run = run_mean_pool, .nin = 2};
    om.in[0] = x;
    om.in[1] = mk_i32(1, (int[]){B}, len);
    Tensor *out = fwd(&om);
    double ref[B * H];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            double s = 0.0;
            for (int t = 0; t < len[b]; t++) s += tdata(x)[(b * S + t) * H + h];
            ref[b * H + h] = s / len[b];
        }
    expect_close(om.name, "forward", tdata(out), ref, B * H, 2 * EPS32); /* f64 sum, one rounding */
    check_grad(&om);
}

/* Every dim 1: the degenerate shapes a batch of one short sequence produces. */
static void test_size_one(void) {
    OpCase os = {.name = "op_softmax (1 col)", .run = run_softmax, .nin = 1};
    os.in[0] = mk(2, (int[]){3, 1}, -3, 3, true);
    Tensor *out = fwd(&os);
    double ones[3] = {1, 1, 1};
    expect_close(os.name, "forward (all ones)", tdata(out), ones, 3, 0.0);
    check_grad(&os);
    OpCase oq = {.name = "op_attention_qk (1s)", .run = run_attention_qk, .nin = 2, .i = {1}};
    oq.in[0] = mk(3, (int[]){1, 1, 1}, -1, 1, true);
    oq.in[1] = mk(3, (int[]){1, 1, 1}, -1, 1, true);
    out = fwd(&oq);
    double qk = (double)tdata(oq.in[0])[0] * tdata(oq.in[1])[0];
    expect_close(oq.name, "forward", tdata(out), &qk, 1, EPS32);
    check_grad(&oq);
    OpCase op = {.name = "op_attention_pv (1s)", .run = run_attention_pv, .nin = 2, .i = {1}};
    op.in[0] = mk(4, (int[]){1, 1, 1, 1}, 0, 1, true);
    op.in[1] = mk(3, (int[]){1, 1, 1}, -1, 1, true);
    check_grad(&op);
    OpCase om = {.name = "op_matmul (1x1x1)", .run = run_matmul, .nin = 2};
    om.in[0] = mk(2, (int[]){1, 1}, -1, 1, true);
    om.in[1] = mk(3, (int[]){1, 1, 1}, -1, 1, true);
    check_grad(&om);
    int32_t zero = 0, one = 1;
    OpCase oc = {.name = "op_cross_entropy (C=1)", .run = run_cross_entropy, .nin = 2};
    oc.in[0] = mk(2, (int[]){1, 1}, -3, 3, true);
    oc.in[1] = mk_i32(1, (int[]){1}, &zero);
    out = fwd(&oc);
    double z = 0.0;
    expect_close(oc.name, "forward (log 1 = 0)", tdata(out), &z, 1, 0.0);
    OpCase mp = {.name = "op_mean_pool (S=1)", .run = run_mean_pool, .nin = 2};
    mp.in[0] = mk(3, (int[]){1, 1, 3}, -1, 1, true);
    mp.in[1] = mk_i32(1, (int[]){1}, &one);
    check_grad(&mp);
}

/* ---------------------------------------------------------------- losses */

static void log_softmax_rows(double *out, const float *z, double inv_t, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        double m = -INFINITY, s = 0.0;
        for (int c = 0; c < cols; c++) m = fmax(m, inv_t * z[r * cols + c]);
        for (int c = 0; c < cols; c++) s += exp(inv_t * z[r * cols + c] - m);
        for (int c = 0; c < cols; c++) out[r * cols + c] = inv_t * z[r * cols + c] - m - log(s);
    }
}

static void test_losses(void) {
    enum { N = 7, C = 5 };
    double ls[N * C], lt[N * C];
    /* Loss values are means of O(1) terms computed in f64 and rounded once: 4 ulps. */
    const double loss_tol = 4 * EPS32;

    int32_t labels[N];
    for (int i = 0; i < N; i++) labels[i] = (int32_t)rng_next_below(&g_rng, C);
    labels[0] = 0, labels[1] = C - 1;
    OpCase oc = {.name = "op_cross_entropy", .run = run_cross_entropy, .nin = 2};
    oc.in[0] = mk(2, (int[]){N, C}, -3, 3, true);
    oc.in[1] = mk_i32(1, (int[]){N}, labels);
    Tensor *out = fwd(&oc);
    log_softmax_rows(ls, tdata(oc.in[0]), 1.0, N, C);
    double ref = 0.0;
    for (int i = 0; i < N; i++) ref -= ls[i * C + labels[i]] / N;
    expect_close(oc.name, "forward", tdata(out), &ref, 1, loss_tol);
    check_grad(&oc);

    const float T = 2.0f;
    OpCase os = {.name = "op_soft_cross_entropy", .run = run_soft_ce, .nin = 2, .f = {T}};
    os.in[0] = mk(2, (int[]){N, C}, -3, 3, true);
    os.in[1] = mk(2, (int[]){N, C}, -3, 3, false); /* teacher: no gradient */
    out = fwd(&os);
    log_softmax_rows(ls, tdata(os.in[0]), 1.0 / T, N, C);
    log_softmax_rows(lt, tdata(os.in[1]), 1.0 / T, N, C);
    double ce = 0.0, kl = 0.0;
    for (int i = 0; i < N * C; i++) {
        ce -= exp(lt[i]) * ls[i] / N;
        kl += exp(lt[i]) * (lt[i] - ls[i]) / N;
    }
    /* The f32 target probabilities carry ~EPS32 relative error each: 8 ulps. */
    expect_close(os.name, "forward", tdata(out), &ce, 1, 8 * EPS32);
    check_grad(&os);
    OpCase ok = os;
    ok.name = "op_kl_logits";
    ok.run = run_kl_logits;
    out = fwd(&ok);
    /* KL is a difference of two O(1) sums; ~10 terms' rounding relative to a smaller result. */
    expect_close(ok.name, "forward", tdata(out), &kl, 1, 1e-5);
    check_grad(&ok);

    int shape[3] = {3, 7, 13};
    size_t n = 3 * 7 * 13;
    OpCase om = {.name = "op_mse", .run = run_mse, .nin = 2};
    om.in[0] = mk(3, shape, -1, 1, true);
    om.in[1] = mk(3, shape, -1, 1, true);
    out = fwd(&om);
    ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double dlt = (double)tdata(om.in[0])[i] - tdata(om.in[1])[i];
        ref += dlt * dlt / n;
    }
    expect_close(om.name, "forward", tdata(out), &ref, 1, loss_tol);
    /* MSE is quadratic, so central differences have no truncation error at any step: a large step
     * 2^-2 shrinks f32 rounding noise of the scalar loss (EPS32 * |L| / 2h). */
    om.fd_step = 0.25;
    check_grad(&om);

    /* Masked entries (-1e4, as masked attention scores) on both sides, on one side only, and
     * entries just above the threshold. */
    const float thr = -100.0f;
    OpCase oi = {.name = "op_mse_ignore", .run = run_mse_ignore, .nin = 2, .f = {thr}};
    oi.in[0] = mk(3, shape, -1, 1, true);
    oi.in[1] = mk(3, shape, -1, 1, true);
    for (size_t i = 0; i < n; i += 5) tdata(oi.in[0])[i] = tdata(oi.in[1])[i] = -1e4f;
    for (size_t i = 1; i < n; i += 11) tdata(oi.in[0])[i] = -1e4f;
    for (size_t i = 2; i < n; i += 13) tdata(oi.in[1])[i] = -1e4f;
    for (size_t i = 3; i < n; i += 17) tdata(oi.in[1])[i] = -99.0f;
    out = fwd(&oi);
    ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double a = tdata(oi.in[0])[i], b = tdata(oi.in[1])[i];
        a = a <= thr ? 0.0 : a;
        b = b <= thr ? 0.0 : b;
        ref += (a - b) * (a - b) / n;
    }
    expect_close(oi.name, "forward", tdata(out), &ref, 1, loss_tol);
    /* Quadratic away from the threshold (no entry is within 0.25 of it): step 2^-2 as op_mse;
     * the -99 entries make |L| ~ 600, so rounding noise EPS32 * 600 / 0.5 ~ 7e-5 vs gradients up
     * to ~0.7. */
    oi.fd_step = 0.25;
    check_grad(&oi);

    OpCase oco = {.name = "op_cosine_loss", .run = run_cosine, .nin = 2};
    oco.in[0] = mk(3, (int[]){3, 5, 13}, -1, 1, true);
    oco.in[1] = mk(3, (int[]){3, 5, 13}, -1, 1, true);
    for (int c = 0; c < 13; c++) tdata(oco.in[1])[13 * 4 + c] = tdata(oco.in[0])[13 * 4 + c]; /* cos = 1 */
    out = fwd(&oco);
    ref = 0.0;
    for (int r = 0; r < 15; r++) {
        double dot = 0, na = 0, nb = 0;
        for (int c = 0; c < 13; c++) {
            double a = tdata(oco.in[0])[r * 13 + c], b = tdata(oco.in[1])[r * 13 + c];
            dot += a * b, na += a * a, nb += b * b;
        }
        ref += (1.0 - dot / sqrt(fmax(na * nb, 1e-16))) / 15;
    }
    expect_close(oco.name, "forward", tdata(out), &ref, 1, loss_tol);
    check_grad(&oco);
    /* A zero row: the norm product is clamped (torch eps 1e-8), cos = 0, loss = 1. */
    OpCase oz = oco;
    oz.name = "op_cosine_loss (zero row)";
    oz.in[0] = mk(2, (int[]){1, 13}, 0, 0, false);
    oz.in[1] = mk(2, (int[]){1, 13}, -1, 1, false);
    out = fwd(&oz);
    double one = 1.0;
    expect_close(oz.name, "forward", tdata(out), &one, 1, 0.0);

    /* KL between probability rows; t has exact zeros (their terms are 0). */
    enum { KR = 21, KC = 11 };
    OpCase okp = {.name = "op_kl_probs", .run = run_kl_probs, .nin = 2};
    okp.in[0] = mk(3, (int[]){3, 7, KC}, 0.2, 1, true);
    okp.in[1] = mk(3, (int[]){3, 7, KC}, 0, 1, false);
    for (int r = 0; r < KR; r++) {
        float *s = tdata(okp.in[0]) + r * KC, *t = tdata(okp.in[1]) + r * KC;
        t[r % KC] = 0.0f;
        double ss = 0, st = 0;
        for (int c = 0; c < KC; c++) ss += s[c], st += t[c];
        for (int c = 0; c < KC; c++) s[c] = (float)(s[c] / ss), t[c] = (float)(t[c] / st);
    }
    out = fwd(&okp);
    ref = 0.0;
    for (int i = 0; i < KR * KC; i++) {
        double s = tdata(okp.in[0])[i], t = tdata(okp.in[1])[i];
        if (t > 0) ref += t * (log(t) - log(s)) / KR;
    }
    expect_close(okp.name, "forward", tdata(out), &ref, 1, 1e-5); /* as op_kl_logits */
    /* s ~ 0.02..0.1, so f''' ~ 2t/s^3 is large: a smaller step 2^-11 keeps truncation ~1e-5,
     * and rounding noise EPS32 * |L| / (2h) ~ 1e-4 of the ~0.05 gradients stays under GRAD_TOL. */
    okp.fd_step = 1.0 / 2048;
    check_grad(&okp);

    /* op_item reads the scalar back. */
    float v = op_item(out);
    expect(v == tdata(out)[0], "op_item", "copies the scalar to the host");
}

/* ---------------------------------------------------------------- main */

int main(void) {
    g_rng = rng_new(20240601);
    g_in = ctx_new(device_cpu(), 1);
    g_c = ctx_new(device_cpu(), 7);
    g_fd = ctx_new(device_cpu(), 7);
    test_backend_table();
    test_embedding();
    test_embedding_padded();
    test_linear();
    test_matmul();
    test_elementwise();
    test_dropout();
    test_layernorm();
    test_softmax();
    test_attention();
    test_pooling();
    test_size_one();
    test_losses();
    test_engine_core();
    ctx_free(g_in);
    ctx_free(g_c);
    ctx_free(g_fd);
    if (g_failures) {
        printf("test_ops: %d of %d checks FAILED\n", g_failures, g_checks);
        return 1;
    }
    printf("test_ops: all %d checks passed\n", g_checks);
    return 0;
}
