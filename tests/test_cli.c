/*
 * test_cli.c — `distill export`, `distill info` and `distill predict` on training checkpoints,
 * run as a user runs them: the real binary, in a scratch folder, with exit codes, messages and
 * the files left behind checked.
 *
 *   test_cli CASE DISTILL VOCAB WORKDIR      CASE: export | info | predict | the issue 8 cases below
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
 * Issue 8, help and version (each: exit code, message, nothing written in the work folder):
 *   version          --version: version, git commit, backends, optional parts, library versions
 *   help             `help CMD` = `CMD --help` for every command; help bogus, no arguments
 *   train_help       --config --help, train --help, ... : --set, --resume, run.overwrite, the
 *                    shipped configs (which exist in the source tree)
 *   config_value     --config / --set / --resume without a value: exit 2, "needs a value"
 *   usage_flags      every option of every command's help is in the top-level usage
 *   help_examples    the inputs the help examples read are what scripts/demo.sh leaves
 *   info_counts      info (checkpoint, folder) and eval print exact parameter counts
 * and eval/predict input checks:
 *   eval_positions   rows longer than the model's positions: a clear error (not an abort),
 *                    --max-seq N cuts them and says how many
 *   eval_vocab       data prepared with another vocabulary: refused, both hashes named;
 *                    --allow-vocab-mismatch overrides with a warning
 *   eval_labels      data without labels: "no metrics can be computed", exit 1
 *   eval_truncated   the rows `distill prepare` truncated are stated (text and JSON)
 *   predict_positions  --max-seq above the positions: an error, no --out file; truncated rows
 *                    are counted on stderr
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
        /* the same batching on both sides: a batch's padded length changes the GEMM shapes, and
         * with them the float rounding (batch 3 vs 4 rows differ in the 7th digit) */
        Run b = run("predict", "--model", hf, "--input", tsv, "--output", kinds[k], "--batch-size", "3", NULL);
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


/* ---------------------------------------------------------------- help, version (issue 8, part 3) */

static const char *g_src; /* the source tree (DISTILL_SOURCE_DIR), for the configs and demo.sh */

/* Every command's help: `distill help CMD` and `distill CMD --help` print the same text. */
static const char *const COMMANDS[] = {"train", "prepare", "eval", "export", "predict", "info", "cache", NULL};

static char *help_of(const char *cmd) {
    Run r = run("help", cmd, NULL);
    CHECK(r.rc == 0 && r.out[0], "help %s: exit %d: %s", cmd, r.rc, r.err);
    free(r.err);
    return r.out;
}

/* No file appears in the work folder (a failed or informational command writes nothing). */
static void expect_nothing_written(int before, const char *what) {
    int after = count_entries(g_work);
    CHECK(after == before, "%s: the work folder went from %d to %d entries", what, before, after);
}

static void case_version(void) {
    int before = count_entries(g_work);
    Run r = run("--version", NULL);
    CHECK(r.rc == 0 && !strncmp(r.out, "distill ", 8) && strstr(r.out, "(git ") &&
              strstr(r.out, "backends:  cpu") && strstr(r.out, "cuda (") && strstr(r.out, "cuDNN") &&
              strstr(r.out, "libraries: OpenBLAS") && strstr(r.out, "HDF5 ") && strstr(r.out, "libyaml ") &&
              strstr(r.out, "protobuf-c "),
          "--version: exit %d\n%s%s", r.rc, r.out, r.err);
    Run v = run("version", NULL);
    CHECK(v.rc == 0 && !strcmp(v.out, r.out), "`distill version` differs from --version");
    run_free(&r);
    run_free(&v);
    expect_nothing_written(before, "--version");
}

static void case_help(void) {
    int before = count_entries(g_work);
    for (int i = 0; COMMANDS[i]; i++) {
        char *h = help_of(COMMANDS[i]);
        Run r = run(COMMANDS[i], "--help", NULL);
        CHECK(r.rc == 0 && !strcmp(r.out, h), "`distill %s --help` differs from `distill help %s`", COMMANDS[i],
              COMMANDS[i]);
        CHECK(strstr(h, "usage: distill") == h, "help %s does not start with its usage line", COMMANDS[i]);
        run_free(&r);
        free(h);
    }
    Run b = run("help", "bench", NULL);
    CHECK(b.rc == 0 && strstr(b.out, "usage: distill bench"), "help bench: exit %d %s", b.rc, b.err);
    run_free(&b);
    Run top = run("help", NULL), dash = run("--help", NULL);
    CHECK(top.rc == 0 && dash.rc == 0 && !strcmp(top.out, dash.out), "`distill help` differs from --help");
    run_free(&top);
    run_free(&dash);
    Run none = run(NULL);
    CHECK(none.rc == 2 && strstr(none.err, "usage: distill") && !none.out[0], "no arguments: exit %d", none.rc);
    run_free(&none);
    expect_error(run("help", "bogus", NULL), 2, "unknown command 'bogus'", "help bogus");
    expect_error(run("bogus", NULL), 2, "unknown command 'bogus'", "distill bogus");
    expect_nothing_written(before, "help");
}

static void case_train_help(void) {
    int before = count_entries(g_work);
    char *h = help_of("train");
    static const char *const want[] = {"--config FILE", "--set KEY=VALUE", "--resume", "auto:", "none:", "PATH:",
                                       "run.overwrite", "configs/tiny.yaml", "configs/finetune-teacher.yaml",
                                       "configs/README.md", NULL};
    for (int i = 0; want[i]; i++) CHECK(strstr(h, want[i]), "train help does not mention '%s'", want[i]);
    /* the configs it names are shipped */
    static const char *const shipped[] = {"configs/tiny.yaml", "configs/finetune-teacher.yaml", "configs/README.md",
                                          NULL};
    for (int i = 0; shipped[i]; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", g_src, shipped[i]);
        CHECK(exists(p), "train help names %s, which is not in the source tree", shipped[i]);
    }
    const char *forms[][4] = {{"--config", "--help", NULL}, {"train", "--help", NULL},
                              {"train", "--config", "--help", NULL}, {"--config", "x.yaml", "--help", NULL},
                              {"--config", "x.yaml", "--set", "--help"}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        Run r = run(forms[i][0], forms[i][1], forms[i][2], forms[i][3], NULL);
        CHECK(r.rc == 0 && !strcmp(r.out, h), "`distill %s %s %s` is not the train help (exit %d: %s)", forms[i][0],
              forms[i][1], forms[i][2] ? forms[i][2] : "", r.rc, r.err);
        run_free(&r);
    }
    free(h);
    expect_nothing_written(before, "train --help");
}

static void case_config_value(void) {
    int before = count_entries(g_work);
    expect_error(run("--config", NULL), 2, "--config needs a value", "distill --config");
    expect_error(run("train", "--config", NULL), 2, "--config needs a value", "distill train --config");
    expect_error(run("--config", "--set", "run.seed=1", NULL), 2, "--config needs a value, found the option '--set'",
                 "--config followed by an option");
    expect_error(run("--config", "x.yaml", "--set", NULL), 2, "--set needs a value", "--set last");
    expect_error(run("--config", "x.yaml", "--resume", NULL), 2, "--resume needs a value", "--resume last");
    CHECK(!exists("runs"), "a usage error created runs/");
    expect_nothing_written(before, "--config without a value");
}

/* Every option that a command's help defines (lines "  --opt ...") appears in the top-level usage,
 * and so do the forms that were missing before (export --model, eval --random). */
static void case_usage_flags(void) {
    Run top = run("--help", NULL);
    const char *cmds[] = {"train", "prepare", "eval", "export", "predict", "info", "bench", "cache", NULL};
    for (int i = 0; cmds[i]; i++) {
        char *h;
        if (!strcmp(cmds[i], "bench")) {
            Run b = run("bench", "--help", NULL);
            h = b.out;
            free(b.err);
        } else {
            h = help_of(cmds[i]);
        }
        for (char *line = h; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
            if (strncmp(line, "  --", 4)) continue;
            char opt[64];
            int n = 0;
            for (const char *p = line + 2; (*p == '-' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) && n < 63;
                 p++)
                opt[n++] = *p;
            opt[n] = '\0';
            /* the option followed by a non-letter, so --text does not match --text-pair only */
            bool found = false;
            for (const char *q = strstr(top.out, opt); q && !found; q = strstr(q + 1, opt))
                found = !(q[n] == '-' || (q[n] >= 'a' && q[n] <= 'z'));
            CHECK(found, "the top-level usage lacks %s's option %s", cmds[i], opt);
        }
        free(h);
    }
    CHECK(strstr(top.out, "export (--checkpoint CKPT.h5 | --model DIR)"), "usage lacks export --model");
    CHECK(strstr(top.out, "eval --random L,H,A,I"), "usage lacks the eval --random form");
    CHECK(strstr(top.out, "eval --model DIR|CKPT.h5"), "usage lacks the eval --model form");
    run_free(&top);
}

/* The paths that examples in --help read exist after `bash scripts/demo.sh`: each is one of the
 * demo's outputs below, and the demo (and its student config, configs/two-layer.yaml) still make
 * each of them. */
static void case_help_examples(void) {
    static const char *const made[][2] = {
        /* example input path, what in scripts/demo.sh or configs/ makes it */
        {"runs/demo/data/sst2/test.h5", "--output \"$RUNS/data/$TASK/$split.h5\""},
        {"runs/demo/data/sst2/train.h5", "--output \"$RUNS/data/$TASK/$split.h5\""},
        {"runs/demo/teacher/best", "run.dir=$RUNS/teacher"},
        {"runs/demo/tiny/best", "run.dir=$RUNS/tiny"},
        {"runs/demo/tiny/ckpt-400.h5", "max_steps: 400"},
        {"../shared/data/sst2/test.tsv", "DATA_DIR=\"$SHARED/sst2\""},
        {"../shared/data/vocab/bert-base-uncased-vocab.txt", "$SHARED/vocab/bert-base-uncased-vocab.txt"},
        {"configs/tiny.yaml", "configs/tiny.yaml"},
    };
    const int n_made = (int)(sizeof made / sizeof made[0]);
    char p[4096];
    snprintf(p, sizeof p, "%s/scripts/demo.sh", g_src);
    char *demo = read_all(p);
    snprintf(p, sizeof p, "%s/configs/two-layer.yaml", g_src);
    char *tiny = read_all(p);
    for (int k = 0; k < n_made; k++)
        CHECK(strstr(demo, made[k][1]) || strstr(tiny, made[k][1]), "demo.sh/two-layer.yaml no longer make %s ('%s')",
              made[k][0], made[k][1]);
    CHECK(strstr(tiny, "checkpoint_every: 100"), "two-layer.yaml: ckpt-400.h5 needs checkpoint_every 100");
    CHECK(strstr(demo, "DISTILL_STUDENT_CONFIG:-configs/two-layer.yaml}"), "demo.sh's student is no longer two-layer.yaml");
    CHECK(strstr(demo, "TASK=\"${DISTILL_TASK:-sst2}\""), "demo.sh no longer runs SST-2 by default");
    CHECK(strstr(demo, "RUNS=\"${DISTILL_RUNS:-runs/demo}\""), "demo.sh no longer writes runs/demo/ by default");
    int inputs = 0;
    for (int i = 0; COMMANDS[i]; i++) {
        char *h = help_of(COMMANDS[i]), *ex = strstr(h, "\nExample");
        for (char *q = ex; q && *q; q++) {
            /* the value after each reading option, and info's PATH */
            static const char *const readers[] = {"--model ", "--data ", "--checkpoint ", "--input ", "--vocab ",
                                                  "--config ", "distill info ", NULL};
            for (int r = 0; readers[r]; r++) {
                size_t rl = strlen(readers[r]);
                if (strncmp(q, readers[r], rl)) continue;
                char val[256];
                int n = 0;
                for (const char *v = q + rl; *v && *v != ' ' && *v != '\n' && n < 255; v++) val[n++] = *v;
                val[n] = '\0';
                bool ok = false;
                for (int k = 0; k < n_made && !ok; k++) ok = !strcmp(val, made[k][0]);
                CHECK(ok, "help %s: example reads '%s', which scripts/demo.sh does not leave", COMMANDS[i], val);
                inputs++;
            }
        }
        free(h);
    }
    CHECK(inputs >= 10, "only %d example inputs found in the help texts", inputs);
    free(demo);
    free(tiny);
}

/* Exact parameter counts: info (checkpoint and folder) and eval print the count with commas. */
static char *count_text(const Bert *m) {
    char raw[32], *out = xmalloc(48);
    int len = snprintf(raw, sizeof raw, "%zu", params_count(m->params, "")), k = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) out[k++] = ',';
        out[k++] = raw[i];
    }
    out[k] = '\0';
    return out;
}

/* ---------------------------------------------------------------- eval and predict inputs (part 4) */

/* A checkpoint (40 positions, the vocabulary of VOCAB) exported to work/hf; returns the count text. */
static char *model_40(void) {
    char *ck = path_in("ck.h5"), *hf = path_in("hf");
    Bert *m = make_checkpoint(ck);
    char *count = count_text(m);
    bert_free(m);
    Run r = run("export", "--checkpoint", ck, "--hf", hf, NULL);
    CHECK(r.rc == 0, "export: %s", r.err);
    run_free(&r);
    free(ck), free(hf);
    return count;
}

/* `distill prepare` of `rows` (a TSV with a header) into work/NAME.h5; returns prepare's stdout. */
static char *prepare(const char *name, const char *rows, const char *max_seq, const char *vocab, bool labels) {
    char tn[64], hn[64];
    snprintf(tn, sizeof tn, "%s.tsv", name);
    snprintf(hn, sizeof hn, "%s.h5", name);
    char *tsv = path_in(tn), *h5 = path_in(hn);
    write_file(tsv, rows, strlen(rows));
    Run r = labels ? run("prepare", "--vocab", vocab, "--input", tsv, "--output", h5, "--max-seq", max_seq, NULL)
                   : run("prepare", "--vocab", vocab, "--input", tsv, "--output", h5, "--max-seq", max_seq,
                         "--no-label", "--text", "sentence", NULL);
    CHECK(r.rc == 0, "prepare %s: exit %d: %s", name, r.rc, r.err);
    free(r.err);
    free(tsv), free(h5);
    return r.out;
}

/* 3 short rows and 2 of about 60 tokens (more than the model's 40 positions). */
static char *long_rows(void) {
    size_t cap = 8192;
    char *s = xmalloc(cap);
    strcpy(s, "sentence\tlabel\nA fine film.\t1\nAwful.\t0\n");
    for (int r = 0; r < 2; r++) {
        for (int w = 0; w < 60; w++) strcat(s, w % 2 ? "good " : "movie ");
        strcat(s, r ? "\t1\n" : "\t0\n");
    }
    strcat(s, "Okay I guess.\t2\n");
    return s;
}

static void case_eval_positions(void) {
    char *count = model_40(), *hf = path_in("hf"), *rows = long_rows();
    free(prepare("long", rows, "64", g_vocab, true));
    char *h5 = path_in("long.h5");
    int before = count_entries(g_work);
    Run r = run("eval", "--model", hf, "--data", h5, "--no-latency", NULL);
    CHECK(r.rc == 1, "eval on rows longer than the positions: exit %d (134 = the old abort)", r.rc);
    CHECK(!strncmp(r.err, "distill: error: ", 16) && strstr(r.err, "rows of up to 62 tokens") &&
              strstr(r.err, "only 40 positions") && strstr(r.err, "--max-seq 40"),
          "eval on long rows: %s", r.err);
    run_free(&r);
    expect_error(run("eval", "--model", hf, "--data", h5, "--max-seq", "50", "--no-latency", NULL), 1,
                 "--max-seq 50: expected at most", "--max-seq above the positions");
    expect_error(run("eval", "--model", hf, "--data", h5, "--max-seq", "2", NULL), 2, "at least 3", "--max-seq 2");
    r = run("eval", "--model", hf, "--data", h5, "--max-seq", "32", "--no-latency", NULL);
    CHECK(r.rc == 0 && strstr(r.out, "2 cut to --max-seq 32") && strstr(r.out, "accuracy"),
          "eval --max-seq 32: exit %d\n%s%s", r.rc, r.out, r.err);
    /* exact parameter count in eval's report */
    char want[96];
    snprintf(want, sizeof want, "; %s parameters)", count);
    CHECK(strstr(r.out, want) && !strstr(r.out, "M parameters"), "eval: no exact count '%s' in\n%s", want, r.out);
    run_free(&r);
    r = run("eval", "--model", hf, "--data", h5, "--max-seq", "32", "--no-latency", "--json", NULL);
    CHECK(r.rc == 0 && strstr(r.out, "\"cut_rows\":2") && strstr(r.out, "\"max_seq\":32"), "eval --json: %s%s",
          r.out, r.err);
    run_free(&r);
    expect_nothing_written(before, "eval");
    free(count), free(hf), free(rows), free(h5);
}

static char *sha256_of(const char *path) {
    char cmd[4200], *out = xcalloc(1, 65);
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    if (p) {
        CHECK(fscanf(p, "%64s", out) == 1, "%s", cmd);
        pclose(p);
    }
    return out;
}

static void case_eval_vocab(void) {
    char *count = model_40(), *hf = path_in("hf");
    free(count);
    /* the same size, one token changed: another vocabulary */
    char *text = read_all(g_vocab), *other = path_in("other-vocab.txt");
    char *at = strstr(text, "\nthe\n");
    CHECK(at != NULL, "no 'the' line in %s", g_vocab);
    if (at) memcpy(at + 1, "tHe", 3);
    write_file(other, text, strlen(text));
    free(text);
    const char rows[] = "sentence\tlabel\nthe film.\t1\nAwful.\t0\nOkay I guess.\t2\n";
    free(prepare("othervocab", rows, "16", other, true));
    char *h5 = path_in("othervocab.h5"), *data_sha = sha256_of(other), *model_sha = sha256_of(g_vocab);
    int before = count_entries(g_work);
    Run r = run("eval", "--model", hf, "--data", h5, "--no-latency", NULL);
    CHECK(r.rc == 1 && !strncmp(r.err, "distill: error: ", 16) && strstr(r.err, "another vocabulary") &&
              strstr(r.err, data_sha) && strstr(r.err, model_sha) && strstr(r.err, h5) && strstr(r.err, hf) &&
              strstr(r.err, "--allow-vocab-mismatch") && !r.out[0],
          "eval with another vocabulary: exit %d\nstdout: %s\nstderr: %s(want %s and %s)", r.rc, r.out, r.err, data_sha,
          model_sha);
    run_free(&r);
    r = run("eval", "--model", hf, "--data", h5, "--no-latency", "--allow-vocab-mismatch", NULL);
    CHECK(r.rc == 0 && strstr(r.err, "warning") && strstr(r.out, "accuracy"), "--allow-vocab-mismatch: exit %d %s",
          r.rc, r.err);
    run_free(&r);
    /* the checkpoint's stored vocabulary is checked too */
    char *ck = path_in("ck.h5");
    expect_error(run("eval", "--model", ck, "--data", h5, "--no-latency", NULL), 1, "another vocabulary",
                 "checkpoint with another vocabulary");
    expect_nothing_written(before, "eval with another vocabulary");
    free(hf), free(other), free(h5), free(data_sha), free(model_sha), free(ck);
}

static void case_eval_labels(void) {
    char *count = model_40(), *hf = path_in("hf");
    free(count);
    const char rows[] = "sentence\nA fine film.\nAwful.\n";
    free(prepare("nolabel", rows, "16", g_vocab, false));
    char *h5 = path_in("nolabel.h5");
    int before = count_entries(g_work);
    Run r = run("eval", "--model", hf, "--data", h5, NULL);
    CHECK(r.rc == 1 && !r.out[0], "eval without labels: exit %d, stdout '%s'", r.rc, r.out);
    expect_error(r, 1, "no metrics can be computed", "eval without labels");
    /* --random needs no labels: latency only */
    r = run("eval", "--random", "1,8,2,16", "--data", h5, "--latency-rows", "2", NULL);
    CHECK(r.rc == 0 && strstr(r.out, "latency"), "eval --random without labels: exit %d %s", r.rc, r.err);
    run_free(&r);
    expect_nothing_written(before, "eval without labels");
    free(hf), free(h5);
}

static void case_eval_truncated(void) {
    char *count = model_40(), *hf = path_in("hf"), *rows = long_rows();
    free(count);
    char *out = prepare("cut", rows, "16", g_vocab, true);
    CHECK(strstr(out, ", 2 truncated"), "prepare: expected 2 truncated rows: %s", out);
    free(out);
    char *h5 = path_in("cut.h5");
    int before = count_entries(g_work);
    Run r = run("eval", "--model", hf, "--data", h5, "--no-latency", NULL);
    CHECK(r.rc == 0 && strstr(r.out, "max_seq 16; 2 truncated by distill prepare"), "eval: exit %d\n%s%s", r.rc,
          r.out, r.err);
    run_free(&r);
    r = run("eval", "--model", hf, "--data", h5, "--no-latency", "--json", NULL);
    CHECK(r.rc == 0 && strstr(r.out, "\"truncated_rows\":2,\"truncated_rows_exact\":true"), "eval --json: %s",
          r.out);
    run_free(&r);
    expect_nothing_written(before, "eval");
    free(hf), free(rows), free(h5);
}

static void case_predict_positions(void) {
    char *count = model_40(), *hf = path_in("hf"), *rows = long_rows(), *tsv = path_in("long.tsv");
    free(count);
    write_file(tsv, rows, strlen(rows));
    char *out = path_in("pred.jsonl");
    int before = count_entries(g_work);
    expect_error(run("predict", "--model", hf, "--input", tsv, "--max-seq", "50", "--out", out, NULL), 1,
                 "only 40 positions", "predict --max-seq above the positions");
    CHECK(!exists(out), "a failed predict wrote %s", out);
    expect_nothing_written(before, "predict --max-seq 50");
    Run r = run("predict", "--model", hf, "--input", tsv, "--output", "logits", NULL);
    CHECK(r.rc == 0 && strstr(r.err, "2 of 5 rows were longer than 40 tokens and were truncated"),
          "predict on long rows: exit %d: %s", r.rc, r.err);
    run_free(&r);
    free(hf), free(rows), free(tsv), free(out);
}

static void case_info_counts(void) {
    char *count = model_40(), *ck = path_in("ck.h5"), *hf = path_in("hf");
    Run r = run("info", ck, NULL);
    CHECK(r.rc == 0 && strstr(r.out, count), "info CKPT: no exact count %s:\n%s", count, r.out);
    run_free(&r);
    r = run("info", hf, NULL);
    char want[96];
    snprintf(want, sizeof want, "parameters   %s (", count);
    CHECK(r.rc == 0 && strstr(r.out, want), "info DIR: no '%s':\n%s", want, r.out);
    run_free(&r);
    free(count), free(ck), free(hf);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: test_cli CASE DISTILL VOCAB WORKDIR (DISTILL_SOURCE_DIR in the environment)\n");
        return 2;
    }
    g_distill = argv[2], g_vocab = argv[3], g_work = argv[4];
    g_src = getenv("DISTILL_SOURCE_DIR") ? getenv("DISTILL_SOURCE_DIR") : ".";
    char *cmd = xmalloc(2 * strlen(g_work) + 32);
    sprintf(cmd, "rm -rf '%s' && mkdir -p '%s'", g_work, g_work);
    if (system(cmd) != 0) return 2;
    free(cmd);
    if (chdir(g_work) != 0) return 2; /* relative paths a command might write land here */
    static const struct {
        const char *name;
        void (*fn)(void);
    } cases[] = {{"export", case_export},
                 {"info", case_info},
                 {"predict", case_predict},
                 {"version", case_version},
                 {"help", case_help},
                 {"train_help", case_train_help},
                 {"config_value", case_config_value},
                 {"usage_flags", case_usage_flags},
                 {"help_examples", case_help_examples},
                 {"info_counts", case_info_counts},
                 {"eval_positions", case_eval_positions},
                 {"eval_vocab", case_eval_vocab},
                 {"eval_labels", case_eval_labels},
                 {"eval_truncated", case_eval_truncated},
                 {"predict_positions", case_predict_positions},
                 {NULL, NULL}};
    int k = 0;
    while (cases[k].name && strcmp(cases[k].name, argv[1])) k++;
    if (!cases[k].name) return 2;
    cases[k].fn();
    if (g_failures) {
        fprintf(stderr, "test_cli %s: %d check(s) failed\n", argv[1], g_failures);
        return 1;
    }
    printf("test_cli %s: all checks passed\n", argv[1]);
    return 0;
}
