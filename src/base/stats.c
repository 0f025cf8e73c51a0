/* Small statistics shared by the modules: percentiles (numpy's default
 * linear interpolation between closest ranks). */
#include "base/base.h"
#include "metricdepth_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

md_status md_percentile(const double *values, size_t n, double pct, double *out, md_error *err)
{
    if (!values || !out || n == 0)
        return md_fail(err, MD_ERR_DATA, "percentile of an empty set");
    if (!(pct >= 0 && pct <= 100))
        return md_fail(err, MD_ERR_ARG, "percentile %g is outside [0, 100]", pct);
    double *v = md_malloc(n * sizeof *v, "percentile", err);
    if (!v)
        return MD_ERR_NOMEM;
    memcpy(v, values, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_double);
    double rank = pct / 100.0 * (double)(n - 1);
    size_t i = (size_t)floor(rank);
    if (i >= n - 1)
        *out = v[n - 1];
    else
        *out = v[i] + (rank - (double)i) * (v[i + 1] - v[i]);
    free(v);
    return MD_OK;
}

md_status md_percentile_keep(const double *values, size_t n, double lo_pct, double hi_pct,
                      unsigned char *keep, size_t *n_kept, md_error *err)
{
    if (!(lo_pct >= 0 && lo_pct <= hi_pct && hi_pct <= 100))
        return md_fail(err, MD_ERR_ARG, "trim percentiles %g,%g: want 0 <= lo <= hi <= 100",
                       lo_pct, hi_pct);
    double lo, hi;
    md_status st = md_percentile(values, n, lo_pct, &lo, err);
    if (st == MD_OK)
        st = md_percentile(values, n, hi_pct, &hi, err);
    if (st != MD_OK)
        return st;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        keep[i] = values[i] >= lo && values[i] <= hi;
        k += keep[i];
    }
    if (n_kept)
        *n_kept = k;
    return MD_OK;
}

