/*
 * ckpt_info.c — describing a checkpoint for `distill info` and telling checkpoints from other
 * HDF5 files (see ckpt.h).
 *
 * Promise: ckpt_info_print reads attributes and dataset shapes first (cheap, so a damaged file
 * still shows what it can), then runs the full verification and reports its verdict last.
 */
#define _POSIX_C_SOURCE 200809L
#include "ckpt_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool ckpt_is_checkpoint(const char *path) {
    H5Quiet q;
    h5_quiet_begin(&q);
    hid_t f;
    bool yes = ckpt_open_read(path, &f) == DISTILL_OK;
    if (yes) H5Fclose(f);
    h5_quiet_end(&q);
    return yes;
}


/* Elements of dataset `dpath`, or -1 when absent or unreadable. */
static long long dset_elems(hid_t f, const char *dpath) {
    if (H5Lexists(f, dpath, H5P_DEFAULT) <= 0) return -1;
    hid_t d = H5Dopen2(f, dpath, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    long long n = (long long)H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    H5Dclose(d);
    return n;
}

static bool group_exists(hid_t f, const char *a, const char *b) {
    return H5Lexists(f, a, H5P_DEFAULT) > 0 && (!b || H5Lexists(f, b, H5P_DEFAULT) > 0);
}

/* Parameter counts of /student grouped as Hugging Face's modules. */
static void print_student_counts(FILE *out, hid_t f, const char *path) {
    static const char *const groups[][2] = {
        {"embeddings", "bert.embeddings."}, {"encoder", "bert.encoder."},
        {"pooler", "bert.pooler."},         {"classifier", "classifier."},
    };
    enum { NG = sizeof groups / sizeof groups[0] };
    unsigned long long count[NG + 1] = {0}, total = 0;
    hid_t g = H5Gopen2(f, "/student", H5P_DEFAULT);
    char **names = NULL;
    int n = 0;
    if (g < 0 || h5a_get_strs(path, g, "/student", "names", &names, &n) != DISTILL_OK) {
        fprintf(out, "parameters   (unreadable: no tensor list in /student)\n");
        if (g >= 0) H5Gclose(g);
        return;
    }
    int missing = 0;
    for (int i = 0; i < n; i++) {
        char dpath[1024];
        snprintf(dpath, sizeof dpath, "/student/%s", names[i]);
        long long e = dset_elems(f, dpath);
        if (e < 0) {
            missing++;
            continue;
        }
        int k = 0;
        while (k < NG && strncmp(names[i], groups[k][1], strlen(groups[k][1])) != 0) k++;
        count[k] += (unsigned long long)e;
        total += (unsigned long long)e;
    }
    char b[32];
    fprintf(out, "parameters   student %s in %d tensors (", fmt_count(total, b, sizeof b), n);
    bool first = true;
    for (int k = 0; k <= NG; k++) {
        if (!count[k]) continue;
        fprintf(out, "%s%s %s", first ? "" : ", ", k < NG ? groups[k][0] : "other",
                fmt_count(count[k], b, sizeof b));
        first = false;
    }
    fprintf(out, ")%s\n", missing ? ", SOME TENSORS MISSING" : "");
    h5_strs_free(names, n);
    H5Gclose(g);
}

static void print_projection_counts(FILE *out, hid_t f, const char *path) {
    if (H5Lexists(f, "/projections", H5P_DEFAULT) <= 0) {
        fprintf(out, "projections  none\n");
        return;
    }
    hid_t g = H5Gopen2(f, "/projections", H5P_DEFAULT);
    char **names = NULL;
    int n = 0;
    if (g < 0 || h5a_get_strs(path, g, "/projections", "names", &names, &n) != DISTILL_OK) {
        fprintf(out, "projections  (unreadable: no tensor list)\n");
        if (g >= 0) H5Gclose(g);
        return;
    }
    unsigned long long total = 0;
    for (int i = 0; i < n; i++) {
        char dpath[1024];
        snprintf(dpath, sizeof dpath, "/projections/%s", names[i]);
        long long e = dset_elems(f, dpath);
        if (e > 0) total += (unsigned long long)e;
    }
    char b[32];
    fprintf(out, "projections  %s parameters in %d tensors%s%s\n", fmt_count(total, b, sizeof b), n,
            n ? ", first " : "", n ? names[0] : "");
    h5_strs_free(names, n);
    H5Gclose(g);
}

static void print_state(FILE *out, hid_t f, const char *path) {
    static const char *const keys[] = {"step", "epoch", "batch_cursor", "samples_seen",
                                       "optimizer_steps", "metrics_offset"};
    fprintf(out, "progress    ");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t v;
        if (h5a_get_i64(path, f, "/", keys[i], &v) == DISTILL_OK)
            fprintf(out, " %s %lld", keys[i], (long long)v);
        else
            fprintf(out, " %s ?", keys[i]);
    }
    fprintf(out, "\n");
    double best;
    int64_t best_step;
    if (h5a_get_f64(path, f, "/", "best_metric", &best) == DISTILL_OK &&
        h5a_get_i64(path, f, "/", "best_step", &best_step) == DISTILL_OK) {
        if (best_step < 0 || isnan(best)) fprintf(out, "best         none yet\n");
        else fprintf(out, "best         %.6g at step %lld\n", best, (long long)best_step);
    }
    uint64_t seed, counter, data_seed;
    if (h5a_get_u64(path, f, "/", "rng_seed", &seed) == DISTILL_OK &&
        h5a_get_u64(path, f, "/", "rng_counter", &counter) == DISTILL_OK &&
        h5a_get_u64(path, f, "/", "data_seed", &data_seed) == DISTILL_OK)
        fprintf(out, "random       dropout seed %llu counter %llu, data seed %llu\n",
                (unsigned long long)seed, (unsigned long long)counter,
                (unsigned long long)data_seed);
}

static void print_config(FILE *out, hid_t f, const char *path) {
    hid_t g = H5Gopen2(f, "/student", H5P_DEFAULT);
    BertConfig c;
    if (g < 0 || ckpt_get_config(path, g, &c) != DISTILL_OK) {
        fprintf(out, "student      (config unreadable: %s)\n", g < 0 ? "no /student" : distill_error());
        if (g >= 0) H5Gclose(g);
        return;
    }
    H5Gclose(g);
    fprintf(out, "student      %d layers, hidden %d, %d heads, intermediate %d, vocab %d, "
            "max positions %d, %s, %d label%s", c.num_hidden_layers, c.hidden_size,
            c.num_attention_heads, c.intermediate_size, c.vocab_size, c.max_position_embeddings,
            c.has_pooler ? "pooler" : "no pooler", c.num_labels, c.num_labels == 1 ? "" : "s");
    int shown = c.num_labels < BERT_MAX_LABELS ? c.num_labels : BERT_MAX_LABELS;
    for (int i = 0; i < shown && i < 8; i++) {
        if (c.id2label[i]) fprintf(out, "%s%s", i ? ", " : " (", c.id2label[i]);
        else fprintf(out, "%sLABEL_%d", i ? ", " : " (", i);
    }
    if (shown > 0) fprintf(out, "%s)", shown > 8 ? ", ..." : "");
    fprintf(out, "\n");
    bert_config_free_labels(&c);
}

int ckpt_info_print(const char *path, FILE *out) {
    H5Quiet q;
    h5_quiet_begin(&q);
    hid_t f;
    if (ckpt_open_read(path, &f) != DISTILL_OK) {
        h5_quiet_end(&q);
        return 1;
    }
    int64_t complete = 0;
    bool has_marker = h5a_has(f, "complete") &&
                      h5a_get_i64(path, f, "/", "complete", &complete) == DISTILL_OK && complete == 1;
    fprintf(out, "checkpoint   %s\n", path);
    int64_t version = 0;
    h5a_get_i64(path, f, "/", "format_version", &version);
    fprintf(out, "format       %s v%lld, %s\n", CKPT_FORMAT, (long long)version,
            has_marker ? "complete" : "INCOMPLETE (no 'complete' marker)");
    print_state(out, f, path);
    print_config(out, f, path);
    print_student_counts(out, f, path);
    print_projection_counts(out, f, path);
    fprintf(out, "moments      student %s, projections %s\n",
            group_exists(f, "/optim", "/optim/m") && H5Lexists(f, "/optim/m/student", H5P_DEFAULT) > 0
                ? "m, v" : "none",
            group_exists(f, "/optim", "/optim/m") &&
                    H5Lexists(f, "/optim/m/projections", H5P_DEFAULT) > 0
                ? "m, v" : "none");
    int64_t lower = 0;
    h5a_get_i64(path, f, "/", "do_lower_case", &lower);
    long long nv = dset_elems(f, "/vocab");
    fprintf(out, "vocab        %lld tokens, do_lower_case %s\n", nv < 0 ? 0 : nv,
            lower ? "true" : "false");
    if (h5a_has(f, "label_names")) {
        char **ln;
        int n;
        if (h5a_get_strs(path, f, "/", "label_names", &ln, &n) == DISTILL_OK) {
            fprintf(out, "labels      ");
            for (int i = 0; i < n; i++) fprintf(out, " %s", ln[i]);
            fprintf(out, "\n");
            h5_strs_free(ln, n);
        }
    }
    char *yaml = NULL;
    if (H5Lexists(f, "/config_yaml", H5P_DEFAULT) > 0 &&
        h5d_get_str(path, f, "/config_yaml", &yaml) == DISTILL_OK) {
        fprintf(out, "config       %zu bytes of resolved YAML\n", strlen(yaml));
        free(yaml);
    } else {
        fprintf(out, "config       none stored\n");
    }
    char *sha = NULL;
    if (!h5a_has(f, "sha256") || h5a_get_str(path, f, "/", "sha256", &sha) != DISTILL_OK) sha = NULL;
    H5Fclose(f);
    h5_quiet_end(&q);

    /* The verdict: a full read with both hashes recomputed. */
    Status st = ckpt_verify(path);
    if (st == DISTILL_OK) {
        fprintf(out, "hash         ok (sha256 %s)\n", sha ? sha : "?");
    } else {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", distill_error());
        fprintf(out, "hash         FAILED: %s\n", msg);
        distill_set_error("%s", msg);
    }
    free(sha);
    return st == DISTILL_OK ? 0 : 1;
}
