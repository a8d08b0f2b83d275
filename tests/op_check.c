/*
 * op_check.c — the harness of the engine's op tests (see op_check.h): reporting, input tensors,
 * guard bytes, forward runs, finite-difference gradient checks, fused-vs-unfused comparison and
 * death tests in a forked child.
 */
#define _POSIX_C_SOURCE 200809L
#include "op_check.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int g_failures;
int g_checks;
Rng g_rng;
Ctx *g_in;
Ctx *g_c;
Ctx *g_fd;

/* ---------------------------------------------------------------- reporting */

void fail(const char *op, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", op);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    g_failures++;
}

void expect(bool cond, const char *op, const char *what) {
    g_checks++;
    if (!cond) fail(op, "%s", what);
}

void expect_close(const char *op, const char *what, const float *got, const double *ref,
                         size_t n, double tol) {
    g_checks++;
    double worst = 0.0, scale = 0.0;
    size_t at = 0;
    bool nan = false;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (isnan(e)) nan = true;
        if (e > worst) worst = e, at = i;
        if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
    }
    double err = scale > 0 ? worst / scale : worst;
    if (nan || !(err <= tol))
        fail(op, "%s: worst error %.3g (at %zu: got %.9g, want %.9g) > tolerance %.3g%s", what, err,
             at, (double)got[at], ref[at], tol, nan ? " (NaN)" : "");
    else
        printf("ok   %-24s %-34s error %.2e (tol %.1e)\n", op, what, err, tol);
}

void expect_bitwise(const char *op, const char *what, const void *a, const void *b,
                           size_t bytes) {
    g_checks++;
    if (memcmp(a, b, bytes) != 0) fail(op, "%s: results differ bitwise", what);
    else printf("ok   %-24s %s\n", op, what);
}

/* ---------------------------------------------------------------- tensors */

Tensor *mk(int ndim, const int *shape, double lo, double hi, bool requires_grad) {
    Tensor *t = ctx_tensor(g_in, DT_F32, ndim, shape);
    float *d = t->data;
    for (size_t i = 0; i < t->numel; i++) d[i] = (float)(lo + (hi - lo) * rng_next_double(&g_rng));
    t->requires_grad = requires_grad;
    return t;
}

Tensor *mk_i32(int ndim, const int *shape, const int32_t *vals) {
    return ctx_from_host(g_in, DT_I32, ndim, shape, vals);
}

double *dcopy(const Tensor *t) {
    double *d = xmalloc(t->numel * sizeof(double));
    for (size_t i = 0; i < t->numel; i++) d[i] = tdata(t)[i];
    return d;
}

bool shape_is(const Tensor *t, int ndim, const int *shape) {
    if (t->ndim != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return false;
    return true;
}

/* ---------------------------------------------------------------- guard bytes */

#define POISON 0xA5
#define POISON_SPAN ((size_t)1 << 20)
static unsigned char *g_poison_lo, *g_poison_hi;

/* Fills the free part of the op context's arena with POISON: every byte an op does not write keeps
 * it, so padding after an output (allocations are rounded up to 64 bytes) and the free tail reveal
 * out-of-bounds writes. */
static void poison(Ctx *c) {
    ArenaBlock *b = c->arena->head;
    size_t n = b->size - b->used < POISON_SPAN ? b->size - b->used : POISON_SPAN;
    g_poison_lo = (unsigned char *)b->base + b->used;
    g_poison_hi = g_poison_lo + n;
    memset(g_poison_lo, POISON, n);
}

static bool guard_intact(const Tensor *t) {
    unsigned char *p = (unsigned char *)t->data + tensor_bytes(t);
    unsigned char *end = (unsigned char *)t->data + ((tensor_bytes(t) + 63) & ~(size_t)63);
    if ((unsigned char *)t->data < g_poison_lo || end > g_poison_hi) return true; /* not poisoned */
    for (; p < end; p++)
        if (*p != POISON) return false;
    return true;
}

static bool tail_intact(Ctx *c) {
    ArenaBlock *b = c->arena->head;
    unsigned char *p = (unsigned char *)b->base + b->used, *end = p + 4096;
    if (end > g_poison_hi) end = g_poison_hi;
    for (; p < end; p++)
        if (*p != POISON) return false;
    return true;
}

/* ---------------------------------------------------------------- op cases */


static void prepare(Ctx *c, const OpCase *oc, bool record) {
    ctx_reset(c);
    for (int k = 0; k < oc->nin; k++)
        if (oc->in[k]) oc->in[k]->grad = NULL;
    c->record = record;
    c->training = oc->training;
    c->rng_counter = oc->rng0;
}

Tensor *fwd(OpCase *oc) {
    prepare(g_c, oc, true);
    void *snap[4] = {0};
    for (int k = 0; k < oc->nin; k++) {
        if (!oc->in[k]) continue;
        snap[k] = xmalloc(tensor_bytes(oc->in[k]));
        memcpy(snap[k], oc->in[k]->data, tensor_bytes(oc->in[k]));
    }
    poison(g_c);
    Tensor *out = oc->run(g_c, oc->in, oc);
    expect(guard_intact(out) && tail_intact(g_c), oc->name, "wrote past the end of its output");
    for (int k = 0; k < oc->nin; k++) {
        if (!snap[k]) continue;
        expect(memcmp(snap[k], oc->in[k]->data, tensor_bytes(oc->in[k])) == 0, oc->name,
               "modified an input");
        free(snap[k]);
    }
    return out;
}

void backward_seed(Ctx *c, Tensor *out, const float *R) {
    Tensor *g = ctx_grad(c, out);
    memcpy(g->data, R, out->numel * sizeof(float));
    for (int i = c->tape.n - 1; i >= 0; i--) {
        TapeEntry *e = &c->tape.entries[i];
        if (e->out->grad) e->backward(c, e);
    }
}

static double loss_of(OpCase *oc, const float *R) {
    prepare(g_fd, oc, false);
    Tensor *out = oc->run(g_fd, oc->in, oc);
    double L = 0.0;
    for (size_t j = 0; j < out->numel; j++) L += (double)R[j] * tdata(out)[j];
    return L;
}

/* Analytic gradients of every input that requires one against central differences. */
void check_grad(OpCase *oc) {
    double h = oc->fd_step > 0 ? oc->fd_step : FD_STEP;
    Tensor *out = fwd(oc);
    expect(out->requires_grad, oc->name, "output does not require grad");
    if (!out->requires_grad) return;
    float *R = xmalloc(out->numel * sizeof(float));
    for (size_t j = 0; j < out->numel; j++) R[j] = (float)(2.0 * rng_next_double(&g_rng) - 1.0);
    backward_seed(g_c, out, R);
    float *ga[4] = {0};
    for (int k = 0; k < oc->nin; k++) {
        Tensor *x = oc->in[k];
        if (!x) continue;
        if (!x->requires_grad) {
            expect(x->grad == NULL, oc->name, "gave a gradient to an input that does not require one");
            continue;
        }
        expect(x->grad != NULL, oc->name, "gave no gradient to an input that requires one");
        if (!x->grad) continue;
        expect(guard_intact(x->grad) && tail_intact(g_c), oc->name,
               "backward wrote past the end of a gradient");
        ga[k] = xmalloc(x->numel * sizeof(float));
        memcpy(ga[k], x->grad->data, x->numel * sizeof(float));
    }
    /* The += rule: a second backward doubles every gradient. */
    backward_seed(g_c, out, R);
    for (int k = 0; k < oc->nin; k++) {
        if (!ga[k]) continue;
        double *twice = xmalloc(oc->in[k]->numel * sizeof(double));
        for (size_t i = 0; i < oc->in[k]->numel; i++) twice[i] = 2.0 * ga[k][i];
        char what[64];
        snprintf(what, sizeof what, "backward accumulates (in[%d])", k);
        /* Doubling is exact for one accumulation and within a few f32 roundings when a backward
         * adds several contributions into one buffer. */
        expect_close(oc->name, what, tdata(oc->in[k]->grad), twice, oc->in[k]->numel, 8 * EPS32);
        free(twice);
    }
    for (int k = 0; k < oc->nin; k++) {
        if (!ga[k]) continue;
        Tensor *x = oc->in[k];
        size_t n = x->numel, m = n <= FD_MAX_ELEMS ? n : FD_MAX_ELEMS;
        float *got = xmalloc(m * sizeof(float));
        double *fdv = xmalloc(m * sizeof(double));
        for (size_t s = 0; s < m; s++) {
            size_t i = n <= FD_MAX_ELEMS ? s : rng_next_below(&g_rng, n);
            float orig = tdata(x)[i];
            tdata(x)[i] = (float)(orig + h);
            double xp = tdata(x)[i], Lp = loss_of(oc, R);
            tdata(x)[i] = (float)(orig - h);
            double xm = tdata(x)[i], Lm = loss_of(oc, R);
            tdata(x)[i] = orig;
            fdv[s] = (Lp - Lm) / (xp - xm);
            got[s] = ga[k][i];
        }
        char what[64];
        snprintf(what, sizeof what, "grad in[%d] vs finite diff", k);
        expect_close(oc->name, what, got, fdv, m, GRAD_TOL);
        free(got);
        free(fdv);
        free(ga[k]);
    }
    free(R);
}

/* Forward of a fused op and its unfused composition must agree: the same kernels run in the same
 * order on the same values, so they are expected bitwise equal; the tolerance allows 2 ulps for a
 * compiler that contracts a*b+c differently in the two call sites. Gradients too. */
void expect_fused_matches(OpCase *fused, OpCase *unfused) {
    Tensor *a = fwd(fused);
    size_t n = a->numel;
    float *fa = xmalloc(n * sizeof(float));
    memcpy(fa, a->data, n * sizeof(float));
    Tensor *b = fwd(unfused);
    double *fb = dcopy(b);
    expect_close(fused->name, "fused == unfused forward", fa, fb, n, 2 * EPS32);
    /* gradients */
    float *R = xmalloc(n * sizeof(float));
    for (size_t j = 0; j < n; j++) R[j] = (float)(2.0 * rng_next_double(&g_rng) - 1.0);
    float *ga[4] = {0};
    a = fwd(fused);
    backward_seed(g_c, a, R);
    for (int k = 0; k < fused->nin; k++) {
        Tensor *x = fused->in[k];
        if (!x || !x->requires_grad) continue;
        ga[k] = xmalloc(x->numel * sizeof(float));
        memcpy(ga[k], x->grad->data, x->numel * sizeof(float));
    }
    b = fwd(unfused);
    backward_seed(g_c, b, R);
    for (int k = 0; k < fused->nin; k++) {
        if (!ga[k]) continue;
        double *gb = dcopy(unfused->in[k]->grad);
        char what[64];
        snprintf(what, sizeof what, "fused == unfused grad in[%d]", k);
        /* Same kernels; the unfused chain rounds its intermediate gradient to f32 once more. */
        expect_close(fused->name, what, ga[k], gb, unfused->in[k]->numel, 4 * EPS32);
        free(gb);
        free(ga[k]);
    }
    free(R);
    free(fa);
    free(fb);
}

/* ---------------------------------------------------------------- misuse aborts */

void expect_abort(const char *what, DeathFn fn, const char *needle) {
    int fds[2];
    g_checks++;
    if (pipe(fds) != 0) {
        fail("death test", "pipe failed");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0); /* should not get here */
    }
    close(fds[1]);
    char buf[2048] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    if (!aborted || !strstr(buf, needle))
        fail(what, "expected an abort with \"%s\", got status %d and stderr \"%s\"", needle, status, buf);
    else
        printf("ok   %-24s aborts: %.*s\n", what, (int)strcspn(buf, "\n"), buf);
}
