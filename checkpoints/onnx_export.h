/*
 * onnx_export.h — a BERT model (models/bert.h) as an ONNX inference graph (DESIGN §7).
 *
 * The graph is the one Hugging Face's exporter (torch.onnx on BertForSequenceClassification, eval
 * mode) produces, so ONNX Runtime's transformer optimizer (optimize_model(model_type="bert"))
 * fuses its embedding LayerNorm, attention blocks, skip LayerNorms and GELUs:
 *
 *   inputs   input_ids, attention_mask, token_type_ids   int64 [batch, sequence]
 *   outputs  logits                                      float32 [batch, num_labels]
 *            (a model without classifier, num_labels 0: last_hidden_state float32
 *            [batch, sequence, hidden] and, with a pooler, pooler_output float32 [batch, hidden])
 *
 *   embeddings  Gather(word) + Gather(token type) + Gather(position ids = Slice of the constant
 *               bert.embeddings.position_ids [1, P] to the input's length), LayerNorm
 *   mask        (1 - Cast(attention_mask[:, None, None, :])) * float-min, added to the scores
 *               (float-min = torch.finfo(float32).min, as Hugging Face and the engine use)
 *   each layer  MatMul + Add for Q, K, V (weights stored transposed, (in, out), as torch exports
 *               Linear), Reshape [0, 0, heads, head_size] + Transpose, MatMul(Q, K^T) / sqrt(d)
 *               + mask, Softmax, MatMul(., V), Transpose + Reshape, output dense, residual Add,
 *               LayerNorm; FFN dense, exact GELU as x * (erf(x / sqrt 2) + 1) * 0.5, dense,
 *               residual Add, LayerNorm
 *   head        Gather of position 0, Gemm + Tanh (pooler), Gemm (classifier), both Gemm with
 *               transB = 1 on the (out, in) weights
 *
 * Operators: standard ONNX (domain ""), opset 17 by default (LayerNormalization); opsets 14-16 are
 * accepted and spell LayerNorm out as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add (the form
 * older exporters produce, which the optimizer also fuses). IR version 8 (onnx 1.12's onnx.proto).
 * Every parameter is an initializer (no external data): a model whose file would exceed
 * protobuf's 2 GiB limit is refused. Initializer names are Hugging Face's parameter names
 * (transposed MatMul weights get a ".T" suffix).
 *
 * fp16: every initializer and every activation is float16 (LayerNormalization computes its
 * statistics in float32, stash_type 1; the mask uses float16's minimum, -65504); inputs stay int64
 * and the outputs are cast to float32 at the end, so callers see the same interface. Needs
 * opset 17.
 *
 * Metadata (ModelProto.metadata_props): "config" (the config JSON: opt->config_json, else the
 * model's Hugging Face config.json fields), "vocab_sha256" (when given), "source" (when given),
 * "precision" (fp32|fp16), "outputs" (the output names, comma-separated), then opt's extras.
 * producer_name "distill".
 *
 * Promises: the file is written to "<path>.tmp-<pid>-<n>" (io/atomic.h), fsynced and renamed
 * into place, the folder fsynced; on any error nothing is left at path (an existing file there
 * is untouched) and no temporary file remains. Errors (DISTILL_ERR, distill_error()) name the path and say what was expected and what
 * was found: an unwritable or missing folder, a folder at path, an opset out of range, fp16 below
 * opset 17, a weight that does not fit float16, a model too large for one protobuf.
 */
#ifndef DISTILL_ONNX_EXPORT_H
#define DISTILL_ONNX_EXPORT_H

#include "../models/bert.h"

#define ONNX_EXPORT_DEFAULT_OPSET 17
#define ONNX_EXPORT_MIN_OPSET 14
#define ONNX_EXPORT_MAX_OPSET 17 /* the newest opset of onnx.proto 1.12 (IR version 8) */

typedef struct OnnxExportOptions {
    int opset;                 /* 14..17; 0 = ONNX_EXPORT_DEFAULT_OPSET */
    bool fp16;                 /* float16 weights and compute (needs opset 17) */
    const char *config_json;   /* metadata "config"; NULL = built from m->cfg */
    const char *vocab_sha256;  /* metadata "vocab_sha256" (64 hex digits); NULL = not recorded */
    const char *source;        /* metadata "source" (what was exported); NULL = not recorded */
    int n_extra;               /* further metadata_props */
    const char *const *extra_keys;   /* (n_extra) */
    const char *const *extra_values; /* (n_extra) */
} OnnxExportOptions;

/* opset 0 (default), fp32, no metadata beyond the model's config. */
OnnxExportOptions onnx_export_defaults(void);

/* Writes m (on any device; parameters are read through the backend) to path. opt may be NULL
 * (defaults). See the promises above. */
Status onnx_export(const Bert *m, const char *path, const OnnxExportOptions *opt);

#endif
