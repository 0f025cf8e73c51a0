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

#ifdef __cplusplus
}
#endif
#endif
