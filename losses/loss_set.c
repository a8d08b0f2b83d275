/*
 * loss_set.c — names and parsing of loss types, validation of LossSpecs against the student and
 * teacher configs, layer maps, projections (declared, allocated, initialised), forward requests.
 *
 * Promise: loss_set_build either returns a complete set or DISTILL_ERR with a message that names
 * the term and says what was expected and what was found, and allocates nothing that survives.
 * The forward (loss_forward.c) can then trust every index and width it reads from the set.
 */
#include "loss_set_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/rng.h"

static const char *const TYPE_NAMES[LOSS_TYPE_COUNT] = {
    "logits_kd", "logits_ce", "hard_ce", "mse_regression", "hidden_mse",
    "embedding_mse", "attention_mse", "attention_kl", "hidden_cos",
};
static const char *const TARGET_NAMES[] = {"default", "scores", "probs"};
static const char *const PROJ_NAMES[] = {"auto", "none", "per_pair", "shared"};

const char *loss_type_name(LossType t) {
    return (int)t >= 0 && t < LOSS_TYPE_COUNT ? TYPE_NAMES[t] : "unknown";
}

Status loss_type_parse(const char *s, LossType *out) {
    for (int i = 0; i < LOSS_TYPE_COUNT; i++)
        if (strcmp(s, TYPE_NAMES[i]) == 0) {
            *out = (LossType)i;
            return DISTILL_OK;
        }
    distill_set_error("unknown loss type '%s': expected one of logits_kd, logits_ce, hard_ce, "
                      "mse_regression, hidden_mse, embedding_mse, attention_mse, attention_kl, "
                      "hidden_cos", s);
    return DISTILL_ERR;
}

const char *loss_target_name(LossAttnTarget t) {
    return (int)t >= 0 && t <= LOSS_TARGET_PROBS ? TARGET_NAMES[t] : "unknown";
}

Status loss_target_parse(const char *s, LossAttnTarget *out) {
    if (strcmp(s, "scores") == 0) *out = LOSS_TARGET_SCORES;
    else if (strcmp(s, "probs") == 0) *out = LOSS_TARGET_PROBS;
    else {
        distill_set_error("unknown attention target '%s': expected scores or probs", s);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

const char *loss_projection_name(LossProjection p) {
    return (int)p >= 0 && p <= LOSS_PROJ_SHARED ? PROJ_NAMES[p] : "unknown";
}

Status loss_projection_parse(const char *s, LossProjection *out) {
    for (int i = 0; i <= LOSS_PROJ_SHARED; i++)
        if (strcmp(s, PROJ_NAMES[i]) == 0) {
            *out = (LossProjection)i;
            return DISTILL_OK;
        }
    distill_set_error("unknown projection '%s': expected auto, none, per_pair or shared", s);
    return DISTILL_ERR;
}

LossSpec loss_spec_default(LossType type) {
    LossSpec s;
    memset(&s, 0, sizeof s);
    s.type = type;
    s.weight = 1.0f;
    s.map = LOSS_MAP_UNIFORM;
    s.target = LOSS_TARGET_DEFAULT;
    s.projection = LOSS_PROJ_AUTO;
    return s;
}

float loss_spec_temperature(const LossSpec *spec, long step) {
    if (!loss_is_logits(spec->type)) return 1.0f;
    float t0 = spec->temperature > 0.0f ? spec->temperature : 1.0f;
    if (spec->temperature_steps <= 0) return t0;
    if (step <= 0) return t0;
    if (step >= spec->temperature_steps) return spec->temperature_end;
    double frac = (double)step / (double)spec->temperature_steps;
    return (float)((double)t0 + ((double)spec->temperature_end - (double)t0) * frac);
}

/* ------------------------------------------------------------------ validation */

/* Sets "losses[i] (name): <message>" and returns DISTILL_ERR. */
static Status term_error(int i, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static Status term_error(int i, const char *name, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    distill_set_error("losses[%d] (%s): %s", i, name, msg);
    return DISTILL_ERR;
}

static bool valid_name(const char *s) {
    if (!s[0]) return false;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

/* Resolves name, temperature and target of spec i in place; checks everything that needs only
 * the spec itself and the two configs. */
static Status validate_term(int i, LossSpec *s, const BertConfig *st, const BertConfig *te) {
    if ((int)s->type < 0 || s->type >= LOSS_TYPE_COUNT) {
        distill_set_error("losses[%d]: unknown loss type %d", i, (int)s->type);
        return DISTILL_ERR;
    }
    const char *tname = loss_type_name(s->type);
    if (memchr(s->name, '\0', LOSS_NAME_MAX) == NULL)
        return term_error(i, tname, "name is longer than %d characters", LOSS_NAME_MAX - 1);
    if (!s->name[0]) snprintf(s->name, LOSS_NAME_MAX, "%s", tname);
    if (!valid_name(s->name))
        return term_error(i, tname, "name '%s' may hold only letters, digits, '_' and '-'",
                          s->name);
    const char *nm = s->name;
    LossType t = s->type;

    if (!isfinite(s->weight) || s->weight < 0.0f)
        return term_error(i, nm, "weight must be a finite number >= 0, found %g", s->weight);
    if (!loss_is_label(t) && te == NULL)
        return term_error(i, nm, "needs a teacher, but none is configured");

    /* temperature */
    if (loss_is_logits(t)) {
        if (s->temperature == 0.0f) s->temperature = 1.0f;
        if (!isfinite(s->temperature) || s->temperature < 0.0f)
            return term_error(i, nm, "temperature must be a finite number > 0, found %g",
                              s->temperature);
        if (s->temperature_steps < 0)
            return term_error(i, nm, "temperature_steps must be >= 0, found %ld",
                              s->temperature_steps);
        if (s->temperature_steps == 0) {
            if (s->temperature_end != 0.0f && s->temperature_end != s->temperature)
                return term_error(i, nm, "temperature_end %g is given but temperature_steps is 0 "
                                  "(a constant temperature); set temperature_steps > 0 for a "
                                  "schedule", s->temperature_end);
            s->temperature_end = s->temperature;
        } else if (!isfinite(s->temperature_end) || s->temperature_end <= 0.0f) {
            return term_error(i, nm, "temperature_end must be a finite number > 0 with a "
                              "schedule (temperature_steps %ld), found %g", s->temperature_steps,
                              s->temperature_end);
        }
    } else if (s->temperature != 0.0f || s->temperature_end != 0.0f || s->temperature_steps != 0) {
        return term_error(i, nm, "temperature applies only to logits_kd and logits_ce");
    }

    /* target */
    if (t == LOSS_ATTENTION_MSE) {
        if (s->target == LOSS_TARGET_DEFAULT) s->target = LOSS_TARGET_SCORES;
    } else if (t == LOSS_ATTENTION_KL) {
        if (s->target == LOSS_TARGET_SCORES)
            return term_error(i, nm, "attention_kl compares probability rows: target must be "
                              "probs, found scores (use attention_mse for scores)");
        s->target = LOSS_TARGET_PROBS;
    } else if (s->target != LOSS_TARGET_DEFAULT) {
        return term_error(i, nm, "target applies only to attention_mse and attention_kl, "
                          "found target %s", loss_target_name(s->target));
    }
    if ((int)s->target < 0 || s->target > LOSS_TARGET_PROBS)
        return term_error(i, nm, "unknown attention target %d", (int)s->target);

    /* projection */
    if ((int)s->projection < 0 || s->projection > LOSS_PROJ_SHARED)
        return term_error(i, nm, "unknown projection %d", (int)s->projection);
    if (!loss_is_hidden(t) && s->projection != LOSS_PROJ_AUTO)
        return term_error(i, nm, "projection applies only to hidden_mse, embedding_mse and "
                          "hidden_cos, found projection %s", loss_projection_name(s->projection));
    if (loss_is_hidden(t) && s->projection == LOSS_PROJ_NONE &&
        st->hidden_size != te->hidden_size)
        return term_error(i, nm, "student width %d differs from teacher width %d and projection "
                          "is none: expected projection auto, per_pair or shared",
                          st->hidden_size, te->hidden_size);

    /* heads, labels */
    if (loss_is_attention(t) && st->num_attention_heads != te->num_attention_heads)
        return term_error(i, nm, "head counts must match for attention losses: the student has "
                          "%d heads, the teacher %d", st->num_attention_heads,
                          te->num_attention_heads);
    if (loss_is_logits(t) || t == LOSS_HARD_CE) {
        if (st->num_labels < 2)
            return term_error(i, nm, "needs a classifier with at least 2 labels, found student "
                              "num_labels %d", st->num_labels);
    }
    if (loss_is_logits(t) && te->num_labels != st->num_labels)
        return term_error(i, nm, "student and teacher must have the same number of labels, found "
                          "student %d, teacher %d", st->num_labels, te->num_labels);
    if (t == LOSS_MSE_REGRESSION && st->num_labels < 1)
        return term_error(i, nm, "needs a regression head (num_labels >= 1), found student "
                          "num_labels %d", st->num_labels);

    /* layer map */
    if ((int)s->map < 0 || s->map > LOSS_MAP_EXPLICIT)
        return term_error(i, nm, "unknown layer map kind %d", (int)s->map);
    bool takes_map = loss_is_hidden(t) || loss_is_attention(t);
    if (s->map == LOSS_MAP_UNIFORM && s->n_pairs != 0)
        return term_error(i, nm, "%d layer pairs are given with a uniform map", s->n_pairs);
    if (s->map == LOSS_MAP_EXPLICIT) {
        if (!takes_map)
            return term_error(i, nm, "takes no layer map (it reads only logits and labels)");
        if (t == LOSS_EMBEDDING_MSE)
            return term_error(i, nm, "always compares the embedding outputs (layer 0 with layer "
                              "0): remove its layer map, or use hidden_mse with pair [0, 0]");
        if (s->n_pairs < 1 || s->n_pairs > LOSS_MAX_PAIRS)
            return term_error(i, nm, "an explicit layer map needs 1 to %d pairs, found %d",
                              LOSS_MAX_PAIRS, s->n_pairs);
        int M = st->num_hidden_layers, N = te->num_hidden_layers;
        int lo = loss_is_attention(t) ? 1 : 0;
        const char *what = loss_is_attention(t) ? "attention losses take encoder layers"
                                                : "hidden states are numbered (0 = embeddings)";
        for (int p = 0; p < s->n_pairs; p++) {
            int a = s->pairs[p].student, b = s->pairs[p].teacher;
            if (a < lo || a > M)
                return term_error(i, nm, "layers[%d]: student layer %d is out of range: %s "
                                  "%d..%d for this %d-layer student", p, a, what, lo, M, M);
            if (b < lo || b > N)
                return term_error(i, nm, "layers[%d]: teacher layer %d is out of range: %s "
                                  "%d..%d for this %d-layer teacher", p, b, what, lo, N, N);
        }
    } else if (takes_map && t != LOSS_EMBEDDING_MSE && t != LOSS_HIDDEN_COS) {
        int M = st->num_hidden_layers, N = te->num_hidden_layers;
        if (M < 1)
            return term_error(i, nm, "the student has no encoder layers to map");
        if (N < M)
            return term_error(i, nm, "the uniform layer map needs at least as many teacher layers "
                              "as student layers, found student %d, teacher %d: give an explicit "
                              "map", M, N);
    }
    return DISTILL_OK;
}

/* The resolved pairs of a validated spec (caller frees). */
static LossLayerPair *resolve_pairs(const LossSpec *s, int M, int N, int *n_out) {
    LossLayerPair *p;
    int n;
    if (s->map == LOSS_MAP_EXPLICIT) {
        n = s->n_pairs;
        p = xmalloc((size_t)n * sizeof *p);
        memcpy(p, s->pairs, (size_t)n * sizeof *p);
    } else if (s->type == LOSS_EMBEDDING_MSE) {
        n = 1;
        p = xmalloc(sizeof *p);
        p[0].student = p[0].teacher = 0;
    } else if (s->type == LOSS_HIDDEN_COS) {
        n = 1;
        p = xmalloc(sizeof *p);
        p[0].student = M;
        p[0].teacher = N;
    } else if (loss_is_hidden(s->type) || loss_is_attention(s->type)) {
        n = M;
        p = xmalloc((size_t)n * sizeof *p);
        for (int m = 1; m <= M; m++) {
            p[m - 1].student = m;
            p[m - 1].teacher = (int)((long)m * N / M);
        }
    } else {
        n = 0;
        p = NULL;
    }
    *n_out = n;
    return p;
}

/* ------------------------------------------------------------------ build */

static void term_free(LossTerm *t) {
    free(t->pairs);
    free(t->proj_w);
    free(t->proj_b);
}

static bool needs_projection(const LossSpec *s, int hs, int ht) {
    if (!loss_is_hidden(s->type)) return false;
    switch (s->projection) {
    case LOSS_PROJ_AUTO: return hs != ht;
    case LOSS_PROJ_NONE: return false;
    case LOSS_PROJ_PER_PAIR: return true;
    case LOSS_PROJ_SHARED: return true;
    }
    return false;
}

/* Hugging Face's nn.Linear initialisation for a BERT model: weight normal(0, std), bias 0. */
static void init_projections(ParamStore *ps, float std, uint64_t seed) {
    Rng rng = rng_new(seed);
    for (int k = 0; k < ps->n; k++) {
        Tensor *t = ps->tensors[k];
        float *host = xcalloc(t->numel, sizeof(float));
        if (!ps->no_decay[k])
            for (size_t j = 0; j < t->numel; j++) host[j] = (float)(rng_next_normal(&rng) * std);
        tensor_from_host(t, host);
        free(host);
    }
}

Status loss_set_build(const LossSpec *specs, int n, const BertConfig *student,
                      const BertConfig *teacher, Device device, uint64_t seed, LossSet **out) {
    DCHECK(student != NULL && out != NULL);
    *out = NULL;
    if (specs == NULL || n <= 0) {
        distill_set_error("losses: expected at least one loss term, found none");
        return DISTILL_ERR;
    }
    LossSpec *res = xcalloc((size_t)n, sizeof *res);
    memcpy(res, specs, (size_t)n * sizeof *res);
    int class_term = -1, regression_term = -1;
    for (int i = 0; i < n; i++) {
        if (validate_term(i, &res[i], student, teacher) != DISTILL_OK) goto fail;
        for (int j = 0; j < i; j++)
            if (strcmp(res[j].name, res[i].name) == 0) {
                term_error(i, res[i].name, "the name is already used by losses[%d]; give each "
                           "term a distinct name", j);
                goto fail;
            }
        if (res[i].type == LOSS_HARD_CE) class_term = i;
        if (res[i].type == LOSS_MSE_REGRESSION) regression_term = i;
    }
    if (class_term >= 0 && regression_term >= 0) {
        term_error(regression_term, res[regression_term].name, "cannot be combined with hard_ce "
                   "(losses[%d]): one reads class ids, the other float targets", class_term);
        goto fail;
    }

    LossSet *ls = xcalloc(1, sizeof *ls);
    int M = student->num_hidden_layers, N = teacher ? teacher->num_hidden_layers : 0;
    ls->n = n;
    ls->terms = xcalloc((size_t)n, sizeof *ls->terms);
    ls->student_layers = M;
    ls->teacher_layers = N;
    ls->student_width = student->hidden_size;
    ls->teacher_width = teacher ? teacher->hidden_size : 0;
    ls->labels = class_term >= 0 ? LOSS_LABELS_CLASS
               : regression_term >= 0 ? LOSS_LABELS_REGRESSION : LOSS_LABELS_NONE;
    ls->student_hidden = xcalloc((size_t)M + 1, sizeof(bool));
    ls->teacher_hidden = xcalloc((size_t)N + 1, sizeof(bool));
    ls->student_scores = xcalloc((size_t)M + 1, sizeof(bool));
    ls->student_probs = xcalloc((size_t)M + 1, sizeof(bool));
    ls->teacher_scores = xcalloc((size_t)N + 1, sizeof(bool));
    ls->teacher_probs = xcalloc((size_t)N + 1, sizeof(bool));

    /* Declare projections; record what each forward must return. */
    ParamStore *ps = NULL;
    Tensor *shared_w = NULL, *shared_b = NULL;
    int hs = ls->student_width, ht = ls->teacher_width;
    for (int i = 0; i < n; i++) {
        LossTerm *t = &ls->terms[i];
        t->spec = res[i];
        LossType ty = t->spec.type;
        t->pairs = resolve_pairs(&t->spec, M, N, &t->n_pairs);
        t->proj_w = xcalloc((size_t)t->n_pairs + 1, sizeof(Tensor *));
        t->proj_b = xcalloc((size_t)t->n_pairs + 1, sizeof(Tensor *));
        if (!loss_is_label(ty)) ls->needs_teacher = true;
        if (loss_is_logits(ty)) ls->student_logits = ls->teacher_logits = true;
        if (loss_is_label(ty)) ls->student_logits = true;
        for (int p = 0; p < t->n_pairs; p++) {
            int a = t->pairs[p].student, b = t->pairs[p].teacher;
            if (loss_is_hidden(ty)) {
                ls->student_hidden[a] = ls->teacher_hidden[b] = true;
            } else if (t->spec.target == LOSS_TARGET_SCORES) {
                ls->student_scores[a - 1] = ls->teacher_scores[b - 1] = true;
            } else {
                ls->student_probs[a - 1] = ls->teacher_probs[b - 1] = true;
            }
        }
        if (!needs_projection(&t->spec, hs, ht)) continue;
        if (!ps) ps = params_new(device);
        int wshape[2] = {ht, hs}, bshape[1] = {ht};
        if (t->spec.projection == LOSS_PROJ_SHARED) {
            if (!shared_w) {
                shared_w = params_add(ps, LOSS_PROJECTION_PREFIX "shared.weight", 2, wshape, false);
                shared_b = params_add(ps, LOSS_PROJECTION_PREFIX "shared.bias", 1, bshape, true);
            }
            for (int p = 0; p < t->n_pairs; p++) {
                t->proj_w[p] = shared_w;
                t->proj_b[p] = shared_b;
            }
        } else {
            for (int p = 0; p < t->n_pairs; p++) {
                char nm[160];
                snprintf(nm, sizeof nm, LOSS_PROJECTION_PREFIX "%s.%d.weight", t->spec.name, p);
                t->proj_w[p] = params_add(ps, nm, 2, wshape, false);
                snprintf(nm, sizeof nm, LOSS_PROJECTION_PREFIX "%s.%d.bias", t->spec.name, p);
                t->proj_b[p] = params_add(ps, nm, 1, bshape, true);
            }
        }
    }
    if (ps) {
        params_finalize(ps);
        float std = student->initializer_range > 0.0f ? student->initializer_range : 0.02f;
        init_projections(ps, std, seed);
    }
    ls->params = ps;
    free(res);
    *out = ls;
    return DISTILL_OK;

fail:
    free(res);
    return DISTILL_ERR;
}

void loss_set_free(LossSet *ls) {
    if (!ls) return;
    for (int i = 0; i < ls->n; i++) term_free(&ls->terms[i]);
    free(ls->terms);
    params_free(ls->params);
    free(ls->student_hidden);
    free(ls->teacher_hidden);
    free(ls->student_scores);
    free(ls->student_probs);
    free(ls->teacher_scores);
    free(ls->teacher_probs);
    free(ls);
}

static bool any(const bool *v, int n) {
    for (int i = 0; i < n; i++)
        if (v[i]) return true;
    return false;
}

void loss_set_request(const LossSet *ls, BertRequest *sreq, BertRequest *treq) {
    int M = ls->student_layers, N = ls->teacher_layers;
    if (sreq) {
        memset(sreq, 0, sizeof *sreq);
        sreq->hidden = any(ls->student_hidden, M + 1) ? ls->student_hidden : NULL;
        sreq->scores = any(ls->student_scores, M) ? ls->student_scores : NULL;
        sreq->probs = any(ls->student_probs, M) ? ls->student_probs : NULL;
        sreq->no_logits = !ls->student_logits;
    }
    if (treq) {
        memset(treq, 0, sizeof *treq);
        treq->hidden = any(ls->teacher_hidden, N + 1) ? ls->teacher_hidden : NULL;
        treq->scores = any(ls->teacher_scores, N) ? ls->teacher_scores : NULL;
        treq->probs = any(ls->teacher_probs, N) ? ls->teacher_probs : NULL;
        treq->no_logits = !ls->teacher_logits;
    }
}

int loss_set_size(const LossSet *ls) { return ls->n; }

const LossSpec *loss_set_spec(const LossSet *ls, int i) {
    DCHECK(i >= 0 && i < ls->n);
    return &ls->terms[i].spec;
}

const LossLayerPair *loss_set_pairs(const LossSet *ls, int i, int *n_pairs) {
    DCHECK(i >= 0 && i < ls->n);
    *n_pairs = ls->terms[i].n_pairs;
    return ls->terms[i].pairs;
}

ParamStore *loss_set_params(const LossSet *ls) { return ls->params; }
bool loss_set_needs_teacher(const LossSet *ls) { return ls->needs_teacher; }
LossLabels loss_set_labels(const LossSet *ls) { return ls->labels; }

void loss_set_print(const LossSet *ls, FILE *f) {
    for (int i = 0; i < ls->n; i++) {
        const LossTerm *t = &ls->terms[i];
        const LossSpec *s = &t->spec;
        fprintf(f, "  loss %-16s %-14s weight %g", s->name, loss_type_name(s->type), s->weight);
        if (loss_is_logits(s->type)) {
            if (s->temperature_steps > 0)
                fprintf(f, "  T %g -> %g over %ld steps", s->temperature, s->temperature_end,
                        s->temperature_steps);
            else
                fprintf(f, "  T %g", s->temperature);
        }
        if (t->n_pairs > 0) {
            fprintf(f, "  %s (student->teacher)",
                    loss_is_attention(s->type) ? "layers" : "hidden states");
            for (int p = 0; p < t->n_pairs; p++)
                fprintf(f, " %d->%d", t->pairs[p].student, t->pairs[p].teacher);
        }
        if (loss_is_attention(s->type)) fprintf(f, "  target %s", loss_target_name(s->target));
        if (loss_is_hidden(s->type))
            fprintf(f, "  projection %s",
                    t->proj_w[0] == NULL ? "none"
                    : s->projection == LOSS_PROJ_SHARED ? "shared" : "per pair");
        fprintf(f, "\n");
    }
    if (ls->params)
        fprintf(f, "  projections: %zu parameters\n", params_count(ls->params, ""));
}
