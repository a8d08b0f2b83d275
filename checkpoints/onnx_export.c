/*
 * onnx_export.c — BERT as an ONNX inference graph, written atomically (see onnx_export.h for the
 * graph, the metadata and the promises). The graph is built with onnx_graph.h (protobuf-c).
 *
 * Node names follow torch.onnx's scheme ("/bert/encoder/layer.0/attention/self/query/MatMul"),
 * so a graph viewer shows where each node comes from, and initializers carry Hugging Face's
 * parameter names.
 */
#define _POSIX_C_SOURCE 200809L
#include "onnx_export.h"

#include "onnx_graph.h"

#include "io/atomic.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ONNX_IR_VERSION 8         /* onnx 1.12: IR 8 carries opsets up to 17 */
#define ONNX_PRODUCER "distill"
#define ONNX_PRODUCER_VERSION "0.1"
#define PROTOBUF_MAX_BYTES 2147483647ull /* one protobuf message: at most 2 GiB - 1 */

OnnxExportOptions onnx_export_defaults(void) {
    OnnxExportOptions o;
    memset(&o, 0, sizeof o);
    return o;
}

/* ------------------------------------------------------------------ graph-building context */

typedef struct {
    OnnxGraph *g;
    const Bert *m;
    const float *host;   /* (params->total) host copy when the model is not on the CPU */
    int opset;
    char buf[4][256];    /* scratch names; og_* copy what they are given */
} Ex;

/* printf into scratch slot k (0..3). */
static const char *nm(Ex *x, int k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const char *nm(Ex *x, int k, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(x->buf[k], sizeof x->buf[k], fmt, ap);
    va_end(ap);
    DCHECK(n > 0 && (size_t)n < sizeof x->buf[k]);
    return x->buf[k];
}

static const float *host_data(const Ex *x, const Tensor *t) {
    if (!x->host) return (const float *)t->data;
    int i = params_index(x->m->params, t->name);
    DCHECK(i >= 0);
    return x->host + x->m->params->offsets[i];
}

/* A parameter as an initializer named as Hugging Face names it (".T" when stored transposed). */
static Status param(Ex *x, const Tensor *t, bool transpose, const char **out) {
    DCHECK(t && t->name && t->dtype == DT_F32);
    int64_t dims[TENSOR_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) dims[i] = t->shape[i];
    const char *name = transpose ? nm(x, 3, "%s.T", t->name) : t->name;
    return og_init_float(x->g, name, t->ndim, dims, host_data(x, t), transpose, out);
}

static const char *i64s(Ex *x, const char *name, int n, const int64_t *v) {
    return og_const_i64(x->g, name, n, v, false);
}

static const char *i64(Ex *x, const char *name, int64_t v) {
    return og_const_i64(x->g, name, 1, &v, true);
}

/* y = x @ W^T + b as torch exports nn.Linear on a 3-D input: MatMul(x, W^T) then Add(b, .). */
static Status linear(Ex *x, const char *prefix, const char *in, const Tensor *w, const Tensor *b,
                     const char **out) {
    const char *wt, *bn;
    if (param(x, w, true, &wt) || param(x, b, false, &bn)) return DISTILL_ERR;
    const char *mm = og_op(x->g, nm(x, 0, "%s/MatMul", prefix), "MatMul", in, wt, NULL);
    *out = og_op(x->g, nm(x, 0, "%s/Add", prefix), "Add", bn, mm, NULL);
    return DISTILL_OK;
}

/* LayerNorm over the last axis: LayerNormalization (opset 17), else the decomposition older
 * exporters write (which ONNX Runtime's optimizer fuses back into LayerNormalization). */
static Status layernorm(Ex *x, const char *prefix, const char *in, const Tensor *gamma,
                        const Tensor *beta, const char **out) {
    const char *gn, *bn;
    if (param(x, gamma, false, &gn) || param(x, beta, false, &bn)) return DISTILL_ERR;
    float eps = x->m->cfg.layer_norm_eps;
    OnnxGraph *g = x->g;
    if (x->opset >= 17) {
        *out = og_op(g, nm(x, 0, "%s/LayerNormalization", prefix), "LayerNormalization", in, gn, bn,
                     NULL);
        og_attr_int(g, "axis", -1);
        og_attr_float(g, "epsilon", eps);
        return DISTILL_OK;
    }
    const int64_t last[1] = {-1};
    const char *mean = og_op(g, nm(x, 0, "%s/ReduceMean", prefix), "ReduceMean", in, NULL);
    og_attr_ints(g, "axes", 1, last);
    const char *d = og_op(g, nm(x, 0, "%s/Sub", prefix), "Sub", in, mean, NULL);
    const char *sq = og_op(g, nm(x, 0, "%s/Pow", prefix), "Pow", d,
                           og_const_float(g, "onnx::Pow_two", 2.0f), NULL);
    const char *var = og_op(g, nm(x, 0, "%s/ReduceMean_1", prefix), "ReduceMean", sq, NULL);
    og_attr_ints(g, "axes", 1, last);
    char eps_name[64];
    snprintf(eps_name, sizeof eps_name, "onnx::Add_eps_%.9g", (double)eps);
    const char *ve = og_op(g, nm(x, 0, "%s/Add", prefix), "Add", var,
                           og_const_float(g, eps_name, eps), NULL);
    const char *sd = og_op(g, nm(x, 0, "%s/Sqrt", prefix), "Sqrt", ve, NULL);
    const char *n = og_op(g, nm(x, 0, "%s/Div", prefix), "Div", d, sd, NULL);
    const char *scaled = og_op(g, nm(x, 0, "%s/Mul", prefix), "Mul", n, gn, NULL);
    *out = og_op(g, nm(x, 0, "%s/Add_1", prefix), "Add", scaled, bn, NULL);
    return DISTILL_OK;
}

/* ------------------------------------------------------------------ the BERT graph */

/* (B, S) ids -> (B, S, H) embedding output. */
static Status embeddings(Ex *x, const char **out) {
    const Bert *m = x->m;
    OnnxGraph *g = x->g;
    const char *we, *te, *pe;
    if (param(x, m->word_emb, false, &we) || param(x, m->type_emb, false, &te) ||
        param(x, m->pos_emb, false, &pe))
        return DISTILL_ERR;
    const char *w = og_op(g, "/bert/embeddings/word_embeddings/Gather", "Gather", we, "input_ids",
                          NULL);
    const char *t = og_op(g, "/bert/embeddings/token_type_embeddings/Gather", "Gather", te,
                          "token_type_ids", NULL);
    const char *wt = og_op(g, "/bert/embeddings/Add", "Add", w, t, NULL);

    /* position_ids = bert.embeddings.position_ids[:, :S], S read from input_ids' shape. */
    int P = m->cfg.max_position_embeddings;
    int64_t *pos = xmalloc((size_t)P * sizeof *pos);
    for (int i = 0; i < P; i++) pos[i] = i;
    const int64_t pdims[2] = {1, P};
    const char *pos_ids = og_init_i64(g, "bert.embeddings.position_ids", 2, pdims, pos);
    free(pos);
    const char *shape = og_op(g, "/bert/embeddings/Shape", "Shape", "input_ids", NULL);
    const char *seq = og_op(g, "/bert/embeddings/Gather", "Gather", shape,
                            i64(x, "onnx::Gather_one", 1), NULL);
    const int64_t zero[1] = {0}, one[1] = {1};
    const char *seq1 = og_op(g, "/bert/embeddings/Unsqueeze", "Unsqueeze", seq,
                             i64s(x, "onnx::Unsqueeze_axes_0", 1, zero), NULL);
    const char *sliced = og_op(g, "/bert/embeddings/Slice", "Slice", pos_ids,
                               i64s(x, "onnx::Slice_starts_0", 1, zero), seq1,
                               i64s(x, "onnx::Slice_axes_1", 1, one),
                               i64s(x, "onnx::Slice_steps_1", 1, one), NULL);
    const char *p = og_op(g, "/bert/embeddings/position_embeddings/Gather", "Gather", pe, sliced,
                          NULL);
    const char *sum = og_op(g, "/bert/embeddings/Add_1", "Add", wt, p, NULL);
    return layernorm(x, "/bert/embeddings/LayerNorm", sum, m->emb_ln_g, m->emb_ln_b, out);
}

/* attention_mask (B, S) int64 -> the additive mask (B, 1, 1, S): (1 - mask) * float-min. */
static const char *extended_mask(Ex *x) {
    OnnxGraph *g = x->g;
    bool fp16 = og_float_type(g) == OG_FLOAT16;
    const int64_t one[1] = {1}, two[1] = {2};
    const char *u1 = og_op(g, "/bert/Unsqueeze", "Unsqueeze", "attention_mask",
                           i64s(x, "onnx::Unsqueeze_axes_1", 1, one), NULL);
    const char *u2 = og_op(g, "/bert/Unsqueeze_1", "Unsqueeze", u1,
                           i64s(x, "onnx::Unsqueeze_axes_2", 1, two), NULL);
    const char *mf = og_op(g, "/bert/Cast", "Cast", u2, NULL);
    og_attr_int(g, "to", og_float_type(g));
    const char *inv = og_op(g, "/bert/Sub", "Sub", og_const_float(g, "onnx::Sub_one", 1.0f), mf,
                            NULL);
    /* torch.finfo(dtype).min: -FLT_MAX in float32, -65504 in float16. */
    return og_op(g, "/bert/Mul", "Mul", inv,
                 og_const_float(g, "onnx::Mul_float_min", fp16 ? -65504.0f : -FLT_MAX), NULL);
}

/* One encoder layer: (B, S, H) -> (B, S, H). */
static Status encoder_layer(Ex *x, int l, const char *in, const char *mask, const char **out) {
    const Bert *m = x->m;
    const BertLayer *L = &m->layers[l];
    OnnxGraph *g = x->g;
    int heads = m->cfg.num_attention_heads, H = m->cfg.hidden_size, d = H / heads;
    char p[96];
    snprintf(p, sizeof p, "/bert/encoder/layer.%d", l);

    const int64_t split[4] = {0, 0, heads, d}, merge[3] = {0, 0, H};
    const int64_t bnsd[4] = {0, 2, 1, 3}, bnds[4] = {0, 2, 3, 1};
    const char *split_shape = i64s(x, "onnx::Reshape_heads", 4, split);
    const char *q, *k, *v;
    if (linear(x, nm(x, 1, "%s/attention/self/query", p), in, L->q_w, L->q_b, &q) ||
        linear(x, nm(x, 1, "%s/attention/self/key", p), in, L->k_w, L->k_b, &k) ||
        linear(x, nm(x, 1, "%s/attention/self/value", p), in, L->v_w, L->v_b, &v))
        return DISTILL_ERR;
    /* (B, S, H) -> (B, heads, S, d); K goes straight to (B, heads, d, S). */
    const char *qr = og_op(g, nm(x, 0, "%s/attention/self/Reshape", p), "Reshape", q, split_shape,
                           NULL);
    const char *qt = og_op(g, nm(x, 0, "%s/attention/self/Transpose", p), "Transpose", qr, NULL);
    og_attr_ints(g, "perm", 4, bnsd);
    const char *kr = og_op(g, nm(x, 0, "%s/attention/self/Reshape_1", p), "Reshape", k,
                           split_shape, NULL);
    const char *kt = og_op(g, nm(x, 0, "%s/attention/self/Transpose_1", p), "Transpose", kr, NULL);
    og_attr_ints(g, "perm", 4, bnds);
    const char *vr = og_op(g, nm(x, 0, "%s/attention/self/Reshape_2", p), "Reshape", v,
                           split_shape, NULL);
    const char *vt = og_op(g, nm(x, 0, "%s/attention/self/Transpose_2", p), "Transpose", vr, NULL);
    og_attr_ints(g, "perm", 4, bnsd);

    /* scores (B, heads, S, S) = Q K^T / sqrt(d) + mask; probs = softmax over keys. */
    char sqrt_name[48];
    snprintf(sqrt_name, sizeof sqrt_name, "onnx::Div_sqrt_head_size_%d", d);
    const char *s = og_op(g, nm(x, 0, "%s/attention/self/MatMul", p), "MatMul", qt, kt, NULL);
    const char *sd = og_op(g, nm(x, 0, "%s/attention/self/Div", p), "Div", s,
                           og_const_float(g, sqrt_name, (float)sqrt((double)d)), NULL);
    const char *sm = og_op(g, nm(x, 0, "%s/attention/self/Add", p), "Add", sd, mask, NULL);
    const char *pr = og_op(g, nm(x, 0, "%s/attention/self/Softmax", p), "Softmax", sm, NULL);
    og_attr_int(g, "axis", -1);
    /* context (B, heads, S, d) -> (B, S, heads, d) -> (B, S, H) */
    const char *c = og_op(g, nm(x, 0, "%s/attention/self/MatMul_1", p), "MatMul", pr, vt, NULL);
    const char *ct = og_op(g, nm(x, 0, "%s/attention/self/Transpose_3", p), "Transpose", c, NULL);
    og_attr_ints(g, "perm", 4, bnsd);
    const char *cr = og_op(g, nm(x, 0, "%s/attention/self/Reshape_3", p), "Reshape", ct,
                           i64s(x, "onnx::Reshape_merge_heads", 3, merge), NULL);

    const char *ao, *h1, *i, *o;
    if (linear(x, nm(x, 1, "%s/attention/output/dense", p), cr, L->ao_w, L->ao_b, &ao))
        return DISTILL_ERR;
    const char *r1 = og_op(g, nm(x, 0, "%s/attention/output/Add", p), "Add", ao, in, NULL);
    if (layernorm(x, nm(x, 1, "%s/attention/output/LayerNorm", p), r1, L->ln1_g, L->ln1_b, &h1) ||
        linear(x, nm(x, 1, "%s/intermediate/dense", p), h1, L->i_w, L->i_b, &i))
        return DISTILL_ERR;

    /* exact GELU: x * (erf(x / sqrt 2) + 1) * 0.5 */
    const char *gd = og_op(g, nm(x, 0, "%s/intermediate/intermediate_act_fn/Div", p), "Div", i,
                           og_const_float(g, "onnx::Div_sqrt_two", (float)sqrt(2.0)), NULL);
    const char *ge = og_op(g, nm(x, 0, "%s/intermediate/intermediate_act_fn/Erf", p), "Erf", gd,
                           NULL);
    const char *ga = og_op(g, nm(x, 0, "%s/intermediate/intermediate_act_fn/Add", p), "Add", ge,
                           og_const_float(g, "onnx::Add_one", 1.0f), NULL);
    const char *gm = og_op(g, nm(x, 0, "%s/intermediate/intermediate_act_fn/Mul", p), "Mul", i, ga,
                           NULL);
    const char *gelu = og_op(g, nm(x, 0, "%s/intermediate/intermediate_act_fn/Mul_1", p), "Mul",
                             gm, og_const_float(g, "onnx::Mul_half", 0.5f), NULL);

    if (linear(x, nm(x, 1, "%s/output/dense", p), gelu, L->o_w, L->o_b, &o)) return DISTILL_ERR;
    const char *r2 = og_op(g, nm(x, 0, "%s/output/Add", p), "Add", o, h1, NULL);
    return layernorm(x, nm(x, 1, "%s/output/LayerNorm", p), r2, L->ln2_g, L->ln2_b, out);
}

/* y = x @ W^T + b on a 2-D input, as torch exports it: Gemm(x, W, b, transB = 1). */
static Status gemm(Ex *x, const char *name, const char *in, const Tensor *w, const Tensor *b,
                   const char **out) {
    const char *wn, *bn;
    if (param(x, w, false, &wn) || param(x, b, false, &bn)) return DISTILL_ERR;
    *out = og_op(x->g, name, "Gemm", in, wn, bn, NULL);
    og_attr_float(x->g, "alpha", 1.0f);
    og_attr_float(x->g, "beta", 1.0f);
    og_attr_int(x->g, "transB", 1);
    return DISTILL_OK;
}

/* Makes `value` (the output of the node added last) a graph output named out_name: renamed in
 * fp32; in fp16 cast to float32 under that name. Returns the name later nodes should read
 * `value` by (the new name in fp32, the float16 value in fp16). */
static const char *graph_output(Ex *x, const char *cast_name, const char *value,
                                const char *out_name) {
    if (og_float_type(x->g) == OG_FLOAT) return og_rename_output(x->g, out_name);
    og_op(x->g, cast_name, "Cast", value, NULL);
    og_attr_int(x->g, "to", OG_FLOAT);
    og_rename_output(x->g, out_name);
    return value;
}

/* The whole graph; `outputs` gets the output names, comma-separated (for the metadata). */
static Status build_graph(Ex *x, char *outputs, size_t n_outputs) {
    const Bert *m = x->m;
    const BertConfig *c = &m->cfg;
    OnnxGraph *g = x->g;
    /* symbolic dims are named in *_names; the sizes beside them are read only where the name
     * is NULL: batch x sequence (x hidden | x num_labels) */
    const char *const bs_names[3] = {"batch", "sequence", NULL};
    const char *const b_names[2] = {"batch", NULL};
    const int64_t bsh[3] = {0, 0, c->hidden_size}, bh[2] = {0, c->hidden_size};
    const int64_t bc[2] = {0, c->num_labels};
    og_add_input(g, "input_ids", OG_INT64, 2, bsh, bs_names);
    og_add_input(g, "attention_mask", OG_INT64, 2, bsh, bs_names);
    og_add_input(g, "token_type_ids", OG_INT64, 2, bsh, bs_names);

    const char *h; /* (B, S, H) */
    if (embeddings(x, &h)) return DISTILL_ERR;
    const char *mask = extended_mask(x); /* (B, 1, 1, S) */
    for (int l = 0; l < c->num_hidden_layers; l++)
        if (encoder_layer(x, l, h, mask, &h)) return DISTILL_ERR;

    if (c->num_labels == 0) {
        /* a BertModel: the last hidden state, and the pooler output when there is a pooler */
        h = graph_output(x, "/bert/Cast_1", h, "last_hidden_state");
        og_add_output(g, "last_hidden_state", OG_FLOAT, 3, bsh, bs_names);
        snprintf(outputs, n_outputs, "last_hidden_state");
    }
    if (!c->has_pooler || !m->pool_w) return DISTILL_OK;
    const char *first = og_op(g, "/bert/pooler/Gather", "Gather", h, /* (B, H) at [CLS] */
                              i64(x, "onnx::Gather_zero", 0), NULL);
    og_attr_int(g, "axis", 1);
    const char *pd, *logits;
    if (gemm(x, "/bert/pooler/dense/Gemm", first, m->pool_w, m->pool_b, &pd)) return DISTILL_ERR;
    const char *pooled = og_op(g, "/bert/pooler/activation/Tanh", "Tanh", pd, NULL); /* (B, H) */
    if (c->num_labels > 0) {
        if (gemm(x, "/classifier/Gemm", pooled, m->cls_w, m->cls_b, &logits)) /* (B, C) */
            return DISTILL_ERR;
        graph_output(x, "/classifier/Cast", logits, "logits");
        og_add_output(g, "logits", OG_FLOAT, 2, bc, b_names);
        snprintf(outputs, n_outputs, "logits");
    } else {
        graph_output(x, "/bert/pooler/Cast", pooled, "pooler_output");
        og_add_output(g, "pooler_output", OG_FLOAT, 2, bh, b_names);
        snprintf(outputs, n_outputs, "last_hidden_state,pooler_output");
    }
    return DISTILL_OK;
}

/* ------------------------------------------------------------------ metadata */

/* The shortest decimal that reads back to exactly v (as float). */
static cJSON *json_float(float v) {
    char buf[40];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}

/* The model's config under Hugging Face's config.json names (what hf_save writes for it). */
static char *config_json(const BertConfig *c) {
    cJSON *r = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(c->num_labels > 0 ? "BertForSequenceClassification"
                                                                       : "BertModel"));
    cJSON_AddStringToObject(r, "model_type", "bert");
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(r, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->num_hidden_layers);
    cJSON_AddNumberToObject(r, "num_attention_heads", c->num_attention_heads);
    cJSON_AddNumberToObject(r, "intermediate_size", c->intermediate_size);
    cJSON_AddStringToObject(r, "hidden_act", "gelu");
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(r, "type_vocab_size", c->type_vocab_size);
    cJSON_AddItemToObject(r, "layer_norm_eps", json_float(c->layer_norm_eps));
    cJSON_AddNumberToObject(r, "pad_token_id", c->pad_token_id);
    cJSON_AddStringToObject(r, "position_embedding_type", "absolute");
    if (c->num_labels > 0) {
        cJSON_AddNumberToObject(r, "num_labels", c->num_labels);
        cJSON *id2label = cJSON_AddObjectToObject(r, "id2label");
        for (int i = 0; i < c->num_labels; i++) {
            char key[16], def[32];
            snprintf(key, sizeof key, "%d", i);
            snprintf(def, sizeof def, "LABEL_%d", i);
            cJSON_AddStringToObject(id2label, key, c->id2label[i] ? c->id2label[i] : def);
        }
        if (c->problem_type[0]) cJSON_AddStringToObject(r, "problem_type", c->problem_type);
    }
    char *s = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    DCHECK(s != NULL);
    return s;
}

/* ------------------------------------------------------------------ writing */

static Status check_options(const char *path, const OnnxExportOptions *o, int *opset) {
    *opset = o->opset ? o->opset : ONNX_EXPORT_DEFAULT_OPSET;
    if (*opset < ONNX_EXPORT_MIN_OPSET || *opset > ONNX_EXPORT_MAX_OPSET) {
        distill_set_error("%s: ONNX opset %d: expected %d to %d", path, *opset,
                          ONNX_EXPORT_MIN_OPSET, ONNX_EXPORT_MAX_OPSET);
        return DISTILL_ERR;
    }
    if (o->fp16 && *opset < 17) {
        distill_set_error("%s: fp16 export needs opset 17 (LayerNormalization keeps float32 "
                          "statistics), found opset %d", path, *opset);
        return DISTILL_ERR;
    }
    if (o->n_extra < 0 || (o->n_extra > 0 && (!o->extra_keys || !o->extra_values))) {
        distill_set_error("%s: %d extra metadata entries without keys or values", path, o->n_extra);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

/* Refuses a folder at path and a missing or unwritable parent folder, before any work. */
static Status check_path(const char *path) {
    if (!path || !*path) {
        distill_set_error("ONNX export: expected an output file name, found an empty path");
        return DISTILL_ERR;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        distill_set_error("%s: expected a file name for the ONNX model, found a folder", path);
        return DISTILL_ERR;
    }
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    Status s = DISTILL_OK;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        distill_set_error("%s: the folder %s does not exist", path, dir);
        s = DISTILL_ERR;
    } else if (access(dir, W_OK | X_OK) != 0) {
        distill_set_error("%s: the folder %s is not writable: %s", path, dir, strerror(errno));
        s = DISTILL_ERR;
    }
    free(copy);
    return s;
}

/* Writes the graph to a temporary file beside path and commits it (io/atomic.h: fsync, rename,
 * fsync the folder). On failure nothing is left behind. */
static Status write_atomic(OnnxGraph *g, const OgModelInfo *info, const char *path) {
    AtomicFile af;
    if (io_atomic_begin(&af, path) != DISTILL_OK) return DISTILL_ERR;
    if (og_write(g, info, af.fp, path) != DISTILL_OK) {
        io_atomic_abort(&af);
        return DISTILL_ERR;
    }
    return io_atomic_commit(&af);
}

Status onnx_export(const Bert *m, const char *path, const OnnxExportOptions *opt_in) {
    OnnxExportOptions opt = opt_in ? *opt_in : onnx_export_defaults();
    int opset;
    if (check_path(path) || check_options(path, &opt, &opset)) return DISTILL_ERR;
    if (bert_config_validate(&m->cfg)) {
        distill_set_error("%s: the model's config is not valid: %s", path, distill_error());
        return DISTILL_ERR;
    }

    Ex x;
    memset(&x, 0, sizeof x);
    x.m = m;
    x.opset = opset;
    x.g = og_new("main_graph", opt.fp16 ? OG_FLOAT16 : OG_FLOAT);
    float *host = NULL;
    const ParamStore *ps = m->params;
    if (ps->device.type != DEV_CPU) {
        host = xmalloc(ps->total * sizeof *host);
        params_buffer_to_host(ps, ps->data, host, ps->total);
        x.host = host;
    }

    char outputs[64] = "";
    char *cfg_text = NULL;
    const char **keys = NULL, **values = NULL;
    Status s = DISTILL_ERR;
    if (build_graph(&x, outputs, sizeof outputs)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", distill_error());
        distill_set_error("%s: %s", path, msg);
        goto done;
    }

    if (!opt.config_json) cfg_text = config_json(&m->cfg);
    int n = 0, cap = 5 + opt.n_extra;
    keys = xcalloc((size_t)cap, sizeof *keys);
    values = xcalloc((size_t)cap, sizeof *values);
    keys[n] = "config", values[n++] = opt.config_json ? opt.config_json : cfg_text;
    if (opt.vocab_sha256) keys[n] = "vocab_sha256", values[n++] = opt.vocab_sha256;
    if (opt.source) keys[n] = "source", values[n++] = opt.source;
    keys[n] = "precision", values[n++] = opt.fp16 ? "fp16" : "fp32";
    keys[n] = "outputs", values[n++] = outputs;
    for (int i = 0; i < opt.n_extra; i++) keys[n] = opt.extra_keys[i], values[n++] = opt.extra_values[i];

    char doc[256];
    snprintf(doc, sizeof doc, "BERT (%d layers, hidden %d, %d heads) exported by distill; inputs "
             "input_ids, attention_mask, token_type_ids (int64 [batch, sequence]); outputs %s",
             m->cfg.num_hidden_layers, m->cfg.hidden_size, m->cfg.num_attention_heads, outputs);
    OgModelInfo info = {.ir_version = ONNX_IR_VERSION, .opset = opset,
                        .producer_name = ONNX_PRODUCER, .producer_version = ONNX_PRODUCER_VERSION,
                        .doc_string = doc, .n_meta = n, .meta_keys = keys, .meta_values = values};
    size_t bytes = og_packed_size(x.g, &info);
    if (bytes > PROTOBUF_MAX_BYTES) {
        distill_set_error("%s: the model needs %.2f GB, beyond protobuf's 2 GiB limit for one ONNX "
                          "file (external data is not supported)%s", path, (double)bytes / 1e9,
                          opt.fp16 ? "" : "; try --fp16");
        goto done;
    }
    s = write_atomic(x.g, &info, path);
done:
    og_free(x.g);
    free(host);
    free(cfg_text);
    free(keys);
    free(values);
    return s;
}
