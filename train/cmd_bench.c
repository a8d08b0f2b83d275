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

#include "../engine/ops.h"
#include "../engine/rng.h"
#include "../losses/losses.h"
#include "cli.h"
#include "config.h"
#include "optim.h"
#include "runtime.h"
#include "setup.h"

static int usage(FILE *f, int rc) {
    fprintf(f,
            "usage: distill bench --config FILE [--set key=value ...] [--steps N] [--seq S] [--json]\n"
            "  Times the config's training step on random data of its shapes.\n"
            "  --steps N   timed steps after one warm-up (default 5)\n"
            "  --seq S     tokens per row (default 128)\n"
            "  --json      one JSON object: step_ms {median,min,max}, tokens_per_s, teacher_ms,\n"
            "              student_ms, gflops_per_s, peak_rss_mb, and the shapes\n");
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
    bool json = false;
    for (int i = 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "--config") && has) config_path = argv[++i];
        else if (!strcmp(argv[i], "--set") && has) over[n_over++] = argv[++i];
        else if (!strcmp(argv[i], "--steps") && has) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seq") && has) S = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            free(over);
            return usage(stdout, 0);
        } else {
            fprintf(stderr, "distill: error: bench: unexpected argument '%s'\n", argv[i]);
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
    Bert *teacher = NULL, *student = NULL;
    LossSet *ls = NULL;
    AdamW *opt = NULL, *opt_p = NULL;
    Ctx *c = NULL;
    int32_t *ids = NULL, *types = NULL, *lengths = NULL, *labels = NULL;
    float *targets = NULL;
    double *t_step = NULL, *t_teacher = NULL;
    int rc = 1;
    /* config_parse only: bench needs no data files and writes no run directory. */
    Status st = config_parse(config_path, n_over, over, &cfg);
    free(over);
    if (st != DISTILL_OK) goto done;
    runtime_set_threads(cfg.threads);
    Device dev;
    if (runtime_pick_device(cfg.device == CONFIG_DEVICE_CPU ? "cpu" : cfg.device == CONFIG_DEVICE_CUDA ? "cuda" : "auto",
                            &dev) != DISTILL_OK)
        goto done;
    SetupData sd = {.vocab_size = 30522, .num_labels = 2, .label_names = NULL};
    if (setup_teacher(&cfg, dev, &sd, &teacher) != DISTILL_OK) goto done;
    if (setup_student(&cfg, dev, &sd, teacher, &student) != DISTILL_OK) goto done;
    int B = cfg.data.batch_size;
    if (S > student->cfg.max_position_embeddings || (teacher && S > teacher->cfg.max_position_embeddings)) {
        distill_set_error("--seq %d: longer than the models' position embeddings", S);
        goto done;
    }
    LossSpec *specs = xcalloc((size_t)cfg.n_losses, sizeof *specs);
    st = setup_loss_specs(&cfg, student, teacher, specs);
    if (st == DISTILL_OK)
        st = loss_set_build(specs, cfg.n_losses, &student->cfg, teacher ? &teacher->cfg : NULL, dev, cfg.run.seed, &ls);
    free(specs);
    if (st != DISTILL_OK) goto done;
    opt = adamw_new(student->params, 0.9f, 0.999f, 1e-8f, 0.01f);
    if (loss_set_params(ls)) opt_p = adamw_new(loss_set_params(ls), 0.9f, 0.999f, 1e-8f, 0.01f);
    c = ctx_new(dev, cfg.run.seed);

    /* Random batch: ids in [1000, vocab) (ordinary word pieces), every row S long. */
    ids = xmalloc((size_t)B * S * sizeof(int32_t));
    types = xcalloc((size_t)B * S, sizeof(int32_t));
    lengths = xmalloc((size_t)B * sizeof(int32_t));
    labels = xmalloc((size_t)B * sizeof(int32_t));
    targets = xmalloc((size_t)B * sizeof(float));
    Rng rng = rng_new(cfg.run.seed);
    int V = student->cfg.vocab_size;
    for (int i = 0; i < B * S; i++) ids[i] = 1000 % V + (int32_t)rng_next_below(&rng, (uint64_t)(V > 1000 ? V - 1000 : V));
    for (int b = 0; b < B; b++) {
        lengths[b] = S;
        labels[b] = (int32_t)rng_next_below(&rng, (uint64_t)(student->cfg.num_labels > 1 ? student->cfg.num_labels : 1));
        targets[b] = (float)rng_next_double(&rng);
    }
    BertRequest sreq, treq;
    loss_set_request(ls, &sreq, &treq);
    ParamStore *stores[2] = {student->params, loss_set_params(ls)};
    t_step = xmalloc(sizeof(double) * (size_t)steps);
    t_teacher = xmalloc(sizeof(double) * (size_t)steps);
    for (int s = -1; s < steps; s++) {
        double t0 = now_seconds();
        ctx_reset(c);
        params_zero_grad(student->params);
        if (stores[1]) params_zero_grad(stores[1]);
        int sh2[2] = {B, S}, sh1[1] = {B};
        BertInput in = {ctx_from_host(c, DT_I32, 2, sh2, ids), ctx_from_host(c, DT_I32, 2, sh2, types),
                        ctx_from_host(c, DT_I32, 1, sh1, lengths), lengths};
        BertOutput to, so;
        memset(&to, 0, sizeof to);
        if (teacher && loss_set_needs_teacher(ls)) {
            ctx_set_record(c, false);
            c->training = false;
            bert_forward(c, teacher, &in, &treq, &to);
            c->be->sync();
        }
        double t1 = now_seconds();
        ctx_set_record(c, true);
        c->training = true;
        bert_forward(c, student, &in, &sreq, &so);
        Tensor *lab = NULL;
        if (loss_set_labels(ls) == LOSS_LABELS_CLASS) lab = ctx_from_host(c, DT_I32, 1, sh1, labels);
        else if (loss_set_labels(ls) == LOSS_LABELS_REGRESSION) lab = ctx_from_host(c, DT_F32, 1, sh1, targets);
        Tensor *loss = loss_set_forward(c, ls, &so, teacher ? &to : NULL, lab, lengths, 0, NULL);
        if (!loss) goto done;
        ctx_backward(c, loss);
        float scale = clip_grad_scale(grad_global_norm(stores, stores[1] ? 2 : 1), 1.0f);
        adamw_step(opt, 1e-5f, scale);
        if (opt_p) adamw_step(opt_p, 1e-5f, scale);
        c->be->sync();
        double t2 = now_seconds();
        if (s >= 0) {
            t_step[s] = t2 - t0;
            t_teacher[s] = t1 - t0;
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
    double flops = 3.0 * forward_flops(&student->cfg, B, S) +
                   (teacher && loss_set_needs_teacher(ls) ? forward_flops(&teacher->cfg, B, S) : 0.0);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;
    char devname[32];
    device_str(dev, devname, sizeof devname);
    if (json) {
        printf("{\"config\":\"%s\",\"device\":\"%s\",\"threads\":%d,\"batch\":%d,\"seq\":%d,\"steps\":%d,"
               "\"step_ms\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},\"tokens_per_s\":%.1f,"
               "\"teacher_ms\":%.3f,\"student_ms\":%.3f,\"gflops_per_s\":%.2f,\"peak_rss_mb\":%.1f,",
               config_path, devname, runtime_threads(), B, S, steps, med * 1e3, t_step[0] * 1e3,
               t_step[steps - 1] * 1e3, (double)B * S / med, med_teacher * 1e3, (med - med_teacher) * 1e3,
               flops / med / 1e9, rss_mb);
        if (teacher)
            printf("\"teacher\":{\"layers\":%d,\"hidden\":%d,\"heads\":%d,\"intermediate\":%d},",
                   teacher->cfg.num_hidden_layers, teacher->cfg.hidden_size, teacher->cfg.num_attention_heads,
                   teacher->cfg.intermediate_size);
        printf("\"student\":{\"layers\":%d,\"hidden\":%d,\"heads\":%d,\"intermediate\":%d}}\n",
               student->cfg.num_hidden_layers, student->cfg.hidden_size, student->cfg.num_attention_heads,
               student->cfg.intermediate_size);
    } else {
        printf("bench %s on %s, %d threads: batch %d x seq %d, %d steps after 1 warm-up\n", config_path, devname,
               runtime_threads(), B, S, steps);
        printf("step       median %.1f ms (min %.1f, max %.1f), %.0f tokens/s\n", med * 1e3, t_step[0] * 1e3,
               t_step[steps - 1] * 1e3, (double)B * S / med);
        printf("teacher    %.1f ms forward\nstudent    %.1f ms forward + losses + backward + AdamW\n",
               med_teacher * 1e3, (med - med_teacher) * 1e3);
        printf("compute    %.1f GFLOP/s (%.1f GFLOP per step)\nmemory     %.0f MB peak resident\n",
               flops / med / 1e9, flops / 1e9, rss_mb);
    }
    rc = 0;
done:
    if (rc) distill_print_error(distill_error());
    free(ids);
    free(types);
    free(lengths);
    free(labels);
    free(targets);
    free(t_step);
    free(t_teacher);
    ctx_free(c);
    adamw_free(opt);
    adamw_free(opt_p);
    loss_set_free(ls);
    bert_free(student);
    bert_free(teacher);
    config_free(&cfg);
    return rc;
}
