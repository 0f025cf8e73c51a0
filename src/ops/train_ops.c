/* Training kernels: see train_ops.h. */
#include "ops/train_ops.h"

#include "ops/cnn_ops.h"
#include "base/parallel.h"

#include <math.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

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
                int x0 = -p->pad_left + kx * p->dilation_w;
                int s = p->stride_w;
                /* Output columns whose source column lies inside the row. */
                int lo = x0 >= 0 ? 0 : (-x0 + s - 1) / s;
                int hi = in_w - 1 - x0 >= 0 ? (in_w - 1 - x0) / s + 1 : 0;
                if (hi > out_w)
                    hi = out_w;
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

void md_train_conv_forward(const md_conv2d_params *p, const float *in, int in_h, int in_w,
                           const float *weight, const float *bias, bool relu, float *out,
                           int out_h, int out_w, float *col)
{
    int K = p->in_channels * p->kernel_h * p->kernel_w;
    int N = out_h * out_w;
    md_im2col(p, in, p->in_channels, in_h, in_w, out_h, out_w, col);
    md_sgemm(false, false, p->out_channels, N, K, 1.0f, weight, K, col, N, 0.0f, out, N);
    md_bias_clamp_inplace(out, p->out_channels, (size_t)N, bias, relu ? 0.0f : -INFINITY,
                          INFINITY);
}

void md_train_conv_backward(const md_conv2d_params *p, const float *in, int in_h, int in_w,
                            const float *weight, const float *dout, int out_h, int out_w,
                            float *dweight, float *dbias, float *din, float *col, float *dcol)
{
    int K = p->in_channels * p->kernel_h * p->kernel_w;
    int N = out_h * out_w;
    int M = p->out_channels;
    md_im2col(p, in, p->in_channels, in_h, in_w, out_h, out_w, col);
    md_sgemm(false, true, M, K, N, 1.0f, dout, N, col, N, 1.0f, dweight, K);
    for (int o = 0; o < M; o++) {
        const float *r = dout + (size_t)o * N;
        double s = 0.0;
        for (int i = 0; i < N; i++)
            s += r[i];
        dbias[o] += (float)s;
    }
    if (din) {
        md_sgemm(true, false, K, N, M, 1.0f, weight, K, dout, N, 0.0f, dcol, N);
        memset(din, 0, sizeof(float) * (size_t)p->in_channels * in_h * in_w);
        md_col2im_add(p, dcol, p->in_channels, in_h, in_w, out_h, out_w, din);
    }
}

void md_relu_backward(const float *y, float *dy, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

static void maxpool_forward_planes(const float *in, size_t p0, size_t p1, int in_h, int in_w,
                                   int k, int s, float *out, int out_h, int out_w,
                                   int32_t *argmax)
{
    size_t ihw = (size_t)in_h * in_w, ohw = (size_t)out_h * out_w;
    for (size_t pl = p0; pl < p1; pl++) {
        const float *ip = in + pl * ihw;
        float *op = out + pl * ohw;
        int32_t *ap = argmax + pl * ohw;
        if (k == 2 && s == 2) {
            /* Branch-free 2x2 windows (on real data the comparisons are coin
             * flips; branches on them mispredict half the time). Scan order
             * and NaN rule as below. */
            for (int oy = 0; oy < out_h; oy++) {
                const float *r0 = ip + (size_t)(2 * oy) * in_w, *r1 = r0 + in_w;
                float *orow = op + (size_t)oy * out_w;
                int32_t *arow = ap + (size_t)oy * out_w;
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
                    arow[ox] = bi;
                }
            }
            continue;
        }
        for (int oy = 0; oy < out_h; oy++) {
            for (int ox = 0; ox < out_w; ox++) {
                int y0 = oy * s, x0 = ox * s;
                int32_t best = y0 * in_w + x0;
                float bv = ip[best];
                for (int ky = 0; ky < k; ky++) {
                    for (int kx = 0; kx < k; kx++) {
                        int32_t idx = (y0 + ky) * in_w + x0 + kx;
                        float v = ip[idx];
                        if (v > bv || isnan(v)) {
                            bv = v;
                            best = idx;
                        }
                    }
                }
                op[oy * out_w + ox] = bv;
                ap[oy * out_w + ox] = best;
            }
        }
    }
}

static void maxpool_backward_planes(const float *dout, const int32_t *argmax, size_t p0,
                                    size_t p1, int in_h, int in_w, int k, int s, int out_h,
                                    int out_w, float *din)
{
    size_t ihw = (size_t)in_h * in_w, ohw = (size_t)out_h * out_w;
    /* 2x2 windows that tile the plane exactly: each input is written once,
     * branch-free, no clearing pass. */
    bool tiled = k == 2 && s == 2 && in_h == out_h * 2 && in_w == out_w * 2;
    for (size_t pl = p0; pl < p1; pl++) {
        float *dp = din + pl * ihw;
        const float *gp = dout + pl * ohw;
        const int32_t *ap = argmax + pl * ohw;
        if (tiled) {
            for (int oy = 0; oy < out_h; oy++) {
                float *r0 = dp + (size_t)(2 * oy) * in_w, *r1 = r0 + in_w;
                const float *grow = gp + (size_t)oy * out_w;
                const int32_t *arow = ap + (size_t)oy * out_w;
                int32_t base0 = 2 * oy * in_w;
                for (int ox = 0; ox < out_w; ox++) {
                    int32_t a = arow[ox] - (base0 + 2 * ox);
                    float gv = grow[ox];
                    r0[2 * ox] = a == 0 ? gv : 0.0f;
                    r0[2 * ox + 1] = a == 1 ? gv : 0.0f;
                    r1[2 * ox] = a == in_w ? gv : 0.0f;
                    r1[2 * ox + 1] = a == in_w + 1 ? gv : 0.0f;
                }
            }
        } else {
            memset(dp, 0, sizeof(float) * ihw);
            for (size_t j = 0; j < ohw; j++)
                dp[ap[j]] += gp[j];
        }
    }
}

typedef struct {
    const float *in;
    const int32_t *argmax_in;
    float *out;
    int32_t *argmax;
    size_t planes, chunk;
    int in_h, in_w, k, s, out_h, out_w;
    bool backward;
} pool_job;

static void pool_task(void *ctx, int task, int worker)
{
    (void)worker;
    pool_job *j = ctx;
    size_t p0 = (size_t)task * j->chunk;
    size_t p1 = p0 + j->chunk < j->planes ? p0 + j->chunk : j->planes;
    if (j->backward)
        maxpool_backward_planes(j->in, j->argmax_in, p0, p1, j->in_h, j->in_w, j->k, j->s,
                                j->out_h, j->out_w, j->out);
    else
        maxpool_forward_planes(j->in, p0, p1, j->in_h, j->in_w, j->k, j->s, j->out, j->out_h,
                               j->out_w, j->argmax);
}

static void pool_run(pool_job *j, int threads)
{
    if (threads <= 1 || j->planes < 2) {
        pool_task(j, 0, 0);
        return;
    }
    int tasks = threads * 4;
    if ((size_t)tasks > j->planes)
        tasks = (int)j->planes;
    j->chunk = (j->planes + (size_t)tasks - 1) / (size_t)tasks;
    tasks = (int)((j->planes + j->chunk - 1) / j->chunk);
    md_parallel_for(threads, tasks, pool_task, j);
}

void md_maxpool_forward(const float *in, size_t planes, int in_h, int in_w, int k, int s,
                        float *out, int out_h, int out_w, int32_t *argmax, int threads)
{
    pool_job j = {in, NULL, out, argmax, planes, planes, in_h, in_w, k, s, out_h, out_w, false};
    pool_run(&j, threads);
}

void md_maxpool_backward(const float *dout, const int32_t *argmax, size_t planes, int in_h,
                         int in_w, int k, int s, int out_h, int out_w, float *din, int threads)
{
    pool_job j = {dout, argmax, din, NULL, planes, planes, in_h, in_w, k, s, out_h, out_w, true};
    pool_run(&j, threads);
}

void md_gap_forward(const float *in, size_t planes, size_t hw, float *out)
{
    for (size_t pl = 0; pl < planes; pl++) {
        const float *ip = in + pl * hw;
        double s = 0.0;
        for (size_t i = 0; i < hw; i++)
            s += ip[i];
        out[pl] = (float)(s / (double)hw);
    }
}

void md_gap_backward(const float *dout, size_t planes, size_t hw, float *din)
{
    for (size_t pl = 0; pl < planes; pl++) {
        float g = dout[pl] / (float)hw;
        float *dp = din + pl * hw;
        for (size_t i = 0; i < hw; i++)
            dp[i] = g;
    }
}

void md_linear_forward(const float *x, int batch, int in_f, int out_f, const float *weight,
                       const float *bias, bool relu, float *y)
{
    md_sgemm(false, true, batch, out_f, in_f, 1.0f, x, in_f, weight, in_f, 0.0f, y, out_f);
    for (int b = 0; b < batch; b++) {
        float *r = y + (size_t)b * out_f;
        for (int o = 0; o < out_f; o++) {
            float v = r[o] + (bias ? bias[o] : 0.0f);
            r[o] = relu && !(v > 0.0f) ? 0.0f : v;
        }
    }
}

void md_linear_backward(const float *x, int batch, int in_f, int out_f, const float *weight,
                        const float *dy, float *dweight, float *dbias, float *din)
{
    md_sgemm(true, false, out_f, in_f, batch, 1.0f, dy, out_f, x, in_f, 0.0f, dweight, in_f);
    for (int o = 0; o < out_f; o++) {
        double s = 0.0;
        for (int b = 0; b < batch; b++)
            s += dy[(size_t)b * out_f + o];
        dbias[o] = (float)s;
    }
    if (din)
        md_sgemm(false, false, batch, in_f, out_f, 1.0f, dy, out_f, weight, in_f, 0.0f, din,
                 in_f);
}

double md_mse_loss(const float *pred, const float *target, int n, float *grad)
{
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)target[i];
        s += d * d;
        if (grad)
            grad[i] = (float)(2.0 * d / n);
    }
    return n > 0 ? s / n : 0.0;
}

void md_adam_update(float *param, const float *grad, float *m, float *v, size_t begin,
                    size_t end, double lr, double beta1, double beta2, double eps, int t)
{
    /* The scalars as torch.optim.Adam (1.13, single-tensor path) forms them:
     * Python floats (double), rounded to float where the kernel uses them. */
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    float step = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps;
    float c1 = (float)(1.0 - beta1), c2 = (float)(1.0 - beta2);
    size_t i = begin;
#if defined(__AVX__)
    /* GCC will not vectorise sqrtf without -fno-math-errno: 8 lanes by hand,
     * the same correctly rounded operations as the scalar loop (which the
     * compiler may contract to FMAs; an element always takes the same path,
     * whatever the thread count, since chunks start at multiples of 8). */
    __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2), vc1 = _mm256_set1_ps(c1),
           vc2 = _mm256_set1_ps(c2), vstep = _mm256_set1_ps(step),
           vbc2 = _mm256_set1_ps(bc2_sqrt), veps = _mm256_set1_ps(e);
    for (; i + 8 <= end; i += 8) {
        __m256 g = _mm256_loadu_ps(grad + i);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(vc1, g));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)),
                                  _mm256_mul_ps(_mm256_mul_ps(vc2, g), g));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), vbc2), veps);
        __m256 p = _mm256_sub_ps(_mm256_loadu_ps(param + i),
                                 _mm256_mul_ps(vstep, _mm256_div_ps(mi, denom)));
        _mm256_storeu_ps(param + i, p);
    }
#endif
    for (; i < end; i++) {
        float g = grad[i];
        float mi = b1 * m[i] + c1 * g;
        float vi = b2 * v[i] + c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + e;
        param[i] -= step * (mi / denom);
    }
}

typedef struct {
    float *param;
    const float *grad;
    float *m, *v;
    size_t n, chunk;
    double lr, beta1, beta2, eps;
    int t;
} adam_job;

static void adam_task(void *ctx, int task, int worker)
{
    (void)worker;
    adam_job *j = ctx;
    size_t b = (size_t)task * j->chunk;
    size_t e = b + j->chunk < j->n ? b + j->chunk : j->n;
    md_adam_update(j->param, j->grad, j->m, j->v, b, e, j->lr, j->beta1, j->beta2, j->eps, j->t);
}

void md_adam_step(float *param, const float *grad, float *m, float *v, size_t n, double lr,
                  double beta1, double beta2, double eps, int t, int threads)
{
    /* 1 Mi-element chunks: element-wise, so any split gives the same bits. */
    size_t chunk = (size_t)1 << 20;
    adam_job j = {param, grad, m, v, n, chunk, lr, beta1, beta2, eps, t};
    size_t tasks = (n + chunk - 1) / chunk;
    if (tasks <= 1 || threads <= 1) {
        md_adam_update(param, grad, m, v, 0, n, lr, beta1, beta2, eps, t);
        return;
    }
    md_parallel_for(threads, (int)tasks, adam_task, &j);
}
