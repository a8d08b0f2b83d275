/*
 * cpu_dnnl.c — bf16 GEMMs on the CPU through oneDNN's matmul (DESIGN §2, §8: "bf16 = bf16 GEMM
 * inputs with fp32 accumulation").
 *
 * cpu_gemm_bf16 has the gemm kernel's contract (engine/kernels.def): C_b = alpha * op(A_b)
 * op(B_b) + beta * C_b for b < batch, with A, B and C fp32 in memory. A and B are rounded to bf16
 * (round to nearest even, as torch's .to(torch.bfloat16)) into scratch copies in their stored
 * layouts, which oneDNN reads through strided descriptors (no transposed copy; a batch stride of 0
 * is a broadcast); the product accumulates in fp32 and C stays fp32. cpu_gemm_bf16_b16 takes B
 * already in bf16 (a frozen model's weights, rounded once: params_make_bf16). Each shape's
 * primitive is created once and kept in a cache of 512 (key: every size, stride and scalar that
 * shapes it), so a training step creates none after the first.
 *
 * cpu_gemm_onednn_f32 runs the fp32 GEMM on the same cache (fp32 operands, read in place), for
 * the shapes cpu_gemm gives oneDNN (cpu_gemm_rule.c).
 *
 * oneDNN uses AMX where the CPU has it and AVX512-BF16 otherwise; below that it would emulate
 * bf16, slowly, so cpu_bf16_supported refuses instead. The library runs on OpenMP (Debian's
 * build), the engine's own thread pool.
 */
#include <dnnl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_dnnl.h"
#include "engine/cpu/cpu_kernels.h"

static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;

static void dnnl_check(dnnl_status_t s, const char *what) {
    if (s != dnnl_success) {
        fprintf(stderr, "distill: internal error: oneDNN %s failed (status %d)\n", what, (int)s);
        abort();
    }
}

static void ensure_engine(void) {
    if (g_engine) return;
    dnnl_check(dnnl_engine_create(&g_engine, dnnl_cpu, 0), "engine creation");
    dnnl_check(dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags), "stream creation");
}

bool cpu_onednn_available(void) { return true; }

const char *cpu_gemm_isa_name(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_sse41: return "sse41";
    default: return "other";
    }
}

bool cpu_bf16_supported(char *why, size_t n) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    bool ok = isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
    if (!ok && why)
        snprintf(why, n, "this CPU has no bf16 instructions (oneDNN's best ISA here is %s; bf16 needs "
                 "AVX512-BF16 or AMX), and emulating them would be slower than fp32", cpu_gemm_isa_name());
    return ok;
}

/* ------------------------------------------------------------------ fp32 -> bf16 */

/* cpu_to_bf16 (engine/cpu/cpu_kernels.c) rounds to nearest even, NaN kept quiet. */

static uint16_t *scratch(uint16_t **buf, size_t *cap, size_t n) {
    if (*cap < n) {
        free(*buf);
        *buf = malloc(n * sizeof(uint16_t));
        if (!*buf) {
            fprintf(stderr, "distill: out of memory (%zu bytes for bf16 GEMM inputs)\n", n * sizeof(uint16_t));
            abort();
        }
        *cap = n;
    }
    return *buf;
}

/* Elements a strided batch of a stored rows x cols matrix spans. */
static size_t span(long long stride, int batch, int rows, int cols, int ld) {
    return (stride ? (size_t)stride * (size_t)(batch - 1) : 0) + (size_t)(rows - 1) * ld + (size_t)cols;
}

/* ------------------------------------------------------------------ primitive cache */

/* Everything that shapes a primitive: the operands are described in their stored layouts
 * (strides), so no transposed copy is ever made. */
typedef struct {
    int f32; /* 1: fp32 operands (cpu_gemm_onednn_f32), 0: bf16 */
    int ta, tb, m, n, k, batch, ba, bb, lda, ldb, ldc;
    long long sa, sb, sc;
    float alpha, beta;
} Key;

typedef struct {
    Key key;
    bool used;
    unsigned long long last;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst, pad; /* pad: the scratchpad (NULL when the primitive needs none) */
    size_t pad_bytes;
} Entry;

/* A set-associative cache: a key's hash picks a set of CACHE_WAYS entries, the least recently
 * used of the set is replaced. Big enough for every shape of a batch-1 evaluation over rows of
 * every length (5 shapes per length) and of a training step's forward and backward at a few
 * dozen padded lengths: with the earlier 96 entries, rows of ~30 distinct lengths evicted each
 * other's primitives in a cycle and every GEMM re-created its primitive (README, Benchmarks). */
#define CACHE_WAYS 8
#define CACHE_SETS 64
static Entry g_cache[CACHE_SETS * CACHE_WAYS];
static unsigned long long g_tick;

/* The scratchpad every primitive shares (scratchpad mode "user"): GEMMs run one at a time on the
 * host thread (cpu_backend.c), so one buffer, grown to the largest request and kept, serves all;
 * oneDNN's own ("library") scratchpads were allocated and freed with their primitives. */
static void *g_pad;
static size_t g_pad_cap;

static void *pad_buffer(size_t bytes) {
    if (bytes > g_pad_cap) {
        free(g_pad);
        size_t cap = (bytes + 4095) & ~(size_t)4095;
        g_pad = aligned_alloc(64, cap);
        if (!g_pad) {
            fprintf(stderr, "distill: error: out of memory allocating %zu bytes of oneDNN scratchpad\n", cap);
            abort();
        }
        g_pad_cap = cap;
    }
    return g_pad;
}

static void entry_free(Entry *e) {
    if (!e->used) return;
    dnnl_primitive_destroy(e->prim);
    dnnl_memory_destroy(e->src);
    dnnl_memory_destroy(e->wei);
    dnnl_memory_destroy(e->dst);
    if (e->pad) dnnl_memory_destroy(e->pad);
    e->pad = NULL;
    e->used = false;
}

static unsigned key_hash(const Key *k) {
    const unsigned char *p = (const unsigned char *)k;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sizeof *k; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return (unsigned)(h ^ (h >> 32));
}

static Entry *get_entry(const Key *k) {
    Entry *set = &g_cache[(key_hash(k) % CACHE_SETS) * CACHE_WAYS];
    Entry *victim = &set[0];
    for (int i = 0; i < CACHE_WAYS; i++) {
        Entry *e = &set[i];
        if (e->used && !memcmp(&e->key, k, sizeof *k)) {
            e->last = ++g_tick;
            return e;
        }
        if (!e->used || (victim->used && e->last < victim->last)) victim = e;
    }
    entry_free(victim);
    ensure_engine();
    /* op(A) is m x k: stored m x k (row stride lda) or k x m (transposed: element (i, p) at p*lda + i) */
    dnnl_dims_t sd = {k->ba, k->m, k->k}, wd = {k->bb, k->k, k->n}, dd = {k->batch, k->m, k->n};
    dnnl_dims_t sst = {k->ba > 1 ? k->sa : (long long)k->m * k->k, k->ta ? 1 : k->lda, k->ta ? k->lda : 1};
    dnnl_dims_t wst = {k->bb > 1 ? k->sb : (long long)k->k * k->n, k->tb ? 1 : k->ldb, k->tb ? k->ldb : 1};
    dnnl_dims_t dst = {k->batch > 1 ? k->sc : (long long)k->m * k->ldc, k->ldc, 1};
    dnnl_memory_desc_t smd, wmd, dmd;
    dnnl_data_type_t in = k->f32 ? dnnl_f32 : dnnl_bf16;
    dnnl_check(dnnl_memory_desc_init_by_strides(&smd, 3, sd, in, sst), "src desc");
    dnnl_check(dnnl_memory_desc_init_by_strides(&wmd, 3, wd, in, wst), "weights desc");
    dnnl_check(dnnl_memory_desc_init_by_strides(&dmd, 3, dd, dnnl_f32, dst), "dst desc");
    dnnl_matmul_desc_t md;
    dnnl_check(dnnl_matmul_desc_init(&md, &smd, &wmd, NULL, &dmd), "matmul desc");
    dnnl_primitive_attr_t attr;
    dnnl_check(dnnl_primitive_attr_create(&attr), "attr");
    dnnl_check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
    if (k->alpha != 1.0f) dnnl_check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha), "output scale");
    if (k->beta != 0.0f) {
        dnnl_post_ops_t po;
        dnnl_check(dnnl_post_ops_create(&po), "post-ops");
        dnnl_check(dnnl_post_ops_append_sum(po, k->beta), "sum post-op");
        dnnl_check(dnnl_primitive_attr_set_post_ops(attr, po), "set post-ops");
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    dnnl_check(dnnl_primitive_desc_create(&pd, &md, attr, g_engine, NULL), "matmul primitive desc");
    dnnl_primitive_attr_destroy(attr);
    const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    victim->pad = NULL;
    victim->pad_bytes = pmd ? dnnl_memory_desc_get_size(pmd) : 0;
    if (victim->pad_bytes > 0)
        dnnl_check(dnnl_memory_create(&victim->pad, pmd, g_engine, DNNL_MEMORY_NONE), "scratchpad memory");
    dnnl_check(dnnl_primitive_create(&victim->prim, pd), "matmul primitive");
    dnnl_primitive_desc_destroy(pd);
    dnnl_check(dnnl_memory_create(&victim->src, &smd, g_engine, DNNL_MEMORY_NONE), "src memory");
    dnnl_check(dnnl_memory_create(&victim->wei, &wmd, g_engine, DNNL_MEMORY_NONE), "weights memory");
    dnnl_check(dnnl_memory_create(&victim->dst, &dmd, g_engine, DNNL_MEMORY_NONE), "dst memory");
    memcpy(&victim->key, k, sizeof *k); /* byte for byte: keys are compared with memcmp */
    victim->used = true;
    victim->last = ++g_tick;
    return victim;
}

/* ------------------------------------------------------------------ the GEMMs */

static uint16_t *g_abuf, *g_bbuf;
static size_t g_acap, g_bcap;

/* Runs the cached primitive of this shape on operands a, b (fp32 or bf16 as f32 says), with
 * batch > 1 and sc != 0 or batch == 1, k > 0. */
static void execute(int f32, int ta, int tb, int m, int n, int k, float alpha, const void *a, int lda, long long sa,
                    const void *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc, int batch) {
    int ba = batch > 1 && sa != 0 ? batch : 1, bb = batch > 1 && sb != 0 ? batch : 1;
    Key key;
    memset(&key, 0, sizeof key); /* the padding too: keys are compared with memcmp */
    key.f32 = f32;
    key.ta = ta, key.tb = tb, key.m = m, key.n = n, key.k = k, key.batch = batch, key.ba = ba, key.bb = bb;
    key.lda = lda, key.ldb = ldb, key.ldc = ldc, key.sa = ba > 1 ? sa : 0, key.sb = bb > 1 ? sb : 0;
    key.sc = batch > 1 ? sc : 0, key.alpha = alpha, key.beta = beta;
    Entry *e = get_entry(&key);
    dnnl_check(dnnl_memory_set_data_handle(e->src, (void *)a), "src handle");
    dnnl_check(dnnl_memory_set_data_handle(e->wei, (void *)b), "weights handle");
    dnnl_check(dnnl_memory_set_data_handle(e->dst, c), "dst handle");
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, e->wei}, {DNNL_ARG_DST, e->dst},
                               {DNNL_ARG_SCRATCHPAD, e->pad}};
    if (e->pad)
        dnnl_check(dnnl_memory_set_data_handle(e->pad, pad_buffer(e->pad_bytes)), "scratchpad handle");
    dnnl_check(dnnl_primitive_execute(e->prim, g_stream, e->pad ? 4 : 3, args), "matmul");
    dnnl_check(dnnl_stream_wait(g_stream), "stream wait");
}

/* The product with B either fp32 (b32, rounded here) or already bf16 (b16). */
static void gemm_bf16(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, long long sa,
                      const float *b32, const uint16_t *b16, int ldb, long long sb, float beta, float *c, int ldc,
                      long long sc, int batch) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    if (batch > 1 && sc == 0) {
        /* every product accumulates into the same C: one batch at a time */
        for (int i = 0; i < batch; i++)
            gemm_bf16(ta, tb, m, n, k, alpha, a + i * sa, lda, 0, b32 ? b32 + i * sb : NULL, b16 ? b16 + i * sb : NULL,
                      ldb, 0, i == 0 ? beta : 1.0f, c, ldc, 0, 1);
        return;
    }
    if (k <= 0) { /* an empty product: C = beta * C */
        for (int i = 0; i < batch; i++)
            for (int r = 0; r < m; r++)
                for (int j = 0; j < n; j++) {
                    float *p = c + i * sc + (size_t)r * ldc + j;
                    *p = beta == 0.0f ? 0.0f : beta * *p;
                }
        return;
    }
    int ba = batch > 1 && sa != 0 ? batch : 1, bb = batch > 1 && sb != 0 ? batch : 1;
    /* round each operand once, in its stored layout */
    size_t na = ta ? span(sa, ba, k, m, lda) : span(sa, ba, m, k, lda);
    uint16_t *ap = scratch(&g_abuf, &g_acap, na);
    cpu_to_bf16(ap, a, na);
    const uint16_t *bp = b16;
    if (!bp) {
        size_t nb = tb ? span(sb, bb, n, k, ldb) : span(sb, bb, k, n, ldb);
        uint16_t *w = scratch(&g_bbuf, &g_bcap, nb);
        cpu_to_bf16(w, b32, nb);
        bp = w;
    }
    execute(0, ta, tb, m, n, k, alpha, ap, lda, sa, bp, ldb, sb, beta, c, ldc, sc, batch);
}

void cpu_gemm_bf16(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, long long sa,
                   const float *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc, int batch) {
    gemm_bf16(ta, tb, m, n, k, alpha, a, lda, sa, b, NULL, ldb, sb, beta, c, ldc, sc, batch);
}

void cpu_gemm_bf16_b16(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, long long sa,
                       const uint16_t *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc,
                       int batch) {
    gemm_bf16(ta, tb, m, n, k, alpha, a, lda, sa, NULL, b, ldb, sb, beta, c, ldc, sc, batch);
}

void cpu_gemm_onednn_f32(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, long long sa,
                         const float *b, int ldb, long long sb, float beta, float *c, int ldc, long long sc,
                         int batch) {
    if (m <= 0 || n <= 0 || batch <= 0) return;
    if (k <= 0 || (batch > 1 && sc == 0)) { /* an empty product, or a shared C: OpenBLAS's loop does both */
        cpu_gemm_openblas(ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
        return;
    }
    execute(1, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}
