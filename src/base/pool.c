#include "base/pool.h"
#include "base/base.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POOL_MAX 64
#define SPIN_ROUNDS 20000 /* about 0.5 ms of PAUSE on Zen 4 before a worker sleeps */
/* A waiting worker yields its core every this many PAUSEs. In predict the
 * loader and savers share the cores with the network's team, and a worker
 * that only spun held a core they wanted (the network's own thread among
 * them, which the next region waits for). With the yield a folder of 250
 * images took 0.89x the time on the two-core VM; the network alone runs as
 * before (with nothing else runnable, the yield returns at once). */
#define SPIN_YIELD_EVERY 64
#define POOL_MAX_TASKS 0xffffff /* tasks of one region: a range word's 24-bit fields */

/* Tasks are dealt in contiguous ranges, range w to worker w (the caller of
 * md_pool_run is worker 0), so a layer split the same way as the layer
 * before it (by pixels or by channels, in order) mostly touches cache lines
 * its own core wrote. On the two-core VM where this was measured, a core
 * that touches lines the other core holds pays several times a local access
 * (a depthwise layer after a pointwise layer split over both cores ran 2-3x
 * slower than on local lines), and dealing ranges instead of first-come
 * claims made a two-thread FastDepth pass 8 % faster in paired runs. A worker
 * that finishes its range steals from the back of the others' ranges, so a
 * worker the system does not schedule delays nothing: the caller only ever
 * waits for tasks that are running.
 *
 * Each range is one 64-bit word, tag << 48 | back << 24 | front, claimed by
 * compare-exchange: owner from the front, thieves from the back. A word
 * only changes to a new region's range after the old region's tasks were
 * all claimed and finished (front == back), so a compare-exchange that
 * succeeds claims a task of the current region, and the fn and ctx read
 * after it (acquire) are the ones the caller published with the range
 * (release). The tag (the region's wake-up count, low 16 bits) only keeps
 * the dealing: a worker still scanning the last region's ranges as thief
 * cannot take the new region's tasks before their owners start. `busy`
 * gives the team to one region at a time. */
typedef struct {
    _Alignas(64) atomic_uint_least64_t word; /* own cache line: claims do not collide */
} task_range;

struct md_threadpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;             /* wake-up counter, bumped under mu */
    atomic_int done;             /* tasks finished in the current region */
    atomic_bool stop;
    atomic_bool busy;            /* a region owns the team */
    md_task_fn fn;
    void *ctx;
    int workers; /* threads besides the caller */
    pthread_t tid[POOL_MAX];
    task_range range[POOL_MAX];
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

static inline uint_least64_t range_word(uint32_t front, uint32_t back, uint16_t tag)
{
    return (uint_least64_t)tag << 48 | (uint_least64_t)back << 24 | front;
}

/* Claims one task of range v of the region tagged tag (owner: its front;
 * thief: its back); -1 when the range is empty or belongs to another region. */
static int claim(md_threadpool *p, int v, bool own, uint16_t tag)
{
    atomic_uint_least64_t *w = &p->range[v].word;
    uint_least64_t c = atomic_load_explicit(w, memory_order_acquire);
    for (;;) {
        uint32_t front = (uint32_t)(c & POOL_MAX_TASKS);
        uint32_t back = (uint32_t)(c >> 24 & POOL_MAX_TASKS);
        if ((uint16_t)(c >> 48) != tag || front >= back)
            return -1;
        uint_least64_t next = own ? range_word(front + 1, back, tag)
                                  : range_word(front, back - 1, tag);
        if (atomic_compare_exchange_weak_explicit(w, &c, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            return (int)(own ? front : back - 1);
    }
}

static void take_tasks(md_threadpool *p, int worker, uint16_t tag)
{
    int team = p->workers + 1;
    for (int k = 0; k < team; k++) {
        int v = (worker + k) % team, idx;
        while ((idx = claim(p, v, k == 0, tag)) >= 0) {
            p->fn(p->ctx, idx, worker);
            atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        }
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
            if (++spins % SPIN_YIELD_EVERY == 0)
                sched_yield();
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
        take_tasks(p, worker, (uint16_t)seen);
    }
    return NULL;
}

md_threadpool *md_pool_create(int threads)
{
    if (threads <= 0)
        threads = md_cpu_count();
    if (threads > POOL_MAX)
        threads = POOL_MAX;
    md_threadpool *p = aligned_alloc(64, (sizeof *p + 63) / 64 * 64);
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
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
    atomic_init(&p->done, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->busy, false);
    for (int w = 0; w < POOL_MAX; w++) /* empty: nothing to take until the first region */
        atomic_init(&p->range[w].word, 0);
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

typedef struct {
    md_task_fn fn;
    void *ctx;
    int offset;
} offset_ctx;

static void offset_task(void *ctx, int task, int worker)
{
    const offset_ctx *o = ctx;
    o->fn(o->ctx, o->offset + task, worker);
}

void md_pool_run(md_threadpool *p, int n, md_task_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (n > POOL_MAX_TASKS) { /* more than a range word holds: regions in turn */
        for (int o = 0; o < n; o += POOL_MAX_TASKS) {
            offset_ctx oc = {fn, ctx, o};
            md_pool_run(p, n - o < POOL_MAX_TASKS ? n - o : POOL_MAX_TASKS, offset_task, &oc);
        }
        return;
    }
    bool expected = false;
    if (!p || p->workers == 0 || n == 1 ||
        !atomic_compare_exchange_strong_explicit(&p->busy, &expected, true,
                                                 memory_order_acquire, memory_order_relaxed)) {
        for (int i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    /* Every range of the previous region is empty (its tasks all finished),
     * so no worker can claim until the stores below publish fn and ctx. */
    int team = p->workers + 1;
    /* gen changes only here, under busy: the region's tag is its next value */
    uint16_t tag = (uint16_t)(atomic_load_explicit(&p->gen, memory_order_relaxed) + 1u);
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    for (int w = 0; w < team; w++)
        atomic_store_explicit(&p->range[w].word,
                              range_word((uint32_t)((long long)n * w / team),
                                         (uint32_t)((long long)n * (w + 1) / team), tag),
                              memory_order_release);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    take_tasks(p, 0, tag);
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
