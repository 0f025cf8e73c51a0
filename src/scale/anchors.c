/* Global scale (and shift) from sparse metric anchors.
 *
 * Each usable anchor i gives the base network's value p_i at its pixel, its
 * measured depth g_i and a weight w_i > 0. Write y_i = ln g_i - ln p_i, the
 * log ratio. What spreads the y_i around the true ln s is, in order of size:
 * the network's own per-pixel error (FastDepth after the best global scale
 * still has AbsRel 0.12-0.19 on indoor data, so sd(y) is 0.15-0.25 even with
 * perfect anchors), the sensor's noise (a few percent, relative, so additive
 * in y) and gross outliers (wrong returns, mismatched features: y off by a
 * factor of 1.5 or more). All errors are multiplicative, so the robust fits
 * work on log or relative residuals, never on metres.
 *
 * The per-pixel error of a depth network is heavy-tailed, closer to a Laplace
 * than to a Gaussian distribution (whole regions are misjudged together; this
 * is why depth networks are trained with L1-type and Laplace-likelihood
 * losses). Under Laplace noise the maximum-likelihood location is the median
 * and the maximum-likelihood line is the least-absolute-deviations (L1) line;
 * both ignore how far a gross outlier lies. So the robust fits here are L1
 * fits, with outliers flagged afterwards by Hampel's X84 rule: a residual
 * beyond 5.2 MAD (3.5 robust sd, sd = 1.4826 MAD) of the fit's residuals. The
 * flags do not change the L1 estimate (it is already insensitive to them);
 * they count the inliers and keep outliers out of the scale map.
 *
 * ROBUST (the default): Hampel's skipped median of y, moved to where the
 * relative error is least. The weighted median of y, X84 flags about it, then
 * the weighted median of the inliers, so that a cluster of gross outliers on
 * one side cannot pull the estimate by the ranks it occupies. Then the move:
 * depth is judged by its relative error (AbsRel, the report's first column),
 * and sum_i |s p_i - g_i| / g_i = sum_i e^-y_i |s - e^y_i| is least at the
 * median of y tilted by weights e^-y, not at the median itself. For y with
 * median m, spread sigma and density f(m) at the median, to first order the
 * tilted median is m - E|y - m| / (2 f(m)): m - sigma^2 for Gaussian y,
 * m - b^2 for Laplace y of scale b (about sigma^2 again with the MAD-based
 * sigma). On the whole images (FastDepth, 363 RGB-D pairs of SUN3D,
 * 7-Scenes, NYU, TUM and Kinect; sigma from the population's MAD) the exact
 * tilted median lies 1.05-1.4 sigma^2 below the median, and it lowers AbsRel
 * below the global W1 oracle's. The sample tilted median itself (weights
 * e^-y on the anchors) is too noisy to use (+6.3 % below); the fit instead
 * moves the skipped median by KAPPA sigma^2, sigma the anchors' robust sd.
 * KAPPA = 1/2, half the theory: the anchors' sigma also carries the sensor's
 * noise and the outliers' inflation of the MAD, and a smaller move costs
 * little when it is too small. Measured on those datasets (2 % noise, 10 %
 * outliers, 10 seeds; AbsRel relative to the global W1 oracle's), it gains
 * at every K: at K = 16 from +2.8, +4.2, +3.1, +2.6 % (SUN3D f1, f2,
 * 7-Scenes, NYU/TUM/Kinect) to +0.9, +2.3, +1.5, +1.9 %, at K = 4 by 1.5-4.5
 * points; KAPPA = 1 gains less at K = 16-64 (+1.3, +2.5, +2.5, +3.4 %) and
 * the same at 256. With MAD 0 (more than half the anchors agree exactly)
 * there is no spread to move by; the sd is capped (MOVE_MAX_SD). The scale
 * map starts from the moved scale (its value far from every anchor) and
 * follows the anchors near them.
 * Standard error: under Laplace noise of scale b (estimated by
 * the inliers' mean absolute deviation, at least 1 %: no sensor is more
 * precise) a weighted median has sd b sqrt(sum w^2) / sum w (b / sqrt(K) with
 * unit weights); unknown (NaN) below 3 anchors.
 *
 * Estimators tried and set aside, on FastDepth with 16 anchors (2 % noise, 10 %
 * outliers; AbsRel relative to the global W1 oracle's, SUN3D fragment 2): in
 * eval-anchors runs on the same draws (3 seeds) the plain median gave +4.4 %, a
 * Tukey biweight (95 % Gaussian efficiency) +5.5 %, the minimiser of the
 * anchors' own relative error (it gives near outliers up to 4 times the weight)
 * +6.3 % and a regression estimator on the network's log depth (the L1 line in
 * ln p evaluated at the image's median depth: with 16 anchors the slope costs
 * more than the correlation, about -0.3, saves) +10.1 %; in a separate
 * simulation with other draws (median +4.3 %) Hodges-Lehmann gave +8.4 % and
 * Huber +6.7 %. Without noise and outliers the median of 16 ratios is within
 * 2.2 % of the oracle; with them, even discarding exactly the true outliers
 * leaves it at +3.1 %: at K = 16 the limit is the sample, not the estimator.
 *
 * Weighted L1 line. F(alpha, beta) = sum c_i |y_i - alpha - beta x_i| is
 * jointly convex, so G(beta) = min_alpha F = F(wmed(y - beta x), beta) is
 * convex in beta (partial minimisation keeps convexity). Golden-section search
 * over beta in a bracket then finds the minimiser to 1e-12 of the bracket, each
 * step a weighted median, O(K log K). (The exact optimum passes through two
 * anchors; the tests check against that enumeration.)
 *
 * W1. The oracle's criterion restricted to the anchors: the 1-Wasserstein
 * distance between the weighted empirical distributions of s p and of g,
 *
 *     f(s) = int_0^1 |s P^-1(t) - G^-1(t)| dt,
 *
 * P^-1, G^-1 the quantile functions (step functions). Merging their
 * breakpoints cuts [0, 1] into pieces j of length l_j on which both are
 * constant (p_j, g_j), so f(s) = sum_j l_j p_j |s - g_j / p_j|: a weighted
 * median of g_j / p_j with weights l_j p_j, taken as the midpoint of the
 * minimiser set like the oracle solver (src/scale/optimal_scale.c). With unit
 * weights the pieces are the pairs (p_(i), g_(i)) of independently sorted
 * values, i.e. md_scale_fit's W1.
 *
 * MEDIAN: the weighted median of r_i = g_i / p_i (midpoint of the minimiser set
 * of sum w_i |s - r_i|). LSQ: argmin sum w_i (s p_i - g_i)^2 =
 * sum w_i p_i g_i / sum w_i p_i^2, not robust (kept as the plain baseline users
 * reach for first).
 *
 * SCALE-SHIFT, the standard alignment of relative (disparity) networks: with
 * q_i the base value as inverse depth (1 / p_i for a depth network, p_i itself
 * for a disparity network), fit 1 / g ~ a q + b. The residual is relative,
 * e_i = g_i (a q_i + b) - 1 (the relative error of the fitted inverse depth,
 * about minus the relative error of depth), so near and far anchors count
 * alike, and the fit is L1 in it: sum w_i g_i |a q_i + b - 1 / g_i|, the
 * weighted L1 line of 1/g on q with weights w g, a searched in (0, 100 a0]
 * (a0 the scale-only median's 1/s; a <= 0 would reverse the depth order).
 * Reported: scale = 1 / a, shift = b (1/m), so that for a depth base
 * depth = 1 / (1 / (scale p) + shift). Three anchors at least: two determine
 * the line exactly and leave nothing to check it with.
 */
#include "scale/anchors.h"

#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAD_TO_SD 1.4826
#define X84_SD 3.5          /* Hampel's 5.2 MAD */
#define SIGMA_FLOOR 1e-6    /* float precision of a depth ratio */
/* No depth sensor measures better than about 1 % of the distance: anchors
 * that agree more closely than that do not make ln s more certain than 1 %
 * per anchor (it keeps a sequence filter from trusting three lucky anchors
 * absolutely). */
#define MIN_RELATIVE_NOISE 0.01
/* The robust fit's move towards the relative-error optimum, in units of the
 * anchors' robust variance of ln r (derivation above). */
#define KAPPA 0.5
/* ... with that sd taken at most 0.35 (a move of at most 6 %): anchors whose
 * ratios spread wider than a depth network's own per-pixel error disagree for
 * reasons the move does not model (a bad sensor, wrong units, a mismatch).
 * Measured (10 seeds, 4 and 16 anchors): no change beyond the noise. */
#define MOVE_MAX_SD 0.35

static const char *const fit_names[] = {"robust", "w1", "median", "lsq", "scale-shift"};

const char *md_anchor_fit_name(md_anchor_fit fit)
{
    return md_enum_name(fit_names, sizeof fit_names / sizeof *fit_names, (int)fit);
}

int md_anchor_fit_parse(const char *name)
{
    return md_enum_parse(fit_names, sizeof fit_names / sizeof *fit_names, name);
}

size_t md_anchor_fit_min_count(md_anchor_fit fit)
{
    return fit == MD_ANCHOR_FIT_SCALE_SHIFT ? 3 : 1;
}

/* "name: " or "" for messages. */
static const char *pre(const char *name)
{
    return name && *name ? name : "anchors";
}

/* ------------------------------------------------------------ samples */

md_status md_anchors_check(const md_anchor_set *set, int width, int height, const char *name,
                           md_error *err)
{
    if (!set || (set->count > 0 && !set->items))
        return md_fail(err, MD_ERR_ARG, "%s: no anchor set", pre(name));
    if (set->count == 0)
        return md_fail(err, MD_ERR_DATA, "%s: no anchors", pre(name));
    for (size_t i = 0; i < set->count; i++) {
        const md_anchor *a = &set->items[i];
        if (!(a->u >= 0.0f && a->u < (float)width && a->v >= 0.0f && a->v < (float)height))
            return md_fail(err, MD_ERR_DATA,
                           "%s: anchor %zu at (%g, %g) lies outside the %dx%d image", pre(name),
                           i + 1, (double)a->u, (double)a->v, width, height);
        if (!(a->depth > 0.0f && isfinite(a->depth)))
            return md_fail(err, MD_ERR_DATA,
                           "%s: anchor %zu has depth %g (want a finite depth > 0 m)", pre(name),
                           i + 1, (double)a->depth);
        if (!(a->weight > 0.0f && isfinite(a->weight)))
            return md_fail(err, MD_ERR_DATA,
                           "%s: anchor %zu has weight %g (want a finite weight > 0)", pre(name),
                           i + 1, (double)a->weight);
    }
    return MD_OK;
}

void md_anchor_samples_free(md_anchor_samples *s)
{
    if (!s)
        return;
    free(s->base);
    free(s->depth);
    free(s->w);
    free(s->px);
    free(s->py);
    memset(s, 0, sizeof *s);
}

md_status md_anchor_samples_collect(const md_depth *base, const md_anchor_set *set,
                                    const char *name, md_anchor_samples *out, md_error *err)
{
    memset(out, 0, sizeof *out);
    if (!base || !base->data || base->width <= 0 || base->height <= 0)
        return md_fail(err, MD_ERR_ARG, "%s: empty base depth map", pre(name));
    md_status st = md_anchors_check(set, base->width, base->height, name, err);
    if (st != MD_OK)
        return st;
    size_t n = set->count;
    out->base = md_malloc(n * sizeof *out->base, "anchor samples", err);
    out->depth = md_malloc(n * sizeof *out->depth, "anchor samples", err);
    out->w = md_malloc(n * sizeof *out->w, "anchor samples", err);
    out->px = md_malloc(n * sizeof *out->px, "anchor samples", err);
    out->py = md_malloc(n * sizeof *out->py, "anchor samples", err);
    if (!out->base || !out->depth || !out->w || !out->px || !out->py) {
        md_anchor_samples_free(out);
        return MD_ERR_NOMEM;
    }
    out->total = n;
    for (size_t i = 0; i < n; i++) {
        const md_anchor *a = &set->items[i];
        int x = (int)floorf(a->u), y = (int)floorf(a->v);
        size_t k = (size_t)y * (size_t)base->width + (size_t)x;
        if (!md_depth_valid_at(base, k))
            continue;
        out->base[out->n] = base->data[k];
        out->depth[out->n] = a->depth;
        out->w[out->n] = a->weight;
        out->px[out->n] = x;
        out->py[out->n] = y;
        out->n++;
    }
    if (out->n == 0) {
        md_anchor_samples_free(out);
        return md_fail(err, MD_ERR_DATA,
                       "%s: none of the %zu anchors falls on a pixel with a valid base depth "
                       "(e.g. outside the network's crop)",
                       pre(name), n);
    }
    out->total = n;
    return MD_OK;
}

/* ------------------------------------------------------ weighted median */

typedef struct {
    double v, w;
} vw;

static int cmp_vw(const void *a, const void *b)
{
    double x = ((const vw *)a)->v, y = ((const vw *)b)->v;
    return (x > y) - (x < y);
}

/* On sorted pairs: smallest x with C(x) >= W/2, and the midpoint with the next
 * value when C(x) == W/2 exactly (the minimiser set is then that interval). */
static double sorted_weighted_median(const vw *a, size_t n)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++)
        total += a[i].w;
    double half = 0.5 * total, c = 0.0;
    for (size_t i = 0; i < n; i++) {
        c += a[i].w;
        if (c >= half) {
            if (c == half && i + 1 < n)
                return 0.5 * (a[i].v + a[i + 1].v);
            return a[i].v;
        }
    }
    return a[n - 1].v; /* rounding left the whole weight below half */
}

double md_weighted_median(const double *v, const double *w, size_t n)
{
    if (n == 0)
        return NAN;
    vw stack[64];
    vw *a = n <= 64 ? stack : malloc(n * sizeof *a);
    if (!a)
        return NAN;
    for (size_t i = 0; i < n; i++) {
        a[i].v = v[i];
        a[i].w = w ? w[i] : 1.0;
    }
    qsort(a, n, sizeof *a, cmp_vw);
    double m = sorted_weighted_median(a, n);
    if (a != stack)
        free(a);
    return m;
}

/* ---------------------------------------------------------- L1 fits */

/* 1.4826 * weighted MAD of the residuals r about 0, floored. */
static double robust_sigma(const double *r, const double *w, size_t n, double *scratch)
{
    for (size_t i = 0; i < n; i++)
        scratch[i] = fabs(r[i]);
    double s = MAD_TO_SD * md_weighted_median(scratch, w, n);
    return s > SIGMA_FLOOR ? s : SIGMA_FLOOR;
}

/* G(beta) = min_alpha sum c |y - alpha - beta x|, and that alpha. */
static double l1_profile(const double *x, const double *y, const double *c, size_t n,
                         double beta, double *alpha, double *v)
{
    for (size_t i = 0; i < n; i++)
        v[i] = y[i] - beta * x[i];
    double a = md_weighted_median(v, c, n), f = 0.0;
    for (size_t i = 0; i < n; i++)
        f += c[i] * fabs(v[i] - a);
    *alpha = a;
    return f;
}

void md_l1_line(const double *x, const double *y, const double *c, size_t n, double lo,
                double hi, double *alpha, double *beta, double *scratch)
{
    /* golden-section search of the convex G over [lo, hi] */
    const double g = 0.6180339887498949;
    double a = lo, b = hi, al;
    double x1 = b - g * (b - a), x2 = a + g * (b - a);
    double f1 = l1_profile(x, y, c, n, x1, &al, scratch);
    double f2 = l1_profile(x, y, c, n, x2, &al, scratch);
    for (int it = 0; it < 200 && b - a > 1e-12 * (hi - lo); it++) {
        if (f1 <= f2) {
            b = x2;
            x2 = x1;
            f2 = f1;
            x1 = b - g * (b - a);
            f1 = l1_profile(x, y, c, n, x1, &al, scratch);
        } else {
            a = x1;
            x1 = x2;
            f1 = f2;
            x2 = a + g * (b - a);
            f2 = l1_profile(x, y, c, n, x2, &al, scratch);
        }
    }
    *beta = 0.5 * (a + b);
    l1_profile(x, y, c, n, *beta, alpha, scratch);
}

/* X84 flags on residuals r; returns the inlier count and the robust sd. */
static size_t flag_outliers(const double *r, const double *w, size_t n, unsigned char *inlier,
                            double *sigma, double *scratch)
{
    double sd = robust_sigma(r, w, n, scratch);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int in = n < 3 || fabs(r[i]) <= X84_SD * sd;
        kept += (size_t)in;
        if (inlier)
            inlier[i] = (unsigned char)in;
    }
    *sigma = sd;
    return kept;
}

/* Hampel's skipped median of y = ln r: the weighted median, X84 flags about
 * it, the weighted median of the inliers. */
static md_status fit_robust(const md_anchor_samples *s, md_anchor_result *out,
                            unsigned char *inlier, md_error *err)
{
    size_t n = s->n;
    double *buf = md_malloc(5 * n * sizeof *buf, "anchor fit", err);
    unsigned char *in = md_malloc(n, "anchor fit", err);
    if (!buf || !in) {
        free(buf);
        free(in);
        return MD_ERR_NOMEM;
    }
    double *y = buf, *e = buf + n, *scratch = buf + 2 * n, *yi = buf + 3 * n, *wi = buf + 4 * n;
    for (size_t i = 0; i < n; i++)
        y[i] = log(s->depth[i]) - log(s->base[i]);
    double m0 = md_weighted_median(y, s->w, n);
    for (size_t i = 0; i < n; i++)
        e[i] = y[i] - m0;
    double sigma;
    size_t kept = flag_outliers(e, s->w, n, in, &sigma, scratch), k = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i]) {
            yi[k] = y[i];
            wi[k++] = s->w[i];
        }
    double m = md_weighted_median(yi, wi, k); /* k >= half the anchors: the MAD's own half */
    double spread = n >= 3 && sigma > SIGMA_FLOOR ? fmin(sigma, MOVE_MAX_SD) : 0.0;
    out->scale = exp(m - KAPPA * spread * spread);
    out->shift = 0.0;
    out->inliers = kept;
    out->residual_sd = n >= 3 ? sigma : NAN;
    out->log_scale_sd = NAN;
    if (n >= 3) {
        /* a weighted median's sd under Laplace noise of scale b (the inliers'
         * mean absolute deviation from it): b sqrt(sum w^2) / sum w */
        double babs = 0, sw = 0, sw2 = 0;
        for (size_t i = 0; i < k; i++) {
            babs += wi[i] * fabs(yi[i] - m);
            sw += wi[i];
            sw2 += wi[i] * wi[i];
        }
        double b = fmax(babs / sw, MIN_RELATIVE_NOISE);
        out->log_scale_sd = b * sqrt(sw2) / sw;
    }
    if (inlier)
        memcpy(inlier, in, n);
    free(buf);
    free(in);
    return MD_OK;
}

/* ------------------------------------------------------------------ W1 */

static md_status fit_w1(const md_anchor_samples *s, double *scale, md_error *err)
{
    size_t n = s->n;
    vw *ps = md_malloc(2 * n * sizeof *ps, "anchor W1", err);
    /* at most 2n - 1 pieces */
    double *ratio = md_malloc(2 * (2 * n) * sizeof *ratio, "anchor W1", err);
    if (!ps || !ratio) {
        free(ps);
        free(ratio);
        return MD_ERR_NOMEM;
    }
    double *len_p = ratio + 2 * n;
    vw *gs = ps + n;
    for (size_t i = 0; i < n; i++) {
        ps[i].v = s->base[i];
        ps[i].w = s->w[i];
        gs[i].v = s->depth[i];
        gs[i].w = s->w[i];
    }
    qsort(ps, n, sizeof *ps, cmp_vw);
    qsort(gs, n, sizeof *gs, cmp_vw);
    /* merge the two quantile functions' breakpoints */
    size_t i = 0, j = 0, k = 0;
    double ri = ps[0].w, rj = gs[0].w;
    while (i < n && j < n && k < 2 * n) {
        double m = ri < rj ? ri : rj;
        if (m > 0.0) {
            ratio[k] = gs[j].v / ps[i].v;
            len_p[k] = m * ps[i].v;
            k++;
        }
        ri -= m;
        rj -= m;
        /* the smaller remainder is exactly zero; a rounding residue of the
         * other (relative 1e-16) is dropped with it */
        if (ri <= 1e-12 * ps[i].w) {
            if (++i < n)
                ri = ps[i].w;
        }
        if (rj <= 1e-12 * gs[j].w) {
            if (++j < n)
                rj = gs[j].w;
        }
    }
    *scale = md_weighted_median(ratio, len_p, k);
    free(ps);
    free(ratio);
    return MD_OK;
}

/* --------------------------------------------------------- scale-shift */

static md_status fit_scale_shift(const md_anchor_samples *s, int disparity, const char *name,
                                 md_anchor_result *out, unsigned char *inlier, md_error *err)
{
    size_t n = s->n;
    double *buf = md_malloc(6 * n * sizeof *buf, "scale-shift fit", err);
    if (!buf)
        return MD_ERR_NOMEM;
    double *q = buf, *yi = buf + n, *c = buf + 2 * n, *r = buf + 3 * n, *scratch = buf + 4 * n;
    double *ratio = buf + 5 * n;
    double qmin = INFINITY, qmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        q[i] = disparity ? s->base[i] : 1.0 / s->base[i];
        yi[i] = 1.0 / s->depth[i];
        c[i] = s->w[i] * s->depth[i];
        ratio[i] = yi[i] / q[i]; /* 1/g = a q with no shift */
        qmin = fmin(qmin, q[i]);
        qmax = fmax(qmax, q[i]);
    }
    if (!(qmax > qmin)) {
        free(buf);
        return md_fail(err, MD_ERR_DATA,
                       "%s: the anchors do not determine a scale and shift: the network gives "
                       "every one of them the same depth",
                       pre(name));
    }
    double a0 = md_weighted_median(ratio, c, n);
    double a, b;
    md_l1_line(q, yi, c, n, 0.0, 100.0 * a0, &b, &a, scratch);
    if (!(a > 1e-9 * a0)) {
        free(buf);
        return md_fail(err, MD_ERR_DATA,
                       "%s: the scale-shift fit reverses the network's depth order (inverse-"
                       "depth scale %g <= 0): the anchors contradict the base depth",
                       pre(name), a);
    }
    for (size_t i = 0; i < n; i++)
        r[i] = s->depth[i] * (a * q[i] + b) - 1.0;
    double sigma;
    out->inliers = flag_outliers(r, s->w, n, inlier, &sigma, scratch);
    out->scale = 1.0 / a;
    out->shift = b;
    for (size_t i = 0; i < n; i++) {
        double fitted = a * q[i] + b; /* ln(g / fitted depth) */
        r[i] = fitted > 0.0 ? log(s->depth[i] * fitted) : INFINITY;
    }
    out->residual_sd = robust_sigma(r, s->w, n, scratch);
    out->log_scale_sd = NAN; /* the shift trades off against the scale: no one number */
    free(buf);
    return MD_OK;
}

/* ------------------------------------------------------------ dispatch */

md_status md_anchor_fit_samples(const md_anchor_samples *s, md_anchor_fit fit, int disparity,
                                const char *name, md_anchor_result *out,
                                unsigned char *inlier, md_error *err)
{
    memset(out, 0, sizeof *out);
    out->log_scale_sd = NAN;
    out->residual_sd = NAN;
    if ((unsigned)fit > (unsigned)MD_ANCHOR_FIT_SCALE_SHIFT)
        return md_fail(err, MD_ERR_ARG, "%s: unknown anchor fit %d", pre(name), (int)fit);
    if (disparity && fit != MD_ANCHOR_FIT_SCALE_SHIFT)
        return md_fail(err, MD_ERR_ARG,
                       "%s: a relative (disparity) network needs the scale-shift fit, not %s",
                       pre(name), md_anchor_fit_name(fit));
    size_t need = md_anchor_fit_min_count(fit);
    if (s->n < need)
        return md_fail(err, MD_ERR_DATA,
                       "%s: %zu of %zu anchors fall on a pixel with a valid base depth; the %s "
                       "fit needs at least %zu",
                       pre(name), s->n, s->total, md_anchor_fit_name(fit), need);
    if (fit == MD_ANCHOR_FIT_ROBUST)
        return fit_robust(s, out, inlier, err);
    if (fit == MD_ANCHOR_FIT_SCALE_SHIFT)
        return fit_scale_shift(s, disparity, name, out, inlier, err);

    double scale = NAN;
    if (fit == MD_ANCHOR_FIT_W1) {
        md_status st = fit_w1(s, &scale, err);
        if (st != MD_OK)
            return st;
    } else if (fit == MD_ANCHOR_FIT_MEDIAN) {
        double *r = md_malloc(s->n * sizeof *r, "anchor ratios", err);
        if (!r)
            return MD_ERR_NOMEM;
        for (size_t i = 0; i < s->n; i++)
            r[i] = s->depth[i] / s->base[i];
        scale = md_weighted_median(r, s->w, s->n);
        free(r);
    } else {
        double pg = 0, pp = 0;
        for (size_t i = 0; i < s->n; i++) {
            pg += s->w[i] * s->base[i] * s->depth[i];
            pp += s->w[i] * s->base[i] * s->base[i];
        }
        scale = pg / pp;
    }
    if (!(scale > 0.0 && isfinite(scale)))
        return md_fail(err, MD_ERR_DATA, "%s: the %s fit is not a positive number", pre(name),
                       md_anchor_fit_name(fit));
    out->scale = scale;
    out->inliers = s->n;
    if (inlier)
        memset(inlier, 1, s->n);
    if (s->n >= 3) {
        double *r = md_malloc(2 * s->n * sizeof *r, "anchor residuals", err);
        if (!r)
            return MD_ERR_NOMEM;
        for (size_t i = 0; i < s->n; i++)
            r[i] = log(s->depth[i] / (scale * s->base[i]));
        out->residual_sd = robust_sigma(r, s->w, s->n, r + s->n);
        free(r);
    }
    return MD_OK;
}
