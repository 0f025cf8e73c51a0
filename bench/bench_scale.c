/* Optimal-scale solver speed on full 640x480 pairs (307,200 valid pixels).
 *
 * Each run draws a fresh realistic pair: ground truth log-normal around 2.8 m
 * clipped to [1, 8] m with a smooth spatial structure, prediction = gt / s_true
 * times a smooth multiplicative bias and per-pixel log-normal noise, s_true in
 * [0.6, 1.6]. Reports the median (and min / max) milliseconds per md_scale_fit
 * call for each method over the runs, plus md_w1_distance.
 *
 * usage: bench_scale [runs]   (default 50) */
#include "base/base.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static double urand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double nrand(uint64_t *state)
{
    return sqrt(-2.0 * log(urand(state))) * cos(6.283185307179586 * urand(state));
}

static void make_pair(float *pred, float *gt, int w, int h, uint64_t *rng)
{
    double s_true = 0.6 + urand(rng);
    double fx = 1 + 3 * urand(rng), fy = 1 + 3 * urand(rng), ph = 6.28 * urand(rng);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double u = (double)x / w, v = (double)y / h;
            double smooth = 0.35 * sin(fx * 3.1 * u + ph) * cos(fy * 2.3 * v);
            double d = exp(log(2.8) + smooth + 0.25 * nrand(rng));
            d = d < 1 ? 1 : (d > 8 ? 8 : d);
            gt[i] = (float)d;
            double bias = exp(0.1 * sin(4 * u) + 0.12 * nrand(rng));
            pred[i] = (float)(d / s_true * bias);
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 50;
    if (runs < 1)
        runs = 1;
    const int w = 640, h = 480;
    const size_t n = (size_t)w * h;
    float *pred = malloc(n * sizeof *pred), *gt = malloc(n * sizeof *gt);
    double *times[6];
    for (int m = 0; m < 6; m++)
        times[m] = malloc((size_t)runs * sizeof(double));
    if (!pred || !gt)
        return 1;
    uint64_t rng = 12345;
    double checksum = 0;
    for (int r = 0; r < runs; r++) {
        make_pair(pred, gt, w, h, &rng);
        for (int m = 0; m <= MD_SCALE_LOGLSQ; m++) {
            md_error err = {0};
            double s = 0;
            double t0 = md_now_seconds();
            md_status st = md_scale_fit(pred, gt, n, (md_scale_method)m, 0.1, 2.0, &s, &err);
            double t1 = md_now_seconds();
            if (st != MD_OK) {
                fprintf(stderr, "bench_scale: %s\n", err.message);
                return 1;
            }
            times[m][r] = (t1 - t0) * 1e3;
            checksum += s;
        }
        double t0 = md_now_seconds();
        checksum += md_w1_distance(pred, gt, n, 1.0);
        times[5][r] = (md_now_seconds() - t0) * 1e3;
    }
    printf("bench_scale: %dx%d pairs (%zu pixels), %d runs, median [min, max] ms per call\n", w,
           h, n, runs);
    for (int m = 0; m < 6; m++) {
        qsort(times[m], (size_t)runs, sizeof(double), cmp_double);
        const char *name = m < 5 ? md_scale_method_name((md_scale_method)m) : "w1_distance";
        printf("%-12s %8.3f ms  [%.3f, %.3f]\n", name, times[m][runs / 2], times[m][0],
               times[m][runs - 1]);
        free(times[m]);
    }
    fprintf(stderr, "(checksum %.6f)\n", checksum);
    free(pred);
    free(gt);
    return 0;
}
