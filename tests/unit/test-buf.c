/* Unit tests for core/src/buf.c: growth, the cap, take and consume. */
#include <stdlib.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "tap.h"

static void test_add_and_terminate(void)
{
    struct spell_buf b;
    spell_buf_init(&b, 100);
    CHECK_STR(spell_buf_str(&b), "");
    CHECK_INT(spell_buf_addstr(&b, "hello"), SPELL_OK);
    CHECK_INT(spell_buf_addc(&b, ' '), SPELL_OK);
    CHECK_INT(spell_buf_addf(&b, "%d-%s", 42, "x"), SPELL_OK);
    CHECK_STR(spell_buf_str(&b), "hello 42-x");
    CHECK_INT(b.len, 10);
    spell_buf_free(&b);
}

static void test_cap_is_exact(void)
{
    struct spell_buf b;
    spell_buf_init(&b, 8);
    CHECK_INT(spell_buf_add(&b, "12345678", 8), SPELL_OK);
    CHECK_INT(spell_buf_addc(&b, '9'), SPELL_ETOOBIG);
    CHECK_STR(spell_buf_str(&b), "12345678");
    CHECK_INT(spell_buf_addf(&b, "%s", "x"), SPELL_ETOOBIG);
    CHECK_INT(b.len, 8);
    spell_buf_free(&b);

    spell_buf_init(&b, 4);
    CHECK_INT(spell_buf_add(&b, "12345", 5), SPELL_ETOOBIG);
    CHECK_INT(b.len, 0);
    CHECK_INT(spell_buf_add(&b, "x", (size_t)-1), SPELL_ETOOBIG);
    spell_buf_free(&b);
}

static void test_growth_large(void)
{
    struct spell_buf b;
    spell_buf_init(&b, 1 << 20);
    for (int i = 0; i < 100000; i++)
        if (spell_buf_addc(&b, (char)('a' + i % 26)) != SPELL_OK)
            CHECK(0);
    CHECK_INT(b.len, 100000);
    CHECK_INT(b.ptr[99999], 'a' + 99999 % 26);
    CHECK_INT(b.ptr[100000], 0);
    spell_buf_free(&b);
}

static void test_consume_and_take(void)
{
    struct spell_buf b;
    spell_buf_init(&b, 64);
    spell_buf_addstr(&b, "line one\nline two");
    spell_buf_consume(&b, 9);
    CHECK_STR(spell_buf_str(&b), "line two");
    spell_buf_consume(&b, 100);
    CHECK_STR(spell_buf_str(&b), "");
    spell_buf_addstr(&b, "kept");
    size_t n = 0;
    char *s = spell_buf_take(&b, &n);
    CHECK_STR(s, "kept");
    CHECK_INT(n, 4);
    CHECK(b.ptr == NULL && b.len == 0 && b.cap == 64);
    free(s);
    s = spell_buf_take(&b, &n);
    CHECK_STR(s, "");
    CHECK_INT(n, 0);
    free(s);
}

int main(void)
{
    RUN(test_add_and_terminate);
    RUN(test_cap_is_exact);
    RUN(test_growth_large);
    RUN(test_consume_and_take);
    return tap_done();
}
