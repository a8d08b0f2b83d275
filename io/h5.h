/*
 * io/h5.h — the one HDF5 helper layer of the project (data/ and checkpoints/ both use it):
 * HDF5's error text for messages, quiet mode, attributes (integers, floats, strings, string lists,
 * byte arrays) and string datasets, each turning an HDF5 failure into a distill error.
 *
 * Messages: `path` is the file's path and `on` the object's name ("/", "/student"), both for
 * messages only; a NULL path leaves the "<path>: " prefix out. Writers set
 * "<path>: <object>: cannot write attribute '<name>': <HDF5 text>"; readers say what they expected
 * and what they found ("expected attribute 'x', found none", "expected an integer, found another
 * type"). No helper leaks an HDF5 id.
 *
 * Strings are written as variable-length UTF-8 (h5py reads them as str); readers take variable-
 * and fixed-length strings alike. Integers are read with conversion from any integer type, floats
 * from any float type.
 */
#ifndef DISTILL_IO_H5_H
#define DISTILL_IO_H5_H

#include <hdf5.h>

#include "engine/common.h"

/* ---------------------------------------------------------------- errors */

/* Turns HDF5's automatic error printing off between begin and end, restoring the caller's
 * setting at end (our messages say what failed). */
typedef struct H5Quiet { H5E_auto2_t fn; void *data; } H5Quiet;
void h5_quiet_begin(H5Quiet *q);
void h5_quiet_end(const H5Quiet *q);

/* The most specific message on this thread's HDF5 error stack, on one line ("truncated file:
 * eof = ...", "file write failed: No space left on device"), or "no HDF5 detail". Valid until the
 * next call on this thread; read it before any other HDF5 call, which may clear the stack. */
const char *h5_error_text(void);

/* To be called first thing in main(), before any other HDF5 call: keeps HDF5 from registering its
 * library shutdown at exit. A file whose close failed (a write error on the final flush: disk
 * full, a file-size limit) stays in HDF5's table, and HDF5 1.10's shutdown crashes on it (SIGSEGV
 * after the error was reported). Every file of ours is closed explicitly, so nothing is lost. */
void h5_setup(void);

/* ---------------------------------------------------------------- attributes: write */

/* A scalar integer stored as file_type (H5T_STD_I32LE, H5T_STD_U8LE, ...). */
Status h5a_put_int(const char *path, hid_t obj, const char *name, hid_t file_type, int64_t v);
Status h5a_put_i64(const char *path, hid_t obj, const char *name, int64_t v);
Status h5a_put_u64(const char *path, hid_t obj, const char *name, uint64_t v);
Status h5a_put_f64(const char *path, hid_t obj, const char *name, double v);
Status h5a_put_f32(const char *path, hid_t obj, const char *name, float v);
Status h5a_put_str(const char *path, hid_t obj, const char *name, const char *s); /* NULL as "" */
/* A 1-D array of n strings (NULL entries written as ""); n must be > 0. */
Status h5a_put_strs(const char *path, hid_t obj, const char *name, const char *const *s, size_t n);
Status h5a_put_u8s(const char *path, hid_t obj, const char *name, const uint8_t *v, size_t n);

/* ---------------------------------------------------------------- attributes: read
 * A missing attribute is an error (test first with h5a_has); an attribute of another type class,
 * or with another element count, too. */
bool h5a_has(hid_t obj, const char *name);
Status h5a_get_i64(const char *path, hid_t obj, const char *on, const char *name, int64_t *v);
Status h5a_get_u64(const char *path, hid_t obj, const char *on, const char *name, uint64_t *v);
Status h5a_get_f64(const char *path, hid_t obj, const char *on, const char *name, double *v);
Status h5a_get_f32(const char *path, hid_t obj, const char *on, const char *name, float *v);
/* An integer read as int, rejecting values outside [lo, hi]. */
Status h5a_get_int_in(const char *path, hid_t obj, const char *on, const char *name, int64_t lo,
                      int64_t hi, int *v);
/* Exactly one string, returned xmalloc'ed. */
Status h5a_get_str(const char *path, hid_t obj, const char *on, const char *name, char **s);
/* A string array (scalar: one), as an xmalloc'ed array of *n xmalloc'ed strings (h5_strs_free). */
Status h5a_get_strs(const char *path, hid_t obj, const char *on, const char *name, char ***s,
                    int *n);
/* An integer array of exactly n elements, read as uint8. */
Status h5a_get_u8s(const char *path, hid_t obj, const char *on, const char *name, uint8_t *v,
                   size_t n);

/* ---------------------------------------------------------------- string datasets */

/* A 1-D dataset of n variable-length UTF-8 strings (NULL entries as ""); n must be > 0. */
Status h5d_put_strs(const char *path, hid_t loc, const char *name, const char *const *s, size_t n);
/* A scalar string dataset. */
Status h5d_put_str(const char *path, hid_t loc, const char *name, const char *s);
/* A scalar or 1-D string dataset (variable- or fixed-length) as *n xmalloc'ed strings. */
Status h5d_get_strs(const char *path, hid_t loc, const char *name, char ***s, int *n);
/* Exactly one string. */
Status h5d_get_str(const char *path, hid_t loc, const char *name, char **s);

bool h5_link_exists(hid_t loc, const char *name);
/* Frees n strings and the array (NULL is fine). */
void h5_strs_free(char **s, int n);

#endif
