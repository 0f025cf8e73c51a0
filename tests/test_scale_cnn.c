/* The scale CNN against independent truth:
 *  - every layer's forward against a naive loop written here, and its
 *    backward against central finite differences of the forward (loss =
 *    sum r_i y_i with random r, accumulated in double);
 *  - whole networks (both architectures, tiny inputs) against finite
 *    differences of the MSE loss for a random subset of every tensor;
 *  - Adam against hand-computed updates, StepLR against its definition;
 *  - the half-pixel bilinear preprocessing against hand-computed values;
 *  - a small training run that must fit 6 images, save/load round trips,
 *    malformed model files, determinism, and PyTorch's init ranges. */
#include "check.h"
#include "base/base.h"
#include "base/pool.h"
#include "formats/weights.h"
#include "scale/scale_cnn.h"
#include "ops/cnn_ops.h"
#include "ops/train_ops.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static uint64_t g_rng = 12345;

static float frand(float lo, float hi)
{
    return lo + (hi - lo) * md_cnn_rand_unit(&g_rng);
}

static void fill(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = frand(lo, hi);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Compares analytic gradient g[i] with (f(x+h) - f(x-h)) / 2h for `count`
 * indices of x (all when count >= n). */
typedef double (*loss_fn)(void *ctx);

static int grad_check(const char *what, float *x, const float *g, size_t n, size_t count,
                      float h, double rtol, double atol, loss_fn f, void *ctx)
{
    int bad = 0;
    size_t steps = count >= n ? n : count;
    for (size_t s = 0; s < steps; s++) {
        size_t i = count >= n ? s : (size_t)(md_cnn_rand_next(&g_rng) % n);
        float keep = x[i];
        x[i] = keep + h;
        double lp = f(ctx);
        x[i] = keep - h;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * (double)h);
        double ana = g[i];
        double tol = rtol * fmax(fabs(num), fabs(ana)) + atol;
        if (!(fabs(num - ana) <= tol)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: analytic %.8g numeric %.8g\n", what, i, ana, num);
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%s: %d of %zu gradient entries off", what, bad, steps);
    return bad;
}

/* ------------------------------------------------------------ conv */

typedef struct {
    md_conv2d_params p;
    int in_h, in_w, out_h, out_w;
    float *in, *w, *b, *out, *r, *col;
} conv_ctx;

static double conv_loss(void *v)
{
    conv_ctx *c = v;
    md_conv conv;
    CHECK(md_conv_init(&conv, &c->p, MD_GEMM_F32, MD_CONV_DIRECT, c->w, c->b));
    md_conv_src src = md_conv_plain_src(c->in, c->in_h, c->in_w);
    md_conv_dst dst = md_conv_to(c->out, -INFINITY, INFINITY);
    CHECK(md_conv_forward(&conv, NULL, &src, &dst, NULL));
    md_conv_free(&conv);
    return dot(c->out, c->r, (size_t)c->p.out_channels * c->out_h * c->out_w);
}

static void conv_case(int cin, int cout, int h, int w, int stride, int pad)
{
    conv_ctx c;
    memset(&c, 0, sizeof c);
    c.p.in_channels = cin;
    c.p.out_channels = cout;
    c.p.kernel_h = c.p.kernel_w = 3;
    c.p.stride_h = c.p.stride_w = stride;
    c.p.pad_top = c.p.pad_left = c.p.pad_bottom = c.p.pad_right = pad;
    c.p.dilation_h = c.p.dilation_w = 1;
    c.p.groups = 1;
    c.in_h = h;
    c.in_w = w;
    c.out_h = (h + 2 * pad - 3) / stride + 1;
    c.out_w = (w + 2 * pad - 3) / stride + 1;
    size_t ni = (size_t)cin * h * w, nw = (size_t)cout * cin * 9,
           no = (size_t)cout * c.out_h * c.out_w, ncol = (size_t)cin * 9 * c.out_h * c.out_w;
    c.in = malloc(ni * 4);
    c.w = malloc(nw * 4);
    c.b = malloc((size_t)cout * 4);
    c.out = malloc(no * 4);
    c.r = malloc(no * 4);
    c.col = malloc(ncol * 4);
    float *dcol = malloc(ncol * 4), *dw = calloc(nw, 4), *db = calloc((size_t)cout, 4),
          *din = malloc(ni * 4);
    fill(c.in, ni, -1, 1);
    fill(c.w, nw, -0.5f, 0.5f);
    fill(c.b, (size_t)cout, -0.5f, 0.5f);
    fill(c.r, no, -1, 1);
    conv_loss(&c);
    /* Forward against a direct loop. */
    double worst = 0.0;
    for (int o = 0; o < cout; o++)
        for (int oy = 0; oy < c.out_h; oy++)
            for (int ox = 0; ox < c.out_w; ox++) {
                double s = c.b[o];
                for (int ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            s += (double)c.w[((o * cin + ci) * 3 + ky) * 3 + kx] *
                                 c.in[((size_t)ci * h + iy) * w + ix];
                        }
                double d = fabs(s - c.out[((size_t)o * c.out_h + oy) * c.out_w + ox]);
                if (d > worst)
                    worst = d;
            }
    CHECK_MSG(worst < 1e-4, "conv forward vs direct loop: max diff %g", worst);
    md_conv_backward(&c.p, c.in, h, w, c.w, c.r, c.out_h, c.out_w, dw, db, din, c.col, dcol);
    grad_check("conv dW", c.w, dw, nw, 60, 1e-2f, 1e-3, 1e-4, conv_loss, &c);
    grad_check("conv db", c.b, db, (size_t)cout, 1000, 1e-2f, 1e-3, 1e-4, conv_loss, &c);
    grad_check("conv dX", c.in, din, ni, 1000, 1e-2f, 1e-3, 1e-4, conv_loss, &c);
    /* Accumulation: a second backward adds the same weight gradient again. */
    float *dw2 = malloc(nw * 4);
    memcpy(dw2, dw, nw * 4);
    md_conv_backward(&c.p, c.in, h, w, c.w, c.r, c.out_h, c.out_w, dw, db, NULL, c.col,
                           dcol);
    double accum_err = 0.0;
    for (size_t i = 0; i < nw; i++)
        accum_err = fmax(accum_err, fabs(dw[i] - 2.0 * dw2[i]));
    CHECK_MSG(accum_err < 1e-4, "conv dW accumulates: %g", accum_err);
    free(dw2);
    free(c.in);
    free(c.w);
    free(c.b);
    free(c.out);
    free(c.r);
    free(c.col);
    free(dcol);
    free(dw);
    free(db);
    free(din);
}

static void test_conv(void)
{
    conv_case(2, 3, 5, 6, 1, 1); /* padding 1, stride 1 (the paper's convs) */
    conv_case(3, 4, 7, 6, 2, 1); /* stride 2 with padding (the compact convs), odd size */
    conv_case(2, 2, 4, 4, 1, 0); /* no padding */
}

/* ------------------------------------------------------------ ReLU, pools, linear, MSE */

typedef struct {
    float *x, *y, *r;
    size_t n;
} relu_ctx;

static double relu_loss(void *v)
{
    relu_ctx *c = v;
    double s = 0.0;
    for (size_t i = 0; i < c->n; i++)
        s += (double)(c->x[i] > 0 ? c->x[i] : 0.0f) * c->r[i];
    return s;
}

static void test_relu(void)
{
    enum { N = 40 };
    float x[N], y[N], r[N], g[N];
    for (int i = 0; i < N; i++) {
        float a = frand(0.1f, 1.0f); /* away from the kink by more than h */
        x[i] = (i % 2) ? a : -a;
        y[i] = x[i] > 0 ? x[i] : 0;
        r[i] = frand(-1, 1);
        g[i] = r[i];
    }
    md_relu_backward(y, g, N);
    for (int i = 0; i < N; i++)
        CHECK(g[i] == (x[i] > 0 ? r[i] : 0.0f));
    relu_ctx c = {x, y, r, N};
    grad_check("relu", x, g, N, N, 1e-2f, 1e-3, 1e-5, relu_loss, &c);
    /* And the fused ReLU of md_linear_forward clamps exactly. */
    float w1 = 1.0f, in[3] = {-2, 0.5f, 3}, out[3];
    md_linear_forward(in, 3, 1, 1, &w1, NULL, true, out, NULL);
    CHECK(out[0] == 0.0f && out[1] == 0.5f && out[2] == 3.0f);
}

typedef struct {
    float *in, *out, *r;
    int32_t *arg;
    size_t planes;
    int h, w, oh, ow, k, s;
    md_threadpool *pool;
} pool_ctx;

static double pool_loss(void *v)
{
    pool_ctx *c = v;
    md_maxpool_forward(c->in, c->planes, c->h, c->w, c->k, c->s, c->out, c->oh, c->ow, c->arg,
                       c->pool);
    return dot(c->out, c->r, c->planes * (size_t)c->oh * c->ow);
}

static void maxpool_case(int h, int k, int st, int threads)
{
    pool_ctx c;
    c.planes = 3;
    c.h = h; /* 5: floor mode drops the last row; 4: windows tile the plane */
    c.w = 6;
    c.k = k;
    c.s = st;
    c.oh = (h - k) / st + 1;
    c.ow = (6 - k) / st + 1;
    c.pool = md_pool_create(threads);
    size_t ni = c.planes * (size_t)h * 6, no = c.planes * (size_t)c.oh * c.ow;
    c.in = malloc(ni * 4);
    c.out = malloc(no * 4);
    c.r = malloc(no * 4);
    c.arg = malloc(no * 4);
    float *din = malloc(ni * 4);
    /* Distinct values at least 0.05 apart so +-h never changes the argmax. */
    for (size_t i = 0; i < ni; i++)
        c.in[i] = 0.05f * (float)((i * 37) % ni) - 1.0f;
    for (size_t i = 0; i < ni; i++)
        din[i] = NAN; /* every entry must be written */
    fill(c.r, no, -1, 1);
    pool_loss(&c);
    int wrong = 0;
    for (size_t p = 0; p < c.planes; p++)
        for (int oy = 0; oy < c.oh; oy++)
            for (int ox = 0; ox < c.ow; ox++) {
                float m = -INFINITY;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++)
                        m = fmaxf(m, c.in[p * (size_t)h * 6 + (size_t)(oy * st + ky) * 6 +
                                          ox * st + kx]);
                wrong += c.out[(p * (size_t)c.oh + oy) * c.ow + ox] != m;
            }
    CHECK_MSG(wrong == 0, "maxpool forward: %d wrong", wrong);
    md_maxpool_backward(c.r, c.arg, c.planes, c.h, c.w, k, st, c.oh, c.ow, din, c.pool);
    grad_check("maxpool dX", c.in, din, ni, ni, 1e-2f, 1e-3, 1e-5, pool_loss, &c);
    free(c.in);
    free(c.out);
    free(c.r);
    free(c.arg);
    free(din);
    md_pool_destroy(c.pool);
}

static void test_maxpool(void)
{
    maxpool_case(5, 2, 2, 1); /* 2x2 fast path, last row dropped: scatter backward */
    maxpool_case(4, 2, 2, 2); /* 2x2 tiling the plane: branch-free backward, 2 threads */
    maxpool_case(5, 3, 2, 2); /* overlapping 3x3 windows: the general loops */
    /* Ties go to the first maximum in scan order, as PyTorch. */
    float tie[4] = {1, 1, 1, 1}, o;
    int32_t a;
    md_maxpool_forward(tie, 1, 2, 2, 2, 2, &o, 1, 1, &a, NULL);
    CHECK(a == 0 && o == 1.0f);
}

typedef struct {
    float *in, *out, *r;
    size_t planes, hw;
} gap_ctx;

static double gap_loss(void *v)
{
    gap_ctx *c = v;
    md_global_avgpool(c->in, c->planes, c->hw, c->out);
    return dot(c->out, c->r, c->planes);
}

static void test_gap(void)
{
    gap_ctx c = {NULL, NULL, NULL, 4, 7};
    float in[28], out[4], r[4], din[28];
    c.in = in;
    c.out = out;
    c.r = r;
    fill(in, 28, -1, 1);
    fill(r, 4, -1, 1);
    gap_loss(&c);
    for (int p = 0; p < 4; p++) {
        double s = 0;
        for (int i = 0; i < 7; i++)
            s += in[p * 7 + i];
        CHECK_NEAR(out[p], s / 7, 1e-6);
    }
    md_gap_backward(r, 4, 7, din);
    grad_check("gap dX", in, din, 28, 28, 1e-2f, 1e-3, 1e-5, gap_loss, &c);
}

typedef struct {
    float *x, *w, *b, *y, *r;
    int batch, in_f, out_f;
    bool relu;
} lin_ctx;

static double lin_loss(void *v)
{
    lin_ctx *c = v;
    md_linear_forward(c->x, c->batch, c->in_f, c->out_f, c->w, c->b, c->relu, c->y, NULL);
    return dot(c->y, c->r, (size_t)c->batch * c->out_f);
}

static void test_linear(void)
{
    lin_ctx c = {NULL, NULL, NULL, NULL, NULL, 3, 7, 5, false};
    float x[21], w[35], b[5], y[15], r[15], dx[21], dw[35], db[5];
    c.x = x;
    c.w = w;
    c.b = b;
    c.y = y;
    c.r = r;
    fill(x, 21, -1, 1);
    fill(w, 35, -1, 1);
    fill(b, 5, -1, 1);
    fill(r, 15, -1, 1);
    lin_loss(&c);
    double worst = 0;
    for (int bb = 0; bb < 3; bb++)
        for (int o = 0; o < 5; o++) {
            double s = b[o];
            for (int i = 0; i < 7; i++)
                s += (double)x[bb * 7 + i] * w[o * 7 + i];
            worst = fmax(worst, fabs(s - y[bb * 5 + o]));
        }
    CHECK_MSG(worst < 1e-5, "linear forward: %g", worst);
    md_linear_backward(x, 3, 7, 5, w, r, dw, db, dx, NULL);
    grad_check("linear dW", w, dw, 35, 35, 1e-2f, 1e-3, 1e-5, lin_loss, &c);
    grad_check("linear db", b, db, 5, 5, 1e-2f, 1e-3, 1e-5, lin_loss, &c);
    grad_check("linear dX", x, dx, 21, 21, 1e-2f, 1e-3, 1e-5, lin_loss, &c);
}

typedef struct {
    float *p, *t;
    int n;
} mse_ctx;

static double mse_loss(void *v)
{
    mse_ctx *c = v;
    return md_mse_loss(c->p, c->t, c->n, NULL);
}

static void test_mse(void)
{
    float p[3] = {1.0f, -0.5f, 2.0f}, t[3] = {0.5f, 0.5f, 2.0f}, g[3];
    /* (0.25 + 1 + 0) / 3 */
    CHECK_NEAR(md_mse_loss(p, t, 3, g), 1.25 / 3, 1e-12);
    CHECK_NEAR(g[0], 2 * 0.5 / 3, 1e-7);
    CHECK_NEAR(g[1], 2 * -1.0 / 3, 1e-7);
    CHECK_NEAR(g[2], 0.0, 1e-12);
    mse_ctx c = {p, t, 3};
    grad_check("mse", p, g, 3, 3, 1e-2f, 1e-4, 1e-6, mse_loss, &c);
}

/* ------------------------------------------------------------ whole networks */

/* An independent double-precision forward pass written from the layer
 * definitions (direct convolution loops, window maxima, plain sums); only the
 * shapes come from the spec. */
static void ref_forward(const md_cnn_spec *s, const double *params, const double *input, int n,
                        double *out)
{
    size_t maxsz = md_cnn_layer_in_size(&s->layers[0]);
    for (int i = 0; i < s->n_layers; i++)
        if (md_cnn_layer_out_size(&s->layers[i]) > maxsz)
            maxsz = md_cnn_layer_out_size(&s->layers[i]);
    double *a = malloc(sizeof(double) * maxsz), *b = malloc(sizeof(double) * maxsz);
    for (int smp = 0; smp < n; smp++) {
        size_t isz0 = md_cnn_layer_in_size(&s->layers[0]);
        memcpy(a, input + (size_t)smp * isz0, sizeof(double) * isz0);
        for (int li = 0; li < s->n_layers; li++) {
            const md_cnn_layer *l = &s->layers[li];
            const double *W = params + l->w_off, *B = params + l->b_off;
            for (int o = 0; o < l->out_c; o++)
                for (int oy = 0; oy < l->out_h; oy++)
                    for (int ox = 0; ox < l->out_w; ox++) {
                        double v = 0;
                        if (l->kind == MD_CNN_CONV) {
                            v = B[o];
                            for (int c = 0; c < l->in_c; c++)
                                for (int ky = 0; ky < l->k; ky++)
                                    for (int kx = 0; kx < l->k; kx++) {
                                        int iy = oy * l->stride - l->pad + ky;
                                        int ix = ox * l->stride - l->pad + kx;
                                        if (iy >= 0 && iy < l->in_h && ix >= 0 && ix < l->in_w)
                                            v += W[((o * l->in_c + c) * l->k + ky) * l->k + kx] *
                                                 a[((size_t)c * l->in_h + iy) * l->in_w + ix];
                                    }
                        } else if (l->kind == MD_CNN_MAXPOOL) {
                            v = -INFINITY;
                            for (int ky = 0; ky < l->k; ky++)
                                for (int kx = 0; kx < l->k; kx++)
                                    v = fmax(v, a[((size_t)o * l->in_h + oy * l->stride + ky) *
                                                      l->in_w +
                                                  ox * l->stride + kx]);
                        } else if (l->kind == MD_CNN_GAP) {
                            for (int j = 0; j < l->in_h * l->in_w; j++)
                                v += a[(size_t)o * l->in_h * l->in_w + j];
                            v /= l->in_h * l->in_w;
                        } else {
                            v = B[o];
                            for (int j = 0; j < l->in_c; j++)
                                v += W[(size_t)o * l->in_c + j] * a[j];
                        }
                        if (l->relu && v < 0)
                            v = 0;
                        b[((size_t)o * l->out_h + oy) * l->out_w + ox] = v;
                    }
            double *t = a;
            a = b;
            b = t;
        }
        out[smp] = a[0];
    }
    free(a);
    free(b);
}

typedef struct {
    const md_cnn_spec *spec;
    double *params, *input, *target;
    int n;
} ref_ctx;

static double ref_loss(ref_ctx *c)
{
    double out[8], s = 0;
    ref_forward(c->spec, c->params, c->input, c->n, out);
    for (int i = 0; i < c->n; i++)
        s += (out[i] - c->target[i]) * (out[i] - c->target[i]);
    return s / c->n;
}

/* Analytic float gradients of the MSE against double central differences
 * (h = 1e-6: far below any ReLU/max kink spacing, rounding ~1e-10). */
static void net_case(md_scale_arch arch, int size, int n, int threads)
{
    md_cnn_spec spec;
    md_cnn_work w;
    md_error err = {0};
    CHECK_OK(md_cnn_spec_init(&spec, arch, size, &err), &err);
    CHECK_OK(md_cnn_work_init(&w, &spec, n, true, threads, &err), &err);
    size_t isz = md_cnn_layer_in_size(&spec.layers[0]), np = spec.n_params;
    float *params = malloc(sizeof(float) * np), *grads = malloc(sizeof(float) * np);
    float target[8], dout[8];
    double dtarget[8];
    double *dparams = malloc(sizeof(double) * np), *dinput = malloc(sizeof(double) * isz * (size_t)n);
    md_cnn_init_params(&spec, params, 7);
    fill(w.act[0], isz * (size_t)n, -1, 1);
    fill(target, (size_t)n, -1, 1);
    for (size_t i = 0; i < np; i++)
        dparams[i] = params[i];
    for (size_t i = 0; i < isz * (size_t)n; i++)
        dinput[i] = w.act[0][i];
    for (int i = 0; i < n; i++)
        dtarget[i] = target[i];
    const float *out = md_cnn_forward(&spec, params, &w, n);
    double ref_out[8];
    ref_forward(&spec, dparams, dinput, n, ref_out);
    for (int i = 0; i < n; i++)
        CHECK_NEAR(out[i], ref_out[i], 1e-4 * (1 + fabs(ref_out[i])));
    md_mse_loss(out, target, n, dout);
    md_cnn_backward(&spec, params, &w, n, dout, grads);
    ref_ctx c = {&spec, dparams, dinput, dtarget, n};
    for (int i = 0; i < spec.n_layers; i++) {
        const md_cnn_layer *l = &spec.layers[i];
        if (l->kind != MD_CNN_CONV && l->kind != MD_CNN_FC)
            continue;
        double gmax = 0;
        for (size_t j = 0; j < l->w_n + l->b_n; j++)
            gmax = fmax(gmax, fabs(grads[l->w_off + j]));
        CHECK_MSG(gmax > 0, "%s %s: all-zero gradient", md_scale_arch_name(arch), l->name);
        int bad = 0, checked = 0;
        for (int which = 0; which < 2; which++) {
            size_t off = which ? l->b_off : l->w_off, cnt = which ? l->b_n : l->w_n;
            int k = which ? 8 : 16;
            for (int s = 0; s < k; s++) {
                size_t j = off + (size_t)(md_cnn_rand_next(&g_rng) % cnt);
                double keep = dparams[j], h = 1e-6;
                dparams[j] = keep + h;
                double lp = ref_loss(&c);
                dparams[j] = keep - h;
                double lm = ref_loss(&c);
                dparams[j] = keep;
                double num = (lp - lm) / (2 * h), ana = grads[j];
                checked++;
                if (!(fabs(num - ana) <= 2e-3 * fmax(fabs(num), fabs(ana)) + 1e-5 * gmax)) {
                    if (bad < 4)
                        fprintf(stderr, "  %s %s.%s[%zu]: analytic %.8g numeric %.8g\n",
                                md_scale_arch_name(arch), l->name, which ? "bias" : "weight",
                                j - off, ana, num);
                    bad++;
                }
            }
        }
        CHECK_MSG(bad == 0, "%s %s: %d of %d gradients off", md_scale_arch_name(arch), l->name,
                  bad, checked);
    }
    md_cnn_work_free(&w);
    free(params);
    free(grads);
    free(dparams);
    free(dinput);
}

static void test_network_gradients(void)
{
    net_case(MD_SCALE_ARCH_COMPACT, 16, 3, 1);
    net_case(MD_SCALE_ARCH_PAPER, 8, 2, 1);
    /* Images split over 2 tasks (3 images: ranges of 1 and 2), partial sums. */
    net_case(MD_SCALE_ARCH_COMPACT, 16, 3, 2);
    net_case(MD_SCALE_ARCH_PAPER, 8, 3, 2);
}

static void test_specs(void)
{
    md_cnn_spec s;
    md_error err = {0};
    CHECK_OK(md_cnn_spec_init(&s, MD_SCALE_ARCH_PAPER, 224, &err), &err);
    /* 3*64*9+64 + 64*128*9+128 + 401408*512+512 + 512+1 */
    CHECK(s.n_params == (size_t)(1728 + 64 + 73728 + 128 + 205520896 + 512 + 512 + 1));
    CHECK(s.layers[4].kind == MD_CNN_FC && s.layers[4].in_c == 128 * 56 * 56);
    CHECK_OK(md_cnn_spec_init(&s, MD_SCALE_ARCH_COMPACT, 224, &err), &err);
    /* 864+32 + 18432+64 + 73728+128 + 147456+128 + 8192+64 + 64+1 = 249153 */
    CHECK(s.n_params == 249153);
    CHECK(s.layers[3].out_h == 14); /* 224 -> 112 -> 56 -> 28 -> 14 */
    CHECK(md_cnn_spec_init(&s, MD_SCALE_ARCH_PAPER, 3, &err) == MD_ERR_ARG);
    CHECK(md_scale_arch_parse("paper") == MD_SCALE_ARCH_PAPER);
    CHECK(md_scale_arch_parse("compact") == MD_SCALE_ARCH_COMPACT);
    CHECK(md_scale_arch_parse("vgg") == -1);
    CHECK(strcmp(md_scale_arch_name(MD_SCALE_ARCH_COMPACT), "compact") == 0);
    md_train_options o = md_train_defaults();
    CHECK(o.input_size == 224 && o.epochs == 30 && o.batch_size == 30 && o.lr == 1e-3 &&
          o.step_size == 10 && o.gamma == 0.5 && o.val_fraction == 0.2 && o.val_every == 5);
}

/* ------------------------------------------------------------ Adam, StepLR */

static void test_adam(void)
{
    /* lr 0.1, betas 0.9/0.999, eps 1e-8, p0 = (1, -2, 0.5).
     * Step 1, g = (0.5, -1, 0): m = 0.1 g = (0.05, -0.1, 0), v = 0.001 g^2 =
     *   (0.00025, 0.001, 0); mhat = m/0.1 = g, vhat = v/0.001 = g^2, so the
     *   step is lr * g/|g| (= 0.1 * sign), x (1 - eps/|g|): p = (0.9, -1.9, 0.5).
     * Step 2, g = (0.5, 1, 2): m = 0.9 m + 0.1 g = (0.095, 0.01, 0.2);
     *   v = 0.999 v + 0.001 g^2 = (0.00049975, 0.001999, 0.004); bc1 = 0.19,
     *   bc2 = 0.001999: mhat = (0.5, 0.0526316, 1.0526316), vhat = (0.25, 1,
     *   2.0010005), sqrt = (0.5, 1, 1.4145672): steps (0.1, 0.00526316,
     *   0.0744137) -> p = (0.8, -1.9052632, 0.4255863).
     * Step 3, g = (-1, 0.25, 0): same formula, p = (0.8075649, -1.9203978, 0.3680643). */
    float p[3] = {1.0f, -2.0f, 0.5f}, m[3] = {0}, v[3] = {0};
    float g1[3] = {0.5f, -1.0f, 0.0f}, g2[3] = {0.5f, 1.0f, 2.0f}, g3[3] = {-1.0f, 0.25f, 0.0f};
    md_adam_step(p, g1, m, v, 3, 0.1, 0.9, 0.999, 1e-8, 1, NULL);
    CHECK_NEAR(p[0], 0.9, 1e-6);
    CHECK_NEAR(p[1], -1.9, 1e-6);
    CHECK_NEAR(p[2], 0.5, 1e-7);
    CHECK_NEAR(m[1], -0.1, 1e-7);
    CHECK_NEAR(v[1], 0.001, 1e-10); /* (1 - beta2) formed in double, as PyTorch */
    md_adam_step(p, g2, m, v, 3, 0.1, 0.9, 0.999, 1e-8, 2, NULL);
    CHECK_NEAR(p[0], 0.8, 1e-6);
    CHECK_NEAR(p[1], -1.9052632, 1e-6);
    CHECK_NEAR(p[2], 0.4255863, 1e-6);
    md_adam_step(p, g3, m, v, 3, 0.1, 0.9, 0.999, 1e-8, 3, NULL);
    CHECK_NEAR(p[0], 0.8075649, 2e-6);
    CHECK_NEAR(p[1], -1.9203978, 2e-6);
    CHECK_NEAR(p[2], 0.3680643, 2e-6);

    /* The same three steps on 19 elements (the 8-lane path for 16, the scalar
     * tail for 3): element i follows case i % 3 of the hand values above. */
    {
        float P[19], M[19] = {0}, V[19] = {0}, G1[19], G2[19], G3[19];
        const float want[3] = {0.8075649f, -1.9203978f, 0.3680643f}, p0[3] = {1, -2, 0.5f};
        for (int i = 0; i < 19; i++) {
            P[i] = p0[i % 3];
            G1[i] = g1[i % 3];
            G2[i] = g2[i % 3];
            G3[i] = g3[i % 3];
        }
        md_adam_step(P, G1, M, V, 19, 0.1, 0.9, 0.999, 1e-8, 1, NULL);
        md_adam_step(P, G2, M, V, 19, 0.1, 0.9, 0.999, 1e-8, 2, NULL);
        md_adam_step(P, G3, M, V, 19, 0.1, 0.9, 0.999, 1e-8, 3, NULL);
        for (int i = 0; i < 19; i++)
            CHECK_NEAR(P[i], want[i % 3], 2e-6);
    }

    /* Threads split elements: bit-identical to one thread on a vector of 3 Mi + 5. */
    size_t n = ((size_t)3 << 20) + 5;
    float *pa = malloc(n * 4), *pb = malloc(n * 4), *g = malloc(n * 4), *ma = calloc(n, 4),
          *va = calloc(n, 4), *mb = calloc(n, 4), *vb = calloc(n, 4);
    fill(pa, n, -1, 1);
    memcpy(pb, pa, n * 4);
    fill(g, n, -1, 1);
    md_adam_step(pa, g, ma, va, n, 1e-3, 0.9, 0.999, 1e-8, 1, NULL);
    md_threadpool *two = md_pool_create(2);
    md_adam_step(pb, g, mb, vb, n, 1e-3, 0.9, 0.999, 1e-8, 1, two);
    md_pool_destroy(two);
    CHECK(memcmp(pa, pb, n * 4) == 0 && memcmp(va, vb, n * 4) == 0);
    free(pa);
    free(pb);
    free(g);
    free(ma);
    free(va);
    free(mb);
    free(vb);

    /* StepLR(step 10, gamma 0.5) from 1e-3: 1e-3 for epochs 0..9, 5e-4 for
     * 10..19, 2.5e-4 for 20..29, 1.25e-4 at 30. */
    CHECK(md_cnn_step_lr(1e-3, 0, 10, 0.5) == 1e-3);
    CHECK(md_cnn_step_lr(1e-3, 9, 10, 0.5) == 1e-3);
    CHECK(md_cnn_step_lr(1e-3, 10, 10, 0.5) == 5e-4);
    CHECK(md_cnn_step_lr(1e-3, 19, 10, 0.5) == 5e-4);
    CHECK(md_cnn_step_lr(1e-3, 20, 10, 0.5) == 2.5e-4);
    CHECK(md_cnn_step_lr(1e-3, 30, 10, 0.5) == 1.25e-4);
    CHECK_NEAR(md_cnn_step_lr(1.0, 7, 3, 0.1), 0.01, 1e-15);
}

/* ------------------------------------------------------------ preprocessing */

static void test_preprocess(void)
{
    /* 2x1 image (black, white) to 4x4: along x, half-pixel sources -0.25 (->0),
     * 0.25, 0.75, 1.25 (->1) give 0, 63.75, 191.25, 255 -> -1, -0.5, 0.5, 1. */
    uint8_t px[6] = {0, 0, 0, 255, 255, 255};
    md_image img = {2, 1, px};
    float out[48], tmp[6];
    md_error err = {0};
    CHECK_OK(md_cnn_preprocess(&img, 4, out, tmp, &err), &err);
    const float want[4] = {-1.0f, -0.5f, 0.5f, 1.0f};
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
                CHECK_NEAR(out[(c * 4 + y) * 4 + x], want[x], 1e-6);
    /* 4x4 to 2x2 (no antialias): sources 0.5 and 2.5, the mean of pixel
     * pairs (0,1) and (2,3) in each direction. Red = 10 x + 40 y. */
    uint8_t p4[48];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            p4[(y * 4 + x) * 3 + 0] = (uint8_t)(10 * x + 40 * y);
            p4[(y * 4 + x) * 3 + 1] = 0;
            p4[(y * 4 + x) * 3 + 2] = 255;
        }
    md_image img4 = {4, 4, p4};
    float o2[12], t4[48];
    CHECK_OK(md_cnn_preprocess(&img4, 2, o2, t4, &err), &err);
    /* red at (x,y) = 10 (2x + 0.5) + 40 (2y + 0.5) = 25 + 20 x + 80 y */
    CHECK_NEAR(o2[0], (25.0 / 255 - 0.5) / 0.5, 1e-6);
    CHECK_NEAR(o2[1], (45.0 / 255 - 0.5) / 0.5, 1e-6);
    CHECK_NEAR(o2[2], (105.0 / 255 - 0.5) / 0.5, 1e-6);
    CHECK_NEAR(o2[3], (125.0 / 255 - 0.5) / 0.5, 1e-6);
    CHECK_NEAR(o2[4], -1.0, 1e-6);
    CHECK_NEAR(o2[11], 1.0, 1e-6);
}

/* ------------------------------------------------------------ training and files */

#define NIMG 6

static md_image g_imgs[NIMG];
static double g_targets[NIMG];

static void make_images(void)
{
    for (int i = 0; i < NIMG; i++) {
        md_image *im = &g_imgs[i];
        im->width = 20 + 3 * i;
        im->height = 18;
        im->pixels = malloc((size_t)im->width * im->height * 3);
        for (int y = 0; y < im->height; y++)
            for (int x = 0; x < im->width; x++) {
                uint8_t *p = im->pixels + ((size_t)y * im->width + x) * 3;
                p[0] = (uint8_t)(40 * i + 2 * x);
                p[1] = (uint8_t)((i % 2) ? 200 - 5 * y : 30 + 5 * y);
                p[2] = (uint8_t)((x * y * (i + 1)) % 256);
            }
        g_targets[i] = -0.5 + 0.2 * i;
    }
}

static md_train_options small_opts(uint64_t seed)
{
    md_train_options o = md_train_defaults();
    o.arch = MD_SCALE_ARCH_COMPACT;
    o.input_size = 16;
    o.epochs = 150;
    o.batch_size = 3;
    o.lr = 3e-3;
    o.step_size = 100;
    o.val_fraction = 0.0;
    o.seed = seed;
    o.threads = 1;
    o.base_model = "tiny_base.onnx";
    o.list_hash = "abc123";
    return o;
}

static int g_progress_calls;
static void count_progress(void *user, const md_train_progress *p)
{
    (void)user;
    g_progress_calls++;
    if (p->batch < 1 || p->batch > p->batches || p->epoch < 1 || p->epoch > p->epochs)
        g_progress_calls = -100000;
}

static void test_training_fits(void)
{
    md_train_options o = small_opts(1);
    o.progress = count_progress;
    md_scale_model *model = NULL;
    md_train_log log = {0};
    md_error err = {0};
    g_progress_calls = 0;
    CHECK_OK(md_scale_model_train(g_imgs, g_targets, NIMG, &o, &model, &log, &err), &err);
    if (!model)
        return;
    CHECK(log.epochs == 150 && log.n_train == 6 && log.n_val == 0);
    CHECK(g_progress_calls == 150 * 2);
    fprintf(stderr, "  train loss: epoch 1 %.4g, epoch 150 %.3g\n", log.train_loss[0],
            log.train_loss[149]);
    CHECK(log.train_loss[149] < 1e-3);
    CHECK(log.train_loss[149] < 0.01 * log.train_loss[0]);
    CHECK(isnan(log.val_loss[149]));
    /* Independently of the log: predictions match the targets. */
    double se = 0;
    for (int i = 0; i < NIMG; i++) {
        double p = 0;
        CHECK_OK(md_scale_model_predict(model, &g_imgs[i], NULL, &p, &err), &err);
        se += (p - g_targets[i]) * (p - g_targets[i]);
    }
    CHECK_MSG(se / NIMG < 2e-3, "predict MSE %g", se / NIMG);
    const char *d = md_scale_model_describe(model);
    CHECK_MSG(strstr(d, "compact scale CNN, 16x16 input") && strstr(d, "tiny_base.onnx"), "%s", d);
    CHECK(strcmp(md_scale_model_base(model), "tiny_base.onnx") == 0);

    /* Save / load: bit-identical predictions, provenance kept. */
    char path[256];
    snprintf(path, sizeof path, "%s/test_scale_cnn_%d.safetensors", MD_BINARY_DIR, (int)getpid());
    CHECK_OK(md_scale_model_save(model, path, &err), &err);
    md_scale_model *back = NULL;
    CHECK_OK(md_scale_model_load(path, &back, &err), &err);
    if (back) {
        for (int i = 0; i < NIMG; i++) {
            double a = 0, b = 1;
            md_scale_model_predict(model, &g_imgs[i], NULL, &a, &err);
            md_scale_model_predict(back, &g_imgs[i], NULL, &b, &err);
            CHECK(memcmp(&a, &b, sizeof a) == 0);
        }
        CHECK(strcmp(md_scale_model_describe(back), md_scale_model_describe(model)) == 0);
    }
    /* The file as a generic safetensors reader sees it. */
    md_weights w;
    memset(&w, 0, sizeof w);
    CHECK_OK(md_weights_open(path, &w, &err), &err);
    CHECK(w.count == 12);
    const md_weight *t = md_weights_find(&w, "conv2.weight");
    CHECK(t && t->ndim == 4 && t->shape[0] == 64 && t->shape[1] == 32 && t->shape[2] == 3);
    md_meta_entry *meta = NULL;
    size_t nm = 0;
    CHECK_OK(md_safetensors_metadata(w.map, w.map_size, path, &meta, &nm, &err), &err);
    int found = 0;
    for (size_t i = 0; i < nm; i++) {
        found += strcmp(meta[i].key, "list_hash") == 0 && strcmp(meta[i].value, "abc123") == 0;
        found += strcmp(meta[i].key, "n_train") == 0 && strcmp(meta[i].value, "6") == 0;
        found += strcmp(meta[i].key, "arch") == 0 && strcmp(meta[i].value, "compact") == 0;
    }
    CHECK(found == 3);
    md_safetensors_metadata_free(meta, nm);
    md_weights_free(&w);
    md_scale_model_free(back);
    unlink(path);
    md_scale_model_free(model);
    md_train_log_free(&log);
}

/* A safetensors writer for malformed files: the tensors of a compact model at
 * 16x16 with one tensor dropped or reshaped, and a chosen arch. */
static void write_model_file(const char *path, const char *arch, const char *drop,
                             const char *reshape)
{
    md_cnn_spec s;
    md_cnn_spec_init(&s, MD_SCALE_ARCH_COMPACT, 16, NULL);
    char hdr[4096];
    int k = snprintf(hdr, sizeof hdr,
                     "{\"__metadata__\":{\"format\":\"metricdepth-scale-cnn\",\"arch\":\"%s\","
                     "\"input_size\":\"16\",\"norm_mean\":\"0.5\",\"norm_std\":\"0.5\"}",
                     arch);
    size_t off = 0;
    for (int i = 0; i < s.n_layers; i++) {
        const md_cnn_layer *l = &s.layers[i];
        if (l->kind != MD_CNN_CONV && l->kind != MD_CNN_FC)
            continue;
        for (int b = 0; b < 2; b++) {
            char name[32], shape[64];
            snprintf(name, sizeof name, "%s.%s", l->name, b ? "bias" : "weight");
            size_t numel = b ? l->b_n : l->w_n;
            if (drop && strcmp(drop, name) == 0)
                continue;
            if (b)
                snprintf(shape, sizeof shape, "[%d]", l->out_c);
            else if (reshape && strcmp(reshape, name) == 0)
                snprintf(shape, sizeof shape, "[%zu]", numel);
            else if (l->kind == MD_CNN_CONV)
                snprintf(shape, sizeof shape, "[%d,%d,3,3]", l->out_c, l->in_c);
            else
                snprintf(shape, sizeof shape, "[%d,%d]", l->out_c, l->in_c);
            k += snprintf(hdr + k, sizeof hdr - (size_t)k,
                          ",\"%s\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                          name, shape, off, off + 4 * numel);
            off += 4 * numel;
        }
    }
    k += snprintf(hdr + k, sizeof hdr - (size_t)k, "}");
    FILE *f = fopen(path, "wb");
    uint64_t len = (uint64_t)k;
    uint8_t l8[8];
    for (int i = 0; i < 8; i++)
        l8[i] = (uint8_t)(len >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(hdr, 1, (size_t)k, f);
    float zero = 0.01f;
    for (size_t i = 0; i < off / 4; i++)
        fwrite(&zero, 4, 1, f);
    fclose(f);
}

static void expect_load_error(const char *path, const char *needle)
{
    md_scale_model *m = NULL;
    md_error err = {0};
    md_status st = md_scale_model_load(path, &m, &err);
    CHECK_MSG(st != MD_OK && m == NULL && strstr(err.message, needle),
              "expected an error naming '%s', got %d '%s'", needle, (int)st, err.message);
    md_scale_model_free(m);
}

static void test_bad_files(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/test_scale_cnn_bad_%d.safetensors", MD_BINARY_DIR,
             (int)getpid());
    /* The writer itself is sound: unmodified, the file loads. */
    write_model_file(path, "compact", NULL, NULL);
    md_scale_model *m = NULL;
    md_error err = {0};
    CHECK_OK(md_scale_model_load(path, &m, &err), &err);
    md_scale_model_free(m);
    write_model_file(path, "compact", "fc2.bias", NULL);
    expect_load_error(path, "missing tensor 'fc2.bias'");
    write_model_file(path, "compact", "conv3.weight", NULL);
    expect_load_error(path, "conv3.weight");
    write_model_file(path, "compact", NULL, "conv1.weight");
    expect_load_error(path, "tensor 'conv1.weight' is F32 864, expected F32 32x3x3x3");
    write_model_file(path, "resnet", NULL, NULL);
    expect_load_error(path, "'arch' is 'resnet'");
    write_model_file(path, "paper", NULL, NULL); /* compact tensors, paper metadata */
    expect_load_error(path, "(paper, input 16)");
    unlink(path);
    expect_load_error(path, path); /* absent file */
}

static void test_determinism(void)
{
    md_train_options o = small_opts(5);
    o.epochs = 6;
    o.val_fraction = 0.34; /* 2 of 6 validate */
    o.val_every = 2;
    md_scale_model *a = NULL, *b = NULL, *c = NULL;
    md_train_log la = {0}, lb = {0}, lc = {0};
    md_error err = {0};
    CHECK_OK(md_scale_model_train(g_imgs, g_targets, NIMG, &o, &a, &la, &err), &err);
    CHECK_OK(md_scale_model_train(g_imgs, g_targets, NIMG, &o, &b, &lb, &err), &err);
    o.seed = 6;
    CHECK_OK(md_scale_model_train(g_imgs, g_targets, NIMG, &o, &c, &lc, &err), &err);
    if (!a || !b || !c)
        goto out;
    CHECK(la.n_train == 4 && la.n_val == 2);
    CHECK(memcmp(la.train_loss, lb.train_loss, 6 * sizeof(double)) == 0);
    CHECK(memcmp(la.val_loss, lb.val_loss, 6 * sizeof(double)) == 0);
    CHECK(memcmp(la.train_loss, lc.train_loss, 6 * sizeof(double)) != 0);
    /* Validation at epochs 2, 4, 6 only (1-based). */
    CHECK(isnan(la.val_loss[0]) && !isnan(la.val_loss[1]) && isnan(la.val_loss[2]) &&
          !isnan(la.val_loss[3]) && isnan(la.val_loss[4]) && !isnan(la.val_loss[5]));
    /* Two threads (images split over tasks, pooling split): repeatable too. */
    {
        md_train_options o2 = small_opts(5);
        o2.epochs = 4;
        o2.threads = 2;
        md_scale_model *x = NULL, *y = NULL;
        md_train_log lx = {0}, ly = {0};
        CHECK_OK(md_scale_model_train(g_imgs, g_targets, NIMG, &o2, &x, &lx, &err), &err);
        CHECK_OK(md_scale_model_train(g_imgs, g_targets, NIMG, &o2, &y, &ly, &err), &err);
        if (x && y) {
            CHECK(memcmp(lx.train_loss, ly.train_loss, 4 * sizeof(double)) == 0);
            double px, py;
            md_scale_model_predict(x, &g_imgs[1], NULL, &px, &err);
            md_scale_model_predict(y, &g_imgs[1], NULL, &py, &err);
            CHECK(px == py);
        }
        md_scale_model_free(x);
        md_scale_model_free(y);
        md_train_log_free(&lx);
        md_train_log_free(&ly);
    }
    double pa, pb, pc;
    md_scale_model_predict(a, &g_imgs[0], NULL, &pa, &err);
    md_scale_model_predict(b, &g_imgs[0], NULL, &pb, &err);
    md_scale_model_predict(c, &g_imgs[0], NULL, &pc, &err);
    CHECK(pa == pb && pa != pc);
out:
    md_scale_model_free(a);
    md_scale_model_free(b);
    md_scale_model_free(c);
    md_train_log_free(&la);
    md_train_log_free(&lb);
    md_train_log_free(&lc);

    /* Bad arguments fail with a message. */
    md_scale_model *m = NULL;
    o.epochs = 0;
    CHECK(md_scale_model_train(g_imgs, g_targets, NIMG, &o, &m, NULL, &err) == MD_ERR_ARG && !m);
    o.epochs = 1;
    double bad[NIMG] = {0, 0, NAN, 0, 0, 0};
    CHECK(md_scale_model_train(g_imgs, bad, NIMG, &o, &m, NULL, &err) == MD_ERR_DATA && !m);
}

static void test_init_ranges(void)
{
    md_cnn_spec s;
    md_cnn_spec_init(&s, MD_SCALE_ARCH_PAPER, 16, NULL);
    float *p = malloc(sizeof(float) * s.n_params);
    md_cnn_init_params(&s, p, 0);
    const md_cnn_layer *c1 = &s.layers[0];
    float bound = 1.0f / sqrtf(27.0f), lo = 1, hi = -1;
    int outside = 0;
    for (size_t i = 0; i < c1->w_n + c1->b_n; i++) {
        outside += fabsf(p[c1->w_off + i]) > bound;
        lo = fminf(lo, p[c1->w_off + i]);
        hi = fmaxf(hi, p[c1->w_off + i]);
    }
    CHECK(outside == 0);
    CHECK(lo < -0.9f * bound && hi > 0.9f * bound); /* the whole range is used */
    /* conv2: fan_in 64*9; fc1: fan_in 128*4*4 (input 16 -> 4x4 after pools). */
    const md_cnn_layer *c2 = &s.layers[2], *f1 = &s.layers[4];
    float b2 = 1.0f / sqrtf(576.0f), bf = 1.0f / sqrtf(2048.0f), m2 = 0, mf = 0;
    for (size_t i = 0; i < c2->w_n + c2->b_n; i++)
        m2 = fmaxf(m2, fabsf(p[c2->w_off + i]));
    for (size_t i = 0; i < f1->w_n + f1->b_n; i++)
        mf = fmaxf(mf, fabsf(p[f1->w_off + i]));
    CHECK(m2 <= b2 && m2 > 0.99f * b2);
    CHECK(mf <= bf && mf > 0.99f * bf);
    /* Mean near 0, variance near bound^2 / 3 (uniform). */
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < f1->w_n; i++) {
        s1 += p[f1->w_off + i];
        s2 += (double)p[f1->w_off + i] * p[f1->w_off + i];
    }
    s1 /= (double)f1->w_n;
    s2 /= (double)f1->w_n;
    CHECK_NEAR(s1, 0.0, 0.01 * bf);
    CHECK_NEAR(s2 / ((double)bf * bf / 3.0), 1.0, 0.01);
    /* Seeds: same -> same, different -> different. */
    float *q = malloc(sizeof(float) * s.n_params);
    md_cnn_init_params(&s, q, 0);
    CHECK(memcmp(p, q, sizeof(float) * s.n_params) == 0);
    md_cnn_init_params(&s, q, 1);
    CHECK(memcmp(p, q, sizeof(float) * s.n_params) != 0);
    free(p);
    free(q);
}

int main(void)
{
    make_images();
    RUN_TEST(test_specs);
    RUN_TEST(test_conv);
    RUN_TEST(test_relu);
    RUN_TEST(test_maxpool);
    RUN_TEST(test_gap);
    RUN_TEST(test_linear);
    RUN_TEST(test_mse);
    RUN_TEST(test_network_gradients);
    RUN_TEST(test_adam);
    RUN_TEST(test_preprocess);
    RUN_TEST(test_init_ranges);
    RUN_TEST(test_training_fits);
    RUN_TEST(test_bad_files);
    RUN_TEST(test_determinism);
    for (int i = 0; i < NIMG; i++)
        free(g_imgs[i].pixels);
    return check_finish();
}
