/* Depthwise 2-D convolution (groups == in == out channels) with bias and a
 * fused clamp.
 *
 * With AVX-512, whole planes in registers (every depthwise layer of
 * FastDepth): stride 1, 3x3 or 5x5 with K/2 zeros on every side, rows up to
 * 128 wide (dw_plane_small for 3x3: each input row loaded once per output
 * row as whole vectors; dw_plane_strips for 5x5: once per block of four
 * output rows, a 16-column strip at a time), and stride 2, 3x3 with one zero
 * row and column before the plane, output rows up to 64 wide (dw_plane_s2).
 * Column shifts are lane rotations and permutes: no copies, no calls per
 * row.
 *
 * Other fast shapes (3x3 and 5x5, stride 1 or 2, no dilation): each channel
 * plane is copied into a zero-bordered buffer, so no output column needs
 * bounds checks. Stride 1: each output row is a sum over K*K taps of
 * (row pointer + kx + ox) * weight in 16-float vectors (GCC/Clang vector
 * extensions: one zmm register with AVX-512), two output rows at a time
 * sharing their input loads, with enough blocks in flight that the
 * multiply-adds form independent chains; full vectors go to a row buffer
 * with slack and the clamp copies the valid columns out. Stride 2: a scalar
 * loop the compiler vectorises with stride-2 loads. Anything else runs a
 * bounds-checked direct loop. The register kernels sum in the padded path's
 * order, so either gives the same bits. */
#include "ops/cnn_ops.h"
#include "ops/simd.h"

#include <float.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

static inline float clampf(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* dst[x] = clampf(src[x], lo, hi): restrict lets the compiler vectorise it
 * (the row loops below otherwise run one float at a time). */
static void clamp_copy(const float *restrict src, float *restrict dst, int n, float lo, float hi)
{
    for (int x = 0; x < n; x++)
        dst[x] = clampf(src[x], lo, hi);
}

/* One output with every bounds check (generic shapes). */
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

typedef md_vf16 vf16;
#define LOAD16 MD_LOAD16
#define STORE16 MD_STORE16

/* Stride 1: row[ox] = b + sum_ky,kx rows[ky][ox + kx] * w[ky][kx] for ox in
 * [0, round_up(n, 16)); rows must be readable that far (buffers have slack). */
#define DW_ROW(K)                                                                        \
    static void dw_row_k##K##_s1(const float *const *rows, const float *w, float b,         \
                                 float *row, int n)                                         \
    {                                                                                       \
        const float *r0[K];                                                                 \
        for (int ky = 0; ky < K; ky++)                                                      \
            r0[ky] = rows[ky];                                                              \
        int ox = 0;                                                                         \
        for (; ox + 16 < n; ox += 32) {                                                     \
            vf16 s0[K], s1[K];                                                              \
            for (int ky = 0; ky < K; ky++) {                                                \
                vf16 a = (vf16){0}, c = (vf16){0};                                          \
                for (int kx = 0; kx < K; kx++) {                                            \
                    const float *t = (r0[ky] + kx) + ox;                                   \
                    a += LOAD16(t) * w[ky * K + kx];                                        \
                    c += LOAD16(t + 16) * w[ky * K + kx];                                   \
                }                                                                           \
                s0[ky] = a;                                                                 \
                s1[ky] = c;                                                                 \
            }                                                                               \
            vf16 t0 = s0[0] + b, t1 = s1[0] + b;                                            \
            for (int ky = 1; ky < K; ky++) {                                                \
                t0 += s0[ky];                                                               \
                t1 += s1[ky];                                                               \
            }                                                                               \
            STORE16(row + ox, t0);                                                          \
            STORE16(row + ox + 16, t1);                                                     \
        }                                                                                   \
        if (ox < n) {                                                                       \
            vf16 s0[K];                                                                     \
            for (int ky = 0; ky < K; ky++) {                                                \
                vf16 a = (vf16){0};                                                         \
                for (int kx = 0; kx < K; kx++)                                              \
                    a += LOAD16((r0[ky] + kx) + ox) * w[ky * K + kx];                      \
                s0[ky] = a;                                                                 \
            }                                                                               \
            vf16 t0 = s0[0] + b;                                                            \
            for (int ky = 1; ky < K; ky++)                                                  \
                t0 += s0[ky];                                                               \
            STORE16(row + ox, t0);                                                          \
        }                                                                                   \
    }

DW_ROW(3)
DW_ROW(5)

/* Stride 1, two output rows at once: rows[0..K] (K + 1 input rows) give
 * row_a from rows[0..K-1] and row_b from rows[1..K], so each input vector
 * loaded feeds both (about half the loads of two single-row passes). */
#define DW_ROW2(K)                                                                          \
    static void dw_row2_k##K(const float *const *rows, const float *w, float b,             \
                             float *row_a, float *row_b, int n)                             \
    {                                                                                       \
        const float *r0[K + 1];                                                             \
        for (int r = 0; r <= K; r++)                                                        \
            r0[r] = rows[r];                                                                \
        for (int ox = 0; ox < n; ox += 16) {                                                \
            vf16 sa[K], sb[K];                                                              \
            for (int ky = 0; ky < K; ky++) {                                                \
                sa[ky] = (vf16){0};                                                         \
                sb[ky] = (vf16){0};                                                         \
            }                                                                               \
            for (int r = 0; r <= K; r++) {                                                  \
                for (int kx = 0; kx < K; kx++) {                                            \
                    vf16 v = LOAD16(r0[r] + ox + kx);                                       \
                    if (r < K)                                                              \
                        sa[r] += v * w[r * K + kx];                                         \
                    if (r >= 1)                                                             \
                        sb[r - 1] += v * w[(r - 1) * K + kx];                               \
                }                                                                           \
            }                                                                               \
            vf16 ta = sa[0] + b, tb = sb[0] + b;                                            \
            for (int ky = 1; ky < K; ky++) {                                                \
                ta += sa[ky];                                                               \
                tb += sb[ky];                                                               \
            }                                                                               \
            STORE16(row_a + ox, ta);                                                        \
            STORE16(row_b + ox, tb);                                                        \
        }                                                                                   \
    }

DW_ROW2(3)
DW_ROW2(5)
/* As DW_ROW2, 32 columns per step (two vectors per row pair). */
#define DW_ROW2W(K)                                                                         \
    static void dw_row2w_k##K(const float *const *rows, const float *w, float b,            \
                              float *row_a, float *row_b, int n)                            \
    {                                                                                       \
        const float *r0[K + 1];                                                             \
        for (int r = 0; r <= K; r++)                                                        \
            r0[r] = rows[r];                                                                \
        for (int ox = 0; ox < n; ox += 32) {                                                \
            vf16 a0 = (vf16){0} + b, a1 = a0, b0 = a0, b1 = a0;                             \
            for (int r = 0; r <= K; r++) {                                                  \
                vf16 pa0 = (vf16){0}, pa1 = pa0, pb0 = pa0, pb1 = pa0;                      \
                for (int kx = 0; kx < K; kx++) {                                            \
                    vf16 v0 = LOAD16(r0[r] + ox + kx), v1 = LOAD16(r0[r] + ox + 16 + kx);   \
                    if (r < K) {                                                            \
                        pa0 += v0 * w[r * K + kx];                                          \
                        pa1 += v1 * w[r * K + kx];                                          \
                    }                                                                       \
                    if (r >= 1) {                                                           \
                        pb0 += v0 * w[(r - 1) * K + kx];                                    \
                        pb1 += v1 * w[(r - 1) * K + kx];                                    \
                    }                                                                       \
                }                                                                           \
                a0 += pa0;                                                                  \
                a1 += pa1;                                                                  \
                b0 += pb0;                                                                  \
                b1 += pb1;                                                                  \
            }                                                                               \
            STORE16(row_a + ox, a0);                                                        \
            STORE16(row_a + ox + 16, a1);                                                   \
            STORE16(row_b + ox, b0);                                                        \
            STORE16(row_b + ox + 16, b1);                                                   \
        }                                                                                   \
    }

DW_ROW2W(5)

/* As DW_ROW2, 64 columns per step: eight independent accumulator chains
 * (two rows x four vectors: enough to keep both FMA pipes busy through their
 * latency), and each input row's 2K weights broadcast once per step rather
 * than once per multiply-add, so a step costs about three loads for every
 * four multiply-adds instead of one load each. */
#define DW_ROW2X(K)                                                                         \
    static void dw_row2x_k##K(const float *const *rows, const float *w, float b,            \
                              float *row_a, float *row_b, int n)                            \
    {                                                                                       \
        for (int ox = 0; ox < n; ox += 64) {                                                \
            vf16 a0 = MD_SPLAT16(b), a1 = a0, a2 = a0, a3 = a0;                             \
            vf16 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                                        \
            for (int r = 0; r <= K; r++) {                                                  \
                const float *in = rows[r] + ox;                                             \
                vf16 wa[K], wb[K];                                                          \
                for (int kx = 0; kx < K; kx++) {                                            \
                    wa[kx] = MD_SPLAT16(r < K ? w[r * K + kx] : 0.0f);                      \
                    wb[kx] = MD_SPLAT16(r >= 1 ? w[(r - 1) * K + kx] : 0.0f);               \
                }                                                                           \
                for (int kx = 0; kx < K; kx++) {                                            \
                    vf16 v0 = LOAD16(in + kx), v1 = LOAD16(in + kx + 16);                   \
                    vf16 v2 = LOAD16(in + kx + 32), v3 = LOAD16(in + kx + 48);              \
                    if (r < K) {                                                            \
                        a0 += v0 * wa[kx];                                                  \
                        a1 += v1 * wa[kx];                                                  \
                        a2 += v2 * wa[kx];                                                  \
                        a3 += v3 * wa[kx];                                                  \
                    }                                                                       \
                    if (r >= 1) {                                                           \
                        b0 += v0 * wb[kx];                                                  \
                        b1 += v1 * wb[kx];                                                  \
                        b2 += v2 * wb[kx];                                                  \
                        b3 += v3 * wb[kx];                                                  \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
            STORE16(row_a + ox, a0);                                                        \
            STORE16(row_a + ox + 16, a1);                                                   \
            STORE16(row_a + ox + 32, a2);                                                   \
            STORE16(row_a + ox + 48, a3);                                                   \
            STORE16(row_b + ox, b0);                                                        \
            STORE16(row_b + ox + 16, b1);                                                   \
            STORE16(row_b + ox + 32, b2);                                                   \
            STORE16(row_b + ox + 48, b3);                                                   \
        }                                                                                   \
    }

DW_ROW2X(3)
DW_ROW2X(5)

typedef void (*dw_row_fn)(const float *const *, const float *, float, float *, int);

/* Stride 2: left to the vectoriser (stride-2 loads from the padded rows),
 * with one partial sum per kernel row to shorten the dependency chain; this
 * measured faster here than splitting the rows into even and odd columns. */
#define DW_ROW_S2(K)                                                                        \
    static void dw_row_k##K##_s2(const float *const *rows, const float *w, float b,         \
                                 float lo, float hi, float *o, int n)                       \
    {                                                                                       \
        float wk[K * K];                                                                    \
        for (int i = 0; i < K * K; i++)                                                     \
            wk[i] = w[i];                                                                   \
        for (int ox = 0; ox < n; ox++) {                                                    \
            float part[K];                                                                  \
            for (int ky = 0; ky < K; ky++) {                                                \
                float a = 0.0f;                                                             \
                for (int kx = 0; kx < K; kx++)                                              \
                    a += rows[ky][2 * ox + kx] * wk[ky * K + kx];                           \
                part[ky] = a;                                                               \
            }                                                                               \
            float acc = b;                                                                  \
            for (int ky = 0; ky < K; ky++)                                                  \
                acc += part[ky];                                                            \
            o[ox] = clampf(acc, lo, hi);                                                    \
        }                                                                                   \
    }

DW_ROW_S2(3)
DW_ROW_S2(5)

#define DW_PLANE_NV 8 /* rows up to 128 wide (FastDepth's widest is 112) */
#if defined(__AVX512F__)
/* Stride 1, K x K (3 or 5) with K/2 zeros on every side, rows of at most
 * 16 * NV columns. Each input row is NV vectors (lanes past the width zero);
 * its K column shifts are lane rotations against the neighbouring vector or
 * zero. On FastDepth's planes the padded path below spent most of its time
 * copying rows into the padded plane, calling the row kernel and clamping
 * each row out of a buffer: this runs its depthwise layers 2.2-4x faster
 * (7x7 to 28x28 planes) and 1.3-2.2x (56x56, 112x112), one thread, Zen 5.
 * The sums run in the padded path's order, zeros included, so the output is
 * bit-identical to it. */
/* The lanes of each of a row's n vectors that hold columns (w wide). */
static inline void dw_row_masks(int w, int n, __mmask16 *m)
{
    for (int v = 0; v < n; v++) {
        int c = w - 16 * v;
        c = c < 0 ? 0 : c > 16 ? 16 : c;
        m[v] = (__mmask16)((1u << c) - 1);
    }
}

/* The padded path's order for output row y: rows wider than 32 in pairs sum
 * every tap in one chain from b; the others (and an odd last row) sum each
 * kernel row from zero and add the rows to b. */
static inline bool dw_row_chained(int h, int w, int y)
{
    return w > 32 && !((h & 1) && y == h - 1);
}

static inline __attribute__((always_inline)) void dw_plane_small(const int K, const int NV,
                                                                 const float *plane, int h, int w,
                                                                 const float *wt, float b,
                                                                 float lo, float hi, float *o)
{
    const __m512 z = _mm512_setzero_ps(), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    const int P = K / 2;
    __mmask16 m[DW_PLANE_NV];
    dw_row_masks(w, NV, m);
    for (int y = 0; y < h; y++) {
        const bool chain = dw_row_chained(h, w, y);
        __m512 t[DW_PLANE_NV];
        for (int v = 0; v < NV; v++)
            t[v] = _mm512_set1_ps(b);
        for (int ky = 0; ky < K; ky++) {
            int iy = y + ky - P;
            bool inside = iy >= 0 && iy < h; /* rows out of the plane are zeros */
            const float *r = plane + (size_t)(inside ? iy : 0) * w;
            __m512 x[DW_PLANE_NV];
            for (int v = 0; v < NV; v++)
                x[v] = inside ? _mm512_maskz_loadu_ps(m[v], r + 16 * v) : z;
            __m512 wk[5];
            for (int kx = 0; kx < K; kx++)
                wk[kx] = _mm512_set1_ps(wt[ky * K + kx]);
            for (int v = 0; v < NV; v++) {
                /* sh[kx][lane] = the input at column 16 v + lane + kx - P */
                __m512 sh[5];
                __m512i xi = _mm512_castps_si512(x[v]);
                __m512i lo_v = _mm512_castps_si512(v > 0 ? x[v - 1] : z);
                __m512i hi_v = _mm512_castps_si512(v + 1 < NV ? x[v + 1] : z);
                sh[P] = x[v];
                sh[P - 1] = _mm512_castsi512_ps(_mm512_alignr_epi32(xi, lo_v, 15));
                sh[P + 1] = _mm512_castsi512_ps(_mm512_alignr_epi32(hi_v, xi, 1));
                if (K == 5) {
                    sh[0] = _mm512_castsi512_ps(_mm512_alignr_epi32(xi, lo_v, 14));
                    sh[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(hi_v, xi, 2));
                }
                if (chain) {
                    for (int kx = 0; kx < K; kx++)
                        t[v] = _mm512_fmadd_ps(sh[kx], wk[kx], t[v]);
                } else {
                    __m512 a = z;
                    for (int kx = 0; kx < K; kx++)
                        a = _mm512_fmadd_ps(sh[kx], wk[kx], a);
                    t[v] = _mm512_add_ps(t[v], a);
                }
            }
        }
        for (int v = 0; v < NV; v++)
            _mm512_mask_storeu_ps(o + (size_t)y * w + 16 * v, m[v],
                                  _mm512_min_ps(vhi, _mm512_max_ps(vlo, t[v])));
    }
}

/* The same convolution and sums for 5x5, one 16-column strip (vector v) at
 * a time, DW_BLK output rows at once: each input row of the strip is loaded
 * and shifted once for all the block's rows it feeds, not once per output
 * row (five times), and the weights are read by the multiply-adds as
 * broadcast operands. Each row takes its taps in dw_plane_small's order (ky,
 * then kx; chained or by kernel row alike), so the bits are the same. On
 * FastDepth's five 5x5 layers, alone, one thread, Zen 4: 0.63-0.93x the time
 * (7x7 to 112x112 planes); the network 0.987x in fp32 and 0.974x in bf16
 * on one thread, 0.984x and 0.977x on two (paired). For 3x3 it was slower
 * (1.03-1.43x): there dw_plane_small's shifts are fewer than the strips'
 * extra loads and calls. */
#define DW_BLK 4
static inline __attribute__((always_inline)) void
dw_strip_rows(const float *plane, int h, int w, int v, __mmask16 mcur, __mmask16 mnext,
              const float *wt, float b, __m512 vlo, __m512 vhi, float *o, int y0, int rows)
{
    const int K = 5, P = 2;
    const __m512 z = _mm512_setzero_ps();
    __m512 t[DW_BLK];
    bool chain[DW_BLK];
#pragma GCC unroll 4
    for (int r = 0; r < DW_BLK; r++) {
        t[r] = _mm512_set1_ps(b);
        chain[r] = dw_row_chained(h, w, y0 + r);
    }
    /* input rows y0 - P .. y0 + rows - 1 + P; j indexes them from 0 */
#pragma GCC unroll 8
    for (int j = 0; j < DW_BLK + K - 1; j++) {
        int iy = y0 - P + j;
        if (j >= rows + K - 1)
            break;
        bool inside = iy >= 0 && iy < h;
        const float *r0 = plane + (size_t)(inside ? iy : 0) * w + 16 * v;
        /* the strip and its two neighbours (zeros past the plane); masked
         * loads only where a row ends: in every step they are slow */
        __m512 x = !inside         ? z
                   : mcur == 0xffff ? _mm512_loadu_ps(r0)
                                    : _mm512_maskz_loadu_ps(mcur, r0);
        __m512 xl = inside && v > 0 ? _mm512_loadu_ps(r0 - 16) : z;
        __m512 xr = !inside || !mnext ? z
                    : mnext == 0xffff ? _mm512_loadu_ps(r0 + 16)
                                      : _mm512_maskz_loadu_ps(mnext, r0 + 16);
        __m512i xi = _mm512_castps_si512(x), li = _mm512_castps_si512(xl),
                hi_ = _mm512_castps_si512(xr);
        __m512 sh[5];
        sh[P] = x;
        sh[P - 1] = _mm512_castsi512_ps(_mm512_alignr_epi32(xi, li, 15));
        sh[P + 1] = _mm512_castsi512_ps(_mm512_alignr_epi32(hi_, xi, 1));
        sh[0] = _mm512_castsi512_ps(_mm512_alignr_epi32(xi, li, 14));
        sh[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(hi_, xi, 2));
        /* output row r takes this input row as its kernel row ky = j - r */
#pragma GCC unroll 4
        for (int r = 0; r < DW_BLK; r++) {
            int ky = j - r;
            if (ky < 0 || ky >= K || r >= rows)
                continue;
            const float *wk = wt + ky * K;
            /* opaque to the compiler: each weight is read by its FMA as a
             * broadcast operand, not kept (25 of them do not fit beside the
             * rows' registers) */
            __asm__("" : "+r"(wk));
            if (chain[r]) {
                for (int kx = 0; kx < K; kx++)
                    t[r] = _mm512_fmadd_ps(sh[kx], _mm512_set1_ps(wk[kx]), t[r]);
            } else {
                __m512 a = z;
                for (int kx = 0; kx < K; kx++)
                    a = _mm512_fmadd_ps(sh[kx], _mm512_set1_ps(wk[kx]), a);
                t[r] = _mm512_add_ps(t[r], a);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < DW_BLK; r++)
        if (r < rows)
            _mm512_mask_storeu_ps(o + (size_t)(y0 + r) * w + 16 * v, mcur,
                                  _mm512_min_ps(vhi, _mm512_max_ps(vlo, t[r])));
}

static inline __attribute__((always_inline)) void dw_plane_strips(const int NV,
                                                                  const float *plane, int h,
                                                                  int w, const float *wt, float b,
                                                                  float lo, float hi, float *o)
{
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    __mmask16 m[DW_PLANE_NV + 1];
    dw_row_masks(w, NV + 1, m);
    /* a plane of up to 1024 values strip by strip, a larger one by blocks
     * of rows across the strips (its rows then stay in L1) */
    if ((size_t)h * w <= 1024) {
        for (int v = 0; v < NV; v++)
            for (int y0 = 0; y0 < h; y0 += DW_BLK)
                dw_strip_rows(plane, h, w, v, m[v], m[v + 1], wt, b, vlo, vhi, o, y0,
                              h - y0 < DW_BLK ? h - y0 : DW_BLK);
    } else {
        for (int y0 = 0; y0 < h; y0 += DW_BLK)
            for (int v = 0; v < NV; v++)
                dw_strip_rows(plane, h, w, v, m[v], m[v + 1], wt, b, vlo, vhi, o, y0,
                              h - y0 < DW_BLK ? h - y0 : DW_BLK);
    }
}

#define DW_PLANE(K, NV)                                                                     \
    static void dw_plane_k##K##_v##NV(const float *pl, int h, int w, const float *wt, float b, \
                                      float lo, float hi, float *o)                           \
    {                                                                                         \
        if (K == 5)                                                                           \
            dw_plane_strips(NV, pl, h, w, wt, b, lo, hi, o);                                  \
        else                                                                                  \
            dw_plane_small(K, NV, pl, h, w, wt, b, lo, hi, o);                                \
    }
#define DW_PLANES(K)                                                                          \
    DW_PLANE(K, 1)                                                                            \
    DW_PLANE(K, 2)                                                                            \
    DW_PLANE(K, 3)                                                                            \
    DW_PLANE(K, 4)                                                                            \
    DW_PLANE(K, 5)                                                                            \
    DW_PLANE(K, 6)                                                                            \
    DW_PLANE(K, 7)                                                                            \
    DW_PLANE(K, 8)
DW_PLANES(3)
DW_PLANES(5)

/* Stride 2, 3x3, one zero row and column before the plane: output column
 * j reads input columns 2j - 1, 2j, 2j + 1. For 16 outputs, two input
 * vectors give the even and the odd columns by two-source permutes, and
 * column 2j - 1 is the odd one shifted up a lane (lane 0 from the previous
 * 16 outputs' odd columns, or zero). Output rows of at most 16 * NV
 * columns; the sums in the padded path's order (bit-identical). Against
 * the padded path: 2.4-6.8x faster on FastDepth's four such layers, one
 * thread, Zen 5. */
static inline __attribute__((always_inline)) void dw_plane_s2(const int NV, const float *plane,
                                                              int h, int w, int oh, int ow,
                                                              const float *wt, float b, float lo,
                                                              float hi, float *o)
{
    const __m512 z = _mm512_setzero_ps(), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __mmask16 mi[2 * DW_PLANE_NV], mo[DW_PLANE_NV];
    for (int v = 0; v < 2 * NV; v++) {
        int n = w - 16 * v;
        n = n < 0 ? 0 : n > 16 ? 16 : n;
        mi[v] = (__mmask16)((1u << n) - 1);
    }
    for (int v = 0; v < NV; v++) {
        int n = ow - 16 * v;
        n = n < 0 ? 0 : n > 16 ? 16 : n;
        mo[v] = (__mmask16)((1u << n) - 1);
    }
    for (int y = 0; y < oh; y++) {
        __m512 t[DW_PLANE_NV];
        for (int v = 0; v < NV; v++)
            t[v] = _mm512_set1_ps(b);
        for (int ky = 0; ky < 3; ky++) {
            int iy = 2 * y + ky - 1;
            bool inside = iy >= 0 && iy < h; /* rows out of the plane are zeros */
            const float *r = plane + (size_t)(inside ? iy : 0) * w;
            __m512 w0 = _mm512_set1_ps(wt[ky * 3]), w1 = _mm512_set1_ps(wt[ky * 3 + 1]),
                   w2 = _mm512_set1_ps(wt[ky * 3 + 2]);
            __m512 prev = z; /* the odd columns of the 16 outputs before */
            for (int v = 0; v < NV; v++) {
                __m512 a = inside ? _mm512_maskz_loadu_ps(mi[2 * v], r + 32 * v) : z;
                __m512 c = inside ? _mm512_maskz_loadu_ps(mi[2 * v + 1], r + 32 * v + 16) : z;
                __m512 ev = _mm512_permutex2var_ps(a, even, c);
                __m512 od = _mm512_permutex2var_ps(a, odd, c);
                __m512 left = _mm512_castsi512_ps(_mm512_alignr_epi32(
                    _mm512_castps_si512(od), _mm512_castps_si512(prev), 15));
                prev = od;
                __m512 acc = _mm512_fmadd_ps(left, w0, z);
                acc = _mm512_fmadd_ps(ev, w1, acc);
                acc = _mm512_fmadd_ps(od, w2, acc);
                t[v] = _mm512_add_ps(t[v], acc);
            }
        }
        for (int v = 0; v < NV; v++)
            _mm512_mask_storeu_ps(o + (size_t)y * ow + 16 * v, mo[v],
                                  _mm512_min_ps(vhi, _mm512_max_ps(vlo, t[v])));
    }
}

#define DW_PLANE_S2(NV)                                                                       \
    static void dw_plane_s2_v##NV(const float *pl, int h, int w, int oh, int ow,              \
                                  const float *wt, float b, float lo, float hi, float *o)     \
    {                                                                                         \
        dw_plane_s2(NV, pl, h, w, oh, ow, wt, b, lo, hi, o);                                  \
    }
DW_PLANE_S2(1)
DW_PLANE_S2(2)
DW_PLANE_S2(3)
DW_PLANE_S2(4)
typedef void (*dw_plane_s2_fn)(const float *, int, int, int, int, const float *, float, float,
                               float, float *);
/* by the number of output vectors a row takes, 1 to 4 */
static const dw_plane_s2_fn dw_plane_s2k3[4] = {dw_plane_s2_v1, dw_plane_s2_v2, dw_plane_s2_v3,
                                                 dw_plane_s2_v4};

typedef void (*dw_plane_fn)(const float *, int, int, const float *, float, float, float, float *);
/* by the number of vectors a row takes, 1 to DW_PLANE_NV */
static const dw_plane_fn dw_plane_k3[DW_PLANE_NV] = {dw_plane_k3_v1, dw_plane_k3_v2, dw_plane_k3_v3,
                                                     dw_plane_k3_v4, dw_plane_k3_v5, dw_plane_k3_v6,
                                                     dw_plane_k3_v7, dw_plane_k3_v8};
static const dw_plane_fn dw_plane_k5[DW_PLANE_NV] = {dw_plane_k5_v1, dw_plane_k5_v2, dw_plane_k5_v3,
                                                     dw_plane_k5_v4, dw_plane_k5_v5, dw_plane_k5_v6,
                                                     dw_plane_k5_v7, dw_plane_k5_v8};
#endif

#define SLACK 64 /* floats readable past any row start + its width */

size_t md_depthwise_scratch_floats(const md_conv2d_params *p, int in_h, int in_w)
{
    int out_h, out_w;
    if (!md_conv2d_output_size(p, in_h, in_w, &out_h, &out_w))
        return 0;
    size_t ph = (size_t)in_h + p->pad_top + p->pad_bottom, pw = (size_t)in_w + p->pad_left + p->pad_right;
    return ph * pw + SLACK + 2 * ((size_t)(out_w + 63) / 64 * 64) + SLACK;
}

void md_depthwise_conv2d(const md_conv2d_params *p, const float *in, int in_h, int in_w,
                         const float *weight, const float *bias, float lo, float hi, float *out,
                         int c_begin, int c_end, float *scratch)
{
    int out_h, out_w;
    if (!md_conv2d_output_size(p, in_h, in_w, &out_h, &out_w))
        return;
    int kh = p->kernel_h, kw = p->kernel_w, sx = p->stride_w, sy = p->stride_h;
    bool fast = kh == kw && (kh == 3 || kh == 5) && (sx == 1 || sx == 2) && (sy == 1 || sy == 2) &&
                p->dilation_h == 1 && p->dilation_w == 1;
    int pt = p->pad_top, pl = p->pad_left;
    int ph = in_h + pt + p->pad_bottom, pw = in_w + pl + p->pad_right;
    /* padded plane | two output rows */
    int row_w = (out_w + 63) / 64 * 64; /* the widest kernel writes 64 columns a step */
    size_t n_pad = (size_t)ph * pw + SLACK;
    dw_row_fn kernel = kh == 3 ? dw_row_k3_s1 : dw_row_k5_s1;
#if defined(__AVX512F__)
    int pk = kh / 2;
    if (fast && sx == 1 && sy == 1 && pt == pk && pl == pk && p->pad_bottom == pk &&
        p->pad_right == pk && in_w <= 16 * DW_PLANE_NV) {
        dw_plane_fn plane_fn = (kh == 3 ? dw_plane_k3 : dw_plane_k5)[(in_w - 1) / 16];
        for (int c = c_begin; c < c_end; c++)
            plane_fn(in + (size_t)c * in_h * in_w, in_h, in_w, weight + (size_t)c * kh * kw,
                     bias ? bias[c] : 0.0f, lo, hi, out + (size_t)c * out_h * out_w);
        return;
    }
    if (fast && sx == 2 && sy == 2 && kh == 3 && pt == 1 && pl == 1 && out_w <= 64) {
        dw_plane_s2_fn plane_fn = dw_plane_s2k3[(out_w - 1) / 16];
        for (int c = c_begin; c < c_end; c++)
            plane_fn(in + (size_t)c * in_h * in_w, in_h, in_w, out_h, out_w,
                     weight + (size_t)c * kh * kw, bias ? bias[c] : 0.0f, lo, hi,
                     out + (size_t)c * out_h * out_w);
        return;
    }
#endif
    float *buf = NULL, *own = NULL;
    if (fast && scratch) {
        /* reused memory: zero the padding (the interior is written per channel) */
        buf = scratch;
        for (int y = 0; y < ph; y++) {
            float *r = buf + (size_t)y * pw;
            if (y < pt || y >= pt + in_h) {
                memset(r, 0, sizeof(float) * (size_t)pw);
            } else {
                memset(r, 0, sizeof(float) * (size_t)pl);
                memset(r + pl + in_w, 0, sizeof(float) * (size_t)(pw - pl - in_w));
            }
        }
        memset(buf + (size_t)ph * pw, 0, sizeof(float) * (n_pad - (size_t)ph * pw));
    } else if (fast) {
        buf = own = calloc(n_pad + 2 * (size_t)row_w + SLACK, sizeof(float));
    }
    for (int c = c_begin; c < c_end; c++) {
        const float *plane = in + (size_t)c * in_h * in_w;
        const float *w = weight + (size_t)c * kh * kw;
        float b = bias ? bias[c] : 0.0f;
        float *o = out + (size_t)c * out_h * out_w;
        if (!buf) {
            for (int oy = 0; oy < out_h; oy++)
                for (int ox = 0; ox < out_w; ox++)
                    o[(size_t)oy * out_w + ox] =
                        clampf(dw_point(p, plane, in_h, in_w, w, oy, ox, b), lo, hi);
            continue;
        }
        float *padded = buf, *row = buf + n_pad;
        for (int y = 0; y < in_h; y++)
            memcpy(padded + (size_t)(y + pt) * pw + pl, plane + (size_t)y * in_w,
                   sizeof(float) * (size_t)in_w);
        int oy = 0;
        /* Row pairs share their input loads (measured faster at every size). */
        if (sx == 1 && sy == 1) {
            for (; oy + 1 < out_h; oy += 2) {
                const float *rows[6];
                for (int r = 0; r <= kh; r++)
                    rows[r] = padded + (size_t)(oy + r) * pw;
                /* Measured here: 64 columns with hoisted weights run rows over
                 * 32 wide 1.2x faster than 32 columns at 5x5 (1.03x at 3x3);
                 * 32 columns pay for 5x5 on rows of 17-32. */
                if (out_w > 32)
                    (kh == 3 ? dw_row2x_k3 : dw_row2x_k5)(rows, w, b, row, row + row_w, out_w);
                else if (kh == 3)
                    dw_row2_k3(rows, w, b, row, row + row_w, out_w);
                else
                    (out_w <= 16 ? dw_row2_k5 : dw_row2w_k5)(rows, w, b, row, row + row_w, out_w);
                float *oa = o + (size_t)oy * out_w;
                clamp_copy(row, oa, out_w, lo, hi);
                clamp_copy(row + row_w, oa + out_w, out_w, lo, hi);
            }
        }
        for (; oy < out_h; oy++) {
            const float *rows[5];
            for (int ky = 0; ky < kh; ky++)
                rows[ky] = padded + (size_t)(oy * sy + ky) * pw;
            float *orow = o + (size_t)oy * out_w;
            if (sx == 2) {
                (kh == 3 ? dw_row_k3_s2 : dw_row_k5_s2)(rows, w, b, lo, hi, orow, out_w);
                continue;
            }
            kernel(rows, w, b, row, out_w);
            clamp_copy(row, orow, out_w, lo, hi);
        }
    }
    free(own);
}
