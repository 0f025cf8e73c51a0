/* The anchor experiment (`metricdepth eval-anchors`): anchors simulated
 * from ground truth, every anchor fit and the scale map against the base
 * network and the oracles, and the scale filter on video runs. */
#include "eval/anchor_eval.h"

#include "base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double unit(uint64_t *st) /* [0, 1) */
{
    return (double)(md_splitmix64(st) >> 11) * (1.0 / 9007199254740992.0);
}

static double gauss(uint64_t *st)
{
    double u = unit(st), v = unit(st);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

md_status md_anchor_simulate(const md_depth *pred, const md_depth *gt, const md_anchor_sim *sim,
                             md_anchor_set *out, md_error *err)
{
    memset(out, 0, sizeof *out);
    if (!pred || !gt || !sim || sim->k <= 0 || !(sim->noise >= 0) || !(sim->outliers >= 0) ||
        sim->outliers > 1)
        return md_fail(err, MD_ERR_ARG, "anchor simulation: bad arguments");
    if (pred->width != gt->width || pred->height != gt->height)
        return md_fail(err, MD_ERR_DATA, "anchor simulation: prediction %dx%d, ground truth %dx%d",
                       pred->width, pred->height, gt->width, gt->height);
    size_t npix = (size_t)pred->width * (size_t)pred->height, nvalid = 0;
    for (size_t i = 0; i < npix; i++)
        nvalid += md_depth_valid_at(pred, i) && md_depth_valid_at(gt, i);
    if (nvalid == 0)
        return md_fail(err, MD_ERR_DATA, "anchor simulation: no pixel valid in both maps");
    size_t k = (size_t)sim->k < nvalid ? (size_t)sim->k : nvalid;
    /* ranks among the valid pixels: k distinct ones (Floyd's algorithm) */
    size_t *rank = md_malloc(k * sizeof *rank, "anchor simulation", err);
    out->items = md_malloc(k * sizeof *out->items, "anchor simulation", err);
    if (!rank || !out->items) {
        free(rank);
        md_anchor_set_free(out);
        return MD_ERR_NOMEM;
    }
    uint64_t st = sim->seed;
    size_t m = 0;
    for (size_t j = nvalid - k; j < nvalid; j++) {
        size_t t = (size_t)(md_splitmix64(&st) % (uint64_t)(j + 1));
        bool dup = false;
        for (size_t a = 0; a < m && !dup; a++)
            dup = rank[a] == t;
        rank[m++] = dup ? j : t;
    }
    /* rank -> pixel in one pass: sort the ranks (k is small) */
    for (size_t a = 1; a < k; a++)
        for (size_t b = a; b > 0 && rank[b - 1] > rank[b]; b--) {
            size_t t = rank[b];
            rank[b] = rank[b - 1];
            rank[b - 1] = t;
        }
    size_t r = 0, next = 0;
    for (size_t i = 0; i < npix && next < k; i++) {
        if (!(md_depth_valid_at(pred, i) && md_depth_valid_at(gt, i)))
            continue;
        if (r++ != rank[next])
            continue;
        int x = (int)(i % (size_t)pred->width), y = (int)(i / (size_t)pred->width);
        md_anchor *an = &out->items[next++];
        an->u = (float)x + 0.5f;
        an->v = (float)y + 0.5f;
        an->weight = 1.0f;
        an->depth = gt->data[i];
    }
    out->count = k;
    free(rank);
    /* noise and outliers, drawn in anchor order after the positions */
    for (size_t a = 0; a < k; a++) {
        double d = out->items[a].depth;
        double noisy = d * (1.0 + sim->noise * gauss(&st));
        double u = unit(&st);
        if (u < sim->outliers) {
            double mag = log(1.5) + unit(&st) * (log(4.0) - log(1.5));
            noisy = d * exp(unit(&st) < 0.5 ? -mag : mag);
        }
        out->items[a].depth = (float)(noisy > 1e-3 * d ? noisy : 1e-3 * d);
    }
    return MD_OK;
}

md_status md_abs_rel_delta1(const md_depth *pred, const md_depth *gt, double *abs_rel,
                            double *delta1, md_error *err)
{
    if (pred->width != gt->width || pred->height != gt->height)
        return md_fail(err, MD_ERR_DATA, "metrics: prediction %dx%d, ground truth %dx%d",
                       pred->width, pred->height, gt->width, gt->height);
    size_t npix = (size_t)pred->width * (size_t)pred->height, n = 0, d1 = 0;
    double sum = 0.0;
    for (size_t i = 0; i < npix; i++) {
        if (!(md_depth_valid_at(pred, i) && md_depth_valid_at(gt, i)))
            continue;
        double p = pred->data[i], g = gt->data[i];
        sum += fabs(p - g) / g;
        d1 += p < 1.25 * g && g < 1.25 * p; /* max(p/g, g/p) < 1.25 without dividing */
        n++;
    }
    if (n == 0)
        return md_fail(err, MD_ERR_DATA, "metrics: no pixel valid in both maps");
    *abs_rel = sum / (double)n;
    *delta1 = (double)d1 / (double)n;
    return MD_OK;
}

double md_jitter(const double *x, size_t n)
{
    if (n < 3)
        return NAN;
    double mean = 0.0, ss = 0.0;
    for (size_t t = 1; t < n; t++)
        mean += (x[t] - x[t - 1]) / (double)(n - 1);
    for (size_t t = 1; t < n; t++) {
        double d = x[t] - x[t - 1] - mean;
        ss += d * d;
    }
    return sqrt(ss / (double)(n - 2));
}

void md_mean_sd(const double *v, size_t n, double *mean, double *sd)
{
    double m = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++)
        m += v[i];
    m = n ? m / (double)n : NAN;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(ss / (double)(n - 1)) : NAN;
}

/* ===================================================== the experiment */

static const char *const row_names[MD_ANCHOR_ROWS] = {
    "base network",
    "global W1 oracle",
    "per-cell W1 oracle",
    "image only: encoder scale, ungated",
    "image only: encoder scale, gated",
    "image only: encoder scale map, ungated",
    "image only: encoder scale map, gated",
    "anchors robust (global)",
    "anchors median",
    "anchors w1",
    "anchors lsq",
    "anchors scale-shift",
    "anchors scale map"};
static const char *const row_keys[MD_ANCHOR_ROWS] = {
    "base",         "oracle", "cell_oracle", "image",       "image_gated", "image_map",
    "image_map_gated", "robust", "median",   "w1",          "lsq",         "scale_shift",
    "map"};

const char *md_anchor_row_name(int row)
{
    return row >= 0 && row < MD_ANCHOR_ROWS ? row_names[row] : "unknown";
}

const char *md_anchor_row_key(int row)
{
    return row >= 0 && row < MD_ANCHOR_ROWS ? row_keys[row] : "unknown";
}

md_anchor_eval_options md_anchor_eval_defaults(void)
{
    md_anchor_eval_options o;
    memset(&o, 0, sizeof o);
    const int ks[] = {1, 4, 16, 64, 256}, seq[] = {4, 16, 64};
    o.n_k = 5;
    memcpy(o.k, ks, sizeof ks);
    o.n_noise = 3;
    o.noise[1] = 0.02;
    o.noise[2] = 0.05;
    o.n_outliers = 2;
    o.outliers[1] = 0.1;
    o.seeds = 3;
    o.cells_x = o.cells_y = 4;
    o.lo = 0.1;
    o.hi = 2.0;
    o.n_seq_k = 3;
    memcpy(o.seq_k, seq, sizeof seq);
    o.seq_noise = 0.02;
    o.seq_outliers = 0.1;
    o.fps = 30.0;
    o.filter = md_scale_filter_defaults();
    return o;
}

/* Sums over a dataset's images of one (condition, K, seed, row). */
typedef struct {
    double abs_rel, delta1;
    size_t n;
} row_sum;

#define MAX_SETS 64

struct md_anchor_eval {
    md_anchor_eval_options o;
    int n_sets;
    char *names[MAX_SETS];
    row_sum *sums[MAX_SETS]; /* [cond][k][seed][row] per dataset */
    md_seq_result *seqs;
    size_t n_seqs, cap_seqs;
    md_cell_target *cells;
    size_t n_cells, cap_cells;
    size_t failed;
    /* with image_maps, beside each cell target: its pair, features and ln s* */
    md_pair_list pairs;
    md_features *feats;
    double *oracle_log;
};

static size_t n_conds(const md_anchor_eval_options *o)
{
    return (size_t)o->n_noise * (size_t)o->n_outliers;
}

static size_t sums_per_set(const md_anchor_eval_options *o)
{
    return n_conds(o) * (size_t)o->n_k * (size_t)o->seeds * MD_ANCHOR_ROWS;
}

static row_sum *sum_at(const md_anchor_eval *ae, int set, size_t cond, int k, int seed, int row)
{
    const md_anchor_eval_options *o = &ae->o;
    return &ae->sums[set][((cond * (size_t)o->n_k + (size_t)k) * (size_t)o->seeds +
                           (size_t)seed) *
                              MD_ANCHOR_ROWS +
                          (size_t)row];
}

md_status md_anchor_eval_create(const md_anchor_eval_options *opts, md_anchor_eval **out,
                                md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "anchor evaluation: out is NULL");
    *out = NULL;
    md_anchor_eval_options o = opts ? *opts : md_anchor_eval_defaults();
    bool ok = o.n_k >= 1 && o.n_k <= MD_ANCHOR_MAX_LIST && o.n_noise >= 1 &&
              o.n_noise <= MD_ANCHOR_MAX_LIST && o.n_outliers >= 1 &&
              o.n_outliers <= MD_ANCHOR_MAX_LIST && o.n_seq_k >= 0 &&
              o.n_seq_k <= MD_ANCHOR_MAX_LIST && o.seeds >= 1 && o.seeds <= MD_ANCHOR_MAX_SEEDS &&
              o.cells_x >= 1 && o.cells_y >= 1 && o.lo > 0 && o.hi >= o.lo && o.fps > 0 &&
              o.seq_noise >= 0 && o.seq_outliers >= 0 && o.seq_outliers <= 1;
    for (int i = 0; ok && i < o.n_k; i++)
        ok = o.k[i] >= 1;
    for (int i = 0; ok && i < o.n_seq_k; i++)
        ok = o.seq_k[i] >= 1;
    for (int i = 0; ok && i < o.n_noise; i++)
        ok = o.noise[i] >= 0;
    for (int i = 0; ok && i < o.n_outliers; i++)
        ok = o.outliers[i] >= 0 && o.outliers[i] <= 1;
    if (!ok)
        return md_fail(err, MD_ERR_ARG,
                       "anchor evaluation: invalid options (lists of 1..%d positive counts, "
                       "noise >= 0, outlier rates in [0, 1], 1..%d seeds, cells >= 1, "
                       "0 < lo <= hi, fps > 0)",
                       MD_ANCHOR_MAX_LIST, MD_ANCHOR_MAX_SEEDS);
    md_scale_filter *probe;
    md_status st = md_scale_filter_new(&o.filter, &probe, err);
    if (st != MD_OK)
        return st;
    md_scale_filter_free(probe);
    md_anchor_eval *ae = md_calloc(1, sizeof *ae, "anchor evaluation", err);
    if (!ae)
        return MD_ERR_NOMEM;
    ae->o = o;
    *out = ae;
    return MD_OK;
}

void md_anchor_eval_free(md_anchor_eval *ae)
{
    if (!ae)
        return;
    for (int s = 0; s < ae->n_sets; s++) {
        free(ae->names[s]);
        free(ae->sums[s]);
    }
    for (size_t i = 0; i < ae->n_cells; i++) {
        free(ae->cells[i].rgb);
        free(ae->cells[i].depth);
        free(ae->cells[i].log_scales);
    }
    free(ae->cells);
    free(ae->seqs);
    for (size_t i = 0; ae->feats && i < ae->n_cells; i++)
        md_features_free(&ae->feats[i]);
    free(ae->feats);
    free(ae->oracle_log);
    md_pair_list_free(&ae->pairs);
    free(ae);
}

const md_anchor_eval_options *md_anchor_eval_get_options(const md_anchor_eval *ae)
{
    return &ae->o;
}

int md_anchor_eval_count(const md_anchor_eval *ae)
{
    return ae->n_sets;
}

const char *md_anchor_eval_name(const md_anchor_eval *ae, int set)
{
    return set >= 0 && set < ae->n_sets ? ae->names[set] : "";
}

size_t md_anchor_eval_failed(const md_anchor_eval *ae)
{
    return ae->failed;
}

size_t md_anchor_eval_sequences(const md_anchor_eval *ae, const md_seq_result **out)
{
    *out = ae->seqs;
    return ae->n_seqs;
}

size_t md_anchor_eval_cells(const md_anchor_eval *ae, const md_cell_target **out)
{
    *out = ae->cells;
    return ae->n_cells;
}

md_anchor_stat md_anchor_eval_stat(const md_anchor_eval *ae, int set, int noise_i, int outlier_i,
                                   int k_i, int row, int seed)
{
    md_anchor_stat st = {NAN, NAN, NAN, NAN, 0};
    const md_anchor_eval_options *o = &ae->o;
    if (set < 0 || set >= ae->n_sets || row < 0 || row >= MD_ANCHOR_ROWS || noise_i < 0 ||
        noise_i >= o->n_noise || outlier_i < 0 || outlier_i >= o->n_outliers || k_i < 0 ||
        k_i >= o->n_k || seed >= o->seeds)
        return st;
    bool ref = row < MD_ANCHOR_FIRST_FIT_ROW;
    size_t cond = (size_t)noise_i * (size_t)o->n_outliers + (size_t)outlier_i;
    double a[MD_ANCHOR_MAX_SEEDS], d[MD_ANCHOR_MAX_SEEDS];
    int first = seed >= 0 ? seed : 0, last = ref ? first : seed >= 0 ? seed : o->seeds - 1, m = 0;
    for (int s = first; s <= last; s++) {
        const row_sum *c = ref ? sum_at(ae, set, 0, 0, 0, row) : sum_at(ae, set, cond, k_i, s, row);
        if (c->n == 0)
            return st;
        a[m] = c->abs_rel / (double)c->n;
        d[m] = c->delta1 / (double)c->n;
        st.images = c->n;
        m++;
    }
    md_mean_sd(a, (size_t)m, &st.abs_rel, &st.abs_rel_sd);
    md_mean_sd(d, (size_t)m, &st.delta1, &st.delta1_sd);
    return st;
}

static void add(row_sum *c, double abs_rel, double delta1)
{
    c->abs_rel += abs_rel;
    c->delta1 += delta1;
    c->n++;
}

/* A seed for one draw: every index mixed in, so draws are independent and a
 * given (dataset, image, condition, K, seed) always gets the same anchors. */
static uint64_t draw_seed(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e)
{
    uint64_t st = 0x6A09E667F3BCC909ull, h = 0;
    const uint64_t v[5] = {a, b, c, d, e};
    for (int i = 0; i < 5; i++) {
        st ^= v[i] + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
        h = md_splitmix64(&st);
    }
    return h;
}

/* The anchor rows' scale options. */
static void row_options(int row, md_scale_options *o)
{
    o->source = MD_SCALE_SOURCE_ANCHORS;
    o->scale_map = row == MD_ANCHOR_ROW_MAP;
    o->anchor_fit = row == MD_ANCHOR_ROW_MEDIAN  ? MD_ANCHOR_FIT_MEDIAN
                    : row == MD_ANCHOR_ROW_W1    ? MD_ANCHOR_FIT_W1
                    : row == MD_ANCHOR_ROW_LSQ   ? MD_ANCHOR_FIT_LSQ
                    : row == MD_ANCHOR_ROW_SHIFT ? MD_ANCHOR_FIT_SCALE_SHIFT
                                                 : MD_ANCHOR_FIT_ROBUST;
}

/* work = pred (data only; work shares pred's size and a copy of its mask). */
static void reset(md_depth *work, const md_depth *pred)
{
    memcpy(work->data, pred->data, (size_t)pred->width * (size_t)pred->height * sizeof *pred->data);
}

/* AbsRel / delta1 of pred scaled by s, through work. */
static md_status scaled_metrics(const md_depth *pred, const md_depth *gt, double s,
                                md_depth *work, double *ar, double *d1, md_error *err)
{
    size_t n = (size_t)pred->width * (size_t)pred->height;
    float f = (float)s;
    for (size_t i = 0; i < n; i++)
        work->data[i] = pred->data[i] * f;
    return md_abs_rel_delta1(work, gt, ar, d1, err);
}

/* --------------------------------------------------------- sequences */

/* The first number in a file name ("frame-000935.color.png" -> 935), -1 if none. */
static long frame_number(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (const char *p = base; *p; p++)
        if (*p >= '0' && *p <= '9')
            return strtol(p, NULL, 10);
    return -1;
}

static void folder_of(char *buf, size_t size, const char *path)
{
    const char *slash = strrchr(path, '/');
    snprintf(buf, size, "%.*s", slash ? (int)(slash - path) : 0, path);
}

/* One (K, seed) track of a video run: its two filters and series. */
typedef struct {
    md_scale_filter *f[2];          /* on ln s alone, with the level input */
    double *series[MD_SEQ_VARIANTS]; /* ln s per frame */
    double *level;                  /* ln median base depth per frame */
    double abs_rel[MD_SEQ_VARIANTS], delta1[MD_SEQ_VARIANTS];
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
    for (size_t t = 0; r->tracks && t < r->n_tracks; t++) {
        md_scale_filter_free(r->tracks[t].f[0]);
        md_scale_filter_free(r->tracks[t].f[1]);
        for (int v = 0; v < MD_SEQ_VARIANTS; v++)
            free(r->tracks[t].series[v]);
        free(r->tracks[t].level);
    }
    free(r->tracks);
    memset(r, 0, sizeof *r);
}

static md_status run_start(const md_anchor_eval *ae, seq_run *r, int set, const char *folder,
                           md_error *err)
{
    memset(r, 0, sizeof *r);
    snprintf(r->folder, sizeof r->folder, "%s", folder);
    r->set = set;
    r->n_tracks = (size_t)ae->o.n_seq_k * (size_t)ae->o.seeds;
    r->tracks = md_calloc(r->n_tracks ? r->n_tracks : 1, sizeof *r->tracks, "sequence", err);
    if (!r->tracks)
        return MD_ERR_NOMEM;
    for (size_t t = 0; t < r->n_tracks; t++) {
        md_scale_filter_options fo = ae->o.filter;
        for (int f = 0; f < 2; f++) {
            fo.use_level = f;
            md_status st = md_scale_filter_new(&fo, &r->tracks[t].f[f], err);
            if (st != MD_OK)
                return st;
        }
    }
    return MD_OK;
}

/* Makes room for one more frame in every track. */
static md_status run_reserve(seq_run *r, md_error *err)
{
    if (r->frames < r->cap)
        return MD_OK;
    size_t c = r->cap ? 2 * r->cap : 64;
    for (size_t t = 0; t < r->n_tracks; t++) {
        seq_track *tr = &r->tracks[t];
        for (int v = 0; v <= MD_SEQ_VARIANTS; v++) {
            double **arr = v < MD_SEQ_VARIANTS ? &tr->series[v] : &tr->level;
            double *p = realloc(*arr, c * sizeof *p);
            if (!p)
                return md_fail(err, MD_ERR_NOMEM, "out of memory for a sequence");
            *arr = p;
        }
    }
    r->cap = c;
    return MD_OK;
}

/* One frame of the current run, for every (K, seed) track. */
static md_status run_frame(md_anchor_eval *ae, seq_run *r, size_t image, const md_pair *pair,
                           const md_depth *pred, const md_depth *gt, double oracle_log,
                           md_depth *work, md_error *err)
{
    md_status st = run_reserve(r, err);
    if (st != MD_OK)
        return st;
    long fn = frame_number(pair->rgb_path);
    double t = (fn >= 0 ? (double)fn : (double)r->frames) / ae->o.fps;
    double level = md_depth_log_level(pred);
    for (int ki = 0; ki < ae->o.n_seq_k; ki++) {
        for (int s = 0; s < ae->o.seeds; s++) {
            seq_track *tr = &r->tracks[(size_t)ki * (size_t)ae->o.seeds + (size_t)s];
            md_anchor_sim sim = {ae->o.seq_k[ki], ae->o.seq_noise, ae->o.seq_outliers,
                                 draw_seed(0x5E9, (uint64_t)r->set, image, (uint64_t)ki,
                                           (uint64_t)s)};
            md_anchor_set set = {0};
            st = md_anchor_simulate(pred, gt, &sim, &set, err);
            md_scale_options so = md_scale_options_default();
            so.source = MD_SCALE_SOURCE_ANCHORS;
            so.anchors = &set;
            md_scale_record rec;
            reset(work, pred);
            if (st == MD_OK)
                st = md_scale_depth(NULL, NULL, work, &so, &rec, err);
            md_anchor_set_free(&set);
            if (st != MD_OK)
                return st;
            double v[MD_SEQ_VARIANTS];
            v[MD_SEQ_RAW] = rec.predicted_log_scale;
            v[MD_SEQ_ORACLE] = oracle_log;
            for (int f = 0; f < 2; f++) {
                md_scale_filter_output fo;
                st = md_scale_filter_update(tr->f[f], t, v[MD_SEQ_RAW], rec.log_scale_sd, level,
                                            &fo, err);
                if (st != MD_OK)
                    return st;
                v[f ? MD_SEQ_FILTERED_LEVEL : MD_SEQ_FILTERED] = fo.log_scale;
                if (!f)
                    tr->rejected += (size_t)fo.rejected;
            }
            for (int k = 0; k < MD_SEQ_VARIANTS; k++) {
                double ar, d1;
                st = scaled_metrics(pred, gt, exp(v[k]), work, &ar, &d1, err);
                if (st != MD_OK)
                    return st;
                tr->abs_rel[k] += ar;
                tr->delta1[k] += d1;
                tr->series[k][r->frames] = v[k];
            }
            tr->level[r->frames] = level;
        }
    }
    r->frames++;
    return MD_OK;
}

/* Closes a run: one result per (K, seed). */
static md_status run_finish(md_anchor_eval *ae, seq_run *r, md_error *err)
{
    md_status st = MD_OK;
    double *tmp = r->frames >= 3 ? md_malloc(r->frames * sizeof *tmp, "sequence", err) : NULL;
    if (r->frames >= 3 && !tmp)
        st = MD_ERR_NOMEM;
    for (int ki = 0; st == MD_OK && tmp && ki < ae->o.n_seq_k; ki++) {
        for (int s = 0; st == MD_OK && s < ae->o.seeds; s++) {
            seq_track *tr = &r->tracks[(size_t)ki * (size_t)ae->o.seeds + (size_t)s];
            if (ae->n_seqs == ae->cap_seqs) {
                size_t c = ae->cap_seqs ? 2 * ae->cap_seqs : 16;
                md_seq_result *p = realloc(ae->seqs, c * sizeof *p);
                if (!p) {
                    st = md_fail(err, MD_ERR_NOMEM, "out of memory for the sequence results");
                    break;
                }
                ae->seqs = p;
                ae->cap_seqs = c;
            }
            md_seq_result *res = &ae->seqs[ae->n_seqs++];
            memset(res, 0, sizeof *res);
            snprintf(res->run, sizeof res->run, "%s", r->folder);
            res->set = r->set;
            res->k = ae->o.seq_k[ki];
            res->seed = s;
            res->frames = r->frames;
            res->rejected = tr->rejected;
            for (int v = 0; v < MD_SEQ_VARIANTS; v++) {
                res->jitter[v] = md_jitter(tr->series[v], r->frames);
                for (size_t f = 0; f < r->frames; f++)
                    tmp[f] = tr->series[v][f] + tr->level[f];
                res->level_jitter[v] = md_jitter(tmp, r->frames);
                res->abs_rel[v] = tr->abs_rel[v] / (double)r->frames;
                res->delta1[v] = tr->delta1[v] / (double)r->frames;
            }
        }
    }
    free(tmp);
    run_free(r);
    return st;
}

/* ------------------------------------------------------------ one image */

static md_status keep_cells(md_anchor_eval *ae, int set, const md_pair *pair,
                            const double *cells, md_features *feat, double oracle_log,
                            md_error *err)
{
    if (ae->n_cells == ae->cap_cells) {
        size_t c = ae->cap_cells ? 2 * ae->cap_cells : 64;
        md_cell_target *p = realloc(ae->cells, c * sizeof *p);
        if (!p)
            return md_fail(err, MD_ERR_NOMEM, "out of memory for the cell targets");
        ae->cells = p;
        md_features *f = realloc(ae->feats, c * sizeof *f);
        if (!f)
            return md_fail(err, MD_ERR_NOMEM, "out of memory for the features");
        ae->feats = f;
        double *o = realloc(ae->oracle_log, c * sizeof *o);
        if (!o)
            return md_fail(err, MD_ERR_NOMEM, "out of memory for the oracle scales");
        ae->oracle_log = o;
        ae->cap_cells = c;
    }
    if (ae->o.image_maps) {
        md_status st = md_pair_list_append(&ae->pairs, pair, err);
        if (st != MD_OK)
            return st;
    }
    size_t n = (size_t)ae->o.cells_x * (size_t)ae->o.cells_y;
    md_cell_target t = {set, strdup(pair->rgb_path), strdup(pair->depth_path),
                        malloc(n * sizeof *t.log_scales)};
    if (!t.rgb || !t.depth || !t.log_scales) {
        free(t.rgb);
        free(t.depth);
        free(t.log_scales);
        return md_fail(err, MD_ERR_NOMEM, "out of memory for the cell targets");
    }
    memcpy(t.log_scales, cells, n * sizeof *cells);
    ae->feats[ae->n_cells] = *feat; /* takes the features over */
    memset(feat, 0, sizeof *feat);
    ae->oracle_log[ae->n_cells] = oracle_log;
    ae->cells[ae->n_cells++] = t;
    return MD_OK;
}

static md_status eval_image(md_anchor_eval *ae, md_evaluator *ev, int set, size_t image,
                            const md_pair *pair, seq_run *run, md_error *err)
{
    const md_anchor_eval_options *o = &ae->o;
    md_depth pred = {0}, gt = {0}, work = {0};
    md_features feat = {0};
    float *p = NULL, *g = NULL;
    size_t ncell = (size_t)o->cells_x * (size_t)o->cells_y;
    double *cells = md_malloc(ncell * sizeof *cells, "cell scales", err);
    md_status st = cells ? md_eval_base(ev, pair, &pred, o->image_maps ? &feat : NULL, NULL, err)
                         : MD_ERR_NOMEM;
    if (st == MD_OK)
        st = md_pair_load_depth(pair, &gt, err);
    if (st == MD_OK && (pred.width != gt.width || pred.height != gt.height))
        st = md_fail(err, MD_ERR_DATA, "%s: prediction %dx%d and depth %dx%d differ in size",
                     pair->depth_path, pred.width, pred.height, gt.width, gt.height);
    if (st == MD_OK)
        st = md_depth_alloc(&work, pred.width, pred.height, err);
    size_t npix = (size_t)pred.width * (size_t)pred.height;
    if (st == MD_OK && pred.mask) { /* the pixels the network saw */
        free(work.mask);
        work.mask = md_malloc(npix, "depth mask", err);
        if (!work.mask)
            st = MD_ERR_NOMEM;
        else
            memcpy(work.mask, pred.mask, npix);
    }
    /* reference rows */
    double ar[3], d1[3], s_oracle = 1.0;
    size_t n = 0;
    if (st == MD_OK)
        st = md_abs_rel_delta1(&pred, &gt, &ar[0], &d1[0], err);
    if (st == MD_OK)
        st = md_depth_valid_samples(&pred, &gt, &p, &g, &n, err);
    if (st == MD_OK)
        st = md_scale_fit(p, g, n, MD_SCALE_W1, o->lo, o->hi, &s_oracle, err);
    if (st == MD_OK)
        st = scaled_metrics(&pred, &gt, s_oracle, &work, &ar[1], &d1[1], err);
    /* a cell needs 1 % of its pixels for a scale of its own, else the global oracle's */
    if (st == MD_OK)
        st = md_scale_cell_oracle(&pred, &gt, o->cells_x, o->cells_y, MD_SCALE_W1, o->lo, o->hi,
                                  npix / ncell / 100, cells, err);
    if (st == MD_OK) {
        reset(&work, &pred);
        st = md_depth_apply_cell_scales(&work, o->cells_x, o->cells_y, cells, log(s_oracle), err);
    }
    if (st == MD_OK)
        st = md_abs_rel_delta1(&work, &gt, &ar[2], &d1[2], err);
    if (st != MD_OK)
        goto done;

    /* anchor rows: everything of this image first, added at the end so that
     * a failing image leaves no partial rows */
    size_t per_image = n_conds(o) * (size_t)o->n_k * (size_t)o->seeds * MD_ANCHOR_ROWS;
    row_sum *mine = md_calloc(per_image, sizeof *mine, "anchor rows", err);
    if (!mine) {
        st = MD_ERR_NOMEM;
        goto done;
    }
    for (int ni = 0; ni < o->n_noise && st == MD_OK; ni++) {
        for (int oi = 0; oi < o->n_outliers && st == MD_OK; oi++) {
            size_t cond = (size_t)ni * (size_t)o->n_outliers + (size_t)oi;
            for (int ki = 0; ki < o->n_k && st == MD_OK; ki++) {
                for (int s = 0; s < o->seeds && st == MD_OK; s++) {
                    md_anchor_sim sim = {o->k[ki], o->noise[ni], o->outliers[oi],
                                         draw_seed((uint64_t)set, image, cond, (uint64_t)ki,
                                                   (uint64_t)s)};
                    md_anchor_set as = {0};
                    st = md_anchor_simulate(&pred, &gt, &sim, &as, err);
                    for (int r = MD_ANCHOR_FIRST_FIT_ROW; st == MD_OK && r < MD_ANCHOR_ROWS;
                         r++) {
                        md_scale_options so = md_scale_options_default();
                        row_options(r, &so);
                        so.anchors = &as;
                        if (as.count < md_anchor_fit_min_count(so.anchor_fit))
                            continue; /* scale-shift with fewer than 3 anchors: no row */
                        reset(&work, &pred);
                        md_scale_record rec;
                        md_error e = {0};
                        md_status fs = md_scale_depth(NULL, NULL, &work, &so, &rec, &e);
                        md_scale_record_free(&rec);
                        if (fs == MD_ERR_DATA)
                            continue; /* anchors that cannot support the fit: no row */
                        if (fs != MD_OK) {
                            st = fs;
                            if (err)
                                *err = e;
                            break;
                        }
                        double a, d;
                        st = md_abs_rel_delta1(&work, &gt, &a, &d, err);
                        if (st == MD_OK)
                            add(&mine[((cond * (size_t)o->n_k + (size_t)ki) * (size_t)o->seeds +
                                       (size_t)s) *
                                          MD_ANCHOR_ROWS +
                                      (size_t)r],
                                a, d);
                    }
                    md_anchor_set_free(&as);
                }
            }
        }
    }
    if (st == MD_OK && run)
        st = run_frame(ae, run, image, pair, &pred, &gt, log(s_oracle), &work, err);
    if (st == MD_OK)
        st = keep_cells(ae, set, pair, cells, &feat, log(s_oracle), err);
    if (st == MD_OK) {
        for (int r = 0; r <= MD_ANCHOR_ROW_CELLS; r++) /* the image-only rows come later */
            add(sum_at(ae, set, 0, 0, 0, r), ar[r], d1[r]);
        row_sum *all = ae->sums[set];
        for (size_t i = 0; i < per_image; i++) {
            all[i].abs_rel += mine[i].abs_rel;
            all[i].delta1 += mine[i].delta1;
            all[i].n += mine[i].n;
        }
    }
    free(mine);
done:
    free(p);
    free(g);
    free(cells);
    md_features_free(&feat);
    md_depth_free(&pred);
    md_depth_free(&gt);
    md_depth_free(&work);
    return st;
}

md_status md_anchor_eval_dataset(md_anchor_eval *ae, md_evaluator *ev, const char *name,
                                 const md_pair_list *pairs, int sequence,
                                 const md_eval_callbacks *cb, md_error *err)
{
    if (!ae || !ev || !name || !pairs)
        return md_fail(err, MD_ERR_ARG, "anchor evaluation: NULL argument");
    if (ae->n_sets == MAX_SETS)
        return md_fail(err, MD_ERR_ARG, "anchor evaluation: more than %d datasets", MAX_SETS);
    int set = ae->n_sets;
    ae->names[set] = strdup(name);
    ae->sums[set] = md_calloc(sums_per_set(&ae->o), sizeof *ae->sums[set], "anchor rows", err);
    if (!ae->names[set] || !ae->sums[set]) {
        free(ae->names[set]);
        free(ae->sums[set]);
        return md_fail(err, MD_ERR_NOMEM, "out of memory for the anchor rows");
    }
    ae->n_sets++;
    seq_run run = {0};
    bool in_run = false;
    md_status st = MD_OK;
    for (size_t i = 0; i < pairs->count && st == MD_OK; i++) {
        const md_pair *pair = &pairs->items[i];
        md_error e = {0};
        md_status ps = MD_OK;
        if (sequence) {
            char folder[256];
            folder_of(folder, sizeof folder, pair->rgb_path);
            if (in_run && strcmp(folder, run.folder) != 0) {
                ps = run_finish(ae, &run, &e);
                in_run = false;
            }
            if (ps == MD_OK && !in_run) {
                ps = run_start(ae, &run, set, folder, &e);
                in_run = ps == MD_OK;
            }
        }
        if (ps == MD_OK)
            ps = eval_image(ae, ev, set, i, pair, in_run ? &run : NULL, &e);
        if (ps != MD_OK) {
            ae->failed++;
            if (ps == MD_ERR_NOMEM) { /* the rest would fail the same way */
                st = ps;
                if (err)
                    *err = e;
            }
        }
        if (cb && cb->progress) {
            md_eval_progress p = {i + 1, pairs->count, pair->rgb_path, ps != MD_OK ? &e : NULL};
            cb->progress(cb->user, &p);
        }
    }
    if (in_run) {
        md_status fs = run_finish(ae, &run, err);
        if (st == MD_OK)
            st = fs;
    }
    run_free(&run);
    return st;
}

/* ------------------------------------------------- image-only rows */

/* The folder of a path, as a new string (the group of a training sample). */
static char *group_of(const char *path)
{
    char buf[4096];
    folder_of(buf, sizeof buf, path);
    return strdup(buf);
}

/* Trains on the kept pairs outside held_out whose target (ln s* when cell <
 * 0, else that cell's) is finite. *out NULL when fewer than 10. */
static md_status train_on_others(md_anchor_eval *ae, int held_out, int cell, char **groups,
                                 md_scale_model **out, md_error *err)
{
    *out = NULL;
    md_scale_sample *sm = md_calloc(ae->n_cells, sizeof *sm, "training samples", err);
    if (!sm)
        return MD_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < ae->n_cells; i++) {
        double y = cell < 0 ? ae->oracle_log[i] : ae->cells[i].log_scales[cell];
        if (ae->cells[i].set == held_out || !isfinite(y) || ae->feats[i].n == 0)
            continue;
        sm[n].features = &ae->feats[i];
        sm[n].log_scale = y;
        sm[n].group = groups[i];
        n++;
    }
    md_status st = MD_OK;
    if (n >= 10) {
        md_train_options to = md_train_defaults();
        to.arch = MD_SCALE_ARCH_ENCODER;
        st = md_scale_model_fit(sm, n, &to, out, NULL, err);
    }
    free(sm);
    return st;
}

md_status md_anchor_eval_image_maps(md_anchor_eval *ae, md_evaluator *ev,
                                    const md_eval_callbacks *cb, md_error *err)
{
    if (!ae || !ev)
        return md_fail(err, MD_ERR_ARG, "anchor evaluation: NULL argument");
    if (!ae->o.image_maps || ae->n_sets < 2 || ae->n_cells == 0 || ae->feats[0].n == 0)
        return MD_OK; /* nothing to train on: the rows stay empty */
    const md_anchor_eval_options *o = &ae->o;
    int nc = o->cells_x * o->cells_y;
    char **groups = md_calloc(ae->n_cells, sizeof *groups, "groups", err);
    md_scale_model **models = md_calloc((size_t)nc + 1, sizeof *models, "cell models", err);
    double *ls = md_malloc((size_t)nc * 2 * sizeof *ls, "cell scales", err);
    md_status st = groups && models && ls ? MD_OK : MD_ERR_NOMEM;
    for (size_t i = 0; st == MD_OK && i < ae->n_cells; i++)
        if (!(groups[i] = group_of(ae->cells[i].rgb)))
            st = md_fail(err, MD_ERR_NOMEM, "out of memory for the groups");
    size_t done = 0;
    for (int set = 0; st == MD_OK && set < ae->n_sets; set++) {
        /* models[0]: ln s*; models[1 + c]: cell c */
        for (int m = 0; st == MD_OK && m <= nc; m++)
            st = train_on_others(ae, set, m - 1, groups, &models[m], err);
        for (size_t i = 0; st == MD_OK && i < ae->n_cells; i++) {
            if (ae->cells[i].set != set)
                continue;
            const md_pair *pair = &ae->pairs.items[i];
            md_error e = {0};
            md_depth pred = {0}, gt = {0}, work = {0};
            md_status ps = models[0] ? MD_OK : MD_ERR_DATA;
            md_scale_estimate est;
            if (ps == MD_OK)
                ps = md_eval_base(ev, pair, &pred, NULL, NULL, &e);
            if (ps == MD_OK)
                ps = md_pair_load_depth(pair, &gt, &e);
            if (ps == MD_OK)
                ps = md_depth_alloc(&work, pred.width, pred.height, &e);
            if (ps == MD_OK)
                ps = md_scale_model_estimate(models[0], NULL, &ae->feats[i], &est, &e);
            double ar[4], d1[4];
            for (int c = 0; ps == MD_OK && c < nc; c++) {
                md_scale_estimate ce = est;
                if (models[1 + c])
                    ps = md_scale_model_estimate(models[1 + c], NULL, &ae->feats[i], &ce, &e);
                ls[c] = ce.log_scale;              /* ungated */
                ls[nc + c] = ce.weight * ce.log_scale; /* gated */
            }
            for (int r = 0; ps == MD_OK && r < 4; r++) {
                double g = r == 0 ? est.log_scale : est.weight * est.log_scale;
                if (r < 2) {
                    ps = scaled_metrics(&pred, &gt, exp(g), &work, &ar[r], &d1[r], &e);
                } else {
                    reset(&work, &pred);
                    ps = md_depth_apply_cell_scales(&work, o->cells_x, o->cells_y,
                                                    ls + (r == 3 ? nc : 0), 0.0, &e);
                    if (ps == MD_OK)
                        ps = md_abs_rel_delta1(&work, &gt, &ar[r], &d1[r], &e);
                }
            }
            if (ps == MD_OK)
                for (int r = 0; r < 4; r++)
                    add(sum_at(ae, set, 0, 0, 0, MD_ANCHOR_ROW_IMAGE + r), ar[r], d1[r]);
            md_depth_free(&pred);
            md_depth_free(&gt);
            md_depth_free(&work);
            if (ps == MD_ERR_NOMEM) {
                st = ps;
                if (err)
                    *err = e;
            }
            if (cb && cb->progress) {
                md_eval_progress pr = {++done, ae->n_cells, pair->rgb_path,
                                       ps != MD_OK ? &e : NULL};
                cb->progress(cb->user, &pr);
            }
        }
        for (int m = 0; m <= nc; m++) {
            md_scale_model_free(models[m]);
            models[m] = NULL;
        }
    }
    for (size_t i = 0; groups && i < ae->n_cells; i++)
        free(groups[i]);
    free(groups);
    free(models);
    free(ls);
    return st;
}
