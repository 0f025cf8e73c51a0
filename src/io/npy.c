/* NumPy .npy (format versions 1.0, 2.0, 3.0): a magic string, a header that
 * is a Python dict literal with exactly the keys 'descr', 'fortran_order'
 * and 'shape', then the raw C-order array. The dict is parsed strictly. */
#include "io_internal.h"

#include <limits.h>
#include <stdlib.h>

typedef struct {
    const char *s;
    size_t n, pos;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->pos < c->n && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t' ||
                             c->s[c->pos] == '\n' || c->s[c->pos] == '\r'))
        c->pos++;
}

static int accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->pos < c->n && c->s[c->pos] == ch) {
        c->pos++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes, copied into buf. */
static int parse_string(cursor *c, char *buf, size_t cap)
{
    skip_ws(c);
    if (c->pos >= c->n || (c->s[c->pos] != '\'' && c->s[c->pos] != '"'))
        return 0;
    char q = c->s[c->pos++];
    size_t len = 0;
    while (c->pos < c->n && c->s[c->pos] != q) {
        if (c->s[c->pos] == '\\' || len + 1 >= cap)
            return 0;
        buf[len++] = c->s[c->pos++];
    }
    if (c->pos >= c->n)
        return 0;
    c->pos++;
    buf[len] = 0;
    return 1;
}

static int parse_word(cursor *c, const char *word)
{
    skip_ws(c);
    size_t len = strlen(word);
    if (c->n - c->pos < len || memcmp(c->s + c->pos, word, len) != 0)
        return 0;
    c->pos += len;
    return 1;
}

/* Non-negative integer (Python may write a trailing 'L' in old files). */
static int parse_dim(cursor *c, int64_t *out)
{
    skip_ws(c);
    int64_t v = 0;
    size_t start = c->pos;
    while (c->pos < c->n && c->s[c->pos] >= '0' && c->s[c->pos] <= '9') {
        int digit = c->s[c->pos] - '0';
        if (v > (INT64_MAX - digit) / 10)
            return 0;
        v = v * 10 + digit;
        c->pos++;
    }
    if (c->pos == start)
        return 0;
    if (c->pos < c->n && c->s[c->pos] == 'L')
        c->pos++;
    *out = v;
    return 1;
}

static int parse_shape(cursor *c, md_npy_view *v)
{
    if (!accept(c, '('))
        return 0;
    v->ndim = 0;
    if (accept(c, ')'))
        return 1;
    for (;;) {
        if (v->ndim >= 8)
            return 0;
        if (!parse_dim(c, &v->shape[v->ndim]))
            return 0;
        v->ndim++;
        if (accept(c, ')'))
            return v->ndim != 1 ? 1 : 0; /* Python's (n) is not a tuple: (n,) is */
        if (!accept(c, ','))
            return 0;
        if (accept(c, ')'))
            return 1;
    }
}

static md_status parse_descr(const char *path, const char *d, md_npy_view *v, md_error *err)
{
    size_t len = strlen(d);
    if (len < 3 || (d[0] != '<' && d[0] != '>' && d[0] != '|' && d[0] != '='))
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: unsupported npy dtype '%s'", path, d);
    if (d[2] < '0' || d[2] > '9')
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: unsupported npy dtype '%s'", path, d);
    char *end;
    long size = strtol(d + 2, &end, 10);
    if (*end != 0 || (size != 1 && size != 2 && size != 4 && size != 8))
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: unsupported npy dtype '%s'", path, d);
    switch (d[1]) {
    case 'f': v->kind = MD_NPY_FLOAT; break;
    case 'i': v->kind = MD_NPY_INT; break;
    case 'u': v->kind = MD_NPY_UINT; break;
    case 'b': v->kind = MD_NPY_BOOL; break;
    default:
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: unsupported npy dtype '%s'", path, d);
    }
    if ((v->kind == MD_NPY_FLOAT && size != 4 && size != 8) || (v->kind == MD_NPY_BOOL && size != 1))
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: unsupported npy dtype '%s'", path, d);
    if (size > 1 && d[0] == '|')
        return md_fail(err, MD_ERR_FORMAT, "%s: npy dtype '%s' lacks a byte order", path, d);
    uint16_t probe = 1;
    uint8_t first;
    memcpy(&first, &probe, 1);
    v->big_endian = d[0] == '>' || (d[0] == '=' && first == 0);
    v->itemsize = (int)size;
    return MD_OK;
}

md_status md_io_npy_parse(const char *path, const uint8_t *data, size_t size, md_npy_view *v,
                          md_error *err)
{
    memset(v, 0, sizeof *v);
    if (size < 10 || memcmp(data, "\x93NUMPY", 6) != 0)
        return md_fail(err, MD_ERR_FORMAT, "%s: not an .npy file (bad magic)", path);
    int major = data[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = (size_t)data[8] | (size_t)data[9] << 8;
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12)
            return md_fail(err, MD_ERR_FORMAT, "%s: truncated .npy header", path);
        hlen = (size_t)data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 |
               (size_t)data[11] << 24;
        hstart = 12;
    } else {
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: .npy format version %d.%d not supported",
                       path, major, data[7]);
    }
    if (hlen > size - hstart)
        return md_fail(err, MD_ERR_FORMAT, "%s: truncated .npy header (%zu of %zu bytes)", path,
                       size - hstart, hlen);

    cursor c = {(const char *)data + hstart, hlen, 0};
    char key[32], descr[32];
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
    if (!accept(&c, '{'))
        return md_fail(err, MD_ERR_FORMAT, "%s: .npy header is not a dict", path);
    while (!accept(&c, '}')) {
        if (!parse_string(&c, key, sizeof key) || !accept(&c, ':'))
            return md_fail(err, MD_ERR_FORMAT, "%s: malformed .npy header dict", path);
        if (strcmp(key, "descr") == 0 && !have_descr) {
            if (!parse_string(&c, descr, sizeof descr))
                return md_fail(err, MD_ERR_FORMAT, "%s: malformed 'descr' in .npy header", path);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_fortran) {
            if (parse_word(&c, "True"))
                fortran = 1;
            else if (!parse_word(&c, "False"))
                return md_fail(err, MD_ERR_FORMAT, "%s: malformed 'fortran_order' in .npy header",
                               path);
            have_fortran = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if (!parse_shape(&c, v))
                return md_fail(err, MD_ERR_FORMAT, "%s: malformed 'shape' in .npy header", path);
            have_shape = 1;
        } else {
            return md_fail(err, MD_ERR_FORMAT, "%s: unexpected or repeated key '%s' in .npy header",
                           path, key);
        }
        if (!accept(&c, ',')) {
            if (!accept(&c, '}'))
                return md_fail(err, MD_ERR_FORMAT, "%s: malformed .npy header dict", path);
            break;
        }
    }
    skip_ws(&c);
    if (c.pos != c.n)
        return md_fail(err, MD_ERR_FORMAT, "%s: trailing bytes after the .npy header dict", path);
    if (!have_descr || !have_fortran || !have_shape)
        return md_fail(err, MD_ERR_FORMAT, "%s: .npy header lacks 'descr', 'fortran_order' or 'shape'",
                       path);
    if (fortran)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: Fortran-order .npy arrays are not supported",
                       path);
    md_status st = parse_descr(path, descr, v, err);
    if (st != MD_OK)
        return st;

    size_t numel = 1;
    for (int i = 0; i < v->ndim; i++) {
        if ((uint64_t)v->shape[i] > (uint64_t)SIZE_MAX ||
            !md_mul_size(numel, (size_t)v->shape[i], &numel) || numel > MD_MAX_ELEMENTS)
            return md_fail(err, MD_ERR_UNSUPPORTED, "%s: .npy array is too large", path);
    }
    size_t bytes = numel * (size_t)v->itemsize; /* <= 2^31 * 8: no overflow */
    size_t avail = size - hstart - hlen;
    if (avail != bytes)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: .npy data is %zu bytes but shape and dtype '%s' need %zu%s", path,
                       avail, descr, bytes, avail < bytes ? " (truncated)" : "");
    v->numel = numel;
    v->data = data + hstart + hlen;
    return MD_OK;
}

double md_io_npy_get(const md_npy_view *v, size_t i)
{
    const uint8_t *p = v->data + i * (size_t)v->itemsize;
    uint64_t u = 0;
    int n = v->itemsize;
    for (int k = 0; k < n; k++) {
        int byte = v->big_endian ? k : n - 1 - k;
        u = u << 8 | p[byte];
    }
    switch (v->kind) {
    case MD_NPY_FLOAT:
        if (n == 4) {
            uint32_t u32 = (uint32_t)u;
            float f;
            memcpy(&f, &u32, 4);
            return f;
        } else {
            double d;
            memcpy(&d, &u, 8);
            return d;
        }
    case MD_NPY_INT:
        if (n < 8 && (u >> (8 * n - 1)) & 1)
            u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
        return (double)(int64_t)u;
    case MD_NPY_UINT: return (double)u;
    case MD_NPY_BOOL: return u != 0;
    }
    return 0.0;
}

md_status md_npy_load(const char *path, md_tensor *out, md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "md_npy_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path)
        return md_fail(err, MD_ERR_ARG, "md_npy_load: path is NULL");
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, MD_IO_MAX_FILE_BYTES, &data, &size, err);
    if (st != MD_OK)
        return st;
    md_npy_view v;
    st = md_io_npy_parse(path, data, size, &v, err);
    if (st == MD_OK) {
        out->data = md_malloc(v.numel * sizeof(float), path, err);
        if (!out->data) {
            st = MD_ERR_NOMEM;
        } else {
            out->ndim = v.ndim;
            for (int i = 0; i < v.ndim; i++)
                out->shape[i] = v.shape[i];
            for (size_t i = 0; i < v.numel; i++)
                out->data[i] = md_io_to_float(md_io_npy_get(&v, i));
        }
    }
    free(data);
    return st;
}

md_status md_npy_save(const char *path, const md_tensor *t, md_error *err)
{
    if (!path || !t)
        return md_fail(err, MD_ERR_ARG, "md_npy_save: NULL path or tensor");
    if (t->ndim < 0 || t->ndim > 8)
        return md_fail(err, MD_ERR_ARG, "%s: tensor has %d dimensions (0..8 allowed)", path,
                       t->ndim);
    size_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || !md_mul_size(numel, (size_t)t->shape[i], &numel) ||
            numel > MD_MAX_ELEMENTS)
            return md_fail(err, MD_ERR_ARG, "%s: invalid tensor shape", path);
    }
    if (numel > 0 && !t->data)
        return md_fail(err, MD_ERR_ARG, "%s: tensor has no data", path);

    char dict[400];
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < t->ndim; i++)
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%lld%s", (long long)t->shape[i],
                        t->ndim == 1 ? "," : (i + 1 < t->ndim ? ", " : ""));
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    /* Pad with spaces and end with '\n' so the data starts on a 64-byte boundary. */
    size_t total = 10 + (size_t)len + 1;
    size_t padded = (total + 63) / 64 * 64;
    uint8_t header[512];
    memcpy(header, "\x93NUMPY\x01\x00", 8);
    size_t hlen = padded - 10;
    header[8] = (uint8_t)(hlen & 0xFF);
    header[9] = (uint8_t)(hlen >> 8);
    memcpy(header + 10, dict, (size_t)len);
    memset(header + 10 + len, ' ', padded - 10 - (size_t)len - 1);
    header[padded - 1] = '\n';

    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    fwrite(header, 1, padded, af.fp);
    uint8_t buf[4096];
    size_t fill = 0;
    for (size_t i = 0; i < numel; i++) {
        md_io_put_f32le(buf + fill, t->data[i]);
        fill += 4;
        if (fill == sizeof buf) {
            fwrite(buf, 1, fill, af.fp);
            fill = 0;
        }
    }
    fwrite(buf, 1, fill, af.fp);
    return md_atomic_commit(&af, err); /* commit checks ferror on the stream */
}

size_t md_tensor_numel(const md_tensor *t)
{
    if (!t || t->ndim < 0 || t->ndim > 8)
        return 0;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || !md_mul_size(n, (size_t)t->shape[i], &n))
            return 0;
    }
    return n;
}

void md_tensor_free(md_tensor *t)
{
    if (!t)
        return;
    free(t->data);
    memset(t, 0, sizeof *t);
}
