#include "check.h"
#include "base/base.h"

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

int main(void)
{
    RUN_TEST(test_splitmix64);
    RUN_TEST(test_mul_size);
    RUN_TEST(test_extension);
    RUN_TEST(test_atomic_commit_and_abort);
    RUN_TEST(test_read_file_limits);
    return check_finish();
}
