/*
 * cuda_memory.cu — the CUDA backend's memory: a caching allocator for device memory and a pinned
 * staging ring for host-to-device copies.
 *
 * Promises:
 *   - cuda_pool_alloc returns device memory of at least `bytes` (256-byte aligned, as cudaMalloc).
 *     Sizes are rounded up to a size class (512 B, then four classes per power of two up to 1 MiB,
 *     then multiples of 2 MiB: at most 25% over below 1 MiB, at most 2 MiB over above). A freed
 *     block goes back to its class's free list, and the next request of that class takes it, so a
 *     training run whose step asks for the same sizes every time calls cudaMalloc only while the
 *     first step finds its sizes, and cudaFree never (the counters of backend_cuda_mem_stats show
 *     it; tests/test_cuda_step.c checks it).
 *   - Reuse is safe without waiting: the backend queues all work on one stream (cuda_stream), so
 *     a block freed by the host and handed out again is written by later work only after the
 *     earlier work that read it. (Work on another stream, as NCCL's, must not use memory that is
 *     freed while it runs: the trainer reduces parameter gradients, which are never freed.)
 *   - Out of memory: the cached blocks are released (after the device is idle) and cudaMalloc is
 *     tried once more; if that fails too the process aborts with the sizes and the device's free
 *     memory.
 *   - cuda_h2d copies host memory to the device without waiting for the copy: the bytes are copied
 *     into a pinned ring of 16 MiB, and a cudaMemcpyAsync from there is queued on the stream with
 *     an event after it. The caller's buffer may be reused as soon as the call returns. A part of
 *     the ring is written again only after the event of the copy that last read it has completed
 *     (host waits are counted as h2d_waits). Copies larger than 4 MiB go through in 4 MiB pieces.
 *   - cuda_memory_reset (device change, shutdown) waits for the device, frees the cached blocks
 *     and the ring; blocks still in use from before are freed with cudaFree when they come back.
 * Single-threaded, as the rest of the backend (one process drives one device).
 */
#include "engine/cuda/cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static BackendMemStats g_stats;
static unsigned g_gen; /* bumped by cuda_memory_reset: older blocks are not cached again */

/* ---------------------------------------------------------------- size classes */

static size_t size_class(size_t bytes) {
    const size_t mib = (size_t)1 << 20;
    if (bytes <= 512) return 512;
    if (bytes > mib) return (bytes + 2 * mib - 1) / (2 * mib) * (2 * mib);
    size_t p = 512;
    while (p * 2 < bytes) p *= 2; /* p < bytes <= 2p */
    for (size_t q = 5; q <= 8; q++)
        if (p * q / 4 >= bytes) return p * q / 4;
    return 2 * p;
}

/* ---------------------------------------------------------------- live blocks: pointer -> size */

typedef struct {
    void *p; /* NULL: empty slot */
    size_t size;
    unsigned gen;
} Block;

static Block *g_map;
static size_t g_map_cap, g_map_n; /* capacity a power of two, load kept below 1/2 */

static size_t map_slot(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & (g_map_cap - 1);
}

static void map_put(void *p, size_t size, unsigned gen) {
    if (2 * (g_map_n + 1) > g_map_cap) {
        Block *old = g_map;
        size_t old_cap = g_map_cap;
        g_map_cap = old_cap ? 2 * old_cap : 256;
        g_map = (Block *)xcalloc(g_map_cap, sizeof(Block));
        g_map_n = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].p) map_put(old[i].p, old[i].size, old[i].gen);
        free(old);
    }
    size_t i = map_slot(p);
    while (g_map[i].p) i = (i + 1) & (g_map_cap - 1);
    g_map[i].p = p;
    g_map[i].size = size;
    g_map[i].gen = gen;
    g_map_n++;
}

/* Removes p (backward-shift deletion: no tombstones); false when p is not a live block. */
static bool map_take(const void *p, Block *out) {
    if (!g_map_cap) return false;
    size_t i = map_slot(p);
    while (g_map[i].p != p) {
        if (!g_map[i].p) return false;
        i = (i + 1) & (g_map_cap - 1);
    }
    *out = g_map[i];
    size_t j = i;
    for (;;) {
        j = (j + 1) & (g_map_cap - 1);
        if (!g_map[j].p) break;
        size_t home = map_slot(g_map[j].p);
        /* move j back into the hole at i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        g_map[i] = g_map[j];
        i = j;
    }
    g_map[i].p = NULL;
    g_map_n--;
    return true;
}

/* ---------------------------------------------------------------- free lists, one per class */

typedef struct {
    size_t size;
    void **ptrs;
    int n, cap;
} FreeList;

static FreeList *g_lists;
static int g_nlists, g_cap_lists;

static FreeList *free_list(size_t size, bool create) {
    for (int i = 0; i < g_nlists; i++)
        if (g_lists[i].size == size) return &g_lists[i];
    if (!create) return NULL;
    if (g_nlists == g_cap_lists) {
        g_cap_lists = g_cap_lists ? 2 * g_cap_lists : 32;
        g_lists = (FreeList *)xrealloc(g_lists, (size_t)g_cap_lists * sizeof(FreeList));
    }
    FreeList *fl = &g_lists[g_nlists++];
    memset(fl, 0, sizeof *fl);
    fl->size = size;
    return fl;
}

/* cudaFree of every cached block, after the device is idle (cached blocks may still be read by
 * queued work: their reuse is stream-ordered, their release is not). */
static void release_cached(void) {
    CUDA_CHECK(cudaDeviceSynchronize());
    for (int i = 0; i < g_nlists; i++) {
        FreeList *fl = &g_lists[i];
        for (int k = 0; k < fl->n; k++) {
            CUDA_CHECK(cudaFree(fl->ptrs[k]));
            g_stats.device_frees++;
            g_stats.reserved_bytes -= fl->size;
            g_stats.cached_bytes -= fl->size;
        }
        fl->n = 0;
    }
}

void *cuda_pool_alloc(size_t bytes) {
    const size_t size = size_class(bytes);
    FreeList *fl = free_list(size, false);
    void *p = NULL;
    if (fl && fl->n) {
        p = fl->ptrs[--fl->n];
        g_stats.cached_bytes -= size;
    } else {
        g_stats.device_mallocs++;
        cudaError_t e = cudaMalloc(&p, size);
        if (e == cudaErrorMemoryAllocation && g_stats.cached_bytes) {
            (void)cudaGetLastError();
            release_cached();
            g_stats.device_mallocs++;
            e = cudaMalloc(&p, size);
        }
        if (e != cudaSuccess) {
            size_t free_b = 0, total_b = 0;
            int dev = -1;
            (void)cudaGetLastError();
            cudaMemGetInfo(&free_b, &total_b);
            cudaGetDevice(&dev);
            fprintf(stderr,
                    "distill: error: out of memory allocating %zu bytes (%zu requested) on cuda:%d "
                    "(%zu of %zu bytes free; the engine holds %zu): %s\n",
                    size, bytes, dev, free_b, total_b, g_stats.reserved_bytes, cudaGetErrorString(e));
            abort();
        }
        g_stats.reserved_bytes += size;
    }
    map_put(p, size, g_gen);
    return p;
}

void cuda_pool_free(void *p) {
    if (!p) return;
    Block b;
    if (!map_take(p, &b)) {
        fprintf(stderr, "distill: error: %s:%d: CUDA free of %p, which the CUDA allocator did not hand out "
                        "(or was freed already)\n", __FILE__, __LINE__, p);
        abort();
    }
    if (b.gen != g_gen) { /* from before a reset: not cached for the new device */
        CUDA_CHECK(cudaFree(p));
        g_stats.device_frees++;
        g_stats.reserved_bytes -= b.size;
        return;
    }
    FreeList *fl = free_list(b.size, true);
    if (fl->n == fl->cap) {
        fl->cap = fl->cap ? 2 * fl->cap : 8;
        fl->ptrs = (void **)xrealloc(fl->ptrs, (size_t)fl->cap * sizeof(void *));
    }
    fl->ptrs[fl->n++] = p;
    g_stats.cached_bytes += b.size;
}

/* ---------------------------------------------------------------- pinned staging ring */

#define STAGE_BYTES ((size_t)16 << 20)
#define STAGE_PIECE ((size_t)4 << 20) /* most bytes one queued copy takes from the ring */
#define STAGE_RECS 64                  /* queued copies tracked at once */

static char *g_stage;      /* pinned host memory, STAGE_BYTES */
static size_t g_head;      /* next free byte */
static size_t g_used;      /* bytes held by queued copies (their pieces and the gaps before them) */
static struct {
    size_t bytes;          /* the piece plus the gap skipped at the ring's end before it */
    cudaEvent_t ev;        /* recorded after the copy that reads the piece */
} g_rec[STAGE_RECS];
static int g_rec_first, g_rec_n; /* FIFO of queued copies, oldest first */

static void stage_init(void) {
    CUDA_CHECK(cudaHostAlloc((void **)&g_stage, STAGE_BYTES, cudaHostAllocDefault));
    for (int i = 0; i < STAGE_RECS; i++)
        CUDA_CHECK(cudaEventCreateWithFlags(&g_rec[i].ev, cudaEventDisableTiming));
    g_head = g_used = 0;
    g_rec_first = g_rec_n = 0;
}

/* Frees the oldest queued copy's bytes, waiting for the copy if it has not run yet. */
static void stage_retire_oldest(void) {
    cudaEvent_t ev = g_rec[g_rec_first].ev;
    if (cudaEventQuery(ev) == cudaErrorNotReady) g_stats.h2d_waits++;
    CUDA_CHECK(cudaEventSynchronize(ev));
    g_used -= g_rec[g_rec_first].bytes;
    g_rec_first = (g_rec_first + 1) % STAGE_RECS;
    g_rec_n--;
}

void cuda_h2d(void *dst, const void *src, size_t bytes, cudaStream_t st) {
    if (!g_stage) stage_init();
    const char *s = (const char *)src;
    char *d = (char *)dst;
    while (bytes) {
        const size_t piece = bytes < STAGE_PIECE ? bytes : STAGE_PIECE;
        const size_t need = (piece + 255) & ~(size_t)255;
        bool wrap;
        size_t gap;
        for (;;) {
            if (g_used == 0) g_head = 0;
            wrap = g_head + need > STAGE_BYTES;   /* skip the ring's end, start again at 0 */
            gap = wrap ? STAGE_BYTES - g_head : 0;
            /* the held bytes run cyclically from head - used to head: the new piece fits when
             * used + gap + need <= the ring (so it cannot reach the oldest held byte) */
            if (g_rec_n < STAGE_RECS && g_used + gap + need <= STAGE_BYTES) break;
            stage_retire_oldest();
        }
        const size_t off = wrap ? 0 : g_head;
        memcpy(g_stage + off, s, piece);
        CUDA_CHECK(cudaMemcpyAsync(d, g_stage + off, piece, cudaMemcpyHostToDevice, st));
        const int slot = (g_rec_first + g_rec_n) % STAGE_RECS;
        g_rec[slot].bytes = gap + need;
        CUDA_CHECK(cudaEventRecord(g_rec[slot].ev, st));
        g_rec_n++;
        g_used += gap + need;
        g_head = off + need;
        s += piece;
        d += piece;
        bytes -= piece;
    }
}

/* ---------------------------------------------------------------- reset and statistics */

void cuda_memory_reset(void) {
    release_cached();
    if (g_stage) {
        for (int i = 0; i < STAGE_RECS; i++) CUDA_CHECK(cudaEventDestroy(g_rec[i].ev));
        CUDA_CHECK(cudaFreeHost(g_stage));
        g_stage = NULL;
    }
    g_gen++;
}

extern "C" BackendMemStats distill_cuda_mem_stats(void) { return g_stats; }
