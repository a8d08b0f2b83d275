/*
 * dataset.c — open, check and load a prepared HDF5 file; `distill info` for data files
 * (see dataset.h for the promise).
 */
#define _POSIX_C_SOURCE 200809L
#include "dataset.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "io/h5.h"

enum { READ_BLOCK = 4096 }; /* rows per hyperslab read */

typedef struct {
    hid_t d;
    int rank;
    hsize_t dims[2];
    H5T_class_t cls;
} DsInfo;

static const char *class_name(H5T_class_t c) {
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    default: return "other";
    }
}

/* Opens /name; absent -> d = -1 and (when required) an error. */
static Status ds_open(hid_t f, const char *path, const char *name, bool required, DsInfo *di) {
    memset(di, 0, sizeof *di);
    di->d = -1;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        if (!required) return DISTILL_OK;
        distill_set_error("%s: the dataset /%s is missing (is this a file made by `distill prepare`?)", path, name);
        return DISTILL_ERR;
    }
    di->d = H5Dopen2(f, name, H5P_DEFAULT);
    if (di->d < 0) {
        distill_set_error("%s: /%s is not a dataset", path, name);
        return DISTILL_ERR;
    }
    hid_t sp = H5Dget_space(di->d), t = H5Dget_type(di->d);
    di->rank = H5Sget_simple_extent_ndims(sp);
    if (di->rank >= 1 && di->rank <= 2) H5Sget_simple_extent_dims(sp, di->dims, NULL);
    di->cls = H5Tget_class(t);
    size_t esize = H5Tget_size(t);
    H5Tclose(t);
    H5Sclose(sp);
    /* Every dataset prepare writes is stored whole, at worst deflated, and deflate never packs
     * more than 1032 bytes into one: a shape whose data cannot fit in the file is damage, caught
     * here before the reader allocates for it (a row count off by some bits asked for 64 GB). */
    struct stat sb;
    unsigned long long bytes = esize;
    for (int i = 0; i < di->rank && i < 2; i++)
        bytes = di->dims[i] && bytes > ULLONG_MAX / di->dims[i] ? ULLONG_MAX : bytes * di->dims[i];
    if (stat(path, &sb) == 0 && bytes / 1032 > (unsigned long long)sb.st_size) {
        distill_set_error("%s: /%s: its shape makes %llu bytes of data, more than the %lld-byte file "
                          "holds even deflated (at most 1032:1): the file is damaged", path, name, bytes,
                          (long long)sb.st_size);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

static void ds_close(DsInfo *di) {
    if (di->d >= 0) H5Dclose(di->d);
    di->d = -1;
}

/* Checks class and shape: rank 1 [n] or rank 2 [n, cols] (cols < 0: any). */
static Status ds_expect(const DsInfo *di, const char *path, const char *name, H5T_class_t cls, int rank, int64_t n,
                        int64_t cols) {
    bool ok = di->cls == cls && di->rank == rank && (int64_t)di->dims[0] == n &&
              (rank == 1 || cols < 0 || (int64_t)di->dims[1] == cols);
    if (ok) return DISTILL_OK;
    char want[64], found[64];
    if (rank == 1) snprintf(want, sizeof want, "%s [%lld]", class_name(cls), (long long)n);
    else if (cols < 0) snprintf(want, sizeof want, "%s [%lld, C]", class_name(cls), (long long)n);
    else snprintf(want, sizeof want, "%s [%lld, %lld]", class_name(cls), (long long)n, (long long)cols);
    if (di->rank == 1) snprintf(found, sizeof found, "%s [%llu]", class_name(di->cls), (unsigned long long)di->dims[0]);
    else if (di->rank == 2)
        snprintf(found, sizeof found, "%s [%llu, %llu]", class_name(di->cls), (unsigned long long)di->dims[0],
                 (unsigned long long)di->dims[1]);
    else snprintf(found, sizeof found, "%s of rank %d", class_name(di->cls), di->rank);
    distill_set_error("%s: /%s: expected %s, found %s", path, name, want, found);
    return DISTILL_ERR;
}

/* Reads rows [r0, r0 + n) of a 1-D or 2-D dataset into buf as memtype. */
static Status ds_read_rows(const DsInfo *di, const char *path, const char *name, hid_t memtype, hsize_t r0,
                           hsize_t n, void *buf) {
    hsize_t start[2] = {r0, 0}, count[2] = {n, di->rank == 2 ? di->dims[1] : 1};
    hid_t fs = H5Dget_space(di->d);
    hid_t ms = H5Screate_simple(di->rank, count, NULL);
    herr_t e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (e >= 0) e = H5Dread(di->d, memtype, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0) {
        distill_set_error("%s: cannot read /%s: %s", path, name, h5_error_text());
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

void dataset_free(Dataset *ds) {
    if (!ds) return;
    free(ds->path);
    free(ds->source);
    free(ds->created_by);
    for (int i = 0; i < ds->n_label_names; i++) free(ds->label_names[i]);
    free(ds->label_names);
    free(ds->lengths);
    free(ds->offsets);
    free(ds->ids);
    free(ds->types);
    free(ds->labels);
    free(ds->targets);
    free(ds->teacher_logits);
    free(ds->teacher_cache.teacher_path);
    free(ds);
}

static hid_t open_file(const char *path) {
    if (access(path, R_OK) != 0) {
        distill_set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        distill_set_error("%s: not an HDF5 file", path);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) distill_set_error("%s: cannot open the HDF5 file: %s", path, h5_error_text());
    return f;
}

/* An integer attribute of the root (the message names the file). */
static Status attr_int(hid_t f, const char *path, const char *name, long long *v) {
    int64_t x;
    if (h5a_get_i64(path, f, "/", name, &x) != DISTILL_OK) return DISTILL_ERR;
    *v = (long long)x;
    return DISTILL_OK;
}

static Status load_tokens(Dataset *ds, hid_t f) {
    const char *path = ds->path;
    const int64_t N = ds->rows;
    const int S = ds->max_seq;
    DsInfo di_ids, di_types;
    Status st = ds_open(f, path, "input_ids", true, &di_ids);
    if (st != DISTILL_OK) return st;
    st = ds_open(f, path, "token_type_ids", true, &di_types);
    if (st == DISTILL_OK) st = ds_expect(&di_ids, path, "input_ids", H5T_INTEGER, 2, N, S);
    if (st == DISTILL_OK) st = ds_expect(&di_types, path, "token_type_ids", H5T_INTEGER, 2, N, S);
    int64_t total = ds->offsets[N];
    ds->ids = xmalloc((size_t)(total ? total : 1) * sizeof(int32_t));
    ds->types = xmalloc((size_t)(total ? total : 1));
    int32_t *bi = xmalloc((size_t)READ_BLOCK * (size_t)S * sizeof(int32_t)); /* [READ_BLOCK, S] */
    uint8_t *bt = xmalloc((size_t)READ_BLOCK * (size_t)S);                   /* [READ_BLOCK, S] */
    for (int64_t r0 = 0; st == DISTILL_OK && r0 < N; r0 += READ_BLOCK) {
        int64_t nb = N - r0 < READ_BLOCK ? N - r0 : READ_BLOCK;
        st = ds_read_rows(&di_ids, path, "input_ids", H5T_NATIVE_INT32, (hsize_t)r0, (hsize_t)nb, bi);
        if (st == DISTILL_OK)
            st = ds_read_rows(&di_types, path, "token_type_ids", H5T_NATIVE_UINT8, (hsize_t)r0, (hsize_t)nb, bt);
        for (int64_t i = 0; st == DISTILL_OK && i < nb; i++) {
            int64_t row = r0 + i, at = ds->offsets[row];
            int len = ds->lengths[row];
            for (int j = 0; j < len; j++) {
                int32_t id = bi[i * S + j];
                uint8_t ty = bt[i * S + j];
                if (id < 0 || id >= ds->vocab_size || ty > 1) {
                    if (id < 0 || id >= ds->vocab_size)
                        distill_set_error("%s: /input_ids[%lld, %d] = %d is outside the vocabulary [0, %d)", path,
                                          (long long)row, j, id, ds->vocab_size);
                    else
                        distill_set_error("%s: /token_type_ids[%lld, %d] = %d: expected 0 or 1", path, (long long)row,
                                          j, ty);
                    st = DISTILL_ERR;
                    break;
                }
                ds->ids[at + j] = id;
                ds->types[at + j] = ty;
            }
        }
    }
    free(bi);
    free(bt);
    ds_close(&di_ids);
    ds_close(&di_types);
    return st;
}

/* The identity attributes of /teacher_logits (dataset d); all absent -> known false. */
static Status read_cache_id(const char *path, hid_t d, TeacherCacheId *id) {
    memset(id, 0, sizeof *id);
    static const char *const names[] = {"teacher_sha256", "teacher_precision", "vocab_sha256", "max_seq", NULL};
    int have = 0;
    for (int i = 0; names[i]; i++) have += h5a_has(d, names[i]);
    if (have == 0) return DISTILL_OK;
    char *sha = NULL, *prec = NULL, *vocab = NULL;
    int max_seq = 0;
    Status st = DISTILL_ERR;
    if (h5a_get_str(path, d, "/teacher_logits", "teacher_sha256", &sha) != DISTILL_OK ||
        h5a_get_str(path, d, "/teacher_logits", "teacher_precision", &prec) != DISTILL_OK ||
        h5a_get_str(path, d, "/teacher_logits", "vocab_sha256", &vocab) != DISTILL_OK ||
        h5a_get_int_in(path, d, "/teacher_logits", "max_seq", 2, 1 << 16, &max_seq) != DISTILL_OK)
        goto done;
    if (strlen(sha) != 64 || strlen(vocab) != 64 || (strcmp(prec, "fp32") && strcmp(prec, "bf16"))) {
        distill_set_error("%s: /teacher_logits: expected teacher_sha256 and vocab_sha256 of 64 hex digits and "
                          "teacher_precision fp32 or bf16, found '%s', '%s', '%s'", path, sha, vocab, prec);
        goto done;
    }
    snprintf(id->teacher_sha256, sizeof id->teacher_sha256, "%s", sha);
    snprintf(id->precision, sizeof id->precision, "%s", prec);
    snprintf(id->vocab_sha256, sizeof id->vocab_sha256, "%s", vocab);
    id->max_seq = max_seq;
    if (h5a_has(d, "teacher_path") && h5a_get_str(path, d, "/teacher_logits", "teacher_path", &id->teacher_path) != DISTILL_OK)
        goto done;
    if (!id->teacher_path) id->teacher_path = xstrdup("");
    id->known = true;
    st = DISTILL_OK;
done:
    free(sha), free(prec), free(vocab);
    return st;
}

static Status open_dataset(Dataset **out, const char *path, bool with_tokens) {
    *out = NULL;
    hid_t f = open_file(path);
    if (f < 0) return DISTILL_ERR;
    Dataset *ds = xcalloc(1, sizeof *ds);
    ds->path = xstrdup(path);
    DsInfo di = {.d = -1};
    Status st = DISTILL_ERR;
    long long v;
    char *s = NULL;
    if (attr_int(f, path, "max_seq", &v) != DISTILL_OK) goto done;
    if (v < 2 || v > 1 << 16) {
        distill_set_error("%s: the max_seq attribute is %lld: expected 2 to 65536", path, v);
        goto done;
    }
    ds->max_seq = (int)v;
    ds->truncated_rows = -1;
    if (h5a_has(f, "truncated_rows")) {
        if (attr_int(f, path, "truncated_rows", &v) != DISTILL_OK) goto done;
        ds->truncated_rows = v;
    }
    if (attr_int(f, path, "vocab_size", &v) != DISTILL_OK) goto done;
    if (v < 1 || v > INT32_MAX) {
        distill_set_error("%s: the vocab_size attribute is %lld: expected a positive count", path, v);
        goto done;
    }
    ds->vocab_size = (int)v;
    if (attr_int(f, path, "do_lower_case", &v) != DISTILL_OK) goto done;
    ds->do_lower_case = v != 0;
    if (h5a_get_str(path, f, "/", "vocab_sha256", &s) != DISTILL_OK || strlen(s) != 64) {
        distill_set_error("%s: the vocab_sha256 attribute is missing or not 64 hex digits", path);
        goto done;
    }
    memcpy(ds->vocab_sha256, s, 65);
    free(s);
    s = NULL;
    if (h5a_has(f, "source") && h5a_get_str(path, f, "/", "source", &ds->source) != DISTILL_OK) goto done;
    if (h5a_has(f, "created_by") && h5a_get_str(path, f, "/", "created_by", &ds->created_by) != DISTILL_OK) goto done;
    if (!ds->source) ds->source = xstrdup("");
    if (!ds->created_by) ds->created_by = xstrdup("");
    if (h5a_has(f, "label_names") &&
        h5a_get_strs(path, f, "/", "label_names", &ds->label_names, &ds->n_label_names) != DISTILL_OK)
        goto done;

    /* lengths fix N */
    if (ds_open(f, path, "lengths", true, &di) != DISTILL_OK) goto done;
    if (di.rank != 1 || di.cls != H5T_INTEGER) {
        ds_expect(&di, path, "lengths", H5T_INTEGER, 1, di.rank >= 1 ? (int64_t)di.dims[0] : 0, 0);
        goto done;
    }
    ds->rows = (int64_t)di.dims[0];
    const int64_t N = ds->rows;
    ds->lengths = xmalloc((size_t)(N ? N : 1) * sizeof(int32_t));
    if (N && ds_read_rows(&di, path, "lengths", H5T_NATIVE_INT32, 0, (hsize_t)N, ds->lengths) != DISTILL_OK) goto done;
    ds_close(&di);
    ds->offsets = xmalloc((size_t)(N + 1) * sizeof(int64_t));
    ds->offsets[0] = 0;
    for (int64_t i = 0; i < N; i++) {
        if (ds->lengths[i] < 1 || ds->lengths[i] > ds->max_seq) {
            distill_set_error("%s: /lengths[%lld] = %d: expected 1 to max_seq (%d)", path, (long long)i, ds->lengths[i],
                              ds->max_seq);
            goto done;
        }
        ds->offsets[i + 1] = ds->offsets[i] + ds->lengths[i];
    }

    /* labels */
    if (ds_open(f, path, "labels", false, &di) != DISTILL_OK) goto done;
    if (di.d >= 0) {
        H5T_class_t cls = di.cls == H5T_FLOAT ? H5T_FLOAT : H5T_INTEGER;
        if (ds_expect(&di, path, "labels", cls, 1, N, 0) != DISTILL_OK) goto done;
        if (cls == H5T_FLOAT) {
            ds->label_kind = LABELS_REGRESSION;
            ds->targets = xmalloc((size_t)(N ? N : 1) * sizeof(float));
            if (N && ds_read_rows(&di, path, "labels", H5T_NATIVE_FLOAT, 0, (hsize_t)N, ds->targets) != DISTILL_OK)
                goto done;
        } else {
            ds->label_kind = LABELS_CLASS;
            ds->labels = xmalloc((size_t)(N ? N : 1) * sizeof(int32_t));
            if (N && ds_read_rows(&di, path, "labels", H5T_NATIVE_INT32, 0, (hsize_t)N, ds->labels) != DISTILL_OK)
                goto done;
            int maxl = -1;
            for (int64_t i = 0; i < N; i++) {
                if (ds->labels[i] < 0) {
                    distill_set_error("%s: /labels[%lld] = %d: expected a class index >= 0", path, (long long)i,
                                      ds->labels[i]);
                    goto done;
                }
                if (ds->labels[i] > maxl) maxl = ds->labels[i];
            }
            ds->num_labels = maxl + 1;
            if (h5a_has(f, "num_labels")) {
                if (attr_int(f, path, "num_labels", &v) != DISTILL_OK) goto done;
                if (v < ds->num_labels) {
                    distill_set_error("%s: the num_labels attribute is %lld but /labels holds class %d", path, v, maxl);
                    goto done;
                }
                ds->num_labels = (int)v;
            }
            if (ds->n_label_names && ds->n_label_names < ds->num_labels) {
                distill_set_error("%s: %d label_names for %d classes", path, ds->n_label_names, ds->num_labels);
                goto done;
            }
        }
        ds_close(&di);
    }

    /* vocab (optional: its size must agree) */
    if (ds_open(f, path, "vocab", false, &di) != DISTILL_OK) goto done;
    if (di.d >= 0) {
        if (ds_expect(&di, path, "vocab", H5T_STRING, 1, ds->vocab_size, 0) != DISTILL_OK) goto done;
        ds_close(&di);
    }

    /* teacher logits (optional) */
    if (ds_open(f, path, "teacher_logits", false, &di) != DISTILL_OK) goto done;
    if (di.d >= 0) {
        if (ds_expect(&di, path, "teacher_logits", H5T_FLOAT, 2, N, -1) != DISTILL_OK) goto done;
        ds->teacher_classes = (int)di.dims[1];
        if (read_cache_id(path, di.d, &ds->teacher_cache) != DISTILL_OK) goto done;
        ds->teacher_logits = xmalloc((size_t)(N ? N : 1) * (size_t)ds->teacher_classes * sizeof(float));
        if (N && ds_read_rows(&di, path, "teacher_logits", H5T_NATIVE_FLOAT, 0, (hsize_t)N, ds->teacher_logits) !=
                     DISTILL_OK)
            goto done;
        ds_close(&di);
    }

    if (with_tokens) {
        if (load_tokens(ds, f) != DISTILL_OK) goto done;
    } else {
        /* still check that the token arrays are there with the right shape */
        DsInfo a, b;
        Status s1 = ds_open(f, path, "input_ids", true, &a);
        if (s1 == DISTILL_OK) s1 = ds_expect(&a, path, "input_ids", H5T_INTEGER, 2, N, ds->max_seq);
        ds_close(&a);
        if (s1 != DISTILL_OK) goto done;
        s1 = ds_open(f, path, "token_type_ids", true, &b);
        if (s1 == DISTILL_OK) s1 = ds_expect(&b, path, "token_type_ids", H5T_INTEGER, 2, N, ds->max_seq);
        ds_close(&b);
        if (s1 != DISTILL_OK) goto done;
    }
    st = DISTILL_OK;
done:
    free(s);
    ds_close(&di);
    H5Fclose(f);
    if (st != DISTILL_OK) {
        dataset_free(ds);
        return DISTILL_ERR;
    }
    *out = ds;
    return DISTILL_OK;
}

/* HDF5 prints nothing while a file is read: the messages say what failed. */
Status dataset_open(Dataset **out, const char *path, bool with_tokens) {
    H5Quiet q;
    h5_quiet_begin(&q);
    Status st = open_dataset(out, path, with_tokens);
    h5_quiet_end(&q);
    return st;
}

Status dataset_read_vocab(const char *path, char ***tokens, int *n) {
    H5Quiet q;
    h5_quiet_begin(&q);
    hid_t f = open_file(path);
    Status st = f < 0 ? DISTILL_ERR : h5d_get_strs(path, f, "vocab", tokens, n);
    if (f >= 0) H5Fclose(f);
    h5_quiet_end(&q);
    return st;
}

/* ------------------------------------------------------------------ distill info */

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int data_info_print(const char *path, FILE *out) {
    Dataset *ds;
    if (dataset_open(&ds, path, false) != DISTILL_OK) {
        distill_print_error(distill_error());
        return 1;
    }
    const int64_t N = ds->rows;
    fprintf(out, "%s: prepared data (distill prepare)\n", path);
    fprintf(out, "  rows:          %lld\n", (long long)N);
    fprintf(out, "  max_seq:       %d\n", ds->max_seq);
    if (N > 0) {
        int32_t *sorted = xmalloc((size_t)N * sizeof(int32_t));
        memcpy(sorted, ds->lengths, (size_t)N * sizeof(int32_t));
        qsort(sorted, (size_t)N, sizeof(int32_t), cmp_i32);
        double sum = 0;
        int64_t full = 0;
        for (int64_t i = 0; i < N; i++) sum += sorted[i], full += sorted[i] == ds->max_seq;
#define PCT(p) sorted[(int64_t)((p) * (double)(N - 1))]
        fprintf(out, "  lengths:       min %d, mean %.1f, median %d, p90 %d, p99 %d, max %d (tokens, [CLS]/[SEP] included)\n",
                sorted[0], sum / (double)N, PCT(0.5), PCT(0.9), PCT(0.99), sorted[N - 1]);
#undef PCT
        fprintf(out, "  at max_seq:    %lld rows (%.1f%%, probably truncated)\n", (long long)full,
                100.0 * (double)full / (double)N);
        fprintf(out, "  histogram:    ");
        int lo = 1;
        for (int hi = 8;; hi *= 2) {
            int top = hi < ds->max_seq ? hi : ds->max_seq;
            int64_t cnt = 0;
            for (int64_t i = 0; i < N; i++) cnt += ds->lengths[i] >= lo && ds->lengths[i] <= top;
            fprintf(out, " %d-%d: %lld", lo, top, (long long)cnt);
            if (top == ds->max_seq) break;
            lo = top + 1;
            fprintf(out, ",");
        }
        fprintf(out, "\n");
        free(sorted);
    }
    if (ds->label_kind == LABELS_CLASS) {
        fprintf(out, "  labels:        classification, %d classes\n", ds->num_labels);
        int64_t *counts = xcalloc((size_t)ds->num_labels + 1, sizeof(int64_t));
        for (int64_t i = 0; i < N; i++) counts[ds->labels[i]]++;
        for (int c = 0; c < ds->num_labels; c++) {
            fprintf(out, "    %d", c);
            if (c < ds->n_label_names) fprintf(out, " (%s)", ds->label_names[c]);
            fprintf(out, ": %lld (%.1f%%)\n", (long long)counts[c], N ? 100.0 * (double)counts[c] / (double)N : 0.0);
        }
        free(counts);
    } else if (ds->label_kind == LABELS_REGRESSION) {
        double mn = INFINITY, mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < N; i++) {
            double t = ds->targets[i];
            mn = t < mn ? t : mn, mx = t > mx ? t : mx, sum += t;
        }
        fprintf(out, "  labels:        regression, min %g, mean %g, max %g\n", N ? mn : 0.0, N ? sum / (double)N : 0.0,
                N ? mx : 0.0);
    } else {
        fprintf(out, "  labels:        none\n");
    }
    if (ds->teacher_logits) {
        fprintf(out, "  teacher_logits: [%lld, %d]", (long long)N, ds->teacher_classes);
        const TeacherCacheId *id = &ds->teacher_cache;
        if (id->known)
            fprintf(out, " (distill cache: teacher %s, sha256 %.16s..., %s, max_seq %d)\n",
                    id->teacher_path[0] ? id->teacher_path : "(path not recorded)", id->teacher_sha256, id->precision,
                    id->max_seq);
        else
            fprintf(out, " (no teacher identity: not made by distill cache)\n");
    }
    fprintf(out, "  vocab:         %d tokens, sha256 %s, do_lower_case %s\n", ds->vocab_size, ds->vocab_sha256,
            ds->do_lower_case ? "yes" : "no");
    fprintf(out, "  source:        %s\n", ds->source[0] ? ds->source : "(not recorded)");
    if (ds->created_by[0]) fprintf(out, "  created_by:    %s\n", ds->created_by);
    dataset_free(ds);
    return 0;
}

/* ---------------------------------------------------------------- the teacher-logit cache */

/* Copies the bytes of src into dst (an existing file, truncated). */
static Status copy_file(const char *src, const char *dst, const char *what) {
    FILE *in = fopen(src, "rb");
    if (!in) {
        distill_set_error("%s: cannot read: %s", src, strerror(errno));
        return DISTILL_ERR;
    }
    FILE *out = fopen(dst, "wb");
    if (!out) {
        distill_set_error("%s: cannot write %s: %s", what, dst, strerror(errno));
        fclose(in);
        return DISTILL_ERR;
    }
    static char buf[1 << 16];
    size_t n;
    Status st = DISTILL_OK;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            distill_set_error("%s: cannot write a copy: %s", what, strerror(errno));
            st = DISTILL_ERR;
            break;
        }
    if (st == DISTILL_OK && ferror(in)) {
        distill_set_error("%s: read error: %s", src, strerror(errno));
        st = DISTILL_ERR;
    }
    fclose(in);
    if (fclose(out) != 0 && st == DISTILL_OK) {
        distill_set_error("%s: cannot write a copy: %s", what, strerror(errno));
        st = DISTILL_ERR;
    }
    return st;
}

/* Writes /teacher_logits and its attributes into the open file f (path: for messages). */
static Status put_teacher_logits(hid_t f, const char *path, const float *logits, int64_t rows, int classes,
                                 const TeacherCacheId *id) {
    if (H5Lexists(f, "teacher_logits", H5P_DEFAULT) > 0 && H5Ldelete(f, "teacher_logits", H5P_DEFAULT) < 0) {
        distill_set_error("%s: cannot remove the old /teacher_logits: %s", path, h5_error_text());
        return DISTILL_ERR;
    }
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)classes};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(f, "teacher_logits", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    if (d < 0) {
        distill_set_error("%s: cannot create /teacher_logits: %s", path, h5_error_text());
        return DISTILL_ERR;
    }
    Status st = DISTILL_OK;
    if (rows > 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, logits) < 0) {
        distill_set_error("%s: cannot write /teacher_logits: %s", path, h5_error_text());
        st = DISTILL_ERR;
    }
    if (st == DISTILL_OK) st = h5a_put_str(path, d, "teacher_sha256", id->teacher_sha256);
    if (st == DISTILL_OK) st = h5a_put_str(path, d, "teacher_precision", id->precision);
    if (st == DISTILL_OK) st = h5a_put_str(path, d, "vocab_sha256", id->vocab_sha256);
    if (st == DISTILL_OK) st = h5a_put_int(path, d, "max_seq", H5T_STD_I32LE, id->max_seq);
    if (st == DISTILL_OK) st = h5a_put_str(path, d, "teacher_path", id->teacher_path);
    H5Dclose(d);
    return st;
}

Status dataset_write_teacher_logits(const char *path, const float *logits, int64_t rows, int classes,
                                    const TeacherCacheId *id) {
    AtomicFile af;
    if (io_atomic_begin_named(&af, path) != DISTILL_OK) return DISTILL_ERR;
    if (copy_file(path, af.tmp, path) != DISTILL_OK) {
        io_atomic_abort(&af);
        return DISTILL_ERR;
    }
    H5Quiet q;
    h5_quiet_begin(&q);
    hid_t f = H5Fopen(af.tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    Status st = DISTILL_OK;
    if (f < 0) {
        distill_set_error("%s: cannot open a copy for writing: %s", path, h5_error_text());
        st = DISTILL_ERR;
    }
    if (st == DISTILL_OK) st = put_teacher_logits(f, path, logits, rows, classes, id);
    if (f >= 0 && H5Fclose(f) < 0 && st == DISTILL_OK) {
        distill_set_error("%s: cannot close the copy: %s", path, h5_error_text());
        st = DISTILL_ERR;
    }
    h5_quiet_end(&q);
    if (st != DISTILL_OK) {
        io_atomic_abort(&af);
        return DISTILL_ERR;
    }
    return io_atomic_commit(&af);
}
