/*
 * fuzz_text_reader.c — libFuzzer harness for the TSV / CSV / JSONL reader of `distill prepare`
 * (data/textio.c: text_open, text_next), and the tokenizer on the rows it yields.
 *
 * Input: one flags byte, then the file's bytes. Flags: bits 0-1 the format (0 TSV, 1 CSV,
 * 2 JSONL, 3 from the file name, .tsv); bit 2 --no-label; bits 3-4 the text column (default, "0",
 * "sentence", "question"); bits 5-6 the pair column (default, "1", "sentence2", "sentence");
 * bit 7 the label column (default or "label").
 *
 * Every row is read to the end of the file (bad rows skipped, as --skip-bad-rows does; a fatal
 * error ends it) and its text and pair go through a small fixed WordPiece vocabulary's
 * tokenizer_encode. Properties (each break aborts): row lines are >= 1 and never go back; a row
 * has a text, a pair exactly when the reader says it has a pair column, a label exactly when it
 * has a label column.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/textio.h"
#include "data/tokenizer.h"
#include "fuzz_util.h"

#define FAIL(...) (fprintf(stderr, "fuzz_text_reader: " __VA_ARGS__), fputc('\n', stderr), abort())

static Tokenizer *g_tok;
static TokenizerState *g_st;

static void free_globals(void) {
    tokenizer_state_free(g_st);
    tokenizer_free(g_tok);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const char *const tokens[] = {
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "movie", "film", "is", "was",
        "good", "bad", "great", "not", "it", "'", "s", ",", ".", "!", "?", "un", "##like", "##ly",
        "##s", "##ed", "##ing", "fun", "##ny", "caf", "##e", "\xc3\xa9", "\xe4\xb8\xad", "0", "1"};
    TokenizerOptions opt = tokenizer_default_options();
    if (tokenizer_from_tokens(&g_tok, tokens, (int)(sizeof tokens / sizeof *tokens), &opt)) {
        fprintf(stderr, "fuzz_text_reader: %s\n", distill_error());
        abort();
    }
    g_st = tokenizer_state_new();
    atexit(free_globals);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t flags = data[0];
    static const TextFormat formats[4] = {TEXT_TSV, TEXT_CSV, TEXT_JSONL, TEXT_AUTO};
    static const char *const text_cols[4] = {NULL, "0", "sentence", "question"};
    static const char *const pair_cols[4] = {NULL, "1", "sentence2", "sentence"};
    char path[600];
    fuzz_write("rows.tsv", data + 1, size - 1, path, sizeof path);
    TextSpec spec = {.path = path,
                     .format = formats[flags & 3],
                     .text_col = text_cols[(flags >> 3) & 3],
                     .pair_col = pair_cols[(flags >> 5) & 3],
                     .label_col = (flags >> 7) ? "label" : NULL,
                     .no_label = (flags >> 2) & 1};
    TextReader *r = NULL;
    if (!fuzz_said("text_open", text_open(&r, &spec) == DISTILL_OK)) return 0;
    (void)text_columns(r);
    (void)text_format_name(text_format(r));
    bool has_pair = text_has_pair(r), has_label = text_has_label(r);
    long last_line = 0;
    enum { MAX_SEQ = 32 };
    int32_t ids[MAX_SEQ];
    uint8_t types[MAX_SEQ];
    for (;;) {
        TextRow row;
        int k = text_next(r, &row);
        if (k == 0 || k == -2) break;
        if (row.line < 1 || row.line < last_line) FAIL("row line %ld after line %ld", row.line, last_line);
        last_line = row.line;
        if (k == -1) { /* a bad row, skipped */
            fuzz_said("text_next", false);
            continue;
        }
        if (k != 1) FAIL("text_next returned %d", k);
        if (!row.text) FAIL("line %ld: a row without text", row.line);
        if ((row.pair != NULL) != has_pair) FAIL("line %ld: pair %p, has_pair %d", row.line, (void *)row.pair, has_pair);
        if ((row.label != NULL) != has_label) FAIL("line %ld: label %p, has_label %d", row.line, (void *)row.label, has_label);
        int length;
        (void)tokenizer_encode(g_tok, g_st, row.text, row.text_len, row.pair, row.pair_len, MAX_SEQ,
                               ids, types, &length, NULL);
    }
    text_close(r);
    return 0;
}
