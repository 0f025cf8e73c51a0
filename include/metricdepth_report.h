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

#include "metricdepth_eval.h"

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

/* ------------------------------------------------------ report writers */

typedef struct {
    const char *path;    /* relative to the report folder */
    const char *caption;
} md_report_figure;

typedef struct {
    const char *title;
    const char *train_data, *test_data;   /* human descriptions of the data */
    const char *const *train_sources, *const *test_sources; /* the folders/lists given */
    int n_train_sources, n_test_sources;
    const char *base_model, *scale_model; /* scale_model NULL: no adaptive rows */
    const char *protocol;                 /* "seed" or "eigen" */
    const char *notes;                    /* optional paragraph (plain text) */
    const md_report_figure *figures;
    size_t n_figures;
    double constant_scale;                /* the baseline's scale */
    double lo, hi;                        /* the oracle's scale range */
    size_t failed;                        /* pairs skipped */
} md_report_info;

/* per_image.csv: split,rgb,depth,oracle_scale,oracle_log_scale,oracle_at_limit,
 * [pred_log_scale,pred_log_scale_sd,distance,gate_weight,] then the nine
 * metrics (abs_rel ... delta3) for unscaled, oracle, [adaptive, gated,]
 * [constant]: bracketed columns when every item has them. */
md_status md_eval_write_csv(const char *path, const md_eval_set *set, md_error *err);
/* report.md / index.html: data, models, protocol, Table 1 (with a scale model),
 * Table 2 (unscaled, oracle, adaptive, gated adaptive, constant), the gap
 * closed, warnings, every figure by relative link. sums[MD_SPLIT_TRAIN/TEST]. */
md_status md_eval_write_markdown(const char *path, const md_report_info *info,
                                 const md_eval_summary sums[2], md_error *err);
md_status md_eval_write_html(const char *path, const md_report_info *info,
                             const md_eval_summary sums[2], md_error *err);
/* summary.json: every number of the tables. */
md_status md_eval_write_json(const char *path, const md_report_info *info,
                             const md_eval_summary sums[2], md_error *err);
/* Reads a training log "epoch,train_loss,val_loss" (val empty where none ran,
 * read as NaN; epochs 1..N in order) into new arrays of *epochs entries. */
md_status md_eval_read_loss_log(const char *path, double **train_loss, double **val_loss,
                                int *epochs, md_error *err);

/* --------------------------------------------- a whole report folder */

/* Collects figures while an evaluation runs (md_report_view is an
 * md_eval_view_fn for md_eval_run) and writes the report folder at the end:
 * report.md, index.html, per_image.csv, summary.json and fig/ (depth panels of
 * the first images of each split, point clouds of the first test image, the
 * ln s scatter, the scale model's loss curves). Not thread-safe: one thread
 * feeds and finishes a report. */
typedef struct md_report md_report;

typedef struct {
    const char *dir;        /* the report folder (created, with fig/) */
    int panels;             /* depth panels per split (default 3) */
    const char *loss_log;   /* the scale model's training log, for fig/loss.png; NULL: none */
    md_report_info info;    /* figures, n_figures, constant_scale and failed are filled in */
} md_report_options;

md_status md_report_create(const md_report_options *opts, md_report **out, md_error *err);
/* A paragraph for the report (copied), e.g. how many pairs came from the cache. */
void md_report_set_notes(md_report *r, const char *notes);
void md_report_view(void *report, const md_eval_view *view);
/* Summaries and every file. A figure that could not be written (e.g. a full
 * disk) fails the report: its first error is returned. */
md_status md_report_finish(md_report *r, const md_eval_set *set, md_eval_summary sums[2],
                           md_error *err);
size_t md_report_figure_count(const md_report *r);
void md_report_free(md_report *r);

/* ---------------------------------------------------------- line plots */

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
 * values, a logarithmic x axis when log_x, the legend on the right. y_max
 * (when inside the data's range; NaN: automatic) caps the y axis, cutting
 * what lies above at the frame. */
md_status md_plot_lines(const char *path, const char *title, const char *x_label,
                        const char *y_label, int log_x, double y_max,
                        const md_plot_series *series, size_t n_series, md_error *err);

/* ------------------------------------------------- the anchor experiment */

/* The report folder of an anchor experiment (md_anchor_eval_dataset):
 *   report.md        per dataset the main condition's AbsRel and delta1 table
 *                    (rows x K, mean +- sd over seeds) and its figure; the
 *                    K = 16 table of every condition relative to the global
 *                    oracle; the sequence table (jitter of ln s and of the
 *                    metric level, AbsRel: raw, filtered, oracle)
 *   results.csv      every row, condition, K and seed
 *   sequences.csv    every run, K and seed
 *   cells.csv        the per-cell oracle ln s* of every pair (training targets)
 *   summary.json     the main tables' numbers
 *   fig/abs_rel_vs_k_NAME.png  AbsRel against K per dataset (log x axis)
 * main_noise and main_outliers pick the main condition (it must be one of the
 * experiment's); model names the base network in the text. */
md_status md_anchor_report_write(const char *dir, const md_anchor_eval *ae, const char *model,
                                 double main_noise, double main_outliers, md_error *err);

#ifdef __cplusplus
}
#endif
#endif
