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

#endif
