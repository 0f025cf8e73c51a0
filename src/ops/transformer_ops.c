#include "ops/transformer_ops.h"

#include "ops/gemm.h"
#include "ops/vmath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
static inline __mmask16 tail_mask(size_t left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* 16 floats as 8 + 8 doubles, each half minus mean and squared when
 * centred, added to the accumulators. */
static inline void sum16_pd(__m512 v, bool centred, __m512d m, __mmask8 klo, __mmask8 khi,
                            __m512d *acc0, __m512d *acc1)
{
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    if (centred) {
        lo = _mm512_maskz_sub_pd(klo, lo, m);
        hi = _mm512_maskz_sub_pd(khi, hi, m);
        lo = _mm512_mul_pd(lo, lo);
        hi = _mm512_mul_pd(hi, hi);
    }
    *acc0 = _mm512_add_pd(*acc0, lo);
    *acc1 = _mm512_add_pd(*acc1, hi);
}

/* Sum of n floats, or of their squared distances to mean, in double, 8
 * lanes at a time. Whole vectors unmasked, the tail masked (masked loads in
 * every step are slow on Zen 5, see the softmax). */
static double sum_pd(const float *x, int n, bool centred, double mean)
{
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd(), m = _mm512_set1_pd(mean);
    int full = n & ~15;
    for (int i = 0; i < full; i += 16)
        sum16_pd(_mm512_loadu_ps(x + i), centred, m, 0xff, 0xff, &acc0, &acc1);
    if (full < n) {
        __mmask16 k = tail_mask((size_t)(n - full));
        sum16_pd(_mm512_maskz_loadu_ps(k, x + full), centred, m, (__mmask8)(k & 0xff),
                 (__mmask8)(k >> 8), &acc0, &acc1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
}

/* One LayerNorm'd vector of 16 (k: the lanes that exist). */
static inline void ln16(const float *x, const float *gamma, const float *beta, __m512 vm,
                        __m512 vi, __mmask16 k, bool full, float *out, uint16_t *out16)
{
    __m512 xv = full ? _mm512_loadu_ps(x) : _mm512_maskz_loadu_ps(k, x);
    __m512 g = full ? _mm512_loadu_ps(gamma) : _mm512_maskz_loadu_ps(k, gamma);
    __m512 bt = full ? _mm512_loadu_ps(beta) : _mm512_maskz_loadu_ps(k, beta);
    __m512 v = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_sub_ps(xv, vm), vi), g, bt);
    if (out16 && full)
        _mm256_storeu_si256((__m256i *)out16, md_bf16_round16(v));
    else if (out16)
        _mm256_mask_storeu_epi16(out16, k, md_bf16_round16(v));
    else if (full)
        _mm512_storeu_ps(out, v);
    else
        _mm512_mask_storeu_ps(out, k, v);
}
#endif

void md_layernorm(const float *x, int rows, int dim, const float *gamma, const float *beta,
                  float eps, float *out, uint16_t *out16)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
#if defined(__AVX512F__)
        float mean = (float)(sum_pd(xr, dim, false, 0.0) / dim);
        double var = sum_pd(xr, dim, true, (double)mean);
        float inv = (float)(1.0 / sqrt(var / dim + (double)eps));
        __m512 vm = _mm512_set1_ps(mean), vi = _mm512_set1_ps(inv);
        float *o = out16 ? NULL : out + (size_t)r * dim;
        uint16_t *o16 = out16 ? out16 + (size_t)r * dim : NULL;
        int full = dim & ~15, i = 0;
        for (; i < full; i += 16)
            ln16(xr + i, gamma + i, beta + i, vm, vi, 0xffff, true, o ? o + i : NULL,
                 o16 ? o16 + i : NULL);
        if (i < dim)
            ln16(xr + i, gamma + i, beta + i, vm, vi, tail_mask((size_t)(dim - i)), false,
                 o ? o + i : NULL, o16 ? o16 + i : NULL);
#else
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
        for (int i = 0; i < dim; i++) {
            float v = (xr[i] - mean) * inv * gamma[i] + beta[i];
            if (out16)
                out16[(size_t)r * dim + i] = md_bf16_from_f32(v);
            else
                out[(size_t)r * dim + i] = v;
        }
#endif
    }
}


void md_gelu_erf(float *x, size_t n)
{
#if defined(__AVX512F__)
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, k, md_gelu512(_mm512_maskz_loadu_ps(k, x + i)));
    }
    return;
#endif
    for (size_t i = 0; i < n; i++)
        x[i] = md_gelu_scalar(x[i]);
}

static void softmax_rows_finish(float *row, int cols, uint16_t *out16)
{
    if (!out16)
        return;
    md_f32_to_bf16(row, out16, (size_t)cols);
    if (cols & 1)
        out16[cols] = 0;
}

/* Softmax numerators of each row of scale * x (e^(scale (x - max))) in
 * place, scale > 0; returns 1 / sum in inv[r]. With out16, each row goes
 * rounded to bf16 into out16 (row stride ld16, padded with a zero to an even
 * length), and x is left as scratch. */
static void softmax_unnormalised(float *x, int rows, int cols, float scale, float *inv,
                                 uint16_t *out16, size_t ld16)
{
#if defined(__AVX512F__)
    /* Whole vectors unmasked, the tail masked: masked loads and stores in
     * every step made this loop 1.4x slower on Zen 5. */
    int full = cols & ~15;
    __mmask16 kt = tail_mask((size_t)(cols - full));
    float c = scale * 1.44269504088896341f;
    __m512 vc = _mm512_set1_ps(c);
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * cols;
        __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
        int i = 0;
        for (; i + 32 <= full; i += 32) {
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(row + i));
            m1 = _mm512_max_ps(m1, _mm512_loadu_ps(row + i + 16));
        }
        if (i < full)
            m0 = _mm512_max_ps(m0, _mm512_loadu_ps(row + i));
        if (kt)
            m1 = _mm512_max_ps(m1, _mm512_mask_loadu_ps(m1, kt, row + full));
        /* e^(scale (x - max)) = 2^(x c - max c), c = scale log2(e): the
         * rounding of max c is common to the row and cancels in 1 / sum */
        __m512 mc = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(m0, m1)) * c);
        __m512 vsum = _mm512_setzero_ps();
        uint16_t *o16 = out16 ? out16 + (size_t)r * ld16 : NULL;
        /* x c - max c <= 0 up to one rounding (or NaN, which poisons the row
         * as it should); bf16 products read only the rounded copy */
        for (i = 0; i < full; i += 16) {
            __m512 e = md_exp2_512_nonpos(_mm512_fmsub_ps(_mm512_loadu_ps(row + i), vc, mc));
            vsum = _mm512_add_ps(vsum, e);
            if (o16)
                _mm256_storeu_si256((__m256i *)(o16 + i), md_bf16_round16(e));
            else
                _mm512_storeu_ps(row + i, e);
        }
        if (kt) {
            __m512 e =
                md_exp2_512_nonpos(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(kt, row + full), vc, mc));
            vsum = _mm512_mask_add_ps(vsum, kt, vsum, e);
            if (o16)
                _mm256_mask_storeu_epi16(o16 + full, kt, md_bf16_round16(e));
            else
                _mm512_mask_storeu_ps(row + full, kt, e);
        }
        inv[r] = 1.0f / _mm512_reduce_add_ps(vsum);
        if (o16 && (cols & 1))
            o16[cols] = 0;
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
                float e = md_exp_approx((row[i + j] - m) * scale);
                row[i + j] = e;
                part[j] += e;
            }
        float sum = 0.0f;
        for (; i < cols; i++) {
            row[i] = md_exp_approx((row[i] - m) * scale);
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

/* The scratch: a block's packed q (64-byte aligned), its scores, and for
 * bf16 its probabilities again as bf16, rows padded to even. */
static size_t q_pack_bytes(md_gemm_type type, int head_dim)
{
    return (md_gemm_packed_bytes(type, true, MD_ATTENTION_BLOCK, head_dim) + 63) / 64 * 64;
}

size_t md_attention_scratch_bytes(md_gemm_type type, int tokens, int head_dim)
{
    size_t n = q_pack_bytes(type, head_dim) +
               (size_t)MD_ATTENTION_BLOCK * (size_t)tokens * sizeof(float);
    if (type == MD_GEMM_BF16)
        n += (size_t)MD_ATTENTION_BLOCK * (size_t)((tokens + 1) & ~1) * sizeof(uint16_t);
    return (n + 63) / 64 * 64;
}

/* Rows of bf16 values as panels of h rows of 32-bit pairs, for a packed
 * bf16 operand read straight from the bf16 copy of qkv (head_dim even): the
 * pair (x[2p], x[2p+1]) is already adjacent in each row, so a panel is a
 * transpose of pairs, element (p, i) = pair p of row i, written in order (the
 * h rows read, a few KB, stay in L1). pad: the last panel is h wide, zero
 * filled (a B operand: K^T's panels of NR tokens), else only as wide as the
 * rows left (an A operand: q's panels of md_gemm_panel_rows rows). */
static void pairs_to_panels(const uint16_t *src, size_t ld, int rows, int pairs, int h, bool pad,
                            uint32_t *dst)
{
    for (int r0 = 0; r0 < rows; r0 += h) {
        int n = rows - r0 < h ? rows - r0 : h, w = pad ? h : n;
        uint32_t *panel = dst + (size_t)r0 * pairs;
        for (int p = 0; p < pairs; p++) {
            uint32_t *o = panel + (size_t)p * w;
            for (int j = 0; j < n; j++)
                memcpy(o + j, src + (size_t)(r0 + j) * ld + 2 * p, sizeof(uint32_t));
            for (int j = n; j < w; j++)
                o[j] = 0;
        }
    }
}

/* V as a packed bf16 B operand (tokens x head_dim) from the bf16 copy of
 * qkv: pairs of consecutive tokens, an odd last token paired with zero. */
static void pack_v_bf16(const uint16_t *v16, size_t ld, int tokens, int head_dim, uint16_t *dst)
{
    int pairs = (tokens + 1) / 2;
    for (int d0 = 0; d0 < head_dim; d0 += MD_GEMM_NR) {
        uint16_t *panel = dst + (size_t)d0 * 2 * pairs;
        int n = head_dim - d0 < MD_GEMM_NR ? head_dim - d0 : MD_GEMM_NR;
#if defined(__AVX512BW__)
        /* a whole panel: two rows' 32 values interleaved by two permutes,
         * not 64 scalar moves (V took 7 ms of a 0.95 s bf16 ViT-S pass, one
         * thread, Zen 4; the pass 0.997x the time, 0.994x on two threads) */
        if (n == 32 && MD_GEMM_NR == 32) {
            const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41,
                                                9, 40, 8, 39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2,
                                                33, 1, 32, 0);
            const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
            for (int p = 0; p < pairs; p++) {
                const uint16_t *r0 = v16 + (size_t)(2 * p) * ld + d0;
                __m512i a = _mm512_loadu_si512(r0);
                __m512i b =
                    2 * p + 1 < tokens ? _mm512_loadu_si512(r0 + ld) : _mm512_setzero_si512();
                uint16_t *o = panel + (size_t)p * 2 * MD_GEMM_NR;
                _mm512_storeu_si512(o, _mm512_permutex2var_epi16(a, lo, b));
                _mm512_storeu_si512(o + 32, _mm512_permutex2var_epi16(a, hi, b));
            }
            continue;
        }
#endif
        for (int p = 0; p < pairs; p++) {
            const uint16_t *r0 = v16 + (size_t)(2 * p) * ld + d0;
            const uint16_t *r1 = 2 * p + 1 < tokens ? r0 + ld : NULL;
            uint16_t *o = panel + (size_t)p * 2 * MD_GEMM_NR;
            for (int j = 0; j < MD_GEMM_NR; j++) {
                o[2 * j] = j < n ? r0[j] : 0;
                o[2 * j + 1] = j < n && r1 ? r1[j] : 0;
            }
        }
    }
}

void md_attention_pack_kv(md_gemm_type type, const float *qkv, const uint16_t *qkv_bf16,
                          int tokens, int heads, int head_dim, int head, void *kv)
{
    size_t dim = (size_t)heads * head_dim, ld = 3 * dim;
    void *vdst = (char *)kv + md_gemm_packed_bytes(type, false, head_dim, tokens);
    /* K^T (head_dim x tokens): k stored transposed; V (tokens x head_dim) as is */
    if (type == MD_GEMM_BF16 && qkv_bf16 && head_dim % 2 == 0) {
        const uint16_t *k16 = qkv_bf16 + dim + (size_t)head * head_dim;
        pairs_to_panels(k16, ld, tokens, head_dim / 2, MD_GEMM_NR, true, kv);
        pack_v_bf16(qkv_bf16 + 2 * dim + (size_t)head * head_dim, ld, tokens, head_dim, vdst);
        return;
    }
    md_gemm_pack_b_into(type, kv, qkv + dim + (size_t)head * head_dim, ld, true, head_dim, tokens);
    md_gemm_pack_b_into(type, vdst, qkv + 2 * dim + (size_t)head * head_dim, ld, false, tokens,
                        head_dim);
}

void md_attention_rows(md_gemm_type type, const float *qkv, const uint16_t *qkv_bf16,
                       const void *kv, int tokens, int heads, int head_dim, int head, int r0,
                       int r1, float *out, uint16_t *out16, void *scratch)
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
    void *qpack = scratch;
    float *scores = (float *)((char *)scratch + q_pack_bytes(type, head_dim));
    int tp = (tokens + 1) & ~1;
    uint16_t *probs = (uint16_t *)(scores + (size_t)MD_ATTENTION_BLOCK * tokens);
    float inv[MD_ATTENTION_BLOCK];
    for (int b0 = 0; b0 < rows; b0 += MD_ATTENTION_BLOCK) {
        int n = rows - b0 < MD_ATTENTION_BLOCK ? rows - b0 : MD_ATTENTION_BLOCK;
        size_t qoff = (size_t)(r0 + b0) * ld + (size_t)head * head_dim;
        /* The block's q is packed (a few KB): with K = head_dim the tiles
         * are short, and one A stream beats 12 strided row streams, 7 %
         * (bf16) and 12 % (fp32) faster q k^T on Zen 5. The probabilities
         * are read in place; the 1/sqrt(d) scale is applied inside the
         * softmax. */
        if (bf && qkv_bf16 && head_dim % 2 == 0)
            pairs_to_panels(qkv_bf16 + qoff, (size_t)ld, n, head_dim / 2, md_gemm_panel_rows(n),
                            false, qpack);
        else
            md_gemm_pack_a_into(type, qpack, qkv + qoff, (size_t)ld, false, n, head_dim);
        md_gemm_packed qp = md_gemm_packed_view(type, qpack, true, n, head_dim);
        md_gemm_block(isa, n, tokens, head_dim, 1.0f, md_gemm_prepacked(&qp),
                      md_gemm_prepacked(&kt), scores, (size_t)tokens, NULL, 0, n, 0, tokens);
        softmax_unnormalised(scores, n, tokens, scale, inv, bf ? probs : NULL, (size_t)tp);
        md_gemm_operand p = bf ? md_gemm_direct(probs, (size_t)tp)
                               : md_gemm_direct(scores, (size_t)tokens);
        md_gemm_epilogue e = md_gemm_epilogue_none();
        e.row_scale = inv;
        size_t ooff = (size_t)(r0 + b0) * dim + (size_t)head * head_dim;
        float *o = out + ooff;
        if (out16) {
            e.out16 = out16 + ooff;
            e.ld16 = (size_t)dim;
        }
        md_gemm_block(isa, n, head_dim, tokens, 1.0f, p, md_gemm_prepacked(&vv), o, (size_t)dim,
                      &e, 0, n, 0, head_dim);
    }
}
