/*
 * signals.h — stopping a training run cleanly when the cluster asks (DESIGN §7: a crash loses at
 * most the work since the last checkpoint; a requested stop loses nothing).
 *
 * SIGTERM (what Slurm and most schedulers send before preemption or at the time limit), SIGINT
 * (Ctrl-C) and SIGUSR1 (Slurm's `--signal=USR1@SECONDS`; Open MPI's mpirun forwards it to every
 * rank) only set a flag. The training loop reads it after each optimizer step; the ranks agree on
 * it inside the step's own all-reduce, so every rank stops after the same step. The run then
 * writes a checkpoint, says where it is and how to resume, and exits with DISTILL_EXIT_STOPPED.
 *
 * A second signal while the first is being honoured ends the process at once (exit 128 + signal):
 * the temporary files of writes in progress are unlinked first, and every file in place is a
 * complete earlier version (io/atomic.h), so nothing is corrupted; the run resumes from the last
 * checkpoint.
 *
 * SIGXFSZ (a file-size limit reached) is ignored, so a write past the limit fails with EFBIG and
 * is reported like a full disk instead of killing the process.
 */
#ifndef DISTILL_SIGNALS_H
#define DISTILL_SIGNALS_H

#include <stdbool.h>

/* The exit status of a run stopped by a signal after writing its checkpoint: 75 (EX_TEMPFAIL,
 * "try again later"): not finished, resumable with `--resume auto`. A requeue script tests it. */
#define DISTILL_EXIT_STOPPED 75

/* Installs the handlers (idempotent). */
void signals_install(void);
/* The first stop signal received (SIGTERM, SIGINT or SIGUSR1), or 0 when none. */
int signals_pending(void);
/* "SIGTERM", "SIGINT", "SIGUSR1" or "signal N". */
const char *signals_name(int sig);

#endif
