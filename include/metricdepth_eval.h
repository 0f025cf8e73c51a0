/*
 * metricdepth_eval: evaluating a base depth network and its scale sources on
 * RGB-D pairs, as `metricdepth fit-scales` and `metricdepth eval` do. Part of
 * the core library (libmetricdepth); the report writers that turn results
 * into tables and figures are in metricdepth_report.h.
 *
 * The conventions of metricdepth.h hold here too.
 */
#ifndef METRICDEPTH_EVAL_H
#define METRICDEPTH_EVAL_H

#include "metricdepth.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { MD_SPLIT_TRAIN = 0, MD_SPLIT_TEST = 1 };

/* The share of the unscaled-to-oracle gap that a method closes, on one metric
 * where lower is better (AbsRel throughout metricdepth):
 *   (unscaled - method) / (unscaled - oracle).
 * 1 = as good as the oracle, 0 = no better than unscaled, < 0 = worse. When
 * the oracle gains nothing (unscaled == oracle) the share is undefined: NaN. */
double md_gap_closed(double unscaled, double method, double oracle);

/* ------------------------------------------------------- the evaluator */

/* Everything an evaluation needs besides the pairs. */
typedef struct {
    const char *model_path;          /* the base network (also the cache key) */
    md_model_options model_options;
    md_model *model;                 /* optional: model_path already opened (not owned);
                                        else md_evaluator_create opens it */
    const char *cache_dir;           /* base predictions as .npy; NULL: no cache */
    md_protocol protocol;            /* metrics protocol (default seed) */
    md_scale_method oracle_method;   /* default MD_SCALE_W1 */
    double lo, hi;                   /* oracle scale range, default [0.1, 2] */
    const md_scale_model *scale_model; /* NULL: no adaptive rows */
    int features;                    /* also compute (and cache) the base network's encoder
                                        features; implied by an encoder scale model */
} md_eval_options;

md_eval_options md_eval_options_default(void);

/* One evaluated pair. */
typedef struct {
    char *rgb, *depth;        /* owned copies of the pair's paths */
    int split;                /* MD_SPLIT_TRAIN or MD_SPLIT_TEST */
    int cached;               /* the base prediction came from the cache */
    double oracle_scale;      /* s*, clamped to [lo, hi] */
    int oracle_at_limit;      /* s* sits on lo or hi: the true optimum may lie beyond */
    double w1_before, w1_after; /* W1(pred, gt) and W1(s* pred, gt) in metres */
    md_metrics unscaled, oracle;
    int has_adaptive;         /* a scale model was given */
    md_scale_estimate estimate; /* its ln s, spread, distance and gate weight */
    md_metrics adaptive;      /* exp(ln s) x base: the prediction applied whatever its confidence */
    md_metrics gated;         /* exp(weight x ln s) x base: what predict applies by default */
    int has_constant;         /* the constant-scale baseline ran */
    md_metrics constant;      /* constant_scale x base */
} md_eval_item;

/* The maps of one pair while it is evaluated, for figures (valid only during
 * the callback). Scaled maps are NULL where the row does not exist. */
typedef struct {
    const md_eval_item *item;
    const md_image *image;
    const md_depth *gt, *unscaled, *oracle, *adaptive, *gated;
} md_eval_view;

typedef void (*md_eval_view_fn)(void *user, const md_eval_view *view);

/* An evaluator holds the base model (owned when it opened it) and the cache.
 * md_eval_pair only reads it: one evaluator serves several threads at once as
 * far as its base model does (see md_model). */
typedef struct md_evaluator md_evaluator;

md_status md_evaluator_create(const md_eval_options *opts, md_evaluator **out, md_error *err);
void md_evaluator_free(md_evaluator *ev);

/* Evaluates one pair: the base prediction (from the cache, else the network,
 * then cached), its ground truth, the oracle scale, the scale model's
 * estimate, and the metrics of every row under the evaluator's protocol.
 * constant_scale > 0 adds the constant-scale row. view (may be NULL) sees the
 * maps. out is filled on success (free with md_eval_item_free). */
md_status md_eval_pair(md_evaluator *ev, const md_pair *pair, int split, double constant_scale,
                       md_eval_item *out, md_eval_view_fn view, void *view_user, md_error *err);
void md_eval_item_free(md_eval_item *item);

/* The base network's output for a pair's image: depth (and features when
 * features is not NULL and the network gives them), from the cache when
 * there, else computed and cached. *cached (may be NULL) says which. */
md_status md_eval_base(md_evaluator *ev, const md_pair *pair, md_depth *depth,
                       md_features *features, int *cached, md_error *err);

/* ------------------------------------------------------- an experiment */

typedef struct {
    md_eval_item *items;
    size_t count, capacity;
    size_t failed;          /* pairs that could not be evaluated (reported, skipped) */
    double constant_scale;  /* the baseline's scale: exp(mean ln s* over the train split); NaN
                               when the train split is empty */
} md_eval_set;

md_status md_eval_set_append(md_eval_set *set, const md_eval_item *item, md_error *err);
void md_eval_set_free(md_eval_set *set);

typedef struct {
    size_t done, total;     /* pairs */
    const char *item;       /* the pair's RGB path */
    const md_error *error;  /* non-NULL when this pair failed (it is skipped) */
} md_eval_progress;

typedef struct {
    void (*progress)(void *user, const md_eval_progress *p); /* may be NULL */
    md_eval_view_fn view;   /* may be NULL */
    void *user;
} md_eval_callbacks;

/* The seed report's experiment: every train pair, then every test pair; the
 * constant-scale baseline (exp of the train split's mean ln s*, one scale for
 * every image) on both. A pair that fails is reported through the progress
 * callback, counted in out->failed and skipped. Appends to out. */
md_status md_eval_run(md_evaluator *ev, const md_pair_list *train, const md_pair_list *test,
                      const md_eval_callbacks *cb, md_eval_set *out, md_error *err);

/* Holds out round(fraction x n) pairs of all, chosen by a seeded permutation
 * (splitmix64 + Fisher-Yates), as the test set; the rest, in their order, is
 * the train set. */
md_status md_eval_split_random(const md_pair_list *all, double fraction, uint64_t seed,
                               md_pair_list *train, md_pair_list *test, md_error *err);

/* One split's tables (Table 1 and 2 of the seed report, plus the baseline and
 * the gated rows). */
typedef struct {
    size_t n;                 /* images in the split */
    double scale_median;      /* median s* */
    size_t at_limit;          /* images whose s* sits on the range limit */
    md_metrics unscaled, oracle; /* md_metrics_mean over the split */
    int has_constant;
    md_metrics constant;
    double gap_closed_constant;
    int has_adaptive;
    md_metrics adaptive, gated;
    double log_mae, log_rmse; /* Table 1: |ln s - ln s*| of the (ungated) prediction */
    double gap_closed, gap_closed_gated;
    double mean_weight;       /* mean gate weight */
    size_t n_applied;         /* images where the gate applied the scale (weight > 0) */
} md_eval_summary;

/* Summarises the items of one split (n = 0 leaves the rest NaN). */
md_status md_eval_summarize(const md_eval_set *set, int split, md_eval_summary *out,
                            md_error *err);

/* ---------------------------------------------------- base predictions */

/* The cache of base predictions: one float32 .npy per (model file, RGB file),
 * named by FNV-1a 64 over the model's path, size and mtime and the RGB file's
 * path, size and mtime (paths made absolute). Invalid pixels (those the
 * network did not see, and any value <= 0 or non-finite) are stored as 0 and
 * read back as invalid, so a cached map evaluates exactly as a fresh one.
 * Encoder features go beside it, KEY.features.SIGNATURE.npy (1-D float32). */
md_status md_cache_key(const char *model_path, const char *rgb_path, char key[17],
                       md_error *err);
md_status md_cache_store(const char *path, const md_depth *pred, md_error *err);
/* MD_ERR_IO when the file is absent. */
md_status md_cache_load(const char *path, md_depth *out, md_error *err);
md_status md_cache_store_features(const char *path, const md_features *f, md_error *err);
/* MD_ERR_IO when absent; the signature is the caller's (it names the file). */
md_status md_cache_load_features(const char *path, uint64_t signature, md_features *out,
                                 md_error *err);

/* ------------------------------------------------------ the scales CSV */

/* The CSV's header: without and with the adaptive columns. */
#define MD_SCALES_CSV_HEADER                                                               \
    "rgb,depth,divisor,scale,log_scale,w1_before,w1_after,abs_rel_before,rmse_before,"     \
    "delta1_before,abs_rel_after,rmse_after,delta1_after"
#define MD_SCALES_CSV_ADAPTIVE ",pred_log_scale,abs_rel_adaptive,rmse_adaptive,delta1_adaptive"

/* One row of the scales CSV that `fit-scales` writes and `train` reads. */
typedef struct {
    char *rgb, *depth;          /* owned */
    double divisor;             /* raw / divisor = metres */
    md_depth_encoding encoding; /* MD_DEPTH_SUN_ROTATED is written as divisor "sun" */
    double scale, log_scale;    /* oracle s* and ln s* */
    double w1_before, w1_after; /* W1(pred, gt), W1(s*pred, gt) in metres */
    md_metrics before, after;   /* seed protocol; only abs_rel, rmse, delta1 go to the CSV */
    int has_adaptive;           /* the adaptive columns below are set */
    double pred_log_scale;      /* the scale model's ln s */
    md_metrics adaptive;        /* metrics of exp(pred_log_scale) x pred */
} md_scales_row;

typedef struct {
    md_scales_row *items;
    size_t count, capacity;
} md_scales_table;

md_status md_scales_append(md_scales_table *t, const md_scales_row *row, md_error *err);
void md_scales_free(md_scales_table *t);
/* Writes atomically; the adaptive columns when every row has them. Paths
 * holding ',', '"' or a line break are refused. */
md_status md_scales_write(const char *path, const md_scales_table *t, md_error *err);
/* Strict reader: errors name "path:line"; relative paths are relative to the
 * CSV's folder. Appends. */
md_status md_scales_read(const char *path, md_scales_table *t, md_error *err);
/* The oracle scale of pred against gt (same size) in [lo, hi] by method, W1
 * before and after, and seed-protocol metrics before and after: the numeric
 * fields of row, not its paths. */
md_status md_scales_fit(const md_depth *pred, const md_depth *gt, md_scale_method method,
                        double lo, double hi, md_scales_row *row, md_error *err);
/* The CSV row of an evaluated pair (seed protocol metrics): borrows the
 * pair's paths, divisor and encoding. */
void md_scales_row_of(const md_eval_item *item, const md_pair *pair, md_scales_row *row);
/* FNV-1a 64 of a training list (every row's rgb path and ln s*): recorded in
 * the scale model it trains. */
uint64_t md_scales_hash(const md_scales_table *t);

/* ---------------------------------------------------- training sets */

/* The samples md_scale_model_fit trains on, built from a scales CSV: for each
 * row the base network's features and the curve of its prediction's error
 * against scale (the encoder), or the image (the CNNs); the group is the RGB
 * file's folder. Owns everything the samples point to. */
typedef struct {
    md_scale_sample *samples;
    size_t count;
    size_t skipped;       /* rows that could not be read (reported, left out) */
    md_scales_table used; /* the rows of the samples, in order */
    md_image *images;
    md_features *features;
    md_scale_curve *curves;
    char **groups;
} md_training_set;

/* For the CNNs the evaluator is not used (it may be NULL). A row whose files
 * cannot be read is reported through cb's progress and skipped; running out
 * of memory fails the whole build. */
md_status md_training_set_build(md_evaluator *ev, const md_scales_table *t, md_scale_arch arch,
                                const md_eval_callbacks *cb, md_training_set *out, md_error *err);
void md_training_set_free(md_training_set *set);

/* Percentile pct in [0, 100] of n values (numpy's default linear
 * interpolation). Fails when n == 0. */
md_status md_percentile(const double *values, size_t n, double pct, double *out, md_error *err);
/* keep[i] = 1 when values[i] lies within [P(lo_pct), P(hi_pct)] (inclusive);
 * *n_kept counts them. */
md_status md_percentile_keep(const double *values, size_t n, double lo_pct, double hi_pct,
                             unsigned char *keep, size_t *n_kept, md_error *err);

#ifdef __cplusplus
}
#endif
#endif
