/* Per-image depth accuracy metrics and the two evaluation protocols.
 *
 * Over the N evaluated pixels, with p the prediction and g the ground truth
 * (metres) and e = ln p - ln g:
 *   AbsRel   = mean |p - g| / g
 *   SqRel    = mean (p - g)^2 / g
 *   RMSE     = sqrt(mean (p - g)^2)
 *   RMSE-log = sqrt(mean e^2)
 *   log10    = mean |log10 p - log10 g|  (= mean |e| / ln 10)
 *   SILog    = sqrt(mean e^2 - 0.5 (mean e)^2). This is Depth Anything V2's
 *              definition (lambda = 0.5, no factor 100, no sqrt-of-variance
 *              form); it is not scale-invariant in the strict sense.
 *   deltaK   = fraction of pixels with max(p/g, g/p) < 1.25^K (strict, so a
 *              ratio of exactly 1.25 does not count towards delta1).
 * Sums are accumulated in double.
 *
 * Protocols:
 *   seed:  every pixel where both gt and pred are valid (md_depth_valid_at:
 *          finite, > 0, mask allows), whole image.
 *   eigen: the Eigen crop, rows [45, 471) and columns [41, 601) of a 480x640
 *          map (gt[45:471, 41:601]); for other sizes each bound is scaled
 *          proportionally and rounded half up (e.g. 960x1280 -> [90, 942) x
 *          [82, 1202)). Pixels with valid gt in the open interval (1e-3, 10) m
 *          are evaluated; pred is clipped to [1e-3, 10]. The bounds are the
 *          float32 values 1e-3f and 10.0f, as in the usual float32 numpy /
 *          PyTorch evaluation code (so a gt of exactly 1e-3f is excluded).
 *          A pixel whose prediction is invalid (0, negative, NaN, infinite, or
 *          outside pred's mask) is left out, as under seed: a depth file
 *          stores "no prediction" as 0 (FastDepth's unseen border, the cache),
 *          and counting it as 1e-3 m would make the same prediction score
 *          differently when read back from a file than when fresh.
 */
#include "base/base.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#define EIGEN_MIN 1e-3f
#define EIGEN_MAX 10.0f

int md_protocol_parse(const char *name)
{
    if (!name)
        return -1;
    if (strcasecmp(name, "seed") == 0)
        return MD_PROTOCOL_SEED;
    if (strcasecmp(name, "eigen") == 0)
        return MD_PROTOCOL_EIGEN;
    return -1;
}

typedef struct {
    double abs_rel, sq_rel, sq, log_sq, log_abs, log_sum;
    size_t n, d1, d2, d3;
} accum;

static void add_pixel(accum *a, double p, double g)
{
    double diff = p - g;
    double e = log(p) - log(g);
    a->abs_rel += fabs(diff) / g;
    a->sq_rel += diff * diff / g;
    a->sq += diff * diff;
    a->log_sq += e * e;
    a->log_abs += fabs(e);
    a->log_sum += e;
    double ratio = p > g ? p / g : g / p;
    /* 1.25, 1.25^2 = 1.5625 and 1.25^3 = 1.953125 are exact in binary */
    a->d1 += ratio < 1.25;
    a->d2 += ratio < 1.5625;
    a->d3 += ratio < 1.953125;
    a->n++;
}

/* Proportional crop bound: round(num * size / den), half up, exact integers. */
static size_t scaled_bound(size_t num, size_t size, size_t den)
{
    return (2 * num * size + den) / (2 * den);
}

md_status md_metrics_compute(const md_depth *pred, const md_depth *gt, md_protocol protocol,
                             md_metrics *out, md_error *err)
{
    if (!pred || !gt || !out)
        return md_fail(err, MD_ERR_ARG, "metrics: NULL argument");
    if (protocol != MD_PROTOCOL_SEED && protocol != MD_PROTOCOL_EIGEN)
        return md_fail(err, MD_ERR_ARG, "metrics: unknown protocol %d", (int)protocol);
    if (pred->width != gt->width || pred->height != gt->height)
        return md_fail(err, MD_ERR_DATA,
                       "metrics: prediction is %dx%d but ground truth is %dx%d", pred->width,
                       pred->height, gt->width, gt->height);
    if (gt->width < 0 || gt->height < 0 || gt->width > MD_MAX_DIM || gt->height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "metrics: bad size %dx%d", gt->width, gt->height);
    size_t w = (size_t)gt->width, h = (size_t)gt->height;
    if (w * h > 0 && (!pred->data || !gt->data))
        return md_fail(err, MD_ERR_ARG, "metrics: depth map without data");

    size_t r0 = 0, r1 = h, c0 = 0, c1 = w;
    if (protocol == MD_PROTOCOL_EIGEN) {
        r0 = scaled_bound(45, h, 480);
        r1 = scaled_bound(471, h, 480);
        c0 = scaled_bound(41, w, 640);
        c1 = scaled_bound(601, w, 640);
        if (r1 > h)
            r1 = h;
        if (c1 > w)
            c1 = w;
    }
    accum a;
    memset(&a, 0, sizeof a);
    for (size_t y = r0; y < r1; y++) {
        for (size_t x = c0; x < c1; x++) {
            size_t i = y * w + x;
            if (!md_depth_valid_at(gt, i))
                continue;
            float g = gt->data[i];
            if (protocol == MD_PROTOCOL_SEED) {
                if (md_depth_valid_at(pred, i))
                    add_pixel(&a, pred->data[i], g);
                continue;
            }
            if (!(g > EIGEN_MIN && g < EIGEN_MAX) || !md_depth_valid_at(pred, i))
                continue;
            float p = pred->data[i];
            p = p < EIGEN_MIN ? EIGEN_MIN : (p > EIGEN_MAX ? EIGEN_MAX : p);
            add_pixel(&a, p, g);
        }
    }
    if (a.n == 0)
        return md_fail(err, MD_ERR_DATA, "metrics: no valid pixel (%dx%d map, %s protocol)",
                       gt->width, gt->height, protocol == MD_PROTOCOL_SEED ? "seed" : "eigen");
    double n = (double)a.n;
    double mean_e = a.log_sum / n, mean_e2 = a.log_sq / n;
    double si = mean_e2 - 0.5 * mean_e * mean_e;
    out->abs_rel = a.abs_rel / n;
    out->sq_rel = a.sq_rel / n;
    out->rmse = sqrt(a.sq / n);
    out->rmse_log = sqrt(mean_e2);
    out->log10 = a.log_abs / n / log(10.0);
    out->silog = sqrt(si > 0.0 ? si : 0.0);
    out->delta1 = (double)a.d1 / n;
    out->delta2 = (double)a.d2 / n;
    out->delta3 = (double)a.d3 / n;
    out->n_valid = a.n;
    return MD_OK;
}

void md_metrics_mean(const md_metrics *items, size_t n, md_metrics *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!items || n == 0) {
        out->abs_rel = out->sq_rel = out->rmse = out->rmse_log = out->log10 = out->silog = NAN;
        out->delta1 = out->delta2 = out->delta3 = NAN;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const md_metrics *m = &items[i];
        out->abs_rel += m->abs_rel;
        out->sq_rel += m->sq_rel;
        out->rmse += m->rmse;
        out->rmse_log += m->rmse_log;
        out->log10 += m->log10;
        out->silog += m->silog;
        out->delta1 += m->delta1;
        out->delta2 += m->delta2;
        out->delta3 += m->delta3;
        out->n_valid += m->n_valid;
    }
    double k = (double)n;
    out->abs_rel /= k;
    out->sq_rel /= k;
    out->rmse /= k;
    out->rmse_log /= k;
    out->log10 /= k;
    out->silog /= k;
    out->delta1 /= k;
    out->delta2 /= k;
    out->delta3 /= k;
}
