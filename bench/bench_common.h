/* Helpers shared by the benchmark programs: clocks, a median sort and
 * aligned buffers. */
#ifndef MD_BENCH_COMMON_H
#define MD_BENCH_COMMON_H

#include <stdlib.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread: with one thread, the run's cost without
 * the time other processes on a shared machine take from it. */
static inline double bench_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* qsort comparison of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A buffer on a cache-line boundary, as the networks' activations are (the
 * buffer cache hands out 64-byte aligned memory): with malloc's 16-byte
 * offset every 64-byte store of a GEMM tile splits across two lines, and
 * the 1814 x 1152 x 384 bf16 product measured 0.86-0.92x its in-network
 * speed (Zen 4). Free with free(). */
static inline void *bench_alloc(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

#endif
