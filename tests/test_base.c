#include "check.h"
#include "base/base.h"
#include "base/pipe.h"

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
    volatile sig_atomic_t stop;
    int in_flight, max_in_flight;
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
        t->stop = 1;
    return (int)i == t->fail_run ? -1 : 0;
}

static int p_save(void *user, size_t i, void *slot)
{
    pipe_test *t = user;
    pipe_item *it = slot;
    pthread_mutex_lock(&t->mu);
    t->n_save++;
    if ((long)i <= t->last_save || !it->ran)
        t->save_order_ok = 0;
    t->last_save = (long)i;
    pthread_mutex_unlock(&t->mu);
    return (int)i == t->fail_save ? -1 : 0;
}

static void p_done(void *user, size_t i, void *slot, int failed)
{
    pipe_test *t = user;
    (void)i;
    (void)slot;
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
    t->order_ok = t->save_order_ok = 1;
    t->fail_load = t->fail_run = t->fail_save = t->end_at = t->stop_after_run = -1;
}

static md_pipe_stats pipe_go(pipe_test *t, size_t count, int loaders, int depth)
{
    pipe_item slots[8];
    memset(slots, 0, sizeof slots);
    md_pipe_config c = {count, loaders, 1, depth, slots, sizeof *slots, t,
                        p_load, p_run, p_save, p_done, &t->stop};
    md_pipe_stats st;
    CHECK(md_pipe_run(&c, &st) == 0);
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
}

int main(void)
{
    RUN_TEST(test_mul_size);
    RUN_TEST(test_extension);
    RUN_TEST(test_atomic_commit_and_abort);
    RUN_TEST(test_read_file_limits);
    RUN_TEST(test_pipe);
    return check_finish();
}
