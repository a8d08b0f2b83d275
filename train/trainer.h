/*
 * trainer.h — the training step, once: a Trainer built from a validated config, that `distill
 * --config` (cmd_train.c), `distill bench` and the distributed path all drive (DESIGN §8).
 *
 * One optimizer step = grad_accum micro-steps. A micro-step: this rank's share of the next global
 * batch (the loader pads it to the step's longest row over all ranks), teacher forward with the
 * tape off (distill), student forward with the tape on and dropout, the loss set, backward. Then
 * the gradient all-reduce over ranks (comm.h), global-norm clipping over student + projections,
 * AdamW and the learning-rate schedule.
 *
 * Averaging. Each micro-step's loss is scaled by rows_here / global_rows / grad_accum before the
 * backward and the gradients are summed over ranks, so R ranks with global batch B take the same
 * update as one rank with batch B: every loss term is a mean over rows (or over rows x a padded
 * length that is the same on every rank), so a rank's mean weighted by its share of the rows is
 * its part of the global mean. (hidden_cos averages over valid tokens instead; its share is
 * weighted by rows too, which matches one rank only up to the rows' token counts.) Dropout draws
 * its masks for the whole global batch and each rank takes its rows' (ctx_set_rows), so a 2-rank
 * run applies exactly the masks a 1-rank run does: the two differ only by fp32 reduction order.
 *
 * Reproducibility: dropout counters are a pure function of the micro-step, and the loader cursor,
 * AdamW moments, step counters and best metric are saved in each checkpoint, so a resumed run
 * follows the loss curve of an uninterrupted one bit for bit on the CPU at a fixed thread count
 * and rank count, and within fp32 reduction order across rank counts.
 */
#ifndef DISTILL_TRAINER_H
#define DISTILL_TRAINER_H

#include "../data/dataset.h"
#include "../data/loader.h"
#include "../engine/ctx.h"
#include "../engine/optim.h"
#include "../models/bert.h"
#include "comm.h"
#include "config.h"
#include "metrics.h"

struct LossSet;

/* What one optimizer step did, summed or averaged over all ranks (identical on every rank). */
typedef struct TrainerStep {
    double loss;          /* the global mean loss (sum of weighted terms) */
    float *terms;         /* (n_terms) the weighted terms' global means; owned by the trainer */
    double grad_norm, lr;
    int64_t rows, tokens; /* rows and valid tokens of the step over all ranks */
    bool epoch_end;       /* the step took an epoch's last batch */
    double teacher_s;     /* this rank's time in the teacher forward (bench) */
    bool skipped;         /* the loss or gradient norm was not finite: no update (loss, terms NaN) */
    bool stop;            /* some rank had stop_request set: the caller should checkpoint and stop */
} TrainerStep;

typedef struct Trainer {
    Config cfg;           /* owned: the config the trainer was created from */
    Comm *comm;           /* borrowed */
    Device device;
    Ctx *c;
    Dataset *train, *dev, *test; /* NULL when created without data */
    char **vocab;         /* the train file's vocabulary (n_vocab), or NULL */
    int n_vocab;
    Bert *teacher, *student;
    /* Several teachers (`teachers:`): teachers[0] == teacher; n_teachers 0 without a teacher. */
    int n_teachers;
    Bert *teachers[CONFIG_MAX_TEACHERS];
    const BertConfig *teacher_cfgs[CONFIG_MAX_TEACHERS]; /* their configs, for the loss set */
    BertRequest treqs[CONFIG_MAX_TEACHERS]; /* what each teacher's forward returns */
    bool teacher_runs[CONFIG_MAX_TEACHERS]; /* some loss reads it (else its forward is skipped) */
    bool teacher_cached;  /* the train file has a teacher-logit cache (/teacher_logits, `distill
                           * cache`) of this teacher, checked, and teacher.cache allows it: steps
                           * whose losses need only the logits take them from it and do not run
                           * the teacher (trainer_uses_cache) */
    int64_t teacher_forwards; /* teacher forwards run by this process's steps (not by evaluation) */
    struct LossSet *losses;
    ParamStore *stores[2]; /* student params, projections (or NULL) */
    int n_stores;
    AdamW *opt[2];        /* one per store: the owner of the moments */
    Loader *loader;       /* this rank's share of the train file */
    BertRequest sreq, treq;
    int n_terms;
    const char **term_names;
    /* state saved in checkpoints */
    int64_t step, samples_seen, epoch;
    int64_t total_steps, warmup_steps;
    /* Stages (config `stages:`; one implicit stage without it). Each stage is what a fresh
     * single-stage run from the previous stage's student would do: its own loss set (projections
     * of the same name and shape carried over, new ones seeded as a fresh run seeds them, unused
     * ones dropped), fresh AdamW moments and LR schedule, the data order from epoch 0 and dropout
     * counters from the stage's step 0. Steps count globally: total_steps is the sum. */
    int stage, n_stages;
    int64_t *stage_len;   /* (n_stages) optimizer steps of each stage */
    int64_t stage_begin;  /* global step at which the current stage began */
    int stage_carried, stage_fresh; /* projection tensors carried over / started fresh on entry */
    double best_metric;   /* NaN until the first evaluation */
    int64_t best_step;    /* -1 until then */
    int64_t metrics_offset; /* bytes of metrics.jsonl at the checkpoint resumed from */
    int64_t bad_steps;    /* consecutive skipped steps (non-finite loss or gradient) so far */
    int stop_request;     /* set by the caller (a signal arrived); reported to all ranks in the step */
    TrainerStep last;
    double *step_red;     /* (n_terms + 6) the step's sums before the all-reduce */
    Tensor **step_terms;  /* (n_terms) one micro-step's weighted terms, scalars on the device */
    /* The step's one readback (see "the step" in trainer.c): step_dev, device memory, holds the
     * gradient norm's parts (2 doubles: one per store) and then, per micro-step, its n_terms
     * weighted terms and its loss (floats); step_host receives it at the step's end. step_micro
     * says what each micro-step left there. Sized for step_cap micro-steps (grown on demand). */
    void *step_dev, *step_host;
    size_t step_bytes;
    int step_cap;
    struct StepMicro *step_micro; /* (step_cap) */
    int64_t *step_rows;   /* (cap_step_rows) the dataset rows of the step on this rank */
    int n_step_rows, cap_step_rows;
    int hang_rank;        /* testing hook DISTILL_TEST_HANG=RANK:STEP (-1: off) */
    long long hang_step;
    int nan_rank;         /* testing hook DISTILL_TEST_NAN=RANK:STEP[:COUNT[:grad]] (-1: off) */
    long long nan_step, nan_count;
    bool nan_grad;
} Trainer;

/* Builds the trainer from a validated config (config_load, or config_parse with with_data false):
 * device and threads, data (train/dev/test, when with_data), teacher, student, their checks
 * against the config and data, the loss set, the optimizer and the loader. Nothing is written.
 * Takes ownership of *cfg (zeroed on return). Every rank checks that all ranks loaded the same
 * config and data files. Without data the models take their shapes from the config with the
 * BERT vocabulary (30522) and 2 labels (what `bench` needs). */
Status trainer_new(Config *cfg, Comm *comm, bool with_data, Trainer **out);
void trainer_free(Trainer *t);
/* True when the steps (of the current loss set) take the teacher's logits from the train file's
 * cache instead of running the teacher. */
bool trainer_uses_cache(const Trainer *t);

/* The current stage's resolved settings (losses, optimizer, length). */
const ConfigStage *trainer_stage(const Trainer *t, ConfigStage *tmp);
/* True when the current stage has taken all its steps and another stage follows. */
bool trainer_stage_done(const Trainer *t);
/* Enters the next stage (see the Trainer's stage fields): a new loss set, fresh optimizer state
 * and schedule, the loader at epoch 0. Collective in the sense that every rank calls it at the
 * same step; nothing is communicated. */
Status trainer_next_stage(Trainer *t);

/* One optimizer step on n micro-batches (this rank's shares, as the loader makes them). The host
 * waits on the device once, at the step's end (the loss, its terms and the gradient norm's parts
 * in one readback; with several ranks also before the loss all-reduce and the gradient all-reduce:
 * tests/test_train_step.c readbacks counts them). Collective:
 * every rank must call it with the same n. A non-finite loss on any rank, or a non-finite gradient
 * norm, skips the update on every rank (out->skipped, a warning on stderr naming the step and the
 * rows); the train.max_bad_steps-th such step in a row fails with an error. An error on any rank
 * (a loss that cannot be computed) fails the step on every rank with the same message. */
Status trainer_step_on(Trainer *t, Batch *micro, int n, TrainerStep *out);
/* One optimizer step on the next grad_accum batches of the trainer's loader. */
Status trainer_step(Trainer *t, TrainerStep *out);

/* Evaluates `m` (the student when NULL) on every row of `ds`: the rows are split over the ranks
 * and the logits gathered, so every rank computes the same metrics, equal to one rank's.
 * Classification: hard cross-entropy, accuracy, F1, MCC; regression: MSE, Pearson, Spearman.
 * Requires labels. Collective. */
Status trainer_evaluate(Trainer *t, Bert *m, const Dataset *ds, MetricValues *out);

/* Writes a training checkpoint of the current state (rank 0 only; other ranks return OK).
 * config_yaml is the resolved config stored in the file. */
Status trainer_save(Trainer *t, const char *path, const char *config_yaml);
/* Restores the state from a checkpoint written by a run with any rank count that divides the
 * global batch. */
Status trainer_resume(Trainer *t, const char *path);

/* The logits of m for rank `rank` of `world`'s share of ds (batches rank, rank+world, ... of
 * `batch` rows, in file order, tape and dropout off) into all (rows x num_labels, file order; the
 * other ranks' rows untouched): evaluation, and `distill cache` (one rank) for the teacher. */
Status model_logits(Ctx *c, Bert *m, const Dataset *ds, int batch, int rank, int world, float *all);

/* Uploads a host batch (data/loader.h) to the context's device and fills the BertInput. */
void batch_to_input(Ctx *c, const Batch *b, BertInput *in);

/* Single-process evaluation of `m` on `ds` (in order, batches of `batch`), tape and dropout off:
 * what `distill eval` uses. Requires labels in the file. */
Status evaluate_model(Ctx *c, Bert *m, const Dataset *ds, int batch, MetricValues *out);

#endif
