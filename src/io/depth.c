/* Depth maps: md_depth_load / md_depth_save / md_depth_alloc / md_depth_free. */
#include "io_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    double divisor;
    md_depth_encoding encoding;
    int keep_65535;
} depth_opts;

static float clean_float(double x);

static float raw_to_metres(uint32_t v, const depth_opts *o)
{
    if (o->encoding == MD_DEPTH_SUN_ROTATED)
        v = ((v >> 3) | (v << 13)) & 0xFFFFu;
    if (v == 0 || (v == 65535u && !o->keep_65535))
        return 0.0f;
    return clean_float((double)v / o->divisor); /* a tiny divisor can overflow float */
}

/* NaN, inf, <= 0 and beyond float range: invalid (0). The float test matches
 * md_depth_valid_at, so every value stored here is valid by that rule. */
static float clean_float(double x)
{
    if (!(x > 0.0 && x < 3.0e38))
        return 0.0f;
    float f = (float)x;
    return f > 0.0f && f < 3.0e38f ? f : 0.0f;
}

static md_status from_pnm(const char *path, const uint8_t *data, size_t size, const depth_opts *o,
                          md_depth *out, md_error *err)
{
    md_pnm_header h;
    md_status st = md_io_pnm_parse(path, data, size, &h, err);
    if (st != MD_OK)
        return st;
    if (h.channels != 1)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: a colour PPM is not a depth map", path);
    if (h.bytes_per_sample != 2)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: an 8-bit PGM (maxval %u) cannot hold depth; need 16-bit (maxval > 255)",
                       path, h.maxval);
    st = md_depth_alloc(out, h.width, h.height, err);
    if (st != MD_OK)
        return st;
    const uint8_t *s = data + h.data_offset;
    size_t n = (size_t)h.width * (size_t)h.height;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)s[2 * i] << 8 | s[2 * i + 1];
        /* a sample above maxval has no meaning in Netpbm: the pixel is invalid */
        out->data[i] = v > h.maxval ? 0.0f : raw_to_metres(v, o);
    }
    return MD_OK;
}

static md_status from_png(const char *path, const uint8_t *data, size_t size, const depth_opts *o,
                          md_depth *out, md_error *err)
{
    int w, h;
    uint16_t *v;
    md_status st = md_io_png_decode_gray16(path, data, size, &w, &h, &v, err);
    if (st != MD_OK)
        return st;
    st = md_depth_alloc(out, w, h, err);
    if (st == MD_OK) {
        size_t n = (size_t)w * (size_t)h;
        for (size_t i = 0; i < n; i++)
            out->data[i] = raw_to_metres(v[i], o);
    }
    free(v);
    return st;
}

static md_status from_npy(const char *path, const uint8_t *data, size_t size, const depth_opts *o,
                          md_depth *out, md_error *err)
{
    md_npy_view v;
    md_status st = md_io_npy_parse(path, data, size, &v, err);
    if (st != MD_OK)
        return st;
    /* (H, W), (1, H, W), (1, 1, H, W) or (H, W, 1). */
    int64_t hh = 0, ww = 0;
    int ok = 0;
    if (v.ndim >= 2 && v.ndim <= 4) {
        ok = 1;
        for (int i = 0; i < v.ndim - 2; i++)
            ok &= v.shape[i] == 1;
        hh = v.shape[v.ndim - 2];
        ww = v.shape[v.ndim - 1];
        if (!ok && v.ndim == 3 && v.shape[2] == 1) {
            ok = 1;
            hh = v.shape[0];
            ww = v.shape[1];
        }
    }
    if (!ok)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: a depth .npy must be 2-D (or have singleton leading dims); it has %d dims",
                       path, v.ndim);
    if (hh < 1 || ww < 1 || hh > MD_MAX_DIM || ww > MD_MAX_DIM)
        return md_fail(err, MD_ERR_FORMAT, "%s: depth .npy size %lldx%lld outside 1..%d", path,
                       (long long)ww, (long long)hh, MD_MAX_DIM);
    if ((size_t)hh * (size_t)ww > MD_MAX_PIXELS)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: depth .npy of %lldx%lld pixels is larger than the %zu supported", path,
                       (long long)ww, (long long)hh, MD_MAX_PIXELS);
    int is_u16 = v.kind == MD_NPY_UINT && v.itemsize == 2;
    if (v.kind == MD_NPY_BOOL)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: a boolean .npy is not a depth map", path);
    if (o->encoding == MD_DEPTH_SUN_ROTATED && !is_u16)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: the SUN RGB-D encoding needs uint16 data, not this .npy dtype", path);
    st = md_depth_alloc(out, (int)ww, (int)hh, err);
    if (st != MD_OK)
        return st;
    for (size_t i = 0; i < v.numel; i++) {
        double x = md_io_npy_get(&v, i);
        if (v.kind == MD_NPY_FLOAT)
            out->data[i] = clean_float(x);
        else if (is_u16)
            out->data[i] = raw_to_metres((uint32_t)x, o);
        else
            out->data[i] = clean_float(x / o->divisor);
    }
    return MD_OK;
}

static md_status from_pfm(const char *path, const uint8_t *data, size_t size, md_depth *out,
                          md_error *err)
{
    md_pfm_header h;
    md_status st = md_io_pfm_parse(path, data, size, &h, err);
    if (st != MD_OK)
        return st;
    if (h.channels != 1)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: a 3-channel PFM (PF) is not a depth map; need 'Pf'", path);
    st = md_depth_alloc(out, h.width, h.height, err);
    if (st != MD_OK)
        return st;
    int big = h.scale > 0;
    const uint8_t *s = data + h.data_offset;
    size_t w = (size_t)h.width;
    for (int y = 0; y < h.height; y++) {
        const uint8_t *row = s + (size_t)(h.height - 1 - y) * w * 4; /* stored bottom-up */
        float *dst = out->data + (size_t)y * w;
        for (size_t x = 0; x < w; x++)
            dst[x] = clean_float(md_io_get_f32(row + 4 * x, big));
    }
    return MD_OK;
}

md_status md_depth_load(const char *path, const md_depth_read_options *opts, md_depth *out,
                        md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "md_depth_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path)
        return md_fail(err, MD_ERR_ARG, "md_depth_load: path is NULL");
    depth_opts o = {1000.0, MD_DEPTH_PLAIN, 0};
    if (opts) {
        if (!isfinite(opts->divisor) || opts->divisor < 0)
            return md_fail(err, MD_ERR_ARG, "%s: invalid depth divisor %g", path, opts->divisor);
        if (opts->divisor > 0)
            o.divisor = opts->divisor;
        if (opts->encoding != MD_DEPTH_PLAIN && opts->encoding != MD_DEPTH_SUN_ROTATED)
            return md_fail(err, MD_ERR_ARG, "%s: unknown depth encoding %d", path,
                           (int)opts->encoding);
        o.encoding = opts->encoding;
        o.keep_65535 = opts->keep_65535;
    }
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, MD_IO_MAX_FILE_BYTES, &data, &size, err);
    if (st != MD_OK)
        return st;
    switch (md_io_sniff(data, size)) {
    case MD_FILE_PNG: st = from_png(path, data, size, &o, out, err); break;
    case MD_FILE_PGM:
    case MD_FILE_PPM: st = from_pnm(path, data, size, &o, out, err); break;
    case MD_FILE_NPY: st = from_npy(path, data, size, &o, out, err); break;
    case MD_FILE_PFM:
    case MD_FILE_PFM3: st = from_pfm(path, data, size, out, err); break;
    case MD_FILE_JPEG:
        st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: a JPEG cannot hold depth (8-bit, lossy)", path);
        break;
    case MD_FILE_PNM_ASCII:
        st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: ASCII/bitmap Netpbm is not supported for depth",
                     path);
        break;
    default:
        st = md_fail(err, MD_ERR_FORMAT, "%s: not a 16-bit PNG, PGM, .npy or PFM depth map%s",
                     path, size == 0 ? " (empty file)" : "");
        break;
    }
    free(data);
    if (st != MD_OK)
        md_depth_free(out);
    return st;
}

static md_status check_depth(const char *path, const md_depth *d, md_error *err)
{
    if (!path || !d || !d->data)
        return md_fail(err, MD_ERR_ARG, "md_depth_save: NULL path or depth");
    if (d->width <= 0 || d->height <= 0 || d->width > MD_MAX_DIM || d->height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "%s: cannot save a depth map of size %dx%d", path,
                       d->width, d->height);
    return MD_OK;
}

static md_status save_png(const char *path, const md_depth *d, double divisor, size_t *clipped,
                          md_error *err)
{
    size_t n = (size_t)d->width * (size_t)d->height, nclip = 0;
    uint8_t *buf = md_malloc(n * 2, path, err);
    if (!buf)
        return MD_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t mm = 0;
        if (md_depth_valid_at(d, i)) {
            double r = floor((double)d->data[i] * divisor + 0.5);
            /* 65534, not 65535: readers treat 65535 as the 7-Scenes
             * "invalid" marker, so a far depth must not turn into it. */
            nclip += r > 65534.0;
            mm = r >= 65534.0 ? 65534u : (uint32_t)r;
        }
        buf[2 * i] = (uint8_t)(mm >> 8);
        buf[2 * i + 1] = (uint8_t)mm;
    }
    md_status st = md_io_png_write(path, d->width, d->height, 1, 16, buf, err);
    free(buf);
    if (clipped)
        *clipped = nclip;
    return st;
}

md_status md_depth_save_png16(const char *path, const md_depth *depth, double divisor,
                              size_t *clipped, md_error *err)
{
    if (clipped)
        *clipped = 0;
    md_status st = check_depth(path, depth, err);
    if (st != MD_OK)
        return st;
    if (!(divisor > 0.0) || !isfinite(divisor))
        return md_fail(err, MD_ERR_ARG, "%s: PNG divisor must be positive, got %g", path, divisor);
    return save_png(path, depth, divisor, clipped, err);
}

static md_status save_npy(const char *path, const md_depth *d, md_error *err)
{
    size_t n = (size_t)d->width * (size_t)d->height;
    md_tensor t;
    memset(&t, 0, sizeof t);
    t.ndim = 2;
    t.shape[0] = d->height;
    t.shape[1] = d->width;
    t.data = md_malloc(n * sizeof(float), path, err);
    if (!t.data)
        return MD_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        t.data[i] = md_depth_valid_at(d, i) ? d->data[i] : 0.0f;
    md_status st = md_npy_save(path, &t, err);
    free(t.data);
    return st;
}

static md_status save_pfm(const char *path, const md_depth *d, md_error *err)
{
    size_t w = (size_t)d->width;
    uint8_t *row = md_malloc(w * 4, path, err);
    if (!row)
        return MD_ERR_NOMEM;
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK) {
        free(row);
        return st;
    }
    fprintf(af.fp, "Pf\n%d %d\n-1.0\n", d->width, d->height);
    for (int y = d->height - 1; y >= 0; y--) { /* PFM rows run bottom to top */
        size_t base = (size_t)y * w;
        for (size_t x = 0; x < w; x++)
            md_io_put_f32le(row + 4 * x, md_depth_valid_at(d, base + x) ? d->data[base + x] : 0.0f);
        fwrite(row, 4, w, af.fp);
    }
    free(row);
    return md_atomic_commit(&af, err);
}

md_status md_depth_save(const char *path, const md_depth *depth, md_error *err)
{
    md_status st = check_depth(path, depth, err);
    if (st != MD_OK)
        return st;
    if (md_path_has_ext(path, "png"))
        return save_png(path, depth, 1000.0, NULL, err);
    if (md_path_has_ext(path, "npy"))
        return save_npy(path, depth, err);
    if (md_path_has_ext(path, "pfm"))
        return save_pfm(path, depth, err);
    return md_fail(err, MD_ERR_ARG, "%s: unknown depth file extension (use .png, .npy or .pfm)",
                   path);
}

md_status md_depth_alloc(md_depth *d, int width, int height, md_error *err)
{
    if (!d)
        return md_fail(err, MD_ERR_ARG, "md_depth_alloc: NULL depth");
    memset(d, 0, sizeof *d);
    if (width <= 0 || height <= 0 || width > MD_MAX_DIM || height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "md_depth_alloc: invalid size %dx%d", width, height);
    d->data = md_calloc((size_t)width * (size_t)height, sizeof(float), "depth map", err);
    if (!d->data)
        return MD_ERR_NOMEM;
    d->width = width;
    d->height = height;
    return MD_OK;
}

void md_depth_free(md_depth *d)
{
    if (!d)
        return;
    free(d->data);
    free(d->mask);
    memset(d, 0, sizeof *d);
}
