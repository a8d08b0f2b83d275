/*
 * ckpt_h5.c — what is checkpoint-specific on top of io/h5.h: opening a checkpoint for reading
 * (format check), its SHA-256 content hash, and the BertConfig <-> /student attribute mapping.
 * See ckpt_internal.h.
 *
 * Promise: every function either succeeds or returns DISTILL_ERR with a message that starts with
 * the file's path and names the object and attribute involved; none leaks an HDF5 id.
 */
#define _POSIX_C_SOURCE 200809L
#include "ckpt_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

/* ================================================================ opening */

Status ckpt_open_read(const char *path, hid_t *file_out) {
    *file_out = H5I_INVALID_HID;
    if (access(path, R_OK) != 0) {
        distill_set_error("%s: cannot open checkpoint: %s", path, strerror(errno));
        return DISTILL_ERR;
    }
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        distill_set_error("%s: expected an HDF5 checkpoint, found a file without an HDF5 signature",
                          path);
        return DISTILL_ERR;
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f < 0) /* before any other HDF5 call, which would clear the error stack */
        distill_set_error("%s: cannot be read as HDF5 (truncated or corrupted): %s", path,
                          h5_error_text());
    H5Pclose(fapl);
    if (f < 0) return DISTILL_ERR;
    char *fmt = NULL;
    int64_t version = 0;
    if (!h5a_has(f, "format")) {
        distill_set_error("%s: not a distill checkpoint: expected attribute 'format' = '%s' on /, "
                          "found none", path, CKPT_FORMAT);
        goto fail;
    }
    if (h5a_get_str(path, f, "/", "format", &fmt) != DISTILL_OK) goto fail;
    if (strcmp(fmt, CKPT_FORMAT) != 0) {
        distill_set_error("%s: not a distill checkpoint: expected format '%s', found '%s'", path,
                          CKPT_FORMAT, fmt);
        goto fail;
    }
    if (h5a_get_i64(path, f, "/", "format_version", &version) != DISTILL_OK) goto fail;
    if (version < 1 || version > CKPT_FORMAT_VERSION) {
        distill_set_error("%s: expected checkpoint format_version 1..%d, found %lld", path,
                          CKPT_FORMAT_VERSION, (long long)version);
        goto fail;
    }
    free(fmt);
    *file_out = f;
    return DISTILL_OK;
fail:
    free(fmt);
    H5Fclose(f);
    return DISTILL_ERR;
}

/* ================================================================ SHA-256 */

void sha_begin(Sha256 *h) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    DCHECK(c != NULL);
    DCHECK(EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1);
    h->ctx = c;
}

void sha_bytes(Sha256 *h, const void *p, size_t n) {
    if (n) DCHECK(EVP_DigestUpdate((EVP_MD_CTX *)h->ctx, p, n) == 1);
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

void sha_f32s(Sha256 *h, const float *x, size_t n) {
    if (host_is_little_endian()) {
        sha_bytes(h, x, n * sizeof(float));
        return;
    }
    uint8_t buf[4096];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof buf / 4 && i < n; k++, i++) {
            uint32_t b;
            memcpy(&b, &x[i], 4);
            for (int j = 0; j < 4; j++) buf[4 * k + j] = (uint8_t)(b >> (8 * j));
        }
        sha_bytes(h, buf, 4 * k);
    }
}

void sha_end(Sha256 *h, uint8_t out[SHA256_LEN]) {
    unsigned len = 0;
    DCHECK(EVP_DigestFinal_ex((EVP_MD_CTX *)h->ctx, out, &len) == 1 && len == SHA256_LEN);
    EVP_MD_CTX_free((EVP_MD_CTX *)h->ctx);
    h->ctx = NULL;
}

static void sha_u64_le(Sha256 *h, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    sha_bytes(h, b, 8);
}

static void sha_string(Sha256 *h, const char *s) {
    if (!s) {
        sha_u64_le(h, UINT64_MAX);
        return;
    }
    size_t n = strlen(s);
    sha_u64_le(h, n);
    sha_bytes(h, s, n);
}

void sha_field_i64(Sha256 *h, const char *name, int64_t v) {
    sha_string(h, name);
    sha_u64_le(h, (uint64_t)v);
}
void sha_field_u64(Sha256 *h, const char *name, uint64_t v) {
    sha_string(h, name);
    sha_u64_le(h, v);
}
void sha_field_f64(Sha256 *h, const char *name, double v) {
    uint64_t b;
    memcpy(&b, &v, 8);
    sha_field_u64(h, name, b);
}
void sha_field_f32(Sha256 *h, const char *name, float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    sha_field_u64(h, name, b);
}
void sha_field_str(Sha256 *h, const char *name, const char *s) {
    sha_string(h, name);
    sha_string(h, s);
}

void sha_hex(const uint8_t d[SHA256_LEN], char out[2 * SHA256_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * SHA256_LEN] = '\0';
}

void digests_add(DigestList *dl, const char *key, int ndim, const int *shape,
                 const uint8_t digest[SHA256_LEN]) {
    if (dl->n == dl->cap) {
        dl->cap = dl->cap ? 2 * dl->cap : 64;
        dl->v = xrealloc(dl->v, (size_t)dl->cap * sizeof *dl->v);
    }
    TensorDigest *e = &dl->v[dl->n++];
    memset(e, 0, sizeof *e);
    e->key = xstrdup(key);
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->dims[i] = shape[i];
    memcpy(e->digest, digest, SHA256_LEN);
}

static int cmp_digest(const void *a, const void *b) {
    return strcmp(((const TensorDigest *)a)->key, ((const TensorDigest *)b)->key);
}

void digests_feed(Sha256 *h, DigestList *dl, const char *prefix) {
    qsort(dl->v, (size_t)dl->n, sizeof *dl->v, cmp_digest);
    size_t plen = strlen(prefix);
    for (int i = 0; i < dl->n; i++) {
        const TensorDigest *e = &dl->v[i];
        if (strncmp(e->key, prefix, plen) != 0) continue;
        sha_string(h, e->key);
        sha_u64_le(h, (uint64_t)e->ndim);
        for (int d = 0; d < e->ndim; d++) sha_u64_le(h, (uint64_t)e->dims[d]);
        sha_bytes(h, e->digest, SHA256_LEN);
    }
}

void digests_free(DigestList *dl) {
    for (int i = 0; i < dl->n; i++) free(dl->v[i].key);
    free(dl->v);
    memset(dl, 0, sizeof *dl);
}

/* The number of id2label entries stored for a config. */
static int n_id2label(const BertConfig *cfg) {
    return cfg->num_labels < BERT_MAX_LABELS ? cfg->num_labels : BERT_MAX_LABELS;
}

static void hash_config(Sha256 *h, const BertConfig *c) {
    sha_field_i64(h, "vocab_size", c->vocab_size);
    sha_field_i64(h, "hidden_size", c->hidden_size);
    sha_field_i64(h, "num_hidden_layers", c->num_hidden_layers);
    sha_field_i64(h, "num_attention_heads", c->num_attention_heads);
    sha_field_i64(h, "intermediate_size", c->intermediate_size);
    sha_field_i64(h, "max_position_embeddings", c->max_position_embeddings);
    sha_field_i64(h, "type_vocab_size", c->type_vocab_size);
    sha_field_i64(h, "num_labels", c->num_labels);
    sha_field_f32(h, "layer_norm_eps", c->layer_norm_eps);
    sha_field_f32(h, "hidden_dropout_prob", c->hidden_dropout_prob);
    sha_field_f32(h, "attention_probs_dropout_prob", c->attention_probs_dropout_prob);
    sha_field_f32(h, "classifier_dropout", c->classifier_dropout);
    sha_field_f32(h, "initializer_range", c->initializer_range);
    sha_field_i64(h, "pad_token_id", c->pad_token_id);
    sha_field_i64(h, "has_pooler", c->has_pooler);
    sha_field_str(h, "problem_type", c->problem_type);
    /* NULL ("LABEL_i") and "" are stored alike, so they hash alike. */
    for (int i = 0; i < n_id2label(c); i++)
        sha_field_str(h, "id2label", c->id2label[i] ? c->id2label[i] : "");
}

void ckpt_model_sha256(const Bert *m, char out[65]) {
    const BertConfig *c = &m->cfg;
    Sha256 h;
    sha_begin(&h);
    sha_field_str(&h, "format", "distill-model-forward-1");
    sha_field_i64(&h, "vocab_size", c->vocab_size);
    sha_field_i64(&h, "hidden_size", c->hidden_size);
    sha_field_i64(&h, "num_hidden_layers", c->num_hidden_layers);
    sha_field_i64(&h, "num_attention_heads", c->num_attention_heads);
    sha_field_i64(&h, "intermediate_size", c->intermediate_size);
    sha_field_i64(&h, "max_position_embeddings", c->max_position_embeddings);
    sha_field_i64(&h, "type_vocab_size", c->type_vocab_size);
    sha_field_i64(&h, "num_labels", c->num_labels);
    sha_field_f32(&h, "layer_norm_eps", c->layer_norm_eps);
    sha_field_i64(&h, "pad_token_id", c->pad_token_id);
    sha_field_i64(&h, "has_pooler", c->has_pooler);
    const ParamStore *ps = m->params;
    float *host = xmalloc((ps->total ? ps->total : 1) * sizeof(float));
    params_buffer_to_host(ps, ps->data, host, ps->total);
    DigestList dl = {0};
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = ps->tensors[i];
        Sha256 th;
        uint8_t d[SHA256_LEN];
        sha_begin(&th);
        sha_f32s(&th, host + ps->offsets[i], (size_t)t->numel);
        sha_end(&th, d);
        digests_add(&dl, t->name, t->ndim, t->shape, d);
    }
    free(host);
    digests_feed(&h, &dl, "");
    digests_free(&dl);
    uint8_t d[SHA256_LEN];
    sha_end(&h, d);
    sha_hex(d, out);
}

void ckpt_hash_student(const BertConfig *cfg, const TrainCheckpoint *ck, DigestList *dl,
                       uint8_t out[SHA256_LEN]) {
    Sha256 h;
    sha_begin(&h);
    sha_field_str(&h, "format", CKPT_FORMAT);
    hash_config(&h, cfg);
    digests_feed(&h, dl, "/student/");
    sha_field_i64(&h, "n_vocab", ck->n_vocab);
    for (int i = 0; i < ck->n_vocab; i++) sha_field_str(&h, "vocab", ck->vocab[i] ? ck->vocab[i] : "");
    sha_field_i64(&h, "do_lower_case", ck->do_lower_case);
    sha_field_i64(&h, "n_label_names", ck->n_label_names);
    for (int i = 0; i < ck->n_label_names; i++)
        sha_field_str(&h, "label_names", ck->label_names[i] ? ck->label_names[i] : "");
    sha_end(&h, out);
}

void ckpt_hash_full(const TrainCheckpoint *ck, const uint8_t student[SHA256_LEN], DigestList *dl,
                    uint8_t out[SHA256_LEN]) {
    Sha256 h;
    sha_begin(&h);
    sha_bytes(&h, student, SHA256_LEN);
    digests_feed(&h, dl, "/projections/");
    digests_feed(&h, dl, "/optim/");
    sha_field_i64(&h, "step", ck->step);
    sha_field_i64(&h, "epoch", ck->epoch);
    sha_field_i64(&h, "batch_cursor", ck->batch_cursor);
    sha_field_i64(&h, "samples_seen", ck->samples_seen);
    sha_field_i64(&h, "optimizer_steps", ck->optimizer_steps);
    sha_field_u64(&h, "rng_seed", ck->rng_seed);
    sha_field_u64(&h, "rng_counter", ck->rng_counter);
    sha_field_u64(&h, "data_seed", ck->data_seed);
    sha_field_f64(&h, "best_metric", ck->best_metric);
    sha_field_i64(&h, "best_step", ck->best_step);
    sha_field_i64(&h, "metrics_offset", ck->metrics_offset);
    /* hashed only when set, so checkpoints from before the field still verify */
    if (ck->bad_steps) sha_field_i64(&h, "bad_steps", ck->bad_steps);
    /* staged runs only (stages: in the config): single-stage files hash as before */
    if (ck->stage) { /* in stage 0, stage_step == step (checked on load) */
        sha_field_i64(&h, "stage", ck->stage);
        sha_field_i64(&h, "stage_step", ck->stage_step);
    }
    sha_field_str(&h, "config_yaml", ck->config_yaml);
    sha_end(&h, out);
}

/* ================================================================ BertConfig */

Status ckpt_put_config(const char *path, hid_t g, const BertConfig *c) {
    Status st = DISTILL_OK;
    st |= h5a_put_i64(path, g, "vocab_size", c->vocab_size);
    st |= h5a_put_i64(path, g, "hidden_size", c->hidden_size);
    st |= h5a_put_i64(path, g, "num_hidden_layers", c->num_hidden_layers);
    st |= h5a_put_i64(path, g, "num_attention_heads", c->num_attention_heads);
    st |= h5a_put_i64(path, g, "intermediate_size", c->intermediate_size);
    st |= h5a_put_i64(path, g, "max_position_embeddings", c->max_position_embeddings);
    st |= h5a_put_i64(path, g, "type_vocab_size", c->type_vocab_size);
    st |= h5a_put_i64(path, g, "num_labels", c->num_labels);
    st |= h5a_put_f32(path, g, "layer_norm_eps", c->layer_norm_eps);
    st |= h5a_put_f32(path, g, "hidden_dropout_prob", c->hidden_dropout_prob);
    st |= h5a_put_f32(path, g, "attention_probs_dropout_prob", c->attention_probs_dropout_prob);
    st |= h5a_put_f32(path, g, "classifier_dropout", c->classifier_dropout);
    st |= h5a_put_f32(path, g, "initializer_range", c->initializer_range);
    st |= h5a_put_i64(path, g, "pad_token_id", c->pad_token_id);
    st |= h5a_put_i64(path, g, "has_pooler", c->has_pooler);
    st |= h5a_put_str(path, g, "problem_type", c->problem_type);
    if (n_id2label(c) > 0)
        st |= h5a_put_strs(path, g, "id2label", (const char *const *)c->id2label,
                           (size_t)n_id2label(c));
    return st ? DISTILL_ERR : DISTILL_OK;
}

static Status check_prob(const char *path, const char *name, float p, bool allow_negative) {
    if (isfinite(p) && p < 1.0f && (p >= 0.0f || allow_negative)) return DISTILL_OK;
    distill_set_error("%s: /student: expected %s in [0, 1)%s, found %g", path, name,
                      allow_negative ? " (or < 0 for none)" : "", (double)p);
    return DISTILL_ERR;
}

Status ckpt_get_config(const char *path, hid_t g, BertConfig *c) {
    memset(c, 0, sizeof *c);
    const char *on = "/student";
    int64_t pooler;
    char *problem = NULL;
    /* Upper bounds keep every tensor's element count inside int and the totals inside size_t. */
    if (h5a_get_int_in(path, g, on, "vocab_size", 1, 1 << 24, &c->vocab_size) ||
        h5a_get_int_in(path, g, on, "hidden_size", 1, 1 << 16, &c->hidden_size) ||
        h5a_get_int_in(path, g, on, "num_hidden_layers", 0, 1024, &c->num_hidden_layers) ||
        h5a_get_int_in(path, g, on, "num_attention_heads", 1, 1 << 12, &c->num_attention_heads) ||
        h5a_get_int_in(path, g, on, "intermediate_size", 1, 1 << 18, &c->intermediate_size) ||
        h5a_get_int_in(path, g, on, "max_position_embeddings", 1, 1 << 20,
                       &c->max_position_embeddings) ||
        h5a_get_int_in(path, g, on, "type_vocab_size", 1, 1 << 16, &c->type_vocab_size) ||
        h5a_get_int_in(path, g, on, "num_labels", 0, 1 << 20, &c->num_labels) ||
        h5a_get_f32(path, g, on, "layer_norm_eps", &c->layer_norm_eps) ||
        h5a_get_f32(path, g, on, "hidden_dropout_prob", &c->hidden_dropout_prob) ||
        h5a_get_f32(path, g, on, "attention_probs_dropout_prob", &c->attention_probs_dropout_prob) ||
        h5a_get_f32(path, g, on, "classifier_dropout", &c->classifier_dropout) ||
        h5a_get_f32(path, g, on, "initializer_range", &c->initializer_range) ||
        h5a_get_int_in(path, g, on, "pad_token_id", 0, c->vocab_size - 1, &c->pad_token_id) ||
        h5a_get_i64(path, g, on, "has_pooler", &pooler) ||
        h5a_get_str(path, g, on, "problem_type", &problem))
        goto fail;
    c->has_pooler = pooler != 0;
    if (c->hidden_size % c->num_attention_heads != 0) {
        distill_set_error("%s: /student: expected hidden_size (%d) to be a multiple of "
                          "num_attention_heads, found %d heads", path, c->hidden_size,
                          c->num_attention_heads);
        goto fail;
    }
    if (!(isfinite(c->layer_norm_eps) && c->layer_norm_eps > 0.0f)) {
        distill_set_error("%s: /student: expected layer_norm_eps > 0, found %g", path,
                          (double)c->layer_norm_eps);
        goto fail;
    }
    if (!(isfinite(c->initializer_range) && c->initializer_range >= 0.0f)) {
        distill_set_error("%s: /student: expected initializer_range >= 0, found %g", path,
                          (double)c->initializer_range);
        goto fail;
    }
    if (check_prob(path, "hidden_dropout_prob", c->hidden_dropout_prob, false) ||
        check_prob(path, "attention_probs_dropout_prob", c->attention_probs_dropout_prob, false) ||
        check_prob(path, "classifier_dropout", c->classifier_dropout, true))
        goto fail;
    if (strlen(problem) >= sizeof c->problem_type) {
        distill_set_error("%s: /student: expected problem_type of at most %zu bytes, found '%s'",
                          path, sizeof c->problem_type - 1, problem);
        goto fail;
    }
    strcpy(c->problem_type, problem);
    free(problem);
    problem = NULL;
    if (n_id2label(c) > 0) {
        char **names;
        int n;
        if (h5a_get_strs(path, g, on, "id2label", &names, &n) != DISTILL_OK) goto fail;
        if (n != n_id2label(c)) {
            distill_set_error("%s: /student: expected %d id2label entries (num_labels %d), found %d",
                              path, n_id2label(c), c->num_labels, n);
            h5_strs_free(names, n);
            goto fail;
        }
        for (int i = 0; i < n; i++) {
            if (names[i][0]) c->id2label[i] = names[i]; /* "" = LABEL_i (NULL) */
            else free(names[i]);
        }
        free(names);
    }
    return DISTILL_OK;
fail:
    free(problem);
    bert_config_free_labels(c);
    return DISTILL_ERR;
}
