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

#include <stdbool.h>

/* Rows per partial column sum (bias, LayerNorm and GELU parameter gradients). */
#define CPU_ROW_CHUNK 64
/* Elements per partial sum of a flat reduction (sumsq, MSE). */
#define CPU_SUM_CHUNK 8192

/* When a kernel forks OpenMP threads. A parallel region costs a wake-up and a join of every
 * thread (passive waiting, train/main.c: a futex wake, tens of microseconds); beside a busy
 * neighbour process the join waits until the scheduler gives the woken thread a core, up to a
 * timeslice (milliseconds). A step of a small model runs hundreds of small kernels, so forking each
 * one made a 2-thread step ~8x slower than a 1-thread step beside one busy process (README,
 * Performance). A kernel therefore forks only when its work, in units of one cheap element
 * operation (an add), exceeds CPU_PAR_MIN: ~400 us of one core's time (2^18, ~100 us, still
 * forked the GELU of a batch-1 forward), enough that the fork pays for itself even when the
 * woken thread waits for a core. Row and transcendental kernels weigh their elements by CPU_COST_ROW (layernorm,
 * softmax backward, dropout: a few operations per element) or CPU_COST_TRANSC (erf, exp, tanh).
 * Results never depend on the choice (the determinism promise above). */
#define CPU_PAR_MIN ((size_t)1 << 20)
#define CPU_COST_ROW ((size_t)4)
#define CPU_COST_TRANSC ((size_t)16)
#define CPU_PAR(work) ((size_t)(work) > CPU_PAR_MIN)
/* CPU_PARALLEL_FOR(work, for (...) body): the loop under `omp parallel for schedule(static)` when
 * CPU_PAR(work), else the same loop on the calling thread without entering OpenMP at all (an
 * `if(false)` region still builds a one-thread team, which libgomp allocates and frees each time:
 * a step must not allocate). Pragmas inside the body are written _Pragma("omp simd"). */
#define CPU_PARALLEL_FOR(work, ...)                                   \
    do {                                                              \
        if (CPU_PAR(work)) {                                          \
            _Pragma("omp parallel for schedule(static)") __VA_ARGS__ \
        } else {                                                      \
            __VA_ARGS__                                               \
        }                                                             \
    } while (0)

/* A GEMM of at most this many multiply-adds (m n k, per batch entry) runs on one thread: ~300 us
 * of one core. Measured with tests/bench_gemm_rule on the 2-core machine shared with other
 * processes (1-minute load ~6): oneDNN on 2 threads was no faster than on 1 for any BERT shape up
 * to 512 x 512 x 128 (33.5M) and 1.1-1.5x slower for the batch-1 shapes of a 25-token row (the
 * join waits for the other thread to get a core), so batch-1 evaluation and small models run
 * their GEMMs on one thread (README, Benchmarks). 2^21 before. */
#define CPU_GEMM_SERIAL_MNK (1 << 25)

/* The fp32 GEMM (the gemm kernel's contract) on oneDNN (onednn) or OpenBLAS, the small ones
 * (CPU_GEMM_SERIAL_MNK) on one thread: what cpu_gemm runs once it has picked the library. */
void cpu_gemm_on(bool onednn, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 long long sa, const float *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc,
                 int batch);
/* The fp32 GEMM on OpenBLAS, on every thread OpenMP has. */
void cpu_gemm_openblas(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, long long sa,
                       const float *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc,
                       int batch);
/* The fixed rule of DISTILL_FP32_GEMM=auto (cpu_gemm_rule.c): whether oneDNN's fp32 matmul takes
 * this shape. A pure function of the shape. */
bool cpu_gemm_prefers_onednn(int ta, int tb, int m, int n, int k, int batch);

/* A per-thread scratch area of at least `bytes`, 64-byte aligned, reused across calls (grown on
 * demand, never freed). Kernels use it for partial sums; contents are undefined on entry. */
void *cpu_scratch(size_t bytes);

/* Every kernel of engine/kernels.def as cpu_<name>: GEMM, sumsq and AdamW in cpu_backend.c, the
 * elementwise and row ops in cpu_kernels.c, the losses in cpu_losses.c. */
#define DISTILL_KERNEL(ret, name, params) ret cpu_##name params;
#include "engine/kernels.def"

#endif
