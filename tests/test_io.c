/*
 * test_io.c — io/: the atomic write (io/atomic.h) and the HDF5 helpers (io/h5.h).
 *
 * Cases (one CTest each, each in its own temporary folder):
 *   commit   a stream write, a one-call write and a by-name write replace the old content, leave
 *            no temporary, and keep the umask's permissions
 *   abort    an abort (and a commit after a write error) leaves the old file and no temporary
 *   crash    writers killed (fork + _exit) after begin, after the fsync and after the rename: the
 *            old or the new content, never a mix; io_clean_stale_temps removes the dead writers'
 *            temporaries (files and folders) and keeps live writers' and every other name
 *   errors   a missing folder, a file in the way, a read-only folder (skipped as root) and a full
 *            disk (RLIMIT_FSIZE) fail with the path and the system's reason, old file intact
 *   dir      a folder written whole replaces an old folder; a file at the path is refused
 *   names    io_is_temp_name / io_temp_owner_pid on good and bad names; io_mkdir_p
 *   h5       every attribute and string-dataset helper round-trips; wrong types, missing names,
 *            out-of-range values and fixed-length strings are handled as h5.h says
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

#include "io/atomic.h"
#include "io/h5.h"

#include "test_tmpdir.h"

/* ---------------------------------------------------------------- the temporary folder */

/* Entries of dir that are temporary names. */
static int count_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (io_is_temp_name(e->d_name)) n++;
    closedir(d);
    return n;
}

static void write_plain(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    REQUIRE(f, "create %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* The whole file as a string ("" when it cannot be read). */
static const char *slurp(const char *path) {
    static char buf[4096];
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return buf;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---------------------------------------------------------------- commit */

static void case_commit(void) {
    char p[600];
    in_dir("out.txt", p, sizeof p);
    write_plain(p, "old");

    AtomicFile af;
    REQUIRE(io_atomic_begin(&af, p) == DISTILL_OK, "begin: %s", distill_error());
    CHECK(af.fp && af.tmp && io_temp_owner_pid(af.tmp) == (long)getpid(), "temporary '%s'", af.tmp);
    CHECK(strncmp(af.tmp, p, strlen(p)) == 0, "temporary '%s' not beside '%s'", af.tmp, p);
    fputs("new ", af.fp);
    fputs("content", af.fp);
    CHECK(strcmp(slurp(p), "old") == 0, "the destination changed before commit: '%s'", slurp(p));
    REQUIRE(io_atomic_commit(&af) == DISTILL_OK, "commit: %s", distill_error());
    CHECK(af.path == NULL && af.tmp == NULL && af.fp == NULL, "commit did not leave af idle");
    io_atomic_abort(&af); /* a no-op after commit */
    CHECK(strcmp(slurp(p), "new content") == 0, "after commit: '%s'", slurp(p));
    CHECK(count_entries(g_dir) == 1, "%d entries after commit (want the file alone)", count_entries(g_dir));

    /* Permissions: 0666 less the umask, as fopen would give. */
    mode_t old_mask = umask(027);
    REQUIRE(io_write_file_atomic(p, "abc", 3) == DISTILL_OK, "write_file_atomic: %s", distill_error());
    umask(old_mask);
    struct stat st;
    REQUIRE(stat(p, &st) == 0, "stat");
    CHECK((st.st_mode & 0777) == 0640, "mode %o, want 640", (unsigned)(st.st_mode & 0777));
    CHECK(strcmp(slurp(p), "abc") == 0, "one-call write: '%s'", slurp(p));
    REQUIRE(io_write_file_atomic(p, NULL, 0) == DISTILL_OK, "empty write: %s", distill_error());
    CHECK(exists(p) && strcmp(slurp(p), "") == 0, "empty write left '%s'", slurp(p));

    /* By name: the library opens the temporary itself. */
    REQUIRE(io_atomic_begin_named(&af, p) == DISTILL_OK, "begin_named: %s", distill_error());
    CHECK(af.fp == NULL && exists(af.tmp), "begin_named: no temporary file");
    write_plain(af.tmp, "by name");
    REQUIRE(io_atomic_commit(&af) == DISTILL_OK, "commit named: %s", distill_error());
    CHECK(strcmp(slurp(p), "by name") == 0, "named: '%s'", slurp(p));

    /* Two writers at once get two temporaries. */
    AtomicFile a1, a2;
    REQUIRE(io_atomic_begin(&a1, p) == DISTILL_OK && io_atomic_begin(&a2, p) == DISTILL_OK, "begin x2");
    CHECK(strcmp(a1.tmp, a2.tmp) != 0, "two writers share '%s'", a1.tmp);
    fputs("one", a1.fp);
    fputs("two", a2.fp);
    REQUIRE(io_atomic_commit(&a1) == DISTILL_OK && io_atomic_commit(&a2) == DISTILL_OK, "commit x2");
    CHECK(strcmp(slurp(p), "two") == 0, "last commit wins: '%s'", slurp(p));
    CHECK(count_entries(g_dir) == 1, "%d entries", count_entries(g_dir));
}

/* ---------------------------------------------------------------- abort */

static void case_abort(void) {
    char p[600];
    in_dir("keep.txt", p, sizeof p);
    write_plain(p, "old");
    AtomicFile af;
    REQUIRE(io_atomic_begin(&af, p) == DISTILL_OK, "begin: %s", distill_error());
    fputs("half", af.fp);
    fflush(af.fp);
    io_atomic_abort(&af);
    CHECK(af.tmp == NULL && af.fp == NULL, "abort did not leave af idle");
    CHECK(strcmp(slurp(p), "old") == 0 && count_entries(g_dir) == 1, "abort: '%s', %d entries",
          slurp(p), count_entries(g_dir));

    REQUIRE(io_atomic_begin_named(&af, p) == DISTILL_OK, "begin_named: %s", distill_error());
    io_atomic_abort(&af);
    REQUIRE(io_atomic_begin_dir(&af, p) == DISTILL_OK, "begin_dir: %s", distill_error());
    char sub[700];
    snprintf(sub, sizeof sub, "%s/inner", af.tmp);
    REQUIRE(mkdir(sub, 0777) == 0, "mkdir inner");
    snprintf(sub, sizeof sub, "%s/inner/f.txt", af.tmp);
    write_plain(sub, "x");
    io_atomic_abort(&af);
    CHECK(count_entries(g_dir) == 1, "abort of a named file / folder left %d entries", count_entries(g_dir));

    AtomicFile zero = {0};
    io_atomic_abort(&zero); /* a zeroed AtomicFile: nothing to do */
    io_atomic_abort(&zero);
    CHECK(strcmp(slurp(p), "old") == 0, "the old file changed: '%s'", slurp(p));
}

/* ---------------------------------------------------------------- crash */

static const char *g_crash_stage;

static void crash_hook(const char *s) {
    if (g_crash_stage && strcmp(s, g_crash_stage) == 0) _exit(42);
}

/* Forks a writer of "new" to path that dies at stage ("begun" = right after begin). Returns its
 * pid once it has exited. */
static pid_t crash_writer(const char *path, const char *stage, bool dir) {
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        AtomicFile af;
        if ((dir ? io_atomic_begin_dir(&af, path) : io_atomic_begin(&af, path)) != DISTILL_OK) _exit(2);
        if (dir) {
            char f[800];
            snprintf(f, sizeof f, "%s/f.txt", af.tmp);
            write_plain(f, "new");
        } else {
            fputs("new", af.fp);
            fflush(af.fp);
        }
        if (strcmp(stage, "begun") == 0) _exit(42);
        g_crash_stage = stage;
        io_atomic_stage_hook = crash_hook;
        io_atomic_commit(&af);
        _exit(3); /* the stage was never reached */
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42, "writer did not die at '%s' (status %d)",
          stage, status);
    return pid;
}

static void case_crash(void) {
    char p[600], q[600], t[700];
    in_dir("state.txt", p, sizeof p);
    const char *stages[] = {"begun", "synced", "renamed"};
    for (int i = 0; i < 3; i++) {
        write_plain(p, "old");
        pid_t pid = crash_writer(p, stages[i], false);
        bool renamed = i == 2;
        CHECK(strcmp(slurp(p), renamed ? "new" : "old") == 0, "stage %s: '%s'", stages[i], slurp(p));
        CHECK(pid > 0, "fork");
        CHECK(count_temps(g_dir) == (renamed ? 0 : 1), "stage %s: %d temporaries", stages[i],
              count_temps(g_dir));
        REQUIRE(io_clean_stale_temps(g_dir) == DISTILL_OK, "clean: %s", distill_error());
        CHECK(count_temps(g_dir) == 0 && exists(p), "stage %s: clean left %d temporaries",
              stages[i], count_temps(g_dir));
    }

    /* A dead writer's folder, a live writer's file (this process), another live process's name
     * (our parent's), and names that only look like temporaries: only the first goes. */
    in_dir("export", q, sizeof q);
    REQUIRE(io_mkdir_p(q) == DISTILL_OK, "mkdir: %s", distill_error());
    pid_t dead = crash_writer(q, "begun", true);
    AtomicFile live;
    REQUIRE(io_atomic_begin(&live, p) == DISTILL_OK, "begin: %s", distill_error());
    char parent_name[64];
    snprintf(parent_name, sizeof parent_name, "x.h5.tmp-%ld-0", (long)getppid());
    const char *others[] = {"notes.tmp-abc", "y.tmp-", ".tmp-123", "z.tmp-12-", "z.tmp-1x-2",
                            "ckpt-3.h5", parent_name};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) write_plain(in_dir(others[i], t, sizeof t), "x");
    /* The name older builds used: "<name>.tmp-<pid>" of a dead writer. */
    char legacy[64];
    snprintf(legacy, sizeof legacy, "ckpt-9.h5.tmp-%ld", (long)dead);
    write_plain(in_dir(legacy, t, sizeof t), "x");
    int before = count_entries(g_dir);
    REQUIRE(io_clean_stale_temps(g_dir) == DISTILL_OK, "clean: %s", distill_error());
    CHECK(count_entries(g_dir) == before - 2, "clean removed %d entries, want 2 (the dead folder "
          "and the legacy name)", before - count_entries(g_dir));
    CHECK(!exists(in_dir(legacy, t, sizeof t)), "the legacy temporary was kept");
    CHECK(exists(live.tmp), "a live writer's temporary was removed");
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        CHECK(exists(in_dir(others[i], t, sizeof t)), "removed '%s'", others[i]);
    CHECK(exists(q) && count_entries(q) == 0, "the destination folder was touched");
    io_atomic_abort(&live);

    CHECK(io_clean_stale_temps(in_dir("no-such-dir", t, sizeof t)) == DISTILL_ERR &&
          strstr(distill_error(), "no-such-dir"), "clean of a missing folder: %s", distill_error());
}

/* ---------------------------------------------------------------- errors */

static void expect_fail(const char *path, const char *reason) {
    Status s = io_write_file_atomic(path, "new", 3);
    CHECK(s == DISTILL_ERR, "writing %s succeeded", path);
    CHECK(strstr(distill_error(), path) && strstr(distill_error(), reason),
          "writing %s: expected the path and '%s' in: %s", path, reason, distill_error());
}

static void case_errors(void) {
    char p[600], d[600];
    expect_fail(in_dir("missing/out.txt", p, sizeof p), strerror(ENOENT));
    write_plain(in_dir("afile", d, sizeof d), "x");
    expect_fail(in_dir("afile/out.txt", p, sizeof p), strerror(ENOTDIR));
    CHECK(io_write_file_atomic("", "x", 1) == DISTILL_ERR, "an empty path was accepted");

    /* A read-only folder (root may write anyway: skipped then). */
    in_dir("ro", d, sizeof d);
    REQUIRE(mkdir(d, 0777) == 0, "mkdir ro");
    in_dir("ro/out.txt", p, sizeof p);
    write_plain(p, "old");
    chmod(d, 0555);
    if (geteuid() != 0) {
        expect_fail(p, strerror(EACCES));
        CHECK(strcmp(slurp(p), "old") == 0, "read-only folder: the old file is '%s'", slurp(p));
    } else {
        printf("read-only folder: skipped (root ignores permissions)\n");
    }
    chmod(d, 0777);

    /* A full disk: a file size limit far below the write (SIGXFSZ ignored: write gets EFBIG). */
    in_dir("big.bin", p, sizeof p);
    write_plain(p, "old");
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &rl);
        size_t n = 1 << 20;
        char *buf = calloc(n, 1);
        Status s = io_write_file_atomic(p, buf, n);
        free(buf);
        bool ok = s == DISTILL_ERR && strstr(distill_error(), p) && strstr(distill_error(), strerror(EFBIG));
        if (!ok) fprintf(stderr, "size limit: %s\n", distill_error());
        _exit(ok ? 0 : 5);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a write past the size limit did not fail "
          "cleanly (status %d)", status);
    CHECK(strcmp(slurp(p), "old") == 0, "full disk: the old file is '%s'", slurp(p));
    CHECK(count_temps(g_dir) == 0, "a failed write left %d temporaries", count_temps(g_dir));
}

/* ---------------------------------------------------------------- dir */

static void fill_dir(const char *dir, const char *text) {
    char f[800];
    snprintf(f, sizeof f, "%s/a.txt", dir);
    write_plain(f, text);
    snprintf(f, sizeof f, "%s/sub", dir);
    REQUIRE(mkdir(f, 0777) == 0, "mkdir sub");
    snprintf(f, sizeof f, "%s/sub/b.txt", dir);
    write_plain(f, text);
}

static void case_dir(void) {
    char p[600], f[700];
    in_dir("model", p, sizeof p);
    for (int round = 0; round < 2; round++) { /* first into nothing, then over the old folder */
        AtomicFile af;
        char with_slash[610];
        snprintf(with_slash, sizeof with_slash, "%s/", p); /* "out/" names the folder "out" */
        REQUIRE(io_atomic_begin_dir(&af, with_slash) == DISTILL_OK, "begin_dir: %s", distill_error());
        CHECK(strcmp(af.path, p) == 0, "path '%s'", af.path);
        fill_dir(af.tmp, round ? "two" : "one");
        if (round) {
            snprintf(f, sizeof f, "%s/a.txt", p);
            CHECK(strcmp(slurp(f), "one") == 0, "the old folder changed before commit");
        }
        REQUIRE(io_atomic_commit(&af) == DISTILL_OK, "commit dir: %s", distill_error());
        snprintf(f, sizeof f, "%s/sub/b.txt", p);
        CHECK(strcmp(slurp(f), round ? "two" : "one") == 0, "round %d: '%s'", round, slurp(f));
        CHECK(count_entries(g_dir) == 1 && count_entries(p) == 2, "round %d: %d entries, %d inside",
              round, count_entries(g_dir), count_entries(p));
    }
    /* A file is never replaced by a folder. */
    in_dir("plain", p, sizeof p);
    write_plain(p, "old");
    AtomicFile af;
    REQUIRE(io_atomic_begin_dir(&af, p) == DISTILL_OK, "begin_dir: %s", distill_error());
    CHECK(io_atomic_commit(&af) == DISTILL_ERR && strstr(distill_error(), "not a folder"),
          "a folder over a file: %s", distill_error());
    CHECK(strcmp(slurp(p), "old") == 0 && count_temps(g_dir) == 0, "the file changed or a temporary is left");
}

/* ---------------------------------------------------------------- names, mkdir */

static void case_names(void) {
    static const struct { const char *name; long pid; } v[] = {
        {"ckpt-1.h5.tmp-123-0", 123},     {"a.tmp-7-99", 7},           {"dir/a.b.tmp-55-3", 55},
        {"ckpt-1.h5.tmp-123", 123},       {"x.tmp-1.tmp-9-1", 9},      {"model.tmp-2147483647-0", 2147483647},
        {"a.tmp-0-1", 0},                 {"a.tmp-2147483648-0", 0},   {".tmp-5-1", 0},
        {"a.tmp-", 0},                    {"a.tmp-5-", 0},             {"a.tmp--5", 0},
        {"a.tmp-5-1-2", 0},               {"a.tmp-XXXXXX", 0},         {"a.tmp.5", 0},
        {"a.tmp-5/b", 0},                 {"plain.txt", 0},            {"", 0},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        CHECK(io_temp_owner_pid(v[i].name) == v[i].pid, "'%s': pid %ld, want %ld", v[i].name,
              io_temp_owner_pid(v[i].name), v[i].pid);
        CHECK(io_is_temp_name(v[i].name) == (v[i].pid > 0), "'%s': is_temp_name", v[i].name);
    }
    /* The name begin makes is one clean-up recognises, with our pid. */
    char p[600];
    AtomicFile af;
    REQUIRE(io_atomic_begin(&af, in_dir("n.txt", p, sizeof p)) == DISTILL_OK, "begin");
    CHECK(io_temp_owner_pid(af.tmp) == (long)getpid(), "'%s' not recognised", af.tmp);
    io_atomic_abort(&af);

    char d[600], f[700];
    REQUIRE(io_mkdir_p(in_dir("a/b//c/", d, sizeof d)) == DISTILL_OK, "mkdir_p: %s", distill_error());
    struct stat st;
    CHECK(stat(in_dir("a/b/c", f, sizeof f), &st) == 0 && S_ISDIR(st.st_mode), "a/b/c not made");
    CHECK(io_mkdir_p(d) == DISTILL_OK, "mkdir_p of an existing folder: %s", distill_error());
    write_plain(in_dir("a/file", f, sizeof f), "x");
    CHECK(io_mkdir_p(f) == DISTILL_ERR && strstr(distill_error(), "not a folder"), "a file: %s",
          distill_error());
    CHECK(io_mkdir_p(in_dir("a/file/sub", f, sizeof f)) == DISTILL_ERR &&
          strstr(distill_error(), "a/file"), "under a file: %s", distill_error());
    CHECK(io_mkdir_p("") == DISTILL_ERR, "empty path accepted");
}

/* ---------------------------------------------------------------- h5 */

static herr_t count_prints(hid_t stack, void *data) {
    (void)stack;
    (*(int *)data)++;
    return 0;
}

static void case_h5(void) {
    char p[600];
    in_dir("t.h5", p, sizeof p);
    int prints = 0;
    H5Eset_auto2(H5E_DEFAULT, count_prints, &prints);
    H5Quiet q;
    h5_quiet_begin(&q);

    AtomicFile af;
    REQUIRE(io_atomic_begin_named(&af, p) == DISTILL_OK, "begin: %s", distill_error());
    hid_t f = H5Fcreate(af.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(f >= 0, "H5Fcreate: %s", h5_error_text());
    hid_t g = H5Gcreate2(f, "/grp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char *strs[] = {"neg", NULL, "pos \xc3\xa9"}; /* NULL is written as "" */
    const uint8_t bytes[4] = {0, 1, 254, 255};
    Status s = DISTILL_OK;
    s |= h5a_put_int(p, f, "i32", H5T_STD_I32LE, -7);
    s |= h5a_put_int(p, f, "u8", H5T_STD_U8LE, 200);
    s |= h5a_put_i64(p, f, "i64", INT64_MIN + 1);
    s |= h5a_put_u64(p, f, "u64", UINT64_MAX);
    s |= h5a_put_f64(p, f, "f64", 0.1);
    s |= h5a_put_f32(p, g, "f32", 1.5f);
    s |= h5a_put_str(p, g, "str", "hello");
    s |= h5a_put_str(p, g, "null", NULL);
    s |= h5a_put_strs(p, f, "strs", strs, 3);
    s |= h5a_put_u8s(p, f, "bytes", bytes, 4);
    s |= h5a_put_i64(p, f, "i64", 42); /* rewriting replaces */
    s |= h5d_put_strs(p, f, "vocab", strs, 3);
    s |= h5d_put_str(p, g, "yaml", "a: 1\n");
    CHECK(s == DISTILL_OK, "writing: %s", distill_error());
    CHECK(h5d_put_str(p, g, "yaml", "again") == DISTILL_ERR && strstr(distill_error(), p) &&
          strstr(distill_error(), "yaml"), "a dataset written twice: %s", distill_error());
    /* Fixed-length strings, as numpy's 'S' arrays give them: one fills its whole width. */
    hid_t ft = H5Tcopy(H5T_C_S1);
    H5Tset_size(ft, 4);
    H5Tset_strpad(ft, H5T_STR_NULLPAD);
    hsize_t two = 2;
    hid_t sp = H5Screate_simple(1, &two, NULL);
    hid_t a = H5Acreate2(f, "fixed", ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(H5Awrite(a, ft, "abcdxy\0\0") >= 0, "fixed write");
    H5Aclose(a);
    hid_t d = H5Dcreate2(f, "fixed_ds", ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(H5Dwrite(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, "wxyzq\0\0\0") >= 0, "fixed ds write");
    H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(ft);
    H5Gclose(g);
    REQUIRE(H5Fclose(f) >= 0, "close");
    REQUIRE(io_atomic_commit(&af) == DISTILL_OK, "commit: %s", distill_error());

    f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0, "reopen: %s", h5_error_text());
    g = H5Gopen2(f, "/grp", H5P_DEFAULT);
    int64_t i64;
    uint64_t u64;
    double f64;
    float f32;
    int iv;
    char *str = NULL, **sv = NULL;
    int n = 0;
    uint8_t b[4];
    CHECK(h5a_get_i64(p, f, "/", "i32", &i64) == DISTILL_OK && i64 == -7, "i32: %lld", (long long)i64);
    CHECK(h5a_get_int_in(p, f, "/", "u8", 0, 255, &iv) == DISTILL_OK && iv == 200, "u8: %d", iv);
    CHECK(h5a_get_i64(p, f, "/", "i64", &i64) == DISTILL_OK && i64 == 42, "i64: %lld", (long long)i64);
    CHECK(h5a_get_u64(p, f, "/", "u64", &u64) == DISTILL_OK && u64 == UINT64_MAX, "u64");
    CHECK(h5a_get_f64(p, f, "/", "f64", &f64) == DISTILL_OK && f64 == 0.1, "f64: %.17g", f64);
    CHECK(h5a_get_f32(p, g, "/grp", "f32", &f32) == DISTILL_OK && f32 == 1.5f, "f32: %g", (double)f32);
    CHECK(h5a_get_str(p, g, "/grp", "str", &str) == DISTILL_OK && strcmp(str, "hello") == 0, "str");
    free(str);
    CHECK(h5a_get_str(p, g, "/grp", "null", &str) == DISTILL_OK && strcmp(str, "") == 0, "null str");
    free(str);
    CHECK(h5a_get_strs(p, f, "/", "strs", &sv, &n) == DISTILL_OK && n == 3 && strcmp(sv[0], "neg") == 0 &&
          strcmp(sv[1], "") == 0 && strcmp(sv[2], "pos \xc3\xa9") == 0, "strs");
    h5_strs_free(sv, n);
    CHECK(h5a_get_u8s(p, f, "/", "bytes", b, 4) == DISTILL_OK && memcmp(b, bytes, 4) == 0, "bytes");
    CHECK(h5d_get_strs(p, f, "vocab", &sv, &n) == DISTILL_OK && n == 3 && strcmp(sv[2], "pos \xc3\xa9") == 0,
          "vocab");
    h5_strs_free(sv, n);
    CHECK(h5d_get_str(p, g, "yaml", &str) == DISTILL_OK && strcmp(str, "a: 1\n") == 0, "yaml");
    free(str);
    CHECK(h5a_get_strs(p, f, "/", "fixed", &sv, &n) == DISTILL_OK && n == 2 && strcmp(sv[0], "abcd") == 0 &&
          strcmp(sv[1], "xy") == 0, "fixed attribute: '%s' '%s'", n > 0 ? sv[0] : "", n > 1 ? sv[1] : "");
    h5_strs_free(sv, n);
    CHECK(h5d_get_strs(p, f, "fixed_ds", &sv, &n) == DISTILL_OK && n == 2 && strcmp(sv[0], "wxyz") == 0 &&
          strcmp(sv[1], "q") == 0, "fixed dataset");
    h5_strs_free(sv, n);
    CHECK(h5a_has(f, "i64") && !h5a_has(f, "nope") && h5_link_exists(f, "vocab") &&
          !h5_link_exists(f, "nope"), "has / link_exists");

    /* What the readers refuse, each with the file and the name in the message. */
#define REFUSED(call, needle)                                                                     \
    CHECK((call) == DISTILL_ERR && strstr(distill_error(), p) && strstr(distill_error(), needle), \
          "%s: %s", #call, distill_error())
    REFUSED(h5a_get_i64(p, f, "/", "nope", &i64), "expected attribute 'nope', found none");
    REFUSED(h5a_get_i64(p, f, "/", "f64", &i64), "expected an integer");
    REFUSED(h5a_get_f64(p, f, "/", "i64", &f64), "expected a float");
    REFUSED(h5a_get_str(p, f, "/", "i64", &str), "expected a string");
    REFUSED(h5a_get_str(p, f, "/", "strs", &str), "expected one string, found 3");
    REFUSED(h5a_get_i64(p, f, "/", "bytes", &i64), "expected 1 element(s), found 4");
    REFUSED(h5a_get_u8s(p, f, "/", "bytes", b, 3), "expected 3 element(s), found 4");
    REFUSED(h5a_get_int_in(p, f, "/", "u8", 0, 100, &iv), "expected u8 in [0, 100], found 200");
    REFUSED(h5d_get_strs(p, f, "nope", &sv, &n), "nope");
    REFUSED(h5d_get_str(p, f, "vocab", &str), "expected one string, found 3");
#undef REFUSED
    CHECK(h5a_get_i64(NULL, f, "/", "nope", &i64) == DISTILL_ERR &&
          strncmp(distill_error(), "/: expected", 11) == 0, "no path: %s", distill_error());
    H5Gclose(g);
    H5Fclose(f);

    /* h5_error_text: the innermost message; quiet mode: nothing printed, the handler restored. */
    write_plain(p, "not hdf5");
    hid_t bad = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(bad < 0, "opened a text file as HDF5");
    const char *why = h5_error_text();
    CHECK(why[0] && strcmp(why, "no HDF5 detail") != 0 && !strchr(why, '\n'), "error text: '%s'", why);
    h5_quiet_end(&q);
    CHECK(prints == 0, "HDF5 printed %d error stacks in quiet mode", prints);
    bad = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(bad < 0 && prints == 1, "the caller's error handler was not restored (%d calls)", prints);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

int main(int argc, char **argv) {
    static const struct { const char *name; void (*fn)(void); } cases[] = {
        {"commit", case_commit}, {"abort", case_abort}, {"crash", case_crash}, {"errors", case_errors},
        {"dir", case_dir},       {"names", case_names}, {"h5", case_h5},
    };
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        make_tmpdir("io");
        cases[i].fn();
        cleanup_tmpdir();
        g_dir[0] = '\0';
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "test_io: no case named '%s'\n", argc > 1 ? argv[1] : "");
        return 2;
    }
    if (g_failures) fprintf(stderr, "test_io: %d failure(s)\n", g_failures);
    return g_failures ? 1 : 0;
}
