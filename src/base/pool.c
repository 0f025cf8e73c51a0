#include "base/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define POOL_MAX 64
#define SPIN_ROUNDS 20000

/* Tasks are claimed from one 64-bit word: region number (high 32 bits) and
 * next task (low 32). A worker that wakes late, after its region ended, fails
 * the compare-exchange and simply waits again, so the caller only ever waits
 * for tasks actually running, never for a worker that is not scheduled. */
struct md_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;             /* wake-up counter, bumped under mu */
    atomic_uint_least64_t claim; /* region << 32 | next task */
    atomic_int done;             /* tasks finished in the current region */
    atomic_bool stop;
    md_task_fn fn;
    void *ctx;
    atomic_int n;                /* tasks in the current region */
    uint32_t region;
    int workers; /* threads besides the caller */
    pthread_t tid[POOL_MAX];
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void take_tasks(md_pool *p, int worker)
{
    for (;;) {
        uint_least64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
        uint32_t idx = (uint32_t)c;
        if ((int64_t)idx >= (int64_t)atomic_load_explicit(&p->n, memory_order_relaxed))
            return;
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, c + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        p->fn(p->ctx, (int)idx, worker);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

typedef struct {
    md_pool *p;
    int worker;
} start_arg;

static void *worker_main(void *arg)
{
    md_pool *p = ((start_arg *)arg)->p;
    int worker = ((start_arg *)arg)->worker;
    free(arg);
    unsigned seen = 0; /* gen starts at 0 and no region runs before the team exists */
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
               !atomic_load(&p->stop) && spins < SPIN_ROUNDS) {
            cpu_relax();
            spins++;
        }
        if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
            !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            break;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        take_tasks(p, worker);
    }
    return NULL;
}

md_pool *md_pool_create(int threads)
{
    if (threads <= 1)
        return NULL;
    if (threads > POOL_MAX)
        threads = POOL_MAX;
    md_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    atomic_init(&p->gen, 0);
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->n, 0); /* claim idx 0 >= n: nothing to take until the first region */
    for (int w = 1; w < threads; w++) {
        start_arg *a = malloc(sizeof *a);
        if (!a)
            break;
        a->p = p;
        a->worker = w;
        if (pthread_create(&p->tid[p->workers], NULL, worker_main, a) != 0) {
            free(a);
            break;
        }
        p->workers++;
    }
    if (p->workers == 0) {
        md_pool_destroy(p);
        return NULL;
    }
    return p;
}

void md_pool_run(md_pool *p, int n, md_task_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (!p || n == 1) {
        for (int i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    /* Close the previous region for stragglers before changing fn, ctx, n:
     * its claim word is exhausted, and the new one carries a new region. */
    p->region++;
    atomic_store_explicit(&p->claim, (uint_least64_t)p->region << 32 | 0xffffffffu,
                          memory_order_release);
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->n, n, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->claim, (uint_least64_t)p->region << 32, memory_order_release);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    take_tasks(p, 0);
    int spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < n) {
        if (++spins < SPIN_ROUNDS)
            cpu_relax();
        else
            sched_yield();
    }
}

int md_pool_threads(const md_pool *p)
{
    return p ? p->workers + 1 : 1;
}

void md_pool_destroy(md_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int w = 0; w < p->workers; w++)
        pthread_join(p->tid[w], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
