/*
 * test_loader.c — the batch loader and the prepared-file reader (data/loader.h, data/dataset.h).
 *
 * Builds a small prepared file with prepare_run from a generated TSV and a toy vocabulary (no
 * shared data needed), then checks: every epoch visits each row once; epochs differ and a seed
 * repeats its order; the ranks' shards are disjoint and cover the epoch; R ranks at batch B take
 * the rows of one rank at batch R*B; steps per epoch agree across ranks (drop_last or not);
 * padding is to the batch's longest row with zeros; labels and the optional /teacher_logits
 * follow their rows; resuming from a cursor gives the same batches. Then malformed files (missing datasets and attributes, wrong shapes, ids outside the
 * vocabulary, bad lengths, not HDF5) are rejected with a message naming the problem, and
 * data_info_print reports the rows and label counts.
 */
#define _POSIX_C_SOURCE 200809L
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/prepare.h"

#include "test_check.h"

static char dir[256];
enum { NROWS = 103, NCLASS = 3 }; /* 103: prime, so no batch size divides it */

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static void make_inputs(char *vocab, char *tsv) {
    path_in(vocab, 512, "vocab.txt");
    path_in(tsv, 512, "rows.tsv");
    FILE *f = fopen(vocab, "w");
    fprintf(f, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for (int i = 0; i < 40; i++) fprintf(f, "w%d\n", i);
    fclose(f);
    f = fopen(tsv, "w");
    fprintf(f, "sentence\tlabel\n");
    for (int i = 0; i < NROWS; i++) {
        int words = (i * 7) % 23; /* 0..22 words: rows of 2..24 tokens, some truncated at 20 */
        for (int w = 0; w < words; w++) fprintf(f, "%sw%d", w ? " " : "", (i + w) % 40);
        fprintf(f, "\t%d\n", i % NCLASS);
    }
    fclose(f);
}

/* DESIGN §5's optional /teacher_logits [N, C]: row r, class c holds 10 r + c. */
static void add_teacher_logits(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    float v[NROWS][NCLASS];
    for (int r = 0; r < NROWS; r++)
        for (int c = 0; c < NCLASS; c++) v[r][c] = (float)(10 * r + c);
    hsize_t dims[2] = {NROWS, NCLASS};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(f, "teacher_logits", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

/* Rows, labels, logits and ids of b; with one rank the batch is padded to its own longest row
 * (several ranks: the step's longest, checked by the caller). */
static void check_batch_contents(const Dataset *ds, const Batch *b, bool one_rank) {
    int T = 0;
    for (int i = 0; i < b->rows; i++) T = ds->lengths[b->row_index[i]] > T ? ds->lengths[b->row_index[i]] : T;
    if (one_rank) CHECK(b->seq == T, "batch padded to %d, longest row %d", b->seq, T);
    else CHECK(b->seq >= T, "batch padded to %d, shorter than its longest row %d", b->seq, T);
    for (int i = 0; i < b->rows; i++) {
        int64_t r = b->row_index[i];
        CHECK(b->lengths[i] == ds->lengths[r], "length");
        CHECK(b->labels && b->labels[i] == ds->labels[r], "label of row %lld", (long long)r);
        CHECK(b->teacher_logits && b->teacher_classes == NCLASS &&
                  b->teacher_logits[i * NCLASS + 2] == (float)(10 * r + 2),
              "teacher logits of row %lld", (long long)r);
        for (int j = 0; j < b->seq; j++) {
            int32_t want = j < ds->lengths[r] ? ds->ids[ds->offsets[r] + j] : 0;
            int32_t wt = j < ds->lengths[r] ? ds->types[ds->offsets[r] + j] : 0;
            if (b->input_ids[i * b->seq + j] != want || b->token_type_ids[i * b->seq + j] != wt) {
                CHECK(0, "row %lld position %d: id %d type %d, want %d %d", (long long)r, j,
                      b->input_ids[i * b->seq + j], b->token_type_ids[i * b->seq + j], want, wt);
                return;
            }
        }
    }
}

static void test_loader(const Dataset *ds) {
    const int64_t N = ds->rows;
    int *seen = xcalloc((size_t)N, sizeof(int));
    /* one rank: each row once per epoch, epochs differ, the seed repeats */
    LoaderOptions o = {.batch_size = 8, .rank = 0, .world = 1, .seed = 42, .shuffle = true, .drop_last = false};
    Loader *a, *b;
    CHECK(loader_new(&a, ds, &o) == DISTILL_OK, "%s", distill_error());
    CHECK(loader_steps_per_epoch(a) == (N + 7) / 8, "steps %lld", (long long)loader_steps_per_epoch(a));
    int64_t *order0 = xmalloc((size_t)N * sizeof(int64_t)), *order1 = xmalloc((size_t)N * sizeof(int64_t));
    for (int e = 0; e < 3; e++) {
        memset(seen, 0, (size_t)N * sizeof(int));
        int64_t k = 0;
        for (int64_t s = 0; s < loader_steps_per_epoch(a); s++) {
            Batch bt;
            loader_next(a, &bt);
            check_batch_contents(ds, &bt, true);
            CHECK(bt.last_in_epoch == (s == loader_steps_per_epoch(a) - 1), "last_in_epoch");
            CHECK(bt.global_rows == bt.rows, "global rows on one rank");
            for (int i = 0; i < bt.rows; i++) {
                seen[bt.row_index[i]]++;
                if (e == 0) order0[k] = bt.row_index[i];
                if (e == 1) order1[k] = bt.row_index[i];
                k++;
            }
        }
        CHECK(k == N, "epoch %d saw %lld rows", e, (long long)k);
        for (int64_t i = 0; i < N; i++) CHECK(seen[i] == 1, "epoch %d: row %lld seen %d times", e, (long long)i, seen[i]);
    }
    CHECK(memcmp(order0, order1, (size_t)N * sizeof(int64_t)) != 0, "epochs 0 and 1 have the same order");
    CHECK(loader_new(&b, ds, &o) == DISTILL_OK, "%s", distill_error());
    int64_t k = 0;
    for (int64_t s = 0; s < loader_steps_per_epoch(b); s++) {
        Batch bt;
        loader_next(b, &bt);
        for (int i = 0; i < bt.rows; i++, k++) CHECK(bt.row_index[i] == order0[k], "seed 42 repeats");
    }
    loader_free(b);
    o.seed = 43;
    CHECK(loader_new(&b, ds, &o) == DISTILL_OK, "%s", distill_error());
    bool differs = false;
    k = 0;
    for (int64_t s = 0; s < loader_steps_per_epoch(b); s++) {
        Batch bt;
        loader_next(b, &bt);
        for (int i = 0; i < bt.rows; i++) differs |= bt.row_index[i] != order0[k++];
    }
    CHECK(differs, "seeds 42 and 43 give the same order");
    loader_free(b);
    loader_free(a);

    /* no shuffle: file order */
    o.shuffle = false;
    CHECK(loader_new(&a, ds, &o) == DISTILL_OK, "%s", distill_error());
    Batch bt;
    loader_next(a, &bt);
    for (int i = 0; i < bt.rows; i++) CHECK(bt.row_index[i] == i, "unshuffled order");
    loader_free(a);
    o.shuffle = true;

    /* ranks: disjoint shards covering the epoch; R ranks at B = one rank at R*B; equal step counts */
    for (int drop = 0; drop <= 1; drop++)
        for (int R = 1; R <= 4; R++) {
            const int B = 5;
            Loader *ranks[4], *whole;
            LoaderOptions ow = o;
            ow.batch_size = B * R, ow.drop_last = drop;
            CHECK(loader_new(&whole, ds, &ow) == DISTILL_OK, "%s", distill_error());
            for (int r = 0; r < R; r++) {
                LoaderOptions orr = o;
                orr.batch_size = B, orr.rank = r, orr.world = R, orr.drop_last = drop;
                CHECK(loader_new(&ranks[r], ds, &orr) == DISTILL_OK, "%s", distill_error());
                CHECK(loader_steps_per_epoch(ranks[r]) == loader_steps_per_epoch(ranks[0]), "steps differ by rank");
            }
            int64_t steps = loader_steps_per_epoch(ranks[0]);
            int64_t want_steps = drop ? (N / B) / R : ((N + B - 1) / B + R - 1) / R;
            CHECK(steps == want_steps, "R=%d drop=%d: %lld steps, want %lld", R, drop, (long long)steps,
                  (long long)want_steps);
            for (int e = 0; e < 2; e++) {
                memset(seen, 0, (size_t)N * sizeof(int));
                int64_t total = 0;
                for (int64_t s = 0; s < steps; s++) {
                    Batch w;
                    int64_t cat[64];
                    int nc = 0, grows = -1, seq = -1, longest = 0, row0 = 0;
                    for (int r = 0; r < R; r++) {
                        Batch rb;
                        loader_next(ranks[r], &rb);
                        check_batch_contents(ds, &rb, R == 1);
                        /* every rank pads to the step's longest row, and knows where its share starts */
                        if (seq >= 0) CHECK(rb.seq == seq, "R=%d: ranks padded to %d and %d in one step", R, seq, rb.seq);
                        seq = rb.seq;
                        for (int i = 0; i < rb.rows; i++)
                            if (ds->lengths[rb.row_index[i]] > longest) longest = ds->lengths[rb.row_index[i]];
                        if (rb.rows) CHECK(rb.global_row0 == row0, "rank %d: global_row0 %d, want %d", r, rb.global_row0, row0);
                        row0 += rb.rows;
                        CHECK(!drop || rb.rows == B, "drop_last gave a batch of %d rows", rb.rows);
                        if (grows >= 0) CHECK(rb.global_rows == grows, "global_rows differ by rank");
                        grows = rb.global_rows;
                        for (int i = 0; i < rb.rows; i++) seen[rb.row_index[i]]++, cat[nc++] = rb.row_index[i];
                        total += rb.rows;
                    }
                    CHECK(grows == nc, "global_rows %d, rows over ranks %d", grows, nc);
                    CHECK(seq == longest, "R=%d step %lld: padded to %d, the step's longest row is %d", R, (long long)s,
                          seq, longest);
                    if (s < loader_steps_per_epoch(whole)) {
                        loader_next(whole, &w);
                        CHECK(w.rows == nc, "step %lld: %d rows on one rank, %d over %d ranks", (long long)s, w.rows, nc, R);
                        for (int i = 0; i < nc && i < w.rows; i++)
                            CHECK(cat[i] == w.row_index[i], "R=%d step %lld: rank rows differ from one rank's", R,
                                  (long long)s);
                    }
                }
                int64_t used = drop ? steps * R * B : N;
                CHECK(total == used, "R=%d drop=%d epoch %d: %lld rows, want %lld", R, drop, e, (long long)total,
                      (long long)used);
                for (int64_t i = 0; i < N; i++)
                    CHECK(seen[i] <= 1 && (drop || seen[i] == 1), "R=%d row %lld seen %d times", R, (long long)i,
                          seen[i]);
            }
            for (int r = 0; r < R; r++) loader_free(ranks[r]);
            loader_free(whole);
        }

    /* resume: a fresh loader seeked to a saved cursor gives the same batches */
    o.batch_size = 6, o.rank = 1, o.world = 2, o.drop_last = false;
    CHECK(loader_new(&a, ds, &o) == DISTILL_OK, "%s", distill_error());
    int64_t steps = loader_steps_per_epoch(a);
    for (int64_t s = 0; s < steps + 3; s++) loader_next(a, &bt); /* into epoch 1, step 3 */
    LoaderCursor cur = loader_cursor(a);
    CHECK(cur.epoch == 1 && cur.step == 3, "cursor (%lld, %lld)", (long long)cur.epoch, (long long)cur.step);
    CHECK(loader_new(&b, ds, &o) == DISTILL_OK, "%s", distill_error());
    CHECK(loader_seek(b, cur) == DISTILL_OK, "%s", distill_error());
    for (int s = 0; s < 2 * steps; s++) {
        Batch x, y;
        loader_next(a, &x);
        loader_next(b, &y);
        bool same = x.rows == y.rows && x.seq == y.seq && x.cursor.epoch == y.cursor.epoch &&
                    x.cursor.step == y.cursor.step &&
                    !memcmp(x.input_ids, y.input_ids, (size_t)x.rows * (size_t)x.seq * sizeof(int32_t)) &&
                    !memcmp(x.row_index, y.row_index, (size_t)x.rows * sizeof(int64_t));
        CHECK(same, "resumed batch %d differs", s);
    }
    LoaderCursor bad = {0, steps};
    CHECK(loader_seek(b, bad) == DISTILL_ERR, "seek past the epoch accepted");
    loader_free(a);
    loader_free(b);

    /* bad options */
    o.rank = 2, o.world = 2;
    CHECK(loader_new(&a, ds, &o) == DISTILL_ERR, "rank 2 of 2 accepted");
    o.rank = 0, o.world = 1, o.batch_size = 200, o.drop_last = true;
    CHECK(loader_new(&a, ds, &o) == DISTILL_ERR, "a batch larger than the data accepted with drop_last");
    free(seen);
    free(order0);
    free(order1);
}

/* ------------------------------------------------------------------ malformed files */

typedef enum { OMIT_NONE, OMIT_IDS, OMIT_ATTR, WRONG_SHAPE, BAD_ID, BAD_LENGTH, FLOAT_IDS } Damage;

static void write_damaged(const char *path, Damage dmg) {
    const int N = 4, S = 6, V = 10;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int32_t ids[4][6] = {{2, 5, 3}, {2, 6, 7, 3}, {2, 3}, {2, 8, 9, 5, 3}};
    uint8_t types[4][6] = {{0}};
    int32_t lengths[4] = {3, 4, 2, 5}, labels[4] = {0, 1, 1, 0};
    if (dmg == BAD_ID) ids[1][2] = V + 5;
    if (dmg == BAD_LENGTH) lengths[2] = S + 1;
    hsize_t d2[2] = {(hsize_t)N, (hsize_t)(dmg == WRONG_SHAPE ? S - 1 : S)}, d1[1] = {(hsize_t)N};
    hid_t s2 = H5Screate_simple(2, d2, NULL), s1 = H5Screate_simple(1, d1, NULL);
    if (dmg != OMIT_IDS) {
        hid_t d = H5Dcreate2(f, "input_ids", dmg == FLOAT_IDS ? H5T_IEEE_F32LE : H5T_STD_I32LE, s2, H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT);
        if (dmg != WRONG_SHAPE && dmg != FLOAT_IDS) H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids);
        H5Dclose(d);
    }
    hid_t d = H5Dcreate2(f, "token_type_ids", H5T_STD_U8LE, s2, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (dmg != WRONG_SHAPE) H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, types);
    H5Dclose(d);
    d = H5Dcreate2(f, "lengths", H5T_STD_I32LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lengths);
    H5Dclose(d);
    d = H5Dcreate2(f, "labels", H5T_STD_I32LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels);
    H5Dclose(d);
    hid_t sc = H5Screate(H5S_SCALAR);
    int32_t v = S;
    hid_t a = H5Acreate2(f, "max_seq", H5T_STD_I32LE, sc, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT32, &v);
    H5Aclose(a);
    if (dmg != OMIT_ATTR) {
        v = V;
        a = H5Acreate2(f, "vocab_size", H5T_STD_I32LE, sc, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT32, &v);
        H5Aclose(a);
    }
    v = 1;
    a = H5Acreate2(f, "do_lower_case", H5T_STD_I32LE, sc, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT32, &v);
    H5Aclose(a);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 64);
    a = H5Acreate2(f, "vocab_sha256", st, sc, H5P_DEFAULT, H5P_DEFAULT);
    char hash[65];
    memset(hash, 'a', 64);
    hash[64] = 0;
    H5Awrite(a, st, hash);
    H5Aclose(a);
    H5Tclose(st);
    H5Sclose(sc);
    H5Sclose(s1);
    H5Sclose(s2);
    H5Fclose(f);
}

static void expect_rejected(const char *path, const char *needle, const char *what) {
    Dataset *ds = NULL;
    Status s = dataset_open(&ds, path, true);
    CHECK(s == DISTILL_ERR, "%s: accepted", what);
    if (s == DISTILL_ERR) {
        CHECK(strstr(distill_error(), needle) != NULL, "%s: message '%s' does not mention '%s'", what, distill_error(),
              needle);
        CHECK(strstr(distill_error(), path) != NULL, "%s: message '%s' does not name the file", what, distill_error());
    }
    dataset_free(ds);
}

static void test_malformed(void) {
    char p[512];
    path_in(p, sizeof p, "damaged.h5");
    write_damaged(p, OMIT_NONE);
    Dataset *ds;
    CHECK(dataset_open(&ds, p, true) == DISTILL_OK, "a sound hand-made file is rejected: %s", distill_error());
    if (ds) CHECK(ds->rows == 4 && ds->ids[ds->offsets[3] + 3] == 5, "hand-made file read wrongly");
    dataset_free(ds);
    write_damaged(p, OMIT_IDS);
    expect_rejected(p, "/input_ids is missing", "missing /input_ids");
    write_damaged(p, OMIT_ATTR);
    expect_rejected(p, "vocab_size", "missing vocab_size attribute");
    write_damaged(p, WRONG_SHAPE);
    expect_rejected(p, "expected integer [4, 6], found integer [4, 5]", "wrong shape");
    write_damaged(p, FLOAT_IDS);
    expect_rejected(p, "expected integer [4, 6], found float [4, 6]", "float ids");
    write_damaged(p, BAD_ID);
    expect_rejected(p, "outside the vocabulary", "id out of range");
    write_damaged(p, BAD_LENGTH);
    expect_rejected(p, "/lengths[2] = 7", "length over max_seq");
    path_in(p, sizeof p, "not_hdf5.h5");
    FILE *f = fopen(p, "w");
    fprintf(f, "this is not HDF5\n");
    fclose(f);
    expect_rejected(p, "not an HDF5 file", "a text file");
    path_in(p, sizeof p, "absent.h5");
    expect_rejected(p, "cannot open", "a missing file");
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/distill_test_loader_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char vocab[512], tsv[512], h5[512];
    make_inputs(vocab, tsv);
    path_in(h5, sizeof h5, "rows.h5");
    PrepareOptions po = prepare_default_options();
    po.vocab_path = vocab, po.input_path = tsv, po.output_path = h5, po.max_seq = 20, po.progress = false;
    PrepareStats ps;
    CHECK(prepare_run(&po, &ps) == DISTILL_OK, "prepare: %s", distill_error());
    CHECK(ps.rows == NROWS && ps.num_labels == NCLASS && ps.truncated > 0, "prepare stats: %ld rows %d labels %ld cut",
          ps.rows, ps.num_labels, ps.truncated);
    add_teacher_logits(h5);
    Dataset *ds = NULL;
    CHECK(dataset_open(&ds, h5, true) == DISTILL_OK, "open: %s", distill_error());
    if (ds) {
        CHECK(ds->rows == NROWS && ds->max_seq == 20 && ds->num_labels == NCLASS, "dataset header");
        char **vocab_tokens;
        int nv;
        CHECK(dataset_read_vocab(h5, &vocab_tokens, &nv) == DISTILL_OK && nv == 45 && !strcmp(vocab_tokens[44], "w39"),
              "vocab read back");
        for (int i = 0; i < nv; i++) free(vocab_tokens[i]);
        free(vocab_tokens);
        test_loader(ds);
        /* info: rows and per-class counts (103 rows, labels i % 3: 35, 34, 34) */
        char info[512];
        path_in(info, sizeof info, "info.txt");
        FILE *f = fopen(info, "w+");
        CHECK(data_info_print(h5, f) == 0, "info failed");
        rewind(f);
        char text[4096] = "";
        size_t got = fread(text, 1, sizeof text - 1, f);
        text[got] = '\0';
        fclose(f);
        CHECK(strstr(text, "rows:          103") && strstr(text, "0: 35 (") && strstr(text, "2: 34 (") &&
                  strstr(text, "max_seq:       20"),
              "info output:\n%s", text);
        dataset_free(ds);
    }
    test_malformed();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    if (g_failures) {
        fprintf(stderr, "%d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_loader: all checks passed\n");
    return 0;
}
