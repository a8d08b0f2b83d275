/*
 * config_write.c — config_write_yaml: the resolved config as YAML through libyaml's emitter, every
 * key in the order configs/README.md documents them, defaults included, CONFIG_AUTO as `auto`.
 * Promise: config_parse of the output gives a Config equal to the input (strings that would read
 * as numbers, booleans or null are quoted; doubles are printed with the fewest digits that read
 * back to the same value).
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config_tree.h"

typedef struct W {
    yaml_emitter_t em;
    bool ok;
    bool teacher_list;      /* the config has `teachers:`: losses print their `teacher` */
} W;

static void emit(W *w, yaml_event_t *ev) {
    if (w->ok && !yaml_emitter_emit(&w->em, ev)) w->ok = false;
}

/* A scalar; `typed` scalars (numbers, booleans, null, auto) go out plain, strings are quoted when
 * plain text would read as something else. */
static void scalar(W *w, const char *text, bool typed) {
    yaml_event_t ev;
    bool plain_ok = typed || (text[0] && !ytext_is_typed(text));
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), plain_ok, 1,
                                 YAML_ANY_SCALAR_STYLE);
    emit(w, &ev);
}

static void key(W *w, const char *k) { scalar(w, k, false); }

static void map_begin(W *w, bool flow) {
    yaml_event_t ev;
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    emit(w, &ev);
}

static void map_end(W *w) {
    yaml_event_t ev;
    yaml_mapping_end_event_initialize(&ev);
    emit(w, &ev);
}

static void seq_begin(W *w, bool flow) {
    yaml_event_t ev;
    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    emit(w, &ev);
}

static void seq_end(W *w) {
    yaml_event_t ev;
    yaml_sequence_end_event_initialize(&ev);
    emit(w, &ev);
}

static void kv_str(W *w, const char *k, const char *v) {
    key(w, k);
    if (v) scalar(w, v, false);
    else scalar(w, "null", true);
}

static void kv_enum(W *w, const char *k, const char *const *names, int v) {
    key(w, k);
    scalar(w, names[v], false);
}

static void int_text(int64_t v, char *buf, size_t cap) { snprintf(buf, cap, "%lld", (long long)v); }

static void kv_int(W *w, const char *k, int64_t v, bool auto_ok) {
    char buf[32];
    key(w, k);
    if (auto_ok && v == CONFIG_AUTO) snprintf(buf, sizeof buf, "auto");
    else int_text(v, buf, sizeof buf);
    scalar(w, buf, true);
}

/* The shortest %g text that reads back as exactly v, with a '.' before any exponent ("1.0e-08"),
 * which YAML 1.1 readers such as PyYAML need to see a float. */
static void num_text(double v, char *buf, size_t cap) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    char *e = strchr(buf, 'e');
    if (e && !memchr(buf, '.', (size_t)(e - buf)) && strlen(buf) + 3 < cap) {
        memmove(e + 2, e, strlen(e) + 1);
        e[0] = '.';
        e[1] = '0';
    }
}

static void kv_num(W *w, const char *k, double v, bool auto_ok) {
    char buf[40];
    key(w, k);
    if (auto_ok && v == CONFIG_AUTO) snprintf(buf, sizeof buf, "auto");
    else num_text(v, buf, sizeof buf);
    scalar(w, buf, true);
}

static void kv_bool(W *w, const char *k, bool v) {
    key(w, k);
    scalar(w, v ? "true" : "false", true);
}

static void write_model(W *w, const char *name, const ConfigModel *m, bool teacher) {
    if (name) key(w, name); /* NULL: an entry of teachers: (with its name and weight) */
    if (m->init == CONFIG_INIT_NONE) {
        scalar(w, "null", true);
        return;
    }
    map_begin(w, false);
    if (!name) {
        kv_str(w, "name", m->name);
        kv_num(w, "weight", m->weight, false);
    }
    if (teacher && m->init == CONFIG_INIT_PATH) kv_str(w, "path", m->path);
    else kv_str(w, "init", m->init == CONFIG_INIT_RANDOM ? "random"
                         : m->init == CONFIG_INIT_TEACHER_LAYERS ? "teacher_layers" : m->path);
    if (m->init == CONFIG_INIT_TEACHER_LAYERS) {
        key(w, "layers");
        seq_begin(w, true);
        for (int i = 0; i < m->n_init_layers; i++) {
            char buf[32];
            int_text(m->init_layers[i], buf, sizeof buf);
            scalar(w, buf, true);
        }
        seq_end(w);
    } else {
        kv_int(w, "layers", m->layers, true);
    }
    kv_int(w, "hidden", m->hidden, true);
    kv_int(w, "heads", m->heads, true);
    kv_int(w, "intermediate", m->intermediate, true);
    kv_int(w, "max_position", m->max_position, true);
    kv_int(w, "vocab_size", m->vocab_size, true);
    kv_int(w, "type_vocab_size", m->type_vocab_size, true);
    kv_int(w, "num_labels", m->num_labels, true);
    if (!teacher) {
        kv_num(w, "dropout", m->dropout, true);
        kv_num(w, "attention_dropout", m->attention_dropout, true);
    }
    kv_num(w, "layer_norm_eps", m->layer_norm_eps, true);
    kv_num(w, "initializer_range", m->initializer_range, true);
    kv_enum(w, "precision", CONFIG_PRECISION_NAMES, m->precision);
    if (teacher) kv_enum(w, "cache", CONFIG_CACHE_NAMES, m->cache);
    map_end(w);
}

/* The shortest text that reads back as exactly the float v (weights and temperatures are float). */
static void float_text(float v, char *buf, size_t cap) {
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, cap, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    num_text(strtod(buf, NULL), buf, cap);
}

static void kv_float(W *w, const char *k, float v) {
    char buf[40];
    key(w, k);
    float_text(v, buf, sizeof buf);
    scalar(w, buf, true);
}

/* A loss entry: type, name, weight, then the keys its row of the loss table takes. */
static void write_optimizer(W *w, const ConfigOptimizer *o) {
    key(w, "optimizer");
    map_begin(w, false);
    kv_num(w, "lr", o->lr, false);
    kv_num(w, "weight_decay", o->weight_decay, false);
    kv_num(w, "beta1", o->beta1, false);
    kv_num(w, "beta2", o->beta2, false);
    kv_num(w, "eps", o->eps, false);
    kv_int(w, "warmup_steps", o->warmup_steps, false);
    kv_num(w, "warmup_ratio", o->warmup_ratio, false);
    kv_enum(w, "schedule", CONFIG_SCHEDULE_NAMES, o->schedule);
    kv_num(w, "max_grad_norm", o->max_grad_norm, false);
    map_end(w);
}

static void write_loss(W *w, const LossSpec *l) {
    const LossTypeInfo *info = loss_type_info(l->type);
    map_begin(w, true);
    kv_str(w, "type", info->name);
    kv_str(w, "name", l->name);
    kv_float(w, "weight", l->weight);
    if (info->keys & LOSS_KEY_TEMPERATURE) {
        if (l->temperature_steps > 0) {
            key(w, "temperature");
            map_begin(w, true);
            kv_float(w, "start", l->temperature);
            kv_float(w, "end", l->temperature_end);
            kv_int(w, "over", l->temperature_steps, false);
            map_end(w);
        } else {
            kv_float(w, "temperature", l->temperature);
        }
    }
    if (info->keys & LOSS_KEY_LAYERS) {
        if (l->map == LOSS_MAP_EXPLICIT) {
            key(w, "layers");
            seq_begin(w, true);
            for (int i = 0; i < l->n_pairs; i++) {
                char s[32], te[32];
                int_text(l->pairs[i].student, s, sizeof s);
                int_text(l->pairs[i].teacher, te, sizeof te);
                seq_begin(w, true);
                scalar(w, s, true);
                scalar(w, te, true);
                seq_end(w);
            }
            seq_end(w);
        } else {
            kv_str(w, "layers", loss_map_name(l->map));
        }
    }
    if (info->keys & LOSS_KEY_TARGET) kv_str(w, "target", loss_target_name(l->target));
    if (info->keys & LOSS_KEY_PROJECTION) kv_str(w, "projection", loss_projection_name(l->projection));
    if ((info->keys & LOSS_KEY_TEACHER) && w->teacher_list) kv_int(w, "teacher", l->teacher + 1, false);
    map_end(w);
}

Status config_write_yaml(const Config *c, FILE *f) {
    W w = {.ok = true};
    if (!yaml_emitter_initialize(&w.em)) {
        distill_set_error("config: expected to start the YAML emitter, found no memory");
        return DISTILL_ERR;
    }
    fprintf(f, "# distill config, resolved: every key with its value or default (configs/README.md)\n");
    fprintf(f, "# from: %s\n", c->source);
    yaml_emitter_set_output_file(&w.em, f);
    yaml_emitter_set_unicode(&w.em, 1);
    yaml_emitter_set_width(&w.em, 110);
    yaml_event_t ev;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    emit(&w, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    emit(&w, &ev);
    map_begin(&w, false);

    kv_enum(&w, "task", CONFIG_TASK_NAMES, c->task);
    key(&w, "run");
    map_begin(&w, false);
    kv_str(&w, "name", c->run.name);
    kv_str(&w, "dir", c->run.dir);
    kv_int(&w, "seed", (int64_t)c->run.seed, false);
    kv_bool(&w, "overwrite", c->run.overwrite);
    map_end(&w);
    kv_enum(&w, "device", CONFIG_DEVICE_NAMES, c->device);
    kv_enum(&w, "precision", CONFIG_PRECISION_NAMES, c->precision);
    kv_int(&w, "threads", c->threads, false);
    kv_bool(&w, "tf32", c->tf32);
    if (c->teacher_list) { /* several teachers: the list, and how their logits combine */
        w.teacher_list = true;
        key(&w, "teachers");
        seq_begin(&w, false);
        for (int k = 0; k < c->n_teachers; k++) write_model(&w, NULL, config_teacher(c, k), true);
        seq_end(&w);
        kv_enum(&w, "teacher_logits", CONFIG_TEACHER_LOGITS_NAMES, (int)c->teacher_logits);
    } else {
        write_model(&w, "teacher", &c->teacher, true);
    }
    write_model(&w, "student", &c->student, false);

    key(&w, "data");
    map_begin(&w, false);
    kv_str(&w, "train", c->data.train);
    kv_str(&w, "dev", c->data.dev);
    kv_str(&w, "test", c->data.test);
    kv_int(&w, "batch_size", c->data.batch_size, false);
    kv_int(&w, "eval_batch_size", c->data.eval_batch_size, false);
    kv_bool(&w, "shuffle", c->data.shuffle);
    kv_bool(&w, "drop_last", c->data.drop_last);
    kv_int(&w, "max_seq", c->data.max_seq, false);
    map_end(&w);

    if (c->n_stages == 0) { /* with stages:, each stage prints its own */
        key(&w, "losses");
        seq_begin(&w, false);
        for (int i = 0; i < c->n_losses; i++) write_loss(&w, &c->losses[i]);
        seq_end(&w);
    }

    write_optimizer(&w, &c->optimizer);

    const ConfigTrain *t = &c->train;
    key(&w, "train");
    map_begin(&w, false);
    kv_int(&w, "epochs", t->epochs, false);
    kv_int(&w, "max_steps", t->max_steps, false);
    kv_int(&w, "grad_accum", t->grad_accum, false);
    kv_int(&w, "eval_every", t->eval_every, false);
    kv_int(&w, "log_every", t->log_every, false);
    kv_int(&w, "checkpoint_every", t->checkpoint_every, false);
    kv_int(&w, "keep_last", t->keep_last, false);
    kv_enum(&w, "metric", CONFIG_METRIC_NAMES, t->metric);
    kv_bool(&w, "save_best", t->save_best);
    kv_int(&w, "early_stopping_patience", t->early_stopping_patience, false);
    kv_int(&w, "max_bad_steps", t->max_bad_steps, false);
    map_end(&w);

    /* stages: every one fully resolved (what it inherits written out), so the file loads alone */
    if (c->n_stages > 0) {
        key(&w, "stages");
        seq_begin(&w, false);
        for (int s = 0; s < c->n_stages; s++) {
            const ConfigStage *st = &c->stages[s];
            map_begin(&w, false);
            kv_str(&w, "name", st->name);
            key(&w, "losses");
            seq_begin(&w, false);
            for (int i = 0; i < st->n_losses; i++) write_loss(&w, &st->losses[i]);
            seq_end(&w);
            key(&w, "train");
            map_begin(&w, false);
            kv_int(&w, "epochs", st->epochs, false);
            kv_int(&w, "max_steps", st->max_steps, false);
            map_end(&w);
            write_optimizer(&w, &st->optimizer);
            map_end(&w);
        }
        seq_end(&w);
    }

    kv_str(&w, "resume", c->resume == CONFIG_RESUME_AUTO ? "auto"
                         : c->resume == CONFIG_RESUME_PATH ? c->resume_path : "none");

    map_end(&w);
    yaml_document_end_event_initialize(&ev, 1);
    emit(&w, &ev);
    yaml_stream_end_event_initialize(&ev);
    emit(&w, &ev);
    if (w.ok && !yaml_emitter_flush(&w.em)) w.ok = false;
    const char *problem = w.em.problem;
    Status st = DISTILL_OK;
    if (!w.ok || ferror(f) || fflush(f) != 0) {
        distill_set_error("%s: expected to write the resolved config, found %s", c->source,
                          problem ? problem : "a write error");
        st = DISTILL_ERR;
    }
    yaml_emitter_delete(&w.em);
    return st;
}

char *config_yaml_string(const Config *cfg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    DCHECK(f != NULL);
    Status st = config_write_yaml(cfg, f);
    fclose(f);
    if (st != DISTILL_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}
