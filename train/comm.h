/*
 * comm.h — the processes of one training job and what they say to each other (DESIGN §8).
 *
 * One process per device. Under a launcher (`mpirun`, `srun`, anything that sets Open MPI's, PMI's
 * or PMIx's rank variables) in a build with MPI, comm_init joins MPI_COMM_WORLD: rank, world size,
 * and the local rank and local world from a shared-memory split (so it works under any launcher).
 * Without a launcher, or in a build without MPI, the job is one process (rank 0 of 1) and every
 * collective is a no-op. A build without MPI that finds itself launched as one of several ranks
 * refuses to start rather than train N independent copies.
 *
 * Gradients: comm_allreduce_sum adds a buffer over all ranks in place: MPI_Allreduce on host
 * buffers (CPU ranks), NCCL on device buffers (GPU ranks; the NCCL unique id is broadcast over
 * MPI, one GPU per local rank). Small host collectives (loss values, evaluation outputs, status
 * flags, hashes) always go over MPI.
 *
 * DISTILL_FORCE_COMM=1 sends a one-rank job's reductions through MPI (and NCCL on a GPU) anyway,
 * so tests can compare that path with the plain single-process one.
 *
 * Faults: every collective waits at most `timeout_s` seconds (DISTILL_COMM_TIMEOUT, default 30).
 * Past that, or on any MPI or NCCL error, the rank prints
 *   distill: error: rank R: <what> did not complete in N s (step S): a rank has died or hangs
 * and aborts the whole job (MPI_Abort), so no rank waits forever. comm_fail lets a rank that found
 * a fatal problem (bad batch, non-finite loss) stop every rank with one message.
 *
 * No function here returns an error status: a failed collective cannot be recovered from, so it
 * aborts the job, after printing the message above.
 */
#ifndef DISTILL_COMM_H
#define DISTILL_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/tensor.h"

typedef enum { COMM_SINGLE = 0, COMM_MPI, COMM_NCCL } CommKind;

typedef struct Comm {
    int rank, world;             /* in the job */
    int local_rank, local_world; /* on this node */
    CommKind kind;               /* how gradients are reduced */
    bool mpi;                    /* MPI is initialised (world may still be 1) */
    double timeout_s;            /* per collective */
    long long step;              /* for messages: the optimizer step in progress */
    void *nccl;                  /* NCCL state (comm_nccl.c), or NULL */
} Comm;

/* Joins the job (see above). Fails only on a launcher the build cannot serve. */
Status comm_init(int *argc, char ***argv, Comm *out);
/* GPU ranks: sets up NCCL on `device` (call after the device is initialised); CPU: nothing. A world
 * of GPU ranks in a build without NCCL is an error. */
Status comm_use_device(Comm *c, Device device);
/* Leaves the job (MPI_Finalize); safe on a single process. */
void comm_finalize(Comm *c);

/* "mpi" | "nccl" | "none". */
const char *comm_kind_name(CommKind k);
/* Which MPI library and launcher rank variable were found, for the log (static text). */
const char *comm_describe(const Comm *c);
/* True when this build has MPI / NCCL compiled in. */
bool comm_have_mpi(void);
bool comm_have_nccl(void);

/* In-place sums over all ranks. `what` names the collective in messages. */
void comm_allreduce_f32(Comm *c, float *buf, size_t n, bool on_device, const char *what);
void comm_allreduce_f64(Comm *c, double *buf, size_t n, const char *what);
void comm_allreduce_i64(Comm *c, int64_t *buf, size_t n, const char *what);
/* Every rank receives root's bytes. */
void comm_bcast(Comm *c, void *buf, size_t bytes, int root, const char *what);
/* Compares `hash` across ranks. On a mismatch every rank fails with a message naming the ranks
 * whose `what` differs from rank 0's. */
Status comm_check_same(Comm *c, uint64_t hash, const char *what);
/* Stops the whole job: prints "distill: error: rank R: msg" (and the error of the calling rank
 * only), then aborts every rank with exit code 1. Never returns. */
_Noreturn void comm_fail(Comm *c, const char *msg);
/* Agrees on a flag: true on every rank if any rank passed true. */
bool comm_any(Comm *c, bool flag, const char *what);

/* The MPI implementation (comm_mpi.c, built with MPI) and NCCL (comm_nccl.c, built with NCCL). */
Status comm_mpi_init(int *argc, char ***argv, Comm *c);
void comm_mpi_finalize(Comm *c);
void comm_mpi_allreduce(Comm *c, void *buf, size_t n, int dtype, const char *what); /* 0 f32, 1 f64, 2 i64 */
void comm_mpi_bcast(Comm *c, void *buf, size_t bytes, int root, const char *what);
_Noreturn void comm_mpi_abort(Comm *c, int code);
Status comm_nccl_init(Comm *c, int device_index);
void comm_nccl_allreduce_f32(Comm *c, float *dev_buf, size_t n, const char *what);
void comm_nccl_free(Comm *c);

#endif
