/* Internal helpers of the I/O module: in-memory decoders shared by the image
 * and depth readers, and the byte-order helpers every writer uses. */
#ifndef MD_IO_INTERNAL_H
#define MD_IO_INTERNAL_H

#include "base/base.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Largest file any reader pulls into memory. */
#define MD_IO_MAX_FILE_BYTES \
    (SIZE_MAX > 0xFFFFFFFFu ? (size_t)17179869184ull : (size_t)0x7FFFFFFFu)

/* File kinds recognised from their first bytes. */
typedef enum {
    MD_FILE_UNKNOWN = 0,
    MD_FILE_PNG,
    MD_FILE_JPEG,
    MD_FILE_PGM,  /* P5 */
    MD_FILE_PPM,  /* P6 */
    MD_FILE_PNM_ASCII, /* P1..P4, P7: recognised but unsupported */
    MD_FILE_NPY,
    MD_FILE_PFM,  /* Pf, one channel */
    MD_FILE_PFM3, /* PF, three channels */
    MD_FILE_WEBP, /* RIFF....WEBP */
    MD_FILE_TIFF, /* II*\0 or MM\0* */
    MD_FILE_BMP   /* BM */
} md_file_kind;

md_file_kind md_io_sniff(const uint8_t *data, size_t size);
/* 16-bit greyscale PNG or PGM (a depth map, as RGB-D datasets store them),
 * judged from the file's first bytes (512 hold any sane PGM header). */
int md_io_is_grey16(const uint8_t *data, size_t size);

/* md_colormap_lookup(cmap, t[k], rgb + 3 k) for k < n where skip[k] is 0;
 * the other pixels are left as they are. */
void md_colormap_row(md_colormap cmap, const float *t, const uint8_t *skip, size_t n,
                     uint8_t *rgb);

/* PNM (P5/P6) header. data_offset is where the samples start; the reader has
 * already checked that w*h*channels*bytes_per_sample bytes follow. */
typedef struct {
    int width, height, channels;
    unsigned maxval;
    int bytes_per_sample; /* 1 (maxval < 256) or 2 (big-endian) */
    size_t data_offset;
} md_pnm_header;

md_status md_io_pnm_parse(const char *path, const uint8_t *data, size_t size, md_pnm_header *h,
                          md_error *err);

/* PFM ("Pf"/"PF") header; the data (w*h*channels float32) is checked present. */
typedef struct {
    int width, height, channels;
    double scale; /* < 0 little-endian, > 0 big-endian */
    size_t data_offset;
} md_pfm_header;

md_status md_io_pfm_parse(const char *path, const uint8_t *data, size_t size, md_pfm_header *h,
                          md_error *err);

/* PNG decoders. rgb8: any PNG to 8-bit RGB (w*h*3). gray16: only 16-bit
 * greyscale, to host-order uint16 (w*h); other PNGs fail with MD_ERR_UNSUPPORTED. */
md_status md_io_png_decode_rgb8(const char *path, const uint8_t *data, size_t size, int *w, int *h,
                                uint8_t **pixels, md_error *err);
md_status md_io_png_decode_gray16(const char *path, const uint8_t *data, size_t size, int *w,
                                  int *h, uint16_t **values, md_error *err);
/* Writes a PNG atomically. rows: h rows of w*channels samples, 16-bit samples
 * as big-endian byte pairs (PNG order). channels 1 (grey) or 3 (RGB). */
md_status md_io_png_write(const char *path, int w, int h, int channels, int bit_depth,
                          const uint8_t *rows, md_error *err);

md_status md_io_jpeg_decode_rgb8(const char *path, const uint8_t *data, size_t size, int *w,
                                 int *h, uint8_t **pixels, md_error *err);

md_status md_io_webp_decode_rgb8(const char *path, const uint8_t *data, size_t size, int *w,
                                 int *h, uint8_t **pixels, md_error *err);
/* *orientation: the TIFF orientation tag (EXIF numbering), not yet applied. */
md_status md_io_tiff_decode_rgb8(const char *path, const uint8_t *data, size_t size, int *w,
                                 int *h, uint8_t **pixels, int *orientation, md_error *err);
md_status md_io_bmp_decode_rgb8(const char *path, const uint8_t *data, size_t size, int *w,
                                int *h, uint8_t **pixels, md_error *err);
/* The EXIF orientation (1..8) of a JPEG file's bytes; 1 when it has none. */
int md_io_jpeg_orientation(const uint8_t *data, size_t size);

/* Parsed .npy file: a view into the file bytes. */
typedef enum { MD_NPY_FLOAT, MD_NPY_INT, MD_NPY_UINT, MD_NPY_BOOL } md_npy_kind;

typedef struct {
    int ndim;
    int64_t shape[8];
    size_t numel;
    md_npy_kind kind;
    int itemsize;      /* bytes per element */
    int big_endian;    /* 1 for '>' */
    const uint8_t *data; /* numel*itemsize bytes */
} md_npy_view;

md_status md_io_npy_parse(const char *path, const uint8_t *data, size_t size, md_npy_view *v,
                          md_error *err);
/* Element i of the view as double. */
double md_io_npy_get(const md_npy_view *v, size_t i);

/* double to float without undefined behaviour: out-of-range values saturate
 * to +-inf, NaN stays NaN. */
static inline float md_io_to_float(double x)
{
    if (x > 3.4028234663852886e38)
        return (float)INFINITY;
    if (x < -3.4028234663852886e38)
        return -(float)INFINITY;
    return (float)x;
}

/* Little-endian float32 encoding, independent of the host byte order. */
static inline void md_io_put_f32le(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static inline float md_io_get_f32(const uint8_t *p, int big_endian)
{
    uint32_t u = big_endian ? ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                               (uint32_t)p[2] << 8 | (uint32_t)p[3])
                            : ((uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
                               (uint32_t)p[1] << 8 | (uint32_t)p[0]);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
