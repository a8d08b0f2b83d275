/*
 * fuzz_util.h — what every libFuzzer harness of tests/fuzz/ shares: one private scratch folder
 * per process (under $TMPDIR, /dev/shm preferred when it exists: the parsers that take a path get
 * their input through a file there, in RAM), writing the input to a file in it, and splitting an
 * input into NUL-separated parts (for harnesses that need two or three texts).
 *
 * The folder is removed at exit by the process that made it. Needs _GNU_SOURCE before the first
 * system header (nftw's flags).
 */
#ifndef DISTILL_FUZZ_UTIL_H
#define DISTILL_FUZZ_UTIL_H

#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"

static char g_fuzz_dir[512];
static pid_t g_fuzz_owner;

static inline int fuzz_rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static inline void fuzz_cleanup(void) {
    if (g_fuzz_dir[0] && getpid() == g_fuzz_owner)
        nftw(g_fuzz_dir, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The scratch folder, made on first use. Aborts when it cannot be made (nothing to fuzz then). */
static inline const char *fuzz_dir(void) {
    if (g_fuzz_dir[0]) return g_fuzz_dir;
    struct stat st;
    const char *base = getenv("DISTILL_FUZZ_TMPDIR");
    if (!base || !base[0]) base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : NULL;
    if (!base) base = getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    snprintf(g_fuzz_dir, sizeof g_fuzz_dir, "%s/distill-fuzz-XXXXXX", base);
    if (!mkdtemp(g_fuzz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    g_fuzz_owner = getpid();
    atexit(fuzz_cleanup);
    return g_fuzz_dir;
}

/* dir/name into buf. */
static inline const char *fuzz_path(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", fuzz_dir(), name);
    return buf;
}

/* Writes data[0..n) to dir/name (replacing it); returns the path in buf. Aborts on a write error
 * (a full /dev/shm is a harness problem, not a finding). */
static inline const char *fuzz_write(const char *name, const void *data, size_t n, char *buf, size_t cap) {
    fuzz_path(name, buf, cap);
    FILE *f = fopen(buf, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(buf);
        abort();
    }
    return buf;
}

/* Splits data[0..n) at its first `parts - 1` NUL bytes: part i is [begin[i], begin[i] + len[i]);
 * missing parts are empty. Returns how many parts the input has (1 + the NULs used). */
static inline int fuzz_split(const uint8_t *data, size_t n, int parts, const uint8_t **begin, size_t *len) {
    size_t at = 0;
    int found = 1;
    bool more = true; /* part i exists: the previous part ended at a NUL */
    for (int i = 0; i < parts; i++) {
        if (!more) {
            begin[i] = data + n;
            len[i] = 0;
            continue;
        }
        size_t end = at;
        if (i < parts - 1)
            while (end < n && data[end] != 0) end++;
        else
            end = n;
        begin[i] = data + at;
        len[i] = end - at;
        found = i + 1;
        more = end < n && i < parts - 1;
        at = end + 1;
    }
    return found;
}

/* Writes the part when present, removes dir/name otherwise (a stale file from the last input). */
static inline void fuzz_write_opt(const char *name, bool present, const void *data, size_t n) {
    char buf[600];
    if (present) fuzz_write(name, data, n, buf, sizeof buf);
    else unlink(fuzz_path(name, buf, sizeof buf));
}

/* With DISTILL_FUZZ_VERBOSE=1 in the environment, prints what each call said ("ok" or its
 * message) to stderr: for checking by hand that the seeds reach the code past the first checks
 * (`fuzz_x -runs=0 corpus/fuzz_x`). Returns ok, so it wraps a condition. */
static inline bool fuzz_said(const char *what, bool ok) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("DISTILL_FUZZ_VERBOSE") && atoi(getenv("DISTILL_FUZZ_VERBOSE")) > 0;
    if (verbose) fprintf(stderr, "%s: %s\n", what, ok ? "ok" : distill_error());
    return ok;
}

/* A malloc'ed NUL-terminated copy of p[0..n). */
static inline char *fuzz_strndup(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

#endif
