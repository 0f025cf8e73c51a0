#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static int run(int argc, char **argv);

const cli_command cmd_bench = {
    "bench", "time a depth network: the network alone and the whole predict path",
    "usage: metricdepth bench [options]\n\n"
    "Renders the built-in sample scene at --size and, for 1 thread and for --threads,\n"
    "times the network alone (md_model_run_tensor on the preprocessed input) and the\n"
    "whole predict path (preprocess, network, map back), reporting median and best\n"
    "wall times, the median CPU time of the process per run (all threads; less\n"
    "disturbed than wall time by other jobs on a shared machine), the network's\n"
    "GFLOP/s and its share of the machine's peak (operations of the direct sums: fp32\n"
    "3x3 convolutions running as Winograd F(4x4, 3x3) do fewer). The share is the\n"
    "least time those operations take, bf16 products at the bf16 peak and the rest\n"
    "(such as an ONNX model's depthwise layers) at the fp32 one, over the time\n"
    "measured. It prints the CPU and the kernels it dispatched to. The peak is\n"
    "measured, not looked up: the clock from a chain of dependent additions and the\n"
    "fp32 FMA / bf16 dot-product throughput per cycle from independent chains of\n"
    "those instructions, times the cores used (each figure the best of five short\n"
    "runs).\n\n"
    "options:\n"
    "  --model FILE         network (default: the installed FastDepth)\n"
    "  --size HxW           image size (default 480x640)\n"
    "  --threads N          the multi-threaded row (default: all cores)\n"
    "  --runs N             timed runs per row after one warm-up (default 30, 3 for\n"
    "                       networks over 5 GFLOP)\n"
    "  --input-size N       DA2 network input's shorter side (default 518)\n"
    "  --precision P        fp32 (default), bf16 or auto (see predict --help)\n"
    "  -h, --help           this text\n\n"
    "example:\n"
    "  metricdepth bench --model ../shared/reference/da2/vits/model.safetensors --precision bf16\n",
    run};

int cli_open_model(const char *path, const md_model_options *opts, md_model **model);

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the whole process (every worker): on a shared machine, the
 * cost of a run without the time other jobs take from it. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

typedef struct {
    double net_median, net_best, whole_median, whole_best;
    double net_cpu, whole_cpu; /* median process CPU time per run */
} row_times;

/* One thread count: the network alone, then the whole path. */
static int time_row(const md_model *model, const md_image *img, const md_tensor *input, int runs,
                    double *times, double *cpu, row_times *out)
{
    md_error err = {0};
    for (int pass = 0; pass < 2; pass++) {
        for (int i = -1; i < runs; i++) {
            double t0 = seconds(), c0 = cpu_seconds();
            md_status st;
            if (pass == 0) {
                md_tensor y = {0};
                st = md_model_run_tensor(model, input, &y, &err);
                md_tensor_free(&y);
            } else {
                md_depth d = {0};
                st = md_model_predict(model, img, &d, &err);
                md_depth_free(&d);
            }
            if (st != MD_OK)
                return cli_report(&err);
            if (i >= 0) {
                times[i] = seconds() - t0;
                cpu[i] = cpu_seconds() - c0;
            }
        }
        double med = median(times, runs), cmed = median(cpu, runs);
        if (pass == 0) {
            out->net_median = med;
            out->net_best = times[0];
            out->net_cpu = cmed;
        } else {
            out->whole_median = med;
            out->whole_best = times[0];
            out->whole_cpu = cmed;
        }
    }
    return CLI_EXIT_OK;
}

static int run(int argc, char **argv)
{
    const char *model_path = NULL, *size_s = "480x640", *threads_s = "0", *runs_s = NULL;
    const char *input_size_s = "0", *precision_s = "fp32";
    cli_option options[] = {{"model", 0, true, &model_path, NULL},
                            {"size", 0, true, &size_s, NULL},
                            {"threads", 0, true, &threads_s, NULL},
                            {"runs", 0, true, &runs_s, NULL},
                            {"input-size", 0, true, &input_size_s, NULL},
                            {"precision", 0, true, &precision_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char *pos[64];
    int npos = 0;
    if (argc > 60)
        return cli_usage_error(&cmd_bench, "too many arguments");
    int rc = cli_parse(&cmd_bench, argc, argv, options, pos, &npos);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    int height, width, runs = 0, threads = 0;
    md_model_options mo = {0};
    if (npos > 0)
        return cli_usage_error(&cmd_bench, "unexpected argument '%s'", pos[0]);
    if (!cli_parse_size(size_s, &height, &width))
        return cli_usage_error(&cmd_bench, "--size wants HxW, e.g. 480x640");
    if (runs_s && (!cli_parse_int(runs_s, &runs) || runs < 1 || runs > 100000))
        return cli_usage_error(&cmd_bench, "--runs wants a number >= 1");
    if (!cli_parse_int(threads_s, &threads) || threads < 0 ||
        !cli_parse_int(input_size_s, &mo.input_size) || mo.input_size < 0)
        return cli_usage_error(&cmd_bench, "--threads and --input-size want numbers >= 0");
    int prec = md_precision_parse(precision_s);
    if (prec < 0)
        return cli_usage_error(&cmd_bench, "--precision is fp32, bf16 or auto (got '%s')",
                               precision_s);
    mo.precision = (md_precision)prec;

    md_runtime_info info;
    md_runtime_describe(&info);
    if (threads == 0)
        threads = info.cpus;
    md_cpu_throughput peak;
    md_cpu_measure(&peak);
    printf("cpu: %s, %d online CPUs\n", info.cpu, info.cpus);
    printf("kernels: fp32 %s, bf16 %s (AMX-BF16: %s)\n", info.fp32_kernels, info.bf16_kernels,
           info.amx_bf16 ? "present, not used" : "no");
    double fp32_core = peak.ghz * peak.fp32_flop_per_cycle, bf16_core = peak.ghz * peak.bf16_flop_per_cycle;
    if (peak.ghz > 0)
        printf("peak per core (measured: %.2f GHz x %.0f fp32 / %.0f bf16 flop per cycle): "
               "fp32 %.0f GFLOP/s, bf16 %.0f GFLOP/s\n",
               peak.ghz, peak.fp32_flop_per_cycle, peak.bf16_flop_per_cycle, fp32_core,
               bf16_core);

    md_error err = {0};
    md_image img = {0};
    md_depth gt = {0};
    md_tensor input = {0};
    md_intrinsics K;
    md_model *model = NULL;
    md_threadpool *pool = NULL;
    int counts[2] = {1, threads}, rows = threads > 1 ? 2 : 1, status = CLI_EXIT_OK;
    row_times res[2];
    double *times = NULL, *cpu = NULL;
    if (md_render_sample_scene(width, height, 0, &img, &gt, &K, &err) != MD_OK) {
        status = cli_report(&err);
        goto done;
    }
    for (int r = 0; r < rows; r++) {
        if (md_threadpool_create(counts[r], &pool, &err) != MD_OK) {
            status = cli_report(&err);
            goto done;
        }
        mo.pool = pool;
        status = cli_open_model(model_path, &mo, &model);
        if (status != CLI_EXIT_OK)
            goto done;
        if (r == 0) {
            if (md_model_preprocess(model, &img, &input, &err) != MD_OK) {
                status = cli_report(&err);
                goto done;
            }
            double gflop = md_model_gflop(model, width, height);
            if (runs == 0)
                runs = gflop > 5 ? 3 : 30;
            times = calloc((size_t)runs, sizeof *times);
            cpu = calloc((size_t)runs, sizeof *cpu);
            if (!times || !cpu) {
                status = CLI_EXIT_FAILURE;
                goto done;
            }
            printf("model: %s\n", md_model_describe(model));
            printf("image: %dx%d -> network input", width, height);
            for (int i = 0; i < input.ndim; i++)
                printf("%s%lld", i ? "x" : " ", (long long)input.shape[i]);
            printf(", %.2f GFLOP per image; %d runs per row (+1 warm-up)\n", gflop, runs);
            printf("threads | network: median  best   CPU | GFLOP/s  of peak | whole predict: median  "
                   "best   CPU\n");
        }
        status = time_row(model, &img, &input, runs, times, cpu, &res[r]);
        if (status != CLI_EXIT_OK)
            goto done;
        double gflop = md_model_gflop(model, width, height);
        double gflop_bf16 = md_model_gflop_bf16(model, width, height);
        int cores = counts[r] < info.cpus ? counts[r] : info.cpus;
        /* the share of the peak: the least time the arithmetic needs, each
         * part at its own peak (bf16 products, float32 ones), over the time */
        double least = 0;
        if (fp32_core > 0 && (gflop_bf16 <= 0 || bf16_core > 0))
            least = ((gflop_bf16 > 0 ? gflop_bf16 / bf16_core : 0) +
                     (gflop - gflop_bf16) / fp32_core) / cores;
        double rate = gflop > 0 ? gflop / res[r].net_median : 0;
        printf("%7d | %10.2f ms %6.2f ms %6.2f ms | ", counts[r], 1e3 * res[r].net_median,
               1e3 * res[r].net_best, 1e3 * res[r].net_cpu);
        if (rate > 0 && least > 0)
            printf("%7.1f  %6.1f %% | ", rate, 100.0 * least / res[r].net_median);
        else if (rate > 0)
            printf("%7.1f       -   | ", rate);
        else
            printf("      -        -   | ");
        printf("%14.2f ms %6.2f ms %6.2f ms\n", 1e3 * res[r].whole_median, 1e3 * res[r].whole_best,
               1e3 * res[r].whole_cpu);
        md_model_free(model);
        model = NULL;
        md_threadpool_free(pool);
        pool = NULL;
    }
    if (rows == 2)
        printf("%d threads vs 1: network %.2fx, whole predict %.2fx\n", threads,
               res[0].net_median / res[1].net_median, res[0].whole_median / res[1].whole_median);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak memory (max RSS): %.1f MB\n", (double)ru.ru_maxrss / 1024.0);
done:
    free(times);
    free(cpu);
    md_model_free(model);
    md_threadpool_free(pool);
    md_tensor_free(&input);
    md_image_free(&img);
    md_depth_free(&gt);
    return status;
}
