/*
 * safetensors.h — reading and writing the safetensors format (Hugging Face's `model.safetensors`).
 *
 * Layout of a file: 8 bytes little-endian u64 N; N bytes of JSON header; the data buffer. The header
 * maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (byte offsets into the
 * data buffer) and may hold "__metadata__", an object of string values.
 *
 * Reading promises: the whole header is validated when the file is opened — JSON syntax, every entry's
 * fields and types, byte lengths equal to numel * dtype size, offsets inside the file, tensors neither
 * overlapping nor leaving holes (the rules of the reference implementation) — and any violation is
 * DISTILL_ERR with a message naming the file and what was wrong. Tensor data of dtype F32, F16 and BF16
 * is returned as f32 (F16/BF16 conversions are exact, including subnormals, infinities and NaNs);
 * other dtypes are listed but cannot be read as floats. The file is mapped read-only.
 *
 * Writing promises: F32 tensors only, entries and data in name order (stable output for the same
 * tensors), header padded with spaces to a multiple of 8 bytes, written to a temporary file in the same
 * folder, fsynced and renamed over the destination: a crash or an error leaves no partial file.
 */
#ifndef DISTILL_SAFETENSORS_H
#define DISTILL_SAFETENSORS_H

#include "../engine/common.h"

#define ST_MAX_DIMS 8

typedef struct StTensor {
    char *name;
    char dtype[8];              /* as written: "F32", "F16", "BF16", "I64", ... */
    int ndim;                   /* 0 for a scalar */
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end;          /* byte offsets into the data buffer */
} StTensor;

typedef struct StFile {
    char *path;
    void *map;                  /* the whole file, read-only */
    size_t size;                /* file size in bytes */
    const unsigned char *data;  /* start of the data buffer (map + 8 + header length) */
    size_t data_size;
    StTensor *tensors;          /* n entries, in header order */
    int n;
    char **meta_keys, **meta_values; /* __metadata__ entries */
    int n_meta;
} StFile;

/* Opens and validates `path`. On error *out is NULL and the message names the file. */
Status st_open(const char *path, StFile **out);
void st_close(StFile *f);
/* NULL when absent. */
const StTensor *st_find(const StFile *f, const char *name);
/* The __metadata__ value for key, or NULL. */
const char *st_metadata(const StFile *f, const char *key);
/* True for the dtypes st_read_f32 converts (F32, F16, BF16). */
bool st_is_float(const StTensor *t);
/* Copies tensor t (numel elements) into dst (numel floats, host), converting to f32. */
Status st_read_f32(const StFile *f, const StTensor *t, float *dst);
/* "[30522, 384]" into buf, for messages. */
const char *st_shape_str(const StTensor *t, char *buf, size_t n);

/* Element conversions (exact; exposed for tests). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t b);

/* One tensor to write: name, shape and host f32 data (numel = product of shape). */
typedef struct StWriteTensor {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
} StWriteTensor;

/* Writes n F32 tensors (sorted by name; duplicate names are an error) and the metadata pairs
 * meta_kv[0..2*n_meta) = key, value, ... to `path`, atomically (temporary file, fsync, rename). */
Status st_write_f32(const char *path, const StWriteTensor *tensors, int n,
                    const char *const *meta_kv, int n_meta);

#endif
