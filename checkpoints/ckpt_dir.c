/*
 * ckpt_dir.c — a run directory's checkpoints: naming (ckpt-<step>.h5), keeping the last K, and
 * finding the newest one that validates (see ckpt.h).
 *
 * Promise: only files named exactly ckpt-<digits>.h5 are ever counted or deleted, plus the stale
 * temporaries of writers that no longer run (io_clean_stale_temps, io/atomic.h); best.h5 and
 * every other name are never touched.
 */
#define _POSIX_C_SOURCE 200809L
#include "ckpt_internal.h"

#include "io/atomic.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *ckpt_step_path(const char *dir, int64_t step, char *buf, size_t n) {
    snprintf(buf, n, "%s/ckpt-%lld.h5", dir, (long long)step);
    return buf;
}

/* Digits only (1..18 of them, so the value fits int64) into *v. */
static bool parse_digits(const char *s, size_t len, int64_t *v) {
    if (len == 0 || len > 18) return false;
    int64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

/* "ckpt-<digits>.h5" exactly -> step. */
static bool parse_ckpt_name(const char *name, int64_t *step) {
    size_t n = strlen(name);
    if (n < 9 || strncmp(name, "ckpt-", 5) != 0 || strcmp(name + n - 3, ".h5") != 0) return false;
    return parse_digits(name + 5, n - 8, step);
}

typedef struct { int64_t step; char *name; } Entry;

static int cmp_step_desc(const void *a, const void *b) {
    int64_t x = ((const Entry *)a)->step, y = ((const Entry *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The ckpt-<step>.h5 files of dir, newest first. */
static Status list_ckpts(const char *dir, Entry **out, int *n_out) {
    DIR *d = opendir(dir);
    if (!d) {
        distill_set_error("%s: cannot read checkpoint directory: %s", dir, strerror(errno));
        return DISTILL_ERR;
    }
    Entry *v = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t step;
        if (!parse_ckpt_name(e->d_name, &step)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            v = xrealloc(v, (size_t)cap * sizeof *v);
        }
        v[n].step = step;
        v[n].name = xstrdup(e->d_name);
        n++;
    }
    closedir(d);
    if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_step_desc);
    *out = v;
    *n_out = n;
    return DISTILL_OK;
}

static void entries_free(Entry *v, int n) {
    for (int i = 0; i < n; i++) free(v[i].name);
    free(v);
}

Status ckpt_rotate(const char *dir, int keep_last) {
    Entry *v;
    int n;
    if (list_ckpts(dir, &v, &n) != DISTILL_OK) return DISTILL_ERR;
    Status st = DISTILL_OK;
    char path[4096];
    for (int i = keep_last > 0 ? keep_last : n; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, v[i].name);
        if (unlink(path) != 0 && errno != ENOENT) {
            distill_set_error("%s: cannot delete old checkpoint: %s", path, strerror(errno));
            st = DISTILL_ERR;
        }
    }
    entries_free(v, n);

    /* Stale temporaries: their writer died mid-save (a crash the rename protected us from).
     * Best effort, as before: a leftover that cannot be removed does not fail the rotation. */
    if (st == DISTILL_OK) {
        if (io_clean_stale_temps(dir) != DISTILL_OK)
            fprintf(stderr, "distill: warning: %s\n", distill_error());
    } else {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", distill_error()); /* the rotation's error comes first */
        io_clean_stale_temps(dir);
        distill_set_error("%s", msg);
    }
    return st;
}

Status ckpt_find_latest(const char *dir, char *path_out, size_t n_out) {
    Entry *v;
    int n;
    if (list_ckpts(dir, &v, &n) != DISTILL_OK) return DISTILL_ERR;
    Status st = DISTILL_ERR;
    int broken = 0;
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, v[i].name);
        if (ckpt_verify(path) != DISTILL_OK) {
            fprintf(stderr, "distill: warning: skipping broken checkpoint: %s\n", distill_error());
            broken++;
            continue;
        }
        if (strlen(path) + 1 > n_out) {
            distill_set_error("%s: checkpoint path longer than the %zu bytes given", path, n_out);
        } else {
            memcpy(path_out, path, strlen(path) + 1);
            st = DISTILL_OK;
        }
        break;
    }
    if (st != DISTILL_OK && (n == 0 || broken == n))
        distill_set_error("%s: expected a valid checkpoint (ckpt-<step>.h5), found %s", dir,
                          n == 0 ? "none" : "only broken ones");
    entries_free(v, n);
    return st;
}
