/* More image formats behind md_image_load: WebP (libwebp), TIFF (libtiff),
 * BMP (our own small reader: no Debian library reads BMP from memory without
 * pulling in a toolkit), and the EXIF orientation (libexif) that phones write
 * instead of rotating the pixels. */
#include "io_internal.h"

#include <stdlib.h>

#include <libexif/exif-data.h>
#include <tiffio.h>
#include <webp/decode.h>

/* ------------------------------------------------------------------ WebP */

md_status md_io_webp_decode_rgb8(const char *path, const uint8_t *data, size_t size, int *w,
                                 int *h, uint8_t **pixels, md_error *err)
{
    *pixels = NULL;
    int width = 0, height = 0;
    if (!WebPGetInfo(data, size, &width, &height))
        return md_fail(err, MD_ERR_FORMAT, "%s: corrupt WebP image", path);
    if (width <= 0 || height <= 0 || width > MD_MAX_DIM || height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: WebP size %dx%d outside 1..%d", path, width,
                       height, MD_MAX_DIM);
    size_t n = (size_t)width * (size_t)height * 3;
    uint8_t *px = md_malloc(n, path, err);
    if (!px)
        return MD_ERR_NOMEM;
    if (!WebPDecodeRGBInto(data, size, px, n, width * 3)) {
        free(px);
        return md_fail(err, MD_ERR_FORMAT, "%s: corrupt or truncated WebP data", path);
    }
    *w = width;
    *h = height;
    *pixels = px;
    return MD_OK;
}

/* ------------------------------------------------------------------ TIFF */

typedef struct {
    const uint8_t *data;
    size_t size, pos;
    char msg[256];
} tiff_mem;

static tmsize_t tiff_read(thandle_t h, void *buf, tmsize_t n)
{
    tiff_mem *m = (tiff_mem *)h;
    if (n < 0)
        return -1;
    size_t left = m->pos < m->size ? m->size - m->pos : 0;
    size_t k = (size_t)n < left ? (size_t)n : left;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (tmsize_t)k;
}

static tmsize_t tiff_write(thandle_t h, void *buf, tmsize_t n)
{
    (void)h;
    (void)buf;
    (void)n;
    return -1;
}

static toff_t tiff_seek(thandle_t h, toff_t off, int whence)
{
    tiff_mem *m = (tiff_mem *)h;
    uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->size : 0;
    uint64_t p = base + off;
    if (p < base || p > (uint64_t)SIZE_MAX)
        return (toff_t)-1;
    m->pos = (size_t)p;
    return p;
}

static int tiff_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t tiff_size(thandle_t h)
{
    return ((tiff_mem *)h)->size;
}

static int tiff_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    (void)module;
    tiff_mem *m = user;
    if (!m->msg[0])
        vsnprintf(m->msg, sizeof m->msg, fmt, ap);
    return 1; /* handled: libtiff prints nothing */
}

static int tiff_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    (void)user;
    (void)module;
    (void)fmt;
    (void)ap;
    return 1;
}

md_status md_io_tiff_decode_rgb8(const char *path, const uint8_t *data, size_t size, int *w,
                                 int *h, uint8_t **pixels, int *orientation, md_error *err)
{
    *pixels = NULL;
    *orientation = 1;
    tiff_mem m = {data, size, 0, ""};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the TIFF decoder", path);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_on_error, &m);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_on_warning, &m);
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)1 << 30);
    TIFF *tif = TIFFClientOpenExt(path, "rm", (thandle_t)&m, tiff_read, tiff_write, tiff_seek,
                                  tiff_close, tiff_size, NULL, NULL, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif)
        return md_fail(err, MD_ERR_FORMAT, "%s: corrupt TIFF: %s", path,
                       m.msg[0] ? m.msg : "cannot open");
    uint32_t width = 0, height = 0;
    uint16_t orient = ORIENTATION_TOPLEFT;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
    TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &orient);
    /* libtiff's RGBA reader applies orientations 1-4 and only guesses at
     * 5-8: we read the pixels as stored and apply every orientation ourselves
     * (the TIFF tag uses EXIF's numbering). */
    TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
    md_status st = MD_OK;
    uint32_t *raster = NULL;
    char emsg[1024] = "";
    if (width == 0 || height == 0 || width > MD_MAX_DIM || height > MD_MAX_DIM) {
        st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: TIFF size %ux%u outside 1..%d", path,
                     (unsigned)width, (unsigned)height, MD_MAX_DIM);
    } else if (!TIFFRGBAImageOK(tif, emsg)) {
        st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: cannot read this TIFF: %s", path, emsg);
    } else {
        size_t n = (size_t)width * height;
        raster = md_malloc(n * sizeof *raster, path, err);
        uint8_t *px = raster ? md_malloc(n * 3, path, err) : NULL;
        if (!raster || !px) {
            free(px);
            st = MD_ERR_NOMEM;
        } else if (!TIFFReadRGBAImageOriented(tif, width, height, raster, ORIENTATION_TOPLEFT, 1)) {
            free(px);
            st = md_fail(err, MD_ERR_FORMAT, "%s: corrupt TIFF data: %s", path,
                         m.msg[0] ? m.msg : "read failed");
        } else {
            for (size_t i = 0; i < n; i++) {
                px[3 * i] = (uint8_t)TIFFGetR(raster[i]);
                px[3 * i + 1] = (uint8_t)TIFFGetG(raster[i]);
                px[3 * i + 2] = (uint8_t)TIFFGetB(raster[i]);
            }
            *pixels = px;
            *w = (int)width;
            *h = (int)height;
            *orientation = orient >= 1 && orient <= 8 ? orient : 1;
        }
    }
    free(raster);
    TIFFClose(tif);
    return st;
}

/* ------------------------------------------------------------------- BMP */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* Position of the lowest set bit and the width of a contiguous mask. */
static int mask_shift(uint32_t m, int *bits)
{
    int s = 0;
    *bits = 0;
    if (!m)
        return 0;
    while (!(m & 1u)) {
        m >>= 1;
        s++;
    }
    while (m & 1u) {
        m >>= 1;
        (*bits)++;
    }
    return m ? -1 : s; /* non-contiguous masks are refused */
}

static uint8_t mask_value(uint32_t px, uint32_t mask, int shift, int bits)
{
    if (!mask)
        return 0;
    uint32_t v = (px & mask) >> shift;
    uint32_t max = bits >= 32 ? 0xFFFFFFFFu : (1u << bits) - 1u;
    return (uint8_t)((v * 255u + max / 2u) / max);
}

/* Windows bitmaps: BITMAPINFOHEADER and its V4/V5 extensions, uncompressed
 * 1/4/8-bit (palette), 24-bit and 16/32-bit (BI_RGB or BI_BITFIELDS), bottom-up
 * or top-down. RLE and embedded JPEG/PNG are refused. */
md_status md_io_bmp_decode_rgb8(const char *path, const uint8_t *d, size_t size, int *w, int *h,
                                uint8_t **pixels, md_error *err)
{
    *pixels = NULL;
    if (size < 14 + 40)
        return md_fail(err, MD_ERR_FORMAT, "%s: truncated BMP header", path);
    uint32_t data_off = le32(d + 10), hdr = le32(d + 14);
    if (hdr < 40 || hdr > 124 || 14 + (size_t)hdr > size)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: BMP header of %u bytes (want 40..124)", path,
                       (unsigned)hdr);
    int32_t width = (int32_t)le32(d + 18), height = (int32_t)le32(d + 22);
    uint16_t planes = le16(d + 26), bpp = le16(d + 28);
    uint32_t comp = le32(d + 30), colours = le32(d + 46);
    int top_down = height < 0;
    int64_t hh = top_down ? -(int64_t)height : height;
    if (planes != 1 || width <= 0 || hh <= 0 || width > MD_MAX_DIM || hh > MD_MAX_DIM)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: BMP size %dx%lld outside 1..%d", path,
                       (int)width, (long long)hh, MD_MAX_DIM);
    if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: %u bits per pixel BMP", path, (unsigned)bpp);
    uint32_t rm = 0, gm = 0, bm = 0;
    if (comp == 3 /* BI_BITFIELDS */ && (bpp == 16 || bpp == 32)) {
        if (hdr >= 52) {
            rm = le32(d + 54);
            gm = le32(d + 58);
            bm = le32(d + 62);
        } else if (14 + (size_t)hdr + 12 <= size) {
            rm = le32(d + 14 + hdr);
            gm = le32(d + 14 + hdr + 4);
            bm = le32(d + 14 + hdr + 8);
        } else {
            return md_fail(err, MD_ERR_FORMAT, "%s: truncated BMP colour masks", path);
        }
    } else if (comp == 0) {
        if (bpp == 16) {
            rm = 0x7C00;
            gm = 0x03E0;
            bm = 0x001F;
        } else if (bpp == 32) {
            rm = 0x00FF0000;
            gm = 0x0000FF00;
            bm = 0x000000FF;
        }
    } else {
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: compressed BMP (method %u) is not supported", path, (unsigned)comp);
    }
    int rs = 0, gs = 0, bs = 0, rb = 0, gb = 0, bb = 0;
    if (bpp >= 16) {
        rs = mask_shift(rm, &rb);
        gs = mask_shift(gm, &gb);
        bs = mask_shift(bm, &bb);
        if (rs < 0 || gs < 0 || bs < 0)
            return md_fail(err, MD_ERR_UNSUPPORTED, "%s: non-contiguous BMP colour masks", path);
    }
    const uint8_t *palette = NULL;
    uint32_t n_pal = 0;
    if (bpp <= 8) {
        n_pal = colours ? colours : 1u << bpp;
        if (n_pal > (1u << bpp))
            return md_fail(err, MD_ERR_FORMAT, "%s: BMP palette of %u colours for %u bits", path,
                           (unsigned)n_pal, (unsigned)bpp);
        size_t pal_off = 14 + (size_t)hdr;
        if (pal_off + (size_t)n_pal * 4 > size)
            return md_fail(err, MD_ERR_FORMAT, "%s: truncated BMP palette", path);
        palette = d + pal_off;
    }
    size_t W = (size_t)width, H = (size_t)hh;
    size_t row_bytes = ((W * bpp + 31) / 32) * 4;
    if (data_off > size || (size - data_off) / row_bytes < H)
        return md_fail(err, MD_ERR_FORMAT, "%s: truncated BMP pixel data", path);
    uint8_t *px = md_malloc(W * H * 3, path, err);
    if (!px)
        return MD_ERR_NOMEM;
    for (size_t y = 0; y < H; y++) {
        const uint8_t *row = d + data_off + (top_down ? y : H - 1 - y) * row_bytes;
        uint8_t *o = px + y * W * 3;
        for (size_t x = 0; x < W; x++, o += 3) {
            if (bpp <= 8) {
                size_t bit = x * bpp;
                uint32_t idx = (row[bit / 8] >> (8 - bpp - bit % 8)) & ((1u << bpp) - 1u);
                if (idx >= n_pal) {
                    free(px);
                    return md_fail(err, MD_ERR_FORMAT, "%s: BMP colour index %u past the palette",
                                   path, (unsigned)idx);
                }
                o[0] = palette[4 * idx + 2];
                o[1] = palette[4 * idx + 1];
                o[2] = palette[4 * idx];
            } else if (bpp == 24) {
                o[0] = row[3 * x + 2];
                o[1] = row[3 * x + 1];
                o[2] = row[3 * x];
            } else {
                uint32_t v = bpp == 16 ? le16(row + 2 * x) : le32(row + 4 * x);
                o[0] = mask_value(v, rm, rs, rb);
                o[1] = mask_value(v, gm, gs, gb);
                o[2] = mask_value(v, bm, bs, bb);
            }
        }
    }
    *w = (int)W;
    *h = (int)H;
    *pixels = px;
    return MD_OK;
}

/* ------------------------------------------------------ EXIF orientation */

/* The JPEG's APP1 "Exif" segment, found by walking the markers before the
 * first scan; NULL if none. */
static const uint8_t *jpeg_exif_segment(const uint8_t *d, size_t n, size_t *len)
{
    size_t p = 2;
    while (p + 4 <= n) {
        if (d[p] != 0xFF)
            return NULL;
        uint8_t marker = d[p + 1];
        if (marker == 0xFF) { /* fill byte */
            p++;
            continue;
        }
        if (marker == 0xDA || marker == 0xD9) /* start of scan, end of image */
            return NULL;
        size_t seg = (size_t)d[p + 2] << 8 | d[p + 3];
        if (seg < 2 || p + 2 + seg > n)
            return NULL;
        if (marker == 0xE1 && seg >= 8 && memcmp(d + p + 4, "Exif\0\0", 6) == 0) {
            *len = seg - 2;
            return d + p + 4;
        }
        p += 2 + seg;
    }
    return NULL;
}

int md_io_jpeg_orientation(const uint8_t *data, size_t size)
{
    size_t len = 0;
    const uint8_t *seg = jpeg_exif_segment(data, size, &len);
    if (!seg || len > 65535)
        return 1;
    ExifData *ed = exif_data_new();
    if (!ed)
        return 1;
    /* only the orientation is read: no maker notes */
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(ed, seg, (unsigned int)len);
    int orient = 1;
    ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
    if (e && e->format == EXIF_FORMAT_SHORT && e->components == 1 && e->data && e->size >= 2) {
        int v = exif_get_short(e->data, exif_data_get_byte_order(ed));
        if (v >= 1 && v <= 8)
            orient = v;
    }
    exif_data_unref(ed);
    return orient;
}

/* EXIF orientation o says how the stored rows and columns map to the scene:
 *  1 as stored          2 mirrored left-right     3 rotated 180
 *  4 mirrored top-down  5 transposed (mirror across the main diagonal)
 *  6 rotate 90 clockwise to display   7 transverse (anti-diagonal)
 *  8 rotate 90 counter-clockwise to display.
 * out(x, y) = in(src_x, src_y), with the output W' x H' (swapped for 5-8). */
md_status md_image_orient(md_image *img, int o, md_error *err)
{
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0)
        return md_fail(err, MD_ERR_ARG, "md_image_orient: empty image");
    if (o < 1 || o > 8)
        return md_fail(err, MD_ERR_ARG, "md_image_orient: orientation %d outside 1..8", o);
    if (o == 1)
        return MD_OK;
    size_t W = (size_t)img->width, H = (size_t)img->height;
    int swap = o >= 5;
    size_t OW = swap ? H : W, OH = swap ? W : H;
    uint8_t *px = md_malloc(W * H * 3, "oriented image", err);
    if (!px)
        return MD_ERR_NOMEM;
    for (size_t y = 0; y < OH; y++) {
        for (size_t x = 0; x < OW; x++) {
            size_t sx, sy;
            switch (o) {
            case 2: sx = W - 1 - x; sy = y; break;
            case 3: sx = W - 1 - x; sy = H - 1 - y; break;
            case 4: sx = x; sy = H - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = H - 1 - x; break;
            case 7: sx = W - 1 - y; sy = H - 1 - x; break;
            default: sx = W - 1 - y; sy = x; break; /* 8 */
            }
            memcpy(px + (y * OW + x) * 3, img->pixels + (sy * W + sx) * 3, 3);
        }
    }
    free(img->pixels);
    img->pixels = px;
    img->width = (int)OW;
    img->height = (int)OH;
    return MD_OK;
}
