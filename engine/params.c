/* params.c — the parameter/gradient buffers and their named views (see params.h). */
#include "params.h"

#include <stdlib.h>
#include <string.h>

ParamStore *params_new(Device device) {
    ParamStore *ps = xcalloc(1, sizeof *ps);
    ps->device = device;
    ps->be = backend_for(device.type);
    DCHECK(ps->be != NULL);
    return ps;
}

Tensor *params_add(ParamStore *ps, const char *name, int ndim, const int *shape, bool no_decay) {
    DCHECK(!ps->finalized);
    DCHECK(params_find(ps, name) == NULL);
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 64;
        ps->tensors = xrealloc(ps->tensors, (size_t)ps->cap * sizeof *ps->tensors);
        ps->grads = xrealloc(ps->grads, (size_t)ps->cap * sizeof *ps->grads);
        ps->offsets = xrealloc(ps->offsets, (size_t)ps->cap * sizeof *ps->offsets);
        ps->no_decay = xrealloc(ps->no_decay, (size_t)ps->cap * sizeof *ps->no_decay);
    }
    Tensor *t = xcalloc(1, sizeof *t);
    Tensor *g = xcalloc(1, sizeof *g);
    t->dtype = g->dtype = DT_F32;
    t->device = g->device = ps->device;
    tensor_set_shape(t, ndim, shape);
    tensor_set_shape(g, ndim, shape);
    t->name = xstrdup(name);
    t->requires_grad = true;
    t->grad = g;
    ps->tensors[ps->n] = t;
    ps->grads[ps->n] = g;
    ps->offsets[ps->n] = ps->total;
    ps->no_decay[ps->n] = no_decay;
    /* Keep each tensor 16-element aligned (64 bytes) inside the buffer. */
    ps->total += (t->numel + 15) & ~(size_t)15;
    ps->n++;
    return t;
}

void params_finalize(ParamStore *ps) {
    DCHECK(!ps->finalized);
    size_t bytes = (ps->total ? ps->total : 1) * sizeof(float);
    ps->data = ps->be->alloc(bytes);
    ps->grad = ps->be->alloc(bytes);
    ps->be->zero(ps->data, bytes);
    ps->be->zero(ps->grad, bytes);
    for (int i = 0; i < ps->n; i++) {
        ps->tensors[i]->data = ps->data + ps->offsets[i];
        ps->grads[i]->data = ps->grad + ps->offsets[i];
    }
    ps->finalized = true;
}

int params_index(const ParamStore *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->tensors[i]->name, name) == 0) return i;
    return -1;
}

Tensor *params_find(const ParamStore *ps, const char *name) {
    int i = params_index(ps, name);
    return i < 0 ? NULL : ps->tensors[i];
}

void params_zero_grad(ParamStore *ps) {
    DCHECK(ps->finalized);
    ps->be->zero(ps->grad, (ps->total ? ps->total : 1) * sizeof(float));
}

size_t params_count(const ParamStore *ps, const char *prefix) {
    size_t n = 0, len = strlen(prefix);
    for (int i = 0; i < ps->n; i++)
        if (strncmp(ps->tensors[i]->name, prefix, len) == 0) n += ps->tensors[i]->numel;
    return n;
}

void params_free(ParamStore *ps) {
    if (!ps) return;
    for (int i = 0; i < ps->n; i++) {
        free((char *)ps->tensors[i]->name);
        free(ps->tensors[i]);
        free(ps->grads[i]);
    }
    if (ps->finalized) {
        ps->be->free(ps->data);
        ps->be->free(ps->grad);
        if (ps->bf16) ps->be->free(ps->bf16);
    }
    free(ps->tensors);
    free(ps->grads);
    free(ps->offsets);
    free(ps->no_decay);
    free(ps);
}

float *params_buffer_new(const ParamStore *ps) {
    size_t bytes = (ps->total ? ps->total : 1) * sizeof(float);
    float *b = ps->be->alloc(bytes);
    ps->be->zero(b, bytes);
    return b;
}

void params_buffer_free(const ParamStore *ps, float *buf) {
    if (buf) ps->be->free(buf);
}

void params_buffer_zero(const ParamStore *ps, float *buf, size_t n) { ps->be->zero(buf, n * sizeof(float)); }

void params_buffer_to_host(const ParamStore *ps, const float *buf, float *host, size_t n) {
    backend_count_readback();
    ps->be->copy(host, buf, n * sizeof(float), ps->device.type == DEV_CPU ? COPY_D2D : COPY_D2H);
}

void params_buffer_from_host(const ParamStore *ps, float *buf, const float *host, size_t n) {
    ps->be->copy(buf, host, n * sizeof(float), ps->device.type == DEV_CPU ? COPY_D2D : COPY_H2D);
}

void params_buffer_copy(const ParamStore *dst_ps, float *dst, const ParamStore *src_ps, const float *src, size_t n) {
    size_t bytes = n * sizeof(float);
    bool dcpu = dst_ps->device.type == DEV_CPU, scpu = src_ps->device.type == DEV_CPU;
    if (dcpu && scpu) memcpy(dst, src, bytes);
    else if (dcpu) {
        backend_count_readback();
        src_ps->be->copy(dst, src, bytes, COPY_D2H);
    }
    else if (scpu) dst_ps->be->copy(dst, src, bytes, COPY_H2D);
    else if (dst_ps->device.index == src_ps->device.index) dst_ps->be->copy(dst, src, bytes, COPY_D2D);
    else {
        float *h = xmalloc(bytes);
        backend_count_readback();
        src_ps->be->copy(h, src, bytes, COPY_D2H);
        dst_ps->be->copy(dst, h, bytes, COPY_H2D);
        free(h);
    }
}

void params_make_bf16(ParamStore *ps) {
    DCHECK(ps->finalized);
    if (!ps->bf16) ps->bf16 = ps->be->alloc((ps->total ? ps->total : 1) * sizeof(uint16_t));
    ps->be->to_bf16(ps->bf16, ps->data, ps->total);
    for (int i = 0; i < ps->n; i++) ps->tensors[i]->bf16 = ps->bf16 + ps->offsets[i];
}
