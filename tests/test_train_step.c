/*
 * test_train_step.c — the optimizer step of the Trainer (train/trainer.h): learning-rate schedules
 * and warmup, global-norm gradient clipping and AdamW (the C half of tests/test_train_step.py, which
 * replays them with PyTorch's LambdaLR, clip_grad_norm_ and AdamW), and gradient accumulation
 * (checked here alone).
 *
 *   test_train_step trace OUT STEPS [--set KEY=VALUE ...]
 *       A Trainer (no data: trainer_new with_data false) from the tiny distillation config below plus
 *       the overrides: a random 2-layer teacher, a 1-layer student of another width (so the
 *       hidden_mse projections form a second parameter store), dropout off. It takes STEPS optimizer
 *       steps on one fixed random batch (trainer_step_on) and writes
 *         OUT.safetensors: init.S (the flat parameter buffer of store S before step 1), decay.S
 *             (1 where the tensor gets weight decay, 0 for no_decay tensors), and per step k
 *             (1-based) grad.k.S (the summed gradient, before clipping) and param.k.S (after the
 *             update); S = 0 the student, 1 the projections;
 *         OUT.txt: "total_steps N", "warmup_steps N", "lr|beta1|beta2|eps|weight_decay|max_grad_norm
 *             VALUE" (the config's numbers, %.17g), "schedule NAME", then one "step k lr grad_norm
 *             loss" line per step (%.17g).
 *   test_train_step accum
 *       Gradient accumulation: a trainer with batch_size 8 and grad_accum 1, and one with batch_size
 *       4 and grad_accum 2 (same seed: same initial weights, checked bitwise), each take one step on
 *       the same 8 rows (the second as two micro-batches of 4). The loss, the gradient norm and every
 *       gradient must agree within fp32 reduction order (tolerance below); exit 1 otherwise.
 *   test_train_step readbacks
 *       A training step waits on the device once (issue 10, item 4): the loss, its terms and the
 *       gradient norm's partial sums come back together at the step's end; nothing inside the step
 *       (range checks of ids, lengths and labels, the loss terms, the teacher's timing, the
 *       per-store sums of squares) reads back or syncs. It counts backend_readbacks()
 *       (engine/backend.h: every device-to-host readback and ctx_sync, counted on the CPU too,
 *       where they are memcpys) around five steps of the base config plus attention_mse, with
 *       grad_accum 2 (two micro-steps of 4 rows); the DISTILL_TEST_NAN hook makes step 4's loss
 *       NaN, so one step is skipped (the skip must still cost one readback, and report NaN). Each
 *       step must make exactly 1 readback; the losses must be finite (except the skipped step's)
 *       and the gradient norms positive. tests/test_cuda_step.c asserts the same count on CUDA.
 *
 * Exit status: 0 ok, 1 a failed check or an error (printed), 2 usage.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "checkpoints/safetensors.h"
#include "engine/backend.h"
#include "engine/rng.h"
#include "train/trainer.h"
#include "step_rows.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define U32 (1.0 / 16777216.0) /* 2^-24, fp32 unit roundoff */
#define ROWS STEP_ROWS          /* rows of the step's batch */
#define SEQ STEP_SEQ            /* its padded length */

/* The base config: task distill, random teacher (2 layers, hidden 24) and student (1 layer, hidden
 * 16, another width: hidden_mse learns a projection per pair), tiny vocabulary, no dropout. The
 * data paths are never opened (config_parse only, with_data false). */
static const char *BASE_YAML =
    "task: distill\n"
    "run: {name: step, dir: unused-run, seed: 7}\n"
    "device: cpu\n"
    "threads: 1\n"
    "teacher: {init: random, layers: 2, hidden: 24, heads: 2, intermediate: 40, vocab_size: 97,\n"
    "          max_position: 16, num_labels: 3}\n"
    "student: {init: random, layers: 1, hidden: 16, heads: 2, intermediate: 24, vocab_size: 97,\n"
    "          max_position: 16, num_labels: 3, dropout: 0, attention_dropout: 0}\n"
    "data: {train: unused.h5, batch_size: 8}\n"
    "losses:\n"
    "  - {type: logits_kd, weight: 1.0, temperature: 2.0}\n"
    "  - {type: hidden_mse, weight: 1.0, layers: uniform}\n"
    "  - {type: hard_ce, weight: 0.5}\n"
    "optimizer: {lr: 1.0e-3, weight_decay: 0.01}\n"
    "train: {max_steps: 6}\n";

static int failures;
#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "test_train_step: FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            failures++;                                                    \
        }                                                                  \
    } while (0)

/* The base config in a temporary file (removed at exit). */
static char g_yaml[64];
static void remove_yaml(void) {
    if (g_yaml[0]) unlink(g_yaml);
}
static const char *base_yaml_path(void) {
    if (g_yaml[0]) return g_yaml;
    snprintf(g_yaml, sizeof g_yaml, "/tmp/test_train_step-XXXXXX");
    int fd = mkstemp(g_yaml);
    if (fd < 0) {
        perror("test_train_step: mkstemp");
        exit(1);
    }
    FILE *f = fdopen(fd, "w");
    if (!f || fputs(BASE_YAML, f) == EOF || fclose(f) != 0) {
        perror("test_train_step: writing the config");
        exit(1);
    }
    atexit(remove_yaml);
    return g_yaml;
}

static Trainer *make_trainer(int n_over, char **over) {
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    static Comm comm = {.rank = 0, .world = 1, .local_rank = 0, .local_world = 1, .kind = COMM_SINGLE,
                        .timeout_s = 30};
    Trainer *t = NULL;
    if (config_parse(base_yaml_path(), n_over, over, &cfg) != DISTILL_OK ||
        trainer_new(&cfg, &comm, false, &t) != DISTILL_OK) {
        distill_print_error(distill_error());
        exit(1);
    }
    return t;
}

/* The step's rows (tests/step_rows.h). */
typedef StepRows Rows;
static void make_rows(Rows *r) { step_rows_make(r, 2024); }
static Batch batch_of(Rows *r, int row0, int n, int global) { return step_rows_batch(r, row0, n, global); }

/* ------------------------------------------------------------------ trace */

typedef struct {
    StWriteTensor *w;
    float **keep;
    char **names;
    int n, cap;
} Out;

static void out_add(Out *o, const char *name, const float *src, size_t n) {
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 16;
        o->w = xrealloc(o->w, (size_t)o->cap * sizeof *o->w);
        o->keep = xrealloc(o->keep, (size_t)o->cap * sizeof *o->keep);
        o->names = xrealloc(o->names, (size_t)o->cap * sizeof *o->names);
    }
    float *copy = xmalloc((n ? n : 1) * sizeof(float));
    memcpy(copy, src, n * sizeof(float));
    o->keep[o->n] = copy;
    o->names[o->n] = xstrdup(name);
    o->w[o->n] = (StWriteTensor){.name = o->names[o->n], .ndim = 1, .shape = {(int64_t)n}, .data = copy};
    o->n++;
}

static int cmd_trace(int argc, char **argv) {
    if (argc < 4) return 2;
    const char *out = argv[2];
    int steps = atoi(argv[3]);
    char **over = xcalloc((size_t)argc, sizeof *over);
    int n_over = 0;
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--set") != 0 || i + 1 == argc) return 2;
        over[n_over++] = argv[++i];
    }
    if (steps < 1) return 2;
    Trainer *t = make_trainer(n_over, over);
    free(over);
    if (t->cfg.train.grad_accum != 1) {
        fprintf(stderr, "test_train_step: trace takes grad_accum 1 (the batch is one micro-step)\n");
        return 2;
    }
    Rows *r = xmalloc(sizeof *r);
    make_rows(r);
    Batch b = batch_of(r, 0, ROWS, ROWS);
    char path[4096], name[64];
    snprintf(path, sizeof path, "%s.txt", out);
    FILE *txt = fopen(path, "w");
    if (!txt) {
        perror(path);
        return 1;
    }
    const ConfigOptimizer *oc = &t->cfg.optimizer;
    fprintf(txt, "total_steps %lld\nwarmup_steps %lld\n", (long long)t->total_steps, (long long)t->warmup_steps);
    fprintf(txt, "lr %.17g\nbeta1 %.17g\nbeta2 %.17g\neps %.17g\nweight_decay %.17g\nmax_grad_norm %.17g\n",
            oc->lr, oc->beta1, oc->beta2, oc->eps, oc->weight_decay, oc->max_grad_norm);
    fprintf(txt, "schedule %s\nstores %d\n", schedule_name((SchedKind)oc->schedule), t->n_stores);
    Out o = {0};
    for (int s = 0; s < t->n_stores; s++) {
        ParamStore *ps = t->stores[s];
        float *decay = xmalloc(ps->total * sizeof(float));
        for (int i = 0; i < ps->n; i++)
            for (size_t j = 0; j < ps->tensors[i]->numel; j++) decay[ps->offsets[i] + j] = ps->no_decay[i] ? 0.0f : 1.0f;
        snprintf(name, sizeof name, "decay.%d", s);
        out_add(&o, name, decay, ps->total);
        free(decay);
        snprintf(name, sizeof name, "init.%d", s);
        out_add(&o, name, ps->data, ps->total);
    }
    for (int k = 1; k <= steps; k++) {
        TrainerStep st;
        if (trainer_step_on(t, &b, 1, &st) != DISTILL_OK) {
            distill_print_error(distill_error());
            return 1;
        }
        fprintf(txt, "step %d %.17g %.17g %.17g\n", k, st.lr, st.grad_norm, st.loss);
        /* the gradients stay in the stores until the next step zeroes them (adamw_step reads them
         * scaled, it does not write them) */
        for (int s = 0; s < t->n_stores; s++) {
            snprintf(name, sizeof name, "grad.%d.%d", k, s);
            out_add(&o, name, t->stores[s]->grad, t->stores[s]->total);
            snprintf(name, sizeof name, "param.%d.%d", k, s);
            out_add(&o, name, t->stores[s]->data, t->stores[s]->total);
        }
    }
    int rc = 0;
    if (fclose(txt) != 0) {
        perror(path);
        rc = 1;
    }
    snprintf(path, sizeof path, "%s.safetensors", out);
    if (st_write_f32(path, o.w, o.n, NULL, 0) != DISTILL_OK) {
        distill_print_error(distill_error());
        rc = 1;
    }
    for (int i = 0; i < o.n; i++) free(o.keep[i]), free(o.names[i]);
    free(o.w), free(o.keep), free(o.names);
    free(r);
    trainer_free(t);
    return rc;
}

/* ------------------------------------------------------------------ accum */

/* Gradient accumulation: batch 8 in one micro-step = batch 4 in two. The two runs perform the same
 * arithmetic per row (dropout is off; the masks and the padded length SEQ are the same), except:
 *   - the loss scale: 1/8 of the 8-row mean's gradient against (1/4 of a 4-row mean) x 1/2 — one
 *     extra fp32 rounding (u);
 *   - the order of the fp32 sums over rows: every weight gradient sums B*S = 88 token terms, in one
 *     GEMM against two GEMMs of 44 plus an add. A sum of n terms in fp32 is off by at most
 *     (n - 1) u sum|terms| (Higham, Thm 4.4) on each side, so 2 n u for the pair;
 *   - the forward per row may take other BLAS blockings (M = 88 against 44 rows), which moves each
 *     dot product of length <= max(H, I) = 40 by at most 2 * 40 u, less than the above.
 * The backward chain of the 1-layer student has ~8 reduction stages (classifier, pooler, FFN out,
 * FFN in, attention out, P V, Q K^T, Q/K/V), each of which can add such a difference, and the
 * terms' sums are within a small factor of max|g| for these random weights; bound, normwise per
 * store: max|g8 - g4x2| <= 8 * 2 n u * max|g8| = 8.4e-5 max|g8|. An accumulation that dropped or
 * double-counted a micro-step, or scaled it wrongly, is off by >= 1/4 of max|g| and fails by far. */
static int cmd_accum(void) {
    const double n = ROWS * SEQ;
    const double tol = 8.0 * 2.0 * n * U32;
    char *over_a[] = {"data.batch_size=8", "train.grad_accum=1"};
    char *over_b[] = {"data.batch_size=4", "train.grad_accum=2"};
    Trainer *a = make_trainer(2, over_a), *b = make_trainer(2, over_b);
    CHECK(a->n_stores == 2 && b->n_stores == 2, "two parameter stores (student, projections): %d, %d", a->n_stores,
          b->n_stores);
    for (int s = 0; s < a->n_stores; s++)
        CHECK(a->stores[s]->total == b->stores[s]->total &&
                  memcmp(a->stores[s]->data, b->stores[s]->data, a->stores[s]->total * sizeof(float)) == 0,
              "store %d: the two trainers start from the same weights (same seed)", s);
    Rows *r = xmalloc(sizeof *r);
    make_rows(r);
    Batch whole = batch_of(r, 0, ROWS, ROWS);
    Batch halves[2] = {batch_of(r, 0, ROWS / 2, ROWS / 2), batch_of(r, ROWS / 2, ROWS / 2, ROWS / 2)};
    TrainerStep sa, sb;
    if (trainer_step_on(a, &whole, 1, &sa) != DISTILL_OK || trainer_step_on(b, halves, 2, &sb) != DISTILL_OK) {
        distill_print_error(distill_error());
        return 1;
    }
    CHECK(sa.rows == ROWS && sb.rows == ROWS, "rows of the step: %lld and %lld, want %d", (long long)sa.rows,
          (long long)sb.rows, ROWS);
    double dl = fabs(sa.loss - sb.loss) / fabs(sa.loss), dn = fabs(sa.grad_norm - sb.grad_norm) / sa.grad_norm;
    printf("accum: loss %.9g vs %.9g (rel %.3g), grad norm %.9g vs %.9g (rel %.3g); tolerance %.3g\n", sa.loss,
           sb.loss, dl, sa.grad_norm, sb.grad_norm, dn, tol);
    CHECK(dl <= tol, "loss: relative difference %.3g > %.3g", dl, tol);
    CHECK(dn <= tol, "grad norm: relative difference %.3g > %.3g", dn, tol);
    for (int s = 0; s < a->n_stores; s++) {
        const float *ga = a->stores[s]->grad, *gb = b->stores[s]->grad;
        double maxg = 0, maxd = 0;
        for (size_t i = 0; i < a->stores[s]->total; i++) {
            maxg = fmax(maxg, fabs(ga[i]));
            maxd = fmax(maxd, fabs((double)ga[i] - gb[i]));
        }
        printf("accum: store %d (%zu values): max|g| %.3g, max|g8 - g4x2| %.3g (normwise %.3g)\n", s,
               a->stores[s]->total, maxg, maxd, maxd / maxg);
        CHECK(maxg > 0, "store %d: the gradient is zero", s);
        CHECK(maxd <= tol * maxg, "store %d: gradients differ by %.3g max|g| > %.3g", s, maxd / maxg, tol);
    }
    free(r);
    trainer_free(a);
    trainer_free(b);
    printf("%s\n", failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}

/* ------------------------------------------------------------------ readbacks */

static int cmd_readbacks(void) {
    enum { STEPS = 5, NAN_STEP = 4 }; /* DISTILL_TEST_NAN=0:4: step 4's loss reads as NaN */
    char nan_at[32];
    snprintf(nan_at, sizeof nan_at, "0:%d", NAN_STEP);
    setenv("DISTILL_TEST_NAN", nan_at, 1); /* read by trainer_new */
    char *over[] = {"data.batch_size=4", "train.grad_accum=2", "train.max_steps=5", "train.max_bad_steps=3",
                    "losses[3]={type: attention_mse, weight: 1.0, layers: uniform}"};
    Trainer *t = make_trainer(5, over);
    unsetenv("DISTILL_TEST_NAN");
    CHECK(t->n_stores == 2, "two parameter stores (student, projections), found %d", t->n_stores);
    CHECK(t->n_terms == 4, "four loss terms, found %d", t->n_terms);
    Rows *r = xmalloc(sizeof *r);
    make_rows(r);
    Batch micro[2] = {batch_of(r, 0, ROWS / 2, ROWS / 2), batch_of(r, ROWS / 2, ROWS / 2, ROWS / 2)};
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
    free(r);
    trainer_free(t);
    printf("%s\n", failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    int rc = 2;
    if (argc >= 2 && strcmp(argv[1], "trace") == 0) rc = cmd_trace(argc, argv);
    else if (argc == 2 && strcmp(argv[1], "accum") == 0) rc = cmd_accum();
    else if (argc == 2 && strcmp(argv[1], "readbacks") == 0) rc = cmd_readbacks();
    if (rc == 2) fprintf(stderr, "usage: test_train_step trace OUT STEPS [--set KEY=VALUE ...] | accum | readbacks\n");
    return rc;
}
