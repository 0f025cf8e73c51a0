/* Depth metrics and protocols against hand-computed values. Maps are built in
 * memory (no file I/O). Expected values are written out from the metric
 * definitions over a handful of pixel categories, never taken from the code. */
#include "check.h"
#include "base/base.h"

#include <stdint.h>
#include <string.h>

/* Expected metrics over categories of pixels: cat[k] = (p, g, count). A
 * direct restatement of the definitions, used only where the test itself
 * lists the pixels. */
typedef struct {
    double p, g, count;
} category;

static md_metrics expected(const category *cat, int k)
{
    double n = 0, ar = 0, sr = 0, sq = 0, le2 = 0, l10 = 0, le = 0, d1 = 0, d2 = 0, d3 = 0;
    for (int i = 0; i < k; i++) {
        double p = cat[i].p, g = cat[i].g, c = cat[i].count;
        double e = log(p / g);
        double ratio = fmax(p / g, g / p);
        n += c;
        ar += c * fabs(p - g) / g;
        sr += c * (p - g) * (p - g) / g;
        sq += c * (p - g) * (p - g);
        le2 += c * e * e;
        le += c * e;
        l10 += c * fabs(log10(p) - log10(g));
        d1 += c * (ratio < 1.25);
        d2 += c * (ratio < 1.25 * 1.25);
        d3 += c * (ratio < 1.25 * 1.25 * 1.25);
    }
    md_metrics m;
    m.abs_rel = ar / n;
    m.sq_rel = sr / n;
    m.rmse = sqrt(sq / n);
    m.rmse_log = sqrt(le2 / n);
    m.log10 = l10 / n;
    m.silog = sqrt(le2 / n - 0.5 * (le / n) * (le / n));
    m.delta1 = d1 / n;
    m.delta2 = d2 / n;
    m.delta3 = d3 / n;
    m.n_valid = (size_t)n;
    return m;
}

static void check_metrics(const md_metrics *got, const md_metrics *want, double tol)
{
    CHECK_NEAR(got->abs_rel, want->abs_rel, tol);
    CHECK_NEAR(got->sq_rel, want->sq_rel, tol);
    CHECK_NEAR(got->rmse, want->rmse, tol);
    CHECK_NEAR(got->rmse_log, want->rmse_log, tol);
    CHECK_NEAR(got->log10, want->log10, tol);
    CHECK_NEAR(got->silog, want->silog, tol);
    CHECK_NEAR(got->delta1, want->delta1, 0);
    CHECK_NEAR(got->delta2, want->delta2, 0);
    CHECK_NEAR(got->delta3, want->delta3, 0);
    CHECK_MSG(got->n_valid == want->n_valid, "n_valid %zu, want %zu", got->n_valid,
              want->n_valid);
}

static void test_2x2_by_hand(void)
{
    /* (p, g): (2,1), (1,2), (4,4), (1.25,1)
     * AbsRel = (1 + 0.5 + 0 + 0.25)/4 = 0.4375
     * SqRel  = (1 + 0.5 + 0 + 0.0625)/4 = 0.390625
     * RMSE   = sqrt((1 + 1 + 0 + 0.0625)/4) = sqrt(0.515625)
     * e      = (ln 2, -ln 2, 0, ln 1.25)
     * RMSE-log = sqrt((2 ln^2 2 + ln^2 1.25)/4)
     * log10  = (2 log10 2 + log10 1.25)/4
     * SILog  = sqrt((2 ln^2 2 + ln^2 1.25)/4 - 0.5 (ln 1.25 / 4)^2)
     * ratios (2, 2, 1, 1.25): delta1 = 1/4 (1.25 itself is not < 1.25),
     * delta2 = 2/4, delta3 = 2/4. */
    float pd[4] = {2, 1, 4, 1.25f}, gd[4] = {1, 2, 4, 1};
    md_depth pred = {2, 2, pd, NULL}, gt = {2, 2, gd, NULL};
    md_metrics m;
    md_error err = {0};
    CHECK_OK(md_metrics_compute(&pred, &gt, MD_PROTOCOL_SEED, &m, &err), &err);
    double l2 = log(2.0), l125 = log(1.25);
    CHECK_NEAR(m.abs_rel, 0.4375, 1e-15);
    CHECK_NEAR(m.sq_rel, 0.390625, 1e-15);
    CHECK_NEAR(m.rmse, sqrt(0.515625), 1e-15);
    CHECK_NEAR(m.rmse_log, sqrt((2 * l2 * l2 + l125 * l125) / 4), 1e-15);
    CHECK_NEAR(m.log10, (2 * log10(2.0) + log10(1.25)) / 4, 1e-15);
    CHECK_NEAR(m.silog,
               sqrt((2 * l2 * l2 + l125 * l125) / 4 - 0.5 * (l125 / 4) * (l125 / 4)), 1e-15);
    CHECK(m.delta1 == 0.25);
    CHECK(m.delta2 == 0.5);
    CHECK(m.delta3 == 0.5);
    CHECK(m.n_valid == 4);

    /* The same map under eigen: 2x2 scales the crop to rows [0, 2), cols
     * [0, 2) (45*2/480 = 0.19 -> 0, 471*2/480 = 1.96 -> 2, 41*2/640 = 0.13 -> 0,
     * 601*2/640 = 1.88 -> 2), all gt in
     * range, all pred inside [1e-3, 10]: identical numbers. */
    md_metrics e;
    CHECK_OK(md_metrics_compute(&pred, &gt, MD_PROTOCOL_EIGEN, &e, &err), &err);
    CHECK_NEAR(e.abs_rel, 0.4375, 1e-15);
    CHECK(e.n_valid == 4);
}

static void test_3x3_boundaries_and_masks(void)
{
    /* delta boundaries exactly at 1.25^2 and 1.25^3 (both exact in binary),
     * one pixel just below 1.25^3, and every kind of excluded pixel. */
    float below = nextafterf(1.953125f, 0.0f);
    float pd[9] = {1.5625f, 1, below, 0, 1, 5, 5, NAN, 2};
    float gd[9] = {1, 1.953125f, 1, 1, 0, 3, 1, 1, 2};
    uint8_t gmask[9] = {1, 1, 1, 1, 1, 0, 1, 1, 1}; /* i=5 masked out in gt */
    uint8_t pmask[9] = {1, 1, 1, 1, 1, 1, 0, 1, 1}; /* i=6 masked out in pred */
    md_depth pred = {3, 3, pd, pmask}, gt = {3, 3, gd, gmask};
    md_metrics m;
    md_error err = {0};
    CHECK_OK(md_metrics_compute(&pred, &gt, MD_PROTOCOL_SEED, &m, &err), &err);
    /* valid: i=0 (ratio 1.5625: delta3 only), i=1 (ratio 1.953125: none),
     * i=2 (ratio just below 1.953125: delta3), i=8 (ratio 1: all) */
    CHECK(m.n_valid == 4);
    CHECK(m.delta1 == 0.25);
    CHECK(m.delta2 == 0.25);
    CHECK(m.delta3 == 0.75);
    double b = below;
    double abs_rel = (0.5625 + (1.953125 - 1) / 1.953125 + (b - 1) + 0) / 4;
    CHECK_NEAR(m.abs_rel, abs_rel, 1e-15);
    double rmse = sqrt((0.5625 * 0.5625 + 0.953125 * 0.953125 + (b - 1) * (b - 1)) / 4);
    CHECK_NEAR(m.rmse, rmse, 1e-15);
    category cat[] = {{1.5625, 1, 1}, {1, 1.953125, 1}, {b, 1, 1}, {2, 2, 1}};
    md_metrics want = expected(cat, 4);
    check_metrics(&m, &want, 1e-14);

    /* Without the masks, i=5 (5 vs 3) and i=6 (5 vs 1) come in. */
    md_depth pred_nomask = {3, 3, pd, NULL}, gt_nomask = {3, 3, gd, NULL};
    CHECK_OK(md_metrics_compute(&pred_nomask, &gt_nomask, MD_PROTOCOL_SEED, &m, &err), &err);
    category cat2[] = {{1.5625, 1, 1}, {1, 1.953125, 1}, {b, 1, 1}, {2, 2, 1}, {5, 3, 1}, {5, 1, 1}};
    want = expected(cat2, 6);
    check_metrics(&m, &want, 1e-14);
}

/* 480x640: pixels outside the Eigen crop rows [45, 471) x cols [41, 601) are
 * deliberately wrong and must not matter; inside, special pixels exercise the
 * gt range and the pred clip. */
static void test_eigen_crop(void)
{
    const int W = 640, H = 480;
    md_error err = {0};
    md_depth pred = {0}, gt = {0};
    size_t npix = (size_t)W * H;
    pred.width = gt.width = W;
    pred.height = gt.height = H;
    pred.data = malloc(npix * sizeof(float));
    gt.data = malloc(npix * sizeof(float));
    pred.mask = malloc(npix);
    gt.mask = malloc(npix);
    memset(pred.mask, 1, npix);
    memset(gt.mask, 1, npix);
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            int inside = y >= 45 && y < 471 && x >= 41 && x < 601;
            gt.data[i] = inside ? 2.0f : 3.0f;
            pred.data[i] = inside ? 2.2f : 30.0f; /* outside: wildly wrong */
        }
    }
#define AT(y, x) ((size_t)(y) * W + (x))
    gt.data[AT(100, 100)] = 15.0f;               /* a: gt above 10 -> excluded */
    gt.data[AT(100, 101)] = 1e-3f;               /* b: gt not > 1e-3 -> excluded */
    gt.data[AT(100, 102)] = 9.0f;                /* c: pred 20 clipped to 10 */
    pred.data[AT(100, 102)] = 20.0f;
    gt.data[AT(100, 103)] = 5.0f;                /* d: pred 0 (invalid) -> excluded */
    pred.data[AT(100, 103)] = 0.0f;
    gt.data[AT(100, 104)] = 5.0f;                /* e: pred NaN -> excluded */
    pred.data[AT(100, 104)] = NAN;
    pred.mask[AT(100, 105)] = 0;                 /* f: pred masked (unseen) -> excluded */
    gt.mask[AT(100, 106)] = 0;                   /* g: gt masked -> excluded */
    gt.data[AT(200, 300)] = 0.0f;                /* h: gt invalid -> excluded */
    pred.data[AT(300, 300)] = 1e-4f;             /* i: pred below range -> 1e-3 vs 2 */

    md_metrics m;
    CHECK_OK(md_metrics_compute(&pred, &gt, MD_PROTOCOL_EIGEN, &m, &err), &err);
    double crop = 426.0 * 560.0; /* 238,560 pixels */
    double lo = (double)1e-3f;
    category cat[] = {
        {(double)2.2f, 2, crop - 9}, /* the ordinary crop pixels */
        {10, 9, 1},                  /* c */
        {lo, 2, 1},                  /* i */
    };
    md_metrics want = expected(cat, 3);
    CHECK(want.n_valid == 238553);
    check_metrics(&m, &want, 1e-12);
    /* spot values by hand: 238,551 pixels at |2.2f-2|/2, one at 1/9, one at
     * (2-1e-3)/2 */
    double d = ((double)2.2f - 2) / 2;
    CHECK_NEAR(m.abs_rel, (238551 * d + 1.0 / 9 + 1 * (2 - lo) / 2) / 238553, 1e-12);
    CHECK_NEAR(m.delta1, 238552.0 / 238553.0, 1e-15); /* c (10/9 < 1.25) counts too */

    /* The same prediction with its invalid pixels stored as 0 and no mask (as
     * a depth file or the cache holds it) gives bit-identical numbers. */
    md_depth stored = pred;
    stored.mask = NULL;
    stored.data = malloc(npix * sizeof(float));
    for (size_t i = 0; i < npix; i++)
        stored.data[i] = md_depth_valid_at(&pred, i) ? pred.data[i] : 0.0f;
    md_metrics ms;
    CHECK_OK(md_metrics_compute(&stored, &gt, MD_PROTOCOL_EIGEN, &ms, &err), &err);
    CHECK(memcmp(&ms, &m, sizeof m) == 0);
    free(stored.data);

    /* Under seed the wrong outside pixels do count: the protocol matters. */
    md_metrics s;
    CHECK_OK(md_metrics_compute(&pred, &gt, MD_PROTOCOL_SEED, &s, &err), &err);
    /* all but g (gt masked), h (gt 0), d (pred 0), e (NaN), f (pred masked) */
    CHECK(s.n_valid == npix - 5);
    CHECK(s.abs_rel > 1.0);

    /* Changing every pixel outside the crop (including the crop's direct
     * neighbours) leaves the eigen numbers bit-identical. */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (!(y >= 45 && y < 471 && x >= 41 && x < 601)) {
                pred.data[AT(y, x)] = (float)(0.5 + (x * 7 + y * 13) % 17);
                gt.data[AT(y, x)] = (float)(1 + (x * 3 + y) % 9);
            }
    md_metrics m2;
    CHECK_OK(md_metrics_compute(&pred, &gt, MD_PROTOCOL_EIGEN, &m2, &err), &err);
    CHECK(memcmp(&m, &m2, sizeof m) == 0);
    /* ... while changing one pixel on the crop's edge does not. */
    pred.data[AT(470, 600)] = 7.0f;
    CHECK_OK(md_metrics_compute(&pred, &gt, MD_PROTOCOL_EIGEN, &m2, &err), &err);
    CHECK(m2.abs_rel > m.abs_rel);
    pred.data[AT(45, 41)] = 7.0f;
    md_metrics m3;
    CHECK_OK(md_metrics_compute(&pred, &gt, MD_PROTOCOL_EIGEN, &m3, &err), &err);
    CHECK(m3.abs_rel > m2.abs_rel);
#undef AT
    free(pred.data);
    free(gt.data);
    free(pred.mask);
    free(gt.mask);
}

/* Other sizes: bounds scale proportionally (round half up). 960x1280 doubles
 * every bound: rows [90, 942), cols [82, 1202). 48x64: rows [4.5 -> 5,
 * 47.1 -> 47), cols [4.1 -> 4, 60.1 -> 60). */
static void test_eigen_scaled(void)
{
    static const struct {
        int w, h, r0, r1, c0, c1;
    } sizes[] = {{1280, 960, 90, 942, 82, 1202}, {64, 48, 5, 47, 4, 60}};
    for (int k = 0; k < 2; k++) {
        int W = sizes[k].w, H = sizes[k].h;
        size_t npix = (size_t)W * H;
        float *pd = malloc(npix * sizeof *pd), *gd = malloc(npix * sizeof *gd);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int inside = y >= sizes[k].r0 && y < sizes[k].r1 && x >= sizes[k].c0 &&
                             x < sizes[k].c1;
                gd[(size_t)y * W + x] = 2.0f;
                pd[(size_t)y * W + x] = inside ? 2.0f : 4.0f;
            }
        md_depth pred = {W, H, pd, NULL}, gt = {W, H, gd, NULL};
        md_metrics m;
        md_error err = {0};
        CHECK_OK(md_metrics_compute(&pred, &gt, MD_PROTOCOL_EIGEN, &m, &err), &err);
        size_t want = (size_t)(sizes[k].r1 - sizes[k].r0) * (size_t)(sizes[k].c1 - sizes[k].c0);
        CHECK_MSG(m.n_valid == want, "%dx%d: %zu pixels, want %zu", W, H, m.n_valid, want);
        CHECK(m.abs_rel == 0.0 && m.delta1 == 1.0);
        free(pd);
        free(gd);
    }
}

static void test_mean(void)
{
    md_metrics items[2] = {
        {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 10},
        {0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 30},
    };
    md_metrics m;
    md_metrics_mean(items, 2, &m);
    CHECK_NEAR(m.abs_rel, 0.2, 1e-15);
    CHECK_NEAR(m.sq_rel, 0.3, 1e-15);
    CHECK_NEAR(m.rmse, 0.4, 1e-15);
    CHECK_NEAR(m.rmse_log, 0.5, 1e-15);
    CHECK_NEAR(m.log10, 0.6, 1e-15);
    CHECK_NEAR(m.silog, 0.7, 1e-15);
    CHECK_NEAR(m.delta1, 0.8, 1e-15);
    CHECK_NEAR(m.delta2, 0.9, 1e-15);
    CHECK_NEAR(m.delta3, 0.95, 1e-15);
    CHECK(m.n_valid == 40);
    /* per-image mean, not pooled: a one-pixel image weighs as much as a
     * million-pixel one */
    md_metrics_mean(items, 1, &m);
    CHECK(m.abs_rel == 0.1 && m.n_valid == 10);
    md_metrics_mean(items, 0, &m);
    CHECK(isnan(m.abs_rel) && m.n_valid == 0);
}

static void test_errors_and_parse(void)
{
    CHECK(md_protocol_parse("seed") == MD_PROTOCOL_SEED);
    CHECK(md_protocol_parse("eigen") == MD_PROTOCOL_EIGEN);
    CHECK(md_protocol_parse("Eigen") == MD_PROTOCOL_EIGEN);
    CHECK(md_protocol_parse("kitti") == -1);
    CHECK(md_protocol_parse(NULL) == -1);

    float a[6] = {1, 2, 3, 4, 5, 6}, z[6] = {0};
    md_depth p32 = {3, 2, a, NULL}, p23 = {2, 3, a, NULL}, zero = {3, 2, z, NULL};
    md_metrics m;
    md_error err = {0};
    CHECK(md_metrics_compute(&p32, &p23, MD_PROTOCOL_SEED, &m, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "3x2") != NULL && strstr(err.message, "2x3") != NULL);
    CHECK(md_metrics_compute(&zero, &p32, MD_PROTOCOL_SEED, &m, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "no valid pixel") != NULL);
    CHECK(md_metrics_compute(&p32, &zero, MD_PROTOCOL_EIGEN, &m, &err) == MD_ERR_DATA);
    /* eigen: pred all invalid leaves no pixel, as under seed */
    CHECK(md_metrics_compute(&zero, &p32, MD_PROTOCOL_EIGEN, &m, &err) == MD_ERR_DATA);
    /* eigen: every gt >= 10 -> nothing to evaluate */
    float far[6] = {10, 11, 12, 20, 50, 80};
    md_depth gfar = {3, 2, far, NULL};
    CHECK(md_metrics_compute(&p32, &gfar, MD_PROTOCOL_EIGEN, &m, &err) == MD_ERR_DATA);
    CHECK(md_metrics_compute(&p32, &p32, (md_protocol)5, &m, &err) == MD_ERR_ARG);
    CHECK(md_metrics_compute(NULL, &p32, MD_PROTOCOL_SEED, &m, &err) == MD_ERR_ARG);
    CHECK(md_metrics_compute(&p32, &p32, MD_PROTOCOL_SEED, NULL, NULL) == MD_ERR_ARG);
    md_depth nodata = {3, 2, NULL, NULL};
    CHECK(md_metrics_compute(&nodata, &p32, MD_PROTOCOL_SEED, &m, &err) == MD_ERR_ARG);
    /* a perfect prediction scores exactly 0 error and 1 delta */
    CHECK_OK(md_metrics_compute(&p32, &p32, MD_PROTOCOL_SEED, &m, &err), &err);
    CHECK(m.abs_rel == 0 && m.rmse == 0 && m.silog == 0 && m.delta1 == 1 && m.n_valid == 6);
}

int main(void)
{
    RUN_TEST(test_2x2_by_hand);
    RUN_TEST(test_3x3_boundaries_and_masks);
    RUN_TEST(test_eigen_crop);
    RUN_TEST(test_eigen_scaled);
    RUN_TEST(test_mean);
    RUN_TEST(test_errors_and_parse);
    return check_finish();
}
