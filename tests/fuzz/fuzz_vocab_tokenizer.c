/*
 * fuzz_vocab_tokenizer.c — libFuzzer harness for the vocabulary loader and the WordPiece tokenizer
 * (data/tokenizer.c: tokenizer_load, tokenizer_tokenize, tokenizer_words, tokenizer_encode — what
 * `distill prepare`, `eval` and `predict` run on every row).
 *
 * Input: one flags byte, then vocab.txt, then a NUL and text a, then optionally a NUL and text b
 * (a pair). Flags: bit 0 do_lower_case; bits 1-2 strip_accents (0: follow lower case, 1: never,
 * 2 or 3: always); bit 3 tokenize_chinese_chars; bits 4-7 max_seq = 3 + 8 * (flags >> 4).
 *
 * Properties checked (each break aborts): every id tokenize and encode give is in
 * [0, vocab_size); encode writes 2..max_seq tokens, [CLS] first and [SEP] last, types 0 through
 * the first segment's [SEP] and 1 after it (a pair only); a text encode accepts, tokenize accepts.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/tokenizer.h"
#include "fuzz_util.h"

#define FAIL(...) (fprintf(stderr, "fuzz_vocab_tokenizer: " __VA_ARGS__), fputc('\n', stderr), abort())

static void check_ids(const Tokenizer *t, const int32_t *ids, int n, const char *what) {
    int v = tokenizer_vocab_size(t);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= v) FAIL("%s: id %d at %d is outside [0, %d)", what, ids[i], i, v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t flags = data[0];
    const uint8_t *part[3];
    size_t len[3];
    int parts = fuzz_split(data + 1, size - 1, 3, part, len);
    char path[600];
    fuzz_write("vocab.txt", part[0], len[0], path, sizeof path);

    TokenizerOptions opt = tokenizer_default_options();
    opt.do_lower_case = flags & 1;
    int strip = (flags >> 1) & 3;
    opt.strip_accents = strip == 0 ? -1 : strip == 1 ? 0 : 1;
    opt.tokenize_chinese_chars = (flags >> 3) & 1;
    int max_seq = 3 + 8 * (flags >> 4);

    Tokenizer *t = NULL;
    if (!fuzz_said("tokenizer_load", tokenizer_load(&t, path, &opt) == DISTILL_OK)) return 0;
    int v = tokenizer_vocab_size(t);
    if (v <= 0) FAIL("a loaded vocabulary has %d tokens", v);
    for (int id = 0; id < v && id < 8; id++)
        if (tokenizer_token_id(t, tokenizer_token(t, id)) < 0)
            FAIL("token %d of the vocabulary is not found by its own text", id);
    (void)tokenizer_vocab_sha256(t);
    int cls = tokenizer_cls_id(t), sep = tokenizer_sep_id(t);

    TokenizerState *st = tokenizer_state_new();
    const char *a = (const char *)part[1], *b = parts >= 3 ? (const char *)part[2] : NULL;
    const int32_t *ids;
    int n;
    bool a_ok = tokenizer_tokenize(t, st, a, len[1], &ids, &n) == DISTILL_OK;
    if (a_ok) check_ids(t, ids, n, "tokenize");
    const char *words;
    size_t wlen;
    (void)tokenizer_words(t, st, a, len[1], &words, &wlen);

    int32_t *eids = malloc((size_t)max_seq * sizeof *eids);
    uint8_t *types = malloc((size_t)max_seq);
    if (!eids || !types) abort();
    int length = -1;
    bool truncated = false;
    if (fuzz_said("tokenizer_encode", tokenizer_encode(t, st, a, len[1], b, len[2], max_seq, eids, types,
                                                  &length, &truncated) == DISTILL_OK)) {
        if (!a_ok) FAIL("encode accepted a text tokenize rejected");
        if (length < 2 || length > max_seq) FAIL("encode: length %d, max_seq %d", length, max_seq);
        check_ids(t, eids, length, "encode");
        if (eids[0] != cls) FAIL("encode: first id %d, [CLS] is %d", eids[0], cls);
        if (eids[length - 1] != sep) FAIL("encode: last id %d, [SEP] is %d", eids[length - 1], sep);
        int zeros = 0; /* types: 0 ... 0 (through a's [SEP]) then 1 ... 1 (b and its [SEP]) */
        while (zeros < length && types[zeros] == 0) zeros++;
        for (int i = zeros; i < length; i++)
            if (types[i] != 1) FAIL("encode: type %d at %d after type 1", types[i], i);
        if (!b && zeros != length) FAIL("encode: type 1 without a pair");
        if (b && (zeros == length || zeros < 2 || eids[zeros - 1] != sep))
            FAIL("encode: a pair's first segment does not end with [SEP] (%d zeros of %d)", zeros, length);
    }
    free(eids);
    free(types);
    tokenizer_state_free(st);
    tokenizer_free(t);
    return 0;
}
