/*
 * bench_gemm.c — the GEMM rates a training step can hope for on this machine: OpenBLAS SGEMM
 * (fp32), oneDNN's f32 matmul (what the engine's fp32 GEMMs use, engine/cpu/cpu_gemm_rule.c) and
 * oneDNN's bf16 x bf16 -> fp32 matmul, on BERT-shaped linear layers.
 *
 * Not a test (nothing is asserted, no CTest registration): scripts/bench_vs_torch.sh runs it in
 * the same run as the step benchmarks and divides their achieved GFLOP/s by these peaks.
 *
 * Each shape is a linear layer  C (M, N) = A (M, K) . W^T  with W stored (N, K) row-major as the
 * engine and PyTorch store a Linear weight; M = batch * seq tokens. SGEMM is cblas_sgemm(RowMajor,
 * NoTrans, Trans). The oneDNN matmul takes plain layouts too (src "ab", weights (K, N) given as
 * "ba" over the (N, K) buffer, dst "ab" in f32): no pre-blocked weights, so the rate is what a
 * framework passing plain tensors gets. The primitive is created once per shape and timed over
 * repeats after warm-ups; the median repeat counts. Threads: OMP_NUM_THREADS (both libraries use
 * the OpenMP pool; OpenBLAS is told the same count).
 *
 * Prints one JSON object on stdout: threads, the OpenBLAS core, the ISA oneDNN dispatches to and
 * the implementation it chose, per-shape ms and GFLOP/s of each library, and the best of each
 * ("sgemm_peak_gflops", "dnnl_f32_peak_gflops", "bf16_peak_gflops"; null where oneDNN is not built
 * in).
 *
 * Usage: bench_gemm [--tokens M[,M...]] [--repeats R] [--smoke]
 *   --tokens  the M values (default 1024,4096: batch 8 and 32 at sequence 128)
 *   --smoke   tiny shapes, 2 repeats (for the script's CI smoke mode)
 */
#include <math.h>
#include <stdbool.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#ifdef HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);

#define MAX_SHAPES 16
#define MAX_REPEATS 64

typedef struct {
    int m, n, k;
} Shape;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_gemm: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void fill(float *x, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) * (1.0 / 16777216.0)) - 0.5f;
    }
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    return t[n / 2];
}

/* Median ms of `repeats` SGEMMs C = A W^T after `warmup` untimed ones. */
static double time_sgemm(Shape s, int warmup, int repeats) {
    float *a = xmalloc(sizeof(float) * (size_t)s.m * s.k);
    float *w = xmalloc(sizeof(float) * (size_t)s.n * s.k);
    float *c = xmalloc(sizeof(float) * (size_t)s.m * s.n);
    fill(a, (size_t)s.m * s.k, 1);
    fill(w, (size_t)s.n * s.k, 2);
    double t[MAX_REPEATS];
    for (int r = -warmup; r < repeats; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.m, s.n, s.k, 1.0f, a, s.k, w, s.k, 0.0f, c,
                    s.n);
        if (r >= 0) t[r] = now_s() - t0;
    }
    free(a);
    free(w);
    free(c);
    return 1e3 * median(t, repeats);
}

#ifdef HAVE_DNNL
#define DNNL_CHECK(call)                                                                              \
    do {                                                                                              \
        dnnl_status_t st_ = (call);                                                                   \
        if (st_ != dnnl_success) {                                                                    \
            fprintf(stderr, "bench_gemm: %s failed at %s:%d (dnnl status %d)\n", #call, __FILE__,     \
                    __LINE__, (int)st_);                                                              \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even (inputs are finite) */
    return (uint16_t)(u >> 16);
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
    }
}

/* Median ms of `repeats` oneDNN matmuls (f32 out) with one primitive, on bf16 inputs (bf16 true)
 * or f32 inputs (the engine's fp32 GEMMs go to oneDNN by cpu_gemm_rule.c); impl receives oneDNN's
 * name for the kernel it chose (e.g. "brg:avx512_core_bf16"). */
static double time_dnnl(dnnl_engine_t eng, dnnl_stream_t strm, Shape s, bool bf16, int warmup, int repeats,
                        char *impl, size_t impl_n) {
    dnnl_dims_t src_dims = {s.m, s.k}, wei_dims = {s.k, s.n}, dst_dims = {s.m, s.n};
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    const dnnl_data_type_t in_t = bf16 ? dnnl_bf16 : dnnl_f32;
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&src_md, 2, src_dims, in_t, dnnl_ab));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&wei_md, 2, wei_dims, in_t, dnnl_ba)); /* (N, K) buffer */
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_dims, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t desc;
    DNNL_CHECK(dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md));
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, eng, NULL));
    const char *name = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name)
        snprintf(impl, impl_n, "%s", name);
    dnnl_primitive_t prim;
    DNNL_CHECK(dnnl_primitive_create(&prim, pd));

    size_t na = (size_t)s.m * s.k, nw = (size_t)s.n * s.k, el = bf16 ? sizeof(uint16_t) : sizeof(float);
    float *tmp = xmalloc(sizeof(float) * (na > nw ? na : nw));
    void *a = xmalloc(el * na), *w = xmalloc(el * nw);
    float *c = xmalloc(sizeof(float) * (size_t)s.m * s.n);
    fill(tmp, na, 1);
    for (size_t i = 0; i < na; i++) {
        if (bf16) ((uint16_t *)a)[i] = to_bf16(tmp[i]);
        else ((float *)a)[i] = tmp[i];
    }
    fill(tmp, nw, 2);
    for (size_t i = 0; i < nw; i++) {
        if (bf16) ((uint16_t *)w)[i] = to_bf16(tmp[i]);
        else ((float *)w)[i] = tmp[i];
    }
    free(tmp);
    dnnl_memory_t ma, mw, mc;
    DNNL_CHECK(dnnl_memory_create(&ma, &src_md, eng, a));
    DNNL_CHECK(dnnl_memory_create(&mw, &wei_md, eng, w));
    DNNL_CHECK(dnnl_memory_create(&mc, &dst_md, eng, c));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, mc}};
    double t[MAX_REPEATS];
    for (int r = -warmup; r < repeats; r++) {
        double t0 = now_s();
        DNNL_CHECK(dnnl_primitive_execute(prim, strm, 3, args));
        DNNL_CHECK(dnnl_stream_wait(strm));
        if (r >= 0) t[r] = now_s() - t0;
    }
    dnnl_memory_destroy(ma);
    dnnl_memory_destroy(mw);
    dnnl_memory_destroy(mc);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    free(a);
    free(w);
    free(c);
    return 1e3 * median(t, repeats);
}
#endif

int main(int argc, char **argv) {
    int tokens[4] = {1024, 4096}, n_tokens = 2, repeats = 10, warmup = 2;
    int hidden = 768, inter = 3072;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke")) {
            tokens[0] = 64;
            n_tokens = 1;
            hidden = 64;
            inter = 256;
            repeats = 2;
            warmup = 1;
        } else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) {
            repeats = atoi(argv[++i]);
            if (repeats < 1 || repeats > MAX_REPEATS) {
                fprintf(stderr, "bench_gemm: --repeats: expected 1..%d\n", MAX_REPEATS);
                return 2;
            }
        } else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) {
            n_tokens = 0;
            for (char *p = strtok(argv[++i], ","); p && n_tokens < 4; p = strtok(NULL, ","))
                tokens[n_tokens++] = atoi(p);
            for (int j = 0; j < n_tokens; j++)
                if (tokens[j] < 1) {
                    fprintf(stderr, "bench_gemm: --tokens: expected positive integers\n");
                    return 2;
                }
        } else {
            fprintf(stderr, "usage: bench_gemm [--tokens M[,M...]] [--repeats R] [--smoke]\n");
            return 2;
        }
    }
    int threads = omp_get_max_threads();
    openblas_set_num_threads(threads);

    /* per token count: attention in-projection (H->H), FFN up (H->I), FFN down (I->H) */
    Shape shapes[MAX_SHAPES];
    int n = 0;
    for (int j = 0; j < n_tokens; j++) {
        shapes[n++] = (Shape){tokens[j], hidden, hidden};
        shapes[n++] = (Shape){tokens[j], inter, hidden};
        shapes[n++] = (Shape){tokens[j], hidden, inter};
    }

#ifdef HAVE_DNNL
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    DNNL_CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
    const char *isa = isa_name(dnnl_get_effective_cpu_isa());
    const dnnl_version_t *v = dnnl_version();
    char dnnl_ver[32];
    snprintf(dnnl_ver, sizeof dnnl_ver, "%d.%d.%d", v->major, v->minor, v->patch);
#else
    const char *isa = NULL, *dnnl_ver = NULL;
#endif
    char impl[128] = "", impl_f32[128] = "";
    double sg_peak = 0, bf_peak = 0, df_peak = 0;
    printf("{\"threads\":%d,\"openblas_core\":\"%s\",", threads, openblas_get_corename());
    printf(isa ? "\"dnnl_version\":\"%s\",\"dnnl_isa\":\"%s\"," : "\"dnnl_version\":null,\"dnnl_isa\":null,",
           dnnl_ver, isa);
    printf("\"shapes\":[");
    for (int i = 0; i < n; i++) {
        double gf = 2.0 * shapes[i].m * shapes[i].n * shapes[i].k / 1e6; /* MFLOP: / ms = GFLOP/s */
        double sg_ms = time_sgemm(shapes[i], warmup, repeats);
        sg_peak = fmax(sg_peak, gf / sg_ms);
        printf("%s{\"m\":%d,\"n\":%d,\"k\":%d,\"sgemm_ms\":%.3f,\"sgemm_gflops\":%.1f,", i ? "," : "",
               shapes[i].m, shapes[i].n, shapes[i].k, sg_ms, gf / sg_ms);
#ifdef HAVE_DNNL
        double bf_ms = time_dnnl(eng, strm, shapes[i], true, warmup, repeats, impl, sizeof impl);
        bf_peak = fmax(bf_peak, gf / bf_ms);
        double df_ms = time_dnnl(eng, strm, shapes[i], false, warmup, repeats, impl_f32, sizeof impl_f32);
        df_peak = fmax(df_peak, gf / df_ms);
        printf("\"bf16_ms\":%.3f,\"bf16_gflops\":%.1f,\"dnnl_f32_ms\":%.3f,\"dnnl_f32_gflops\":%.1f}", bf_ms,
               gf / bf_ms, df_ms, gf / df_ms);
#else
        printf("\"bf16_ms\":null,\"bf16_gflops\":null,\"dnnl_f32_ms\":null,\"dnnl_f32_gflops\":null}");
#endif
        fflush(stdout);
    }
    printf("],\"sgemm_peak_gflops\":%.1f,", sg_peak);
    if (df_peak > 0) printf("\"dnnl_f32_peak_gflops\":%.1f,\"dnnl_f32_impl\":\"%s\",", df_peak, impl_f32);
    else printf("\"dnnl_f32_peak_gflops\":null,\"dnnl_f32_impl\":null,");
    if (bf_peak > 0)
        printf("\"bf16_peak_gflops\":%.1f,\"dnnl_impl\":\"%s\"}\n", bf_peak, impl);
    else
        printf("\"bf16_peak_gflops\":null,\"dnnl_impl\":null}\n");
#ifdef HAVE_DNNL
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
#endif
    return 0;
}
