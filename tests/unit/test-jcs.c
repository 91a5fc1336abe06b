/*
 * Unit tests for core/src/jcs.c: RFC 8785's own examples, its Appendix B
 * number table, member order by UTF-16 code units, string escapes, the
 * values without canonical form, the depth and size caps, the length
 * without text, and the input hash.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/jcs.h"
#include "tap.h"

/* Canonical text of v into a fresh 1 MiB buffer; rc into *rc. */
static char *canon(const cJSON *v, int *rc)
{
    struct spell_buf b;
    spell_buf_init(&b, 1 << 20);
    *rc = spell_jcs_serialize(v, &b);
    return spell_buf_take(&b, NULL);
}

/* Parses text and checks its canonical form and its length. */
static void check_canon(const char *json, const char *want)
{
    cJSON *v = cJSON_Parse(json);
    int rc = -100;
    size_t len = 0;
    CHECK(v != NULL);
    if (!v)
        return;
    char *got = canon(v, &rc);
    CHECK_INT(rc, SPELL_OK);
    CHECK_STR(got, want);
    CHECK_INT(spell_jcs_length(v, &len), SPELL_OK);
    CHECK_INT(len, strlen(want));
    free(got);
    cJSON_Delete(v);
}

/* The failure code for the canonical form of v; the length agrees. */
static int canon_rc(const cJSON *v)
{
    int rc = -100;
    size_t len = 12345;
    char *got = canon(v, &rc);
    int lrc = spell_jcs_length(v, &len);
    CHECK_INT(lrc, rc);
    if (rc != SPELL_OK) {
        CHECK_STR(got, "");
        CHECK_INT(len, 12345);
    }
    free(got);
    return rc;
}

static double from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static char *canon_number(double d, int *rc)
{
    cJSON *n = cJSON_CreateNumber(d);
    char *s = canon(n, rc);
    cJSON_Delete(n);
    return s;
}

/* RFC 8785 §3.2.2, the sample input and its canonical output, verbatim
 * (https://www.rfc-editor.org/rfc/rfc8785#section-3.2.2 and §3.2.3). */
static void test_rfc8785_sample(void)
{
    check_canon(
        "{\n"
        "  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n"
        "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
        "  \"literals\": [null, true, false]\n"
        "}",
        "{\"literals\":[null,true,false],"
        "\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
        "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

/* RFC 8785 §3.2.3, the sorting example: "\r", "1", "\u0080", "\u00f6",
 * "\u20ac", "\ud83d\ude00", "\ufb33".  U+1F600 sorts by its surrogates,
 * before U+FB33, although its UTF-8 bytes sort after. */
static void test_rfc8785_sorting(void)
{
    check_canon(
        "{\n"
        "  \"\\u20ac\": \"Euro Sign\",\n"
        "  \"\\r\": \"Carriage Return\",\n"
        "  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n"
        "  \"1\": \"One\",\n"
        "  \"\\ud83d\\ude00\": \"Emoji: Grinning Face\",\n"
        "  \"\\u0080\": \"Control\",\n"
        "  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"\n"
        "}",
        "{\"\\r\":\"Carriage Return\","
        "\"1\":\"One\","
        "\"\xc2\x80\":\"Control\","
        "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\","
        "\"\xe2\x82\xac\":\"Euro Sign\","
        "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
        "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

/* RFC 8785 Appendix B, "Number Serialization Samples", verbatim: the IEEE
 * 754 bit patterns and their JSON text. */
static void test_rfc8785_appendix_b(void)
{
    static const struct { uint64_t bits; const char *json; } t[] = {
        {0x0000000000000000u, "0"},                         /* Zero */
        {0x8000000000000000u, "0"},                         /* Minus zero */
        {0x0000000000000001u, "5e-324"},                    /* Min pos number */
        {0x8000000000000001u, "-5e-324"},                   /* Min neg number */
        {0x7fefffffffffffffu, "1.7976931348623157e+308"},   /* Max pos number */
        {0xffefffffffffffffu, "-1.7976931348623157e+308"},  /* Max neg number */
        {0x4340000000000000u, "9007199254740992"},          /* Max pos int */
        {0xc340000000000000u, "-9007199254740992"},         /* Max neg int */
        {0x4430000000000000u, "295147905179352830000"},     /* ~2**68 */
        {0x44b52d02c7e14af5u, "9.999999999999997e+22"},
        {0x44b52d02c7e14af6u, "1e+23"},
        {0x44b52d02c7e14af7u, "1.0000000000000001e+23"},
        {0x444b1ae4d6e2ef4eu, "999999999999999700000"},
        {0x444b1ae4d6e2ef4fu, "999999999999999900000"},
        {0x444b1ae4d6e2ef50u, "1e+21"},
        {0x3eb0c6f7a0b5ed8cu, "9.999999999999997e-7"},
        {0x3eb0c6f7a0b5ed8du, "0.000001"},
        {0x41b3de4355555553u, "333333333.3333332"},
        {0x41b3de4355555554u, "333333333.33333325"},
        {0x41b3de4355555555u, "333333333.3333333"},
        {0x41b3de4355555556u, "333333333.3333334"},
        {0x41b3de4355555557u, "333333333.33333343"},
        {0xbecbf647612f3696u, "-0.0000033333333333333333"},
        {0x43143ff3c1cb0959u, "1424953923781206.2"},        /* Round to even */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int rc = -100;
        char *s = canon_number(from_bits(t[i].bits), &rc);
        CHECK_INT(rc, SPELL_OK);
        CHECK_STR(s, t[i].json);
        free(s);
    }
}

/* Appendix B's NaN and Infinity rows, and the other non-finite values:
 * none has a JSON form. */
static void test_non_finite_rejected(void)
{
    static const uint64_t bits[] = {
        0x7fffffffffffffffu, 0x7ff0000000000000u, 0xfff0000000000000u,
        0x7ff8000000000000u, 0xfff8000000000001u,
    };
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
        int rc = -100;
        char *s = canon_number(from_bits(bits[i]), &rc);
        CHECK_INT(rc, SPELL_EINVAL);
        CHECK_STR(s, "");
        free(s);
    }
    /* cJSON reads an out-of-range literal as infinity. */
    cJSON *v = cJSON_Parse("{\"a\":[1,1e400]}");
    CHECK(v != NULL);
    CHECK_INT(canon_rc(v), SPELL_EINVAL);
    cJSON_Delete(v);
    v = cJSON_Parse("-1e999");
    CHECK(v != NULL);
    CHECK_INT(canon_rc(v), SPELL_EINVAL);
    cJSON_Delete(v);
}

/* The layout rules of Number::toString around each boundary. */
static void test_number_layout(void)
{
    static const struct { const char *in, *out; } t[] = {
        {"1", "1"}, {"-1", "-1"}, {"-0", "0"}, {"0.0", "0"}, {"-0.0e5", "0"},
        {"10", "10"}, {"100", "100"}, {"1.0", "1"}, {"1.50", "1.5"},
        {"0.1", "0.1"}, {"-0.5", "-0.5"}, {"123.456", "123.456"},
        {"1e20", "100000000000000000000"},
        {"1.5e20", "150000000000000000000"},
        {"1e21", "1e+21"}, {"1.5e21", "1.5e+21"}, {"-1e21", "-1e+21"},
        {"123456789012345678901234", "1.2345678901234569e+23"},
        {"0.000001", "0.000001"}, {"0.0000012", "0.0000012"},
        {"1e-7", "1e-7"}, {"1.5e-7", "1.5e-7"}, {"-1.25e-7", "-1.25e-7"},
        {"0.00001", "0.00001"}, {"1E2", "100"}, {"1e+2", "100"},
        {"12e-1", "1.2"}, {"1e308", "1e+308"}, {"2e-308", "2e-308"},
        {"9007199254740993", "9007199254740992"},
        {"4294967296", "4294967296"}, {"9223372036854775807", "9223372036854776000"},
        {"0.30000000000000004", "0.30000000000000004"},
        {"3.141592653589793", "3.141592653589793"},
        {"100000000000000000000.5", "100000000000000000000"},
        {"5e-324", "5e-324"}, {"2.5e-324", "5e-324"}, {"2e-324", "0"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        check_canon(t[i].in, t[i].out);

    /* 0.1 + 0.2 is not 0.3 and must not be written as 0.3. */
    int rc = -100;
    char *s = canon_number(0.1 + 0.2, &rc);
    CHECK_INT(rc, SPELL_OK);
    CHECK_STR(s, "0.30000000000000004");
    free(s);
}

static void test_literals_and_scalars(void)
{
    check_canon("null", "null");
    check_canon("true", "true");
    check_canon(" false ", "false");
    check_canon("\"\"", "\"\"");
    check_canon("\"x\"", "\"x\"");
    check_canon("{}", "{}");
    check_canon("[]", "[]");
    check_canon("[ ]", "[]");
    check_canon("{ \"a\" : { } }", "{\"a\":{}}");
}

static void test_nested(void)
{
    check_canon("{ \"b\" : [ 1 , { \"z\": true, \"y\": [ null, { } ] } ], \"a\" : \"x\" }",
                "{\"a\":\"x\",\"b\":[1,{\"y\":[null,{}],\"z\":true}]}");
    check_canon("[[[[\"deep\"]]],[],{}]", "[[[[\"deep\"]]],[],{}]");
    /* Arrays keep their order; only members are sorted. */
    check_canon("[3,1,2,{\"b\":1,\"a\":2}]", "[3,1,2,{\"a\":2,\"b\":1}]");
    /* Sorting is by code units, not by length first. */
    check_canon("{\"ab\":1,\"a\":2,\"b\":3,\"\":4,\"B\":5}",
                "{\"\":4,\"B\":5,\"a\":2,\"ab\":1,\"b\":3}");
}

static void test_string_escapes(void)
{
    check_canon("\"\\b\\t\\n\\f\\r\\\"\\\\\"", "\"\\b\\t\\n\\f\\r\\\"\\\\\"");
    /* '/' and U+007F stay literal; \u escapes of printable text go away. */
    check_canon("\"a\\/b\\u007f\\u0041\"", "\"a/b\x7f" "A\"");
    /* Non-ASCII stays UTF-8. */
    check_canon("\"\\u00e9\\u4e2d\\ud83d\\ude00\"", "\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"");

    /* Every control character from U+0001 to U+001F. */
    char raw[32];
    for (int c = 1; c < 32; c++)
        raw[c - 1] = (char)c;
    raw[31] = '\0';
    cJSON *v = cJSON_CreateString(raw);
    int rc = -100;
    char *s = canon(v, &rc);
    CHECK_INT(rc, SPELL_OK);
    CHECK_STR(s, "\"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n"
                 "\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014"
                 "\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d"
                 "\\u001e\\u001f\"");
    free(s);
    cJSON_Delete(v);

    /* The same escapes in member names. */
    check_canon("{\"\\u001f\\n\\\"\":0}", "{\"\\u001f\\n\\\"\":0}");
}

/* cJSON keeps C strings: text after an escaped NUL is lost before jcs
 * sees it.  The canonical form is that of what cJSON kept. */
static void test_nul_in_string(void)
{
    check_canon("\"a\\u0000b\"", "\"a\"");
}

static void test_invalid_utf8(void)
{
    static const char *const bad[] = {
        "\xed\xa0\x80",         /* lone high surrogate U+D800 */
        "\xed\xbf\xbf",         /* lone low surrogate U+DFFF */
        "\xed\xa0\xbd\xed\xb8\x80", /* a surrogate pair spelled in CESU-8 */
        "\xc0\xaf",             /* overlong '/' */
        "\xc1\xbf",             /* overlong */
        "\xe0\x80\xaf",         /* overlong, three bytes */
        "\xf0\x80\x80\xaf",     /* overlong, four bytes */
        "\xf4\x90\x80\x80",     /* past U+10FFFF */
        "\xf5\x80\x80\x80",
        "\xe2\x82",             /* truncated */
        "ok\xe2",               /* truncated at the end */
        "\x80",                 /* stray continuation */
        "a\xbf\x62",
        "\xff",
        "\xfe",
        "\xc3\x28",             /* bad continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *v = cJSON_CreateString(bad[i]);
        CHECK_INT(canon_rc(v), SPELL_EINVAL);
        cJSON_Delete(v);

        /* As a member name, and as a value deep inside. */
        v = cJSON_CreateObject();
        cJSON_AddNumberToObject(v, "a", 1);
        cJSON_AddNumberToObject(v, bad[i], 2);
        CHECK_INT(canon_rc(v), SPELL_EINVAL);
        cJSON_Delete(v);

        v = cJSON_Parse("{\"a\":[1,{\"b\":[]}]}");
        cJSON_AddItemToArray(cJSON_GetObjectItem(cJSON_GetArrayItem(
            cJSON_GetObjectItem(v, "a"), 1), "b"), cJSON_CreateString(bad[i]));
        CHECK_INT(canon_rc(v), SPELL_EINVAL);
        cJSON_Delete(v);
    }
    /* The largest code point and the edges of the surrogate block are fine. */
    check_canon("\"\\udbff\\udfff\\ud7ff\\ue000\"",
                "\"\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"");
}

static void test_duplicate_names(void)
{
    cJSON *v = cJSON_Parse("{\"a\":1,\"b\":2,\"a\":1}");
    CHECK(v != NULL);
    CHECK_INT(canon_rc(v), SPELL_EINVAL);
    cJSON_Delete(v);
    v = cJSON_Parse("[{\"x\":{\"\\u00e9\":1,\"\xc3\xa9\":2}}]");
    CHECK(v != NULL);
    CHECK_INT(canon_rc(v), SPELL_EINVAL);
    cJSON_Delete(v);
}

static void test_bad_nodes(void)
{
    struct spell_buf b;
    size_t len = 0;
    char hash[65] = "x";

    spell_buf_init(&b, 64);
    CHECK_INT(spell_jcs_serialize(NULL, &b), SPELL_EINVAL);
    CHECK_INT(spell_jcs_length(NULL, &len), SPELL_EINVAL);
    CHECK_INT(spell_input_hash(NULL, hash), SPELL_EINVAL);
    CHECK_STR(hash, "");

    cJSON *v = cJSON_CreateObject();
    CHECK_INT(spell_jcs_serialize(v, NULL), SPELL_EINVAL);
    CHECK_INT(spell_jcs_length(v, NULL), SPELL_EINVAL);
    CHECK_INT(spell_input_hash(v, NULL), SPELL_EINVAL);
    cJSON_Delete(v);

    /* Raw text has no canonical form, nor does an invalid node. */
    v = cJSON_CreateRaw("{\"b\":1,\"a\":2}");
    CHECK_INT(canon_rc(v), SPELL_EINVAL);
    cJSON_Delete(v);
    v = cJSON_CreateArray();
    cJSON_AddItemToArray(v, cJSON_CreateRaw("1"));
    CHECK_INT(canon_rc(v), SPELL_EINVAL);
    cJSON_Delete(v);
    cJSON invalid;
    memset(&invalid, 0, sizeof invalid);
    CHECK_INT(canon_rc(&invalid), SPELL_EINVAL);

    /* A member without a name (put into an object as if into an array). */
    v = cJSON_CreateObject();
    cJSON_AddItemToArray(v, cJSON_CreateNumber(1));
    CHECK_INT(canon_rc(v), SPELL_EINVAL);
    cJSON_Delete(v);

    /* A string node without its string. */
    cJSON str;
    memset(&str, 0, sizeof str);
    str.type = cJSON_String;
    CHECK_INT(canon_rc(&str), SPELL_EINVAL);

    spell_buf_free(&b);
}

static cJSON *nest(int depth)
{
    cJSON *top = cJSON_CreateArray();
    cJSON *cur = top;
    for (int i = 1; i < depth; i++) {
        cJSON *next = (i % 2) ? cJSON_CreateObject() : cJSON_CreateArray();
        if (cJSON_IsArray(cur))
            cJSON_AddItemToArray(cur, next);
        else
            cJSON_AddItemToObject(cur, "k", next);
        cur = next;
    }
    return top;
}

static void test_depth_cap(void)
{
    size_t len = 0;
    cJSON *v = nest(SPELL_JCS_MAX_DEPTH);
    CHECK_INT(canon_rc(v), SPELL_OK);
    CHECK_INT(spell_jcs_length(v, &len), SPELL_OK);
    /* 64 pairs of brackets, and "k": in the 31 objects that hold one. */
    CHECK_INT(len, 64 * 2 + 31 * 4);
    cJSON_Delete(v);

    v = nest(SPELL_JCS_MAX_DEPTH + 1);
    CHECK_INT(canon_rc(v), SPELL_ETOOBIG);
    cJSON_Delete(v);

    /* A deep document from outside, as cJSON accepts it (limit 1000). */
    char text[2 * 500 + 1];
    memset(text, '[', 500);
    memset(text + 500, ']', 500);
    text[1000] = '\0';
    v = cJSON_Parse(text);
    CHECK(v != NULL);
    CHECK_INT(canon_rc(v), SPELL_ETOOBIG);
    cJSON_Delete(v);
}

static void test_buffer_cap(void)
{
    cJSON *v = cJSON_Parse("{\"b\":[1,2],\"a\":\"\\u0001\"}");
    const char *want = "{\"a\":\"\\u0001\",\"b\":[1,2]}";
    size_t n = strlen(want);
    struct spell_buf b;

    /* Exactly enough room. */
    spell_buf_init(&b, n);
    CHECK_INT(spell_jcs_serialize(v, &b), SPELL_OK);
    CHECK_STR(spell_buf_str(&b), want);
    spell_buf_free(&b);

    /* One byte short, at every cap below: ETOOBIG, contents as before. */
    for (size_t cap = 3; cap < n + 3; cap++) {
        spell_buf_init(&b, cap);
        CHECK_INT(spell_buf_addstr(&b, "pre"), SPELL_OK);
        CHECK_INT(spell_jcs_serialize(v, &b), SPELL_ETOOBIG);
        CHECK_STR(spell_buf_str(&b), "pre");
        CHECK_INT(b.len, 3);
        spell_buf_free(&b);
    }

    /* Appends after what is there. */
    spell_buf_init(&b, 100);
    spell_buf_addstr(&b, "x=");
    CHECK_INT(spell_jcs_serialize(v, &b), SPELL_OK);
    CHECK_INT(spell_jcs_serialize(v, &b), SPELL_OK);
    CHECK_INT(b.len, 2 + 2 * n);
    CHECK(strncmp(spell_buf_str(&b), "x={\"a\"", 6) == 0);
    spell_buf_free(&b);

    /* A cap of 0 takes nothing. */
    spell_buf_init(&b, 0);
    CHECK_INT(spell_jcs_serialize(v, &b), SPELL_ETOOBIG);
    CHECK_STR(spell_buf_str(&b), "");
    spell_buf_free(&b);
    cJSON_Delete(v);
}

/* Many members in reverse order come out sorted, and the length agrees. */
static void test_many_members(void)
{
    cJSON *v = cJSON_CreateObject();
    char name[16];
    for (int i = 9999; i >= 0; i--) {
        snprintf(name, sizeof name, "k%04d", i);
        cJSON_AddNumberToObject(v, name, i);
    }
    int rc = -100;
    char *s = canon(v, &rc);
    CHECK_INT(rc, SPELL_OK);
    CHECK(strncmp(s, "{\"k0000\":0,\"k0001\":1,", 21) == 0);
    size_t n = strlen(s);
    CHECK(n > 14 && strcmp(s + n - 14, ",\"k9999\":9999}") == 0);
    size_t len = 0;
    CHECK_INT(spell_jcs_length(v, &len), SPELL_OK);
    CHECK_INT(len, n);
    free(s);
    cJSON_Delete(v);
}

/*
 * The input hash of a known object.  The expected digest was computed
 * apart from this code, with coreutils:
 *   printf '%s' '{"a":1,"b":[1,"x"]}' | sha256sum
 */
static void test_input_hash(void)
{
    const char *want = "677ba3966fe15b482a9751f84bc33a0571252aae740dd82f55c8b9dcc2554334";
    char hash[65];

    cJSON *v = cJSON_Parse("{ \"b\": [1.0, \"x\"],\n \"a\": 1e0 }");
    CHECK_INT(spell_input_hash(v, hash), SPELL_OK);
    CHECK_STR(hash, want);
    cJSON_Delete(v);

    /* The same inputs spelled another way hash the same. */
    v = cJSON_Parse("{\"a\":10E-1,\"b\":[0.1e1,\"\\u0078\"]}");
    CHECK_INT(spell_input_hash(v, hash), SPELL_OK);
    CHECK_STR(hash, want);
    cJSON_Delete(v);

    /* printf '%s' '{}' | sha256sum */
    v = cJSON_CreateObject();
    CHECK_INT(spell_input_hash(v, hash), SPELL_OK);
    CHECK_STR(hash, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    cJSON_Delete(v);

    /* No canonical form, no hash. */
    v = cJSON_Parse("{\"a\":1,\"a\":2}");
    memcpy(hash, "stale", 6);
    CHECK_INT(spell_input_hash(v, hash), SPELL_EINVAL);
    CHECK_STR(hash, "");
    cJSON_Delete(v);
}

/* The canonical text to hash is capped at SPELL_JCS_HASH_MAX bytes. */
static void test_input_hash_cap(void)
{
    char hash[65];
    /* {"s":"..."} is 8 bytes around the string. */
    size_t fits = SPELL_JCS_HASH_MAX - 8;
    char *big = malloc(fits + 2);
    CHECK(big != NULL);
    if (!big)
        return;
    memset(big, 'a', fits + 1);
    big[fits] = '\0';
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "s", big);
    CHECK_INT(spell_input_hash(v, hash), SPELL_OK);
    CHECK_INT(strlen(hash), 64);
    cJSON_Delete(v);

    big[fits] = 'a';
    big[fits + 1] = '\0';
    v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "s", big);
    CHECK_INT(spell_input_hash(v, hash), SPELL_ETOOBIG);
    CHECK_STR(hash, "");
    size_t len = 0;
    CHECK_INT(spell_jcs_length(v, &len), SPELL_OK);
    CHECK_INT(len, (size_t)SPELL_JCS_HASH_MAX + 1);
    cJSON_Delete(v);
    free(big);
}

int main(void)
{
    RUN(test_rfc8785_sample);
    RUN(test_rfc8785_sorting);
    RUN(test_rfc8785_appendix_b);
    RUN(test_non_finite_rejected);
    RUN(test_number_layout);
    RUN(test_literals_and_scalars);
    RUN(test_nested);
    RUN(test_string_escapes);
    RUN(test_nul_in_string);
    RUN(test_invalid_utf8);
    RUN(test_duplicate_names);
    RUN(test_bad_nodes);
    RUN(test_depth_cap);
    RUN(test_buffer_cap);
    RUN(test_many_members);
    RUN(test_input_hash);
    RUN(test_input_hash_cap);
    return tap_done();
}
