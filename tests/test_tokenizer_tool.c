/*
 * test_tokenizer_tool.c — drives the C tokenizer for tests/test_tokenizer_parity.py.
 *
 * Reads lines of hex-encoded UTF-8 ("HEX" or "HEX<TAB>HEX" for a pair; hex so any byte, NUL and
 * newlines included, survives the trip) and writes one line per input:
 *   encode mode: "ID ID ...<TAB>TYPE TYPE ..." ([CLS] a [SEP] (b [SEP]), truncated to --max-seq)
 *   --words:     the hex of the normalised, pre-tokenised words, each followed by a space
 *   --tokenize:  "ID ID ..." (WordPiece ids, no special tokens)
 * An input the tokenizer rejects gives "ERR <message>".
 * Options: --vocab FILE [--no-lower-case] [--strip-accents -1|0|1] [--no-chinese] [--max-seq N]
 *          [--time] (prints rows/s of the encode loop to stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t unhex(const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) {
            fprintf(stderr, "test_tokenizer_tool: bad hex input\n");
            exit(2);
        }
        out[k++] = (char)(hi * 16 + lo);
    }
    return k;
}

int main(int argc, char **argv) {
    const char *vocab = NULL;
    TokenizerOptions opt = tokenizer_default_options();
    int max_seq = 512, mode = 0;
    bool timing = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--vocab") && i + 1 < argc) vocab = argv[++i];
        else if (!strcmp(argv[i], "--no-lower-case")) opt.do_lower_case = false;
        else if (!strcmp(argv[i], "--strip-accents") && i + 1 < argc) opt.strip_accents = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-chinese")) opt.tokenize_chinese_chars = false;
        else if (!strcmp(argv[i], "--max-seq") && i + 1 < argc) max_seq = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--words")) mode = 1;
        else if (!strcmp(argv[i], "--tokenize")) mode = 2;
        else if (!strcmp(argv[i], "--time")) timing = true;
        else {
            fprintf(stderr, "test_tokenizer_tool: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!vocab) {
        fprintf(stderr, "test_tokenizer_tool: --vocab is required\n");
        return 2;
    }
    Tokenizer *tok;
    if (tokenizer_load(&tok, vocab, &opt) != DISTILL_OK) {
        distill_print_error(distill_error());
        return 1;
    }
    TokenizerState *st = tokenizer_state_new();
    int32_t *ids = xmalloc((size_t)max_seq * sizeof(int32_t));
    uint8_t *types = xmalloc((size_t)max_seq);
    size_t cap = 1 << 16;
    char *line = xmalloc(cap), *a = xmalloc(cap), *b = xmalloc(cap);
    size_t len = 0;
    double t0 = now_seconds(), busy = 0;
    long rows = 0;
    int c;
    for (;;) {
        c = getchar();
        if (c != '\n' && c != EOF) {
            if (len + 1 >= cap) {
                cap *= 2;
                line = xrealloc(line, cap), a = xrealloc(a, cap), b = xrealloc(b, cap);
            }
            line[len++] = (char)c;
            continue;
        }
        if (len == 0 && c == EOF) break;
        char *tab = memchr(line, '\t', len);
        size_t alen = unhex(line, tab ? (size_t)(tab - line) : len, a);
        size_t blen = tab ? unhex(tab + 1, len - (size_t)(tab + 1 - line), b) : 0;
        double s0 = now_seconds();
        Status s;
        if (mode == 1) {
            const char *w;
            size_t wn;
            s = tokenizer_words(tok, st, a, alen, &w, &wn);
            if (s == DISTILL_OK)
                for (size_t i = 0; i < wn; i++) printf("%02x", (unsigned char)w[i]);
        } else if (mode == 2) {
            const int32_t *v;
            int n;
            s = tokenizer_tokenize(tok, st, a, alen, &v, &n);
            for (int i = 0; s == DISTILL_OK && i < n; i++) printf(i ? " %d" : "%d", v[i]);
        } else {
            int n;
            s = tokenizer_encode(tok, st, a, alen, tab ? b : NULL, blen, max_seq, ids, types, &n, NULL);
            busy += now_seconds() - s0;
            for (int i = 0; s == DISTILL_OK && i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            if (s == DISTILL_OK) putchar('\t');
            for (int i = 0; s == DISTILL_OK && i < n; i++) printf(i ? " %d" : "%d", types[i]);
        }
        if (s != DISTILL_OK) printf("ERR %s", distill_error());
        putchar('\n');
        rows++;
        len = 0;
        if (c == EOF) break;
    }
    if (timing)
        fprintf(stderr, "test_tokenizer_tool: %ld rows, encode %.3f s (%.0f rows/s), total %.3f s\n", rows, busy,
                busy > 0 ? rows / busy : 0.0, now_seconds() - t0);
    free(line), free(a), free(b), free(ids), free(types);
    tokenizer_state_free(st);
    tokenizer_free(tok);
    return 0;
}
