/*
 * dataset.h — a prepared HDF5 file (DESIGN §5, written by `distill prepare`), checked and held
 * in memory for the loader.
 *
 * Promise: dataset_open validates before it returns: the attributes max_seq, vocab_size,
 * vocab_sha256 and do_lower_case exist; /input_ids [N, S] and /token_type_ids [N, S] are integer
 * arrays with S == max_seq; /lengths [N] holds 1..S; every id of a row's first `length` tokens is
 * in [0, vocab_size); /labels, when present, is [N] (integers >= 0 for classification, floats for
 * regression); /vocab, when present, has vocab_size strings; /teacher_logits, when present, is
 * float [N, C]. Anything else is DISTILL_ERR with "FILE: what was expected, what was found".
 *
 * Tokens are kept ragged (only each row's `length` tokens, concatenated), so memory follows the
 * real text length, not N * max_seq. Reading goes block by block through hyperslabs.
 */
#ifndef DISTILL_DATA_DATASET_H
#define DISTILL_DATA_DATASET_H

#include <stdint.h>
#include <stdio.h>

#include "engine/common.h"

typedef enum { LABELS_NONE = 0, LABELS_CLASS, LABELS_REGRESSION } LabelKind;

/* The identity of a teacher-logit cache: the attributes of /teacher_logits that `distill cache`
 * writes. A run uses the cache only when all of them match its own teacher and file. */
typedef struct TeacherCacheId {
    bool known;                /* all the attributes below were present */
    char teacher_sha256[65];   /* ckpt_model_sha256 of the teacher */
    char precision[8];         /* the teacher's GEMM precision: "fp32" or "bf16" */
    char vocab_sha256[65];     /* the file's vocab_sha256 when the cache was made */
    int max_seq;               /* the file's max_seq when the cache was made */
    char *teacher_path;        /* where the teacher was loaded from (for messages); "" if unknown */
} TeacherCacheId;

typedef struct {
    char *path;
    int64_t rows;        /* N */
    int max_seq;         /* S */
    int64_t truncated_rows; /* rows `distill prepare` truncated (its truncated_rows attribute);
                             * -1 in files written before it was recorded */
    int vocab_size;
    char vocab_sha256[65];
    bool do_lower_case;
    char *source, *created_by; /* "" when absent */
    LabelKind label_kind;
    int num_labels;      /* classes: the num_labels attribute, or max label + 1 */
    char **label_names;  /* [n_label_names] or NULL */
    int n_label_names;
    /* rows, ragged */
    int32_t *lengths;    /* [N] tokens of each row, [CLS]/[SEP] included */
    int64_t *offsets;    /* [N + 1] where row i starts in ids/types */
    int32_t *ids;        /* [offsets[N]] */
    uint8_t *types;      /* [offsets[N]] */
    int32_t *labels;     /* [N] classification, else NULL */
    float *targets;      /* [N] regression, else NULL */
    int teacher_classes; /* C of /teacher_logits, 0 when absent */
    float *teacher_logits; /* [N, C] or NULL */
    TeacherCacheId teacher_cache; /* who computed /teacher_logits (its attributes); .known false
                                   * when absent or the attributes are missing */
} Dataset;

/* Opens and checks a prepared file; load_tokens false reads everything but ids/types (for info). */
Status dataset_open(Dataset **out, const char *path, bool load_tokens);
void dataset_free(Dataset *ds);

/* Adds (or replaces) /teacher_logits [rows, classes] (f32, row i = the file's row i) with the
 * attributes of *id, atomically (io/atomic.h): the file is copied beside itself, the dataset
 * written into the copy, and the copy renamed over the file. On any failure the file is unchanged.
 * The file must be a prepared file with `rows` rows. */
Status dataset_write_teacher_logits(const char *path, const float *logits, int64_t rows, int classes,
                                    const TeacherCacheId *id);

/* The /vocab strings of a prepared file: *tokens[0..*n) malloc'ed (free each and the array). */
Status dataset_read_vocab(const char *path, char ***tokens, int *n);

/* Prints what a prepared file holds: rows, max_seq, length histogram summary, labels and counts,
 * vocabulary size and hash, source. Returns 0, or 1 after printing "distill: error: ..." to stderr. */
int data_info_print(const char *path, FILE *out);

#endif
