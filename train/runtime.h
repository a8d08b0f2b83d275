/*
 * runtime.h — process-level choices every subcommand makes the same way: the CPU thread count and
 * the device ("cpu", "cuda", "cuda:N" or "auto": CUDA when compiled in and a GPU is present).
 */
#ifndef DISTILL_RUNTIME_H
#define DISTILL_RUNTIME_H

#include "../engine/tensor.h"

void runtime_set_threads(int n); /* n <= 0: all cores */
int runtime_threads(void);
/* Resolves and initialises the device; an unavailable CUDA request is an error naming why. */
Status runtime_pick_device(const char *name, Device *out);

#endif
