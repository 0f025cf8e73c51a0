#include "check.h"
#include "base/base.h"
#include "base/pipe.h"
#include "base/pool.h"

#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <errno.h>
#include <pthread.h>

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_mul_size(void)
{
    size_t out;
    CHECK(md_mul_size(3, 5, &out) && out == 15);
    CHECK(!md_mul_size(SIZE_MAX / 2 + 1, 2, &out));
    CHECK(md_mul_size(0, SIZE_MAX, &out) && out == 0);
}

static void test_extension(void)
{
    CHECK(strcmp(md_path_extension("a/b.c/depth.PNG"), "PNG") == 0);
    CHECK(md_path_has_ext("x.Npy", "npy"));
    CHECK(strcmp(md_path_extension("dir.d/noext"), "") == 0);
}

static void test_atomic_commit_and_abort(void)
{
    md_error err = {0};
    char path[] = "/tmp/md_test_core_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    unlink(path);

    md_atomic_file af;
    CHECK_OK(md_atomic_open(&af, path, &err), &err);
    fputs("hello", af.fp);
    CHECK(access(path, F_OK) != 0); /* nothing at the target before commit */
    CHECK_OK(md_atomic_commit(&af, &err), &err);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 5);

    CHECK_OK(md_atomic_open(&af, path, &err), &err);
    fputs("partial output that must never appear", af.fp);
    char *temp = strdup(af.temp_path);
    md_atomic_abort(&af);
    CHECK(stat(path, &st) == 0 && st.st_size == 5); /* old content intact */
    CHECK(access(temp, F_OK) != 0);                 /* temp removed */
    free(temp);
    unlink(path);

    CHECK(md_atomic_open(&af, "/nonexistent-dir/x.png", &err) == MD_ERR_IO);
    CHECK(strstr(err.message, "/nonexistent-dir/x.png") != NULL);
}

static void test_read_file_limits(void)
{
    md_error err = {0};
    uint8_t *data;
    size_t size;
    CHECK(md_read_file("/nonexistent", 100, &data, &size, &err) == MD_ERR_IO);
    CHECK(strstr(err.message, "/nonexistent") != NULL);
    CHECK(md_read_file("/etc/passwd", 1, &data, &size, &err) == MD_ERR_NOMEM);
    CHECK(md_read_file("/tmp", 100, &data, &size, &err) == MD_ERR_IO);
}


/* splitmix64's published outputs from state 0 (Vigna's reference
 * implementation): 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f. */
static void test_splitmix64(void)
{
    uint64_t st = 0;
    CHECK(md_splitmix64(&st) == 0xe220a8397b1dcdafull);
    CHECK(md_splitmix64(&st) == 0x6e789e6aa1b965f4ull);
    CHECK(md_splitmix64(&st) == 0x06c45d188009454full);
}

static void test_enum_names(void)
{
    static const char *const names[] = {"alpha", "beta"};
    CHECK(strcmp(md_enum_name(names, 2, 1), "beta") == 0);
    CHECK(strcmp(md_enum_name(names, 2, 2), "unknown") == 0);
    CHECK(strcmp(md_enum_name(names, 2, -1), "unknown") == 0);
    CHECK(md_enum_parse(names, 2, "BETA") == 1);
    CHECK(md_enum_parse(names, 2, "gamma") == -1);
    CHECK(md_enum_parse(names, 2, NULL) == -1);
}

/* ------------------------------------------------------------- pipeline */

typedef struct {
    int value;   /* loaded: index * 10 */
    int ran;
} pipe_item;

typedef struct {
    pthread_mutex_t mu;
    int n_load, n_run, n_save, n_done[5];
    long last_run;          /* items run in order */
    int order_ok, save_order_ok;
    long last_save;
    int fail_load, fail_run, fail_save; /* index that fails at each stage (-1 none) */
    int end_at;             /* load returns END here (unknown count) */
    int stop_after_run;     /* sets *stop after running this index (-1 never) */
    atomic_int stop;
    int in_flight, max_in_flight;
    int savers;             /* > 1: saves may overlap and end out of order */
    long next_done;         /* done() must come in item order */
    int done_order_ok;
    atomic_int in_done;     /* done() calls running now: never more than one */
    int done_overlap;
} pipe_test;

static int p_load(void *user, size_t i, void *slot)
{
    pipe_test *t = user;
    pipe_item *it = slot;
    pthread_mutex_lock(&t->mu);
    t->n_load++;
    t->in_flight++;
    if (t->in_flight > t->max_in_flight)
        t->max_in_flight = t->in_flight;
    pthread_mutex_unlock(&t->mu);
    if ((int)i == t->end_at) {
        pthread_mutex_lock(&t->mu);
        t->in_flight--;
        pthread_mutex_unlock(&t->mu);
        return MD_PIPE_END;
    }
    it->value = (int)i * 10;
    it->ran = 0;
    return (int)i == t->fail_load ? -1 : 0;
}

static int p_run(void *user, size_t i, void *slot)
{
    pipe_test *t = user;
    pipe_item *it = slot;
    /* only this thread runs: no lock needed for the order check */
    if ((long)i <= t->last_run || it->value != (int)i * 10)
        t->order_ok = 0;
    t->last_run = (long)i;
    t->n_run++;
    it->ran = 1;
    if ((int)i == t->stop_after_run)
        atomic_store(&t->stop, 1);
    return (int)i == t->fail_run ? -1 : 0;
}

static int p_save(void *user, size_t i, void *slot)
{
    pipe_test *t = user;
    pipe_item *it = slot;
    pthread_mutex_lock(&t->mu);
    t->n_save++;
    if ((t->savers == 1 && (long)i <= t->last_save) || !it->ran)
        t->save_order_ok = 0;
    t->last_save = (long)i;
    pthread_mutex_unlock(&t->mu);
    /* with several savers, every third item is slow: the next ones finish
     * first and must wait for their turn to be handed back */
    if (t->savers > 1 && i % 3 == 0)
        nanosleep(&(struct timespec){0, 3000000}, NULL);
    return (int)i == t->fail_save ? -1 : 0;
}

static void p_done(void *user, size_t i, void *slot, int failed)
{
    pipe_test *t = user;
    (void)slot;
    if (atomic_fetch_add(&t->in_done, 1) != 0)
        t->done_overlap = 1;
    /* in order and alone: no lock needed for the order check */
    if ((long)i != t->next_done)
        t->done_order_ok = 0;
    t->next_done = (long)i + 1;
    atomic_fetch_sub(&t->in_done, 1);
    pthread_mutex_lock(&t->mu);
    t->n_done[failed]++;
    t->in_flight--;
    pthread_mutex_unlock(&t->mu);
}

static void pipe_init(pipe_test *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->last_run = t->last_save = -1;
    t->order_ok = t->save_order_ok = t->done_order_ok = 1;
    t->savers = 1;
    t->fail_load = t->fail_run = t->fail_save = t->end_at = t->stop_after_run = -1;
}

static md_pipe_stats pipe_go(pipe_test *t, size_t count, int loaders, int depth)
{
    pipe_item slots[8];
    memset(slots, 0, sizeof slots);
    md_pipe_config c = {count, loaders, t->savers, depth, slots, sizeof *slots, t,
                        p_load, p_run, p_save, p_done, &t->stop};
    md_pipe_stats st;
    CHECK(md_pipe_run(&c, &st) == 0);
    CHECK_MSG(t->done_order_ok && !t->done_overlap, "%d savers: done() out of order or "
              "overlapping", t->savers);
    return st;
}

static void test_pipe(void)
{
    pipe_test t;
    /* every item through every stage, run and save in order, at most depth in flight */
    for (int loaders = 1; loaders <= 3; loaders++) {
        pipe_init(&t);
        md_pipe_stats st = pipe_go(&t, 50, loaders, 4);
        CHECK(st.done == 50 && st.failed == 0 && st.dropped == 0 && !st.stopped);
        CHECK(t.n_load == 50 && t.n_run == 50 && t.n_save == 50 && t.n_done[MD_PIPE_OK] == 50);
        CHECK(t.order_ok && t.save_order_ok);
        CHECK(t.max_in_flight <= 4);
    }
    /* a failure at each stage skips the later stages and is reported once */
    pipe_init(&t);
    t.fail_load = 3;
    t.fail_run = 7;
    t.fail_save = 11;
    md_pipe_stats st = pipe_go(&t, 20, 2, 3);
    CHECK(st.done == 17 && st.failed == 3);
    CHECK(t.n_run == 19 && t.n_save == 18);
    CHECK(t.n_done[MD_PIPE_LOAD] == 1 && t.n_done[MD_PIPE_RUN] == 1 && t.n_done[MD_PIPE_SAVE] == 1);
    /* unknown length: the sequence ends where load says so */
    pipe_init(&t);
    t.end_at = 13;
    st = pipe_go(&t, (size_t)-1, 3, 4);
    CHECK(st.done == 13 && t.n_run == 13 && t.order_ok && t.n_done[MD_PIPE_OK] == 13);
    /* a stop: what ran is saved, what was loaded but not run is dropped,
     * nothing else starts, every loaded item is handed back */
    pipe_init(&t);
    t.stop_after_run = 5;
    st = pipe_go(&t, 100, 2, 4);
    CHECK(st.stopped && st.done == 6 && t.n_run == 6);
    CHECK(t.n_load == 6 + (int)st.dropped && t.n_load <= 6 + 4);
    CHECK(t.in_flight == 0);
    /* nothing to do */
    pipe_init(&t);
    st = pipe_go(&t, 0, 1, 2);
    CHECK(st.done == 0 && t.n_load == 0);
    /* several savers: saves overlap, done() still in item order (pipe_go
     * checks), failures and a stop as with one */
    for (int savers = 2; savers <= 3; savers++) {
        pipe_init(&t);
        t.savers = savers;
        st = pipe_go(&t, 30, 1, 6);
        CHECK(st.done == 30 && t.n_save == 30 && t.n_done[MD_PIPE_OK] == 30 && t.order_ok);
        CHECK(t.save_order_ok && t.max_in_flight <= 6);
        pipe_init(&t);
        t.savers = savers;
        t.fail_load = 4;
        t.fail_save = 9;
        t.stop_after_run = 14;
        st = pipe_go(&t, 40, 2, 5);
        CHECK(st.stopped && t.n_run == 14 && st.failed == 2);
        CHECK(t.n_done[MD_PIPE_LOAD] == 1 && t.n_done[MD_PIPE_SAVE] == 1);
        CHECK(t.in_flight == 0);
    }
}

/* A FIFO (no writer) must be refused at once, not block the reader: the
 * alarm turns a regression into a failure instead of a hang. */
static void test_fifo_not_blocking(void)
{
    char dir[] = "/tmp/md_test_fifo_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/in.png", dir);
    CHECK(mkfifo(fifo, 0600) == 0);
    alarm(20);
    md_error err = {0};
    uint8_t *data = NULL;
    size_t size = 0;
    CHECK(md_read_file(fifo, 100, &data, &size, &err) == MD_ERR_IO);
    CHECK(strstr(err.message, fifo) && strstr(err.message, "FIFO"));
    CHECK(data == NULL);
    CHECK(md_open_regular(fifo, &size, &err) < 0);
    CHECK(md_open_regular(dir, &size, NULL) < 0); /* a folder, err NULL */
    CHECK(md_read_file(dir, 100, &data, &size, NULL) == MD_ERR_IO);
    alarm(0);
    unlink(fifo);
    rmdir(dir);
}

/* The temporary is created with mode 0666 less the umask (no umask() calls,
 * which would race with other threads), and names within 11 bytes of
 * NAME_MAX still work because the temporary's name is shortened. */
static void test_atomic_mode_and_long_names(void)
{
    char dir[] = "/tmp/md_test_atomic_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    mode_t old = umask(027);
    md_error err = {0};
    md_atomic_file af;
    char path[512];
    snprintf(path, sizeof path, "%s/plain.txt", dir);
    CHECK_OK(md_atomic_open(&af, path, &err), &err);
    CHECK(strncmp(af.temp_path, path, strlen(path)) == 0 && strstr(af.temp_path, ".tmp."));
    fputs("x", af.fp);
    CHECK_OK(md_atomic_commit(&af, &err), &err);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
    CHECK(umask(old) == 027); /* the umask was never changed */
    unlink(path);

    for (size_t len = MD_NAME_MAX - 12; len <= MD_NAME_MAX; len++) {
        char name[MD_NAME_MAX + 1];
        memset(name, 'n', len);
        memcpy(name + len - 4, ".png", 4);
        name[len] = '\0';
        snprintf(path, sizeof path, "%s/%s", dir, name);
        md_status s = md_atomic_open(&af, path, &err);
        CHECK_MSG(s == MD_OK, "name of %zu bytes: %s", len, err.message);
        if (s != MD_OK)
            continue;
        const char *base = strrchr(af.temp_path, '/') + 1;
        CHECK(strlen(base) <= MD_NAME_MAX && strstr(base, ".tmp.") != NULL);
        CHECK_OK(md_atomic_commit(&af, &err), &err);
        CHECK(access(path, F_OK) == 0);
        unlink(path);
    }
    /* one byte too long for the file system: a clean error naming it */
    char name[MD_NAME_MAX + 2];
    memset(name, 'n', MD_NAME_MAX + 1);
    name[MD_NAME_MAX + 1] = '\0';
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (md_atomic_open(&af, path, &err) == MD_OK) {
        CHECK(md_atomic_commit(&af, &err) == MD_ERR_IO);
    } else {
        CHECK(err.code == MD_ERR_IO);
    }
    CHECK(strstr(err.message, name) != NULL);
    CHECK(rmdir(dir) == 0); /* nothing left behind */
}

static void test_name_file(void)
{
    md_error err = {MD_ERR_NOMEM, "out of memory allocating 12 bytes for weights"};
    CHECK(md_name_file(&err, MD_ERR_NOMEM, "m.onnx") == MD_ERR_NOMEM);
    CHECK(strcmp(err.message, "m.onnx: out of memory allocating 12 bytes for weights") == 0);
    CHECK(md_name_file(&err, MD_ERR_NOMEM, "m.onnx") == MD_ERR_NOMEM); /* named once */
    CHECK(strcmp(err.message, "m.onnx: out of memory allocating 12 bytes for weights") == 0);
    CHECK(md_name_file(NULL, MD_ERR_IO, "m.onnx") == MD_ERR_IO);
    CHECK(md_name_file(&err, MD_OK, "other") == MD_OK);
    CHECK(strstr(err.message, "other") == NULL);
}

/* ------------------------------------------------------------ the pool */

typedef struct {
    atomic_int *count;
    atomic_int bad_worker;
    int threads;
} once_ctx;

static void count_task(void *ctx, int t, int worker)
{
    once_ctx *c = ctx;
    atomic_fetch_add(&c->count[t], 1);
    if (worker < 0 || worker >= c->threads)
        atomic_store(&c->bad_worker, 1);
}

/* Every task runs exactly once, on a worker index below md_pool_threads, for
 * task counts below, at and above the team size, region after region. */
static void test_pool_every_task_once(void)
{
    const int teams[] = {1, 2, 3, 5}, counts[] = {0, 1, 2, 3, 7, 64, 1000};
    atomic_int *count = malloc(sizeof(atomic_int) * 1000);
    for (size_t a = 0; a < sizeof teams / sizeof *teams; a++) {
        md_threadpool *pool = md_pool_create(teams[a]);
        CHECK(pool && md_pool_threads(pool) == teams[a]);
        for (int rep = 0; rep < 30; rep++)
            for (size_t b = 0; b < sizeof counts / sizeof *counts; b++) {
                int n = counts[b];
                for (int i = 0; i < n; i++)
                    atomic_init(&count[i], 0);
                once_ctx c = {count, 0, teams[a]};
                md_pool_run(pool, n, count_task, &c);
                int wrong = 0;
                for (int i = 0; i < n; i++)
                    wrong += atomic_load(&count[i]) != 1;
                CHECK(wrong == 0 && atomic_load(&c.bad_worker) == 0);
            }
        md_pool_destroy(pool);
    }
    free(count);
}

typedef struct {
    unsigned char *seen;
    atomic_long total;
} many_ctx;

static void many_task(void *ctx, int t, int worker)
{
    (void)worker;
    many_ctx *c = ctx;
    c->seen[t]++; /* each index once: distinct bytes, no race */
    atomic_fetch_add_explicit(&c->total, 1, memory_order_relaxed);
}

/* More tasks than one range word holds (2^24 - 1) run as regions in turn. */
static void test_pool_many_tasks(void)
{
#if defined(__SANITIZE_THREAD__)
    return; /* 16.8 M tasks: too slow under ThreadSanitizer, and no new sharing */
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    return;
#endif
#endif
    int n = (1 << 24) + 4;
    many_ctx c = {calloc((size_t)n, 1), 0};
    CHECK(c.seen != NULL);
    if (!c.seen)
        return;
    md_threadpool *pool = md_pool_create(2);
    md_pool_run(pool, n, many_task, &c);
    md_pool_destroy(pool);
    int wrong = 0;
    for (int i = 0; i < n; i++)
        wrong += c.seen[i] != 1;
    CHECK(wrong == 0 && atomic_load(&c.total) == n);
    free(c.seen);
}

typedef struct {
    int n, threads;
    atomic_int arrived;
    atomic_int first[8]; /* first task each worker ran, -1 before */
    atomic_int timed_out;
} range_ctx;

/* Each worker's first task waits until every worker has started one: no
 * worker can finish its range and steal before all have claimed, so each
 * first task is the front of its worker's range. */
static void range_task(void *ctx, int t, int worker)
{
    range_ctx *c = ctx;
    int none = -1;
    if (!atomic_compare_exchange_strong(&c->first[worker], &none, t))
        return;
    atomic_fetch_add(&c->arrived, 1);
    time_t start = time(NULL);
    while (atomic_load(&c->arrived) < c->threads) {
        if (time(NULL) - start > 30) { /* a worker never came: fail, don't hang */
            atomic_store(&c->timed_out, 1);
            return;
        }
        sched_yield();
    }
}

static void test_pool_deals_ranges(void)
{
    for (int threads = 2; threads <= 4; threads++) {
        md_threadpool *pool = md_pool_create(threads);
        CHECK(pool && md_pool_threads(pool) == threads);
        for (int n = threads; n <= 4 * threads + 1; n += threads + 1) {
            range_ctx c = {.n = n, .threads = threads};
            for (int w = 0; w < 8; w++)
                atomic_init(&c.first[w], -1);
            md_pool_run(pool, n, range_task, &c);
            CHECK(atomic_load(&c.timed_out) == 0);
            for (int w = 0; w < threads; w++)
                CHECK(atomic_load(&c.first[w]) == (int)((long)n * w / threads));
        }
        md_pool_destroy(pool);
    }
}

typedef struct {
    md_threadpool *pool;
    int regions;
    atomic_int failures;
} caller_ctx;

static void *pool_caller(void *arg)
{
    caller_ctx *cc = arg;
    atomic_int count[97];
    for (int r = 0; r < cc->regions; r++) {
        for (int i = 0; i < 97; i++)
            atomic_init(&count[i], 0);
        once_ctx c = {count, 0, md_pool_threads(cc->pool)};
        md_pool_run(cc->pool, 97, count_task, &c);
        for (int i = 0; i < 97; i++)
            if (atomic_load(&count[i]) != 1)
                atomic_fetch_add(&cc->failures, 1);
        if (atomic_load(&c.bad_worker))
            atomic_fetch_add(&cc->failures, 1);
    }
    return NULL;
}

typedef struct {
    md_threadpool *pool;
    atomic_int inner_bad;
} nest_ctx;

static void nested_task(void *ctx, int t, int worker)
{
    (void)t;
    nest_ctx *nc = ctx;
    atomic_int count[5];
    for (int i = 0; i < 5; i++)
        atomic_init(&count[i], 0);
    once_ctx c = {count, 0, md_pool_threads(nc->pool)};
    md_pool_run(nc->pool, 5, count_task, &c); /* the team is busy: runs inline */
    for (int i = 0; i < 5; i++)
        if (atomic_load(&count[i]) != 1)
            atomic_store(&nc->inner_bad, 1);
    if (worker >= md_pool_threads(nc->pool) || atomic_load(&c.bad_worker))
        atomic_store(&nc->inner_bad, 1);
}

/* Four application threads share one pool (a region at a time, the others
 * inline), and a task that itself calls md_pool_run runs its region inline. */
static void test_pool_shared_and_nested(void)
{
    md_threadpool *pool = md_pool_create(3);
    CHECK(pool != NULL);
    caller_ctx cc = {pool, 200, 0};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, pool_caller, &cc) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(atomic_load(&cc.failures) == 0);
    nest_ctx nc = {pool, 0};
    md_pool_run(pool, 9, nested_task, &nc);
    CHECK(atomic_load(&nc.inner_bad) == 0);
    md_pool_destroy(pool);
    /* no pool: everything inline on worker 0 */
    atomic_int count[3] = {0, 0, 0};
    once_ctx c = {count, 0, 1};
    md_pool_run(NULL, 3, count_task, &c);
    CHECK(count[0] == 1 && count[1] == 1 && count[2] == 1 && c.bad_worker == 0);
}

int main(void)
{
    RUN_TEST(test_mul_size);
    RUN_TEST(test_extension);
    RUN_TEST(test_atomic_commit_and_abort);
    RUN_TEST(test_read_file_limits);
    RUN_TEST(test_splitmix64);
    RUN_TEST(test_enum_names);
    RUN_TEST(test_pipe);
    RUN_TEST(test_fifo_not_blocking);
    RUN_TEST(test_atomic_mode_and_long_names);
    RUN_TEST(test_name_file);
    RUN_TEST(test_pool_every_task_once);
    RUN_TEST(test_pool_deals_ranges);
    RUN_TEST(test_pool_shared_and_nested);
    RUN_TEST(test_pool_many_tasks);
    return check_finish();
}
