/* The one convolution driver every network uses (forward and backward):
 * im2col of bands of output rows into the GEMM's direct B layout, times the
 * weights packed once (gemm.h), with bias, clamp and a residual fused into the
 * GEMM's epilogue; depthwise convolutions run their direct kernel
 * (depthwise.c). Planar CHW float32, single image. */
#ifndef MD_TENSOR_OPS_H
#define MD_TENSOR_OPS_H

#include "metricdepth.h"
#include "ops/gemm.h"

#include <stdbool.h>

typedef struct {
    int in_channels, out_channels;
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_top, pad_left, pad_bottom, pad_right;
    int dilation_h, dilation_w;
    int groups;
} md_conv2d_params;

/* Output spatial size; false if the parameters give an empty or invalid output. */
bool md_conv2d_output_size(const md_conv2d_params *p, int in_h, int in_w, int *out_h,
                           int *out_w);

/* Floats of a whole-image im2col (one group): an upper bound of what one
 * worker of md_conv_forward unfolds at a time (0 for depthwise). */
size_t md_conv2d_scratch_floats(const md_conv2d_params *p, int in_h, int in_w);

/* How a convolution may be computed. MD_CONV_DIRECT sums each output's taps
 * as they are. MD_CONV_FAST lets a float32 3x3 convolution of stride 1 and
 * padding 1 (ungrouped, undilated) run as Winograd F(4x4, 3x3)
 * (winograd.h): a quarter of the multiplies, results within a few float32
 * roundings of the direct sum, but a NaN or infinity in the input reaches
 * every output of the 4x4 blocks whose 6x6 input patch holds it, not only
 * its 3x3 neighbours. Inference uses FAST; training (the scale CNN: small
 * images, results reproduced bit for bit) DIRECT. */
typedef enum { MD_CONV_DIRECT = 0, MD_CONV_FAST = 1 } md_conv_algo;

/* A convolution ready to run: the weights (out, in/groups, kh, kw) packed as
 * the GEMM's A operand in the arithmetic `type` (float32 or bf16), one block
 * per group (none for depthwise, whose float32 kernel reads them as they
 * are), or as the 36 Winograd products' A operands. weight and bias are
 * borrowed and must outlive it. */
typedef struct {
    md_conv2d_params p;
    md_gemm_type type;
    const float *weight, *bias;
    void *packed; /* NULL: depthwise, or packing memory was short (A is packed per call) */
    bool owns_packed;
    bool winograd; /* packed holds U_xi (Cout x Cin) for xi = 0..35, float32 */
} md_conv;

/* Whether MD_CONV_FAST runs this convolution as Winograd F(4x4, 3x3). */
bool md_conv_is_winograd(const md_conv2d_params *p, md_gemm_type type, md_conv_algo algo);
/* Bytes md_conv_init_into needs for the packed weights (0 for depthwise). */
size_t md_conv_packed_bytes(const md_conv2d_params *p, md_gemm_type type, md_conv_algo algo);
/* Packs into the caller's buffer (of md_conv_packed_bytes; may be NULL for
 * depthwise). */
void md_conv_init_into(md_conv *c, const md_conv2d_params *p, md_gemm_type type,
                       md_conv_algo algo, const float *weight, const float *bias, void *packed);
/* Packs into a new buffer; false when out of memory (c then packs per call,
 * directly). */
bool md_conv_init(md_conv *c, const md_conv2d_params *p, md_gemm_type type, md_conv_algo algo,
                  const float *weight, const float *bias);
void md_conv_free(md_conv *c);
bool md_conv_is_depthwise(const md_conv2d_params *p);
/* Runs as an implicit GEMM (no unfolding): ungrouped, stride 1, not 1x1. */
bool md_conv_is_implicit(const md_conv2d_params *p);

/* Where the input comes from: data [C, h, w]; with relu, max(0, x) as read;
 * with up_h > 0, data is [C, up_h, up_w] read bilinearly upsampled
 * (align_corners, PyTorch's) to h x w, one band of rows at a time. */
typedef struct {
    const float *data;
    int h, w;
    bool relu;
    int up_h, up_w;
} md_conv_src;

/* Where the output goes: out [Cout, OH, OW] = clamp(conv + bias, lo, hi) +
 * add (add may be NULL; lo = -INFINITY, hi = INFINITY for no clamp). With
 * band_fn instead of out, each band of rows [y0, y1) is handed over as
 * [Cout, y1 - y0, OW] (e.g. to reduce it on the spot). */
typedef struct {
    float *out;
    float lo, hi;
    const float *add;
    void (*band_fn)(void *user, const float *band, int y0, int y1, int worker);
    void *user;
} md_conv_dst;

static inline md_conv_src md_conv_plain_src(const float *data, int h, int w)
{
    md_conv_src s = {data, h, w, false, 0, 0};
    return s;
}
static inline md_conv_dst md_conv_to(float *out, float lo, float hi)
{
    md_conv_dst d = {out, lo, hi, NULL, NULL, NULL};
    return d;
}

/* Floats of scratch md_conv_forward needs for `workers` workers at this input
 * size (bands are sized so that one worker's share stays near L2). */
size_t md_conv_scratch_floats(const md_conv *c, const md_conv_src *src, int workers);
/* Runs the convolution, bands shared over pool (may be NULL). scratch holds
 * md_conv_scratch_floats(c, src, md_pool_threads(pool)) floats, or is NULL to
 * allocate it here; false when that allocation fails (nothing is written). */
bool md_conv_forward(const md_conv *c, md_threadpool *pool, const md_conv_src *src,
                     const md_conv_dst *dst, float *scratch);

/* Unfolds channels [0, channels) of one group into rows (c, ky, kx) x
 * columns (oy, ox) of col (row stride ldcol >= out_h * out_w), zeros where
 * the kernel hits padding; relu clamps values at 0 as they are copied. */
void md_im2col(const md_conv2d_params *p, const float *in, int channels, int in_h, int in_w,
               int out_h, int out_w, float *col, size_t ldcol, bool relu);
/* The adjoint of md_im2col (groups == 1, ldcol = out_h * out_w): adds every
 * entry of col into the input position it was read from (padding dropped). */
void md_col2im_add(const md_conv2d_params *p, const float *col, int channels, int in_h, int in_w,
                   int out_h, int out_w, float *img);

/* Backward of one image's ungrouped convolution, given dout (Cout, out_h,
 * out_w) = dL/d(conv output before any activation): dweight += dout .
 * im2col(in)^T, dbias += row sums of dout, and, when din is not NULL, din
 * (Cin, in_h, in_w) = col2im(W^T . dout) (overwritten). col and dcol hold
 * Cin*kh*kw x out_h*out_w floats each. */
void md_conv_backward(const md_conv2d_params *p, const float *in, int in_h, int in_w,
                      const float *weight, const float *dout, int out_h, int out_w,
                      float *dweight, float *dbias, float *din, float *col, float *dcol);

#endif
