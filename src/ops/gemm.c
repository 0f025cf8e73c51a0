/* The matrix-product engine: see gemm.h. Loop nest after Goto and van de
 * Geijn ("Anatomy of high-performance matrix multiplication", 2008): for each
 * block of NC columns and KC inner indices, B's panels are packed once (L2);
 * for each block of MC rows, A's panels are packed (L2); the microkernel runs
 * an MR x NR tile from one A panel and one B panel, the B panel reused across
 * the A panels. Operands packed once (weights) skip their packing. */
#include "ops/gemm.h"

#include "base/pool.h"
#include "ops/cpu.h"
#include "ops/simd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MR MD_GEMM_MR
#define NR MD_GEMM_NR
#define KC_SINGLE 1024 /* K up to this runs as one block (accumulators stay in registers) */
#define KC_BLOCK 512   /* otherwise blocks of this many (fixed by K alone: determinism) */
#define MC_BLOCK (12 * MR)
#define NC_BLOCK (16 * NR)

/* How a tile is finished: see md_gemm_epilogue. first/last: the K block. */
typedef struct {
    bool accumulate; /* C += product (a later K block) */
    float beta;      /* first block: C = product + beta C (0: C not read) */
    bool last;
    const float *bias_row, *bias_col, *row_scale; /* offset to the tile */
    bool clamp;
    float lo, hi;
    const float *add;
    size_t ld_add;
} tile_epi;

/* a: packed panel (k-major, mr per k) when lda == 0, else row i at a + i * lda. */
typedef void (*kernel_fn)(int kc, const float *a, size_t lda, const float *b, size_t ldb,
                          float *c, size_t ldc, int nr, const tile_epi *e);

/* ------------------------------------------------------------ kernels */

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
    if (e->clamp) {
        v = v < e->lo ? e->lo : v;
        v = v > e->hi ? e->hi : v;
    }
    if (e->add)
        v += e->add[(size_t)i * e->ld_add + (size_t)j];
    return v;
}

/* Portable kernel: the tile lives in a local array the compiler keeps in
 * vector registers where it can. */
static void kernel_generic(int mr, int kc, const float *a, size_t lda, const float *b,
                           size_t ldb, float *c, size_t ldc, int nr, const tile_epi *e)
{
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    size_t rs = lda ? lda : 1, ks = lda ? 1 : (size_t)mr;
    for (int k = 0; k < kc; k++) {
        const float *bk = b + (size_t)k * ldb, *ak = a + (size_t)k * ks;
        for (int i = 0; i < mr; i++) {
            float ai = ak[(size_t)i * rs];
            for (int j = 0; j < nr; j++)
                acc[i][j] += ai * bk[j];
        }
    }
    bool read = e->accumulate || e->beta != 0.0f;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float *p = c + (size_t)i * ldc + (size_t)j;
            *p = finish(acc[i][j], read ? *p : 0.0f, i, j, e);
        }
}

#define GENERIC_MR(R)                                                                          \
    static void kernel_generic_##R(int kc, const float *a, size_t lda, const float *b,         \
                                   size_t ldb, float *c, size_t ldc, int nr, const tile_epi *e) \
    {                                                                                          \
        kernel_generic(R, kc, a, lda, b, ldb, c, ldc, nr, e);                                  \
    }
GENERIC_MR(1)
GENERIC_MR(2)
GENERIC_MR(3)
GENERIC_MR(4)
GENERIC_MR(5)
GENERIC_MR(6)
GENERIC_MR(7)
GENERIC_MR(8)
GENERIC_MR(9)
GENERIC_MR(10)
GENERIC_MR(11)
GENERIC_MR(12)
static const kernel_fn generic_kernels[2][MR + 1] = {
    {NULL, kernel_generic_1, kernel_generic_2, kernel_generic_3, kernel_generic_4,
     kernel_generic_5, kernel_generic_6, kernel_generic_7, kernel_generic_8, kernel_generic_9,
     kernel_generic_10, kernel_generic_11, kernel_generic_12},
    {NULL, kernel_generic_1, kernel_generic_2, kernel_generic_3, kernel_generic_4,
     kernel_generic_5, kernel_generic_6, kernel_generic_7, kernel_generic_8, kernel_generic_9,
     kernel_generic_10, kernel_generic_11, kernel_generic_12}};

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

/* Writes one row of a tile: v0, v1 (columns 0-15, 16-31) finished as e says. */
static inline __attribute__((always_inline)) void avx512_row_out(__m512 v0, __m512 v1, int i,
                                                                  float *ci, __mmask16 m0,
                                                                  __mmask16 m1,
                                                                  const tile_epi *e)
{
    if (e->accumulate) {
        v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
        v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci + 16));
    } else if (e->beta != 0.0f) {
        __m512 bt = _mm512_set1_ps(e->beta);
        v0 = _mm512_fmadd_ps(bt, _mm512_maskz_loadu_ps(m0, ci), v0);
        v1 = _mm512_fmadd_ps(bt, _mm512_maskz_loadu_ps(m1, ci + 16), v1);
    }
    if (e->last) {
        if (e->bias_row) {
            __m512 bb = _mm512_set1_ps(e->bias_row[i]);
            v0 = _mm512_add_ps(v0, bb);
            v1 = _mm512_add_ps(v1, bb);
        }
        if (e->bias_col) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, e->bias_col));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, e->bias_col + 16));
        }
        if (e->row_scale) {
            __m512 s = _mm512_set1_ps(e->row_scale[i]);
            v0 = _mm512_mul_ps(v0, s);
            v1 = _mm512_mul_ps(v1, s);
        }
        if (e->clamp) {
            /* max/min return their second operand when either is NaN */
            __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);
            v0 = _mm512_min_ps(hi, _mm512_max_ps(lo, v0));
            v1 = _mm512_min_ps(hi, _mm512_max_ps(lo, v1));
        }
        if (e->add) {
            const float *ad = e->add + (size_t)i * e->ld_add;
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ad));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ad + 16));
        }
    }
    _mm512_mask_storeu_ps(ci, m0, v0);
    _mm512_mask_storeu_ps(ci + 16, m1, v1);
}

/* direct: row i of A at a + i * lda (one stream per row), else a packed
 * panel (mr values per k, one stream). */
static inline __attribute__((always_inline)) void
kernel_avx512(const int mr, const bool direct, int kc, const float *a, size_t lda,
              const float *b, size_t ldb, float *c, size_t ldc, int nr, const tile_epi *e)
{
    __m512 c0[MR], c1[MR];
    const float *ar[MR];
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        c0[i] = _mm512_setzero_ps();
        c1[i] = _mm512_setzero_ps();
        ar[i] = a + (size_t)i * lda;
    }
    /* Columns past nr are neither read nor written: B and C may end there. */
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1u);
    __mmask16 m1 = nr >= 32   ? (__mmask16)0xffff
                   : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1u)
                             : (__mmask16)0;
    /* Full tiles load B unmasked (the common case, kept apart). */
#define KERNEL_LOOP(LOAD0, LOAD1)                                                              \
    for (int k = 0; k < kc; k++) {                                                             \
        __m512 b0 = LOAD0, b1 = LOAD1;                                                         \
        _Pragma("GCC unroll 12") for (int i = 0; i < mr; i++)                                  \
        {                                                                                      \
            __m512 ai = _mm512_set1_ps(direct ? ar[i][k] : a[i]);                              \
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);                                            \
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);                                            \
        }                                                                                      \
        if (!direct)                                                                           \
            a += mr;                                                                           \
        b += ldb;                                                                              \
    }
    if (nr == NR) {
        KERNEL_LOOP(_mm512_loadu_ps(b), _mm512_loadu_ps(b + 16))
    } else {
        KERNEL_LOOP(_mm512_maskz_loadu_ps(m0, b), _mm512_maskz_loadu_ps(m1, b + 16))
    }
#undef KERNEL_LOOP
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++)
        avx512_row_out(c0[i], c1[i], i, c + (size_t)i * ldc, m0, m1, e);
}

#define AVX512_MR(R)                                                                           \
    static void kernel_avx512_##R(int kc, const float *a, size_t lda, const float *b,          \
                                  size_t ldb, float *c, size_t ldc, int nr, const tile_epi *e) \
    {                                                                                          \
        kernel_avx512(R, false, kc, a, lda, b, ldb, c, ldc, nr, e);                            \
    }                                                                                          \
    static void kernel_avx512_direct_##R(int kc, const float *a, size_t lda, const float *b,   \
                                         size_t ldb, float *c, size_t ldc, int nr,             \
                                         const tile_epi *e)                                    \
    {                                                                                          \
        kernel_avx512(R, true, kc, a, lda, b, ldb, c, ldc, nr, e);                             \
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

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

static const kernel_fn avx512_kernels[2][MR + 1] = {
    {NULL, kernel_avx512_1, kernel_avx512_2, kernel_avx512_3, kernel_avx512_4, kernel_avx512_5,
     kernel_avx512_6, kernel_avx512_7, kernel_avx512_8, kernel_avx512_9, kernel_avx512_10,
     kernel_avx512_11, kernel_avx512_12},
    {NULL, kernel_avx512_direct_1, kernel_avx512_direct_2, kernel_avx512_direct_3,
     kernel_avx512_direct_4, kernel_avx512_direct_5, kernel_avx512_direct_6,
     kernel_avx512_direct_7, kernel_avx512_direct_8, kernel_avx512_direct_9,
     kernel_avx512_direct_10, kernel_avx512_direct_11, kernel_avx512_direct_12}};
#endif

md_gemm_isa md_gemm_isa_best(md_gemm_type type)
{
    (void)type;
#ifdef MD_X86_KERNELS
    if (md_cpu_detect().avx512)
        return MD_ISA_AVX512;
#endif
    return MD_ISA_GENERIC;
}

const char *md_gemm_isa_name(md_gemm_isa isa)
{
    switch (isa) {
    case MD_ISA_AVX512: return "avx512";
    case MD_ISA_GENERIC: break;
    }
    return "generic C";
}

static const kernel_fn (*kernels_for(md_gemm_isa isa))[MR + 1]
{
#ifdef MD_X86_KERNELS
    if (isa == MD_ISA_AVX512)
        return avx512_kernels;
#endif
    (void)isa;
    return generic_kernels;
}

/* ------------------------------------------------------------ packing */

static int panels_of(int n, int w)
{
    return (n + w - 1) / w;
}

/* Rows [i0, i0 + mc) x k [k0, k0 + kc) of op(A), times alpha, as panels of h
 * <= MR rows: panel p at dst + p * h * kc, laid out kc x mr. */
static void pack_a(float *dst, const float *src, size_t ld, bool trans, float alpha, int i0,
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

/* k [k0, k0 + kc) x columns [j0, j0 + nc) of op(B), times alpha, as panels of
 * NR columns (zero-padded): panel q at dst + q * NR * kc, laid out kc x NR. */
static void pack_b(float *dst, const float *src, size_t ld, bool trans, float alpha, int k0,
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

size_t md_gemm_packed_floats(bool is_a, int rows, int cols)
{
    if (is_a)
        return (size_t)rows * (size_t)cols;
    return (size_t)panels_of(cols, NR) * NR * (size_t)rows;
}

int md_gemm_panel_rows(int M)
{
    return M % MR == 0 || M % 8 != 0 ? MR : 8;
}

void md_gemm_pack_a_into(float *dst, const float *src, size_t ld, bool trans, int M, int K)
{
    pack_a(dst, src, ld, trans, 1.0f, 0, M, 0, K, md_gemm_panel_rows(M));
}

void md_gemm_pack_b_into(float *dst, const float *src, size_t ld, bool trans, int K, int N)
{
    pack_b(dst, src, ld, trans, 1.0f, 0, K, 0, N);
}

md_gemm_packed md_gemm_packed_view(float *data, bool is_a, int rows, int cols)
{
    md_gemm_packed p = {MD_GEMM_F32, is_a, rows, cols, is_a ? md_gemm_panel_rows(rows) : NR, data};
    return p;
}

static bool pack_new(md_gemm_packed *p, bool is_a, const float *src, size_t ld, bool trans,
                     int rows, int cols)
{
    memset(p, 0, sizeof *p);
    size_t n = md_gemm_packed_floats(is_a, rows, cols);
    float *d = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64 + 64);
    if (!d)
        return false;
    if (is_a)
        md_gemm_pack_a_into(d, src, ld, trans, rows, cols);
    else
        md_gemm_pack_b_into(d, src, ld, trans, rows, cols);
    *p = md_gemm_packed_view(d, is_a, rows, cols);
    return true;
}

bool md_gemm_pack_a(md_gemm_packed *p, const float *src, size_t ld, bool trans, int M, int K)
{
    return pack_new(p, true, src, ld, trans, M, K);
}

bool md_gemm_pack_b(md_gemm_packed *p, const float *src, size_t ld, bool trans, int K, int N)
{
    return pack_new(p, false, src, ld, trans, K, N);
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
    const kernel_fn (*kern)[MR + 1]; /* [direct A][mr] */
    int M, N, K;
    float alpha;
    md_gemm_operand A, B;
    float *C;
    size_t ldc;
    md_gemm_epilogue e;
} gemm_job;

static int kc_step(int K)
{
    return K <= KC_SINGLE ? K : KC_BLOCK;
}

/* The same sums as the kernels, in the same order, without packing: the
 * path when scratch memory cannot be had. */
static float op_at(const md_gemm_operand *o, bool is_a, int r, int c)
{
    if (o->kind == MD_OPERAND_PACKED) {
        const md_gemm_packed *p = o->packed;
        if (is_a) {
            int h = p->panel, pnl = r / h, mr = p->rows - pnl * h < h ? p->rows - pnl * h : h;
            return p->data[(size_t)pnl * h * p->cols + (size_t)c * mr + (size_t)(r % h)];
        }
        return p->data[((size_t)(c / NR) * p->rows + (size_t)r) * NR + (size_t)(c % NR)];
    }
    if (o->kind == MD_OPERAND_DIRECT || !o->trans)
        return o->data[(size_t)r * o->ld + (size_t)c];
    return o->data[(size_t)c * o->ld + (size_t)r];
}

static void block_unpacked(const gemm_job *j, int m0, int m1, int n0, int n1)
{
    int step = kc_step(j->K);
    for (int i = m0; i < m1; i++)
        for (int n = n0; n < n1; n++) {
            float *c = j->C + (size_t)i * j->ldc + (size_t)n;
            for (int pc = 0; pc < j->K; pc += step) {
                int kc = j->K - pc < step ? j->K - pc : step;
                float acc = 0.0f;
                for (int k = pc; k < pc + kc; k++)
                    acc += j->alpha * op_at(&j->A, true, i, k) * op_at(&j->B, false, k, n);
                tile_epi te = {pc > 0,
                               j->e.beta,
                               pc + kc == j->K,
                               j->e.bias_row ? j->e.bias_row + i : NULL,
                               j->e.bias_col ? j->e.bias_col + n : NULL,
                               j->e.row_scale ? j->e.row_scale + i : NULL,
                               j->e.lo > -INFINITY || j->e.hi < INFINITY,
                               j->e.lo,
                               j->e.hi,
                               j->e.add ? j->e.add + (size_t)i * j->e.ld_add + (size_t)n : NULL,
                               j->e.ld_add};
                bool read = te.accumulate || te.beta != 0.0f;
                *c = finish(acc, read ? *c : 0.0f, 0, 0, &te);
            }
        }
}

static void run_block(const gemm_job *j, int m0, int m1, int n0, int n1)
{
    if (m0 >= m1 || n0 >= n1)
        return;
    bool a_raw = j->A.kind == MD_OPERAND_RAW, b_raw = j->B.kind == MD_OPERAND_RAW;
    int K = j->K, step = kc_step(K);
    int mc_max = a_raw ? (m1 - m0 < MC_BLOCK ? m1 - m0 : MC_BLOCK) : m1 - m0;
    int nc_max = b_raw ? (n1 - n0 < NC_BLOCK ? n1 - n0 : NC_BLOCK) : n1 - n0;
    size_t sa_n = a_raw ? (size_t)mc_max * step : 0;
    size_t sb_n = b_raw ? (size_t)panels_of(nc_max, NR) * NR * step : 0;
    float *scratch = NULL;
    if (sa_n + sb_n > 0) {
        scratch = aligned_alloc(64, ((sa_n + sb_n) * sizeof(float) + 63) / 64 * 64);
        if (!scratch) {
            block_unpacked(j, m0, m1, n0, n1);
            return;
        }
    }
    float *sa = scratch, *sb = scratch + sa_n;
    bool a_direct = j->A.kind == MD_OPERAND_DIRECT;
    int h = j->A.kind == MD_OPERAND_PACKED ? j->A.packed->panel : MR; /* A panel height */
    float alpha_a = a_raw ? j->alpha : 1.0f, alpha_b = !a_raw && b_raw ? j->alpha : 1.0f;
    const md_gemm_epilogue *ge = &j->e;
    bool clamp = ge->lo > -INFINITY || ge->hi < INFINITY;
    int nc_step = b_raw ? NC_BLOCK : n1 - n0, mc_step = a_raw ? MC_BLOCK : m1 - m0;
    for (int jc = n0; jc < n1; jc += nc_step) {
        int nc = n1 - jc < nc_step ? n1 - jc : nc_step;
        for (int pc = 0; pc < K; pc += step) {
            int kc = K - pc < step ? K - pc : step;
            const float *bbase;
            size_t ldb, bpanel; /* panel q at bbase + q * bpanel, rows ldb apart */
            if (b_raw) {
                pack_b(sb, j->B.data, j->B.ld, j->B.trans, alpha_b, pc, kc, jc, nc);
                bbase = sb;
                ldb = NR;
                bpanel = (size_t)NR * kc;
            } else if (j->B.kind == MD_OPERAND_PACKED) {
                bbase = j->B.packed->data + (size_t)(jc / NR) * NR * K + (size_t)pc * NR;
                ldb = NR;
                bpanel = (size_t)NR * K;
            } else {
                bbase = j->B.data + (size_t)pc * j->B.ld + (size_t)jc;
                ldb = j->B.ld;
                bpanel = NR;
            }
            for (int ic = m0; ic < m1; ic += mc_step) {
                int mc = m1 - ic < mc_step ? m1 - ic : mc_step;
                if (a_raw)
                    pack_a(sa, j->A.data, j->A.ld, j->A.trans, alpha_a, ic, mc, pc, kc, MR);
                for (int q = 0; q < panels_of(nc, NR); q++) {
                    int col = jc + q * NR, nr = nc - q * NR < NR ? nc - q * NR : NR;
                    const float *bp = bbase + (size_t)q * bpanel;
                    for (int p = 0; p < panels_of(mc, h); p++) {
                        int row = ic + p * h, mr = mc - p * h < h ? mc - p * h : h;
                        const float *ap;
                        if (a_raw) {
                            ap = sa + (size_t)p * h * kc;
                        } else if (a_direct) {
                            ap = j->A.data + (size_t)row * j->A.ld + (size_t)pc;
                        } else {
                            int gp = row / h, gmr = j->M - gp * h < h ? j->M - gp * h : h;
                            ap = j->A.packed->data + (size_t)gp * h * K + (size_t)pc * gmr;
                            mr = gmr < mr ? gmr : mr;
                        }
                        tile_epi te = {pc > 0,
                                       ge->beta,
                                       pc + kc == K,
                                       ge->bias_row ? ge->bias_row + row : NULL,
                                       ge->bias_col ? ge->bias_col + col : NULL,
                                       ge->row_scale ? ge->row_scale + row : NULL,
                                       clamp,
                                       ge->lo,
                                       ge->hi,
                                       ge->add ? ge->add + (size_t)row * ge->ld_add + (size_t)col
                                               : NULL,
                                       ge->ld_add};
                        j->kern[a_direct][mr](kc, ap, a_direct ? j->A.ld : 0, bp, ldb,
                                              j->C + (size_t)row * j->ldc + (size_t)col, j->ldc,
                                              nr, &te);
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
    j->kern = kernels_for(isa);
    j->M = M;
    j->N = N;
    j->K = K;
    j->alpha = alpha;
    j->A = A;
    j->B = B;
    j->C = C;
    j->ldc = ldc;
    j->e = e ? *e : md_gemm_epilogue_none();
}

/* K == 0: the product is zero; the epilogue still applies. */
static void empty_product(const gemm_job *j, int m0, int m1, int n0, int n1)
{
    tile_epi te = {false, j->e.beta, true, NULL, NULL, NULL,
                   j->e.lo > -INFINITY || j->e.hi < INFINITY, j->e.lo, j->e.hi, NULL, 0};
    for (int i = m0; i < m1; i++)
        for (int n = n0; n < n1; n++) {
            float *c = j->C + (size_t)i * j->ldc + (size_t)n;
            te.bias_row = j->e.bias_row ? j->e.bias_row + i : NULL;
            te.bias_col = j->e.bias_col ? j->e.bias_col + n : NULL;
            te.row_scale = j->e.row_scale ? j->e.row_scale + i : NULL;
            te.add = j->e.add ? j->e.add + (size_t)i * j->e.ld_add + (size_t)n : NULL;
            *c = finish(0.0f, j->e.beta != 0.0f ? *c : 0.0f, 0, 0, &te);
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

void md_gemm(md_threadpool *pool, int M, int N, int K, float alpha, md_gemm_operand A,
             md_gemm_operand B, float *C, size_t ldc, const md_gemm_epilogue *e)
{
    if (M <= 0 || N <= 0)
        return;
    gemm_job j;
    md_gemm_isa isa = md_gemm_isa_best(MD_GEMM_F32);
    job_init(&j, isa, M, N, K, alpha, A, B, C, ldc, e);
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

void md_sgemm(md_threadpool *pool, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    md_gemm_epilogue e = md_gemm_epilogue_none();
    e.beta = beta;
    md_gemm(pool, M, N, K, alpha, md_gemm_raw(A, (size_t)lda, trans_a),
            md_gemm_raw(B, (size_t)ldb, trans_b), C, (size_t)ldc, &e);
}
