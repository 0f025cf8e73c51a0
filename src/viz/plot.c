/* Training loss curves (the seed report's Fig. 2) drawn with cairo. */
#include "core/core.h"

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

/* Text is drawn from a built-in 5x7 pixel font (filled squares) rather than
 * cairo's font API: that loads fontconfig, whose process-wide caches are never
 * freed, and would make the output depend on the fonts installed. Bits 4..0 of
 * each row are the columns left to right. Characters not listed draw as blanks;
 * upper-case letters not listed draw as their lower-case. */
typedef struct {
    char c;
    uint8_t rows[7];
} glyph;

static const glyph k_font[] = {
    {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},
    {'2', {14, 17, 1, 2, 4, 8, 31}},     {'3', {31, 2, 4, 2, 1, 17, 14}},
    {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},
    {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},
    {'8', {14, 17, 17, 14, 17, 17, 14}}, {'9', {14, 17, 17, 15, 1, 2, 12}},
    {'a', {0, 0, 14, 1, 15, 17, 15}},    {'b', {16, 16, 22, 25, 17, 17, 30}},
    {'c', {0, 0, 14, 16, 16, 17, 14}},   {'d', {1, 1, 13, 19, 17, 17, 15}},
    {'e', {0, 0, 14, 17, 31, 16, 14}},   {'f', {6, 9, 8, 28, 8, 8, 8}},
    {'g', {0, 15, 17, 17, 15, 1, 14}},   {'h', {16, 16, 22, 25, 17, 17, 17}},
    {'i', {4, 0, 12, 4, 4, 4, 14}},      {'j', {2, 0, 6, 2, 2, 18, 12}},
    {'k', {16, 16, 18, 20, 24, 20, 18}}, {'l', {12, 4, 4, 4, 4, 4, 14}},
    {'m', {0, 0, 26, 21, 21, 17, 17}},   {'n', {0, 0, 22, 25, 17, 17, 17}},
    {'o', {0, 0, 14, 17, 17, 17, 14}},   {'p', {0, 0, 30, 17, 17, 30, 16}},
    {'q', {0, 0, 15, 17, 17, 15, 1}},     {'r', {0, 0, 22, 25, 16, 16, 16}},
    {'s', {0, 0, 14, 16, 14, 1, 30}},    {'t', {8, 8, 28, 8, 8, 9, 6}},
    {'u', {0, 0, 17, 17, 17, 19, 13}},   {'v', {0, 0, 17, 17, 17, 10, 4}},
    {'w', {0, 0, 17, 17, 21, 21, 10}},   {'x', {0, 0, 17, 10, 4, 10, 17}},
    {'y', {0, 0, 17, 17, 15, 1, 14}},    {'z', {0, 0, 31, 2, 4, 8, 31}},
    {'A', {14, 17, 17, 31, 17, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}},
    {'C', {14, 17, 16, 16, 16, 17, 14}}, {'D', {28, 18, 17, 17, 17, 18, 28}},
    {'E', {31, 16, 16, 30, 16, 16, 31}}, {'F', {31, 16, 16, 30, 16, 16, 16}},
    {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}},
    {'I', {14, 4, 4, 4, 4, 4, 14}},      {'L', {16, 16, 16, 16, 16, 16, 31}},
    {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}},
    {'O', {14, 17, 17, 17, 17, 17, 14}}, {'P', {30, 17, 17, 30, 16, 16, 16}},
    {'R', {30, 17, 17, 30, 20, 18, 17}}, {'S', {15, 16, 16, 14, 1, 1, 30}},
    {'T', {31, 4, 4, 4, 4, 4, 4}},       {'U', {17, 17, 17, 17, 17, 17, 14}},
    {'V', {17, 17, 17, 17, 17, 10, 4}},  {'W', {17, 17, 17, 21, 21, 21, 10}},
    {':', {0, 12, 12, 0, 12, 12, 0}},    {'.', {0, 0, 0, 0, 0, 12, 12}},
    {',', {0, 0, 0, 0, 12, 4, 8}},       {'-', {0, 0, 0, 31, 0, 0, 0}},
    {'+', {0, 4, 4, 31, 4, 4, 0}},       {'(', {2, 4, 8, 8, 8, 4, 2}},
    {')', {8, 4, 2, 2, 2, 4, 8}},        {'/', {0, 1, 2, 4, 8, 16, 0}},
    {'_', {0, 0, 0, 0, 0, 0, 31}},       {'%', {24, 25, 2, 4, 8, 19, 3}},
    {'=', {0, 0, 31, 0, 31, 0, 0}},
};

static const glyph *find_glyph(char c)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sizeof k_font / sizeof k_font[0]; i++)
            if (k_font[i].c == c)
                return &k_font[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else
            break;
    }
    return NULL;
}

/* Draws s with pixel size px (a glyph is 5x7 px cells, 6 cells apart) so that
 * the point (ax, ay) of its box (0..1 each) lands on (x, y). */
static void text_at(cairo_t *cr, const char *s, double x, double y, double ax, double ay)
{
    const double px = 2.0;
    size_t n = strlen(s);
    double w = n ? (6.0 * (double)n - 1.0) * px : 0.0, h = 7.0 * px;
    double x0 = x - w * ax, y0 = y - h * ay;
    for (size_t i = 0; i < n; i++) {
        const glyph *g = find_glyph(s[i]);
        if (!g)
            continue;
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 5; c++)
                if (g->rows[r] & (1u << (4 - c)))
                    cairo_rectangle(cr, x0 + (6.0 * (double)i + c) * px, y0 + r * px, px, px);
    }
    cairo_fill(cr);
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

static cairo_status_t write_stream(void *closure, const unsigned char *data, unsigned int length)
{
    FILE *fp = closure;
    return fwrite(data, 1, length, fp) == length ? CAIRO_STATUS_SUCCESS
                                                 : CAIRO_STATUS_WRITE_ERROR;
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

    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, PLOT_W, PLOT_H);
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surf);
        return md_fail(err, MD_ERR_NOMEM, "%s: cannot create the plot surface", path);
    }
    cairo_t *cr = cairo_create(surf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

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
                text_at(cr, buf, xl - 10, y, 1.0, 0.5);
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
        text_at(cr, buf, x, yb + 10, 0.5, 0.0);
    }
    /* frame */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, xl, yt, xr - xl, yb - yt);
    cairo_stroke(cr);
    /* axis labels and title */
    text_at(cr, "epoch", (xl + xr) / 2, PLOT_H - 22, 0.5, 0.5);
    cairo_save(cr);
    cairo_translate(cr, 22, (yt + yb) / 2);
    cairo_rotate(cr, -PLOT_PI / 2);
    text_at(cr, "loss: MSE of log s (log scale)", 0, 0, 0.5, 0.5);
    cairo_restore(cr);
    text_at(cr, title && *title ? title : "Training and validation loss", (xl + xr) / 2, 25, 0.5,
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
        text_at(cr, k ? "validation" : "train", lx + 46, y, 0.0, 0.5);
    }

    cairo_surface_flush(surf);
    md_status st = MD_OK;
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        st = md_fail(err, MD_ERR_NOMEM, "%s: drawing failed: %s", path,
                     cairo_status_to_string(cairo_status(cr)));
    cairo_destroy(cr);
    if (st == MD_OK) {
        md_atomic_file af;
        st = md_atomic_open(&af, path, err);
        if (st == MD_OK) {
            if (cairo_surface_write_to_png_stream(surf, write_stream, af.fp) !=
                CAIRO_STATUS_SUCCESS) {
                md_atomic_abort(&af);
                st = md_fail(err, MD_ERR_IO, "%s: cannot write the PNG", path);
            } else {
                st = md_atomic_commit(&af, err);
            }
        }
    }
    cairo_surface_destroy(surf);
    return st;
}
