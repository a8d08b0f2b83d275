/*
 * hf.c — Hugging Face folder import (config.json -> BertConfig, model.safetensors -> parameters,
 * with HF's rules for prefixes, known heads and newly initialised weights) and export (the folder
 * transformers loads as BertForSequenceClassification, written whole or not at all).
 * See hf.h for the promises. JSON goes through cJSON; tensors through checkpoints/safetensors.h.
 */
#define _GNU_SOURCE
#include "hf.h"

#include "safetensors.h"

#include "io/atomic.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The transformers release whose config.json layout hf_save writes ("transformers_version"). */
#define HF_TRANSFORMERS_VERSION "4.44.2"
/* Names listed in a warning before "... (N more)". */
#define HF_LIST_MAX 16

/* ------------------------------------------------------------------ small helpers */

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Whole file into a NUL-terminated buffer. */
static Status read_text(const char *path, char **text, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        distill_set_error("%s: cannot open: %s", path, strerror(errno));
        return DISTILL_ERR;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, fp);
        n += r;
        if (r == 0) break;
    }
    bool err = ferror(fp);
    fclose(fp);
    if (err) {
        free(buf);
        distill_set_error("%s: read failed", path);
        return DISTILL_ERR;
    }
    buf[n] = '\0';
    *text = buf;
    if (len) *len = n;
    return DISTILL_OK;
}

/* A growing string for lists in messages. */
typedef struct { char *s; size_t n, cap; } Str;
static void str_addf(Str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_addf(Str *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)need + 1 > b->cap) {
        b->cap = (b->n + (size_t)need + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

/* "['a', 'b', ... (N more)]" as Python prints a list of names. */
static void str_names(Str *b, const char *const *names, int n) {
    str_addf(b, "[");
    for (int i = 0; i < n && i < HF_LIST_MAX; i++) str_addf(b, "%s'%s'", i ? ", " : "", names[i]);
    if (n > HF_LIST_MAX) str_addf(b, ", ... (%d more)", n - HF_LIST_MAX);
    str_addf(b, "]");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ------------------------------------------------------------------ vocab.txt */

typedef struct {
    int tokens;          /* lines, as BertTokenizer counts them */
    bool has_upper;      /* ASCII upper case outside [SPECIAL] tokens: a cased vocabulary */
    bool has_cls, has_sep, has_pad, has_unk;
} VocabScan;

static void vocab_scan(const char *text, size_t len, VocabScan *v) {
    memset(v, 0, sizeof *v);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        size_t n = (size_t)(e - p);
        if (n && p[n - 1] == '\r') n--;
        v->tokens++;
        bool special = n >= 2 && p[0] == '[' && p[n - 1] == ']';
        if (special) {
            v->has_cls |= n == 5 && memcmp(p, "[CLS]", 5) == 0;
            v->has_sep |= n == 5 && memcmp(p, "[SEP]", 5) == 0;
            v->has_pad |= n == 5 && memcmp(p, "[PAD]", 5) == 0;
            v->has_unk |= n == 5 && memcmp(p, "[UNK]", 5) == 0;
        } else {
            for (size_t i = 0; i < n; i++) v->has_upper |= p[i] >= 'A' && p[i] <= 'Z';
        }
        p = nl ? nl + 1 : end;
    }
}

/* ------------------------------------------------------------------ config.json */

/* The value as JSON text, shortened, for "found ..." in messages. */
static const char *json_repr(const cJSON *it, char *buf, size_t n) {
    char *s = cJSON_PrintUnformatted(it);
    snprintf(buf, n, "%s", s ? s : "?");
    if (s && strlen(s) >= n && n > 4) strcpy(buf + n - 4, "...");
    cJSON_free(s);
    return buf;
}

static Status cfg_int(const char *path, const cJSON *root, const char *key, int lo, int *dst) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it) return DISTILL_OK;
    if (!cJSON_IsNumber(it) || floor(it->valuedouble) != it->valuedouble ||
        it->valuedouble < lo || it->valuedouble > INT_MAX) {
        char buf[64];
        distill_set_error("%s: \"%s\": expected an integer >= %d, found %s", path, key, lo,
                          json_repr(it, buf, sizeof buf));
        return DISTILL_ERR;
    }
    *dst = (int)it->valuedouble;
    return DISTILL_OK;
}

/* A number in [lo, hi) (or (0, hi) when lo_open), or null when allow_null (-> null_value). */
static Status cfg_float(const char *path, const cJSON *root, const char *key, double lo, bool lo_open,
                        double hi, bool allow_null, float null_value, float *dst) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it) return DISTILL_OK;
    if (allow_null && cJSON_IsNull(it)) {
        *dst = null_value;
        return DISTILL_OK;
    }
    double d = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!(lo_open ? d > lo : d >= lo) || !(d < hi)) {
        char buf[64];
        distill_set_error("%s: \"%s\": expected a number in %s%g, %g)%s, found %s", path, key,
                          lo_open ? "(" : "[", lo, hi, allow_null ? " or null" : "",
                          json_repr(it, buf, sizeof buf));
        return DISTILL_ERR;
    }
    *dst = (float)d;
    return DISTILL_OK;
}

/* A string field that must be absent or equal one of the accepted values (what distill implements). */
static Status cfg_only(const char *path, const cJSON *root, const char *key, const char *accepted,
                       const char *why) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || (cJSON_IsString(it) && strcmp(it->valuestring, accepted) == 0)) return DISTILL_OK;
    char buf[64];
    distill_set_error("%s: \"%s\": expected \"%s\" (%s), found %s", path, key, accepted, why,
                      json_repr(it, buf, sizeof buf));
    return DISTILL_ERR;
}

static Status cfg_labels(const char *path, const cJSON *id2label, BertConfig *cfg) {
    char buf[64];
    if (!cJSON_IsObject(id2label) || cJSON_GetArraySize(id2label) < 1 ||
        cJSON_GetArraySize(id2label) > BERT_MAX_LABELS) {
        distill_set_error("%s: \"id2label\": expected an object of 1 to %d labels "
                          "{\"0\": \"NAME\", ...}, found %s", path, BERT_MAX_LABELS,
                          json_repr(id2label, buf, sizeof buf));
        return DISTILL_ERR;
    }
    int n = cJSON_GetArraySize(id2label);
    for (const cJSON *it = id2label->child; it; it = it->next) {
        char *end = NULL;
        long k = strtol(it->string, &end, 10);
        if (!it->string[0] || *end || k < 0 || k >= n || cfg->id2label[k] || !cJSON_IsString(it)) {
            distill_set_error("%s: \"id2label\": expected keys \"0\"..\"%d\" once each with string "
                              "values, found \"%s\": %s", path, n - 1, it->string,
                              json_repr(it, buf, sizeof buf));
            return DISTILL_ERR;
        }
        cfg->id2label[k] = xstrdup(it->valuestring);
    }
    cfg->num_labels = n;
    return DISTILL_OK;
}

static Status parse_config(const char *path, const cJSON *root, BertConfig *cfg, HfLoadReport *rep) {
    char buf[64];
    if (!cJSON_IsObject(root)) {
        distill_set_error("%s: expected a JSON object, found %s", path, json_repr(root, buf, sizeof buf));
        return DISTILL_ERR;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && !(cJSON_IsString(mt) && strcmp(mt->valuestring, "bert") == 0)) {
        distill_set_error("%s: \"model_type\": expected \"bert\" (distill builds BERT with BERT's "
                          "parameter names), found %s", path, json_repr(mt, buf, sizeof buf));
        return DISTILL_ERR;
    }
    if (cfg_only(path, root, "hidden_act", "gelu", "distill implements exact erf GELU") ||
        cfg_only(path, root, "position_embedding_type", "absolute",
                 "distill implements absolute position embeddings"))
        return DISTILL_ERR;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "is_decoder");
    if (cJSON_IsTrue(dec)) {
        distill_set_error("%s: \"is_decoder\": expected false (distill builds encoders), found true",
                          path);
        return DISTILL_ERR;
    }
    if (cfg_int(path, root, "vocab_size", 1, &cfg->vocab_size) ||
        cfg_int(path, root, "hidden_size", 1, &cfg->hidden_size) ||
        cfg_int(path, root, "num_hidden_layers", 1, &cfg->num_hidden_layers) ||
        cfg_int(path, root, "num_attention_heads", 1, &cfg->num_attention_heads) ||
        cfg_int(path, root, "intermediate_size", 1, &cfg->intermediate_size) ||
        cfg_int(path, root, "max_position_embeddings", 1, &cfg->max_position_embeddings) ||
        cfg_int(path, root, "type_vocab_size", 1, &cfg->type_vocab_size) ||
        cfg_float(path, root, "layer_norm_eps", 0.0, true, 1.0, false, 0, &cfg->layer_norm_eps) ||
        cfg_float(path, root, "hidden_dropout_prob", 0.0, false, 1.0, false, 0,
                  &cfg->hidden_dropout_prob) ||
        cfg_float(path, root, "attention_probs_dropout_prob", 0.0, false, 1.0, false, 0,
                  &cfg->attention_probs_dropout_prob) ||
        cfg_float(path, root, "classifier_dropout", 0.0, false, 1.0, true, -1.0f,
                  &cfg->classifier_dropout) ||
        cfg_float(path, root, "initializer_range", 0.0, false, INFINITY, false, 0,
                  &cfg->initializer_range))
        return DISTILL_ERR;
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(root, "pad_token_id");
    if (cJSON_IsNull(pad)) cfg->pad_token_id = 0; /* no padding row: only initialisation differs */
    else if (cfg_int(path, root, "pad_token_id", 0, &cfg->pad_token_id)) return DISTILL_ERR;
    if (cfg->pad_token_id >= cfg->vocab_size) {
        distill_set_error("%s: \"pad_token_id\": expected an id below vocab_size %d, found %d", path,
                          cfg->vocab_size, cfg->pad_token_id);
        return DISTILL_ERR;
    }
    if (cfg->hidden_size % cfg->num_attention_heads != 0) {
        distill_set_error("%s: \"hidden_size\" %d is not a multiple of \"num_attention_heads\" %d",
                          path, cfg->hidden_size, cfg->num_attention_heads);
        return DISTILL_ERR;
    }
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "problem_type");
    if (pt && !cJSON_IsNull(pt)) {
        if (!cJSON_IsString(pt) || strlen(pt->valuestring) >= sizeof cfg->problem_type) {
            distill_set_error("%s: \"problem_type\": expected a string or null, found %s", path,
                              json_repr(pt, buf, sizeof buf));
            return DISTILL_ERR;
        }
        snprintf(cfg->problem_type, sizeof cfg->problem_type, "%s", pt->valuestring);
    }
    /* num_labels: id2label when present (HF derives it from there), else the field, else 2. */
    const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(root, "id2label");
    if (id2label) {
        if (cfg_labels(path, id2label, cfg)) return DISTILL_ERR;
    } else {
        if (cfg_int(path, root, "num_labels", 1, &cfg->num_labels)) return DISTILL_ERR;
        if (cfg->num_labels > BERT_MAX_LABELS) {
            distill_set_error("%s: \"num_labels\": expected at most %d, found %d", path,
                              BERT_MAX_LABELS, cfg->num_labels);
            return DISTILL_ERR;
        }
    }
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (rep && cJSON_IsArray(arch) && cJSON_IsString(arch->child))
        snprintf(rep->architecture, sizeof rep->architecture, "%s", arch->child->valuestring);
    return DISTILL_OK;
}

/* Parses a JSON file; syntax errors report line and column. */
static Status read_json(const char *path, cJSON **out) {
    char *text;
    size_t len;
    if (read_text(path, &text, &len)) return DISTILL_ERR;
    *out = cJSON_ParseWithLength(text, len);
    if (!*out) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1, col = 1;
        for (const char *p = text; at && p < at && p < text + len; p++) {
            if (*p == '\n') line++, col = 1;
            else col++;
        }
        distill_set_error("%s:%d:%d: expected valid JSON, found a syntax error", path, line, col);
        free(text);
        return DISTILL_ERR;
    }
    free(text);
    return DISTILL_OK;
}

HfLoadOptions hf_load_defaults(void) {
    HfLoadOptions o = {.num_labels = -1, .num_layers = 0, .seed = 42, .quiet = false};
    return o;
}

Status hf_read_config(const char *dir, BertConfig *cfg, HfLoadReport *rep) {
    HfLoadReport local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    rep->vocab_tokens = -1;
    rep->do_lower_case = -1;
    *cfg = bert_config_default();
    for (int i = 0; i < BERT_MAX_LABELS; i++) cfg->id2label[i] = NULL;
    cfg->num_labels = 2; /* PretrainedConfig's default */
    cfg->has_pooler = true;
    cfg->classifier_dropout = -1.0f;
    cfg->problem_type[0] = '\0';

    struct stat st;
    int sr = stat(dir, &st);
    if (sr != 0 || !S_ISDIR(st.st_mode)) {
        distill_set_error("%s: expected a Hugging Face model folder (config.json, model.safetensors), "
                          "found %s", dir, sr != 0 ? strerror(errno) : "a file");
        return DISTILL_ERR;
    }
    char *path = path_join(dir, "config.json");
    Status s = DISTILL_ERR;
    cJSON *root = NULL;
    if (!is_file(path)) {
        distill_set_error("%s: no such file (a Hugging Face model folder holds config.json and "
                          "model.safetensors)", path);
        goto done;
    }
    if (read_json(path, &root) || parse_config(path, root, cfg, rep)) goto done;

    /* vocab.txt: counted, and it must not name ids the embedding does not have. */
    char *vpath = path_join(dir, "vocab.txt");
    if (is_file(vpath)) {
        char *text;
        size_t len;
        if (read_text(vpath, &text, &len)) {
            free(vpath);
            goto done;
        }
        VocabScan vs;
        vocab_scan(text, len, &vs);
        free(text);
        rep->vocab_tokens = vs.tokens;
        snprintf(rep->vocab_path, sizeof rep->vocab_path, "%s", vpath);
        if (vs.tokens > cfg->vocab_size) {
            distill_set_error("%s: %d tokens, but %s says vocab_size %d: ids from %d on would have "
                              "no embedding row", vpath, vs.tokens, path, cfg->vocab_size,
                              cfg->vocab_size);
            free(vpath);
            goto done;
        }
    }
    free(vpath);
    char *tpath = path_join(dir, "tokenizer_config.json");
    if (is_file(tpath)) {
        cJSON *tok = NULL;
        if (read_json(tpath, &tok)) {
            free(tpath);
            goto done;
        }
        const cJSON *lc = cJSON_GetObjectItemCaseSensitive(tok, "do_lower_case");
        if (cJSON_IsBool(lc)) rep->do_lower_case = cJSON_IsTrue(lc) ? 1 : 0;
        cJSON_Delete(tok);
    }
    free(tpath);
    s = DISTILL_OK;
done:
    if (s != DISTILL_OK) bert_config_free_labels(cfg);
    cJSON_Delete(root);
    free(path);
    return s;
}

/* ------------------------------------------------------------------ loading weights */

/* Checkpoint tensors HF ignores when loading BertForSequenceClassification: the pre-training heads
 * and the position_ids buffer; classifier.* when no classifier is wanted; layers beyond those kept. */
static bool known_extra(const char *name, const BertConfig *cfg, int ckpt_layers) {
    const char *b = strncmp(name, "bert.", 5) == 0 ? name + 5 : name;
    if (strncmp(name, "cls.predictions.", 16) == 0 || strncmp(name, "cls.seq_relationship.", 21) == 0)
        return true;
    if (strcmp(b, "embeddings.position_ids") == 0) return true;
    if (cfg->num_labels == 0 && strncmp(name, "classifier.", 11) == 0) return true;
    int layer, off = 0;
    if (sscanf(b, "encoder.layer.%d.%n", &layer, &off) == 1 && off > 0)
        return layer >= cfg->num_hidden_layers && layer < ckpt_layers;
    return false;
}

/* TF-era checkpoints (bert-base-uncased among them) name LayerNorm parameters gamma and beta;
 * HF renames them on load, and so do we. NULL when the name has no such form or it is absent. */
static const StTensor *find_legacy(const StFile *f, const char *name) {
    static const char *const from[2] = {"LayerNorm.weight", "LayerNorm.bias"};
    static const char *const to[2] = {"LayerNorm.gamma", "LayerNorm.beta"};
    size_t n = strlen(name);
    for (int k = 0; k < 2; k++) {
        size_t m = strlen(from[k]);
        if (n < m || strcmp(name + n - m, from[k]) != 0) continue;
        char buf[256];
        if (n - m + strlen(to[k]) >= sizeof buf) return NULL;
        snprintf(buf, sizeof buf, "%.*s%s", (int)(n - m), name, to[k]);
        return st_find(f, buf);
    }
    return NULL;
}

static void print_message(const char *kind, const char *msg) {
    fprintf(stderr, "distill: %s: %s\n", kind, msg);
}

Status hf_load(const char *dir, Device device, const HfLoadOptions *opt_in, Bert **out,
               HfLoadReport *rep_in) {
    *out = NULL;
    HfLoadOptions opt = opt_in ? *opt_in : hf_load_defaults();
    HfLoadReport local;
    HfLoadReport *rep = rep_in ? rep_in : &local;
    BertConfig cfg;
    if (hf_read_config(dir, &cfg, rep)) return DISTILL_ERR;

    char *path = path_join(dir, "model.safetensors");
    StFile *f = NULL;
    Bert *m = NULL;
    const StTensor **src = NULL;
    bool *used = NULL;
    const char **newly = NULL, **skipped = NULL;
    float *stage = NULL;
    Status s = DISTILL_ERR;
    const char *model_name = "BertForSequenceClassification";

    if (!is_file(path)) {
        char *bin = path_join(dir, "pytorch_model.bin");
        char *idx = path_join(dir, "model.safetensors.index.json");
        char *binidx = path_join(dir, "pytorch_model.bin.index.json");
        if (is_file(bin) || is_file(binidx))
            distill_set_error("%s: no such file, but %s exists: convert it with "
                              "scripts/convert_pytorch_bin.py %s", path, is_file(bin) ? bin : binidx,
                              dir);
        else if (is_file(idx))
            distill_set_error("%s: no such file; sharded checkpoints (%s) are not supported", path, idx);
        else
            distill_set_error("%s: no such file (a Hugging Face model folder holds config.json and "
                              "model.safetensors)", path);
        free(bin);
        free(binidx);
        free(idx);
        goto done;
    }

    /* The shape to build: the caller's num_labels and layer count over config.json's. */
    int ckpt_layers = cfg.num_hidden_layers;
    if (opt.num_layers < 0 || opt.num_layers > ckpt_layers) {
        distill_set_error("%s: cannot keep the first %d layers of a %d-layer model", dir,
                          opt.num_layers, ckpt_layers);
        goto done;
    }
    if (opt.num_layers > 0) cfg.num_hidden_layers = opt.num_layers;
    if (opt.num_labels > BERT_MAX_LABELS) {
        distill_set_error("num_labels %d: expected at most %d", opt.num_labels, BERT_MAX_LABELS);
        goto done;
    }
    if (opt.num_labels >= 0 && opt.num_labels != cfg.num_labels) {
        bert_config_free_labels(&cfg); /* config.json's label names describe another head */
        for (int i = 0; i < BERT_MAX_LABELS; i++) cfg.id2label[i] = NULL;
        cfg.num_labels = opt.num_labels;
    }
    if (cfg.num_labels == 0) model_name = "BertModel";

    if (bert_config_validate(&cfg)) goto done;
    if (st_open(path, &f)) goto done;
    rep->prefixed = false;
    for (int i = 0; i < f->n; i++) rep->prefixed |= strncmp(f->tensors[i].name, "bert.", 5) == 0;

    /* Every parameter but a fresh pooler and classifier comes from the checkpoint: a config.json
     * that makes far more of them than the checkpoint holds values cannot match it, and is refused
     * before bert_build allocates for it (a large vocab_size or hidden_size asked for 275 GB).
     * "Far": over twice as many plus 2^20, so that a tensor or two missing (up to the word
     * embeddings of a small model) still gets the precise message of the plan below. */
    size_t held = 0, heads = (size_t)cfg.hidden_size * ((size_t)cfg.hidden_size + 1) +
                              (size_t)cfg.num_labels * ((size_t)cfg.hidden_size + 1);
    for (int i = 0; i < f->n; i++) held += f->tensors[i].numel;
    size_t want = bert_config_param_count(&cfg);
    if (want / 2 > held + heads + (1u << 20)) {
        distill_set_error("%s: %s/config.json makes a model of %zu parameters, but the checkpoint "
                          "holds %zu values: they do not belong together (vocab_size, hidden_size, "
                          "intermediate_size or num_hidden_layers?)", path, dir, want, held);
        goto done;
    }

    m = bert_build(&cfg, device);
    ParamStore *ps = m->params;
    src = xcalloc((size_t)ps->n, sizeof *src);
    used = xcalloc((size_t)f->n + 1, sizeof *used);
    newly = xcalloc((size_t)ps->n, sizeof *newly);
    skipped = xcalloc((size_t)f->n + 1, sizeof *skipped);
    int n_new = 0, n_missing = 0, n_skipped = 0;
    const char *first_missing = NULL;
    const Tensor *first_missing_t = NULL;
    bool miss_pool[2] = {false, false}, miss_cls[2] = {false, false};

    /* Plan: every parameter finds its tensor (or is a known new head); nothing is read yet. */
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->tensors[i];
        const char *ck = t->name;
        if (strncmp(ck, "bert.", 5) == 0 && !rep->prefixed) ck += 5;
        src[i] = st_find(f, ck);
        if (!src[i]) src[i] = find_legacy(f, ck);
        if (src[i]) {
            used[src[i] - f->tensors] = true;
            continue;
        }
        bool pool = t == m->pool_w || t == m->pool_b, cls = t == m->cls_w || t == m->cls_b;
        if (pool) miss_pool[t == m->pool_b] = true;
        if (cls) miss_cls[t == m->cls_b] = true;
        if (pool || cls) {
            newly[n_new++] = t->name;
        } else if (n_missing++ == 0) {
            first_missing = ck;
            first_missing_t = t;
        }
    }
    char sa[96], sb[96];
    if (n_missing) {
        distill_set_error("%s: missing tensor \"%s\" (the model of %s/config.json expects %s)%s",
                          path, first_missing, dir, tensor_shape_str(first_missing_t, sa, sizeof sa),
                          n_missing > 1 ? "; more tensors are missing too" : "");
        goto done;
    }
    if (miss_pool[0] != miss_pool[1] || miss_cls[0] != miss_cls[1]) {
        distill_set_error("%s: the checkpoint holds only one of the %s weight and bias", path,
                          miss_pool[0] != miss_pool[1] ? "pooler" : "classifier");
        goto done;
    }
    for (int j = 0; j < f->n; j++) {
        if (used[j]) continue;
        const StTensor *st = &f->tensors[j];
        if (known_extra(st->name, &cfg, ckpt_layers)) {
            skipped[n_skipped++] = st->name;
            continue;
        }
        distill_set_error("%s: unexpected tensor \"%s\" %s: %s (from %s/config.json) has no such "
                          "parameter", path, st->name, st_shape_str(st, sa, sizeof sa), model_name, dir);
        goto done;
    }
    size_t max_numel = 0;
    for (int i = 0; i < ps->n; i++) {
        if (!src[i]) continue;
        Tensor *t = ps->tensors[i];
        bool same = src[i]->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = src[i]->shape[d] == t->shape[d];
        if (!same) {
            bool cls = t == m->cls_w || t == m->cls_b;
            distill_set_error("%s: tensor \"%s\" has shape %s, but the model of %s/config.json "
                              "expects %s%s", path, src[i]->name, st_shape_str(src[i], sa, sizeof sa),
                              dir, tensor_shape_str(t, sb, sizeof sb),
                              cls ? " (num_labels differs from the checkpoint's classifier)" : "");
            goto done;
        }
        if (!st_is_float(src[i])) {
            distill_set_error("%s: tensor \"%s\" has dtype %s; expected F32, F16 or BF16", path,
                              src[i]->name, src[i]->dtype);
            goto done;
        }
        if (t->numel > max_numel) max_numel = t->numel;
    }

    /* Read. CPU parameters are filled in place; other devices through one host staging buffer. */
    if (device.type != DEV_CPU) stage = xmalloc((max_numel ? max_numel : 1) * sizeof(float));
    rep->n_loaded = 0;
    for (int i = 0; i < ps->n; i++) {
        if (!src[i]) continue;
        Tensor *t = ps->tensors[i];
        float *dst = device.type == DEV_CPU ? tensor_f32(t) : stage;
        if (st_read_f32(f, src[i], dst)) goto done;
        if (device.type != DEV_CPU) tensor_from_host(t, stage);
        rep->n_loaded++;
    }
    rep->n_skipped = n_skipped;
    rep->new_pooler = miss_pool[0];
    rep->new_classifier = miss_cls[0];
    if (rep->new_pooler || rep->new_classifier)
        bert_init_head(m, opt.seed, rep->new_pooler, rep->new_classifier);

    if (!opt.quiet && n_new) {
        qsort(newly, (size_t)n_new, sizeof *newly, cmp_str);
        Str b = {0};
        str_addf(&b, "Some weights of %s were not initialized from the model checkpoint at %s and "
                 "are newly initialized: ", model_name, dir);
        str_names(&b, newly, n_new);
        str_addf(&b, "\nYou should probably TRAIN this model on a down-stream task to be able to use "
                 "it for predictions and inference.");
        print_message("warning", b.s);
        free(b.s);
    }
    if (!opt.quiet && n_skipped) {
        qsort(skipped, (size_t)n_skipped, sizeof *skipped, cmp_str);
        Str b = {0};
        str_addf(&b, "Some weights of the model checkpoint at %s were not used when initializing "
                 "%s: ", dir, model_name);
        str_names(&b, skipped, n_skipped);
        str_addf(&b, " (pre-training heads, buffers%s: expected)",
                 cfg.num_hidden_layers < ckpt_layers ? " and the layers not kept" : "");
        print_message("note", b.s);
        free(b.s);
    }
    *out = m;
    m = NULL;
    s = DISTILL_OK;
done:
    bert_free(m);                    /* NULL on success (handed out) */
    bert_config_free_labels(&cfg);   /* bert_build keeps its own copy of the label names */
    st_close(f);
    free(path);
    free(src);
    free(used);
    free(newly);
    free(skipped);
    free(stage);
    return s;
}

/* ------------------------------------------------------------------ export */

/* The files an export writes: the only names an existing export folder may hold to be replaced. */
static const char *const hf_export_files[] = {
    "config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
    "special_tokens_map.json",
};

static bool is_export_file(const char *name) {
    for (size_t i = 0; i < sizeof hf_export_files / sizeof hf_export_files[0]; i++)
        if (strcmp(name, hf_export_files[i]) == 0) return true;
    return false;
}

/* The shortest decimal that reads back (as a double, then rounded to float) to exactly v. */
static cJSON *json_float(float v) {
    DCHECK(isfinite(v));
    char buf[40];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    return cJSON_CreateRaw(buf);
}

static Status write_file(const char *path, const void *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        distill_set_error("%s: cannot create: %s", path, strerror(errno));
        return DISTILL_ERR;
    }
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            distill_set_error("%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress");
            close(fd);
            return DISTILL_ERR;
        }
        p += w;
        n -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        distill_set_error("%s: fsync/close failed: %s", path, strerror(errno));
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

static Status write_json(const char *dir, const char *name, cJSON *root) {
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    DCHECK(text != NULL);
    size_t n = strlen(text);
    char *withnl = xmalloc(n + 2);
    memcpy(withnl, text, n);
    withnl[n] = '\n';
    cJSON_free(text);
    char *path = path_join(dir, name);
    Status s = write_file(path, withnl, n + 1);
    free(path);
    free(withnl);
    return s;
}

static const char *label_name(const BertConfig *cfg, int i, char *buf, size_t n) {
    if (cfg->id2label[i]) return cfg->id2label[i];
    snprintf(buf, n, "LABEL_%d", i);
    return buf;
}

static cJSON *config_json(const BertConfig *cfg) {
    cJSON *r = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(cfg->num_labels > 0 ? "BertForSequenceClassification"
                                                                         : "BertModel"));
    cJSON_AddItemToObject(r, "attention_probs_dropout_prob", json_float(cfg->attention_probs_dropout_prob));
    if (cfg->classifier_dropout < 0) cJSON_AddNullToObject(r, "classifier_dropout");
    else cJSON_AddItemToObject(r, "classifier_dropout", json_float(cfg->classifier_dropout));
    cJSON_AddStringToObject(r, "hidden_act", "gelu");
    cJSON_AddItemToObject(r, "hidden_dropout_prob", json_float(cfg->hidden_dropout_prob));
    cJSON_AddNumberToObject(r, "hidden_size", cfg->hidden_size);
    if (cfg->num_labels > 0) {
        cJSON *id2label = cJSON_AddObjectToObject(r, "id2label");
        cJSON *label2id = cJSON_CreateObject();
        for (int i = 0; i < cfg->num_labels; i++) {
            char key[16], buf[32];
            snprintf(key, sizeof key, "%d", i);
            const char *name = label_name(cfg, i, buf, sizeof buf);
            cJSON_AddStringToObject(id2label, key, name);
            cJSON_AddNumberToObject(label2id, name, i);
        }
        cJSON_AddItemToObject(r, "initializer_range", json_float(cfg->initializer_range));
        cJSON_AddNumberToObject(r, "intermediate_size", cfg->intermediate_size);
        cJSON_AddItemToObject(r, "label2id", label2id);
    } else {
        cJSON_AddItemToObject(r, "initializer_range", json_float(cfg->initializer_range));
        cJSON_AddNumberToObject(r, "intermediate_size", cfg->intermediate_size);
    }
    cJSON_AddItemToObject(r, "layer_norm_eps", json_float(cfg->layer_norm_eps));
    cJSON_AddNumberToObject(r, "max_position_embeddings", cfg->max_position_embeddings);
    cJSON_AddStringToObject(r, "model_type", "bert");
    cJSON_AddNumberToObject(r, "num_attention_heads", cfg->num_attention_heads);
    cJSON_AddNumberToObject(r, "num_hidden_layers", cfg->num_hidden_layers);
    cJSON_AddNumberToObject(r, "pad_token_id", cfg->pad_token_id);
    cJSON_AddStringToObject(r, "position_embedding_type", "absolute");
    if (cfg->num_labels > 0) {
        if (cfg->problem_type[0]) cJSON_AddStringToObject(r, "problem_type", cfg->problem_type);
        else cJSON_AddNullToObject(r, "problem_type");
    }
    cJSON_AddStringToObject(r, "torch_dtype", "float32");
    cJSON_AddStringToObject(r, "transformers_version", HF_TRANSFORMERS_VERSION);
    cJSON_AddNumberToObject(r, "type_vocab_size", cfg->type_vocab_size);
    cJSON_AddTrueToObject(r, "use_cache");
    cJSON_AddNumberToObject(r, "vocab_size", cfg->vocab_size);
    return r;
}

static void add_special_tokens(cJSON *r) {
    cJSON_AddStringToObject(r, "cls_token", "[CLS]");
    cJSON_AddStringToObject(r, "mask_token", "[MASK]");
    cJSON_AddStringToObject(r, "pad_token", "[PAD]");
    cJSON_AddStringToObject(r, "sep_token", "[SEP]");
    cJSON_AddStringToObject(r, "unk_token", "[UNK]");
}

static cJSON *tokenizer_config_json(const BertConfig *cfg, bool lower) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddTrueToObject(r, "clean_up_tokenization_spaces");
    cJSON_AddTrueToObject(r, "do_basic_tokenize");
    cJSON_AddBoolToObject(r, "do_lower_case", lower);
    cJSON_AddNumberToObject(r, "model_max_length", cfg->max_position_embeddings);
    cJSON_AddNullToObject(r, "never_split");
    cJSON_AddNullToObject(r, "strip_accents");
    cJSON_AddTrueToObject(r, "tokenize_chinese_chars");
    cJSON_AddStringToObject(r, "tokenizer_class", "BertTokenizer");
    add_special_tokens(r);
    return r;
}

/* Removes a folder that holds only export files (what hf_save wrote or checked). */
/* mkdir -p of the folder that will hold `dir` (nothing for a bare name). */
static Status make_parents(const char *dir) {
    const char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return DISTILL_OK;
    char *parent = xstrdup(dir);
    parent[slash - dir] = '\0';
    Status s = io_mkdir_p(parent);
    free(parent);
    if (s != DISTILL_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", distill_error());
        distill_set_error("%s: cannot make the folder that holds it: %s", dir, why);
    }
    return s;
}

static Status check_replaceable(const char *dir, bool *exists) {
    struct stat st;
    *exists = false;
    if (lstat(dir, &st) != 0) return DISTILL_OK;
    if (!S_ISDIR(st.st_mode)) {
        distill_set_error("%s: exists and is not a folder; refusing to replace it", dir);
        return DISTILL_ERR;
    }
    DIR *d = opendir(dir);
    if (!d) {
        distill_set_error("%s: cannot read the existing folder: %s", dir, strerror(errno));
        return DISTILL_ERR;
    }
    struct dirent *e;
    Status s = DISTILL_OK;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (!is_export_file(e->d_name)) {
            distill_set_error("%s: exists and holds \"%s\", which an export does not write; refusing "
                              "to replace it (choose another folder or empty it)", dir, e->d_name);
            s = DISTILL_ERR;
            break;
        }
    }
    closedir(d);
    *exists = true;
    return s;
}

Status hf_save(const char *dir_in, const Bert *m, const char *vocab_path) {
    const BertConfig *cfg = &m->cfg;
    const ParamStore *ps = m->params;
    /* "out/" names the folder "out": the temporary folder must sit beside it, not inside. */
    char *dir = xstrdup(dir_in);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) dir[n - 1] = '\0';
    char *vocab = NULL, *path = NULL;
    size_t vocab_len = 0;
    StWriteTensor *wt = NULL;
    float **host = NULL;
    bool lower = true, exists = false;
    AtomicFile af = {0};
    Status s = DISTILL_ERR;

    if (vocab_path) {
        if (read_text(vocab_path, &vocab, &vocab_len)) goto done;
        VocabScan vs;
        vocab_scan(vocab, vocab_len, &vs);
        if (vs.tokens > cfg->vocab_size || !vs.has_cls || !vs.has_sep || !vs.has_pad || !vs.has_unk) {
            distill_set_error("%s: expected at most vocab_size = %d tokens including [CLS], [SEP], "
                              "[PAD] and [UNK], found %d tokens%s", vocab_path, cfg->vocab_size,
                              vs.tokens, vs.has_cls && vs.has_sep && vs.has_pad && vs.has_unk
                                             ? "" : " without all four special tokens");
            goto done;
        }
        lower = !vs.has_upper;
    }
    for (int i = 0; i < cfg->num_labels; i++) {
        for (int j = 0; j < i; j++) {
            char bi[32], bj[32];
            if (strcmp(label_name(cfg, i, bi, sizeof bi), label_name(cfg, j, bj, sizeof bj)) == 0) {
                distill_set_error("%s: label \"%s\" names classes %d and %d; label2id needs distinct "
                                  "names", dir, bi, j, i);
                goto done;
            }
        }
    }
    if (make_parents(dir) || check_replaceable(dir, &exists)) goto done;
    /* The export is written into a temporary folder beside dir and swapped in whole on commit
     * (io/atomic.h), the old export then removed. */
    if (io_atomic_begin_dir(&af, dir)) goto done;
    const char *tmp = af.tmp;

    if (write_json(tmp, "config.json", config_json(cfg))) goto done;

    wt = xcalloc((size_t)ps->n + 1, sizeof *wt);
    host = xcalloc((size_t)ps->n + 1, sizeof *host);
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = ps->tensors[i];
        DCHECK(t->dtype == DT_F32);
        wt[i].name = t->name;
        wt[i].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) wt[i].shape[d] = t->shape[d];
        if (t->device.type == DEV_CPU) {
            wt[i].data = tensor_f32(t);
        } else {
            host[i] = xmalloc((t->numel ? t->numel : 1) * sizeof(float));
            tensor_to_host(t, host[i]);
            wt[i].data = host[i];
        }
    }
    static const char *const meta[] = {"format", "pt"}; /* transformers requires format=pt */
    path = path_join(tmp, "model.safetensors");
    if (st_write_f32(path, wt, ps->n, meta, 1)) goto done;

    if (vocab) {
        free(path);
        path = path_join(tmp, "vocab.txt");
        if (write_file(path, vocab, vocab_len)) goto done;
        if (write_json(tmp, "tokenizer_config.json", tokenizer_config_json(cfg, lower))) goto done;
        cJSON *sp = cJSON_CreateObject();
        add_special_tokens(sp);
        if (write_json(tmp, "special_tokens_map.json", sp)) goto done;
    }
    if (io_atomic_commit(&af)) goto done; /* fsync every file, swap in, fsync the parent */
    s = DISTILL_OK;
done:
    io_atomic_abort(&af); /* a no-op after commit */
    if (host)
        for (int i = 0; i < ps->n; i++) free(host[i]);
    free(host);
    free(wt);
    free(vocab);
    free(path);
    free(dir);
    return s;
}
