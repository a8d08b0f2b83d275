/*
 * test_bf16.c — the CPU bf16 GEMM (engine/cpu/cpu_dnnl.c) against float64 references.
 *
 * For every case (all four transpose pairs, strided batches, a broadcast operand, alpha != 1,
 * beta = 1 accumulation, ldc > n, batches accumulating into one C) two checks:
 *   1. Against the float64 product of the bf16-ROUNDED inputs: a product of two bf16 values is
 *      exact in fp32 (8 + 8 significant bits), so the only error left is fp32 accumulation, at
 *      most gamma_k = k * 2^-24 (any summation order) times sum |a_i b_i| (plus one rounding of the
 *      result and of alpha/beta): tolerance (k + 3) * 2^-24 * sum |a_i||b_i| per element.
 *   2. Against the float64 product of the fp32 inputs: rounding an input to bf16 moves it by at
 *      most 2^-9 relative, so each product by at most (2^-8 + 2^-18) relative: tolerance
 *      (2^-8 + 2^-17 + (k + 3) * 2^-24) * sum |a_i||b_i|.
 * And one check that bf16 really ran: on random inputs the result must be further from the fp32
 * product than from the bf16 one (a silent fp32 GEMM would match the fp32 product to ~1e-7).
 * Exits 77 (skipped) when the CPU has no bf16 instructions or the build has no oneDNN, unless
 * DISTILL_EXPECT_BF16=1, which makes that a failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_dnnl.h"
#include "engine/cpu/cpu_kernels.h"
#include "engine/rng.h"

static float round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

typedef struct {
    int ta, tb, m, n, k, batch;
    long long sa, sb, sc; /* 0 sa/sb: broadcast; -1: packed */
    int ldc_extra;
    float alpha, beta;
} Case;

static int run_case(const Case *cs, Rng *rng, double *closer_bf16, double *closer_f32) {
    int m = cs->m, n = cs->n, k = cs->k, B = cs->batch;
    int lda = cs->ta ? m : k, ldb = cs->tb ? k : n, ldc = n + cs->ldc_extra;
    long long sa = cs->sa < 0 ? (long long)m * k : cs->sa, sb = cs->sb < 0 ? (long long)k * n : cs->sb;
    long long sc = cs->sc < 0 ? (long long)m * ldc : cs->sc;
    size_t na = (size_t)(sa ? sa * B : 0) + (size_t)m * k, nb = (size_t)(sb ? sb * B : 0) + (size_t)k * n;
    size_t nc = (size_t)(sc ? sc * B : 0) + (size_t)m * ldc;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
    double *c0 = malloc(nc * sizeof *c0);
    for (size_t i = 0; i < na; i++) a[i] = (float)(rng_next_double(rng) * 2 - 1);
    for (size_t i = 0; i < nb; i++) b[i] = (float)(rng_next_double(rng) * 2 - 1);
    for (size_t i = 0; i < nc; i++) c[i] = (float)(rng_next_double(rng) * 2 - 1), c0[i] = c[i];
    cpu_gemm_bf16(cs->ta, cs->tb, m, n, k, cs->alpha, a, lda, sa, b, ldb, sb, cs->beta, c, ldc, sc, B);
    int bad = 0;
    /* the reference, batch by batch in order (batches with sc == 0 accumulate) */
    double *ref_b = calloc(nc, sizeof *ref_b), *ref_f = calloc(nc, sizeof *ref_f), *mag = calloc(nc, sizeof *mag);
    for (size_t i = 0; i < nc; i++) ref_b[i] = ref_f[i] = c0[i];
    for (int q = 0; q < B; q++) {
        const float *A = a + q * sa, *Bm = b + q * sb;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double sbf = 0, sf = 0, sm = 0;
                for (int p = 0; p < k; p++) {
                    float x = cs->ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
                    float y = cs->tb ? Bm[(size_t)j * ldb + p] : Bm[(size_t)p * ldb + j];
                    sbf += (double)round_bf16(x) * round_bf16(y);
                    sf += (double)x * y;
                    sm += fabs((double)x * y);
                }
                size_t o = q * sc + (size_t)i * ldc + j;
                double beta = (sc == 0 && q > 0) ? 1.0 : cs->beta;
                ref_b[o] = cs->alpha * sbf + beta * ref_b[o];
                ref_f[o] = cs->alpha * sf + beta * ref_f[o];
                mag[o] = fabs(cs->alpha) * sm + fabs(beta) * (mag[o] ? mag[o] : fabs(c0[o])) + 1e-30;
            }
    }
    const double u = ldexp(1.0, -24);
    for (int q = 0; q < B; q++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                size_t o = q * sc + (size_t)i * ldc + j;
                /* mag already sums every product that reached this element (all batches when sc == 0) */
                double t1 = (k + 3) * (sc == 0 ? B : 1) * u * mag[o], t2 = (ldexp(1.0, -8) + ldexp(1.0, -17)) * mag[o] + t1;
                double e1 = fabs(c[o] - ref_b[o]), e2 = fabs(c[o] - ref_f[o]);
                if (e1 > t1 || e2 > t2) {
                    if (bad++ < 3)
                        fprintf(stderr, "  (%d,%d,%d): got %.9g, bf16 ref %.9g (err %.3g > %.3g?), fp32 ref %.9g (err %.3g > %.3g?)\n",
                                q, i, j, c[o], ref_b[o], e1, t1, ref_f[o], e2, t2);
                }
                *closer_bf16 += e1;
                *closer_f32 += e2;
            }
    /* padding columns of C (ldc > n) are untouched */
    for (int q = 0; q < B && cs->ldc_extra; q++)
        for (int i = 0; i < m; i++)
            for (int j = n; j < ldc; j++) {
                size_t o = q * sc + (size_t)i * ldc + j;
                if (c[o] != (float)c0[o] && bad++ < 3) fprintf(stderr, "  padding (%d,%d,%d) written\n", q, i, j);
            }
    free(a), free(b), free(c), free(c0), free(ref_b), free(ref_f), free(mag);
    return bad;
}

int main(void) {
    char why[256];
    if (!cpu_bf16_supported(why, sizeof why)) {
        const char *expect = getenv("DISTILL_EXPECT_BF16");
        if (expect && !strcmp(expect, "1")) {
            printf("FAIL: bf16 expected (DISTILL_EXPECT_BF16=1), but %s\n", why);
            return 1;
        }
        printf("skipped: %s\n", why);
        return 77;
    }
    printf("bf16 GEMMs through oneDNN, ISA %s\n", cpu_gemm_isa_name());
    Rng rng = rng_new(7);
    const Case cases[] = {
        {0, 0, 7, 5, 9, 1, -1, -1, -1, 0, 1.0f, 0.0f},
        {0, 1, 33, 17, 64, 1, -1, -1, -1, 3, 1.0f, 0.0f},   /* linear forward: x W^T, ldc > n */
        {1, 0, 16, 24, 40, 1, -1, -1, -1, 0, 1.0f, 1.0f},   /* weight gradient: dy^T x, accumulate */
        {1, 1, 12, 10, 20, 1, -1, -1, -1, 0, 0.5f, 1.0f},
        {0, 1, 8, 8, 16, 6, -1, -1, -1, 0, 0.125f, 0.0f},   /* attention scores, batched, scaled */
        {0, 0, 8, 16, 8, 6, -1, -1, -1, 0, 1.0f, 1.0f},     /* probs x V, accumulate */
        {0, 1, 10, 12, 14, 4, -1, 0, -1, 0, 1.0f, 0.0f},    /* B broadcast over the batch */
        {1, 0, 6, 9, 11, 5, -1, -1, 0, 0, 1.0f, 1.0f},      /* batches accumulating into one C */
        {0, 0, 300, 200, 384, 1, -1, -1, -1, 0, 1.0f, 0.0f}, /* large enough for the parallel packing */
    };
    int failed = 0;
    double eb = 0, ef = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *cs = &cases[i];
        int bad = run_case(cs, &rng, &eb, &ef);
        printf("%s case %zu: ta %d tb %d m %d n %d k %d batch %d alpha %g beta %g\n", bad ? "FAIL" : "ok  ", i, cs->ta,
               cs->tb, cs->m, cs->n, cs->k, cs->batch, (double)cs->alpha, (double)cs->beta);
        failed += bad != 0;
    }
    /* B rounded once (a frozen teacher's weights, params_make_bf16) gives exactly the product that
     * rounds B at every call: the same bits go in, the same primitive runs. x W^T, W stored [n][k]. */
    {
        const int m = 40, n = 24, k = 56;
        float *x = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k);
        float *c1 = malloc(sizeof(float) * m * n), *c2 = malloc(sizeof(float) * m * n);
        uint16_t *w16 = malloc(sizeof(uint16_t) * n * k);
        for (int i = 0; i < m * k; i++) x[i] = (float)(rng_next_double(&rng) * 2 - 1);
        for (int i = 0; i < n * k; i++) w[i] = (float)(rng_next_double(&rng) * 2 - 1);
        cpu_to_bf16(w16, w, (size_t)n * k);
        int exact = 1;
        for (int i = 0; i < n * k; i++) {
            float r = round_bf16(w[i]);
            uint32_t u;
            memcpy(&u, &r, 4);
            exact &= (uint16_t)(u >> 16) == w16[i];
        }
        cpu_gemm_bf16(0, 1, m, n, k, 1.0f, x, k, 0, w, k, 0, 0.0f, c1, n, 0, 1);
        cpu_gemm_bf16_b16(0, 1, m, n, k, 1.0f, x, k, 0, w16, k, 0, 0.0f, c2, n, 0, 1);
        bool same = memcmp(c1, c2, sizeof(float) * m * n) == 0;
        printf("%s to_bf16 rounds to nearest even; gemm_bf16_b16 on pre-rounded weights = gemm_bf16, bitwise\n",
               exact && same ? "ok  " : "FAIL");
        failed += !(exact && same);
        free(x), free(w), free(c1), free(c2), free(w16);
    }
    /* bf16 really ran: the results sit far closer to the bf16-input product than to the fp32 one */
    bool real = eb * 20 < ef;
    printf("%s total error vs the bf16-input product %.3g, vs the fp32 product %.3g (bf16 ran: %s)\n",
           real ? "ok  " : "FAIL", eb, ef, real ? "yes" : "no");
    failed += !real;
    printf(failed ? "%d checks failed\n" : "all checks passed\n", failed);
    return failed ? 1 : 0;
}
