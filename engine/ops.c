/*
 * ops.c — the op layer (see ops.h): checks shapes, dtypes and devices, allocates the output in
 * the context's arena, runs the device's forward kernel through the Backend table and, when the
 * context records and an input requires a gradient, appends a tape entry whose backward calls the
 * backward kernels.
 *
 * Promises:
 *  - A shape, dtype or device mismatch aborts with "distill: internal error: ops.c:LINE: op_X:
 *    <what was expected>, found <shapes>"; a NULL backend entry aborts with
 *    "distill: error: op X is not supported on device Y".
 *  - out->requires_grad = c->record && some differentiable input requires a gradient. Teacher-side
 *    inputs (soft-target logits, KL targets, attention masks) and index tensors never receive one.
 *  - Backward functions accumulate (+=) into ctx_grad(c, input) of the inputs that require it and
 *    never touch the others (a zero-filled arena buffer stands in where a kernel needs somewhere
 *    to write a gradient nobody wants).
 *  - Nothing here copies activations to permute them: attention reads heads in place with strided
 *    batched GEMMs, one call per batch element.
 *  - Index tensors (ids, lengths, labels) are range-checked on the host without waiting on the
 *    device: an i32 tensor uploaded with ctx_from_host keeps a host copy (tensor_i32_host); only
 *    one made some other way on a device is read back for its check.
 */
#include "engine/ops.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- checks */

static void op_fail(const char *file, int line, const char *op, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

static void op_fail(const char *file, int line, const char *op, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "distill: internal error: %s:%d: %s: %s\n", file, line, op, msg);
    abort();
}

#define OP_CHECK(cond, op, ...) \
    do { if (!(cond)) op_fail(__FILE__, __LINE__, (op), __VA_ARGS__); } while (0)

/* Shape strings for messages; a small ring so one message can show several tensors. */
static const char *S(const Tensor *t) {
    static _Thread_local char ring[8][64];
    static _Thread_local int next;
    char *buf = ring[next++ & 7];
    if (!t) return "(null)";
    return tensor_shape_str(t, buf, 64);
}

static void need_kernel(Ctx *c, const void *fn, const char *op) {
    if (fn) return;
    char dev[32];
    if (strncmp(op, "op_", 3) == 0) op += 3; /* "op tanh is not supported ..." */
    fprintf(stderr, "distill: error: op %s is not supported on device %s\n", op,
            device_str(c->device, dev, sizeof dev));
    abort();
}
/* The backend entry `fn`, or abort naming op and device. */
#define BE(c, fn, op) (need_kernel((c), (const void *)(c)->be->fn, (op)), (c)->be->fn)
/* The matrix product at the context's precision: bf16 inputs with fp32 accumulation when c->bf16. */
#define GEMM(c, op) ((c)->bf16 ? BE(c, gemm_bf16, op) : BE(c, gemm, op))

/* y = x W^T (rows x outf) at the context's precision; at bf16 a frozen weight's bf16 copy
 * (params_make_bf16) is read as it is instead of being rounded again. */
static void linear_gemm(Ctx *c, const char *op, int rows, int outf, int in, const Tensor *x, const Tensor *w,
                        float *y) {
    if (c->bf16 && w->bf16)
        BE(c, gemm_bf16_b16, op)(0, 1, rows, outf, in, 1.0f, (const float *)x->data, in, 0, w->bf16, in, 0, 0.0f, y,
                                 outf, 0, 1);
    else
        GEMM(c, op)(0, 1, rows, outf, in, 1.0f, (const float *)x->data, in, 0, (const float *)w->data, in, 0, 0.0f, y,
                    outf, 0, 1);
}

static void check_tensor(Ctx *c, const char *op, const char *what, const Tensor *t, DType dt) {
    OP_CHECK(t != NULL, op, "%s must not be NULL", what);
    char d1[32], d2[32];
    OP_CHECK(t->dtype == dt, op, "%s must be %s, found %s %s", what, dtype_name(dt),
             dtype_name(t->dtype), S(t));
    OP_CHECK(device_eq(t->device, c->device), op, "%s must be on %s, found %s", what,
             device_str(c->device, d1, sizeof d1), device_str(t->device, d2, sizeof d2));
}
#define CHECK_F32(c, op, t) check_tensor((c), (op), #t, (t), DT_F32)
#define CHECK_I32(c, op, t) check_tensor((c), (op), #t, (t), DT_I32)

static inline bool rg(const Tensor *t) { return t && t->requires_grad; }

/* An f32 output of the given shape; requires_grad when recording and `any_rg`. */
static Tensor *new_out(Ctx *c, int ndim, const int *shape, bool any_rg) {
    Tensor *t = ctx_tensor(c, DT_F32, ndim, shape);
    t->requires_grad = c->record && any_rg;
    return t;
}

static Tensor *new_scalar(Ctx *c, bool any_rg) {
    int one = 1;
    return new_out(c, 1, &one, any_rg);
}

/* Same shape as t with the last dim replaced by `last`. */
static Tensor *new_out_last(Ctx *c, const Tensor *t, int last, bool any_rg) {
    int shape[TENSOR_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    shape[t->ndim - 1] = last;
    return new_out(c, t->ndim, shape, any_rg);
}

static Tensor *new_like(Ctx *c, const Tensor *t, bool any_rg) {
    return new_out(c, t->ndim, t->shape, any_rg);
}

static inline float *F(const Tensor *t) { return t ? (float *)t->data : NULL; }
static inline const int32_t *I(const Tensor *t) { return (const int32_t *)t->data; }
/* The gradient buffer of t when it requires one, else NULL. */
static float *G(Ctx *c, Tensor *t) { return rg(t) ? F(ctx_grad(c, t)) : NULL; }
/* The gradient buffer of t, or a zero-filled throwaway of the same size when t needs none. */
static float *G_or_scratch(Ctx *c, Tensor *t) {
    return rg(t) ? F(ctx_grad(c, t)) : arena_alloc_zero(c->arena, t->numel * sizeof(float));
}
static inline float *DOUT(TapeEntry *e) { return F(e->out->grad); }

/* Accumulating GEMM (beta = 1) for backward passes. When C is shared across the batch
 * (stride_c == 0), the batch entries are issued one by one so no backend ever sees concurrent
 * writers to one C. */
static void gemm_acc(Ctx *c, const char *op, int ta, int tb, int m, int n, int k,
                     const float *a, int lda, long long sa, const float *b, int ldb, long long sb,
                     float *cc, int ldc, long long sc, int batch) {
    if (sc == 0 && batch > 1) {
        for (int i = 0; i < batch; i++)
            GEMM(c, op)(ta, tb, m, n, k, 1.0f, a + i * sa, lda, 0, b + i * sb, ldb, 0, 1.0f, cc,
                            ldc, 0, 1);
        return;
    }
    GEMM(c, op)(ta, tb, m, n, k, 1.0f, a, lda, sa, b, ldb, sb, 1.0f, cc, ldc, sc, batch);
}

/* ---------------------------------------------------------------- embedding */

static void bw_embedding(Ctx *c, TapeEntry *e) {
    Tensor *w = e->in[0], *ids = e->in[1];
    BE(c, embedding_bwd, e->op)(G(c, w), DOUT(e), I(ids), (int)e->i[0], (int)ids->numel, w->shape[1]);
}

Tensor *op_embedding(Ctx *c, Tensor *w, Tensor *ids) { return op_embedding_padded(c, w, ids, -1); }

Tensor *op_embedding_padded(Ctx *c, Tensor *w, Tensor *ids, int padding_idx) {
    const char *op = "op_embedding";
    CHECK_F32(c, op, w);
    CHECK_I32(c, op, ids);
    OP_CHECK(w->ndim == 2, op, "w must be (V, H), found w %s", S(w));
    OP_CHECK(ids->ndim < TENSOR_MAX_DIMS, op, "ids may have at most %d dims, found ids %s",
             TENSOR_MAX_DIMS - 1, S(ids));
    int V = w->shape[0], H = w->shape[1];
    int32_t *own;
    const int32_t *hid = tensor_i32_host(ids, &own);
    for (size_t i = 0; i < ids->numel; i++)
        OP_CHECK(hid[i] >= 0 && hid[i] < V, op, "id %d at position %zu is outside [0, %d) (w %s)",
                 hid[i], i, V, S(w));
    free(own);
    int shape[TENSOR_MAX_DIMS];
    for (int i = 0; i < ids->ndim; i++) shape[i] = ids->shape[i];
    shape[ids->ndim] = H;
    Tensor *out = new_out(c, ids->ndim + 1, shape, rg(w)); /* (..., H) */
    BE(c, embedding_fwd, op)(F(out), F(w), I(ids), (int)ids->numel, H);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_embedding, out);
        e->in[0] = w;
        e->in[1] = ids;
        e->i[0] = padding_idx;
    }
    return out;
}

/* ---------------------------------------------------------------- linear */

static void check_linear(Ctx *c, const char *op, Tensor *x, Tensor *w, Tensor *b) {
    CHECK_F32(c, op, x);
    CHECK_F32(c, op, w);
    OP_CHECK(w->ndim == 2 && tensor_cols(x) == w->shape[1], op,
             "expected x (..., in) and w (out, in), found x %s w %s", S(x), S(w));
    if (b) {
        CHECK_F32(c, op, b);
        OP_CHECK(b->ndim == 1 && b->shape[0] == w->shape[0], op,
                 "expected b (out) for w (out, in), found w %s b %s", S(w), S(b));
    }
}

/* dx += dy w, dw += dy^T x, for x (rows, in), w (out, in), dy (rows, out). */
static void linear_bwd_gemms(Ctx *c, const char *op, Tensor *x, Tensor *w, const float *dy) {
    int in = w->shape[1], outf = w->shape[0], rows = (int)tensor_rows(x);
    if (rg(x)) gemm_acc(c, op, 0, 0, rows, in, outf, dy, outf, 0, F(w), in, 0, G(c, x), in, 0, 1);
    if (rg(w)) gemm_acc(c, op, 1, 0, outf, in, rows, dy, outf, 0, F(x), in, 0, G(c, w), in, 0, 1);
}

static void bw_linear(Ctx *c, TapeEntry *e) {
    Tensor *x = e->in[0], *w = e->in[1], *b = e->in[2];
    linear_bwd_gemms(c, e->op, x, w, DOUT(e));
    if (rg(b)) BE(c, bias_bwd, e->op)(G(c, b), DOUT(e), (int)tensor_rows(x), w->shape[0]);
}

Tensor *op_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b) {
    const char *op = "op_linear";
    check_linear(c, op, x, w, b);
    int in = w->shape[1], outf = w->shape[0], rows = (int)tensor_rows(x);
    Tensor *y = new_out_last(c, x, outf, rg(x) || rg(w) || rg(b)); /* (..., out) */
    linear_gemm(c, op, rows, outf, in, x, w, F(y));
    if (b) BE(c, bias_add, op)(F(y), F(y), F(b), rows, outf);
    if (y->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_linear, y);
        e->in[0] = x;
        e->in[1] = w;
        e->in[2] = b;
    }
    return y;
}

static void bw_linear_gelu(Ctx *c, TapeEntry *e) {
    Tensor *x = e->in[0], *w = e->in[1], *b = e->in[2], *pre = e->saved[0];
    int rows = (int)tensor_rows(x), outf = w->shape[0];
    float *dpre = arena_alloc_zero(c->arena, pre->numel * sizeof(float)); /* (rows, out) */
    BE(c, gelu_bwd, e->op)(dpre, G(c, b), DOUT(e), F(pre), F(b), rows, outf);
    linear_bwd_gemms(c, e->op, x, w, dpre);
}

Tensor *op_linear_gelu(Ctx *c, Tensor *x, Tensor *w, Tensor *b) {
    const char *op = "op_linear_gelu";
    check_linear(c, op, x, w, b);
    int in = w->shape[1], outf = w->shape[0], rows = (int)tensor_rows(x);
    Tensor *y = new_out_last(c, x, outf, rg(x) || rg(w) || rg(b)); /* (..., out) */
    if (!y->requires_grad) {
        /* Nothing to save: GEMM into y, then bias + GELU in place. */
        linear_gemm(c, op, rows, outf, in, x, w, F(y));
        BE(c, gelu_fwd, op)(F(y), F(y), F(b), rows, outf);
        return y;
    }
    Tensor *pre = new_out_last(c, x, outf, false); /* (..., out): x w^T, before bias and GELU */
    linear_gemm(c, op, rows, outf, in, x, w, F(pre));
    BE(c, gelu_fwd, op)(F(y), F(pre), F(b), rows, outf);
    TapeEntry *e = ctx_push(c, op, bw_linear_gelu, y);
    e->in[0] = x;
    e->in[1] = w;
    e->in[2] = b;
    e->saved[0] = pre;
    return y;
}

/* ---------------------------------------------------------------- matmul */

/* The GEMM geometry of op_matmul, shared by forward and backward. */
typedef struct {
    int M, N, K, batch;
    int lda, ldb;            /* stored row widths of a and b */
    long long sa, sb, sc;    /* batch strides (0 for a shared 2-D operand) */
} MatmulDims;

static MatmulDims matmul_dims(const Tensor *a, const Tensor *b, bool ta, bool tb) {
    MatmulDims d;
    bool a3 = a->ndim == 3, b3 = b->ndim == 3;
    int ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
    int br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
    d.M = ta ? ac : ar;
    d.K = ta ? ar : ac;
    d.N = tb ? br : bc;
    d.lda = ac;
    d.ldb = bc;
    d.batch = a3 ? a->shape[0] : b3 ? b->shape[0] : 1;
    d.sa = a3 ? (long long)ar * ac : 0;
    d.sb = b3 ? (long long)br * bc : 0;
    d.sc = (long long)d.M * d.N;
    if (a3 && !b3 && !ta) {
        /* b shared and a's batches contiguous rows: fold the batch into M (one GEMM). */
        d.M *= d.batch;
        d.batch = 1;
        d.sa = d.sc = 0;
    }
    return d;
}

static void bw_matmul(Ctx *c, TapeEntry *e) {
    Tensor *a = e->in[0], *b = e->in[1];
    bool ta = e->i[0], tb = e->i[1];
    MatmulDims d = matmul_dims(a, b, ta, tb);
    const float *dc = DOUT(e);
    if (rg(a)) {
        if (!ta) gemm_acc(c, e->op, 0, !tb, d.M, d.K, d.N, dc, d.N, d.sc, F(b), d.ldb, d.sb,
                          G(c, a), d.K, d.sa, d.batch);
        else gemm_acc(c, e->op, tb, 1, d.K, d.M, d.N, F(b), d.ldb, d.sb, dc, d.N, d.sc,
                      G(c, a), d.M, d.sa, d.batch);
    }
    if (rg(b)) {
        if (!tb) gemm_acc(c, e->op, !ta, 0, d.K, d.N, d.M, F(a), d.lda, d.sa, dc, d.N, d.sc,
                          G(c, b), d.N, d.sb, d.batch);
        else gemm_acc(c, e->op, 1, ta, d.N, d.K, d.M, dc, d.N, d.sc, F(a), d.lda, d.sa,
                      G(c, b), d.K, d.sb, d.batch);
    }
}

Tensor *op_matmul(Ctx *c, Tensor *a, Tensor *b, bool ta, bool tb) {
    const char *op = "op_matmul";
    CHECK_F32(c, op, a);
    CHECK_F32(c, op, b);
    OP_CHECK((a->ndim == 2 || a->ndim == 3) && (b->ndim == 2 || b->ndim == 3), op,
             "operands must be 2-D or 3-D, found a %s b %s", S(a), S(b));
    OP_CHECK(!(a->ndim == 3 && b->ndim == 3) || a->shape[0] == b->shape[0], op,
             "batch sizes differ, found a %s b %s", S(a), S(b));
    int ak = ta ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    int bk = tb ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    OP_CHECK(ak == bk, op, "inner dims differ (ta=%d tb=%d), found a %s b %s", ta, tb, S(a), S(b));
    MatmulDims d = matmul_dims(a, b, ta, tb);
    int M = ta ? a->shape[a->ndim - 1] : a->shape[a->ndim - 2];
    int shape[3], ndim = 0;
    if (a->ndim == 3 || b->ndim == 3) shape[ndim++] = a->ndim == 3 ? a->shape[0] : b->shape[0];
    shape[ndim++] = M;
    shape[ndim++] = d.N;
    Tensor *out = new_out(c, ndim, shape, rg(a) || rg(b)); /* (Bt?, M, N) */
    GEMM(c, op)(ta, tb, d.M, d.N, d.K, 1.0f, F(a), d.lda, d.sa, F(b), d.ldb, d.sb, 0.0f,
                    F(out), d.N, d.sc, d.batch);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_matmul, out);
        e->in[0] = a;
        e->in[1] = b;
        e->i[0] = ta;
        e->i[1] = tb;
    }
    return out;
}

/* ---------------------------------------------------------------- elementwise */

static void bw_add(Ctx *c, TapeEntry *e) {
    for (int k = 0; k < 2; k++)
        if (rg(e->in[k])) BE(c, axpy, e->op)(G(c, e->in[k]), 1.0f, DOUT(e), e->out->numel);
}

Tensor *op_add(Ctx *c, Tensor *a, Tensor *b) {
    const char *op = "op_add";
    CHECK_F32(c, op, a);
    CHECK_F32(c, op, b);
    OP_CHECK(tensor_same_shape(a, b), op, "shapes must match, found a %s b %s", S(a), S(b));
    Tensor *out = new_like(c, a, rg(a) || rg(b));
    BE(c, add, op)(F(out), F(a), F(b), a->numel);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_add, out);
        e->in[0] = a;
        e->in[1] = b;
    }
    return out;
}

static void bw_scale(Ctx *c, TapeEntry *e) {
    BE(c, axpy, e->op)(G(c, e->in[0]), e->f[0], DOUT(e), e->out->numel);
}

Tensor *op_scale(Ctx *c, Tensor *a, float s) {
    const char *op = "op_scale";
    CHECK_F32(c, op, a);
    Tensor *out = new_like(c, a, rg(a));
    BE(c, scale, op)(F(out), F(a), s, a->numel);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_scale, out);
        e->in[0] = a;
        e->f[0] = s;
    }
    return out;
}

static void check_row_bias(Ctx *c, const char *op, Tensor *x, Tensor *bias) {
    CHECK_F32(c, op, x);
    CHECK_F32(c, op, bias);
    OP_CHECK(bias->ndim == 1 && bias->shape[0] == tensor_cols(x), op,
             "expected x (..., N) and bias (N), found x %s bias %s", S(x), S(bias));
}

static void bw_bias_add(Ctx *c, TapeEntry *e) {
    Tensor *x = e->in[0], *bias = e->in[1];
    if (rg(x)) BE(c, axpy, e->op)(G(c, x), 1.0f, DOUT(e), x->numel);
    if (rg(bias))
        BE(c, bias_bwd, e->op)(G(c, bias), DOUT(e), (int)tensor_rows(x), tensor_cols(x));
}

Tensor *op_bias_add(Ctx *c, Tensor *x, Tensor *bias) {
    const char *op = "op_bias_add";
    check_row_bias(c, op, x, bias);
    Tensor *out = new_like(c, x, rg(x) || rg(bias));
    BE(c, bias_add, op)(F(out), F(x), F(bias), (int)tensor_rows(x), tensor_cols(x));
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_bias_add, out);
        e->in[0] = x;
        e->in[1] = bias;
    }
    return out;
}

/* GELU with optional bias: in[0] = x, in[1] = bias or NULL. */
static void bw_gelu(Ctx *c, TapeEntry *e) {
    Tensor *x = e->in[0], *bias = e->in[1];
    BE(c, gelu_bwd, e->op)(G_or_scratch(c, x), G(c, bias), DOUT(e), F(x), F(bias),
                           (int)tensor_rows(x), tensor_cols(x));
}

static Tensor *gelu_common(Ctx *c, const char *op, Tensor *x, Tensor *bias) {
    Tensor *out = new_like(c, x, rg(x) || rg(bias));
    BE(c, gelu_fwd, op)(F(out), F(x), F(bias), (int)tensor_rows(x), tensor_cols(x));
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_gelu, out);
        e->in[0] = x;
        e->in[1] = bias;
    }
    return out;
}

Tensor *op_gelu(Ctx *c, Tensor *x) {
    CHECK_F32(c, "op_gelu", x);
    return gelu_common(c, "op_gelu", x, NULL);
}

Tensor *op_bias_gelu(Ctx *c, Tensor *x, Tensor *bias) {
    check_row_bias(c, "op_bias_gelu", x, bias);
    return gelu_common(c, "op_bias_gelu", x, bias);
}

static void bw_tanh(Ctx *c, TapeEntry *e) {
    BE(c, tanh_bwd, e->op)(G(c, e->in[0]), DOUT(e), F(e->out), e->out->numel);
}

Tensor *op_tanh(Ctx *c, Tensor *x) {
    const char *op = "op_tanh";
    CHECK_F32(c, op, x);
    Tensor *out = new_like(c, x, rg(x));
    BE(c, tanh_fwd, op)(F(out), F(x), x->numel);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_tanh, out);
        e->in[0] = x;
    }
    return out;
}

static void bw_dropout(Ctx *c, TapeEntry *e) {
    BE(c, dropout_bwd, e->op)(G(c, e->in[0]), DOUT(e), e->f[0], (uint64_t)e->i[0],
                              (uint64_t)e->i[1], e->out->numel);
}

Tensor *op_dropout(Ctx *c, Tensor *x, float p) {
    const char *op = "op_dropout";
    CHECK_F32(c, op, x);
    OP_CHECK(p >= 0.0f && p < 1.0f, op, "p must be in [0, 1), found %g", (double)p);
    if (!c->training || p == 0.0f) return x;
    uint64_t offset = c->rng_counter;
    if (c->rows_total > 0 && c->rows_total != c->rows_here) {
        /* a window of the batch: this share's counters within the whole batch's range */
        OP_CHECK(c->rows_here > 0 && x->numel % (size_t)c->rows_here == 0, op,
                 "%zu elements do not split into the %lld rows set by ctx_set_rows", x->numel,
                 (long long)c->rows_here);
        uint64_t per_row = x->numel / (uint64_t)c->rows_here;
        offset += per_row * (uint64_t)c->rows_before;
        c->rng_counter += per_row * (uint64_t)c->rows_total;
    } else {
        c->rng_counter += x->numel;
    }
    Tensor *out = new_like(c, x, rg(x));
    BE(c, dropout_fwd, op)(F(out), F(x), p, c->seed, offset, x->numel);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_dropout, out);
        e->in[0] = x;
        e->f[0] = p;
        e->i[0] = (long long)c->seed;
        e->i[1] = (long long)offset;
    }
    return out;
}

/* ---------------------------------------------------------------- layer norm */

/* in[0] = LayerNorm input (x, or x + residual for the fused op), in[1] = gamma, in[2] = beta;
 * in[3] = residual for the fused op. saved[0..1] = mean, rstd (rows); saved[2] = the sum. */
static void bw_layernorm(Ctx *c, TapeEntry *e) {
    Tensor *x = e->in[0], *gamma = e->in[1], *beta = e->in[2], *res = e->in[3];
    Tensor *mean = e->saved[0], *rstd = e->saved[1], *sum = e->saved[2];
    int rows = (int)tensor_rows(x), cols = tensor_cols(x);
    float *dgamma = G_or_scratch(c, gamma), *dbeta = G_or_scratch(c, beta);
    if (!sum) {
        BE(c, layernorm_bwd, e->op)(G_or_scratch(c, x), dgamma, dbeta, DOUT(e), F(x), F(mean),
                                    F(rstd), F(gamma), rows, cols);
        return;
    }
    /* Fused residual: d(sum) goes to both x and residual. */
    float *dsum;
    if (rg(x) != rg(res)) dsum = rg(x) ? G(c, x) : G(c, res); /* one receiver: accumulate directly */
    else dsum = arena_alloc_zero(c->arena, sum->numel * sizeof(float));
    BE(c, layernorm_bwd, e->op)(dsum, dgamma, dbeta, DOUT(e), F(sum), F(mean), F(rstd), F(gamma),
                                rows, cols);
    if (rg(x) && rg(res)) {
        BE(c, axpy, e->op)(G(c, x), 1.0f, dsum, sum->numel);
        BE(c, axpy, e->op)(G(c, res), 1.0f, dsum, sum->numel);
    }
}

static void check_layernorm(Ctx *c, const char *op, Tensor *x, Tensor *gamma, Tensor *beta) {
    CHECK_F32(c, op, x);
    CHECK_F32(c, op, gamma);
    CHECK_F32(c, op, beta);
    int N = tensor_cols(x);
    OP_CHECK(gamma->ndim == 1 && beta->ndim == 1 && gamma->shape[0] == N && beta->shape[0] == N, op,
             "expected x (..., N), gamma (N), beta (N), found x %s gamma %s beta %s", S(x),
             S(gamma), S(beta));
}

/* LayerNorm of `src` (which is x itself, or the fused sum) into a new output. */
static Tensor *layernorm_common(Ctx *c, const char *op, Tensor *src, Tensor *gamma, Tensor *beta,
                                float eps, bool any_rg, Tensor **mean, Tensor **rstd) {
    int rows = (int)tensor_rows(src), cols = tensor_cols(src);
    Tensor *out = new_like(c, src, any_rg);
    *mean = ctx_tensor(c, DT_F32, 1, &rows); /* (rows) */
    *rstd = ctx_tensor(c, DT_F32, 1, &rows); /* (rows) */
    BE(c, layernorm_fwd, op)(F(out), F(*mean), F(*rstd), F(src), F(gamma), F(beta), rows, cols, eps);
    return out;
}

Tensor *op_layernorm(Ctx *c, Tensor *x, Tensor *gamma, Tensor *beta, float eps) {
    const char *op = "op_layernorm";
    check_layernorm(c, op, x, gamma, beta);
    Tensor *mean, *rstd;
    Tensor *out = layernorm_common(c, op, x, gamma, beta, eps, rg(x) || rg(gamma) || rg(beta),
                                   &mean, &rstd);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_layernorm, out);
        e->in[0] = x;
        e->in[1] = gamma;
        e->in[2] = beta;
        e->saved[0] = mean;
        e->saved[1] = rstd;
        e->f[0] = eps;
    }
    return out;
}

Tensor *op_add_layernorm(Ctx *c, Tensor *x, Tensor *residual, Tensor *gamma, Tensor *beta,
                         float eps) {
    const char *op = "op_add_layernorm";
    check_layernorm(c, op, x, gamma, beta);
    CHECK_F32(c, op, residual);
    OP_CHECK(tensor_same_shape(x, residual), op, "x and residual must match, found x %s residual %s",
             S(x), S(residual));
    bool any = rg(x) || rg(residual) || rg(gamma) || rg(beta);
    Tensor *sum = ctx_tensor(c, DT_F32, x->ndim, x->shape); /* x + residual */
    BE(c, add, op)(F(sum), F(x), F(residual), x->numel);
    Tensor *mean, *rstd;
    Tensor *out = layernorm_common(c, op, sum, gamma, beta, eps, any, &mean, &rstd);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_layernorm, out);
        e->in[0] = x;
        e->in[1] = gamma;
        e->in[2] = beta;
        e->in[3] = residual;
        e->saved[0] = mean;
        e->saved[1] = rstd;
        e->saved[2] = sum;
        e->f[0] = eps;
    }
    return out;
}

/* ---------------------------------------------------------------- softmax and attention */

static void bw_softmax(Ctx *c, TapeEntry *e) {
    Tensor *x = e->in[0];
    BE(c, softmax_bwd, e->op)(G(c, x), DOUT(e), F(e->out), tensor_rows(x), tensor_cols(x));
}

Tensor *op_softmax(Ctx *c, Tensor *x) {
    const char *op = "op_softmax";
    CHECK_F32(c, op, x);
    Tensor *out = new_like(c, x, rg(x));
    BE(c, softmax_fwd, op)(F(out), F(x), tensor_rows(x), tensor_cols(x));
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_softmax, out);
        e->in[0] = x;
    }
    return out;
}

static void check_scale_mask(Ctx *c, const char *op, Tensor *x, Tensor *mask_add) {
    CHECK_F32(c, op, x);
    OP_CHECK(x->ndim == 4, op, "x must be (B, H, R, C), found x %s", S(x));
    if (mask_add) {
        CHECK_F32(c, op, mask_add);
        OP_CHECK(mask_add->ndim == 2 && mask_add->shape[0] == x->shape[0] &&
                     mask_add->shape[1] == x->shape[3],
                 op, "mask_add must be (B, C), found x %s mask_add %s", S(x), S(mask_add));
        OP_CHECK(!mask_add->requires_grad, op,
                 "mask_add gets no gradient and must not require one, found mask_add %s",
                 S(mask_add));
    }
}

static void bw_scale_mask(Ctx *c, TapeEntry *e) {
    BE(c, axpy, e->op)(G(c, e->in[0]), e->f[0], DOUT(e), e->out->numel);
}

Tensor *op_scale_mask(Ctx *c, Tensor *x, Tensor *mask_add, float scale) {
    const char *op = "op_scale_mask";
    check_scale_mask(c, op, x, mask_add);
    Tensor *out = new_like(c, x, rg(x)); /* (B, H, R, C) */
    BE(c, scale_mask, op)(F(out), F(x), F(mask_add), scale, x->shape[0], x->shape[1], x->shape[2],
                          x->shape[3]);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_scale_mask, out);
        e->in[0] = x;
        e->in[1] = mask_add;
        e->f[0] = scale;
    }
    return out;
}

/* d(scale*x + m) softmax: dx += scale * softmax_bwd(dprobs). softmax_bwd is linear in dprobs, so
 * the scale is applied to dprobs first (into a temporary) unless it is 1. */
static void bw_scale_mask_softmax(Ctx *c, TapeEntry *e) {
    Tensor *x = e->in[0];
    float scale = e->f[0];
    const float *dp = DOUT(e);
    if (scale != 1.0f) {
        float *tmp = ctx_alloc(c, x->numel * sizeof(float)); /* (B, H, R, C) */
        BE(c, scale, e->op)(tmp, dp, scale, x->numel);
        dp = tmp;
    }
    BE(c, softmax_bwd, e->op)(G(c, x), dp, F(e->out), tensor_rows(x), tensor_cols(x));
}

Tensor *op_scale_mask_softmax(Ctx *c, Tensor *x, Tensor *mask_add, float scale) {
    const char *op = "op_scale_mask_softmax";
    check_scale_mask(c, op, x, mask_add);
    Tensor *out = new_like(c, x, rg(x)); /* (B, H, R, C) probabilities */
    BE(c, scale_mask_softmax_fwd, op)(F(out), F(x), F(mask_add), scale, x->shape[0], x->shape[1],
                                      x->shape[2], x->shape[3]);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_scale_mask_softmax, out);
        e->in[0] = x;
        e->in[1] = mask_add;
        e->f[0] = scale;
    }
    return out;
}

/* Scores (B, heads, Sq, Sk) = q_h k_h^T per head; heads read in place from (B, S, heads*d). */
static void bw_attention_qk(Ctx *c, TapeEntry *e) {
    Tensor *q = e->in[0], *k = e->in[1];
    int heads = (int)e->i[0], B = q->shape[0], Sq = q->shape[1], Sk = k->shape[1];
    int hd = q->shape[2], d = hd / heads;
    const float *ds = DOUT(e);
    float *dq = G(c, q), *dk = G(c, k);
    for (int b = 0; b < B; b++) {
        const float *dsb = ds + (size_t)b * heads * Sq * Sk;
        const float *qb = F(q) + (size_t)b * Sq * hd, *kb = F(k) + (size_t)b * Sk * hd;
        /* dq_h += dS_h k_h;  dk_h += dS_h^T q_h */
        if (dq) gemm_acc(c, e->op, 0, 0, Sq, d, Sk, dsb, Sk, (long long)Sq * Sk, kb, hd, d,
                         dq + (size_t)b * Sq * hd, hd, d, heads);
        if (dk) gemm_acc(c, e->op, 1, 0, Sk, d, Sq, dsb, Sk, (long long)Sq * Sk, qb, hd, d,
                         dk + (size_t)b * Sk * hd, hd, d, heads);
    }
}

Tensor *op_attention_qk(Ctx *c, Tensor *q, Tensor *k, int heads) {
    const char *op = "op_attention_qk";
    CHECK_F32(c, op, q);
    CHECK_F32(c, op, k);
    OP_CHECK(q->ndim == 3 && k->ndim == 3 && q->shape[0] == k->shape[0] &&
                 q->shape[2] == k->shape[2] && heads > 0 && q->shape[2] % heads == 0,
             op, "expected q, k (B, S, heads*d) with heads=%d dividing the last dim, found q %s k %s",
             heads, S(q), S(k));
    int B = q->shape[0], Sq = q->shape[1], Sk = k->shape[1], hd = q->shape[2], d = hd / heads;
    int shape[4] = {B, heads, Sq, Sk};
    Tensor *out = new_out(c, 4, shape, rg(q) || rg(k)); /* (B, heads, Sq, Sk) */
    for (int b = 0; b < B; b++)
        GEMM(c, op)(0, 1, Sq, Sk, d, 1.0f, F(q) + (size_t)b * Sq * hd, hd, d,
                        F(k) + (size_t)b * Sk * hd, hd, d, 0.0f,
                        F(out) + (size_t)b * heads * Sq * Sk, Sk, (long long)Sq * Sk, heads);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_attention_qk, out);
        e->in[0] = q;
        e->in[1] = k;
        e->i[0] = heads;
    }
    return out;
}

/* Context (B, Sq, heads*d) = P_h v_h per head, written in place into the merged layout. */
static void bw_attention_pv(Ctx *c, TapeEntry *e) {
    Tensor *p = e->in[0], *v = e->in[1];
    int heads = (int)e->i[0], B = p->shape[0], Sq = p->shape[2], Sk = p->shape[3];
    int hd = v->shape[2], d = hd / heads;
    const float *dctx = DOUT(e);
    float *dp = G(c, p), *dv = G(c, v);
    for (int b = 0; b < B; b++) {
        const float *dcb = dctx + (size_t)b * Sq * hd, *vb = F(v) + (size_t)b * Sk * hd;
        const float *pb = F(p) + (size_t)b * heads * Sq * Sk;
        /* dP_h += dctx_h v_h^T;  dv_h += P_h^T dctx_h */
        if (dp) gemm_acc(c, e->op, 0, 1, Sq, Sk, d, dcb, hd, d, vb, hd, d,
                         dp + (size_t)b * heads * Sq * Sk, Sk, (long long)Sq * Sk, heads);
        if (dv) gemm_acc(c, e->op, 1, 0, Sk, d, Sq, pb, Sk, (long long)Sq * Sk, dcb, hd, d,
                         dv + (size_t)b * Sk * hd, hd, d, heads);
    }
}

Tensor *op_attention_pv(Ctx *c, Tensor *probs, Tensor *v, int heads) {
    const char *op = "op_attention_pv";
    CHECK_F32(c, op, probs);
    CHECK_F32(c, op, v);
    OP_CHECK(probs->ndim == 4 && v->ndim == 3 && probs->shape[0] == v->shape[0] &&
                 probs->shape[1] == heads && probs->shape[3] == v->shape[1] && heads > 0 &&
                 v->shape[2] % heads == 0,
             op, "expected probs (B, heads=%d, S, S) and v (B, S, heads*d), found probs %s v %s",
             heads, S(probs), S(v));
    int B = probs->shape[0], Sq = probs->shape[2], Sk = probs->shape[3], hd = v->shape[2];
    int d = hd / heads;
    int shape[3] = {B, Sq, hd};
    Tensor *out = new_out(c, 3, shape, rg(probs) || rg(v)); /* (B, Sq, heads*d) */
    for (int b = 0; b < B; b++)
        GEMM(c, op)(0, 0, Sq, d, Sk, 1.0f, F(probs) + (size_t)b * heads * Sq * Sk, Sk,
                        (long long)Sq * Sk, F(v) + (size_t)b * Sk * hd, hd, d, 0.0f,
                        F(out) + (size_t)b * Sq * hd, hd, d, heads);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_attention_pv, out);
        e->in[0] = probs;
        e->in[1] = v;
        e->i[0] = heads;
    }
    return out;
}

/* ---------------------------------------------------------------- pooling and selection */

static void bw_take_token(Ctx *c, TapeEntry *e) {
    Tensor *x = e->in[0];
    BE(c, take_token_bwd, e->op)(G(c, x), DOUT(e), (int)e->i[0], x->shape[0], x->shape[1],
                                 x->shape[2]);
}

Tensor *op_take_token(Ctx *c, Tensor *x, int pos) {
    const char *op = "op_take_token";
    CHECK_F32(c, op, x);
    OP_CHECK(x->ndim == 3 && pos >= 0 && pos < x->shape[1], op,
             "expected x (B, S, H) and 0 <= pos < S, found x %s pos %d", S(x), pos);
    int shape[2] = {x->shape[0], x->shape[2]};
    Tensor *out = new_out(c, 2, shape, rg(x)); /* (B, H) */
    BE(c, take_token_fwd, op)(F(out), F(x), pos, x->shape[0], x->shape[1], x->shape[2]);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_take_token, out);
        e->in[0] = x;
        e->i[0] = pos;
    }
    return out;
}

static void bw_mean_pool(Ctx *c, TapeEntry *e) {
    Tensor *x = e->in[0], *len = e->in[1];
    BE(c, mean_pool_bwd, e->op)(G(c, x), DOUT(e), I(len), x->shape[0], x->shape[1], x->shape[2]);
}

Tensor *op_mean_pool(Ctx *c, Tensor *x, Tensor *lengths) {
    const char *op = "op_mean_pool";
    CHECK_F32(c, op, x);
    CHECK_I32(c, op, lengths);
    OP_CHECK(x->ndim == 3 && lengths->ndim == 1 && lengths->shape[0] == x->shape[0], op,
             "expected x (B, S, H) and lengths (B), found x %s lengths %s", S(x), S(lengths));
    int32_t *own;
    const int32_t *hl = tensor_i32_host(lengths, &own);
    for (int b = 0; b < x->shape[0]; b++)
        OP_CHECK(hl[b] >= 1 && hl[b] <= x->shape[1], op,
                 "lengths[%d] = %d is outside [1, S=%d] (x %s)", b, hl[b], x->shape[1], S(x));
    free(own);
    int shape[2] = {x->shape[0], x->shape[2]};
    Tensor *out = new_out(c, 2, shape, rg(x)); /* (B, H) */
    BE(c, mean_pool_fwd, op)(F(out), F(x), I(lengths), x->shape[0], x->shape[1], x->shape[2]);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_mean_pool, out);
        e->in[0] = x;
        e->in[1] = lengths;
    }
    return out;
}

/* ---------------------------------------------------------------- losses */

/* in[0] = logits, in[1] = labels (hard) or NULL; saved[0] = probs, saved[1] = target (soft). */
static void bw_xent(Ctx *c, TapeEntry *e) {
    Tensor *z = e->in[0], *labels = e->in[1], *target = e->saved[1];
    BE(c, xent_bwd, e->op)(G(c, z), DOUT(e), F(e->saved[0]), labels ? I(labels) : NULL, F(target),
                           e->f[0], (int)tensor_rows(z), tensor_cols(z));
}

Tensor *op_cross_entropy(Ctx *c, Tensor *logits, Tensor *labels) {
    const char *op = "op_cross_entropy";
    CHECK_F32(c, op, logits);
    CHECK_I32(c, op, labels);
    OP_CHECK(logits->ndim == 2 && labels->ndim == 1 && labels->shape[0] == logits->shape[0], op,
             "expected logits (N, C) and labels (N), found logits %s labels %s", S(logits),
             S(labels));
    int N = logits->shape[0], C = logits->shape[1];
    int32_t *own;
    const int32_t *hl = tensor_i32_host(labels, &own);
    for (int i = 0; i < N; i++)
        OP_CHECK(hl[i] >= 0 && hl[i] < C, op, "labels[%d] = %d is outside [0, %d) (logits %s)", i,
                 hl[i], C, S(logits));
    free(own);
    Tensor *out = new_scalar(c, rg(logits));
    Tensor *probs = ctx_tensor(c, DT_F32, 2, logits->shape); /* (N, C) */
    BE(c, xent_fwd, op)(F(out), F(probs), F(logits), I(labels), NULL, 1.0f, 0, N, C);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_xent, out);
        e->in[0] = logits;
        e->in[1] = labels;
        e->saved[0] = probs;
        e->f[0] = 1.0f;
    }
    return out;
}

/* Soft-target cross-entropy (with_entropy = 0) or KL (with_entropy = 1) of softmax(s/T) against
 * softmax(t/T); the teacher side gets no gradient. */
static Tensor *soft_xent(Ctx *c, const char *op, Tensor *s, Tensor *t, float T, int with_entropy) {
    CHECK_F32(c, op, s);
    CHECK_F32(c, op, t);
    OP_CHECK(tensor_same_shape(s, t), op, "student and teacher logits must match, found %s and %s",
             S(s), S(t));
    OP_CHECK(T > 0.0f, op, "temperature must be > 0, found %g", (double)T);
    int rows = (int)tensor_rows(s), cols = tensor_cols(s);
    float inv_t = 1.0f / T;
    Tensor *target = ctx_tensor(c, DT_F32, t->ndim, t->shape); /* softmax(t/T) */
    BE(c, scale_mask_softmax_fwd, op)(F(target), F(t), NULL, inv_t, 1, 1, rows, cols);
    Tensor *probs = ctx_tensor(c, DT_F32, s->ndim, s->shape); /* softmax(s/T) */
    Tensor *out = new_scalar(c, rg(s));
    BE(c, xent_fwd, op)(F(out), F(probs), F(s), NULL, F(target), inv_t, with_entropy, rows, cols);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_xent, out);
        e->in[0] = s;
        e->saved[0] = probs;
        e->saved[1] = target;
        e->f[0] = inv_t;
    }
    return out;
}

Tensor *op_soft_cross_entropy(Ctx *c, Tensor *student_logits, Tensor *teacher_logits, float T) {
    return soft_xent(c, "op_soft_cross_entropy", student_logits, teacher_logits, T, 0);
}

Tensor *op_kl_logits(Ctx *c, Tensor *student_logits, Tensor *teacher_logits, float T) {
    return soft_xent(c, "op_kl_logits", student_logits, teacher_logits, T, 1);
}

static void bw_mse(Ctx *c, TapeEntry *e) {
    Tensor *a = e->in[0], *b = e->in[1];
    BE(c, mse_bwd, e->op)(G(c, a), G(c, b), DOUT(e), F(a), F(b), e->f[0], a->numel);
}

static Tensor *mse_common(Ctx *c, const char *op, Tensor *a, Tensor *b, float ignore_below) {
    CHECK_F32(c, op, a);
    CHECK_F32(c, op, b);
    OP_CHECK(tensor_same_shape(a, b), op, "shapes must match, found a %s b %s", S(a), S(b));
    Tensor *out = new_scalar(c, rg(a) || rg(b));
    BE(c, mse_fwd, op)(F(out), F(a), F(b), ignore_below, a->numel);
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_mse, out);
        e->in[0] = a;
        e->in[1] = b;
        e->f[0] = ignore_below;
    }
    return out;
}

Tensor *op_mse(Ctx *c, Tensor *a, Tensor *b) { return mse_common(c, "op_mse", a, b, -INFINITY); }

Tensor *op_mse_ignore(Ctx *c, Tensor *a, Tensor *b, float ignore_below) {
    return mse_common(c, "op_mse_ignore", a, b, ignore_below);
}

static void bw_cosine(Ctx *c, TapeEntry *e) {
    Tensor *a = e->in[0], *b = e->in[1];
    BE(c, cosine_bwd, e->op)(G_or_scratch(c, a), G_or_scratch(c, b), DOUT(e), F(a), F(b),
                             (int)tensor_rows(a), tensor_cols(a));
}

Tensor *op_cosine_loss(Ctx *c, Tensor *a, Tensor *b) {
    const char *op = "op_cosine_loss";
    CHECK_F32(c, op, a);
    CHECK_F32(c, op, b);
    OP_CHECK(tensor_same_shape(a, b), op, "shapes must match, found a %s b %s", S(a), S(b));
    Tensor *out = new_scalar(c, rg(a) || rg(b));
    BE(c, cosine_fwd, op)(F(out), F(a), F(b), (int)tensor_rows(a), tensor_cols(a));
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_cosine, out);
        e->in[0] = a;
        e->in[1] = b;
    }
    return out;
}

static void bw_kl_probs(Ctx *c, TapeEntry *e) {
    Tensor *s = e->in[0], *t = e->in[1];
    BE(c, kl_probs_bwd, e->op)(G(c, s), DOUT(e), F(s), F(t), (int)tensor_rows(s), tensor_cols(s));
}

Tensor *op_kl_probs(Ctx *c, Tensor *s, Tensor *t) {
    const char *op = "op_kl_probs";
    CHECK_F32(c, op, s);
    CHECK_F32(c, op, t);
    OP_CHECK(tensor_same_shape(s, t), op, "shapes must match, found s %s t %s", S(s), S(t));
    Tensor *out = new_scalar(c, rg(s));
    BE(c, kl_probs_fwd, op)(F(out), F(s), F(t), (int)tensor_rows(s), tensor_cols(s));
    if (out->requires_grad) {
        TapeEntry *e = ctx_push(c, op, bw_kl_probs, out);
        e->in[0] = s;
        e->in[1] = t;
    }
    return out;
}

/* ---------------------------------------------------------------- helpers */

float op_item(Tensor *scalar) {
    OP_CHECK(scalar && scalar->dtype == DT_F32 && scalar->numel == 1, "op_item",
             "expected an f32 scalar, found %s", S(scalar));
    float v;
    tensor_to_host(scalar, &v);
    return v;
}
