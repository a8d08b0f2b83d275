/* comm.c — the job's processes: launcher detection, the single-process case, and the collectives'
 * dispatch to MPI or NCCL (see comm.h). The MPI and NCCL calls live in comm_mpi.c / comm_nccl.c,
 * which CMake replaces with comm_nompi.c / comm_nonccl.c in builds without them. */
#define _POSIX_C_SOURCE 200809L
#include "comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rank and size variables set by the launchers we know (Open MPI, MPICH/Hydra and PMI, PMIx, Slurm).
 * For Slurm the step's task count, set by `srun` only: a batch script itself runs with the
 * allocation's SLURM_NTASKS but is one process. */
static const char *const SIZE_VARS[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS", NULL};
static const char *const RANK_VARS[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID", NULL};

static const char *g_launcher = "none";

/* DISTILL_FORCE_COMM=1: reduce through MPI / NCCL even with one rank (tests compare that path
 * with the plain single-process one). */
static bool forced(void) {
    const char *v = getenv("DISTILL_FORCE_COMM");
    return v && !strcmp(v, "1");
}

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

Status comm_init(int *argc, char ***argv, Comm *c) {
    memset(c, 0, sizeof *c);
    c->world = c->local_world = 1;
    c->kind = COMM_SINGLE;
    c->timeout_s = 30.0;
    const char *t = getenv("DISTILL_COMM_TIMEOUT");
    if (t && *t) {
        char *end;
        double v = strtod(t, &end);
        if (*end || v <= 0) {
            distill_set_error("DISTILL_COMM_TIMEOUT: expected a positive number of seconds, found '%s'", t);
            return DISTILL_ERR;
        }
        c->timeout_s = v;
    }
    int size = 1;
    const char *var = NULL;
    for (int i = 0; SIZE_VARS[i]; i++)
        if (getenv(SIZE_VARS[i]) && getenv(RANK_VARS[i])) {
            size = env_int(SIZE_VARS[i], 1);
            var = RANK_VARS[i];
            break;
        }
    if (!var) return DISTILL_OK; /* no launcher: one process */
    g_launcher = var;
    if (!comm_have_mpi()) {
        if (size > 1) {
            distill_set_error("launched as one of %d processes (%s=%s), but this distill was built without MPI, "
                              "so the processes would train %d independent copies; rebuild with MPI "
                              "(libopenmpi-dev, -DDISTILL_MPI=ON) or run one process",
                              size, var, getenv(var), size);
            return DISTILL_ERR;
        }
        return DISTILL_OK;
    }
    if (comm_mpi_init(argc, argv, c) != DISTILL_OK) return DISTILL_ERR;
    c->kind = c->world > 1 || forced() ? COMM_MPI : COMM_SINGLE;
    return DISTILL_OK;
}

Status comm_use_device(Comm *c, Device device) {
    if (device.type != DEV_CUDA || c->kind == COMM_SINGLE) return DISTILL_OK;
    if (!comm_have_nccl()) {
        distill_set_error("%d GPU ranks need NCCL to reduce gradients, and this build has none "
                          "(install NCCL and rebuild with -DDISTILL_NCCL=ON)", c->world);
        return DISTILL_ERR;
    }
    if (comm_nccl_init(c, device.index) != DISTILL_OK) return DISTILL_ERR;
    c->kind = COMM_NCCL;
    return DISTILL_OK;
}

void comm_finalize(Comm *c) {
    if (c->nccl) comm_nccl_free(c);
    if (c->mpi) comm_mpi_finalize(c);
    c->mpi = false;
}

const char *comm_kind_name(CommKind k) {
    switch (k) {
    case COMM_SINGLE: return "none";
    case COMM_MPI: return "mpi";
    case COMM_NCCL: return "nccl";
    }
    return "?";
}

const char *comm_describe(const Comm *c) { return c->mpi ? g_launcher : "no launcher"; }

void comm_allreduce_f32(Comm *c, float *buf, size_t n, bool on_device, const char *what) {
    if (c->kind == COMM_SINGLE || n == 0) return;
    if (on_device) {
        if (c->kind != COMM_NCCL) comm_fail(c, "internal: a device buffer to reduce without NCCL");
        comm_nccl_allreduce_f32(c, buf, n, what);
    } else {
        comm_mpi_allreduce(c, buf, n, 0, what);
    }
}

void comm_allreduce_f64(Comm *c, double *buf, size_t n, const char *what) {
    if (c->kind != COMM_SINGLE && n) comm_mpi_allreduce(c, buf, n, 1, what);
}

void comm_allreduce_i64(Comm *c, int64_t *buf, size_t n, const char *what) {
    if (c->kind != COMM_SINGLE && n) comm_mpi_allreduce(c, buf, n, 2, what);
}

void comm_bcast(Comm *c, void *buf, size_t bytes, int root, const char *what) {
    if (c->kind != COMM_SINGLE && bytes) comm_mpi_bcast(c, buf, bytes, root, what);
}

bool comm_any(Comm *c, bool flag, const char *what) {
    int64_t v = flag ? 1 : 0;
    comm_allreduce_i64(c, &v, 1, what);
    return v != 0;
}

Status comm_check_same(Comm *c, uint64_t hash, const char *what) {
    if (c->world == 1) return DISTILL_OK;
    /* every rank's hash, gathered by a sum of one-hot slots */
    int64_t *all = xcalloc((size_t)c->world, sizeof *all);
    all[c->rank] = (int64_t)hash;
    comm_allreduce_i64(c, all, (size_t)c->world, what);
    char ranks[256] = "";
    size_t len = 0;
    int bad = 0;
    for (int r = 1; r < c->world; r++)
        if (all[r] != all[0]) {
            if (bad++ < 16 && len < sizeof ranks - 16) len += (size_t)snprintf(ranks + len, sizeof ranks - len, "%s%d", bad > 1 ? ", " : "", r);
        }
    free(all);
    if (!bad) return DISTILL_OK;
    distill_set_error("the ranks did not load the same %s: rank%s %s differ%s from rank 0; every rank "
                      "must be started with the same config, overrides and files",
                      what, bad > 1 ? "s" : "", ranks, bad > 1 ? "" : "s");
    return DISTILL_ERR;
}

_Noreturn void comm_fail(Comm *c, const char *msg) {
    fprintf(stderr, "distill: error: rank %d: %s\n", c->rank, msg);
    fflush(stderr);
    fflush(stdout);
    if (c->mpi && c->world > 1) comm_mpi_abort(c, 1);
    exit(1);
}
