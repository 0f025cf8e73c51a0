#include "ops/transformer_ops.h"

#include "ops/gemm.h"

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
 * polynomial. Written branch-free so the compiler vectorises the loops.
 * Defined for every input: the reduction runs on a clamped copy that is
 * never NaN (a comparison with NaN is false, so NaN takes the lower bound),
 * so n always fits an int; then NaN stays NaN, +inf gives +inf and -inf 0. */
static inline float exp_approx(float x)
{
    float xc = x > -87.0f ? x : -87.0f;
    xc = xc < 88.0f ? xc : 88.0f;
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693145751953125f;  /* ln2 split in a high part ... */
    r = r - n * 1.42860682030941723212e-6f; /* ... and the rest */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, 4);
    float y = p * scale;
    y = x == INFINITY ? INFINITY : y;
    y = x == -INFINITY ? 0.0f : y;
    return x != x ? x : y;
}

#if defined(__AVX512F__)
#include <immintrin.h>

/* The same range reduction and polynomial, 16 lanes at a time, and the same
 * special cases (min/max return their second operand for a NaN lane, which
 * would turn NaN into e^88: the lanes are put back afterwards). */
static inline __m512 exp512(__m512 x_in)
{
    __m512 x = _mm512_max_ps(_mm512_min_ps(x_in, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512 y = _mm512_scalef_ps(p, n);
    y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x_in, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ), y,
                             _mm512_set1_ps(INFINITY));
    y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x_in, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), y,
                             _mm512_setzero_ps());
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x_in, x_in, _CMP_UNORD_Q), y, x_in);
}

static inline __mmask16 tail_mask(size_t left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

static inline __m512 gelu512(__m512 v)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(v), _mm512_set1_ps(0.70710678118654752f));
    __m512 d = _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), one);
    __m512 t = _mm512_rcp14_ps(d); /* one Newton step: ~1e-8 relative */
    t = _mm512_mul_ps(t, _mm512_fnmadd_ps(d, t, _mm512_set1_ps(2.0f)));
    __m512 poly = _mm512_set1_ps(1.061405429f);
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
    poly = _mm512_mul_ps(poly, t);
    __m512 e = _mm512_fnmadd_ps(poly, exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), z)),
                                one);
    /* erf is odd: give e the sign of v */
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u));
    e = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(e), sign));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(one, e));
}
#endif

void md_gelu_erf(float *x, size_t n)
{
#if defined(__AVX512F__)
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, k, gelu512(_mm512_maskz_loadu_ps(k, x + i)));
    }
    return;
#endif
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

/* Softmax numerators of each row of scale * x (e^(scale (x - max))) in
 * place, scale > 0; returns 1 / sum in inv[r]. With out16, each row is also
 * rounded to bf16 into out16 (row stride ld16, padded with a zero to an even
 * length) while it is still in L1. */
static void softmax_rows_finish(float *row, int cols, uint16_t *out16)
{
    if (!out16)
        return;
    md_f32_to_bf16(row, out16, (size_t)cols);
    if (cols & 1)
        out16[cols] = 0;
}

static void softmax_unnormalised(float *x, int rows, int cols, float scale, float *inv,
                                 uint16_t *out16, size_t ld16)
{
#if defined(__AVX512F__)
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * cols;
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        for (int i = 0; i < cols; i += 16) {
            __mmask16 k = tail_mask((size_t)(cols - i));
            vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vmax, k, row + i));
        }
        __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax)), sc = _mm512_set1_ps(scale);
        __m512 vsum = _mm512_setzero_ps();
        for (int i = 0; i < cols; i += 16) {
            __mmask16 k = tail_mask((size_t)(cols - i));
            __m512 e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + i), m), sc));
            _mm512_mask_storeu_ps(row + i, k, e);
            vsum = _mm512_mask_add_ps(vsum, k, vsum, e);
        }
        inv[r] = 1.0f / _mm512_reduce_add_ps(vsum);
        softmax_rows_finish(row, cols, out16 ? out16 + (size_t)r * ld16 : NULL);
    }
    return;
#endif
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * cols;
        /* 16 partial maxima / sums: vectorisable without reassociation flags */
        float part[16];
        int i = 0;
        float m = row[0];
        if (cols >= 16) {
            for (int j = 0; j < 16; j++)
                part[j] = row[j];
            for (i = 16; i + 16 <= cols; i += 16)
                for (int j = 0; j < 16; j++)
                    part[j] = row[i + j] > part[j] ? row[i + j] : part[j];
            for (int j = 0; j < 16; j++)
                m = part[j] > m ? part[j] : m;
        }
        for (; i < cols; i++)
            m = row[i] > m ? row[i] : m;
        for (int j = 0; j < 16; j++)
            part[j] = 0.0f;
        for (i = 0; i + 16 <= cols; i += 16)
            for (int j = 0; j < 16; j++) {
                float e = exp_approx((row[i + j] - m) * scale);
                row[i + j] = e;
                part[j] += e;
            }
        float sum = 0.0f;
        for (; i < cols; i++) {
            row[i] = exp_approx((row[i] - m) * scale);
            sum += row[i];
        }
        for (int j = 0; j < 16; j++)
            sum += part[j];
        inv[r] = 1.0f / sum;
        softmax_rows_finish(row, cols, out16 ? out16 + (size_t)r * ld16 : NULL);
    }
}

size_t md_attention_kv_bytes(md_gemm_type type, int tokens, int head_dim)
{
    return md_gemm_packed_bytes(type, false, head_dim, tokens) +
           md_gemm_packed_bytes(type, false, tokens, head_dim);
}

size_t md_attention_scratch_bytes(md_gemm_type type, int tokens)
{
    size_t n = (size_t)MD_ATTENTION_BLOCK * (size_t)tokens * sizeof(float);
    if (type == MD_GEMM_BF16) /* the probabilities again as bf16, rows padded to even */
        n += (size_t)MD_ATTENTION_BLOCK * (size_t)((tokens + 1) & ~1) * sizeof(uint16_t);
    return (n + 63) / 64 * 64;
}

/* K^T as a packed bf16 B operand, straight from the bf16 copy of qkv: the
 * pair (k[t][2j], k[t][2j+1]) is already adjacent in token t's row, so each
 * panel of NR tokens is a transpose of 32-bit pairs. */
static void pack_kt_bf16(const uint16_t *k16, size_t ld, int tokens, int head_dim, uint32_t *dst)
{
    int pairs = head_dim / 2;
    for (int t0 = 0; t0 < tokens; t0 += MD_GEMM_NR) {
        uint32_t *panel = dst + (size_t)t0 * pairs;
        int n = tokens - t0 < MD_GEMM_NR ? tokens - t0 : MD_GEMM_NR;
        for (int j = 0; j < MD_GEMM_NR; j++) {
            if (j >= n) {
                for (int p = 0; p < pairs; p++)
                    panel[(size_t)p * MD_GEMM_NR + j] = 0;
                continue;
            }
            const uint16_t *row = k16 + (size_t)(t0 + j) * ld;
            for (int p = 0; p < pairs; p++) {
                uint32_t pr;
                memcpy(&pr, row + 2 * p, sizeof pr);
                panel[(size_t)p * MD_GEMM_NR + j] = pr;
            }
        }
    }
}

void md_attention_pack_kv(md_gemm_type type, const float *qkv, const uint16_t *qkv_bf16,
                          int tokens, int heads, int head_dim, int head, void *kv)
{
    size_t dim = (size_t)heads * head_dim, ld = 3 * dim;
    const float *k = qkv + dim + (size_t)head * head_dim;
    const float *v = qkv + 2 * dim + (size_t)head * head_dim;
    /* K^T (head_dim x tokens): k stored transposed; V (tokens x head_dim) as is */
    if (type == MD_GEMM_BF16 && qkv_bf16 && head_dim % 2 == 0)
        pack_kt_bf16(qkv_bf16 + dim + (size_t)head * head_dim, ld, tokens, head_dim, kv);
    else
        md_gemm_pack_b_into(type, kv, k, ld, true, head_dim, tokens);
    md_gemm_pack_b_into(type, (char *)kv + md_gemm_packed_bytes(type, false, head_dim, tokens), v,
                        ld, false, tokens, head_dim);
}

void md_attention_rows(md_gemm_type type, const float *qkv, const uint16_t *qkv_bf16,
                       const void *kv, int tokens, int heads, int head_dim, int head, int r0,
                       int r1, float *out, void *scratch)
{
    int dim = heads * head_dim, ld = 3 * dim, rows = r1 - r0;
    if (rows <= 0)
        return;
    bool bf = type == MD_GEMM_BF16;
    md_gemm_isa isa = md_gemm_isa_best(type);
    float scale = 1.0f / sqrtf((float)head_dim);
    md_gemm_packed kt = md_gemm_packed_view(type, (void *)(uintptr_t)kv, false, head_dim, tokens);
    md_gemm_packed vv = md_gemm_packed_view(
        type, (char *)(uintptr_t)kv + md_gemm_packed_bytes(type, false, head_dim, tokens), false,
        tokens, head_dim);
    float *scores = scratch;
    int tp = (tokens + 1) & ~1;
    uint16_t *probs = (uint16_t *)(scores + (size_t)MD_ATTENTION_BLOCK * tokens);
    float inv[MD_ATTENTION_BLOCK];
    for (int b0 = 0; b0 < rows; b0 += MD_ATTENTION_BLOCK) {
        int n = rows - b0 < MD_ATTENTION_BLOCK ? rows - b0 : MD_ATTENTION_BLOCK;
        size_t qoff = (size_t)(r0 + b0) * ld + (size_t)head * head_dim;
        /* q and the probabilities are read in place (no packing copies);
         * the 1/sqrt(d) scale is applied inside the softmax */
        md_gemm_operand q = md_gemm_direct(qkv + qoff, (size_t)ld);
        if (bf)
            q = qkv_bf16 ? md_gemm_direct(qkv_bf16 + qoff, (size_t)ld)
                         : md_gemm_raw(qkv + qoff, (size_t)ld, false);
        md_gemm_block(isa, n, tokens, head_dim, 1.0f, q, md_gemm_prepacked(&kt), scores,
                      (size_t)tokens, NULL, 0, n, 0, tokens);
        softmax_unnormalised(scores, n, tokens, scale, inv, bf ? probs : NULL, (size_t)tp);
        md_gemm_operand p = bf ? md_gemm_direct(probs, (size_t)tp)
                               : md_gemm_direct(scores, (size_t)tokens);
        md_gemm_epilogue e = md_gemm_epilogue_none();
        e.row_scale = inv;
        float *o = out + (size_t)(r0 + b0) * dim + (size_t)head * head_dim;
        md_gemm_block(isa, n, head_dim, tokens, 1.0f, p, md_gemm_prepacked(&vv), o, (size_t)dim,
                      &e, 0, n, 0, head_dim);
    }
}
