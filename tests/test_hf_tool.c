/*
 * test_hf_tool.c — the C half of the Hugging Face import/export tests: a small command-line tool
 * over checkpoints/hf.h that the Python drivers (tests/test_hf_*.py) and tests/test_hf_errors.c run.
 *
 *   test_hf_tool load DIR [--num-labels N] [--num-layers K] [--device cpu|cuda]
 *       hf_load; prints one summary line. On error prints "distill: error: ..." and exits 1.
 *       (--device is accepted by every load-based command; cuda without a GPU exits 77, "skip",
 *       or 1 when DISTILL_EXPECT_GPU=1.)
 *   test_hf_tool dump DIR OUT.safetensors [--num-labels N]
 *       hf_load, then writes every parameter (model names, F32) to OUT.
 *   test_hf_tool forward DIR INPUT OUT.safetensors [--num-labels N]
 *       hf_load, then the forward (eval mode) on INPUT — text: "B S", B rows of S token ids, B rows
 *       of S token type ids, one row of B lengths — and writes hidden.0 .. hidden.L (B, S, H),
 *       mean (B, H) (mean of the last hidden state over positions < length), pooled (B, H) and
 *       logits (B, C) when present.
 *   test_hf_tool grad DIR INPUT TARGETS.safetensors OUT.safetensors
 *       hf_load, then the recorded forward (eval mode) on INPUT with every hidden state and
 *       attention probability, an MSE loss against the targets and the backward; writes the
 *       outputs, the loss and every parameter's gradient (grad.NAME) (tests/test_hf_reference.py).
 *   test_hf_tool export OUT VOCAB [--seed N] [KEY=VALUE ...]
 *       bert_build + bert_init of a config given by HF keys (vocab_size, hidden_size, ...,
 *       id2label=a,b,c, problem_type=...), then hf_save(OUT, model, VOCAB).
 *   test_hf_tool resave DIR OUT [--device cuda]
 *       hf_load onto the device, hf_save(OUT) from there (vocab.txt of DIR if present), then checks
 *       that every tensor of OUT equals DIR's bit for bit (F32 checkpoints).
 * Exit codes: 0 success, 1 a reported error or a difference (or no GPU under DISTILL_EXPECT_GPU=1),
 * 2 usage, 77 no such device.
 */
#include "checkpoints/hf.h"
#include "checkpoints/safetensors.h"
#include "engine/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr, "usage: test_hf_tool load|dump|forward|grad|export|resave ... (see the file's comment)\n");
    return 2;
}

static int fail(void) {
    distill_print_error(distill_error());
    return 1;
}

static Device g_device = {DEV_CPU, 0};

/* Options shared by the load-based commands. */
static int parse_load_opts(int argc, char **argv, int first, HfLoadOptions *o) {
    *o = hf_load_defaults();
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "--num-labels") == 0 && i + 1 < argc) {
            o->num_labels = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--num-layers") == 0 && i + 1 < argc) {
            o->num_layers = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            const char *d = argv[++i];
            if (strcmp(d, "cuda") == 0) {
                if (!backend_cuda_available()) {
                    /* DISTILL_EXPECT_GPU=1 (scripts/gpu_check.sh): no GPU is a failure */
                    const char *expect = getenv("DISTILL_EXPECT_GPU");
                    bool must = expect && strcmp(expect, "1") == 0;
                    fprintf(stderr, "test_hf_tool: no CUDA device (or built without CUDA): %s\n",
                            must ? "FAIL (DISTILL_EXPECT_GPU=1 expects one)" : "skipped");
                    exit(must ? 1 : 77);
                }
                g_device.type = DEV_CUDA;
                if (backend_cuda()->init(0)) return fail(), -1;
            } else if (strcmp(d, "cpu") != 0) {
                return -1;
            }
        } else {
            return -1;
        }
    }
    return 0;
}

static int cmd_load(int argc, char **argv) {
    HfLoadOptions o;
    if (argc < 3 || parse_load_opts(argc, argv, 3, &o)) return usage();
    Bert *m;
    HfLoadReport r;
    if (hf_load(argv[2], g_device, &o, &m, &r)) return fail();
    printf("loaded %d tensors, skipped %d, prefixed %d, new_pooler %d, new_classifier %d, "
           "labels %d, layers %d, vocab %d, lower %d, architecture %s\n", r.n_loaded, r.n_skipped,
           r.prefixed, r.new_pooler, r.new_classifier, m->cfg.num_labels, m->cfg.num_hidden_layers,
           r.vocab_tokens, r.do_lower_case, r.architecture[0] ? r.architecture : "-");
    bert_free(m);
    return 0;
}

static int cmd_dump(int argc, char **argv) {
    HfLoadOptions o;
    if (argc < 4 || parse_load_opts(argc, argv, 4, &o)) return usage();
    o.quiet = true;
    Bert *m;
    if (hf_load(argv[2], g_device, &o, &m, NULL)) return fail();
    ParamStore *ps = m->params;
    StWriteTensor *w = xcalloc((size_t)ps->n, sizeof *w);
    float **host = xcalloc((size_t)ps->n, sizeof *host);
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = ps->tensors[i];
        w[i].name = t->name;
        w[i].ndim = t->ndim;
        for (int d = 0; d < w[i].ndim; d++) w[i].shape[d] = t->shape[d];
        host[i] = xmalloc(t->numel * sizeof(float));
        tensor_to_host(t, host[i]);
        w[i].data = host[i];
    }
    int rc = st_write_f32(argv[3], w, ps->n, NULL, 0) ? fail() : 0;
    for (int i = 0; i < ps->n; i++) free(host[i]);
    free(host);
    free(w);
    bert_free(m);
    return rc;
}

/* Reads n integers from fp into dst; false on a short or malformed file. */
static bool read_ints(FILE *fp, int32_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fscanf(fp, "%d", &dst[i]) != 1) return false;
    return true;
}

static void add_out(StWriteTensor *w, int *n, const char *name, Tensor *t, float **keep) {
    float *host = xmalloc(t->numel * sizeof(float));
    tensor_to_host(t, host);
    keep[*n] = host;
    w[*n].name = name;
    w[*n].ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) w[*n].shape[d] = t->shape[d];
    w[*n].data = host;
    (*n)++;
}

/* The INPUT file of forward and grad: "B S", B rows of S ids, B rows of S token types, B lengths.
 * Returns 0, or 2 (usage) with a message. */
static int read_input(const char *path, int *B_, int *S_, int32_t **ids_, int32_t **types_, int32_t **lengths_) {
    FILE *fp = fopen(path, "r");
    int B, S;
    if (!fp || fscanf(fp, "%d %d", &B, &S) != 2 || B < 1 || S < 1) {
        fprintf(stderr, "test_hf_tool: %s: expected \"B S\" first\n", path);
        if (fp) fclose(fp);
        return 2;
    }
    int32_t *ids = xmalloc((size_t)B * S * sizeof *ids), *types = xmalloc((size_t)B * S * sizeof *types);
    int32_t *lengths = xmalloc((size_t)B * sizeof *lengths);
    if (!read_ints(fp, ids, (size_t)B * S) || !read_ints(fp, types, (size_t)B * S) ||
        !read_ints(fp, lengths, (size_t)B)) {
        fprintf(stderr, "test_hf_tool: %s: expected %d x %d ids, types, then %d lengths\n", path,
                B, S, B);
        fclose(fp);
        free(ids), free(types), free(lengths);
        return 2;
    }
    fclose(fp);
    *B_ = B, *S_ = S, *ids_ = ids, *types_ = types, *lengths_ = lengths;
    return 0;
}

static int cmd_forward(int argc, char **argv) {
    HfLoadOptions o;
    if (argc < 5 || parse_load_opts(argc, argv, 5, &o)) return usage();
    o.quiet = true;
    int B, S;
    int32_t *ids, *types, *lengths;
    if (read_input(argv[3], &B, &S, &ids, &types, &lengths)) return 2;
    Bert *m;
    if (hf_load(argv[2], g_device, &o, &m, NULL)) return fail();
    const int L = m->cfg.num_hidden_layers;
    Ctx *c = ctx_new(g_device, 1);
    c->record = false;
    c->training = false;
    int bs[2] = {B, S}, b1[1] = {B};
    BertInput in = {
        .input_ids = ctx_from_host(c, DT_I32, 2, bs, ids),          /* (B, S) */
        .token_type_ids = ctx_from_host(c, DT_I32, 2, bs, types),   /* (B, S) */
        .lengths = ctx_from_host(c, DT_I32, 1, b1, lengths),         /* (B) */
        .lengths_host = lengths,
    };
    BertRequest req = {.all_hidden = true, .want_pooled = true};
    BertOutput out;
    bert_forward(c, m, &in, &req, &out);
    Tensor *mean = op_mean_pool(c, out.sequence, in.lengths); /* (B, H) */

    StWriteTensor w[64 + 3];   /* hidden.0..L (L < 64), mean, pooled, logits */
    float *keep[64 + 3];
    char names[64][16];
    int n = 0;
    DCHECK(L + 1 <= 64);
    for (int l = 0; l <= L; l++) {
        snprintf(names[l], sizeof names[l], "hidden.%d", l);
        add_out(w, &n, names[l], out.hidden[l], keep);
    }
    add_out(w, &n, "mean", mean, keep);
    if (out.pooled) add_out(w, &n, "pooled", out.pooled, keep);
    if (out.logits) add_out(w, &n, "logits", out.logits, keep);
    int rc = st_write_f32(argv[4], w, n, NULL, 0) ? fail() : 0;
    for (int i = 0; i < n; i++) free(keep[i]);
    ctx_free(c);
    bert_free(m);
    free(ids);
    free(types);
    free(lengths);
    return rc;
}

/* grad: the recorded forward (eval mode: no dropout) with every hidden state and attention
 * probability, loss = sum_l mse(hidden.l, T) + sum_l mse(probs.l, T) + mse(pooled, T) +
 * mse(logits, T) against the targets of TARGETS.safetensors (same names and shapes; logits only
 * when the model has a classifier), then the backward. Writes the outputs (hidden.0..L, probs.0..L-1,
 * pooled, logits), loss (1) and grad.NAME for every parameter NAME. */
static int cmd_grad(int argc, char **argv) {
    HfLoadOptions o;
    if (argc < 6 || parse_load_opts(argc, argv, 6, &o)) return usage();
    o.quiet = true;
    int B, S;
    int32_t *ids, *types, *lengths;
    if (read_input(argv[3], &B, &S, &ids, &types, &lengths)) return 2;
    StFile *tf = NULL;
    Bert *m = NULL;
    if (st_open(argv[4], &tf) || hf_load(argv[2], g_device, &o, &m, NULL)) {
        if (tf) st_close(tf);
        free(ids), free(types), free(lengths);
        return fail();
    }
    const int L = m->cfg.num_hidden_layers;
    Ctx *c = ctx_new(g_device, 1);
    ctx_set_record(c, true);
    c->training = false;
    int bs[2] = {B, S}, b1[1] = {B};
    BertInput in = {
        .input_ids = ctx_from_host(c, DT_I32, 2, bs, ids),
        .token_type_ids = ctx_from_host(c, DT_I32, 2, bs, types),
        .lengths = ctx_from_host(c, DT_I32, 1, b1, lengths),
        .lengths_host = lengths,
    };
    BertRequest req = {.all_hidden = true, .all_probs = true, .want_pooled = true};
    BertOutput out;
    bert_forward(c, m, &in, &req, &out);
    /* the outputs and their targets, by name */
    int n_out = 2 * L + 3;
    Tensor **outs = xcalloc((size_t)n_out, sizeof *outs);
    char (*names)[32] = xcalloc((size_t)n_out, sizeof *names);
    int k = 0;
    for (int l = 0; l <= L; l++, k++) snprintf(names[k], 32, "hidden.%d", l), outs[k] = out.hidden[l];
    for (int l = 0; l < L; l++, k++) snprintf(names[k], 32, "probs.%d", l), outs[k] = out.probs[l];
    snprintf(names[k], 32, "pooled"), outs[k++] = out.pooled;
    if (out.logits) snprintf(names[k], 32, "logits"), outs[k++] = out.logits;
    n_out = k;
    Tensor *loss = NULL;
    int rc = 0;
    for (int i = 0; i < n_out && rc == 0; i++) {
        const StTensor *st = st_find(tf, names[i]);
        if (!st) {
            fprintf(stderr, "test_hf_tool: %s: no target \"%s\"\n", argv[4], names[i]);
            rc = 1;
            break;
        }
        float *host = xmalloc(outs[i]->numel * sizeof(float));
        if (st_read_f32(tf, st, host)) {
            free(host);
            rc = fail();
            break;
        }
        Tensor *target = ctx_from_host(c, DT_F32, outs[i]->ndim, outs[i]->shape, host);
        free(host);
        Tensor *term = op_mse(c, outs[i], target);
        loss = loss ? op_add(c, loss, term) : term;
    }
    st_close(tf);
    if (rc == 0) {
        params_zero_grad(m->params);
        ctx_backward(c, loss);
        ParamStore *ps = m->params;
        int cap = n_out + 1 + ps->n;
        StWriteTensor *w = xcalloc((size_t)cap, sizeof *w);
        float **keep = xcalloc((size_t)cap, sizeof *keep);
        char **gnames = xcalloc((size_t)ps->n, sizeof *gnames);
        int n = 0;
        for (int i = 0; i < n_out; i++) add_out(w, &n, names[i], outs[i], keep);
        add_out(w, &n, "loss", loss, keep);
        for (int i = 0; i < ps->n; i++) {
            size_t len = strlen(ps->tensors[i]->name) + 6;
            gnames[i] = xmalloc(len);
            snprintf(gnames[i], len, "grad.%s", ps->tensors[i]->name);
            add_out(w, &n, gnames[i], ps->grads[i], keep);
        }
        rc = st_write_f32(argv[5], w, n, NULL, 0) ? fail() : 0;
        for (int i = 0; i < n; i++) free(keep[i]);
        for (int i = 0; i < ps->n; i++) free(gnames[i]);
        free(w), free(keep), free(gnames);
    }
    free(outs);
    free(names);
    ctx_free(c);
    bert_free(m);
    free(ids), free(types), free(lengths);
    return rc;
}

/* KEY=VALUE with HF's config names into cfg. */
static int set_key(BertConfig *cfg, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq) return -1;
    size_t k = (size_t)(eq - kv);
    const char *v = eq + 1;
#define INT_KEY(name) if (k == strlen(#name) && strncmp(kv, #name, k) == 0) { cfg->name = atoi(v); return 0; }
#define FLT_KEY(name) if (k == strlen(#name) && strncmp(kv, #name, k) == 0) { cfg->name = strtof(v, NULL); return 0; }
    INT_KEY(vocab_size) INT_KEY(hidden_size) INT_KEY(num_hidden_layers) INT_KEY(num_attention_heads)
    INT_KEY(intermediate_size) INT_KEY(max_position_embeddings) INT_KEY(type_vocab_size)
    INT_KEY(num_labels) INT_KEY(pad_token_id)
    FLT_KEY(layer_norm_eps) FLT_KEY(hidden_dropout_prob) FLT_KEY(attention_probs_dropout_prob)
    FLT_KEY(classifier_dropout) FLT_KEY(initializer_range)
#undef INT_KEY
#undef FLT_KEY
    if (k == 12 && strncmp(kv, "problem_type", k) == 0) {
        snprintf(cfg->problem_type, sizeof cfg->problem_type, "%s", v);
        return 0;
    }
    if (k == 8 && strncmp(kv, "id2label", k) == 0) {
        bert_config_free_labels(cfg);
        int n = 0;
        char *copy = xstrdup(v), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok && n < BERT_MAX_LABELS;
             tok = strtok_r(NULL, ",", &save))
            cfg->id2label[n++] = xstrdup(tok);
        free(copy);
        cfg->num_labels = n;
        return 0;
    }
    return -1;
}

static int cmd_export(int argc, char **argv) {
    if (argc < 4) return usage();
    BertConfig cfg = bert_config_default();
    uint64_t seed = 1;
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (set_key(&cfg, argv[i])) {
            fprintf(stderr, "test_hf_tool: unknown setting %s\n", argv[i]);
            return 2;
        }
    }
    if (bert_config_validate(&cfg)) return fail();
    Bert *m = bert_build(&cfg, device_cpu());
    bert_config_free_labels(&cfg);
    bert_init(m, seed);
    int rc = hf_save(argv[2], m, strcmp(argv[3], "-") ? argv[3] : NULL) ? fail() : 0;
    bert_free(m);
    return rc;
}

/* Bit-exact comparison of every tensor of two F32 safetensors files (same names). */
static int compare_files(const char *a, const char *b) {
    StFile *fa, *fb;
    if (st_open(a, &fa)) return fail();
    if (st_open(b, &fb)) {
        st_close(fa);
        return fail();
    }
    int bad = fa->n != fb->n;
    for (int i = 0; i < fa->n; i++) {
        const StTensor *x = &fa->tensors[i], *y = st_find(fb, x->name);
        if (!y || strcmp(x->dtype, "F32") || strcmp(y->dtype, "F32") || x->end - x->begin != y->end - y->begin ||
            memcmp(fa->data + x->begin, fb->data + y->begin, x->end - x->begin) != 0) {
            fprintf(stderr, "test_hf_tool: tensor %s differs between %s and %s\n", x->name, a, b);
            bad = 1;
        }
    }
    st_close(fa);
    st_close(fb);
    return bad;
}

static int cmd_resave(int argc, char **argv) {
    HfLoadOptions o;
    if (argc < 4 || parse_load_opts(argc, argv, 4, &o)) return usage();
    o.quiet = true;
    Bert *m;
    HfLoadReport r;
    if (hf_load(argv[2], g_device, &o, &m, &r)) return fail();
    int rc = hf_save(argv[3], m, r.vocab_path[0] ? r.vocab_path : NULL) ? fail() : 0;
    bert_free(m);
    if (rc) return rc;
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s/model.safetensors", argv[2]);
    snprintf(pb, sizeof pb, "%s/model.safetensors", argv[3]);
    return compare_files(pa, pb);
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    if (strcmp(argv[1], "resave") == 0) return cmd_resave(argc, argv);
    if (strcmp(argv[1], "load") == 0) return cmd_load(argc, argv);
    if (strcmp(argv[1], "dump") == 0) return cmd_dump(argc, argv);
    if (strcmp(argv[1], "forward") == 0) return cmd_forward(argc, argv);
    if (strcmp(argv[1], "grad") == 0) return cmd_grad(argc, argv);
    if (strcmp(argv[1], "export") == 0) return cmd_export(argc, argv);
    return usage();
}
