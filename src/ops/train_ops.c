/* Training kernels: see train_ops.h. */
#include "ops/train_ops.h"

#include "base/pool.h"
#include "ops/cnn_ops.h"
#include "ops/gemm.h"

#include <math.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

void md_relu_backward(const float *y, float *dy, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
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
    if (p0 >= p1)
        return;
    size_t ihw = (size_t)j->in_h * j->in_w, ohw = (size_t)j->out_h * j->out_w;
    if (j->backward) {
        maxpool_backward_planes(j->in, j->argmax_in, p0, p1, j->in_h, j->in_w, j->k, j->s,
                                j->out_h, j->out_w, j->out);
        return;
    }
    md_pool2d_params pp = {j->k, j->k, j->s, j->s, 0, 0, 0, 0, 0};
    md_maxpool2d(&pp, j->in + p0 * ihw, (int)(p1 - p0), j->in_h, j->in_w, j->out + p0 * ohw,
                 j->out_h, j->out_w, j->argmax + p0 * ohw);
}

static void pool_run(pool_job *j, md_threadpool *pool)
{
    int threads = md_pool_threads(pool);
    if (threads <= 1 || j->planes < 2) {
        pool_task(j, 0, 0);
        return;
    }
    int tasks = threads * 4;
    if ((size_t)tasks > j->planes)
        tasks = (int)j->planes;
    j->chunk = (j->planes + (size_t)tasks - 1) / (size_t)tasks;
    tasks = (int)((j->planes + j->chunk - 1) / j->chunk);
    md_pool_run(pool, tasks, pool_task, j);
}

void md_maxpool_forward(const float *in, size_t planes, int in_h, int in_w, int k, int s,
                        float *out, int out_h, int out_w, int32_t *argmax, md_threadpool *pool)
{
    pool_job j = {in, NULL, out, argmax, planes, planes, in_h, in_w, k, s, out_h, out_w, false};
    pool_run(&j, pool);
}

void md_maxpool_backward(const float *dout, const int32_t *argmax, size_t planes, int in_h,
                         int in_w, int k, int s, int out_h, int out_w, float *din,
                         md_threadpool *pool)
{
    pool_job j = {dout, argmax, din, NULL, planes, planes, in_h, in_w, k, s, out_h, out_w, true};
    pool_run(&j, pool);
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
                       const float *bias, bool relu, float *y, md_threadpool *pool)
{
    md_sgemm(pool, false, true, batch, out_f, in_f, 1.0f, x, in_f, weight, in_f, 0.0f, y, out_f);
    for (int b = 0; b < batch; b++) {
        float *r = y + (size_t)b * out_f;
        for (int o = 0; o < out_f; o++) {
            float v = r[o] + (bias ? bias[o] : 0.0f);
            r[o] = relu && !(v > 0.0f) ? 0.0f : v;
        }
    }
}

void md_linear_backward(const float *x, int batch, int in_f, int out_f, const float *weight,
                        const float *dy, float *dweight, float *dbias, float *din,
                        md_threadpool *pool)
{
    md_sgemm(pool, true, false, out_f, in_f, batch, 1.0f, dy, out_f, x, in_f, 0.0f, dweight,
             in_f);
    for (int o = 0; o < out_f; o++) {
        double s = 0.0;
        for (int b = 0; b < batch; b++)
            s += dy[(size_t)b * out_f + o];
        dbias[o] = (float)s;
    }
    if (din)
        md_sgemm(pool, false, false, batch, in_f, out_f, 1.0f, dy, out_f, weight, in_f, 0.0f,
                 din, in_f);
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
                  double beta1, double beta2, double eps, int t, md_threadpool *pool)
{
    int threads = md_pool_threads(pool);
    /* 1 Mi-element chunks: element-wise, so any split gives the same bits. */
    size_t chunk = (size_t)1 << 20;
    adam_job j = {param, grad, m, v, n, chunk, lr, beta1, beta2, eps, t};
    size_t tasks = (n + chunk - 1) / chunk;
    if (tasks <= 1 || threads <= 1) {
        md_adam_update(param, grad, m, v, 0, n, lr, beta1, beta2, eps, t);
        return;
    }
    md_pool_run(pool, (int)tasks, adam_task, &j);
}
