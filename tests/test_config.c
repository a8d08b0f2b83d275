/*
 * test_config.c — train/config beyond the one-fixture rejection rules (test_config_bad.c): the
 * documented defaults, the DESIGN §6 example, --set overrides, the resolved dump read back to an
 * equal Config, config_where, temperature schedules, stages, shipped configs and configs/README.md;
 * the config_check_models rules are in test_config_models.c (same binary).
 * Usage: test_config CASE (see tests/config.cmake). Every case runs in a fresh sandbox directory
 * and checks that loading wrote nothing into it.
 */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp, scandir (test_config_sandbox.h) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/bert.h"
#include "test_config_check.h"
#include "test_config_sandbox.h"
#include "train/config.h"

int failures;

/* Writes `yaml` to cfg.yaml in the sandbox and loads it; checks that loading wrote nothing. */
Status load_text(const char *yaml, int n, const char *const *sets, Config *c) {
    sandbox_touch("cfg.yaml", yaml);
    char *before = sandbox_snapshot();
    Status st = config_load("cfg.yaml", n, (char **)sets, c);
    char *after = sandbox_snapshot();
    if (strcmp(before, after)) {
        fprintf(stderr, "FAIL: loading changed the sandbox\n--- before\n%s--- after\n%s", before, after);
        failures++;
    }
    free(before);
    free(after);
    if (st) fprintf(stderr, "(load: %s)\n", distill_error());
    return st;
}

void expect_message(const char *found, const char *expected) {
    if (strcmp(found, expected)) {
        fprintf(stderr, "FAIL: message differs\n  expected: %s\n  found:    %s\n", expected, found);
        failures++;
    }
}

static const char *MINIMAL = "teacher: {path: teacher}\ndata: {train: data/train.h5}\n";

static const char *DESIGN_EXAMPLE =
    "task: distill                 # or finetune (train a teacher on labels)\n"
    "run:       {name: tiny, dir: runs/tiny, seed: 42}\n"
    "device:    cpu                # cpu | cuda (| auto)\n"
    "precision: fp32               # fp32 | bf16\n"
    "teacher:   {path: runs/teacher/best}             # a Hugging Face folder or a checkpoint\n"
    "student:   {init: random, layers: 4, hidden: 312, heads: 12, intermediate: 1200, dropout: 0.1}\n"
    "data:      {train: data/sst2/train.h5, dev: data/sst2/dev.h5, batch_size: 32}\n"
    "losses:\n"
    "  - {type: logits_kd, weight: 1.0, temperature: 2.0}\n"
    "  - {type: hidden_mse, weight: 1.0, layers: uniform}\n"
    "  - {type: attention_mse, weight: 1.0, layers: uniform, target: scores}\n"
    "optimizer: {lr: 1.0e-4, weight_decay: 0.01, warmup_steps: 100, schedule: linear, max_grad_norm: 1.0}\n"
    "train:     {epochs: 3, max_steps: 0, grad_accum: 1, eval_every: 500, log_every: 10,\n"
    "            checkpoint_every: 500, keep_last: 3}\n";

/* ------------------------------------------------------------------ equality */

static bool str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static bool model_eq(const ConfigModel *a, const ConfigModel *b) {
    if (a->init != b->init || !str_eq(a->path, b->path) || a->n_init_layers != b->n_init_layers) return false;
    for (int i = 0; i < a->n_init_layers; i++)
        if (a->init_layers[i] != b->init_layers[i]) return false;
    return a->layers == b->layers && a->hidden == b->hidden && a->heads == b->heads &&
           a->intermediate == b->intermediate && a->max_position == b->max_position &&
           a->vocab_size == b->vocab_size && a->type_vocab_size == b->type_vocab_size &&
           a->num_labels == b->num_labels && a->dropout == b->dropout &&
           a->attention_dropout == b->attention_dropout && a->layer_norm_eps == b->layer_norm_eps &&
           a->initializer_range == b->initializer_range;
}

static bool loss_eq(const LossSpec *a, const LossSpec *b) {
    if (a->type != b->type || !str_eq(a->name, b->name) || a->weight != b->weight ||
        a->temperature != b->temperature || a->temperature_end != b->temperature_end ||
        a->temperature_steps != b->temperature_steps || a->map != b->map || a->n_pairs != b->n_pairs ||
        a->target != b->target || a->projection != b->projection || a->teacher != b->teacher)
        return false;
    for (int i = 0; i < a->n_pairs; i++)
        if (a->pairs[i].student != b->pairs[i].student || a->pairs[i].teacher != b->pairs[i].teacher) return false;
    return true;
}

/* Every field but `source` and `locations` (which say where values came from, not what they are). */
static bool config_eq(const Config *a, const Config *b) {
    bool eq = a->task == b->task && str_eq(a->run.name, b->run.name) && str_eq(a->run.dir, b->run.dir) &&
              a->run.seed == b->run.seed && a->run.overwrite == b->run.overwrite && a->device == b->device &&
              a->precision == b->precision && a->threads == b->threads && a->tf32 == b->tf32 && model_eq(&a->teacher, &b->teacher) &&
              model_eq(&a->student, &b->student) && str_eq(a->data.train, b->data.train) &&
              str_eq(a->data.dev, b->data.dev) && str_eq(a->data.test, b->data.test) &&
              a->data.batch_size == b->data.batch_size && a->data.eval_batch_size == b->data.eval_batch_size &&
              a->data.shuffle == b->data.shuffle && a->data.drop_last == b->data.drop_last &&
              a->data.max_seq == b->data.max_seq && a->n_losses == b->n_losses &&
              !memcmp(&a->optimizer, &b->optimizer, sizeof a->optimizer) &&
              !memcmp(&a->train, &b->train, sizeof a->train) && a->resume == b->resume &&
              str_eq(a->resume_path, b->resume_path);
    for (int i = 0; eq && i < a->n_losses; i++) eq = loss_eq(&a->losses[i], &b->losses[i]);
    eq = eq && a->n_teachers == b->n_teachers && a->teacher_list == b->teacher_list &&
         a->teacher_logits == b->teacher_logits;
    for (int k = 1; eq && k < a->n_teachers; k++) eq = model_eq(config_teacher(a, k), config_teacher(b, k));
    for (int k = 0; eq && k < a->n_teachers; k++)
        eq = str_eq(config_teacher(a, k)->name, config_teacher(b, k)->name) &&
             config_teacher(a, k)->weight == config_teacher(b, k)->weight;
    return eq;
}

/* Writes cfg's resolved YAML to `path`; returns the text (free it). */
static char *dump(const Config *cfg, const char *path) {
    FILE *f = fopen(path, "w+");
    if (!f) sandbox_die("create", path);
    CHECK(config_write_yaml(cfg, f) == DISTILL_OK);
    long n = ftell(f);
    char *text = calloc((size_t)n + 1, 1);
    rewind(f);
    if (fread(text, 1, (size_t)n, f) != (size_t)n) sandbox_die("read", path);
    fclose(f);
    return text;
}

/* Dumps cfg, loads the dump, and checks the two Configs and the two dumps are equal. */
static void check_round_trip(const Config *cfg) {
    char *first = dump(cfg, "resolved.yaml");
    Config back;
    if (config_load("resolved.yaml", 0, NULL, &back)) {
        fprintf(stderr, "FAIL: the resolved dump does not load: %s\n%s", distill_error(), first);
        failures++;
        free(first);
        return;
    }
    if (!config_eq(cfg, &back)) {
        fprintf(stderr, "FAIL: the dump read back differs from the Config\n%s", first);
        failures++;
    }
    char *second = dump(&back, "resolved2.yaml");
    /* the header names the source file, which differs; compare from the first key on */
    const char *a = strstr(first, "\ntask:"), *b = strstr(second, "\ntask:");
    CHECK(a && b && !strcmp(a, b));
    config_free(&back);
    free(first);
    free(second);
    remove("resolved.yaml");
    remove("resolved2.yaml");
}

/* ------------------------------------------------------------------ cases */

static void case_defaults(void) {
    Config c;
    if (load_text(MINIMAL, 0, NULL, &c)) { failures++; return; }
    CHECK(c.task == CONFIG_TASK_DISTILL);
    CHECK_STR(c.run.name, "cfg");
    CHECK_STR(c.run.dir, "runs/cfg");
    CHECK(c.run.seed == 42 && !c.run.overwrite);
    CHECK(c.device == CONFIG_DEVICE_CPU && c.precision == CONFIG_PRECISION_FP32 && c.threads == 0);
    const ConfigModel *t = &c.teacher, *s = &c.student;
    CHECK(t->init == CONFIG_INIT_PATH);
    CHECK_STR(t->path, "teacher");
    CHECK(t->layers == CONFIG_AUTO && t->hidden == CONFIG_AUTO && t->heads == CONFIG_AUTO &&
          t->intermediate == CONFIG_AUTO && t->max_position == CONFIG_AUTO && t->vocab_size == CONFIG_AUTO &&
          t->type_vocab_size == CONFIG_AUTO && t->num_labels == CONFIG_AUTO &&
          t->layer_norm_eps == CONFIG_AUTO && t->initializer_range == CONFIG_AUTO);
    CHECK(t->dropout == 0 && t->attention_dropout == 0);
    /* a random student resolves to BertConfig's defaults; vocab and labels stay "from the data" */
    CHECK(s->init == CONFIG_INIT_RANDOM && s->path == NULL && s->n_init_layers == 0);
    CHECK(s->layers == 12 && s->hidden == 768 && s->heads == 12 && s->intermediate == 3072);
    CHECK(s->max_position == 512 && s->type_vocab_size == 2);
    CHECK(s->vocab_size == CONFIG_AUTO && s->num_labels == CONFIG_AUTO);
    CHECK_NUM(s->dropout, 0.1);
    CHECK_NUM(s->attention_dropout, 0.1);
    CHECK_NUM(s->layer_norm_eps, 1e-12);
    CHECK_NUM(s->initializer_range, 0.02);
    CHECK_STR(c.data.train, "data/train.h5");
    CHECK(c.data.dev == NULL && c.data.test == NULL);
    CHECK(c.data.batch_size == 32 && c.data.eval_batch_size == 32 && c.data.shuffle && !c.data.drop_last &&
          c.data.max_seq == 0);
    CHECK(c.n_losses == 1);
    const LossSpec *l = &c.losses[0];
    CHECK(l->type == LOSS_LOGITS_KD);
    CHECK_STR(l->name, "logits_kd");
    CHECK(l->weight == 1.0f && l->temperature == 1.0f && l->temperature_end == 1.0f && l->temperature_steps == 0);
    CHECK(l->map == LOSS_MAP_NONE && l->n_pairs == 0);
    CHECK(l->target == LOSS_TARGET_DEFAULT && l->projection == LOSS_PROJ_AUTO);
    const ConfigOptimizer *o = &c.optimizer;
    CHECK_NUM(o->lr, 5e-5);
    CHECK_NUM(o->weight_decay, 0.01);
    CHECK_NUM(o->beta1, 0.9);
    CHECK_NUM(o->beta2, 0.999);
    CHECK_NUM(o->eps, 1e-8);
    CHECK(o->warmup_steps == 0 && o->warmup_ratio == 0 && o->schedule == CONFIG_SCHEDULE_LINEAR);
    CHECK_NUM(o->max_grad_norm, 1.0);
    const ConfigTrain *tr = &c.train;
    CHECK(tr->epochs == 3 && tr->max_steps == 0 && tr->grad_accum == 1 && tr->eval_every == 0 &&
          tr->log_every == 10 && tr->checkpoint_every == 0 && tr->keep_last == 3 &&
          tr->metric == CONFIG_METRIC_ACCURACY && tr->save_best && tr->early_stopping_patience == 0);
    CHECK(c.resume == CONFIG_RESUME_NONE && c.resume_path == NULL);
    config_free(&c);

    /* per-type defaults of the loss keys */
    const char *types = "teacher: {path: teacher}\ndata: {train: data/train.h5}\nlosses:\n"
                        "  - {type: hidden_mse}\n  - {type: hidden_cos}\n  - {type: embedding_mse}\n"
                        "  - {type: attention_kl}\n";
    if (load_text(types, 0, NULL, &c)) { failures++; return; }
    CHECK(c.n_losses == 4);
    CHECK(c.losses[0].map == LOSS_MAP_UNIFORM && c.losses[1].map == LOSS_MAP_LAST);
    CHECK(c.losses[2].map == LOSS_MAP_EMBEDDINGS && c.losses[3].map == LOSS_MAP_UNIFORM);
    CHECK(c.losses[3].target == LOSS_TARGET_PROBS); /* attention_kl reads probabilities */
    CHECK_STR(c.losses[1].name, "hidden_cos");
    config_free(&c);

    /* task finetune: no teacher, hard_ce by default; mse and metric pearson for a regression head */
    if (load_text("task: finetune\ndata: {train: data/train.h5}\n", 0, NULL, &c)) { failures++; return; }
    CHECK(c.teacher.init == CONFIG_INIT_NONE && c.n_losses == 1 && c.losses[0].type == LOSS_HARD_CE);
    CHECK(c.train.metric == CONFIG_METRIC_ACCURACY);
    config_free(&c);
    if (load_text("task: finetune\nstudent: {num_labels: 1}\ndata: {train: data/train.h5}\n", 0, NULL, &c)) {
        failures++;
        return;
    }
    CHECK(c.n_losses == 1 && c.losses[0].type == LOSS_MSE && c.train.metric == CONFIG_METRIC_PEARSON);
    config_free(&c);

    /* null means "the default" */
    if (load_text("teacher: {path: teacher}\ndata: {train: data/train.h5, batch_size: ~, dev: null}\n"
                  "optimizer:\n  lr:\n", 0, NULL, &c)) { failures++; return; }
    CHECK(c.data.batch_size == 32 && c.data.dev == NULL);
    CHECK_NUM(c.optimizer.lr, 5e-5);
    config_free(&c);
}

static void case_design_example(void) {
    Config c;
    if (load_text(DESIGN_EXAMPLE, 0, NULL, &c)) { failures++; return; }
    CHECK(c.task == CONFIG_TASK_DISTILL);
    CHECK_STR(c.run.name, "tiny");
    CHECK_STR(c.run.dir, "runs/tiny");
    CHECK(c.run.seed == 42 && c.device == CONFIG_DEVICE_CPU && c.precision == CONFIG_PRECISION_FP32);
    CHECK(c.teacher.init == CONFIG_INIT_PATH);
    CHECK_STR(c.teacher.path, "runs/teacher/best");
    CHECK(c.student.init == CONFIG_INIT_RANDOM && c.student.layers == 4 && c.student.hidden == 312 &&
          c.student.heads == 12 && c.student.intermediate == 1200);
    CHECK_NUM(c.student.dropout, 0.1);
    CHECK_STR(c.data.train, "data/sst2/train.h5");
    CHECK_STR(c.data.dev, "data/sst2/dev.h5");
    CHECK(c.data.batch_size == 32);
    CHECK(c.n_losses == 3);
    CHECK(c.losses[0].type == LOSS_LOGITS_KD && c.losses[0].weight == 1.0f && c.losses[0].temperature == 2.0f &&
          c.losses[0].temperature_steps == 0);
    CHECK(c.losses[1].type == LOSS_HIDDEN_MSE && c.losses[1].map == LOSS_MAP_UNIFORM);
    CHECK(c.losses[2].type == LOSS_ATTENTION_MSE && c.losses[2].map == LOSS_MAP_UNIFORM &&
          c.losses[2].target == LOSS_TARGET_SCORES);
    CHECK_NUM(c.optimizer.lr, 1.0e-4);
    CHECK_NUM(c.optimizer.weight_decay, 0.01);
    CHECK(c.optimizer.warmup_steps == 100 && c.optimizer.schedule == CONFIG_SCHEDULE_LINEAR);
    CHECK_NUM(c.optimizer.max_grad_norm, 1.0);
    CHECK(c.train.epochs == 3 && c.train.max_steps == 0 && c.train.grad_accum == 1 && c.train.eval_every == 500 &&
          c.train.log_every == 10 && c.train.checkpoint_every == 500 && c.train.keep_last == 3);
    config_free(&c);
}

static void case_overrides(void) {
    Config c;
    const char *sets[] = {
        "optimizer.lr=3e-4",                      /* a float, typed as YAML */
        "losses[1].weight=2",                     /* [i] index */
        "losses.2.target=probs",                  /* .i index */
        "losses[3]={type: hidden_cos, weight: 0.5}", /* append a flow mapping */
        "data.test=data/test.h5",                 /* a key the file does not have */
        "student.layers=6",
        "run.name='007'",                         /* quoted: a string, not the integer 7 */
        "data.dev=",                              /* empty = null = the default (none) */
        "train={epochs: 1, max_steps: 10}",       /* a whole section */
        "resume=auto",
        "precision=fp32",
    };
    int n = (int)(sizeof sets / sizeof *sets);
    if (load_text(DESIGN_EXAMPLE, n, sets, &c)) { failures++; return; }
    CHECK_NUM(c.optimizer.lr, 3e-4);
    CHECK(c.losses[1].weight == 2.0f && c.losses[2].target == LOSS_TARGET_PROBS);
    CHECK(c.n_losses == 4 && c.losses[3].type == LOSS_HIDDEN_COS && c.losses[3].weight == 0.5f);
    CHECK_STR(c.data.test, "data/test.h5");
    CHECK(c.student.layers == 6);
    CHECK_STR(c.run.name, "007");
    CHECK_STR(c.run.dir, "runs/tiny"); /* set in the file */
    CHECK(c.data.dev == NULL);
    CHECK(c.train.epochs == 1 && c.train.max_steps == 10 && c.train.eval_every == 0 && c.train.keep_last == 3);
    CHECK(c.resume == CONFIG_RESUME_AUTO);
    CHECK_STR(config_where(&c, "optimizer.lr"), "--set optimizer.lr=3e-4");
    CHECK_STR(config_where(&c, "losses[3].weight"), "--set losses[3]={type: hidden_cos, weight: 0.5}");
    CHECK_STR(config_where(&c, "optimizer.weight_decay"), "cfg.yaml:12:39");
    config_free(&c);

    /* a later override wins; overrides create sections the file lacks */
    const char *sets2[] = {"optimizer.schedule=constant", "optimizer.schedule=cosine", "run.seed=7"};
    if (load_text(MINIMAL, 3, sets2, &c)) { failures++; return; }
    CHECK(c.optimizer.schedule == CONFIG_SCHEDULE_COSINE && c.run.seed == 7);
    config_free(&c);

    /* the teacher becomes a random one */
    const char *sets3[] = {"teacher.path=null", "teacher.init=random", "teacher.layers=2", "teacher.hidden=64",
                           "teacher.heads=2"};
    if (load_text(MINIMAL, 5, sets3, &c)) { failures++; return; }
    CHECK(c.teacher.init == CONFIG_INIT_RANDOM && c.teacher.path == NULL && c.teacher.layers == 2 &&
          c.teacher.hidden == 64 && c.teacher.heads == 2 && c.teacher.intermediate == 256);
    config_free(&c);
}

/* tf32: false unless asked (a CUDA fp32 GEMM is fp32); true survives the round trip; a non-boolean
 * is rejected with the key and what was found. */
static void case_tf32(void) {
    Config c;
    if (load_text(MINIMAL, 0, NULL, &c)) { failures++; return; }
    CHECK(c.tf32 == false);
    config_free(&c);
    if (load_text("tf32: true\nteacher: {path: teacher}\ndata: {train: data/train.h5}\n", 0, NULL, &c)) {
        failures++;
        return;
    }
    CHECK(c.tf32 == true);
    check_round_trip(&c);
    config_free(&c);
    const char *sets[] = {"tf32=sometimes"};
    CHECK(load_text(MINIMAL, 1, sets, &c) == DISTILL_ERR);
    expect_message(distill_error(), "--set tf32=sometimes: tf32: expected true or false, found 'sometimes'");
    config_free(&c);
}

static void case_no_file_defaults(void) {
    Config c;
    const char *sets[] = {"teacher.init=random", "student={layers: 2, hidden: 32, heads: 2}"};
    char *before = sandbox_snapshot();
    Status st = config_parse(NULL, 2, (char **)sets, &c);
    if (st) {
        fprintf(stderr, "FAIL: %s\n", distill_error());
        failures++;
        free(before);
        return;
    }
    CHECK_STR(c.source, "(no file)");
    CHECK_STR(c.run.name, "run");
    CHECK(c.data.train == NULL && c.teacher.init == CONFIG_INIT_RANDOM && c.student.intermediate == 128);
    /* config_parse checks nothing on disk; config_check_paths then wants data.train */
    CHECK(config_check_paths(&c) == DISTILL_ERR);
    expect_message(distill_error(),
                   "(no file): data.train: expected the path of an HDF5 file made by `distill prepare`, found nothing");
    char *after = sandbox_snapshot();
    CHECK(!strcmp(before, after));
    free(before);
    free(after);
    config_free(&c);
}

static void case_roundtrip_design(void) {
    Config c;
    if (load_text(DESIGN_EXAMPLE, 0, NULL, &c)) { failures++; return; }
    check_round_trip(&c);
    config_free(&c);
}

/* `teachers:` with names, weights, teacher_logits and losses that name their teacher: defaults
 * filled in, names and numbers resolved to 0-based indices, and the dump loads back the same. */
static void case_roundtrip_teachers(void) {
    const char *yaml =
        "teachers:\n"
        "  - {path: teacher, weight: 3}\n"
        "  - {name: wide, init: random, layers: 4, hidden: 64, heads: 4, precision: fp32}\n"
        "teacher_logits: weighted\n"
        "data: {train: data/train.h5}\n"
        "losses:\n"
        "  - {type: logits_kd}\n"
        "  - {type: hidden_mse, teacher: wide, layers: [[1, 2]]}\n"
        "  - {type: attention_kl, name: att1, teacher: 1}\n"
        "  - {type: hidden_cos, teacher: 2}\n";
    Config c;
    if (load_text(yaml, 0, NULL, &c)) {
        failures++;
        return;
    }
    CHECK(c.n_teachers == 2 && c.teacher_list && c.teacher_logits == CONFIG_TEACHER_LOGITS_WEIGHTED);
    CHECK_STR(config_teacher(&c, 0)->name, "teacher1");
    CHECK_STR(config_teacher(&c, 1)->name, "wide");
    CHECK(config_teacher(&c, 0)->weight == 3 && config_teacher(&c, 1)->weight == 1);
    CHECK(c.teacher.init == CONFIG_INIT_PATH && config_teacher(&c, 1)->init == CONFIG_INIT_RANDOM);
    CHECK(config_teacher(&c, 1)->hidden == 64 && config_teacher(&c, 1)->intermediate == 256);
    CHECK(c.losses[0].teacher == 0 && c.losses[1].teacher == 1 && c.losses[2].teacher == 0 && c.losses[3].teacher == 1);
    check_round_trip(&c);
    config_free(&c);
    /* the single form is one teacher, not a list, and prints as before */
    CHECK(load_text("teacher: {path: teacher}\ndata: {train: data/train.h5}\n", 0, NULL, &c) == DISTILL_OK);
    CHECK(c.n_teachers == 1 && !c.teacher_list);
    char *text = dump(&c, "single.yaml");
    CHECK(!strstr(text, "teachers") && !strstr(text, "teacher_logits"));
    free(text);
    config_free(&c);
}

static void case_roundtrip_full(void) {
    /* strings that must be quoted to read back as strings, a path with ": ", every feature */
    sandbox_touch("true", "");
    sandbox_touch("123", "");
    sandbox_touch("data/a b: c.h5", "");
    const char *yaml =
        "task: distill\n"
        "run: {name: \"it's\", dir: \"runs/x #1\", seed: 4611686018427387904, overwrite: true}\n"
        "device: auto\nprecision: bf16\nthreads: 3\n"
        "teacher: {init: random, layers: 6, hidden: 96, heads: 6, intermediate: 200, max_position: 128,\n"
        "          vocab_size: 1000, type_vocab_size: 3, num_labels: 5, layer_norm_eps: 1.0e-5,\n"
        "          initializer_range: 0.05}\n"
        "student: {init: teacher_layers, layers: [2, 4, 6], num_labels: 5, dropout: 0.0,\n"
        "          attention_dropout: 0.25}\n"
        "data: {train: \"true\", dev: \"123\", test: \"data/a b: c.h5\", batch_size: 7, eval_batch_size: 64,\n"
        "       shuffle: false, drop_last: true, max_seq: 96}\n"
        "losses:\n"
        "  - {type: logits_kd, name: kd, weight: 0.7, temperature: {start: 4.0, end: 1.0, over: 1000}}\n"
        "  - {type: logits_ce, weight: 0.1, temperature: 3.3}\n"
        "  - {type: hidden_mse, weight: 1.5, layers: [[0, 0], [1, 2], [3, 6]], projection: shared}\n"
        "  - {type: embedding_mse, weight: 0.2, projection: per_pair}\n"
        "  - {type: attention_mse, layers: [[3, 6]], target: probs}\n"
        "  - {type: attention_kl, name: attn-last, layers: last}\n"
        "  - {type: hidden_cos, weight: 0.3, projection: none}\n"
        "  - {type: hard_ce, weight: 1.0e-3}\n"
        "optimizer: {lr: 2.5e-5, weight_decay: 0, beta1: 0.8, beta2: 0.98, eps: 1.0e-6, warmup_ratio: 0.06,\n"
        "            schedule: cosine, max_grad_norm: 0}\n"
        "train: {epochs: 2, max_steps: 12345, grad_accum: 4, eval_every: 100, log_every: 1,\n"
        "        checkpoint_every: 200, keep_last: 0, metric: mcc, save_best: false,\n"
        "        early_stopping_patience: 2}\n"
        "resume: ckpt.h5\n";
    Config c;
    if (load_text(yaml, 0, NULL, &c)) { failures++; return; }
    CHECK_STR(c.run.name, "it's");
    CHECK(c.run.seed == 4611686018427387904ull);
    CHECK(c.student.init == CONFIG_INIT_TEACHER_LAYERS && c.student.n_init_layers == 3 &&
          c.student.init_layers[2] == 6 && c.student.layers == 3);
    CHECK_STR(c.data.train, "true");
    CHECK_STR(c.data.dev, "123");
    CHECK(c.losses[0].temperature == 4.0f && c.losses[0].temperature_end == 1.0f && c.losses[0].temperature_steps == 1000);
    CHECK(c.losses[2].n_pairs == 3 && c.losses[2].pairs[2].student == 3 && c.losses[2].pairs[2].teacher == 6);
    CHECK(c.losses[5].map == LOSS_MAP_LAST);
    CHECK(c.resume == CONFIG_RESUME_PATH);
    CHECK_STR(c.resume_path, "ckpt.h5");
    check_round_trip(&c);
    config_free(&c);
}

static void case_roundtrip_finetune(void) {
    const char *yaml = "task: finetune\n"
                       "student: {init: teacher, num_labels: 1, hidden: 384}\n"
                       "data: {train: data/train.h5, dev: data/dev.h5}\n"
                       "losses: [{type: mse}]\n"
                       "train: {metric: spearman}\n";
    Config c;
    if (load_text(yaml, 0, NULL, &c)) { failures++; return; }
    CHECK(c.teacher.init == CONFIG_INIT_NONE && c.student.init == CONFIG_INIT_PATH);
    CHECK(c.student.layers == CONFIG_AUTO && c.student.hidden == 384 && c.student.dropout == CONFIG_AUTO);
    check_round_trip(&c);
    config_free(&c);
}

static void case_where(void) {
    Config c;
    const char *yaml = "teacher: {path: teacher}\n"
                       "data:\n"
                       "  train: data/train.h5\n"
                       "losses:\n"
                       "  - {type: logits_kd}\n"
                       "  - {type: hidden_mse, layers: [[1, 3], [2, 6]]}\n";
    if (load_text(yaml, 0, NULL, &c)) { failures++; return; }
    CHECK_STR(config_where(&c, "data.train"), "cfg.yaml:3:10");
    CHECK_STR(config_where(&c, "data.batch_size"), "cfg.yaml:3:3"); /* not set: its section */
    CHECK_STR(config_where(&c, "losses[1]"), "cfg.yaml:6:5");
    CHECK_STR(config_where(&c, "losses[1].layers[1]"), "cfg.yaml:6:41");
    CHECK_STR(config_where(&c, "losses[1].projection"), "cfg.yaml:6:5");
    CHECK_STR(config_where(&c, "optimizer.lr"), "cfg.yaml"); /* nothing of it in the file */
    config_free(&c);
}

/* The config's temperature keys read into the spec that loss_spec_temperature schedules. */
static void case_temperature(void) {
    Config c;
    const char *yaml = "teacher: {path: teacher}\ndata: {train: data/train.h5}\nlosses:\n"
                       "  - {type: logits_kd, temperature: 2.0}\n"
                       "  - {type: logits_ce, temperature: {start: 4.0, end: 1.0, over: 100}}\n";
    if (load_text(yaml, 0, NULL, &c)) { failures++; return; }
    const LossSpec *constant = &c.losses[0], *sched = &c.losses[1];
    CHECK(constant->temperature_end == 2.0f && constant->temperature_steps == 0);
    CHECK(loss_spec_temperature(constant, 0) == 2.0f && loss_spec_temperature(constant, 1000000) == 2.0f);
    /* linear: 4 + (s/100)(1 - 4); these values are exact in binary */
    CHECK(loss_spec_temperature(sched, 0) == 4.0f);
    CHECK(loss_spec_temperature(sched, 50) == 2.5f);
    CHECK(loss_spec_temperature(sched, 100) == 1.0f);
    CHECK(loss_spec_temperature(sched, 5000) == 1.0f);
    CHECK(loss_spec_temperature(sched, -1) == 4.0f);
    config_free(&c);
}

/* ------------------------------------------------------------------ the loss table
 * The config reader takes each type's keys and defaults from losses/' table: these cases walk the
 * table, so a new row is covered without touching this file. */

/* A config where a loss of type t alone is valid: label-only types finetune without a teacher. */
static void one_loss_yaml(const LossTypeInfo *info, const char *extra, char *buf, size_t cap) {
    bool regression = info->labels == LOSS_LABELS_REGRESSION;
    snprintf(buf, cap, "%sstudent: {num_labels: %d}\ndata: {train: data/train.h5}\nlosses:\n  - {type: %s%s%s}\n",
             info->needs_teacher ? "teacher: {path: teacher}\n" : "task: finetune\n", regression ? 1 : 3,
             info->name, extra[0] ? ", " : "", extra);
}

/* Every type alone gets exactly the table's defaults; each optional key is accepted by the types
 * whose row has its bit (and lands in the spec) and rejected, naming those types, by the others;
 * the parsed spec goes to loss_set_build as it is. */
static void case_loss_table_keys(void) {
    static const struct { unsigned bit; const char *yaml; } SAMPLE[] = {
        {LOSS_KEY_TEMPERATURE, "temperature: 2.5"}, {LOSS_KEY_LAYERS, "layers: last"},
        {LOSS_KEY_TARGET, "target: probs"}, {LOSS_KEY_PROJECTION, "projection: shared"},
        {LOSS_KEY_TEACHER, "teacher: 1"},
    };
    int n_sample = (int)(sizeof SAMPLE / sizeof *SAMPLE);
    for (int k = 0; k < LOSS_KEY_COUNT; k++) {
        bool sampled = LOSS_KEYS[k].bit == 0;
        for (int j = 0; j < n_sample; j++) sampled |= SAMPLE[j].bit == LOSS_KEYS[k].bit;
        CHECK(sampled); /* a new optional key needs a sample value here */
    }
    char yaml[512];
    for (int t = 0; t < LOSS_TYPE_COUNT; t++) {
        const LossTypeInfo *info = loss_type_info((LossType)t);
        Config c;
        one_loss_yaml(info, "", yaml, sizeof yaml);
        if (load_text(yaml, 0, NULL, &c)) { fprintf(stderr, "FAIL: %s alone\n", info->name); failures++; continue; }
        LossSpec d = loss_spec_default((LossType)t);
        const LossSpec *l = &c.losses[0];
        CHECK(c.n_losses == 1 && l->type == (LossType)t);
        CHECK_STR(l->name, info->name);
        CHECK(l->weight == d.weight && l->temperature == d.temperature && l->temperature_end == d.temperature &&
              l->temperature_steps == 0 && l->map == d.map && l->n_pairs == 0 && l->target == d.target &&
              l->projection == d.projection);
        check_round_trip(&c);
        config_free(&c);

        for (int j = 0; j < n_sample; j++) {
            one_loss_yaml(info, SAMPLE[j].yaml, yaml, sizeof yaml);
            bool takes = info->keys & SAMPLE[j].bit;
            sandbox_touch("cfg.yaml", yaml);
            Status st = config_load("cfg.yaml", 0, NULL, &c);
            if (!takes) {
                char types[256], want[384];
                const char *key = SAMPLE[j].yaml;
                int klen = (int)(strchr(key, ':') - key);
                snprintf(want, sizeof want, "expected no %.*s for %s (it applies to %s)", klen, key, info->name,
                         loss_types_taking(SAMPLE[j].bit, " and ", types, sizeof types));
                if (st == DISTILL_OK || !strstr(distill_error(), want)) {
                    fprintf(stderr, "FAIL: %s with '%s': expected a message holding '%s', found '%s'\n", info->name,
                            key, want, st ? distill_error() : "(accepted)");
                    failures++;
                }
                if (!st) config_free(&c);
                continue;
            }
            if (st) {
                fprintf(stderr, "FAIL: %s with '%s' was rejected: %s\n", info->name, SAMPLE[j].yaml, distill_error());
                failures++;
                continue;
            }
            l = &c.losses[0];
            switch (SAMPLE[j].bit) {
            case LOSS_KEY_TEMPERATURE: CHECK(l->temperature == 2.5f && l->temperature_end == 2.5f); break;
            case LOSS_KEY_LAYERS: CHECK(l->map == LOSS_MAP_LAST); break;
            case LOSS_KEY_TARGET: CHECK(l->target == LOSS_TARGET_PROBS); break;
            case LOSS_KEY_PROJECTION: CHECK(l->projection == LOSS_PROJ_SHARED); break;
            case LOSS_KEY_TEACHER: CHECK(l->teacher == 0); break;
            }
            /* No bridge: the config's spec builds as it is (layers: last resolved to (M, N) here). */
            BertConfig sc = bert_config_default(), tc = bert_config_default();
            sc.num_hidden_layers = 2, sc.hidden_size = 8, sc.num_attention_heads = 2;
            sc.num_labels = info->labels == LOSS_LABELS_REGRESSION ? 1 : 3;
            tc.num_hidden_layers = 4, tc.hidden_size = 16, tc.num_attention_heads = 2, tc.num_labels = 3;
            LossSet *ls = NULL;
            if (loss_set_build(c.losses, c.n_losses, &sc, info->needs_teacher ? &tc : NULL, device_cpu(), 1, &ls)) {
                fprintf(stderr, "FAIL: %s with '%s' does not build: %s\n", info->name, SAMPLE[j].yaml, distill_error());
                failures++;
            } else {
                int n = 0;
                const LossLayerPair *p = loss_set_pairs(ls, 0, &n);
                if (SAMPLE[j].bit == LOSS_KEY_LAYERS) CHECK(n == 1 && p[0].student == 2 && p[0].teacher == 4);
                loss_set_free(ls);
            }
            check_round_trip(&c);
            config_free(&c);
        }
    }
}

/* Splits a markdown table row into its cells (trimmed, "\|" kept as part of a cell); returns the
 * number of cells. */
static int md_cells(const char *line, char cells[][512], int max) {
    int n = 0;
    const char *p = strchr(line, '|');
    while (p && *p == '|' && n < max) {
        p++;
        const char *e = p;
        while (*e && *e != '\n' && !(*e == '|' && e[-1] != '\\')) e++;
        if (*e != '|') break;
        const char *a = p, *b = e;
        while (a < b && *a == ' ') a++;
        while (b > a && b[-1] == ' ') b--;
        snprintf(cells[n], sizeof cells[n], "%.*s", (int)(b - a), a);
        n++;
        p = e;
    }
    return n;
}

/* The row of the markdown table in `sec` whose first cell is `first`, as cells; 0 if none. */
static int md_row(const char *sec, const char *first, char cells[][512], int max) {
    for (const char *line = sec; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (line[0] != '|') continue;
        int n = md_cells(line, cells, max);
        if (n > 0 && !strcmp(cells[0], first)) return n;
    }
    return 0;
}

/* The documented default of an optional key: the value most rows have, then the exceptions, as
 * "`uniform` (`last` for `hidden_cos`)". */
static void key_default_text(unsigned bit, char *buf, size_t cap) {
    const char *val[LOSS_TYPE_COUNT];
    char temps[LOSS_TYPE_COUNT][32];
    int n = 0, idx[LOSS_TYPE_COUNT];
    for (int t = 0; t < LOSS_TYPE_COUNT; t++) {
        const LossTypeInfo *i = loss_type_info((LossType)t);
        if (!(i->keys & bit)) continue;
        LossSpec d = loss_spec_default((LossType)t);
        if (bit == LOSS_KEY_TEMPERATURE) {
            snprintf(temps[n], sizeof temps[n], "%.1f", (double)d.temperature);
            val[n] = temps[n];
        } else if (bit == LOSS_KEY_LAYERS) val[n] = loss_map_name(d.map);
        else if (bit == LOSS_KEY_TARGET) val[n] = loss_target_name(d.target);
        else if (bit == LOSS_KEY_TEACHER) val[n] = "1"; /* the first teacher */
        else val[n] = loss_projection_name(d.projection);
        idx[n++] = t;
    }
    int best = 0, best_count = 0;
    for (int a = 0; a < n; a++) {
        int count = 0;
        for (int b = 0; b < n; b++) count += !strcmp(val[a], val[b]);
        if (count > best_count) best = a, best_count = count;
    }
    size_t len = (size_t)snprintf(buf, cap, "`%s`", val[best]);
    bool open = false;
    for (int a = 0; a < n; a++) {
        if (!strcmp(val[a], val[best])) continue;
        len += (size_t)snprintf(buf + len, cap - len, "%s`%s` for `%s`", open ? "; " : " (", val[a],
                                loss_type_info((LossType)idx[a])->name);
        open = true;
    }
    if (open) snprintf(buf + len, cap - len, ")");
}

/* configs/README.md's text (a static buffer: one reader at a time). */
static char *read_readme(const char *readme_path) {
    FILE *f = fopen(readme_path, "rb");
    if (!f) sandbox_die("open", readme_path);
    static char text[1 << 17];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* configs/README.md's "## losses" documents every key of the table with the table's default and
 * the types it applies to, and every type with the table's definition; it lists nothing else. */
static void case_readme_losses(const char *readme_path) {
    char *text = read_readme(readme_path);
    char *sec = strstr(text, "\n## losses\n");
    char *end = sec ? strstr(sec + 1, "\n## ") : NULL;
    if (!end) {
        fprintf(stderr, "FAIL: no '## losses' section in %s\n", readme_path);
        failures++;
        return;
    }
    *end = '\0';
    static char cells[8][512];
    for (int k = 0; k < LOSS_KEY_COUNT; k++) {
        char first[64], applies[512], def[256];
        snprintf(first, sizeof first, "`%s`", LOSS_KEYS[k].name);
        int nc = md_row(sec, first, cells, 8);
        if (nc != 5) {
            fprintf(stderr, "FAIL: configs/README.md: no 5-column row for key %s in ## losses\n", first);
            failures++;
            continue;
        }
        if (LOSS_KEYS[k].bit == 0) {
            snprintf(applies, sizeof applies, "all");
        } else {
            size_t len = 0;
            applies[0] = '\0';
            for (int t = 0; t < LOSS_TYPE_COUNT; t++)
                if (loss_type_info((LossType)t)->keys & LOSS_KEYS[k].bit)
                    len += (size_t)snprintf(applies + len, sizeof applies - len, "%s`%s`", len ? ", " : "",
                                            loss_type_info((LossType)t)->name);
        }
        if (strcmp(cells[3], applies)) {
            fprintf(stderr, "FAIL: configs/README.md: key %s applies to '%s', the table says '%s'\n", first,
                    cells[3], applies);
            failures++;
        }
        if (LOSS_KEYS[k].bit) key_default_text(LOSS_KEYS[k].bit, def, sizeof def);
        else if (!strcmp(LOSS_KEYS[k].name, "weight"))
            snprintf(def, sizeof def, "`%.1f`", (double)loss_spec_default(LOSS_LOGITS_KD).weight);
        else if (!strcmp(LOSS_KEYS[k].name, "type")) snprintf(def, sizeof def, "**required**");
        else snprintf(def, sizeof def, "the type"); /* name */
        if (strcmp(cells[2], def)) {
            fprintf(stderr, "FAIL: configs/README.md: key %s defaults to '%s', the table says '%s'\n", first,
                    cells[2], def);
            failures++;
        }
    }
    for (int t = 0; t < LOSS_TYPE_COUNT; t++) {
        const LossTypeInfo *i = loss_type_info((LossType)t);
        char first[64];
        snprintf(first, sizeof first, "`%s`", i->name);
        int nc = md_row(sec, first, cells, 8);
        if (nc != 3 || strcmp(cells[1], i->definition) || !cells[2][0]) {
            fprintf(stderr, "FAIL: configs/README.md: type %s: expected the row | %s | %s | (needs) |, found %d "
                    "cells: '%s'\n", i->name, first, i->definition, nc, nc > 1 ? cells[1] : "");
            failures++;
        }
    }
    /* nothing the table lacks: every row of the two tables names a key or a type */
    for (const char *line = sec; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "| `", 3)) continue;
        int nc = md_cells(line, cells, 8);
        bool known = false;
        for (int k = 0; k < LOSS_KEY_COUNT && !known; k++)
            known = nc == 5 && !strncmp(cells[0] + 1, LOSS_KEYS[k].name, strlen(LOSS_KEYS[k].name)) &&
                    cells[0][strlen(LOSS_KEYS[k].name) + 1] == '`';
        for (int t = 0; t < LOSS_TYPE_COUNT && !known; t++) {
            const char *nm = loss_type_info((LossType)t)->name;
            known = nc == 3 && !strncmp(cells[0] + 1, nm, strlen(nm)) && cells[0][strlen(nm) + 1] == '`';
        }
        if (!known) {
            fprintf(stderr, "FAIL: configs/README.md: ## losses documents %s, which the loss table lacks\n",
                    nc ? cells[0] : line);
            failures++;
        }
    }
}

static void case_missing_config_file(void) {
    Config c;
    CHECK(config_load("nope.yaml", 0, NULL, &c) == DISTILL_ERR);
    expect_message(distill_error(), "nope.yaml: expected a readable YAML config file, found: No such file or directory");
    config_free(&c);
}

static void case_config_is_directory(void) {
    Config c;
    CHECK(config_load("data", 0, NULL, &c) == DISTILL_ERR);
    expect_message(distill_error(), "data: expected a YAML config file, found a directory");
    config_free(&c);
}

static void case_readme_example(const char *readme_path) {
    char *text = read_readme(readme_path);
    char *sec = strstr(text, "## A complete example");
    char *start = sec ? strstr(sec, "```yaml\n") : NULL;
    char *end = start ? strstr(start + 8, "\n```") : NULL;
    if (!end) {
        fprintf(stderr, "FAIL: no ```yaml block under '## A complete example' in %s\n", readme_path);
        failures++;
        return;
    }
    end[1] = '\0';
    Config c;
    if (load_text(start + 8, 0, NULL, &c)) { failures++; return; }
    CHECK_STR(c.run.name, "tiny-sst2");
    CHECK(c.device == CONFIG_DEVICE_AUTO && c.student.layers == 4 && c.student.hidden == 312);
    CHECK(c.n_losses == 5 && c.losses[0].temperature_steps == 2000 && c.losses[3].n_pairs == 4);
    CHECK_STR(c.losses[4].name, "gold");
    CHECK(c.optimizer.warmup_ratio == 0.1 && c.data.max_seq == 64 && c.data.test == NULL);
    check_round_trip(&c);
    config_free(&c);
}

/* stages: inheritance of the optimizer and length from the top level, a stage's own keys over
 * them (warmup_steps replacing an inherited warmup_ratio, epochs replacing inherited max_steps),
 * default names, the resolved dump round trip; and a shipped staged config (configs/, by path). */
static void case_stages(void) {
    sandbox_touch("t.h5", "");
    const char *yaml =
        "teacher: {init: random, layers: 4, hidden: 64, heads: 4, intermediate: 128, num_labels: 2}\n"
        "student: {init: random, layers: 2, hidden: 32, heads: 4, intermediate: 64, num_labels: 2}\n"
        "data: {train: t.h5}\n"
        "optimizer: {lr: 1.0e-4, warmup_ratio: 0.1, schedule: cosine}\n"
        "train: {max_steps: 50}\n"
        "stages:\n"
        "  - losses: [{type: hidden_mse, layers: uniform}, {type: attention_mse, layers: uniform}]\n"
        "  - name: pred\n"
        "    losses: [{type: logits_kd, temperature: 1.0}]\n"
        "    train: {epochs: 2}\n"
        "    optimizer: {lr: 3.0e-5, warmup_steps: 7}\n";
    Config c;
    if (load_text(yaml, 0, NULL, &c)) { failures++; return; }
    CHECK(c.n_stages == 2 && c.n_losses == 0 && c.losses == NULL && config_stage_count(&c) == 2);
    const ConfigStage *a = &c.stages[0], *b = &c.stages[1];
    CHECK_STR(a->name, "stage1");
    CHECK_STR(b->name, "pred");
    CHECK(a->n_losses == 2 && a->losses[0].type == LOSS_HIDDEN_MSE && b->n_losses == 1 && b->losses[0].type == LOSS_LOGITS_KD);
    CHECK(a->optimizer.lr == 1e-4 && a->optimizer.warmup_ratio == 0.1 && a->optimizer.schedule == CONFIG_SCHEDULE_COSINE);
    CHECK(a->max_steps == 50);
    CHECK(b->optimizer.lr == 3e-5 && b->optimizer.warmup_steps == 7 && b->optimizer.warmup_ratio == 0 &&
          b->optimizer.schedule == CONFIG_SCHEDULE_COSINE);
    CHECK(b->max_steps == 0 && b->epochs == 2);
    char *first = dump(&c, "resolved.yaml");
    CHECK(strstr(first, "stages:") != NULL && strstr(first, "\nlosses:") == NULL);
    free(first);
    check_round_trip(&c);
    config_free(&c);
    /* a single-stage config is one implicit stage and its dump has no stages: key */
    const char *plain = "teacher: {init: random}\ndata: {train: t.h5}\ntrain: {max_steps: 9}\n";
    if (load_text(plain, 0, NULL, &c)) { failures++; return; }
    ConfigStage tmp;
    const ConfigStage *only = config_stage(&c, 0, &tmp);
    CHECK(c.n_stages == 0 && config_stage_count(&c) == 1 && only->n_losses == 1 && only->max_steps == 9);
    first = dump(&c, "plain.yaml");
    CHECK(strstr(first, "stages") == NULL);
    free(first);
    config_free(&c);
}

static void case_shipped(const char *path) {
    Config c, back;
    if (config_parse(path, 0, NULL, &c)) {
        fprintf(stderr, "FAIL: %s does not parse: %s\n", path, distill_error());
        failures++;
        return;
    }
    char *first = dump(&c, "resolved.yaml");
    if (config_parse("resolved.yaml", 0, NULL, &back)) {
        fprintf(stderr, "FAIL: the dump of %s does not parse: %s\n", path, distill_error());
        failures++;
    } else {
        char *second = dump(&back, "resolved2.yaml");
        const char *x = strstr(first, "\ntask:"), *y = strstr(second, "\ntask:");
        CHECK(x && y && !strcmp(x, y));
        free(second);
        config_free(&back);
    }
    free(first);
    config_free(&c);
}

int main(int argc, char **argv) {
    bool readme_case = argc >= 2 && (!strcmp(argv[1], "readme_example") || !strcmp(argv[1], "readme_losses") ||
                                     !strcmp(argv[1], "shipped"));
    if (argc < 2 || argc != (readme_case ? 3 : 2)) {
        fprintf(stderr, "usage: test_config CASE | test_config readme_example|readme_losses configs/README.md\n");
        return 2;
    }
    const char *name = argv[1];
    char readme[4096] = "";
    if (argc == 3 && !realpath(argv[2], readme)) sandbox_die("realpath", argv[2]);
    sandbox_enter();
    bool known = true;
    if (!strcmp(name, "defaults")) case_defaults();
    else if (!strcmp(name, "design_example")) case_design_example();
    else if (!strcmp(name, "overrides")) case_overrides();
    else if (!strcmp(name, "no_file_defaults")) case_no_file_defaults();
    else if (!strcmp(name, "tf32")) case_tf32();
    else if (!strcmp(name, "roundtrip_design")) case_roundtrip_design();
    else if (!strcmp(name, "roundtrip_full")) case_roundtrip_full();
    else if (!strcmp(name, "roundtrip_teachers")) case_roundtrip_teachers();
    else if (!strcmp(name, "roundtrip_finetune")) case_roundtrip_finetune();
    else if (!strcmp(name, "where")) case_where();
    else if (!strcmp(name, "temperature")) case_temperature();
    else if (!strcmp(name, "missing_config_file")) case_missing_config_file();
    else if (!strcmp(name, "config_is_directory")) case_config_is_directory();
    else if (!strcmp(name, "readme_example")) case_readme_example(readme);
    else if (!strcmp(name, "readme_losses")) case_readme_losses(readme);
    else if (!strcmp(name, "loss_table_keys")) case_loss_table_keys();
    else if (!strcmp(name, "stages")) case_stages();
    else if (!strcmp(name, "shipped")) case_shipped(readme);
    else known = case_models(name);
    sandbox_leave();
    if (!known) {
        fprintf(stderr, "test_config: unknown case '%s'\n", name);
        return 2;
    }
    if (failures) fprintf(stderr, "%s: %d failure(s)\n", name, failures);
    else printf("ok: %s\n", name);
    return failures ? 1 : 0;
}
