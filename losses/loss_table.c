/*
 * loss_table.c — the one table of loss types (losses.h): per type its name, its one-line
 * definition, the config keys that apply, what it reads (logits, hidden states or attention; the
 * teacher; labels) and its defaults; the names of maps, targets and projections; default specs.
 *
 * Promise: this is the only place that lists the types. loss_set.c validates and resolves specs,
 * train/config.c reads and writes them, and tests/test_config.c checks configs/README.md, all by
 * walking this table, so adding a type is one row here plus its term in loss_forward.c and its
 * tests.
 */
#include "loss_set_internal.h"

#include <string.h>

const LossKeyInfo LOSS_KEYS[LOSS_KEY_COUNT] = {
    {"type", 0},
    {"name", 0},
    {"weight", 0},
    {"temperature", LOSS_KEY_TEMPERATURE},
    {"layers", LOSS_KEY_LAYERS},
    {"target", LOSS_KEY_TARGET},
    {"projection", LOSS_KEY_PROJECTION},
    {"teacher", LOSS_KEY_TEACHER},
};

#define KEYS_T LOSS_KEY_TEMPERATURE
#define KEYS_L LOSS_KEY_LAYERS
#define KEYS_TG LOSS_KEY_TARGET
#define KEYS_P LOSS_KEY_PROJECTION
#define KEYS_TE LOSS_KEY_TEACHER

static const LossTypeInfo TABLE[LOSS_TYPE_COUNT] = {
    /* name, definition (as configs/README.md shows it),
     * keys, reads, needs_teacher, labels, map, target, temperature */
    [LOSS_LOGITS_KD] = {"logits_kd",
        "T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)), mean over the batch (DistilBERT)",
        KEYS_T, LOSS_READS_LOGITS, true, LOSS_LABELS_NONE, LOSS_MAP_NONE, LOSS_TARGET_DEFAULT, 1.0f},
    [LOSS_LOGITS_CE] = {"logits_ce",
        "−Σ softmax(z_t/T)·log softmax(z_s/T), mean over the batch (TinyBERT's prediction loss)",
        KEYS_T, LOSS_READS_LOGITS, true, LOSS_LABELS_NONE, LOSS_MAP_NONE, LOSS_TARGET_DEFAULT, 1.0f},
    [LOSS_HARD_CE] = {"hard_ce",
        "cross-entropy with the gold labels",
        0, LOSS_READS_LOGITS, false, LOSS_LABELS_CLASS, LOSS_MAP_NONE, LOSS_TARGET_DEFAULT, 0.0f},
    [LOSS_HIDDEN_MSE] = {"hidden_mse",
        "MSE(projection(H_s), H_t) per mapped pair (TinyBERT L_hidn)",
        KEYS_L | KEYS_P | KEYS_TE, LOSS_READS_HIDDEN, true, LOSS_LABELS_NONE, LOSS_MAP_UNIFORM,
        LOSS_TARGET_DEFAULT, 0.0f},
    [LOSS_EMBEDDING_MSE] = {"embedding_mse",
        "the same on the embedding outputs, pair (0, 0) (TinyBERT L_embd)",
        KEYS_P | KEYS_TE, LOSS_READS_HIDDEN, true, LOSS_LABELS_NONE, LOSS_MAP_EMBEDDINGS,
        LOSS_TARGET_DEFAULT, 0.0f},
    [LOSS_ATTENTION_MSE] = {"attention_mse",
        "MSE of attention scores or probabilities per mapped pair, mean over heads (TinyBERT L_attn)",
        KEYS_L | KEYS_TG | KEYS_TE, LOSS_READS_ATTENTION, true, LOSS_LABELS_NONE, LOSS_MAP_UNIFORM,
        LOSS_TARGET_SCORES, 0.0f},
    [LOSS_ATTENTION_KL] = {"attention_kl",
        "KL(teacher ‖ student) of attention probability rows (MiniLM)",
        KEYS_L | KEYS_TE, LOSS_READS_ATTENTION, true, LOSS_LABELS_NONE, LOSS_MAP_UNIFORM, LOSS_TARGET_PROBS,
        0.0f},
    [LOSS_HIDDEN_COS] = {"hidden_cos",
        "1 − cos(projection(H_s), H_t) over the valid tokens (DistilBERT's cosine loss)",
        KEYS_L | KEYS_P | KEYS_TE, LOSS_READS_HIDDEN, true, LOSS_LABELS_NONE, LOSS_MAP_LAST,
        LOSS_TARGET_DEFAULT, 0.0f},
    [LOSS_MSE] = {"mse",
        "regression: mean of (z_s − label)² over the batch, the counterpart of `hard_ce` for "
        "`num_labels: 1`",
        0, LOSS_READS_LOGITS, false, LOSS_LABELS_REGRESSION, LOSS_MAP_NONE, LOSS_TARGET_DEFAULT,
        0.0f},
};

static const char *const MAP_NAMES[LOSS_MAP_COUNT] = {"none", "uniform", "last", "embeddings",
                                                      "explicit"};
static const char *const TARGET_NAMES[] = {"default", "scores", "probs"};
static const char *const PROJ_NAMES[] = {"auto", "per_pair", "shared", "none"};

const LossTypeInfo *loss_type_info(LossType t) {
    DCHECK((int)t >= 0 && t < LOSS_TYPE_COUNT);
    return &TABLE[t];
}

static const char *join_types(const bool *take, const char *last_sep, char *buf, size_t cap) {
    int idx[LOSS_TYPE_COUNT], n = 0;
    for (int t = 0; t < LOSS_TYPE_COUNT; t++)
        if (take[t]) idx[n++] = t;
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? last_sep : ", ";
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", sep, TABLE[idx[i]].name);
    }
    return buf;
}

const char *loss_type_list(LossTypeFilter keep, const char *last_sep, char *buf, size_t cap) {
    bool take[LOSS_TYPE_COUNT];
    for (int t = 0; t < LOSS_TYPE_COUNT; t++) take[t] = !keep || keep(&TABLE[t]);
    return join_types(take, last_sep, buf, cap);
}

const char *loss_types_taking(unsigned keys, const char *last_sep, char *buf, size_t cap) {
    bool take[LOSS_TYPE_COUNT];
    for (int t = 0; t < LOSS_TYPE_COUNT; t++) take[t] = (TABLE[t].keys & keys) == keys;
    return join_types(take, last_sep, buf, cap);
}

const char *loss_type_name(LossType t) {
    return (int)t >= 0 && t < LOSS_TYPE_COUNT ? TABLE[t].name : "unknown";
}

Status loss_type_parse(const char *s, LossType *out) {
    for (int i = 0; i < LOSS_TYPE_COUNT; i++)
        if (strcmp(s, TABLE[i].name) == 0) {
            *out = (LossType)i;
            return DISTILL_OK;
        }
    char names[256];
    distill_set_error("unknown loss type '%s': expected one of %s", s,
                      loss_type_list(NULL, ", ", names, sizeof names));
    return DISTILL_ERR;
}

const char *loss_map_name(LossMapKind m) {
    return (int)m >= 0 && m < LOSS_MAP_COUNT ? MAP_NAMES[m] : "unknown";
}

const char *loss_target_name(LossAttnTarget t) {
    return (int)t >= 0 && t <= LOSS_TARGET_PROBS ? TARGET_NAMES[t] : "unknown";
}

Status loss_target_parse(const char *s, LossAttnTarget *out) {
    for (int i = LOSS_TARGET_SCORES; i <= LOSS_TARGET_PROBS; i++)
        if (strcmp(s, TARGET_NAMES[i]) == 0) {
            *out = (LossAttnTarget)i;
            return DISTILL_OK;
        }
    distill_set_error("unknown attention target '%s': expected scores or probs", s);
    return DISTILL_ERR;
}

const char *loss_projection_name(LossProjection p) {
    return (int)p >= 0 && p <= LOSS_PROJ_NONE ? PROJ_NAMES[p] : "unknown";
}

Status loss_projection_parse(const char *s, LossProjection *out) {
    for (int i = 0; i <= LOSS_PROJ_NONE; i++)
        if (strcmp(s, PROJ_NAMES[i]) == 0) {
            *out = (LossProjection)i;
            return DISTILL_OK;
        }
    distill_set_error("unknown projection '%s': expected auto, per_pair, shared or none", s);
    return DISTILL_ERR;
}

LossSpec loss_spec_default(LossType type) {
    const LossTypeInfo *info = loss_type_info(type);
    LossSpec s;
    memset(&s, 0, sizeof s);
    s.type = type;
    s.weight = 1.0f;
    s.temperature = info->temperature;
    s.map = info->map;
    s.target = info->target;
    s.projection = LOSS_PROJ_AUTO;
    snprintf(s.name, sizeof s.name, "%s", info->name);
    return s;
}

float loss_spec_temperature(const LossSpec *spec, long step) {
    if (!(loss_type_info(spec->type)->keys & LOSS_KEY_TEMPERATURE)) return 1.0f;
    float t0 = spec->temperature > 0.0f ? spec->temperature : 1.0f;
    if (spec->temperature_steps <= 0) return t0;
    if (step <= 0) return t0;
    if (step >= spec->temperature_steps) return spec->temperature_end;
    double frac = (double)step / (double)spec->temperature_steps;
    return (float)((double)t0 + ((double)spec->temperature_end - (double)t0) * frac);
}
