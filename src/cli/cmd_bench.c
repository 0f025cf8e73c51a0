#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static int run(int argc, char **argv);

const cli_command cmd_bench = {
    "bench", "time a depth network on an image of a given size",
    "usage: metricdepth bench [options]\n\n"
    "Times the whole predict path (preprocess, network, map back) on the built-in\n"
    "sample scene rendered at --size, and reports the median and best time per\n"
    "image, the network's GFLOP/s and the process's peak memory.\n\n"
    "options:\n"
    "  --model FILE         network (default: the installed FastDepth)\n"
    "  --size HxW           image size (default 480x640)\n"
    "  --threads N          worker threads (default: all cores)\n"
    "  --runs N             timed runs after one warm-up (default 10)\n"
    "  --input-size N       DA2 network input's shorter side (default 518)\n"
    "  -h, --help           this text\n\n"
    "example:\n"
    "  metricdepth bench --model ../shared/reference/da2/vits/model.safetensors --threads 2\n",
    run};

int cli_open_model(const char *path, const md_model_options *opts, md_model **model);

static double seconds(void)
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

static int run(int argc, char **argv)
{
    const char *model_path = NULL, *size_s = "480x640", *threads_s = "0", *runs_s = "10";
    const char *input_size_s = "0";
    cli_option options[] = {{"model", 0, true, &model_path, NULL},
                            {"size", 0, true, &size_s, NULL},
                            {"threads", 0, true, &threads_s, NULL},
                            {"runs", 0, true, &runs_s, NULL},
                            {"input-size", 0, true, &input_size_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char *pos[64];
    int npos = 0;
    if (argc > 60)
        return cli_usage_error(&cmd_bench, "too many arguments");
    int rc = cli_parse(&cmd_bench, argc, argv, options, pos, &npos);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    int height, width, runs;
    md_model_options mo = {0};
    if (npos > 0)
        return cli_usage_error(&cmd_bench, "unexpected argument '%s'", pos[0]);
    if (!cli_parse_size(size_s, &height, &width))
        return cli_usage_error(&cmd_bench, "--size wants HxW, e.g. 480x640");
    if (!cli_parse_int(runs_s, &runs) || runs < 1 || runs > 100000)
        return cli_usage_error(&cmd_bench, "--runs wants a number >= 1");
    if (!cli_parse_int(threads_s, &mo.threads) || mo.threads < 0 ||
        !cli_parse_int(input_size_s, &mo.input_size) || mo.input_size < 0)
        return cli_usage_error(&cmd_bench, "--threads and --input-size want numbers >= 0");

    md_error err = {0};
    md_image img = {0};
    md_depth gt = {0}, out = {0};
    md_intrinsics K;
    md_model *model = NULL;
    double *times = calloc((size_t)runs, sizeof *times);
    int status = CLI_EXIT_OK;
    if (!times)
        return CLI_EXIT_FAILURE;
    if (md_render_sample_scene(width, height, 0, &img, &gt, &K, &err) != MD_OK) {
        status = cli_report(&err);
        goto done;
    }
    status = cli_open_model(model_path, &mo, &model);
    if (status != CLI_EXIT_OK)
        goto done;
    printf("model: %s\n", md_model_describe(model));
    printf("image: %dx%d, threads: %d, runs: %d (+1 warm-up)\n", width, height, mo.threads,
           runs);
    for (int i = -1; i < runs; i++) {
        double t0 = seconds();
        if (md_model_predict(model, &img, &out, &err) != MD_OK) {
            status = cli_report(&err);
            goto done;
        }
        double t = seconds() - t0;
        md_depth_free(&out);
        if (i >= 0)
            times[i] = t;
    }
    qsort(times, (size_t)runs, sizeof *times, cmp_double);
    double median = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
    double gflop = md_model_gflop(model, width, height);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("time per image: median %.2f ms, best %.2f ms, worst %.2f ms\n", 1e3 * median,
           1e3 * times[0], 1e3 * times[runs - 1]);
    if (gflop > 0)
        printf("network: %.2f GFLOP per image, %.1f GFLOP/s at the median\n", gflop,
               gflop / median);
    printf("peak memory (max RSS): %.1f MB\n", (double)ru.ru_maxrss / 1024.0);
done:
    free(times);
    md_model_free(model);
    md_image_free(&img);
    md_depth_free(&gt);
    return status;
}
