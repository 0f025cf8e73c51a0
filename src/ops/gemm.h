/* The one matrix-product engine every network uses (DA2's linear layers and
 * attention, every convolution through conv.c, the scale CNN's fully
 * connected layers and backward passes, ONNX Gemm/MatMul).
 *
 * C (M x N) = epilogue(alpha op(A) op(B)), computed in MR x NR register tiles
 * by a microkernel chosen at run time for the CPU (AVX-512, else portable C).
 * Operands are either raw row-major matrices (packed into panels per call,
 * transposes folded into the packing), packed once (weights: reused by every
 * call, read by every thread), or "direct": read in place by the kernel (A:
 * row-major, no copy, for activations used once such as attention
 * probabilities; B: row-major, e.g. the im2col buffer of a convolution or a
 * pointwise convolution's input itself).
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

#define MD_GEMM_MR 12 /* rows of a register tile (broadcast from A) */
#define MD_GEMM_NR 32 /* columns of a register tile (two 16-float vectors of B) */

typedef enum { MD_GEMM_F32 = 0 } md_gemm_type;

/* The microkernel family (md_gemm_isa_best picks the fastest the CPU runs). */
typedef enum { MD_ISA_GENERIC = 0, MD_ISA_AVX512 = 1 } md_gemm_isa;

md_gemm_isa md_gemm_isa_best(md_gemm_type type);
const char *md_gemm_isa_name(md_gemm_isa isa);

/* An operand packed once. As A (M x K): panels of md_gemm_panel_rows(M)
 * rows, each K x mr (k-major), the last panel only as tall as the rows left,
 * so the packed matrix has exactly M*K values. As B (K x N): panels of NR
 * columns, each K x NR, the last zero-padded. */
typedef struct {
    md_gemm_type type;
    bool is_a;
    int rows, cols; /* M x K (A) or K x N (B) */
    int panel;      /* A: rows per panel; B: NR */
    float *data;
} md_gemm_packed;

/* MR, or 8 for heights that are multiples of 8 but not of MR (a CNN's 32, 64,
 * 128 ... channels fill 8-row tiles exactly instead of leaving a thin one). */
int md_gemm_panel_rows(int M);

/* Floats a packed operand holds. */
size_t md_gemm_packed_floats(bool is_a, int rows, int cols);
/* Packs op(src) (trans: src is stored transposed, ld its row stride) into
 * dst, which holds md_gemm_packed_floats floats and may not overlap src. */
void md_gemm_pack_a_into(float *dst, const float *src, size_t ld, bool trans, int M, int K);
void md_gemm_pack_b_into(float *dst, const float *src, size_t ld, bool trans, int K, int N);
/* The same into a new 64-byte aligned buffer; false when out of memory. */
bool md_gemm_pack_a(md_gemm_packed *p, const float *src, size_t ld, bool trans, int M, int K);
bool md_gemm_pack_b(md_gemm_packed *p, const float *src, size_t ld, bool trans, int K, int N);
/* Describes memory packed by md_gemm_pack_*_into (not owned). */
md_gemm_packed md_gemm_packed_view(float *data, bool is_a, int rows, int cols);
void md_gemm_packed_free(md_gemm_packed *p);

typedef enum { MD_OPERAND_RAW = 0, MD_OPERAND_PACKED = 1, MD_OPERAND_DIRECT = 2 } md_operand_kind;

typedef struct {
    md_operand_kind kind;
    const float *data; /* raw / direct */
    size_t ld;         /* raw: row stride of the stored matrix; direct: row stride (% NR == 0) */
    bool trans;        /* raw: stored transposed */
    const md_gemm_packed *packed;
} md_gemm_operand;

static inline md_gemm_operand md_gemm_raw(const float *data, size_t ld, bool trans)
{
    md_gemm_operand o = {MD_OPERAND_RAW, data, ld, trans, NULL};
    return o;
}
static inline md_gemm_operand md_gemm_prepacked(const md_gemm_packed *p)
{
    md_gemm_operand o = {MD_OPERAND_PACKED, NULL, 0, false, p};
    return o;
}
/* Read in place, row-major with row stride ld (M x K as A, K x N as B).
 * alpha must be 1 unless the other operand is raw. */
static inline md_gemm_operand md_gemm_direct(const float *data, size_t ld)
{
    md_gemm_operand o = {MD_OPERAND_DIRECT, data, ld, false, NULL};
    return o;
}

/* Applied to each element of the product P = alpha op(A) op(B), in order:
 *   v = P + beta * C (C is not read when beta == 0)
 *   v += bias_row[i] + bias_col[j]; v *= row_scale[i]; v = clamp(v, lo, hi)
 *   (NaN stays NaN); v += add[i * ld_add + j]; C = v.
 * Pointers may be NULL. */
typedef struct {
    float beta;
    const float *bias_row, *bias_col, *row_scale;
    float lo, hi;
    const float *add;
    size_t ld_add;
} md_gemm_epilogue;

static inline md_gemm_epilogue md_gemm_epilogue_none(void)
{
    md_gemm_epilogue e = {0.0f, NULL, NULL, NULL, -INFINITY, INFINITY, NULL, 0};
    return e;
}

/* C (row stride ldc) = epilogue(alpha op(A) op(B)), op(A) M x K, op(B) K x N,
 * split over pool's workers (pool may be NULL: this thread only). alpha != 1
 * needs a raw operand to fold it into. e may be NULL (plain product). */
void md_gemm(md_threadpool *pool, int M, int N, int K, float alpha, md_gemm_operand A,
             md_gemm_operand B, float *C, size_t ldc, const md_gemm_epilogue *e);

/* Rows [m0, m1) x columns [n0, n1) of that product on this thread, with the
 * given kernels (tests run every ISA the CPU has). m0 must be a multiple of
 * MR when A is packed, n0 of NR when B is packed or direct. */
void md_gemm_block(md_gemm_isa isa, int M, int N, int K, float alpha, md_gemm_operand A,
                   md_gemm_operand B, float *C, size_t ldc, const md_gemm_epilogue *e, int m0,
                   int m1, int n0, int n1);

/* Row-major C = alpha op(A) op(B) + beta C (the BLAS sgemm contract). */
void md_sgemm(md_threadpool *pool, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
