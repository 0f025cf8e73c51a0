/* Library side of `metricdepth fit-scales` / `train`: per-pair oracle scales
 * and metrics, the prediction cache, percentile trimming, and the scales CSV
 * (the training list of the scale CNN). Internal: the CLI includes it. */
#ifndef MD_EVAL_FIT_H
#define MD_EVAL_FIT_H

#include "metricdepth.h"

/* One row of the scales CSV. */
typedef struct {
    char *rgb, *depth;          /* owned */
    double divisor;             /* raw / divisor = metres */
    md_depth_encoding encoding; /* MD_DEPTH_SUN_ROTATED is written as divisor "sun" */
    double scale, log_scale;    /* oracle s* and ln s* */
    double w1_before, w1_after; /* W1(pred, gt), W1(s*pred, gt) in metres */
    md_metrics before, after;   /* seed protocol; only abs_rel, rmse, delta1 go to the CSV */
    int has_adaptive;           /* the four adaptive columns below are set */
    double pred_log_scale;      /* the scale CNN's ln s */
    md_metrics adaptive;        /* metrics of exp(pred_log_scale)*pred */
} md_fit_row;

typedef struct {
    md_fit_row *items;
    size_t count, capacity;
} md_fit_table;

/* The CSV headers: without and with the adaptive columns. */
#define MD_FIT_CSV_HEADER                                                                  \
    "rgb,depth,divisor,scale,log_scale,w1_before,w1_after,abs_rel_before,rmse_before,"     \
    "delta1_before,abs_rel_after,rmse_after,delta1_after"
#define MD_FIT_CSV_ADAPTIVE ",pred_log_scale,abs_rel_adaptive,rmse_adaptive,delta1_adaptive"

/* Copies row (and its strings) to the end of the table. */
md_status md_fit_table_append(md_fit_table *t, const md_fit_row *row, md_error *err);
void md_fit_table_free(md_fit_table *t);

/* Writes the table atomically. The adaptive columns are written when every row
 * has them. Paths containing ',', '"' or a line break are refused. */
md_status md_fit_csv_write(const char *path, const md_fit_table *t, md_error *err);
/* Strict reader: the header must be one of the two above; every line needs every
 * field, numbers must parse completely, scale > 0 and log_scale = ln(scale) (to
 * 1e-4). Errors name "path:line". Relative image paths are relative to the CSV's
 * folder. Blank lines are skipped. Appends to t. */
md_status md_fit_csv_read(const char *path, md_fit_table *t, md_error *err);

/* FNV-1a 64-bit, chainable: h = md_fnv1a64(MD_FNV1A64_INIT, data, n). */
#define MD_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t md_fnv1a64(uint64_t h, const void *data, size_t n);
/* Hash of a training list: every row's rgb path and log scale (%.9g). */
uint64_t md_fit_list_hash(const md_fit_table *t);

/* Cache key of a prediction: FNV-1a 64 over the model's path, size and mtime
 * and the RGB file's path, size and mtime (paths made absolute), as 16 hex digits.
 * Fails if either file cannot be stat'ed. */
md_status md_fit_cache_key(const char *model_path, const char *rgb_path, char key[17],
                           md_error *err);
/* Stores a prediction as float32 .npy (atomically), invalid/masked pixels as 0. */
md_status md_fit_cache_store(const char *path, const md_depth *pred, md_error *err);
/* Loads a cached prediction (MD_ERR_IO when absent). */
md_status md_fit_cache_load(const char *path, md_depth *out, md_error *err);

/* Percentile pct in [0,100] of n values, linear interpolation between closest
 * ranks (numpy's default): rank = pct/100*(n-1). Fails when n == 0. */
md_status md_percentile(const double *values, size_t n, double pct, double *out, md_error *err);
/* keep[i] = 1 when values[i] lies within [P(lo_pct), P(hi_pct)] (inclusive). */
md_status md_fit_trim(const double *values, size_t n, double lo_pct, double hi_pct,
                      unsigned char *keep, size_t *n_kept, md_error *err);

/* Oracle scale of pred against gt (same size) by method in [lo, hi], W1 before
 * and after, and seed-protocol metrics before and after. Fills the numeric
 * fields of row (not its paths). MD_ERR_DATA on a size mismatch or no valid pixel. */
md_status md_fit_pair(const md_depth *pred, const md_depth *gt, md_scale_method method,
                      double lo, double hi, md_fit_row *row, md_error *err);
/* Seed-protocol metrics of scale*pred against gt. */
md_status md_fit_scaled_metrics(const md_depth *pred, const md_depth *gt, double scale,
                                md_metrics *out, md_error *err);

#endif
