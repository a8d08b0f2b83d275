/*
 * fuzz_h5_data.c — libFuzzer harness for the prepared-data validator (data/dataset.c): the checks
 * the trainer, `distill eval` and `distill info` run on an HDF5 file from `distill prepare`.
 *
 * Input: the bytes of an HDF5 file (seeds: small files `distill prepare` wrote, made by
 * tests/fuzz/make_seeds.c). The harness writes them to a scratch file and runs
 * dataset_open(load_tokens true), dataset_read_vocab and data_info_print (to /dev/null).
 * Properties (each break aborts): an opened dataset holds what dataset.h promises: lengths in
 * 1..max_seq, offsets that add them up, ids in [0, vocab_size), class labels >= 0 and below
 * num_labels.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/dataset.h"
#include "fuzz_h5.h"
#include "fuzz_util.h"

#define FAIL(...) (fprintf(stderr, "fuzz_h5_data: " __VA_ARGS__), fputc('\n', stderr), abort())

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_h5_init();
    return 0;
}

static void check_dataset(const Dataset *ds) {
    if (ds->rows < 0 || ds->max_seq < 1 || ds->vocab_size < 1)
        FAIL("rows %lld, max_seq %d, vocab_size %d", (long long)ds->rows, ds->max_seq, ds->vocab_size);
    if (ds->offsets[0] != 0) FAIL("offsets[0] = %lld", (long long)ds->offsets[0]);
    for (int64_t i = 0; i < ds->rows; i++) {
        if (ds->lengths[i] < 1 || ds->lengths[i] > ds->max_seq)
            FAIL("row %lld: length %d, max_seq %d", (long long)i, ds->lengths[i], ds->max_seq);
        if (ds->offsets[i + 1] != ds->offsets[i] + ds->lengths[i])
            FAIL("row %lld: offsets %lld -> %lld, length %d", (long long)i, (long long)ds->offsets[i],
                 (long long)ds->offsets[i + 1], ds->lengths[i]);
        if (ds->labels && (ds->labels[i] < 0 || (ds->num_labels > 0 && ds->labels[i] >= ds->num_labels)))
            FAIL("row %lld: label %d, num_labels %d", (long long)i, ds->labels[i], ds->num_labels);
    }
    for (int64_t k = 0; ds->ids && k < ds->offsets[ds->rows]; k++)
        if (ds->ids[k] < 0 || ds->ids[k] >= ds->vocab_size)
            FAIL("token %lld: id %d, vocab_size %d", (long long)k, ds->ids[k], ds->vocab_size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[600];
    fuzz_write("data.h5", data, size, path, sizeof path);
    Dataset *ds = NULL;
    if (fuzz_said("dataset_open", dataset_open(&ds, path, true) == DISTILL_OK)) {
        check_dataset(ds);
        dataset_free(ds);
    }
    char **tokens = NULL;
    int n = 0;
    if (dataset_read_vocab(path, &tokens, &n) == DISTILL_OK) {
        for (int i = 0; i < n; i++) free(tokens[i]);
        free(tokens);
    }
    (void)data_info_print(path, g_devnull);
    return 0;
}
