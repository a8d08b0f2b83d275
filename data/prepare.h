/*
 * prepare.h — `distill prepare`: labelled text (TSV/CSV/JSONL) -> tokenised HDF5 (DESIGN §5).
 *
 * Promise: prepare_run writes the layout of DESIGN §5 — /input_ids int32 [N, S] (zero-padded),
 * /token_type_ids uint8 [N, S], /lengths int32 [N], /labels int32 [N] (float32 with regression,
 * absent without labels), /vocab strings [V]; root attributes max_seq, vocab_size, vocab_sha256,
 * do_lower_case, label_names (string labels), num_labels (classification), source, created_by —
 * chunked and gzip-compressed, or nothing at all: it writes to a temporary name beside the output,
 * syncs it and renames it into place, and removes the temporary file on any error.
 *
 * Labels: with --labels a,b,c the names map to 0, 1, 2 in that order; with --regression they are
 * numbers; otherwise integers when every label is one (>= 0), else the distinct strings sorted
 * (bytewise) and numbered in that order. A bad row (missing column, invalid UTF-8, unknown or
 * malformed label) stops the run with "FILE:LINE: ..."; with skip_bad_rows it is reported on
 * stderr, counted and left out.
 */
#ifndef DISTILL_DATA_PREPARE_H
#define DISTILL_DATA_PREPARE_H

#include "engine/common.h"
#include "textio.h"

typedef struct {
    const char *vocab_path;
    const char *input_path;
    const char *output_path;
    int max_seq;           /* default 128 */
    TextFormat format;     /* TEXT_AUTO: by extension */
    const char *text_col;  /* name or index, NULL: default (see textio.h) */
    const char *pair_col;
    const char *label_col;
    const char *labels;    /* "a,b,c" or NULL */
    bool no_label;
    bool regression;
    bool do_lower_case;    /* default true */
    bool skip_bad_rows;
    bool progress;         /* a progress line on stderr (only shown when stderr is a TTY) */
    const char *created_by; /* recorded as the created_by attribute (e.g. the command line) */
} PrepareOptions;

typedef struct {
    long rows;      /* rows written */
    long skipped;   /* bad rows left out */
    long truncated; /* rows cut to max_seq */
    int num_labels; /* classes (0 for regression or no labels) */
    double seconds;
    char columns[512]; /* which columns were read, and whether a header row was found */
} PrepareStats;

PrepareOptions prepare_default_options(void);
Status prepare_run(const PrepareOptions *opt, PrepareStats *stats);

#endif
