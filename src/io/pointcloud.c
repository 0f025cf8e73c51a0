/* Back-projection of a depth map to a binary little-endian PLY point cloud. */
#include "io_internal.h"

#include <math.h>
#include <stdlib.h>

md_intrinsics md_intrinsics_nyu(void)
{
    md_intrinsics k = {518.8579, 519.4696, 325.5824, 253.7362};
    return k;
}

static int keep(const md_depth *d, size_t i, float max_depth)
{
    return md_depth_valid_at(d, i) && (max_depth <= 0.0f || d->data[i] <= max_depth);
}

md_status md_pointcloud_save_ply(const char *path, const md_depth *depth, const md_image *rgb,
                                 const md_intrinsics *K, int stride, float max_depth,
                                 md_error *err)
{
    if (!path || !depth || !depth->data || !K)
        return md_fail(err, MD_ERR_ARG, "md_pointcloud_save_ply: NULL argument");
    if (depth->width <= 0 || depth->height <= 0)
        return md_fail(err, MD_ERR_ARG, "%s: depth map has size %dx%d", path, depth->width,
                       depth->height);
    if (stride < 1)
        return md_fail(err, MD_ERR_ARG, "%s: stride must be >= 1, got %d", path, stride);
    if (!(isfinite(K->fx) && isfinite(K->fy) && isfinite(K->cx) && isfinite(K->cy)) ||
        K->fx == 0.0 || K->fy == 0.0)
        return md_fail(err, MD_ERR_ARG, "%s: invalid intrinsics (fx %g, fy %g, cx %g, cy %g)",
                       path, K->fx, K->fy, K->cx, K->cy);
    if (isnan(max_depth))
        return md_fail(err, MD_ERR_ARG, "%s: max_depth is NaN", path);
    if (rgb && (!rgb->pixels || rgb->width != depth->width || rgb->height != depth->height))
        return md_fail(err, MD_ERR_ARG, "%s: colour image %dx%d does not match depth %dx%d", path,
                       rgb->width, rgb->height, depth->width, depth->height);

    size_t w = (size_t)depth->width, count = 0;
    for (size_t v = 0; v < (size_t)depth->height; v += (size_t)stride)
        for (size_t u = 0; u < w; u += (size_t)stride)
            count += (size_t)keep(depth, v * w + u, max_depth);

    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    fprintf(af.fp,
            "ply\nformat binary_little_endian 1.0\ncomment metricdepth %s\n"
            "comment intrinsics fx %.6f fy %.6f cx %.6f cy %.6f (pixel centres at integers)\n"
            "comment image %dx%d, stride %d, camera frame x right y down z forward, metres\n"
            "element vertex %zu\nproperty float x\nproperty float y\nproperty float z\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n",
            MD_VERSION_STRING, K->fx, K->fy, K->cx, K->cy, depth->width, depth->height, stride,
            count);
    uint8_t rec[15];
    for (size_t v = 0; v < (size_t)depth->height; v += (size_t)stride) {
        for (size_t u = 0; u < w; u += (size_t)stride) {
            size_t i = v * w + u;
            if (!keep(depth, i, max_depth))
                continue;
            double z = depth->data[i];
            md_io_put_f32le(rec, md_io_to_float(((double)u - K->cx) * z / K->fx));
            md_io_put_f32le(rec + 4, md_io_to_float(((double)v - K->cy) * z / K->fy));
            md_io_put_f32le(rec + 8, (float)z);
            if (rgb) {
                memcpy(rec + 12, rgb->pixels + 3 * i, 3);
            } else {
                rec[12] = rec[13] = rec[14] = 128;
            }
            fwrite(rec, 1, sizeof rec, af.fp);
        }
    }
    return md_atomic_commit(&af, err);
}
