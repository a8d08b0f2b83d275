/*
 * cuda_internal.h — what the files of the CUDA backend share: the backend's stream, a growable
 * device scratch buffer, launch-size helpers, warp reductions, and the kernel entry points that
 * cuda_backend.cu puts in its Backend table. Internal to engine/cuda/ (C++/CUDA only).
 *
 * Conventions: every entry point has exactly the contract of its field in engine/backend.h
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
 * Contents undefined on entry; valid until the next cuda_scratch call. Growing waits for queued
 * work (cudaFree synchronises), so work still reading the old buffer is never cut short. */
void *cuda_scratch(size_t bytes);

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

/* ---- cuda_kernels.cu ---- */
void cu_embedding_fwd(float *out, const float *w, const int32_t *ids, int n, int h);
void cu_embedding_bwd(float *dw, const float *dout, const int32_t *ids, int padding_idx, int n, int h);
void cu_bias_add(float *out, const float *x, const float *bias, int rows, int cols);
void cu_bias_bwd(float *dbias, const float *dout, int rows, int cols);
void cu_add(float *out, const float *a, const float *b, size_t n);
void cu_axpy(float *y, float alpha, const float *x, size_t n);
void cu_scale(float *out, const float *x, float s, size_t n);
void cu_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *gamma,
                      const float *beta, int rows, int cols, float eps);
void cu_layernorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                      const float *mean, const float *rstd, const float *gamma, int rows, int cols);
void cu_gelu_fwd(float *out, const float *x, const float *bias, int rows, int cols);
void cu_gelu_bwd(float *dx, float *dbias, const float *dout, const float *x, const float *bias,
                 int rows, int cols);
void cu_tanh_fwd(float *out, const float *x, size_t n);
void cu_tanh_bwd(float *dx, const float *dout, const float *out, size_t n);
void cu_scale_mask(float *out, const float *x, const float *mask_add, float scale,
                   int B, int H, int R, int C);
void cu_softmax_fwd(float *probs, const float *x, size_t rows, int cols);
void cu_softmax_bwd(float *dx, const float *dprobs, const float *probs, size_t rows, int cols);
void cu_scale_mask_softmax_fwd(float *probs, const float *x, const float *mask_add, float scale,
                               int B, int H, int R, int C);
void cu_dropout_fwd(float *out, const float *x, float p, uint64_t seed, uint64_t offset, size_t n);
void cu_dropout_bwd(float *dx, const float *dout, float p, uint64_t seed, uint64_t offset, size_t n);
void cu_take_token_fwd(float *out, const float *x, int pos, int B, int S, int H);
void cu_take_token_bwd(float *dx, const float *dout, int pos, int B, int S, int H);
void cu_mean_pool_fwd(float *out, const float *x, const int32_t *lengths, int B, int S, int H);
void cu_mean_pool_bwd(float *dx, const float *dout, const int32_t *lengths, int B, int S, int H);
double cu_sumsq(const float *x, size_t n);
void cu_adamw(float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1,
              float beta2, float eps, float wd, float bc1, float bc2, float grad_scale);

/* ---- cuda_losses.cu ---- */
void cu_xent_fwd(float *out, float *probs, const float *logits, const int32_t *labels,
                 const float *target, float inv_t, int with_entropy, int rows, int cols);
void cu_xent_bwd(float *dlogits, const float *dout, const float *probs, const int32_t *labels,
                 const float *target, float inv_t, int rows, int cols);
void cu_mse_fwd(float *out, const float *a, const float *b, float ignore_below, size_t n);
void cu_mse_bwd(float *da, float *db, const float *dout, const float *a, const float *b,
                float ignore_below, size_t n);
void cu_cosine_fwd(float *out, const float *a, const float *b, int rows, int cols);
void cu_cosine_bwd(float *da, float *db, const float *dout, const float *a, const float *b,
                   int rows, int cols);
void cu_kl_probs_fwd(float *out, const float *s, const float *t, int rows, int cols);
void cu_kl_probs_bwd(float *ds, const float *dout, const float *s, const float *t, int rows, int cols);

#endif
