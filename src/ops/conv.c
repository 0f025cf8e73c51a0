#include "ops/tensor_ops.h"
#include "ops/cnn_ops.h"

#include <float.h>

#include <string.h>

bool md_conv2d_output_size(const md_conv2d_params *p, int in_h, int in_w, int *out_h, int *out_w)
{
    if (p->stride_h <= 0 || p->stride_w <= 0 || p->dilation_h <= 0 || p->dilation_w <= 0 ||
        p->groups <= 0 || p->kernel_h <= 0 || p->kernel_w <= 0)
        return false;
    long eff_h = (long)p->dilation_h * (p->kernel_h - 1) + 1;
    long eff_w = (long)p->dilation_w * (p->kernel_w - 1) + 1;
    long h = ((long)in_h + p->pad_top + p->pad_bottom - eff_h) / p->stride_h + 1;
    long w = ((long)in_w + p->pad_left + p->pad_right - eff_w) / p->stride_w + 1;
    if (h <= 0 || w <= 0 || (long)in_h + p->pad_top + p->pad_bottom < eff_h ||
        (long)in_w + p->pad_left + p->pad_right < eff_w)
        return false;
    *out_h = (int)h;
    *out_w = (int)w;
    return true;
}

static bool is_depthwise(const md_conv2d_params *p)
{
    return p->groups == p->in_channels && p->groups == p->out_channels && p->groups > 1;
}

static bool is_pointwise(const md_conv2d_params *p)
{
    return p->kernel_h == 1 && p->kernel_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
           p->pad_top == 0 && p->pad_left == 0 && p->pad_bottom == 0 && p->pad_right == 0;
}

size_t md_conv2d_scratch_floats(const md_conv2d_params *p, int in_h, int in_w)
{
    int oh, ow;
    if (is_depthwise(p) || is_pointwise(p) || !md_conv2d_output_size(p, in_h, in_w, &oh, &ow))
        return 0;
    size_t cin_g = (size_t)(p->in_channels / p->groups);
    return cin_g * (size_t)p->kernel_h * (size_t)p->kernel_w * (size_t)oh * (size_t)ow;
}

/* Unfolds one group's input channels into rows (c, ky, kx) x columns (oy, ox). */
void md_im2col(const md_conv2d_params *p, const float *in, int channels, int in_h, int in_w,
               int out_h, int out_w, float *col)
{
    for (int c = 0; c < channels; c++) {
        const float *plane = in + (size_t)c * in_h * in_w;
        for (int ky = 0; ky < p->kernel_h; ky++) {
            for (int kx = 0; kx < p->kernel_w; kx++) {
                float *row = col + (((size_t)c * p->kernel_h + ky) * p->kernel_w + kx) *
                                       (size_t)out_h * out_w;
                for (int oy = 0; oy < out_h; oy++) {
                    int iy = oy * p->stride_h - p->pad_top + ky * p->dilation_h;
                    float *dst = row + (size_t)oy * out_w;
                    if (iy < 0 || iy >= in_h) {
                        memset(dst, 0, sizeof(float) * (size_t)out_w);
                        continue;
                    }
                    const float *src = plane + (size_t)iy * in_w;
                    int x0 = -p->pad_left + kx * p->dilation_w;
                    if (p->stride_w == 1 && x0 >= 0 && x0 + out_w <= in_w) {
                        memcpy(dst, src + x0, sizeof(float) * (size_t)out_w);
                        continue;
                    }
                    /* Columns whose source lies inside the row, then a plain
                     * strided copy the compiler can vectorise; zeros around. */
                    int s = p->stride_w;
                    int lo = x0 >= 0 ? 0 : (-x0 + s - 1) / s;
                    int hi = in_w - 1 - x0 >= 0 ? (in_w - 1 - x0) / s + 1 : 0;
                    if (hi > out_w)
                        hi = out_w;
                    if (lo > hi)
                        lo = hi;
                    for (int ox = 0; ox < lo; ox++)
                        dst[ox] = 0.0f;
                    for (int ox = lo; ox < hi; ox++)
                        dst[ox] = src[x0 + ox * s];
                    for (int ox = hi; ox < out_w; ox++)
                        dst[ox] = 0.0f;
                }
            }
        }
    }
}

void md_conv2d(const md_conv2d_params *p, const float *in, int in_h, int in_w,
               const float *weight, const float *bias, float *out, float *scratch)
{
    int out_h, out_w;
    if (!md_conv2d_output_size(p, in_h, in_w, &out_h, &out_w))
        return;
    if (is_depthwise(p)) {
        md_depthwise_conv2d(p, in, in_h, in_w, weight, bias, -FLT_MAX, FLT_MAX, out, 0,
                            p->in_channels);
        return;
    }
    int cin_g = p->in_channels / p->groups;
    int cout_g = p->out_channels / p->groups;
    int K = cin_g * p->kernel_h * p->kernel_w;
    int N = out_h * out_w;
    for (int g = 0; g < p->groups; g++) {
        const float *in_g = in + (size_t)g * cin_g * in_h * in_w;
        const float *cols = in_g; /* a 1x1 stride-1 unpadded conv needs no unfolding */
        if (!is_pointwise(p)) {
            md_im2col(p, in_g, cin_g, in_h, in_w, out_h, out_w, scratch);
            cols = scratch;
        }
        float *out_g = out + (size_t)g * cout_g * N;
        if (bias) {
            for (int oc = 0; oc < cout_g; oc++) {
                float b = bias[g * cout_g + oc];
                float *o = out_g + (size_t)oc * N;
                for (int i = 0; i < N; i++)
                    o[i] = b;
            }
        }
        md_sgemm(false, false, cout_g, N, K, 1.0f, weight + (size_t)g * cout_g * K, K, cols, N,
                 bias ? 1.0f : 0.0f, out_g, N);
    }
}
