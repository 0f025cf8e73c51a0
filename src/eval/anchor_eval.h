/* Library side of `metricdepth eval-anchors`: anchors simulated from ground
 * truth (sampled, noisy, with gross outliers), fast AbsRel/delta1, and the
 * frame-to-frame jitter of a sequence of ln s. Internal: the CLI includes it. */
#ifndef MD_EVAL_ANCHOR_EVAL_H
#define MD_EVAL_ANCHOR_EVAL_H

#include "metricdepth.h"

/* How anchors are drawn from a ground-truth map. */
typedef struct {
    int k;           /* anchors per image */
    double noise;    /* relative sd of the depth noise: g (1 + noise N(0,1)) */
    double outliers; /* probability that an anchor is a gross outlier */
    uint64_t seed;   /* the draw is a function of seed alone */
} md_anchor_sim;

/* K distinct pixels drawn uniformly from those valid in both pred and gt (the
 * pixels a sensor and the network both see), each given gt's depth times
 * (1 + noise e), e ~ N(0, 1); with probability `outliers` the depth is instead
 * multiplied by a gross error factor f, |ln f| uniform in [ln 1.5, ln 4] and
 * either sign (a wrong return or a mismatched feature: off by 50 % to 4x).
 * Fewer valid pixels than K: all of them. MD_ERR_DATA when there is none. */
md_status md_anchor_simulate(const md_depth *pred, const md_depth *gt, const md_anchor_sim *sim,
                             md_anchor_set *out, md_error *err);

/* AbsRel and delta1 of pred against gt under the seed protocol (pixels valid
 * in both), as md_metrics_compute computes them, without the other metrics. */
md_status md_abs_rel_delta1(const md_depth *pred, const md_depth *gt, double *abs_rel,
                            double *delta1, md_error *err);

/* Frame-to-frame jitter: the sample standard deviation of the n - 1
 * differences x[t] - x[t-1] (denominator n - 2). NaN for n < 3. */
double md_jitter(const double *x, size_t n);

/* Mean and sample standard deviation (n - 1) of n values (sd NaN for n < 2). */
void md_mean_sd(const double *v, size_t n, double *mean, double *sd);

/* splitmix64: the next value of a 64-bit state. */
uint64_t md_splitmix64(uint64_t *state);

#endif
