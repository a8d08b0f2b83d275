/*
 * backend.h — the table of functions a device provides: memory, copies, and the kernel pair of
 * every op. The op layer (engine/ops.c) picks the table from a tensor's device and calls through it;
 * model, loss and trainer code never call kernels directly.
 *
 * Kernel conventions (llm.c style): outputs first, inputs next, sizes last. All float data is f32,
 * contiguous row-major, and lives on the backend's device (including the scalar `dout`/`out`
 * pointers of loss kernels). Gradient rule, stated once: every backward kernel ACCUMULATES (+=)
 * into its gradient outputs (dx, dw, db, ...); the tape hands out zero-filled gradient buffers, so
 * residual paths and parameters shared across uses need no special case.
 *
 * A backend may leave an entry NULL; the op layer then fails with
 * "op X is not supported on device Y" instead of crashing.
 */
#ifndef DISTILL_BACKEND_H
#define DISTILL_BACKEND_H

#include "tensor.h"

typedef enum { COPY_H2D, COPY_D2H, COPY_D2D } CopyKind;

typedef struct Backend {
    const char *name;
    DeviceType type;

    /* ---- device and memory ---- */
    int (*device_count)(void);
    Status (*init)(int index);                 /* select device, create library handles */
    const char *(*device_name)(int index);     /* human-readable, e.g. "NVIDIA H100 80GB" */
    void *(*alloc)(size_t bytes);              /* aborts on failure */
    void (*free)(void *p);
    void (*zero)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes, CopyKind kind);
    void (*sync)(void);

    /* ---- GEMM ----
     * For b in [0, batch): C_b = alpha * op(A_b) @ op(B_b) + beta * C_b, row-major.
     * op(A_b) is m x k (A_b stored m x k with leading dim lda, or k x m when ta).
     * op(B_b) is k x n (B_b stored k x n with leading dim ldb, or n x k when tb).
     * X_b = X + b * strideX (strides in elements). */
    void (*gemm)(int ta, int tb, int m, int n, int k, float alpha,
                 const float *a, int lda, long long stride_a,
                 const float *b, int ldb, long long stride_b,
                 float beta, float *c, int ldc, long long stride_c, int batch);

    /* ---- elementwise and row ops ---- */
    /* out[i, :] = w[ids[i], :], i < n, row width h. ids must be in range (checked by the op). */
    void (*embedding_fwd)(float *out, const float *w, const int32_t *ids, int n, int h);
    /* dw[ids[i], :] += dout[i, :], except rows whose id is padding_idx (-1: none), which get
     * nothing, as torch's nn.Embedding(padding_idx). */
    void (*embedding_bwd)(float *dw, const float *dout, const int32_t *ids, int padding_idx, int n, int h);
    /* out[r, c] = x[r, c] + bias[c]; out may alias x. */
    void (*bias_add)(float *out, const float *x, const float *bias, int rows, int cols);
    /* dbias[c] += sum_r dout[r, c] */
    void (*bias_bwd)(float *dbias, const float *dout, int rows, int cols);
    void (*add)(float *out, const float *a, const float *b, size_t n);          /* out = a + b */
    void (*axpy)(float *y, float alpha, const float *x, size_t n);             /* y += alpha*x */
    void (*scale)(float *out, const float *x, float s, size_t n);              /* out = s*x */
    /* Per row: mean, rstd = 1/sqrt(var + eps) (biased variance), out = (x-mean)*rstd*gamma + beta. */
    void (*layernorm_fwd)(float *out, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int rows, int cols, float eps);
    void (*layernorm_bwd)(float *dx, float *dgamma, float *dbeta, const float *dout,
                          const float *x, const float *mean, const float *rstd,
                          const float *gamma, int rows, int cols);
    /* out = gelu(x + bias), exact erf GELU; bias may be NULL; out may alias x (elementwise). */
    void (*gelu_fwd)(float *out, const float *x, const float *bias, int rows, int cols);
    /* dx += dout * gelu'(x + bias); dbias (if non-NULL) += colsum of the same. */
    void (*gelu_bwd)(float *dx, float *dbias, const float *dout, const float *x,
                     const float *bias, int rows, int cols);
    void (*tanh_fwd)(float *out, const float *x, size_t n);
    void (*tanh_bwd)(float *dx, const float *dout, const float *out, size_t n); /* uses y=tanh */
    /* x viewed as (B, H, R, C): out = scale*x + mask_add[b, c] (mask_add (B, C), may be NULL). */
    void (*scale_mask)(float *out, const float *x, const float *mask_add, float scale,
                       int B, int H, int R, int C);
    /* Row softmax over the last dim (rows x cols). */
    void (*softmax_fwd)(float *probs, const float *x, size_t rows, int cols);
    /* dx += probs * (dprobs - sum(dprobs*probs)) per row. */
    void (*softmax_bwd)(float *dx, const float *dprobs, const float *probs, size_t rows, int cols);
    /* Fused: probs = softmax(scale*x + mask_add[b, c]) for x viewed as (B, H, R, C). */
    void (*scale_mask_softmax_fwd)(float *probs, const float *x, const float *mask_add,
                                   float scale, int B, int H, int R, int C);
    /* Inverted dropout with a counter-based RNG: element i is kept iff
     * dropout_keep(seed, offset + i, p) (engine/rng.h); out = kept ? x/(1-p) : 0.
     * The backward regenerates the same mask from (seed, offset): no mask is stored. */
    void (*dropout_fwd)(float *out, const float *x, float p, uint64_t seed, uint64_t offset, size_t n);
    void (*dropout_bwd)(float *dx, const float *dout, float p, uint64_t seed, uint64_t offset, size_t n);
    /* x (B, S, H) -> out (B, H): out[b] = x[b, pos]. Backward: dx[b, pos] += dout[b]. */
    void (*take_token_fwd)(float *out, const float *x, int pos, int B, int S, int H);
    void (*take_token_bwd)(float *dx, const float *dout, int pos, int B, int S, int H);
    /* out[b] = mean over s < lengths[b] of x[b, s]; x (B, S, H). */
    void (*mean_pool_fwd)(float *out, const float *x, const int32_t *lengths, int B, int S, int H);
    void (*mean_pool_bwd)(float *dx, const float *dout, const int32_t *lengths, int B, int S, int H);

    /* ---- losses: out/dout are single floats in device memory ---- */
    /* Softmax cross-entropy of rows of logits (rows x cols) at inverse temperature inv_t.
     * Hard targets (labels != NULL): loss_r = -log softmax(inv_t*z_r)[labels[r]].
     * Soft targets (target != NULL, rows x cols probabilities): loss_r = -sum_c target*log s.
     *   with_entropy adds sum_c target*log target (so the result is KL(target || s)).
     * *out = mean over rows of loss_r. probs (rows x cols) receives softmax(inv_t*z) for backward. */
    void (*xent_fwd)(float *out, float *probs, const float *logits, const int32_t *labels,
                     const float *target, float inv_t, int with_entropy, int rows, int cols);
    /* dlogits += (*dout / rows) * inv_t * (probs - onehot/target) */
    void (*xent_bwd)(float *dlogits, const float *dout, const float *probs, const int32_t *labels,
                     const float *target, float inv_t, int rows, int cols);
    /* *out = mean over n of (a-b)^2, where entries with a <= ignore_below or b <= ignore_below
     * count as 0 on both sides (TinyBERT's masked attention scores); -INFINITY disables. */
    void (*mse_fwd)(float *out, const float *a, const float *b, float ignore_below, size_t n);
    /* da += g*2(a-b)/n, db -= g*2(a-b)/n (each if non-NULL), same masking. */
    void (*mse_bwd)(float *da, float *db, const float *dout, const float *a, const float *b,
                    float ignore_below, size_t n);
    /* *out = mean over rows of (1 - cos(a_r, b_r)); a, b (rows x cols). */
    void (*cosine_fwd)(float *out, const float *a, const float *b, int rows, int cols);
    void (*cosine_bwd)(float *da, float *db, const float *dout, const float *a, const float *b,
                       int rows, int cols);
    /* KL between probability rows: *out = mean over rows of sum_c t*(log t - log s), terms with
     * t == 0 are 0; s is clamped below at 1e-30 inside the log. ds += -(g/rows) * t/s. */
    void (*kl_probs_fwd)(float *out, const float *s, const float *t, int rows, int cols);
    void (*kl_probs_bwd)(float *ds, const float *dout, const float *s, const float *t, int rows, int cols);

    /* ---- optimizer and reductions ---- */
    /* Returns sum of x^2 (f64 accumulation on CPU), synchronously, on the host. */
    double (*sumsq)(const float *x, size_t n);
    /* AdamW as torch.optim.AdamW / HF: p -= lr*wd*p; m,v update; p -= lr * mhat/(sqrt(vhat)+eps),
     * with bias corrections bc1 = 1-beta1^t, bc2 = 1-beta2^t given by the caller. grad scaled by
     * grad_scale first (global-norm clipping). */
    void (*adamw)(float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1,
                  float beta2, float eps, float wd, float bc1, float bc2, float grad_scale);
} Backend;

/* The table for a device type: CPU always; CUDA when compiled in (NULL otherwise). */
const Backend *backend_for(DeviceType type);
const Backend *backend_cpu(void);
const Backend *backend_cuda(void); /* NULL when built without CUDA */
/* True when the CUDA backend was compiled in and a device is present. */
bool backend_cuda_available(void);

/* CPU threads for OpenMP loops and OpenBLAS (n <= 0: all cores); the current count. */
void backend_cpu_set_threads(int n);
int backend_cpu_threads(void);

#endif
