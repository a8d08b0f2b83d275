/*
 * ckpt_h5.c — the checkpoint's HDF5 helpers (attributes, string datasets, error text), its SHA-256
 * content hash, and the BertConfig <-> /student attribute mapping. See ckpt_internal.h.
 *
 * Promise: every helper either succeeds or returns DISTILL_ERR with a message that starts with
 * the file's path and names the object and attribute involved; none leaks an HDF5 id.
 */
#define _POSIX_C_SOURCE 200809L
#include "ckpt_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#if H5_VERSION_GE(1, 12, 0)
#define VLEN_RECLAIM(type, space, buf) H5Treclaim((type), (space), H5P_DEFAULT, (buf))
#else
#define VLEN_RECLAIM(type, space, buf) H5Dvlen_reclaim((type), (space), H5P_DEFAULT, (buf))
#endif

/* ================================================================ errors */

void h5_quiet_begin(H5Quiet *q) {
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void h5_quiet_end(const H5Quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->fn, q->data); }

static _Thread_local char g_h5_text[512];

/* The innermost entry's text, on one line. HDF5's I/O failures are long ("file write failed:
 * time = ..., filename = ..., errno = 28, error message = 'No space left on device', ..."): keep
 * the head and the system's message. */
static herr_t take_innermost(unsigned n, const H5E_error2_t *err, void *data) {
    (void)data;
    if (n != 0 || !err->desc || !err->desc[0]) return 0;
    const char *d = err->desc, *sys = strstr(d, "error message = '");
    if (sys) {
        const char *colon = strchr(d, ':');
        int head = colon ? (int)(colon - d) : 0;
        sys += strlen("error message = '");
        const char *end = strchr(sys, '\'');
        int len = end ? (int)(end - sys) : (int)strlen(sys);
        snprintf(g_h5_text, sizeof g_h5_text, "%.*s: %.*s", head, d, len, sys);
    } else {
        snprintf(g_h5_text, sizeof g_h5_text, "%s", d);
    }
    for (char *c = g_h5_text; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    return 0;
}

const char *h5_error_text(void) {
    g_h5_text[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_innermost, NULL);
    if (!g_h5_text[0]) snprintf(g_h5_text, sizeof g_h5_text, "no HDF5 detail");
    return g_h5_text;
}

Status ckpt_open_read(const char *path, hid_t *file_out) {
    *file_out = H5I_INVALID_HID;
    if (access(path, R_OK) != 0) {
        distill_set_error("%s: cannot open checkpoint: %s", path, strerror(errno));
        return DISTILL_ERR;
    }
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        distill_set_error("%s: expected an HDF5 checkpoint, found a file without an HDF5 signature",
                          path);
        return DISTILL_ERR;
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f < 0) /* before any other HDF5 call, which would clear the error stack */
        distill_set_error("%s: cannot be read as HDF5 (truncated or corrupted): %s", path,
                          h5_error_text());
    H5Pclose(fapl);
    if (f < 0) return DISTILL_ERR;
    char *fmt = NULL;
    int64_t version = 0;
    if (!h5a_has(f, "format")) {
        distill_set_error("%s: not a distill checkpoint: expected attribute 'format' = '%s' on /, "
                          "found none", path, CKPT_FORMAT);
        goto fail;
    }
    if (h5a_get_str(path, f, "/", "format", &fmt) != DISTILL_OK) goto fail;
    if (strcmp(fmt, CKPT_FORMAT) != 0) {
        distill_set_error("%s: not a distill checkpoint: expected format '%s', found '%s'", path,
                          CKPT_FORMAT, fmt);
        goto fail;
    }
    if (h5a_get_i64(path, f, "/", "format_version", &version) != DISTILL_OK) goto fail;
    if (version < 1 || version > CKPT_FORMAT_VERSION) {
        distill_set_error("%s: expected checkpoint format_version 1..%d, found %lld", path,
                          CKPT_FORMAT_VERSION, (long long)version);
        goto fail;
    }
    free(fmt);
    *file_out = f;
    return DISTILL_OK;
fail:
    free(fmt);
    H5Fclose(f);
    return DISTILL_ERR;
}

/* ================================================================ attributes */

static hid_t vlen_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static const char *obj_name(hid_t obj, char *buf, size_t n) {
    if (H5Iget_name(obj, buf, n) <= 0) snprintf(buf, n, "?");
    return buf;
}

static Status put_attr(const char *path, hid_t obj, const char *name, hid_t ftype, hid_t mtype,
                       int rank, hsize_t n, const void *data) {
    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = H5I_INVALID_HID;
    herr_t rc = -1;
    if (sp >= 0 && (H5Aexists(obj, name) <= 0 || H5Adelete(obj, name) >= 0)) {
        a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) rc = H5Awrite(a, mtype, data);
    }
    if (rc < 0) {
        char on[256], why[512];
        snprintf(why, sizeof why, "%s", h5_error_text()); /* before H5Iget_name clears it */
        distill_set_error("%s: %s: cannot write attribute '%s': %s", path,
                          obj_name(obj, on, sizeof on), name, why);
    }
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return rc < 0 ? DISTILL_ERR : DISTILL_OK;
}

Status h5a_put_i64(const char *path, hid_t obj, const char *name, int64_t v) {
    return put_attr(path, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, 1, &v);
}
Status h5a_put_u64(const char *path, hid_t obj, const char *name, uint64_t v) {
    return put_attr(path, obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 0, 1, &v);
}
Status h5a_put_f64(const char *path, hid_t obj, const char *name, double v) {
    return put_attr(path, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, 1, &v);
}
Status h5a_put_f32(const char *path, hid_t obj, const char *name, float v) {
    return put_attr(path, obj, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 0, 1, &v);
}
Status h5a_put_str(const char *path, hid_t obj, const char *name, const char *s) {
    hid_t t = vlen_str_type();
    const char *p = s ? s : "";
    Status st = put_attr(path, obj, name, t, t, 0, 1, &p);
    H5Tclose(t);
    return st;
}
Status h5a_put_strs(const char *path, hid_t obj, const char *name, const char *const *s, size_t n) {
    DCHECK(n > 0);
    const char **p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = s[i] ? s[i] : "";
    hid_t t = vlen_str_type();
    Status st = put_attr(path, obj, name, t, t, 1, n, p);
    H5Tclose(t);
    free(p);
    return st;
}
Status h5a_put_u8s(const char *path, hid_t obj, const char *name, const uint8_t *v, size_t n) {
    DCHECK(n > 0);
    return put_attr(path, obj, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, n, v);
}

bool h5a_has(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

/* Opens attribute `name`, checking its type class and element count (n_expect 0 = any). */
static Status open_attr(const char *path, hid_t obj, const char *on, const char *name,
                        H5T_class_t cls, const char *cls_name, hssize_t n_expect,
                        hid_t *a_out, hssize_t *n_out) {
    *a_out = H5I_INVALID_HID;
    if (H5Aexists(obj, name) <= 0) {
        distill_set_error("%s: %s: expected attribute '%s', found none", path, on, name);
        return DISTILL_ERR;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) {
        distill_set_error("%s: %s: cannot open attribute '%s': %s", path, on, name, h5_error_text());
        return DISTILL_ERR;
    }
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t c = H5Tget_class(t);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    bool vlen_ok = cls != H5T_STRING || H5Tis_variable_str(t) > 0;
    H5Tclose(t);
    H5Sclose(sp);
    if (c != cls || !vlen_ok) {
        distill_set_error("%s: %s: attribute '%s': expected %s, found another type", path, on,
                          name, cls_name);
        H5Aclose(a);
        return DISTILL_ERR;
    }
    if (n < 0 || (n_expect > 0 && n != n_expect)) {
        distill_set_error("%s: %s: attribute '%s': expected %lld element(s), found %lld", path, on,
                          name, (long long)n_expect, (long long)n);
        H5Aclose(a);
        return DISTILL_ERR;
    }
    *a_out = a;
    if (n_out) *n_out = n;
    return DISTILL_OK;
}

static Status read_attr(const char *path, hid_t obj, const char *on, const char *name,
                        H5T_class_t cls, const char *cls_name, hid_t mtype, void *v) {
    hid_t a;
    if (open_attr(path, obj, on, name, cls, cls_name, 1, &a, NULL) != DISTILL_OK) return DISTILL_ERR;
    herr_t rc = H5Aread(a, mtype, v);
    H5Aclose(a);
    if (rc < 0) {
        distill_set_error("%s: %s: cannot read attribute '%s' as %s: %s", path, on, name, cls_name,
                          h5_error_text());
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

Status h5a_get_i64(const char *path, hid_t obj, const char *on, const char *name, int64_t *v) {
    return read_attr(path, obj, on, name, H5T_INTEGER, "an integer", H5T_NATIVE_INT64, v);
}
Status h5a_get_u64(const char *path, hid_t obj, const char *on, const char *name, uint64_t *v) {
    return read_attr(path, obj, on, name, H5T_INTEGER, "an unsigned integer", H5T_NATIVE_UINT64, v);
}
Status h5a_get_f64(const char *path, hid_t obj, const char *on, const char *name, double *v) {
    return read_attr(path, obj, on, name, H5T_FLOAT, "a float", H5T_NATIVE_DOUBLE, v);
}
Status h5a_get_f32(const char *path, hid_t obj, const char *on, const char *name, float *v) {
    return read_attr(path, obj, on, name, H5T_FLOAT, "a float", H5T_NATIVE_FLOAT, v);
}

Status h5a_get_int_in(const char *path, hid_t obj, const char *on, const char *name, int64_t lo,
                      int64_t hi, int *v) {
    int64_t x;
    if (h5a_get_i64(path, obj, on, name, &x) != DISTILL_OK) return DISTILL_ERR;
    if (x < lo || x > hi) {
        distill_set_error("%s: %s: expected %s in [%lld, %lld], found %lld", path, on, name,
                          (long long)lo, (long long)hi, (long long)x);
        return DISTILL_ERR;
    }
    *v = (int)x;
    return DISTILL_OK;
}

/* Copies n vlen strings out of an HDF5 buffer (NULL entries become ""). */
static char **copy_strs(char **buf, hssize_t n) {
    char **out = xcalloc((size_t)(n > 0 ? n : 1), sizeof *out);
    for (hssize_t i = 0; i < n; i++) out[i] = xstrdup(buf[i] ? buf[i] : "");
    return out;
}

Status h5a_get_str(const char *path, hid_t obj, const char *on, const char *name, char **s) {
    char **v;
    int n;
    if (h5a_get_strs(path, obj, on, name, &v, &n) != DISTILL_OK) return DISTILL_ERR;
    if (n != 1) {
        distill_set_error("%s: %s: attribute '%s': expected one string, found %d", path, on, name, n);
        strs_free(v, n);
        return DISTILL_ERR;
    }
    *s = v[0];
    free(v);
    return DISTILL_OK;
}

Status h5a_get_strs(const char *path, hid_t obj, const char *on, const char *name, char ***s, int *n) {
    hid_t a;
    hssize_t cnt;
    if (open_attr(path, obj, on, name, H5T_STRING, "a variable-length string", 0, &a, &cnt) !=
        DISTILL_OK)
        return DISTILL_ERR;
    hid_t t = vlen_str_type(), sp = H5Aget_space(a);
    char **buf = xcalloc((size_t)(cnt > 0 ? cnt : 1), sizeof *buf);
    herr_t rc = H5Aread(a, t, buf);
    if (rc >= 0) {
        *s = copy_strs(buf, cnt);
        *n = (int)cnt;
        VLEN_RECLAIM(t, sp, buf);
    } else {
        distill_set_error("%s: %s: cannot read attribute '%s': %s", path, on, name, h5_error_text());
    }
    free(buf);
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    return rc < 0 ? DISTILL_ERR : DISTILL_OK;
}

Status h5a_get_u8s(const char *path, hid_t obj, const char *on, const char *name, uint8_t *v,
                   size_t n) {
    hid_t a;
    if (open_attr(path, obj, on, name, H5T_INTEGER, "uint8 values", (hssize_t)n, &a, NULL) !=
        DISTILL_OK)
        return DISTILL_ERR;
    herr_t rc = H5Aread(a, H5T_NATIVE_UINT8, v);
    H5Aclose(a);
    if (rc < 0) {
        distill_set_error("%s: %s: cannot read attribute '%s': %s", path, on, name, h5_error_text());
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

void strs_free(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* ================================================================ string datasets */

bool h5_link_exists(hid_t loc, const char *name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

static Status put_str_dset(const char *path, hid_t loc, const char *name, int rank,
                           const char *const *s, size_t n) {
    hsize_t dims = n;
    hid_t t = vlen_str_type();
    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, NULL);
    const char **p = xmalloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = s[i] ? s[i] : "";
    hid_t d = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, p);
    if (rc < 0) distill_set_error("%s: cannot write dataset '%s': %s", path, name, h5_error_text());
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    free(p);
    return rc < 0 ? DISTILL_ERR : DISTILL_OK;
}

Status h5d_put_strs(const char *path, hid_t loc, const char *name, const char *const *s, size_t n) {
    DCHECK(n > 0);
    return put_str_dset(path, loc, name, 1, s, n);
}

Status h5d_put_str(const char *path, hid_t loc, const char *name, const char *s) {
    return put_str_dset(path, loc, name, 0, &s, 1);
}

Status h5d_get_strs(const char *path, hid_t loc, const char *name, char ***s, int *n) {
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) {
        distill_set_error("%s: expected dataset '%s', cannot open it: %s", path, name, h5_error_text());
        return DISTILL_ERR;
    }
    hid_t ft = H5Dget_type(d), sp = H5Dget_space(d), t = vlen_str_type();
    bool ok_type = H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) > 0;
    hssize_t cnt = H5Sget_simple_extent_npoints(sp);
    herr_t rc = -1;
    char **buf = NULL;
    if (!ok_type || cnt < 0 || cnt > INT32_MAX) {
        distill_set_error("%s: dataset '%s': expected variable-length strings, found another type",
                          path, name);
    } else {
        buf = xcalloc((size_t)(cnt ? cnt : 1), sizeof *buf);
        rc = H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (rc >= 0) {
            *s = copy_strs(buf, cnt);
            *n = (int)cnt;
            VLEN_RECLAIM(t, sp, buf);
        } else {
            distill_set_error("%s: cannot read dataset '%s': %s", path, name, h5_error_text());
        }
    }
    free(buf);
    H5Tclose(t);
    H5Tclose(ft);
    H5Sclose(sp);
    H5Dclose(d);
    return rc < 0 ? DISTILL_ERR : DISTILL_OK;
}

Status h5d_get_str(const char *path, hid_t loc, const char *name, char **s) {
    char **v;
    int n;
    if (h5d_get_strs(path, loc, name, &v, &n) != DISTILL_OK) return DISTILL_ERR;
    if (n != 1) {
        distill_set_error("%s: dataset '%s': expected one string, found %d", path, name, n);
        strs_free(v, n);
        return DISTILL_ERR;
    }
    *s = v[0];
    free(v);
    return DISTILL_OK;
}

/* ================================================================ SHA-256 */

void sha_begin(Sha256 *h) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    DCHECK(c != NULL);
    DCHECK(EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1);
    h->ctx = c;
}

void sha_bytes(Sha256 *h, const void *p, size_t n) {
    if (n) DCHECK(EVP_DigestUpdate((EVP_MD_CTX *)h->ctx, p, n) == 1);
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

void sha_f32s(Sha256 *h, const float *x, size_t n) {
    if (host_is_little_endian()) {
        sha_bytes(h, x, n * sizeof(float));
        return;
    }
    uint8_t buf[4096];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < sizeof buf / 4 && i < n; k++, i++) {
            uint32_t b;
            memcpy(&b, &x[i], 4);
            for (int j = 0; j < 4; j++) buf[4 * k + j] = (uint8_t)(b >> (8 * j));
        }
        sha_bytes(h, buf, 4 * k);
    }
}

void sha_end(Sha256 *h, uint8_t out[SHA256_LEN]) {
    unsigned len = 0;
    DCHECK(EVP_DigestFinal_ex((EVP_MD_CTX *)h->ctx, out, &len) == 1 && len == SHA256_LEN);
    EVP_MD_CTX_free((EVP_MD_CTX *)h->ctx);
    h->ctx = NULL;
}

static void sha_u64_le(Sha256 *h, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    sha_bytes(h, b, 8);
}

static void sha_string(Sha256 *h, const char *s) {
    if (!s) {
        sha_u64_le(h, UINT64_MAX);
        return;
    }
    size_t n = strlen(s);
    sha_u64_le(h, n);
    sha_bytes(h, s, n);
}

void sha_field_i64(Sha256 *h, const char *name, int64_t v) {
    sha_string(h, name);
    sha_u64_le(h, (uint64_t)v);
}
void sha_field_u64(Sha256 *h, const char *name, uint64_t v) {
    sha_string(h, name);
    sha_u64_le(h, v);
}
void sha_field_f64(Sha256 *h, const char *name, double v) {
    uint64_t b;
    memcpy(&b, &v, 8);
    sha_field_u64(h, name, b);
}
void sha_field_f32(Sha256 *h, const char *name, float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    sha_field_u64(h, name, b);
}
void sha_field_str(Sha256 *h, const char *name, const char *s) {
    sha_string(h, name);
    sha_string(h, s);
}

void sha_hex(const uint8_t d[SHA256_LEN], char out[2 * SHA256_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * SHA256_LEN] = '\0';
}

void digests_add(DigestList *dl, const char *key, int ndim, const int *shape,
                 const uint8_t digest[SHA256_LEN]) {
    if (dl->n == dl->cap) {
        dl->cap = dl->cap ? 2 * dl->cap : 64;
        dl->v = xrealloc(dl->v, (size_t)dl->cap * sizeof *dl->v);
    }
    TensorDigest *e = &dl->v[dl->n++];
    memset(e, 0, sizeof *e);
    e->key = xstrdup(key);
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->dims[i] = shape[i];
    memcpy(e->digest, digest, SHA256_LEN);
}

static int cmp_digest(const void *a, const void *b) {
    return strcmp(((const TensorDigest *)a)->key, ((const TensorDigest *)b)->key);
}

void digests_feed(Sha256 *h, DigestList *dl, const char *prefix) {
    qsort(dl->v, (size_t)dl->n, sizeof *dl->v, cmp_digest);
    size_t plen = strlen(prefix);
    for (int i = 0; i < dl->n; i++) {
        const TensorDigest *e = &dl->v[i];
        if (strncmp(e->key, prefix, plen) != 0) continue;
        sha_string(h, e->key);
        sha_u64_le(h, (uint64_t)e->ndim);
        for (int d = 0; d < e->ndim; d++) sha_u64_le(h, (uint64_t)e->dims[d]);
        sha_bytes(h, e->digest, SHA256_LEN);
    }
}

void digests_free(DigestList *dl) {
    for (int i = 0; i < dl->n; i++) free(dl->v[i].key);
    free(dl->v);
    memset(dl, 0, sizeof *dl);
}

/* The number of id2label entries stored for a config. */
static int n_id2label(const BertConfig *cfg) {
    return cfg->num_labels < BERT_MAX_LABELS ? cfg->num_labels : BERT_MAX_LABELS;
}

static void hash_config(Sha256 *h, const BertConfig *c) {
    sha_field_i64(h, "vocab_size", c->vocab_size);
    sha_field_i64(h, "hidden_size", c->hidden_size);
    sha_field_i64(h, "num_hidden_layers", c->num_hidden_layers);
    sha_field_i64(h, "num_attention_heads", c->num_attention_heads);
    sha_field_i64(h, "intermediate_size", c->intermediate_size);
    sha_field_i64(h, "max_position_embeddings", c->max_position_embeddings);
    sha_field_i64(h, "type_vocab_size", c->type_vocab_size);
    sha_field_i64(h, "num_labels", c->num_labels);
    sha_field_f32(h, "layer_norm_eps", c->layer_norm_eps);
    sha_field_f32(h, "hidden_dropout_prob", c->hidden_dropout_prob);
    sha_field_f32(h, "attention_probs_dropout_prob", c->attention_probs_dropout_prob);
    sha_field_f32(h, "classifier_dropout", c->classifier_dropout);
    sha_field_f32(h, "initializer_range", c->initializer_range);
    sha_field_i64(h, "pad_token_id", c->pad_token_id);
    sha_field_i64(h, "has_pooler", c->has_pooler);
    sha_field_str(h, "problem_type", c->problem_type);
    /* NULL ("LABEL_i") and "" are stored alike, so they hash alike. */
    for (int i = 0; i < n_id2label(c); i++)
        sha_field_str(h, "id2label", c->id2label[i] ? c->id2label[i] : "");
}

void ckpt_hash_student(const BertConfig *cfg, const TrainCheckpoint *ck, DigestList *dl,
                       uint8_t out[SHA256_LEN]) {
    Sha256 h;
    sha_begin(&h);
    sha_field_str(&h, "format", CKPT_FORMAT);
    hash_config(&h, cfg);
    digests_feed(&h, dl, "/student/");
    sha_field_i64(&h, "n_vocab", ck->n_vocab);
    for (int i = 0; i < ck->n_vocab; i++) sha_field_str(&h, "vocab", ck->vocab[i] ? ck->vocab[i] : "");
    sha_field_i64(&h, "do_lower_case", ck->do_lower_case);
    sha_field_i64(&h, "n_label_names", ck->n_label_names);
    for (int i = 0; i < ck->n_label_names; i++)
        sha_field_str(&h, "label_names", ck->label_names[i] ? ck->label_names[i] : "");
    sha_end(&h, out);
}

void ckpt_hash_full(const TrainCheckpoint *ck, const uint8_t student[SHA256_LEN], DigestList *dl,
                    uint8_t out[SHA256_LEN]) {
    Sha256 h;
    sha_begin(&h);
    sha_bytes(&h, student, SHA256_LEN);
    digests_feed(&h, dl, "/projections/");
    digests_feed(&h, dl, "/optim/");
    sha_field_i64(&h, "step", ck->step);
    sha_field_i64(&h, "epoch", ck->epoch);
    sha_field_i64(&h, "batch_cursor", ck->batch_cursor);
    sha_field_i64(&h, "samples_seen", ck->samples_seen);
    sha_field_i64(&h, "optimizer_steps", ck->optimizer_steps);
    sha_field_u64(&h, "rng_seed", ck->rng_seed);
    sha_field_u64(&h, "rng_counter", ck->rng_counter);
    sha_field_u64(&h, "data_seed", ck->data_seed);
    sha_field_f64(&h, "best_metric", ck->best_metric);
    sha_field_i64(&h, "best_step", ck->best_step);
    sha_field_i64(&h, "metrics_offset", ck->metrics_offset);
    sha_field_str(&h, "config_yaml", ck->config_yaml);
    sha_end(&h, out);
}

/* ================================================================ BertConfig */

Status ckpt_put_config(const char *path, hid_t g, const BertConfig *c) {
    Status st = DISTILL_OK;
    st |= h5a_put_i64(path, g, "vocab_size", c->vocab_size);
    st |= h5a_put_i64(path, g, "hidden_size", c->hidden_size);
    st |= h5a_put_i64(path, g, "num_hidden_layers", c->num_hidden_layers);
    st |= h5a_put_i64(path, g, "num_attention_heads", c->num_attention_heads);
    st |= h5a_put_i64(path, g, "intermediate_size", c->intermediate_size);
    st |= h5a_put_i64(path, g, "max_position_embeddings", c->max_position_embeddings);
    st |= h5a_put_i64(path, g, "type_vocab_size", c->type_vocab_size);
    st |= h5a_put_i64(path, g, "num_labels", c->num_labels);
    st |= h5a_put_f32(path, g, "layer_norm_eps", c->layer_norm_eps);
    st |= h5a_put_f32(path, g, "hidden_dropout_prob", c->hidden_dropout_prob);
    st |= h5a_put_f32(path, g, "attention_probs_dropout_prob", c->attention_probs_dropout_prob);
    st |= h5a_put_f32(path, g, "classifier_dropout", c->classifier_dropout);
    st |= h5a_put_f32(path, g, "initializer_range", c->initializer_range);
    st |= h5a_put_i64(path, g, "pad_token_id", c->pad_token_id);
    st |= h5a_put_i64(path, g, "has_pooler", c->has_pooler);
    st |= h5a_put_str(path, g, "problem_type", c->problem_type);
    if (n_id2label(c) > 0)
        st |= h5a_put_strs(path, g, "id2label", (const char *const *)c->id2label,
                           (size_t)n_id2label(c));
    return st ? DISTILL_ERR : DISTILL_OK;
}

static Status check_prob(const char *path, const char *name, float p, bool allow_negative) {
    if (isfinite(p) && p < 1.0f && (p >= 0.0f || allow_negative)) return DISTILL_OK;
    distill_set_error("%s: /student: expected %s in [0, 1)%s, found %g", path, name,
                      allow_negative ? " (or < 0 for none)" : "", (double)p);
    return DISTILL_ERR;
}

Status ckpt_get_config(const char *path, hid_t g, BertConfig *c) {
    memset(c, 0, sizeof *c);
    const char *on = "/student";
    int64_t pooler;
    char *problem = NULL;
    /* Upper bounds keep every tensor's element count inside int and the totals inside size_t. */
    if (h5a_get_int_in(path, g, on, "vocab_size", 1, 1 << 24, &c->vocab_size) ||
        h5a_get_int_in(path, g, on, "hidden_size", 1, 1 << 16, &c->hidden_size) ||
        h5a_get_int_in(path, g, on, "num_hidden_layers", 0, 1024, &c->num_hidden_layers) ||
        h5a_get_int_in(path, g, on, "num_attention_heads", 1, 1 << 12, &c->num_attention_heads) ||
        h5a_get_int_in(path, g, on, "intermediate_size", 1, 1 << 18, &c->intermediate_size) ||
        h5a_get_int_in(path, g, on, "max_position_embeddings", 1, 1 << 20,
                       &c->max_position_embeddings) ||
        h5a_get_int_in(path, g, on, "type_vocab_size", 1, 1 << 16, &c->type_vocab_size) ||
        h5a_get_int_in(path, g, on, "num_labels", 0, 1 << 20, &c->num_labels) ||
        h5a_get_f32(path, g, on, "layer_norm_eps", &c->layer_norm_eps) ||
        h5a_get_f32(path, g, on, "hidden_dropout_prob", &c->hidden_dropout_prob) ||
        h5a_get_f32(path, g, on, "attention_probs_dropout_prob", &c->attention_probs_dropout_prob) ||
        h5a_get_f32(path, g, on, "classifier_dropout", &c->classifier_dropout) ||
        h5a_get_f32(path, g, on, "initializer_range", &c->initializer_range) ||
        h5a_get_int_in(path, g, on, "pad_token_id", 0, c->vocab_size - 1, &c->pad_token_id) ||
        h5a_get_i64(path, g, on, "has_pooler", &pooler) ||
        h5a_get_str(path, g, on, "problem_type", &problem))
        goto fail;
    c->has_pooler = pooler != 0;
    if (c->hidden_size % c->num_attention_heads != 0) {
        distill_set_error("%s: /student: expected hidden_size (%d) to be a multiple of "
                          "num_attention_heads, found %d heads", path, c->hidden_size,
                          c->num_attention_heads);
        goto fail;
    }
    if (!(isfinite(c->layer_norm_eps) && c->layer_norm_eps > 0.0f)) {
        distill_set_error("%s: /student: expected layer_norm_eps > 0, found %g", path,
                          (double)c->layer_norm_eps);
        goto fail;
    }
    if (!(isfinite(c->initializer_range) && c->initializer_range >= 0.0f)) {
        distill_set_error("%s: /student: expected initializer_range >= 0, found %g", path,
                          (double)c->initializer_range);
        goto fail;
    }
    if (check_prob(path, "hidden_dropout_prob", c->hidden_dropout_prob, false) ||
        check_prob(path, "attention_probs_dropout_prob", c->attention_probs_dropout_prob, false) ||
        check_prob(path, "classifier_dropout", c->classifier_dropout, true))
        goto fail;
    if (strlen(problem) >= sizeof c->problem_type) {
        distill_set_error("%s: /student: expected problem_type of at most %zu bytes, found '%s'",
                          path, sizeof c->problem_type - 1, problem);
        goto fail;
    }
    strcpy(c->problem_type, problem);
    free(problem);
    problem = NULL;
    if (n_id2label(c) > 0) {
        char **names;
        int n;
        if (h5a_get_strs(path, g, on, "id2label", &names, &n) != DISTILL_OK) goto fail;
        if (n != n_id2label(c)) {
            distill_set_error("%s: /student: expected %d id2label entries (num_labels %d), found %d",
                              path, n_id2label(c), c->num_labels, n);
            strs_free(names, n);
            goto fail;
        }
        for (int i = 0; i < n; i++) {
            if (names[i][0]) c->id2label[i] = names[i]; /* "" = LABEL_i (NULL) */
            else free(names[i]);
        }
        free(names);
    }
    return DISTILL_OK;
fail:
    free(problem);
    bert_config_free_labels(c);
    return DISTILL_ERR;
}
