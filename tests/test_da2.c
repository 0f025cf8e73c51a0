/* Depth Anything V2 against the reference tensors in shared/reference/da2
 * (computed by the official PyTorch code): preprocessing, the four encoder
 * features, network-resolution depth and the final resized depth, for the
 * tiny model (from .safetensors and .pth) and the real ViT-S shape. */
#include "check.h"

#include "base/base.h"
#include "formats/weights.h"
#include "nets/backend.h"
#include "nets/da2_model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char ref_dir[1024];

static const char *ref(const char *model, const char *file)
{
    static char buf[1200];
    snprintf(buf, sizeof buf, "%s/%s/%s", ref_dir, model, file);
    return buf;
}

/* max|a-b| / max|b| */
static double rel_err(const float *a, const float *b, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= md))
            md = d; /* NaN propagates as a failure */
        if (fabs(b[i]) > mr)
            mr = fabs(b[i]);
    }
    return mr > 0 ? md / mr : md;
}

static void abs_err(const float *a, const float *b, size_t n, double *max_abs, double *mean_abs)
{
    double mx = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= mx))
            mx = d;
        sum += d;
    }
    *max_abs = mx;
    *mean_abs = n ? sum / n : 0;
}

typedef struct {
    const md_model_backend *be;
    void *impl;
} opened;

static bool open_model(const char *path, opened *o)
{
    md_error err = {0};
    md_model_options opts = {0};
    md_status s = md_da2_model_open(path, &opts, NULL, &o->be, &o->impl, &err);
    CHECK_MSG(s == MD_OK, "open %s: %s", path, err.message);
    return s == MD_OK;
}

static void check_model(const char *name, const char *weights_file)
{
    md_error err = {0};
    opened o;
    if (!open_model(ref(name, weights_file), &o))
        return;
    fprintf(stderr, "  %s/%s: %s, %.1f GFLOP at 640x480\n", name, weights_file,
            o.be->describe(o.impl), o.be->gflop(o.impl, 640, 480));
    md_tensor pre = {0};
    CHECK_OK(md_npy_load(ref(name, "preprocessed.npy"), &pre, &err), &err);
    if (!pre.data || pre.ndim != 3) {
        o.be->destroy(o.impl);
        md_tensor_free(&pre);
        return;
    }
    int H = (int)pre.shape[1], W = (int)pre.shape[2];

    /* Encoder features and class tokens. */
    float *feats[4];
    int T = 0, C = 0;
    CHECK_OK(md_da2_encode(o.impl, pre.data, H, W, feats, &T, &C, &err), &err);
    if (feats[0]) {
        for (int k = 0; k < 4; k++) {
            char fname[32];
            snprintf(fname, sizeof fname, "feature%d.npy", k);
            md_tensor f = {0}, cls = {0};
            CHECK_OK(md_npy_load(ref(name, fname), &f, &err), &err);
            snprintf(fname, sizeof fname, "cls%d.npy", k);
            CHECK_OK(md_npy_load(ref(name, fname), &cls, &err), &err);
            if (f.data && cls.data) {
                CHECK(md_tensor_numel(&f) == (size_t)(T - 1) * C);
                CHECK(md_tensor_numel(&cls) == (size_t)C);
                double e = rel_err(feats[k] + C, f.data, (size_t)(T - 1) * C);
                double ec = rel_err(feats[k], cls.data, (size_t)C);
                fprintf(stderr, "  %s/%s feature%d rel err %.3g, cls %.3g\n", name, weights_file,
                        k, e, ec);
                CHECK_MSG(e < 1e-3, "feature%d relative error %g", k, e);
                CHECK_MSG(ec < 1e-3, "cls%d relative error %g", k, ec);
            }
            md_tensor_free(&f);
            md_tensor_free(&cls);
            free(feats[k]);
        }
    }

    /* Network-resolution depth from the preprocessed tensor. */
    md_tensor out = {0}, dn = {0};
    CHECK_OK(o.be->run_tensor(o.impl, &pre, &out, &err), &err);
    CHECK_OK(md_npy_load(ref(name, "depth_net.npy"), &dn, &err), &err);
    if (out.data && dn.data) {
        CHECK(md_tensor_numel(&out) == md_tensor_numel(&dn));
        double mx, mean;
        abs_err(out.data, dn.data, md_tensor_numel(&dn), &mx, &mean);
        fprintf(stderr, "  %s/%s depth_net max abs %.3g m, mean %.3g m\n", name, weights_file, mx,
                mean);
        CHECK_MSG(mx < 5e-3 && mean < 5e-4, "depth_net max %g mean %g", mx, mean);
    }
    md_tensor_free(&out);
    md_tensor_free(&dn);

    /* The whole pipeline from the PNG. */
    md_image img = {0};
    CHECK_OK(md_image_load(ref(name, "input.png"), &img, &err), &err);
    if (img.pixels) {
        float *chw = NULL;
        int ph = 0, pw = 0;
        CHECK_OK(md_da2_preprocess(&img, H == 140 ? 140 : 518, &chw, &ph, &pw, &err), &err);
        if (chw) {
            CHECK(ph == H && pw == W);
            if (ph == H && pw == W) {
                double mx, mean;
                abs_err(chw, pre.data, md_tensor_numel(&pre), &mx, &mean);
                fprintf(stderr, "  %s preprocessing max abs %.3g\n", name, mx);
                CHECK_MSG(mx < 1e-4, "preprocessing max abs err %g", mx);
            }
            free(chw);
        }
        /* predict uses the model's input size: reopen with the reference's */
        md_model_options opts = {0};
        opts.input_size = H < W ? H : W;
        opened o2;
        CHECK_OK(md_da2_model_open(ref(name, weights_file), &opts, NULL, &o2.be, &o2.impl, &err), &err);
        md_depth d = {0};
        md_tensor dref = {0};
        CHECK_OK(o2.be->predict(o2.impl, &img, &d, NULL, &err), &err);
        CHECK_OK(md_npy_load(ref(name, "depth.npy"), &dref, &err), &err);
        if (d.data && dref.data) {
            CHECK(d.width == img.width && d.height == img.height && d.mask == NULL);
            CHECK(md_tensor_numel(&dref) == (size_t)d.width * d.height);
            double mx, mean;
            abs_err(d.data, dref.data, md_tensor_numel(&dref), &mx, &mean);
            fprintf(stderr, "  %s/%s depth max abs %.3g m, mean %.3g m\n", name, weights_file, mx,
                    mean);
            CHECK_MSG(mx < 5e-3 && mean < 5e-4, "depth max %g mean %g", mx, mean);
        }
        md_tensor_free(&dref);
        free(d.data);
        o2.be->destroy(o2.impl);
        md_image_free(&img);
    }
    md_tensor_free(&pre);
    o.be->destroy(o.impl);
}

static void test_tiny_safetensors(void)
{
    check_model("tiny", "model.safetensors");
}

static void test_tiny_pth(void)
{
    check_model("tiny", "model.pth");
}

static void test_vits(void)
{
    if (getenv("MD_SKIP_VITS")) {
        fprintf(stderr, "  vits skipped (MD_SKIP_VITS)\n");
        return;
    }
    check_model("vits", "model.safetensors");
}

/* Writes a copy of the tiny safetensors file with `from` replaced by `to`
 * (same length) in its header and expects the error to name `expect`. */
static void expect_header_edit_fails(const char *from, const char *to, const char *expect)
{
    md_error err = {0};
    uint8_t *data = NULL;
    size_t size = 0;
    CHECK_OK(md_read_file(ref("tiny", "model.safetensors"), (size_t)1 << 30, &data, &size, &err),
             &err);
    if (!data)
        return;
    size_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | data[i];
    char *hdr = (char *)data + 8;
    char *hit = NULL;
    for (size_t i = 0; i + strlen(from) <= hlen && !hit; i++)
        if (memcmp(hdr + i, from, strlen(from)) == 0)
            hit = hdr + i;
    CHECK(hit != NULL && strlen(from) == strlen(to));
    if (hit) {
        memcpy(hit, to, strlen(to));
        char path[] = "/tmp/md_da2_testXXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        if (fd >= 0) {
            CHECK(write(fd, data, size) == (ssize_t)size);
            close(fd);
            opened o = {0};
            md_model_options opts = {0};
            md_status s = md_da2_model_open(path, &opts, NULL, &o.be, &o.impl, &err);
            CHECK_MSG(s != MD_OK && strstr(err.message, expect), "%s -> %d: %s", to, (int)s,
                      err.message);
            if (s == MD_OK)
                o.be->destroy(o.impl);
            unlink(path);
        }
    }
    free(data);
}

static void test_bad_checkpoints(void)
{
    /* a missing tensor is named */
    expect_header_edit_fails("\"pretrained.norm.weight\"", "\"pretrained.norm.weighx\"",
                             "'pretrained.norm.weight' is missing");
    /* a mis-shaped one too, with both shapes */
    expect_header_edit_fails("blocks.3.attn.qkv.weight\":{\"dtype\":\"F32\",\"shape\":[384,128]",
                             "blocks.3.attn.qkv.weight\":{\"dtype\":\"F32\",\"shape\":[128,384]",
                             "'pretrained.blocks.3.attn.qkv.weight' has shape [128, 384], "
                             "expected [384, 128]");
    /* through the public API: a truncated file */
    md_error err = {0};
    uint8_t *data = NULL;
    size_t size = 0;
    CHECK_OK(md_read_file(ref("tiny", "model.pth"), (size_t)1 << 30, &data, &size, &err), &err);
    if (data) {
        char path[] = "/tmp/md_da2_truncXXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0) {
            CHECK(write(fd, data, size / 2) == (ssize_t)(size / 2));
            close(fd);
            md_model *m = NULL;
            md_status s = md_model_load(path, NULL, &m, &err);
            CHECK_MSG(s == MD_ERR_FORMAT, "truncated pth -> %d: %s", (int)s, err.message);
            md_model_free(m);
            unlink(path);
        }
        free(data);
    }
}

/* Any thread count gives the reference answer (1 = everything inline), and
 * the very same bits as one thread. */
static void test_thread_counts(void)
{
    md_error err = {0};
    md_tensor pre = {0}, dn = {0}, first = {0};
    CHECK_OK(md_npy_load(ref("tiny", "preprocessed.npy"), &pre, &err), &err);
    CHECK_OK(md_npy_load(ref("tiny", "depth_net.npy"), &dn, &err), &err);
    const int counts[3] = {1, 3, 7};
    for (int i = 0; i < 3 && pre.data && dn.data; i++) {
        md_model_options opts = {0};
        md_threadpool *pool = NULL;
        CHECK_OK(md_threadpool_create(counts[i], &pool, &err), &err);
        opened o;
        CHECK_OK(md_da2_model_open(ref("tiny", "model.safetensors"), &opts, pool, &o.be, &o.impl,
                                   &err),
                 &err);
        md_tensor out = {0};
        CHECK_OK(o.be->run_tensor(o.impl, &pre, &out, &err), &err);
        if (out.data) {
            double mx, mean;
            abs_err(out.data, dn.data, md_tensor_numel(&dn), &mx, &mean);
            CHECK_MSG(mx < 5e-3 && mean < 5e-4, "threads %d: max %g mean %g", counts[i], mx, mean);
            if (!first.data)
                first = out;
            else
                CHECK_MSG(memcmp(first.data, out.data, md_tensor_numel(&out) * sizeof(float)) == 0,
                          "threads %d differ from 1 thread", counts[i]);
        }
        if (out.data != first.data)
            md_tensor_free(&out);
        o.be->destroy(o.impl);
        md_threadpool_free(pool);
    }
    md_tensor_free(&first);
    /* the relative head (ReLU, no max_depth): non-negative, and not the metric map */
    if (pre.data && dn.data) {
        md_model_options opts = {0};
        opts.relative = 1;
        opened o;
        CHECK_OK(md_da2_model_open(ref("tiny", "model.safetensors"), &opts, NULL, &o.be, &o.impl,
                                   &err),
                 &err);
        CHECK(strstr(o.be->describe(o.impl), "relative") != NULL);
        md_tensor out = {0};
        CHECK_OK(o.be->run_tensor(o.impl, &pre, &out, &err), &err);
        if (out.data) {
            bool nonneg = true, differs = false;
            for (size_t i = 0; i < md_tensor_numel(&out); i++) {
                nonneg = nonneg && out.data[i] >= 0.0f;
                differs = differs || fabsf(out.data[i] - dn.data[i]) > 1e-3f;
            }
            CHECK(nonneg && differs);
        }
        md_tensor_free(&out);
        o.be->destroy(o.impl);
    }
    md_tensor_free(&pre);
    md_tensor_free(&dn);
}

/* bf16 (weights and products' inputs rounded to bf16, float32 sums, LayerNorm,
 * softmax, GELU and residuals in float32) against the float32 reference: the
 * depth within a bf16-sized error, far from the errors of a wrong kernel
 * (metres). The ViT-S case runs where the CPU multiplies bf16 natively (the
 * emulation would take minutes); the tiny one everywhere. */
static void bf16_case(const char *name, int input_size, double max_tol, double mean_tol)
{
    md_error err = {0};
    md_model *m = NULL;
    md_model_options opts = {0};
    opts.input_size = input_size;
    opts.precision = MD_PRECISION_BF16;
    CHECK_OK(md_model_load(ref(name, "model.safetensors"), &opts, &m, &err), &err);
    md_image img = {0};
    md_tensor dref = {0};
    md_depth d = {0};
    CHECK_OK(md_image_load(ref(name, "input.png"), &img, &err), &err);
    CHECK_OK(md_npy_load(ref(name, "depth.npy"), &dref, &err), &err);
    if (m && img.pixels && dref.data) {
        CHECK(md_model_precision(m) == MD_PRECISION_BF16);
        CHECK(strstr(md_model_describe(m), "bf16") != NULL);
        /* every product of a bf16 Depth Anything V2 runs in bf16 */
        CHECK(md_model_gflop_bf16(m, 160, 120) == md_model_gflop(m, 160, 120));
        CHECK_OK(md_model_predict(m, &img, &d, &err), &err);
        if (d.data && md_tensor_numel(&dref) == (size_t)d.width * d.height) {
            double mx, mean;
            abs_err(d.data, dref.data, md_tensor_numel(&dref), &mx, &mean);
            fprintf(stderr, "  %s bf16 depth max abs %.3g m, mean %.3g m\n", name, mx, mean);
            CHECK_MSG(mx < max_tol && mean < mean_tol, "%s bf16 depth max %g mean %g", name, mx,
                      mean);
            /* and not the float32 answer by accident */
            CHECK(mean > 1e-4);
        }
    }
    md_depth_free(&d);
    md_tensor_free(&dref);
    md_image_free(&img);
    md_model_free(m);
}

static void test_bf16(void)
{
    bf16_case("tiny", 140, 0.5, 0.08);
    md_runtime_info info;
    md_runtime_describe(&info);
    if (strcmp(info.bf16_kernels, "avx512_bf16") != 0 || getenv("MD_SKIP_VITS")) {
        fprintf(stderr, "  vits bf16 skipped (no native bf16 kernels, or MD_SKIP_VITS)\n");
        return;
    }
    bf16_case("vits", 518, 0.3, 0.05);
}

static void test_public_api(void)
{
    md_error err = {0};
    md_model *m = NULL;
    md_model_options opts = {0};
    opts.input_size = 140;
    CHECK_OK(md_model_load(ref("tiny", "model.safetensors"), &opts, &m, &err), &err);
    if (!m)
        return;
    CHECK(strstr(md_model_describe(m), "depth-anything-v2") != NULL);
    CHECK(md_model_gflop(m, 160, 120) > 0.0);
    CHECK(md_model_gflop_bf16(m, 160, 120) == 0.0); /* fp32 */
    md_image img = {0};
    CHECK_OK(md_image_load(ref("tiny", "input.png"), &img, &err), &err);
    md_depth d = {0};
    if (img.pixels) {
        CHECK_OK(md_model_predict(m, &img, &d, &err), &err);
        CHECK(d.width == 160 && d.height == 120 && d.data);
        /* metric head: every value in (0, max_depth) */
        bool in_range = d.data != NULL;
        for (size_t i = 0; d.data && i < (size_t)d.width * d.height; i++)
            in_range = in_range && d.data[i] > 0.0f && d.data[i] < 20.0f;
        CHECK(in_range);
    }
    md_depth_free(&d);
    md_image_free(&img);
    /* a wrong tensor layout is refused, not run */
    md_tensor bad = {0}, out = {0};
    float zero[4 * 20 * 20] = {0};
    bad.ndim = 3;
    bad.shape[0] = 4;
    bad.shape[1] = 20;
    bad.shape[2] = 20;
    bad.data = zero;
    CHECK(md_model_run_tensor(m, &bad, &out, &err) == MD_ERR_DATA);
    md_model_free(m);
}

/* Non-finite values have a defined fate: a NaN or infinite weight is refused
 * at load, naming the tensor (both containers, from copies the test edits);
 * an all-NaN input never becomes a finite positive depth. */
static void test_nonfinite(void)
{
    static const char *const files[2] = {"model.safetensors", "model.pth"};
    static const float bad_values[2] = {NAN, -INFINITY};
    const char *victim = "pretrained.blocks.1.mlp.fc2.bias";
    for (int f = 0; f < 2; f++) {
        md_error err = {0};
        md_weights w;
        if (md_weights_open(ref("tiny", files[f]), &w, &err) != MD_OK) {
            CHECK_MSG(false, "%s", err.message);
            continue;
        }
        const md_weight *t = md_weights_find(&w, victim);
        const uint8_t *base = w.map;
        bool mapped = t && t->dtype == MD_WDT_F32 && t->data >= base &&
                      t->data < base + w.map_size && t->ndim == 1 && t->stride[0] == 1;
        CHECK_MSG(mapped, "%s: %s is not a stored float32 vector", files[f], victim);
        size_t at = mapped ? (size_t)(t->data - base) + ((size_t)t->offset + 3) * 4 : 0;
        md_weights_free(&w);
        uint8_t *data = NULL;
        size_t size = 0;
        CHECK_OK(md_read_file(ref("tiny", files[f]), (size_t)1 << 30, &data, &size, &err), &err);
        if (!mapped || !data) {
            free(data);
            continue;
        }
        memcpy(data + at, &bad_values[f], 4);
        char path[64];
        snprintf(path, sizeof path, "/tmp/md_da2_nan_%d_%s", (int)getpid(), files[f]);
        FILE *fp = fopen(path, "wb");
        CHECK(fp && fwrite(data, 1, size, fp) == size);
        if (fp)
            fclose(fp);
        md_model *m = NULL;
        md_status s = md_model_load(path, NULL, &m, &err);
        CHECK_MSG(s == MD_ERR_FORMAT && m == NULL && strstr(err.message, victim) &&
                      strstr(err.message, "non-finite") && strstr(err.message, path),
                  "%s -> %d: %s", files[f], (int)s, err.message);
        md_model_free(m);
        unlink(path);
        free(data);
    }

    md_error err = {0};
    md_model *m = NULL;
    CHECK_OK(md_model_load(ref("tiny", "model.safetensors"), NULL, &m, &err), &err);
    if (!m)
        return;
    static float nan_in[3 * 28 * 42];
    for (size_t i = 0; i < sizeof nan_in / sizeof nan_in[0]; i++)
        nan_in[i] = NAN;
    md_tensor in = {3, {1, 3, 28, 42}, nan_in}, out = {0};
    in.ndim = 4;
    CHECK_OK(md_model_run_tensor(m, &in, &out, &err), &err);
    size_t n = md_tensor_numel(&out), believable = 0;
    for (size_t i = 0; out.data && i < n; i++)
        believable += isfinite(out.data[i]) && out.data[i] > 0.0f;
    CHECK_MSG(n > 0 && believable == 0, "%zu of %zu depth values finite from an all-NaN input",
              believable, n);
    md_tensor_free(&out);
    md_model_free(m);
}


/* Runs a model file on a reference's preprocessed tensor and image and compares
 * with its network-resolution and image-resolution outputs. */
static void check_against(const char *model_file, const md_model_options *opts,
                          const char *ref_name, const char *net_file, const char *img_file,
                          md_model **keep)
{
    char model_path[1200]; /* ref() reuses its buffer */
    snprintf(model_path, sizeof model_path, "%s", model_file);
    md_error err = {0};
    md_model *m = NULL;
    md_status s = md_model_load(model_path, opts, &m, &err);
    CHECK_MSG(s == MD_OK, "%s: %s", model_path, err.message);
    if (!m)
        return;
    md_tensor pre = {0}, out = {0}, want = {0};
    CHECK_OK(md_npy_load(ref(ref_name, "preprocessed.npy"), &pre, &err), &err);
    CHECK_OK(md_npy_load(ref(ref_name, net_file), &want, &err), &err);
    if (pre.data && want.data) {
        CHECK_OK(md_model_run_tensor(m, &pre, &out, &err), &err);
        if (out.data) {
            CHECK(md_tensor_numel(&out) == md_tensor_numel(&want));
            double mx, mean;
            abs_err(out.data, want.data, md_tensor_numel(&want), &mx, &mean);
            fprintf(stderr, "  %s vs %s/%s: max abs %.3g, mean %.3g\n", model_path, ref_name,
                    net_file, mx, mean);
            CHECK_MSG(mx < 5e-3 && mean < 5e-4, "%s: max %g mean %g", model_path, mx, mean);
        }
    }
    md_tensor_free(&out);
    md_tensor_free(&want);
    md_tensor_free(&pre);
    md_image img = {0};
    md_depth d = {0};
    md_tensor dref = {0};
    CHECK_OK(md_image_load(ref(ref_name, "input.png"), &img, &err), &err);
    CHECK_OK(md_npy_load(ref(ref_name, img_file), &dref, &err), &err);
    if (img.pixels && dref.data) {
        CHECK_OK(md_model_predict(m, &img, &d, &err), &err);
        if (d.data && md_tensor_numel(&dref) == (size_t)d.width * d.height) {
            double mx, mean;
            abs_err(d.data, dref.data, md_tensor_numel(&dref), &mx, &mean);
            CHECK_MSG(mx < 5e-3 && mean < 5e-4, "%s %s: max %g mean %g", model_path, img_file,
                      mx, mean);
        } else {
            CHECK_MSG(0, "%s: no depth of the reference's size", model_path);
        }
    }
    md_depth_free(&d);
    md_tensor_free(&dref);
    md_image_free(&img);
    if (keep)
        *keep = m;
    else
        md_model_free(m);
}

/* transformers' layout (split q/k/v, renamed modules, config.json) gives the
 * official model's outputs; config.json says metric with max_depth 20. */
static void test_hf_layout(void)
{
    if (access(ref("tiny_hf", "model.safetensors"), R_OK) != 0) {
        fprintf(stderr, "  tiny_hf missing: skipped\n");
        return;
    }
    md_model_options opts = {0};
    opts.input_size = 140;
    md_model *m = NULL;
    check_against(ref("tiny_hf", "model.safetensors"), &opts, "tiny", "depth_net.npy",
                  "depth.npy", &m);
    if (m) {
        md_model_info info;
        md_model_get_info(m, &info);
        CHECK(info.output == MD_OUTPUT_METRIC && info.max_depth == 20.0 && info.indoor == 1);
        CHECK(info.note[0] == '\0');
        CHECK(strstr(md_model_describe(m), "transformers") != NULL);
        md_model_free(m);
    }
    /* the same weights with a config.json that says relative: the ReLU head,
     * and a flag that contradicts it is obeyed with a note */
    char dir[] = "/tmp/md_da2_hfXXXXXX";
    if (!mkdtemp(dir))
        return;
    char mpath[256], cpath[256];
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", dir);
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    CHECK(symlink(ref("tiny_hf", "model.safetensors"), mpath) == 0);
    FILE *f = fopen(cpath, "w");
    if (f) {
        fputs("{\"depth_estimation_type\": \"relative\", \"backbone_config\": "
              "{\"out_indices\": [3, 6, 9, 12]}}", f);
        fclose(f);
    }
    md_error err = {0};
    CHECK_OK(md_model_load(mpath, &opts, &m, &err), &err);
    if (m) {
        md_model_info info;
        md_model_get_info(m, &info);
        CHECK(info.output == MD_OUTPUT_RELATIVE && info.note[0] == '\0');
        md_model_free(m);
    }
    opts.relative = MD_HEAD_METRIC;
    CHECK_OK(md_model_load(mpath, &opts, &m, &err), &err);
    if (m) {
        md_model_info info;
        md_model_get_info(m, &info);
        CHECK(info.output == MD_OUTPUT_METRIC);
        CHECK_MSG(strstr(info.note, "relative checkpoint by config.json") != NULL, "note: %s",
                  info.note);
        md_model_free(m);
    }
    opts.relative = MD_HEAD_AUTO;
    /* a bad config is an error naming it */
    f = fopen(cpath, "w");
    if (f) {
        fputs("{\"depth_estimation_type\": \"absolute\"}", f);
        fclose(f);
    }
    CHECK(md_model_load(mpath, &opts, &m, &err) == MD_ERR_FORMAT &&
          strstr(err.message, "config.json") && strstr(err.message, "absolute"));
    f = fopen(cpath, "w");
    if (f) {
        fputs("{\"backbone_config\": {\"out_indices\": [3, 6, 9, 13]}}", f);
        fclose(f);
    }
    CHECK(md_model_load(mpath, &opts, &m, &err) == MD_ERR_FORMAT &&
          strstr(err.message, "out_indices"));
    unlink(cpath);
    unlink(mpath);
    rmdir(dir);
}

/* The official relative checkpoint: recognised by its file name, its ReLU
 * head reproduces the reference disparity; the same tensors under another
 * name are taken as metric, with a note saying so. */
static void test_relative_checkpoint(void)
{
    if (access(ref("tiny_relative", "depth_anything_v2_vits.pth"), R_OK) != 0) {
        fprintf(stderr, "  tiny_relative missing: skipped\n");
        return;
    }
    md_model_options opts = {0};
    opts.input_size = 140;
    md_model *m = NULL;
    check_against(ref("tiny_relative", "depth_anything_v2_vits.pth"), &opts, "tiny_relative",
                  "disparity_net.npy", "disparity.npy", &m);
    if (m) {
        md_model_info info;
        md_model_get_info(m, &info);
        CHECK(info.output == MD_OUTPUT_RELATIVE && info.max_depth == 0.0 && info.note[0] == '\0');
        md_model_free(m);
    }
    md_error err = {0};
    CHECK_OK(md_model_load(ref("tiny_relative", "model.safetensors"), &opts, &m, &err), &err);
    if (m) {
        md_model_info info;
        md_model_get_info(m, &info);
        CHECK(info.output == MD_OUTPUT_METRIC && strstr(info.note, "assuming metric"));
        md_model_free(m);
    }
    opts.relative = MD_HEAD_RELATIVE;
    check_against(ref("tiny_relative", "model.safetensors"), &opts, "tiny_relative",
                  "disparity_net.npy", "disparity.npy", NULL);
    opts.relative = MD_HEAD_METRIC;
    CHECK_OK(md_model_load(ref("tiny_relative", "depth_anything_v2_vits.pth"), &opts, &m, &err),
             &err);
    if (m) {
        md_model_info info;
        md_model_get_info(m, &info);
        CHECK(info.output == MD_OUTPUT_METRIC && strstr(info.note, "relative checkpoint by its file name"));
        md_model_free(m);
    }
}

/* A tensor name that is not part of transformers' model is refused by name. */
static void test_hf_unknown_tensor(void)
{
    md_error err = {0};
    uint8_t *data = NULL;
    size_t size = 0;
    if (access(ref("tiny_hf", "model.safetensors"), R_OK) != 0)
        return;
    CHECK_OK(md_read_file(ref("tiny_hf", "model.safetensors"), (size_t)1 << 30, &data, &size, &err),
             &err);
    if (!data)
        return;
    const char *from = "layer.3.attention.attention.key.weight";
    const char *to = "layer.3.attention.attention.kez.weight";
    char *hit = NULL;
    for (size_t i = 8; i + strlen(from) <= size && !hit; i++)
        if (memcmp(data + i, from, strlen(from)) == 0)
            hit = (char *)data + i;
    CHECK(hit != NULL);
    if (hit) {
        memcpy(hit, to, strlen(to));
        char path[] = "/tmp/md_da2_hfbadXXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0) {
            CHECK(write(fd, data, size) == (ssize_t)size);
            close(fd);
            md_model *m = NULL;
            md_status s = md_model_load(path, NULL, &m, &err);
            CHECK_MSG(s == MD_ERR_FORMAT && strstr(err.message, "kez.weight"), "%d: %s", (int)s,
                      err.message);
            md_model_free(m);
            unlink(path);
        }
    }
    free(data);
}

int main(void)
{
    snprintf(ref_dir, sizeof ref_dir, "%s/reference/da2", check_shared_dir());
    if (access(ref("tiny", "model.safetensors"), R_OK) != 0) {
        printf("skipped: %s not found\n", ref_dir);
        return 77;
    }
    RUN_TEST(test_tiny_safetensors);
    RUN_TEST(test_tiny_pth);
    RUN_TEST(test_bad_checkpoints);
    RUN_TEST(test_public_api);
    RUN_TEST(test_nonfinite);
    RUN_TEST(test_thread_counts);
    RUN_TEST(test_hf_layout);
    RUN_TEST(test_relative_checkpoint);
    RUN_TEST(test_hf_unknown_tensor);
    RUN_TEST(test_vits);
    RUN_TEST(test_bf16);
    return check_finish();
}
