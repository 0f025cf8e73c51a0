/* Evaluation figures and report. Expected pixels, projections and table values
 * are worked out by hand in the comments (geometry of a pinhole camera, the
 * documented plot frame, arithmetic means), not taken from the code's output. */
#include "check.h"
#include "report/report.h"
#include "metricdepth.h"
#include "report/figures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* LeakSanitizer (ASan builds): cairo's text API loads fontconfig, whose
 * process-wide pattern caches are never freed; those third-party allocations
 * are not ours to free. Only consulted when LSan is linked in. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

static char g_dir[64];

static void path_in(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", g_dir, name);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

static int rgb_near(const uint8_t *got, const uint8_t *want, int tol)
{
    return abs(got[0] - want[0]) <= tol && abs(got[1] - want[1]) <= tol &&
           abs(got[2] - want[2]) <= tol;
}

static const uint8_t *pixel(const md_image *img, int x, int y)
{
    return img->pixels + 3 * ((size_t)y * (size_t)img->width + (size_t)x);
}

/* ------------------------------------------------------------ projection */

static void test_view_projection(void)
{
    double u, v, z;
    /* the original camera: yaw = pitch = 0, centre (0,0,3), distance 3 puts the
     * virtual camera at the origin. Point (1,0,3), f = 100, 200x100 raster:
     * u = 100 + 100*1/3, v = 50, z = 3. */
    md_view a = {.width = 200, .height = 100, .focal = 100, .center = {0, 0, 3}, .distance = 3};
    double p1[3] = {1, 0, 3};
    CHECK(md_view_project(&a, p1, &u, &v, &z));
    CHECK_NEAR(u, 100 + 100.0 / 3, 1e-9);
    CHECK_NEAR(v, 50, 1e-9);
    CHECK_NEAR(z, 3, 1e-9);
    /* a point behind the camera is rejected */
    double behind[3] = {0, 0, -1};
    CHECK(!md_view_project(&a, behind, &u, &v, &z));

    /* the looked-at point is at the image centre for any yaw/pitch */
    md_view b = a;
    b.yaw_deg = 30;
    b.pitch_deg = 20;
    b.distance = 4.8;
    double c[3] = {0, 0, 3};
    CHECK(md_view_project(&b, c, &u, &v, &z));
    CHECK_NEAR(u, 100, 1e-9);
    CHECK_NEAR(v, 50, 1e-9);
    CHECK_NEAR(z, 4.8, 1e-9);

    /* yaw 90: camera at (0,0,3) - 3*(1,0,0) = (-3,0,3) looking along +x, its
     * right axis is (0,0,-1). Point (0,0,4): relative (3,0,1): x_cam = -1,
     * z_cam = 3: u = 100 - 100/3. */
    md_view y90 = a;
    y90.yaw_deg = 90;
    double p2[3] = {0, 0, 4};
    CHECK(md_view_project(&y90, p2, &u, &v, &z));
    CHECK_NEAR(u, 100 - 100.0 / 3, 1e-9);
    CHECK_NEAR(v, 50, 1e-9);
    CHECK_NEAR(z, 3, 1e-9);

    /* pitch 90 (looking straight down, y is down): camera at (0,-3,3); point
     * (0,0,4): relative (0,3,1): depth 3, the image's down axis is (0,0,-1) so
     * y_cam = -1: v = 50 - 100/3 (farther points appear higher up). */
    md_view p90 = a;
    p90.pitch_deg = 90;
    CHECK(md_view_project(&p90, p2, &u, &v, &z));
    CHECK_NEAR(u, 100, 1e-9);
    CHECK_NEAR(v, 50 - 100.0 / 3, 1e-9);
    CHECK_NEAR(z, 3, 1e-9);
}

static void test_cloud_from_depth(void)
{
    md_error err = {0};
    md_depth d = {0};
    CHECK_OK(md_depth_alloc(&d, 5, 4, &err), &err);
    memset(d.data, 0, 20 * sizeof(float));
    d.data[1 * 5 + 3] = 2.0f; /* pixel (3,1) at 2 m */
    d.data[2 * 5 + 0] = 4.0f; /* pixel (0,2) at 4 m */
    md_intrinsics K = {100, 50, 2, 1};
    for (size_t i = 0; i < 20; i++)
        d.data[i] *= 1.5f; /* the scaled prediction's cloud */
    md_cloud c;
    CHECK_OK(md_pointcloud_from_depth(&d, NULL, &K, 1, 0.0f, &c, &err), &err);
    CHECK(c.n == 2);
    if (c.n == 2) {
        /* (3,1), z = 3: x = (3-2)*3/100 = 0.03, y = 0 */
        CHECK_NEAR(c.xyz[0], 0.03, 1e-6);
        CHECK_NEAR(c.xyz[1], 0.0, 1e-6);
        CHECK_NEAR(c.xyz[2], 3.0, 1e-6);
        /* (0,2), z = 6: x = -2*6/100 = -0.12, y = 1*6/50 = 0.12 */
        CHECK_NEAR(c.xyz[3], -0.12, 1e-6);
        CHECK_NEAR(c.xyz[4], 0.12, 1e-6);
        CHECK_NEAR(c.xyz[5], 6.0, 1e-6);
        double m[3];
        md_cloud_centroid(&c, m);
        CHECK_NEAR(m[0], -0.045, 1e-6);
        CHECK_NEAR(m[2], 4.5, 1e-6);
    }
    md_pointcloud_free(&c);
    md_depth_free(&d);
}

static void test_raster_zbuffer(void)
{
    md_error err = {0};
    static const uint8_t white[3] = {255, 255, 255}, red[3] = {255, 0, 0}, blue[3] = {0, 0, 255};
    /* 9x7 raster, principal point (4.5, 3.5): a point on the optical axis lands
     * in pixel (4, 3). A point at x = 0.5 m, z = 2 m with f = 10 lands at
     * u = 4.5 + 10*0.25 = 7 (pixel 7). */
    md_view v = {.width = 9, .height = 7, .focal = 10, .center = {0, 0, 2}, .distance = 2};
    float near_xyz[3] = {0, 0, 2}, far_xyz[3] = {0, 0, 4}, side_xyz[3] = {0.5f, 0, 2};
    md_cloud near_c = {1, near_xyz, NULL}, far_c = {1, far_xyz, NULL}, side_c = {1, side_xyz, NULL};
    for (int order = 0; order < 2; order++) {
        md_raster r;
        CHECK_OK(md_raster_init(&r, 9, 7, white, &err), &err);
        if (!r.rgb)
            continue;
        if (order == 0) {
            md_raster_splat(&r, &v, &near_c, red, 0);
            md_raster_splat(&r, &v, &far_c, blue, 0);
        } else {
            md_raster_splat(&r, &v, &far_c, blue, 0);
            md_raster_splat(&r, &v, &near_c, red, 0);
        }
        /* the nearer (red) point wins pixel (4,3) in both orders */
        CHECK_MSG(rgb_near(r.rgb + 3 * (3 * 9 + 4), red, 0), "order %d: (%d,%d,%d)", order,
                  r.rgb[3 * (3 * 9 + 4)], r.rgb[3 * (3 * 9 + 4) + 1], r.rgb[3 * (3 * 9 + 4) + 2]);
        CHECK_NEAR(r.z[3 * 9 + 4], 2.0, 1e-6);
        /* radius 0: the neighbours stay white */
        CHECK(rgb_near(r.rgb + 3 * (3 * 9 + 3), white, 0));
        CHECK(rgb_near(r.rgb + 3 * (2 * 9 + 4), white, 0));
        md_raster_splat(&r, &v, &side_c, blue, 1);
        /* radius 1 around pixel (7,3): columns 6..8, rows 2..4 */
        CHECK(rgb_near(r.rgb + 3 * (3 * 9 + 7), blue, 0));
        CHECK(rgb_near(r.rgb + 3 * (2 * 9 + 6), blue, 0));
        CHECK(rgb_near(r.rgb + 3 * (4 * 9 + 8), blue, 0));
        CHECK(rgb_near(r.rgb + 3 * (3 * 9 + 5), white, 0));
        md_raster_free(&r);
    }
}

static void test_cloud_figure(void)
{
    md_error err = {0};
    char path[128];
    path_in(path, sizeof path, "clouds.png");
    /* one GT point at (0,0,2) and one predicted point per panel at the same
     * place: the view looks at the GT centroid, so each panel's centre pixel
     * (80, 60) of its 160x120 area is the panel's colour (ties go to the
     * prediction, drawn last). Panel i's area starts at x = 10 + 170 i, y = 34. */
    float g[3] = {0, 0, 2};
    md_cloud gt = {1, g, NULL};
    md_cloud preds[3] = {{1, g, NULL}, {1, g, NULL}, {1, g, NULL}};
    static const uint8_t cols[3][3] = {{220, 30, 30}, {30, 60, 220}, {30, 160, 50}};
    const char *titles[3] = {"unscaled", "adaptive", "oracle"};
    md_intrinsics K = {500, 500, 320, 240};
    md_view v = md_view_for_cloud(&gt, &K, 640, 160, 120, 30, 20);
    CHECK_NEAR(v.distance, 3.2, 1e-9);
    CHECK_NEAR(v.focal, 125, 1e-9);
    CHECK_OK(md_fig_point_clouds(path, &gt, preds, cols, titles, 3, &v, &err), &err);
    md_image img = {0};
    CHECK_OK(md_image_load(path, &img, &err), &err);
    CHECK(img.width == 3 * 160 + 4 * 10 && img.height == 120 + 34 + 10);
    if (img.pixels && img.width == 520) {
        for (int i = 0; i < 3; i++) {
            const uint8_t *px = pixel(&img, 10 + 170 * i + 80, 34 + 60);
            CHECK_MSG(rgb_near(px, cols[i], 0), "panel %d centre (%d,%d,%d)", i, px[0], px[1],
                      px[2]);
            /* far from the point: background */
            static const uint8_t w[3] = {255, 255, 255};
            CHECK(rgb_near(pixel(&img, 10 + 170 * i + 20, 34 + 100), w, 0));
        }
    }
    md_image_free(&img);
}

static void test_view_framing(void)
{
    /* 101 points on a line at z = 4, x_i = 0.0002 i^2 (0..2 m, denser near 0):
     * the view must put the 1st and 99th percentile of the projection (points
     * i = 1 and i = 99) at 5 % and 95 % of a 200 px wide panel, u = 10 and 190 */
    float xyz[101 * 3];
    for (int i = 0; i <= 100; i++) {
        xyz[3 * i] = (float)(0.0002 * i * i);
        xyz[3 * i + 1] = 0.0f;
        xyz[3 * i + 2] = 4.0f;
    }
    md_cloud c = {101, xyz, NULL};
    md_view v = md_view_for_cloud(&c, NULL, 0, 200, 100, 0, 0);
    double p1[3] = {xyz[3], 0, 4}, p99[3] = {xyz[3 * 99], 0, 4}, u, w, z;
    CHECK(md_view_project(&v, p1, &u, &w, &z));
    CHECK_NEAR(u, 10, 1e-6);
    CHECK_NEAR(w, 50, 1e-6);
    CHECK(md_view_project(&v, p99, &u, &w, &z));
    CHECK_NEAR(u, 190, 1e-6);
    /* the centroid x = 0.0002 * sum(i^2)/101 = 0.0002 * 338350/101 = 0.67, from
     * 1.6 * |(0.67, 0, 4)| away along z */
    CHECK_NEAR(v.center[0], 0.67, 1e-6);
    CHECK_NEAR(v.distance, 1.6 * sqrt(0.67 * 0.67 + 16), 1e-6);
}

/* ----------------------------------------------------------- colour bar */

static void test_colorbar_ends(void)
{
    for (int cm = 0; cm < 2; cm++) {
        cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 300, 80);
        cairo_t *cr = cairo_create(s);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_paint(cr);
        md_fig_draw_colorbar(cr, 10, 5, 256, 12, (md_colormap)cm, 0, 4, "depth (m)");
        cairo_surface_flush(s);
        const unsigned char *data = cairo_image_surface_get_data(s);
        int stride = cairo_image_surface_get_stride(s);
        int xs[3] = {10, 10 + 255, 10 + 85}; /* t = 0, 1, 85/255 */
        float ts[3] = {0.0f, 1.0f, 85.0f / 255.0f};
        for (int k = 0; k < 3; k++) {
            for (int y = 5; y < 17; y += 11) {
                uint32_t px = ((const uint32_t *)(const void *)(data + (size_t)y * stride))[xs[k]];
                uint8_t got[3] = {(uint8_t)(px >> 16), (uint8_t)(px >> 8), (uint8_t)px}, want[3];
                md_colormap_lookup((md_colormap)cm, ts[k], want);
                CHECK_MSG(rgb_near(got, want, 0), "cmap %d t %g y %d: (%d,%d,%d) vs (%d,%d,%d)",
                          cm, (double)ts[k], y, got[0], got[1], got[2], want[0], want[1],
                          want[2]);
            }
        }
        /* just outside the bar: still white */
        uint32_t left = ((const uint32_t *)(const void *)(data + 10 * (size_t)stride))[9];
        uint32_t right = ((const uint32_t *)(const void *)(data + 10 * (size_t)stride))[266];
        CHECK((left & 0xffffff) == 0xffffff && (right & 0xffffff) == 0xffffff);
        cairo_destroy(cr);
        cairo_surface_destroy(s);
    }
}

/* ------------------------------------------------------------ depth panel */

static void test_depth_panel(void)
{
    md_error err = {0};
    int w = 64, h = 48;
    md_image rgb = {w, h, calloc((size_t)w * h * 3, 1)};
    md_depth gt = {0}, un = {0}, ad = {0}, orc = {0};
    CHECK_OK(md_depth_alloc(&gt, w, h, &err), &err);
    CHECK_OK(md_depth_alloc(&un, w, h, &err), &err);
    CHECK_OK(md_depth_alloc(&ad, w, h, &err), &err);
    CHECK_OK(md_depth_alloc(&orc, w, h, &err), &err);
    for (int i = 0; i < w * h; i++) {
        rgb.pixels[3 * i] = 200;
        gt.data[i] = (i % w) < 32 ? 0.0f : 2.0f; /* left half invalid */
        un.data[i] = 1.0f;
        ad.data[i] = 2.2f;
        orc.data[i] = 2.0f;
    }
    md_depth_panel p = {&rgb, &gt, &un, &ad, &orc, 0.5, 0.1, 0.0, 2.2, 2.0, "synthetic"};
    char path[128];
    path_in(path, sizeof path, "panel.png");
    CHECK_OK(md_fig_depth_panel(path, &p, &err), &err);
    md_image img = {0};
    CHECK_OK(md_image_load(path, &img, &err), &err);
    /* six 256x192 tiles, 8 px gaps plus 8 more before the error map:
     * width 6*256 + 8*8 = 1600; tiles at y = 58 */
    CHECK(img.width == 1600);
    if (img.pixels && img.width == 1600) {
        uint8_t want[3];
        static const uint8_t black[3] = {0, 0, 0};
        /* RGB tile at x = 8 */
        static const uint8_t red[3] = {200, 0, 0};
        CHECK(rgb_near(pixel(&img, 8 + 100, 58 + 100), red, 0));
        /* ground truth tile at x = 8 + 264 = 272: left half invalid -> black;
         * right half 2 m on the shared range 0..vmax, vmax = ceil(2*1.15*2)/2
         * = 2.5 m: turbo(0.8) */
        CHECK(rgb_near(pixel(&img, 272 + 10, 58 + 100), black, 0));
        md_colormap_lookup(MD_COLORMAP_TURBO, 0.8f, want);
        CHECK(rgb_near(pixel(&img, 272 + 200, 58 + 100), want, 0));
        /* unscaled tile at x = 536: 1 m everywhere -> turbo(0.4) (valid where gt is not) */
        md_colormap_lookup(MD_COLORMAP_TURBO, 0.4f, want);
        CHECK(rgb_near(pixel(&img, 536 + 10, 58 + 100), want, 0));
        /* error tile at x = 8 + 5*264 + 8 = 1336: |2.2-2|/2 = 0.1 on 0..0.5:
         * inferno(0.2); black where gt is invalid */
        md_colormap_lookup(MD_COLORMAP_INFERNO, 0.2f, want);
        const uint8_t *e = pixel(&img, 1336 + 200, 58 + 100);
        CHECK_MSG(rgb_near(e, want, 1), "(%d,%d,%d) vs (%d,%d,%d)", e[0], e[1], e[2], want[0],
                  want[1], want[2]);
        CHECK(rgb_near(pixel(&img, 1336 + 10, 58 + 100), black, 0));
    }
    md_image_free(&img);
    /* without the adaptive map: five tiles, 5*256 + 7*8 = 1336 */
    p.adaptive = NULL;
    CHECK_OK(md_fig_depth_panel(path, &p, &err), &err);
    CHECK_OK(md_image_load(path, &img, &err), &err);
    CHECK(img.width == 1336);
    md_image_free(&img);
    /* size mismatch is refused */
    md_depth small = {0};
    CHECK_OK(md_depth_alloc(&small, 8, 8, &err), &err);
    p.oracle = &small;
    CHECK(md_fig_depth_panel(path, &p, &err) == MD_ERR_DATA);
    md_depth_free(&small);
    free(rgb.pixels);
    md_depth_free(&gt);
    md_depth_free(&un);
    md_depth_free(&ad);
    md_depth_free(&orc);
}

/* ----------------------------------------------------------------- scatter */

static void test_scatter(void)
{
    md_error err = {0};
    double x[3] = {0, 1, 0.5}, y[3] = {0, 1, 0.25};
    int grp[3] = {0, 0, 0};
    md_scatter_frame f;
    md_scatter_frame_for(x, y, 3, &f);
    /* values span 0..1, padded by 5 %: [-0.05, 1.05] */
    CHECK_NEAR(f.lo, -0.05, 1e-12);
    CHECK_NEAR(f.hi, 1.05, 1e-12);
    /* plot area x 80..610 (640 - 30), y 50..530 (600 - 70): (0.5, 0.25) ->
     * x = 80 + 0.55/1.1*530 = 345, y = 530 - 0.30/1.1*480 = 399.09 */
    double px, py;
    md_scatter_to_pixel(&f, 0.5, 0.25, &px, &py);
    CHECK_NEAR(px, 345, 1e-9);
    CHECK_NEAR(py, 530 - 0.30 / 1.1 * 480, 1e-9);
    char path[128];
    path_in(path, sizeof path, "scatter.png");
    CHECK_OK(md_fig_scatter(path, x, y, grp, 3, NULL, &err), &err);
    md_image img = {0};
    CHECK_OK(md_image_load(path, &img, &err), &err);
    CHECK(img.width == 640 && img.height == 600);
    if (img.pixels && img.width == 640) {
        /* the train colour (0.12, 0.47, 0.71) at the dot's centre pixel (345, 399) */
        static const uint8_t blue[3] = {31, 120, 181};
        const uint8_t *c = pixel(&img, 345, 399);
        CHECK_MSG(rgb_near(c, blue, 1), "(%d,%d,%d)", c[0], c[1], c[2]);
        /* 10 px right of it: not the dot */
        CHECK(!rgb_near(pixel(&img, 355, 399), blue, 20));
    }
    md_image_free(&img);
    /* a one-point scatter has span 0: the frame is padded by 0.1 */
    md_scatter_frame_for(x, x, 1, &f);
    CHECK_NEAR(f.lo, -0.1, 1e-12);
    CHECK_NEAR(f.hi, 0.1, 1e-12);
}

/* Line plot: frame x 80..600, y 50..450 of 900x520; log x over [1, 100] with
 * 6 % of the log span added each side, y over [0, 1] with 6 % of the span:
 * the marker at (100, 1) is at x = 80 + (ln 100 + m) / (ln 100 + 2m) * 520,
 * m = 0.06 ln 100, y = 450 - 1.06 / 1.12 * 400. */
static void test_plot_lines(void)
{
    md_error err = {0};
    double x[2] = {1, 100}, y[2] = {0, 1}, e[2] = {0, 0}, r[2] = {0.25, 0.25};
    md_plot_series s[2] = {{"fit", x, y, e, 2, 0}, {"reference", x, r, NULL, 2, 1}};
    char path[128];
    path_in(path, sizeof path, "lines.png");
    CHECK_OK(md_plot_lines(path, "t", "K", "AbsRel", 1, NAN, s, 2, &err), &err);
    md_image img = {0};
    CHECK_OK(md_image_load(path, &img, &err), &err);
    CHECK(img.width == 900 && img.height == 520);
    if (img.pixels && img.width == 900) {
        double m = 0.06 * log(100.0);
        int px = (int)(80 + (log(100.0) + m) / (log(100.0) + 2 * m) * 520);
        int py = (int)(450 - 1.06 / 1.12 * 400);
        static const uint8_t blue[3] = {0, 114, 178}; /* the palette's first colour */
        const uint8_t *c = pixel(&img, px, py);
        CHECK_MSG(rgb_near(c, blue, 2), "(%d,%d,%d) at (%d,%d)", c[0], c[1], c[2], px, py);
        CHECK(!rgb_near(pixel(&img, px - 40, py), blue, 20));
    }
    md_image_free(&img);
    /* a y_max inside the data cuts the axis and still draws; no finite
     * point or no path is an error */
    CHECK_OK(md_plot_lines(path, NULL, NULL, NULL, 0, 0.5, s, 2, &err), &err);
    double nan2[2] = {NAN, NAN};
    md_plot_series bad = {"nothing", x, nan2, NULL, 2, 0};
    CHECK(md_plot_lines(path, NULL, NULL, NULL, 1, NAN, &bad, 1, &err) == MD_ERR_DATA);
    CHECK(md_plot_lines(NULL, NULL, NULL, NULL, 1, NAN, s, 2, &err) == MD_ERR_ARG);
    unlink(path);
}

/* ------------------------------------------------------------------ report */

static md_metrics metrics_with(double abs_rel, double rmse, double d1)
{
    md_metrics m = {0};
    m.abs_rel = abs_rel;
    m.rmse = rmse;
    m.delta1 = d1;
    m.n_valid = 100;
    return m;
}

static void fill_set(md_eval_set *s)
{
    md_error err = {0};
    /* train: unscaled AbsRel 0.3/0.2/0.1 (mean 0.2), oracle 0.1 each, adaptive
     * 0.2/0.15/0.1 (mean 0.15): gap closed (0.2-0.15)/(0.2-0.1) = 0.5. Gated
     * 0.25/0.15/0.1 (mean 1/6): gap closed (0.2-1/6)/0.1 = 1/3; gate weights
     * 0.5, 1, 0: mean 0.5, applied to 2 of 3.
     * ln s* = 0.1, 0.2, 0.3; predicted 0.0, 0.4, 0.3: errors -0.1, 0.2, 0:
     * MAE 0.1, RMSE sqrt(0.05/3) = 0.1290994. Median s* = e^0.2 = 1.2214028.
     * Constant-scale baseline: AbsRel 0.25/0.2/0.09 (mean 0.18): gap closed
     * (0.2-0.18)/(0.2-0.1) = 0.2. Test: (0.4-0.3)/(0.4-0.2) = 0.5. The test
     * image's s* = 2 sits on the range limit. */
    double ab_u[3] = {0.3, 0.2, 0.1}, ab_a[3] = {0.2, 0.15, 0.1}, ls[3] = {0.1, 0.2, 0.3},
           pl[3] = {0.0, 0.4, 0.3}, ab_c[3] = {0.25, 0.2, 0.09}, ab_g[3] = {0.25, 0.15, 0.1},
           w[3] = {0.5, 1, 0};
    const char *names[3] = {"a.png", "b,with comma.png", "c.png"};
    for (int i = 0; i < 3; i++) {
        md_eval_item it = {.rgb = (char *)names[i],
                           .depth = "d.png",
                           .split = MD_SPLIT_TRAIN,
                           .oracle_scale = exp(ls[i]),
                           .unscaled = metrics_with(ab_u[i], 1.0, 0.5),
                           .oracle = metrics_with(0.1, 0.5, 0.9),
                           .has_adaptive = 1,
                           .estimate = {.log_scale = pl[i], .log_scale_sd = 0.1,
                                        .distance = 1.5, .weight = w[i]},
                           .adaptive = metrics_with(ab_a[i], 0.7, 0.8),
                           .gated = metrics_with(ab_g[i], 0.8, 0.7),
                           .has_constant = 1,
                           .constant = metrics_with(ab_c[i], 0.9, 0.6)};
        CHECK_OK(md_eval_set_append(s, &it, &err), &err);
    }
    /* test: one image without the adaptive columns */
    md_eval_item t = {.rgb = "t.png",
                      .depth = "td.png",
                      .split = MD_SPLIT_TEST,
                      .oracle_scale = 2.0,
                      .oracle_at_limit = 1,
                      .unscaled = metrics_with(0.4, 2, 0.3),
                      .oracle = metrics_with(0.2, 1, 0.6),
                      .has_constant = 1,
                      .constant = metrics_with(0.3, 1.5, 0.4)};
    CHECK_OK(md_eval_set_append(s, &t, &err), &err);
    s->constant_scale = 1.25;
}

static void test_summary(void)
{
    md_error err = {0};
    md_eval_set s = {0};
    fill_set(&s);
    md_eval_summary tr, te;
    CHECK_OK(md_eval_summarize(&s, MD_SPLIT_TRAIN, &tr, &err), &err);
    CHECK(tr.n == 3 && tr.has_adaptive);
    CHECK_NEAR(tr.unscaled.abs_rel, 0.2, 1e-12);
    CHECK_NEAR(tr.oracle.abs_rel, 0.1, 1e-12);
    CHECK_NEAR(tr.adaptive.abs_rel, 0.15, 1e-12);
    CHECK_NEAR(tr.gap_closed, 0.5, 1e-9);
    CHECK_NEAR(tr.gated.abs_rel, 0.5 / 3, 1e-12);
    CHECK_NEAR(tr.gap_closed_gated, 1.0 / 3, 1e-9);
    CHECK_NEAR(tr.mean_weight, 0.5, 1e-12);
    CHECK(tr.n_applied == 2 && tr.at_limit == 0);
    CHECK_NEAR(tr.log_mae, 0.1, 1e-12);
    CHECK_NEAR(tr.log_rmse, 0.1290994449, 1e-9);
    CHECK_NEAR(tr.scale_median, 1.2214027582, 1e-9);
    CHECK(tr.has_constant);
    CHECK_NEAR(tr.constant.abs_rel, 0.18, 1e-12);
    CHECK_NEAR(tr.gap_closed_constant, 0.2, 1e-9);
    CHECK_OK(md_eval_summarize(&s, MD_SPLIT_TEST, &te, &err), &err);
    CHECK(te.n == 1 && !te.has_adaptive && te.at_limit == 1);
    CHECK(isnan(te.gap_closed) && isnan(te.log_mae));
    CHECK_NEAR(te.unscaled.abs_rel, 0.4, 1e-12);
    CHECK_NEAR(te.scale_median, 2.0, 1e-12);
    CHECK(te.has_constant);
    CHECK_NEAR(te.gap_closed_constant, 0.5, 1e-9);
    md_eval_set_free(&s);
}

static void test_writers(void)
{
    md_error err = {0};
    md_eval_set s = {0};
    fill_set(&s);
    md_eval_summary sums[2];
    CHECK_OK(md_eval_summarize(&s, MD_SPLIT_TRAIN, &sums[0], &err), &err);
    CHECK_OK(md_eval_summarize(&s, MD_SPLIT_TEST, &sums[1], &err), &err);
    char path[128];
    path_in(path, sizeof path, "per_image.csv");
    CHECK_OK(md_eval_write_csv(path, &s, &err), &err);
    char *csv = slurp(path);
    CHECK(csv != NULL);
    if (csv) {
        /* one item lacks the adaptive columns: 6 + 3*9 columns (constant kept) */
        static const char head[] = "split,rgb,depth,oracle_scale,oracle_log_scale,"
                                   "oracle_at_limit,abs_rel_unscaled,sq_rel_unscaled,";
        CHECK(strncmp(csv, head, sizeof head - 1) == 0);
        CHECK(strstr(csv, "abs_rel_adaptive") == NULL);
        CHECK(strstr(csv, "abs_rel_constant") != NULL);
        CHECK(strstr(csv, "\ntrain,a.png,d.png,1.10517092,0.1,0,0.3,") != NULL);
        CHECK(strstr(csv, "\ntrain,\"b,with comma.png\",d.png,") != NULL);
        CHECK(strstr(csv, "\ntest,t.png,td.png,2,0.693147181,1,0.4,") != NULL);
        free(csv);
    }
    md_report_figure figs[1] = {{"fig/panel 1.png", "depth <panel>"}};
    md_report_info info = {.title = "Eval",
                           .train_data = "SUN3D fragment 1",
                           .test_data = "SUN3D fragment 2",
                           .base_model = "fastdepth_7.onnx",
                           .scale_model = "scale.safetensors",
                           .protocol = "seed",
                           .figures = figs,
                           .n_figures = 1,
                           .constant_scale = 1.25,
                           .lo = 0.1,
                           .hi = 2};
    path_in(path, sizeof path, "report.md");
    CHECK_OK(md_eval_write_markdown(path, &info, sums, &err), &err);
    char *md = slurp(path);
    CHECK(md != NULL);
    if (md) {
        CHECK(strstr(md, "Table 1") != NULL);
        CHECK(strstr(md, "| Training set | 3 | 0.1000 | 0.1291 |") != NULL);
        CHECK(strstr(md, "| unscaled | 0.2000 | 1.0000 | 50.00 |") != NULL);
        CHECK(strstr(md, "| adaptive scale | 0.1500 | 0.7000 | 80.00 |") != NULL);
        CHECK(strstr(md, "| gated adaptive scale | 0.1667 | 0.8000 | 70.00 |") != NULL);
        CHECK(strstr(md, "adaptive train 50.0 %") != NULL);
        CHECK(strstr(md, "gated adaptive (what predict applies by default") != NULL);
        CHECK(strstr(md, "train 33.3 %, test n/a %") != NULL);
        CHECK(strstr(md, "applied a scale to 2 of 3 training") != NULL);
        CHECK(strstr(md, "range limit for 0 training and 1 test images") != NULL);
        CHECK(strstr(md, "](fig/panel%201.png)") != NULL);
        CHECK(strstr(md, "fastdepth\\_7.onnx") != NULL);
        CHECK(strstr(md, "| constant scale 1.250 | 0.1800 | 0.9000 | 60.00 |") != NULL);
        CHECK(strstr(md, "20.0 % of the AbsRel gap on the training set and 50.0 %") != NULL);
        free(md);
    }
    path_in(path, sizeof path, "index.html");
    CHECK_OK(md_eval_write_html(path, &info, sums, &err), &err);
    char *html = slurp(path);
    CHECK(html != NULL);
    if (html) {
        CHECK(strstr(html, "<img src=\"fig/panel%201.png\" alt=\"depth &lt;panel&gt;\">") != NULL);
        CHECK(strstr(html, "<td>0.1000</td><td>0.1291</td>") != NULL);
        CHECK(strstr(html, "</html>") != NULL);
        free(html);
    }
    /* without a scale model: no Table 1, no adaptive rows, and it says so */
    info.scale_model = NULL;
    path_in(path, sizeof path, "report.md");
    CHECK_OK(md_eval_write_markdown(path, &info, sums, &err), &err);
    md = slurp(path);
    if (md) {
        CHECK(strstr(md, "Table 1") == NULL);
        CHECK(strstr(md, "adaptive scale |") == NULL);
        CHECK(strstr(md, "adaptive columns are omitted") != NULL);
        free(md);
    }
    /* summary.json: the numbers, a null for an undefined gap */
    path_in(path, sizeof path, "summary.json");
    CHECK_OK(md_eval_write_json(path, &info, sums, &err), &err);
    char *js = slurp(path);
    CHECK(js != NULL);
    if (js) {
        CHECK(strstr(js, "\"gap_closed_gated\":\t0.33333") != NULL);
        CHECK(strstr(js, "\"oracle_at_range_limit\":\t1") != NULL);
        CHECK(strstr(js, "\"constant_scale\":\t1.25") != NULL);
        free(js);
    }
    md_eval_set_free(&s);
}

static void test_loss_log(void)
{
    md_error err = {0};
    char path[128];
    path_in(path, sizeof path, "model.log.csv");
    FILE *f = fopen(path, "w");
    fputs("epoch,train_loss,val_loss\n1,0.5,\n2,0.25,0.3\n3,0.125,\n", f);
    fclose(f);
    double *tr = NULL, *va = NULL;
    int n = 0;
    CHECK_OK(md_eval_read_loss_log(path, &tr, &va, &n, &err), &err);
    CHECK(n == 3);
    if (n == 3) {
        CHECK_NEAR(tr[0], 0.5, 0);
        CHECK_NEAR(tr[2], 0.125, 0);
        CHECK(isnan(va[0]) && isnan(va[2]));
        CHECK_NEAR(va[1], 0.3, 0);
    }
    free(tr);
    free(va);
    /* an epoch out of order is a format error naming the line */
    f = fopen(path, "w");
    fputs("epoch,train_loss,val_loss\n1,0.5,\n3,0.25,\n", f);
    fclose(f);
    CHECK(md_eval_read_loss_log(path, &tr, &va, &n, &err) == MD_ERR_FORMAT);
    CHECK(strstr(err.message, ":3:") != NULL);
    unlink(path);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/md_test_report_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN_TEST(test_view_projection);
    RUN_TEST(test_cloud_from_depth);
    RUN_TEST(test_raster_zbuffer);
    RUN_TEST(test_cloud_figure);
    RUN_TEST(test_view_framing);
    RUN_TEST(test_colorbar_ends);
    RUN_TEST(test_depth_panel);
    RUN_TEST(test_scatter);
    RUN_TEST(test_plot_lines);
    RUN_TEST(test_summary);
    RUN_TEST(test_writers);
    RUN_TEST(test_loss_log);
    const char *names[] = {"clouds.png", "panel.png", "scatter.png", "per_image.csv",
                           "report.md", "index.html", "summary.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[128];
        path_in(p, sizeof p, names[i]);
        unlink(p);
    }
    rmdir(g_dir);
    return check_finish();
}
