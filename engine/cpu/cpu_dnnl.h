/*
 * cpu_dnnl.h — bf16 GEMMs on the CPU (oneDNN; cpu_dnnl.c, or cpu_nodnnl.c in a build without it).
 */
#ifndef DISTILL_CPU_DNNL_H
#define DISTILL_CPU_DNNL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* cpu_gemm_bf16 itself is declared from engine/kernels.def (engine/cpu/cpu_kernels.h). */
/* Whether bf16 GEMMs run natively here (AVX512-BF16 or AMX); when not, why, into why[n]. */
bool cpu_bf16_supported(char *why, size_t n);
/* The instruction set oneDNN dispatches to ("avx512_core_bf16", ...), or "none" without oneDNN. */
const char *cpu_gemm_isa_name(void);

/* Whether this build has oneDNN (the fp32 GEMM may then use it). */
bool cpu_onednn_available(void);
/* The gemm kernel's contract (engine/kernels.def) with fp32 operands, on oneDNN's fp32 matmul
 * (one cached primitive per shape, operands in their stored layouts). Unreachable without oneDNN. */
void cpu_gemm_onednn_f32(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, long long sa,
                         const float *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc,
                         int batch);

#endif
