/* Unit tests for server/http/router.c: patterns, matching, decoding, 405. */
#include <string.h>

#include "spell/errors.h"

#include "router.h"
#include "tap.h"

static int dummy(struct request *req, struct response **out, void *ud)
{
    return SPELL_OK;
}

static const struct route table[] = {
    {"GET", "/healthz", dummy, NULL, 0, 0},
    {"GET", "/v1/casts", dummy, NULL, 0, 0},
    {"GET", "/v1/casts/{id}", dummy, NULL, 0, 0},
    {"GET", "/v1/casts/{id}/events", dummy, NULL, 0, 0},
    {"POST", "/v1/casts/{id}:cancel", dummy, NULL, 0, 0},
    {"GET", "/v1/spells/{key}", dummy, NULL, 0, 0},
    {"POST", "/v1/spells/{key}:cast", dummy, NULL, 0, 0},
    {"DELETE", "/v1/keys/{prefix}", dummy, NULL, 0, 0},
    {"GET", "/v1/budgets", dummy, NULL, 0, 0},
    {"POST", "/v1/budgets", dummy, NULL, 0, 0},
    {"PUT", "/v1/budgets", dummy, NULL, 0, 0},
    {"DELETE", "/v1/budgets", dummy, NULL, 0, 0},
    {"GET", "/a/{x}/b/{y}", dummy, NULL, 0, 0},
    {"GET", "/files/pre-{name}.txt", dummy, NULL, 0, 0},
};
#define NTABLE (sizeof table / sizeof table[0])

static enum router_result find(const char *method, const char *path, size_t *idx,
                               struct router_params *p, char *allow)
{
    return router_find(table, NTABLE, method, path, strlen(path), idx, p, allow);
}

static void test_pattern_check(void)
{
    CHECK_INT(router_pattern_check("/"), SPELL_OK);
    CHECK_INT(router_pattern_check("/v1/casts/{id}:cancel"), SPELL_OK);
    CHECK_INT(router_pattern_check("/a/{x}/b/{y}/c/{z}/d/{w}"), SPELL_OK);
    CHECK_INT(router_pattern_check("/a/{x}/b/{y}/c/{z}/d/{w}/e/{v}"), SPELL_EINVAL);
    CHECK_INT(router_pattern_check(NULL), SPELL_EINVAL);
    CHECK_INT(router_pattern_check(""), SPELL_EINVAL);
    CHECK_INT(router_pattern_check("v1/casts"), SPELL_EINVAL);
    CHECK_INT(router_pattern_check("/x/{"), SPELL_EINVAL);
    CHECK_INT(router_pattern_check("/x/{}"), SPELL_EINVAL);
    CHECK_INT(router_pattern_check("/x/}"), SPELL_EINVAL);
    CHECK_INT(router_pattern_check("/x/{a-b}"), SPELL_EINVAL);
    CHECK_INT(router_pattern_check("/x/{a}{b}"), SPELL_EINVAL);
    CHECK_INT(router_pattern_check("/x/{a{b}}"), SPELL_EINVAL);
    CHECK_INT(router_pattern_check("/x/{abcdefghijabcdefghijabcdefghijabc}"), SPELL_EINVAL);
    CHECK_INT(router_pattern_check("/x/{abcdefghijabcdefghijabcdefghijab}"), SPELL_OK);
}

static void test_literal_and_params(void)
{
    size_t idx = 99;
    struct router_params p;
    char allow[ROUTER_ALLOW_MAX];

    CHECK_INT(find("GET", "/healthz", &idx, &p, allow), ROUTER_FOUND);
    CHECK_INT(idx, 0);
    CHECK_INT(p.count, 0);
    CHECK_INT(find("GET", "/v1/casts", &idx, &p, allow), ROUTER_FOUND);
    CHECK_INT(idx, 1);
    CHECK_INT(find("GET", "/v1/casts/cst_01HX", &idx, &p, allow), ROUTER_FOUND);
    CHECK_INT(idx, 2);
    CHECK_STR(router_param(&p, "id"), "cst_01HX");
    CHECK(router_param(&p, "key") == NULL);
    CHECK_INT(find("GET", "/v1/casts/cst_9/events", &idx, &p, allow), ROUTER_FOUND);
    CHECK_INT(idx, 3);
    CHECK_STR(router_param(&p, "id"), "cst_9");
    CHECK_INT(find("GET", "/a/1/b/two", &idx, &p, allow), ROUTER_FOUND);
    CHECK_STR(router_param(&p, "x"), "1");
    CHECK_STR(router_param(&p, "y"), "two");
    CHECK_INT(p.count, 2);
    CHECK_INT(find("GET", "/files/pre-report.txt", &idx, &p, allow), ROUTER_FOUND);
    CHECK_STR(router_param(&p, "name"), "report");
    CHECK_INT(find("GET", "/files/pre-.txt", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/files/report.txt", &idx, &p, allow), ROUTER_NOT_FOUND);
}

static void test_verb_suffix(void)
{
    size_t idx = 99;
    struct router_params p;
    char allow[ROUTER_ALLOW_MAX];

    CHECK_INT(find("POST", "/v1/spells/thumbnail:cast", &idx, &p, allow), ROUTER_FOUND);
    CHECK_INT(idx, 6);
    CHECK_STR(router_param(&p, "key"), "thumbnail");
    CHECK_INT(find("POST", "/v1/casts/cst_1:cancel", &idx, &p, allow), ROUTER_FOUND);
    CHECK_INT(idx, 4);
    CHECK_STR(router_param(&p, "id"), "cst_1");
    /* {id} alone never swallows a ':verb'. */
    CHECK_INT(find("GET", "/v1/casts/cst_1:cancel", &idx, &p, allow),
              ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(allow, "POST");
    CHECK_INT(find("POST", "/v1/casts/cst_1:delete", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("POST", "/v1/casts/:cancel", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("POST", "/v1/spells/a:b:cast", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/v1/spells/thumb:cast", &idx, &p, allow),
              ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(allow, "POST");
}

static void test_not_found_shapes(void)
{
    size_t idx;
    struct router_params p;
    char allow[ROUTER_ALLOW_MAX];
    char longpath[ROUTER_PATH_MAX + 10];

    CHECK_INT(find("GET", "/", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "healthz", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/healthz/", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "//healthz", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/v1/casts/", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/v1/casts//events", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/v1/casts/a/b", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/v1/casts/a/events/x", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/V1/CASTS", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/healthzz", &idx, &p, allow), ROUTER_NOT_FOUND);
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    CHECK_INT(find("GET", longpath, &idx, &p, allow), ROUTER_NOT_FOUND);
}

static void test_method_not_allowed(void)
{
    size_t idx = 99;
    struct router_params p;
    char allow[ROUTER_ALLOW_MAX];

    CHECK_INT(find("PATCH", "/v1/budgets", &idx, &p, allow), ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(allow, "GET, HEAD, POST, PUT, DELETE");
    CHECK_INT(idx, 8);
    CHECK_INT(find("POST", "/v1/casts/x", &idx, &p, allow), ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(allow, "GET, HEAD");
    CHECK_INT(find("HEAD", "/v1/casts/x", &idx, &p, allow), ROUTER_FOUND);
    CHECK_INT(idx, 2);
    CHECK_INT(find("GET", "/v1/keys/abc", &idx, &p, allow), ROUTER_METHOD_NOT_ALLOWED);
    CHECK_STR(allow, "DELETE");
    /* Methods are case-sensitive (RFC 9110). */
    CHECK_INT(find("get", "/healthz", &idx, &p, allow), ROUTER_METHOD_NOT_ALLOWED);
}

static void test_param_decoding_and_bounds(void)
{
    size_t idx;
    struct router_params p;
    char allow[ROUTER_ALLOW_MAX];
    char path[600];

    CHECK_INT(find("GET", "/v1/casts/a%20b", &idx, &p, allow), ROUTER_FOUND);
    CHECK_STR(router_param(&p, "id"), "a b");
    CHECK_INT(find("GET", "/v1/casts/%C3%A9t%C3%A9", &idx, &p, allow), ROUTER_FOUND);
    CHECK_STR(router_param(&p, "id"), "\xc3\xa9t\xc3\xa9");
    /* '+' is not a space in a path; a broken escape stays as it is. */
    CHECK_INT(find("GET", "/v1/casts/a+b%zz%4", &idx, &p, allow), ROUTER_FOUND);
    CHECK_STR(router_param(&p, "id"), "a+b%zz%4");
    /* Encoded slash, NUL and control bytes never match. */
    CHECK_INT(find("GET", "/v1/casts/a%2Fb", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/v1/casts/a%00b", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/v1/casts/a%0Ab", &idx, &p, allow), ROUTER_NOT_FOUND);
    CHECK_INT(find("GET", "/v1/casts/a%7Fb", &idx, &p, allow), ROUTER_NOT_FOUND);
    /* An encoded ':' is data, not a verb separator. */
    CHECK_INT(find("GET", "/v1/casts/a%3Acancel", &idx, &p, allow), ROUTER_FOUND);
    CHECK_STR(router_param(&p, "id"), "a:cancel");

    /* Exactly ROUTER_PARAM_MAX bytes fit; one more does not. */
    strcpy(path, "/v1/casts/");
    memset(path + 10, 'x', ROUTER_PARAM_MAX);
    path[10 + ROUTER_PARAM_MAX] = '\0';
    CHECK_INT(find("GET", path, &idx, &p, allow), ROUTER_FOUND);
    CHECK_INT(strlen(router_param(&p, "id")), ROUTER_PARAM_MAX);
    strcat(path, "x");
    CHECK_INT(find("GET", path, &idx, &p, allow), ROUTER_NOT_FOUND);
    /* An escape counts decoded: 256 "%41" is 256 bytes. */
    strcpy(path, "/v1/casts/");
    for (int i = 0; i < 150; i++)
        strcat(path, "%41");
    CHECK_INT(find("GET", path, &idx, &p, allow), ROUTER_FOUND);
    CHECK_INT(strlen(router_param(&p, "id")), 150);
}

static void test_decode(void)
{
    char out[16];

    CHECK_INT(router_decode("a%41+b", 6, out, sizeof out - 1, 1), 4);
    CHECK_STR(out, "aA b");
    CHECK_INT(router_decode("a%41+b", 6, out, sizeof out - 1, 0), 4);
    CHECK_STR(out, "aA+b");
    CHECK_INT(router_decode("%", 1, out, sizeof out - 1, 0), 1);
    CHECK_STR(out, "%");
    CHECK_INT(router_decode("%4", 2, out, sizeof out - 1, 0), 2);
    CHECK_INT(router_decode("%4g", 3, out, sizeof out - 1, 0), 3);
    CHECK_STR(out, "%4g");
    CHECK_INT(router_decode("%00", 3, out, sizeof out - 1, 0), -1);
    CHECK_INT(router_decode("", 0, out, sizeof out - 1, 0), 0);
    CHECK_STR(out, "");
    CHECK_INT(router_decode("abcd", 4, out, 3, 0), -1);
    CHECK_INT(router_decode("abc", 3, out, 3, 0), 3);
    CHECK_INT(router_decode("%ff%FE", 6, out, sizeof out - 1, 0), 2);
    CHECK_MEM(out, 2, "\xff\xfe", 2);
}

int main(void)
{
    RUN(test_pattern_check);
    RUN(test_literal_and_params);
    RUN(test_verb_suffix);
    RUN(test_not_found_shapes);
    RUN(test_method_not_allowed);
    RUN(test_param_decoding_and_bounds);
    RUN(test_decode);
    return tap_done();
}
