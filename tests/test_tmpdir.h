/*
 * test_tmpdir.h — a per-case temporary folder for the C tests that write files (test_io,
 * test_ckpt): make_tmpdir creates $TMPDIR/distill-<prefix>-XXXXXX, in_dir names a file in it,
 * cleanup_tmpdir removes it (also at exit, after a REQUIRE failure). Only the process that made
 * the folder removes it, so forked writers that exit do not take it away.
 * Needs _GNU_SOURCE (nftw's FTW_* flags) before the first system header.
 */
#ifndef DISTILL_TEST_TMPDIR_H
#define DISTILL_TEST_TMPDIR_H

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_check.h"

static char g_dir[512];
static pid_t g_owner; /* the process that made g_dir */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    chmod(p, 0700); /* a case may have made it read-only */
    return remove(p);
}

static void cleanup_tmpdir(void) {
    if (g_dir[0] && getpid() == g_owner) nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = '\0';
}

static void make_tmpdir(const char *prefix) {
    static bool registered = false;
    const char *base = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/distill-%s-XXXXXX", base && base[0] ? base : "/tmp", prefix);
    REQUIRE(mkdtemp(g_dir) != NULL, "mkdtemp: %s", strerror(errno));
    g_owner = getpid();
    if (!registered) atexit(cleanup_tmpdir);
    registered = true;
}

static const char *in_dir(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", g_dir, name);
    return buf;
}

static bool exists(const char *p) { return access(p, F_OK) == 0; }

/* Entries of dir other than . and .. (-1 when it cannot be read). */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

#endif
