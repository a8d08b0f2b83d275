/*
 * cuda_kernels.cu — the CUDA kernels for the elementwise, row, pooling, reduction and optimizer
 * entries of engine/backend.h, each the device twin of its CPU reference in engine/cpu/.
 *
 * Promises (beyond each entry's contract in backend.h):
 *   - Elementwise kernels perform the CPU reference's float operations in the same order and,
 *     built with --fmad=false, round the same way; only erff/expf/tanhf differ (CUDA's are within
 *     2 ulp, glibc's within 1).
 *   - Row kernels (softmax, layer norm) use one warp per row and accumulate row sums in f64, as the
 *     CPU does; only the order of the f64 additions differs.
 *   - Column reductions (bias, GELU-bias and LayerNorm parameter gradients) are deterministic: f64
 *     partial sums over fixed chunks of rows, then the chunks added in order; the result does not
 *     change from run to run. The embedding gradient uses no atomics: positions are sorted by id
 *     (a stable radix sort, so equal ids keep their order), and one thread per (id, column) adds
 *     that id's rows in position order, exactly as the CPU loop does: the result is bitwise the
 *     CPU's, on every run.
 *   - sumsq sums f64 partials of fixed blocks and adds them on the host in order (deterministic);
 *     sumsq_to adds the same partials in the same order on the device (the same bits, no wait).
 *   - AdamW is torch.optim.AdamW in the CPU backend's exact operation order.
 */
#include "engine/cuda/cuda_internal.h"
#include "engine/rng.h"

#include <cub/device/device_radix_sort.cuh>
#include <math.h>

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

/* Warp-per-row kernels: `row` is this warp's row, `lane` its lane; whole warps leave together. */
#define WARP_ROW(rows)                                                                         \
    const size_t row = (size_t)blockIdx.x * CUDA_WARPS_PER_BLOCK + threadIdx.x / 32;           \
    const int lane = threadIdx.x & 31;                                                         \
    if (row >= (size_t)(rows)) return

/* ---------------------------------------------------------------- column sums */

#define COLSUM_TX 32
#define COLSUM_TY 8
#define COLSUM_CHUNK 256 /* rows per partial sum (doubled until the grid fits) */

/* part_a/part_b (nch, cols): f64 sums over the chunk of rows [y*chunk, (y+1)*chunk) of the two
 * values f(r, c, a, b) adds to a and b. */
template <class F>
static __global__ void colsum_partial_kernel(double *part_a, double *part_b, int rows, int cols,
                                             int chunk, F f) {
    __shared__ double sa[COLSUM_TY][COLSUM_TX + 1], sb[COLSUM_TY][COLSUM_TX + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * COLSUM_TX + tx;
    const int r0 = blockIdx.y * chunk;
    const int r1 = min(rows, r0 + chunk);
    double a = 0.0, b = 0.0;
    if (c < cols)
        for (int r = r0 + ty; r < r1; r += COLSUM_TY) f(r, c, a, b);
    sa[ty][tx] = a;
    sb[ty][tx] = b;
    __syncthreads();
    if (ty == 0 && c < cols) {
        double ta = 0.0, tb = 0.0;
        for (int y = 0; y < COLSUM_TY; y++) {
            ta += sa[y][tx];
            tb += sb[y][tx];
        }
        part_a[(size_t)blockIdx.y * cols + c] = ta;
        part_b[(size_t)blockIdx.y * cols + c] = tb;
    }
}

/* dst_x[c] += sum over chunks, in chunk order (each dst may be NULL). */
static __global__ void colsum_finish_kernel(float *dst_a, float *dst_b, const double *part_a,
                                            const double *part_b, int nch, int cols) {
    CUDA_GRID_STRIDE(c, (size_t)cols) {
        double a = 0.0, b = 0.0;
        for (int ch = 0; ch < nch; ch++) {
            a += part_a[(size_t)ch * cols + c];
            b += part_b[(size_t)ch * cols + c];
        }
        if (dst_a) dst_a[c] += (float)a;
        if (dst_b) dst_b[c] += (float)b;
    }
}

template <class F>
static void colsum_launch(float *dst_a, float *dst_b, int rows, int cols, F f) {
    if (rows <= 0 || cols <= 0) return;
    int chunk = COLSUM_CHUNK;
    while ((rows + chunk - 1) / chunk > 65535) chunk *= 2;
    const int nch = (rows + chunk - 1) / chunk;
    double *part = (double *)cuda_scratch(2 * (size_t)nch * cols * sizeof(double));
    double *part_b = part + (size_t)nch * cols;
    cudaStream_t st = cuda_stream();
    dim3 grid((cols + COLSUM_TX - 1) / COLSUM_TX, nch), block(COLSUM_TX, COLSUM_TY);
    colsum_partial_kernel<<<grid, block, 0, st>>>(part, part_b, rows, cols, chunk, f);
    CUDA_CHECK_LAUNCH();
    colsum_finish_kernel<<<cuda_blocks((size_t)cols), CUDA_THREADS, 0, st>>>(dst_a, dst_b, part,
                                                                            part_b, nch, cols);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- embedding */

static __global__ void embedding_fwd_kernel(float *out, const float *w, const int32_t *ids,
                                            size_t total, int h) {
    CUDA_GRID_STRIDE(i, total) {
        size_t r = i / h, c = i % h;
        out[i] = w[(size_t)ids[r] * h + c];
    }
}

static __global__ void iota_kernel(int32_t *pos, int n) {
    CUDA_GRID_STRIDE(i, (size_t)n) pos[i] = (int32_t)i;
}

/* sorted_ids / pos: the ids sorted, and the positions they came from (equal ids in position
 * order). Thread (k, c) with k the first entry of an id's run owns dw[id, c] and adds the run's
 * dout rows in order: dw = ((dw + d_first) + d_next) + ..., the CPU's order. Other k return. */
static __global__ void embedding_bwd_sorted_kernel(float *dw, const float *dout, const int32_t *sorted_ids,
                                                   const int32_t *pos, int padding_idx, int n, int h) {
    CUDA_GRID_STRIDE(i, (size_t)n * h) {
        const int k = (int)(i / h), c = (int)(i % h);
        const int32_t id = sorted_ids[k];
        if (id == padding_idx || (k > 0 && sorted_ids[k - 1] == id)) continue;
        int end = k + 1;
        while (end < n && sorted_ids[end] == id) end++;
        float *d = dw + (size_t)id * h + c;
        float acc = *d;
        /* unrolled: the loads of a long run (token types: half the batch) are issued ahead of the
         * additions, which stay in order */
#pragma unroll 8
        for (int j = k; j < end; j++) acc += dout[(size_t)pos[j] * h + c];
        *d = acc;
    }
}

void cu_embedding_fwd(float *out, const float *w, const int32_t *ids, int n, int h) {
    size_t total = (size_t)(n > 0 ? n : 0) * (size_t)(h > 0 ? h : 0);
    if (!total) return;
    embedding_fwd_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_stream()>>>(out, w, ids,
                                                                                 total, h);
    CUDA_CHECK_LAUNCH();
}

/* Deterministic: sort (id, position) pairs on the device (no host sync, no atomics), then add
 * each id's rows in position order. Ids are in range (the op checks), so non-negative: the sort
 * looks at the bits below the highest set bit of INT32_MAX. */
void cu_embedding_bwd(float *dw, const float *dout, const int32_t *ids, int padding_idx, int n, int h) {
    size_t total = (size_t)(n > 0 ? n : 0) * (size_t)(h > 0 ? h : 0);
    if (!total) return;
    cudaStream_t st = cuda_stream();
    size_t temp_bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, temp_bytes, (const int32_t *)NULL, (int32_t *)NULL,
                                               (const int32_t *)NULL, (int32_t *)NULL, n, 0, 31, st));
    /* scratch: sorted ids | positions in | positions out | the sort's temporary storage */
    const size_t ints = ((size_t)n + 63) & ~(size_t)63; /* keeps each part 256-byte aligned */
    char *scr = (char *)cuda_scratch(3 * ints * sizeof(int32_t) + temp_bytes);
    int32_t *sorted = (int32_t *)scr, *pos_in = sorted + ints, *pos = pos_in + ints;
    void *temp = scr + 3 * ints * sizeof(int32_t);
    iota_kernel<<<cuda_blocks((size_t)n), CUDA_THREADS, 0, st>>>(pos_in, n);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, ids, sorted, pos_in, pos, n, 0, 31, st));
    embedding_bwd_sorted_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, st>>>(dw, dout, sorted, pos, padding_idx,
                                                                             n, h);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- bias, add, axpy, scale */

static __global__ void bias_add_kernel(float *out, const float *x, const float *bias,
                                       size_t total, int cols) {
    CUDA_GRID_STRIDE(i, total) out[i] = x[i] + bias[i % cols];
}

void cu_bias_add(float *out, const float *x, const float *bias, int rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    size_t total = (size_t)rows * cols;
    bias_add_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_stream()>>>(out, x, bias, total,
                                                                            cols);
    CUDA_CHECK_LAUNCH();
}

struct BiasGradF {
    const float *dout;
    int cols;
    __device__ void operator()(int r, int c, double &a, double &) const {
        a += dout[(size_t)r * cols + c];
    }
};

void cu_bias_bwd(float *dbias, const float *dout, int rows, int cols) {
    colsum_launch(dbias, NULL, rows, cols, BiasGradF{dout, cols});
}

static __global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
    CUDA_GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
static __global__ void axpy_kernel(float *y, float alpha, const float *x, size_t n) {
    CUDA_GRID_STRIDE(i, n) y[i] += alpha * x[i];
}
static __global__ void scale_kernel(float *out, const float *x, float s, size_t n) {
    CUDA_GRID_STRIDE(i, n) out[i] = s * x[i];
}

void cu_add(float *out, const float *a, const float *b, size_t n) {
    if (!n) return;
    add_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_stream()>>>(out, a, b, n);
    CUDA_CHECK_LAUNCH();
}
void cu_axpy(float *y, float alpha, const float *x, size_t n) {
    if (!n) return;
    axpy_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_stream()>>>(y, alpha, x, n);
    CUDA_CHECK_LAUNCH();
}
void cu_scale(float *out, const float *x, float s, size_t n) {
    if (!n) return;
    scale_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_stream()>>>(out, x, s, n);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- layer norm */

/* One warp per row; mean and biased variance (two-pass) in f64 as the CPU. out may alias x: every
 * lane reads its x[c] before writing out[c], and the statistics are complete before any write. */
static __global__ void layernorm_fwd_kernel(float *out, float *mean, float *rstd, const float *x,
                                            const float *gamma, const float *beta, int rows,
                                            int cols, float eps) {
    WARP_ROW(rows);
    const float *xr = x + row * cols;
    float *o = out + row * cols;
    double s = 0.0;
    for (int c = lane; c < cols; c += 32) s += xr[c];
    const double mu = warp_sum_d(s) / cols;
    double v = 0.0;
    for (int c = lane; c < cols; c += 32) {
        double d = (double)xr[c] - mu;
        v += d * d;
    }
    v = warp_sum_d(v);
    const float m = (float)mu;
    const float rs = (float)(1.0 / sqrt(v / cols + (double)eps));
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = rs;
    }
    for (int c = lane; c < cols; c += 32) o[c] = (xr[c] - m) * rs * gamma[c] + beta[c];
}

void cu_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *gamma,
                      const float *beta, int rows, int cols, float eps) {
    if (rows <= 0 || cols <= 0) return;
    layernorm_fwd_kernel<<<cuda_row_blocks(rows), CUDA_THREADS, 0, cuda_stream()>>>(
        out, mean, rstd, x, gamma, beta, rows, cols, eps);
    CUDA_CHECK_LAUNCH();
}

/* dx += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * gamma; one warp per row. */
static __global__ void layernorm_bwd_dx_kernel(float *dx, const float *dout, const float *x,
                                               const float *mean, const float *rstd,
                                               const float *gamma, int rows, int cols) {
    WARP_ROW(rows);
    const float *xr = x + row * cols, *d = dout + row * cols;
    float *dxr = dx + row * cols;
    const float m = mean[row], rs = rstd[row];
    double sg = 0.0, sgx = 0.0;
    for (int c = lane; c < cols; c += 32) {
        float xhat = (xr[c] - m) * rs;
        float g = d[c] * gamma[c];
        sg += g;
        sgx += (double)g * xhat;
    }
    sg = warp_sum_d(sg);
    sgx = warp_sum_d(sgx);
    const float mg = (float)(sg / cols), mgx = (float)(sgx / cols);
    for (int c = lane; c < cols; c += 32) {
        float xhat = (xr[c] - m) * rs;
        dxr[c] += rs * (d[c] * gamma[c] - mg - xhat * mgx);
    }
}

struct LayerNormParamGradF {
    const float *dout, *x, *mean, *rstd;
    int cols;
    __device__ void operator()(int r, int c, double &dg, double &db) const {
        size_t i = (size_t)r * cols + c;
        float xhat = (x[i] - mean[r]) * rstd[r];
        dg += (double)dout[i] * xhat;
        db += dout[i];
    }
};

void cu_layernorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                      const float *mean, const float *rstd, const float *gamma, int rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    if (dx) {
        layernorm_bwd_dx_kernel<<<cuda_row_blocks(rows), CUDA_THREADS, 0, cuda_stream()>>>(
            dx, dout, x, mean, rstd, gamma, rows, cols);
        CUDA_CHECK_LAUNCH();
    }
    if (dgamma || dbeta)
        colsum_launch(dgamma, dbeta, rows, cols, LayerNormParamGradF{dout, x, mean, rstd, cols});
}

/* ---------------------------------------------------------------- GELU (exact erf form), tanh */

static __device__ __forceinline__ float gelu_f(float v) {
    return 0.5f * v * (1.0f + erff(v * (float)INV_SQRT2));
}
/* d/dv [v Phi(v)] = Phi(v) + v phi(v) */
static __device__ __forceinline__ float gelu_grad_f(float v) {
    float cdf = 0.5f * (1.0f + erff(v * (float)INV_SQRT2));
    float pdf = (float)INV_SQRT_2PI * expf(-0.5f * v * v);
    return cdf + v * pdf;
}

static __global__ void gelu_fwd_kernel(float *out, const float *x, const float *bias,
                                       size_t total, int cols) {
    CUDA_GRID_STRIDE(i, total) out[i] = gelu_f(bias ? x[i] + bias[i % cols] : x[i]);
}

static __global__ void gelu_bwd_kernel(float *dx, const float *dout, const float *x,
                                       const float *bias, size_t total, int cols) {
    CUDA_GRID_STRIDE(i, total) dx[i] += dout[i] * gelu_grad_f(bias ? x[i] + bias[i % cols] : x[i]);
}

/* With a bias gradient: each (r, c) adds g to dx once and to the column sum once. */
struct GeluGradF {
    float *dx;
    const float *dout, *x, *bias;
    int cols;
    __device__ void operator()(int r, int c, double &db, double &) const {
        size_t i = (size_t)r * cols + c;
        float g = dout[i] * gelu_grad_f(bias ? x[i] + bias[c] : x[i]);
        if (dx) dx[i] += g;
        db += g;
    }
};

void cu_gelu_fwd(float *out, const float *x, const float *bias, int rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    size_t total = (size_t)rows * cols;
    gelu_fwd_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_stream()>>>(out, x, bias, total,
                                                                            cols);
    CUDA_CHECK_LAUNCH();
}

void cu_gelu_bwd(float *dx, float *dbias, const float *dout, const float *x, const float *bias,
                 int rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    if (dbias) {
        colsum_launch(dbias, NULL, rows, cols, GeluGradF{dx, dout, x, bias, cols});
        return;
    }
    if (!dx) return;
    size_t total = (size_t)rows * cols;
    gelu_bwd_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_stream()>>>(dx, dout, x, bias,
                                                                            total, cols);
    CUDA_CHECK_LAUNCH();
}

static __global__ void tanh_fwd_kernel(float *out, const float *x, size_t n) {
    CUDA_GRID_STRIDE(i, n) out[i] = tanhf(x[i]);
}
static __global__ void tanh_bwd_kernel(float *dx, const float *dout, const float *out, size_t n) {
    CUDA_GRID_STRIDE(i, n) dx[i] += dout[i] * (1.0f - out[i] * out[i]);
}

void cu_tanh_fwd(float *out, const float *x, size_t n) {
    if (!n) return;
    tanh_fwd_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_stream()>>>(out, x, n);
    CUDA_CHECK_LAUNCH();
}
void cu_tanh_bwd(float *dx, const float *dout, const float *out, size_t n) {
    if (!n) return;
    tanh_bwd_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_stream()>>>(dx, dout, out, n);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- softmax and masking */

/* x viewed as (B, H, R, C): out = scale*x + mask_add[b, c]. */
static __global__ void scale_mask_kernel(float *out, const float *x, const float *mask_add,
                                         float scale, size_t total, size_t per_b, int C) {
    CUDA_GRID_STRIDE(i, total) {
        float v = scale * x[i];
        out[i] = mask_add ? v + mask_add[(i / per_b) * C + i % C] : v;
    }
}

void cu_scale_mask(float *out, const float *x, const float *mask_add, float scale,
                   int B, int H, int R, int C) {
    if (B <= 0 || H <= 0 || R <= 0 || C <= 0) return;
    size_t per_b = (size_t)H * R * C, total = (size_t)B * per_b;
    scale_mask_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_stream()>>>(
        out, x, mask_add, scale, total, per_b, C);
    CUDA_CHECK_LAUNCH();
}

/* Softmax of one row held in x (optionally as scale*x + m, m may be NULL), one warp:
 * max-subtracted, f64 sum; an all -inf row becomes uniform (NaN entries stay NaN), as the CPU.
 * p may alias x: each lane reads x[c] before writing p[c], after the row statistics are done. */
static __device__ __forceinline__ void softmax_row_warp(float *p, const float *x, const float *m,
                                                        float scale, bool scaled, int cols,
                                                        int lane) {
#define SM_VAL(c) (scaled ? (m ? scale * x[c] + m[c] : scale * x[c]) : x[c])
    float mx = -INFINITY;
    for (int c = lane; c < cols; c += 32) {
        float v = SM_VAL(c);
        if (v > mx) mx = v;
    }
    mx = warp_max(mx);
    if (mx == -INFINITY) {
        float u = 1.0f / (float)cols;
        for (int c = lane; c < cols; c += 32) p[c] = SM_VAL(c) == -INFINITY ? u : NAN;
        return;
    }
    double s = 0.0;
    for (int c = lane; c < cols; c += 32) s += expf(SM_VAL(c) - mx);
    const float inv = (float)(1.0 / warp_sum_d(s));
    for (int c = lane; c < cols; c += 32) p[c] = expf(SM_VAL(c) - mx) * inv;
#undef SM_VAL
}

static __global__ void softmax_fwd_kernel(float *probs, const float *x, size_t rows, int cols) {
    WARP_ROW(rows);
    softmax_row_warp(probs + row * cols, x + row * cols, NULL, 1.0f, false, cols, lane);
}

static __global__ void scale_mask_softmax_kernel(float *probs, const float *x,
                                                 const float *mask_add, float scale, size_t rows,
                                                 size_t rows_per_b, int C) {
    WARP_ROW(rows);
    const float *m = mask_add ? mask_add + (row / rows_per_b) * C : NULL;
    softmax_row_warp(probs + row * C, x + row * C, m, scale, true, C, lane);
}

/* dx += p * (dp - sum(dp * p)) per row, the dot in f64. */
static __global__ void softmax_bwd_kernel(float *dx, const float *dprobs, const float *probs,
                                          size_t rows, int cols) {
    WARP_ROW(rows);
    const float *p = probs + row * cols, *dp = dprobs + row * cols;
    float *d = dx + row * cols;
    double dot = 0.0;
    for (int c = lane; c < cols; c += 32) dot += (double)dp[c] * p[c];
    const float fdot = (float)warp_sum_d(dot);
    for (int c = lane; c < cols; c += 32) d[c] += p[c] * (dp[c] - fdot);
}

void cu_softmax_fwd(float *probs, const float *x, size_t rows, int cols) {
    if (!rows || cols <= 0) return;
    softmax_fwd_kernel<<<cuda_row_blocks(rows), CUDA_THREADS, 0, cuda_stream()>>>(probs, x, rows,
                                                                                  cols);
    CUDA_CHECK_LAUNCH();
}

void cu_softmax_bwd(float *dx, const float *dprobs, const float *probs, size_t rows, int cols) {
    if (!rows || cols <= 0) return;
    softmax_bwd_kernel<<<cuda_row_blocks(rows), CUDA_THREADS, 0, cuda_stream()>>>(
        dx, dprobs, probs, rows, cols);
    CUDA_CHECK_LAUNCH();
}

void cu_scale_mask_softmax_fwd(float *probs, const float *x, const float *mask_add, float scale,
                               int B, int H, int R, int C) {
    if (B <= 0 || H <= 0 || R <= 0 || C <= 0) return;
    size_t rows_per_b = (size_t)H * R, rows = (size_t)B * rows_per_b;
    scale_mask_softmax_kernel<<<cuda_row_blocks(rows), CUDA_THREADS, 0, cuda_stream()>>>(
        probs, x, mask_add, scale, rows, rows_per_b, C);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- dropout */

/* keep_scale = 1/(1-p) is computed on the host exactly as the CPU backend does. */
static __global__ void dropout_fwd_kernel(float *out, const float *x, float p, float keep_scale,
                                          uint64_t seed, uint64_t offset, size_t n) {
    CUDA_GRID_STRIDE(i, n) out[i] = dropout_keep(seed, offset + i, p) ? x[i] * keep_scale : 0.0f;
}
static __global__ void dropout_bwd_kernel(float *dx, const float *dout, float p, float keep_scale,
                                          uint64_t seed, uint64_t offset, size_t n) {
    CUDA_GRID_STRIDE(i, n) if (dropout_keep(seed, offset + i, p)) dx[i] += dout[i] * keep_scale;
}

void cu_dropout_fwd(float *out, const float *x, float p, uint64_t seed, uint64_t offset, size_t n) {
    if (!n) return;
    const float keep_scale = 1.0f / (1.0f - p);
    dropout_fwd_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_stream()>>>(out, x, p, keep_scale,
                                                                           seed, offset, n);
    CUDA_CHECK_LAUNCH();
}

void cu_dropout_bwd(float *dx, const float *dout, float p, uint64_t seed, uint64_t offset, size_t n) {
    if (!n) return;
    const float keep_scale = 1.0f / (1.0f - p);
    dropout_bwd_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_stream()>>>(dx, dout, p, keep_scale,
                                                                           seed, offset, n);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- pooling and selection */

static __global__ void take_token_fwd_kernel(float *out, const float *x, int pos, int S, int H,
                                             size_t total) {
    CUDA_GRID_STRIDE(i, total) {
        size_t b = i / H, h = i % H;
        out[i] = x[(b * S + pos) * H + h];
    }
}
static __global__ void take_token_bwd_kernel(float *dx, const float *dout, int pos, int S, int H,
                                             size_t total) {
    CUDA_GRID_STRIDE(i, total) {
        size_t b = i / H, h = i % H;
        dx[(b * S + pos) * H + h] += dout[i];
    }
}

void cu_take_token_fwd(float *out, const float *x, int pos, int B, int S, int H) {
    if (B <= 0 || H <= 0) return;
    size_t total = (size_t)B * H;
    take_token_fwd_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_stream()>>>(out, x, pos, S,
                                                                                  H, total);
    CUDA_CHECK_LAUNCH();
}
void cu_take_token_bwd(float *dx, const float *dout, int pos, int B, int S, int H) {
    if (B <= 0 || H <= 0) return;
    size_t total = (size_t)B * H;
    take_token_bwd_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_stream()>>>(dx, dout, pos, S,
                                                                                  H, total);
    CUDA_CHECK_LAUNCH();
}

/* Lengths are clamped to [0, S]; a row of length 0 pools to zeros (as the CPU). */
static __device__ __forceinline__ int pool_len(const int32_t *lengths, size_t b, int S) {
    int n = lengths[b];
    return n < 0 ? 0 : n > S ? S : n;
}

/* One thread per (b, h): the f64 sum over t in order, exactly as the CPU. */
static __global__ void mean_pool_fwd_kernel(float *out, const float *x, const int32_t *lengths,
                                            int S, int H, size_t total) {
    CUDA_GRID_STRIDE(i, total) {
        size_t b = i / H, h = i % H;
        int n = pool_len(lengths, b, S);
        const float *xb = x + b * S * H;
        double s = 0.0;
        for (int t = 0; t < n; t++) s += xb[(size_t)t * H + h];
        out[i] = n ? (float)(s / n) : 0.0f;
    }
}

/* One thread per (b, t, h): dx += dout[b, h] / n for t < n. */
static __global__ void mean_pool_bwd_kernel(float *dx, const float *dout, const int32_t *lengths,
                                            int S, int H, size_t total) {
    CUDA_GRID_STRIDE(i, total) {
        size_t h = i % H, bt = i / H, t = bt % S, b = bt / S;
        int n = pool_len(lengths, b, S);
        if ((int)t < n) dx[i] += dout[b * H + h] * (1.0f / (float)n);
    }
}

void cu_mean_pool_fwd(float *out, const float *x, const int32_t *lengths, int B, int S, int H) {
    if (B <= 0 || H <= 0) return;
    size_t total = (size_t)B * H;
    mean_pool_fwd_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_stream()>>>(out, x, lengths,
                                                                                 S, H, total);
    CUDA_CHECK_LAUNCH();
}
void cu_mean_pool_bwd(float *dx, const float *dout, const int32_t *lengths, int B, int S, int H) {
    if (B <= 0 || S <= 0 || H <= 0) return;
    size_t total = (size_t)B * S * H;
    mean_pool_bwd_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_stream()>>>(dx, dout, lengths,
                                                                                 S, H, total);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- sum of squares */

#define SUMSQ_MAX_BLOCKS 1024

/* part[block] = f64 sum of x^2 over this block's grid-stride share. */
static __global__ void sumsq_kernel(double *part, const float *x, size_t n) {
    __shared__ double warp_part[CUDA_WARPS_PER_BLOCK];
    double s = 0.0;
    CUDA_GRID_STRIDE(i, n) s += (double)x[i] * (double)x[i];
    s = warp_sum_d(s);
    if ((threadIdx.x & 31) == 0) warp_part[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < CUDA_WARPS_PER_BLOCK; w++) t += warp_part[w];
        part[blockIdx.x] = t;
    }
}

double cu_sumsq(const float *x, size_t n) {
    if (!n) return 0.0;
    unsigned blocks = cuda_blocks(n);
    if (blocks > SUMSQ_MAX_BLOCKS) blocks = SUMSQ_MAX_BLOCKS;
    double *part = (double *)cuda_scratch(blocks * sizeof(double));
    cudaStream_t st = cuda_stream();
    sumsq_kernel<<<blocks, CUDA_THREADS, 0, st>>>(part, x, n);
    CUDA_CHECK_LAUNCH();
    double host[SUMSQ_MAX_BLOCKS];
    CUDA_CHECK(cudaMemcpyAsync(host, part, blocks * sizeof(double), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    double total = 0.0;
    for (unsigned b = 0; b < blocks; b++) total += host[b];
    return total;
}

/* *out = part[0] + part[1] + ... in order, in f64: cu_sumsq's host sum, on the device. */
static __global__ void sum_parts_kernel(double *out, const double *part, unsigned blocks) {
    double total = 0.0;
    for (unsigned b = 0; b < blocks; b++) total += part[b];
    *out = total;
}

void cu_sumsq_to(double *out, const float *x, size_t n) {
    cudaStream_t st = cuda_stream();
    if (!n) {
        CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof *out, st)); /* +0.0 is all zero bits */
        return;
    }
    unsigned blocks = cuda_blocks(n);
    if (blocks > SUMSQ_MAX_BLOCKS) blocks = SUMSQ_MAX_BLOCKS;
    double *part = (double *)cuda_scratch(blocks * sizeof(double)); /* reused in stream order */
    sumsq_kernel<<<blocks, CUDA_THREADS, 0, st>>>(part, x, n);
    CUDA_CHECK_LAUNCH();
    sum_parts_kernel<<<1, 1, 0, st>>>(out, part, blocks);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- AdamW */

/* torch.optim.AdamW, the CPU backend's operation order:
 *   g = grad_scale*grad; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *   p = p*(1 - lr wd) - (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)  */
static __global__ void adamw_kernel(float *p, float *m, float *v, const float *g, size_t n,
                                    float beta1, float beta2, float eps, float decay, float step,
                                    float sqrt_bc2, float grad_scale) {
    CUDA_GRID_STRIDE(i, n) {
        float gi = g[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / sqrt_bc2 + eps;
        p[i] = p[i] * decay - step * (mi / denom);
    }
}

void cu_adamw(float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1,
              float beta2, float eps, float wd, float bc1, float bc2, float grad_scale) {
    if (!n) return;
    const float decay = 1.0f - lr * wd;
    const float step = lr / bc1;
    const float sqrt_bc2 = sqrtf(bc2);
    adamw_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_stream()>>>(
        p, m, v, g, n, beta1, beta2, eps, decay, step, sqrt_bc2, grad_scale);
    CUDA_CHECK_LAUNCH();
}

#include "engine/cuda/cuda_entry_check.h"
