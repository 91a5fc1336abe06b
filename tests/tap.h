/*
 * A small TAP producer for the unit tests.  Each test case is a function;
 * CHECK* macros record failures with file and line and go on, so one run
 * reports every broken assertion.  meson runs the programs with
 * protocol 'tap' and scripts/test counts the "ok" / "not ok" lines.
 *
 *   static void test_thing(void) { CHECK_INT(add(1, 2), 3); }
 *   int main(void) { RUN(test_thing); return tap_done(); }
 */
#ifndef SPELL_TAP_H
#define SPELL_TAP_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int tap_count;
static int tap_failed;
static int tap_case_failed;

static inline void tap_fail(const char *file, int line, const char *what)
{
    printf("#   %s:%d: %s\n", file, line, what);
    tap_case_failed = 1;
}

#define CHECK(cond) do { \
    if (!(cond)) tap_fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
} while (0)

#define CHECK_INT(got, want) do { \
    intmax_t tap_g_ = (intmax_t)(got), tap_w_ = (intmax_t)(want); \
    if (tap_g_ != tap_w_) { \
        char tap_m_[256]; \
        snprintf(tap_m_, sizeof tap_m_, "%s is %jd, want %jd", #got, tap_g_, tap_w_); \
        tap_fail(__FILE__, __LINE__, tap_m_); \
    } \
} while (0)

#define CHECK_STR(got, want) do { \
    const char *tap_g_ = (got), *tap_w_ = (want); \
    if (!tap_g_ || !tap_w_ || strcmp(tap_g_, tap_w_) != 0) { \
        char tap_m_[1024]; \
        snprintf(tap_m_, sizeof tap_m_, "%s is \"%.400s\", want \"%.400s\"", #got, \
                 tap_g_ ? tap_g_ : "(null)", tap_w_ ? tap_w_ : "(null)"); \
        tap_fail(__FILE__, __LINE__, tap_m_); \
    } \
} while (0)

#define CHECK_MEM(got, got_len, want, want_len) do { \
    if ((size_t)(got_len) != (size_t)(want_len) || \
        memcmp((got), (want), (size_t)(want_len)) != 0) \
        tap_fail(__FILE__, __LINE__, "CHECK_MEM(" #got ", " #want ")"); \
} while (0)

static inline void tap_run(const char *name, void (*fn)(void))
{
    tap_case_failed = 0;
    fn();
    tap_count++;
    if (tap_case_failed) {
        tap_failed++;
        printf("not ok %d - %s\n", tap_count, name);
    } else {
        printf("ok %d - %s\n", tap_count, name);
    }
    fflush(stdout);
}

#define RUN(fn) tap_run(#fn, fn)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
