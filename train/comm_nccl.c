/* comm_nccl.c — gradient all-reduce over NCCL for GPU ranks (see comm.h). The unique id travels
 * over MPI; the reduction runs on a stream of its own after the caller has synchronised the
 * engine's stream, and is waited for with a deadline that also polls NCCL's asynchronous error,
 * so a peer that died or hangs aborts the communicator and the job instead of blocking forever.
 * Built only with NCCL, CUDA and MPI. */
#define _POSIX_C_SOURCE 200809L
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm.h"

typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;
} NcclState;

bool comm_have_nccl(void) { return true; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

Status comm_nccl_init(Comm *c, int device_index) {
    ncclUniqueId id;
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess) {
            distill_set_error("rank 0: ncclGetUniqueId: %s", ncclGetErrorString(r));
            return DISTILL_ERR;
        }
    }
    comm_mpi_bcast(c, &id, sizeof id, 0, "the NCCL unique id broadcast");
    NcclState *s = xcalloc(1, sizeof *s);
    cudaError_t ce = cudaSetDevice(device_index);
    if (ce == cudaSuccess) ce = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (ce != cudaSuccess) {
        distill_set_error("rank %d: cuda:%d: %s", c->rank, device_index, cudaGetErrorString(ce));
        free(s);
        return DISTILL_ERR;
    }
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0; /* non-blocking: initialisation and collectives can be timed out and aborted */
    ncclResult_t r = ncclCommInitRankConfig(&s->comm, c->world, id, c->rank, &cfg);
    double t0 = now_s();
    while (r == ncclInProgress || (r == ncclSuccess && ncclCommGetAsyncError(s->comm, &r) == ncclSuccess && r == ncclInProgress)) {
        if (now_s() - t0 > c->timeout_s) {
            ncclCommAbort(s->comm);
            distill_set_error("rank %d: NCCL initialisation did not complete in %.0f s: a rank has died or hangs",
                              c->rank, c->timeout_s);
            cudaStreamDestroy(s->stream);
            free(s);
            return DISTILL_ERR;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (r != ncclSuccess) {
        distill_set_error("rank %d: ncclCommInitRank: %s", c->rank, ncclGetErrorString(r));
        cudaStreamDestroy(s->stream);
        free(s);
        return DISTILL_ERR;
    }
    c->nccl = s;
    return DISTILL_OK;
}

void comm_nccl_allreduce_f32(Comm *c, float *buf, size_t n, const char *what) {
    NcclState *s = c->nccl;
    char msg[512];
    ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, s->comm, s->stream);
    double t0 = now_s();
    for (;;) {
        ncclResult_t ar = ncclSuccess;
        if (r == ncclSuccess || r == ncclInProgress) ncclCommGetAsyncError(s->comm, &ar);
        if ((r != ncclSuccess && r != ncclInProgress) || (ar != ncclSuccess && ar != ncclInProgress)) {
            snprintf(msg, sizeof msg, "%s failed (step %lld): NCCL: %s", what, c->step,
                     ncclGetErrorString(r != ncclSuccess && r != ncclInProgress ? r : ar));
            ncclCommAbort(s->comm);
            comm_fail(c, msg);
        }
        if (ar == ncclSuccess) {
            cudaError_t q = cudaStreamQuery(s->stream);
            if (q == cudaSuccess) return;
            if (q != cudaErrorNotReady) {
                snprintf(msg, sizeof msg, "%s failed (step %lld): CUDA: %s", what, c->step, cudaGetErrorString(q));
                comm_fail(c, msg);
            }
        }
        if (now_s() - t0 > c->timeout_s) {
            ncclCommAbort(s->comm);
            snprintf(msg, sizeof msg, "%s did not complete in %.0f s (step %lld): a rank has died or hangs; "
                     "aborting the job (DISTILL_COMM_TIMEOUT sets the limit)", what, c->timeout_s, c->step);
            comm_fail(c, msg);
        }
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
}

void comm_nccl_free(Comm *c) {
    NcclState *s = c->nccl;
    if (!s) return;
    ncclCommDestroy(s->comm);
    cudaStreamDestroy(s->stream);
    free(s);
    c->nccl = NULL;
}
