/* Internal interface of the anchor fits (src/scale/anchors.c), the anchor
 * scale map (src/scale/scale_map.c) and the anchor evaluation (src/eval):
 * anchors paired with the base depth, the global fits on them, and the map. */
#ifndef MD_SCALE_ANCHORS_H
#define MD_SCALE_ANCHORS_H

#include "metricdepth.h"

/* The anchors that fall on a pixel with a valid base value, paired with it. */
typedef struct {
    size_t n;
    double *base;  /* base depth (or disparity) at the anchor's pixel, > 0 */
    double *depth; /* the anchor's depth, > 0 */
    double *w;     /* its weight, > 0 */
    int *px, *py;  /* its pixel */
    size_t total;  /* anchors given (used or not) */
} md_anchor_samples;

/* Pairs the anchors with base (checking them against its size first: name,
 * which may be NULL, prefixes messages). Fails with MD_ERR_DATA when no
 * anchor falls on a valid base pixel. */
md_status md_anchor_samples_collect(const md_depth *base, const md_anchor_set *set,
                                    const char *name, md_anchor_samples *out, md_error *err);
void md_anchor_samples_free(md_anchor_samples *s);

typedef struct {
    double scale;        /* s (scale-shift: 1/a) */
    double shift;        /* b of the scale-shift fit, 0 otherwise */
    double log_scale_sd; /* standard error of ln s; NaN when it cannot be told */
    double residual_sd;  /* robust sd of the log residuals ln(depth / fitted depth) */
    size_t inliers;      /* samples the fit kept */
} md_anchor_result;

/* Fits the samples. inlier (may be NULL) gets 1 for each sample the fit kept.
 * disparity: the base values are inverse depths (scale-shift only). name
 * prefixes messages. */
md_status md_anchor_fit_samples(const md_anchor_samples *s, md_anchor_fit fit, int disparity,
                                const char *name, md_anchor_result *out,
                                unsigned char *inlier, md_error *err);

/* Anchors below which the scale map is the global scale. */
#define MD_ANCHOR_MIN_STRUCTURE 8

/* Weighted L1 line: (alpha, beta) minimising sum c_i |y_i - alpha - beta x_i|
 * with beta in [lo, hi] (golden-section search of a convex profile; scratch
 * holds n). */
void md_l1_line(const double *x, const double *y, const double *c, size_t n, double lo,
                double hi, double *alpha, double *beta, double *scratch);

/* Weighted median: the midpoint of the minimiser set of sum w_i |x - v_i|
 * (w_i > 0, n > 0). Sorts a scratch copy; O(n log n). */
double md_weighted_median(const double *v, const double *w, size_t n);

/* The scale map (src/scale/scale_map.c): ln s per pixel of base (its size)
 * from the samples around the global ln s; see scale_map.c. */
md_status md_anchor_scale_map(const md_depth *base, const md_anchor_samples *s,
                              double global_log_scale, float *log_scale_map, md_error *err);

/* The anchors scale source (md_scale_depth with MD_SCALE_SOURCE_ANCHORS):
 * fits, builds the map when asked, applies to depth in place and fills rec
 * (already initialised by the caller). */
md_status md_scale_anchors_apply(md_depth *depth, const md_scale_options *o,
                                 md_scale_record *rec, md_error *err);

#endif
