/* Images and depth maps in a caller's memory: camera frames in, depth out,
 * without files. */
#include "io_internal.h"

#include <stdlib.h>
#include <string.h>

md_status md_image_from_pixels(const uint8_t *pixels, int width, int height, size_t stride,
                               md_pixel_format format, md_image *out, md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "image from pixels: NULL output");
    memset(out, 0, sizeof *out);
    static const int bytes[] = {3, 3, 4, 4, 1};
    if ((unsigned)format > MD_PIXELS_GRAY)
        return md_fail(err, MD_ERR_ARG, "image from pixels: unknown pixel format %d", (int)format);
    if (!pixels || width <= 0 || height <= 0 || width > MD_MAX_DIM || height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "image from pixels: no pixels or size %dx%d", width,
                       height);
    int bpp = bytes[format];
    if (stride < (size_t)width * (size_t)bpp)
        return md_fail(err, MD_ERR_ARG, "image from pixels: stride %zu < %d x %d bytes", stride,
                       width, bpp);
    out->pixels = md_malloc((size_t)width * (size_t)height * 3, "image", err);
    if (!out->pixels)
        return MD_ERR_NOMEM;
    out->width = width;
    out->height = height;
    for (int y = 0; y < height; y++) {
        const uint8_t *src = pixels + (size_t)y * stride;
        uint8_t *dst = out->pixels + (size_t)y * (size_t)width * 3;
        for (int x = 0; x < width; x++, src += bpp, dst += 3) {
            switch (format) {
            case MD_PIXELS_RGB:
            case MD_PIXELS_RGBA:
                dst[0] = src[0], dst[1] = src[1], dst[2] = src[2];
                break;
            case MD_PIXELS_BGR:
            case MD_PIXELS_BGRA:
                dst[0] = src[2], dst[1] = src[1], dst[2] = src[0];
                break;
            case MD_PIXELS_GRAY:
                dst[0] = dst[1] = dst[2] = src[0];
                break;
            }
        }
    }
    return MD_OK;
}

md_status md_depth_export(const md_depth *depth, float *dst, size_t stride, float invalid_value,
                          md_error *err)
{
    if (!depth || !depth->data || !dst)
        return md_fail(err, MD_ERR_ARG, "depth export: NULL argument");
    if (stride < (size_t)depth->width * sizeof(float) || stride % sizeof(float))
        return md_fail(err, MD_ERR_ARG, "depth export: stride %zu is not a multiple of 4 >= %d x 4",
                       stride, depth->width);
    for (int y = 0; y < depth->height; y++) {
        float *row = dst + (size_t)y * (stride / sizeof(float));
        for (int x = 0; x < depth->width; x++) {
            size_t i = (size_t)y * (size_t)depth->width + (size_t)x;
            row[x] = md_depth_valid_at(depth, i) ? depth->data[i] : invalid_value;
        }
    }
    return MD_OK;
}
