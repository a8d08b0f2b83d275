/*
 * loss_forward.c — the loss terms of DESIGN §4 on one batch, built from engine ops (see losses.h
 * for each reduction). Teacher tensors are detached before any op sees them, so no gradient ever
 * flows into the teacher whatever its tensors' flags say.
 *
 * Promise: loss_set_forward either returns the total (a scalar [1] on the tape) or NULL with an
 * error naming the term and the missing/malformed input; layer indices and widths were validated
 * when the set was built.
 */
#include "loss_set_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/ops.h"

static Tensor *term_fail(const LossTerm *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static Tensor *term_fail(const LossTerm *t, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    distill_set_error("loss '%s' (%s): %s", t->spec.name, loss_type_name(t->spec.type), msg);
    return NULL;
}

/* A view of t that takes no part in autograd (same data, no grad, requires_grad false). */
static Tensor *detach(Ctx *c, Tensor *t) {
    if (!t->requires_grad && t->grad == NULL) return t;
    Tensor *v = arena_alloc(c->meta, sizeof *v);
    *v = *t;
    v->requires_grad = false;
    v->grad = NULL;
    v->name = NULL;
    return v;
}

static Tensor *sum_into(Ctx *c, Tensor *acc, Tensor *x) { return acc ? op_add(c, acc, x) : x; }

static bool same_shape_or_fail(const LossTerm *t, const char *what, const Tensor *s,
                               const Tensor *te) {
    if (tensor_same_shape(s, te)) return true;
    char a[64], b[64];
    term_fail(t, "%s: student %s and teacher %s must have the same shape", what,
              tensor_shape_str(s, a, sizeof a), tensor_shape_str(te, b, sizeof b));
    return false;
}

/* Hidden state idx (0 = embeddings) of a forward; the last one may come as `sequence`. */
static Tensor *hidden_at(const BertOutput *o, int idx, int last) {
    if (o->hidden && o->hidden[idx]) return o->hidden[idx];
    if (idx == last && o->sequence) return o->sequence;
    return NULL;
}

/* ---- logits and labels ---- */

static Tensor *logits_term(Ctx *c, const LossTerm *t, const BertOutput *s, const BertOutput *te,
                           long step, float *factor) {
    if (!s->logits) return term_fail(t, "the student forward returned no logits");
    if (!te || !te->logits) return term_fail(t, "no teacher logits were given");
    Tensor *zt = detach(c, te->logits);
    if (!same_shape_or_fail(t, "logits", s->logits, zt)) return NULL;
    float T = loss_spec_temperature(&t->spec, step);
    if (t->spec.type == LOSS_LOGITS_KD) {
        *factor = T * T; /* DistilBERT: KLDivLoss(batchmean) * T^2 */
        return op_kl_logits(c, s->logits, zt, T);
    }
    return op_soft_cross_entropy(c, s->logits, zt, T);
}

static Tensor *hard_ce_term(Ctx *c, const LossTerm *t, const BertOutput *s, Tensor *labels) {
    if (!s->logits) return term_fail(t, "the student forward returned no logits");
    int B = s->logits->shape[0], C = s->logits->shape[1];
    if (!labels) return term_fail(t, "needs class labels, but the batch has none");
    if (labels->dtype != DT_I32 || labels->numel != (size_t)B)
        return term_fail(t, "expected class labels i32 [%d], found %s with %zu values", B,
                         dtype_name(labels->dtype), labels->numel);
    int32_t *own; /* the labels' host copy (ctx_from_host keeps one): no readback */
    const int32_t *host = tensor_i32_host(labels, &own);
    for (int b = 0; b < B; b++)
        if (host[b] < 0 || host[b] >= C) {
            int bad = host[b];
            free(own);
            return term_fail(t, "label %d of row %d is out of range: expected 0..%d", bad, b, C - 1);
        }
    free(own);
    return op_cross_entropy(c, s->logits, detach(c, labels));
}

static Tensor *regression_term(Ctx *c, const LossTerm *t, const BertOutput *s, Tensor *labels) {
    if (!s->logits) return term_fail(t, "the student forward returned no logits");
    int B = s->logits->shape[0], C = s->logits->shape[1];
    if (!labels) return term_fail(t, "needs regression targets, but the batch has none");
    if (labels->dtype != DT_F32 || labels->numel != (size_t)B)
        return term_fail(t, "expected regression targets f32 [%d], found %s with %zu values", B,
                         dtype_name(labels->dtype), labels->numel);
    int col_shape[2] = {B, 1};
    Tensor *y = ctx_view(c, detach(c, labels), 2, col_shape);  /* (B, 1) */
    Tensor *z = s->logits;                                     /* (B, 1): logits[:, 0] */
    if (C != 1) {
        int as_tokens[3] = {B, C, 1};
        z = op_take_token(c, ctx_view(c, s->logits, 3, as_tokens), 0);
    }
    return op_mse(c, z, y);
}

/* ---- hidden states ---- */

static Tensor *project(Ctx *c, const LossTerm *t, int p, Tensor *x) {
    return t->proj_w[p] ? op_linear(c, x, t->proj_w[p], t->proj_b[p]) : x;
}

static Tensor *hidden_mse_term(Ctx *c, const LossSet *ls, const LossTerm *t, const BertOutput *s,
                               const BertOutput *te) {
    Tensor *acc = NULL;
    for (int p = 0; p < t->n_pairs; p++) {
        int a = t->pairs[p].student, b = t->pairs[p].teacher;
        Tensor *hs = hidden_at(s, a, ls->student_layers);
        Tensor *ht = hidden_at(te, b, ls->teachers[t->spec.teacher].layers);
        if (!hs) return term_fail(t, "the student forward did not return hidden state %d", a);
        if (!ht) return term_fail(t, "the teacher forward did not return hidden state %d", b);
        Tensor *x = project(c, t, p, hs);  /* (B, S, H_t) */
        ht = detach(c, ht);                /* (B, S, H_t) */
        char what[64];
        snprintf(what, sizeof what, "hidden states %d->%d", a, b);
        if (!same_shape_or_fail(t, what, x, ht)) return NULL;
        acc = sum_into(c, acc, op_mse(c, x, ht));
    }
    return acc;
}

/* The valid token rows of h (B, S, H) as (n_valid, H), via op_embedding used as a row gather
 * (its backward scatters the gradient back into h). ids (n_valid) are b*S + s for s < length. */
static Tensor *valid_rows(Ctx *c, Tensor *h, Tensor *ids) {
    int flat[2] = {h->shape[0] * h->shape[1], h->shape[2]};
    return op_embedding(c, ctx_view(c, h, 2, flat), ids);
}

static Tensor *hidden_cos_term(Ctx *c, const LossSet *ls, const LossTerm *t, const BertOutput *s,
                               const BertOutput *te, const int32_t *lengths) {
    Tensor *acc = NULL;
    for (int p = 0; p < t->n_pairs; p++) {
        int a = t->pairs[p].student, b = t->pairs[p].teacher;
        Tensor *hs = hidden_at(s, a, ls->student_layers);
        Tensor *ht = hidden_at(te, b, ls->teachers[t->spec.teacher].layers);
        if (!hs) return term_fail(t, "the student forward did not return hidden state %d", a);
        if (!ht) return term_fail(t, "the teacher forward did not return hidden state %d", b);
        ht = detach(c, ht);
        if (hs->ndim != 3 || ht->ndim != 3 || hs->shape[0] != ht->shape[0] ||
            hs->shape[1] != ht->shape[1]) {
            char x[64], y[64];
            return term_fail(t, "hidden states %d->%d: expected (B, S, H) on both sides with the "
                             "same B and S, found student %s, teacher %s", a, b,
                             tensor_shape_str(hs, x, sizeof x), tensor_shape_str(ht, y, sizeof y));
        }
        if (!lengths) return term_fail(t, "needs the batch's token lengths, found none");
        int B = hs->shape[0], S = hs->shape[1];
        int32_t *ids = xmalloc((size_t)B * S * sizeof *ids);
        int n = 0;
        for (int r = 0; r < B; r++) {
            if (lengths[r] < 0 || lengths[r] > S) {
                int bad = lengths[r];
                free(ids);
                return term_fail(t, "length %d of row %d is out of range: expected 0..%d", bad, r, S);
            }
            for (int k = 0; k < lengths[r]; k++) ids[n++] = r * S + k;
        }
        if (n == 0) {
            free(ids);
            return term_fail(t, "the batch has no valid tokens (every length is 0)");
        }
        Tensor *idt = ctx_from_host(c, DT_I32, 1, &n, ids);  /* (n) */
        free(ids);
        Tensor *x = project(c, t, p, valid_rows(c, hs, idt)); /* (n, H_t) */
        Tensor *y = valid_rows(c, ht, idt);                    /* (n, H_t) */
        char what[64];
        snprintf(what, sizeof what, "hidden states %d->%d", a, b);
        if (!same_shape_or_fail(t, what, x, y)) return NULL;
        acc = sum_into(c, acc, op_cosine_loss(c, x, y));
    }
    return acc;
}

/* ---- attention ---- */

static Tensor *attention_term(Ctx *c, const LossTerm *t, const BertOutput *s,
                              const BertOutput *te) {
    bool scores = t->spec.target == LOSS_TARGET_SCORES;
    const char *kind = scores ? "attention scores" : "attention probabilities";
    Tensor *acc = NULL;
    for (int p = 0; p < t->n_pairs; p++) {
        int a = t->pairs[p].student, b = t->pairs[p].teacher; /* 1-based encoder layers */
        Tensor **sv = scores ? s->scores : s->probs;
        Tensor **tv = scores ? te->scores : te->probs;
        Tensor *as = sv ? sv[a - 1] : NULL;  /* (B, h, S, S) */
        Tensor *at = tv ? tv[b - 1] : NULL;  /* (B, h, S, S) */
        if (!as) return term_fail(t, "the student forward did not return the %s of layer %d", kind, a);
        if (!at) return term_fail(t, "the teacher forward did not return the %s of layer %d", kind, b);
        at = detach(c, at);
        char what[64];
        snprintf(what, sizeof what, "%s %d->%d", kind, a, b);
        if (!same_shape_or_fail(t, what, as, at)) return NULL;
        Tensor *v;
        if (t->spec.type == LOSS_ATTENTION_KL) v = op_kl_probs(c, as, at);
        else if (scores) v = op_mse_ignore(c, as, at, LOSS_ATTENTION_IGNORE_BELOW);
        else v = op_mse(c, as, at);
        acc = sum_into(c, acc, v);
    }
    return acc;
}

/* ---- the set ---- */

/* LOSS_MIX_PROBS: T log(sum_k w_k softmax(z_k/T)) (B, C) from the teachers' logits, on the host in
 * double (log-sum-exp per teacher and row, so large logits neither overflow nor underflow). It
 * reads each teacher's logits back (a readback per teacher and logits term per micro-step): only
 * `teacher_logits: probs` with several teachers comes here; every other run keeps to the step's
 * one readback (train/trainer.c). */
static Tensor *mixed_probs_logits(Ctx *c, const LossSet *ls, const LossTerm *t, const BertOutput *teachers,
                                  float T) {
    const Tensor *shape = NULL;
    for (int k = 0; k < ls->n_teachers && !shape; k++)
        if (ls->mix_weights[k] > 0) shape = teachers[k].logits;
    if (!shape) return term_fail(t, "no teacher logits were given");
    int B = shape->shape[0], C = shape->shape[1];
    double *acc = xcalloc((size_t)B * C, sizeof(double));
    float *z = xmalloc((size_t)B * C * sizeof(float));
    for (int k = 0; k < ls->n_teachers; k++) {
        if (ls->mix_weights[k] <= 0) continue;
        const Tensor *zk = teachers[k].logits;
        if (!zk || zk->ndim != 2 || zk->shape[0] != B || zk->shape[1] != C) {
            free(acc);
            free(z);
            return term_fail(t, "teacher %d's logits are missing or not (%d, %d)", k + 1, B, C);
        }
        tensor_to_host(zk, z);
        for (int r = 0; r < B; r++) {
            const float *row = z + (size_t)r * C;
            double mx = row[0] / (double)T, se = 0;
            for (int j = 1; j < C; j++) mx = row[j] / (double)T > mx ? row[j] / (double)T : mx;
            for (int j = 0; j < C; j++) se += exp(row[j] / (double)T - mx);
            for (int j = 0; j < C; j++)
                acc[(size_t)r * C + j] += ls->mix_weights[k] * exp(row[j] / (double)T - mx) / se;
        }
    }
    for (size_t i = 0; i < (size_t)B * C; i++) z[i] = (float)(T * log(acc[i]));
    int s2[2] = {B, C};
    Tensor *out = ctx_from_host(c, DT_F32, 2, s2, z);
    free(acc);
    free(z);
    return out;
}

Tensor *loss_set_forward(Ctx *c, LossSet *ls, const BertOutput *student, const BertOutput *teacher,
                         Tensor *labels, const int32_t *lengths_host, long step, Tensor **terms) {
    DCHECK(ls->n_teachers <= 1);
    return loss_set_forward_teachers(c, ls, student, teacher, teacher ? 1 : 0, teacher ? teacher->logits : NULL,
                                     labels, lengths_host, step, terms);
}

Tensor *loss_set_forward_teachers(Ctx *c, LossSet *ls, const BertOutput *student,
                                  const BertOutput *teachers, int n_teachers, Tensor *teacher_logits,
                                  Tensor *labels, const int32_t *lengths_host, long step,
                                  Tensor **terms) {
    DCHECK(c != NULL && ls != NULL && student != NULL);
    Tensor *total = NULL;
    BertOutput combined; /* what the logits terms read */
    memset(&combined, 0, sizeof combined);
    combined.logits = teacher_logits;
    for (int i = 0; i < ls->n; i++) {
        const LossTerm *t = &ls->terms[i];
        LossType ty = t->spec.type;
        if (loss_type_info(ty)->needs_teacher && (!teachers || n_teachers < 1))
            return term_fail(t, "needs the teacher's outputs, found none");
        if (loss_type_info(ty)->needs_teacher && t->spec.teacher >= n_teachers)
            return term_fail(t, "reads teacher %d, but the outputs of %d teachers were given", t->spec.teacher + 1,
                             n_teachers);
        const BertOutput *teacher = loss_type_info(ty)->needs_teacher ? &teachers[t->spec.teacher] : NULL;
        float factor = 1.0f;
        Tensor *v = NULL;
        if (loss_is_logits(ty) && ls->mix == LOSS_MIX_PROBS && n_teachers > 1) {
            combined.logits = mixed_probs_logits(c, ls, t, teachers, loss_spec_temperature(&t->spec, step));
            if (!combined.logits) return NULL;
        }
        switch (ty) {
        case LOSS_LOGITS_KD:
        case LOSS_LOGITS_CE: v = logits_term(c, t, student, &combined, step, &factor); break;
        case LOSS_HARD_CE: v = hard_ce_term(c, t, student, labels); break;
        case LOSS_MSE: v = regression_term(c, t, student, labels); break;
        case LOSS_HIDDEN_MSE:
        case LOSS_EMBEDDING_MSE: v = hidden_mse_term(c, ls, t, student, teacher); break;
        case LOSS_ATTENTION_MSE:
        case LOSS_ATTENTION_KL: v = attention_term(c, t, student, teacher); break;
        case LOSS_HIDDEN_COS: v = hidden_cos_term(c, ls, t, student, teacher, lengths_host); break;
        case LOSS_TYPE_COUNT: DCHECK(!"unreachable"); break;
        }
        if (!v) return NULL;
        float scale = factor * t->spec.weight;
        if (scale != 1.0f) v = op_scale(c, v, scale);  /* (1) weight * term */
        if (terms) terms[i] = v;
        total = sum_into(c, total, v);
    }
    return total;
}
