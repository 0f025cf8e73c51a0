/* The scale filter against its definition: the steady-state gain is the
 * exponential filter's alpha = 1 - exp(-dt / tau) (an exponential filter run
 * here beside it), outliers are rejected and three in a row restart it, the
 * depth-level input keeps the metric level, frames without a raw value only
 * predict, bad times are errors. md_depth_log_level against a sorted copy. */
#include "check.h"
#include "base/base.h"
#include "eval/anchor_eval.h"

#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x13198A2E03707344ull;

static double urand(void)
{
    return (double)(md_splitmix64(&rng_state) >> 11) * (1.0 / 9007199254740992.0);
}

static md_scale_filter *new_filter(double tau, int use_level)
{
    md_scale_filter_options o = md_scale_filter_defaults();
    o.time_constant_s = tau;
    o.use_level = use_level;
    md_scale_filter *f = NULL;
    md_error err = {0};
    CHECK_OK(md_scale_filter_new(&o, &f, &err), &err);
    return f;
}

static void test_defaults_and_errors(void)
{
    md_scale_filter_options o = md_scale_filter_defaults();
    CHECK(o.time_constant_s == 0.2 && o.gate == 3.0 && o.use_level == 1);
    md_error err = {0};
    md_scale_filter *f = NULL;
    o.time_constant_s = 0;
    CHECK(md_scale_filter_new(&o, &f, &err) == MD_ERR_ARG && f == NULL);
    o.time_constant_s = 1;
    o.gate = -1;
    CHECK(md_scale_filter_new(&o, &f, &err) == MD_ERR_ARG);
    f = new_filter(1.0, 0);
    md_scale_filter_output out;
    CHECK_OK(md_scale_filter_update(f, 0.0, 0.1, NAN, NAN, &out, &err), &err);
    CHECK(out.log_scale == 0.1 && out.restarted && isnan(out.log_scale_sd));
    CHECK(md_scale_filter_update(f, 0.0, 0.1, NAN, NAN, &out, &err) == MD_ERR_ARG);
    CHECK(md_scale_filter_update(f, -1.0, 0.1, NAN, NAN, &out, NULL) == MD_ERR_ARG);
    CHECK(md_scale_filter_update(f, 1.0, INFINITY, NAN, NAN, &out, &err) == MD_ERR_ARG);
    md_scale_filter_free(f);
    md_scale_filter_free(NULL);
}

/* Equal raw sds: after the start-up the filter is the exponential filter. */
static void test_exponential_equivalence(void)
{
    md_error err = {0};
    const double tau = 0.5, dt = 1.0 / 30.0, alpha = 1.0 - exp(-dt / tau);
    md_scale_filter *f = new_filter(tau, 0);
    md_scale_filter_output out;
    double ema = 0;
    double worst = 0;
    for (int t = 0; t < 2000; t++) {
        double z = 0.2 * sin(t * 0.01) + 0.01 * (urand() - 0.5);
        CHECK_OK(md_scale_filter_update(f, t * dt, z, 0.05, NAN, &out, &err), &err);
        CHECK(!out.rejected);
        if (t == 600)
            ema = out.log_scale; /* start the reference from the filter's state */
        else if (t > 600) {
            ema += alpha * (z - ema);
            worst = fmax(worst, fabs(out.log_scale - ema));
        }
    }
    CHECK_MSG(worst < 1e-9, "filter vs exponential filter: %g", worst);
    /* the reported sd is the steady state's: P = K R, K = alpha */
    CHECK_NEAR(out.log_scale_sd, sqrt(alpha * 0.05 * 0.05), 1e-9);
    md_scale_filter_free(f);

    /* unknown sds (NaN) behave the same: only their ratios matter */
    f = new_filter(tau, 0);
    for (int t = 0; t < 800; t++)
        CHECK_OK(md_scale_filter_update(f, t * dt, 0.0, NAN, NAN, &out, &err), &err);
    CHECK_OK(md_scale_filter_update(f, 800 * dt, 0.001, NAN, NAN, &out, &err), &err);
    CHECK_NEAR(out.log_scale, alpha * 0.001, 1e-12);
    md_scale_filter_free(f);

    /* a frame rate change keeps the time constant: one step of 10 dt moves
     * by 1 - exp(-10 dt / tau) of the way in steady state */
    f = new_filter(tau, 0);
    for (int t = 0; t < 800; t++)
        CHECK_OK(md_scale_filter_update(f, t * 10 * dt, 0.0, 0.1, NAN, &out, &err), &err);
    CHECK_OK(md_scale_filter_update(f, 800 * 10 * dt, 0.01, 0.1, NAN, &out, &err), &err);
    CHECK_NEAR(out.log_scale, (1 - exp(-10 * dt / tau)) * 0.01, 1e-9);
    md_scale_filter_free(f);
}

/* A raw value twice as precise as the running average gets a larger gain:
 * K = P- / (P- + R) with the steady P- of the average. */
static void test_precision_weighting(void)
{
    md_error err = {0};
    const double tau = 1.0, dt = 0.1, alpha = 1.0 - exp(-dt / tau), r = 0.1;
    md_scale_filter *f = new_filter(tau, 0);
    md_scale_filter_output out;
    for (int t = 0; t < 3000; t++)
        CHECK_OK(md_scale_filter_update(f, t * dt, 0.0, r, NAN, &out, &err), &err);
    /* steady P = alpha R, so P- = alpha R + Q with Q = R alpha^2 / (1 - alpha);
     * R_bar moves by one sample of R / 4 among 3001 */
    double rbar = (3000 * r * r + r * r / 4) / 3001;
    double pminus = alpha * r * r + rbar * alpha * alpha / (1 - alpha);
    double k = pminus / (pminus + r * r / 4);
    CHECK_OK(md_scale_filter_update(f, 3000 * dt, 0.01, r / 2, NAN, &out, &err), &err);
    CHECK_NEAR(out.log_scale, k * 0.01, 1e-6 * 0.01);
    CHECK(k > alpha);
    md_scale_filter_free(f);
}

static void test_outliers_and_restart(void)
{
    md_error err = {0};
    md_scale_filter *f = new_filter(1.0, 0);
    md_scale_filter_output out;
    for (int t = 0; t < 100; t++)
        CHECK_OK(md_scale_filter_update(f, t * 0.1, 0.0, 0.02, NAN, &out, &err), &err);
    /* one spike of 1.0 (50 sds): rejected, estimate unchanged */
    CHECK_OK(md_scale_filter_update(f, 10.0, 1.0, 0.02, NAN, &out, &err), &err);
    CHECK(out.rejected && !out.restarted && fabs(out.log_scale) < 1e-12);
    CHECK_OK(md_scale_filter_update(f, 10.1, 0.0, 0.02, NAN, &out, &err), &err);
    CHECK(!out.rejected);
    /* three in a row: restart at the third */
    for (int k = 0; k < 3; k++)
        CHECK_OK(md_scale_filter_update(f, 10.2 + 0.1 * k, 0.7 + 0.01 * k, 0.02, NAN, &out, &err),
                 &err);
    CHECK(out.rejected && out.restarted && out.log_scale == 0.72);
    /* a frame without a raw value only predicts */
    CHECK_OK(md_scale_filter_update(f, 10.6, NAN, NAN, NAN, &out, &err), &err);
    CHECK(out.log_scale == 0.72 && !out.rejected);
    /* reset: the next value starts afresh */
    md_scale_filter_reset(f);
    CHECK_OK(md_scale_filter_update(f, 0.0, -0.3, 0.02, NAN, &out, &err), &err);
    CHECK(out.log_scale == -0.3 && out.restarted);
    md_scale_filter_free(f);
}

/* The metric level ln s + level is what the level input keeps: with raw
 * values exactly L - level_t, the output follows the network's jumps at
 * once (no lag), and with noisy raw values it smooths around them. */
static void test_level_input(void)
{
    md_error err = {0};
    md_scale_filter *f = new_filter(1.0, 1), *g = new_filter(1.0, 0);
    md_scale_filter_output out, og;
    const double L = 1.1;
    double worst = 0, lagged = 0;
    for (int t = 0; t < 300; t++) {
        double level = 0.2 * ((t / 7) % 2 ? 1 : -1) + 0.05 * urand(); /* jumps of 0.4 */
        CHECK_OK(md_scale_filter_update(f, t / 30.0, L - level, 0.05, level, &out, &err), &err);
        CHECK_OK(md_scale_filter_update(g, t / 30.0, L - level, 0.05, level, &og, &err), &err);
        worst = fmax(worst, fabs(out.log_scale + level - L));
        lagged = fmax(lagged, fabs(og.log_scale + level - L));
    }
    CHECK_MSG(worst < 1e-12, "level input: metric level off by %g", worst);
    CHECK(lagged > 0.1); /* without it, ln s lags behind the jumps */
    md_scale_filter_free(f);
    md_scale_filter_free(g);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_log_level(void)
{
    md_error err = {0};
    for (int t = 0; t < 20; t++) {
        int w = 1 + (int)(urand() * 40), h = 1 + (int)(urand() * 30);
        md_depth d = {0};
        CHECK_OK(md_depth_alloc(&d, w, h, &err), &err);
        float *v = malloc((size_t)w * h * sizeof *v);
        size_t m = 0;
        for (int i = 0; i < w * h; i++) {
            d.data[i] = urand() < 0.2 ? 0.0f : (float)(0.5 + 5 * urand());
            if (t % 3 == 0)
                d.data[i] = d.data[i] > 0 ? (float)(1 + (i % 4)) : 0.0f; /* many ties */
            if (d.data[i] > 0)
                v[m++] = d.data[i];
        }
        qsort(v, m, sizeof *v, cmp_float);
        double want = m ? log(m % 2 ? v[m / 2] : 0.5 * ((double)v[m / 2 - 1] + v[m / 2])) : NAN;
        double got = md_depth_log_level(&d);
        if (m)
            CHECK_NEAR(got, want, 1e-12);
        else
            CHECK(isnan(got));
        free(v);
        md_depth_free(&d);
    }
    CHECK(isnan(md_depth_log_level(NULL)));
}

/* md_scale_filter_apply on frames scaled by md_scale_depth: the depth ends
 * up at the filtered scale, the record keeps both. */
static void test_apply(void)
{
    md_error err = {0};
    md_scale_filter *f = new_filter(0.1, 0);
    md_depth d = {0};
    CHECK_OK(md_depth_alloc(&d, 4, 3, &err), &err);
    md_anchor a[3] = {{0.5f, 0.5f, 0, 1}, {2.5f, 1.5f, 0, 1}, {3.5f, 2.5f, 0, 1}};
    md_anchor_set set = {a, 3};
    md_scale_options so = md_scale_options_default();
    so.source = MD_SCALE_SOURCE_ANCHORS;
    so.anchors = &set;
    const double raw[2] = {2.0, 2.01};
    double filtered = 0;
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < 12; i++)
            d.data[i] = 1.0f + 0.25f * (float)i;
        a[0].depth = (float)(raw[t] * d.data[0]);
        a[1].depth = (float)(raw[t] * d.data[6]);
        a[2].depth = (float)(raw[t] * d.data[11]);
        md_scale_record rec;
        CHECK_OK(md_scale_depth(NULL, NULL, &d, &so, &rec, &err), &err);
        CHECK_OK(md_scale_filter_apply(f, t / 30.0, &d, &rec, &err), &err);
        CHECK(rec.filtered && !rec.filter_rejected);
        CHECK_NEAR(rec.raw_scale, raw[t], 1e-6);
        /* exact anchors: each frame's sd is the 1 % floor over 3 anchors, R;
         * first frame: the raw scale with P = R; second: the Kalman step with
         * P- = R + Q, Q = R alpha^2 / (1 - alpha), gain P- / (P- + R) */
        double alpha = 1 - exp(-(1 / 30.0) / 0.1), r = 0.01 * 0.01 / 3;
        CHECK_NEAR(rec.log_scale_sd, sqrt(r), 1e-12);
        double pm = r + r * alpha * alpha / (1 - alpha), k = pm / (pm + r);
        filtered = t == 0 ? log(raw[0]) : log(raw[0]) + k * (log(raw[1]) - log(raw[0]));
        CHECK_NEAR(log(rec.scale), filtered, 1e-6);
        CHECK_NEAR(d.data[5], exp(filtered) * (1.0 + 0.25 * 5), 1e-5);
    }
    /* a scale-shift record is refused */
    md_scale_record rec = {0};
    rec.source = MD_SCALE_SOURCE_ANCHORS;
    rec.anchor_fit = MD_ANCHOR_FIT_SCALE_SHIFT;
    rec.scale = 1.0;
    CHECK(md_scale_filter_apply(f, 1.0, &d, &rec, &err) == MD_ERR_UNSUPPORTED);
    md_depth_free(&d);
    md_scale_filter_free(f);
}

int main(void)
{
    RUN_TEST(test_defaults_and_errors);
    RUN_TEST(test_exponential_equivalence);
    RUN_TEST(test_precision_weighting);
    RUN_TEST(test_outliers_and_restart);
    RUN_TEST(test_level_input);
    RUN_TEST(test_log_level);
    RUN_TEST(test_apply);
    return check_finish();
}
