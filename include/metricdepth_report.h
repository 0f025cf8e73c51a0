/*
 * metricdepth_report: evaluation reports and figures (tables, plots, point-cloud
 * renders), built on metricdepth.h. A separate library (libmetricdepth_report),
 * the only part of metricdepth that links cairo: an application that only
 * predicts depth links libmetricdepth alone.
 *
 * The conventions of metricdepth.h hold here too.
 */
#ifndef METRICDEPTH_REPORT_H
#define METRICDEPTH_REPORT_H

#include "metricdepth.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- plots */

/* Training curves as a PNG (cairo): train and val loss per epoch (1-based x)
 * on a logarithmic y axis, with axes, ticks, labels and a legend. val may be
 * NULL; NaN or non-positive values are left out (val is drawn where it ran). */
md_status md_plot_loss_curves(const char *path, const double *train_loss,
                              const double *val_loss, int epochs, const char *title,
                              md_error *err);

/* One line of md_plot_lines: n points (x[i], y[i]) with optional error bars
 * y +- y_err[i]; non-finite points leave a gap. */
typedef struct {
    const char *label;
    const double *x, *y, *y_err; /* y_err may be NULL */
    size_t n;
    int dashed; /* 1: a reference level, drawn dashed without markers */
} md_plot_series;

/* A line plot as a PNG (cairo): every series in its own colour (colour-blind
 * safe palette), markers and error bars, x ticks at the first series' x
 * values, a logarithmic x axis when log_x, the legend on the right. */
md_status md_plot_lines(const char *path, const char *title, const char *x_label,
                        const char *y_label, int log_x, const md_plot_series *series,
                        size_t n_series, md_error *err);

#ifdef __cplusplus
}
#endif
#endif
