/*
 * io/atomic.h — writing a file or a folder so that readers, and a crash at any instant, only ever
 * see the old version or the new one; and clearing away what writers that died left behind.
 *
 * io/ is the file layer under data/, checkpoints/ and train/: this atomic-write helper and the one
 * HDF5 helper layer (io/h5.h). It includes engine/common.h (Status, errors, xmalloc) and system
 * headers, nothing else of the project: train -> checkpoints, losses, data -> io -> engine.
 *
 * The temporary name, the only one the project writes, for files and folders alike:
 *
 *     <path>.tmp-<pid>-<n>
 *
 * beside the destination (same folder, so the final rename is atomic); <pid> is the writer's
 * process id and <n> a per-process counter, both decimal. It is created exclusively (O_EXCL, or
 * mkdir), so two writers, threads or processes, never share one. io_clean_stale_temps() removes
 * the names of this pattern whose <pid> no longer runs; it also knows "<path>.tmp-<pid>", the
 * name older builds of ckpt.c used.
 *
 * Use:
 *     AtomicFile af;
 *     if (io_atomic_begin(&af, path)) return DISTILL_ERR;    // af.fp open for writing
 *     ... fwrite(..., af.fp) ...; on an error of your own: io_atomic_abort(&af);
 *     return io_atomic_commit(&af);
 * A library that opens files by name (HDF5's H5Fcreate, a folder of files) gets
 * io_atomic_begin_named / io_atomic_begin_dir and writes under af.tmp, closing it before commit.
 *
 * Promise: after commit returns DISTILL_OK the new content is at `path`, fsynced, and the rename
 * is fsynced in the parent folder. After any failure (begin, commit) or an abort, `path` holds what
 * it held before and the temporary is gone. Every error names the destination, the step that
 * failed and the system's reason (strerror) through distill_set_error.
 */
#ifndef DISTILL_IO_ATOMIC_H
#define DISTILL_IO_ATOMIC_H

#include <stdio.h>

#include "engine/common.h"

typedef enum { IO_ATOMIC_STREAM, IO_ATOMIC_NAMED, IO_ATOMIC_DIR } IoAtomicKind;

typedef struct AtomicFile {
    char *path;        /* the destination (trailing '/' removed), xmalloc'ed; NULL when idle */
    char *tmp;         /* "<path>.tmp-<pid>-<n>", beside it; write here (NAMED, DIR) */
    FILE *fp;          /* STREAM: open "wb" on tmp until commit or abort; otherwise NULL */
    IoAtomicKind kind;
    int live;          /* 1 + its slot in the table io_atomic_discard_live() reads; 0: none */
} AtomicFile;

/* Creates the temporary file and opens af->fp on it. The file's mode is 0666 less the umask. */
Status io_atomic_begin(AtomicFile *af, const char *path);
/* Creates the temporary file, empty and closed: the caller writes af->tmp by name (for instance
 * H5Fcreate(af->tmp, H5F_ACC_TRUNC, ...)) and closes it before commit. */
Status io_atomic_begin_named(AtomicFile *af, const char *path);
/* Creates the temporary folder (0777 less the umask): the caller fills it. On commit it replaces
 * `path`: a folder there is swapped out in one step (renameat2 RENAME_EXCHANGE; where the
 * filesystem cannot, moved aside to a temporary name first) and then removed with its contents.
 * A file (not a folder) at `path` is an error: it is never replaced by a folder. */
Status io_atomic_begin_dir(AtomicFile *af, const char *path);

/* Flushes and closes af->fp (STREAM), fsyncs the temporary (a folder: every file and folder in
 * it), renames it onto path, fsyncs the parent folder. Always leaves af idle: on failure the
 * temporary is removed and path is untouched. A parent-folder fsync that fails after the rename
 * returns DISTILL_ERR too (the new content is in place; only its durability is unknown), except
 * where the filesystem cannot fsync a folder (EINVAL, ENOTSUP). */
Status io_atomic_commit(AtomicFile *af);
/* Closes af->fp if open and removes the temporary (a folder with its contents). A no-op on an idle
 * AtomicFile (zeroed, or after commit or abort), so it is safe on every clean-up path. */
void io_atomic_abort(AtomicFile *af);

/* Writes len bytes as the whole content of path, atomically (begin + write + commit). */
Status io_write_file_atomic(const char *path, const void *data, size_t len);

/* mkdir -p: creates path and its missing parents (mode 0777 less the umask). An existing folder
 * is fine; an existing file at path or on the way is an error naming it. */
Status io_mkdir_p(const char *path);

/* True when the last component of name follows the temporary-name pattern (or the older
 * "<x>.tmp-<pid>"), with at least one character before ".tmp-". */
bool io_is_temp_name(const char *name);
/* The writer pid in a temporary name, or 0 when name is not one. */
long io_temp_owner_pid(const char *name);

/* Removes the temporaries directly inside dir (files, and folders with their contents) whose
 * writer no longer runs on this host: kill(pid, 0) fails with ESRCH. This process's own and those
 * of live processes (or of processes we may not signal) are kept, as is every other name.
 * Best effort: goes on past a failure, and returns DISTILL_ERR naming the first one (or a dir
 * that cannot be read). */
Status io_clean_stale_temps(const char *dir);

/* For a signal handler about to _exit: unlinks the temporary files (not folders) of the atomic
 * writes now in progress in this process, so an interrupted write leaves nothing behind. Only
 * async-signal-safe calls (unlink); a rename that already happened makes it a no-op for that one.
 * Folders (io_atomic_begin_dir) are left to io_clean_stale_temps at the next start. */
void io_atomic_discard_live(void);

/* Test hook, NULL in normal runs: called inside io_atomic_commit with "synced" (the temporary is
 * on disk, not yet renamed) and "renamed" (in place, the parent folder not yet fsynced), so a test
 * can kill the writer at each step. */
extern void (*io_atomic_stage_hook)(const char *stage);

#endif
