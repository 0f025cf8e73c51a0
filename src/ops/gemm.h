/* The one matrix-product engine every network uses (DA2's linear layers and
 * attention, every convolution through conv.c, the scale CNN's fully
 * connected layers and backward passes, ONNX Gemm/MatMul).
 *
 * C (M x N, float32) = epilogue(alpha op(A) op(B)), computed in MR x NR
 * register tiles by a microkernel chosen at run time for the CPU, in one of
 * two arithmetic types:
 *   - float32: AVX-512 FMA kernels, else portable C;
 *   - bfloat16 operands with float32 accumulation (each product of two bf16
 *     values is exact in float32): AVX512_BF16's VDPBF16PS where the CPU has
 *     it, else a portable emulation that rounds the same way (slow: for
 *     correctness on any machine, not for speed).
 * Operands are raw float32 row-major matrices (packed, and for bf16 rounded
 * to nearest-even, per call; transposes folded into the packing), packed once
 * (weights: reused by every call, read by every thread), or "direct": read in
 * place by the kernel (A: row-major rows, float32 or, for bf16, bf16 values;
 * B: float32 row-major, e.g. the im2col buffer of a convolution).
 *
 * Determinism: every element of C is one dot product summed in a fixed order
 * (K split into fixed blocks, independent of the thread count and of how rows
 * and columns are shared out), so any number of threads gives the same bits. */
#ifndef MD_OPS_GEMM_H
#define MD_OPS_GEMM_H

#include "metricdepth.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MD_GEMM_MR 12 /* rows of a register tile (broadcast from A) */
#define MD_GEMM_NR 32 /* columns of a register tile (two 16-float vectors of B) */

typedef enum { MD_GEMM_F32 = 0, MD_GEMM_BF16 = 1 } md_gemm_type;

/* The microkernel families. */
typedef enum {
    MD_ISA_GENERIC = 0,    /* portable C, float32 */
    MD_ISA_AVX512 = 1,     /* AVX-512 FMA, float32 */
    MD_ISA_BF16_EMU = 2,   /* portable C emulating bf16 dot products */
    MD_ISA_AVX512_BF16 = 3 /* AVX512_BF16 VDPBF16PS */
} md_gemm_isa;

/* The fastest family for this type on this CPU. */
md_gemm_isa md_gemm_isa_best(md_gemm_type type);
md_gemm_type md_gemm_isa_type(md_gemm_isa isa);
const char *md_gemm_isa_name(md_gemm_isa isa);

/* float32 -> bfloat16, round to nearest even (NaN stays NaN). */
static inline uint16_t md_bf16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static inline float md_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* dst[i] = bf16(src[i]) for n values (vectorised where the CPU converts). */
void md_f32_to_bf16(const float *src, uint16_t *dst, size_t n);

/* An operand packed once. As A (M x K): panels of md_gemm_panel_rows(M)
 * rows, the last only as tall as the rows left; float32 panels are K x mr
 * (k-major), bf16 panels ceil(K/2) x mr pairs of consecutive k. As B (K x N):
 * panels of NR columns (the last zero-padded), K x NR, or ceil(K/2) x NR
 * pairs. */
typedef struct {
    md_gemm_type type;
    bool is_a;
    int rows, cols; /* M x K (A) or K x N (B) */
    int panel;      /* A: rows per panel; B: NR */
    void *data;
} md_gemm_packed;

/* MR, or 8 for heights that are multiples of 8 but not of MR (a CNN's 32, 64,
 * 128 ... channels fill 8-row tiles exactly instead of leaving a thin one). */
int md_gemm_panel_rows(int M);
/* Bytes a packed operand holds. */
size_t md_gemm_packed_bytes(md_gemm_type type, bool is_a, int rows, int cols);
/* Packs op(src) (trans: src is stored transposed, ld its row stride; float32)
 * into dst, which holds md_gemm_packed_bytes and may not overlap src. */
void md_gemm_pack_a_into(md_gemm_type type, void *dst, const float *src, size_t ld, bool trans,
                         int M, int K);
void md_gemm_pack_b_into(md_gemm_type type, void *dst, const float *src, size_t ld, bool trans,
                         int K, int N);
/* The same into a new 64-byte aligned buffer; false when out of memory. */
bool md_gemm_pack_a(md_gemm_packed *p, md_gemm_type type, const float *src, size_t ld,
                    bool trans, int M, int K);
bool md_gemm_pack_b(md_gemm_packed *p, md_gemm_type type, const float *src, size_t ld,
                    bool trans, int K, int N);
/* Packs the A operand (M x K) whose element (m, k) is get(ctx, m, k) (for
 * layouts no stride describes, e.g. a convolution's permuted weights). */
void md_gemm_pack_a_fn(md_gemm_type type, void *dst, int M, int K,
                       float (*get)(const void *ctx, int m, int k), const void *ctx);
/* Describes memory packed by md_gemm_pack_*_into (not owned). */
md_gemm_packed md_gemm_packed_view(md_gemm_type type, void *data, bool is_a, int rows, int cols);
void md_gemm_packed_free(md_gemm_packed *p);

typedef enum {
    MD_OPERAND_RAW = 0,
    MD_OPERAND_PACKED = 1,
    MD_OPERAND_DIRECT = 2,
    MD_OPERAND_OFFSETS = 3
} md_operand_kind;

typedef struct {
    md_operand_kind kind;
    const void *data; /* raw: float32; direct: the product's type (A) or float32 (B) */
    size_t ld;        /* row stride of the stored matrix, in elements */
    bool trans;       /* raw: stored transposed */
    const md_gemm_packed *packed;
    const int32_t *koff; /* offsets */
} md_gemm_operand;

static inline md_gemm_operand md_gemm_raw(const float *data, size_t ld, bool trans)
{
    md_gemm_operand o = {MD_OPERAND_RAW, data, ld, trans, NULL, NULL};
    return o;
}
static inline md_gemm_operand md_gemm_prepacked(const md_gemm_packed *p)
{
    md_gemm_operand o = {MD_OPERAND_PACKED, NULL, 0, false, p, NULL};
    return o;
}
/* Read in place, row-major with row stride ld (M x K as A, K x N as B). A
 * bf16 product reads an A of bf16 values (ld even) and takes no direct B.
 * alpha must be 1 unless the other operand is raw. */
static inline md_gemm_operand md_gemm_direct(const void *data, size_t ld)
{
    md_gemm_operand o = {MD_OPERAND_DIRECT, data, ld, false, NULL, NULL};
    return o;
}
/* B read through a table of row offsets: B(k, n) = data[koff[k] + n]
 * (float32; for a bf16 product, data holds 32-bit pairs of bf16 values for
 * k = 2j, 2j + 1 and koff[j] indexes them). A must be packed or raw. The
 * convolution driver's implicit GEMM: row k is one tap of one channel of a
 * padded band of input rows, column n an output pixel. Reads may run up to
 * a full tile (NR columns) past the last column. */
static inline md_gemm_operand md_gemm_offsets(const void *data, const int32_t *koff)
{
    md_gemm_operand o = {MD_OPERAND_OFFSETS, data, 0, false, NULL, koff};
    return o;
}

/* Applied to each element of the product P = alpha op(A) op(B), in order:
 *   v = P + beta * C (C is not read when beta == 0)
 *   v += bias_row[i] + bias_col[j]; v *= row_scale[i]; v = gelu(v) when
 *   gelu (exact-erf GELU, vmath.h); v = clamp(v, lo, hi) (NaN stays NaN);
 *   v += add[i * ld_add + j]; then C = v, or with out16, out16[i * ld16 + j]
 *   = bf16(v) instead (C then only holds the partial sums of K blocks, so
 *   it must still be given). Pointers may be NULL. */
typedef struct {
    float beta;
    const float *bias_row, *bias_col, *row_scale;
    float lo, hi;
    const float *add;
    size_t ld_add;
    bool gelu;
    uint16_t *out16;
    size_t ld16;
} md_gemm_epilogue;

static inline md_gemm_epilogue md_gemm_epilogue_none(void)
{
    md_gemm_epilogue e = {0.0f, NULL, NULL, NULL, -INFINITY, INFINITY, NULL, 0, false, NULL, 0};
    return e;
}

/* C (row stride ldc) = epilogue(alpha op(A) op(B)), op(A) M x K, op(B) K x N,
 * in type's arithmetic (packed operands must be of that type), split over
 * pool's workers (pool may be NULL: this thread only). alpha != 1 needs a raw
 * operand to fold it into. e may be NULL (plain product). */
void md_gemm(md_threadpool *pool, md_gemm_type type, int M, int N, int K, float alpha,
             md_gemm_operand A, md_gemm_operand B, float *C, size_t ldc,
             const md_gemm_epilogue *e);

/* Rows [m0, m1) x columns [n0, n1) of that product on this thread, with the
 * given kernel family (which fixes the type; tests run every family the CPU
 * has). m0 must be a multiple of the panel height when A is packed, n0 of NR
 * when B is packed. */
void md_gemm_block(md_gemm_isa isa, int M, int N, int K, float alpha, md_gemm_operand A,
                   md_gemm_operand B, float *C, size_t ldc, const md_gemm_epilogue *e, int m0,
                   int m1, int n0, int n1);

/* dst[i] = (bf16(r1[i]) << 16) | bf16(r0[i]): two rows as bf16 pairs. */
void md_bf16_pairs(const float *r0, const float *r1, uint32_t *dst, size_t n);

/* Row-major float32 C = alpha op(A) op(B) + beta C (the BLAS sgemm contract). */
void md_sgemm(md_threadpool *pool, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
