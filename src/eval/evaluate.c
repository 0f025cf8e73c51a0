/* The evaluation experiment (the seed report's): for each RGB-D pair the base
 * prediction (cached), the oracle scale, the scale model's estimate, and the
 * metrics of unscaled, oracle, adaptive, gated and constant-scale depth; the
 * train/test protocol with its constant baseline; and the per-split tables.
 * `fit-scales` and `eval` are thin shells over these calls. */
#include "base/base.h"
#include "eval/fit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

double md_gap_closed(double unscaled, double method, double oracle)
{
    double den = unscaled - oracle;
    if (!(den != 0.0) || !isfinite(den))
        return NAN;
    return (unscaled - method) / den;
}

md_eval_options md_eval_options_default(void)
{
    md_eval_options o;
    memset(&o, 0, sizeof o);
    o.protocol = MD_PROTOCOL_SEED;
    o.oracle_method = MD_SCALE_W1;
    o.lo = 0.1;
    o.hi = 2.0;
    return o;
}

struct md_evaluator {
    md_eval_options o;
    md_model *own_model; /* opened here (o.model was NULL) */
};

md_status md_evaluator_create(const md_eval_options *opts, md_evaluator **out, md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "evaluator: NULL argument");
    *out = NULL;
    if (!opts || (!opts->model_path && !opts->model))
        return md_fail(err, MD_ERR_ARG, "evaluator: no base model given");
    if (opts->cache_dir && !opts->model_path)
        return md_fail(err, MD_ERR_ARG, "evaluator: the cache needs the model's path (its key)");
    if (opts->protocol != MD_PROTOCOL_SEED && opts->protocol != MD_PROTOCOL_EIGEN)
        return md_fail(err, MD_ERR_ARG, "evaluator: unknown protocol %d", (int)opts->protocol);
    if (!(opts->lo > 0) || !(opts->hi >= opts->lo))
        return md_fail(err, MD_ERR_ARG, "evaluator: scale range [%g, %g] is not 0 < lo <= hi",
                       opts->lo, opts->hi);
    md_evaluator *ev = md_calloc(1, sizeof *ev, "evaluator", err);
    if (!ev)
        return MD_ERR_NOMEM;
    ev->o = *opts;
    /* opened now: a model that cannot be opened fails every pair alike */
    if (!opts->model) {
        md_status st = md_model_load(opts->model_path, &opts->model_options, &ev->own_model, err);
        if (st != MD_OK) {
            free(ev);
            return st;
        }
        ev->o.model = ev->own_model;
    }
    *out = ev;
    return MD_OK;
}

void md_evaluator_free(md_evaluator *ev)
{
    if (!ev)
        return;
    md_model_free(ev->own_model);
    free(ev);
}

/* The base prediction for a pair, with the encoder features when features is
 * not NULL: from the cache when there, else from the network (then cached);
 * img is loaded here when NULL and a prediction is due. */
static md_status base_prediction(md_evaluator *ev, const md_pair *pair, const md_image *img,
                                 md_depth *pred, md_features *features, int *cached,
                                 md_error *err)
{
    char cache_path[4096] = "", feat_path[4096] = "";
    *cached = 0;
    if (features)
        memset(features, 0, sizeof *features);
    uint64_t signature = 0;
    size_t n_feat = features ? md_model_features(ev->o.model, &signature) : 0;
    if (ev->o.cache_dir) {
        char key[17];
        /* bf16 predictions differ from fp32 ones: their own cache entries
         * (fp32 keys are those of md_cache_key, as before bf16 existed) */
        md_precision prec = md_model_precision(ev->o.model);
        md_status st = md_cache_key_variant(
            ev->o.model_path, prec == MD_PRECISION_FP32 ? NULL : md_precision_name(prec),
            pair->rgb_path, key, err);
        if (st != MD_OK)
            return st;
        snprintf(cache_path, sizeof cache_path, "%s/%s.npy", ev->o.cache_dir, key);
        snprintf(feat_path, sizeof feat_path, "%s/%s.features.%016llx.npy", ev->o.cache_dir, key,
                 (unsigned long long)signature);
        if (md_cache_load(cache_path, pred, NULL) == MD_OK) {
            if (!n_feat) {
                *cached = 1;
                return MD_OK;
            }
            if (md_cache_load_features(feat_path, signature, features, NULL) == MD_OK &&
                features->n == n_feat) {
                *cached = 1;
                return MD_OK;
            }
            md_features_free(features);
            md_depth_free(pred);
        }
    }
    md_image own = {0};
    md_status st = MD_OK;
    if (!img) {
        st = md_image_load(pair->rgb_path, &own, err);
        img = &own;
    }
    if (st == MD_OK)
        st = md_model_predict_ex(ev->o.model, img, pred, n_feat ? features : NULL, err);
    if (st == MD_OK && cache_path[0])
        st = md_cache_store(cache_path, pred, err);
    if (st == MD_OK && cache_path[0] && n_feat)
        st = md_cache_store_features(feat_path, features, err);
    md_image_free(&own);
    return st;
}

/* Whether the evaluation reads the encoder features. */
static int wants_features(const md_evaluator *ev)
{
    return ev->o.features ||
           (ev->o.scale_model && md_scale_model_arch(ev->o.scale_model) == MD_SCALE_ARCH_ENCODER);
}

md_status md_eval_base(md_evaluator *ev, const md_pair *pair, md_depth *depth,
                       md_features *features, int *cached, md_error *err)
{
    int c = 0;
    if (!ev || !pair || !depth)
        return md_fail(err, MD_ERR_ARG, "evaluate: NULL argument");
    memset(depth, 0, sizeof *depth);
    md_status st = base_prediction(ev, pair, NULL, depth, features, &c, err);
    if (cached)
        *cached = c;
    return st;
}

/* scale x pred as a new map with pred's mask. */
static md_status scaled_copy(const md_depth *pred, double scale, md_depth *out, md_error *err)
{
    md_status st = md_depth_alloc(out, pred->width, pred->height, err);
    if (st != MD_OK)
        return st;
    size_t n = (size_t)pred->width * (size_t)pred->height;
    float s = (float)scale;
    for (size_t i = 0; i < n; i++)
        out->data[i] = pred->data[i] * s;
    free(out->mask);
    out->mask = NULL;
    if (pred->mask) {
        out->mask = md_malloc(n, "depth mask", err);
        if (!out->mask) {
            md_depth_free(out);
            return MD_ERR_NOMEM;
        }
        memcpy(out->mask, pred->mask, n);
    }
    return MD_OK;
}

static char *dup_string(const char *s, md_error *err)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = md_malloc(n, "string", err);
    if (d)
        memcpy(d, s ? s : "", n);
    return d;
}

void md_eval_item_free(md_eval_item *item)
{
    if (!item)
        return;
    free(item->rgb);
    free(item->depth);
    item->rgb = item->depth = NULL;
}

static md_status pair_work(md_evaluator *ev, const md_pair *pair, int split,
                           double constant_scale, md_eval_item *it, md_eval_view_fn view,
                           void *view_user, md_error *err)
{
    md_image img = {0};
    md_depth pred = {0}, gt = {0}, sc[4] = {{0}};
    md_features feat = {0};
    enum { ORACLE, ADAPTIVE, GATED, CONSTANT };
    md_status st = md_image_load(pair->rgb_path, &img, err);
    if (st == MD_OK)
        st = base_prediction(ev, pair, &img, &pred, wants_features(ev) ? &feat : NULL,
                             &it->cached, err);
    if (st == MD_OK)
        st = md_pair_load_depth(pair, &gt, err);
    if (st != MD_OK)
        goto done;
    if (img.width != gt.width || img.height != gt.height || pred.width != gt.width ||
        pred.height != gt.height) {
        st = md_fail(err, MD_ERR_DATA, "%s: size mismatch: image %dx%d, depth %dx%d",
                     pair->depth_path, img.width, img.height, gt.width, gt.height);
        goto done;
    }
    /* the oracle: the optimal scale against the ground truth, through the same
     * scale stage that predict uses */
    md_scale_options so = md_scale_options_default();
    so.source = MD_SCALE_SOURCE_ORACLE;
    so.gt = &gt;
    so.oracle_method = ev->o.oracle_method;
    so.lo = ev->o.lo;
    so.hi = ev->o.hi;
    md_scale_record rec;
    st = scaled_copy(&pred, 1.0, &sc[ORACLE], err);
    if (st == MD_OK)
        st = md_scale_depth(&img, NULL, &sc[ORACLE], &so, &rec, err);
    if (st != MD_OK)
        goto done;
    it->oracle_scale = rec.scale;
    it->oracle_at_limit = rec.at_range_limit;
    float *vp = NULL, *vg = NULL;
    size_t nv = 0;
    st = md_depth_valid_samples(&pred, &gt, &vp, &vg, &nv, err);
    if (st == MD_OK) {
        it->w1_before = md_w1_distance(vp, vg, nv, 1.0);
        it->w1_after = md_w1_distance(vp, vg, nv, rec.scale);
    }
    free(vp);
    free(vg);
    if (st != MD_OK)
        goto done;
    st = md_metrics_compute(&pred, &gt, ev->o.protocol, &it->unscaled, err);
    if (st == MD_OK)
        st = md_metrics_compute(&sc[ORACLE], &gt, ev->o.protocol, &it->oracle, err);
    if (st == MD_OK && ev->o.scale_model) {
        st = md_scale_model_estimate(ev->o.scale_model, &img, &feat, &it->estimate, err);
        double w = it->estimate.weight;
        w = w > 1.0 ? 1.0 : (w > 0.0 ? w : 0.0);
        if (st == MD_OK)
            st = scaled_copy(&pred, exp(it->estimate.log_scale), &sc[ADAPTIVE], err);
        if (st == MD_OK)
            st = md_metrics_compute(&sc[ADAPTIVE], &gt, ev->o.protocol, &it->adaptive, err);
        if (st == MD_OK)
            st = scaled_copy(&pred, exp(w * it->estimate.log_scale), &sc[GATED], err);
        if (st == MD_OK)
            st = md_metrics_compute(&sc[GATED], &gt, ev->o.protocol, &it->gated, err);
        it->has_adaptive = st == MD_OK;
    }
    if (st == MD_OK && constant_scale > 0) {
        st = scaled_copy(&pred, constant_scale, &sc[CONSTANT], err);
        if (st == MD_OK)
            st = md_metrics_compute(&sc[CONSTANT], &gt, ev->o.protocol, &it->constant, err);
        it->has_constant = st == MD_OK;
    }
    if (st == MD_OK && view) {
        /* the view sees the pair's paths (borrowed; callers copy them after) */
        it->rgb = pair->rgb_path;
        it->depth = pair->depth_path;
        md_eval_view v = {it,
                          &img,
                          &gt,
                          &pred,
                          &sc[ORACLE],
                          it->has_adaptive ? &sc[ADAPTIVE] : NULL,
                          it->has_adaptive ? &sc[GATED] : NULL};
        view(view_user, &v);
        it->rgb = it->depth = NULL;
    }
done:
    md_features_free(&feat);
    md_image_free(&img);
    md_depth_free(&pred);
    md_depth_free(&gt);
    for (int k = 0; k < 4; k++)
        md_depth_free(&sc[k]);
    return st;
}

md_status md_eval_pair(md_evaluator *ev, const md_pair *pair, int split, double constant_scale,
                       md_eval_item *out, md_eval_view_fn view, void *view_user, md_error *err)
{
    if (!ev || !pair || !out || !pair->rgb_path || !pair->depth_path)
        return md_fail(err, MD_ERR_ARG, "evaluate: NULL argument");
    memset(out, 0, sizeof *out);
    md_eval_item it;
    memset(&it, 0, sizeof it);
    it.split = split;
    md_status st = pair_work(ev, pair, split, constant_scale, &it, view, view_user, err);
    if (st != MD_OK)
        return st;
    it.rgb = dup_string(pair->rgb_path, err);
    it.depth = it.rgb ? dup_string(pair->depth_path, err) : NULL;
    if (!it.depth) {
        md_eval_item_free(&it);
        return MD_ERR_NOMEM;
    }
    *out = it;
    return MD_OK;
}

void md_scales_row_of(const md_eval_item *it, const md_pair *pair, md_scales_row *row)
{
    memset(row, 0, sizeof *row);
    row->rgb = pair->rgb_path;
    row->depth = pair->depth_path;
    row->divisor = pair->depth_divisor;
    row->encoding = pair->encoding;
    row->scale = it->oracle_scale;
    row->log_scale = log(it->oracle_scale);
    row->w1_before = it->w1_before;
    row->w1_after = it->w1_after;
    row->before = it->unscaled;
    row->after = it->oracle;
    row->has_adaptive = it->has_adaptive;
    row->pred_log_scale = it->estimate.log_scale;
    row->adaptive = it->adaptive;
}

/* ------------------------------------------------------------ the set */

md_status md_eval_set_append(md_eval_set *s, const md_eval_item *item, md_error *err)
{
    if (s->count == s->capacity) {
        size_t cap = s->capacity ? 2 * s->capacity : 64;
        md_eval_item *p = realloc(s->items, cap * sizeof *p);
        if (!p)
            return md_fail(err, MD_ERR_NOMEM, "out of memory for %zu evaluation rows", cap);
        s->items = p;
        s->capacity = cap;
    }
    md_eval_item it = *item;
    it.rgb = dup_string(item->rgb, err);
    it.depth = it.rgb ? dup_string(item->depth, err) : NULL;
    if (!it.depth) {
        free(it.rgb);
        return MD_ERR_NOMEM;
    }
    s->items[s->count++] = it;
    return MD_OK;
}

void md_eval_set_free(md_eval_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->count; i++)
        md_eval_item_free(&s->items[i]);
    free(s->items);
    memset(s, 0, sizeof *s);
    s->constant_scale = NAN;
}

/* ------------------------------------------------------- an experiment */

static md_status run_split(md_evaluator *ev, const md_pair_list *list, int split, double cs,
                           const md_eval_callbacks *cb, md_eval_set *out, size_t *done,
                           size_t total, md_error *err)
{
    for (size_t i = 0; list && i < list->count; i++) {
        md_eval_item it;
        md_error e = {0};
        memset(&it, 0, sizeof it);
        it.split = split;
        md_status st = pair_work(ev, &list->items[i], split, cs, &it,
                                 cb ? cb->view : NULL, cb ? cb->user : NULL, &e);
        if (st == MD_OK) {
            it.rgb = list->items[i].rgb_path;
            it.depth = list->items[i].depth_path;
            st = md_eval_set_append(out, &it, &e); /* copies the paths */
        }
        ++*done;
        if (st != MD_OK)
            out->failed++;
        if (cb && cb->progress) {
            md_eval_progress p = {*done, total, list->items[i].rgb_path, st != MD_OK ? &e : NULL};
            cb->progress(cb->user, &p);
        }
    }
    return MD_OK;
}

/* The constant-scale row of a pair evaluated before its scale was known. */
static md_status constant_row(md_evaluator *ev, const md_pair *pair, double cs, md_metrics *out,
                              md_error *err)
{
    md_depth pred = {0}, gt = {0}, sc = {0};
    int cached = 0;
    md_status st = base_prediction(ev, pair, NULL, &pred, NULL, &cached, err);
    if (st == MD_OK)
        st = md_pair_load_depth(pair, &gt, err);
    if (st == MD_OK)
        st = scaled_copy(&pred, cs, &sc, err);
    if (st == MD_OK)
        st = md_metrics_compute(&sc, &gt, ev->o.protocol, out, err);
    md_depth_free(&pred);
    md_depth_free(&gt);
    md_depth_free(&sc);
    return st;
}

md_status md_eval_run(md_evaluator *ev, const md_pair_list *train, const md_pair_list *test,
                      const md_eval_callbacks *cb, md_eval_set *out, md_error *err)
{
    if (!ev || !out)
        return md_fail(err, MD_ERR_ARG, "evaluate: NULL argument");
    size_t n_train = train ? train->count : 0, n_test = test ? test->count : 0;
    size_t total = n_train + n_test, done = 0, first = out->count;
    out->constant_scale = NAN;
    md_status st = run_split(ev, train, MD_SPLIT_TRAIN, 0.0, cb, out, &done, total, err);
    if (st != MD_OK)
        return st;
    size_t train_end = out->count;
    /* the baseline: one scale for every image, exp(mean ln s*) of the train
     * split, what a predictor that ignores the image learns */
    double sum = 0;
    for (size_t i = first; i < train_end; i++)
        sum += log(out->items[i].oracle_scale);
    size_t n = train_end - first;
    double cs = n ? exp(sum / (double)n) : NAN;
    out->constant_scale = cs;
    st = run_split(ev, test, MD_SPLIT_TEST, n ? cs : 0.0, cb, out, &done, total, err);
    if (st != MD_OK || !n)
        return st;
    /* the train split's constant row: a second look at its pairs (cheap with
     * the cache, which holds exactly what the first pass saw). Train items
     * follow the train list's order, skipping the pairs that failed. */
    size_t k = 0;
    for (size_t i = first; i < train_end; i++) {
        md_eval_item *it = &out->items[i];
        while (k < n_train && strcmp(train->items[k].rgb_path, it->rgb) != 0)
            k++;
        if (k == n_train)
            break;
        md_error e = {0};
        it->has_constant = constant_row(ev, &train->items[k++], cs, &it->constant, &e) == MD_OK;
    }
    return MD_OK;
}

/* splitmix64: the generator behind the random split. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

md_status md_eval_split_random(const md_pair_list *all, double fraction, uint64_t seed,
                               md_pair_list *train, md_pair_list *test, md_error *err)
{
    if (!all || !train || !test)
        return md_fail(err, MD_ERR_ARG, "split: NULL argument");
    if (!(fraction > 0 && fraction < 1))
        return md_fail(err, MD_ERR_ARG, "split: fraction %g is not in (0, 1)", fraction);
    size_t n = all->count;
    size_t *perm = md_malloc((n ? n : 1) * sizeof *perm, "split", err);
    unsigned char *is_test = md_calloc(n ? n : 1, 1, "split", err);
    if (!perm || !is_test) {
        free(perm);
        free(is_test);
        return MD_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    uint64_t s = seed;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(splitmix64(&s) % i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    size_t n_test = (size_t)llround(fraction * (double)n);
    for (size_t i = 0; i < n_test; i++)
        is_test[perm[i]] = 1;
    md_status st = MD_OK;
    for (size_t i = 0; i < n && st == MD_OK; i++)
        st = md_pair_list_append(is_test[i] ? test : train, &all->items[i], err);
    free(perm);
    free(is_test);
    return st;
}

/* ------------------------------------------------------------ summaries */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { ROW_UNSCALED, ROW_ORACLE, ROW_ADAPTIVE, ROW_GATED, ROW_CONSTANT, ROWS };

md_status md_eval_summarize(const md_eval_set *s, int split, md_eval_summary *out, md_error *err)
{
    if (!s || !out)
        return md_fail(err, MD_ERR_ARG, "summary: NULL argument");
    memset(out, 0, sizeof *out);
    out->log_mae = out->log_rmse = out->gap_closed = out->gap_closed_gated = NAN;
    out->scale_median = out->gap_closed_constant = out->mean_weight = NAN;
    size_t n = 0;
    for (size_t i = 0; i < s->count; i++)
        n += s->items[i].split == split;
    out->n = n;
    if (n == 0)
        return MD_OK;
    md_metrics *m = md_malloc(ROWS * n * sizeof *m, "summary", err);
    double *scales = md_malloc(n * sizeof *scales, "summary", err);
    if (!m || !scales) {
        free(m);
        free(scales);
        return MD_ERR_NOMEM;
    }
    size_t k = 0;
    int adaptive = 1, constant = 1;
    double mae = 0, mse = 0, wsum = 0;
    for (size_t i = 0; i < s->count; i++) {
        const md_eval_item *it = &s->items[i];
        if (it->split != split)
            continue;
        m[ROW_UNSCALED * n + k] = it->unscaled;
        m[ROW_ORACLE * n + k] = it->oracle;
        m[ROW_ADAPTIVE * n + k] = it->adaptive;
        m[ROW_GATED * n + k] = it->gated;
        m[ROW_CONSTANT * n + k] = it->constant;
        constant &= it->has_constant != 0;
        scales[k] = it->oracle_scale;
        out->at_limit += it->oracle_at_limit != 0;
        if (!it->has_adaptive) {
            adaptive = 0;
        } else {
            double d = it->estimate.log_scale - log(it->oracle_scale);
            mae += fabs(d);
            mse += d * d;
            wsum += it->estimate.weight;
            out->n_applied += it->estimate.weight > 0;
        }
        k++;
    }
    md_metrics_mean(m + ROW_UNSCALED * n, n, &out->unscaled);
    md_metrics_mean(m + ROW_ORACLE * n, n, &out->oracle);
    qsort(scales, n, sizeof *scales, cmp_double);
    out->scale_median = n % 2 ? scales[n / 2] : 0.5 * (scales[n / 2 - 1] + scales[n / 2]);
    out->has_adaptive = adaptive;
    out->has_constant = constant;
    double u = out->unscaled.abs_rel, o = out->oracle.abs_rel;
    if (constant) {
        md_metrics_mean(m + ROW_CONSTANT * n, n, &out->constant);
        out->gap_closed_constant = md_gap_closed(u, out->constant.abs_rel, o);
    }
    if (adaptive) {
        md_metrics_mean(m + ROW_ADAPTIVE * n, n, &out->adaptive);
        md_metrics_mean(m + ROW_GATED * n, n, &out->gated);
        out->log_mae = mae / (double)n;
        out->log_rmse = sqrt(mse / (double)n);
        out->mean_weight = wsum / (double)n;
        out->gap_closed = md_gap_closed(u, out->adaptive.abs_rel, o);
        out->gap_closed_gated = md_gap_closed(u, out->gated.abs_rel, o);
    } else {
        out->n_applied = 0;
    }
    free(m);
    free(scales);
    return MD_OK;
}

/* ------------------------------------------------------ training sets */

void md_training_set_free(md_training_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++) {
        if (set->images)
            md_image_free(&set->images[i]);
        if (set->features)
            md_features_free(&set->features[i]);
        if (set->groups)
            free(set->groups[i]);
    }
    free(set->images);
    free(set->features);
    free(set->curves);
    free(set->groups);
    free(set->samples);
    md_scales_free(&set->used);
    memset(set, 0, sizeof *set);
}

/* The folder of path ("." when it has none). */
static char *folder_of(const char *path, md_error *err)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    char *g = md_malloc(n + 1, "group name", err);
    if (g) {
        memcpy(g, slash ? path : ".", n);
        g[n] = '\0';
    }
    return g;
}

md_status md_training_set_build(md_evaluator *ev, const md_scales_table *t, md_scale_arch arch,
                                const md_eval_callbacks *cb, md_training_set *out, md_error *err)
{
    if (!t || !out)
        return md_fail(err, MD_ERR_ARG, "training set: NULL argument");
    memset(out, 0, sizeof *out);
    int encoder = arch == MD_SCALE_ARCH_ENCODER;
    if (encoder && !ev)
        return md_fail(err, MD_ERR_ARG, "training set: the encoder needs the base network");
    size_t n = t->count;
    out->samples = md_calloc(n ? n : 1, sizeof *out->samples, "training set", err);
    out->groups = md_calloc(n ? n : 1, sizeof *out->groups, "training set", err);
    if (encoder) {
        out->features = md_calloc(n ? n : 1, sizeof *out->features, "training set", err);
        out->curves = md_calloc(n ? n : 1, sizeof *out->curves, "training set", err);
    } else {
        out->images = md_calloc(n ? n : 1, sizeof *out->images, "training set", err);
    }
    if (!out->samples || !out->groups || (encoder ? !out->features || !out->curves : !out->images)) {
        md_training_set_free(out);
        return MD_ERR_NOMEM;
    }
    md_status st = MD_OK;
    /* The CNNs keep every image (and a preprocessed copy, ~0.6 MB each):
     * stop with a clear error before that outgrows the machine. */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double budget = pages > 0 && page > 0 ? 0.75 * (double)pages * (double)page : 1e18, kept = 0;
    for (size_t i = 0; i < n && st == MD_OK; i++) {
        const md_scales_row *row = &t->items[i];
        md_pair pair = {row->rgb, row->depth, row->divisor, row->encoding, 0, {0, 0, 0, 0}};
        size_t k = out->count;
        md_error e = {0};
        md_status rs;
        int whole_set = 0; /* a failure that every other row would repeat */
        if (encoder) {
            md_depth pred = {0}, gt = {0};
            int cached;
            rs = md_eval_base(ev, &pair, &pred, &out->features[k], &cached, &e);
            if (rs == MD_OK && out->features[k].n == 0) {
                rs = md_fail(&e, MD_ERR_UNSUPPORTED,
                             "%s: the base network gives no encoder features", row->rgb);
                whole_set = 1;
            }
            if (rs == MD_OK)
                rs = md_pair_load_depth(&pair, &gt, &e);
            if (rs == MD_OK)
                rs = md_scale_curve_build(&pred, &gt, &out->curves[k], &e);
            md_depth_free(&pred);
            md_depth_free(&gt);
            if (rs != MD_OK)
                md_features_free(&out->features[k]);
        } else {
            rs = md_image_load(row->rgb, &out->images[k], &e);
            kept += rs == MD_OK ? 3.0 * out->images[k].width * out->images[k].height + 6.0e5 : 0;
            if (kept > budget) {
                md_image_free(&out->images[k]);
                rs = md_fail(&e, MD_ERR_NOMEM,
                             "%s: the first %zu images need %.1f GB in memory (the CNNs keep "
                             "every image), more than 3/4 of this machine's %.1f GB",
                             row->rgb, k + 1, kept / 1e9, budget / 0.75 / 1e9);
            }
        }
        if (rs == MD_ERR_NOMEM || whole_set) {
            /* not a bad file: every other row would fail the same way (an
             * image this library cannot read, e.g. one over its size limit,
             * is a bad file: skipped like a corrupt one) */
            if (err)
                *err = e;
            st = rs;
            break;
        }
        if (rs == MD_OK) {
            out->groups[k] = folder_of(row->rgb, err);
            if (!out->groups[k] || md_scales_append(&out->used, row, err) != MD_OK) {
                st = MD_ERR_NOMEM;
                break;
            }
            md_scale_sample *s = &out->samples[k];
            s->image = encoder ? NULL : &out->images[k];
            s->features = encoder ? &out->features[k] : NULL;
            s->curve = encoder ? &out->curves[k] : NULL;
            s->log_scale = row->log_scale;
            s->group = out->groups[k];
            out->count++;
        } else {
            out->skipped++;
        }
        if (cb && cb->progress) {
            md_eval_progress p = {i + 1, n, row->rgb, rs != MD_OK ? &e : NULL};
            cb->progress(cb->user, &p);
        }
    }
    if (st != MD_OK)
        md_training_set_free(out);
    return st;
}
