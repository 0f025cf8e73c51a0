/* Anchors: the global fits against brute force and hand-made cases, the
 * anchor files (text lists, sparse depth images) and their errors, the
 * anchors scale source through md_scale_depth, and the simulated anchors of
 * eval-anchors.
 *
 * Independent truth: every objective is written out here from its definition
 * and minimised by enumeration (the minimisers of the piecewise-linear ones
 * lie at data points: weighted medians at a value, L1 lines through two
 * anchors), W1 with integer weights by replicating anchors and calling the
 * unweighted oracle solver, and hand-made data with exact answers. */
#include "check.h"
#include "base/base.h"
#include "eval/anchor_eval.h"
#include "scale/anchors.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng_state = 0x3243F6A8885A308Dull;

static double urand(void) /* [0, 1) */
{
    return (double)(md_splitmix64(&rng_state) >> 11) * (1.0 / 9007199254740992.0);
}

static double nrand(void)
{
    double u = urand(), v = urand();
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* sum w |x - v| */
static double l1_obj(const double *v, const double *w, size_t n, double x)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (w ? w[i] : 1.0) * fabs(x - v[i]);
    return s;
}

/* The minimiser set of sum w |x - v| by enumeration of the data points, as
 * [lo, hi]; the weighted median convention is its midpoint. */
static void brute_median(const double *v, const double *w, size_t n, double *lo, double *hi)
{
    double best = INFINITY;
    for (size_t i = 0; i < n; i++)
        best = fmin(best, l1_obj(v, w, n, v[i]));
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (l1_obj(v, w, n, v[i]) <= best * (1 + 1e-12) + 1e-300) {
            *lo = fmin(*lo, v[i]);
            *hi = fmax(*hi, v[i]);
        }
    }
}

static void test_weighted_median(void)
{
    /* hand cases */
    double v1[] = {3, 1, 2};
    CHECK(md_weighted_median(v1, NULL, 3) == 2.0);
    double v2[] = {1, 2, 3, 4};
    CHECK(md_weighted_median(v2, NULL, 4) == 2.5); /* flat on [2, 3]: midpoint */
    double w2[] = {1, 1, 1, 5};
    CHECK(md_weighted_median(v2, w2, 4) == 4.0);
    double w3[] = {2, 1, 1, 2};
    CHECK(md_weighted_median(v2, w3, 4) == 2.5);
    CHECK(isnan(md_weighted_median(v2, NULL, 0)));
    /* random, against enumeration (continuous weights: unique minimiser) */
    for (int t = 0; t < 200; t++) {
        size_t n = 1 + (size_t)(urand() * 90);
        double v[100], w[100];
        for (size_t i = 0; i < n; i++) {
            v[i] = nrand();
            w[i] = 0.1 + urand();
        }
        double lo, hi;
        brute_median(v, w, n, &lo, &hi);
        double m = md_weighted_median(v, w, n);
        CHECK_MSG(m >= lo - 1e-12 && m <= hi + 1e-12, "n %zu: %g not in [%g, %g]", n, m, lo, hi);
    }
}

/* Samples from arrays (pixel positions are not needed by the fits). */
static md_anchor_samples make_samples(const double *p, const double *g, const double *w, size_t n)
{
    md_anchor_samples s = {0};
    s.n = s.total = n;
    s.base = malloc(n * sizeof *s.base);
    s.depth = malloc(n * sizeof *s.depth);
    s.w = malloc(n * sizeof *s.w);
    s.px = calloc(n, sizeof *s.px);
    s.py = calloc(n, sizeof *s.py);
    for (size_t i = 0; i < n; i++) {
        s.base[i] = p[i];
        s.depth[i] = g[i];
        s.w[i] = w ? w[i] : 1.0;
    }
    return s;
}

static double fit(const md_anchor_samples *s, md_anchor_fit f, md_anchor_result *r,
                  unsigned char *inl)
{
    md_error err = {0};
    md_anchor_result local;
    if (!r)
        r = &local;
    md_status st = md_anchor_fit_samples(s, f, 0, NULL, r, inl, &err);
    CHECK_MSG(st == MD_OK, "%s: %s", md_anchor_fit_name(f), err.message);
    return st == MD_OK ? r->scale : NAN;
}

static void test_fits_hand_made(void)
{
    /* ten anchors at ratio exactly 2, three gross outliers (x4, x4, x0.25) */
    double p[13], g[13];
    for (int i = 0; i < 13; i++) {
        p[i] = 1.0 + 0.25 * i;
        g[i] = 2.0 * p[i];
    }
    g[10] *= 4.0;
    g[11] *= 4.0;
    g[12] *= 0.25;
    md_anchor_samples s = make_samples(p, g, NULL, 13);
    md_anchor_result r;
    unsigned char inl[32];
    CHECK(fit(&s, MD_ANCHOR_FIT_ROBUST, &r, inl) == 2.0);
    CHECK(r.inliers == 10);
    for (int i = 0; i < 13; i++)
        CHECK(inl[i] == (i < 10));
    CHECK(fit(&s, MD_ANCHOR_FIT_MEDIAN, NULL, NULL) == 2.0);
    /* LSQ by hand: sum p g / sum p^2 */
    double pg = 0, pp = 0;
    for (int i = 0; i < 13; i++) {
        pg += p[i] * g[i];
        pp += p[i] * p[i];
    }
    CHECK_NEAR(fit(&s, MD_ANCHOR_FIT_LSQ, NULL, NULL), pg / pp, 1e-12);
    md_anchor_samples_free(&s);

    /* five log ratios ln 2 + {-0.2, -0.1, 0, 0.1, 0.2}: median ln 2, MAD 0.1, robust sd
     * 0.14826, no outliers (X84 at 0.519): the robust fit is ln 2 - 0.14826^2 / 2 */
    double p5[5] = {1, 2, 3, 4, 5}, g5[5];
    for (int i = 0; i < 5; i++)
        g5[i] = p5[i] * 2.0 * exp(0.1 * (i - 2));
    s = make_samples(p5, g5, NULL, 5);
    CHECK_NEAR(log(fit(&s, MD_ANCHOR_FIT_ROBUST, &r, NULL)), log(2.0) - 0.5 * 0.14826 * 0.14826,
               1e-12);
    CHECK(r.inliers == 5);
    CHECK_NEAR(fit(&s, MD_ANCHOR_FIT_MEDIAN, NULL, NULL), 2.0, 1e-12);
    md_anchor_samples_free(&s);
    /* ten times the spread: MAD 1, robust sd 1.4826, and the move capped at
     * 0.35^2 / 2 (X84 at 5.19 keeps all five) */
    for (int i = 0; i < 5; i++)
        g5[i] = p5[i] * 2.0 * exp(1.0 * (i - 2));
    s = make_samples(p5, g5, NULL, 5);
    CHECK_NEAR(log(fit(&s, MD_ANCHOR_FIT_ROBUST, &r, NULL)), log(2.0) - 0.5 * 0.35 * 0.35, 1e-12);
    CHECK(r.inliers == 5);
    CHECK_NEAR(r.residual_sd, 1.4826, 1e-12);
    md_anchor_samples_free(&s);

    /* one anchor: every scale-only fit is its ratio */
    double p1 = 2.0, g1 = 3.0;
    s = make_samples(&p1, &g1, NULL, 1);
    for (int f = MD_ANCHOR_FIT_ROBUST; f <= MD_ANCHOR_FIT_LSQ; f++)
        CHECK_NEAR(fit(&s, (md_anchor_fit)f, &r, NULL), 1.5, 1e-12);
    CHECK(isnan(r.log_scale_sd));
    md_error err = {0};
    CHECK(md_anchor_fit_samples(&s, MD_ANCHOR_FIT_SCALE_SHIFT, 0, "a.txt", &r, NULL, &err) ==
          MD_ERR_DATA);
    CHECK(strstr(err.message, "a.txt") && strstr(err.message, "at least 3"));
    CHECK(md_anchor_fit_samples(&s, MD_ANCHOR_FIT_ROBUST, 1, NULL, &r, NULL, &err) ==
          MD_ERR_ARG); /* disparity needs scale-shift */
    md_anchor_samples_free(&s);

    /* scale and shift recovered exactly from 1/g = a/p + b, with outliers */
    double ps[20], gs[20], a = 0.8, b = 0.05;
    for (int i = 0; i < 20; i++) {
        ps[i] = 0.5 + 0.3 * i;
        gs[i] = 1.0 / (a / ps[i] + b);
    }
    gs[3] *= 3.0;
    gs[11] *= 0.3;
    s = make_samples(ps, gs, NULL, 20);
    CHECK_NEAR(fit(&s, MD_ANCHOR_FIT_SCALE_SHIFT, &r, inl), 1.0 / a, 1e-7);
    CHECK_NEAR(r.shift, b, 1e-8);
    CHECK(r.inliers == 18 && !inl[3] && !inl[11]);
    md_anchor_samples_free(&s);

    /* disparity base: q = base itself */
    for (int i = 0; i < 20; i++) {
        ps[i] = 0.2 + 0.1 * i; /* disparity */
        gs[i] = 1.0 / (a * ps[i] + b);
    }
    s = make_samples(ps, gs, NULL, 20);
    CHECK_OK(md_anchor_fit_samples(&s, MD_ANCHOR_FIT_SCALE_SHIFT, 1, NULL, &r, NULL, &err), &err);
    CHECK_NEAR(1.0 / r.scale, a, 1e-8);
    CHECK_NEAR(r.shift, b, 1e-8);
    md_anchor_samples_free(&s);

    /* all anchors at one base depth: no scale and shift */
    double pe[4] = {2, 2, 2, 2}, ge[4] = {1, 2, 3, 4};
    s = make_samples(pe, ge, NULL, 4);
    CHECK(md_anchor_fit_samples(&s, MD_ANCHOR_FIT_SCALE_SHIFT, 0, NULL, &r, NULL, &err) ==
          MD_ERR_DATA);
    md_anchor_samples_free(&s);
}

/* The weighted L1 line against all lines through two points. */
static void test_l1_line_brute_force(void)
{
    for (int t = 0; t < 60; t++) {
        size_t n = 3 + (size_t)(urand() * 30);
        double x[40], y[40], c[40], scratch[40];
        for (size_t i = 0; i < n; i++) {
            x[i] = urand() * 4 - 2;
            y[i] = 0.7 - 0.4 * x[i] + 0.3 * nrand() + (urand() < 0.15 ? 3 * nrand() : 0);
            c[i] = 0.2 + urand();
        }
        double best = INFINITY;
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++) {
                if (x[i] == x[j])
                    continue;
                double b = (y[i] - y[j]) / (x[i] - x[j]), a = y[i] - b * x[i];
                if (b < -5 || b > 5)
                    continue;
                double f = 0;
                for (size_t k = 0; k < n; k++)
                    f += c[k] * fabs(y[k] - a - b * x[k]);
                best = fmin(best, f);
            }
        double a, b;
        md_l1_line(x, y, c, n, -5, 5, &a, &b, scratch);
        double f = 0;
        for (size_t k = 0; k < n; k++)
            f += c[k] * fabs(y[k] - a - b * x[k]);
        CHECK_MSG(f <= best * (1 + 1e-9) + 1e-12, "n %zu: %.12g > %.12g", n, f, best);
    }
}

/* Random anchors: each fit equals its objective's brute-force minimiser. */
static void test_fits_brute_force(void)
{
    md_error err = {0};
    for (int t = 0; t < 100; t++) {
        size_t n = 2 + (size_t)(urand() * 60);
        double p[64], g[64], w[64], r[64], lw[64];
        int wi[64];
        for (size_t i = 0; i < n; i++) {
            p[i] = 0.5 + 4 * urand();
            g[i] = p[i] * 1.3 * exp(0.2 * nrand() + (urand() < 0.1 ? 1.0 : 0.0));
            wi[i] = 1 + (int)(urand() * 3);
            w[i] = wi[i];
            r[i] = g[i] / p[i];
            lw[i] = log(r[i]);
        }
        md_anchor_samples s = make_samples(p, g, w, n);
        /* median: sum w |s - r| */
        double lo, hi;
        brute_median(r, w, n, &lo, &hi);
        CHECK_NEAR(fit(&s, MD_ANCHOR_FIT_MEDIAN, NULL, NULL), 0.5 * (lo + hi), 1e-12);
        /* robust: the X84 rule written out, then the inliers' weighted median */
        double m0lo, m0hi;
        brute_median(lw, w, n, &m0lo, &m0hi);
        double m0 = 0.5 * (m0lo + m0hi), dev[64];
        for (size_t i = 0; i < n; i++)
            dev[i] = fabs(lw[i] - m0);
        double dlo, dhi;
        brute_median(dev, w, n, &dlo, &dhi);
        double sd = fmax(1.4826 * 0.5 * (dlo + dhi), 1e-6);
        double yi[64], wv[64];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (n < 3 || fabs(lw[i] - m0) <= 3.5 * sd) {
                yi[k] = lw[i];
                wv[k++] = w[i];
            }
        brute_median(yi, wv, k, &lo, &hi);
        md_anchor_result res;
        double rob = fit(&s, MD_ANCHOR_FIT_ROBUST, &res, NULL);
        /* ... moved down by half the robust variance towards the relative-error optimum */
        double sdm = fmin(sd, 0.35); /* the move's sd is capped at 0.35 */
        double move = n >= 3 && sd > 1e-6 ? 0.5 * sdm * sdm : 0.0;
        CHECK_NEAR(log(rob), 0.5 * (lo + hi) - move, 1e-12);
        CHECK(res.inliers == k);
        /* W1 with integer weights = unweighted W1 of the replicated anchors */
        float rp[256], rg[256];
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < wi[i]; c++) {
                rp[m] = (float)p[i];
                rg[m++] = (float)g[i];
            }
        md_anchor_samples sf = make_samples(p, g, w, n);
        for (size_t i = 0; i < n; i++) { /* same float values as the replicated arrays */
            sf.base[i] = (float)p[i];
            sf.depth[i] = (float)g[i];
        }
        double sw;
        CHECK_OK(md_scale_fit(rp, rg, m, MD_SCALE_W1, 1e-9, 1e9, &sw, &err), &err);
        CHECK_NEAR(fit(&sf, MD_ANCHOR_FIT_W1, NULL, NULL), sw, 1e-9 * sw);
        md_anchor_samples_free(&sf);
        /* LSQ: the weighted normal equation by hand */
        double pg = 0, pp = 0;
        for (size_t i = 0; i < n; i++) {
            pg += w[i] * p[i] * g[i];
            pp += w[i] * p[i] * p[i];
        }
        CHECK_NEAR(fit(&s, MD_ANCHOR_FIT_LSQ, NULL, NULL), pg / pp, 1e-12 * pg / pp);
        /* scale-shift: sum w |g (a/p + b) - 1| no larger than the best line
         * through two anchors (where the optimum lies) */
        if (n >= 3) {
            md_anchor_result rs;
            if (md_anchor_fit_samples(&s, MD_ANCHOR_FIT_SCALE_SHIFT, 0, NULL, &rs, NULL, &err) ==
                MD_OK) {
                double a = 1.0 / rs.scale, b = rs.shift, f = 0, best = INFINITY;
                for (size_t i = 0; i < n; i++)
                    f += w[i] * fabs(g[i] * (a / p[i] + b) - 1.0);
                for (size_t i = 0; i < n; i++)
                    for (size_t j = i + 1; j < n; j++) {
                        double qi = 1 / p[i], qj = 1 / p[j];
                        if (qi == qj)
                            continue;
                        double aa = (1 / g[i] - 1 / g[j]) / (qi - qj), bb = 1 / g[i] - aa * qi;
                        if (!(aa > 0))
                            continue;
                        double ff = 0;
                        for (size_t q = 0; q < n; q++)
                            ff += w[q] * fabs(g[q] * (aa / p[q] + bb) - 1.0);
                        best = fmin(best, ff);
                    }
                CHECK_MSG(f <= best * (1 + 1e-8) + 1e-12, "scale-shift %.12g > %.12g", f, best);
            }
        }
        md_anchor_samples_free(&s);
    }
}

/* ------------------------------------------------------------ files */

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static void expect_error(const char *text, md_status code, const char *needle)
{
    const char *path = tmp_path("bad.txt");
    write_text(path, text);
    md_anchor_set set;
    md_error err = {0};
    md_status st = md_anchors_load(path, 64, 48, 0, &set, &err);
    CHECK_MSG(st == code, "'%s' -> %d (%s), want %d", text, (int)st, err.message, (int)code);
    CHECK_MSG(strstr(err.message, path) && strstr(err.message, needle), "'%s': message '%s'",
              text, err.message);
    CHECK(set.items == NULL && set.count == 0);
}

static void test_text_files(void)
{
    md_error err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("anchors.txt"));
    write_text(path, "# u v depth_m [weight]\n"
                     "10 20 1.5\n"
                     "\n"
                     "  63.9 0 2.25 0.5   # a comment after the numbers\n"
                     "0\t47 3e0\r\n");
    md_anchor_set set;
    CHECK_OK(md_anchors_load(path, 64, 48, 0, &set, &err), &err);
    CHECK(set.count == 3);
    if (set.count == 3) {
        CHECK(set.items[0].u == 10 && set.items[0].v == 20 && set.items[0].depth == 1.5f &&
              set.items[0].weight == 1.0f);
        CHECK(set.items[1].u == 63.9f && set.items[1].weight == 0.5f);
        CHECK(set.items[2].v == 47 && set.items[2].depth == 3.0f);
    }
    md_anchor_set_free(&set);
    CHECK(set.items == NULL && set.count == 0);

    expect_error("10 20 1.5\n64 0 2\n", MD_ERR_DATA, ":2: anchor at (64, 0) lies outside");
    expect_error("10 -1 1.5\n", MD_ERR_DATA, "outside the 64x48 image");
    expect_error("1 2 0\n", MD_ERR_DATA, ":1: depth 0 m is not positive");
    expect_error("1 2 -3\n", MD_ERR_DATA, "not positive");
    expect_error("1 2 3 0\n", MD_ERR_DATA, "weight 0 is not positive");
    expect_error("1 2 nan\n", MD_ERR_FORMAT, "is not a number");
    expect_error("1 2 x3\n", MD_ERR_FORMAT, "'x3' is not a number");
    expect_error("# header\n1 2\n", MD_ERR_FORMAT, ":2: 2 numbers");
    expect_error("1 2 3 4 5\n", MD_ERR_FORMAT, "more than 4 numbers");
    expect_error("# nothing\n\n", MD_ERR_DATA, "no anchors");
    expect_error("1 2 3\n\x01\x02\x03", MD_ERR_FORMAT, "binary data");
    CHECK(md_anchors_load(tmp_path("missing.txt"), 64, 48, 0, &set, &err) == MD_ERR_IO);
    CHECK(md_anchors_load(path, 0, 48, 0, &set, &err) == MD_ERR_ARG);
    CHECK(md_anchors_load(path, 64, 48, 0, &set, NULL) == MD_OK);
    md_anchor_set_free(&set);
}

static void test_sparse_images(void)
{
    md_error err = {0};
    md_depth d = {0};
    CHECK_OK(md_depth_alloc(&d, 8, 6, &err), &err);
    memset(d.data, 0, 48 * sizeof *d.data);
    d.data[1 * 8 + 2] = 1.234f; /* (u, v) = (2, 1) */
    d.data[5 * 8 + 7] = 4.5f;
    const char *png = tmp_path("sparse.png"), *npy = tmp_path("sparse.npy");
    CHECK_OK(md_depth_save(png, &d, &err), &err);
    CHECK_OK(md_depth_save(npy, &d, &err), &err);
    for (int k = 0; k < 2; k++) {
        md_anchor_set set;
        CHECK_OK(md_anchors_load(k ? npy : png, 8, 6, 0, &set, &err), &err);
        CHECK(set.count == 2);
        if (set.count == 2) {
            CHECK(set.items[0].u == 2.5f && set.items[0].v == 1.5f);
            CHECK_NEAR(set.items[0].depth, 1.234, k ? 1e-6 : 5e-4); /* PNG: millimetres */
            CHECK(set.items[1].u == 7.5f && set.items[1].v == 5.5f && set.items[1].weight == 1);
        }
        md_anchor_set_free(&set);
        /* a sparse image of another size than the image */
        CHECK(md_anchors_load(k ? npy : png, 16, 6, 0, &set, &err) == MD_ERR_DATA);
        CHECK(strstr(err.message, "8x6") && strstr(err.message, "16x6"));
    }
    /* a negative value in an .npy is an error, not "no measurement" */
    md_tensor t = {2, {6, 8}, d.data};
    d.data[0] = -1.0f;
    CHECK_OK(md_npy_save(npy, &t, &err), &err);
    md_anchor_set set;
    CHECK(md_anchors_load(npy, 8, 6, 0, &set, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, npy) && strstr(err.message, "-1"));
    /* all zero: no anchors */
    memset(d.data, 0, 48 * sizeof *d.data);
    CHECK_OK(md_depth_save(png, &d, &err), &err);
    CHECK(md_anchors_load(png, 8, 6, 0, &set, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "no pixel"));
    /* a colour image is not a depth map */
    md_image img = {8, 6, calloc(8 * 6 * 3, 1)};
    const char *rgb = tmp_path("rgb.png");
    CHECK_OK(md_image_save_png(rgb, &img, &err), &err);
    md_image_free(&img);
    CHECK(md_anchors_load(rgb, 8, 6, 0, &set, &err) != MD_OK);
    md_depth_free(&d);
}

/* ---------------------------------------------------- md_scale_depth */

static void test_scale_source(void)
{
    md_error err = {0};
    md_depth base = {0};
    CHECK_OK(md_depth_alloc(&base, 10, 4, &err), &err);
    for (int i = 0; i < 40; i++)
        base.data[i] = 1.0f + 0.1f * (float)i;
    base.data[0] = 0.0f; /* an invalid pixel: the anchor there is unused */
    md_anchor a[5] = {{0.5f, 0.5f, 9.0f, 1}, {3.5f, 0.5f, 0, 1}, {5.2f, 1.7f, 0, 1},
                      {9.99f, 3.99f, 0, 1}, {1.0f, 2.0f, 0, 1}};
    const int idx[5] = {0, 3, 15, 39, 21};
    for (int i = 1; i < 5; i++)
        a[i].depth = 2.5f * base.data[idx[i]];
    md_anchor_set set = {a, 5};
    md_scale_options so = md_scale_options_default();
    CHECK(so.anchor_fit == MD_ANCHOR_FIT_ROBUST && !so.scale_map);
    so.source = MD_SCALE_SOURCE_ANCHORS;
    so.anchors = &set;
    so.anchors_name = "a.txt";
    md_scale_record rec;
    md_depth d = {0};
    CHECK_OK(md_depth_alloc(&d, 10, 4, &err), &err);
    memcpy(d.data, base.data, 40 * sizeof *d.data);
    CHECK_OK(md_scale_depth(NULL, NULL, &d, &so, &rec, &err), &err);
    CHECK(rec.source == MD_SCALE_SOURCE_ANCHORS && rec.applied && rec.confidence == 1.0);
    CHECK_NEAR(rec.scale, 2.5, 1e-6);
    CHECK(rec.anchors_total == 5 && rec.anchors_used == 4 && rec.anchors_inliers == 4);
    CHECK(rec.log_scale_map == NULL && rec.shift == 0.0);
    CHECK_NEAR(d.data[39], 2.5 * base.data[39], 1e-5);
    CHECK(strstr(rec.note, "4 of 5 anchors used"));
    md_scale_record_free(&rec);

    /* scale-shift applied as depth = 1 / (1 / (s p) + b) */
    float ta = 0.5f, tb = 0.1f;
    for (int i = 1; i < 5; i++)
        a[i].depth = 1.0f / (ta / base.data[idx[i]] + tb);
    so.anchor_fit = MD_ANCHOR_FIT_SCALE_SHIFT;
    memcpy(d.data, base.data, 40 * sizeof *d.data);
    CHECK_OK(md_scale_depth(NULL, NULL, &d, &so, &rec, &err), &err);
    CHECK_NEAR(rec.scale, 1.0 / ta, 1e-5);
    CHECK_NEAR(rec.shift, tb, 1e-6);
    CHECK_NEAR(d.data[10], 1.0 / (ta / base.data[10] + tb), 1e-5);
    CHECK(d.data[0] == 0.0f);

    /* errors name the anchors */
    so.scale_map = 1;
    CHECK(md_scale_depth(NULL, NULL, &d, &so, &rec, &err) == MD_ERR_ARG);
    CHECK(strstr(err.message, "a.txt") && strstr(err.message, "scale-only"));
    so.scale_map = 0;
    a[2].u = 10.0f;
    CHECK(md_scale_depth(NULL, NULL, &d, &so, &rec, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "a.txt: anchor 3 at (10, 1.7) lies outside the 10x4 image"));
    a[2].u = 5.2f;
    a[3].depth = -1.0f;
    CHECK(md_scale_depth(NULL, NULL, &d, &so, &rec, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "anchor 4 has depth -1"));
    set.count = 3; /* anchors 1..3, one on an invalid pixel: 2 usable, scale-shift needs 3 */
    a[3].depth = 1.0f;
    CHECK(md_scale_depth(NULL, NULL, &d, &so, &rec, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "2 of 3 anchors") && strstr(err.message, "at least 3"));
    set.count = 1; /* only the invalid pixel */
    so.anchor_fit = MD_ANCHOR_FIT_ROBUST;
    CHECK(md_scale_depth(NULL, NULL, &d, &so, &rec, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "none of the 1 anchors"));
    so.anchors = NULL;
    CHECK(md_scale_depth(NULL, NULL, &d, &so, &rec, &err) == MD_ERR_ARG);
    CHECK(md_scale_depth(NULL, NULL, &d, &so, &rec, NULL) == MD_ERR_ARG);
    md_depth_free(&d);
    md_depth_free(&base);

    CHECK(md_anchor_fit_parse("scale-shift") == MD_ANCHOR_FIT_SCALE_SHIFT);
    CHECK(md_anchor_fit_parse("ROBUST") == MD_ANCHOR_FIT_ROBUST);
    CHECK(md_anchor_fit_parse("ransac") == -1);
    CHECK(strcmp(md_anchor_fit_name(MD_ANCHOR_FIT_W1), "w1") == 0);
    CHECK(md_anchor_fit_min_count(MD_ANCHOR_FIT_SCALE_SHIFT) == 3);
}

/* ------------------------------------------------------ simulation */

static void test_simulation(void)
{
    md_error err = {0};
    md_depth pred = {0}, gt = {0};
    CHECK_OK(md_depth_alloc(&pred, 20, 10, &err), &err);
    CHECK_OK(md_depth_alloc(&gt, 20, 10, &err), &err);
    size_t nvalid = 0;
    for (int i = 0; i < 200; i++) {
        pred.data[i] = (i % 7) ? 1.0f + (float)(i % 13) : 0.0f;
        gt.data[i] = (i % 5) ? 2.0f + (float)(i % 11) : 0.0f;
        nvalid += pred.data[i] > 0 && gt.data[i] > 0;
    }
    md_anchor_sim sim = {16, 0.0, 0.0, 42};
    md_anchor_set a, b;
    CHECK_OK(md_anchor_simulate(&pred, &gt, &sim, &a, &err), &err);
    CHECK(a.count == 16);
    int seen[200] = {0};
    for (size_t i = 0; i < a.count; i++) {
        int x = (int)a.items[i].u, y = (int)a.items[i].v, k = y * 20 + x;
        CHECK(pred.data[k] > 0 && gt.data[k] > 0 && !seen[k]);
        CHECK(a.items[i].depth == gt.data[k]);
        seen[k] = 1;
    }
    CHECK_OK(md_anchor_simulate(&pred, &gt, &sim, &b, &err), &err); /* same seed, same draw */
    CHECK(b.count == a.count && memcmp(a.items, b.items, a.count * sizeof *a.items) == 0);
    md_anchor_set_free(&b);
    /* every anchor an outlier: factor within [1.5, 4] either way */
    sim.outliers = 1.0;
    CHECK_OK(md_anchor_simulate(&pred, &gt, &sim, &b, &err), &err);
    for (size_t i = 0; i < b.count; i++) {
        int k = (int)b.items[i].v * 20 + (int)b.items[i].u;
        double f = fabs(log(b.items[i].depth / gt.data[k]));
        CHECK_MSG(f >= log(1.5) - 1e-6 && f <= log(4.0) + 1e-6, "factor %g", exp(f));
    }
    md_anchor_set_free(&b);
    /* noise: relative sd about 0.05 over many anchors */
    sim.outliers = 0.0;
    sim.noise = 0.05;
    sim.k = 1000;
    CHECK_OK(md_anchor_simulate(&pred, &gt, &sim, &b, &err), &err);
    CHECK(b.count == nvalid); /* fewer valid pixels than K: all of them */
    md_anchor_set_free(&b);
    md_anchor_set_free(&a);
    /* AbsRel and delta1 as md_metrics_compute has them */
    md_metrics m;
    double ar, d1;
    CHECK_OK(md_metrics_compute(&pred, &gt, MD_PROTOCOL_SEED, &m, &err), &err);
    CHECK_OK(md_abs_rel_delta1(&pred, &gt, &ar, &d1, &err), &err);
    CHECK_NEAR(ar, m.abs_rel, 1e-12);
    CHECK_NEAR(d1, m.delta1, 1e-12);
    /* jitter: sd of the differences (hand computed: diffs 1, 3, -1 -> sd 2) */
    double x[4] = {0, 1, 4, 3};
    CHECK_NEAR(md_jitter(x, 4), 2.0, 1e-12);
    CHECK(isnan(md_jitter(x, 2)));
    double mean, sd;
    md_mean_sd(x, 4, &mean, &sd);
    CHECK_NEAR(mean, 2.0, 1e-12);
    CHECK_NEAR(sd, sqrt(10.0 / 3.0), 1e-12);
    md_depth_free(&pred);
    md_depth_free(&gt);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/md_test_anchors_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN_TEST(test_weighted_median);
    RUN_TEST(test_fits_hand_made);
    RUN_TEST(test_l1_line_brute_force);
    RUN_TEST(test_fits_brute_force);
    RUN_TEST(test_text_files);
    RUN_TEST(test_sparse_images);
    RUN_TEST(test_scale_source);
    RUN_TEST(test_simulation);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_finish();
}
