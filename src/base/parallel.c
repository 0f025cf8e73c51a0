#include "base/parallel.h"

#include <pthread.h>
#include <stdatomic.h>

#define MD_MAX_WORKERS 64

typedef struct {
    md_task_fn fn;
    void *ctx;
    int n;
    atomic_int next;
} team;

typedef struct {
    team *t;
    int worker;
} worker_arg;

static void work(team *t, int worker)
{
    for (;;) {
        int i = atomic_fetch_add(&t->next, 1);
        if (i >= t->n)
            break;
        t->fn(t->ctx, i, worker);
    }
}

static void *worker_main(void *p)
{
    worker_arg *a = p;
    work(a->t, a->worker);
    return NULL;
}

int md_parallel_for(int threads, int n, md_task_fn fn, void *ctx)
{
    if (n <= 0)
        return 1;
    if (threads > n)
        threads = n;
    if (threads > MD_MAX_WORKERS)
        threads = MD_MAX_WORKERS;
    team t = {fn, ctx, n, 0};
    atomic_init(&t.next, 0);
    if (threads <= 1) {
        work(&t, 0);
        return 1;
    }
    pthread_t tid[MD_MAX_WORKERS];
    worker_arg args[MD_MAX_WORKERS];
    int started = 0;
    for (int w = 1; w < threads; w++) {
        args[w].t = &t;
        args[w].worker = w;
        if (pthread_create(&tid[w], NULL, worker_main, &args[w]) != 0)
            break;
        started = w;
    }
    work(&t, 0);
    for (int w = 1; w <= started; w++)
        pthread_join(tid[w], NULL);
    return started + 1;
}
