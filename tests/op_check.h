/*
 * op_check.h — the harness shared by the engine's op tests (test_ops.c, test_ops_core.c).
 *
 * An OpCase names an op, a function that runs it on its inputs, and the op's scalar arguments.
 * fwd() runs it in a recording context with guard bytes after every allocation and checks that
 * inputs are left unchanged; check_grad() compares the backward with central finite differences
 * of L = sum(R * out) for a random R, computed in double around the f32 op, and checks the +=
 * rule by running the backward twice. Every check counts in g_checks; failures print
 * "FAIL <op>: <what>: worst error ..." and count in g_failures (main exits 1 when non-zero).
 *
 * Tolerances. Forward errors are max|got - ref| / max|ref| (one unit of f32 rounding is
 * EPS32 = 2^-24 ~ 6e-8). Gradient errors are max|analytic - fd| / max|fd| over the checked elements.
 * Finite differences use a step h = FD_STEP = 2^-7 on inputs of magnitude ~1 unless a case sets
 * fd_step: truncation error ~ h^2/6 * |f'''| ~ 1e-5 for the smooth O(1) functions tested, and f32
 * rounding of the op's outputs contributes ~ EPS32 * n_affected * |R out| / (2h) ~ 6e-8 * 40 /
 * 1.6e-2 ~ 1.5e-4 (outputs that do not depend on the perturbed element are bitwise identical in
 * both evaluations, so they cancel exactly). GRAD_TOL = 2e-3 leaves a margin of >10x over the sum.
 */
#ifndef DISTILL_TESTS_OP_CHECK_H
#define DISTILL_TESTS_OP_CHECK_H

#include "engine/ops.h"
#include "engine/rng.h"

#define EPS32 5.9604644775390625e-8 /* 2^-24, unit roundoff of f32 */
#define FD_STEP 0.0078125           /* 2^-7, see above */
#define GRAD_TOL 2e-3               /* see above */
#define FD_MAX_ELEMS 240            /* elements checked per input (a random sample beyond this) */

extern int g_failures;
extern int g_checks;
extern Rng g_rng;
extern Ctx *g_in; /* holds the inputs of the current case */
extern Ctx *g_c;  /* runs the op under test (recording) */
extern Ctx *g_fd; /* runs finite-difference forwards (not recording) */

/* ---- reporting ---- */
void fail(const char *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void expect(bool cond, const char *op, const char *what);
/* max|got - ref| / max|ref| <= tol (NaN fails); prints the worst error either way. */
void expect_close(const char *op, const char *what, const float *got, const double *ref, size_t n,
                  double tol);
void expect_bitwise(const char *op, const char *what, const void *a, const void *b, size_t bytes);

/* ---- input tensors (in g_in) ---- */
/* Uniform in [lo, hi). */
Tensor *mk(int ndim, const int *shape, double lo, double hi, bool requires_grad);
Tensor *mk_i32(int ndim, const int *shape, const int32_t *vals);
static inline float *tdata(const Tensor *t) { return (float *)t->data; }
double *dcopy(const Tensor *t); /* f64 copy, caller frees */
bool shape_is(const Tensor *t, int ndim, const int *shape);

/* ---- op cases ---- */
typedef struct OpCase OpCase;
typedef Tensor *(*RunFn)(Ctx *c, Tensor **in, const OpCase *oc);

struct OpCase {
    const char *name;
    RunFn run;
    int nin;
    Tensor *in[4];
    float f[3];      /* op scalars */
    int i[3];        /* op integers */
    bool training;   /* dropout active */
    uint64_t rng0;   /* rng_counter before the op */
    double fd_step;  /* 0: FD_STEP */
};

/* Runs the case in g_c (recording, fresh gradients); checks guard bytes and unchanged inputs.
 * The output lives until the next fwd/check_grad. */
Tensor *fwd(OpCase *oc);
/* Seeds d(out) = R (overwriting) and walks the tape in reverse, as ctx_backward does. */
void backward_seed(Ctx *c, Tensor *out, const float *R);
/* Every input that requires a gradient against central differences; the += rule; no gradient
 * for inputs that do not require one. */
void check_grad(OpCase *oc);
/* A fused op and its unfused composition: forward and gradients agree to 2-4 ulps (they run the
 * same kernels on the same values, so they are expected bitwise equal). */
void expect_fused_matches(OpCase *fused, OpCase *unfused);

/* ---- misuse ---- */
typedef void (*DeathFn)(void);
/* Runs fn in a forked child; it must abort (SIGABRT) with `needle` in its stderr. */
void expect_abort(const char *what, DeathFn fn, const char *needle);

/* ---- suites in test_ops_core.c ---- */
void test_backend_table(void);
void test_engine_core(void);

#endif
