/*
 * config_check.c — the config checks that look beyond the YAML (see config.h): config_check_paths
 * stats the paths the config names (it opens nothing for writing and creates nothing), and
 * config_check_models compares the config with the facts the trainer read from the models and the
 * data. Messages point at the key that asked for the failing thing, through config_where.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_tree.h"

const char *config_where(const Config *cfg, const char *key) {
    const struct ConfigLocations *l = cfg->locations;
    char k[256];
    snprintf(k, sizeof k, "%s", key);
    while (l && k[0]) {
        for (int i = l->n - 1; i >= 0; i--)
            if (!strcmp(l->keys[i], k)) return l->where[i];
        /* the enclosing key: drop ".name" or "[i]" */
        char *dot = strrchr(k, '.'), *br = strrchr(k, '[');
        char *cut = dot > br ? dot : br;
        if (!cut) break;
        *cut = '\0';
    }
    return cfg->source;
}

static Status cfail(const Config *cfg, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static Status cfail(const Config *cfg, const char *key, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    distill_set_error("%s: %s: %s", config_where(cfg, key), key, msg);
    return DISTILL_ERR;
}

/* ------------------------------------------------------------------ paths */

static Status need_file(const Config *c, const char *key, const char *path, const char *what) {
    struct stat sb;
    if (stat(path, &sb) != 0) return cfail(c, key, "expected %s, found '%s': %s", what, path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return cfail(c, key, "expected %s, found '%s', a directory", what, path);
    return DISTILL_OK;
}

/* A Hugging Face folder (holding config.json) or a checkpoint file. */
static Status need_model(const Config *c, const char *key, const char *path, bool student) {
    const char *what = "a Hugging Face folder (with config.json) or a checkpoint file";
    struct stat sb;
    if (stat(path, &sb) != 0) {
        static const char *const words[] = {"random", "teacher_layers", NULL};
        const char *guess = student ? yclosest(path, words) : NULL;
        if (guess)
            return cfail(c, key, "expected random, teacher_layers, or %s, found '%s': %s (did you mean '%s'?)",
                         what, path, strerror(errno), guess);
        return cfail(c, key, "expected %s, found '%s': %s", what, path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode)) {
        char cfg_json[4096];
        snprintf(cfg_json, sizeof cfg_json, "%s/config.json", path);
        if (stat(cfg_json, &sb) != 0)
            return cfail(c, key, "expected %s, found the folder '%s' without config.json", what, path);
    }
    return DISTILL_OK;
}

Status config_check_paths(const Config *c) {
    const char *h5 = "an existing HDF5 file made by `distill prepare`";
    if (!c->data.train)
        return cfail(c, "data.train", "expected the path of an HDF5 file made by `distill prepare`, found nothing");
    if (need_file(c, "data.train", c->data.train, h5)) return DISTILL_ERR;
    if (c->data.dev && need_file(c, "data.dev", c->data.dev, h5)) return DISTILL_ERR;
    if (c->data.test && need_file(c, "data.test", c->data.test, h5)) return DISTILL_ERR;
    for (int k = 0; k < (c->n_teachers > 0 ? c->n_teachers : 1); k++) {
        const ConfigModel *m = config_teacher(c, k);
        char key[64], sec[32];
        snprintf(key, sizeof key, "%s.path", config_teacher_key(c, k, sec, sizeof sec));
        if (m->init == CONFIG_INIT_PATH && need_model(c, key, m->path, false)) return DISTILL_ERR;
    }
    if (c->student.init == CONFIG_INIT_PATH && need_model(c, "student.init", c->student.path, true))
        return DISTILL_ERR;
    struct stat sb;
    if (c->resume == CONFIG_RESUME_PATH && stat(c->resume_path, &sb) != 0)
        return cfail(c, "resume", "expected auto, none, or an existing checkpoint, found '%s': %s", c->resume_path,
                     strerror(errno));
    if (stat(c->run.dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return cfail(c, "run.dir", "expected a directory for the run's outputs, found '%s', a file", c->run.dir);
        if (c->resume == CONFIG_RESUME_NONE && !c->run.overwrite) {
            DIR *d = opendir(c->run.dir);
            if (!d) return cfail(c, "run.dir", "expected a readable directory, found '%s': %s", c->run.dir, strerror(errno));
            const struct dirent *e;
            const char *first = NULL;
            char name[256];
            while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                    snprintf(name, sizeof name, "%s", e->d_name);
                    first = name;
                    break;
                }
            closedir(d);
            if (first)
                return cfail(c, "run.dir", "expected a new or empty run directory with resume: none, found '%s' "
                             "holding '%s' (set resume: auto to continue that run, or run.overwrite: true)",
                             c->run.dir, first);
        }
    }
    return DISTILL_OK;
}

/* ------------------------------------------------------------------ models and data */

/* An explicit shape key of a model loaded from a checkpoint (or the teacher) must agree with it. */
static Status agree(const Config *c, const char *sec, const char *key, int configured, int actual,
                    const char *source) {
    if (configured == CONFIG_AUTO || configured == actual) return DISTILL_OK;
    char k[64];
    snprintf(k, sizeof k, "%s.%s", sec, key);
    return cfail(c, k, "expected %d as %s has (or auto), found %d", actual, source, configured);
}

static Status check_shape(const Config *c, const char *sec, const ConfigModel *m, const ConfigModelFacts *f,
                          const char *source, bool with_layers) {
    if ((with_layers && agree(c, sec, "layers", m->layers, f->layers, source)) ||
        agree(c, sec, "hidden", m->hidden, f->hidden, source) || agree(c, sec, "heads", m->heads, f->heads, source) ||
        agree(c, sec, "intermediate", m->intermediate, f->intermediate, source) ||
        agree(c, sec, "max_position", m->max_position, f->max_position, source) ||
        agree(c, sec, "vocab_size", m->vocab_size, f->vocab_size, source) ||
        agree(c, sec, "type_vocab_size", m->type_vocab_size, f->type_vocab_size, source))
        return DISTILL_ERR;
    return DISTILL_OK;
}

/* Entry i of the loss list `list` ("losses", "stages[1].losses"). */
static Status check_loss(const Config *c, const char *list, const LossSpec *ls, int i, const ConfigFacts *f) {
    const LossSpec *l = &ls[i];
    const LossTypeInfo *info = loss_type_info(l->type);
    /* hidden-state and attention terms read their own teacher; logits terms every teacher's
     * (config_check_models checks their classifiers agree with the first's) */
    const ConfigModelFacts *S = &f->student, *T = l->teacher > 0 ? &f->more_teachers[l->teacher - 1] : &f->teacher;
    const char *type = info->name;
    char key[96];
    snprintf(key, sizeof key, "%s[%d]", list, i);
    bool attn = info->reads == LOSS_READS_ATTENTION;
    bool projected = info->keys & LOSS_KEY_PROJECTION;
    bool logits = info->reads == LOSS_READS_LOGITS && info->needs_teacher;
    bool hard = info->labels == LOSS_LABELS_CLASS, mse = info->labels == LOSS_LABELS_REGRESSION;

    if (attn && S->heads != T->heads)
        return cfail(c, key, "expected a student with the teacher's %d attention heads for %s, found %d heads",
                     T->heads, type, S->heads);
    if (projected && S->hidden != T->hidden && l->projection == LOSS_PROJ_NONE) {
        snprintf(key, sizeof key, "%s[%d].projection", list, i);
        return cfail(c, key, "expected auto, per_pair or shared for %s (student width %d, teacher width %d), found none",
                     type, S->hidden, T->hidden);
    }
    for (int j = 0; l->map == LOSS_MAP_EXPLICIT && j < l->n_pairs; j++) {
        const LossLayerPair *p = &l->pairs[j];
        int lo = attn ? 1 : 0;
        snprintf(key, sizeof key, "%s[%d].layers[%d]", list, i, j);
        if (p->student > S->layers)
            return cfail(c, key, "expected a student layer in %d..%d, found %d", lo, S->layers, p->student);
        if (p->teacher > T->layers)
            return cfail(c, key, "expected a teacher layer in %d..%d, found %d", lo, T->layers, p->teacher);
    }
    snprintf(key, sizeof key, "%s[%d]", list, i);
    if (logits) {
        if (T->num_labels < 2 || S->num_labels < 2)
            return cfail(c, key, "expected classifiers on teacher and student for %s, found num_labels %d (teacher) "
                         "and %d (student)", type, T->num_labels, S->num_labels);
        if (T->num_labels != S->num_labels)
            return cfail(c, key, "expected the student's classifier to have the teacher's %d labels for %s, "
                         "found %d", T->num_labels, type, S->num_labels);
    }
    if (f->has_data && hard) {
        if (!f->data_has_labels)
            return cfail(c, key, "expected labels in data.train for %s, found a file without /labels", type);
        if (f->data_regression)
            return cfail(c, key, "expected class labels for %s, found float (regression) labels in data.train "
                         "(use mse)", type);
    }
    if (hard && S->num_labels < 2)
        return cfail(c, key, "expected a student classifier with >= 2 labels for %s, found num_labels %d", type,
                     S->num_labels);
    if (mse) {
        if (f->has_data && !f->data_has_labels)
            return cfail(c, key, "expected labels in data.train for %s, found a file without /labels", type);
        if (f->has_data && !f->data_regression)
            return cfail(c, key, "expected float (regression) labels for %s, found class labels in data.train "
                         "(use hard_ce)", type);
        if (S->num_labels != 1)
            return cfail(c, key, "expected a regression student (num_labels 1) for %s, found num_labels %d", type,
                         S->num_labels);
    }
    return DISTILL_OK;
}

Status config_check_models(const Config *c, const ConfigFacts *f) {
    DCHECK(f->world_size >= 1);
    const ConfigModelFacts *S = &f->student, *T = &f->teacher;
    bool teacher = c->teacher.init != CONFIG_INIT_NONE;
    DCHECK(teacher == f->has_teacher);

    /* explicit shape keys against what was loaded */
    if (teacher && c->teacher.init == CONFIG_INIT_PATH &&
        check_shape(c, "teacher", &c->teacher, T, "the teacher checkpoint", true))
        return DISTILL_ERR;
    if (c->student.init == CONFIG_INIT_PATH && check_shape(c, "student", &c->student, S, "the student checkpoint", true))
        return DISTILL_ERR;
    if (c->student.init == CONFIG_INIT_TEACHER_LAYERS) {
        if (check_shape(c, "student", &c->student, T, "the teacher", false)) return DISTILL_ERR;
        for (int i = 0; i < c->student.n_init_layers; i++)
            if (c->student.init_layers[i] > T->layers) {
                char key[64];
                snprintf(key, sizeof key, "student.layers[%d]", i);
                return cfail(c, key, "expected a teacher layer in 1..%d, found %d", T->layers,
                             c->student.init_layers[i]);
            }
    }

    /* teachers 2..: their own shape keys, and the first teacher's tokenizer, positions and (for
     * the combined logits) classifier */
    bool logits_loss = false;
    for (int s = 0; s < config_stage_count(c); s++) {
        ConfigStage tmp;
        const ConfigStage *st = config_stage(c, s, &tmp);
        for (int i = 0; i < st->n_losses; i++) {
            const LossTypeInfo *info = loss_type_info(st->losses[i].type);
            logits_loss |= info->reads == LOSS_READS_LOGITS && info->needs_teacher;
        }
    }
    for (int k = 1; k < c->n_teachers; k++) {
        const ConfigModel *m = config_teacher(c, k);
        const ConfigModelFacts *Tk = &f->more_teachers[k - 1];
        char sec[32], key[64];
        snprintf(sec, sizeof sec, "teachers[%d]", k);
        if (m->init == CONFIG_INIT_PATH && check_shape(c, sec, m, Tk, "that teacher's checkpoint", true))
            return DISTILL_ERR;
        if (Tk->vocab_size != T->vocab_size || Tk->type_vocab_size != T->type_vocab_size)
            return cfail(c, sec, "expected the first teacher's vocabulary (%d tokens, %d token types: every model "
                         "reads the same token ids), found %d tokens, %d token types", T->vocab_size,
                         T->type_vocab_size, Tk->vocab_size, Tk->type_vocab_size);
        if (logits_loss && Tk->num_labels != T->num_labels)
            return cfail(c, sec, "expected the first teacher's %d labels (the logits losses read the teachers' "
                         "combined logits), found num_labels %d", T->num_labels, Tk->num_labels);
        int seq = f->has_data ? (c->data.max_seq ? c->data.max_seq : f->data_max_seq) : 0;
        snprintf(key, sizeof key, "%s", c->data.max_seq ? "data.max_seq" : "data.train");
        if (seq > Tk->max_position)
            return cfail(c, key, "expected rows of at most teacher %d's %d positions, found max_seq %d", k + 1,
                         Tk->max_position, seq);
    }

    /* one tokenizer for teacher, student and data */
    if (teacher && T->vocab_size != S->vocab_size)
        return cfail(c, "student.vocab_size", "expected the teacher's vocabulary size %d (teacher and student "
                     "read the same token ids), found %d", T->vocab_size, S->vocab_size);
    if (teacher && T->type_vocab_size != S->type_vocab_size)
        return cfail(c, "student.type_vocab_size", "expected the teacher's %d token types, found %d",
                     T->type_vocab_size, S->type_vocab_size);
    if (f->has_data && f->data_vocab_size != S->vocab_size)
        return cfail(c, "data.train", "expected a file tokenized with the model's vocabulary (%d entries), found "
                     "vocab_size %d", S->vocab_size, f->data_vocab_size);

    /* sequence length within every model's positions */
    if (f->has_data) {
        if (c->data.max_seq > f->data_max_seq)
            return cfail(c, "data.max_seq", "expected at most the file's max_seq %d (0 = the file's), found %d",
                         f->data_max_seq, c->data.max_seq);
        int seq = c->data.max_seq ? c->data.max_seq : f->data_max_seq;
        const char *key = c->data.max_seq ? "data.max_seq" : "data.train";
        if (seq > S->max_position)
            return cfail(c, key, "expected rows of at most the student's %d positions, found max_seq %d",
                         S->max_position, seq);
        if (teacher && seq > T->max_position)
            return cfail(c, key, "expected rows of at most the teacher's %d positions, found max_seq %d",
                         T->max_position, seq);
    }

    for (int s = 0; s < config_stage_count(c); s++) {
        ConfigStage tmp;
        const ConfigStage *st = config_stage(c, s, &tmp);
        char list[48];
        if (c->n_stages) snprintf(list, sizeof list, "stages[%d].losses", s);
        else snprintf(list, sizeof list, "losses");
        for (int i = 0; i < st->n_losses; i++)
            if (check_loss(c, list, st->losses, i, f)) return DISTILL_ERR;
    }

    /* labels (task finetune always has hard_ce or mse, whose checks above need labels) */
    if (f->has_data) {
        if (f->data_has_labels && !f->data_regression && f->data_num_labels > S->num_labels && S->num_labels >= 2)
            return cfail(c, "student.num_labels", "expected at least the %d classes named in data.train, found %d",
                         f->data_num_labels, S->num_labels);
        ConfigMetric m = c->train.metric;
        bool reg_metric = m == CONFIG_METRIC_PEARSON || m == CONFIG_METRIC_SPEARMAN;
        if (c->data.dev && m != CONFIG_METRIC_LOSS) {
            if (!f->dev_has_labels)
                return cfail(c, "train.metric", "expected loss for a data.dev without /labels, found %s",
                             CONFIG_METRIC_NAMES[m]);
            if (f->data_has_labels && f->data_regression && !reg_metric)
                return cfail(c, "train.metric", "expected pearson, spearman or loss for regression labels, found %s",
                             CONFIG_METRIC_NAMES[m]);
            if (f->data_has_labels && !f->data_regression && reg_metric)
                return cfail(c, "train.metric", "expected accuracy, f1, mcc or loss for class labels, found %s",
                             CONFIG_METRIC_NAMES[m]);
            if (!reg_metric && S->num_labels < 2)
                return cfail(c, "train.metric", "expected loss for a student without a classifier, found %s",
                             CONFIG_METRIC_NAMES[m]);
        }
    }

    /* ranks and device */
    if (c->data.batch_size % f->world_size)
        return cfail(c, "data.batch_size", "expected a multiple of the %d ranks (it is the global batch), found %d",
                     f->world_size, c->data.batch_size);
    /* bf16 runs on the CPU (oneDNN; the ISA is checked when the engine starts). The CUDA bf16
     * GEMMs are compiled but not yet verified on a GPU: refused, unless the GPU check
     * (scripts/gpu_check.sh) lets them run with DISTILL_ALLOW_UNTESTED_GPU_BF16=1. */
    const char *allow = getenv("DISTILL_ALLOW_UNTESTED_GPU_BF16");
    if (f->on_cuda && !(allow && !strcmp(allow, "1")) &&
        (c->student.precision == CONFIG_PRECISION_BF16 ||
         (f->has_teacher && c->teacher.precision == CONFIG_PRECISION_BF16)))
        return cfail(c, c->student.precision == CONFIG_PRECISION_BF16 ? "student.precision" : "teacher.precision",
                     "expected fp32 on a CUDA device (the CUDA bf16 GEMMs have not been verified on a GPU yet; "
                     "DISTILL_ALLOW_UNTESTED_GPU_BF16=1 runs them anyway), found bf16");
    for (int k = 1; k < c->n_teachers && f->on_cuda && !(allow && !strcmp(allow, "1")); k++)
        if (config_teacher(c, k)->precision == CONFIG_PRECISION_BF16) {
            char key[64];
            snprintf(key, sizeof key, "teachers[%d].precision", k);
            return cfail(c, key, "expected fp32 on a CUDA device (the CUDA bf16 GEMMs have not been verified on a "
                         "GPU yet; DISTILL_ALLOW_UNTESTED_GPU_BF16=1 runs them anyway), found bf16");
        }
    return DISTILL_OK;
}
