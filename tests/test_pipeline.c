/* The pipeline module's coverage report (md_depth_coverage) on hand-made
 * depth maps with FastDepth's facts (an indoor network, largest depth 10 m,
 * a 4:3 centre crop): counts, the 95 % threshold at the float next to it, the
 * quarter rule, masks and wide images, against values counted by hand. */
#include "check.h"
#include "metricdepth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A 40x30 map of 1 m with, in order from pixel 0: `high` pixels at 9.5 m
 * (exactly 0.95 x 10), `below` at the float under 9.5, then 2 NaN, 3 zeros,
 * one negative and one infinite pixel: 1193 valid pixels of 1200. */
static void fill(md_depth *d, int high, int below)
{
    size_t n = (size_t)d->width * d->height, i = 0;
    for (size_t k = 0; k < n; k++)
        d->data[k] = 1.0f;
    for (int k = 0; k < high; k++)
        d->data[i++] = 9.5f;
    for (int k = 0; k < below; k++)
        d->data[i++] = nextafterf(9.5f, 0.0f);
    d->data[i++] = NAN;
    d->data[i++] = NAN;
    for (int k = 0; k < 3; k++)
        d->data[i++] = 0.0f;
    d->data[i++] = -1.0f;
    d->data[i++] = INFINITY;
}

static const md_model *fastdepth;

static void test_coverage(void)
{
    const md_model *m = fastdepth;
    md_error err = {0};
    md_depth d = {0};
    md_coverage c;
    CHECK_OK(md_depth_alloc(&d, 40, 30, &err), &err);
    if (!d.data)
        return;
    /* 298 of 1193 at the threshold: under a quarter (298.25), indoor */
    fill(&d, 298, 400);
    md_depth_coverage(m, &d, &c);
    CHECK(c.coverage == 1.0 && !c.outdoor_like && c.note[0] == '\0');
    /* one more at 9.5 m (none more just under it): a quarter, outdoor-like */
    fill(&d, 299, 399);
    md_depth_coverage(m, &d, &c);
    CHECK(c.coverage == 1.0 && c.outdoor_like);
    CHECK(strstr(c.note, "much of it at the network's largest depth") != NULL);
    CHECK(strstr(c.note, "centre crop") == NULL);
    /* the invalid pixels are not counted as valid: with 1200 valid pixels
     * 299 would be under a quarter (300) */
    for (size_t k = 698; k < 705; k++)
        d.data[k] = 1.0f;
    md_depth_coverage(m, &d, &c);
    CHECK(!c.outdoor_like);

    /* a mask over the first 480 pixels (40 %): 60 % seen; the high pixels,
     * all behind it, do not count */
    uint8_t *mask = calloc(1200, 1);
    if (!mask) {
        md_depth_free(&d);
        return;
    }
    for (size_t k = 480; k < 1200; k++)
        mask[k] = 1;
    fill(&d, 299, 0);
    d.mask = mask;
    md_depth_coverage(m, &d, &c);
    CHECK(c.coverage == 0.6 && !c.outdoor_like);
    CHECK_MSG(strstr(c.note, "4:3 centre crop: 60 % of this 40x30 image has depth") != NULL,
              "%s", c.note);
    /* the same 180 high pixels (a quarter of 720) inside the mask: outdoor-like */
    for (size_t k = 480; k < 660; k++)
        d.data[k] = 10.0f;
    md_depth_coverage(m, &d, &c);
    CHECK(c.outdoor_like && strstr(c.note, "; an indoor network") != NULL);
    d.data[480] = nextafterf(9.5f, 0.0f); /* 179: under a quarter */
    md_depth_coverage(m, &d, &c);
    CHECK(!c.outdoor_like);
    d.mask = NULL;
    free(mask);
    md_depth_free(&d);

    /* 2:1 and wider: outdoor-like whatever the depths */
    CHECK_OK(md_depth_alloc(&d, 60, 30, &err), &err);
    if (!d.data)
        return;
    for (size_t k = 0; k < 1800; k++)
        d.data[k] = 2.0f;
    md_depth_coverage(m, &d, &c);
    CHECK(c.outdoor_like && strstr(c.note, "a wide image") != NULL);
    md_depth_free(&d);
}

int main(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/models/fastdepth/fastdepth_7.onnx", check_shared_dir());
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "shared data absent (%s): skipping\n", path);
        return 77;
    }
    md_error err = {0};
    md_model *m = NULL;
    CHECK_OK(md_model_load(path, NULL, &m, &err), &err);
    if (m) {
        md_model_info info;
        md_model_get_info(m, &info);
        CHECK(info.max_depth == 10.0 && info.indoor == 1); /* the facts the cases rely on */
        fastdepth = m;
        RUN_TEST(test_coverage);
        md_model_free(m);
    }
    return check_finish();
}
