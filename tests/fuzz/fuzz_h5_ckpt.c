/*
 * fuzz_h5_ckpt.c — libFuzzer harness for the training-checkpoint validators and loaders
 * (checkpoints/ckpt*.c): what `--resume`, `distill eval/export --checkpoint` and `distill info`
 * run on an HDF5 checkpoint.
 *
 * Input: the bytes of an HDF5 file (seeds: checkpoints of a tiny random model that ckpt_save
 * wrote, made by tests/fuzz/make_seeds.c). The harness writes them to a scratch file and runs
 * ckpt_is_checkpoint, ckpt_verify (the full load: format, complete marker, every shape, both
 * hashes), ckpt_load_model_only (what eval and export read) and ckpt_info_print (to /dev/null).
 * Property (a break aborts): a file ckpt_verify accepts also loads model-only (it checks a
 * subset of what the full load checks).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "checkpoints/ckpt.h"
#include "fuzz_h5.h"
#include "fuzz_util.h"

#define FAIL(...) (fprintf(stderr, "fuzz_h5_ckpt: " __VA_ARGS__), fputc('\n', stderr), abort())

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_h5_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[600];
    fuzz_write("ckpt.h5", data, size, path, sizeof path);
    (void)ckpt_is_checkpoint(path);
    bool verified = fuzz_said("ckpt_verify", ckpt_verify(path) == DISTILL_OK);
    TrainCheckpoint ck;
    bool model_ok = fuzz_said("ckpt_load_model_only", ckpt_load_model_only(path, device_cpu(), &ck) == DISTILL_OK);
    if (model_ok) ckpt_free(&ck);
    if (verified && !model_ok)
        FAIL("ckpt_verify accepted a checkpoint ckpt_load_model_only rejects: %s", distill_error());
    (void)ckpt_info_print(path, g_devnull);
    return 0;
}
