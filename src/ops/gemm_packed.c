/* A small single-threaded SGEMM for convolution layers, C = clamp(A B + bias):
 * A (M x K, the weights) is packed once into panels of 8 rows, k-major, so
 * an 8x32 register tile of C accumulates with one broadcast of A and two
 * 16-float loads of B per k. Written with GCC/Clang vector extensions; with
 * AVX-512 (-march=native on this project's machines) each vector is one zmm
 * register, elsewhere the compiler splits it. B is read in place (row-major K
 * x N, e.g. a CHW activation for a 1x1 convolution). */
/* -std=c11 turns off a*b+c contraction; these loops want fused multiply-adds. */
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "ops/cnn_ops.h"

#include <stdlib.h>
#include <string.h>

#define MR 8
#define NR 32

typedef float vf16 __attribute__((vector_size(64)));

/* Vectors never cross a function boundary by value (that would depend on
 * the target's ABI); loads and stores go through memcpy. */
static inline vf16 *vload(vf16 *v, const float *p)
{
    memcpy(v, p, sizeof *v);
    return v;
}
#define LOAD16(p) (*vload(&(vf16){0}, (p)))
#define STORE16(p, v) memcpy((p), &(v), sizeof(vf16))

size_t md_gemm_packed_floats(int M, int K)
{
    return (size_t)((M + MR - 1) / MR) * MR * (size_t)K;
}

void md_gemm_pack_a(const float *A, int M, int K, float *packed)
{
    int panels = (M + MR - 1) / MR;
    for (int pnl = 0; pnl < panels; pnl++)
        for (int k = 0; k < K; k++)
            for (int i = 0; i < MR; i++) {
                int row = pnl * MR + i;
                packed[((size_t)pnl * K + k) * MR + i] = row < M ? A[(size_t)row * K + k] : 0.0f;
            }
}

/* tile (MR x NR, row stride NR) = a_panel (K x MR) . b (K x NR, row stride ldb) */
static void kernel_8x32(int K, const float *a, const float *b, size_t ldb, float *tile)
{
    vf16 c0[MR], c1[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        c0[i] = (vf16){0};
        c1[i] = (vf16){0};
    }
    for (int k = 0; k < K; k++) {
        vf16 b0 = LOAD16(b + (size_t)k * ldb), b1 = LOAD16(b + (size_t)k * ldb + 16);
        const float *ak = a + (size_t)k * MR;
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            vf16 ai = (vf16){0} + ak[i];
            c0[i] += ai * b0;
            c1[i] += ai * b1;
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        STORE16(tile + i * NR, c0[i]);
        STORE16(tile + i * NR + 16, c1[i]);
    }
}

static void kernel_8x16(int K, const float *a, const float *b, size_t ldb, float *tile)
{
    vf16 c0[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
        c0[i] = (vf16){0};
    for (int k = 0; k < K; k++) {
        vf16 b0 = LOAD16(b + (size_t)k * ldb);
        const float *ak = a + (size_t)k * MR;
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++)
            c0[i] += ((vf16){0} + ak[i]) * b0;
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
        STORE16(tile + i * NR, c0[i]);
}

/* Writes rows [0, rows) x cols [0, cols) of the tile to C with bias and clamp. */
static void write_tile(const float *tile, int rows, int cols, const float *bias, float lo,
                       float hi, float *c, size_t ldc)
{
    for (int i = 0; i < rows; i++) {
        float bb = bias ? bias[i] : 0.0f;
        const float *t = tile + i * NR;
        float *dst = c + (size_t)i * ldc;
        for (int j = 0; j < cols; j++) {
            float v = t[j] + bb;
            v = v < lo ? lo : v;
            dst[j] = v > hi ? hi : v;
        }
    }
}

void md_gemm_packed(int M, int N, int K, const float *packed, const float *B, size_t ldb,
                    const float *bias, float lo, float hi, float *C, size_t ldc, int n_begin,
                    int n_end)
{
    (void)N; /* columns come from [n_begin, n_end) */
    float tile[MR * NR] __attribute__((aligned(64)));
    float *bpad = NULL; /* zero-padded copy of the last columns when fewer than 16 remain */
    int panels = (M + MR - 1) / MR;
    for (int n0 = n_begin; n0 < n_end; n0 += NR) {
        int cols = n_end - n0 < NR ? n_end - n0 : NR;
        const float *b = B + n0;
        size_t bstride = ldb;
        bool narrow = cols <= 16;
        if (cols % 16 != 0) {
            /* Pad the ragged block to 16 or 32 columns. */
            int width = narrow ? 16 : NR;
            if (!bpad) {
                bpad = malloc(sizeof(float) * (size_t)K * NR);
                if (!bpad) {
                    /* plain loop fallback */
                    for (int i = 0; i < M; i++)
                        for (int j = n0; j < n0 + cols; j++) {
                            float acc = bias ? bias[i] : 0.0f;
                            for (int k = 0; k < K; k++)
                                acc += packed[((size_t)(i / MR) * K + k) * MR + i % MR] *
                                       B[(size_t)k * ldb + j];
                            acc = acc < lo ? lo : acc;
                            C[(size_t)i * ldc + j] = acc > hi ? hi : acc;
                        }
                    continue;
                }
            }
            for (int k = 0; k < K; k++) {
                memcpy(bpad + (size_t)k * width, B + (size_t)k * ldb + n0, sizeof(float) * cols);
                memset(bpad + (size_t)k * width + cols, 0, sizeof(float) * (size_t)(width - cols));
            }
            b = bpad;
            bstride = (size_t)width;
        }
        for (int pnl = 0; pnl < panels; pnl++) {
            const float *a = packed + (size_t)pnl * K * MR;
            if (narrow)
                kernel_8x16(K, a, b, bstride, tile);
            else
                kernel_8x32(K, a, b, bstride, tile);
            int rows = M - pnl * MR < MR ? M - pnl * MR : MR;
            write_tile(tile, rows, cols, bias ? bias + pnl * MR : NULL, lo, hi,
                       C + (size_t)pnl * MR * ldc + n0, ldc);
        }
    }
    free(bpad);
}
