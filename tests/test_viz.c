/* Colormaps and depth previews. Expected colours are the published values of
 * the colormaps (Google's Turbo LUT, matplotlib's inferno), typed here from
 * their tables as 8-bit sRGB, not taken from the code under test. */
#include "check.h"
#include "metricdepth.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int near_rgb(const uint8_t got[3], int r, int g, int b, int tol)
{
    return abs(got[0] - r) <= tol && abs(got[1] - g) <= tol && abs(got[2] - b) <= tol;
}

#define CHECK_RGB(cmap, t, r, g, b, tol)                                                    \
    do {                                                                                    \
        uint8_t c_[3];                                                                      \
        md_colormap_lookup(cmap, t, c_);                                                    \
        CHECK_MSG(near_rgb(c_, r, g, b, tol), "%s(%g) = (%d,%d,%d), expected (%d,%d,%d)",   \
                  #cmap, (double)(t), c_[0], c_[1], c_[2], r, g, b);                        \
    } while (0)

static void test_turbo_published_values(void)
{
    CHECK_RGB(MD_COLORMAP_TURBO, 0.0f, 48, 18, 59, 2);
    CHECK_RGB(MD_COLORMAP_TURBO, 1.0f, 122, 4, 3, 2);
    /* entry 128 of 255 (t = 128/255): 0.64362, 0.98999, 0.23356 */
    CHECK_RGB(MD_COLORMAP_TURBO, 128.0f / 255.0f, 164, 252, 60, 2);
    /* entry 64: 0.15844, 0.73551, 0.92305 (cyan-blue) */
    CHECK_RGB(MD_COLORMAP_TURBO, 64.0f / 255.0f, 40, 188, 235, 2);
    /* entry 192: 0.98360, 0.49291, 0.12849 (orange) */
    CHECK_RGB(MD_COLORMAP_TURBO, 192.0f / 255.0f, 251, 126, 33, 2);
    /* out of range and NaN clamp to the ends */
    CHECK_RGB(MD_COLORMAP_TURBO, -3.0f, 48, 18, 59, 2);
    CHECK_RGB(MD_COLORMAP_TURBO, 7.0f, 122, 4, 3, 2);
    CHECK_RGB(MD_COLORMAP_TURBO, NAN, 48, 18, 59, 2);
}

static void test_inferno_published_values(void)
{
    CHECK_RGB(MD_COLORMAP_INFERNO, 0.0f, 0, 0, 4, 2);
    CHECK_RGB(MD_COLORMAP_INFERNO, 1.0f, 252, 255, 164, 2);
    /* entry 128: 0.735683, 0.215906, 0.330245 */
    CHECK_RGB(MD_COLORMAP_INFERNO, 128.0f / 255.0f, 188, 55, 84, 2);
    /* entry 64: 0.341500, 0.062325, 0.429425 */
    CHECK_RGB(MD_COLORMAP_INFERNO, 64.0f / 255.0f, 87, 16, 110, 2);
}

static double luminance(const uint8_t c[3])
{
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}

static void test_inferno_monotone_luminance(void)
{
    uint8_t prev[3], cur[3];
    md_colormap_lookup(MD_COLORMAP_INFERNO, 0.0f, prev);
    int violations = 0;
    for (int i = 1; i <= 1000; i++) {
        md_colormap_lookup(MD_COLORMAP_INFERNO, (float)i / 1000.0f, cur);
        /* 8-bit rounding can wobble by a fraction of a level; never more. */
        if (luminance(cur) + 0.75 < luminance(prev))
            violations++;
        memcpy(prev, cur, 3);
    }
    CHECK(violations == 0);
    uint8_t lo[3], hi[3];
    md_colormap_lookup(MD_COLORMAP_INFERNO, 0.25f, lo);
    md_colormap_lookup(MD_COLORMAP_INFERNO, 0.75f, hi);
    CHECK(luminance(hi) > luminance(lo) + 50);
}

static void test_turbo_is_continuous(void)
{
    uint8_t a[3], b[3];
    int max_step = 0;
    md_colormap_lookup(MD_COLORMAP_TURBO, 0.0f, a);
    for (int i = 1; i <= 2000; i++) {
        md_colormap_lookup(MD_COLORMAP_TURBO, (float)i / 2000.0f, b);
        for (int c = 0; c < 3; c++)
            if (abs(a[c] - b[c]) > max_step)
                max_step = abs(a[c] - b[c]);
        memcpy(a, b, 3);
    }
    CHECK_MSG(max_step <= 3, "largest step between neighbours %d", max_step);
}

static char *temp_path(const char *suffix)
{
    char dir[] = "/tmp/md_test_viz_XXXXXX";
    if (!mkdtemp(dir))
        return NULL;
    size_t n = strlen(dir) + strlen(suffix) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, suffix);
    return p;
}

static void remove_temp(char *path)
{
    unlink(path);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    rmdir(path);
    free(path);
}

/* 4x3 depth: a ramp with one zero, one NaN and one masked pixel. */
static void test_preview_written(void)
{
    md_error err = {0};
    md_depth d = {0};
    d.width = 4;
    d.height = 3;
    float values[12] = {1, 2, 3, 4, 0, 5, 6, 7, NAN, 8, 9, 10};
    uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    d.data = values;
    d.mask = mask;
    char *path = temp_path("preview.png");
    CHECK(path != NULL);
    if (!path)
        return;
    /* Explicit range 1..9: pixel value 1 -> t = 0 (near = low end), 9 -> t = 1. */
    CHECK_OK(md_depth_save_preview(path, &d, MD_COLORMAP_INFERNO, 1.0f, 9.0f, &err), &err);
    md_image img = {0};
    md_status st = md_image_load(path, &img, &err);
    CHECK_OK(st, &err);
    if (st == MD_OK) {
        CHECK(img.width == 4 && img.height == 3);
        const uint8_t *px = img.pixels;
        CHECK(near_rgb(px + 3 * 4, 0, 0, 0, 0));  /* zero depth: black */
        CHECK(near_rgb(px + 3 * 8, 0, 0, 0, 0));  /* NaN: black */
        CHECK(near_rgb(px + 3 * 11, 0, 0, 0, 0)); /* masked: black */
        CHECK(near_rgb(px + 3 * 0, 0, 0, 4, 2));  /* 1 m = vmin: inferno(0) */
        CHECK(near_rgb(px + 3 * 10, 252, 255, 164, 2)); /* 9 m = vmax: inferno(1) */
        /* 8 m (t = 0.875) is brighter than 5 m (t = 0.5): near = dark end */
        CHECK(luminance(px + 3 * 9) > luminance(px + 3 * 5) + 50);
        /* 5 m: t = 0.5, inferno entry 127.5: ~(187, 55, 85) */
        CHECK(near_rgb(px + 3 * 5, 187, 55, 85, 3));
        md_image_free(&img);
    }

    /* Automatic range: 2nd..98th percentile of the 9 valid values 1..7,9 and 8
     * (sorted 1,2,3,4,5,6,7,8,9): p2 = 1 + 0.02*8 = 1.16, p98 = 8.84. */
    CHECK_OK(md_depth_save_preview(path, &d, MD_COLORMAP_TURBO, 0.0f, 0.0f, &err), &err);
    st = md_image_load(path, &img, &err);
    CHECK_OK(st, &err);
    if (st == MD_OK) {
        const uint8_t *px = img.pixels;
        CHECK(near_rgb(px + 3 * 4, 0, 0, 0, 0));
        CHECK(near_rgb(px + 3 * 0, 48, 18, 59, 2));  /* below p2: clamped to turbo(0) */
        CHECK(near_rgb(px + 3 * 10, 122, 4, 3, 2));  /* above p98: turbo(1) */
        /* 5 m: t = (5 - 1.16) / 7.68 = 0.5 -> turbo entry 127.5 ~ (163, 252, 60) */
        CHECK(near_rgb(px + 3 * 5, 163, 252, 60, 3));
        md_image_free(&img);
    }
    remove_temp(path);
}

/* Automatic range on a scrambled 1..1001 (a permutation: 37 is coprime to
 * 1001): numpy's p2 = 1 + 0.02 * 1000 = 21 and p98 = 981 exactly, so 501 m
 * sits at t = 0.5 and everything at or below 21 m at turbo(0). */
static void test_preview_percentiles_large(void)
{
    md_error err = {0};
    enum { N = 1001 };
    float v[N];
    size_t at501 = 0, at21 = 0, at5 = 0, at990 = 0;
    for (size_t i = 0; i < N; i++) {
        v[i] = (float)(1 + (i * 37) % N);
        at501 = v[i] == 501.0f ? i : at501;
        at21 = v[i] == 21.0f ? i : at21;
        at5 = v[i] == 5.0f ? i : at5;
        at990 = v[i] == 990.0f ? i : at990;
    }
    md_depth d = {N, 1, v, NULL};
    char *path = temp_path("perc.png");
    if (!path)
        return;
    CHECK_OK(md_depth_save_preview(path, &d, MD_COLORMAP_TURBO, 0, 0, &err), &err);
    md_image img = {0};
    if (md_image_load(path, &img, &err) == MD_OK) {
        CHECK(near_rgb(img.pixels + 3 * at501, 163, 252, 60, 3)); /* turbo(0.5) */
        CHECK(near_rgb(img.pixels + 3 * at21, 48, 18, 59, 2));    /* p2 -> turbo(0) */
        CHECK(near_rgb(img.pixels + 3 * at5, 48, 18, 59, 2));     /* below p2 */
        CHECK(near_rgb(img.pixels + 3 * at990, 122, 4, 3, 2));    /* above p98 */
        md_image_free(&img);
    } else {
        CHECK_MSG(0, "%s", err.message);
    }
    remove_temp(path);
}

/* No valid pixel at all: an all-black preview, not an error. A constant map
 * gets the middle colour of the map. */
static void test_preview_degenerate(void)
{
    md_error err = {0};
    md_depth d = {0};
    float zeros[6] = {0, 0, NAN, -1, 0, 0};
    d.width = 3;
    d.height = 2;
    d.data = zeros;
    char *path = temp_path("black.png");
    if (!path)
        return;
    CHECK_OK(md_depth_save_preview(path, &d, MD_COLORMAP_TURBO, 0, 0, &err), &err);
    md_image img = {0};
    if (md_image_load(path, &img, &err) == MD_OK) {
        int all_black = 1;
        for (int i = 0; i < 18; i++)
            all_black &= img.pixels[i] == 0;
        CHECK(all_black);
        md_image_free(&img);
    } else {
        CHECK_MSG(0, "%s", err.message);
    }
    float flat[6] = {2, 2, 2, 2, 2, 2};
    d.data = flat;
    CHECK_OK(md_depth_save_preview(path, &d, MD_COLORMAP_INFERNO, 0, 0, &err), &err);
    if (md_image_load(path, &img, &err) == MD_OK) {
        CHECK(near_rgb(img.pixels, 187, 55, 85, 3)); /* inferno(0.5) */
        md_image_free(&img);
    }
    remove_temp(path);
}

static void test_preview_errors(void)
{
    md_error err = {0};
    md_depth d = {0};
    float v[4] = {1, 2, 3, 4};
    d.width = 2;
    d.height = 2;
    d.data = v;
    CHECK(md_depth_save_preview("/tmp/x.png", NULL, MD_COLORMAP_TURBO, 0, 0, &err) == MD_ERR_ARG);
    CHECK(md_depth_save_preview("/tmp/x.png", &d, MD_COLORMAP_TURBO, 5, 1, &err) == MD_ERR_ARG);
    CHECK(md_depth_save_preview("/tmp/x.png", &d, MD_COLORMAP_TURBO, NAN, 1, &err) ==
          MD_ERR_ARG);
    CHECK(md_depth_save_preview("/nonexistent-dir/p.png", &d, MD_COLORMAP_TURBO, 0, 0, &err) ==
          MD_ERR_IO);
    CHECK(strstr(err.message, "/nonexistent-dir/p.png") != NULL);
    CHECK(access("/nonexistent-dir/p.png", F_OK) != 0);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* numpy.percentile(v, 100 p) (linear) of the m values in v, by sorting. */
static double sorted_percentile(float *v, size_t m, double p)
{
    qsort(v, m, sizeof *v, cmp_float);
    double pos = p * (double)(m - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= m)
        return v[m - 1];
    return v[i] + ((double)v[i + 1] - v[i]) * (pos - (double)i);
}

/* md_depth_auto_range against a full sort on maps that put both ends in one
 * histogram bucket, in neighbouring and in distant ones, with ties, invalid
 * and masked pixels, and with 1, 2 and 3 valid values. */
static void test_auto_range_vs_sort(void)
{
    uint64_t st = 0x243f6a8885a308d3ull;
    const int sizes[][2] = {{1, 1}, {2, 1}, {3, 1}, {7, 5}, {64, 48}, {160, 120}};
    for (int kind = 0; kind < 5; kind++)
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            md_depth d = {0};
            d.width = sizes[z][0];
            d.height = sizes[z][1];
            size_t n = (size_t)d.width * (size_t)d.height, m = 0;
            d.data = malloc(n * sizeof(float));
            d.mask = malloc(n);
            float *valid = malloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++) {
                st ^= st << 13;
                st ^= st >> 7;
                st ^= st << 17;
                double u = (double)(st >> 11) / (double)(1ull << 53); /* [0, 1) */
                float v = kind == 0   ? (float)(0.5 + 9.5 * u)           /* 0.5-10 m */
                          : kind == 1 ? (float)(2.0 + 0.001 * u)         /* one bucket */
                          : kind == 2 ? (float)(1 + (int)(4 * u))        /* ties */
                          : kind == 3 ? (float)(1e-3 * pow(1e7, u))      /* 1 mm - 10 km */
                                      : (float)(u < 0.5 ? 1.0 : 3.0);    /* two values */
                d.data[i] = v;
                d.mask[i] = 1;
                if (n > 3 && i % 11 == 3)
                    d.data[i] = i % 2 ? NAN : 0.0f; /* invalid */
                else if (n > 3 && i % 13 == 5)
                    d.mask[i] = 0; /* masked */
                else
                    valid[m++] = v;
            }
            float lo = -1, hi = -1;
            md_error err = {0};
            CHECK_OK(md_depth_auto_range(&d, &lo, &hi, &err), &err);
            double want_lo = sorted_percentile(valid, m, 0.02);
            double want_hi = sorted_percentile(valid, m, 0.98);
            CHECK_MSG(fabs(lo - want_lo) <= 1e-6 * want_lo && fabs(hi - want_hi) <= 1e-6 * want_hi,
                      "kind %d, %dx%d: %.9g..%.9g, want %.9g..%.9g", kind, d.width, d.height, lo,
                      hi, want_lo, want_hi);
            free(d.data);
            free(d.mask);
            free(valid);
        }
}

int main(void)
{
    RUN_TEST(test_turbo_published_values);
    RUN_TEST(test_inferno_published_values);
    RUN_TEST(test_inferno_monotone_luminance);
    RUN_TEST(test_turbo_is_continuous);
    RUN_TEST(test_preview_written);
    RUN_TEST(test_preview_percentiles_large);
    RUN_TEST(test_preview_degenerate);
    RUN_TEST(test_auto_range_vs_sort);
    RUN_TEST(test_preview_errors);
    return check_finish();
}
