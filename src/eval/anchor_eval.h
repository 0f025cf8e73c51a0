/* Internals of the anchor experiment (src/eval/anchor_eval.c) that tests and
 * the report writer use: fast AbsRel/delta1, jitter, mean/sd. */
#ifndef MD_EVAL_ANCHOR_EVAL_H
#define MD_EVAL_ANCHOR_EVAL_H

#include "base/base.h"
#include "metricdepth_eval.h"

/* AbsRel and delta1 of pred against gt under the seed protocol (pixels valid
 * in both), as md_metrics_compute computes them, without the other metrics. */
md_status md_abs_rel_delta1(const md_depth *pred, const md_depth *gt, double *abs_rel,
                            double *delta1, md_error *err);

/* Frame-to-frame jitter: the sample standard deviation of the n - 1
 * differences x[t] - x[t-1] (denominator n - 2). NaN for n < 3. */
double md_jitter(const double *x, size_t n);

/* Mean and sample standard deviation (n - 1) of n values (sd NaN for n < 2). */
void md_mean_sd(const double *v, size_t n, double *mean, double *sd);

#endif
