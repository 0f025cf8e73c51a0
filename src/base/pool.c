#include "base/pool.h"
#include "base/base.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define POOL_MAX 64
#define SPIN_ROUNDS 20000

/* Tasks are claimed from one 64-bit word: region number (high 32 bits) and
 * next task (low 32). A worker that wakes late, after its region ended, fails
 * the compare-exchange and simply waits again, so the caller only ever waits
 * for tasks actually running, never for a worker that is not scheduled.
 * `busy` gives the team to one region at a time; fn, ctx, n and region are
 * written only by its holder, and published to the workers by the release
 * store of the claim word. */
struct md_threadpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;             /* wake-up counter, bumped under mu */
    atomic_uint_least64_t claim; /* region << 32 | next task */
    atomic_int done;             /* tasks finished in the current region */
    atomic_bool stop;
    atomic_bool busy;            /* a region owns the team */
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

int md_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > POOL_MAX ? POOL_MAX : (int)n;
}

static void take_tasks(md_threadpool *p, int worker)
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
    md_threadpool *p;
    int worker;
} start_arg;

static void *worker_main(void *arg)
{
    md_threadpool *p = ((start_arg *)arg)->p;
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

md_threadpool *md_pool_create(int threads)
{
    if (threads <= 0)
        threads = md_cpu_count();
    if (threads > POOL_MAX)
        threads = POOL_MAX;
    md_threadpool *p = calloc(1, sizeof *p);
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
    atomic_init(&p->busy, false);
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
    return p;
}

void md_pool_run(md_threadpool *p, int n, md_task_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    bool expected = false;
    if (!p || p->workers == 0 || n == 1 ||
        !atomic_compare_exchange_strong_explicit(&p->busy, &expected, true,
                                                 memory_order_acquire, memory_order_relaxed)) {
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
    atomic_store_explicit(&p->busy, false, memory_order_release);
}

int md_pool_threads(const md_threadpool *p)
{
    return p ? p->workers + 1 : 1;
}

void md_pool_destroy(md_threadpool *p)
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

/* ------------------------------------------------------------ public API */

md_status md_threadpool_create(int threads, md_threadpool **out, md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "thread pool: no output pointer");
    *out = NULL;
    if (threads < 0)
        return md_fail(err, MD_ERR_ARG, "thread pool: negative thread count %d", threads);
    md_threadpool *p = md_pool_create(threads);
    if (!p)
        return md_fail(err, MD_ERR_NOMEM, "thread pool: out of memory");
    *out = p;
    return MD_OK;
}

int md_threadpool_threads(const md_threadpool *pool)
{
    return md_pool_threads(pool);
}

void md_threadpool_free(md_threadpool *pool)
{
    md_pool_destroy(pool);
}
