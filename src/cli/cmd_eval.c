/* metricdepth eval: the seed report's evaluation end to end (Tables 1 and 2,
 * Figs. 1-3, the scale scatter) on a train and a test set. */
#include "cli.h"
#include "metricdepth_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run(int argc, char **argv);

const cli_command cmd_eval = {
    "eval", "evaluation report: unscaled / oracle / adaptive depth, tables and figures",
    "usage: metricdepth eval --data DIR|LIST... [--test DIR|LIST...] [options] -o REPORT_DIR\n\n"
    "Evaluates the base depth model on a training and a test set the way the seed\n"
    "report does. For every RGB-D pair: the base prediction (cached), the oracle\n"
    "scale s* = argmin over [LO,HI] of W1(s*pred, gt), the scale model's ln s and\n"
    "its confidence (with --scale-model), and depth metrics of the unscaled,\n"
    "oracle-scaled, adaptive-scaled (the prediction as it is) and gated adaptive\n"
    "(what predict applies by default) depth. Writes into REPORT_DIR:\n"
    "  report.md, index.html  data, models, protocol, Table 1 (MAE/RMSE of the\n"
    "                         predicted vs oracle ln s), Table 2 (AbsRel, RMSE,\n"
    "                         delta1 and SqRel, RMSE-log, log10, SILog, delta2,\n"
    "                         delta3), the gap closed, every figure\n"
    "  per_image.csv          one row per pair\n"
    "  summary.json           every number of the tables\n"
    "  fig/panel_{train,test}_K.png  RGB | gt | unscaled | gated | oracle | error\n"
    "  fig/clouds_test.png    point clouds of the first test image over the gt cloud\n"
    "  fig/scatter.png        predicted vs oracle ln s (with --scale-model)\n"
    "  fig/loss.png           the scale model's loss curves (when MODEL.log.csv exists\n"
    "                         beside the scale model, as 'metricdepth train' writes)\n"
    "Without --scale-model the adaptive columns are left out and the report says so.\n"
    "A baseline row, one constant scale exp(mean ln s* of the training set) for\n"
    "every image, shows what a predictor that ignores the image achieves.\n"
    "An oracle scale on the range limit (its optimum lies beyond) is counted and\n"
    "warned about. The cache holds exactly what a fresh run computes: the numbers\n"
    "are the same with and without it.\n"
    "A bad pair is reported and skipped, the rest are evaluated (exit 3).\n\n"
    "options:\n"
    "  --data DIR|LIST      training set: dataset folders or pair lists (plain\n"
    "                       arguments after it belong to it too)\n"
    "  --test DIR|LIST      test set (plain arguments after it belong to it)\n"
    "  --split fraction:F:SEED  instead of --test: hold out a random fraction F of\n"
    "                       --data as the test set (e.g. fraction:0.2:0)\n"
    "  -o, --output DIR     report folder (required)\n"
    "  --model FILE         base depth model (default: the installed FastDepth)\n"
    "  --scale-model FILE   scale model from 'metricdepth train'\n"
    "  --protocol P         seed (default: gt > 0 and pred > 0, whole image) or eigen\n"
    "  --range LO,HI        oracle scale range (default 0.1,2)\n"
    "  --panels N           depth panels per split (default 3, 0 = none)\n"
    "  --title TEXT         report title\n"
    "  --cache DIR          prediction cache (default REPORT_DIR/.metricdepth-cache;\n"
    "                       'metricdepth fit-scales --cache' uses the same format)\n"
    "  --no-cache           neither read nor write the cache\n"
    "  --shard K/N          only fill the cache with the base predictions of the\n"
    "                       K-th of N equal parts of the pairs (e.g. one job of a\n"
    "                       Slurm array, sharing --cache); then one run without\n"
    "                       --shard writes the report from the cache\n"
    "  --threads N          threads of the base model (default: all cores)\n"
    "  --precision P        fp32 (default), bf16 or auto: the base model's arithmetic\n"
    "                       (see predict --help); cached per precision\n"
    "  -h, --help           this text\n\n"
    "examples:\n"
    "  metricdepth eval --data ../shared/data/sun3d_studyroom/fragment-1-rgbd-frames \\\n"
    "      --test ../shared/data/sun3d_studyroom/fragment-2-rgbd-frames \\\n"
    "      --scale-model scale.safetensors -o report\n"
    "  metricdepth eval --data pairs.txt --split fraction:0.2:0 -o report   # no scale CNN\n"
    "  metricdepth eval --data train.txt --test test.txt --protocol eigen --panels 1 -o r\n",
    run};


/* "A, B (N pairs)" */
static void describe_sources(char *buf, size_t size, const char *const *src, int n,
                             size_t pairs, const char *extra)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len + 1 < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", src[i]);
    if (len + 1 < size)
        snprintf(buf + len, size - len, "%s%s (%zu pairs)", n ? "" : "none", extra ? extra : "",
                 pairs);
}

typedef struct {
    cli_progress progress;
    md_report *report;
} eval_ui;

static void on_progress(void *user, const md_eval_progress *p)
{
    eval_ui *ui = user;
    if (p->error) {
        if (ui->progress.tty)
            fputc('\n', stderr);
        fprintf(stderr, "metricdepth: error: %s: %s (skipped)\n", p->item,
                p->error->message[0] ? p->error->message : md_status_name(p->error->code));
    }
    cli_progress_step(&ui->progress, p->item);
}

static void on_view(void *user, const md_eval_view *v)
{
    md_report_view(((eval_ui *)user)->report, v);
}

static void print_tables(const md_eval_summary sums[2], double s_const)
{
    static const char *sname[2] = {"train", "test"};
    printf("%-6s %-9s %5s %8s %8s %8s %8s\n", "split", "method", "n", "AbsRel", "RMSE", "delta1",
           "SILog");
    for (int s = 0; s < 2; s++) {
        if (sums[s].n == 0)
            continue;
        const md_metrics *ms[5] = {&sums[s].unscaled, &sums[s].oracle, &sums[s].adaptive,
                                   &sums[s].gated, &sums[s].constant};
        static const char *mn[5] = {"unscaled", "oracle", "adaptive", "gated", "constant"};
        for (int m = 0; m < 5; m++)
            if (m < 2 || (m < 4 && sums[s].has_adaptive) || (m == 4 && sums[s].has_constant))
                printf("%-6s %-9s %5zu %8.4f %8.4f %8.4f %8.4f\n", sname[s], mn[m], sums[s].n,
                       ms[m]->abs_rel, ms[m]->rmse, ms[m]->delta1, ms[m]->silog);
        if (sums[s].has_constant)
            printf("%-6s baseline: constant scale %.4f, gap closed %.1f %%\n", sname[s], s_const,
                   100 * sums[s].gap_closed_constant);
        if (sums[s].has_adaptive)
            printf("%-6s ln s MAE %.4f RMSE %.4f, gap closed %.1f %%, gated %.1f %% (scale "
                   "applied to %zu of %zu)\n",
                   sname[s], sums[s].log_mae, sums[s].log_rmse, 100 * sums[s].gap_closed,
                   100 * sums[s].gap_closed_gated, sums[s].n_applied, sums[s].n);
        if (sums[s].at_limit)
            fprintf(stderr, "warning: %s: the oracle scale sits on the range limit for %zu of "
                            "%zu images (their optimum lies beyond it)\n",
                    sname[s], sums[s].at_limit, sums[s].n);
    }
}

static int run(int argc, char **argv)
{
    const char *data_s = NULL, *test_s = NULL, *split_s = NULL, *out_s = NULL, *model_s = NULL;
    const char *scale_model_s = NULL, *protocol_s = "seed", *range_s = "0.1,2", *panels_s = "3";
    const char *title_s = NULL, *cache_s = NULL, *threads_s = NULL, *shard_s = NULL;
    const char *precision_s = "fp32";
    bool no_cache = false;
    int shard_k = 1, shard_n = 1;
    cli_option options[] = {{"data", 0, true, &data_s, NULL},
                            {"test", 0, true, &test_s, NULL},
                            {"split", 0, true, &split_s, NULL},
                            {"output", 'o', true, &out_s, NULL},
                            {"model", 0, true, &model_s, NULL},
                            {"scale-model", 0, true, &scale_model_s, NULL},
                            {"protocol", 0, true, &protocol_s, NULL},
                            {"range", 0, true, &range_s, NULL},
                            {"panels", 0, true, &panels_s, NULL},
                            {"title", 0, true, &title_s, NULL},
                            {"cache", 0, true, &cache_s, NULL},
                            {"no-cache", 0, false, NULL, &no_cache},
                            {"threads", 0, true, &threads_s, NULL},
                            {"precision", 0, true, &precision_s, NULL},
                            {"shard", 0, true, &shard_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    const char **src[2] = {NULL, NULL};
    int nsrc[2] = {0, 0};
    int rc = cli_parse_sets(&cmd_eval, argc, argv, options, "data", "test", src, nsrc);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    int protocol = md_protocol_parse(protocol_s);
    double frac = 0;
    int panels = 3, threads = 0;
    unsigned long long seed = 0;
    md_eval_options eo = md_eval_options_default();
    if (nsrc[0] == 0 && nsrc[1] == 0)
        rc = cli_usage_error(&cmd_eval, "give the data: --data DIR|LIST [--test DIR|LIST]");
    else if (!out_s)
        rc = cli_usage_error(&cmd_eval, "give the report folder with -o DIR");
    else if (protocol < 0)
        rc = cli_usage_error(&cmd_eval, "--protocol is seed or eigen (got '%s')", protocol_s);
    else if (!cli_parse_pair(range_s, &eo.lo, &eo.hi) || eo.lo <= 0 || eo.lo > eo.hi)
        rc = cli_usage_error(&cmd_eval, "--range wants LO,HI with 0 < LO <= HI");
    else if (!cli_parse_int(panels_s, &panels) || panels < 0 || panels > 20)
        rc = cli_usage_error(&cmd_eval, "--panels wants a number in 0..20");
    else if (threads_s && (!cli_parse_int(threads_s, &threads) || threads < 0))
        rc = cli_usage_error(&cmd_eval, "--threads wants a number >= 0");
    else if (md_precision_parse(precision_s) < 0)
        rc = cli_usage_error(&cmd_eval, "--precision is fp32, bf16 or auto (got '%s')",
                             precision_s);
    else if (shard_s && !cli_parse_shard(shard_s, &shard_k, &shard_n))
        rc = cli_usage_error(&cmd_eval, "--shard wants K/N with 1 <= K <= N (got '%s')", shard_s);
    else if (shard_s && no_cache)
        rc = cli_usage_error(&cmd_eval, "--shard fills the prediction cache: drop --no-cache");
    else if (split_s && nsrc[1] > 0)
        rc = cli_usage_error(&cmd_eval, "give either --test or --split, not both");
    else if (split_s && nsrc[0] == 0)
        rc = cli_usage_error(&cmd_eval, "--split divides --data: give --data");
    else if (split_s) {
        char tail;
        if (sscanf(split_s, "fraction:%lf:%llu%c", &frac, &seed, &tail) != 2 ||
            !(frac > 0 && frac < 1))
            rc = cli_usage_error(&cmd_eval,
                                 "--split wants fraction:F:SEED with 0 < F < 1 (got '%s')",
                                 split_s);
    }
    if (rc != 0) {
        free(src[0]);
        free(src[1]);
        return rc;
    }
    eo.protocol = (md_protocol)protocol;
    eo.model_options.threads = threads;
    eo.model_options.precision = (md_precision)md_precision_parse(precision_s);

    md_error err = {0};
    md_pair_list lists[2] = {{0}, {0}}, given = {0};
    md_scale_model *smodel = NULL;
    md_evaluator *ev = NULL;
    md_report *report = NULL;
    md_eval_set set = {0};
    char model_buf[4096], cache_buf[4096];
    for (int s = 0; s < 2 && rc == 0; s++)
        for (int i = 0; i < nsrc[s] && rc == 0; i++)
            if (cli_collect_pairs(src[s][i], split_s ? &given : &lists[s], &err) != 0)
                rc = cli_report(&err);
    if (rc == 0 && split_s &&
        md_eval_split_random(&given, frac, seed, &lists[0], &lists[1], &err) != MD_OK)
        rc = cli_report(&err);
    if (rc == 0 && lists[0].count + lists[1].count == 0) {
        fprintf(stderr, "metricdepth: error: no RGB-D pairs found in the given datasets\n");
        rc = CLI_EXIT_FAILURE;
    }
    if (rc == 0 && !model_s) {
        if (md_default_model_path(model_buf, sizeof model_buf, &err) != MD_OK)
            rc = cli_report(&err);
        model_s = model_buf;
    }
    if (rc == 0 && !no_cache) {
        cache_s = cli_report_cache(out_s, cache_s, cache_buf, sizeof cache_buf, &err);
        if (!cache_s)
            rc = cli_report(&err);
        eo.cache_dir = cache_s;
    }
    if (rc == 0 && scale_model_s && md_scale_model_load(scale_model_s, &smodel, &err) != MD_OK)
        rc = cli_report(&err);
    eo.model_path = model_s;
    eo.scale_model = smodel;
    if (rc == 0 && (cli_make_dirs(out_s, &err) != MD_OK ||
                    md_evaluator_create(&eo, &ev, &err) != MD_OK))
        rc = cli_report(&err);

    if (rc == 0 && shard_s) {
        /* a share of the base predictions into the cache; the report comes
         * from one run without --shard that finds them all there */
        size_t n = lists[0].count + lists[1].count, b = 0, e = 0, fails = 0, hits = 0;
        md_shard_range(n, shard_k, shard_n, &b, &e, &err);
        cli_progress prog;
        cli_progress_start(&prog, "eval shard", e - b);
        for (size_t i = b; i < e; i++) {
            const md_pair *pair = i < lists[0].count ? &lists[0].items[i]
                                                     : &lists[1].items[i - lists[0].count];
            md_depth pred = {0};
            md_error e2 = {0};
            int cached = 0;
            if (md_eval_base(ev, pair, &pred, NULL, &cached, &e2) != MD_OK) {
                if (prog.tty)
                    fputc('\n', stderr);
                fprintf(stderr, "metricdepth: error: %s: %s (skipped)\n", pair->rgb_path,
                        e2.message);
                fails++;
            }
            hits += cached != 0;
            md_depth_free(&pred);
            cli_progress_step(&prog, pair->rgb_path);
        }
        cli_progress_finish(&prog);
        fprintf(stderr,
                "shard %d/%d: pairs %zu..%zu of %zu, %zu predictions in %s (%zu were there), "
                "%zu failed; when every shard is done, run eval without --shard with the same "
                "--cache for the report\n",
                shard_k, shard_n, b + 1, e, n, e - b - fails, cache_s, hits, fails);
        rc = fails == e - b && e > b ? CLI_EXIT_FAILURE : fails ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
        goto cleanup;
    }
    char train_desc[2048], test_desc[2048], base_desc[1024], scale_desc[1024], log_path[4096];
    if (rc == 0) {
        describe_sources(train_desc, sizeof train_desc, src[0], nsrc[0], lists[0].count,
                         split_s ? " minus the held-out test pairs" : NULL);
        if (split_s) {
            char buf[256];
            snprintf(buf, sizeof buf, "random %.0f %% of the training data (seed %llu)",
                     100 * frac, seed);
            describe_sources(test_desc, sizeof test_desc, (const char *const[]){buf}, 1,
                             lists[1].count, NULL);
        } else {
            describe_sources(test_desc, sizeof test_desc, src[1], nsrc[1], lists[1].count, NULL);
        }
        const char *mslash = strrchr(model_s, '/');
        snprintf(base_desc, sizeof base_desc, "%s%s", mslash ? mslash + 1 : model_s,
                 strstr(model_s, "fastdepth") ? " (FastDepth, NYU-trained)" : "");
        if (smodel)
            snprintf(scale_desc, sizeof scale_desc, "%s: %s", scale_model_s,
                     md_scale_model_describe(smodel));
        struct stat sb;
        if (smodel)
            cli_sibling_path(log_path, sizeof log_path, scale_model_s, ".log.csv");
        md_report_options ro = {out_s, panels,
                                smodel && stat(log_path, &sb) == 0 ? log_path : NULL,
                                {0}};
        ro.info.title = title_s ? title_s : "metricdepth evaluation report";
        ro.info.train_data = train_desc;
        ro.info.test_data = test_desc;
        ro.info.train_sources = src[0]; /* with --split, the --data sources */
        ro.info.n_train_sources = nsrc[0];
        ro.info.test_sources = src[1];
        ro.info.n_test_sources = nsrc[1];
        ro.info.base_model = base_desc;
        ro.info.scale_model = smodel ? scale_desc : NULL;
        ro.info.protocol = protocol == MD_PROTOCOL_EIGEN ? "eigen" : "seed";
        ro.info.lo = eo.lo;
        ro.info.hi = eo.hi;
        if (md_report_create(&ro, &report, &err) != MD_OK)
            rc = cli_report(&err);
    }
    if (rc == 0) {
        fprintf(stderr, "eval: %zu train + %zu test pairs, model %s%s%s\n", lists[0].count,
                lists[1].count, model_s, scale_model_s ? ", scale model " : "",
                scale_model_s ? scale_model_s : "");
        eval_ui ui = {.report = report};
        cli_progress_start(&ui.progress, "eval", lists[0].count + lists[1].count);
        md_eval_callbacks cb = {on_progress, on_view, &ui};
        md_status st = md_eval_run(ev, &lists[0], &lists[1], &cb, &set, &err);
        cli_progress_finish(&ui.progress);
        if (st != MD_OK)
            rc = cli_report(&err);
        else if (set.count == 0) {
            fprintf(stderr, "metricdepth: error: no pair could be evaluated; nothing written\n");
            rc = CLI_EXIT_FAILURE;
        }
    }
    if (rc == 0) {
        size_t hits = 0;
        for (size_t i = 0; i < set.count; i++)
            hits += set.items[i].cached != 0;
        char notes[512];
        snprintf(notes, sizeof notes,
                 "%zu pairs evaluated (%zu base predictions from the cache), %zu failed and "
                 "skipped.",
                 set.count, hits, set.failed);
        md_eval_summary sums[2];
        md_report_set_notes(report, notes);
        if (md_report_finish(report, &set, sums, &err) != MD_OK) {
            rc = cli_report(&err);
        } else {
            print_tables(sums, set.constant_scale);
            fprintf(stderr,
                    "wrote %s/report.md, index.html, per_image.csv, summary.json and %zu "
                    "figures\n",
                    out_s, md_report_figure_count(report));
            rc = set.failed ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
        }
    }
cleanup:
    md_report_free(report);
    md_evaluator_free(ev);
    md_scale_model_free(smodel);
    md_eval_set_free(&set);
    md_pair_list_free(&lists[0]);
    md_pair_list_free(&lists[1]);
    md_pair_list_free(&given);
    free(src[0]);
    free(src[1]);
    return rc;
}
