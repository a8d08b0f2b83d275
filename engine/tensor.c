/* tensor.c — shape bookkeeping for the Tensor view (see tensor.h). */
#include "tensor.h"

#include <stdio.h>

size_t dtype_size(DType dt) {
    switch (dt) {
    case DT_F32: return 4;
    case DT_BF16: return 2;
    case DT_F16: return 2;
    case DT_I32: return 4;
    case DT_U8: return 1;
    }
    DCHECK(!"unknown dtype");
    return 0;
}

const char *dtype_name(DType dt) {
    static const char *names[] = {"f32", "bf16", "f16", "i32", "u8"};
    DCHECK((int)dt >= 0 && (int)dt <= DT_U8);
    return names[dt];
}

void tensor_set_shape(Tensor *t, int ndim, const int *shape) {
    DCHECK(ndim >= 1 && ndim <= TENSOR_MAX_DIMS);
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < TENSOR_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    for (int i = 0; i < ndim; i++) {
        DCHECK(shape[i] >= 0);
        t->numel *= (size_t)shape[i];
    }
}

size_t tensor_bytes(const Tensor *t) { return t->numel * dtype_size(t->dtype); }

int tensor_cols(const Tensor *t) { return t->shape[t->ndim - 1]; }

size_t tensor_rows(const Tensor *t) {
    int cols = tensor_cols(t);
    return cols ? t->numel / (size_t)cols : 0;
}

bool tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *tensor_shape_str(const Tensor *t, char *buf, size_t n) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %d" : "%d", t->shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

const char *device_str(Device d, char *buf, size_t n) {
    if (d.type == DEV_CPU) snprintf(buf, n, "cpu");
    else snprintf(buf, n, "cuda:%d", d.index);
    return buf;
}
