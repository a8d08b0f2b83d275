/* optim.c — AdamW, schedules and clipping (see optim.h). */
#include "optim.h"

#include <math.h>
#include <stdlib.h>

AdamW *adamw_new(ParamStore *ps, float beta1, float beta2, float eps, float weight_decay) {
    DCHECK(ps->finalized);
    AdamW *o = xcalloc(1, sizeof *o);
    o->ps = ps;
    o->m = params_buffer_new(ps);
    o->v = params_buffer_new(ps);
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    return o;
}

void adamw_step(AdamW *o, float lr, float grad_scale) {
    ParamStore *ps = o->ps;
    DCHECK(ps->bf16 == NULL); /* a store with a bf16 copy is frozen (params_make_bf16) */
    o->t++;
    float bc1 = 1.0f - powf(o->beta1, (float)o->t);
    float bc2 = 1.0f - powf(o->beta2, (float)o->t);
    for (int i = 0; i < ps->n; i++) {
        size_t off = ps->offsets[i], n = ps->tensors[i]->numel;
        float wd = ps->no_decay[i] ? 0.0f : o->weight_decay;
        ps->be->adamw(ps->data + off, o->m + off, o->v + off, ps->grad + off, n, lr, o->beta1,
                      o->beta2, o->eps, wd, bc1, bc2, grad_scale);
    }
}

void adamw_free(AdamW *o) {
    if (!o) return;
    params_buffer_free(o->ps, o->m);
    params_buffer_free(o->ps, o->v);
    free(o);
}

double grad_global_norm(ParamStore *const *stores, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++)
        if (stores[i] && stores[i]->total) {
            backend_count_readback(); /* sumsq returns its sum on the host */
            s += stores[i]->be->sumsq(stores[i]->grad, stores[i]->total);
        }
    return sqrt(s);
}

void grad_sumsq_to(ParamStore *const *stores, int n, double *parts) {
    for (int i = 0; i < n; i++)
        if (stores[i] && stores[i]->total) stores[i]->be->sumsq_to(parts + i, stores[i]->grad, stores[i]->total);
}

double grad_norm_from_parts(ParamStore *const *stores, int n, const double *parts) {
    double s = 0.0;
    for (int i = 0; i < n; i++)
        if (stores[i] && stores[i]->total) s += parts[i];
    return sqrt(s);
}

float clip_grad_scale(double norm, float max_norm) {
    if (max_norm <= 0.0f) return 1.0f;
    double coef = (double)max_norm / (norm + 1e-6);
    return coef < 1.0 ? (float)coef : 1.0f;
}

double schedule_lambda(SchedKind kind, long long step, long long warmup, long long total) {
    if (step < warmup) return (double)step / (double)(warmup > 1 ? warmup : 1);
    if (kind == SCHED_CONSTANT) return 1.0;
    long long span = total - warmup;
    if (span < 1) span = 1;
    double progress = (double)(step - warmup) / (double)span;
    if (kind == SCHED_LINEAR) return progress >= 1.0 ? 0.0 : 1.0 - progress;
    /* cosine with half a cycle */
    double v = 0.5 * (1.0 + cos(M_PI * progress));
    return v < 0.0 ? 0.0 : v;
}

const char *schedule_name(SchedKind kind) {
    switch (kind) {
    case SCHED_LINEAR: return "linear";
    case SCHED_COSINE: return "cosine";
    case SCHED_CONSTANT: return "constant";
    }
    return "?";
}
