/* A three-stage pipeline over a sequence of items: load on worker threads,
 * run on the calling thread in item order, save on worker threads, done() in
 * item order. With the network in the middle stage, decoding and
 * preprocessing of the next images and writing of the previous ones overlap
 * with it.
 *
 * Items live in `depth` slots; item i uses slot i % depth, so at most depth
 * items are in flight and memory stays bounded. One mutex and one condition
 * variable guard the slot states: items arrive at a few per second at most,
 * so contention does not matter. */
#include "base/pipe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_FREE = 0, SLOT_LOADING, SLOT_LOADED, SLOT_RAN, SLOT_SAVING };

typedef struct {
    int state;
    size_t index;
    int failed; /* stage that failed (MD_PIPE_LOAD, ...), 0 when none */
} slot_state;

typedef struct {
    const md_pipe_config *c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot_state *slots;
    size_t next_load;  /* next index a loader takes */
    size_t next_save;  /* next index a saver takes */
    size_t end;        /* first index past the sequence */
    size_t finished;   /* items handed to done() */
    int stopping;
    md_pipe_stats stats;
} pipe_ctx;

static void *slot_mem(const pipe_ctx *p, size_t index)
{
    return (char *)p->c->slots + (index % (size_t)p->c->depth) * p->c->slot_size;
}

static int stop_requested(pipe_ctx *p)
{
    if (!p->stopping && p->c->stop && atomic_load_explicit(p->c->stop, memory_order_relaxed))
        p->stopping = 1;
    return p->stopping;
}

/* Hands an item back: done() outside the lock, then frees its slot. Savers
 * take items in order but may finish out of order; each waits for its turn,
 * so done() runs in item order, one call at a time (callers report and count
 * there without locks). Item `index` is handed back after items 0..index-1. */
static void finish(pipe_ctx *p, size_t index, int failed)
{
    pthread_mutex_lock(&p->mu);
    while (p->finished != index)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (p->c->done)
        p->c->done(p->c->user, index, slot_mem(p, index), failed);
    pthread_mutex_lock(&p->mu);
    slot_state *s = &p->slots[index % (size_t)p->c->depth];
    s->state = SLOT_FREE;
    p->finished++;
    if (failed == MD_PIPE_DROPPED)
        p->stats.dropped++;
    else if (failed)
        p->stats.failed++;
    else
        p->stats.done++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *loader(void *arg)
{
    pipe_ctx *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        size_t i = p->next_load;
        if (i >= p->end || stop_requested(p))
            break;
        slot_state *s = &p->slots[i % (size_t)p->c->depth];
        if (s->state != SLOT_FREE) { /* its previous item is still in flight */
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        p->next_load++;
        s->state = SLOT_LOADING;
        s->index = i;
        s->failed = 0;
        pthread_mutex_unlock(&p->mu);
        int rc = p->c->load(p->c->user, i, slot_mem(p, i));
        pthread_mutex_lock(&p->mu);
        if (rc == MD_PIPE_END) {
            if (i < p->end)
                p->end = i;
            s->state = SLOT_FREE;
        } else {
            s->failed = rc ? MD_PIPE_LOAD : 0;
            s->state = SLOT_LOADED;
        }
        pthread_cond_broadcast(&p->cv);
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void *saver(void *arg)
{
    pipe_ctx *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        size_t i = p->next_save;
        if (i >= p->end)
            break;
        slot_state *s = &p->slots[i % (size_t)p->c->depth];
        if (s->index != i || s->state != SLOT_RAN) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        p->next_save++;
        s->state = SLOT_SAVING;
        int failed = s->failed;
        pthread_mutex_unlock(&p->mu);
        if (!failed && p->c->save && p->c->save(p->c->user, i, slot_mem(p, i)) != 0)
            failed = MD_PIPE_SAVE;
        finish(p, i, failed);
        pthread_mutex_lock(&p->mu);
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int md_pipe_run(const md_pipe_config *c, md_pipe_stats *stats)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!c || !c->load || !c->run || c->depth < 1 || !c->slots)
        return -1;
    pipe_ctx p;
    memset(&p, 0, sizeof p);
    p.c = c;
    p.end = c->count;
    p.slots = calloc((size_t)c->depth, sizeof *p.slots);
    int nl = c->load_threads < 1 ? 1 : c->load_threads > 16 ? 16 : c->load_threads;
    if (c->count == (size_t)-1)
        nl = 1; /* the end is found by loading in order */
    int ns = c->save_threads < 1 ? 1 : c->save_threads > 16 ? 16 : c->save_threads;
    pthread_t threads[32];
    int started = 0, nload = 0;
    if (!p.slots)
        return -1;
    for (int i = 0; i < c->depth; i++)
        p.slots[i].index = (size_t)-1;
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    for (int i = 0; i < nl; i++)
        if (pthread_create(&threads[started], NULL, loader, &p) == 0) {
            started++;
            nload++;
        }
    for (int i = 0; i < ns; i++)
        if (pthread_create(&threads[started], NULL, saver, &p) == 0)
            started++;
    int rc = 0;
    if (nload == 0 || started == nload) { /* no loader or no saver thread */
        pthread_mutex_lock(&p.mu);
        p.stopping = 1;
        p.end = 0;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        rc = -1;
    }
    /* The run stage, here, in item order. */
    for (size_t i = 0; rc == 0; i++) {
        pthread_mutex_lock(&p.mu);
        slot_state *s = &p.slots[i % (size_t)c->depth];
        while (i < p.end && !(s->index == i && s->state == SLOT_LOADED) &&
               !(stop_requested(&p) && p.next_load <= i))
            pthread_cond_wait(&p.cv, &p.mu);
        stop_requested(&p);
        int over = i >= p.end || (p.stopping && p.next_load <= i);
        int dropped = !over && p.stopping;
        int failed = over ? 0 : s->failed;
        pthread_mutex_unlock(&p.mu);
        if (over)
            break;
        if (dropped) {
            /* stopping: an item loaded but not run is dropped */
            failed = MD_PIPE_DROPPED;
        } else if (!failed && c->run(c->user, i, slot_mem(&p, i)) != 0) {
            failed = MD_PIPE_RUN;
        }
        pthread_mutex_lock(&p.mu);
        s->failed = failed;
        s->state = SLOT_RAN;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
    }
    /* Nothing more will run: the sequence ends where loading stopped. */
    pthread_mutex_lock(&p.mu);
    if (p.next_load < p.end)
        p.end = p.next_load;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    p.stats.stopped = p.stopping;
    if (stats)
        *stats = p.stats;
    free(p.slots);
    return rc;
}
