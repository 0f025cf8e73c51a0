/* The matrix-product engine: see gemm.h. Loop nest after Goto and van de
 * Geijn ("Anatomy of high-performance matrix multiplication", 2008): for each
 * block of NC columns and KC inner indices, B's panels are packed once (L2);
 * for each block of MC rows, A's panels are packed (L2); the microkernel runs
 * an MR x NR tile from one A panel and one B panel, the B panel reused across
 * the A panels. Operands packed once (weights) or read in place skip their
 * packing.
 *
 * Units: a float32 kernel steps k one at a time; a bf16 kernel one pair
 * (k, k+1) at a time (VDPBF16PS multiplies pairs), so bf16 panels store pairs
 * of consecutive k side by side and K blocks have even lengths. */
#include "ops/gemm.h"

#include "base/pool.h"
#include "ops/cpu.h"
#include "ops/simd.h"
#include "ops/vmath.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MR MD_GEMM_MR
#define NR MD_GEMM_NR
/* K up to KC_SINGLE runs as one block (accumulators stay in registers),
 * longer K in blocks of KC_BLOCK (fixed by K alone: determinism). The bf16
 * sizes hold the same bytes. */
#define KC_SINGLE 1024
#define KC_BLOCK 512
#define MC_BLOCK (12 * MR)
#define TAIL_MAX 4 /* columns past a multiple of 16 that avx512_tail_cols takes */
#define NC_BLOCK (16 * NR)

/* How a tile is finished: see md_gemm_epilogue. */
typedef struct {
    bool accumulate; /* C += product (a later K block) */
    float beta;      /* first block: C = product + beta C (0: C not read) */
    bool last;
    const float *bias_row, *bias_col, *row_scale; /* offset to the tile */
    bool clamp;
    float lo, hi;
    const float *add;
    size_t ld_add;
    bool gelu;
    uint16_t *out16; /* offset to the tile; NULL: C */
    size_t ld16;
} tile_epi;

/* kc: k steps (float32) or pairs (bf16). a: a packed panel (mr values or
 * pairs per step) when lda == 0, else row i at a + i * lda (same units). b:
 * row k at b + koff[k] when koff is given, else rows ldb apart. */
typedef void (*kernel_fn)(int kc, const void *a, size_t lda, const void *b, size_t ldb,
                          const int32_t *koff, float *c, size_t ldc, int nr, const tile_epi *e);
enum { K_PACKED = 0, K_DIRECT_A = 1, K_OFFSET_B = 2, K_MODES = 3 };

static inline float finish(float v, float old, int i, int j, const tile_epi *e)
{
    if (e->accumulate)
        v += old;
    else if (e->beta != 0.0f)
        v += e->beta * old;
    if (!e->last)
        return v;
    if (e->bias_row)
        v += e->bias_row[i];
    if (e->bias_col)
        v += e->bias_col[j];
    if (e->row_scale)
        v *= e->row_scale[i];
    if (e->gelu)
        v = md_gelu_scalar(v);
    if (e->clamp) {
        v = v < e->lo ? e->lo : v;
        v = v > e->hi ? e->hi : v;
    }
    if (e->add)
        v += e->add[(size_t)i * e->ld_add + (size_t)j];
    return v;
}

/* Element (i, j) of the tile whose C is at c: to C, or to out16 when this
 * is the last K block of a product that wants bf16. */
static inline void store(float v, float *c, int i, int j, size_t ldc, const tile_epi *e)
{
    if (e->last && e->out16)
        e->out16[(size_t)i * e->ld16 + (size_t)j] = md_bf16_from_f32(v);
    else
        c[(size_t)i * ldc + (size_t)j] = v;
}

/* The epilogue of the tile (or element) at (row, col): its pointers offset
 * there. accumulate: a later K block; last: the last one. */
static inline tile_epi epi_at(const md_gemm_epilogue *ge, size_t row, size_t col, bool accumulate,
                              bool last)
{
    tile_epi te = {accumulate,
                   ge->beta,
                   last,
                   ge->bias_row ? ge->bias_row + row : NULL,
                   ge->bias_col ? ge->bias_col + col : NULL,
                   ge->row_scale ? ge->row_scale + row : NULL,
                   ge->lo > -INFINITY || ge->hi < INFINITY,
                   ge->lo,
                   ge->hi,
                   ge->add ? ge->add + row * ge->ld_add + col : NULL,
                   ge->ld_add,
                   ge->gelu,
                   ge->out16 ? ge->out16 + row * ge->ld16 + col : NULL,
                   ge->ld16};
    return te;
}

static void write_tile(float acc[MR][NR], int mr, float *c, size_t ldc, int nr,
                       const tile_epi *e)
{
    bool read = e->accumulate || e->beta != 0.0f;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float *p = c + (size_t)i * ldc + (size_t)j;
            store(finish(acc[i][j], read ? *p : 0.0f, i, j, e), c, i, j, ldc, e);
        }
}

/* ------------------------------------------------------- portable kernels */

static void kernel_generic(int mr, int kc, const void *av, size_t lda, const void *bv,
                           size_t ldb, const int32_t *koff, float *c, size_t ldc, int nr,
                           const tile_epi *e)
{
    const float *a = av, *b = bv;
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    size_t rs = lda ? lda : 1, ks = lda ? 1 : (size_t)mr;
    for (int k = 0; k < kc; k++) {
        const float *bk = koff ? b + koff[k] : b + (size_t)k * ldb, *ak = a + (size_t)k * ks;
        for (int i = 0; i < mr; i++) {
            float ai = ak[(size_t)i * rs];
            for (int j = 0; j < nr; j++)
                acc[i][j] += ai * bk[j];
        }
    }
    write_tile(acc, mr, c, ldc, nr, e);
}

/* VDPBF16PS's arithmetic: per pair, acc += a1 b1, then acc += a0 b0, each
 * product exact in float32 and each sum rounded. */
static void kernel_bf16_emu(int mr, int kc, const void *av, size_t lda, const void *bv,
                            size_t ldb, const int32_t *koff, float *c, size_t ldc, int nr,
                            const tile_epi *e)
{
    const uint16_t *a = av, *b = bv;
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    size_t rs = lda ? 2 * lda : 2, ks = lda ? 2 : 2 * (size_t)mr;
    for (int k = 0; k < kc; k++) {
        const uint16_t *bk = koff ? b + 2 * (size_t)koff[k] : b + 2 * (size_t)k * ldb;
        const uint16_t *ak = a + (size_t)k * ks;
        for (int i = 0; i < mr; i++) {
            float a0 = md_bf16_to_f32(ak[(size_t)i * rs]), a1 = md_bf16_to_f32(ak[(size_t)i * rs + 1]);
            for (int j = 0; j < nr; j++) {
                float t = fmaf(a1, md_bf16_to_f32(bk[2 * j + 1]), acc[i][j]);
                acc[i][j] = fmaf(a0, md_bf16_to_f32(bk[2 * j]), t);
            }
        }
    }
    write_tile(acc, mr, c, ldc, nr, e);
}

#define PORTABLE_MR(NAME, FN, R)                                                               \
    static void NAME##_##R(int kc, const void *a, size_t lda, const void *b, size_t ldb,       \
                           const int32_t *koff, float *c, size_t ldc, int nr,                  \
                           const tile_epi *e)                                                  \
    {                                                                                          \
        FN(R, kc, a, lda, b, ldb, koff, c, ldc, nr, e);                                        \
    }
#define PORTABLE_ALL(NAME, FN)                                                                 \
    PORTABLE_MR(NAME, FN, 1)                                                                   \
    PORTABLE_MR(NAME, FN, 2)                                                                   \
    PORTABLE_MR(NAME, FN, 3)                                                                   \
    PORTABLE_MR(NAME, FN, 4)                                                                   \
    PORTABLE_MR(NAME, FN, 5)                                                                   \
    PORTABLE_MR(NAME, FN, 6)                                                                   \
    PORTABLE_MR(NAME, FN, 7)                                                                   \
    PORTABLE_MR(NAME, FN, 8)                                                                   \
    PORTABLE_MR(NAME, FN, 9)                                                                   \
    PORTABLE_MR(NAME, FN, 10)                                                                  \
    PORTABLE_MR(NAME, FN, 11)                                                                  \
    PORTABLE_MR(NAME, FN, 12)
PORTABLE_ALL(kgen, kernel_generic)
PORTABLE_ALL(kemu, kernel_bf16_emu)
/* [mode][mr]: the portable kernels take every mode */
#define TABLE_ROW(P)                                                                           \
    {NULL, P##_1, P##_2, P##_3, P##_4, P##_5, P##_6, P##_7, P##_8, P##_9, P##_10, P##_11, P##_12}
static const kernel_fn generic_kernels[K_MODES][MR + 1] = {TABLE_ROW(kgen), TABLE_ROW(kgen),
                                                           TABLE_ROW(kgen)};
static const kernel_fn emu_kernels[K_MODES][MR + 1] = {TABLE_ROW(kemu), TABLE_ROW(kemu),
                                                       TABLE_ROW(kemu)};

/* -------------------------------------------------------- x86 kernels */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MD_X86_KERNELS 1
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
#endif

#define MD_VMATH_AVX512 1
#include "ops/vmath.h"

/* A tile's rows c0[i], c1[i] (columns 0-15, 16-31, in registers) finished
 * as e says, in md_gemm_epilogue's order. Each option is tested once per
 * tile: testing them once per row (a dozen loads and branches per row) cost
 * an attention head 6 % (bf16) and 3.5 % (fp32), whole networks 1-3 %
 * (paired runs, Zen 5). with_gelu: compiled in only for the shared
 * out-of-line copy below (GELU is long, and only fc1 uses it). */
#define TILE_FINISH(c0, c1, mr, c, ldc, m0, m1, e, with_gelu)                                  \
    do {                                                                                       \
        if ((e)->accumulate) {                                                                 \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                const float *ci_ = (c) + (size_t)i_ * (ldc);                                   \
                (c0)[i_] = _mm512_add_ps((c0)[i_], _mm512_maskz_loadu_ps((m0), ci_));          \
                (c1)[i_] = _mm512_add_ps((c1)[i_], _mm512_maskz_loadu_ps((m1), ci_ + 16));     \
            }                                                                                  \
        } else if ((e)->beta != 0.0f) {                                                        \
            __m512 bt_ = _mm512_set1_ps((e)->beta);                                            \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                const float *ci_ = (c) + (size_t)i_ * (ldc);                                   \
                (c0)[i_] = _mm512_fmadd_ps(bt_, _mm512_maskz_loadu_ps((m0), ci_), (c0)[i_]);   \
                (c1)[i_] =                                                                     \
                    _mm512_fmadd_ps(bt_, _mm512_maskz_loadu_ps((m1), ci_ + 16), (c1)[i_]);     \
            }                                                                                  \
        }                                                                                      \
        if ((e)->last && (e)->bias_row) {                                                      \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                __m512 b_ = _mm512_set1_ps((e)->bias_row[i_]);                                 \
                (c0)[i_] = _mm512_add_ps((c0)[i_], b_);                                        \
                (c1)[i_] = _mm512_add_ps((c1)[i_], b_);                                        \
            }                                                                                  \
        }                                                                                      \
        if ((e)->last && (e)->bias_col) {                                                      \
            __m512 b0_ = _mm512_maskz_loadu_ps((m0), (e)->bias_col);                           \
            __m512 b1_ = _mm512_maskz_loadu_ps((m1), (e)->bias_col + 16);                      \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                (c0)[i_] = _mm512_add_ps((c0)[i_], b0_);                                       \
                (c1)[i_] = _mm512_add_ps((c1)[i_], b1_);                                       \
            }                                                                                  \
        }                                                                                      \
        if ((e)->last && (e)->row_scale) {                                                     \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                __m512 s_ = _mm512_set1_ps((e)->row_scale[i_]);                                \
                (c0)[i_] = _mm512_mul_ps((c0)[i_], s_);                                        \
                (c1)[i_] = _mm512_mul_ps((c1)[i_], s_);                                        \
            }                                                                                  \
        }                                                                                      \
        if ((with_gelu) && (e)->last && (e)->gelu) {                                           \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                (c0)[i_] = md_gelu512((c0)[i_]);                                               \
                (c1)[i_] = md_gelu512((c1)[i_]);                                               \
            }                                                                                  \
        }                                                                                      \
        if ((e)->last && (e)->clamp) {                                                         \
            /* max/min return their second operand when either is NaN */                      \
            __m512 lo_ = _mm512_set1_ps((e)->lo), hi_ = _mm512_set1_ps((e)->hi);               \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                (c0)[i_] = _mm512_min_ps(hi_, _mm512_max_ps(lo_, (c0)[i_]));                   \
                (c1)[i_] = _mm512_min_ps(hi_, _mm512_max_ps(lo_, (c1)[i_]));                   \
            }                                                                                  \
        }                                                                                      \
        if ((e)->last && (e)->add) {                                                           \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                const float *ad_ = (e)->add + (size_t)i_ * (e)->ld_add;                        \
                (c0)[i_] = _mm512_add_ps((c0)[i_], _mm512_maskz_loadu_ps((m0), ad_));          \
                (c1)[i_] = _mm512_add_ps((c1)[i_], _mm512_maskz_loadu_ps((m1), ad_ + 16));     \
            }                                                                                  \
        }                                                                                      \
        if ((e)->last && (e)->out16) {                                                         \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                uint16_t *o_ = (e)->out16 + (size_t)i_ * (e)->ld16;                            \
                _mm256_mask_storeu_epi16(o_, (m0), md_bf16_round16((c0)[i_]));                 \
                _mm256_mask_storeu_epi16(o_ + 16, (m1), md_bf16_round16((c1)[i_]));            \
            }                                                                                  \
        } else {                                                                               \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                _mm512_mask_storeu_ps((c) + (size_t)i_ * (ldc), (m0), (c0)[i_]);               \
                _mm512_mask_storeu_ps((c) + (size_t)i_ * (ldc) + 16, (m1), (c1)[i_]);          \
            }                                                                                  \
        }                                                                                      \
    } while (0)

/* Tiles whose epilogue has a GELU: one shared copy, fed from memory
 * (passing the accumulators' addresses would keep them out of registers in
 * every kernel). */
static __attribute__((noinline)) void avx512_tile_out_gelu(const float *acc, int mr, float *c,
                                                           size_t ldc, __mmask16 m0,
                                                           __mmask16 m1, const tile_epi *e)
{
    __m512 c0[MR], c1[MR];
    for (int i = 0; i < mr; i++) {
        c0[i] = _mm512_load_ps(acc + i * NR);
        c1[i] = _mm512_load_ps(acc + i * NR + 16);
    }
    TILE_FINISH(c0, c1, mr, c, ldc, m0, m1, e, true);
}

#define TILE_OUT(c0, c1, mr, c, ldc, m0, m1, e)                                                \
    do {                                                                                       \
        if ((e)->last && (e)->gelu) {                                                          \
            float buf_[MR * NR] __attribute__((aligned(64)));                                  \
            _Pragma("GCC unroll 12") for (int i_ = 0; i_ < (mr); i_++)                         \
            {                                                                                  \
                _mm512_store_ps(buf_ + i_ * NR, (c0)[i_]);                                     \
                _mm512_store_ps(buf_ + i_ * NR + 16, (c1)[i_]);                                \
            }                                                                                  \
            avx512_tile_out_gelu(buf_, (mr), (c), (ldc), (m0), (m1), (e));                     \
        } else {                                                                               \
            TILE_FINISH(c0, c1, mr, c, ldc, m0, m1, e, false);                                 \
        }                                                                                      \
    } while (0)

static inline __attribute__((always_inline)) void tile_masks(int nr, __mmask16 *m0,
                                                              __mmask16 *m1)
{
    *m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1u);
    *m1 = nr >= 32 ? (__mmask16)0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1u) : 0;
}

/* Prefetches the line at the start of each of mr rows ld_bytes apart, and
 * the line after it when wide (a tile of more than 16 float columns). */
static inline __attribute__((always_inline)) void prefetch_rows(const void *p, size_t ld_bytes,
                                                                 int mr, bool wide)
{
    for (int i = 0; i < mr; i++) {
        const char *r = (const char *)p + (size_t)i * ld_bytes;
        _mm_prefetch(r, _MM_HINT_T0);
        if (wide)
            _mm_prefetch(r + 64, _MM_HINT_T0);
    }
}

/* Asks for the lines the tile will write (and an epilogue's addend) before
 * its k loop, so their misses overlap the products instead of stalling the
 * tile's stores: a 1814-row product writes C once, from no cache. Depth
 * Anything V2 0.97-0.98x the time (paired, Zen 4), FastDepth unchanged. */
static inline __attribute__((always_inline)) void tile_prefetch(int mr, const float *c,
                                                                 size_t ldc, int nr,
                                                                 const tile_epi *e)
{
    if (e->last && e->out16) /* 32 bf16 values: one line */
        prefetch_rows(e->out16, e->ld16 * sizeof(uint16_t), mr, false);
    else
        prefetch_rows(c, ldc * sizeof(float), mr, nr > 16);
    if (e->last && e->add)
        prefetch_rows(e->add, e->ld_add * sizeof(float), mr, nr > 16);
}

/* direct: row i of A at a + i * lda (one stream per row), else a packed
 * panel (mr values per k, one stream). */
static inline __attribute__((always_inline)) void
kernel_avx512(const int mr, const int mode, int kc, const float *a, size_t lda, const float *b,
              size_t ldb, const int32_t *koff, float *c, size_t ldc, int nr, const tile_epi *e)
{
    const bool direct = mode == K_DIRECT_A, boff = mode == K_OFFSET_B;
    __m512 c0[MR], c1[MR];
    const float *ar[MR];
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        c0[i] = _mm512_setzero_ps();
        c1[i] = _mm512_setzero_ps();
        ar[i] = a + (size_t)i * lda;
    }
    /* Columns past nr are neither read nor written: B and C may end there. */
    __mmask16 m0, m1;
    tile_masks(nr, &m0, &m1);
    tile_prefetch(mr, c, ldc, nr, e);
    /* Full tiles load B unmasked (the common case, kept apart). */
#define KERNEL_LOOP(LOAD0, LOAD1)                                                              \
    for (int k = 0; k < kc; k++) {                                                             \
        const float *bk = boff ? b + koff[k] : b;                                              \
        __m512 b0 = LOAD0, b1 = LOAD1;                                                         \
        _Pragma("GCC unroll 12") for (int i = 0; i < mr; i++)                                  \
        {                                                                                      \
            __m512 ai = _mm512_set1_ps(direct ? ar[i][k] : a[i]);                              \
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);                                            \
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);                                            \
        }                                                                                      \
        if (!direct)                                                                           \
            a += mr;                                                                           \
        if (!boff)                                                                             \
            b += ldb;                                                                          \
    }
    if (nr == NR) {
        KERNEL_LOOP(_mm512_loadu_ps(bk), _mm512_loadu_ps(bk + 16))
    } else if (nr <= 16) {
        /* A narrow last panel (196 pixels = 6 x 32 + 4) needs half the
         * multiply-adds: FastDepth 0.97-0.99x the time (paired, Zen 5). */
        for (int k = 0; k < kc; k++) {
            __m512 b0 = _mm512_maskz_loadu_ps(m0, boff ? b + koff[k] : b);
#pragma GCC unroll 12
            for (int i = 0; i < mr; i++)
                c0[i] = _mm512_fmadd_ps(_mm512_set1_ps(direct ? ar[i][k] : a[i]), b0, c0[i]);
            if (!direct)
                a += mr;
            if (!boff)
                b += ldb;
        }
    } else {
        KERNEL_LOOP(_mm512_maskz_loadu_ps(m0, bk), _mm512_maskz_loadu_ps(m1, bk + 16))
    }
#undef KERNEL_LOOP
    TILE_OUT(c0, c1, mr, c, ldc, m0, m1, e);
}

#define KERNEL_ARGS                                                                            \
    int kc, const void *a, size_t lda, const void *b, size_t ldb, const int32_t *koff, float *c, \
        size_t ldc, int nr, const tile_epi *e
#define AVX512_MR(R)                                                                           \
    static void kf32_##R(KERNEL_ARGS)                                                          \
    {                                                                                          \
        kernel_avx512(R, K_PACKED, kc, a, lda, b, ldb, koff, c, ldc, nr, e);                   \
    }                                                                                          \
    static void kf32d_##R(KERNEL_ARGS)                                                         \
    {                                                                                          \
        kernel_avx512(R, K_DIRECT_A, kc, a, lda, b, ldb, koff, c, ldc, nr, e);                 \
    }                                                                                          \
    static void kf32o_##R(KERNEL_ARGS)                                                         \
    {                                                                                          \
        kernel_avx512(R, K_OFFSET_B, kc, a, lda, b, ldb, koff, c, ldc, nr, e);                 \
    }
AVX512_MR(1)
AVX512_MR(2)
AVX512_MR(3)
AVX512_MR(4)
AVX512_MR(5)
AVX512_MR(6)
AVX512_MR(7)
AVX512_MR(8)
AVX512_MR(9)
AVX512_MR(10)
AVX512_MR(11)
AVX512_MR(12)

/* The last 1-4 columns of a panel 16 q + 1..4 wide, as matrix-vector
 * products over the packed A panel (element (k, i) at a[k * mr + i]): rows
 * in lanes, one multiply-add per column and k, where a tile pays a whole
 * vector per row whatever the columns it holds (FastDepth's 7x7 layers:
 * 49 = 32 + 16 + 1 columns; its 14x14 ones: 196 = 6 x 32 + 4). Each sum
 * takes the tile kernel's products in its order from zero, and the
 * epilogue is TILE_FINISH's operations lane by lane: the same bits.
 * FastDepth fp32 0.980x the time on one thread, 0.982x on two (paired,
 * Zen 4). */
static inline __attribute__((always_inline)) void
tail_sums(const int nt, int mr, int kc, const float *a, const float *b, size_t ldb, __m512 *acc)
{
    const __mmask16 m = (__mmask16)((1u << mr) - 1u);
    __m512 s[TAIL_MAX];
    for (int t = 0; t < nt; t++)
        s[t] = _mm512_setzero_ps();
    /* whole loads while they stay inside the panel (lanes past mr read the
     * next k's values, unused), masked ones after: masked loads in every
     * step are slow */
    int kw = kc - (16 + mr - 1) / mr; /* k <= kw: k mr + 16 <= kc mr */
    for (int k = 0; k < kc; k++) {
        const float *ak = a + (size_t)k * mr;
        __m512 av = k <= kw ? _mm512_loadu_ps(ak) : _mm512_maskz_loadu_ps(m, ak);
        const float *bk = b + (size_t)k * ldb;
        for (int t = 0; t < nt; t++)
            s[t] = _mm512_fmadd_ps(av, _mm512_set1_ps(bk[t]), s[t]);
    }
    for (int t = 0; t < nt; t++)
        acc[t] = s[t];
}

static void avx512_tail_cols(int mr, int kc, const float *a, const float *b, size_t ldb, int nt,
                             float *c, size_t ldc, const tile_epi *e)
{
    const __mmask16 m = (__mmask16)((1u << mr) - 1u);
    __m512 acc[TAIL_MAX];
    switch (nt) { /* each count its own loop: the sums stay in registers */
    case 1: tail_sums(1, mr, kc, a, b, ldb, acc); break;
    case 2: tail_sums(2, mr, kc, a, b, ldb, acc); break;
    case 3: tail_sums(3, mr, kc, a, b, ldb, acc); break;
    default: tail_sums(4, mr, kc, a, b, ldb, acc); break;
    }
    float lanes[16];
    for (int t = 0; t < nt; t++) {
        __m512 v = acc[t];
        if (e->accumulate || e->beta != 0.0f) {
            for (int i = 0; i < mr; i++)
                lanes[i] = c[(size_t)i * ldc + (size_t)t];
            __m512 old = _mm512_maskz_loadu_ps(m, lanes);
            v = e->accumulate ? _mm512_add_ps(v, old)
                              : _mm512_fmadd_ps(_mm512_set1_ps(e->beta), old, v);
        }
        if (e->last && e->bias_row)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, e->bias_row));
        if (e->last && e->bias_col)
            v = _mm512_add_ps(v, _mm512_set1_ps(e->bias_col[t]));
        if (e->last && e->row_scale)
            v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, e->row_scale));
        if (e->last && e->gelu)
            v = md_gelu512(v);
        if (e->last && e->clamp)
            v = _mm512_min_ps(_mm512_set1_ps(e->hi), _mm512_max_ps(_mm512_set1_ps(e->lo), v));
        if (e->last && e->add) {
            for (int i = 0; i < mr; i++)
                lanes[i] = e->add[(size_t)i * e->ld_add + (size_t)t];
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, lanes));
        }
        if (e->last && e->out16) {
            uint16_t h[16];
            _mm256_storeu_si256((__m256i *)h, md_bf16_round16(v));
            for (int i = 0; i < mr; i++)
                e->out16[(size_t)i * e->ld16 + (size_t)t] = h[i];
        } else {
            _mm512_storeu_ps(lanes, v);
            for (int i = 0; i < mr; i++)
                c[(size_t)i * ldc + (size_t)t] = lanes[i];
        }
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(                                                                  \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma"))),                  \
    apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")
#endif

/* The same tile from pairs: one 32-bit broadcast of A's (k, k+1) pair, one
 * VDPBF16PS per 16 columns adds both products. B panels are zero-padded, so
 * bf16 tiles load B unmasked. */
static inline __attribute__((always_inline)) void
kernel_avx512bf16(const int mr, const int mode, int kc, const uint32_t *a, size_t lda,
                  const uint32_t *b, size_t ldb, const int32_t *koff, float *c, size_t ldc,
                  int nr, const tile_epi *e)
{
    const bool direct = mode == K_DIRECT_A, boff = mode == K_OFFSET_B;
    __m512 c0[MR], c1[MR];
    const uint32_t *ar[MR];
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        c0[i] = _mm512_setzero_ps();
        c1[i] = _mm512_setzero_ps();
        ar[i] = a + (size_t)i * lda;
    }
    __mmask16 m0, m1;
    tile_masks(nr, &m0, &m1);
    tile_prefetch(mr, c, ldc, nr, e);
    /* Packed B panels are zero-padded; B read in place stops at nr. */
#define KERNEL_LOOP(LOAD0, LOAD1)                                                              \
    for (int k = 0; k < kc; k++) {                                                             \
        const uint32_t *bk = boff ? b + koff[k] : b;                                           \
        __m512bh b0 = (__m512bh)LOAD0, b1 = (__m512bh)LOAD1;                                   \
        _Pragma("GCC unroll 12") for (int i = 0; i < mr; i++)                                  \
        {                                                                                      \
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)(direct ? ar[i][k] : a[i]));        \
            c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);                                           \
            c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);                                           \
        }                                                                                      \
        if (!direct)                                                                           \
            a += mr;                                                                           \
        if (!boff)                                                                             \
            b += ldb;                                                                          \
    }
    if (nr <= 16) { /* as in the float32 kernel */
        for (int k = 0; k < kc; k++) {
            __m512bh b0 = (__m512bh)_mm512_maskz_loadu_epi32(m0, boff ? b + koff[k] : b);
#pragma GCC unroll 12
            for (int i = 0; i < mr; i++)
                c0[i] = _mm512_dpbf16_ps(
                    c0[i], (__m512bh)_mm512_set1_epi32((int)(direct ? ar[i][k] : a[i])), b0);
            if (!direct)
                a += mr;
            if (!boff)
                b += ldb;
        }
    } else if (nr == NR || !boff) {
        KERNEL_LOOP(_mm512_loadu_si512(bk), _mm512_loadu_si512(bk + 16))
    } else {
        KERNEL_LOOP(_mm512_maskz_loadu_epi32(m0, bk), _mm512_maskz_loadu_epi32(m1, bk + 16))
    }
#undef KERNEL_LOOP
    TILE_OUT(c0, c1, mr, c, ldc, m0, m1, e);
}

#define AVX512BF16_MR(R)                                                                       \
    static void kbf_##R(KERNEL_ARGS)                                                           \
    {                                                                                          \
        kernel_avx512bf16(R, K_PACKED, kc, a, lda, b, ldb, koff, c, ldc, nr, e);               \
    }                                                                                          \
    static void kbfd_##R(KERNEL_ARGS)                                                          \
    {                                                                                          \
        kernel_avx512bf16(R, K_DIRECT_A, kc, a, lda, b, ldb, koff, c, ldc, nr, e);             \
    }                                                                                          \
    static void kbfo_##R(KERNEL_ARGS)                                                          \
    {                                                                                          \
        kernel_avx512bf16(R, K_OFFSET_B, kc, a, lda, b, ldb, koff, c, ldc, nr, e);             \
    }
AVX512BF16_MR(1)
AVX512BF16_MR(2)
AVX512BF16_MR(3)
AVX512BF16_MR(4)
AVX512BF16_MR(5)
AVX512BF16_MR(6)
AVX512BF16_MR(7)
AVX512BF16_MR(8)
AVX512BF16_MR(9)
AVX512BF16_MR(10)
AVX512BF16_MR(11)
AVX512BF16_MR(12)

/* 16 floats -> 16 bf16 (round to nearest even, as md_bf16_from_f32). */
static void f32_to_bf16_avx512bf16(const float *src, uint16_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    for (; i < n; i++)
        dst[i] = md_bf16_from_f32(src[i]);
}

/* Two rows of 16 floats -> 16 pairs (r0[j], r1[j]) of bf16, j = 0..15: the
 * columns in mask m, zeros elsewhere; r1 NULL: a zero row. */
static inline __m512i pairs16(const float *r0, const float *r1, __mmask16 m)
{
    __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, r0)));
    if (!r1)
        return lo;
    __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, r1)));
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

static void bf16_pairs_avx512(const float *r0, const float *r1, uint32_t *dst, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_si512(dst + i, pairs16(r0 + i, r1 + i, 0xffff));
    for (; i < n; i++)
        dst[i] = (uint32_t)md_bf16_from_f32(r0[i]) | (uint32_t)md_bf16_from_f32(r1[i]) << 16;
}

/* A B panel of nr <= NR columns of rows k0..k0+kc of a row-major float32
 * matrix, as pairs zero-padded to NR columns and an even k (alpha == 1).
 * Masked loads, so a plane that is not a multiple of NR pixels (FastDepth's
 * 14x14 and 7x7 layers) packs its last panel by vectors too: the scalar loop
 * for it made the bf16 network 2.4 % slower on one thread, 4 % on two (Zen 4). */
static void pack_b_panel_bf16_avx512(uint32_t *d, const float *src, size_t ld, int kc, int nr)
{
    __mmask16 m0, m1;
    tile_masks(nr, &m0, &m1);
    for (int k = 0; k < kc; k += 2) {
        const float *r0 = src + (size_t)k * ld, *r1 = k + 1 < kc ? r0 + ld : NULL;
        _mm512_storeu_si512(d, pairs16(r0, r1, m0));
        _mm512_storeu_si512(d + 16, pairs16(r0 + 16, r1 ? r1 + 16 : NULL, m1));
        d += NR;
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

static const kernel_fn avx512_kernels[K_MODES][MR + 1] = {TABLE_ROW(kf32), TABLE_ROW(kf32d),
                                                          TABLE_ROW(kf32o)};
static const kernel_fn avx512bf16_kernels[K_MODES][MR + 1] = {TABLE_ROW(kbf), TABLE_ROW(kbfd),
                                                              TABLE_ROW(kbfo)};
#endif

md_gemm_isa md_gemm_isa_best(md_gemm_type type)
{
#ifdef MD_X86_KERNELS
    md_cpu_features f = md_cpu_detect();
    if (type == MD_GEMM_BF16)
        return f.avx512_bf16 ? MD_ISA_AVX512_BF16 : MD_ISA_BF16_EMU;
    if (f.avx512)
        return MD_ISA_AVX512;
#endif
    return type == MD_GEMM_BF16 ? MD_ISA_BF16_EMU : MD_ISA_GENERIC;
}

md_gemm_type md_gemm_isa_type(md_gemm_isa isa)
{
    return isa == MD_ISA_BF16_EMU || isa == MD_ISA_AVX512_BF16 ? MD_GEMM_BF16 : MD_GEMM_F32;
}

const char *md_gemm_isa_name(md_gemm_isa isa)
{
    switch (isa) {
    case MD_ISA_AVX512: return "avx512";
    case MD_ISA_AVX512_BF16: return "avx512_bf16";
    case MD_ISA_BF16_EMU: return "bf16 emulated in C";
    case MD_ISA_GENERIC: break;
    }
    return "generic C";
}

static const kernel_fn (*kernels_for(md_gemm_isa isa))[MR + 1]
{
#ifdef MD_X86_KERNELS
    if (isa == MD_ISA_AVX512)
        return avx512_kernels;
    if (isa == MD_ISA_AVX512_BF16)
        return avx512bf16_kernels;
#endif
    return isa == MD_ISA_BF16_EMU || isa == MD_ISA_AVX512_BF16 ? emu_kernels : generic_kernels;
}

void md_f32_to_bf16(const float *src, uint16_t *dst, size_t n)
{
#ifdef MD_X86_KERNELS
    if (md_cpu_detect().avx512_bf16) {
        f32_to_bf16_avx512bf16(src, dst, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        dst[i] = md_bf16_from_f32(src[i]);
}

/* ------------------------------------------------------------ packing */

static int panels_of(int n, int w)
{
    return (n + w - 1) / w;
}

/* op(A)[i][k] of a raw (float32, maybe transposed) matrix. */
static inline float raw_at(const float *src, size_t ld, bool trans, int i, int k)
{
    return trans ? src[(size_t)k * ld + i] : src[(size_t)i * ld + k];
}

/* Rows [i0, i0 + mc) x k [k0, k0 + kc) of op(A), times alpha, as panels of h
 * <= MR rows: float32 panel p at dst + p * h * kc, laid out kc x mr. */
static void pack_a_f32(float *dst, const float *src, size_t ld, bool trans, float alpha, int i0,
                       int mc, int k0, int kc, int h)
{
    for (int p = 0; p < panels_of(mc, h); p++) {
        int r0 = i0 + p * h, mr = mc - p * h < h ? mc - p * h : h;
        float *d = dst + (size_t)p * h * kc;
        if (!trans) {
            /* 4 rows at a time: 4 read streams, writes 4 floats apart */
            int i = 0;
            for (; i + 4 <= mr; i += 4) {
                const float *s0 = src + (size_t)(r0 + i) * ld + k0, *s1 = s0 + ld, *s2 = s1 + ld,
                            *s3 = s2 + ld;
                for (int k = 0; k < kc; k++) {
                    float *dk = d + (size_t)k * mr + i;
                    dk[0] = alpha * s0[k];
                    dk[1] = alpha * s1[k];
                    dk[2] = alpha * s2[k];
                    dk[3] = alpha * s3[k];
                }
            }
            for (; i < mr; i++) {
                const float *s = src + (size_t)(r0 + i) * ld + k0;
                for (int k = 0; k < kc; k++)
                    d[(size_t)k * mr + i] = alpha * s[k];
            }
        } else {
            for (int k = 0; k < kc; k++) {
                const float *s = src + (size_t)(k0 + k) * ld + r0;
                for (int i = 0; i < mr; i++)
                    d[(size_t)k * mr + i] = alpha * s[i];
            }
        }
    }
}

/* The same as bf16 pairs: panel p at dst + p * h * kcp (kcp = kc rounded up
 * to even, the odd tail zero), laid out kcp/2 x mr x 2. */
static void pack_a_bf16(uint16_t *dst, const float *src, size_t ld, bool trans, float alpha,
                        int i0, int mc, int k0, int kc, int h)
{
    int kcp = (kc + 1) & ~1;
    for (int p = 0; p < panels_of(mc, h); p++) {
        int r0 = i0 + p * h, mr = mc - p * h < h ? mc - p * h : h;
        uint16_t *d = dst + (size_t)p * h * kcp;
        for (int k = 0; k < kcp; k++)
            for (int i = 0; i < mr; i++) {
                float v = k < kc ? alpha * raw_at(src, ld, trans, r0 + i, k0 + k) : 0.0f;
                d[((size_t)(k / 2) * mr + i) * 2 + (k & 1)] = md_bf16_from_f32(v);
            }
    }
}

/* k [k0, k0 + kc) x columns [j0, j0 + nc) of op(B), times alpha, as panels of
 * NR columns (zero-padded): float32 panel q at dst + q * NR * kc, kc x NR. */
static void pack_b_f32(float *dst, const float *src, size_t ld, bool trans, float alpha, int k0,
                       int kc, int j0, int nc)
{
    for (int q = 0; q < panels_of(nc, NR); q++) {
        int c0 = j0 + q * NR, nr = nc - q * NR < NR ? nc - q * NR : NR;
        float *d = dst + (size_t)q * NR * kc;
        if (!trans) {
            for (int k = 0; k < kc; k++) {
                const float *s = src + (size_t)(k0 + k) * ld + c0;
                float *dk = d + (size_t)k * NR;
                for (int j = 0; j < nr; j++)
                    dk[j] = alpha * s[j];
                for (int j = nr; j < NR; j++)
                    dk[j] = 0.0f;
            }
        } else {
            for (int j = 0; j < nr; j++) {
                const float *s = src + (size_t)(c0 + j) * ld + k0;
                for (int k = 0; k < kc; k++)
                    d[(size_t)k * NR + j] = alpha * s[k];
            }
            for (int k = 0; k < kc && nr < NR; k++)
                memset(d + (size_t)k * NR + nr, 0, sizeof(float) * (size_t)(NR - nr));
        }
    }
}

/* As bf16 pairs: panel q at dst + q * NR * kcp, kcp/2 x NR x 2. */
static void pack_b_bf16(uint16_t *dst, const float *src, size_t ld, bool trans, float alpha,
                        int k0, int kc, int j0, int nc)
{
    int kcp = (kc + 1) & ~1;
    for (int q = 0; q < panels_of(nc, NR); q++) {
        int c0 = j0 + q * NR, nr = nc - q * NR < NR ? nc - q * NR : NR;
        uint16_t *d = dst + (size_t)q * NR * kcp;
#ifdef MD_X86_KERNELS
        if (!trans && alpha == 1.0f && md_cpu_detect().avx512_bf16) {
            pack_b_panel_bf16_avx512((uint32_t *)d, src + (size_t)k0 * ld + c0, ld, kc, nr);
            continue;
        }
#endif
        for (int k = 0; k < kcp; k++)
            for (int j = 0; j < NR; j++) {
                float v = k < kc && j < nr ? alpha * raw_at(src, ld, !trans, c0 + j, k0 + k) : 0.0f;
                d[((size_t)(k / 2) * NR + j) * 2 + (k & 1)] = md_bf16_from_f32(v);
            }
    }
}

int md_gemm_panel_rows(int M)
{
    return M % MR == 0 || M % 8 != 0 ? MR : 8;
}

static int k_padded(md_gemm_type type, int K)
{
    return type == MD_GEMM_BF16 ? (K + 1) & ~1 : K;
}

static size_t elem_size(md_gemm_type type)
{
    return type == MD_GEMM_BF16 ? 2 : 4;
}

size_t md_gemm_packed_bytes(md_gemm_type type, bool is_a, int rows, int cols)
{
    if (is_a)
        return (size_t)rows * (size_t)k_padded(type, cols) * elem_size(type);
    return (size_t)panels_of(cols, NR) * NR * (size_t)k_padded(type, rows) * elem_size(type);
}

void md_gemm_pack_a_into(md_gemm_type type, void *dst, const float *src, size_t ld, bool trans,
                         int M, int K)
{
    if (type == MD_GEMM_BF16)
        pack_a_bf16(dst, src, ld, trans, 1.0f, 0, M, 0, K, md_gemm_panel_rows(M));
    else
        pack_a_f32(dst, src, ld, trans, 1.0f, 0, M, 0, K, md_gemm_panel_rows(M));
}

void md_gemm_pack_b_into(md_gemm_type type, void *dst, const float *src, size_t ld, bool trans,
                         int K, int N)
{
    if (type == MD_GEMM_BF16)
        pack_b_bf16(dst, src, ld, trans, 1.0f, 0, K, 0, N);
    else
        pack_b_f32(dst, src, ld, trans, 1.0f, 0, K, 0, N);
}

void md_gemm_pack_a_fn(md_gemm_type type, void *dst, int M, int K,
                       float (*get)(const void *ctx, int m, int k), const void *ctx)
{
    int h = md_gemm_panel_rows(M), Kp = k_padded(type, K);
    for (int p = 0; p < panels_of(M, h); p++) {
        int r0 = p * h, mr = M - r0 < h ? M - r0 : h;
        for (int k = 0; k < Kp; k++)
            for (int i = 0; i < mr; i++) {
                float v = k < K ? get(ctx, r0 + i, k) : 0.0f;
                if (type == MD_GEMM_BF16)
                    ((uint16_t *)dst)[(size_t)r0 * Kp + ((size_t)(k / 2) * mr + i) * 2 +
                                      (size_t)(k & 1)] = md_bf16_from_f32(v);
                else
                    ((float *)dst)[(size_t)r0 * Kp + (size_t)k * mr + i] = v;
            }
    }
}

md_gemm_packed md_gemm_packed_view(md_gemm_type type, void *data, bool is_a, int rows, int cols)
{
    md_gemm_packed p = {type, is_a, rows, cols, is_a ? md_gemm_panel_rows(rows) : NR, data};
    return p;
}

static bool pack_new(md_gemm_packed *p, md_gemm_type type, bool is_a, const float *src,
                     size_t ld, bool trans, int rows, int cols)
{
    memset(p, 0, sizeof *p);
    size_t n = md_gemm_packed_bytes(type, is_a, rows, cols);
    void *d = aligned_alloc(64, (n + 63) / 64 * 64 + 64);
    if (!d)
        return false;
    if (is_a)
        md_gemm_pack_a_into(type, d, src, ld, trans, rows, cols);
    else
        md_gemm_pack_b_into(type, d, src, ld, trans, rows, cols);
    *p = md_gemm_packed_view(type, d, is_a, rows, cols);
    return true;
}

bool md_gemm_pack_a(md_gemm_packed *p, md_gemm_type type, const float *src, size_t ld,
                    bool trans, int M, int K)
{
    return pack_new(p, type, true, src, ld, trans, M, K);
}

bool md_gemm_pack_b(md_gemm_packed *p, md_gemm_type type, const float *src, size_t ld,
                    bool trans, int K, int N)
{
    return pack_new(p, type, false, src, ld, trans, K, N);
}

void md_gemm_packed_free(md_gemm_packed *p)
{
    if (p) {
        free(p->data);
        memset(p, 0, sizeof *p);
    }
}

/* ------------------------------------------------------------ blocks */

typedef struct {
    md_gemm_type type;
    const kernel_fn (*kern)[MR + 1]; /* [mode][mr] */
    bool tail_cols;                  /* avx512_tail_cols takes a panel's last 1-4 columns */
    int M, N, K;
    float alpha;
    md_gemm_operand A, B;
    float *C;
    size_t ldc;
    md_gemm_epilogue e;
} gemm_job;

static int kc_step(md_gemm_type type, int K)
{
    int scale = type == MD_GEMM_BF16 ? 2 : 1;
    return K <= KC_SINGLE * scale ? K : KC_BLOCK * scale;
}

/* An operand's element in the product's arithmetic (bf16-rounded for bf16). */
static float op_at(const gemm_job *j, const md_gemm_operand *o, bool is_a, int r, int c)
{
    bool bf = j->type == MD_GEMM_BF16;
    if (o->kind == MD_OPERAND_PACKED) {
        const md_gemm_packed *p = o->packed;
        int kp = k_padded(j->type, is_a ? p->cols : p->rows);
        size_t idx;
        if (is_a) {
            int h = p->panel, pnl = r / h, mr = p->rows - pnl * h < h ? p->rows - pnl * h : h;
            size_t base = (size_t)pnl * h * kp;
            idx = bf ? base + ((size_t)(c / 2) * mr + (size_t)(r % h)) * 2 + (size_t)(c & 1)
                     : base + (size_t)c * mr + (size_t)(r % h);
        } else {
            size_t base = (size_t)(c / NR) * NR * kp;
            idx = bf ? base + ((size_t)(r / 2) * NR + (size_t)(c % NR)) * 2 + (size_t)(r & 1)
                     : base + (size_t)r * NR + (size_t)(c % NR);
        }
        return bf ? md_bf16_to_f32(((const uint16_t *)p->data)[idx]) : ((const float *)p->data)[idx];
    }
    float v;
    if (o->kind == MD_OPERAND_OFFSETS) {
        if (bf) {
            uint32_t w = ((const uint32_t *)o->data)[o->koff[r / 2] + c];
            return md_bf16_to_f32((uint16_t)(r & 1 ? w >> 16 : w & 0xffff));
        }
        return ((const float *)o->data)[o->koff[r] + c];
    }
    if (o->kind == MD_OPERAND_DIRECT) {
        if (bf && is_a)
            return md_bf16_to_f32(((const uint16_t *)o->data)[(size_t)r * o->ld + (size_t)c]);
        v = ((const float *)o->data)[(size_t)r * o->ld + (size_t)c];
    } else {
        v = raw_at(o->data, o->ld, o->trans, r, c);
    }
    return bf ? md_bf16_to_f32(md_bf16_from_f32(v)) : v;
}

/* op(A)[r][c] or op(B)[r][c] as the kernels see it: alpha folded into a raw
 * operand, bf16-rounded in bf16 arithmetic. */
static float elem(const gemm_job *j, const md_gemm_operand *o, bool is_a, int r, int c,
                  float alpha)
{
    if (o->kind != MD_OPERAND_RAW)
        return op_at(j, o, is_a, r, c);
    float v = alpha * raw_at(o->data, o->ld, o->trans, r, c);
    return j->type == MD_GEMM_BF16 ? md_bf16_to_f32(md_bf16_from_f32(v)) : v;
}

/* The same sums without packing (each K block in order): the path when
 * scratch memory cannot be had. */
static void block_unpacked(const gemm_job *j, int m0, int m1, int n0, int n1)
{
    int step = kc_step(j->type, j->K);
    float alpha_a = j->A.kind == MD_OPERAND_RAW ? j->alpha : 1.0f;
    float alpha_b = j->A.kind != MD_OPERAND_RAW && j->B.kind == MD_OPERAND_RAW ? j->alpha : 1.0f;
    for (int i = m0; i < m1; i++)
        for (int n = n0; n < n1; n++) {
            float *c = j->C + (size_t)i * j->ldc + (size_t)n;
            for (int pc = 0; pc < j->K; pc += step) {
                int kc = j->K - pc < step ? j->K - pc : step;
                float acc = 0.0f;
                for (int k = pc; k < pc + kc; k++)
                    acc = fmaf(elem(j, &j->A, true, i, k, alpha_a),
                               elem(j, &j->B, false, k, n, alpha_b), acc);
                tile_epi te = epi_at(&j->e, (size_t)i, (size_t)n, pc > 0, pc + kc == j->K);
                bool read = te.accumulate || te.beta != 0.0f;
                store(finish(acc, read ? *c : 0.0f, 0, 0, &te), c, 0, 0, 0, &te);
            }
        }
}

static void run_block(const gemm_job *j, int m0, int m1, int n0, int n1)
{
    if (m0 >= m1 || n0 >= n1)
        return;
    md_gemm_type type = j->type;
    bool bf = type == MD_GEMM_BF16;
    size_t es = elem_size(type);
    int ku = bf ? 2 : 1; /* k per kernel step */
    bool a_raw = j->A.kind == MD_OPERAND_RAW, b_raw = j->B.kind == MD_OPERAND_RAW;
    bool a_direct = j->A.kind == MD_OPERAND_DIRECT, b_off = j->B.kind == MD_OPERAND_OFFSETS;
    int mode = a_direct ? K_DIRECT_A : b_off ? K_OFFSET_B : K_PACKED;
    int h = j->A.kind == MD_OPERAND_PACKED ? j->A.packed->panel : MR; /* A panel height */
    int K = j->K, Kp = k_padded(type, K), step = kc_step(type, K);
    int mc_max = a_raw ? (m1 - m0 < MC_BLOCK ? m1 - m0 : MC_BLOCK) : m1 - m0;
    int nc_max = b_raw ? (n1 - n0 < NC_BLOCK ? n1 - n0 : NC_BLOCK) : n1 - n0;
    int step_p = k_padded(type, step);
    size_t sa_n = a_raw ? (size_t)mc_max * step_p : 0;
    size_t sb_n = b_raw ? (size_t)panels_of(nc_max, NR) * NR * step_p : 0;
    char *scratch = NULL;
    if (sa_n + sb_n > 0) {
        scratch = aligned_alloc(64, ((sa_n + sb_n) * es + 63) / 64 * 64);
        if (!scratch) {
            block_unpacked(j, m0, m1, n0, n1);
            return;
        }
    }
    char *sa = scratch, *sb = scratch ? scratch + sa_n * es : NULL; /* no arithmetic on NULL */
    float alpha_a = a_raw ? j->alpha : 1.0f, alpha_b = !a_raw && b_raw ? j->alpha : 1.0f;
    const md_gemm_epilogue *ge = &j->e;
    /* rows of A in blocks that stay in L2 while every B panel passes (direct A too) */
    int nc_step = b_raw ? NC_BLOCK : n1 - n0, mc_step = a_raw || a_direct ? MC_BLOCK : m1 - m0;
    const char *adata = j->A.kind == MD_OPERAND_PACKED ? j->A.packed->data : j->A.data;
    const char *bdata = j->B.kind == MD_OPERAND_PACKED ? j->B.packed->data : j->B.data;
    for (int jc = n0; jc < n1; jc += nc_step) {
        int nc = n1 - jc < nc_step ? n1 - jc : nc_step;
        for (int pc = 0; pc < K; pc += step) {
            int kc = K - pc < step ? K - pc : step, kcp = k_padded(type, kc);
            const char *bbase;
            size_t ldb, bpanel; /* in elements: panel q at bbase + q * bpanel, rows ldb apart */
            if (b_raw) {
                if (bf)
                    pack_b_bf16((uint16_t *)sb, j->B.data, j->B.ld, j->B.trans, alpha_b, pc, kc,
                                jc, nc);
                else
                    pack_b_f32((float *)sb, j->B.data, j->B.ld, j->B.trans, alpha_b, pc, kc, jc,
                               nc);
                bbase = sb;
                ldb = NR;
                bpanel = (size_t)NR * kcp;
            } else if (j->B.kind == MD_OPERAND_PACKED) {
                bbase = bdata + ((size_t)(jc / NR) * NR * Kp + (size_t)pc * NR) * es;
                ldb = NR;
                bpanel = (size_t)NR * Kp;
            } else if (b_off) {
                /* a column is one 4-byte value (float, or a bf16 pair) */
                bbase = bdata + (size_t)jc * 4;
                ldb = 0;
                bpanel = (size_t)NR * 4 / es;
            } else {
                bbase = bdata + ((size_t)pc * j->B.ld + (size_t)jc) * es;
                ldb = j->B.ld;
                bpanel = NR;
            }
            for (int ic = m0; ic < m1; ic += mc_step) {
                int mc = m1 - ic < mc_step ? m1 - ic : mc_step;
                if (a_raw && bf)
                    pack_a_bf16((uint16_t *)sa, j->A.data, j->A.ld, j->A.trans, alpha_a, ic, mc,
                                pc, kc, MR);
                else if (a_raw)
                    pack_a_f32((float *)sa, j->A.data, j->A.ld, j->A.trans, alpha_a, ic, mc, pc,
                               kc, MR);
                for (int q = 0; q < panels_of(nc, NR); q++) {
                    int col = jc + q * NR, nr = nc - q * NR < NR ? nc - q * NR : NR;
                    const char *bp = bbase + (size_t)q * bpanel * es;
                    for (int p = 0; p < panels_of(mc, h); p++) {
                        int row = ic + p * h, mr = mc - p * h < h ? mc - p * h : h;
                        const char *ap;
                        if (a_raw) {
                            ap = sa + (size_t)p * h * kcp * es;
                        } else if (a_direct) {
                            ap = adata + ((size_t)row * j->A.ld + (size_t)pc) * es;
                        } else {
                            int gp = row / h, gmr = j->M - gp * h < h ? j->M - gp * h : h;
                            ap = adata + ((size_t)gp * h * Kp + (size_t)pc * gmr) * es;
                            mr = gmr < mr ? gmr : mr;
                        }
                        tile_epi te = epi_at(ge, (size_t)row, (size_t)col, pc > 0,
                                             pc + kc == K);
                        int tail = j->tail_cols && mode == K_PACKED && (nr & 15) >= 1 &&
                                           (nr & 15) <= TAIL_MAX
                                       ? nr & 15
                                       : 0;
                        if (nr > tail)
                            j->kern[mode][mr](kcp / ku, ap, a_direct ? j->A.ld / (size_t)ku : 0,
                                              bp, ldb, b_off ? j->B.koff + pc / ku : NULL,
                                              j->C + (size_t)row * j->ldc + (size_t)col, j->ldc,
                                              nr - tail, &te);
#ifdef MD_X86_KERNELS
                        if (tail) {
                            int c0 = col + nr - tail;
                            tile_epi tt = epi_at(ge, (size_t)row, (size_t)c0, pc > 0,
                                                 pc + kc == K);
                            avx512_tail_cols(mr, kc, (const float *)ap,
                                             (const float *)bp + (nr - tail), ldb, tail,
                                             j->C + (size_t)row * j->ldc + (size_t)c0, j->ldc,
                                             &tt);
                        }
#endif
                    }
                }
            }
        }
    }
    free(scratch);
}

static void job_init(gemm_job *j, md_gemm_isa isa, int M, int N, int K, float alpha,
                     md_gemm_operand A, md_gemm_operand B, float *C, size_t ldc,
                     const md_gemm_epilogue *e)
{
    j->type = md_gemm_isa_type(isa);
    j->kern = kernels_for(isa);
#ifdef MD_X86_KERNELS
    j->tail_cols = isa == MD_ISA_AVX512;
#else
    j->tail_cols = false;
#endif
    j->M = M;
    j->N = N;
    j->K = K;
    j->alpha = alpha;
    j->A = A;
    j->B = B;
    j->C = C;
    j->ldc = ldc;
    j->e = e ? *e : md_gemm_epilogue_none();
    /* bf16 kernels read B as pairs: a float32 B read in place is packed instead */
    if (j->type == MD_GEMM_BF16 && B.kind == MD_OPERAND_DIRECT) {
        j->B.kind = MD_OPERAND_RAW;
        j->B.trans = false;
    }
}

/* K == 0: the product is zero; the epilogue still applies. */
static void empty_product(const gemm_job *j, int m0, int m1, int n0, int n1)
{
    for (int i = m0; i < m1; i++)
        for (int n = n0; n < n1; n++) {
            float *c = j->C + (size_t)i * j->ldc + (size_t)n;
            tile_epi te = epi_at(&j->e, (size_t)i, (size_t)n, false, true);
            store(finish(0.0f, j->e.beta != 0.0f ? *c : 0.0f, 0, 0, &te), c, 0, 0, 0, &te);
        }
}

void md_gemm_block(md_gemm_isa isa, int M, int N, int K, float alpha, md_gemm_operand A,
                   md_gemm_operand B, float *C, size_t ldc, const md_gemm_epilogue *e, int m0,
                   int m1, int n0, int n1)
{
    gemm_job j;
    job_init(&j, isa, M, N, K, alpha, A, B, C, ldc, e);
    if (K <= 0)
        empty_product(&j, m0, m1, n0, n1);
    else
        run_block(&j, m0, m1, n0, n1);
}

typedef struct {
    const gemm_job *j;
    bool split_m;
    int units, tasks, h; /* h: rows per unit when splitting rows */
} split_ctx;

static void gemm_task(void *vctx, int t, int worker)
{
    (void)worker;
    const split_ctx *s = vctx;
    const gemm_job *j = s->j;
    int u0 = (int)((long)s->units * t / s->tasks), u1 = (int)((long)s->units * (t + 1) / s->tasks);
    if (s->split_m) {
        int m1 = u1 * s->h < j->M ? u1 * s->h : j->M;
        run_block(j, u0 * s->h, m1, 0, j->N);
    } else {
        int n1 = u1 * NR < j->N ? u1 * NR : j->N;
        run_block(j, 0, j->M, u0 * NR, n1);
    }
}

void md_gemm(md_threadpool *pool, md_gemm_type type, int M, int N, int K, float alpha,
             md_gemm_operand A, md_gemm_operand B, float *C, size_t ldc,
             const md_gemm_epilogue *e)
{
    if (M <= 0 || N <= 0)
        return;
    gemm_job j;
    job_init(&j, md_gemm_isa_best(type), M, N, K, alpha, A, B, C, ldc, e);
    if (K <= 0) {
        empty_product(&j, 0, M, 0, N);
        return;
    }
    int threads = md_pool_threads(pool);
    double work = (double)M * N * K;
    if (threads <= 1 || work < 2e5) {
        run_block(&j, 0, M, 0, N);
        return;
    }
    /* Split the side whose operand is not packed once, so each task packs
     * only its own share; with both raw, the longer side. */
    bool split_m;
    if (A.kind == MD_OPERAND_RAW && B.kind != MD_OPERAND_RAW)
        split_m = true;
    else if (B.kind == MD_OPERAND_RAW && A.kind != MD_OPERAND_RAW)
        split_m = false;
    else if (A.kind != MD_OPERAND_RAW && B.kind != MD_OPERAND_RAW)
        split_m = panels_of(M, MR) >= panels_of(N, NR);
    else
        split_m = M > N;
    int h = A.kind == MD_OPERAND_PACKED ? A.packed->panel : MR;
    int units = split_m ? panels_of(M, h) : panels_of(N, NR);
    if (units < 2 && (split_m ? panels_of(N, NR) : panels_of(M, h)) >= 2) {
        split_m = !split_m;
        units = split_m ? panels_of(M, h) : panels_of(N, NR);
    }
    int tasks = threads * 4 < units ? threads * 4 : units;
    split_ctx s = {&j, split_m, units, tasks, h};
    md_pool_run(pool, tasks, gemm_task, &s);
}

void md_bf16_pairs(const float *r0, const float *r1, uint32_t *dst, size_t n)
{
#ifdef MD_X86_KERNELS
    if (md_cpu_detect().avx512_bf16) {
        bf16_pairs_avx512(r0, r1, dst, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        dst[i] = (uint32_t)md_bf16_from_f32(r0[i]) | (uint32_t)md_bf16_from_f32(r1[i]) << 16;
}

void md_sgemm(md_threadpool *pool, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    md_gemm_epilogue e = md_gemm_epilogue_none();
    e.beta = beta;
    md_gemm(pool, MD_GEMM_F32, M, N, K, alpha, md_gemm_raw(A, (size_t)lda, trans_a),
            md_gemm_raw(B, (size_t)ldb, trans_b), C, (size_t)ldc, &e);
}
