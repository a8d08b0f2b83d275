/*
 * onnx_graph.h — a small builder for ONNX graphs over the protobuf-c structures generated at build
 * time from the system's onnx.proto (Debian libonnx-dev): nodes, initializers, graph inputs and
 * outputs, and the serialisation of a ModelProto to a file. Internal to checkpoints/ (the BERT
 * graph is in onnx_export.c); nothing here knows what BERT is.
 *
 * Promises:
 * - Every string and array the builder hands to protobuf-c is owned by the OnnxGraph and freed by
 *   og_free, except float data that og_init_float was allowed to borrow (fp32, not transposed):
 *   that must outlive og_write.
 * - Tensor data is written as raw_data, little-endian (the host's order; x86-64 and aarch64 are
 *   little-endian), in the graph's float type (FLOAT or FLOAT16) for float tensors.
 * - Node output names are "<node name>_output_0" (torch.onnx's convention) unless renamed.
 * - Failures (a float that overflows float16, a write error) return DISTILL_ERR with a message;
 *   misuse (unknown names, too many inputs) is a DCHECK.
 */
#ifndef DISTILL_ONNX_GRAPH_H
#define DISTILL_ONNX_GRAPH_H

#include <stdio.h>

#include "../engine/common.h"

/* ONNX TensorProto.DataType values used here (onnx.proto). */
enum { OG_FLOAT = 1, OG_INT32 = 6, OG_INT64 = 7, OG_FLOAT16 = 10 };

typedef struct OnnxGraph OnnxGraph;

/* float_type: OG_FLOAT or OG_FLOAT16, the type of every float initializer and constant. */
OnnxGraph *og_new(const char *graph_name, int float_type);
void og_free(OnnxGraph *g);
int og_float_type(const OnnxGraph *g);

/* A graph input or output: elem_type one of OG_*, ndim dims each either a fixed size
 * (params[i] == NULL) or a symbolic one named params[i] ("batch", "sequence"). */
void og_add_input(OnnxGraph *g, const char *name, int elem_type, int ndim, const int64_t *dims,
                  const char *const *params);
void og_add_output(OnnxGraph *g, const char *name, int elem_type, int ndim, const int64_t *dims,
                   const char *const *params);

/* A float initializer from f32 data (rows x cols when 2-D). transpose: a 2-D (r, c) array is stored
 * as its (c, r) transpose (a Linear weight (out, in) becomes MatMul's (in, out)). Converted to the
 * graph's float type; borrowed without a copy when it is f32 and not transposed. Returns the name
 * (pooled). DISTILL_ERR (name NULL) when a value does not fit float16 or is not finite. */
Status og_init_float(OnnxGraph *g, const char *name, int ndim, const int64_t *dims,
                     const float *data, bool transpose, const char **out_name);

/* Constants as initializers, created once per name (a second call with the same name returns the
 * first). og_const_float: a scalar (rank 0) of the graph's float type. og_const_i64: int64 of
 * shape [n], or a scalar when scalar is true (n must be 1). */
const char *og_const_float(OnnxGraph *g, const char *name, float v);
const char *og_const_i64(OnnxGraph *g, const char *name, int n, const int64_t *v, bool scalar);
/* An int64 initializer of any shape (ndim 0..4), values copied. */
const char *og_init_i64(OnnxGraph *g, const char *name, int ndim, const int64_t *dims,
                        const int64_t *v);

/* Appends a node (domain ""): inputs are the NULL-terminated names after `op`. Returns the name
 * of its single output, "<name>_output_0". */
const char *og_op(OnnxGraph *g, const char *name, const char *op, ...) __attribute__((sentinel));
/* Attributes and output name of the node added last. */
void og_attr_int(OnnxGraph *g, const char *attr, int64_t v);
void og_attr_float(OnnxGraph *g, const char *attr, float v);
void og_attr_ints(OnnxGraph *g, const char *attr, int n, const int64_t *v);
const char *og_rename_output(OnnxGraph *g, const char *new_name);

typedef struct OgModelInfo {
    int64_t ir_version;
    int64_t opset;               /* of the default domain "" */
    const char *producer_name, *producer_version, *doc_string;
    int n_meta;
    const char *const *meta_keys;    /* (n_meta) metadata_props */
    const char *const *meta_values;  /* (n_meta) */
} OgModelInfo;

/* The serialised size of the ModelProto (to refuse models beyond protobuf's 2 GiB limit before
 * writing anything). */
size_t og_packed_size(OnnxGraph *g, const OgModelInfo *info);
/* Serialises the ModelProto to fp, streaming (no copy of the whole model in memory). `what` names
 * the file in messages. DISTILL_ERR on a write error. */
Status og_write(OnnxGraph *g, const OgModelInfo *info, FILE *fp, const char *what);

#endif
