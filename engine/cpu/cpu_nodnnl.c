/* cpu_nodnnl.c — the bf16 GEMM entry points in a build without oneDNN: bf16 is refused before any
 * GEMM runs (cpu_bf16_supported says why), so cpu_gemm_bf16 is unreachable by contract. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/cpu/cpu_dnnl.h"
#include "engine/cpu/cpu_kernels.h"

bool cpu_bf16_supported(char *why, size_t n) {
    if (why) snprintf(why, n, "this build has no oneDNN (install libdnnl-dev and rebuild)");
    return false;
}

const char *cpu_gemm_isa_name(void) { return "none"; }

void cpu_gemm_bf16(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, long long sa,
                   const float *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc, int batch) {
    fprintf(stderr, "distill: internal error: a bf16 GEMM in a build without oneDNN\n");
    abort();
}

void cpu_gemm_bf16_b16(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, long long sa,
                       const uint16_t *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc,
                       int batch) {
    fprintf(stderr, "distill: internal error: a bf16 GEMM in a build without oneDNN\n");
    abort();
}

bool cpu_onednn_available(void) { return false; }

void cpu_gemm_onednn_f32(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, long long sa,
                         const float *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc,
                         int batch) {
    fprintf(stderr, "distill: internal error: a oneDNN fp32 GEMM in a build without oneDNN\n");
    abort();
}
