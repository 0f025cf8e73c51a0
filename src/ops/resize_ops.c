#include "ops/resize_ops.h"

#include <math.h>
#include <stdint.h>

static inline int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Keys' cubic convolution weights for the 4 taps at offsets -1, 0, 1, 2 of
 * fractional position t, with a = -0.75 (as OpenCV and PyTorch use). */
static void cubic_coeffs(float t, float w[4])
{
    const float A = -0.75f;
    float x1 = t + 1.0f, x2 = 1.0f - t;
    w[0] = ((A * x1 - 5.0f * A) * x1 + 8.0f * A) * x1 - 4.0f * A;
    w[1] = ((A + 2.0f) * t - (A + 3.0f)) * t * t + 1.0f;
    w[2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
    w[3] = 1.0f - w[0] - w[1] - w[2];
}

/* OpenCV: src = (d + 0.5) * scale - 0.5 computed in double, rounded to float. */
static void opencv_taps(int d, double scale, int size, int idx[4], float w[4])
{
    float f = (float)((d + 0.5) * scale - 0.5);
    int s = (int)floorf(f);
    f -= (float)s;
    cubic_coeffs(f, w);
    for (int k = 0; k < 4; k++)
        idx[k] = clampi(s - 1 + k, 0, size - 1);
}

void md_resize_cubic_opencv(const double *src, int sh, int sw, int channels, double *dst, int dh,
                            int dw, double *tmp)
{
    double scale_x = 1.0 / ((double)dw / sw), scale_y = 1.0 / ((double)dh / sh);
    int c = channels;
    /* Horizontal pass: [sh, sw, c] -> tmp [sh, dw, c]. */
    for (int x = 0; x < dw; x++) {
        int ix[4];
        float wx[4];
        opencv_taps(x, scale_x, sw, ix, wx);
        for (int y = 0; y < sh; y++) {
            const double *row = src + (size_t)y * sw * c;
            double *o = tmp + ((size_t)y * dw + x) * c;
            for (int ch = 0; ch < c; ch++)
                o[ch] = row[(size_t)ix[0] * c + ch] * wx[0] + row[(size_t)ix[1] * c + ch] * wx[1] +
                        row[(size_t)ix[2] * c + ch] * wx[2] + row[(size_t)ix[3] * c + ch] * wx[3];
        }
    }
    /* Vertical pass. */
    for (int y = 0; y < dh; y++) {
        int iy[4];
        float wy[4];
        opencv_taps(y, scale_y, sh, iy, wy);
        const double *r0 = tmp + (size_t)iy[0] * dw * c, *r1 = tmp + (size_t)iy[1] * dw * c;
        const double *r2 = tmp + (size_t)iy[2] * dw * c, *r3 = tmp + (size_t)iy[3] * dw * c;
        double *o = dst + (size_t)y * dw * c;
        for (size_t i = 0; i < (size_t)dw * c; i++)
            o[i] = r0[i] * wy[0] + r1[i] * wy[1] + r2[i] * wy[2] + r3[i] * wy[3];
    }
}

/* PyTorch (align_corners=False, cubic): src = step * (d + 0.5) - 0.5 in float,
 * step = 1/scale_factor when one was given, else in/out. No clamping of src. */
static void torch_cubic_taps(int d, float step, int size, int idx[4], float w[4])
{
    float f = step * ((float)d + 0.5f) - 0.5f;
    float fl = floorf(f);
    cubic_coeffs(f - fl, w);
    int s = (int)fl;
    for (int k = 0; k < 4; k++)
        idx[k] = clampi(s - 1 + k, 0, size - 1);
}

void md_resize_bicubic_torch(const float *src, int channels, int sh, int sw, float *dst, int dh,
                             int dw, double scale_h, double scale_w, float *tmp)
{
    float step_y = scale_h > 0 ? (float)(1.0 / scale_h) : (float)sh / (float)dh;
    float step_x = scale_w > 0 ? (float)(1.0 / scale_w) : (float)sw / (float)dw;
    for (int c = 0; c < channels; c++) {
        const float *plane = src + (size_t)c * sh * sw;
        float *out = dst + (size_t)c * dh * dw;
        for (int x = 0; x < dw; x++) {
            int ix[4];
            float wx[4];
            torch_cubic_taps(x, step_x, sw, ix, wx);
            for (int y = 0; y < sh; y++) {
                const float *row = plane + (size_t)y * sw;
                tmp[(size_t)y * dw + x] =
                    row[ix[0]] * wx[0] + row[ix[1]] * wx[1] + row[ix[2]] * wx[2] + row[ix[3]] * wx[3];
            }
        }
        for (int y = 0; y < dh; y++) {
            int iy[4];
            float wy[4];
            torch_cubic_taps(y, step_y, sh, iy, wy);
            for (int x = 0; x < dw; x++)
                out[(size_t)y * dw + x] = tmp[(size_t)iy[0] * dw + x] * wy[0] +
                                          tmp[(size_t)iy[1] * dw + x] * wy[1] +
                                          tmp[(size_t)iy[2] * dw + x] * wy[2] +
                                          tmp[(size_t)iy[3] * dw + x] * wy[3];
        }
    }
}
