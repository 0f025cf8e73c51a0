/* Training kernels (forward pieces that backward needs, and the backward
 * passes) beside the shared ones (convolution forward and backward:
 * tensor_ops.h; pooling: cnn_ops.h): max pooling over a batch with argmax,
 * ReLU, global average pooling's adjoint, fully connected layers, MSE and a
 * fused Adam step. Batch-major NCHW float32. Functions given a pool split
 * their work over it (NULL: this thread); results never depend on the thread
 * count unless a function says otherwise. */
#ifndef MD_TENSOR_TRAIN_OPS_H
#define MD_TENSOR_TRAIN_OPS_H

#include "ops/tensor_ops.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* dy[i] = y[i] > 0 ? dy[i] : 0, where y is the ReLU's output. */
void md_relu_backward(const float *y, float *dy, size_t n);

/* md_maxpool2d (kernel k, stride s, no padding, floor mode) over planes
 * (planes = batch * channels) of in_h x in_w, planes split over pool.
 * argmax[j] is the index inside the plane of the first maximum of window j. */
void md_maxpool_forward(const float *in, size_t planes, int in_h, int in_w, int k, int s,
                        float *out, int out_h, int out_w, int32_t *argmax, md_threadpool *pool);
/* din (planes, in_h, in_w) = scatter of dout through argmax (overwritten). */
void md_maxpool_backward(const float *dout, const int32_t *argmax, size_t planes, int in_h,
                         int in_w, int k, int s, int out_h, int out_w, float *din,
                         md_threadpool *pool);

/* The adjoint of md_global_avgpool: din[p][i] = dout[p] / hw. */
void md_gap_backward(const float *dout, size_t planes, size_t hw, float *din);

/* Fully connected, PyTorch layout weight (out_f x in_f):
 * y (batch x out_f) = [relu](x (batch x in_f) . W^T + b). */
void md_linear_forward(const float *x, int batch, int in_f, int out_f, const float *weight,
                       const float *bias, bool relu, float *y, md_threadpool *pool);
/* dweight = dy^T . x, dbias = column sums of dy (both overwritten); din =
 * dy . W when din is not NULL (overwritten). dy is dL/d(pre-ReLU output). */
void md_linear_backward(const float *x, int batch, int in_f, int out_f, const float *weight,
                        const float *dy, float *dweight, float *dbias, float *din,
                        md_threadpool *pool);

/* Mean squared error over n values (double accumulation); grad (may be NULL)
 * gets dL/dpred = 2 (pred - target) / n. */
double md_mse_loss(const float *pred, const float *target, int n, float *grad);

/* One Adam step as torch.optim.Adam (no weight decay, no amsgrad), step t >= 1:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * over elements [begin, end) (callers split big vectors among threads). */
void md_adam_update(float *param, const float *grad, float *m, float *v, size_t begin,
                    size_t end, double lr, double beta1, double beta2, double eps, int t);

/* The same over all n elements split over pool (fixed element ranges, so
 * the result does not depend on the thread count). */
void md_adam_step(float *param, const float *grad, float *m, float *v, size_t n, double lr,
                  double beta1, double beta2, double eps, int t, md_threadpool *pool);

#endif
