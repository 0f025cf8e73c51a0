/* Vector math shared by the transformer operations and the GEMM epilogue:
 * e^x and GELU (exact-erf form) in scalar form, and where AVX-512 is compiled
 * in (-march with AVX-512, or a file that includes this under an AVX-512
 * target attribute after defining MD_VMATH_AVX512) 16 lanes at a time: 2^t
 * for t <= 0 (the softmax's and GELU's exponentials) and GELU. */
#ifndef MD_OPS_VMATH_H
#define MD_OPS_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x as 2^n * p(r), x = n ln2 + r, |r| <= ln2/2; p a degree-6 Taylor
 * polynomial. Written branch-free so the compiler vectorises the loops.
 * Defined for every input: the reduction runs on a clamped copy that is
 * never NaN (a comparison with NaN is false, so NaN takes the lower bound),
 * so n always fits an int; then NaN stays NaN, +inf gives +inf and -inf 0. */
static inline float md_exp_approx(float x)
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

/* GELU with the exact erf: erf(z) = 1 - (a1 t + ... + a5 t^5) e^{-z^2},
 * t = 1 / (1 + p z), z >= 0 (Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7);
 * odd symmetry for z < 0. */
static inline float md_gelu_scalar(float v)
{
    float z = fabsf(v) * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.3275911f * z);
    float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
                  0.254829592f) *
                 t;
    float e = 1.0f - poly * md_exp_approx(-z * z);
    e = v < 0.0f ? -e : e;
    return 0.5f * v * (1.0f + e);
}

#endif

/* The vector part has its own guard: a file built without AVX-512 includes
 * this header once at the top (scalar part) and again under its AVX-512
 * target attribute with MD_VMATH_AVX512 defined. */
#if (defined(__AVX512F__) || defined(MD_VMATH_AVX512)) && !defined(MD_OPS_VMATH_AVX512_H)
#define MD_OPS_VMATH_AVX512_H
#include <immintrin.h>

/* 2^t for t <= 0 (also -inf and NaN), 16 lanes: the softmax and GELU's
 * e^(-z^2) fold log2(e) into their own multiplies. t = n + r, n an integer,
 * |r| <= 1/2, 2^r by a degree-5 polynomial fitted for least maximum relative
 * error on [-1/2, 1/2] with p(0) = 1 (Lawson-weighted least squares; 1.1e-7
 * with these float coefficients, as md_exp_approx's 1.2e-7), then scaled by
 * 2^n. Against md_exp_approx's reduction and special-case blends in vector
 * form, on Zen 5 with the data in L1: the softmax's exp 5.4 instead of 9.2
 * cycles per 16 values, GELU 12.6 instead of 18.6, same GELU error. NaN
 * survives the lower bound (max returns its second operand when one is NaN);
 * -inf and anything under -150 come out 0. */
static inline __m512 md_exp2_512_nonpos(__m512 t)
{
    t = _mm512_max_ps(_mm512_set1_ps(-150.0f), t);
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(0.0013264725f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.00967151299f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.0555073358f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.240222424f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.693147004f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline __m512 md_gelu512(__m512 v)
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
    /* e^(-z^2) = 2^(-z^2 log2(e)): the exponent is never positive */
    __m512 ez = md_exp2_512_nonpos(
        _mm512_mul_ps(_mm512_mul_ps(z, _mm512_set1_ps(-1.44269504088896341f)), z));
    __m512 e = _mm512_fnmadd_ps(poly, ez, one);
    /* erf is odd: give e the sign of v */
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u));
    e = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(e), sign));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(one, e));
}

/* 16 floats -> 16 bf16, nearest even, NaN kept quiet: VCVTNEPS2BF16 where
 * the build targets AVX512_BF16 (it also flushes denormals to zero), else as
 * md_bf16_from_f32 rounds them, in integer operations. The integer path
 * gathers the halves with a word permute, not VPMOVDW, which compilers fold
 * into a store that is slow on AMD cores. */
static inline __m256i md_bf16_round16(__m512 v)
{
#if defined(__AVX512BF16__)
    return (__m256i)_mm512_cvtneps_pbh(v);
#else
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    const __m512i even = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 30, 28,
                                          26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_castsi512_si256(_mm512_permutexvar_epi16(even, r));
#endif
}
#endif
