/*
 * test_hf_safetensors.c — unit tests of checkpoints/safetensors.{h,c}: exhaustive F16/BF16 -> f32
 * conversion against independent references, write -> read round trip (bit-exact, stable bytes,
 * header layout), and every malformed-file rejection with its message. Exits non-zero on failure.
 */
#define _GNU_SOURCE
#include "checkpoints/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_check.h"

static char g_dir[256];

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Reference: the F16 value from its fields, computed in double with ldexp (exact for all halves). */
static float f16_reference(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
    double v;
    if (exp == 0) v = ldexp(mant, -24);                 /* subnormal: mant * 2^-14 / 2^10 */
    else if (exp == 31) v = mant ? NAN : INFINITY;
    else v = ldexp(1024 + mant, exp - 15 - 10);
    return (float)(sign ? -v : v);
}

static float bf16_reference(uint16_t b) {
    int sign = b >> 15, exp = (b >> 7) & 255, mant = b & 127;
    double v;
    if (exp == 0) v = ldexp(mant, -126 - 7);
    else if (exp == 255) v = mant ? NAN : INFINITY;
    else v = ldexp(128 + mant, exp - 127 - 7);
    return (float)(sign ? -v : v);
}

static void test_conversions(void) {
    int bad16 = 0, badb = 0, nan16 = 0, sub16 = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float ours = st_f16_to_f32(h), ref = f16_reference(h);
        if (isnan(ref)) {
            /* NaN: sign kept and the 10-bit payload moved to the top of the f32 mantissa. */
            nan16++;
            uint32_t want = ((uint32_t)(h & 0x8000) << 16) | 0x7f800000u | ((uint32_t)(h & 1023) << 13);
            if (!isnan(ours) || bits_of(ours) != want) bad16++;
        } else {
            if (((h >> 10) & 31) == 0 && (h & 1023)) sub16++;
            if (bits_of(ours) != bits_of(ref)) bad16++; /* includes -0 vs +0 */
        }
#ifdef __FLT16_MAX__
        _Float16 hv;
        memcpy(&hv, &h, sizeof h);
        float hw = (float)hv; /* the compiler's own conversion, a second reference */
        if (!isnan(hw) && bits_of(hw) != bits_of(ours)) bad16++;
        if (isnan(hw) && !isnan(ours)) bad16++;
#endif
        uint16_t b = (uint16_t)i;
        float ob = st_bf16_to_f32(b), rb = bf16_reference(b);
        if (isnan(rb)) {
            if (!isnan(ob) || bits_of(ob) != ((uint32_t)b << 16)) badb++;
        } else if (bits_of(ob) != bits_of(rb)) {
            badb++;
        }
    }
    CHECK(bad16 == 0, "%d F16 values converted wrongly", bad16);
    CHECK(badb == 0, "%d BF16 values converted wrongly", badb);
    CHECK(nan16 == 2 * 1023 && sub16 == 2 * 1023, "F16 classes: %d NaN, %d subnormal", nan16, sub16);
    CHECK(st_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "smallest F16 subnormal");
    CHECK(st_f16_to_f32(0x7bff) == 65504.0f, "largest F16");
    CHECK(isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0, "-inf");
    CHECK(bits_of(st_f16_to_f32(0x8000)) == 0x80000000u, "-0");
}

static char *tpath(const char *name) {
    static char buf[64][512]; /* a ring: paths stay valid for 64 calls */
    static int k;
    char *p = buf[k++ & 63];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, n, fp) != n) {
        perror(path);
        exit(2);
    }
    fclose(fp);
}

/* A file from a header string and `data_bytes` bytes of data (value i & 255). */
static void write_raw(const char *path, const char *header, size_t data_bytes) {
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + data_bytes + 1);
    uint64_t h64 = hl;
    memcpy(buf, &h64, 8);
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < data_bytes; i++) buf[8 + hl + i] = (unsigned char)i;
    write_bytes(path, buf, 8 + hl + data_bytes);
    free(buf);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    if (fread(b, 1, *n, fp) != *n) *n = 0;
    fclose(fp);
    return b;
}

static int count_dir_entries(void) {
    int n = 0;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", g_dir);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

static void test_roundtrip(void) {
    float a[6] = {1.5f, -2.0f, 0.0f, -0.0f, INFINITY, 1e-40f /* subnormal f32 */};
    float b[3] = {NAN, 3.0f, -7.25f};
    float c[1] = {42.0f};
    StWriteTensor ts[4] = {
        {.name = "zeta.weight", .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "alpha.bias", .ndim = 1, .shape = {3}, .data = b},
        {.name = "scalar", .ndim = 0, .data = c},
        {.name = "empty", .ndim = 2, .shape = {0, 5}, .data = NULL},
    };
    const char *meta[] = {"format", "pt", "note", "quote \" and \\ kept"};
    const char *p = tpath("rt.safetensors");
    CHECK(st_write_f32(p, ts, 4, meta, 2) == DISTILL_OK, "%s", distill_error());
    size_t n1, n2;
    unsigned char *bytes1 = slurp(p, &n1);
    CHECK(st_write_f32(p, ts, 4, meta, 2) == DISTILL_OK, "%s", distill_error());
    unsigned char *bytes2 = slurp(p, &n2);
    CHECK(bytes1 && bytes2 && n1 == n2 && memcmp(bytes1, bytes2, n1) == 0, "rewrite differs");
    uint64_t hl;
    memcpy(&hl, bytes1, 8);
    CHECK(hl % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hl);
    CHECK(n1 == 8 + hl + (6 + 3 + 1) * 4, "file size %zu", n1);
    CHECK(bytes1[8 + hl - 1] == '}' || bytes1[8 + hl - 1] == ' ', "header padding");
    /* Tensors and data in name order: alpha.bias, empty, scalar, zeta.weight. */
    const char *ha = strstr((char *)bytes1 + 8, "alpha.bias"), *hz = strstr((char *)bytes1 + 8, "zeta");
    CHECK(ha && hz && ha < hz, "header order");
    float first;
    memcpy(&first, bytes1 + 8 + hl, 4);
    CHECK(isnan(first), "data order: alpha.bias first");
    free(bytes1);
    free(bytes2);

    StFile *f;
    CHECK(st_open(p, &f) == DISTILL_OK, "%s", distill_error());
    if (!f) return;
    CHECK(f->n == 4, "n %d", f->n);
    CHECK(st_metadata(f, "format") && strcmp(st_metadata(f, "format"), "pt") == 0, "metadata");
    CHECK(st_metadata(f, "note") && strcmp(st_metadata(f, "note"), meta[3]) == 0, "metadata escape");
    const StTensor *t = st_find(f, "zeta.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && strcmp(t->dtype, "F32") == 0,
          "zeta shape");
    float got[6];
    if (t) {
        CHECK(st_read_f32(f, t, got) == DISTILL_OK, "%s", distill_error());
        CHECK(memcmp(got, a, sizeof a) == 0, "zeta data not bit-exact");
    }
    t = st_find(f, "alpha.bias");
    if (t) {
        CHECK(st_read_f32(f, t, got) == DISTILL_OK, "%s", distill_error());
        CHECK(memcmp(got, b, sizeof b) == 0, "alpha data not bit-exact");
    }
    t = st_find(f, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1, "scalar");
    t = st_find(f, "empty");
    CHECK(t && t->numel == 0 && t->begin == t->end, "empty");
    CHECK(st_find(f, "nothing") == NULL, "absent name");
    st_close(f);

    /* Header padding: names of 1..8 characters give every header length modulo 8. */
    for (int len = 1; len <= 8; len++) {
        char nm[9] = "abcdefgh";
        nm[len] = '\0';
        StWriteTensor one = {.name = nm, .ndim = 1, .shape = {1}, .data = c};
        const char *q = tpath("pad.safetensors");
        CHECK(st_write_f32(q, &one, 1, NULL, 0) == DISTILL_OK, "%s", distill_error());
        size_t nb;
        unsigned char *bb = slurp(q, &nb);
        uint64_t h;
        memcpy(&h, bb, 8);
        size_t close = 8 + h - 1; /* the JSON ends at the last '}', then only spaces */
        while (close > 8 && bb[close] == ' ') close--;
        CHECK(h % 8 == 0 && nb == 8 + h + 4 && bb[close] == '}' && 8 + h - 1 - close < 8,
              "name length %d: header length %llu", len, (unsigned long long)h);
        free(bb);
    }

    /* Errors while writing: a folder that does not exist, a repeated name; nothing left behind. */
    int before = count_dir_entries();
    CHECK(st_write_f32(tpath("no/such/dir/x.safetensors"), ts, 1, NULL, 0) == DISTILL_ERR, "no dir");
    CHECK(strstr(distill_error(), "no/such/dir/x.safetensors") != NULL, "%s", distill_error());
    StWriteTensor dup[2] = {ts[0], ts[0]};
    CHECK(st_write_f32(tpath("dup.safetensors"), dup, 2, NULL, 0) == DISTILL_ERR, "dup accepted");
    CHECK(strstr(distill_error(), "repeated") != NULL, "%s", distill_error());
    CHECK(count_dir_entries() == before, "a write error left files behind");
}

static void test_half_files(void) {
    /* F16 [1, -2, 65504, 2^-24] and BF16 [1, -inf] as raw bytes. */
    const uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    const uint16_t bf[2] = {0x3f80, 0xff80};
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
                      "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[12,20]}}";
    size_t hl = strlen(hdr);
    unsigned char buf[512];
    uint64_t h64 = hl;
    memcpy(buf, &h64, 8);
    memcpy(buf + 8, hdr, hl);
    memcpy(buf + 8 + hl, h, 8);
    memcpy(buf + 8 + hl + 8, bf, 4);
    memset(buf + 8 + hl + 12, 0, 8);
    const char *p = tpath("half.safetensors");
    write_bytes(p, buf, 8 + hl + 20);
    StFile *f;
    CHECK(st_open(p, &f) == DISTILL_OK, "%s", distill_error());
    if (!f) return;
    float out[4];
    CHECK(st_read_f32(f, st_find(f, "h"), out) == DISTILL_OK, "%s", distill_error());
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 65504.0f && out[3] == ldexpf(1, -24),
          "F16 read %g %g %g %g", out[0], out[1], out[2], out[3]);
    CHECK(st_read_f32(f, st_find(f, "b"), out) == DISTILL_OK, "%s", distill_error());
    CHECK(out[0] == 1.0f && isinf(out[1]) && out[1] < 0, "BF16 read %g %g", out[0], out[1]);
    CHECK(st_read_f32(f, st_find(f, "i"), out) == DISTILL_ERR, "I64 read as float");
    CHECK(strstr(distill_error(), "dtype I64") != NULL, "%s", distill_error());
    st_close(f);
}

typedef struct {
    const char *name, *header;
    long data_bytes;  /* -1: write `raw` instead */
    const char *expect;
} BadCase;

static void test_malformed(void) {
    static const BadCase cases[] = {
        {"short", NULL, -1, "too short"},
        {"hdrlen", NULL, -2, "header length"},
        {"badjson", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],", 4, "not valid JSON"},
        {"notobj", "[1,2,3]", 0, "should be a JSON object"},
        {"trailing_hdr", "{} x", 0, "unexpected bytes after the JSON"},
        {"truncated", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 10,
         "file truncated?"},
        {"wrongsize", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16,
         "needs 12"},
        {"overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"hole", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "hole"},
        {"trailing", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 9,
         "trailing bytes"},
        {"dtype", "{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
        {"shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16, "\"shape\""},
        {"negshape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         "non-negative"},
        {"offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
         "data_offsets"},
        {"dup", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "listed twice"},
        {"meta", "{\"__metadata__\":{\"format\":1}}", 0, "__metadata__"},
        {"entry", "{\"a\":7}", 0, "should be an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const BadCase *c = &cases[i];
        char name[64];
        snprintf(name, sizeof name, "bad_%s.safetensors", c->name);
        const char *p = tpath(name);
        if (c->data_bytes == -1) {
            write_bytes(p, "\x05\x00\x00", 3);
        } else if (c->data_bytes == -2) {
            unsigned char b[12] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
            write_bytes(p, b, sizeof b);
        } else {
            write_raw(p, c->header, (size_t)c->data_bytes);
        }
        StFile *f = (StFile *)1;
        Status s = st_open(p, &f);
        CHECK(s == DISTILL_ERR && f == NULL, "case %s accepted", c->name);
        CHECK(strstr(distill_error(), c->expect) && strstr(distill_error(), name),
              "case %s: message \"%s\" lacks \"%s\" or the file name", c->name, distill_error(),
              c->expect);
    }
    StFile *f;
    CHECK(st_open(tpath("does-not-exist.safetensors"), &f) == DISTILL_ERR, "missing file");
    CHECK(strstr(distill_error(), "cannot open") != NULL, "%s", distill_error());
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/test_hf_safetensors-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_conversions();
    test_roundtrip();
    test_half_files();
    test_malformed();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_dir);
    if (g_failures) {
        fprintf(stderr, "test_hf_safetensors: %d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_hf_safetensors: all checks passed\n");
    return 0;
}
