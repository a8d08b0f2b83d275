/*
 * h5.c — HDF5 error text, quiet mode, attribute and string-dataset helpers (see h5.h for the
 * promises). Merged from data/h5util.c and the helper half of checkpoints/ckpt_h5.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "h5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if H5_VERSION_GE(1, 12, 0)
#define VLEN_RECLAIM(type, space, buf) H5Treclaim((type), (space), H5P_DEFAULT, (buf))
#else
#define VLEN_RECLAIM(type, space, buf) H5Dvlen_reclaim((type), (space), H5P_DEFAULT, (buf))
#endif

/* "<path>: " or nothing, as two %s arguments. */
#define PFX(path) ((path) ? (path) : ""), ((path) ? ": " : "")

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

void h5_setup(void) { H5dont_atexit(); }

const char *h5_error_text(void) {
    g_h5_text[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_innermost, NULL);
    if (!g_h5_text[0]) snprintf(g_h5_text, sizeof g_h5_text, "no HDF5 detail");
    return g_h5_text;
}

/* ================================================================ strings */

static hid_t vlen_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

void h5_strs_free(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* Reads the n strings of file type ft from attribute a (>= 0) or dataset d (>= 0) whose dataspace
 * is sp: variable-length ones converted to C strings, fixed-length ones copied and terminated
 * (null-padded in memory, so a string that fills its width keeps its last byte). */
static herr_t read_strs(hid_t a, hid_t d, hid_t ft, hid_t sp, hssize_t n, char ***out) {
    char **v = xcalloc((size_t)(n > 0 ? n : 1), sizeof *v);
    herr_t e;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ft));
    if (H5Tis_variable_str(ft) > 0) {
        char **buf = xcalloc((size_t)(n > 0 ? n : 1), sizeof *buf);
        H5Tset_size(mt, H5T_VARIABLE);
        e = a >= 0 ? H5Aread(a, mt, buf) : H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (e >= 0) {
            for (hssize_t i = 0; i < n; i++) v[i] = xstrdup(buf[i] ? buf[i] : "");
            VLEN_RECLAIM(mt, sp, buf);
        }
        free(buf);
    } else {
        size_t size = H5Tget_size(ft);
        char *buf = xmalloc((size_t)(n > 0 ? n : 1) * size + 1);
        H5Tset_size(mt, size);
        H5Tset_strpad(mt, H5T_STR_NULLPAD);
        e = a >= 0 ? H5Aread(a, mt, buf) : H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (e >= 0)
            for (hssize_t i = 0; i < n; i++) {
                v[i] = xmalloc(size + 1);
                memcpy(v[i], buf + (size_t)i * size, size);
                v[i][size] = '\0';
            }
        free(buf);
    }
    H5Tclose(mt);
    if (e < 0) {
        free(v);
        return e;
    }
    *out = v;
    return e;
}

/* ================================================================ attributes: write */

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
        distill_set_error("%s%s%s: cannot write attribute '%s': %s", PFX(path),
                          obj_name(obj, on, sizeof on), name, why);
    }
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return rc < 0 ? DISTILL_ERR : DISTILL_OK;
}

Status h5a_put_int(const char *path, hid_t obj, const char *name, hid_t file_type, int64_t v) {
    return put_attr(path, obj, name, file_type, H5T_NATIVE_INT64, 0, 1, &v);
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

/* ================================================================ attributes: read */

bool h5a_has(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

/* Opens attribute `name`, checking its type class and element count (n_expect 0 = any). */
static Status open_attr(const char *path, hid_t obj, const char *on, const char *name,
                        H5T_class_t cls, const char *cls_name, hssize_t n_expect,
                        hid_t *a_out, hssize_t *n_out) {
    *a_out = H5I_INVALID_HID;
    if (H5Aexists(obj, name) <= 0) {
        distill_set_error("%s%s%s: expected attribute '%s', found none", PFX(path), on, name);
        return DISTILL_ERR;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) {
        distill_set_error("%s%s%s: cannot open attribute '%s': %s", PFX(path), on, name,
                          h5_error_text());
        return DISTILL_ERR;
    }
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t c = H5Tget_class(t);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Tclose(t);
    H5Sclose(sp);
    if (c != cls) {
        distill_set_error("%s%s%s: attribute '%s': expected %s, found another type", PFX(path), on,
                          name, cls_name);
        H5Aclose(a);
        return DISTILL_ERR;
    }
    if (n < 0 || n > INT32_MAX || (n_expect > 0 && n != n_expect)) {
        distill_set_error("%s%s%s: attribute '%s': expected %lld element(s), found %lld", PFX(path),
                          on, name, (long long)n_expect, (long long)n);
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
        distill_set_error("%s%s%s: cannot read attribute '%s' as %s: %s", PFX(path), on, name,
                          cls_name, h5_error_text());
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
        distill_set_error("%s%s%s: expected %s in [%lld, %lld], found %lld", PFX(path), on, name,
                          (long long)lo, (long long)hi, (long long)x);
        return DISTILL_ERR;
    }
    *v = (int)x;
    return DISTILL_OK;
}

Status h5a_get_strs(const char *path, hid_t obj, const char *on, const char *name, char ***s, int *n) {
    hid_t a;
    hssize_t cnt;
    if (open_attr(path, obj, on, name, H5T_STRING, "a string", 0, &a, &cnt) != DISTILL_OK)
        return DISTILL_ERR;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    herr_t rc = read_strs(a, -1, ft, sp, cnt, s);
    if (rc >= 0) *n = (int)cnt;
    else distill_set_error("%s%s%s: cannot read attribute '%s': %s", PFX(path), on, name, h5_error_text());
    H5Sclose(sp);
    H5Tclose(ft);
    H5Aclose(a);
    return rc < 0 ? DISTILL_ERR : DISTILL_OK;
}

Status h5a_get_str(const char *path, hid_t obj, const char *on, const char *name, char **s) {
    char **v;
    int n;
    if (h5a_get_strs(path, obj, on, name, &v, &n) != DISTILL_OK) return DISTILL_ERR;
    if (n != 1) {
        distill_set_error("%s%s%s: attribute '%s': expected one string, found %d", PFX(path), on,
                          name, n);
        h5_strs_free(v, n);
        return DISTILL_ERR;
    }
    *s = v[0];
    free(v);
    return DISTILL_OK;
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
        distill_set_error("%s%s%s: cannot read attribute '%s': %s", PFX(path), on, name,
                          h5_error_text());
        return DISTILL_ERR;
    }
    return DISTILL_OK;
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
    if (rc < 0)
        distill_set_error("%s%scannot write dataset '%s': %s", PFX(path), name, h5_error_text());
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
        distill_set_error("%s%sexpected dataset '%s', cannot open it: %s", PFX(path), name,
                          h5_error_text());
        return DISTILL_ERR;
    }
    hid_t ft = H5Dget_type(d), sp = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(sp);
    hssize_t cnt = H5Sget_simple_extent_npoints(sp);
    herr_t rc = -1;
    if (H5Tget_class(ft) != H5T_STRING || rank < 0 || rank > 1 || cnt < 0 || cnt > INT32_MAX) {
        distill_set_error("%s%sdataset '%s': expected a string or a 1-D array of strings, found "
                          "another type or shape", PFX(path), name);
    } else {
        rc = read_strs(-1, d, ft, sp, cnt, s);
        if (rc >= 0) *n = (int)cnt;
        else distill_set_error("%s%scannot read dataset '%s': %s", PFX(path), name, h5_error_text());
    }
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
        distill_set_error("%s%sdataset '%s': expected one string, found %d", PFX(path), name, n);
        h5_strs_free(v, n);
        return DISTILL_ERR;
    }
    *s = v[0];
    free(v);
    return DISTILL_OK;
}
