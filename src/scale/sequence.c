/* Steady scale over consecutive frames: a Kalman filter on ln s.
 *
 * Model. The true ln s of frame t, x_t, follows a random walk,
 * x_t = x_{t-1} + u_t + w_t, w_t ~ N(0, Q(dt)), and each frame's raw estimate
 * is z_t = x_t + v_t, v_t ~ N(0, R_t), R_t the square of the raw value's own
 * standard error (the anchor fit's, the scale model's), or the running mean
 * Rbar of the known R when it has none. u_t is a known input: with the base
 * network's depth level l_t (ln of its median depth) given, u_t = -(l_t -
 * l_{t-1}). The metric level ln s + l of a scene changes slowly as a camera
 * moves, while the network's level l jumps from frame to frame (FastDepth on a
 * SUN3D run: sd of l 0.1-0.2 against 0.02-0.03 for the ground truth's); the
 * input makes the prediction keep ln s + l rather than ln s, so the filter
 * smooths the raw estimates' noise without lagging behind the network's jumps.
 *
 * One time constant. For a random walk measured with constant R the Kalman
 * gain converges to K with K^2 R + K Q - Q = 0 (from P- = P + Q,
 * K = P- / (P- + R), P = (1 - K) P- = K R). Choosing
 *
 *     Q(dt) = Rbar alpha^2 / (1 - alpha),  alpha = 1 - exp(-dt / tau),
 *
 * makes that steady gain exactly alpha: for equally precise raw values the
 * filter is the exponential filter of time constant tau (seconds), whatever
 * the frame rate, and a raw value with R_t below (above) Rbar gets a larger
 * (smaller) gain than alpha. Q scales with Rbar, so only tau needs choosing.
 *
 * Outliers. The innovation z_t - x_t- has variance S = P- + R_t; a raw value
 * with |innovation| > gate sqrt(S) is rejected (the prediction stands), and
 * after three rejections in a row the filter restarts from the latest raw
 * value: three agreeing "outliers" are more likely a real change (a cut, a
 * new room, a sensor swap) than noise at a 3-sd gate (chance about 2.7e-3 each).
 * A frame without a raw value (NaN) only predicts.
 */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RESTART_AFTER 3

struct md_scale_filter {
    md_scale_filter_options o;
    int started;
    double x, p;        /* estimate of ln s and its variance */
    double t;           /* time of the last update */
    double level;       /* the last finite base level, NaN if none */
    double r_sum;       /* sum of the known R */
    size_t r_count;     /* how many */
    int streak;         /* rejections in a row */
};

md_scale_filter_options md_scale_filter_defaults(void)
{
    /* 0.2 s: a camera moving at walking pace through a room changes the depth
     * level of its view by tens of percent per second, so a filter on the
     * metric level must follow within a fraction of a second */
    md_scale_filter_options o = {.time_constant_s = 0.2, .gate = 3.0, .use_level = 1};
    return o;
}

md_status md_scale_filter_new(const md_scale_filter_options *opts, md_scale_filter **out,
                              md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "scale filter: out is NULL");
    *out = NULL;
    md_scale_filter_options o = opts ? *opts : md_scale_filter_defaults();
    if (!(o.time_constant_s > 0.0) || !isfinite(o.time_constant_s))
        return md_fail(err, MD_ERR_ARG, "scale filter: time constant %g s is not positive",
                       o.time_constant_s);
    if (!(o.gate > 0.0))
        return md_fail(err, MD_ERR_ARG, "scale filter: gate %g is not positive", o.gate);
    md_scale_filter *f = md_calloc(1, sizeof *f, "scale filter", err);
    if (!f)
        return MD_ERR_NOMEM;
    f->o = o;
    md_scale_filter_reset(f);
    *out = f;
    return MD_OK;
}

void md_scale_filter_reset(md_scale_filter *f)
{
    if (!f)
        return;
    md_scale_filter_options o = f->o;
    memset(f, 0, sizeof *f);
    f->o = o;
    f->level = NAN;
}

void md_scale_filter_free(md_scale_filter *f)
{
    free(f);
}

/* The running mean of the known R; 1 before any (only ratios of variances
 * matter then, and the reported sd is NaN). */
static double r_bar(const md_scale_filter *f)
{
    return f->r_count ? f->r_sum / (double)f->r_count : 1.0;
}

static void start(md_scale_filter *f, double t, double z, double r, double level)
{
    f->started = 1;
    f->x = z;
    f->p = r;
    f->t = t;
    f->streak = 0;
    if (isfinite(level))
        f->level = level;
}

/* A frame that does not update the estimate: the filter restarts from its raw
 * value z, or keeps the prediction (x, p). */
static void restart_or_hold(md_scale_filter *f, bool restart, double t, double z, double r,
                            double level, double x, double p, md_scale_filter_output *out)
{
    if (restart) {
        start(f, t, z, r, level);
        out->restarted = 1;
    } else {
        f->x = x;
        f->p = p;
    }
}

md_status md_scale_filter_update(md_scale_filter *f, double t_s, double raw_log_scale,
                                 double raw_sd, double base_level, md_scale_filter_output *out,
                                 md_error *err)
{
    if (!f || !out)
        return md_fail(err, MD_ERR_ARG, "scale filter: NULL argument");
    memset(out, 0, sizeof *out);
    out->log_scale = out->log_scale_sd = NAN;
    if (!isfinite(t_s))
        return md_fail(err, MD_ERR_ARG, "scale filter: time %g is not finite", t_s);
    if (isinf(raw_log_scale))
        return md_fail(err, MD_ERR_ARG, "scale filter: raw ln s is infinite");
    bool known = isfinite(raw_sd) && raw_sd > 0.0;
    bool have = isfinite(raw_log_scale);
    if (known && have) {
        f->r_sum += raw_sd * raw_sd;
        f->r_count++;
    }
    double r = known ? raw_sd * raw_sd : r_bar(f);
    if (!f->started) {
        if (!have)
            return MD_OK; /* nothing to start from: no estimate yet */
        start(f, t_s, raw_log_scale, r, base_level);
        out->restarted = 1;
        goto report;
    }
    double dt = t_s - f->t;
    if (!(dt > 0.0))
        return md_fail(err, MD_ERR_ARG,
                       "scale filter: frame time %g s does not follow the previous %g s", t_s,
                       f->t);
    /* predict */
    double alpha = -expm1(-dt / f->o.time_constant_s);
    double q = alpha < 1.0 ? r_bar(f) * alpha * alpha / (1.0 - alpha) : INFINITY;
    double x = f->x, p = f->p + q;
    if (f->o.use_level && isfinite(base_level) && isfinite(f->level))
        x -= base_level - f->level;
    if (isfinite(base_level))
        f->level = base_level;
    f->t = t_s;
    if (!have || !isfinite(p)) { /* have: a gap so long that the past says nothing */
        restart_or_hold(f, have, t_s, raw_log_scale, r, base_level, x, p, out);
        goto report;
    }
    /* gate and update */
    double nu = raw_log_scale - x, s = p + r;
    if (fabs(nu) > f->o.gate * sqrt(s)) {
        out->rejected = 1;
        f->streak++;
        restart_or_hold(f, f->streak >= RESTART_AFTER, t_s, raw_log_scale, r, base_level, x, p,
                        out);
        goto report;
    }
    f->streak = 0;
    double k = p / s;
    f->x = x + k * nu;
    f->p = (1.0 - k) * p;
report:
    out->log_scale = f->started ? f->x : NAN;
    out->log_scale_sd = f->started && f->r_count ? sqrt(f->p) : NAN;
    return MD_OK;
}

/* k-th smallest of v[0..n) (permutes v), expected O(n). */
static float select_kth(float *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    uint64_t rng = 0x2545F4914F6CDD1Dull ^ n;
    while (lo < hi) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        float pivot = v[lo + rng % (hi - lo + 1)];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

double md_depth_log_level(const md_depth *depth)
{
    if (!depth || !depth->data || depth->width <= 0 || depth->height <= 0)
        return NAN;
    size_t n = (size_t)depth->width * (size_t)depth->height, m = 0;
    float *v = malloc(n * sizeof *v);
    if (!v)
        return NAN;
    for (size_t i = 0; i < n; i++)
        if (md_depth_valid_at(depth, i))
            v[m++] = depth->data[i];
    double level = NAN;
    if (m > 0) {
        /* median: the mean of the two middle values for an even count */
        double hi = select_kth(v, m, m / 2);
        double lo = m % 2 ? hi : select_kth(v, m, m / 2 - 1);
        level = log(0.5 * (lo + hi));
    }
    free(v);
    return level;
}

md_status md_scale_filter_apply(md_scale_filter *f, double t_s, md_depth *depth,
                                md_scale_record *rec, md_error *err)
{
    if (!f || !depth || !depth->data || !rec)
        return md_fail(err, MD_ERR_ARG, "scale filter: NULL argument");
    if (rec->source == MD_SCALE_SOURCE_ANCHORS && rec->anchor_fit == MD_ANCHOR_FIT_SCALE_SHIFT)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "scale filter: a scale-shift fit is not one scale to filter (use a "
                       "scale-only fit for sequences)");
    if (!(rec->scale > 0.0) || !isfinite(rec->scale))
        return md_fail(err, MD_ERR_DATA, "scale filter: the frame's scale %g is not positive",
                       rec->scale);
    double raw = log(rec->scale);
    double level = md_depth_log_level(depth) - raw;
    md_scale_filter_output out;
    md_status st = md_scale_filter_update(f, t_s, raw, rec->log_scale_sd, level, &out, err);
    if (st != MD_OK)
        return st;
    double shift = out.log_scale - raw;
    if (shift != 0.0) {
        size_t n = (size_t)depth->width * (size_t)depth->height;
        float g = (float)exp(shift);
        for (size_t i = 0; i < n; i++)
            depth->data[i] *= g;
        if (rec->log_scale_map) {
            size_t m = (size_t)rec->map_width * (size_t)rec->map_height;
            for (size_t i = 0; i < m; i++)
                rec->log_scale_map[i] = (float)(rec->log_scale_map[i] + shift);
        }
    }
    rec->raw_scale = rec->scale;
    rec->scale = exp(out.log_scale);
    rec->filtered = 1;
    rec->filter_rejected = out.rejected;
    return MD_OK;
}
