/*
 * cpu_kernels.h — internal to the CPU backend: the kernels that engine/cpu/cpu_backend.c puts in
 * its Backend table. Each has exactly the contract of the matching entry of engine/kernels.def
 * (outputs first, inputs next, sizes last; backward kernels accumulate with +=).
 *
 * Determinism promise of every kernel here: the result is a pure function of the inputs and the
 * sizes. Reductions are summed in fixed chunks (CPU_ROW_CHUNK rows, CPU_SUM_CHUNK elements) whose
 * order never depends on the OpenMP thread count, so results are bitwise identical run to run and
 * across thread counts (the BLAS GEMM is the one exception: OpenBLAS may split work by thread count).
 */
#ifndef DISTILL_CPU_KERNELS_H
#define DISTILL_CPU_KERNELS_H

#include "engine/backend.h"

/* Rows per partial column sum (bias, LayerNorm and GELU parameter gradients). */
#define CPU_ROW_CHUNK 64
/* Elements per partial sum of a flat reduction (sumsq, MSE). */
#define CPU_SUM_CHUNK 8192

/* A per-thread scratch area of at least `bytes`, 64-byte aligned, reused across calls (grown on
 * demand, never freed). Kernels use it for partial sums; contents are undefined on entry. */
void *cpu_scratch(size_t bytes);

/* Every kernel of engine/kernels.def as cpu_<name>: GEMM, sumsq and AdamW in cpu_backend.c, the
 * elementwise and row ops in cpu_kernels.c, the losses in cpu_losses.c. */
#define DISTILL_KERNEL(ret, name, params) ret cpu_##name params;
#include "engine/kernels.def"

#endif
