/*
 * h5util.h — DEPRECATED: the HDF5 helpers are io/h5.h's now (one layer for data/ and
 * checkpoints/). What is left here is a header-only bridge for code not yet moved over
 * (train/cmd_eval.c's truncated_rows read); delete this file once nothing includes it.
 * New code: h5a_has, h5a_get_i64(path, obj, "/", name, &v), h5_quiet_begin/end, h5_error_text.
 */
#ifndef DISTILL_DATA_H5UTIL_H
#define DISTILL_DATA_H5UTIL_H

#include "io/h5.h"

/* Turns HDF5's automatic error printing off for the rest of the process. */
static inline void h5u_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
static inline const char *h5u_error_text(void) { return h5_error_text(); }
static inline bool h5u_attr_exists(hid_t loc, const char *name) { return h5a_has(loc, name); }
static inline Status h5u_attr_read_int(hid_t loc, const char *name, long long *v) {
    int64_t x;
    if (h5a_get_i64(NULL, loc, "/", name, &x) != DISTILL_OK) return DISTILL_ERR;
    *v = (long long)x;
    return DISTILL_OK;
}

#endif
