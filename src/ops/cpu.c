#include "ops/cpu.h"

#include "metricdepth.h"

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
    /* A VM's brand string may name no model ("AMD EPYC"): the CPUID family
     * and model tell Zen 4 (25, 17) from Zen 5 (26, 2), for instance. */
    unsigned a, bx, c, d, fam = 0, mod = 0;
    if (__get_cpuid(1, &a, &bx, &c, &d)) {
        fam = (a >> 8) & 0xf;
        mod = (a >> 4) & 0xf;
        if (fam == 0xf || fam == 6)
            mod += ((a >> 16) & 0xf) << 4;
        if (fam == 0xf)
            fam += (a >> 20) & 0xff;
    }
    snprintf(buf, size, "%.*s (family %u, model %u)", (int)n, n ? p : "unknown CPU", fam, mod);
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

/* ------------------------------------------------------- throughput */

#include <time.h>

static double thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Each figure is the best of REPEATS short runs: a run the scheduler or the
 * hypervisor interrupted only reads slower. */
#define LOOPS 400000L
#define REPEATS 5

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* Four dependent additions per iteration: one cycle each. */
static double clock_ghz(void)
{
    long x = 0;
    double t0 = thread_seconds();
    for (long n = 0; n < 4 * LOOPS; n++)
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    double t = thread_seconds() - t0;
    return t > 0 ? 16.0 * LOOPS / t * 1e-9 : 0.0;
}

/* 16 independent chains of one instruction: its throughput, per second. */
#define CHAINS(I)                                                                              \
    I(0) I(1) I(2) I(3) I(4) I(5) I(6) I(7) I(8) I(9) I(10) I(11) I(12) I(13) I(14) I(15)
#define ZCLOBBER                                                                               \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",   \
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

/* BODY: one instruction in N independent chains on registers 0..N-1, its
 * operands in registers A and B (zeroed first); CLOBBER: those chains. The
 * instruction's throughput, per second. */
#define THROUGHPUT(NAME, TARGET, A, B, N, BODY, CLOBBER)                                       \
    __attribute__((target(TARGET))) static double NAME(void)                                   \
    {                                                                                          \
        __asm__ volatile("vxorps %%xmm" A ", %%xmm" A ", %%xmm" A "\n\t"                        \
                         "vxorps %%xmm" B ", %%xmm" B ", %%xmm" B ::: "xmm" A, "xmm" B);       \
        double t0 = thread_seconds();                                                          \
        for (long n = 0; n < LOOPS; n++)                                                       \
            __asm__ volatile(BODY ::: CLOBBER);                                                \
        double t = thread_seconds() - t0;                                                      \
        return t > 0 ? (double)(N) * LOOPS / t : 0.0;                                          \
    }
#define F(i) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #i "\n\t"
THROUGHPUT(fma512_per_s, "avx512f", "30", "31", 16, CHAINS(F), ZCLOBBER)
#undef F
#define F(i) "vdpbf16ps %%zmm30, %%zmm31, %%zmm" #i "\n\t"
THROUGHPUT(dpbf16_per_s, "avx512f,avx512bf16", "30", "31", 16, CHAINS(F), ZCLOBBER)
#undef F
/* 14 chains with AVX2: two of the 16 registers hold the operands */
#define F(i) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #i "\n\t"
#define YCLOBBER                                                                               \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",   \
        "xmm11", "xmm12", "xmm13"
THROUGHPUT(fma256_per_s, "avx2,fma", "14", "15", 14,
           F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) F(12) F(13), YCLOBBER)
#undef F

static double best_of(double (*run)(void))
{
    double best = 0;
    for (int i = 0; i < REPEATS; i++) {
        double v = run();
        best = v > best ? v : best;
    }
    return best;
}

void md_cpu_measure(md_cpu_throughput *out)
{
    memset(out, 0, sizeof *out);
    md_cpu_features f = md_cpu_detect();
    double ghz = best_of(clock_ghz);
    out->ghz = ghz;
    if (ghz <= 0)
        return;
    double hz = ghz * 1e9;
    if (f.avx512)
        out->fp32_flop_per_cycle = best_of(fma512_per_s) * 32.0 / hz; /* 16 lanes x 2 */
    else if (f.avx2_fma)
        out->fp32_flop_per_cycle = best_of(fma256_per_s) * 16.0 / hz;
    if (f.avx512_bf16)
        out->bf16_flop_per_cycle = best_of(dpbf16_per_s) * 64.0 / hz; /* 16 lanes x 2 x 2 */
}
#else
void md_cpu_measure(md_cpu_throughput *out)
{
    memset(out, 0, sizeof *out);
}
#endif

#include "ops/gemm.h"

#include <unistd.h>

void md_runtime_describe(md_runtime_info *out)
{
    memset(out, 0, sizeof *out);
    md_cpu_model_name(out->cpu, sizeof out->cpu);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->cpus = n > 0 ? (int)n : 1;
    out->fp32_kernels = md_gemm_isa_name(md_gemm_isa_best(MD_GEMM_F32));
    out->bf16_kernels = md_gemm_isa_name(md_gemm_isa_best(MD_GEMM_BF16));
    out->amx_bf16 = md_cpu_detect().amx_bf16;
}
