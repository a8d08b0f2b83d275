/*
 * test_step_readbacks.c — a training step waits on the device once (issue 10, item 4): the loss, its
 * terms and the gradient norm's partial sums come back together in one readback at the step's end;
 * nothing inside the step (range checks of ids, lengths and labels, the loss terms, the teacher's
 * timing, the per-store sums of squares) reads back or syncs.
 *
 * It counts backend_readbacks() (engine/backend.h: every device-to-host readback and ctx_sync the
 * engine makes, counted on the CPU too, where they are memcpys) around Trainer steps on the CPU
 * backend: a random 2-layer teacher and 1-layer student of another width (hidden_mse learns
 * projections: two parameter stores), losses logits_kd, hidden_mse, attention_mse and hard_ce,
 * grad_accum 2 (two micro-steps of 4 rows). Five steps; the DISTILL_TEST_NAN hook makes step 4's
 * loss NaN, so one step is skipped (the skip must still cost one readback, and report NaN).
 * Each step must make exactly 1 readback; the run's losses must be finite (except the skipped
 * step's) and its gradient norms positive.
 *
 * tests/test_cuda_step.c asserts the same count on the CUDA backend.
 *
 * Exit status: 0 ok, 1 a failed check or an error (printed).
 */
#define _POSIX_C_SOURCE 200809L
#include "engine/backend.h"
#include "engine/rng.h"
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROWS 8  /* rows of a step: two micro-steps of 4 */
#define SEQ 11  /* the padded length */
#define STEPS 5
#define NAN_STEP 4 /* DISTILL_TEST_NAN=0:4: this step's loss reads as NaN */

static const char *YAML =
    "task: distill\n"
    "run: {name: readbacks, dir: unused-run, seed: 11}\n"
    "device: cpu\n"
    "threads: 1\n"
    "teacher: {init: random, layers: 2, hidden: 24, heads: 2, intermediate: 40, vocab_size: 97,\n"
    "          max_position: 16, num_labels: 3}\n"
    "student: {init: random, layers: 1, hidden: 16, heads: 2, intermediate: 24, vocab_size: 97,\n"
    "          max_position: 16, num_labels: 3}\n"
    "data: {train: unused.h5, batch_size: 4}\n"
    "losses:\n"
    "  - {type: logits_kd, weight: 1.0, temperature: 2.0}\n"
    "  - {type: hidden_mse, weight: 1.0, layers: uniform}\n"
    "  - {type: attention_mse, weight: 1.0, layers: uniform}\n"
    "  - {type: hard_ce, weight: 0.5}\n"
    "optimizer: {lr: 1.0e-3}\n"
    "train: {max_steps: 5, grad_accum: 2, max_bad_steps: 3}\n";

static int failures;
#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "test_step_readbacks: FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, "\n");                                                    \
            failures++;                                                               \
        }                                                                             \
    } while (0)

static char g_yaml[64];
static void remove_yaml(void) {
    if (g_yaml[0]) unlink(g_yaml);
}

int main(void) {
    snprintf(g_yaml, sizeof g_yaml, "/tmp/test_step_readbacks-XXXXXX");
    int fd = mkstemp(g_yaml);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f || fputs(YAML, f) == EOF || fclose(f) != 0) {
        perror("test_step_readbacks: writing the config");
        return 1;
    }
    atexit(remove_yaml);
    char nan_at[32];
    snprintf(nan_at, sizeof nan_at, "0:%d", NAN_STEP);
    setenv("DISTILL_TEST_NAN", nan_at, 1); /* read by trainer_new */

    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    static Comm comm = {.rank = 0, .world = 1, .local_rank = 0, .local_world = 1, .kind = COMM_SINGLE,
                        .timeout_s = 30};
    Trainer *t = NULL;
    if (config_parse(g_yaml, 0, NULL, &cfg) != DISTILL_OK || trainer_new(&cfg, &comm, false, &t) != DISTILL_OK) {
        distill_print_error(distill_error());
        return 1;
    }
    CHECK(t->n_stores == 2, "two parameter stores (student, projections), found %d", t->n_stores);
    CHECK(t->n_terms == 4, "four loss terms, found %d", t->n_terms);

    /* the step's rows: ids in [1, 97), types 0/1, lengths from 1 to SEQ, labels in [0, 3) */
    static const int32_t lens[ROWS] = {SEQ, 7, 1, 9, 4, SEQ, 10, 6};
    int32_t ids[ROWS * SEQ] = {0}, types[ROWS * SEQ] = {0}, lengths[ROWS], labels[ROWS];
    float targets[ROWS] = {0};
    int64_t row_index[ROWS];
    Rng rng = rng_new(99);
    for (int i = 0; i < ROWS; i++) {
        lengths[i] = lens[i];
        labels[i] = (int32_t)rng_next_below(&rng, 3);
        row_index[i] = i;
        for (int j = 0; j < lens[i]; j++) {
            ids[i * SEQ + j] = 1 + (int32_t)rng_next_below(&rng, 96);
            types[i * SEQ + j] = j >= lens[i] / 2;
        }
    }
    Batch micro[2];
    for (int a = 0; a < 2; a++) {
        int r0 = a * ROWS / 2;
        micro[a] = (Batch){.rows = ROWS / 2, .seq = SEQ, .input_ids = ids + r0 * SEQ,
                           .token_type_ids = types + r0 * SEQ, .lengths = lengths + r0, .labels = labels + r0,
                           .targets = targets + r0, .row_index = row_index + r0, .global_rows = ROWS / 2,
                           .global_row0 = 0};
    }

    for (int s = 1; s <= STEPS; s++) {
        TrainerStep out;
        uint64_t before = backend_readbacks();
        Status st = trainer_step_on(t, micro, 2, &out);
        uint64_t n = backend_readbacks() - before;
        if (st != DISTILL_OK) {
            distill_print_error(distill_error());
            return 1;
        }
        printf("step %d: %llu readback%s, loss %.9g (terms %.6g %.6g %.6g %.6g), grad norm %.6g%s\n", s,
               (unsigned long long)n, n == 1 ? "" : "s", out.loss, out.terms[0], out.terms[1], out.terms[2],
               out.terms[3], out.grad_norm, out.skipped ? ", skipped" : "");
        CHECK(n == 1, "step %d: %llu readbacks, want 1 (one at the step's end)", s, (unsigned long long)n);
        if (s == NAN_STEP) {
            CHECK(out.skipped && isnan(out.loss), "step %d: the NaN hook's step must be skipped with a NaN loss", s);
        } else {
            CHECK(!out.skipped && isfinite(out.loss) && out.loss > 0, "step %d: loss %g, skipped %d", s, out.loss,
                  out.skipped);
            CHECK(out.grad_norm > 0 && isfinite(out.grad_norm), "step %d: gradient norm %g", s, out.grad_norm);
            double sum = 0;
            for (int i = 0; i < t->n_terms; i++) sum += out.terms[i];
            /* the loss is the fp32 sum of the 4 weighted terms per micro-step: 3 roundings each, so
             * within 4 * 2^-24 of the sum of the (fp32-rounded) terms, relatively; 1e-6 covers it */
            CHECK(fabs(sum - out.loss) <= 1e-6 * fabs(out.loss), "step %d: terms sum to %.9g, loss %.9g", s, sum,
                  out.loss);
        }
        CHECK(out.rows == ROWS && out.tokens == (s == NAN_STEP ? 0 : 59), "step %d: %lld rows, %lld tokens", s,
              (long long)out.rows, (long long)out.tokens);
    }
    CHECK(t->bad_steps == 0, "bad_steps %lld after a good step", (long long)t->bad_steps);
    trainer_free(t);
    printf("%s\n", failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}
