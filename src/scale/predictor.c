/* The encoder scale predictor.
 *
 * Inputs: x, the base network's encoder activations averaged per channel
 * (7,280 numbers for FastDepth), and the target y = ln s*.
 *
 * Model. Features are standardised with the training means and standard
 * deviations (z = (x - mu) / sd). Each of B members is a ridge regression
 * with an unpenalised intercept,
 *     min_{b,c} sum_i (y_i - c - z_i.b)^2 + lambda |b|^2,   lambda = alpha p,
 * fitted on a bootstrap resample drawn within each group (a group is a
 * sequence or dataset: images of one run share its depth level). With the
 * centred data Z~ and y~, b = Z~' (Z~ Z~' + lambda I)^-1 y~ and c = mean y -
 * mean z . b: an n x n positive definite solve (n images << p features), from
 * the Gram matrix G = Z Z' computed once. The prediction is the members'
 * mean; their standard deviation is the ensemble's spread.
 *
 * alpha. Leave-one-group-out cross-validation over a grid (0.01 .. 100), the
 * score being the mean over held-out groups of their mean AbsRel at
 * s = exp(prediction). With fewer than two groups of MD_ENC_MIN_GROUP images
 * it is MD_ENC_ALPHA_DEFAULT: CV inside one sequence, whose depth level never
 * changes, always picks the weakest regularisation, which then misreads a new
 * run's level (docs/adaptive-scaling.md).
 *
 * Distance. d(z) = the mean Euclidean distance to the K nearest training
 * images, over sqrt(p); r = d(z) / d_in, where d_in is the median of the same
 * distance among the training images, each leaving itself out. A held-out
 * frame of a training sequence has r of about 0.6-1.5; a new room or dataset
 * 3 or more.
 *
 * Gate. weight w = clip((t1 - r) / (t1 - t0), 0, 1); the applied ln s is
 * w x prediction, so w = 0 keeps the base network's own metric output. From
 * the training data alone:
 *   near: random 5-fold CV (seeded), each fold predicted by a model of the
 *         other four; t0 = the 95th percentile of their r (images of real
 *         sequences, groups >= MD_ENC_MIN_GROUP, not the merged "misc");
 *   far:  leave-one-group-out, each group predicted by a model of the rest
 *         (with a single group: its contiguous fifths, parts of the run the
 *         model has not seen); t1 = max(min(2 t0, the 5th percentile of their
 *         r), 1.25 t0), or 2 t0 without any;
 *   then, while a far group would be worse gated than unscaled (AbsRel, RMSE
 *   or delta1), t0 and t1 shrink by 0.8 (at most 20 times).
 * The predictive spread: sigma = sqrt(spread^2 + (s_near + (s_far - s_near)
 * (1 - w))^2), s_near and s_far the RMS errors of ln s on the near and far
 * sets (s_far 0.30 without far groups). */
#include "scale/predictor.h"

#include "base/base.h"
#include "ops/dvec.h"
#include "metricdepth_eval.h"
#include "scale/scale_cnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double alpha_grid[] = {0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100};
#define N_ALPHA ((int)(sizeof alpha_grid / sizeof alpha_grid[0]))
#define SIGMA_FAR_DEFAULT 0.30

struct md_enc_model {
    size_t p;           /* features */
    size_t n;           /* training images */
    uint64_t signature; /* of the features */
    float *mu, *sd;     /* (p) standardisation */
    int members;
    float *b;           /* (members, p) coefficients */
    float *c;           /* (members) intercepts */
    float *F;           /* (n, p) standardised training features, for the distance */
    double alpha, d_in, t0, t1, sigma_near, sigma_far;
};

void md_enc_free(md_enc_model *m)
{
    if (!m)
        return;
    free(m->mu);
    free(m->sd);
    free(m->b);
    free(m->c);
    free(m->F);
    free(m);
}

size_t md_enc_features(const md_enc_model *m, uint64_t *signature)
{
    if (signature)
        *signature = m->signature;
    return m->p;
}

size_t md_enc_train_count(const md_enc_model *m)
{
    return m->n;
}

/* ------------------------------------------------------------ helpers */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy's default percentile of v (sorted in place); NaN when n == 0. */
static double percentile(double *v, size_t n, double pct)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    double rank = pct / 100.0 * (double)(n - 1);
    size_t i = (size_t)floor(rank);
    if (i >= n - 1)
        return v[n - 1];
    return v[i] + (rank - (double)i) * (v[i + 1] - v[i]);
}

static double clip01(double x)
{
    return x < 0 ? 0 : (x > 1 ? 1 : x);
}

static double gate_weight(double r, double t0, double t1)
{
    return t1 > t0 ? clip01((t1 - r) / (t1 - t0)) : (r <= t0 ? 1.0 : 0.0);
}

/* A text buffer for the training summary. */
typedef struct {
    char *p;
    size_t len, cap;
} text;

static void say(text *t, const char *fmt, ...) MD_PRINTF(2, 3);
static void say(text *t, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    size_t n = (size_t)k < sizeof line ? (size_t)k : sizeof line - 1;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 1024;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *q = realloc(t->p, cap);
        if (!q)
            return;
        t->p = q;
        t->cap = cap;
    }
    memcpy(t->p + t->len, line, n);
    t->len += n;
    t->p[t->len] = '\0';
}

/* ------------------------------------------------------------ a fit */

/* A standardised design: rows (m, p) in double, its Gram matrix, the
 * standardisation, and each row's squared norm. */
typedef struct {
    size_t m, p;
    double *Z;     /* (m, p) */
    double *G;     /* (m, m) Z Z' */
    double *mu, *sd;
} design;

static void design_free(design *d)
{
    free(d->Z);
    free(d->G);
    free(d->mu);
    free(d->sd);
    memset(d, 0, sizeof *d);
}

/* Standardises the rows rows[0..m) of the samples (population sd; a constant
 * feature keeps sd 1) and forms the Gram matrix. */
static md_status design_init(design *d, const md_enc_sample *s, const size_t *rows, size_t m,
                             size_t p, md_error *err)
{
    memset(d, 0, sizeof *d);
    d->m = m;
    d->p = p;
    d->Z = md_malloc(sizeof(double) * m * p, "predictor design", err);
    d->G = md_malloc(sizeof(double) * m * m, "predictor Gram matrix", err);
    d->mu = md_calloc(p, sizeof(double), "predictor means", err);
    d->sd = md_calloc(p, sizeof(double), "predictor deviations", err);
    if (!d->Z || !d->G || !d->mu || !d->sd) {
        design_free(d);
        return MD_ERR_NOMEM;
    }
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < p; j++)
            d->mu[j] += s[rows[i]].features[j];
    for (size_t j = 0; j < p; j++)
        d->mu[j] /= (double)m;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < p; j++) {
            double v = s[rows[i]].features[j] - d->mu[j];
            d->sd[j] += v * v;
        }
    for (size_t j = 0; j < p; j++) {
        d->sd[j] = sqrt(d->sd[j] / (double)m);
        if (!(d->sd[j] >= 1e-9))
            d->sd[j] = 1.0;
    }
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < p; j++)
            d->Z[i * p + j] = (s[rows[i]].features[j] - d->mu[j]) / d->sd[j];
    md_dgram(m, p, d->Z, d->G);
    return MD_OK;
}

/* Ridge on the design rows idx[0..k) (repeats allowed: a bootstrap), targets
 * y[idx[i]]. b gets p coefficients, *c the intercept. */
static md_status ridge(const design *d, const size_t *idx, size_t k, const double *y,
                       double lambda, double *b, double *c, md_error *err)
{
    size_t p = d->p, m = d->m;
    double *K = md_malloc(sizeof(double) * k * k, "ridge system", err);
    double *a = md_malloc(sizeof(double) * k, "ridge system", err);
    double *rm = md_malloc(sizeof(double) * k, "ridge system", err);
    if (!K || !a || !rm) {
        free(K);
        free(a);
        free(rm);
        return MD_ERR_NOMEM;
    }
    double tot = 0, ybar = 0;
    for (size_t i = 0; i < k; i++) {
        double r = 0;
        for (size_t j = 0; j < k; j++)
            r += (K[i * k + j] = d->G[idx[i] * m + idx[j]]);
        rm[i] = r / (double)k;
        tot += rm[i];
        ybar += y[idx[i]];
    }
    tot /= (double)k;
    ybar /= (double)k;
    /* the centred Gram matrix plus lambda on the diagonal */
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < k; j++)
            K[i * k + j] += tot - rm[i] - rm[j];
        K[i * k + i] += lambda;
        a[i] = y[idx[i]] - ybar;
    }
    int info = md_dposv(k, K, a);
    free(K);
    free(rm);
    if (info != 0) {
        free(a);
        return md_fail(err, MD_ERR_DATA, "scale predictor: the ridge system is singular (info %d)",
                       info);
    }
    /* b = sum_i a_i (z_i - zbar) = sum_i a_i z_i - (sum_i a_i) zbar;
     * c = ybar - zbar . b */
    double *zbar = md_calloc(p, sizeof(double), "ridge", err);
    if (!zbar) {
        free(a);
        return MD_ERR_NOMEM;
    }
    double asum = 0;
    memset(b, 0, sizeof(double) * p);
    for (size_t i = 0; i < k; i++) {
        md_daxpy(p, a[i], d->Z + idx[i] * p, b);
        md_daxpy(p, 1.0 / (double)k, d->Z + idx[i] * p, zbar);
        asum += a[i];
    }
    md_daxpy(p, -asum, zbar, b);
    *c = ybar - md_ddot(p, zbar, b);
    free(zbar);
    free(a);
    return MD_OK;
}

/* An ensemble fitted on one design: B members, each on a bootstrap drawn
 * within every group. Predicts standardised rows of any design. */
typedef struct {
    int B;
    size_t p;
    double *b; /* (B, p) */
    double *c; /* (B) */
} ensemble;

static void ensemble_free(ensemble *e)
{
    free(e->b);
    free(e->c);
    memset(e, 0, sizeof *e);
}

static md_status ensemble_fit(const design *d, const int *group, const double *y, double lambda,
                              int B, uint64_t *rng, ensemble *e, md_error *err)
{
    memset(e, 0, sizeof *e);
    size_t m = d->m, p = d->p;
    e->B = B;
    e->p = p;
    e->b = md_malloc(sizeof(double) * (size_t)B * p, "ensemble", err);
    e->c = md_malloc(sizeof(double) * (size_t)B, "ensemble", err);
    size_t *idx = md_malloc(sizeof(size_t) * (m ? m : 1), "bootstrap", err);
    size_t *members = md_malloc(sizeof(size_t) * (m ? m : 1), "bootstrap", err);
    if (!e->b || !e->c || !idx || !members) {
        free(idx);
        free(members);
        ensemble_free(e);
        return MD_ERR_NOMEM;
    }
    md_status st = MD_OK;
    for (int mb = 0; mb < B && st == MD_OK; mb++) {
        /* resample each group to its own size: every group stays represented */
        size_t k = 0;
        for (size_t i = 0; i < m; i++) {
            int first = 1;
            for (size_t j = 0; j < i && first; j++)
                first = group[j] != group[i];
            if (!first)
                continue;
            size_t ng = 0;
            for (size_t j = i; j < m; j++)
                if (group[j] == group[i])
                    members[ng++] = j;
            for (size_t j = 0; j < ng; j++)
                idx[k++] = members[md_cnn_rand_next(rng) % ng];
        }
        st = ridge(d, idx, k, y, lambda, e->b + (size_t)mb * p, &e->c[mb], err);
    }
    free(idx);
    free(members);
    if (st != MD_OK)
        ensemble_free(e);
    return st;
}

/* Mean and spread (population sd) of the members' predictions for z. */
static void ensemble_predict(const ensemble *e, const double *z, double *mean, double *spread)
{
    double s1 = 0, s2 = 0;
    for (int mb = 0; mb < e->B; mb++) {
        double v = e->c[mb] + md_ddot(e->p, z, e->b + (size_t)mb * e->p);
        s1 += v;
        s2 += v * v;
    }
    *mean = s1 / e->B;
    double var = s2 / e->B - *mean * *mean;
    *spread = sqrt(var > 0 ? var : 0);
}

/* The distance of z from the design's rows: mean of the K smallest
 * Euclidean distances over sqrt(p). skip: a row to leave out (or SIZE_MAX). */
static double knn_distance(const design *d, const double *z, double zz, size_t skip)
{
    double best[MD_ENC_KNN];
    int nb = 0;
    for (size_t i = 0; i < d->m; i++) {
        if (i == skip)
            continue;
        double d2 = zz + d->G[i * d->m + i] - 2 * md_ddot(d->p, z, d->Z + i * d->p);
        double v = sqrt((d2 > 0 ? d2 : 0) / (double)d->p);
        /* insert into the sorted list of the K smallest */
        int j = nb < MD_ENC_KNN ? nb++ : MD_ENC_KNN;
        if (j == MD_ENC_KNN) {
            if (v >= best[MD_ENC_KNN - 1])
                continue;
            j = MD_ENC_KNN - 1;
        }
        while (j > 0 && best[j - 1] > v) {
            best[j] = best[j - 1];
            j--;
        }
        best[j] = v;
    }
    double sum = 0;
    for (int j = 0; j < nb; j++)
        sum += best[j];
    return nb ? sum / nb : NAN;
}

/* d_in: the median leave-self-out distance among the design's rows. */
static double inside_distance(const design *d, md_error *err)
{
    double *v = md_malloc(sizeof(double) * (d->m ? d->m : 1), "distances", err);
    if (!v)
        return NAN;
    size_t n = 0;
    for (size_t i = 0; i < d->m; i++) {
        double x = knn_distance(d, d->Z + i * d->p, d->G[i * d->m + i], i);
        if (isfinite(x))
            v[n++] = x;
    }
    double med = percentile(v, n, 50);
    free(v);
    return med > 0 ? med : NAN;
}

/* Standardises raw features x with a design's mu/sd into z; returns |z|^2. */
static double standardise(const design *d, const float *x, double *z)
{
    double zz = 0;
    for (size_t j = 0; j < d->p; j++) {
        z[j] = (x[j] - d->mu[j]) / d->sd[j];
        zz += z[j] * z[j];
    }
    return zz;
}

/* Mean metrics of the samples rows[0..k) at s = exp(ls[i]) (curves), or
 * the mean squared ln error when curves are missing (abs_rel only). */
static void mean_metrics(const md_enc_sample *s, const size_t *rows, size_t k, const double *ls,
                         md_metrics *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < k; i++) {
        const md_enc_sample *x = &s[rows[i]];
        if (x->curve) {
            md_metrics m;
            md_scale_curve_eval(x->curve, exp(ls[i]), &m);
            out->abs_rel += m.abs_rel;
            out->rmse += m.rmse;
            out->delta1 += m.delta1;
        } else {
            double e = ls[i] - x->log_scale;
            out->abs_rel += e * e;
            out->rmse += fabs(e);
            out->delta1 -= fabs(e);
        }
    }
    if (k) {
        out->abs_rel /= (double)k;
        out->rmse /= (double)k;
        out->delta1 /= (double)k;
    }
}

/* ------------------------------------------------------------ training */

/* One held-out prediction of the calibration: its ln s, distance ratio and
 * the held-out set it belongs to (-1: the near set; else a far set: a group,
 * or a block of the only group). */
typedef struct {
    size_t row;
    double pred, r;
    int set;
} held;

/* Fits an ensemble on the samples fit[0..nf) and predicts out[0..no),
 * appending to h. */
static md_status hold_out(const md_enc_sample *s, size_t p, const size_t *fit, size_t nf,
                          const size_t *out, size_t no, double lambda, uint64_t *rng, int set,
                          held *h, size_t *nh, md_error *err)
{
    design d;
    md_status st = design_init(&d, s, fit, nf, p, err);
    if (st != MD_OK)
        return st;
    ensemble e = {0};
    double *y = md_malloc(sizeof(double) * nf, "targets", err);
    int *group = md_malloc(sizeof(int) * nf, "groups", err);
    double *z = md_malloc(sizeof(double) * p, "features", err);
    st = y && group && z ? MD_OK : MD_ERR_NOMEM;
    for (size_t i = 0; st == MD_OK && i < nf; i++) {
        y[i] = s[fit[i]].log_scale;
        group[i] = s[fit[i]].group;
    }
    if (st == MD_OK)
        st = ensemble_fit(&d, group, y, lambda, MD_ENC_CAL_MEMBERS, rng, &e, err);
    double d_in = st == MD_OK ? inside_distance(&d, err) : NAN;
    for (size_t i = 0; st == MD_OK && i < no; i++) {
        double zz = standardise(&d, s[out[i]].features, z), spread;
        h[*nh].row = out[i];
        h[*nh].set = set;
        ensemble_predict(&e, z, &h[*nh].pred, &spread);
        h[*nh].r = knn_distance(&d, z, zz, (size_t)-1) / d_in;
        ++*nh;
    }
    ensemble_free(&e);
    free(y);
    free(group);
    free(z);
    design_free(&d);
    return st;
}

static int group_size(const md_enc_sample *s, size_t n, int g)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i].group == g;
    return k;
}

/* A real sequence: a group of at least MD_ENC_MIN_GROUP images that is not
 * the merged misc group. */
static int is_sequence(const md_enc_sample *s, size_t n, const md_enc_options *o, int g)
{
    return g != o->misc_group && group_size(s, n, g) >= MD_ENC_MIN_GROUP;
}

md_status md_enc_train(const md_enc_sample *s, size_t n, size_t p, const md_enc_options *o,
                       md_enc_model **out, char **summary, md_error *err)
{
    *out = NULL;
    if (summary)
        *summary = NULL;
    if (!s || n == 0 || p == 0)
        return md_fail(err, MD_ERR_DATA, "scale predictor: no training images with features");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(s[i].log_scale))
            return md_fail(err, MD_ERR_DATA, "scale predictor: target %zu is not finite", i);
    int B = o->members > 0 ? o->members : MD_ENC_MEMBERS;
    md_status st = MD_OK;
    text t = {0};
    design d = {0};
    ensemble e = {0};
    md_enc_model *m = NULL;
    held *h = NULL;
    size_t *all = md_malloc(sizeof(size_t) * n, "rows", err);
    size_t *fit = md_malloc(sizeof(size_t) * n, "rows", err);
    size_t *test = md_malloc(sizeof(size_t) * n, "rows", err);
    double *y = md_malloc(sizeof(double) * n, "targets", err);
    double *ls = md_malloc(sizeof(double) * n, "predictions", err);
    double *z = md_malloc(sizeof(double) * p, "features", err);
    h = md_malloc(sizeof(held) * 2 * n, "calibration", err);
    if (!all || !fit || !test || !y || !ls || !z || !h) {
        st = MD_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        all[i] = i;
        y[i] = s[i].log_scale;
        if (!s[i].features) {
            st = md_fail(err, MD_ERR_ARG, "scale predictor: sample %zu has no features", i);
            goto done;
        }
        for (size_t j = 0; j < p; j++)
            if (!isfinite(s[i].features[j])) {
                st = md_fail(err, MD_ERR_DATA, "scale predictor: sample %zu has a non-finite feature", i);
                goto done;
            }
    }
    if ((st = design_init(&d, s, all, n, p, err)) != MD_OK)
        goto done;
    int groups = o->n_groups, big = 0;
    for (int g = 0; g < groups; g++)
        big += group_size(s, n, g) >= MD_ENC_MIN_GROUP;

    /* alpha: leave-one-group-out over the groups when two hold enough images */
    double alpha = o->alpha;
    if (alpha > 0) {
        say(&t, "alpha %g (given)\n", alpha);
    } else if (big < 2) {
        alpha = MD_ENC_ALPHA_DEFAULT;
        say(&t, "alpha %g (the default: fewer than two groups of %d images to cross-validate)\n",
            alpha, MD_ENC_MIN_GROUP);
    } else {
        double best = INFINITY;
        say(&t, "alpha by leave-one-group-out (mean %s of the held-out groups):",
            s[0].curve ? "AbsRel" : "squared ln error");
        double *bb = md_malloc(sizeof(double) * p, "ridge", err);
        if (!bb) {
            st = MD_ERR_NOMEM;
            goto done;
        }
        for (int a = 0; a < N_ALPHA && st == MD_OK; a++) {
            double score = 0;
            int folds = 0;
            for (int g = 0; g < groups && st == MD_OK; g++) {
                size_t nf = 0, nt = 0;
                for (size_t i = 0; i < n; i++) {
                    if (s[i].group == g)
                        test[nt++] = i;
                    else
                        fit[nf++] = i;
                }
                if (nt == 0 || nf == 0)
                    continue;
                double c;
                st = ridge(&d, fit, nf, y, alpha_grid[a] * (double)p, bb, &c, err);
                for (size_t i = 0; st == MD_OK && i < nt; i++)
                    ls[i] = c + md_ddot(p, d.Z + test[i] * p, bb);
                md_metrics mm;
                mean_metrics(s, test, nt, ls, &mm);
                score += mm.abs_rel;
                folds++;
            }
            score /= folds ? folds : 1;
            say(&t, " %g: %.4f", alpha_grid[a], score);
            if (score < best) {
                best = score;
                alpha = alpha_grid[a];
            }
        }
        free(bb);
        if (st != MD_OK)
            goto done;
        say(&t, " -> %g\n", alpha);
    }
    double lambda = alpha * (double)p;

    /* the ensemble */
    uint64_t rng = o->seed * 0x9e3779b97f4a7c15ULL + 0x5ca1ab1eULL;
    int *group = md_malloc(sizeof(int) * n, "groups", err);
    if (!group) {
        st = MD_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        group[i] = s[i].group;
    st = ensemble_fit(&d, group, y, lambda, B, &rng, &e, err);
    free(group);
    if (st != MD_OK)
        goto done;
    double d_in = inside_distance(&d, err);

    /* calibration: near (random 5-fold) and far (leave-one-group-out) */
    size_t nh = 0, n_near = 0;
    uint64_t crng = (1000 + o->seed) * 0x9e3779b97f4a7c15ULL + 0xca11ULL;
    size_t *perm = test; /* reused */
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(md_cnn_rand_next(&crng) % i);
        size_t tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
    size_t *fold = md_malloc(sizeof(size_t) * n, "folds", err);
    if (!fold) {
        st = MD_ERR_NOMEM;
        goto done;
    }
    for (int f = 0; f < 5 && st == MD_OK && n >= 2; f++) {
        size_t a0 = n * (size_t)f / 5, a1 = n * (size_t)(f + 1) / 5, nf = 0, no = 0;
        for (size_t i = 0; i < n; i++) {
            if (i >= a0 && i < a1)
                fold[no++] = perm[i];
            else
                fit[nf++] = perm[i];
        }
        if (no && nf)
            st = hold_out(s, p, fit, nf, fold, no, lambda, &crng, -1, h, &nh, err);
    }
    n_near = nh;
    int n_far = 0; /* far sets */
    for (int g = 0; g < groups && st == MD_OK; g++) {
        size_t nf = 0, no = 0;
        int rest_has_sequence = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i].group == g) {
                fold[no++] = i;
            } else {
                fit[nf++] = i;
                if (is_sequence(s, n, o, s[i].group))
                    rest_has_sequence = 1;
            }
        }
        /* without a real sequence in the rest its d_in means nothing */
        if (!no || !rest_has_sequence)
            continue;
        st = hold_out(s, p, fit, nf, fold, no, lambda, &crng, n_far++, h, &nh, err);
    }
    /* One sequence has no other group to stand for a new scene: its
     * contiguous fifths (in the training list's order, a run's frames in
     * time) do, parts of the run the model has not seen. They are nearer
     * than a new scene would be, so t1 comes out lower: a stricter gate. */
    const char *far_kind = "held-out groups";
    if (n_far == 0 && n >= 2 * MD_ENC_MIN_GROUP) {
        far_kind = "held-out fifths of the only sequence";
        for (int b = 0; b < 5 && st == MD_OK; b++) {
            size_t a0 = n * (size_t)b / 5, a1 = n * (size_t)(b + 1) / 5, nf = 0, no = 0;
            for (size_t i = 0; i < n; i++) {
                if (i >= a0 && i < a1)
                    fold[no++] = i;
                else
                    fit[nf++] = i;
            }
            st = hold_out(s, p, fit, nf, fold, no, lambda, &crng, n_far++, h, &nh, err);
        }
    }
    free(fold);
    if (st != MD_OK)
        goto done;

    /* t0 from the near set's sequences (all of it when it has none) */
    double *v = ls; /* reused: n entries */
    size_t k = 0;
    for (size_t i = 0; i < n_near; i++)
        if (is_sequence(s, n, o, s[h[i].row].group) && isfinite(h[i].r))
            v[k++] = h[i].r;
    if (k == 0)
        for (size_t i = 0; i < n_near; i++)
            if (isfinite(h[i].r))
                v[k++] = h[i].r;
    double t0 = k ? percentile(v, k, 95) : 1.5, t1 = 2 * t0;
    if (nh > n_near) {
        k = 0;
        for (size_t i = n_near; i < nh; i++)
            if (isfinite(h[i].r))
                v[k++] = h[i].r;
        double p5 = percentile(v, k, 5);
        if (isfinite(p5))
            t1 = fmax(fmin(t1, p5), 1.25 * t0);
    }
    say(&t, "gate: t0 %.3f (95th percentile of r over %zu near images), t1 %.3f (%d %s)\n", t0,
        n_near, t1, n_far, far_kind);
    /* no held-out far set may get worse through the gate */
    for (int iter = 0; iter < 20; iter++) {
        int bad = 0;
        for (int g = 0; g < n_far && !bad; g++) {
            size_t nt = 0;
            for (size_t i = n_near; i < nh; i++)
                if (h[i].set == g) {
                    test[nt] = h[i].row;
                    ls[nt] = gate_weight(h[i].r, t0, t1) * h[i].pred;
                    nt++;
                }
            if (!nt)
                continue;
            md_metrics gated, base;
            mean_metrics(s, test, nt, ls, &gated);
            for (size_t i = 0; i < nt; i++)
                ls[i] = 0;
            mean_metrics(s, test, nt, ls, &base);
            bad = gated.abs_rel > base.abs_rel + 1e-9 || gated.rmse > base.rmse + 1e-9 ||
                  gated.delta1 < base.delta1 - 1e-9;
        }
        if (!bad)
            break;
        t0 *= 0.8;
        t1 *= 0.8;
        say(&t, "gate: a held-out set got worse: lowered to t0 %.3f, t1 %.3f\n", t0, t1);
    }
    /* the residual spread of ln s near and far */
    double sn = 0, sf = 0;
    size_t cn = 0, cf = 0;
    for (size_t i = 0; i < nh; i++) {
        double e2 = (h[i].pred - y[h[i].row]) * (h[i].pred - y[h[i].row]);
        if (i < n_near) {
            if (is_sequence(s, n, o, s[h[i].row].group)) {
                sn += e2;
                cn++;
            }
        } else {
            sf += e2;
            cf++;
        }
    }
    double sigma_near = cn ? sqrt(sn / (double)cn) : NAN;
    double sigma_far = cf ? sqrt(sf / (double)cf) : SIGMA_FAR_DEFAULT;
    if (!isfinite(sigma_near)) {
        sn = 0;
        for (size_t i = 0; i < n_near; i++)
            sn += (h[i].pred - y[h[i].row]) * (h[i].pred - y[h[i].row]);
        sigma_near = n_near ? sqrt(sn / (double)n_near) : sigma_far;
    }
    say(&t, "distance scale d_in %.4f; RMS error of ln s near %.3f, far %.3f\n", d_in,
        sigma_near, sigma_far);
    for (int g = 0; g < n_far; g++) {
        size_t nt = 0;
        double rsum = 0, wsum = 0;
        for (size_t i = n_near; i < nh; i++)
            if (h[i].set == g) {
                test[nt] = h[i].row;
                ls[nt] = h[i].pred;
                rsum += h[i].r;
                wsum += gate_weight(h[i].r, t0, t1);
                nt++;
            }
        if (!nt)
            continue;
        md_metrics un, ad;
        mean_metrics(s, test, nt, ls, &ad);
        for (size_t i = 0; i < nt; i++)
            ls[i] = 0;
        mean_metrics(s, test, nt, ls, &un);
        say(&t, "  held-out set %d (%zu images): mean r %.2f, mean gate weight %.2f, %s %.4f "
                "unscaled, %.4f predicted\n",
            g, nt, rsum / (double)nt, wsum / (double)nt, s[0].curve ? "AbsRel" : "sq. ln error",
            un.abs_rel, ad.abs_rel);
    }

    /* the model */
    m = md_calloc(1, sizeof *m, "scale predictor", err);
    if (!m) {
        st = MD_ERR_NOMEM;
        goto done;
    }
    m->p = p;
    m->n = n;
    m->signature = o->signature;
    m->members = B;
    m->alpha = alpha;
    m->d_in = d_in;
    m->t0 = t0;
    m->t1 = t1;
    m->sigma_near = sigma_near;
    m->sigma_far = sigma_far;
    m->mu = md_malloc(sizeof(float) * p, "scale predictor", err);
    m->sd = md_malloc(sizeof(float) * p, "scale predictor", err);
    m->b = md_malloc(sizeof(float) * (size_t)B * p, "scale predictor", err);
    m->c = md_malloc(sizeof(float) * (size_t)B, "scale predictor", err);
    m->F = md_malloc(sizeof(float) * n * p, "scale predictor", err);
    if (!m->mu || !m->sd || !m->b || !m->c || !m->F) {
        st = MD_ERR_NOMEM;
        goto done;
    }
    for (size_t j = 0; j < p; j++) {
        m->mu[j] = (float)d.mu[j];
        m->sd[j] = (float)d.sd[j];
    }
    for (size_t i = 0; i < (size_t)B * p; i++)
        m->b[i] = (float)e.b[i];
    for (int mb = 0; mb < B; mb++)
        m->c[mb] = (float)e.c[mb];
    /* Rounded as the file stores them (half precision), so that the model
     * just trained and the same model loaded from disk give the same
     * distances, gate weights and spreads to the last bit. */
    for (size_t i = 0; i < n * p; i++)
        m->F[i] = md_f16_to_f32(md_f32_to_f16((float)d.Z[i]));
    if (!isfinite(d_in) || !isfinite(t0) || !isfinite(t1)) {
        st = md_fail(err, MD_ERR_DATA,
                     "scale predictor: the distance scale cannot be calibrated (%zu images)", n);
        goto done;
    }
    *out = m;
    m = NULL;
    if (summary) {
        *summary = t.p;
        t.p = NULL;
    }
done:
    free(t.p);
    md_enc_free(m);
    ensemble_free(&e);
    design_free(&d);
    free(all);
    free(fit);
    free(test);
    free(y);
    free(ls);
    free(z);
    free(h);
    return st;
}

md_status md_enc_fit_once(const md_enc_sample *s, size_t n, size_t p, double alpha, double *mu,
                          double *sd, double *b, double *c, md_error *err)
{
    size_t *rows = md_malloc(sizeof(size_t) * (n ? n : 1), "rows", err);
    double *y = md_malloc(sizeof(double) * (n ? n : 1), "targets", err);
    if (!rows || !y) {
        free(rows);
        free(y);
        return MD_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        rows[i] = i;
        y[i] = s[i].log_scale;
    }
    design d;
    md_status st = design_init(&d, s, rows, n, p, err);
    if (st == MD_OK) {
        st = ridge(&d, rows, n, y, alpha * (double)p, b, c, err);
        memcpy(mu, d.mu, sizeof(double) * p);
        memcpy(sd, d.sd, sizeof(double) * p);
        design_free(&d);
    }
    free(rows);
    free(y);
    return st;
}

/* ------------------------------------------------------------ predict */

/* Keeps the MD_ENC_KNN smallest values seen, ascending in v[0..*n), with
 * their tags (tag may be NULL); a value equal to the largest kept is not
 * taken once the list is full. */
static void keep_smallest(double *v, size_t *tag, size_t *n, double x, size_t t)
{
    size_t j = *n < MD_ENC_KNN ? (*n)++ : MD_ENC_KNN;
    if (j == MD_ENC_KNN) {
        if (x >= v[MD_ENC_KNN - 1])
            return;
        j = MD_ENC_KNN - 1;
    }
    for (; j > 0 && v[j - 1] > x; j--) {
        v[j] = v[j - 1];
        if (tag)
            tag[j] = tag[j - 1];
    }
    v[j] = x;
    if (tag)
        tag[j] = t;
}

md_status md_enc_estimate(const md_enc_model *m, const md_features *f, md_scale_estimate *out,
                          md_error *err)
{
    memset(out, 0, sizeof *out);
    if (!f || f->n == 0 || !f->values)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "scale predictor: the base network gave no encoder features (it needs the "
                       "network it was trained for)");
    if (f->n != m->p || f->signature != m->signature)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "scale predictor: trained on %zu features of another network (signature "
                       "%016llx), this one gives %zu (%016llx)",
                       m->p, (unsigned long long)m->signature, f->n,
                       (unsigned long long)f->signature);
    size_t p = m->p;
    double *z = md_malloc(sizeof(double) * p, "scale predictor", err);
    if (!z)
        return MD_ERR_NOMEM;
    double zz = 0;
    for (size_t j = 0; j < p; j++) {
        z[j] = (f->values[j] - m->mu[j]) / m->sd[j];
        zz += z[j] * z[j];
    }
    if (!isfinite(zz)) {
        free(z);
        return md_fail(err, MD_ERR_DATA, "scale predictor: non-finite features");
    }
    double s1 = 0, s2 = 0;
    for (int mb = 0; mb < m->members; mb++) {
        double v = m->c[mb] + md_ddot_f(p, z, m->b + (size_t)mb * p);
        s1 += v;
        s2 += v * v;
    }
    double mean = s1 / m->members, var = s2 / m->members - mean * mean;
    double spread = sqrt(var > 0 ? var : 0);
    /* The K nearest training images. Reading the 10.6 MB of training rows
     * was most of this function's time, so the rows that look nearest on
     * their first values go first, and a row stops being read as soon as
     * its partial sum shows it cannot be among the K: the same K distances,
     * to the bit, as a full scan (md_dsqdist_f_below). Squared sums order
     * as the distances sqrt(sum / p) do, so the K are kept as sums. */
    double best_sq[MD_ENC_KNN], lead[MD_ENC_KNN];
    size_t order[MD_ENC_KNN], nb = 0, nc = 0, head = p < 256 ? p : 256;
    for (size_t i = 0; i < m->n; i++) /* the K nearest on the first values */
        keep_smallest(lead, order, &nc, md_dsqdist_f(head, z, m->F + i * p), i);
    for (size_t c = 0; c < nc + m->n; c++) {
        size_t i = c < nc ? order[c] : c - nc, q = 0;
        while (c >= nc && q < nc && order[q] != i)
            q++;
        if (c >= nc && q < nc)
            continue; /* a lead row, already read */
        double bound = nb < MD_ENC_KNN ? INFINITY : best_sq[MD_ENC_KNN - 1];
        /* a row cut off returns a partial sum past the bound: not kept */
        keep_smallest(best_sq, NULL, &nb, md_dsqdist_f_below(p, z, m->F + i * p, bound), i);
    }
    free(z);
    double dsum = 0;
    for (size_t j = 0; j < nb; j++)
        dsum += sqrt(best_sq[j] / (double)p);
    double r = (dsum / nb) / m->d_in;
    double w = gate_weight(r, m->t0, m->t1);
    double sig = m->sigma_near + (m->sigma_far - m->sigma_near) * (1 - w);
    out->log_scale = mean;
    out->log_scale_sd = sqrt(spread * spread + sig * sig);
    out->distance = r;
    out->weight = w;
    if (w >= 1)
        snprintf(out->note, sizeof out->note,
                 "close to the training data (distance %.2f <= %.2f): applied", r, m->t0);
    else if (w > 0)
        snprintf(out->note, sizeof out->note,
                 "between the training data and new scenes (distance %.2f in %.2f..%.2f): "
                 "applied at weight %.2f",
                 r, m->t0, m->t1, w);
    else
        snprintf(out->note, sizeof out->note,
                 "far from the training data (distance %.2f >= %.2f): the base network's output "
                 "is kept",
                 r, m->t1);
    return MD_OK;
}

/* ------------------------------------------------------------ save / load */

void md_enc_tensors(const md_enc_model *m, md_tensor_out t[MD_ENC_TENSORS],
                    char v[MD_ENC_META][64], md_meta_entry meta[MD_ENC_META])
{
    memset(t, 0, sizeof(md_tensor_out) * MD_ENC_TENSORS);
    t[0] = (md_tensor_out){"mu", MD_WDT_F32, 1, {(int64_t)m->p}, m->mu};
    t[1] = (md_tensor_out){"sd", MD_WDT_F32, 1, {(int64_t)m->p}, m->sd};
    t[2] = (md_tensor_out){"coef", MD_WDT_F32, 2, {m->members, (int64_t)m->p}, m->b};
    t[3] = (md_tensor_out){"intercept", MD_WDT_F32, 1, {m->members}, m->c};
    /* half precision: distances need three digits, not seven */
    t[4] = (md_tensor_out){"train_features", MD_WDT_F16, 2, {(int64_t)m->n, (int64_t)m->p}, m->F};
    static const char *keys[MD_ENC_META] = {"feature_signature", "alpha",      "d_in",
                                            "gate_t0",           "gate_t1",    "sigma_near",
                                            "sigma_far",         "knn",        "n_features",
                                            "members"};
    snprintf(v[0], 64, "%016llx", (unsigned long long)m->signature);
    snprintf(v[1], 64, "%.17g", m->alpha);
    snprintf(v[2], 64, "%.17g", m->d_in);
    snprintf(v[3], 64, "%.17g", m->t0);
    snprintf(v[4], 64, "%.17g", m->t1);
    snprintf(v[5], 64, "%.17g", m->sigma_near);
    snprintf(v[6], 64, "%.17g", m->sigma_far);
    snprintf(v[7], 64, "%d", MD_ENC_KNN);
    snprintf(v[8], 64, "%zu", m->p);
    snprintf(v[9], 64, "%d", m->members);
    for (int i = 0; i < MD_ENC_META; i++) {
        meta[i].key = (char *)keys[i];
        meta[i].value = v[i];
    }
}

static const char *meta_find(const md_meta_entry *meta, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(meta[i].key, key) == 0)
            return meta[i].value;
    return NULL;
}

static int meta_double(const md_meta_entry *meta, size_t n, const char *key, double *v)
{
    const char *s = meta_find(meta, n, key);
    if (!s || !*s)
        return 0;
    char *end;
    *v = strtod(s, &end);
    return *end == '\0' && isfinite(*v);
}

/* A tensor of the expected dtype and shape, into a new float array. */
static md_status tensor_f32(const md_weights *w, const char *name, md_wdtype dtype, int ndim,
                            const int64_t *shape, const char *path, float **out, md_error *err)
{
    const md_weight *t = md_weights_find(w, name);
    if (!t)
        return md_fail(err, MD_ERR_FORMAT, "%s: missing tensor '%s' (encoder scale model)", path,
                       name);
    int same = t->ndim == ndim && t->dtype == dtype;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same)
        return md_fail(err, MD_ERR_FORMAT, "%s: tensor '%s' is %s with %d dims, expected %s %lldx%lld",
                       path, name, md_wdtype_name(t->dtype), t->ndim, md_wdtype_name(dtype),
                       (long long)shape[0], (long long)(ndim > 1 ? shape[1] : 1));
    size_t numel = (size_t)md_weight_numel(t);
    *out = md_malloc(sizeof(float) * (numel ? numel : 1), name, err);
    if (!*out)
        return MD_ERR_NOMEM;
    md_weight_to_f32(t, *out);
    for (size_t i = 0; i < numel; i++)
        if (!isfinite((*out)[i]))
            return md_fail(err, MD_ERR_DATA, "%s: tensor '%s' holds a non-finite value", path, name);
    return MD_OK;
}

md_status md_enc_from_weights(const md_weights *w, const md_meta_entry *meta, size_t n_meta,
                              const char *path, md_enc_model **out, md_error *err)
{
    *out = NULL;
    double nf, members, sig_d;
    const char *sig = meta_find(meta, n_meta, "feature_signature");
    md_enc_model *m = md_calloc(1, sizeof *m, "scale predictor", err);
    if (!m)
        return MD_ERR_NOMEM;
    md_status st = MD_OK;
    if (!sig || strlen(sig) != 16 || !meta_double(meta, n_meta, "n_features", &nf) ||
        !meta_double(meta, n_meta, "members", &members) ||
        !meta_double(meta, n_meta, "alpha", &m->alpha) ||
        !meta_double(meta, n_meta, "d_in", &m->d_in) ||
        !meta_double(meta, n_meta, "gate_t0", &m->t0) ||
        !meta_double(meta, n_meta, "gate_t1", &m->t1) ||
        !meta_double(meta, n_meta, "sigma_near", &m->sigma_near) ||
        !meta_double(meta, n_meta, "sigma_far", &m->sigma_far) ||
        !meta_double(meta, n_meta, "knn", &sig_d) || sig_d != MD_ENC_KNN || nf < 1 ||
        nf > (1 << 24) || nf != floor(nf) || members < 1 || members > 1000 ||
        members != floor(members) || !(m->d_in > 0) || !(m->t1 >= m->t0) || !(m->t0 > 0)) {
        st = md_fail(err, MD_ERR_FORMAT,
                     "%s: encoder scale model metadata missing or invalid (feature_signature, "
                     "n_features, members, alpha, d_in, gate_t0 <= gate_t1, sigma_near, "
                     "sigma_far, knn %d)",
                     path, MD_ENC_KNN);
        goto done;
    }
    m->signature = strtoull(sig, NULL, 16);
    m->p = (size_t)nf;
    m->members = (int)members;
    const md_weight *tf = md_weights_find(w, "train_features");
    if (!tf || tf->ndim != 2 || tf->shape[0] < 1 || tf->shape[1] != (int64_t)m->p) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: tensor 'train_features' missing or not (n, %zu)",
                     path, m->p);
        goto done;
    }
    m->n = (size_t)tf->shape[0];
    int64_t sp[1] = {(int64_t)m->p}, sb[2] = {m->members, (int64_t)m->p}, sc[1] = {m->members},
            sf[2] = {(int64_t)m->n, (int64_t)m->p};
    if ((st = tensor_f32(w, "mu", MD_WDT_F32, 1, sp, path, &m->mu, err)) != MD_OK ||
        (st = tensor_f32(w, "sd", MD_WDT_F32, 1, sp, path, &m->sd, err)) != MD_OK ||
        (st = tensor_f32(w, "coef", MD_WDT_F32, 2, sb, path, &m->b, err)) != MD_OK ||
        (st = tensor_f32(w, "intercept", MD_WDT_F32, 1, sc, path, &m->c, err)) != MD_OK ||
        (st = tensor_f32(w, "train_features", MD_WDT_F16, 2, sf, path, &m->F, err)) != MD_OK)
        goto done;
    for (size_t j = 0; j < m->p; j++)
        if (!(m->sd[j] > 0)) {
            st = md_fail(err, MD_ERR_DATA, "%s: tensor 'sd' holds a non-positive deviation", path);
            goto done;
        }
    if (w->count != MD_ENC_TENSORS) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: %zu tensors, an encoder scale model has %d", path,
                     w->count, MD_ENC_TENSORS);
        goto done;
    }
    *out = m;
    m = NULL;
done:
    md_enc_free(m);
    return st;
}
