/* progress.c — progress bar and metrics.jsonl (see progress.h). */
#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "../engine/common.h"

bool progress_open(Progress *p, const char *metrics_path, long long total, long long step_start,
                   long long truncate_at) {
    memset(p, 0, sizeof *p);
    p->tty = isatty(fileno(stderr));
    p->total = total;
    p->step_start = step_start;
    p->t_start = now_seconds();
    if (metrics_path) {
        if (truncate_at >= 0 && truncate(metrics_path, (off_t)truncate_at) != 0) {
            /* A missing file is fine (fresh run); anything else is reported by fopen below. */
        }
        p->jsonl = fopen(metrics_path, "a");
        p->jsonl_path = xstrdup(metrics_path);
        if (!p->jsonl) {
            distill_set_error("%s: cannot open for writing", metrics_path);
            return false;
        }
    }
    return true;
}

/* fflush, remembering the first failure's errno (later writes are not trusted). */
static void flush_jsonl(Progress *p) {
    if (fflush(p->jsonl) != 0 || ferror(p->jsonl)) {
        if (!p->jsonl_errno) p->jsonl_errno = errno ? errno : EIO;
    }
}

long long progress_offset(const Progress *p) {
    if (!p->jsonl) return 0;
    fflush(p->jsonl);
    return (long long)ftell(p->jsonl);
}

bool progress_ok(const Progress *p) {
    if (!p->jsonl || (!p->jsonl_errno && !ferror(p->jsonl))) return true;
    distill_set_error("%s: cannot write: %s; stopping",
                      p->jsonl_path ? p->jsonl_path : "metrics.jsonl", strerror(p->jsonl_errno ? p->jsonl_errno : EIO));
    return false;
}

static void fmt_eta(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

void progress_break(Progress *p) {
    if (p->line_open) {
        fputc('\n', stderr);
        p->line_open = false;
    }
}

void progress_step(Progress *p, long long step, int epoch, const char *const *names, const float *values,
                   int n, float loss, double lr, double grad_norm, double tokens_per_s, bool print, bool log) {
    if (log && p->jsonl) {
        fprintf(p->jsonl, "{\"step\":%lld,\"epoch\":%d,\"loss\":%.6g", step, epoch, loss);
        if (p->stage) fprintf(p->jsonl, ",\"stage\":\"%s\"", p->stage); /* a validated name: no escaping */
        for (int i = 0; i < n; i++) fprintf(p->jsonl, ",\"%s\":%.6g", names[i], values[i]);
        fprintf(p->jsonl, ",\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens_per_s\":%.1f,\"time_s\":%.3f}\n", lr,
                grad_norm, tokens_per_s, now_seconds() - p->t_start);
        flush_jsonl(p);
    }
    if (!print) return;
    double el = now_seconds() - p->t_start;
    long long done = step - p->step_start;
    char eta[32];
    fmt_eta(done > 0 ? el / (double)done * (double)(p->total - step) : -1, eta, sizeof eta);
    char terms[512];
    size_t off = 0;
    terms[0] = 0;
    for (int i = 0; i < n && off < sizeof terms; i++)
        off += (size_t)snprintf(terms + off, sizeof terms - off, " %s %.4g", names[i], values[i]);
    if (p->tty) {
        int width = 20, filled = p->total > 0 ? (int)(width * (double)step / (double)p->total) : 0;
        if (filled > width) filled = width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r\033[K[%s] %lld/%lld ep %d loss %.4f%s lr %.2e %.0f tok/s ETA %s", bar, step,
                p->total, epoch, loss, terms, lr, tokens_per_s, eta);
        p->line_open = true;
    } else {
        fprintf(stderr, "step %lld/%lld epoch %d loss %.4f%s lr %.3e tok/s %.0f eta %s\n", step, p->total,
                epoch, loss, terms, lr, tokens_per_s, eta);
    }
    fflush(stderr);
}

/* One evaluation record: three named metrics after the loss. */
static void write_eval(Progress *p, long long step, const char *split, double loss, const char *const names[3],
                       const double vals[3], long long n, bool is_best) {
    progress_break(p);
    if (p->jsonl) {
        fprintf(p->jsonl, "{\"step\":%lld,\"split\":\"%s\",\"eval_loss\":%.6g", step, split, loss);
        for (int i = 0; i < 3; i++) fprintf(p->jsonl, ",\"%s\":%.6g", names[i], vals[i]);
        fprintf(p->jsonl, ",\"n\":%lld,\"best\":%s}\n", n, is_best ? "true" : "false");
        flush_jsonl(p);
    }
    fprintf(stderr, "eval %s @ step %lld: loss %.4f", split, step, loss);
    for (int i = 0; i < 3; i++) fprintf(stderr, " %s %.4g", names[i], vals[i]);
    fprintf(stderr, " (%lld rows)%s\n", n, is_best ? "  * best" : "");
}

void progress_eval(Progress *p, long long step, const char *split, const MetricValues *v, bool is_best) {
    const char *const names[3] = {"accuracy", metrics_f1_name(v->num_classes), "mcc"};
    const double vals[3] = {v->accuracy, v->f1, v->mcc};
    write_eval(p, step, split, v->loss, names, vals, v->n, is_best);
}

void progress_eval_regression(Progress *p, long long step, const char *split, double loss, double pearson,
                              double spearman, double mse, long long n, bool is_best) {
    static const char *const names[3] = {"pearson", "spearman", "mse"};
    const double vals[3] = {pearson, spearman, mse};
    write_eval(p, step, split, loss, names, vals, n, is_best);
}

long long progress_count_evals(const char *metrics_path, long long upto_bytes, const char *split,
                               long long after_step) {
    FILE *f = fopen(metrics_path, "r");
    if (!f) return 0;
    long long count = 0, pos = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0 && pos + len <= upto_bytes) {
        pos += len;
        cJSON *rec = cJSON_Parse(line);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(rec, "step");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(rec, "split");
        if (cJSON_IsNumber(st) && cJSON_IsString(sp) && !strcmp(sp->valuestring, split) &&
            st->valuedouble > (double)after_step)
            count++;
        cJSON_Delete(rec);
    }
    free(line);
    fclose(f);
    return count;
}

void progress_close(Progress *p) {
    progress_break(p);
    if (p->jsonl) fclose(p->jsonl);
    p->jsonl = NULL;
    free(p->jsonl_path);
    p->jsonl_path = NULL;
}
