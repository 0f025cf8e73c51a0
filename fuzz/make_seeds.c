/* Writes the seed corpora of the fuzz harnesses, all made here from the
 * published formats with the tests' own encoders (tests/writers.h): one
 * small ONNX graph per supported operator (plus a few chains that exercise
 * the builder's fusions and rewrites), safetensors and .pth files, Netpbm,
 * PFM and .npy files, pair lists, and the reproducers of every crash fixed
 * so far. Seeded, the ONNX harness starts from graphs that build and run
 * instead of from protobuf noise.
 *
 *   clang -Itests fuzz/make_seeds.c -lz -o make_seeds && ./make_seeds OUTDIR
 *
 * creates OUTDIR/corpus-{onnx,weights,io,lists} (scripts/fuzz does this). */
#include "writers.h"

#include <errno.h>
#include <sys/stat.h>

static char out_dir[512];
static int n_written;

static void save(const char *corpus, const char *name, const void *data, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/corpus-%s", out_dir, corpus);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/corpus-%s/seed-%s", out_dir, corpus, name);
    if (!write_file(path, data, n)) {
        perror(path);
        exit(1);
    }
    n_written++;
}

static void save_buf(const char *corpus, const char *name, buf *b)
{
    save(corpus, name, b->d, b->n);
    free(b->d);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------- ONNX */

static const float ramp[64] = {1,  -2, 3,  -4, 5,  -6, 7,  -8, 9,  -1, 2,  -3, 4,  -5, 6,  -7,
                               8,  -9, 1,  2,  3,  4,  5,  6,  7,  8,  9,  1,  2,  3,  4,  5,
                               .5, .25, 2, 1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,
                               1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1};
static const float pos[8] = {1, 2, 0.5f, 0.25f, 1, 3, 2, 1};

static void onnx(const char *name, buf m)
{
    char file[128];
    snprintf(file, sizeof file, "%s.onnx", name);
    save_buf("onnx", file, &m);
}

/* A node "op" reading inputs, writing output, with encoded attributes. */
static void node(buf *g, const char *op, const char *const *in, int n_in, const char *out,
                 buf *attrs)
{
    buf nd = {0};
    for (int i = 0; i < n_in; i++)
        f_str(&nd, 1, in[i]);
    f_str(&nd, 2, out);
    f_str(&nd, 3, out); /* node name = its output */
    f_str(&nd, 4, op);
    if (attrs && attrs->n) {
        put(&nd, attrs->d, attrs->n);
        free(attrs->d);
        memset(attrs, 0, sizeof *attrs);
    }
    f_msg(g, 1, &nd);
}

/* A float initializer with packed raw_data. */
static void init(buf *g, const char *name, const int64_t *dims, int nd, const float *v)
{
    buf t = {0}, packed = {0};
    for (int d = 0; d < nd; d++)
        varint(&packed, (uint64_t)dims[d]);
    if (packed.n)
        f_bytes(&t, 1, packed.d, packed.n);
    free(packed.d);
    f_int(&t, 2, 1);
    f_str(&t, 8, name);
    f_bytes(&t, 9, v, sizeof(float) * dims_numel(nd, dims));
    f_msg(g, 5, &t);
}

static buf model(buf *g, int64_t opset, const int64_t *xdims, int xnd)
{
    buf m = {0}, ops = {0};
    value_info(g, 11, "X", xdims, xnd);
    value_info(g, 12, "Y", NULL, 0);
    f_int(&m, 1, 7);
    f_msg(&m, 7, g);
    f_str(&ops, 1, "");
    f_int(&ops, 2, opset);
    f_msg(&m, 8, &ops);
    return m;
}

static void onnx_seeds(void)
{
    const char *X[] = {"X"}, *XW[] = {"X", "W"}, *XWB[] = {"X", "W", "B"}, *XK[] = {"X", "K"};
    int64_t d1[4] = {1, 1, 4, 4}, d2[4] = {1, 2, 4, 4}, v4[2] = {1, 4};
    int64_t k2[2] = {2, 2}, k3[2] = {3, 3}, p1[4] = {1, 1, 1, 1}, s2[2] = {2, 2};
    buf at = {0};

    /* Conv: 3x3 pad 1 with bias; strided and dilated; depthwise; pointwise; grouped */
    tinit w3[2] = {{"W", 4, {1, 1, 3, 3}, ramp, NULL}, {"B", 1, {1}, pos, NULL}};
    attr_ints(&at, "pads", p1, 4);
    onnx("conv3x3", one_node(7, "Conv", XWB, 3, &at, w3, 2, d1, 4));
    attr_ints(&at, "strides", s2, 2);
    attr_ints(&at, "dilations", s2, 2);
    attr_ints(&at, "pads", p1, 4);
    onnx("conv-stride-dilation", one_node(7, "Conv", XW, 2, &at, w3, 1, d1, 4));
    tinit wd = {"W", 4, {2, 1, 3, 3}, ramp, NULL};
    a_int(&at, "group", 2);
    a_str(&at, "auto_pad", "SAME_UPPER");
    onnx("conv-depthwise", one_node(7, "Conv", XW, 2, &at, &wd, 1, d2, 4));
    tinit wp = {"W", 4, {3, 2, 1, 1}, ramp, NULL};
    onnx("conv-pointwise", one_node(7, "Conv", XW, 2, NULL, &wp, 1, d2, 4));
    tinit wg = {"W", 4, {4, 1, 2, 2}, ramp, NULL};
    a_int(&at, "group", 2);
    onnx("conv-group", one_node(7, "Conv", XW, 2, &at, &wg, 1, d2, 4));

    tinit bn[4] = {{"g", 1, {2}, pos, NULL},
                   {"b", 1, {2}, pos + 2, NULL},
                   {"m", 1, {2}, pos + 4, NULL},
                   {"v", 1, {2}, pos, NULL}};
    a_float(&at, "epsilon", 1e-3f);
    onnx("batchnorm", one_node(7, "BatchNormalization", (const char *[]){"X", "g", "b", "m", "v"},
                               5, &at, bn, 4, d2, 4));

    static const char *const unary[] = {"Relu", "Sigmoid", "Identity", "Dropout", "Flatten",
                                        "GlobalAveragePool", "GlobalMaxPool", "Transpose"};
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++)
        onnx(unary[i], one_node(7, unary[i], X, 1, NULL, NULL, 0, d2, 4));
    a_float(&at, "min", 0.0f);
    a_float(&at, "max", 6.0f);
    onnx("clip7", one_node(7, "Clip", X, 1, &at, NULL, 0, v4, 2));
    tinit lohi[2] = {{"lo", 0, {0}, pos + 3, NULL}, {"hi", 0, {0}, pos + 1, NULL}};
    onnx("clip11", one_node(11, "Clip", (const char *[]){"X", "lo", "hi"}, 3, NULL, lohi, 2, v4, 2));

    static const char *const binary[] = {"Add", "Sub", "Mul", "Div"};
    tinit chan = {"K", 3, {2, 1, 1}, pos, NULL}, scalar = {"K", 0, {0}, pos + 1, NULL};
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s-channel", binary[i]);
        onnx(name, one_node(7, binary[i], XK, 2, NULL, &chan, 1, d2, 4));
        snprintf(name, sizeof name, "%s-scalar", binary[i]);
        onnx(name, one_node(7, binary[i], (const char *[]){"K", "X"}, 2, NULL, &scalar, 1, v4, 2));
    }
    tinit cat = {"K", 4, {1, 1, 4, 4}, ramp, NULL};
    a_int(&at, "axis", 1);
    onnx("concat", one_node(7, "Concat", XK, 2, &at, &cat, 1, d1, 4));

    attr_ints(&at, "kernel_shape", k2, 2);
    attr_ints(&at, "strides", s2, 2);
    onnx("maxpool", one_node(7, "MaxPool", X, 1, &at, NULL, 0, d2, 4));
    attr_ints(&at, "kernel_shape", k3, 2);
    attr_ints(&at, "pads", p1, 4);
    a_int(&at, "ceil_mode", 1);
    a_int(&at, "count_include_pad", 1);
    onnx("avgpool", one_node(10, "AveragePool", X, 1, &at, NULL, 0, d2, 4));

    float up[4] = {1, 1, 2, 2};
    a_floats(&at, "scales", up, 4);
    onnx("upsample7", one_node(7, "Upsample", X, 1, &at, NULL, 0, d1, 4));
    tinit sc = {"S", 1, {4}, up, NULL};
    a_str(&at, "mode", "linear");
    onnx("upsample9", one_node(9, "Upsample", (const char *[]){"X", "S"}, 2, &at, &sc, 1, d1, 4));
    onnx("resize10", one_node(10, "Resize", (const char *[]){"X", "S"}, 2, NULL, &sc, 1, d1, 4));
    a_str(&at, "mode", "linear");
    a_str(&at, "coordinate_transformation_mode", "pytorch_half_pixel");
    onnx("resize11", one_node(11, "Resize", (const char *[]){"X", "", "S"}, 3, &at, &sc, 1, d1, 4));
    int64_t sizes[4] = {1, 1, 3, 7};
    tinit sz = {"Z", 1, {4}, NULL, sizes};
    a_str(&at, "nearest_mode", "ceil");
    a_str(&at, "coordinate_transformation_mode", "align_corners");
    onnx("resize13", one_node(13, "Resize", (const char *[]){"X", "", "", "Z"}, 4, &at, &sz, 1, d1, 4));

    tinit gm[2] = {{"W", 2, {4, 3}, ramp, NULL}, {"C", 1, {3}, pos, NULL}};
    a_float(&at, "alpha", 0.5f);
    a_float(&at, "beta", 2.0f);
    onnx("gemm", one_node(9, "Gemm", (const char *[]){"X", "W", "C"}, 3, &at, gm, 2, v4, 2));
    tinit gt = {"W", 2, {3, 4}, ramp, NULL};
    a_int(&at, "transB", 1);
    onnx("gemm-transB", one_node(9, "Gemm", XW, 2, &at, &gt, 1, v4, 2));
    onnx("matmul", one_node(9, "MatMul", XW, 2, NULL, gm, 1, (int64_t[]){1, 2, 4}, 3));
    int64_t shp[3] = {0, -1, 4};
    tinit rs = {"S", 1, {3}, NULL, shp};
    onnx("reshape", one_node(9, "Reshape", (const char *[]){"X", "S"}, 2, NULL, &rs, 1, d2, 4));
    int64_t perm[4] = {0, 2, 3, 1};
    attr_ints(&at, "perm", perm, 4);
    onnx("transpose-perm", one_node(9, "Transpose", X, 1, &at, NULL, 0, d2, 4));

    /* Constant node feeding an Add */
    {
        buf g = {0}, a = {0}, t = {0};
        f_int(&t, 1, 1);        /* TensorProto dims [1] */
        f_int(&t, 2, 1);        /* FLOAT */
        f_bytes(&t, 9, pos, 4); /* raw_data */
        f_str(&a, 1, "value");
        f_msg(&a, 5, &t); /* AttributeProto.t */
        f_int(&a, 20, 4); /* TENSOR */
        buf attrs = {0};
        f_msg(&attrs, 5, &a);
        node(&g, "Constant", NULL, 0, "C", &attrs);
        node(&g, "Add", (const char *[]){"X", "C"}, 2, "Y", NULL);
        onnx("constant", model(&g, 9, v4, 2));
    }
    /* Chains the builder rewrites: Conv+BN+Relu folding; a nearest Resize
     * followed by a pointwise Conv (moved before it); Add(Resize(x), s) fused */
    {
        buf g = {0}, a = {0};
        int64_t w1[4] = {2, 1, 3, 3}, w2[4] = {1, 2, 1, 1};
        attr_ints(&a, "pads", p1, 4);
        node(&g, "Conv", (const char *[]){"X", "W1", "B1"}, 3, "c1", &a);
        node(&g, "BatchNormalization", (const char *[]){"c1", "g", "b", "m", "v"}, 5, "n1", NULL);
        node(&g, "Relu", (const char *[]){"n1"}, 1, "r1", NULL);
        a_floats(&a, "scales", up, 4);
        node(&g, "Upsample", (const char *[]){"r1"}, 1, "u1", &a);
        node(&g, "Conv", (const char *[]){"u1", "W2"}, 2, "c2", NULL);
        a_floats(&a, "scales", up, 4);
        node(&g, "Upsample", (const char *[]){"X"}, 1, "ux", &a);
        node(&g, "Add", (const char *[]){"c2", "ux"}, 2, "Y", NULL);
        init(&g, "W1", w1, 4, ramp);
        init(&g, "B1", (int64_t[]){2}, 1, pos);
        init(&g, "g", (int64_t[]){2}, 1, pos);
        init(&g, "b", (int64_t[]){2}, 1, pos + 2);
        init(&g, "m", (int64_t[]){2}, 1, pos + 4);
        init(&g, "v", (int64_t[]){2}, 1, pos);
        init(&g, "W2", w2, 4, ramp);
        onnx("chain-fusions", model(&g, 7, d1, 4));
    }
    /* Crash reproducers: an empty constant broadcast against size 1 (the
     * output was sized 1); MatMul and Gemm constants with an inner size of 0
     * (division by zero at load); a pool with a window of padding only */
    tinit k0 = {"K", 1, {0}, ramp, NULL}, k20 = {"K", 2, {2, 0}, ramp, NULL};
    onnx("crash-add-empty", one_node(7, "Add", XK, 2, NULL, &k0, 1, (int64_t[]){1}, 1));
    onnx("crash-matmul-empty",
         one_node(9, "MatMul", (const char *[]){"K", "X"}, 2, NULL, &k20, 1, (int64_t[]){1, 1}, 2));
    onnx("crash-gemm-empty",
         one_node(9, "Gemm", (const char *[]){"K", "X"}, 2, NULL, &k20, 1, (int64_t[]){1, 1}, 2));
    attr_ints(&at, "kernel_shape", k2, 2);
    attr_ints(&at, "pads", (int64_t[]){2, 0, 0, 0}, 4);
    onnx("crash-pool-padding", one_node(7, "AveragePool", X, 1, &at, NULL, 0, d1, 4));
}

/* ------------------------------------------------------------- weights */

static void weights_seeds(void)
{
    uint8_t data[32];
    float f[4] = {1.0f, -2.5f, 3.25f, 1e-3f};
    uint16_t h[3] = {0x3c00, 0xc000, 0x0001}, bf[2] = {0x3f80, 0xc140};
    memcpy(data, f, 16);
    memcpy(data + 16, h, 6);
    memcpy(data + 22, bf, 4);
    memset(data + 26, 0, 6);
    buf b = safetensors("{\"__metadata__\":{\"format\":\"pt\",\"arch\":\"compact\"},"
                        "\"a.w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                        "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                        "\"b\\u0041\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[22,26]},"
                        "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[26,26]}}",
                        data, 26);
    save_buf("weights", "mixed.safetensors", &b);
    b = safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                    data, 12);
    save_buf("weights", "crash-overlap.safetensors", &b);

    float st[6] = {0, 1, 2, 3, 4, 5};
    buf pk = state_dict_pickle("enc.w", NULL, 2);
    save("weights", "state-dict.pkl", pk.d, pk.n);
    b = make_pth(&pk, st, 6);
    save_buf("weights", "stored.pth", &b);
    zip_item defl[3] = {{"m/data.pkl", pk.d, pk.n, true},
                        {"m/byteorder", (const uint8_t *)"little", 6, false},
                        {"m/data/0", (const uint8_t *)st, sizeof st, true}};
    b = make_zip(defl, 3);
    save_buf("weights", "deflated.pth", &b);
    free(pk.d);
    /* stride 0: 46341 x 46340 floats from a 24-byte storage */
    pk = state_dict_pickle_shaped("w", NULL, 46341, 46340, 0, 0);
    b = make_pth(&pk, st, 6);
    save_buf("weights", "crash-stride0.pth", &b);
    free(pk.d);
    /* one value per opcode, deflated: the budget stops it */
    buf bomb = {0};
    put_str(&bomb, "\x80\x02");
    for (int i = 0; i < 4096; i++)
        put_str(&bomb, "N0");
    put_str(&bomb, "]2a2a2a}.");
    zip_item bz[1] = {{"archive/data.pkl", bomb.d, bomb.n, true}};
    b = make_zip(bz, 1);
    save_buf("weights", "crash-values.pth", &b);
    free(bomb.d);
}

/* ------------------------------------------------------------ io, lists */

static void io_seeds(void)
{
    const char pgm16[] = "P5\n3 2\n1000\n\x01\xf4\x03\xe8\x07\xd0\x00\x00\x00\x01\xff\xff";
    save("io", "depth16.pgm", pgm16, sizeof pgm16 - 1);
    const char ppm[] = "P6\n# comment\n2 1\n255\n\x10\x20\x30\xff\x00\x7f";
    save("io", "rgb.ppm", ppm, sizeof ppm - 1);
    buf pfm = {0};
    put_str(&pfm, "Pf\n2 2\n-1.0\n");
    float fv[4] = {1.5f, 0.0f, -1.0f, 1e30f};
    put(&pfm, fv, sizeof fv);
    save_buf("io", "depth.pfm", &pfm);
    buf npy = {0};
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    size_t total = (10 + strlen(dict) + 1 + 63) / 64 * 64;
    put(&npy, "\x93NUMPY\x01\x00", 8);
    put_u16(&npy, (unsigned)(total - 10));
    put_str(&npy, dict);
    while (npy.n < total - 1)
        put_str(&npy, " ");
    put_str(&npy, "\n");
    float nv[6] = {1, 2, 3, 0, -1, 0.5f};
    put(&npy, nv, sizeof nv);
    save_buf("io", "depth.npy", &npy);
    const char huge[] = "P5\n16384 16384\n65535\n";
    save("io", "huge.pgm", huge, sizeof huge - 1);

    const char *lists[][2] = {
        {"plain.txt", "a.png a_depth.png\nsub/b.jpg sub/b.png 256\n"},
        {"intrinsics.txt", "# c\nx.jpg y.png sun 500 500 320 240\n/abs/c.png /abs/d.png 5000\r\n"},
        {"bom.txt", "\xEF\xBB\xBF" "a.png b.png 1000\n"},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        save("lists", lists[i][0], lists[i][1], strlen(lists[i][1]));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds OUTDIR\n");
        return 2;
    }
    snprintf(out_dir, sizeof out_dir, "%s", argv[1]);
    unsetenv("MD_ONNX_SEED_DIR");
    onnx_seeds();
    weights_seeds();
    io_seeds();
    printf("make_seeds: %d seed files in %s/corpus-*\n", n_written, out_dir);
    return 0;
}
