/*
 * Unit tests for core/src/money.c: formatting with signs, separators and
 * the int64 extremes, the size contract of the output, and the strict
 * parser with every form it accepts and every form it refuses.
 */
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/money.h"
#include "tap.h"

static void test_format_table(void)
{
    static const struct { int64_t cents; const char *text; } t[] = {
        {0, "$0.00"},
        {1, "$0.01"},
        {5, "$0.05"},
        {10, "$0.10"},
        {99, "$0.99"},
        {100, "$1.00"},
        {1234, "$12.34"},
        {-1, "-$0.01"},
        {-150, "-$1.50"},
        {99999, "$999.99"},
        {100000, "$1,000.00"},
        {123456, "$1,234.56"},
        {-123456, "-$1,234.56"},
        {99999999, "$999,999.99"},
        {100000000, "$1,000,000.00"},
        {123456789012, "$1,234,567,890.12"},
        {5000, "$50.00"},
        {50000, "$500.00"},
        {INT64_MAX, "$92,233,720,368,547,758.07"},
        {INT64_MIN, "-$92,233,720,368,547,758.08"},
        {INT64_MIN + 1, "-$92,233,720,368,547,758.07"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[SPELL_MONEY_FORMAT_MAX];
        CHECK_INT(spell_money_format(t[i].cents, out, sizeof out), SPELL_OK);
        CHECK_STR(out, t[i].text);
    }
}

static void test_format_sizes(void)
{
    char out[64];

    /* The constant is exactly the longest text and its NUL. */
    CHECK_INT(strlen("-$92,233,720,368,547,758.08") + 1, SPELL_MONEY_FORMAT_MAX);
    CHECK_INT(spell_money_format(INT64_MIN, out, SPELL_MONEY_FORMAT_MAX), SPELL_OK);
    memset(out, 'z', sizeof out);
    CHECK_INT(spell_money_format(INT64_MIN, out, SPELL_MONEY_FORMAT_MAX - 1), SPELL_ETOOBIG);
    CHECK_STR(out, "");

    /* "$12.34" needs 7 bytes. */
    memset(out, 'z', sizeof out);
    CHECK_INT(spell_money_format(1234, out, 7), SPELL_OK);
    CHECK_STR(out, "$12.34");
    for (size_t n = 1; n < 7; n++) {
        memset(out, 'z', sizeof out);
        CHECK_INT(spell_money_format(1234, out, n), SPELL_ETOOBIG);
        CHECK_INT(out[0], '\0');
        CHECK_INT(out[n], 'z');      /* nothing written past outlen */
    }
    /* outlen 0 writes nothing at all. */
    memset(out, 'z', sizeof out);
    CHECK_INT(spell_money_format(1234, out, 0), SPELL_ETOOBIG);
    CHECK_INT(out[0], 'z');
    CHECK_INT(spell_money_format(1234, NULL, 10), SPELL_EINVAL);
    CHECK_INT(spell_money_format(1234, NULL, 0), SPELL_EINVAL);
}

static void test_parse_accepts(void)
{
    static const struct { const char *text; int64_t cents; } t[] = {
        {"50", 5000},
        {"50.5", 5050},
        {"50.05", 5005},
        {"50.50", 5050},
        {"$50", 5000},
        {"$1,234.56", 123456},
        {"1,234.56", 123456},
        {"1234.56", 123456},
        {"0", 0},
        {"0.0", 0},
        {"0.00", 0},
        {"0.5", 50},
        {"0.05", 5},
        {"$0.01", 1},
        {"  50  ", 5000},
        {"\t$12.34\r\n", 1234},
        {" $1,000 ", 100000},
        {"1,000,000", 100000000},
        {"12,345,678.9", 1234567890},
        {"999", 99900},
        {"500", 50000},
        {"92233720368547758.07", INT64_MAX},
        {"$92,233,720,368,547,758.07", INT64_MAX},
        {"92233720368547758", INT64_C(9223372036854775800)},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t c = -777;
        CHECK_INT(spell_money_parse(t[i].text, &c), SPELL_OK);
        CHECK_INT(c, t[i].cents);
    }
}

static void test_parse_rejects(void)
{
    static const char *const bad[] = {
        "", " ", "\t\n", "$", " $ ",
        "-5", "-$5", "$-5", "+5", "- 5", "5-",
        "1.234", "0.001", "50.505", "1.2.3",
        "1e3", "1E3", "1.5e2",
        "0x10", "0X10", "x10",
        "12.", "$12.", ".5", "$.5", ".", "..5",
        "abc", "5a", "a5", "5 dollars", "USD5", "5USD", "$$5", "5$",
        "1 000", "$ 50", "50 .5", "50. 5", "1,000 .00",
        "1,23", "1,2345", "1234,567", ",123", "1,,234", "1,234,", "1,234,5",
        "12345,678", "0,123", "1.234,56", "1,234.5,6",
        "007", "00", "01.50", "00.5",
        "inf", "nan", "NaN", "infinity",
        "\xc2\xa0\x35", "5\xc2\xa0", "\xef\xbc\x95",   /* NBSP, fullwidth 5 */
        "\xff", "5\x01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t c = -777;
        int rc = spell_money_parse(bad[i], &c);
        if (rc != SPELL_EINVAL)
            printf("# accepted or misjudged: \"%s\"\n", bad[i]);
        CHECK_INT(rc, SPELL_EINVAL);
        CHECK_INT(c, -777);
    }
    int64_t c = -777;
    CHECK_INT(spell_money_parse(NULL, &c), SPELL_EINVAL);
    CHECK_INT(spell_money_parse("5", NULL), SPELL_EINVAL);
    CHECK_INT(c, -777);
}

static void test_parse_overflow(void)
{
    static const char *const big[] = {
        "92233720368547758.08",
        "$92,233,720,368,547,758.08",
        "92233720368547759",
        "92233720368547760",
        "100000000000000000",
        "99999999999999999999999999999999",
        "$999,999,999,999,999,999,999.99",
        "18446744073709551616",
        "18446744073709551616.00",
    };
    /* Malformed and too large: malformed wins. */
    static const char *const bad_big[] = {
        "99999999999999999999x", "99999999999999999999.999", "-99999999999999999999",
        "999,999,999,999,999,999,999,99",
    };
    for (size_t i = 0; i < sizeof bad_big / sizeof bad_big[0]; i++) {
        int64_t c = -777;
        CHECK_INT(spell_money_parse(bad_big[i], &c), SPELL_EINVAL);
        CHECK_INT(c, -777);
    }
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        int64_t c = -777;
        CHECK_INT(spell_money_parse(big[i], &c), SPELL_ETOOBIG);
        CHECK_INT(c, -777);
    }
}

static void test_parse_long_input(void)
{
    int64_t c = -777;
    char s[SPELL_MONEY_PARSE_MAX + 2];

    /* Blanks count towards the limit: 61 spaces and "$50" is 64 bytes. */
    memset(s, ' ', sizeof s);
    memcpy(s + SPELL_MONEY_PARSE_MAX - 3, "$50", 3);
    s[SPELL_MONEY_PARSE_MAX] = '\0';
    CHECK_INT(spell_money_parse(s, &c), SPELL_OK);
    CHECK_INT(c, 5000);
    memset(s, ' ', sizeof s);
    memcpy(s + SPELL_MONEY_PARSE_MAX - 2, "$50", 3);
    s[SPELL_MONEY_PARSE_MAX + 1] = '\0';
    c = -777;
    CHECK_INT(spell_money_parse(s, &c), SPELL_ETOOBIG);
    CHECK_INT(c, -777);

    /* A megabyte of digits is refused after reading the first
     * SPELL_MONEY_PARSE_MAX + 1 bytes. */
    size_t n = 1 << 20;
    char *huge = malloc(n + 1);
    CHECK(huge != NULL);
    if (!huge)
        return;
    memset(huge, '9', n);
    huge[n] = '\0';
    CHECK_INT(spell_money_parse(huge, &c), SPELL_ETOOBIG);
    huge[0] = '-';
    CHECK_INT(spell_money_parse(huge, &c), SPELL_ETOOBIG);
    CHECK_INT(c, -777);
    free(huge);
}

/* Every formatted non-negative amount parses back to itself. */
static void test_round_trip(void)
{
    static const int64_t t[] = {
        0, 1, 9, 10, 99, 100, 101, 999, 1000, 99999, 100000, 123456, 1000000,
        987654321, INT64_C(100000000000), INT64_MAX - 1, INT64_MAX,
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[SPELL_MONEY_FORMAT_MAX];
        int64_t c = -777;
        CHECK_INT(spell_money_format(t[i], out, sizeof out), SPELL_OK);
        CHECK_INT(spell_money_parse(out, &c), SPELL_OK);
        CHECK_INT(c, t[i]);
    }
    /* A negative amount formats, but does not parse back: budgets are
     * never negative. */
    char out[SPELL_MONEY_FORMAT_MAX];
    int64_t c = -777;
    CHECK_INT(spell_money_format(-150, out, sizeof out), SPELL_OK);
    CHECK_INT(spell_money_parse(out, &c), SPELL_EINVAL);
}

int main(void)
{
    RUN(test_format_table);
    RUN(test_format_sizes);
    RUN(test_parse_accepts);
    RUN(test_parse_rejects);
    RUN(test_parse_overflow);
    RUN(test_parse_long_input);
    RUN(test_round_trip);
    return tap_done();
}
