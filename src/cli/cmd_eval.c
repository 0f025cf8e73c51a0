/* metricdepth eval: the seed report's evaluation end to end (Tables 1 and 2,
 * Figs. 1-3, the scale scatter) on a train and a test set. */
#include "cli.h"
#include "base/base.h"
#include "eval/fit.h"
#include "report/report.h"
#include "report/figures.h"

#include <cjson/cJSON.h>
#include <errno.h>
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
    "scale s* = argmin over [LO,HI] of W1(s*pred, gt), the scale CNN's ln s (with\n"
    "--scale-model), and depth metrics of the unscaled, oracle-scaled and\n"
    "adaptive-scaled depth. Writes into REPORT_DIR:\n"
    "  report.md, index.html  data, models, protocol, Table 1 (MAE/RMSE of the\n"
    "                         predicted vs oracle ln s), Table 2 (AbsRel, RMSE,\n"
    "                         delta1 and SqRel, RMSE-log, log10, SILog, delta2,\n"
    "                         delta3), the gap closed, every figure\n"
    "  per_image.csv          one row per pair\n"
    "  summary.json           every number of the tables\n"
    "  fig/panel_{train,test}_K.png  RGB | gt | unscaled | adaptive | oracle | error\n"
    "  fig/clouds_test.png    point clouds of the first test image over the gt cloud\n"
    "  fig/scatter.png        predicted vs oracle ln s (with --scale-model)\n"
    "  fig/loss.png           the scale CNN's loss curves (when MODEL.log.csv exists\n"
    "                         beside the scale model, as 'metricdepth train' writes)\n"
    "Without --scale-model the adaptive columns are left out and the report says so.\n"
    "A baseline row, one constant scale exp(mean ln s* of the training set) for\n"
    "every image, shows what a predictor that ignores the image achieves.\n"
    "A bad pair is reported and skipped, the rest are evaluated (exit 3).\n\n"
    "options:\n"
    "  --data DIR|LIST      training set: dataset folders or pair lists (plain\n"
    "                       arguments after it belong to it too)\n"
    "  --test DIR|LIST      test set (plain arguments after it belong to it)\n"
    "  --split fraction:F:SEED  instead of --test: hold out a random fraction F of\n"
    "                       --data as the test set (e.g. fraction:0.2:0)\n"
    "  -o, --output DIR     report folder (required)\n"
    "  --model FILE         base depth model (default: the installed FastDepth)\n"
    "  --scale-model FILE   scale CNN from 'metricdepth train'\n"
    "  --protocol P         seed (default: gt > 0 and pred > 0, whole image) or eigen\n"
    "  --range LO,HI        oracle scale range (default 0.1,2)\n"
    "  --panels N           depth panels per split (default 3, 0 = none)\n"
    "  --title TEXT         report title\n"
    "  --cache DIR          prediction cache (default REPORT_DIR/.metricdepth-cache;\n"
    "                       'metricdepth fit-scales --cache' uses the same format)\n"
    "  --no-cache           neither read nor write the cache\n"
    "  --threads N          threads of the base model (default: all cores)\n"
    "  -h, --help           this text\n\n"
    "examples:\n"
    "  metricdepth eval --data ../shared/data/sun3d_studyroom/fragment-1-rgbd-frames \\\n"
    "      --test ../shared/data/sun3d_studyroom/fragment-2-rgbd-frames \\\n"
    "      --scale-model scale.safetensors -o report\n"
    "  metricdepth eval --data pairs.txt --split fraction:0.2:0 -o report   # no scale CNN\n"
    "  metricdepth eval --data train.txt --test test.txt --protocol eigen --panels 1 -o r\n",
    run};

typedef struct {
    md_pair *pair;
    int split;
} eval_pair;

typedef struct {
    const char *model_path, *scale_model_path, *cache_dir, *outdir;
    md_model_options mo;
    md_protocol protocol;
    double lo, hi;
    int panels;
    md_model *model;
    md_scale_model *smodel;
    int panels_done[2];
    int clouds_done;
    int fatal; /* the base model cannot be opened */
    md_eval_set results;
    const md_pair **result_pair; /* the pair of each result */
    size_t failed, cached;
    size_t figs_failed; /* figures that could not be written: the report is incomplete */
    /* figures written, relative to outdir */
    md_report_figure figs[64];
    char fig_paths[64][96];
    char fig_captions[64][512];
    size_t n_figs;
} eval_job;

static void add_figure(eval_job *job, const char *rel, const char *caption)
{
    if (job->n_figs >= sizeof job->figs / sizeof job->figs[0])
        return;
    size_t k = job->n_figs++;
    snprintf(job->fig_paths[k], sizeof job->fig_paths[k], "%s", rel);
    snprintf(job->fig_captions[k], sizeof job->fig_captions[k], "%s", caption);
    job->figs[k].path = job->fig_paths[k];
    job->figs[k].caption = job->fig_captions[k];
}

static int figure_rank(const char *rel)
{
    static const char *order[] = {"fig/panel_train", "fig/panel_test", "fig/clouds",
                                  "fig/scatter", "fig/loss"};
    for (int i = 0; i < 5; i++)
        if (strncmp(rel, order[i], strlen(order[i])) == 0)
            return i;
    return 5;
}

/* scale * pred as a new map (sharing pred's mask, which the caller must not
 * free through it). */
static md_status scaled_copy(const md_depth *pred, double scale, md_depth *out, md_error *err)
{
    md_status st = md_depth_alloc(out, pred->width, pred->height, err);
    if (st != MD_OK)
        return st;
    size_t n = (size_t)pred->width * (size_t)pred->height;
    for (size_t i = 0; i < n; i++)
        out->data[i] = (float)(pred->data[i] * scale);
    free(out->mask);
    out->mask = NULL;
    if (pred->mask) {
        out->mask = malloc(n);
        if (!out->mask) {
            md_depth_free(out);
            return md_fail(err, MD_ERR_NOMEM, "out of memory for a depth mask");
        }
        memcpy(out->mask, pred->mask, n);
    }
    return MD_OK;
}

static void stem_of(char *buf, size_t size, const md_pair *p)
{
    cli_stem(buf, size, p->rgb_path);
    for (char *c = buf; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            *c = '_';
}

/* NYU's camera scaled to the image (the default model's training camera). */
static md_intrinsics intrinsics_for(const md_pair *p, int width, int height)
{
    if (p->has_intrinsics)
        return p->K;
    md_intrinsics K = md_intrinsics_nyu();
    K.fx *= width / 640.0;
    K.cx *= width / 640.0;
    K.fy *= height / 480.0;
    K.cy *= height / 480.0;
    return K;
}

static md_status write_clouds(eval_job *job, const md_pair *pair, const md_depth *gt,
                              const md_depth *pred, double s_oracle, int has_adaptive,
                              double s_adaptive, md_error *err)
{
    md_intrinsics K = intrinsics_for(pair, gt->width, gt->height);
    int stride = gt->width > 320 ? 2 : 1;
    md_cloud gtc = {0}, preds[3] = {{0}};
    uint8_t colors[3][3];
    const char *titles[3];
    int n = 0;
    md_status st = md_cloud_from_depth(gt, NULL, &K, stride, 1.0, &gtc, err);
    static const uint8_t red[3] = {215, 40, 40}, blue[3] = {40, 80, 220}, green[3] = {30, 160, 60};
    char t[3][96];
    if (st == MD_OK) {
        st = md_cloud_from_depth(pred, NULL, &K, stride, 1.0, &preds[n], err);
        memcpy(colors[n], red, 3);
        snprintf(t[n], sizeof t[n], "unscaled (red) over ground truth");
        titles[n] = t[n];
        n++;
    }
    if (st == MD_OK && has_adaptive) {
        st = md_cloud_from_depth(pred, NULL, &K, stride, s_adaptive, &preds[n], err);
        memcpy(colors[n], blue, 3);
        snprintf(t[n], sizeof t[n], "adaptive s=%.3f (blue)", s_adaptive);
        titles[n] = t[n];
        n++;
    }
    if (st == MD_OK) {
        st = md_cloud_from_depth(pred, NULL, &K, stride, s_oracle, &preds[n], err);
        memcpy(colors[n], green, 3);
        snprintf(t[n], sizeof t[n], "oracle s*=%.3f (green)", s_oracle);
        titles[n] = t[n];
        n++;
    }
    if (st == MD_OK) {
        md_view v = md_view_for_cloud(&gtc, &K, gt->width, 480, 360, 30, 20);
        char path[4096];
        cli_path_join(path, sizeof path, job->outdir, "fig/clouds_test.png");
        st = md_fig_point_clouds(path, &gtc, preds, (const uint8_t(*)[3])colors, titles, n, &v,
                                 err);
        if (st == MD_OK) {
            char stem[128], cap[512];
            stem_of(stem, sizeof stem, pair);
            snprintf(cap, sizeof cap,
                     "Point clouds of test image %s (pixel stride %d, the pair's intrinsics), grey: "
                     "ground truth; seen from 30 deg to the side and 20 deg above, looking at "
                     "the ground truth's centroid",
                     stem, stride);
            add_figure(job, "fig/clouds_test.png", cap);
        }
    }
    md_cloud_free(&gtc);
    for (int i = 0; i < 3; i++)
        md_cloud_free(&preds[i]);
    return st;
}

/* The base model's depth for a pair: from the cache when there, else predicted
 * (and cached). img is loaded here when NULL is passed and a prediction is due. */
static md_status base_prediction(eval_job *job, const md_pair *pair, const md_image *img,
                                 md_depth *pred, md_error *err)
{
    char key[17], cache_path[4096] = "";
    md_status st = MD_OK;
    if (job->cache_dir) {
        st = md_fit_cache_key(job->model_path, pair->rgb_path, key, err);
        if (st != MD_OK)
            return st;
        char name[64];
        snprintf(name, sizeof name, "%s.npy", key);
        cli_path_join(cache_path, sizeof cache_path, job->cache_dir, name);
        md_error ignored = {0};
        if (md_fit_cache_load(cache_path, pred, &ignored) == MD_OK) {
            job->cached++;
            return MD_OK;
        }
    }
    md_image own = {0};
    if (!img) {
        st = md_image_load(pair->rgb_path, &own, err);
        if (st != MD_OK)
            return st;
        img = &own;
    }
    if (!job->model) {
        st = md_model_load(job->model_path, &job->mo, &job->model, err);
        if (st != MD_OK)
            job->fatal = 1; /* every pair would fail the same way */
    }
    if (st == MD_OK)
        st = md_model_predict(job->model, img, pred, err);
    if (st == MD_OK && job->cache_dir)
        st = md_fit_cache_store(cache_path, pred, err);
    md_image_free(&own);
    return st;
}

/* The constant-scale baseline of one evaluated pair: metrics of scale*pred. */
static md_status constant_metrics(eval_job *job, const md_pair *pair, double scale,
                                  md_metrics *out, md_error *err)
{
    md_depth pred = {0}, gt = {0}, sc = {0};
    size_t cached = job->cached;
    md_status st = base_prediction(job, pair, NULL, &pred, err);
    job->cached = cached; /* counted once, in the main pass */
    if (st == MD_OK)
        st = md_pair_load_depth(pair, &gt, err);
    if (st == MD_OK)
        st = scaled_copy(&pred, scale, &sc, err);
    if (st == MD_OK)
        st = md_metrics_compute(&sc, &gt, job->protocol, out, err);
    md_depth_free(&pred);
    md_depth_free(&gt);
    md_depth_free(&sc);
    return st;
}

static md_status eval_one(eval_job *job, const eval_pair *ep, md_error *err)
{
    md_image img = {0};
    md_depth pred = {0}, gt = {0}, sc_o = {0}, sc_a = {0};
    md_status st = md_image_load(ep->pair->rgb_path, &img, err);
    if (st == MD_OK)
        st = base_prediction(job, ep->pair, &img, &pred, err);
    if (st != MD_OK)
        goto done;
    st = md_pair_load_depth(ep->pair, &gt, err);
    if (st != MD_OK)
        goto done;
    if (img.width != gt.width || img.height != gt.height) {
        st = md_fail(err, MD_ERR_DATA, "%s: image %dx%d and depth %dx%d differ in size",
                     ep->pair->depth_path, img.width, img.height, gt.width, gt.height);
        goto done;
    }
    md_fit_row row = {0};
    st = md_fit_pair(&pred, &gt, MD_SCALE_W1, job->lo, job->hi, &row, err);
    if (st != MD_OK)
        goto done;
    md_eval_item it = {.rgb = ep->pair->rgb_path,
                       .depth = ep->pair->depth_path,
                       .split = ep->split,
                       .oracle_scale = row.scale};
    st = md_metrics_compute(&pred, &gt, job->protocol, &it.unscaled, err);
    if (st == MD_OK)
        st = scaled_copy(&pred, row.scale, &sc_o, err);
    if (st == MD_OK)
        st = md_metrics_compute(&sc_o, &gt, job->protocol, &it.oracle, err);
    if (st == MD_OK && job->smodel) {
        st = md_scale_model_predict(job->smodel, &img, &it.pred_log_scale, err);
        if (st == MD_OK)
            st = scaled_copy(&pred, exp(it.pred_log_scale), &sc_a, err);
        if (st == MD_OK)
            st = md_metrics_compute(&sc_a, &gt, job->protocol, &it.adaptive, err);
        it.has_adaptive = st == MD_OK;
    }
    if (st != MD_OK)
        goto done;
    st = md_eval_set_append(&job->results, &it, err);
    if (st != MD_OK)
        goto done;
    job->result_pair[job->results.count - 1] = ep->pair;

    /* figures: errors here are reported but do not drop the pair */
    md_error ferr = {0};
    if (job->panels_done[ep->split] < job->panels) {
        char stem[128], title[256], rel[96], path[4096], cap[512];
        stem_of(stem, sizeof stem, ep->pair);
        int k = ++job->panels_done[ep->split];
        const char *sname = ep->split == MD_SPLIT_TEST ? "test" : "train";
        snprintf(title, sizeof title, "%s image %d: %s", sname, k, stem);
        snprintf(rel, sizeof rel, "fig/panel_%s_%d.png", sname, k);
        cli_path_join(path, sizeof path, job->outdir, rel);
        md_depth_panel p = {&img,
                            &gt,
                            &pred,
                            it.has_adaptive ? &sc_a : NULL,
                            &sc_o,
                            it.unscaled.abs_rel,
                            it.adaptive.abs_rel,
                            it.oracle.abs_rel,
                            exp(it.pred_log_scale),
                            row.scale,
                            title};
        if (md_fig_depth_panel(path, &p, &ferr) == MD_OK) {
            snprintf(cap, sizeof cap,
                     "Depth, %s image %d (%s): RGB, ground truth, unscaled, %soracle-scaled "
                     "prediction on one colour scale, and the relative error of the %s "
                     "prediction",
                     sname, k, stem, it.has_adaptive ? "adaptive-scaled, " : "",
                     it.has_adaptive ? "adaptive" : "unscaled");
            add_figure(job, rel, cap);
        } else {
            fprintf(stderr, "\nmetricdepth: error: %s\n", ferr.message);
            job->figs_failed++;
        }
    }
    if (ep->split == MD_SPLIT_TEST && !job->clouds_done) {
        job->clouds_done = 1;
        if (write_clouds(job, ep->pair, &gt, &pred, row.scale, it.has_adaptive,
                         exp(it.pred_log_scale), &ferr) != MD_OK) {
            fprintf(stderr, "\nmetricdepth: error: %s\n", ferr.message);
            job->figs_failed++;
        }
    }
done:
    md_image_free(&img);
    md_depth_free(&pred);
    md_depth_free(&gt);
    md_depth_free(&sc_o);
    md_depth_free(&sc_a);
    return st;
}

/* splitmix64: a small deterministic generator for the random split. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void add_number_or_null(cJSON *o, const char *name, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

static md_status write_json(const char *path, const md_report_info *info,
                            const md_eval_summary sums[2], const char *const *sources[2],
                            const int n_sources[2], size_t failed, double lo, double hi,
                            md_error *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *data = cJSON_AddObjectToObject(root, "data");
    static const char *sn[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        cJSON *a = cJSON_AddArrayToObject(data, sn[s]);
        for (int i = 0; i < n_sources[s]; i++)
            cJSON_AddItemToArray(a, cJSON_CreateString(sources[s][i]));
    }
    cJSON_AddStringToObject(data, "description_train", info->train_data);
    cJSON_AddStringToObject(data, "description_test", info->test_data);
    cJSON_AddStringToObject(root, "base_model", info->base_model);
    if (info->scale_model)
        cJSON_AddStringToObject(root, "scale_model", info->scale_model);
    else
        cJSON_AddNullToObject(root, "scale_model");
    cJSON_AddStringToObject(root, "protocol", info->protocol);
    cJSON_AddStringToObject(root, "oracle", "W1");
    cJSON *r = cJSON_AddArrayToObject(root, "scale_range");
    cJSON_AddItemToArray(r, cJSON_CreateNumber(lo));
    cJSON_AddItemToArray(r, cJSON_CreateNumber(hi));
    cJSON_AddNumberToObject(root, "failed_pairs", (double)failed);
    add_number_or_null(root, "constant_scale", info->constant_scale);
    cJSON *splits = cJSON_AddObjectToObject(root, "splits");
    for (int s = 0; s < 2; s++) {
        cJSON *o = cJSON_AddObjectToObject(splits, sn[s]);
        cJSON_AddNumberToObject(o, "images", (double)sums[s].n);
        add_number_or_null(o, "oracle_scale_median", sums[s].scale_median);
        if (sums[s].n == 0)
            continue;
        cJSON_AddItemToObject(o, "unscaled", cli_metrics_json(&sums[s].unscaled));
        cJSON_AddItemToObject(o, "oracle", cli_metrics_json(&sums[s].oracle));
        if (sums[s].has_constant) {
            cJSON_AddItemToObject(o, "constant", cli_metrics_json(&sums[s].constant));
            add_number_or_null(o, "gap_closed_constant", sums[s].gap_closed_constant);
        }
        if (sums[s].has_adaptive) {
            cJSON_AddItemToObject(o, "adaptive", cli_metrics_json(&sums[s].adaptive));
            add_number_or_null(o, "log_scale_mae", sums[s].log_mae);
            add_number_or_null(o, "log_scale_rmse", sums[s].log_rmse);
            add_number_or_null(o, "gap_closed", sums[s].gap_closed);
        }
    }
    cJSON *figs = cJSON_AddArrayToObject(root, "figures");
    for (size_t i = 0; i < info->n_figures; i++)
        cJSON_AddItemToArray(figs, cJSON_CreateString(info->figures[i].path));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st == MD_OK) {
        fputs(text, af.fp);
        fputc('\n', af.fp);
        if (ferror(af.fp)) {
            md_atomic_abort(&af);
            st = md_fail(err, MD_ERR_IO, "%s: write failed", path);
        } else {
            st = md_atomic_commit(&af, err);
        }
    }
    free(text);
    return st;
}

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

static int run(int argc, char **argv)
{
    const char *data_s = NULL, *test_s = NULL, *split_s = NULL, *out_s = NULL, *model_s = NULL;
    const char *scale_model_s = NULL, *protocol_s = "seed", *range_s = "0.1,2", *panels_s = "3";
    const char *title_s = NULL, *cache_s = NULL, *threads_s = NULL;
    bool no_cache = false;
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
                            {NULL, 0, false, NULL, NULL}};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    const char **src[2] = {calloc((size_t)argc + 1, sizeof(char *)),
                           calloc((size_t)argc + 1, sizeof(char *))};
    if (!pos || !src[0] || !src[1]) {
        free(pos);
        free(src[0]);
        free(src[1]);
        return CLI_EXIT_FAILURE;
    }
    int npos = 0, nsrc[2] = {0, 0};
    int rc = cli_parse(&cmd_eval, argc, argv, options, pos, &npos);
    if (rc == 0) {
        /* --data and --test may repeat, and plain arguments belong to the set
         * named last before them (--data by default) */
        int set = 0, p = 0;
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i];
            if (p < npos && a == pos[p]) {
                src[set][nsrc[set]++] = a;
                p++;
                continue;
            }
            int which = strncmp(a, "--data", 6) == 0 ? 0 : strncmp(a, "--test", 6) == 0 ? 1 : -1;
            if (which >= 0 && (a[6] == '\0' || a[6] == '=')) {
                set = which;
                if (a[6] == '=')
                    src[set][nsrc[set]++] = a + 7;
                else if (i + 1 < argc)
                    src[set][nsrc[set]++] = argv[++i];
            }
        }
    }
    free(pos);
    int protocol = md_protocol_parse(protocol_s);
    double lo = 0.1, hi = 2, frac = 0;
    int panels = 3, threads = 0;
    unsigned long long seed = 0;
    if (rc == 0) {
        if (nsrc[0] == 0 && nsrc[1] == 0)
            rc = cli_usage_error(&cmd_eval, "give the data: --data DIR|LIST [--test DIR|LIST]");
        else if (!out_s)
            rc = cli_usage_error(&cmd_eval, "give the report folder with -o DIR");
        else if (protocol < 0)
            rc = cli_usage_error(&cmd_eval, "--protocol is seed or eigen (got '%s')", protocol_s);
        else if (!cli_parse_pair(range_s, &lo, &hi) || lo <= 0 || lo > hi)
            rc = cli_usage_error(&cmd_eval, "--range wants LO,HI with 0 < LO <= HI");
        else if (!cli_parse_int(panels_s, &panels) || panels < 0 || panels > 20)
            rc = cli_usage_error(&cmd_eval, "--panels wants a number in 0..20");
        else if (threads_s && (!cli_parse_int(threads_s, &threads) || threads < 0))
            rc = cli_usage_error(&cmd_eval, "--threads wants a number >= 0");
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
    }
    if (rc != 0) {
        free(src[0]);
        free(src[1]);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }

    md_error err = {0};
    md_pair_list lists[2] = {{0}, {0}};
    for (int s = 0; s < 2 && rc == 0; s++)
        for (int i = 0; i < nsrc[s] && rc == 0; i++)
            if (cli_collect_pairs(src[s][i], &lists[s], &err) != 0)
                rc = cli_report(&err);
    size_t total = lists[0].count + lists[1].count;
    if (rc == 0 && total == 0) {
        fprintf(stderr, "metricdepth: error: no RGB-D pairs found in the given datasets\n");
        rc = CLI_EXIT_FAILURE;
    }
    eval_pair *eps = rc == 0 ? calloc(total, sizeof *eps) : NULL;
    if (rc == 0 && !eps) {
        fprintf(stderr, "metricdepth: error: out of memory\n");
        rc = CLI_EXIT_FAILURE;
    }
    if (rc != 0) {
        md_pair_list_free(&lists[0]);
        md_pair_list_free(&lists[1]);
        free(src[0]);
        free(src[1]);
        return rc;
    }
    size_t n = 0;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < lists[s].count; i++)
            eps[n++] = (eval_pair){&lists[s].items[i], s};
    if (split_s) {
        /* a seeded Fisher-Yates permutation; its first round(F*n) pairs are the test set */
        size_t *perm = malloc(n * sizeof *perm);
        if (perm) {
            uint64_t st = seed;
            for (size_t i = 0; i < n; i++)
                perm[i] = i;
            for (size_t i = n; i > 1; i--) {
                size_t j = (size_t)(splitmix64(&st) % i);
                size_t t = perm[i - 1];
                perm[i - 1] = perm[j];
                perm[j] = t;
            }
            size_t n_test = (size_t)llround(frac * (double)n);
            for (size_t i = 0; i < n_test; i++)
                eps[perm[i]].split = MD_SPLIT_TEST;
            free(perm);
        }
    }

    char model_buf[4096], cache_buf[4096], path[4096];
    eval_job job = {0};
    job.outdir = out_s;
    job.protocol = (md_protocol)protocol;
    job.lo = lo;
    job.hi = hi;
    job.panels = panels;
    job.mo.threads = threads;
    if (!model_s) {
        if (md_default_model_path(model_buf, sizeof model_buf, &err) != MD_OK) {
            rc = cli_report(&err);
            goto done;
        }
        model_s = model_buf;
    }
    job.model_path = model_s;
    if (!no_cache) {
        if (!cache_s) {
            cli_path_join(cache_buf, sizeof cache_buf, out_s, ".metricdepth-cache");
            cache_s = cache_buf;
        }
        job.cache_dir = cache_s;
    }
    cli_path_join(path, sizeof path, out_s, "fig");
    if (cli_make_dirs(path, &err) != MD_OK || (job.cache_dir && cli_make_dirs(job.cache_dir, &err))) {
        rc = cli_report(&err);
        goto done;
    }
    if (scale_model_s) {
        if (md_scale_model_load(scale_model_s, &job.smodel, &err) != MD_OK) {
            rc = cli_report(&err);
            goto done;
        }
        job.scale_model_path = scale_model_s;
    }

    job.result_pair = calloc(n, sizeof *job.result_pair);
    if (!job.result_pair) {
        fprintf(stderr, "metricdepth: error: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    /* the train set first, then the test set (figure numbering follows) */
    size_t n_split[2] = {0, 0};
    for (size_t i = 0; i < n; i++)
        n_split[eps[i].split]++;
    fprintf(stderr, "eval: %zu train + %zu test pairs, model %s%s%s\n", n_split[0], n_split[1],
            model_s, scale_model_s ? ", scale model " : "", scale_model_s ? scale_model_s : "");
    cli_progress prog;
    cli_progress_start(&prog, "eval", n);
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < n; i++) {
            if (eps[i].split != s)
                continue;
            md_error e = {0};
            if (eval_one(&job, &eps[i], &e) != MD_OK) {
                if (prog.tty)
                    fputc('\n', stderr);
                fprintf(stderr, "metricdepth: error: %s: %s (skipped)\n", eps[i].pair->rgb_path,
                        e.message[0] ? e.message : md_status_name(e.code));
                job.failed++;
                if (job.fatal) {
                    rc = CLI_EXIT_FAILURE;
                    break;
                }
            }
            cli_progress_step(&prog, eps[i].pair->rgb_path);
        }
        if (rc)
            break;
    }
    cli_progress_finish(&prog);
    if (rc == 0 && job.results.count == 0) {
        fprintf(stderr, "metricdepth: error: no pair could be evaluated; nothing written\n");
        rc = CLI_EXIT_FAILURE;
    }
    if (rc != 0)
        goto done;

    /* baseline: one constant scale for every image, exp(mean ln s*) of the
     * training set (what a predictor that ignores the image would learn) */
    double s_const = NAN, sum_log = 0;
    size_t n_log = 0;
    for (size_t i = 0; i < job.results.count; i++) {
        if (job.results.items[i].split == MD_SPLIT_TRAIN) {
            sum_log += log(job.results.items[i].oracle_scale);
            n_log++;
        }
    }
    if (n_log) {
        s_const = exp(sum_log / (double)n_log);
        for (size_t i = 0; i < job.results.count; i++) {
            md_error e = {0};
            md_eval_item *it = &job.results.items[i];
            it->has_constant =
                constant_metrics(&job, job.result_pair[i], s_const, &it->constant, &e) == MD_OK;
            if (!it->has_constant)
                fprintf(stderr, "metricdepth: warning: constant-scale baseline: %s\n", e.message);
        }
    }

    md_eval_summary sums[2];
    for (int s = 0; s < 2 && rc == 0; s++)
        if (md_eval_summarize(&job.results, s, &sums[s], &err) != MD_OK)
            rc = cli_report(&err);
    if (rc != 0)
        goto done;

    /* scatter and loss curves */
    if (job.smodel) {
        size_t m = job.results.count;
        double *xs = malloc((m ? m : 1) * sizeof *xs), *ys = malloc((m ? m : 1) * sizeof *ys);
        int *gs = malloc((m ? m : 1) * sizeof *gs);
        if (xs && ys && gs) {
            for (size_t i = 0; i < m; i++) {
                xs[i] = log(job.results.items[i].oracle_scale);
                ys[i] = job.results.items[i].pred_log_scale;
                gs[i] = job.results.items[i].split;
            }
            cli_path_join(path, sizeof path, out_s, "fig/scatter.png");
            md_error e = {0};
            if (md_fig_scatter(path, xs, ys, gs, m, NULL, &e) == MD_OK)
                add_figure(&job, "fig/scatter.png",
                           "Scale CNN: predicted ln s against the oracle ln s*, one dot per "
                           "image; on the dashed line the prediction is exact");
            else {
                fprintf(stderr, "metricdepth: error: %s\n", e.message);
                job.figs_failed++;
            }
        }
        free(xs);
        free(ys);
        free(gs);
        char log_path[4096];
        cli_sibling_path(log_path, sizeof log_path, scale_model_s, ".log.csv"); /* as train names it */
        struct stat sb;
        if (stat(log_path, &sb) == 0) {
            double *tr = NULL, *va = NULL;
            int epochs = 0;
            md_error e = {0};
            cli_path_join(path, sizeof path, out_s, "fig/loss.png");
            if (md_eval_read_loss_log(log_path, &tr, &va, &epochs, &e) == MD_OK &&
                md_plot_loss_curves(path, tr, va, epochs, "scale CNN: MSE of ln s", &e) == MD_OK)
                add_figure(&job, "fig/loss.png",
                           "Training and validation loss of the scale CNN (MSE of ln s, log "
                           "axis), from its training log");
            else {
                fprintf(stderr, "metricdepth: error: %s\n", e.message);
                job.figs_failed++;
            }
            free(tr);
            free(va);
        }
    }
    /* order the figures: train panels, test panels, clouds, scatter, loss */
    for (size_t i = 1; i < job.n_figs; i++) {
        for (size_t j = i; j > 0 && figure_rank(job.figs[j].path) <
                                        figure_rank(job.figs[j - 1].path);
             j--) {
            md_report_figure t = job.figs[j];
            job.figs[j] = job.figs[j - 1];
            job.figs[j - 1] = t;
        }
    }

    char train_desc[2048], test_desc[2048], base_desc[1024], scale_desc[1024];
    describe_sources(train_desc, sizeof train_desc, src[0], nsrc[0], n_split[0],
                     split_s ? " minus the held-out test pairs" : NULL);
    if (split_s) {
        char buf[256];
        snprintf(buf, sizeof buf, "random %.0f %% of the training data (seed %llu)", 100 * frac,
                 seed);
        describe_sources(test_desc, sizeof test_desc, (const char *const[]){buf}, 1, n_split[1],
                         NULL);
    } else {
        describe_sources(test_desc, sizeof test_desc, src[1], nsrc[1], n_split[1], NULL);
    }
    const char *mslash = strrchr(model_s, '/');
    snprintf(base_desc, sizeof base_desc, "%s%s", mslash ? mslash + 1 : model_s,
             strstr(model_s, "fastdepth") ? " (FastDepth, NYU-trained)" : "");
    if (job.smodel)
        snprintf(scale_desc, sizeof scale_desc, "%s: %s", scale_model_s,
                 md_scale_model_describe(job.smodel));
    char notes[512];
    snprintf(notes, sizeof notes,
             "%zu pairs evaluated (%zu base predictions from the cache), %zu failed and skipped.",
             job.results.count, job.cached, job.failed);
    md_report_info info = {title_s ? title_s : "metricdepth evaluation report",
                           train_desc,
                           test_desc,
                           base_desc,
                           job.smodel ? scale_desc : NULL,
                           protocol == MD_PROTOCOL_EIGEN ? "eigen" : "seed",
                           notes,
                           job.figs,
                           job.n_figs,
                           s_const};
    cli_path_join(path, sizeof path, out_s, "per_image.csv");
    if (md_eval_write_csv(path, &job.results, &err) != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }
    cli_path_join(path, sizeof path, out_s, "summary.json");
    if (write_json(path, &info, sums, (const char *const *[]){src[0], src[1]}, nsrc, job.failed,
                   lo, hi, &err) != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }
    cli_path_join(path, sizeof path, out_s, "report.md");
    if (md_eval_write_markdown(path, &info, sums, &err) != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }
    cli_path_join(path, sizeof path, out_s, "index.html");
    if (md_eval_write_html(path, &info, sums, &err) != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }

    /* the tables on stdout */
    static const char *sname[2] = {"train", "test"};
    printf("%-6s %-9s %5s %8s %8s %8s %8s\n", "split", "method", "n", "AbsRel", "RMSE",
           "delta1", "SILog");
    for (int s = 0; s < 2; s++) {
        if (sums[s].n == 0)
            continue;
        const md_metrics *ms[4] = {&sums[s].unscaled, &sums[s].oracle, &sums[s].adaptive,
                                   &sums[s].constant};
        static const char *mn[4] = {"unscaled", "oracle", "adaptive", "constant"};
        for (int m = 0; m < 4; m++)
            if ((m < 2) || (m == 2 && sums[s].has_adaptive) || (m == 3 && sums[s].has_constant))
                printf("%-6s %-9s %5zu %8.4f %8.4f %8.4f %8.4f\n", sname[s], mn[m], sums[s].n,
                       ms[m]->abs_rel, ms[m]->rmse, ms[m]->delta1, ms[m]->silog);
        if (sums[s].has_constant)
            printf("%-6s baseline: constant scale %.4f, gap closed %.1f %%\n", sname[s], s_const,
                   100 * sums[s].gap_closed_constant);
        if (sums[s].has_adaptive)
            printf("%-6s ln s MAE %.4f RMSE %.4f, gap closed %.1f %%\n", sname[s], sums[s].log_mae,
                   sums[s].log_rmse, 100 * sums[s].gap_closed);
    }
    fprintf(stderr, "wrote %s/report.md, index.html, per_image.csv, summary.json and %zu figures\n",
            out_s, job.n_figs);
    rc = job.failed ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
    if (job.figs_failed) { /* e.g. a full disk: the report lacks figures it promises */
        fprintf(stderr, "metricdepth: error: %zu figure(s) could not be written; the report in %s "
                        "is incomplete\n",
                job.figs_failed, out_s);
        rc = CLI_EXIT_FAILURE;
    }
done:
    md_model_free(job.model);
    md_scale_model_free(job.smodel);
    md_eval_set_free(&job.results);
    free(job.result_pair);
    free(eps);
    md_pair_list_free(&lists[0]);
    md_pair_list_free(&lists[1]);
    free(src[0]);
    free(src[1]);
    return rc;
}
