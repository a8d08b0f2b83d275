/*
 * cuda_losses.cu — the CUDA kernels of the loss entries of engine/backend.h: softmax
 * cross-entropy (hard and soft targets, temperature), masked MSE, cosine and KL between
 * probability rows; the device twins of engine/cpu/cpu_losses.c.
 *
 * Promises: f64 accumulation, as the CPU; one warp per row for the row losses, each row's loss
 * written to scratch and the mean taken by one block in a fixed order, so the scalar is the same
 * from run to run. Forward kernels write one float, the mean, into *out (device memory); backward
 * kernels read the upstream gradient from *dout (device memory) and accumulate (+=), performing
 * the CPU's float operations in the CPU's order.
 */
#include "engine/cuda/cuda_internal.h"

#include <math.h>

/* torch.nn.functional.cosine_similarity's eps: the product of norms is clamped below at it. */
#define COSINE_EPS 1e-8
/* Probabilities are clamped below at this inside log() (backend.h, kl_probs). */
#define KL_MIN_PROB 1e-30
#define FINISH_THREADS 256

#define WARP_ROW(rows)                                                                         \
    const size_t row = (size_t)blockIdx.x * CUDA_WARPS_PER_BLOCK + threadIdx.x / 32;           \
    const int lane = threadIdx.x & 31;                                                         \
    if (row >= (size_t)(rows)) return

/* *out = (float)(sum of v[0..n) / denom), 0 when n == 0; one block, fixed summation order. */
static __global__ void sum_finish_kernel(float *out, const double *v, size_t n, double denom) {
    __shared__ double sh[FINISH_THREADS];
    double s = 0.0;
    for (size_t i = threadIdx.x; i < n; i += FINISH_THREADS) s += v[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < FINISH_THREADS; i++) t += sh[i];
        *out = n ? (float)(t / denom) : 0.0f;
    }
}

static void finish_mean(float *out, const double *v, size_t n, double denom) {
    sum_finish_kernel<<<1, FINISH_THREADS, 0, cuda_stream()>>>(out, v, n, denom);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- cross-entropy */

/* One warp per row. probs first holds inv_t * z (as the CPU), then softmax(inv_t * z). */
static __global__ void xent_fwd_kernel(double *loss, float *probs, const float *logits,
                                       const int32_t *labels, const float *target, float inv_t,
                                       int with_entropy, int rows, int cols) {
    WARP_ROW(rows);
    const float *z = logits + row * cols;
    float *p = probs + row * cols;
    float mx = -INFINITY;
    for (int c = lane; c < cols; c += 32) {
        p[c] = inv_t * z[c];
        if (p[c] > mx) mx = p[c];
    }
    __syncwarp(); /* the label's p entry, written by another lane, is read below */
    mx = warp_max(mx);
    double s = 0.0;
    for (int c = lane; c < cols; c += 32) s += exp((double)p[c] - mx);
    const double lse = (double)mx + log(warp_sum_d(s));
    double l = 0.0;
    if (labels) {
        l = lse - (double)p[labels[row]]; /* every lane reads the same element */
    } else {
        const float *t = target + row * cols;
        for (int c = lane; c < cols; c += 32) {
            if (t[c] == 0.0f) continue; /* 0 * log(anything) = 0 */
            l += (double)t[c] * (lse - (double)p[c]);
            if (with_entropy) l += (double)t[c] * log((double)t[c]);
        }
        l = warp_sum_d(l);
    }
    __syncwarp();
    for (int c = lane; c < cols; c += 32) p[c] = (float)exp((double)p[c] - lse);
    if (lane == 0) loss[row] = l;
}

void cu_xent_fwd(float *out, float *probs, const float *logits, const int32_t *labels,
                 const float *target, float inv_t, int with_entropy, int rows, int cols) {
    if (rows <= 0 || cols <= 0) {
        CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float), cuda_stream()));
        return;
    }
    double *loss = (double *)cuda_scratch((size_t)rows * sizeof(double));
    xent_fwd_kernel<<<cuda_row_blocks(rows), CUDA_THREADS, 0, cuda_stream()>>>(
        loss, probs, logits, labels, target, inv_t, with_entropy, rows, cols);
    CUDA_CHECK_LAUNCH();
    finish_mean(out, loss, (size_t)rows, (double)rows);
}

/* dlogits += (*dout / rows) * inv_t * (probs - onehot or target); for the label entry the CPU
 * adds g*p then subtracts g, and so does this (same float operations, same order). */
static __global__ void xent_bwd_kernel(float *dlogits, const float *dout, const float *probs,
                                       const int32_t *labels, const float *target, float inv_t,
                                       int rows, int cols) {
    WARP_ROW(rows);
    const float g = *dout / (float)rows * inv_t;
    const float *p = probs + row * cols;
    float *d = dlogits + row * cols;
    if (labels) {
        const int lab = labels[row];
        for (int c = lane; c < cols; c += 32) {
            float v = d[c] + g * p[c];
            if (c == lab) v -= g;
            d[c] = v;
        }
    } else {
        const float *t = target + row * cols;
        for (int c = lane; c < cols; c += 32) d[c] += g * (p[c] - t[c]);
    }
}

void cu_xent_bwd(float *dlogits, const float *dout, const float *probs, const int32_t *labels,
                 const float *target, float inv_t, int rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    xent_bwd_kernel<<<cuda_row_blocks(rows), CUDA_THREADS, 0, cuda_stream()>>>(
        dlogits, dout, probs, labels, target, inv_t, rows, cols);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- MSE */

/* TinyBERT's masking, per side: an entry <= ignore_below counts as 0; -INFINITY disables. */
static __device__ __forceinline__ bool mse_masked(float v, float thr) {
    return thr != -INFINITY && v <= thr;
}

#define MSE_MAX_BLOCKS 1024

static __global__ void mse_partial_kernel(double *part, const float *a, const float *b,
                                          float ignore_below, size_t n) {
    __shared__ double warp_part[CUDA_WARPS_PER_BLOCK];
    double s = 0.0;
    CUDA_GRID_STRIDE(i, n) {
        float ai = mse_masked(a[i], ignore_below) ? 0.0f : a[i];
        float bi = mse_masked(b[i], ignore_below) ? 0.0f : b[i];
        double d = (double)ai - (double)bi;
        s += d * d;
    }
    s = warp_sum_d(s);
    if ((threadIdx.x & 31) == 0) warp_part[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < CUDA_WARPS_PER_BLOCK; w++) t += warp_part[w];
        part[blockIdx.x] = t;
    }
}

void cu_mse_fwd(float *out, const float *a, const float *b, float ignore_below, size_t n) {
    if (!n) {
        CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float), cuda_stream()));
        return;
    }
    unsigned blocks = cuda_blocks(n);
    if (blocks > MSE_MAX_BLOCKS) blocks = MSE_MAX_BLOCKS;
    double *part = (double *)cuda_scratch(blocks * sizeof(double));
    mse_partial_kernel<<<blocks, CUDA_THREADS, 0, cuda_stream()>>>(part, a, b, ignore_below, n);
    CUDA_CHECK_LAUNCH();
    finish_mean(out, part, blocks, (double)n);
}

static __global__ void mse_bwd_kernel(float *da, float *db, const float *dout, const float *a,
                                      const float *b, float ignore_below, size_t n) {
    const float coef = 2.0f * *dout / (float)n;
    CUDA_GRID_STRIDE(i, n) {
        bool ma = mse_masked(a[i], ignore_below), mb = mse_masked(b[i], ignore_below);
        float diff = (ma ? 0.0f : a[i]) - (mb ? 0.0f : b[i]);
        if (da && !ma) da[i] += coef * diff;
        if (db && !mb) db[i] -= coef * diff;
    }
}

void cu_mse_bwd(float *da, float *db, const float *dout, const float *a, const float *b,
                float ignore_below, size_t n) {
    if (!n || (!da && !db)) return;
    mse_bwd_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_stream()>>>(da, db, dout, a, b,
                                                                       ignore_below, n);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- cosine */

/* Per row (one warp): dot, |a|^2, |b|^2 in f64. */
static __device__ __forceinline__ void cosine_sums(const float *ar, const float *br, int cols,
                                                   int lane, double *dot, double *na, double *nb) {
    double d = 0.0, x = 0.0, y = 0.0;
    for (int c = lane; c < cols; c += 32) {
        d += (double)ar[c] * br[c];
        x += (double)ar[c] * ar[c];
        y += (double)br[c] * br[c];
    }
    *dot = warp_sum_d(d);
    *na = warp_sum_d(x);
    *nb = warp_sum_d(y);
}

/* loss_r = 1 - a.b / sqrt(max(|a|^2 |b|^2, eps^2)), as torch's cosine_similarity. */
static __global__ void cosine_fwd_kernel(double *loss, const float *a, const float *b, int rows,
                                         int cols) {
    WARP_ROW(rows);
    double dot, na, nb;
    cosine_sums(a + row * cols, b + row * cols, cols, lane, &dot, &na, &nb);
    double prod = na * nb;
    double denom = sqrt(prod > COSINE_EPS * COSINE_EPS ? prod : COSINE_EPS * COSINE_EPS);
    if (lane == 0) loss[row] = 1.0 - dot / denom;
}

void cu_cosine_fwd(float *out, const float *a, const float *b, int rows, int cols) {
    if (rows <= 0) {
        CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float), cuda_stream()));
        return;
    }
    double *loss = (double *)cuda_scratch((size_t)rows * sizeof(double));
    cosine_fwd_kernel<<<cuda_row_blocks(rows), CUDA_THREADS, 0, cuda_stream()>>>(loss, a, b, rows,
                                                                                 cols);
    CUDA_CHECK_LAUNCH();
    finish_mean(out, loss, (size_t)rows, (double)rows);
}

/* d cos / da = b/(|a||b|) - cos a/|a|^2 (unclamped); b/eps when the norm product is clamped. */
static __global__ void cosine_bwd_kernel(float *da, float *db, const float *dout, const float *a,
                                         const float *b, int rows, int cols) {
    WARP_ROW(rows);
    const double g = -(double)*dout / rows; /* loss = mean(1 - cos) */
    const float *ar = a + row * cols, *br = b + row * cols;
    double dot, na, nb;
    cosine_sums(ar, br, cols, lane, &dot, &na, &nb);
    double prod = na * nb;
    bool clamped = !(prod > COSINE_EPS * COSINE_EPS);
    double inv_denom = clamped ? 1.0 / COSINE_EPS : 1.0 / sqrt(prod);
    double cosv = dot * inv_denom;
    double ka = clamped ? 0.0 : cosv / na, kb = clamped ? 0.0 : cosv / nb;
    if (da) {
        float *d = da + row * cols;
        for (int c = lane; c < cols; c += 32) d[c] += (float)(g * (br[c] * inv_denom - ka * ar[c]));
    }
    if (db) {
        float *d = db + row * cols;
        for (int c = lane; c < cols; c += 32) d[c] += (float)(g * (ar[c] * inv_denom - kb * br[c]));
    }
}

void cu_cosine_bwd(float *da, float *db, const float *dout, const float *a, const float *b,
                   int rows, int cols) {
    if (rows <= 0 || cols <= 0 || (!da && !db)) return;
    cosine_bwd_kernel<<<cuda_row_blocks(rows), CUDA_THREADS, 0, cuda_stream()>>>(da, db, dout, a,
                                                                                 b, rows, cols);
    CUDA_CHECK_LAUNCH();
}

/* ---------------------------------------------------------------- KL between probability rows */

static __global__ void kl_probs_fwd_kernel(double *loss, const float *s, const float *t, int rows,
                                           int cols) {
    WARP_ROW(rows);
    const float *sr = s + row * cols, *tr = t + row * cols;
    double l = 0.0;
    for (int c = lane; c < cols; c += 32) {
        if (tr[c] == 0.0f) continue;
        double sc = sr[c] > KL_MIN_PROB ? (double)sr[c] : KL_MIN_PROB;
        l += (double)tr[c] * (log((double)tr[c]) - log(sc));
    }
    l = warp_sum_d(l);
    if (lane == 0) loss[row] = l;
}

void cu_kl_probs_fwd(float *out, const float *s, const float *t, int rows, int cols) {
    if (rows <= 0) {
        CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float), cuda_stream()));
        return;
    }
    double *loss = (double *)cuda_scratch((size_t)rows * sizeof(double));
    kl_probs_fwd_kernel<<<cuda_row_blocks(rows), CUDA_THREADS, 0, cuda_stream()>>>(loss, s, t,
                                                                                   rows, cols);
    CUDA_CHECK_LAUNCH();
    finish_mean(out, loss, (size_t)rows, (double)rows);
}

/* ds += -(g/rows) t/s; zero where t == 0 or where s is clamped (the clamp is flat there). */
static __global__ void kl_probs_bwd_kernel(float *ds, const float *dout, const float *s,
                                           const float *t, size_t total, int rows) {
    const float g = -*dout / (float)rows;
    CUDA_GRID_STRIDE(i, total)
    if (t[i] != 0.0f && s[i] > KL_MIN_PROB) ds[i] += g * (t[i] / s[i]);
}

void cu_kl_probs_bwd(float *ds, const float *dout, const float *s, const float *t, int rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    size_t total = (size_t)rows * cols;
    kl_probs_bwd_kernel<<<cuda_blocks(total), CUDA_THREADS, 0, cuda_stream()>>>(ds, dout, s, t,
                                                                                total, rows);
    CUDA_CHECK_LAUNCH();
}

#include "engine/cuda/cuda_entry_check.h"
