/* loader.c — shuffled, sharded, dynamically padded batches with a resume cursor (see loader.h). */
#include "loader.h"

#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"

struct Loader {
    const Dataset *ds;
    LoaderOptions opt;
    int64_t used;        /* rows an epoch uses: N, or whole batches only with drop_last */
    int64_t batches;     /* batches in the permutation */
    int64_t steps;       /* steps per epoch, the same on every rank */
    int64_t *perm;       /* [N] the current epoch's order */
    int64_t perm_epoch;  /* epoch perm belongs to, -1: none yet */
    LoaderCursor cur;
    int32_t *ids, *types, *lengths, *labels; /* [B, S], [B, S], [B], [B] */
    float *targets, *teacher;                /* [B], [B, C] */
    int64_t *rows;                           /* [B] */
};

Status loader_new(Loader **out, const Dataset *ds, const LoaderOptions *opt) {
    *out = NULL;
    const int64_t N = ds->rows;
    const int64_t B = opt->batch_size, R = opt->world;
    if (B < 1 || R < 1 || opt->rank < 0 || opt->rank >= R) {
        distill_set_error("loader: batch size %d, rank %d of %d: expected batch size >= 1 and 0 <= rank < world",
                          opt->batch_size, opt->rank, opt->world);
        return DISTILL_ERR;
    }
    if (!ds->ids && N > 0) {
        distill_set_error("%s: the dataset was opened without its tokens (dataset_open load_tokens)", ds->path);
        return DISTILL_ERR;
    }
    Loader *l = xcalloc(1, sizeof *l);
    l->ds = ds;
    l->opt = *opt;
    if (opt->drop_last) {
        l->batches = N / B;
        l->steps = l->batches / R;
        l->batches = l->steps * R; /* a last, incomplete group of R batches is dropped too */
        l->used = l->batches * B;
    } else {
        l->batches = (N + B - 1) / B;
        l->steps = (l->batches + R - 1) / R;
        l->used = N;
    }
    if (l->steps < 1) {
        distill_set_error("%s: %lld rows are too few for one step of %lld rows per rank on %lld rank%s%s", ds->path,
                          (long long)N, (long long)B, (long long)R, R == 1 ? "" : "s",
                          opt->drop_last ? " (drop_last)" : "");
        free(l);
        return DISTILL_ERR;
    }
    l->perm = xmalloc((size_t)N * sizeof(int64_t));
    l->perm_epoch = -1;
    const size_t S = (size_t)ds->max_seq;
    l->ids = xmalloc((size_t)B * S * sizeof(int32_t));
    l->types = xmalloc((size_t)B * S * sizeof(int32_t));
    l->lengths = xmalloc((size_t)B * sizeof(int32_t));
    l->rows = xmalloc((size_t)B * sizeof(int64_t));
    if (ds->labels) l->labels = xmalloc((size_t)B * sizeof(int32_t));
    if (ds->targets) l->targets = xmalloc((size_t)B * sizeof(float));
    if (ds->teacher_logits) l->teacher = xmalloc((size_t)B * (size_t)ds->teacher_classes * sizeof(float));
    *out = l;
    return DISTILL_OK;
}

void loader_free(Loader *l) {
    if (!l) return;
    free(l->perm);
    free(l->ids);
    free(l->types);
    free(l->lengths);
    free(l->rows);
    free(l->labels);
    free(l->targets);
    free(l->teacher);
    free(l);
}

int64_t loader_steps_per_epoch(const Loader *l) { return l->steps; }
LoaderCursor loader_cursor(const Loader *l) { return l->cur; }

Status loader_seek(Loader *l, LoaderCursor c) {
    if (c.epoch < 0 || c.step < 0 || c.step >= l->steps) {
        distill_set_error("loader: cursor (epoch %lld, step %lld) is outside [0, %lld) steps per epoch",
                          (long long)c.epoch, (long long)c.step, (long long)l->steps);
        return DISTILL_ERR;
    }
    l->cur = c;
    return DISTILL_OK;
}

/* The order of epoch e: a Fisher-Yates shuffle driven by an Rng seeded from (seed, e). */
static void build_perm(Loader *l, int64_t epoch) {
    const int64_t N = l->ds->rows;
    for (int64_t i = 0; i < N; i++) l->perm[i] = i;
    if (l->opt.shuffle) {
        Rng r = rng_new(rng_mix64(l->opt.seed ^ rng_mix64((uint64_t)epoch)));
        for (int64_t i = N - 1; i > 0; i--) {
            int64_t j = (int64_t)rng_next_below(&r, (uint64_t)(i + 1));
            int64_t t = l->perm[i];
            l->perm[i] = l->perm[j];
            l->perm[j] = t;
        }
    }
    l->perm_epoch = epoch;
}

void loader_next(Loader *l, Batch *b) {
    const Dataset *ds = l->ds;
    const int64_t B = l->opt.batch_size, R = l->opt.world;
    if (l->perm_epoch != l->cur.epoch) build_perm(l, l->cur.epoch);
    memset(b, 0, sizeof *b);
    b->cursor = l->cur;
    b->last_in_epoch = l->cur.step == l->steps - 1;

    /* this rank's batch k = step * R + rank, rows [k * B, k * B + rows) of the permutation */
    int64_t k = l->cur.step * R + l->opt.rank;
    int64_t start = k * B;
    int64_t rows = start < l->used ? (l->used - start < B ? l->used - start : B) : 0;
    int64_t gstart = l->cur.step * R * B, gend = (l->cur.step + 1) * R * B;
    if (gend > l->used) gend = l->used;
    b->global_rows = (int)(gend > gstart ? gend - gstart : 0);
    b->global_row0 = (int)(start < gend ? start - gstart : b->global_rows);

    /* Padded to the longest row of the whole step (all ranks' shares), not of this rank's share:
     * every rank then computes on the same sequence length as one rank with the global batch, so
     * losses that average over padded positions and dropout masks drawn per position agree. */
    int T = 0;
    for (int64_t i = 0; i < rows; i++) l->rows[i] = l->perm[start + i];
    for (int64_t g = gstart; g < gend; g++)
        if (ds->lengths[l->perm[g]] > T) T = ds->lengths[l->perm[g]];
    for (int64_t i = 0; i < rows; i++) {
        int64_t r = l->rows[i];
        int len = ds->lengths[r];
        const int32_t *src = ds->ids + ds->offsets[r];
        const uint8_t *ty = ds->types + ds->offsets[r];
        int32_t *dst = l->ids + i * T, *dt = l->types + i * T;
        for (int j = 0; j < len; j++) dst[j] = src[j], dt[j] = ty[j];
        for (int j = len; j < T; j++) dst[j] = 0, dt[j] = 0;
        l->lengths[i] = len;
        if (l->labels) l->labels[i] = ds->labels[r];
        if (l->targets) l->targets[i] = ds->targets[r];
        if (l->teacher)
            memcpy(l->teacher + i * ds->teacher_classes, ds->teacher_logits + r * ds->teacher_classes,
                   (size_t)ds->teacher_classes * sizeof(float));
    }
    b->rows = (int)rows;
    b->seq = T;
    b->input_ids = l->ids;
    b->token_type_ids = l->types;
    b->lengths = l->lengths;
    b->labels = l->labels;
    b->targets = l->targets;
    b->teacher_logits = l->teacher;
    b->teacher_classes = l->teacher ? ds->teacher_classes : 0;
    b->row_index = l->rows;

    if (++l->cur.step == l->steps) {
        l->cur.step = 0;
        l->cur.epoch++;
    }
}
