/*
 * test_gemm_lib.c — the fp32 GEMM's two libraries (engine/cpu/cpu_backend.c): OpenBLAS and oneDNN
 * (cpu_gemm_on) each against a float64 reference, on odd shapes, every transpose pair, alpha and
 * beta, strided batches, a shared C (stride 0: each entry applies beta, then adds its product), k = 0, and products small
 * enough to run on one thread and large enough to run on all; and DISTILL_FP32_GEMM: a bad value
 * is refused by the backend's init with the expected values named, `openblas` makes cpu_gemm
 * equal OpenBLAS's bitwise and says so in gemm_library.
 *
 * Tolerance: an fp32 dot product of length k with fp32 accumulation errs by at most
 * gamma_k * sum |a_i b_i| (gamma_k = k u / (1 - k u), u = 2^-24; Higham, Accuracy and Stability,
 * 3.1); alpha, beta and the batch sum add one rounding each, so |c - ref| <= (k + 3) u / (1 - (k +
 * 3) u) * (|alpha| sum |a b| + |beta c0|) + FLT_MIN per element. Either library must meet it.
 */
#include "engine/backend.h"
#include "engine/cpu/cpu_dnnl.h"
#include "engine/cpu/cpu_kernels.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) * (1.0 / 16777216.0)) - 0.5f;
}

/* One case: both libraries against the reference. */
static void check(bool onednn, int ta, int tb, int m, int n, int k, float alpha, float beta, int batch, bool shared_c) {
    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2; /* padded rows: strides are honoured */
    long long sa = (long long)(ta ? k : m) * lda + 5, sb = (long long)(tb ? n : k) * ldb, sc = shared_c ? 0 : (long long)m * ldc + 7;
    size_t na = (size_t)sa * batch + 16, nb = (size_t)(sb ? sb : 1) * batch + 16, nc = (size_t)(sc ? sc : (long long)m * ldc) * batch + 16;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c), *c0 = malloc(nc * sizeof *c0);
    double *ref = malloc(nc * sizeof *ref), *bound = malloc(nc * sizeof *bound);
    unsigned s = (unsigned)(m * 131 + n * 31 + k * 7 + ta * 3 + tb + batch * 1009);
    for (size_t i = 0; i < na; i++) a[i] = frand(&s);
    for (size_t i = 0; i < nb; i++) b[i] = frand(&s);
    for (size_t i = 0; i < nc; i++) c0[i] = c[i] = frand(&s);
    for (size_t i = 0; i < nc; i++) ref[i] = c0[i], bound[i] = 0.0;
    for (int q = 0; q < batch; q++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                size_t ci = (size_t)(q * sc) + (size_t)i * ldc + j;
                double dot = 0.0, mag = 0.0;
                for (int p = 0; p < k; p++) {
                    double x = a[q * sa + (ta ? (size_t)p * lda + i : (size_t)i * lda + p)];
                    double y = b[q * sb + (tb ? (size_t)j * ldb + p : (size_t)p * ldb + j)];
                    dot += x * y;
                    mag += fabs(x * y);
                }
                /* the contract, entry by entry: a shared C (stride 0) takes beta at every entry */
                bound[ci] = fabs(alpha) * mag + fabs(beta) * (fabs(ref[ci]) + bound[ci]);
                ref[ci] = alpha * dot + beta * ref[ci];
            }
    cpu_gemm_on(onednn, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
    double u = 1.0 / 16777216.0, g = (k + 3 + batch) * u / (1.0 - (k + 3 + batch) * u);
    for (int q = 0; q < batch; q++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                size_t ci = (size_t)(q * sc) + (size_t)i * ldc + j;
                double err = fabs(c[ci] - ref[ci]), tol = g * bound[ci] + FLT_MIN;
                if (!(err <= tol)) {
                    fprintf(stderr, "test_gemm_lib: FAIL %s ta=%d tb=%d m=%d n=%d k=%d batch=%d%s alpha=%g beta=%g: "
                            "C[%d][%d][%d] = %.9g, expected %.9g within %.3g\n", onednn ? "oneDNN" : "OpenBLAS", ta, tb,
                            m, n, k, batch, shared_c ? " (shared C)" : "", alpha, beta, q, i, j, c[ci], ref[ci], tol);
                    failures++;
                    goto done;
                }
            }
    /* padding between rows is untouched */
    for (int i = 0; i < m; i++)
        for (int j = n; j < ldc && i * ldc + j < (sc ? sc : (long long)m * ldc); j++)
            if (c[(size_t)i * ldc + j] != c0[(size_t)i * ldc + j]) {
                fprintf(stderr, "test_gemm_lib: FAIL %s wrote the padding of row %d\n", onednn ? "oneDNN" : "OpenBLAS", i);
                failures++;
                goto done;
            }
done:
    free(a), free(b), free(c), free(c0), free(ref), free(bound);
}

int main(void) {
    backend_cpu_set_threads(2);
    int libs = cpu_onednn_available() ? 2 : 1;
    static const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {25, 31, 17}, {1, 37, 64}, {130, 67, 129}, {200, 150, 100}};
    for (int lib = 0; lib < libs; lib++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++) {
                int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                check(lib, t >> 1, t & 1, m, n, k, 1.0f, 0.0f, 1, false);
                check(lib, t >> 1, t & 1, m, n, k, 0.125f, 1.0f, 1, false);
                check(lib, t >> 1, t & 1, m, n, k, -2.0f, 0.5f, 3, false);
                check(lib, t >> 1, t & 1, m, n, k, 1.0f, 1.0f, 3, true);
            }
    for (int lib = 0; lib < libs; lib++) check(lib, 0, 1, 9, 4, 0, 1.0f, 0.5f, 2, false); /* k = 0: C = beta C */

    /* DISTILL_FP32_GEMM */
    const Backend *be = backend_cpu();
    setenv("DISTILL_FP32_GEMM", "fastest", 1);
    if (be->init(0) == DISTILL_OK || !strstr(distill_error(), "expected auto, openblas or onednn, found 'fastest'")) {
        fprintf(stderr, "test_gemm_lib: FAIL DISTILL_FP32_GEMM=fastest: expected a refusal naming the values, got '%s'\n",
                distill_error());
        failures++;
    }
    setenv("DISTILL_FP32_GEMM", "openblas", 1);
    if (be->init(0) != DISTILL_OK || !strstr(be->gemm_library(), "DISTILL_FP32_GEMM=openblas")) {
        fprintf(stderr, "test_gemm_lib: FAIL DISTILL_FP32_GEMM=openblas: init or gemm_library ('%s')\n",
                be->gemm_library());
        failures++;
    }
    float a[6 * 5], b[5 * 4], c1[6 * 4], c2[6 * 4];
    unsigned s = 9;
    for (int i = 0; i < 30; i++) a[i] = frand(&s);
    for (int i = 0; i < 20; i++) b[i] = frand(&s);
    cpu_gemm(0, 0, 6, 4, 5, 1.0f, a, 5, 0, b, 4, 0, 0.0f, c1, 4, 0, 1);
    cpu_gemm_on(false, 0, 0, 6, 4, 5, 1.0f, a, 5, 0, b, 4, 0, 0.0f, c2, 4, 0, 1);
    if (memcmp(c1, c2, sizeof c1)) {
        fprintf(stderr, "test_gemm_lib: FAIL DISTILL_FP32_GEMM=openblas: cpu_gemm differs from OpenBLAS's product\n");
        failures++;
    }
    printf("test_gemm_lib: %s, %d libraries (%s)\n", failures ? "FAILED" : "ok", libs, be->gemm_library());
    return failures ? 1 : 0;
}
