#include "ops/cpu.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

/* CPUID traps to the hypervisor on virtual machines (microseconds), and the
 * kernels ask on every call: read the hardware once. The result is a pure
 * function of the machine, so this is a cache, not state. */
static md_cpu_features detected;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static void detect(void);

md_cpu_features md_cpu_detect(void)
{
    pthread_once(&detect_once, detect);
    return detected;
}

static void detect(void)
{
    md_cpu_features f;
    memset(&f, 0, sizeof f);
    detected = f;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    bool osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx)
        return;
    uint64_t xcr0 = xgetbv0();
    bool ymm_state = (xcr0 & 0x6) == 0x6;       /* SSE + AVX */
    bool zmm_state = (xcr0 & 0xe6) == 0xe6;     /* + opmask, ZMM_Hi256, Hi16_ZMM */
    bool tile_state = (xcr0 & 0x60000) == 0x60000; /* XTILECFG + XTILEDATA */
    if (__get_cpuid_max(0, NULL) < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    bool avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1,
         avx512vl = (b >> 31) & 1, amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    bool avx512bf16 = (a1 >> 5) & 1;
    f.avx2_fma = ymm_state && avx2 && fma;
    f.avx512 = zmm_state && avx512f && avx512bw && avx512vl && f.avx2_fma;
    f.avx512_bf16 = f.avx512 && avx512bf16;
    f.amx_bf16 = f.avx512 && tile_state && amx_bf16 && amx_tile;
    detected = f;
}

void md_cpu_model_name(char *buf, size_t size)
{
    unsigned r[12];
    if (size == 0)
        return;
    if (__get_cpuid_max(0x80000000u, NULL) < 0x80000004u) {
        snprintf(buf, size, "unknown CPU");
        return;
    }
    for (unsigned i = 0; i < 3; i++)
        __cpuid(0x80000002u + i, r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]);
    char s[49];
    memcpy(s, r, 48);
    s[48] = '\0';
    const char *p = s;
    while (*p == ' ')
        p++;
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == ' ')
        n--;
    snprintf(buf, size, "%.*s", (int)n, n ? p : "unknown CPU");
}
#else
md_cpu_features md_cpu_detect(void)
{
    md_cpu_features f;
    memset(&f, 0, sizeof f);
    return f;
}

void md_cpu_model_name(char *buf, size_t size)
{
    if (size)
        snprintf(buf, size, "unknown CPU");
}
#endif
