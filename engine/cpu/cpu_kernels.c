/*
 * cpu_kernels.c — the CPU reference kernels for the elementwise, row and pooling ops of
 * engine/backend.h. Plain loops, OpenMP `parallel for` with a static schedule over rows (or over
 * fixed chunks of rows), f32 data with f64 accumulation for every reduction.
 *
 * Promises (see cpu_kernels.h): backward kernels accumulate (+=); every result is a pure function
 * of the inputs, independent of the thread count — column reductions (bias, gamma/beta gradients)
 * sum fixed chunks of CPU_ROW_CHUNK rows and add the chunk sums in chunk order; the embedding
 * gradient is parallel over column blocks so each dw element is summed in id order.
 * Softmax subtracts the row max; a row whose entries are all -inf (e.g. fully masked with an
 * overflowing mask) becomes uniform instead of NaN, a row of -FLT_MAX is uniform by itself.
 */
#include "engine/cpu/cpu_kernels.h"
#include "engine/rng.h"

#include <math.h>
#include <string.h>

/* glibc's libmvec has vector variants of erff and expf: declaring the functions SIMD-enabled lets
 * `omp simd` loops call them 4-16 lanes at a time (accurate to a few ulps, like the scalar ones).
 * Vector and scalar variants may differ in the last ulp, so which elements take the vector path
 * must not depend on the thread count: simd loops here run within one row, whose alignment
 * depends only on the tensor's base (64-byte aligned by the arena) and the row index, never
 * across thread-dependent chunk boundaries. */
#ifdef DISTILL_HAVE_LIBMVEC
__attribute__((simd("notinbranch"))) float erff(float);
__attribute__((simd("notinbranch"))) float expf(float);
#endif

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

static inline int imin(int a, int b) { return a < b ? a : b; }

/* dst[c] += sum over chunks of part[ch, c], chunks added in order. part is (nch, cols) f64. */
static void colsum_partials_add(float *dst, const double *part, int nch, int cols) {
    CPU_PARALLEL_FOR((size_t)nch * cols,
    for (int c = 0; c < cols; c++) {
        double s = 0.0;
        for (int ch = 0; ch < nch; ch++) s += part[(size_t)ch * cols + c];
        dst[c] += (float)s;
    });
}

/* ---------------------------------------------------------------- embedding */

void cpu_embedding_fwd(float *out, const float *w, const int32_t *ids, int n, int h) {
    CPU_PARALLEL_FOR((size_t)n * h,
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * h, w + (size_t)ids[i] * h, (size_t)h * sizeof(float)););
}

/* Parallel over blocks of 64 columns: each dw element is updated by one thread, in id order. */
void cpu_embedding_bwd(float *dw, const float *dout, const int32_t *ids, int padding_idx, int n, int h) {
    const int blk = 64;
    int nblk = (h + blk - 1) / blk;
    CPU_PARALLEL_FOR((size_t)n * h,
    for (int bi = 0; bi < nblk; bi++) {
        int c0 = bi * blk, c1 = imin(h, c0 + blk);
        for (int i = 0; i < n; i++) {
            if (ids[i] == padding_idx) continue;
            float *d = dw + (size_t)ids[i] * h;
            const float *g = dout + (size_t)i * h;
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    });
}

/* ---------------------------------------------------------------- bias, add, scale */

void cpu_bias_add(float *out, const float *x, const float *bias, int rows, int cols) {
    CPU_PARALLEL_FOR((size_t)rows * cols,
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *o = out + (size_t)r * cols;
        for (int c = 0; c < cols; c++) o[c] = xr[c] + bias[c];
    });
}

void cpu_bias_bwd(float *dbias, const float *dout, int rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    int nch = (rows + CPU_ROW_CHUNK - 1) / CPU_ROW_CHUNK;
    double *part = cpu_scratch((size_t)nch * cols * sizeof(double));
    CPU_PARALLEL_FOR((size_t)rows * cols,
    for (int ch = 0; ch < nch; ch++) {
        double *p = part + (size_t)ch * cols;
        for (int c = 0; c < cols; c++) p[c] = 0.0;
        int r1 = imin(rows, (ch + 1) * CPU_ROW_CHUNK);
        for (int r = ch * CPU_ROW_CHUNK; r < r1; r++) {
            const float *d = dout + (size_t)r * cols;
            for (int c = 0; c < cols; c++) p[c] += d[c];
        }
    });
    colsum_partials_add(dbias, part, nch, cols);
}

void cpu_add(float *out, const float *a, const float *b, size_t n) {
    CPU_PARALLEL_FOR(n,
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];);
}

void cpu_axpy(float *y, float alpha, const float *x, size_t n) {
    CPU_PARALLEL_FOR(n,
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];);
}

void cpu_scale(float *out, const float *x, float s, size_t n) {
    CPU_PARALLEL_FOR(n,
    for (size_t i = 0; i < n; i++) out[i] = s * x[i];);
}

/* ---------------------------------------------------------------- layer norm */

void cpu_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *gamma,
                       const float *beta, int rows, int cols, float eps) {
    CPU_PARALLEL_FOR(CPU_COST_ROW * (size_t)rows * cols,
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *o = out + (size_t)r * cols;
        double s = 0.0;
        _Pragma("omp simd reduction(+ : s)")
        for (int c = 0; c < cols; c++) s += xr[c];
        double mu = s / cols;
        double v = 0.0; /* biased variance, two-pass */
        _Pragma("omp simd reduction(+ : v)")
        for (int c = 0; c < cols; c++) {
            double d = (double)xr[c] - mu;
            v += d * d;
        }
        float m = (float)mu;
        float rs = (float)(1.0 / sqrt(v / cols + (double)eps));
        mean[r] = m;
        rstd[r] = rs;
        _Pragma("omp simd")
        for (int c = 0; c < cols; c++) o[c] = (xr[c] - m) * rs * gamma[c] + beta[c];
    });
}

/* With xhat = (x - mean) rstd and g = dout * gamma:
 *   dx     += rstd * (g - mean(g) - xhat * mean(g * xhat))
 *   dgamma += colsum(dout * xhat),  dbeta += colsum(dout)
 * Parallel over fixed chunks of rows; each chunk keeps its own gamma/beta partial sums. */
void cpu_layernorm_bwd(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                       const float *mean, const float *rstd, const float *gamma, int rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    int nch = (rows + CPU_ROW_CHUNK - 1) / CPU_ROW_CHUNK;
    double *pg = cpu_scratch(2 * (size_t)nch * cols * sizeof(double));
    double *pb = pg + (size_t)nch * cols;
    CPU_PARALLEL_FOR(CPU_COST_ROW * (size_t)rows * cols,
    for (int ch = 0; ch < nch; ch++) {
        double *pgc = pg + (size_t)ch * cols, *pbc = pb + (size_t)ch * cols;
        for (int c = 0; c < cols; c++) pgc[c] = pbc[c] = 0.0;
        int r1 = imin(rows, (ch + 1) * CPU_ROW_CHUNK);
        for (int r = ch * CPU_ROW_CHUNK; r < r1; r++) {
            const float *xr = x + (size_t)r * cols, *d = dout + (size_t)r * cols;
            const float m = mean[r], rs = rstd[r];
            double sg = 0.0, sgx = 0.0;
            _Pragma("omp simd reduction(+ : sg, sgx)")
            for (int c = 0; c < cols; c++) {
                float xhat = (xr[c] - m) * rs;
                float g = d[c] * gamma[c];
                sg += g;
                sgx += (double)g * xhat;
                pgc[c] += (double)d[c] * xhat;
                pbc[c] += d[c];
            }
            if (dx) {
                float mg = (float)(sg / cols), mgx = (float)(sgx / cols);
                float *dxr = dx + (size_t)r * cols;
                for (int c = 0; c < cols; c++) {
                    float xhat = (xr[c] - m) * rs;
                    dxr[c] += rs * (d[c] * gamma[c] - mg - xhat * mgx);
                }
            }
        }
    });
    if (dgamma) colsum_partials_add(dgamma, pg, nch, cols);
    if (dbeta) colsum_partials_add(dbeta, pb, nch, cols);
}

/* ---------------------------------------------------------------- GELU (exact erf form), tanh */

static inline float gelu_f(float v) { return 0.5f * v * (1.0f + erff(v * (float)INV_SQRT2)); }

/* d/dv [v Phi(v)] = Phi(v) + v phi(v) */
static inline float gelu_grad_f(float v) {
    float cdf = 0.5f * (1.0f + erff(v * (float)INV_SQRT2));
    float pdf = (float)INV_SQRT_2PI * expf(-0.5f * v * v);
    return cdf + v * pdf;
}

void cpu_gelu_fwd(float *out, const float *x, const float *bias, int rows, int cols) {
    CPU_PARALLEL_FOR(CPU_COST_TRANSC * (size_t)rows * cols,
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *o = out + (size_t)r * cols;
        if (bias) {
            _Pragma("omp simd")
            for (int c = 0; c < cols; c++) o[c] = gelu_f(xr[c] + bias[c]);
        } else {
            _Pragma("omp simd")
            for (int c = 0; c < cols; c++) o[c] = gelu_f(xr[c]);
        }
    });
}

void cpu_gelu_bwd(float *dx, float *dbias, const float *dout, const float *x, const float *bias,
                  int rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    if (!dbias) {
    CPU_PARALLEL_FOR(CPU_COST_TRANSC * (size_t)rows * cols,
        for (int r = 0; r < rows; r++) {
            const float *xr = x + (size_t)r * cols, *d = dout + (size_t)r * cols;
            float *dxr = dx + (size_t)r * cols;
            if (bias) {
                _Pragma("omp simd")
                for (int c = 0; c < cols; c++) dxr[c] += d[c] * gelu_grad_f(xr[c] + bias[c]);
            } else {
                _Pragma("omp simd")
                for (int c = 0; c < cols; c++) dxr[c] += d[c] * gelu_grad_f(xr[c]);
            }
        });
        return;
    }
    int nch = (rows + CPU_ROW_CHUNK - 1) / CPU_ROW_CHUNK;
    double *part = cpu_scratch((size_t)nch * cols * sizeof(double));
    CPU_PARALLEL_FOR(CPU_COST_TRANSC * (size_t)rows * cols,
    for (int ch = 0; ch < nch; ch++) {
        double *p = part + (size_t)ch * cols;
        for (int c = 0; c < cols; c++) p[c] = 0.0;
        int r1 = imin(rows, (ch + 1) * CPU_ROW_CHUNK);
        for (int r = ch * CPU_ROW_CHUNK; r < r1; r++) {
            const float *xr = x + (size_t)r * cols, *d = dout + (size_t)r * cols;
            float *dxr = dx + (size_t)r * cols;
            if (bias) {
                _Pragma("omp simd")
                for (int c = 0; c < cols; c++) {
                    float g = d[c] * gelu_grad_f(xr[c] + bias[c]);
                    dxr[c] += g;
                    p[c] += g;
                }
            } else {
                _Pragma("omp simd")
                for (int c = 0; c < cols; c++) {
                    float g = d[c] * gelu_grad_f(xr[c]);
                    dxr[c] += g;
                    p[c] += g;
                }
            }
        }
    });
    colsum_partials_add(dbias, part, nch, cols);
}

void cpu_tanh_fwd(float *out, const float *x, size_t n) {
    CPU_PARALLEL_FOR(CPU_COST_TRANSC * n,
    for (size_t i = 0; i < n; i++) out[i] = tanhf(x[i]););
}

void cpu_tanh_bwd(float *dx, const float *dout, const float *out, size_t n) {
    CPU_PARALLEL_FOR(n,
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * (1.0f - out[i] * out[i]););
}

/* ---------------------------------------------------------------- softmax and masking */

/* One row of scale*x + mask (mask may be NULL). Shared by the fused and unfused kernels so both
 * produce the same bits. */
static inline void scale_mask_row(float *o, const float *x, const float *m, float scale, int C) {
    if (m)
        for (int c = 0; c < C; c++) o[c] = scale * x[c] + m[c];
    else
        for (int c = 0; c < C; c++) o[c] = scale * x[c];
}

/* In-place softmax of one row, max-subtracted, f64 sum. */
static inline void softmax_row_inplace(float *p, int cols) {
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int c = 0; c < cols; c++) mx = p[c] > mx ? p[c] : mx;
    if (mx == -INFINITY) {
        /* Every entry is -inf (or NaN): -inf rows become uniform, NaN stays NaN. */
        float u = 1.0f / (float)cols;
        for (int c = 0; c < cols; c++) p[c] = p[c] == -INFINITY ? u : NAN;
        return;
    }
#pragma omp simd
    for (int c = 0; c < cols; c++) p[c] = expf(p[c] - mx);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < cols; c++) s += p[c];
    float inv = (float)(1.0 / s);
#pragma omp simd
    for (int c = 0; c < cols; c++) p[c] *= inv;
}

void cpu_scale_mask(float *out, const float *x, const float *mask_add, float scale,
                    int B, int H, int R, int C) {
    long long rows = (long long)B * H * R;
    CPU_PARALLEL_FOR((size_t)rows * C,
    for (long long row = 0; row < rows; row++) {
        int b = (int)(row / ((long long)H * R));
        scale_mask_row(out + row * C, x + row * C, mask_add ? mask_add + (size_t)b * C : NULL,
                       scale, C);
    });
}

void cpu_softmax_fwd(float *probs, const float *x, size_t rows, int cols) {
    CPU_PARALLEL_FOR(CPU_COST_TRANSC * rows * (size_t)cols,
    for (size_t r = 0; r < rows; r++) {
        float *p = probs + r * cols;
        if (p != x + r * cols) memcpy(p, x + r * cols, (size_t)cols * sizeof(float));
        softmax_row_inplace(p, cols);
    });
}

void cpu_softmax_bwd(float *dx, const float *dprobs, const float *probs, size_t rows, int cols) {
    CPU_PARALLEL_FOR(CPU_COST_ROW * rows * (size_t)cols,
    for (size_t r = 0; r < rows; r++) {
        const float *p = probs + r * cols, *dp = dprobs + r * cols;
        float *d = dx + r * cols;
        double dot = 0.0;
        for (int c = 0; c < cols; c++) dot += (double)dp[c] * p[c];
        float fdot = (float)dot;
        for (int c = 0; c < cols; c++) d[c] += p[c] * (dp[c] - fdot);
    });
}

void cpu_scale_mask_softmax_fwd(float *probs, const float *x, const float *mask_add, float scale,
                                int B, int H, int R, int C) {
    long long rows = (long long)B * H * R;
    CPU_PARALLEL_FOR(CPU_COST_TRANSC * (size_t)rows * C,
    for (long long row = 0; row < rows; row++) {
        int b = (int)(row / ((long long)H * R));
        float *p = probs + row * C;
        scale_mask_row(p, x + row * C, mask_add ? mask_add + (size_t)b * C : NULL, scale, C);
        softmax_row_inplace(p, C);
    });
}

/* ---------------------------------------------------------------- dropout */

void cpu_dropout_fwd(float *out, const float *x, float p, uint64_t seed, uint64_t offset, size_t n) {
    const float keep_scale = 1.0f / (1.0f - p);
    CPU_PARALLEL_FOR(CPU_COST_ROW * n,
    for (size_t i = 0; i < n; i++)
        out[i] = dropout_keep(seed, offset + i, p) ? x[i] * keep_scale : 0.0f;);
}

void cpu_dropout_bwd(float *dx, const float *dout, float p, uint64_t seed, uint64_t offset, size_t n) {
    const float keep_scale = 1.0f / (1.0f - p);
    CPU_PARALLEL_FOR(CPU_COST_ROW * n,
    for (size_t i = 0; i < n; i++)
        if (dropout_keep(seed, offset + i, p)) dx[i] += dout[i] * keep_scale;);
}

/* ---------------------------------------------------------------- pooling and selection */

void cpu_take_token_fwd(float *out, const float *x, int pos, int B, int S, int H) {
    CPU_PARALLEL_FOR((size_t)B * H,
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * H, x + ((size_t)b * S + pos) * H, (size_t)H * sizeof(float)););
}

void cpu_take_token_bwd(float *dx, const float *dout, int pos, int B, int S, int H) {
    CPU_PARALLEL_FOR((size_t)B * H,
    for (int b = 0; b < B; b++) {
        float *d = dx + ((size_t)b * S + pos) * H;
        const float *g = dout + (size_t)b * H;
        for (int h = 0; h < H; h++) d[h] += g[h];
    });
}

/* Lengths are clamped to [0, S]; a row of length 0 pools to zeros. */
static inline int pool_len(const int32_t *lengths, int b, int S) {
    int n = lengths[b];
    return n < 0 ? 0 : n > S ? S : n;
}

void cpu_mean_pool_fwd(float *out, const float *x, const int32_t *lengths, int B, int S, int H) {
    CPU_PARALLEL_FOR((size_t)B * S * H,
    for (int b = 0; b < B; b++) {
        int n = pool_len(lengths, b, S);
        const float *xb = x + (size_t)b * S * H;
        for (int h = 0; h < H; h++) {
            double s = 0.0;
            for (int t = 0; t < n; t++) s += xb[(size_t)t * H + h];
            out[(size_t)b * H + h] = n ? (float)(s / n) : 0.0f;
        }
    });
}

void cpu_mean_pool_bwd(float *dx, const float *dout, const int32_t *lengths, int B, int S, int H) {
    CPU_PARALLEL_FOR((size_t)B * S * H,
    for (int b = 0; b < B; b++) {
        int n = pool_len(lengths, b, S);
        if (n == 0) continue;
        float inv = 1.0f / (float)n;
        const float *g = dout + (size_t)b * H;
        for (int t = 0; t < n; t++) {
            float *d = dx + ((size_t)b * S + t) * H;
            for (int h = 0; h < H; h++) d[h] += g[h] * inv;
        }
    });
}

/* ---------------------------------------------------------------- bf16 */

static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

void cpu_to_bf16(uint16_t *dst, const float *src, size_t n) {
    CPU_PARALLEL_FOR(n,
    for (size_t i = 0; i < n; i++) dst[i] = to_bf16(src[i]););
}
