/* The evaluation module (src/eval): percentiles and trimming, the prediction
 * cache, the scales CSV, per-pair scale and metrics, the gap closed, the
 * random split, and the evaluator on real pairs against a brute-force
 * recomputation. Expected values are worked out by hand in the comments. */
#include "check.h"
#include "eval/fit.h"

#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static void path_in_tmp(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_fnv(void)
{
    /* FNV-1a 64 published test vectors */
    CHECK(md_fnv1a64(MD_FNV1A64_INIT, "", 0) == 0xcbf29ce484222325ULL);
    CHECK(md_fnv1a64(MD_FNV1A64_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);
    CHECK(md_fnv1a64(MD_FNV1A64_INIT, "foobar", 6) == 0x85944171f73967e8ULL);
    /* chaining = hashing the concatenation */
    CHECK(md_fnv1a64(md_fnv1a64(MD_FNV1A64_INIT, "foo", 3), "bar", 3) == 0x85944171f73967e8ULL);
}

static void test_percentiles(void)
{
    md_error err = {0};
    const double v[5] = {5, 1, 4, 2, 3};
    double p;
    /* sorted 1 2 3 4 5, rank = pct/100 * 4 */
    CHECK_OK(md_percentile(v, 5, 50, &p, &err), &err);
    CHECK_NEAR(p, 3.0, 1e-12);
    CHECK_OK(md_percentile(v, 5, 10, &p, &err), &err); /* rank 0.4: 1 + 0.4 */
    CHECK_NEAR(p, 1.4, 1e-12);
    CHECK_OK(md_percentile(v, 5, 95, &p, &err), &err); /* rank 3.8: 4 + 0.8 */
    CHECK_NEAR(p, 4.8, 1e-12);
    CHECK_OK(md_percentile(v, 5, 0, &p, &err), &err);
    CHECK_NEAR(p, 1.0, 0);
    CHECK_OK(md_percentile(v, 5, 100, &p, &err), &err);
    CHECK_NEAR(p, 5.0, 0);
    CHECK(md_percentile(v, 0, 50, &p, &err) == MD_ERR_DATA);
    CHECK(md_percentile(v, 5, 101, &p, &err) == MD_ERR_ARG);

    /* trim 10,90: keep values in [1.4, 4.6] -> 4, 2, 3 (v[2], v[3], v[4]) */
    unsigned char keep[5];
    size_t k = 0;
    CHECK_OK(md_percentile_keep(v, 5, 10, 90, keep, &k, &err), &err);
    CHECK(k == 3);
    CHECK(keep[0] == 0 && keep[1] == 0 && keep[2] == 1 && keep[3] == 1 && keep[4] == 1);
    CHECK_OK(md_percentile_keep(v, 5, 0, 100, keep, &k, &err), &err);
    CHECK(k == 5);
    CHECK(md_percentile_keep(v, 5, 60, 40, keep, &k, &err) == MD_ERR_ARG);
}

static void test_cache_key(void)
{
    md_error err = {0};
    char model[512], rgb[512], rgb2[512];
    path_in_tmp(model, sizeof model, "model.onnx");
    path_in_tmp(rgb, sizeof rgb, "a.png");
    path_in_tmp(rgb2, sizeof rgb2, "b.png");
    write_text(model, "model bytes");
    write_text(rgb, "image one");
    write_text(rgb2, "image one");
    /* pin both mtimes so only what the test changes differs */
    struct timespec t[2] = {{1000000000, 0}, {1000000000, 0}};
    utimensat(AT_FDCWD, rgb, t, 0);
    utimensat(AT_FDCWD, rgb2, t, 0);
    char k1[17], k2[17], k3[17], k4[17], k5[17];
    CHECK_OK(md_cache_key(model, rgb, k1, &err), &err);
    CHECK_OK(md_cache_key(model, rgb, k2, &err), &err);
    CHECK(strlen(k1) == 16 && strcmp(k1, k2) == 0); /* stable */
    CHECK_OK(md_cache_key(model, rgb2, k3, &err), &err);
    CHECK(strcmp(k1, k3) != 0); /* same content and time, other path */
    write_text(rgb, "image one, edited");
    utimensat(AT_FDCWD, rgb, t, 0);
    CHECK_OK(md_cache_key(model, rgb, k4, &err), &err);
    CHECK(strcmp(k1, k4) != 0); /* size changed */
    struct timespec t2[2] = {{1000000000, 0}, {1000000001, 0}};
    utimensat(AT_FDCWD, rgb, t2, 0);
    CHECK_OK(md_cache_key(model, rgb, k5, &err), &err);
    CHECK(strcmp(k4, k5) != 0); /* only the mtime changed */
    write_text(model, "model bytes, retrained");
    CHECK_OK(md_cache_key(model, rgb, k2, &err), &err);
    CHECK(strcmp(k5, k2) != 0); /* the model changed */
    char missing[512];
    path_in_tmp(missing, sizeof missing, "missing.png");
    CHECK(md_cache_key(model, missing, k1, &err) == MD_ERR_IO);
    CHECK(strstr(err.message, "missing.png") != NULL);
    /* a variant (another precision of the same file) has its own stable key;
     * none is the plain key. An earlier version hashed "model|bf16" as a
     * file path, so every bf16 evaluation with a cache failed. */
    char v1[17], v2[17], v0[17];
    CHECK_OK(md_cache_key(model, rgb, k1, &err), &err);
    CHECK_OK(md_cache_key_variant(model, "bf16", rgb, v1, &err), &err);
    CHECK_OK(md_cache_key_variant(model, "bf16", rgb, v2, &err), &err);
    CHECK(strcmp(v1, v2) == 0 && strcmp(v1, k1) != 0);
    CHECK_OK(md_cache_key_variant(model, NULL, rgb, v0, &err), &err);
    CHECK(strcmp(v0, k1) == 0);
    CHECK_OK(md_cache_key_variant(model, "", rgb, v0, &err), &err);
    CHECK(strcmp(v0, k1) == 0);
}

static void test_cache_store(void)
{
    md_error err = {0};
    md_depth d = {0}, back = {0};
    char path[512];
    path_in_tmp(path, sizeof path, "cache.npy");
    CHECK_OK(md_depth_alloc(&d, 3, 1, &err), &err);
    d.data[0] = 1.5f;
    d.data[1] = 2.0f; /* masked out: must come back invalid */
    d.data[2] = 0.25f;
    uint8_t mask[3] = {1, 0, 1};
    d.mask = mask;
    md_depth miss = {0};
    CHECK(md_cache_load(path, &miss, &err) == MD_ERR_IO);
    CHECK_OK(md_cache_store(path, &d, &err), &err);
    d.mask = NULL;
    CHECK_OK(md_cache_load(path, &back, &err), &err);
    CHECK(back.width == 3 && back.height == 1);
    if (back.data) {
        CHECK(back.data[0] == 1.5f && back.data[1] == 0.0f && back.data[2] == 0.25f);
    }
    md_depth_free(&d);
    md_depth_free(&back);
}

static const char *header =
    "rgb,depth,divisor,scale,log_scale,w1_before,w1_after,abs_rel_before,rmse_before,"
    "delta1_before,abs_rel_after,rmse_after,delta1_after";

static void test_csv_round_trip(void)
{
    md_error err = {0};
    char path[512], path2[512], buf[2048];
    path_in_tmp(path, sizeof path, "hand.csv");
    path_in_tmp(path2, sizeof path2, "again.csv");
    /* ln 2 = 0.693147181, ln 0.5 = -0.693147181 */
    snprintf(buf, sizeof buf,
             "%s\r\n"
             "rgb/a.jpg,depth/a.png,1000,2,0.693147181,0.5,0.1,0.3,1.2,0.4,0.1,0.5,0.9\r\n"
             "\n"
             "/abs/b.jpg,/abs/b.png,sun,0.5,-0.693147181,1,0.2,0.5,2,0.1,0.2,1,0.6\n",
             header);
    write_text(path, buf);
    md_scales_table t = {0};
    CHECK_OK(md_scales_read(path, &t, &err), &err);
    CHECK(t.count == 2);
    if (t.count == 2) {
        char want[512];
        snprintf(want, sizeof want, "%s/rgb/a.jpg", tmpdir); /* relative to the CSV */
        CHECK(strcmp(t.items[0].rgb, want) == 0);
        CHECK(strcmp(t.items[1].rgb, "/abs/b.jpg") == 0);
        CHECK(strcmp(t.items[1].depth, "/abs/b.png") == 0);
        CHECK_NEAR(t.items[0].divisor, 1000, 0);
        CHECK(t.items[0].encoding == MD_DEPTH_PLAIN);
        CHECK(t.items[1].encoding == MD_DEPTH_SUN_ROTATED);
        CHECK_NEAR(t.items[0].scale, 2, 0);
        CHECK_NEAR(t.items[1].log_scale, -0.693147181, 1e-12);
        CHECK_NEAR(t.items[0].before.rmse, 1.2, 1e-12);
        CHECK_NEAR(t.items[1].after.delta1, 0.6, 1e-12);
        CHECK(!t.items[0].has_adaptive);
    }
    /* with the adaptive columns written and read back */
    for (size_t i = 0; i < t.count; i++) {
        t.items[i].has_adaptive = 1;
        t.items[i].pred_log_scale = 0.25 * (double)(i + 1);
        t.items[i].adaptive.abs_rel = 0.125;
    }
    CHECK_OK(md_scales_write(path2, &t, &err), &err);
    FILE *f = fopen(path2, "rb");
    char line[1024] = "";
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    char want_header[1024];
    snprintf(want_header, sizeof want_header,
             "%s,pred_log_scale,abs_rel_adaptive,rmse_adaptive,delta1_adaptive\n", header);
    CHECK(strcmp(line, want_header) == 0);
    md_scales_table u = {0};
    CHECK_OK(md_scales_read(path2, &u, &err), &err);
    CHECK(u.count == 2);
    if (u.count == 2 && t.count == 2) {
        CHECK(strcmp(u.items[0].rgb, t.items[0].rgb) == 0);
        CHECK(u.items[1].encoding == MD_DEPTH_SUN_ROTATED);
        CHECK(u.items[0].has_adaptive && u.items[1].has_adaptive);
        CHECK_NEAR(u.items[1].pred_log_scale, 0.5, 0);
        CHECK_NEAR(u.items[0].adaptive.abs_rel, 0.125, 0);
        CHECK_NEAR(u.items[0].w1_before, 0.5, 1e-12);
    }
    /* the training-list hash follows the log scales */
    uint64_t h1 = md_scales_hash(&u);
    if (u.count)
        u.items[0].log_scale += 0.01;
    CHECK(md_scales_hash(&u) != h1);
    /* a path with a comma cannot be written */
    if (t.count) {
        free(t.items[0].rgb);
        t.items[0].rgb = strdup("a,b.jpg");
        CHECK(md_scales_write(path2, &t, &err) == MD_ERR_DATA);
        CHECK(strstr(err.message, "a,b.jpg") != NULL);
    }
    md_scales_free(&t);
    md_scales_free(&u);
}

/* Each bad file must fail with "name:line:" and leave the table untouched. */
static void expect_bad(const char *name, const char *text, const char *where, const char *what)
{
    char path[512];
    path_in_tmp(path, sizeof path, name);
    write_text(path, text);
    md_scales_table t = {0};
    md_error err = {0};
    CHECK(md_scales_read(path, &t, &err) == MD_ERR_FORMAT);
    CHECK_MSG(strstr(err.message, where) != NULL, "'%s' lacks '%s'", err.message, where);
    CHECK_MSG(strstr(err.message, what) != NULL, "'%s' lacks '%s'", err.message, what);
    CHECK(t.count == 0);
    md_scales_free(&t);
}

static void test_csv_errors(void)
{
    char buf[2048];
    const char *good = "a.jpg,a.png,1000,1,0,0,0,0,0,0,0,0,0\n";
    snprintf(buf, sizeof buf, "%s\n%s%s", header, good,
             "b.jpg,b.png,1000,1,0,0,0,0,0,0,0,0\n"); /* 12 fields */
    expect_bad("fields.csv", buf, "fields.csv:3:", "12 fields");
    snprintf(buf, sizeof buf, "%s\n%s", header, "b.jpg,b.png,1000,abc,0,0,0,0,0,0,0,0,0\n");
    expect_bad("number.csv", buf, "number.csv:2:", "scale 'abc'");
    snprintf(buf, sizeof buf, "%s\n%s%s%s", header, good, good,
             "b.jpg,b.png,1000,2,0,0,0,0,0,0,0,0,0\n"); /* ln 2 != 0 */
    expect_bad("logscale.csv", buf, "logscale.csv:4:", "log_scale");
    snprintf(buf, sizeof buf, "%s\n%s", header, "b.jpg,b.png,zero,1,0,0,0,0,0,0,0,0,0\n");
    expect_bad("divisor.csv", buf, "divisor.csv:2:", "divisor");
    snprintf(buf, sizeof buf, "%s\n%s", header, "b.jpg,b.png,1000,-1,0,0,0,0,0,0,0,0,0\n");
    expect_bad("negative.csv", buf, "negative.csv:2:", "not positive");
    expect_bad("header.csv", "rgb,depth,scale\na,b,1\n", "header.csv:1:", "header");
    expect_bad("empty.csv", "", "empty.csv:1:", "empty");
}

static md_depth make_depth(int w, int h, const float *v)
{
    md_depth d = {0};
    md_error err = {0};
    if (md_depth_alloc(&d, w, h, &err) == MD_OK)
        memcpy(d.data, v, (size_t)w * (size_t)h * sizeof *v);
    return d;
}

static void test_fit_pair(void)
{
    md_error err = {0};
    const float p[4] = {1, 2, 3, 4}, g[4] = {2, 4, 6, 8};
    md_depth pred = make_depth(2, 2, p), gt = make_depth(2, 2, g);
    md_scales_row r;
    memset(&r, 0, sizeof r);
    CHECK_OK(md_scales_fit(&pred, &gt, MD_SCALE_W1, 0.1, 3, &r, &err), &err);
    /* gt = 2 pred exactly: s* = 2, W1 before = mean(1,2,3,4) = 2.5, after 0;
     * AbsRel before = mean(|p-g|/g) = 0.5, RMSE = sqrt((1+4+9+16)/4) = sqrt(7.5),
     * every ratio is 2 > 1.25 so delta1 = 0; after: exact. */
    CHECK_NEAR(r.scale, 2.0, 1e-9);
    CHECK_NEAR(r.log_scale, 0.69314718056, 1e-9);
    CHECK_NEAR(r.w1_before, 2.5, 1e-9);
    CHECK_NEAR(r.w1_after, 0.0, 1e-9);
    CHECK_NEAR(r.before.abs_rel, 0.5, 1e-9);
    CHECK_NEAR(r.before.rmse, sqrt(7.5), 1e-6);
    CHECK_NEAR(r.before.delta1, 0.0, 0);
    CHECK_NEAR(r.after.abs_rel, 0.0, 1e-7);
    CHECK_NEAR(r.after.delta1, 1.0, 0);
    /* clamped to the range: s* = 1.5 at most; AbsRel = mean(|1.5p-2p|/2p) = 0.25 */
    CHECK_OK(md_scales_fit(&pred, &gt, MD_SCALE_W1, 0.1, 1.5, &r, &err), &err);
    CHECK_NEAR(r.scale, 1.5, 1e-12);
    CHECK_NEAR(r.after.abs_rel, 0.25, 1e-7);
    /* scaled metrics at s = 4: |4p - 2p|/2p = 1 */
    md_metrics m;
    CHECK_OK(md_fit_scaled_metrics(&pred, &gt, 4.0, &m, &err), &err);
    CHECK_NEAR(m.abs_rel, 1.0, 1e-7);
    /* size mismatch and no valid pixel are data errors */
    md_depth small = make_depth(1, 1, p);
    CHECK(md_scales_fit(&small, &gt, MD_SCALE_W1, 0.1, 2, &r, &err) == MD_ERR_DATA);
    CHECK(strstr(err.message, "size") != NULL);
    const float z[4] = {0, 0, 0, 0};
    md_depth zeros = make_depth(2, 2, z);
    CHECK(md_scales_fit(&pred, &zeros, MD_SCALE_W1, 0.1, 2, &r, &err) == MD_ERR_DATA);
    md_depth_free(&pred);
    md_depth_free(&gt);
    md_depth_free(&small);
    md_depth_free(&zeros);
}


static void test_gap_closed(void)
{
    /* unscaled 0.2, oracle 0.1: a method at 0.15 closes half the gap */
    CHECK_NEAR(md_gap_closed(0.2, 0.15, 0.1), 0.5, 1e-12);
    CHECK_NEAR(md_gap_closed(0.2, 0.1, 0.1), 1.0, 1e-12);
    CHECK_NEAR(md_gap_closed(0.2, 0.2, 0.1), 0.0, 0);
    CHECK_NEAR(md_gap_closed(0.2, 0.3, 0.1), -1.0, 1e-12); /* worse than unscaled */
    /* the oracle gains nothing: undefined, whatever the method */
    CHECK(isnan(md_gap_closed(0.2, 0.2, 0.2)));
    CHECK(isnan(md_gap_closed(0.2, 0.1, 0.2)));
    CHECK(isnan(md_gap_closed(NAN, 0.1, 0.2)));
}

static void test_split_random(void)
{
    md_error err = {0};
    md_pair_list all = {0}, tr = {0}, te = {0}, tr2 = {0}, te2 = {0};
    char rgb[32], dep[32];
    for (int i = 0; i < 8; i++) {
        snprintf(rgb, sizeof rgb, "r%d.png", i);
        snprintf(dep, sizeof dep, "d%d.png", i);
        md_pair p = {rgb, dep, 1000, MD_DEPTH_PLAIN, 0, {0, 0, 0, 0}};
        CHECK_OK(md_pair_list_append(&all, &p, &err), &err);
    }
    CHECK_OK(md_eval_split_random(&all, 0.25, 7, &tr, &te, &err), &err);
    CHECK(tr.count == 6 && te.count == 2); /* round(0.25 x 8) = 2 */
    /* every pair exactly once, train in the original order */
    int seen[8] = {0};
    for (size_t i = 0; i < tr.count; i++)
        seen[tr.items[i].rgb_path[1] - '0']++;
    for (size_t i = 0; i < te.count; i++)
        seen[te.items[i].rgb_path[1] - '0']++;
    for (int i = 0; i < 8; i++)
        CHECK(seen[i] == 1);
    for (size_t i = 1; i < tr.count; i++)
        CHECK(strcmp(tr.items[i - 1].rgb_path, tr.items[i].rgb_path) < 0);
    /* the same seed gives the same split */
    CHECK_OK(md_eval_split_random(&all, 0.25, 7, &tr2, &te2, &err), &err);
    CHECK(te2.count == 2 && strcmp(te.items[0].rgb_path, te2.items[0].rgb_path) == 0 &&
          strcmp(te.items[1].rgb_path, te2.items[1].rgb_path) == 0);
    CHECK(md_eval_split_random(&all, 1.0, 7, &tr2, &te2, &err) == MD_ERR_ARG);
    md_pair_list_free(&all);
    md_pair_list_free(&tr);
    md_pair_list_free(&te);
    md_pair_list_free(&tr2);
    md_pair_list_free(&te2);
}

/* Eigen AbsRel of pred against gt recomputed pixel by pixel: crop rows
 * [45, 471) and columns [41, 601) of 480x640, gt in (1e-3, 10), pred valid
 * (> 0, finite), pred clipped to [1e-3, 10]. */
static double brute_eigen_abs_rel(const md_depth *pred, const md_depth *gt, size_t *n_out)
{
    double sum = 0;
    size_t n = 0;
    for (int y = 45; y < 471; y++)
        for (int x = 41; x < 601; x++) {
            size_t i = (size_t)y * 640 + (size_t)x;
            float g = gt->data[i], p = pred->data[i];
            if (!(g > 1e-3f && g < 10.0f) || !(p > 0 && isfinite(p)) ||
                (pred->mask && !pred->mask[i]))
                continue;
            p = p < 1e-3f ? 1e-3f : (p > 10.0f ? 10.0f : p);
            sum += fabs((double)p - g) / g;
            n++;
        }
    *n_out = n;
    return sum / (double)n;
}

/* The evaluator on the three NYU demo pairs with FastDepth: identical numbers
 * with and without the cache (eigen protocol, where FastDepth's unseen border
 * once counted as 1e-3 m after a cache round trip), and the unscaled and
 * constant rows against a brute-force recomputation. */
static void test_evaluator_cache(void)
{
    char model[1024], probe[1024];
    snprintf(model, sizeof model, "%s/models/fastdepth/fastdepth_7.onnx", MD_SHARED_DIR);
    snprintf(probe, sizeof probe, "%s/data/nyu_demo_metric3d/rgb/rgb_00000.jpg", MD_SHARED_DIR);
    if (access(model, R_OK) != 0 || access(probe, R_OK) != 0) {
        printf("  ../shared absent: skipped\n");
        return;
    }
    md_error err = {0};
    md_pair_list train = {0}, test = {0};
    const char *ids[3] = {"00000", "00050", "00100"};
    for (int i = 0; i < 3; i++) {
        char rgb[1024], dep[1024];
        snprintf(rgb, sizeof rgb, "%s/data/nyu_demo_metric3d/rgb/rgb_%s.jpg", MD_SHARED_DIR, ids[i]);
        snprintf(dep, sizeof dep, "%s/data/nyu_demo_metric3d/depth/sync_depth_%s.png",
                 MD_SHARED_DIR, ids[i]);
        md_pair p = {rgb, dep, 1000, MD_DEPTH_PLAIN, 0, {0, 0, 0, 0}};
        CHECK_OK(md_pair_list_append(i < 2 ? &train : &test, &p, &err), &err);
    }
    char cache[512];
    path_in_tmp(cache, sizeof cache, "cache");
    mkdir(cache, 0777);
    md_eval_set runs[3] = {{0}, {0}, {0}};
    for (int r = 0; r < 3; r++) { /* no cache, cache filled, cache read */
        md_eval_options o = md_eval_options_default();
        o.model_path = model;
        o.protocol = MD_PROTOCOL_EIGEN;
        o.cache_dir = r ? cache : NULL;
        md_evaluator *ev = NULL;
        CHECK_OK(md_evaluator_create(&o, &ev, &err), &err);
        CHECK_OK(md_eval_run(ev, &train, &test, NULL, &runs[r], &err), &err);
        md_evaluator_free(ev);
        CHECK(runs[r].count == 3 && runs[r].failed == 0);
    }
    for (size_t i = 0; i < 3 && runs[2].count == 3; i++) {
        CHECK(!runs[1].items[i].cached && runs[2].items[i].cached);
        for (int r = 1; r < 3; r++) {
            const md_eval_item *a = &runs[0].items[i], *b = &runs[r].items[i];
            CHECK(memcmp(&a->unscaled, &b->unscaled, sizeof a->unscaled) == 0);
            CHECK(memcmp(&a->oracle, &b->oracle, sizeof a->oracle) == 0);
            CHECK(memcmp(&a->constant, &b->constant, sizeof a->constant) == 0);
            CHECK(a->oracle_scale == b->oracle_scale);
        }
    }
    CHECK(runs[2].constant_scale == runs[0].constant_scale);
    /* brute force on the cached maps: unscaled and constant AbsRel */
    for (size_t i = 0; i < 3 && runs[2].count == 3; i++) {
        const md_eval_item *it = &runs[2].items[i];
        char key[17], path[1024];
        CHECK_OK(md_cache_key(model, it->rgb, key, &err), &err);
        snprintf(path, sizeof path, "%s/%s.npy", cache, key);
        md_depth pred = {0}, gt = {0};
        CHECK_OK(md_cache_load(path, &pred, &err), &err);
        CHECK_OK(md_depth_load(it->depth, NULL, &gt, &err), &err);
        size_t n = 0;
        double want = brute_eigen_abs_rel(&pred, &gt, &n);
        CHECK_NEAR(it->unscaled.abs_rel, want, 1e-9);
        CHECK(it->unscaled.n_valid == n);
        /* FastDepth sees only its centre crop, which ends above the Eigen
         * crop's last 12 rows: those (about 6,700 pixels with ground truth)
         * must be left out, not counted as 1e-3 m */
        size_t n_gt = 0;
        for (int y = 45; y < 471; y++)
            for (int x = 41; x < 601; x++) {
                float g = gt.data[(size_t)y * 640 + (size_t)x];
                n_gt += g > 1e-3f && g < 10.0f;
            }
        CHECK_MSG(n + 5000 < n_gt, "%zu evaluated of %zu with ground truth", n, n_gt);
        for (size_t k = 0; k < (size_t)pred.width * pred.height; k++)
            pred.data[k] *= (float)runs[2].constant_scale;
        want = brute_eigen_abs_rel(&pred, &gt, &n);
        CHECK_NEAR(it->constant.abs_rel, want, 1e-9);
        md_depth_free(&pred);
        md_depth_free(&gt);
    }
    for (int r = 0; r < 3; r++)
        md_eval_set_free(&runs[r]);
    md_pair_list_free(&train);
    md_pair_list_free(&test);
    /* empty the cache folder */
    for (int i = 0; i < 3; i++) {
        char rgb[1024], key[17], path[1024];
        snprintf(rgb, sizeof rgb, "%s/data/nyu_demo_metric3d/rgb/rgb_%s.jpg", MD_SHARED_DIR, ids[i]);
        if (md_cache_key(model, rgb, key, NULL) == MD_OK) {
            snprintf(path, sizeof path, "%s/%s.npy", cache, key);
            unlink(path);
        }
    }
    rmdir(cache);
}

/* A training set for the CNNs (images only, no network): an image the library
 * cannot read (an ASCII PPM is refused as unsupported) is reported through
 * the progress callback and skipped like a corrupt file; the rows around it
 * are kept in order. */
typedef struct {
    int failed;
    char message[sizeof ((md_error *)0)->message];
} progress_log;

static void log_progress(void *user, const md_eval_progress *p)
{
    progress_log *l = user;
    if (p->error) {
        l->failed++;
        snprintf(l->message, sizeof l->message, "%s", p->error->message);
    }
}

static void test_training_set_skips_unreadable(void)
{
    char a[512], b[512], c[512];
    path_in_tmp(a, sizeof a, "ts_a.ppm");
    path_in_tmp(b, sizeof b, "ts_b.ppm");
    path_in_tmp(c, sizeof c, "ts_c.ppm");
    FILE *f = fopen(a, "wb");
    if (f) {
        fputs("P6\n2 2\n255\n", f);
        for (int i = 0; i < 12; i++)
            fputc(40 * (i % 4), f);
        fclose(f);
    }
    f = fopen(b, "wb");
    if (f) {
        fputs("P6\n2 1\n255\n", f);
        for (int i = 0; i < 6; i++)
            fputc(200, f);
        fclose(f);
    }
    write_text(c, "P3\n1 1\n255\n0 0 0\n");
    md_error err = {0};
    md_scales_table t = {0};
    const char *rgb[3] = {a, c, b};
    for (int i = 0; i < 3; i++) {
        md_scales_row row = {0};
        row.rgb = (char *)rgb[i];
        row.depth = (char *)rgb[i];
        row.divisor = 1000;
        row.log_scale = 0.1 * (i + 1);
        row.scale = exp(row.log_scale);
        CHECK_OK(md_scales_append(&t, &row, &err), &err);
    }
    progress_log log = {0};
    md_eval_callbacks cb = {log_progress, NULL, &log};
    md_training_set set;
    CHECK_OK(md_training_set_build(NULL, &t, MD_SCALE_ARCH_COMPACT, &cb, &set, &err), &err);
    CHECK(set.count == 2 && set.skipped == 1 && set.used.count == 2);
    CHECK(log.failed == 1 && strstr(log.message, "ts_c.ppm") && strstr(log.message, "ASCII"));
    if (set.count == 2) {
        CHECK_NEAR(set.samples[0].log_scale, 0.1, 1e-12);
        CHECK_NEAR(set.samples[1].log_scale, 0.3, 1e-12);
        CHECK(set.samples[1].image && set.samples[1].image->width == 2 &&
              set.samples[1].image->height == 1);
    }
    md_training_set_free(&set);
    md_scales_free(&t);
    unlink(a);
    unlink(b);
    unlink(c);
}

static void remove_tmp(void)
{
    const char *names[] = {"model.onnx", "a.png",     "b.png",       "cache.npy",  "hand.csv",
                           "again.csv",  "fields.csv", "number.csv", "logscale.csv",
                           "divisor.csv", "negative.csv", "header.csv", "empty.csv"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_in_tmp(p, sizeof p, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/md_test_eval_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN_TEST(test_fnv);
    RUN_TEST(test_percentiles);
    RUN_TEST(test_cache_key);
    RUN_TEST(test_cache_store);
    RUN_TEST(test_csv_round_trip);
    RUN_TEST(test_csv_errors);
    RUN_TEST(test_fit_pair);
    RUN_TEST(test_gap_closed);
    RUN_TEST(test_split_random);
    RUN_TEST(test_evaluator_cache);
    RUN_TEST(test_training_set_skips_unreadable);
    remove_tmp();
    return check_finish();
}
