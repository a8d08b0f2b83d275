/* comm_mpi.c — comm.h over MPI: MPI_COMM_WORLD, a shared-memory split for the local rank, and
 * collectives started non-blocking and waited for with a deadline, so a dead or hung rank ends
 * the job (MPI_Abort) instead of leaving the others waiting forever. */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm.h"

bool comm_have_mpi(void) { return true; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static _Noreturn void fail_mpi(Comm *c, int err, const char *what) {
    char text[MPI_MAX_ERROR_STRING], msg[MPI_MAX_ERROR_STRING + 256];
    int len = 0;
    MPI_Error_string(err, text, &len);
    snprintf(msg, sizeof msg, "%s failed (step %lld): %s", what, c->step, text);
    comm_fail(c, msg);
}

/* Waits for req with the deadline; polls with a sleep that grows to 1 ms so a waiting rank does
 * not take the core its peers compute on. */
static void wait_deadline(Comm *c, MPI_Request *req, const char *what) {
    double t0 = now_s();
    long sleep_ns = 1000;
    for (;;) {
        int done = 0;
        int err = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (err != MPI_SUCCESS) fail_mpi(c, err, what);
        if (done) return;
        if (now_s() - t0 > c->timeout_s) {
            char msg[512];
            snprintf(msg, sizeof msg,
                     "%s did not complete in %.0f s (step %lld): a rank has died or hangs; aborting the job "
                     "(DISTILL_COMM_TIMEOUT sets the limit)",
                     what, c->timeout_s, c->step);
            comm_fail(c, msg);
        }
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 1000000) sleep_ns *= 2;
    }
}

Status comm_mpi_init(int *argc, char ***argv, Comm *c) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS) {
        distill_set_error("MPI_Init failed");
        return DISTILL_ERR;
    }
    c->mpi = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->world);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local) != MPI_SUCCESS) {
        distill_set_error("rank %d: MPI_Comm_split_type (the ranks on this node) failed", c->rank);
        return DISTILL_ERR;
    }
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_size(local, &c->local_world);
    MPI_Comm_free(&local);
    return DISTILL_OK;
}

void comm_mpi_finalize(Comm *c) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

void comm_mpi_allreduce(Comm *c, void *buf, size_t n, int dtype, const char *what) {
    static const MPI_Datatype types[3] = {MPI_FLOAT, MPI_DOUBLE, MPI_INT64_T};
    static const size_t sizes[3] = {sizeof(float), sizeof(double), sizeof(int64_t)};
    /* counts are int: large buffers go in chunks (each one collective, in the same order everywhere) */
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += chunk) {
        size_t m = n - off < chunk ? n - off : chunk;
        MPI_Request req;
        int err = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + off * sizes[dtype], (int)m, types[dtype], MPI_SUM,
                                 MPI_COMM_WORLD, &req);
        if (err != MPI_SUCCESS) fail_mpi(c, err, what);
        wait_deadline(c, &req, what);
    }
}

void comm_mpi_bcast(Comm *c, void *buf, size_t bytes, int root, const char *what) {
    DCHECK(bytes < (size_t)1 << 31);
    MPI_Request req;
    int err = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD, &req);
    if (err != MPI_SUCCESS) fail_mpi(c, err, what);
    wait_deadline(c, &req, what);
}

_Noreturn void comm_mpi_abort(Comm *c, int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
