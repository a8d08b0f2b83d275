/* metrics.c — accuracy, F1 (binary or macro), per-class counts, MCC, Pearson, Spearman (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/common.h"
#include "../models/bert.h"

_Static_assert(METRICS_MAX_CLASSES >= BERT_MAX_LABELS, "MetricValues.per_class must hold every class of a model");

const char *metrics_f1_name(int num_classes) { return num_classes > 2 ? "macro_f1" : "f1"; }

void metrics_init(Metrics *m, int num_classes) {
    DCHECK(num_classes <= METRICS_MAX_CLASSES);
    memset(m, 0, sizeof *m);
    m->num_classes = num_classes;
    if (num_classes > 0) m->confusion = xcalloc((size_t)num_classes * num_classes, sizeof(long long));
}

void metrics_free(Metrics *m) {
    free(m->confusion);
    free(m->pred);
    free(m->gold);
    memset(m, 0, sizeof *m);
}

void metrics_add_class(Metrics *m, const float *logits, const int *labels, int rows, double batch_loss) {
    int C = m->num_classes;
    for (int r = 0; r < rows; r++) {
        const float *z = logits + (size_t)r * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (z[c] > z[best]) best = c;
        DCHECK(labels[r] >= 0 && labels[r] < C);
        m->confusion[(size_t)labels[r] * C + best]++;
    }
    m->n += rows;
    m->loss_sum += batch_loss * rows;
}

void metrics_add_regression(Metrics *m, const float *pred, const float *gold, int rows, double batch_loss) {
    if (m->n + rows > (long long)m->cap) {
        m->cap = (size_t)(m->n + rows) * 2;
        m->pred = xrealloc(m->pred, m->cap * sizeof(double));
        m->gold = xrealloc(m->gold, m->cap * sizeof(double));
    }
    for (int r = 0; r < rows; r++) {
        m->pred[m->n + r] = pred[r];
        m->gold[m->n + r] = gold[r];
    }
    m->n += rows;
    m->loss_sum += batch_loss * rows;
}

static double pearson(const double *x, const double *y, long long n) {
    if (n < 2) return 0.0;
    double mx = 0, my = 0;
    for (long long i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (long long i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return (sxx > 0 && syy > 0) ? sxy / sqrt(sxx * syy) : 0.0;
}

static const double *g_sort_keys;
static int cmp_idx(const void *a, const void *b) {
    double x = g_sort_keys[*(const long long *)a], y = g_sort_keys[*(const long long *)b];
    return (x > y) - (x < y);
}

/* Average ranks (ties share the mean rank), as scipy.stats.rankdata. */
static double *ranks(const double *x, long long n) {
    long long *idx = xmalloc((size_t)n * sizeof *idx);
    double *r = xmalloc((size_t)n * sizeof *r);
    for (long long i = 0; i < n; i++) idx[i] = i;
    g_sort_keys = x;
    qsort(idx, (size_t)n, sizeof *idx, cmp_idx);
    for (long long i = 0; i < n;) {
        long long j = i;
        while (j + 1 < n && x[idx[j + 1]] == x[idx[i]]) j++;
        double avg = 0.5 * (double)(i + j) + 1.0;
        for (long long k = i; k <= j; k++) r[idx[k]] = avg;
        i = j + 1;
    }
    free(idx);
    return r;
}

MetricValues metrics_compute(const Metrics *m) {
    MetricValues v;
    memset(&v, 0, sizeof v);
    v.n = m->n;
    if (m->n == 0) return v;
    v.loss = m->loss_sum / (double)m->n;
    if (m->num_classes == 0) {
        double se = 0;
        for (long long i = 0; i < m->n; i++) se += (m->pred[i] - m->gold[i]) * (m->pred[i] - m->gold[i]);
        v.mse = se / (double)m->n;
        v.pearson = pearson(m->pred, m->gold, m->n);
        double *rp = ranks(m->pred, m->n), *rg = ranks(m->gold, m->n);
        v.spearman = pearson(rp, rg, m->n);
        free(rp);
        free(rg);
        return v;
    }
    int C = m->num_classes;
    const long long *cm = m->confusion;
    long long correct = 0;
    for (int c = 0; c < C; c++) correct += cm[(size_t)c * C + c];
    v.accuracy = (double)correct / (double)m->n;
    v.num_classes = C;
    double f1_sum = 0;
    int present = 0; /* classes in the gold labels or the predictions: sklearn's default labels */
    for (int k = 0; k < C; k++) {
        ClassMetrics *pc = &v.per_class[k];
        pc->tp = cm[(size_t)k * C + k];
        for (int j = 0; j < C; j++) {
            pc->support += cm[(size_t)k * C + j];
            pc->predicted += cm[(size_t)j * C + k];
        }
        pc->precision = pc->predicted ? (double)pc->tp / (double)pc->predicted : 0.0;
        pc->recall = pc->support ? (double)pc->tp / (double)pc->support : 0.0;
        long long den = pc->support + pc->predicted;
        pc->f1 = den ? 2.0 * (double)pc->tp / (double)den : 0.0;
        if (den) {
            f1_sum += pc->f1;
            present++;
        }
    }
    v.macro_f1 = present ? f1_sum / present : 0.0;
    /* binary: F1 of the positive class 1 (GLUE); more classes: macro-F1 */
    v.f1 = C == 2 ? v.per_class[1].f1 : v.macro_f1;
    /* sklearn's multi-class MCC: (c*s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)) */
    double s = (double)m->n, cc = (double)correct, pt = 0, pp = 0, tt = 0;
    for (int k = 0; k < C; k++) {
        double pk = 0, tk = 0;
        for (int g = 0; g < C; g++) pk += (double)cm[(size_t)g * C + k];
        for (int p = 0; p < C; p++) tk += (double)cm[(size_t)k * C + p];
        pt += pk * tk;
        pp += pk * pk;
        tt += tk * tk;
    }
    double den = sqrt((s * s - pp) * (s * s - tt));
    v.mcc = den > 0 ? (cc * s - pt) / den : 0.0;
    return v;
}

bool metrics_pick(const MetricValues *v, const char *name, double *value, bool *higher_better) {
    *higher_better = true;
    if (!strcmp(name, "accuracy")) *value = v->accuracy;
    else if (!strcmp(name, "f1")) *value = v->f1;
    else if (!strcmp(name, "mcc")) *value = v->mcc;
    else if (!strcmp(name, "pearson")) *value = v->pearson;
    else if (!strcmp(name, "spearman")) *value = v->spearman;
    else if (!strcmp(name, "loss")) { *value = v->loss; *higher_better = false; }
    else if (!strcmp(name, "mse")) { *value = v->mse; *higher_better = false; }
    else return false;
    return true;
}
