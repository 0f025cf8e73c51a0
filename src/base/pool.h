/* The one thread pool (md_threadpool, public in metricdepth.h): a persistent
 * team for fork-join regions. A forward pass runs dozens of millisecond-sized
 * parallel regions, too short to start threads for each; workers spin briefly
 * between regions, then sleep on a condition variable.
 *
 * Sharing: any number of threads may call md_pool_run on one pool at once.
 * One region owns the team at a time; a caller that finds it busy (another
 * model, another application thread, or a task of the running region that
 * itself calls md_pool_run) runs its tasks inline on its own thread instead of
 * waiting. Tasks never learn which: they get a worker index below
 * md_pool_threads(pool) for per-worker scratch, and results must not depend
 * on which worker ran a task. */
#ifndef MD_BASE_POOL_H
#define MD_BASE_POOL_H

#include "metricdepth.h"

/* fn(ctx, task, worker): task in [0, n), worker in [0, md_pool_threads). */
typedef void (*md_task_fn)(void *ctx, int task, int worker);

/* A team of `threads` (the caller of md_pool_run counts as one; 0 = one per
 * online CPU). NULL when out of memory; if fewer threads start, the pool is
 * smaller. */
md_threadpool *md_pool_create(int threads);
/* Runs every task and returns when all have finished. pool may be NULL
 * (everything inline, worker 0). With T = md_pool_threads(pool) workers,
 * worker w starts on tasks [n w / T, n (w + 1) / T) in order, the caller
 * being worker 0; a worker done with its own range takes tasks from the back
 * of the others'. Splitting data in the same order in consecutive regions
 * keeps each part on the core that wrote it. */
void md_pool_run(md_threadpool *pool, int n, md_task_fn fn, void *ctx);
/* Workers a task may be given (1 for NULL): the size of per-worker scratch. */
int md_pool_threads(const md_threadpool *pool);
void md_pool_destroy(md_threadpool *pool);

/* Online CPUs (>= 1). */
int md_cpu_count(void);

#endif
