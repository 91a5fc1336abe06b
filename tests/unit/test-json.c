/*
 * Unit tests for core/src/json.c (strict parsing, getters, builders) and
 * core/src/clock.c (RFC 3339 times, billing periods, dates).
 */
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "tap.h"

#define ERRLEN 256

/* Parses a C string literal of n bytes (sizeof - 1, so embedded NULs count). */
static int parse_n(const char *text, size_t n, cJSON **out, char *err)
{
    return spell_json_parse(text, n, NULL, out, err, ERRLEN);
}

static int parse(const char *text, cJSON **out, char *err)
{
    return parse_n(text, strlen(text), out, err);
}

/* Expects rejection with rc and a message that contains `want`. */
static void expect_reject(const char *text, size_t n, int rc, const char *want, int line)
{
    char err[ERRLEN] = "";
    cJSON *j = (cJSON *)1;
    int got = parse_n(text, n, &j, err);
    if (got != rc || j != NULL || !strstr(err, want)) {
        char m[600];
        snprintf(m, sizeof m, "line %d: rc %d (want %d), err \"%s\" (want \"%s\")", line, got, rc,
                 err, want);
        tap_fail(__FILE__, line, m);
    }
    if (j != (cJSON *)1)
        cJSON_Delete(j);
}

#define REJECT(lit, want) expect_reject(lit, sizeof(lit) - 1, SPELL_EPARSE, want, __LINE__)

static void expect_accept(const char *text, size_t n, int line)
{
    char err[ERRLEN] = "";
    cJSON *j = NULL;
    int got = parse_n(text, n, &j, err);
    if (got != SPELL_OK || !j) {
        char m[600];
        snprintf(m, sizeof m, "line %d: rc %d, err \"%s\"", line, got, err);
        tap_fail(__FILE__, line, m);
    }
    cJSON_Delete(j);
}

#define ACCEPT(lit) expect_accept(lit, sizeof(lit) - 1, __LINE__)

/* ---- spell_json_parse ---- */

static void test_parse_happy(void)
{
    char err[ERRLEN];
    cJSON *j = NULL;
    CHECK_INT(parse(" {\"a\": 1, \"b\": [true, false, null], \"c\": \"x\\u00e9\\ud83d\\ude00\","
                    " \"d\": {\"e\": -2.5e1}}\r\n\t", &j, err), SPELL_OK);
    CHECK_STR(err, "");
    CHECK(cJSON_IsObject(j));
    CHECK_INT(cJSON_GetObjectItem(j, "a")->valuedouble, 1);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "b")), 3);
    CHECK_STR(cJSON_GetObjectItem(j, "c")->valuestring, "x\xc3\xa9\xf0\x9f\x98\x80");
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "d"), "e")->valuedouble == -25.0);
    cJSON_Delete(j);
}

static void test_parse_scalars(void)
{
    ACCEPT("\"x\"");
    ACCEPT("42");
    ACCEPT("-0");
    ACCEPT("0.5");
    ACCEPT("1E+2");
    ACCEPT("-1.5e-3");
    ACCEPT("null");
    ACCEPT("true");
    ACCEPT("false");
    ACCEPT("[]");
    ACCEPT("{}");
    ACCEPT("  [ ]  ");
    ACCEPT("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0041\"");
}

static void test_parse_valid_utf8(void)
{
    ACCEPT("\"\xc3\xa9\"");                 /* U+00E9 */
    ACCEPT("\"\xe2\x82\xac\"");             /* U+20AC */
    ACCEPT("\"\xed\x9f\xbf\"");             /* U+D7FF, last before the surrogates */
    ACCEPT("\"\xee\x80\x80\"");             /* U+E000, first after them */
    ACCEPT("\"\xf0\x9d\x84\x9e\"");         /* U+1D11E */
    ACCEPT("\"\xf4\x8f\xbf\xbf\"");         /* U+10FFFF, the last code point */
    ACCEPT("{\"\xc3\xa9\": 1}");            /* non-ASCII key */
    CHECK(spell_utf8_valid("", 0));
    CHECK(spell_utf8_valid(NULL, 0));
    CHECK(!spell_utf8_valid(NULL, 1));
    CHECK(spell_utf8_valid("\xe2\x82\xac", 3));
    CHECK(!spell_utf8_valid("\xe2\x82", 2));
}

static void test_parse_invalid_utf8(void)
{
    REJECT("\"\x80\"", "unexpected UTF-8 continuation byte at offset 1");
    REJECT("\"\xbf\"", "continuation");
    REJECT("\"\xc0\x80\"", "overlong UTF-8 sequence at offset 1");  /* NUL, overlong */
    REJECT("\"\xc1\xbf\"", "overlong");
    REJECT("\"\xe0\x80\x80\"", "overlong");                 /* 3-byte NUL */
    REJECT("\"\xe0\x9f\xbf\"", "overlong");                 /* U+07FF in 3 bytes */
    REJECT("\"\xf0\x80\x80\x80\"", "overlong");             /* 4-byte NUL */
    REJECT("\"\xf0\x8f\xbf\xbf\"", "overlong");             /* U+FFFF in 4 bytes */
    REJECT("\"\xed\xa0\x80\"", "UTF-16 surrogate encoded in UTF-8 at offset 1"); /* U+D800 */
    REJECT("\"\xed\xbf\xbf\"", "surrogate");                /* U+DFFF */
    REJECT("\"\xed\xa0\xbd\xed\xb8\x80\"", "surrogate");    /* CESU-8 pair */
    REJECT("\"\xf4\x90\x80\x80\"", "UTF-8 code point beyond U+10FFFF");
    REJECT("\"\xf5\x80\x80\x80\"", "beyond U+10FFFF");
    REJECT("\"\xf8\x88\x80\x80\x80\"", "beyond U+10FFFF");
    REJECT("\"\xff\"", "beyond U+10FFFF");
    REJECT("\"\xfe\"", "beyond U+10FFFF");
    REJECT("\"\xe2\x82\"", "truncated UTF-8 sequence at offset 1");
    REJECT("\"\xe2\x82", "truncated");                       /* at the very end */
    REJECT("\"\xf0\x9f\x98\"", "truncated");
    REJECT("\"\xc3\"", "truncated");
    REJECT("\"\xc3\x41\"", "truncated");                     /* lead, then ASCII */
    REJECT("{\"k\xff\": 1}", "at offset 3");                 /* in a key */
    REJECT("{\"\xc0\xaf\": 1}", "overlong");
    REJECT("[1, \xe9]", "truncated");                        /* Latin-1 outside strings */
}

static void test_parse_escapes(void)
{
    char err[ERRLEN];
    cJSON *j = NULL;

    REJECT("\"a\\u0000b\"", "\\u0000 escape is not allowed at offset 2");
    REJECT("{\"k\\u0000\": 1}", "\\u0000");
    REJECT("\"\\ud800\"", "unpaired surrogate escape at offset 1");
    REJECT("\"\\udbff\"", "unpaired surrogate");
    REJECT("\"\\udc00\"", "unpaired surrogate");
    REJECT("\"\\ude00\\ud83d\"", "unpaired surrogate");      /* reversed pair */
    REJECT("\"\\ud800\\u0041\"", "unpaired surrogate");      /* high, then not low */
    REJECT("\"\\ud800\\ud800\"", "unpaired surrogate");
    REJECT("\"\\ud800x\"", "unpaired surrogate");
    REJECT("\"\\ud800\\", "unpaired surrogate");
    REJECT("\"\\u12\"", "invalid \\u escape");
    REJECT("\"\\u12G4\"", "invalid \\u escape");
    REJECT("\"\\u", "invalid \\u escape");
    REJECT("\"\\x\"", "invalid escape in string");
    REJECT("\"\\'\"", "invalid escape");
    REJECT("\"\\", "unterminated string");

    CHECK_INT(parse("\"\\ud83d\\ude00\"", &j, err), SPELL_OK);
    CHECK_STR(j ? j->valuestring : NULL, "\xf0\x9f\x98\x80");
    cJSON_Delete(j);
    CHECK_INT(parse("\"\\uD83D\\uDE00\\uffff\"", &j, err), SPELL_OK);
    CHECK_STR(j ? j->valuestring : NULL, "\xf0\x9f\x98\x80\xef\xbf\xbf");
    cJSON_Delete(j);
    CHECK_INT(parse("\"\\udbff\\udfff\"", &j, err), SPELL_OK);  /* U+10FFFF */
    CHECK_STR(j ? j->valuestring : NULL, "\xf4\x8f\xbf\xbf");
    cJSON_Delete(j);
}

static void test_parse_duplicates(void)
{
    char err[ERRLEN];
    cJSON *j = NULL;

    REJECT("{\"a\":1,\"a\":2}", "duplicate key \"a\" in object");
    REJECT("{\"a\":1,\"b\":2,\"a\":1}", "duplicate key \"a\"");
    REJECT("{\"x\":{\"k\":1,\"k\":1}}", "duplicate key \"k\"");
    REJECT("[{\"k\":1,\"k\":null}]", "duplicate key \"k\"");
    REJECT("{\"a\":1,\"\\u0061\":2}", "duplicate key \"a\"");  /* same after decoding */
    REJECT("{\"\\u001b[31m\":1,\"\\u001b[31m\":2}", "duplicate key \"?[31m\"");
    ACCEPT("{\"a\":1,\"A\":2}");
    ACCEPT("[{\"a\":1},{\"a\":1}]");
    ACCEPT("{\"a\":{\"a\":{\"a\":1}}}");

    /* Large objects take the sorting path. */
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof text, "{");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    n += (size_t)snprintf(text + n, sizeof text - n, "}");
    CHECK_INT(parse_n(text, n, &j, err), SPELL_OK);
    CHECK_INT(cJSON_GetArraySize(j), 100);
    cJSON_Delete(j);
    j = NULL;
    n -= 1;
    n += (size_t)snprintf(text + n, sizeof text - n, ",\"k57\":0}");
    CHECK_INT(parse_n(text, n, &j, err), SPELL_EPARSE);
    CHECK(j == NULL);
    CHECK_STR(err, "duplicate key \"k57\" in object");
}

/* n nested arrays around a 1. */
static char *nested(int n)
{
    char *s = malloc((size_t)n * 2 + 2);
    if (!s)
        return NULL;
    memset(s, '[', (size_t)n);
    s[n] = '1';
    memset(s + n + 1, ']', (size_t)n);
    s[2 * n + 1] = '\0';
    return s;
}

static void test_parse_depth(void)
{
    char err[ERRLEN];
    cJSON *j = NULL;
    char *s32 = nested(32), *s33 = nested(33), *deep = nested(100000);
    CHECK(s32 && s33 && deep);
    if (!s32 || !s33 || !deep)
        goto out;
    CHECK_INT(parse(s32, &j, err), SPELL_OK);
    cJSON_Delete(j);
    j = NULL;
    CHECK_INT(parse(s33, &j, err), SPELL_EPARSE);
    CHECK_STR(err, "nesting deeper than 32 levels at offset 32");
    CHECK(j == NULL);

    /* Far past the byte cap, then under a raised cap: refused before any
     * recursion could run deep. */
    CHECK_INT(parse(deep, &j, err), SPELL_ETOOBIG);
    struct spell_json_limits big = {.max_bytes = 1 << 20, .max_depth = 100000};
    CHECK_INT(spell_json_parse(deep, strlen(deep), &big, &j, err, sizeof err), SPELL_EPARSE);
    CHECK_STR(err, "nesting deeper than 256 levels at offset 256");

    /* Objects count the same as arrays. */
    struct spell_json_limits two = {.max_depth = 2};
    const char *ok2 = "{\"a\":[1]}", *bad3 = "{\"a\":[{}]}";
    CHECK_INT(spell_json_parse(ok2, strlen(ok2), &two, &j, err, sizeof err), SPELL_OK);
    cJSON_Delete(j);
    j = NULL;
    CHECK_INT(spell_json_parse(bad3, strlen(bad3), &two, &j, err, sizeof err), SPELL_EPARSE);
    CHECK_STR(err, "nesting deeper than 2 levels at offset 6");
out:
    free(s32);
    free(s33);
    free(deep);
}

static void test_parse_trailing(void)
{
    REJECT("{} x", "unexpected data after the value at offset 3");
    REJECT("{}{}", "unexpected data after the value at offset 2");
    REJECT("1 2", "unexpected data after the value");
    REJECT("\"a\"\"b\"", "unexpected data after the value");
    REJECT("{}\0", "unexpected data after the value at offset 2");
    REJECT("{}\x01", "unexpected data after the value");
    REJECT("01", "unexpected data after the value at offset 1");
    ACCEPT("{} \n\r\t ");
}

static void test_parse_size_and_empty(void)
{
    char err[ERRLEN];
    cJSON *j = (cJSON *)1;
    size_t cap = SPELL_JSON_MAX_BYTES_DEFAULT;
    char *big = malloc(cap + 2);
    CHECK(big != NULL);
    if (!big)
        return;
    /* A string that fills the cap exactly. */
    big[0] = '"';
    memset(big + 1, 'a', cap - 2);
    big[cap - 1] = '"';
    CHECK_INT(spell_json_parse(big, cap, NULL, &j, err, sizeof err), SPELL_OK);
    CHECK_INT(j ? strlen(j->valuestring) : 0, cap - 2);
    cJSON_Delete(j);
    big[cap - 1] = 'a';
    big[cap] = '"';
    CHECK_INT(spell_json_parse(big, cap + 1, NULL, &j, err, sizeof err), SPELL_ETOOBIG);
    CHECK(j == NULL);
    CHECK_STR(err, "input of 65537 bytes is larger than the limit of 65536");
    free(big);

    struct spell_json_limits ten = {.max_bytes = 10};
    CHECK_INT(spell_json_parse("[1,2,3,4]", 9, &ten, &j, err, sizeof err), SPELL_OK);
    cJSON_Delete(j);
    CHECK_INT(spell_json_parse("[1,2,3,4,5]", 11, &ten, &j, err, sizeof err), SPELL_ETOOBIG);

    CHECK_INT(spell_json_parse("", 0, NULL, &j, err, sizeof err), SPELL_EPARSE);
    CHECK_STR(err, "empty input");
    CHECK_INT(spell_json_parse(NULL, 0, NULL, &j, err, sizeof err), SPELL_EPARSE);
    CHECK_INT(spell_json_parse(" \n\t", 3, NULL, &j, err, sizeof err), SPELL_EPARSE);
    CHECK_STR(err, "no value in input (only whitespace)");
    CHECK_INT(spell_json_parse(NULL, 5, NULL, &j, err, sizeof err), SPELL_EINVAL);
    CHECK_INT(spell_json_parse("{}", 2, NULL, NULL, err, sizeof err), SPELL_EINVAL);
    /* No message buffer at all, and a tiny one. */
    CHECK_INT(spell_json_parse("{", 1, NULL, &j, NULL, 0), SPELL_EPARSE);
    char tiny[8];
    CHECK_INT(spell_json_parse("{", 1, NULL, &j, tiny, sizeof tiny), SPELL_EPARSE);
    CHECK_STR(tiny, "unexpec");
}

static void test_parse_nul_bytes(void)
{
    REJECT("{\"a\":\"x\0y\"}", "NUL byte in string at offset 7");
    REJECT("{\"a\0\":1}", "NUL byte in string");
    REJECT("\0", "NUL byte at offset 0");
    REJECT("[1,\0]", "NUL byte at offset 3");
    REJECT("{\0}", "expected a string key");
}

static void test_parse_syntax(void)
{
    REJECT("{\"a\":1,}", "expected a string key at offset 7");
    REJECT("[1,]", "unexpected character at offset 3");
    REJECT("{\"a\" 1}", "expected ':' after key at offset 5");
    REJECT("{a:1}", "expected a string key at offset 1");
    REJECT("[1 2]", "expected ',' or ']' at offset 3");
    REJECT("{\"a\":1 \"b\":2}", "expected ',' or '}' at offset 7");
    REJECT("{\"a\":1", "unexpected end of input at offset 6");
    REJECT("[", "unexpected end of input at offset 1");
    REJECT("\"abc", "unterminated string at offset 4");
    REJECT("\"a\tb\"", "unescaped control character in string at offset 2");
    REJECT("\"a\nb\"", "unescaped control character");
    REJECT("[1,\x01 2]", "unexpected character at offset 3");  /* cJSON would skip it */
    REJECT("[\x0b 1]", "unexpected character");
    REJECT("1.", "digits must follow '.'");
    REJECT(".5", "unexpected character at offset 0");
    REJECT("-", "invalid number at offset 1");
    REJECT("+1", "unexpected character");
    REJECT("1e", "digits must follow the exponent");
    REJECT("1e+", "digits must follow the exponent");
    REJECT("-01", "unexpected data after the value");
    REJECT("0x10", "unexpected data after the value");
    REJECT("tru", "invalid literal at offset 0");
    REJECT("nul", "invalid literal");
    REJECT("True", "unexpected character");
    REJECT("NaN", "unexpected character");
    REJECT("Infinity", "unexpected character");
    REJECT("[-Infinity]", "invalid number");
    REJECT("'a'", "unexpected character");
    REJECT("{\"a\":1}}", "unexpected data after the value at offset 7");
    REJECT("\xef\xbb\xbf{}", "unexpected character at offset 0");  /* BOM */
    REJECT("/* c */ {}", "unexpected character");
}

static void test_parse_number_length(void)
{
    char text[80];
    char err[ERRLEN];
    cJSON *j = NULL;
    memset(text, '1', 63);
    CHECK_INT(parse_n(text, 63, &j, err), SPELL_OK);
    cJSON_Delete(j);
    j = NULL;
    memset(text, '1', 64);
    CHECK_INT(parse_n(text, 64, &j, err), SPELL_EPARSE);
    CHECK_STR(err, "number longer than 63 bytes at offset 0");
}

/* ---- Getters ---- */

static const char getter_doc[] =
    "{\"s\":\"hi\",\"n\":42,\"f\":1.5,\"e\":1.2e1,\"big\":1e300,\"str3\":\"3\",\"t\":true,"
    "\"nul\":null,\"o\":{\"x\":1,\"in\":{\"y\":\"z\"}},\"a\":[1,{\"d\":5}],"
    "\"neg\":-9007199254740991,\"max\":9007199254740991,\"over\":9007199254740992,"
    "\"status\":\"running\",\"empty\":\"\",\"when\":\"2026-11-22T08:48:29.123Z\","
    "\"badwhen\":\"2026-02-30T00:00:00Z\",\"inf\":1e999}";

static cJSON *load_getter_doc(void)
{
    cJSON *j = NULL;
    char err[ERRLEN];
    if (spell_json_parse(getter_doc, sizeof getter_doc - 1, NULL, &j, err, sizeof err) != SPELL_OK)
        printf("# getter doc: %s\n", err);
    return j;
}

static void test_get_string(void)
{
    char err[ERRLEN] = "";
    cJSON *j = load_getter_doc();
    struct spell_json_at at = {j, "", err, sizeof err};
    char *s = (char *)1;

    CHECK_INT(spell_json_get_string(&at, "s", SPELL_JSON_REQUIRED, 2, &s), SPELL_OK);
    CHECK_STR(s, "hi");
    free(s);
    CHECK_INT(spell_json_get_string(&at, "s", SPELL_JSON_REQUIRED, 1, &s), SPELL_EINVAL);
    CHECK(s == NULL);
    CHECK_STR(err, "field 's' must be at most 1 bytes long");
    CHECK_INT(spell_json_get_string(&at, "missing", SPELL_JSON_REQUIRED, 10, &s), SPELL_EINVAL);
    CHECK_STR(err, "field 'missing' is required");
    CHECK_INT(spell_json_get_string(&at, "nul", SPELL_JSON_REQUIRED, 10, &s), SPELL_EINVAL);
    CHECK_STR(err, "field 'nul' is required");
    s = (char *)1;
    CHECK_INT(spell_json_get_string(&at, "missing", SPELL_JSON_OPTIONAL, 10, &s), SPELL_OK);
    CHECK(s == NULL);
    CHECK_INT(spell_json_get_string(&at, "nul", SPELL_JSON_OPTIONAL, 10, &s), SPELL_OK);
    CHECK(s == NULL);
    CHECK_INT(spell_json_get_string(&at, "n", SPELL_JSON_OPTIONAL, 10, &s), SPELL_EINVAL);
    CHECK_STR(err, "field 'n' must be a string");
    CHECK_INT(spell_json_get_string(&at, "o", SPELL_JSON_OPTIONAL, 10, &s), SPELL_EINVAL);
    CHECK_STR(err, "field 'o' must be a string");
    CHECK_INT(spell_json_get_string(&at, "empty", SPELL_JSON_OPTIONAL, 10, &s), SPELL_OK);
    CHECK_STR(s, "");
    free(s);
    CHECK_INT(spell_json_get_string(&at, "empty", SPELL_JSON_REQUIRED | SPELL_JSON_NONEMPTY, 10,
                                    &s), SPELL_EINVAL);
    CHECK_STR(err, "field 'empty' must not be empty");
    CHECK_INT(spell_json_get_string(&at, "S", SPELL_JSON_REQUIRED, 10, &s), SPELL_EINVAL);
    CHECK_STR(err, "field 'S' is required");   /* names are case-sensitive */

    /* Trees built in code are not validated by the parser: checked here. */
    cJSON *built = cJSON_CreateObject();
    cJSON_AddStringToObject(built, "bad", "a\xff");
    struct spell_json_at bat = {built, "", err, sizeof err};
    CHECK_INT(spell_json_get_string(&bat, "bad", SPELL_JSON_REQUIRED, 10, &s), SPELL_EINVAL);
    CHECK_STR(err, "field 'bad' must be valid UTF-8");
    cJSON_Delete(built);

    /* No message buffer. */
    struct spell_json_at quiet = {j, "", NULL, 0};
    CHECK_INT(spell_json_get_string(&quiet, "missing", SPELL_JSON_REQUIRED, 10, &s), SPELL_EINVAL);
    cJSON_Delete(j);
}

static void test_get_int64(void)
{
    char err[ERRLEN] = "";
    cJSON *j = load_getter_doc();
    struct spell_json_at at = {j, "", err, sizeof err};
    int64_t v = -7;
    bool present = false;

    CHECK_INT(spell_json_get_int64(&at, "n", SPELL_JSON_REQUIRED, &v, &present), SPELL_OK);
    CHECK_INT(v, 42);
    CHECK(present);
    CHECK_INT(spell_json_get_int64(&at, "e", SPELL_JSON_REQUIRED, &v, NULL), SPELL_OK);
    CHECK_INT(v, 12);
    CHECK_INT(spell_json_get_int64(&at, "max", SPELL_JSON_REQUIRED, &v, NULL), SPELL_OK);
    CHECK(v == INT64_C(9007199254740991));
    CHECK_INT(spell_json_get_int64(&at, "neg", SPELL_JSON_REQUIRED, &v, NULL), SPELL_OK);
    CHECK(v == -INT64_C(9007199254740991));

    v = 99;
    const char *bad[] = {"f", "str3", "t", "big", "over", "o", "a", "s", "inf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "field '%s' must be an integer", bad[i]);
        CHECK_INT(spell_json_get_int64(&at, bad[i], SPELL_JSON_OPTIONAL, &v, &present),
                  SPELL_EINVAL);
        CHECK_STR(err, want);
        CHECK(!present);
    }
    CHECK_INT(v, 99);

    /* Absent optional: the preset stays. */
    v = 1234;
    present = true;
    CHECK_INT(spell_json_get_int64(&at, "missing", SPELL_JSON_OPTIONAL, &v, &present), SPELL_OK);
    CHECK_INT(v, 1234);
    CHECK(!present);
    CHECK_INT(spell_json_get_int64(&at, "nul", SPELL_JSON_OPTIONAL, &v, &present), SPELL_OK);
    CHECK(!present);
    CHECK_INT(spell_json_get_int64(&at, "hard_limit_cents", SPELL_JSON_REQUIRED, &v, &present),
              SPELL_EINVAL);
    CHECK_STR(err, "field 'hard_limit_cents' is required");

    CHECK_INT(spell_json_get_int64_range(&at, "n", SPELL_JSON_REQUIRED, 0, 100, &v, NULL),
              SPELL_OK);
    CHECK_INT(spell_json_get_int64_range(&at, "n", SPELL_JSON_REQUIRED, 0, 41, &v, NULL),
              SPELL_EINVAL);
    CHECK_STR(err, "field 'n' must be between 0 and 41");
    CHECK_INT(spell_json_get_int64_range(&at, "neg", SPELL_JSON_REQUIRED, 0, 10, &v, NULL),
              SPELL_EINVAL);
    CHECK_STR(err, "field 'neg' must be between 0 and 10");
    cJSON_Delete(j);
}

static void test_get_bool_object_array(void)
{
    char err[ERRLEN] = "";
    cJSON *j = load_getter_doc();
    struct spell_json_at at = {j, "", err, sizeof err};
    bool b = false, present = false;
    const cJSON *o = NULL;

    CHECK_INT(spell_json_get_bool(&at, "t", SPELL_JSON_REQUIRED, &b, &present), SPELL_OK);
    CHECK(b && present);
    CHECK_INT(spell_json_get_bool(&at, "n", SPELL_JSON_REQUIRED, &b, &present), SPELL_EINVAL);
    CHECK_STR(err, "field 'n' must be true or false");
    CHECK_INT(spell_json_get_bool(&at, "str3", SPELL_JSON_REQUIRED, &b, &present), SPELL_EINVAL);
    CHECK_INT(spell_json_get_bool(&at, "missing", SPELL_JSON_OPTIONAL, &b, &present), SPELL_OK);
    CHECK(!present);
    CHECK_INT(spell_json_get_bool(&at, "missing", SPELL_JSON_REQUIRED, &b, &present),
              SPELL_EINVAL);
    CHECK_STR(err, "field 'missing' is required");

    CHECK_INT(spell_json_get_object(&at, "o", SPELL_JSON_REQUIRED, &o), SPELL_OK);
    CHECK(o == cJSON_GetObjectItem(j, "o"));
    CHECK_INT(spell_json_get_object(&at, "a", SPELL_JSON_REQUIRED, &o), SPELL_EINVAL);
    CHECK_STR(err, "field 'a' must be an object");
    CHECK(o == NULL);
    CHECK_INT(spell_json_get_object(&at, "nul", SPELL_JSON_OPTIONAL, &o), SPELL_OK);
    CHECK(o == NULL);
    CHECK_INT(spell_json_get_array(&at, "a", SPELL_JSON_REQUIRED, &o), SPELL_OK);
    CHECK_INT(cJSON_GetArraySize(o), 2);
    CHECK_INT(spell_json_get_array(&at, "o", SPELL_JSON_REQUIRED, &o), SPELL_EINVAL);
    CHECK_STR(err, "field 'o' must be an array");
    CHECK_INT(spell_json_get_array(&at, "s", SPELL_JSON_REQUIRED, &o), SPELL_EINVAL);
    CHECK_INT(spell_json_get_array(&at, "nope", SPELL_JSON_REQUIRED, &o), SPELL_EINVAL);
    CHECK_STR(err, "field 'nope' is required");
    cJSON_Delete(j);
}

static void test_get_enum(void)
{
    static const char *const names[] = {"queued", "running", "succeeded", "failed", "canceled"};
    char err[ERRLEN] = "";
    cJSON *j = load_getter_doc();
    struct spell_json_at at = {j, "", err, sizeof err};
    int v = -1;
    bool present = false;

    CHECK_INT(spell_json_get_enum(&at, "status", SPELL_JSON_REQUIRED, names, 5, &v, &present),
              SPELL_OK);
    CHECK_INT(v, 1);
    CHECK(present);
    CHECK_INT(spell_json_get_enum(&at, "s", SPELL_JSON_REQUIRED, names, 5, &v, &present),
              SPELL_EINVAL);
    CHECK_STR(err, "field 's' must be one of: queued, running, succeeded, failed, canceled");
    CHECK_INT(spell_json_get_enum(&at, "n", SPELL_JSON_REQUIRED, names, 5, &v, &present),
              SPELL_EINVAL);
    CHECK_STR(err, "field 'n' must be one of: queued, running, succeeded, failed, canceled");
    CHECK_INT(spell_json_get_enum(&at, "missing", SPELL_JSON_REQUIRED, names, 5, &v, &present),
              SPELL_EINVAL);
    CHECK_STR(err, "field 'missing' is required");
    v = 3;
    CHECK_INT(spell_json_get_enum(&at, "missing", SPELL_JSON_OPTIONAL, names, 5, &v, &present),
              SPELL_OK);
    CHECK_INT(v, 3);
    CHECK(!present);
    cJSON_Delete(j);
}

static void test_get_time(void)
{
    char err[ERRLEN] = "";
    cJSON *j = load_getter_doc();
    struct spell_json_at at = {j, "", err, sizeof err};
    int64_t t = 5;
    bool present = false;

    CHECK_INT(spell_json_get_time(&at, "when", SPELL_JSON_REQUIRED, &t, &present), SPELL_OK);
    CHECK(t == INT64_C(1795337309123));
    CHECK(present);
    CHECK_INT(spell_json_get_time(&at, "badwhen", SPELL_JSON_REQUIRED, &t, &present),
              SPELL_EINVAL);
    CHECK_STR(err, "field 'badwhen' must be an RFC 3339 time between 1970 and 9999");
    CHECK_INT(spell_json_get_time(&at, "n", SPELL_JSON_REQUIRED, &t, &present), SPELL_EINVAL);
    CHECK_STR(err, "field 'n' must be a string");
    t = 5;
    CHECK_INT(spell_json_get_time(&at, "nul", SPELL_JSON_OPTIONAL, &t, &present), SPELL_OK);
    CHECK_INT(t, 5);
    CHECK(!present);
    cJSON_Delete(j);
}

static void test_paths(void)
{
    char err[ERRLEN] = "";
    cJSON *j = load_getter_doc();
    struct spell_json_at at = {j, "", err, sizeof err}, o, in, el;
    char p1[SPELL_JSON_PATH_MAX], p2[SPELL_JSON_PATH_MAX], p3[SPELL_JSON_PATH_MAX];
    int64_t v = 0;
    char *s = NULL;

    spell_json_at_member(&o, &at, "o", cJSON_GetObjectItem(j, "o"), p1, sizeof p1);
    CHECK_STR(o.path, "o");
    CHECK_INT(spell_json_get_int64(&o, "x", SPELL_JSON_REQUIRED, &v, NULL), SPELL_OK);
    CHECK_INT(v, 1);
    CHECK_INT(spell_json_get_int64(&o, "y", SPELL_JSON_REQUIRED, &v, NULL), SPELL_EINVAL);
    CHECK_STR(err, "field 'o.y' is required");

    spell_json_at_member(&in, &o, "in", cJSON_GetObjectItem(cJSON_GetObjectItem(j, "o"), "in"),
                         p2, sizeof p2);
    CHECK_INT(spell_json_get_string(&in, "y", SPELL_JSON_REQUIRED, 8, &s), SPELL_OK);
    CHECK_STR(s, "z");
    free(s);
    CHECK_INT(spell_json_get_int64(&in, "y", SPELL_JSON_REQUIRED, &v, NULL), SPELL_EINVAL);
    CHECK_STR(err, "field 'o.in.y' must be an integer");

    spell_json_at_element(&el, &o, "daily", 3, cJSON_GetArrayItem(cJSON_GetObjectItem(j, "a"), 1),
                          p3, sizeof p3);
    CHECK_STR(el.path, "o.daily[3]");
    CHECK_INT(spell_json_get_int64(&el, "d", SPELL_JSON_REQUIRED, &v, NULL), SPELL_OK);
    CHECK_INT(v, 5);
    CHECK_INT(spell_json_get_string(&el, "date", SPELL_JSON_REQUIRED, 8, &s), SPELL_EINVAL);
    CHECK_STR(err, "field 'o.daily[3].date' is required");

    CHECK_INT(spell_json_field_error(&in, "k", "is odd"), SPELL_EINVAL);
    CHECK_STR(err, "field 'o.in.k' is odd");

    /* A path longer than the buffer is cut, never overrun. */
    char small[4];
    struct spell_json_at cut;
    spell_json_at_member(&cut, &o, "abcdef", NULL, small, sizeof small);
    CHECK_STR(cut.path, "o.a");
    cJSON_Delete(j);
}

/* ---- Builders ---- */

static void test_builders(void)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *inner = cJSON_CreateObject();
    cJSON_AddNumberToObject(inner, "k", 1);
    CHECK_INT(spell_json_add_int64(j, "n", INT64_C(1795337309123)), SPELL_OK);
    CHECK_INT(spell_json_add_int64(j, "neg", -5), SPELL_OK);
    CHECK_INT(spell_json_add_int64(j, "max", SPELL_JSON_INT_MAX), SPELL_OK);
    CHECK(cJSON_GetObjectItem(j, "max")->valuedouble == 9007199254740991.0);
    cJSON_DeleteItemFromObject(j, "max");
    CHECK_INT(spell_json_add_int64(j, "max15", INT64_C(999999999999999)), SPELL_OK);
    CHECK_INT(spell_json_add_int64(j, "over", SPELL_JSON_INT_MAX + 1), SPELL_EINVAL);
    CHECK_INT(spell_json_add_int64(j, "under", -SPELL_JSON_INT_MAX - 1), SPELL_EINVAL);
    CHECK_INT(spell_json_add_string(j, "s", "x\"y"), SPELL_OK);
    CHECK_INT(spell_json_add_string(j, "null_s", NULL), SPELL_OK);
    CHECK_INT(spell_json_add_bool(j, "b", true), SPELL_OK);
    CHECK_INT(spell_json_add_time(j, "t", INT64_C(1795337309123)), SPELL_OK);
    CHECK_INT(spell_json_add_time(j, "t0", 0), SPELL_OK);
    CHECK_INT(spell_json_add_time(j, "tneg", -1), SPELL_EINVAL);
    CHECK_INT(spell_json_add_time(j, "tbig", SPELL_TIME_MAX_MS + 1), SPELL_EINVAL);
    CHECK_INT(spell_json_add_copy(j, "c", inner), SPELL_OK);
    CHECK_INT(spell_json_add_copy(j, "c0", NULL), SPELL_OK);
    char *text = cJSON_PrintUnformatted(j);
    CHECK_STR(text, "{\"n\":1795337309123,\"neg\":-5,\"max15\":999999999999999,\"s\":\"x\\\"y\","
                    "\"null_s\":null,\"b\":true,\"t\":\"2026-11-22T08:48:29.123Z\",\"t0\":null,"
                    "\"c\":{\"k\":1},\"c0\":null}");
    free(text);
    cJSON_Delete(inner);
    cJSON_Delete(j);

    CHECK_INT(spell_json_add_int64(NULL, "n", 1), SPELL_ENOMEM);
    CHECK_INT(spell_json_add_string(NULL, "n", "x"), SPELL_ENOMEM);
    CHECK_INT(spell_json_add_bool(NULL, "n", 1), SPELL_ENOMEM);
    CHECK_INT(spell_json_add_time(NULL, "n", 1), SPELL_ENOMEM);
    CHECK_INT(spell_json_add_copy(NULL, "n", NULL), SPELL_ENOMEM);
}

/* ---- clock ---- */

static void test_time_format(void)
{
    char buf[SPELL_TIME_RFC3339_SIZE];
    CHECK_INT(spell_time_format(0, buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "1970-01-01T00:00:00.000Z");
    CHECK_INT(spell_time_format(INT64_C(1795337309123), buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "2026-11-22T08:48:29.123Z");
    CHECK_INT(spell_time_format(INT64_C(951825600000), buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "2000-02-29T12:00:00.000Z");
    CHECK_INT(spell_time_format(INT64_C(1709164800000) - 1, buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "2024-02-28T23:59:59.999Z");
    CHECK_INT(spell_time_format(SPELL_TIME_MAX_MS, buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "9999-12-31T23:59:59.999Z");
    CHECK_INT(spell_time_format(SPELL_TIME_MAX_MS + 1, buf, sizeof buf), SPELL_EINVAL);
    CHECK_INT(spell_time_format(-1, buf, sizeof buf), SPELL_EINVAL);
    CHECK_INT(spell_time_format(INT64_MIN, buf, sizeof buf), SPELL_EINVAL);
    CHECK_INT(spell_time_format(INT64_MAX, buf, sizeof buf), SPELL_EINVAL);
    CHECK_INT(spell_time_format(0, buf, SPELL_TIME_RFC3339_SIZE - 1), SPELL_ETOOBIG);
    CHECK_INT(spell_time_format(0, NULL, 64), SPELL_EINVAL);
}

static int64_t tp(const char *s)
{
    int64_t v = -42;
    if (spell_time_parse(s, &v) != SPELL_OK)
        return -1;
    return v;
}

static void test_time_parse(void)
{
    CHECK(tp("2026-11-22T08:48:29.123Z") == INT64_C(1795337309123));
    CHECK(tp("2026-11-22t08:48:29.123z") == INT64_C(1795337309123));
    CHECK(tp("2026-11-22T08:48:29Z") == INT64_C(1795337309000));
    CHECK(tp("2026-11-22T08:48:29.1Z") == INT64_C(1795337309100));
    CHECK(tp("2026-11-22T08:48:29.12Z") == INT64_C(1795337309120));
    CHECK(tp("2026-11-22T08:48:29.123456789Z") == INT64_C(1795337309123));
    CHECK(tp("2026-11-22T08:48:29.000999Z") == INT64_C(1795337309000));
    CHECK(tp("2026-11-22T08:48:29.999999999999999999999999Z") == INT64_C(1795337309999));
    /* Offsets: local time minus the offset is UTC. */
    CHECK(tp("2026-11-22T17:48:29.123+09:00") == INT64_C(1795337309123));
    CHECK(tp("2026-11-22T03:18:29.123-05:30") == INT64_C(1795337309123));
    CHECK(tp("2026-11-22T08:48:29.123+00:00") == INT64_C(1795337309123));
    CHECK(tp("2026-11-22T08:48:29.123-00:00") == INT64_C(1795337309123));
    CHECK(tp("2026-11-23T08:47:29.123+23:59") == INT64_C(1795337309123));
    CHECK(tp("2026-12-31T19:00:00-05:00") == INT64_C(1798761600000));  /* rolls the year */
    CHECK(tp("1970-01-01T00:00:00Z") == 0);
    CHECK(tp("1969-12-31T23:30:00-01:00") == 1800000);
    CHECK(tp("9999-12-31T23:59:59.999Z") == SPELL_TIME_MAX_MS);
    CHECK(tp("2000-02-29T12:00:00Z") == INT64_C(951825600000));
    CHECK(tp("2024-02-29T00:00:00Z") == INT64_C(1709164800000));

    const char *bad[] = {
        "", "2026", "2026-11-22", "2026-11-22T08:48Z", "2026-11-22T08:48:29",
        "2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2023-02-30T00:00:00Z",
        "2024-02-30T00:00:00Z", "2023-04-31T00:00:00Z", "2023-13-01T00:00:00Z",
        "2023-00-10T00:00:00Z", "2023-01-00T00:00:00Z", "2023-01-32T00:00:00Z",
        "2023-01-01T24:00:00Z", "2023-01-01T23:60:00Z", "2023-12-31T23:59:60Z",
        "2023-01-01 00:00:00Z", " 2023-01-01T00:00:00Z", "2023-01-01T00:00:00Z ",
        "2023-01-01T00:00:00.Z", "2023-01-01T00:00:00,5Z", "2023-01-01T00:00:00+24:00",
        "2023-01-01T00:00:00+09:60", "2023-01-01T00:00:00+0900", "2023-01-01T00:00:00+09",
        "2023-01-01T00:00:00+9:00", "2023-01-01T00:00:00UTC", "2023-01-01T00:00:00ZZ",
        "2023-1-01T00:00:00Z", "2023-01-1T00:00:00Z", "23-01-01T00:00:00Z",
        "+2023-01-01T00:00:00Z", "20230-01-01T00:00:00Z", "2023-01-01T0:00:00Z",
        "2023-01-01T00:00:00.-1Z", "2023-01-01T00:00:00.1a2Z", "2023/01/01T00:00:00Z",
        "1969-12-31T23:59:59.999Z", "1970-01-01T00:30:00+01:00", "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-00:01", "2023-01-01T00:00:00Z\x01",
        "2023-01-01T00:00:00.12345678901234567890123456789012345678901234567890Z",
        "\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x93-01-01T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 77;
        if (spell_time_parse(bad[i], &v) != SPELL_EINVAL || v != 77) {
            char m[200];
            snprintf(m, sizeof m, "accepted \"%s\"", bad[i]);
            tap_fail(__FILE__, __LINE__, m);
        }
    }
    int64_t v;
    CHECK_INT(spell_time_parse(NULL, &v), SPELL_EINVAL);
    CHECK_INT(spell_time_parse("2026-11-22T08:48:29Z", NULL), SPELL_EINVAL);
}

static void test_time_round_trip(void)
{
    char buf[SPELL_TIME_RFC3339_SIZE];
    int failures = 0;
    /* A fixed stride through the whole range, plus the edges. */
    for (int64_t t = 0; t <= SPELL_TIME_MAX_MS; t += INT64_C(98765432109)) {
        int64_t back = -1;
        if (spell_time_format(t, buf, sizeof buf) != SPELL_OK
            || spell_time_parse(buf, &back) != SPELL_OK || back != t)
            failures++;
    }
    const int64_t edges[] = {0, 1, 999, 1000, 86399999, 86400000, INT64_C(951782400000),
                             INT64_C(4107542400000), SPELL_TIME_MAX_MS};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        int64_t back = -1;
        if (spell_time_format(edges[i], buf, sizeof buf) != SPELL_OK
            || spell_time_parse(buf, &back) != SPELL_OK || back != edges[i])
            failures++;
    }
    CHECK_INT(failures, 0);
}

static void test_time_now(void)
{
    int64_t now = spell_time_now_ms();
    CHECK(now > INT64_C(1704067200000));    /* after 2024-01-01 */
    CHECK(now < SPELL_TIME_MAX_MS);
    int64_t later = spell_time_now_ms();
    CHECK(later >= now - 60000);            /* a clock step is possible, not a large one */
}

static void test_periods(void)
{
    char buf[SPELL_PERIOD_SIZE];
    int y = 0, m = 0;
    int64_t start = 0, end = 0;

    CHECK_INT(spell_time_period(0, buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "1970-01");
    CHECK_INT(spell_time_period(INT64_C(1798761600000) - 1, buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "2026-12");
    CHECK_INT(spell_time_period(INT64_C(1798761600000), buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "2027-01");
    CHECK_INT(spell_time_period(-1, buf, sizeof buf), SPELL_EINVAL);
    CHECK_INT(spell_time_period(0, buf, SPELL_PERIOD_SIZE - 1), SPELL_ETOOBIG);

    CHECK_INT(spell_period_parse("2026-11", &y, &m), SPELL_OK);
    CHECK_INT(y, 2026);
    CHECK_INT(m, 11);
    CHECK_INT(spell_period_parse("1970-01", NULL, NULL), SPELL_OK);
    CHECK_INT(spell_period_parse("9999-12", NULL, NULL), SPELL_OK);
    const char *bad[] = {"", "2026-1", "2026-13", "2026-00", "26-11", "2026/11", "2026-11-01",
                         "1969-12", "10000-01", "2026-1a", " 2026-11", "2026-11 ", "abcd-ef",
                         "2026-+1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (spell_period_parse(bad[i], NULL, NULL) != SPELL_EINVAL)
            tap_fail(__FILE__, __LINE__, bad[i]);
    CHECK_INT(spell_period_parse(NULL, NULL, NULL), SPELL_EINVAL);

    CHECK_INT(spell_period_bounds("2026-12", &start, &end), SPELL_OK);
    CHECK(start == INT64_C(1796083200000));     /* 2026-12-01T00:00:00Z */
    CHECK(end == INT64_C(1798761600000));       /* 2027-01-01T00:00:00Z */
    CHECK_INT(spell_period_bounds("2026-01", &start, &end), SPELL_OK);
    CHECK(start == INT64_C(1767225600000));
    CHECK((end - start) == INT64_C(31) * 86400000);
    CHECK_INT(spell_period_bounds("2024-02", &start, &end), SPELL_OK);
    CHECK(start == INT64_C(1706745600000));
    CHECK(end == INT64_C(1709251200000));
    CHECK((end - start) == INT64_C(29) * 86400000);
    CHECK_INT(spell_period_bounds("2023-02", &start, &end), SPELL_OK);
    CHECK((end - start) == INT64_C(28) * 86400000);
    CHECK_INT(spell_period_bounds("2100-02", &start, &end), SPELL_OK);
    CHECK((end - start) == INT64_C(28) * 86400000);
    CHECK_INT(spell_period_bounds("2000-02", &start, &end), SPELL_OK);
    CHECK((end - start) == INT64_C(29) * 86400000);
    CHECK_INT(spell_period_bounds("2026-04", &start, &end), SPELL_OK);
    CHECK((end - start) == INT64_C(30) * 86400000);
    CHECK_INT(spell_period_bounds("1970-01", &start, &end), SPELL_OK);
    CHECK(start == 0);
    CHECK_INT(spell_period_bounds("9999-12", &start, &end), SPELL_OK);
    CHECK(end == SPELL_TIME_MAX_MS + 1);
    CHECK_INT(spell_period_bounds("2026-13", &start, &end), SPELL_EINVAL);

    /* Every time in a period names that period; the end names the next. */
    CHECK_INT(spell_period_bounds("2024-02", &start, &end), SPELL_OK);
    CHECK_INT(spell_time_period(start, buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "2024-02");
    CHECK_INT(spell_time_period(end - 1, buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "2024-02");
    CHECK_INT(spell_time_period(end, buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "2024-03");
}

static void test_dates(void)
{
    char buf[SPELL_DATE_SIZE];
    int64_t start = -1;
    CHECK_INT(spell_time_date(INT64_C(1795337309123), buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "2026-11-22");
    CHECK_INT(spell_time_date(INT64_C(1709164800000), buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "2024-02-29");
    CHECK_INT(spell_time_date(SPELL_TIME_MAX_MS, buf, sizeof buf), SPELL_OK);
    CHECK_STR(buf, "9999-12-31");
    CHECK_INT(spell_time_date(-5, buf, sizeof buf), SPELL_EINVAL);
    CHECK_INT(spell_time_date(0, buf, SPELL_DATE_SIZE - 1), SPELL_ETOOBIG);

    CHECK_INT(spell_date_parse("2024-02-29", &start), SPELL_OK);
    CHECK(start == INT64_C(1709164800000));
    CHECK_INT(spell_date_parse("1970-01-01", &start), SPELL_OK);
    CHECK(start == 0);
    CHECK_INT(spell_date_parse("2023-02-29", &start), SPELL_EINVAL);
    CHECK_INT(spell_date_parse("2023-02-29", NULL), SPELL_EINVAL);
    CHECK_INT(spell_date_parse("1969-12-31", NULL), SPELL_EINVAL);
    CHECK_INT(spell_date_parse("2023-1-01", NULL), SPELL_EINVAL);
    CHECK_INT(spell_date_parse("2023-01-011", NULL), SPELL_EINVAL);
    CHECK_INT(spell_date_parse("2023-01-01T", NULL), SPELL_EINVAL);
    CHECK_INT(spell_date_parse(NULL, NULL), SPELL_EINVAL);
}

int main(void)
{
    RUN(test_parse_happy);
    RUN(test_parse_scalars);
    RUN(test_parse_valid_utf8);
    RUN(test_parse_invalid_utf8);
    RUN(test_parse_escapes);
    RUN(test_parse_duplicates);
    RUN(test_parse_depth);
    RUN(test_parse_trailing);
    RUN(test_parse_size_and_empty);
    RUN(test_parse_nul_bytes);
    RUN(test_parse_syntax);
    RUN(test_parse_number_length);
    RUN(test_get_string);
    RUN(test_get_int64);
    RUN(test_get_bool_object_array);
    RUN(test_get_enum);
    RUN(test_get_time);
    RUN(test_paths);
    RUN(test_builders);
    RUN(test_time_format);
    RUN(test_time_parse);
    RUN(test_time_round_trip);
    RUN(test_time_now);
    RUN(test_periods);
    RUN(test_dates);
    return tap_done();
}
