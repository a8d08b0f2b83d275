/*
 * test_cuda_ops.c — every kernel of the CUDA backend against the CPU backend's kernel (the
 * reference), on fresh random inputs of odd sizes (not multiples of 32, and length 1), with guard
 * zones around every device output to catch writes out of bounds. Backward kernels start from
 * random (non-zero) gradients, so their accumulate-with-+= contract is checked too.
 *
 * Before looking for a device it checks the tables (table_check): every kernel of
 * engine/kernels.def has a CUDA entry and a test here (the TESTED list), so a new kernel without
 * either fails on every machine, GPU or not. After the run, a TESTED kernel that no test reached
 * fails too, and a test that finds a kernel missing from a table fails (never "skip").
 *
 * Exit status: 0 all passed; 1 a kernel disagreed, wrote outside its output, or is missing from a
 * table or from the tests; 77 no CUDA device (CTest SKIP_RETURN_CODE), unless DISTILL_EXPECT_GPU=1
 * is set, which makes a missing GPU a failure (scripts/gpu_check.sh sets it so a broken driver
 * cannot pass as "skipped").
 *
 * Tolerances: U = 2^-23 is the largest relative size of one float ulp. Every bound below says why
 * it is that size. "Exact" means both sides perform the same IEEE float operations in the same
 * order (the CUDA code is built with --fmad=false; the CPU build has no FMA contraction), so any
 * difference is a bug.
 */
#include "engine/backend.h"
#include "engine/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKIP_CODE 77
#define GUARD 67 /* floats of guard zone on each side of a device output */
#define U (1.0 / 8388608.0) /* 2^-23 */

static const Backend *cpu, *gpu;
static int failures;
static Rng rng;

/* ---------------------------------------------------------------- host helpers */

static float *hrand(size_t n, float lo, float hi) {
    float *p = xmalloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)rng_next_double(&rng);
    return p;
}

static float *hdup(const float *src, size_t n) {
    float *p = xmalloc((n ? n : 1) * sizeof(float));
    memcpy(p, src, n * sizeof(float));
    return p;
}

static int32_t *hrand_i32(size_t n, int lo, int hi_incl) {
    int32_t *p = xmalloc((n ? n : 1) * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) p[i] = lo + (int32_t)rng_next_below(&rng, (uint64_t)(hi_incl - lo + 1));
    return p;
}

/* ---------------------------------------------------------------- device buffers with guards */

static float sentinel(void) {
    uint32_t bits = 0x7fa5a5a5u; /* a NaN no kernel produces: compared bitwise */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

typedef struct {
    float *base; /* GUARD | n values | GUARD */
    size_t n;
} DBuf;

static float *dp(DBuf b) { return b.base + GUARD; }

/* A device copy of h[0..n) (zeros when h is NULL) between two guard zones. */
static DBuf dnew(const float *h, size_t n) {
    size_t tot = n + 2 * GUARD;
    float *tmp = xmalloc(tot * sizeof(float));
    for (size_t i = 0; i < GUARD; i++) tmp[i] = tmp[GUARD + n + i] = sentinel();
    if (h)
        memcpy(tmp + GUARD, h, n * sizeof(float));
    else
        memset(tmp + GUARD, 0, n * sizeof(float));
    DBuf b = {gpu->alloc(tot * sizeof(float)), n};
    gpu->copy(b.base, tmp, tot * sizeof(float), COPY_H2D);
    free(tmp);
    return b;
}

/* The n values back on the host (caller frees); fails the test if a guard was written. */
static float *dget(DBuf b, const char *op, const char *what) {
    size_t tot = b.n + 2 * GUARD;
    float *tmp = xmalloc(tot * sizeof(float));
    gpu->sync();
    gpu->copy(tmp, b.base, tot * sizeof(float), COPY_D2H);
    float s = sentinel();
    for (size_t i = 0; i < GUARD; i++) {
        if (memcmp(&tmp[i], &s, sizeof s) || memcmp(&tmp[GUARD + b.n + i], &s, sizeof s)) {
            printf("FAIL %s %s: wrote outside its output (guard %s, offset %zu)\n", op, what,
                   memcmp(&tmp[i], &s, sizeof s) ? "before" : "after", i);
            failures++;
            break;
        }
    }
    memmove(tmp, tmp + GUARD, b.n * sizeof(float));
    return tmp;
}

static void dfree(DBuf b) { gpu->free(b.base); }

static int32_t *dints(const int32_t *h, size_t n) {
    int32_t *d = gpu->alloc((n ? n : 1) * sizeof(int32_t));
    gpu->copy(d, h, n * sizeof(int32_t), COPY_H2D);
    return d;
}

/* ---------------------------------------------------------------- comparison */

/* Passes when |got - want| <= atol + rtol*|want| (+ bound[i] when bound is given) everywhere;
 * NaN must meet NaN and infinities must be equal. */
static void check_b(const char *op, const char *what, const float *got, const float *want, size_t n,
                    double atol, double rtol, const double *bound) {
    size_t nbad = 0, first = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (g == w || (isnan(g) && isnan(w))) continue;
        double err = (isnan(g) || isnan(w) || isinf(g) || isinf(w)) ? INFINITY : fabs(g - w);
        double lim = atol + rtol * fabs(w) + (bound ? bound[i] : 0.0);
        if (err > worst) worst = err;
        if (err > lim && nbad++ == 0) first = i;
    }
    if (nbad) {
        double lim = atol + rtol * fabs(want[first]) + (bound ? bound[first] : 0.0);
        printf("FAIL %s %s: %zu of %zu values off; first [%zu]: cuda %.9g cpu %.9g (limit %.3g)\n",
               op, what, nbad, n, first, got[first], want[first], lim);
        failures++;
    } else {
        printf("ok   %-24s %-8s n=%-7zu max|diff| %.3g\n", op, what, n, worst);
    }
}

static void check(const char *op, const char *what, const float *got, const float *want, size_t n,
                  double atol, double rtol) {
    check_b(op, what, got, want, n, atol, rtol, NULL);
}

/* Device output `d` vs host reference `want`, then frees the host copy. */
static void check_dev(const char *op, const char *what, DBuf d, const float *want, double atol,
                      double rtol) {
    float *got = dget(d, op, what);
    check(op, what, got, want, d.n, atol, rtol);
    free(got);
}

/* ---------------------------------------------------------------- the kernel list */

/* Every kernel of engine/kernels.def, by name (the X-macro). */
static const char *const KERNELS[] = {
#define DISTILL_KERNEL(ret, name, params) #name,
#include "engine/kernels.def"
};
#define N_KERNELS ((int)(sizeof KERNELS / sizeof KERNELS[0]))

/* The kernels the t_* functions below check. A kernel added to engine/kernels.def without a test
 * here fails this test at once, GPU or not (table_check, before the device is looked for); a name
 * listed here that no test reaches on the device fails it after the run (unreached_check). */
static const char *const TESTED[] = {
    "gemm", "gemm_bf16", "gemm_bf16_b16", "to_bf16",                    /* t_gemm, t_gemm_bf16 */
    "embedding_fwd", "embedding_bwd",                                   /* t_embedding */
    "bias_add", "bias_bwd",                                             /* t_bias */
    "add", "axpy", "scale", "tanh_fwd", "tanh_bwd",                     /* t_elementwise */
    "layernorm_fwd", "layernorm_bwd",                                   /* t_layernorm */
    "gelu_fwd", "gelu_bwd",                                             /* t_gelu */
    "scale_mask", "scale_mask_softmax_fwd",                             /* t_scale_mask */
    "softmax_fwd", "softmax_bwd",                                       /* t_softmax */
    "dropout_fwd", "dropout_bwd",                                       /* t_dropout */
    "take_token_fwd", "take_token_bwd", "mean_pool_fwd", "mean_pool_bwd", /* t_pooling */
    "xent_fwd", "xent_bwd", "mse_fwd", "mse_bwd",                       /* t_xent, t_mse */
    "cosine_fwd", "cosine_bwd", "kl_probs_fwd", "kl_probs_bwd",         /* t_cosine, t_kl */
    "sumsq", "sumsq_to", "adamw",                                       /* t_sumsq, t_adamw */
};
#define N_TESTED ((int)(sizeof TESTED / sizeof TESTED[0]))
static int reached[N_TESTED]; /* calls of have() per TESTED entry */

static int tested_index(const char *name) {
    for (int i = 0; i < N_TESTED; i++)
        if (strcmp(TESTED[i], name) == 0) return i;
    return -1;
}

/* Without a device: the CUDA table is complete, every kernel of kernels.def has a test here and
 * every name here is a kernel. Returns the number of problems (each printed as FAIL). */
static int table_check(void) {
    int bad = 0;
    const char *missing = backend_missing_entry(gpu);
    if (missing) {
        printf("FAIL table: the CUDA backend has no '%s' (every backend implements every kernel of "
               "engine/kernels.def)\n", missing);
        bad++;
    }
    for (int k = 0; k < N_KERNELS; k++)
        if (tested_index(KERNELS[k]) < 0) {
            printf("FAIL table: kernel '%s' of engine/kernels.def has no test in tests/test_cuda_ops.c "
                   "(write one and add the name to TESTED)\n", KERNELS[k]);
            bad++;
        }
    for (int i = 0; i < N_TESTED; i++) {
        int k = 0;
        while (k < N_KERNELS && strcmp(KERNELS[k], TESTED[i]) != 0) k++;
        if (k == N_KERNELS) {
            printf("FAIL table: TESTED names '%s', which engine/kernels.def does not list\n", TESTED[i]);
            bad++;
        }
    }
    if (!bad) printf("ok   table: %d kernels in engine/kernels.def, each in the CUDA table and tested here\n", N_KERNELS);
    return bad;
}

/* After the run: every TESTED kernel was reached by a test on the device. */
static int unreached_check(void) {
    int bad = 0;
    for (int i = 0; i < N_TESTED; i++)
        if (!reached[i]) {
            printf("FAIL %s: listed in TESTED but no test reached it\n", TESTED[i]);
            bad++;
        }
    return bad;
}

/* A test is about to call kernel `name`: counts it as reached; a kernel missing from either table
 * is a failure (never a skip: kernels.def promises both). Returns whether both exist. */
static int have(const char *name, int on_gpu, int on_cpu) {
    int i = tested_index(name);
    if (i < 0) {
        printf("FAIL %s: tested but not listed in TESTED\n", name);
        failures++;
    } else {
        reached[i]++;
    }
    if (!on_gpu || !on_cpu) {
        printf("FAIL %s: the %s backend has no such kernel\n", name, on_gpu ? "CPU" : "CUDA");
        failures++;
        return 0;
    }
    return 1;
}
#define HAVE(fn) have(#fn, gpu->fn != NULL, cpu->fn != NULL)
#define NEED(fn)                                                                           \
    do {                                                                                   \
        if (!HAVE(fn)) return;                                                             \
    } while (0)

/* ---------------------------------------------------------------- GEMM */

/* One GEMM case, each batch entry a block of the buffers. TF32 bound per element, with
 * S = sum_k |a||b| (|alpha| times): each input rounded to TF32 (10-bit mantissa) moves a product by
 * <= 2*2^-10 + 2^-20 relative; fp32 accumulation over k terms adds <= k*2^-24 on each side (cuBLAS
 * and OpenBLAS), so |diff| <= (2^-9 + 2^-20 + 2k*2^-24) S, and beta*C rounds once on each side
 * (2U |beta c|). */
/* x rounded to bf16 (through the CPU's to_bf16 kernel) and back to fp32, in place. */
static void round_bf16_host(float *x, size_t n) {
    uint16_t *h = xmalloc((n ? n : 1) * sizeof(uint16_t));
    cpu->to_bf16(h, x, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)h[i] << 16;
        memcpy(&x[i], &u, 4);
    }
    free(h);
}

/* mode 0: gemm (fp32/TF32). mode 1: gemm_bf16, mode 2: gemm_bf16_b16 (B rounded once on the device
 * by to_bf16): the reference is the CPU's fp32 GEMM of the bf16-rounded inputs, and a product of
 * two bf16 values is exact in fp32, so only accumulation differs: (2k*2^-24) S. */
static void t_gemm_case_mode(int mode, int ta, int tb, int m, int n, int k, float alpha, float beta, int batch,
                             int shared_c) {
    char op[64];
    snprintf(op, sizeof op, "gemm%s%s%s %dx%dx%d b%d%s", mode == 1 ? "_bf16 " : mode == 2 ? "_bf16_b16 " : "",
             ta ? "T" : "N", tb ? "T" : "N", m, n, k, batch, shared_c ? " sharedC" : "");
    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1; /* padded leading dims */
    long long sa = (long long)(ta ? k : m) * lda + 5, sb = (long long)(tb ? n : k) * ldb + 1;
    long long sc = shared_c ? 0 : (long long)m * ldc + 3;
    size_t na = (size_t)sa * batch, nb = (size_t)sb * batch;
    size_t nc = shared_c ? (size_t)m * ldc : (size_t)sc * batch;
    float *a = hrand(na, -1, 1), *b = hrand(nb, -1, 1), *c = hrand(nc, -1, 1);
    float *c_ref = hdup(c, nc);
    float *ar = hdup(a, na), *br = hdup(b, nb); /* the reference's inputs */
    if (mode) round_bf16_host(ar, na), round_bf16_host(br, nb);
    cpu->gemm(ta, tb, m, n, k, alpha, ar, lda, sa, br, ldb, sb, beta, c_ref, ldc, sc, batch);

    /* S per element: the same GEMM on |a|, |b| with beta 0 (summed over the batch when C is
     * shared: the entries accumulate into one C). */
    float *aa = hdup(a, na), *ab = hdup(b, nb), *s = xcalloc(nc, sizeof(float));
    for (size_t i = 0; i < na; i++) aa[i] = fabsf(aa[i]);
    for (size_t i = 0; i < nb; i++) ab[i] = fabsf(ab[i]);
    float *s1 = xcalloc(nc, sizeof(float));
    for (int i = 0; i < batch; i++) {
        cpu->gemm(ta, tb, m, n, k, 1.0f, aa + i * sa, lda, 0, ab + i * sb, ldb, 0, 0.0f,
                  s1 + (shared_c ? 0 : i * sc), ldc, 0, 1);
        if (shared_c)
            for (size_t j = 0; j < nc; j++) s[j] += s1[j];
    }
    if (!shared_c) memcpy(s, s1, nc * sizeof(float));
    double *bound = xmalloc(nc * sizeof(double));
    double per = (mode ? 0.0 : ldexp(1.0, -9) + ldexp(1.0, -20)) + 2.0 * k * ldexp(1.0, -24);
    /* A shared C is scaled by beta once per entry: |beta|^j |c| terms, bounded by batch. */
    for (size_t j = 0; j < nc; j++)
        bound[j] = per * fabs(alpha) * s[j] * 1.01 + 2 * U * batch * fabs(beta * c[j]) + 1e-30;

    DBuf da = dnew(a, na), db = dnew(b, nb), dc = dnew(c, nc);
    if (mode == 0) {
        gpu->gemm(ta, tb, m, n, k, alpha, dp(da), lda, sa, dp(db), ldb, sb, beta, dp(dc), ldc, sc, batch);
    } else if (mode == 1) {
        gpu->gemm_bf16(ta, tb, m, n, k, alpha, dp(da), lda, sa, dp(db), ldb, sb, beta, dp(dc), ldc, sc, batch);
    } else {
        uint16_t *db16 = gpu->alloc((nb ? nb : 1) * sizeof(uint16_t));
        gpu->to_bf16(db16, dp(db), nb);
        gpu->gemm_bf16_b16(ta, tb, m, n, k, alpha, dp(da), lda, sa, db16, ldb, sb, beta, dp(dc), ldc, sc, batch);
        gpu->sync();
        gpu->free(db16);
    }
    float *got = dget(dc, op, "C");
    /* Padding columns of C (j >= n) and gaps between entries must be untouched. */
    check_b(op, "C", got, c_ref, nc, 0.0, 0.0, bound);
    free(got);
    dfree(da), dfree(db), dfree(dc);
    free(a), free(b), free(c), free(c_ref), free(aa), free(ab), free(s), free(s1), free(bound), free(ar), free(br);
}

static void t_gemm_case(int ta, int tb, int m, int n, int k, float alpha, float beta, int batch, int shared_c) {
    t_gemm_case_mode(0, ta, tb, m, n, k, alpha, beta, batch, shared_c);
}

/* bf16 GEMMs (both forms) and the rounding kernel: to_bf16 must give the CPU's bits exactly
 * (round to nearest even, both sides). */
static void t_gemm_bf16(void) {
    NEED(gemm_bf16);
    NEED(gemm_bf16_b16);
    NEED(to_bf16);
    const size_t n = 4099;
    float *x = hrand(n, -100, 100);
    x[0] = 1.0f + ldexp(1.0f, -8); /* a tie: rounds to even (1.0) */
    x[1] = 1.0f + 3 * ldexp(1.0f, -8); /* a tie: rounds to even (1 + 2^-6) */
    uint16_t *hc = xmalloc(n * sizeof(uint16_t)), *hg = xmalloc(n * sizeof(uint16_t));
    cpu->to_bf16(hc, x, n);
    DBuf dx = dnew(x, n);
    uint16_t *dg = gpu->alloc(n * sizeof(uint16_t));
    gpu->to_bf16(dg, dp(dx), n);
    gpu->copy(hg, dg, n * sizeof(uint16_t), COPY_D2H);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += hc[i] != hg[i];
    if (bad) {
        printf("FAIL to_bf16: %zu of %zu values differ from the CPU's\n", bad, n);
        failures++;
    } else {
        printf("ok   %-24s %-8s n=%-7zu bitwise\n", "to_bf16", "dst", n);
    }
    gpu->free(dg);
    dfree(dx);
    free(x), free(hc), free(hg);
    for (int mode = 1; mode <= 2; mode++) {
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) t_gemm_case_mode(mode, ta, tb, 37, 53, 67, 1.0f, 0.0f, 3, 0);
        t_gemm_case_mode(mode, 0, 1, 29, 31, 771, 0.5f, 1.0f, 2, 0); /* long reduction, accumulate */
        t_gemm_case_mode(mode, 1, 0, 19, 23, 17, 1.0f, 1.0f, 4, 1);  /* shared C */
        t_gemm_case_mode(mode, 0, 0, 7, 9, 0, 1.0f, 0.5f, 2, 0);     /* k = 0 */
    }
}

static void t_gemm(void) {
    NEED(gemm);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) t_gemm_case(ta, tb, 37, 53, 67, 1.0f, 0.0f, 3, 0);
    t_gemm_case(0, 1, 29, 31, 771, 0.5f, 1.0f, 2, 0);    /* long reduction, accumulate */
    t_gemm_case(1, 0, 19, 23, 17, 1.0f, 1.0f, 4, 1);     /* shared C: entries in order */
    t_gemm_case(0, 0, 1, 1, 1, -2.0f, 0.25f, 1, 0);      /* length 1 */
    t_gemm_case(0, 0, 7, 9, 0, 1.0f, 0.5f, 2, 0);        /* k = 0: C = beta C */
    t_gemm_case(0, 0, 7, 9, 0, 1.0f, 0.0f, 2, 0);        /* k = 0, beta 0: C = 0 */
}

/* ---------------------------------------------------------------- elementwise (exact) */

static void t_elementwise(size_t n) {
    float *a = hrand(n, -2, 2), *b = hrand(n, -2, 2), *y = hrand(n, -2, 2);
    float *ref = xmalloc((n ? n : 1) * sizeof(float));
    DBuf da = dnew(a, n), db = dnew(b, n);
    if (HAVE(add)) {
        DBuf o = dnew(NULL, n);
        cpu->add(ref, a, b, n);
        gpu->add(dp(o), dp(da), dp(db), n);
        check_dev("add", "out", o, ref, 0, 0); /* exact */
        dfree(o);
    }
    if (HAVE(scale)) {
        DBuf o = dnew(NULL, n);
        cpu->scale(ref, a, -1.7f, n);
        gpu->scale(dp(o), dp(da), -1.7f, n);
        check_dev("scale", "out", o, ref, 0, 0); /* exact */
        dfree(o);
    }
    if (HAVE(axpy)) {
        DBuf o = dnew(y, n);
        memcpy(ref, y, n * sizeof(float));
        cpu->axpy(ref, 0.3f, a, n);
        gpu->axpy(dp(o), 0.3f, dp(da), n);
        check_dev("axpy", "y", o, ref, 0, 0); /* exact */
        dfree(o);
    }
    if (HAVE(tanh_fwd)) {
        DBuf o = dnew(NULL, n);
        cpu->tanh_fwd(ref, a, n);
        gpu->tanh_fwd(dp(o), dp(da), n);
        /* tanhf: <= 2 ulp on CUDA, <= 4 ulp in glibc (scalar or libmvec) -> 6U. */
        check_dev("tanh_fwd", "out", o, ref, 0, 6 * U);
        dfree(o);
    }
    if (HAVE(tanh_bwd)) {
        float *out = hrand(n, -1, 1);
        DBuf dout_ = dnew(out, n), dx = dnew(y, n);
        memcpy(ref, y, n * sizeof(float));
        cpu->tanh_bwd(ref, b, out, n);
        gpu->tanh_bwd(dp(dx), dp(db), dp(dout_), n);
        check_dev("tanh_bwd", "dx", dx, ref, 0, 0); /* exact */
        dfree(dout_), dfree(dx), free(out);
    }
    dfree(da), dfree(db);
    free(a), free(b), free(y), free(ref);
}

static void t_dropout(size_t n, float p) {
    NEED(dropout_fwd);
    float *x = hrand(n, -2, 2), *dx0 = hrand(n, -1, 1);
    float *ref = xmalloc(n * sizeof(float));
    DBuf dx_in = dnew(x, n), o = dnew(NULL, n);
    const uint64_t seed = 1234567, offset = 99991;
    cpu->dropout_fwd(ref, x, p, seed, offset, n);
    gpu->dropout_fwd(dp(o), dp(dx_in), p, seed, offset, n);
    check_dev("dropout_fwd", "out", o, ref, 0, 0); /* exact: same mask bits, same x*scale */
    if (HAVE(dropout_bwd)) {
        DBuf g = dnew(dx0, n);
        memcpy(ref, dx0, n * sizeof(float));
        cpu->dropout_bwd(ref, x, p, seed, offset, n);
        gpu->dropout_bwd(dp(g), dp(dx_in), p, seed, offset, n);
        check_dev("dropout_bwd", "dx", g, ref, 0, 0); /* exact */
        dfree(g);
    }
    dfree(dx_in), dfree(o);
    free(x), free(dx0), free(ref);
}

/* ---------------------------------------------------------------- rows and columns */

static void t_bias(int rows, int cols) {
    size_t n = (size_t)rows * cols;
    float *x = hrand(n, -2, 2), *bias = hrand(cols, -1, 1), *db0 = hrand(cols, -1, 1);
    float *ref = xmalloc(n * sizeof(float));
    DBuf dx = dnew(x, n), dbias = dnew(bias, cols);
    if (HAVE(bias_add)) {
        DBuf o = dnew(NULL, n);
        cpu->bias_add(ref, x, bias, rows, cols);
        gpu->bias_add(dp(o), dp(dx), dp(dbias), rows, cols);
        check_dev("bias_add", "out", o, ref, 0, 0); /* exact */
        dfree(o);
    }
    if (HAVE(bias_bwd)) {
        DBuf g = dnew(db0, cols);
        memcpy(ref, db0, cols * sizeof(float));
        cpu->bias_bwd(ref, x, rows, cols);
        gpu->bias_bwd(dp(g), dp(dx), rows, cols);
        /* f64 column sums in a different order (differences ~rows*2^-53 relative), then one
         * float rounding each side: 1 ulp, 2U with margin. */
        check_dev("bias_bwd", "dbias", g, ref, 1e-12, 2 * U);
        dfree(g);
    }
    dfree(dx), dfree(dbias);
    free(x), free(bias), free(db0), free(ref);
}

static void t_gelu(int rows, int cols, int with_bias) {
    NEED(gelu_fwd);
    size_t n = (size_t)rows * cols;
    float *x = hrand(n, -4, 4), *bias = with_bias ? hrand(cols, -1, 1) : NULL;
    float *dout = hrand(n, -1, 1), *dx0 = hrand(n, -1, 1), *db0 = hrand(cols, -1, 1);
    float *ref = xmalloc(n * sizeof(float)), *refb = hdup(db0, cols);
    DBuf dx_in = dnew(x, n), dbias = dnew(bias, with_bias ? cols : 1), o = dnew(NULL, n);
    const float *bias_d = with_bias ? dp(dbias) : NULL;
    cpu->gelu_fwd(ref, x, bias, rows, cols);
    gpu->gelu_fwd(dp(o), dp(dx_in), bias_d, rows, cols);
    /* erff: <= 2 ulp (CUDA) and <= 4 ulp (glibc, scalar or libmvec), |erf| < 1 so an ulp is
     * <= 2^-24: erf differs by <= 3.6e-7, (1 + erf) by <= 4.8e-7 after its rounding; times
     * 0.5|v| <= 2.5 (|x + bias| <= 5) -> 1.2e-6; plus the final rounding (2U|out|). */
    check_dev(with_bias ? "gelu_fwd+bias" : "gelu_fwd", "out", o, ref, 1.2e-6, 2 * U);
    if (HAVE(gelu_bwd)) {
        DBuf ddx = dnew(dx0, n), ddb = dnew(db0, cols), ddout = dnew(dout, n);
        memcpy(ref, dx0, n * sizeof(float));
        cpu->gelu_bwd(ref, with_bias ? refb : NULL, dout, x, bias, rows, cols);
        gpu->gelu_bwd(dp(ddx), with_bias ? dp(ddb) : NULL, dp(ddout), dp(dx_in), bias_d, rows, cols);
        /* gelu'(v) = cdf + v*pdf: cdf differs by <= 0.5 * 4.8e-7 (erff, above); expf by <= 6
         * ulp (2 CUDA + 4 glibc) of pdf <= 0.4 (ulp <= 2^-25) = 1.8e-7, times |v| <= 5: 9e-7;
         * the sum's rounding adds <= 2.4e-7 -> 1.4e-6 per element, times |dout| <= 1; plus the
         * += rounding (2U |dx|). */
        check_dev(with_bias ? "gelu_bwd+bias" : "gelu_bwd", "dx", ddx, ref, 1.4e-6, 2 * U);
        if (with_bias) {
            float *got = dget(ddb, "gelu_bwd+bias", "dbias");
            /* The column sum of `rows` such per-element differences, then a float rounding. */
            check("gelu_bwd+bias", "dbias", got, refb, cols, 1.4e-6 * rows, 2 * U);
            free(got);
        }
        dfree(ddx), dfree(ddb), dfree(ddout);
    }
    dfree(dx_in), dfree(dbias), dfree(o);
    free(x), free(bias), free(dout), free(dx0), free(db0), free(ref), free(refb);
}

static void t_layernorm(int rows, int cols) {
    NEED(layernorm_fwd);
    size_t n = (size_t)rows * cols;
    const float eps = 1e-12f;
    float *x = hrand(n, -2, 3), *gamma = hrand(cols, 0.5f, 1.5f), *beta = hrand(cols, -1, 1);
    float *out = xmalloc(n * sizeof(float)), *mean = xmalloc(rows * sizeof(float));
    float *rstd = xmalloc(rows * sizeof(float));
    cpu->layernorm_fwd(out, mean, rstd, x, gamma, beta, rows, cols, eps);
    DBuf dx_in = dnew(x, n), dg = dnew(gamma, cols), dbt = dnew(beta, cols);
    DBuf o = dnew(NULL, n), dm = dnew(NULL, rows), dr = dnew(NULL, rows);
    gpu->layernorm_fwd(dp(o), dp(dm), dp(dr), dp(dx_in), dp(dg), dp(dbt), rows, cols, eps);
    /* mean and rstd: f64 sums in another order, rounded to float: 1 ulp, 2U with margin. */
    check_dev("layernorm_fwd", "mean", dm, mean, 1e-12, 2 * U);
    check_dev("layernorm_fwd", "rstd", dr, rstd, 0, 2 * U);
    /* out = (x - m) rs g + b: a 1-ulp change of m (|m| <= 3: 3.6e-7) or rs (|x-m| rs <= 5: 6e-7)
     * moves out by <= (3.6e-7 rs + 6e-7) |g| with rs <= ~2, |g| <= 1.5 -> ~2e-6. */
    check_dev("layernorm_fwd", "out", o, out, 2e-6, 2 * U);
    if (HAVE(layernorm_bwd)) {
        /* Both sides get the CPU's mean/rstd, so the backward is compared on its own. */
        float *dout = hrand(n, -1, 1), *dx0 = hrand(n, -1, 1);
        float *dg0 = hrand(cols, -1, 1), *db0 = hrand(cols, -1, 1);
        float *rdx = hdup(dx0, n), *rdg = hdup(dg0, cols), *rdb = hdup(db0, cols);
        cpu->layernorm_bwd(rdx, rdg, rdb, dout, x, mean, rstd, gamma, rows, cols);
        DBuf ddout = dnew(dout, n), ddx = dnew(dx0, n), ddg = dnew(dg0, cols), ddb = dnew(db0, cols);
        DBuf cm = dnew(mean, rows), cr = dnew(rstd, rows);
        gpu->layernorm_bwd(dp(ddx), dp(ddg), dp(ddb), dp(ddout), dp(dx_in), dp(cm), dp(cr), dp(dg),
                           rows, cols);
        /* mean(g), mean(g xhat): f64 sums rounded to float, 1 ulp apart at most (|.| <= 3:
         * 3.6e-7 each), times rs <= ~2 and |xhat| <= ~3 -> ~3e-6; plus the += rounding. */
        check_dev("layernorm_bwd", "dx", ddx, rdx, 3e-6, 2 * U);
        /* Column sums of identical float terms in f64, another order: 1 ulp after rounding. */
        check_dev("layernorm_bwd", "dgamma", ddg, rdg, 1e-12, 2 * U);
        check_dev("layernorm_bwd", "dbeta", ddb, rdb, 1e-12, 2 * U);
        dfree(ddout), dfree(ddx), dfree(ddg), dfree(ddb), dfree(cm), dfree(cr);
        free(dout), free(dx0), free(dg0), free(db0), free(rdx), free(rdg), free(rdb);
    }
    dfree(dx_in), dfree(dg), dfree(dbt), dfree(o), dfree(dm), dfree(dr);
    free(x), free(gamma), free(beta), free(out), free(mean), free(rstd);
}

static void t_softmax(int rows, int cols) {
    NEED(softmax_fwd);
    size_t n = (size_t)rows * cols;
    float *x = hrand(n, -6, 6), *ref = xmalloc(n * sizeof(float));
    DBuf dx_in = dnew(x, n), o = dnew(NULL, n);
    cpu->softmax_fwd(ref, x, rows, cols);
    gpu->softmax_fwd(dp(o), dp(dx_in), rows, cols);
    /* Each exp: <= 2 ulp (CUDA expf) and <= 4 ulp (glibc, scalar or libmvec) -> 6U apart; the
     * normaliser, a sum of such terms, is within 6U too; the product rounds once (1U): 13U. */
    check_dev("softmax_fwd", "probs", o, ref, 0, 13 * U);
    if (HAVE(softmax_bwd)) {
        float *dprobs = hrand(n, -1, 1), *dx0 = hrand(n, -1, 1);
        float *rdx = hdup(dx0, n);
        cpu->softmax_bwd(rdx, dprobs, ref, rows, cols); /* both sides use the CPU's probs */
        DBuf dpr = dnew(ref, n), ddp = dnew(dprobs, n), ddx = dnew(dx0, n);
        gpu->softmax_bwd(dp(ddx), dp(ddp), dp(dpr), rows, cols);
        /* dot = sum dp*p in f64, rounded to float: 1 ulp apart (|dot| <= 1: U); times p <= 1;
         * then the += rounding (U|dx|). */
        check_dev("softmax_bwd", "dx", ddx, rdx, 2 * U, 2 * U);
        dfree(dpr), dfree(ddp), dfree(ddx);
        free(dprobs), free(dx0), free(rdx);
    }
    dfree(dx_in), dfree(o);
    free(x), free(ref);
}

/* mask_add: mostly 0, some -10000 (padding), and batch entry 0's last row fully -inf when
 * all_inf (a fully masked row: both sides must give the uniform row). */
static void t_scale_mask(int B, int H, int R, int C) {
    size_t n = (size_t)B * H * R * C;
    float *x = hrand(n, -3, 3), *mask = xmalloc((size_t)B * C * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) mask[(size_t)b * C + c] = (c * 7 + b) % 5 == 4 ? -10000.0f : 0.0f;
    if (B > 1)
        for (int c = 0; c < C; c++) mask[(size_t)(B - 1) * C + c] = -INFINITY;
    float *ref = xmalloc(n * sizeof(float));
    const float scale = 0.125f;
    DBuf dx_in = dnew(x, n), dm = dnew(mask, (size_t)B * C);
    if (HAVE(scale_mask)) {
        DBuf o = dnew(NULL, n);
        cpu->scale_mask(ref, x, mask, scale, B, H, R, C);
        gpu->scale_mask(dp(o), dp(dx_in), dp(dm), scale, B, H, R, C);
        check_dev("scale_mask", "out", o, ref, 0, 0); /* exact */
        cpu->scale_mask(ref, x, NULL, scale, B, H, R, C);
        gpu->scale_mask(dp(o), dp(dx_in), NULL, scale, B, H, R, C);
        check_dev("scale_mask nomask", "out", o, ref, 0, 0); /* exact */
        dfree(o);
    }
    if (HAVE(scale_mask_softmax_fwd)) {
        DBuf o = dnew(NULL, n);
        cpu->scale_mask_softmax_fwd(ref, x, mask, scale, B, H, R, C);
        gpu->scale_mask_softmax_fwd(dp(o), dp(dx_in), dp(dm), scale, B, H, R, C);
        /* As softmax_fwd: 13U relative. Fully masked rows must be uniform on both sides. */
        check_dev("scale_mask_softmax", "probs", o, ref, 0, 13 * U);
        dfree(o);
    }
    dfree(dx_in), dfree(dm);
    free(x), free(mask), free(ref);
}

static void t_embedding(int n, int vocab, int h) {
    NEED(embedding_fwd);
    int32_t *ids = hrand_i32(n, 0, vocab - 1);
    float *w = hrand((size_t)vocab * h, -1, 1), *ref = xmalloc((size_t)n * h * sizeof(float));
    int32_t *dids = dints(ids, n);
    DBuf dw = dnew(w, (size_t)vocab * h), o = dnew(NULL, (size_t)n * h);
    cpu->embedding_fwd(ref, w, ids, n, h);
    gpu->embedding_fwd(dp(o), dp(dw), dids, n, h);
    check_dev("embedding_fwd", "out", o, ref, 0, 0); /* exact: a copy */
    if (HAVE(embedding_bwd)) {
        float *dout = hrand((size_t)n * h, -1, 1), *dw0 = hrand((size_t)vocab * h, -1, 1);
        float *rdw = hdup(dw0, (size_t)vocab * h);
        cpu->embedding_bwd(rdw, dout, ids, ids[0], n, h); /* ids[0] as padding_idx */
        DBuf ddw = dnew(dw0, (size_t)vocab * h), ddout = dnew(dout, (size_t)n * h);
        gpu->embedding_bwd(dp(ddw), dp(ddout), dids, ids[0], n, h);
        /* Float atomics add a row's d repeats in another order than the CPU: <= d float
         * roundings of partial sums bounded by 1 + d (|dw0|, |dout| <= 1), on each side. */
        int d = 0;
        for (int v = 0; v < vocab; v++) {
            int c = 0;
            for (int i = 0; i < n; i++) c += ids[i] == v;
            if (c > d) d = c;
        }
        check_dev("embedding_bwd", "dw", ddw, rdw, 2.0 * d * (1 + d) * U, 0);
        dfree(ddw), dfree(ddout);
        free(dout), free(dw0), free(rdw);
    }
    gpu->free(dids);
    dfree(dw), dfree(o);
    free(ids), free(w), free(ref);
}

static void t_pooling(int B, int S, int H) {
    size_t n = (size_t)B * S * H;
    float *x = hrand(n, -2, 2), *dx0 = hrand(n, -1, 1), *dout = hrand((size_t)B * H, -1, 1);
    int32_t *len = hrand_i32(B, 0, S);
    len[0] = S;
    if (B > 1) len[1] = 0; /* an empty row pools to zeros */
    if (B > 2) len[2] = S + 5; /* lengths are clamped to S */
    float *ref = xmalloc(n * sizeof(float));
    int32_t *dlen = dints(len, B);
    DBuf dx_in = dnew(x, n), ddout = dnew(dout, (size_t)B * H);
    const int pos = S > 3 ? 3 : 0;
    if (HAVE(take_token_fwd)) {
        DBuf o = dnew(NULL, (size_t)B * H);
        cpu->take_token_fwd(ref, x, pos, B, S, H);
        gpu->take_token_fwd(dp(o), dp(dx_in), pos, B, S, H);
        check_dev("take_token_fwd", "out", o, ref, 0, 0); /* exact: a copy */
        dfree(o);
    }
    if (HAVE(take_token_bwd)) {
        DBuf g = dnew(dx0, n);
        memcpy(ref, dx0, n * sizeof(float));
        cpu->take_token_bwd(ref, dout, pos, B, S, H);
        gpu->take_token_bwd(dp(g), dp(ddout), pos, B, S, H);
        check_dev("take_token_bwd", "dx", g, ref, 0, 0); /* exact */
        dfree(g);
    }
    if (HAVE(mean_pool_fwd)) {
        DBuf o = dnew(NULL, (size_t)B * H);
        cpu->mean_pool_fwd(ref, x, len, B, S, H);
        gpu->mean_pool_fwd(dp(o), dp(dx_in), dlen, B, S, H);
        check_dev("mean_pool_fwd", "out", o, ref, 0, 0); /* exact: same f64 sum, same order */
        dfree(o);
    }
    if (HAVE(mean_pool_bwd)) {
        DBuf g = dnew(dx0, n);
        memcpy(ref, dx0, n * sizeof(float));
        cpu->mean_pool_bwd(ref, dout, len, B, S, H);
        gpu->mean_pool_bwd(dp(g), dp(ddout), dlen, B, S, H);
        check_dev("mean_pool_bwd", "dx", g, ref, 0, 0); /* exact */
        dfree(g);
    }
    gpu->free(dlen);
    dfree(dx_in), dfree(ddout);
    free(x), free(dx0), free(dout), free(len), free(ref);
}

/* ---------------------------------------------------------------- reductions, optimizer */

static void t_sumsq(size_t n) {
    NEED(sumsq);
    float *x = hrand(n, -3, 3);
    DBuf d = dnew(x, n);
    double want = cpu->sumsq(x, n), got = gpu->sumsq(dp(d), n);
    float *back = dget(d, "sumsq", "input"); /* the input must be untouched, guards too */
    check("sumsq", "input", back, x, n, 0, 0);
    /* f64 sums of the same exact squares in another order: n * 2^-53 relative at most. */
    double lim = (double)n * ldexp(1.0, -52) * want + 1e-300;
    if (!(fabs(got - want) <= lim)) {
        printf("FAIL sumsq n=%zu: cuda %.17g cpu %.17g (limit %.3g)\n", n, got, want, lim);
        failures++;
    } else {
        printf("ok   %-24s %-8s n=%-7zu |diff| %.3g\n", "sumsq", "total", n, fabs(got - want));
    }
    /* sumsq_to: the same sum written to device memory, bit for bit what sumsq returned, on each
     * backend (the gradient norm must not change with the way it is read) */
    if (HAVE(sumsq_to)) {
        double *dout = (double *)gpu->alloc(sizeof(double)), to_gpu = -1.0, to_cpu = -1.0;
        gpu->sumsq_to(dout, dp(d), n);
        gpu->copy(&to_gpu, dout, sizeof to_gpu, COPY_D2H);
        gpu->free(dout);
        cpu->sumsq_to(&to_cpu, x, n);
        if (memcmp(&to_gpu, &got, sizeof got) || memcmp(&to_cpu, &want, sizeof want)) {
            printf("FAIL sumsq_to n=%zu: cuda %.17g (sumsq %.17g), cpu %.17g (sumsq %.17g)\n", n, to_gpu, got,
                   to_cpu, want);
            failures++;
        } else {
            printf("ok   %-24s %-8s n=%-7zu bitwise sumsq's on both backends\n", "sumsq_to", "total", n);
        }
    }
    free(back), dfree(d), free(x);
}

static void t_adamw(size_t n) {
    NEED(adamw);
    float *p = hrand(n, -1, 1), *m = hrand(n, -0.1f, 0.1f), *v = hrand(n, 0, 0.01f);
    float *g = hrand(n, -1, 1);
    float *rp = hdup(p, n), *rm = hdup(m, n), *rv = hdup(v, n);
    const float lr = 3e-4f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    const float bc1 = 1.0f - powf(b1, 7), bc2 = 1.0f - powf(b2, 7), gs = 0.75f;
    cpu->adamw(rp, rm, rv, g, n, lr, b1, b2, eps, wd, bc1, bc2, gs);
    DBuf dpp = dnew(p, n), dm = dnew(m, n), dv = dnew(v, n), dg = dnew(g, n);
    gpu->adamw(dp(dpp), dp(dm), dp(dv), dp(dg), n, lr, b1, b2, eps, wd, bc1, bc2, gs);
    /* exact: the same float operations in the same order, sqrtf and / correctly rounded on both */
    check_dev("adamw", "p", dpp, rp, 0, 0);
    check_dev("adamw", "m", dm, rm, 0, 0);
    check_dev("adamw", "v", dv, rv, 0, 0);
    dfree(dpp), dfree(dm), dfree(dv), dfree(dg);
    free(p), free(m), free(v), free(g), free(rp), free(rm), free(rv);
}

/* ---------------------------------------------------------------- losses */

static void scalar_check(const char *op, DBuf d, float want, double rtol) {
    float *got = dget(d, op, "loss");
    check(op, "loss", got, &want, 1, 1e-9, rtol);
    free(got);
}

static void t_xent(int rows, int cols, int soft, int with_entropy) {
    NEED(xent_fwd);
    char op[48];
    snprintf(op, sizeof op, "xent %s%s %dx%d", soft ? "soft" : "hard", with_entropy ? "+H" : "",
             rows, cols);
    size_t n = (size_t)rows * cols;
    float *z = hrand(n, -4, 4), *probs = xmalloc(n * sizeof(float));
    int32_t *labels = hrand_i32(rows, 0, cols - 1);
    float *target = NULL;
    if (soft) { /* rows of probabilities, one exact zero per row to exercise 0 log 0 */
        target = xmalloc(n * sizeof(float));
        float *t = hrand(n, -3, 3);
        cpu->softmax_fwd(target, t, rows, cols);
        for (int r = 0; r < rows && cols > 1; r++) target[(size_t)r * cols] = 0.0f;
        free(t);
    }
    const float inv_t = 0.5f;
    float loss;
    cpu->xent_fwd(&loss, probs, z, soft ? NULL : labels, target, inv_t, with_entropy, rows, cols);
    int32_t *dl = dints(labels, rows);
    DBuf dz = dnew(z, n), dpr = dnew(NULL, n), dt = dnew(target, soft ? n : 1), dout = dnew(NULL, 1);
    gpu->xent_fwd(dp(dout), dp(dpr), dp(dz), soft ? NULL : dl, soft ? dp(dt) : NULL, inv_t,
                  with_entropy, rows, cols);
    /* f64 log-sum-exp in another summation order; exp/log in f64 (<= 1 ulp of f64 on each side)
     * -> the float results differ by <= 1 rounding: 2U. */
    check_dev(op, "probs", dpr, probs, 1e-12, 2 * U);
    scalar_check(op, dout, loss, 2 * U);
    if (HAVE(xent_bwd)) {
        float *dz0 = hrand(n, -1, 1), *rdz = hdup(dz0, n), g = 1.3f;
        cpu->xent_bwd(rdz, &g, probs, soft ? NULL : labels, target, inv_t, rows, cols);
        DBuf ddz = dnew(dz0, n), dg = dnew(&g, 1), cpr = dnew(probs, n);
        gpu->xent_bwd(dp(ddz), dp(dg), dp(cpr), soft ? NULL : dl, soft ? dp(dt) : NULL, inv_t, rows,
                      cols);
        check_dev(op, "dlogits", ddz, rdz, 0, 0); /* exact: same float operations */
        dfree(ddz), dfree(dg), dfree(cpr);
        free(dz0), free(rdz);
    }
    gpu->free(dl);
    dfree(dz), dfree(dpr), dfree(dt), dfree(dout);
    free(z), free(probs), free(labels), free(target);
}

static void t_mse(size_t n, float ignore_below) {
    NEED(mse_fwd);
    const char *op = ignore_below == -INFINITY ? "mse" : "mse masked";
    float *a = hrand(n, -2, 2), *b = hrand(n, -2, 2);
    float loss;
    cpu->mse_fwd(&loss, a, b, ignore_below, n);
    DBuf da = dnew(a, n), db = dnew(b, n), dout = dnew(NULL, 1);
    gpu->mse_fwd(dp(dout), dp(da), dp(db), ignore_below, n);
    scalar_check(op, dout, loss, 2 * U); /* f64 sums in another order: 1 float rounding */
    if (HAVE(mse_bwd)) {
        float *ga = hrand(n, -1, 1), *gb = hrand(n, -1, 1), g = 0.7f;
        float *ra = hdup(ga, n), *rb = hdup(gb, n);
        cpu->mse_bwd(ra, rb, &g, a, b, ignore_below, n);
        DBuf dga = dnew(ga, n), dgb = dnew(gb, n), dg = dnew(&g, 1);
        gpu->mse_bwd(dp(dga), dp(dgb), dp(dg), dp(da), dp(db), ignore_below, n);
        check_dev(op, "da", dga, ra, 0, 0); /* exact */
        check_dev(op, "db", dgb, rb, 0, 0); /* exact */
        dfree(dga), dfree(dgb), dfree(dg);
        free(ga), free(gb), free(ra), free(rb);
    }
    dfree(da), dfree(db), dfree(dout);
    free(a), free(b);
}

static void t_cosine(int rows, int cols) {
    NEED(cosine_fwd);
    size_t n = (size_t)rows * cols;
    float *a = hrand(n, -1, 1), *b = hrand(n, -1, 1);
    for (int c = 0; c < cols; c++) a[c] = 0.0f; /* row 0 of a is zero: the clamped case */
    float loss;
    cpu->cosine_fwd(&loss, a, b, rows, cols);
    DBuf da = dnew(a, n), db = dnew(b, n), dout = dnew(NULL, 1);
    gpu->cosine_fwd(dp(dout), dp(da), dp(db), rows, cols);
    scalar_check("cosine", dout, loss, 2 * U); /* f64 throughout: 1 final rounding */
    if (HAVE(cosine_bwd)) {
        float *ga = hrand(n, -1, 1), *gb = hrand(n, -1, 1), g = 0.9f;
        float *ra = hdup(ga, n), *rb = hdup(gb, n);
        cpu->cosine_bwd(ra, rb, &g, a, b, rows, cols);
        DBuf dga = dnew(ga, n), dgb = dnew(gb, n), dg = dnew(&g, 1);
        gpu->cosine_bwd(dp(dga), dp(dgb), dp(dg), dp(da), dp(db), rows, cols);
        /* f64 terms (differences ~1e-16 relative) rounded to float, then added: <= 2 roundings. */
        check_dev("cosine", "da", dga, ra, 1e-12, 2 * U);
        check_dev("cosine", "db", dgb, rb, 1e-12, 2 * U);
        dfree(dga), dfree(dgb), dfree(dg);
        free(ga), free(gb), free(ra), free(rb);
    }
    dfree(da), dfree(db), dfree(dout);
    free(a), free(b);
}

static void t_kl(int rows, int cols) {
    NEED(kl_probs_fwd);
    size_t n = (size_t)rows * cols;
    float *zs = hrand(n, -3, 3), *zt = hrand(n, -3, 3);
    float *s = xmalloc(n * sizeof(float)), *t = xmalloc(n * sizeof(float));
    cpu->softmax_fwd(s, zs, rows, cols);
    cpu->softmax_fwd(t, zt, rows, cols);
    t[0] = 0.0f;     /* t == 0 terms count 0 */
    s[1] = 1e-38f;   /* below the clamp: log(1e-30) forward, no gradient */
    float loss;
    cpu->kl_probs_fwd(&loss, s, t, rows, cols);
    DBuf ds = dnew(s, n), dt = dnew(t, n), dout = dnew(NULL, 1);
    gpu->kl_probs_fwd(dp(dout), dp(ds), dp(dt), rows, cols);
    scalar_check("kl_probs", dout, loss, 2 * U); /* f64 sums and logs: 1 final rounding */
    if (HAVE(kl_probs_bwd)) {
        float *g0 = hrand(n, -1, 1), *rg = hdup(g0, n), g = 1.1f;
        cpu->kl_probs_bwd(rg, &g, s, t, rows, cols);
        DBuf dg0 = dnew(g0, n), dg = dnew(&g, 1);
        gpu->kl_probs_bwd(dp(dg0), dp(dg), dp(ds), dp(dt), rows, cols);
        check_dev("kl_probs", "ds", dg0, rg, 0, 0); /* exact */
        dfree(dg0), dfree(dg);
        free(g0), free(rg);
    }
    dfree(ds), dfree(dt), dfree(dout);
    free(zs), free(zt), free(s), free(t);
}

/* ---------------------------------------------------------------- main */

int main(void) {
    cpu = backend_cpu();
    gpu = backend_cuda();
    const char *expect = getenv("DISTILL_EXPECT_GPU");
    int must = expect && strcmp(expect, "1") == 0;
    if (!gpu) {
        printf("%s: this build has no CUDA backend\n", must ? "FAIL" : "SKIP");
        return must ? 1 : SKIP_CODE;
    }
    /* The tables first: they need no device, so a kernel without a CUDA entry or without a test
     * fails here on every machine, not only on one with a GPU. */
    if (table_check()) {
        printf("FAIL: the kernel tables (engine/kernels.def, the CUDA table, TESTED) disagree\n");
        return 1;
    }
    int count = gpu->device_count();
    if (count <= 0) {
        printf("%s: no CUDA device (device_count() = %d)\n", must ? "FAIL" : "SKIP", count);
        return must ? 1 : SKIP_CODE;
    }
    if (cpu->init(0) != DISTILL_OK || gpu->init(0) != DISTILL_OK) {
        printf("FAIL: init: %s\n", distill_error());
        return 1;
    }
    printf("cuda:0 = %s\n", gpu->device_name(0));
    rng = rng_new(20240611);

    t_gemm();
    t_gemm_bf16();
    t_elementwise(1);
    t_elementwise(4099);
    t_dropout(1, 0.1f);
    t_dropout(5003, 0.1f);
    t_dropout(777, 0.0f);
    t_bias(37, 131);
    t_bias(1, 1);
    t_bias(300, 67); /* more than one chunk of rows */
    t_gelu(37, 131, 1);
    t_gelu(5, 33, 0);
    t_gelu(300, 7, 1);
    t_layernorm(37, 131);
    t_layernorm(3, 1031);
    t_layernorm(1, 1);
    t_softmax(37, 131);
    t_softmax(5, 1031);
    t_softmax(3, 1);
    t_scale_mask(3, 5, 7, 37);
    t_scale_mask(1, 1, 1, 1);
    t_embedding(41, 7, 67);
    t_embedding(1, 1, 1);
    t_pooling(5, 11, 67);
    t_pooling(1, 1, 1);
    t_sumsq(1);
    t_sumsq(1000003);
    t_adamw(1);
    t_adamw(70001);
    t_xent(37, 5, 0, 0);
    t_xent(3, 1031, 0, 0);
    t_xent(37, 5, 1, 0);
    t_xent(7, 67, 1, 1);
    t_mse(1, -INFINITY);
    t_mse(100003, -INFINITY);
    t_mse(10007, -0.5f);
    t_cosine(37, 131);
    t_cosine(2, 1);
    t_kl(37, 67);

    failures += unreached_check();
    printf("%s: %d failure%s\n", failures ? "FAIL" : "PASS", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
