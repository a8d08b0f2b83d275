/*
 * ops.h — the closed set of differentiable ops. Model, loss and trainer code build everything
 * from these; each op allocates its output in the context's arena, runs the device's forward
 * kernel and, when recording and any input requires a gradient, appends its backward to the tape.
 *
 * Shapes are given above each op. "(..., K)" means any leading dims (flattened to rows). All float
 * tensors are f32; index tensors (ids, labels, lengths) are i32. Scalars are tensors of shape [1].
 * Inputs must live on the context's device. Shape or dtype mismatches are programming errors and
 * abort with the op name and the shapes found.
 */
#ifndef DISTILL_OPS_H
#define DISTILL_OPS_H

#include "ctx.h"

/* ---- dense ---- */

/* w (V, H), ids i32 (...) -> (..., H). Ids out of [0, V) abort with the bad id. */
Tensor *op_embedding(Ctx *c, Tensor *w, Tensor *ids);
/* The same, but row padding_idx of w gets no gradient (torch's nn.Embedding(padding_idx), which
 * Hugging Face's word embedding is); -1 = none. */
Tensor *op_embedding_padded(Ctx *c, Tensor *w, Tensor *ids, int padding_idx);
/* x (..., in), w (out, in) as Hugging Face stores it, b (out) or NULL -> (..., out) = x w^T + b. */
Tensor *op_linear(Ctx *c, Tensor *x, Tensor *w, Tensor *b);
/* Fused linear + bias + exact GELU: gelu(x w^T + b) -> (..., out). */
Tensor *op_linear_gelu(Ctx *c, Tensor *x, Tensor *w, Tensor *b);
/* a (M, K) or (Bt, M, K) [(K, M) when ta], b (K, N) or (Bt, K, N) [(N, K) when tb] -> (Bt?, M, N).
 * When one operand is 2-D and the other 3-D the 2-D one is shared across the batch. */
Tensor *op_matmul(Ctx *c, Tensor *a, Tensor *b, bool ta, bool tb);

/* ---- elementwise ---- */

Tensor *op_add(Ctx *c, Tensor *a, Tensor *b);            /* same shape */
Tensor *op_scale(Ctx *c, Tensor *a, float s);
/* x (..., N), bias (N) -> x + bias */
Tensor *op_bias_add(Ctx *c, Tensor *x, Tensor *bias);
Tensor *op_gelu(Ctx *c, Tensor *x);                      /* exact: x * Phi(x) */
/* gelu(x + bias), bias (N) for x (..., N). */
Tensor *op_bias_gelu(Ctx *c, Tensor *x, Tensor *bias);
Tensor *op_tanh(Ctx *c, Tensor *x);
/* Inverted dropout with probability p; identity when !c->training or p == 0. */
Tensor *op_dropout(Ctx *c, Tensor *x, float p);

/* ---- normalisation ---- */

/* x (..., N), gamma/beta (N): layer norm with biased variance, as torch.nn.LayerNorm. */
Tensor *op_layernorm(Ctx *c, Tensor *x, Tensor *gamma, Tensor *beta, float eps);
/* Fused residual + layer norm: layernorm(x + residual). */
Tensor *op_add_layernorm(Ctx *c, Tensor *x, Tensor *residual, Tensor *gamma, Tensor *beta, float eps);

/* ---- softmax and attention ---- */

/* Row softmax over the last dim. */
Tensor *op_softmax(Ctx *c, Tensor *x);
/* x (B, H, R, C), mask_add (B, C) or NULL: scale*x + mask_add[b, c]. */
Tensor *op_scale_mask(Ctx *c, Tensor *x, Tensor *mask_add, float scale);
/* Fused softmax(scale*x + mask_add) for x (B, H, R, C). */
Tensor *op_scale_mask_softmax(Ctx *c, Tensor *x, Tensor *mask_add, float scale);
/* q, k (B, S, heads*d) -> raw scores (B, heads, S, S): q_h k_h^T per head (no scale, no mask).
 * Heads are read in place (no permute): head h is columns [h*d, (h+1)*d). */
Tensor *op_attention_qk(Ctx *c, Tensor *q, Tensor *k, int heads);
/* probs (B, heads, S, S), v (B, S, heads*d) -> context (B, S, heads*d), heads merged in place. */
Tensor *op_attention_pv(Ctx *c, Tensor *probs, Tensor *v, int heads);

/* ---- pooling and selection ---- */

/* x (B, S, H) -> (B, H) = x[:, pos, :]. */
Tensor *op_take_token(Ctx *c, Tensor *x, int pos);
/* x (B, S, H), lengths i32 (B) -> (B, H): mean over the first lengths[b] positions. */
Tensor *op_mean_pool(Ctx *c, Tensor *x, Tensor *lengths);

/* ---- losses: each returns a scalar tensor [1] ---- */

/* Hard-label cross-entropy, mean over rows: logits (N, C), labels i32 (N). */
Tensor *op_cross_entropy(Ctx *c, Tensor *logits, Tensor *labels);
/* Soft-target cross-entropy at temperature T, mean over rows:
 * -sum softmax(t/T) * log softmax(s/T). Teacher logits t get no gradient. */
Tensor *op_soft_cross_entropy(Ctx *c, Tensor *student_logits, Tensor *teacher_logits, float T);
/* KL(softmax(t/T) || softmax(s/T)), mean over rows ("batchmean"); no T^2 factor. */
Tensor *op_kl_logits(Ctx *c, Tensor *student_logits, Tensor *teacher_logits, float T);
/* Mean squared error over all elements; b may require grad too. */
Tensor *op_mse(Ctx *c, Tensor *a, Tensor *b);
/* MSE where entries <= ignore_below (either side) count as 0 on both sides (TinyBERT's
 * masked attention scores use -1e2 as the threshold). */
Tensor *op_mse_ignore(Ctx *c, Tensor *a, Tensor *b, float ignore_below);
/* mean over rows of 1 - cos(a_r, b_r); a, b (..., H). */
Tensor *op_cosine_loss(Ctx *c, Tensor *a, Tensor *b);
/* KL between probability rows (t || s), mean over rows; s (..., C), t (..., C) no gradient. */
Tensor *op_kl_probs(Ctx *c, Tensor *s, Tensor *t);

/* ---- helpers (not differentiable) ---- */

/* Copies the scalar's value to the host. */
float op_item(Tensor *scalar);

#endif
