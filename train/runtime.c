/* runtime.c — threads and device selection (see runtime.h). */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/backend.h"

void runtime_set_threads(int n) { backend_cpu_set_threads(n); }

int runtime_threads(void) { return backend_cpu_threads(); }

Status runtime_pick_device(const char *name, Device *out) {
    Device d = device_cpu();
    if (!strcmp(name, "cpu")) {
        *out = d;
        return DISTILL_OK;
    }
    int index = 0;
    char extra;
    bool want_cuda = !strcmp(name, "cuda") || sscanf(name, "cuda:%d%c", &index, &extra) == 1;
    if (!want_cuda && strcmp(name, "auto") != 0) {
        distill_set_error("device: expected cpu, cuda, cuda:N or auto, found '%s'", name);
        return DISTILL_ERR;
    }
    const Backend *cuda = backend_cuda();
    bool have = cuda && cuda->device_count && cuda->device_count() > 0;
    if (!have) {
        if (!want_cuda) {
            *out = d;
            return DISTILL_OK;
        }
        distill_set_error("device: cuda was asked for, but %s", cuda ? "no CUDA device is present"
                                                                    : "this build has no CUDA backend");
        return DISTILL_ERR;
    }
    d.type = DEV_CUDA;
    d.index = index;
    if (d.index < 0 || d.index >= cuda->device_count()) {
        distill_set_error("device: %s does not exist (%d CUDA devices)", name, cuda->device_count());
        return DISTILL_ERR;
    }
    if (cuda->init(d.index) != DISTILL_OK) return DISTILL_ERR;
    *out = d;
    return DISTILL_OK;
}
