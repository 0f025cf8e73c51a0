/* A cache of large buffers for per-call activations. A forward pass of Depth
 * Anything V2 allocates the same few hundred megabytes on every call; fresh
 * pages from the system cost a fault and a zeroing each (10 % of a 2-core
 * VM's time here). Buffers given back are kept, up to a cap, and handed to
 * the next request they fit, so a model's steady state faults no pages.
 * Thread-safe: any number of threads may get and put at once. */
#ifndef MD_BASE_BUFCACHE_H
#define MD_BASE_BUFCACHE_H

#include <stddef.h>

typedef struct md_bufcache md_bufcache;

/* Keeps at most max_idle_bytes of idle buffers. NULL when out of memory. */
md_bufcache *md_bufcache_create(size_t max_idle_bytes);
/* A 64-byte aligned buffer of at least `bytes` (contents undefined), from the
 * cache or new; NULL when out of memory. c may be NULL (plain allocation). */
void *md_bufcache_get(md_bufcache *c, size_t bytes);
/* Gives back a buffer from md_bufcache_get (NULL is ignored). */
void md_bufcache_put(md_bufcache *c, void *p);
void md_bufcache_free(md_bufcache *c);

#endif
