/* Depthwise 2-D convolution (groups == in == out channels) with bias and a
 * fused clamp. Rows are processed as: left border (scalar, bounds-checked),
 * interior (all taps inside the row, kernel size and stride known at compile
 * time for 3x3 and 5x5 at stride 1 and 2, so the compiler unrolls the taps and
 * vectorises over output columns), right border. Rows above or below the
 * image come from a zero-bordered copy of each plane. */
/* -std=c11 turns off a*b+c contraction; these loops want fused multiply-adds. */
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "tensor/cnn_ops.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>


static inline float clampf(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* One output column with every bounds check (borders and generic shapes). */
static inline float dw_point(const md_conv2d_params *p, const float *plane, int in_h, int in_w,
                             const float *w, int oy, int ox, float b)
{
    float acc = b;
    for (int ky = 0; ky < p->kernel_h; ky++) {
        int iy = oy * p->stride_h - p->pad_top + ky * p->dilation_h;
        if (iy < 0 || iy >= in_h)
            continue;
        const float *src = plane + (size_t)iy * in_w;
        for (int kx = 0; kx < p->kernel_w; kx++) {
            int ix = ox * p->stride_w - p->pad_left + kx * p->dilation_w;
            if (ix >= 0 && ix < in_w)
                acc += src[ix] * w[ky * p->kernel_w + kx];
        }
    }
    return acc;
}

typedef float vf16 __attribute__((vector_size(64)));

/* Vectors never cross a function boundary by value (that would depend on
 * the target's ABI); loads and stores go through memcpy. */
static inline vf16 *vload(vf16 *v, const float *p)
{
    memcpy(v, p, sizeof *v);
    return v;
}
#define LOAD16(p) (*vload(&(vf16){0}, (p)))
#define STORE16(p, v) memcpy((p), &(v), sizeof(vf16))

/* Stride 1: explicit 16-wide vectors (rows must be readable 16 + K floats past
 * x_hi + x0: the caller's padded rows have that slack), one partial sum per kernel row and two
 * column blocks in flight, so the multiply-adds form 2K independent chains
 * instead of one long dependent chain. Results are clamped afterwards. */
#define DW_INTERIOR_S1(K)                                                                   \
    static void dw_rows_k##K##_s1(const float *const *rows, const float *w, float b,        \
                                  float lo, float hi, float *o, int x_lo, int x_hi, int x0) \
    {                                                                                       \
        int ox = x_lo;                                                                      \
        for (; ox + 32 <= x_hi; ox += 32) {                                                 \
            vf16 s0[K], s1[K];                                                              \
            for (int ky = 0; ky < K; ky++) {                                                \
                const float *r = rows[ky] + ox + x0;                                        \
                vf16 a = (vf16){0}, c = (vf16){0};                                          \
                for (int kx = 0; kx < K; kx++) {                                            \
                    a += LOAD16(r + kx) * w[ky * K + kx];                                   \
                    c += LOAD16(r + 16 + kx) * w[ky * K + kx];                              \
                }                                                                           \
                s0[ky] = a;                                                                 \
                s1[ky] = c;                                                                 \
            }                                                                               \
            vf16 t0 = s0[0] + b, t1 = s1[0] + b;                                            \
            for (int ky = 1; ky < K; ky++) {                                                \
                t0 += s0[ky];                                                               \
                t1 += s1[ky];                                                               \
            }                                                                               \
            memcpy(o + ox, &t0, sizeof t0);                                                 \
            memcpy(o + ox + 16, &t1, sizeof t1);                                            \
        }                                                                                   \
        for (; ox < x_hi; ox += 16) {                                                       \
            /* the last block may be partial: rows carry slack, extra lanes dropped */     \
            vf16 t = (vf16){0} + b;                                                         \
            for (int ky = 0; ky < K; ky++) {                                                \
                const float *r = rows[ky] + ox + x0;                                        \
                vf16 a = (vf16){0};                                                         \
                for (int kx = 0; kx < K; kx++)                                              \
                    a += LOAD16(r + kx) * w[ky * K + kx];                                   \
                t += a;                                                                     \
            }                                                                               \
            memcpy(o + ox, &t, sizeof(float) * (size_t)(x_hi - ox < 16 ? x_hi - ox : 16));  \
        }                                                                                   \
        for (int i = x_lo; i < x_hi; i++)                                                   \
            o[i] = clampf(o[i], lo, hi);                                                    \
    }

/* Stride 2: left to the vectoriser (strided loads), with one partial sum per
 * kernel row to shorten the dependency chain. */
#define DW_INTERIOR_S2(K)                                                                   \
    static void dw_rows_k##K##_s2(const float *const *rows, const float *w, float b,        \
                                  float lo, float hi, float *o, int x_lo, int x_hi, int x0) \
    {                                                                                       \
        float wk[K * K];                                                                    \
        for (int i = 0; i < K * K; i++)                                                     \
            wk[i] = w[i];                                                                   \
        for (int ox = x_lo; ox < x_hi; ox++) {                                              \
            int ix = ox * 2 + x0;                                                           \
            float part[K];                                                                  \
            for (int ky = 0; ky < K; ky++) {                                                \
                float a = 0.0f;                                                             \
                for (int kx = 0; kx < K; kx++)                                              \
                    a += rows[ky][ix + kx] * wk[ky * K + kx];                               \
                part[ky] = a;                                                               \
            }                                                                               \
            float acc = b;                                                                  \
            for (int ky = 0; ky < K; ky++)                                                  \
                acc += part[ky];                                                            \
            o[ox] = clampf(acc, lo, hi);                                                    \
        }                                                                                   \
    }

DW_INTERIOR_S1(3)
DW_INTERIOR_S1(5)
DW_INTERIOR_S2(3)
DW_INTERIOR_S2(5)

typedef void (*dw_rows_fn)(const float *const *, const float *, float, float, float, float *,
                           int, int, int);

void md_depthwise_conv2d(const md_conv2d_params *p, const float *in, int in_h, int in_w,
                         const float *weight, const float *bias, float lo, float hi, float *out,
                         int c_begin, int c_end)
{
    int out_h, out_w;
    if (!md_conv2d_output_size(p, in_h, in_w, &out_h, &out_w))
        return;
    int kh = p->kernel_h, kw = p->kernel_w;
    dw_rows_fn fast = NULL;
    if (kh == kw && p->stride_h == p->stride_w && p->dilation_h == 1 && p->dilation_w == 1) {
        if (kh == 3)
            fast = p->stride_w == 1 ? dw_rows_k3_s1 : p->stride_w == 2 ? dw_rows_k3_s2 : NULL;
        else if (kh == 5)
            fast = p->stride_w == 1 ? dw_rows_k5_s1 : p->stride_w == 2 ? dw_rows_k5_s2 : NULL;
    }
    /* With a fast kernel, copy each plane into a zero-bordered buffer (with
     * slack after the last row for the vector kernels' partial blocks) so that
     * every output column is interior. Without memory, the direct loop. */
    int pt = p->pad_top, pl = p->pad_left;
    int ph = in_h + pt + p->pad_bottom, pw = in_w + pl + p->pad_right;
    float *padded = fast ? calloc((size_t)ph * pw + 64, sizeof(float)) : NULL;
    for (int c = c_begin; c < c_end; c++) {
        const float *plane = in + (size_t)c * in_h * in_w;
        const float *w = weight + (size_t)c * kh * kw;
        float b = bias ? bias[c] : 0.0f;
        float *o = out + (size_t)c * out_h * out_w;
        if (padded) {
            for (int y = 0; y < in_h; y++)
                memcpy(padded + (size_t)(y + pt) * pw + pl, plane + (size_t)y * in_w,
                       sizeof(float) * (size_t)in_w);
            for (int oy = 0; oy < out_h; oy++) {
                const float *rows[5];
                for (int ky = 0; ky < kh; ky++)
                    rows[ky] = padded + (size_t)(oy * p->stride_h + ky) * pw;
                fast(rows, w, b, lo, hi, o + (size_t)oy * out_w, 0, out_w, 0);
            }
            continue;
        }
        for (int oy = 0; oy < out_h; oy++)
            for (int ox = 0; ox < out_w; ox++)
                o[(size_t)oy * out_w + ox] =
                    clampf(dw_point(p, plane, in_h, in_w, w, oy, ox, b), lo, hi);
    }
    free(padded);
}
