#include "ops/cnn_ops.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

void md_clamp_inplace(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i] < lo ? lo : x[i];
        x[i] = v > hi ? hi : v;
    }
}

void md_relu_copy(const float *restrict src, float *restrict dst, size_t n)
{
    /* v <= 0 is false for NaN, which passes through; -0 becomes +0 */
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] <= 0.0f ? 0.0f : src[i];
}

void md_sigmoid_inplace(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f / (1.0f + expf(-x[i]));
}

void md_channel_affine_inplace(float *x, int channels, size_t hw, const float *scale,
                               const float *shift)
{
    for (int c = 0; c < channels; c++) {
        float *p = x + (size_t)c * hw;
        float s = scale[c], t = shift[c];
        for (size_t i = 0; i < hw; i++)
            p[i] = p[i] * s + t;
    }
}

static inline float bin(md_binary_op op, float a, float b)
{
    switch (op) {
    case MD_BIN_ADD: return a + b;
    case MD_BIN_SUB: return a - b;
    case MD_BIN_MUL: return a * b;
    case MD_BIN_DIV: return a / b;
    }
    return 0.0f;
}

static void bin_row(md_binary_op op, const float *a, size_t sa, const float *b, size_t sb,
                    float *o, size_t n)
{
    if (sa == 1 && sb == 1) {
        switch (op) {
        case MD_BIN_ADD:
            for (size_t i = 0; i < n; i++)
                o[i] = a[i] + b[i];
            return;
        case MD_BIN_MUL:
            for (size_t i = 0; i < n; i++)
                o[i] = a[i] * b[i];
            return;
        default: break;
        }
    }
    for (size_t i = 0; i < n; i++)
        o[i] = bin(op, a[i * sa], b[i * sb]);
}

void md_binary_broadcast(md_binary_op op, int ndim, const int64_t *out_dims, const float *a,
                         const int64_t *a_dims, const float *b, const int64_t *b_dims,
                         float *out)
{
    if (ndim == 0) {
        out[0] = bin(op, a[0], b[0]);
        return;
    }
    /* Element strides (0 on broadcast axes). */
    size_t sa[8], sb[8], acc_a = 1, acc_b = 1, total = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        sa[i] = a_dims[i] == 1 ? 0 : acc_a;
        sb[i] = b_dims[i] == 1 ? 0 : acc_b;
        acc_a *= (size_t)a_dims[i];
        acc_b *= (size_t)b_dims[i];
        total *= (size_t)out_dims[i];
    }
    if (total == 0)
        return;
    size_t inner = (size_t)out_dims[ndim - 1];
    int64_t idx[8] = {0};
    size_t oa = 0, ob = 0;
    for (size_t done = 0; done < total; done += inner) {
        bin_row(op, a + oa, sa[ndim - 1], b + ob, sb[ndim - 1], out + done, inner);
        for (int d = ndim - 2; d >= 0; d--) {
            idx[d]++;
            oa += sa[d];
            ob += sb[d];
            if (idx[d] < out_dims[d])
                break;
            oa -= sa[d] * (size_t)idx[d];
            ob -= sb[d] * (size_t)idx[d];
            idx[d] = 0;
        }
    }
}

static void avgpool(const md_pool2d_params *p, const float *in, int channels, int in_h, int in_w,
                    float *out, int out_h, int out_w)
{
    for (int c = 0; c < channels; c++) {
        const float *plane = in + (size_t)c * in_h * in_w;
        float *o = out + (size_t)c * out_h * out_w;
        for (int oy = 0; oy < out_h; oy++) {
            int y0 = oy * p->stride_h - p->pad_top;
            int y1 = y0 + p->kernel_h;
            int cy0 = y0 < 0 ? 0 : y0, cy1 = y1 > in_h ? in_h : y1;
            for (int ox = 0; ox < out_w; ox++) {
                int x0 = ox * p->stride_w - p->pad_left;
                int x1 = x0 + p->kernel_w;
                int cx0 = x0 < 0 ? 0 : x0, cx1 = x1 > in_w ? in_w : x1;
                float acc = 0.0f;
                int n = 0;
                for (int y = cy0; y < cy1; y++)
                    for (int x = cx0; x < cx1; x++, n++)
                        acc += plane[(size_t)y * in_w + x];
                if (n == 0) {
                    acc = 0.0f;
                } else {
                    int count = n;
                    if (p->count_include_pad) {
                        /* Cells inside the padded extent count; ceil_mode overhang does not. */
                        int py1 = y1 > in_h + p->pad_bottom ? in_h + p->pad_bottom : y1;
                        int px1 = x1 > in_w + p->pad_right ? in_w + p->pad_right : x1;
                        count = (py1 - y0) * (px1 - x0);
                    }
                    acc /= (float)count;
                }
                o[(size_t)oy * out_w + ox] = acc;
            }
        }
    }
}

/* Branch-free 2x2 stride-2 windows without padding (on real data the
 * comparisons are coin flips; branches on them mispredict half the time).
 * Scan order and NaN rule as the general loop. */
static void maxpool_2x2(const float *ip, int in_w, float *op, int out_h, int out_w,
                        int32_t *ap)
{
    for (int oy = 0; oy < out_h; oy++) {
        const float *r0 = ip + (size_t)(2 * oy) * in_w, *r1 = r0 + in_w;
        float *orow = op + (size_t)oy * out_w;
        int32_t base0 = 2 * oy * in_w;
        for (int ox = 0; ox < out_w; ox++) {
            float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
            float bv = a;
            int32_t bi = base0 + 2 * ox;
            bool u = b > bv || b != b;
            bv = u ? b : bv;
            bi = u ? base0 + 2 * ox + 1 : bi;
            u = c > bv || c != c;
            bv = u ? c : bv;
            bi = u ? base0 + in_w + 2 * ox : bi;
            u = d > bv || d != d;
            bv = u ? d : bv;
            bi = u ? base0 + in_w + 2 * ox + 1 : bi;
            orow[ox] = bv;
            if (ap)
                ap[(size_t)oy * out_w + ox] = bi;
        }
    }
}

void md_maxpool2d(const md_pool2d_params *p, const float *in, int channels, int in_h, int in_w,
                  float *out, int out_h, int out_w, int32_t *argmax)
{
    size_t ihw = (size_t)in_h * in_w, ohw = (size_t)out_h * out_w;
    bool fast = p->kernel_h == 2 && p->kernel_w == 2 && p->stride_h == 2 && p->stride_w == 2 &&
                !p->pad_top && !p->pad_left && 2 * out_h <= in_h && 2 * out_w <= in_w;
    for (int c = 0; c < channels; c++) {
        const float *plane = in + (size_t)c * ihw;
        float *o = out + (size_t)c * ohw;
        int32_t *am = argmax ? argmax + (size_t)c * ohw : NULL;
        if (fast) {
            maxpool_2x2(plane, in_w, o, out_h, out_w, am);
            continue;
        }
        for (int oy = 0; oy < out_h; oy++) {
            int y0 = oy * p->stride_h - p->pad_top, y1 = y0 + p->kernel_h;
            int cy0 = y0 < 0 ? 0 : y0, cy1 = y1 > in_h ? in_h : y1;
            for (int ox = 0; ox < out_w; ox++) {
                int x0 = ox * p->stride_w - p->pad_left, x1 = x0 + p->kernel_w;
                int cx0 = x0 < 0 ? 0 : x0, cx1 = x1 > in_w ? in_w : x1;
                float best = 0.0f;
                int32_t bi = -1;
                for (int y = cy0; y < cy1; y++)
                    for (int x = cx0; x < cx1; x++) {
                        int32_t idx = y * in_w + x;
                        float v = plane[idx];
                        if (bi < 0 || v > best || (v != v && best == best)) {
                            best = v;
                            bi = idx;
                        }
                    }
                o[(size_t)oy * out_w + ox] = best;
                if (am)
                    am[(size_t)oy * out_w + ox] = bi;
            }
        }
    }
}

void md_avgpool2d(const md_pool2d_params *p, const float *in, int channels, int in_h, int in_w,
                  float *out, int out_h, int out_w)
{
    avgpool(p, in, channels, in_h, in_w, out, out_h, out_w);
}

void md_global_avgpool(const float *in, size_t channels, size_t hw, float *out)
{
    for (size_t c = 0; c < channels; c++) {
        double s = 0.0;
        const float *p = in + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++)
            s += p[i];
        out[c] = hw ? (float)(s / (double)hw) : 0.0f;
    }
}

/* One 8-lane vector per channel holds exactly the eight scalar sums the
 * order in cnn_ops.h names, so the result does not depend on the vector width;
 * four channels at a time keep four add chains in flight. A loop of scalar
 * lanes that the compiler left unvectorised made these means 1.6 ms of a
 * FastDepth predict (a fifth of its network time, Zen 4). */
typedef float vf8 __attribute__((vector_size(32)));

/* As in simd.h: vectors never cross a function boundary by value (the ABI
 * would depend on the target), loads go through memcpy. */
static inline vf8 *load8_into(vf8 *v, const float *p)
{
    memcpy(v, p, sizeof *v);
    return v;
}
#define LOAD8(p) (*load8_into(&(vf8){0}, (p)))

static float finish_mean(const vf8 *acc, const float *p, size_t k, size_t hw)
{
    float lane[8];
    memcpy(lane, acc, sizeof lane);
    double sum = 0;
    for (int j = 0; j < 8; j++)
        sum += lane[j];
    for (; k < hw; k++)
        sum += p[k];
    return (float)(sum / (double)hw);
}

void md_channel_means(const float *in, size_t channels, size_t hw, float *out)
{
    size_t c = 0, body = hw / 8 * 8;
    for (; c + 4 <= channels; c += 4) {
        const float *p0 = in + c * hw, *p1 = p0 + hw, *p2 = p1 + hw, *p3 = p2 + hw;
        vf8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (size_t k = 0; k < body; k += 8) {
            a0 += LOAD8(p0 + k);
            a1 += LOAD8(p1 + k);
            a2 += LOAD8(p2 + k);
            a3 += LOAD8(p3 + k);
        }
        out[c] = finish_mean(&a0, p0, body, hw);
        out[c + 1] = finish_mean(&a1, p1, body, hw);
        out[c + 2] = finish_mean(&a2, p2, body, hw);
        out[c + 3] = finish_mean(&a3, p3, body, hw);
    }
    for (; c < channels; c++) {
        const float *p = in + c * hw;
        vf8 a = {0};
        for (size_t k = 0; k < body; k += 8)
            a += LOAD8(p + k);
        out[c] = finish_mean(&a, p, body, hw);
    }
}

void md_global_maxpool(const float *in, int channels, size_t hw, float *out)
{
    for (int c = 0; c < channels; c++) {
        float m = -FLT_MAX;
        const float *p = in + (size_t)c * hw;
        for (size_t i = 0; i < hw; i++)
            m = p[i] > m ? p[i] : m;
        out[c] = hw ? m : 0.0f;
    }
}

/* Source coordinate of output index x along one axis. */
static double src_coord(md_coord_mode mode, int x, int in_len, int out_len, double scale)
{
    switch (mode) {
    case MD_COORD_HALF_PIXEL: return (x + 0.5) / scale - 0.5;
    case MD_COORD_PYTORCH_HALF_PIXEL: return out_len > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case MD_COORD_ALIGN_CORNERS:
        return out_len > 1 ? (double)x * (in_len - 1) / (double)(out_len - 1) : 0.0;
    case MD_COORD_ASYMMETRIC: return x / scale;
    }
    return 0.0;
}

static int nearest_index(md_nearest_mode mode, double v, int in_len)
{
    double r;
    switch (mode) {
    case MD_NEAREST_ROUND_PREFER_FLOOR: r = v == floor(v) + 0.5 ? floor(v) : floor(v + 0.5); break;
    case MD_NEAREST_ROUND_PREFER_CEIL: r = floor(v + 0.5); break;
    case MD_NEAREST_FLOOR: r = floor(v); break;
    default: r = ceil(v); break;
    }
    if (r < 0)
        return 0;
    if (r > in_len - 1)
        return in_len - 1;
    return (int)r;
}

/* The tables from each output row's and column's source coordinate
 * (coord(user, axis, i): axis 0 rows, 1 columns). */
static bool tables_build(md_resize_tables *t, bool linear, md_nearest_mode nearest, int in_h,
                         int in_w, int out_h, int out_w, double (*coord)(void *, int, int),
                         void *user)
{
    memset(t, 0, sizeof *t);
    t->iy0 = malloc(sizeof(int) * (size_t)(2 * out_h + 2 * out_w));
    t->fy = malloc(sizeof(float) * (size_t)(out_h + out_w));
    if (!t->iy0 || !t->fy) {
        md_resize_tables_free(t);
        return false;
    }
    t->linear = linear;
    t->out_h = out_h;
    t->out_w = out_w;
    t->iy1 = t->iy0 + out_h;
    t->ix0 = t->iy1 + out_h;
    t->ix1 = t->ix0 + out_w;
    t->fx = t->fy + out_h;
    for (int a = 0; a < 2; a++) {
        int n = a ? out_w : out_h, len = a ? in_w : in_h;
        int *i0 = a ? t->ix0 : t->iy0, *i1 = a ? t->ix1 : t->iy1;
        float *fr = a ? t->fx : t->fy;
        for (int i = 0; i < n; i++) {
            double v = coord(user, a, i);
            if (!linear) {
                i0[i] = i1[i] = nearest_index(nearest, v, len);
                fr[i] = 0.0f;
                continue;
            }
            if (v < 0)
                v = 0;
            if (v > len - 1)
                v = len - 1;
            int lo = (int)floor(v);
            i0[i] = lo;
            i1[i] = lo + 1 < len ? lo + 1 : len - 1;
            fr[i] = (float)(v - lo);
        }
    }
    /* An upsampling's 16 output columns read a few neighbouring inputs: one
     * load and two permutes instead of two gathers. */
    int groups = out_w / 16;
    if (linear && groups > 0) {
        t->gbase = malloc(sizeof(int) * (size_t)groups);
        t->gidx = malloc(sizeof(int32_t) * 32 * (size_t)groups);
        if (!t->gbase || !t->gidx) {
            md_resize_tables_free(t);
            return false;
        }
        for (int g = 0; g < groups; g++) {
            int base = t->ix0[16 * g];
            t->gbase[g] = base + 16 <= in_w && t->ix1[16 * g + 15] - base < 16 ? base : -1;
            for (int k = 0; k < 16; k++) {
                t->gidx[32 * g + k] = t->ix0[16 * g + k] - base;
                t->gidx[32 * g + 16 + k] = t->ix1[16 * g + k] - base;
            }
        }
    }
    /* Integer nearest upscales (the common x2) copy runs of equal values. */
    if (!linear && out_w % in_w == 0) {
        t->fx_int = out_w / in_w;
        for (int x = 0; x < out_w && t->fx_int; x++)
            if (t->ix0[x] != x / t->fx_int)
                t->fx_int = 0;
    }
    return true;
}

typedef struct {
    const md_resize_params *p;
    int in_h, in_w, out_h, out_w;
    double sh, sw;
} onnx_coords;

static double onnx_coord(void *user, int axis, int i)
{
    const onnx_coords *c = user;
    return axis ? src_coord(c->p->coord, i, c->in_w, c->out_w, c->sw)
                : src_coord(c->p->coord, i, c->in_h, c->out_h, c->sh);
}

bool md_resize_tables_init(md_resize_tables *t, const md_resize_params *p, int in_h, int in_w,
                           int out_h, int out_w)
{
    onnx_coords c = {p, in_h, in_w, out_h, out_w,
                     p->scale_h > 0 ? p->scale_h : (double)out_h / in_h,
                     p->scale_w > 0 ? p->scale_w : (double)out_w / in_w};
    return tables_build(t, p->linear, p->nearest, in_h, in_w, out_h, out_w, onnx_coord, &c);
}

bool md_resize_tables_map(md_resize_tables *t, int in_h, int in_w, int out_h, int out_w,
                          double (*coord)(void *user, int axis, int i), void *user)
{
    return tables_build(t, true, MD_NEAREST_FLOOR, in_h, in_w, out_h, out_w, coord, user);
}

void md_resize_tables_free(md_resize_tables *t)
{
    free(t->iy0);
    free(t->fy);
    free(t->gbase);
    free(t->gidx);
    memset(t, 0, sizeof *t);
}

void md_resize2d(const md_resize_tables *t, const float *in, int in_h, int in_w, float *out,
                 const float *addend, int c_begin, int c_end)
{
    md_resize2d_rows(t, in, in_h, in_w, out, addend, c_begin, c_end, 0, t->out_h);
}

/* One input row interpolated along x (the gathers of bilinear resizing,
 * done once per input row rather than twice per output row). */
static void resize_row_x(const md_resize_tables *t, const float *r, float *h)
{
    const int *ix0 = t->ix0, *ix1 = t->ix1;
    const float *fx = t->fx;
    int x = 0;
#if defined(__AVX512F__)
    for (int g = 0; g < t->out_w / 16 && t->gbase; g++, x += 16) {
        if (t->gbase[g] < 0) {
            for (int k = x; k < x + 16; k++)
                h[k] = r[ix0[k]] + (r[ix1[k]] - r[ix0[k]]) * fx[k];
            continue;
        }
        __m512 v = _mm512_loadu_ps(r + t->gbase[g]);
        __m512 a = _mm512_permutexvar_ps(_mm512_loadu_si512(t->gidx + 32 * g), v);
        __m512 b = _mm512_permutexvar_ps(_mm512_loadu_si512(t->gidx + 32 * g + 16), v);
        _mm512_storeu_ps(h + x, _mm512_fmadd_ps(_mm512_sub_ps(b, a), _mm512_loadu_ps(fx + x), a));
    }
#endif
    for (; x < t->out_w; x++)
        h[x] = r[ix0[x]] + (r[ix1[x]] - r[ix0[x]]) * fx[x];
}

/* Bilinear rows through a cache of two x-interpolated input rows (rows
 * advance monotonically, so each input row is interpolated about once);
 * the same arithmetic as the direct loop below. false: no memory. */
static bool resize_linear_cached(const md_resize_tables *t, const float *in, int in_h, int in_w,
                                 float *out, const float *addend, int c_begin, int c_end, int y0,
                                 int y1)
{
    int out_w = t->out_w, rows = y1 - y0;
    float *buf = malloc(sizeof(float) * 2 * (size_t)out_w);
    if (!buf)
        return false;
    for (int c = c_begin; c < c_end; c++) {
        const float *plane = in + (size_t)c * in_h * in_w;
        float *o = out + (size_t)c * rows * out_w;
        const float *add = addend ? addend + (size_t)c * rows * out_w : NULL;
        float *hb[2] = {buf, buf + out_w};
        int have[2] = {-1, -1};
        for (int y = y0; y < y1; y++) {
            int ya = t->iy0[y], yb = t->iy1[y];
            int sa = have[0] == ya ? 0 : have[1] == ya ? 1 : -1;
            if (sa < 0) {
                sa = have[0] == yb ? 1 : 0;
                resize_row_x(t, plane + (size_t)ya * in_w, hb[sa]);
                have[sa] = ya;
            }
            int sb = have[0] == yb ? 0 : have[1] == yb ? 1 : -1;
            if (sb < 0) {
                sb = 1 - sa;
                resize_row_x(t, plane + (size_t)yb * in_w, hb[sb]);
                have[sb] = yb;
            }
            const float *top = hb[sa], *bot = hb[sb];
            float wy = t->fy[y];
            float *orow = o + (size_t)(y - y0) * out_w;
            const float *arow = add ? add + (size_t)(y - y0) * out_w : NULL;
            if (arow)
                for (int x = 0; x < out_w; x++)
                    orow[x] = top[x] + (bot[x] - top[x]) * wy + arow[x];
            else
                for (int x = 0; x < out_w; x++)
                    orow[x] = top[x] + (bot[x] - top[x]) * wy;
        }
    }
    free(buf);
    return true;
}

void md_resize2d_rows(const md_resize_tables *t, const float *in, int in_h, int in_w, float *out,
                      const float *addend, int c_begin, int c_end, int y0, int y1)
{
    if (t->linear && t->fx_int == 0 &&
        resize_linear_cached(t, in, in_h, in_w, out, addend, c_begin, c_end, y0, y1))
        return;
    int out_w = t->out_w, fx_int = t->fx_int, rows = y1 - y0;
    const int *iy0 = t->iy0, *iy1 = t->iy1, *ix0 = t->ix0, *ix1 = t->ix1;
    const float *fy = t->fy, *fx = t->fx;
    for (int c = c_begin; c < c_end; c++) {
        const float *plane = in + (size_t)c * in_h * in_w;
        float *o = out + (size_t)c * rows * out_w;
        const float *add = addend ? addend + (size_t)c * rows * out_w : NULL;
        for (int y = y0; y < y1; y++) {
            const float *r0 = plane + (size_t)iy0[y] * in_w;
            const float *r1 = plane + (size_t)iy1[y] * in_w;
            float *orow = o + (size_t)(y - y0) * out_w;
            const float *arow = add ? add + (size_t)(y - y0) * out_w : NULL;
            if (fx_int == 2) {
#if defined(__AVX512F__)
                /* 16 inputs -> 32 outputs by two permutes: FastDepth 0.993x the
                 * time in fp32 and 0.983x in bf16 on one thread, 0.996x on two
                 * (paired, Zen 4; 0.98x / 1.01x on Zen 5) */
                {
                    const __m512i lo =
                        _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
                    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
                    int x = 0;
                    for (; x + 16 <= in_w; x += 16) {
                        __m512 v = _mm512_loadu_ps(r0 + x);
                        __m512 a = _mm512_permutexvar_ps(lo, v);
                        __m512 b = _mm512_permutexvar_ps(hi, v);
                        if (arow) {
                            a = _mm512_add_ps(a, _mm512_loadu_ps(arow + 2 * x));
                            b = _mm512_add_ps(b, _mm512_loadu_ps(arow + 2 * x + 16));
                        }
                        _mm512_storeu_ps(orow + 2 * x, a);
                        _mm512_storeu_ps(orow + 2 * x + 16, b);
                    }
                    if (x < in_w) {
                        int r = in_w - x; /* 1..15 inputs: 2r outputs */
                        __mmask16 k = (__mmask16)((1u << r) - 1u);
                        __mmask16 ka = (__mmask16)(r >= 8 ? 0xffff : (1u << (2 * r)) - 1u);
                        __mmask16 kb = (__mmask16)(r > 8 ? (1u << (2 * (r - 8))) - 1u : 0);
                        __m512 v = _mm512_maskz_loadu_ps(k, r0 + x);
                        __m512 a = _mm512_permutexvar_ps(lo, v);
                        __m512 b = _mm512_permutexvar_ps(hi, v);
                        if (arow) {
                            a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(ka, arow + 2 * x));
                            b = _mm512_add_ps(b, _mm512_maskz_loadu_ps(kb, arow + 2 * x + 16));
                        }
                        _mm512_mask_storeu_ps(orow + 2 * x, ka, a);
                        _mm512_mask_storeu_ps(orow + 2 * x + 16, kb, b);
                    }
                    continue;
                }
#endif
                if (arow)
                    for (int x = 0; x < in_w; x++) {
                        orow[2 * x] = r0[x] + arow[2 * x];
                        orow[2 * x + 1] = r0[x] + arow[2 * x + 1];
                    }
                else
                    for (int x = 0; x < in_w; x++)
                        orow[2 * x] = orow[2 * x + 1] = r0[x];
                continue;
            }
            if (!t->linear) {
                if (arow)
                    for (int x = 0; x < out_w; x++)
                        orow[x] = r0[ix0[x]] + arow[x];
                else
                    for (int x = 0; x < out_w; x++)
                        orow[x] = r0[ix0[x]];
                continue;
            }
            float wy = fy[y];
            for (int x = 0; x < out_w; x++) {
                float wx = fx[x];
                float top = r0[ix0[x]] + (r0[ix1[x]] - r0[ix0[x]]) * wx;
                float bot = r1[ix0[x]] + (r1[ix1[x]] - r1[ix0[x]]) * wx;
                float v = top + (bot - top) * wy;
                orow[x] = arow ? v + arow[x] : v;
            }
        }
    }
}

void md_resize_pil_nearest(const float *in, int channels, int in_h, int in_w, float *out,
                           int out_h, int out_w)
{
    int *xs = malloc(sizeof(int) * (size_t)out_w);
    if (!xs) {
        memset(out, 0, sizeof(float) * (size_t)channels * out_h * out_w);
        return;
    }
    double sx = (double)in_w / out_w, sy = (double)in_h / out_h;
    for (int x = 0; x < out_w; x++) {
        int v = (int)floor((x + 0.5) * sx);
        xs[x] = v < 0 ? 0 : v >= in_w ? in_w - 1 : v;
    }
    for (int c = 0; c < channels; c++) {
        const float *plane = in + (size_t)c * in_h * in_w;
        float *o = out + (size_t)c * out_h * out_w;
        for (int y = 0; y < out_h; y++) {
            int v = (int)floor((y + 0.5) * sy);
            v = v < 0 ? 0 : v >= in_h ? in_h - 1 : v;
            const float *src = plane + (size_t)v * in_w;
            float *dst = o + (size_t)y * out_w;
            for (int x = 0; x < out_w; x++)
                dst[x] = src[xs[x]];
        }
    }
    free(xs);
}

void md_transpose(const float *in, int ndim, const int64_t *dims, const int *perm, float *out)
{
    size_t in_stride[8], total = 1;
    size_t acc = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        in_stride[i] = acc;
        acc *= (size_t)dims[i];
    }
    int64_t odims[8] = {0};
    size_t ostr[8] = {0}; /* input stride for each output axis */
    for (int i = 0; i < ndim; i++) {
        odims[i] = dims[perm[i]];
        ostr[i] = in_stride[perm[i]];
        total *= (size_t)odims[i];
    }
    if (total == 0)
        return;
    if (ndim == 0) {
        out[0] = in[0];
        return;
    }
    int64_t idx[8] = {0};
    size_t src = 0;
    size_t inner = (size_t)odims[ndim - 1], s_in = ostr[ndim - 1];
    for (size_t done = 0; done < total; done += inner) {
        for (size_t i = 0; i < inner; i++)
            out[done + i] = in[src + i * s_in];
        for (int d = ndim - 2; d >= 0; d--) {
            idx[d]++;
            src += ostr[d];
            if (idx[d] < odims[d])
                break;
            src -= ostr[d] * (size_t)idx[d];
            idx[d] = 0;
        }
    }
}
