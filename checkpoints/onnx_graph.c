/*
 * onnx_graph.c — the ONNX graph builder over protobuf-c (see onnx_graph.h for the promises).
 *
 * Every allocation goes into one pool (a growing array of pointers) freed by og_free; the
 * protobuf-c messages point into it. Serialisation uses protobuf_c_message_pack_to_buffer with a
 * ProtobufCBuffer that appends to a FILE, so a model is never held twice in memory.
 */
#include "onnx_graph.h"

#include "onnx.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define OG_MAX_INPUTS 8

struct OnnxGraph {
    int float_type;
    char *name;
    void **pool;                       /* every allocation, freed by og_free */
    size_t n_pool, cap_pool;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    Onnx__ValueInfoProto **inputs, **outputs;
    size_t n_inputs, n_outputs, cap_inputs, cap_outputs;
};

/* ------------------------------------------------------------------ pool */

static void *pool_keep(OnnxGraph *g, void *p) {
    if (g->n_pool == g->cap_pool) {
        g->cap_pool = g->cap_pool ? 2 * g->cap_pool : 256;
        g->pool = xrealloc(g->pool, g->cap_pool * sizeof *g->pool);
    }
    g->pool[g->n_pool++] = p;
    return p;
}

static void *pool_calloc(OnnxGraph *g, size_t count, size_t size) {
    return pool_keep(g, xcalloc(count ? count : 1, size));
}

static char *pool_strdup(OnnxGraph *g, const char *s) { return pool_keep(g, xstrdup(s)); }

static void push(void ***arr, size_t *n, size_t *cap, void *item) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *arr = xrealloc(*arr, *cap * sizeof **arr);
    }
    (*arr)[(*n)++] = item;
}

OnnxGraph *og_new(const char *graph_name, int float_type) {
    DCHECK(float_type == OG_FLOAT || float_type == OG_FLOAT16);
    OnnxGraph *g = xcalloc(1, sizeof *g);
    g->float_type = float_type;
    g->name = pool_strdup(g, graph_name);
    return g;
}

void og_free(OnnxGraph *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n_pool; i++) free(g->pool[i]);
    free(g->pool);
    free(g->nodes);
    free(g->inits);
    free(g->inputs);
    free(g->outputs);
    free(g);
}

int og_float_type(const OnnxGraph *g) { return g->float_type; }

/* ------------------------------------------------------------------ graph inputs / outputs */

static Onnx__ValueInfoProto *value_info(OnnxGraph *g, const char *name, int elem_type, int ndim,
                                        const int64_t *dims, const char *const *params) {
    Onnx__TensorShapeProto *shape = pool_calloc(g, 1, sizeof *shape);
    onnx__tensor_shape_proto__init(shape);
    shape->n_dim = (size_t)ndim;
    shape->dim = pool_calloc(g, (size_t)ndim, sizeof *shape->dim);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = pool_calloc(g, 1, sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (params && params[i]) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = pool_strdup(g, params[i]);
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        shape->dim[i] = d;
    }
    Onnx__TypeProto__Tensor *tt = pool_calloc(g, 1, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem_type;
    tt->shape = shape;
    Onnx__TypeProto *type = pool_calloc(g, 1, sizeof *type);
    onnx__type_proto__init(type);
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tt;
    Onnx__ValueInfoProto *vi = pool_calloc(g, 1, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = pool_strdup(g, name);
    vi->type = type;
    return vi;
}

void og_add_input(OnnxGraph *g, const char *name, int elem_type, int ndim, const int64_t *dims,
                  const char *const *params) {
    push((void ***)&g->inputs, &g->n_inputs, &g->cap_inputs,
         value_info(g, name, elem_type, ndim, dims, params));
}

void og_add_output(OnnxGraph *g, const char *name, int elem_type, int ndim, const int64_t *dims,
                   const char *const *params) {
    push((void ***)&g->outputs, &g->n_outputs, &g->cap_outputs,
         value_info(g, name, elem_type, ndim, dims, params));
}

/* ------------------------------------------------------------------ initializers */

static Onnx__TensorProto *find_init(const OnnxGraph *g, const char *name) {
    for (size_t i = 0; i < g->n_inits; i++)
        if (strcmp(g->inits[i]->name, name) == 0) return g->inits[i];
    return NULL;
}

static Onnx__TensorProto *new_tensor(OnnxGraph *g, const char *name, int data_type, int ndim,
                                     const int64_t *dims, void *raw, size_t raw_bytes) {
    DCHECK(find_init(g, name) == NULL);
    Onnx__TensorProto *t = pool_calloc(g, 1, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = pool_strdup(g, name);
    t->has_data_type = 1;
    t->data_type = data_type;
    t->n_dims = (size_t)ndim;
    t->dims = pool_calloc(g, (size_t)ndim, sizeof *t->dims);
    if (ndim) memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    t->has_raw_data = 1;
    t->raw_data.data = raw;
    t->raw_data.len = raw_bytes;
    push((void ***)&g->inits, &g->n_inits, &g->cap_inits, t);
    return t;
}

/* f32 -> IEEE binary16, round to nearest even: the compiler's _Float16 conversion where it has
 * one (GCC defines __FLT16_MAX__ then); clang 14 on x86-64 has no _Float16 without AVX512-FP16
 * (the -DDISTILL_FUZZ build), so there the same rounding is done on the bits (it agrees with GCC's
 * _Float16 on all 2^32 float bit patterns, NaN payloads included). */
static uint16_t to_half(float v) {
#ifdef __FLT16_MAX__
    _Float16 h = (_Float16)v;
    uint16_t bits;
    memcpy(&bits, &h, sizeof bits);
    return bits;
#else
    uint32_t x;
    memcpy(&x, &v, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf, NaN (quiet, top payload bits kept) */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) { /* below 2^-14: a subnormal half (or zero) */
        if (ax < 0x33000000u) return sign; /* <= 2^-25: rounds to 0 (the tie goes to even 0) */
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* 14..24 */
        uint32_t h = m >> shift, rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rest > half || (rest == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (ax >> 13) - (112u << 10), rest = ax & 0x1fffu; /* rebias 127 -> 15 */
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
#endif
}

Status og_init_float(OnnxGraph *g, const char *name, int ndim, const int64_t *dims,
                     const float *data, bool transpose, const char **out_name) {
    *out_name = NULL;
    DCHECK(ndim >= 0 && ndim <= 4 && (!transpose || ndim == 2));
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(data[i])) {
            distill_set_error("tensor %s: element %zu is %g: expected finite weights", name, i,
                              (double)data[i]);
            return DISTILL_ERR;
        }
        if (g->float_type == OG_FLOAT16 && fabsf(data[i]) > 65504.0f) {
            distill_set_error("tensor %s: element %zu is %g, beyond float16's range (65504): "
                              "export in fp32", name, i, (double)data[i]);
            return DISTILL_ERR;
        }
    }
    int64_t sdims[4];
    for (int i = 0; i < ndim; i++) sdims[i] = dims[i];
    size_t rows = 0, cols = 0;
    if (transpose) {
        rows = (size_t)dims[0];
        cols = (size_t)dims[1];
        sdims[0] = dims[1];
        sdims[1] = dims[0];
    }
    Onnx__TensorProto *t;
    if (g->float_type == OG_FLOAT && !transpose) {
        t = new_tensor(g, name, OG_FLOAT, ndim, sdims, (void *)data, n * sizeof(float));
    } else if (g->float_type == OG_FLOAT) {
        float *dst = pool_calloc(g, n, sizeof *dst); /* (cols, rows) */
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) dst[c * rows + r] = data[r * cols + c];
        t = new_tensor(g, name, OG_FLOAT, ndim, sdims, dst, n * sizeof *dst);
    } else {
        uint16_t *dst = pool_calloc(g, n, sizeof *dst);
        if (transpose) {
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < cols; c++) dst[c * rows + r] = to_half(data[r * cols + c]);
        } else {
            for (size_t i = 0; i < n; i++) dst[i] = to_half(data[i]);
        }
        t = new_tensor(g, name, OG_FLOAT16, ndim, sdims, dst, n * sizeof *dst);
    }
    *out_name = t->name;
    return DISTILL_OK;
}

const char *og_const_float(OnnxGraph *g, const char *name, float v) {
    Onnx__TensorProto *t = find_init(g, name);
    if (t) return t->name;
    DCHECK(isfinite(v));
    if (g->float_type == OG_FLOAT) {
        float *p = pool_calloc(g, 1, sizeof *p);
        *p = v;
        return new_tensor(g, name, OG_FLOAT, 0, NULL, p, sizeof *p)->name;
    }
    DCHECK(fabsf(v) <= 65504.0f);
    uint16_t *p = pool_calloc(g, 1, sizeof *p);
    *p = to_half(v);
    return new_tensor(g, name, OG_FLOAT16, 0, NULL, p, sizeof *p)->name;
}

const char *og_const_i64(OnnxGraph *g, const char *name, int n, const int64_t *v, bool scalar) {
    Onnx__TensorProto *t = find_init(g, name);
    if (t) return t->name;
    DCHECK(n >= 1 && (!scalar || n == 1));
    int64_t *p = pool_calloc(g, (size_t)n, sizeof *p);
    memcpy(p, v, (size_t)n * sizeof *p);
    int64_t dims[1] = {n};
    return new_tensor(g, name, OG_INT64, scalar ? 0 : 1, dims, p, (size_t)n * sizeof *p)->name;
}

const char *og_init_i64(OnnxGraph *g, const char *name, int ndim, const int64_t *dims,
                        const int64_t *v) {
    DCHECK(ndim >= 0 && ndim <= 4);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    int64_t *p = pool_calloc(g, n, sizeof *p);
    memcpy(p, v, n * sizeof *p);
    return new_tensor(g, name, OG_INT64, ndim, dims, p, n * sizeof *p)->name;
}

/* ------------------------------------------------------------------ nodes */

const char *og_op(OnnxGraph *g, const char *name, const char *op, ...) {
    const char *in[OG_MAX_INPUTS];
    int n_in = 0;
    va_list ap;
    va_start(ap, op);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        DCHECK(n_in < OG_MAX_INPUTS);
        in[n_in++] = s;
    }
    va_end(ap);
    Onnx__NodeProto *node = pool_calloc(g, 1, sizeof *node);
    onnx__node_proto__init(node);
    node->name = pool_strdup(g, name);
    node->op_type = pool_strdup(g, op);
    node->n_input = (size_t)n_in;
    node->input = pool_calloc(g, (size_t)n_in, sizeof *node->input);
    for (int i = 0; i < n_in; i++) node->input[i] = pool_strdup(g, in[i]);
    size_t len = strlen(name) + sizeof "_output_0";
    char *out = pool_calloc(g, len, 1);
    snprintf(out, len, "%s_output_0", name);
    node->n_output = 1;
    node->output = pool_calloc(g, 1, sizeof *node->output);
    node->output[0] = out;
    push((void ***)&g->nodes, &g->n_nodes, &g->cap_nodes, node);
    return out;
}

static Onnx__AttributeProto *new_attr(OnnxGraph *g, const char *attr,
                                      Onnx__AttributeProto__AttributeType type) {
    DCHECK(g->n_nodes > 0);
    Onnx__NodeProto *node = g->nodes[g->n_nodes - 1];
    Onnx__AttributeProto *a = pool_calloc(g, 1, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = pool_strdup(g, attr);
    a->has_type = 1;
    a->type = type;
    Onnx__AttributeProto **list = pool_calloc(g, node->n_attribute + 1, sizeof *list);
    if (node->n_attribute) memcpy(list, node->attribute, node->n_attribute * sizeof *list);
    list[node->n_attribute++] = a;
    node->attribute = list; /* the old array stays in the pool until og_free */
    return a;
}

void og_attr_int(OnnxGraph *g, const char *attr, int64_t v) {
    Onnx__AttributeProto *a = new_attr(g, attr, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

void og_attr_float(OnnxGraph *g, const char *attr, float v) {
    Onnx__AttributeProto *a = new_attr(g, attr, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

void og_attr_ints(OnnxGraph *g, const char *attr, int n, const int64_t *v) {
    Onnx__AttributeProto *a = new_attr(g, attr, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)n;
    a->ints = pool_calloc(g, (size_t)n, sizeof *a->ints);
    memcpy(a->ints, v, (size_t)n * sizeof *v);
}

const char *og_rename_output(OnnxGraph *g, const char *new_name) {
    DCHECK(g->n_nodes > 0);
    Onnx__NodeProto *node = g->nodes[g->n_nodes - 1];
    node->output[0] = pool_strdup(g, new_name);
    return node->output[0];
}

/* ------------------------------------------------------------------ the model */

/* Fills the caller's ModelProto (and the small messages it points to, owned by the caller's
 * frame through `parts`) from the graph and info. */
typedef struct {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1];
    Onnx__StringStringEntryProto *meta;   /* (n_meta) */
    Onnx__StringStringEntryProto **meta_ptrs;
} ModelParts;

static void assemble(OnnxGraph *g, const OgModelInfo *info, ModelParts *p) {
    onnx__graph_proto__init(&p->graph);
    p->graph.name = g->name;
    p->graph.n_node = g->n_nodes;
    p->graph.node = g->nodes;
    p->graph.n_initializer = g->n_inits;
    p->graph.initializer = g->inits;
    p->graph.n_input = g->n_inputs;
    p->graph.input = g->inputs;
    p->graph.n_output = g->n_outputs;
    p->graph.output = g->outputs;

    onnx__operator_set_id_proto__init(&p->opset);
    p->opset.domain = (char *)"";
    p->opset.has_version = 1;
    p->opset.version = info->opset;
    p->opsets[0] = &p->opset;

    p->meta = xcalloc((size_t)info->n_meta + 1, sizeof *p->meta);
    p->meta_ptrs = xcalloc((size_t)info->n_meta + 1, sizeof *p->meta_ptrs);
    for (int i = 0; i < info->n_meta; i++) {
        onnx__string_string_entry_proto__init(&p->meta[i]);
        p->meta[i].key = (char *)info->meta_keys[i];
        p->meta[i].value = (char *)info->meta_values[i];
        p->meta_ptrs[i] = &p->meta[i];
    }

    onnx__model_proto__init(&p->model);
    p->model.has_ir_version = 1;
    p->model.ir_version = info->ir_version;
    p->model.n_opset_import = 1;
    p->model.opset_import = p->opsets;
    p->model.producer_name = (char *)info->producer_name;
    p->model.producer_version = (char *)info->producer_version;
    p->model.doc_string = (char *)info->doc_string;
    p->model.graph = &p->graph;
    p->model.n_metadata_props = (size_t)info->n_meta;
    p->model.metadata_props = p->meta_ptrs;
}

static void release(ModelParts *p) {
    free(p->meta);
    free(p->meta_ptrs);
}

size_t og_packed_size(OnnxGraph *g, const OgModelInfo *info) {
    ModelParts p;
    assemble(g, info, &p);
    size_t n = onnx__model_proto__get_packed_size(&p.model);
    release(&p);
    return n;
}

typedef struct {
    ProtobufCBuffer base;
    FILE *fp;
    bool failed;
    int err;            /* errno of the failed write */
    size_t written;
} FileBuffer;

static void file_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data) {
    FileBuffer *fb = (FileBuffer *)buffer;
    if (fb->failed || len == 0) return;
    errno = 0;
    if (fwrite(data, 1, len, fb->fp) != len) {
        fb->failed = true;
        fb->err = errno;
    } else {
        fb->written += len;
    }
}

Status og_write(OnnxGraph *g, const OgModelInfo *info, FILE *fp, const char *what) {
    ModelParts p;
    assemble(g, info, &p);
    FileBuffer fb = {.base = {.append = file_append}, .fp = fp};
    size_t n = protobuf_c_message_pack_to_buffer(&p.model.base, &fb.base);
    release(&p);
    errno = 0;
    if (!fb.failed && (fflush(fp) != 0 || ferror(fp))) {
        fb.failed = true;
        fb.err = errno;
    }
    if (fb.failed || fb.written != n) {
        distill_set_error("%s: write failed after %zu of %zu bytes: %s", what, fb.written, n,
                          fb.err ? strerror(fb.err) : "short write");
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}
