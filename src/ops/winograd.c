/* Winograd F(4x4, 3x3) for float32 3x3 stride-1 convolutions (Lavin and
 * Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). A 4x4
 * block of outputs is A^T [U . V] A with U = G g G^T the 6x6 transform of a
 * 3x3 filter and V = B^T d B that of the 6x6 input patch around the block.
 * Summed over input channels, each of the 36 positions of the 6x6 domain is
 * one matrix product U_xi (Cout x Cin) V_xi (Cin x tiles): 36 multiplies per
 * block and channel pair instead of 144. The transforms are linear in the
 * data, so each runs on 16 tiles at once (one vector per tile position). */
#include "ops/winograd.h"

#include "ops/simd.h"

#include <string.h>

/* The interpolation points 0, 1, -1, 2, -2 and infinity. */
static const double G[6][3] = {{1.0 / 4, 0, 0},
                               {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                               {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                               {1.0 / 24, 1.0 / 12, 1.0 / 6},
                               {1.0 / 24, -1.0 / 12, 1.0 / 6},
                               {0, 0, 1}};

float md_wino_weight(const float *w, int cin, int xi, int o, int c)
{
    const float *g = w + ((size_t)o * cin + c) * 9;
    int i = xi / 6, j = xi % 6;
    double s = 0.0; /* (G g G^T)[i][j] */
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            s += G[i][a] * (double)g[a * 3 + b] * G[j][b];
    return (float)s;
}

/* B^T x for six vectors: the input transform along one axis. */
#define BT6(d, o)                                                                                  \
    do {                                                                                           \
        md_vf16 t0_ = d[4] - 4.0f * d[2], t1_ = d[3] - 4.0f * d[1];                               \
        md_vf16 t2_ = d[4] - d[2], t3_ = 2.0f * (d[3] - d[1]);                                    \
        o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];                                                   \
        o[1] = t0_ + t1_;                                                                          \
        o[2] = t0_ - t1_;                                                                          \
        o[3] = t2_ + t3_;                                                                          \
        o[4] = t2_ - t3_;                                                                          \
        o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];                                                   \
    } while (0)

/* A^T m for six vectors: four outputs. */
#define AT6(m, y)                                                                                  \
    do {                                                                                           \
        md_vf16 s1_ = m[1] + m[2], d1_ = m[1] - m[2], s2_ = m[3] + m[4], d2_ = m[3] - m[4];        \
        y[0] = m[0] + s1_ + s2_;                                                                   \
        y[1] = d1_ + 2.0f * d2_;                                                                   \
        y[2] = s1_ + 4.0f * s2_;                                                                   \
        y[3] = d1_ + 8.0f * d2_ + m[5];                                                            \
    } while (0)

/* Columns 0-3 of 16 consecutive tiles 4 columns apart: c[j][t] = p[4 t + j]. */
#define DEINTERLEAVE_LANE(r0, r1, j)                                                               \
    __builtin_shufflevector(r0, r1, j, j + 4, j + 8, j + 12, j + 16, j + 20, j + 24, j + 28, j,    \
                            j + 4, j + 8, j + 12, j + 16, j + 20, j + 24, j + 28)
static inline void deinterleave4(const float *p, md_vf16 *c, int n)
{
    md_vf16 r0 = MD_LOAD16(p), r1 = MD_LOAD16(p + 16), r2 = MD_LOAD16(p + 32),
            r3 = MD_LOAD16(p + 48);
    md_vf16 lo[4] = {DEINTERLEAVE_LANE(r0, r1, 0), DEINTERLEAVE_LANE(r0, r1, 1),
                     DEINTERLEAVE_LANE(r0, r1, 2), DEINTERLEAVE_LANE(r0, r1, 3)};
    md_vf16 hi[4] = {DEINTERLEAVE_LANE(r2, r3, 0), DEINTERLEAVE_LANE(r2, r3, 1),
                     DEINTERLEAVE_LANE(r2, r3, 2), DEINTERLEAVE_LANE(r2, r3, 3)};
    for (int j = 0; j < n; j++)
        c[j] = __builtin_shufflevector(lo[j], hi[j], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20,
                                       21, 22, 23);
}

void md_wino_input(const float *rows, size_t ld, int tiles, float *v, size_t vstride)
{
    for (int t0 = 0; t0 < tiles; t0 += 16) {
        md_vf16 h[6][6]; /* h[row][j]: B^T along the row */
        for (int r = 0; r < 6; r++) {
            const float *p = rows + (size_t)r * ld + 4 * t0;
            md_vf16 d[6];
            deinterleave4(p, d, 4);
            deinterleave4(p + 4, d + 4, 2);
            BT6(d, h[r]);
        }
        for (int j = 0; j < 6; j++) {
            md_vf16 d[6] = {h[0][j], h[1][j], h[2][j], h[3][j], h[4][j], h[5][j]}, o[6];
            BT6(d, o);
            for (int i = 0; i < 6; i++)
                MD_STORE16(v + (size_t)(i * 6 + j) * vstride + t0, o[i]);
        }
    }
}

/* Four vectors of 16 tiles' columns 0-3 as 64 consecutive values. */
static inline void interleave4(const md_vf16 c[4], float *out)
{
    md_vf16 t0 = __builtin_shufflevector(c[0], c[1], 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12,
                                         28, 13, 29);
    md_vf16 t1 = __builtin_shufflevector(c[0], c[1], 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27,
                                         14, 30, 15, 31);
    md_vf16 t2 = __builtin_shufflevector(c[2], c[3], 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12,
                                         28, 13, 29);
    md_vf16 t3 = __builtin_shufflevector(c[2], c[3], 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27,
                                         14, 30, 15, 31);
    /* u_k: in 128-bit lane L, tile 4 L + k (columns 0-3) */
    md_vf16 u0 = __builtin_shufflevector(t0, t2, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13,
                                         28, 29);
    md_vf16 u1 = __builtin_shufflevector(t0, t2, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14,
                                         15, 30, 31);
    md_vf16 u2 = __builtin_shufflevector(t1, t3, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13,
                                         28, 29);
    md_vf16 u3 = __builtin_shufflevector(t1, t3, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14,
                                         15, 30, 31);
    md_vf16 v0 = __builtin_shufflevector(u0, u1, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21,
                                         22, 23);
    md_vf16 v1 = __builtin_shufflevector(u2, u3, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21,
                                         22, 23);
    md_vf16 v2 = __builtin_shufflevector(u0, u1, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28,
                                         29, 30, 31);
    md_vf16 v3 = __builtin_shufflevector(u2, u3, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28,
                                         29, 30, 31);
    md_vf16 r0 = __builtin_shufflevector(v0, v1, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21,
                                         22, 23);
    md_vf16 r1 = __builtin_shufflevector(v0, v1, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28,
                                         29, 30, 31);
    md_vf16 r2 = __builtin_shufflevector(v2, v3, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21,
                                         22, 23);
    md_vf16 r3 = __builtin_shufflevector(v2, v3, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28,
                                         29, 30, 31);
    MD_STORE16(out, r0);
    MD_STORE16(out + 16, r1);
    MD_STORE16(out + 32, r2);
    MD_STORE16(out + 48, r3);
}

/* o[k] = clamp(v[k], lo, hi) (NaN kept) + a[k]: the convolution's epilogue. */
static void finish_row(const float *restrict v, float *restrict o, const float *restrict a, int n,
                       float lo, float hi)
{
    for (int k = 0; k < n; k++) {
        float x = v[k] < lo ? lo : v[k];
        o[k] = (x > hi ? hi : x) + (a ? a[k] : 0.0f);
    }
}

void md_wino_output(const float *m, size_t mstride, int tiles, float bias, float lo, float hi,
                    float *out, size_t ldo, const float *add, size_t ld_add, int rows, int cols)
{
    for (int t0 = 0; t0 < tiles; t0 += 16) {
        md_vf16 g[6][4]; /* A^T along each row of the 6x6 block */
        for (int i = 0; i < 6; i++) {
            md_vf16 x[6];
            for (int j = 0; j < 6; j++)
                x[j] = MD_LOAD16(m + (size_t)(i * 6 + j) * mstride + t0);
            AT6(x, g[i]);
        }
        md_vf16 y[4][4]; /* y[col][row] */
        for (int c = 0; c < 4; c++) {
            md_vf16 x[6] = {g[0][c], g[1][c], g[2][c], g[3][c], g[4][c], g[5][c]};
            AT6(x, y[c]);
        }
        int c0 = 4 * t0, n = cols - c0 < 64 ? cols - c0 : 64;
        for (int r = 0; r < rows; r++) {
            md_vf16 col[4] = {y[0][r] + bias, y[1][r] + bias, y[2][r] + bias, y[3][r] + bias};
            float buf[64];
            interleave4(col, buf);
            finish_row(buf, out + (size_t)r * ldo + c0, add ? add + (size_t)r * ld_add + c0 : NULL,
                       n, lo, hi);
        }
    }
}
