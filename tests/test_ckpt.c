/*
 * test_ckpt.c — unit tests of HDF5 training checkpoints (checkpoints/ckpt.h).
 *
 * `test_ckpt CASE` runs one case (CTest registers each); every case builds a tiny BERT with
 * bert_build + bert_init in a fresh temporary directory and removes it afterwards.
 *   roundtrip  save -> load is bit-exact for every tensor, moment, state field and string (also
 *              model-only load, copy into existing stores, re-save gives the same hash, info, is_*)
 *   crash      a crash at each stage of ckpt_save (a forked writer killed there) leaves the previous
 *              checkpoint loading bit-exact; a write failing for lack of space leaves nothing; a
 *              truncated and an incomplete file are rejected with clear errors
 *   hash       a flipped byte in a tensor, in a moment, a changed state attribute, and a tensor
 *              changed together with its own digest are all detected
 *   rotate     keeps the newest K ckpt-<step>.h5 by step, never best.h5 or other names; removes
 *              stale temporary files of dead writers only
 *   latest     find_latest skips a corrupted and a truncated newest file with warnings
 *   unwritable missing, non-directory and read-only (permission) directories give a clear error
 *              and write nothing
 *   device     (label gpu) the same state held on a CUDA device saves the same bytes and loads
 *              back onto the device bit-exact; exits 77 (skipped) without a CUDA device, 1
 *              then under DISTILL_EXPECT_GPU=1
 * No tolerance anywhere: every comparison is exact (memcmp of bytes).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>
#include <openssl/evp.h>

#include "checkpoints/ckpt.h"
#include "engine/rng.h"

#include "test_tmpdir.h"
/* ---------------------------------------------------------------- a tiny training state */

typedef struct Fixture {
    TrainCheckpoint ck; /* borrowed pointers into the members below */
    float *ms, *vs, *mp, *vp;
    char *vocab[40];
    char *labels[3];
} Fixture;

static void fill_random(float *x, size_t n, uint64_t seed) {
    Rng r = rng_new(seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_next_normal(&r);
}

/* Random values in every tensor's range of a buffer laid out like `ps` (padding left 0), plus
 * values whose bits a careless writer would lose: -0, a subnormal, a NaN with a payload, inf. */
static void fill_store_buffer(const ParamStore *ps, float *buf, uint64_t seed) {
    memset(buf, 0, (ps->total ? ps->total : 1) * sizeof(float));
    for (int i = 0; i < ps->n; i++) fill_random(buf + ps->offsets[i], ps->tensors[i]->numel, seed + i);
    uint32_t nan_payload = 0x7fc12345u;
    float qnan;
    memcpy(&qnan, &nan_payload, 4);
    float *t0 = buf + ps->offsets[0];
    t0[0] = -0.0f;
    t0[1] = 1e-41f; /* subnormal */
    t0[2] = qnan;
    t0[3] = -INFINITY;
}

static Bert *tiny_bert(uint64_t seed) {
    BertConfig cfg = bert_config_default();
    cfg.vocab_size = 40;
    cfg.hidden_size = 16;
    cfg.num_hidden_layers = 2;
    cfg.num_attention_heads = 2;
    cfg.intermediate_size = 24;
    cfg.max_position_embeddings = 20;
    cfg.num_labels = 3;
    cfg.hidden_dropout_prob = 0.125f;
    cfg.classifier_dropout = -1.0f;
    cfg.layer_norm_eps = 1e-7f;
    snprintf(cfg.problem_type, sizeof cfg.problem_type, "single_label_classification");
    cfg.id2label[0] = strdup("negative");
    cfg.id2label[1] = NULL; /* LABEL_1 */
    cfg.id2label[2] = strdup("positive");
    Bert *m = bert_build(&cfg, device_cpu());
    bert_config_free_labels(&cfg);
    bert_init(m, seed);
    return m;
}

static ParamStore *tiny_projections(uint64_t seed) {
    ParamStore *ps = params_new(device_cpu());
    int w[2] = {24, 16}, b[1] = {24};
    params_add(ps, "projections.hidden.0.weight", 2, w, false);
    params_add(ps, "projections.hidden.0.bias", 1, b, true);
    params_finalize(ps);
    fill_store_buffer(ps, ps->data, seed);
    return ps;
}

/* `variant` changes every value, so two fixtures are told apart by content. */
static void fixture_make(Fixture *fx, int variant) {
    memset(fx, 0, sizeof *fx);
    TrainCheckpoint *ck = &fx->ck;
    ckpt_init(ck);
    ck->student = tiny_bert(1000 + (uint64_t)variant);
    ParamStore *sp = ck->student->params;
    float *w = sp->data + sp->offsets[1];
    w[0] = -0.0f; /* bits a careless writer would lose, in a real parameter */
    w[1] = 3e-42f;
    ck->projections = tiny_projections(2000 + (uint64_t)variant);
    size_t bs = sp->total * sizeof(float), bp = ck->projections->total * sizeof(float);
    fx->ms = malloc(bs); fx->vs = malloc(bs);
    fx->mp = malloc(bp); fx->vp = malloc(bp);
    fill_store_buffer(sp, fx->ms, 3000 + (uint64_t)variant);
    fill_store_buffer(sp, fx->vs, 4000 + (uint64_t)variant);
    fill_store_buffer(ck->projections, fx->mp, 5000 + (uint64_t)variant);
    fill_store_buffer(ck->projections, fx->vp, 6000 + (uint64_t)variant);
    ck->m_student = fx->ms; ck->v_student = fx->vs;
    ck->m_proj = fx->mp; ck->v_proj = fx->vp;
    ck->step = 1234 + variant;
    ck->epoch = 2;
    ck->batch_cursor = 17;
    ck->samples_seen = 39488;
    ck->optimizer_steps = 1230 + variant;
    ck->rng_seed = 0xDEADBEEFCAFEBABEull; /* above INT64_MAX: must survive as unsigned */
    ck->rng_counter = 987654321012ull;
    ck->data_seed = 42;
    ck->best_metric = 0.87654321012345678;
    ck->best_step = 1000;
    ck->metrics_offset = 123456;
    ck->config_yaml = variant ? "task: distill\nrun: {name: b}\n" : "task: distill\nrun: {name: a}\n";
    const char *special[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "h\xc3\xa9llo", "##ing", ""};
    for (int i = 0; i < 40; i++) {
        char b[32];
        if (i < 8) snprintf(b, sizeof b, "%s", special[i]);
        else snprintf(b, sizeof b, "tok%d", i);
        fx->vocab[i] = strdup(b);
    }
    ck->vocab = fx->vocab;
    ck->n_vocab = 40;
    ck->do_lower_case = true;
    fx->labels[0] = strdup("negative");
    fx->labels[1] = strdup("neutral");
    fx->labels[2] = strdup("positive");
    ck->label_names = fx->labels;
    ck->n_label_names = 3;
}

static void fixture_free(Fixture *fx) {
    bert_free(fx->ck.student);
    params_free(fx->ck.projections);
    free(fx->ms); free(fx->vs); free(fx->mp); free(fx->vp);
    for (int i = 0; i < 40; i++) free(fx->vocab[i]);
    for (int i = 0; i < 3; i++) free(fx->labels[i]);
}

/* ---------------------------------------------------------------- exact comparisons */

static bool same_bytes(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

static void compare_config(const BertConfig *a, const BertConfig *b) {
    CHECK(a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size &&
          a->num_hidden_layers == b->num_hidden_layers &&
          a->num_attention_heads == b->num_attention_heads &&
          a->intermediate_size == b->intermediate_size &&
          a->max_position_embeddings == b->max_position_embeddings &&
          a->type_vocab_size == b->type_vocab_size && a->num_labels == b->num_labels &&
          a->pad_token_id == b->pad_token_id && a->has_pooler == b->has_pooler,
          "integer config fields differ");
    CHECK(same_bytes(&a->layer_norm_eps, &b->layer_norm_eps, 4) &&
          same_bytes(&a->hidden_dropout_prob, &b->hidden_dropout_prob, 4) &&
          same_bytes(&a->attention_probs_dropout_prob, &b->attention_probs_dropout_prob, 4) &&
          same_bytes(&a->classifier_dropout, &b->classifier_dropout, 4) &&
          same_bytes(&a->initializer_range, &b->initializer_range, 4),
          "float config fields differ");
    CHECK(strcmp(a->problem_type, b->problem_type) == 0, "problem_type '%s' vs '%s'",
          a->problem_type, b->problem_type);
    for (int i = 0; i < BERT_MAX_LABELS; i++) {
        const char *x = a->id2label[i], *y = b->id2label[i];
        CHECK((!x && !y) || (x && y && strcmp(x, y) == 0), "id2label[%d] '%s' vs '%s'", i,
              x ? x : "(null)", y ? y : "(null)");
    }
}

/* Same names, order, shapes, no_decay and data bytes; moments compared over the whole buffer
 * (padding included) when both are given. */
static void compare_store(const char *what, const ParamStore *a, const ParamStore *b,
                          const float *am, const float *bm, const float *av, const float *bv) {
    REQUIRE(a && b && a->n == b->n && a->total == b->total, "%s: stores differ in size", what);
    for (int i = 0; i < a->n; i++) {
        const Tensor *x = a->tensors[i], *y = b->tensors[i];
        CHECK(strcmp(x->name, y->name) == 0 && tensor_same_shape(x, y) &&
              a->offsets[i] == b->offsets[i] && a->no_decay[i] == b->no_decay[i],
              "%s: tensor %d (%s vs %s) differs in name, shape, offset or no_decay", what, i,
              x->name, y->name);
        CHECK(same_bytes(x->data, y->data, tensor_bytes(x)), "%s: %s: data differs", what, x->name);
    }
    size_t bytes = a->total * sizeof(float);
    if (am || bm) CHECK(am && bm && same_bytes(am, bm, bytes), "%s: first moments differ", what);
    if (av || bv) CHECK(av && bv && same_bytes(av, bv, bytes), "%s: second moments differ", what);
}

static void compare_strings(const TrainCheckpoint *a, const TrainCheckpoint *b) {
    CHECK(a->n_vocab == b->n_vocab, "vocab size %d vs %d", a->n_vocab, b->n_vocab);
    for (int i = 0; i < a->n_vocab && i < b->n_vocab; i++)
        CHECK(strcmp(a->vocab[i], b->vocab[i]) == 0, "vocab[%d] '%s' vs '%s'", i, a->vocab[i],
              b->vocab[i]);
    CHECK(a->do_lower_case == b->do_lower_case, "do_lower_case differs");
    CHECK(a->n_label_names == b->n_label_names, "label count differs");
    for (int i = 0; i < a->n_label_names && i < b->n_label_names; i++)
        CHECK(strcmp(a->label_names[i], b->label_names[i]) == 0, "label %d differs", i);
    CHECK((!a->config_yaml && !b->config_yaml) ||
          (a->config_yaml && b->config_yaml && strcmp(a->config_yaml, b->config_yaml) == 0),
          "config_yaml differs");
}

static void compare_state(const TrainCheckpoint *a, const TrainCheckpoint *b) {
    CHECK(a->step == b->step && a->epoch == b->epoch && a->batch_cursor == b->batch_cursor &&
          a->samples_seen == b->samples_seen && a->optimizer_steps == b->optimizer_steps &&
          a->best_step == b->best_step && a->metrics_offset == b->metrics_offset,
          "int64 state differs (step %lld vs %lld)", (long long)a->step, (long long)b->step);
    CHECK(a->rng_seed == b->rng_seed && a->rng_counter == b->rng_counter &&
          a->data_seed == b->data_seed, "random state differs");
    CHECK(same_bytes(&a->best_metric, &b->best_metric, sizeof(double)), "best_metric %.17g vs %.17g",
          a->best_metric, b->best_metric);
}

/* Everything, as ckpt_load must give it back. */
static void compare_full(const TrainCheckpoint *want, const TrainCheckpoint *got) {
    REQUIRE(got->student != NULL, "no student loaded");
    compare_config(&want->student->cfg, &got->student->cfg);
    compare_store("student", want->student->params, got->student->params, want->m_student,
                  got->m_student, want->v_student, got->v_student);
    if (want->projections)
        compare_store("projections", want->projections, got->projections, want->m_proj,
                      got->m_proj, want->v_proj, got->v_proj);
    else
        CHECK(got->projections == NULL && got->m_proj == NULL, "projections appeared from nowhere");
    compare_state(want, got);
    compare_strings(want, got);
}

static Status load_expect_error(const char *path, const char *needle1, const char *needle2) {
    TrainCheckpoint ck;
    Status st = ckpt_load(path, device_cpu(), &ck);
    CHECK(st == DISTILL_ERR, "%s loaded but should have been rejected", path);
    if (st == DISTILL_ERR) {
        const char *e = distill_error();
        if (getenv("CKPT_TEST_VERBOSE")) printf("rejected as expected: %s\n", e);
        CHECK(strstr(e, path) != NULL, "error does not name the file: %s", e);
        CHECK(!needle1 || strstr(e, needle1), "error lacks '%s': %s", needle1, e);
        CHECK(!needle2 || strstr(e, needle2), "error lacks '%s': %s", needle2, e);
        CHECK(ck.student == NULL && ck.projections == NULL && ck.m_student == NULL,
              "a failed load left objects behind");
    }
    ckpt_free(&ck);
    return st;
}

static void read_sha_attr(const char *path, char out[65]) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0, "cannot reopen %s", path);
    hid_t a = H5Aopen(f, "sha256", H5P_DEFAULT), t = H5Aget_type(a);
    char *s = NULL;
    REQUIRE(H5Aread(a, t, &s) >= 0, "cannot read sha256");
    snprintf(out, 65, "%s", s);
    H5free_memory(s);
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
}

/* ---------------------------------------------------------------- cases */

static void case_roundtrip(void) {
    Fixture fx;
    fixture_make(&fx, 0);
    char p[600], p2[600];
    in_dir("ckpt-1234.h5", p, sizeof p);
    REQUIRE(ckpt_save(p, &fx.ck) == DISTILL_OK, "save: %s", distill_error());
    CHECK(count_entries(g_dir) == 1, "save left %d files (expected only the checkpoint)",
          count_entries(g_dir));

    TrainCheckpoint got;
    REQUIRE(ckpt_load(p, device_cpu(), &got) == DISTILL_OK, "load: %s", distill_error());
    compare_full(&fx.ck, &got);

    /* Saving what was loaded gives the same content hash (the hash is a function of content). */
    in_dir("again.h5", p2, sizeof p2);
    REQUIRE(ckpt_save(p2, &got) == DISTILL_OK, "re-save: %s", distill_error());
    char h1[65], h2[65];
    read_sha_attr(p, h1);
    read_sha_attr(p2, h2);
    CHECK(strcmp(h1, h2) == 0, "re-saved hash %s differs from %s", h2, h1);

    /* Resume into stores the trainer built itself. */
    Bert *mine = tiny_bert(77);
    ParamStore *myproj = tiny_projections(78);
    size_t bs = mine->params->total * sizeof(float), bp = myproj->total * sizeof(float);
    float *m = malloc(bs), *v = malloc(bs), *mp = malloc(bp), *vp = malloc(bp);
    memset(m, 0x7f, bs); memset(v, 0x7f, bs); /* garbage that must be overwritten */
    REQUIRE(ckpt_copy_store(mine->params, m, v, got.student->params, got.m_student,
                            got.v_student) == DISTILL_OK, "copy student: %s", distill_error());
    REQUIRE(ckpt_copy_store(myproj, mp, vp, got.projections, got.m_proj, got.v_proj) == DISTILL_OK,
            "copy projections: %s", distill_error());
    compare_store("copied student", fx.ck.student->params, mine->params, fx.ms, m, fx.vs, v);
    compare_store("copied projections", fx.ck.projections, myproj, fx.mp, mp, fx.vp, vp);
    /* A store of another shape is refused with the tensor's name. */
    ParamStore *other = params_new(device_cpu());
    int w[2] = {24, 15}, b[1] = {24};
    params_add(other, "projections.hidden.0.weight", 2, w, false);
    params_add(other, "projections.hidden.0.bias", 1, b, true);
    params_finalize(other);
    CHECK(ckpt_copy_store(other, NULL, NULL, got.projections, NULL, NULL) == DISTILL_ERR &&
          strstr(distill_error(), "projections.hidden.0.weight"), "shape mismatch not named: %s",
          distill_error());
    params_free(other);
    free(m); free(v); free(mp); free(vp);
    params_free(myproj);
    bert_free(mine);
    ckpt_free(&got);

    /* Model only: the student, strings and state; no projections or moments. */
    REQUIRE(ckpt_load_model_only(p, device_cpu(), &got) == DISTILL_OK, "model-only: %s",
            distill_error());
    compare_config(&fx.ck.student->cfg, &got.student->cfg);
    compare_store("model-only student", fx.ck.student->params, got.student->params, NULL, NULL,
                  NULL, NULL);
    compare_strings(&fx.ck, &got);
    CHECK(got.step == fx.ck.step, "model-only step");
    CHECK(!got.projections && !got.m_student && !got.v_student, "model-only loaded optimizer state");
    ckpt_free(&got);

    /* Without projections, moments or strings: absent stays absent. */
    TrainCheckpoint bare;
    ckpt_init(&bare);
    bare.student = fx.ck.student;
    bare.step = 5;
    in_dir("bare.h5", p2, sizeof p2);
    REQUIRE(ckpt_save(p2, &bare) == DISTILL_OK, "bare save: %s", distill_error());
    REQUIRE(ckpt_load(p2, device_cpu(), &got) == DISTILL_OK, "bare load: %s", distill_error());
    compare_full(&bare, &got);
    CHECK(!got.m_student && !got.v_student && !got.vocab && !got.label_names && !got.config_yaml &&
          isnan(got.best_metric) && got.best_step == -1, "bare checkpoint grew members");
    ckpt_free(&got);

    /* Moments must come in pairs. */
    bare.m_student = fx.ms;
    in_dir("bad.h5", p2, sizeof p2);
    CHECK(ckpt_save(p2, &bare) == DISTILL_ERR && !exists(p2), "m without v was accepted");

    /* is_checkpoint and info. */
    CHECK(ckpt_is_checkpoint(p), "a checkpoint is not recognised");
    in_dir("notes.txt", p2, sizeof p2);
    FILE *f = fopen(p2, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    CHECK(!ckpt_is_checkpoint(p2), "a text file taken for a checkpoint");
    in_dir("data.h5", p2, sizeof p2);
    hid_t h = H5Fcreate(p2, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(h);
    CHECK(!ckpt_is_checkpoint(p2), "a plain HDF5 file taken for a checkpoint");
    in_dir("missing.h5", p2, sizeof p2);
    CHECK(!ckpt_is_checkpoint(p2), "a missing file taken for a checkpoint");
    load_expect_error(p2, "No such file", NULL);

    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    int rc = ckpt_info_print(p, mem);
    fclose(mem);
    CHECK(rc == 0, "info on a good checkpoint returned %d: %s", rc, distill_error());
    CHECK(strstr(text, "step 1234") && strstr(text, "epoch 2") && strstr(text, "hash         ok") &&
          strstr(text, "2 layers, hidden 16") && strstr(text, "best         0.876543 at step 1000") &&
          strstr(text, "moments      student m, v, projections m, v") &&
          strstr(text, "vocab        40 tokens"), "info output lacks a field:\n%s", text);
    if (getenv("CKPT_TEST_VERBOSE")) fputs(text, stdout);
    free(text);
    fixture_free(&fx);
}

/* ---- crash safety */

static const char *g_crash_stage;
static void crash_hook(const char *stage) {
    if (strcmp(stage, g_crash_stage) == 0) _exit(42); /* no atexit, no HDF5 close: a crash */
}

static void copy_file(const char *from, const char *to, off_t keep) {
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(in >= 0 && out >= 0, "copy %s -> %s", from, to);
    char buf[65536];
    off_t done = 0;
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0 && (keep < 0 || done < keep)) {
        if (keep >= 0 && done + n > keep) n = (ssize_t)(keep - done);
        REQUIRE(write(out, buf, (size_t)n) == n, "write");
        done += n;
    }
    close(in);
    close(out);
}

static void expect_loads_as(const char *path, const TrainCheckpoint *want) {
    TrainCheckpoint got;
    Status st = ckpt_load(path, device_cpu(), &got);
    CHECK(st == DISTILL_OK, "%s does not load: %s", path, distill_error());
    if (st == DISTILL_OK) compare_full(want, &got);
    ckpt_free(&got);
}

/* The temporary file of writer `pid` in g_dir ("ckpt-10.h5.tmp-<pid>-<n>", io/atomic.h) into buf;
 * false (and buf "") when there is none. */
static bool find_temp(pid_t pid, char *buf, size_t n) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "ckpt-10.h5.tmp-%ld-", (long)pid);
    buf[0] = '\0';
    DIR *d = opendir(g_dir);
    if (!d) return false;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 &&
            (size_t)snprintf(buf, n, "%s/%s", g_dir, e->d_name) >= n)
            buf[0] = '\0';
    closedir(d);
    return buf[0] != '\0';
}

static void case_crash(void) {
    Fixture a, b;
    fixture_make(&a, 0);
    fixture_make(&b, 1);
    char p[600], tmp[700], q[600], found[700];
    in_dir("ckpt-10.h5", p, sizeof p);
    REQUIRE(ckpt_save(p, &a.ck) == DISTILL_OK, "save: %s", distill_error());

    const char *stages[] = {"created", "tensors", "state", "marker", "closed", "synced", "renamed"};
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork");
        if (pid == 0) {
            g_crash_stage = stages[i];
            ckpt_test_stage_hook = crash_hook;
            ckpt_save(p, &b.ck);
            _exit(3); /* the stage was never reached */
        }
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42, "writer did not die at '%s'",
              stages[i]);
        bool after_rename = strcmp(stages[i], "renamed") == 0;
        /* The previous checkpoint is intact until the rename, the new one complete after it. */
        expect_loads_as(p, after_rename ? &b.ck : &a.ck);
        bool has_tmp = find_temp(pid, tmp, sizeof tmp);
        CHECK(has_tmp == !after_rename, "stage %s: temporary file %s", stages[i],
              has_tmp ? "left" : "missing");
        REQUIRE(ckpt_find_latest(g_dir, found, sizeof found) == DISTILL_OK, "find_latest: %s",
                distill_error());
        CHECK(strcmp(found, p) == 0, "find_latest gave %s", found);
        /* A temporary file written before the marker is not a loadable checkpoint. */
        if (i <= 3 && has_tmp) CHECK(ckpt_verify(tmp) == DISTILL_ERR, "stage %s tmp verified", stages[i]);
        /* rotate removes the dead writer's leftover and nothing else. */
        REQUIRE(ckpt_rotate(g_dir, 3) == DISTILL_OK, "rotate: %s", distill_error());
        CHECK(!(has_tmp && exists(tmp)) && !find_temp(pid, found, sizeof found) && exists(p),
              "rotate did not clean up after '%s'", stages[i]);
        if (after_rename) REQUIRE(ckpt_save(p, &a.ck) == DISTILL_OK, "restore: %s", distill_error());
    }

    /* A save that runs out of space (file size limit) fails cleanly: old file intact, no tmp. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {8192, 8192}; /* far below the ~60 KiB checkpoint */
        setrlimit(RLIMIT_FSIZE, &rl);
        Status st = ckpt_save(p, &b.ck);
        if (getenv("CKPT_TEST_VERBOSE")) printf("size limit: %s\n", distill_error());
        fflush(stdout);
        bool named = strstr(distill_error(), p) != NULL;
        _exit(st == DISTILL_ERR && named ? 0 : 5);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a save past the size limit did not fail "
          "cleanly (status %d)", status);
    CHECK(count_entries(g_dir) == 1, "the failed save left %d files", count_entries(g_dir));
    expect_loads_as(p, &a.ck);

    /* A truncated file (half of a real one) and an incomplete one (no marker) are rejected. */
    struct stat sb;
    stat(p, &sb);
    in_dir("ckpt-30.h5", q, sizeof q);
    copy_file(p, q, sb.st_size / 2);
    load_expect_error(q, "truncated", NULL);
    in_dir("ckpt-40.h5", q, sizeof q);
    copy_file(p, q, -1);
    hid_t f = H5Fopen(q, H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0 && H5Adelete(f, "complete") >= 0, "cannot remove the marker");
    H5Fclose(f);
    load_expect_error(q, "incomplete", "complete");
    REQUIRE(ckpt_find_latest(g_dir, found, sizeof found) == DISTILL_OK, "find_latest: %s",
            distill_error());
    CHECK(strcmp(found, p) == 0, "find_latest took a broken file: %s", found);
    expect_loads_as(p, &a.ck);
    fixture_free(&a);
    fixture_free(&b);
}

/* ---- content hash */

/* Flips one bit of byte `at` of dataset `dset`'s raw data in the file (contiguous storage). */
static void flip_byte(const char *path, const char *dset, size_t at) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
    REQUIRE(d >= 0, "no dataset %s", dset);
    haddr_t off = H5Dget_offset(d);
    REQUIRE(off != HADDR_UNDEF, "dataset %s has no contiguous offset", dset);
    H5Dclose(d);
    H5Fclose(f);
    int fd = open(path, O_RDWR);
    unsigned char c;
    REQUIRE(pread(fd, &c, 1, (off_t)(off + at)) == 1, "pread");
    c ^= 0x10;
    REQUIRE(pwrite(fd, &c, 1, (off_t)(off + at)) == 1, "pwrite");
    close(fd);
}

static void case_hash(void) {
    Fixture fx;
    fixture_make(&fx, 0);
    char p[600], q[600];
    in_dir("ckpt-1.h5", p, sizeof p);
    REQUIRE(ckpt_save(p, &fx.ck) == DISTILL_OK, "save: %s", distill_error());

    const char *tensor = "/student/bert.encoder.layer.1.output.dense.weight";
    in_dir("t1.h5", q, sizeof q);
    copy_file(p, q, -1);
    flip_byte(q, tensor, 37);
    load_expect_error(q, "hash mismatch", "bert.encoder.layer.1.output.dense.weight");
    CHECK(ckpt_verify(q) == DISTILL_ERR, "verify accepted a flipped tensor byte");
    TrainCheckpoint got;
    CHECK(ckpt_load_model_only(q, device_cpu(), &got) == DISTILL_ERR, "model-only took it");
    ckpt_free(&got);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    int rc = ckpt_info_print(q, mem);
    fclose(mem);
    CHECK(rc == 1 && strstr(text, "hash         FAILED"), "info did not flag the damage:\n%s", text);
    free(text);

    /* A flipped moment: full load fails, the model alone still loads (its hash is intact). */
    in_dir("t2.h5", q, sizeof q);
    copy_file(p, q, -1);
    flip_byte(q, "/optim/v/projections/projections.hidden.0.weight", 3);
    load_expect_error(q, "hash mismatch", "/optim/v/projections/projections.hidden.0.weight");
    CHECK(ckpt_load_model_only(q, device_cpu(), &got) == DISTILL_OK, "model-only: %s",
          distill_error());
    ckpt_free(&got);

    /* Any state or config field changed after the fact (one bit of its stored value): the file
     * hashes must tell, so every field is covered. */
    static const struct { const char *obj, *attr, *hash; } fields[] = {
        {"/", "step", "sha256"}, {"/", "epoch", "sha256"}, {"/", "batch_cursor", "sha256"},
        {"/", "samples_seen", "sha256"}, {"/", "optimizer_steps", "sha256"},
        {"/", "rng_seed", "sha256"}, {"/", "rng_counter", "sha256"}, {"/", "data_seed", "sha256"},
        {"/", "best_metric", "sha256"}, {"/", "best_step", "sha256"},
        {"/", "metrics_offset", "sha256"}, {"/", "do_lower_case", "student_sha256"},
        {"/student", "hidden_dropout_prob", "student_sha256"},
        {"/student", "attention_probs_dropout_prob", "student_sha256"},
        {"/student", "classifier_dropout", "student_sha256"},
        {"/student", "initializer_range", "student_sha256"},
        {"/student", "layer_norm_eps", "student_sha256"},
        {"/student", "pad_token_id", "student_sha256"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        in_dir("t3.h5", q, sizeof q);
        copy_file(p, q, -1);
        hid_t f = H5Fopen(q, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t o = H5Oopen(f, fields[i].obj, H5P_DEFAULT);
        hid_t a = H5Aopen(o, fields[i].attr, H5P_DEFAULT);
        hid_t t = a >= 0 ? H5Aget_type(a) : -1;
        unsigned char raw[8] = {0};
        REQUIRE(t >= 0 && H5Tget_size(t) <= 8 && H5Aread(a, t, raw) >= 0, "read %s", fields[i].attr);
        raw[0] ^= 1; /* the lowest bit of a little-endian value */
        REQUIRE(H5Awrite(a, t, raw) >= 0, "rewrite %s", fields[i].attr);
        H5Tclose(t);
        H5Aclose(a);
        H5Oclose(o);
        H5Fclose(f);
        load_expect_error(q, "hash mismatch", fields[i].hash);
    }
    /* The config text and a vocabulary entry, rewritten in place. */
    const char *dsets[] = {"/config_yaml", "/vocab"};
    for (int i = 0; i < 2; i++) {
        in_dir("t3.h5", q, sizeof q);
        copy_file(p, q, -1);
        hid_t f = H5Fopen(q, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t d = H5Dopen2(f, dsets[i], H5P_DEFAULT), t = H5Dget_type(d);
        hid_t sp = H5Dget_space(d);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        char **v = calloc((size_t)n, sizeof *v);
        REQUIRE(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0, "read %s", dsets[i]);
        char *old = v[n - 1];
        v[n - 1] = "tampered";
        REQUIRE(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0, "rewrite %s", dsets[i]);
        v[n - 1] = old;
        H5Dvlen_reclaim(t, sp, H5P_DEFAULT, v);
        free(v);
        H5Sclose(sp);
        H5Tclose(t);
        H5Dclose(d);
        H5Fclose(f);
        load_expect_error(q, "hash mismatch", i == 0 ? "sha256" : "student_sha256");
    }

    /* A tensor changed together with its own digest: the student hash still tells. */
    in_dir("t4.h5", q, sizeof q);
    copy_file(p, q, -1);
    hid_t f = H5Fopen(q, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/student/classifier.bias", H5P_DEFAULT);
    float bias[3] = {1, 2, 3};
    REQUIRE(d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, bias) >= 0,
            "rewrite classifier.bias");
    /* Forge its per-tensor digest to match the new bytes (little-endian f32, SHA-256). */
    unsigned char md[32];
    unsigned mdlen = 0;
    REQUIRE(EVP_Digest(bias, sizeof bias, md, &mdlen, EVP_sha256(), NULL) == 1, "EVP_Digest");
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    const char *hexp = hex;
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    hid_t an = H5Aopen(d, "sha256", H5P_DEFAULT);
    REQUIRE(an >= 0 && H5Awrite(an, st, &hexp) >= 0, "write forged digest");
    H5Aclose(an);
    H5Tclose(st);
    H5Dclose(d);
    H5Fclose(f);
    load_expect_error(q, "hash mismatch", "student_sha256");
    CHECK(ckpt_load_model_only(q, device_cpu(), &got) == DISTILL_ERR, "model-only took a forged tensor");
    ckpt_free(&got);

    expect_loads_as(p, &fx.ck); /* the original was never touched */
    fixture_free(&fx);
}

/* ---- rotate */

static void touch(const char *name) {
    char p[600];
    FILE *f = fopen(in_dir(name, p, sizeof p), "w");
    REQUIRE(f, "create %s", p);
    fputs("x", f);
    fclose(f);
}

static void case_rotate(void) {
    const char *ckpts[] = {"ckpt-1.h5", "ckpt-2.h5", "ckpt-3.h5", "ckpt-10.h5", "ckpt-11.h5"};
    const char *others[] = {"best.h5", "ckpt-abc.h5", "ckpt-5.h5.bak", "notes.txt", "ckpt-.h5",
                            "xckpt-4.h5"};
    for (size_t i = 0; i < 5; i++) touch(ckpts[i]);
    for (size_t i = 0; i < 6; i++) touch(others[i]);
    /* A leftover of a writer that no longer exists, and one of a live writer (ourselves). */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char stale[64], stale_old[64], stale_dir[64], live[64], p[600];
    snprintf(stale, sizeof stale, "ckpt-12.h5.tmp-%ld-0", (long)dead);
    snprintf(stale_old, sizeof stale_old, "ckpt-14.h5.tmp-%ld", (long)dead); /* older builds' name */
    snprintf(stale_dir, sizeof stale_dir, "best.tmp-%ld-3", (long)dead); /* a dead export's folder */
    snprintf(live, sizeof live, "ckpt-13.h5.tmp-%ld-1", (long)getpid());
    touch(stale);
    touch(stale_old);
    touch(live);
    REQUIRE(mkdir(in_dir(stale_dir, p, sizeof p), 0777) == 0, "mkdir %s", p);
    snprintf(p + strlen(p), sizeof p - strlen(p), "/config.json");
    FILE *f = fopen(p, "w");
    REQUIRE(f, "create %s", p);
    fclose(f);

    REQUIRE(ckpt_rotate(g_dir, 0) == DISTILL_OK, "rotate 0: %s", distill_error());
    for (size_t i = 0; i < 5; i++) CHECK(exists(in_dir(ckpts[i], p, sizeof p)), "keep 0 deleted %s", p);
    CHECK(!exists(in_dir(stale, p, sizeof p)), "stale temporary file kept");
    CHECK(!exists(in_dir(stale_old, p, sizeof p)), "stale temporary file (older name) kept");
    CHECK(!exists(in_dir(stale_dir, p, sizeof p)), "stale temporary folder kept");
    CHECK(exists(in_dir(live, p, sizeof p)), "a live writer's temporary file was deleted");

    REQUIRE(ckpt_rotate(g_dir, 2) == DISTILL_OK, "rotate 2: %s", distill_error());
    for (size_t i = 0; i < 5; i++)
        CHECK(exists(in_dir(ckpts[i], p, sizeof p)) == (i >= 3), "keep 2: %s %s", ckpts[i],
              i >= 3 ? "deleted" : "kept");
    for (size_t i = 0; i < 6; i++) CHECK(exists(in_dir(others[i], p, sizeof p)), "deleted %s", p);
    REQUIRE(ckpt_rotate(g_dir, 1) == DISTILL_OK, "rotate 1: %s", distill_error());
    CHECK(exists(in_dir("ckpt-11.h5", p, sizeof p)) && !exists(in_dir("ckpt-10.h5", p, sizeof p)),
          "keep 1 did not keep only the newest step (11, numerically above 10)");
    CHECK(exists(in_dir("best.h5", p, sizeof p)), "best.h5 deleted");
    CHECK(ckpt_rotate(in_dir("no-such-dir", p, sizeof p), 2) == DISTILL_ERR &&
          strstr(distill_error(), "no-such-dir"), "rotate of a missing directory: %s",
          distill_error());
    CHECK(strcmp(ckpt_step_path("runs/x", 500, p, sizeof p), "runs/x/ckpt-500.h5") == 0,
          "ckpt_step_path gave %s", p);
}

/* ---- find_latest */

static void case_latest(void) {
    Fixture fx;
    fixture_make(&fx, 0);
    char p[600], found[700];
    REQUIRE(ckpt_find_latest(g_dir, found, sizeof found) == DISTILL_ERR &&
            strstr(distill_error(), "none"), "empty directory: %s", distill_error());
    int64_t steps[] = {5, 7, 12};
    for (int i = 0; i < 3; i++) {
        fx.ck.step = steps[i];
        REQUIRE(ckpt_save(ckpt_step_path(g_dir, steps[i], p, sizeof p), &fx.ck) == DISTILL_OK,
                "save %s: %s", p, distill_error());
    }
    flip_byte(ckpt_step_path(g_dir, 12, p, sizeof p), "/student/bert.embeddings.word_embeddings.weight", 100);
    /* A truncated newer one too. */
    char q[600];
    copy_file(ckpt_step_path(g_dir, 7, p, sizeof p), ckpt_step_path(g_dir, 20, q, sizeof q), 3000);

    /* Capture the warnings. */
    char errpath[600];
    in_dir("stderr.txt", errpath, sizeof errpath);
    fflush(stderr);
    int saved = dup(2), fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    Status st = ckpt_find_latest(g_dir, found, sizeof found);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    REQUIRE(st == DISTILL_OK, "find_latest: %s", distill_error());
    CHECK(strcmp(found, ckpt_step_path(g_dir, 7, p, sizeof p)) == 0, "found %s, expected %s", found, p);
    TrainCheckpoint got;
    REQUIRE(ckpt_load(found, device_cpu(), &got) == DISTILL_OK, "load: %s", distill_error());
    CHECK(got.step == 7, "loaded step %lld", (long long)got.step);
    ckpt_free(&got);
    FILE *f = fopen(errpath, "r");
    char log[8192] = {0};
    size_t n = fread(log, 1, sizeof log - 1, f);
    log[n] = 0;
    fclose(f);
    unlink(errpath);
    CHECK(strstr(log, "warning") && strstr(log, "ckpt-12.h5") && strstr(log, "ckpt-20.h5") &&
          strstr(log, "hash mismatch"), "warnings do not name both broken files:\n%s", log);
    /* Too small a buffer is an error, not a truncated path. */
    CHECK(ckpt_find_latest(g_dir, found, 8) == DISTILL_ERR, "8-byte buffer accepted");

    /* Only broken ones left. */
    unlink(ckpt_step_path(g_dir, 5, p, sizeof p));
    unlink(ckpt_step_path(g_dir, 7, p, sizeof p));
    fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    saved = dup(2);
    dup2(fd, 2);
    close(fd);
    st = ckpt_find_latest(g_dir, found, sizeof found);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CHECK(st == DISTILL_ERR && strstr(distill_error(), "only broken"), "all broken: %s",
          distill_error());
    fixture_free(&fx);
}

/* ---- unwritable directories */

static void save_must_fail(const TrainCheckpoint *ck, const char *path, const char *reason) {
    Status st = ckpt_save(path, ck);
    CHECK(st == DISTILL_ERR, "save into %s succeeded", path);
    if (st == DISTILL_ERR) {
        if (getenv("CKPT_TEST_VERBOSE")) printf("refused as expected: %s\n", distill_error());
        CHECK(strstr(distill_error(), path) && strstr(distill_error(), reason),
              "error should name %s and say '%s': %s", path, reason, distill_error());
    }
}

static void case_unwritable(void) {
    Fixture fx;
    fixture_make(&fx, 0);
    char p[700], ro[600];
    snprintf(p, sizeof p, "%s/no-such-dir/ckpt-1.h5", g_dir);
    save_must_fail(&fx.ck, p, strerror(ENOENT));
    touch("a-file");
    snprintf(p, sizeof p, "%s/a-file/ckpt-1.h5", g_dir);
    save_must_fail(&fx.ck, p, strerror(ENOTDIR));
    CHECK(count_entries(g_dir) == 1, "failed saves left files behind");

    /* A read-only directory. Root ignores permission bits, so as root the save runs in a child
     * that drops to an unprivileged user first. */
    in_dir("readonly", ro, sizeof ro);
    REQUIRE(mkdir(ro, 0755) == 0, "mkdir");
    REQUIRE(chmod(g_dir, 0755) == 0 && chmod(ro, 0555) == 0, "chmod");
    snprintf(p, sizeof p, "%s/ckpt-1.h5", ro);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(77);
        int before = g_failures;
        save_must_fail(&fx.ck, p, strerror(EACCES));
        fflush(stdout);
        _exit(g_failures == before ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        fprintf(stderr, "note: could not drop root privileges; permission case not run\n");
    else
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "read-only directory case failed");
    CHECK(count_entries(ro) == 0, "a failed save wrote into the read-only directory");
    fixture_free(&fx);
}

/* ---- a CUDA-resident student: save reads through the backend, load writes through it */

static void case_device(void) {
    if (!backend_cuda_available()) {
        /* DISTILL_EXPECT_GPU=1 (scripts/gpu_check.sh): a missing GPU is a failure, not a skip */
        const char *expect = getenv("DISTILL_EXPECT_GPU");
        bool must = expect && strcmp(expect, "1") == 0;
        printf("ckpt device: %s (no CUDA device%s)\n", must ? "FAIL" : "skipped",
               must ? ", and DISTILL_EXPECT_GPU=1 expects one" : "");
        cleanup_tmpdir();
        exit(must ? 1 : 77); /* 77: CTest SKIP_RETURN_CODE */
    }
    Device cuda = {DEV_CUDA, 0};
    const Backend *be = backend_cuda();
    REQUIRE(be->init(0) == DISTILL_OK, "cuda init: %s", distill_error());
    Fixture fx;
    fixture_make(&fx, 0);
    /* The same state on the GPU: student, projections and moments copied over. */
    TrainCheckpoint gpu = fx.ck;
    gpu.student = bert_build(&fx.ck.student->cfg, cuda);
    gpu.projections = params_new(cuda);
    for (int i = 0; i < fx.ck.projections->n; i++) {
        const Tensor *t = fx.ck.projections->tensors[i];
        params_add(gpu.projections, t->name, t->ndim, t->shape, fx.ck.projections->no_decay[i]);
    }
    params_finalize(gpu.projections);
    size_t bs = gpu.student->params->total * sizeof(float), bp = gpu.projections->total * sizeof(float);
    gpu.m_student = be->alloc(bs); gpu.v_student = be->alloc(bs);
    gpu.m_proj = be->alloc(bp); gpu.v_proj = be->alloc(bp);
    REQUIRE(ckpt_copy_store(gpu.student->params, gpu.m_student, gpu.v_student,
                            fx.ck.student->params, fx.ms, fx.vs) == DISTILL_OK, "to gpu: %s",
            distill_error());
    REQUIRE(ckpt_copy_store(gpu.projections, gpu.m_proj, gpu.v_proj, fx.ck.projections, fx.mp,
                            fx.vp) == DISTILL_OK, "to gpu: %s", distill_error());
    char p[600];
    in_dir("ckpt-1.h5", p, sizeof p);
    REQUIRE(ckpt_save(p, &gpu) == DISTILL_OK, "save from gpu: %s", distill_error());
    expect_loads_as(p, &fx.ck); /* on the CPU: the bytes the CPU state would have written */
    TrainCheckpoint got;
    REQUIRE(ckpt_load(p, cuda, &got) == DISTILL_OK, "load onto gpu: %s", distill_error());
    /* Back to the host for an exact comparison. */
    Bert *back = tiny_bert(9);
    ParamStore *bproj = tiny_projections(9);
    float *m = malloc(bs), *v = malloc(bs), *mp = malloc(bp), *vp = malloc(bp);
    REQUIRE(ckpt_copy_store(back->params, m, v, got.student->params, got.m_student, got.v_student) ==
            DISTILL_OK, "from gpu: %s", distill_error());
    REQUIRE(ckpt_copy_store(bproj, mp, vp, got.projections, got.m_proj, got.v_proj) == DISTILL_OK,
            "from gpu: %s", distill_error());
    compare_store("gpu student", fx.ck.student->params, back->params, fx.ms, m, fx.vs, v);
    compare_store("gpu projections", fx.ck.projections, bproj, fx.mp, mp, fx.vp, vp);
    free(m); free(v); free(mp); free(vp);
    bert_free(back);
    params_free(bproj);
    ckpt_free(&got);
    be->free(gpu.m_student); be->free(gpu.v_student); be->free(gpu.m_proj); be->free(gpu.v_proj);
    bert_free(gpu.student);
    params_free(gpu.projections);
    fixture_free(&fx);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s roundtrip|crash|hash|rotate|latest|unwritable|device\n", argv[0]);
        return 2;
    }
    if (!getenv("CKPT_TEST_H5ERR")) H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the test's own HDF5 calls are checked by value */
    make_tmpdir("ckpt");
    const char *c = argv[1];
    if (!strcmp(c, "roundtrip")) case_roundtrip();
    else if (!strcmp(c, "crash")) case_crash();
    else if (!strcmp(c, "hash")) case_hash();
    else if (!strcmp(c, "rotate")) case_rotate();
    else if (!strcmp(c, "latest")) case_latest();
    else if (!strcmp(c, "unwritable")) case_unwritable();
    else if (!strcmp(c, "device")) case_device();
    else {
        fprintf(stderr, "unknown case %s\n", c);
        cleanup_tmpdir();
        return 2;
    }
    cleanup_tmpdir();
    if (g_failures) {
        fprintf(stderr, "%d check(s) failed\n", g_failures);
        return 1;
    }
    printf("ckpt %s: ok\n", c);
    return 0;
}
