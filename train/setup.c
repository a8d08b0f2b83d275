/* setup.c — teacher and student construction (see setup.h). */
#define _POSIX_C_SOURCE 200809L
#include "setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../checkpoints/ckpt.h"
#include "../checkpoints/hf.h"
#include "../losses/losses.h"

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

Status setup_load_path(const char *path, Device device, int num_labels, uint64_t seed, Bert **out) {
    *out = NULL;
    if (is_dir(path)) {
        HfLoadOptions opt = hf_load_defaults();
        opt.num_labels = num_labels;
        opt.seed = seed;
        return hf_load(path, device, &opt, out, NULL);
    }
    if (!ckpt_is_checkpoint(path)) {
        distill_set_error("%s: expected a Hugging Face folder (config.json + model.safetensors) or a "
                          "distill checkpoint (.h5), found neither", path);
        return DISTILL_ERR;
    }
    TrainCheckpoint ck;
    if (ckpt_load_model_only(path, device, &ck) != DISTILL_OK) return DISTILL_ERR;
    Bert *m = ck.student;
    ck.student = NULL;
    ckpt_free(&ck);
    if (num_labels >= 0 && num_labels != m->cfg.num_labels) {
        distill_set_error("%s: the checkpoint's classifier has %d outputs, the run needs %d", path,
                          m->cfg.num_labels, num_labels);
        bert_free(m);
        return DISTILL_ERR;
    }
    *out = m;
    return DISTILL_OK;
}

static BertConfig shape_config(const ConfigModel *cm, const SetupData *data) {
    BertConfig c = bert_config_default();
    c.num_hidden_layers = cm->layers;
    c.hidden_size = cm->hidden;
    c.num_attention_heads = cm->heads;
    c.intermediate_size = cm->intermediate;
    if (cm->max_position > 0) c.max_position_embeddings = cm->max_position;
    if (cm->type_vocab_size > 0) c.type_vocab_size = cm->type_vocab_size;
    c.vocab_size = cm->vocab_size > 0 ? cm->vocab_size : data->vocab_size;
    c.num_labels = cm->num_labels >= 0 ? cm->num_labels : data->num_labels;
    if (c.num_labels == 1) snprintf(c.problem_type, sizeof c.problem_type, "regression");
    else if (c.num_labels >= 2) snprintf(c.problem_type, sizeof c.problem_type, "single_label_classification");
    if (cm->layer_norm_eps > 0) c.layer_norm_eps = (float)cm->layer_norm_eps;
    if (cm->initializer_range > 0) c.initializer_range = (float)cm->initializer_range;
    if (data->label_names && c.num_labels == data->num_labels && c.num_labels <= BERT_MAX_LABELS)
        for (int i = 0; i < c.num_labels; i++) c.id2label[i] = xstrdup(data->label_names[i]);
    return c;
}

static void apply_dropout(Bert *m, const ConfigModel *cm) {
    if (cm->dropout >= 0) m->cfg.hidden_dropout_prob = (float)cm->dropout;
    if (cm->attention_dropout >= 0) m->cfg.attention_probs_dropout_prob = (float)cm->attention_dropout;
}

Status setup_teacher(const Config *cfg, Device device, const SetupData *data, Bert **out) {
    return setup_teacher_at(cfg, 0, device, data, out);
}

Status setup_teacher_at(const Config *cfg, int k, Device device, const SetupData *data, Bert **out) {
    *out = NULL;
    const ConfigModel *cm = config_teacher(cfg, k);
    if (cm->init == CONFIG_INIT_NONE) return DISTILL_OK;
    if (cm->init == CONFIG_INIT_PATH) {
        if (setup_load_path(cm->path, device, cm->num_labels >= 0 ? cm->num_labels : -1, cfg->run.seed,
                            out) != DISTILL_OK) {
            char msg[1200], sec[32], key[64];
            snprintf(key, sizeof key, "%s.path", config_teacher_key(cfg, k, sec, sizeof sec));
            snprintf(msg, sizeof msg, "%s: %s: %s", config_where(cfg, key), key, distill_error());
            distill_set_error("%s", msg);
            return DISTILL_ERR;
        }
        return DISTILL_OK;
    }
    BertConfig c = shape_config(cm, data);
    Bert *m = bert_build(&c, device);
    bert_config_free_labels(&c);
    bert_init(m, (cfg->run.seed ^ 0x7EAC4E2ull) + (uint64_t)k * 0x9E3779B97F4A7C15ull);
    *out = m;
    return DISTILL_OK;
}

/* Copies every student parameter from the teacher tensor of the same name, with student encoder
 * layer i taken from teacher layer layers[i] (1-based). */
static Status copy_teacher_layers(Bert *s, const Bert *t, const int *layers) {
    for (int i = 0; i < s->params->n; i++) {
        Tensor *dst = s->params->tensors[i];
        char name[256];
        const char *p = strstr(dst->name, "encoder.layer.");
        if (p) {
            int li = atoi(p + strlen("encoder.layer."));
            const char *rest = strchr(p + strlen("encoder.layer."), '.');
            snprintf(name, sizeof name, "%.*sencoder.layer.%d%s", (int)(p - dst->name), dst->name,
                     layers[li] - 1, rest);
        } else {
            snprintf(name, sizeof name, "%s", dst->name);
        }
        Tensor *src = params_find(t->params, name);
        if (!src) {
            /* A pooler or classifier the teacher lacks keeps its fresh initialisation. */
            if (strstr(dst->name, "pooler") || strstr(dst->name, "classifier")) continue;
            distill_set_error("student.init: the teacher has no tensor %s", name);
            return DISTILL_ERR;
        }
        if (!tensor_same_shape(src, dst)) {
            char a[64], b[64];
            distill_set_error("student.init: %s is %s in the teacher but %s in the student", name,
                              tensor_shape_str(src, a, sizeof a), tensor_shape_str(dst, b, sizeof b));
            return DISTILL_ERR;
        }
        params_buffer_copy(s->params, dst->data, t->params, src->data, dst->numel);
    }
    return DISTILL_OK;
}

Status setup_student(const Config *cfg, Device device, const SetupData *data, const Bert *teacher,
                     Bert **out) {
    *out = NULL;
    const ConfigModel *cm = &cfg->student;
    Bert *m = NULL;
    if (cm->init == CONFIG_INIT_PATH) {
        int nl = cm->num_labels >= 0 ? cm->num_labels : (data->num_labels > 0 ? data->num_labels : -1);
        if (setup_load_path(cm->path, device, nl, cfg->run.seed, &m) != DISTILL_OK) {
            char msg[1200];
            snprintf(msg, sizeof msg, "%s: student.init: %s", config_where(cfg, "student.init"), distill_error());
            distill_set_error("%s", msg);
            return DISTILL_ERR;
        }
        /* Label names from the data replace generic LABEL_i ones. */
        if (data->label_names && m->cfg.num_labels == data->num_labels && m->cfg.num_labels <= BERT_MAX_LABELS)
            for (int i = 0; i < m->cfg.num_labels; i++) {
                free(m->cfg.id2label[i]);
                m->cfg.id2label[i] = xstrdup(data->label_names[i]);
            }
    } else if (cm->init == CONFIG_INIT_TEACHER_LAYERS) {
        if (!teacher) {
            distill_set_error("%s: student.init: teacher_layers needs a teacher", config_where(cfg, "student.init"));
            return DISTILL_ERR;
        }
        BertConfig c = teacher->cfg;
        memset(c.id2label, 0, sizeof c.id2label);
        c.num_hidden_layers = cm->n_init_layers;
        for (int i = 0; i < cm->n_init_layers; i++)
            if (cm->init_layers[i] < 1 || cm->init_layers[i] > teacher->cfg.num_hidden_layers) {
                distill_set_error("%s: student.init: teacher layer %d does not exist (the teacher has %d)",
                                  config_where(cfg, "student.init"), cm->init_layers[i],
                                  teacher->cfg.num_hidden_layers);
                return DISTILL_ERR;
            }
        if (cm->num_labels >= 0) c.num_labels = cm->num_labels;
        else if (data->num_labels > 0) c.num_labels = data->num_labels;
        if (data->label_names && c.num_labels == data->num_labels && c.num_labels <= BERT_MAX_LABELS)
            for (int i = 0; i < c.num_labels; i++) c.id2label[i] = xstrdup(data->label_names[i]);
        else
            for (int i = 0; i < c.num_labels && i < BERT_MAX_LABELS; i++)
                if (teacher->cfg.id2label[i]) c.id2label[i] = xstrdup(teacher->cfg.id2label[i]);
        m = bert_build(&c, device);
        bert_config_free_labels(&c);
        bert_init(m, cfg->run.seed);
        if (copy_teacher_layers(m, teacher, cm->init_layers) != DISTILL_OK) {
            bert_free(m);
            return DISTILL_ERR;
        }
    } else {
        BertConfig c = shape_config(cm, data);
        m = bert_build(&c, device);
        bert_config_free_labels(&c);
        bert_init(m, cfg->run.seed);
    }
    apply_dropout(m, cm);
    *out = m;
    return DISTILL_OK;
}

ConfigModelFacts setup_facts(const Bert *m) {
    ConfigModelFacts f;
    f.layers = m->cfg.num_hidden_layers;
    f.hidden = m->cfg.hidden_size;
    f.heads = m->cfg.num_attention_heads;
    f.intermediate = m->cfg.intermediate_size;
    f.max_position = m->cfg.max_position_embeddings;
    f.vocab_size = m->cfg.vocab_size;
    f.type_vocab_size = m->cfg.type_vocab_size;
    f.num_labels = m->cfg.num_labels;
    return f;
}
