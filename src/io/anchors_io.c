/* Anchor files: a text list "u v depth_m [weight]" or a sparse depth image
 * (0 = no measurement) of the input image's size. */
#include "io/io_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

void md_anchor_set_free(md_anchor_set *set)
{
    if (!set)
        return;
    free(set->items);
    set->items = NULL;
    set->count = 0;
}

static md_status push(md_anchor_set *set, size_t *cap, const md_anchor *a, const char *path,
                      md_error *err)
{
    if (set->count == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        if (c > MD_MAX_ELEMENTS)
            return md_fail(err, MD_ERR_NOMEM, "%s: more than %zu anchors", path,
                           (size_t)MD_MAX_ELEMENTS);
        md_anchor *items = realloc(set->items, c * sizeof *items);
        if (!items)
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the anchors", path);
        set->items = items;
        *cap = c;
    }
    set->items[set->count++] = *a;
    return MD_OK;
}

md_status md_anchors_from_depth(const md_depth *sparse, md_anchor_set *out, md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "md_anchors_from_depth: out is NULL");
    memset(out, 0, sizeof *out);
    if (!sparse || !sparse->data || sparse->width <= 0 || sparse->height <= 0)
        return md_fail(err, MD_ERR_ARG, "md_anchors_from_depth: empty depth map");
    size_t cap = 0;
    for (int y = 0; y < sparse->height; y++) {
        for (int x = 0; x < sparse->width; x++) {
            size_t i = (size_t)y * (size_t)sparse->width + (size_t)x;
            if (!md_depth_valid_at(sparse, i))
                continue;
            md_anchor a = {(float)x + 0.5f, (float)y + 0.5f, sparse->data[i], 1.0f};
            md_status st = push(out, &cap, &a, "sparse depth", err);
            if (st != MD_OK) {
                md_anchor_set_free(out);
                return st;
            }
        }
    }
    return MD_OK;
}

/* A .npy sparse map must not hold negative or NaN values: md_depth_load would
 * quietly read them as "no measurement", hiding a broken export. */
static md_status check_npy_values(const char *path, md_error *err)
{
    md_tensor t = {0};
    md_status st = md_npy_load(path, &t, err);
    if (st != MD_OK)
        return st;
    size_t n = md_tensor_numel(&t);
    for (size_t i = 0; i < n; i++) {
        float v = t.data[i];
        if (!(v >= 0.0f) || !isfinite(v)) {
            st = md_fail(err, MD_ERR_DATA,
                         "%s: element %zu is %g: a sparse depth map holds depths > 0 and 0 for "
                         "no measurement",
                         path, i, (double)v);
            break;
        }
    }
    md_tensor_free(&t);
    return st;
}

static md_status load_image(const char *path, md_file_kind kind, int width, int height,
                            double divisor, md_anchor_set *out, md_error *err)
{
    if (kind == MD_FILE_NPY) {
        md_status st = check_npy_values(path, err);
        if (st != MD_OK)
            return st;
    }
    md_depth_read_options o = {.divisor = divisor > 0 ? divisor : 1000.0};
    md_depth d = {0};
    md_status st = md_depth_load(path, &o, &d, err);
    if (st != MD_OK)
        return st;
    if (d.width != width || d.height != height) {
        st = md_fail(err, MD_ERR_DATA,
                     "%s: sparse depth is %dx%d but the image is %dx%d (anchors in a depth "
                     "image must be registered to the image, pixel for pixel)",
                     path, d.width, d.height, width, height);
    } else {
        st = md_anchors_from_depth(&d, out, err);
        if (st == MD_OK && out->count == 0)
            st = md_fail(err, MD_ERR_DATA, "%s: no pixel holds a measurement (all 0)", path);
    }
    md_depth_free(&d);
    if (st != MD_OK)
        md_anchor_set_free(out);
    return st;
}

/* Parses one number token; false if s is not entirely a finite number. */
static bool number(const char *s, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static md_status parse_text(const char *path, const uint8_t *data, size_t size, int width,
                            int height, md_anchor_set *out, md_error *err)
{
    size_t cap = 0, line = 0, pos = 0;
    while (pos < size) {
        size_t end = pos;
        while (end < size && data[end] != '\n')
            end++;
        line++;
        size_t stop = end;
        for (size_t k = pos; k < end; k++) {
            if (data[k] == '#') {
                stop = k;
                break;
            }
            if (data[k] == 0 || (data[k] < 0x20 && !isspace(data[k])))
                return md_fail(err, MD_ERR_FORMAT,
                               "%s:%zu: binary data: not an anchor list (text 'u v depth_m "
                               "[weight]') nor a depth image (16-bit PNG, .npy)",
                               path, line);
        }
        double v[4];
        int nv = 0;
        size_t k = pos;
        bool extra = false;
        while (k < stop) {
            while (k < stop && isspace(data[k]))
                k++;
            if (k >= stop)
                break;
            size_t t = k;
            while (k < stop && !isspace(data[k]))
                k++;
            if (nv == 4) {
                extra = true;
                break;
            }
            if (!number((const char *)data + t, k - t, &v[nv]))
                return md_fail(err, MD_ERR_FORMAT,
                               "%s:%zu: '%.*s' is not a number (want 'u v depth_m [weight]')",
                               path, line, (int)(k - t > 40 ? 40 : k - t),
                               (const char *)data + t);
            nv++;
        }
        pos = end + 1;
        if (nv == 0 && !extra)
            continue;
        if (extra || nv < 3)
            return md_fail(err, MD_ERR_FORMAT,
                           "%s:%zu: %s (want 'u v depth_m [weight]')", path, line,
                           extra ? "more than 4 numbers" : nv == 1 ? "1 number" : "2 numbers");
        md_anchor a = {(float)v[0], (float)v[1], (float)v[2], nv == 4 ? (float)v[3] : 1.0f};
        if (!(v[0] >= 0 && v[0] < width && v[1] >= 0 && v[1] < height))
            return md_fail(err, MD_ERR_DATA,
                           "%s:%zu: anchor at (%g, %g) lies outside the %dx%d image (u is the "
                           "column in [0, %d), v the row in [0, %d))",
                           path, line, v[0], v[1], width, height, width, height);
        if (!(v[2] > 0) || !(a.depth > 0.0f) || !isfinite(a.depth))
            return md_fail(err, MD_ERR_DATA, "%s:%zu: depth %g m is not positive", path, line,
                           v[2]);
        if (nv == 4 && (!(v[3] > 0) || !(a.weight > 0.0f) || !isfinite(a.weight)))
            return md_fail(err, MD_ERR_DATA, "%s:%zu: weight %g is not positive", path, line,
                           v[3]);
        md_status st = push(out, &cap, &a, path, err);
        if (st != MD_OK)
            return st;
    }
    if (out->count == 0)
        return md_fail(err, MD_ERR_DATA, "%s: no anchors (only comments or blank lines)", path);
    return MD_OK;
}

md_status md_anchors_load(const char *path, int width, int height, double divisor,
                          md_anchor_set *out, md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "md_anchors_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path)
        return md_fail(err, MD_ERR_ARG, "md_anchors_load: path is NULL");
    if (width <= 0 || height <= 0 || width > MD_MAX_DIM || height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "%s: invalid image size %dx%d", path, width, height);
    if (!isfinite(divisor))
        return md_fail(err, MD_ERR_ARG, "%s: invalid depth divisor %g", path, divisor);
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, MD_IO_MAX_FILE_BYTES, &data, &size, err);
    if (st != MD_OK)
        return st;
    md_file_kind kind = md_io_sniff(data, size);
    if (kind == MD_FILE_PNG || kind == MD_FILE_PGM || kind == MD_FILE_NPY ||
        kind == MD_FILE_PFM) {
        free(data);
        return load_image(path, kind, width, height, divisor, out, err);
    }
    if (kind != MD_FILE_UNKNOWN) {
        free(data);
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: an image file, not a depth map: anchors are a text list or a "
                       "single-channel depth image (16-bit PNG, .npy)",
                       path);
    }
    st = parse_text(path, data, size, width, height, out, err);
    free(data);
    if (st != MD_OK)
        md_anchor_set_free(out);
    return st;
}
