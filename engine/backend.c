/* backend.c — the run-time registry of backends (see backend.h). The only place that knows
 * whether CUDA was compiled in. */
#include "backend.h"

#include <stdatomic.h>
#include <stdio.h>

const Backend *distill_cpu_backend(void);
#ifdef DISTILL_HAVE_CUDA
const Backend *distill_cuda_backend(void);
void distill_cuda_set_tf32(bool on);
BackendMemStats distill_cuda_mem_stats(void);
#endif

static bool g_tf32; /* backend_set_tf32 */
static _Atomic uint64_t g_readbacks; /* backend_readbacks */

uint64_t backend_readbacks(void) { return atomic_load_explicit(&g_readbacks, memory_order_relaxed); }
void backend_count_readback(void) { atomic_fetch_add_explicit(&g_readbacks, 1, memory_order_relaxed); }

const Backend *backend_cpu(void) { return distill_cpu_backend(); }

const Backend *backend_cuda(void) {
#ifdef DISTILL_HAVE_CUDA
    return distill_cuda_backend();
#else
    return NULL;
#endif
}

bool backend_cuda_available(void) {
    const Backend *be = backend_cuda();
    return be && be->device_count && be->device_count() > 0;
}

const Backend *backend_for(DeviceType type) {
    return type == DEV_CPU ? backend_cpu() : backend_cuda();
}

const char *backend_missing_entry(const Backend *be) {
    if (!be->device_count) return "device_count";
    if (!be->init) return "init";
    if (!be->device_name) return "device_name";
    if (!be->alloc) return "alloc";
    if (!be->free) return "free";
    if (!be->zero) return "zero";
    if (!be->copy) return "copy";
    if (!be->sync) return "sync";
    if (!be->mark) return "mark";
    if (!be->mark_seconds) return "mark_seconds";
    if (!be->bf16_supported) return "bf16_supported";
    if (!be->gemm_library) return "gemm_library";
#define DISTILL_KERNEL(ret, name, params) if (!be->name) return #name;
#include "kernels.def"
    return NULL;
}

bool backend_bf16_supported(Device d, char *why, size_t n) {
    const Backend *be = backend_for(d.type);
    if (!be) {
        if (why) snprintf(why, n, "this build has no backend for the device");
        return false;
    }
    return be->bf16_supported(why, n);
}

const char *backend_gemm_library(Device d) {
    const Backend *be = backend_for(d.type);
    return be ? be->gemm_library() : "none (no backend for the device)";
}

void backend_set_tf32(bool on) {
    g_tf32 = on;
#ifdef DISTILL_HAVE_CUDA
    distill_cuda_set_tf32(on);
#endif
}

bool backend_tf32(void) { return g_tf32; }

BackendMemStats backend_cuda_mem_stats(void) {
#ifdef DISTILL_HAVE_CUDA
    return distill_cuda_mem_stats();
#else
    BackendMemStats z = {0};
    return z;
#endif
}
