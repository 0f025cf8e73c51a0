/* metricdepth eval-anchors: metric scale from sparse anchors, measured. K
 * anchors are drawn from each image's ground truth (with noise and gross
 * outliers), the anchor fits and the anchor scale map are applied to the base
 * network's depth, and AbsRel / delta1 are compared with the base network,
 * the global W1 oracle and the per-cell oracle; on sequences, the frame-to-
 * frame jitter of ln s raw and filtered. */
#include "cli.h"
#include "metricdepth_eval.h"
#include "metricdepth_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const cli_command cmd_eval_anchors = {
    "eval-anchors", "metric scale from sparse anchors and scale maps, measured on RGB-D data",
    "usage: metricdepth eval-anchors [options] [NAME=]DIR|LIST[+DIR|LIST...]... -o OUT_DIR\n\n"
    "For every RGB-D pair of each dataset: the base network's depth (cached), then K\n"
    "anchors drawn from the ground truth (K distinct pixels valid in both maps, depth\n"
    "times 1 + noise N(0,1), and with probability --outliers a gross error: depth\n"
    "times f, |ln f| uniform in [ln 1.5, ln 4], either sign), for every K, noise\n"
    "level, outlier rate and seed. Rows (seed protocol, AbsRel and delta1, mean over\n"
    "the dataset's images, then mean and sd over the seeds):\n"
    "  base network             the network's depth as it is\n"
    "  global W1 oracle         one scale per image, W1-optimal against the ground truth\n"
    "  per-cell W1 oracle       one W1-optimal scale per cell of a --cells grid: the\n"
    "                           ceiling of an image-only scale map\n"
    "  image only               the encoder scale model (ln s from the network's\n"
    "                           features) and one per cell (an image-only scale map),\n"
    "                           each trained on the other datasets, ungated and gated\n"
    "  anchors robust           the default global fit (skipped median of log ratios,\n"
    "                           moved towards the least relative error)\n"
    "  anchors median, w1, lsq  the plain global fits\n"
    "  anchors scale-shift      scale and shift in inverse depth (K >= 3)\n"
    "  anchors scale map        the pixel-wise scale map from the anchors\n"
    "Datasets named in --sequences are also run as videos (frames in file order,\n"
    "one run per folder, time = frame number / --fps): each frame's robust fit (raw\n"
    "ln s) is filtered by the scale filter with and without the depth-level input,\n"
    "and the frame-to-frame jitter of ln s (sd of its differences) and of the metric\n"
    "depth level, and AbsRel, are reported raw and filtered.\n"
    "Writes into OUT_DIR: report.md (the tables), results.csv (every row, condition\n"
    "and seed), sequences.csv, cells.csv (per-cell oracle ln s*: the training targets\n"
    "of an image-only scale map), summary.json and fig/abs_rel_vs_k_NAME.png.\n"
    "A bad pair is reported and skipped (exit 3).\n\n"
    "options:\n"
    "  NAME=SRC+SRC        a dataset made of several folders or pair lists, named\n"
    "                      NAME in the tables (default name: the folder's)\n"
    "  -o, --output DIR    report folder (required)\n"
    "  --k LIST            anchor counts (default 1,4,16,64,256)\n"
    "  --noise LIST        relative depth noise (default 0,0.02,0.05)\n"
    "  --outliers LIST     gross outlier rates (default 0,0.1)\n"
    "  --seeds N           seeds per condition (default 3)\n"
    "  --main N,O          the condition of the main table and the plot (default\n"
    "                      0.02,0.1)\n"
    "  --cells CXxCY       the per-cell oracle's grid (default 4x4)\n"
    "  --sequences LIST    dataset names to run as videos too\n"
    "  --seq-k LIST        anchor counts for the videos (default 4,16,64)\n"
    "  --fps F             frame rate of the frame numbers (default 30)\n"
    "  --time-constant S   the scale filter's time constant (default 0.2 s)\n"
    "  --no-image-map      leave out the image-only rows (they train 1 + cells\n"
    "                      scale models per dataset)\n"
    "  --model FILE        base depth model (default: the installed FastDepth)\n"
    "  --range LO,HI       oracle scale range (default 0.1,2)\n"
    "  --cache DIR         prediction cache (default OUT_DIR/.metricdepth-cache)\n"
    "  --no-cache          neither read nor write the cache\n"
    "  --threads N         threads of the base model (default: all cores)\n"
    "  -h, --help          this text\n\n"
    "example (the tables of docs/anchors.md):\n"
    "  D=../shared/data\n"
    "  G=$D/nyu_demo_metric3d+$D/nyu_demo_unidepth+$D/slambook2_kinect+$D/open3d_testdata_rgbd\n"
    "  metricdepth eval-anchors -o anchors-report --sequences sun3d-f1,sun3d-f2,7scenes \\\n"
    "      sun3d-f1=$D/sun3d_studyroom/fragment-1-rgbd-frames \\\n"
    "      sun3d-f2=$D/sun3d_studyroom/fragment-2-rgbd-frames \\\n"
    "      7scenes=$D/7scenes_redkitchen nyu-tum-kinect=$G\n",
    run};

/* "1,4,16" into v (at most MD_ANCHOR_MAX_LIST numbers). */
static bool parse_list(const char *s, double *v, int *n)
{
    char buf[512];
    if (!s || strlen(s) >= sizeof buf)
        return false;
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n == MD_ANCHOR_MAX_LIST || !cli_parse_double(tok, &v[*n]))
            return false;
        ++*n;
    }
    return *n > 0;
}

static bool parse_counts(const char *s, int *k, int *n)
{
    double v[MD_ANCHOR_MAX_LIST];
    if (!parse_list(s, v, n))
        return false;
    for (int i = 0; i < *n; i++) {
        if (!(v[i] >= 1 && v[i] <= 1e6 && v[i] == floor(v[i])))
            return false;
        k[i] = (int)v[i];
    }
    return true;
}

static bool parse_fractions(const char *s, double *v, int *n)
{
    if (!parse_list(s, v, n))
        return false;
    for (int i = 0; i < *n; i++)
        if (!(v[i] >= 0 && v[i] <= 1))
            return false;
    return true;
}

/* NAME=SRC+SRC or SRC: the name (default the folder's) and the pairs. */
static int collect(const char *arg, char *name, size_t size, md_pair_list *pairs, md_error *err)
{
    const char *eq = strchr(arg, '=');
    const char *src = eq ? eq + 1 : arg;
    if (eq) {
        snprintf(name, size, "%.*s", (int)(eq - arg), arg);
    } else {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", arg);
        size_t n = strlen(tmp);
        while (n > 1 && tmp[n - 1] == '/')
            tmp[--n] = '\0';
        const char *b = strrchr(tmp, '/');
        snprintf(name, size, "%s", b ? b + 1 : tmp);
    }
    for (char *c = name; *c; c++) /* the name becomes a file name and a CSV field */
        if (*c == ',' || *c == '/' || *c == ' ' || *c == '"')
            *c = '_';
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", src);
    for (char *tok = strtok(buf, "+"); tok; tok = strtok(NULL, "+"))
        if (cli_collect_pairs(tok, pairs, err) != 0)
            return -1;
    return 0;
}

static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && (p = strstr(p, name)) != NULL; p++)
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

static void on_progress(void *user, const md_eval_progress *p)
{
    cli_progress *progress = user;
    if (p->error) {
        if (progress->tty)
            fputc('\n', stderr);
        fprintf(stderr, "metricdepth: error: %s: %s (skipped)\n", p->item,
                p->error->message[0] ? p->error->message : md_status_name(p->error->code));
    }
    cli_progress_step(progress, p->item);
}

static int run(int argc, char **argv)
{
    const char *out_s = NULL, *model_s = NULL, *k_s = "1,4,16,64,256", *noise_s = "0,0.02,0.05";
    const char *out_rate_s = "0,0.1", *seeds_s = "3", *main_s = "0.02,0.1", *cells_s = "4x4";
    const char *seq_s = NULL, *seq_k_s = "4,16,64", *fps_s = "30", *tau_s = NULL;
    const char *range_s = "0.1,2", *cache_s = NULL, *threads_s = "0";
    bool no_cache = false, no_image_map = false;
    cli_option options[] = {{"output", 'o', true, &out_s, NULL},
                            {"no-image-map", 0, false, NULL, &no_image_map},
                            {"model", 0, true, &model_s, NULL},
                            {"k", 0, true, &k_s, NULL},
                            {"noise", 0, true, &noise_s, NULL},
                            {"outliers", 0, true, &out_rate_s, NULL},
                            {"seeds", 0, true, &seeds_s, NULL},
                            {"main", 0, true, &main_s, NULL},
                            {"cells", 0, true, &cells_s, NULL},
                            {"sequences", 0, true, &seq_s, NULL},
                            {"seq-k", 0, true, &seq_k_s, NULL},
                            {"fps", 0, true, &fps_s, NULL},
                            {"time-constant", 0, true, &tau_s, NULL},
                            {"range", 0, true, &range_s, NULL},
                            {"cache", 0, true, &cache_s, NULL},
                            {"no-cache", 0, false, NULL, &no_cache},
                            {"threads", 0, true, &threads_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos)
        return CLI_EXIT_FAILURE;
    int npos = 0;
    int rc = cli_parse(&cmd_eval_anchors, argc, argv, options, pos, &npos);
    if (rc != 0) {
        free(pos);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    md_anchor_eval_options ao = md_anchor_eval_defaults();
    double main_noise = 0, main_out = 0;
    int threads = 0;
    if (npos == 0)
        rc = cli_usage_error(&cmd_eval_anchors, "give at least one dataset");
    else if (!out_s)
        rc = cli_usage_error(&cmd_eval_anchors, "give the report folder with -o DIR");
    else if (!parse_counts(k_s, ao.k, &ao.n_k) || !parse_counts(seq_k_s, ao.seq_k, &ao.n_seq_k))
        rc = cli_usage_error(&cmd_eval_anchors,
                             "--k and --seq-k want whole counts >= 1, comma-separated (at most %d)",
                             MD_ANCHOR_MAX_LIST);
    else if (!parse_fractions(noise_s, ao.noise, &ao.n_noise) ||
             !parse_fractions(out_rate_s, ao.outliers, &ao.n_outliers))
        rc = cli_usage_error(&cmd_eval_anchors,
                             "--noise and --outliers want fractions in [0, 1], comma-separated");
    else if (!cli_parse_int(seeds_s, &ao.seeds) || ao.seeds < 1 || ao.seeds > MD_ANCHOR_MAX_SEEDS)
        rc = cli_usage_error(&cmd_eval_anchors, "--seeds wants 1..%d", MD_ANCHOR_MAX_SEEDS);
    else if (!cli_parse_pair(main_s, &main_noise, &main_out))
        rc = cli_usage_error(&cmd_eval_anchors, "--main wants NOISE,OUTLIERS");
    else if (sscanf(cells_s, "%dx%d", &ao.cells_x, &ao.cells_y) != 2 || ao.cells_x < 1 ||
             ao.cells_y < 1 || ao.cells_x > 64 || ao.cells_y > 64)
        rc = cli_usage_error(&cmd_eval_anchors, "--cells wants CXxCY, e.g. 4x4");
    else if (!cli_parse_double(fps_s, &ao.fps) || ao.fps <= 0)
        rc = cli_usage_error(&cmd_eval_anchors, "--fps wants a positive number");
    else if (tau_s && (!cli_parse_double(tau_s, &ao.filter.time_constant_s) ||
                       ao.filter.time_constant_s <= 0))
        rc = cli_usage_error(&cmd_eval_anchors, "--time-constant wants seconds > 0");
    else if (!cli_parse_pair(range_s, &ao.lo, &ao.hi) || ao.lo <= 0 || ao.lo > ao.hi)
        rc = cli_usage_error(&cmd_eval_anchors, "--range wants LO,HI with 0 < LO <= HI");
    else if (!cli_parse_int(threads_s, &threads) || threads < 0)
        rc = cli_usage_error(&cmd_eval_anchors, "--threads wants a number >= 0");
    bool main_ok = false;
    for (int a = 0; a < ao.n_noise; a++)
        for (int b = 0; b < ao.n_outliers; b++)
            main_ok |= fabs(ao.noise[a] - main_noise) < 1e-12 &&
                       fabs(ao.outliers[b] - main_out) < 1e-12;
    if (rc == 0 && !main_ok)
        rc = cli_usage_error(&cmd_eval_anchors,
                             "--main %s is not one of the --noise x --outliers conditions", main_s);
    ao.seq_noise = main_noise;
    ao.seq_outliers = main_out;
    ao.image_maps = !no_image_map;

    md_error err = {0};
    int n_sets = 0;
    char names[64][64];
    md_pair_list lists[64];
    memset(lists, 0, sizeof lists);
    for (int i = 0; rc == 0 && i < npos; i++) {
        if (n_sets == 64)
            rc = cli_usage_error(&cmd_eval_anchors, "at most 64 datasets");
        else if (collect(pos[i], names[n_sets], sizeof names[n_sets], &lists[n_sets], &err) != 0)
            rc = cli_report(&err);
        n_sets++;
    }
    free(pos);
    size_t total = 0;
    for (int s = 0; s < n_sets; s++)
        total += lists[s].count;
    if (rc == 0 && total == 0) {
        fprintf(stderr, "metricdepth: error: no RGB-D pairs found in the given datasets\n");
        rc = CLI_EXIT_FAILURE;
    }
    char model_buf[4096], cache_buf[4096];
    if (rc == 0 && !model_s) {
        if (md_default_model_path(model_buf, sizeof model_buf, &err) != MD_OK)
            rc = cli_report(&err);
        model_s = model_buf;
    }
    if (rc == 0 && cli_make_dirs(out_s, &err) != MD_OK)
        rc = cli_report(&err);
    md_eval_options eo = md_eval_options_default();
    eo.model_options.threads = threads;
    if (rc == 0 && !no_cache) {
        cache_s = cli_report_cache(out_s, cache_s, cache_buf, sizeof cache_buf, &err);
        if (!cache_s)
            rc = cli_report(&err);
        eo.cache_dir = cache_s;
    }
    eo.model_path = model_s;
    eo.features = ao.image_maps;
    md_evaluator *ev = NULL;
    md_anchor_eval *ae = NULL;
    if (rc == 0 && (md_evaluator_create(&eo, &ev, &err) != MD_OK ||
                    md_anchor_eval_create(&ao, &ae, &err) != MD_OK))
        rc = cli_report(&err);
    if (rc == 0) {
        fprintf(stderr, "eval-anchors: %zu pairs in %d datasets, model %s\n", total, n_sets,
                model_s);
        cli_progress progress;
        cli_progress_start(&progress, "eval-anchors", total);
        md_eval_callbacks cb = {on_progress, NULL, &progress};
        for (int s = 0; s < n_sets && rc == 0; s++)
            if (md_anchor_eval_dataset(ae, ev, names[s], &lists[s],
                                       seq_s && listed(seq_s, names[s]), &cb, &err) != MD_OK)
                rc = cli_report(&err);
        cli_progress_finish(&progress);
        if (rc == 0 && ao.image_maps && n_sets > 1) {
            cli_progress_start(&progress, "image-only scale models", total);
            if (md_anchor_eval_image_maps(ae, ev, &cb, &err) != MD_OK)
                rc = cli_report(&err);
            cli_progress_finish(&progress);
        }
    }
    size_t failed = ae ? md_anchor_eval_failed(ae) : 0;
    if (rc == 0 && failed == total) {
        fprintf(stderr, "metricdepth: error: no pair could be evaluated; nothing written\n");
        rc = CLI_EXIT_FAILURE;
    }
    if (rc == 0) {
        const char *slash = strrchr(model_s, '/');
        if (md_anchor_report_write(out_s, ae, slash ? slash + 1 : model_s, main_noise, main_out,
                                   &err) != MD_OK)
            rc = cli_report(&err);
        else {
            fprintf(stderr, "wrote %s/report.md (%zu of %zu pairs, %zu failed)\n", out_s,
                    total - failed, total, failed);
            rc = failed ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
        }
    }
    md_anchor_eval_free(ae);
    md_evaluator_free(ev);
    for (int s = 0; s < n_sets; s++)
        md_pair_list_free(&lists[s]);
    return rc;
}
