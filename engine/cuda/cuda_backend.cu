/*
 * cuda_backend.cu — the CUDA Backend table: device discovery and selection, device memory and
 * copies, GEMM through cuBLAS, and the kernels of cuda_kernels.cu and cuda_losses.cu.
 *
 * Promises:
 *   - device_count() returns 0 (never aborts) when there is no GPU, no driver, or a driver too
 *     old for this build; so a CUDA build runs CPU work on any machine.
 *   - init(index) selects the device, creates one non-blocking stream and one cuBLAS handle bound
 *     to it. fp32 GEMMs are pure fp32 unless backend_set_tf32(true) asked for TF32 tensor-core
 *     math (inputs rounded to a 10-bit mantissa, fp32 accumulation): the config's `tf32` key.
 *     Failures return DISTILL_ERR with the library's message. Entries used before init select
 *     device 0 themselves.
 *   - alloc and free go through the caching allocator of cuda_memory.cu (no cudaMalloc/cudaFree at
 *     steady state); alloc aborts with a message when the device is out of memory.
 *   - A copy from the host is queued (through pinned staging, cuda_memory.cu) and returns at once:
 *     the host buffer may be reused immediately, the device sees the data in stream order. A copy
 *     to the host returns when the data has arrived. Device-to-device copies and every kernel are
 *     queued on the stream in call order; sync waits for all of them. Timing marks are CUDA events
 *     recorded on the stream, read (cudaEventElapsedTime) after the caller's next wait.
 *   - gemm has the CPU backend's exact contract: row-major, per batch entry
 *     C_b = alpha op(A_b) op(B_b) + beta C_b, including stride_c == 0 (entries accumulate into one
 *     C in batch order) and k == 0 (C = beta C, 0 when beta == 0).
 *   - Every entry is filled: the kernel entries are generated from engine/kernels.def, each as
 *     cu_<name>, and the table is complete without a device (tests/test_cuda_backend.c checks it).
 * One process drives one device (one process per GPU, see DESIGN.md §8).
 */
#include "engine/cuda/cuda_internal.h"

#include <cuda_bf16.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- device state */

static int g_device = -1;             /* selected device, -1 before init */
static cudaStream_t g_stream;         /* all work goes here */
static cublasHandle_t g_cublas;       /* bound to g_stream */
static void *g_scratch;               /* see cuda_scratch */
static size_t g_scratch_cap;
static bool g_tf32;                   /* backend_set_tf32 */

static cublasMath_t math_mode(void) { return g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH; }

/* backend_set_tf32 (engine/backend.c): applies now when the handle exists, else at init. */
extern "C" void distill_cuda_set_tf32(bool on) {
    g_tf32 = on;
    if (g_cublas) CUBLAS_CHECK(cublasSetMathMode(g_cublas, math_mode()));
}

static int cuda_device_count(void) {
    static int cached = -1;
    if (cached < 0) {
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess) {
            /* No driver, no device, or an old driver: no CUDA devices, not an error. */
            (void)cudaGetLastError();
            n = 0;
        }
        cached = n;
    }
    return cached;
}

static void destroy_marks(void);

static void release_handles(void) {
    destroy_marks();
    if (g_cublas) cublasDestroy(g_cublas);
    if (g_scratch) cuda_pool_free(g_scratch);
    cuda_memory_reset(); /* waits for the device, frees cached blocks and the staging ring */
    if (g_stream) cudaStreamDestroy(g_stream);
    g_cublas = NULL;
    g_stream = NULL;
    g_scratch = NULL;
    g_scratch_cap = 0;
    g_device = -1;
}

static Status cuda_init(int index) {
    int n = cuda_device_count();
    if (index < 0 || index >= n) {
        distill_set_error("device cuda:%d was requested, but %d CUDA device%s found%s", index, n,
                          n == 1 ? " was" : "s were",
                          n == 0 ? " (no GPU, or no NVIDIA driver on this machine)" : "");
        return DISTILL_ERR;
    }
    if (g_device == index) return DISTILL_OK;
    if (g_device >= 0) {
        CUDA_CHECK(cudaDeviceSynchronize());
        release_handles();
    }
    cudaError_t e = cudaSetDevice(index);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        distill_set_error("cannot start CUDA device cuda:%d: %s (%s)", index, cudaGetErrorName(e),
                          cudaGetErrorString(e));
        (void)cudaGetLastError();
        g_stream = NULL;
        return DISTILL_ERR;
    }
    cublasStatus_t s = cublasCreate(&g_cublas);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(g_cublas, g_stream);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(g_cublas, math_mode());
    if (s != CUBLAS_STATUS_SUCCESS) {
        distill_set_error("cannot start cuBLAS on cuda:%d: %s (%s)", index, cublasGetStatusName(s),
                          cublasGetStatusString(s));
        if (g_cublas) cublasDestroy(g_cublas);
        g_cublas = NULL;
        cudaStreamDestroy(g_stream);
        g_stream = NULL;
        return DISTILL_ERR;
    }
    g_device = index;
    return DISTILL_OK;
}

/* Entries called before init run on device 0; no device at all is a programming error there
 * (callers check device_count or init's status first). */
static void ensure_init(void) {
    if (g_device >= 0) return;
    if (cuda_init(0) != DISTILL_OK) {
        fprintf(stderr, "distill: error: CUDA backend used without a usable device: %s\n",
                distill_error());
        abort();
    }
}

cudaStream_t cuda_stream(void) {
    ensure_init();
    return g_stream;
}

void *cuda_scratch(size_t bytes) {
    ensure_init();
    if (bytes > g_scratch_cap) {
        cuda_pool_free(g_scratch); /* reused by later work only, in stream order */
        size_t cap = bytes + bytes / 2;
        if (cap < 4096) cap = 4096;
        g_scratch = cuda_pool_alloc(cap);
        g_scratch_cap = cap;
    }
    return g_scratch;
}

static const char *cuda_device_name(int index) {
    static char names[16][256];
    if (index < 0 || index >= cuda_device_count() || index >= 16) return "no such CUDA device";
    if (!names[index][0]) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
            (void)cudaGetLastError();
            return "CUDA device (properties unavailable)";
        }
        snprintf(names[index], sizeof names[index], "%.200s (sm_%d%d, %.1f GiB)", prop.name,
                 prop.major, prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024 * 1024));
    }
    return names[index];
}

/* ---------------------------------------------------------------- memory */

static void *cuda_alloc(size_t bytes) {
    ensure_init();
    return cuda_pool_alloc(bytes); /* 0 bytes: a unique valid pointer, as the CPU backend gives */
}

/* Back to the pool: later work reuses the block only after the queued work that uses it. */
static void cuda_free(void *p) { cuda_pool_free(p); }

static void cuda_zero(void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream()));
}

static void cuda_copy(void *dst, const void *src, size_t bytes, CopyKind kind) {
    if (!bytes || dst == src) return;
    cudaStream_t st = cuda_stream();
    switch (kind) {
    case COPY_H2D:
        cuda_h2d(dst, src, bytes, st); /* staged: the host buffer may be reused at once */
        break;
    case COPY_D2H:
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st));
        CUDA_CHECK(cudaStreamSynchronize(st));
        break;
    case COPY_D2D:
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st));
        break;
    }
}

static void cuda_sync(void) { CUDA_CHECK(cudaStreamSynchronize(cuda_stream())); }

/* ---------------------------------------------------------------- timing marks */

static cudaEvent_t *g_marks; /* created on first use of each slot, on the current device */
static int g_n_marks;

static void destroy_marks(void) {
    for (int i = 0; i < g_n_marks; i++) cudaEventDestroy(g_marks[i]);
    free(g_marks);
    g_marks = NULL;
    g_n_marks = 0;
}

static void cuda_mark(int slot) {
    cudaStream_t st = cuda_stream();
    if (slot < 0) {
        fprintf(stderr, "distill: internal error: cuda mark slot %d\n", slot);
        abort();
    }
    if (slot >= g_n_marks) {
        int n = slot + 16;
        g_marks = (cudaEvent_t *)xrealloc(g_marks, (size_t)n * sizeof *g_marks);
        for (int i = g_n_marks; i < n; i++) CUDA_CHECK(cudaEventCreate(&g_marks[i]));
        g_n_marks = n;
    }
    CUDA_CHECK(cudaEventRecord(g_marks[slot], st));
}

static double cuda_mark_seconds(int a, int b) {
    if (a < 0 || b < 0 || a >= g_n_marks || b >= g_n_marks) {
        fprintf(stderr, "distill: internal error: cuda mark_seconds(%d, %d) of %d marks\n", a, b, g_n_marks);
        abort();
    }
    if (cudaEventQuery(g_marks[b]) == cudaErrorNotReady) {
        backend_count_readback(); /* asked too early: a wait */
        CUDA_CHECK(cudaEventSynchronize(g_marks[b]));
    }
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, g_marks[a], g_marks[b]));
    return ms * 1e-3;
}

/* ---------------------------------------------------------------- GEMM */

/* k == 0: C (m x n, leading dim ldc) = beta C, exactly 0 when beta == 0. */
static __global__ void gemm_scale_c_kernel(float *c, int m, int n, int ldc, float beta) {
    size_t total = (size_t)m * n;
    CUDA_GRID_STRIDE(i, total) {
        size_t r = i / n, j = i % n;
        float *p = c + r * ldc + j;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: a row-major X stored with
 * leading dim ldX is, read column-major, X^T with the same leading dim. So cuBLAS gets B first,
 * A second, with m and n swapped and the same transpose flags. */
void cu_gemm(int ta, int tb, int m, int n, int k, float alpha,
             const float *a, int lda, long long stride_a,
             const float *b, int ldb, long long stride_b,
             float beta, float *c, int ldc, long long stride_c, int batch) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    cudaStream_t st = cuda_stream();
    if (k <= 0) {
        /* One pass per entry, in order: with stride_c == 0 the same C is scaled batch times,
         * as the CPU backend's sequential loop does. */
        for (int i = 0; i < batch; i++) {
            gemm_scale_c_kernel<<<cuda_blocks((size_t)m * n), CUDA_THREADS, 0, st>>>(
                c + (long long)i * stride_c, m, n, ldc, beta);
            CUDA_CHECK_LAUNCH();
        }
        return;
    }
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (stride_c == 0 && batch > 1) {
        /* Every entry writes the same C: run them one after another, in batch order. */
        for (int i = 0; i < batch; i++)
            CUBLAS_CHECK(cublasSgemm(g_cublas, opb, opa, n, m, k, &alpha,
                                     b + (long long)i * stride_b, ldb,
                                     a + (long long)i * stride_a, lda, &beta, c, ldc));
        return;
    }
    CUBLAS_CHECK(cublasSgemmStridedBatched(g_cublas, opb, opa, n, m, k, &alpha, b, ldb, stride_b,
                                           a, lda, stride_a, &beta, c, ldc, stride_c, batch));
}

/* fp32 -> bf16, round to nearest even (as the CPU backend and torch's .to(torch.bfloat16)). */
__global__ static void f32_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n) {
    CUDA_GRID_STRIDE(i, n) { dst[i] = __float2bfloat16_rn(src[i]); }
}

/* Elements a strided batch of X reads: the last entry's offset plus one matrix's span. */
static size_t span(long long stride, int batch, int rows, int cols, int ld) {
    return (stride ? (size_t)stride * (size_t)(batch - 1) : 0) + (size_t)(rows - 1) * ld + (size_t)cols;
}

/* The bf16 product with fp32 accumulation (CUBLAS_COMPUTE_32F) and fp32 C. A is rounded to bf16
 * into a scratch copy of the same layout and strides; B likewise when it is fp32 (b32), or read as
 * it is when already bf16 (b16: a frozen model's weights). */
static void gemm_bf16(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, long long stride_a,
                      const float *b32, const uint16_t *b16, int ldb, long long stride_b, float beta, float *c, int ldc,
                      long long stride_c, int batch) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    if (k <= 0) { /* no products: only C = beta * C, as cu_gemm does it */
        cu_gemm(ta, tb, m, n, k, alpha, a, lda, stride_a, b32, ldb, stride_b, beta, c, ldc, stride_c, batch);
        return;
    }
    if (stride_c == 0 && batch > 1) {
        for (int i = 0; i < batch; i++)
            gemm_bf16(ta, tb, m, n, k, alpha, a + (long long)i * stride_a, lda, 0,
                      b32 ? b32 + (long long)i * stride_b : NULL, b16 ? b16 + (long long)i * stride_b : NULL, ldb, 0,
                      i == 0 ? beta : 1.0f, c, ldc, 0, 1);
        return;
    }
    cudaStream_t st = cuda_stream();
    size_t na = ta ? span(stride_a, batch, k, m, lda) : span(stride_a, batch, m, k, lda);
    size_t nb = b16 ? 0 : (tb ? span(stride_b, batch, n, k, ldb) : span(stride_b, batch, k, n, ldb));
    __nv_bfloat16 *ab = (__nv_bfloat16 *)cuda_scratch((na + nb) * sizeof(__nv_bfloat16));
    f32_to_bf16_kernel<<<cuda_blocks(na), CUDA_THREADS, 0, st>>>(ab, a, na);
    CUDA_CHECK_LAUNCH();
    const void *bb = b16;
    if (!b16) {
        f32_to_bf16_kernel<<<cuda_blocks(nb), CUDA_THREADS, 0, st>>>(ab + na, b32, nb);
        CUDA_CHECK_LAUNCH();
        bb = ab + na;
    }
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(g_cublas, opb, opa, n, m, k, &alpha, bb, CUDA_R_16BF, ldb, stride_b, ab,
                                            CUDA_R_16BF, lda, stride_a, &beta, c, CUDA_R_32F, ldc, stride_c, batch,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void cu_gemm_bf16(int ta, int tb, int m, int n, int k, float alpha,
                  const float *a, int lda, long long stride_a,
                  const float *b, int ldb, long long stride_b,
                  float beta, float *c, int ldc, long long stride_c, int batch) {
    gemm_bf16(ta, tb, m, n, k, alpha, a, lda, stride_a, b, NULL, ldb, stride_b, beta, c, ldc, stride_c, batch);
}

void cu_gemm_bf16_b16(int ta, int tb, int m, int n, int k, float alpha,
                      const float *a, int lda, long long stride_a,
                      const uint16_t *b, int ldb, long long stride_b,
                      float beta, float *c, int ldc, long long stride_c, int batch) {
    gemm_bf16(ta, tb, m, n, k, alpha, a, lda, stride_a, NULL, b, ldb, stride_b, beta, c, ldc, stride_c, batch);
}

void cu_to_bf16(uint16_t *dst, const float *src, size_t n) {
    if (n == 0) return;
    f32_to_bf16_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_stream()>>>((__nv_bfloat16 *)dst, src, n);
    CUDA_CHECK_LAUNCH();
}

/* bf16 tensor-core GEMMs need compute capability 8.0 (Ampere) or newer. */
static bool cuda_bf16_supported(char *why, size_t n) {
    int dev = g_device >= 0 ? g_device : 0, major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
        if (why) snprintf(why, n, "no CUDA device to ask");
        return false;
    }
    if (major < 8) {
        if (why) snprintf(why, n, "cuda:%d has compute capability %d.x; bf16 GEMMs need 8.0 or newer", dev, major);
        return false;
    }
    return true;
}

/* Static text per TF32 setting (two buffers, so a string handed out stays valid). */
static const char *cuda_gemm_library(void) {
    static char text[2][64];
    char *t = text[g_tf32];
    if (!t[0]) {
        int v = 0;
        cublasGetVersion(g_cublas, &v);
        snprintf(t, sizeof text[0], "cuBLAS %d.%d.%d (%s, bf16)", v / 10000, (v / 100) % 100, v % 100,
                 g_tf32 ? "fp32 with TF32" : "fp32");
    }
    return t;
}

/* ---------------------------------------------------------------- the table */

static Backend g_cuda;

extern "C" const Backend *distill_cuda_backend(void) {
    static bool filled = false;
    if (filled) return &g_cuda;
    Backend *t = &g_cuda;
    memset(t, 0, sizeof *t);
    t->name = "cuda";
    t->type = DEV_CUDA;
    t->device_count = cuda_device_count;
    t->init = cuda_init;
    t->device_name = cuda_device_name;
    t->alloc = cuda_alloc;
    t->free = cuda_free;
    t->zero = cuda_zero;
    t->copy = cuda_copy;
    t->sync = cuda_sync;
    t->mark = cuda_mark;
    t->mark_seconds = cuda_mark_seconds;
    t->bf16_supported = cuda_bf16_supported;
    t->gemm_library = cuda_gemm_library;
    /* every kernel of engine/kernels.def, each as cu_<name> (C++ has no designated initialisers
     * before C++20, so the table is filled here, once) */
#define DISTILL_KERNEL(ret, name, params) t->name = cu_##name;
#include "engine/kernels.def"
    filled = true;
    return &g_cuda;
}

#include "engine/cuda/cuda_entry_check.h"
