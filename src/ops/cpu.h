/* What the CPU offers, read with CPUID (and XGETBV for the operating
 * system's support of the wider register state), for the kernels' runtime
 * dispatch and for benchmarks. Pure functions of the hardware. */
#ifndef MD_OPS_CPU_H
#define MD_OPS_CPU_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    bool avx2_fma;    /* AVX2 + FMA3 */
    bool avx512;      /* AVX-512 F, BW, VL with the OS saving zmm state */
    bool avx512_bf16; /* VDPBF16PS and friends */
    bool amx_bf16;    /* AMX tiles with bf16 (the OS must also grant tile state) */
} md_cpu_features;

md_cpu_features md_cpu_detect(void);
/* The processor's brand string ("AMD EPYC 9R45 ...", or "unknown CPU")
 * and, on x86, its CPUID family and model: "AMD EPYC (family 25, model 17)". */
void md_cpu_model_name(char *buf, size_t size);

#endif
