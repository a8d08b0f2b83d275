/* comm_nompi.c — the MPI half of comm.h in a build without MPI: comm_init never calls it with a
 * world above one (it refuses first), so each function is unreachable by contract. */
#include <stdlib.h>

#include "comm.h"

bool comm_have_mpi(void) { return false; }
Status comm_mpi_init(int *argc, char ***argv, Comm *c) {
    distill_set_error("this build has no MPI");
    return DISTILL_ERR;
}
void comm_mpi_finalize(Comm *c) {}
void comm_mpi_allreduce(Comm *c, void *buf, size_t n, int dtype, const char *what) { DCHECK(c->world == 1); }
void comm_mpi_bcast(Comm *c, void *buf, size_t bytes, int root, const char *what) { DCHECK(c->world == 1); }
_Noreturn void comm_mpi_abort(Comm *c, int code) { exit(code); }
