/* Camera intrinsics for back-projection: a documented default when the user
 * gives none, parsing, and rescaling to a resized image.
 *
 * Pixel convention (the PLY writer's): pixel (u, v) has its centre at integer
 * coordinates, so the image spans [-0.5, W - 0.5] and its centre is
 * ((W - 1) / 2, (H - 1) / 2). Resizing by s maps u + 0.5 to (u + 0.5) s, so
 * fx' = s fx and cx' = (cx + 0.5) s - 0.5. */
#include "io_internal.h"

#include <errno.h>
#include <stdlib.h>

#define MD_PI 3.14159265358979323846

md_intrinsics md_intrinsics_from_fov(int width, int height, double fov_deg)
{
    md_intrinsics K = {0, 0, 0, 0};
    if (width <= 0 || height <= 0 || !(fov_deg > 0.0 && fov_deg < 180.0))
        return K;
    /* The field of view spans the longer side edge to edge: L pixels. */
    double L = width > height ? width : height;
    double f = 0.5 * L / tan(0.5 * fov_deg * MD_PI / 180.0);
    K.fx = K.fy = f;
    K.cx = 0.5 * (width - 1);
    K.cy = 0.5 * (height - 1);
    return K;
}

md_intrinsics md_intrinsics_resize(const md_intrinsics *K, int from_w, int from_h, int to_w,
                                   int to_h)
{
    md_intrinsics r = *K;
    if (from_w <= 0 || from_h <= 0 || to_w <= 0 || to_h <= 0)
        return r;
    double sx = (double)to_w / from_w, sy = (double)to_h / from_h;
    r.fx = K->fx * sx;
    r.fy = K->fy * sy;
    r.cx = (K->cx + 0.5) * sx - 0.5;
    r.cy = (K->cy + 0.5) * sy - 0.5;
    return r;
}

double md_intrinsics_fov(const md_intrinsics *K, int width, int height)
{
    if (!K || !(K->fx > 0) || !(K->fy > 0) || width <= 0 || height <= 0)
        return 0.0;
    double h = 2.0 * atan(0.5 * width / K->fx), v = 2.0 * atan(0.5 * height / K->fy);
    return (width >= height ? h : v) * 180.0 / MD_PI;
}

/* Numbers separated by spaces, commas, semicolons or line breaks; '#'
 * comments to the end of the line; brackets ignored (a pasted [[...]] matrix). */
static int read_numbers(const char *text, double *v, int cap, const char **bad)
{
    int n = 0;
    const char *p = text;
    *bad = NULL;
    while (*p) {
        if (*p == '#') {
            while (*p && *p != '\n')
                p++;
            continue;
        }
        if (strchr(" \t\r\n,;[]", *p)) {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno != 0 || !isfinite(x)) {
            *bad = p;
            return -1;
        }
        if (n == cap)
            return cap + 1;
        v[n++] = x;
        p = end;
    }
    return n;
}

md_status md_intrinsics_parse(const char *text, const char *what, md_intrinsics *K, int *width,
                              int *height, md_error *err)
{
    double v[12];
    const char *bad = NULL;
    if (!what)
        what = "intrinsics";
    int n = text ? read_numbers(text, v, 11, &bad) : -1;
    if (width)
        *width = 0;
    if (height)
        *height = 0;
    if (n < 0)
        return md_fail(err, MD_ERR_FORMAT, "%s: not a number: '%.20s'", what, bad ? bad : "");
    double fx, fy, cx, cy;
    int extra;
    if (n == 4 || n == 6) {
        fx = v[0], fy = v[1], cx = v[2], cy = v[3];
        extra = 4;
    } else if (n == 9 || n == 11) {
        /* a 3x3 camera matrix, row-major: fx 0 cx / 0 fy cy / 0 0 1 */
        if (v[1] != 0.0 || v[3] != 0.0 || v[6] != 0.0 || v[7] != 0.0 || v[8] != 1.0)
            return md_fail(err, MD_ERR_FORMAT,
                           "%s: a 3x3 matrix must read fx 0 cx, 0 fy cy, 0 0 1 (skew and "
                           "projective rows are not supported)",
                           what);
        fx = v[0], cx = v[2], fy = v[4], cy = v[5];
        extra = 9;
    } else {
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: want fx fy cx cy [width height] or a 3x3 matrix [width height], "
                       "got %d numbers",
                       what, n > 11 ? 12 : n);
    }
    if (!(fx > 0.0) || !(fy > 0.0))
        return md_fail(err, MD_ERR_FORMAT, "%s: focal lengths must be positive (fx %g, fy %g)",
                       what, fx, fy);
    if (n == extra + 2) {
        double w = v[extra], h = v[extra + 1];
        if (!(w >= 1 && w <= MD_MAX_DIM && h >= 1 && h <= MD_MAX_DIM) || w != floor(w) ||
            h != floor(h))
            return md_fail(err, MD_ERR_FORMAT, "%s: image size %g x %g is not a size", what, w, h);
        if (width)
            *width = (int)w;
        if (height)
            *height = (int)h;
    }
    K->fx = fx;
    K->fy = fy;
    K->cx = cx;
    K->cy = cy;
    return MD_OK;
}

md_status md_intrinsics_load(const char *path, md_intrinsics *K, int *width, int *height,
                             md_error *err)
{
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, 1 << 16, &data, &size, err);
    if (st != MD_OK)
        return st;
    if (memchr(data, '\0', size))
        st = md_fail(err, MD_ERR_FORMAT, "%s: not a text file of intrinsics", path);
    else
        st = md_intrinsics_parse((const char *)data, path, K, width, height, err);
    free(data);
    return st;
}
