/* metricdepth fit-scales: the oracle scale s* of every pair of a dataset, the
 * training list of the scale CNN (seed report, step 1). */
#include "cli.h"
#include "metricdepth_eval.h"

#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int run(int argc, char **argv);

const cli_command cmd_fit_scales = {
    "fit-scales", "oracle scale s* per RGB-D pair: the scale CNN's training list (CSV)",
    "usage: metricdepth fit-scales [--data] DIR|LIST... [options] -o scales.csv\n\n"
    "Runs the base depth model on every pair of the datasets (folders are detected\n"
    "like 'metricdepth pairs', files are pair lists), finds the optimal scale s* of\n"
    "each prediction against its ground truth (s* = argmin over [LO,HI] of\n"
    "W1(s*pred, gt) by default), and writes one CSV row per pair:\n"
    "  " MD_SCALES_CSV_HEADER "\n"
    "(metrics: seed protocol, pixels with gt > 0 and pred > 0). With --scale-model\n"
    "the CSV also has pred_log_scale,abs_rel_adaptive,rmse_adaptive,delta1_adaptive\n"
    "and the summary compares unscaled, oracle and adaptive depth (a test set).\n\n"
    "Predictions are cached as float32 .npy files, keyed by the model file (path,\n"
    "size, mtime) and the RGB file (path, size, mtime): a re-run is instant and an\n"
    "interrupted run resumes. A bad pair (missing or corrupt file, no valid pixel,\n"
    "image and depth of different sizes) is reported and skipped (exit 3).\n\n"
    "options:\n"
    "  --data DIR|LIST      a dataset folder or pair list (more may follow as\n"
    "                       plain arguments)\n"
    "  -o, --output FILE    the CSV to write (required)\n"
    "  --model FILE         base depth model (default: the installed FastDepth)\n"
    "  --method M           w1 (default, the seed's), w2, median, lsq, loglsq\n"
    "  --range LO,HI        allowed scale range (default 0.1,2)\n"
    "  --trim LO,HI         keep only pairs whose s* lies within these percentiles\n"
    "                       of all s* (e.g. 5,95; default: keep all)\n"
    "  --jobs N             parallel workers, one model each (default 1)\n"
    "  --threads N          threads per model (default: all cores with one job,\n"
    "                       1 with several)\n"
    "  --cache DIR          prediction cache (default: .metricdepth-cache/ beside\n"
    "                       the output)\n"
    "  --no-cache           neither read nor write the cache\n"
    "  --shard K/N          only the K-th of N equal parts of the pairs; the shards'\n"
    "                       CSVs join with 'metricdepth merge -o all.csv shard*.csv'\n"
    "  --scale-model FILE   also evaluate this scale CNN (adaptive columns)\n"
    "  -h, --help           this text\n\n"
    "examples:\n"
    "  metricdepth fit-scales --data ../shared/data/sun3d_studyroom -o sun3d.csv\n"
    "  metricdepth fit-scales --data pairs.txt --jobs 2 --trim 5,95 -o scales.csv\n"
    "  metricdepth fit-scales --data test_pairs.txt --scale-model scale.safetensors \\\n"
    "      -o test_eval.csv\n",
    run};

typedef struct {
    md_pair *pair;
    md_scales_row row;
    int ok;
    int cached;
} fit_item;

typedef struct {
    /* shared, read-only */
    md_eval_options eo;
    fit_item *items;
    size_t n;
    /* shared, under lock */
    pthread_mutex_t lock;
    size_t next;
    size_t failed;
    int fatal;
    md_error fatal_err;
    cli_progress progress;
} fit_job;

static void item_error(fit_job *job, fit_item *it, const md_error *err)
{
    pthread_mutex_lock(&job->lock);
    if (job->progress.tty)
        fputc('\n', stderr);
    fprintf(stderr, "metricdepth: error: %s: %s (skipped)\n", it->pair->rgb_path,
            err->message[0] ? err->message : md_status_name(err->code));
    job->failed++;
    pthread_mutex_unlock(&job->lock);
}

/* One pair through the evaluator: cached or fresh prediction, gt, oracle
 * scale, seed-protocol metrics, and the scale model's when asked. */
static md_status fit_one(md_evaluator *ev, fit_item *it, md_error *err)
{
    md_eval_item e;
    md_status st = md_eval_pair(ev, it->pair, MD_SPLIT_TRAIN, 0.0, &e, NULL, NULL, err);
    if (st != MD_OK)
        return st;
    md_scales_row_of(&e, it->pair, &it->row);
    it->cached = e.cached;
    md_eval_item_free(&e);
    return MD_OK;
}

static void set_fatal(fit_job *job, const md_error *err)
{
    pthread_mutex_lock(&job->lock);
    if (!job->fatal) {
        job->fatal = 1;
        job->fatal_err = *err;
    }
    pthread_mutex_unlock(&job->lock);
}

static void *worker(void *arg)
{
    fit_job *job = arg;
    md_evaluator *ev = NULL;
    md_error err = {0};
    /* one evaluator (and base model) per worker */
    if (md_evaluator_create(&job->eo, &ev, &err) != MD_OK)
        set_fatal(job, &err);
    for (;;) {
        pthread_mutex_lock(&job->lock);
        size_t i = job->next++;
        int stop = job->fatal;
        pthread_mutex_unlock(&job->lock);
        if (i >= job->n || stop)
            break;
        fit_item *it = &job->items[i];
        memset(&err, 0, sizeof err);
        if (fit_one(ev, it, &err) == MD_OK)
            it->ok = 1;
        else
            item_error(job, it, &err);
        pthread_mutex_lock(&job->lock);
        cli_progress_step(&job->progress, it->pair->rgb_path);
        pthread_mutex_unlock(&job->lock);
    }
    md_evaluator_free(ev);
    return NULL;
}

/* Absolute path of p (not canonical), into buf. */
static void absolute(char *buf, size_t size, const char *p)
{
    char cwd[4096];
    if (p[0] == '/' || !getcwd(cwd, sizeof cwd))
        snprintf(buf, size, "%s", p);
    else
        cli_path_join(buf, size, cwd, p[0] == '.' && p[1] == '/' ? p + 2 : p);
}

static double mean_of(const fit_item *items, size_t n, const unsigned char *keep,
                      size_t offset)
{
    double s = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].ok || !keep[i])
            continue;
        s += *(const double *)((const char *)&items[i].row + offset);
        k++;
    }
    return k ? s / (double)k : NAN;
}

static void print_summary(const fit_item *items, size_t n, const unsigned char *keep,
                          size_t n_kept, const double *scales, size_t n_ok, int adaptive,
                          double lo, double hi)
{
    double med = NAN, p5 = NAN, p95 = NAN;
    md_error e = {0};
    md_percentile(scales, n_ok, 50, &med, &e);
    md_percentile(scales, n_ok, 5, &p5, &e);
    md_percentile(scales, n_ok, 95, &p95, &e);
    printf("pairs: %zu fitted, %zu kept in the CSV\n", n_ok, n_kept);
    printf("oracle scale s*: median %.4f [p5 %.4f, p95 %.4f] (all fitted pairs)\n", med, p5, p95);
    size_t at_limit = 0;
    for (size_t i = 0; i < n_ok; i++)
        at_limit += scales[i] <= lo * (1 + 1e-9) || scales[i] >= hi * (1 - 1e-9);
    if (at_limit)
        fprintf(stderr,
                "warning: the oracle scale sits on the range limit [%g, %g] for %zu of %zu pairs: "
                "their optimum lies beyond it (widen --range to see it)\n",
                lo, hi, at_limit, n_ok);
    printf("mean metrics over the kept pairs (seed protocol):\n");
    printf("  %-10s %8s %8s %8s %8s\n", "", "AbsRel", "RMSE", "delta1", "W1");
#define M(field) mean_of(items, n, keep, offsetof(md_scales_row, field))
    double ab = M(before.abs_rel), ao = M(after.abs_rel);
    printf("  %-10s %8.4f %8.4f %8.4f %8.4f\n", "unscaled", ab, M(before.rmse), M(before.delta1),
           M(w1_before));
    printf("  %-10s %8.4f %8.4f %8.4f %8.4f\n", "oracle", ao, M(after.rmse), M(after.delta1),
           M(w1_after));
    if (adaptive) {
        double aa = M(adaptive.abs_rel);
        printf("  %-10s %8.4f %8.4f %8.4f %8s\n", "adaptive", aa, M(adaptive.rmse),
               M(adaptive.delta1), "");
        double mae = 0, mse = 0;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (!items[i].ok || !keep[i])
                continue;
            double d = items[i].row.pred_log_scale - items[i].row.log_scale;
            mae += fabs(d);
            mse += d * d;
            k++;
        }
        if (k)
            printf("scale model on these pairs: log-scale MAE %.4f, RMSE %.4f\n", mae / (double)k,
                   sqrt(mse / (double)k));
        printf("gap closed (AbsRel): %.1f %%\n", 100.0 * md_gap_closed(ab, aa, ao));
    }
#undef M
}

static int run(int argc, char **argv)
{
    const char *data_s = NULL, *out_s = NULL, *model_s = NULL, *method_s = "w1";
    const char *range_s = "0.1,2", *trim_s = NULL, *jobs_s = "1", *threads_s = NULL;
    const char *cache_s = NULL, *scale_model_s = NULL;
    const char *shard_s = NULL;
    int shard_k = 1, shard_n = 1;
    bool no_cache = false;
    cli_option options[] = {{"data", 0, true, &data_s, NULL},
                            {"output", 'o', true, &out_s, NULL},
                            {"model", 0, true, &model_s, NULL},
                            {"method", 0, true, &method_s, NULL},
                            {"range", 0, true, &range_s, NULL},
                            {"trim", 0, true, &trim_s, NULL},
                            {"jobs", 'j', true, &jobs_s, NULL},
                            {"threads", 0, true, &threads_s, NULL},
                            {"cache", 0, true, &cache_s, NULL},
                            {"no-cache", 0, false, NULL, &no_cache},
                            {"scale-model", 0, true, &scale_model_s, NULL},
                            {"shard", 0, true, &shard_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos)
        return CLI_EXIT_FAILURE;
    int npos = 0;
    int rc = cli_parse(&cmd_fit_scales, argc, argv, options, pos, &npos);
    if (rc != 0) {
        free(pos);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    int method = md_scale_method_parse(method_s);
    double lo, hi, tlo = 0, thi = 100;
    int jobs = 1, threads = 0;
    if (!data_s && npos == 0)
        rc = cli_usage_error(&cmd_fit_scales, "give at least one dataset (--data DIR|LIST)");
    else if (!out_s)
        rc = cli_usage_error(&cmd_fit_scales, "give the output CSV with -o FILE");
    else if (method < 0)
        rc = cli_usage_error(&cmd_fit_scales,
                             "--method is w1, w2, median, lsq or loglsq (got '%s')", method_s);
    else if (!cli_parse_pair(range_s, &lo, &hi) || lo <= 0 || lo > hi)
        rc = cli_usage_error(&cmd_fit_scales, "--range wants LO,HI with 0 < LO <= HI");
    else if (trim_s &&
             (!cli_parse_pair(trim_s, &tlo, &thi) || tlo < 0 || tlo > thi || thi > 100))
        rc = cli_usage_error(&cmd_fit_scales, "--trim wants LO,HI percentiles, 0 <= LO <= HI <= 100");
    else if (shard_s && !cli_parse_shard(shard_s, &shard_k, &shard_n))
        rc = cli_usage_error(&cmd_fit_scales, "--shard wants K/N with 1 <= K <= N (got '%s')",
                             shard_s);
    else if (shard_s && trim_s)
        rc = cli_usage_error(&cmd_fit_scales, "--trim needs every row: trim after 'metricdepth "
                                              "merge', not in a shard");
    else if (!cli_parse_int(jobs_s, &jobs) || jobs < 1 || jobs > 64)
        rc = cli_usage_error(&cmd_fit_scales, "--jobs wants a number in 1..64");
    else if (threads_s && (!cli_parse_int(threads_s, &threads) || threads < 0))
        rc = cli_usage_error(&cmd_fit_scales, "--threads wants a number >= 0");
    if (rc != 0) {
        free(pos);
        return rc;
    }
    if (!threads_s)
        threads = jobs > 1 ? 1 : 0;

    /* pairs */
    md_error err = {0};
    md_pair_list pairs = {0};
    if (data_s && cli_collect_pairs(data_s, &pairs, &err) != 0)
        rc = cli_report(&err);
    for (int i = 0; rc == 0 && i < npos; i++)
        if (cli_collect_pairs(pos[i], &pairs, &err) != 0)
            rc = cli_report(&err);
    free(pos);
    if (rc == 0 && pairs.count == 0) {
        fprintf(stderr, "metricdepth: error: no RGB-D pairs found in the given datasets\n");
        rc = CLI_EXIT_FAILURE;
    }
    if (rc == 0 && shard_s) {
        /* contiguous blocks of the pairs in their listed order: the shards'
         * CSVs, merged in K order, are the unsharded CSV */
        size_t b = 0, e = 0, total = pairs.count;
        md_shard_range(total, shard_k, shard_n, &b, &e, &err);
        for (size_t i = 0; i < total; i++) {
            if (i >= b && i < e)
                continue;
            free(pairs.items[i].rgb_path);
            free(pairs.items[i].depth_path);
        }
        memmove(pairs.items, pairs.items + b, (e - b) * sizeof *pairs.items);
        pairs.count = e - b;
        fprintf(stderr, "shard %d/%d: pairs %zu..%zu of %zu\n", shard_k, shard_n, b + 1, e, total);
        if (pairs.count == 0) {
            fprintf(stderr, "metricdepth: error: shard %d/%d has no pair\n", shard_k, shard_n);
            rc = CLI_EXIT_FAILURE;
        }
    }
    if (rc != 0) {
        md_pair_list_free(&pairs);
        return rc;
    }

    /* model and cache folder */
    char model_buf[4096], cache_buf[4096];
    if (!model_s) {
        if (md_default_model_path(model_buf, sizeof model_buf, &err) != MD_OK) {
            md_pair_list_free(&pairs);
            return cli_report(&err);
        }
        model_s = model_buf;
    }
    if (!no_cache) {
        if (!cache_s) {
            cli_sibling_dir(cache_buf, sizeof cache_buf, out_s, ".metricdepth-cache");
            cache_s = cache_buf;
        }
        if (cli_make_dirs(cache_s, &err) != MD_OK) {
            md_pair_list_free(&pairs);
            return cli_report(&err);
        }
    }

    fit_item *items = calloc(pairs.count, sizeof *items);
    if (!items) {
        md_pair_list_free(&pairs);
        fprintf(stderr, "metricdepth: error: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    for (size_t i = 0; i < pairs.count; i++)
        items[i].pair = &pairs.items[i];

    md_scale_model *smodel = NULL;
    if (scale_model_s && md_scale_model_load(scale_model_s, &smodel, &err) != MD_OK) {
        free(items);
        md_pair_list_free(&pairs);
        return cli_report(&err);
    }
    fit_job job = {.eo = md_eval_options_default(), .items = items, .n = pairs.count};
    job.eo.model_path = model_s;
    job.eo.model_options.threads = threads;
    job.eo.cache_dir = no_cache ? NULL : cache_s;
    job.eo.oracle_method = (md_scale_method)method;
    job.eo.lo = lo;
    job.eo.hi = hi;
    job.eo.scale_model = smodel;
    pthread_mutex_init(&job.lock, NULL);
    fprintf(stderr, "fit-scales: %zu pairs, model %s, %d job%s%s%s\n", pairs.count, model_s, jobs,
            jobs > 1 ? "s" : "", job.eo.cache_dir ? ", cache " : "",
            job.eo.cache_dir ? job.eo.cache_dir : "");
    cli_progress_start(&job.progress, "fit-scales", pairs.count);
    pthread_t tids[64];
    int started = 0;
    for (int j = 1; j < jobs; j++) {
        if (pthread_create(&tids[started], NULL, worker, &job) != 0)
            break;
        started++;
    }
    worker(&job);
    for (int j = 0; j < started; j++)
        pthread_join(tids[j], NULL);
    pthread_mutex_destroy(&job.lock);
    if (job.fatal) {
        if (job.progress.tty)
            fputc('\n', stderr);
        free(items);
        md_pair_list_free(&pairs);
        md_scale_model_free(smodel);
        return cli_report(&job.fatal_err);
    }
    cli_progress_finish(&job.progress);

    /* trim, write, summarise */
    size_t n = pairs.count, n_ok = 0, n_cached = 0;
    double *scales = malloc((n ? n : 1) * sizeof *scales);
    unsigned char *keep = calloc(n ? n : 1, 1), *keep_ok = calloc(n ? n : 1, 1);
    md_scales_table table = {0};
    rc = CLI_EXIT_OK;
    if (!scales || !keep || !keep_ok) {
        fprintf(stderr, "metricdepth: error: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].ok)
            scales[n_ok++] = items[i].row.scale;
        n_cached += items[i].cached;
    }
    if (n_ok == 0) {
        fprintf(stderr, "metricdepth: error: no pair could be fitted; nothing written\n");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    size_t n_kept = n_ok;
    if (md_percentile_keep(scales, n_ok, tlo, thi, keep_ok, &n_kept, &err) != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }
    for (size_t i = 0, k = 0; i < n; i++)
        if (items[i].ok)
            keep[i] = keep_ok[k++];
    for (size_t i = 0; i < n && rc == CLI_EXIT_OK; i++) {
        if (!items[i].ok || !keep[i])
            continue;
        char rgb_abs[4096], depth_abs[4096];
        absolute(rgb_abs, sizeof rgb_abs, items[i].pair->rgb_path);
        absolute(depth_abs, sizeof depth_abs, items[i].pair->depth_path);
        md_scales_row r = items[i].row;
        r.rgb = rgb_abs;
        r.depth = depth_abs;
        r.divisor = items[i].pair->depth_divisor;
        r.encoding = items[i].pair->encoding;
        if (md_scales_append(&table, &r, &err) != MD_OK)
            rc = cli_report(&err);
    }
    if (rc == CLI_EXIT_OK && md_scales_write(out_s, &table, &err) != MD_OK)
        rc = cli_report(&err);
    if (rc != CLI_EXIT_OK)
        goto done;
    print_summary(items, n, keep, n_kept, scales, n_ok, scale_model_s != NULL, lo, hi);
    fprintf(stderr, "wrote %zu rows to %s (%zu of %zu predictions from the cache, %zu failed%s)\n",
            n_kept, out_s, n_cached, n, job.failed,
            n_kept < n_ok ? ", some trimmed" : "");
    rc = job.failed ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
done:
    md_scale_model_free(smodel);
    md_scales_free(&table);
    free(scales);
    free(keep);
    free(keep_ok);
    free(items);
    md_pair_list_free(&pairs);
    return rc;
}
