/*
 * cuda_internal.h — what the files of the CUDA backend share: the backend's stream, a growable
 * device scratch buffer, launch-size helpers, warp reductions, and the kernel entry points that
 * cuda_backend.cu puts in its Backend table. Internal to engine/cuda/ (C++/CUDA only).
 *
 * Conventions: every entry point has exactly the contract of its line in engine/kernels.def
 * (outputs first, inputs next, sizes last; backward kernels accumulate with +=). All work is
 * queued on cuda_stream(), so entries run in call order; an entry returns before its kernel has
 * finished unless its contract says it is synchronous (copy to/from the host, sumsq, sync).
 * Empty sizes launch nothing. Arithmetic is compiled with --fmad=false (engine/CMakeLists.txt) so
 * elementwise results round exactly as the CPU reference's do, operation for operation.
 */
#ifndef DISTILL_CUDA_INTERNAL_H
#define DISTILL_CUDA_INTERNAL_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "engine/backend.h"
}
#include "engine/cuda/cuda_check.h"

/* The stream all backend work is queued on (created by init; selects device 0 on first use if
 * init was never called). */
cudaStream_t cuda_stream(void);
/* Device scratch of at least `bytes`, reused across calls (grown on demand, never shrunk).
 * Contents undefined on entry; valid until the next cuda_scratch call. Growing hands the old
 * buffer back to the caching allocator, which reuses it only in stream order, so work still
 * reading it is never cut short. */
void *cuda_scratch(size_t bytes);

/* ---- memory (cuda_memory.cu): caching allocator and pinned staging, see the top of that file ---- */
void *cuda_pool_alloc(size_t bytes); /* aborts when the device is out of memory */
void cuda_pool_free(void *p);        /* back to its size class's free list; NULL is a no-op */
/* Queues a copy of host memory to the device on `st` through pinned staging; src may be reused
 * as soon as this returns. */
void cuda_h2d(void *dst, const void *src, size_t bytes, cudaStream_t st);
/* Waits for the device, frees the cached blocks and the staging ring (device change). */
void cuda_memory_reset(void);

/* ---- launch helpers ---- */
#define CUDA_THREADS 256
#define CUDA_WARPS_PER_BLOCK (CUDA_THREADS / 32)

/* Blocks for a grid-stride loop over n elements (n > 0). */
static inline unsigned cuda_blocks(size_t n) {
    size_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    const size_t cap = (size_t)1 << 20; /* grid-stride covers the rest */
    return (unsigned)(b < cap ? b : cap);
}
/* Blocks for a warp-per-row kernel over `rows` rows. */
static inline unsigned cuda_row_blocks(size_t rows) {
    return (unsigned)((rows + CUDA_WARPS_PER_BLOCK - 1) / CUDA_WARPS_PER_BLOCK);
}

#define CUDA_GRID_STRIDE(i, n)                                                                 \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                    \
         i += (size_t)blockDim.x * gridDim.x)

/* ---- warp reductions (all 32 lanes must take part) ---- */
static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* ---- the entry points: every kernel of engine/kernels.def as cu_<name> (C++ linkage: only the
 * .cu files of this folder call them); GEMM in cuda_backend.cu, the losses in cuda_losses.cu, the
 * rest in cuda_kernels.cu. A C++ definition whose parameters differ from these would be a silent
 * overload, so every .cu file that defines entries ends with #include "cuda_entry_check.h". */
#define DISTILL_KERNEL(ret, name, params) ret cu_##name params;
#include "engine/kernels.def"

#endif
