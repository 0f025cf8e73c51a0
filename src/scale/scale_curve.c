/* How a prediction's error depends on its scale: AbsRel, RMSE and delta1 of
 * s x pred against gt for any s, from a few kilobytes per image. Training
 * and calibrating a scale predictor evaluates hundreds of candidate scales
 * per image; this keeps every image's depth maps out of memory.
 *
 * Over the N pixels valid in both maps (the seed protocol), with the ratios
 * q_i = p_i / g_i:
 *   AbsRel(s) = mean |s p_i - g_i| / g_i = mean |s q_i - 1|
 *   RMSE(s)^2 = (s^2 sum p^2 - 2 s sum p g + sum g^2) / N       (exact)
 *   delta1(s) = share of i with max(s q_i, 1 / (s q_i)) < 1.25
 *             = share of i with 0.8 < s q_i < 1.25
 * AbsRel and delta1 read the distribution of q through K = MD_CURVE_POINTS
 * mid-quantiles (point k stands for the ratios ranked in [k N/K, (k+1) N/K)),
 * so each is within about 1/K of its exact value; RMSE is exact. */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

md_status md_scale_curve_build(const md_depth *pred, const md_depth *gt, md_scale_curve *out,
                               md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "scale curve: NULL argument");
    memset(out, 0, sizeof *out);
    float *p = NULL, *g = NULL;
    size_t n = 0;
    md_status st = md_depth_valid_samples(pred, gt, &p, &g, &n, err);
    if (st != MD_OK)
        return st;
    if (n == 0) {
        free(p);
        free(g);
        return md_fail(err, MD_ERR_DATA, "scale curve: no pixel valid in both maps");
    }
    double sp2 = 0, spg = 0, sg2 = 0;
    for (size_t i = 0; i < n; i++) {
        sp2 += (double)p[i] * p[i];
        spg += (double)p[i] * g[i];
        sg2 += (double)g[i] * g[i];
        p[i] = p[i] / g[i]; /* the ratio q, in place */
    }
    qsort(p, n, sizeof *p, cmp_float);
    for (int k = 0; k < MD_CURVE_POINTS; k++) {
        size_t i = (size_t)(((double)k + 0.5) / MD_CURVE_POINTS * (double)n);
        out->q[k] = p[i < n ? i : n - 1];
    }
    out->n = n;
    out->sum_p2 = sp2;
    out->sum_pg = spg;
    out->sum_g2 = sg2;
    free(p);
    free(g);
    return MD_OK;
}

void md_scale_curve_eval(const md_scale_curve *c, double s, md_metrics *out)
{
    memset(out, 0, sizeof *out);
    double ar = 0;
    size_t in = 0;
    for (int k = 0; k < MD_CURVE_POINTS; k++) {
        double r = s * c->q[k];
        ar += fabs(r - 1.0);
        in += r > 0.8 && r < 1.25;
    }
    double n = (double)c->n;
    double mse = (s * s * c->sum_p2 - 2 * s * c->sum_pg + c->sum_g2) / n;
    out->abs_rel = ar / MD_CURVE_POINTS;
    out->rmse = sqrt(mse > 0 ? mse : 0);
    out->delta1 = (double)in / MD_CURVE_POINTS;
    out->n_valid = c->n;
    out->sq_rel = out->rmse_log = out->log10 = out->silog = NAN;
    out->delta2 = out->delta3 = NAN;
}
