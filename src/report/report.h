/* Library side of `metricdepth eval`: per-image results, the seed's Tables 1
 * and 2 per split, and the report writers (per_image.csv, report.md,
 * index.html). Internal: the CLI includes it. */
#ifndef MD_EVAL_REPORT_H
#define MD_EVAL_REPORT_H

#include "metricdepth.h"

enum { MD_SPLIT_TRAIN = 0, MD_SPLIT_TEST = 1 };

typedef struct {
    char *rgb, *depth;   /* owned */
    int split;           /* MD_SPLIT_TRAIN or MD_SPLIT_TEST */
    double oracle_scale; /* s* (W1, clamped to the range) */
    int has_adaptive;
    double pred_log_scale; /* the scale CNN's ln s */
    md_metrics unscaled, oracle, adaptive;
    int has_constant;      /* baseline: one scale for every image (the training mean) */
    md_metrics constant;   /* metrics of that constant scale times pred */
} md_eval_item;

typedef struct {
    md_eval_item *items;
    size_t count, capacity;
} md_eval_set;

md_status md_eval_set_append(md_eval_set *s, const md_eval_item *item, md_error *err);
void md_eval_set_free(md_eval_set *s);

/* One split's tables. */
typedef struct {
    size_t n;          /* images in the split */
    int has_adaptive;  /* every image has the adaptive columns */
    md_metrics unscaled, oracle, adaptive; /* md_metrics_mean per method */
    double log_mae, log_rmse;    /* Table 1: |pred ln s − ln s*| over the split */
    double gap_closed;           /* (AbsRel_u − AbsRel_a) / (AbsRel_u − AbsRel_o); NaN if 0/0 */
    double scale_median;         /* median s* */
    int has_constant;            /* every image has the constant-scale baseline */
    md_metrics constant;         /* its md_metrics_mean */
    double gap_closed_constant;  /* the gap closed by the constant scale */
} md_eval_summary;

/* Summarises the items of one split (n = 0 leaves the rest NaN). */
md_status md_eval_summarize(const md_eval_set *s, int split, md_eval_summary *out,
                            md_error *err);

/* per_image.csv: split,rgb,depth,oracle_scale,oracle_log_scale,pred_log_scale,
 * then abs_rel,sq_rel,rmse,rmse_log,log10,silog,delta1,delta2,delta3 for
 * unscaled, oracle and (if every item has them) adaptive. */
md_status md_eval_write_csv(const char *path, const md_eval_set *s, md_error *err);

typedef struct {
    const char *path;    /* relative to the report folder */
    const char *caption;
} md_report_figure;

typedef struct {
    const char *title;
    const char *train_data, *test_data; /* human descriptions of the data */
    const char *base_model, *scale_model; /* scale_model NULL: no adaptive columns */
    const char *protocol;                 /* "seed" or "eigen" */
    const char *notes;                    /* optional paragraph (markdown-safe plain text) */
    const md_report_figure *figures;
    size_t n_figures;
    double constant_scale; /* the constant-scale baseline's scale (shown when items have it) */
} md_report_info;

/* report.md and index.html: data, models, protocol, Table 1 (when a scale
 * model is given), Table 2 (AbsRel, RMSE, delta1 and the full set), gap
 * closed, and every figure by relative link. sums[MD_SPLIT_TRAIN/TEST]. */
md_status md_eval_write_markdown(const char *path, const md_report_info *info,
                                 const md_eval_summary sums[2], md_error *err);
md_status md_eval_write_html(const char *path, const md_report_info *info,
                             const md_eval_summary sums[2], md_error *err);

/* Reads a training log "epoch,train_loss,val_loss" (val empty where none ran,
 * read as NaN; epochs 1..N in order). Fills new arrays of *epochs entries. */
md_status md_eval_read_loss_log(const char *path, double **train_loss, double **val_loss,
                                int *epochs, md_error *err);

#endif
