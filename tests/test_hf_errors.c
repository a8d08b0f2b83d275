/*
 * test_hf_errors.c — malformed Hugging Face folders are rejected with the expected message and a
 * non-zero exit, and HF's tolerated differences (no "bert." prefix, a missing pooler, pre-training
 * heads, the position_ids buffer) load with HF's warning or note. Each case is a copy of a valid
 * export (made by test_hf_tool export) with one thing broken; `test_hf_tool load` runs on it as a
 * separate process, so the exit status and stderr are what a user sees.
 *
 * Usage: test_hf_errors PATH/TO/test_hf_tool
 */
#define _GNU_SOURCE
#include "checkpoints/safetensors.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_fail;
static char g_dir[256];
static const char *g_tool;

static void die(const char *what) {
    fprintf(stderr, "test_hf_errors: setup failed: %s\n", what);
    exit(2);
}

static void run(const char *cmd) {
    if (system(cmd) != 0) die(cmd);
}

static char *slurp(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return xstrdup("");
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = xmalloc((size_t)n + 1);
    b[fread(b, 1, (size_t)n, fp)] = '\0';
    fclose(fp);
    return b;
}

/* A fresh copy of the base export named `name`; returns its path (static buffer). */
static const char *copy_base(const char *name) {
    static char path[512];
    char cmd[1400];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    snprintf(cmd, sizeof cmd, "cp -r '%s/base' '%s'", g_dir, path);
    run(cmd);
    return path;
}

/* ---- editing model.safetensors through the library's own reader and writer ---- */
#define MAXT 256
typedef struct {
    int n;
    StWriteTensor t[MAXT];
    float *data[MAXT];
} Tensors;

static void load_tensors(const char *dir, Tensors *ts) {
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    StFile *f;
    if (st_open(p, &f)) die(distill_error());
    ts->n = f->n;
    for (int i = 0; i < f->n; i++) {
        const StTensor *s = &f->tensors[i];
        ts->data[i] = xmalloc((s->numel ? s->numel : 1) * sizeof(float));
        if (st_read_f32(f, s, ts->data[i])) die(distill_error());
        ts->t[i].name = xstrdup(s->name);
        ts->t[i].ndim = s->ndim;
        memcpy(ts->t[i].shape, s->shape, sizeof s->shape);
        ts->t[i].data = ts->data[i];
    }
    st_close(f);
}

static void save_tensors(const char *dir, Tensors *ts) {
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt"};
    if (st_write_f32(p, ts->t, ts->n, meta, 1)) die(distill_error());
    for (int i = 0; i < ts->n; i++) {
        free((char *)ts->t[i].name);
        free(ts->data[i]);
    }
}

static int find_tensor(Tensors *ts, const char *name) {
    for (int i = 0; i < ts->n; i++)
        if (strcmp(ts->t[i].name, name) == 0) return i;
    die(name);
    return -1;
}

static void drop_tensor(Tensors *ts, const char *name) {
    int i = find_tensor(ts, name);
    free((char *)ts->t[i].name);
    free(ts->data[i]);
    ts->t[i] = ts->t[ts->n - 1];
    ts->data[i] = ts->data[ts->n - 1];
    ts->n--;
}

static void add_tensor(Tensors *ts, const char *name, int64_t d0) {
    int i = ts->n++;
    ts->t[i].name = xstrdup(name);
    ts->t[i].ndim = 1;
    ts->t[i].shape[0] = d0;
    ts->data[i] = xcalloc((size_t)d0, sizeof(float));
    ts->t[i].data = ts->data[i];
}

/* ---- editing config.json through cJSON ---- */
static void edit_config(const char *dir, const char *key, cJSON *value) {
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    char *text = slurp(p);
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) die("config.json");
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON_AddItemToObject(root, key, value);
    char *out = cJSON_Print(root);
    FILE *fp = fopen(p, "w");
    fputs(out, fp);
    fclose(fp);
    cJSON_free(out);
    cJSON_Delete(root);
}

static void write_text(const char *dir, const char *name, const char *text, const char *mode) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, mode);
    if (!fp) die(p);
    fputs(text, fp);
    fclose(fp);
}

/* Runs `test_hf_tool load DIR` and checks its exit status and that stderr holds every expected
 * piece (NULL-terminated list). */
static void expect(const char *label, const char *dir, int want_rc, const char *const *pieces) {
    char cmd[1400], errp[600];
    snprintf(errp, sizeof errp, "%s/%s.stderr", g_dir, label);
    snprintf(cmd, sizeof cmd, "'%s' load '%s' > /dev/null 2> '%s'", g_tool, dir, errp);
    int st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char *err = slurp(errp);
    bool ok = rc == want_rc;
    if (want_rc != 0) ok &= strncmp(err, "distill: error: ", 16) == 0;
    for (int i = 0; pieces[i]; i++) ok &= strstr(err, pieces[i]) != NULL;
    if (!ok) {
        fprintf(stderr, "FAIL %s: exit %d (expected %d), stderr:\n%s  expected to contain:", label,
                rc, want_rc, err);
        for (int i = 0; pieces[i]; i++) fprintf(stderr, " [%s]", pieces[i]);
        fprintf(stderr, "\n");
        g_fail++;
    } else {
        printf("ok   %-16s %s", label, err[0] ? err : "(no message)\n");
    }
    free(err);
}
#define EXPECT(label, dir, rc, ...)                                      \
    do {                                                                 \
        const char *const pieces_[] = {__VA_ARGS__, NULL};               \
        expect(label, dir, rc, pieces_);                                 \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_hf_errors PATH/TO/test_hf_tool\n");
        return 2;
    }
    g_tool = argv[1];
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/test_hf_errors-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) die("mkdtemp");

    /* The base: a valid 2-layer export with 2 labels and a 30-token vocabulary. */
    char vocab[400], cmd[1400];
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", g_dir);
    FILE *fp = fopen(vocab, "w");
    fprintf(fp, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for (int i = 5; i < 30; i++) fprintf(fp, "w%d\n", i);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "'%s' export '%s/base' '%s' vocab_size=30 hidden_size=16 "
             "num_hidden_layers=2 num_attention_heads=2 intermediate_size=20 "
             "max_position_embeddings=16 id2label=neg,pos", g_tool, g_dir, vocab);
    run(cmd);
    char base[400];
    snprintf(base, sizeof base, "%s/base", g_dir);
    EXPECT("valid", base, 0, "");

    const char *d;
    Tensors ts;
    char p[600];

    /* ---- the folder and config.json ---- */
    d = copy_base("no_config");
    snprintf(p, sizeof p, "%s/config.json", d);
    unlink(p);
    EXPECT("no_config", d, 1, "no_config/config.json: no such file");

    snprintf(p, sizeof p, "%s/not_there", g_dir);
    EXPECT("no_folder", p, 1, "not_there: expected a Hugging Face model folder",
           "found No such file or directory");

    d = copy_base("config_syntax");
    write_text(d, "config.json", "{\n  \"hidden_size\": 16,\n  oops\n}\n", "w");
    EXPECT("config_syntax", d, 1, "config_syntax/config.json:3:", "expected valid JSON");

    d = copy_base("config_type");
    edit_config(d, "hidden_size", cJSON_CreateString("big"));
    EXPECT("config_type", d, 1, "\"hidden_size\": expected an integer >= 1, found \"big\"");

    d = copy_base("config_act");
    edit_config(d, "hidden_act", cJSON_CreateString("gelu_new"));
    EXPECT("config_act", d, 1, "\"hidden_act\": expected \"gelu\"", "found \"gelu_new\"");

    d = copy_base("config_type2");
    edit_config(d, "model_type", cJSON_CreateString("roberta"));
    EXPECT("model_type", d, 1, "\"model_type\": expected \"bert\"");

    d = copy_base("vocab_big");
    write_text(d, "vocab.txt", "extra1\nextra2\n", "a");
    EXPECT("vocab_big", d, 1, "vocab.txt: 32 tokens", "vocab_size 30");

    /* ---- model.safetensors ---- */
    d = copy_base("no_weights");
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    unlink(p);
    EXPECT("no_weights", d, 1, "no_weights/model.safetensors: no such file");

    d = copy_base("bin_only");
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    unlink(p);
    write_text(d, "pytorch_model.bin", "not really", "w");
    EXPECT("bin_only", d, 1, "scripts/convert_pytorch_bin.py");

    d = copy_base("truncated");
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    struct stat st;
    if (stat(p, &st) != 0 || truncate(p, st.st_size - 100) != 0) die("truncate");
    EXPECT("truncated", d, 1, "truncated/model.safetensors", "file truncated?");

    d = copy_base("bad_header");
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    fp = fopen(p, "r+b");
    fseek(fp, 8, SEEK_SET); /* the header's first bytes: no longer JSON */
    fputs("[[!", fp);
    fclose(fp);
    EXPECT("bad_header", d, 1, "bad_header/model.safetensors: header is not valid JSON");

    d = copy_base("missing");
    load_tensors(d, &ts);
    drop_tensor(&ts, "bert.encoder.layer.1.output.dense.weight");
    save_tensors(d, &ts);
    EXPECT("missing", d, 1, "missing tensor \"bert.encoder.layer.1.output.dense.weight\"",
           "expects [16, 20]");

    d = copy_base("misshaped");
    load_tensors(d, &ts);
    ts.t[find_tensor(&ts, "bert.encoder.layer.0.intermediate.dense.weight")].shape[1] = 15;
    save_tensors(d, &ts);
    EXPECT("misshaped", d, 1, "\"bert.encoder.layer.0.intermediate.dense.weight\" has shape "
           "[20, 15]", "expects [20, 16]");

    d = copy_base("unexpected");
    load_tensors(d, &ts);
    add_tensor(&ts, "bert.encoder.layer.0.attention.self.rotary.weight", 4);
    save_tensors(d, &ts);
    EXPECT("unexpected", d, 1, "unexpected tensor \"bert.encoder.layer.0.attention.self.rotary."
           "weight\" [4]", "has no such parameter");

    d = copy_base("labels");
    cJSON *three = cJSON_CreateObject();
    cJSON_AddStringToObject(three, "0", "a");
    cJSON_AddStringToObject(three, "1", "b");
    cJSON_AddStringToObject(three, "2", "c");
    edit_config(d, "id2label", three);
    EXPECT("labels", d, 1, "\"classifier.weight\" has shape [2, 16]", "expects [3, 16]",
           "num_labels differs");

    d = copy_base("half_pooler");
    load_tensors(d, &ts);
    drop_tensor(&ts, "bert.pooler.dense.weight");
    save_tensors(d, &ts);
    EXPECT("half_pooler", d, 1, "only one of the pooler weight and bias");

    /* ---- what HF tolerates, with its warning or note ---- */
    d = copy_base("extra_heads");
    load_tensors(d, &ts);
    add_tensor(&ts, "cls.predictions.bias", 30);
    add_tensor(&ts, "cls.seq_relationship.bias", 2);
    add_tensor(&ts, "bert.embeddings.position_ids", 16);
    save_tensors(d, &ts);
    EXPECT("extra_heads", d, 0, "distill: note: Some weights of the model checkpoint",
           "'bert.embeddings.position_ids', 'cls.predictions.bias', 'cls.seq_relationship.bias'");

    d = copy_base("no_prefix");
    load_tensors(d, &ts);
    drop_tensor(&ts, "bert.pooler.dense.weight");
    drop_tensor(&ts, "bert.pooler.dense.bias");
    drop_tensor(&ts, "classifier.weight");
    drop_tensor(&ts, "classifier.bias");
    for (int i = 0; i < ts.n; i++) {
        const char *old = ts.t[i].name;
        ts.t[i].name = xstrdup(old + 5); /* "bert.x" -> "x", as BertModel saves them */
        free((char *)old);
    }
    save_tensors(d, &ts);
    EXPECT("no_prefix", d, 0, "distill: warning: Some weights of BertForSequenceClassification were "
           "not initialized from the model checkpoint at", "and are newly initialized: "
           "['bert.pooler.dense.bias', 'bert.pooler.dense.weight', 'classifier.bias', "
           "'classifier.weight']", "You should probably TRAIN this model");

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_dir);
    if (g_fail) {
        fprintf(stderr, "test_hf_errors: %d case(s) failed\n", g_fail);
        return 1;
    }
    printf("test_hf_errors: all cases passed\n");
    return 0;
}
