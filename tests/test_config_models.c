/*
 * test_config_models.c — one case per rule of config_check_models (config_models_<rule>, part of
 * the test_config binary): a config and the facts of its models and data, the message expected.
 */
#define _XOPEN_SOURCE 700
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "test_config_check.h"

/* ------------------------------------------------------------------ config_check_models */

/* Two teachers; attention_kl reads the second. */
#define MODELS_TEACHERS                                                                                 \
    "teachers:\n"                                                                                      \
    "  - {path: teacher}\n  - {path: teacher}\n"                                                       \
    "student: {init: random, layers: 4, hidden: 312, heads: 12, intermediate: 1200}\n"                \
    "data: {train: data/train.h5, dev: data/dev.h5}\n"                                                 \
    "losses:\n"                                                                                        \
    "  - {type: logits_kd}\n  - {type: attention_kl, teacher: 2}\n"
static const char *MODELS_BASE =
    "teacher: {path: teacher}\n"
    "student: {init: random, layers: 4, hidden: 312, heads: 12, intermediate: 1200}\n"
    "data: {train: data/train.h5, dev: data/dev.h5}\n"
    "losses:\n"
    "  - {type: logits_kd, temperature: 2.0}\n"
    "  - {type: hidden_mse, layers: [[2, 6], [4, 12]]}\n"
    "  - {type: attention_mse, layers: uniform}\n"
    "  - {type: hard_ce, weight: 0.5}\n";

/* Facts that agree with MODELS_BASE: BERT-base teacher, TinyBERT-4 student, SST-2-like data. */
static ConfigFacts base_facts(void) {
    ConfigFacts f = {0};
    f.has_teacher = true;
    f.teacher = (ConfigModelFacts){12, 768, 12, 3072, 512, 30522, 2, 2};
    f.student = (ConfigModelFacts){4, 312, 12, 1200, 512, 30522, 2, 2};
    f.has_data = true;
    f.data_vocab_size = 30522;
    f.data_max_seq = 128;
    f.data_has_labels = true;
    f.data_regression = false;
    f.data_num_labels = 2;
    f.dev_has_labels = true;
    f.world_size = 1;
    f.on_cuda = false;
    return f;
}

typedef struct ModelsCase {
    const char *name;
    const char *yaml;          /* NULL: MODELS_BASE */
    const char *sets[3];
    const char *expect;        /* NULL: must pass */
} ModelsCase;

static const ModelsCase MODELS_CASES[] = {
    {"models_ok", NULL, {NULL}, NULL},
    {"models_teacher_vocab", NULL, {NULL},
     "cfg.yaml:2:10: student.vocab_size: expected the teacher's vocabulary size 30522 (teacher and student read the "
     "same token ids), found 28996"},
    {"models_data_vocab", NULL, {NULL},
     "cfg.yaml:3:15: data.train: expected a file tokenized with the model's vocabulary (30522 entries), found "
     "vocab_size 28996"},
    {"models_type_vocab", NULL, {NULL},
     "cfg.yaml:2:10: student.type_vocab_size: expected the teacher's 2 token types, found 1"},
    {"models_max_seq_over_file", NULL, {"data.max_seq=256"},
     "--set data.max_seq=256: data.max_seq: expected at most the file's max_seq 128 (0 = the file's), found 256"},
    {"models_seq_over_student", NULL, {NULL},
     "cfg.yaml:3:15: data.train: expected rows of at most the student's 64 positions, found max_seq 128"},
    {"models_seq_over_teacher", NULL, {"data.max_seq=100"},
     "--set data.max_seq=100: data.max_seq: expected rows of at most the teacher's 64 positions, found max_seq 100"},
    {"models_attention_heads", NULL, {"student.heads=4"},
     "cfg.yaml:7:5: losses[2]: expected a student with the teacher's 12 attention heads for attention_mse, found 4 "
     "heads"},
    {"models_projection_none", NULL, {"losses[1].projection=none"},
     "--set losses[1].projection=none: losses[1].projection: expected auto, per_pair or shared for hidden_mse "
     "(student width 312, teacher width 768), found none"},
    {"models_pair_student_layer", NULL, {"losses[1].layers=[[5, 12]]"},
     "--set losses[1].layers=[[5, 12]]: losses[1].layers[0]: expected a student layer in 0..4, found 5"},
    {"models_pair_teacher_layer", NULL, {NULL},
     "cfg.yaml:6:41: losses[1].layers[1]: expected a teacher layer in 0..6, found 12"},
    {"models_logits_no_classifier", NULL, {NULL},
     "cfg.yaml:5:5: losses[0]: expected classifiers on teacher and student for logits_kd, found num_labels 0 "
     "(teacher) and 2 (student)"},
    {"models_logits_label_count", NULL, {NULL},
     "cfg.yaml:5:5: losses[0]: expected the student's classifier to have the teacher's 2 labels for logits_kd, "
     "found 3"},
    {"models_hard_ce_no_labels", NULL, {NULL},
     "cfg.yaml:8:5: losses[3]: expected labels in data.train for hard_ce, found a file without /labels"},
    {"models_hard_ce_regression_labels", NULL, {NULL},
     "cfg.yaml:8:5: losses[3]: expected class labels for hard_ce, found float (regression) labels in data.train "
     "(use mse)"},
    {"models_mse_class_labels",
     "task: finetune\nstudent: {init: random, num_labels: 1}\ndata: {train: data/train.h5}\nlosses: [{type: mse}]\n",
     {NULL},
     "cfg.yaml:4:10: losses[0]: expected float (regression) labels for mse, found class labels in data.train "
     "(use hard_ce)"},
    {"models_too_many_classes", NULL, {NULL},
     "cfg.yaml:2:10: student.num_labels: expected at least the 3 classes named in data.train, found 2"},
    {"models_metric_dev_unlabelled", NULL, {NULL},
     "cfg.yaml: train.metric: expected loss for a data.dev without /labels, found accuracy"},
    {"models_metric_regression", NULL, {"losses=[{type: hidden_mse}]", "train.metric=f1"},
     "--set train.metric=f1: train.metric: expected pearson, spearman or loss for regression labels, found f1"},
    {"models_world_size", NULL, {NULL},
     "cfg.yaml:3:7: data.batch_size: expected a multiple of the 3 ranks (it is the global batch), found 32"},
    {"models_bf16_cuda", NULL, {"device=auto", "precision=bf16"},
     "cfg.yaml:2:10: student.precision: expected fp32 on a CUDA device (the CUDA bf16 GEMMs have not been verified "
     "on a GPU yet; DISTILL_ALLOW_UNTESTED_GPU_BF16=1 runs them anyway), found bf16"},
    {"models_bf16_teacher_cuda", NULL, {"device=auto", "teacher.precision=bf16"},
     "--set teacher.precision=bf16: teacher.precision: expected fp32 on a CUDA device (the CUDA bf16 GEMMs have not "
     "been verified on a GPU yet; DISTILL_ALLOW_UNTESTED_GPU_BF16=1 runs them anyway), found bf16"},
    {"models_bf16_cpu", NULL, {"device=auto", "precision=bf16"}, NULL},
    {"models_student_shape_mismatch",
     "teacher: {path: teacher}\nstudent: {init: ckpt.h5, hidden: 312}\ndata: {train: data/train.h5}\n", {NULL},
     "cfg.yaml:2:34: student.hidden: expected 384 as the student checkpoint has (or auto), found 312"},
    {"models_teacher_shape_mismatch",
     "teacher: {path: teacher, heads: 16}\ndata: {train: data/train.h5}\n", {NULL},
     "cfg.yaml:1:33: teacher.heads: expected 12 as the teacher checkpoint has (or auto), found 16"},
    {"models_teachers_vocab", MODELS_TEACHERS, {NULL},
     "cfg.yaml:3:5: teachers[1]: expected the first teacher's vocabulary (30522 tokens, 2 token types: every model "
     "reads the same token ids), found 28996 tokens, 2 token types"},
    {"models_teachers_labels", MODELS_TEACHERS, {NULL},
     "cfg.yaml:3:5: teachers[1]: expected the first teacher's 2 labels (the logits losses read the teachers' combined "
     "logits), found num_labels 3"},
    {"models_teachers_loss_heads", MODELS_TEACHERS, {NULL},
     "cfg.yaml:8:5: losses[1]: expected a student with the teacher's 8 attention heads for attention_kl, found 12 heads"},
    {"models_teachers_ok", MODELS_TEACHERS, {NULL}, NULL},
    {"models_teachers_bf16_cuda", MODELS_TEACHERS, {"device=auto", "teachers[1].precision=bf16"},
     "--set teachers[1].precision=bf16: teachers[1].precision: expected fp32 on a CUDA device (the CUDA bf16 GEMMs "
     "have not been verified on a GPU yet; DISTILL_ALLOW_UNTESTED_GPU_BF16=1 runs them anyway), found bf16"},
    {"models_teacher_layers_too_deep",
     "teacher: {path: teacher}\nstudent: {init: teacher_layers, layers: [2, 4, 14]}\ndata: {train: data/train.h5}\n",
     {NULL}, "cfg.yaml:2:48: student.layers[2]: expected a teacher layer in 1..12, found 14"},
};

/* The facts of each case: what the trainer would have found. */
static void case_facts(const char *name, ConfigFacts *f) {
    if (!strcmp(name, "models_teacher_vocab")) f->student.vocab_size = 28996;
    if (!strcmp(name, "models_data_vocab")) f->data_vocab_size = 28996;
    if (!strcmp(name, "models_type_vocab")) f->student.type_vocab_size = 1;
    if (!strcmp(name, "models_seq_over_student")) f->student.max_position = 64;
    if (!strcmp(name, "models_seq_over_teacher")) f->teacher.max_position = 64;
    if (!strcmp(name, "models_attention_heads")) f->student.heads = 4;
    if (!strcmp(name, "models_pair_teacher_layer")) f->teacher.layers = 6;
    if (!strcmp(name, "models_logits_no_classifier")) f->teacher.num_labels = 0;
    if (!strcmp(name, "models_logits_label_count")) f->student.num_labels = 3;
    if (!strcmp(name, "models_hard_ce_no_labels")) f->data_has_labels = false;
    if (!strcmp(name, "models_hard_ce_regression_labels")) f->data_regression = true;
    if (!strcmp(name, "models_mse_class_labels")) {
        f->has_teacher = false;
        f->student.num_labels = 1;
    }
    if (!strcmp(name, "models_too_many_classes")) f->data_num_labels = 3;
    if (!strcmp(name, "models_metric_dev_unlabelled")) f->dev_has_labels = false;
    if (!strcmp(name, "models_metric_regression")) f->data_regression = true;
    if (!strcmp(name, "models_world_size")) f->world_size = 3;
    if (!strncmp(name, "models_bf16_", 12) && strstr(name, "cuda")) f->on_cuda = true;
    if (!strncmp(name, "models_teachers_", 16)) f->more_teachers[0] = f->teacher; /* a second teacher like the first */
    if (!strcmp(name, "models_teachers_vocab")) f->more_teachers[0].vocab_size = 28996;
    if (!strcmp(name, "models_teachers_labels")) f->more_teachers[0].num_labels = 3;
    if (!strcmp(name, "models_teachers_loss_heads")) f->more_teachers[0].heads = 8;
    if (!strcmp(name, "models_teachers_bf16_cuda")) f->on_cuda = true;
    if (!strcmp(name, "models_student_shape_mismatch")) f->student = (ConfigModelFacts){6, 384, 12, 1536, 512, 30522, 2, 2};
}

bool case_models(const char *name) {
    const ModelsCase *mc = NULL;
    for (size_t i = 0; i < sizeof MODELS_CASES / sizeof *MODELS_CASES; i++)
        if (!strcmp(MODELS_CASES[i].name, name)) mc = &MODELS_CASES[i];
    if (!mc) return false;
    int n = 0;
    while (n < 3 && mc->sets[n]) n++;
    Config c;
    if (load_text(mc->yaml ? mc->yaml : MODELS_BASE, n, mc->sets, &c)) {
        failures++;
        return true;
    }
    ConfigFacts f = base_facts();
    case_facts(name, &f);
    Status st = config_check_models(&c, &f);
    if (!mc->expect) {
        if (st) {
            fprintf(stderr, "FAIL: %s was rejected: %s\n", name, distill_error());
            failures++;
        }
    } else if (!st) {
        fprintf(stderr, "FAIL: %s passed, expected: %s\n", name, mc->expect);
        failures++;
    } else {
        expect_message(distill_error(), mc->expect);
    }
    config_free(&c);
    return true;
}

/* The YAML block under "## A complete example" in configs/README.md loads, with the values it
 * spells out, and survives the round trip. */
