/* Line plots with error bars (cairo): e.g. AbsRel against the number of
 * anchors, one line per method, reference levels dashed. */
#include "base/base.h"
#include "report/figures.h"

#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define LP_W 900
#define LP_H 520
#define LP_LEFT 80.0
#define LP_RIGHT 300.0 /* room for the legend */
#define LP_TOP 50.0
#define LP_BOTTOM 70.0
#define LP_PI 3.14159265358979323846

/* Colour-blind-safe palette (Okabe and Ito, without its yellow, too pale
 * on white), then black and greys for reference levels. */
static const double palette[][3] = {
    {0.000, 0.447, 0.698}, {0.835, 0.369, 0.000}, {0.000, 0.620, 0.451},
    {0.800, 0.475, 0.655}, {0.902, 0.624, 0.000}, {0.337, 0.706, 0.914},
    {0.000, 0.000, 0.000}, {0.450, 0.450, 0.450}, {0.600, 0.300, 0.100},
    {0.250, 0.250, 0.600}};
#define N_COLORS (sizeof palette / sizeof *palette)

typedef struct {
    double x0, x1, y0, y1;
    int log_x;
} frame;

static double fx(const frame *f, double x)
{
    double w = LP_W - LP_LEFT - LP_RIGHT;
    double t = f->log_x ? (log(x) - log(f->x0)) / (log(f->x1) - log(f->x0))
                        : (x - f->x0) / (f->x1 - f->x0);
    return LP_LEFT + t * w;
}

static double fy(const frame *f, double y)
{
    double h = LP_H - LP_TOP - LP_BOTTOM;
    return LP_H - LP_BOTTOM - (y - f->y0) / (f->y1 - f->y0) * h;
}

static int usable(const md_plot_series *s, size_t i, int log_x)
{
    return isfinite(s->x[i]) && isfinite(s->y[i]) && (!log_x || s->x[i] > 0);
}

md_status md_plot_lines(const char *path, const char *title, const char *x_label,
                        const char *y_label, int log_x, double y_max,
                        const md_plot_series *series, size_t n_series, md_error *err)
{
    if (!path || !series || n_series == 0)
        return md_fail(err, MD_ERR_ARG, "md_plot_lines: no path or no series");
    frame f = {INFINITY, -INFINITY, INFINITY, -INFINITY, log_x};
    for (size_t k = 0; k < n_series; k++) {
        const md_plot_series *s = &series[k];
        for (size_t i = 0; i < s->n; i++) {
            if (!usable(s, i, log_x))
                continue;
            double e = s->y_err && isfinite(s->y_err[i]) ? fabs(s->y_err[i]) : 0.0;
            f.x0 = fmin(f.x0, s->x[i]);
            f.x1 = fmax(f.x1, s->x[i]);
            f.y0 = fmin(f.y0, s->y[i] - e);
            f.y1 = fmax(f.y1, s->y[i] + e);
        }
    }
    if (!(f.x0 <= f.x1) || !(f.y0 <= f.y1))
        return md_fail(err, MD_ERR_DATA, "%s: no finite point to plot", path);
    if (y_max > f.y0 && y_max < f.y1)
        f.y1 = y_max; /* what lies above is cut at the frame */
    if (f.x1 == f.x0) {
        f.x0 = log_x ? f.x0 / 2 : f.x0 - 1;
        f.x1 = log_x ? f.x1 * 2 : f.x1 + 1;
    }
    if (log_x) { /* a margin of a fifth of a decade's worth on each side */
        double m = 0.06 * (log(f.x1) - log(f.x0));
        f.x0 *= exp(-m);
        f.x1 *= exp(m);
    } else {
        double m = 0.04 * (f.x1 - f.x0);
        f.x0 -= m;
        f.x1 += m;
    }
    double ym = 0.06 * (f.y1 - f.y0);
    if (!(ym > 0))
        ym = 0.05 * fabs(f.y0) + 1e-3;
    f.y0 -= ym;
    f.y1 += ym;

    cairo_surface_t *surf;
    cairo_t *cr;
    md_status st = md_fig_begin(LP_W, LP_H, path, &surf, &cr, err);
    if (st != MD_OK)
        return st;
    double xl = LP_LEFT, xr = LP_W - LP_RIGHT, yt = LP_TOP, yb = LP_H - LP_BOTTOM;
    char buf[64];
    cairo_set_font_size(cr, 12.0);
    cairo_set_line_width(cr, 1.0);
    /* y grid and labels */
    double step = md_fig_nice_step(f.y1 - f.y0, 6);
    for (double t = ceil(f.y0 / step - 1e-9) * step; t <= f.y1 + 1e-9 * step; t += step) {
        double y = fy(&f, t);
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, xl, y);
        cairo_line_to(cr, xr, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        md_fig_tick_label(buf, sizeof buf, t, step);
        md_fig_text_at(cr, buf, xl - 8, y, 1.0, 0.5);
    }
    /* x ticks: the x values of the first series (e.g. the anchor counts) */
    const md_plot_series *s0 = &series[0];
    for (size_t i = 0; i < s0->n; i++) {
        if (!isfinite(s0->x[i]) || (log_x && s0->x[i] <= 0))
            continue;
        double x = fx(&f, s0->x[i]);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, x, yb);
        cairo_line_to(cr, x, yb + 6);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%g", s0->x[i]);
        md_fig_text_at(cr, buf, x, yb + 10, 0.5, 0.0);
    }
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, xl, yt, xr - xl, yb - yt);
    cairo_stroke(cr);
    if (x_label)
        md_fig_text_at(cr, x_label, (xl + xr) / 2, LP_H - 24, 0.5, 0.5);
    if (y_label) {
        cairo_save(cr);
        cairo_translate(cr, 20, (yt + yb) / 2);
        cairo_rotate(cr, -LP_PI / 2);
        md_fig_text_at(cr, y_label, 0, 0, 0.5, 0.5);
        cairo_restore(cr);
    }
    if (title) {
        cairo_set_font_size(cr, 14.0);
        md_fig_text_at(cr, title, (xl + xr) / 2, 24, 0.5, 0.5);
        cairo_set_font_size(cr, 12.0);
    }

    /* series, clipped to the frame */
    cairo_save(cr);
    cairo_rectangle(cr, xl, yt, xr - xl, yb - yt);
    cairo_clip(cr);
    for (size_t k = 0; k < n_series; k++) {
        const md_plot_series *s = &series[k];
        const double *c = palette[k % N_COLORS];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2.0);
        if (s->dashed) {
            double d[] = {7.0, 4.0};
            cairo_set_dash(cr, d, 2, 0);
        }
        int started = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (!usable(s, i, log_x)) {
                started = 0; /* a gap in the line */
                continue;
            }
            if (started)
                cairo_line_to(cr, fx(&f, s->x[i]), fy(&f, s->y[i]));
            else
                cairo_move_to(cr, fx(&f, s->x[i]), fy(&f, s->y[i]));
            started = 1;
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        if (s->dashed)
            continue;
        cairo_set_line_width(cr, 1.2);
        for (size_t i = 0; i < s->n; i++) {
            if (!usable(s, i, log_x))
                continue;
            double x = fx(&f, s->x[i]), y = fy(&f, s->y[i]);
            cairo_arc(cr, x, y, 3.5, 0, 2 * LP_PI);
            cairo_fill(cr);
            if (s->y_err && isfinite(s->y_err[i]) && s->y_err[i] > 0) {
                double e0 = fy(&f, s->y[i] - s->y_err[i]), e1 = fy(&f, s->y[i] + s->y_err[i]);
                cairo_move_to(cr, x, e0);
                cairo_line_to(cr, x, e1);
                cairo_move_to(cr, x - 4, e0);
                cairo_line_to(cr, x + 4, e0);
                cairo_move_to(cr, x - 4, e1);
                cairo_line_to(cr, x + 4, e1);
                cairo_stroke(cr);
            }
        }
    }
    cairo_restore(cr);

    /* legend, right of the frame */
    double lx = xr + 16, ly = yt + 4;
    cairo_set_font_size(cr, 12.0);
    for (size_t k = 0; k < n_series; k++) {
        const double *c = palette[k % N_COLORS];
        double y = ly + 20.0 * (double)k + 8;
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2.0);
        if (series[k].dashed) {
            double d[] = {7.0, 4.0};
            cairo_set_dash(cr, d, 2, 0);
        }
        cairo_move_to(cr, lx, y);
        cairo_line_to(cr, lx + 30, y);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_source_rgb(cr, 0, 0, 0);
        md_fig_text_at(cr, series[k].label ? series[k].label : "", lx + 38, y, 0.0, 0.5);
    }
    return md_fig_finish(surf, cr, path, st, err);
}
