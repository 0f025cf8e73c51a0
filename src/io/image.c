/* md_image_load / md_image_save_png / md_image_free. */
#include "io_internal.h"

#include <stdlib.h>

static md_status pnm_to_rgb(const char *path, const uint8_t *data, size_t size, md_image *out,
                            md_error *err)
{
    md_pnm_header h;
    md_status st = md_io_pnm_parse(path, data, size, &h, err);
    if (st != MD_OK)
        return st;
    size_t n = (size_t)h.width * (size_t)h.height, bytes;
    if (!md_mul_size(n, 3, &bytes))
        return md_fail(err, MD_ERR_NOMEM, "%s: image too large for this machine", path);
    uint8_t *px = md_malloc(bytes, path, err);
    if (!px)
        return MD_ERR_NOMEM;
    const uint8_t *s = data + h.data_offset;
    size_t samples = n * (size_t)h.channels;
    uint32_t maxval = h.maxval;
    for (size_t i = 0; i < samples; i++) {
        uint32_t v = h.bytes_per_sample == 2 ? (uint32_t)s[2 * i] << 8 | s[2 * i + 1] : s[i];
        if (v > maxval)
            v = maxval; /* out-of-range samples saturate */
        uint8_t b = (uint8_t)(maxval == 255 ? v : (v * 255 + maxval / 2) / maxval);
        if (h.channels == 3) {
            px[i] = b;
        } else {
            px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = b;
        }
    }
    out->width = h.width;
    out->height = h.height;
    out->pixels = px;
    return MD_OK;
}

/* What the file holds, from its header bytes (PNG's IHDR, the PNM header). */
static void describe_png(const uint8_t *d, size_t n, md_image_info *info)
{
    info->format = "png";
    if (n < 26)
        return;
    int depth = d[24], type = d[25];
    info->bit_depth = depth;
    info->channels = type == 0 ? 1 : type == 4 ? 2 : type == 6 ? 4 : 3;
}

md_status md_image_load_info(const char *path, md_image *out, md_image_info *info,
                             md_error *err)
{
    md_image_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    info->format = "";
    info->channels = 3;
    info->bit_depth = 8;
    info->orientation = 1;
    if (!out)
        return md_fail(err, MD_ERR_ARG, "md_image_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path)
        return md_fail(err, MD_ERR_ARG, "md_image_load: path is NULL");
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, MD_IO_MAX_FILE_BYTES, &data, &size, err);
    if (st != MD_OK)
        return st;
    int orientation = 1;
    switch (md_io_sniff(data, size)) {
    case MD_FILE_PNG:
        describe_png(data, size, info);
        st = md_io_png_decode_rgb8(path, data, size, &out->width, &out->height, &out->pixels, err);
        break;
    case MD_FILE_JPEG:
        info->format = "jpeg";
        st = md_io_jpeg_decode_rgb8(path, data, size, &out->width, &out->height, &out->pixels,
                                    err);
        orientation = md_io_jpeg_orientation(data, size);
        break;
    case MD_FILE_PGM:
    case MD_FILE_PPM: {
        md_pnm_header h;
        if (md_io_pnm_parse(path, data, size, &h, NULL) == MD_OK) {
            info->channels = h.channels;
            info->bit_depth = h.bytes_per_sample * 8;
        }
        info->format = h.channels == 1 ? "pgm" : "ppm";
        st = pnm_to_rgb(path, data, size, out, err);
        break;
    }
    case MD_FILE_WEBP:
        info->format = "webp";
        st = md_io_webp_decode_rgb8(path, data, size, &out->width, &out->height, &out->pixels,
                                    err);
        break;
    case MD_FILE_TIFF:
        info->format = "tiff";
        st = md_io_tiff_decode_rgb8(path, data, size, &out->width, &out->height, &out->pixels,
                                    &orientation, err);
        break;
    case MD_FILE_BMP:
        info->format = "bmp";
        st = md_io_bmp_decode_rgb8(path, data, size, &out->width, &out->height, &out->pixels,
                                   err);
        break;
    case MD_FILE_PNM_ASCII:
        st = md_fail(err, MD_ERR_UNSUPPORTED,
                     "%s: ASCII/bitmap Netpbm (P%c) is not supported; use binary P5/P6", path,
                     data[1]);
        break;
    default:
        st = md_fail(err, MD_ERR_FORMAT,
                     "%s: not a PNG, JPEG, WebP, TIFF, BMP, PPM or PGM image%s", path,
                     size == 0 ? " (empty file)" : "");
        break;
    }
    free(data);
    info->width0 = out->width;
    info->height0 = out->height;
    if (st == MD_OK && orientation != 1) {
        st = md_image_orient(out, orientation, err);
        info->orientation = orientation;
    }
    if (st != MD_OK)
        md_image_free(out);
    return st;
}

md_status md_image_load(const char *path, md_image *out, md_error *err)
{
    return md_image_load_info(path, out, NULL, err);
}

md_status md_image_save_png(const char *path, const md_image *img, md_error *err)
{
    if (!path || !img || !img->pixels)
        return md_fail(err, MD_ERR_ARG, "md_image_save_png: NULL path or image");
    if (img->width <= 0 || img->height <= 0 || img->width > MD_MAX_DIM ||
        img->height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "%s: cannot save an image of size %dx%d", path,
                       img->width, img->height);
    return md_io_png_write(path, img->width, img->height, 3, 8, img->pixels, err);
}

void md_image_free(md_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    img->pixels = NULL;
    img->width = img->height = 0;
}
