/*
 * metrics.h — evaluation metrics over a whole split, accumulated batch by batch.
 *
 * Classification: accuracy, F1 of the positive class (label 1) for binary tasks, and the Matthews
 * correlation coefficient (the multi-class form sklearn.metrics.matthews_corrcoef uses, which
 * reduces to the binary formula). Regression: MSE, Pearson and Spearman correlations (GLUE STS-B).
 * Every metric is defined for degenerate inputs (no positives, constant predictions): the
 * undefined ratios are reported as 0, as sklearn does.
 */
#ifndef DISTILL_METRICS_H
#define DISTILL_METRICS_H

#include <stddef.h>
#include <stdbool.h>

typedef struct Metrics {
    int num_classes;    /* 0 for regression */
    long long n;
    double loss_sum;    /* sum of per-batch mean loss * batch rows */
    long long *confusion; /* (C, C): confusion[gold * C + pred] */
    /* regression samples */
    double *pred, *gold;
    size_t cap;
} Metrics;

typedef struct MetricValues {
    double loss, accuracy, f1, mcc;     /* classification */
    double mse, pearson, spearman;      /* regression */
    long long n;
} MetricValues;

void metrics_init(Metrics *m, int num_classes);
void metrics_free(Metrics *m);
/* logits (rows x C) row-major on the host; labels (rows). batch_loss is the batch's mean loss. */
void metrics_add_class(Metrics *m, const float *logits, const int *labels, int rows, double batch_loss);
void metrics_add_regression(Metrics *m, const float *pred, const float *gold, int rows, double batch_loss);
MetricValues metrics_compute(const Metrics *m);
/* Value of a named metric (accuracy|f1|mcc|loss|pearson|spearman|mse); higher-is-better is
 * reported through *higher_better. Returns false for an unknown name. */
bool metrics_pick(const MetricValues *v, const char *name, double *value, bool *higher_better);

#endif
