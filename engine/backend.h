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
 * The kernels, their signatures and contracts are listed once, in engine/kernels.def, which
 * generates the kernel fields below, each backend's prototypes and each backend's table (so every
 * table is complete). The op layer still checks each entry before calling it: a NULL entry fails
 * with "op X is not supported on device Y" instead of crashing.
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
    void *(*alloc)(size_t bytes);              /* aborts on failure; CUDA: from a caching pool */
    void (*free)(void *p);
    void (*zero)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes, CopyKind kind);
    void (*sync)(void);
    /* Device timing without a host wait. mark(slot) records when the device reaches this point of
     * the work queued so far (slot >= 0; slots are grown on demand and reused); mark_seconds(a, b)
     * is the time from mark a to mark b, to be asked once the host has waited for later work (a
     * readback or a sync): asked earlier, it waits itself and counts a readback. CPU: the host
     * clock at mark (its work is done when each call returns). */
    void (*mark)(int slot);
    double (*mark_seconds)(int a, int b);
    /* Whether gemm_bf16 runs natively on this device (false: why, into why[n]). */
    bool (*bf16_supported)(char *why, size_t n);
    /* What multiplies matrices here, for logs and benchmarks: "OpenBLAS 0.3.21 + oneDNN 2.6.3
     * (avx512_core_bf16)", "cuBLAS 12.4". Static text. */
    const char *(*gemm_library)(void);

    /* ---- kernels: one field per line of engine/kernels.def, where each one's contract is ---- */
#define DISTILL_KERNEL(ret, name, params) ret(*name) params;
#include "kernels.def"
} Backend;

/* The table for a device type: CPU always; CUDA when compiled in (NULL otherwise). */
const Backend *backend_for(DeviceType type);
const Backend *backend_cpu(void);
const Backend *backend_cuda(void); /* NULL when built without CUDA */
/* Whether `precision: bf16` can run on device d; when not, why (into why[n]). */
bool backend_bf16_supported(Device d, char *why, size_t n);
/* What multiplies matrices on device d (the backend's gemm_library), for logs and benchmarks. */
const char *backend_gemm_library(Device d);
/* True when the CUDA backend was compiled in and a device is present. */
bool backend_cuda_available(void);
/* The name of the first NULL entry of a table ("alloc", "gemm", ...: the device and memory
 * entries, then every kernel of engine/kernels.def in its order), or NULL when every entry is
 * filled. The tests use it to check that each backend's table is complete. */
const char *backend_missing_entry(const Backend *be);

/* TF32 tensor-core math for the fp32 GEMMs of the CUDA backend (the config's `tf32` key): inputs
 * rounded to a 10-bit mantissa, fp32 accumulation. Off by default: an fp32 GEMM is fp32 unless a
 * run asks. Takes effect at once (and for a device initialised later); the CPU ignores it. */
void backend_set_tf32(bool on);
bool backend_tf32(void);

/* The CUDA backend's device memory, for tests and logs (all zero in a build without CUDA).
 * Device memory comes from a caching allocator: freed blocks go back to a free list of their size
 * class and are reused, so a run at steady state calls neither cudaMalloc nor cudaFree. */
typedef struct BackendMemStats {
    uint64_t device_mallocs;  /* cudaMalloc calls so far (blocks, scratch, pool growth) */
    uint64_t device_frees;    /* cudaFree calls so far (cache released on out-of-memory, device change) */
    size_t reserved_bytes;    /* held from the device: in use + cached */
    size_t cached_bytes;      /* freed by the engine, kept for reuse */
    uint64_t h2d_waits;       /* H2D copies that waited for a pinned staging slot still in flight */
} BackendMemStats;
BackendMemStats backend_cuda_mem_stats(void);

/* Host waits on the device, counted where the engine makes them, on every backend: each
 * device-to-host readback (tensor_to_host, op_item, params_buffer_to_host, a params_buffer_copy to
 * the host, ctx_read, each store's sum in grad_global_norm) and each ctx_sync. On the CPU these are
 * memcpys or no-ops, counted all the same, so a CPU test sees the count a GPU run makes (a training
 * step makes one: tests/test_train_step.c readbacks). Process-wide and monotonic. */
uint64_t backend_readbacks(void);
void backend_count_readback(void);

/* CPU threads for OpenMP loops and OpenBLAS (n <= 0: all cores); the current count. */
void backend_cpu_set_threads(int n);
int backend_cpu_threads(void);

#endif
