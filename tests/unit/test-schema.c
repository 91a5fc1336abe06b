/*
 * Unit tests for core/src/schema.c: the subset check with each violation,
 * validation of cast inputs with the exact field and message of each
 * failure, code-point counting for maxLength, integer and number edges,
 * typed text from the CLI and the portal, and the form field listing.
 * The thumbnail schema is the one of DESIGN.md §2.
 */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/schema.h"
#include "tap.h"

static const char thumbnail[] =
    "{\"type\": \"object\", \"required\": [\"url\"],"
    " \"properties\": {\"url\": {\"type\": \"string\", \"maxLength\": 2048},"
    "                \"width\": {\"type\": \"integer\", \"minimum\": 16, \"maximum\": 4096}}}";

static cJSON *J(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    if (!j)
        printf("#   cannot parse: %s\n", text);
    CHECK(j != NULL);
    return j;
}

/* Validates inputs text against schema text; fills e. */
static int validate(const char *schema, const char *inputs, struct spell_schema_error *e)
{
    cJSON *s = J(schema), *in = J(inputs);
    int rc = spell_schema_validate(s, in, e);
    cJSON_Delete(s);
    cJSON_Delete(in);
    return rc;
}

#define CHECK_FAULT(schema, inputs, want_field, want_msg) do { \
    struct spell_schema_error e_; \
    CHECK_INT(validate((schema), (inputs), &e_), SPELL_EINVAL); \
    CHECK_STR(e_.field, (want_field)); \
    CHECK_STR(e_.message, (want_msg)); \
} while (0)

#define CHECK_VALID(schema, inputs) do { \
    struct spell_schema_error e_; \
    int rc_ = validate((schema), (inputs), &e_); \
    if (rc_ != SPELL_OK) \
        printf("#   %s: %s\n", (inputs), e_.message); \
    CHECK_INT(rc_, SPELL_OK); \
} while (0)

/* ---- check ------------------------------------------------------------- */

static void test_check_thumbnail(void)
{
    cJSON *s = J(thumbnail);
    char err[256] = "x";
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_OK);
    CHECK_STR(err, "");
    cJSON_Delete(s);

    /* Also the whole manifest's inputs_schema, as import reads it. */
    cJSON *m = J("{\"key\": \"thumbnail\", \"inputs_schema\": {\"type\": \"object\","
                 " \"required\": [\"url\"], \"properties\": {\"url\": {\"type\": \"string\","
                 " \"maxLength\": 2048}, \"width\": {\"type\": \"integer\", \"minimum\": 16,"
                 " \"maximum\": 4096}}}}");
    CHECK_INT(spell_schema_check(cJSON_GetObjectItemCaseSensitive(m, "inputs_schema"), err,
                                 sizeof err), SPELL_OK);
    cJSON_Delete(m);
}

static void test_check_accepts(void)
{
    static const char *const good[] = {
        "{\"type\": \"object\"}",
        "{\"type\": \"object\", \"properties\": {}}",
        "{\"type\": \"object\", \"properties\": {}, \"required\": []}",
        "{\"type\": \"object\", \"additionalProperties\": false, \"title\": \"T\","
        " \"$schema\": \"https://json-schema.org/draft/2020-12/schema\"}",
        "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\","
        " \"title\": \"A\", \"description\": \"d\", \"format\": \"uri\", \"examples\": [1],"
        " \"default\": \"x\", \"x-widget\": {\"rows\": 3}, \"enum\": [\"x\", \"y\"]}}}",
        "{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"number\","
        " \"minimum\": -0.5, \"maximum\": -0.5, \"default\": -0.5}}}",
        "{\"type\": \"object\", \"properties\": {\"i\": {\"type\": \"integer\","
        " \"minimum\": 1.5, \"enum\": [2, 3.0], \"default\": 3}}}",
        "{\"type\": \"object\", \"properties\": {\"b\": {\"type\": \"boolean\","
        " \"enum\": [true, false], \"default\": false}}}",
        "{\"type\": \"object\", \"properties\": {\"s\": {\"type\": \"string\", \"maxLength\": 0}}}",
        "{\"type\": \"object\", \"properties\": {\"\xC3\xA9t\xC3\xA9\": {\"type\": \"string\"}}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cJSON *s = J(good[i]);
        char err[256] = "";
        int rc = spell_schema_check(s, err, sizeof err);
        if (rc != SPELL_OK)
            printf("#   case %zu: %s\n", i, err);
        CHECK_INT(rc, SPELL_OK);
        cJSON_Delete(s);
    }
}

struct bad_schema {
    const char *text;
    const char *msg;
};

#define P(body) "{\"type\": \"object\", \"properties\": {\"a\": " body "}}"

static void test_check_violations(void)
{
    static const struct bad_schema cases[] = {
        {"[]", "schema must be a JSON object"},
        {"\"object\"", "schema must be a JSON object"},
        {"{}", "schema: type must be \"object\""},
        {"{\"type\": \"array\"}", "schema: type must be \"object\""},
        {"{\"type\": [\"object\"]}", "schema: type must be \"object\""},
        {"{\"type\": \"object\", \"type\": \"object\"}",
         "schema: keyword 'type' appears twice"},
        {"{\"type\": \"object\", \"properties\": []}", "properties must be an object"},
        {"{\"type\": \"object\", \"properties\": {\"a\": 1}}", "properties.a: must be an object"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"},"
         " \"a\": {\"type\": \"string\"}}}", "properties: 'a' is declared twice"},
        {"{\"type\": \"object\", \"properties\": {\"\": {\"type\": \"string\"}}}",
         "properties: a property name is empty"},
        {"{\"type\": \"object\", \"additionalProperties\": true}",
         "schema: additionalProperties may only be false (inputs not declared in properties "
         "are always refused)"},
        {"{\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"}}",
         "schema: additionalProperties may only be false (inputs not declared in properties "
         "are always refused)"},
        {"{\"type\": \"object\", \"oneOf\": []}", "schema: 'oneOf' is not supported"},
        {"{\"type\": \"object\", \"enum\": [{}]}", "schema: 'enum' is not supported"},
        {"{\"type\": \"object\", \"patternProperties\": {}}",
         "schema: 'patternProperties' is not supported"},
        {P("{}"), "properties.a: type is missing"},
        {P("{\"type\": \"array\"}"),
         "properties.a: type must be one of string, integer, number, boolean"},
        {P("{\"type\": \"object\"}"),
         "properties.a: type must be one of string, integer, number, boolean"},
        {P("{\"type\": \"null\"}"),
         "properties.a: type must be one of string, integer, number, boolean"},
        {P("{\"type\": [\"string\", \"null\"]}"),
         "properties.a: type must be one of string, integer, number, boolean"},
        {P("{\"type\": \"String\"}"),
         "properties.a: type must be one of string, integer, number, boolean"},
        {P("{\"type\": \"string\", \"type\": \"integer\"}"),
         "properties.a: keyword 'type' appears twice"},
        {P("{\"type\": \"integer\", \"maxLength\": 3}"),
         "properties.a: maxLength is only allowed on string properties"},
        {P("{\"type\": \"boolean\", \"maxLength\": 3}"),
         "properties.a: maxLength is only allowed on string properties"},
        {P("{\"type\": \"string\", \"minimum\": 3}"),
         "properties.a: minimum is only allowed on integer and number properties"},
        {P("{\"type\": \"boolean\", \"maximum\": 3}"),
         "properties.a: maximum is only allowed on integer and number properties"},
        {P("{\"type\": \"integer\", \"minimum\": \"5\"}"),
         "properties.a: minimum must be a finite number"},
        {P("{\"type\": \"number\", \"maximum\": 1e999}"),
         "properties.a: maximum must be a finite number"},
        {P("{\"type\": \"number\", \"maximum\": null}"),
         "properties.a: maximum must be a finite number"},
        {P("{\"type\": \"integer\", \"minimum\": 10, \"maximum\": 9}"),
         "properties.a: minimum is greater than maximum"},
        {P("{\"type\": \"string\", \"maxLength\": -1}"),
         "properties.a: maxLength must be a non-negative integer"},
        {P("{\"type\": \"string\", \"maxLength\": 1.5}"),
         "properties.a: maxLength must be a non-negative integer"},
        {P("{\"type\": \"string\", \"maxLength\": \"3\"}"),
         "properties.a: maxLength must be a non-negative integer"},
        {P("{\"type\": \"string\", \"maxLength\": 1e300}"),
         "properties.a: maxLength must be a non-negative integer"},
        {P("{\"type\": \"string\", \"enum\": []}"),
         "properties.a: enum must be an array of 1 to 64 values"},
        {P("{\"type\": \"string\", \"enum\": \"x\"}"),
         "properties.a: enum must be an array of 1 to 64 values"},
        {P("{\"type\": \"string\", \"enum\": [\"x\", 1]}"),
         "properties.a: enum value 1 must be a string"},
        {P("{\"type\": \"string\", \"enum\": [null]}"),
         "properties.a: enum value 0 must be a string"},
        {P("{\"type\": \"integer\", \"enum\": [1.5]}"),
         "properties.a: enum value 0 must be an integer"},
        {P("{\"type\": \"integer\", \"enum\": [\"1\"]}"),
         "properties.a: enum value 0 must be an integer"},
        {P("{\"type\": \"number\", \"enum\": [true]}"),
         "properties.a: enum value 0 must be a number"},
        {P("{\"type\": \"boolean\", \"enum\": [0]}"),
         "properties.a: enum value 0 must be true or false"},
        {P("{\"type\": \"string\", \"enum\": [\"x\", \"y\", \"x\"]}"),
         "properties.a: enum value 2 repeats an earlier one"},
        {P("{\"type\": \"integer\", \"enum\": [1, 1.0]}"),
         "properties.a: enum value 1 repeats an earlier one"},
        {P("{\"type\": \"string\", \"pattern\": \"^a\"}"),
         "properties.a: 'pattern' is not supported"},
        {P("{\"type\": \"string\", \"minLength\": 1}"),
         "properties.a: 'minLength' is not supported"},
        {P("{\"type\": \"integer\", \"exclusiveMinimum\": 1}"),
         "properties.a: 'exclusiveMinimum' is not supported"},
        {P("{\"type\": \"number\", \"multipleOf\": 2}"),
         "properties.a: 'multipleOf' is not supported"},
        {P("{\"type\": \"string\", \"const\": \"x\"}"),
         "properties.a: 'const' is not supported"},
        {P("{\"type\": \"string\", \"$ref\": \"#/x\"}"),
         "properties.a: '$ref' is not supported"},
        {P("{\"type\": \"integer\", \"default\": \"x\"}"),
         "properties.a: default does not fit: a must be an integer"},
        {P("{\"type\": \"integer\", \"minimum\": 16, \"default\": 8}"),
         "properties.a: default does not fit: a must be at least 16"},
        {P("{\"type\": \"string\", \"enum\": [\"x\"], \"default\": \"y\"}"),
         "properties.a: default does not fit: a must be one of: x"},
        {P("{\"type\": \"boolean\", \"default\": null}"),
         "properties.a: default does not fit: a must be true or false"},
        {"{\"type\": \"object\", \"required\": \"a\"}",
         "required must be an array of at most 64 property names"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}},"
         " \"required\": [1]}", "required[0] must be a string"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}},"
         " \"required\": [\"a\", \"b\"]}",
         "required[1] names 'b', which properties does not declare"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}},"
         " \"required\": [\"A\"]}",
         "required[0] names 'A', which properties does not declare"},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}},"
         " \"required\": [\"a\", \"a\"]}", "required[1]: 'a' is listed twice"},
        {"{\"type\": \"object\", \"required\": [\"a\"]}",
         "required[0] names 'a', which properties does not declare"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *s = J(cases[i].text);
        char err[512] = "";
        int rc = spell_schema_check(s, err, sizeof err);
        if (rc != SPELL_EINVAL || strcmp(err, cases[i].msg) != 0)
            printf("#   case %zu: %s\n", i, cases[i].text);
        CHECK_INT(rc, SPELL_EINVAL);
        CHECK_STR(err, cases[i].msg);
        cJSON_Delete(s);
    }
    char err[64];
    CHECK_INT(spell_schema_check(NULL, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "schema must be a JSON object");
    /* No err buffer, or a short one, is fine. */
    cJSON *s = J("[]");
    CHECK_INT(spell_schema_check(s, NULL, 0), SPELL_EINVAL);
    char tiny[7];
    CHECK_INT(spell_schema_check(s, tiny, sizeof tiny), SPELL_EINVAL);
    CHECK_STR(tiny, "schema");
    cJSON_Delete(s);
}

/* A schema with n string properties p0, p1, ... and extra keywords. */
static cJSON *wide_schema(int n)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "object");
    cJSON *props = cJSON_AddObjectToObject(s, "properties");
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        cJSON *p = cJSON_AddObjectToObject(props, name);
        cJSON_AddStringToObject(p, "type", "string");
    }
    return s;
}

static void test_check_caps(void)
{
    char err[256];
    cJSON *s = wide_schema(64);
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_OK);
    cJSON_Delete(s);
    s = wide_schema(65);
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "properties: more than 64 properties");
    cJSON_Delete(s);

    /* Names: 64 bytes fine, 65 not, invalid UTF-8 not. */
    char name[80];
    memset(name, 'n', sizeof name);
    name[64] = '\0';
    s = wide_schema(0);
    cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    cJSON *p = cJSON_AddObjectToObject(props, name);
    cJSON_AddStringToObject(p, "type", "boolean");
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_OK);
    name[64] = 'n';
    name[65] = '\0';
    p = cJSON_AddObjectToObject(props, name);
    cJSON_AddStringToObject(p, "type", "boolean");
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "properties: a property name is longer than 64 bytes");
    cJSON_Delete(s);

    s = wide_schema(0);
    props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    p = cJSON_AddObjectToObject(props, "bad\xC3");
    cJSON_AddStringToObject(p, "type", "boolean");
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "properties: a property name is not valid UTF-8");
    cJSON_Delete(s);

    /* Enums: 64 values fine, 65 not. */
    s = wide_schema(1);
    p = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "properties"),
                                         "p0");
    cJSON *en = cJSON_AddArrayToObject(p, "enum");
    for (int i = 0; i < 64; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        cJSON_AddItemToArray(en, cJSON_CreateString(v));
    }
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_OK);
    cJSON_AddItemToArray(en, cJSON_CreateString("v64"));
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "properties.p0: enum must be an array of 1 to 64 values");
    cJSON_Delete(s);

    /* Keywords in one property: at most 64. */
    s = wide_schema(1);
    p = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "properties"),
                                         "p0");
    for (int i = 0; i < 63; i++) {
        char k[16];
        snprintf(k, sizeof k, "x-%d", i);
        cJSON_AddNullToObject(p, k);
    }
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_OK);
    cJSON_AddNullToObject(p, "x-last");
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "properties.p0: has more than 64 keywords");
    cJSON_Delete(s);

    /* required longer than 64 entries. */
    s = wide_schema(1);
    cJSON *req = cJSON_AddArrayToObject(s, "required");
    for (int i = 0; i < 65; i++)
        cJSON_AddItemToArray(req, cJSON_CreateString("p0"));
    CHECK_INT(spell_schema_check(s, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "required must be an array of at most 64 property names");
    cJSON_Delete(s);
}

/* ---- validate ---------------------------------------------------------- */

static void test_validate_thumbnail(void)
{
    CHECK_VALID(thumbnail, "{\"url\": \"https://img.example/a.png\", \"width\": 300}");
    CHECK_VALID(thumbnail, "{\"url\": \"https://img.example/a.png\"}");
    CHECK_VALID(thumbnail, "{\"width\": 16, \"url\": \"\"}");
    CHECK_VALID(thumbnail, "{\"url\": \"u\", \"width\": 4096}");
    CHECK_VALID(thumbnail, "{\"url\": \"u\", \"width\": 300.0}");
    CHECK_VALID(thumbnail, "{\"url\": \"u\", \"width\": 3e2}");

    CHECK_FAULT(thumbnail, "{}", "url", "url is required");
    CHECK_FAULT(thumbnail, "{\"width\": 300}", "url", "url is required");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": 15}", "width",
                "width must be at least 16");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": -300}", "width",
                "width must be at least 16");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": 4097}", "width",
                "width must be at most 4096");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": 1.5}", "width",
                "width must be an integer");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": 16.000001}", "width",
                "width must be an integer");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": \"300\"}", "width",
                "width must be an integer");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": null}", "width",
                "width must be an integer");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": true}", "width",
                "width must be an integer");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": [300]}", "width",
                "width must be an integer");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": 1e300}", "width",
                "width must be an integer between -9007199254740991 and 9007199254740991");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": 1e999}", "width",
                "width must be an integer");
    CHECK_FAULT(thumbnail, "{\"url\": 42}", "url", "url must be a string");
    CHECK_FAULT(thumbnail, "{\"url\": {\"href\": \"x\"}}", "url", "url must be a string");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"heigth\": 10}", "heigth",
                "heigth is not a known input");
    CHECK_FAULT(thumbnail, "{\"URL\": \"u\"}", "URL", "URL is not a known input");
    CHECK_FAULT(thumbnail, "{\"url\": \"u\", \"width\": 20, \"width\": 30}", "width",
                "width is given more than once");
    CHECK_FAULT(thumbnail, "[]", "", "inputs must be a JSON object");
    CHECK_FAULT(thumbnail, "null", "", "inputs must be a JSON object");
    CHECK_FAULT(thumbnail, "\"url=u\"", "", "inputs must be a JSON object");

    struct spell_schema_error e;
    cJSON *s = J(thumbnail);
    CHECK_INT(spell_schema_validate(s, NULL, &e), SPELL_EINVAL);
    CHECK_STR(e.message, "inputs must be a JSON object");
    cJSON *in = J("{\"url\": \"u\"}");
    CHECK_INT(spell_schema_validate(s, in, NULL), SPELL_OK);
    cJSON_Delete(in);
    cJSON_Delete(s);
}

static void test_validate_max_length_code_points(void)
{
    /* maxLength 2048 of DESIGN.md: 2048 code points of 4 bytes pass. */
    char *big = malloc(2049 * 4 + 32);
    CHECK(big != NULL);
    if (!big)
        return;
    size_t o = 0;
    o += (size_t)sprintf(big, "{\"url\": \"");
    for (int i = 0; i < 2048; i++) {
        memcpy(big + o, "\xF0\x9F\x98\x80", 4);
        o += 4;
    }
    strcpy(big + o, "\"}");
    CHECK_VALID(thumbnail, big);
    memcpy(big + o, "x\"}", 4);
    CHECK_FAULT(thumbnail, big, "url", "url must be at most 2048 characters");
    free(big);

    static const char s3[] =
        "{\"type\": \"object\", \"properties\": {\"s\": {\"type\": \"string\", \"maxLength\": 3}}}";
    /* a, U+1F600 (4 bytes), U+00E9 (2 bytes): 3 code points in 7 bytes. */
    CHECK_VALID(s3, "{\"s\": \"a\xF0\x9F\x98\x80\xC3\xA9\"}");
    /* The same written as JSON escapes, with a euro sign: still 3. */
    CHECK_VALID(s3, "{\"s\": \"\\ud83d\\ude00\\u00e9\\u20ac\"}");
    CHECK_FAULT(s3, "{\"s\": \"\\ud83d\\ude00\\u00e9\\u20acx\"}", "s",
                "s must be at most 3 characters");
    CHECK_FAULT(s3, "{\"s\": \"a\xF0\x9F\x98\x80\xC3\xA9x\"}", "s",
                "s must be at most 3 characters");
    CHECK_FAULT(s3, "{\"s\": \"abcd\"}", "s", "s must be at most 3 characters");
    CHECK_VALID(s3, "{\"s\": \"\"}");

    static const char s0[] =
        "{\"type\": \"object\", \"properties\": {\"s\": {\"type\": \"string\", \"maxLength\": 0}}}";
    CHECK_VALID(s0, "{\"s\": \"\"}");
    CHECK_FAULT(s0, "{\"s\": \" \"}", "s", "s must be at most 0 characters");

    /* Invalid UTF-8 in a string value is refused. */
    cJSON *s = J(s3);
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "s", "\xC3\x28");
    struct spell_schema_error e;
    CHECK_INT(spell_schema_validate(s, in, &e), SPELL_EINVAL);
    CHECK_STR(e.field, "s");
    CHECK_STR(e.message, "s must be valid UTF-8 text");
    cJSON_DeleteItemFromObject(in, "s");
    cJSON_AddStringToObject(in, "s", "\xED\xA0\x80");
    CHECK_INT(spell_schema_validate(s, in, &e), SPELL_EINVAL);
    CHECK_STR(e.message, "s must be valid UTF-8 text");
    cJSON_Delete(in);
    cJSON_Delete(s);
}

static void test_validate_numbers(void)
{
    static const char num[] =
        "{\"type\": \"object\", \"properties\": {\"r\": {\"type\": \"number\","
        " \"minimum\": 0.1, \"maximum\": 2.5}, \"i\": {\"type\": \"integer\"}}}";
    CHECK_VALID(num, "{\"r\": 0.1}");
    CHECK_VALID(num, "{\"r\": 2.5}");
    CHECK_VALID(num, "{\"r\": 1}");
    CHECK_FAULT(num, "{\"r\": 0.09999}", "r", "r must be at least 0.1");
    CHECK_FAULT(num, "{\"r\": 2.5000001}", "r", "r must be at most 2.5");
    CHECK_FAULT(num, "{\"r\": \"1\"}", "r", "r must be a number");
    CHECK_FAULT(num, "{\"r\": false}", "r", "r must be a number");
    CHECK_FAULT(num, "{\"r\": 1e999}", "r", "r must be a finite number");
    CHECK_FAULT(num, "{\"r\": -1e999}", "r", "r must be a finite number");

    CHECK_VALID(num, "{\"i\": 9007199254740991}");
    CHECK_VALID(num, "{\"i\": -9007199254740991}");
    CHECK_VALID(num, "{\"i\": 0}");
    CHECK_VALID(num, "{\"i\": -0}");
    CHECK_VALID(num, "{\"i\": 1.0}");
    CHECK_FAULT(num, "{\"i\": 9007199254740992}", "i",
                "i must be an integer between -9007199254740991 and 9007199254740991");
    CHECK_FAULT(num, "{\"i\": -9007199254740993}", "i",
                "i must be an integer between -9007199254740991 and 9007199254740991");
    CHECK_FAULT(num, "{\"i\": 1.5}", "i", "i must be an integer");
    CHECK_FAULT(num, "{\"i\": 0.5e-300}", "i", "i must be an integer");

    /* Values cJSON cannot parse but a caller can build. */
    cJSON *s = J(num);
    cJSON *in = cJSON_CreateObject();
    cJSON_AddNumberToObject(in, "r", NAN);
    struct spell_schema_error e;
    CHECK_INT(spell_schema_validate(s, in, &e), SPELL_EINVAL);
    CHECK_STR(e.message, "r must be a finite number");
    cJSON_Delete(in);
    in = cJSON_CreateObject();
    cJSON_AddNumberToObject(in, "i", INFINITY);
    CHECK_INT(spell_schema_validate(s, in, &e), SPELL_EINVAL);
    CHECK_STR(e.message, "i must be an integer");
    cJSON_Delete(in);
    cJSON_Delete(s);

    static const char neg[] =
        "{\"type\": \"object\", \"properties\": {\"t\": {\"type\": \"number\","
        " \"minimum\": -273.15, \"maximum\": 1e20}}}";
    CHECK_FAULT(neg, "{\"t\": -300}", "t", "t must be at least -273.15");
    CHECK_FAULT(neg, "{\"t\": 1e21}", "t", "t must be at most 1e+20");
}

static void test_validate_enum_and_boolean(void)
{
    static const char s[] =
        "{\"type\": \"object\", \"required\": [\"mode\"], \"properties\": {"
        " \"mode\": {\"type\": \"string\", \"enum\": [\"fast\", \"slow\"]},"
        " \"n\": {\"type\": \"integer\", \"enum\": [1, 2, 3]},"
        " \"r\": {\"type\": \"number\", \"enum\": [0.5, 1.25]},"
        " \"b\": {\"type\": \"boolean\", \"enum\": [true]},"
        " \"flag\": {\"type\": \"boolean\"}}}";
    CHECK_VALID(s, "{\"mode\": \"fast\"}");
    CHECK_VALID(s, "{\"mode\": \"slow\", \"n\": 2.0, \"r\": 1.25, \"b\": true, \"flag\": false}");
    CHECK_FAULT(s, "{\"mode\": \"medium\"}", "mode", "mode must be one of: fast, slow");
    CHECK_FAULT(s, "{\"mode\": \"FAST\"}", "mode", "mode must be one of: fast, slow");
    CHECK_FAULT(s, "{\"mode\": \"fast\", \"n\": 4}", "n", "n must be one of: 1, 2, 3");
    CHECK_FAULT(s, "{\"mode\": \"fast\", \"n\": 2.5}", "n", "n must be an integer");
    CHECK_FAULT(s, "{\"mode\": \"fast\", \"r\": 0.75}", "r", "r must be one of: 0.5, 1.25");
    CHECK_FAULT(s, "{\"mode\": \"fast\", \"b\": false}", "b", "b must be one of: true");
    CHECK_FAULT(s, "{\"mode\": \"fast\", \"flag\": 1}", "flag", "flag must be true or false");
    CHECK_FAULT(s, "{\"mode\": \"fast\", \"flag\": \"true\"}", "flag",
                "flag must be true or false");
    CHECK_FAULT(s, "{\"mode\": \"fast\", \"flag\": null}", "flag",
                "flag must be true or false");
    CHECK_FAULT(s, "{\"n\": 1}", "mode", "mode is required");

    /* An enum too long to list is named without its values. */
    cJSON *sc = wide_schema(1);
    cJSON *p = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(sc, "properties"), "p0");
    cJSON *en = cJSON_AddArrayToObject(p, "enum");
    for (int i = 0; i < 64; i++) {
        char v[48];
        snprintf(v, sizeof v, "a-rather-long-choice-%d", i);
        cJSON_AddItemToArray(en, cJSON_CreateString(v));
    }
    cJSON *in = J("{\"p0\": \"nope\"}");
    struct spell_schema_error e;
    CHECK_INT(spell_schema_validate(sc, in, &e), SPELL_EINVAL);
    CHECK_STR(e.field, "p0");
    CHECK_STR(e.message, "p0 is not one of the allowed values");
    cJSON_Delete(in);
    cJSON_Delete(sc);
}

static void test_validate_hostile(void)
{
    /* An unknown name too long or not UTF-8 is not repeated. */
    cJSON *s = J(thumbnail);
    struct spell_schema_error e;
    char name[200];
    memset(name, 'q', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, name, "x");
    CHECK_INT(spell_schema_validate(s, in, &e), SPELL_EINVAL);
    CHECK_STR(e.field, "");
    CHECK_STR(e.message, "inputs hold a property that is not a known input");
    cJSON_Delete(in);

    in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "u\xFFrl", "x");
    CHECK_INT(spell_schema_validate(s, in, &e), SPELL_EINVAL);
    CHECK_STR(e.field, "");
    cJSON_Delete(in);

    in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "ur\x1b[2Jl", "x");
    CHECK_INT(spell_schema_validate(s, in, &e), SPELL_EINVAL);
    CHECK_STR(e.field, "");
    cJSON_Delete(in);

    /* Many unknown properties: the first one stops validation. */
    in = cJSON_CreateObject();
    for (int i = 0; i < 10000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        cJSON_AddNumberToObject(in, k, i);
    }
    CHECK_INT(spell_schema_validate(s, in, &e), SPELL_EINVAL);
    CHECK_STR(e.field, "k0");
    cJSON_Delete(in);
    cJSON_Delete(s);

    /* A broken schema is the server's fault, said apart. */
    s = J("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"date\"}}}");
    in = J("{}");
    CHECK_INT(spell_schema_validate(s, in, &e), SPELL_EPARSE);
    CHECK_STR(e.field, "");
    CHECK_STR(e.message, "the spell's input schema is invalid: properties.a: type must be "
                         "one of string, integer, number, boolean");
    CHECK_INT(spell_schema_validate(NULL, in, &e), SPELL_EPARSE);
    cJSON_Delete(in);
    cJSON_Delete(s);

    /* No properties at all: only {} passes. */
    CHECK_VALID("{\"type\": \"object\"}", "{}");
    CHECK_FAULT("{\"type\": \"object\"}", "{\"a\": 1}", "a", "a is not a known input");
}

/* ---- value_from_text --------------------------------------------------- */

static const char form[] =
    "{\"type\": \"object\", \"required\": [\"url\"], \"properties\": {"
    " \"url\": {\"type\": \"string\", \"maxLength\": 5},"
    " \"width\": {\"type\": \"integer\", \"minimum\": 16, \"maximum\": 4096},"
    " \"count\": {\"type\": \"integer\"},"
    " \"ratio\": {\"type\": \"number\", \"maximum\": 100},"
    " \"loud\": {\"type\": \"boolean\"},"
    " \"mode\": {\"type\": \"string\", \"enum\": [\"fast\", \"slow\"]}}}";

/* The JSON text of the value typed for field, or NULL with e filled. */
static char *typed(const char *field, const char *text, int *rc, struct spell_schema_error *e)
{
    cJSON *s = J(form);
    cJSON *v = (cJSON *)0x1;
    *rc = spell_schema_value_from_text(s, field, text, &v, e);
    char *out = NULL;
    if (*rc == SPELL_OK) {
        out = cJSON_PrintUnformatted(v);
        cJSON_Delete(v);
    } else {
        CHECK(v == NULL);
    }
    cJSON_Delete(s);
    return out;
}

#define CHECK_TYPED(fld_, text, want_json) do { \
    int rc_; \
    struct spell_schema_error e_; \
    char *got_ = typed((fld_), (text), &rc_, &e_); \
    if (rc_ != SPELL_OK) \
        printf("#   %s=%s: %s\n", (fld_), (text), e_.message); \
    CHECK_INT(rc_, SPELL_OK); \
    CHECK_STR(got_, (want_json)); \
    free(got_); \
} while (0)

#define CHECK_UNTYPED(fld_, text, want_rc, want_field, want_msg) do { \
    int rc_; \
    struct spell_schema_error e_; \
    char *got_ = typed((fld_), (text), &rc_, &e_); \
    CHECK_INT(rc_, (want_rc)); \
    CHECK(got_ == NULL); \
    CHECK_STR(e_.field, (want_field)); \
    CHECK_STR(e_.message, (want_msg)); \
    free(got_); \
} while (0)

static void test_text_integer(void)
{
    CHECK_TYPED("width", "300", "300");
    CHECK_TYPED("width", " 300\t", "300");
    CHECK_TYPED("width", "0016", "16");
    CHECK_TYPED("count", "-42", "-42");
    CHECK_TYPED("count", "-0", "0");
    /* cJSON prints these with 15 digits, so look at the value itself. */
    cJSON *s = J(form), *v = NULL;
    struct spell_schema_error e;
    CHECK_INT(spell_schema_value_from_text(s, "count", "9007199254740991", &v, &e), SPELL_OK);
    CHECK(v && v->valuedouble == 9007199254740991.0);
    cJSON_Delete(v);
    v = NULL;
    CHECK_INT(spell_schema_value_from_text(s, "count", "-9007199254740991", &v, &e), SPELL_OK);
    CHECK(v && v->valuedouble == -9007199254740991.0);
    cJSON_Delete(v);
    cJSON_Delete(s);
    static const char *const bad[] = {
        "", " ", "-", "+5", "12abc", "1e3", "1.0", "1.5", "0x10", "1 000", "1_000", "--1",
        "\xEF\xBC\x91", "abc", "1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_UNTYPED("count", bad[i], SPELL_EINVAL, "count", "count must be an integer");
    static const char *const huge[] = {
        "9007199254740992", "-9007199254740992", "99999999999999999999",
        "123456789012345678901234567890123456789012345678901234567890",
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
        CHECK_UNTYPED("count", huge[i], SPELL_EINVAL, "count",
                      "count must be an integer between -9007199254740991 and "
                      "9007199254740991");
    CHECK_UNTYPED("width", "15", SPELL_EINVAL, "width", "width must be at least 16");
    CHECK_UNTYPED("width", "4097", SPELL_EINVAL, "width", "width must be at most 4096");
}

static void test_text_number(void)
{
    CHECK_TYPED("ratio", "1.5", "1.5");
    CHECK_TYPED("ratio", "-2e3", "-2000");
    CHECK_TYPED("ratio", ".5", "0.5");
    CHECK_TYPED("ratio", "5.", "5");
    CHECK_TYPED("ratio", "+7", "7");
    CHECK_TYPED("ratio", " 1E-2 ", "0.01");
    CHECK_TYPED("ratio", "0", "0");
    static const char *const bad[] = {
        "", ".", "e5", "1e", "1e+", "nan", "NaN", "inf", "-infinity", "0x1p3", "1,5", "1.5x",
        "1..5", "--1", "1 5", "\xC2\xBD",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_UNTYPED("ratio", bad[i], SPELL_EINVAL, "ratio", "ratio must be a number");
    CHECK_UNTYPED("ratio", "1e999", SPELL_EINVAL, "ratio", "ratio must be a finite number");
    CHECK_UNTYPED("ratio", "-1e400", SPELL_EINVAL, "ratio", "ratio must be a finite number");
    CHECK_UNTYPED("ratio", "100.5", SPELL_EINVAL, "ratio", "ratio must be at most 100");
}

static void test_text_boolean(void)
{
    static const char *const yes[] = {"true", "TRUE", "yes", "Yes", "1", " true "};
    static const char *const no[] = {"false", "False", "no", "NO", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        CHECK_TYPED("loud", yes[i], "true");
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        CHECK_TYPED("loud", no[i], "false");
    static const char *const bad[] = {"", "maybe", "2", "on", "off", "t", "yess", "true1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_UNTYPED("loud", bad[i], SPELL_EINVAL, "loud", "loud must be true or false");
}

static void test_text_string(void)
{
    CHECK_TYPED("url", "abc", "\"abc\"");
    CHECK_TYPED("url", " a b ", "\" a b \"");
    CHECK_TYPED("url", "", "\"\"");
    CHECK_TYPED("url", "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
                       "\xF0\x9F\x98\x80", "\"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
                       "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\"");
    CHECK_TYPED("url", "q\"\\", "\"q\\\"\\\\\"");
    CHECK_UNTYPED("url", "abcdef", SPELL_EINVAL, "url", "url must be at most 5 characters");
    CHECK_UNTYPED("url", "a\xC3", SPELL_EINVAL, "url", "url must be valid UTF-8 text");
    CHECK_UNTYPED("url", "\xC0\x80", SPELL_EINVAL, "url", "url must be valid UTF-8 text");
    CHECK_TYPED("mode", "slow", "\"slow\"");
    CHECK_UNTYPED("mode", "Slow", SPELL_EINVAL, "mode", "mode must be one of: fast, slow");
    CHECK_UNTYPED("mode", " slow", SPELL_EINVAL, "mode", "mode must be one of: fast, slow");

    char *big = malloc(SPELL_SCHEMA_MAX_TEXT + 2);
    CHECK(big != NULL);
    if (big) {
        memset(big, 'a', SPELL_SCHEMA_MAX_TEXT + 1);
        big[SPELL_SCHEMA_MAX_TEXT + 1] = '\0';
        CHECK_UNTYPED("url", big, SPELL_ETOOBIG, "url", "url is longer than 65536 bytes");
        big[SPELL_SCHEMA_MAX_TEXT] = '\0';
        CHECK_UNTYPED("url", big, SPELL_EINVAL, "url", "url must be at most 5 characters");
        CHECK_UNTYPED("count", big, SPELL_EINVAL, "count", "count must be an integer");
        free(big);
    }
}

static void test_text_unknown_and_misuse(void)
{
    CHECK_UNTYPED("heigth", "10", SPELL_EINVAL, "heigth", "heigth is not a known input");
    CHECK_UNTYPED("Width", "10", SPELL_EINVAL, "Width", "Width is not a known input");
    CHECK_UNTYPED("", "10", SPELL_EINVAL, "", "inputs hold a property that is not a known input");
    CHECK_UNTYPED(NULL, "10", SPELL_EINVAL, "",
                  "inputs hold a property that is not a known input");
    CHECK_UNTYPED("width", NULL, SPELL_EINVAL, "width", "width has no value");

    cJSON *bad = J("{\"type\": \"array\"}");
    cJSON *v = NULL;
    struct spell_schema_error e;
    CHECK_INT(spell_schema_value_from_text(bad, "a", "1", &v, &e), SPELL_EPARSE);
    CHECK(v == NULL);
    CHECK_STR(e.message, "the spell's input schema is invalid: schema: type must be \"object\"");
    cJSON_Delete(bad);

    cJSON *s = J(form);
    CHECK_INT(spell_schema_value_from_text(s, "width", "20", NULL, &e), SPELL_EINVAL);
    CHECK_INT(spell_schema_value_from_text(s, "width", "20", &v, NULL), SPELL_OK);
    CHECK(cJSON_IsNumber(v) && v->valuedouble == 20);
    cJSON_Delete(v);
    cJSON_Delete(s);
}

static void test_text_round_trip_into_validate(void)
{
    /* What the CLI builds from -i pairs passes the server's validation. */
    cJSON *s = J(thumbnail);
    cJSON *inputs = cJSON_CreateObject();
    struct spell_schema_error e;
    static const char *const pairs[][2] = {{"url", "https://img.example/a.png"},
                                           {"width", "300"}};
    for (size_t i = 0; i < 2; i++) {
        cJSON *v = NULL;
        CHECK_INT(spell_schema_value_from_text(s, pairs[i][0], pairs[i][1], &v, &e), SPELL_OK);
        if (v)
            cJSON_AddItemToObject(inputs, pairs[i][0], v);
    }
    CHECK_INT(spell_schema_validate(s, inputs, &e), SPELL_OK);
    char *txt = cJSON_PrintUnformatted(inputs);
    CHECK_STR(txt, "{\"url\":\"https://img.example/a.png\",\"width\":300}");
    free(txt);
    cJSON_Delete(inputs);
    cJSON_Delete(s);
}

static void test_text_locale_independent(void)
{
    /* Where a comma-decimal locale is installed, '.' must still be the
     * decimal point in both directions. */
    static const char *const locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8"};
    locale_t loc = (locale_t)0;
    for (size_t i = 0; i < 3 && !loc; i++)
        loc = newlocale(LC_ALL_MASK, locales[i], (locale_t)0);
    locale_t old = loc ? uselocale(loc) : (locale_t)0;
    CHECK_TYPED("ratio", "1.5", "1.5");
    CHECK_UNTYPED("ratio", "1,5", SPELL_EINVAL, "ratio", "ratio must be a number");
    static const char num[] =
        "{\"type\": \"object\", \"properties\": {\"r\": {\"type\": \"number\","
        " \"minimum\": 0.25}}}";
    CHECK_FAULT(num, "{\"r\": 0.125}", "r", "r must be at least 0.25");
    if (loc) {
        uselocale(old);
        freelocale(loc);
    } else {
        printf("# no comma-decimal locale installed; checked in the C locale only\n");
    }
}

/* ---- fields ------------------------------------------------------------ */

static void test_fields_thumbnail(void)
{
    cJSON *s = J(thumbnail);
    struct spell_schema_field *f = NULL;
    size_t n = 0;
    CHECK_INT(spell_schema_fields(s, &f, &n), SPELL_OK);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(f[0].name, "url");
        CHECK_INT(f[0].type, SPELL_SCHEMA_STRING);
        CHECK(f[0].required);
        CHECK(f[0].has_max_length);
        CHECK_INT(f[0].max_length, 2048);
        CHECK(!f[0].has_minimum && !f[0].has_maximum);
        CHECK(f[0].title == NULL && f[0].description == NULL && f[0].default_text == NULL);
        CHECK_INT(f[0].n_enum, 0);
        CHECK(f[0].enum_text == NULL);
        CHECK_STR(f[1].name, "width");
        CHECK_INT(f[1].type, SPELL_SCHEMA_INTEGER);
        CHECK(!f[1].required);
        CHECK(f[1].has_minimum && f[1].has_maximum && !f[1].has_max_length);
        CHECK(f[1].minimum == 16 && f[1].maximum == 4096);
    }
    spell_schema_fields_free(f, n);
    cJSON_Delete(s);
}

static void test_fields_details(void)
{
    cJSON *s = J("{\"type\": \"object\", \"required\": [\"b\"], \"properties\": {"
                 " \"m\": {\"type\": \"string\", \"title\": \"Mode\", \"description\": \"How\","
                 "        \"enum\": [\"fast\", \"slow\"], \"default\": \"slow\"},"
                 " \"r\": {\"type\": \"number\", \"enum\": [0.1, 2.5e-7, 3], \"default\": 3},"
                 " \"b\": {\"type\": \"boolean\", \"default\": true, \"title\": 7},"
                 " \"i\": {\"type\": \"integer\", \"enum\": [-9007199254740991, 2.0]}}}");
    struct spell_schema_field *f = NULL;
    size_t n = 0;
    CHECK_INT(spell_schema_fields(s, &f, &n), SPELL_OK);
    CHECK_INT(n, 4);
    if (n == 4) {
        CHECK_STR(f[0].name, "m");
        CHECK_STR(f[0].title, "Mode");
        CHECK_STR(f[0].description, "How");
        CHECK_INT(f[0].n_enum, 2);
        CHECK_STR(f[0].enum_text[0], "fast");
        CHECK_STR(f[0].enum_text[1], "slow");
        CHECK_STR(f[0].default_text, "slow");
        CHECK(!f[0].required);
        CHECK_INT(f[1].type, SPELL_SCHEMA_NUMBER);
        CHECK_INT(f[1].n_enum, 3);
        CHECK_STR(f[1].enum_text[0], "0.1");
        CHECK_STR(f[1].enum_text[1], "2.5e-07");
        CHECK_STR(f[1].enum_text[2], "3");
        CHECK_STR(f[1].default_text, "3");
        CHECK_STR(f[2].name, "b");
        CHECK(f[2].required);
        CHECK(f[2].title == NULL);
        CHECK_STR(f[2].default_text, "true");
        CHECK_STR(f[3].enum_text[0], "-9007199254740991");
        CHECK_STR(f[3].enum_text[1], "2");
    }
    /* Every enum text reads back through value_from_text. */
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < f[i].n_enum; k++) {
            cJSON *v = NULL;
            struct spell_schema_error e;
            CHECK_INT(spell_schema_value_from_text(s, f[i].name, f[i].enum_text[k], &v, &e),
                      SPELL_OK);
            cJSON_Delete(v);
        }
    }
    spell_schema_fields_free(f, n);
    cJSON_Delete(s);

    s = J("{\"type\": \"object\"}");
    f = (struct spell_schema_field *)0x1;
    n = 9;
    CHECK_INT(spell_schema_fields(s, &f, &n), SPELL_OK);
    CHECK(f == NULL);
    CHECK_INT(n, 0);
    cJSON_Delete(s);

    s = J("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\","
          " \"maxLength\": 1}}}");
    CHECK_INT(spell_schema_fields(s, &f, &n), SPELL_EINVAL);
    CHECK(f == NULL);
    CHECK_INT(n, 0);
    cJSON_Delete(s);
    spell_schema_fields_free(NULL, 0);
}

static void test_type_names(void)
{
    CHECK_STR(spell_schema_type_name(SPELL_SCHEMA_STRING), "string");
    CHECK_STR(spell_schema_type_name(SPELL_SCHEMA_INTEGER), "integer");
    CHECK_STR(spell_schema_type_name(SPELL_SCHEMA_NUMBER), "number");
    CHECK_STR(spell_schema_type_name(SPELL_SCHEMA_BOOLEAN), "boolean");
    CHECK(spell_schema_type_name((enum spell_schema_type)4) == NULL);
}

int main(void)
{
    RUN(test_check_thumbnail);
    RUN(test_check_accepts);
    RUN(test_check_violations);
    RUN(test_check_caps);
    RUN(test_validate_thumbnail);
    RUN(test_validate_max_length_code_points);
    RUN(test_validate_numbers);
    RUN(test_validate_enum_and_boolean);
    RUN(test_validate_hostile);
    RUN(test_text_integer);
    RUN(test_text_number);
    RUN(test_text_boolean);
    RUN(test_text_string);
    RUN(test_text_unknown_and_misuse);
    RUN(test_text_round_trip_into_validate);
    RUN(test_text_locale_independent);
    RUN(test_fields_thumbnail);
    RUN(test_fields_details);
    RUN(test_type_names);
    return tap_done();
}
