/*
 * cpu_losses.c — the CPU reference kernels of the loss entries of engine/backend.h: softmax
 * cross-entropy (hard and soft targets, temperature), masked MSE, cosine and KL between
 * probability rows. Each forward writes one float, the mean, into *out.
 *
 * Promises: f64 accumulation throughout; per-row losses (or fixed chunks of CPU_SUM_CHUNK elements
 * for MSE) are summed in index order after the parallel loop, so the value does not depend on the
 * thread count. Cross-entropy uses log-sum-exp with the row max subtracted. Backward kernels
 * accumulate (+=) and read the upstream scalar gradient from *dout.
 */
#include "engine/cpu/cpu_kernels.h"

#include <math.h>

/* torch.nn.functional.cosine_similarity's eps: the product of norms is clamped below at it. */
#define COSINE_EPS 1e-8
/* Probabilities are clamped below at this inside log() (backend.h, kl_probs). */
#define KL_MIN_PROB 1e-30

/* Sum of v[0..n) in index order, as the mean. */
static float ordered_mean(const double *v, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += v[i];
    return n ? (float)(s / (double)n) : 0.0f;
}

/* ---------------------------------------------------------------- cross-entropy */

void cpu_xent_fwd(float *out, float *probs, const float *logits, const int32_t *labels,
                  const float *target, float inv_t, int with_entropy, int rows, int cols) {
    double *loss = cpu_scratch((size_t)(rows > 0 ? rows : 1) * sizeof(double));
    CPU_PARALLEL_FOR(CPU_COST_TRANSC * (size_t)rows * cols,
    for (int r = 0; r < rows; r++) {
        const float *z = logits + (size_t)r * cols;
        float *p = probs + (size_t)r * cols;
        /* p temporarily holds the scaled logits inv_t * z. */
        float mx = -INFINITY;
        for (int c = 0; c < cols; c++) {
            p[c] = inv_t * z[c];
            if (p[c] > mx) mx = p[c];
        }
        double s = 0.0;
        for (int c = 0; c < cols; c++) s += exp((double)p[c] - mx);
        double lse = (double)mx + log(s);
        double l = 0.0;
        if (labels) {
            l = lse - (double)p[labels[r]];
        } else {
            const float *t = target + (size_t)r * cols;
            for (int c = 0; c < cols; c++) {
                if (t[c] == 0.0f) continue; /* 0 * log(anything) = 0 */
                l += (double)t[c] * (lse - (double)p[c]);
                if (with_entropy) l += (double)t[c] * log((double)t[c]);
            }
        }
        for (int c = 0; c < cols; c++) p[c] = (float)exp((double)p[c] - lse);
        loss[r] = l;
    });
    *out = ordered_mean(loss, (size_t)rows);
}

/* Soft targets are assumed to sum to 1 per row (they are softmax outputs), so the gradient of
 * -sum t log softmax(inv_t z) is inv_t (probs - t). */
void cpu_xent_bwd(float *dlogits, const float *dout, const float *probs, const int32_t *labels,
                  const float *target, float inv_t, int rows, int cols) {
    const float g = *dout / (float)rows * inv_t;
    CPU_PARALLEL_FOR((size_t)rows * cols,
    for (int r = 0; r < rows; r++) {
        const float *p = probs + (size_t)r * cols;
        float *d = dlogits + (size_t)r * cols;
        if (labels) {
            for (int c = 0; c < cols; c++) d[c] += g * p[c];
            d[labels[r]] -= g;
        } else {
            const float *t = target + (size_t)r * cols;
            for (int c = 0; c < cols; c++) d[c] += g * (p[c] - t[c]);
        }
    });
}

/* ---------------------------------------------------------------- MSE */

/* TinyBERT's masking, per side: an entry <= ignore_below counts as 0 (torch.where(x <= thr, 0, x)).
 * ignore_below = -INFINITY disables masking altogether. */
static inline int mse_masked(float v, float thr) { return thr != -INFINITY && v <= thr; }

void cpu_mse_fwd(float *out, const float *a, const float *b, float ignore_below, size_t n) {
    if (n == 0) {
        *out = 0.0f;
        return;
    }
    size_t nch = (n + CPU_SUM_CHUNK - 1) / CPU_SUM_CHUNK;
    double *part = cpu_scratch(nch * sizeof(double));
    CPU_PARALLEL_FOR(n,
    for (size_t ch = 0; ch < nch; ch++) {
        size_t lo = ch * CPU_SUM_CHUNK, hi = lo + CPU_SUM_CHUNK < n ? lo + CPU_SUM_CHUNK : n;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) {
            float ai = mse_masked(a[i], ignore_below) ? 0.0f : a[i];
            float bi = mse_masked(b[i], ignore_below) ? 0.0f : b[i];
            double d = (double)ai - (double)bi;
            s += d * d;
        }
        part[ch] = s;
    });
    double total = 0.0;
    for (size_t ch = 0; ch < nch; ch++) total += part[ch];
    *out = (float)(total / (double)n);
}

void cpu_mse_bwd(float *da, float *db, const float *dout, const float *a, const float *b,
                 float ignore_below, size_t n) {
    const float coef = 2.0f * *dout / (float)n;
    CPU_PARALLEL_FOR(n,
    for (size_t i = 0; i < n; i++) {
        int ma = mse_masked(a[i], ignore_below), mb = mse_masked(b[i], ignore_below);
        float diff = (ma ? 0.0f : a[i]) - (mb ? 0.0f : b[i]);
        if (da && !ma) da[i] += coef * diff;
        if (db && !mb) db[i] -= coef * diff;
    });
}

/* ---------------------------------------------------------------- cosine */

/* cos = a.b / sqrt(max(|a|^2 |b|^2, eps^2)), as torch's cosine_similarity. */
void cpu_cosine_fwd(float *out, const float *a, const float *b, int rows, int cols) {
    double *loss = cpu_scratch((size_t)(rows > 0 ? rows : 1) * sizeof(double));
    CPU_PARALLEL_FOR(CPU_COST_ROW * (size_t)rows * cols,
    for (int r = 0; r < rows; r++) {
        const float *ar = a + (size_t)r * cols, *br = b + (size_t)r * cols;
        double dot = 0.0, na = 0.0, nb = 0.0;
        for (int c = 0; c < cols; c++) {
            dot += (double)ar[c] * br[c];
            na += (double)ar[c] * ar[c];
            nb += (double)br[c] * br[c];
        }
        double prod = na * nb;
        double denom = sqrt(prod > COSINE_EPS * COSINE_EPS ? prod : COSINE_EPS * COSINE_EPS);
        loss[r] = 1.0 - dot / denom;
    });
    *out = ordered_mean(loss, (size_t)rows);
}

/* d cos / da = b/(|a||b|) - cos a/|a|^2 (unclamped); b/eps when the norm product is clamped. */
void cpu_cosine_bwd(float *da, float *db, const float *dout, const float *a, const float *b,
                    int rows, int cols) {
    const double g = -(double)*dout / rows; /* loss = mean(1 - cos) */
    CPU_PARALLEL_FOR(CPU_COST_ROW * (size_t)rows * cols,
    for (int r = 0; r < rows; r++) {
        const float *ar = a + (size_t)r * cols, *br = b + (size_t)r * cols;
        double dot = 0.0, na = 0.0, nb = 0.0;
        for (int c = 0; c < cols; c++) {
            dot += (double)ar[c] * br[c];
            na += (double)ar[c] * ar[c];
            nb += (double)br[c] * br[c];
        }
        double prod = na * nb;
        int clamped = !(prod > COSINE_EPS * COSINE_EPS);
        double inv_denom = clamped ? 1.0 / COSINE_EPS : 1.0 / sqrt(prod);
        double cosv = dot * inv_denom;
        double ka = clamped ? 0.0 : cosv / na, kb = clamped ? 0.0 : cosv / nb;
        if (da) {
            float *d = da + (size_t)r * cols;
            for (int c = 0; c < cols; c++) d[c] += (float)(g * (br[c] * inv_denom - ka * ar[c]));
        }
        if (db) {
            float *d = db + (size_t)r * cols;
            for (int c = 0; c < cols; c++) d[c] += (float)(g * (ar[c] * inv_denom - kb * br[c]));
        }
    });
}

/* ---------------------------------------------------------------- KL between probability rows */

void cpu_kl_probs_fwd(float *out, const float *s, const float *t, int rows, int cols) {
    double *loss = cpu_scratch((size_t)(rows > 0 ? rows : 1) * sizeof(double));
    CPU_PARALLEL_FOR(CPU_COST_TRANSC * (size_t)rows * cols,
    for (int r = 0; r < rows; r++) {
        const float *sr = s + (size_t)r * cols, *tr = t + (size_t)r * cols;
        double l = 0.0;
        for (int c = 0; c < cols; c++) {
            if (tr[c] == 0.0f) continue;
            double sc = sr[c] > KL_MIN_PROB ? (double)sr[c] : KL_MIN_PROB;
            l += (double)tr[c] * (log((double)tr[c]) - log(sc));
        }
        loss[r] = l;
    });
    *out = ordered_mean(loss, (size_t)rows);
}

/* ds += -(g/rows) t/s; zero where t == 0 or where s is clamped (the clamp is flat there). */
void cpu_kl_probs_bwd(float *ds, const float *dout, const float *s, const float *t, int rows, int cols) {
    const float g = -*dout / (float)rows;
    CPU_PARALLEL_FOR(CPU_COST_ROW * (size_t)rows * cols,
    for (int r = 0; r < rows; r++) {
        const float *sr = s + (size_t)r * cols, *tr = t + (size_t)r * cols;
        float *d = ds + (size_t)r * cols;
        for (int c = 0; c < cols; c++)
            if (tr[c] != 0.0f && sr[c] > KL_MIN_PROB) d[c] += g * (tr[c] / sr[c]);
    });
}
