/* Optimal global scale between a predicted and a ground-truth depth sample.
 *
 * W1 (the seed's criterion). With equal counts, the 1-Wasserstein distance
 * between the empirical distributions of s*p and g is
 *
 *     f(s) = (1/n) sum_i |s p_(i) - g_(i)|,
 *
 * p_(i) and g_(i) sorted independently (this equals
 * scipy.stats.wasserstein_distance for equal-size samples). Sorting p is
 * unaffected by s > 0, so with r_i = g_(i) / p_(i) and w_i = p_(i) > 0,
 *
 *     f(s) = (1/n) sum_i w_i |s - r_i|,
 *
 * a convex piecewise-linear function of s whose slope between breakpoints is
 * (C(s) - (W - C(s))) / n, C(s) = sum of w_i with r_i <= s, W = sum w_i. The
 * minimisers are the weighted medians of r: x* = the smallest r with
 * C(x*) >= W/2. If C(x*) > W/2 the minimiser is unique; if C(x*) == W/2
 * exactly, f is flat on [x*, y] (y = the next larger r) and we return the
 * midpoint of that interval. Ties are decided exactly in double arithmetic,
 * which is exact whenever the partial sums of the weights are representable
 * (integer or dyadic depths, as in hand-made cases); for real-valued data an
 * exact tie has probability zero and any mis-decided near-tie changes f only
 * by rounding. Because f is convex, the minimiser over [lo, hi] is the
 * unconstrained one clamped to [lo, hi]; with a flat interval we take the
 * midpoint of its intersection with [lo, hi] (or the nearer bound if they do
 * not meet).
 *
 * Cost: two radix sorts of the float bit patterns (positive IEEE floats order
 * like their bits as unsigned integers), then an expected O(n) weighted
 * quickselect over the ratios in double.
 *
 * W2: argmin (1/n) sum (s p_(i) - g_(i))^2 = sum p_(i) g_(i) / sum p_(i)^2 on
 * independently sorted values. MEDIAN: median(g) / median(p), the median of an
 * even count being the mean of the two middle values. LSQ: paired
 * sum p g / sum p^2. LOGLSQ: exp(mean(ln g - ln p)), computed exactly as
 * exponent sums plus a product of mantissas (no per-pixel log).
 * All are clamped to [lo, hi].
 */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Float storage that may be read either as bits or as a value (C11 allows
 * type punning through a union). */
typedef union {
    float f;
    uint32_t u;
} f32bits;

/* Long sums are accumulated in blocks of this many terms, then the block
 * sums added: the rounding error grows like (SUM_BLOCK + n / SUM_BLOCK) eps
 * instead of n eps, at no measurable cost. */
#define SUM_BLOCK ((size_t)1024)

/* A ratio and its weight, for the weighted quickselect. */
typedef struct {
    double r, w;
} weighted;

int md_scale_method_parse(const char *name)
{
    static const char *const names[] = {"w1", "w2", "median", "lsq", "loglsq"};
    if (!name)
        return -1;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *md_scale_method_name(md_scale_method m)
{
    switch (m) {
    case MD_SCALE_W1: return "w1";
    case MD_SCALE_W2: return "w2";
    case MD_SCALE_MEDIAN: return "median";
    case MD_SCALE_LSQ: return "lsq";
    case MD_SCALE_LOGLSQ: return "loglsq";
    }
    return "unknown";
}

/* ------------------------------------------------------------ radix sort */

/* Sorts n positive (non-negative) floats held as bits in a, using tmp (n
 * elements) as scratch. LSD radix on digits of 11, 11 and 10 bits; a pass
 * whose digit is the same for every key is skipped. The result is in a. */
static void radix_sort_positive(f32bits *a, f32bits *tmp, size_t n)
{
    enum { B0 = 11, B1 = 11, B2 = 10 };
    static const unsigned shift[3] = {0, B0, B0 + B1};
    static const uint32_t mask[3] = {(1u << B0) - 1, (1u << B1) - 1, (1u << B2) - 1};
    size_t hist[3][1u << 11];
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = a[i].u;
        hist[0][u & mask[0]]++;
        hist[1][(u >> shift[1]) & mask[1]]++;
        hist[2][(u >> shift[2]) & mask[2]]++;
    }
    f32bits *src = a, *dst = tmp;
    for (int pass = 0; pass < 3; pass++) {
        size_t *h = hist[pass];
        size_t buckets = (size_t)mask[pass] + 1;
        int trivial = 0;
        size_t sum = 0;
        for (size_t b = 0; b < buckets; b++) {
            size_t c = h[b];
            if (c == n)
                trivial = 1;
            h[b] = sum;
            sum += c;
        }
        if (trivial)
            continue;
        unsigned sh = shift[pass];
        uint32_t m = mask[pass];
        for (size_t i = 0; i < n; i++) {
            uint32_t u = src[i].u;
            dst[h[(u >> sh) & m]++].u = u;
        }
        f32bits *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

/* Checks the documented precondition (every sample finite and > 0): a zero,
 * negative, NaN or infinite value would make the maths below meaningless. */
static md_status check_samples(const float *v, size_t n, const char *what, md_error *err)
{
    size_t bad = n;
    for (size_t i = 0; i < n; i++) {
        float x = v[i];
        if (!(x > 0.0f && x <= 3.4028235e38f)) {
            bad = i;
            break;
        }
    }
    if (bad < n)
        return md_fail(err, MD_ERR_DATA,
                       "scale: %s[%zu] = %g is not a finite positive depth (filter the "
                       "samples first, e.g. with md_depth_valid_samples)",
                       what, bad, (double)v[bad]);
    return MD_OK;
}

/* Sorted copies of pred and gt in new arrays (tmp is scratch of n). */
static md_status sorted_pair(const float *pred, const float *gt, size_t n, f32bits **ps,
                             f32bits **gs, md_error *err)
{
    *ps = *gs = NULL;
    size_t bytes;
    if (!md_mul_size(n, sizeof(f32bits), &bytes))
        return md_fail(err, MD_ERR_NOMEM, "scale: %zu samples is too many", n);
    f32bits *a = md_malloc(bytes, "sorted predictions", err);
    f32bits *b = md_malloc(bytes, "sorted ground truth", err);
    f32bits *t = md_malloc(bytes, "sort scratch", err);
    if (!a || !b || !t) {
        free(a);
        free(b);
        free(t);
        return MD_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        a[i].f = pred[i];
    for (size_t i = 0; i < n; i++)
        b[i].f = gt[i];
    radix_sort_positive(a, t, n);
    radix_sort_positive(b, t, n);
    free(t);
    *ps = a;
    *gs = b;
    return MD_OK;
}

/* ------------------------------------------------------ weighted median */

/* Small deterministic generator for pivot positions (state is local). */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static double median3(double a, double b, double c)
{
    if (a > b) {
        double t = a;
        a = b;
        b = t;
    }
    if (b > c)
        b = c;
    return a > b ? a : b;
}

/* Minimiser set [*lo_out, *hi_out] of sum w_i |s - r_i| (w_i > 0): the
 * smallest value x with C(x) >= half, and, when C(x) == half exactly, the next
 * larger value (the far end of the flat segment); otherwise *hi_out = x.
 * Three-way partitioning makes runs of equal ratios cost nothing extra.
 * Permutes v. Expected O(n). */
static void weighted_median(weighted *v, size_t n, double half, double *lo_out, double *hi_out)
{
    size_t a = 0, b = n;   /* active range [a, b) */
    double below = 0.0;    /* weight of everything left of the active range */
    double above = INFINITY; /* smallest value right of the active range */
    double largest_left = 0.0; /* largest value left of the active range */
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (b > a) {
        size_t len = b - a;
        double pivot = median3(v[a + next_random(&rng) % len].r, v[a + next_random(&rng) % len].r,
                               v[a + next_random(&rng) % len].r);
        /* Dijkstra partition: [a, lt) < pivot, [lt, i) == pivot, (gt, b) > pivot. */
        size_t lt = a, i = a, gt = b;
        double w_less = 0.0, w_equal = 0.0;
        while (i < gt) {
            double r = v[i].r;
            if (r < pivot) {
                w_less += v[i].w;
                weighted t = v[lt];
                v[lt++] = v[i];
                v[i++] = t;
            } else if (r > pivot) {
                weighted t = v[--gt];
                v[gt] = v[i];
                v[i] = t;
            } else {
                w_equal += v[i].w;
                i++;
            }
        }
        if (below + w_less >= half) {
            b = lt;
            above = pivot;
        } else if (below + w_less + w_equal >= half) {
            *lo_out = *hi_out = pivot;
            if (below + w_less + w_equal == half) {
                double next = above;
                for (size_t k = gt; k < b; k++)
                    if (v[k].r < next)
                        next = v[k].r;
                if (isfinite(next))
                    *hi_out = next;
            }
            return;
        } else {
            below += w_less + w_equal;
            largest_left = pivot;
            a = gt;
        }
    }
    /* Only reachable if rounding put the whole weight below half: the
     * largest ratio is then the answer. */
    *lo_out = *hi_out = largest_left;
}

static double clamp(double s, double lo, double hi)
{
    return s < lo ? lo : (s > hi ? hi : s);
}

static md_status fit_w1(const float *pred, const float *gt, size_t n, double lo, double hi,
                        double *scale, md_error *err)
{
    f32bits *ps, *gs;
    md_status st = sorted_pair(pred, gt, n, &ps, &gs, err);
    if (st != MD_OK)
        return st;
    size_t bytes;
    weighted *v = NULL;
    if (md_mul_size(n, sizeof *v, &bytes))
        v = md_malloc(bytes, "scale ratios", err);
    else
        md_fail(err, MD_ERR_NOMEM, "scale: %zu samples is too many", n);
    if (!v) {
        free(ps);
        free(gs);
        return MD_ERR_NOMEM;
    }
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        double p = ps[i].f;
        v[i].r = (double)gs[i].f / p;
        v[i].w = p;
        total += p;
    }
    free(ps);
    free(gs);
    double a, b;
    weighted_median(v, n, 0.5 * total, &a, &b);
    free(v);
    /* Minimising interval [a, b] (a == b when unique) intersected with [lo, hi]. */
    double x0 = clamp(a, lo, hi), x1 = clamp(b, lo, hi);
    *scale = 0.5 * (x0 + x1);
    return MD_OK;
}

static md_status fit_w2(const float *pred, const float *gt, size_t n, double *s, md_error *err)
{
    f32bits *ps, *gs;
    md_status st = sorted_pair(pred, gt, n, &ps, &gs, err);
    if (st != MD_OK)
        return st;
    double pg = 0.0, pp = 0.0;
    for (size_t start = 0; start < n; start += SUM_BLOCK) {
        size_t end = n - start < SUM_BLOCK ? n : start + SUM_BLOCK;
        double bpg = 0.0, bpp = 0.0;
        for (size_t i = start; i < end; i++) {
            double p = ps[i].f, g = gs[i].f;
            bpg += p * g;
            bpp += p * p;
        }
        pg += bpg;
        pp += bpp;
    }
    free(ps);
    free(gs);
    *s = pg / pp;
    return MD_OK;
}

static double sorted_median(const f32bits *v, size_t n)
{
    if (n % 2)
        return v[n / 2].f;
    return 0.5 * ((double)v[n / 2 - 1].f + (double)v[n / 2].f);
}

static md_status fit_median(const float *pred, const float *gt, size_t n, double *s, md_error *err)
{
    f32bits *ps, *gs;
    md_status st = sorted_pair(pred, gt, n, &ps, &gs, err);
    if (st != MD_OK)
        return st;
    *s = sorted_median(gs, n) / sorted_median(ps, n);
    free(ps);
    free(gs);
    return MD_OK;
}

static double fit_lsq(const float *pred, const float *gt, size_t n)
{
    double pg = 0.0, pp = 0.0;
    for (size_t start = 0; start < n; start += SUM_BLOCK) {
        size_t end = n - start < SUM_BLOCK ? n : start + SUM_BLOCK;
        double bpg = 0.0, bpp = 0.0;
        for (size_t i = start; i < end; i++) {
            double p = pred[i], g = gt[i];
            bpg += p * g;
            bpp += p * p;
        }
        pg += bpg;
        pp += bpp;
    }
    return pg / pp;
}

/* Accumulates sum ln x over positive finite floats as (binary exponent sum,
 * product of mantissas in [1, 2)), renormalising the product every 512 steps
 * so it stays below 2^512. The only rounding is in the mantissa product,
 * relative 1e-16 per step, so the mean log is accurate far beyond float
 * precision without calling log() per sample. */
typedef struct {
    int64_t exponent;
    double mantissa;
} log_sum;

static void log_sum_add(log_sum *acc, const float *v, size_t n)
{
    for (size_t start = 0; start < n; start += 512) {
        size_t end = n - start < 512 ? n : start + 512;
        double m = 1.0;
        int64_t e = 0;
        for (size_t i = start; i < end; i++) {
            f32bits x = {.f = v[i]};
            uint32_t biased = (x.u >> 23) & 0xFFu;
            if (biased == 0) { /* subnormal: let frexp normalise it */
                int ex;
                double fr = frexp((double)v[i], &ex); /* in [0.5, 1) */
                m *= 2.0 * fr;
                e += ex - 1;
            } else {
                f32bits mant = {.u = (x.u & 0x7FFFFFu) | 0x3F800000u}; /* [1, 2) */
                m *= mant.f;
                e += (int64_t)biased - 127;
            }
        }
        int ex;
        double fr = frexp(m * acc->mantissa, &ex);
        acc->mantissa = fr;
        acc->exponent += e + ex;
    }
}

static double fit_loglsq(const float *pred, const float *gt, size_t n)
{
    log_sum sg = {0, 1.0}, sp = {0, 1.0};
    log_sum_add(&sg, gt, n);
    log_sum_add(&sp, pred, n);
    double sum = (double)(sg.exponent - sp.exponent) * log(2.0) + log(sg.mantissa) -
                 log(sp.mantissa);
    return exp(sum / (double)n);
}

md_status md_scale_fit(const float *pred, const float *gt, size_t n, md_scale_method method,
                       double lo, double hi, double *scale, md_error *err)
{
    if (!scale)
        return md_fail(err, MD_ERR_ARG, "scale: no output for the scale");
    if (!(lo > 0.0) || !(hi >= lo) || !isfinite(lo))
        return md_fail(err, MD_ERR_ARG,
                       "scale: range [%g, %g] is invalid (want 0 < lo <= hi, lo finite)", lo, hi);
    if ((unsigned)method > (unsigned)MD_SCALE_LOGLSQ)
        return md_fail(err, MD_ERR_ARG, "scale: unknown method %d", (int)method);
    if (n == 0)
        return md_fail(err, MD_ERR_DATA, "scale: no valid pixel to fit a scale on");
    if (!pred || !gt)
        return md_fail(err, MD_ERR_ARG, "scale: NULL sample array with n = %zu", n);
    md_status st = check_samples(pred, n, "pred", err);
    if (st == MD_OK)
        st = check_samples(gt, n, "gt", err);
    if (st != MD_OK)
        return st;

    double s = 1.0;
    switch (method) {
    case MD_SCALE_W1:
        /* clamps itself: the flat-segment midpoint depends on the bounds */
        return fit_w1(pred, gt, n, lo, hi, scale, err);
    case MD_SCALE_W2: st = fit_w2(pred, gt, n, &s, err); break;
    case MD_SCALE_MEDIAN: st = fit_median(pred, gt, n, &s, err); break;
    case MD_SCALE_LSQ: s = fit_lsq(pred, gt, n); break;
    case MD_SCALE_LOGLSQ: s = fit_loglsq(pred, gt, n); break;
    }
    if (st != MD_OK)
        return st;
    if (isnan(s))
        return md_fail(err, MD_ERR_DATA, "scale: %s fit is not a number (overflow in the sums)",
                       md_scale_method_name(method));
    *scale = clamp(s, lo, hi);
    return MD_OK;
}

double md_w1_distance(const float *pred, const float *gt, size_t n, double scale)
{
    /* NaN when undefined: no sample, a sample that is not finite and
     * positive (the sort below relies on it), or no memory. */
    if (n == 0 || !pred || !gt || check_samples(pred, n, "pred", NULL) != MD_OK ||
        check_samples(gt, n, "gt", NULL) != MD_OK)
        return NAN;
    f32bits *ps, *gs;
    if (sorted_pair(pred, gt, n, &ps, &gs, NULL) != MD_OK)
        return NAN;
    double sum = 0.0;
    for (size_t start = 0; start < n; start += SUM_BLOCK) {
        size_t end = n - start < SUM_BLOCK ? n : start + SUM_BLOCK;
        double block = 0.0;
        for (size_t i = start; i < end; i++)
            block += fabs(scale * (double)ps[i].f - (double)gs[i].f);
        sum += block;
    }
    free(ps);
    free(gs);
    return sum / (double)n;
}

md_status md_depth_valid_samples(const md_depth *pred, const md_depth *gt, float **pred_out,
                                 float **gt_out, size_t *n_out, md_error *err)
{
    if (pred_out)
        *pred_out = NULL;
    if (gt_out)
        *gt_out = NULL;
    if (n_out)
        *n_out = 0;
    if (!pred || !gt || !pred_out || !gt_out || !n_out)
        return md_fail(err, MD_ERR_ARG, "valid samples: NULL argument");
    if (pred->width != gt->width || pred->height != gt->height)
        return md_fail(err, MD_ERR_DATA,
                       "valid samples: prediction is %dx%d but ground truth is %dx%d",
                       pred->width, pred->height, gt->width, gt->height);
    if (pred->width < 0 || pred->height < 0)
        return md_fail(err, MD_ERR_ARG, "valid samples: negative size %dx%d", pred->width,
                       pred->height);
    size_t npix;
    if (!md_mul_size((size_t)pred->width, (size_t)pred->height, &npix))
        return md_fail(err, MD_ERR_NOMEM, "valid samples: size overflow");
    if (npix > 0 && (!pred->data || !gt->data))
        return md_fail(err, MD_ERR_ARG, "valid samples: depth map without data");
    size_t count = 0;
    for (size_t i = 0; i < npix; i++)
        count += md_depth_valid_at(pred, i) && md_depth_valid_at(gt, i);
    if (count == 0)
        return MD_OK; /* n = 0, NULL arrays: md_scale_fit reports "no valid pixel" */
    float *p = md_malloc(count * sizeof *p, "valid predictions", err);
    float *g = md_malloc(count * sizeof *g, "valid ground truth", err);
    if (!p || !g) {
        free(p);
        free(g);
        return MD_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < npix; i++) {
        if (md_depth_valid_at(pred, i) && md_depth_valid_at(gt, i)) {
            p[k] = pred->data[i];
            g[k] = gt->data[i];
            k++;
        }
    }
    *pred_out = p;
    *gt_out = g;
    *n_out = count;
    return MD_OK;
}
