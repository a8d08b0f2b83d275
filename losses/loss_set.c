/*
 * loss_set.c — validation of LossSpecs against the table (loss_table.c) and the student and
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

static bool takes_temperature(const LossTypeInfo *i) { return i->keys & LOSS_KEY_TEMPERATURE; }
static bool takes_projection(const LossTypeInfo *i) { return i->keys & LOSS_KEY_PROJECTION; }
static bool reads_attention(const LossTypeInfo *i) { return i->target != LOSS_TARGET_DEFAULT; }
static bool takes_target(const LossTypeInfo *i) { return i->keys & LOSS_KEY_TARGET; }

/* Resolves name, temperature, target and map of spec i in place; checks everything that needs
 * only the spec, its row of the table and the two configs. */
static Status validate_term(int i, LossSpec *s, const BertConfig *st, const BertConfig *const *tes,
                            int n_teachers) {
    if ((int)s->type < 0 || s->type >= LOSS_TYPE_COUNT) {
        distill_set_error("losses[%d]: unknown loss type %d", i, (int)s->type);
        return DISTILL_ERR;
    }
    const LossTypeInfo *info = loss_type_info(s->type);
    const char *tname = info->name;
    char types[256];
    if (memchr(s->name, '\0', LOSS_NAME_MAX) == NULL)
        return term_error(i, tname, "name is longer than %d characters", LOSS_NAME_MAX - 1);
    if (!s->name[0]) snprintf(s->name, LOSS_NAME_MAX, "%s", tname);
    if (!valid_name(s->name))
        return term_error(i, tname, "name '%s' may hold only letters, digits, '_' and '-'",
                          s->name);
    const char *nm = s->name;

    if (!isfinite(s->weight) || s->weight < 0.0f)
        return term_error(i, nm, "weight must be a finite number >= 0, found %g", s->weight);
    if (info->needs_teacher && n_teachers < 1)
        return term_error(i, nm, "needs a teacher, but none is configured");
    /* the teacher the term reads: its own (hidden states, attention) or, for logits, the first
     * (every teacher's classifier is checked below) */
    if (!(info->keys & LOSS_KEY_TEACHER) && s->teacher != 0)
        return term_error(i, nm, "teacher applies only to %s (logits terms read the teachers' combined "
                          "logits), found teacher %d",
                          loss_types_taking(LOSS_KEY_TEACHER, " and ", types, sizeof types), s->teacher + 1);
    if (s->teacher < 0 || (n_teachers > 0 && s->teacher >= n_teachers))
        return term_error(i, nm, "teacher %d does not exist: expected 1..%d", s->teacher + 1, n_teachers);
    const BertConfig *te = n_teachers > 0 ? tes[s->teacher] : NULL;

    /* temperature */
    if (takes_temperature(info)) {
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
        return term_error(i, nm, "temperature applies only to %s",
                          loss_type_list(takes_temperature, " and ", types, sizeof types));
    }

    /* target: the row's default, or (with the target key) scores or probs */
    if ((int)s->target < 0 || s->target > LOSS_TARGET_PROBS)
        return term_error(i, nm, "unknown attention target %d", (int)s->target);
    if (s->target == LOSS_TARGET_DEFAULT) s->target = info->target;
    if (info->target == LOSS_TARGET_DEFAULT && s->target != LOSS_TARGET_DEFAULT)
        return term_error(i, nm, "target applies only to %s, found target %s",
                          loss_type_list(reads_attention, " and ", types, sizeof types),
                          loss_target_name(s->target));
    if (!takes_target(info) && s->target != info->target)
        return term_error(i, nm, "%s compares %s: target must be %s, found %s (use %s for %s)",
                          tname, info->target == LOSS_TARGET_PROBS ? "probability rows" : "scores",
                          loss_target_name(info->target), loss_target_name(s->target),
                          loss_type_list(takes_target, " or ", types, sizeof types),
                          loss_target_name(s->target));

    /* projection */
    if ((int)s->projection < 0 || s->projection > LOSS_PROJ_NONE)
        return term_error(i, nm, "unknown projection %d", (int)s->projection);
    if (!takes_projection(info) && s->projection != LOSS_PROJ_AUTO)
        return term_error(i, nm, "projection applies only to %s, found projection %s",
                          loss_type_list(takes_projection, " and ", types, sizeof types),
                          loss_projection_name(s->projection));
    if (takes_projection(info) && s->projection == LOSS_PROJ_NONE &&
        st->hidden_size != te->hidden_size)
        return term_error(i, nm, "student width %d differs from teacher width %d and projection "
                          "is none: expected projection auto, per_pair or shared",
                          st->hidden_size, te->hidden_size);

    /* heads, labels */
    if (info->reads == LOSS_READS_ATTENTION && st->num_attention_heads != te->num_attention_heads)
        return term_error(i, nm, "head counts must match for attention losses: the student has "
                          "%d heads, the teacher %d", st->num_attention_heads,
                          te->num_attention_heads);
    if (info->reads == LOSS_READS_LOGITS && info->labels != LOSS_LABELS_REGRESSION &&
        st->num_labels < 2)
        return term_error(i, nm, "needs a classifier with at least 2 labels, found student "
                          "num_labels %d", st->num_labels);
    for (int k = 0; info->reads == LOSS_READS_LOGITS && info->needs_teacher && k < n_teachers; k++)
        if (tes[k]->num_labels != st->num_labels) {
            if (n_teachers == 1)
                return term_error(i, nm, "student and teacher must have the same number of labels, "
                                  "found student %d, teacher %d", st->num_labels, tes[k]->num_labels);
            return term_error(i, nm, "student and every teacher must have the same number of labels "
                              "(the teachers' logits are combined), found student %d, teacher %d %d",
                              st->num_labels, k + 1, tes[k]->num_labels);
        }
    if (info->labels == LOSS_LABELS_REGRESSION && st->num_labels < 1)
        return term_error(i, nm, "needs a regression head (num_labels >= 1), found student "
                          "num_labels %d", st->num_labels);

    /* layer map: the row's, or (with the layers key) uniform, last or explicit */
    if ((int)s->map < 0 || s->map >= LOSS_MAP_COUNT)
        return term_error(i, nm, "unknown layer map kind %d", (int)s->map);
    bool takes_map = info->keys & LOSS_KEY_LAYERS;
    if (s->map != LOSS_MAP_EXPLICIT && s->n_pairs != 0)
        return term_error(i, nm, "%d layer pairs are given with a %s map", s->n_pairs,
                          loss_map_name(s->map));
    if (!takes_map && s->map != info->map) {
        if (info->map == LOSS_MAP_EMBEDDINGS)
            return term_error(i, nm, "always compares the embedding outputs (layer 0 with layer "
                              "0): remove its layer map, or use hidden_mse with pair [0, 0]");
        return term_error(i, nm, "takes no layer map (it reads only logits and labels), found "
                          "map %s", loss_map_name(s->map));
    }
    if (takes_map && (s->map == LOSS_MAP_NONE || s->map == LOSS_MAP_EMBEDDINGS))
        return term_error(i, nm, "expected a layer map uniform, last or explicit, found %s",
                          loss_map_name(s->map));
    int M = st->num_hidden_layers, N = te ? te->num_hidden_layers : 0;
    if (s->map == LOSS_MAP_EXPLICIT) {
        if (s->n_pairs < 1 || s->n_pairs > LOSS_MAX_PAIRS)
            return term_error(i, nm, "an explicit layer map needs 1 to %d pairs, found %d",
                              LOSS_MAX_PAIRS, s->n_pairs);
        bool attn = info->reads == LOSS_READS_ATTENTION;
        int lo = attn ? 1 : 0;
        const char *what = attn ? "attention losses take encoder layers"
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
    } else if (s->map == LOSS_MAP_UNIFORM || s->map == LOSS_MAP_LAST) {
        if (M < 1)
            return term_error(i, nm, "the student has no encoder layers to map");
        if (N < 1)
            return term_error(i, nm, "the teacher has no encoder layers to map");
        if (s->map == LOSS_MAP_UNIFORM && N < M)
            return term_error(i, nm, "the uniform layer map needs at least as many teacher layers "
                              "as student layers, found student %d, teacher %d: give an explicit "
                              "map", M, N);
    }
    return DISTILL_OK;
}

/* The resolved pairs of a validated spec (caller frees; NULL when there are none). */
static LossLayerPair *resolve_pairs(const LossSpec *s, int M, int N, int *n_out) {
    LossLayerPair *p = NULL;
    int n = 0;
    switch (s->map) {
    case LOSS_MAP_NONE: break;
    case LOSS_MAP_EXPLICIT:
        n = s->n_pairs;
        p = xmalloc((size_t)n * sizeof *p);
        memcpy(p, s->pairs, (size_t)n * sizeof *p);
        break;
    case LOSS_MAP_EMBEDDINGS:
        n = 1;
        p = xmalloc(sizeof *p);
        p[0].student = p[0].teacher = 0;
        break;
    case LOSS_MAP_LAST:
        n = 1;
        p = xmalloc(sizeof *p);
        p[0].student = M;
        p[0].teacher = N;
        break;
    case LOSS_MAP_UNIFORM:
        n = M;
        p = xmalloc((size_t)n * sizeof *p);
        for (int m = 1; m <= M; m++) {
            p[m - 1].student = m;
            p[m - 1].teacher = (int)((long)m * N / M);
        }
        break;
    case LOSS_MAP_COUNT: DCHECK(!"unreachable"); break;
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
    if (!takes_projection(loss_type_info(s->type))) return false;
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
    return loss_set_build_teachers(specs, n, student, teacher ? &teacher : NULL, teacher ? 1 : 0, device,
                                   seed, out);
}

Status loss_set_build_teachers(const LossSpec *specs, int n, const BertConfig *student,
                               const BertConfig *const *teachers, int n_teachers, Device device,
                               uint64_t seed, LossSet **out) {
    DCHECK(student != NULL && out != NULL && n_teachers >= 0 && (n_teachers == 0 || teachers));
    *out = NULL;
    if (specs == NULL || n <= 0) {
        distill_set_error("losses: expected at least one loss term, found none");
        return DISTILL_ERR;
    }
    LossSpec *res = xcalloc((size_t)n, sizeof *res);
    memcpy(res, specs, (size_t)n * sizeof *res);
    int class_term = -1, regression_term = -1;
    for (int i = 0; i < n; i++) {
        if (validate_term(i, &res[i], student, teachers, n_teachers) != DISTILL_OK) goto fail;
        for (int j = 0; j < i; j++)
            if (strcmp(res[j].name, res[i].name) == 0) {
                term_error(i, res[i].name, "the name is already used by losses[%d]; give each "
                           "term a distinct name", j);
                goto fail;
            }
        LossLabels lab = loss_type_info(res[i].type)->labels;
        if (lab == LOSS_LABELS_CLASS) class_term = i;
        if (lab == LOSS_LABELS_REGRESSION) regression_term = i;
    }
    if (class_term >= 0 && regression_term >= 0) {
        term_error(regression_term, res[regression_term].name, "cannot be combined with %s "
                   "(losses[%d]): one reads class ids, the other float targets",
                   loss_type_name(res[class_term].type), class_term);
        goto fail;
    }

    LossSet *ls = xcalloc(1, sizeof *ls);
    int M = student->num_hidden_layers;
    ls->n = n;
    ls->terms = xcalloc((size_t)n, sizeof *ls->terms);
    ls->student_layers = M;
    ls->student_width = student->hidden_size;
    ls->labels = class_term >= 0 ? LOSS_LABELS_CLASS
               : regression_term >= 0 ? LOSS_LABELS_REGRESSION : LOSS_LABELS_NONE;
    ls->student_hidden = xcalloc((size_t)M + 1, sizeof(bool));
    ls->student_scores = xcalloc((size_t)M + 1, sizeof(bool));
    ls->student_probs = xcalloc((size_t)M + 1, sizeof(bool));
    ls->n_teachers = n_teachers;
    ls->teachers = xcalloc((size_t)n_teachers + 1, sizeof *ls->teachers);
    for (int k = 0; k < n_teachers; k++) {
        LossTeacher *lt = &ls->teachers[k];
        int N = teachers[k]->num_hidden_layers;
        lt->layers = N;
        lt->width = teachers[k]->hidden_size;
        lt->hidden = xcalloc((size_t)N + 1, sizeof(bool));
        lt->scores = xcalloc((size_t)N + 1, sizeof(bool));
        lt->probs = xcalloc((size_t)N + 1, sizeof(bool));
    }
    ls->mix_weights = xcalloc((size_t)n_teachers + 1, sizeof(float));
    for (int k = 0; k < n_teachers; k++) ls->mix_weights[k] = 1.0f / (float)n_teachers;

    /* Declare projections; record what each forward must return. */
    ParamStore *ps = NULL;
    Tensor *shared_w = NULL, *shared_b = NULL;
    int hs = ls->student_width, shared_ht = 0, shared_term = -1;
    for (int i = 0; i < n; i++) {
        LossTerm *t = &ls->terms[i];
        t->spec = res[i];
        LossType ty = t->spec.type;
        LossTeacher *lt = n_teachers > 0 ? &ls->teachers[t->spec.teacher] : NULL;
        int N = lt ? lt->layers : 0, ht = lt ? lt->width : 0;
        t->pairs = resolve_pairs(&t->spec, M, N, &t->n_pairs);
        t->proj_w = xcalloc((size_t)t->n_pairs + 1, sizeof(Tensor *));
        t->proj_b = xcalloc((size_t)t->n_pairs + 1, sizeof(Tensor *));
        const LossTypeInfo *info = loss_type_info(ty);
        if (info->needs_teacher) ls->needs_teacher = true;
        if (info->needs_teacher && !loss_is_logits(ty)) lt->read = true;
        if (info->reads == LOSS_READS_LOGITS) {
            ls->student_logits = true;
            if (info->needs_teacher) {
                ls->teacher_logits = true;
                for (int k = 0; k < n_teachers; k++) ls->teachers[k].read = true;
            }
        }
        for (int p = 0; p < t->n_pairs; p++) {
            int a = t->pairs[p].student, b = t->pairs[p].teacher;
            if (loss_is_hidden(ty)) {
                ls->student_hidden[a] = lt->hidden[b] = true;
            } else if (t->spec.target == LOSS_TARGET_SCORES) {
                ls->student_scores[a - 1] = lt->scores[b - 1] = true;
            } else {
                ls->student_probs[a - 1] = lt->probs[b - 1] = true;
            }
        }
        if (!needs_projection(&t->spec, hs, ht)) continue;
        if (t->spec.projection == LOSS_PROJ_SHARED && shared_term >= 0 && ht != shared_ht) {
            term_error(i, t->spec.name, "a shared projection maps to one width, but this term's teacher "
                       "%d is %d wide and losses[%d]'s teacher is %d wide: use projection per_pair",
                       t->spec.teacher + 1, ht, shared_term, shared_ht);
            params_free(ps);
            loss_set_free(ls);
            goto fail;
        }
        if (!ps) ps = params_new(device);
        int wshape[2] = {ht, hs}, bshape[1] = {ht};
        if (t->spec.projection == LOSS_PROJ_SHARED) {
            if (!shared_w) {
                shared_term = i;
                shared_ht = ht;
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
    free(ls->student_scores);
    free(ls->student_probs);
    for (int k = 0; k < ls->n_teachers; k++) {
        free(ls->teachers[k].hidden);
        free(ls->teachers[k].scores);
        free(ls->teachers[k].probs);
    }
    free(ls->teachers);
    free(ls->mix_weights);
    free(ls);
}

static bool any(const bool *v, int n) {
    for (int i = 0; i < n; i++)
        if (v[i]) return true;
    return false;
}

bool loss_set_request_teacher(const LossSet *ls, int k, BertRequest *treq) {
    DCHECK(k >= 0 && k < ls->n_teachers);
    const LossTeacher *lt = &ls->teachers[k];
    int N = lt->layers;
    memset(treq, 0, sizeof *treq);
    treq->hidden = any(lt->hidden, N + 1) ? lt->hidden : NULL;
    treq->scores = any(lt->scores, N) ? lt->scores : NULL;
    treq->probs = any(lt->probs, N) ? lt->probs : NULL;
    treq->no_logits = !ls->teacher_logits;
    return lt->read;
}

bool loss_set_needs_teacher_logits(const LossSet *ls) { return ls->teacher_logits; }

void loss_set_teacher_mix(LossSet *ls, LossTeacherMix mix, const float *weights) {
    DCHECK(mix == LOSS_MIX_LOGITS || mix == LOSS_MIX_PROBS);
    ls->mix = mix;
    double total = 0;
    for (int k = 0; k < ls->n_teachers; k++) total += weights ? weights[k] : 1.0;
    DCHECK(ls->n_teachers == 0 || total > 0);
    for (int k = 0; k < ls->n_teachers; k++) ls->mix_weights[k] = (float)((weights ? weights[k] : 1.0) / total);
}
int loss_set_teachers(const LossSet *ls) { return ls->n_teachers; }

void loss_set_request(const LossSet *ls, BertRequest *sreq, BertRequest *treq) {
    int M = ls->student_layers;
    if (sreq) {
        memset(sreq, 0, sizeof *sreq);
        sreq->hidden = any(ls->student_hidden, M + 1) ? ls->student_hidden : NULL;
        sreq->scores = any(ls->student_scores, M) ? ls->student_scores : NULL;
        sreq->probs = any(ls->student_probs, M) ? ls->student_probs : NULL;
        sreq->no_logits = !ls->student_logits;
    }
    if (treq) {
        if (ls->n_teachers > 0) {
            loss_set_request_teacher(ls, 0, treq);
        } else {
            memset(treq, 0, sizeof *treq);
            treq->no_logits = true;
        }
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
        if (ls->n_teachers > 1 && (loss_type_info(s->type)->keys & LOSS_KEY_TEACHER))
            fprintf(f, "  teacher %d", s->teacher + 1);
        if (ls->n_teachers > 1 && loss_is_logits(s->type)) fprintf(f, "  teachers combined");
        if (loss_is_attention(s->type)) fprintf(f, "  target %s", loss_target_name(s->target));
        if (takes_projection(loss_type_info(s->type)))
            fprintf(f, "  projection %s",
                    t->proj_w[0] == NULL ? "none"
                    : s->projection == LOSS_PROJ_SHARED ? "shared" : "per pair");
        fprintf(f, "\n");
    }
    if (ls->params)
        fprintf(f, "  projections: %zu parameters\n", params_count(ls->params, ""));
}
