/*
 * h5util.h — the few HDF5 helpers data/ needs: attributes (integers, strings, string lists)
 * written and read with type conversion, and the library's own error text for messages.
 *
 * Promise: every function returns DISTILL_ERR with a message naming the object instead of letting
 * HDF5 print its error stack (h5u_quiet turns the automatic printing off for this process).
 * Strings are written as variable-length UTF-8 (h5py reads them as str); readers accept
 * variable- and fixed-length strings.
 */
#ifndef DISTILL_DATA_H5UTIL_H
#define DISTILL_DATA_H5UTIL_H

#include <hdf5.h>

#include "engine/common.h"

/* Turns off HDF5's automatic error printing (our messages say what failed). */
void h5u_quiet(void);
/* The innermost HDF5 error description of this thread's stack ("" when none). */
const char *h5u_error_text(void);

Status h5u_attr_write_int(hid_t loc, const char *name, hid_t type /* e.g. H5T_STD_I32LE */, long long v);
Status h5u_attr_write_str(hid_t loc, const char *name, const char *s);
Status h5u_attr_write_strs(hid_t loc, const char *name, const char *const *s, int n);

bool h5u_attr_exists(hid_t loc, const char *name);
Status h5u_attr_read_int(hid_t loc, const char *name, long long *v);
/* *out is malloc'ed (free it). */
Status h5u_attr_read_str(hid_t loc, const char *name, char **out);
/* *out is an array of n malloc'ed strings (free each and the array). */
Status h5u_attr_read_strs(hid_t loc, const char *name, char ***out, int *n);

/* A 1-D dataset of variable-length UTF-8 strings. */
Status h5u_write_strings(hid_t loc, const char *name, const char *const *s, int n);
Status h5u_read_strings(hid_t loc, const char *name, char ***out, int *n);

#endif
