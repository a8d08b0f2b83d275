/*
 * progress.h — what a run shows and records: a one-line progress bar on a TTY (step/total, epoch,
 * each loss term, learning rate, tokens/s, ETA), plain log lines otherwise, and one JSON object per
 * logged step or evaluation in metrics.jsonl (flushed per line, so a crash loses at most a line).
 */
#ifndef DISTILL_PROGRESS_H
#define DISTILL_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include "metrics.h"

typedef struct Progress {
    bool tty;            /* stderr is a terminal: redraw one line */
    long long total;     /* optimizer steps planned */
    double t_start;      /* wall clock at start (or resume) */
    long long step_start;/* step at start (or resume), for the ETA */
    FILE *jsonl;         /* metrics.jsonl, or NULL */
    char *jsonl_path;    /* its path, for error messages */
    int jsonl_errno;     /* the first failed write's errno, 0 while all is well */
    bool line_open;      /* a bar is drawn and not yet ended by a newline */
    const char *stage;   /* staged runs: the stage's name, written as "stage" in metrics.jsonl; NULL otherwise */
} Progress;

/* Opens (appends to) metrics_path when non-NULL. `truncate_at` >= 0 cuts the file to that many
 * bytes first (resume: drop lines logged after the checkpoint). */
bool progress_open(Progress *p, const char *metrics_path, long long total, long long step_start,
                   long long truncate_at);
/* Byte offset of metrics.jsonl now (saved in checkpoints). */
long long progress_offset(const Progress *p);
/* False (with an error naming metrics.jsonl and the system's reason) once a write to it failed
 * (a full disk): the training loop stops instead of logging into the void. */
bool progress_ok(const Progress *p);
/* A training step: term names/values (n terms), total loss, lr, tokens/s. Draws the bar (TTY) or
 * prints a log line when `print` is true, and writes the JSON line when `log` is true. */
void progress_step(Progress *p, long long step, int epoch, const char *const *names, const float *values,
                   int n, float loss, double lr, double grad_norm, double tokens_per_s, bool print, bool log);
/* A classification evaluation: writes {"step":..,"split":"dev","eval_loss":..,"accuracy":..,"f1":..,
 * "mcc":..,"n":..,"best":..} and prints a line; with more than two classes the F1 is macro-F1,
 * named "macro_f1" in both. */
void progress_eval(Progress *p, long long step, const char *split, const MetricValues *v, bool is_best);
/* A regression evaluation: the same, with Pearson, Spearman and MSE in place of the
 * classification metrics ({"step":..,"split":..,"eval_loss":..,"pearson":..,"spearman":..,"mse":..}). */
void progress_eval_regression(Progress *p, long long step, const char *split, double loss, double pearson,
                              double spearman, double mse, long long n, bool is_best);
/* How many `split` evaluation records with a step > after_step the first `upto_bytes` bytes of
 * metrics_path hold (0 when the file is missing). On resume, the dev evaluations after the best
 * one are the evaluations without improvement that early stopping counts. */
long long progress_count_evals(const char *metrics_path, long long upto_bytes, const char *split,
                               long long after_step);
/* Ends the bar line (before other output). */
void progress_break(Progress *p);
void progress_close(Progress *p);

#endif
