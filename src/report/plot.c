/* Training loss curves (the seed report's Fig. 2) drawn with cairo. */
#include "base/base.h"
#include "report/figures.h"

#include <cairo.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PLOT_PI 3.14159265358979323846
#define PLOT_W 800
#define PLOT_H 500
#define M_LEFT 90.0
#define M_RIGHT 30.0
#define M_TOP 50.0
#define M_BOTTOM 70.0

static int usable(const double *v, int i)
{
    return v && isfinite(v[i]) && v[i] > 0.0;
}

typedef struct {
    double x0, x1, y0, y1; /* data range: epochs, log10(loss) */
} plot_frame;

static double px(const plot_frame *f, double epoch)
{
    double w = PLOT_W - M_LEFT - M_RIGHT;
    return M_LEFT + (f->x1 > f->x0 ? (epoch - f->x0) / (f->x1 - f->x0) : 0.5) * w;
}

static double py(const plot_frame *f, double loss)
{
    double h = PLOT_H - M_TOP - M_BOTTOM;
    return PLOT_H - M_BOTTOM - (log10(loss) - f->y0) / (f->y1 - f->y0) * h;
}

static void draw_curve(cairo_t *cr, const plot_frame *f, const double *v, int epochs, double r,
                       double g, double b, int dashed)
{
    cairo_set_source_rgb(cr, r, g, b);
    cairo_set_line_width(cr, 2.0);
    if (dashed) {
        double d[] = {7.0, 4.0};
        cairo_set_dash(cr, d, 2, 0);
    }
    int started = 0;
    for (int i = 0; i < epochs; i++) {
        if (!usable(v, i))
            continue;
        if (started)
            cairo_line_to(cr, px(f, i + 1), py(f, v[i]));
        else
            cairo_move_to(cr, px(f, i + 1), py(f, v[i]));
        started = 1;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int i = 0; i < epochs; i++) {
        if (!usable(v, i))
            continue;
        cairo_arc(cr, px(f, i + 1), py(f, v[i]), 3.0, 0, 2 * PLOT_PI);
        cairo_fill(cr);
    }
}

md_status md_plot_loss_curves(const char *path, const double *train_loss,
                              const double *val_loss, int epochs, const char *title,
                              md_error *err)
{
    if (!path || !train_loss || epochs <= 0)
        return md_fail(err, MD_ERR_ARG, "md_plot_loss_curves: no path or no epochs");
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < epochs; i++) {
        for (int k = 0; k < 2; k++) {
            const double *v = k ? val_loss : train_loss;
            if (usable(v, i)) {
                lo = fmin(lo, v[i]);
                hi = fmax(hi, v[i]);
            }
        }
    }
    if (!(lo <= hi))
        return md_fail(err, MD_ERR_DATA, "%s: no positive finite loss to plot", path);
    plot_frame f = {1.0, epochs > 1 ? (double)epochs : 2.0, floor(log10(lo)), ceil(log10(hi))};
    if (f.y1 <= f.y0)
        f.y1 = f.y0 + 1.0;

    cairo_surface_t *surf;
    cairo_t *cr;
    md_status st = md_fig_begin(PLOT_W, PLOT_H, path, &surf, &cr, err);
    if (st != MD_OK)
        return st;
    cairo_set_font_size(cr, 13.0);

    double xl = M_LEFT, xr = PLOT_W - M_RIGHT, yt = M_TOP, yb = PLOT_H - M_BOTTOM;
    char buf[64];
    /* y grid and ticks: decades labelled, 2..9 minor */
    for (int d = (int)f.y0; d <= (int)f.y1; d++) {
        for (int m = 1; m <= 9; m++) {
            double v = m * pow(10.0, d);
            double lv = log10(v);
            if (lv < f.y0 - 1e-9 || lv > f.y1 + 1e-9)
                continue;
            double y = py(&f, v);
            cairo_set_line_width(cr, 1.0);
            cairo_set_source_rgb(cr, m == 1 ? 0.85 : 0.93, m == 1 ? 0.85 : 0.93,
                                 m == 1 ? 0.85 : 0.93);
            cairo_move_to(cr, xl, y);
            cairo_line_to(cr, xr, y);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, 0, 0, 0);
            cairo_move_to(cr, xl - (m == 1 ? 7 : 4), y);
            cairo_line_to(cr, xl, y);
            cairo_stroke(cr);
            if (m == 1) {
                snprintf(buf, sizeof buf, "1e%d", d);
                md_fig_text_at(cr, buf, xl - 10, y, 1.0, 0.5);
            }
        }
    }
    /* x ticks: about 10 at most */
    int step = 1;
    while (epochs / step > 10)
        step = step == 1 ? 2 : step == 2 ? 5 : step * 2;
    for (int e = 1; e <= (int)f.x1; e++) {
        if (e != 1 && e % step != 0)
            continue;
        double x = px(&f, e);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, x, yb);
        cairo_line_to(cr, x, yb + 6);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%d", e);
        md_fig_text_at(cr, buf, x, yb + 10, 0.5, 0.0);
    }
    /* frame */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, xl, yt, xr - xl, yb - yt);
    cairo_stroke(cr);
    /* axis labels and title */
    md_fig_text_at(cr, "epoch", (xl + xr) / 2, PLOT_H - 22, 0.5, 0.5);
    cairo_save(cr);
    cairo_translate(cr, 22, (yt + yb) / 2);
    cairo_rotate(cr, -PLOT_PI / 2);
    md_fig_text_at(cr, "loss: MSE of log s (log scale)", 0, 0, 0.5, 0.5);
    cairo_restore(cr);
    md_fig_text_at(cr, title && *title ? title : "Training and validation loss", (xl + xr) / 2, 25, 0.5,
            0.5);

    /* curves, clipped to the frame */
    cairo_save(cr);
    cairo_rectangle(cr, xl, yt, xr - xl, yb - yt);
    cairo_clip(cr);
    draw_curve(cr, &f, train_loss, epochs, 0.12, 0.47, 0.71, 0);
    draw_curve(cr, &f, val_loss, epochs, 0.84, 0.37, 0.0, 1);
    cairo_restore(cr);

    /* legend, top right */
    double lx = xr - 190, ly = yt + 12;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, lx, ly, 178, val_loss ? 48 : 26);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
    cairo_set_line_width(cr, 1.0);
    cairo_stroke(cr);
    for (int k = 0; k < (val_loss ? 2 : 1); k++) {
        double y = ly + 13 + 22 * k;
        if (k)
            cairo_set_source_rgb(cr, 0.84, 0.37, 0.0);
        else
            cairo_set_source_rgb(cr, 0.12, 0.47, 0.71);
        cairo_set_line_width(cr, 2.0);
        if (k) {
            double d[] = {7.0, 4.0};
            cairo_set_dash(cr, d, 2, 0);
        }
        cairo_move_to(cr, lx + 8, y);
        cairo_line_to(cr, lx + 38, y);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_source_rgb(cr, 0, 0, 0);
        md_fig_text_at(cr, k ? "validation" : "train", lx + 46, y, 0.0, 0.5);
    }

    return md_fig_finish(surf, cr, path, st, err);
}
