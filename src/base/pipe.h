/* A bounded three-stage pipeline: load (worker threads) -> run (the calling
 * thread, in item order) -> save (worker threads), so that decoding and
 * writing overlap with a network that runs one item at a time. */
#ifndef MD_BASE_PIPE_H
#define MD_BASE_PIPE_H

#include <stdatomic.h>
#include <stddef.h>

/* Stage that failed, passed to done(). */
enum { MD_PIPE_OK = 0, MD_PIPE_LOAD = 1, MD_PIPE_RUN = 2, MD_PIPE_SAVE = 3, MD_PIPE_DROPPED = 4 };
/* load's return value at the end of a sequence of unknown length. */
#define MD_PIPE_END 0x7fff

typedef struct {
    size_t count;      /* items; SIZE_MAX: until load returns MD_PIPE_END (one loader then) */
    int load_threads;  /* 1..16; 1 loads in item order */
    int save_threads;  /* 1..16; 1 saves in item order, more save concurrently */
    int depth;         /* slots, i.e. items in flight (>= 1) */
    void *slots;       /* depth * slot_size bytes, zeroed by the caller */
    size_t slot_size;
    void *user;
    /* Each returns 0 on success; a failed item skips its later stages. The
     * slot of item i is at (char *)slots + (i % depth) * slot_size. */
    int (*load)(void *user, size_t index, void *slot);
    int (*run)(void *user, size_t index, void *slot);
    int (*save)(void *user, size_t index, void *slot); /* may be NULL */
    /* Called once per item that was loaded, after its last stage, with the
     * stage that failed (MD_PIPE_OK when none; MD_PIPE_DROPPED when a stop
     * came before it ran): report, count, free the slot's contents. Calls
     * come in item order and never overlap, whatever save_threads is. */
    void (*done)(void *user, size_t index, void *slot, int failed);
    /* When *stop turns nonzero: no new item is loaded, loaded items that have
     * not run are dropped, items already run are saved. May be NULL. Every
     * stage's thread reads it, so it is atomic: set it with atomic_store,
     * from any thread or (atomic_int being lock-free) a signal handler; a
     * plain volatile flag written by one thread and read by another is a
     * data race. */
    const atomic_int *stop;
} md_pipe_config;

typedef struct {
    size_t done, failed, dropped;
    int stopped; /* a stop was requested */
} md_pipe_stats;

/* Runs the pipeline to its end; 0, or -1 when no thread could be started. */
int md_pipe_run(const md_pipe_config *config, md_pipe_stats *stats);

#endif
