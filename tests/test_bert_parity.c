/*
 * test_bert_parity.c — the C half of the BERT parity test (tests/bert_parity.py is the other half).
 *
 * For one tiny config given on the command line it builds a model with bert_init, makes a random
 * padded batch (different lengths, one row of length 1, one full row, token types), and writes an
 * HDF5 file holding the config (attributes), inputs, loss targets, every parameter, and for two
 * recorded runs the outputs, the loss and the gradient of EVERY parameter:
 *
 *   run "A": all hidden states, all scores, all probs requested (the unfused scale_mask + softmax
 *            path in every layer);
 *   run "B": scores requested for layer 0 only (the fused scale_mask_softmax in the others).
 *
 * loss = sum_l mse(hidden_l, T_l) + mse(logits, T_c) + sum_l mse(probs_l, P_l) (targets random).
 *
 * It also checks here, failing with a message and exit status 1:
 *   - params_count == bert_config_param_count, names in HF's order, no_decay on biases/LayerNorm;
 *   - bert_init: reproducible for a seed, different across seeds, LayerNorm 1/0, biases 0, the
 *     padding row 0, weight standard deviations of initializer_range; bert_init_head re-draws the
 *     same head values;
 *   - recording off: no tape entries and outputs bitwise identical to run A;
 *   - dropout on (training) at a fixed seed: two forwards are bitwise identical, and differ from
 *     the eval forward and from a forward at another seed;
 *   - request handling: layers not asked for return NULL, no_logits gives no logits.
 *
 * Usage: test_bert_parity OUT.h5 L H HEADS I VOCAB MAXPOS TYPES LABELS INIT_RANGE B S SEED
 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops.h"
#include "engine/rng.h"
#include "models/bert.h"

static int g_failures = 0;
#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "test_bert_parity: FAIL %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                        \
            g_failures++;                                                                 \
        }                                                                                 \
    } while (0)

/* ------------------------------------------------------------------ HDF5 helpers */

#define H5_TRY(call)                                                                         \
    do {                                                                                      \
        if ((call) < 0) {                                                                     \
            fprintf(stderr, "test_bert_parity: HDF5 call failed %s:%d: %s\n", __FILE__,       \
                    __LINE__, #call);                                                         \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

static void h5_write(hid_t loc, const char *name, hid_t type, const void *data, int ndim,
                     const int *shape) {
    hsize_t dims[TENSOR_MAX_DIMS];
    for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    H5_TRY(space);
    hid_t ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5_TRY(ds);
    H5_TRY(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    H5_TRY(H5Dclose(ds));
    H5_TRY(H5Sclose(space));
}

/* Writes a tensor (f32 or i32, any device) under `name` in group `loc`. */
static void h5_tensor(hid_t loc, const char *name, const Tensor *t) {
    void *host = xmalloc(tensor_bytes(t));
    tensor_to_host(t, host);
    h5_write(loc, name, t->dtype == DT_I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, host, t->ndim,
             t->shape);
    free(host);
}

static void h5_attr(hid_t loc, const char *name, hid_t type, const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5_TRY(a);
    H5_TRY(H5Awrite(a, type, value));
    H5_TRY(H5Aclose(a));
    H5_TRY(H5Sclose(space));
}
static void h5_attr_int(hid_t loc, const char *name, int v) { h5_attr(loc, name, H5T_NATIVE_INT, &v); }
static void h5_attr_double(hid_t loc, const char *name, double v) {
    h5_attr(loc, name, H5T_NATIVE_DOUBLE, &v);
}

static hid_t h5_group(hid_t loc, const char *name) {
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5_TRY(g);
    return g;
}

/* ------------------------------------------------------------------ small helpers */

static float *host_copy(const Tensor *t) {
    float *h = xmalloc(tensor_bytes(t));
    tensor_to_host(t, h);
    return h;
}

static bool same_bits(const Tensor *a, const float *b) {
    float *h = host_copy(a);
    bool same = memcmp(h, b, tensor_bytes(a)) == 0;
    free(h);
    return same;
}

static double max_abs_diff(const Tensor *a, const float *b) {
    float *h = host_copy(a);
    double m = 0;
    for (size_t i = 0; i < a->numel; i++) m = fmax(m, fabs((double)h[i] - (double)b[i]));
    free(h);
    return m;
}

static Tensor *random_tensor(Ctx *c, Rng *r, int ndim, const int *shape, double std) {
    Tensor *t = ctx_tensor(c, DT_F32, ndim, shape);
    float *h = xmalloc(tensor_bytes(t));
    for (size_t i = 0; i < t->numel; i++) h[i] = (float)(std * rng_next_normal(r));
    tensor_from_host(t, h);
    free(h);
    return t;
}

/* The test's fixed batch, on the host. */
typedef struct {
    int B, S;
    int32_t *ids, *types, *lengths; /* (B, S), (B, S), (B) */
} Batch;

static Batch make_batch(const BertConfig *cfg, int B, int S, uint64_t seed) {
    Batch bt = {B, S, xcalloc((size_t)B * S, 4), xcalloc((size_t)B * S, 4), xcalloc((size_t)B, 4)};
    Rng r = rng_new(seed ^ 0xba7c4ull);
    for (int b = 0; b < B; b++) {
        /* row 0 full, row 1 length 1, the others random in [1, S] */
        int len = b == 0 ? S : b == 1 ? 1 : 1 + (int)rng_next_below(&r, (uint64_t)S);
        bt.lengths[b] = len;
        int split = 1 + (int)rng_next_below(&r, (uint64_t)len); /* segment B starts here */
        for (int s = 0; s < len; s++) {
            /* 1 in 8 valid tokens is the pad id itself, the rest anything else */
            bt.ids[b * S + s] = rng_next_below(&r, 8) == 0
                                    ? cfg->pad_token_id
                                    : 1 + (int)rng_next_below(&r, (uint64_t)cfg->vocab_size - 1);
            bt.types[b * S + s] = cfg->type_vocab_size > 2
                                      ? (int)rng_next_below(&r, (uint64_t)cfg->type_vocab_size)
                                      : (s >= split && cfg->type_vocab_size == 2);
        }
        for (int s = len; s < S; s++) bt.ids[b * S + s] = cfg->pad_token_id; /* types stay 0 */
    }
    return bt;
}

static BertInput batch_input(Ctx *c, const Batch *bt) {
    int bs[2] = {bt->B, bt->S}, b1[1] = {bt->B};
    BertInput in = {ctx_from_host(c, DT_I32, 2, bs, bt->ids), ctx_from_host(c, DT_I32, 2, bs, bt->types),
                    ctx_from_host(c, DT_I32, 1, b1, bt->lengths), bt->lengths};
    return in;
}

/* ------------------------------------------------------------------ init checks */

static void check_params_and_init(Bert *m, const BertConfig *cfg, uint64_t seed) {
    ParamStore *ps = m->params;
    CHECK(params_count(ps, "") == bert_config_param_count(cfg), "param count %zu != config %zu",
          params_count(ps, ""), bert_config_param_count(cfg));
    int expect_n = 5 + 16 * cfg->num_hidden_layers + 2 * cfg->has_pooler + 2 * (cfg->num_labels > 0);
    CHECK(ps->n == expect_n, "expected %d parameter tensors, found %d", expect_n, ps->n);
    CHECK(strcmp(ps->tensors[0]->name, "bert.embeddings.word_embeddings.weight") == 0, "first %s",
          ps->tensors[0]->name);
    CHECK(params_find(ps, "bert.encoder.layer.0.attention.output.LayerNorm.weight") != NULL,
          "HF LayerNorm name missing");
    if (cfg->num_labels > 0)
        CHECK(strcmp(ps->tensors[ps->n - 1]->name, "classifier.bias") == 0, "last %s",
              ps->tensors[ps->n - 1]->name);
    for (int i = 0; i < ps->n; i++) {
        const char *nm = ps->tensors[i]->name;
        size_t len = strlen(nm);
        bool is_bias = len > 5 && strcmp(nm + len - 5, ".bias") == 0;
        bool is_lnw = strstr(nm, "LayerNorm.weight") != NULL;
        CHECK(ps->no_decay[i] == (is_bias || is_lnw), "no_decay wrong for %s", nm);
    }

    float *first = xmalloc(ps->total * sizeof(float));
    tensor_to_host(&(Tensor){.dtype = DT_F32, .device = ps->device, .ndim = 1,
                             .shape = {(int)ps->total}, .numel = ps->total, .data = ps->data},
                   first);
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->tensors[i];
        const float *v = first + ps->offsets[i];
        size_t len = strlen(t->name);
        if (strstr(t->name, "LayerNorm.weight")) {
            for (size_t j = 0; j < t->numel; j++) CHECK(v[j] == 1.0f, "%s[%zu] = %g", t->name, j, v[j]);
        } else if (len > 5 && strcmp(t->name + len - 5, ".bias") == 0) {
            for (size_t j = 0; j < t->numel; j++) CHECK(v[j] == 0.0f, "%s[%zu] = %g", t->name, j, v[j]);
        } else {
            size_t skip_lo = 0, skip_hi = 0; /* the padding row is zero, not drawn */
            if (t == m->word_emb) {
                skip_lo = (size_t)cfg->pad_token_id * cfg->hidden_size;
                skip_hi = skip_lo + cfg->hidden_size;
                for (size_t j = skip_lo; j < skip_hi; j++) CHECK(v[j] == 0.0f, "padding row not 0");
            }
            double s2 = 0, s1 = 0;
            size_t n = 0;
            for (size_t j = 0; j < t->numel; j++) {
                if (j >= skip_lo && j < skip_hi) continue;
                s1 += v[j];
                s2 += (double)v[j] * v[j];
                n++;
            }
            double sd = sqrt(s2 / n), r = cfg->initializer_range;
            /* The sample standard deviation of n normals has relative standard error
             * 1/sqrt(2n); 6 of those (plus a mean term of the same order) never fails by chance. */
            double band = 6.0 / sqrt(2.0 * n);
            CHECK(fabs(sd / r - 1.0) < band, "%s: std %g, expected %g (n = %zu)", t->name, sd, r, n);
            CHECK(fabs(s1 / n) < 6.0 * r / sqrt((double)n), "%s: mean %g", t->name, s1 / n);
        }
    }
    /* Same seed -> bitwise the same; another seed -> different weights. */
    bert_init(m, seed);
    float *again = xmalloc(ps->total * sizeof(float));
    Tensor whole = {.dtype = DT_F32, .device = ps->device, .ndim = 1, .shape = {(int)ps->total},
                    .numel = ps->total, .data = ps->data};
    tensor_to_host(&whole, again);
    CHECK(memcmp(first, again, ps->total * sizeof(float)) == 0, "bert_init not reproducible");
    bert_init(m, seed + 1);
    tensor_to_host(&whole, again);
    CHECK(memcmp(first, again, ps->total * sizeof(float)) != 0, "bert_init ignores the seed");
    /* Re-drawing only the head gives the head the same values bert_init gives it. */
    bert_init(m, seed);
    if (m->pool_w) {
        float *zeros = xcalloc(m->pool_w->numel, sizeof(float));
        tensor_from_host(m->pool_w, zeros);
        free(zeros);
        bert_init_head(m, seed, true, true);
        tensor_to_host(&whole, again);
        CHECK(memcmp(first, again, ps->total * sizeof(float)) == 0, "bert_init_head differs");
    }
    free(first);
    free(again);
}

/* ------------------------------------------------------------------ the recorded runs */

typedef struct {
    Tensor **h_t, **p_t; /* hidden (L+1) and probs (L) targets */
    Tensor *c_t;         /* logits target (B, C) */
} Targets;

static Targets make_targets(Ctx *c, const BertConfig *cfg, int B, int S, uint64_t seed, hid_t f) {
    Rng r = rng_new(seed ^ 0x7a26e7ull);
    int L = cfg->num_hidden_layers, nh = cfg->num_attention_heads;
    Targets t = {xcalloc((size_t)L + 1, sizeof(Tensor *)), xcalloc((size_t)L + 1, sizeof(Tensor *)), NULL};
    hid_t g = h5_group(f, "targets");
    char name[64];
    int hs[3] = {B, S, cfg->hidden_size}, ps[4] = {B, nh, S, S}, cs[2] = {B, cfg->num_labels};
    for (int l = 0; l <= L; l++) {
        t.h_t[l] = random_tensor(c, &r, 3, hs, 1.0);
        snprintf(name, sizeof name, "hidden_%d", l);
        h5_tensor(g, name, t.h_t[l]);
    }
    for (int l = 0; l < L; l++) {
        t.p_t[l] = random_tensor(c, &r, 4, ps, 1.0 / S);
        snprintf(name, sizeof name, "probs_%d", l);
        h5_tensor(g, name, t.p_t[l]);
    }
    if (cfg->num_labels > 0) {
        t.c_t = random_tensor(c, &r, 2, cs, 1.0);
        h5_tensor(g, "logits", t.c_t);
    }
    H5_TRY(H5Gclose(g));
    return t;
}

static Tensor *run_loss(Ctx *c, const BertConfig *cfg, const BertOutput *o, const Targets *t) {
    Tensor *loss = op_mse(c, o->hidden[0], t->h_t[0]);
    for (int l = 1; l <= cfg->num_hidden_layers; l++) loss = op_add(c, loss, op_mse(c, o->hidden[l], t->h_t[l]));
    for (int l = 0; l < cfg->num_hidden_layers; l++) loss = op_add(c, loss, op_mse(c, o->probs[l], t->p_t[l]));
    if (o->logits) loss = op_add(c, loss, op_mse(c, o->logits, t->c_t));
    return loss;
}

static void dump_outputs(hid_t f, const char *group, const BertConfig *cfg, const BertOutput *o,
                         const Tensor *loss, const ParamStore *ps) {
    hid_t g = h5_group(f, group);
    char name[64];
    if (o->logits) h5_tensor(g, "logits", o->logits);
    if (o->pooled) h5_tensor(g, "pooled", o->pooled);
    for (int l = 0; l <= cfg->num_hidden_layers; l++) {
        snprintf(name, sizeof name, "hidden_%d", l);
        if (o->hidden[l]) h5_tensor(g, name, o->hidden[l]);
    }
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        snprintf(name, sizeof name, "scores_%d", l);
        if (o->scores[l]) h5_tensor(g, name, o->scores[l]);
        snprintf(name, sizeof name, "probs_%d", l);
        if (o->probs[l]) h5_tensor(g, name, o->probs[l]);
    }
    h5_tensor(g, "loss", loss);
    hid_t gg = h5_group(g, "grads");
    for (int i = 0; i < ps->n; i++) h5_tensor(gg, ps->tensors[i]->name, ps->grads[i]);
    H5_TRY(H5Gclose(gg));
    H5_TRY(H5Gclose(g));
}

/* Host copies of run A's outputs, for the record-off comparison. */
typedef struct {
    float *logits, *pooled, **hidden, **scores, **probs;
} Saved;

static Saved save_outputs(const BertConfig *cfg, const BertOutput *o) {
    int L = cfg->num_hidden_layers;
    Saved s = {o->logits ? host_copy(o->logits) : NULL, host_copy(o->pooled),
               xcalloc((size_t)L + 1, sizeof(float *)), xcalloc((size_t)L + 1, sizeof(float *)),
               xcalloc((size_t)L + 1, sizeof(float *))};
    for (int l = 0; l <= L; l++) s.hidden[l] = host_copy(o->hidden[l]);
    for (int l = 0; l < L; l++) {
        s.scores[l] = host_copy(o->scores[l]);
        s.probs[l] = host_copy(o->probs[l]);
    }
    return s;
}

static void free_saved(Saved *s, int L) {
    free(s->logits);
    free(s->pooled);
    for (int l = 0; l <= L; l++) free(s->hidden[l]);
    for (int l = 0; l < L; l++) {
        free(s->scores[l]);
        free(s->probs[l]);
    }
    free(s->hidden);
    free(s->scores);
    free(s->probs);
}

int main(int argc, char **argv) {
    if (argc != 14) {
        fprintf(stderr, "usage: %s OUT.h5 L H HEADS I VOCAB MAXPOS TYPES LABELS INIT_RANGE B S SEED\n",
                argv[0]);
        return 2;
    }
    BertConfig cfg = bert_config_default();
    cfg.num_hidden_layers = atoi(argv[2]);
    cfg.hidden_size = atoi(argv[3]);
    cfg.num_attention_heads = atoi(argv[4]);
    cfg.intermediate_size = atoi(argv[5]);
    cfg.vocab_size = atoi(argv[6]);
    cfg.max_position_embeddings = atoi(argv[7]);
    cfg.type_vocab_size = atoi(argv[8]);
    cfg.num_labels = atoi(argv[9]);
    cfg.initializer_range = (float)atof(argv[10]);
    const int B = atoi(argv[11]), S = atoi(argv[12]);
    const uint64_t seed = strtoull(argv[13], NULL, 10);
    if (bert_config_validate(&cfg) != DISTILL_OK) {
        distill_print_error(distill_error());
        return 2;
    }
    const int L = cfg.num_hidden_layers;
    Device cpu = device_cpu();

    Bert *m = bert_build(&cfg, cpu);
    bert_init(m, seed);
    check_params_and_init(m, &cfg, seed);
    Batch bt = make_batch(&cfg, B, S, seed);

    hid_t f = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5_TRY(f);
    h5_attr_int(f, "vocab_size", cfg.vocab_size);
    h5_attr_int(f, "hidden_size", cfg.hidden_size);
    h5_attr_int(f, "num_hidden_layers", L);
    h5_attr_int(f, "num_attention_heads", cfg.num_attention_heads);
    h5_attr_int(f, "intermediate_size", cfg.intermediate_size);
    h5_attr_int(f, "max_position_embeddings", cfg.max_position_embeddings);
    h5_attr_int(f, "type_vocab_size", cfg.type_vocab_size);
    h5_attr_int(f, "num_labels", cfg.num_labels);
    h5_attr_int(f, "pad_token_id", cfg.pad_token_id);
    h5_attr_double(f, "layer_norm_eps", (double)cfg.layer_norm_eps);
    h5_attr_double(f, "initializer_range", (double)cfg.initializer_range);
    {
        int bs[2] = {B, S}, b1[1] = {B};
        hid_t g = h5_group(f, "inputs");
        h5_write(g, "input_ids", H5T_NATIVE_INT32, bt.ids, 2, bs);
        h5_write(g, "token_type_ids", H5T_NATIVE_INT32, bt.types, 2, bs);
        h5_write(g, "lengths", H5T_NATIVE_INT32, bt.lengths, 1, b1);
        H5_TRY(H5Gclose(g));
        g = h5_group(f, "params");
        for (int i = 0; i < m->params->n; i++) h5_tensor(g, m->params->tensors[i]->name, m->params->tensors[i]);
        H5_TRY(H5Gclose(g));
    }

    /* Targets live in a context of their own so the runs' resets keep them. */
    Ctx *tc = ctx_new(cpu, seed);
    Targets tg = make_targets(tc, &cfg, B, S, seed, f);

    Ctx *c = ctx_new(cpu, seed);
    c->training = false;

    /* ---- run A: everything requested, unfused softmax everywhere ---- */
    BertRequest req_a = {.all_hidden = true, .all_scores = true, .all_probs = true, .want_pooled = true};
    params_zero_grad(m->params);
    BertInput in = batch_input(c, &bt);
    BertOutput o;
    bert_forward(c, m, &in, &req_a, &o);
    Tensor *loss = run_loss(c, &cfg, &o, &tg);
    ctx_backward(c, loss);
    dump_outputs(f, "A", &cfg, &o, loss, m->params);
    Saved sa = save_outputs(&cfg, &o);
    ctx_reset(c);

    /* ---- run B: scores for layer 0 only, fused softmax in the other layers ---- */
    bool *score_l0 = xcalloc((size_t)L + 1, sizeof(bool));
    score_l0[0] = true;
    BertRequest req_b = {.all_hidden = true, .scores = score_l0, .all_probs = true};
    params_zero_grad(m->params);
    in = batch_input(c, &bt);
    bert_forward(c, m, &in, &req_b, &o);
    for (int l = 1; l < L; l++) CHECK(o.scores[l] == NULL, "run B: scores of layer %d not requested", l);
    CHECK(o.pooled != NULL || cfg.num_labels == 0, "run B: logits need the pooled output");
    loss = run_loss(c, &cfg, &o, &tg);
    ctx_backward(c, loss);
    dump_outputs(f, "B", &cfg, &o, loss, m->params);
    ctx_reset(c);
    H5_TRY(H5Fclose(f));

    /* ---- recording off: no tape, outputs bitwise identical to run A ---- */
    bool was = ctx_set_record(c, false);
    in = batch_input(c, &bt);
    bert_forward(c, m, &in, &req_a, &o);
    CHECK(c->tape.n == 0, "recording off left %d tape entries", c->tape.n);
    if (o.logits) CHECK(same_bits(o.logits, sa.logits), "record off: logits differ from run A");
    CHECK(same_bits(o.pooled, sa.pooled), "record off: pooled differs from run A");
    for (int l = 0; l <= L; l++) CHECK(same_bits(o.hidden[l], sa.hidden[l]), "record off: hidden %d differs", l);
    for (int l = 0; l < L; l++) {
        CHECK(same_bits(o.scores[l], sa.scores[l]), "record off: scores %d differ", l);
        CHECK(same_bits(o.probs[l], sa.probs[l]), "record off: probs %d differ", l);
    }
    ctx_reset(c);

    /* ---- request handling: nothing extra, no logits ---- */
    BertRequest req_none = {.no_logits = true};
    /* recording on, for the memory comparison below */
    bool rec_was = ctx_set_record(c, true);
    in = batch_input(c, &bt);
    bert_forward(c, m, &in, &req_none, &o);
    size_t used_on = c->arena->in_use;
    ctx_reset(c);
    ctx_set_record(c, rec_was);
    in = batch_input(c, &bt);
    bert_forward(c, m, &in, &req_none, &o);
    /* Recording off, each layer's temporaries live in a scope the next layer reuses (ctx_scope_*):
     * the step's arena keeps the embeddings, the mask and one (B, S, H) output per layer, so it
     * holds at most (8 + L) such tensors plus alignment, where recording on holds every layer's
     * q, k, v, maps and FFN activations. */
    size_t used_off = c->arena->in_use, bsh = (size_t)B * S * cfg.hidden_size * sizeof(float);
    CHECK(used_off <= (size_t)(8 + L) * (bsh + 64) + 4096,
          "record off keeps %zu bytes in the arena, more than (8 + L) hidden-sized tensors (%zu each)", used_off, bsh);
    CHECK(used_off < used_on, "record off keeps %zu bytes, no less than record on (%zu)", used_off, used_on);
    CHECK(o.logits == NULL && o.pooled == NULL, "no_logits: logits/pooled computed anyway");
    CHECK(o.sequence != NULL && same_bits(o.sequence, sa.hidden[L]), "no_logits: sequence differs");
    for (int l = 0; l <= L; l++) CHECK(o.hidden[l] == NULL, "hidden %d returned unrequested", l);
    for (int l = 0; l < L; l++) CHECK(o.scores[l] == NULL && o.probs[l] == NULL, "layer %d maps unrequested", l);
    ctx_reset(c);

    /* ---- dropout on at a fixed seed: reproducible, and it does something ---- */
    c->training = true;
    BertRequest req_h = {.all_hidden = true};
    float *drop1 = NULL, *drop2 = NULL;
    for (int rep = 0; rep < 3; rep++) {
        c->seed = rep < 2 ? seed * 31 + 7 : seed * 31 + 8;
        c->rng_counter = 0;
        in = batch_input(c, &bt);
        bert_forward(c, m, &in, &req_h, &o);
        Tensor *t = o.logits ? o.logits : o.sequence;
        const float *eval_ref = o.logits ? sa.logits : sa.hidden[L];
        CHECK(max_abs_diff(t, eval_ref) > 0.0, "dropout on: output equals the eval output");
        if (rep == 0) drop1 = host_copy(o.sequence);
        else if (rep == 1) {
            CHECK(same_bits(o.sequence, drop1), "dropout on: same seed, different output");
            drop2 = host_copy(o.sequence);
        } else {
            CHECK(!same_bits(o.sequence, drop2), "dropout on: another seed, same output");
        }
        ctx_reset(c);
    }
    ctx_set_record(c, was);

    free(drop1);
    free(drop2);
    free_saved(&sa, L);
    free(tg.h_t);
    free(tg.p_t);
    free(bt.ids);
    free(bt.types);
    free(bt.lengths);
    free(score_l0);
    ctx_free(c);
    ctx_free(tc);
    bert_free(m);
    if (g_failures) {
        fprintf(stderr, "test_bert_parity: %d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_bert_parity: C-side checks passed (L=%d H=%d heads=%d I=%d B=%d S=%d)\n", L,
           cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size, B, S);
    return 0;
}
