/* metricdepth eval-anchors: metric scale from sparse anchors, measured. K
 * anchors are drawn from each image's ground truth (with noise and gross
 * outliers), the anchor fits and the anchor scale map are applied to the base
 * network's depth, and AbsRel / delta1 are compared with the base network,
 * the global W1 oracle and the per-cell oracle; on sequences, the frame-to-
 * frame jitter of ln s raw and filtered. */
#include "cli.h"
#include "base/base.h"
#include "eval/anchor_eval.h"
#include "eval/fit.h"
#include "metricdepth_report.h"

#include <cjson/cJSON.h>
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
    "  anchors robust           the default global fit (Tukey biweight on log ratios)\n"
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
    "  --model FILE        base depth model (default: the installed FastDepth)\n"
    "  --range LO,HI       oracle scale range (default 0.1,2)\n"
    "  --cache DIR         prediction cache (default OUT_DIR/.metricdepth-cache)\n"
    "  --no-cache          neither read nor write the cache\n"
    "  --threads N         threads of the base model (default: all cores)\n"
    "  -h, --help          this text\n\n"
    "example (the tables of docs/anchors.md):\n"
    "  D=../shared/data\n"
    "  metricdepth eval-anchors -o anchors-report --sequences sun3d-f1,sun3d-f2,7scenes \\\n"
    "      sun3d-f1=$D/sun3d_studyroom/fragment-1-rgbd-frames \\\n"
    "      sun3d-f2=$D/sun3d_studyroom/fragment-2-rgbd-frames \\\n"
    "      7scenes=$D/7scenes_redkitchen \\\n"
    "      nyu-tum-kinect=$D/nyu_demo_metric3d+$D/nyu_demo_unidepth+$D/slambook2_kinect+$D/open3d_testdata_rgbd\n",
    run};

/* ------------------------------------------------------------- rows */

enum {
    ROW_BASE,
    ROW_ORACLE,
    ROW_CELLS,
    ROW_ROBUST,
    ROW_MEDIAN,
    ROW_W1,
    ROW_LSQ,
    ROW_SHIFT,
    ROW_MAP,
    N_ROWS
};
#define FIRST_ANCHOR_ROW ROW_ROBUST

static const char *const row_names[N_ROWS] = {
    "base network",     "global W1 oracle",   "per-cell W1 oracle", "anchors robust (global)",
    "anchors median",   "anchors w1",         "anchors lsq",        "anchors scale-shift",
    "anchors scale map"};
static const char *const row_keys[N_ROWS] = {"base",   "oracle", "cell_oracle", "robust", "median",
                                             "w1",     "lsq",    "scale_shift", "map"};

/* The anchor rows' scale options. */
static void row_options(int row, md_scale_options *o)
{
    o->source = MD_SCALE_SOURCE_ANCHORS;
    o->scale_map = row == ROW_MAP;
    o->anchor_fit = row == ROW_MEDIAN ? MD_ANCHOR_FIT_MEDIAN
                    : row == ROW_W1   ? MD_ANCHOR_FIT_W1
                    : row == ROW_LSQ  ? MD_ANCHOR_FIT_LSQ
                    : row == ROW_SHIFT ? MD_ANCHOR_FIT_SCALE_SHIFT
                                       : MD_ANCHOR_FIT_ROBUST;
}

/* ------------------------------------------------------------ config */

#define MAX_LIST 16
#define MAX_DATASETS 16
#define MAX_SEEDS 20

typedef struct {
    double v[MAX_LIST];
    int n;
} num_list;

static bool parse_num_list(const char *s, num_list *out)
{
    char buf[512];
    if (!s || strlen(s) >= sizeof buf)
        return false;
    snprintf(buf, sizeof buf, "%s", s);
    out->n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (out->n == MAX_LIST || !cli_parse_double(tok, &out->v[out->n]))
            return false;
        out->n++;
    }
    return out->n > 0;
}

typedef struct {
    char name[64];
    md_pair_list pairs;
    int sequence;
} dataset;

/* Sums over a dataset's images of one (condition, K, seed, row). */
typedef struct {
    double abs_rel, delta1;
    size_t n;
} cell_sum;

/* Per sequence run and seed: jitters and AbsRel of the variants. */
enum { SV_RAW, SV_FILTER, SV_FILTER_LEVEL, SV_ORACLE, N_SV };
static const char *const sv_names[N_SV] = {"raw (per-frame robust fit)", "filtered ln s",
                                           "filtered, depth-level input", "W1 oracle per frame"};
static const char *const sv_keys[N_SV] = {"raw", "filtered", "filtered_level", "oracle"};

typedef struct {
    char run[256]; /* the run's folder */
    int dataset;
    int k;
    int seed;
    size_t frames;
    double jitter[N_SV], level_jitter[N_SV], abs_rel[N_SV], delta1[N_SV];
    size_t rejected; /* frames the filter rejected (ln s filter) */
} seq_result;

typedef struct {
    /* options */
    const char *model_path, *cache_dir, *outdir;
    md_model_options mo;
    num_list ks, noises, outs, seq_ks;
    int seeds;
    double main_noise, main_out;
    int cells_x, cells_y;
    double fps, tau, lo, hi;
    /* state */
    md_model *model;
    int fatal;
    size_t failed, cached, images;
    dataset sets[MAX_DATASETS];
    int n_sets;
    cell_sum *sums; /* [set][cond][k][seed][row] */
    seq_result *seqs;
    size_t n_seqs, cap_seqs;
    FILE *cells_csv;
} job_t;

static size_t n_conds(const job_t *j)
{
    return (size_t)j->noises.n * (size_t)j->outs.n;
}

static cell_sum *sum_at(job_t *j, int set, size_t cond, int k, int seed, int row)
{
    size_t idx = ((((size_t)set * n_conds(j) + cond) * (size_t)j->ks.n + (size_t)k) *
                      (size_t)j->seeds +
                  (size_t)seed) *
                     N_ROWS +
                 (size_t)row;
    return &j->sums[idx];
}

static void add(cell_sum *c, double abs_rel, double delta1)
{
    c->abs_rel += abs_rel;
    c->delta1 += delta1;
    c->n++;
}

/* A seed for one draw: every index mixed in, so draws are independent and
 * a given (dataset, image, condition, K, seed) always gets the same anchors. */
static uint64_t draw_seed(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    uint64_t st = 0x6A09E667F3BCC909ull;
    uint64_t v[5] = {a, b, c, d, e};
    uint64_t h = 0;
    for (int i = 0; i < 5; i++) {
        st ^= v[i] + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
        h = md_splitmix64(&st);
    }
    return h;
}

/* ------------------------------------------------------ base prediction */

static md_status base_prediction(job_t *j, const md_pair *pair, md_depth *pred, md_error *err)
{
    char key[17], cache_path[4096] = "";
    md_status st = MD_OK;
    if (j->cache_dir) {
        st = md_fit_cache_key(j->model_path, pair->rgb_path, key, err);
        if (st != MD_OK)
            return st;
        char name[64];
        snprintf(name, sizeof name, "%s.npy", key);
        cli_path_join(cache_path, sizeof cache_path, j->cache_dir, name);
        md_error ignored = {0};
        if (md_fit_cache_load(cache_path, pred, &ignored) == MD_OK) {
            j->cached++;
            return MD_OK;
        }
    }
    md_image img = {0};
    st = md_image_load(pair->rgb_path, &img, err);
    if (st == MD_OK && !j->model) {
        st = md_model_load(j->model_path, &j->mo, &j->model, err);
        if (st != MD_OK)
            j->fatal = 1;
    }
    if (st == MD_OK)
        st = md_model_predict(j->model, &img, pred, err);
    if (st == MD_OK && j->cache_dir)
        st = md_fit_cache_store(cache_path, pred, err);
    md_image_free(&img);
    return st;
}

/* AbsRel / delta1 of a copy of pred scaled globally. */
static md_status scaled_metrics(const md_depth *pred, const md_depth *gt, double s,
                                md_depth *work, double *ar, double *d1, md_error *err)
{
    size_t n = (size_t)pred->width * (size_t)pred->height;
    for (size_t i = 0; i < n; i++)
        work->data[i] = (float)(pred->data[i] * s);
    return md_abs_rel_delta1(work, gt, ar, d1, err);
}

/* --------------------------------------------------------- sequences */

/* The frame number in a file name ("frame-000935.color.png" -> 935), -1 if none. */
static long frame_number(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    long best = -1;
    for (const char *p = base; *p; p++) {
        if (*p >= '0' && *p <= '9' && (p == base || !(p[-1] >= '0' && p[-1] <= '9'))) {
            best = strtol(p, NULL, 10);
            break; /* the first number of the name */
        }
    }
    return best;
}

static void folder_of(char *buf, size_t size, const char *path)
{
    const char *slash = strrchr(path, '/');
    snprintf(buf, size, "%.*s", slash ? (int)(slash - path) : 0, path);
}

/* One video run in progress: per (seq K, seed) the filters and series. */
typedef struct {
    md_scale_filter *f[2]; /* ln s filter, level filter */
    double *series[N_SV];  /* ln s per frame */
    double *level;         /* base level per frame */
    double abs_rel[N_SV], delta1[N_SV];
    size_t rejected;
} seq_track;

typedef struct {
    char folder[256];
    int set;
    size_t frames, cap;
    seq_track *tracks; /* [seq_k][seed] */
    size_t n_tracks;
} seq_run;

static void run_free(seq_run *r)
{
    for (size_t t = 0; t < r->n_tracks; t++) {
        md_scale_filter_free(r->tracks[t].f[0]);
        md_scale_filter_free(r->tracks[t].f[1]);
        for (int v = 0; v < N_SV; v++)
            free(r->tracks[t].series[v]);
        free(r->tracks[t].level);
    }
    free(r->tracks);
    memset(r, 0, sizeof *r);
}

static md_status run_start(job_t *j, seq_run *r, int set, const char *folder, md_error *err)
{
    memset(r, 0, sizeof *r);
    snprintf(r->folder, sizeof r->folder, "%s", folder);
    r->set = set;
    r->n_tracks = (size_t)j->seq_ks.n * (size_t)j->seeds;
    r->tracks = md_calloc(r->n_tracks, sizeof *r->tracks, "sequence tracks", err);
    if (!r->tracks)
        return MD_ERR_NOMEM;
    for (size_t t = 0; t < r->n_tracks; t++) {
        md_scale_filter_options fo = md_scale_filter_defaults();
        fo.time_constant_s = j->tau;
        fo.use_level = 0;
        md_status st = md_scale_filter_new(&fo, &r->tracks[t].f[0], err);
        fo.use_level = 1;
        if (st == MD_OK)
            st = md_scale_filter_new(&fo, &r->tracks[t].f[1], err);
        if (st != MD_OK)
            return st;
    }
    return MD_OK;
}

static md_status run_push(seq_track *tr, size_t frames, size_t *cap, const double v[N_SV],
                          double level, md_error *err)
{
    if (frames == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        for (int k = 0; k < N_SV; k++) {
            double *p = realloc(tr->series[k], c * sizeof *p);
            if (!p)
                return md_fail(err, MD_ERR_NOMEM, "out of memory for a sequence");
            tr->series[k] = p;
        }
        double *p = realloc(tr->level, c * sizeof *p);
        if (!p)
            return md_fail(err, MD_ERR_NOMEM, "out of memory for a sequence");
        tr->level = p;
        *cap = c;
    }
    for (int k = 0; k < N_SV; k++)
        tr->series[k][frames] = v[k];
    tr->level[frames] = level;
    return MD_OK;
}

/* One frame of the current run: every (seq K, seed) track. */
static md_status run_frame(job_t *j, seq_run *r, size_t image_index, const md_pair *pair,
                           const md_depth *pred, const md_depth *gt, double oracle_log,
                           md_depth *work, md_error *err)
{
    long fn = frame_number(pair->rgb_path);
    double t = fn >= 0 ? (double)fn / j->fps : (double)r->frames / j->fps;
    double level = md_depth_log_level(pred);
    size_t cap = r->cap;
    for (int ki = 0; ki < j->seq_ks.n; ki++) {
        for (int s = 0; s < j->seeds; s++) {
            seq_track *tr = &r->tracks[(size_t)ki * (size_t)j->seeds + (size_t)s];
            md_anchor_sim sim = {(int)j->seq_ks.v[ki], j->main_noise, j->main_out,
                                 draw_seed(0x5E9, (uint64_t)r->set, image_index, (uint64_t)ki,
                                           (uint64_t)s)};
            md_anchor_set set = {0};
            md_status st = md_anchor_simulate(pred, gt, &sim, &set, err);
            md_scale_options so = md_scale_options_default();
            so.source = MD_SCALE_SOURCE_ANCHORS;
            so.anchors = &set;
            md_scale_record rec;
            memcpy(work->data, pred->data,
                   (size_t)pred->width * (size_t)pred->height * sizeof *work->data);
            if (st == MD_OK)
                st = md_scale_depth(NULL, work, &so, &rec, err);
            md_anchor_set_free(&set);
            if (st != MD_OK)
                return st;
            double v[N_SV];
            v[SV_RAW] = rec.predicted_log_scale;
            v[SV_ORACLE] = oracle_log;
            md_scale_filter_output fo[2];
            for (int f = 0; f < 2; f++) {
                st = md_scale_filter_update(tr->f[f], t, v[SV_RAW], rec.log_scale_sd, level,
                                            &fo[f], err);
                if (st != MD_OK)
                    return st;
            }
            tr->rejected += (size_t)fo[0].rejected;
            v[SV_FILTER] = fo[0].log_scale;
            v[SV_FILTER_LEVEL] = fo[1].log_scale;
            for (int k = 0; k < N_SV; k++) {
                double ar, d1;
                st = scaled_metrics(pred, gt, exp(v[k]), work, &ar, &d1, err);
                if (st != MD_OK)
                    return st;
                tr->abs_rel[k] += ar;
                tr->delta1[k] += d1;
            }
            size_t c = cap;
            st = run_push(tr, r->frames, &c, v, level, err);
            if (st != MD_OK)
                return st;
            if (ki == j->seq_ks.n - 1 && s == j->seeds - 1)
                r->cap = c;
        }
    }
    r->frames++;
    return MD_OK;
}

/* Closes a run: its results per (seq K, seed). */
static md_status run_finish(job_t *j, seq_run *r, md_error *err)
{
    if (r->frames >= 3) {
        double *tmp = md_malloc(r->frames * sizeof *tmp, "sequence", err);
        if (!tmp)
            return MD_ERR_NOMEM;
        for (int ki = 0; ki < j->seq_ks.n; ki++) {
            for (int s = 0; s < j->seeds; s++) {
                seq_track *tr = &r->tracks[(size_t)ki * (size_t)j->seeds + (size_t)s];
                if (j->n_seqs == j->cap_seqs) {
                    size_t c = j->cap_seqs ? 2 * j->cap_seqs : 16;
                    seq_result *p = realloc(j->seqs, c * sizeof *p);
                    if (!p) {
                        free(tmp);
                        return md_fail(err, MD_ERR_NOMEM, "out of memory for the results");
                    }
                    j->seqs = p;
                    j->cap_seqs = c;
                }
                seq_result *res = &j->seqs[j->n_seqs++];
                memset(res, 0, sizeof *res);
                snprintf(res->run, sizeof res->run, "%s", r->folder);
                res->dataset = r->set;
                res->k = (int)j->seq_ks.v[ki];
                res->seed = s;
                res->frames = r->frames;
                res->rejected = tr->rejected;
                for (int k = 0; k < N_SV; k++) {
                    res->jitter[k] = md_jitter(tr->series[k], r->frames);
                    for (size_t f = 0; f < r->frames; f++)
                        tmp[f] = tr->series[k][f] + tr->level[f];
                    res->level_jitter[k] = md_jitter(tmp, r->frames);
                    res->abs_rel[k] = tr->abs_rel[k] / (double)r->frames;
                    res->delta1[k] = tr->delta1[k] / (double)r->frames;
                }
            }
        }
        free(tmp);
    }
    run_free(r);
    return MD_OK;
}

/* ------------------------------------------------------------ one image */

static md_status eval_image(job_t *j, int set, size_t image_index, const md_pair *pair,
                            seq_run *run, md_error *err)
{
    md_depth pred = {0}, gt = {0}, work = {0};
    double *cells = NULL;
    md_status st = base_prediction(j, pair, &pred, err);
    if (st == MD_OK)
        st = md_pair_load_depth(pair, &gt, err);
    if (st == MD_OK && (pred.width != gt.width || pred.height != gt.height))
        st = md_fail(err, MD_ERR_DATA, "%s: prediction %dx%d and depth %dx%d differ in size",
                     pair->depth_path, pred.width, pred.height, gt.width, gt.height);
    if (st == MD_OK)
        st = md_depth_alloc(&work, pred.width, pred.height, err);
    if (st != MD_OK)
        goto done;
    /* the pixels the network saw: keep its mask on the working copy */
    if (pred.mask) {
        free(work.mask);
        work.mask = malloc((size_t)pred.width * (size_t)pred.height);
        if (!work.mask) {
            st = md_fail(err, MD_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(work.mask, pred.mask, (size_t)pred.width * (size_t)pred.height);
    }

    /* reference rows */
    double ref_ar[3], ref_d1[3];
    st = md_abs_rel_delta1(&pred, &gt, &ref_ar[0], &ref_d1[0], err);
    float *p = NULL, *g = NULL;
    size_t n = 0;
    double s_oracle = 1.0;
    if (st == MD_OK)
        st = md_depth_valid_samples(&pred, &gt, &p, &g, &n, err);
    if (st == MD_OK)
        st = md_scale_fit(p, g, n, MD_SCALE_W1, j->lo, j->hi, &s_oracle, err);
    free(p);
    free(g);
    if (st == MD_OK)
        st = scaled_metrics(&pred, &gt, s_oracle, &work, &ref_ar[1], &ref_d1[1], err);
    size_t ncell = (size_t)j->cells_x * (size_t)j->cells_y;
    cells = md_malloc(ncell * sizeof *cells, "cell scales", err);
    if (st == MD_OK && !cells)
        st = MD_ERR_NOMEM;
    if (st == MD_OK) {
        /* a cell needs 1 % of its pixels to have a scale of its own */
        size_t min_px = (size_t)pred.width * (size_t)pred.height / ncell / 100;
        st = md_scale_cell_oracle(&pred, &gt, j->cells_x, j->cells_y, MD_SCALE_W1, j->lo, j->hi,
                                  min_px, cells, err);
    }
    if (st == MD_OK) {
        memcpy(work.data, pred.data, (size_t)pred.width * (size_t)pred.height * sizeof *work.data);
        st = md_depth_apply_cell_scales(&work, j->cells_x, j->cells_y, cells, log(s_oracle), err);
    }
    if (st == MD_OK)
        st = md_abs_rel_delta1(&work, &gt, &ref_ar[2], &ref_d1[2], err);
    if (st != MD_OK)
        goto done;
    for (int r = 0; r < 3; r++)
        add(sum_at(j, set, 0, 0, 0, ROW_BASE + r), ref_ar[r], ref_d1[r]);
    fprintf(j->cells_csv, "%s,%s,%s,%d,%d", j->sets[set].name, pair->rgb_path, pair->depth_path,
            j->cells_x, j->cells_y);
    for (size_t c = 0; c < ncell; c++) {
        if (isfinite(cells[c]))
            fprintf(j->cells_csv, ",%.6f", cells[c]);
        else
            fputs(",", j->cells_csv);
    }
    fputc('\n', j->cells_csv);

    /* anchor rows */
    size_t npix = (size_t)pred.width * (size_t)pred.height;
    for (int ni = 0; ni < j->noises.n; ni++) {
        for (int oi = 0; oi < j->outs.n; oi++) {
            size_t cond = (size_t)ni * (size_t)j->outs.n + (size_t)oi;
            for (int ki = 0; ki < j->ks.n; ki++) {
                for (int s = 0; s < j->seeds; s++) {
                    md_anchor_sim sim = {(int)j->ks.v[ki], j->noises.v[ni], j->outs.v[oi],
                                         draw_seed((uint64_t)set, image_index, cond,
                                                   (uint64_t)ki, (uint64_t)s)};
                    md_anchor_set as = {0};
                    st = md_anchor_simulate(&pred, &gt, &sim, &as, err);
                    if (st != MD_OK)
                        goto done;
                    for (int r = FIRST_ANCHOR_ROW; r < N_ROWS; r++) {
                        md_scale_options so = md_scale_options_default();
                        row_options(r, &so);
                        so.anchors = &as;
                        if (as.count < md_anchor_fit_min_count(so.anchor_fit))
                            continue; /* e.g. scale-shift with one anchor: no row */
                        memcpy(work.data, pred.data, npix * sizeof *work.data);
                        md_scale_record rec;
                        md_error e = {0};
                        st = md_scale_depth(NULL, &work, &so, &rec, &e);
                        md_scale_record_free(&rec);
                        if (st == MD_ERR_DATA)
                            continue; /* a fit the anchors cannot support: counted as missing */
                        double ar, d1;
                        if (st == MD_OK)
                            st = md_abs_rel_delta1(&work, &gt, &ar, &d1, &e);
                        if (st != MD_OK) {
                            *err = e;
                            md_anchor_set_free(&as);
                            goto done;
                        }
                        add(sum_at(j, set, cond, ki, s, r), ar, d1);
                    }
                    md_anchor_set_free(&as);
                }
            }
        }
    }
    if (run)
        st = run_frame(j, run, image_index, pair, &pred, &gt, log(s_oracle), &work, err);
done:
    free(cells);
    md_depth_free(&pred);
    md_depth_free(&gt);
    md_depth_free(&work);
    return st;
}

/* -------------------------------------------------------------- output */

/* mean and sd over seeds of the per-seed dataset means (NaN when a seed has
 * no image with the row). */
static void row_stats(job_t *j, int set, size_t cond, int ki, int row, double *ar, double *ar_sd,
                      double *d1, double *d1_sd, size_t *n_img)
{
    double a[MAX_SEEDS] = {0}, d[MAX_SEEDS] = {0};
    int ns = row < FIRST_ANCHOR_ROW ? 1 : j->seeds;
    *n_img = 0;
    int m = 0;
    for (int s = 0; s < ns; s++) {
        const cell_sum *c = row < FIRST_ANCHOR_ROW ? sum_at(j, set, 0, 0, 0, row)
                                                   : sum_at(j, set, cond, ki, s, row);
        if (c->n == 0)
            continue;
        a[m] = c->abs_rel / (double)c->n;
        d[m] = c->delta1 / (double)c->n;
        *n_img = c->n;
        m++;
    }
    if (m < ns) {
        *ar = *ar_sd = *d1 = *d1_sd = NAN;
        return;
    }
    md_mean_sd(a, (size_t)m, ar, ar_sd);
    md_mean_sd(d, (size_t)m, d1, d1_sd);
    if (row < FIRST_ANCHOR_ROW)
        *ar_sd = *d1_sd = NAN;
}

static int find_cond(const job_t *j, double noise, double out, size_t *cond)
{
    for (int ni = 0; ni < j->noises.n; ni++)
        for (int oi = 0; oi < j->outs.n; oi++)
            if (fabs(j->noises.v[ni] - noise) < 1e-12 && fabs(j->outs.v[oi] - out) < 1e-12) {
                *cond = (size_t)ni * (size_t)j->outs.n + (size_t)oi;
                return 1;
            }
    return 0;
}

static void fmt_stat(char *buf, size_t size, double m, double sd, int digits)
{
    if (!isfinite(m))
        snprintf(buf, size, "-");
    else if (isfinite(sd))
        snprintf(buf, size, "%.*f ± %.*f", digits, m, digits, sd);
    else
        snprintf(buf, size, "%.*f", digits, m);
}

static md_status write_results_csv(job_t *j, md_error *err)
{
    char path[4096];
    cli_path_join(path, sizeof path, j->outdir, "results.csv");
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    fprintf(af.fp, "dataset,noise,outliers,k,method,seed,images,abs_rel,delta1\n");
    for (int set = 0; set < j->n_sets; set++) {
        for (int r = 0; r < FIRST_ANCHOR_ROW; r++) {
            const cell_sum *c = sum_at(j, set, 0, 0, 0, r);
            if (c->n)
                fprintf(af.fp, "%s,,,,%s,,%zu,%.6f,%.6f\n", j->sets[set].name, row_keys[r], c->n,
                        c->abs_rel / (double)c->n, c->delta1 / (double)c->n);
        }
        for (int ni = 0; ni < j->noises.n; ni++)
            for (int oi = 0; oi < j->outs.n; oi++)
                for (int ki = 0; ki < j->ks.n; ki++)
                    for (int r = FIRST_ANCHOR_ROW; r < N_ROWS; r++)
                        for (int s = 0; s < j->seeds; s++) {
                            size_t cond = (size_t)ni * (size_t)j->outs.n + (size_t)oi;
                            const cell_sum *c = sum_at(j, set, cond, ki, s, r);
                            if (!c->n)
                                continue;
                            fprintf(af.fp, "%s,%g,%g,%g,%s,%d,%zu,%.6f,%.6f\n",
                                    j->sets[set].name, j->noises.v[ni], j->outs.v[oi],
                                    j->ks.v[ki], row_keys[r], s, c->n,
                                    c->abs_rel / (double)c->n, c->delta1 / (double)c->n);
                        }
    }
    if (ferror(af.fp)) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed", path);
    }
    return md_atomic_commit(&af, err);
}

/* Mean and sd over seeds of the runs of one (dataset, run, K). */
typedef struct {
    const char *run;
    int dataset, k;
    size_t frames, rejected;
    double jit[N_SV], jit_sd[N_SV], lev[N_SV], lev_sd[N_SV], ar[N_SV], ar_sd[N_SV];
} seq_summary;

static size_t summarize_seqs(const job_t *j, seq_summary *out, size_t max)
{
    size_t m = 0;
    for (size_t i = 0; i < j->n_seqs && m < max; i++) {
        const seq_result *r = &j->seqs[i];
        if (r->seed != 0)
            continue;
        seq_summary *s = &out[m++];
        memset(s, 0, sizeof *s);
        s->run = r->run;
        s->dataset = r->dataset;
        s->k = r->k;
        s->frames = r->frames;
        for (int v = 0; v < N_SV; v++) {
            double a[MAX_SEEDS] = {0}, b[MAX_SEEDS] = {0}, c[MAX_SEEDS] = {0};
            int ns = 0;
            for (size_t q = i; q < j->n_seqs && ns < j->seeds; q++) {
                const seq_result *o = &j->seqs[q];
                if (o->k != r->k || strcmp(o->run, r->run) != 0)
                    continue;
                a[ns] = o->jitter[v];
                b[ns] = o->level_jitter[v];
                c[ns] = o->abs_rel[v];
                if (v == 0)
                    s->rejected += o->rejected;
                ns++;
            }
            md_mean_sd(a, (size_t)ns, &s->jit[v], &s->jit_sd[v]);
            md_mean_sd(b, (size_t)ns, &s->lev[v], &s->lev_sd[v]);
            md_mean_sd(c, (size_t)ns, &s->ar[v], &s->ar_sd[v]);
        }
    }
    return m;
}

static const char *short_run(const char *run)
{
    const char *s = strrchr(run, '/');
    return s ? s + 1 : run;
}

static md_status write_outputs(job_t *j, md_error *err)
{
    md_status st = write_results_csv(j, err);
    if (st != MD_OK)
        return st;
    size_t main_cond = 0;
    bool have_main = find_cond(j, j->main_noise, j->main_out, &main_cond);
    char path[4096], buf[128], buf2[128];

    /* figures */
    char figdir[4096];
    cli_path_join(figdir, sizeof figdir, j->outdir, "fig");
    st = cli_make_dirs(figdir, err);
    if (st != MD_OK)
        return st;
    for (int set = 0; set < j->n_sets && have_main; set++) {
        double x[MAX_LIST], y[N_ROWS][MAX_LIST], e[N_ROWS][MAX_LIST];
        md_plot_series ser[N_ROWS];
        int ns = 0;
        for (int ki = 0; ki < j->ks.n; ki++)
            x[ki] = j->ks.v[ki];
        static const int order[] = {ROW_ROBUST, ROW_MEDIAN, ROW_LSQ, ROW_SHIFT, ROW_MAP,
                                    ROW_BASE,   ROW_ORACLE, ROW_CELLS};
        for (size_t oi = 0; oi < sizeof order / sizeof *order; oi++) {
            int r = order[oi];
            size_t nimg;
            double d1, d1sd;
            for (int ki = 0; ki < j->ks.n; ki++)
                row_stats(j, set, main_cond, ki, r, &y[r][ki], &e[r][ki], &d1, &d1sd, &nimg);
            ser[ns++] = (md_plot_series){row_names[r], x, y[r], e[r], (size_t)j->ks.n,
                                         r < FIRST_ANCHOR_ROW};
        }
        char name[128], title[256];
        snprintf(name, sizeof name, "abs_rel_vs_k_%s.png", j->sets[set].name);
        cli_path_join(path, sizeof path, figdir, name);
        snprintf(title, sizeof title, "%s: AbsRel against anchors (noise %g %%, outliers %g %%)",
                 j->sets[set].name, 100 * j->main_noise, 100 * j->main_out);
        st = md_plot_lines(path, title, "anchors per image (K)", "AbsRel (mean over images)", 1,
                           ser, (size_t)ns, err);
        if (st != MD_OK)
            return st;
    }

    /* report.md */
    cli_path_join(path, sizeof path, j->outdir, "report.md");
    md_atomic_file af;
    st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    FILE *f = af.fp;
    fprintf(f, "# Metric scale from sparse anchors\n\n");
    fprintf(f, "Base model: `%s`. Seed protocol (pixels valid in both maps), metrics per image "
               "then averaged over the dataset; anchor rows: mean ± sd over %d seeds. ",
            short_run(j->model_path), j->seeds);
    fprintf(f, "Anchors: K distinct pixels valid in both maps, depth × (1 + noise·N(0,1)), "
               "gross outliers with the given probability (depth × f, |ln f| uniform in "
               "[ln 1.5, ln 4], either sign). Per-cell oracle: %dx%d cells.\n\n",
            j->cells_x, j->cells_y);
    for (int set = 0; set < j->n_sets && have_main; set++) {
        size_t nimg;
        double a, asd, d, dsd;
        row_stats(j, set, 0, 0, ROW_BASE, &a, &asd, &d, &dsd, &nimg);
        fprintf(f, "## %s (%zu images): noise %g %%, outliers %g %%\n\n", j->sets[set].name,
                nimg, 100 * j->main_noise, 100 * j->main_out);
        fprintf(f, "AbsRel (delta1 below):\n\n| method |");
        for (int ki = 0; ki < j->ks.n; ki++)
            fprintf(f, " K=%g |", j->ks.v[ki]);
        fprintf(f, "\n|---|");
        for (int ki = 0; ki < j->ks.n; ki++)
            fprintf(f, "---|");
        fputc('\n', f);
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                fprintf(f, "\ndelta1:\n\n| method |");
                for (int ki = 0; ki < j->ks.n; ki++)
                    fprintf(f, " K=%g |", j->ks.v[ki]);
                fprintf(f, "\n|---|");
                for (int ki = 0; ki < j->ks.n; ki++)
                    fprintf(f, "---|");
                fputc('\n', f);
            }
            for (int r = 0; r < N_ROWS; r++) {
                fprintf(f, "| %s |", row_names[r]);
                for (int ki = 0; ki < j->ks.n; ki++) {
                    row_stats(j, set, main_cond, ki, r, &a, &asd, &d, &dsd, &nimg);
                    if (pass == 0)
                        fmt_stat(buf, sizeof buf, a, asd, 4);
                    else
                        fmt_stat(buf, sizeof buf, d, dsd, 3);
                    fprintf(f, " %s |", buf);
                }
                fputc('\n', f);
            }
        }
        fprintf(f, "\n![AbsRel against K](fig/abs_rel_vs_k_%s.png)\n\n", j->sets[set].name);
    }

    /* the acceptance check and the conditions at one K */
    for (int ki = 0; ki < j->ks.n; ki++) {
        if (j->ks.v[ki] != 16)
            continue;
        fprintf(f, "## K = 16: every condition, AbsRel relative to the global W1 oracle\n\n");
        fprintf(f, "| dataset | noise | outliers | oracle | robust | robust vs oracle | median "
                   "| median vs oracle | scale map | map vs oracle |\n");
        fprintf(f, "|---|---|---|---|---|---|---|---|---|---|\n");
        for (int set = 0; set < j->n_sets; set++) {
            for (int ni = 0; ni < j->noises.n; ni++)
                for (int oi = 0; oi < j->outs.n; oi++) {
                    size_t cond = (size_t)ni * (size_t)j->outs.n + (size_t)oi, nimg;
                    double o, osd, rb, rbsd, md, mdsd, mp, mpsd, d, dsd;
                    row_stats(j, set, cond, ki, ROW_ORACLE, &o, &osd, &d, &dsd, &nimg);
                    row_stats(j, set, cond, ki, ROW_ROBUST, &rb, &rbsd, &d, &dsd, &nimg);
                    row_stats(j, set, cond, ki, ROW_MEDIAN, &md, &mdsd, &d, &dsd, &nimg);
                    row_stats(j, set, cond, ki, ROW_MAP, &mp, &mpsd, &d, &dsd, &nimg);
                    fmt_stat(buf, sizeof buf, rb, rbsd, 4);
                    fmt_stat(buf2, sizeof buf2, md, mdsd, 4);
                    char b3[128];
                    fmt_stat(b3, sizeof b3, mp, mpsd, 4);
                    fprintf(f, "| %s | %g %% | %g %% | %.4f | %s | %+.1f %% | %s | %+.1f %% | %s | "
                               "%+.1f %% |\n",
                            j->sets[set].name, 100 * j->noises.v[ni], 100 * j->outs.v[oi], o,
                            buf, 100 * (rb / o - 1), buf2, 100 * (md / o - 1), b3,
                            100 * (mp / o - 1));
                }
        }
        fputc('\n', f);
    }

    /* sequences */
    seq_summary sum[256];
    size_t nsum = summarize_seqs(j, sum, sizeof sum / sizeof *sum);
    if (nsum) {
        fprintf(f, "## Sequences: frame-to-frame jitter of ln s (sd of its differences)\n\n");
        fprintf(f, "Anchors re-drawn every frame (noise %g %%, outliers %g %%); scale filter time "
                   "constant %g s, frame times from the frame numbers at %g fps. Level jitter: "
                   "the same for ln s + ln median(base depth), the metric depth level a viewer "
                   "sees flicker. Mean ± sd over %d seeds.\n\n",
                100 * j->main_noise, 100 * j->main_out, j->tau, j->fps, j->seeds);
        fprintf(f, "| run | frames | K | ln s jitter: raw | filtered | filtered+level | oracle "
                   "| level jitter: raw | filtered | filtered+level | oracle | AbsRel: raw | "
                   "filtered | filtered+level | oracle |\n");
        fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < nsum; i++) {
            const seq_summary *s = &sum[i];
            fprintf(f, "| %s/%s | %zu | %d |", j->sets[s->dataset].name, short_run(s->run),
                    s->frames, s->k);
            for (int v = 0; v < N_SV; v++) {
                fmt_stat(buf, sizeof buf, s->jit[v], v == SV_ORACLE ? NAN : s->jit_sd[v], 4);
                fprintf(f, " %s |", buf);
            }
            for (int v = 0; v < N_SV; v++) {
                fmt_stat(buf, sizeof buf, s->lev[v], v == SV_ORACLE ? NAN : s->lev_sd[v], 4);
                fprintf(f, " %s |", buf);
            }
            for (int v = 0; v < N_SV; v++) {
                fmt_stat(buf, sizeof buf, s->ar[v], v == SV_ORACLE ? NAN : s->ar_sd[v], 4);
                fprintf(f, " %s |", buf);
            }
            fputc('\n', f);
        }
        fputc('\n', f);
    }
    if (ferror(f)) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed", path);
    }
    st = md_atomic_commit(&af, err);
    if (st != MD_OK)
        return st;

    /* sequences.csv */
    cli_path_join(path, sizeof path, j->outdir, "sequences.csv");
    st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    fprintf(af.fp, "dataset,run,k,seed,frames,rejected");
    for (int v = 0; v < N_SV; v++)
        fprintf(af.fp, ",jitter_%s,level_jitter_%s,abs_rel_%s,delta1_%s", sv_keys[v], sv_keys[v],
                sv_keys[v], sv_keys[v]);
    fputc('\n', af.fp);
    for (size_t i = 0; i < j->n_seqs; i++) {
        const seq_result *r = &j->seqs[i];
        fprintf(af.fp, "%s,%s,%d,%d,%zu,%zu", j->sets[r->dataset].name, r->run, r->k, r->seed,
                r->frames, r->rejected);
        for (int v = 0; v < N_SV; v++)
            fprintf(af.fp, ",%.6f,%.6f,%.6f,%.6f", r->jitter[v], r->level_jitter[v],
                    r->abs_rel[v], r->delta1[v]);
        fputc('\n', af.fp);
    }
    if (ferror(af.fp)) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed", path);
    }
    st = md_atomic_commit(&af, err);
    if (st != MD_OK)
        return st;

    /* summary.json: the main condition's table and the sequence summary */
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", short_run(j->model_path));
    cJSON_AddNumberToObject(root, "seeds", j->seeds);
    cJSON_AddNumberToObject(root, "noise", j->main_noise);
    cJSON_AddNumberToObject(root, "outliers", j->main_out);
    cJSON *sets = cJSON_AddArrayToObject(root, "datasets");
    for (int set = 0; set < j->n_sets && have_main; set++) {
        cJSON *ds = cJSON_CreateObject();
        cJSON_AddStringToObject(ds, "name", j->sets[set].name);
        cJSON *rows = cJSON_AddObjectToObject(ds, "rows");
        for (int r = 0; r < N_ROWS; r++) {
            cJSON *arr = cJSON_AddArrayToObject(rows, row_keys[r]);
            for (int ki = 0; ki < j->ks.n; ki++) {
                size_t nimg;
                double a, asd, d, dsd;
                row_stats(j, set, main_cond, ki, r, &a, &asd, &d, &dsd, &nimg);
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "k", j->ks.v[ki]);
                if (isfinite(a)) {
                    cJSON_AddNumberToObject(o, "abs_rel", a);
                    cJSON_AddNumberToObject(o, "delta1", d);
                }
                if (isfinite(asd)) {
                    cJSON_AddNumberToObject(o, "abs_rel_sd", asd);
                    cJSON_AddNumberToObject(o, "delta1_sd", dsd);
                }
                cJSON_AddItemToArray(arr, o);
            }
        }
        cJSON_AddItemToArray(sets, ds);
    }
    cJSON *sq = cJSON_AddArrayToObject(root, "sequences");
    for (size_t i = 0; i < nsum; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dataset", j->sets[sum[i].dataset].name);
        cJSON_AddStringToObject(o, "run", short_run(sum[i].run));
        cJSON_AddNumberToObject(o, "k", sum[i].k);
        for (int v = 0; v < N_SV; v++) {
            char key[64];
            snprintf(key, sizeof key, "jitter_%s", sv_keys[v]);
            cJSON_AddNumberToObject(o, key, sum[i].jit[v]);
            snprintf(key, sizeof key, "level_jitter_%s", sv_keys[v]);
            cJSON_AddNumberToObject(o, key, sum[i].lev[v]);
            snprintf(key, sizeof key, "abs_rel_%s", sv_keys[v]);
            cJSON_AddNumberToObject(o, key, sum[i].ar[v]);
        }
        cJSON_AddItemToArray(sq, o);
    }
    cli_path_join(path, sizeof path, j->outdir, "summary.json");
    int rc = cli_write_json(path, root, err);
    cJSON_Delete(root);
    (void)sv_names;
    return rc == 0 ? MD_OK : err->code;
}

/* ---------------------------------------------------------------- main */

static int add_dataset(job_t *j, const char *arg, const char *sequences, md_error *err)
{
    if (j->n_sets == MAX_DATASETS) {
        snprintf(err->message, sizeof err->message, "more than %d datasets", MAX_DATASETS);
        return -1;
    }
    dataset *d = &j->sets[j->n_sets];
    memset(d, 0, sizeof *d);
    const char *eq = strchr(arg, '=');
    const char *src = eq ? eq + 1 : arg;
    if (eq)
        snprintf(d->name, sizeof d->name, "%.*s", (int)(eq - arg), arg);
    else {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", arg);
        size_t n = strlen(tmp);
        while (n > 1 && tmp[n - 1] == '/')
            tmp[--n] = '\0';
        const char *b = strrchr(tmp, '/');
        snprintf(d->name, sizeof d->name, "%s", b ? b + 1 : tmp);
    }
    for (char *c = d->name; *c; c++)
        if (*c == ',' || *c == '/' || *c == ' ')
            *c = '_';
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", src);
    for (char *tok = strtok(buf, "+"); tok; tok = strtok(NULL, "+"))
        if (cli_collect_pairs(tok, &d->pairs, err) != 0) {
            md_pair_list_free(&d->pairs);
            return -1;
        }
    if (sequences) {
        size_t n = strlen(d->name);
        for (const char *p = sequences; (p = strstr(p, d->name)) != NULL; p++)
            if ((p == sequences || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
                d->sequence = 1;
    }
    j->n_sets++;
    return 0;
}

static int run(int argc, char **argv)
{
    const char *out_s = NULL, *model_s = NULL, *k_s = "1,4,16,64,256", *noise_s = "0,0.02,0.05";
    const char *out_rate_s = "0,0.1", *seeds_s = "3", *main_s = "0.02,0.1", *cells_s = "4x4";
    const char *seq_s = NULL, *seq_k_s = "4,16,64", *fps_s = "30", *tau_s = NULL;
    const char *range_s = "0.1,2", *cache_s = NULL, *threads_s = "0";
    bool no_cache = false;
    cli_option options[] = {{"output", 'o', true, &out_s, NULL},
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
    job_t *j = calloc(1, sizeof *j);
    if (!j) {
        free(pos);
        return CLI_EXIT_FAILURE;
    }
    j->tau = md_scale_filter_defaults().time_constant_s;
    bool lists_ok = parse_num_list(k_s, &j->ks) && parse_num_list(noise_s, &j->noises) &&
                    parse_num_list(out_rate_s, &j->outs) && parse_num_list(seq_k_s, &j->seq_ks);
    for (int i = 0; lists_ok && i < j->ks.n; i++)
        lists_ok = j->ks.v[i] >= 1 && j->ks.v[i] <= 100000 && j->ks.v[i] == floor(j->ks.v[i]);
    for (int i = 0; lists_ok && i < j->seq_ks.n; i++)
        lists_ok = j->seq_ks.v[i] >= 1 && j->seq_ks.v[i] <= 100000 &&
                   j->seq_ks.v[i] == floor(j->seq_ks.v[i]);
    for (int i = 0; lists_ok && i < j->noises.n; i++)
        lists_ok = j->noises.v[i] >= 0 && j->noises.v[i] <= 1;
    for (int i = 0; lists_ok && i < j->outs.n; i++)
        lists_ok = j->outs.v[i] >= 0 && j->outs.v[i] <= 1;
    if (npos == 0)
        rc = cli_usage_error(&cmd_eval_anchors, "give at least one dataset");
    else if (!out_s)
        rc = cli_usage_error(&cmd_eval_anchors, "give the report folder with -o DIR");
    else if (!lists_ok)
        rc = cli_usage_error(&cmd_eval_anchors,
                             "--k and --seq-k want whole counts >= 1, --noise and --outliers "
                             "fractions in [0, 1], comma-separated (at most %d)",
                             MAX_LIST);
    else if (!cli_parse_int(seeds_s, &j->seeds) || j->seeds < 1 || j->seeds > MAX_SEEDS)
        rc = cli_usage_error(&cmd_eval_anchors, "--seeds wants 1..%d", MAX_SEEDS);
    else if (!cli_parse_pair(main_s, &j->main_noise, &j->main_out))
        rc = cli_usage_error(&cmd_eval_anchors, "--main wants NOISE,OUTLIERS");
    else if (sscanf(cells_s, "%dx%d", &j->cells_x, &j->cells_y) != 2 || j->cells_x < 1 ||
             j->cells_y < 1 || j->cells_x > 64 || j->cells_y > 64)
        rc = cli_usage_error(&cmd_eval_anchors, "--cells wants CXxCY, e.g. 4x4");
    else if (!cli_parse_double(fps_s, &j->fps) || j->fps <= 0)
        rc = cli_usage_error(&cmd_eval_anchors, "--fps wants a positive number");
    else if (tau_s && (!cli_parse_double(tau_s, &j->tau) || j->tau <= 0))
        rc = cli_usage_error(&cmd_eval_anchors, "--time-constant wants seconds > 0");
    else if (!cli_parse_pair(range_s, &j->lo, &j->hi) || j->lo <= 0 || j->lo > j->hi)
        rc = cli_usage_error(&cmd_eval_anchors, "--range wants LO,HI with 0 < LO <= HI");
    else if (!cli_parse_int(threads_s, &j->mo.threads) || j->mo.threads < 0)
        rc = cli_usage_error(&cmd_eval_anchors, "--threads wants a number >= 0");
    size_t main_cond;
    if (rc == 0 && !find_cond(j, j->main_noise, j->main_out, &main_cond))
        rc = cli_usage_error(&cmd_eval_anchors,
                             "--main %s is not one of the --noise x --outliers conditions", main_s);
    md_error err = {0};
    for (int i = 0; rc == 0 && i < npos; i++)
        if (add_dataset(j, pos[i], seq_s, &err) != 0)
            rc = cli_report(&err);
    free(pos);
    char model_buf[4096], cache_buf[4096];
    if (rc == 0 && !model_s) {
        if (md_default_model_path(model_buf, sizeof model_buf, &err) != MD_OK)
            rc = cli_report(&err);
        model_s = model_buf;
    }
    if (rc == 0 && cli_make_dirs(out_s, &err) != MD_OK)
        rc = cli_report(&err);
    if (rc == 0 && !no_cache) {
        if (!cache_s) {
            cli_path_join(cache_buf, sizeof cache_buf, out_s, ".metricdepth-cache");
            cache_s = cache_buf;
        }
        if (cli_make_dirs(cache_s, &err) != MD_OK)
            rc = cli_report(&err);
    }
    size_t total = 0;
    for (int s = 0; s < j->n_sets; s++)
        total += j->sets[s].pairs.count;
    if (rc == 0 && total == 0) {
        fprintf(stderr, "metricdepth: error: no RGB-D pairs found in the given datasets\n");
        rc = CLI_EXIT_FAILURE;
    }
    char cells_path[4096];
    md_atomic_file cells_af = {0};
    if (rc == 0) {
        j->model_path = model_s;
        j->cache_dir = no_cache ? NULL : cache_s;
        j->outdir = out_s;
        j->sums = calloc((size_t)j->n_sets * n_conds(j) * (size_t)j->ks.n * (size_t)j->seeds *
                             N_ROWS,
                         sizeof *j->sums);
        cli_path_join(cells_path, sizeof cells_path, out_s, "cells.csv");
        if (!j->sums) {
            fprintf(stderr, "metricdepth: error: out of memory\n");
            rc = CLI_EXIT_FAILURE;
        } else if (md_atomic_open(&cells_af, cells_path, &err) != MD_OK) {
            rc = cli_report(&err);
        } else {
            j->cells_csv = cells_af.fp;
            fprintf(j->cells_csv, "dataset,rgb,depth,cells_x,cells_y");
            for (int c = 0; c < j->cells_x * j->cells_y; c++)
                fprintf(j->cells_csv, ",log_scale_%d_%d", c % j->cells_x, c / j->cells_x);
            fputc('\n', j->cells_csv);
        }
    }
    if (rc == 0) {
        fprintf(stderr, "eval-anchors: %zu pairs in %d datasets, model %s\n", total, j->n_sets,
                model_s);
        cli_progress progress;
        cli_progress_start(&progress, "eval-anchors", total);
        for (int s = 0; s < j->n_sets && !j->fatal; s++) {
            seq_run run = {0};
            bool in_run = false;
            for (size_t i = 0; i < j->sets[s].pairs.count && !j->fatal; i++) {
                const md_pair *pair = &j->sets[s].pairs.items[i];
                memset(&err, 0, sizeof err);
                md_status st = MD_OK;
                if (j->sets[s].sequence) {
                    char folder[256];
                    folder_of(folder, sizeof folder, pair->rgb_path);
                    if (in_run && strcmp(folder, run.folder) != 0) {
                        st = run_finish(j, &run, &err);
                        in_run = false;
                    }
                    if (st == MD_OK && !in_run) {
                        st = run_start(j, &run, s, folder, &err);
                        in_run = st == MD_OK;
                    }
                }
                if (st == MD_OK)
                    st = eval_image(j, s, i, pair, in_run ? &run : NULL, &err);
                if (st != MD_OK) {
                    if (progress.tty)
                        fputc('\n', stderr);
                    fprintf(stderr, "metricdepth: error: %s: %s (skipped)\n", pair->rgb_path,
                            err.message);
                    j->failed++;
                    if (st == MD_ERR_NOMEM)
                        j->fatal = 1;
                }
                j->images += st == MD_OK;
                cli_progress_step(&progress, pair->rgb_path);
            }
            if (in_run && run_finish(j, &run, &err) != MD_OK) {
                fprintf(stderr, "metricdepth: error: %s\n", err.message);
                j->fatal = 1;
            }
            run_free(&run);
        }
        cli_progress_finish(&progress);
        if (j->fatal) {
            md_atomic_abort(&cells_af);
            rc = cli_report(&err);
        } else if (j->images == 0) {
            md_atomic_abort(&cells_af);
            fprintf(stderr, "metricdepth: error: no pair could be evaluated; nothing written\n");
            rc = CLI_EXIT_FAILURE;
        } else if (md_atomic_commit(&cells_af, &err) != MD_OK || write_outputs(j, &err) != MD_OK) {
            rc = cli_report(&err);
        } else {
            fprintf(stderr, "wrote %s/report.md (%zu images, %zu from the cache, %zu failed)\n",
                    out_s, j->images, j->cached, j->failed);
            rc = j->failed ? CLI_EXIT_PARTIAL : CLI_EXIT_OK;
        }
    }
    md_model_free(j->model);
    for (int s = 0; s < j->n_sets; s++)
        md_pair_list_free(&j->sets[s].pairs);
    free(j->sums);
    free(j->seqs);
    free(j);
    return rc;
}
