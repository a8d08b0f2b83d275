/*
 * config.c — config_parse: the located YAML tree (config_tree.c) with overrides applied, decoded
 * section by section into a Config with every default filled in, every key checked for type and
 * range, and the combinations that need no file checked. See config.h for the contract and
 * configs/README.md for the keys; config_read.c holds the typed, located reads it uses,
 * config_check.c the file-system and model checks, config_write.c the resolved dump.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../losses/losses.h"
#include "../models/bert.h"
#include "config_read.h"
#include "config_tree.h"

const char *const CONFIG_TASK_NAMES[] = {"distill", "finetune", NULL};
const char *const CONFIG_DEVICE_NAMES[] = {"cpu", "cuda", "auto", NULL};
const char *const CONFIG_PRECISION_NAMES[] = {"fp32", "bf16", NULL};
const char *const CONFIG_CACHE_NAMES[] = {"auto", "off", "required", NULL};
const char *const CONFIG_SCHEDULE_NAMES[] = {"linear", "cosine", "constant", NULL};
const char *const CONFIG_METRIC_NAMES[] = {"accuracy", "f1", "mcc", "pearson", "spearman", "loss", NULL};

/* The keys of each section, in the order config_write_yaml prints them. */
static const char *const TOP_KEYS[] = {"task", "run", "device", "precision", "threads", "tf32", "teacher", "teachers", "teacher_logits", "student",
                                       "data", "losses", "optimizer", "train", "stages", "resume", NULL};
static const char *const RUN_KEYS[] = {"name", "dir", "seed", "overwrite", NULL};
static const char *const TEACHER_KEYS[] = {"path", "init", "layers", "hidden", "heads", "intermediate",
                                           "max_position", "vocab_size", "type_vocab_size", "num_labels",
                                           "layer_norm_eps", "initializer_range", "precision", "cache", NULL};
const char *const CONFIG_TEACHER_LOGITS_NAMES[] = {"mean", "weighted", "probs", NULL};
static const char *const STUDENT_KEYS[] = {"init", "layers", "hidden", "heads", "intermediate", "max_position",
                                           "vocab_size", "type_vocab_size", "num_labels", "dropout",
                                           "attention_dropout", "layer_norm_eps", "initializer_range", "precision", NULL};
static const char *const DATA_KEYS[] = {"train", "dev", "test", "batch_size", "eval_batch_size", "shuffle",
                                        "drop_last", "max_seq", NULL};
static const char *const SCHEDULE_KEYS[] = {"start", "end", "over", NULL};
static const char *const OPTIMIZER_KEYS[] = {"lr", "weight_decay", "beta1", "beta2", "eps", "warmup_steps",
                                             "warmup_ratio", "schedule", "max_grad_norm", NULL};
static const char *const STAGE_KEYS[] = {"name", "losses", "train", "optimizer", NULL};
static const char *const STAGE_TRAIN_KEYS[] = {"epochs", "max_steps", NULL};
static const char *const TRAIN_KEYS[] = {"epochs", "max_steps", "grad_accum", "eval_every", "log_every",
                                         "checkpoint_every", "keep_last", "metric", "save_best",
                                         "early_stopping_patience", "max_bad_steps", NULL};

/* ------------------------------------------------------------------ defaults */

static void model_defaults(ConfigModel *m, ConfigInit init) {
    memset(m, 0, sizeof *m);
    m->init = init;
    m->layers = m->hidden = m->heads = m->intermediate = CONFIG_AUTO;
    m->max_position = m->vocab_size = m->type_vocab_size = m->num_labels = CONFIG_AUTO;
    m->dropout = m->attention_dropout = CONFIG_AUTO;
    m->layer_norm_eps = m->initializer_range = CONFIG_AUTO;
    m->precision = CONFIG_AUTO;
}

static void config_defaults(Config *c, const char *path) {
    memset(c, 0, sizeof *c);
    c->locations = xcalloc(1, sizeof *c->locations);
    c->source = xstrdup(path ? path : "(no file)");
    c->task = CONFIG_TASK_DISTILL;
    c->run.seed = 42;
    c->device = CONFIG_DEVICE_CPU;
    c->precision = CONFIG_PRECISION_FP32;
    c->threads = 0;
    c->tf32 = false;
    model_defaults(&c->teacher, CONFIG_INIT_NONE);
    c->teacher.dropout = c->teacher.attention_dropout = 0; /* the teacher runs in eval mode */
    c->teacher.weight = 1;
    model_defaults(&c->student, CONFIG_INIT_RANDOM);
    c->data.batch_size = 32;
    c->data.eval_batch_size = CONFIG_AUTO;
    c->data.shuffle = true;
    c->data.drop_last = false;
    c->data.max_seq = 0;
    c->optimizer = (ConfigOptimizer){.lr = 5e-5, .weight_decay = 0.01, .beta1 = 0.9, .beta2 = 0.999,
                                     .eps = 1e-8, .warmup_steps = 0, .warmup_ratio = 0,
                                     .schedule = CONFIG_SCHEDULE_LINEAR, .max_grad_norm = 1.0};
    c->train = (ConfigTrain){.epochs = 3, .max_steps = 0, .grad_accum = 1, .eval_every = 0, .log_every = 10,
                             .checkpoint_every = 0, .keep_last = 3, .metric = CONFIG_METRIC_ACCURACY,
                             .save_best = true, .early_stopping_patience = 0, .max_bad_steps = 3};
    c->resume = CONFIG_RESUME_NONE;
}

/* ------------------------------------------------------------------ the loss table, as lists */

/* NULL-terminated lists from losses/' table (losses.h), for check_keys, rd_enum and messages. */
static const char *const *loss_key_names(void) {
    static const char *names[LOSS_KEY_COUNT + 1];
    for (int i = 0; i < LOSS_KEY_COUNT; i++) names[i] = LOSS_KEYS[i].name;
    return names;
}

static const char *const *loss_type_names(void) {
    static const char *names[LOSS_TYPE_COUNT + 1];
    for (int i = 0; i < LOSS_TYPE_COUNT; i++) names[i] = loss_type_info((LossType)i)->name;
    return names;
}

static const char *const *loss_target_names(void) {
    static const char *names[3];
    names[0] = loss_target_name(LOSS_TARGET_SCORES);
    names[1] = loss_target_name(LOSS_TARGET_PROBS);
    return names;
}

static const char *const *loss_projection_names(void) {
    static const char *names[LOSS_PROJ_NONE + 2];
    for (int i = 0; i <= LOSS_PROJ_NONE; i++) names[i] = loss_projection_name((LossProjection)i);
    return names;
}

static bool reads_teacher(const LossTypeInfo *i) { return i->needs_teacher; }
static bool reads_labels_only(const LossTypeInfo *i) { return !i->needs_teacher; }

/* The table's defaults for type t, resolved as the config prints them. */
static LossSpec loss_default(LossType t) {
    LossSpec l = loss_spec_default(t);
    l.temperature_end = l.temperature;
    return l;
}

/* ------------------------------------------------------------------ sections */

static Status rd_run(Rd *r, const YNode *run) {
    Config *c = r->cfg;
    if (cfg_need_map(r, run, "run", RUN_KEYS) || cfg_check_keys(r, run, "run", RUN_KEYS)) return DISTILL_ERR;
    if (rd_str(r, run, "run", "name", "a run name", &c->run.name)) return DISTILL_ERR;
    if (c->run.name) {
        const char *nm = c->run.name;
        if (strchr(nm, '/') || !strcmp(nm, ".") || !strcmp(nm, ".."))
            return cfg_fail_found(r, cfg_at_key(run, "name"), "run.name", "a name without '/' (run.dir sets the folder)");
    } else {
        /* the config file's name without folder and extension: configs/tiny.yaml -> tiny */
        const char *base = strrchr(c->source, '/');
        base = base ? base + 1 : c->source;
        size_t len = strlen(base);
        const char *dot = strrchr(base, '.');
        if (dot && dot != base) len = (size_t)(dot - base);
        if (!len || !strcmp(c->source, "(no file)")) c->run.name = xstrdup("run");
        else {
            c->run.name = xmalloc(len + 1);
            memcpy(c->run.name, base, len);
            c->run.name[len] = '\0';
        }
    }
    if (rd_str(r, run, "run", "dir", "a directory path", &c->run.dir)) return DISTILL_ERR;
    if (!c->run.dir) {
        size_t n = strlen(c->run.name) + 6;
        c->run.dir = xmalloc(n);
        snprintf(c->run.dir, n, "runs/%s", c->run.name);
    }
    int64_t seed = (int64_t)c->run.seed;
    if (rd_int64(r, run, "run", "seed", 0, INT64_MAX, false, &seed)) return DISTILL_ERR;
    c->run.seed = (uint64_t)seed;
    return rd_bool(r, run, "run", "overwrite", &c->run.overwrite);
}

/* student.layers with init: teacher_layers: a count N (the first N teacher layers) or a list of
 * distinct teacher layer numbers >= 1. */
static Status rd_init_layers(Rd *r, const YNode *map, ConfigModel *m) {
    char kp[160];
    const YNode *v = cfg_value_of(r, map, "student", "layers", kp, sizeof kp);
    const char *exp = "the teacher layers to copy for init: teacher_layers: a count N (the first N) "
                      "or a list of layer numbers >= 1 like [3, 6, 9, 12]";
    int64_t count;
    if (!v) return cfg_fail_found(r, cfg_at_key(map, "layers"), kp, exp);
    if (yscalar_int(v, &count)) {
        if (count < 1 || count > 4096) return cfg_fail_found(r, v, kp, exp);
        m->n_init_layers = (int)count;
        m->init_layers = xmalloc((size_t)count * sizeof(int));
        for (int i = 0; i < count; i++) m->init_layers[i] = i + 1;
    } else if (v->kind == YN_SEQ && v->n > 0) {
        m->n_init_layers = v->n;
        m->init_layers = xmalloc((size_t)v->n * sizeof(int));
        for (int i = 0; i < v->n; i++) {
            char ki[176];
            snprintf(ki, sizeof ki, "%s[%d]", kp, i);
            int64_t x;
            if (!yscalar_int(v->vals[i], &x) || x < 1 || x > 4096)
                return cfg_fail_found(r, v->vals[i], ki, "a teacher layer number >= 1 (0 is the embeddings, "
                                  "always copied)");
            for (int j = 0; j < i; j++)
                if (m->init_layers[j] == (int)x)
                    return cfg_fail_found(r, v->vals[i], ki, "each teacher layer once");
            m->init_layers[i] = (int)x;
            cfg_loc_add(r, ki, v->vals[i]);
        }
    } else {
        return cfg_fail_found(r, v, kp, exp);
    }
    m->layers = m->n_init_layers;
    return DISTILL_OK;
}

/* The keys of an entry of `teachers:`: name and weight, then the keys of `teacher:`. */
static const char *const *teachers_keys(void) {
    static const char *keys[sizeof TEACHER_KEYS / sizeof *TEACHER_KEYS + 2];
    if (!keys[0]) {
        keys[0] = "name";
        keys[1] = "weight";
        for (size_t i = 0; TEACHER_KEYS[i]; i++) keys[i + 2] = TEACHER_KEYS[i];
    }
    return keys;
}

/* A teacher (teacher: or an entry of teachers:, then `sec` is "teachers[K]" and m its slot) or the
 * student. */
static Status rd_model_at(Rd *r, const YNode *node, const char *sec, ConfigModel *m, bool teacher, bool listed) {
    const char *const *known = listed ? teachers_keys() : teacher ? TEACHER_KEYS : STUDENT_KEYS;
    if (teacher && !listed && yis_null(node)) return DISTILL_OK; /* no teacher */
    if (listed && yis_null(node))
        return cfg_fail_found(r, node, sec, "a teacher like {path: FOLDER_OR_CHECKPOINT} or {init: random}");
    if (cfg_need_map(r, node, sec, known) || cfg_check_keys(r, node, sec, known)) return DISTILL_ERR;
    if (!yis_null(node)) cfg_loc_add(r, sec, node);
    char kp[160], k_path[160], k_init[160], k_layers[160], k_heads[160], k_hidden[160];
    cfg_join(k_path, sizeof k_path, sec, "path");
    cfg_join(k_init, sizeof k_init, sec, "init");
    cfg_join(k_layers, sizeof k_layers, sec, "layers");
    cfg_join(k_heads, sizeof k_heads, sec, "heads");
    cfg_join(k_hidden, sizeof k_hidden, sec, "hidden");

    /* init / path */
    const YNode *init = cfg_value_of(r, node, sec, "init", kp, sizeof kp);
    if (init && (init->kind != YN_SCALAR || !init->text[0]))
        return cfg_fail_found(r, init, kp, teacher ? "random or a path" : "random, teacher_layers or a path");
    if (teacher) {
        const YNode *path = cfg_value_of(r, node, sec, "path", kp, sizeof kp);
        if (path && (path->kind != YN_SCALAR || !path->text[0]))
            return cfg_fail_found(r, path, kp, "the path of a Hugging Face folder or a checkpoint");
        if (init && !strcmp(init->text, "random")) {
            if (path) return cfg_fail_found(r, path, k_path, "no path with init: random");
            m->init = CONFIG_INIT_RANDOM;
        } else if (init && !strcmp(init->text, "teacher_layers")) {
            return cfg_fail_found(r, init, k_init, "random or a path (teacher_layers is for the student)");
        } else if (init && path) {
            return cfg_fail_found(r, path, k_path, "either path or init, not both");
        } else if (init || path) {
            m->init = CONFIG_INIT_PATH;
            m->path = xstrdup((init ? init : path)->text);
        } else {
            return cfg_fail_found(r, node, sec, "path: FOLDER_OR_CHECKPOINT or init: random");
        }
    } else if (init) {
        if (!strcmp(init->text, "random")) m->init = CONFIG_INIT_RANDOM;
        else if (!strcmp(init->text, "teacher_layers")) m->init = CONFIG_INIT_TEACHER_LAYERS;
        else {
            m->init = CONFIG_INIT_PATH;
            m->path = xstrdup(init->text);
        }
    }

    /* shape */
    if (m->init == CONFIG_INIT_TEACHER_LAYERS) {
        if (rd_init_layers(r, node, m)) return DISTILL_ERR;
    } else {
        const YNode *lv = ymap_get(node, "layers", NULL);
        if (lv && lv->kind == YN_SEQ)
            return cfg_fail_found(r, lv, k_layers,
                              "a layer count (a list of teacher layers needs init: teacher_layers)");
        if (rd_int(r, node, sec, "layers", 1, 4096, true, &m->layers)) return DISTILL_ERR;
    }
    if (rd_int(r, node, sec, "hidden", 1, 1 << 20, true, &m->hidden) ||
        rd_int(r, node, sec, "heads", 1, 1 << 16, true, &m->heads) ||
        rd_int(r, node, sec, "intermediate", 1, 1 << 22, true, &m->intermediate) ||
        rd_int(r, node, sec, "max_position", 1, 1 << 20, true, &m->max_position) ||
        rd_int(r, node, sec, "vocab_size", 1, 1 << 26, true, &m->vocab_size) ||
        rd_int(r, node, sec, "type_vocab_size", 1, 1 << 16, true, &m->type_vocab_size) ||
        rd_int(r, node, sec, "num_labels", 0, BERT_MAX_LABELS, true, &m->num_labels) ||
        rd_num(r, node, sec, "layer_norm_eps", 0, true, 1, true, true, &m->layer_norm_eps) ||
        rd_num(r, node, sec, "initializer_range", 0, true, INFINITY, false, true, &m->initializer_range))
        return DISTILL_ERR;
    RD_ENUM(r, node, sec, "precision", CONFIG_PRECISION_NAMES, m->precision);
    if (teacher) RD_ENUM(r, node, sec, "cache", CONFIG_CACHE_NAMES, m->cache);
    if (!teacher && (rd_num(r, node, sec, "dropout", 0, false, 1, true, true, &m->dropout) ||
                     rd_num(r, node, sec, "attention_dropout", 0, false, 1, true, true, &m->attention_dropout)))
        return DISTILL_ERR;

    /* resolve a random init to Hugging Face's BertConfig defaults (intermediate = 4 * hidden) */
    if (m->init == CONFIG_INIT_RANDOM) {
        if (m->layers == CONFIG_AUTO) m->layers = 12;
        if (m->hidden == CONFIG_AUTO) m->hidden = 768;
        if (m->heads == CONFIG_AUTO) m->heads = 12;
        if (m->intermediate == CONFIG_AUTO) m->intermediate = 4 * m->hidden;
        if (m->max_position == CONFIG_AUTO) m->max_position = 512;
        if (m->type_vocab_size == CONFIG_AUTO) m->type_vocab_size = 2;
        if (m->layer_norm_eps == CONFIG_AUTO) m->layer_norm_eps = 1e-12;
        if (m->initializer_range == CONFIG_AUTO) m->initializer_range = 0.02;
        if (!teacher && m->dropout == CONFIG_AUTO) m->dropout = 0.1;
        if (!teacher && m->attention_dropout == CONFIG_AUTO) m->attention_dropout = 0.1;
    }
    if (m->hidden != CONFIG_AUTO && m->heads != CONFIG_AUTO && m->hidden % m->heads) {
        char exp[96];
        snprintf(exp, sizeof exp, "a number of heads that divides hidden (%d)", m->hidden);
        const YNode *hv = ymap_get(node, "heads", NULL);
        if (hv) return cfg_fail_found(r, hv, k_heads, exp);
        return yfail(&r->src, cfg_at_key(node, "hidden"), k_hidden,
                     "expected a multiple of heads (%d), found %d", m->heads, m->hidden);
    }
    return DISTILL_OK;
}

static Status rd_model(Rd *r, const YNode *node, const char *sec, bool teacher) {
    return rd_model_at(r, node, sec, teacher ? &r->cfg->teacher : &r->cfg->student, teacher, false);
}

/* The names a loss's `teacher:` and the config accept: [A-Za-z0-9_-], under 48 characters. */
static bool valid_name(const char *s);

/* `teachers:`, a list of 1..CONFIG_MAX_TEACHERS teachers with optional name and weight (the
 * single `teacher:` form is then absent). */
static Status rd_teachers(Rd *r, const YNode *root) {
    Config *c = r->cfg;
    char kp[160];
    const YNode *v = cfg_value_of(r, root, "", "teachers", kp, sizeof kp);
    if (!v) {
        c->n_teachers = c->teacher.init != CONFIG_INIT_NONE ? 1 : 0;
        return DISTILL_OK;
    }
    if (c->teacher.init != CONFIG_INIT_NONE)
        return yfail(&r->src, v, "teachers", "expected either teacher: (one) or teachers: (a list), found both");
    char exp[160];
    snprintf(exp, sizeof exp, "a list of 1 to %d teachers like [{path: a}, {path: b}]", CONFIG_MAX_TEACHERS);
    if (v->kind != YN_SEQ || v->n < 1 || v->n > CONFIG_MAX_TEACHERS) return cfg_fail_found(r, v, "teachers", exp);
    c->teacher_list = true;
    c->more_teachers = xcalloc((size_t)v->n, sizeof *c->more_teachers);
    for (int i = 0; i < v->n; i++) {
        char sec[32];
        snprintf(sec, sizeof sec, "teachers[%d]", i);
        ConfigModel *m = i == 0 ? &c->teacher : &c->more_teachers[i - 1];
        if (i > 0) {
            model_defaults(m, CONFIG_INIT_NONE);
            m->dropout = m->attention_dropout = 0; /* teachers run in eval mode */
        }
        m->weight = 1;
        c->n_teachers = i + 1; /* config_free frees what this one holds */
        if (rd_model_at(r, v->vals[i], sec, m, true, true)) return DISTILL_ERR;
        if (rd_str(r, v->vals[i], sec, "name", "a name", &m->name)) return DISTILL_ERR;
        char kn[64];
        snprintf(kn, sizeof kn, "%s.name", sec);
        if (m->name && (!valid_name(m->name) || yscalar_int(ymap_get(v->vals[i], "name", NULL), &(int64_t){0}))) {
            char e[128];
            snprintf(e, sizeof e, "a name of at most %d letters, digits, '_' or '-', not a number", LOSS_NAME_MAX - 1);
            return cfg_fail_found(r, cfg_at_key(v->vals[i], "name"), kn, e);
        }
        if (!m->name) {
            char nm[32];
            snprintf(nm, sizeof nm, "teacher%d", i + 1);
            m->name = xstrdup(nm);
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(config_teacher(c, j)->name, m->name))
                return yfail(&r->src, cfg_at_key(v->vals[i], "name"), kn, "expected a name not used by teachers[%d], "
                             "found '%s'", j, m->name);
        if (rd_num(r, v->vals[i], sec, "weight", 0, false, INFINITY, false, false, &m->weight)) return DISTILL_ERR;
    }
    return DISTILL_OK;
}

/* teacher_logits, and the teachers' weights it reads. */
static Status rd_teacher_logits(Rd *r, const YNode *root) {
    Config *c = r->cfg;
    RD_ENUM(r, root, "", "teacher_logits", CONFIG_TEACHER_LOGITS_NAMES, c->teacher_logits);
    const YNode *list = ymap_get(root, "teachers", NULL);
    double total = 0;
    for (int k = 0; k < c->n_teachers; k++) total += config_teacher(c, k)->weight;
    for (int k = 0; c->teacher_list && k < c->n_teachers; k++) {
        const YNode *w = ymap_get(list->vals[k], "weight", NULL);
        if (c->teacher_logits == CONFIG_TEACHER_LOGITS_MEAN && w && !yis_null(w)) {
            char kw[64];
            snprintf(kw, sizeof kw, "teachers[%d].weight", k);
            char found[96];
            ydescribe(w, found, sizeof found);
            return yfail(&r->src, w, kw, "expected no weight with teacher_logits: mean (the plain average; set "
                         "teacher_logits: weighted or probs to weight the teachers), found %s", found);
        }
    }
    if (c->teacher_logits != CONFIG_TEACHER_LOGITS_MEAN && c->n_teachers > 0 && !(total > 0))
        return yfail(&r->src, list ? list : root, "teachers", "expected a weight > 0 on at least one teacher for "
                     "teacher_logits: %s, found all 0", CONFIG_TEACHER_LOGITS_NAMES[c->teacher_logits]);
    return DISTILL_OK;
}

/* A loss's `teacher:`: a teacher's name or its 1-based number in `teachers:`; 0-based in spec. */
static Status rd_loss_teacher(Rd *r, const YNode *item, const char *sec, LossSpec *l) {
    Config *c = r->cfg;
    char kp[160];
    const YNode *v = cfg_value_of(r, item, sec, "teacher", kp, sizeof kp);
    if (!v) return DISTILL_OK;
    char names[CONFIG_MAX_TEACHERS * (LOSS_NAME_MAX + 2) + 64];
    size_t len = 0;
    names[0] = '\0';
    for (int k = 0; k < c->n_teachers && c->teacher_list; k++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", k ? ", " : "", config_teacher(c, k)->name);
    int64_t x;
    if (v->kind == YN_SCALAR && yscalar_int(v, &x)) {
        if (x >= 1 && x <= c->n_teachers) {
            l->teacher = (int)x - 1;
            return DISTILL_OK;
        }
    } else if (v->kind == YN_SCALAR) {
        for (int k = 0; k < c->n_teachers && c->teacher_list; k++)
            if (!strcmp(v->text, config_teacher(c, k)->name)) {
                l->teacher = k;
                return DISTILL_OK;
            }
    }
    char exp[sizeof names + 96];
    if (c->n_teachers == 0) snprintf(exp, sizeof exp, "no teacher: there is none");
    else if (!c->teacher_list) snprintf(exp, sizeof exp, "1 (there is one teacher)");
    else snprintf(exp, sizeof exp, "a teacher's name (%s) or number 1..%d", names, c->n_teachers);
    return cfg_fail_found(r, v, kp, exp);
}

static Status rd_data(Rd *r, const YNode *d) {
    ConfigData *x = &r->cfg->data;
    if (cfg_need_map(r, d, "data", DATA_KEYS) || cfg_check_keys(r, d, "data", DATA_KEYS)) return DISTILL_ERR;
    if (!yis_null(d)) cfg_loc_add(r, "data", d);
    const char *h5 = "the path of an HDF5 file made by `distill prepare`";
    if (rd_str(r, d, "data", "train", h5, &x->train) || rd_str(r, d, "data", "dev", h5, &x->dev) ||
        rd_str(r, d, "data", "test", h5, &x->test) ||
        rd_int(r, d, "data", "batch_size", 1, 1 << 24, false, &x->batch_size) ||
        rd_int(r, d, "data", "eval_batch_size", 1, 1 << 24, true, &x->eval_batch_size) ||
        rd_bool(r, d, "data", "shuffle", &x->shuffle) || rd_bool(r, d, "data", "drop_last", &x->drop_last) ||
        rd_int(r, d, "data", "max_seq", 0, 1 << 20, false, &x->max_seq))
        return DISTILL_ERR;
    if (x->eval_batch_size == CONFIG_AUTO) x->eval_batch_size = x->batch_size;
    return DISTILL_OK;
}

static Status rd_temperature(Rd *r, const YNode *item, const char *sec, LossSpec *l) {
    char kp[160];
    const YNode *v = cfg_value_of(r, item, sec, "temperature", kp, sizeof kp);
    if (!v) return DISTILL_OK;
    if (v->kind != YN_MAP) {
        if (rd_float(r, item, sec, "temperature", 0, true, &l->temperature)) {
            if (v->kind == YN_SCALAR) return DISTILL_ERR;
            return cfg_fail_found(r, v, kp, "a number > 0 or a schedule {start: T0, end: T1, over: STEPS}");
        }
        l->temperature_end = l->temperature;
        return DISTILL_OK;
    }
    if (cfg_check_keys(r, v, kp, SCHEDULE_KEYS)) return DISTILL_ERR;
    l->temperature = l->temperature_end = -1;
    int64_t steps = -1;
    if (rd_float(r, v, kp, "start", 0, true, &l->temperature) ||
        rd_float(r, v, kp, "end", 0, true, &l->temperature_end) ||
        rd_int64(r, v, kp, "over", 1, INT64_MAX, false, &steps))
        return DISTILL_ERR;
    const char *missing = l->temperature < 0 ? "start" : l->temperature_end < 0 ? "end"
                        : steps < 0 ? "over" : NULL;
    if (missing) {
        char km[176];
        snprintf(km, sizeof km, "%s.%s", kp, missing);
        return yfail(&r->src, v, km, "expected a schedule with start, end (temperatures > 0) and over "
                     "(optimizer steps >= 1), found no %s", missing);
    }
    l->temperature_steps = (long)steps;
    return DISTILL_OK;
}

static Status rd_layer_map(Rd *r, const YNode *item, const char *sec, LossSpec *l) {
    char kp[160];
    const YNode *v = cfg_value_of(r, item, sec, "layers", kp, sizeof kp);
    if (!v) return DISTILL_OK;
    bool attn = loss_type_info(l->type)->reads == LOSS_READS_ATTENTION;
    if (v->kind == YN_SCALAR && !strcmp(v->text, "uniform")) { l->map = LOSS_MAP_UNIFORM; return DISTILL_OK; }
    if (v->kind == YN_SCALAR && !strcmp(v->text, "last")) { l->map = LOSS_MAP_LAST; return DISTILL_OK; }
    if (v->kind != YN_SEQ || v->n == 0) {
        const char *const maps[] = {"uniform", "last", NULL};
        const char *guess = v->kind == YN_SCALAR ? yclosest(v->text, maps) : NULL;
        char found[96];
        ydescribe(v, found, sizeof found);
        return yfail(&r->src, v, kp, "expected uniform, last, or a list of [student, teacher] layer pairs "
                     "like [[1, 3], [2, 6]], found %s%s%s%s", found, guess ? " (did you mean '" : "",
                     guess ? guess : "", guess ? "'?)" : "");
    }
    if (v->n > LOSS_MAX_PAIRS) {
        char exp[64];
        snprintf(exp, sizeof exp, "at most %d layer pairs", LOSS_MAX_PAIRS);
        return yfail(&r->src, v, kp, "expected %s, found %d", exp, v->n);
    }
    l->map = LOSS_MAP_EXPLICIT;
    l->n_pairs = v->n;
    int lo = attn ? 1 : 0;
    for (int i = 0; i < v->n; i++) {
        const YNode *p = v->vals[i];
        char ki[176];
        snprintf(ki, sizeof ki, "%s[%d]", kp, i);
        int64_t s, t;
        if (p->kind != YN_SEQ || p->n != 2 || !yscalar_int(p->vals[0], &s) || !yscalar_int(p->vals[1], &t) ||
            s < lo || t < lo || s > 4096 || t > 4096) {
            char exp[160];
            snprintf(exp, sizeof exp, "a pair [student, teacher] of layer numbers >= %d%s", lo,
                     attn ? " (attention maps exist for layers 1..N)" : " (0 = embeddings)");
            return cfg_fail_found(r, p, ki, exp);
        }
        for (int j = 0; j < i; j++)
            if (l->pairs[j].student == s && l->pairs[j].teacher == t)
                return cfg_fail_found(r, p, ki, "each pair once");
        l->pairs[i] = (LossLayerPair){(int)s, (int)t};
        cfg_loc_add(r, ki, p);
    }
    return DISTILL_OK;
}

/* The names losses.h accepts: [A-Za-z0-9_-], shorter than LOSS_NAME_MAX. */
static bool valid_name(const char *s) {
    if (!s[0] || strlen(s) >= LOSS_NAME_MAX) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-'))
            return false;
    return true;
}

/* One entry of `losses`: the type, then exactly the keys its row of the loss table takes, over
 * the table's defaults. */
static Status rd_loss(Rd *r, const YNode *item, const char *list, int idx, LossSpec *l) {
    char sec[64], kp[160];
    snprintf(sec, sizeof sec, "%s[%d]", list, idx);
    if (item->kind != YN_MAP)
        return cfg_fail_found(r, item, sec, "a loss like {type: logits_kd, weight: 1.0, temperature: 2.0}");
    cfg_loc_add(r, sec, item);
    if (cfg_check_keys(r, item, sec, loss_key_names())) return DISTILL_ERR;
    const YNode *tv = cfg_value_of(r, item, sec, "type", kp, sizeof kp);
    if (!tv) {
        char types[256];
        cfg_list_names(loss_type_names(), types, sizeof types);
        return yfail(&r->src, cfg_at_key(item, "type"), kp, "expected a loss type (%s), found none", types);
    }
    LossType t;
    if (tv->kind != YN_SCALAR || loss_type_parse(tv->text, &t)) return cfg_fail_enum(r, tv, kp, loss_type_names());
    const LossTypeInfo *info = loss_type_info(t);
    *l = loss_default(t);
    for (int i = 0; i < item->n; i++) {
        const char *k = item->keys[i]->text;
        unsigned bit = 0;
        for (int j = 0; j < LOSS_KEY_COUNT; j++)
            if (!strcmp(k, LOSS_KEYS[j].name)) bit = LOSS_KEYS[j].bit;
        if (!bit || (info->keys & bit) || yis_null(item->vals[i])) continue;
        char found[96], ki[176], types[256];
        ydescribe(item->vals[i], found, sizeof found);
        snprintf(ki, sizeof ki, "%s.%s", sec, k);
        loss_types_taking(bit, " and ", types, sizeof types);
        return yfail(&r->src, item->keys[i], ki, "expected no %s for %s (it applies to %s), found %s", k,
                     info->name, types, found);
    }
    char *name = NULL;
    if (rd_str(r, item, sec, "name", "a name", &name)) return DISTILL_ERR;
    if (name && !valid_name(name)) {
        free(name);
        snprintf(kp, sizeof kp, "%s.name", sec);
        char exp[96];
        snprintf(exp, sizeof exp, "a name of at most %d letters, digits, '_' or '-'", LOSS_NAME_MAX - 1);
        return cfg_fail_found(r, cfg_at_key(item, "name"), kp, exp);
    }
    if (name) snprintf(l->name, sizeof l->name, "%s", name);
    free(name);
    if (rd_float(r, item, sec, "weight", 0, false, &l->weight)) return DISTILL_ERR;
    if ((info->keys & LOSS_KEY_TEMPERATURE) && rd_temperature(r, item, sec, l)) return DISTILL_ERR;
    if ((info->keys & LOSS_KEY_LAYERS) && rd_layer_map(r, item, sec, l)) return DISTILL_ERR;
    if (info->keys & LOSS_KEY_TARGET) {
        int e = l->target - LOSS_TARGET_SCORES;
        if (rd_enum(r, item, sec, "target", loss_target_names(), &e)) return DISTILL_ERR;
        l->target = (LossAttnTarget)(e + LOSS_TARGET_SCORES);
    }
    if (info->keys & LOSS_KEY_PROJECTION) RD_ENUM(r, item, sec, "projection", loss_projection_names(), l->projection);
    if ((info->keys & LOSS_KEY_TEACHER) && rd_loss_teacher(r, item, sec, l)) return DISTILL_ERR;
    return DISTILL_OK;
}

/* The list `list` ("losses", "stages[1].losses") into *out (n entries, owned by the config). */
static Status rd_losses(Rd *r, const YNode *v, const char *list, LossSpec **out, int *n) {
    if (yis_null(v)) return DISTILL_OK; /* defaults after the task is known */
    cfg_loc_add(r, list, v);
    if (v->kind != YN_SEQ || v->n == 0)
        return cfg_fail_found(r, v, list, "a list of losses like [{type: logits_kd, weight: 1.0}]");
    *out = xcalloc((size_t)v->n, sizeof **out);
    LossSpec *ls = *out;
    for (int i = 0; i < v->n; i++) {
        *n = i + 1;
        if (rd_loss(r, v->vals[i], list, i, &ls[i])) return DISTILL_ERR;
        for (int j = 0; j < i; j++)
            if (!strcmp(ls[j].name, ls[i].name)) {
                char ki[96], exp[160];
                snprintf(ki, sizeof ki, "%s[%d].name", list, i);
                snprintf(exp, sizeof exp, "a name not used by %s[%d] (set name: to tell them apart in the logs)", list, j);
                return yfail(&r->src, cfg_at_key(v->vals[i], "name"), ki, "expected %s, found '%s'", exp, ls[i].name);
            }
    }
    return DISTILL_OK;
}

/* `optimizer` (sec "optimizer" or "stages[N].optimizer") over the values already in *x. */
static Status rd_optimizer(Rd *r, const YNode *o, const char *s, ConfigOptimizer *x) {
    if (cfg_need_map(r, o, s, OPTIMIZER_KEYS) || cfg_check_keys(r, o, s, OPTIMIZER_KEYS)) return DISTILL_ERR;
    if (rd_num(r, o, s, "lr", 0, true, INFINITY, false, false, &x->lr) ||
        rd_num(r, o, s, "weight_decay", 0, false, INFINITY, false, false, &x->weight_decay) ||
        rd_num(r, o, s, "beta1", 0, false, 1, true, false, &x->beta1) ||
        rd_num(r, o, s, "beta2", 0, false, 1, true, false, &x->beta2) ||
        rd_num(r, o, s, "eps", 0, true, INFINITY, false, false, &x->eps) ||
        rd_int64(r, o, s, "warmup_steps", 0, INT64_MAX, false, &x->warmup_steps) ||
        rd_num(r, o, s, "warmup_ratio", 0, false, 1, true, false, &x->warmup_ratio) ||
        rd_num(r, o, s, "max_grad_norm", 0, false, INFINITY, false, false, &x->max_grad_norm))
        return DISTILL_ERR;
    RD_ENUM(r, o, s, "schedule", CONFIG_SCHEDULE_NAMES, x->schedule);
    char wkey[96];
    cfg_join(wkey, sizeof wkey, s, "warmup_ratio");
    if (x->warmup_steps > 0 && x->warmup_ratio > 0)
        return yfail(&r->src, cfg_at_key(o, "warmup_ratio"), wkey, "expected 0 when "
                     "warmup_steps is set (%lld), found %g: set one of the two",
                     (long long)x->warmup_steps, x->warmup_ratio);
    return DISTILL_OK;
}

static Status rd_train(Rd *r, const YNode *t, bool metric_regression) {
    ConfigTrain *x = &r->cfg->train;
    const char *s = "train";
    if (cfg_need_map(r, t, s, TRAIN_KEYS) || cfg_check_keys(r, t, s, TRAIN_KEYS)) return DISTILL_ERR;
    if (metric_regression) x->metric = CONFIG_METRIC_PEARSON;
    if (rd_int(r, t, s, "epochs", 0, 1000000, false, &x->epochs) ||
        rd_int64(r, t, s, "max_steps", 0, INT64_MAX, false, &x->max_steps) ||
        rd_int(r, t, s, "grad_accum", 1, 1 << 16, false, &x->grad_accum) ||
        rd_int64(r, t, s, "eval_every", 0, INT64_MAX, false, &x->eval_every) ||
        rd_int64(r, t, s, "log_every", 1, INT64_MAX, false, &x->log_every) ||
        rd_int64(r, t, s, "checkpoint_every", 0, INT64_MAX, false, &x->checkpoint_every) ||
        rd_int(r, t, s, "keep_last", 0, 1 << 20, false, &x->keep_last) ||
        rd_bool(r, t, s, "save_best", &x->save_best) ||
        rd_int(r, t, s, "early_stopping_patience", 0, 1 << 20, false, &x->early_stopping_patience) ||
        rd_int(r, t, s, "max_bad_steps", 1, 1 << 20, false, &x->max_bad_steps))
        return DISTILL_ERR;
    RD_ENUM(r, t, s, "metric", CONFIG_METRIC_NAMES, x->metric);
    if (x->epochs == 0 && x->max_steps == 0)
        return yfail(&r->src, cfg_at_key(t, "epochs"), "train.epochs", "expected at least 1 epoch (or "
                     "train.max_steps > 0), found 0");
    return DISTILL_OK;
}

/* One entry of `stages:`: name, losses (required), train: {epochs | max_steps}, optimizer keys;
 * what it does not set comes from the top level (already read). */
static Status rd_stage(Rd *r, const YNode *item, int idx, ConfigStage *st) {
    Config *c = r->cfg;
    char sec[32], kp[160], list[48];
    snprintf(sec, sizeof sec, "stages[%d]", idx);
    if (item->kind != YN_MAP)
        return cfg_fail_found(r, item, sec, "a stage like {name: intermediate, losses: [...], train: {epochs: 3}}");
    cfg_loc_add(r, sec, item);
    if (cfg_check_keys(r, item, sec, STAGE_KEYS)) return DISTILL_ERR;
    char *name = NULL;
    if (rd_str(r, item, sec, "name", "a name", &name)) return DISTILL_ERR;
    if (name && !valid_name(name)) {
        free(name);
        snprintf(kp, sizeof kp, "%s.name", sec);
        return cfg_fail_found(r, cfg_at_key(item, "name"), kp, "a name of letters, digits, '_' or '-'");
    }
    if (!name) {
        char def[32];
        snprintf(def, sizeof def, "stage%d", idx + 1);
        name = xstrdup(def);
    }
    st->name = name;
    for (int j = 0; j < idx; j++)
        if (!strcmp(c->stages[j].name, name)) {
            snprintf(kp, sizeof kp, "%s.name", sec);
            return yfail(&r->src, cfg_at_key(item, "name"), kp, "expected a name not used by stages[%d], found '%s'", j,
                         name);
        }
    snprintf(list, sizeof list, "%s.losses", sec);
    const YNode *lv = cfg_value_of(r, item, sec, "losses", kp, sizeof kp);
    if (!lv) return yfail(&r->src, cfg_at_key(item, "losses"), kp, "expected the stage's list of losses, found none");
    if (rd_losses(r, lv, list, &st->losses, &st->n_losses)) return DISTILL_ERR;
    /* the optimizer: the top level's, this stage's keys over it; warmup_steps and warmup_ratio
     * replace each other (setting one here clears the other inherited one) */
    st->optimizer = c->optimizer;
    const YNode *ov = cfg_value_of(r, item, sec, "optimizer", kp, sizeof kp);
    if (ov && ov->kind == YN_MAP) {
        bool ws = !yis_null(ymap_get(ov, "warmup_steps", NULL)), wr = !yis_null(ymap_get(ov, "warmup_ratio", NULL));
        if (ws && !wr) st->optimizer.warmup_ratio = 0;
        if (wr && !ws) st->optimizer.warmup_steps = 0;
    }
    snprintf(kp, sizeof kp, "%s.optimizer", sec);
    if (rd_optimizer(r, ov, kp, &st->optimizer)) return DISTILL_ERR;
    /* the length: the top level's train.epochs / max_steps unless the stage sets one */
    st->epochs = c->train.epochs;
    st->max_steps = c->train.max_steps;
    const YNode *tv = cfg_value_of(r, item, sec, "train", kp, sizeof kp);
    snprintf(kp, sizeof kp, "%s.train", sec);
    if (cfg_need_map(r, tv, kp, STAGE_TRAIN_KEYS) || cfg_check_keys(r, tv, kp, STAGE_TRAIN_KEYS)) return DISTILL_ERR;
    if (tv) {
        bool has_ms = !yis_null(ymap_get(tv, "max_steps", NULL)), has_ep = !yis_null(ymap_get(tv, "epochs", NULL));
        if (has_ep && !has_ms) st->max_steps = 0; /* epochs given here: they count, not the top level's steps */
        if (rd_int(r, tv, kp, "epochs", 0, 1000000, false, &st->epochs) ||
            rd_int64(r, tv, kp, "max_steps", 0, INT64_MAX, false, &st->max_steps))
            return DISTILL_ERR;
    }
    if (st->epochs == 0 && st->max_steps == 0) {
        char k[64];
        snprintf(k, sizeof k, "%s.train.epochs", sec);
        return yfail(&r->src, tv ? cfg_at_key(tv, "epochs") : item, k, "expected at least 1 epoch (or max_steps > 0), "
                     "found 0");
    }
    return DISTILL_OK;
}

static Status rd_stages(Rd *r, const YNode *root) {
    Config *c = r->cfg;
    char kp[160];
    const YNode *v = cfg_value_of(r, root, "", "stages", kp, sizeof kp);
    if (!v) return DISTILL_OK;
    if (v->kind != YN_SEQ || v->n == 0)
        return cfg_fail_found(r, v, "stages", "a list of stages like [{losses: [...], train: {epochs: 3}}, ...]");
    if (!yis_null(ymap_get(root, "losses", NULL)))
        return yfail(&r->src, cfg_at_key(root, "losses"), "losses", "expected no top-level losses with stages: (each "
                     "stage lists its own), found a list");
    c->stages = xcalloc((size_t)v->n, sizeof *c->stages);
    for (int i = 0; i < v->n; i++) {
        c->n_stages = i + 1;
        if (rd_stage(r, v->vals[i], i, &c->stages[i])) return DISTILL_ERR;
    }
    return DISTILL_OK;
}

static Status rd_resume(Rd *r, const YNode *root) {
    Config *c = r->cfg;
    char kp[160];
    const YNode *v = cfg_value_of(r, root, "", "resume", kp, sizeof kp);
    if (!v) return DISTILL_OK;
    if (v->kind != YN_SCALAR || !v->text[0] || (v->plain && ytext_is_typed(v->text)))
        return cfg_fail_found(r, v, "resume", "auto, none, or the path of a checkpoint");
    if (!strcmp(v->text, "none")) c->resume = CONFIG_RESUME_NONE;
    else if (!strcmp(v->text, "auto")) c->resume = CONFIG_RESUME_AUTO;
    else {
        c->resume = CONFIG_RESUME_PATH;
        c->resume_path = xstrdup(v->text);
    }
    return DISTILL_OK;
}

/* ------------------------------------------------------------------ combinations */

static Status check_combinations(Rd *r, const YNode *root) {
    Config *c = r->cfg;
    const YNode *task = cfg_at_key(root, "task");
    if (c->task == CONFIG_TASK_FINETUNE && c->teacher.init != CONFIG_INIT_NONE)
        return yfail(&r->src, cfg_at_key(root, "teacher"), "teacher", "expected no teacher for task: finetune "
                     "(it trains the student on labels alone), found a teacher (use task: distill)");
    if (c->task == CONFIG_TASK_DISTILL && c->teacher.init == CONFIG_INIT_NONE)
        return yfail(&r->src, task, "teacher", "expected a teacher (path: FOLDER_OR_CHECKPOINT, or init: random) "
                     "for task: distill, found none (use task: finetune to train on labels alone)");
    if (c->student.init == CONFIG_INIT_TEACHER_LAYERS && c->teacher.init == CONFIG_INIT_NONE)
        return yfail(&r->src, cfg_at_key(ymap_get(root, "student", NULL), "init"), "student.init",
                     "expected random or a path without a teacher, found teacher_layers");

    bool any_teacher_loss = false, has_hard = false, has_mse = false;
    int n_stages = config_stage_count(c);
    const YNode *stages_at = ymap_get(root, "stages", NULL);
    for (int s = 0; s < n_stages; s++) {
        ConfigStage tmp;
        const ConfigStage *stage = config_stage(c, s, &tmp);
        const YNode *ls = c->n_stages ? ymap_get(stages_at->vals[s], "losses", NULL) : ymap_get(root, "losses", NULL);
        const YNode *losses_at = ls ? ls : root;
        char list[48];
        if (c->n_stages) snprintf(list, sizeof list, "stages[%d].losses", s);
        else snprintf(list, sizeof list, "losses");
        double total = 0;
        for (int i = 0; i < stage->n_losses; i++) {
            const LossSpec *l = &stage->losses[i];
            const LossTypeInfo *info = loss_type_info(l->type);
            char key[80];
            snprintf(key, sizeof key, "%s[%d].type", list, i);
            const YNode *at = NULL;
            if (ls && ls->kind == YN_SEQ && i < ls->n) at = cfg_at_key(ls->vals[i], "type");
            if (!at) at = root;
            bool needs = info->needs_teacher;
            any_teacher_loss |= needs;
            total += l->weight;
            char types[256];
            if (c->task == CONFIG_TASK_FINETUNE && needs)
                return yfail(&r->src, at, key, "expected %s for task: finetune (there is no teacher), found %s",
                             loss_type_list(reads_labels_only, " or ", types, sizeof types), info->name);
            bool hard = info->labels == LOSS_LABELS_CLASS, mse = info->labels == LOSS_LABELS_REGRESSION;
            if ((hard && has_mse) || (mse && has_hard))
                return yfail(&r->src, at, key, "expected either hard_ce (classification) or mse (regression), "
                             "found both");
            has_hard |= hard;
            has_mse |= mse;
            int nl = c->student.num_labels;
            bool classes = info->reads == LOSS_READS_LOGITS && !mse; /* reads class logits */
            if (classes && (nl == 0 || nl == 1))
                return yfail(&r->src, at, key, "expected a loss for the student's %s (student.num_labels: %d), "
                             "found %s", nl ? "regression head (mse)" : "missing classifier (no logits loss)", nl,
                             info->name);
            if (mse && nl != CONFIG_AUTO && nl != 1)
                return yfail(&r->src, at, key, "expected a regression student (num_labels: 1) for %s, found "
                             "student.num_labels: %d", info->name, nl);
        }
        if (total <= 0)
            return yfail(&r->src, losses_at, list, "expected a weight > 0 on at least one loss, found all 0");
    }
    char teacher_types[256];
    /* staged: some stage reads the teacher (a later one may fine-tune on labels alone) */
    if (c->task == CONFIG_TASK_DISTILL && !any_teacher_loss)
        return yfail(&r->src, stages_at ? stages_at : cfg_at_key(root, "losses"), c->n_stages ? "stages" : "losses",
                     "expected at least one loss that reads the teacher (%s) for task: distill, found only label losses",
                     loss_type_list(reads_teacher, ", ", teacher_types, sizeof teacher_types));

    const YNode *train = ymap_get(root, "train", NULL);
    if (!c->data.dev && c->train.eval_every > 0)
        return yfail(&r->src, cfg_at_key(train, "eval_every"), "train.eval_every", "expected 0 without data.dev "
                     "(there is nothing to evaluate), found %lld", (long long)c->train.eval_every);
    if (!c->data.dev && c->train.early_stopping_patience > 0)
        return yfail(&r->src, cfg_at_key(train, "early_stopping_patience"), "train.early_stopping_patience",
                     "expected 0 without data.dev (early stopping watches the dev metric), found %d",
                     c->train.early_stopping_patience);
    bool regression = has_mse || c->student.num_labels == 1;
    ConfigMetric m = c->train.metric;
    if (regression && (m == CONFIG_METRIC_ACCURACY || m == CONFIG_METRIC_F1 || m == CONFIG_METRIC_MCC))
        return yfail(&r->src, cfg_at_key(train, "metric"), "train.metric", "expected pearson, spearman or loss for "
                     "a regression run, found %s", CONFIG_METRIC_NAMES[m]);
    if (!regression && has_hard && (m == CONFIG_METRIC_PEARSON || m == CONFIG_METRIC_SPEARMAN))
        return yfail(&r->src, cfg_at_key(train, "metric"), "train.metric", "expected accuracy, f1, mcc or loss "
                     "for a classification run (hard_ce), found %s", CONFIG_METRIC_NAMES[m]);
    return DISTILL_OK;
}

/* ------------------------------------------------------------------ entry points */

static Status decode(Rd *r, const YNode *root) {
    Config *c = r->cfg;
    if (!yis_null(root) && root->kind != YN_MAP) {
        char keys[256];
        cfg_list_names(TOP_KEYS, keys, sizeof keys);
        char exp[320];
        snprintf(exp, sizeof exp, "a mapping of sections (%s)", keys);
        return cfg_fail_found(r, root, "", exp);
    }
    if (cfg_check_keys(r, root, "", TOP_KEYS)) return DISTILL_ERR;
    RD_ENUM(r, root, "", "task", CONFIG_TASK_NAMES, c->task);
    RD_ENUM(r, root, "", "device", CONFIG_DEVICE_NAMES, c->device);
    RD_ENUM(r, root, "", "precision", CONFIG_PRECISION_NAMES, c->precision);
    if (rd_int(r, root, "", "threads", 0, 4096, false, &c->threads)) return DISTILL_ERR;
    if (rd_bool(r, root, "", "tf32", &c->tf32)) return DISTILL_ERR;
    char kp[160];
    const YNode *v;
    v = cfg_value_of(r, root, "", "run", kp, sizeof kp);
    if (rd_run(r, v)) return DISTILL_ERR;
    v = cfg_value_of(r, root, "", "teacher", kp, sizeof kp);
    if (rd_model(r, v, "teacher", true)) return DISTILL_ERR;
    if (rd_teachers(r, root) || rd_teacher_logits(r, root)) return DISTILL_ERR;
    v = cfg_value_of(r, root, "", "student", kp, sizeof kp);
    if (rd_model(r, v, "student", false)) return DISTILL_ERR;
    /* teacher.precision and student.precision override the top-level precision */
    for (int k = 1; k < c->n_teachers; k++) {
        ConfigModel *m = &c->more_teachers[k - 1];
        if (m->precision == CONFIG_AUTO) m->precision = c->precision;
    }
    if (c->teacher.precision == CONFIG_AUTO) c->teacher.precision = c->precision;
    if (c->student.precision == CONFIG_AUTO) c->student.precision = c->precision;
    v = cfg_value_of(r, root, "", "data", kp, sizeof kp);
    if (rd_data(r, v)) return DISTILL_ERR;
    v = cfg_value_of(r, root, "", "losses", kp, sizeof kp);
    bool staged = !yis_null(ymap_get(root, "stages", NULL));
    if (!staged && rd_losses(r, v, "losses", &c->losses, &c->n_losses)) return DISTILL_ERR;
    if (c->n_losses == 0 && !staged) {
        c->n_losses = 1;
        c->losses = xcalloc(1, sizeof *c->losses);
        c->losses[0] = loss_default(c->task == CONFIG_TASK_FINETUNE
                                        ? (c->student.num_labels == 1 ? LOSS_MSE : LOSS_HARD_CE)
                                        : LOSS_LOGITS_KD);
    }
    v = cfg_value_of(r, root, "", "optimizer", kp, sizeof kp);
    if (rd_optimizer(r, v, "optimizer", &c->optimizer)) return DISTILL_ERR;
    /* the stages read the optimizer and train lengths they inherit: first the top level's */
    const YNode *tv = cfg_value_of(r, root, "", "train", kp, sizeof kp);
    if (cfg_need_map(r, tv, "train", TRAIN_KEYS) || cfg_check_keys(r, tv, "train", TRAIN_KEYS)) return DISTILL_ERR;
    if (rd_int(r, tv, "train", "epochs", 0, 1000000, false, &c->train.epochs) ||
        rd_int64(r, tv, "train", "max_steps", 0, INT64_MAX, false, &c->train.max_steps))
        return DISTILL_ERR;
    if (rd_stages(r, root)) return DISTILL_ERR;
    bool regression = c->student.num_labels == 1;
    for (int s = 0; s < config_stage_count(c); s++) {
        ConfigStage tmp;
        const ConfigStage *st = config_stage(c, s, &tmp);
        for (int i = 0; i < st->n_losses; i++)
            regression |= loss_type_info(st->losses[i].type)->labels == LOSS_LABELS_REGRESSION;
    }
    if (rd_train(r, tv, regression)) return DISTILL_ERR;
    if (rd_resume(r, root)) return DISTILL_ERR;
    return check_combinations(r, root);
}

Status config_parse(const char *path, int n_overrides, char **overrides, Config *out) {
    config_defaults(out, path);
    Rd r = {.src = {.file = out->source, .n_over = n_overrides, .over = overrides}, .cfg = out};
    YNode *root = NULL;
    Status st = ytree_load_file(&r.src, &root);
    for (int i = 0; !st && i < n_overrides; i++) st = ytree_apply_override(&r.src, &root, i);
    if (!st) st = decode(&r, root);
    ytree_free(root);
    if (st) config_free(out);
    return st;
}

Status config_load(const char *path, int n_overrides, char **overrides, Config *out) {
    if (config_parse(path, n_overrides, overrides, out)) return DISTILL_ERR;
    if (config_check_paths(out)) {
        config_free(out);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

/* ------------------------------------------------------------------ stages */

int config_stage_count(const Config *cfg) { return cfg->n_stages > 0 ? cfg->n_stages : 1; }

const ConfigStage *config_stage(const Config *cfg, int s, ConfigStage *tmp) {
    if (cfg->n_stages > 0) return &cfg->stages[s];
    DCHECK(s == 0);
    *tmp = (ConfigStage){.name = (char *)"", .n_losses = cfg->n_losses, .losses = cfg->losses,
                         .optimizer = cfg->optimizer, .epochs = cfg->train.epochs, .max_steps = cfg->train.max_steps};
    return tmp;
}

/* ------------------------------------------------------------------ small helpers */

static void model_free(ConfigModel *m) {
    free(m->path);
    free(m->init_layers);
    free(m->name);
}

const ConfigModel *config_teacher(const Config *c, int k) {
    DCHECK(k >= 0 && k < (c->n_teachers > 0 ? c->n_teachers : 1));
    return k == 0 ? &c->teacher : &c->more_teachers[k - 1];
}

const char *config_teacher_key(const Config *c, int k, char *buf, size_t cap) {
    if (c->teacher_list) snprintf(buf, cap, "teachers[%d]", k);
    else snprintf(buf, cap, "teacher");
    return buf;
}

void config_free(Config *c) {
    if (!c) return;
    free(c->source);
    free(c->run.name);
    free(c->run.dir);
    model_free(&c->teacher);
    for (int k = 1; k < c->n_teachers; k++) model_free(&c->more_teachers[k - 1]);
    free(c->more_teachers);
    model_free(&c->student);
    free(c->data.train);
    free(c->data.dev);
    free(c->data.test);
    free(c->losses);
    for (int s = 0; s < c->n_stages; s++) {
        free(c->stages[s].name);
        free(c->stages[s].losses);
    }
    free(c->stages);
    free(c->resume_path);
    if (c->locations) {
        for (int i = 0; i < c->locations->n; i++) {
            free(c->locations->keys[i]);
            free(c->locations->where[i]);
        }
        free(c->locations->keys);
        free(c->locations->where);
        free(c->locations);
    }
    memset(c, 0, sizeof *c);
}
