/*
 * bert.c — BERT (Hugging Face BertModel + BertForSequenceClassification) built from engine ops.
 *
 * What it promises (see bert.h for the API):
 *   - Parameter names, shapes (linear weights (out, in)) and declaration order are exactly those of
 *     Hugging Face's BertForSequenceClassification.named_parameters(), so import/export rename
 *     nothing and `bert_config_param_count` equals the store's element count.
 *   - The forward is HF's, op for op: embeddings = LayerNorm(word + token_type + position) then
 *     dropout; post-LN encoder layers; pooler tanh(dense(h[:, 0])); classifier dropout; classifier.
 *     The additive attention mask is 0 on valid keys and the float32 minimum (HF's
 *     torch.finfo(float32).min) on padded keys.
 *   - Word-embedding row `pad_token_id` receives no gradient, as torch's nn.Embedding(padding_idx)
 *     which HF uses (op_embedding_padded).
 *   - Returned attention probabilities are the softmax output BEFORE attention dropout (HF returns
 *     them after dropout; in eval mode the two are the same, and distillation losses want the
 *     undropped distribution).
 *   - bert_init is HF's _init_weights, reproducible from the seed: every tensor draws from its own
 *     Rng stream keyed by (seed, parameter name), so a tensor's values do not depend on the shapes
 *     or the order of the others (bert_init_head re-draws the head alone with the same values that
 *     bert_init would give it).
 */
#include "bert.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/ops.h"
#include "../engine/rng.h"

/* ------------------------------------------------------------------ config */

BertConfig bert_config_default(void) {
    BertConfig c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 30522;
    c.hidden_size = 768;
    c.num_hidden_layers = 12;
    c.num_attention_heads = 12;
    c.intermediate_size = 3072;
    c.max_position_embeddings = 512;
    c.type_vocab_size = 2;
    c.num_labels = 2;
    c.layer_norm_eps = 1e-12f;
    c.hidden_dropout_prob = 0.1f;
    c.attention_probs_dropout_prob = 0.1f;
    c.classifier_dropout = -1.0f;
    c.initializer_range = 0.02f;
    c.pad_token_id = 0;
    c.has_pooler = true;
    c.problem_type[0] = '\0';
    return c;
}

void bert_config_free_labels(BertConfig *cfg) {
    for (int i = 0; i < BERT_MAX_LABELS; i++) {
        free(cfg->id2label[i]);
        cfg->id2label[i] = NULL;
    }
}

Status bert_config_validate(const BertConfig *cfg) {
    const struct { const char *name; int value; int min; } pos[] = {
        {"vocab_size", cfg->vocab_size, 1},
        {"hidden_size", cfg->hidden_size, 1},
        {"num_hidden_layers", cfg->num_hidden_layers, 0},
        {"num_attention_heads", cfg->num_attention_heads, 1},
        {"intermediate_size", cfg->intermediate_size, 1},
        {"max_position_embeddings", cfg->max_position_embeddings, 1},
        {"type_vocab_size", cfg->type_vocab_size, 1},
        {"num_labels", cfg->num_labels, 0},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        if (pos[i].value < pos[i].min) {
            distill_set_error("bert config: %s must be >= %d, found %d", pos[i].name, pos[i].min,
                              pos[i].value);
            return DISTILL_ERR;
        }
    }
    if (cfg->hidden_size % cfg->num_attention_heads != 0) {
        distill_set_error("bert config: hidden_size must be a multiple of num_attention_heads, "
                          "found %d and %d", cfg->hidden_size, cfg->num_attention_heads);
        return DISTILL_ERR;
    }
    if (cfg->num_labels > BERT_MAX_LABELS) {
        distill_set_error("bert config: num_labels must be <= %d, found %d", BERT_MAX_LABELS,
                          cfg->num_labels);
        return DISTILL_ERR;
    }
    if (cfg->num_labels > 0 && !cfg->has_pooler) {
        distill_set_error("bert config: a classifier (num_labels = %d) needs the pooler, "
                          "found has_pooler = false", cfg->num_labels);
        return DISTILL_ERR;
    }
    const struct { const char *name; float p; } probs[] = {
        {"hidden_dropout_prob", cfg->hidden_dropout_prob},
        {"attention_probs_dropout_prob", cfg->attention_probs_dropout_prob},
    };
    for (size_t i = 0; i < 2; i++) {
        if (!(probs[i].p >= 0.0f && probs[i].p < 1.0f)) {
            distill_set_error("bert config: %s must be in [0, 1), found %g", probs[i].name,
                              (double)probs[i].p);
            return DISTILL_ERR;
        }
    }
    if (!(cfg->classifier_dropout < 1.0f)) { /* < 0 means "use hidden_dropout_prob" */
        distill_set_error("bert config: classifier_dropout must be < 1 (or unset), found %g",
                          (double)cfg->classifier_dropout);
        return DISTILL_ERR;
    }
    if (!(cfg->layer_norm_eps > 0.0f)) {
        distill_set_error("bert config: layer_norm_eps must be > 0, found %g",
                          (double)cfg->layer_norm_eps);
        return DISTILL_ERR;
    }
    if (!(cfg->initializer_range >= 0.0f)) {
        distill_set_error("bert config: initializer_range must be >= 0, found %g",
                          (double)cfg->initializer_range);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

size_t bert_config_param_count(const BertConfig *cfg) {
    size_t H = (size_t)cfg->hidden_size, I = (size_t)cfg->intermediate_size;
    size_t n = ((size_t)cfg->vocab_size + (size_t)cfg->max_position_embeddings +
                (size_t)cfg->type_vocab_size) * H + 2 * H;          /* embeddings + LayerNorm */
    size_t layer = 4 * (H * H + H)                                  /* q, k, v, attention out */
                   + 2 * H                                          /* attention LayerNorm */
                   + (I * H + I) + (H * I + H)                      /* intermediate, output */
                   + 2 * H;                                         /* output LayerNorm */
    n += (size_t)cfg->num_hidden_layers * layer;
    if (cfg->has_pooler) n += H * H + H;
    if (cfg->num_labels > 0) n += (size_t)cfg->num_labels * H + (size_t)cfg->num_labels;
    return n;
}

/* ------------------------------------------------------------------ build */

static Tensor *declare(ParamStore *ps, const char *name, int ndim, int d0, int d1, bool no_decay) {
    int shape[2] = {d0, d1};
    return params_add(ps, name, ndim, shape, no_decay);
}

/* A linear layer "<prefix>.weight" (out, in) and "<prefix>.bias" (out). */
static void declare_linear(ParamStore *ps, const char *prefix, int out, int in, Tensor **w,
                           Tensor **b) {
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    *w = declare(ps, name, 2, out, in, false);
    snprintf(name, sizeof name, "%s.bias", prefix);
    *b = declare(ps, name, 1, out, 0, true);
}

/* A LayerNorm "<prefix>.weight" (n) and "<prefix>.bias" (n); both excluded from weight decay. */
static void declare_layernorm(ParamStore *ps, const char *prefix, int n, Tensor **g, Tensor **b) {
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    *g = declare(ps, name, 1, n, 0, true);
    snprintf(name, sizeof name, "%s.bias", prefix);
    *b = declare(ps, name, 1, n, 0, true);
}

Bert *bert_build(const BertConfig *cfg, Device device) {
    /* Callers validate user configs with bert_config_validate first; an invalid one here is a bug. */
    DCHECK(bert_config_validate(cfg) == DISTILL_OK);
    Bert *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    for (int i = 0; i < BERT_MAX_LABELS; i++) /* the model owns its copy of the label names */
        m->cfg.id2label[i] = cfg->id2label[i] ? xstrdup(cfg->id2label[i]) : NULL;

    const int H = cfg->hidden_size, I = cfg->intermediate_size, L = cfg->num_hidden_layers;
    ParamStore *ps = params_new(device);
    m->params = ps;
    m->word_emb = declare(ps, "bert.embeddings.word_embeddings.weight", 2, cfg->vocab_size, H, false);
    m->pos_emb = declare(ps, "bert.embeddings.position_embeddings.weight", 2,
                         cfg->max_position_embeddings, H, false);
    m->type_emb = declare(ps, "bert.embeddings.token_type_embeddings.weight", 2,
                          cfg->type_vocab_size, H, false);
    declare_layernorm(ps, "bert.embeddings.LayerNorm", H, &m->emb_ln_g, &m->emb_ln_b);

    m->layers = xcalloc((size_t)(L > 0 ? L : 1), sizeof *m->layers);
    for (int l = 0; l < L; l++) {
        BertLayer *ly = &m->layers[l];
        char p[128];
        snprintf(p, sizeof p, "bert.encoder.layer.%d.attention.self.query", l);
        declare_linear(ps, p, H, H, &ly->q_w, &ly->q_b);
        snprintf(p, sizeof p, "bert.encoder.layer.%d.attention.self.key", l);
        declare_linear(ps, p, H, H, &ly->k_w, &ly->k_b);
        snprintf(p, sizeof p, "bert.encoder.layer.%d.attention.self.value", l);
        declare_linear(ps, p, H, H, &ly->v_w, &ly->v_b);
        snprintf(p, sizeof p, "bert.encoder.layer.%d.attention.output.dense", l);
        declare_linear(ps, p, H, H, &ly->ao_w, &ly->ao_b);
        snprintf(p, sizeof p, "bert.encoder.layer.%d.attention.output.LayerNorm", l);
        declare_layernorm(ps, p, H, &ly->ln1_g, &ly->ln1_b);
        snprintf(p, sizeof p, "bert.encoder.layer.%d.intermediate.dense", l);
        declare_linear(ps, p, I, H, &ly->i_w, &ly->i_b);
        snprintf(p, sizeof p, "bert.encoder.layer.%d.output.dense", l);
        declare_linear(ps, p, H, I, &ly->o_w, &ly->o_b);
        snprintf(p, sizeof p, "bert.encoder.layer.%d.output.LayerNorm", l);
        declare_layernorm(ps, p, H, &ly->ln2_g, &ly->ln2_b);
    }
    if (cfg->has_pooler) declare_linear(ps, "bert.pooler.dense", H, H, &m->pool_w, &m->pool_b);
    if (cfg->num_labels > 0) declare_linear(ps, "classifier", cfg->num_labels, H, &m->cls_w, &m->cls_b);
    params_finalize(ps);
    DCHECK(params_count(ps, "") == bert_config_param_count(cfg));
    return m;
}

void bert_free(Bert *m) {
    if (!m) return;
    params_free(m->params);
    bert_config_free_labels(&m->cfg);
    free(m->layers);
    free(m);
}

/* ------------------------------------------------------------------ init */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* 64-bit FNV-1a of a name, so each parameter gets its own stream for a seed. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* HF _init_weights for one parameter: LayerNorm weight 1, biases (incl. LayerNorm bias) 0, every
 * other tensor (linear and embedding weights) normal(0, range); the word embedding's padding row 0. */
static void init_tensor(const Bert *m, Tensor *t, uint64_t seed) {
    float *host = xmalloc(t->numel * sizeof(float));
    if (ends_with(t->name, "LayerNorm.weight")) {
        for (size_t i = 0; i < t->numel; i++) host[i] = 1.0f;
    } else if (ends_with(t->name, ".bias")) {
        memset(host, 0, t->numel * sizeof(float));
    } else {
        Rng r = rng_new(rng_mix64(seed) ^ name_hash(t->name));
        double std = (double)m->cfg.initializer_range;
        for (size_t i = 0; i < t->numel; i++) host[i] = (float)(std * rng_next_normal(&r));
        if (t == m->word_emb && m->cfg.pad_token_id >= 0 && m->cfg.pad_token_id < m->cfg.vocab_size)
            memset(host + (size_t)m->cfg.pad_token_id * (size_t)m->cfg.hidden_size, 0,
                   (size_t)m->cfg.hidden_size * sizeof(float));
    }
    tensor_from_host(t, host);
    free(host);
}

void bert_init(Bert *m, uint64_t seed) {
    for (int i = 0; i < m->params->n; i++) init_tensor(m, m->params->tensors[i], seed);
}

void bert_init_head(Bert *m, uint64_t seed, bool pooler, bool classifier) {
    Tensor *head[4] = {pooler ? m->pool_w : NULL, pooler ? m->pool_b : NULL,
                       classifier ? m->cls_w : NULL, classifier ? m->cls_b : NULL};
    for (int i = 0; i < 4; i++)
        if (head[i]) init_tensor(m, head[i], seed);
}

/* ------------------------------------------------------------------ forward */

Tensor *bert_attention_mask(Ctx *c, const int32_t *lengths_host, int B, int S) {
    /* (B, S), in the step's host meta arena: a step allocates nothing after the first */
    float *host = arena_alloc(c->meta, (size_t)B * (size_t)S * sizeof(float));
    for (int b = 0; b < B; b++) {
        DCHECK(lengths_host[b] >= 0 && lengths_host[b] <= S);
        for (int s = 0; s < S; s++)
            host[(size_t)b * S + s] = s < lengths_host[b] ? 0.0f : -FLT_MAX; /* finfo(f32).min */
    }
    int shape[2] = {B, S};
    return ctx_from_host(c, DT_F32, 2, shape, host);
}

static bool wanted(bool all, const bool *which, int i) { return all || (which && which[i]); }

static Tensor **tensor_array(Ctx *c, int n) {
    Tensor **a = arena_alloc(c->meta, (size_t)(n > 0 ? n : 1) * sizeof *a);
    memset(a, 0, (size_t)(n > 0 ? n : 1) * sizeof *a);
    return a;
}

void bert_forward(Ctx *c, Bert *m, const BertInput *in, const BertRequest *req, BertOutput *out) {
    static const BertRequest nothing; /* logits only */
    if (!req) req = &nothing;
    const BertConfig *cfg = &m->cfg;
    const int L = cfg->num_hidden_layers, nh = cfg->num_attention_heads;
    const int d = cfg->hidden_size / nh;
    const float eps = cfg->layer_norm_eps, p_hidden = cfg->hidden_dropout_prob;
    const float p_attn = cfg->attention_probs_dropout_prob;
    const float p_cls = cfg->classifier_dropout < 0.0f ? p_hidden : cfg->classifier_dropout;
    const float scale = (float)(1.0 / sqrt((double)d));

    Tensor *ids = in->input_ids; /* i32 (B, S) */
    DCHECK(ids->ndim == 2 && ids->dtype == DT_I32);
    const int B = ids->shape[0], S = ids->shape[1];
    /* The data loader and config checks keep S within the position table; here it is a bug. */
    DCHECK(S >= 1 && S <= cfg->max_position_embeddings);
    DCHECK(in->lengths_host != NULL);

    memset(out, 0, sizeof *out);
    out->hidden = tensor_array(c, L + 1);
    out->scores = tensor_array(c, L);
    out->probs = tensor_array(c, L);

    /* ---- embeddings ---- */
    Tensor *type_ids = in->token_type_ids; /* i32 (B, S) */
    int bs[2] = {B, S};
    if (!type_ids) type_ids = ctx_zeros(c, DT_I32, 2, bs);
    int32_t *pos_host = arena_alloc(c->meta, (size_t)B * (size_t)S * sizeof(int32_t));
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) pos_host[(size_t)b * S + s] = s;
    Tensor *pos_ids = ctx_from_host(c, DT_I32, 2, bs, pos_host); /* i32 (B, S): 0..S-1 per row */

    int pad = cfg->pad_token_id >= 0 && cfg->pad_token_id < cfg->vocab_size ? cfg->pad_token_id : -1;
    Tensor *x = op_embedding_padded(c, m->word_emb, ids, pad);          /* (B, S, H) */
    x = op_add(c, x, op_embedding(c, m->type_emb, type_ids));           /* (B, S, H) */
    x = op_add(c, x, op_embedding(c, m->pos_emb, pos_ids));             /* (B, S, H) */
    x = op_layernorm(c, x, m->emb_ln_g, m->emb_ln_b, eps);              /* (B, S, H) */
    x = op_dropout(c, x, p_hidden);                                     /* (B, S, H) */
    if (wanted(req->all_hidden, req->hidden, 0)) out->hidden[0] = x;

    Tensor *mask = bert_attention_mask(c, in->lengths_host, B, S);      /* (B, S) additive */

    /* ---- encoder ---- */
    /* Recording nothing (a teacher, evaluation), each layer's temporaries live in a scope that
     * the next layer reuses; the layer's output and the maps a loss asked for are kept. */
    const bool scoped = !c->record;
    for (int l = 0; l < L; l++) {
        const BertLayer *ly = &m->layers[l];
        if (scoped) ctx_scope_begin(c);
        Tensor *q = op_linear(c, x, ly->q_w, ly->q_b);                  /* (B, S, H) */
        Tensor *k = op_linear(c, x, ly->k_w, ly->k_b);                  /* (B, S, H) */
        Tensor *v = op_linear(c, x, ly->v_w, ly->v_b);                  /* (B, S, H) */
        Tensor *raw = op_attention_qk(c, q, k, nh);                     /* (B, nh, S, S) */
        Tensor *probs;                                                  /* (B, nh, S, S) */
        if (wanted(req->all_scores, req->scores, l)) {
            Tensor *scores = op_scale_mask(c, raw, mask, scale);        /* (B, nh, S, S) */
            probs = op_softmax(c, scores);
            out->scores[l] = ctx_keep(c, scores);
        } else {
            probs = op_scale_mask_softmax(c, raw, mask, scale);
        }
        if (wanted(req->all_probs, req->probs, l)) out->probs[l] = ctx_keep(c, probs);
        Tensor *pd = op_dropout(c, probs, p_attn);                      /* (B, nh, S, S) */
        Tensor *ctxv = op_attention_pv(c, pd, v, nh);                   /* (B, S, H) */
        Tensor *ao = op_linear(c, ctxv, ly->ao_w, ly->ao_b);            /* (B, S, H) */
        ao = op_dropout(c, ao, p_hidden);
        Tensor *h1 = op_add_layernorm(c, ao, x, ly->ln1_g, ly->ln1_b, eps); /* (B, S, H) */
        Tensor *f = op_linear_gelu(c, h1, ly->i_w, ly->i_b);            /* (B, S, I) */
        Tensor *o = op_linear(c, f, ly->o_w, ly->o_b);                  /* (B, S, H) */
        o = op_dropout(c, o, p_hidden);
        x = op_add_layernorm(c, o, h1, ly->ln2_g, ly->ln2_b, eps);      /* (B, S, H) */
        if (scoped) {
            x = ctx_keep(c, x);
            ctx_scope_end(c);
        }
        if (wanted(req->all_hidden, req->hidden, l + 1)) out->hidden[l + 1] = x;
    }
    out->sequence = x;

    /* ---- pooler and classifier ---- */
    bool need_logits = !req->no_logits && m->cls_w != NULL;
    if ((req->want_pooled || need_logits) && m->pool_w) {
        Tensor *first = op_take_token(c, x, 0);                         /* (B, H) */
        out->pooled = op_tanh(c, op_linear(c, first, m->pool_w, m->pool_b)); /* (B, H) */
    }
    if (need_logits) {
        DCHECK(out->pooled != NULL); /* bert_config_validate: a classifier implies a pooler */
        Tensor *h = op_dropout(c, out->pooled, p_cls);                  /* (B, H) */
        out->logits = op_linear(c, h, m->cls_w, m->cls_b);              /* (B, C) */
    }
}
