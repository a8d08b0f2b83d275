/*
 * test_losses_unit.c — unit tests of losses/ that need no reference: names and parsing, every
 * rejection of loss_set_build (checked by its message), layer maps, forward requests, temperature
 * schedules, projection naming and initialisation, the forward's errors on missing inputs, and
 * the plumbing with real BERT forwards: the requests make the models return exactly what every
 * term reads, gradient reaches the student and the projections, and none reaches the teacher.
 * Exits 1 on the first failed group's end, printing every failed check.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops.h"
#include "losses/losses.h"

#include "test_check.h"

static BertConfig cfg(int layers, int hidden, int heads, int labels) {
    BertConfig c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 100;
    c.hidden_size = hidden;
    c.num_hidden_layers = layers;
    c.num_attention_heads = heads;
    c.intermediate_size = 4 * hidden;
    c.max_position_embeddings = 64;
    c.type_vocab_size = 2;
    c.num_labels = labels;
    c.layer_norm_eps = 1e-12f;
    c.initializer_range = 0.02f;
    return c;
}

static LossSpec spec(LossType t) { return loss_spec_default(t); }

static LossSpec explicit_pairs(LossType t, int n, const int *p) {
    LossSpec s = loss_spec_default(t);
    s.map = LOSS_MAP_EXPLICIT;
    s.n_pairs = n;
    for (int i = 0; i < n; i++) s.pairs[i].student = p[2 * i], s.pairs[i].teacher = p[2 * i + 1];
    return s;
}

/* Expects loss_set_build to fail with a message holding every non-NULL needle. */
static void expect_reject(const char *what, const LossSpec *specs, int n, const BertConfig *st,
                          const BertConfig *te, const char *n1, const char *n2) {
    LossSet *ls = (LossSet *)0x1;
    distill_set_error("%s", "");
    Status s = loss_set_build(specs, n, st, te, device_cpu(), 1, &ls);
    CHECK(s == DISTILL_ERR, "%s: build accepted a bad spec", what);
    CHECK(ls == NULL, "%s: *out not cleared on failure", what);
    const char *msg = distill_error();
    CHECK(!n1 || strstr(msg, n1), "%s: message \"%s\" lacks \"%s\"", what, msg, n1);
    CHECK(!n2 || strstr(msg, n2), "%s: message \"%s\" lacks \"%s\"", what, msg, n2);
    if (s == DISTILL_OK) loss_set_free(ls);
}

static void test_names(void) {
    for (int t = 0; t < LOSS_TYPE_COUNT; t++) {
        LossType back = LOSS_TYPE_COUNT;
        CHECK(loss_type_parse(loss_type_name((LossType)t), &back) == DISTILL_OK && back == (LossType)t,
              "type %d does not round-trip through its name", t);
    }
    LossType x;
    CHECK(loss_type_parse("logit_kd", &x) == DISTILL_ERR, "a misspelt type parsed");
    CHECK(strstr(distill_error(), "'logit_kd'") && strstr(distill_error(), "logits_kd"),
          "unknown-type message: %s", distill_error());
    LossAttnTarget tg;
    CHECK(loss_target_parse("probs", &tg) == DISTILL_OK && tg == LOSS_TARGET_PROBS, "probs");
    CHECK(loss_target_parse("prob", &tg) == DISTILL_ERR, "a bad target parsed");
    LossProjection pr;
    CHECK(loss_projection_parse("shared", &pr) == DISTILL_OK && pr == LOSS_PROJ_SHARED, "shared");
    CHECK(loss_projection_parse("tied", &pr) == DISTILL_ERR, "a bad projection parsed");
}

/* The table (loss_table.c) is complete and self-consistent: every type has a row with a unique
 * name and a definition, keys that exist, and defaults its own validation accepts. */
static void test_table(void) {
    unsigned known = 0;
    for (int k = 0; k < LOSS_KEY_COUNT; k++) known |= LOSS_KEYS[k].bit;
    for (int t = 0; t < LOSS_TYPE_COUNT; t++) {
        const LossTypeInfo *i = loss_type_info((LossType)t);
        CHECK(i->name && i->name[0] && i->definition && i->definition[0], "type %d: no name or definition", t);
        if (!i->name || !i->definition) continue;
        CHECK(strlen(i->name) < LOSS_NAME_MAX, "%s: the name must fit LossSpec.name", i->name);
        for (int u = 0; u < t; u++)
            CHECK(strcmp(i->name, loss_type_info((LossType)u)->name) != 0, "%s: name used twice", i->name);
        CHECK((i->keys & ~known) == 0, "%s: keys 0x%x outside LOSS_KEYS", i->name, i->keys);
        bool layers = i->keys & LOSS_KEY_LAYERS;
        CHECK(layers ? (i->map == LOSS_MAP_UNIFORM || i->map == LOSS_MAP_LAST)
                     : (i->map == LOSS_MAP_NONE || i->map == LOSS_MAP_EMBEDDINGS),
              "%s: default map %s", i->name, loss_map_name(i->map));
        CHECK((i->map == LOSS_MAP_NONE) == (i->reads == LOSS_READS_LOGITS), "%s: a map iff it reads layers",
              i->name);
        CHECK((i->target != LOSS_TARGET_DEFAULT) == (i->reads == LOSS_READS_ATTENTION),
              "%s: a target iff it reads attention", i->name);
        CHECK(!(i->keys & LOSS_KEY_TARGET) || i->reads == LOSS_READS_ATTENTION, "%s: target key", i->name);
        CHECK(!(i->keys & LOSS_KEY_PROJECTION) || i->reads == LOSS_READS_HIDDEN, "%s: projection key",
              i->name);
        CHECK((i->temperature > 0.0f) == ((i->keys & LOSS_KEY_TEMPERATURE) != 0), "%s: default temperature",
              i->name);
        CHECK(i->needs_teacher || i->labels != LOSS_LABELS_NONE, "%s: reads neither teacher nor labels",
              i->name);

        /* The defaults build, against the models each type needs. */
        LossSpec d = loss_spec_default((LossType)t);
        CHECK(d.type == (LossType)t && strcmp(d.name, i->name) == 0 && d.weight == 1.0f &&
              d.map == i->map && d.target == i->target, "%s: loss_spec_default", i->name);
        BertConfig st = cfg(2, 8, 2, i->labels == LOSS_LABELS_REGRESSION ? 1 : 3), te = cfg(4, 16, 2, 3);
        LossSet *ls = NULL;
        CHECK(loss_set_build(&d, 1, &st, i->needs_teacher ? &te : NULL, device_cpu(), 1, &ls) == DISTILL_OK,
              "%s: its defaults do not build: %s", i->name, distill_error());
        if (ls) {
            CHECK(loss_set_needs_teacher(ls) == i->needs_teacher && loss_set_labels(ls) == i->labels,
                  "%s: the set disagrees with the row", i->name);
            loss_set_free(ls);
        }
    }
    char buf[256];
    CHECK(strcmp(loss_types_taking(LOSS_KEY_TEMPERATURE, " and ", buf, sizeof buf),
                 "logits_kd and logits_ce") == 0, "types taking temperature: %s", buf);
    LossMapKind maps[] = {LOSS_MAP_NONE, LOSS_MAP_UNIFORM, LOSS_MAP_LAST, LOSS_MAP_EMBEDDINGS,
                          LOSS_MAP_EXPLICIT};
    for (size_t m = 0; m < sizeof maps / sizeof *maps; m++)
        CHECK(strcmp(loss_map_name(maps[m]), "unknown") != 0, "map %zu has no name", m);
}

static void test_rejections(void) {
    BertConfig st = cfg(4, 312, 12, 2), te = cfg(12, 768, 12, 2);
    BertConfig te_heads = cfg(12, 768, 8, 2), te_short = cfg(3, 768, 12, 2);
    BertConfig st_one = cfg(4, 312, 12, 1), te_three = cfg(12, 768, 12, 3);
    LossSpec s[2];

    s[0] = spec(LOSS_ATTENTION_MSE);
    expect_reject("head mismatch", s, 1, &st, &te_heads, "losses[0] (attention_mse)",
                  "the student has 12 heads, the teacher 8");
    s[0] = spec(LOSS_ATTENTION_KL);
    expect_reject("head mismatch (kl)", s, 1, &st, &te_heads, "head counts must match", NULL);

    int bad_student[4] = {1, 3, 5, 12};
    s[0] = explicit_pairs(LOSS_HIDDEN_MSE, 2, bad_student);
    expect_reject("student layer out of range", s, 1, &st, &te, "layers[1]: student layer 5 is out of range",
                  "0..4");
    int bad_teacher[2] = {2, 13};
    s[0] = explicit_pairs(LOSS_HIDDEN_MSE, 1, bad_teacher);
    expect_reject("teacher layer out of range", s, 1, &st, &te, "teacher layer 13 is out of range",
                  "0..12");
    int att_zero[2] = {0, 0};
    s[0] = explicit_pairs(LOSS_ATTENTION_MSE, 1, att_zero);
    expect_reject("attention layer 0", s, 1, &st, &te, "student layer 0 is out of range",
                  "encoder layers 1..4");
    int neg[2] = {1, -1};
    s[0] = explicit_pairs(LOSS_HIDDEN_COS, 1, neg);
    expect_reject("negative layer", s, 1, &st, &te, "teacher layer -1 is out of range", NULL);
    s[0] = explicit_pairs(LOSS_HIDDEN_MSE, 0, NULL);
    expect_reject("empty explicit map", s, 1, &st, &te, "needs 1 to 64 pairs, found 0", NULL);
    s[0] = spec(LOSS_HIDDEN_MSE);
    expect_reject("uniform with fewer teacher layers", s, 1, &st, &te_short,
                  "at least as many teacher layers", "student 4, teacher 3");
    s[0] = explicit_pairs(LOSS_EMBEDDING_MSE, 1, att_zero);
    expect_reject("embedding with a map", s, 1, &st, &te, "always compares the embedding outputs", NULL);
    s[0] = explicit_pairs(LOSS_LOGITS_KD, 1, bad_teacher);
    expect_reject("logits with a map", s, 1, &st, &te, "takes no layer map", NULL);

    s[0] = spec(LOSS_HIDDEN_MSE);
    s[0].projection = LOSS_PROJ_NONE;
    expect_reject("width mismatch without projection", s, 1, &st, &te, "student width 312 differs from "
                  "teacher width 768", "projection is none");
    s[0] = spec(LOSS_HIDDEN_COS);
    s[0].projection = LOSS_PROJ_NONE;
    expect_reject("cos width mismatch without projection", s, 1, &st, &te, "losses[0] (hidden_cos)",
                  "differs");
    s[0] = spec(LOSS_LOGITS_KD);
    s[0].projection = LOSS_PROJ_SHARED;
    expect_reject("projection on logits", s, 1, &st, &te, "projection applies only to", NULL);

    s[0] = spec(LOSS_LOGITS_KD);
    expect_reject("no teacher", s, 1, &st, NULL, "losses[0] (logits_kd): needs a teacher", NULL);
    expect_reject("teacher label mismatch", s, 1, &st, &te_three, "student 2, teacher 3", NULL);
    s[0] = spec(LOSS_HARD_CE);
    expect_reject("hard_ce on a 1-output head", s, 1, &st_one, NULL, "at least 2 labels",
                  "num_labels 1");
    s[0] = spec(LOSS_HARD_CE);
    s[1] = spec(LOSS_MSE);
    expect_reject("hard_ce with mse", s, 2, &st, NULL, "losses[1] (mse)",
                  "cannot be combined with hard_ce");
    s[0] = spec(LOSS_HIDDEN_MSE);
    s[1] = spec(LOSS_HIDDEN_MSE);
    expect_reject("duplicate names", s, 2, &st, &te, "losses[1] (hidden_mse)", "already used by losses[0]");
    s[0] = spec(LOSS_HIDDEN_MSE);
    snprintf(s[0].name, sizeof s[0].name, "hidden mse");
    expect_reject("bad name", s, 1, &st, &te, "name 'hidden mse' may hold only", NULL);

    s[0] = spec(LOSS_LOGITS_KD);
    s[0].temperature = -2.0f;
    expect_reject("negative temperature", s, 1, &st, &te, "temperature must be a finite number > 0",
                  "-2");
    s[0] = spec(LOSS_LOGITS_KD);
    s[0].temperature = 4.0f, s[0].temperature_steps = 100;
    expect_reject("schedule without an end", s, 1, &st, &te, "temperature_end must be", NULL);
    s[0] = spec(LOSS_LOGITS_CE);
    s[0].temperature = 4.0f, s[0].temperature_end = 1.0f;
    expect_reject("end without steps", s, 1, &st, &te, "temperature_steps is 0", NULL);
    s[0] = spec(LOSS_HIDDEN_MSE);
    s[0].temperature = 2.0f;
    expect_reject("temperature on hidden_mse", s, 1, &st, &te, "temperature applies only", NULL);
    s[0] = spec(LOSS_HIDDEN_MSE);
    s[0].target = LOSS_TARGET_PROBS;
    expect_reject("target on hidden_mse", s, 1, &st, &te, "target applies only", NULL);
    s[0] = spec(LOSS_ATTENTION_KL);
    s[0].target = LOSS_TARGET_SCORES;
    expect_reject("kl on scores", s, 1, &st, &te, "target must be probs, found scores", NULL);
    s[0] = spec(LOSS_HIDDEN_MSE);
    s[0].weight = -1.0f;
    expect_reject("negative weight", s, 1, &st, &te, "weight must be a finite number >= 0", NULL);
    s[0].weight = NAN;
    expect_reject("nan weight", s, 1, &st, &te, "weight must be", NULL);
    expect_reject("no terms", s, 0, &st, &te, "at least one loss term", NULL);
}

static void expect_pairs(const char *what, const LossSet *ls, int i, int n, const int *want) {
    int got_n = 0;
    const LossLayerPair *p = loss_set_pairs(ls, i, &got_n);
    CHECK(got_n == n, "%s: %d pairs, expected %d", what, got_n, n);
    for (int k = 0; k < n && k < got_n; k++)
        CHECK(p[k].student == want[2 * k] && p[k].teacher == want[2 * k + 1],
              "%s: pair %d is %d->%d, expected %d->%d", what, k, p[k].student, p[k].teacher,
              want[2 * k], want[2 * k + 1]);
}

static void test_maps_and_requests(void) {
    BertConfig st = cfg(4, 312, 12, 2), te = cfg(12, 768, 12, 2);
    int kl_pairs[2] = {4, 12};
    LossSpec s[6] = {spec(LOSS_HIDDEN_MSE), spec(LOSS_EMBEDDING_MSE), spec(LOSS_ATTENTION_MSE),
                     explicit_pairs(LOSS_ATTENTION_KL, 1, kl_pairs), spec(LOSS_HIDDEN_COS),
                     spec(LOSS_ATTENTION_MSE)};
    s[5].target = LOSS_TARGET_PROBS;
    snprintf(s[5].name, sizeof s[5].name, "att_probs");
    LossSet *ls = NULL;
    Status st_ = loss_set_build(s, 6, &st, &te, device_cpu(), 3, &ls);
    CHECK(st_ == DISTILL_OK, "build: %s", distill_error());
    if (st_ != DISTILL_OK) return;
    int uniform[8] = {1, 3, 2, 6, 3, 9, 4, 12}, emb[2] = {0, 0}, last[2] = {4, 12};
    expect_pairs("uniform 4 of 12", ls, 0, 4, uniform);
    expect_pairs("embeddings", ls, 1, 1, emb);
    expect_pairs("attention uniform", ls, 2, 4, uniform);
    expect_pairs("attention explicit", ls, 3, 1, kl_pairs);
    expect_pairs("cos", ls, 4, 1, last);
    CHECK(strcmp(loss_set_spec(ls, 2)->name, "attention_mse") == 0, "default name");
    CHECK(loss_set_spec(ls, 2)->target == LOSS_TARGET_SCORES, "attention_mse defaults to scores");
    CHECK(loss_set_spec(ls, 3)->target == LOSS_TARGET_PROBS, "attention_kl reads probs");
    CHECK(loss_set_needs_teacher(ls), "needs a teacher");
    CHECK(loss_set_labels(ls) == LOSS_LABELS_NONE, "reads no labels");

    BertRequest sr, tr;
    memset(&sr, 0xff, sizeof sr);
    loss_set_request(ls, &sr, &tr);
    CHECK(sr.no_logits && tr.no_logits, "no logits term: logits not requested");
    CHECK(!sr.all_hidden && !sr.all_scores && !sr.all_probs && !sr.want_pooled, "fields overwritten");
    CHECK(sr.hidden && tr.hidden && sr.scores && tr.scores && sr.probs && tr.probs, "arrays set");
    if (sr.hidden && tr.hidden && sr.scores && tr.scores && sr.probs && tr.probs) {
        for (int i = 0; i <= 4; i++) CHECK(sr.hidden[i], "student hidden %d requested", i);
        for (int i = 0; i <= 12; i++)
            CHECK(tr.hidden[i] == (i % 3 == 0), "teacher hidden %d: %d", i, tr.hidden[i]);
        for (int i = 0; i < 4; i++) CHECK(sr.scores[i] && sr.probs[i], "student attention %d", i);
        for (int i = 0; i < 12; i++) {
            CHECK(tr.scores[i] == (i % 3 == 2), "teacher scores %d", i); /* layers 3, 6, 9, 12 */
            CHECK(tr.probs[i] == (i % 3 == 2), "teacher probs %d", i);
        }
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    loss_set_print(ls, f);
    fclose(f);
    CHECK(strstr(buf, "1->3 2->6 3->9 4->12") && strstr(buf, "att_probs") &&
          strstr(buf, "target scores"), "print: %s", buf);
    free(buf);
    loss_set_free(ls);

    /* Only logits terms: no hidden states or attention, logits on both sides. */
    LossSpec k[2] = {spec(LOSS_LOGITS_KD), spec(LOSS_HARD_CE)};
    CHECK(loss_set_build(k, 2, &st, &te, device_cpu(), 3, &ls) == DISTILL_OK, "%s", distill_error());
    loss_set_request(ls, &sr, &tr);
    CHECK(!sr.no_logits && !tr.no_logits && !sr.hidden && !tr.hidden && !sr.scores && !tr.probs,
          "logits-only request");
    CHECK(loss_set_labels(ls) == LOSS_LABELS_CLASS, "hard_ce reads class labels");
    CHECK(loss_set_params(ls) == NULL, "no projections");
    loss_set_free(ls);

    /* Labels only: no teacher at all. */
    LossSpec r[1] = {spec(LOSS_MSE)};
    BertConfig reg = cfg(2, 32, 2, 1);
    CHECK(loss_set_build(r, 1, &reg, NULL, device_cpu(), 3, &ls) == DISTILL_OK, "%s", distill_error());
    CHECK(!loss_set_needs_teacher(ls) && loss_set_labels(ls) == LOSS_LABELS_REGRESSION, "regression");
    loss_set_free(ls);
}

/* `layers: last` reaches losses/ as LOSS_MAP_LAST and resolves to (M, N) here; any type that takes
 * a map takes every map kind (hidden_cos under uniform gets the whole uniform map). */
static void test_map_kinds(void) {
    BertConfig st = cfg(4, 312, 12, 2), te = cfg(12, 768, 12, 2);
    LossSpec s[3] = {spec(LOSS_HIDDEN_MSE), spec(LOSS_ATTENTION_KL), spec(LOSS_HIDDEN_COS)};
    s[0].map = s[1].map = LOSS_MAP_LAST;
    s[2].map = LOSS_MAP_UNIFORM;
    LossSet *ls = NULL;
    CHECK(loss_set_build(s, 3, &st, &te, device_cpu(), 3, &ls) == DISTILL_OK, "%s", distill_error());
    if (!ls) return;
    int last[2] = {4, 12}, uniform[8] = {1, 3, 2, 6, 3, 9, 4, 12};
    expect_pairs("hidden last", ls, 0, 1, last);
    expect_pairs("attention last", ls, 1, 1, last);
    expect_pairs("cos uniform", ls, 2, 4, uniform);
    loss_set_free(ls);
    s[0] = spec(LOSS_HIDDEN_MSE);
    s[0].map = LOSS_MAP_EMBEDDINGS;
    expect_reject("hidden_mse with the embeddings map", s, 1, &st, &te, "expected a layer map uniform, "
                  "last or explicit, found embeddings", NULL);
    s[0] = spec(LOSS_LOGITS_KD);
    s[0].map = LOSS_MAP_LAST;
    expect_reject("logits with last", s, 1, &st, &te, "takes no layer map", "found map last");
    s[0] = spec(LOSS_HIDDEN_MSE);
    s[0].map = LOSS_MAP_LAST;
    BertConfig flat = cfg(0, 312, 12, 2);
    expect_reject("last on a 0-layer student", s, 1, &flat, &te, "no encoder layers", NULL);
}

static void test_temperature(void) {
    LossSpec s = spec(LOSS_LOGITS_KD);
    CHECK(loss_spec_temperature(&s, 0) == 1.0f && loss_spec_temperature(&s, 1000) == 1.0f,
          "default T is 1");
    s.temperature = 4.0f, s.temperature_end = 1.0f, s.temperature_steps = 10;
    /* Exact binary fractions: 4 + (1 - 4) * 5/10 = 2.5 and 4 - 3 * 0.2 = 3.4 within fp32. */
    CHECK(loss_spec_temperature(&s, 0) == 4.0f, "start");
    CHECK(loss_spec_temperature(&s, 5) == 2.5f, "middle: %g", loss_spec_temperature(&s, 5));
    CHECK(fabsf(loss_spec_temperature(&s, 2) - 3.4f) <= 4e-7f, "step 2: %g",
          loss_spec_temperature(&s, 2)); /* one fp32 rounding of 3.4: half an ulp is 1.2e-7 */
    CHECK(loss_spec_temperature(&s, 10) == 1.0f && loss_spec_temperature(&s, 99) == 1.0f, "end");
    s.temperature_steps = 0;
    CHECK(loss_spec_temperature(&s, 7) == 4.0f, "constant");
    LossSpec h = spec(LOSS_HIDDEN_MSE);
    CHECK(loss_spec_temperature(&h, 3) == 1.0f, "non-logits terms have T = 1");
}

static void read_param(const ParamStore *ps, const char *name, float **host, size_t *n) {
    Tensor *t = params_find(ps, name);
    *host = NULL;
    *n = 0;
    CHECK(t != NULL, "projection %s missing", name);
    if (!t) return;
    *n = t->numel;
    *host = xmalloc(t->numel * sizeof(float));
    tensor_to_host(t, *host);
}

static void test_projections(void) {
    BertConfig st = cfg(4, 312, 12, 2), te = cfg(12, 768, 12, 2);
    LossSpec s[3] = {spec(LOSS_HIDDEN_MSE), spec(LOSS_EMBEDDING_MSE), spec(LOSS_HIDDEN_COS)};
    snprintf(s[0].name, sizeof s[0].name, "hidden");
    LossSet *ls = NULL;
    CHECK(loss_set_build(s, 3, &st, &te, device_cpu(), 42, &ls) == DISTILL_OK, "%s", distill_error());
    if (!ls) return;
    ParamStore *ps = loss_set_params(ls);
    CHECK(ps && ps->n == 2 * (4 + 1 + 1), "per-pair projections: %d tensors", ps ? ps->n : -1);
    if (!ps) return;
    for (int i = 0; i < ps->n; i++)
        CHECK(strncmp(ps->tensors[i]->name, LOSS_PROJECTION_PREFIX, strlen(LOSS_PROJECTION_PREFIX)) == 0,
              "name %s", ps->tensors[i]->name);
    Tensor *w = params_find(ps, "projections.hidden.3.weight");
    CHECK(w && w->ndim == 2 && w->shape[0] == 768 && w->shape[1] == 312, "weight is (768, 312)");
    CHECK(params_find(ps, "projections.embedding_mse.0.bias") != NULL, "embedding projection");
    CHECK(params_find(ps, "projections.hidden_cos.0.weight") != NULL, "cos projection");
    CHECK(params_count(ps, "") == (size_t)6 * (768 * 312 + 768), "parameter count");
    CHECK(ps->no_decay[params_index(ps, "projections.hidden.0.bias")] &&
          !ps->no_decay[params_index(ps, "projections.hidden.0.weight")], "bias excluded from decay");

    /* Hugging Face's init: weight normal(0, 0.02), bias 0. Over n = 239,616 draws the sample std
     * has a relative standard error of 1/sqrt(2n) = 0.14%, the mean a standard error of
     * 0.02/sqrt(n) = 4.1e-5: bounds of 1% and 3e-4 are 7 standard errors. */
    float *h = NULL;
    size_t n = 0;
    read_param(ps, "projections.hidden.1.weight", &h, &n);
    if (h) {
        double sum = 0, sq = 0;
        for (size_t i = 0; i < n; i++) sum += h[i], sq += (double)h[i] * h[i];
        double mean = sum / n, sd = sqrt(sq / n - mean * mean);
        CHECK(fabs(mean) < 3e-4 && fabs(sd - 0.02) < 0.0002, "init mean %g std %g", mean, sd);
    }
    float *b = NULL, *w0 = NULL, *w1 = NULL;
    size_t nb = 0, n0 = 0, n1 = 0;
    read_param(ps, "projections.hidden.1.bias", &b, &nb);
    for (size_t i = 0; b && i < nb; i++) CHECK(b[i] == 0.0f, "bias %zu = %g", i, b[i]);
    read_param(ps, "projections.hidden.0.weight", &w0, &n0);
    CHECK(w0 && h && memcmp(w0, h, n0 * sizeof(float)) != 0, "pairs get different draws");

    /* Same seed, same weights; another seed, other weights. */
    LossSet *again = NULL, *other = NULL;
    CHECK(loss_set_build(s, 3, &st, &te, device_cpu(), 42, &again) == DISTILL_OK, "rebuild");
    CHECK(loss_set_build(s, 3, &st, &te, device_cpu(), 43, &other) == DISTILL_OK, "rebuild");
    if (again && other) {
        read_param(loss_set_params(again), "projections.hidden.1.weight", &w1, &n1);
        CHECK(w1 && h && memcmp(w1, h, n * sizeof(float)) == 0, "seeded init is deterministic");
        free(w1);
        read_param(loss_set_params(other), "projections.hidden.1.weight", &w1, &n1);
        CHECK(w1 && h && memcmp(w1, h, n * sizeof(float)) != 0, "another seed draws anew");
    }
    free(h), free(b), free(w0), free(w1);
    loss_set_free(again);
    loss_set_free(other);
    loss_set_free(ls);

    /* Shared: one projection for the hidden and embedding terms; equal widths + auto: none. */
    s[0].projection = s[1].projection = LOSS_PROJ_SHARED;
    CHECK(loss_set_build(s, 2, &st, &te, device_cpu(), 42, &ls) == DISTILL_OK, "%s", distill_error());
    ps = loss_set_params(ls);
    CHECK(ps && ps->n == 2 && params_find(ps, "projections.shared.weight") &&
          params_find(ps, "projections.shared.bias"), "one shared projection");
    loss_set_free(ls);
    BertConfig same = cfg(12, 312, 12, 2);
    LossSpec a[1] = {spec(LOSS_HIDDEN_MSE)};
    CHECK(loss_set_build(a, 1, &st, &same, device_cpu(), 42, &ls) == DISTILL_OK, "%s", distill_error());
    CHECK(loss_set_params(ls) == NULL, "equal widths with auto: no projection");
    loss_set_free(ls);
}

static void test_forward_errors(void) {
    BertConfig st = cfg(2, 4, 2, 3), te = cfg(4, 4, 2, 3);
    Ctx *c = ctx_new(device_cpu(), 1);
    LossSpec s[2] = {spec(LOSS_HIDDEN_MSE), spec(LOSS_HARD_CE)};
    LossSet *ls = NULL;
    CHECK(loss_set_build(s, 2, &st, &te, device_cpu(), 1, &ls) == DISTILL_OK, "%s", distill_error());
    if (!ls) return;
    int hs[3] = {2, 3, 4}, ls_[2] = {2, 3}, b1[1] = {2};
    Tensor *h[5] = {0};
    for (int i = 0; i < 5; i++) h[i] = ctx_zeros(c, DT_F32, 3, hs);
    Tensor *logits = ctx_zeros(c, DT_F32, 2, ls_);
    BertOutput so = {0}, to = {0};
    so.logits = logits;
    so.hidden = h;
    to.hidden = h;
    int32_t good[2] = {0, 2}, bad[2] = {1, 3}, lengths[2] = {3, 2};
    Tensor *labels = ctx_from_host(c, DT_I32, 1, b1, good);

    CHECK(loss_set_forward(c, ls, &so, NULL, labels, lengths, 0, NULL) == NULL &&
          strstr(distill_error(), "loss 'hidden_mse' (hidden_mse): needs the teacher's outputs"),
          "no teacher: %s", distill_error());
    Tensor *saved = h[2];
    h[2] = NULL; /* teacher hidden 2 (the uniform map sends student 1 to teacher 2) */
    CHECK(loss_set_forward(c, ls, &so, &to, labels, lengths, 0, NULL) == NULL &&
          strstr(distill_error(), "did not return hidden state 2"), "missing state: %s",
          distill_error());
    h[2] = saved;
    CHECK(loss_set_forward(c, ls, &so, &to, NULL, lengths, 0, NULL) == NULL &&
          strstr(distill_error(), "loss 'hard_ce' (hard_ce): needs class labels"), "no labels: %s",
          distill_error());
    Tensor *fl = ctx_zeros(c, DT_F32, 1, b1);
    CHECK(loss_set_forward(c, ls, &so, &to, fl, lengths, 0, NULL) == NULL &&
          strstr(distill_error(), "expected class labels i32 [2], found f32"), "label dtype: %s",
          distill_error());
    Tensor *oob = ctx_from_host(c, DT_I32, 1, b1, bad);
    CHECK(loss_set_forward(c, ls, &so, &to, oob, lengths, 0, NULL) == NULL &&
          strstr(distill_error(), "label 3 of row 1 is out of range: expected 0..2"), "label range: %s",
          distill_error());
    float terms[2] = {-1, -1};
    Tensor *term_t[2] = {NULL, NULL};
    Tensor *total = loss_set_forward(c, ls, &so, &to, labels, lengths, 0, term_t);
    for (int i = 0; i < 2 && total; i++) terms[i] = op_item(term_t[i]);
    /* All-zero logits: CE = log 3 exactly up to fp32 rounding of the log (|err| <= 1e-6). */
    CHECK(total && fabsf(terms[0]) == 0.0f && fabsf(terms[1] - logf(3.0f)) < 1e-6f,
          "zero inputs: terms %g %g", terms[0], terms[1]);
    loss_set_free(ls);
    ctx_free(c);
}

/* Expects loss_set_build_teachers to fail with a message holding `needle`. */
static void expect_reject_teachers(const char *what, const LossSpec *specs, int n, const BertConfig *st,
                                   const BertConfig *const *tes, int n_teachers, const char *needle) {
    LossSet *ls = (LossSet *)0x1;
    distill_set_error("%s", "");
    Status s = loss_set_build_teachers(specs, n, st, tes, n_teachers, device_cpu(), 1, &ls);
    CHECK(s == DISTILL_ERR && ls == NULL, "%s: build accepted a bad spec", what);
    CHECK(strstr(distill_error(), needle), "%s: message \"%s\" lacks \"%s\"", what, distill_error(), needle);
    if (s == DISTILL_OK) loss_set_free(ls);
}

/* Several teachers: each hidden/attention term resolves its map, heads and projection width
 * against its own teacher and requests only that teacher's states; logits terms read the
 * combined logits passed in (the same value as one teacher whose logits they are); the
 * rejections name the teacher. */
static void test_teachers(void) {
    BertConfig st = cfg(2, 8, 2, 3), t1 = cfg(4, 16, 2, 3), t2 = cfg(6, 24, 4, 3);
    const BertConfig *tes[2] = {&t1, &t2};
    LossSpec s[3] = {spec(LOSS_LOGITS_KD), spec(LOSS_HIDDEN_MSE), spec(LOSS_ATTENTION_KL)};
    s[1].teacher = 1;          /* uniform against teacher 2's 6 layers */
    s[2].map = LOSS_MAP_LAST;  /* teacher 1's last layer */
    LossSet *ls = NULL;
    CHECK(loss_set_build_teachers(s, 3, &st, tes, 2, device_cpu(), 1, &ls) == DISTILL_OK, "%s", distill_error());
    if (!ls) return;
    CHECK(loss_set_teachers(ls) == 2 && loss_set_needs_teacher_logits(ls), "two teachers, logits read");
    int want_hidden[4] = {1, 3, 2, 6}, want_attn[2] = {2, 4};
    expect_pairs("hidden_mse on teacher 2", ls, 1, 2, want_hidden);
    expect_pairs("attention_kl on teacher 1", ls, 2, 1, want_attn);
    BertRequest q0, q1;
    CHECK(loss_set_request_teacher(ls, 0, &q0) && loss_set_request_teacher(ls, 1, &q1), "both teachers read");
    CHECK(!q0.hidden && q0.probs && q0.probs[3] && !q0.probs[0] && !q0.no_logits, "teacher 1: layer 4's probs, logits");
    CHECK(q1.hidden && q1.hidden[3] && q1.hidden[6] && !q1.hidden[0] && !q1.probs && !q1.scores && !q1.no_logits,
          "teacher 2: hidden states 3 and 6, logits");
    ParamStore *ps = loss_set_params(ls);
    CHECK(ps && ps->n == 4 && ps->tensors[0]->shape[0] == 24 && ps->tensors[0]->shape[1] == 8,
          "hidden_mse projects 8 -> teacher 2's 24");
    loss_set_free(ls);

    /* a set without logits terms: a teacher no term reads is not requested */
    LossSpec h = spec(LOSS_HIDDEN_MSE);
    h.teacher = 1;
    CHECK(loss_set_build_teachers(&h, 1, &st, tes, 2, device_cpu(), 1, &ls) == DISTILL_OK, "%s", distill_error());
    if (ls) {
        CHECK(!loss_set_request_teacher(ls, 0, &q0) && q0.no_logits && !q0.hidden, "teacher 1 unread");
        CHECK(loss_set_request_teacher(ls, 1, &q1) && q1.no_logits, "teacher 2 read, no logits");
        loss_set_free(ls);
    }

    LossSpec bad = spec(LOSS_HIDDEN_MSE);
    bad.teacher = 2;
    expect_reject_teachers("teacher 3 of 2", &bad, 1, &st, tes, 2, "teacher 3 does not exist: expected 1..2");
    bad = spec(LOSS_LOGITS_KD);
    bad.teacher = 1;
    expect_reject_teachers("teacher on logits", &bad, 1, &st, tes, 2, "teacher applies only to hidden_mse");
    bad = spec(LOSS_ATTENTION_KL);
    bad.teacher = 1;
    expect_reject_teachers("heads of teacher 2", &bad, 1, &st, tes, 2, "the teacher 4");
    BertConfig t2_labels = t2;
    t2_labels.num_labels = 2;
    const BertConfig *tes_labels[2] = {&t1, &t2_labels};
    LossSpec kd = spec(LOSS_LOGITS_KD);
    expect_reject_teachers("labels of teacher 2", &kd, 1, &st, tes_labels, 2, "teacher 2 2");
    LossSpec sh[2] = {spec(LOSS_HIDDEN_MSE), spec(LOSS_EMBEDDING_MSE)};
    sh[0].projection = sh[1].projection = LOSS_PROJ_SHARED;
    sh[1].teacher = 1;
    expect_reject_teachers("shared projection, two widths", sh, 2, &st, tes, 2,
                           "a shared projection maps to one width");

    /* the logits terms read the logits given as combined: the same value as one teacher whose
     * own logits they are (the trainer's combination is checked end to end by teachers_logits) */
    Ctx *c = ctx_new(device_cpu(), 1);
    int shape[2] = {2, 3};
    float zs[6] = {0.1f, -0.4f, 0.3f, 1.0f, 0.0f, -1.0f}, zt[6] = {0.5f, 0.2f, -0.3f, -0.2f, 0.7f, 0.1f};
    BertOutput so = {0}, to = {0}, outs[2] = {{0}, {0}};
    so.logits = ctx_from_host(c, DT_F32, 2, shape, zs);
    to.logits = ctx_from_host(c, DT_F32, 2, shape, zt);
    LossSet *one = NULL, *two = NULL;
    CHECK(loss_set_build(&kd, 1, &st, &t1, device_cpu(), 1, &one) == DISTILL_OK, "%s", distill_error());
    CHECK(loss_set_build_teachers(&kd, 1, &st, tes, 2, device_cpu(), 1, &two) == DISTILL_OK, "%s", distill_error());
    if (one && two) {
        float v1 = -1, v2 = -2;
        Tensor *t1 = NULL, *t2 = NULL;
        CHECK(loss_set_forward(c, one, &so, &to, NULL, NULL, 0, &t1) != NULL, "%s", distill_error());
        CHECK(loss_set_forward_teachers(c, two, &so, outs, 2, to.logits, NULL, NULL, 0, &t2) != NULL, "%s",
              distill_error());
        if (t1 && t2) v1 = op_item(t1), v2 = op_item(t2);
        CHECK(v1 == v2 && v1 > 0, "combined logits read as given: %g vs one teacher %g", v2, v1);
        CHECK(loss_set_forward_teachers(c, two, &so, outs, 2, NULL, NULL, NULL, 0, NULL) == NULL &&
              strstr(distill_error(), "no teacher logits were given"), "no combined logits: %s", distill_error());
    }
    loss_set_free(one);
    loss_set_free(two);
    ctx_free(c);
}

static double grad_sumsq(const ParamStore *ps, const char *prefix) {
    double sum = 0;
    for (int i = 0; i < ps->n; i++) {
        if (strncmp(ps->tensors[i]->name, prefix, strlen(prefix)) != 0) continue;
        sum += ps->be->sumsq(ps->grads[i]->data, ps->grads[i]->numel);
    }
    return sum;
}

static void test_with_bert(void) {
    BertConfig tc = bert_config_default(), sc;
    tc.vocab_size = 40, tc.hidden_size = 8, tc.num_hidden_layers = 4, tc.num_attention_heads = 2;
    tc.intermediate_size = 16, tc.max_position_embeddings = 16, tc.num_labels = 3;
    sc = tc;
    sc.hidden_size = 6, sc.num_hidden_layers = 2, sc.intermediate_size = 12;
    Bert *teacher = bert_build(&tc, device_cpu()), *student = bert_build(&sc, device_cpu());
    bert_init(teacher, 5);
    bert_init(student, 6);
    LossSpec s[7] = {spec(LOSS_LOGITS_KD), spec(LOSS_HARD_CE), spec(LOSS_HIDDEN_MSE),
                     spec(LOSS_EMBEDDING_MSE), spec(LOSS_ATTENTION_MSE), spec(LOSS_ATTENTION_KL),
                     spec(LOSS_HIDDEN_COS)};
    s[0].temperature = 2.0f;
    s[3].projection = LOSS_PROJ_SHARED;
    LossSet *ls = NULL;
    CHECK(loss_set_build(s, 7, &sc, &tc, device_cpu(), 9, &ls) == DISTILL_OK, "%s", distill_error());
    if (!ls) return;
    BertRequest sreq, treq;
    loss_set_request(ls, &sreq, &treq);

    enum { B = 2, S = 5 };
    int32_t ids[B * S] = {2, 17, 5, 9, 3, 2, 30, 3, 0, 0}, lengths[B] = {5, 3}, labels[B] = {2, 0};
    int bs[2] = {B, S}, b1[1] = {B};
    Ctx *c = ctx_new(device_cpu(), 1);
    BertInput in = {ctx_from_host(c, DT_I32, 2, bs, ids), NULL, ctx_from_host(c, DT_I32, 1, b1, lengths),
                    lengths};
    BertOutput so, to;
    bool was = ctx_set_record(c, false); /* the teacher: no tape */
    bert_forward(c, teacher, &in, &treq, &to);
    ctx_set_record(c, was);
    int tape_before = c->tape.n;
    bert_forward(c, student, &in, &sreq, &so);
    CHECK(tape_before == 0 && c->tape.n > 0, "only the student records (%d, %d)", tape_before,
          c->tape.n);
    /* What the requests asked for and nothing the terms do not read. */
    CHECK(to.hidden[0] && to.hidden[2] && to.hidden[4] && !to.hidden[1] && !to.hidden[3],
          "teacher hidden states 0 (embeddings), 2, 4 (uniform; 4 also for cos) only");
    CHECK(to.scores[1] && to.scores[3] && !to.scores[0] && !to.scores[2], "teacher scores 2, 4 only");
    CHECK(to.probs[1] && to.probs[3] && !to.probs[0], "teacher probs 2, 4 only");
    CHECK(so.logits && to.logits, "logits on both sides");

    float terms[7];
    Tensor *term_t[7];
    Tensor *lab = ctx_from_host(c, DT_I32, 1, b1, labels);
    Tensor *total = loss_set_forward(c, ls, &so, &to, lab, lengths, 0, term_t);
    CHECK(total != NULL, "forward: %s", distill_error());
    if (total) {
        for (int i = 0; i < 7; i++) terms[i] = op_item(term_t[i]);
        float sum = 0;
        for (int i = 0; i < 7; i++) {
            CHECK(isfinite(terms[i]) && terms[i] >= 0.0f, "term %d = %g", i, terms[i]);
            sum += terms[i];
        }
        /* Sum of 7 fp32 scalars in the same order as the op_add chain: equal up to its roundings. */
        CHECK(fabsf(op_item(total) - sum) <= 1e-6f * sum, "total %g vs terms %g", op_item(total), sum);
        params_zero_grad(student->params);
        params_zero_grad(teacher->params);
        params_zero_grad(loss_set_params(ls));
        ctx_backward(c, total);
        CHECK(grad_sumsq(student->params, "bert.encoder.layer.0.") > 0, "student gets gradient");
        CHECK(grad_sumsq(student->params, "classifier.") > 0, "student classifier gets gradient");
        CHECK(grad_sumsq(teacher->params, "") == 0.0, "teacher gets no gradient");
        ParamStore *ps = loss_set_params(ls);
        for (int i = 0; i < ps->n; i++)
            CHECK(ps->be->sumsq(ps->grads[i]->data, ps->grads[i]->numel) > 0,
                  "projection %s gets gradient", ps->tensors[i]->name);
    }
    ctx_free(c);
    loss_set_free(ls);
    bert_free(student);
    bert_free(teacher);
}

int main(void) {
    test_table();
    test_names();
    test_rejections();
    test_maps_and_requests();
    test_map_kinds();
    test_temperature();
    test_projections();
    test_forward_errors();
    test_teachers();
    test_with_bert();
    if (g_failures) {
        fprintf(stderr, "test_losses_unit: %d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_losses_unit: all checks passed\n");
    return 0;
}
