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

/* Arrival notes: before each all-reduce every other rank sends rank 0 a small note (tag
 * ARRIVAL_TAG, the collective's sequence number). When the collective times out, rank 0 names the
 * ranks whose note has not come: the ones that died or hang. */
#define ARRIVAL_TAG 7301

typedef struct {
    MPI_Request *recv; /* rank 0: one per other rank */
    int *got;
    MPI_Request send;  /* the other ranks */
    int seq;
} Arrivals;

/* The message for a timed-out collective, naming the missing ranks when this is rank 0. */
static void timeout_message(Comm *c, Arrivals *a, const char *what, char *msg, size_t n) {
    if (c->rank == 0 && a && a->recv) {
        char ranks[256] = "";
        size_t len = 0;
        int missing = 0;
        for (int r = 1; r < c->world; r++) {
            int done = 1;
            if (a->recv[r] != MPI_REQUEST_NULL) MPI_Test(&a->recv[r], &done, MPI_STATUS_IGNORE);
            if (!done && missing++ < 16 && len < sizeof ranks - 16)
                len += (size_t)snprintf(ranks + len, sizeof ranks - len, "%s%d", missing > 1 ? ", " : "", r);
        }
        if (missing) {
            snprintf(msg, n,
                     "rank%s %s did not reach %s (step %lld) within %.0f s: %s died or hangs; aborting the job "
                     "(DISTILL_COMM_TIMEOUT sets the limit)",
                     missing > 1 ? "s" : "", ranks, what, c->step, c->timeout_s, missing > 1 ? "they" : "it");
            return;
        }
    }
    snprintf(msg, n,
             "%s did not complete in %.0f s (step %lld): %s; aborting the job "
             "(DISTILL_COMM_TIMEOUT sets the limit)",
             what, c->timeout_s, c->step,
             c->rank == 0 && a && a->recv ? "every rank reached it, and one stopped responding inside it"
                                         : "a rank has died or hangs (rank 0 names it)");
}

/* Waits for req with the deadline; polls with a sleep that grows to 1 ms so a waiting rank does
 * not take the core its peers compute on. */
static void wait_deadline(Comm *c, MPI_Request *req, Arrivals *a, const char *what) {
    double t0 = now_s();
    long sleep_ns = 1000;
    for (;;) {
        int done = 0;
        int err = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (err != MPI_SUCCESS) fail_mpi(c, err, what);
        if (done) return;
        if (now_s() - t0 > c->timeout_s) {
            char msg[768];
            timeout_message(c, a, what, msg, sizeof msg);
            comm_fail(c, msg);
        }
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 1000000) sleep_ns *= 2;
    }
}

static void arrivals_post(Comm *c, Arrivals *a) {
    static int seq = 0;
    memset(a, 0, sizeof *a);
    a->seq = ++seq;
    a->send = MPI_REQUEST_NULL;
    if (c->rank == 0) {
        a->recv = xmalloc((size_t)c->world * sizeof *a->recv);
        a->got = xcalloc((size_t)c->world, sizeof *a->got);
        a->recv[0] = MPI_REQUEST_NULL;
        for (int r = 1; r < c->world; r++)
            MPI_Irecv(&a->got[r], 1, MPI_INT, r, ARRIVAL_TAG, MPI_COMM_WORLD, &a->recv[r]);
    } else {
        MPI_Isend(&a->seq, 1, MPI_INT, 0, ARRIVAL_TAG, MPI_COMM_WORLD, &a->send);
    }
}

/* After the collective completed every note was sent: complete the requests. */
static void arrivals_finish(Comm *c, Arrivals *a, const char *what) {
    if (c->rank == 0) {
        for (int r = 1; r < c->world; r++) {
            wait_deadline(c, &a->recv[r], NULL, what);
            if (a->got[r] != a->seq) {
                char msg[256];
                snprintf(msg, sizeof msg, "internal: rank %d is at collective %d, rank 0 at %d (%s)", r, a->got[r],
                         a->seq, what);
                comm_fail(c, msg);
            }
        }
        free(a->recv);
        free(a->got);
    } else {
        wait_deadline(c, &a->send, NULL, what);
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
        Arrivals a;
        arrivals_post(c, &a);
        MPI_Request req;
        int err = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + off * sizes[dtype], (int)m, types[dtype], MPI_SUM,
                                 MPI_COMM_WORLD, &req);
        if (err != MPI_SUCCESS) fail_mpi(c, err, what);
        wait_deadline(c, &req, &a, what);
        arrivals_finish(c, &a, what);
    }
}

void comm_mpi_bcast(Comm *c, void *buf, size_t bytes, int root, const char *what) {
    DCHECK(bytes < (size_t)1 << 31);
    MPI_Request req;
    int err = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD, &req);
    if (err != MPI_SUCCESS) fail_mpi(c, err, what);
    wait_deadline(c, &req, NULL, what);
}

_Noreturn void comm_mpi_abort(Comm *c, int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
