/* Pixel-wise scale maps: from anchors (a Gaussian-process field of ln s in
 * position and depth, evaluated on a bilateral grid), and the per-cell
 * oracle, the upper bound of a coarse grid of ln s predicted from the image.
 *
 * THE ANCHOR MAP. After the global robust fit ln s0, each inlier anchor i
 * leaves a residual y_i = ln g_i - ln p_i - ln s0. Part of it is local and
 * smooth (the network over- or under-estimates a whole object, a wall, the
 * far end of a room: FastDepth compresses the depth range, so its scale error
 * also depends on depth), part is pixel noise (texture, edges, the sensor).
 * The model:
 *
 *     y_i = f(x_i) + e_i,   f ~ GP(0, sigma^2 rho k),
 *     e_i ~ N(0, sigma^2 (1 - rho) / w_i)   (w_i: anchor weights, mean 1),
 *     k(x, x') = exp(-|uv - uv'|^2 / (2 l^2) - (ln p - ln p')^2 / (2 lz^2)),
 *
 * with x = (u, v, ln p): pixel position in units of the image diagonal and the
 * base network's log depth there. The depth term makes the field edge-aware:
 * two pixels side by side but on either side of a depth edge (a chair against
 * a far wall) are far apart in x, so an anchor on the chair says little about
 * the wall. The map is the posterior mean
 *
 *     ln s(x) = ln s0 + rho k(x, X) (rho K + (1 - rho) W^-1)^-1 y,
 *
 * which is ln s0 far from every anchor (k -> 0): the fallback to the global
 * scale is built in, and the field departs from it only as far as the
 * anchors support.
 *
 * Hyperparameters are chosen per image from the anchors alone, by type-II
 * maximum likelihood: sigma^2 is profiled out (its maximiser is
 * y' C^-1 y / n, C = rho K + (1 - rho) W^-1), leaving
 *
 *     L(rho, l, lz) = -n/2 ln(y' C^-1 y / n) - 1/2 ln |C|,
 *
 * maximised over a fixed grid: rho in {0, 1/4, 1/2, 3/4, 9/10} (rho = 0 is "no
 * field": the map is the global scale, L = -n/2 ln(sum w y^2 / n) + 1/2 sum ln w),
 * l in {0.05, 0.1, 0.2, 0.4} diagonals (from about the anchor spacing of a
 * few hundred anchors to half the image), lz in {0.1, 0.3, 1, inf} (a 10 %
 * depth step already separates surfaces ... depth plays no part). The grid
 * spans the plausible range rather than being fitted to any data set; the
 * likelihood's Occam factor (the log-determinant) keeps a field out unless
 * the anchors need it, so with few or inconsistent anchors the map is the
 * global scale. Fewer than MAP_MIN_ANCHORS inliers: no field at all (the
 * likelihood of a handful of points cannot tell a field from noise). The
 * cost is cubic in the anchors' count: the hyperparameters are chosen on at
 * most MAP_SELECT_ANCHORS of them (every k-th), and the posterior uses at most
 * MAP_MAX_ANCHORS (every k-th of a larger set, e.g. a dense LiDAR scan).
 *
 * Evaluation: the posterior mean is computed on a bilateral grid (nodes every
 * l/2 in u and v, every lz/2 in ln p over the image's range) and read at each
 * pixel by trilinear interpolation, so the cost per pixel does not grow with
 * the number of anchors. The kernel is separable, so the grid values are
 * sum_i alpha_i ku_i(node u) kv_i(node v) kz_i(node z): no exponential per
 * node and anchor.
 *
 * THE PER-CELL ORACLE. The image is cut into cells_x x cells_y cells, cell
 * (cx, cy) covering columns [cx W / cells_x, (cx + 1) W / cells_x) and the
 * same for rows, and each cell gets its own optimal scale against the ground
 * truth (md_scale_fit, same method and range as the global oracle) over its
 * pixels valid in both maps. Applied piecewise constant, it is exactly the
 * best any predictor of a cells_x x cells_y grid of scales applied per cell
 * can do under that criterion: the ceiling of an image-only scale map, and
 * the training target for one.
 */
#include "scale/anchors.h"

#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAP_MIN_ANCHORS MD_ANCHOR_MIN_STRUCTURE
#define MAP_MAX_ANCHORS 512
#define MAP_SELECT_ANCHORS 128
#define MAD_TO_SD 1.4826
#define X84_SD 3.5

static const double RHO[] = {0.25, 0.5, 0.75, 0.9};
static const double LEN_UV[] = {0.05, 0.1, 0.2, 0.4};
static const double LEN_Z[] = {0.1, 0.3, 1.0, INFINITY};
#define N_RHO (sizeof RHO / sizeof *RHO)
#define N_UV (sizeof LEN_UV / sizeof *LEN_UV)
#define N_Z (sizeof LEN_Z / sizeof *LEN_Z)

/* In-place lower Cholesky of the n x n matrix a (row-major); false if not
 * positive definite. */
static bool cholesky(double *a, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        double *rj = a + j * n;
        double d = rj[j];
        for (size_t k = 0; k < j; k++)
            d -= rj[k] * rj[k];
        if (!(d > 0.0))
            return false;
        d = sqrt(d);
        rj[j] = d;
        for (size_t i = j + 1; i < n; i++) {
            double *ri = a + i * n;
            double s = ri[j];
            for (size_t k = 0; k < j; k++)
                s -= ri[k] * rj[k];
            ri[j] = s / d;
        }
    }
    return true;
}

/* x = L^-T L^-1 b in place (L from cholesky). */
static void cholesky_solve(const double *l, size_t n, double *x)
{
    for (size_t i = 0; i < n; i++) {
        double s = x[i];
        for (size_t k = 0; k < i; k++)
            s -= l[i * n + k] * x[k];
        x[i] = s / l[i * n + i];
    }
    for (size_t i = n; i-- > 0;) {
        double s = x[i];
        for (size_t k = i + 1; k < n; k++)
            s -= l[k * n + i] * x[k];
        x[i] = s / l[i * n + i];
    }
}

typedef struct {
    size_t n;
    double *u, *v, *z; /* position (diagonals) and ln p */
    double *y, *w;     /* residual and weight (mean 1) */
} gp_data;

/* C = rho K + (1 - rho) W^-1 into c. */
static void build_c(const gp_data *d, double rho, double l, double lz, double *c)
{
    size_t n = d->n;
    double iu = 1.0 / (2.0 * l * l), iz = isfinite(lz) ? 1.0 / (2.0 * lz * lz) : 0.0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j <= i; j++) {
            double du = d->u[i] - d->u[j], dv = d->v[i] - d->v[j], dz = d->z[i] - d->z[j];
            double k = exp(-(du * du + dv * dv) * iu - dz * dz * iz);
            double v = rho * k + (i == j ? (1.0 - rho) / d->w[i] : 0.0);
            c[i * n + j] = c[j * n + i] = v;
        }
    }
}

/* Profiled log-likelihood for C (factored in place); alpha gets C^-1 y. */
static double profiled_loglik(const gp_data *d, double *c, double *alpha, bool *ok)
{
    size_t n = d->n;
    *ok = cholesky(c, n);
    if (!*ok)
        return -INFINITY;
    memcpy(alpha, d->y, n * sizeof *alpha);
    cholesky_solve(c, n, alpha);
    double q = 0.0, logdet = 0.0;
    for (size_t i = 0; i < n; i++) {
        q += d->y[i] * alpha[i];
        logdet += 2.0 * log(c[i * n + i]);
    }
    if (!(q > 0.0))
        return -INFINITY;
    return -0.5 * (double)n * log(q / (double)n) - 0.5 * logdet;
}

static void fill(float *map, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        map[i] = (float)v;
}

typedef struct {
    double rho, l, lz; /* rho = 0: no field */
} gp_hyper;

/* Type-II maximum likelihood over the fixed grid, on every k-th point of d
 * (at most MAP_SELECT_ANCHORS). c: n*n and alpha: n scratch; sub: 5 * n. */
static gp_hyper gp_select(const gp_data *d, double *c, double *alpha, double *submem)
{
    size_t stride = (d->n + MAP_SELECT_ANCHORS - 1) / MAP_SELECT_ANCHORS, m = 0;
    gp_data sub = {0, submem, submem + d->n, submem + 2 * d->n, submem + 3 * d->n,
                   submem + 4 * d->n};
    double wsum = 0.0;
    for (size_t i = 0; i < d->n; i += stride) {
        sub.u[m] = d->u[i];
        sub.v[m] = d->v[i];
        sub.z[m] = d->z[i];
        sub.y[m] = d->y[i];
        sub.w[m] = d->w[i];
        wsum += d->w[i];
        m++;
    }
    sub.n = m;
    for (size_t i = 0; i < m; i++)
        sub.w[i] *= (double)m / wsum;
    /* rho = 0: C = W^-1, y'C^-1 y = sum w y^2, ln |C| = -sum ln w */
    double q0 = 0.0, lw = 0.0;
    for (size_t i = 0; i < m; i++) {
        q0 += sub.w[i] * sub.y[i] * sub.y[i];
        lw += log(sub.w[i]);
    }
    gp_hyper best_h = {0, 0, 0};
    double best = q0 > 0.0 ? -0.5 * (double)m * log(q0 / (double)m) + 0.5 * lw : INFINITY;
    for (size_t a = 0; a < N_RHO; a++) {
        for (size_t b = 0; b < N_UV; b++) {
            for (size_t z = 0; z < N_Z; z++) {
                build_c(&sub, RHO[a], LEN_UV[b], LEN_Z[z], c);
                bool ok;
                double ll = profiled_loglik(&sub, c, alpha, &ok);
                if (ok && ll > best) {
                    best = ll;
                    best_h = (gp_hyper){RHO[a], LEN_UV[b], LEN_Z[z]};
                }
            }
        }
    }
    return best_h;
}

/* alpha = C^-1 y for the chosen hyperparameters, and (loo not NULL) the
 * leave-one-out residuals y_i - E[y_i | the others] = alpha_i / [C^-1]_ii
 * (Rasmussen and Williams, eq. 5.12); with no field they are y itself.
 * tmp: n scratch. False if C is not positive definite. */
static bool gp_posterior(const gp_data *d, gp_hyper h, double *c, double *alpha, double *loo,
                         double *tmp)
{
    size_t n = d->n;
    if (h.rho == 0.0) {
        memset(alpha, 0, n * sizeof *alpha);
        if (loo)
            memcpy(loo, d->y, n * sizeof *loo);
        return true;
    }
    build_c(d, h.rho, h.l, h.lz, c);
    bool ok;
    profiled_loglik(d, c, alpha, &ok);
    if (!ok || !loo)
        return ok;
    /* [C^-1]_ii = sum_k (L^-1)_ki^2: forward substitution of e_i */
    for (size_t i = 0; i < n; i++) {
        double sum = 0.0;
        for (size_t k = i; k < n; k++) {
            double v = k == i ? 1.0 : 0.0;
            for (size_t j = i; j < k; j++)
                v -= c[k * n + j] * tmp[j];
            tmp[k] = v / c[k * n + k];
            sum += tmp[k] * tmp[k];
        }
        loo[i] = alpha[i] / sum;
    }
    return true;
}

md_status md_anchor_scale_map(const md_depth *base, const md_anchor_samples *s,
                              double global_log_scale, float *log_scale_map, md_error *err)
{
    int W = base->width, H = base->height;
    size_t npix = (size_t)W * (size_t)H;
    fill(log_scale_map, npix, global_log_scale);
    if (s->n < MAP_MIN_ANCHORS)
        return MD_OK;
    size_t stride = (s->n + MAP_MAX_ANCHORS - 1) / MAP_MAX_ANCHORS;
    size_t n = (s->n + stride - 1) / stride;

    double diag = sqrt((double)W * W + (double)H * H);
    gp_data d = {0};
    double *mem = md_malloc((13 * n + n * n) * sizeof *mem, "scale map", err);
    if (!mem)
        return MD_ERR_NOMEM;
    d.u = mem;
    d.v = mem + n;
    d.z = mem + 2 * n;
    d.y = mem + 3 * n;
    d.w = mem + 4 * n;
    double *submem = mem + 5 * n, *alpha = mem + 10 * n, *loo = mem + 11 * n;
    double *tmp = mem + 12 * n, *c = mem + 13 * n;
    double wsum = 0.0;
    for (size_t i = 0; i < s->n; i += stride) {
        d.u[d.n] = (s->px[i] + 0.5) / diag;
        d.v[d.n] = (s->py[i] + 0.5) / diag;
        d.z[d.n] = log(s->base[i]);
        d.y[d.n] = log(s->depth[i]) - log(s->base[i]) - global_log_scale;
        d.w[d.n] = s->w[i];
        wsum += s->w[i];
        d.n++;
    }
    for (size_t i = 0; i < d.n; i++)
        d.w[i] *= (double)d.n / wsum;
    /* pass 1 on every anchor; outliers are judged against the field the
     * others predict at them (X84 on the leave-one-out residuals), not
     * against the global scale: two surfaces the network scales differently
     * are structure, not outliers */
    gp_hyper h = gp_select(&d, c, alpha, submem);
    if (!gp_posterior(&d, h, c, alpha, loo, tmp)) {
        free(mem);
        return MD_OK; /* cannot happen for rho < 1 and positive weights */
    }
    for (size_t i = 0; i < d.n; i++)
        tmp[i] = fabs(loo[i]);
    double sigma = MAD_TO_SD * md_weighted_median(tmp, d.w, d.n);
    size_t kept = 0;
    for (size_t i = 0; i < d.n; i++) {
        if (!(fabs(loo[i]) > X84_SD * sigma)) {
            d.u[kept] = d.u[i];
            d.v[kept] = d.v[i];
            d.z[kept] = d.z[i];
            d.y[kept] = d.y[i];
            d.w[kept] = d.w[i];
            kept++;
        }
    }
    if (kept < d.n) { /* pass 2 without the outliers */
        d.n = kept;
        if (kept < MAP_MIN_ANCHORS) {
            free(mem);
            return MD_OK;
        }
        wsum = 0.0;
        for (size_t i = 0; i < kept; i++)
            wsum += d.w[i];
        for (size_t i = 0; i < kept; i++)
            d.w[i] *= (double)kept / wsum;
        h = gp_select(&d, c, alpha, submem);
        if (!gp_posterior(&d, h, c, alpha, NULL, tmp)) {
            free(mem);
            return MD_OK;
        }
    }
    if (h.rho == 0.0) {
        free(mem);
        return MD_OK;
    }
    n = d.n;
    const double *best_alpha = alpha;
    double best_rho = h.rho, best_l = h.l, best_lz = h.lz;

    /* bilateral grid: nodes every l/2 (in pixels) and lz/2 in ln p */
    double zmin = INFINITY, zmax = -INFINITY;
    for (size_t i = 0; i < npix; i++) {
        if (!md_depth_valid_at(base, i))
            continue;
        double z = log((double)base->data[i]);
        zmin = z < zmin ? z : zmin;
        zmax = z > zmax ? z : zmax;
    }
    double step = 0.5 * best_l * diag;
    if (step < 4.0)
        step = 4.0;
    int gx = (int)ceil((W - 1) / step) + 1, gy = (int)ceil((H - 1) / step) + 1;
    double zstep = isfinite(best_lz) ? 0.5 * best_lz : INFINITY;
    int gz = isfinite(zstep) && zmax > zmin ? (int)ceil((zmax - zmin) / zstep) + 1 : 1;
    if (gz > 256) { /* a base map spanning e^128 in depth: coarser z */
        gz = 256;
        zstep = (zmax - zmin) / 255.0;
    }
    size_t nodes = (size_t)gx * (size_t)gy * (size_t)gz;
    double *ku = md_malloc(((size_t)gx + gy + gz) * n * sizeof *ku, "scale map grid", err);
    float *grid = md_malloc(nodes * sizeof *grid, "scale map grid", err);
    if (!ku || !grid) {
        free(ku);
        free(grid);
        free(mem);
        return MD_ERR_NOMEM;
    }
    double *kv = ku + (size_t)gx * n, *kz = kv + (size_t)gy * n;
    double iu = 1.0 / (2.0 * best_l * best_l);
    for (size_t i = 0; i < n; i++) {
        for (int x = 0; x < gx; x++) {
            double du = x * step / diag - d.u[i];
            ku[(size_t)x * n + i] = exp(-du * du * iu);
        }
        for (int y = 0; y < gy; y++) {
            double dv = y * step / diag - d.v[i];
            kv[(size_t)y * n + i] = exp(-dv * dv * iu);
        }
        for (int zz = 0; zz < gz; zz++) {
            double dz = gz > 1 ? zmin + zz * zstep - d.z[i] : 0.0;
            kz[(size_t)zz * n + i] =
                isfinite(best_lz) ? exp(-dz * dz / (2.0 * best_lz * best_lz)) : 1.0;
        }
    }
    double *coef = md_malloc(n * sizeof *coef, "scale map grid", err);
    if (!coef) {
        free(ku);
        free(grid);
        free(mem);
        return MD_ERR_NOMEM;
    }
    for (int zz = 0; zz < gz; zz++) {
        for (int y = 0; y < gy; y++) {
            const double *kvz = kv + (size_t)y * n, *kzz = kz + (size_t)zz * n;
            for (size_t i = 0; i < n; i++)
                coef[i] = best_rho * best_alpha[i] * kvz[i] * kzz[i];
            for (int x = 0; x < gx; x++) {
                const double *kux = ku + (size_t)x * n;
                double sum = 0.0;
                for (size_t i = 0; i < n; i++)
                    sum += coef[i] * kux[i];
                grid[((size_t)zz * gy + y) * gx + x] = (float)(global_log_scale + sum);
            }
        }
    }
    free(coef);
    /* slice: trilinear at (x / step, y / step, (ln p - zmin) / zstep) */
    for (int y = 0; y < H; y++) {
        double fy = (y + 0.5) / step;
        int y0 = (int)fy;
        if (y0 >= gy - 1)
            y0 = gy - 2 < 0 ? 0 : gy - 2;
        double ty = gy > 1 ? fy - y0 : 0.0;
        int y1 = gy > 1 ? y0 + 1 : y0;
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            if (!md_depth_valid_at(base, i))
                continue;
            double fx = (x + 0.5) / step;
            int x0 = (int)fx;
            if (x0 >= gx - 1)
                x0 = gx - 2 < 0 ? 0 : gx - 2;
            double tx = gx > 1 ? fx - x0 : 0.0;
            int x1 = gx > 1 ? x0 + 1 : x0;
            int z0 = 0, z1 = 0;
            double tz = 0.0;
            if (gz > 1) {
                double fz = (log((double)base->data[i]) - zmin) / zstep;
                z0 = (int)fz;
                if (z0 >= gz - 1)
                    z0 = gz - 2;
                if (z0 < 0)
                    z0 = 0;
                tz = fz - z0;
                tz = tz < 0 ? 0 : tz > 1 ? 1 : tz;
                z1 = z0 + 1;
            }
            tx = tx > 1 ? 1 : tx;
            ty = ty > 1 ? 1 : ty;
#define G(xx, yy, zz) (double)grid[((size_t)(zz) * gy + (yy)) * gx + (xx)]
            double c00 = G(x0, y0, z0) * (1 - tx) + G(x1, y0, z0) * tx;
            double c10 = G(x0, y1, z0) * (1 - tx) + G(x1, y1, z0) * tx;
            double c01 = G(x0, y0, z1) * (1 - tx) + G(x1, y0, z1) * tx;
            double c11 = G(x0, y1, z1) * (1 - tx) + G(x1, y1, z1) * tx;
#undef G
            double c0 = c00 * (1 - ty) + c10 * ty, c1 = c01 * (1 - ty) + c11 * ty;
            log_scale_map[i] = (float)(c0 * (1 - tz) + c1 * tz);
        }
    }
    free(ku);
    free(grid);
    free(mem);
    return MD_OK;
}

/* ----------------------------------------------------- per-cell oracle */

static int cell_of(int i, int size, int cells)
{
    /* cell c covers [c size / cells, (c + 1) size / cells) */
    return (int)(((long long)i * cells) / size);
}

md_status md_scale_cell_oracle(const md_depth *pred, const md_depth *gt, int cells_x,
                               int cells_y, md_scale_method method, double lo, double hi,
                               size_t min_pixels, double *log_scales, md_error *err)
{
    if (!pred || !gt || !log_scales || !pred->data || !gt->data)
        return md_fail(err, MD_ERR_ARG, "cell oracle: NULL argument");
    if (pred->width != gt->width || pred->height != gt->height)
        return md_fail(err, MD_ERR_DATA,
                       "cell oracle: prediction is %dx%d but ground truth is %dx%d", pred->width, pred->height, gt->width, gt->height);
    if (cells_x <= 0 || cells_y <= 0 || cells_x > pred->width || cells_y > pred->height)
        return md_fail(err, MD_ERR_ARG, "cell oracle: %dx%d cells do not fit a %dx%d image",
                       cells_x, cells_y, pred->width, pred->height);
    int W = pred->width, H = pred->height;
    size_t ncell = (size_t)cells_x * (size_t)cells_y;
    size_t npix = (size_t)W * (size_t)H;
    size_t *count = md_calloc(ncell + 1, sizeof *count, "cell oracle", err);
    float *p = md_malloc(npix * sizeof *p, "cell oracle", err);
    float *g = md_malloc(npix * sizeof *g, "cell oracle", err);
    if (!count || !p || !g) {
        free(count);
        free(p);
        free(g);
        return MD_ERR_NOMEM;
    }
    /* bucket the valid pixels by cell: counts, offsets, then a fill */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            if (md_depth_valid_at(pred, i) && md_depth_valid_at(gt, i))
                count[(size_t)cell_of(y, H, cells_y) * cells_x + cell_of(x, W, cells_x) + 1]++;
        }
    for (size_t c = 0; c < ncell; c++)
        count[c + 1] += count[c];
    size_t *next = md_malloc(ncell * sizeof *next, "cell oracle", err);
    if (!next) {
        free(count);
        free(p);
        free(g);
        return MD_ERR_NOMEM;
    }
    memcpy(next, count, ncell * sizeof *next);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            if (!(md_depth_valid_at(pred, i) && md_depth_valid_at(gt, i)))
                continue;
            size_t c = (size_t)cell_of(y, H, cells_y) * cells_x + cell_of(x, W, cells_x);
            p[next[c]] = pred->data[i];
            g[next[c]] = gt->data[i];
            next[c]++;
        }
    md_status st = MD_OK;
    for (size_t c = 0; c < ncell && st == MD_OK; c++) {
        size_t m = count[c + 1] - count[c];
        if (m == 0 || m < min_pixels) {
            log_scales[c] = NAN;
            continue;
        }
        double s;
        st = md_scale_fit(p + count[c], g + count[c], m, method, lo, hi, &s, err);
        log_scales[c] = st == MD_OK ? log(s) : NAN;
    }
    free(next);
    free(count);
    free(p);
    free(g);
    return st;
}

md_status md_depth_apply_cell_scales(md_depth *depth, int cells_x, int cells_y,
                                     const double *log_scales, double fallback_log_scale,
                                     md_error *err)
{
    if (!depth || !depth->data || !log_scales)
        return md_fail(err, MD_ERR_ARG, "cell scales: NULL argument");
    if (cells_x <= 0 || cells_y <= 0 || cells_x > depth->width || cells_y > depth->height)
        return md_fail(err, MD_ERR_ARG, "cell scales: %dx%d cells do not fit a %dx%d map",
                       cells_x, cells_y, depth->width, depth->height);
    for (int y = 0; y < depth->height; y++) {
        int cy = cell_of(y, depth->height, cells_y);
        for (int x = 0; x < depth->width; x++) {
            double l = log_scales[(size_t)cy * cells_x + cell_of(x, depth->width, cells_x)];
            if (!isfinite(l))
                l = fallback_log_scale;
            depth->data[(size_t)y * depth->width + x] *= (float)exp(l);
        }
    }
    return MD_OK;
}
