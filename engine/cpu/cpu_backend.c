/*
 * cpu_backend.c — the CPU Backend table: host memory (64-byte aligned), copies, the fp32 GEMM on
 * OpenBLAS or oneDNN (DISTILL_FP32_GEMM and a fixed per-shape rule, below), the deterministic f64 sum of squares, AdamW, and the kernels of cpu_kernels.c and
 * cpu_losses.c.
 *
 * Promises: every entry of the table is filled (the kernel entries are generated from
 * engine/kernels.def). GEMM is called from the host thread only (never inside an OpenMP region, so
 * OpenBLAS's own threads never nest with ours). sumsq sums fixed chunks
 * of CPU_SUM_CHUNK elements in f64 and adds the chunk sums in order, so its result does not depend
 * on the thread count. AdamW follows torch.optim.AdamW exactly (decoupled weight decay applied
 * before the moment update, bias corrections supplied by the caller).
 */
#define _POSIX_C_SOURCE 200809L
#include "engine/cpu/cpu_kernels.h"
#include "engine/cpu/cpu_dnnl.h"

#include <cblas.h>
#include <stdbool.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CPU_ALIGN 64

static Status read_policy(void); /* DISTILL_FP32_GEMM, below */

/* ---------------------------------------------------------------- scratch */

static _Thread_local void *g_scratch;
static _Thread_local size_t g_scratch_cap;

void *cpu_scratch(size_t bytes) {
    if (bytes > g_scratch_cap) {
        free(g_scratch);
        size_t cap = bytes + bytes / 2;
        cap = (cap + CPU_ALIGN - 1) & ~(size_t)(CPU_ALIGN - 1);
        g_scratch = aligned_alloc(CPU_ALIGN, cap);
        if (!g_scratch) {
            fprintf(stderr, "distill: error: out of memory allocating %zu bytes of CPU scratch\n", cap);
            abort();
        }
        g_scratch_cap = cap;
    }
    return g_scratch;
}

/* ---------------------------------------------------------------- device and memory */

static int cpu_device_count(void) { return 1; }

static Status cpu_init(int index) {
    if (index != 0) {
        distill_set_error("cpu device index must be 0, found %d", index);
        return DISTILL_ERR;
    }
    return read_policy();
}

static const char *cpu_device_name(int index) {
    static char name[64];
    snprintf(name, sizeof name, "CPU (%d OpenMP threads)", omp_get_max_threads());
    return name;
}

static void *cpu_alloc(size_t bytes) {
    size_t n = (bytes + CPU_ALIGN - 1) & ~(size_t)(CPU_ALIGN - 1);
    if (n == 0) n = CPU_ALIGN;
    void *p = aligned_alloc(CPU_ALIGN, n);
    if (!p) {
        fprintf(stderr, "distill: error: out of memory allocating %zu bytes on cpu\n", bytes);
        abort();
    }
    return p;
}

static void cpu_free(void *p) { free(p); }

static void cpu_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}

/* Host and device are the same memory on the CPU: every kind is a plain copy. */
static void cpu_copy(void *dst, const void *src, size_t bytes, CopyKind kind) {
    (void)kind;
    if (bytes && dst != src) memmove(dst, src, bytes);
}

static void cpu_sync(void) {}

/* Marks are host clock readings: a CPU call has finished its work when it returns. */
static double *g_marks;
static int g_n_marks;

static void cpu_mark(int slot) {
    DCHECK(slot >= 0);
    if (slot >= g_n_marks) {
        int n = slot + 16;
        g_marks = xrealloc(g_marks, (size_t)n * sizeof *g_marks);
        for (int i = g_n_marks; i < n; i++) g_marks[i] = 0.0;
        g_n_marks = n;
    }
    g_marks[slot] = now_seconds();
}

static double cpu_mark_seconds(int a, int b) {
    DCHECK(a >= 0 && b >= 0 && a < g_n_marks && b < g_n_marks);
    return g_marks[b] - g_marks[a];
}

/* ---------------------------------------------------------------- GEMM */

/* C_b = alpha op(A_b) op(B_b) + beta C_b for each b, row-major, one cblas_sgemm per batch entry.
 * A batch entry with stride_c == 0 accumulates into the same C in order (used by callers that sum
 * a shared operand's gradient over the batch). */
void cpu_gemm_openblas(int ta, int tb, int m, int n, int k, float alpha,
              const float *a, int lda, long long stride_a,
              const float *b, int ldb, long long stride_b,
              float beta, float *c, int ldc, long long stride_c, int batch) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    for (int i = 0; i < batch; i++) {
        float *ci = c + (long long)i * stride_c;
        if (k <= 0) {
            /* Empty inner dimension: C = beta C (BLAS would reject lda = 0). */
            for (int r = 0; r < m; r++)
                for (int j = 0; j < n; j++)
                    ci[(size_t)r * ldc + j] = beta == 0.0f ? 0.0f : beta * ci[(size_t)r * ldc + j];
            continue;
        }
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    m, n, k, alpha, a + (long long)i * stride_a, lda,
                    b + (long long)i * stride_b, ldb, beta, ci, ldc);
    }
}

/* ---------------------------------------------------------------- fp32 GEMM: which library
 *
 * DISTILL_FP32_GEMM picks the library of every fp32 GEMM: openblas, onednn, or auto (the default):
 * the fixed rule cpu_gemm_prefers_onednn, measured once per machine type by scripts/bench_gemm_rule.sh
 * and committed, never timed at run time: a choice timed at start-up could differ between a run
 * and its resumption (another load on the machine), and the two libraries round differently, so
 * a resumed run would leave the bitwise path of the uninterrupted one. A fixed rule keeps every
 * run at a fixed thread count bitwise reproducible. The distinct shapes each library took are
 * counted (cpu_gemm_library, for --version, info and bench). */

typedef enum { FP32_AUTO, FP32_OPENBLAS, FP32_ONEDNN } Fp32Policy;

static int g_policy = -1; /* Fp32Policy, -1 until read */

static Status read_policy(void) {
    if (g_policy >= 0) return DISTILL_OK;
    const char *v = getenv("DISTILL_FP32_GEMM");
    if (!v || !*v || !strcmp(v, "auto")) g_policy = FP32_AUTO;
    else if (!strcmp(v, "openblas")) g_policy = FP32_OPENBLAS;
    else if (!strcmp(v, "onednn")) {
        if (!cpu_onednn_available()) {
            distill_set_error("DISTILL_FP32_GEMM=onednn: this build has no oneDNN (install libdnnl-dev and "
                              "rebuild), expected openblas or auto");
            return DISTILL_ERR;
        }
        g_policy = FP32_ONEDNN;
    } else {
        distill_set_error("DISTILL_FP32_GEMM: expected auto, openblas or onednn, found '%s'", v);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

/* Distinct shapes seen, per library: an open-addressing set of (ta, tb, m, n, k, batch). */
#define SHAPE_SET 1024
typedef struct {
    int ta, tb, m, n, k, batch, lib; /* lib: 0 empty, 1 OpenBLAS, 2 oneDNN */
} ShapeSeen;
static ShapeSeen g_seen[SHAPE_SET];
static int g_n_seen[3];

static void note_shape(int ta, int tb, int m, int n, int k, int batch, int lib) {
    unsigned h = (unsigned)(ta * 3 + tb) * 2654435761u ^ (unsigned)m * 40503u ^ (unsigned)n * 9973u ^
                 (unsigned)k * 7919u ^ (unsigned)batch * 31u;
    for (int probe = 0; probe < SHAPE_SET; probe++) {
        ShapeSeen *e = &g_seen[(h + (unsigned)probe) % SHAPE_SET];
        if (!e->lib) {
            *e = (ShapeSeen){ta, tb, m, n, k, batch, lib};
            g_n_seen[lib]++;
            return;
        }
        if (e->ta == ta && e->tb == tb && e->m == m && e->n == n && e->k == k && e->batch == batch) return;
    }
    /* full: the counts stop growing (they are for reports only) */
}

void cpu_gemm_on(bool onednn, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 long long sa, const float *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc,
                 int batch) {
    int threads = omp_get_max_threads();
    bool serial = threads > 1 && (double)m * n * (k > 0 ? k : 1) <= CPU_GEMM_SERIAL_MNK;
    /* Both libraries take their thread count from omp_get_max_threads() (OpenBLAS's OpenMP build at
     * each call, oneDNN at primitive creation and execution); a shape is always serial or never,
     * so its cached oneDNN primitive always meets the count it was made for. */
    if (serial) omp_set_num_threads(1);
    if (onednn)
        cpu_gemm_onednn_f32(ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
    else
        cpu_gemm_openblas(ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
    if (serial) omp_set_num_threads(threads);
}

void cpu_gemm(int ta, int tb, int m, int n, int k, float alpha,
              const float *a, int lda, long long stride_a,
              const float *b, int ldb, long long stride_b,
              float beta, float *c, int ldc, long long stride_c, int batch) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    if (g_policy < 0 && read_policy() != DISTILL_OK) {
        /* cpu_init reports the bad value before any GEMM; a GEMM with no init falls back */
        g_policy = FP32_OPENBLAS;
    }
    bool dnnl = g_policy == FP32_ONEDNN ||
                (g_policy == FP32_AUTO && cpu_onednn_available() && cpu_gemm_prefers_onednn(ta, tb, m, n, k, batch));
    note_shape(ta, tb, m, n, k, batch, dnnl ? 2 : 1);
    cpu_gemm_on(dnnl, ta, tb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c, batch);
}

/* ---------------------------------------------------------------- reductions, optimizer */

double cpu_sumsq(const float *x, size_t n) {
    if (n == 0) return 0.0;
    size_t nch = (n + CPU_SUM_CHUNK - 1) / CPU_SUM_CHUNK;
    double *part = cpu_scratch(nch * sizeof(double));
    CPU_PARALLEL_FOR(n,
    for (size_t ch = 0; ch < nch; ch++) {
        size_t lo = ch * CPU_SUM_CHUNK, hi = lo + CPU_SUM_CHUNK < n ? lo + CPU_SUM_CHUNK : n;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];
        part[ch] = s;
    });
    double total = 0.0;
    for (size_t ch = 0; ch < nch; ch++) total += part[ch];
    return total;
}

void cpu_sumsq_to(double *out, const float *x, size_t n) { *out = cpu_sumsq(x, n); }

/* torch.optim.AdamW step for one buffer:
 *   g = grad_scale * grad
 *   p = p * (1 - lr*wd)
 *   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g^2
 *   p = p - (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)          */
void cpu_adamw(float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1,
               float beta2, float eps, float wd, float bc1, float bc2, float grad_scale) {
    const float decay = 1.0f - lr * wd;
    const float step = lr / bc1;
    const float sqrt_bc2 = sqrtf(bc2);
    CPU_PARALLEL_FOR(CPU_COST_ROW * n,
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / sqrt_bc2 + eps;
        p[i] = p[i] * decay - step * (mi / denom);
    });
}

/* ---------------------------------------------------------------- the table */

/* The libraries, and once GEMMs have run, how many distinct fp32 shapes each took. */
static const char *cpu_gemm_library(void) {
    static char text[256];
    if (g_policy < 0 && read_policy() != DISTILL_OK) return "unknown (DISTILL_FP32_GEMM is not valid)";
    char fp32[128];
    const char *how = g_policy == FP32_OPENBLAS ? "OpenBLAS (DISTILL_FP32_GEMM=openblas)"
                    : g_policy == FP32_ONEDNN  ? "oneDNN (DISTILL_FP32_GEMM=onednn)"
                    : !cpu_onednn_available()  ? "OpenBLAS"
                                               : "OpenBLAS or oneDNN per shape (rule: auto)";
    if (g_n_seen[1] + g_n_seen[2])
        snprintf(fp32, sizeof fp32, "%s: OpenBLAS for %d shapes, oneDNN for %d", how, g_n_seen[1], g_n_seen[2]);
    else
        snprintf(fp32, sizeof fp32, "%s", how);
    if (cpu_bf16_supported(NULL, 0))
        snprintf(text, sizeof text, "fp32 %s; bf16 oneDNN (%s)", fp32, cpu_gemm_isa_name());
    else
        snprintf(text, sizeof text, "fp32 %s", fp32);
    return text;
}

static const Backend g_cpu = {
    .name = "cpu",
    .type = DEV_CPU,
    .device_count = cpu_device_count,
    .init = cpu_init,
    .device_name = cpu_device_name,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .mark = cpu_mark,
    .mark_seconds = cpu_mark_seconds,
    .bf16_supported = cpu_bf16_supported,
    .gemm_library = cpu_gemm_library,
    /* every kernel of engine/kernels.def, each as cpu_<name> */
#define DISTILL_KERNEL(ret, name, params) .name = cpu_##name,
#include "engine/kernels.def"
};

const Backend *distill_cpu_backend(void) { return &g_cpu; }

/* ---- thread count (declared in backend.h) ---- */
#include <omp.h>
#include <unistd.h>

void backend_cpu_set_threads(int n) {
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int backend_cpu_threads(void) { return omp_get_max_threads(); }
