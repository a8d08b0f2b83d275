/*
 * loader.h — batches from a Dataset: seeded shuffle per epoch, sharding by rank, dynamic padding,
 * and a cursor to resume mid-epoch exactly.
 *
 * Promise:
 *  - Epoch e visits a permutation of the rows that depends only on (seed, e) (Fisher-Yates with
 *    engine/rng.h's Rng), or the rows in order when shuffle is off.
 *  - The permutation is cut into batches of batch_size rows (the per-rank batch); rank r of R
 *    takes batches r, r + R, r + 2R, ... So step k of all ranks together covers exactly the rows
 *    of step k of one rank with batch_size * R: the ranks' shards are disjoint and their union is
 *    the epoch.
 *  - Every rank has the same number of steps per epoch (the collective calls must line up):
 *    with drop_last, only full groups of R full batches are used; without it, every row is used
 *    once, the epoch's last batch may be short, and a rank may get an empty batch (rows == 0) in
 *    the last step. global_rows says how many rows all ranks hold in the step, for averaging.
 *  - A batch is padded to the longest row of its step over all ranks (seq = that length; with one
 *    rank, the batch's longest row), with pad id 0 and type 0.
 *  - The cursor (epoch, step) names the next batch; loader_seek to a saved cursor gives the same
 *    batches, bit for bit, as the run that saved it.
 * Batch arrays belong to the loader and stay valid until the next loader_next.
 */
#ifndef DISTILL_DATA_LOADER_H
#define DISTILL_DATA_LOADER_H

#include <stdint.h>

#include "data/dataset.h"
#include "engine/common.h"

typedef struct {
    int batch_size;  /* rows per batch on this rank */
    int rank, world; /* this rank and the number of ranks (0, 1 for one process) */
    uint64_t seed;
    bool shuffle;    /* false: the rows in file order (evaluation) */
    bool drop_last;  /* true: no short or empty batches */
} LoaderOptions;

typedef struct {
    int64_t epoch; /* 0-based */
    int64_t step;  /* batches already taken in this epoch (the same on every rank) */
} LoaderCursor;

typedef struct {
    int rows;                /* B: rows in this batch (0 only in an epoch's last step) */
    int seq;                 /* T: the longest row of the batch */
    int32_t *input_ids;      /* [B, T], padded with 0 */
    int32_t *token_type_ids; /* [B, T], padded with 0 */
    int32_t *lengths;        /* [B]: attention mask = position < length */
    int32_t *labels;         /* [B] class labels, or NULL */
    float *targets;          /* [B] regression targets, or NULL */
    float *teacher_logits;   /* [B, C] when the file has them, else NULL */
    int teacher_classes;     /* C */
    int64_t *row_index;      /* [B] the rows of the dataset, in batch order */
    int global_rows;         /* rows of this step over all ranks */
    int global_row0;         /* rows of the step held by lower ranks: this share is rows
                              * [global_row0, global_row0 + rows) of the step */
    LoaderCursor cursor;     /* this batch's position */
    bool last_in_epoch;      /* the epoch's last step */
} Batch;

typedef struct Loader Loader;

/* Fails (DISTILL_ERR) on batch_size < 1, world < 1, rank outside [0, world), or a dataset with
 * too few rows for one step. The dataset must outlive the loader. */
Status loader_new(Loader **out, const Dataset *ds, const LoaderOptions *opt);
void loader_free(Loader *l);

int64_t loader_steps_per_epoch(const Loader *l);
LoaderCursor loader_cursor(const Loader *l);
/* Positions the loader at cursor c (step < steps_per_epoch; else DISTILL_ERR). */
Status loader_seek(Loader *l, LoaderCursor c);
/* Fills b with the batch at the cursor and advances it (into the next epoch after the last step). */
void loader_next(Loader *l, Batch *b);

#endif
