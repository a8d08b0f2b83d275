/*
 * config_read.c — typed reads from the located YAML tree (config_read.h): integers, numbers,
 * booleans, strings and enums with their ranges, unknown keys with a "did you mean" from the names
 * users bring from Hugging Face, TinyBERT and habit, and the location of every key read.
 */
#define _POSIX_C_SOURCE 200809L
#include "config_read.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names users bring from Hugging Face's Trainer/BertConfig, TinyBERT's scripts or habit. */
static const struct { const char *found, *meant; } SYNONYMS[] = {
    {"learning_rate", "lr"}, {"num_train_epochs", "epochs"}, {"num_epochs", "epochs"},
    {"gradient_accumulation_steps", "grad_accum"}, {"per_device_train_batch_size", "batch_size"},
    {"train_batch_size", "batch_size"}, {"per_device_eval_batch_size", "eval_batch_size"},
    {"eval_steps", "eval_every"}, {"logging_steps", "log_every"}, {"save_steps", "checkpoint_every"},
    {"save_total_limit", "keep_last"}, {"adam_beta1", "beta1"}, {"adam_beta2", "beta2"},
    {"adam_epsilon", "eps"}, {"lr_scheduler_type", "schedule"}, {"metric_for_best_model", "metric"},
    {"num_hidden_layers", "layers"}, {"hidden_size", "hidden"}, {"num_attention_heads", "heads"},
    {"intermediate_size", "intermediate"}, {"max_position_embeddings", "max_position"},
    {"hidden_dropout_prob", "dropout"}, {"attention_probs_dropout_prob", "attention_dropout"},
    {"max_seq_length", "max_seq"}, {"max_length", "max_seq"}, {"output_dir", "dir"},
    {"T", "temperature"}, {"temp", "temperature"}, {"loss", "type"}, {"kind", "type"},
    {"model_name_or_path", "init"}, {"path", "init"}, {"weights", "init"}, {"checkpoint", "path"},
    {"clip_grad_norm", "max_grad_norm"}, {"grad_clip", "max_grad_norm"}, {"warmup", "warmup_steps"},
    {"patience", "early_stopping_patience"}, {"seed", "run.seed"}, {"lr", "optimizer.lr"},
    {"batch_size", "data.batch_size"}, {"epochs", "train.epochs"}, {"max_steps", "train.max_steps"},
    {"resume_from_checkpoint", "resume"}, {"bf16", "precision"}, {"fp16", "precision"},
    {"steps", "over"}, {"from", "start"}, {"to", "end"},
    {NULL, NULL},
};


/* ------------------------------------------------------------------ locations */

void cfg_loc_add(Rd *r, const char *key, const YNode *at) {
    struct ConfigLocations *l = r->cfg->locations;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->keys = xrealloc(l->keys, (size_t)l->cap * sizeof *l->keys);
        l->where = xrealloc(l->where, (size_t)l->cap * sizeof *l->where);
    }
    char where[160];
    ywhere(&r->src, at, where, sizeof where);
    l->keys[l->n] = xstrdup(key);
    l->where[l->n] = xstrdup(where);
    l->n++;
}

/* The node a message about `key` in `map` should point at: the value, else the key, else the map. */
const YNode *cfg_at_key(const YNode *map, const char *key) {
    const YNode *kn;
    const YNode *v = ymap_get(map, key, &kn);
    return v ? v : kn ? kn : map;
}

void cfg_join(char *buf, size_t cap, const char *sec, const char *key) {
    snprintf(buf, cap, "%s%s%s", sec, sec[0] ? "." : "", key);
}

/* ------------------------------------------------------------------ readers
 * Each reads map[key] into *out: an absent or null value keeps *out (the default). On success the
 * key's location is recorded. */

Status cfg_fail_found(Rd *r, const YNode *at, const char *key, const char *expected) {
    char found[96];
    ydescribe(at, found, sizeof found);
    return yfail(&r->src, at, key, "expected %s, found %s", expected, found);
}

const YNode *cfg_value_of(Rd *r, const YNode *map, const char *sec, const char *key, char *kp, size_t cap) {
    cfg_join(kp, cap, sec, key);
    const YNode *kn;
    const YNode *v = ymap_get(map, key, &kn);
    if (kn) cfg_loc_add(r, kp, v && !yis_null(v) ? v : kn);
    return yis_null(v) ? NULL : v;
}

Status rd_int64(Rd *r, const YNode *map, const char *sec, const char *key, int64_t lo, int64_t hi,
                       bool auto_ok, int64_t *out) {
    char kp[160];
    const YNode *v = cfg_value_of(r, map, sec, key, kp, sizeof kp);
    if (!v) return DISTILL_OK;
    int64_t x;
    if (auto_ok && v->kind == YN_SCALAR && !strcmp(v->text, "auto")) {
        *out = CONFIG_AUTO;
        return DISTILL_OK;
    }
    if (yscalar_int(v, &x) && x >= lo && x <= hi) {
        *out = x;
        return DISTILL_OK;
    }
    char exp[96];
    if (hi >= INT32_MAX) snprintf(exp, sizeof exp, "an integer >= %lld%s", (long long)lo, auto_ok ? " or auto" : "");
    else snprintf(exp, sizeof exp, "an integer in [%lld, %lld]%s", (long long)lo, (long long)hi, auto_ok ? " or auto" : "");
    return cfg_fail_found(r, v, kp, exp);
}

Status rd_int(Rd *r, const YNode *map, const char *sec, const char *key, int lo, int hi, bool auto_ok,
                     int *out) {
    int64_t x = *out;
    if (rd_int64(r, map, sec, key, lo, hi, auto_ok, &x)) return DISTILL_ERR;
    *out = (int)x;
    return DISTILL_OK;
}

/* A number in the interval lo..hi; *_open excludes the end; hi = INFINITY for no upper bound. */
Status rd_num(Rd *r, const YNode *map, const char *sec, const char *key, double lo, bool lo_open,
                     double hi, bool hi_open, bool auto_ok, double *out) {
    char kp[160];
    const YNode *v = cfg_value_of(r, map, sec, key, kp, sizeof kp);
    if (!v) return DISTILL_OK;
    if (auto_ok && v->kind == YN_SCALAR && !strcmp(v->text, "auto")) {
        *out = CONFIG_AUTO;
        return DISTILL_OK;
    }
    double x;
    if (yscalar_num(v, &x) && (lo_open ? x > lo : x >= lo) && (isinf(hi) || (hi_open ? x < hi : x <= hi))) {
        *out = x;
        return DISTILL_OK;
    }
    char exp[96];
    if (isinf(hi)) snprintf(exp, sizeof exp, "a number %s %g%s", lo_open ? ">" : ">=", lo, auto_ok ? " or auto" : "");
    else snprintf(exp, sizeof exp, "a number in %c%g, %g%c%s", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']',
                  auto_ok ? " or auto" : "");
    return cfg_fail_found(r, v, kp, exp);
}

Status rd_bool(Rd *r, const YNode *map, const char *sec, const char *key, bool *out) {
    char kp[160];
    const YNode *v = cfg_value_of(r, map, sec, key, kp, sizeof kp);
    if (!v || yscalar_bool(v, out)) return DISTILL_OK;
    return cfg_fail_found(r, v, kp, "true or false");
}

/* Any non-empty scalar, as text (paths, names). *out is replaced (freed first). */
Status rd_str(Rd *r, const YNode *map, const char *sec, const char *key, const char *what, char **out) {
    char kp[160];
    const YNode *v = cfg_value_of(r, map, sec, key, kp, sizeof kp);
    if (!v) return DISTILL_OK;
    if (v->kind != YN_SCALAR || !v->text[0]) return cfg_fail_found(r, v, kp, what);
    free(*out);
    *out = xstrdup(v->text);
    return DISTILL_OK;
}

void cfg_list_names(const char *const *names, char *buf, size_t cap) {
    size_t n = 0, len = 0;
    while (names[n]) n++;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? (n == 2 ? " or " : ", or ") : ", ";
        len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s%s", sep, names[i]);
        if (len >= cap) break;
    }
}

/* Values users bring from habit, for the suggestion when one of them is not accepted. */
static const struct { const char *found, *meant; } ENUM_SYNONYMS[] = {
    {"gpu", "cuda"}, {"float32", "fp32"}, {"bfloat16", "bf16"}, {"fp16", "bf16"}, {"cos", "cosine"},
    {"acc", "accuracy"}, {"matthews", "mcc"}, {"eval_loss", "loss"}, {"kd", "logits_kd"},
    {"ce", "hard_ce"}, {"cross_entropy", "hard_ce"}, {"mse_regression", "mse"},
    {"attention", "attention_mse"}, {"hidden", "hidden_mse"}, {"cosine", "hidden_cos"},
    {"probabilities", "probs"}, {"logits", "scores"}, {NULL, NULL},
};

Status cfg_fail_enum(Rd *r, const YNode *v, const char *kp, const char *const *names) {
    char exp[256], found[96];
    cfg_list_names(names, exp, sizeof exp);
    ydescribe(v, found, sizeof found);
    const char *guess = NULL;
    for (int i = 0; v->kind == YN_SCALAR && ENUM_SYNONYMS[i].found && !guess; i++)
        if (!strcmp(v->text, ENUM_SYNONYMS[i].found))
            for (int j = 0; names[j]; j++)
                if (!strcmp(names[j], ENUM_SYNONYMS[i].meant)) guess = names[j];
    if (!guess && v->kind == YN_SCALAR) guess = yclosest(v->text, names);
    if (guess) return yfail(&r->src, v, kp, "expected %s, found %s (did you mean '%s'?)", exp, found, guess);
    return yfail(&r->src, v, kp, "expected %s, found %s", exp, found);
}

Status rd_enum(Rd *r, const YNode *map, const char *sec, const char *key, const char *const *names,
                      int *out) {
    char kp[160];
    const YNode *v = cfg_value_of(r, map, sec, key, kp, sizeof kp);
    if (!v) return DISTILL_OK;
    if (v->kind == YN_SCALAR)
        for (int i = 0; names[i]; i++)
            if (!strcmp(v->text, names[i])) {
                *out = i;
                return DISTILL_OK;
            }
    return cfg_fail_enum(r, v, kp, names);
}


/* A mapping (or null): anything else is rejected, naming the keys it may hold. */
Status cfg_need_map(Rd *r, const YNode *v, const char *key, const char *const *known) {
    if (yis_null(v) || v->kind == YN_MAP) return DISTILL_OK;
    char exp[512], keys[448];
    cfg_list_names(known, keys, sizeof keys);
    snprintf(exp, sizeof exp, "a mapping of %s", keys);
    return cfg_fail_found(r, v, key, exp);
}

/* Rejects keys of `map` (section key path `sec`) that are not in `known`, suggesting one. */
Status cfg_check_keys(Rd *r, const YNode *map, const char *sec, const char *const *known) {
    if (yis_null(map)) return DISTILL_OK;
    for (int i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->text;
        bool ok = false;
        for (int j = 0; known[j] && !ok; j++) ok = !strcmp(k, known[j]);
        if (ok) continue;
        const char *guess = NULL;
        for (int j = 0; SYNONYMS[j].found && !guess; j++)
            if (!strcmp(k, SYNONYMS[j].found)) {
                /* a synonym whose meaning lives in this section, or a key of another section */
                const char *m = SYNONYMS[j].meant;
                bool here = false;
                for (int q = 0; known[q] && !here; q++) here = !strcmp(m, known[q]);
                if (here || strchr(m, '.')) guess = m;
            }
        if (!guess) guess = yclosest(k, known);
        char kp[160], keys[448], shown[72];
        cfg_join(kp, sizeof kp, sec, k);
        cfg_list_names(known, keys, sizeof keys);
        snprintf(shown, sizeof shown, "%.60s", k);
        if (guess)
            return yfail(&r->src, map->keys[i], kp, "expected a key of %s (%s), found unknown key '%s' "
                         "(did you mean '%s'?)", sec[0] ? sec : "the config", keys, shown, guess);
        return yfail(&r->src, map->keys[i], kp, "expected a key of %s (%s), found unknown key '%s'",
                     sec[0] ? sec : "the config", keys, shown);
    }
    return DISTILL_OK;
}

/* A number that a float holds (weights and temperatures are float in LossSpec). */
Status rd_float(Rd *r, const YNode *map, const char *sec, const char *key, double lo, bool lo_open,
                       float *out) {
    double x = *out;
    if (rd_num(r, map, sec, key, lo, lo_open, INFINITY, false, false, &x)) return DISTILL_ERR;
    if (x > FLT_MAX || (lo_open && (float)x <= (float)lo)) { /* beyond a float, or rounds to the bound */
        char kp[160], exp[96];
        cfg_join(kp, sizeof kp, sec, key);
        snprintf(exp, sizeof exp, "a number %s %g that a float holds (magnitude %g to %g)", lo_open ? ">" : ">=",
                 lo, FLT_MIN, FLT_MAX);
        return cfg_fail_found(r, cfg_at_key(map, key), kp, exp);
    }
    *out = (float)x;
    return DISTILL_OK;
}

