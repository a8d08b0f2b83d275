/*
 * fuzz_h5.h — the HDF5 part of the fuzz_h5_* harnesses: HDF5 set up once per process (file
 * locking off, since the scratch file is rewritten for every input; the library's own error stack
 * printing off: the validators turn every failure into a message of their own).
 */
#ifndef DISTILL_FUZZ_H5_H
#define DISTILL_FUZZ_H5_H

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

static FILE *g_devnull;

static void fuzz_h5_close(void) {
    if (g_devnull) fclose(g_devnull);
}

static void fuzz_h5_init(void) {
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
    H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    g_devnull = fopen("/dev/null", "w");
    if (!g_devnull) abort();
    atexit(fuzz_h5_close);
}

#endif
