/*
 * tokenizer.c — BERT WordPiece tokenizer (see tokenizer.h for the promise).
 *
 * Layout: the vocabulary lives in one string arena; two open-addressing hash tables index it,
 * one for word-initial pieces (every token as written) and one for continuations (tokens that
 * start with "##", keyed without the prefix), so a continuation lookup never builds a string.
 * Text goes segment by segment (the pieces between special tokens) through clean-up,
 * normalisation and pre-tokenisation into the state's word buffer; each finished word goes to
 * WordPiece. Pure-ASCII segments take a table-driven path (the tables are filled from utf8proc at
 * load time); others are decoded to code points and, when accents are stripped, decomposed with
 * utf8proc_decompose (NFD with canonical ordering, as Hugging Face does on the whole segment).
 */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <utf8proc.h>

enum { MAX_WORD_CHARS = 100 }; /* Hugging Face's max_input_chars_per_word */

/* ASCII classes, filled from utf8proc by build_ascii_tables. */
enum { CL_KEEP = 0, CL_DROP = 1, CL_SPACE = 2, CL_PUNCT = 3 };

typedef struct {
    uint32_t hash;
    int32_t id;   /* -1: empty slot */
    uint32_t off; /* key bytes at arena + off */
    uint32_t len;
} Slot;

typedef struct {
    Slot *slots;
    uint32_t mask; /* capacity - 1, capacity a power of two */
} Table;

struct Tokenizer {
    TokenizerOptions opt;
    bool strip;   /* resolved strip_accents */
    int n_tokens; /* vocabulary lines */
    char *arena;  /* every line, NUL-terminated, in id order */
    uint32_t *tok_off; /* [n_tokens] */
    Table whole, cont;
    int max_whole_len, max_cont_len; /* longest key in bytes, per table */
    int unk_id, cls_id, sep_id, pad_id;
    int n_special;
    struct { const char *s; int len; int id; } special[5];
    uint8_t ascii_class[128];
    uint8_t ascii_lower[128];
    char sha256[65];
};

typedef struct {
    int32_t *v;
    int n, cap;
} IdList;

struct TokenizerState {
    IdList list[2];      /* ids of the sequences being encoded */
    IdList *out;         /* where WordPiece appends */
    char *word;          /* current word, UTF-8 */
    int word_len, word_cap, word_chars;
    int32_t *cps;        /* cleaned code points of a segment */
    size_t cps_cap;
    char *utf8;          /* the cleaned segment re-encoded, input of utf8proc_decompose */
    size_t utf8_cap;
    int32_t *nfd;        /* decomposed code points */
    size_t nfd_cap;
    bool words_mode;     /* tokenizer_words: collect words instead of WordPiece */
    char *words;
    size_t words_len, words_cap;
};

/* ------------------------------------------------------------------ hashing and the tables */

static inline uint32_t hash_bytes(const char *s, int n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static void table_init(Table *tb, int n) {
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n + 1) cap <<= 1;
    tb->slots = xmalloc(cap * sizeof(Slot));
    for (uint32_t i = 0; i < cap; i++) tb->slots[i].id = -1;
    tb->mask = cap - 1;
}

/* Inserts or overwrites (a later line wins, as in Hugging Face's vocabulary loading). */
static void table_put(Table *tb, const char *arena, uint32_t off, uint32_t len, int id) {
    uint32_t h = hash_bytes(arena + off, (int)len);
    for (uint32_t i = h & tb->mask;; i = (i + 1) & tb->mask) {
        Slot *s = &tb->slots[i];
        if (s->id < 0) {
            s->hash = h, s->id = id, s->off = off, s->len = len;
            return;
        }
        if (s->hash == h && s->len == len && !memcmp(arena + s->off, arena + off, len)) {
            s->id = id;
            return;
        }
    }
}

static inline int table_get(const Table *tb, const char *arena, const char *key, int len) {
    uint32_t h = hash_bytes(key, len);
    for (uint32_t i = h & tb->mask;; i = (i + 1) & tb->mask) {
        const Slot *s = &tb->slots[i];
        if (s->id < 0) return -1;
        if (s->hash == h && s->len == (uint32_t)len && !memcmp(arena + s->off, key, (size_t)len)) return s->id;
    }
}

/* ------------------------------------------------------------------ Unicode classes (utf8proc) */

static inline bool cat_is_control(int cat) {
    /* Hugging Face drops "other" characters: Cc, Cf, Co (and Cs, which valid UTF-8 never holds).
     * Unassigned code points (Cn) are kept: its category table has no Cn entries. */
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO ||
           cat == UTF8PROC_CATEGORY_CS;
}

static inline bool cat_is_space(int cat) {
    /* Unicode White_Space that is not a control character is exactly Zs, Zl and Zp. */
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

static inline bool cat_is_punct(int cat) {
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

static inline bool cp_is_punct(int32_t c) {
    int cat = utf8proc_category(c);
    if (c < 128) /* ASCII punctuation: every graphic character that is not a letter or a digit */
        return cat_is_punct(cat) || (cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO);
    return cat_is_punct(cat);
}

/* BERT's "Chinese character" ranges as `tokenizers` defines them (its list, including its gap
 * at U+2B820..U+2B91F): an algorithm constant, not a Unicode property. */
static inline bool cp_is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static void build_ascii_tables(Tokenizer *t) {
    for (int c = 0; c < 128; c++) {
        int cat = utf8proc_category(c);
        uint8_t cl = CL_KEEP;
        if (c == '\t' || c == '\n' || c == '\r' || cat_is_space(cat)) cl = CL_SPACE;
        else if (c == 0 || cat_is_control(cat)) cl = CL_DROP;
        else if (cp_is_punct(c)) cl = CL_PUNCT;
        t->ascii_class[c] = cl;
        t->ascii_lower[c] = (uint8_t)(t->opt.do_lower_case ? utf8proc_tolower(c) : c);
    }
}

long utf8_invalid_at(const char *s, size_t len) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) { i++; continue; }
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0) return (long)i;
        i += (size_t)k;
    }
    return -1;
}

/* ------------------------------------------------------------------ loading */

TokenizerOptions tokenizer_default_options(void) {
    TokenizerOptions o = {.do_lower_case = true, .strip_accents = -1, .tokenize_chinese_chars = true};
    return o;
}

static void sha256_hex(const void *data, size_t n, char out[65]) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL);
    DCHECK(mdlen == 32);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Builds everything from the lines already in t->arena (tok_off, n_tokens set). */
static Status finish_load(Tokenizer *t) {
    if (t->n_tokens == 0) {
        distill_set_error("the vocabulary is empty");
        return DISTILL_ERR;
    }
    t->opt.strip_accents = t->opt.strip_accents < 0 ? -1 : (t->opt.strip_accents > 0);
    t->strip = t->opt.strip_accents < 0 ? t->opt.do_lower_case : t->opt.strip_accents == 1;
    table_init(&t->whole, t->n_tokens);
    table_init(&t->cont, t->n_tokens);
    size_t total = 0;
    for (int i = 0; i < t->n_tokens; i++) {
        uint32_t off = t->tok_off[i];
        uint32_t len = (uint32_t)strlen(t->arena + off);
        total += len + 1;
        table_put(&t->whole, t->arena, off, len, i);
        if ((int)len > t->max_whole_len) t->max_whole_len = (int)len;
        if (len > 2 && t->arena[off] == '#' && t->arena[off + 1] == '#') {
            table_put(&t->cont, t->arena, off + 2, len - 2, i);
            if ((int)len - 2 > t->max_cont_len) t->max_cont_len = (int)len - 2;
        }
    }
    /* SHA-256 of the lines, each ended by '\n' (the arena holds them NUL-separated). */
    char *joined = xmalloc(total);
    size_t k = 0;
    for (int i = 0; i < t->n_tokens; i++) {
        const char *s = t->arena + t->tok_off[i];
        size_t len = strlen(s);
        memcpy(joined + k, s, len);
        k += len;
        joined[k++] = '\n';
    }
    sha256_hex(joined, k, t->sha256);
    free(joined);

    t->unk_id = tokenizer_token_id(t, "[UNK]");
    if (t->unk_id < 0) {
        distill_set_error("the vocabulary has no [UNK] token");
        return DISTILL_ERR;
    }
    t->cls_id = tokenizer_token_id(t, "[CLS]");
    t->sep_id = tokenizer_token_id(t, "[SEP]");
    int pad = tokenizer_token_id(t, "[PAD]");
    t->pad_id = pad < 0 ? 0 : pad;
    static const char *const names[] = {"[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]"};
    for (int i = 0; i < 5; i++) {
        int id = tokenizer_token_id(t, names[i]);
        if (id < 0) continue;
        t->special[t->n_special].s = names[i];
        t->special[t->n_special].len = (int)strlen(names[i]);
        t->special[t->n_special].id = id;
        t->n_special++;
    }
    build_ascii_tables(t);
    return DISTILL_OK;
}

Status tokenizer_load(Tokenizer **out, const char *vocab_path, const TokenizerOptions *opt) {
    *out = NULL;
    FILE *f = fopen(vocab_path, "rb");
    if (!f) {
        distill_set_error("%s: cannot open the vocabulary file", vocab_path);
        return DISTILL_ERR;
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        buf = xrealloc(buf, cap + 1);
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        distill_set_error("%s: read error", vocab_path);
        return DISTILL_ERR;
    }
    buf[n] = '\0';
    long inv = utf8_invalid_at(buf, n);
    if (inv >= 0 || memchr(buf, '\0', n)) {
        free(buf);
        distill_set_error("%s: the vocabulary is not valid UTF-8 text", vocab_path);
        return DISTILL_ERR;
    }
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->opt = opt ? *opt : tokenizer_default_options();
    /* Lines as Rust's BufRead::lines() gives them, then trim_end(): split on '\n', drop trailing
     * whitespace ('\r' included); no empty line after a final '\n'. The buffer becomes the arena. */
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
    t->tok_off = xmalloc((size_t)(lines + 1) * sizeof(uint32_t));
    size_t start = 0;
    while (start < n) {
        size_t end = start;
        while (end < n && buf[end] != '\n') end++;
        size_t e = end;
        while (e > start && (buf[e - 1] == ' ' || buf[e - 1] == '\t' || buf[e - 1] == '\r' || buf[e - 1] == '\v' ||
                             buf[e - 1] == '\f'))
            e--;
        buf[e] = '\0';
        t->tok_off[t->n_tokens++] = (uint32_t)start;
        start = end + 1;
    }
    t->arena = buf;
    if (finish_load(t) != DISTILL_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: %s", vocab_path, distill_error());
        distill_set_error("%s", msg);
        tokenizer_free(t);
        return DISTILL_ERR;
    }
    *out = t;
    return DISTILL_OK;
}

Status tokenizer_from_tokens(Tokenizer **out, const char *const *tokens, int n, const TokenizerOptions *opt) {
    *out = NULL;
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->opt = opt ? *opt : tokenizer_default_options();
    size_t total = 0;
    for (int i = 0; i < n; i++) total += strlen(tokens[i]) + 1;
    t->arena = xmalloc(total + 1);
    t->tok_off = xmalloc((size_t)(n + 1) * sizeof(uint32_t));
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(tokens[i]);
        t->tok_off[i] = (uint32_t)k;
        memcpy(t->arena + k, tokens[i], len + 1);
        k += len + 1;
    }
    t->n_tokens = n;
    if (finish_load(t) != DISTILL_OK) {
        tokenizer_free(t);
        return DISTILL_ERR;
    }
    *out = t;
    return DISTILL_OK;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->whole.slots);
    free(t->cont.slots);
    free(t->arena);
    free(t->tok_off);
    free(t);
}

TokenizerOptions tokenizer_options(const Tokenizer *t) { return t->opt; }
int tokenizer_vocab_size(const Tokenizer *t) { return t->n_tokens; }
const char *tokenizer_token(const Tokenizer *t, int id) {
    return id >= 0 && id < t->n_tokens ? t->arena + t->tok_off[id] : NULL;
}
int tokenizer_token_id(const Tokenizer *t, const char *token) {
    return table_get(&t->whole, t->arena, token, (int)strlen(token));
}
const char *tokenizer_vocab_sha256(const Tokenizer *t) { return t->sha256; }
int tokenizer_cls_id(const Tokenizer *t) { return t->cls_id; }
int tokenizer_sep_id(const Tokenizer *t) { return t->sep_id; }
int tokenizer_pad_id(const Tokenizer *t) { return t->pad_id; }
int tokenizer_unk_id(const Tokenizer *t) { return t->unk_id; }

/* ------------------------------------------------------------------ state */

TokenizerState *tokenizer_state_new(void) {
    TokenizerState *st = xcalloc(1, sizeof *st);
    st->word_cap = 256;
    st->word = xmalloc((size_t)st->word_cap);
    for (int i = 0; i < 2; i++) {
        st->list[i].cap = 256;
        st->list[i].v = xmalloc(256 * sizeof(int32_t));
    }
    return st;
}

void tokenizer_state_free(TokenizerState *st) {
    if (!st) return;
    free(st->list[0].v);
    free(st->list[1].v);
    free(st->word);
    free(st->cps);
    free(st->utf8);
    free(st->nfd);
    free(st->words);
    free(st);
}

static inline void push_id(IdList *l, int32_t id) {
    if (l->n == l->cap) {
        l->cap *= 2;
        l->v = xrealloc(l->v, (size_t)l->cap * sizeof(int32_t));
    }
    l->v[l->n++] = id;
}

static void words_append(TokenizerState *st, const char *s, size_t n) {
    if (st->words_len + n + 2 > st->words_cap) {
        st->words_cap = 2 * (st->words_len + n + 2);
        st->words = xrealloc(st->words, st->words_cap);
    }
    memcpy(st->words + st->words_len, s, n);
    st->words_len += n;
    st->words[st->words_len++] = ' ';
    st->words[st->words_len] = '\0';
}

/* ------------------------------------------------------------------ WordPiece */

/* Greedy longest-match-first over the word in st->word; appends ids (or [UNK]) to st->out. */
static void wordpiece(const Tokenizer *t, TokenizerState *st) {
    const char *w = st->word;
    int n = st->word_len;
    if (st->word_chars > MAX_WORD_CHARS) {
        push_id(st->out, t->unk_id);
        return;
    }
    int mark = st->out->n;
    int start = 0;
    while (start < n) {
        const Table *tb = start == 0 ? &t->whole : &t->cont;
        int maxlen = start == 0 ? t->max_whole_len : t->max_cont_len;
        int end = n - start > maxlen ? start + maxlen : n;
        int id = -1;
        for (; end > start; end--) {
            if (end < n && ((uint8_t)w[end] & 0xC0) == 0x80) continue; /* not a character boundary */
            id = table_get(tb, t->arena, w + start, end - start);
            if (id >= 0) break;
        }
        if (id < 0) { /* no piece fits: the whole word is [UNK] */
            st->out->n = mark;
            push_id(st->out, t->unk_id);
            return;
        }
        push_id(st->out, id);
        start = end;
    }
}

static inline void flush_word(const Tokenizer *t, TokenizerState *st) {
    if (st->word_len == 0) return;
    if (st->words_mode) words_append(st, st->word, (size_t)st->word_len);
    else wordpiece(t, st);
    st->word_len = 0;
    st->word_chars = 0;
}

static inline void word_push_byte(TokenizerState *st, char c) {
    if (st->word_len + 1 > st->word_cap) {
        st->word_cap *= 2;
        st->word = xrealloc(st->word, (size_t)st->word_cap);
    }
    st->word[st->word_len++] = c;
    st->word_chars++;
}

static inline void word_push_cp(TokenizerState *st, int32_t c) {
    if (st->word_len + 4 > st->word_cap) {
        st->word_cap *= 2;
        st->word = xrealloc(st->word, (size_t)st->word_cap);
    }
    st->word_len += (int)utf8proc_encode_char(c, (utf8proc_uint8_t *)st->word + st->word_len);
    st->word_chars++;
}

/* One normalised code point into the pre-tokeniser: spaces end words, punctuation is a word. */
static inline void emit_cp(const Tokenizer *t, TokenizerState *st, int32_t c) {
    if (c == ' ') {
        flush_word(t, st);
    } else if (cp_is_punct(c)) {
        flush_word(t, st);
        word_push_cp(st, c);
        flush_word(t, st);
    } else {
        word_push_cp(st, c);
    }
}

/* Lower-cases and emits (the full mapping: U+0130 is the one code point whose lower case is two,
 * "i" + U+0307, per Unicode's SpecialCasing.txt, which utf8proc's simple mapping does not give). */
static inline void lower_emit(const Tokenizer *t, TokenizerState *st, int32_t c) {
    if (t->opt.do_lower_case) {
        if (c == 0x130) {
            emit_cp(t, st, 'i');
            emit_cp(t, st, 0x307);
            return;
        }
        c = utf8proc_tolower(c);
    }
    emit_cp(t, st, c);
}

/* ------------------------------------------------------------------ segments */

static void segment_ascii(const Tokenizer *t, TokenizerState *st, const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        switch (t->ascii_class[c]) {
        case CL_KEEP: word_push_byte(st, (char)t->ascii_lower[c]); break;
        case CL_SPACE: flush_word(t, st); break;
        case CL_PUNCT:
            flush_word(t, st);
            word_push_byte(st, (char)c);
            flush_word(t, st);
            break;
        default: break; /* dropped control character */
        }
    }
    flush_word(t, st);
}

static void ensure_cps(TokenizerState *st, size_t n) {
    if (n > st->cps_cap) {
        st->cps_cap = n * 2;
        st->cps = xrealloc(st->cps, st->cps_cap * sizeof(int32_t));
    }
}

/* A segment with non-ASCII bytes. Returns DISTILL_ERR on invalid UTF-8 (at byte *bad). */
static Status segment_unicode(const Tokenizer *t, TokenizerState *st, const uint8_t *s, size_t n, size_t *bad) {
    /* 1. decode, clean up, isolate CJK: at most 3 code points per input byte */
    ensure_cps(st, 3 * n + 1);
    size_t m = 0;
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t c;
        if (s[i] < 0x80) {
            c = s[i++];
        } else {
            utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &c);
            if (k <= 0) {
                *bad = i;
                return DISTILL_ERR;
            }
            i += (size_t)k;
        }
        int cat = utf8proc_category(c);
        if (c == '\t' || c == '\n' || c == '\r' || cat_is_space(cat)) {
            st->cps[m++] = ' ';
        } else if (c == 0 || c == 0xFFFD || cat_is_control(cat)) {
            continue;
        } else if (t->opt.tokenize_chinese_chars && cp_is_cjk(c)) {
            st->cps[m++] = ' ';
            st->cps[m++] = c;
            st->cps[m++] = ' ';
        } else {
            st->cps[m++] = c;
        }
    }
    if (!t->strip) {
        for (size_t j = 0; j < m; j++) lower_emit(t, st, st->cps[j]);
        flush_word(t, st);
        return DISTILL_OK;
    }
    /* 2. NFD over the whole cleaned segment (canonical ordering crosses code points), drop Mn */
    if (4 * m + 1 > st->utf8_cap) {
        st->utf8_cap = 8 * m + 1;
        st->utf8 = xrealloc(st->utf8, st->utf8_cap);
    }
    size_t u = 0;
    for (size_t j = 0; j < m; j++) u += (size_t)utf8proc_encode_char(st->cps[j], (utf8proc_uint8_t *)st->utf8 + u);
    utf8proc_ssize_t got;
    for (;;) {
        got = utf8proc_decompose((const utf8proc_uint8_t *)st->utf8, (utf8proc_ssize_t)u, st->nfd,
                                 (utf8proc_ssize_t)st->nfd_cap, UTF8PROC_DECOMPOSE);
        DCHECK(got >= 0); /* the input was validated and re-encoded above */
        if ((size_t)got <= st->nfd_cap) break;
        st->nfd_cap = 2 * (size_t)got;
        st->nfd = xrealloc(st->nfd, st->nfd_cap * sizeof(int32_t));
    }
    for (utf8proc_ssize_t j = 0; j < got; j++) {
        int32_t c = st->nfd[j];
        if (utf8proc_category(c) == UTF8PROC_CATEGORY_MN) continue;
        lower_emit(t, st, c);
    }
    flush_word(t, st);
    return DISTILL_OK;
}

static Status segment(const Tokenizer *t, TokenizerState *st, const char *text, size_t n, size_t base) {
    const uint8_t *s = (const uint8_t *)text;
    bool ascii = true;
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0x80) {
            ascii = false;
            break;
        }
    if (ascii) {
        segment_ascii(t, st, s, n);
        return DISTILL_OK;
    }
    size_t bad = 0;
    if (segment_unicode(t, st, s, n, &bad) != DISTILL_OK) {
        st->word_len = st->word_chars = 0;
        distill_set_error("invalid UTF-8 at byte %zu", base + bad);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

/* Finds special tokens in the raw text (leftmost, longest) and runs the segments between them. */
static Status run_text(const Tokenizer *t, TokenizerState *st, const char *text, size_t len) {
    st->word_len = st->word_chars = 0;
    size_t seg = 0;
    const char *p = text;
    while (t->n_special > 0) {
        const char *q = memchr(p, '[', len - (size_t)(p - text));
        if (!q) break;
        size_t rest = len - (size_t)(q - text);
        int best = -1;
        for (int k = 0; k < t->n_special; k++)
            if ((size_t)t->special[k].len <= rest && !memcmp(q, t->special[k].s, (size_t)t->special[k].len) &&
                (best < 0 || t->special[k].len > t->special[best].len))
                best = k;
        if (best < 0) {
            p = q + 1;
            continue;
        }
        size_t at = (size_t)(q - text);
        if (segment(t, st, text + seg, at - seg, seg) != DISTILL_OK) return DISTILL_ERR;
        if (st->words_mode) words_append(st, t->special[best].s, (size_t)t->special[best].len);
        else push_id(st->out, t->special[best].id);
        seg = at + (size_t)t->special[best].len;
        p = text + seg;
    }
    return segment(t, st, text + seg, len - seg, seg);
}

/* ------------------------------------------------------------------ public entry points */

Status tokenizer_tokenize(const Tokenizer *t, TokenizerState *st, const char *text, size_t len,
                          const int32_t **ids, int *n) {
    st->words_mode = false;
    st->out = &st->list[0];
    st->out->n = 0;
    Status s = run_text(t, st, text, len);
    *ids = st->list[0].v;
    *n = s == DISTILL_OK ? st->list[0].n : 0;
    return s;
}

Status tokenizer_words(const Tokenizer *t, TokenizerState *st, const char *text, size_t len, const char **out,
                       size_t *out_len) {
    st->words_mode = true;
    if (!st->words) {
        st->words_cap = 256;
        st->words = xmalloc(st->words_cap);
    }
    st->words_len = 0;
    st->words[0] = '\0';
    Status s = run_text(t, st, text, len);
    st->words_mode = false;
    *out = st->words;
    *out_len = st->words_len;
    return s;
}

Status tokenizer_encode(const Tokenizer *t, TokenizerState *st, const char *a, size_t alen, const char *b,
                        size_t blen, int max_seq, int32_t *ids, uint8_t *types, int *length, bool *truncated) {
    bool pair = b != NULL;
    int added = pair ? 3 : 2;
    *length = 0;
    if (truncated) *truncated = false;
    if (t->cls_id < 0 || t->sep_id < 0) {
        distill_set_error("the vocabulary has no [CLS] or no [SEP] token");
        return DISTILL_ERR;
    }
    if (max_seq < added) {
        distill_set_error("max_seq %d is too small: [CLS]/[SEP] alone need %d", max_seq, added);
        return DISTILL_ERR;
    }
    st->words_mode = false;
    st->out = &st->list[0];
    st->out->n = 0;
    if (run_text(t, st, a, alen) != DISTILL_OK) return DISTILL_ERR;
    int n1 = st->list[0].n, n2 = 0;
    if (pair) {
        st->out = &st->list[1];
        st->out->n = 0;
        if (run_text(t, st, b, blen) != DISTILL_OK) return DISTILL_ERR;
        n2 = st->list[1].n;
    }
    /* Truncation as `tokenizers` (TruncationStrategy::LongestFirst) does it, budget max_seq - added. */
    int budget = max_seq - added;
    if (n1 + n2 > budget) {
        if (truncated) *truncated = true;
        if (!pair) n1 = budget;
        else tokenizer_truncate_pair(&n1, &n2, budget);
    }
    int k = 0;
    ids[k] = t->cls_id, types[k++] = 0;
    for (int i = 0; i < n1; i++) ids[k] = st->list[0].v[i], types[k++] = 0;
    ids[k] = t->sep_id, types[k++] = 0;
    if (pair) {
        for (int i = 0; i < n2; i++) ids[k] = st->list[1].v[i], types[k++] = 1;
        ids[k] = t->sep_id, types[k++] = 1;
    }
    *length = k;
    return DISTILL_OK;
}

void tokenizer_truncate_pair(int *n1, int *n2, int budget) {
    bool swap = *n1 > *n2;
    int s1 = swap ? *n2 : *n1; /* the shorter */
    int s2;
    if (s1 > budget) s2 = s1;
    else s2 = s1 > budget - s1 ? s1 : budget - s1;
    if (s1 + s2 > budget) {
        s1 = budget / 2;
        s2 = s1 + budget % 2;
    }
    int k1 = swap ? s2 : s1, k2 = swap ? s1 : s2;
    if (k1 < *n1) *n1 = k1;
    if (k2 < *n2) *n2 = k2;
}
