/* Pixel-wise scale maps: the anchor map on hand-made fields (two surfaces at
 * different depths with different scales, a field confined to one corner,
 * a constant field, too few anchors) and the per-cell oracle against the
 * oracle solver run on each cell's pixels gathered here. */
#include "check.h"
#include "base/base.h"
#include "eval/anchor_eval.h"

#include <stdint.h>
#include <string.h>

static uint64_t rng_state = 0x452821E638D01377ull;

static double urand(void)
{
    return (double)(md_splitmix64(&rng_state) >> 11) * (1.0 / 9007199254740992.0);
}

/* Runs the anchors source with a scale map on a copy of base. */
static md_status map_of(const md_depth *base, md_anchor_set *set, md_scale_record *rec,
                        md_error *err)
{
    md_depth d = {0};
    md_status st = md_depth_alloc(&d, base->width, base->height, err);
    if (st != MD_OK)
        return st;
    memcpy(d.data, base->data, (size_t)base->width * base->height * sizeof *d.data);
    md_scale_options so = md_scale_options_default();
    so.source = MD_SCALE_SOURCE_ANCHORS;
    so.anchors = set;
    so.scale_map = 1;
    st = md_scale_depth(NULL, NULL, &d, &so, rec, err);
    if (st == MD_OK && rec->log_scale_map) {
        /* the map is what was applied */
        size_t n = (size_t)base->width * base->height, bad = 0;
        for (size_t i = 0; i < n; i++)
            if (base->data[i] > 0 &&
                fabs(d.data[i] - base->data[i] * exp(rec->log_scale_map[i])) >
                    1e-5 * d.data[i])
                bad++;
        CHECK(bad == 0);
    }
    md_depth_free(&d);
    return st;
}

/* Two surfaces: a near one (left, 1 m) with ln s = ln 2 - 0.2 and a far one
 * (right, 3 m) with ln s = ln 2 + 0.2, the edge between them sharp in depth.
 * The map recovers each side, right up to the edge. */
static void test_two_surfaces(void)
{
    md_error err = {0};
    const int W = 96, H = 64;
    md_depth base = {0};
    CHECK_OK(md_depth_alloc(&base, W, H, &err), &err);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            base.data[y * W + x] = x < W / 2 ? 1.0f + 0.002f * (float)y : 3.0f;
    const double lo = log(2.0) - 0.2, hi = log(2.0) + 0.2;
    md_anchor a[120];
    for (int i = 0; i < 120; i++) {
        int x = (int)(urand() * W), y = (int)(urand() * H);
        double f = x < W / 2 ? lo : hi;
        a[i] = (md_anchor){(float)x + 0.5f, (float)y + 0.5f,
                           (float)(base.data[y * W + x] * exp(f + 0.01 * (urand() - 0.5))), 1};
    }
    md_anchor_set set = {a, 120};
    md_scale_record rec;
    CHECK_OK(map_of(&base, &set, &rec, &err), &err);
    CHECK(rec.log_scale_map != NULL && rec.map_width == W && rec.map_height == H);
    if (rec.log_scale_map) {
        double worst_far = 0, worst_edge = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double want = x < W / 2 ? lo : hi;
                double e = fabs(rec.log_scale_map[y * W + x] - want);
                if (x >= W / 2 - 2 && x <= W / 2 + 1)
                    worst_edge = fmax(worst_edge, e);
                else
                    worst_far = fmax(worst_far, e);
            }
        if (getenv("MD_DEBUG_MAP"))
            for (int x = 0; x < W; x += 4)
                fprintf(stderr, "x %d: %.3f %.3f %.3f\n", x, rec.log_scale_map[x],
                        rec.log_scale_map[32 * W + x], rec.log_scale_map[63 * W + x]);
        /* The global scale (the median: one surface's) is off by 0.4 on the
         * other surface, a smoothing that ignored depth by about 0.2 at the
         * edge. The field is a posterior mean around the global scale, so it
         * keeps a little shrinkage towards it where anchors are sparse (the
         * image corners): a few hundredths. */
        CHECK_MSG(worst_far < 0.06, "worst error away from the edge %g", worst_far);
        CHECK_MSG(worst_edge < 0.07, "worst error at the depth edge %g", worst_edge);
    }
    md_scale_record_free(&rec);
    CHECK(rec.log_scale_map == NULL);
    md_depth_free(&base);
}

/* A field confined to the left end of a long image: the right end, many
 * length scales away from any anchor, falls back to the global scale. */
static void test_fallback_far_from_anchors(void)
{
    md_error err = {0};
    const int W = 1024, H = 32;
    md_depth base = {0};
    CHECK_OK(md_depth_alloc(&base, W, H, &err), &err);
    for (int i = 0; i < W * H; i++)
        base.data[i] = 2.0f;
    md_anchor a[60];
    for (int i = 0; i < 60; i++) {
        int x = (int)(urand() * 48), y = (int)(urand() * H);
        double f = 0.3 * sin((double)x / 6.0) * (y < H / 2 ? 1 : -1);
        a[i] = (md_anchor){(float)x + 0.5f, (float)y + 0.5f, (float)(2.0 * 1.5 * exp(f)), 1};
    }
    md_anchor_set set = {a, 60};
    md_scale_record rec;
    CHECK_OK(map_of(&base, &set, &rec, &err), &err);
    CHECK(rec.log_scale_map != NULL);
    if (rec.log_scale_map) {
        double g = log(rec.scale), worst = 0;
        for (int y = 0; y < H; y++)
            for (int x = 900; x < W; x++)
                worst = fmax(worst, fabs(rec.log_scale_map[y * W + x] - g));
        CHECK_MSG(worst < 1e-3, "far from the anchors the map is %g from the global ln s", worst);
    }
    md_scale_record_free(&rec);
    md_depth_free(&base);
}

/* Anchors that all agree (a constant field, tiny noise), and too few
 * anchors: the map is the global scale. */
static void test_constant_and_few(void)
{
    md_error err = {0};
    const int W = 40, H = 30;
    md_depth base = {0};
    CHECK_OK(md_depth_alloc(&base, W, H, &err), &err);
    for (int i = 0; i < W * H; i++)
        base.data[i] = 1.0f + (float)(i % 17) * 0.1f;
    md_anchor a[50];
    for (int i = 0; i < 50; i++) {
        int x = (int)(urand() * W), y = (int)(urand() * H);
        a[i] = (md_anchor){(float)x, (float)y,
                           (float)(base.data[y * W + x] * 1.7 * (1 + 1e-4 * (urand() - 0.5))), 1};
    }
    md_anchor_set set = {a, 50};
    md_scale_record rec;
    CHECK_OK(map_of(&base, &set, &rec, &err), &err);
    if (rec.log_scale_map) {
        double worst = 0;
        for (int i = 0; i < W * H; i++)
            worst = fmax(worst, fabs(rec.log_scale_map[i] - log(1.7)));
        CHECK_MSG(worst < 2e-4, "constant field: worst %g", worst);
    }
    md_scale_record_free(&rec);
    set.count = 7; /* below the minimum: exactly the global scale */
    for (int i = 0; i < 7; i++)
        a[i].depth *= (float)(1.0 + 0.3 * (i % 2));
    CHECK_OK(map_of(&base, &set, &rec, &err), &err);
    if (rec.log_scale_map) {
        int same = 1;
        for (int i = 0; i < W * H; i++)
            same &= rec.log_scale_map[i] == (float)log(rec.scale);
        CHECK(same);
    }
    md_scale_record_free(&rec);
    md_depth_free(&base);
}

/* The per-cell oracle: each cell's md_scale_fit over its own pixels. */
static void test_cell_oracle(void)
{
    md_error err = {0};
    const int W = 10, H = 7, CX = 3, CY = 2;
    md_depth pred = {0}, gt = {0};
    CHECK_OK(md_depth_alloc(&pred, W, H, &err), &err);
    CHECK_OK(md_depth_alloc(&gt, W, H, &err), &err);
    /* cell (cx, cy) covers columns [cx W / CX, (cx+1) W / CX): 0-3, 4-6, 7-9;
     * rows 0-3 and 4-6 (7 / 2 = 3.5) */
    const int col_cell[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2}, row_cell[7] = {0, 0, 0, 0, 1, 1, 1};
    const double c[6] = {1.5, 0.5, 2.0, 1.0, 0.8, 0};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int k = row_cell[y] * CX + col_cell[x], i = y * W + x;
            pred.data[i] = (float)(1.0 + urand());
            gt.data[i] = k == 5 ? 0.0f : (float)(c[k] * pred.data[i] * (1 + 0.2 * (urand() - 0.5)));
        }
    double ls[6];
    CHECK_OK(md_scale_cell_oracle(&pred, &gt, CX, CY, MD_SCALE_W1, 0.1, 2.0, 0, ls, &err), &err);
    for (int k = 0; k < 6; k++) {
        float p[70], g[70];
        size_t n = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (row_cell[y] * CX + col_cell[x] == k && gt.data[y * W + x] > 0) {
                    p[n] = pred.data[y * W + x];
                    g[n++] = gt.data[y * W + x];
                }
        if (k == 5) {
            CHECK(isnan(ls[k]) && n == 0);
            continue;
        }
        double s;
        CHECK_OK(md_scale_fit(p, g, n, MD_SCALE_W1, 0.1, 2.0, &s, &err), &err);
        CHECK_NEAR(ls[k], log(s), 1e-12);
    }
    /* min_pixels: cell 1 has 3 x 4 = 12 pixels */
    CHECK_OK(md_scale_cell_oracle(&pred, &gt, CX, CY, MD_SCALE_W1, 0.1, 2.0, 13, ls, &err), &err);
    CHECK(isnan(ls[1]) && isfinite(ls[0]));
    /* applying: every pixel times exp of its cell's value, NaN cells the fallback */
    md_depth d = {0};
    CHECK_OK(md_depth_alloc(&d, W, H, &err), &err);
    memcpy(d.data, pred.data, sizeof(float) * W * H);
    CHECK_OK(md_depth_apply_cell_scales(&d, CX, CY, ls, log(3.0), &err), &err);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int k = row_cell[y] * CX + col_cell[x];
            double want = pred.data[y * W + x] * (isnan(ls[k]) ? 3.0 : exp(ls[k]));
            CHECK_NEAR(d.data[y * W + x], want, 1e-5 * want);
        }
    CHECK(md_scale_cell_oracle(&pred, &gt, 11, 1, MD_SCALE_W1, 0.1, 2, 0, ls, &err) == MD_ERR_ARG);
    CHECK(md_depth_apply_cell_scales(&d, 0, 1, ls, 0, &err) == MD_ERR_ARG);
    md_depth_free(&d);
    md_depth_free(&pred);
    md_depth_free(&gt);
}

int main(void)
{
    RUN_TEST(test_two_surfaces);
    RUN_TEST(test_fallback_far_from_anchors);
    RUN_TEST(test_constant_and_few);
    RUN_TEST(test_cell_oracle);
    return check_finish();
}
