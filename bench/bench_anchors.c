/* Anchor fit and scale map speed on a real 640x480 pair: FastDepth's depth
 * for SUN3D fragment 2's first frame (../shared), anchors drawn from its
 * ground truth (2 % noise, 10 % outliers) as eval-anchors draws them, K =
 * 16, 256, 4096 and every ground-truth pixel (a dense projected scan).
 * Reports the median (min, max) milliseconds of md_scale_depth per call:
 * the robust global fit, and the robust fit with the pixel-wise scale map.
 *
 * usage: bench_anchors [runs] [shared_dir]   (default 20, ../shared) */
#include "metricdepth.h"
#include "metricdepth_eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    const char *shared = argc > 2 ? argv[2] : "../shared";
    if (runs < 1)
        runs = 1;
    char rgb[4096], dep[4096], model_path[4096];
    snprintf(rgb, sizeof rgb, "%s/data/sun3d_studyroom/fragment-2-rgbd-frames/frame-003160.color.png",
             shared);
    snprintf(dep, sizeof dep, "%s/data/sun3d_studyroom/fragment-2-rgbd-frames/frame-003160.depth.png",
             shared);
    md_error err = {0};
    md_image img = {0};
    md_depth pred = {0}, gt = {0}, work = {0};
    md_model *model = NULL;
    if (md_default_model_path(model_path, sizeof model_path, &err) != MD_OK ||
        md_model_load(model_path, NULL, &model, &err) != MD_OK ||
        md_image_load(rgb, &img, &err) != MD_OK || md_depth_load(dep, NULL, &gt, &err) != MD_OK ||
        md_model_predict(model, &img, &pred, &err) != MD_OK ||
        md_depth_alloc(&work, pred.width, pred.height, &err) != MD_OK) {
        fprintf(stderr, "bench_anchors: %s\n", err.message);
        return 1;
    }
    size_t npix = (size_t)pred.width * (size_t)pred.height;
    printf("anchors on %dx%d (FastDepth on SUN3D f2 frame 3160), %d runs, ms per md_scale_depth\n",
           pred.width, pred.height, runs);
    printf("%-10s %-22s %-22s\n", "anchors", "robust fit", "robust fit + scale map");
    const int ks[] = {16, 256, 4096, 1 << 30};
    double *t = malloc((size_t)runs * sizeof *t);
    for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
        md_anchor_sim sim = {ks[ki], 0.02, 0.1, 7};
        md_anchor_set set;
        if (md_anchor_simulate(&pred, &gt, &sim, &set, &err) != MD_OK) {
            fprintf(stderr, "bench_anchors: %s\n", err.message);
            return 1;
        }
        char label[32];
        snprintf(label, sizeof label, "%zu", set.count);
        printf("%-10s", label);
        for (int map = 0; map < 2; map++) {
            md_scale_options so = md_scale_options_default();
            so.source = MD_SCALE_SOURCE_ANCHORS;
            so.anchors = &set;
            so.scale_map = map;
            for (int r = 0; r < runs; r++) {
                memcpy(work.data, pred.data, npix * sizeof *work.data);
                md_scale_record rec;
                double t0 = now();
                md_status st = md_scale_depth(NULL, NULL, &work, &so, &rec, &err);
                t[r] = 1e3 * (now() - t0);
                md_scale_record_free(&rec);
                if (st != MD_OK) {
                    fprintf(stderr, "bench_anchors: %s\n", err.message);
                    return 1;
                }
            }
            qsort(t, (size_t)runs, sizeof *t, cmp_double);
            char cell[64];
            snprintf(cell, sizeof cell, "%.2f (%.2f, %.2f)", t[runs / 2], t[0], t[runs - 1]);
            printf(" %-22s", cell);
        }
        printf("\n");
        md_anchor_set_free(&set);
    }
    free(t);
    md_model_free(model);
    md_image_free(&img);
    md_depth_free(&pred);
    md_depth_free(&gt);
    md_depth_free(&work);
    return 0;
}
