/* Unit tests for the error catalog: DESIGN.md §3's codes and statuses. */
#include "spell/errors.h"
#include "tap.h"

static void test_catalog_matches_design(void)
{
    static const struct { const char *code; int status; } want[] = {
        {"UNAUTHORIZED", 401}, {"FORBIDDEN", 403}, {"NOT_FOUND", 404},
        {"SPELL_NOT_FOUND", 404}, {"CAST_NOT_FOUND", 404},
        {"VALIDATION_ERROR", 400}, {"IDEMPOTENCY_KEY_REQUIRED", 400},
        {"IDEMPOTENCY_KEY_REUSED", 422}, {"IDEMPOTENCY_IN_PROGRESS", 409},
        {"BUDGET_EXCEEDED", 402}, {"PAYMENT_METHOD_REQUIRED", 402},
        {"PAYMENT_FAILED", 402}, {"PURCHASE_REQUIRED", 402},
        {"RATE_LIMITED", 429}, {"PAYLOAD_TOO_LARGE", 413},
        {"INTERNAL", 500}, {"UNAVAILABLE", 503},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int e = spell_api_error_lookup(want[i].code);
        CHECK(e >= 0);
        if (e < 0)
            continue;
        CHECK_STR(spell_api_error_code(e), want[i].code);
        CHECK_INT(spell_api_error_status(e), want[i].status);
    }
}

static void test_every_row_is_complete(void)
{
    for (int e = 0; e < SPELL_ERR__COUNT; e++) {
        const struct spell_api_error_info *info = spell_api_error_info(e);
        CHECK(info && info->code && info->sentence && info->sentence[0]);
        CHECK(info && info->status >= 400 && info->status < 600);
        CHECK_INT(spell_api_error_lookup(info->code), e);
    }
    CHECK(spell_api_error_info(SPELL_ERR__COUNT) == NULL);
    CHECK(spell_api_error_info((enum spell_api_error)-1) == NULL);
}

static void test_unknown_codes(void)
{
    CHECK_INT(spell_api_error_lookup("NO_SUCH_CODE"), -1);
    CHECK_INT(spell_api_error_lookup(NULL), -1);
    CHECK_INT(spell_api_error_lookup("budget_exceeded"), -1);
    CHECK_STR(spell_api_error_sentence("BUDGET_EXCEEDED", 402),
              "This cast would go over your budget's hard limit.");
    CHECK_STR(spell_api_error_sentence("NEW_CODE", 503),
              "The server ran into trouble; try again shortly.");
    CHECK_STR(spell_api_error_sentence(NULL, 418), "The server refused the request.");
}

static void test_strerror(void)
{
    CHECK_STR(spell_strerror(SPELL_OK), "success");
    CHECK_STR(spell_strerror(SPELL_ETOOBIG), "size limit exceeded");
    CHECK_STR(spell_strerror(-999), "unknown error");
}

int main(void)
{
    RUN(test_catalog_matches_design);
    RUN(test_every_row_is_complete);
    RUN(test_unknown_codes);
    RUN(test_strerror);
    return tap_done();
}
