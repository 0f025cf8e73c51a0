#include "tensor/transformer_ops.h"

#include "tensor/tensor_ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

void md_layernorm(const float *x, int rows, int dim, const float *gamma, const float *beta,
                  float eps, float *out)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *o = out + (size_t)r * dim;
        double sum = 0.0;
        for (int i = 0; i < dim; i++)
            sum += xr[i];
        float mean = (float)(sum / dim);
        double var = 0.0;
        for (int i = 0; i < dim; i++) {
            double d = (double)xr[i] - mean;
            var += d * d;
        }
        float inv = (float)(1.0 / sqrt(var / dim + (double)eps));
        for (int i = 0; i < dim; i++)
            o[i] = (xr[i] - mean) * inv * gamma[i] + beta[i];
    }
}

/* e^x as 2^n * p(r), x = n ln2 + r, |r| <= ln2/2; p a degree-6 Taylor
 * polynomial. Written branch-free so the compiler vectorises the loops. */
static inline float exp_approx(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693145751953125f;   /* ln2 split in a high part ... */
    r = r - n * 1.42860682030941723212e-6f; /* ... and the rest */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

void md_exp_inplace(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = exp_approx(x[i]);
}

void md_gelu_erf(float *x, size_t n)
{
    /* erf(z) = 1 - (a1 t + ... + a5 t^5) e^{-z^2}, t = 1 / (1 + p z), z >= 0
       (Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7); odd symmetry for z < 0. */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float z = fabsf(v) * 0.70710678118654752f;
        float t = 1.0f / (1.0f + 0.3275911f * z);
        float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
                      0.254829592f) *
                     t;
        float e = 1.0f - poly * exp_approx(-z * z);
        e = v < 0.0f ? -e : e;
        x[i] = 0.5f * v * (1.0f + e);
    }
}

void md_softmax_rows(float *x, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * cols;
        float m = row[0];
        for (int i = 1; i < cols; i++)
            m = row[i] > m ? row[i] : m;
        for (int i = 0; i < cols; i++)
            row[i] = exp_approx(row[i] - m);
        /* 16 partial sums: a vectorisable reduction without reassociation flags */
        float part[16] = {0};
        int i = 0;
        for (; i + 16 <= cols; i += 16)
            for (int j = 0; j < 16; j++)
                part[j] += row[i + j];
        float sum = 0.0f;
        for (; i < cols; i++)
            sum += row[i];
        for (int j = 0; j < 16; j++)
            sum += part[j];
        float inv = 1.0f / sum;
        for (i = 0; i < cols; i++)
            row[i] *= inv;
    }
}

void md_attention(const float *qkv, int tokens, int heads, int head_dim, float *out,
                  float *scores)
{
    int dim = heads * head_dim;
    int ld = 3 * dim;
    float scale = 1.0f / sqrtf((float)head_dim);
    for (int h = 0; h < heads; h++) {
        const float *q = qkv + (size_t)h * head_dim;
        const float *k = qkv + dim + (size_t)h * head_dim;
        const float *v = qkv + 2 * (size_t)dim + (size_t)h * head_dim;
        md_sgemm(false, true, tokens, tokens, head_dim, scale, q, ld, k, ld, 0.0f, scores, tokens);
        md_softmax_rows(scores, tokens, tokens);
        md_sgemm(false, false, tokens, head_dim, tokens, 1.0f, scores, tokens, v, ld, 0.0f,
                 out + (size_t)h * head_dim, dim);
    }
}
