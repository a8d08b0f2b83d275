/*
 * params.h — one buffer per tensor family (llm.c): parameters, gradients, and (for the trainer)
 * AdamW moments are each a single allocation with named views, built from a size table.
 *
 * Two phases: params_add declares tensors (name + shape, in order); params_finalize allocates the
 * buffers on the device and points each Tensor's data (and grad) into them. Tensor pointers handed
 * out by params_add stay valid for the store's lifetime. Gradients are zeroed by params_zero_grad;
 * backward kernels accumulate into them.
 */
#ifndef DISTILL_PARAMS_H
#define DISTILL_PARAMS_H

#include "backend.h"

typedef struct ParamStore {
    Device device;
    const Backend *be;
    Tensor **tensors;   /* n views, in declaration order */
    Tensor **grads;     /* their gradient views */
    size_t *offsets;    /* element offset of each tensor in the buffers */
    bool *no_decay;     /* per tensor: excluded from weight decay (biases, LayerNorm) */
    int n, cap;
    size_t total;       /* elements in each buffer */
    float *data;        /* (total) on the device */
    float *grad;        /* (total) on the device */
    uint16_t *bf16;     /* (total) bf16 copy of data, or NULL (params_make_bf16) */
    bool finalized;
} ParamStore;

ParamStore *params_new(Device device);
/* Declares a tensor; `no_decay` marks biases and LayerNorm weights (Hugging Face's rule). */
Tensor *params_add(ParamStore *ps, const char *name, int ndim, const int *shape, bool no_decay);
/* Allocates data and grad buffers (data zero-filled) and binds every view. */
void params_finalize(ParamStore *ps);
/* NULL when absent. */
Tensor *params_find(const ParamStore *ps, const char *name);
int params_index(const ParamStore *ps, const char *name);
void params_zero_grad(ParamStore *ps);
void params_free(ParamStore *ps);
/* Total number of elements of tensors whose name starts with prefix ("" for all). */
size_t params_count(const ParamStore *ps, const char *prefix);

/* Rounds every parameter to bf16 once, into a copy each tensor's `bf16` points into: GEMMs at bf16
 * then read the weights as they are instead of rounding them at every product. For a store whose
 * data no longer changes (a teacher): the copy is not updated, so AdamW refuses such a store. */
void params_make_bf16(ParamStore *ps);

/* Buffers laid out like the store's (ps->total floats on its device: optimizer moments and the
 * like), so code above the engine never touches a backend. */
float *params_buffer_new(const ParamStore *ps);          /* zero-filled */
void params_buffer_free(const ParamStore *ps, float *buf);
void params_buffer_zero(const ParamStore *ps, float *buf, size_t n);
/* n floats between a store-device buffer and host memory. */
void params_buffer_to_host(const ParamStore *ps, const float *buf, float *host, size_t n);
void params_buffer_from_host(const ParamStore *ps, float *buf, const float *host, size_t n);
/* Copies n floats from src (on src_ps's device) to dst (on dst_ps's device), any pair of devices. */
void params_buffer_copy(const ParamStore *dst_ps, float *dst, const ParamStore *src_ps, const float *src, size_t n);

#endif
