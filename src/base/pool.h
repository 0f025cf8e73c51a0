/* A persistent thread team for fine-grained fork-join: a CNN forward pass runs
 * dozens of millisecond-sized parallel regions, too short to start threads
 * for each (md_parallel_for does that, which suits long regions). Workers
 * spin briefly between regions, then sleep on a condition variable. Task
 * functions have md_parallel_for's signature. */
#ifndef MD_BASE_POOL_H
#define MD_BASE_POOL_H

#include "base/parallel.h"

typedef struct md_pool md_pool;

/* A team of `threads` (the caller counts as one). Returns NULL when threads
 * <= 1 or no thread could be started; a NULL pool runs everything inline. */
md_pool *md_pool_create(int threads);
/* Runs fn(ctx, task, worker) for task in [0, n), the caller taking part;
 * returns when every task has finished. Not reentrant. */
void md_pool_run(md_pool *pool, int n, md_task_fn fn, void *ctx);
int md_pool_threads(const md_pool *pool);
void md_pool_destroy(md_pool *pool);

#endif
