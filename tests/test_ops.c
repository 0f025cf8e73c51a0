/* The shared kernels against brute force in double: the GEMM engine (every
 * operand kind, transposes, epilogue, K blocking, edge tiles, every kernel
 * family the CPU runs, any thread count giving the same bits) and the
 * convolution driver (random shapes, strides, dilations, asymmetric pads,
 * groups, depthwise; ReLU'd and upsampled sources, residuals, clamps, bands
 * handed to a callback). */
#include "check.h"
#include "base/pool.h"
#include "ops/cnn_ops.h"
#include "ops/cpu.h"
#include "ops/dvec.h"
#include "ops/gemm.h"
#include "ops/tensor_ops.h"
#include "ops/transformer_ops.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform(void) /* [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ull << 52) - 1.0;
}
static int randint(int lo, int hi) { return lo + (int)((uniform() + 1.0) * 0.5 * (hi - lo + 1)) % (hi - lo + 1); }

static float *rand_floats(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)uniform();
    return p;
}

/* ------------------------------------------------------------ GEMM */

/* op(A)[i][k] for A stored M x K (or K x M when trans) with row stride ld. */
static double at(const float *a, size_t ld, bool trans, int r, int c)
{
    return trans ? a[(size_t)c * ld + r] : a[(size_t)r * ld + c];
}

static double bf(double v) /* rounded to bfloat16 */
{
    return md_bf16_to_f32(md_bf16_from_f32((float)v));
}

typedef struct {
    int M, N, K;
    bool ta, tb;
    int a_kind, b_kind; /* md_operand_kind */
    float alpha, beta;
    bool bias_row, bias_col, row_scale, clamp, add, gelu, out16;
} gemm_case;

/* Against sums in double of the operands as the arithmetic sees them: for
 * bf16, each operand value rounded to bf16 (alpha folded in first when it
 * goes into a raw operand). */
static void check_gemm(const gemm_case *g, md_gemm_isa isa, md_threadpool *pool)
{
    int M = g->M, N = g->N, K = g->K;
    md_gemm_type type = md_gemm_isa_type(isa);
    bool bf16 = type == MD_GEMM_BF16;
    size_t lda = g->ta ? (size_t)M : (size_t)K, ldb = g->tb ? (size_t)K : (size_t)N;
    float *A = rand_floats((size_t)M * K), *B = rand_floats((size_t)K * N);
    float *C = rand_floats((size_t)M * N), *C0 = malloc(sizeof(float) * ((size_t)M * N + 1));
    memcpy(C0, C, sizeof(float) * (size_t)M * N);
    float *br = rand_floats((size_t)M), *bc = rand_floats((size_t)N), *rs = rand_floats((size_t)M);
    float *ad = rand_floats((size_t)M * N);
    md_gemm_packed pa = {0}, pb = {0};
    md_gemm_operand oa = md_gemm_raw(A, lda, g->ta), ob = md_gemm_raw(B, ldb, g->tb);
    void *direct_a = NULL;
    float *direct_b = NULL;
    int a_kind = g->a_kind;
    if (a_kind == MD_OPERAND_PACKED) {
        CHECK(md_gemm_pack_a(&pa, type, A, lda, g->ta, M, K));
        oa = md_gemm_prepacked(&pa);
    } else if (a_kind == MD_OPERAND_DIRECT) {
        /* row-major copy; bf16 rows padded to an even length with a zero */
        size_t ld = bf16 ? (size_t)(K + 2) & ~(size_t)1 : (size_t)K + 3;
        direct_a = calloc((size_t)M * ld + 1, bf16 ? 2 : 4);
        for (int i = 0; i < M; i++)
            for (int k = 0; k < K; k++) {
                float v = (float)at(A, lda, g->ta, i, k);
                if (bf16)
                    ((uint16_t *)direct_a)[(size_t)i * ld + k] = md_bf16_from_f32(v);
                else
                    ((float *)direct_a)[(size_t)i * ld + k] = v;
            }
        oa = md_gemm_direct(direct_a, ld);
    }
    if (g->b_kind == MD_OPERAND_PACKED) {
        CHECK(md_gemm_pack_b(&pb, type, B, ldb, g->tb, K, N));
        ob = md_gemm_prepacked(&pb);
    } else if (g->b_kind == MD_OPERAND_DIRECT) {
        size_t ld = (size_t)N + 5;
        direct_b = calloc((size_t)K * ld + 1, sizeof(float));
        for (int k = 0; k < K; k++)
            for (int j = 0; j < N; j++)
                direct_b[(size_t)k * ld + j] = (float)at(B, ldb, g->tb, k, j);
        ob = md_gemm_direct(direct_b, ld);
    }
    /* alpha != 1 needs a raw operand to fold into */
    bool a_raw = a_kind == MD_OPERAND_RAW;
    bool b_raw = g->b_kind == MD_OPERAND_RAW || (bf16 && g->b_kind == MD_OPERAND_DIRECT);
    float alpha = a_raw || b_raw ? g->alpha : 1.0f;
    md_gemm_epilogue e = md_gemm_epilogue_none();
    e.beta = g->beta;
    e.bias_row = g->bias_row ? br : NULL;
    e.bias_col = g->bias_col ? bc : NULL;
    e.row_scale = g->row_scale ? rs : NULL;
    if (g->clamp) {
        e.lo = -0.5f;
        e.hi = 0.75f;
    }
    if (g->add) {
        e.add = ad;
        e.ld_add = (size_t)N;
    }
    e.gelu = g->gelu;
    /* bf16 output: rows N + 3 apart, with guards that must stay untouched */
    size_t ld16 = (size_t)N + 3;
    uint16_t *o16 = malloc(sizeof(uint16_t) * ((size_t)M * ld16 + 1));
    for (size_t i = 0; i < (size_t)M * ld16 + 1; i++)
        o16[i] = 0x7777;
    if (g->out16) {
        e.out16 = o16;
        e.ld16 = ld16;
    }
    if (pool == NULL)
        md_gemm_block(isa, M, N, K, alpha, oa, ob, C, (size_t)N, &e, 0, M, 0, N);
    else
        md_gemm(pool, type, M, N, K, alpha, oa, ob, C, (size_t)N, &e);
    double worst = 0, scale = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double a = at(A, lda, g->ta, i, k), b = at(B, ldb, g->tb, k, j);
                if (bf16) {
                    a = a_raw ? bf(alpha * a) : bf(a);
                    b = !a_raw && b_raw ? bf(alpha * b) : bf(b);
                } else {
                    a *= a_raw ? alpha : 1.0;
                    b *= !a_raw && b_raw ? alpha : 1.0;
                }
                s += a * b;
                mag += fabs(a * b);
            }
            double v = s + g->beta * C0[(size_t)i * N + j];
            if (g->bias_row)
                v += br[i];
            if (g->bias_col)
                v += bc[j];
            if (g->row_scale)
                v *= rs[i];
            if (g->gelu) /* exact erf: the kernels' polynomial is good to ~1e-7 */
                v = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
            if (g->clamp)
                v = v < -0.5 ? -0.5 : v > 0.75 ? 0.75 : v;
            if (g->add)
                v += ad[(size_t)i * N + j];
            double got = C[(size_t)i * N + j], d;
            if (g->out16) {
                got = md_bf16_to_f32(o16[(size_t)i * ld16 + j]);
                /* one bf16 rounding (2^-8 relative) of a value within the
                   float32 tolerance below of v */
                d = fabs(v - got) - fabs(v) * (1.0 / 256) - 1e-6 * (mag + 4) * 8;
                d = d > 0 ? d : 0;
            } else {
                d = fabs(v - got);
            }
            worst = d > worst ? d : worst;
            scale = mag > scale ? mag : scale;
        }
    for (int i = 0; i < M && g->out16; i++)
        for (size_t j = (size_t)N; j < ld16; j++)
            CHECK_MSG(o16[(size_t)i * ld16 + j] == 0x7777, "out16 written past column %d", N);
    CHECK(o16[(size_t)M * ld16] == 0x7777);
    /* float32 accumulation: rounding grows with the sum of |terms| */
    CHECK_MSG(worst <= 1e-6 * (scale + 4) * 4, "gemm %s M %d N %d K %d ta %d tb %d kinds %d/%d: max err %g",
              md_gemm_isa_name(isa), M, N, K, g->ta, g->tb, a_kind, g->b_kind, worst);
    md_gemm_packed_free(&pa);
    md_gemm_packed_free(&pb);
    free(direct_a);
    free(direct_b);
    free(A);
    free(B);
    free(C);
    free(C0);
    free(br);
    free(bc);
    free(rs);
    free(ad);
    free(o16);
}

/* Every kernel family the CPU runs: float32 (portable, AVX-512) and bf16
 * (emulated, AVX512_BF16). */
static int isas(md_gemm_isa *out)
{
    int n = 0;
    out[n++] = MD_ISA_GENERIC;
    if (md_gemm_isa_best(MD_GEMM_F32) != MD_ISA_GENERIC)
        out[n++] = md_gemm_isa_best(MD_GEMM_F32);
    out[n++] = MD_ISA_BF16_EMU;
    if (md_gemm_isa_best(MD_GEMM_BF16) != MD_ISA_BF16_EMU)
        out[n++] = md_gemm_isa_best(MD_GEMM_BF16);
    return n;
}

static void test_gemm_random(void)
{
    md_gemm_isa list[4];
    int n_isa = isas(list);
    for (int t = 0; t < 600; t++) {
        gemm_case g;
        memset(&g, 0, sizeof g);
        g.M = randint(1, 40);
        g.N = randint(1, 75);
        g.K = t % 25 == 0 ? randint(1025, 2300) : randint(0, 50); /* K blocks past 1024 / 2048 */
        g.ta = randint(0, 1);
        g.tb = randint(0, 1);
        g.a_kind = randint(0, 2);
        g.b_kind = randint(0, 2);
        g.alpha = t % 3 ? 1.0f : 0.5f;
        g.beta = t % 4 == 1 ? 0.0f : (float)uniform();
        g.bias_row = randint(0, 1);
        g.bias_col = randint(0, 1);
        g.row_scale = randint(0, 1);
        g.clamp = randint(0, 1);
        g.add = randint(0, 1);
        g.gelu = t % 5 == 2;
        g.out16 = t % 3 == 2;
        check_gemm(&g, list[t % n_isa], NULL);
    }
}

/* The bf16 kernels match the emulation's arithmetic: the same bits on a
 * product whose sums are exact neither way (AVX512_BF16 CPUs only). */
static void test_bf16_native_vs_emulated(void)
{
    if (md_gemm_isa_best(MD_GEMM_BF16) != MD_ISA_AVX512_BF16)
        return;
    int M = 30, N = 70, K = 300;
    float *A = rand_floats((size_t)M * K), *B = rand_floats((size_t)K * N);
    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
    md_gemm_packed pb;
    CHECK(md_gemm_pack_b(&pb, MD_GEMM_BF16, B, (size_t)N, false, K, N));
    md_gemm_block(MD_ISA_AVX512_BF16, M, N, K, 1.0f, md_gemm_raw(A, (size_t)K, false),
                  md_gemm_prepacked(&pb), C1, (size_t)N, NULL, 0, M, 0, N);
    md_gemm_block(MD_ISA_BF16_EMU, M, N, K, 1.0f, md_gemm_raw(A, (size_t)K, false),
                  md_gemm_prepacked(&pb), C2, (size_t)N, NULL, 0, M, 0, N);
    double worst = 0;
    for (int i = 0; i < M * N; i++)
        worst = fmax(worst, fabs((double)C1[i] - C2[i]));
    fprintf(stderr, "  native vs emulated bf16: max diff %g\n", worst);
    CHECK(worst < 1e-4);
    md_gemm_packed_free(&pb);
    free(A);
    free(B);
    free(C1);
    free(C2);
}

/* Round to nearest even, by hand. */
static void test_bf16_rounding(void)
{
    CHECK(md_bf16_from_f32(1.0f) == 0x3f80);
    CHECK(md_bf16_from_f32(1.0f + 1.0f / 256) == 0x3f80);          /* halfway: to even (down) */
    CHECK(md_bf16_from_f32(1.0f + 3.0f / 256) == 0x3f82);          /* halfway: to even (up) */
    CHECK(md_bf16_from_f32(1.0f + 1.0f / 256 + 1.0f / 4096) == 0x3f81); /* past halfway */
    CHECK(md_bf16_from_f32(-2.0f) == 0xc000);
    CHECK(isnan(md_bf16_to_f32(md_bf16_from_f32(NAN))));
    CHECK(md_bf16_to_f32(md_bf16_from_f32(INFINITY)) == INFINITY);
    float v[37];
    uint16_t h[37];
    for (int i = 0; i < 37; i++)
        v[i] = (float)uniform() * 100.0f;
    md_f32_to_bf16(v, h, 37); /* the vector path and the tail */
    for (int i = 0; i < 37; i++)
        CHECK(h[i] == md_bf16_from_f32(v[i]));
}

/* md_sgemm (C = alpha op(A) op(B) + beta C) on a pool: every transpose. */
static void test_sgemm_transposes(void)
{
    md_threadpool *pool = md_pool_create(3);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_case g = {97, 131, 70, ta, tb, 0, 0, 2.0f, 0.5f, false, false, false, false, false, false, false};
            check_gemm(&g, md_gemm_isa_best(MD_GEMM_F32), pool);
            check_gemm(&g, md_gemm_isa_best(MD_GEMM_BF16), pool);
        }
    md_pool_destroy(pool);
}

/* Sharing the work among threads never changes a bit, in either arithmetic. */
static void test_gemm_threads_bit_identical(void)
{
    int M = 150, N = 300, K = 2200;
    float *A = rand_floats((size_t)M * K), *B = rand_floats((size_t)K * N);
    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
    md_threadpool *pools[3] = {NULL, md_pool_create(2), md_pool_create(5)};
    for (int type = 0; type < 2; type++) {
        md_gemm_packed pb;
        CHECK(md_gemm_pack_b(&pb, type, B, (size_t)N, false, K, N));
        for (int kind = 0; kind < 2; kind++) {
            md_gemm_operand ob = kind ? md_gemm_prepacked(&pb) : md_gemm_raw(B, (size_t)N, false);
            md_gemm(NULL, type, M, N, K, 1.0f, md_gemm_raw(A, (size_t)K, false), ob, C1,
                    (size_t)N, NULL);
            for (int p = 1; p < 3; p++) {
                md_gemm(pools[p], type, M, N, K, 1.0f, md_gemm_raw(A, (size_t)K, false), ob, C2,
                        (size_t)N, NULL);
                CHECK_MSG(memcmp(C1, C2, sizeof(float) * M * N) == 0, "type %d kind %d pool %d",
                          type, kind, p);
            }
        }
        md_gemm_packed_free(&pb);
    }
    for (int p = 1; p < 3; p++)
        md_pool_destroy(pools[p]);
    free(A);
    free(B);
    free(C1);
    free(C2);
}

/* A product N = 16 q + 1..4 columns wide (FastDepth's 7x7 and 14x14 layers)
 * finishes its last columns as matrix-vector products: the same bits as the
 * tiles give those columns when the product is wider (every panel whole).
 * Row counts across panel heights, K in one block and in several
 * (accumulating), every epilogue option, float32 and bf16 output. */
static void test_gemm_tail_columns(void)
{
    const int Ms[] = {1, 5, 8, 12, 13, 30}, Ks[] = {1, 9, 300, 1100};
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
            for (int n = 1; n <= 69; n += (n % 16 == 5) ? 12 : 1) {
                int M = Ms[mi], K = Ks[ki], NP = 96, ep = (int)(mi + ki + (size_t)n) % 3;
                float *A = rand_floats((size_t)M * K), *B = rand_floats((size_t)K * NP);
                float *C0 = rand_floats((size_t)M * NP), *br = rand_floats((size_t)M);
                float *bc = rand_floats(NP), *rs = rand_floats((size_t)M);
                float *ad = rand_floats((size_t)M * NP);
                float *C1 = malloc(sizeof(float) * M * NP), *C2 = malloc(sizeof(float) * M * NP);
                uint16_t *h1 = calloc((size_t)M * NP, 2), *h2 = calloc((size_t)M * NP, 2);
                memcpy(C1, C0, sizeof(float) * M * NP);
                memcpy(C2, C0, sizeof(float) * M * NP);
                md_gemm_packed pa;
                CHECK(md_gemm_pack_a(&pa, MD_GEMM_F32, A, (size_t)K, false, M, K));
                md_gemm_epilogue e = md_gemm_epilogue_none();
                e.beta = ep == 0 ? 0.5f : 0.0f;
                e.bias_row = br;
                e.bias_col = bc;
                e.row_scale = ep == 1 ? rs : NULL;
                e.lo = -0.75f;
                e.hi = ep == 2 ? INFINITY : 0.8f;
                e.add = ep == 1 ? NULL : ad;
                e.ld_add = NP;
                e.gelu = ep == 1;
                md_gemm_epilogue e1 = e, e2 = e;
                if (ep == 2) {
                    e1.out16 = h1;
                    e2.out16 = h2;
                    e1.ld16 = e2.ld16 = NP;
                }
                md_gemm(NULL, MD_GEMM_F32, M, n, K, 1.0f, md_gemm_prepacked(&pa),
                        md_gemm_direct(B, NP), C1, NP, &e1);
                md_gemm(NULL, MD_GEMM_F32, M, NP, K, 1.0f, md_gemm_prepacked(&pa),
                        md_gemm_direct(B, NP), C2, NP, &e2);
                int bad = 0;
                for (int i = 0; i < M; i++)
                    bad += ep == 2 ? memcmp(h1 + (size_t)i * NP, h2 + (size_t)i * NP, 2 * (size_t)n) != 0
                                   : memcmp(C1 + (size_t)i * NP, C2 + (size_t)i * NP, 4 * (size_t)n) != 0;
                CHECK_MSG(bad == 0, "M %d N %d K %d epilogue %d: %d rows differ", M, n, K, ep, bad);
                md_gemm_packed_free(&pa);
                free(A); free(B); free(C0); free(br); free(bc); free(rs); free(ad);
                free(C1); free(C2); free(h1); free(h2);
            }
}

/* ------------------------------------------------------------ convolution */

/* In double; mag (may be NULL) gets the sum of |terms| of each output. */
static void conv_direct(const md_conv2d_params *p, const float *in, int H, int W, const float *w,
                        const float *b, double *out, int OH, int OW, double *mag)
{
    int cin_g = p->in_channels / p->groups, cout_g = p->out_channels / p->groups;
    for (int oc = 0; oc < p->out_channels; oc++) {
        int g = oc / cout_g;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double acc = b ? b[oc] : 0.0, m = 0.0;
                for (int ic = 0; ic < cin_g; ic++)
                    for (int ky = 0; ky < p->kernel_h; ky++)
                        for (int kx = 0; kx < p->kernel_w; kx++) {
                            int iy = oy * p->stride_h - p->pad_top + ky * p->dilation_h;
                            int ix = ox * p->stride_w - p->pad_left + kx * p->dilation_w;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            double t = (double)in[((size_t)(g * cin_g + ic) * H + iy) * W + ix] *
                                       w[(((size_t)oc * cin_g + ic) * p->kernel_h + ky) * p->kernel_w + kx];
                            acc += t;
                            m += fabs(t);
                        }
                out[((size_t)oc * OH + oy) * OW + ox] = acc;
                if (mag)
                    mag[((size_t)oc * OH + oy) * OW + ox] = m;
            }
    }
}

/* PyTorch's bilinear align_corners=True, in double. */
static void upsample_ac(const float *in, int C, int h, int w, float *out, int H, int W)
{
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double fy = H > 1 ? (double)y * (h - 1) / (H - 1) : 0.0;
                double fx = W > 1 ? (double)x * (w - 1) / (W - 1) : 0.0;
                int y0 = (int)fy, x0 = (int)fx;
                int y1 = y0 + 1 < h ? y0 + 1 : y0, x1 = x0 + 1 < w ? x0 + 1 : x0;
                double ly = fy - y0, lx = fx - x0;
                const float *p = in + (size_t)c * h * w;
                double v = (1 - ly) * ((1 - lx) * p[y0 * w + x0] + lx * p[y0 * w + x1]) +
                           ly * ((1 - lx) * p[y1 * w + x0] + lx * p[y1 * w + x1]);
                out[((size_t)c * H + y) * W + x] = (float)v;
            }
}

/* Bilinear (align_corners) resizes against the double formula: widths on
 * and off the 16-column groups that read their sources with one load and a
 * permute, upsamplings by 2, by a little and by a lot, downsamplings (their
 * groups span too many sources and take the scalar loop), whole planes and
 * row ranges. */
static void test_resize_linear(void)
{
    const int shapes[][4] = {{3, 5, 6, 10},     {7, 16, 14, 32},   {9, 31, 17, 47},
                             {148, 196, 296, 392}, {5, 100, 7, 101}, {4, 9, 30, 200},
                             {20, 64, 9, 33},   {6, 40, 6, 16},    {1, 1, 3, 17}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        int h = shapes[i][0], w = shapes[i][1], H = shapes[i][2], W = shapes[i][3], C = 2;
        float *in = rand_floats((size_t)C * h * w), *want = malloc(sizeof(float) * C * H * W);
        float *got = malloc(sizeof(float) * C * H * W), *rows = malloc(sizeof(float) * C * H * W);
        upsample_ac(in, C, h, w, want, H, W);
        md_resize_params rp = {true, MD_COORD_ALIGN_CORNERS, MD_NEAREST_FLOOR, 0.0f, 0.0f};
        md_resize_tables t;
        CHECK(md_resize_tables_init(&t, &rp, h, w, H, W));
        md_resize2d(&t, in, h, w, got, NULL, 0, C);
        int y0 = H / 3, y1 = H - H / 4; /* rows [y0, y1) into [C][y1 - y0][W] */
        md_resize2d_rows(&t, in, h, w, rows, NULL, 0, C, y0, y1);
        double worst = 0;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double v = want[((size_t)c * H + y) * W + x];
                    double e = fabs(got[((size_t)c * H + y) * W + x] - v);
                    if (y >= y0 && y < y1) {
                        double er = fabs(rows[((size_t)c * (y1 - y0) + (y - y0)) * W + x] - v);
                        e = er > e ? er : e;
                    }
                    worst = e > worst ? e : worst;
                }
        CHECK_MSG(worst < 1e-5, "resize %dx%d -> %dx%d: max err %g", h, w, H, W, worst);
        md_resize_tables_free(&t);
        free(in);
        free(want);
        free(got);
        free(rows);
    }
}

/* Integer nearest upsampling by 2 (FastDepth's decoder), with and without
 * the fused skip addition, against out[y][x] = in[y / 2][x / 2] (+ add):
 * a copy and one float addition, so exact. Widths on and off the 16-input
 * groups (whole vectors, a masked tail, only a tail); whole planes and row
 * ranges. */
static void test_resize_nearest_x2(void)
{
    const int shapes[][2] = {{7, 7}, {14, 14}, {3, 16}, {5, 17}, {4, 31}, {2, 40}, {1, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        int h = shapes[i][0], w = shapes[i][1], H = 2 * h, W = 2 * w, C = 3;
        size_t n = (size_t)C * H * W;
        float *in = rand_floats((size_t)C * h * w), *add = rand_floats(n);
        /* 32 guard values after each output block: nothing written past its last row */
        float *got = malloc(sizeof(float) * (n + 32)), *rows = malloc(sizeof(float) * (n + 32));
        for (int g = 0; g < 32; g++)
            got[n + g] = -7.0f;
        md_resize_params rp = {false, MD_COORD_ASYMMETRIC, MD_NEAREST_FLOOR, 0.0f, 0.0f};
        md_resize_tables t;
        CHECK(md_resize_tables_init(&t, &rp, h, w, H, W));
        for (int a = 0; a < 2; a++) {
            const float *ad = a ? add : NULL;
            md_resize2d(&t, in, h, w, got, ad, 0, C);
            int y0 = H / 3, y1 = H - H / 4, bad = 0;
            size_t end = (size_t)2 * (y1 - y0) * W; /* channel 1's block ends there */
            for (int g = 0; g < 32; g++)
                rows[end + g] = -7.0f;
            md_resize2d_rows(&t, in, h, w, rows, ad ? add + (size_t)y0 * W : NULL, 1, 2, y0, y1);
            for (int c = 0; c < C; c++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        size_t o = ((size_t)c * H + y) * W + x;
                        float v = in[((size_t)c * h + y / 2) * w + x / 2];
                        if (ad)
                            v += ad[o];
                        bad += got[o] != v;
                    }
            /* rows [y0, y1) of channel 1 land at channel 1 of a [C][y1 - y0][W] block, the
             * addend read with the same layout (here: the full addend shifted by y0 rows) */
            for (int y = y0; y < y1; y++)
                for (int x = 0; x < W; x++) {
                    size_t o = ((size_t)1 * (y1 - y0) + (y - y0)) * W + x;
                    float v = in[((size_t)1 * h + y / 2) * w + x / 2];
                    if (ad)
                        v += add[(size_t)y0 * W + o];
                    bad += rows[o] != v;
                }
            CHECK_MSG(bad == 0, "nearest x2 %dx%d (add %d): %d wrong values", h, w, a, bad);
            for (int g = 0; g < 32; g++)
                bad += got[n + g] != -7.0f || rows[end + g] != -7.0f;
            CHECK_MSG(bad == 0, "nearest x2 %dx%d (add %d): written past the end", h, w, a);
        }
        CHECK(t.fx_int == 2);
        md_resize_tables_free(&t);
        free(in);
        free(add);
        free(got);
        free(rows);
    }
}

typedef struct {
    double *got;
    int ow, cout, oh;
    int bands;
} band_sink;

static void sink_band(void *user, const float *band, int y0, int y1, int worker)
{
    (void)worker;
    band_sink *s = user;
    size_t plane = (size_t)(y1 - y0) * s->ow;
    for (int c = 0; c < s->cout; c++)
        for (size_t i = 0; i < plane; i++)
            s->got[((size_t)c * s->oh + y0) * s->ow + i] = band[(size_t)c * plane + i];
    __atomic_add_fetch(&s->bands, 1, __ATOMIC_RELAXED);
}

/* mode: 0 plain, 1 ReLU'd source, 2 upsampled source, 3 residual + clamp,
 * 4 bands to a callback. bf16: against the convolution of the bf16-rounded
 * input and weights. Returns the largest error relative to the sum of the
 * products' magnitudes. */
static double check_conv_algo(const md_conv2d_params *p, int H, int W, bool with_bias, int mode,
                              md_threadpool *pool, md_gemm_type type, md_conv_algo algo)
{
    int OH, OW;
    if (!md_conv2d_output_size(p, H, W, &OH, &OW))
        return 0.0;
    int uh = H > 2 ? H / 2 + 1 : H, uw = W > 2 ? W / 2 + 1 : W;
    size_t nin = (size_t)p->in_channels * H * W;
    size_t nw = (size_t)p->out_channels * (p->in_channels / p->groups) * p->kernel_h * p->kernel_w;
    size_t nout = (size_t)p->out_channels * OH * OW;
    float *in = rand_floats(mode == 2 ? (size_t)p->in_channels * uh * uw : nin);
    float *w = rand_floats(nw), *b = rand_floats((size_t)p->out_channels);
    float *out = malloc(nout * sizeof *out), *res = rand_floats(nout);
    float *eff = malloc(nin * sizeof *eff); /* the input the convolution should see */
    double *want = malloc(nout * sizeof *want), *got = malloc(nout * sizeof *got);
    if (mode == 2)
        upsample_ac(in, p->in_channels, uh, uw, eff, H, W);
    else
        for (size_t i = 0; i < nin; i++)
            eff[i] = mode == 1 && in[i] < 0 ? 0.0f : in[i];
    md_conv conv;
    CHECK(md_conv_init(&conv, p, type, algo, w, with_bias ? b : NULL));
    CHECK(conv.winograd == md_conv_is_winograd(p, type, algo));
    bool bf16 = type == MD_GEMM_BF16 && !md_conv_is_depthwise(p); /* depthwise runs float32 */
    float *wr = malloc(nw * sizeof *wr), *er = malloc(nin * sizeof *er);
    for (size_t i = 0; i < nw; i++)
        wr[i] = bf16 ? (float)bf(w[i]) : w[i];
    for (size_t i = 0; i < nin; i++)
        er[i] = bf16 ? (float)bf(eff[i]) : eff[i];
    md_conv_src src = md_conv_plain_src(in, H, W);
    if (mode == 1)
        src.relu = true;
    if (mode == 2) {
        src.up_h = uh;
        src.up_w = uw;
    }
    md_conv_dst dst = md_conv_to(out, -INFINITY, INFINITY);
    band_sink sink = {got, OW, p->out_channels, OH, 0};
    if (mode == 3) {
        dst.lo = -0.25f;
        dst.hi = 0.5f;
        dst.add = res;
    }
    if (mode == 4) {
        dst.out = NULL;
        dst.band_fn = sink_band;
        dst.user = &sink;
    }
    CHECK(md_conv_forward(&conv, pool, &src, &dst, NULL));
    double *mag = malloc(nout * sizeof *mag);
    conv_direct(p, er, H, W, wr, with_bias ? b : NULL, want, OH, OW, mag);
    double worst = 0, rel = 0;
    for (size_t i = 0; i < nout; i++) {
        double v = want[i];
        if (mode == 3)
            v = (v < -0.25 ? -0.25 : v > 0.5 ? 0.5 : v) + res[i];
        double g = mode == 4 ? got[i] : out[i];
        /* float sums of up to a few hundred terms of size <= 1; bf16 of an
         * upsampled value may round the other way than the reference's;
         * Winograd's transforms add a few roundings of values up to 100x
         * the inputs (measured up to 4e-6 of the magnitudes' sum) */
        double tol = 1e-4 + (bf16 && mode == 2 ? mag[i] / 256 : 0) +
                     (conv.winograd ? 1e-5 * mag[i] : 0);
        double e = fabs(g - v) - tol;
        worst = e > worst ? e : worst;
        double r = fabs(g - v) / (mag[i] + 1e-30);
        rel = r > rel ? r : rel;
    }
    CHECK_MSG(worst <= 0, "%s conv mode %d cin %d cout %d k %dx%d s %d,%d d %d,%d pad %d,%d,%d,%d g %d on %dx%d: "
              "max err %g past tolerance", type ? "bf16" : "fp32", mode, p->in_channels, p->out_channels, p->kernel_h, p->kernel_w,
              p->stride_h, p->stride_w, p->dilation_h, p->dilation_w, p->pad_top, p->pad_left,
              p->pad_bottom, p->pad_right, p->groups, H, W, worst);
    free(wr);
    free(er);
    free(mag);
    if (mode == 4)
        CHECK(sink.bands >= 1);
    md_conv_free(&conv);
    free(in); free(w); free(b); free(out); free(res); free(eff); free(want); free(got);
    return rel;
}

static void check_conv(const md_conv2d_params *p, int H, int W, bool with_bias, int mode,
                       md_threadpool *pool, md_gemm_type type)
{
    check_conv_algo(p, H, W, with_bias, mode, pool, type, MD_CONV_DIRECT);
}

static void test_conv_random(void)
{
    md_threadpool *pool = md_pool_create(3);
    for (int t = 0; t < 400; t++) {
        md_conv2d_params p;
        memset(&p, 0, sizeof p);
        int kind = t % 4; /* general, depthwise, pointwise, grouped */
        p.groups = kind == 3 ? randint(2, 3) : 1;
        int cin_g = randint(1, 6), cout_g = randint(1, 14);
        if (kind == 1) {
            p.groups = randint(2, 8);
            cin_g = cout_g = 1;
        }
        p.in_channels = cin_g * p.groups;
        p.out_channels = cout_g * p.groups;
        p.kernel_h = kind == 2 ? 1 : randint(1, 5);
        p.kernel_w = kind == 2 ? 1 : randint(1, 5);
        p.stride_h = kind == 2 ? 1 : randint(1, 3);
        p.stride_w = kind == 2 ? 1 : randint(1, 3);
        p.dilation_h = kind == 2 ? 1 : randint(1, 2);
        p.dilation_w = kind == 2 ? 1 : randint(1, 2);
        if (kind != 2) {
            p.pad_top = randint(0, 2);
            p.pad_left = randint(0, 2);
            p.pad_bottom = randint(0, 2);
            p.pad_right = randint(0, 2);
        }
        check_conv(&p, randint(1, 40), randint(1, 70), t % 3 != 0, (t / 4) % 5,
                   t % 2 ? pool : NULL, t % 3 == 1 ? MD_GEMM_BF16 : MD_GEMM_F32);
    }
    md_pool_destroy(pool);
}

/* Depthwise 3x3 and 5x5, stride 1, across the widths where the kernels
 * change: the whole-plane kernel takes rows of 1 to 8 vectors (up to 128
 * columns, lanes past the width masked), the padded path's row kernels step
 * 16 / 32 / 64 columns (the 64-column kernel writes whole steps past the
 * last column, which must land in slack, not in the next row's results).
 * Odd heights end on a single row; uneven padding takes the padded path. */
static void test_depthwise_widths(void)
{
    const int widths[] = {1,  7,  14, 15, 16, 17,  28,  31,  32,  33,
                          56, 63, 64, 65, 70, 97, 112, 127, 128, 129};
    md_threadpool *pool = md_pool_create(2);
    for (int k = 3; k <= 5; k += 2)
        for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
            int pad = k / 2;
            md_conv2d_params p = {3, 3, k, k, 1, 1, pad, pad, pad, pad, 1, 1, 3};
            check_conv(&p, 7 + (int)i % 4, widths[i], true, 0, i % 2 ? pool : NULL,
                       MD_GEMM_F32);
            check_conv(&p, 6, widths[i], true, 3, NULL, MD_GEMM_F32); /* clamp + residual */
            md_conv2d_params q = p; /* uneven padding: the padded row is not out_w + k - 1 */
            q.pad_left = 0;
            q.pad_right = k - 1;
            check_conv(&q, 5, widths[i], false, 1, NULL, MD_GEMM_F32);
        }
    /* stride 2, 3x3, one zero row and column before the plane (FastDepth's
     * downsampling layers): output rows of 1 to 4 vectors, the 64-column
     * limit from both sides, odd and even sizes, with and without the zeros
     * after the plane */
    const int widths2[] = {1, 2, 3, 14, 15, 28, 31, 32, 33, 56, 63, 64, 65, 112, 127, 128, 129, 131};
    for (size_t i = 0; i < sizeof widths2 / sizeof *widths2; i++)
        for (int after = 0; after <= 1; after++) {
            md_conv2d_params p = {3, 3, 3, 3, 2, 2, 1, 1, after, after, 1, 1, 3};
            check_conv(&p, 5 + (int)i % 4, widths2[i], after == 1, (int)i % 2 ? 0 : 3,
                       i % 3 ? pool : NULL, MD_GEMM_F32);
        }
    md_pool_destroy(pool);
    /* A NaN reaches exactly the outputs whose window holds it, through the
     * ReLU6 clamp (as PyTorch), on 14- and 40-wide planes */
    for (int k = 3; k <= 5; k += 2)
        for (int W = 14; W <= 40; W += 26) {
            int H = 9, pad = k / 2, ny = 4, nx = W - 3;
            md_conv2d_params p = {2, 2, k, k, 1, 1, pad, pad, pad, pad, 1, 1, 2};
            float *in = rand_floats((size_t)2 * H * W), *w = rand_floats((size_t)2 * k * k);
            float *out = malloc(sizeof(float) * 2 * H * W);
            in[(size_t)H * W + (size_t)ny * W + nx] = NAN; /* channel 1 */
            md_conv conv;
            CHECK(md_conv_init(&conv, &p, MD_GEMM_F32, MD_CONV_FAST, w, NULL));
            md_conv_src src = md_conv_plain_src(in, H, W);
            md_conv_dst dst = md_conv_to(out, 0.0f, 6.0f);
            CHECK(md_conv_forward(&conv, NULL, &src, &dst, NULL));
            int bad = 0;
            for (int c = 0; c < 2; c++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        float v = out[((size_t)c * H + y) * W + x];
                        bool hit = c == 1 && abs(y - ny) <= pad && abs(x - nx) <= pad;
                        bad += hit ? !isnan(v) : !(v >= 0.0f && v <= 6.0f);
                    }
            CHECK_MSG(bad == 0, "depthwise %dx%d NaN on %dx%d: %d outputs wrong", k, k, H, W, bad);
            md_conv_free(&conv);
            free(in);
            free(w);
            free(out);
        }
}

/* The register kernels for stride-1 3x3 and 5x5 planes (K/2 zeros around)
 * give the padded path's bits: the same convolution with the zeros written
 * into a bigger input and no padding runs the padded path, whose sums take
 * the same order. Heights on each side of the kernels' row blocks, widths
 * one to eight vectors, small and large planes. */
static void test_depthwise_plane_bits(void)
{
    const int sizes[][2] = {{7, 7},   {9, 14},  {14, 14}, {5, 28},  {28, 28}, {13, 33},
                            {10, 56}, {56, 56}, {11, 97}, {8, 112}, {3, 128}};
    for (int k = 3; k <= 5; k += 2)
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            int H = sizes[i][0], W = sizes[i][1], P = k / 2, C = 3;
            int HP = H + 2 * P, WP = W + 2 * P;
            float *in = rand_floats((size_t)C * H * W), *w = rand_floats((size_t)C * k * k);
            float *b = rand_floats(C), *padded = calloc((size_t)C * HP * WP, sizeof(float));
            float *o1 = malloc(sizeof(float) * C * H * W), *o2 = malloc(sizeof(float) * C * H * W);
            for (int c = 0; c < C; c++)
                for (int y = 0; y < H; y++)
                    memcpy(padded + ((size_t)c * HP + y + P) * WP + P, in + ((size_t)c * H + y) * W,
                           sizeof(float) * W);
            md_conv2d_params p = {C, C, k, k, 1, 1, P, P, P, P, 1, 1, C};
            md_conv2d_params q = {C, C, k, k, 1, 1, 0, 0, 0, 0, 1, 1, C};
            md_depthwise_conv2d(&p, in, H, W, w, b, -INFINITY, INFINITY, o1, 0, C, NULL);
            md_depthwise_conv2d(&q, padded, HP, WP, w, b, -INFINITY, INFINITY, o2, 0, C, NULL);
            CHECK_MSG(memcmp(o1, o2, sizeof(float) * C * H * W) == 0,
                      "depthwise %dx%d on %dx%d: not the padded path's bits", k, k, H, W);
            free(in); free(w); free(b); free(padded); free(o1); free(o2);
        }
}

/* Pointwise convolutions on planes too small to split by pixels (fewer
 * than four 32-pixel tiles per worker: FastDepth's 14x14 and 7x7 layers)
 * are split by output channels in whole panels of the packed weights (8
 * or 12 rows): counts on both sides of a panel, one to a hundred panels,
 * grouped, float32 and bf16, through pools of 2 and 3 and none, with bias,
 * clamp and residual, against the double reference. */
static void test_pointwise_small_planes(void)
{
    const int planes[][2] = {{1, 1}, {7, 7}, {14, 14}, {3, 50}, {9, 21}};
    const int couts[] = {1, 8, 12, 13, 24, 40, 200, 408};
    md_threadpool *pools[3] = {NULL, md_pool_create(2), md_pool_create(3)};
    for (size_t i = 0; i < sizeof planes / sizeof *planes; i++)
        for (size_t j = 0; j < sizeof couts / sizeof *couts; j++)
            for (int g = 1; g <= 2; g++) {
                int cin = 4 + (int)(i + j) % 5;
                md_conv2d_params p = {cin * g, couts[j] * g, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, g};
                int k = (int)(i * 3 + j + (size_t)g) % 3;
                check_conv(&p, planes[i][0], planes[i][1], j % 2 == 0, j % 3 == 0 ? 3 : 0,
                           pools[k], (i + j) % 2 ? MD_GEMM_BF16 : MD_GEMM_F32);
            }
    md_pool_destroy(pools[1]);
    md_pool_destroy(pools[2]);
}

/* First layers: 3x3, stride 2, one zero row and column before the image,
 * 1-4 input channels, 8-24 output channels (FastDepth's 3 -> 16, an
 * im2col product with K = 27): against the double reference, with and
 * without the zeros after the image, through a pool and without, then
 * clamped to [0, 6] with a NaN in the image reaching exactly the outputs
 * whose 3x3 window holds it. Shapes from one row to 200 wide. */
static void test_conv_first_layer(void)
{
    const int sizes[][2] = {{1, 1}, {2, 2}, {5, 31}, {9, 33}, {37, 41}, {8, 64},
                            {8, 65}, {8, 66}, {3, 129}, {20, 200}};
    md_threadpool *pool = md_pool_create(2);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (int ci = 0; ci < 3; ci++)
            for (int after = 0; after <= 1; after++) {
                int cin = ci == 0 ? 1 : ci == 1 ? 3 : 4;
                int cout = 8 * (1 + (int)(i + (size_t)cin) % 3);
                md_conv2d_params p = {cin, cout, 3, 3, 2, 2, 1, 1, after, after, 1, 1, 1};
                check_conv_algo(&p, sizes[i][0], sizes[i][1], i % 2 == 0, 0, i % 3 ? pool : NULL,
                                MD_GEMM_F32, MD_CONV_FAST);
            }
    md_pool_destroy(pool);
    int H = 11, W = 37, OH = 6, OW = 19, ny = 6, nx = 20;
    md_conv2d_params p = {3, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1};
    float *in = rand_floats((size_t)3 * H * W), *w = rand_floats((size_t)16 * 27);
    float *b = rand_floats(16), *out = malloc(sizeof(float) * 16 * OH * OW);
    double *want = malloc(sizeof(double) * 16 * OH * OW);
    conv_direct(&p, in, H, W, w, b, want, OH, OW, NULL);
    in[((size_t)2 * H + ny) * W + nx] = NAN; /* channel 2 */
    md_conv conv;
    CHECK(md_conv_init(&conv, &p, MD_GEMM_F32, MD_CONV_FAST, w, b));
    md_conv_src src = md_conv_plain_src(in, H, W);
    md_conv_dst dst = md_conv_to(out, 0.0f, 6.0f);
    CHECK(md_conv_forward(&conv, NULL, &src, &dst, NULL));
    int bad = 0;
    for (int c = 0; c < 16; c++)
        for (int y = 0; y < OH; y++)
            for (int x = 0; x < OW; x++) {
                float v = out[((size_t)c * OH + y) * OW + x];
                double r = want[((size_t)c * OH + y) * OW + x];
                r = r < 0 ? 0 : r > 6 ? 6 : r;
                bool hit = abs(2 * y - ny) <= 1 && abs(2 * x - nx) <= 1;
                bad += hit ? !isnan(v) : !(fabs(v - r) <= 1e-4);
            }
    CHECK_MSG(bad == 0, "first layer, ReLU6 and a NaN: %d outputs wrong", bad);
    md_conv_free(&conv);
    free(in);
    free(w);
    free(b);
    free(out);
    free(want);
}

static void test_conv_by_hand(void)
{
    /* 1 channel 3x3 input 1..9, 2x2 kernel of ones, stride 1, no pad: sums of
     * each 2x2 window = 12 16 / 24 28; with bias 0.5. */
    md_conv2d_params p = {1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1, 1};
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 1, 1, 1}, b = 0.5f, out[4];
    int oh, ow;
    CHECK(md_conv2d_output_size(&p, 3, 3, &oh, &ow) && oh == 2 && ow == 2);
    md_conv conv;
    CHECK(md_conv_init(&conv, &p, MD_GEMM_F32, MD_CONV_DIRECT, w, &b));
    md_conv_src src = md_conv_plain_src(in, 3, 3);
    md_conv_dst dst = md_conv_to(out, -INFINITY, INFINITY);
    CHECK(md_conv_forward(&conv, NULL, &src, &dst, NULL));
    CHECK(out[0] == 12.5f && out[1] == 16.5f && out[2] == 24.5f && out[3] == 28.5f);
    /* ReLU as the clamp keeps NaN (as PyTorch) */
    in[0] = NAN;
    dst.lo = 0.0f;
    CHECK(md_conv_forward(&conv, NULL, &src, &dst, NULL));
    CHECK(isnan(out[0]) && out[3] == 28.5f);
    md_conv_free(&conv);
    /* invalid parameters give no output size */
    md_conv2d_params bad = p;
    bad.stride_h = 0;
    CHECK(!md_conv2d_output_size(&bad, 3, 3, &oh, &ow));
    bad = p;
    bad.kernel_h = 5; /* larger than the padded input */
    CHECK(!md_conv2d_output_size(&bad, 3, 3, &oh, &ow));
}

/* A wide image splits into many bands over a pool: the same bits as one
 * thread, direct and Winograd. */
static void test_conv_threads_bit_identical(void)
{
    md_conv2d_params p = {16, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    int H = 61, W = 283;
    float *in = rand_floats((size_t)16 * H * W), *w = rand_floats((size_t)24 * 16 * 9);
    float *b = rand_floats(24), *o1 = malloc(sizeof(float) * 24 * H * W),
          *o2 = malloc(sizeof(float) * 24 * H * W);
    md_threadpool *pool = md_pool_create(4);
    for (int algo = MD_CONV_DIRECT; algo <= MD_CONV_FAST; algo++) {
        md_conv conv;
        CHECK(md_conv_init(&conv, &p, MD_GEMM_F32, (md_conv_algo)algo, w, b));
        CHECK(conv.winograd == (algo == MD_CONV_FAST));
        md_conv_src src = md_conv_plain_src(in, H, W);
        md_conv_dst d1 = md_conv_to(o1, 0.0f, INFINITY), d2 = md_conv_to(o2, 0.0f, INFINITY);
        CHECK(md_conv_forward(&conv, NULL, &src, &d1, NULL));
        CHECK(md_conv_forward(&conv, pool, &src, &d2, NULL));
        CHECK(memcmp(o1, o2, sizeof(float) * 24 * H * W) == 0);
        md_conv_free(&conv);
    }
    md_pool_destroy(pool);
    free(in); free(w); free(b); free(o1); free(o2);
}

/* Winograd F(4x4, 3x3) against the direct sum in double: every source and
 * destination mode, sizes around the 4x4 tiles and the 16-tile vectors,
 * products whose tiles run across tile rows and end mid-row, tasks of one
 * to four tile rows (three with an upsampled source); and which
 * convolutions take it. */
static void test_conv_winograd(void)
{
    md_threadpool *pool = md_pool_create(3);
    md_conv2d_params p = {8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(md_conv_is_winograd(&p, MD_GEMM_F32, MD_CONV_FAST));
    CHECK(!md_conv_is_winograd(&p, MD_GEMM_F32, MD_CONV_DIRECT));
    CHECK(!md_conv_is_winograd(&p, MD_GEMM_BF16, MD_CONV_FAST));
    md_conv2d_params q = p;
    q.stride_w = 2;
    CHECK(!md_conv_is_winograd(&q, MD_GEMM_F32, MD_CONV_FAST));
    q = p;
    q.pad_right = 0;
    CHECK(!md_conv_is_winograd(&q, MD_GEMM_F32, MD_CONV_FAST));
    q = p;
    q.groups = 2;
    CHECK(!md_conv_is_winograd(&q, MD_GEMM_F32, MD_CONV_FAST));
    const int sizes[][2] = {{1, 1}, {1, 5}, {4, 4}, {5, 3}, {7, 17}, {12, 63}, {13, 64},
                            {14, 65}, {25, 127}, {3, 256}, {6, 257}, {9, 300}, {2, 520},
                            {70, 30}, {130, 100}};
    double rel = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (int mode = 0; mode < 5; mode++) {
            p.in_channels = 1 + (int)(i * 7 + (size_t)mode * 3) % 70;
            p.out_channels = 1 + (int)(i * 5 + (size_t)mode) % 40;
            double r = check_conv_algo(&p, sizes[i][0], sizes[i][1], (i + (size_t)mode) % 2 == 0,
                                       mode, mode % 2 ? pool : NULL, MD_GEMM_F32, MD_CONV_FAST);
            rel = r > rel ? r : rel;
        }
    /* many channels: products of fewer tiles, chunks that end mid-row */
    p.in_channels = 200;
    p.out_channels = 5;
    for (int mode = 0; mode < 5; mode += 2) {
        double r = check_conv_algo(&p, 66, 90, true, mode, pool, MD_GEMM_F32, MD_CONV_FAST);
        rel = r > rel ? r : rel;
    }
    fprintf(stderr, "  winograd: max error %.2g of the products' magnitudes\n", rel);
    /* a NaN reaches its 3x3 neighbours (and may reach the rest of its 4x4
     * tiles), not outputs two tiles away */
    int H = 16, W = 16;
    float *in = rand_floats((size_t)H * W), *w = rand_floats(9), out[16 * 16];
    in[5 * W + 6] = NAN;
    md_conv2d_params one = {1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    md_conv conv;
    CHECK(md_conv_init(&conv, &one, MD_GEMM_F32, MD_CONV_FAST, w, NULL));
    md_conv_src src = md_conv_plain_src(in, H, W);
    md_conv_dst dst = md_conv_to(out, -INFINITY, INFINITY);
    CHECK(md_conv_forward(&conv, NULL, &src, &dst, NULL));
    for (int y = 4; y <= 6; y++)
        for (int x = 5; x <= 7; x++)
            CHECK(isnan(out[y * W + x]));
    CHECK(!isnan(out[0]) && !isnan(out[15 * W + 15]) && !isnan(out[12 * W + 0]));
    md_conv_free(&conv);
    free(in);
    free(w);
    md_pool_destroy(pool);
}

/* The one max pool: first maximum, NaN wins, padding ignored, argmax. */
static void test_maxpool(void)
{
    md_pool2d_params p = {3, 3, 2, 2, 1, 1, 1, 1, 0};
    float in[16];
    for (int i = 0; i < 16; i++)
        in[i] = (float)((i * 7) % 16);
    float out[4];
    int32_t arg[4];
    md_maxpool2d(&p, in, 1, 4, 4, out, 2, 2, arg);
    /* windows: rows -1..1 / 1..3, cols -1..1 / 1..3 */
    for (int oy = 0; oy < 2; oy++)
        for (int ox = 0; ox < 2; ox++) {
            float m = -INFINITY;
            int mi = -1;
            for (int y = 2 * oy - 1; y <= 2 * oy + 1; y++)
                for (int x = 2 * ox - 1; x <= 2 * ox + 1; x++)
                    if (y >= 0 && y < 4 && x >= 0 && x < 4 && in[y * 4 + x] > m) {
                        m = in[y * 4 + x];
                        mi = y * 4 + x;
                    }
            CHECK(out[oy * 2 + ox] == m && arg[oy * 2 + ox] == mi);
        }
    in[0] = NAN; /* only the first window sees it */
    md_maxpool2d(&p, in, 1, 4, 4, out, 2, 2, NULL);
    CHECK(isnan(out[0]) && !isnan(out[1]) && !isnan(out[2]) && !isnan(out[3]));
}

/* The fast exponential under GELU and softmax is defined for NaN and Inf:
 * NaN stays NaN (it once became e^88, so a NaN score turned into a believable
 * attention weight, and UBSan flagged the float-to-int conversion), +inf
 * stays non-finite; finite inputs keep their values. */
static void test_nonfinite_math(void)
{
    float g[40];
    for (int i = 0; i < 40; i++)
        g[i] = (float)(i - 20) * 0.25f;
    g[3] = NAN;
    g[17] = INFINITY;
    g[35] = NAN; /* in the tail of a 16-lane loop */
    md_gelu_erf(g, 40);
    CHECK(isnan(g[3]) && isnan(g[35]));
    CHECK(!isfinite(g[17])); /* +inf (scalar path) or NaN (the vector path's reciprocal) */
    for (int i = 0; i < 40; i++) {
        if (i == 3 || i == 17 || i == 35)
            continue;
        double v = (i - 20) * 0.25, want = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        CHECK_MSG(fabs(g[i] - want) < 1e-5, "gelu(%g) = %g, want %g", v, (double)g[i], want);
    }

    /* ReLU as the convolution reads its source: NaN passes, -0 becomes +0 */
    float r[37], rr[37];
    for (int i = 0; i < 37; i++)
        r[i] = (float)(i % 7) - 3.0f;
    r[2] = NAN;
    r[20] = -0.0f;
    r[33] = NAN; /* past the last whole 16-lane vector */
    r[34] = -INFINITY;
    r[35] = INFINITY;
    md_relu_copy(r, rr, 37);
    for (int i = 0; i < 37; i++) {
        if (i == 2 || i == 33) {
            CHECK(isnan(rr[i]));
            continue;
        }
        float want = r[i] > 0.0f ? r[i] : 0.0f;
        CHECK_MSG(rr[i] == want && !signbit(rr[i]), "relu(%g) = %g", (double)r[i], (double)rr[i]);
    }

    /* attention: one NaN key poisons every row (softmax over it) instead of
     * taking all the weight with a finite value */
    enum { T = 20, D = 4 };
    float qkv[T * 3 * D], out[T * D];
    size_t kv_bytes = (md_attention_kv_bytes(MD_GEMM_F32, T, D) + 63) / 64 * 64;
    size_t s_bytes = (md_attention_scratch_bytes(MD_GEMM_F32, T, D) + 63) / 64 * 64;
    void *kv = aligned_alloc(64, kv_bytes), *scratch = aligned_alloc(64, s_bytes);
    CHECK(kv && scratch);
    for (int i = 0; i < T * 3 * D; i++)
        qkv[i] = (float)((i * 37) % 11) * 0.1f - 0.5f;
    for (int pos = 0; pos < 2; pos++) {
        float saved = qkv[(pos ? 18 : 5) * 3 * D + D + 1];
        qkv[(pos ? 18 : 5) * 3 * D + D + 1] = NAN; /* token 5 (or 18)'s key */
        md_attention_pack_kv(MD_GEMM_F32, qkv, NULL, T, 1, D, 0, kv);
        md_attention_rows(MD_GEMM_F32, qkv, NULL, kv, T, 1, D, 0, 0, T, out, NULL, scratch);
        int finite = 0;
        for (int i = 0; i < T * D; i++)
            finite += isfinite(out[i]) != 0;
        CHECK_MSG(finite == 0, "%d of %d attention outputs finite with a NaN key", finite, T * D);
        qkv[(pos ? 18 : 5) * 3 * D + D + 1] = saved;
    }
    md_attention_pack_kv(MD_GEMM_F32, qkv, NULL, T, 1, D, 0, kv);
    md_attention_rows(MD_GEMM_F32, qkv, NULL, kv, T, 1, D, 0, 0, T, out, NULL, scratch);
    for (int i = 0; i < T * D; i++)
        CHECK(isfinite(out[i]));
    free(kv);
    free(scratch);
}

/* Attention against softmax(q k^T / sqrt d) v in double, float32 and bf16
 * (on the bf16-rounded values, output as bf16), 97 tokens of two heads,
 * queries in two calls [0, 52) and [52, 97): blocks of 36, 16 (whose packed
 * q has 8-row panels) and 36, 9 rows. q is scaled so the scores span about
 * +-20 and the exponential runs over its whole reduced range. bf16: an even
 * head width reads only the bf16 copy of qkv, an odd one the float32 qkv
 * (its q pairs would straddle heads). Widths 4 and 5, and 64 (ViT-S's),
 * whose bf16 V panels are whole and pack by permutes (97 tokens: a last V
 * pair of one token, a last K panel of one). */
static void test_attention_vs_double(void)
{
    const int widths[] = {4, 5, 64};
    for (int bf = 0; bf < 2; bf++)
        for (int wi = 0; wi < 3; wi++) {
            int D = widths[wi];
            float amp = D < 16 ? 6.0f : 6.0f * sqrtf(4.0f / (float)D);
            enum { T = 97, H = 2 };
            md_gemm_type type = bf ? MD_GEMM_BF16 : MD_GEMM_F32;
            int dim = H * D;
            float *qkv = rand_floats((size_t)T * 3 * dim), *out = malloc(sizeof(float) * T * dim);
            uint16_t *q16 = malloc(sizeof(uint16_t) * T * 3 * dim);
            uint16_t *o16 = malloc(sizeof(uint16_t) * T * dim);
            size_t kv_bytes = (md_attention_kv_bytes(type, T, D) + 63) / 64 * 64;
            size_t s_bytes = (md_attention_scratch_bytes(type, T, D) + 63) / 64 * 64;
            void *kv = aligned_alloc(64, kv_bytes), *scratch = aligned_alloc(64, s_bytes);
            float *nan_qkv = malloc(sizeof(float) * T * 3 * dim);
            CHECK(qkv && out && q16 && o16 && kv && scratch && nan_qkv);
            for (int t = 0; t < T; t++)
                for (int c = 0; c < dim; c++)
                    qkv[(size_t)t * 3 * dim + c] *= amp;
            for (int i = 0; i < T * 3 * dim; i++) {
                q16[i] = md_bf16_from_f32(qkv[i]);
                /* bf16, even widths: only the bf16 copy may be read */
                nan_qkv[i] = bf && D % 2 == 0 ? NAN : qkv[i];
            }
            for (int h = 0; h < H; h++) {
                md_attention_pack_kv(type, nan_qkv, bf ? q16 : NULL, T, H, D, h, kv);
                md_attention_rows(type, nan_qkv, bf ? q16 : NULL, kv, T, H, D, h, 0, 52, out,
                                  bf ? o16 : NULL, scratch);
                md_attention_rows(type, nan_qkv, bf ? q16 : NULL, kv, T, H, D, h, 52, T, out,
                                  bf ? o16 : NULL, scratch);
            }
            double worst = 0;
            for (int h = 0; h < H; h++)
                for (int i = 0; i < T; i++) {
#define QKV(t, c) (bf ? (double)md_bf16_to_f32(q16[(size_t)(t) * 3 * dim + (c)]) \
                      : (double)qkv[(size_t)(t) * 3 * dim + (c)])
                    double sc[T], mx = -1e300, sum = 0;
                    for (int j = 0; j < T; j++) {
                        double dot = 0;
                        for (int d = 0; d < D; d++)
                            dot += QKV(i, h * D + d) * QKV(j, dim + h * D + d);
                        sc[j] = dot / sqrt((double)D);
                        mx = sc[j] > mx ? sc[j] : mx;
                    }
                    for (int j = 0; j < T; j++)
                        sum += (sc[j] = exp(sc[j] - mx));
                    for (int d = 0; d < D; d++) {
                        double v = 0;
                        for (int j = 0; j < T; j++)
                            v += sc[j] / sum * QKV(j, 2 * dim + h * D + d);
                        size_t o = (size_t)i * dim + h * D + d;
                        double got = bf ? md_bf16_to_f32(o16[o]) : out[o];
                        double err = fabs(got - v);
                        worst = err > worst ? err : worst;
                    }
#undef QKV
                }
            /* float32: a few roundings of values up to 6; bf16: probabilities
             * rounded to bf16 (2^-9 relative each), output rounded once */
            double tol = bf ? 6e-3 : 2e-6;
            CHECK_MSG(worst < tol, "%s attention D %d: max err %g", bf ? "bf16" : "fp32", D, worst);
            free(qkv);
            free(out);
            free(q16);
            free(o16);
            free(kv);
            free(scratch);
            free(nan_qkv);
        }
}

/* The double-against-float reductions of the scale predictor, on values
 * whose sums are exact in double: x = i / 2, y = i gives (x - y)^2 = i^2 / 4,
 * summing to (n - 1) n (2n - 1) / 24; x = 1 gives n (n - 1) / 2. Lengths
 * below, at and past the eight partial sums, with a tail, and the
 * predictor's 7280. */
static void test_dvec_float_rows(void)
{
    const size_t ns[] = {0, 1, 7, 8, 13, 64, 7280};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        size_t n = ns[t];
        double *x = malloc(sizeof(double) * (n + 1)), *one = malloc(sizeof(double) * (n + 1));
        float *y = malloc(sizeof(float) * (n + 1));
        for (size_t i = 0; i < n; i++) {
            x[i] = 0.5 * (double)i;
            one[i] = 1.0;
            y[i] = (float)i;
        }
        double dn = (double)n;
        double sq = n ? (dn - 1) * dn * (2 * dn - 1) / 24.0 : 0.0, dot = dn * (dn - 1) / 2.0;
        CHECK_MSG(md_dsqdist_f(n, x, y) == sq, "n %zu: %.17g, want %.17g", n,
                  md_dsqdist_f(n, x, y), sq);
        CHECK_MSG(md_ddot_f(n, one, y) == dot, "n %zu: %.17g, want %.17g", n,
                  md_ddot_f(n, one, y), dot);
        free(x);
        free(one);
        free(y);
    }
}

/* The bounded distance of the k-NN: the whole sum (bit for bit) unless a
 * partial sum passes the bound, then a value in (bound, whole]. With x = i / 2,
 * y = i every partial sum is exact: the first 512 terms (the first block
 * checked) sum to 511 x 512 x 1023 / 24. */
static void test_dvec_bounded_distance(void)
{
    const size_t ns[] = {0, 7, 511, 512, 513, 1024, 1030, 7280};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        size_t n = ns[t];
        double *x = malloc(sizeof(double) * (n + 1));
        float *y = malloc(sizeof(float) * (n + 1));
        for (size_t i = 0; i < n; i++) {
            x[i] = 0.5 * (double)i;
            y[i] = (float)i;
        }
        double dn = (double)n, sq = n ? (dn - 1) * dn * (2 * dn - 1) / 24.0 : 0.0;
        double first = 511.0 * 512.0 * 1023.0 / 24.0;
        CHECK(md_dsqdist_f_below(n, x, y, INFINITY) == sq);
        CHECK(md_dsqdist_f_below(n, x, y, sq) == sq); /* not past it: the whole sum */
        if (n > 1) {
            double v = md_dsqdist_f_below(n, x, y, sq - 1);
            CHECK_MSG(v > sq - 1 && v <= sq, "n %zu: %.17g past %.17g", n, v, sq - 1);
        }
        /* a partial sum equal to the bound is not past it: the next check
         * (after 1024 terms, or the whole sum) stops */
        if (n > 512)
            CHECK(md_dsqdist_f_below(n, x, y, first) ==
                  (n < 1024 ? sq : 1023.0 * 1024.0 * 2047.0 / 24.0));
        /* past the bound within the first block: stops there */
        double v = md_dsqdist_f_below(n, x, y, 1.0);
        CHECK_MSG(n < 512 ? v == sq : v == first, "n %zu: %.17g", n, v);
        free(x);
        free(y);
    }
}

/* Per-channel means against the plain mean in double, for channel counts
 * around the kernel's groups of four and planes shorter than, equal to and
 * past its eight lanes (FastDepth's 7x7 and 14x14 among them). */
static void test_channel_means(void)
{
    const size_t hws[] = {1, 7, 8, 9, 49, 196, 1000};
    for (size_t channels = 1; channels <= 9; channels++)
        for (size_t t = 0; t < sizeof hws / sizeof hws[0]; t++) {
            size_t hw = hws[t];
            float *x = malloc(sizeof(float) * channels * hw), out[9];
            for (size_t i = 0; i < channels * hw; i++)
                x[i] = (float)(1.0 + uniform()) + (float)(i / hw); /* channel c: c + [0, 2) */
            md_channel_means(x, channels, hw, out);
            for (size_t c = 0; c < channels; c++) {
                double want = 0;
                for (size_t k = 0; k < hw; k++)
                    want += x[c * hw + k];
                want /= (double)hw;
                CHECK_MSG(fabs(out[c] - want) <= 1e-6 * (double)(c + 2) * (1.0 + (double)hw / 8),
                          "channels %zu hw %zu c %zu: %.9g, want %.9g", channels, hw, c, out[c],
                          want);
            }
            free(x);
        }
}

int main(void)
{
    md_cpu_features f = md_cpu_detect();
    fprintf(stderr, "kernels: %s, %s (avx512 %d, avx512_bf16 %d, amx %d)\n",
            md_gemm_isa_name(md_gemm_isa_best(MD_GEMM_F32)),
            md_gemm_isa_name(md_gemm_isa_best(MD_GEMM_BF16)), f.avx512, f.avx512_bf16, f.amx_bf16);
    RUN_TEST(test_bf16_rounding);
    RUN_TEST(test_gemm_random);
    RUN_TEST(test_bf16_native_vs_emulated);
    RUN_TEST(test_sgemm_transposes);
    RUN_TEST(test_gemm_threads_bit_identical);
    RUN_TEST(test_gemm_tail_columns);
    RUN_TEST(test_nonfinite_math);
    RUN_TEST(test_attention_vs_double);
    RUN_TEST(test_conv_by_hand);
    RUN_TEST(test_conv_random);
    RUN_TEST(test_depthwise_widths);
    RUN_TEST(test_pointwise_small_planes);
    RUN_TEST(test_conv_first_layer);
    RUN_TEST(test_conv_threads_bit_identical);
    RUN_TEST(test_depthwise_plane_bits);
    RUN_TEST(test_conv_winograd);
    RUN_TEST(test_resize_linear);
    RUN_TEST(test_resize_nearest_x2);
    RUN_TEST(test_maxpool);
    RUN_TEST(test_dvec_float_rows);
    RUN_TEST(test_dvec_bounded_distance);
    RUN_TEST(test_channel_means);
    return check_finish();
}
