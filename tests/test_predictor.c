/* The encoder scale predictor (src/scale/predictor.c, scale_model.c) and the
 * scale curve (scale_curve.c): the ridge fit against a brute-force primal
 * solve, the estimate of a hand-made model against values worked out by hand,
 * training on synthetic groups (a known relation is learnt; a far input gets
 * weight 0, i.e. exactly the base output), save/load round trips, refusals,
 * and the curve against md_metrics_compute. */
#include "check.h"
#include "formats/weights.h"
#include "scale/predictor.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[128];

static uint64_t rng_state = 12345;
static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double gauss(void)
{
    double u = uniform(), v = uniform();
    return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* Solves A x = b (n x n, Gaussian elimination with partial pivoting). */
static int solve(double *A, double *b, int n)
{
    for (int k = 0; k < n; k++) {
        int piv = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(A[i * n + k]) > fabs(A[piv * n + k]))
                piv = i;
        if (fabs(A[piv * n + k]) < 1e-300)
            return 0;
        for (int j = 0; j < n; j++) {
            double t = A[k * n + j];
            A[k * n + j] = A[piv * n + j];
            A[piv * n + j] = t;
        }
        double t = b[k];
        b[k] = b[piv];
        b[piv] = t;
        for (int i = k + 1; i < n; i++) {
            double f = A[i * n + k] / A[k * n + k];
            for (int j = k; j < n; j++)
                A[i * n + j] -= f * A[k * n + j];
            b[i] -= f * b[k];
        }
    }
    for (int k = n - 1; k >= 0; k--) {
        for (int j = k + 1; j < n; j++)
            b[k] -= A[k * n + j] * b[j];
        b[k] /= A[k * n + k];
    }
    return 1;
}

/* The dual ridge against the primal normal equations, both with the
 * unpenalised intercept: min sum (y - c - z.b)^2 + lambda |b|^2 on the
 * standardised features z, lambda = alpha p. */
static void test_ridge_vs_primal(void)
{
    enum { N = 9, P = 4 };
    float x[N][P];
    md_enc_sample s[N];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < P; j++)
            x[i][j] = (float)(3 * gauss() + j);
        s[i].features = x[i];
        s[i].log_scale = 0.3 * gauss();
        s[i].group = 0;
        s[i].curve = NULL;
    }
    double alphas[3] = {0.01, 1, 30};
    for (int a = 0; a < 3; a++) {
        double mu[P], sd[P], b[P], c;
        md_error err = {0};
        CHECK_OK(md_enc_fit_once(s, N, P, alphas[a], mu, sd, b, &c, &err), &err);
        /* the brute force: standardise by hand, centre, solve the primal */
        double z[N][P], zm[P] = {0}, ym = 0;
        for (int j = 0; j < P; j++) {
            double m = 0, v = 0;
            for (int i = 0; i < N; i++)
                m += x[i][j];
            m /= N;
            for (int i = 0; i < N; i++)
                v += (x[i][j] - m) * (x[i][j] - m);
            double sdj = sqrt(v / N);
            CHECK_NEAR(mu[j], m, 1e-9);
            CHECK_NEAR(sd[j], sdj, 1e-9);
            for (int i = 0; i < N; i++)
                z[i][j] = (x[i][j] - m) / sdj;
        }
        for (int i = 0; i < N; i++) {
            ym += s[i].log_scale / N;
            for (int j = 0; j < P; j++)
                zm[j] += z[i][j] / N;
        }
        double A[P * P] = {0}, r[P] = {0};
        for (int j = 0; j < P; j++) {
            for (int k = 0; k < P; k++)
                for (int i = 0; i < N; i++)
                    A[j * P + k] += (z[i][j] - zm[j]) * (z[i][k] - zm[k]);
            A[j * P + j] += alphas[a] * P;
            for (int i = 0; i < N; i++)
                r[j] += (z[i][j] - zm[j]) * (s[i].log_scale - ym);
        }
        CHECK(solve(A, r, P));
        double want_c = ym;
        for (int j = 0; j < P; j++) {
            CHECK_NEAR(b[j], r[j], 1e-9);
            want_c -= zm[j] * r[j];
        }
        CHECK_NEAR(c, want_c, 1e-9);
    }
}

/* A model written by hand (p = 2, five training points, two members), loaded
 * through the file format; its estimate worked out by hand:
 *   F = (0,0) (1,0) (0,1) (2,2) (4,0), mu = 0, sd = 1;
 *   members (b, c) = ((0.5, 0), 0.1) and ((0.25, 0.25), -0.1);
 *   d_in = 1, t0 = 1, t1 = 2, sigma_near 0.1, sigma_far 0.3.
 * x = (1,1): member predictions 0.6 and 0.4, mean 0.5, spread 0.1; distances
 * |x - F_i| / sqrt(2) = 1, 1/sqrt2, 1/sqrt2, 1, sqrt(10)/sqrt(2) = sqrt(5),
 * mean (2 + sqrt2 + sqrt5) / 5 = r; w = 2 - r; sigma = sqrt(0.1^2 + (0.1 +
 * 0.2 (1 - w))^2). */
static md_status write_hand_model(const char *path, uint64_t signature, md_error *err)
{
    static const float mu[2] = {0, 0}, sd[2] = {1, 1}, coef[4] = {0.5f, 0, 0.25f, 0.25f},
                       icpt[2] = {0.1f, -0.1f}, F[10] = {0, 0, 1, 0, 0, 1, 2, 2, 4, 0};
    md_tensor_out t[5] = {{"mu", MD_WDT_F32, 1, {2}, mu},
                          {"sd", MD_WDT_F32, 1, {2}, sd},
                          {"coef", MD_WDT_F32, 2, {2, 2}, coef},
                          {"intercept", MD_WDT_F32, 1, {2}, icpt},
                          {"train_features", MD_WDT_F16, 2, {5, 2}, F}};
    char sig[32];
    snprintf(sig, sizeof sig, "%016llx", (unsigned long long)signature);
    md_meta_entry meta[] = {{"format", "metricdepth-scale-encoder"},
                            {"arch", "encoder"},
                            {"base_model", "hand.onnx"},
                            {"feature_signature", sig},
                            {"n_features", "2"},
                            {"members", "2"},
                            {"alpha", "1"},
                            {"d_in", "1"},
                            {"gate_t0", "1"},
                            {"gate_t1", "2"},
                            {"sigma_near", "0.1"},
                            {"sigma_far", "0.3"},
                            {"knn", "5"}};
    return md_safetensors_write(path, t, 5, meta, sizeof meta / sizeof meta[0], err);
}

/* The k-NN with rows long enough for its early cut-off (1536 features, three
 * checked blocks), five rows that look nearest on their first values and are
 * not, and one that looks far and is not: the distance against a brute-force
 * scan. Integer and half values, exact in half precision, so the stored rows
 * are the ones written here. */
static void test_knn_brute_force(void)
{
    enum { P = 1536, N = 40 };
    static float F[N * P], mu[P], sd[P], coef[P], q[P];
    for (int j = 0; j < P; j++) {
        sd[j] = 1;
        q[j] = (float)(j % 3) * 0.5f; /* the query, standardised as is */
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < P; j++) {
            float v;
            if (i < 24)
                v = (float)(2 + i % 3); /* far */
            else if (i < 29)
                v = j < 600 ? q[j] : 4; /* near on their first values only */
            else if (i == 29)
                v = j < 600 ? q[j] + 0.5f * (j % 2) : q[j]; /* near, looks far at first */
            else if (i < 35)
                v = q[j] + ((j % (i - 27)) == 0 ? 0.5f : 0); /* near, at distinct distances */
            else
                v = q[j] + 1; /* between */
            F[(size_t)i * P + j] = v;
        }
    md_tensor_out t[5] = {{"mu", MD_WDT_F32, 1, {P}, mu},
                          {"sd", MD_WDT_F32, 1, {P}, sd},
                          {"coef", MD_WDT_F32, 2, {1, P}, coef},
                          {"intercept", MD_WDT_F32, 1, {1}, (const float[]){0}},
                          {"train_features", MD_WDT_F16, 2, {N, P}, F}};
    md_meta_entry meta[] = {{"format", "metricdepth-scale-encoder"}, {"arch", "encoder"},
                            {"base_model", "wide.onnx"},  {"feature_signature", "0000000000000007"},
                            {"n_features", "1536"},      {"members", "1"},
                            {"alpha", "1"},              {"d_in", "1"},
                            {"gate_t0", "1"},            {"gate_t1", "2"},
                            {"sigma_near", "0.1"},       {"sigma_far", "0.3"},
                            {"knn", "5"}};
    char path[256];
    snprintf(path, sizeof path, "%s/wide.safetensors", tmpdir);
    md_error err = {0};
    CHECK_OK(md_safetensors_write(path, t, 5, meta, sizeof meta / sizeof meta[0], &err), &err);
    md_scale_model *m = NULL;
    CHECK_OK(md_scale_model_load(path, &m, &err), &err);
    unlink(path);
    if (!m)
        return;
    /* brute force: every distance, sorted, the five smallest */
    double d[N];
    for (int i = 0; i < N; i++) {
        double sq = 0;
        for (int j = 0; j < P; j++) {
            double e = (double)q[j] - F[(size_t)i * P + j];
            sq += e * e;
        }
        d[i] = sqrt(sq / P);
    }
    for (int i = 1; i < N; i++)
        for (int k = i; k > 0 && d[k - 1] > d[k]; k--) {
            double tmp = d[k];
            d[k] = d[k - 1];
            d[k - 1] = tmp;
        }
    double want = (d[0] + d[1] + d[2] + d[3] + d[4]) / 5;
    md_features f = {P, q, 7};
    md_scale_estimate e;
    CHECK_OK(md_scale_model_estimate(m, NULL, &f, &e, &err), &err);
    CHECK_MSG(fabs(e.distance - want) <= 1e-12 * want, "k-NN distance %.17g, brute force %.17g",
              e.distance, want);
    md_scale_model_free(m);
}

static void test_hand_model(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/hand.safetensors", tmpdir);
    md_error err = {0};
    CHECK_OK(write_hand_model(path, 0xabcdefULL, &err), &err);
    md_scale_model *m = NULL;
    CHECK_OK(md_scale_model_load(path, &m, &err), &err);
    if (!m)
        return;
    CHECK(md_scale_model_arch(m) == MD_SCALE_ARCH_ENCODER);
    CHECK(strcmp(md_scale_model_base(m), "hand.onnx") == 0);
    float v[2] = {1, 1};
    md_features f = {2, v, 0xabcdefULL};
    md_scale_estimate e;
    CHECK_OK(md_scale_model_estimate(m, NULL, &f, &e, &err), &err);
    double r = (2 + sqrt(2.0) + sqrt(5.0)) / 5, w = 2 - r;
    double sig = sqrt(0.01 + pow(0.1 + 0.2 * (1 - w), 2));
    CHECK_NEAR(e.log_scale, 0.5, 1e-6);
    CHECK_NEAR(e.distance, r, 1e-6);
    CHECK_NEAR(e.weight, w, 1e-6);
    CHECK_NEAR(e.log_scale_sd, sig, 1e-6);
    /* x = (0.5, 0): distances 0.5, 0.5, sqrt(1.25), sqrt(6.25), 3.5 over
     * sqrt2; the prediction: members 0.1 + 0.25 = 0.35 and -0.1 + 0.125 = 0.025,
     * mean 0.1875 */
    v[0] = 0.5f;
    v[1] = 0;
    CHECK_OK(md_scale_model_estimate(m, NULL, &f, &e, &err), &err);
    r = (0.5 + 0.5 + sqrt(1.25) + 2.5 + 3.5) / (5 * sqrt(2.0));
    CHECK_NEAR(e.distance, r, 1e-6);
    CHECK_NEAR(e.weight, 2 - r, 1e-6);
    CHECK_NEAR(e.log_scale, 0.1875, 1e-6);
    CHECK(strstr(e.note, "weight") != NULL);
    /* far away: weight 0, and md_scale_depth keeps the base depth bit for bit */
    v[0] = v[1] = 10;
    CHECK_OK(md_scale_model_estimate(m, NULL, &f, &e, &err), &err);
    CHECK(e.weight == 0.0 && e.distance > 2);
    md_depth d = {0};
    CHECK_OK(md_depth_alloc(&d, 3, 1, &err), &err);
    d.data[0] = 1.5f;
    d.data[1] = 2.25f;
    d.data[2] = 0;
    md_scale_options so = md_scale_options_default();
    so.source = MD_SCALE_SOURCE_ADAPTIVE;
    so.scale_model = m;
    md_scale_record rec;
    CHECK_OK(md_scale_depth(NULL, &f, &d, &so, &rec, &err), &err);
    CHECK(d.data[0] == 1.5f && d.data[1] == 2.25f && rec.scale == 1.0 && !rec.applied);
    CHECK(rec.source == MD_SCALE_SOURCE_ADAPTIVE && rec.confidence == 0.0);
    /* ungated: the prediction exp(mean) is applied whatever the distance;
     * members at (10,10): 0.1 + 5 and -0.1 + 5, mean 5: clamp-free e^5 */
    so.ungated = 1;
    CHECK_OK(md_scale_depth(NULL, &f, &d, &so, &rec, &err), &err);
    CHECK_NEAR(rec.scale, exp(5.0), 1e-3);
    CHECK_NEAR(d.data[0], 1.5 * exp(5.0), 1e-2);
    md_depth_free(&d);
    /* features of another network: refused by adaptive, ignored by auto */
    f.signature = 0x1234;
    CHECK(md_scale_model_estimate(m, NULL, &f, &e, &err) == MD_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, "another network") != NULL);
    CHECK(md_scale_model_estimate(m, NULL, NULL, &e, NULL) == MD_ERR_UNSUPPORTED);
    CHECK_OK(md_depth_alloc(&d, 2, 1, &err), &err);
    d.data[0] = d.data[1] = 2;
    so.ungated = 0;
    so.source = MD_SCALE_SOURCE_AUTO;
    so.base_model_name = "hand.onnx";
    CHECK_OK(md_scale_depth(NULL, &f, &d, &so, &rec, &err), &err);
    CHECK(rec.source == MD_SCALE_SOURCE_NONE && d.data[0] == 2.0f);
    CHECK(strstr(rec.note, "not applied") != NULL);
    so.source = MD_SCALE_SOURCE_ADAPTIVE;
    CHECK(md_scale_depth(NULL, &f, &d, &so, &rec, &err) == MD_ERR_UNSUPPORTED);
    md_depth_free(&d);
    md_scale_model_free(m);

    /* bad files: a gate with t1 < t0, a missing tensor */
    md_tensor_out one = {"mu", MD_WDT_F32, 1, {2}, (const float[]){0, 0}};
    md_meta_entry meta[] = {{"format", "metricdepth-scale-encoder"}, {"arch", "encoder"}};
    CHECK_OK(md_safetensors_write(path, &one, 1, meta, 2, &err), &err);
    CHECK(md_scale_model_load(path, &m, &err) == MD_ERR_FORMAT && m == NULL);
    CHECK(strstr(err.message, path) != NULL);
    unlink(path);
}

/* Synthetic training data: three groups (sequences) whose ln s* follows a
 * known linear function of the features plus noise; a fourth region of
 * feature space is never seen. The model must learn the relation (held-out
 * points of the groups predicted closely) and give weight 0 far away. */
static void test_train_synthetic(void)
{
    enum { N = 60, P = 20 };
    static float x[N][P];
    md_features feats[N];
    md_scale_sample s[N];
    double truth[P];
    for (int j = 0; j < P; j++)
        truth[j] = 0.05 * gauss();
    const char *groups[3] = {"seq/a", "seq/b", "seq/c"};
    for (int i = 0; i < N; i++) {
        int g = i % 3;
        double y = 0.1 * g;
        for (int j = 0; j < P; j++) {
            x[i][j] = (float)(gauss() + 0.5 * g);
            y += truth[j] * x[i][j];
        }
        feats[i] = (md_features){P, x[i], 77};
        s[i] = (md_scale_sample){NULL, &feats[i], NULL, y + 0.01 * gauss(), groups[g]};
    }
    md_train_options o = md_train_defaults();
    CHECK(o.arch == MD_SCALE_ARCH_ENCODER && o.members == 10);
    o.alpha = 0.01;
    o.base_model = "synthetic.onnx";
    md_scale_model *m = NULL;
    md_train_log log = {0};
    md_error err = {0};
    CHECK_OK(md_scale_model_fit(s, N, &o, &m, &log, &err), &err);
    if (!m)
        return;
    CHECK(log.summary && strstr(log.summary, "gate: t0") != NULL);
    CHECK(log.n_train == N);
    /* new points drawn like group b: close predictions, weight 1 mostly */
    double err2 = 0, wsum = 0;
    for (int k = 0; k < 20; k++) {
        float q[P];
        double y = 0.1;
        for (int j = 0; j < P; j++) {
            q[j] = (float)(gauss() + 0.5);
            y += truth[j] * q[j];
        }
        md_features f = {P, q, 77};
        md_scale_estimate e;
        CHECK_OK(md_scale_model_estimate(m, NULL, &f, &e, &err), &err);
        err2 += (e.log_scale - y) * (e.log_scale - y);
        wsum += e.weight;
    }
    CHECK_MSG(sqrt(err2 / 20) < 0.05, "RMS error of ln s %.4f", sqrt(err2 / 20));
    CHECK_MSG(wsum / 20 > 0.5, "mean weight %.2f in distribution", wsum / 20);
    /* far from every group: weight 0 */
    float far[P];
    for (int j = 0; j < P; j++)
        far[j] = 8.0f;
    md_features ff = {P, far, 77};
    md_scale_estimate e;
    CHECK_OK(md_scale_model_estimate(m, NULL, &ff, &e, &err), &err);
    CHECK_MSG(e.weight == 0.0, "weight %.3f at distance %.2f", e.weight, e.distance);
    /* save, load: the same estimates to the last bit (the training features,
     * stored in half precision, are rounded so when trained) */
    char path[256];
    snprintf(path, sizeof path, "%s/synthetic.safetensors", tmpdir);
    CHECK_OK(md_scale_model_save(m, path, &err), &err);
    md_scale_model *back = NULL;
    CHECK_OK(md_scale_model_load(path, &back, &err), &err);
    if (back) {
        md_features f = {P, x[0], 77};
        md_scale_estimate a, b;
        CHECK_OK(md_scale_model_estimate(m, NULL, &f, &a, &err), &err);
        CHECK_OK(md_scale_model_estimate(back, NULL, &f, &b, &err), &err);
        CHECK(a.log_scale == b.log_scale && a.log_scale_sd == b.log_scale_sd);
        CHECK(a.distance == b.distance && a.weight == b.weight);
        CHECK(strcmp(md_scale_model_base(back), "synthetic.onnx") == 0);
        CHECK(strstr(md_scale_model_describe(back), "encoder") != NULL);
        md_scale_model_free(back);
    }
    unlink(path);
    /* the same seed: the same model */
    md_scale_model *again = NULL;
    CHECK_OK(md_scale_model_fit(s, N, &o, &again, NULL, &err), &err);
    if (again) {
        md_features f = {P, x[5], 77};
        md_scale_estimate a, b;
        CHECK_OK(md_scale_model_estimate(m, NULL, &f, &a, &err), &err);
        CHECK_OK(md_scale_model_estimate(again, NULL, &f, &b, &err), &err);
        CHECK(a.log_scale == b.log_scale && a.distance == b.distance);
        md_scale_model_free(again);
    }
    md_scale_model_free(m);
    md_train_log_free(&log);

    /* refusals: features of two networks, no features, a non-finite target */
    feats[3].signature = 78;
    CHECK(md_scale_model_fit(s, N, &o, &m, NULL, &err) == MD_ERR_DATA);
    feats[3].signature = 77;
    s[0].features = NULL;
    CHECK(md_scale_model_fit(s, N, &o, &m, NULL, &err) == MD_ERR_DATA);
    s[0].features = &feats[0];
    s[1].log_scale = NAN;
    CHECK(md_scale_model_fit(s, N, &o, &m, NULL, NULL) == MD_ERR_DATA);
}

/* The curve against md_metrics_compute on s x pred. */
static void test_scale_curve(void)
{
    enum { W = 160, H = 120 };
    md_depth pred = {0}, gt = {0}, sc = {0};
    md_error err = {0};
    CHECK_OK(md_depth_alloc(&pred, W, H, &err), &err);
    CHECK_OK(md_depth_alloc(&gt, W, H, &err), &err);
    CHECK_OK(md_depth_alloc(&sc, W, H, &err), &err);
    for (int i = 0; i < W * H; i++) {
        gt.data[i] = (float)(0.5 + 4 * uniform());
        pred.data[i] = (float)(gt.data[i] * exp(0.3 * gauss()) * 0.8);
        if (i % 17 == 0)
            gt.data[i] = 0; /* invalid */
    }
    md_scale_curve c;
    CHECK_OK(md_scale_curve_build(&pred, &gt, &c, &err), &err);
    CHECK(c.n == (size_t)(W * H - (W * H + 16) / 17));
    double scales[4] = {0.5, 1.0, 1.25, 1.7};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < W * H; i++)
            sc.data[i] = (float)(pred.data[i] * scales[k]);
        md_metrics exact, approx;
        CHECK_OK(md_metrics_compute(&sc, &gt, MD_PROTOCOL_SEED, &exact, &err), &err);
        md_scale_curve_eval(&c, scales[k], &approx);
        CHECK_NEAR(approx.rmse, exact.rmse, 1e-4 * exact.rmse);
        CHECK_NEAR(approx.abs_rel, exact.abs_rel, 2e-3);
        CHECK_NEAR(approx.delta1, exact.delta1, 2e-3);
        CHECK(approx.n_valid == exact.n_valid);
    }
    memset(gt.data, 0, sizeof(float) * W * H);
    CHECK(md_scale_curve_build(&pred, &gt, &c, &err) == MD_ERR_DATA);
    md_depth_free(&pred);
    md_depth_free(&gt);
    md_depth_free(&sc);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/md_test_predictor_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    RUN_TEST(test_ridge_vs_primal);
    RUN_TEST(test_knn_brute_force);
    RUN_TEST(test_hand_model);
    RUN_TEST(test_train_synthetic);
    RUN_TEST(test_scale_curve);
    rmdir(tmpdir);
    return check_finish();
}
