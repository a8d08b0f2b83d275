/*
 * metrics.h — evaluation metrics over a whole split, accumulated batch by batch.
 *
 * Classification: accuracy; F1 of the positive class (label 1) for binary tasks, as GLUE reports
 * it, and macro-F1 for more than two classes (the unweighted mean of the per-class F1 over the
 * classes that occur in the gold labels or the predictions: sklearn.metrics.f1_score(average=
 * "macro")); per class, its support (gold count), predicted count, true positives, precision,
 * recall and F1; and the Matthews correlation coefficient (the multi-class form
 * sklearn.metrics.matthews_corrcoef uses, which reduces to the binary formula). Regression: MSE,
 * Pearson and Spearman correlations (GLUE STS-B). Every metric is defined for degenerate inputs
 * (no positives, constant predictions): the undefined ratios are reported as 0, as sklearn does
 * with zero_division=0.
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

/* At least the most classes a model can have (BERT_MAX_LABELS, checked in metrics.c). */
#define METRICS_MAX_CLASSES 64

/* One class of a classification evaluation (sklearn's precision_recall_fscore_support). */
typedef struct ClassMetrics {
    long long support, predicted, tp;   /* gold rows of the class, rows predicted as it, both */
    double precision, recall, f1;       /* tp/predicted, tp/support, 2tp/(support+predicted); 0 when 0/0 */
} ClassMetrics;

typedef struct MetricValues {
    /* classification; f1 is the binary F1 of class 1 for two classes and macro_f1 for more, so
     * that a run's `metric: f1` means macro-F1 on a multi-class task */
    double loss, accuracy, f1, mcc, macro_f1;
    double mse, pearson, spearman;      /* regression */
    long long n;
    int num_classes;                    /* 0 for regression */
    ClassMetrics per_class[METRICS_MAX_CLASSES]; /* [0, num_classes) */
} MetricValues;

/* The name of MetricValues.f1 for a task of `num_classes` classes: "f1" (binary) or "macro_f1". */
const char *metrics_f1_name(int num_classes);

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
