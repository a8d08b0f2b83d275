/*
 * safetensors.c — the safetensors reader (mmap, validated header, F32/F16/BF16 -> f32) and the
 * atomic F32 writer. See safetensors.h for the promises; the header JSON goes through cJSON.
 */
#define _GNU_SOURCE
#include "safetensors.h"

#include "io/atomic.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (the format is little-endian)"
#endif

/* The largest header the reference implementation accepts (100 MB). */
#define ST_MAX_HEADER ((uint64_t)100000000)
/* Integers in the header are JSON numbers; beyond 2^53 a double cannot hold them exactly. */
#define ST_MAX_INT 9007199254740992.0

/* Element sizes in bytes of the dtypes the format defines (whole-byte ones). */
static const struct { const char *name; size_t size; } st_dtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"U64", 8}, {"I32", 4},
    {"U32", 4}, {"I16", 2}, {"U16", 2}, {"I8", 1}, {"U8", 1}, {"BOOL", 1}, {"F8_E5M2", 1},
    {"F8_E4M3", 1}, {"F8_E8M0", 1},
};

static size_t dtype_bytes(const char *name) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return st_dtypes[i].size;
    return 0;
}

/* ------------------------------------------------------------------ conversions */

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0 && mant == 0) {
        bits = sign; /* signed zero */
    } else if (exp == 0) {
        /* Subnormal: mant * 2^-24. Normalise so the leading 1 reaches bit 10; each shift lowers the
         * exponent by one from the smallest normal exponent, -14. */
        int shift = 0;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            shift++;
        }
        mant &= 0x3ffu;
        bits = sign | ((uint32_t)(127 - 14 - shift) << 23) | (mant << 13);
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13); /* infinity (mant 0) or NaN, payload kept */
    } else {
        bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float st_bf16_to_f32(uint16_t b) {
    /* bf16 is the top half of an f32: every value, subnormal, infinity and NaN maps exactly. */
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ------------------------------------------------------------------ reading */

static Status fail_file(StFile *f, Status s) {
    st_close(f);
    return s;
}

/* A JSON number that is a non-negative integer below 2^53, into *v. */
static bool json_uint(const cJSON *item, uint64_t *v) {
    if (!cJSON_IsNumber(item)) return false;
    double d = item->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_INT || floor(d) != d) return false;
    *v = (uint64_t)d;
    return true;
}

static const char *json_kind(const cJSON *item) {
    if (!item) return "nothing";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNull(item)) return "null";
    return "an invalid value";
}

static Status parse_metadata(StFile *f, const cJSON *meta) {
    if (!cJSON_IsObject(meta)) {
        distill_set_error("%s: header: __metadata__ should be an object of strings, found %s",
                          f->path, json_kind(meta));
        return DISTILL_ERR;
    }
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = xcalloc((size_t)n, sizeof(char *));
    f->meta_values = xcalloc((size_t)n, sizeof(char *));
    for (const cJSON *it = meta->child; it; it = it->next) {
        if (!cJSON_IsString(it)) {
            distill_set_error("%s: header: __metadata__ \"%s\" should be a string, found %s",
                              f->path, it->string, json_kind(it));
            return DISTILL_ERR;
        }
        f->meta_keys[f->n_meta] = xstrdup(it->string);
        f->meta_values[f->n_meta] = xstrdup(it->valuestring);
        f->n_meta++;
    }
    return DISTILL_OK;
}

static Status parse_entry(StFile *f, const cJSON *e, StTensor *t) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) {
        distill_set_error("%s: header: tensor \"%s\" should be an object "
                          "{dtype, shape, data_offsets}, found %s", f->path, name, json_kind(e));
        return DISTILL_ERR;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) {
        distill_set_error("%s: header: tensor \"%s\": \"dtype\" should be a string, found %s",
                          f->path, name, json_kind(dt));
        return DISTILL_ERR;
    }
    size_t esize = dtype_bytes(dt->valuestring);
    if (esize == 0) {
        distill_set_error("%s: header: tensor \"%s\": unknown dtype \"%s\"", f->path, name,
                          dt->valuestring);
        return DISTILL_ERR;
    }
    snprintf(t->dtype, sizeof t->dtype, "%s", dt->valuestring);
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ST_MAX_DIMS) {
        distill_set_error("%s: header: tensor \"%s\": \"shape\" should be an array of at most %d "
                          "integers, found %s", f->path, name, ST_MAX_DIMS, json_kind(shape));
        return DISTILL_ERR;
    }
    t->numel = 1;
    for (const cJSON *d = shape->child; d; d = d->next) {
        uint64_t v;
        if (!json_uint(d, &v) || v > INT_MAX) {
            distill_set_error("%s: header: tensor \"%s\": shape entries should be non-negative "
                              "integers, found %s", f->path, name, json_kind(d));
            return DISTILL_ERR;
        }
        if (v && t->numel > SIZE_MAX / 8 / v) {
            distill_set_error("%s: header: tensor \"%s\": shape is too large", f->path, name);
            return DISTILL_ERR;
        }
        t->shape[t->ndim++] = (int64_t)v;
        t->numel *= (size_t)v;
    }
    uint64_t b, en;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &b) ||
        !json_uint(offs->child->next, &en)) {
        distill_set_error("%s: header: tensor \"%s\": \"data_offsets\" should be two non-negative "
                          "integers [begin, end], found %s", f->path, name, json_kind(offs));
        return DISTILL_ERR;
    }
    char sbuf[128];
    if (en < b || en - b != (uint64_t)(t->numel * esize)) {
        distill_set_error("%s: header: tensor \"%s\": data_offsets [%llu, %llu] hold %lld bytes, "
                          "but %s %s needs %zu", f->path, name, (unsigned long long)b,
                          (unsigned long long)en, (long long)en - (long long)b, t->dtype,
                          st_shape_str(t, sbuf, sizeof sbuf), t->numel * esize);
        return DISTILL_ERR;
    }
    if (en > f->data_size) {
        distill_set_error("%s: tensor \"%s\": data_offsets [%llu, %llu] end beyond the data "
                          "buffer of %zu bytes (file truncated?)", f->path, name,
                          (unsigned long long)b, (unsigned long long)en, f->data_size);
        return DISTILL_ERR;
    }
    t->begin = (size_t)b;
    t->end = (size_t)en;
    t->name = xstrdup(name);
    return DISTILL_OK;
}

static int cmp_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}
static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

/* Names unique; the tensors tile the data buffer exactly (no overlap, no hole, nothing after). */
static Status check_layout(StFile *f) {
    if (f->n == 0) {
        if (f->data_size != 0) {
            distill_set_error("%s: %zu data bytes follow a header that lists no tensors", f->path,
                              f->data_size);
            return DISTILL_ERR;
        }
        return DISTILL_OK;
    }
    const StTensor **idx = xmalloc((size_t)f->n * sizeof *idx);
    for (int i = 0; i < f->n; i++) idx[i] = &f->tensors[i];
    qsort(idx, (size_t)f->n, sizeof *idx, cmp_name);
    for (int i = 1; i < f->n; i++) {
        if (strcmp(idx[i]->name, idx[i - 1]->name) == 0) {
            distill_set_error("%s: header: tensor \"%s\" is listed twice", f->path,
                              idx[i]->name);
            free(idx);
            return DISTILL_ERR;
        }
    }
    qsort(idx, (size_t)f->n, sizeof *idx, cmp_begin);
    size_t expect = 0;
    for (int i = 0; i < f->n; i++) {
        const StTensor *t = idx[i];
        if (t->begin != expect) {
            distill_set_error("%s: tensor \"%s\": data_offsets [%zu, %zu] %s the previous tensor's "
                              "end at byte %zu (tensors must tile the data buffer)", f->path,
                              t->name, t->begin, t->end,
                              t->begin < expect ? "overlap" : "leave a hole after", expect);
            free(idx);
            return DISTILL_ERR;
        }
        expect = t->end;
    }
    free(idx);
    if (expect != f->data_size) {
        distill_set_error("%s: the tensors end at data byte %zu but the data buffer holds %zu bytes "
                          "(trailing bytes)", f->path, expect, f->data_size);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

Status st_open(const char *path, StFile **out) {
    *out = NULL;
    StFile *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        distill_set_error("%s: cannot open: %s", path, strerror(errno));
        return fail_file(f, DISTILL_ERR);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        distill_set_error("%s: not a regular file", path);
        close(fd);
        return fail_file(f, DISTILL_ERR);
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        distill_set_error("%s: %zu bytes is too short for a safetensors file (an 8-byte header "
                          "length comes first; truncated?)", path, f->size);
        close(fd);
        return fail_file(f, DISTILL_ERR);
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        distill_set_error("%s: cannot map: %s", path, strerror(errno));
        return fail_file(f, DISTILL_ERR);
    }
    const unsigned char *p = f->map;
    uint64_t hlen;
    memcpy(&hlen, p, 8);
    if (hlen == 0 || hlen > ST_MAX_HEADER || hlen > f->size - 8) {
        distill_set_error("%s: header length %llu does not fit: the file has %zu bytes after the "
                          "8-byte length (truncated or not a safetensors file?)", path,
                          (unsigned long long)hlen, f->size - 8);
        return fail_file(f, DISTILL_ERR);
    }
    const char *hdr = (const char *)p + 8;
    f->data = p + 8 + hlen;
    f->data_size = f->size - 8 - (size_t)hlen;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = (at && at >= hdr && at <= hdr + hlen) ? (size_t)(at - hdr) : 0;
        char near[24] = {0};
        for (size_t i = 0; i < sizeof near - 1 && off + i < hlen; i++) {
            char ch = hdr[off + i];
            near[i] = (ch >= 32 && ch < 127) ? ch : '?';
        }
        distill_set_error("%s: header is not valid JSON: syntax error at header byte %zu near "
                          "\"%s\"", path, off, near);
        return fail_file(f, DISTILL_ERR);
    }
    for (const char *q = end; q < hdr + hlen; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            distill_set_error("%s: header: unexpected bytes after the JSON object at header byte %zu",
                              path, (size_t)(q - hdr));
            cJSON_Delete(root);
            return fail_file(f, DISTILL_ERR);
        }
    }
    if (!cJSON_IsObject(root)) {
        distill_set_error("%s: header should be a JSON object, found %s", path, json_kind(root));
        cJSON_Delete(root);
        return fail_file(f, DISTILL_ERR);
    }
    f->tensors = xcalloc((size_t)cJSON_GetArraySize(root) + 1, sizeof *f->tensors);
    Status s = DISTILL_OK;
    for (const cJSON *e = root->child; e && s == DISTILL_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            s = parse_metadata(f, e);
        } else {
            s = parse_entry(f, e, &f->tensors[f->n]);
            if (s == DISTILL_OK) f->n++;
        }
    }
    cJSON_Delete(root);
    if (s == DISTILL_OK) s = check_layout(f);
    if (s != DISTILL_OK) return fail_file(f, s);
    *out = f;
    return DISTILL_OK;
}

void st_close(StFile *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->size);
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    free(f);
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_metadata(const StFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

bool st_is_float(const StTensor *t) {
    return strcmp(t->dtype, "F32") == 0 || strcmp(t->dtype, "F16") == 0 ||
           strcmp(t->dtype, "BF16") == 0;
}

Status st_read_f32(const StFile *f, const StTensor *t, float *dst) {
    const unsigned char *src = f->data + t->begin;
    if (strcmp(t->dtype, "F32") == 0) {
        memcpy(dst, src, t->numel * sizeof(float)); /* offsets need not be 4-aligned */
        return DISTILL_OK;
    }
    bool half = strcmp(t->dtype, "F16") == 0;
    if (!half && strcmp(t->dtype, "BF16") != 0) {
        distill_set_error("%s: tensor \"%s\" has dtype %s; expected a floating dtype (F32, F16 or "
                          "BF16)", f->path, t->name, t->dtype);
        return DISTILL_ERR;
    }
    for (size_t i = 0; i < t->numel; i++) {
        uint16_t v;
        memcpy(&v, src + 2 * i, sizeof v);
        dst[i] = half ? st_f16_to_f32(v) : st_bf16_to_f32(v);
    }
    return DISTILL_OK;
}

const char *st_shape_str(const StTensor *t, char *buf, size_t n) {
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

/* ------------------------------------------------------------------ writing */

/* n bytes to the temporary file; the message names the destination and the system's reason. */
static Status write_bytes(AtomicFile *af, const void *buf, size_t n) {
    if (n == 0 || fwrite(buf, 1, n, af->fp) == n) return DISTILL_OK;
    distill_set_error("%s: cannot write: writing '%s' failed: %s", af->path, af->tmp, strerror(errno));
    return DISTILL_ERR;
}

static int cmp_write_name(const void *a, const void *b) {
    return strcmp((*(const StWriteTensor *const *)a)->name, (*(const StWriteTensor *const *)b)->name);
}

static cJSON *json_int(long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return cJSON_CreateRaw(buf);
}

Status st_write_f32(const char *path, const StWriteTensor *tensors, int n,
                    const char *const *meta_kv, int n_meta) {
    const StWriteTensor **idx = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
    for (int i = 0; i < n; i++) idx[i] = &tensors[i];
    qsort(idx, (size_t)n, sizeof *idx, cmp_write_name);
    for (int i = 0; i < n; i++) {
        const StWriteTensor *t = idx[i];
        if (!t->name[0] || strcmp(t->name, "__metadata__") == 0 ||
            (i > 0 && strcmp(t->name, idx[i - 1]->name) == 0) || t->ndim < 0 ||
            t->ndim > ST_MAX_DIMS) {
            distill_set_error("%s: cannot write tensor \"%s\": empty, reserved or repeated name, or "
                              "%d dims", path, t->name, t->ndim);
            free(idx);
            return DISTILL_ERR;
        }
    }

    cJSON *root = cJSON_CreateObject();
    if (n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < n_meta; i++)
            cJSON_AddStringToObject(meta, meta_kv[2 * i], meta_kv[2 * i + 1]);
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        const StWriteTensor *t = idx[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            DCHECK(t->shape[d] >= 0);
            cJSON_AddItemToArray(shape, json_int((long long)t->shape[d]));
            numel *= (size_t)t->shape[d];
        }
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, json_int((long long)offset));
        offset += numel * sizeof(float);
        cJSON_AddItemToArray(offs, json_int((long long)offset));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    DCHECK(json != NULL);
    size_t jlen = strlen(json);
    size_t hlen = (jlen + 7) & ~(size_t)7;
    char *header = xmalloc(8 + hlen);
    uint64_t hlen64 = hlen;
    memcpy(header, &hlen64, 8);
    memcpy(header + 8, json, jlen);
    memset(header + 8 + jlen, ' ', hlen - jlen);
    cJSON_free(json);

    AtomicFile af;
    Status s = io_atomic_begin(&af, path);
    if (s != DISTILL_OK) goto done;
    s = write_bytes(&af, header, 8 + hlen);
    for (int i = 0; i < n && s == DISTILL_OK; i++) {
        const StWriteTensor *t = idx[i];
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
        s = write_bytes(&af, t->data, numel * sizeof(float));
    }
    if (s == DISTILL_OK) s = io_atomic_commit(&af); /* fsync, rename into place, fsync the folder */
    else io_atomic_abort(&af);
done:
    free(header);
    free(idx);
    return s;
}
