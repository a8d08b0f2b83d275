/*
 * ckpt.c — saving and loading training checkpoints (layout and promises in ckpt.h).
 *
 * Save: validate the input, create the temporary `path.tmp-<pid>-<n>` (io/atomic.h), write
 * groups, tensors (each with its own SHA-256), strings, state, the two content hashes, then the
 * `complete` marker; flush, close, and commit (fsync, rename over `path`, fsync the directory).
 * Any failure closes and removes the temporary file, so the previous checkpoint at `path` is
 * untouched and nothing new is left behind.
 *
 * Load: open and check the format, refuse a file without the marker, rebuild the student from its
 * saved config with bert_build, read every tensor with a shape check and a per-tensor hash check,
 * recompute both file hashes from the bytes read, and only then hand the result over.
 */
#define _POSIX_C_SOURCE 200809L
#include "ckpt_internal.h"

#include "io/atomic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void (*ckpt_test_stage_hook)(const char *stage) = NULL;

static void stage(const char *s) {
    if (ckpt_test_stage_hook) ckpt_test_stage_hook(s);
}

void ckpt_init(TrainCheckpoint *ck) {
    memset(ck, 0, sizeof *ck);
    ck->best_metric = NAN;
    ck->best_step = -1;
    ck->device = device_cpu();
}

void ckpt_free(TrainCheckpoint *ck) {
    if (ck->owned) {
        if (ck->student) {
            params_buffer_free(ck->student->params, ck->m_student);
            params_buffer_free(ck->student->params, ck->v_student);
        }
        if (ck->projections) {
            params_buffer_free(ck->projections, ck->m_proj);
            params_buffer_free(ck->projections, ck->v_proj);
        }
        if (ck->student) bert_free(ck->student);
        if (ck->projections) params_free(ck->projections);
        free(ck->config_yaml);
        h5_strs_free(ck->vocab, ck->n_vocab);
        h5_strs_free(ck->label_names, ck->n_label_names);
    }
    ckpt_init(ck);
}

/* A host view of n floats at `dev`, a buffer laid out like store ps: the pointer itself on the
 * CPU, else a copy in *scratch (grown as needed). */
static const float *host_view(const ParamStore *ps, const float *dev, size_t n, float **scratch,
                              size_t *cap) {
    if (ps->device.type == DEV_CPU) return dev;
    if (*cap < n) {
        free(*scratch);
        *scratch = xmalloc(n * sizeof(float));
        *cap = n;
    }
    params_buffer_to_host(ps, dev, *scratch, n);
    return *scratch;
}

/* ================================================================ save */

typedef struct Writer {
    const char *path; /* the final path, for messages */
    hid_t f;
    float *scratch;
    size_t cap;
    DigestList dl;
} Writer;

static Status write_tensor(Writer *w, hid_t g, const char *gpath, const Tensor *t,
                           const ParamStore *ps, const float *dev) {
    hsize_t dims[TENSOR_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) dims[i] = (hsize_t)t->shape[i];
    const float *host = host_view(ps, dev, t->numel, &w->scratch, &w->cap);
    hid_t sp = H5Screate_simple(t->ndim, dims, NULL);
    hid_t d = H5Dcreate2(g, t->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host);
    if (rc < 0)
        distill_set_error("%s: cannot write dataset %s/%s: %s", w->path, gpath, t->name,
                          h5_error_text());
    H5Sclose(sp);
    if (rc < 0) {
        if (d >= 0) H5Dclose(d);
        return DISTILL_ERR;
    }
    uint8_t digest[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    Sha256 h;
    sha_begin(&h);
    sha_f32s(&h, host, t->numel);
    sha_end(&h, digest);
    sha_hex(digest, hex);
    Status st = h5a_put_str(w->path, d, "sha256", hex);
    H5Dclose(d);
    char key[1024];
    snprintf(key, sizeof key, "%s/%s", gpath, t->name);
    digests_add(&w->dl, key, t->ndim, t->shape, digest);
    return st;
}

static hid_t make_group(Writer *w, const char *gpath) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(w->f, gpath, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) distill_set_error("%s: cannot create group %s: %s", w->path, gpath, h5_error_text());
    H5Pclose(lcpl);
    return g;
}

/* /student or /projections: names and no_decay lists, then every tensor. `data` is the store's
 * parameter buffer, or a moment buffer laid out like it (then no lists are written). */
static Status write_store(Writer *w, const char *gpath, const ParamStore *ps, const float *data,
                          bool lists, const BertConfig *cfg) {
    hid_t g = make_group(w, gpath);
    if (g < 0) return DISTILL_ERR;
    Status st = DISTILL_OK;
    if (cfg) st = ckpt_put_config(w->path, g, cfg);
    if (st == DISTILL_OK && lists && ps->n > 0) {
        const char **names = xmalloc((size_t)ps->n * sizeof *names);
        uint8_t *nd = xmalloc((size_t)ps->n);
        for (int i = 0; i < ps->n; i++) {
            names[i] = ps->tensors[i]->name;
            nd[i] = ps->no_decay[i];
        }
        st = h5a_put_strs(w->path, g, "names", names, (size_t)ps->n);
        if (st == DISTILL_OK) st = h5a_put_u8s(w->path, g, "no_decay", nd, (size_t)ps->n);
        free(names);
        free(nd);
    }
    for (int i = 0; i < ps->n && st == DISTILL_OK; i++)
        st = write_tensor(w, g, gpath, ps->tensors[i], ps, data + ps->offsets[i]);
    H5Gclose(g);
    return st;
}

static Status check_store_names(const char *path, const ParamStore *ps, const char *what) {
    if (!ps->finalized) {
        distill_set_error("%s: cannot save the %s: its parameter store is not finalized", path, what);
        return DISTILL_ERR;
    }
    for (int i = 0; i < ps->n; i++) {
        const char *nm = ps->tensors[i]->name;
        if (!nm || !nm[0] || strchr(nm, '/') || strcmp(nm, ".") == 0) {
            distill_set_error("%s: cannot save the %s: tensor name '%s' is not a valid dataset "
                              "name (expected non-empty, no '/')", path, what, nm ? nm : "");
            return DISTILL_ERR;
        }
    }
    return DISTILL_OK;
}

static Status check_save_input(const char *path, const TrainCheckpoint *ck) {
    if (!ck->student || !ck->student->params) {
        distill_set_error("%s: cannot save a checkpoint without a student model", path);
        return DISTILL_ERR;
    }
    if (check_store_names(path, ck->student->params, "student") != DISTILL_OK) return DISTILL_ERR;
    if (ck->projections && check_store_names(path, ck->projections, "projections") != DISTILL_OK)
        return DISTILL_ERR;
    if (!ck->m_student != !ck->v_student || !ck->m_proj != !ck->v_proj) {
        distill_set_error("%s: cannot save: AdamW moments must come in pairs (m and v), found one "
                          "without the other", path);
        return DISTILL_ERR;
    }
    if (ck->m_proj && !ck->projections) {
        distill_set_error("%s: cannot save: projection moments given without a projections store",
                          path);
        return DISTILL_ERR;
    }
    if ((ck->n_vocab > 0 && !ck->vocab) || ck->n_vocab < 0 ||
        (ck->n_label_names > 0 && !ck->label_names) || ck->n_label_names < 0) {
        distill_set_error("%s: cannot save: vocab/label_names count without strings", path);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

static Status write_state(Writer *w, const TrainCheckpoint *ck) {
    const char *p = w->path;
    hid_t f = w->f;
    Status st = DISTILL_OK;
    st |= h5a_put_i64(p, f, "step", ck->step);
    st |= h5a_put_i64(p, f, "epoch", ck->epoch);
    st |= h5a_put_i64(p, f, "batch_cursor", ck->batch_cursor);
    st |= h5a_put_i64(p, f, "samples_seen", ck->samples_seen);
    st |= h5a_put_i64(p, f, "optimizer_steps", ck->optimizer_steps);
    st |= h5a_put_u64(p, f, "rng_seed", ck->rng_seed);
    st |= h5a_put_u64(p, f, "rng_counter", ck->rng_counter);
    st |= h5a_put_u64(p, f, "data_seed", ck->data_seed);
    st |= h5a_put_f64(p, f, "best_metric", ck->best_metric);
    st |= h5a_put_i64(p, f, "best_step", ck->best_step);
    st |= h5a_put_i64(p, f, "metrics_offset", ck->metrics_offset);
    st |= h5a_put_i64(p, f, "bad_steps", ck->bad_steps);
    if (ck->stage) { /* staged runs past their first stage; absent = stage 0, stage_step = step */
        st |= h5a_put_i64(p, f, "stage", ck->stage);
        st |= h5a_put_i64(p, f, "stage_step", ck->stage_step);
    }
    st |= h5a_put_i64(p, f, "do_lower_case", ck->do_lower_case);
    if (st == DISTILL_OK && ck->n_label_names > 0)
        st = h5a_put_strs(p, f, "label_names", (const char *const *)ck->label_names,
                          (size_t)ck->n_label_names);
    if (st == DISTILL_OK && ck->n_vocab > 0)
        st = h5d_put_strs(p, f, "/vocab", (const char *const *)ck->vocab, (size_t)ck->n_vocab);
    if (st == DISTILL_OK && ck->config_yaml) st = h5d_put_str(p, f, "/config_yaml", ck->config_yaml);
    return st ? DISTILL_ERR : DISTILL_OK;
}

Status ckpt_save(const char *path, const TrainCheckpoint *ck) {
    if (check_save_input(path, ck) != DISTILL_OK) return DISTILL_ERR;
    /* The temporary file is made (exclusively) before HDF5 sees it, so an unwritable or missing
     * folder is reported with the system's reason rather than HDF5's. */
    AtomicFile af;
    if (io_atomic_begin_named(&af, path) != DISTILL_OK) return DISTILL_ERR;
    const char *tmp = af.tmp;

    H5Quiet q;
    h5_quiet_begin(&q);
    Writer w = {.path = path, .f = H5I_INVALID_HID};
    Status st = DISTILL_ERR;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    w.f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (w.f < 0)
        distill_set_error("%s: cannot write checkpoint: HDF5 cannot create '%s': %s", path, tmp,
                          h5_error_text());
    H5Pclose(fapl);
    if (w.f < 0) goto fail;
    stage("created");
    if (h5a_put_str(path, w.f, "format", CKPT_FORMAT) ||
        h5a_put_i64(path, w.f, "format_version", CKPT_FORMAT_VERSION) ||
        h5a_put_str(path, w.f, "created_by", "distill"))
        goto fail;

    const Bert *s = ck->student;
    if (write_store(&w, "/student", s->params, s->params->data, true, &s->cfg)) goto fail;
    if (ck->projections &&
        write_store(&w, "/projections", ck->projections, ck->projections->data, true, NULL))
        goto fail;
    if (ck->m_student && (write_store(&w, "/optim/m/student", s->params, ck->m_student, false, NULL) ||
                          write_store(&w, "/optim/v/student", s->params, ck->v_student, false, NULL)))
        goto fail;
    if (ck->m_proj &&
        (write_store(&w, "/optim/m/projections", ck->projections, ck->m_proj, false, NULL) ||
         write_store(&w, "/optim/v/projections", ck->projections, ck->v_proj, false, NULL)))
        goto fail;
    stage("tensors");

    if (write_state(&w, ck) != DISTILL_OK) goto fail;
    uint8_t hs[SHA256_LEN], hf[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    ckpt_hash_student(&s->cfg, ck, &w.dl, hs);
    ckpt_hash_full(ck, hs, &w.dl, hf);
    sha_hex(hs, hex);
    if (h5a_put_str(path, w.f, "student_sha256", hex)) goto fail;
    sha_hex(hf, hex);
    if (h5a_put_str(path, w.f, "sha256", hex)) goto fail;
    stage("state");

    /* The marker goes last: a file without it was not written whole. */
    if (h5a_put_i64(path, w.f, "complete", 1)) goto fail;
    stage("marker");
    if (H5Fflush(w.f, H5F_SCOPE_GLOBAL) < 0) {
        distill_set_error("%s: cannot write checkpoint: flushing '%s' failed: %s", path, tmp,
                          h5_error_text());
        goto fail;
    }
    herr_t rc = H5Fclose(w.f);
    w.f = H5I_INVALID_HID;
    if (rc < 0) {
        distill_set_error("%s: cannot write checkpoint: closing '%s' failed: %s", path, tmp,
                          h5_error_text());
        goto fail;
    }
    stage("closed");
    /* fsync, rename over path, fsync the folder; a failure there removes the temporary file.
     * The test hook sees commit's "synced" and "renamed" (only while a test has set it). */
    void (*io_hook)(const char *) = io_atomic_stage_hook;
    if (ckpt_test_stage_hook) io_atomic_stage_hook = ckpt_test_stage_hook;
    st = io_atomic_commit(&af);
    io_atomic_stage_hook = io_hook;
    goto done;
fail:
    if (w.f >= 0) H5Fclose(w.f);
    io_atomic_abort(&af);
done:
    h5_quiet_end(&q);
    digests_free(&w.dl);
    free(w.scratch);
    return st;
}

/* ================================================================ load */

typedef struct Reader {
    const char *path;
    hid_t f;
    float *scratch;
    size_t cap;
    DigestList dl;
} Reader;

static const char *dims_str(int ndim, const hsize_t *d, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %llu" : "%llu", (unsigned long long)d[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

/* True when every component of the absolute path `p` exists (H5Lexists fails on a missing
 * intermediate group, so walk it). */
static bool path_exists(hid_t f, const char *p) {
    char buf[1024];
    size_t n = strlen(p);
    if (n >= sizeof buf) return false;
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        memcpy(buf, p, i);
        buf[i] = '\0';
        if (H5Lexists(f, buf, H5P_DEFAULT) <= 0) return false;
    }
    return true;
}

/* Reads dataset gpath/<like->name> (f32, like's shape) into `dst`, in a buffer laid out like store
 * ps (dst NULL: read and hash only), checking its own sha256 attribute; records its digest. */
static Status read_tensor(Reader *r, const char *gpath, const Tensor *like, const ParamStore *ps,
                          float *dst) {
    char dpath[1024], want[96], got[96];
    snprintf(dpath, sizeof dpath, "%s/%s", gpath, like->name);
    hsize_t wd[TENSOR_MAX_DIMS], fd[TENSOR_MAX_DIMS];
    for (int i = 0; i < like->ndim; i++) wd[i] = (hsize_t)like->shape[i];
    if (!path_exists(r->f, dpath)) {
        distill_set_error("%s: expected dataset %s of shape %s, found none", r->path, dpath,
                          dims_str(like->ndim, wd, want, sizeof want));
        return DISTILL_ERR;
    }
    hid_t d = H5Dopen2(r->f, dpath, H5P_DEFAULT);
    if (d < 0) {
        distill_set_error("%s: cannot open dataset %s: %s", r->path, dpath, h5_error_text());
        return DISTILL_ERR;
    }
    Status st = DISTILL_ERR;
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(sp);
    if (H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) != 4) {
        distill_set_error("%s: %s: expected float32 data, found another type", r->path, dpath);
        goto out;
    }
    bool same = rank == like->ndim;
    if (rank > 0 && rank <= TENSOR_MAX_DIMS) {
        H5Sget_simple_extent_dims(sp, fd, NULL);
        for (int i = 0; same && i < rank; i++) same = fd[i] == wd[i];
    } else {
        rank = 0;
    }
    if (!same) {
        distill_set_error("%s: %s: expected shape %s, found %s", r->path, dpath,
                          dims_str(like->ndim, wd, want, sizeof want),
                          dims_str(rank, fd, got, sizeof got));
        goto out;
    }
    float *host;
    if (dst && ps->device.type == DEV_CPU) {
        host = dst;
    } else {
        if (r->cap < like->numel) {
            free(r->scratch);
            r->scratch = xmalloc(like->numel * sizeof(float));
            r->cap = like->numel;
        }
        host = r->scratch;
    }
    if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host) < 0) {
        distill_set_error("%s: %s: cannot read the data (truncated or corrupted file): %s", r->path,
                          dpath, h5_error_text());
        goto out;
    }
    uint8_t digest[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    Sha256 h;
    sha_begin(&h);
    sha_f32s(&h, host, like->numel);
    sha_end(&h, digest);
    sha_hex(digest, hex);
    char *stored = NULL;
    if (h5a_get_str(r->path, d, dpath, "sha256", &stored) != DISTILL_OK) goto out;
    bool match = strcmp(stored, hex) == 0;
    if (!match)
        distill_set_error("%s: %s: content hash mismatch: stored sha256 %.16s..., the data read "
                          "gives %.16s... (the file is corrupted)", r->path, dpath, stored, hex);
    free(stored);
    if (!match) goto out;
    if (dst && ps->device.type != DEV_CPU) params_buffer_from_host(ps, dst, host, like->numel);
    digests_add(&r->dl, dpath, like->ndim, like->shape, digest);
    st = DISTILL_OK;
out:
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    return st;
}

/* Checks that group `gpath`'s "names" list holds exactly the store's names. */
static Status check_names(Reader *r, hid_t g, const char *gpath, const ParamStore *ps) {
    char **names = NULL;
    int n = 0;
    if (h5a_get_strs(r->path, g, gpath, "names", &names, &n) != DISTILL_OK) return DISTILL_ERR;
    Status st = DISTILL_OK;
    for (int i = 0; i < n && st == DISTILL_OK; i++) {
        if (params_index(ps, names[i]) < 0) {
            distill_set_error("%s: %s: holds tensor '%s', which the saved config does not declare "
                              "(expected %d tensors, found %d)", r->path, gpath, names[i], ps->n, n);
            st = DISTILL_ERR;
        }
    }
    if (st == DISTILL_OK && n != ps->n) {
        distill_set_error("%s: %s: expected %d tensors for the saved config, found %d", r->path,
                          gpath, ps->n, n);
        st = DISTILL_ERR;
    }
    h5_strs_free(names, n);
    return st;
}

/* Every tensor is stored as uncompressed f32, so a group of n parameters needs at least 4n bytes
 * of the file. Checked before anything is allocated for them: a damaged config or shape (a
 * vocab_size or a dimension off by some bits) would otherwise ask for hundreds of GB and end the
 * process in xmalloc instead of being reported (and skipped by ckpt_find_latest). */
static Status check_room(Reader *r, const char *gpath, size_t n) {
    struct stat sb;
    if (stat(r->path, &sb) != 0 || n <= (size_t)sb.st_size / sizeof(float)) return DISTILL_OK;
    distill_set_error("%s: %s: the saved shapes make %zu parameters, more than the %lld-byte file "
                      "holds (4 bytes each): the checkpoint is damaged", r->path, gpath, n,
                      (long long)sb.st_size);
    return DISTILL_ERR;
}

static Status load_student(Reader *r, Device device, TrainCheckpoint *out, BertConfig *cfg) {
    hid_t g = H5Gopen2(r->f, "/student", H5P_DEFAULT);
    if (g < 0) {
        distill_set_error("%s: expected group /student, found none", r->path);
        return DISTILL_ERR;
    }
    Status st = ckpt_get_config(r->path, g, cfg);
    if (st == DISTILL_OK && bert_config_validate(cfg) != DISTILL_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", distill_error());
        distill_set_error("%s: /student: the saved config cannot be built: %s", r->path, msg);
        st = DISTILL_ERR;
    }
    if (st == DISTILL_OK) st = check_room(r, "/student", bert_config_param_count(cfg));
    if (st == DISTILL_OK) {
        out->student = bert_build(cfg, device);
        st = check_names(r, g, "/student", out->student->params);
    }
    H5Gclose(g);
    if (st != DISTILL_OK) return st;
    ParamStore *ps = out->student->params;
    for (int i = 0; i < ps->n; i++)
        if (read_tensor(r, "/student", ps->tensors[i], ps, ps->data + ps->offsets[i]))
            return DISTILL_ERR;
    return DISTILL_OK;
}

static Status load_projections(Reader *r, Device device, TrainCheckpoint *out) {
    if (!path_exists(r->f, "/projections")) return DISTILL_OK;
    hid_t g = H5Gopen2(r->f, "/projections", H5P_DEFAULT);
    if (g < 0) {
        distill_set_error("%s: cannot open group /projections: %s", r->path, h5_error_text());
        return DISTILL_ERR;
    }
    char **names = NULL;
    int n = 0;
    uint8_t *nd = NULL;
    Status st = h5a_get_strs(r->path, g, "/projections", "names", &names, &n);
    if (st == DISTILL_OK) {
        nd = xcalloc((size_t)(n ? n : 1), 1);
        st = h5a_get_u8s(r->path, g, "/projections", "no_decay", nd, (size_t)n);
    }
    ParamStore *ps = params_new(device);
    out->projections = ps;
    for (int i = 0; i < n && st == DISTILL_OK; i++) {
        char dpath[1024], got[96];
        snprintf(dpath, sizeof dpath, "/projections/%s", names[i]);
        if (!names[i][0] || strchr(names[i], '/') || params_index(ps, names[i]) >= 0 ||
            !path_exists(r->f, dpath)) {
            distill_set_error("%s: /projections: expected a dataset for each listed name, found "
                              "none (or a duplicate) for '%s'", r->path, names[i]);
            st = DISTILL_ERR;
            break;
        }
        hid_t d = H5Dopen2(r->f, dpath, H5P_DEFAULT), sp = H5Dget_space(d);
        hsize_t dims[TENSOR_MAX_DIMS] = {0};
        int rank = H5Sget_simple_extent_ndims(sp), shape[TENSOR_MAX_DIMS];
        bool ok = rank >= 1 && rank <= TENSOR_MAX_DIMS;
        if (ok) H5Sget_simple_extent_dims(sp, dims, NULL);
        for (int k = 0; ok && k < rank; k++) {
            ok = dims[k] >= 1 && dims[k] <= (1u << 30);
            shape[k] = (int)dims[k];
        }
        H5Sclose(sp);
        H5Dclose(d);
        if (!ok) {
            distill_set_error("%s: %s: expected 1 to %d dimensions of 1..2^30 each, found %s",
                              r->path, dpath, TENSOR_MAX_DIMS,
                              dims_str(rank > 0 && rank <= TENSOR_MAX_DIMS ? rank : 0, dims, got,
                                       sizeof got));
            st = DISTILL_ERR;
            break;
        }
        params_add(ps, names[i], rank, shape, nd[i] != 0);
    }
    h5_strs_free(names, n);
    free(nd);
    H5Gclose(g);
    size_t numel = 0;
    for (int i = 0; st == DISTILL_OK && i < ps->n; i++) {
        size_t k = 1; /* each dimension <= 2^30 and at most 4 of them: saturate, never wrap */
        for (int d = 0; d < ps->tensors[i]->ndim; d++)
            k = k > SIZE_MAX / (size_t)ps->tensors[i]->shape[d] ? SIZE_MAX : k * (size_t)ps->tensors[i]->shape[d];
        numel = numel > SIZE_MAX - k ? SIZE_MAX : numel + k;
    }
    if (st == DISTILL_OK) st = check_room(r, "/projections", numel);
    if (st != DISTILL_OK) return st;
    params_finalize(ps);
    for (int i = 0; i < ps->n; i++)
        if (read_tensor(r, "/projections", ps->tensors[i], ps, ps->data + ps->offsets[i]))
            return DISTILL_ERR;
    return DISTILL_OK;
}

/* /optim/{m,v}/<which>: both or neither must exist. */
static Status load_moments(Reader *r, const char *which, const ParamStore *ps, float **m,
                           float **v) {
    char gm[64], gv[64];
    snprintf(gm, sizeof gm, "/optim/m/%s", which);
    snprintf(gv, sizeof gv, "/optim/v/%s", which);
    bool hm = path_exists(r->f, gm), hv = path_exists(r->f, gv);
    if (!hm && !hv) return DISTILL_OK;
    if (!ps || hm != hv) {
        distill_set_error("%s: expected both %s and %s%s, found only %s", r->path, gm, gv,
                          ps ? "" : " with their parameters", hm ? gm : gv);
        return DISTILL_ERR;
    }
    float **dst[2] = {m, v};
    const char *gp[2] = {gm, gv};
    for (int k = 0; k < 2; k++) {
        *dst[k] = params_buffer_new(ps); /* zeroed: alignment padding between tensors stays 0 */
        for (int i = 0; i < ps->n; i++)
            if (read_tensor(r, gp[k], ps->tensors[i], ps, *dst[k] + ps->offsets[i]))
                return DISTILL_ERR;
    }
    return DISTILL_OK;
}

static Status load_state(Reader *r, TrainCheckpoint *out) {
    const char *p = r->path;
    hid_t f = r->f;
    int64_t lower;
    if (h5a_get_i64(p, f, "/", "step", &out->step) ||
        h5a_get_i64(p, f, "/", "epoch", &out->epoch) ||
        h5a_get_i64(p, f, "/", "batch_cursor", &out->batch_cursor) ||
        h5a_get_i64(p, f, "/", "samples_seen", &out->samples_seen) ||
        h5a_get_i64(p, f, "/", "optimizer_steps", &out->optimizer_steps) ||
        h5a_get_u64(p, f, "/", "rng_seed", &out->rng_seed) ||
        h5a_get_u64(p, f, "/", "rng_counter", &out->rng_counter) ||
        h5a_get_u64(p, f, "/", "data_seed", &out->data_seed) ||
        h5a_get_f64(p, f, "/", "best_metric", &out->best_metric) ||
        h5a_get_i64(p, f, "/", "best_step", &out->best_step) ||
        h5a_get_i64(p, f, "/", "metrics_offset", &out->metrics_offset) ||
        h5a_get_i64(p, f, "/", "do_lower_case", &lower))
        return DISTILL_ERR;
    out->do_lower_case = lower != 0;
    out->bad_steps = 0; /* absent in checkpoints written before train.max_bad_steps existed */
    if (h5a_has(f, "bad_steps") && h5a_get_i64(p, f, "/", "bad_steps", &out->bad_steps)) return DISTILL_ERR;
    /* absent in checkpoints written before `stages:` existed: stage 0, its step is the step */
    out->stage = 0;
    out->stage_step = out->step;
    if (h5a_has(f, "stage") && h5a_get_i64(p, f, "/", "stage", &out->stage)) return DISTILL_ERR;
    if (h5a_has(f, "stage_step") && h5a_get_i64(p, f, "/", "stage_step", &out->stage_step)) return DISTILL_ERR;
    if (out->stage < 0 || out->stage_step < 0 || out->stage_step > out->step ||
        (out->stage == 0 && out->stage_step != out->step)) {
        distill_set_error("%s: stage %lld, stage_step %lld: expected a stage >= 0 and 0 <= stage_step <= step (%lld), "
                          "stage_step = step in stage 0",
                          r->path, (long long)out->stage, (long long)out->stage_step, (long long)out->step);
        return DISTILL_ERR;
    }
    if (h5a_has(f, "label_names") &&
        h5a_get_strs(p, f, "/", "label_names", &out->label_names, &out->n_label_names))
        return DISTILL_ERR;
    if (path_exists(f, "/vocab") && h5d_get_strs(p, f, "/vocab", &out->vocab, &out->n_vocab))
        return DISTILL_ERR;
    if (path_exists(f, "/config_yaml") && h5d_get_str(p, f, "/config_yaml", &out->config_yaml))
        return DISTILL_ERR;
    return DISTILL_OK;
}

static Status check_hash(Reader *r, const char *attr, const uint8_t computed[SHA256_LEN]) {
    char hex[2 * SHA256_LEN + 1], *stored = NULL;
    sha_hex(computed, hex);
    if (h5a_get_str(r->path, r->f, "/", attr, &stored) != DISTILL_OK) return DISTILL_ERR;
    bool ok = strcmp(stored, hex) == 0;
    if (!ok)
        distill_set_error("%s: content hash mismatch: stored %s %.16s..., the file's contents give "
                          "%.16s... (the file is corrupted or was modified)", r->path, attr, stored,
                          hex);
    free(stored);
    return ok ? DISTILL_OK : DISTILL_ERR;
}

static Status load_common(const char *path, Device device, TrainCheckpoint *out, bool full) {
    ckpt_init(out);
    out->device = device;
    out->owned = true;
    if (!backend_for(device.type)) {
        char db[32];
        distill_set_error("%s: cannot load onto device %s: this build has no backend for it", path,
                          device_str(device, db, sizeof db));
        return DISTILL_ERR;
    }
    H5Quiet q;
    h5_quiet_begin(&q);
    Reader r = {.path = path, .f = H5I_INVALID_HID};
    BertConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    Status st = DISTILL_ERR;
    if (ckpt_open_read(path, &r.f) != DISTILL_OK) goto done;
    int64_t complete = 0;
    if (!h5a_has(r.f, "complete") || h5a_get_i64(path, r.f, "/", "complete", &complete) ||
        complete != 1) {
        distill_set_error("%s: incomplete checkpoint: expected the 'complete' marker on /, found "
                          "none (the write was interrupted)", path);
        goto done;
    }
    if (load_student(&r, device, out, &cfg) || load_state(&r, out)) goto done;
    uint8_t hs[SHA256_LEN], hf[SHA256_LEN];
    ckpt_hash_student(&out->student->cfg, out, &r.dl, hs);
    if (check_hash(&r, "student_sha256", hs)) goto done;
    if (full) {
        if (load_projections(&r, device, out) ||
            load_moments(&r, "student", out->student->params, &out->m_student, &out->v_student) ||
            load_moments(&r, "projections", out->projections, &out->m_proj, &out->v_proj))
            goto done;
        ckpt_hash_full(out, hs, &r.dl, hf);
        if (check_hash(&r, "sha256", hf)) goto done;
    }
    st = DISTILL_OK;
done:
    if (r.f >= 0) H5Fclose(r.f);
    h5_quiet_end(&q);
    digests_free(&r.dl);
    free(r.scratch);
    bert_config_free_labels(&cfg);
    if (st != DISTILL_OK) ckpt_free(out);
    return st;
}

Status ckpt_load(const char *path, Device device, TrainCheckpoint *out) {
    return load_common(path, device, out, true);
}

Status ckpt_load_model_only(const char *path, Device device, TrainCheckpoint *out) {
    return load_common(path, device, out, false);
}

Status ckpt_verify(const char *path) {
    TrainCheckpoint ck;
    Status st = ckpt_load(path, device_cpu(), &ck);
    ckpt_free(&ck);
    return st;
}

/* ================================================================ copy into existing stores */

Status ckpt_copy_store(ParamStore *dst, float *dst_m, float *dst_v, const ParamStore *src,
                       const float *src_m, const float *src_v) {
    DCHECK(dst->finalized && src->finalized);
    if (dst->n != src->n) {
        distill_set_error("checkpoint: expected %d tensors to match the model, found %d", dst->n,
                          src->n);
        return DISTILL_ERR;
    }
    for (int i = 0; i < dst->n; i++) {
        int j = params_index(src, dst->tensors[i]->name);
        char a[64], b[64];
        if (j < 0) {
            distill_set_error("checkpoint: expected tensor '%s', found none",
                              dst->tensors[i]->name);
            return DISTILL_ERR;
        }
        if (!tensor_same_shape(dst->tensors[i], src->tensors[j])) {
            distill_set_error("checkpoint: tensor '%s': expected shape %s, found %s",
                              dst->tensors[i]->name, tensor_shape_str(dst->tensors[i], a, sizeof a),
                              tensor_shape_str(src->tensors[j], b, sizeof b));
            return DISTILL_ERR;
        }
    }
    float *dm[2] = {dst_m, dst_v};
    const float *sm[2] = {src_m, src_v};
    for (int k = 0; k < 2; k++)
        if (dm[k]) params_buffer_zero(dst, dm[k], dst->total ? dst->total : 1);
    for (int i = 0; i < dst->n; i++) {
        int j = params_index(src, dst->tensors[i]->name);
        size_t n = dst->tensors[i]->numel, od = dst->offsets[i], os = src->offsets[j];
        params_buffer_copy(dst, dst->data + od, src, src->data + os, n);
        for (int k = 0; k < 2; k++)
            if (dm[k] && sm[k]) params_buffer_copy(dst, dm[k] + od, src, sm[k] + os, n);
    }
    return DISTILL_OK;
}
