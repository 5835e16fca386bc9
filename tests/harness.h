/*
 * harness.h - a small test harness.
 *
 *   TEST(name) { CHECK(x == 1); REQUIRE(p != NULL); CHECK_EQ_INT(a, b); }
 *
 * Each test runs in its own forked process (a crash fails that test alone)
 * with a timeout; TH_NOFORK=1 runs them in-process for a debugger.  A test
 * binary prints one line per test ("ok", "FAIL", "skip") and a summary;
 * tests/run.sh adds the lines of every binary and script together.
 * Arguments filter tests by substring.
 */
#ifndef TESSERA_TEST_HARNESS_H
#define TESSERA_TEST_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*th_fn)(void);
void th_register(const char *name, th_fn fn);
void th_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void th_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int th_failed(void);
/* A fresh empty directory for this test (removed afterwards unless the
 * test failed and TH_KEEP=1). */
const char *th_tmpdir(void);
/* Path of the build directory (env BUILD, default "build"). */
const char *th_build_dir(void);
/* Runs a shell command, returns its exit status; output captured into *out
 * (malloc'd, may be NULL) when out is non-NULL. */
int th_run(const char *cmd, char **out);
/* True when /usr/bin/python3 can import the named modules (comma list). */
int th_have_python(const char *modules);

#define TEST(name)                                                                  \
    static void name(void);                                                         \
    __attribute__((constructor)) static void th_reg_##name(void) { th_register(#name, name); } \
    static void name(void)

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) th_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);               \
    } while (0)

#define REQUIRE(cond)                                                               \
    do {                                                                            \
        if (!(cond)) {                                                              \
            th_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond);                      \
            return;                                                                 \
        }                                                                           \
    } while (0)

#define CHECK_MSG(cond, ...)                                                        \
    do {                                                                            \
        if (!(cond)) th_fail(__FILE__, __LINE__, __VA_ARGS__);                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                          \
    do {                                                                            \
        long long a_ = (long long)(a), b_ = (long long)(b);                         \
        if (a_ != b_) th_fail(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, #b, a_, b_); \
    } while (0)

#define CHECK_STR(a, b)                                                             \
    do {                                                                            \
        const char *a_ = (a), *b_ = (b);                                            \
        if (!a_ || !b_ || strcmp(a_, b_))                                           \
            th_fail(__FILE__, __LINE__, "%s == %s (\"%s\" != \"%s\")", #a, #b, a_ ? a_ : "(null)", \
                    b_ ? b_ : "(null)");                                            \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                       \
    do {                                                                            \
        double a_ = (double)(a), b_ = (double)(b);                                  \
        if (!(fabs(a_ - b_) <= (tol)))                                              \
            th_fail(__FILE__, __LINE__, "%s ~= %s (%.17g vs %.17g, tol %g)", #a, #b, a_, b_, (double)(tol)); \
    } while (0)

/* Expects a ts_* call to fail with the given code (and prints its message
 * when it does not). */
#define CHECK_ERR(call, code)                                                       \
    do {                                                                            \
        int rc_ = (call);                                                           \
        if (rc_ != (code))                                                          \
            th_fail(__FILE__, __LINE__, "%s returned %d, expected %d", #call, rc_, (int)(code)); \
    } while (0)

#define SKIP(...)                                                                   \
    do {                                                                            \
        th_skip(__VA_ARGS__);                                                       \
        return;                                                                     \
    } while (0)

#endif
