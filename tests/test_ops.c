/* The shared kernels against brute force: md_conv2d (im2col + GEMM, the
 * depthwise and pointwise fast paths) against a direct 7-loop convolution in
 * double, over random shapes, strides, dilations, asymmetric pads and groups;
 * md_sgemm's transposes against a triple loop. */
#include "check.h"
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

static void conv_direct(const md_conv2d_params *p, const float *in, int H, int W, const float *w,
                        const float *b, double *out, int OH, int OW)
{
    int cin_g = p->in_channels / p->groups, cout_g = p->out_channels / p->groups;
    for (int oc = 0; oc < p->out_channels; oc++) {
        int g = oc / cout_g;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double acc = b ? b[oc] : 0.0;
                for (int ic = 0; ic < cin_g; ic++)
                    for (int ky = 0; ky < p->kernel_h; ky++)
                        for (int kx = 0; kx < p->kernel_w; kx++) {
                            int iy = oy * p->stride_h - p->pad_top + ky * p->dilation_h;
                            int ix = ox * p->stride_w - p->pad_left + kx * p->dilation_w;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            acc += (double)in[((size_t)(g * cin_g + ic) * H + iy) * W + ix] *
                                   w[(((size_t)oc * cin_g + ic) * p->kernel_h + ky) * p->kernel_w + kx];
                        }
                out[((size_t)oc * OH + oy) * OW + ox] = acc;
            }
    }
}

static void check_conv(const md_conv2d_params *p, int H, int W, int with_bias)
{
    int OH, OW;
    if (!md_conv2d_output_size(p, H, W, &OH, &OW))
        return;
    size_t nin = (size_t)p->in_channels * H * W;
    size_t nw = (size_t)p->out_channels * (p->in_channels / p->groups) * p->kernel_h * p->kernel_w;
    size_t nout = (size_t)p->out_channels * OH * OW;
    float *in = malloc(nin * sizeof *in), *w = malloc(nw * sizeof *w);
    float *b = malloc((size_t)p->out_channels * sizeof *b), *out = malloc(nout * sizeof *out);
    double *want = malloc(nout * sizeof *want);
    size_t ns = md_conv2d_scratch_floats(p, H, W);
    float *scratch = malloc((ns ? ns : 1) * sizeof *scratch);
    for (size_t i = 0; i < nin; i++) in[i] = (float)uniform();
    for (size_t i = 0; i < nw; i++) w[i] = (float)uniform();
    for (int i = 0; i < p->out_channels; i++) b[i] = (float)uniform();
    md_conv2d(p, in, H, W, w, with_bias ? b : NULL, out, scratch);
    conv_direct(p, in, H, W, w, with_bias ? b : NULL, want, OH, OW);
    double worst = 0;
    for (size_t i = 0; i < nout; i++) {
        double e = fabs(out[i] - want[i]);
        worst = e > worst ? e : worst;
    }
    /* float sums of up to a few hundred terms of size <= 1 */
    CHECK_MSG(worst < 1e-4, "conv cin %d cout %d k %dx%d s %d,%d d %d,%d pad %d,%d,%d,%d g %d on %dx%d: "
              "max err %g", p->in_channels, p->out_channels, p->kernel_h, p->kernel_w, p->stride_h,
              p->stride_w, p->dilation_h, p->dilation_w, p->pad_top, p->pad_left, p->pad_bottom,
              p->pad_right, p->groups, H, W, worst);
    free(in); free(w); free(b); free(out); free(want); free(scratch);
}

static void test_conv_random(void)
{
    for (int t = 0; t < 300; t++) {
        md_conv2d_params p;
        memset(&p, 0, sizeof p);
        int kind = t % 4; /* general, depthwise, pointwise, grouped */
        p.groups = kind == 3 ? randint(2, 3) : 1;
        int cin_g = randint(1, 6), cout_g = randint(1, 6);
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
        check_conv(&p, randint(1, 40), randint(1, 70), t % 3 != 0);
    }
}

static void test_conv_by_hand(void)
{
    /* 1 channel 3x3 input 1..9, 2x2 kernel of ones, stride 1, no pad: sums of
     * each 2x2 window = 12 16 / 24 28; with bias 0.5. */
    md_conv2d_params p = {1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 1, 1};
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 1, 1, 1}, b = 0.5f, out[4];
    float scratch[16];
    int oh, ow;
    CHECK(md_conv2d_output_size(&p, 3, 3, &oh, &ow) && oh == 2 && ow == 2);
    md_conv2d(&p, in, 3, 3, w, &b, out, scratch);
    CHECK(out[0] == 12.5f && out[1] == 16.5f && out[2] == 24.5f && out[3] == 28.5f);
    /* invalid parameters give no output size */
    md_conv2d_params bad = p;
    bad.stride_h = 0;
    CHECK(!md_conv2d_output_size(&bad, 3, 3, &oh, &ow));
    bad = p;
    bad.kernel_h = 5; /* larger than the padded input */
    CHECK(!md_conv2d_output_size(&bad, 3, 3, &oh, &ow));
}

static void test_sgemm_transposes(void)
{
    enum { M = 7, N = 5, K = 9 };
    float A[M * K], At[K * M], B[K * N], Bt[N * K], C[M * N];
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            At[k * M + i] = A[i * K + k] = (float)uniform();
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            Bt[j * K + k] = B[k * N + j] = (float)uniform();
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (int i = 0; i < M * N; i++)
                C[i] = 1.0f;
            /* C = 2 op(A) op(B) + 0.5 C */
            md_sgemm(ta, tb, M, N, K, 2.0f, ta ? At : A, ta ? M : K, tb ? Bt : B, tb ? K : N,
                     0.5f, C, N);
            double worst = 0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double acc = 0;
                    for (int k = 0; k < K; k++)
                        acc += (double)A[i * K + k] * B[k * N + j];
                    double e = fabs(C[i * N + j] - (2 * acc + 0.5));
                    worst = e > worst ? e : worst;
                }
            CHECK_MSG(worst < 1e-5, "sgemm ta %d tb %d: max err %g", ta, tb, worst);
        }
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

    /* attention: one NaN key poisons every row (softmax over it) instead of
     * taking all the weight with a finite value */
    enum { T = 20, D = 4 };
    float qkv[T * 3 * D], out[T * D], scores[MD_ATTENTION_BLOCK * T];
    for (int i = 0; i < T * 3 * D; i++)
        qkv[i] = (float)((i * 37) % 11) * 0.1f - 0.5f;
    for (int pos = 0; pos < 2; pos++) {
        float saved = qkv[(pos ? 18 : 5) * 3 * D + D + 1];
        qkv[(pos ? 18 : 5) * 3 * D + D + 1] = NAN; /* token 5 (or 18)'s key */
        md_attention_rows(qkv, T, 1, D, 0, 0, T, out, scores);
        int finite = 0;
        for (int i = 0; i < T * D; i++)
            finite += isfinite(out[i]) != 0;
        CHECK_MSG(finite == 0, "%d of %d attention outputs finite with a NaN key", finite, T * D);
        qkv[(pos ? 18 : 5) * 3 * D + D + 1] = saved;
    }
    md_attention_rows(qkv, T, 1, D, 0, 0, T, out, scores);
    for (int i = 0; i < T * D; i++)
        CHECK(isfinite(out[i]));
}

int main(void)
{
    RUN_TEST(test_nonfinite_math);
    RUN_TEST(test_conv_by_hand);
    RUN_TEST(test_conv_random);
    RUN_TEST(test_sgemm_transposes);
    return check_finish();
}
