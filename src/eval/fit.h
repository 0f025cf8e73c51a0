/* Internals of the evaluation module (src/eval): what the public
 * metricdepth_eval.h does not need to show. */
#ifndef MD_EVAL_FIT_H
#define MD_EVAL_FIT_H

#include "metricdepth_eval.h"

/* FNV-1a 64-bit, chainable: h = md_fnv1a64(MD_FNV1A64_INIT, data, n). */
#define MD_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t md_fnv1a64(uint64_t h, const void *data, size_t n);

/* Seed-protocol metrics of scale*pred against gt. */
md_status md_fit_scaled_metrics(const md_depth *pred, const md_depth *gt, double scale,
                                md_metrics *out, md_error *err);

#endif
