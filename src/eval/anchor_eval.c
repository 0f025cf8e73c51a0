/* Simulated anchors, fast AbsRel/delta1 and jitter for eval-anchors. */
#include "eval/anchor_eval.h"

#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t md_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

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
