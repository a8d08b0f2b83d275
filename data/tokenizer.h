/*
 * tokenizer.h — BERT WordPiece tokenizer, token for token the same as Hugging Face's
 * `BertTokenizer` / `tokenizers` (BertNormalizer + BertPreTokenizer + WordPiece + BertProcessing).
 *
 * Promise: for a vocab.txt and the same options, tokenizer_encode gives the ids and token types
 * that `tokenizers.BertWordPieceTokenizer(vocab, lowercase=..., strip_accents=...,
 * handle_chinese_chars=...)` gives with `enable_truncation(max_seq)` (longest-first). The steps:
 *   1. special tokens ([CLS] [SEP] [PAD] [UNK] [MASK], those present in the vocabulary) are found
 *      in the raw text and never split or normalised;
 *   2. clean-up: NUL, U+FFFD and control characters (Cc, Cf, Co except \t \n \r) dropped,
 *      whitespace (\t \n \r and Zs/Zl/Zp) becomes a space;
 *   3. CJK ideographs (the BERT ranges) become words of their own;
 *   4. strip accents (NFD, drop Mn), when asked or, by default, when lower-casing;
 *   5. lower-casing (full Unicode lower-case mapping);
 *   6. split on whitespace, and isolate punctuation (ASCII punctuation and the Unicode P*
 *      categories);
 *   7. greedy longest-match-first WordPiece with "##" continuations; a word of more than 100
 *      characters, or one that cannot be covered, is [UNK].
 * Unicode categories, case mapping and normalisation come from utf8proc. Where Hugging Face's
 * own category tables are older than utf8proc's (its `unicode_categories` crate stops at Unicode
 * 8), characters assigned or re-categorised since then may differ; tests/test_tokenizer_parity.py
 * checks every code point and that each difference is such a case.
 *
 * A Tokenizer is immutable after loading and may be shared by threads; each thread passes its own
 * TokenizerState (scratch buffers that grow and are reused: no allocation per token or per call at
 * steady state).
 */
#ifndef DISTILL_DATA_TOKENIZER_H
#define DISTILL_DATA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"

typedef struct {
    bool do_lower_case;          /* default true */
    int strip_accents;           /* -1: follow do_lower_case (default), 0: never, 1: always */
    bool tokenize_chinese_chars; /* default true */
} TokenizerOptions;

TokenizerOptions tokenizer_default_options(void);

typedef struct Tokenizer Tokenizer;
typedef struct TokenizerState TokenizerState;

/* Loads vocab.txt (one token per line, id = line number; a repeated token keeps its last line, as
 * Hugging Face does). Fails on a missing/unreadable file, an empty vocabulary, or no [UNK]. */
Status tokenizer_load(Tokenizer **out, const char *vocab_path, const TokenizerOptions *opt);
/* The same from tokens[0..n) (e.g. the /vocab dataset of a prepared file). */
Status tokenizer_from_tokens(Tokenizer **out, const char *const *tokens, int n, const TokenizerOptions *opt);
void tokenizer_free(Tokenizer *t);

TokenizerOptions tokenizer_options(const Tokenizer *t);
int tokenizer_vocab_size(const Tokenizer *t);        /* number of lines = largest id + 1 */
const char *tokenizer_token(const Tokenizer *t, int id); /* the line of that id */
int tokenizer_token_id(const Tokenizer *t, const char *token); /* -1 when absent */
/* SHA-256 of the vocabulary as lines each ended by '\n' (for a canonical vocab.txt this is
 * `sha256sum vocab.txt`), 64 lower-case hex digits and a NUL. */
const char *tokenizer_vocab_sha256(const Tokenizer *t);
int tokenizer_cls_id(const Tokenizer *t);
int tokenizer_sep_id(const Tokenizer *t);
int tokenizer_pad_id(const Tokenizer *t); /* 0 when the vocabulary has no [PAD] */
int tokenizer_unk_id(const Tokenizer *t);

TokenizerState *tokenizer_state_new(void);
void tokenizer_state_free(TokenizerState *st);

/* WordPiece ids of text[0..len) (UTF-8), no [CLS]/[SEP] added. *ids points into st and stays valid
 * until the next call with st. Invalid UTF-8 -> DISTILL_ERR ("invalid UTF-8 at byte K"). */
Status tokenizer_tokenize(const Tokenizer *t, TokenizerState *st, const char *text, size_t len,
                          const int32_t **ids, int *n);

/* [CLS] a [SEP] (b == NULL) or [CLS] a [SEP] b [SEP], truncated longest-first to max_seq tokens
 * exactly as `tokenizers` does. Writes ids[0..*length) and types[0..*length) (0 up to and including
 * the first [SEP], 1 after); nothing beyond *length. max_seq must be >= 2 (single) or 3 (pair).
 * *truncated (may be NULL) is set when tokens were dropped. */
Status tokenizer_encode(const Tokenizer *t, TokenizerState *st, const char *a, size_t alen,
                        const char *b, size_t blen, int max_seq, int32_t *ids /* [max_seq] */,
                        uint8_t *types /* [max_seq] */, int *length, bool *truncated);

/* For tests: the words after normalisation and pre-tokenisation (before WordPiece), each followed
 * by one space, in *out (NUL-terminated, owned by st, valid until the next call). */
Status tokenizer_words(const Tokenizer *t, TokenizerState *st, const char *text, size_t len,
                       const char **out, size_t *out_len);

/* Byte offset of the first invalid UTF-8 sequence in s[0..len), or -1 when it is all valid. */
long utf8_invalid_at(const char *s, size_t len);

/* Cuts a pair of pieces of n1 and n2 tokens to at most `budget` tokens together, as `tokenizers`'
 * TruncationStrategy::LongestFirst does (what tokenizer_encode and `eval --max-seq` use). */
void tokenizer_truncate_pair(int *n1, int *n2, int budget);

#endif
