/* Weight containers: the shared md_weights helpers and the safetensors
 * reader (8-byte little-endian header length, a JSON header mapping tensor
 * names to dtype, shape and [begin, end) byte offsets into the data area). */
#include "formats/weights.h"

#include "base/base.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------- md_weights basics */

size_t md_wdtype_size(md_wdtype t)
{
    return t == MD_WDT_F32 ? 4 : 2;
}

const char *md_wdtype_name(md_wdtype t)
{
    switch (t) {
    case MD_WDT_F32: return "F32";
    case MD_WDT_F16: return "F16";
    case MD_WDT_BF16: return "BF16";
    }
    return "?";
}

int64_t md_weight_numel(const md_weight *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

md_status md_weights_add(md_weights *w, const char *name, size_t name_len, const md_weight *t,
                         const char *path, md_error *err)
{
    if (t->ndim < 0 || t->ndim > MD_WEIGHT_MAX_DIMS)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: tensor '%.*s' has %d dimensions", path,
                       (int)(name_len > 200 ? 200 : name_len), name, t->ndim);
    /* Extent: last element index must stay inside the storage. */
    size_t esize = md_wdtype_size(t->dtype);
    uint64_t numel = 1, last = (uint64_t)t->offset;
    bool empty = false;
    if (t->offset < 0)
        return md_fail(err, MD_ERR_FORMAT, "%s: tensor '%.*s' has a negative offset", path,
                       (int)(name_len > 200 ? 200 : name_len), name);
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || t->stride[i] < 0 || t->shape[i] > (int64_t)MD_MAX_ELEMENTS ||
            t->stride[i] > (int64_t)MD_MAX_ELEMENTS)
            return md_fail(err, MD_ERR_FORMAT, "%s: tensor '%.*s' has a bad shape or stride",
                           path, (int)(name_len > 200 ? 200 : name_len), name);
        if (t->shape[i] == 0)
            empty = true;
        numel *= (uint64_t)t->shape[i];
        if (numel > MD_MAX_ELEMENTS)
            return md_fail(err, MD_ERR_NOMEM, "%s: tensor '%.*s' is too large", path,
                           (int)(name_len > 200 ? 200 : name_len), name);
        if (t->shape[i] > 0)
            last += (uint64_t)(t->shape[i] - 1) * (uint64_t)t->stride[i];
    }
    if (!empty && (last >= (uint64_t)MD_MAX_ELEMENTS * 4 ||
                   (last + 1) * esize > (uint64_t)t->avail_bytes))
        return md_fail(err, MD_ERR_FORMAT, "%s: tensor '%.*s' extends past the end of its data",
                       path, (int)(name_len > 200 ? 200 : name_len), name);
    /* Its elements must fit in its storage too: a stride of 0 (or strides
     * that overlap) would make a few bytes of file read as gigabytes of
     * weights, which the loaders then allocate and convert. */
    if (numel * esize > (uint64_t)t->avail_bytes)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: tensor '%.*s' has %llu elements, more than its %zu-byte storage "
                       "holds (a stride of 0 or overlapping strides?)",
                       path, (int)(name_len > 200 ? 200 : name_len), name,
                       (unsigned long long)numel, t->avail_bytes);
    if (w->count == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        md_weight *items = realloc(w->items, cap * sizeof *items);
        if (!items)
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the tensor list", path);
        w->items = items;
        w->cap = cap;
    }
    char *copy = md_malloc(name_len + 1, "tensor name", err);
    if (!copy)
        return MD_ERR_NOMEM;
    memcpy(copy, name, name_len);
    copy[name_len] = '\0';
    md_weight *dst = &w->items[w->count++];
    *dst = *t;
    dst->name = copy;
    return MD_OK;
}

md_status md_weights_own(md_weights *w, uint8_t *buf, const char *path, md_error *err)
{
    if (w->n_owned == w->cap_owned) {
        size_t cap = w->cap_owned ? w->cap_owned * 2 : 16;
        uint8_t **o = realloc(w->owned, cap * sizeof *o);
        if (!o) {
            free(buf);
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
        }
        w->owned = o;
        w->cap_owned = cap;
    }
    w->owned[w->n_owned++] = buf;
    return MD_OK;
}

void md_weights_free(md_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->count; i++)
        free(w->items[i].name);
    free(w->items);
    for (size_t i = 0; i < w->n_owned; i++)
        free(w->owned[i]);
    free(w->owned);
    if (w->map)
        munmap(w->map, w->map_size);
    memset(w, 0, sizeof *w);
}

static int cmp_weight(const void *a, const void *b)
{
    return strcmp(((const md_weight *)a)->name, ((const md_weight *)b)->name);
}

md_status md_weights_finish(md_weights *w, const char *path, md_error *err)
{
    if (w->count > 1)
        qsort(w->items, w->count, sizeof *w->items, cmp_weight);
    for (size_t i = 1; i < w->count; i++)
        if (strcmp(w->items[i - 1].name, w->items[i].name) == 0)
            return md_fail(err, MD_ERR_FORMAT, "%s: tensor '%.200s' appears twice", path,
                           w->items[i].name);
    w->sorted = true;
    return MD_OK;
}

const md_weight *md_weights_find(const md_weights *w, const char *name)
{
    if (!w->sorted) {
        for (size_t i = 0; i < w->count; i++)
            if (strcmp(w->items[i].name, name) == 0)
                return &w->items[i];
        return NULL;
    }
    size_t lo = 0, hi = w->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(w->items[mid].name, name);
        if (c == 0)
            return &w->items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

float md_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float load_elem(const uint8_t *p, md_wdtype dt)
{
    if (dt == MD_WDT_F32) {
        float f;
        memcpy(&f, p, 4); /* little-endian hosts only (checked by the build's target) */
        return f;
    }
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    if (dt == MD_WDT_F16)
        return md_f16_to_f32(h);
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void md_weight_to_f32(const md_weight *t, float *dst)
{
    int64_t n = md_weight_numel(t);
    if (n <= 0)
        return;
    size_t es = md_wdtype_size(t->dtype);
    int64_t idx[MD_WEIGHT_MAX_DIMS] = {0};
    int nd = t->ndim;
    int64_t inner = nd > 0 ? t->shape[nd - 1] : 1;
    int64_t inner_stride = nd > 0 ? t->stride[nd - 1] : 1;
    for (int64_t done = 0; done < n; done += inner) {
        int64_t off = t->offset;
        for (int i = 0; i < nd - 1; i++)
            off += idx[i] * t->stride[i];
        const uint8_t *src = t->data + (size_t)off * es;
        if (t->dtype == MD_WDT_F32 && inner_stride == 1) {
            memcpy(dst + done, src, (size_t)inner * 4);
        } else {
            for (int64_t j = 0; j < inner; j++)
                dst[done + j] = load_elem(src + (size_t)(j * inner_stride) * es, t->dtype);
        }
        for (int i = nd - 2; i >= 0; i--) {
            if (++idx[i] < t->shape[i])
                break;
            idx[i] = 0;
        }
    }
}

md_status md_weights_open(const char *path, md_weights *w, md_error *err)
{
    memset(w, 0, sizeof *w);
    size_t size;
    int fd = md_open_regular(path, &size, err);
    if (fd < 0)
        return MD_ERR_IO;
    if (size < 9) {
        close(fd);
        return md_fail(err, MD_ERR_FORMAT, "%s: file too short for a weights file", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return md_fail(err, errno == ENOMEM ? MD_ERR_NOMEM : MD_ERR_IO,
                       "%s: cannot map the file: %s", path, strerror(errno));
    const uint8_t *buf = map;
    md_status s;
    if (memcmp(buf, "PK\x03\x04", 4) == 0 || memcmp(buf, "PK\x05\x06", 4) == 0)
        s = md_pth_parse(buf, size, path, w, err);
    else
        s = md_safetensors_parse(buf, size, path, w, err);
    w->map = map;
    w->map_size = size;
    if (s != MD_OK)
        md_weights_free(w);
    return md_name_file(err, s, path);
}

/* ------------------------------------------------ strict JSON for headers */

typedef struct {
    const char *p, *end;
    const char *path;
    md_error *err;
    int depth;
    const char *file_start; /* byte 0 of the file, for error positions */
} json_cur;

static void json_ws(json_cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static md_status json_bad(json_cur *c, const char *what)
{
    const char *at = c->p < c->end ? c->p : c->end; /* a scan may step past the end */
    return md_fail(c->err, MD_ERR_FORMAT, "%s: safetensors header: %s at byte %ld", c->path, what,
                   (long)(at - c->file_start));
}

static bool json_lit(json_cur *c, char ch)
{
    json_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Parses a string into a new buffer (UTF-8, escapes decoded). */
static md_status json_string(json_cur *c, char **out, size_t *len)
{
    json_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return json_bad(c, "expected a string");
    c->p++;
    const char *s = c->p;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' && c->end - c->p > 1)
            c->p++;
        c->p++;
    }
    if (c->p >= c->end)
        return json_bad(c, "unterminated string");
    size_t cap = (size_t)(c->p - s) + 1;
    char *buf = malloc(cap);
    if (!buf)
        return md_fail(c->err, MD_ERR_NOMEM, "%s: out of memory", c->path);
    size_t n = 0;
    for (const char *q = s; q < c->p; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch < 0x20) {
            free(buf);
            return json_bad(c, "control character in string");
        }
        if (ch != '\\') {
            buf[n++] = (char)ch;
            continue;
        }
        q++;
        switch (*q) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            if (c->p - q < 5) {
                free(buf);
                return json_bad(c, "short \\u escape");
            }
            unsigned v = 0;
            for (int i = 1; i <= 4; i++) {
                int h = hexval(q[i]);
                if (h < 0) {
                    free(buf);
                    return json_bad(c, "bad \\u escape");
                }
                v = v * 16 + (unsigned)h;
            }
            q += 4;
            /* 6 escape bytes always cover the <= 3 UTF-8 bytes we write
               (surrogates are kept as-is: names are ASCII in practice). */
            if (v < 0x80) {
                buf[n++] = (char)v;
            } else if (v < 0x800) {
                buf[n++] = (char)(0xc0 | (v >> 6));
                buf[n++] = (char)(0x80 | (v & 0x3f));
            } else {
                buf[n++] = (char)(0xe0 | (v >> 12));
                buf[n++] = (char)(0x80 | ((v >> 6) & 0x3f));
                buf[n++] = (char)(0x80 | (v & 0x3f));
            }
            break;
        }
        default:
            free(buf);
            return json_bad(c, "bad escape");
        }
    }
    buf[n] = '\0';
    c->p++;
    *out = buf;
    *len = n;
    return MD_OK;
}

static md_status json_int(json_cur *c, int64_t *v)
{
    json_ws(c);
    const char *s = c->p;
    if (c->p < c->end && *c->p == '-')
        return json_bad(c, "negative integer");
    uint64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (x > (UINT64_MAX / 4) / 10)
            return json_bad(c, "integer too large");
        x = x * 10 + (uint64_t)(*c->p - '0');
        c->p++;
    }
    if (c->p == s)
        return json_bad(c, "expected an integer");
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
        return json_bad(c, "expected an integer");
    *v = (int64_t)x;
    return MD_OK;
}

/* Skips any JSON value (used for __metadata__). */
static md_status json_skip(json_cur *c)
{
    json_ws(c);
    if (c->p >= c->end)
        return json_bad(c, "unexpected end");
    if (++c->depth > 32)
        return json_bad(c, "nesting too deep");
    md_status s = MD_OK;
    char ch = *c->p;
    if (ch == '"') {
        char *tmp;
        size_t n;
        s = json_string(c, &tmp, &n);
        if (s == MD_OK)
            free(tmp);
    } else if (ch == '{' || ch == '[') {
        char close_ch = ch == '{' ? '}' : ']';
        c->p++;
        if (!json_lit(c, close_ch)) {
            for (;;) {
                if (ch == '{') {
                    char *tmp;
                    size_t n;
                    if ((s = json_string(c, &tmp, &n)) != MD_OK)
                        break;
                    free(tmp);
                    if (!json_lit(c, ':')) {
                        s = json_bad(c, "expected ':'");
                        break;
                    }
                }
                if ((s = json_skip(c)) != MD_OK)
                    break;
                if (json_lit(c, ','))
                    continue;
                if (json_lit(c, close_ch))
                    break;
                s = json_bad(c, "expected ',' or a closing bracket");
                break;
            }
        }
    } else {
        const char *st = c->p;
        while (c->p < c->end && (strchr("+-.eE", *c->p) || (*c->p >= '0' && *c->p <= '9') ||
                                 (*c->p >= 'a' && *c->p <= 'z')))
            c->p++;
        size_t n = (size_t)(c->p - st);
        bool ok = (n == 4 && memcmp(st, "true", 4) == 0) || (n == 5 && memcmp(st, "false", 5) == 0) ||
                  (n == 4 && memcmp(st, "null", 4) == 0) ||
                  (n > 0 && (st[0] == '-' || (st[0] >= '0' && st[0] <= '9')));
        if (!ok)
            s = json_bad(c, "bad value");
    }
    c->depth--;
    return s;
}

static md_status parse_tensor_entry(json_cur *c, const char *name, size_t name_len,
                                    const uint8_t *data, size_t data_size, md_weights *w)
{
    const char *path = c->path;
    md_weight t;
    memset(&t, 0, sizeof t);
    bool have_dtype = false, have_shape = false, have_off = false;
    int64_t begin = 0, end = 0;
    if (!json_lit(c, '{'))
        return json_bad(c, "expected a tensor object");
    if (!json_lit(c, '}')) {
        for (;;) {
            char *key;
            size_t klen;
            md_status s = json_string(c, &key, &klen);
            if (s != MD_OK)
                return s;
            if (!json_lit(c, ':')) {
                free(key);
                return json_bad(c, "expected ':'");
            }
            if (strcmp(key, "dtype") == 0) {
                char *dt;
                size_t dlen;
                free(key);
                if ((s = json_string(c, &dt, &dlen)) != MD_OK)
                    return s;
                if (strcmp(dt, "F32") == 0)
                    t.dtype = MD_WDT_F32;
                else if (strcmp(dt, "F16") == 0)
                    t.dtype = MD_WDT_F16;
                else if (strcmp(dt, "BF16") == 0)
                    t.dtype = MD_WDT_BF16;
                else {
                    md_status r = md_fail(c->err, MD_ERR_UNSUPPORTED,
                                          "%s: tensor '%.200s' has unsupported dtype %.20s "
                                          "(F32, F16 and BF16 are supported)",
                                          path, name, dt);
                    free(dt);
                    return r;
                }
                free(dt);
                have_dtype = true;
            } else if (strcmp(key, "shape") == 0) {
                free(key);
                if (!json_lit(c, '['))
                    return json_bad(c, "expected a shape array");
                t.ndim = 0;
                if (!json_lit(c, ']')) {
                    for (;;) {
                        if (t.ndim == MD_WEIGHT_MAX_DIMS)
                            return md_fail(c->err, MD_ERR_UNSUPPORTED,
                                           "%s: tensor '%.200s' has too many dimensions", path,
                                           name);
                        if ((s = json_int(c, &t.shape[t.ndim])) != MD_OK)
                            return s;
                        t.ndim++;
                        if (json_lit(c, ','))
                            continue;
                        if (json_lit(c, ']'))
                            break;
                        return json_bad(c, "expected ',' or ']'");
                    }
                }
                have_shape = true;
            } else if (strcmp(key, "data_offsets") == 0) {
                free(key);
                if (!json_lit(c, '[') || (s = json_int(c, &begin)) != MD_OK || !json_lit(c, ',') ||
                    (s = json_int(c, &end)) != MD_OK || !json_lit(c, ']'))
                    return s != MD_OK ? s : json_bad(c, "bad data_offsets");
                have_off = true;
            } else {
                free(key);
                if ((s = json_skip(c)) != MD_OK)
                    return s;
            }
            if (json_lit(c, ','))
                continue;
            if (json_lit(c, '}'))
                break;
            return json_bad(c, "expected ',' or '}'");
        }
    }
    if (!have_dtype || !have_shape || !have_off)
        return md_fail(c->err, MD_ERR_FORMAT,
                       "%s: tensor '%.200s' lacks dtype, shape or data_offsets", path, name);
    if (begin > end || (uint64_t)end > data_size)
        return md_fail(c->err, MD_ERR_FORMAT,
                       "%s: tensor '%.200s' data offsets [%lld, %lld] outside the %zu data bytes "
                       "(truncated file?)",
                       path, name, (long long)begin, (long long)end, data_size);
    uint64_t numel = 1;
    for (int i = 0; i < t.ndim; i++) {
        if ((uint64_t)t.shape[i] > MD_MAX_ELEMENTS)
            return md_fail(c->err, MD_ERR_FORMAT, "%s: tensor '%.200s' is too large", path, name);
        numel *= (uint64_t)t.shape[i];
        if (numel > MD_MAX_ELEMENTS)
            return md_fail(c->err, MD_ERR_FORMAT, "%s: tensor '%.200s' is too large", path, name);
    }
    if (numel * md_wdtype_size(t.dtype) != (uint64_t)(end - begin))
        return md_fail(c->err, MD_ERR_FORMAT,
                       "%s: tensor '%.200s' has %lld data bytes, its shape needs %llu", path, name,
                       (long long)(end - begin),
                       (unsigned long long)(numel * md_wdtype_size(t.dtype)));
    int64_t st = 1;
    for (int i = t.ndim - 1; i >= 0; i--) {
        t.stride[i] = st;
        st *= t.shape[i] > 0 ? t.shape[i] : 1;
    }
    t.data = data + begin;
    t.avail_bytes = (size_t)(end - begin);
    return md_weights_add(w, name, name_len, &t, path, c->err);
}

static int cmp_extent(const void *a, const void *b)
{
    const md_weight *x = *(const md_weight *const *)a, *y = *(const md_weight *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* The format forbids tensors that share bytes (each byte of the data area
 * belongs to one tensor): two names reading the same bytes would be two
 * weights that can never differ, which no writer produces on purpose. */
static md_status check_overlaps(const md_weights *w, size_t first, const char *path,
                                md_error *err)
{
    size_t n = w->count - first;
    if (n < 2)
        return MD_OK;
    const md_weight **v = malloc(n * sizeof *v);
    if (!v)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory checking tensor offsets", path);
    size_t k = 0;
    for (size_t i = first; i < w->count; i++)
        if (w->items[i].avail_bytes > 0)
            v[k++] = &w->items[i];
    if (k > 1)
        qsort(v, k, sizeof *v, cmp_extent);
    md_status s = MD_OK;
    for (size_t i = 1; i < k && s == MD_OK; i++)
        if (v[i]->data < v[i - 1]->data + v[i - 1]->avail_bytes)
            s = md_fail(err, MD_ERR_FORMAT,
                        "%s: tensors '%.200s' and '%.200s' overlap in the data area (the "
                        "safetensors format forbids it)",
                        path, v[i - 1]->name, v[i]->name);
    free(v);
    return s;
}

md_status md_safetensors_parse(const uint8_t *buf, size_t size, const char *path, md_weights *w,
                               md_error *err)
{
    if (size < 8)
        return md_fail(err, MD_ERR_FORMAT, "%s: too short for a safetensors file", path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    if (hlen < 2 || hlen > size - 8)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: safetensors header length %llu does not fit the %zu-byte file "
                       "(not a safetensors file, or truncated)",
                       path, (unsigned long long)hlen, size);
    json_cur c = {(const char *)buf + 8, (const char *)buf + 8 + hlen, path, err, 0,
                  (const char *)buf};
    const uint8_t *data = buf + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;
    size_t first = w->count;
    if (!json_lit(&c, '{'))
        return md_fail(err, MD_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
    if (!json_lit(&c, '}')) {
        for (;;) {
            char *name;
            size_t nlen;
            md_status s = json_string(&c, &name, &nlen);
            if (s != MD_OK)
                return s;
            if (!json_lit(&c, ':')) {
                free(name);
                return json_bad(&c, "expected ':'");
            }
            if (strcmp(name, "__metadata__") == 0)
                s = json_skip(&c);
            else
                s = parse_tensor_entry(&c, name, nlen, data, data_size, w);
            free(name);
            if (s != MD_OK)
                return s;
            if (json_lit(&c, ','))
                continue;
            if (json_lit(&c, '}'))
                break;
            return json_bad(&c, "expected ',' or '}'");
        }
    }
    json_ws(&c);
    if (c.p != c.end)
        return json_bad(&c, "trailing bytes after the header object");
    md_status s = md_weights_finish(w, path, err); /* duplicates named first */
    return s != MD_OK ? s : check_overlaps(w, first, path, err);
}

/* ------------------------------------------ safetensors __metadata__ map */
/* Added for the scale CNN's model files (src/scale/scale_cnn.c), which keep
 * their architecture and provenance in the header's string map. */

void md_safetensors_metadata_free(md_meta_entry *items, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(items[i].key);
        free(items[i].value);
    }
    free(items);
}

static md_status meta_object(json_cur *c, md_meta_entry **out, size_t *count)
{
    size_t cap = 0;
    if (!json_lit(c, '{'))
        return json_bad(c, "__metadata__ is not an object");
    if (json_lit(c, '}'))
        return MD_OK;
    for (;;) {
        char *key = NULL, *val = NULL;
        size_t klen, vlen;
        md_status s = json_string(c, &key, &klen);
        if (s != MD_OK)
            return s;
        if (!json_lit(c, ':')) {
            free(key);
            return json_bad(c, "expected ':'");
        }
        json_ws(c);
        if (c->p >= c->end || *c->p != '"') {
            free(key);
            return json_bad(c, "__metadata__ values must be strings");
        }
        if ((s = json_string(c, &val, &vlen)) != MD_OK) {
            free(key);
            return s;
        }
        if (*count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            md_meta_entry *items = realloc(*out, ncap * sizeof *items);
            if (!items) {
                free(key);
                free(val);
                return md_fail(c->err, MD_ERR_NOMEM, "%s: out of memory for metadata", c->path);
            }
            *out = items;
            cap = ncap;
        }
        (*out)[*count].key = key;
        (*out)[*count].value = val;
        (*count)++;
        if (json_lit(c, ','))
            continue;
        if (json_lit(c, '}'))
            return MD_OK;
        return json_bad(c, "expected ',' or '}'");
    }
}

md_status md_safetensors_metadata(const uint8_t *buf, size_t size, const char *path,
                                  md_meta_entry **items, size_t *count, md_error *err)
{
    *items = NULL;
    *count = 0;
    if (size < 8)
        return md_fail(err, MD_ERR_FORMAT, "%s: too short for a safetensors file", path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    if (hlen < 2 || hlen > size - 8)
        return md_fail(err, MD_ERR_FORMAT, "%s: safetensors header length %llu does not fit",
                       path, (unsigned long long)hlen);
    json_cur c = {(const char *)buf + 8, (const char *)buf + 8 + hlen, path, err, 0,
                  (const char *)buf};
    md_status s = MD_OK;
    if (!json_lit(&c, '{'))
        return md_fail(err, MD_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
    if (!json_lit(&c, '}')) {
        for (;;) {
            char *name;
            size_t nlen;
            if ((s = json_string(&c, &name, &nlen)) != MD_OK)
                break;
            if (!json_lit(&c, ':')) {
                free(name);
                s = json_bad(&c, "expected ':'");
                break;
            }
            if (strcmp(name, "__metadata__") == 0 && *count == 0)
                s = meta_object(&c, items, count);
            else
                s = json_skip(&c);
            free(name);
            if (s != MD_OK)
                break;
            if (json_lit(&c, ','))
                continue;
            if (json_lit(&c, '}'))
                break;
            s = json_bad(&c, "expected ',' or '}'");
            break;
        }
    }
    if (s != MD_OK) {
        md_safetensors_metadata_free(*items, *count);
        *items = NULL;
        *count = 0;
    }
    return s;
}

/* ------------------------------------------------------------------ writing */

uint16_t md_f32_to_f16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t sign = (u >> 16) & 0x8000u, e = (u >> 23) & 0xffu, m = u & 0x7fffffu;
    if (e == 0xff) /* inf, nan (kept a quiet nan) */
        return (uint16_t)(sign | 0x7c00u | (m ? 0x200u | (m >> 13) : 0));
    int ex = (int)e - 127 + 15;
    if (ex >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (ex <= 0) { /* subnormal half (or zero) */
        if (ex < -10)
            return (uint16_t)sign;
        m |= 0x800000u;
        int shift = 14 - ex;
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)ex << 10) | (m >> 13), rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1)))
        half++; /* may carry into the exponent, which is right */
    return (uint16_t)(sign | half);
}

static uint16_t f32_to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)((u + rounding) >> 16);
}

/* A growing text buffer for the JSON header. */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} hbuf;

static void hb_put(hbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void hb_str(hbuf *b, const char *s)
{
    hb_put(b, "\"", 1);
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        char e[8];
        if (*q == '"' || *q == '\\') {
            e[0] = '\\';
            e[1] = (char)*q;
            hb_put(b, e, 2);
        } else if (*q < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", *q);
            hb_put(b, e, 6);
        } else {
            hb_put(b, (const char *)q, 1);
        }
    }
    hb_put(b, "\"", 1);
}

static void hb_num(hbuf *b, long long v)
{
    char t[32];
    int k = snprintf(t, sizeof t, "%lld", v);
    hb_put(b, t, (size_t)k);
}

md_status md_safetensors_write(const char *path, const md_tensor_out *t, size_t n,
                               const md_meta_entry *meta, size_t n_meta, md_error *err)
{
    if (!path || (n && !t) || (n_meta && !meta))
        return md_fail(err, MD_ERR_ARG, "safetensors write: NULL argument");
    hbuf h = {0};
    hb_put(&h, "{", 1);
    if (n_meta) {
        hb_str(&h, "__metadata__");
        hb_put(&h, ":{", 2);
        for (size_t i = 0; i < n_meta; i++) {
            if (i)
                hb_put(&h, ",", 1);
            hb_str(&h, meta[i].key);
            hb_put(&h, ":", 1);
            hb_str(&h, meta[i].value);
        }
        hb_put(&h, "}", 1);
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t numel = 1;
        if (!t[i].name || !t[i].data || t[i].ndim < 0 || t[i].ndim > MD_WEIGHT_MAX_DIMS) {
            free(h.p);
            return md_fail(err, MD_ERR_ARG, "%s: tensor %zu is incomplete", path, i);
        }
        for (int d = 0; d < t[i].ndim; d++) {
            /* a negative or overflowing shape would make the copy below read
             * past the caller's data */
            int64_t dim = t[i].shape[d];
            if (dim < 0 || (dim > 0 && numel > (INT64_C(1) << 40) / dim)) {
                free(h.p);
                return md_fail(err, MD_ERR_ARG, "%s: tensor '%s' has a bad shape", path,
                               t[i].name);
            }
            numel *= dim;
        }
        size_t bytes = (size_t)numel * md_wdtype_size(t[i].dtype);
        if (n_meta || i)
            hb_put(&h, ",", 1);
        hb_str(&h, t[i].name);
        hb_put(&h, ":{\"dtype\":", 10);
        hb_str(&h, md_wdtype_name(t[i].dtype));
        hb_put(&h, ",\"shape\":[", 10);
        for (int d = 0; d < t[i].ndim; d++) {
            if (d)
                hb_put(&h, ",", 1);
            hb_num(&h, (long long)t[i].shape[d]);
        }
        hb_put(&h, "],\"data_offsets\":[", 18);
        hb_num(&h, (long long)off);
        hb_put(&h, ",", 1);
        hb_num(&h, (long long)(off + bytes));
        hb_put(&h, "]}", 2);
        off += bytes;
    }
    hb_put(&h, "}", 1);
    while (!h.oom && h.len % 8 != 0)
        hb_put(&h, " ", 1);
    if (h.oom) {
        free(h.p);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the header", path);
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK) {
        free(h.p);
        return st;
    }
    bool ok = fwrite(len8, 1, 8, af.fp) == 8 && fwrite(h.p, 1, h.len, af.fp) == h.len;
    free(h.p);
    /* little-endian bytes, one tensor at a time */
    for (size_t i = 0; ok && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            numel *= (size_t)t[i].shape[d];
        size_t es = md_wdtype_size(t[i].dtype);
        uint8_t *buf = numel ? malloc(numel * es) : NULL;
        if (numel && !buf) {
            md_atomic_abort(&af);
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for tensor '%s'", path, t[i].name);
        }
        for (size_t k = 0; k < numel; k++) {
            float v = t[i].data[k];
            if (t[i].dtype == MD_WDT_F32) {
                uint32_t u;
                memcpy(&u, &v, 4);
                for (int j = 0; j < 4; j++)
                    buf[4 * k + (size_t)j] = (uint8_t)(u >> (8 * j));
            } else {
                uint16_t u = t[i].dtype == MD_WDT_F16 ? md_f32_to_f16(v) : f32_to_bf16(v);
                buf[2 * k] = (uint8_t)u;
                buf[2 * k + 1] = (uint8_t)(u >> 8);
            }
        }
        ok = numel == 0 || fwrite(buf, es, numel, af.fp) == numel;
        free(buf);
    }
    if (!ok) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed", path);
    }
    return md_atomic_commit(&af, err);
}
