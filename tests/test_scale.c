/* Optimal-scale solvers against independent truth:
 *  - hand-computed tiny cases for every method;
 *  - brute force: each method's objective written out here from its
 *    definition (qsort, plain sums), minimised over a dense grid of [lo, hi]
 *    followed by golden-section refinement of the best grid cell (the
 *    objectives are convex, so the cell around the best grid point brackets
 *    the minimum);
 *  - for W1 also an exact enumeration: the objective is piecewise linear with
 *    breakpoints at g_(i)/p_(i), so its minimum over [lo, hi] is attained at a
 *    breakpoint or a bound; evaluating all of them (O(n^2)) gives the exact
 *    minimum and tells whether the minimiser is unique or an interval. */
#include "check.h"
#include "base/base.h"

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static double urand(void) /* [0, 1) */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static double nrand(void)
{
    double u = urand(), v = urand();
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float *sorted_copy(const float *v, size_t n)
{
    float *c = malloc((n ? n : 1) * sizeof *c);
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_float);
    return c;
}

typedef struct {
    const float *p, *g; /* sorted for w1/w2, paired for lsq/loglsq */
    size_t n;
    const double *logdiff; /* ln p_i - ln g_i (paired), for obj_log */
} sample;

/* The objectives, straight from their definitions. */
static double obj_w1(const sample *d, double s)
{
    double sum = 0.0;
    for (size_t i = 0; i < d->n; i++)
        sum += fabs(s * (double)d->p[i] - (double)d->g[i]);
    return sum / (double)d->n;
}

static double obj_sq(const sample *d, double s) /* w2 on sorted, lsq on paired */
{
    double sum = 0.0;
    for (size_t i = 0; i < d->n; i++) {
        double r = s * (double)d->p[i] - (double)d->g[i];
        sum += r * r;
    }
    return sum / (double)d->n;
}

static double obj_log(const sample *d, double s)
{
    double sum = 0.0, ls = log(s);
    for (size_t i = 0; i < d->n; i++) {
        double r = ls + d->logdiff[i];
        sum += r * r;
    }
    return sum / (double)d->n;
}

typedef double (*objective)(const sample *, double);

/* Dense grid of `grid` points over [lo, hi], then golden section on the
 * bracket around the best grid point. */
static double brute_minimise(objective f, const sample *d, double lo, double hi, int grid,
                             double *fmin)
{
    if (hi <= lo) {
        *fmin = f(d, lo);
        return lo;
    }
    int best = 0;
    double fbest = INFINITY;
    for (int j = 0; j < grid; j++) {
        double s = lo + (hi - lo) * j / (grid - 1);
        double v = f(d, s);
        if (v < fbest) {
            fbest = v;
            best = j;
        }
    }
    double a = lo + (hi - lo) * (best > 0 ? best - 1 : 0) / (grid - 1);
    double b = lo + (hi - lo) * (best < grid - 1 ? best + 1 : grid - 1) / (grid - 1);
    const double k = 0.6180339887498949;
    double x1 = b - k * (b - a), x2 = a + k * (b - a);
    double f1 = f(d, x1), f2 = f(d, x2);
    for (int it = 0; it < 200 && b - a > 1e-15 * b; it++) {
        if (f1 <= f2) {
            b = x2;
            x2 = x1;
            f2 = f1;
            x1 = b - k * (b - a);
            f1 = f(d, x1);
        } else {
            a = x1;
            x1 = x2;
            f1 = f2;
            x2 = a + k * (b - a);
            f2 = f(d, x2);
        }
    }
    double s = f1 <= f2 ? x1 : x2;
    double fs = f(d, s);
    /* the golden section never does worse than the best grid point */
    double sg = lo + (hi - lo) * best / (grid - 1);
    if (fbest < fs) {
        s = sg;
        fs = fbest;
    }
    *fmin = fs;
    return s;
}

/* Exact W1 minimum over [lo, hi] by enumerating the breakpoints and bounds.
 * Returns the smallest and largest minimising candidates. */
static double exact_w1(const sample *d, double lo, double hi, double *smin, double *smax)
{
    size_t nc = d->n + 2;
    double *cand = malloc(nc * sizeof *cand);
    double *val = malloc(nc * sizeof *val);
    cand[0] = lo;
    cand[1] = hi;
    for (size_t i = 0; i < d->n; i++) {
        double r = (double)d->g[i] / (double)d->p[i];
        cand[i + 2] = r < lo ? lo : (r > hi ? hi : r);
    }
    double best = INFINITY;
    for (size_t i = 0; i < nc; i++) {
        val[i] = obj_w1(d, cand[i]);
        if (val[i] < best)
            best = val[i];
    }
    double tol = 1e-12 * best + 1e-300;
    *smin = INFINITY;
    *smax = -INFINITY;
    for (size_t i = 0; i < nc; i++) {
        if (val[i] <= best + tol) {
            if (cand[i] < *smin)
                *smin = cand[i];
            if (cand[i] > *smax)
                *smax = cand[i];
        }
    }
    free(cand);
    free(val);
    return best;
}

static double fit(const float *p, const float *g, size_t n, md_scale_method m, double lo,
                  double hi)
{
    md_error err = {0};
    double s = NAN;
    md_status st = md_scale_fit(p, g, n, m, lo, hi, &s, &err);
    CHECK_MSG(st == MD_OK, "md_scale_fit(%s) -> %d: %s", md_scale_method_name(m), (int)st,
              err.message);
    return s;
}

/* ------------------------------------------------------ hand-made cases */

static void test_hand_cases(void)
{
    /* Exact scaling: gt = 2 pred. Every method gives 2. */
    const float p1[] = {1, 2, 3}, g1[] = {2, 4, 6};
    for (int m = 0; m <= MD_SCALE_LOGLSQ; m++)
        CHECK_NEAR(fit(p1, g1, 3, (md_scale_method)m, 0.1, 10), 2.0, 1e-12);

    /* pred {1,2,4}, gt {1,2,8} (already in the same order, so sorted ==
     * paired). W1: r = g/p = {1,1,2} with weights p = {1,2,4}, W = 7, half
     * = 3.5; C(1) = 3 < 3.5, C(2) = 7 >= 3.5 -> s = 2 (unique).
     * f(2) = (|2-1| + |4-2| + |8-8|)/3 = 1 while f(1) = (0+0+4)/3 = 4/3.
     * W2 = LSQ = (1*1 + 2*2 + 4*8) / (1 + 4 + 16) = 37/21.
     * median = median(gt)/median(pred) = 2/2 = 1.
     * loglsq = exp((0 + 0 + ln 2)/3) = 2^(1/3). */
    const float p2[] = {1, 2, 4}, g2[] = {1, 2, 8};
    CHECK_NEAR(fit(p2, g2, 3, MD_SCALE_W1, 0.1, 10), 2.0, 1e-12);
    CHECK_NEAR(fit(p2, g2, 3, MD_SCALE_W2, 0.1, 10), 37.0 / 21.0, 1e-12);
    CHECK_NEAR(fit(p2, g2, 3, MD_SCALE_LSQ, 0.1, 10), 37.0 / 21.0, 1e-12);
    CHECK_NEAR(fit(p2, g2, 3, MD_SCALE_MEDIAN, 0.1, 10), 1.0, 1e-12);
    CHECK_NEAR(fit(p2, g2, 3, MD_SCALE_LOGLSQ, 0.1, 10), cbrt(2.0), 1e-12);
    CHECK_NEAR(md_w1_distance(p2, g2, 3, 2.0), 1.0, 1e-12);
    CHECK_NEAR(md_w1_distance(p2, g2, 3, 1.0), 4.0 / 3.0, 1e-12);

    /* Order matters: pred {3,1,2}, gt {2,4,6}. Sorted methods see {1,2,3} vs
     * {2,4,6} -> 2; paired LSQ = (6 + 4 + 12)/(9 + 1 + 4) = 11/7;
     * loglsq = (48/6)^(1/3) = 2. */
    const float p3[] = {3, 1, 2}, g3[] = {2, 4, 6};
    CHECK_NEAR(fit(p3, g3, 3, MD_SCALE_W1, 0.1, 10), 2.0, 1e-12);
    CHECK_NEAR(fit(p3, g3, 3, MD_SCALE_W2, 0.1, 10), 2.0, 1e-12);
    CHECK_NEAR(fit(p3, g3, 3, MD_SCALE_MEDIAN, 0.1, 10), 2.0, 1e-12);
    CHECK_NEAR(fit(p3, g3, 3, MD_SCALE_LSQ, 0.1, 10), 11.0 / 7.0, 1e-12);
    CHECK_NEAR(fit(p3, g3, 3, MD_SCALE_LOGLSQ, 0.1, 10), 2.0, 1e-12);
    /* scipy.stats.wasserstein_distance([3,1,2], [2,4,6]) = (1+2+3)/3 = 2 */
    CHECK_NEAR(md_w1_distance(p3, g3, 3, 1.0), 2.0, 1e-12);
    CHECK_NEAR(md_w1_distance(p3, g3, 3, 2.0), 0.0, 1e-12);

    /* Flat W1 objective: pred {1,1}, gt {1,3}: f(s) = (|s-1| + |s-3|)/2 = 1
     * on [1, 3] -> midpoint 2. Clamped to [0.1, 1.5] the minimising set is
     * [1, 1.5] -> 1.25; to [0.1, 0.5] it is the bound 0.5; to [4, 5] it is 4. */
    const float p4[] = {1, 1}, g4[] = {1, 3};
    CHECK_NEAR(fit(p4, g4, 2, MD_SCALE_W1, 0.1, 10), 2.0, 1e-12);
    CHECK_NEAR(fit(p4, g4, 2, MD_SCALE_W1, 0.1, 1.5), 1.25, 1e-12);
    CHECK_NEAR(fit(p4, g4, 2, MD_SCALE_W1, 0.1, 0.5), 0.5, 1e-12);
    CHECK_NEAR(fit(p4, g4, 2, MD_SCALE_W1, 4, 5), 4.0, 1e-12);
    /* W2 there: (1 + 3)/(1 + 1) = 2; median: 2/1 = 2; loglsq: sqrt(3). */
    CHECK_NEAR(fit(p4, g4, 2, MD_SCALE_W2, 0.1, 10), 2.0, 1e-12);
    CHECK_NEAR(fit(p4, g4, 2, MD_SCALE_MEDIAN, 0.1, 10), 2.0, 1e-12);
    CHECK_NEAR(fit(p4, g4, 2, MD_SCALE_LOGLSQ, 0.1, 10), sqrt(3.0), 1e-12);

    /* Flat with ties in the ratios: pred {1,1,1,1}, gt {3,1,3,1}: sorted gt
     * {1,1,3,3}, r = {1,1,3,3}, C(1) = 2 = half -> [1, 3] -> 2. */
    const float p5[] = {1, 1, 1, 1}, g5[] = {3, 1, 3, 1};
    CHECK_NEAR(fit(p5, g5, 4, MD_SCALE_W1, 0.1, 10), 2.0, 1e-12);

    /* Weighted, not plain, median: pred {1, 9}, gt {1, 18}: r = {1, 2},
     * weights {1, 9}: C(1) = 1 < 5 -> s = 2 (the plain median of r is 1.5). */
    const float p6[] = {1, 9}, g6[] = {1, 18};
    CHECK_NEAR(fit(p6, g6, 2, MD_SCALE_W1, 0.1, 10), 2.0, 1e-12);

    /* Clamping for every method. */
    for (int m = 0; m <= MD_SCALE_LOGLSQ; m++) {
        CHECK_NEAR(fit(p1, g1, 3, (md_scale_method)m, 0.1, 1.5), 1.5, 0);
        CHECK_NEAR(fit(p1, g1, 3, (md_scale_method)m, 3, 4), 3.0, 0);
        CHECK_NEAR(fit(p1, g1, 3, (md_scale_method)m, 0.7, 0.7), 0.7, 0);
    }

    /* n = 1: pred 2, gt 5 -> 2.5 for every method. */
    const float p7[] = {2}, g7[] = {5};
    for (int m = 0; m <= MD_SCALE_LOGLSQ; m++)
        CHECK_NEAR(fit(p7, g7, 1, (md_scale_method)m, 0.1, 10), 2.5, 1e-12);

    /* Even-count median: median {1,2,3,4} = 2.5, median {2,2,10,10} = 6. */
    const float p8[] = {4, 1, 3, 2}, g8[] = {10, 2, 2, 10};
    CHECK_NEAR(fit(p8, g8, 4, MD_SCALE_MEDIAN, 0.1, 10), 2.4, 1e-12);

    /* loglsq across the float range, including subnormals: pred {1e-40, 1e30},
     * gt {1e-39, 1e31} -> exp(mean(ln 10, ln 10)) = 10 (to float rounding of
     * the inputs, relative ~1e-6 for the subnormal). */
    const float p9[] = {1e-40f, 1e30f}, g9[] = {1e-39f, 1e31f};
    double expect9 = sqrt(((double)g9[0] / (double)p9[0]) * ((double)g9[1] / (double)p9[1]));
    CHECK_NEAR(fit(p9, g9, 2, MD_SCALE_LOGLSQ, 1e-3, 1e3), expect9, 1e-12 * expect9);
}

static void test_names_and_errors(void)
{
    const char *names[] = {"w1", "w2", "median", "lsq", "loglsq"};
    for (int m = 0; m < 5; m++) {
        CHECK(md_scale_method_parse(names[m]) == m);
        CHECK(strcmp(md_scale_method_name((md_scale_method)m), names[m]) == 0);
    }
    CHECK(md_scale_method_parse("W1") == MD_SCALE_W1);
    CHECK(md_scale_method_parse("wasserstein") == -1);
    CHECK(md_scale_method_parse("") == -1);
    CHECK(md_scale_method_parse(NULL) == -1);

    const float p[] = {1, 2}, g[] = {2, 4};
    md_error err = {0};
    double s = 123.0;
    CHECK(md_scale_fit(p, g, 2, MD_SCALE_W1, 0.0, 2.0, &s, &err) == MD_ERR_ARG);
    CHECK(md_scale_fit(p, g, 2, MD_SCALE_W1, -1.0, 2.0, &s, &err) == MD_ERR_ARG);
    CHECK(md_scale_fit(p, g, 2, MD_SCALE_W1, 2.0, 1.0, &s, &err) == MD_ERR_ARG);
    CHECK(md_scale_fit(p, g, 2, MD_SCALE_W1, NAN, 1.0, &s, &err) == MD_ERR_ARG);
    CHECK(md_scale_fit(p, g, 2, MD_SCALE_W1, 0.1, NAN, &s, &err) == MD_ERR_ARG);
    CHECK(md_scale_fit(p, g, 2, (md_scale_method)7, 0.1, 2.0, &s, &err) == MD_ERR_ARG);
    CHECK(md_scale_fit(p, g, 2, MD_SCALE_W1, 0.1, 2.0, NULL, &err) == MD_ERR_ARG);
    CHECK(s == 123.0); /* untouched on failure */
    for (int m = 0; m <= MD_SCALE_LOGLSQ; m++) {
        err.message[0] = 0;
        CHECK(md_scale_fit(p, g, 0, (md_scale_method)m, 0.1, 2.0, &s, &err) == MD_ERR_DATA);
        CHECK(strstr(err.message, "no valid pixel") != NULL);
    }
    /* unfiltered samples are refused, not silently used */
    const float bad_p[] = {1, 0}, bad_g[] = {2, NAN};
    CHECK(md_scale_fit(bad_p, g, 2, MD_SCALE_W1, 0.1, 2.0, &s, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "pred[1]") != NULL);
    CHECK(md_scale_fit(p, bad_g, 2, MD_SCALE_LSQ, 0.1, 2.0, &s, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "gt[1]") != NULL);
    const float neg[] = {-1, 2}, inf[] = {INFINITY, 2};
    CHECK(md_scale_fit(neg, g, 2, MD_SCALE_MEDIAN, 0.1, 2.0, &s, &err) == MD_ERR_DATA);
    CHECK(md_scale_fit(p, inf, 2, MD_SCALE_LOGLSQ, 0.1, 2.0, &s, &err) == MD_ERR_DATA);
    CHECK(md_scale_fit(p, g, 2, MD_SCALE_W1, 0.1, 2.0, NULL, NULL) == MD_ERR_ARG); /* NULL err ok */
    /* an infinite upper bound is allowed */
    CHECK(md_scale_fit(p, g, 2, MD_SCALE_W1, 0.1, INFINITY, &s, &err) == MD_OK && s == 2.0);
    CHECK(isnan(md_w1_distance(p, g, 0, 1.0)));
    CHECK(isnan(md_w1_distance(bad_p, g, 2, 1.0)));
    CHECK(isnan(md_w1_distance(p, bad_g, 2, 1.0)));
    CHECK(isnan(md_w1_distance(neg, g, 2, 1.0)));
}

/* ------------------------------------------------------- random cases */

/* Fills p and g: log-normal, uniform, heavy integer ties (two flavours), or
 * log-normal with gross outliers; gt relates to pred through a true scale
 * drawn log-uniformly in [0.05, 5], so the optimum falls inside or outside
 * the bounds. */
static void make_case(int kind, float *p, float *g, size_t n)
{
    double s_true = exp(log(0.05) + urand() * (log(5.0) - log(0.05)));
    for (size_t i = 0; i < n; i++) {
        double pv, gv;
        switch (kind) {
        case 0: /* log-normal, multiplicative noise */
            pv = exp(log(2.5) + 0.5 * nrand());
            gv = s_true * pv * exp(0.2 * nrand());
            break;
        case 1: /* independent uniforms */
            pv = 0.5 + 9.5 * urand();
            gv = s_true * (0.5 + 9.5 * urand());
            break;
        case 2: /* heavy ties: small integers */
            pv = 1 + (int)(urand() * 4);
            gv = 1 + (int)(urand() * 6);
            break;
        case 3: /* equal weights, integer gt: for even n the minimum is flat
                 * whenever the two middle gt values differ */
            pv = 1;
            gv = 1 + (int)(urand() * 10);
            break;
        default: /* log-normal with 10 % outliers */
            pv = exp(log(3.0) + 0.4 * nrand());
            gv = s_true * pv * exp(0.1 * nrand());
            if (urand() < 0.1)
                gv *= 20.0 * urand() + 0.01;
            break;
        }
        p[i] = (float)pv;
        g[i] = (float)gv;
    }
}

static void test_random_vs_brute_force(void)
{
    static const size_t sizes[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 31, 64, 101, 256, 1000, 2000};
    const int cases = 256;
    int unique = 0, flat = 0, at_bound = 0, interior = 0;
    double worst_rel = 0.0, worst_s = 0.0;
    for (int c = 0; c < cases; c++) {
        size_t n = sizes[c % (sizeof sizes / sizeof sizes[0])];
        int kind = (c / 3) % 5;
        float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g);
        make_case(kind, p, g, n);
        double lo, hi;
        switch (c % 3) {
        case 0: lo = 0.1; hi = 2.0; break;             /* the seed's range */
        case 1: lo = 1e-3; hi = 1e3; break;            /* effectively unbounded */
        default:                                        /* a narrow random range */
            lo = exp(log(0.05) + urand() * 4.6);
            hi = lo * (1.0 + urand());
            break;
        }
        int grid = n <= 300 ? 20001 : 2001; /* keep the O(grid * n) brute force affordable */
        float *ps = sorted_copy(p, n), *gs = sorted_copy(g, n);
        sample d = {ps, gs, n, NULL};

        double s = fit(p, g, n, MD_SCALE_W1, lo, hi);
        double f_ours = obj_w1(&d, s);
        double f_grid;
        double s_grid = brute_minimise(obj_w1, &d, lo, hi, grid, &f_grid);
        double smin, smax;
        double f_exact = exact_w1(&d, lo, hi, &smin, &smax);
        double tiny = 1e-15 * (double)gs[n - 1];
        CHECK_MSG(f_ours <= f_grid * (1 + 1e-9) + tiny,
                  "case %d (n %zu kind %d): W1 %.17g at s %.17g worse than brute %.17g at %.17g", c,
                  n, kind, f_ours, s, f_grid, s_grid);
        CHECK_MSG(f_ours <= f_exact * (1 + 1e-12) + tiny,
                  "case %d: W1 %.17g worse than the exact minimum %.17g", c, f_ours, f_exact);
        double rel = f_exact > 0 ? (f_ours - f_exact) / f_exact : 0.0;
        if (rel > worst_rel)
            worst_rel = rel;
        if (smin == smax) {
            unique++;
            CHECK_MSG(fabs(s - smin) <= 1e-12 * smin, "case %d: s %.17g, exact minimiser %.17g",
                      c, s, smin);
            CHECK_MSG(fabs(s - s_grid) < 1e-6 * fmax(1.0, s),
                      "case %d (n %zu kind %d): s %.17g, brute force %.17g", c, n, kind, s,
                      s_grid);
            if (fabs(s - s_grid) > worst_s)
                worst_s = fabs(s - s_grid);
        } else {
            flat++;
            double mid = 0.5 * (smin + smax);
            CHECK_MSG(fabs(s - mid) <= 1e-12 * mid,
                      "case %d: flat minimum [%.17g, %.17g], s %.17g is not its midpoint", c,
                      smin, smax, s);
        }
        if (s == lo || s == hi)
            at_bound++;
        else
            interior++;

        /* the W1 distance itself against the definition */
        double probe = lo + (hi - lo) * urand();
        CHECK_NEAR(md_w1_distance(p, g, n, probe), obj_w1(&d, probe),
                   1e-12 * obj_w1(&d, probe) + tiny);

        /* W2 against its own objective on sorted values */
        double s2 = fit(p, g, n, MD_SCALE_W2, lo, hi);
        double f2b;
        double s2b = brute_minimise(obj_sq, &d, lo, hi, grid, &f2b);
        CHECK_MSG(obj_sq(&d, s2) <= f2b * (1 + 1e-9) + tiny * tiny,
                  "case %d: W2 objective %.17g > brute %.17g", c, obj_sq(&d, s2), f2b);
        CHECK_MSG(fabs(s2 - s2b) < 1e-6 * fmax(1.0, s2), "case %d: W2 s %.17g, brute %.17g", c,
                  s2, s2b);

        /* LSQ and log-LSQ against their objectives on paired values */
        double *ld = malloc(n * sizeof *ld);
        for (size_t i = 0; i < n; i++)
            ld[i] = log((double)p[i]) - log((double)g[i]);
        sample paired = {p, g, n, ld};
        double s3 = fit(p, g, n, MD_SCALE_LSQ, lo, hi), f3b;
        double s3b = brute_minimise(obj_sq, &paired, lo, hi, grid, &f3b);
        CHECK_MSG(fabs(s3 - s3b) < 1e-6 * fmax(1.0, s3), "case %d: LSQ s %.17g, brute %.17g", c,
                  s3, s3b);
        double s4 = fit(p, g, n, MD_SCALE_LOGLSQ, lo, hi), f4b;
        double s4b = brute_minimise(obj_log, &paired, lo, hi, grid, &f4b);
        CHECK_MSG(fabs(s4 - s4b) < 1e-6 * fmax(1.0, s4), "case %d: logLSQ s %.17g, brute %.17g",
                  c, s4, s4b);

        /* median straight from the qsorted copies */
        double mg = n % 2 ? gs[n / 2] : 0.5 * ((double)gs[n / 2 - 1] + gs[n / 2]);
        double mp = n % 2 ? ps[n / 2] : 0.5 * ((double)ps[n / 2 - 1] + ps[n / 2]);
        double m = mg / mp;
        m = m < lo ? lo : (m > hi ? hi : m);
        CHECK_NEAR(fit(p, g, n, MD_SCALE_MEDIAN, lo, hi), m, 1e-15 * m);

        free(ld);
        free(ps);
        free(gs);
        free(p);
        free(g);
    }
    fprintf(stderr,
            "  %d random cases: %d unique, %d flat minima, %d at a bound, %d inside; worst W1 "
            "excess over exact %.3g (relative), worst |s - brute| %.3g\n",
            cases, unique, flat, at_bound, interior, worst_rel, worst_s);
    /* the generator must actually exercise every situation */
    CHECK(unique >= 100);
    CHECK(flat >= 5);
    CHECK(at_bound >= 20);
    CHECK(interior >= 50);
}

/* A full 640x480 synthetic pair: the optimum must not be improvable by
 * moving s either way, and golden section over [lo, hi] on the exact
 * objective must agree. */
static void test_full_frame(void)
{
    const size_t n = 640 * 480;
    float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g);
    for (size_t i = 0; i < n; i++) {
        double depth = exp(log(2.8) + 0.45 * nrand());
        depth = depth < 1 ? 1 : (depth > 8 ? 8 : depth);
        g[i] = (float)depth;
        p[i] = (float)(depth / 1.23 * exp(0.15 * nrand()));
    }
    double s = fit(p, g, n, MD_SCALE_W1, 0.1, 2.0);
    float *ps = sorted_copy(p, n), *gs = sorted_copy(g, n);
    sample d = {ps, gs, n, NULL};
    double f = obj_w1(&d, s);
    for (double h = 1e-7; h < 0.1; h *= 10) {
        CHECK_MSG(f <= obj_w1(&d, s * (1 + h)) * (1 + 1e-12), "s*(1+%g) is better", h);
        CHECK_MSG(f <= obj_w1(&d, s * (1 - h)) * (1 + 1e-12), "s*(1-%g) is better", h);
    }
    double fb;
    double sb = brute_minimise(obj_w1, &d, 0.1, 2.0, 201, &fb);
    CHECK_NEAR(s, sb, 1e-6);
    CHECK(f <= fb * (1 + 1e-9));
    CHECK(s > 1.1 && s < 1.4); /* near the true 1.23 */
    free(ps);
    free(gs);
    free(p);
    free(g);
}

/* Large inputs with exact answers by counting: stress the three-way
 * partition (huge runs of equal ratios) and the radix sort's value range. */
static void test_large_ties(void)
{
    const size_t n = 300000;
    float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g);
    /* p = 1, g = 1 + i % 10: 30,000 copies of each of 1..10. Equal weights,
     * so the weighted median is the median; the weight up to 5 is exactly
     * 150,000 = half, so W1 is flat on [5, 6] -> 5.5. */
    for (size_t i = 0; i < n; i++) {
        p[i] = 1.0f;
        g[i] = (float)(1 + i % 10);
    }
    CHECK_NEAR(fit(p, g, n, MD_SCALE_W1, 0.1, 10), 5.5, 0);
    /* one more unit of weight below 5.5 breaks the tie: g[5] 6 -> 1 makes
     * the weight up to 5 exceed half -> unique minimiser 5 */
    g[5] = 1.0f;
    CHECK_NEAR(fit(p, g, n, MD_SCALE_W1, 0.1, 10), 5.0, 0);
    /* p = i + 1 (descending order in memory), g = 1.5 p: every ratio is
     * exactly 1.5 */
    for (size_t i = 0; i < n; i++) {
        p[i] = (float)(n - i);
        g[i] = 1.5f * p[i];
    }
    for (int m = 0; m <= MD_SCALE_LOGLSQ; m++)
        CHECK_NEAR(fit(p, g, n, (md_scale_method)m, 0.1, 10), 1.5, 1e-12);
    CHECK_NEAR(md_w1_distance(p, g, n, 1.5), 0.0, 0);
    /* mean of |p - 1.5 p| = 0.5 mean(p) = 0.5 (n + 1) / 2 */
    CHECK_NEAR(md_w1_distance(p, g, n, 1.0), 0.25 * (double)(n + 1), 1e-9 * (double)n);
    free(p);
    free(g);
}

static void test_valid_samples(void)
{
    md_error err = {0};
    float pd[6] = {1, 0, 3, NAN, 5, 6}, gd[6] = {2, 2, 0, 4, 10, 12};
    uint8_t gmask[6] = {1, 1, 1, 1, 1, 0};
    md_depth pred = {3, 2, pd, NULL}, gt = {3, 2, gd, gmask};
    float *p = NULL, *g = NULL;
    size_t n = 99;
    /* valid in both: i=0 (1,2) and i=4 (5,10); i=1 pred 0, i=2 gt 0, i=3
     * pred NaN, i=5 masked out in gt */
    CHECK_OK(md_depth_valid_samples(&pred, &gt, &p, &g, &n, &err), &err);
    CHECK(n == 2);
    if (n == 2 && p && g)
        CHECK(p[0] == 1 && g[0] == 2 && p[1] == 5 && g[1] == 10);
    free(p);
    free(g);

    md_depth small = {2, 3, gd, NULL};
    CHECK(md_depth_valid_samples(&pred, &small, &p, &g, &n, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "3x2") != NULL && strstr(err.message, "2x3") != NULL);
    CHECK(p == NULL && g == NULL && n == 0);

    float zeros[6] = {0};
    md_depth empty = {3, 2, zeros, NULL};
    CHECK_OK(md_depth_valid_samples(&empty, &gt, &p, &g, &n, &err), &err);
    CHECK(n == 0);
    double s;
    CHECK(md_scale_fit(p, g, n, MD_SCALE_W1, 0.1, 2, &s, &err) == MD_ERR_DATA);
    free(p);
    free(g);
    CHECK(md_depth_valid_samples(NULL, &gt, &p, &g, &n, &err) == MD_ERR_ARG);
}


/* md_scale_depth: the scale sources on hand-made maps. */
static void test_scale_sources(void)
{
    md_error err = {0};
    md_depth pred = {0}, gt = {0};
    CHECK_OK(md_depth_alloc(&pred, 4, 1, &err), &err);
    CHECK_OK(md_depth_alloc(&gt, 4, 1, &err), &err);
    const float p[4] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++) {
        pred.data[i] = p[i];
        gt.data[i] = 1.5f * p[i]; /* every solver's optimum: 1.5 */
    }
    md_scale_record rec;
    md_scale_options so = md_scale_options_default();
    CHECK(so.source == MD_SCALE_SOURCE_AUTO && so.lo == 0.1 && so.hi == 2.0);

    /* auto without a scale model: none, depth untouched */
    CHECK_OK(md_scale_depth(NULL, NULL, &pred, &so, &rec, &err), &err);
    CHECK(rec.source == MD_SCALE_SOURCE_NONE && rec.scale == 1.0 && !rec.applied);
    CHECK(pred.data[3] == 4.0f);

    /* oracle: scale 1.5 applied, not on the range limit */
    so.source = MD_SCALE_SOURCE_ORACLE;
    so.gt = &gt;
    CHECK_OK(md_scale_depth(NULL, NULL, &pred, &so, &rec, &err), &err);
    CHECK(rec.source == MD_SCALE_SOURCE_ORACLE && rec.applied && !rec.at_range_limit);
    CHECK_NEAR(rec.scale, 1.5, 1e-9);
    CHECK_NEAR(rec.predicted_log_scale, log(1.5), 1e-9);
    CHECK_NEAR(pred.data[3], 6.0, 1e-5);

    /* gt 9x pred against the default range [0.1, 2]: clamped to 2 and flagged */
    for (int i = 0; i < 4; i++) {
        pred.data[i] = p[i];
        gt.data[i] = 9.0f * p[i];
    }
    CHECK_OK(md_scale_depth(NULL, NULL, &pred, &so, &rec, &err), &err);
    CHECK_NEAR(rec.scale, 2.0, 1e-12);
    CHECK(rec.at_range_limit && strstr(rec.note, "range limit") != NULL);

    /* errors: oracle without gt, adaptive without a model, a bad source */
    so.gt = NULL;
    CHECK(md_scale_depth(NULL, NULL, &pred, &so, &rec, &err) == MD_ERR_ARG);
    CHECK(md_scale_depth(NULL, NULL, &pred, &so, &rec, NULL) == MD_ERR_ARG);
    so.source = MD_SCALE_SOURCE_ADAPTIVE;
    CHECK(md_scale_depth(NULL, NULL, &pred, &so, &rec, &err) == MD_ERR_ARG);

    /* names */
    CHECK(md_scale_source_parse("oracle") == MD_SCALE_SOURCE_ORACLE);
    CHECK(md_scale_source_parse("AUTO") == MD_SCALE_SOURCE_AUTO);
    CHECK(md_scale_source_parse("sometimes") == -1);
    CHECK(strcmp(md_scale_source_name(MD_SCALE_SOURCE_ANCHORS), "anchors") == 0);
    md_depth_free(&pred);
    md_depth_free(&gt);
}

int main(void)
{
    RUN_TEST(test_hand_cases);
    RUN_TEST(test_names_and_errors);
    RUN_TEST(test_random_vs_brute_force);
    RUN_TEST(test_full_frame);
    RUN_TEST(test_large_ties);
    RUN_TEST(test_valid_samples);
    RUN_TEST(test_scale_sources);
    return check_finish();
}
