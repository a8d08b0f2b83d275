/*
 * cmd_cache.c — `distill cache`: runs a teacher once over a prepared file and stores its logits
 * in the file as /teacher_logits, so that a distillation run whose losses need only the teacher's
 * logits (logits_kd, logits_ce, with or without hard_ce) skips the teacher forward.
 *
 *   distill cache --teacher DIR|CKPT.h5 --data FILE.h5 [--batch-size N] [--precision fp32|bf16]
 *                 [--threads N] [--device cpu|cuda|auto]
 *
 * Design: a separate command on an existing prepared file, not a `prepare --teacher` option: the
 * same prepared file serves runs with and without a cache, and re-caching after the teacher
 * changes does not re-tokenise. The file is replaced atomically (dataset_write_teacher_logits:
 * copy, add the dataset, rename), so a failure or a kill leaves it as it was.
 *
 * Row i of /teacher_logits is the teacher's logits for row i of the file, computed in evaluation
 * mode (no dropout), tape off, at the given precision, each batch padded to its longest row (as
 * the training loader pads; padding is masked, so a row's logits differ from the live teacher's in
 * a training batch only by fp32 rounding). The identity attributes (the teacher's
 * ckpt_model_sha256, the precision, the file's vocab_sha256 and max_seq) let a run refuse a cache
 * of another teacher, vocabulary, max_seq or precision (trainer.c, use_teacher_cache).
 *
 * Exit codes as train/cli.h says: 0 done, 1 a reported error (the file unchanged), 2 a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../checkpoints/ckpt.h"
#include "../engine/backend.h"
#include "cli.h"
#include "config_tree.h"
#include "runtime.h"
#include "setup.h"
#include "trainer.h"

static int usage_error(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "distill: error: cache: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(see distill cache --help)\n");
    return 2;
}

int cmd_cache(int argc, char **argv) {
    const char *teacher_path = NULL, *data_path = NULL, *device_name = "cpu";
    int batch = 32, threads = 0, precision = CONFIG_PRECISION_FP32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return help_cache(stdout, 0);
        static const char *const with_value[] = {"--teacher", "--data", "--batch-size", "--precision", "--threads",
                                                 "--device"};
        bool known = false;
        for (size_t j = 0; j < sizeof with_value / sizeof with_value[0]; j++) known |= !strcmp(a, with_value[j]);
        if (!known) return usage_error("unexpected argument '%s'%s", a, "");
        if (i + 1 >= argc) return usage_error("%s needs a value%s", a, "");
        const char *v = argv[++i];
        if (!strcmp(a, "--teacher")) teacher_path = v;
        else if (!strcmp(a, "--data")) data_path = v;
        else if (!strcmp(a, "--device")) device_name = v;
        else if (!strcmp(a, "--precision")) {
            if (!strcmp(v, "fp32")) precision = CONFIG_PRECISION_FP32;
            else if (!strcmp(v, "bf16")) precision = CONFIG_PRECISION_BF16;
            else return usage_error("--precision: expected fp32 or bf16, found '%s'%s", v, "");
        } else {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || end == v || n < 1 || n > 1 << 20)
                return usage_error("%s: expected a positive integer, found '%s'", a, v);
            if (!strcmp(a, "--batch-size")) batch = (int)n;
            else threads = (int)n;
        }
    }
    if (!teacher_path || !data_path) return usage_error("--teacher and --data are required%s%s", "", "");

    runtime_set_threads(threads);
    Device dev;
    if (runtime_pick_device(device_name, &dev) != DISTILL_OK) {
        distill_print_error(distill_error());
        return 1;
    }
    Dataset *ds = NULL;
    Bert *m = NULL;
    Ctx *c = NULL;
    float *all = NULL;
    int rc = 1;
    double t0 = now_seconds();
    if (dataset_open(&ds, data_path, true) != DISTILL_OK) goto done;
    /* the run's teacher is loaded the same way (setup_teacher), so the hashes agree */
    if (setup_load_path(teacher_path, dev, -1, 42, &m) != DISTILL_OK) {
        char msg[1200];
        snprintf(msg, sizeof msg, "cache: --teacher %s: %s", teacher_path, distill_error());
        distill_set_error("%s", msg);
        goto done;
    }
    const int C = m->cfg.num_labels;
    if (m->cfg.vocab_size != ds->vocab_size) {
        distill_set_error("cache: the teacher %s has a vocabulary of %d tokens, %s's is %d: not the teacher for "
                          "this file", teacher_path, m->cfg.vocab_size, data_path, ds->vocab_size);
        goto done;
    }
    if (ds->max_seq > m->cfg.max_position_embeddings) {
        distill_set_error("cache: %s has rows of up to %d tokens, the teacher %s has %d positions", data_path,
                          ds->max_seq, teacher_path, m->cfg.max_position_embeddings);
        goto done;
    }
    if (C < 1) {
        distill_set_error("cache: the teacher %s has no classifier (num_labels 0): it has no logits to cache",
                          teacher_path);
        goto done;
    }
    if (ds->label_kind == LABELS_CLASS && C != ds->num_labels) {
        distill_set_error("cache: the teacher %s has %d outputs, %s has %d classes", teacher_path, C, data_path,
                          ds->num_labels);
        goto done;
    }
    if (precision == CONFIG_PRECISION_BF16) {
        char why[256];
        if (!backend_bf16_supported(dev, why, sizeof why)) {
            distill_set_error("cache: --precision bf16 cannot run here: %s; use fp32", why);
            goto done;
        }
    }
    TeacherCacheId id;
    memset(&id, 0, sizeof id);
    ckpt_model_sha256(m, id.teacher_sha256); /* the fp32 weights, before any bf16 copy */
    if (precision == CONFIG_PRECISION_BF16) params_make_bf16(m->params);
    snprintf(id.precision, sizeof id.precision, "%s", CONFIG_PRECISION_NAMES[precision]);
    snprintf(id.vocab_sha256, sizeof id.vocab_sha256, "%s", ds->vocab_sha256);
    id.max_seq = ds->max_seq;
    id.teacher_path = (char *)teacher_path;
    id.known = true;

    c = ctx_new(dev, 0);
    c->bf16 = precision == CONFIG_PRECISION_BF16;
    all = xcalloc((size_t)(ds->rows ? ds->rows : 1) * (size_t)C, sizeof(float));
    double t1 = now_seconds();
    if (model_logits(c, m, ds, batch, 0, 1, all) != DISTILL_OK) goto done;
    double forward_s = now_seconds() - t1;
    if (dataset_write_teacher_logits(data_path, all, ds->rows, C, &id) != DISTILL_OK) goto done;
    printf("distill cache: %lld rows x %d logits of teacher %s (sha256 %.16s..., %s) -> %s/teacher_logits; "
           "teacher forward %.2f s (%.0f rows/s), %.2f s in all\n",
           (long long)ds->rows, C, teacher_path, id.teacher_sha256, id.precision, data_path, forward_s,
           forward_s > 0 ? (double)ds->rows / forward_s : 0.0, now_seconds() - t0);
    rc = 0;
done:
    if (rc) distill_print_error(distill_error());
    free(all);
    if (c) ctx_free(c);
    bert_free(m);
    dataset_free(ds);
    return rc;
}
