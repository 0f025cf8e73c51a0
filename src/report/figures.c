/* Report figures drawn with cairo: colour bars, the depth panel (the seed's
 * Fig. 1 with an error map) and the predicted-vs-oracle log-scale scatter. */
#include "base/base.h"
#include "report/figures.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIG_PI 3.14159265358979323846

static cairo_status_t write_stream(void *closure, const unsigned char *data, unsigned int length)
{
    FILE *fp = closure;
    return fwrite(data, 1, length, fp) == length ? CAIRO_STATUS_SUCCESS
                                                 : CAIRO_STATUS_WRITE_ERROR;
}

md_status md_fig_write_surface(cairo_surface_t *surf, const char *path, md_error *err)
{
    cairo_surface_flush(surf);
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    errno = 0;
    if (cairo_surface_write_to_png_stream(surf, write_stream, af.fp) != CAIRO_STATUS_SUCCESS) {
        int e = errno; /* the failed fwrite's reason (a full disk: ENOSPC) */
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: cannot write the PNG%s%s", path, e ? ": " : "",
                       e ? strerror(e) : "");
    }
    return md_atomic_commit(&af, err);
}

md_status md_fig_begin(int width, int height, const char *path, cairo_surface_t **surf,
                       cairo_t **cr, md_error *err)
{
    *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    if (cairo_surface_status(*surf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(*surf);
        *surf = NULL;
        *cr = NULL;
        return md_fail(err, MD_ERR_NOMEM, "%s: cannot create a %dx%d figure", path, width, height);
    }
    *cr = cairo_create(*surf);
    cairo_set_source_rgb(*cr, 1, 1, 1);
    cairo_paint(*cr);
    cairo_select_font_face(*cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return MD_OK;
}

md_status md_fig_finish(cairo_surface_t *surf, cairo_t *cr, const char *path, md_status st,
                        md_error *err)
{
    if (st == MD_OK && cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        st = md_fail(err, MD_ERR_NOMEM, "%s: drawing failed: %s", path,
                     cairo_status_to_string(cairo_status(cr)));
    cairo_destroy(cr);
    if (st == MD_OK)
        st = md_fig_write_surface(surf, path, err);
    cairo_surface_destroy(surf);
    return st;
}

void md_fig_text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay)
{
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    cairo_move_to(cr, x - te.width * ax - te.x_bearing, y - te.height * ay - te.y_bearing);
    cairo_show_text(cr, s);
}

double md_fig_nice_step(double span, int n)
{
    if (!(span > 0))
        return 1.0;
    double raw = span / n, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

void md_fig_tick_label(char *buf, size_t size, double v, double step)
{
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-6)
        v = 0;
    snprintf(buf, size, "%.*f", dec, v);
}

void md_fig_draw_colorbar(cairo_t *cr, int x, int y, int w, int h, md_colormap cmap, double vmin,
                          double vmax, const char *label)
{
    if (w < 2 || h < 1)
        return;
    cairo_surface_t *bar = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(bar) == CAIRO_STATUS_SUCCESS) {
        cairo_surface_flush(bar);
        unsigned char *data = cairo_image_surface_get_data(bar);
        int stride = cairo_image_surface_get_stride(bar);
        for (int i = 0; i < w; i++) {
            uint8_t c[3];
            md_colormap_lookup(cmap, (float)i / (float)(w - 1), c);
            uint32_t px = (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
            for (int j = 0; j < h; j++)
                ((uint32_t *)(void *)(data + (size_t)j * (size_t)stride))[i] = px;
        }
        cairo_surface_mark_dirty(bar);
        cairo_save(cr);
        cairo_set_source_surface(cr, bar, x, y);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
        cairo_rectangle(cr, x, y, w, h);
        cairo_fill(cr);
        cairo_restore(cr);
    }
    cairo_surface_destroy(bar);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.0);
    cairo_set_font_size(cr, 11);
    double step = md_fig_nice_step(vmax - vmin, 5);
    char buf[32];
    for (double t = ceil(vmin / step - 1e-9) * step; t <= vmax + step * 1e-9; t += step) {
        double px = x + (t - vmin) / (vmax - vmin) * (w - 1) + 0.5;
        cairo_move_to(cr, px, y + h);
        cairo_line_to(cr, px, y + h + 5);
        cairo_stroke(cr);
        md_fig_tick_label(buf, sizeof buf, t, step);
        md_fig_text_at(cr, buf, px, y + h + 7, 0.5, 0.0);
    }
    if (label) {
        cairo_set_font_size(cr, 12);
        md_fig_text_at(cr, label, x + 0.5 * w, y + h + 22, 0.5, 0.0);
    }
}

/* ------------------------------------------------------------- depth panel */

#define PANEL_W 256
#define PANEL_H 192
#define PANEL_GAP 8
#define PANEL_TOP 58
#define PANEL_BAR_H 14

static uint32_t pack(const uint8_t c[3])
{
    return (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
}

/* Writes a PANEL_W x PANEL_H tile at (x0, y0) of the surface data: nearest
 * sampling of the source (w x h); value(i) < 0 means invalid (black). */
typedef struct {
    const md_image *rgb;
    const md_depth *depth; /* depth tile */
    const md_depth *gt;    /* error tile: |depth − gt| / gt */
    md_colormap cmap;
    double vmin, vmax;
} tile_src;

static void draw_tile(unsigned char *data, int stride, int x0, int y0, const tile_src *s)
{
    int w = s->rgb ? s->rgb->width : s->depth->width, h = s->rgb ? s->rgb->height : s->depth->height;
    for (int y = 0; y < PANEL_H; y++) {
        int sy = (int)(((double)y + 0.5) * h / PANEL_H);
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)(y0 + y) * (size_t)stride) + x0;
        for (int x = 0; x < PANEL_W; x++) {
            int sx = (int)(((double)x + 0.5) * w / PANEL_W);
            size_t i = (size_t)sy * (size_t)w + (size_t)sx;
            uint8_t c[3] = {0, 0, 0};
            if (s->rgb) {
                memcpy(c, s->rgb->pixels + 3 * i, 3);
            } else if (md_depth_valid_at(s->depth, i) && (!s->gt || md_depth_valid_at(s->gt, i))) {
                double v = s->depth->data[i];
                if (s->gt)
                    v = fabs(v - s->gt->data[i]) / s->gt->data[i];
                md_colormap_lookup(s->cmap, (float)((v - s->vmin) / (s->vmax - s->vmin)), c);
            }
            row[x] = pack(c);
        }
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* 98th percentile of the valid values (every 4th pixel), 0 if none. */
static double high_percentile(const md_depth *d)
{
    size_t n = (size_t)d->width * (size_t)d->height, k = 0;
    float *v = malloc((n / 4 + 1) * sizeof *v);
    if (!v)
        return 0;
    for (size_t i = 0; i < n; i += 4)
        if (md_depth_valid_at(d, i))
            v[k++] = d->data[i];
    double out = 0;
    if (k) {
        qsort(v, k, sizeof *v, cmp_float);
        out = v[(size_t)(0.98 * (double)(k - 1))];
    }
    free(v);
    return out;
}

static int same_size(const md_depth *d, int w, int h)
{
    return d && d->data && d->width == w && d->height == h;
}

md_status md_fig_depth_panel(const char *path, const md_depth_panel *p, md_error *err)
{
    if (!path || !p || !p->rgb || !p->gt || !p->unscaled || !p->oracle)
        return md_fail(err, MD_ERR_ARG, "md_fig_depth_panel: missing input");
    int w = p->rgb->width, h = p->rgb->height;
    if (!same_size(p->gt, w, h) || !same_size(p->unscaled, w, h) || !same_size(p->oracle, w, h) ||
        (p->adaptive && !same_size(p->adaptive, w, h)))
        return md_fail(err, MD_ERR_DATA, "%s: image and depth maps differ in size", path);
    /* shared depth range: 0 .. 1.15 x the ground truth's 98th percentile,
     * rounded up to half a metre */
    double vmax = ceil(high_percentile(p->gt) * 1.15 * 2.0) / 2.0;
    if (!(vmax > 0))
        vmax = 1.0;
    double emax = 0.5;
    int n_tiles = p->adaptive ? 6 : 5;
    int W = n_tiles * PANEL_W + (n_tiles + 1) * PANEL_GAP + PANEL_GAP;
    int H = PANEL_TOP + PANEL_H + 70;
    cairo_surface_t *surf;
    cairo_t *cr;
    md_status st = md_fig_begin(W, H, path, &surf, &cr, err);
    if (st != MD_OK)
        return st;
    cairo_surface_flush(surf);
    unsigned char *data = cairo_image_surface_get_data(surf);
    int stride = cairo_image_surface_get_stride(surf);

    char titles[6][96];
    tile_src src[6];
    memset(src, 0, sizeof src);
    int t = 0;
    src[t].rgb = p->rgb;
    snprintf(titles[t++], sizeof titles[0], "RGB");
    src[t].depth = p->gt;
    snprintf(titles[t++], sizeof titles[0], "ground truth");
    src[t].depth = p->unscaled;
    snprintf(titles[t++], sizeof titles[0], "unscaled  AbsRel %.3f", p->abs_rel_unscaled);
    if (p->adaptive) {
        src[t].depth = p->adaptive;
        snprintf(titles[t++], sizeof titles[0], "adaptive s=%.3f  AbsRel %.3f", p->scale_adaptive,
                 p->abs_rel_adaptive);
    }
    src[t].depth = p->oracle;
    snprintf(titles[t++], sizeof titles[0], "oracle s*=%.3f  AbsRel %.3f", p->scale_oracle,
             p->abs_rel_oracle);
    src[t].depth = p->adaptive ? p->adaptive : p->unscaled;
    src[t].gt = p->gt;
    snprintf(titles[t++], sizeof titles[0], "|%s - gt| / gt", p->adaptive ? "adaptive" : "unscaled");
    for (int i = 0; i < t; i++) {
        src[i].cmap = src[i].gt ? MD_COLORMAP_INFERNO : MD_COLORMAP_TURBO;
        src[i].vmin = 0;
        src[i].vmax = src[i].gt ? emax : vmax;
        int x0 = PANEL_GAP + i * (PANEL_W + PANEL_GAP) + (i == t - 1 ? PANEL_GAP : 0);
        draw_tile(data, stride, x0, PANEL_TOP, &src[i]);
    }
    cairo_surface_mark_dirty(surf);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 15);
    if (p->title)
        md_fig_text_at(cr, p->title, PANEL_GAP, 10, 0.0, 0.0);
    cairo_set_font_size(cr, 12.5);
    for (int i = 0; i < t; i++) {
        int x0 = PANEL_GAP + i * (PANEL_W + PANEL_GAP) + (i == t - 1 ? PANEL_GAP : 0);
        cairo_set_source_rgb(cr, 0, 0, 0);
        md_fig_text_at(cr, titles[i], x0 + 0.5 * PANEL_W, PANEL_TOP - 6, 0.5, 1.0);
    }
    /* depth bar under the ground truth .. oracle tiles, error bar under the last */
    int bx = PANEL_GAP + (PANEL_W + PANEL_GAP) + 20;
    int bw = (t - 2) * (PANEL_W + PANEL_GAP) - PANEL_GAP - 40;
    int by = PANEL_TOP + PANEL_H + 8;
    md_fig_draw_colorbar(cr, bx, by, bw, PANEL_BAR_H, MD_COLORMAP_TURBO, 0, vmax,
                         "depth (m), invalid pixels black");
    int ex = PANEL_GAP + (t - 1) * (PANEL_W + PANEL_GAP) + PANEL_GAP + 16;
    md_fig_draw_colorbar(cr, ex, by, PANEL_W - 32, PANEL_BAR_H, MD_COLORMAP_INFERNO, 0, emax,
                         "relative error (clipped at 0.5)");
    return md_fig_finish(surf, cr, path, st, err);
}

/* ----------------------------------------------------------------- scatter */

void md_scatter_frame_for(const double *x, const double *y, size_t n, md_scatter_frame *f)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            double v = k ? y[i] : x[i];
            if (isfinite(v)) {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
            }
        }
    }
    if (!(lo <= hi))
        lo = hi = 0;
    double pad = hi > lo ? 0.05 * (hi - lo) : 0.1;
    f->lo = lo - pad;
    f->hi = hi + pad;
}

void md_scatter_to_pixel(const md_scatter_frame *f, double x, double y, double *px, double *py)
{
    double pw = MD_SCATTER_W - MD_SCATTER_LEFT - MD_SCATTER_RIGHT;
    double ph = MD_SCATTER_H - MD_SCATTER_TOP - MD_SCATTER_BOTTOM;
    *px = MD_SCATTER_LEFT + (x - f->lo) / (f->hi - f->lo) * pw;
    *py = MD_SCATTER_H - MD_SCATTER_BOTTOM - (y - f->lo) / (f->hi - f->lo) * ph;
}

static const double k_group_rgb[2][3] = {{0.12, 0.47, 0.71}, {0.95, 0.50, 0.05}};

md_status md_fig_scatter(const char *path, const double *oracle_log, const double *pred_log,
                         const int *group, size_t n, const char *title, md_error *err)
{
    if (!path || (n && (!oracle_log || !pred_log)))
        return md_fail(err, MD_ERR_ARG, "md_fig_scatter: invalid argument");
    md_scatter_frame f;
    md_scatter_frame_for(oracle_log, pred_log, n, &f);
    cairo_surface_t *surf;
    cairo_t *cr;
    md_status st = md_fig_begin(MD_SCATTER_W, MD_SCATTER_H, path, &surf, &cr, err);
    if (st != MD_OK)
        return st;
    double xl = MD_SCATTER_LEFT, xr = MD_SCATTER_W - MD_SCATTER_RIGHT;
    double yt = MD_SCATTER_TOP, yb = MD_SCATTER_H - MD_SCATTER_BOTTOM;
    /* grid, ticks and numbers on both axes */
    double step = md_fig_nice_step(f.hi - f.lo, 6);
    char buf[32];
    cairo_set_font_size(cr, 12);
    cairo_set_line_width(cr, 1.0);
    for (double t = ceil(f.lo / step - 1e-9) * step; t <= f.hi + 1e-9 * step; t += step) {
        double px, py;
        md_scatter_to_pixel(&f, t, t, &px, &py);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, px, yt);
        cairo_line_to(cr, px, yb);
        cairo_move_to(cr, xl, py);
        cairo_line_to(cr, xr, py);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, px, yb);
        cairo_line_to(cr, px, yb + 6);
        cairo_move_to(cr, xl - 6, py);
        cairo_line_to(cr, xl, py);
        cairo_stroke(cr);
        md_fig_tick_label(buf, sizeof buf, t, step);
        md_fig_text_at(cr, buf, px, yb + 9, 0.5, 0.0);
        md_fig_text_at(cr, buf, xl - 9, py, 1.0, 0.5);
    }
    cairo_save(cr);
    cairo_rectangle(cr, xl, yt, xr - xl, yb - yt);
    cairo_clip(cr);
    /* identity line */
    double ax, ay, bx, by;
    md_scatter_to_pixel(&f, f.lo, f.lo, &ax, &ay);
    md_scatter_to_pixel(&f, f.hi, f.hi, &bx, &by);
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    double dash[] = {6.0, 4.0};
    cairo_set_dash(cr, dash, 2, 0);
    cairo_set_line_width(cr, 1.2);
    cairo_move_to(cr, ax, ay);
    cairo_line_to(cr, bx, by);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    size_t count[2] = {0, 0};
    for (int g = 0; g < 2; g++) { /* train first, test on top */
        cairo_set_source_rgb(cr, k_group_rgb[g][0], k_group_rgb[g][1], k_group_rgb[g][2]);
        for (size_t i = 0; i < n; i++) {
            int gi = group && group[i] ? 1 : 0;
            if (gi != g || !isfinite(oracle_log[i]) || !isfinite(pred_log[i]))
                continue;
            double px, py;
            md_scatter_to_pixel(&f, oracle_log[i], pred_log[i], &px, &py);
            cairo_arc(cr, px, py, 4.0, 0, 2 * FIG_PI);
            cairo_fill(cr);
            count[g]++;
        }
    }
    cairo_restore(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, xl, yt, xr - xl, yb - yt);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 14);
    md_fig_text_at(cr, "oracle ln s*", 0.5 * (xl + xr), MD_SCATTER_H - 22, 0.5, 0.5);
    cairo_save(cr);
    cairo_translate(cr, 22, 0.5 * (yt + yb));
    cairo_rotate(cr, -FIG_PI / 2);
    md_fig_text_at(cr, "predicted ln s", 0, 0, 0.5, 0.5);
    cairo_restore(cr);
    cairo_set_font_size(cr, 16);
    md_fig_text_at(cr, title ? title : "scale CNN: predicted vs oracle log scale", 0.5 * (xl + xr), 25,
            0.5, 0.5);
    /* legend, top left inside the frame */
    cairo_set_font_size(cr, 13);
    double lx = xl + 10, ly = yt + 10;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, lx, ly, 170, 70);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
    cairo_set_line_width(cr, 1.0);
    cairo_stroke(cr);
    for (int g = 0; g < 2; g++) {
        double y = ly + 14 + 20 * g;
        cairo_set_source_rgb(cr, k_group_rgb[g][0], k_group_rgb[g][1], k_group_rgb[g][2]);
        cairo_arc(cr, lx + 14, y, 4.0, 0, 2 * FIG_PI);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "%s (%zu)", g ? "test" : "train", count[g]);
        md_fig_text_at(cr, buf, lx + 26, y, 0.0, 0.5);
    }
    double y = ly + 54;
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, lx + 6, y);
    cairo_line_to(cr, lx + 22, y);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_set_source_rgb(cr, 0, 0, 0);
    md_fig_text_at(cr, "identity", lx + 26, y, 0.0, 0.5);

    return md_fig_finish(surf, cr, path, st, err);
}
