/* A tiny test harness: CHECK records a failure and carries on, so one run
 * reports every broken assertion. Each test binary ends with the plain line
 * "N passed, N failed" and exits non-zero on any failure. Exit code 77 means
 * "skipped" (CTest SKIP_RETURN_CODE), used when ../shared data is absent. */
#ifndef MD_CHECK_H
#define MD_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) {                                                                      \
            check_passed++;                                                              \
        } else {                                                                         \
            check_failed++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
        }                                                                                \
    } while (0)

#define CHECK_MSG(cond, ...)                                                             \
    do {                                                                                 \
        if (cond) {                                                                      \
            check_passed++;                                                              \
        } else {                                                                         \
            check_failed++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                            \
    do {                                                                                 \
        double check_a_ = (double)(a), check_b_ = (double)(b);                           \
        CHECK_MSG(fabs(check_a_ - check_b_) <= (tol), "%s = %.10g, %s = %.10g, tol %g", #a, \
                  check_a_, #b, check_b_, (double)(tol));                                \
    } while (0)

/* Asserts a call succeeded, printing its error message if not. */
#define CHECK_OK(call, errp)                                                             \
    do {                                                                                 \
        md_status check_st_ = (call);                                                    \
        CHECK_MSG(check_st_ == MD_OK, "%s -> %d: %s", #call, (int)check_st_,            \
                  (errp)->message);                                                      \
    } while (0)

#define RUN_TEST(fn)                                                                     \
    do {                                                                                 \
        int check_before_ = check_failed;                                                \
        fn();                                                                            \
        fprintf(stderr, "%s %s\n", check_failed == check_before_ ? "ok  " : "FAIL", #fn); \
    } while (0)

static inline int check_finish(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

/* Path of the shared data folder (compile-time default, overridable by
 * $METRICDEPTH_SHARED). */
static inline const char *check_shared_dir(void)
{
    const char *env = getenv("METRICDEPTH_SHARED");
    return env && *env ? env : MD_SHARED_DIR;
}

/* Removes a test's temporary folder tree (best effort). */
static inline void check_remove_tree(const char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

#endif
