/*
 * cpu_kernels.h — internal to the CPU backend: the kernels that engine/cpu/cpu_backend.c puts in
 * its Backend table. Each has exactly the contract of the matching entry of engine/backend.h
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

/* ---- cpu_kernels.c ---- */
void cpu_embedding_fwd(float *out, const float *w, const int32_t *ids, int n, int h);
void cpu_embedding_bwd(float *dw, const float *dout, const int32_t *ids, int padding_idx, int n, int h);
void cpu_bias_add(float *out, const float *x, const float *bias, int rows, int cols);
void cpu_bias_bwd(float *dbias, const float *dout, int rows, int cols);
void cpu_add(float *out, const float *a, const float *b, size_t n);
void cpu_axpy(float *y, float alpha, const float *x, size_t n);
void cpu_scale(float *out, const float *x, float s, size_t n);
void cpu_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *gamma,
                       const float *beta, int rows, int cols, float eps);
void cpu_layernorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                       const float *mean, const float *rstd, const float *gamma, int rows, int cols);
void cpu_gelu_fwd(float *out, const float *x, const float *bias, int rows, int cols);
void cpu_gelu_bwd(float *dx, float *dbias, const float *dout, const float *x, const float *bias,
                  int rows, int cols);
void cpu_tanh_fwd(float *out, const float *x, size_t n);
void cpu_tanh_bwd(float *dx, const float *dout, const float *out, size_t n);
void cpu_scale_mask(float *out, const float *x, const float *mask_add, float scale,
                    int B, int H, int R, int C);
void cpu_softmax_fwd(float *probs, const float *x, size_t rows, int cols);
void cpu_softmax_bwd(float *dx, const float *dprobs, const float *probs, size_t rows, int cols);
void cpu_scale_mask_softmax_fwd(float *probs, const float *x, const float *mask_add, float scale,
                                int B, int H, int R, int C);
void cpu_dropout_fwd(float *out, const float *x, float p, uint64_t seed, uint64_t offset, size_t n);
void cpu_dropout_bwd(float *dx, const float *dout, float p, uint64_t seed, uint64_t offset, size_t n);
void cpu_take_token_fwd(float *out, const float *x, int pos, int B, int S, int H);
void cpu_take_token_bwd(float *dx, const float *dout, int pos, int B, int S, int H);
void cpu_mean_pool_fwd(float *out, const float *x, const int32_t *lengths, int B, int S, int H);
void cpu_mean_pool_bwd(float *dx, const float *dout, const int32_t *lengths, int B, int S, int H);

/* ---- cpu_losses.c ---- */
void cpu_xent_fwd(float *out, float *probs, const float *logits, const int32_t *labels,
                  const float *target, float inv_t, int with_entropy, int rows, int cols);
void cpu_xent_bwd(float *dlogits, const float *dout, const float *probs, const int32_t *labels,
                  const float *target, float inv_t, int rows, int cols);
void cpu_mse_fwd(float *out, const float *a, const float *b, float ignore_below, size_t n);
void cpu_mse_bwd(float *da, float *db, const float *dout, const float *a, const float *b,
                 float ignore_below, size_t n);
void cpu_cosine_fwd(float *out, const float *a, const float *b, int rows, int cols);
void cpu_cosine_bwd(float *da, float *db, const float *dout, const float *a, const float *b,
                    int rows, int cols);
void cpu_kl_probs_fwd(float *out, const float *s, const float *t, int rows, int cols);
void cpu_kl_probs_bwd(float *ds, const float *dout, const float *s, const float *t, int rows, int cols);

#endif
