/* Point clouds seen from a virtual camera: back-projection, projection,
 * z-buffered splats, and the seed's Fig. 3 (predicted clouds over ground truth). */
#include "base/base.h"
#include "report/figures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIG_PI 3.14159265358979323846

void md_cloud_centroid(const md_cloud *c, double out[3])
{
    double s[3] = {0, 0, 0};
    for (size_t i = 0; i < c->n; i++)
        for (int a = 0; a < 3; a++)
            s[a] += c->xyz[3 * i + a];
    for (int a = 0; a < 3; a++)
        out[a] = c->n ? s[a] / (double)c->n : 0.0;
}

/* The view's axes in the cloud's frame: right, down, forward (columns of
 * Ry(yaw)·Rx(pitch)). */
static void view_axes(const md_view *v, double right[3], double down[3], double fwd[3])
{
    double a = v->yaw_deg * FIG_PI / 180.0, b = v->pitch_deg * FIG_PI / 180.0;
    double ca = cos(a), sa = sin(a), cb = cos(b), sb = sin(b);
    /* Rx(b): x -> (1,0,0); y -> (0,cb,-sb); z -> (0,sb,cb); then Ry(a) */
    right[0] = ca, right[1] = 0, right[2] = -sa;
    down[0] = -sa * sb, down[1] = cb, down[2] = -ca * sb;
    fwd[0] = sa * cb, fwd[1] = sb, fwd[2] = ca * cb;
}

int md_view_project(const md_view *view, const double p[3], double *u, double *v, double *z)
{
    double r[3], d[3], f[3];
    view_axes(view, r, d, f);
    double q[3];
    for (int a = 0; a < 3; a++)
        q[a] = p[a] - (view->center[a] - view->distance * f[a]);
    double xc = q[0] * r[0] + q[1] * r[1] + q[2] * r[2];
    double yc = q[0] * d[0] + q[1] * d[1] + q[2] * d[2];
    double zc = q[0] * f[0] + q[1] * f[1] + q[2] * f[2];
    *z = zc;
    if (!(zc > 1e-6))
        return 0;
    *u = view->focal * xc / zc + 0.5 * view->width + view->shift_u;
    *v = view->focal * yc / zc + 0.5 * view->height + view->shift_v;
    return 1;
}

md_status md_raster_init(md_raster *r, int width, int height, const uint8_t background[3],
                         md_error *err)
{
    memset(r, 0, sizeof *r);
    if (width <= 0 || height <= 0 || width > MD_MAX_DIM || height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "raster: invalid size %dx%d", width, height);
    size_t n = (size_t)width * (size_t)height;
    r->rgb = md_malloc(n * 3, "raster", err);
    r->z = md_malloc(n * sizeof(float), "z-buffer", err);
    if (!r->rgb || !r->z) {
        md_raster_free(r);
        return MD_ERR_NOMEM; /* md_malloc set err; never read it back: it may be NULL */
    }
    r->width = width;
    r->height = height;
    for (size_t i = 0; i < n; i++) {
        memcpy(r->rgb + 3 * i, background, 3);
        r->z[i] = INFINITY;
    }
    return MD_OK;
}

void md_raster_free(md_raster *r)
{
    if (!r)
        return;
    free(r->rgb);
    free(r->z);
    memset(r, 0, sizeof *r);
}

void md_raster_splat(md_raster *r, const md_view *view, const md_cloud *c, const uint8_t color[3],
                     int radius)
{
    static const uint8_t grey[3] = {128, 128, 128};
    for (size_t i = 0; i < c->n; i++) {
        double p[3] = {c->xyz[3 * i], c->xyz[3 * i + 1], c->xyz[3 * i + 2]}, u, v, z;
        if (!md_view_project(view, p, &u, &v, &z) || !(fabs(u) < 1e7) || !(fabs(v) < 1e7))
            continue;
        const uint8_t *col = color ? color : c->rgb ? c->rgb + 3 * i : grey;
        int px = (int)floor(u), py = (int)floor(v);
        for (int y = py - radius; y <= py + radius; y++) {
            if (y < 0 || y >= r->height)
                continue;
            for (int x = px - radius; x <= px + radius; x++) {
                if (x < 0 || x >= r->width)
                    continue;
                size_t k = (size_t)y * (size_t)r->width + (size_t)x;
                if ((float)z <= r->z[k]) { /* ties: the later cloud wins */
                    r->z[k] = (float)z;
                    memcpy(r->rgb + 3 * k, col, 3);
                }
            }
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

md_view md_view_for_cloud(const md_cloud *gt, const md_intrinsics *K, int image_width,
                          int width, int height, double yaw_deg, double pitch_deg)
{
    md_view v = {0};
    v.width = width;
    v.height = height;
    v.yaw_deg = yaw_deg;
    v.pitch_deg = pitch_deg;
    md_cloud_centroid(gt, v.center);
    double d = sqrt(v.center[0] * v.center[0] + v.center[1] * v.center[1] +
                    v.center[2] * v.center[2]);
    v.distance = d > 0 ? 1.6 * d : 3.0;
    v.focal = K && image_width > 0 ? K->fx * (double)width / (double)image_width : width;
    /* frame the ground truth: 1st..99th percentile of its projection along
     * each axis fills the middle 90 % of the panel (the principal point moves
     * to centre it); keep the camera's focal when that is degenerate */
    size_t n = gt->n, step = n > 20000 ? n / 20000 : 1, k = 0;
    double *ax = n ? malloc(2 * (n / step + 1) * sizeof *ax) : NULL;
    if (!ax)
        return v;
    double *ay = ax + n / step + 1;
    md_view unit = v;
    unit.focal = 1.0;
    unit.width = unit.height = 0;
    for (size_t i = 0; i < n; i += step) {
        double p[3] = {gt->xyz[3 * i], gt->xyz[3 * i + 1], gt->xyz[3 * i + 2]}, u, w, z;
        if (md_view_project(&unit, p, &u, &w, &z)) {
            ax[k] = u;
            ay[k] = w;
            k++;
        }
    }
    if (k) {
        qsort(ax, k, sizeof *ax, cmp_double);
        qsort(ay, k, sizeof *ay, cmp_double);
        size_t lo = (size_t)(0.01 * (double)(k - 1)), hi = (size_t)(0.99 * (double)(k - 1));
        double sx = ax[hi] - ax[lo], sy = ay[hi] - ay[lo];
        double f = INFINITY;
        if (sx > 1e-9)
            f = fmin(f, 0.9 * width / sx);
        if (sy > 1e-9)
            f = fmin(f, 0.9 * height / sy);
        if (isfinite(f)) {
            v.focal = f;
            v.shift_u = -f * 0.5 * (ax[lo] + ax[hi]);
            v.shift_v = -f * 0.5 * (ay[lo] + ay[hi]);
        }
    }
    free(ax);
    return v;
}

#define CLOUD_TITLE_H 34

md_status md_fig_point_clouds(const char *path, const md_cloud *gt, const md_cloud *preds,
                              const uint8_t (*colors)[3], const char *const *titles, int n_panels,
                              const md_view *view, md_error *err)
{
    if (!path || !gt || !preds || !colors || n_panels < 1 || n_panels > 8 || !view)
        return md_fail(err, MD_ERR_ARG, "md_fig_point_clouds: invalid argument");
    int pw = view->width, ph = view->height, gap = 10;
    int W = n_panels * pw + (n_panels + 1) * gap, H = ph + CLOUD_TITLE_H + gap;
    cairo_surface_t *surf;
    cairo_t *cr;
    md_status st = md_fig_begin(W, H, path, &surf, &cr, err);
    if (st != MD_OK)
        return st;
    cairo_set_font_size(cr, 15);
    static const uint8_t bg[3] = {255, 255, 255}, grey[3] = {175, 175, 175};
    for (int i = 0; i < n_panels && st == MD_OK; i++) {
        md_raster r;
        st = md_raster_init(&r, pw, ph, bg, err);
        if (st != MD_OK)
            break;
        md_raster_splat(&r, view, gt, grey, 1);
        md_raster_splat(&r, view, &preds[i], colors[i], 1);
        cairo_surface_flush(surf);
        unsigned char *data = cairo_image_surface_get_data(surf);
        int stride = cairo_image_surface_get_stride(surf);
        int x0 = gap + i * (pw + gap), y0 = CLOUD_TITLE_H;
        for (int y = 0; y < ph; y++) {
            uint32_t *row = (uint32_t *)(void *)(data + (size_t)(y0 + y) * (size_t)stride) + x0;
            for (int x = 0; x < pw; x++) {
                const uint8_t *c = r.rgb + 3 * ((size_t)y * (size_t)pw + (size_t)x);
                row[x] = (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
            }
        }
        cairo_surface_mark_dirty(surf);
        md_raster_free(&r);
        cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
        cairo_set_line_width(cr, 1.0);
        cairo_rectangle(cr, x0 - 0.5, y0 - 0.5, pw + 1, ph + 1);
        cairo_stroke(cr);
        if (titles && titles[i]) {
            cairo_text_extents_t te;
            cairo_text_extents(cr, titles[i], &te);
            cairo_set_source_rgb(cr, colors[i][0] / 255.0 * 0.8, colors[i][1] / 255.0 * 0.8,
                                 colors[i][2] / 255.0 * 0.8);
            cairo_move_to(cr, x0 + 0.5 * pw - te.width / 2 - te.x_bearing, 23);
            cairo_show_text(cr, titles[i]);
        }
    }
    return md_fig_finish(surf, cr, path, st, err);
}
