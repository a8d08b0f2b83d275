/*
 * test_cuda_backend.c — the CUDA backend's device handling in a CUDA build, on any machine.
 *
 * On any machine: the table is complete (no NULL entry; every kernel of engine/kernels.def).
 * Without a GPU (or without a driver): device_count() is 0 and does not crash,
 * backend_cuda_available() is false, init(0) fails with a message that says no device was found,
 * and the CPU backend still runs a GEMM. With a GPU: init(0) succeeds, the device has a name, and
 * memory round-trips host -> device -> device -> host unchanged, zero() zeroes, and an out-of-range
 * index is refused with a message. DISTILL_EXPECT_GPU=1 makes "no GPU" a failure (gpu_check.sh).
 *
 * Exit status 0 when every check holds, 1 otherwise. This test never skips: both branches check.
 */
#include "engine/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define EXPECT(cond, ...)                                                                      \
    do {                                                                                       \
        if (cond) {                                                                            \
            printf("ok   %s\n", #cond);                                                        \
        } else {                                                                               \
            printf("FAIL %s: ", #cond);                                                        \
            printf(__VA_ARGS__);                                                               \
            printf("\n");                                                                      \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

static void check_table(const Backend *be) {
    EXPECT(be != NULL, "backend_cuda() is NULL in a CUDA build");
    if (!be) return;
    EXPECT(strcmp(be->name, "cuda") == 0, "name is %s", be->name);
    EXPECT(be->type == DEV_CUDA, "type is %d", (int)be->type);
    /* Every entry is filled: the device and memory entries and every kernel of engine/kernels.def
     * (the table is built without a device, so this holds on any machine). */
    EXPECT(backend_missing_entry(be) == NULL, "table entry %s is NULL", backend_missing_entry(be));
    EXPECT(backend_for(DEV_CUDA) == be, "backend_for(DEV_CUDA) is another table");
}

static void no_gpu_branch(const Backend *be) {
    EXPECT(!backend_cuda_available(), "available without a device");
    Status st = be->init(0);
    EXPECT(st == DISTILL_ERR, "init(0) succeeded without a device");
    EXPECT(strstr(distill_error(), "cuda:0") && strstr(distill_error(), "0 CUDA devices"),
           "message is: %s", distill_error());
    /* The CPU backend still works in this build. */
    const Backend *cpu = backend_cpu();
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}, c[4] = {0};
    cpu->gemm(0, 0, 2, 2, 3, 1.0f, a, 3, 0, b, 2, 0, 0.0f, c, 2, 0, 1);
    /* [1 2 3; 4 5 6] @ [1 0; 0 1; 1 1] = [4 5; 10 11], exact in float */
    EXPECT(c[0] == 4 && c[1] == 5 && c[2] == 10 && c[3] == 11, "cpu gemm gave %g %g %g %g", c[0],
           c[1], c[2], c[3]);
}

static void gpu_branch(const Backend *be, int n) {
    EXPECT(backend_cuda_available(), "not available with %d devices", n);
    Status st = be->init(0);
    EXPECT(st == DISTILL_OK, "init(0): %s", distill_error());
    if (st != DISTILL_OK) return;
    const char *name = be->device_name(0);
    printf("cuda:0 = %s\n", name);
    EXPECT(name && name[0], "empty device name");
    EXPECT(be->init(n) == DISTILL_ERR, "init(%d) accepted an index past the last device", n);

    enum { N = 1000003 }; /* odd, not a multiple of any block size */
    float *h = malloc(N * sizeof(float)), *back = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) h[i] = (float)i * 0.5f - 7.0f;
    float *d1 = be->alloc(N * sizeof(float)), *d2 = be->alloc(N * sizeof(float));
    be->copy(d1, h, N * sizeof(float), COPY_H2D);
    be->copy(d2, d1, N * sizeof(float), COPY_D2D);
    be->copy(back, d2, N * sizeof(float), COPY_D2H);
    EXPECT(memcmp(h, back, N * sizeof(float)) == 0, "round trip changed the data");
    be->zero(d2, N * sizeof(float));
    be->sync();
    be->copy(back, d2, N * sizeof(float), COPY_D2H);
    int nonzero = 0;
    for (int i = 0; i < N; i++) nonzero += back[i] != 0.0f;
    EXPECT(nonzero == 0, "%d values not zeroed", nonzero);
    void *empty = be->alloc(0);
    EXPECT(empty != NULL, "alloc(0) returned NULL");
    be->free(empty);
    be->free(d1);
    be->free(d2);
    free(h);
    free(back);
}

int main(void) {
    const Backend *be = backend_cuda();
    check_table(be);
    if (!be) return 1;
    int n = be->device_count();
    printf("device_count() = %d\n", n);
    EXPECT(n >= 0, "negative device count");
    const char *expect = getenv("DISTILL_EXPECT_GPU");
    if (expect && strcmp(expect, "1") == 0) EXPECT(n > 0, "DISTILL_EXPECT_GPU=1 but no device");
    if (n > 0)
        gpu_branch(be, n);
    else
        no_gpu_branch(be);
    printf("%s: %d failure%s\n", failures ? "FAIL" : "PASS", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
