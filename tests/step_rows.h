/*
 * step_rows.h — the rows of a Trainer step in the step tests (tests/test_train_step.c and the
 * readbacks case of tests/test_cuda_step.c): STEP_ROWS rows padded to STEP_SEQ, random ids in
 * [1, 97), token types 0/1 (second half of each row), lengths SEQ, 7, 1, 9, 4, SEQ, 10, 6 (one full
 * row, one of length 1: 59 tokens), labels in [0, 3), padding 0.
 */
#ifndef DISTILL_TESTS_STEP_ROWS_H
#define DISTILL_TESTS_STEP_ROWS_H

#include "data/loader.h"
#include "engine/rng.h"

#include <string.h>

#define STEP_ROWS 8 /* rows of a step */
#define STEP_SEQ 11 /* their padded length */

typedef struct {
    int32_t ids[STEP_ROWS * STEP_SEQ], types[STEP_ROWS * STEP_SEQ], lengths[STEP_ROWS], labels[STEP_ROWS];
    float targets[STEP_ROWS];
    int64_t row_index[STEP_ROWS];
} StepRows;

static inline void step_rows_make(StepRows *r, uint64_t seed) {
    static const int32_t lens[STEP_ROWS] = {STEP_SEQ, 7, 1, 9, 4, STEP_SEQ, 10, 6};
    Rng rng = rng_new(seed);
    memset(r, 0, sizeof *r);
    for (int i = 0; i < STEP_ROWS; i++) {
        r->lengths[i] = lens[i];
        r->labels[i] = (int32_t)rng_next_below(&rng, 3);
        r->row_index[i] = i;
        for (int j = 0; j < lens[i]; j++) {
            r->ids[i * STEP_SEQ + j] = 1 + (int32_t)rng_next_below(&rng, 96);
            r->types[i * STEP_SEQ + j] = j >= lens[i] / 2;
        }
    }
}

/* Rows [row0, row0 + n) of r as a batch of a step of `global` rows. */
static inline Batch step_rows_batch(StepRows *r, int row0, int n, int global) {
    return (Batch){.rows = n, .seq = STEP_SEQ, .input_ids = r->ids + row0 * STEP_SEQ,
                   .token_type_ids = r->types + row0 * STEP_SEQ, .lengths = r->lengths + row0,
                   .labels = r->labels + row0, .targets = r->targets + row0, .row_index = r->row_index + row0,
                   .global_rows = global, .global_row0 = 0};
}

#endif
