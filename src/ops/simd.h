/* The one SIMD shim for portable kernels: 16-float vectors with GCC/Clang
 * vector extensions (one zmm register with AVX-512; the compiler splits them
 * elsewhere). Vectors never cross a function boundary by value (that would
 * depend on the target's ABI); loads and stores go through memcpy, which
 * compiles to unaligned vector moves. ISA-specific kernels (gemm.c) use
 * <immintrin.h> directly under a target attribute and runtime dispatch. */
#ifndef MD_OPS_SIMD_H
#define MD_OPS_SIMD_H

#include <string.h>

/* -std=c11 turns off a*b+c contraction; kernels that include this want
 * fused multiply-adds (as the build's -ffp-contract=fast asks). */
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

typedef float md_vf16 __attribute__((vector_size(64)));

static inline md_vf16 *md_vload_into(md_vf16 *v, const float *p)
{
    memcpy(v, p, sizeof *v);
    return v;
}
#define MD_LOAD16(p) (*md_vload_into(&(md_vf16){0}, (p)))
#define MD_STORE16(p, v) memcpy((p), &(v), sizeof(md_vf16))
#define MD_SPLAT16(x) ((md_vf16){0} + (x))

#endif
