/* The math kernels every model shares: GEMM (OpenBLAS) and 2-D convolution.
 * Single image, planar CHW float32 layout throughout. */
#ifndef MD_TENSOR_OPS_H
#define MD_TENSOR_OPS_H

#include "metricdepth.h"

#include <stdbool.h>

/* Row-major C = alpha * op(A) * op(B) + beta * C, op(A) is MxK, op(B) is KxN. */
void md_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Threads used by the GEMM library (OpenBLAS keeps this process-wide). */
void md_gemm_set_threads(int threads);

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
/* Floats of scratch md_conv2d needs for this input size (0 when none). */
size_t md_conv2d_scratch_floats(const md_conv2d_params *p, int in_h, int in_w);

/* out (out_channels, out_h, out_w) = conv(in (in_channels, in_h, in_w), weight
 * (out_channels, in_channels/groups, kh, kw)) + bias (may be NULL).
 * Depthwise convolutions run a direct loop; the rest im2col + GEMM.
 * scratch must hold md_conv2d_scratch_floats() floats. */
void md_conv2d(const md_conv2d_params *p, const float *in, int in_h, int in_w,
               const float *weight, const float *bias, float *out, float *scratch);

#endif
