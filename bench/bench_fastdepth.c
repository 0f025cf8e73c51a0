/* FastDepth (ONNX backend) speed: median milliseconds per md_model_run_tensor
 * on a 1x3x224x224 input, per thread count, plus one md_model_predict on a
 * 640x480 image:
 *
 *   cmake --build build --target bench_fastdepth
 *   ./build/bench/bench_fastdepth [model.onnx] [runs] [max_threads]
 *
 * The model defaults to md_default_model_path() (scripts/install-models). */
#include "metricdepth.h"
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    char path[4096];
    md_error err = {0};
    if (argc > 1) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else if (md_default_model_path(path, sizeof path, &err) != MD_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 100;
    int max_threads = argc > 3 ? atoi(argv[3]) : 2;
    if (runs < 1)
        runs = 1;
    double *t = malloc(sizeof(double) * (size_t)runs);
    double *ct = malloc(sizeof(double) * (size_t)runs);
    float *x = malloc(sizeof(float) * 3 * 224 * 224);
    if (!t || !ct || !x)
        return 1;
    for (int i = 0; i < 3 * 224 * 224; i++)
        x[i] = (float)((i * 7919) % 255) / 255.0f;
    for (int threads = 1; threads <= max_threads; threads++) {
        md_model_options opts = {0};
        opts.threads = threads;
        md_model *m = NULL;
        if (md_model_load(path, &opts, &m, &err) != MD_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        if (threads == 1)
            printf("%s, %.3f GFLOP per inference\n", md_model_describe(m),
                   md_model_gflop(m, 640, 480));
        md_tensor in = {4, {1, 3, 224, 224}, x}, out = {0};
        for (int r = 0; r < 5; r++) { /* warm-up */
            if (md_model_run_tensor(m, &in, &out, &err) != MD_OK) {
                fprintf(stderr, "%s\n", err.message);
                return 1;
            }
            md_tensor_free(&out);
        }
        for (int r = 0; r < runs; r++) {
            double t0 = bench_now(), c0 = bench_cpu_now();
            md_model_run_tensor(m, &in, &out, &err);
            t[r] = bench_now() - t0;
            ct[r] = bench_cpu_now() - c0;
            md_tensor_free(&out);
        }
        qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
        qsort(ct, (size_t)runs, sizeof *ct, bench_cmp_double);
        printf("run_tensor 224x224, %d thread(s): median %.2f ms, min %.2f ms, p90 %.2f ms (%d runs)",
               threads, t[runs / 2] * 1e3, t[0] * 1e3, t[runs * 9 / 10] * 1e3, runs);
        if (threads == 1)
            printf("; CPU time median %.2f ms", ct[runs / 2] * 1e3);
        printf("\n");
        md_image img = {640, 480, calloc((size_t)640 * 480 * 3, 1)};
        md_depth d = {0};
        if (img.pixels) {
            double t0 = bench_now();
            if (md_model_predict(m, &img, &d, &err) == MD_OK)
                printf("predict 640x480 (pre/post-processing included), %d thread(s): %.2f ms\n",
                       threads, (bench_now() - t0) * 1e3);
            md_depth_free(&d);
            free(img.pixels);
        }
        md_model_free(m);
    }
    free(t);
    free(ct);
    free(x);
    return 0;
}
