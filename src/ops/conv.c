/* The convolution driver: see tensor_ops.h. */
#include "ops/tensor_ops.h"

#include "base/pool.h"
#include "ops/cnn_ops.h"
#include "ops/simd.h"
#include "ops/winograd.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One worker's im2col band is kept near this many floats (512 KB: L2). */
#define COL_TARGET ((size_t)128 << 10)

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

bool md_conv_is_depthwise(const md_conv2d_params *p)
{
    return p->groups == p->in_channels && p->groups == p->out_channels && p->groups > 1;
}

static int group_k(const md_conv2d_params *p)
{
    return p->in_channels / p->groups * p->kernel_h * p->kernel_w;
}

size_t md_conv2d_scratch_floats(const md_conv2d_params *p, int in_h, int in_w)
{
    int oh, ow;
    if (md_conv_is_depthwise(p) || !md_conv2d_output_size(p, in_h, in_w, &oh, &ow))
        return 0;
    return (size_t)group_k(p) * (size_t)oh * (size_t)ow;
}

/* Ungrouped stride-1 convolutions other than pointwise run as an implicit
 * GEMM: the B operand's row for tap (ky, kx) of channel c is a zero-padded
 * copy of the band of input rows, shifted by the tap: a table of offsets
 * replaces the unfolding. Weights are packed as A (Cout x K') with k' = (ky,
 * kx, c): consecutive channels of one tap make the bf16 pairs, and the padded
 * band stores channel pairs side by side for bf16. */
bool md_conv_is_implicit(const md_conv2d_params *p)
{
    bool pointwise = p->kernel_h == 1 && p->kernel_w == 1 && !p->pad_top && !p->pad_left &&
                     !p->pad_bottom && !p->pad_right;
    return p->groups == 1 && p->stride_h == 1 && p->stride_w == 1 && !pointwise;
}

/* Channels of the padded band: bf16 pairs them, so an odd count gets a zero. */
static int band_channels(const md_conv2d_params *p, md_gemm_type type)
{
    return type == MD_GEMM_BF16 ? (p->in_channels + 1) & ~1 : p->in_channels;
}

static int implicit_k(const md_conv2d_params *p, md_gemm_type type)
{
    return p->kernel_h * p->kernel_w * band_channels(p, type);
}

bool md_conv_is_winograd(const md_conv2d_params *p, md_gemm_type type, md_conv_algo algo)
{
    return algo == MD_CONV_FAST && type == MD_GEMM_F32 && p->groups == 1 && p->kernel_h == 3 &&
           p->kernel_w == 3 && p->stride_h == 1 && p->stride_w == 1 && p->dilation_h == 1 &&
           p->dilation_w == 1 && p->pad_top == 1 && p->pad_left == 1 && p->pad_bottom == 1 &&
           p->pad_right == 1;
}

size_t md_conv_packed_bytes(const md_conv2d_params *p, md_gemm_type type, md_conv_algo algo)
{
    if (md_conv_is_depthwise(p))
        return 0;
    if (md_conv_is_winograd(p, type, algo))
        return 36 * md_gemm_packed_bytes(type, true, p->out_channels, p->in_channels);
    if (md_conv_is_implicit(p))
        return md_gemm_packed_bytes(type, true, p->out_channels, implicit_k(p, type));
    int cout_g = p->out_channels / p->groups;
    return (size_t)p->groups * md_gemm_packed_bytes(type, true, cout_g, group_k(p));
}

typedef struct {
    const md_conv2d_params *p;
    const float *w;
    int cp; /* band channels */
} weight_view;

/* W'(o, k') with k' = (ky * kw + kx) * cp + c: the implicit GEMM's A. */
static float implicit_weight(const void *ctx, int o, int k)
{
    const weight_view *v = ctx;
    const md_conv2d_params *p = v->p;
    int c = k % v->cp, tap = k / v->cp, ky = tap / p->kernel_w, kx = tap % p->kernel_w;
    if (c >= p->in_channels)
        return 0.0f;
    return v->w[(((size_t)o * p->in_channels + c) * p->kernel_h + ky) * p->kernel_w + kx];
}

/* U_xi (o, c): the Winograd transform of filter (o, c) at position xi. */
typedef struct {
    const float *w;
    int cin, xi;
} wino_view;

static float wino_weight(const void *ctx, int o, int c)
{
    const wino_view *v = ctx;
    return md_wino_weight(v->w, v->cin, v->xi, o, c);
}

void md_conv_init_into(md_conv *c, const md_conv2d_params *p, md_gemm_type type,
                       md_conv_algo algo, const float *weight, const float *bias, void *packed)
{
    memset(c, 0, sizeof *c);
    c->p = *p;
    c->type = md_conv_is_depthwise(p) ? MD_GEMM_F32 : type;
    c->weight = weight;
    c->bias = bias;
    if (md_conv_is_depthwise(p) || !packed)
        return;
    if (md_conv_is_winograd(p, type, algo)) {
        size_t bytes = md_gemm_packed_bytes(type, true, p->out_channels, p->in_channels);
        for (int xi = 0; xi < 36; xi++) {
            wino_view v = {weight, p->in_channels, xi};
            md_gemm_pack_a_fn(type, (char *)packed + (size_t)xi * bytes, p->out_channels,
                              p->in_channels, wino_weight, &v);
        }
        c->packed = packed;
        c->winograd = true;
        return;
    }
    if (md_conv_is_implicit(p)) {
        weight_view v = {p, weight, band_channels(p, type)};
        md_gemm_pack_a_fn(type, packed, p->out_channels, implicit_k(p, type), implicit_weight, &v);
        c->packed = packed;
        return;
    }
    int K = group_k(p), cout_g = p->out_channels / p->groups;
    size_t gbytes = md_gemm_packed_bytes(type, true, cout_g, K);
    for (int g = 0; g < p->groups; g++)
        md_gemm_pack_a_into(type, (char *)packed + (size_t)g * gbytes,
                            weight + (size_t)g * cout_g * K, (size_t)K, false, cout_g, K);
    c->packed = packed;
}

bool md_conv_init(md_conv *c, const md_conv2d_params *p, md_gemm_type type, md_conv_algo algo,
                  const float *weight, const float *bias)
{
    size_t n = md_conv_packed_bytes(p, type, algo);
    void *buf = n ? aligned_alloc(64, (n + 63) / 64 * 64) : NULL;
    md_conv_init_into(c, p, type, algo, weight, bias, buf);
    c->owns_packed = buf != NULL;
    return n == 0 || buf != NULL;
}

void md_conv_free(md_conv *c)
{
    if (c && c->owns_packed)
        free(c->packed);
    if (c)
        memset(c, 0, sizeof *c);
}

/* Output columns [lo, hi) whose source column x0 + ox * s lies in [0, in_w). */
static void inside_columns(int x0, int s, int in_w, int out_w, int *lo, int *hi)
{
    *lo = x0 >= 0 ? 0 : (-x0 + s - 1) / s;
    *hi = in_w - 1 - x0 >= 0 ? (in_w - 1 - x0) / s + 1 : 0;
    if (*hi > out_w)
        *hi = out_w;
    if (*lo > *hi)
        *lo = *hi;
}

/* dst[ox] = src[2 ox] for ox in [lo, hi), src readable below `avail`: the
 * even lanes of two vectors per 16 values (the compiler's own loop for the
 * strided copy ran about one value a cycle). */
static void copy_stride2(const float *src, float *dst, int lo, int hi, int avail)
{
    int ox = lo;
    for (; ox + 16 <= hi && 2 * ox + 32 <= avail; ox += 16) {
        md_vf16 a = MD_LOAD16(src + 2 * ox), b = MD_LOAD16(src + 2 * ox + 16);
        md_vf16 e = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                            26, 28, 30);
        MD_STORE16(dst + ox, e);
    }
    for (; ox < hi; ox++)
        dst[ox] = src[2 * ox];
}

void md_im2col(const md_conv2d_params *p, const float *in, int channels, int in_h, int in_w,
               int out_h, int out_w, float *col, size_t ldcol, bool relu)
{
    for (int c = 0; c < channels; c++) {
        const float *plane = in + (size_t)c * in_h * in_w;
        for (int ky = 0; ky < p->kernel_h; ky++) {
            for (int kx = 0; kx < p->kernel_w; kx++) {
                float *row = col + (((size_t)c * p->kernel_h + ky) * p->kernel_w + kx) * ldcol;
                for (int oy = 0; oy < out_h; oy++) {
                    int iy = oy * p->stride_h - p->pad_top + ky * p->dilation_h;
                    float *dst = row + (size_t)oy * out_w;
                    if (iy < 0 || iy >= in_h) {
                        memset(dst, 0, sizeof(float) * (size_t)out_w);
                        continue;
                    }
                    const float *src = plane + (size_t)iy * in_w;
                    int x0 = -p->pad_left + kx * p->dilation_w, s = p->stride_w, lo, hi;
                    /* Columns whose source lies inside the row, then a plain
                     * strided copy the compiler can vectorise; zeros around. */
                    inside_columns(x0, s, in_w, out_w, &lo, &hi);
                    for (int ox = 0; ox < lo; ox++)
                        dst[ox] = 0.0f;
                    if (relu)
                        for (int ox = lo; ox < hi; ox++) {
                            float v = src[x0 + ox * s];
                            dst[ox] = v > 0.0f ? v : (v == v ? 0.0f : v);
                        }
                    else if (s == 1)
                        memcpy(dst + lo, src + x0 + lo, sizeof(float) * (size_t)(hi - lo));
                    else if (s == 2)
                        copy_stride2(src + x0, dst, lo, hi, in_w - x0);
                    else
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox] = src[x0 + ox * s];
                    for (int ox = hi; ox < out_w; ox++)
                        dst[ox] = 0.0f;
                }
            }
        }
    }
}

void md_col2im_add(const md_conv2d_params *p, const float *col, int channels, int in_h, int in_w,
                   int out_h, int out_w, float *img)
{
    size_t ohw = (size_t)out_h * out_w;
    for (int c = 0; c < channels; c++) {
        float *plane = img + (size_t)c * in_h * in_w;
        for (int ky = 0; ky < p->kernel_h; ky++) {
            for (int kx = 0; kx < p->kernel_w; kx++) {
                const float *row =
                    col + (((size_t)c * p->kernel_h + ky) * p->kernel_w + kx) * ohw;
                int x0 = -p->pad_left + kx * p->dilation_w, s = p->stride_w, lo, hi;
                inside_columns(x0, s, in_w, out_w, &lo, &hi);
                for (int oy = 0; oy < out_h; oy++) {
                    int iy = oy * p->stride_h - p->pad_top + ky * p->dilation_h;
                    if (iy < 0 || iy >= in_h)
                        continue;
                    float *dst = plane + (size_t)iy * in_w + x0;
                    const float *src = row + (size_t)oy * out_w;
                    if (s == 1) {
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox] += src[ox];
                    } else {
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox * s] += src[ox];
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------ forward */

/* A 1x1 stride-1 unpadded convolution of a plain source reads its input in
 * place as the GEMM's B operand: no unfolding. */
static bool reads_in_place(const md_conv2d_params *p, const md_conv_src *src)
{
    return p->kernel_h == 1 && p->kernel_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
           !p->pad_top && !p->pad_left && !p->pad_bottom && !p->pad_right && !src->relu &&
           src->up_h <= 0;
}

typedef struct {
    const md_conv *c;
    const md_conv_src *src;
    const md_conv_dst *dst;
    md_gemm_isa isa;
    md_resize_tables up; /* src->up_h > 0 */
    bool in_place;
    bool by_pixels;   /* in place into out: tasks take ranges of whole tiles of pixels */
    bool by_channels; /* ... or, on small planes, of output channels (in_place_task) */
    bool implicit;    /* md_conv_is_implicit: a padded band of input rows, no unfolding */
    int oh, ow, R, bands, K, ldb;
    int wp, rin, cp;    /* implicit: padded row width, band input rows, band channels */
    size_t rows_floats, col_floats, band_floats, per_worker;
    const int32_t *koff; /* implicit: offset of each k step in the padded band */
    float *scratch;
} conv_plan;

/* Rows per band: R, at least min_rows, at most oh, at least 1. */
static int band_rows(int R, int min_rows, int oh)
{
    R = R < min_rows ? min_rows : R;
    R = R > oh ? oh : R;
    return R < 1 ? 1 : R;
}

static void plan_bands(conv_plan *pl, const md_conv *c, const md_conv_src *src, bool band_out,
                       int workers)
{
    const md_conv2d_params *p = &c->p;
    pl->K = group_k(p);
    int rows_fit = (int)(COL_TARGET / ((size_t)pl->K * (size_t)pl->ow));
    /* four bands per worker at least, for balance (a worker the system pauses
     * leaves its bands to the others); one thread takes what fits */
    int share = workers > 1 ? (pl->oh + 4 * workers - 1) / (4 * workers) : pl->oh;
    int min_rows = (31 + pl->ow) / pl->ow; /* a band of fewer than 32 pixels wastes the kernel */
    if (src->up_h > 0 && min_rows < 8)
        min_rows = 8; /* each band upsamples its rows plus a halo: keep the halo small */
    int R = band_rows(rows_fit < share ? rows_fit : share, min_rows, pl->oh);
    pl->R = R;
    pl->bands = (pl->oh + R - 1) / R;
    pl->ldb = (R * pl->ow + MD_GEMM_NR - 1) / MD_GEMM_NR * MD_GEMM_NR;
    pl->in_place = reads_in_place(p, src);
    pl->col_floats = pl->in_place ? 0 : (size_t)pl->K * (size_t)pl->ldb;
    pl->rows_floats = 0;
    if (src->up_h > 0) {
        int span = (R - 1) * p->stride_h + (p->kernel_h - 1) * p->dilation_h + 1;
        pl->rows_floats = (size_t)p->in_channels * (size_t)span * (size_t)src->w;
    }
    pl->band_floats = band_out ? (size_t)p->out_channels * (size_t)R * (size_t)pl->ow : 0;
    pl->per_worker = (pl->rows_floats + pl->col_floats + pl->band_floats + 15) / 16 * 16;
    pl->implicit = md_conv_is_implicit(p) && c->packed;
    if (!pl->implicit)
        return;
    /* The padded band (cp channels of rin rows of wp values, bf16 two channels
     * per 32-bit value) stays near L2; a band smaller than its halo wastes
     * copies. */
    bool bf = c->type == MD_GEMM_BF16;
    int halo = (p->kernel_h - 1) * p->dilation_h;
    pl->cp = band_channels(p, c->type);
    pl->wp = src->w + p->pad_left + p->pad_right;
    size_t per_row = (size_t)(bf ? pl->cp / 2 : pl->cp) * (size_t)pl->wp;
    R = (int)(COL_TARGET / per_row) - halo;
    R = R > share ? share : R;
    R = band_rows(R, src->up_h > 0 && halo + 1 < 8 ? 8 : halo + 1, pl->oh);
    pl->R = R;
    pl->bands = (pl->oh + R - 1) / R;
    pl->rin = R + halo;
    /* + two ReLU'd rows for bf16 pairing, + a tile of slack the kernel may read */
    pl->col_floats = per_row * (size_t)pl->rin + (bf ? 2 * (size_t)src->w : 0) + MD_GEMM_NR;
    pl->rows_floats = src->up_h > 0 ? (size_t)p->in_channels * (size_t)pl->rin * src->w : 0;
    pl->band_floats = band_out ? (size_t)p->out_channels * (size_t)R * (size_t)pl->ow : 0;
    pl->per_worker = (pl->rows_floats + pl->col_floats + pl->band_floats + 15) / 16 * 16;
}

/* Rows [y0, y1) of an implicit convolution: the padded band, then one
 * implicit GEMM per output row. */
static void implicit_task(const conv_plan *pl, int band, int worker)
{
    const md_conv *c = pl->c;
    const md_conv2d_params *p = &c->p;
    const md_conv_src *src = pl->src;
    const md_conv_dst *dst = pl->dst;
    bool bf = c->type == MD_GEMM_BF16;
    int y0 = band * pl->R, y1 = y0 + pl->R < pl->oh ? y0 + pl->R : pl->oh;
    int rows = y1 - y0, H = src->h, W = src->w, C = p->in_channels;
    int halo = (p->kernel_h - 1) * p->dilation_h, rin = rows + halo;
    float *ws = pl->scratch + (size_t)worker * pl->per_worker;
    float *rows_buf = ws, *padded = ws + pl->rows_floats;
    size_t chan = (size_t)pl->rin * pl->wp; /* one (pair of) channel(s) of the band */
    float *slack = padded + (bf ? pl->cp / 2 : pl->cp) * chan;
    float *tmp = slack + MD_GEMM_NR; /* bf16: two ReLU'd rows */
    memset(slack, 0, sizeof(float) * MD_GEMM_NR);
    float *bout = ws + pl->rows_floats + pl->col_floats;
    int a = y0 - p->pad_top; /* first input row of the band */
    int ia = a > 0 ? a : 0, ie = a + rin < H ? a + rin : H;
    if (ie < ia)
        ie = ia;
    if (src->up_h > 0 && ie > ia)
        md_resize2d_rows(&pl->up, src->data, src->up_h, src->up_w, rows_buf, NULL, 0, C, ia, ie);
    for (int cc = 0; cc < (bf ? pl->cp / 2 : pl->cp); cc++) {
        for (int r = 0; r < rin; r++) {
            int iy = a + r;
            size_t off = (size_t)cc * chan + (size_t)r * pl->wp;
            if (iy < 0 || iy >= H) {
                memset(padded + off, 0, sizeof(float) * (size_t)pl->wp);
                continue;
            }
            const float *row[2] = {NULL, NULL};
            for (int t = 0; t < (bf ? 2 : 1); t++) {
                int ch = bf ? 2 * cc + t : cc;
                if (ch >= C)
                    continue;
                row[t] = src->up_h > 0 ? rows_buf + ((size_t)ch * (ie - ia) + (iy - ia)) * W
                                       : src->data + ((size_t)ch * H + iy) * W;
                if (src->relu) {
                    float *t_row = bf ? tmp + (size_t)t * W : padded + off + p->pad_left;
                    md_relu_copy(row[t], t_row, (size_t)W);
                    row[t] = t_row;
                }
            }
            memset(padded + off, 0, sizeof(float) * (size_t)p->pad_left);
            memset(padded + off + p->pad_left + W, 0, sizeof(float) * (size_t)p->pad_right);
            if (bf) {
                if (!row[1]) {
                    memset(tmp + W, 0, sizeof(float) * (size_t)W);
                    row[1] = tmp + W;
                }
                md_bf16_pairs(row[0], row[1], (uint32_t *)(padded + off + p->pad_left),
                              (size_t)W);
            } else if (!src->relu) {
                memcpy(padded + off + p->pad_left, row[0], sizeof(float) * (size_t)W);
            }
        }
    }
    int K = implicit_k(p, c->type);
    md_gemm_packed wv = md_gemm_packed_view(c->type, c->packed, true, p->out_channels, K);
    size_t ohw = (size_t)pl->oh * pl->ow;
    for (int y = y0; y < y1; y++) {
        md_gemm_epilogue ep = md_gemm_epilogue_none();
        ep.bias_row = c->bias;
        ep.lo = dst->lo;
        ep.hi = dst->hi;
        if (dst->add) {
            ep.add = dst->add + (size_t)y * pl->ow;
            ep.ld_add = ohw;
        }
        float *o = dst->out ? dst->out + (size_t)y * pl->ow : bout + (size_t)(y - y0) * pl->ow;
        md_gemm_block(pl->isa, p->out_channels, pl->ow, K, 1.0f, md_gemm_prepacked(&wv),
                      md_gemm_offsets(padded + (size_t)(y - y0) * pl->wp, pl->koff), o,
                      dst->out ? ohw : (size_t)rows * pl->ow, &ep, 0, p->out_channels, 0, pl->ow);
    }
    if (!dst->out)
        dst->band_fn(dst->user, bout, y0, y1, worker);
}

/* Group g's weights as the GEMM's A operand (view: storage for its packed
 * description). */
static md_gemm_operand weights_of(const md_conv *c, int g, md_gemm_packed *view)
{
    int K = group_k(&c->p), cout_g = c->p.out_channels / c->p.groups;
    if (!c->packed)
        return md_gemm_raw(c->weight + (size_t)g * cout_g * K, (size_t)K, false);
    size_t gbytes = md_gemm_packed_bytes(c->type, true, cout_g, K);
    *view = md_gemm_packed_view(c->type, (char *)c->packed + (size_t)g * gbytes, true, cout_g, K);
    return md_gemm_prepacked(view);
}

/* A pointwise convolution computed in place: task t's share of pixels
 * (whole tiles) of every channel or, by_channels, of output channels (whole
 * panels of the packed weights) at every pixel. */
static void in_place_task(const conv_plan *pl, int t)
{
    const md_conv *c = pl->c;
    const md_conv2d_params *p = &c->p;
    int cin_g = p->in_channels / p->groups, cout_g = p->out_channels / p->groups;
    size_t ohw = (size_t)pl->oh * pl->ow;
    size_t p0 = 0, p1 = ohw;
    int m0 = 0, m1 = cout_g;
    if (pl->by_channels) {
        int pr = md_gemm_panel_rows(cout_g), units = (cout_g + pr - 1) / pr;
        m0 = (int)((long)units * t / pl->bands) * pr;
        m1 = (int)((long)units * (t + 1) / pl->bands) * pr;
        m1 = m1 < cout_g ? m1 : cout_g;
    } else {
        int units = (int)((ohw + MD_GEMM_NR - 1) / MD_GEMM_NR);
        p0 = (size_t)((long)units * t / pl->bands) * MD_GEMM_NR;
        p1 = (size_t)((long)units * (t + 1) / pl->bands) * MD_GEMM_NR;
        p1 = p1 < ohw ? p1 : ohw;
    }
    if (p0 >= p1 || m0 >= m1)
        return;
    for (int g = 0; g < p->groups; g++) {
        md_gemm_packed view;
        md_gemm_operand A = weights_of(c, g, &view);
        md_gemm_epilogue ep = md_gemm_epilogue_none();
        ep.bias_row = c->bias ? c->bias + (size_t)g * cout_g : NULL;
        ep.lo = pl->dst->lo;
        ep.hi = pl->dst->hi;
        size_t goff = (size_t)g * cout_g * ohw + p0;
        if (pl->dst->add) {
            ep.add = pl->dst->add + goff;
            ep.ld_add = ohw;
        }
        md_gemm_block(pl->isa, cout_g, (int)(p1 - p0), pl->K, 1.0f, A,
                      md_gemm_direct(pl->src->data + (size_t)g * cin_g * ohw + p0, ohw),
                      pl->dst->out + goff, ohw, &ep, m0, m1, 0, (int)(p1 - p0));
    }
}

static void band_task(void *ctx, int band, int worker)
{
    const conv_plan *pl = ctx;
    const md_conv *c = pl->c;
    const md_conv2d_params *p = &c->p;
    const md_conv_src *src = pl->src;
    const md_conv_dst *dst = pl->dst;
    int y0 = band * pl->R, y1 = y0 + pl->R < pl->oh ? y0 + pl->R : pl->oh;
    int rows = y1 - y0, npx = rows * pl->ow, H = src->h, W = src->w;
    if (pl->by_pixels) {
        in_place_task(pl, band);
        return;
    }
    if (pl->implicit) {
        implicit_task(pl, band, worker);
        return;
    }
    float *ws = pl->scratch + (size_t)worker * pl->per_worker;
    float *rows_buf = ws, *col = ws + pl->rows_floats, *bout = col + pl->col_floats;
    /* Input rows [a, e) feed this band; those inside the image are [ia, ie). */
    int a = y0 * p->stride_h - p->pad_top;
    int e = (y1 - 1) * p->stride_h - p->pad_top + (p->kernel_h - 1) * p->dilation_h + 1;
    int ia = a > 0 ? a : 0, ie = e < H ? e : H;
    if (ie < ia)
        ie = ia;
    const float *base = src->data;
    size_t plane = (size_t)H * W;
    int base_row = 0;
    bool relu = src->relu;
    if (src->up_h > 0) {
        md_resize2d_rows(&pl->up, src->data, src->up_h, src->up_w, rows_buf, NULL, 0,
                         p->in_channels, ia, ie);
        base = rows_buf;
        plane = (size_t)(ie - ia) * W;
        base_row = ia;
    }
    md_conv2d_params bp = *p;
    bp.pad_top = a < 0 ? -a : 0;
    int cin_g = p->in_channels / p->groups, cout_g = p->out_channels / p->groups, K = pl->K;
    size_t ohw = (size_t)pl->oh * pl->ow;
    for (int g = 0; g < p->groups; g++) {
        md_gemm_operand B = md_gemm_direct(col, (size_t)pl->ldb);
        if (pl->in_place)
            B = md_gemm_direct(src->data + (size_t)g * cin_g * plane + (size_t)y0 * W, plane);
        for (int ch = 0; ch < cin_g && !pl->in_place; ch++) {
            const float *pl_in = base + (size_t)(g * cin_g + ch) * plane + (size_t)(ia - base_row) * W;
            md_im2col(&bp, pl_in, 1, ie - ia, W, rows, pl->ow,
                      col + (size_t)ch * p->kernel_h * p->kernel_w * pl->ldb, (size_t)pl->ldb,
                      relu);
        }
        md_gemm_packed view;
        md_gemm_operand A = weights_of(c, g, &view);
        md_gemm_epilogue ep = md_gemm_epilogue_none();
        ep.bias_row = c->bias ? c->bias + (size_t)g * cout_g : NULL;
        ep.lo = dst->lo;
        ep.hi = dst->hi;
        size_t goff = (size_t)g * cout_g * ohw + (size_t)y0 * pl->ow;
        if (dst->add) {
            ep.add = dst->add + goff;
            ep.ld_add = ohw;
        }
        float *C = dst->out ? dst->out + goff : bout + (size_t)g * cout_g * npx;
        size_t ldc = dst->out ? ohw : (size_t)npx;
        md_gemm_block(pl->isa, cout_g, npx, K, 1.0f, A, B, C, ldc, &ep, 0, cout_g, 0, npx);
    }
    if (!dst->out)
        dst->band_fn(dst->user, bout, y0, y1, worker);
}

/* The tables of a source's upsampling (md_conv_src: bilinear, align_corners),
 * left empty when it has none; false when out of memory. */
static bool src_up_tables(const md_conv_src *src, md_resize_tables *t)
{
    memset(t, 0, sizeof *t);
    if (src->up_h <= 0)
        return true;
    md_resize_params rp = {true, MD_COORD_ALIGN_CORNERS, MD_NEAREST_FLOOR, 0.0f, 0.0f};
    return md_resize_tables_init(t, &rp, src->up_h, src->up_w, src->h, src->w);
}

typedef struct {
    const md_conv *c;
    const float *in;
    int h, w, chunk;
    const md_conv_dst *dst;
    float *out;
    float *scratch; /* per worker, per_worker floats; NULL: the kernel allocates */
    size_t per_worker;
} dw_job;

static void dw_task(void *ctx, int t, int worker)
{
    const dw_job *j = ctx;
    int c0 = t * j->chunk, c1 = c0 + j->chunk < j->c->p.in_channels ? c0 + j->chunk
                                                                    : j->c->p.in_channels;
    if (c0 < c1)
        md_depthwise_conv2d(&j->c->p, j->in, j->h, j->w, j->c->weight, j->c->bias, j->dst->lo,
                            j->dst->hi, j->out, c0, c1,
                            j->scratch ? j->scratch + (size_t)worker * j->per_worker : NULL);
}

/* Depthwise: the direct kernel over channel ranges. A non-plain source is
 * materialised first; add and band_fn are applied to the whole output. */
static bool depthwise_forward(const md_conv *c, md_threadpool *pool, const md_conv_src *src,
                              const md_conv_dst *dst, int oh, int ow, float *scratch)
{
    const md_conv2d_params *p = &c->p;
    size_t n_in = (size_t)p->in_channels * src->h * src->w;
    size_t n_out = (size_t)p->out_channels * oh * ow;
    float *tmp_in = NULL, *tmp_out = NULL;
    const float *in = src->data;
    if (src->relu || src->up_h > 0) {
        tmp_in = malloc(n_in * sizeof(float));
        if (!tmp_in)
            return false;
        if (src->up_h > 0) {
            md_resize_tables t;
            if (!src_up_tables(src, &t)) {
                free(tmp_in);
                return false;
            }
            md_resize2d(&t, src->data, src->up_h, src->up_w, tmp_in, NULL, 0, p->in_channels);
            md_resize_tables_free(&t);
        } else {
            memcpy(tmp_in, src->data, n_in * sizeof(float));
        }
        if (src->relu)
            md_clamp_inplace(tmp_in, n_in, 0.0f, INFINITY);
        in = tmp_in;
    }
    float *out = dst->out;
    if (!out) {
        out = tmp_out = malloc(n_out * sizeof(float));
        if (!out) {
            free(tmp_in);
            return false;
        }
    }
    int workers = md_pool_threads(pool);
    int tasks = workers > 1 ? 4 * workers : 1;
    if (tasks > p->in_channels)
        tasks = p->in_channels;
    size_t per = (md_depthwise_scratch_floats(p, src->h, src->w) + 15) / 16 * 16;
    dw_job j = {c, in, src->h, src->w, (p->in_channels + tasks - 1) / tasks, dst, out, scratch, per};
    md_pool_run(pool, tasks, dw_task, &j);
    if (dst->add)
        for (size_t i = 0; i < n_out; i++)
            out[i] += dst->add[i];
    if (!dst->out)
        dst->band_fn(dst->user, out, 0, oh, 0);
    free(tmp_in);
    free(tmp_out);
    return true;
}

/* ------------------------------------------------------------ Winograd */

/* A task takes trows whole rows of 4x4 output tiles (three with an
 * upsampled source, whose rows it makes with a halo of two), copies their
 * 4 trows + 2 input rows once, zero-padded, then runs their tiles, row after
 * row, in chunks of up to `chunk` tiles: the input transform of every channel
 * into V (36 planes of Cin x chunk), the 36 products M_xi = U_xi V_xi, the
 * output transform. Chunks run across tile rows, so only a task's last
 * product has a partial column panel. */
typedef struct {
    const md_conv *c;
    const md_conv_src *src;
    const md_conv_dst *dst;
    md_gemm_isa isa;
    md_resize_tables up; /* src->up_h > 0 */
    int oh, ow, tiles_w;
    int trows, tasks, chunk;
    int wp, rin;             /* padded input rows: width, count */
    int ld;                  /* a row of V or M: chunk + 16 (a group's overhang) */
    size_t vstride, mstride; /* floats from one xi plane of V (M) to the next */
    size_t rows_floats, pad_floats, v_floats, m_floats, band_floats, per_worker;
    float *scratch;
} wino_plan;

static void wino_plan_init(wino_plan *w, const md_conv *c, const md_conv_src *src, int oh, int ow)
{
    const md_conv2d_params *p = &c->p;
    int tiles_h = (oh + 3) / 4;
    w->oh = oh;
    w->ow = ow;
    w->tiles_w = (ow + 3) / 4;
    /* about 96 tiles a task, and eight tasks at least (for balance; not
     * from the thread count, so that scratch for more workers also holds
     * what fewer need) */
    int trows = (96 + w->tiles_w - 1) / w->tiles_w, share = tiles_h / 8;
    trows = trows < share ? trows : share;
    trows = trows > 4 ? 4 : trows < 1 ? 1 : trows;
    w->trows = src->up_h > 0 ? 3 : trows;
    w->tasks = (tiles_h + w->trows - 1) / w->trows;
    /* V's 36 planes near L2: fewer tiles per product for many channels */
    int chunk = 6144 / p->in_channels / 32 * 32;
    w->chunk = chunk > 96 ? 96 : chunk < 32 ? 32 : chunk;
    w->ld = w->chunk + 16;
    w->rin = 4 * w->trows + 2;
    w->wp = (4 * w->tiles_w + 72 + 15) / 16 * 16; /* a row's last group reads 4 x 15 + 8 past it */
    w->rows_floats = src->up_h > 0 ? (size_t)p->in_channels * w->rin * src->w : 0;
    w->pad_floats = (size_t)p->in_channels * w->rin * w->wp;
    /* planes one cache line off a multiple of 4 KB: the 36 stores (loads) of
     * a tile's transform do not all fall in one cache set */
    w->vstride = (size_t)p->in_channels * w->ld + 16;
    w->mstride = (size_t)p->out_channels * w->ld + 16;
    w->v_floats = 36 * w->vstride;
    w->m_floats = 36 * w->mstride;
    w->band_floats = (size_t)p->out_channels * 4 * w->trows * ow;
    w->per_worker = (w->rows_floats + w->pad_floats + w->v_floats + w->m_floats +
                     w->band_floats + 15) / 16 * 16;
}

/* Input rows a .. a + rin - 1 of every channel, ReLU'd if asked, into pad with
 * column q holding input column q - 1; zeros outside the image. */
static void wino_pad_rows(const wino_plan *w, const float *rows_buf, int ia, int ie, int a,
                          int rin, float *pad)
{
    const md_conv_src *src = w->src;
    int H = src->h, W = src->w;
    for (int ci = 0; ci < w->c->p.in_channels; ci++)
        for (int r = 0; r < rin; r++) {
            float *d = pad + ((size_t)ci * w->rin + r) * w->wp;
            int iy = a + r;
            if (iy < 0 || iy >= H) {
                memset(d, 0, sizeof(float) * (size_t)w->wp);
                continue;
            }
            const float *s = src->up_h > 0 ? rows_buf + ((size_t)ci * (ie - ia) + (iy - ia)) * W
                                           : src->data + ((size_t)ci * H + iy) * W;
            d[0] = 0.0f;
            if (src->relu)
                md_relu_copy(s, d + 1, (size_t)W);
            else
                memcpy(d + 1, s, sizeof(float) * (size_t)W);
            memset(d + 1 + W, 0, sizeof(float) * (size_t)(w->wp - 1 - W));
        }
}

/* The tile columns [*ta, *tb) of a task's tile row r that tiles [k0, k1)
 * cover (tile k: row k / tw, column k % tw). */
static void row_segment(int tw, int r, int k0, int k1, int *ta, int *tb)
{
    *ta = k0 > r * tw ? k0 - r * tw : 0;
    *tb = k1 < (r + 1) * tw ? k1 - r * tw : tw;
}

/* Tiles [k0, k1) of a task through the three steps; y0 is the task's first
 * output row. */
static void wino_chunk(const wino_plan *w, int k0, int k1, int y0, int y1, const float *pad,
                       float *V, float *M, float *bout)
{
    const md_conv *c = w->c;
    const md_conv_dst *dst = w->dst;
    int C = c->p.in_channels, Co = c->p.out_channels, tw = w->tiles_w;
    int r0 = k0 / tw, r1 = (k1 - 1) / tw;
    /* the input transform, row segment by row segment: a segment's last
     * group of 16 writes past its end, over what the next segment (or the
     * slack) then holds */
    for (int ci = 0; ci < C; ci++)
        for (int r = r0; r <= r1; r++) {
            int ta, tb;
            row_segment(tw, r, k0, k1, &ta, &tb);
            md_wino_input(pad + ((size_t)ci * w->rin + 4 * (size_t)r) * w->wp + 4 * (size_t)ta,
                          (size_t)w->wp, (tb - ta + 15) / 16 * 16,
                          V + (size_t)ci * w->ld + (size_t)(r * tw + ta - k0), w->vstride);
        }
    size_t abytes = md_gemm_packed_bytes(c->type, true, Co, C), ohw = (size_t)w->oh * w->ow;
    int n = k1 - k0;
    for (int xi = 0; xi < 36; xi++) {
        md_gemm_packed u =
            md_gemm_packed_view(c->type, (char *)c->packed + (size_t)xi * abytes, true, Co, C);
        md_gemm_block(w->isa, Co, n, C, 1.0f, md_gemm_prepacked(&u),
                      md_gemm_direct(V + (size_t)xi * w->vstride, (size_t)w->ld),
                      M + (size_t)xi * w->mstride, (size_t)w->ld, NULL, 0, Co, 0, n);
    }
    for (int r = r0; r <= r1; r++) {
        int ta, tb;
        row_segment(tw, r, k0, k1, &ta, &tb);
        int ty = y0 + 4 * r, rows = y1 - ty < 4 ? y1 - ty : 4, cx = 4 * ta;
        int cols = 4 * tb < w->ow ? 4 * tb - cx : w->ow - cx;
        for (int o = 0; o < Co; o++) {
            size_t at = (size_t)o * ohw + (size_t)ty * w->ow + (size_t)cx;
            float *out = dst->out ? dst->out + at
                                  : bout + ((size_t)o * (y1 - y0) + (ty - y0)) * w->ow + cx;
            md_wino_output(M + (size_t)o * w->ld + (size_t)(r * tw + ta - k0), w->mstride,
                           (tb - ta + 15) / 16 * 16, c->bias ? c->bias[o] : 0.0f, dst->lo,
                           dst->hi, out, (size_t)w->ow, dst->add ? dst->add + at : NULL,
                           (size_t)w->ow, rows, cols);
        }
    }
}

static void wino_task(void *ctx, int task, int worker)
{
    const wino_plan *w = ctx;
    int C = w->c->p.in_channels, H = w->src->h;
    int y0 = 4 * w->trows * task, y1 = y0 + 4 * w->trows < w->oh ? y0 + 4 * w->trows : w->oh;
    /* whole tiles: rows past the image must be zeros (garbage there, NaN
     * say, would reach the tile's real outputs through the transforms) */
    int a = y0 - 1, rin = (y1 - y0 + 3) / 4 * 4 + 2;
    int ia = a > 0 ? a : 0, ie = a + rin < H ? a + rin : H;
    float *rows_buf = w->scratch + (size_t)worker * w->per_worker;
    float *pad = rows_buf + w->rows_floats, *V = pad + w->pad_floats, *M = V + w->v_floats;
    float *bout = M + w->m_floats;
    if (w->src->up_h > 0 && ie > ia)
        md_resize2d_rows(&w->up, w->src->data, w->src->up_h, w->src->up_w, rows_buf, NULL, 0, C,
                         ia, ie);
    wino_pad_rows(w, rows_buf, ia, ie, a, rin, pad);
    int tiles = (y1 - y0 + 3) / 4 * w->tiles_w;
    for (int k0 = 0; k0 < tiles; k0 += w->chunk)
        wino_chunk(w, k0, k0 + w->chunk < tiles ? k0 + w->chunk : tiles, y0, y1, pad, V, M, bout);
    if (!w->dst->out)
        w->dst->band_fn(w->dst->user, bout, y0, y1, worker);
}

static bool wino_forward(const md_conv *c, md_threadpool *pool, const md_conv_src *src,
                         const md_conv_dst *dst, int oh, int ow, float *scratch)
{
    wino_plan w;
    memset(&w, 0, sizeof w);
    wino_plan_init(&w, c, src, oh, ow);
    w.c = c;
    w.src = src;
    w.dst = dst;
    w.isa = md_gemm_isa_best(c->type);
    if (!src_up_tables(src, &w.up))
        return false;
    float *own = NULL;
    if (!scratch) {
        size_t n = w.per_worker * (size_t)md_pool_threads(pool);
        own = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
        if (!own) {
            md_resize_tables_free(&w.up);
            return false;
        }
        scratch = own;
    }
    w.scratch = scratch;
    md_pool_run(pool, w.tasks, wino_task, &w);
    free(own);
    md_resize_tables_free(&w.up);
    return true;
}

bool md_conv_forward(const md_conv *c, md_threadpool *pool, const md_conv_src *src,
                     const md_conv_dst *dst, float *scratch)
{
    conv_plan pl;
    memset(&pl, 0, sizeof pl);
    if (!md_conv2d_output_size(&c->p, src->h, src->w, &pl.oh, &pl.ow))
        return true; /* nothing to compute */
    if (md_conv_is_depthwise(&c->p))
        return depthwise_forward(c, pool, src, dst, pl.oh, pl.ow, scratch);
    if (c->winograd)
        return wino_forward(c, pool, src, dst, pl.oh, pl.ow, scratch);
    int workers = md_pool_threads(pool);
    plan_bands(&pl, c, src, true, workers);
    pl.c = c;
    pl.src = src;
    pl.dst = dst;
    pl.isa = md_gemm_isa_best(c->type);
    pl.by_pixels = pl.in_place && dst->out;
    int32_t *koff = NULL;
    if (pl.implicit) {
        /* k' = (ky, kx, c): the tap's offset in the padded band, in floats
         * (bf16: in channel pairs) */
        const md_conv2d_params *p = &c->p;
        bool bf = c->type == MD_GEMM_BF16;
        int steps = implicit_k(p, c->type) / (bf ? 2 : 1), per = bf ? pl.cp / 2 : pl.cp;
        koff = malloc(sizeof(int32_t) * (size_t)steps);
        if (!koff)
            return false;
        for (int k = 0; k < steps; k++) {
            int cc = k % per, tap = k / per, ky = tap / p->kernel_w, kx = tap % p->kernel_w;
            koff[k] = (int32_t)((size_t)cc * pl.rin * pl.wp + (size_t)ky * p->dilation_h * pl.wp +
                                (size_t)kx * p->dilation_w);
        }
        pl.koff = koff;
    }
    if (pl.by_pixels) {
        /* A plane of fewer than four tiles per worker (FastDepth's 14x14 and
         * 7x7 layers: 7 and 2 tiles) splits unevenly by pixels; split by
         * output channels, it also leaves each channel plane on the core
         * the depthwise layer after it (split by channels) reads it from.
         * Two threads, Zen 5: FastDepth 0.94-0.95x the time, paired runs.
         * Not in bf16: its products pack B (the activations) per task, so
         * each task would pack all of it (FastDepth bf16: 1.12-1.19x). */
        int units = (int)(((size_t)pl.oh * pl.ow + MD_GEMM_NR - 1) / MD_GEMM_NR);
        int cout = c->p.out_channels / c->p.groups, pr = md_gemm_panel_rows(cout);
        if (c->type == MD_GEMM_F32 && workers > 1 && units < 4 * workers &&
            (cout + pr - 1) / pr > units) {
            pl.by_channels = true;
            units = (cout + pr - 1) / pr;
        }
        pl.bands = workers > 1 ? (units < 4 * workers ? units : 4 * workers) : 1;
        md_pool_run(pool, pl.bands, band_task, &pl);
        return true;
    }
    if (!src_up_tables(src, &pl.up)) {
        free(koff);
        return false;
    }
    float *own = NULL;
    if (!scratch) {
        own = aligned_alloc(64, (pl.per_worker * (size_t)workers * sizeof(float) + 63) / 64 * 64);
        if (!own) {
            md_resize_tables_free(&pl.up);
            free(koff);
            return false;
        }
        scratch = own;
    }
    pl.scratch = scratch;
    md_pool_run(pool, pl.bands, band_task, &pl);
    free(own);
    free(koff);
    md_resize_tables_free(&pl.up);
    return true;
}

size_t md_conv_scratch_floats(const md_conv *c, const md_conv_src *src, int workers)
{
    conv_plan pl;
    if (workers < 1)
        workers = 1;
    if (!md_conv2d_output_size(&c->p, src->h, src->w, &pl.oh, &pl.ow))
        return 0;
    if (md_conv_is_depthwise(&c->p))
        return (md_depthwise_scratch_floats(&c->p, src->h, src->w) + 15) / 16 * 16 *
               (size_t)workers;
    if (c->winograd) {
        wino_plan w;
        wino_plan_init(&w, c, src, pl.oh, pl.ow);
        return w.per_worker * (size_t)workers;
    }
    plan_bands(&pl, c, src, true, workers);
    return pl.per_worker * (size_t)workers;
}

/* ------------------------------------------------------------ backward */

void md_conv_backward(const md_conv2d_params *p, const float *in, int in_h, int in_w,
                      const float *weight, const float *dout, int out_h, int out_w,
                      float *dweight, float *dbias, float *din, float *col, float *dcol)
{
    int K = p->in_channels * p->kernel_h * p->kernel_w;
    int N = out_h * out_w, M = p->out_channels;
    md_gemm_isa isa = md_gemm_isa_best(MD_GEMM_F32);
    md_im2col(p, in, p->in_channels, in_h, in_w, out_h, out_w, col, (size_t)N, false);
    /* dW (M x K) += dout (M x N) . col^T (N x K) */
    md_gemm_epilogue acc = md_gemm_epilogue_none();
    acc.beta = 1.0f;
    md_gemm_block(isa, M, K, N, 1.0f, md_gemm_raw(dout, (size_t)N, false),
                  md_gemm_raw(col, (size_t)N, true), dweight, (size_t)K, &acc, 0, M, 0, K);
    for (int o = 0; o < M; o++) {
        const float *r = dout + (size_t)o * N;
        double s = 0.0;
        for (int i = 0; i < N; i++)
            s += r[i];
        dbias[o] += (float)s;
    }
    if (din) {
        /* dcol (K x N) = W^T (K x M) . dout (M x N) */
        md_gemm_block(isa, K, N, M, 1.0f, md_gemm_raw(weight, (size_t)K, true),
                      md_gemm_raw(dout, (size_t)N, false), dcol, (size_t)N, NULL, 0, K, 0, N);
        memset(din, 0, sizeof(float) * (size_t)p->in_channels * in_h * in_w);
        md_col2im_add(p, dcol, p->in_channels, in_h, in_w, out_h, out_w, din);
    }
}
