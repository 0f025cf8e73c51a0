/* A whole evaluation report folder: the figures collected while the
 * evaluation runs, then the tables (CSV, JSON, Markdown, HTML). */
#include "base/base.h"
#include "report/figures.h"
#include "report/report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FIGS 64

struct md_report {
    md_report_options o;
    char *dir;
    md_report_figure figs[MAX_FIGS];
    char fig_paths[MAX_FIGS][96];
    char fig_captions[MAX_FIGS][512];
    size_t n_figs;
    int panels_done[2];
    int clouds_done;
    char notes[1024];
    md_status fig_status; /* the first figure that failed */
    md_error fig_err;
};

md_status md_report_make_dir(const char *path, md_error *err)
{
    if (mkdir(path, 0777) == 0)
        return MD_OK;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return MD_OK;
    return md_fail(err, MD_ERR_IO, "%s: cannot create folder", path);
}

static void join(char *buf, size_t size, const char *dir, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

md_status md_report_create(const md_report_options *opts, md_report **out, md_error *err)
{
    if (!opts || !opts->dir || !out)
        return md_fail(err, MD_ERR_ARG, "report: no folder given");
    *out = NULL;
    md_report *r = md_calloc(1, sizeof *r, "report", err);
    if (!r)
        return MD_ERR_NOMEM;
    r->o = *opts;
    size_t n = strlen(opts->dir) + 1;
    r->dir = md_malloc(n, "report", err);
    if (!r->dir) {
        free(r);
        return MD_ERR_NOMEM;
    }
    memcpy(r->dir, opts->dir, n);
    char path[4096];
    join(path, sizeof path, r->dir, "fig");
    md_status st = md_report_make_dir(r->dir, err);
    if (st == MD_OK)
        st = md_report_make_dir(path, err);
    if (st != MD_OK) {
        md_report_free(r);
        return st;
    }
    *out = r;
    return MD_OK;
}

void md_report_free(md_report *r)
{
    if (!r)
        return;
    free(r->dir);
    free(r);
}

void md_report_set_notes(md_report *r, const char *notes)
{
    if (r)
        snprintf(r->notes, sizeof r->notes, "%s", notes ? notes : "");
}

size_t md_report_figure_count(const md_report *r)
{
    return r ? r->n_figs : 0;
}

static void add_figure(md_report *r, const char *rel, const char *caption)
{
    if (r->n_figs >= MAX_FIGS)
        return;
    size_t k = r->n_figs++;
    snprintf(r->fig_paths[k], sizeof r->fig_paths[k], "%s", rel);
    snprintf(r->fig_captions[k], sizeof r->fig_captions[k], "%s", caption);
    r->figs[k].path = r->fig_paths[k];
    r->figs[k].caption = r->fig_captions[k];
}

static void figure_failed(md_report *r, md_status st, const md_error *e)
{
    if (r->fig_status == MD_OK) {
        r->fig_status = st;
        r->fig_err = *e;
    }
}

/* The file's name without folder and extension, with only safe characters. */
static void stem_of(char *buf, size_t size, const char *path)
{
    const char *slash = strrchr(path, '/');
    snprintf(buf, size, "%s", slash ? slash + 1 : path);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf)
        *dot = '\0';
    for (char *c = buf; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            *c = '_';
}

static void write_panel(md_report *r, const md_eval_view *v)
{
    const md_eval_item *it = v->item;
    char stem[128], title[256], rel[96], path[4096], cap[512];
    stem_of(stem, sizeof stem, it->rgb);
    int k = ++r->panels_done[it->split];
    const char *sname = it->split == MD_SPLIT_TEST ? "test" : "train";
    snprintf(title, sizeof title, "%s image %d: %s", sname, k, stem);
    snprintf(rel, sizeof rel, "fig/panel_%s_%d.png", sname, k);
    join(path, sizeof path, r->dir, rel);
    md_depth_panel p = {v->image,
                        v->gt,
                        v->unscaled,
                        it->has_adaptive ? v->gated : NULL,
                        v->oracle,
                        it->unscaled.abs_rel,
                        it->gated.abs_rel,
                        it->oracle.abs_rel,
                        exp(it->estimate.weight * it->estimate.log_scale),
                        it->oracle_scale,
                        title};
    md_error e = {0};
    md_status st = md_fig_depth_panel(path, &p, &e);
    if (st != MD_OK) {
        figure_failed(r, st, &e);
        return;
    }
    snprintf(cap, sizeof cap,
             "Depth, %s image %d (%s): RGB, ground truth, unscaled, %soracle-scaled prediction "
             "on one colour scale, and the relative error of the %s prediction",
             sname, k, stem, it->has_adaptive ? "gated adaptive, " : "",
             it->has_adaptive ? "gated adaptive" : "unscaled");
    add_figure(r, rel, cap);
}

/* NYU's camera scaled to the image (the default model's training camera). */
static md_intrinsics default_intrinsics(int width, int height)
{
    md_intrinsics K = md_intrinsics_nyu();
    K.fx *= width / 640.0;
    K.cx *= width / 640.0;
    K.fy *= height / 480.0;
    K.cy *= height / 480.0;
    return K;
}

static void write_clouds(md_report *r, const md_eval_view *v)
{
    const md_eval_item *it = v->item;
    const md_depth *gt = v->gt;
    md_intrinsics K = default_intrinsics(gt->width, gt->height);
    int stride = gt->width > 320 ? 2 : 1;
    md_cloud gtc = {0}, preds[3] = {{0}};
    uint8_t colors[3][3];
    const char *titles[3];
    char t[3][96];
    int n = 0;
    md_error e = {0};
    static const uint8_t red[3] = {215, 40, 40}, blue[3] = {40, 80, 220}, green[3] = {30, 160, 60};
    md_status st = md_pointcloud_from_depth(gt, NULL, &K, stride, 0.0f, &gtc, &e);
    if (st == MD_OK) {
        st = md_pointcloud_from_depth(v->unscaled, NULL, &K, stride, 0.0f, &preds[n], &e);
        memcpy(colors[n], red, 3);
        snprintf(t[n], sizeof t[n], "unscaled (red) over ground truth");
        titles[n] = t[n];
        n++;
    }
    if (st == MD_OK && it->has_adaptive) {
        st = md_pointcloud_from_depth(v->gated, NULL, &K, stride, 0.0f, &preds[n], &e);
        memcpy(colors[n], blue, 3);
        snprintf(t[n], sizeof t[n], "gated adaptive s=%.3f (blue)",
                 exp(it->estimate.weight * it->estimate.log_scale));
        titles[n] = t[n];
        n++;
    }
    if (st == MD_OK) {
        st = md_pointcloud_from_depth(v->oracle, NULL, &K, stride, 0.0f, &preds[n], &e);
        memcpy(colors[n], green, 3);
        snprintf(t[n], sizeof t[n], "oracle s*=%.3f (green)", it->oracle_scale);
        titles[n] = t[n];
        n++;
    }
    if (st == MD_OK) {
        md_view view = md_view_for_cloud(&gtc, &K, gt->width, 480, 360, 30, 20);
        char path[4096], stem[128], cap[512];
        join(path, sizeof path, r->dir, "fig/clouds_test.png");
        st = md_fig_point_clouds(path, &gtc, preds, (const uint8_t(*)[3])colors, titles, n,
                                 &view, &e);
        if (st == MD_OK) {
            stem_of(stem, sizeof stem, it->rgb);
            snprintf(cap, sizeof cap,
                     "Point clouds of test image %s (pixel stride %d, NYU's camera scaled to the "
                     "image), grey: ground truth; seen from 30 deg to the side and 20 deg above, "
                     "looking at the ground truth's centroid",
                     stem, stride);
            add_figure(r, "fig/clouds_test.png", cap);
        }
    }
    if (st != MD_OK)
        figure_failed(r, st, &e);
    md_pointcloud_free(&gtc);
    for (int i = 0; i < 3; i++)
        md_pointcloud_free(&preds[i]);
}

void md_report_view(void *report, const md_eval_view *v)
{
    md_report *r = report;
    if (!r || !v || !v->item)
        return;
    int split = v->item->split == MD_SPLIT_TEST ? MD_SPLIT_TEST : MD_SPLIT_TRAIN;
    if (r->panels_done[split] < r->o.panels)
        write_panel(r, v);
    if (split == MD_SPLIT_TEST && !r->clouds_done) {
        r->clouds_done = 1;
        write_clouds(r, v);
    }
}

static void write_scatter(md_report *r, const md_eval_set *set)
{
    size_t m = set->count;
    double *xs = malloc((m ? m : 1) * sizeof *xs), *ys = malloc((m ? m : 1) * sizeof *ys);
    int *gs = malloc((m ? m : 1) * sizeof *gs);
    md_error e = {0};
    md_status st = MD_OK;
    if (!xs || !ys || !gs) {
        st = md_fail(&e, MD_ERR_NOMEM, "%s/fig/scatter.png: out of memory", r->dir);
    } else {
        for (size_t i = 0; i < m; i++) {
            xs[i] = log(set->items[i].oracle_scale);
            ys[i] = set->items[i].estimate.log_scale;
            gs[i] = set->items[i].split;
        }
        char path[4096];
        join(path, sizeof path, r->dir, "fig/scatter.png");
        st = md_fig_scatter(path, xs, ys, gs, m, NULL, &e);
        if (st == MD_OK)
            add_figure(r, "fig/scatter.png",
                       "Scale model: predicted ln s (before the gate) against the oracle ln s*, "
                       "one dot per image; on the dashed line the prediction is exact");
    }
    if (st != MD_OK)
        figure_failed(r, st, &e);
    free(xs);
    free(ys);
    free(gs);
}

static void write_loss(md_report *r)
{
    double *tr = NULL, *va = NULL;
    int epochs = 0;
    md_error e = {0};
    char path[4096];
    join(path, sizeof path, r->dir, "fig/loss.png");
    md_status st = md_eval_read_loss_log(r->o.loss_log, &tr, &va, &epochs, &e);
    if (st == MD_OK)
        st = md_plot_loss_curves(path, tr, va, epochs, "scale model: MSE of ln s", &e);
    if (st == MD_OK)
        add_figure(r, "fig/loss.png",
                   "Training and validation loss of the scale model (MSE of ln s, log axis), "
                   "from its training log");
    else
        figure_failed(r, st, &e);
    free(tr);
    free(va);
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

md_status md_report_finish(md_report *r, const md_eval_set *set, md_eval_summary sums[2],
                           md_error *err)
{
    if (!r || !set || !sums)
        return md_fail(err, MD_ERR_ARG, "report: NULL argument");
    for (int s = 0; s < 2; s++) {
        md_status st = md_eval_summarize(set, s, &sums[s], err);
        if (st != MD_OK)
            return st;
    }
    if (r->o.info.scale_model && set->count)
        write_scatter(r, set);
    if (r->o.info.scale_model && r->o.loss_log)
        write_loss(r);
    /* train panels, test panels, clouds, scatter, loss */
    for (size_t i = 1; i < r->n_figs; i++)
        for (size_t j = i; j > 0 && figure_rank(r->figs[j].path) < figure_rank(r->figs[j - 1].path);
             j--) {
            md_report_figure t = r->figs[j];
            r->figs[j] = r->figs[j - 1];
            r->figs[j - 1] = t;
        }
    md_report_info info = r->o.info;
    info.figures = r->figs;
    info.n_figures = r->n_figs;
    info.constant_scale = set->constant_scale;
    info.failed = set->failed;
    if (r->notes[0])
        info.notes = r->notes;
    char path[4096];
    md_status st;
    join(path, sizeof path, r->dir, "per_image.csv");
    if ((st = md_eval_write_csv(path, set, err)) != MD_OK)
        return st;
    join(path, sizeof path, r->dir, "summary.json");
    if ((st = md_eval_write_json(path, &info, sums, err)) != MD_OK)
        return st;
    join(path, sizeof path, r->dir, "report.md");
    if ((st = md_eval_write_markdown(path, &info, sums, err)) != MD_OK)
        return st;
    join(path, sizeof path, r->dir, "index.html");
    if ((st = md_eval_write_html(path, &info, sums, err)) != MD_OK)
        return st;
    if (r->fig_status != MD_OK) {
        if (err)
            *err = r->fig_err;
        return r->fig_status;
    }
    return MD_OK;
}

/* ------------------------------------------------------------ summary.json */

static void number_or_null(cJSON *o, const char *name, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

static cJSON *metrics_json(const md_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    number_or_null(o, "abs_rel", m->abs_rel);
    number_or_null(o, "sq_rel", m->sq_rel);
    number_or_null(o, "rmse", m->rmse);
    number_or_null(o, "rmse_log", m->rmse_log);
    number_or_null(o, "log10", m->log10);
    number_or_null(o, "silog", m->silog);
    number_or_null(o, "delta1", m->delta1);
    number_or_null(o, "delta2", m->delta2);
    number_or_null(o, "delta3", m->delta3);
    return o;
}

md_status md_eval_write_json(const char *path, const md_report_info *info,
                             const md_eval_summary sums[2], md_error *err)
{
    if (!path || !info || !sums)
        return md_fail(err, MD_ERR_ARG, "summary.json: NULL argument");
    cJSON *root = cJSON_CreateObject();
    cJSON *data = cJSON_AddObjectToObject(root, "data");
    const char *const *src[2] = {info->train_sources, info->test_sources};
    int nsrc[2] = {info->n_train_sources, info->n_test_sources};
    static const char *sn[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        cJSON *a = cJSON_AddArrayToObject(data, sn[s]);
        for (int i = 0; i < nsrc[s] && src[s]; i++)
            cJSON_AddItemToArray(a, cJSON_CreateString(src[s][i]));
    }
    cJSON_AddStringToObject(data, "description_train", info->train_data ? info->train_data : "");
    cJSON_AddStringToObject(data, "description_test", info->test_data ? info->test_data : "");
    cJSON_AddStringToObject(root, "base_model", info->base_model ? info->base_model : "");
    if (info->scale_model)
        cJSON_AddStringToObject(root, "scale_model", info->scale_model);
    else
        cJSON_AddNullToObject(root, "scale_model");
    cJSON_AddStringToObject(root, "protocol", info->protocol ? info->protocol : "seed");
    cJSON_AddStringToObject(root, "oracle", "W1");
    cJSON *r = cJSON_AddArrayToObject(root, "scale_range");
    cJSON_AddItemToArray(r, cJSON_CreateNumber(info->lo));
    cJSON_AddItemToArray(r, cJSON_CreateNumber(info->hi));
    cJSON_AddNumberToObject(root, "failed_pairs", (double)info->failed);
    number_or_null(root, "constant_scale", info->constant_scale);
    cJSON_AddStringToObject(root, "gap_closed_definition",
                            "(abs_rel_unscaled - abs_rel_method) / (abs_rel_unscaled - "
                            "abs_rel_oracle); null when the oracle gains nothing");
    cJSON *splits = cJSON_AddObjectToObject(root, "splits");
    for (int s = 0; s < 2; s++) {
        cJSON *o = cJSON_AddObjectToObject(splits, sn[s]);
        cJSON_AddNumberToObject(o, "images", (double)sums[s].n);
        number_or_null(o, "oracle_scale_median", sums[s].scale_median);
        cJSON_AddNumberToObject(o, "oracle_at_range_limit", (double)sums[s].at_limit);
        if (sums[s].n == 0)
            continue;
        cJSON_AddItemToObject(o, "unscaled", metrics_json(&sums[s].unscaled));
        cJSON_AddItemToObject(o, "oracle", metrics_json(&sums[s].oracle));
        if (sums[s].has_constant) {
            cJSON_AddItemToObject(o, "constant", metrics_json(&sums[s].constant));
            number_or_null(o, "gap_closed_constant", sums[s].gap_closed_constant);
        }
        if (sums[s].has_adaptive) {
            cJSON_AddItemToObject(o, "adaptive", metrics_json(&sums[s].adaptive));
            cJSON_AddItemToObject(o, "gated", metrics_json(&sums[s].gated));
            number_or_null(o, "log_scale_mae", sums[s].log_mae);
            number_or_null(o, "log_scale_rmse", sums[s].log_rmse);
            number_or_null(o, "gap_closed", sums[s].gap_closed);
            number_or_null(o, "gap_closed_gated", sums[s].gap_closed_gated);
            number_or_null(o, "mean_gate_weight", sums[s].mean_weight);
            cJSON_AddNumberToObject(o, "gate_applied", (double)sums[s].n_applied);
        }
    }
    cJSON *figs = cJSON_AddArrayToObject(root, "figures");
    for (size_t i = 0; i < info->n_figures; i++)
        cJSON_AddItemToArray(figs, cJSON_CreateString(info->figures[i].path));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    text[n] = '\n';
    md_status st = md_file_write_atomic(path, text, n + 1, err);
    free(text);
    return st;
}
