/*
 * optim.h — AdamW as Hugging Face applies it, learning-rate schedules, global-norm clipping.
 *
 * AdamW follows torch.optim.AdamW (decoupled weight decay p -= lr*wd*p, bias-corrected moments),
 * with weight decay skipped for tensors the ParamStore marks no_decay (biases and LayerNorm weights,
 * Hugging Face's rule). Moments are one buffer each, laid out like the store's parameter buffer,
 * so a checkpoint saves them in one walk and the update is one kernel call per tensor.
 *
 * Schedules match transformers.get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup /
 * get_constant_schedule_with_warmup: the multiplier for optimizer step s (0-based) is lambda(s), so
 * with warmup the first update uses lr 0, exactly as the HF Trainer does.
 */
#ifndef DISTILL_OPTIM_H
#define DISTILL_OPTIM_H

#include "params.h"

typedef enum { SCHED_LINEAR = 0, SCHED_COSINE, SCHED_CONSTANT } SchedKind;

typedef struct AdamW {
    ParamStore *ps;
    float *m;       /* (ps->total) first moments, on the store's device */
    float *v;       /* (ps->total) second moments */
    long long t;    /* optimizer steps taken */
    float beta1, beta2, eps, weight_decay;
} AdamW;

AdamW *adamw_new(ParamStore *ps, float beta1, float beta2, float eps, float weight_decay);
/* One update of every tensor with learning rate lr; gradients are multiplied by grad_scale first. */
void adamw_step(AdamW *opt, float lr, float grad_scale);
void adamw_free(AdamW *opt);

/* sqrt of the sum of squared gradients over the stores (f64 accumulation). One readback per
 * store; a training step uses the two functions below instead. */
double grad_global_norm(ParamStore *const *stores, int n);
/* Queues each store's sum of squared gradients into parts[i] (n doubles in the stores' device
 * memory) without waiting; NULL and empty stores are skipped (parts[i] untouched). */
void grad_sumsq_to(ParamStore *const *stores, int n, double *parts);
/* The norm from those parts once they are on the host: grad_global_norm's value, bit for bit
 * (the same f64 sums added in the same order). */
double grad_norm_from_parts(ParamStore *const *stores, int n, const double *parts);
/* torch.nn.utils.clip_grad_norm_: scale = min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0. */
float clip_grad_scale(double norm, float max_norm);

/* The learning-rate multiplier lambda(step) for `total` optimizer steps and `warmup` of them. */
double schedule_lambda(SchedKind kind, long long step, long long warmup, long long total);
const char *schedule_name(SchedKind kind);

#endif
