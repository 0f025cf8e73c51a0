/* Point clouds in memory: the back-projection every cloud writer and figure
 * shares. Pixel (u, v) at depth z maps to x = (u - cx) z / fx,
 * y = (v - cy) z / fy, z (camera frame: x right, y down, z forward). */
#include "io_internal.h"

#include <math.h>
#include <stdlib.h>

static int keep(const md_depth *d, size_t i, float max_depth)
{
    return md_depth_valid_at(d, i) && (max_depth <= 0.0f || d->data[i] <= max_depth);
}

md_status md_pointcloud_from_depth(const md_depth *depth, const md_image *rgb,
                                   const md_intrinsics *K, int stride, float max_depth,
                                   md_pointcloud *out, md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "point cloud: NULL argument");
    memset(out, 0, sizeof *out);
    if (!depth || !depth->data || !K)
        return md_fail(err, MD_ERR_ARG, "point cloud: NULL argument");
    if (depth->width <= 0 || depth->height <= 0)
        return md_fail(err, MD_ERR_ARG, "point cloud: depth map has size %dx%d", depth->width,
                       depth->height);
    if (stride < 1)
        return md_fail(err, MD_ERR_ARG, "point cloud: stride must be >= 1, got %d", stride);
    if (!(isfinite(K->fx) && isfinite(K->fy) && isfinite(K->cx) && isfinite(K->cy)) ||
        K->fx == 0.0 || K->fy == 0.0)
        return md_fail(err, MD_ERR_ARG, "point cloud: invalid intrinsics (fx %g, fy %g, cx %g, cy %g)",
                       K->fx, K->fy, K->cx, K->cy);
    if (isnan(max_depth))
        return md_fail(err, MD_ERR_ARG, "point cloud: max_depth is NaN");
    if (rgb && (!rgb->pixels || rgb->width != depth->width || rgb->height != depth->height))
        return md_fail(err, MD_ERR_DATA, "point cloud: colour image %dx%d does not match depth %dx%d",
                       rgb->width, rgb->height, depth->width, depth->height);
    size_t w = (size_t)depth->width, n = 0;
    for (size_t v = 0; v < (size_t)depth->height; v += (size_t)stride)
        for (size_t u = 0; u < w; u += (size_t)stride)
            n += (size_t)keep(depth, v * w + u, max_depth);
    if (n == 0)
        return MD_OK;
    out->xyz = md_malloc(n * 3 * sizeof(float), "point cloud", err);
    if (!out->xyz)
        return MD_ERR_NOMEM;
    if (rgb) {
        out->rgb = md_malloc(n * 3, "point cloud colours", err);
        if (!out->rgb) {
            md_pointcloud_free(out);
            return MD_ERR_NOMEM;
        }
    }
    size_t k = 0;
    for (size_t v = 0; v < (size_t)depth->height; v += (size_t)stride) {
        for (size_t u = 0; u < w; u += (size_t)stride) {
            size_t i = v * w + u;
            if (!keep(depth, i, max_depth))
                continue;
            double z = depth->data[i];
            out->xyz[3 * k] = md_io_to_float(((double)u - K->cx) * z / K->fx);
            out->xyz[3 * k + 1] = md_io_to_float(((double)v - K->cy) * z / K->fy);
            out->xyz[3 * k + 2] = (float)z;
            if (rgb)
                memcpy(out->rgb + 3 * k, rgb->pixels + 3 * i, 3);
            k++;
        }
    }
    out->n = k;
    return MD_OK;
}

void md_pointcloud_free(md_pointcloud *c)
{
    if (!c)
        return;
    free(c->xyz);
    free(c->rgb);
    memset(c, 0, sizeof *c);
}
