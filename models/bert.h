/*
 * bert.h — BERT exactly as Hugging Face's BertModel + BertForSequenceClassification.
 *
 * Word + position + token-type embeddings, LayerNorm, post-LN encoder layers (self-attention,
 * residual + LayerNorm, FFN with exact GELU, residual + LayerNorm), pooler (tanh dense on [CLS]),
 * dropout, classifier. Parameters carry Hugging Face's names ("bert.encoder.layer.3.attention.
 * self.query.weight"), linear weights stored (out, in), so import and export rename nothing.
 *
 * Gradient rule (as in every op): parameter gradients accumulate into model->params->grad.
 * As torch's nn.Embedding(padding_idx) in HF, word-embedding row pad_token_id gets no gradient.
 */
#ifndef DISTILL_BERT_H
#define DISTILL_BERT_H

#include "../engine/ctx.h"
#include "../engine/params.h"

#define BERT_MAX_LABELS 64

typedef struct BertConfig {
    int vocab_size;              /* 30522 */
    int hidden_size;             /* 768 */
    int num_hidden_layers;       /* 12 */
    int num_attention_heads;     /* 12 */
    int intermediate_size;       /* 3072 */
    int max_position_embeddings; /* 512 */
    int type_vocab_size;         /* 2 */
    int num_labels;              /* classifier outputs; 1 = regression; 0 = no classifier */
    float layer_norm_eps;        /* 1e-12 */
    float hidden_dropout_prob;   /* 0.1 */
    float attention_probs_dropout_prob; /* 0.1 */
    float classifier_dropout;    /* < 0: use hidden_dropout_prob (HF's None) */
    float initializer_range;     /* 0.02 */
    int pad_token_id;            /* 0 */
    bool has_pooler;             /* BertModel(add_pooling_layer=True) */
    char problem_type[32];       /* "" | single_label_classification | regression */
    char *id2label[BERT_MAX_LABELS]; /* NULL = "LABEL_i" */
} BertConfig;

/* Hugging Face's defaults for bert-base-uncased with num_labels = 2. */
BertConfig bert_config_default(void);
void bert_config_free_labels(BertConfig *cfg);
/* DISTILL_OK when the config describes a buildable model (positive sizes, hidden_size a multiple
 * of num_attention_heads, num_labels <= BERT_MAX_LABELS, a pooler when there is a classifier,
 * dropout probabilities in [0, 1), eps > 0); otherwise DISTILL_ERR with the field, what was
 * expected and what was found in distill_error(). bert_build requires a valid config. */
Status bert_config_validate(const BertConfig *cfg);
/* Number of parameters the config implies (with pooler/classifier as configured). */
size_t bert_config_param_count(const BertConfig *cfg);

typedef struct BertLayer {
    Tensor *q_w, *q_b;     /* (H, H), (H) attention.self.query */
    Tensor *k_w, *k_b;     /* (H, H), (H) attention.self.key */
    Tensor *v_w, *v_b;     /* (H, H), (H) attention.self.value */
    Tensor *ao_w, *ao_b;   /* (H, H), (H) attention.output.dense */
    Tensor *ln1_g, *ln1_b; /* (H) attention.output.LayerNorm */
    Tensor *i_w, *i_b;     /* (I, H), (I) intermediate.dense */
    Tensor *o_w, *o_b;     /* (H, I), (H) output.dense */
    Tensor *ln2_g, *ln2_b; /* (H) output.LayerNorm */
} BertLayer;

typedef struct Bert {
    BertConfig cfg;
    ParamStore *params;
    Tensor *word_emb;      /* (V, H) bert.embeddings.word_embeddings.weight */
    Tensor *pos_emb;       /* (P, H) bert.embeddings.position_embeddings.weight */
    Tensor *type_emb;      /* (T, H) bert.embeddings.token_type_embeddings.weight */
    Tensor *emb_ln_g, *emb_ln_b; /* (H) bert.embeddings.LayerNorm */
    BertLayer *layers;     /* num_hidden_layers */
    Tensor *pool_w, *pool_b; /* (H, H), (H) bert.pooler.dense; NULL without pooler */
    Tensor *cls_w, *cls_b;   /* (C, H), (C) classifier; NULL when num_labels == 0 */
} Bert;

/* One batch. Padding is on the right: the attention mask is position < lengths[b]. */
typedef struct BertInput {
    Tensor *input_ids;      /* i32 (B, S) */
    Tensor *token_type_ids; /* i32 (B, S), or NULL for all zeros */
    Tensor *lengths;        /* i32 (B) on the device */
    const int32_t *lengths_host; /* the same lengths on the host (B) */
} BertInput;

/* What the caller wants back besides logits. Per-layer arrays are indexed by layer (0-based);
 * a NULL array means "none". Hidden states are indexed 0 (embedding output) .. L. */
typedef struct BertRequest {
    bool all_hidden;        /* every hidden state */
    const bool *hidden;     /* (L+1) or NULL */
    bool all_scores;        /* attention scores (pre-softmax, scaled, mask applied) */
    const bool *scores;     /* (L) or NULL */
    bool all_probs;         /* attention probabilities */
    const bool *probs;      /* (L) or NULL */
    bool no_logits;         /* stop after the encoder (and pooler if want_pooled) */
    bool want_pooled;
} BertRequest;

typedef struct BertOutput {
    Tensor *logits;         /* (B, C) or NULL */
    Tensor *pooled;         /* (B, H) pooler output, or NULL */
    Tensor *sequence;       /* (B, S, H) last hidden state */
    Tensor **hidden;        /* (L+1) pointers, NULL where not requested; each (B, S, H) */
    Tensor **scores;        /* (L), each (B, heads, S, S) */
    Tensor **probs;         /* (L), each (B, heads, S, S): softmax before attention dropout */
} BertOutput;

/* Declares and allocates parameters (zero-filled) on `device`. The model keeps its own copy of
 * cfg, label names included (bert_free releases it). cfg must pass bert_config_validate. */
Bert *bert_build(const BertConfig *cfg, Device device);
/* Hugging Face's initialisation: normal(0, initializer_range) for linear and embedding weights,
 * zero biases, LayerNorm weight 1 bias 0; the padding row of the word embedding zero. */
void bert_init(Bert *m, uint64_t seed);
/* Re-initialises only the pooler and classifier (for "newly initialized" weights on import). */
void bert_init_head(Bert *m, uint64_t seed, bool pooler, bool classifier);
/* Forward. Dropout is applied when c->training. Output arrays are allocated in c's meta arena. */
void bert_forward(Ctx *c, Bert *m, const BertInput *in, const BertRequest *req, BertOutput *out);
void bert_free(Bert *m);

/* The additive attention mask (B, S) for lengths: 0 where valid, float min where padded.
 * Returned as a device tensor in c's arena. */
Tensor *bert_attention_mask(Ctx *c, const int32_t *lengths_host, int B, int S);

#endif
