/*
 * ckpt_internal.h — what the checkpoint files share (ckpt.c, ckpt_dir.c, ckpt_info.c, ckpt_h5.c):
 * opening a checkpoint for reading, the SHA-256 content hash (OpenSSL libcrypto) with its
 * canonical encoding, and the BertConfig <-> attribute mapping. The HDF5 helpers themselves
 * (attributes, string datasets, error text) are io/h5.h's.
 *
 * Not a public header: only checkpoints/ckpt_*.c include it.
 *
 * Hash encoding (so the same bytes always give the same digest, on any host):
 *   integers as 8 little-endian bytes, floats by their IEEE bits (f32 as 4, f64 as 8 LE bytes),
 *   a string as its length (u64) then its bytes, NULL as length 2^64-1, each field preceded by its
 *   name as a string. Tensors enter through a TensorDigest (path, shape, SHA-256 of their LE f32
 *   bytes), fed in strcmp order of path so declaration order does not matter.
 */
#ifndef DISTILL_CKPT_INTERNAL_H
#define DISTILL_CKPT_INTERNAL_H

#include <hdf5.h>

#include "ckpt.h"
#include "io/h5.h" /* the HDF5 helpers: h5a_*, h5d_*, h5_error_text, H5Quiet */

/* Opens `path` read-only as HDF5 and checks the root's format attribute. Sets an error naming
 * the file on failure (missing, not HDF5, truncated, not a checkpoint, newer format). */
Status ckpt_open_read(const char *path, hid_t *file_out);

/* ---------------------------------------------------------------- SHA-256 */
#define SHA256_LEN 32

typedef struct Sha256 { void *ctx; } Sha256; /* an EVP_MD_CTX */
void sha_begin(Sha256 *h);
void sha_bytes(Sha256 *h, const void *p, size_t n);
/* n floats as little-endian IEEE bytes, whatever the host's byte order. */
void sha_f32s(Sha256 *h, const float *x, size_t n);
void sha_end(Sha256 *h, uint8_t out[SHA256_LEN]);
void sha_field_i64(Sha256 *h, const char *name, int64_t v);
void sha_field_u64(Sha256 *h, const char *name, uint64_t v);
void sha_field_f64(Sha256 *h, const char *name, double v);
void sha_field_f32(Sha256 *h, const char *name, float v);
void sha_field_str(Sha256 *h, const char *name, const char *s);
/* "ab12..." (64 hex digits + NUL) */
void sha_hex(const uint8_t d[SHA256_LEN], char out[2 * SHA256_LEN + 1]);

/* One tensor's contribution to the file hash. */
typedef struct TensorDigest {
    char *key;                 /* dataset path, e.g. "/optim/m/student/bert.pooler.dense.bias" */
    int ndim;
    int64_t dims[TENSOR_MAX_DIMS];
    uint8_t digest[SHA256_LEN];
} TensorDigest;

typedef struct DigestList {
    TensorDigest *v;
    int n, cap;
} DigestList;

void digests_add(DigestList *dl, const char *key, int ndim, const int *shape,
                 const uint8_t digest[SHA256_LEN]);
/* Sorts the list by key and feeds every entry whose key starts with `prefix`. */
void digests_feed(Sha256 *h, DigestList *dl, const char *prefix);
void digests_free(DigestList *dl);

/* student_sha256: student config, /student tensors, vocab, do_lower_case, label names. */
void ckpt_hash_student(const BertConfig *cfg, const TrainCheckpoint *ck, DigestList *dl,
                       uint8_t out[SHA256_LEN]);
/* sha256: the student digest, every other tensor, every state field, the config YAML. */
void ckpt_hash_full(const TrainCheckpoint *ck, const uint8_t student[SHA256_LEN], DigestList *dl,
                    uint8_t out[SHA256_LEN]);

/* BertConfig <-> attributes of /student. Reading validates every field before returning. */
Status ckpt_put_config(const char *path, hid_t g, const BertConfig *cfg);
Status ckpt_get_config(const char *path, hid_t g, BertConfig *cfg);

#endif
