/* ONNX reader, graph executor and the FastDepth backend.
 * Truth comes from outside the code: the official FastDepth output for a
 * reference input (pred.npy), hand-computed convolutions on hand-encoded
 * protobuf bytes, and NYU ground-truth depth. */
#include "check.h"
#include "base/base.h"
#include "base/pool.h"
#include "formats/onnx.h"
#include "metricdepth.h"
#include "nets/onnx_graph.h"
#include "writers.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* One run on a fresh single-threaded workspace; the output stays valid until
 * the next run_once. */
static md_onnx_ws *last_ws;
static const float *run_once(const md_onnx_graph *g, const float *x)
{
    md_onnx_ws_free(last_ws);
    last_ws = md_onnx_ws_create(g, 1);
    return md_onnx_graph_run(g, last_ws, NULL, x, NULL);
}

/* Model: Y = Relu?(Conv(X[1,1,3,3], W[1,1,2,2] (raw_data), B[1] (packed float_data)))
 * followed by op_type (a unary op) when given. */
static buf tiny_model(int64_t opset, const char *extra_op)
{
    buf m = {0}, g = {0}, node = {0}, w = {0}, bias = {0}, ops = {0};
    f_int(&m, 1, 3);
    f_str(&m, 2, "hand");
    /* Conv node */
    f_str(&node, 1, "X");
    f_str(&node, 1, "W");
    f_str(&node, 1, "B");
    f_str(&node, 2, extra_op ? "C" : "Y");
    f_str(&node, 3, "conv0");
    f_str(&node, 4, "Conv");
    int64_t ks[2] = {2, 2};
    attr_ints(&node, "kernel_shape", ks, 2);
    f_msg(&g, 1, &node);
    if (extra_op) {
        f_str(&node, 1, "C");
        f_str(&node, 2, "Y");
        f_str(&node, 4, extra_op);
        if (strcmp(extra_op, "Clip") == 0) { /* opset 7 form: float attributes */
            buf a = {0};
            f_str(&a, 1, "max");
            f_float(&a, 2, 40.0f);
            f_int(&a, 20, 1);
            f_msg(&node, 5, &a);
            f_str(&a, 1, "min");
            f_float(&a, 2, 0.0f);
            f_int(&a, 20, 1);
            f_msg(&node, 5, &a);
        }
        f_msg(&g, 1, &node);
    }
    f_str(&g, 2, "tiny");
    /* W: dims packed, data_type FLOAT, raw_data */
    int64_t wd[4] = {1, 1, 2, 2};
    buf packed = {0};
    for (int i = 0; i < 4; i++)
        varint(&packed, (uint64_t)wd[i]);
    f_bytes(&w, 1, packed.d, packed.n);
    free(packed.d);
    f_int(&w, 2, 1);
    f_str(&w, 8, "W");
    float wv[4] = {1, 2, 3, 4};
    f_bytes(&w, 9, wv, sizeof wv);
    f_msg(&g, 5, &w);
    /* B: one unpacked dim, packed float_data */
    f_int(&bias, 1, 1);
    f_int(&bias, 2, 1);
    float bv = 0.5f;
    f_bytes(&bias, 4, &bv, 4);
    f_str(&bias, 8, "B");
    f_msg(&g, 5, &bias);
    int64_t xd[4] = {1, 1, 3, 3}, yd[4] = {1, 1, 2, 2};
    value_info(&g, 11, "X", xd, 4);
    value_info(&g, 12, "Y", yd, 4);
    /* an unknown field (number 99, varint) the reader must skip */
    f_int(&g, 99, 12345);
    f_msg(&m, 7, &g);
    f_str(&ops, 1, "");
    f_int(&ops, 2, opset);
    f_msg(&m, 8, &ops);
    return m;
}

static const char *shared_path(char *out, size_t size, const char *rel)
{
    snprintf(out, size, "%s/%s", check_shared_dir(), rel);
    return out;
}

/* The real FastDepth from ../shared (NULL, with the failure counted, when it
 * cannot be loaded). */
static md_model *load_fastdepth(const md_model_options *opts)
{
    char path[512];
    md_error err = {0};
    md_model *model = NULL;
    CHECK_OK(md_model_load(shared_path(path, sizeof path, "models/fastdepth/fastdepth_7.onnx"), opts,
                           &model, &err),
             &err);
    return model;
}


/* ----------------------------------------- one-node models, hand results */

/* Builds and runs the model on x; checks shape and values against want. */
static void expect_run(const char *what, buf *m, const float *x, int ynd, const int64_t *ydims,
                       const float *want, double tol)
{
    md_error err = {0};
    md_onnx_model om;
    md_onnx_graph *g = NULL;
    md_status st = md_onnx_parse(m->d, m->n, what, &om, &err);
    CHECK_MSG(st == MD_OK, "%s: %s", what, err.message);
    if (st == MD_OK) {
        st = md_onnx_graph_build(&om, what, 0, MD_GEMM_F32, &g, &err);
        CHECK_MSG(st == MD_OK, "%s: %s", what, err.message);
        md_onnx_free(&om);
    }
    if (g) {
        const md_onnx_graph_info *info = md_onnx_graph_get_info(g);
        bool same = info->out_ndim == ynd;
        for (int i = 0; same && i < ynd; i++)
            same = info->out_dims[i] == ydims[i];
        CHECK_MSG(same, "%s: output shape", what);
        if (same) {
            const float *y = run_once(g, x);
            size_t n = dims_numel(ynd, ydims);
            for (size_t i = 0; i < n; i++)
                CHECK_MSG(fabs((double)y[i] - want[i]) <= tol, "%s: y[%zu] = %g, want %g", what,
                          i, (double)y[i], (double)want[i]);
        }
        md_onnx_ws_free(last_ws);
        last_ws = NULL;
        md_onnx_graph_free(g);
    }
    free(m->d);
}

static void test_ops_by_hand(void)
{
    const float x16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    const float x9[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const char *X[] = {"X"};
    buf at = {0}, m;
    int64_t d4x4[4] = {1, 1, 4, 4}, d3x3[4] = {1, 1, 3, 3};

    /* MaxPool 2x2 stride 2 */
    int64_t k2[2] = {2, 2};
    attr_ints(&at, "kernel_shape", k2, 2);
    attr_ints(&at, "strides", k2, 2);
    m = one_node(7, "MaxPool", X, 1, &at, NULL, 0, d4x4, 4);
    expect_run("maxpool", &m, x16, 4, (int64_t[]){1, 1, 2, 2}, (float[]){6, 8, 14, 16}, 0);

    /* AveragePool 3x3 stride 1 pad 1: padding excluded, then included */
    int64_t k3[2] = {3, 3}, p1[4] = {1, 1, 1, 1};
    for (int cip = 0; cip < 2; cip++) {
        attr_ints(&at, "kernel_shape", k3, 2);
        attr_ints(&at, "pads", p1, 4);
        a_int(&at, "count_include_pad", cip);
        m = one_node(7, "AveragePool", X, 1, &at, NULL, 0, d3x3, 4);
        /* corner (1+2+4+5) / 4 or / 9; centre 45 / 9; edge (1+2+3+4+5+6) / 6 or / 9 */
        float want[9] = {3, 3.5f, 4, 4.5f, 5, 5.5f, 6, 6.5f, 7};
        float want_inc[9] = {12 / 9.f, 21 / 9.f, 16 / 9.f, 27 / 9.f, 5, 33 / 9.f,
                             24 / 9.f, 39 / 9.f, 28 / 9.f};
        expect_run(cip ? "avgpool-incl" : "avgpool", &m, x9, 4, d3x3, cip ? want_inc : want,
                   1e-6);
    }

    /* GlobalAveragePool over two channels */
    int64_t d2c[4] = {1, 2, 2, 2};
    m = one_node(7, "GlobalAveragePool", X, 1, NULL, NULL, 0, d2c, 4);
    expect_run("gap", &m, (float[]){1, 2, 3, 4, 5, 6, 7, 8}, 4, (int64_t[]){1, 2, 1, 1},
               (float[]){2.5f, 6.5f}, 1e-6);

    /* Concat (axis 1) of X and a constant */
    float cst[4] = {-1, -2, -3, -4};
    tinit ci = {"K", 4, {1, 1, 2, 2}, cst, NULL};
    a_int(&at, "axis", 1);
    m = one_node(7, "Concat", (const char *[]){"X", "K"}, 2, &at, &ci, 1,
                 (int64_t[]){1, 1, 2, 2}, 4);
    expect_run("concat", &m, x16, 4, (int64_t[]){1, 2, 2, 2}, (float[]){1, 2, 3, 4, -1, -2, -3, -4},
               0);

    /* Add with a per-channel bias (2,1,1), Mul by a scalar */
    float bias2[2] = {10, 20};
    tinit bi = {"B", 3, {2, 1, 1}, bias2, NULL};
    m = one_node(7, "Add", (const char *[]){"X", "B"}, 2, NULL, &bi, 1, d2c, 4);
    expect_run("add-bcast", &m, x16, 4, d2c, (float[]){11, 12, 13, 14, 25, 26, 27, 28}, 0);
    float three = 3;
    tinit sc = {"S", 0, {0}, &three, NULL};
    m = one_node(7, "Mul", (const char *[]){"S", "X"}, 2, NULL, &sc, 1, (int64_t[]){1, 1, 1, 2}, 4);
    expect_run("mul-scalar", &m, x16, 4, (int64_t[]){1, 1, 1, 2}, (float[]){3, 6}, 0);

    /* Upsample (opset 7) nearest x2 */
    float up[4] = {1, 1, 2, 2};
    a_floats(&at, "scales", up, 4);
    a_str(&at, "mode", "nearest");
    m = one_node(7, "Upsample", X, 1, &at, NULL, 0, (int64_t[]){1, 1, 2, 2}, 4);
    expect_run("upsample-nearest", &m, x16, 4, (int64_t[]){1, 1, 4, 4},
               (float[]){1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 0);
    /* Upsample (opset 7) linear x2 along W: asymmetric, x_in = x_out / 2 */
    float upw[4] = {1, 1, 1, 2};
    a_floats(&at, "scales", upw, 4);
    a_str(&at, "mode", "linear");
    m = one_node(7, "Upsample", X, 1, &at, NULL, 0, (int64_t[]){1, 1, 1, 2}, 4);
    expect_run("upsample-linear", &m, (float[]){0, 1}, 4, (int64_t[]){1, 1, 1, 4},
               (float[]){0, 0.5f, 1, 1}, 1e-6);

    /* Resize (opset 11) linear half_pixel x2: x_in = (x + .5) / 2 - .5, clamped */
    float rs[4] = {1, 1, 1, 2};
    tinit ri = {"scales", 1, {4}, rs, NULL};
    a_str(&at, "mode", "linear");
    m = one_node(11, "Resize", (const char *[]){"X", "", "scales"}, 3, &at, &ri, 1,
                 (int64_t[]){1, 1, 1, 2}, 4);
    expect_run("resize-linear", &m, (float[]){0, 1}, 4, (int64_t[]){1, 1, 1, 4},
               (float[]){0, 0.25f, 0.75f, 1}, 1e-6);
    /* Resize (opset 13) align_corners to sizes 1x1x1x3 */
    int64_t sz[4] = {1, 1, 1, 3};
    tinit zi = {"sizes", 1, {4}, NULL, sz};
    a_str(&at, "mode", "linear");
    a_str(&at, "coordinate_transformation_mode", "align_corners");
    m = one_node(13, "Resize", (const char *[]){"X", "", "", "sizes"}, 4, &at, &zi, 1,
                 (int64_t[]){1, 1, 1, 2}, 4);
    expect_run("resize-ac", &m, (float[]){0, 2}, 4, (int64_t[]){1, 1, 1, 3}, (float[]){0, 1, 2},
               1e-6);
    /* Resize (opset 11) nearest, asymmetric, floor, x3 on W */
    float r3[4] = {1, 1, 1, 3};
    tinit r3i = {"scales", 1, {4}, r3, NULL};
    a_str(&at, "coordinate_transformation_mode", "asymmetric");
    a_str(&at, "nearest_mode", "floor");
    m = one_node(11, "Resize", (const char *[]){"X", "", "scales"}, 3, &at, &r3i, 1,
                 (int64_t[]){1, 1, 1, 2}, 4);
    expect_run("resize-nearest", &m, (float[]){5, 7}, 4, (int64_t[]){1, 1, 1, 6},
               (float[]){5, 5, 5, 7, 7, 7}, 0);

    /* Gemm: X (1x4) . B (4x2) * 2 + 0.5 * C (2) */
    float bm[8] = {1, 0, 0, 1, 1, 0, 0, 1}, cv[2] = {2, 4};
    tinit gi[2] = {{"B", 2, {4, 2}, bm, NULL}, {"C", 1, {2}, cv, NULL}};
    a_float(&at, "alpha", 2);
    a_float(&at, "beta", 0.5f);
    m = one_node(7, "Gemm", (const char *[]){"X", "B", "C"}, 3, &at, gi, 2, (int64_t[]){1, 4}, 2);
    /* X.B = (1+3, 2+4) = (4, 6) -> (9, 14) */
    expect_run("gemm", &m, x16, 2, (int64_t[]){1, 2}, (float[]){9, 14}, 1e-6);
    /* Gemm transB: B given as (2x4) */
    float bt[8] = {1, 0, 1, 0, 0, 1, 0, 1};
    tinit gt = {"B", 2, {2, 4}, bt, NULL};
    a_int(&at, "transB", 1);
    m = one_node(7, "Gemm", (const char *[]){"X", "B"}, 2, &at, &gt, 1, (int64_t[]){1, 4}, 2);
    expect_run("gemm-transB", &m, x16, 2, (int64_t[]){1, 2}, (float[]){4, 6}, 1e-6);
    /* MatMul (2x2) . (2x3) */
    float mb[6] = {1, 2, 3, 4, 5, 6};
    tinit mi = {"B", 2, {2, 3}, mb, NULL};
    m = one_node(9, "MatMul", (const char *[]){"X", "B"}, 2, NULL, &mi, 1, (int64_t[]){2, 2}, 2);
    /* [1 2; 3 4] . [1 2 3; 4 5 6] = [9 12 15; 19 26 33] */
    expect_run("matmul", &m, x16, 2, (int64_t[]){2, 3}, (float[]){9, 12, 15, 19, 26, 33}, 1e-6);

    /* Flatten, Reshape (with 0 and -1), Transpose */
    m = one_node(7, "Flatten", X, 1, NULL, NULL, 0, (int64_t[]){1, 2, 2, 2}, 4);
    expect_run("flatten", &m, x16, 2, (int64_t[]){1, 8}, x16, 0);
    int64_t shp[3] = {0, -1, 2};
    tinit si = {"shape", 1, {3}, NULL, shp};
    m = one_node(7, "Reshape", (const char *[]){"X", "shape"}, 2, NULL, &si, 1,
                 (int64_t[]){1, 2, 2, 2}, 4);
    expect_run("reshape", &m, x16, 3, (int64_t[]){1, 4, 2}, x16, 0);
    int64_t perm[3] = {0, 2, 1};
    attr_ints(&at, "perm", perm, 3);
    m = one_node(7, "Transpose", X, 1, &at, NULL, 0, (int64_t[]){1, 2, 3}, 3);
    expect_run("transpose", &m, x16, 3, (int64_t[]){1, 3, 2}, (float[]){1, 4, 2, 5, 3, 6}, 0);

    /* Sigmoid, Relu, Clip (opset 11 inputs) */
    m = one_node(7, "Sigmoid", X, 1, NULL, NULL, 0, (int64_t[]){1, 2}, 2);
    expect_run("sigmoid", &m, (float[]){0, 2}, 2, (int64_t[]){1, 2},
               (float[]){0.5f, (float)(1 / (1 + exp(-2.0)))}, 1e-6);
    m = one_node(7, "Relu", X, 1, NULL, NULL, 0, (int64_t[]){1, 2}, 2);
    expect_run("relu", &m, (float[]){-3, 2}, 2, (int64_t[]){1, 2}, (float[]){0, 2}, 0);
    float lo = -1, hi = 1;
    tinit clip_in[2] = {{"lo", 0, {0}, &lo, NULL}, {"hi", 0, {0}, &hi, NULL}};
    m = one_node(11, "Clip", (const char *[]){"X", "lo", "hi"}, 3, NULL, clip_in, 2,
                 (int64_t[]){1, 3}, 2);
    expect_run("clip11", &m, (float[]){-3, 0.5f, 2}, 2, (int64_t[]){1, 3}, (float[]){-1, 0.5f, 1},
               0);

    /* Standalone BatchNormalization: (x - 1) / sqrt(0.25 + 0.75) * 2 + 0.5 */
    float g2[2] = {2, 2}, b2[2] = {0.5f, 0.5f}, m2[2] = {1, 1}, v2[2] = {0.25f, 0.25f};
    tinit bn[4] = {{"g", 1, {2}, g2, NULL},
                   {"b", 1, {2}, b2, NULL},
                   {"m", 1, {2}, m2, NULL},
                   {"v", 1, {2}, v2, NULL}};
    a_float(&at, "epsilon", 0.75f);
    m = one_node(7, "BatchNormalization", (const char *[]){"X", "g", "b", "m", "v"}, 5, &at, bn,
                 4, (int64_t[]){1, 2, 1, 1}, 4);
    expect_run("batchnorm", &m, (float[]){1, 3}, 4, (int64_t[]){1, 2, 1, 1}, (float[]){0.5f, 4.5f},
               1e-6);

    /* Conv 3x3 all-ones, pads 1, stride 2 on 1..9 */
    float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    tinit wi = {"W", 4, {1, 1, 3, 3}, ones, NULL};
    attr_ints(&at, "pads", p1, 4);
    attr_ints(&at, "strides", k2, 2);
    m = one_node(7, "Conv", (const char *[]){"X", "W"}, 2, &at, &wi, 1, d3x3, 4);
    expect_run("conv-pad-stride", &m, x9, 4, (int64_t[]){1, 1, 2, 2}, (float[]){12, 16, 24, 28},
               1e-5);
    /* Conv 3x3 dilation 2 on 0..24 (5x5): samples rows/cols 0, 2, 4 */
    float x25[25];
    for (int i = 0; i < 25; i++)
        x25[i] = (float)i;
    attr_ints(&at, "dilations", k2, 2);
    m = one_node(7, "Conv", (const char *[]){"X", "W"}, 2, &at, &wi, 1, (int64_t[]){1, 1, 5, 5}, 4);
    expect_run("conv-dilation", &m, x25, 4, (int64_t[]){1, 1, 1, 1}, (float[]){108}, 1e-5);
    /* Conv group 2: 4 -> 2 channels, 1x1 */
    float wg[4] = {1, 1, 1, -1};
    tinit wgi = {"W", 4, {2, 2, 1, 1}, wg, NULL};
    a_int(&at, "group", 2);
    m = one_node(7, "Conv", (const char *[]){"X", "W"}, 2, &at, &wgi, 1, (int64_t[]){1, 4, 1, 1},
                 4);
    expect_run("conv-group", &m, x16, 4, (int64_t[]){1, 2, 1, 1}, (float[]){3, -1}, 1e-6);
    /* Depthwise 5x5 pad 2 on a 2-channel 1x20 row (vector + tail paths): each
     * output is the sum of the 5 inputs centred on it (weights: middle row 1). */
    float w5[50] = {0};
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 5; k++)
            w5[c * 25 + 10 + k] = c ? 2.0f : 1.0f;
    tinit w5i = {"W", 4, {2, 1, 5, 5}, w5, NULL};
    int64_t p2[4] = {2, 2, 2, 2};
    attr_ints(&at, "pads", p2, 4);
    a_int(&at, "group", 2);
    float x40[40], want40[40];
    for (int i = 0; i < 40; i++)
        x40[i] = (float)(i % 20) + (i >= 20 ? 100.0f : 0.0f);
    for (int i = 0; i < 40; i++) {
        int c = i / 20, x = i % 20;
        float acc = 0;
        for (int k = -2; k <= 2; k++)
            if (x + k >= 0 && x + k < 20)
                acc += x40[c * 20 + x + k];
        want40[i] = acc * (c ? 2.0f : 1.0f);
    }
    m = one_node(7, "Conv", (const char *[]){"X", "W"}, 2, &at, &w5i, 1, (int64_t[]){1, 2, 1, 20},
                 4);
    expect_run("conv-depthwise5", &m, x40, 4, (int64_t[]){1, 2, 1, 20}, want40, 1e-4);
    /* Depthwise 3x3 pad 1 on 3 channels of 5x7 (odd height: row pairs and a
     * last single row), weight (c + 1) * (ky * 3 + kx + 1); brute force. */
    float w3[27], x105[105], want105[105];
    for (int i = 0; i < 27; i++)
        w3[i] = (float)((i / 9 + 1) * (i % 9 + 1));
    for (int i = 0; i < 105; i++)
        x105[i] = (float)((i * 37) % 11) - 5.0f;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 7; x++) {
                float acc = 0;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int iy = y + ky - 1, ix = x + kx - 1;
                        if (iy >= 0 && iy < 5 && ix >= 0 && ix < 7)
                            acc += x105[c * 35 + iy * 7 + ix] * w3[c * 9 + ky * 3 + kx];
                    }
                want105[c * 35 + y * 7 + x] = acc;
            }
    tinit w3i = {"W", 4, {3, 1, 3, 3}, w3, NULL};
    attr_ints(&at, "pads", p1, 4);
    a_int(&at, "group", 3);
    m = one_node(7, "Conv", (const char *[]){"X", "W"}, 2, &at, &w3i, 1, (int64_t[]){1, 3, 5, 7},
                 4);
    expect_run("conv-depthwise3", &m, x105, 4, (int64_t[]){1, 3, 5, 7}, want105, 1e-3);
    /* Depthwise 5x5 pad 2 on 2 channels of 3x37 (row pair + single row, two
     * 32-column blocks with a ragged end); brute force. */
    float w25[50], x222[222], want222[222];
    for (int i = 0; i < 50; i++)
        w25[i] = (float)((i * 7) % 9) - 4.0f;
    for (int i = 0; i < 222; i++)
        x222[i] = (float)((i * 13) % 17) * 0.5f - 4.0f;
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 37; x++) {
                float acc = 0;
                for (int ky = 0; ky < 5; ky++)
                    for (int kx = 0; kx < 5; kx++) {
                        int iy = y + ky - 2, ix = x + kx - 2;
                        if (iy >= 0 && iy < 3 && ix >= 0 && ix < 37)
                            acc += x222[c * 111 + iy * 37 + ix] * w25[c * 25 + ky * 5 + kx];
                    }
                want222[c * 111 + y * 37 + x] = acc;
            }
    tinit w25i = {"W", 4, {2, 1, 5, 5}, w25, NULL};
    attr_ints(&at, "pads", p2, 4);
    a_int(&at, "group", 2);
    m = one_node(7, "Conv", (const char *[]){"X", "W"}, 2, &at, &w25i, 1,
                 (int64_t[]){1, 2, 3, 37}, 4);
    expect_run("conv-depthwise5-wide", &m, x222, 4, (int64_t[]){1, 2, 3, 37}, want222, 1e-3);
}

/* --------------------------------------------------------------- tests */

/* Builds the model (err and err == NULL) and expects a failure with `code`
 * whose message names the node ('Y', its output) and contains `what`. */
/* The graph's exact rewrites around a nearest x2 Resize R of X (1x3x5x6),
 * each variant against the same graph computed here in double, on one worker
 * and on three: 0 Conv(R + S) with S a constant (the Add becomes part of the
 * resize), 1 Conv(R), 2 Conv(R) + R (R read twice stays whole), and with a
 * pointwise Conv, 3 Conv(R) (the conv moves before the resize, on the small
 * image). Conv: depthwise 3x3 pad 1 (0-2) or 1x1 3 -> 2 channels (3), with
 * bias. Also the arithmetic the graph counts, by hand: in a bf16 build the
 * pointwise conv's products are bf16, the depthwise conv's float32. */
static void test_graph_rewrites(void)
{
    enum { C = 3, h = 5, w = 6, H = 2 * h, W = 2 * w, CO = 2 };
    float x[C * h * w], sv[C * H * W], wv[C * 9], bv[C] = {0.5f, -1, 2};
    for (int i = 0; i < C * h * w; i++)
        x[i] = (float)((i * 37) % 23) / 7.0f - 1.5f;
    for (int i = 0; i < C * H * W; i++)
        sv[i] = (float)((i * 11) % 17) / 5.0f - 1.0f;
    for (int i = 0; i < C * 9; i++)
        wv[i] = (float)((i * 5) % 9) / 4.0f - 1.0f;
    float scales[4] = {1, 1, 2, 2};
    for (int variant = 0; variant < 4; variant++) {
        bool pw = variant == 3;
        buf ra = {0}, ca = {0};
        a_str(&ra, "mode", "nearest");
        a_str(&ra, "coordinate_transformation_mode", "asymmetric");
        a_str(&ra, "nearest_mode", "floor");
        int64_t k3[2] = {3, 3}, k1[2] = {1, 1}, p1[4] = {1, 1, 1, 1};
        attr_ints(&ca, "kernel_shape", pw ? k1 : k3, 2);
        if (!pw) {
            attr_ints(&ca, "pads", p1, 4);
            a_int(&ca, "group", C);
        }
        tinit inits[4] = {{"scales", 1, {4}, scales, NULL},
                          {"S", 4, {1, C, H, W}, sv, NULL},
                          {"Wt", 4, {pw ? CO : C, pw ? C : 1, pw ? 1 : 3, pw ? 1 : 3}, wv, NULL},
                          {"Bs", 1, {pw ? CO : C}, bv, NULL}};
        const char *rs[] = {"X", "", "scales"}, *add_s[] = {"R", "S"}, *zr[] = {"Z", "R"};
        const char *conv_a[] = {"A", "Wt", "Bs"}, *conv_r[] = {"R", "Wt", "Bs"};
        tnode nodes[3] = {{"Resize", rs, 3, "R", &ra},
                          {"Add", add_s, 2, "A", NULL},
                          {"Conv", conv_a, 3, "Y", &ca}};
        if (variant > 0) {
            nodes[1] = (tnode){"Conv", conv_r, 3, variant == 2 ? "Z" : "Y", &ca};
            nodes[2] = (tnode){"Add", zr, 2, "Y", NULL};
        }
        buf m = graph_model(11, nodes, variant == 0 || variant == 2 ? 3 : 2, inits, 4,
                            (int64_t[]){1, C, h, w}, 4);
        md_error err = {0};
        md_onnx_model om;
        md_onnx_graph *g = NULL, *g16 = NULL;
        CHECK_OK(md_onnx_parse(m.d, m.n, "rewrites", &om, &err), &err);
        if (err.code == MD_OK) {
            CHECK_OK(md_onnx_graph_build(&om, "rewrites", 0, MD_GEMM_F32, &g, &err), &err);
            CHECK_OK(md_onnx_graph_build(&om, "rewrites", 0, MD_GEMM_BF16, &g16, &err), &err);
            md_onnx_free(&om);
        }
        free(m.d);
        if (g16) {
            /* the moved 1x1 conv at 5x6; the depthwise one at 10x12 */
            double flop = pw ? 2.0 * CO * C * h * w : 2.0 * C * H * W * 9;
            const md_onnx_graph_info *i16 = md_onnx_graph_get_info(g16);
            CHECK_MSG(i16->flop == flop && i16->flop_bf16 == (pw ? flop : 0.0),
                      "variant %d: flop %g, bf16 %g", variant, i16->flop, i16->flop_bf16);
            md_onnx_graph_free(g16);
        }
        if (!g)
            continue;
        CHECK(md_onnx_graph_get_info(g)->flop_bf16 == 0.0);
        int co = pw ? CO : C;
        double up[C * H * W], want[C * H * W];
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    int o = (c * H + y) * W + xx;
                    up[o] = x[(c * h + y / 2) * w + xx / 2] + (variant ? 0.0 : sv[o]);
                }
        for (int c = 0; c < co; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    double a = bv[c];
                    for (int ci = 0; pw && ci < C; ci++)
                        a += wv[c * C + ci] * up[(ci * H + y) * W + xx];
                    for (int ky = 0; !pw && ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = y + ky - 1, ix = xx + kx - 1;
                            if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                a += wv[c * 9 + ky * 3 + kx] * up[(c * H + iy) * W + ix];
                        }
                    int o = (c * H + y) * W + xx;
                    want[o] = a + (variant == 2 ? x[(c * h + y / 2) * w + xx / 2] : 0.0);
                }
        md_threadpool *pool = md_pool_create(3);
        for (int workers = 1; workers <= 3; workers += 2) {
            md_onnx_ws *ws = md_onnx_ws_create(g, workers);
            const float *y = md_onnx_graph_run(g, ws, workers > 1 ? pool : NULL, x, NULL);
            int bad = 0;
            for (int i = 0; i < co * H * W; i++)
                bad += !(fabs(y[i] - want[i]) <= 1e-5);
            CHECK_MSG(bad == 0, "graph rewrites, variant %d, %d workers: %d wrong", variant,
                      workers, bad);
            md_onnx_ws_free(ws);
        }
        md_pool_destroy(pool);
        md_onnx_graph_free(g);
    }
}

static void expect_build_fail(const char *label, buf *m, md_status code, const char *what)
{
    md_error err = {0};
    md_onnx_model om;
    md_status st = md_onnx_parse(m->d, m->n, label, &om, &err);
    CHECK_MSG(st == MD_OK, "%s: parse: %s", label, err.message);
    if (st == MD_OK) {
        md_onnx_graph *g = NULL;
        st = md_onnx_graph_build(&om, label, 0, MD_GEMM_F32, &g, &err);
        CHECK_MSG(st == code, "%s: status %d (want %d): %s", label, (int)st, (int)code,
                  err.message);
        CHECK_MSG(g == NULL, "%s: graph built", label);
        CHECK_MSG(strstr(err.message, label) && strstr(err.message, "node 'Y'") &&
                      (!what || strstr(err.message, what)),
                  "%s: message '%s' lacks the node or '%s'", label, err.message, what);
        md_onnx_graph_free(g);
        /* the same status without an md_error (nothing may read err) */
        g = NULL;
        md_status st2 = md_onnx_graph_build(&om, label, 0, MD_GEMM_F32, &g, NULL);
        CHECK_MSG(st2 == st, "%s: status %d without err, %d with", label, (int)st2, (int)st);
        md_onnx_graph_free(g);
        md_onnx_free(&om);
    }
    free(m->d);
}

/* Shape inference is total: every op checks its operands. The first two are
 * the crashes of issue 14 (a 0-sized constant broadcast against size 1 made
 * a size-1 output read from an empty buffer; a MatMul/Gemm constant with a 0
 * last dimension divided by zero at load). */
static void test_shape_validation(void)
{
    static const float one[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const char *XK[] = {"X", "K"}, *KX[] = {"K", "X"};
    int64_t x1[1] = {1}, x11[2] = {1, 1};
    buf at = {0}, m;

    /* Add(X[1], K[0]): broadcasting 0 against 1 is an empty result, not 1 */
    tinit k0 = {"K", 1, {0}, one, NULL};
    m = one_node(7, "Add", XK, 2, NULL, &k0, 1, x1, 1);
    expect_build_fail("add-empty", &m, MD_ERR_FORMAT, "empty");
    /* MatMul(K[2,0], X[0,2]) and Gemm: the inner size 0 of a constant */
    tinit k20 = {"K", 2, {2, 0}, one, NULL};
    m = one_node(9, "MatMul", KX, 2, NULL, &k20, 1, x11, 2);
    expect_build_fail("matmul-empty", &m, MD_ERR_FORMAT, "'K' is empty");
    m = one_node(9, "Gemm", KX, 2, NULL, &k20, 1, x11, 2);
    expect_build_fail("gemm-empty", &m, MD_ERR_FORMAT, "'K' is empty");
    tinit k02 = {"K", 2, {0, 2}, one, NULL};
    m = one_node(9, "MatMul", XK, 2, NULL, &k02, 1, x11, 2);
    expect_build_fail("matmul-empty-b", &m, MD_ERR_FORMAT, "'K' is empty");
    /* mismatched broadcast, and inner sizes that differ */
    tinit k3 = {"K", 1, {3}, one, NULL};
    m = one_node(7, "Mul", XK, 2, NULL, &k3, 1, (int64_t[]){1, 2}, 2);
    expect_build_fail("mul-mismatch", &m, MD_ERR_FORMAT, "broadcast");
    tinit k32 = {"K", 2, {3, 2}, one, NULL};
    m = one_node(9, "MatMul", XK, 2, NULL, &k32, 1, (int64_t[]){1, 2}, 2);
    expect_build_fail("matmul-inner", &m, MD_ERR_FORMAT, "inner");

    /* Every op, handed an empty constant as its data input, fails cleanly. */
    static const char *const unary[] = {"Relu", "Sigmoid", "Identity", "Flatten", "Transpose",
                                        "GlobalAveragePool", "GlobalMaxPool", "Clip", "Dropout"};
    tinit e4 = {"K", 4, {1, 0, 2, 2}, one, NULL};
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++) {
        m = one_node(7, unary[i], (const char *[]){"K"}, 1, NULL, &e4, 1, x11, 2);
        char label[64];
        snprintf(label, sizeof label, "empty-%s", unary[i]);
        expect_build_fail(label, &m, MD_ERR_FORMAT, "empty");
    }
    int64_t k2[2] = {2, 2};
    attr_ints(&at, "kernel_shape", k2, 2);
    m = one_node(7, "MaxPool", (const char *[]){"K"}, 1, &at, &e4, 1, x11, 2);
    expect_build_fail("empty-MaxPool", &m, MD_ERR_FORMAT, "empty");
    attr_ints(&at, "kernel_shape", k2, 2);
    m = one_node(7, "AveragePool", (const char *[]){"K"}, 1, &at, &e4, 1, x11, 2);
    expect_build_fail("empty-AveragePool", &m, MD_ERR_FORMAT, "empty");
    a_int(&at, "axis", 1);
    m = one_node(7, "Concat", (const char *[]){"X", "K"}, 2, &at, &e4, 1,
                 (int64_t[]){1, 1, 2, 2}, 4);
    expect_build_fail("empty-Concat", &m, MD_ERR_FORMAT, "empty");
    float up[4] = {1, 1, 2, 2};
    a_floats(&at, "scales", up, 4);
    m = one_node(7, "Upsample", (const char *[]){"K"}, 1, &at, &e4, 1, x11, 2);
    expect_build_fail("empty-Upsample", &m, MD_ERR_FORMAT, "empty");
    tinit w0[1] = {{"W", 4, {1, 1, 0, 2}, one, NULL}};
    m = one_node(7, "Conv", XK + 0, 1, NULL, NULL, 0, (int64_t[]){1, 1, 3, 3}, 4);
    free(m.d);
    m = one_node(7, "Conv", (const char *[]){"X", "W"}, 2, NULL, w0, 1, (int64_t[]){1, 1, 3, 3},
                 4);
    expect_build_fail("conv-empty-kernel", &m, MD_ERR_FORMAT, "'W' is empty");
    int64_t shp[2] = {1, -1};
    tinit rs[2] = {{"K", 4, {1, 0, 2, 2}, one, NULL}, {"S", 1, {2}, NULL, shp}};
    m = one_node(7, "Reshape", (const char *[]){"K", "S"}, 2, NULL, rs, 2, x11, 2);
    expect_build_fail("empty-Reshape", &m, MD_ERR_FORMAT, "empty");
    tinit bn[5] = {{"g", 1, {0}, one, NULL},
                   {"b", 1, {0}, one, NULL},
                   {"m", 1, {0}, one, NULL},
                   {"v", 1, {0}, one, NULL},
                   {"K", 4, {1, 0, 2, 2}, one, NULL}};
    m = one_node(7, "BatchNormalization", (const char *[]){"K", "g", "b", "m", "v"}, 5, NULL, bn,
                 5, x11, 2);
    expect_build_fail("empty-BatchNormalization", &m, MD_ERR_FORMAT, "empty");

    /* overflowing and out-of-range shapes */
    int64_t huge[2] = {1 << 30, 1 << 30};
    tinit hs = {"S", 1, {2}, NULL, huge};
    m = one_node(7, "Reshape", (const char *[]){"X", "S"}, 2, NULL, &hs, 1, x11, 2);
    expect_build_fail("reshape-huge", &m, MD_ERR_UNSUPPORTED, "target shape");
    int64_t sizes[4] = {1, 1, 1, 1 << 20};
    tinit zs = {"sizes", 1, {4}, NULL, sizes};
    m = one_node(13, "Resize", (const char *[]){"X", "", "", "sizes"}, 4, NULL, &zs, 1,
                 (int64_t[]){1, 1, 1, 2}, 4);
    expect_build_fail("resize-huge", &m, MD_ERR_UNSUPPORTED, "out of range");
    float nan_scales[4] = {1, 1, NAN, 2};
    tinit ns = {"scales", 1, {4}, nan_scales, NULL};
    m = one_node(11, "Resize", (const char *[]){"X", "", "scales"}, 3, NULL, &ns, 1,
                 (int64_t[]){1, 1, 1, 2}, 4);
    expect_build_fail("resize-nan", &m, MD_ERR_FORMAT, "scales");
    /* a pool window of padding only */
    attr_ints(&at, "kernel_shape", k2, 2);
    attr_ints(&at, "pads", (int64_t[]){2, 0, 0, 0}, 4);
    m = one_node(7, "AveragePool", (const char *[]){"X"}, 1, &at, NULL, 0,
                 (int64_t[]){1, 1, 3, 3}, 4);
    expect_build_fail("pool-pad", &m, MD_ERR_FORMAT, "pads");

    /* non-finite weights are refused at load, naming the tensor */
    float wnan[4] = {1, NAN, 1, 1};
    tinit wn = {"W", 4, {1, 1, 2, 2}, wnan, NULL};
    m = one_node(7, "Conv", (const char *[]){"X", "W"}, 2, NULL, &wn, 1, (int64_t[]){1, 1, 3, 3},
                 4);
    expect_build_fail("conv-nan", &m, MD_ERR_FORMAT, "'W' holds a non-finite value");
    float binf[2] = {1, INFINITY};
    tinit bi = {"K", 1, {2}, binf, NULL};
    m = one_node(7, "Add", XK, 2, NULL, &bi, 1, (int64_t[]){1, 2}, 2);
    expect_build_fail("add-inf", &m, MD_ERR_FORMAT, "'K' holds a non-finite value");
    float gg[1] = {1}, bb[1] = {0}, mm[1] = {0}, vv[1] = {-2};
    tinit bnn[4] = {{"g", 1, {1}, gg, NULL},
                    {"b", 1, {1}, bb, NULL},
                    {"m", 1, {1}, mm, NULL},
                    {"v", 1, {1}, vv, NULL}};
    m = one_node(7, "BatchNormalization", (const char *[]){"X", "g", "b", "m", "v"}, 5, NULL, bnn,
                 4, (int64_t[]){1, 1, 1, 1}, 4);
    expect_build_fail("bn-negative-variance", &m, MD_ERR_FORMAT, "variance");
}

/* The crashing graphs through md_model_load (and predict's path), from files
 * the test writes: clean errors, with and without an md_error. */
static void test_crash_files(void)
{
    static const float one[4] = {1, 1, 1, 1};
    char dir[] = "/tmp/md_onnx_crash_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    tinit k0 = {"K", 1, {0}, one, NULL};
    tinit k20 = {"K", 2, {2, 0}, one, NULL};
    buf models[2] = {one_node(7, "Add", (const char *[]){"X", "K"}, 2, NULL, &k0, 1,
                              (int64_t[]){1}, 1),
                     one_node(9, "MatMul", (const char *[]){"K", "X"}, 2, NULL, &k20, 1,
                              (int64_t[]){1, 1}, 2)};
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/crash%d.onnx", dir, i);
        CHECK(models[i].n < 128); /* as small as the reported files */
        CHECK(write_file(path, models[i].d, models[i].n));
        md_error err = {0};
        md_model *model = NULL;
        md_status st = md_model_load(path, NULL, &model, &err);
        CHECK_MSG(st == MD_ERR_FORMAT && model == NULL && strstr(err.message, path),
                  "%s: %d %s", path, (int)st, err.message);
        CHECK(md_model_load(path, NULL, &model, NULL) == st && model == NULL);
        unlink(path);
        free(models[i].d);
    }
    rmdir(dir);
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* FastDepth's preprocessing on extreme aspect ratios: a 1x10000 image once
 * resized to 250x2500000 (10.9 GB) before cropping. Now memory follows the
 * network size. A depth-like graph (1x3x8x8 -> 1x1x8x8, depth = red / 255)
 * keeps the test independent of the real model. */
static void test_predict_memory(void)
{
    const float w[3] = {1, 0, 0};
    tinit wi = {"W", 4, {1, 3, 1, 1}, w, NULL};
    buf m = one_node(7, "Conv", (const char *[]){"X", "W"}, 2, NULL, &wi, 1,
                     (int64_t[]){1, 3, 8, 8}, 4);
    char path[64];
    snprintf(path, sizeof path, "/tmp/md_onnx_mem_%d.onnx", (int)getpid());
    CHECK(write_file(path, m.d, m.n));
    free(m.d);
    md_error err = {0};
    md_model *model = NULL;
    CHECK_OK(md_model_load(path, NULL, &model, &err), &err);
    unlink(path);
    if (!model)
        return;
    long before = peak_rss_kb();
    int sizes[3][2] = {{10000, 1}, {1, 10000}, {32768, 3}};
    for (int k = 0; k < 3; k++) {
        md_image img = {sizes[k][0], sizes[k][1], NULL};
        size_t n = (size_t)img.width * img.height;
        img.pixels = malloc(n * 3);
        for (size_t i = 0; img.pixels && i < n; i++) {
            img.pixels[3 * i] = (uint8_t)(50 + i % 200);
            img.pixels[3 * i + 1] = img.pixels[3 * i + 2] = 0;
        }
        md_depth d = {0};
        CHECK_OK(md_model_predict(model, &img, &d, &err), &err);
        CHECK(d.width == img.width && d.height == img.height);
        size_t seen = 0;
        bool in_range = true;
        for (size_t i = 0; d.data && i < n; i++) {
            seen += d.mask[i] != 0;
            in_range = in_range && d.data[i] >= 50 / 255.0f - 1e-6f && d.data[i] <= 249 / 255.0f + 1e-6f;
        }
        /* a 1-pixel-wide image is stretched 304x: the 228-row crop can lie
         * inside one pixel, whose centre is then outside it (mask 0) */
        CHECK_MSG((seen > 0 || img.width == 1) && in_range, "%dx%d: %zu seen, in range %d",
                  img.width, img.height, seen, (int)in_range); /* depth = red / 255 */
        md_depth_free(&d);
        free(img.pixels);
    }
    long grown = peak_rss_kb() - before;
    CHECK_MSG(grown < 100 * 1024, "peak memory grew by %ld MB", grown / 1024);
    md_model_free(model);
}

static void test_varints(void)
{
    struct {
        uint8_t bytes[11];
        size_t n;
        bool ok;
        uint64_t value;
    } cases[] = {
        {{0x00}, 1, true, 0},
        {{0x01}, 1, true, 1},
        {{0xac, 0x02}, 2, true, 300},
        {{0xff, 0xff, 0xff, 0xff, 0x0f}, 5, true, 0xffffffffu},
        {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10, true, UINT64_MAX},
        {{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 10, true, 1ull << 63},
        {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 10, false, 0},
        {{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 11, false, 0},
        {{0x80}, 1, false, 0},
        {{0xac}, 1, false, 0},
        {{0}, 0, false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *p = cases[i].bytes;
        uint64_t v = 0;
        bool ok = md_pb_read_varint(&p, cases[i].bytes + cases[i].n, &v);
        CHECK_MSG(ok == cases[i].ok, "varint case %zu", i);
        if (ok && cases[i].ok) {
            CHECK(v == cases[i].value);
            CHECK(p == cases[i].bytes + cases[i].n);
        }
    }
    /* -1 as int64 is ten bytes: our writer and reader agree with the spec. */
    buf b = {0};
    varint(&b, (uint64_t)(int64_t)-1);
    CHECK(b.n == 10);
    free(b.d);
}

static void test_tiny_model(void)
{
    md_error err = {0};
    buf m = tiny_model(7, NULL);
    md_onnx_model om;
    err.code = MD_OK; /* the branch below reads it */
    CHECK_OK(md_onnx_parse(m.d, m.n, "tiny", &om, &err), &err);
    if (err.code == MD_OK) {
        CHECK(om.ir_version == 3);
        CHECK(om.opset == 7);
        CHECK(om.n_nodes == 1 && strcmp(om.nodes[0].op_type, "Conv") == 0);
        CHECK(om.n_initializers == 2);
        const md_onnx_tensor *w = md_onnx_find_initializer(&om, "W");
        CHECK(w && w->ndim == 4 && w->dims[2] == 2 && w->numel == 4 && w->f32 &&
              w->f32[3] == 4.0f);
        const md_onnx_tensor *bt = md_onnx_find_initializer(&om, "B");
        CHECK(bt && bt->ndim == 1 && bt->f32 && bt->f32[0] == 0.5f);
        CHECK(om.n_inputs == 1 && om.inputs[0].ndim == 4 && om.inputs[0].dims[3] == 3);
        const md_onnx_attr *ks = md_onnx_node_attr(&om.nodes[0], "kernel_shape");
        CHECK(ks && ks->n_ints == 2 && ks->ints[1] == 2);
        md_onnx_graph *g = NULL;
        CHECK_OK(md_onnx_graph_build(&om, "tiny", 0, MD_GEMM_F32, &g, &err), &err);
        if (g) {
            float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
            const float *y = run_once(g, x);
            /* by hand: windows (1 2 4 5), (2 3 5 6), (4 5 7 8), (5 6 8 9) . (1 2 3 4) + 0.5 */
            CHECK_NEAR(y[0], 37.5, 1e-5);
            CHECK_NEAR(y[1], 47.5, 1e-5);
            CHECK_NEAR(y[2], 67.5, 1e-5);
            CHECK_NEAR(y[3], 77.5, 1e-5);
            CHECK(md_onnx_graph_get_info(g)->flop == 2.0 * 4 * 4);
            md_onnx_ws_free(last_ws);
        last_ws = NULL;
        md_onnx_graph_free(g);
        }
        md_onnx_free(&om);
    }
    /* Clip (opset 7 attributes) fused into the conv */
    buf mc = tiny_model(7, "Clip");
    err.code = MD_OK; /* the branch below reads it */
    CHECK_OK(md_onnx_parse(mc.d, mc.n, "clip", &om, &err), &err);
    if (err.code == MD_OK) {
        md_onnx_graph *g = NULL;
        CHECK_OK(md_onnx_graph_build(&om, "clip", 0, MD_GEMM_F32, &g, &err), &err);
        if (g) {
            float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
            const float *y = run_once(g, x);
            CHECK_NEAR(y[0], 37.5, 1e-5);
            CHECK_NEAR(y[1], 40.0, 1e-5);
            CHECK_NEAR(y[3], 40.0, 1e-5);
            md_onnx_ws_free(last_ws);
        last_ws = NULL;
        md_onnx_graph_free(g);
        }
        md_onnx_free(&om);
    }
    free(mc.d);
    /* Through the public API, with a Sigmoid after the conv: negative inputs. */
    buf m2 = tiny_model(7, "Sigmoid");
    char path[] = "/tmp/md_test_onnx_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char onnx_path[64];
    snprintf(onnx_path, sizeof onnx_path, "%s.onnx", path);
    CHECK(write_file(onnx_path, m2.d, m2.n));
    md_model *model = NULL;
    CHECK_OK(md_model_load(onnx_path, NULL, &model, &err), &err);
    if (model) {
        float x[9] = {-1, 0, 0, 0, 0, 0, 0, 0, 0};
        md_tensor in = {3, {1, 3, 3}, x}, out = {0};
        CHECK_OK(md_model_run_tensor(model, &in, &out, &err), &err);
        if (out.data) {
            CHECK(out.ndim == 4 && out.shape[2] == 2 && out.shape[3] == 2);
            /* conv = -1*1 + 0.5 = -0.5 at (0,0), 0.5 elsewhere */
            CHECK_NEAR(out.data[0], 1.0 / (1.0 + exp(0.5)), 1e-6);
            CHECK_NEAR(out.data[3], 1.0 / (1.0 + exp(-0.5)), 1e-6);
        }
        md_tensor_free(&out);
        md_tensor bad = {2, {3, 3}, x};
        CHECK(md_model_run_tensor(model, &bad, &out, &err) == MD_ERR_DATA);
        md_depth d = {0};
        uint8_t px[12] = {0};
        md_image img = {2, 2, px};
        CHECK(md_model_predict(model, &img, &d, &err) == MD_ERR_UNSUPPORTED);
        md_model_free(model);
    }
    unlink(onnx_path);
    unlink(path);
    free(m.d);
    free(m2.d);
}

static void test_errors(void)
{
    md_error err = {0};
    md_onnx_model om;
    md_onnx_graph *g = NULL;
    /* unsupported op named in the message */
    buf m = tiny_model(7, "Softmax");
    err.code = MD_OK; /* the branch below reads it */
    CHECK_OK(md_onnx_parse(m.d, m.n, "soft", &om, &err), &err);
    if (err.code == MD_OK) {
        md_status st = md_onnx_graph_build(&om, "soft", 0, MD_GEMM_F32, &g, &err);
        CHECK(st == MD_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(err.message, "Softmax") != NULL, "%s", err.message);
        md_onnx_free(&om);
    }
    free(m.d);
    /* unsupported opset */
    m = tiny_model(6, NULL);
    err.code = MD_OK; /* the branch below reads it */
    CHECK_OK(md_onnx_parse(m.d, m.n, "old", &om, &err), &err);
    if (err.code == MD_OK) {
        CHECK(md_onnx_graph_build(&om, "old", 0, MD_GEMM_F32, &g, &err) == MD_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(err.message, "opset 6") != NULL, "%s", err.message);
        md_onnx_free(&om);
    }
    /* every truncation of the hand-made model fails cleanly */
    int truncated_failures = 0;
    for (size_t cut = 0; cut < m.n; cut++) {
        md_status st = md_onnx_parse(m.d, cut, "cut", &om, &err);
        if (st != MD_OK)
            truncated_failures++;
        else
            md_onnx_free(&om);
    }
    /* cut == 0 .. : only cuts at top-level field boundaries before the graph
     * (no graph) also fail; a cut after the graph but inside opset_import fails
     * as truncated, exactly at its start leaves a model without opset. */
    CHECK_MSG(truncated_failures >= (int)m.n - 1, "%d of %zu", truncated_failures, m.n);
    /* a length that runs past the end */
    buf c = {0};
    put(&c, m.d, m.n);
    for (size_t i = 0; i + 1 < c.n; i++) {
        if (c.d[i] == (7 << 3 | 2)) { /* graph field tag: bump its length */
            c.d[i + 1] = (uint8_t)(c.d[i + 1] + 5);
            break;
        }
    }
    CHECK(md_onnx_parse(c.d, c.n, "flip", &om, &err) == MD_ERR_FORMAT);
    CHECK_MSG(strstr(err.message, "flip") != NULL, "%s", err.message);
    /* wire type 3 (group) is rejected */
    uint8_t group[] = {(1 << 3) | 3, 0};
    CHECK(md_onnx_parse(group, sizeof group, "grp", &om, &err) == MD_ERR_FORMAT);
    /* field number 0 is rejected */
    uint8_t zero[] = {0x00, 0x01};
    CHECK(md_onnx_parse(zero, sizeof zero, "zero", &om, &err) == MD_ERR_FORMAT);
    /* unsupported tensor data type named */
    buf bad = {0}, gr = {0}, t = {0};
    f_int(&t, 1, 2);
    f_int(&t, 2, 10); /* FLOAT16 */
    f_str(&t, 8, "half");
    f_bytes(&t, 9, "abcd", 4);
    f_msg(&gr, 5, &t);
    f_msg(&bad, 7, &gr);
    CHECK(md_onnx_parse(bad.d, bad.n, "f16", &om, &err) == MD_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.message, "FLOAT16") != NULL, "%s", err.message);
    free(bad.d);
    free(c.d);
    free(m.d);
}

static void test_real_model_corrupt(void)
{
    char path[512];
    shared_path(path, sizeof path, "models/fastdepth/fastdepth_7.onnx");
    uint8_t *data;
    size_t size;
    md_error err = {0};
    if (md_read_file(path, (size_t)1 << 30, &data, &size, &err) != MD_OK) {
        CHECK_MSG(0, "%s", err.message);
        return;
    }
    md_onnx_model om;
    size_t cuts[] = {1, 2, 7, 50, 1000, 100000, size / 3, size / 2, size - 10000, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        md_status st = md_onnx_parse(data, cuts[i], "cut", &om, &err);
        CHECK_MSG(st == MD_ERR_FORMAT, "cut at %zu -> %d", cuts[i], (int)st);
        if (st == MD_OK)
            md_onnx_free(&om);
    }
    /* random byte flips: any outcome but a crash; count how many load */
    uint8_t *copy = malloc(size);
    uint32_t rng = 12345;
    int loaded = 0;
    for (int trial = 0; trial < 40 && copy; trial++) {
        memcpy(copy, data, size);
        for (int k = 0; k < 4; k++) {
            rng = rng * 1664525u + 1013904223u;
            /* bias towards the graph structure at the start and end of the file */
            size_t pos = (trial & 1) ? rng % 4096 : size - 1 - rng % 8192;
            copy[pos] ^= (uint8_t)(1u << (rng >> 29));
        }
        if (md_onnx_parse(copy, size, "flip", &om, &err) == MD_OK) {
            md_onnx_graph *g = NULL;
            if (md_onnx_graph_build(&om, "flip", (size_t)256 << 20, MD_GEMM_F32, &g, &err) == MD_OK) {
                loaded++;
                md_onnx_ws_free(last_ws);
        last_ws = NULL;
        md_onnx_graph_free(g);
            }
            md_onnx_free(&om);
        }
    }
    fprintf(stderr, "  corrupted copies that still built: %d of 40\n", loaded);
    free(copy);
    free(data);
}

/* The FastDepth reference pair from ../shared: its image as the network's
 * NCHW input (in->data malloc'd) and ONNX Runtime's output for it; false,
 * with nothing to free, when either is missing or malformed. */
static bool load_reference(md_tensor *in, md_tensor *pred)
{
    char rpath[512], ppath[512];
    md_error err = {0};
    md_tensor rgb = {0};
    memset(in, 0, sizeof *in);
    memset(pred, 0, sizeof *pred);
    CHECK_OK(md_npy_load(shared_path(rpath, sizeof rpath, "models/fastdepth/rgb.npy"), &rgb, &err),
             &err);
    CHECK_OK(md_npy_load(shared_path(ppath, sizeof ppath, "models/fastdepth/pred.npy"), pred,
                         &err),
             &err);
    bool ok = rgb.data && pred->data && rgb.ndim == 3 && rgb.shape[2] == 3;
    if (ok) {
        /* HWC -> NCHW */
        int h = (int)rgb.shape[0], w = (int)rgb.shape[1];
        float *nchw = malloc(sizeof(float) * 3 * (size_t)h * w);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < h * w; i++)
                nchw[(size_t)c * h * w + i] = rgb.data[(size_t)i * 3 + c];
        md_tensor t = {4, {1, 3, h, w}, nchw};
        *in = t;
    } else {
        md_tensor_free(pred);
    }
    md_tensor_free(&rgb);
    return ok;
}

static void test_reference_output(void)
{
    md_error err = {0};
    md_model_options opts = {0};
    opts.threads = 1;
    md_model *model = load_fastdepth(&opts);
    if (!model)
        return;
    const char *desc = md_model_describe(model);
    fprintf(stderr, "  %s, %.3f GFLOP\n", desc, md_model_gflop(model, 640, 480));
    CHECK(strstr(desc, "38 conv") != NULL);
    CHECK(strstr(desc, "1.38 M params") != NULL);
    md_tensor in, pred;
    if (load_reference(&in, &pred)) {
        md_tensor out = {0};
        CHECK_OK(md_model_run_tensor(model, &in, &out, &err), &err);
        if (out.data) {
            CHECK(md_tensor_numel(&out) == md_tensor_numel(&pred));
            double maxd = 0;
            for (size_t i = 0; i < md_tensor_numel(&pred); i++) {
                double d = fabs((double)out.data[i] - pred.data[i]);
                maxd = d > maxd ? d : maxd;
            }
            fprintf(stderr, "  max |ours - pred.npy| = %.3g\n", maxd);
            CHECK_MSG(maxd <= 1e-4, "max abs diff %g", maxd);
            /* timing, for the report */
            int runs = getenv("MD_ONNX_BENCH") ? 100 : 5;
            for (int threads = 1; threads <= 2; threads++) {
                opts.threads = threads;
                md_model *mt = load_fastdepth(&opts);
                if (!mt)
                    break;
                double t[100];
                md_tensor o2 = {0};
                md_model_run_tensor(mt, &in, &o2, &err);
                md_tensor_free(&o2);
                for (int r = 0; r < runs; r++) {
                    double t0 = md_now_seconds();
                    md_model_run_tensor(mt, &in, &o2, &err);
                    t[r] = md_now_seconds() - t0;
                    md_tensor_free(&o2);
                }
                for (int i = 1; i < runs; i++)
                    for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
                        double s = t[j];
                        t[j] = t[j - 1];
                        t[j - 1] = s;
                    }
                fprintf(stderr, "  run_tensor median %.2f ms over %d runs, %d thread(s)\n",
                        t[runs / 2] * 1e3, runs, threads);
                md_model_free(mt);
            }
        }
        md_tensor_free(&out);
        md_tensor_free(&in);
        md_tensor_free(&pred);
    }
    md_model_free(model);
}

/* FastDepth's encoder features: the 28 ops of the MobileNet encoder up to its
 * 512x7x7 bottleneck, whose channel counts (16, 16, 56, 56, 88, 88, 120, 120,
 * 144, 144, 256, 256, 408, 408, 376, 376, 272, 272, 288, 288, 296, 296, 328,
 * 328, 480, 480, 512, 512, read off the graph by hand) sum to 7,280. Every op
 * output of this encoder ends in a ReLU, so every mean is >= 0. */
static void test_encoder_features(void)
{
    md_error err = {0};
    md_model *model = load_fastdepth(NULL);
    if (!model)
        return;
    static const int channels[28] = {16,  16,  56,  56,  88,  88,  120, 120, 144, 144,
                                     256, 256, 408, 408, 376, 376, 272, 272, 288, 288,
                                     296, 296, 328, 328, 480, 480, 512, 512};
    size_t want = 0;
    for (int i = 0; i < 28; i++)
        want += (size_t)channels[i];
    uint64_t sig = 0;
    CHECK(md_model_features(model, &sig) == want && want == 7280 && sig != 0);
    md_image img = {64, 48, malloc(64 * 48 * 3)};
    for (int i = 0; i < 64 * 48 * 3; i++)
        img.pixels[i] = (uint8_t)(i * 7 % 251);
    md_depth d1 = {0}, d2 = {0};
    md_features f1 = {0}, f2 = {0};
    CHECK_OK(md_model_predict_ex(model, &img, &d1, &f1, &err), &err);
    CHECK_OK(md_model_predict_ex(model, &img, &d2, &f2, &err), &err);
    CHECK(f1.n == want && f1.signature == sig);
    int nonneg = 1, same = f1.n == f2.n;
    for (size_t i = 0; i < f1.n && same; i++) {
        nonneg &= f1.values[i] >= 0 && isfinite(f1.values[i]);
        same &= f1.values[i] == f2.values[i];
    }
    CHECK(nonneg && same);
    /* the features ride along: the depth is what md_model_predict gives */
    md_depth d3 = {0};
    CHECK_OK(md_model_predict(model, &img, &d3, &err), &err);
    CHECK(d3.data && memcmp(d1.data, d3.data, sizeof(float) * 64 * 48) == 0);
    md_features_free(&f1);
    md_features_free(&f2);
    md_depth_free(&d1);
    md_depth_free(&d2);
    md_depth_free(&d3);
    free(img.pixels);
    md_model_free(model);
}

/* --precision bf16 on FastDepth: the convolutions' products in bf16 (weights
 * rounded once, activations as read, float32 sums), depthwise layers and the
 * rest in float32. Against the float32 reference output (pred.npy, from
 * ONNX Runtime): close, not equal (so bf16 really ran), and on three NYU
 * images AbsRel within 0.002 of float32's. Measured (Zen 5, AVX512_BF16):
 * max 0.022 m, mean 0.12 % of the depth; AbsRel moved by at most 0.0004;
 * the tolerances leave about twice that. */
static void test_bf16(void)
{
    md_error err = {0};
    md_model_options opts = {0};
    opts.precision = MD_PRECISION_BF16;
    md_model *m16 = load_fastdepth(&opts);
    opts.precision = MD_PRECISION_FP32;
    md_model *m32 = load_fastdepth(&opts);
    if (!m16 || !m32) {
        md_model_free(m16);
        md_model_free(m32);
        return;
    }
    CHECK(md_model_precision(m16) == MD_PRECISION_BF16 &&
          md_model_precision(m32) == MD_PRECISION_FP32);
    CHECK(strstr(md_model_describe(m16), "bf16") && !strstr(md_model_describe(m32), "bf16"));
    /* the depthwise layers' products stay float32: about 12 % of the 0.73 GFLOP */
    double total = md_model_gflop(m16, 640, 480), part = md_model_gflop_bf16(m16, 640, 480);
    CHECK_MSG(part > 0.8 * total && part < 0.95 * total, "bf16 %g of %g GFLOP", part, total);
    CHECK(md_model_gflop_bf16(m32, 640, 480) == 0.0 && md_model_gflop(m32, 640, 480) == total);
    md_tensor in, pred;
    if (load_reference(&in, &pred)) {
        md_tensor out = {0};
        CHECK_OK(md_model_run_tensor(m16, &in, &out, &err), &err);
        if (out.data && md_tensor_numel(&out) == md_tensor_numel(&pred)) {
            double maxd = 0, rel = 0;
            size_t n = md_tensor_numel(&pred);
            for (size_t i = 0; i < n; i++) {
                double d = fabs((double)out.data[i] - pred.data[i]);
                maxd = d > maxd ? d : maxd;
                rel += d / fabs((double)pred.data[i]);
            }
            rel /= (double)n;
            fprintf(stderr, "  bf16: max |ours - pred.npy| = %.3g m, mean relative %.3g\n", maxd,
                    rel);
            CHECK_MSG(maxd > 0 && maxd <= 0.05 && rel <= 0.003, "max %g, mean relative %g", maxd,
                      rel);
        }
        md_tensor_free(&out);
        md_tensor_free(&in);
        md_tensor_free(&pred);
    }
    const char *ids[] = {"00000", "00050", "00100"};
    for (int k = 0; k < 3; k++) {
        char rel[128], ipath[512], dpath[512];
        snprintf(rel, sizeof rel, "data/nyu_demo_metric3d/rgb/rgb_%s.jpg", ids[k]);
        shared_path(ipath, sizeof ipath, rel);
        snprintf(rel, sizeof rel, "data/nyu_demo_metric3d/depth/sync_depth_%s.png", ids[k]);
        shared_path(dpath, sizeof dpath, rel);
        md_image img = {0};
        md_depth gt = {0}, p16 = {0}, p32 = {0};
        md_depth_read_options ro = {1000.0, MD_DEPTH_PLAIN, 0};
        if (md_image_load(ipath, &img, &err) != MD_OK || md_depth_load(dpath, &ro, &gt, &err)) {
            md_image_free(&img);
            continue;
        }
        CHECK_OK(md_model_predict(m16, &img, &p16, &err), &err);
        CHECK_OK(md_model_predict(m32, &img, &p32, &err), &err);
        if (p16.data && p32.data && p16.width == gt.width && p16.height == gt.height) {
            double a16 = 0, a32 = 0;
            size_t n = 0;
            for (size_t i = 0; i < (size_t)gt.width * gt.height; i++) {
                float g = gt.data[i];
                if (!p32.mask[i] || !(g > 1e-3f && g < 10.0f))
                    continue;
                a16 += fabs((double)p16.data[i] - g) / g;
                a32 += fabs((double)p32.data[i] - g) / g;
                n++;
            }
            a16 /= (double)(n ? n : 1);
            a32 /= (double)(n ? n : 1);
            fprintf(stderr, "  NYU %s AbsRel: bf16 %.4f, fp32 %.4f\n", ids[k], a16, a32);
            CHECK_MSG(n > 0 && fabs(a16 - a32) <= 0.002, "AbsRel bf16 %.4f fp32 %.4f", a16, a32);
        }
        md_image_free(&img);
        md_depth_free(&gt);
        md_depth_free(&p16);
        md_depth_free(&p32);
    }
    md_model_free(m16);
    md_model_free(m32);
}

static void test_nyu_predict(void)
{
    char ipath[512], dpath[512];
    md_error err = {0};
    md_model *model = load_fastdepth(NULL);
    if (!model)
        return;
    const char *ids[] = {"00000", "00050", "00100"};
    double sum = 0;
    int count = 0;
    for (int k = 0; k < 3; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "data/nyu_demo_metric3d/rgb/rgb_%s.jpg", ids[k]);
        shared_path(ipath, sizeof ipath, rel);
        snprintf(rel, sizeof rel, "data/nyu_demo_metric3d/depth/sync_depth_%s.png", ids[k]);
        shared_path(dpath, sizeof dpath, rel);
        md_image img = {0};
        md_depth gt = {0}, pred = {0};
        md_depth_read_options ro = {1000.0, MD_DEPTH_PLAIN, 0};
        if (md_image_load(ipath, &img, &err) != MD_OK || md_depth_load(dpath, &ro, &gt, &err)) {
            CHECK_MSG(k > 0, "%s", err.message); /* 00000 must exist */
            md_image_free(&img);
            continue;
        }
        CHECK_OK(md_model_predict(model, &img, &pred, &err), &err);
        if (pred.data && pred.width == gt.width && pred.height == gt.height) {
            /* AbsRel over gt in (1e-3, 10) and inside the crop mask, by hand. */
            double acc = 0;
            size_t n = 0, in_mask = 0;
            for (size_t i = 0; i < (size_t)gt.width * gt.height; i++) {
                in_mask += pred.mask[i] != 0;
                float g = gt.data[i], p = pred.data[i];
                if (!pred.mask[i] || !(g > 1e-3f && g < 10.0f))
                    continue;
                acc += fabs((double)p - g) / g;
                n++;
            }
            double absrel = n ? acc / (double)n : 1e9;
            fprintf(stderr, "  NYU %s: AbsRel %.4f over %zu pixels (%zu in the crop)\n", ids[k],
                    absrel, n, in_mask);
            /* By hand: 640x480 -> 333x250, crop 304x228 at column 14, row 11
             * (round-half-even of 14.5 and 11). A pixel is in when its centre
             * maps inside: 14 <= (x + .5) * 333/640 < 318 -> x in [27, 610];
             * 11 <= (y + .5) * 250/480 < 239 -> y in [21, 458]. */
            CHECK_MSG(in_mask == (size_t)584 * 438, "%zu pixels in the mask", in_mask);
            CHECK(pred.mask[21 * 640 + 27] == 1 && pred.mask[458 * 640 + 610] == 1);
            CHECK(pred.mask[20 * 640 + 27] == 0 && pred.mask[21 * 640 + 26] == 0);
            CHECK(pred.mask[459 * 640 + 610] == 0 && pred.mask[458 * 640 + 611] == 0);
            /* outside the crop: edge extension, still a positive depth */
            CHECK(pred.data[0] > 0.0f && pred.data[0] == pred.data[1]);
            CHECK_MSG(absrel > 0.02 && absrel < 0.2, "AbsRel %.4f", absrel);
            sum += absrel;
            count++;
        }
        md_image_free(&img);
        md_depth_free(&gt);
        md_depth_free(&pred);
    }
    if (count == 3) {
        /* shared/README.md gives 0.094 for a bilinear preprocessing; FastDepth's
         * own (nearest) preprocessing measured 0.086 here. */
        fprintf(stderr, "  NYU mean AbsRel %.4f (README, bilinear resizes: 0.094)\n", sum / 3);
        CHECK_MSG(sum / 3 > 0.06 && sum / 3 < 0.11, "mean AbsRel %.4f", sum / 3);
    }
    md_model_free(model);
}

int main(void)
{
    RUN_TEST(test_varints);
    RUN_TEST(test_tiny_model);
    RUN_TEST(test_errors);
    RUN_TEST(test_ops_by_hand);
    RUN_TEST(test_graph_rewrites);
    RUN_TEST(test_shape_validation);
    RUN_TEST(test_crash_files);
    RUN_TEST(test_predict_memory);
    char probe[512];
    if (access(shared_path(probe, sizeof probe, "models/fastdepth/fastdepth_7.onnx"), R_OK) != 0) {
        fprintf(stderr, "shared data absent (%s): skipping the FastDepth tests\n", probe);
        check_finish();
        return check_failed ? 1 : 77;
    }
    RUN_TEST(test_real_model_corrupt);
    RUN_TEST(test_reference_output);
    RUN_TEST(test_nyu_predict);
    RUN_TEST(test_bf16);
    RUN_TEST(test_encoder_features);
    return check_finish();
}
