/*
 * common.h — the few things every file needs: checked allocation, assertions that stay on in
 * release builds, and a status + message for recoverable failures.
 *
 * Promise: xmalloc/xcalloc/xrealloc never return NULL (they abort with a message). DCHECK aborts
 * with file, line and expression whatever NDEBUG says. Expected failures (bad input, missing files)
 * are never asserted: they return DISTILL_ERR and set the thread's error message.
 */
#ifndef DISTILL_COMMON_H
#define DISTILL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum { DISTILL_OK = 0, DISTILL_ERR = 1 } Status;

void distill_panic(const char *file, int line, const char *expr) __attribute__((noreturn));
#define DCHECK(cond) do { if (!(cond)) distill_panic(__FILE__, __LINE__, #cond); } while (0)

void *xmalloc(size_t bytes);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t bytes);
char *xstrdup(const char *s);

/* The last error message of this thread (set by distill_set_error, read by distill_error). */
void distill_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *distill_error(void);

/* Prints "distill: error: <msg>" to stderr. */
void distill_print_error(const char *msg);

/* Monotonic wall clock in seconds. */
double now_seconds(void);

/* 14350248 -> "14,350,248" in buf (n >= 32 holds any value); returns buf. */
const char *fmt_count(unsigned long long v, char *buf, size_t n);

#endif
