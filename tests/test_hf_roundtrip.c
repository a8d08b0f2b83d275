/*
 * test_hf_roundtrip.c — hf_save -> hf_load is bit-exact: every tensor (special values included)
 * and every BertConfig field; replacing an existing export; refusing a folder with other files;
 * an unwritable path; BertModel exports (no classifier); keeping the first k layers; a cased
 * vocabulary recorded as do_lower_case false. Exits non-zero on failure.
 */
#define _GNU_SOURCE
#include "checkpoints/hf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_check.h"

static char g_dir[256];

static const char *tpath(const char *name) {
    static char buf[64][512]; /* a ring: paths stay valid for 64 calls */
    static int k;
    char *p = buf[k++ & 63];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

/* A small cased vocabulary: the special tokens, then words with upper case. */
static const char *write_vocab(int tokens) {
    static char p[512]; /* not a tpath() buffer: those are reused */
    snprintf(p, sizeof p, "%s", tpath("vocab.txt"));
    FILE *fp = fopen(p, "w");
    fprintf(fp, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for (int i = 5; i < tokens; i++) fprintf(fp, "%s%d\n", i % 2 ? "Word" : "##x", i);
    fclose(fp);
    return p;
}

/* Non-default values in every field, so a field lost or mis-named on the way shows. */
static BertConfig tiny_config(int num_labels) {
    BertConfig c = bert_config_default();
    c.vocab_size = 53;
    c.hidden_size = 24;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 3;
    c.intermediate_size = 37;
    c.max_position_embeddings = 19;
    c.type_vocab_size = 3;
    c.num_labels = num_labels;
    c.layer_norm_eps = 1e-7f;
    c.hidden_dropout_prob = 0.15f;
    c.attention_probs_dropout_prob = 0.05f;
    c.classifier_dropout = num_labels ? 0.3f : -1.0f;
    c.initializer_range = 0.037f;
    c.pad_token_id = 1;
    c.has_pooler = true;
    snprintf(c.problem_type, sizeof c.problem_type, "%s",
             num_labels ? "single_label_classification" : "");
    static const char *names[] = {"negative", "neutral \"quoted\"", "positive"};
    for (int i = 0; i < num_labels && i < 3; i++) c.id2label[i] = xstrdup(names[i]);
    return c;
}

static Bert *tiny_model(int num_labels, uint64_t seed) {
    BertConfig c = tiny_config(num_labels);
    Bert *m = bert_build(&c, device_cpu());
    bert_config_free_labels(&c);
    bert_init(m, seed);
    /* Values a careless writer or reader would change: -0, a subnormal, inf, NaN with a payload. */
    float *pb = tensor_f32(m->pool_b);
    uint32_t nan_bits = 0x7fc12345u;
    pb[0] = -0.0f;
    pb[1] = 1e-42f;
    pb[2] = -INFINITY;
    memcpy(&pb[3], &nan_bits, 4);
    return m;
}

static bool same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void compare_models(const Bert *a, const Bert *b, const char *what) {
    const BertConfig *x = &a->cfg, *y = &b->cfg;
    CHECK(x->vocab_size == y->vocab_size && x->hidden_size == y->hidden_size &&
          x->num_hidden_layers == y->num_hidden_layers &&
          x->num_attention_heads == y->num_attention_heads &&
          x->intermediate_size == y->intermediate_size &&
          x->max_position_embeddings == y->max_position_embeddings &&
          x->type_vocab_size == y->type_vocab_size && x->num_labels == y->num_labels &&
          x->pad_token_id == y->pad_token_id && x->has_pooler == y->has_pooler,
          "%s: integer config fields differ", what);
    float fx[5] = {x->layer_norm_eps, x->hidden_dropout_prob, x->attention_probs_dropout_prob,
                   x->classifier_dropout, x->initializer_range};
    float fy[5] = {y->layer_norm_eps, y->hidden_dropout_prob, y->attention_probs_dropout_prob,
                   y->classifier_dropout, y->initializer_range};
    CHECK(same_bits(fx, fy, 5), "%s: float config fields differ (eps %.9g vs %.9g)", what,
          (double)fx[0], (double)fy[0]);
    CHECK(strcmp(x->problem_type, y->problem_type) == 0, "%s: problem_type \"%s\" vs \"%s\"", what,
          x->problem_type, y->problem_type);
    for (int i = 0; i < x->num_labels; i++) {
        const char *la = x->id2label[i] ? x->id2label[i] : "", *lb = y->id2label[i] ? y->id2label[i] : "";
        char def[32];
        snprintf(def, sizeof def, "LABEL_%d", i);
        CHECK(strcmp(la[0] ? la : def, lb[0] ? lb : def) == 0, "%s: label %d \"%s\" vs \"%s\"",
              what, i, la, lb);
    }
    CHECK(a->params->n == b->params->n, "%s: %d vs %d tensors", what, a->params->n, b->params->n);
    for (int i = 0; i < a->params->n && i < b->params->n; i++) {
        const Tensor *ta = a->params->tensors[i], *tb = b->params->tensors[i];
        CHECK(strcmp(ta->name, tb->name) == 0 && tensor_same_shape(ta, tb), "%s: tensor %s", what,
              ta->name);
        if (tensor_same_shape(ta, tb))
            CHECK(same_bits(tensor_f32(ta), tensor_f32(tb), ta->numel), "%s: %s not bit-exact",
                  what, ta->name);
    }
}

static int count_entries(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

static void test_roundtrip(const char *vocab) {
    HfLoadOptions o = hf_load_defaults();
    o.quiet = true;
    Bert *m = tiny_model(3, 7), *back = NULL;
    HfLoadReport r;
    const char *out = tpath("export");
    CHECK(hf_save(out, m, vocab) == DISTILL_OK, "%s", distill_error());
    CHECK(hf_load(out, device_cpu(), &o, &back, &r) == DISTILL_OK, "%s", distill_error());
    if (back) {
        compare_models(m, back, "round trip");
        CHECK(r.prefixed && !r.new_pooler && !r.new_classifier && r.n_skipped == 0 &&
              r.n_loaded == m->params->n, "report: loaded %d skipped %d", r.n_loaded, r.n_skipped);
        CHECK(r.vocab_tokens == 53 && r.do_lower_case == 0, "vocab %d, lower %d", r.vocab_tokens,
              r.do_lower_case);
        CHECK(strcmp(r.architecture, "BertForSequenceClassification") == 0, "architecture %s",
              r.architecture);
        bert_free(back);
        back = NULL;
    }
    /* Export again over the first one (named with a trailing slash): replaced whole, and no
     * temporary folder left beside it or inside it. */
    Bert *m2 = tiny_model(3, 8);
    char slash[600];
    snprintf(slash, sizeof slash, "%s/", out);
    CHECK(hf_save(slash, m2, vocab) == DISTILL_OK, "%s", distill_error());
    CHECK(count_entries(out) == 5, "%d files in the export", count_entries(out));
    CHECK(hf_load(out, device_cpu(), &o, &back, NULL) == DISTILL_OK, "%s", distill_error());
    if (back) compare_models(m2, back, "replaced export");
    bert_free(back);
    back = NULL;
    CHECK(count_entries(g_dir) == 2, "%d entries beside the export (vocab.txt, export expected)",
          count_entries(g_dir));

    /* A folder holding something else is never replaced, and is left as it was. */
    const char *foreign = tpath("foreign");
    mkdir(foreign, 0777);
    char keep[600];
    snprintf(keep, sizeof keep, "%s/notes.txt", foreign);
    FILE *fp = fopen(keep, "w");
    fputs("mine\n", fp);
    fclose(fp);
    CHECK(hf_save(foreign, m, vocab) == DISTILL_ERR, "replaced a foreign folder");
    CHECK(strstr(distill_error(), "refusing") && strstr(distill_error(), "notes.txt"), "%s",
          distill_error());
    CHECK(count_entries(foreign) == 1, "the foreign folder changed");
    CHECK(count_entries(g_dir) == 3, "a failed export left files beside it");

    /* Unwritable destination: a clear error naming it, nothing written. */
    CHECK(hf_save("/proc/distill-hf-test/export", m, vocab) == DISTILL_ERR, "wrote under /proc");
    CHECK(strstr(distill_error(), "/proc/distill-hf-test/export") != NULL, "%s", distill_error());
    /* A vocabulary larger than the embedding table is refused before anything is written. */
    const char *big = tpath("big-vocab");
    mkdir(big, 0777);
    char bigv[600];
    snprintf(bigv, sizeof bigv, "%s/vocab.txt", big);
    fp = fopen(bigv, "w");
    fprintf(fp, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n");
    for (int i = 0; i < 60; i++) fprintf(fp, "w%d\n", i);
    fclose(fp);
    CHECK(hf_save(tpath("export-big"), m, bigv) == DISTILL_ERR, "vocab of 64 > 53 accepted");
    CHECK(strstr(distill_error(), "vocab_size = 53") != NULL, "%s", distill_error());
    CHECK(access(tpath("export-big"), F_OK) != 0, "export-big exists after an error");

    CHECK(hf_save(tpath("export-novocab"), m, tpath("no-such-vocab.txt")) == DISTILL_ERR,
          "missing vocabulary accepted");
    CHECK(strstr(distill_error(), "no-such-vocab.txt: cannot open") != NULL, "%s", distill_error());
    CHECK(access(tpath("export-novocab"), F_OK) != 0, "export-novocab exists after an error");

    /* Keep the first layer only: the rest are skipped, layer 0 and the heads are exact. */
    o.num_layers = 1;
    CHECK(hf_load(out, device_cpu(), &o, &back, &r) == DISTILL_OK, "%s", distill_error());
    if (back) {
        CHECK(back->cfg.num_hidden_layers == 1 && r.n_skipped == 16, "layers %d skipped %d",
              back->cfg.num_hidden_layers, r.n_skipped);
        for (int i = 0; i < back->params->n; i++) {
            const Tensor *t = back->params->tensors[i];
            const Tensor *s = params_find(m2->params, t->name);
            CHECK(s && same_bits(tensor_f32(s), tensor_f32(t), t->numel), "%s (first k)", t->name);
        }
        bert_free(back);
        back = NULL;
    }
    bert_free(m);
    bert_free(m2);
}

static void test_bert_model(const char *vocab) {
    /* num_labels 0: exported as BertModel; loaded back without a classifier it is exact; loaded
     * as a classifier (HF's default of 2 labels) the new head is reported. */
    Bert *m = tiny_model(0, 9), *back = NULL;
    const char *out = tpath("bertmodel");
    HfLoadOptions o = hf_load_defaults();
    o.quiet = true;
    o.num_labels = 0;
    HfLoadReport r;
    CHECK(hf_save(out, m, vocab) == DISTILL_OK, "%s", distill_error());
    CHECK(hf_load(out, device_cpu(), &o, &back, &r) == DISTILL_OK, "%s", distill_error());
    if (back) {
        compare_models(m, back, "BertModel");
        CHECK(strcmp(r.architecture, "BertModel") == 0 && !r.new_classifier, "arch %s",
              r.architecture);
        bert_free(back);
        back = NULL;
    }
    o.num_labels = -1;
    CHECK(hf_load(out, device_cpu(), &o, &back, &r) == DISTILL_OK, "%s", distill_error());
    if (back) {
        CHECK(back->cfg.num_labels == 2 && r.new_classifier && !r.new_pooler,
              "labels %d, new classifier %d", back->cfg.num_labels, r.new_classifier);
        /* The new classifier is initialised as HF does: normal(0, range) weight, zero bias. */
        const float *w = tensor_f32(back->cls_w), *b = tensor_f32(back->cls_b);
        double ss = 0;
        bool zero_b = true;
        for (size_t i = 0; i < back->cls_w->numel; i++) ss += (double)w[i] * w[i];
        for (size_t i = 0; i < back->cls_b->numel; i++) zero_b &= b[i] == 0.0f;
        CHECK(ss > 0 && zero_b, "classifier init: sum of squares %g, zero bias %d", ss, zero_b);
        bert_free(back);
    }
    bert_free(m);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/test_hf_roundtrip-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 2;
    }
    const char *vocab = write_vocab(53);
    test_roundtrip(vocab);
    test_bert_model(vocab);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_dir);
    if (g_failures) {
        fprintf(stderr, "test_hf_roundtrip: %d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_hf_roundtrip: all checks passed\n");
    return 0;
}
