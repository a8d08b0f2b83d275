/*
 * bench_gemm_rule.c — the measurement behind DISTILL_FP32_GEMM=auto (engine/cpu/cpu_gemm_rule.c):
 * the engine's own fp32 GEMM entry points, OpenBLAS (cpu_gemm_openblas) against oneDNN
 * (cpu_gemm_onednn_f32), both through cpu_gemm_on (small products on one thread), on every GEMM shape a BERT training step and a batch-1 forward run.
 *
 * Not a test (nothing asserted, no CTest registration): scripts/bench_gemm_rule.sh runs it.
 * Per model shape (L ignored: every layer has the same GEMMs) and token count, the shapes are the
 * linear layers' forward (NT: x W^T), input gradient (NN) and weight gradient (TN), and the
 * attention's batched products (scores NT, context NN, and their gradients). Each GEMM is timed
 * over repeats after a warm-up (the oneDNN primitive is created then); the median counts. Prints
 * one JSON line per shape: ta, tb, m, n, k, batch, openblas_us, onednn_us.
 *
 * Usage: bench_gemm_rule H,A,I B,S [H,A,I B,S ...]   (OMP_NUM_THREADS sets the threads)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/backend.h"
#include "engine/cpu/cpu_dnnl.h"
#include "engine/cpu/cpu_kernels.h"

#define REPEATS 15

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median microseconds of one strided-batch GEMM with packed operands. */
static double time_gemm(bool onednn, int ta, int tb, int m, int n, int k, int batch, float *a, float *b, float *c) {
    int lda = ta ? m : k, ldb = tb ? k : n;
    double t[REPEATS];
    for (int r = -2; r < REPEATS; r++) {
        double t0 = now_s();
        cpu_gemm_on(onednn, ta, tb, m, n, k, 1.0f, a, lda, (long long)m * k, b, ldb, (long long)k * n, 0.0f, c, n, (long long)m * n,
          batch);
        if (r >= 0) t[r] = now_s() - t0;
    }
    qsort(t, REPEATS, sizeof(double), cmp_double);
    return 1e6 * t[REPEATS / 2];
}

static void shape(int ta, int tb, int m, int n, int k, int batch) {
    size_t na = (size_t)batch * m * k, nb = (size_t)batch * k * n, nc = (size_t)batch * m * n;
    float *a = malloc(na * sizeof(float)), *b = malloc(nb * sizeof(float)), *c = malloc(nc * sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "bench_gemm_rule: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < na; i++) a[i] = (float)((i * 7919u) % 1000u) / 1000.0f - 0.5f;
    for (size_t i = 0; i < nb; i++) b[i] = (float)((i * 104729u) % 1000u) / 1000.0f - 0.5f;
    double tob = time_gemm(false, ta, tb, m, n, k, batch, a, b, c);
    double tdn = cpu_onednn_available() ? time_gemm(true, ta, tb, m, n, k, batch, a, b, c) : -1.0;
    printf("{\"ta\":%d,\"tb\":%d,\"m\":%d,\"n\":%d,\"k\":%d,\"batch\":%d,\"openblas_us\":%.1f,\"onednn_us\":%.1f,"
           "\"rule\":\"%s\"}\n",
           ta, tb, m, n, k, batch, tob, tdn, cpu_gemm_prefers_onednn(ta, tb, m, n, k, batch) ? "onednn" : "openblas");
    fflush(stdout);
    free(a);
    free(b);
    free(c);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc % 2 == 0) {
        fprintf(stderr, "usage: bench_gemm_rule H,A,I B,S [H,A,I B,S ...]\n");
        return 2;
    }
    backend_cpu_set_threads(0 < atoi(getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "0")
                                ? atoi(getenv("OMP_NUM_THREADS"))
                                : 0);
    for (int i = 1; i + 1 < argc; i += 2) {
        int H, A, I, B, S;
        if (sscanf(argv[i], "%d,%d,%d", &H, &A, &I) != 3 || sscanf(argv[i + 1], "%d,%d", &B, &S) != 2 || H < 1 ||
            A < 1 || I < 1 || B < 1 || S < 1 || H % A) {
            fprintf(stderr, "bench_gemm_rule: expected H,A,I B,S (A divides H), found '%s' '%s'\n", argv[i],
                    argv[i + 1]);
            return 2;
        }
        int T = B * S, d = H / A;
        int lin[3][2] = {{H, H}, {I, H}, {H, I}}; /* (out, in): q/k/v/out, FFN up, FFN down */
        for (int j = 0; j < 3; j++) {
            int o = lin[j][0], in = lin[j][1];
            shape(0, 1, T, o, in, 1); /* y = x W^T */
            shape(0, 0, T, in, o, 1); /* dx = dy W */
            shape(1, 0, o, in, T, 1); /* dW = dy^T x */
        }
        shape(0, 1, S, S, d, B * A); /* scores = q k^T */
        shape(0, 0, S, d, S, B * A); /* context = p v; dq = ds k */
        shape(1, 0, S, d, S, B * A); /* dk = ds^T q; dv = p^T dctx */
        shape(0, 1, S, S, d, B * A); /* dp = dctx v^T */
    }
    return 0;
}
