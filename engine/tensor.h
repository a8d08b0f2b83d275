/*
 * tensor.h — the tensor: dtype, device, up to 4 dims, contiguous row-major.
 *
 * A Tensor is a view: it never owns its memory. Parameters point into one parameter buffer (see
 * engine/params.h); activations point into the per-step arena (engine/arena.h). `grad` is either
 * NULL (not yet needed), a view into the gradient buffer (parameters), or arena memory allocated
 * zero-filled by the tape on first use.
 */
#ifndef DISTILL_TENSOR_H
#define DISTILL_TENSOR_H

#include "common.h"

typedef enum { DT_F32 = 0, DT_BF16, DT_F16, DT_I32, DT_U8 } DType;
typedef enum { DEV_CPU = 0, DEV_CUDA = 1 } DeviceType;

typedef struct {
    DeviceType type;
    int index; /* cuda:N; 0 for cpu */
} Device;

#define TENSOR_MAX_DIMS 4

typedef struct Tensor {
    DType dtype;
    Device device;
    int ndim;
    int shape[TENSOR_MAX_DIMS];
    size_t numel;
    void *data;
    struct Tensor *grad; /* same shape, f32; NULL until needed */
    bool requires_grad;
    const char *name; /* parameters only (Hugging Face name); NULL for activations */
    const uint16_t *bf16; /* parameters of a frozen store: the bf16 copy (params_make_bf16), else NULL */
    /* i32 tensors that ctx_from_host or ctx_zeros made on a device: the same values in host memory
     * (the step's meta arena, kept equal by tensor_from_host), so range checks of ids, lengths and
     * labels read them without waiting on the device (tensor_i32_host); NULL otherwise. */
    int32_t *host_i32;
} Tensor;

size_t dtype_size(DType dt);
const char *dtype_name(DType dt);
/* Fills shape/ndim/numel; data, grad, name untouched. */
void tensor_set_shape(Tensor *t, int ndim, const int *shape);
size_t tensor_bytes(const Tensor *t);
/* Number of rows when the last dim is the row width: numel / shape[ndim-1]. */
size_t tensor_rows(const Tensor *t);
int tensor_cols(const Tensor *t);
bool tensor_same_shape(const Tensor *a, const Tensor *b);
/* "[2, 3, 4]" into buf (for messages). */
const char *tensor_shape_str(const Tensor *t, char *buf, size_t n);

static inline float *tensor_f32(const Tensor *t) { return (float *)t->data; }
static inline int32_t *tensor_i32(const Tensor *t) { return (int32_t *)t->data; }

static inline Device device_cpu(void) { Device d = {DEV_CPU, 0}; return d; }
static inline bool device_eq(Device a, Device b) { return a.type == b.type && a.index == b.index; }
/* "cpu" or "cuda:N" into buf. */
const char *device_str(Device d, char *buf, size_t n);

#endif
