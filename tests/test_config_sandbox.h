/*
 * test_config_sandbox.h — shared by tests/test_config*.c: a fresh temporary directory made the
 * current directory, holding the files the test configs name (empty stand-ins: config_load only
 * stats them), a recursive listing of it to prove that loading wrote nothing, and removal.
 */
#ifndef DISTILL_TEST_CONFIG_SANDBOX_H
#define DISTILL_TEST_CONFIG_SANDBOX_H

/* The including file defines _XOPEN_SOURCE 700 before its first #include. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char sandbox_dir[4096];
static char sandbox_home[4096];

static void sandbox_die(const char *what, const char *path) {
    fprintf(stderr, "test: sandbox: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void sandbox_mkdir(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST) sandbox_die("mkdir", path);
}

static void sandbox_touch(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) sandbox_die("create", path);
    fputs(text, f);
    fclose(f);
}

/* The files the configs under test refer to, relative to the sandbox. */
static void sandbox_populate(void) {
    sandbox_mkdir("data");
    sandbox_touch("data/train.h5", "");
    sandbox_touch("data/dev.h5", "");
    sandbox_touch("data/test.h5", "");
    sandbox_mkdir("data/sst2");
    sandbox_touch("data/sst2/train.h5", "");
    sandbox_touch("data/sst2/dev.h5", "");
    sandbox_mkdir("teacher");
    sandbox_touch("teacher/config.json", "{}");
    sandbox_mkdir("nojson");
    sandbox_mkdir("runs");
    sandbox_mkdir("runs/teacher");
    sandbox_mkdir("runs/teacher/best");
    sandbox_touch("runs/teacher/best/config.json", "{}");
    sandbox_mkdir("runs/used");
    sandbox_touch("runs/used/metrics.jsonl", "{}\n");
    sandbox_mkdir("runs/empty");
    sandbox_touch("ckpt.h5", "");
    sandbox_touch("notadir", "");
}

static void sandbox_enter(void) {
    if (!getcwd(sandbox_home, sizeof sandbox_home)) sandbox_die("getcwd", ".");
    const char *tmp = getenv("TMPDIR");
    snprintf(sandbox_dir, sizeof sandbox_dir, "%s/distill-config-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(sandbox_dir)) sandbox_die("mkdtemp", sandbox_dir);
    if (chdir(sandbox_dir) != 0) sandbox_die("chdir", sandbox_dir);
    sandbox_populate();
}

/* Appends "path size\n" for every entry under `dir`, depth first, names sorted. */
static void sandbox_list(const char *dir, char **buf, size_t *len, size_t *cap) {
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) sandbox_die("scandir", dir);
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (strcmp(nm, ".") && strcmp(nm, "..")) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, nm);
            struct stat sb;
            if (lstat(path, &sb) != 0) sandbox_die("lstat", path);
            char line[4200];
            int l = snprintf(line, sizeof line, "%s %lld\n", path, S_ISDIR(sb.st_mode) ? -1LL : (long long)sb.st_size);
            while (*len + (size_t)l + 1 > *cap) {
                *cap = *cap ? 2 * *cap : 4096;
                *buf = realloc(*buf, *cap);
                if (!*buf) sandbox_die("realloc", path);
            }
            memcpy(*buf + *len, line, (size_t)l + 1);
            *len += (size_t)l;
            if (S_ISDIR(sb.st_mode)) sandbox_list(path, buf, len, cap);
        }
        free(names[i]);
    }
    free(names);
}

/* A listing of the whole sandbox (free it). */
static char *sandbox_snapshot(void) {
    char *buf = NULL;
    size_t len = 0, cap = 0;
    sandbox_list(".", &buf, &len, &cap);
    if (!buf) buf = calloc(1, 1);
    return buf;
}

static int sandbox_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void sandbox_leave(void) {
    if (chdir(sandbox_home) != 0) sandbox_die("chdir", sandbox_home);
    if (nftw(sandbox_dir, sandbox_rm, 16, FTW_DEPTH | FTW_PHYS) != 0) sandbox_die("remove", sandbox_dir);
}

#endif
