/*
 * cpu_gemm_rule.c — which library DISTILL_FP32_GEMM=auto gives an fp32 GEMM shape: a fixed rule,
 * measured by scripts/bench_gemm_rule.sh (tests/bench_gemm_rule.c times both libraries through
 * the engine's own entry point cpu_gemm_on on every GEMM of a BERT step and of a batch-1 forward)
 * and written here by hand. A pure function of the shape, so a run and its resumption make the
 * same choices (the two libraries round differently; a choice timed at start-up could differ).
 *
 * Measured (2 threads, AMD EPYC with AVX512, OpenBLAS 0.3.21, oneDNN 2.6.3, small products on one
 * thread as cpu_gemm_on runs them; README Performance): oneDNN's fp32 matmul was faster on every
 * shape, 1.3x to 4x (25 tokens x 312 -> 312, batch 1: 44 us against 135 us; 1024 x 312 -> 1200:
 * 13 ms against 36 ms; the batched attention products 25 x 25 x 26 x 12: 4 us against 7 us),
 * and far steadier beside other busy processes. So the rule is oneDNN for every shape; the
 * function stays the one place a measured exception goes, and DISTILL_FP32_GEMM=openblas keeps
 * OpenBLAS selectable.
 */
#include "engine/cpu/cpu_kernels.h"

bool cpu_gemm_prefers_onednn(int ta, int tb, int m, int n, int k, int batch) {
    (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)batch;
    return true;
}
