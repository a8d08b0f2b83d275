/*
 * atomic.c — temporary name, fsync, rename: the one atomic write of the project, for files and
 * folders, and the clean-up of dead writers' temporaries. See atomic.h for the promises.
 */
#define _GNU_SOURCE /* renameat2, nftw */
#include "atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

void (*io_atomic_stage_hook)(const char *stage) = NULL;

static void stage(const char *s) {
    if (io_atomic_stage_hook) io_atomic_stage_hook(s);
}

static atomic_uint g_seq; /* <n> of the temporary names of this process */

/* "<path>.tmp-<pid>-<n>", xmalloc'ed. */
static char *temp_name(const char *path) {
    unsigned n = atomic_fetch_add(&g_seq, 1);
    size_t len = strlen(path) + 48;
    char *t = xmalloc(len);
    snprintf(t, len, "%s.tmp-%ld-%u", path, (long)getpid(), n);
    return t;
}

/* The folder that holds path ("." for a bare name), xmalloc'ed. */
static char *parent_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    size_t n = (size_t)(slash - path);
    char *p = xmalloc(n + 1);
    memcpy(p, path, n);
    p[n] = '\0';
    return p;
}

/* The temporaries now being written, for io_atomic_discard_live (a signal handler): a slot's
 * name is complete before its flag is set, and the flag is cleared before the name is reused. */
#define LIVE_SLOTS 8
#define LIVE_NAME 4608
static char g_live_name[LIVE_SLOTS][LIVE_NAME];
static volatile sig_atomic_t g_live_used[LIVE_SLOTS];

static void live_add(AtomicFile *af) {
    if (af->kind == IO_ATOMIC_DIR || strlen(af->tmp) >= LIVE_NAME) return;
    for (int i = 0; i < LIVE_SLOTS; i++) {
        if (g_live_used[i]) continue;
        memcpy(g_live_name[i], af->tmp, strlen(af->tmp) + 1);
        atomic_signal_fence(memory_order_seq_cst);
        g_live_used[i] = 1;
        af->live = i + 1;
        return;
    }
}

void io_atomic_discard_live(void) {
    for (int i = 0; i < LIVE_SLOTS; i++)
        if (g_live_used[i]) unlink(g_live_name[i]);
}

static void clear(AtomicFile *af) {
    if (af->live > 0) g_live_used[af->live - 1] = 0;
    atomic_signal_fence(memory_order_seq_cst);
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

/* ---------------------------------------------------------------- removing a tree */

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p) != 0 && errno != ENOENT ? -1 : 0;
}

/* Removes path: a file or link, or a folder with everything in it (links are not followed). */
static int remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path) != 0 && errno != ENOENT ? -1 : 0;
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---------------------------------------------------------------- begin */

static Status begin(AtomicFile *af, const char *path_in, IoAtomicKind kind) {
    memset(af, 0, sizeof *af);
    if (!path_in || !path_in[0]) {
        distill_set_error("cannot write: the path is empty");
        return DISTILL_ERR;
    }
    char *path = xstrdup(path_in);
    /* "out/" names the folder "out": the temporary must sit beside it, not inside. */
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--) path[n - 1] = '\0';
    for (int tries = 0;; tries++) {
        char *tmp = temp_name(path);
        int rc, fd = -1;
        if (kind == IO_ATOMIC_DIR) {
            rc = mkdir(tmp, 0777);
        } else {
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            rc = fd < 0 ? -1 : 0;
        }
        if (rc == 0) {
            af->path = path;
            af->tmp = tmp;
            af->kind = kind;
            live_add(af);
            if (kind == IO_ATOMIC_STREAM) {
                af->fp = fdopen(fd, "wb");
                if (!af->fp) {
                    int e = errno;
                    close(fd);
                    distill_set_error("%s: cannot write: cannot open a stream on '%s': %s", path,
                                      tmp, strerror(e));
                    io_atomic_abort(af);
                    return DISTILL_ERR;
                }
            } else if (fd >= 0) {
                close(fd);
            }
            return DISTILL_OK;
        }
        int e = errno;
        if (e != EEXIST || tries >= 100) { /* EEXIST: a leftover of an earlier process, same pid */
            char *dir = parent_of(path);
            distill_set_error("%s: cannot write: cannot create the temporary %s '%s' in folder '%s': %s",
                              path, kind == IO_ATOMIC_DIR ? "folder" : "file", tmp, dir, strerror(e));
            free(dir);
            free(tmp);
            free(path);
            return DISTILL_ERR;
        }
        free(tmp);
    }
}

Status io_atomic_begin(AtomicFile *af, const char *path) { return begin(af, path, IO_ATOMIC_STREAM); }
Status io_atomic_begin_named(AtomicFile *af, const char *path) { return begin(af, path, IO_ATOMIC_NAMED); }
Status io_atomic_begin_dir(AtomicFile *af, const char *path) { return begin(af, path, IO_ATOMIC_DIR); }

/* ---------------------------------------------------------------- commit */

/* fsync by name; a folder that cannot be fsynced here (EINVAL, ENOTSUP) counts as done. */
static int fsync_path(const char *p, bool dir) {
    int fd = open(p, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc != 0 && dir && (errno == EINVAL || errno == ENOTSUP)) rc = 0;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static int sync_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    if (flag == FTW_F) return fsync_path(p, false);
    if (flag == FTW_DP) return fsync_path(p, true);
    return 0; /* links and the like: nothing of ours to sync */
}

/* Puts the finished temporary folder at path (see io_atomic_begin_dir). */
static Status place_dir(AtomicFile *af) {
    struct stat st;
    if (lstat(af->path, &st) != 0) {
        if (errno == ENOENT && rename(af->tmp, af->path) == 0) return DISTILL_OK;
        distill_set_error("%s: cannot rename '%s' into place: %s", af->path, af->tmp, strerror(errno));
        return DISTILL_ERR;
    }
    if (!S_ISDIR(st.st_mode)) {
        distill_set_error("%s: exists and is not a folder; refusing to replace it", af->path);
        return DISTILL_ERR;
    }
    if (renameat2(AT_FDCWD, af->tmp, AT_FDCWD, af->path, RENAME_EXCHANGE) == 0) {
        remove_tree(af->tmp); /* now the old folder */
        return DISTILL_OK;
    }
    /* No exchange here (EINVAL: filesystem, ENOSYS: kernel): move the old folder aside under a
     * temporary name of its own (reserved by mkdir; rename replaces the empty folder), then put
     * the new one in. */
    char *old = NULL;
    int e = 0;
    for (int tries = 0; tries < 100; tries++) {
        old = temp_name(af->path);
        if (mkdir(old, 0700) == 0) break;
        e = errno;
        free(old);
        old = NULL;
        if (e != EEXIST) break;
    }
    Status s = DISTILL_ERR;
    if (!old) {
        distill_set_error("%s: cannot move the old folder aside: %s", af->path, strerror(e));
    } else if (rename(af->path, old) != 0) {
        distill_set_error("%s: cannot move the old folder aside to '%s': %s", af->path, old,
                          strerror(errno));
        rmdir(old);
    } else if (rename(af->tmp, af->path) != 0) {
        distill_set_error("%s: cannot rename '%s' into place: %s", af->path, af->tmp, strerror(errno));
        rename(old, af->path);
    } else {
        remove_tree(old);
        s = DISTILL_OK;
    }
    free(old);
    return s;
}

Status io_atomic_commit(AtomicFile *af) {
    DCHECK(af->path != NULL && af->tmp != NULL);
    const char *what = "fsync of";
    int rc = 0;
    if (af->kind == IO_ATOMIC_STREAM) {
        FILE *fp = af->fp;
        af->fp = NULL;
        if (fflush(fp) != 0 || ferror(fp)) {
            what = "writing", rc = -1;
            if (!errno) errno = EIO;
        } else if (fsync(fileno(fp)) != 0) {
            rc = -1;
        }
        int e = errno;
        if (fclose(fp) != 0 && rc == 0) what = "closing", rc = -1;
        else errno = e;
    } else if (af->kind == IO_ATOMIC_NAMED) {
        rc = fsync_path(af->tmp, false);
    } else {
        rc = nftw(af->tmp, sync_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    if (rc != 0) {
        distill_set_error("%s: cannot write: %s '%s' failed: %s", af->path, what, af->tmp,
                          strerror(errno));
        io_atomic_abort(af);
        return DISTILL_ERR;
    }
    stage("synced");
    if (af->kind == IO_ATOMIC_DIR) {
        if (place_dir(af) != DISTILL_OK) {
            io_atomic_abort(af);
            return DISTILL_ERR;
        }
    } else if (rename(af->tmp, af->path) != 0) {
        distill_set_error("%s: cannot write: rename from '%s' failed: %s", af->path, af->tmp,
                          strerror(errno));
        io_atomic_abort(af);
        return DISTILL_ERR;
    }
    stage("renamed");
    char *dir = parent_of(af->path);
    Status s = DISTILL_OK;
    if (fsync_path(dir, true) != 0) {
        distill_set_error("%s: written, but fsync of folder '%s' failed: %s", af->path, dir,
                          strerror(errno));
        s = DISTILL_ERR;
    }
    free(dir);
    clear(af);
    return s;
}

void io_atomic_abort(AtomicFile *af) {
    if (!af->tmp) {
        clear(af);
        return;
    }
    if (af->fp) fclose(af->fp);
    af->fp = NULL;
    int e = errno; /* keep the caller's errno for its message */
    remove_tree(af->tmp);
    errno = e;
    clear(af);
}

Status io_write_file_atomic(const char *path, const void *data, size_t len) {
    AtomicFile af;
    if (io_atomic_begin(&af, path) != DISTILL_OK) return DISTILL_ERR;
    if (len && fwrite(data, 1, len, af.fp) != len) {
        distill_set_error("%s: cannot write: writing '%s' failed: %s", af.path, af.tmp,
                          strerror(errno));
        io_atomic_abort(&af);
        return DISTILL_ERR;
    }
    return io_atomic_commit(&af);
}

/* ---------------------------------------------------------------- folders */

Status io_mkdir_p(const char *path) {
    if (!path || !path[0]) {
        distill_set_error("cannot create a folder: the path is empty");
        return DISTILL_ERR;
    }
    char *buf = xstrdup(path);
    Status s = DISTILL_OK;
    size_t n = strlen(buf);
    for (size_t i = 1; i <= n && s == DISTILL_OK; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        if (buf[i - 1] == '/') continue; /* "a//b", "a/" */
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0) {
            struct stat st;
            int e = errno;
            bool whole = c == '\0' && i == n; /* the folder asked for, not a parent */
            if (e != EEXIST) {
                if (whole) distill_set_error("%s: cannot create folder: %s", path, strerror(e));
                else distill_set_error("%s: cannot create folder '%s': %s", path, buf, strerror(e));
                s = DISTILL_ERR;
            } else if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
                if (whole) distill_set_error("%s: exists and is not a folder", path);
                else distill_set_error("%s: cannot create folder: '%s' exists and is not a folder", path, buf);
                s = DISTILL_ERR;
            }
        }
        buf[i] = c;
    }
    free(buf);
    return s;
}

/* ---------------------------------------------------------------- temporary names */

/* Digits only, 1..18 of them, into *v. */
static bool parse_digits(const char *s, size_t len, long long *v) {
    if (len == 0 || len > 18) return false;
    long long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

long io_temp_owner_pid(const char *name) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    /* the last ".tmp-": "<x>.tmp-<pid>-<n>" or "<x>.tmp-<pid>" */
    const char *t = NULL;
    for (const char *p = strstr(base, ".tmp-"); p; p = strstr(p + 1, ".tmp-")) t = p;
    if (!t || t == base) return 0;
    const char *d = t + 5, *dash = strchr(d, '-');
    long long pid, n;
    if (dash) {
        if (!parse_digits(d, (size_t)(dash - d), &pid) || !parse_digits(dash + 1, strlen(dash + 1), &n))
            return 0;
    } else if (!parse_digits(d, strlen(d), &pid)) {
        return 0;
    }
    return pid > 0 && pid <= 0x7fffffff ? (long)pid : 0;
}

bool io_is_temp_name(const char *name) { return io_temp_owner_pid(name) > 0; }

Status io_clean_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        distill_set_error("%s: cannot read folder: %s", dir, strerror(errno));
        return DISTILL_ERR;
    }
    Status s = DISTILL_OK;
    long self = (long)getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = io_temp_owner_pid(e->d_name);
        if (pid <= 0 || pid == self) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* running, or not ours to ask */
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = xmalloc(n);
        snprintf(p, n, "%s/%s", dir, e->d_name);
        if (remove_tree(p) != 0 && s == DISTILL_OK) {
            distill_set_error("%s: cannot remove a dead writer's temporary: %s", p, strerror(errno));
            s = DISTILL_ERR;
        }
        free(p);
    }
    closedir(d);
    return s;
}
