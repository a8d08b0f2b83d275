/*
 * test_losses_parity.c — the C half of the loss parity test (tests/test_losses_parity.py is the
 * other half and the one CTest runs).
 *
 * For each case it builds a LossSet from specs, fabricates student and teacher BertOutputs as
 * random leaf tensors (only what loss_set_request asks for, so a request that misses an input makes
 * the forward fail), runs loss_set_forward and ctx_backward on the CPU, and writes to the file named
 * by argv[1], as text: the case's shapes and specs (as given, unresolved, so the Python side
 * resolves layer maps and defaults on its own), every input, the projections, each weighted term,
 * the total, and the gradients of every student tensor and projection.
 *
 * It fails by itself (exit 1) when the teacher received any gradient, or when the total is not the
 * sum of the term values. With a second argument "cuda" everything runs on cuda:0; without a CUDA
 * backend or device it exits 77 (CTest's skip), or 1 when DISTILL_EXPECT_GPU=1.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops.h"
#include "engine/rng.h"
#include "losses/losses.h"

typedef struct Shapes {
    int M, N;       /* student, teacher encoder layers */
    int Hs, Ht;     /* widths */
    int heads;      /* both sides (attention losses need them equal) */
    int C;          /* classes (student and teacher) */
    int B, S;
    int lengths[8]; /* (B) */
} Shapes;

static int g_failures = 0;

static BertConfig make_config(int layers, int hidden, int heads, int labels) {
    BertConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.vocab_size = 50;
    cfg.hidden_size = hidden;
    cfg.num_hidden_layers = layers;
    cfg.num_attention_heads = heads;
    cfg.intermediate_size = 4 * hidden;
    cfg.max_position_embeddings = 64;
    cfg.type_vocab_size = 2;
    cfg.num_labels = labels;
    cfg.layer_norm_eps = 1e-12f;
    cfg.initializer_range = 0.02f;
    return cfg;
}

static void dump_values(FILE *f, const char *name, DType dt, int ndim, const int *shape,
                        const void *host, size_t n) {
    fprintf(f, "tensor %s %s %d", name, dtype_name(dt), ndim);
    for (int i = 0; i < ndim; i++) fprintf(f, " %d", shape[i]);
    fprintf(f, "\n");
    for (size_t i = 0; i < n; i++) {
        if (dt == DT_I32) fprintf(f, i ? " %d" : "%d", ((const int32_t *)host)[i]);
        else fprintf(f, i ? " %.9g" : "%.9g", (double)((const float *)host)[i]);
    }
    fprintf(f, "\n");
}

static void dump(FILE *f, const char *name, const Tensor *t) {
    void *host = xmalloc(tensor_bytes(t));
    tensor_to_host(t, host);
    dump_values(f, name, t->dtype, t->ndim, t->shape, host, t->numel);
    free(host);
}

/* A leaf (shape) of normal(0, scale) values. */
static Tensor *leaf_normal(Ctx *c, Rng *rng, int ndim, const int *shape, float scale, bool grad) {
    Tensor *t = ctx_tensor(c, DT_F32, ndim, shape);
    float *h = xmalloc(t->numel * sizeof *h);
    for (size_t i = 0; i < t->numel; i++) h[i] = (float)(rng_next_normal(rng) * scale);
    tensor_from_host(t, h);
    free(h);
    t->requires_grad = grad;
    return t;
}

/* Attention scores (B, h, S, S): scaled scores plus an additive mask on keys at or past the row's
 * length. Alternate leaves use Hugging Face's mask (float min: masked entries equal on both sides)
 * and the -10000 of the original BERT that TinyBERT ran on (masked entries then differ between
 * student and teacher, so only the <= -1e2 rule keeps them out of the loss); every 13th valid entry
 * is pushed below -1e2 on its side alone, which TinyBERT's rule zeroes on that side only. */
static Tensor *leaf_scores(Ctx *c, Rng *rng, const Shapes *sh, bool grad) {
    static int calls = 0;
    bool hf_mask = (calls++ % 2) == 0;
    int shape[4] = {sh->B, sh->heads, sh->S, sh->S};
    Tensor *t = ctx_tensor(c, DT_F32, 4, shape);
    float *h = xmalloc(t->numel * sizeof *h);
    size_t i = 0;
    for (int b = 0; b < sh->B; b++)
        for (int k = 0; k < sh->heads * sh->S; k++)
            for (int col = 0; col < sh->S; col++, i++) {
                float v = (float)(rng_next_normal(rng) * 3.0);
                if (col >= sh->lengths[b]) h[i] = hf_mask ? -FLT_MAX : v - 10000.0f;
                else h[i] = (i % 13 == 5) ? v - 150.0f : v;
            }
    tensor_from_host(t, h);
    free(h);
    t->requires_grad = grad;
    return t;
}

/* Attention probabilities (B, h, S, S): random positive rows over the valid keys, 0 elsewhere. */
static Tensor *leaf_probs(Ctx *c, Rng *rng, const Shapes *sh, bool grad) {
    int shape[4] = {sh->B, sh->heads, sh->S, sh->S};
    Tensor *t = ctx_tensor(c, DT_F32, 4, shape);
    float *h = xmalloc(t->numel * sizeof *h);
    for (int b = 0; b < sh->B; b++)
        for (int k = 0; k < sh->heads * sh->S; k++) {
            float *row = h + ((size_t)b * sh->heads * sh->S + k) * sh->S;
            double sum = 0;
            for (int col = 0; col < sh->S; col++) {
                row[col] = col < sh->lengths[b] ? (float)exp(rng_next_normal(rng)) : 0.0f;
                sum += row[col];
            }
            for (int col = 0; col < sh->S; col++) row[col] = (float)(row[col] / sum);
        }
    tensor_from_host(t, h);
    free(h);
    t->requires_grad = grad;
    return t;
}

/* Every leaf a case makes, so gradients can be dumped and checked after backward. */
typedef struct Leaf {
    char name[64];
    Tensor *t;
    bool teacher;
} Leaf;

typedef struct Leaves {
    Leaf v[128];
    int n;
} Leaves;

static Tensor *keep(Leaves *L, Tensor *t, bool teacher, const char *fmt, int idx) {
    DCHECK(L->n < 128);
    Leaf *l = &L->v[L->n++];
    snprintf(l->name, sizeof l->name, fmt, idx);
    l->t = t;
    l->teacher = teacher;
    return t;
}

/* Fills one side's BertOutput with what `req` asks for. */
static void fabricate(Ctx *c, Rng *rng, const Shapes *sh, const BertRequest *req, bool teacher,
                      Leaves *L, BertOutput *o) {
    int layers = teacher ? sh->N : sh->M, width = teacher ? sh->Ht : sh->Hs;
    const char *side = teacher ? "t" : "s";
    bool grad = true; /* teacher leaves ask for gradient too: the losses must not give them any */
    char fmt[64];
    memset(o, 0, sizeof *o);
    if (!req->no_logits) {
        int shape[2] = {sh->B, sh->C};
        snprintf(fmt, sizeof fmt, "%s.logits", side);
        o->logits = keep(L, leaf_normal(c, rng, 2, shape, 2.0f, grad), teacher, fmt, 0);
    }
    o->hidden = arena_alloc(c->meta, (size_t)(layers + 1) * sizeof(Tensor *));
    o->scores = arena_alloc(c->meta, (size_t)(layers + 1) * sizeof(Tensor *));
    o->probs = arena_alloc(c->meta, (size_t)(layers + 1) * sizeof(Tensor *));
    for (int i = 0; i <= layers; i++) o->hidden[i] = o->scores[i] = o->probs[i] = NULL;
    int hshape[3] = {sh->B, sh->S, width};
    for (int i = 0; i <= layers; i++)
        if (req->all_hidden || (req->hidden && req->hidden[i])) {
            snprintf(fmt, sizeof fmt, "%s.hidden.%%d", side);
            o->hidden[i] = keep(L, leaf_normal(c, rng, 3, hshape, 1.0f, grad), teacher, fmt, i);
        }
    for (int i = 0; i < layers; i++) {
        if (req->all_scores || (req->scores && req->scores[i])) {
            snprintf(fmt, sizeof fmt, "%s.scores.%%d", side);
            o->scores[i] = keep(L, leaf_scores(c, rng, sh, grad), teacher, fmt, i);
        }
        if (req->all_probs || (req->probs && req->probs[i])) {
            snprintf(fmt, sizeof fmt, "%s.probs.%%d", side);
            o->probs[i] = keep(L, leaf_probs(c, rng, sh, grad), teacher, fmt, i);
        }
    }
}

static Device g_device; /* where every case runs: cpu, or cuda:0 */

static void run_case(FILE *f, const char *name, const Shapes *sh, const LossSpec *specs, int n,
                     long step, uint64_t seed) {
    BertConfig st = make_config(sh->M, sh->Hs, sh->heads, sh->C);
    BertConfig te = make_config(sh->N, sh->Ht, sh->heads, sh->C);
    LossSet *ls = NULL;
    if (loss_set_build(specs, n, &st, &te, g_device, seed, &ls) != DISTILL_OK) {
        fprintf(stderr, "case %s: loss_set_build failed: %s\n", name, distill_error());
        g_failures++;
        return;
    }
    fprintf(f, "case %s\n", name);
    fprintf(f, "shapes %d %d %d %d %d %d %d %d %ld\n", sh->M, sh->N, sh->Hs, sh->Ht, sh->heads,
            sh->C, sh->B, sh->S, step);
    for (int i = 0; i < n; i++) {
        const LossSpec *s = &specs[i];
        fprintf(f, "spec %s %.9g %.9g %.9g %ld %s %d", loss_type_name(s->type), (double)s->weight,
                (double)s->temperature, (double)s->temperature_end, s->temperature_steps,
                loss_map_name(s->map), s->n_pairs);
        for (int p = 0; p < s->n_pairs; p++) fprintf(f, " %d %d", s->pairs[p].student, s->pairs[p].teacher);
        fprintf(f, " %s %s %s\n", loss_target_name(s->target), loss_projection_name(s->projection),
                s->name[0] ? s->name : "-");
    }

    Ctx *c = ctx_new(g_device, 1);
    Rng rng = rng_new(seed * 7919 + 17);
    Leaves L;
    L.n = 0;
    BertRequest sreq, treq;
    loss_set_request(ls, &sreq, &treq);
    BertOutput so, to;
    fabricate(c, &rng, sh, &sreq, false, &L, &so);
    fabricate(c, &rng, sh, &treq, true, &L, &to);
    int lshape[1] = {sh->B};
    dump_values(f, "lengths", DT_I32, 1, lshape, sh->lengths, (size_t)sh->B);
    Tensor *labels = NULL;
    if (loss_set_labels(ls) == LOSS_LABELS_CLASS) {
        int32_t y[8];
        for (int b = 0; b < sh->B; b++) y[b] = (int32_t)rng_next_below(&rng, (uint64_t)sh->C);
        labels = ctx_from_host(c, DT_I32, 1, lshape, y);
    } else if (loss_set_labels(ls) == LOSS_LABELS_REGRESSION) {
        labels = leaf_normal(c, &rng, 1, lshape, 1.5f, false);
    }
    if (labels) dump(f, "labels", labels);
    for (int i = 0; i < L.n; i++) dump(f, L.v[i].name, L.v[i].t);
    ParamStore *ps = loss_set_params(ls);
    if (ps) {
        params_zero_grad(ps);
        for (int k = 0; k < ps->n; k++) {
            char nm[192];
            snprintf(nm, sizeof nm, "param.%s", ps->tensors[k]->name);
            dump(f, nm, ps->tensors[k]);
        }
    }

    float terms[16];
    Tensor *term_t[16];
    Tensor *total = loss_set_forward(c, ls, &so, &to, labels, sh->lengths, step, term_t);
    for (int i = 0; i < n && total; i++) terms[i] = op_item(term_t[i]);
    if (!total) {
        fprintf(stderr, "case %s: loss_set_forward failed: %s\n", name, distill_error());
        g_failures++;
        fprintf(f, "end\n");
        ctx_free(c);
        loss_set_free(ls);
        return;
    }
    ctx_backward(c, total);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        char nm[32];
        int one = 1;
        snprintf(nm, sizeof nm, "out.term.%d", i);
        dump_values(f, nm, DT_F32, 1, &one, &terms[i], 1);
        sum += terms[i];
    }
    dump(f, "out.total", total);
    float tot = op_item(total);
    /* The total is the fp32 sum of at most 8 terms: 8 roundings of 6e-8 relative each. */
    if (fabs(tot - sum) > 1e-6 * (fabs(sum) + 1e-3)) {
        fprintf(stderr, "case %s: total %.9g is not the sum of its terms %.9g\n", name, tot, sum);
        g_failures++;
    }
    for (int i = 0; i < L.n; i++) {
        Leaf *l = &L.v[i];
        if (!l->t->grad) continue;
        float *g = xmalloc(l->t->numel * sizeof *g);
        tensor_to_host(l->t->grad, g);
        if (l->teacher) {
            for (size_t j = 0; j < l->t->numel; j++)
                if (g[j] != 0.0f) {
                    fprintf(stderr, "case %s: teacher tensor %s received gradient %g at %zu\n",
                            name, l->name, g[j], j);
                    g_failures++;
                    break;
                }
        } else {
            char nm[96];
            snprintf(nm, sizeof nm, "grad.%s", l->name);
            dump_values(f, nm, DT_F32, l->t->ndim, l->t->shape, g, l->t->numel);
        }
        free(g);
    }
    if (ps)
        for (int k = 0; k < ps->n; k++) {
            char nm[192];
            snprintf(nm, sizeof nm, "grad.param.%s", ps->tensors[k]->name);
            dump(f, nm, ps->grads[k]);
        }
    fprintf(f, "end\n");
    ctx_free(c);
    loss_set_free(ls);
}

static LossSpec spec(LossType t, float weight, const char *name) {
    LossSpec s = loss_spec_default(t);
    s.weight = weight;
    if (name) snprintf(s.name, sizeof s.name, "%s", name);
    return s;
}

static LossSpec with_pairs(LossSpec s, int n, const int *pairs) {
    s.map = LOSS_MAP_EXPLICIT;
    s.n_pairs = n;
    for (int i = 0; i < n; i++) {
        s.pairs[i].student = pairs[2 * i];
        s.pairs[i].teacher = pairs[2 * i + 1];
    }
    return s;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "cuda") != 0)) {
        fprintf(stderr, "usage: %s OUTPUT.txt [cuda]\n", argv[0]);
        return 2;
    }
    const Backend *be = backend_cpu();
    g_device = device_cpu();
    if (argc == 3) {
        const char *expect = getenv("DISTILL_EXPECT_GPU");
        bool must = expect && strcmp(expect, "1") == 0;
        be = backend_cuda();
        if (!be || be->device_count() <= 0) {
            printf("%s: %s\n", must ? "FAIL" : "SKIP",
                   be ? "no CUDA device" : "this build has no CUDA backend");
            return must ? 1 : 77;
        }
        g_device.type = DEV_CUDA;
        g_device.index = 0;
    }
    if (be->init(g_device.index) != DISTILL_OK) {
        fprintf(stderr, "FAIL: backend init: %s\n", distill_error());
        return 1;
    }
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    /* Odd sizes everywhere; a 3-layer student against a 5-layer teacher makes the uniform map
     * non-trivial (floor(m*5/3) = 1, 3, 5); rows of length 7, 4 and 1 give padding, including a
     * row whose only valid token is [CLS]. */
    Shapes wide = {.M = 3, .N = 5, .Hs = 5, .Ht = 7, .heads = 2, .C = 3, .B = 3, .S = 7,
                   .lengths = {7, 4, 1}};
    Shapes same = wide;
    same.Ht = 5;

    { /* logits: constant temperatures, TinyBERT's CE, gold labels */
        LossSpec s[3] = {spec(LOSS_LOGITS_KD, 0.7f, NULL), spec(LOSS_LOGITS_CE, 1.0f, "ce"),
                         spec(LOSS_HARD_CE, 0.4f, NULL)};
        s[0].temperature = 2.0f;
        s[1].temperature = 3.0f;
        run_case(f, "logits_constant", &wide, s, 3, 0, 11);
    }
    { /* temperature schedules, mid-way and past their end */
        LossSpec s[2] = {spec(LOSS_LOGITS_KD, 1.0f, NULL), spec(LOSS_LOGITS_CE, 2.0f, NULL)};
        s[0].temperature = 4.0f, s[0].temperature_end = 1.0f, s[0].temperature_steps = 10;
        s[1].temperature = 1.0f, s[1].temperature_end = 3.0f, s[1].temperature_steps = 4;
        run_case(f, "logits_schedule_mid", &wide, s, 2, 3, 12);
        run_case(f, "logits_schedule_end", &wide, s, 2, 25, 13);
    }
    { /* regression on a 1-output head, and on column 0 of a 3-output head */
        LossSpec s[1] = {spec(LOSS_MSE, 1.0f, NULL)};
        Shapes one = wide;
        one.C = 1;
        run_case(f, "regression_one_output", &one, s, 1, 0, 14);
        run_case(f, "regression_column0", &wide, s, 1, 0, 15);
    }
    { /* hidden + embedding MSE, same width: no projection */
        LossSpec s[2] = {spec(LOSS_HIDDEN_MSE, 1.5f, NULL), spec(LOSS_EMBEDDING_MSE, 0.5f, NULL)};
        run_case(f, "hidden_same_width", &same, s, 2, 0, 16);
    }
    { /* width mismatch: a projection per pair (auto) */
        LossSpec s[2] = {spec(LOSS_HIDDEN_MSE, 1.0f, NULL), spec(LOSS_EMBEDDING_MSE, 1.0f, NULL)};
        run_case(f, "hidden_per_pair", &wide, s, 2, 0, 17);
    }
    { /* width mismatch: one shared projection for the hidden and the embedding losses */
        LossSpec s[2] = {spec(LOSS_HIDDEN_MSE, 1.0f, NULL), spec(LOSS_EMBEDDING_MSE, 2.0f, NULL)};
        s[0].projection = s[1].projection = LOSS_PROJ_SHARED;
        run_case(f, "hidden_shared", &wide, s, 2, 0, 18);
    }
    { /* explicit map (embeddings, a repeated student layer) with projections asked for at equal
         widths */
        int pairs[6] = {0, 0, 2, 3, 2, 5};
        LossSpec s[1] = {with_pairs(spec(LOSS_HIDDEN_MSE, 1.0f, "hid"), 3, pairs)};
        s[0].projection = LOSS_PROJ_PER_PAIR;
        run_case(f, "hidden_explicit_per_pair", &same, s, 1, 0, 19);
    }
    { /* attention scores (TinyBERT masking), uniform and explicit maps */
        int pairs[4] = {1, 5, 3, 1};
        LossSpec s[2] = {spec(LOSS_ATTENTION_MSE, 1.0f, NULL),
                         with_pairs(spec(LOSS_ATTENTION_MSE, 0.3f, "att_explicit"), 2, pairs)};
        run_case(f, "attention_scores", &wide, s, 2, 0, 20);
    }
    { /* attention probabilities: MSE and MiniLM's KL */
        int pairs[2] = {3, 4};
        LossSpec s[3] = {spec(LOSS_ATTENTION_MSE, 1.0f, NULL), spec(LOSS_ATTENTION_KL, 2.0f, NULL),
                         with_pairs(spec(LOSS_ATTENTION_KL, 1.0f, "kl_last"), 1, pairs)};
        s[0].target = LOSS_TARGET_PROBS;
        run_case(f, "attention_probs", &wide, s, 3, 0, 21);
    }
    { /* cosine on the last layers over valid tokens: with a projection, and without */
        LossSpec s[1] = {spec(LOSS_HIDDEN_COS, 1.0f, NULL)};
        run_case(f, "cos_projected", &wide, s, 1, 0, 22);
        run_case(f, "cos_same_width", &same, s, 1, 0, 23);
    }
    { /* everything together, with weights, a schedule and shared projections */
        LossSpec s[7] = {spec(LOSS_LOGITS_KD, 0.5f, NULL), spec(LOSS_HARD_CE, 0.25f, NULL),
                         spec(LOSS_HIDDEN_MSE, 1.0f, NULL), spec(LOSS_EMBEDDING_MSE, 1.0f, NULL),
                         spec(LOSS_ATTENTION_MSE, 1.0f, NULL), spec(LOSS_ATTENTION_KL, 0.1f, NULL),
                         spec(LOSS_HIDDEN_COS, 0.2f, NULL)};
        s[0].temperature = 2.0f, s[0].temperature_end = 1.0f, s[0].temperature_steps = 7;
        s[2].projection = s[3].projection = LOSS_PROJ_SHARED;
        run_case(f, "combined", &wide, s, 7, 5, 24);
    }
    fclose(f);
    if (g_failures) {
        fprintf(stderr, "test_losses_parity: %d failure(s)\n", g_failures);
        return 1;
    }
    return 0;
}
