/* common.c — checked allocation, panics and the per-thread error message (see common.h). */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char g_error[1024];

void distill_panic(const char *file, int line, const char *expr) {
    fprintf(stderr, "distill: internal error: %s:%d: check failed: %s\n", file, line, expr);
    abort();
}

static void oom(size_t bytes) {
    fprintf(stderr, "distill: error: out of memory allocating %zu bytes\n", bytes);
    abort();
}

void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) oom(bytes);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *xrealloc(void *p, size_t bytes) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) oom(bytes);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

void distill_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
}

const char *distill_error(void) { return g_error[0] ? g_error : "unknown error"; }

void distill_print_error(const char *msg) { fprintf(stderr, "distill: error: %s\n", msg); }

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *fmt_count(unsigned long long v, char *buf, size_t n) {
    char raw[32];
    int len = snprintf(raw, sizeof raw, "%llu", v), k = 0;
    for (int i = 0; i < len && (size_t)k + 2 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = raw[i];
    }
    buf[k] = '\0';
    return buf;
}
