#include "base/bufcache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_MAX 64
#define HEADER 64 /* the capacity lives in the 64 bytes before each buffer */

struct md_bufcache {
    pthread_mutex_t mu;
    size_t max_idle, idle_bytes;
    void *idle[IDLE_MAX];
    int n_idle;
};

static size_t cap_of(const void *p)
{
    size_t cap;
    memcpy(&cap, (const char *)p - HEADER, sizeof cap);
    return cap;
}

static void release(void *p)
{
    if (p)
        free((char *)p - HEADER);
}

md_bufcache *md_bufcache_create(size_t max_idle_bytes)
{
    md_bufcache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->max_idle = max_idle_bytes;
    return c;
}

void *md_bufcache_get(md_bufcache *c, size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    if (bytes == 0)
        bytes = 64;
    if (c) {
        /* the smallest idle buffer that fits, if it wastes at most half */
        pthread_mutex_lock(&c->mu);
        int best = -1;
        for (int i = 0; i < c->n_idle; i++) {
            size_t cap = cap_of(c->idle[i]);
            if (cap >= bytes && cap / 2 <= bytes && (best < 0 || cap < cap_of(c->idle[best])))
                best = i;
        }
        void *p = NULL;
        if (best >= 0) {
            p = c->idle[best];
            c->idle_bytes -= cap_of(p);
            c->idle[best] = c->idle[--c->n_idle];
        }
        pthread_mutex_unlock(&c->mu);
        if (p)
            return p;
    }
    if (bytes > SIZE_MAX - HEADER)
        return NULL;
    char *raw = aligned_alloc(64, bytes + HEADER);
    if (!raw)
        return NULL;
    memcpy(raw, &bytes, sizeof bytes);
    return raw + HEADER;
}

void md_bufcache_put(md_bufcache *c, void *p)
{
    if (!p)
        return;
    if (c) {
        size_t cap = cap_of(p);
        pthread_mutex_lock(&c->mu);
        if (c->n_idle < IDLE_MAX && c->idle_bytes + cap <= c->max_idle) {
            c->idle[c->n_idle++] = p;
            c->idle_bytes += cap;
            p = NULL;
        }
        pthread_mutex_unlock(&c->mu);
    }
    release(p);
}

void md_bufcache_free(md_bufcache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_idle; i++)
        release(c->idle[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
