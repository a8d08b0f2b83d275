/* comm_nonccl.c — the NCCL half of comm.h in a build without NCCL: comm_use_device refuses GPU
 * worlds first, so nothing here is reached. */
#include "comm.h"

bool comm_have_nccl(void) { return false; }
Status comm_nccl_init(Comm *c, int device_index) {
    distill_set_error("this build has no NCCL");
    return DISTILL_ERR;
}
void comm_nccl_allreduce_f32(Comm *c, float *dev_buf, size_t n, const char *what) {
    comm_fail(c, "internal: NCCL all-reduce in a build without NCCL");
}
void comm_nccl_free(Comm *c) {}
