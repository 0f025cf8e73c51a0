/* PNG through libpng. libpng reports errors by longjmp; every mutable piece
 * of state lives in a context owned by the caller of the function that calls
 * setjmp, so nothing local to that function changes between setjmp and
 * longjmp. */
#include "io_internal.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>

typedef struct {
    const uint8_t *data;
    size_t size, pos;
    char msg[256];
    md_status status; /* set before a deliberate png_error */
    int mode;         /* 0: rgb8, 1: gray16 */
    int width, height;
    uint8_t *pixels;
    png_bytep *rows;
} png_read_ctx;

static void on_error(png_structp png, png_const_charp msg)
{
    png_read_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void read_bytes(png_structp png, png_bytep out, size_t n)
{
    png_read_ctx *c = png_get_io_ptr(png);
    if (n > c->size - c->pos) {
        c->status = MD_ERR_FORMAT;
        png_error(png, "file is truncated");
    }
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

static const char *color_type_name(int t)
{
    switch (t) {
    case PNG_COLOR_TYPE_GRAY: return "greyscale";
    case PNG_COLOR_TYPE_GRAY_ALPHA: return "greyscale+alpha";
    case PNG_COLOR_TYPE_RGB: return "RGB";
    case PNG_COLOR_TYPE_RGB_ALPHA: return "RGBA";
    case PNG_COLOR_TYPE_PALETTE: return "palette";
    default: return "unknown";
    }
}

static int decode(png_structp png, png_infop info, png_read_ctx *c)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_set_user_limits(png, MD_MAX_DIM, MD_MAX_DIM);
    png_set_read_fn(png, c, read_bytes);
    png_read_info(png, info);
    png_uint_32 w, h;
    int bit_depth, color_type, interlace;
    png_get_IHDR(png, info, &w, &h, &bit_depth, &color_type, &interlace, NULL, NULL);
    if (w == 0 || h == 0 || w > MD_MAX_DIM || h > MD_MAX_DIM) {
        c->status = MD_ERR_UNSUPPORTED;
        png_error(png, "image size outside 1..32768");
    }
    if ((size_t)w * h > MD_MAX_PIXELS) {
        c->status = MD_ERR_UNSUPPORTED;
        snprintf(c->msg, sizeof c->msg, "image of %ux%u pixels is larger than the %zu supported",
                 (unsigned)w, (unsigned)h, MD_MAX_PIXELS);
        return -2;
    }
    int channels = png_get_channels(png, info);
    /* Deflate cannot compress better than about 1032:1, so a file far smaller
     * than its pixels must be truncated: reject before allocating for it. */
    uint64_t raw = (uint64_t)h * (1 + ((uint64_t)w * (uint64_t)channels * (uint64_t)bit_depth + 7) / 8);
    if (raw / 1100 > (uint64_t)c->size) {
        c->status = MD_ERR_FORMAT;
        png_error(png, "file is truncated (far too small for its declared size)");
    }
    if (c->mode == 1) {
        if (color_type != PNG_COLOR_TYPE_GRAY || bit_depth != 16) {
            c->status = MD_ERR_UNSUPPORTED;
            snprintf(c->msg, sizeof c->msg,
                     "a depth PNG must be 16-bit greyscale; this one is %d-bit %s", bit_depth,
                     color_type_name(color_type));
            return -2;
        }
    } else {
        if (color_type == PNG_COLOR_TYPE_PALETTE)
            png_set_palette_to_rgb(png);
        if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
            png_set_expand_gray_1_2_4_to_8(png);
        if (bit_depth == 16)
            png_set_scale_16(png);
        /* Palette expansion also turns a tRNS chunk into alpha: drop it too. */
        if ((color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
            png_set_strip_alpha(png);
        if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA)
            png_set_gray_to_rgb(png);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t bpp = c->mode == 1 ? 2 : 3;
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * bpp) {
        c->status = MD_ERR_FORMAT;
        png_error(png, "unexpected row layout after conversion");
    }
    size_t bytes;
    if (!md_mul_size((size_t)w * (size_t)h, bpp, &bytes)) {
        c->status = MD_ERR_NOMEM;
        png_error(png, "image too large for this machine");
    }
    c->pixels = malloc(bytes);
    c->rows = malloc((size_t)h * sizeof *c->rows);
    if (!c->pixels || !c->rows) {
        c->status = MD_ERR_NOMEM;
        png_error(png, "out of memory");
    }
    for (png_uint_32 y = 0; y < h; y++)
        c->rows[y] = c->pixels + (size_t)y * rowbytes;
    png_read_image(png, c->rows);
    png_read_end(png, NULL);
    c->width = (int)w;
    c->height = (int)h;
    return 0;
}

static md_status png_read_any(const char *path, const uint8_t *data, size_t size, int mode,
                              int *w, int *h, uint8_t **pixels, md_error *err)
{
    *pixels = NULL;
    *w = *h = 0;
    png_read_ctx c;
    memset(&c, 0, sizeof c);
    c.data = data;
    c.size = size;
    c.mode = mode;
    c.status = MD_ERR_FORMAT;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    if (!png)
        return md_fail(err, MD_ERR_NOMEM, "%s: cannot create a PNG reader", path);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return md_fail(err, MD_ERR_NOMEM, "%s: cannot create a PNG reader", path);
    }
    int rc = decode(png, info, &c);
    png_destroy_read_struct(&png, &info, NULL);
    free(c.rows);
    if (rc != 0) {
        free(c.pixels);
        if (rc == -2)
            return md_fail(err, c.status, "%s: %s", path, c.msg);
        return md_fail(err, c.status, "%s: %s PNG: %s", path,
                       c.status == MD_ERR_FORMAT ? "corrupt" : "cannot read", c.msg);
    }
    *pixels = c.pixels;
    *w = c.width;
    *h = c.height;
    return MD_OK;
}

md_status md_io_png_decode_rgb8(const char *path, const uint8_t *data, size_t size, int *w, int *h,
                                uint8_t **pixels, md_error *err)
{
    return png_read_any(path, data, size, 0, w, h, pixels, err);
}

md_status md_io_png_decode_gray16(const char *path, const uint8_t *data, size_t size, int *w,
                                  int *h, uint16_t **values, md_error *err)
{
    uint8_t *bytes;
    md_status st = png_read_any(path, data, size, 1, w, h, &bytes, err);
    *values = NULL;
    if (st != MD_OK)
        return st;
    /* Big-endian byte pairs to host uint16, in place (element i only reads
     * bytes 2i and 2i+1, the bytes it then overwrites). */
    size_t n = (size_t)*w * (size_t)*h;
    uint16_t *v = (uint16_t *)(void *)bytes;
    for (size_t i = 0; i < n; i++) {
        uint16_t x = (uint16_t)(bytes[2 * i] << 8 | bytes[2 * i + 1]);
        v[i] = x;
    }
    *values = v;
    return MD_OK;
}

typedef struct {
    char msg[256];
} png_write_ctx;

static void on_write_error(png_structp png, png_const_charp msg)
{
    png_write_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static int encode(png_structp png, png_infop info, FILE *fp, int w, int h, int channels,
                  int bit_depth, const uint8_t *rows)
{
    if (setjmp(png_jmpbuf(png)))
        return -1;
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, bit_depth,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* zlib level 6 with adaptive filtering made writing a 640x480 depth PNG
     * cost 3x the network itself. Level 1 with the Up filter: on FastDepth's
     * 16-bit depth maps of 7-Scenes, NYU and KITTI images 10-20 % faster than
     * level 2 with Sub (the choice before) and 4-10 % smaller; on previews
     * 12-30 % faster within +-5 % in size. Depth and previews vary smoothly
     * down columns as well as along rows, and Up's differences (the row
     * above) suit the 16-bit samples better than Sub's. */
    png_set_compression_level(png, 1);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_UP);
    png_write_info(png, info);
    size_t rowbytes = (size_t)w * (size_t)channels * (size_t)(bit_depth / 8);
    for (int y = 0; y < h; y++)
        png_write_row(png, rows + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    return 0;
}

md_status md_io_png_write(const char *path, int w, int h, int channels, int bit_depth,
                          const uint8_t *rows, md_error *err)
{
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    png_write_ctx c;
    memset(&c, 0, sizeof c);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, on_write_error,
                                              on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_NOMEM, "%s: cannot create a PNG writer", path);
    }
    int rc = encode(png, info, af.fp, w, h, channels, bit_depth, rows);
    png_destroy_write_struct(&png, &info);
    if (rc != 0) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: cannot write PNG: %s", path, c.msg);
    }
    return md_atomic_commit(&af, err);
}
