/*
 * losses.h — the distillation and task loss terms of DESIGN §4, their layer maps, their learnable
 * projections and their temperature schedules, built from engine ops.
 *
 * A LossSet is built once from an array of LossSpec (which train/config.c fills directly from the
 * YAML, with the keys and defaults of this folder's table; this folder knows nothing of files or
 * YAML), the student's and the teacher's BertConfig. Building
 * validates every term against both configs and creates the projections. Each step the trainer
 * asks loss_set_request what the two forwards must return, runs them, and calls loss_set_forward,
 * which returns the total  sum_i weight_i * term_i  as a scalar on the tape.
 *
 * Reductions, stated (B batch, S padded length, C classes, h heads, H widths):
 *   logits_kd      T^2 * KL(softmax(z_t/T) || softmax(z_s/T)), summed over classes, mean over the
 *                  B rows (DistilBERT: KLDivLoss(reduction="batchmean") * T^2).
 *   logits_ce      -sum_c softmax(z_t/T) log softmax(z_s/T), mean over the B rows, no T^2
 *                  (TinyBERT's soft_cross_entropy as DESIGN §4 states it; TinyBERT's code takes
 *                  .mean() over rows AND classes, i.e. 1/C of this: weight 1/C reproduces it).
 *   hard_ce        -log softmax(z_s)[label], mean over the B rows. Labels i32 (B).
 *   mse            mean over B of (z_s[:, 0] - label)^2. Labels f32 (B).
 *   hidden_mse     sum over mapped pairs of mean over all B*S*H_t elements of (P(H_s) - H_t)^2,
 *                  padded positions included (TinyBERT's MSELoss on whole tensors).
 *   embedding_mse  the same on the pair (0, 0): the embedding outputs.
 *   attention_mse  sum over mapped pairs of the mean over all B*h*S*S elements of
 *                  target scores: (A_s - A_t)^2 where each side's entries <= -1e2 are first
 *                                 set to 0 (TinyBERT's torch.where on each side), so masked keys
 *                                 add nothing whatever additive mask (-10000 or float min) the
 *                                 models used;
 *                  target probs:  (P_s - P_t)^2 of the probabilities.
 *   attention_kl   sum over mapped pairs of the mean over all B*h*S query rows of
 *                  KL(P_t row || P_s row) (MiniLM's L_AT). Padded query rows are included: they
 *                  are still distributions over the valid keys in both models, and the mean over
 *                  every row is what op_kl_probs computes.
 *   hidden_cos     sum over mapped pairs (by default only the last layers) of the mean over the
 *                  VALID tokens (position < length) of 1 - cos(P(H_s), H_t) (DistilBERT's α_cos:
 *                  it masked_selects the valid tokens first, so padding neither dilutes the mean
 *                  nor trains the student on pad positions).
 *   P is the identity or the pair's projection  x W^T + b  with W (H_t, H_s), b (H_t).
 *
 * Layer maps. Hidden states are indexed as BertOutput.hidden: 0 = embedding output, 1..L = the
 * output of encoder layer 1..L. Attention losses name 1-based ENCODER layers 1..L (layer 0 has no
 * attention); encoder layer m reads BertOutput.scores/probs[m - 1]. The uniform map sends student
 * layer m (1..M) to teacher layer floor(m*N/M), so the last student layer meets the last teacher
 * layer. "last" is the one pair (M, N) (hidden_cos's default), "embeddings" the pair (0, 0)
 * (embedding_mse's only map). An explicit map lists (student, teacher) pairs in the same numbering.
 *
 * Projections live in one ParamStore (loss_set_params), trained with the student, saved in
 * checkpoints and dropped on export: every name starts with LOSS_PROJECTION_PREFIX. Per pair:
 * "projections.<loss name>.<pair index>.weight" (H_t, H_s) and ".bias" (H_t). Shared:
 * "projections.shared.weight"/".bias", ONE projection for every pair of every loss in the set that
 * asks for "shared" (as TinyBERT's single fit_dense serves both its embedding and hidden losses).
 * Initialisation as Hugging Face's linear layers: weight normal(0, student initializer_range),
 * bias 0, drawn from the build seed in declaration order.
 *
 * Teacher outputs never receive gradient (they are detached here even if a caller's tensor asks
 * for one). The teacher's logits are read only from teacher->logits, so a caller with several
 * teachers (or logits stored in the data file) passes a BertOutput whose logits tensor it has
 * averaged or loaded itself.
 */
#ifndef DISTILL_LOSSES_H
#define DISTILL_LOSSES_H

#include <stdio.h>

#include "../engine/ctx.h"
#include "../engine/params.h"
#include "../models/bert.h"

#define LOSS_NAME_MAX 48
#define LOSS_MAX_PAIRS 64
#define LOSS_PROJECTION_PREFIX "projections."
/* TinyBERT's threshold: attention scores at or below it are masked entries. */
#define LOSS_ATTENTION_IGNORE_BELOW (-1e2f)

/* The loss types, in the order of the table below (loss_table.c) and of every list of them in
 * messages and docs. Adding a type is one row of that table plus its term in loss_forward.c, its
 * PyTorch reference in tests/test_losses_parity.py, and its line in configs/README.md (which
 * test_config's readme_losses case checks against the table). */
typedef enum {
    LOSS_LOGITS_KD = 0,   /* "logits_kd" */
    LOSS_LOGITS_CE,       /* "logits_ce" */
    LOSS_HARD_CE,         /* "hard_ce" */
    LOSS_HIDDEN_MSE,      /* "hidden_mse" */
    LOSS_EMBEDDING_MSE,   /* "embedding_mse" */
    LOSS_ATTENTION_MSE,   /* "attention_mse" */
    LOSS_ATTENTION_KL,    /* "attention_kl" */
    LOSS_HIDDEN_COS,      /* "hidden_cos" */
    LOSS_MSE,             /* "mse": regression on column 0 of the logits (no alias) */
    LOSS_TYPE_COUNT
} LossType;

/* Which layer pairs a term compares (numbering above). The table gives each type its default;
 * only types that take the `layers` key may be given another. */
typedef enum {
    LOSS_MAP_NONE = 0,    /* no layers: logits and label terms */
    LOSS_MAP_UNIFORM,     /* student m <-> teacher floor(m*N/M), m = 1..M */
    LOSS_MAP_LAST,        /* the one pair (M, N), resolved when the set is built */
    LOSS_MAP_EMBEDDINGS,  /* the one pair (0, 0): the embedding outputs */
    LOSS_MAP_EXPLICIT,    /* pairs[0 .. n_pairs) */
    LOSS_MAP_COUNT
} LossMapKind;

/* attention_mse compares scores (TinyBERT, the default) or probabilities; attention_kl always
 * compares probabilities. DEFAULT: the type's default from the table (none for the others). */
typedef enum { LOSS_TARGET_DEFAULT = 0, LOSS_TARGET_SCORES, LOSS_TARGET_PROBS } LossAttnTarget;

/* AUTO: a per-pair projection only where the widths differ. PER_PAIR: always, one per pair.
 * SHARED: always, one for the whole set (see above). NONE: never (a width mismatch is then an
 * error). The order is the config's listing order. */
typedef enum { LOSS_PROJ_AUTO = 0, LOSS_PROJ_PER_PAIR, LOSS_PROJ_SHARED, LOSS_PROJ_NONE } LossProjection;

/* What labels a term (or a set) reads: none, class ids i32 (B), or regression targets f32 (B). */
typedef enum { LOSS_LABELS_NONE = 0, LOSS_LABELS_CLASS, LOSS_LABELS_REGRESSION } LossLabels;

/* What a term reads of the two forwards. */
typedef enum { LOSS_READS_LOGITS = 0, LOSS_READS_HIDDEN, LOSS_READS_ATTENTION } LossReads;

typedef struct LossLayerPair {
    int student, teacher;
} LossLayerPair;

/* One term. The config reader (train/config.c) fills it directly, starting from
 * loss_spec_default; a program may fill one too. */
typedef struct LossSpec {
    LossType type;
    float weight;              /* >= 0; default 1 */
    /* Temperature (types with the `temperature` key). 0 = not given: T = 1. With
     * temperature_steps == 0 T is constant (temperature_end 0 or equal to it); otherwise T goes
     * linearly from `temperature` at step 0 to `temperature_end` at step temperature_steps and
     * stays there. */
    float temperature;
    float temperature_end;
    long temperature_steps;
    LossMapKind map;           /* default from the table */
    int n_pairs;               /* LOSS_MAP_EXPLICIT: pairs[0 .. n_pairs) */
    LossLayerPair pairs[LOSS_MAX_PAIRS];
    LossAttnTarget target;     /* attention_mse (scores|probs), attention_kl (probs) */
    LossProjection projection; /* types with the `projection` key */
    char name[LOSS_NAME_MAX];  /* "" = the type name; [A-Za-z0-9_-], unique within a set */
    int teacher;               /* types with the `teacher` key (hidden states, attention): the
                                  0-based index of the teacher the term reads; 0 otherwise.
                                  Logits terms read the teachers' combined logits. */
} LossSpec;

/* ------------------------------------------------------------------ the table
 * One row per LossType (losses/loss_table.c): everything outside the term's own arithmetic that
 * differs between types. The config reader takes its key applicability and defaults from here,
 * loss_set_build its validation and layer maps, and configs/README.md is checked against it. */

/* The keys of a config loss entry. `type`, `name` and `weight` apply to every type (bit 0); the
 * others to the types whose row has their bit. */
enum {
    LOSS_KEY_TEMPERATURE = 1u << 0, /* number > 0, or {start, end, over}: temperature* fields */
    LOSS_KEY_LAYERS = 1u << 1,      /* uniform | last | [[s, t], ...]: map, pairs */
    LOSS_KEY_TARGET = 1u << 2,      /* scores | probs: target */
    LOSS_KEY_PROJECTION = 1u << 3,  /* auto | per_pair | shared | none: projection */
    LOSS_KEY_TEACHER = 1u << 4,     /* a teacher's name or 1-based number: teacher */
};
#define LOSS_KEY_COUNT 8
typedef struct LossKeyInfo {
    const char *name;
    unsigned bit;               /* 0: every type */
} LossKeyInfo;
/* type, name, weight, temperature, layers, target, projection, teacher: the config's order. */
extern const LossKeyInfo LOSS_KEYS[LOSS_KEY_COUNT];

typedef struct LossTypeInfo {
    const char *name;           /* the config's `type:` and the default term name */
    const char *definition;     /* one line; configs/README.md's type table shows exactly this */
    unsigned keys;              /* LOSS_KEY_* bits of the optional keys that apply */
    LossReads reads;
    bool needs_teacher;
    LossLabels labels;
    LossMapKind map;            /* default map (the only one without LOSS_KEY_LAYERS) */
    LossAttnTarget target;      /* default target (the only one without LOSS_KEY_TARGET);
                                   DEFAULT: the type reads no attention */
    float temperature;          /* default; 0 for types without LOSS_KEY_TEMPERATURE */
} LossTypeInfo;

/* The row of type t (t in 0 .. LOSS_TYPE_COUNT). */
const LossTypeInfo *loss_type_info(LossType t);

/* Writes the names of the types whose row passes keep (every type when NULL), in table order,
 * separated by ", " and the last pair by last_sep (" and ", " or ", ", "). Returns buf. */
typedef bool (*LossTypeFilter)(const LossTypeInfo *info);
const char *loss_type_list(LossTypeFilter keep, const char *last_sep, char *buf, size_t cap);
/* The same for the types whose row has every LOSS_KEY_* bit of `keys`. */
const char *loss_types_taking(unsigned keys, const char *last_sep, char *buf, size_t cap);

typedef struct LossSet LossSet;

const char *loss_type_name(LossType t);
/* "logits_kd" -> LOSS_LOGITS_KD. Unknown names set an error listing the valid ones. */
Status loss_type_parse(const char *s, LossType *out);
const char *loss_map_name(LossMapKind m);            /* "none" | "uniform" | "last" | ... */
const char *loss_target_name(LossAttnTarget t);      /* "default" | "scores" | "probs" */
Status loss_target_parse(const char *s, LossAttnTarget *out);
const char *loss_projection_name(LossProjection p);  /* "auto" | "none" | "per_pair" | "shared" */
Status loss_projection_parse(const char *s, LossProjection *out);

/* A spec with the table's defaults: weight 1, the type's temperature (temperature_end 0, no
 * schedule), map and target, auto projection, the type's name. */
LossSpec loss_spec_default(LossType type);

/* The temperature of a logits term at `step` (1 for the other terms). */
float loss_spec_temperature(const LossSpec *spec, long step);

/* Validates the n specs against the student and teacher configs (teacher may be NULL when only
 * hard_ce / mse terms are asked for) and builds the set, projections included, on
 * `device`. On a bad spec returns DISTILL_ERR, *out = NULL, and an error that names the term
 * ("losses[2] (attention_mse): ...") and says what was expected and what was found. */
Status loss_set_build(const LossSpec *specs, int n, const BertConfig *student,
                      const BertConfig *teacher, Device device, uint64_t seed, LossSet **out);
/* The same with several teachers (n_teachers >= 1, teachers[k] the config of teacher k, or
 * n_teachers 0 and teachers NULL for label losses only). Each hidden-state or attention term reads
 * the teacher its spec names (spec.teacher in 0 .. n_teachers): its layer map resolves against
 * that teacher's layer count, its projection against that teacher's width, its heads must match
 * that teacher's. Logits terms read the combined logits the caller passes to
 * loss_set_forward_teachers; every teacher must then have the student's classifier size. A
 * `shared` projection serves terms of teachers of one width only. loss_set_build(student, t) is
 * loss_set_build_teachers(student, &t, t ? 1 : 0). */
Status loss_set_build_teachers(const LossSpec *specs, int n, const BertConfig *student,
                               const BertConfig *const *teachers, int n_teachers, Device device,
                               uint64_t seed, LossSet **out);
void loss_set_free(LossSet *ls);

/* Fills both requests (every field is overwritten) so each forward materialises only what a term
 * reads: hidden states, attention scores or probabilities of the mapped layers, and logits only
 * when a logits term needs them. The arrays stay owned by the set. The caller may ask for more
 * afterwards (e.g. student logits for accuracy). */
void loss_set_request(const LossSet *ls, BertRequest *student_req, BertRequest *teacher_req);

/* What teacher k's forward must return (every field overwritten), for a set built with several
 * teachers: its mapped hidden states and attention maps, and logits when a logits term needs the
 * combined logits. Returns false when no term reads teacher k at all (the caller may skip its
 * forward; with logits terms every teacher is read). */
bool loss_set_request_teacher(const LossSet *ls, int k, BertRequest *treq);
/* True when a logits term reads the (combined) teacher logits. */
bool loss_set_needs_teacher_logits(const LossSet *ls);
int loss_set_teachers(const LossSet *ls); /* the n_teachers it was built with */

/* How several teachers' logits z_k (weights w_k, w^_k = w_k / sum_k w_k) become the teacher side
 * of the logits terms. LOGITS (the default): the caller passes one combined tensor (e.g.
 * sum_k w^_k z_k) to loss_set_forward_teachers. PROBS: the set mixes the teachers' softened
 * distributions at each term's own temperature T (at the step): the teacher distribution is
 * sum_k w^_k softmax(z_k/T), passed to the term as the logits T log(sum_k w^_k softmax(z_k/T)),
 * whose softmax at T is exactly that mixture. Computed on the host in double (the logits are
 * B x C): one device sync per logits term per step. Teachers of weight 0 are skipped. */
typedef enum { LOSS_MIX_LOGITS = 0, LOSS_MIX_PROBS } LossTeacherMix;
/* weights: (n_teachers) >= 0 with a positive sum (read for PROBS; NULL = equal). */
void loss_set_teacher_mix(LossSet *ls, LossTeacherMix mix, const float *weights);

/* Computes every term and returns the total  sum_i weight_i * term_i  (a scalar [1] on c's tape;
 * teacher tensors are detached). `labels` is i32 (B) or f32 (B) as loss_set_labels says, else
 * ignored; `lengths_host` (B) is the number of valid tokens per row, needed by hidden_cos (may be
 * NULL otherwise); `step` drives temperature schedules. When `terms` is non-NULL it receives n
 * scalar tensors [1] on c's device, each term's weighted value (what the total sums), valid until
 * ctx_reset: nothing is read back (op_item reads one; the trainer reads them all at the step's end).
 * Returns NULL with an error when an input a term needs is missing or malformed (no teacher, a
 * hidden state the forward did not return, labels of the wrong dtype or out of range, ...). */
Tensor *loss_set_forward(Ctx *c, LossSet *ls, const BertOutput *student, const BertOutput *teacher,
                         Tensor *labels, const int32_t *lengths_host, long step, Tensor **terms);

/* The same with several teachers: teachers[k] (n_teachers of them, as built; an entry no term
 * reads may be all-NULL) feeds the hidden-state and attention terms that name teacher k;
 * teacher_logits (B, C) is what the logits terms read (NULL when none needs it, or with
 * LOSS_MIX_PROBS, where the terms mix teachers[k].logits themselves). */
Tensor *loss_set_forward_teachers(Ctx *c, LossSet *ls, const BertOutput *student,
                                  const BertOutput *teachers, int n_teachers, Tensor *teacher_logits,
                                  Tensor *labels, const int32_t *lengths_host, long step,
                                  Tensor **terms);

int loss_set_size(const LossSet *ls);
/* The term's resolved spec (name filled in, target resolved, explicit pairs as given). */
const LossSpec *loss_set_spec(const LossSet *ls, int i);
/* The resolved layer pairs of term i (hidden-state indices; for attention terms the 1-based
 * encoder layers), n via *n_pairs. */
const LossLayerPair *loss_set_pairs(const LossSet *ls, int i, int *n_pairs);
/* The projections (all named LOSS_PROJECTION_PREFIX...), or NULL when no term has one. */
ParamStore *loss_set_params(const LossSet *ls);
bool loss_set_needs_teacher(const LossSet *ls);
LossLabels loss_set_labels(const LossSet *ls);
/* One line per term: name, type, weight, temperature schedule, pairs, target, projection. */
void loss_set_print(const LossSet *ls, FILE *f);

#endif
