/* Training kernels (forward pieces that backward needs, and the backward
 * passes): convolution via im2col + GEMM and col2im, max pooling with argmax,
 * ReLU, global average pooling, fully connected layers, MSE and a fused Adam
 * step. Batch-major NCHW float32. GEMMs go through md_sgemm (OpenBLAS, which
 * threads them itself); everything else is single-threaded and deterministic
 * unless a function says otherwise. */
#ifndef MD_TENSOR_TRAIN_OPS_H
#define MD_TENSOR_TRAIN_OPS_H

#include "ops/tensor_ops.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* col2im: the adjoint of md_im2col. Adds every entry of col (channels*kh*kw x
 * out_h*out_w) into the input position it was read from (padding dropped):
 * img (channels, in_h, in_w) += col2im(col). groups must be 1. */
void md_col2im_add(const md_conv2d_params *p, const float *col, int channels, int in_h, int in_w,
                   int out_h, int out_w, float *img);

/* One image: out (Cout, out_h, out_w) = [relu](conv(in) + bias) via im2col
 * into col (Cin*kh*kw x out_h*out_w floats) and one GEMM. groups == 1. */
void md_train_conv_forward(const md_conv2d_params *p, const float *in, int in_h, int in_w,
                           const float *weight, const float *bias, bool relu, float *out,
                           int out_h, int out_w, float *col);

/* One image, given dout (Cout, out_h, out_w) = dL/d(conv output before any
 * ReLU): dweight += dout . im2col(in)^T, dbias += row sums of dout, and, when
 * din is not NULL, din (Cin, in_h, in_w) = col2im(W^T . dout) (overwritten).
 * col and dcol hold Cin*kh*kw x out_h*out_w floats each. */
void md_train_conv_backward(const md_conv2d_params *p, const float *in, int in_h, int in_w,
                            const float *weight, const float *dout, int out_h, int out_w,
                            float *dweight, float *dbias, float *din, float *col, float *dcol);

/* dy[i] = y[i] > 0 ? dy[i] : 0, where y is the ReLU's output. */
void md_relu_backward(const float *y, float *dy, size_t n);

/* Max pooling, kernel k, stride s, no padding, floor mode, over planes
 * (planes = batch * channels) of in_h x in_w, on `threads` threads (planes
 * split among them; results do not depend on the count). argmax[j] is the
 * index inside the plane of the first maximum of window j (row-major scan,
 * NaN wins, as PyTorch). */
void md_maxpool_forward(const float *in, size_t planes, int in_h, int in_w, int k, int s,
                        float *out, int out_h, int out_w, int32_t *argmax, int threads);
/* din (planes, in_h, in_w) = scatter of dout through argmax (overwritten). */
void md_maxpool_backward(const float *dout, const int32_t *argmax, size_t planes, int in_h,
                         int in_w, int k, int s, int out_h, int out_w, float *din, int threads);

/* out[p] = mean of plane p (hw values); backward: din[p][i] = dout[p] / hw. */
void md_gap_forward(const float *in, size_t planes, size_t hw, float *out);
void md_gap_backward(const float *dout, size_t planes, size_t hw, float *din);

/* Fully connected, PyTorch layout weight (out_f x in_f):
 * y (batch x out_f) = [relu](x (batch x in_f) . W^T + b). */
void md_linear_forward(const float *x, int batch, int in_f, int out_f, const float *weight,
                       const float *bias, bool relu, float *y);
/* dweight = dy^T . x, dbias = column sums of dy (both overwritten); din =
 * dy . W when din is not NULL (overwritten). dy is dL/d(pre-ReLU output). */
void md_linear_backward(const float *x, int batch, int in_f, int out_f, const float *weight,
                        const float *dy, float *dweight, float *dbias, float *din);

/* Mean squared error over n values (double accumulation); grad (may be NULL)
 * gets dL/dpred = 2 (pred - target) / n. */
double md_mse_loss(const float *pred, const float *target, int n, float *grad);

/* One Adam step as torch.optim.Adam (no weight decay, no amsgrad), step t >= 1:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * over elements [begin, end) (callers split big vectors among threads). */
void md_adam_update(float *param, const float *grad, float *m, float *v, size_t begin,
                    size_t end, double lr, double beta1, double beta2, double eps, int t);

/* The same over all n elements on `threads` threads (fixed element ranges, so
 * the result does not depend on the thread count). */
void md_adam_step(float *param, const float *grad, float *m, float *v, size_t n, double lr,
                  double beta1, double beta2, double eps, int t, int threads);

#endif
