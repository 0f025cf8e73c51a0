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

/* ------------------------------------------ anchors and scale maps, measured */

/* How anchors are drawn from a ground-truth map: a simulated sensor. */
typedef struct {
    int k;           /* anchors per image */
    double noise;    /* relative sd of the depth noise: g (1 + noise N(0,1)) */
    double outliers; /* probability that an anchor is a gross outlier */
    uint64_t seed;   /* the draw is a function of the seed alone */
} md_anchor_sim;

/* K distinct pixels drawn uniformly from those valid in both pred and gt (the
 * pixels a sensor and the network both see), each given gt's depth times
 * (1 + noise e), e ~ N(0, 1); with probability `outliers` the depth is instead
 * multiplied by a gross error factor f, |ln f| uniform in [ln 1.5, ln 4] and
 * either sign (a wrong return or a mismatched feature: off by 50 % to 4x).
 * Fewer valid pixels than K: all of them. MD_ERR_DATA when there is none. */
md_status md_anchor_simulate(const md_depth *pred, const md_depth *gt, const md_anchor_sim *sim,
                             md_anchor_set *out, md_error *err);

/* The rows of the anchor experiment. */
enum {
    MD_ANCHOR_ROW_BASE,   /* the base network as it is */
    MD_ANCHOR_ROW_ORACLE, /* the global W1 oracle */
    MD_ANCHOR_ROW_CELLS,  /* the per-cell W1 oracle */
    MD_ANCHOR_ROW_IMAGE,  /* image only: the encoder scale model's ln s, applied whatever its
                             confidence (trained on the other datasets) */
    MD_ANCHOR_ROW_IMAGE_GATED,     /* ... through its gate */
    MD_ANCHOR_ROW_IMAGE_MAP,       /* image only: one encoder scale model per cell (trained on
                                      the per-cell oracle ln s* of the other datasets) */
    MD_ANCHOR_ROW_IMAGE_MAP_GATED, /* ... each cell through its gate */
    MD_ANCHOR_ROW_ROBUST, /* the anchor fits through md_scale_depth ... */
    MD_ANCHOR_ROW_MEDIAN,
    MD_ANCHOR_ROW_W1,
    MD_ANCHOR_ROW_LSQ,
    MD_ANCHOR_ROW_SHIFT,
    MD_ANCHOR_ROW_MAP,    /* ... and the scale map (robust fit + map) */
    MD_ANCHOR_ROWS
};
#define MD_ANCHOR_FIRST_FIT_ROW MD_ANCHOR_ROW_ROBUST
/* "anchors robust (global)" ... and the short key "robust" ... */
const char *md_anchor_row_name(int row);
const char *md_anchor_row_key(int row);

#define MD_ANCHOR_MAX_LIST 16
#define MD_ANCHOR_MAX_SEEDS 20

typedef struct {
    int n_k, k[MD_ANCHOR_MAX_LIST];                  /* anchors per image */
    int n_noise;
    double noise[MD_ANCHOR_MAX_LIST];                /* relative depth noise levels */
    int n_outliers;
    double outliers[MD_ANCHOR_MAX_LIST];             /* gross outlier rates */
    int seeds;                                       /* draws per condition */
    int cells_x, cells_y;                            /* the per-cell oracle's grid */
    double lo, hi;                                   /* the oracles' scale range */
    /* sequences: anchors drawn every frame under one condition */
    int n_seq_k, seq_k[MD_ANCHOR_MAX_LIST];
    double seq_noise, seq_outliers;
    double fps;                                      /* frame time = frame number / fps */
    md_scale_filter_options filter;                  /* its time constant and gate */
    int image_maps;        /* keep each pair's encoder features for md_anchor_eval_image_maps
                              (the evaluator must compute features) */
} md_anchor_eval_options;

/* k 1,4,16,64,256; noise 0,0.02,0.05; outliers 0,0.1; 3 seeds; 4x4 cells;
 * range [0.1, 2]; sequences: k 4,16,64 at 2 % noise and 10 % outliers, 30 fps,
 * the filter's defaults. */
md_anchor_eval_options md_anchor_eval_defaults(void);

/* The experiment's results, dataset by dataset. Not thread-safe: one thread
 * runs and reads it. */
typedef struct md_anchor_eval md_anchor_eval;

md_status md_anchor_eval_create(const md_anchor_eval_options *opts, md_anchor_eval **out,
                                md_error *err);
void md_anchor_eval_free(md_anchor_eval *ae);

/* Evaluates every pair of one dataset (base predictions through ev). For each
 * pair: the reference rows (base, W1 oracle, per-cell oracle, whose ln s* per
 * cell are kept as training targets), then for every condition, K and seed
 * the anchors drawn by md_anchor_simulate and every fit row through
 * md_scale_depth; AbsRel and delta1 under the seed protocol. With sequence,
 * consecutive pairs in one folder are a video run: each frame's robust fit is
 * the raw ln s, filtered by md_scale_filter with and without the level input
 * (time = the first number in the file name / fps). A pair that fails is
 * reported through cb's progress and skipped. */
md_status md_anchor_eval_dataset(md_anchor_eval *ae, md_evaluator *ev, const char *name,
                                 const md_pair_list *pairs, int sequence,
                                 const md_eval_callbacks *cb, md_error *err);

const md_anchor_eval_options *md_anchor_eval_get_options(const md_anchor_eval *ae);
int md_anchor_eval_count(const md_anchor_eval *ae);          /* datasets */
const char *md_anchor_eval_name(const md_anchor_eval *ae, int set);
size_t md_anchor_eval_failed(const md_anchor_eval *ae);      /* pairs skipped */

/* One row of one condition: the mean over the dataset's images per seed, then
 * the mean and sd over the seeds (reference rows: one value, sd NaN). NaN
 * when some seed has no image where the row exists (e.g. scale-shift with
 * fewer than 3 anchors). seed >= 0: that seed's mean alone. */
typedef struct {
    double abs_rel, abs_rel_sd, delta1, delta1_sd;
    size_t images;
} md_anchor_stat;

md_anchor_stat md_anchor_eval_stat(const md_anchor_eval *ae, int set, int noise_i, int outlier_i,
                                   int k_i, int row, int seed);

/* Sequences: one result per (run, K, seed). */
enum {
    MD_SEQ_RAW,            /* the per-frame robust fit */
    MD_SEQ_FILTERED,       /* md_scale_filter on ln s alone */
    MD_SEQ_FILTERED_LEVEL, /* md_scale_filter with the depth-level input */
    MD_SEQ_ORACLE,         /* the per-frame W1 oracle: the truth's own jitter */
    MD_SEQ_VARIANTS
};
typedef struct {
    int set;                 /* dataset */
    char run[256];           /* the run's folder */
    int k, seed;
    size_t frames, rejected; /* rejected: raw values the ln s filter rejected */
    double jitter[MD_SEQ_VARIANTS];       /* sd of the frame-to-frame differences of ln s */
    double level_jitter[MD_SEQ_VARIANTS]; /* the same for ln s + ln median(base depth) */
    double abs_rel[MD_SEQ_VARIANTS], delta1[MD_SEQ_VARIANTS]; /* means over the frames */
} md_seq_result;

size_t md_anchor_eval_sequences(const md_anchor_eval *ae, const md_seq_result **out);

/* The per-cell oracle ln s* of every evaluated pair (cells_x * cells_y values,
 * row-major, NaN for a cell with too few valid pixels): the training targets
 * of an image-only scale map. */
typedef struct {
    int set;
    char *rgb, *depth;
    double *log_scales;
} md_cell_target;

size_t md_anchor_eval_cells(const md_anchor_eval *ae, const md_cell_target **out);

/* The image-only rows, after every dataset was evaluated (with image_maps):
 * for each dataset, an encoder scale model for ln s* and one per cell for the
 * per-cell ln s* are trained (md_scale_model_fit, defaults) on the pairs of
 * all the other datasets, then applied to this dataset's pairs (base
 * predictions through ev again). Needs two datasets and features; a cell with
 * fewer than 10 training targets uses the global model. Progress per pair. */
md_status md_anchor_eval_image_maps(md_anchor_eval *ae, md_evaluator *ev,
                                    const md_eval_callbacks *cb, md_error *err);

/* ---------------------------------------------------- base predictions */

/* The cache of base predictions: one float32 .npy per (model file, RGB file),
 * named by FNV-1a 64 over the model's path, size and mtime and the RGB file's
 * path, size and mtime (paths made absolute). Invalid pixels (those the
 * network did not see, and any value <= 0 or non-finite) are stored as 0 and
 * read back as invalid, so a cached map evaluates exactly as a fresh one.
 * Encoder features go beside it, KEY.features.SIGNATURE.npy (1-D float32).
 * md_cache_key_variant hashes a variant name in as well (e.g. "bf16": the
 * same model file run in another precision); NULL or "" gives md_cache_key. */
md_status md_cache_key(const char *model_path, const char *rgb_path, char key[17],
                       md_error *err);
md_status md_cache_key_variant(const char *model_path, const char *variant, const char *rgb_path,
                               char key[17], md_error *err);
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
 * cannot be read (corrupt, truncated, or a kind or size this library does not
 * read) is reported through cb's progress and skipped; running out of memory,
 * or a base network that gives no encoder features, fails the whole build. */
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
