/*
 * trainer.h — the training loop shared by `task: finetune` and `task: distill`, and evaluation.
 *
 * One optimizer step = grad_accum micro-steps. A micro-step: next batch from the loader (seeded
 * permutation, dynamic padding), teacher forward with the tape off (distill), student forward
 * with the tape on and dropout, the loss set, backward (loss scaled by 1/grad_accum, as the HF
 * Trainer does). Then global-norm clipping over student + projections, AdamW, zero grads, the LR
 * schedule. Dropout counters are a pure function of the micro-step, and the loader cursor, AdamW
 * moments, step counters and best metric are saved in each checkpoint, so a resumed run follows
 * the loss curve of an uninterrupted one bit for bit on the CPU at a fixed thread count.
 */
#ifndef DISTILL_TRAINER_H
#define DISTILL_TRAINER_H

#include "../data/dataset.h"
#include "../engine/ctx.h"
#include "../models/bert.h"
#include "metrics.h"

/* Uploads a host batch (data/loader.h) to the context's device and fills the BertInput. */

#include "../data/loader.h"
void batch_to_input(Ctx *c, const Batch *b, BertInput *in);

/* Evaluates `m` on every row of `ds` (in order, batches of `batch`), tape off, dropout off.
 * Classification: hard cross-entropy loss, accuracy, F1, MCC; regression: MSE, Pearson, Spearman.
 * Requires labels in the file. */
Status evaluate_model(Ctx *c, Bert *m, const Dataset *ds, int batch, MetricValues *out);

#endif
