/* A minimal fork-join helper: runs fn(ctx, task, worker) for task in [0, n)
 * on `threads` POSIX threads (the caller is worker 0), tasks handed out in
 * order from a shared counter. With threads <= 1 everything runs inline. */
#ifndef MD_PARALLEL_H
#define MD_PARALLEL_H

typedef void (*md_task_fn)(void *ctx, int task, int worker);

/* Returns the number of workers actually used (>= 1): if a thread cannot be
 * started, the remaining workers (at least the caller) do all the tasks. */
int md_parallel_for(int threads, int n, md_task_fn fn, void *ctx);

#endif
