/* ctx.c — context, tensor allocation in the arenas, and the tape walk (see ctx.h). */
#include "ctx.h"

#include <stdlib.h>
#include <string.h>

Ctx *ctx_new(Device device, uint64_t seed) {
    const Backend *be = backend_for(device.type);
    DCHECK(be != NULL);
    Ctx *c = xcalloc(1, sizeof *c);
    c->device = device;
    c->be = be;
    c->arena = arena_new(be, (size_t)64 << 20);
    c->meta = arena_new(backend_cpu(), (size_t)1 << 20);
    c->record = true;
    c->training = false;
    c->seed = seed;
    return c;
}

void ctx_free(Ctx *c) {
    if (!c) return;
    arena_free(c->arena);
    arena_free(c->meta);
    if (c->scratch) arena_free(c->scratch);
    free(c->tape.entries);
    free(c);
}

void ctx_reset(Ctx *c) {
    c->tape.n = 0;
    DCHECK(!c->in_scope);
    arena_reset(c->arena);
    arena_reset(c->meta);
}

void *ctx_alloc(Ctx *c, size_t bytes) { return arena_alloc(c->in_scope ? c->scratch : c->arena, bytes); }

void ctx_scope_begin(Ctx *c) {
    DCHECK(!c->in_scope && !c->record);
    if (!c->scratch) c->scratch = arena_new(c->be, (size_t)16 << 20);
    c->in_scope = true;
}

Tensor *ctx_keep(Ctx *c, Tensor *t) {
    if (!c->in_scope || !t) return t;
    c->in_scope = false; /* the copy goes to the step's arena */
    Tensor *k = ctx_tensor(c, t->dtype, t->ndim, t->shape);
    c->in_scope = true;
    c->be->copy(k->data, t->data, tensor_bytes(t), COPY_D2D);
    return k;
}

void ctx_scope_end(Ctx *c) {
    DCHECK(c->in_scope);
    c->in_scope = false;
    arena_reset(c->scratch);
}

static Tensor *new_struct(Ctx *c) {
    Tensor *t = arena_alloc(c->meta, sizeof *t);
    memset(t, 0, sizeof *t);
    return t;
}

Tensor *ctx_tensor(Ctx *c, DType dt, int ndim, const int *shape) {
    Tensor *t = new_struct(c);
    t->dtype = dt;
    t->device = c->device;
    tensor_set_shape(t, ndim, shape);
    t->data = ctx_alloc(c, tensor_bytes(t));
    return t;
}

/* An i32 tensor on a device gets a host copy of its values in the meta arena (Tensor.host_i32). */
static void keep_host_i32(Ctx *c, Tensor *t) {
    if (t->dtype == DT_I32 && t->device.type != DEV_CPU) t->host_i32 = arena_alloc(c->meta, tensor_bytes(t));
}

Tensor *ctx_zeros(Ctx *c, DType dt, int ndim, const int *shape) {
    Tensor *t = ctx_tensor(c, dt, ndim, shape);
    c->be->zero(t->data, tensor_bytes(t));
    keep_host_i32(c, t);
    if (t->host_i32) memset(t->host_i32, 0, tensor_bytes(t));
    return t;
}

Tensor *ctx_from_host(Ctx *c, DType dt, int ndim, const int *shape, const void *host) {
    Tensor *t = ctx_tensor(c, dt, ndim, shape);
    keep_host_i32(c, t);
    tensor_from_host(t, host);
    return t;
}

Tensor *ctx_view(Ctx *c, Tensor *base, int ndim, const int *shape) {
    Tensor *t = new_struct(c);
    t->dtype = base->dtype;
    t->device = base->device;
    tensor_set_shape(t, ndim, shape);
    DCHECK(t->numel == base->numel);
    t->data = base->data;
    t->host_i32 = base->host_i32;
    t->requires_grad = base->requires_grad;
    /* A view shares the gradient buffer of its base so accumulation reaches the base. */
    if (base->requires_grad && !base->grad && base->name == NULL) {
        base->grad = new_struct(c);
        base->grad->dtype = DT_F32;
        base->grad->device = base->device;
        tensor_set_shape(base->grad, base->ndim, base->shape);
        base->grad->data = arena_alloc_zero(c->arena, base->numel * sizeof(float));
    }
    if (base->grad) {
        t->grad = new_struct(c);
        *t->grad = *base->grad;
        tensor_set_shape(t->grad, ndim, shape);
    }
    return t;
}

void tensor_to_host(const Tensor *t, void *host) {
    const Backend *be = backend_for(t->device.type);
    backend_count_readback();
    be->copy(host, t->data, tensor_bytes(t), t->device.type == DEV_CPU ? COPY_D2D : COPY_D2H);
}

void tensor_from_host(Tensor *t, const void *host) {
    const Backend *be = backend_for(t->device.type);
    be->copy(t->data, host, tensor_bytes(t), t->device.type == DEV_CPU ? COPY_D2D : COPY_H2D);
    if (t->host_i32) memcpy(t->host_i32, host, tensor_bytes(t));
}

const int32_t *tensor_i32_host(const Tensor *t, int32_t **own) {
    DCHECK(t->dtype == DT_I32);
    *own = NULL;
    if (t->device.type == DEV_CPU) return (const int32_t *)t->data;
    if (t->host_i32) return t->host_i32;
    *own = xmalloc(tensor_bytes(t) ? tensor_bytes(t) : 1);
    tensor_to_host(t, *own);
    return *own;
}

void *ctx_device_alloc(Ctx *c, size_t bytes) {
    void *p = c->be->alloc(bytes ? bytes : 1);
    c->be->zero(p, bytes ? bytes : 1);
    return p;
}

void ctx_device_free(Ctx *c, void *p) {
    if (p) c->be->free(p);
}

void ctx_store_scalar(Ctx *c, float *dst, const Tensor *scalar) {
    DCHECK(scalar->dtype == DT_F32 && scalar->numel == 1 && device_eq(scalar->device, c->device));
    c->be->copy(dst, scalar->data, sizeof(float), COPY_D2D);
}

void ctx_read(Ctx *c, void *host, const void *dev, size_t bytes) {
    backend_count_readback();
    c->be->copy(host, dev, bytes, c->device.type == DEV_CPU ? COPY_D2D : COPY_D2H);
}

Tensor *ctx_grad(Ctx *c, Tensor *t) {
    if (t->grad) return t->grad;
    Tensor *g = new_struct(c);
    g->dtype = DT_F32;
    g->device = t->device;
    tensor_set_shape(g, t->ndim, t->shape);
    g->data = arena_alloc_zero(c->arena, t->numel * sizeof(float));
    t->grad = g;
    return g;
}

TapeEntry *ctx_push(Ctx *c, const char *op, BackwardFn fn, Tensor *out) {
    DCHECK(c->record);
    if (c->tape.n == c->tape.cap) {
        c->tape.cap = c->tape.cap ? c->tape.cap * 2 : 256;
        c->tape.entries = xrealloc(c->tape.entries, (size_t)c->tape.cap * sizeof(TapeEntry));
    }
    TapeEntry *e = &c->tape.entries[c->tape.n++];
    memset(e, 0, sizeof *e);
    e->op = op;
    e->backward = fn;
    e->out = out;
    return e;
}

void ctx_backward(Ctx *c, Tensor *loss) {
    DCHECK(loss->numel == 1 && loss->dtype == DT_F32);
    DCHECK(loss->requires_grad);
    Tensor *g = ctx_grad(c, loss);
    float one = 1.0f;
    tensor_from_host(g, &one);
    for (int i = c->tape.n - 1; i >= 0; i--) {
        TapeEntry *e = &c->tape.entries[i];
        if (e->out->grad == NULL) continue; /* nothing downstream used this output */
        e->backward(c, e);
    }
}

void ctx_set_rows(Ctx *c, int64_t here, int64_t before, int64_t total) {
    DCHECK(here >= 0 && before >= 0 && before + here <= total);
    c->rows_here = here;
    c->rows_before = before;
    c->rows_total = total;
}

void ctx_sync(Ctx *c) {
    backend_count_readback();
    c->be->sync();
}

void ctx_mark(Ctx *c, int slot) { c->be->mark(slot); }

double ctx_mark_seconds(Ctx *c, int a, int b) { return c->be->mark_seconds(a, b); }
