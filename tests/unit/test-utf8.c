/* Unit tests for core/src/utf8.c: the well-formedness table of Unicode
 * (Table 3-7, "Well-Formed UTF-8 Byte Sequences") at each of its edges. */
#include <string.h>

#include "spell/errors.h"
#include "spell/utf8.h"
#include "tap.h"

static size_t scan(const char *s, size_t n, const char **why)
{
    *why = NULL;
    return spell_utf8_scan(s, n, why);
}

static void test_well_formed_edges(void)
{
    static const char *const good[] = {
        "", "plain ascii", "\x7f",
        "\xc2\x80", "\xdf\xbf",                     /* U+0080, U+07FF */
        "\xe0\xa0\x80", "\xed\x9f\xbf",             /* U+0800, U+D7FF */
        "\xee\x80\x80", "\xef\xbf\xbf",             /* U+E000, U+FFFF */
        "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",     /* U+10000, U+10FFFF */
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK(spell_utf8_valid(good[i], strlen(good[i])));
    CHECK(spell_utf8_valid("a\0b", 3));     /* U+0000 is a character */
    CHECK(spell_utf8_valid(NULL, 0));
    CHECK(!spell_utf8_valid(NULL, 1));
}

static void test_faults_and_offsets(void)
{
    const char *why;
    CHECK_INT(scan("ab\x80", 3, &why), 2);
    CHECK_STR(why, "unexpected UTF-8 continuation byte");
    CHECK_INT(scan("\xc0\xaf", 2, &why), 0);
    CHECK_STR(why, "overlong UTF-8 sequence");
    CHECK_INT(scan("x\xe0\x9f\xbf", 4, &why), 1);
    CHECK_STR(why, "overlong UTF-8 sequence");
    CHECK_INT(scan("\xf0\x8f\xbf\xbf", 4, &why), 0);
    CHECK_STR(why, "overlong UTF-8 sequence");
    CHECK_INT(scan("\xed\xa0\x80", 3, &why), 0);
    CHECK_STR(why, "UTF-16 surrogate encoded in UTF-8");
    CHECK_INT(scan("\xf4\x90\x80\x80", 4, &why), 0);
    CHECK_STR(why, "UTF-8 code point beyond U+10FFFF");
    CHECK_INT(scan("\xf5\x80\x80\x80", 4, &why), 0);
    CHECK_STR(why, "invalid UTF-8 byte (beyond U+10FFFF)");
    CHECK_INT(scan("ok\xe2\x82", 4, &why), 2);
    CHECK_STR(why, "truncated UTF-8 sequence");
    CHECK_INT(scan("\xe2\x28\xa1", 3, &why), 0);
    CHECK_STR(why, "truncated UTF-8 sequence");
    CHECK_INT(scan("\xff", 1, &why), 0);
    /* The length bounds the scan: a sequence cut by n is truncated. */
    CHECK_INT(scan("\xc3\xa9", 1, &why), 0);
    CHECK_INT(spell_utf8_scan("\xc3\xa9", 2, NULL), 2);
}

static void test_count(void)
{
    CHECK_INT(spell_utf8_count("", 0), 0);
    CHECK_INT(spell_utf8_count("abc", 3), 3);
    CHECK_INT(spell_utf8_count("caf\xc3\xa9", 5), 4);
    CHECK_INT(spell_utf8_count("\xf0\x9f\x98\x80\xe2\x82\xac", 7), 2);
    CHECK_INT(spell_utf8_count(NULL, 4), 0);
}

static void test_errf(void)
{
    char err[8];
    spell_errf(err, sizeof err, "field '%s' is required", "x");
    CHECK_STR(err, "field '");
    spell_errf(NULL, 0, "nothing %d", 1);
    char one[1] = {'z'};
    spell_errf(one, 1, "abc");
    CHECK_INT(one[0], 0);
}

int main(void)
{
    RUN(test_well_formed_edges);
    RUN(test_faults_and_offsets);
    RUN(test_count);
    RUN(test_errf);
    return tap_done();
}
