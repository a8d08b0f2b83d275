/*
 * test_tokenizer_unit.c — the WordPiece tokenizer on a toy vocabulary, no Python needed.
 *
 * The expected answers are BertTokenizer's, from transformers' own tests
 * (tests/models/bert/test_tokenization_bert.py: the toy vocabulary, "unwanted running",
 * "UNwant\u00E9d,running", the BasicTokenizer casing/accent cases, the Chinese-character case),
 * plus the rules of tokenizer.h: 100-character words, special tokens, `tokenizers`' longest-first
 * truncation, vocabulary loading (a repeated line keeps its last id, CRLF and trailing spaces
 * trimmed, no [UNK] is an error), the vocabulary hash (against SHA-256 of the file bytes computed
 * here), and invalid UTF-8.
 */
#define _POSIX_C_SOURCE 200809L
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/tokenizer.h"

#include "test_check.h"

static char dir[128];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* The WordPiece tokens of text, joined by spaces, into out. */
static const char *pieces(const Tokenizer *t, TokenizerState *st, const char *text, char *out, size_t n) {
    const int32_t *ids;
    int k;
    out[0] = '\0';
    if (tokenizer_tokenize(t, st, text, strlen(text), &ids, &k) != DISTILL_OK) {
        snprintf(out, n, "ERR");
        return out;
    }
    for (int i = 0; i < k; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? " " : "", tokenizer_token(t, ids[i]));
    return out;
}

static const char *words(const Tokenizer *t, TokenizerState *st, const char *text) {
    const char *w;
    size_t n;
    if (tokenizer_words(t, st, text, strlen(text), &w, &n) != DISTILL_OK) return "ERR";
    return w;
}

static Tokenizer *load(const char *vocab, bool lower, int strip) {
    TokenizerOptions o = tokenizer_default_options();
    o.do_lower_case = lower;
    o.strip_accents = strip;
    Tokenizer *t = NULL;
    CHECK(tokenizer_load(&t, vocab, &o) == DISTILL_OK, "load %s: %s", vocab, distill_error());
    return t;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/distill_test_tok_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    char vocab[256], buf[1024];
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", dir);
    /* transformers' toy vocabulary, plus "a"/"##a" for the long-word rule */
    const char *text = "[UNK]\n[CLS]\n[SEP]\n[PAD]\n[MASK]\nwant\n##want\n##ed\nwa\nun\nrunn\n##ing\n,\nlow\nlowest\na\n##a\n";
    write_file(vocab, text);
    TokenizerState *st = tokenizer_state_new();
    Tokenizer *t = load(vocab, true, -1);
    if (!t) return 1;

    CHECK(!strcmp(pieces(t, st, "unwanted running", buf, sizeof buf), "un ##want ##ed runn ##ing"), "%s", buf);
    CHECK(!strcmp(pieces(t, st, "unwantedX running", buf, sizeof buf), "[UNK] runn ##ing"), "%s", buf);
    CHECK(!strcmp(pieces(t, st, "UNwant\u00E9d,running", buf, sizeof buf), "un ##want ##ed , runn ##ing"), "%s", buf);
    CHECK(!strcmp(pieces(t, st, "", buf, sizeof buf), ""), "empty: '%s'", buf);
    CHECK(!strcmp(pieces(t, st, "[CLS] want[SEP]want [cls]", buf, sizeof buf), "[CLS] want [SEP] want [UNK] [UNK] [UNK]"),
          "special tokens: %s", buf);
    CHECK(!strcmp(words(t, st, " \tHeLLo!how  \n Are yoU?  "), "hello ! how are you ? "), "lower");
    CHECK(!strcmp(words(t, st, "ah\u535A\u63A8zz"), "ah \u535A \u63A8 zz "), "chinese");
    CHECK(!strcmp(words(t, st, "a\x01" "b\xE2\x80\x8B" "c d\xC2\xA0" "e"), "abc d e "), "controls and nbsp");
    /* 100 characters is a word; 101 is [UNK] */
    char longw[128];
    memset(longw, 'a', 101);
    longw[100] = '\0';
    const int32_t *ids;
    int n;
    CHECK(tokenizer_tokenize(t, st, longw, 100, &ids, &n) == DISTILL_OK && n == 100 && ids[0] == 15 && ids[99] == 16,
          "100 a's: %d pieces", n);
    longw[100] = 'a';
    CHECK(tokenizer_tokenize(t, st, longw, 101, &ids, &n) == DISTILL_OK && n == 1 && ids[0] == 0, "101 a's: %d", n);
    /* invalid UTF-8: an error naming the byte */
    CHECK(tokenizer_tokenize(t, st, "ok \xC3(", 5, &ids, &n) == DISTILL_ERR &&
              strstr(distill_error(), "invalid UTF-8 at byte 3"),
          "invalid UTF-8: %s", distill_error());
    CHECK(utf8_invalid_at("ab\xE2\x82", 4) == 2 && utf8_invalid_at("ab\xE2\x82\xAC", 5) == -1 &&
              utf8_invalid_at("\xED\xA0\x80", 3) == 0,
          "utf8_invalid_at (truncated, valid, surrogate)");

    /* pairs and longest-first truncation (tokenizers: the shorter side keeps budget/2 when both
     * must be cut, the longer the rest; ties give the second side the odd token) */
    int32_t eid[16];
    uint8_t ety[16];
    int len;
    bool cut;
    struct { const char *a, *b; int max_seq, na, nb; } tr[] = {
        {"a a a a a", "a a", 9, 4, 2},   /* budget 6: only the longer is cut */
        {"a a a a", "a a a a", 9, 3, 3}, /* both cut to 3 */
        {"a a a a", "a a a a", 8, 2, 3}, /* budget 5, equal lengths: first 2, second 3 */
        {"a a a a a", "a a a a", 8, 3, 2}, /* budget 5, first longer: it keeps 3 */
        {"a a a a a a a", "a", 8, 4, 1},
        {"a", "a", 3, 0, 0},
    };
    for (size_t i = 0; i < sizeof tr / sizeof tr[0]; i++) {
        Status s = tokenizer_encode(t, st, tr[i].a, strlen(tr[i].a), tr[i].b, strlen(tr[i].b), tr[i].max_seq, eid, ety,
                                    &len, &cut);
        int want = tr[i].na + tr[i].nb + 3;
        bool ok = s == DISTILL_OK && len == want && eid[0] == 1 && eid[tr[i].na + 1] == 2 && eid[len - 1] == 2 && cut;
        for (int k = 0; ok && k < len; k++) ok = ety[k] == (k > tr[i].na + 1);
        CHECK(ok, "truncation case %zu: length %d, want %d", i, len, want);
    }
    CHECK(tokenizer_encode(t, st, "want", 4, NULL, 0, 8, eid, ety, &len, &cut) == DISTILL_OK && len == 3 &&
              eid[0] == 1 && eid[1] == 5 && eid[2] == 2 && !cut && ety[2] == 0,
          "single");
    CHECK(tokenizer_encode(t, st, "a", 1, "a", 1, 2, eid, ety, &len, &cut) == DISTILL_ERR, "max_seq 2 with a pair");
    tokenizer_free(t);

    /* casing and accents (BasicTokenizer's cases) */
    const char *hallo = " \tH\u00E4LLo!how  \n Are yoU?  ";
    t = load(vocab, false, -1);
    CHECK(!strcmp(words(t, st, hallo), "H\u00E4LLo ! how Are yoU ? "), "no lower");
    tokenizer_free(t);
    t = load(vocab, true, 0);
    CHECK(!strcmp(words(t, st, hallo), "h\u00E4llo ! how are you ? "), "lower, keep accents");
    CHECK(!strcmp(words(t, st, "\u0130"), "i\u0307 "), "full lower-case mapping of U+0130");
    tokenizer_free(t);
    t = load(vocab, false, 1);
    CHECK(!strcmp(words(t, st, hallo), "HaLLo ! how Are yoU ? "), "strip accents, keep case");
    tokenizer_free(t);

    /* vocabulary loading: CRLF and trailing blanks trimmed, a repeated line keeps its last id */
    char v2[256];
    snprintf(v2, sizeof v2, "%s/vocab2.txt", dir);
    const char *text2 = "[PAD]\r\n[UNK]  \r\n[CLS]\n[SEP]\nwant\nwant\n##ed";
    write_file(v2, text2);
    t = load(v2, true, -1);
    CHECK(tokenizer_vocab_size(t) == 7 && tokenizer_token_id(t, "[UNK]") == 1 && tokenizer_token_id(t, "want") == 5 &&
              !strcmp(tokenizer_token(t, 1), "[UNK]"),
          "vocab lines: size %d, [UNK] %d, want %d", tokenizer_vocab_size(t), tokenizer_token_id(t, "[UNK]"),
          tokenizer_token_id(t, "want"));
    const char *toks[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "want", "want", "##ed"};
    Tokenizer *t2 = NULL;
    CHECK(tokenizer_from_tokens(&t2, toks, 7, NULL) == DISTILL_OK, "from tokens");
    CHECK(t2 && !strcmp(tokenizer_vocab_sha256(t), tokenizer_vocab_sha256(t2)), "hash of file and token list differ");
    CHECK(t2 && !strcmp(pieces(t2, st, "wanted", buf, sizeof buf), "want ##ed"), "from tokens: %s", buf);
    tokenizer_free(t2);
    tokenizer_free(t);

    /* the hash is sha256 of a canonical vocab.txt's bytes */
    t = load(vocab, true, -1);
    unsigned char md[32];
    unsigned int mdlen;
    EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    CHECK(!strcmp(hex, tokenizer_vocab_sha256(t)), "sha256 %s, file %s", tokenizer_vocab_sha256(t), hex);
    tokenizer_free(t);

    /* errors */
    write_file(v2, "[PAD]\nhello\n");
    Tokenizer *bad = NULL;
    CHECK(tokenizer_load(&bad, v2, NULL) == DISTILL_ERR && strstr(distill_error(), "no [UNK]"), "no [UNK]: %s",
          distill_error());
    snprintf(v2, sizeof v2, "%s/absent.txt", dir);
    CHECK(tokenizer_load(&bad, v2, NULL) == DISTILL_ERR && strstr(distill_error(), "cannot open"), "missing file");

    tokenizer_state_free(st);
    snprintf(buf, sizeof buf, "rm -rf '%s'", dir);
    if (system(buf) != 0) fprintf(stderr, "could not remove %s\n", dir);
    if (g_failures) {
        fprintf(stderr, "%d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_tokenizer_unit: all checks passed\n");
    return 0;
}
