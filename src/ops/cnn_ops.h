/* CNN kernels beside tensor_ops.h: depthwise convolution, activations,
 * element-wise broadcasting, pooling, resizes (ONNX Resize/Upsample
 * semantics, which include PyTorch's align_corners bilinear, and PIL's
 * nearest for image preprocessing) and transposes. Planar CHW float32, single
 * image, like tensor_ops.h. */
#ifndef MD_TENSOR_CNN_OPS_H
#define MD_TENSOR_CNN_OPS_H

#include "ops/tensor_ops.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Depthwise convolution (groups == in_channels == out_channels) of channels
 * [c_begin, c_end), with bias (may be NULL) and the result clamped to [lo, hi]
 * (pass -FLT_MAX, FLT_MAX for none). Fast paths: 3x3 and 5x5, stride 1 or 2,
 * no dilation; anything else runs a bounds-checked direct loop. scratch holds
 * md_depthwise_scratch_floats floats (a zero-padded plane), or is NULL to
 * allocate it here. */
size_t md_depthwise_scratch_floats(const md_conv2d_params *p, int in_h, int in_w);
void md_depthwise_conv2d(const md_conv2d_params *p, const float *in, int in_h, int in_w,
                         const float *weight, const float *bias, float lo, float hi, float *out,
                         int c_begin, int c_end, float *scratch);

/* x[i] = min(max(x[i], lo), hi). ReLU is lo = 0, hi = +inf. */
void md_clamp_inplace(float *x, size_t n, float lo, float hi);
/* dst[i] = max(src[i], 0) with NaN kept (src and dst do not overlap). */
void md_relu_copy(const float *restrict src, float *restrict dst, size_t n);
void md_sigmoid_inplace(float *x, size_t n);
/* x[c][i] = x[c][i] * scale[c] + shift[c]. */
void md_channel_affine_inplace(float *x, int channels, size_t hw, const float *scale,
                               const float *shift);

typedef enum { MD_BIN_ADD, MD_BIN_SUB, MD_BIN_MUL, MD_BIN_DIV } md_binary_op;

/* NumPy-style broadcasting: out_dims has ndim entries; a_dims and b_dims are
 * already right-aligned to ndim with 1 where broadcast. ndim <= 8. */
void md_binary_broadcast(md_binary_op op, int ndim, const int64_t *out_dims, const float *a,
                         const int64_t *a_dims, const float *b, const int64_t *b_dims,
                         float *out);

typedef struct {
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_top, pad_left, pad_bottom, pad_right;
    int count_include_pad; /* average pool only */
} md_pool2d_params;

/* out (C, out_h, out_w); padded cells are ignored by max and by average unless
 * count_include_pad (then they count as zeros, as ONNX AveragePool). Windows
 * that fall wholly into padding (possible with ceil_mode) give 0. Max takes
 * the first maximum of each window in row-major order, NaN winning (as
 * PyTorch); argmax (may be NULL) gets its index inside the plane (-1 for an
 * empty window), for the backward pass. */
void md_maxpool2d(const md_pool2d_params *p, const float *in, int channels, int in_h, int in_w,
                  float *out, int out_h, int out_w, int32_t *argmax);
void md_avgpool2d(const md_pool2d_params *p, const float *in, int channels, int in_h, int in_w,
                  float *out, int out_h, int out_w);
/* out[c] = mean of plane c (hw values, double accumulation). */
void md_global_avgpool(const float *in, size_t channels, size_t hw, float *out);
/* The mean of each of `channels` planes of hw floats, summed in eight float
 * lanes (lane j: elements j, j + 8, ...), the lanes and the tail then in
 * double: the scale predictor's encoder features (its shipped models were
 * trained on values summed in this order). */
void md_channel_means(const float *in, size_t channels, size_t hw, float *out);
void md_global_maxpool(const float *in, int channels, size_t hw, float *out);

/* ONNX Resize coordinate transformation modes (Upsample = asymmetric). */
typedef enum {
    MD_COORD_HALF_PIXEL,
    MD_COORD_PYTORCH_HALF_PIXEL,
    MD_COORD_ALIGN_CORNERS,
    MD_COORD_ASYMMETRIC
} md_coord_mode;

typedef enum {
    MD_NEAREST_ROUND_PREFER_FLOOR,
    MD_NEAREST_ROUND_PREFER_CEIL,
    MD_NEAREST_FLOOR,
    MD_NEAREST_CEIL
} md_nearest_mode;

typedef struct {
    bool linear; /* false = nearest */
    md_coord_mode coord;
    md_nearest_mode nearest;
    float scale_h, scale_w; /* output/input; used by half_pixel and asymmetric */
} md_resize_params;

/* Source indices and weights of a resize from (in_h, in_w) to (out_h, out_w)
 * with ONNX Resize semantics (linear: bilinear, source coordinates clamped to
 * the image). They depend only on the shapes, so a graph builds them once. */
typedef struct {
    bool linear;
    int out_h, out_w;
    int fx_int;              /* > 0: nearest upscale by this integer factor along x */
    int *iy0, *iy1, *ix0, *ix1;
    float *fy, *fx;
    /* linear, per 16 output columns: the first source column, or -1 where the
     * group's sources do not fit the 16 values read from there; and each
     * column's two sources relative to it (16 + 16 per group) */
    int *gbase;
    int32_t *gidx;
} md_resize_tables;

/* false when out of memory (t is then empty). */
bool md_resize_tables_init(md_resize_tables *t, const md_resize_params *p, int in_h, int in_w,
                           int out_h, int out_w);
/* Bilinear tables for any separable map: coord(user, axis, i) is the
 * source coordinate of output row i (axis 0) or column i (axis 1), clamped
 * to the input as above. false when out of memory. */
bool md_resize_tables_map(md_resize_tables *t, int in_h, int in_w, int out_h, int out_w,
                          double (*coord)(void *user, int axis, int i), void *user);
void md_resize_tables_free(md_resize_tables *t);

/* Resizes planes [c_begin, c_end) of in (in_h x in_w each) into out with t.
 * addend (same layout as out, may be NULL) is added to the result (a fused
 * "Add(Resize(x), skip)"). */
void md_resize2d(const md_resize_tables *t, const float *in, int in_h, int in_w, float *out,
                 const float *addend, int c_begin, int c_end);
/* Output rows [y0, y1) only, into out laid out [channels][y1 - y0][out_w]
 * (plane c at out + c * (y1 - y0) * out_w). */
void md_resize2d_rows(const md_resize_tables *t, const float *in, int in_h, int in_w, float *out,
                      const float *addend, int c_begin, int c_end, int y0, int y1);

/* Nearest-neighbour resize as PIL's Image.resize(NEAREST) computes it (and so
 * scipy.misc.imresize(..., 'nearest')): out[y][x] = in[floor((y + 0.5) *
 * in_h / out_h)][floor((x + 0.5) * in_w / out_w)]. */
void md_resize_pil_nearest(const float *in, int channels, int in_h, int in_w, float *out,
                           int out_h, int out_w);

/* out = in with axes permuted: out dim i = in dim perm[i]. ndim <= 8. */
void md_transpose(const float *in, int ndim, const int64_t *dims, const int *perm, float *out);

#endif
