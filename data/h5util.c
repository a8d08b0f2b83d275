/* h5util.c — HDF5 attribute and string helpers (see h5util.h for the promise). */
#include "h5util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void h5u_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static _Thread_local char g_h5err[256];

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    (void)data;
    if (e->desc && e->desc[0]) snprintf(g_h5err, sizeof g_h5err, "%s", e->desc); /* the last one is innermost */
    return 0;
}

const char *h5u_error_text(void) {
    g_h5err[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, NULL);
    return g_h5err;
}

static hid_t vlen_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static Status write_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hid_t space, const void *buf) {
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t a = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, mtype, buf);
    if (a >= 0) H5Aclose(a);
    if (e < 0) {
        distill_set_error("cannot write the attribute '%s': %s", name, h5u_error_text());
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

Status h5u_attr_write_int(hid_t loc, const char *name, hid_t type, long long v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    Status s = write_attr(loc, name, type, H5T_NATIVE_LLONG, sp, &v);
    H5Sclose(sp);
    return s;
}

Status h5u_attr_write_str(hid_t loc, const char *name, const char *str) {
    hid_t t = vlen_str_type(), sp = H5Screate(H5S_SCALAR);
    Status s = write_attr(loc, name, t, t, sp, &str);
    H5Sclose(sp);
    H5Tclose(t);
    return s;
}

Status h5u_attr_write_strs(hid_t loc, const char *name, const char *const *strs, int n) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t t = vlen_str_type(), sp = H5Screate_simple(1, dims, NULL);
    Status s = write_attr(loc, name, t, t, sp, strs);
    H5Sclose(sp);
    H5Tclose(t);
    return s;
}

bool h5u_attr_exists(hid_t loc, const char *name) { return H5Aexists(loc, name) > 0; }

Status h5u_attr_read_int(hid_t loc, const char *name, long long *v) {
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) {
        distill_set_error("the attribute '%s' is missing", name);
        return DISTILL_ERR;
    }
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    bool ok = H5Tget_class(ft) == H5T_INTEGER && H5Sget_simple_extent_npoints(sp) == 1 &&
              H5Aread(a, H5T_NATIVE_LLONG, v) >= 0;
    H5Sclose(sp);
    H5Tclose(ft);
    H5Aclose(a);
    if (!ok) {
        distill_set_error("the attribute '%s' is not an integer", name);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

/* Reads n strings of the string type ft from an attribute (a >= 0) or a dataset (d >= 0). */
static Status read_strings(hid_t a, hid_t d, hid_t ft, int n, char **out) {
    herr_t e;
    if (H5Tis_variable_str(ft) > 0) {
        char **tmp = xcalloc((size_t)n, sizeof(char *));
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        e = a >= 0 ? H5Aread(a, mt, tmp) : H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp);
        if (e >= 0)
            for (int i = 0; i < n; i++) out[i] = xstrdup(tmp[i] ? tmp[i] : "");
        if (e >= 0) {
            hsize_t dims[1] = {(hsize_t)n};
            hid_t sp = n == 1 && a >= 0 ? H5Aget_space(a) : H5Screate_simple(1, dims, NULL);
            H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, tmp);
            H5Sclose(sp);
        }
        H5Tclose(mt);
        free(tmp);
    } else {
        size_t size = H5Tget_size(ft);
        char *buf = xmalloc((size_t)n * size + 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, size);
        H5Tset_cset(mt, H5Tget_cset(ft));
        e = a >= 0 ? H5Aread(a, mt, buf) : H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (e >= 0)
            for (int i = 0; i < n; i++) {
                out[i] = xmalloc(size + 1);
                memcpy(out[i], buf + (size_t)i * size, size);
                out[i][size] = '\0';
            }
        H5Tclose(mt);
        free(buf);
    }
    return e >= 0 ? DISTILL_OK : DISTILL_ERR;
}

Status h5u_attr_read_strs(hid_t loc, const char *name, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) {
        distill_set_error("the attribute '%s' is missing", name);
        return DISTILL_ERR;
    }
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int count = (int)H5Sget_simple_extent_npoints(sp);
    Status s = DISTILL_ERR;
    if (H5Tget_class(ft) == H5T_STRING && count >= 0) {
        char **v = xcalloc((size_t)count + 1, sizeof(char *));
        s = read_strings(a, -1, ft, count, v);
        if (s == DISTILL_OK) *out = v, *n = count;
        else free(v);
    }
    H5Sclose(sp);
    H5Tclose(ft);
    H5Aclose(a);
    if (s != DISTILL_OK) distill_set_error("the attribute '%s' is not a string", name);
    return s;
}

Status h5u_attr_read_str(hid_t loc, const char *name, char **out) {
    char **v;
    int n;
    *out = NULL;
    if (h5u_attr_read_strs(loc, name, &v, &n) != DISTILL_OK) return DISTILL_ERR;
    if (n != 1) {
        for (int i = 0; i < n; i++) free(v[i]);
        free(v);
        distill_set_error("the attribute '%s' is not a single string", name);
        return DISTILL_ERR;
    }
    *out = v[0];
    free(v);
    return DISTILL_OK;
}

Status h5u_write_strings(hid_t loc, const char *name, const char *const *s, int n) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t t = vlen_str_type(), sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = d < 0 ? -1 : H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    if (e < 0) {
        distill_set_error("cannot write the dataset '%s': %s", name, h5u_error_text());
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

Status h5u_read_strings(hid_t loc, const char *name, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) {
        distill_set_error("the dataset /%s is missing", name);
        return DISTILL_ERR;
    }
    hid_t ft = H5Dget_type(d), sp = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(sp);
    int count = (int)H5Sget_simple_extent_npoints(sp);
    Status s = DISTILL_ERR;
    if (H5Tget_class(ft) == H5T_STRING && rank == 1) {
        char **v = xcalloc((size_t)count + 1, sizeof(char *));
        s = read_strings(-1, d, ft, count, v);
        if (s == DISTILL_OK) *out = v, *n = count;
        else free(v);
    }
    H5Sclose(sp);
    H5Tclose(ft);
    H5Dclose(d);
    if (s != DISTILL_OK) distill_set_error("the dataset /%s is not a 1-D array of strings", name);
    return s;
}
