/*
 * textio.h — rows of labelled text from TSV, CSV or JSONL files, for `distill prepare`.
 *
 * Promise: text_open reads the whole file, detects a header row (TSV/CSV) and resolves the text,
 * text-pair and label columns (by name or 0-based index); text_next then yields one row at a
 * time with the 1-based line where it starts. A row that cannot be used (a missing column, a
 * JSON line that is not an object, a field that is not a string) is reported as a bad row — the
 * caller decides to stop or skip — and reading goes on at the next row. Damage that loses the
 * row boundaries (an unterminated CSV quote) is fatal.
 *
 * Formats: TSV is split on tabs with no quoting (as GLUE ships it); CSV follows RFC 4180 (quoted
 * fields may hold commas, doubled quotes and newlines); JSONL is one JSON object per line, parsed
 * with cJSON, columns are keys. Blank lines are skipped; a UTF-8 byte-order mark is ignored; a
 * '\r' before '\n' is dropped.
 *
 * Header rule (TSV/CSV): the first row is a header when a column is given by name, when it
 * contains one of the usual names (sentence, text, sentence1, sentence2, label), or when its label
 * field is not a number while the next row's is. Defaults: with a header, text = sentence | text
 * | sentence1 (then pair = sentence2), label = label; without one, text = column 0 and label = the
 * last column. JSONL: text = "sentence" or "text", label = "label".
 */
#ifndef DISTILL_DATA_TEXTIO_H
#define DISTILL_DATA_TEXTIO_H

#include <stddef.h>

#include "engine/common.h"

typedef enum { TEXT_AUTO = 0, TEXT_TSV, TEXT_CSV, TEXT_JSONL } TextFormat;

typedef struct {
    const char *path;
    TextFormat format;     /* TEXT_AUTO: from the extension (.tsv .csv .jsonl/.json/.ndjson) */
    const char *text_col;  /* name or index; NULL: the default */
    const char *pair_col;  /* NULL: the default (usually none) */
    const char *label_col; /* NULL: the default */
    bool no_label;         /* no label column at all */
} TextSpec;

typedef struct {
    long line;                           /* 1-based line where the row starts */
    const char *text;                    /* not NUL-terminated; valid until the next text_next */
    size_t text_len;
    const char *pair;                    /* NULL when there is no pair column */
    size_t pair_len;
    const char *label;                   /* NULL when there is no label column */
    size_t label_len;
} TextRow;

typedef struct TextReader TextReader;

/* Errors (file missing, unknown format, unknown column, no label column) are set as
 * "FILE: ..." or "FILE:LINE: ...". */
Status text_open(TextReader **out, const TextSpec *spec);
/* 1: a row; 0: end of file; -1: a bad row (message "FILE:LINE: ..." set, row->line set; reading
 * may go on); -2: fatal (message set). */
int text_next(TextReader *r, TextRow *row);
void text_close(TextReader *r);

TextFormat text_format(const TextReader *r);
bool text_has_pair(const TextReader *r);
bool text_has_label(const TextReader *r);
/* A one-line description of the columns used, e.g. "text=sentence, label=label (header)". */
const char *text_columns(const TextReader *r);
const char *text_format_name(TextFormat f);
/* TEXT_AUTO when the name is not tsv/csv/jsonl. */
TextFormat text_format_parse(const char *name);

#endif
