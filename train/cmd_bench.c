/*
 * cmd_bench.c — `distill bench --config FILE [--steps N] [--seq S] [--json]`: times the config's
 * training step on random data of its shapes (DESIGN §9).
 *
 * The models are built as the config says (random shapes, or loaded from their paths), the loss
 * set and AdamW exactly as in training; the data is random token ids (every row S tokens long, so
 * the work per step is fixed) with random labels. Each timed step = teacher forward (tape off) +
 * student forward, losses, backward + clipping + AdamW, like a training step with grad_accum 1.
 * Reported: the median, min and max step time after one warm-up step, tokens/s, the teacher's and
 * the student's share, achieved GFLOP/s (teacher forward + 3x student forward, counting the GEMMs
 * and attention matmuls: per layer 2T(4H^2 + 2HI) + 4BS^2H with T = B*S tokens), and the peak
 * resident memory. Nothing is written to disk.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../engine/backend.h"
#include "../engine/ops.h"
#include "../engine/rng.h"
#include "../losses/losses.h"
#include "cli.h"
#include "config.h"
#include "config_tree.h"
#include "runtime.h"
#include "trainer.h"

static int usage(FILE *f, int rc) {
    fprintf(f,
            "usage: distill bench --config FILE [--set key=value ...] [--steps N] [--seq S] [--from-data] [--json]\n"
            "  Times the config's training step (the Trainer's step: the one `distill --config` runs)\n"
            "  on random data of its shapes.\n"
            "  --steps N     timed steps after one warm-up (default 5)\n"
            "  --seq S       tokens per row of the random data (default 128)\n"
            "  --from-data   take the batches from the config's data.train, in training order, instead\n"
            "                (the first step's loss then equals step 1 of `distill --config`)\n"
            "  --json        one JSON object: step_ms {median,min,max}, tokens_per_s, teacher_ms,\n"
            "                student_ms, gflops_per_s, peak_rss_mb, first_loss, and the shapes\n");
    return rc;
}

/* Forward FLOPs of one BERT on B rows of S tokens (GEMMs and attention matmuls). */
static double forward_flops(const BertConfig *c, int B, int S) {
    double T = (double)B * S, H = c->hidden_size, I = c->intermediate_size;
    double per_layer = 2.0 * T * (4.0 * H * H + 2.0 * H * I) + 4.0 * B * (double)S * S * H;
    return c->num_hidden_layers * per_layer + 2.0 * B * H * H + 2.0 * B * H * (c->num_labels > 0 ? c->num_labels : 0);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench(int argc, char **argv) {
    const char *config_path = NULL;
    char **over = xcalloc((size_t)argc + 1, sizeof(char *));
    int n_over = 0, steps = 5, S = 128;
    bool json = false, from_data = false;
    for (int i = 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "--config") && has) config_path = argv[++i];
        else if (!strcmp(argv[i], "--set") && has) over[n_over++] = argv[++i];
        else if (!strcmp(argv[i], "--steps") && has) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seq") && has) S = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--from-data")) from_data = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            free(over);
            return usage(stdout, 0);
        } else {
            fprintf(stderr, "distill: error: bench: %s argument '%s'\n",
                    !has && argv[i][0] == '-' ? "a value is needed after the" : "unexpected", argv[i]);
            free(over);
            return usage(stderr, 2);
        }
    }
    if (!config_path || steps < 1 || S < 2) {
        free(over);
        return usage(stderr, 2);
    }
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    Comm comm = {.rank = 0, .world = 1, .local_rank = 0, .local_world = 1, .kind = COMM_SINGLE, .timeout_s = 30};
    Trainer *t = NULL;
    int32_t *ids = NULL, *types = NULL, *lengths = NULL, *labels = NULL;
    int64_t *rows = NULL;
    float *targets = NULL;
    double *t_step = NULL, *t_teacher = NULL;
    int rc = 1;
    /* random data: config_parse only (bench needs no data files and writes no run directory) */
    Status st = from_data ? config_load(config_path, n_over, over, &cfg) : config_parse(config_path, n_over, over, &cfg);
    free(over);
    if (st != DISTILL_OK) goto done;
    if (trainer_new(&cfg, &comm, from_data, &t) != DISTILL_OK) goto done;
    Bert *student = t->student, *teacher = t->teacher;
    int B = t->cfg.data.batch_size;
    bool too_long = S > student->cfg.max_position_embeddings || (teacher && S > teacher->cfg.max_position_embeddings);
    for (int k = 1; k < t->n_teachers; k++) too_long |= S > t->teachers[k]->cfg.max_position_embeddings; /* teachers: */
    if (!from_data && too_long) {
        distill_set_error("--seq %d: longer than the models' position embeddings", S);
        goto done;
    }
    Batch b;
    memset(&b, 0, sizeof b);
    if (!from_data) {
        /* Random batch: ids in [1000, vocab) (ordinary word pieces), every row S long. */
        ids = xmalloc((size_t)B * S * sizeof(int32_t));
        types = xcalloc((size_t)B * S, sizeof(int32_t));
        lengths = xmalloc((size_t)B * sizeof(int32_t));
        labels = xmalloc((size_t)B * sizeof(int32_t));
        targets = xmalloc((size_t)B * sizeof(float));
        rows = xmalloc((size_t)B * sizeof(int64_t));
        Rng rng = rng_new(t->cfg.run.seed);
        int V = student->cfg.vocab_size;
        for (int i = 0; i < B * S; i++)
            ids[i] = 1000 % V + (int32_t)rng_next_below(&rng, (uint64_t)(V > 1000 ? V - 1000 : V));
        for (int r = 0; r < B; r++) {
            lengths[r] = S;
            labels[r] = (int32_t)rng_next_below(&rng, (uint64_t)(student->cfg.num_labels > 1 ? student->cfg.num_labels : 1));
            targets[r] = (float)rng_next_double(&rng);
            rows[r] = r;
        }
        b = (Batch){.rows = B, .seq = S, .input_ids = ids, .token_type_ids = types, .lengths = lengths,
                    .labels = labels, .targets = targets, .row_index = rows, .global_rows = B, .global_row0 = 0};
    }
    t_step = xmalloc(sizeof(double) * (size_t)steps);
    t_teacher = xmalloc(sizeof(double) * (size_t)steps);
    double first_loss = 0, tokens = 0;
    for (int s = -1; s < steps; s++) {
        double t0 = now_seconds();
        TrainerStep out;
        /* from data: the trainer's own loader and step, exactly as `distill --config` runs them;
         * random: the same step on the one random batch */
        st = from_data ? trainer_step(t, &out) : trainer_step_on(t, &b, 1, &out);
        if (st != DISTILL_OK) goto done;
        ctx_sync(t->c);
        double t2 = now_seconds();
        if (s == -1) first_loss = out.loss;
        if (s >= 0) {
            t_step[s] = t2 - t0;
            t_teacher[s] = out.teacher_s;
            tokens += (double)out.tokens;
        }
    }
    double med_teacher;
    {
        double *tmp = xmalloc(sizeof(double) * (size_t)steps);
        memcpy(tmp, t_teacher, sizeof(double) * (size_t)steps);
        qsort(tmp, (size_t)steps, sizeof(double), cmp_double);
        med_teacher = tmp[steps / 2];
        free(tmp);
    }
    qsort(t_step, (size_t)steps, sizeof(double), cmp_double);
    double med = t_step[steps / 2];
    int Seff = from_data ? (int)(tokens / steps / B + 0.5) : S;
    double flops = 3.0 * forward_flops(&student->cfg, B, Seff) +
                   (teacher && loss_set_needs_teacher(t->losses) ? forward_flops(&teacher->cfg, B, Seff) : 0.0);
    double tok_per_step = from_data ? tokens / steps : (double)B * S;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;
    char devname[32];
    device_str(t->device, devname, sizeof devname);
    const char *prec_t = teacher ? CONFIG_PRECISION_NAMES[t->cfg.teacher.precision] : "none";
    const char *prec_s = CONFIG_PRECISION_NAMES[t->cfg.student.precision];
    const char *gemm = backend_gemm_library(t->device);
    if (json) {
        printf("{\"config\":\"%s\",\"device\":\"%s\",\"threads\":%d,\"batch\":%d,\"seq\":%d,\"steps\":%d,"
               "\"data\":\"%s\",\"step_ms\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},\"tokens_per_s\":%.1f,"
               "\"teacher_ms\":%.3f,\"student_ms\":%.3f,\"gflops_per_s\":%.2f,\"peak_rss_mb\":%.1f,"
               "\"first_loss\":%.9g,\"precision\":{\"teacher\":\"%s\",\"student\":\"%s\"},\"gemm\":\"%s\",",
               config_path, devname, runtime_threads(), B, Seff, steps, from_data ? "train" : "random", med * 1e3,
               t_step[0] * 1e3, t_step[steps - 1] * 1e3, tok_per_step / med, med_teacher * 1e3,
               (med - med_teacher) * 1e3, flops / med / 1e9, rss_mb, first_loss, prec_t, prec_s, gemm);
        if (teacher)
            printf("\"teacher\":{\"layers\":%d,\"hidden\":%d,\"heads\":%d,\"intermediate\":%d},",
                   teacher->cfg.num_hidden_layers, teacher->cfg.hidden_size, teacher->cfg.num_attention_heads,
                   teacher->cfg.intermediate_size);
        printf("\"student\":{\"layers\":%d,\"hidden\":%d,\"heads\":%d,\"intermediate\":%d}}\n",
               student->cfg.num_hidden_layers, student->cfg.hidden_size, student->cfg.num_attention_heads,
               student->cfg.intermediate_size);
    } else {
        printf("bench %s on %s, %d threads: batch %d x seq %d%s, %d steps after 1 warm-up\n", config_path, devname,
               runtime_threads(), B, Seff, from_data ? " (mean, from data.train)" : "", steps);
        printf("step       median %.1f ms (min %.1f, max %.1f), %.0f tokens/s\n", med * 1e3, t_step[0] * 1e3,
               t_step[steps - 1] * 1e3, tok_per_step / med);
        printf("teacher    %.1f ms forward\nstudent    %.1f ms forward + losses + backward + AdamW\n",
               med_teacher * 1e3, (med - med_teacher) * 1e3);
        printf("compute    %.1f GFLOP/s (%.1f GFLOP per step)\nmemory     %.0f MB peak resident\n",
               flops / med / 1e9, flops / 1e9, rss_mb);
        printf("loss       %.6g at the first step\n", first_loss);
        printf("precision  teacher %s, student %s; GEMMs: %s\n", prec_t, prec_s, gemm);
    }
    rc = 0;
done:
    if (rc) distill_print_error(distill_error());
    free(ids);
    free(types);
    free(lengths);
    free(labels);
    free(targets);
    free(rows);
    free(t_step);
    free(t_teacher);
    trainer_free(t);
    config_free(&cfg);
    return rc;
}
