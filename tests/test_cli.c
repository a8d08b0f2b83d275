/*
 * test_cli.c — `distill export`, `distill info` and `distill predict` on training checkpoints,
 * run as a user runs them: the real binary, in a scratch folder, with exit codes, messages and
 * the files left behind checked.
 *
 *   test_cli CASE DISTILL VOCAB WORKDIR      CASE: export | info | predict
 *
 * Each case builds its own checkpoint with ckpt_save: a random student (every parameter drawn,
 * biases and LayerNorm included, so bit-exactness is not tested on zeros and ones), projections
 * and AdamW moments (which export must drop), the vocabulary of VOCAB, do_lower_case, data label
 * names, and an id2label with one name missing (filled from the data's names).
 *
 *   export   --checkpoint -> --hf: hf_load of the folder gives every student tensor bit for bit,
 *            no projection, vocab.txt = the checkpoint's vocabulary, id2label = neg/meh/pos; the
 *            temporary vocabulary file is gone; --model -> --hf re-export is bit-exact too;
 *            errors: --onnx (not implemented, nothing written), missing checkpoint, a folder as
 *            --checkpoint, the source folder as target, no target, an unknown option.
 *   info     a checkpoint, an exported folder, a prepared data file (distill prepare): exit 0 and
 *            what each holds; a truncated checkpoint, a folder without config.json, a folder with
 *            a damaged model.safetensors, a non-HDF5 file, a missing path: exit 1 and a message.
 *   predict  the checkpoint and the folder exported from it give the same bytes (logits and
 *            labels): tokenizer, labels and weights all come through the checkpoint path.
 * Exit 0 when every check passed, 1 otherwise (each failure printed).
 */
#define _POSIX_C_SOURCE 200809L
#include "checkpoints/ckpt.h"
#include "checkpoints/hf.h"
#include "checkpoints/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_failures;
static const char *g_distill, *g_vocab, *g_work;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, "\n");                                        \
            g_failures++;                                                 \
        }                                                                 \
    } while (0)

static char *path_in(const char *name) {
    size_t n = strlen(g_work) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", g_work, name);
    return p;
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return xstrdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = xmalloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Runs `distill ARGS...` (NULL-terminated) with stdout/stderr captured; returns the exit code. */
typedef struct {
    int rc;
    char *out, *err;
} Run;

static Run run(const char *first, ...) {
    const char *argv[32];
    int n = 0;
    argv[n++] = g_distill;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && n < 31; a = va_arg(ap, const char *)) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char *op = path_in("run.out"), *ep = path_in("run.err");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        execv(g_distill, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    Run r = {WIFEXITED(status) ? WEXITSTATUS(status) : 128, read_all(op), read_all(ep)};
    unlink(op);
    unlink(ep);
    free(op);
    free(ep);
    return r;
}

static void run_free(Run *r) {
    free(r->out);
    free(r->err);
}

/* Checks an error run: exit code, "distill: error: " first, `needle` in the message. */
static void expect_error(Run r, int rc, const char *needle, const char *what) {
    CHECK(r.rc == rc, "%s: exit %d, expected %d (stderr: %s)", what, r.rc, rc, r.err);
    CHECK(strncmp(r.err, "distill: error: ", 16) == 0 && strstr(r.err, needle),
          "%s: expected 'distill: error: ...%s...', found '%s'", what, needle, r.err);
    run_free(&r);
}

/* ---------------------------------------------------------------- the checkpoint */

static uint64_t g_rng = 88172645463325252ull;
static float rnd(void) { /* xorshift64, uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / (double)(1ull << 52) - 1.0);
}

static char **read_vocab(int *n) {
    char *text = read_all(g_vocab);
    int cap = 1024, k = 0;
    char **v = xmalloc((size_t)cap * sizeof *v);
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (k == cap) v = xrealloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[k++] = xstrdup(line);
    }
    free(text);
    *n = k;
    return v;
}

static const char *const DATA_LABELS[3] = {"bad", "meh", "good"};

/* Writes work/ck.h5; returns the student (caller frees) for comparisons. */
static Bert *make_checkpoint(const char *path) {
    BertConfig cfg = bert_config_default();
    int nv;
    char **vocab = read_vocab(&nv);
    cfg.vocab_size = nv;
    cfg.hidden_size = 24;
    cfg.num_hidden_layers = 2;
    cfg.num_attention_heads = 4;
    cfg.intermediate_size = 29;
    cfg.max_position_embeddings = 40;
    cfg.num_labels = 3;
    cfg.id2label[0] = xstrdup("neg");
    cfg.id2label[2] = xstrdup("pos"); /* [1] missing: the data's "meh" fills it */
    Bert *m = bert_build(&cfg, device_cpu());
    bert_config_free_labels(&cfg);
    for (size_t i = 0; i < m->params->total; i++) m->params->data[i] = 0.5f * rnd();

    TrainCheckpoint ck;
    ckpt_init(&ck);
    ck.student = m;
    ParamStore *proj = params_new(device_cpu());
    int w[2] = {24, 24}, b[1] = {24};
    params_add(proj, "projections.hidden.0.weight", 2, w, false);
    params_add(proj, "projections.hidden.0.bias", 1, b, true);
    params_finalize(proj);
    for (size_t i = 0; i < proj->total; i++) proj->data[i] = rnd();
    ck.projections = proj;
    float *ms = xcalloc(m->params->total, sizeof(float)), *vs = xcalloc(m->params->total, sizeof(float));
    float *mp = xcalloc(proj->total, sizeof(float)), *vp = xcalloc(proj->total, sizeof(float));
    ck.m_student = ms, ck.v_student = vs, ck.m_proj = mp, ck.v_proj = vp;
    ck.step = 7;
    ck.vocab = vocab;
    ck.n_vocab = nv;
    ck.do_lower_case = true;
    ck.label_names = (char **)DATA_LABELS;
    ck.n_label_names = 3;
    ck.config_yaml = "task: distill\n";
    if (ckpt_save(path, &ck) != DISTILL_OK) {
        fprintf(stderr, "FAIL: ckpt_save %s: %s\n", path, distill_error());
        exit(1);
    }
    params_free(proj);
    free(ms), free(vs), free(mp), free(vp);
    for (int i = 0; i < nv; i++) free(vocab[i]);
    free(vocab);
    return m;
}

/* Every tensor of `want` is in `got` with the same shape and bits, and nothing else is. */
static void compare_models(const Bert *want, const Bert *got, const char *what) {
    const ParamStore *a = want->params, *b = got->params;
    CHECK(a->n == b->n, "%s: %d tensors, expected %d", what, b->n, a->n);
    int differ = 0;
    for (int i = 0; i < a->n; i++) {
        const Tensor *x = a->tensors[i], *y = params_find(b, x->name);
        if (!y) {
            CHECK(false, "%s: tensor %s missing", what, x->name);
            continue;
        }
        CHECK(tensor_same_shape(x, y), "%s: %s has another shape", what, x->name);
        if (tensor_same_shape(x, y) && memcmp(x->data, y->data, tensor_bytes(x)) != 0) differ++;
    }
    CHECK(differ == 0, "%s: %d tensors differ in their bits", what, differ);
    CHECK(got->cfg.num_labels == 3, "%s: %d labels", what, got->cfg.num_labels);
    static const char *const names[3] = {"neg", "meh", "pos"};
    for (int i = 0; i < 3 && got->cfg.num_labels == 3; i++)
        CHECK(got->cfg.id2label[i] && !strcmp(got->cfg.id2label[i], names[i]),
              "%s: id2label[%d] = %s, expected %s", what, i,
              got->cfg.id2label[i] ? got->cfg.id2label[i] : "(none)", names[i]);
}

static Bert *load_folder(const char *dir) {
    HfLoadOptions o = hf_load_defaults();
    o.quiet = true;
    Bert *m = NULL;
    if (hf_load(dir, device_cpu(), &o, &m, NULL) != DISTILL_OK) {
        CHECK(false, "hf_load %s: %s", dir, distill_error());
        return NULL;
    }
    return m;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- cases */

static void case_export(void) {
    char *ck = path_in("ck.h5"), *hf = path_in("hf"), *hf2 = path_in("hf2"), *tmp = path_in("tmp");
    mkdir(tmp, 0755);
    setenv("TMPDIR", tmp, 1); /* the temporary vocab.txt goes here; it must be gone after */
    Bert *student = make_checkpoint(ck);

    Run r = run("export", "--checkpoint", ck, "--hf", hf, NULL);
    CHECK(r.rc == 0, "export --checkpoint: exit %d: %s", r.rc, r.err);
    CHECK(strstr(r.out, "exported"), "export: no summary line: %s", r.out);
    run_free(&r);
    CHECK(count_entries(tmp) == 0, "the temporary vocabulary file was left in %s", tmp);
    Bert *got = load_folder(hf);
    if (got) {
        compare_models(student, got, "export --checkpoint");
        bert_free(got);
    }
    char *stp = path_in("hf/model.safetensors");
    StFile *sf;
    if (st_open(stp, &sf) == DISTILL_OK) {
        for (int i = 0; i < sf->n; i++)
            CHECK(!strstr(sf->tensors[i].name, "projections"), "exported %s", sf->tensors[i].name);
        st_close(sf);
    } else {
        CHECK(false, "%s: %s", stp, distill_error());
    }
    char *vp = path_in("hf/vocab.txt"), *a = read_all(g_vocab), *b = read_all(vp);
    CHECK(strcmp(a, b) == 0, "hf/vocab.txt differs from the checkpoint's vocabulary");
    free(a), free(b), free(vp), free(stp);

    /* Re-export from the folder. */
    r = run("export", "--model", hf, "--hf", hf2, NULL);
    CHECK(r.rc == 0, "export --model: exit %d: %s", r.rc, r.err);
    run_free(&r);
    got = load_folder(hf2);
    if (got) {
        compare_models(student, got, "export --model (re-export)");
        bert_free(got);
    }

    /* Errors: nothing written. */
    char *onnx = path_in("x.onnx"), *hf3 = path_in("hf3"), *missing = path_in("missing.h5");
    char *onnx_bad = path_in("no-such-dir/x.onnx");
    {
        Run ok = run("export", "--checkpoint", ck, "--onnx", onnx, NULL);
        CHECK(ok.rc == 0, "--onnx: exit %d (stderr: %s)", ok.rc, ok.err);
        CHECK(exists(onnx), "--onnx wrote no %s", onnx);
        run_free(&ok);
    }
    expect_error(run("export", "--checkpoint", ck, "--onnx", onnx_bad, NULL), 1, "no-such-dir",
                 "--onnx into a missing folder");
    CHECK(!exists(onnx_bad), "a failed --onnx left %s", onnx_bad);
    free(onnx_bad);
    expect_error(run("export", "--checkpoint", missing, "--hf", hf3, NULL), 1, "missing.h5",
                 "missing checkpoint");
    CHECK(!exists(hf3), "a failed export left %s", hf3);
    expect_error(run("export", "--checkpoint", hf, "--hf", hf3, NULL), 1, "use --model",
                 "folder as --checkpoint");
    expect_error(run("export", "--model", hf, "--hf", hf, NULL), 1, "source folder",
                 "target = source");
    expect_error(run("export", "--checkpoint", ck, NULL), 2, "--hf", "no target");
    expect_error(run("export", "--checkpoint", ck, "--hf", hf3, "--bogus", "1", NULL), 2, "--bogus",
                 "unknown option");
    CHECK(!exists(hf3), "a failed export left %s", hf3);
    CHECK(count_entries(tmp) == 0, "a failed export left files in %s", tmp);
    Run h = run("export", "--help", NULL);
    CHECK(h.rc == 0 && strstr(h.out, "--checkpoint") && strstr(h.out, "--hf"), "export --help");
    run_free(&h);
    bert_free(student);
    free(ck), free(hf), free(hf2), free(tmp), free(onnx), free(hf3), free(missing);
}

static void write_file(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        CHECK(false, "cannot write %s", path);
        return;
    }
    fwrite(text, 1, n, f);
    fclose(f);
}

/* A copy of src cut to `keep` of its bytes. */
static void truncated_copy(const char *src, const char *dst, double keep) {
    char *cmd = xmalloc(strlen(src) + strlen(dst) + 64);
    struct stat st;
    stat(src, &st);
    sprintf(cmd, "head -c %lld '%s' > '%s'", (long long)(st.st_size * keep), src, dst);
    CHECK(system(cmd) == 0, "%s", cmd);
    free(cmd);
}

static void case_info(void) {
    char *ck = path_in("ck.h5"), *hf = path_in("hf");
    Bert *student = make_checkpoint(ck);
    bert_free(student);
    Run r = run("export", "--checkpoint", ck, "--hf", hf, NULL);
    CHECK(r.rc == 0, "export: %s", r.err);
    run_free(&r);

    r = run("info", ck, NULL);
    CHECK(r.rc == 0 && strstr(r.out, "checkpoint") && strstr(r.out, "step 7") &&
          strstr(r.out, "hash         ok"), "info CKPT: exit %d\n%s%s", r.rc, r.out, r.err);
    run_free(&r);
    r = run("info", hf, NULL);
    CHECK(r.rc == 0 && strstr(r.out, "Hugging Face") && strstr(r.out, "2 layers, hidden 24") &&
          strstr(r.out, "3 labels (neg, meh, pos)") && strstr(r.out, "load         ok") &&
          strstr(r.out, "30,522 tokens"), "info DIR: exit %d\n%s%s", r.rc, r.out, r.err);
    run_free(&r);
    r = run("info", hf, "--tensors", NULL);
    CHECK(r.rc == 0 && strstr(r.out, "bert.encoder.layer.1.output.dense.weight"),
          "info --tensors lists no tensor:\n%s", r.out);
    run_free(&r);

    /* A prepared data file, made by `distill prepare`. */
    char *tsv = path_in("rows.tsv"), *h5 = path_in("rows.h5");
    const char rows[] = "sentence\tlabel\nA fine film.\t1\nAwful.\t0\nOkay I guess.\t1\n";
    write_file(tsv, rows, sizeof rows - 1);
    r = run("prepare", "--vocab", g_vocab, "--input", tsv, "--output", h5, "--max-seq", "16", NULL);
    CHECK(r.rc == 0, "prepare: exit %d: %s", r.rc, r.err);
    run_free(&r);
    r = run("info", h5, NULL);
    CHECK(r.rc == 0 && strstr(r.out, "rows") && strstr(r.out, "16") && !strstr(r.out, "checkpoint "),
          "info DATA: exit %d\n%s%s", r.rc, r.out, r.err);
    run_free(&r);

    /* Malformed and unknown things. */
    char *cut = path_in("cut.h5"), *junk = path_in("junk.bin"), *empty = path_in("empty");
    char *bad = path_in("badhf"), *cmd = xmalloc(strlen(hf) + strlen(bad) + 16);
    truncated_copy(ck, cut, 0.5);
    expect_error(run("info", cut, NULL), 1, "cut.h5", "truncated checkpoint");
    write_file(junk, "not a model\n", 12);
    expect_error(run("info", junk, NULL), 1, "not HDF5", "junk file");
    mkdir(empty, 0755);
    expect_error(run("info", empty, NULL), 1, "config.json", "folder without config.json");
    expect_error(run("info", "/nonexistent/path", NULL), 1, "/nonexistent/path", "missing path");
    sprintf(cmd, "cp -r '%s' '%s'", hf, bad);
    CHECK(system(cmd) == 0, "%s", cmd);
    char *bst = path_in("badhf/model.safetensors"), *hst = path_in("hf/model.safetensors");
    truncated_copy(hst, bst, 0.9);
    r = run("info", bad, NULL);
    CHECK(r.rc == 1 && strstr(r.out, "load         FAILED") &&
          strncmp(r.err, "distill: error: ", 16) == 0 && strstr(r.err, "model.safetensors"),
          "info on a damaged folder: exit %d\n%s%s", r.rc, r.out, r.err);
    run_free(&r);
    expect_error(run("info", NULL), 2, "PATH", "no path");
    free(ck), free(hf), free(tsv), free(h5), free(cut), free(junk), free(empty), free(bad);
    free(cmd), free(bst), free(hst);
}

static void case_predict(void) {
    char *ck = path_in("ck.h5"), *hf = path_in("hf"), *tsv = path_in("rows.tsv");
    Bert *student = make_checkpoint(ck);
    bert_free(student);
    Run r = run("export", "--checkpoint", ck, "--hf", hf, NULL);
    CHECK(r.rc == 0, "export: %s", r.err);
    run_free(&r);
    const char rows[] = "sentence1\tsentence2\nA FINE film.\tIt is.\nAwful!\tTruly awful, "
                        "believe me.\nOkay\tI guess\nCafé déjà vu\tnaïve\n";
    write_file(tsv, rows, sizeof rows - 1);
    static const char *const kinds[] = {"logits", "probs", "label"};
    for (int k = 0; k < 3; k++) {
        Run a = run("predict", "--model", ck, "--input", tsv, "--output", kinds[k], "--batch-size",
                    "3", NULL);
        Run b = run("predict", "--model", hf, "--input", tsv, "--output", kinds[k], NULL);
        CHECK(a.rc == 0 && b.rc == 0, "predict %s: exit %d / %d: %s%s", kinds[k], a.rc, b.rc,
              a.err, b.err);
        CHECK(strcmp(a.out, b.out) == 0 && a.out[0],
              "predict --output %s: checkpoint and exported folder differ:\n%s---\n%s", kinds[k],
              a.out, b.out);
        int lines = 0;
        for (const char *p = a.out; *p; p++) lines += *p == '\n';
        CHECK(lines == 4, "predict %s: %d lines for 4 rows", kinds[k], lines);
        if (k == 2)
            CHECK(strstr(a.out, "\"label\":\"neg\"") || strstr(a.out, "\"label\":\"meh\"") ||
                  strstr(a.out, "\"label\":\"pos\""), "labels not named by id2label:\n%s", a.out);
        run_free(&a);
        run_free(&b);
    }
    free(ck), free(hf), free(tsv);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: test_cli export|info|predict DISTILL VOCAB WORKDIR\n");
        return 2;
    }
    g_distill = argv[2], g_vocab = argv[3], g_work = argv[4];
    char *cmd = xmalloc(2 * strlen(g_work) + 32);
    sprintf(cmd, "rm -rf '%s' && mkdir -p '%s'", g_work, g_work);
    if (system(cmd) != 0) return 2;
    free(cmd);
    if (!strcmp(argv[1], "export")) case_export();
    else if (!strcmp(argv[1], "info")) case_info();
    else if (!strcmp(argv[1], "predict")) case_predict();
    else return 2;
    if (g_failures) {
        fprintf(stderr, "test_cli %s: %d check(s) failed\n", argv[1], g_failures);
        return 1;
    }
    printf("test_cli %s: all checks passed\n", argv[1]);
    return 0;
}
