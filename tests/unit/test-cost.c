/*
 * Unit tests for core/src/cost.c: model names, the estimate of each
 * model around the KiB boundaries, overflow, the estimate from inputs
 * (canonical length), and the pricing object of a manifest both ways.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"
#include "spell/cost.h"
#include "spell/errors.h"
#include "spell/jcs.h"
#include "tap.h"

static struct spell_pricing flat(int64_t c)
{
    struct spell_pricing p = {SPELL_PRICING_FLAT, c, 0, 0};
    return p;
}

static struct spell_pricing metered(int64_t base, int64_t per)
{
    struct spell_pricing p = {SPELL_PRICING_METERED, 0, base, per};
    return p;
}

/* The estimate for p and bytes, or the sentinel -777 on failure. */
static int64_t est(struct spell_pricing p, size_t bytes, int want_rc)
{
    int64_t c = -777;
    CHECK_INT(spell_cost_estimate(&p, bytes, &c), want_rc);
    return c;
}

static void test_model_names(void)
{
    enum spell_pricing_model m = SPELL_PRICING_FLAT;
    CHECK_STR(spell_pricing_model_name(SPELL_PRICING_FREE), "free");
    CHECK_STR(spell_pricing_model_name(SPELL_PRICING_FLAT), "flat");
    CHECK_STR(spell_pricing_model_name(SPELL_PRICING_METERED), "metered");
    CHECK(spell_pricing_model_name((enum spell_pricing_model)3) == NULL);
    CHECK(spell_pricing_model_name((enum spell_pricing_model)-1) == NULL);

    CHECK_INT(spell_pricing_model_parse("free", &m), SPELL_OK);
    CHECK_INT(m, SPELL_PRICING_FREE);
    CHECK_INT(spell_pricing_model_parse("metered", &m), SPELL_OK);
    CHECK_INT(m, SPELL_PRICING_METERED);
    CHECK_INT(spell_pricing_model_parse("flat", &m), SPELL_OK);
    CHECK_INT(m, SPELL_PRICING_FLAT);

    static const char *const bad[] = {"", "Flat", "FREE", "flat ", " flat", "meter",
                                      "metered\n", "fla", "flatt", "per_kb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = SPELL_PRICING_METERED;
        CHECK_INT(spell_pricing_model_parse(bad[i], &m), SPELL_EINVAL);
        CHECK_INT(m, SPELL_PRICING_METERED);
    }
    CHECK_INT(spell_pricing_model_parse(NULL, &m), SPELL_EINVAL);
    CHECK_INT(spell_pricing_model_parse("free", NULL), SPELL_EINVAL);
}

static void test_free_and_flat(void)
{
    struct spell_pricing fr = {SPELL_PRICING_FREE, 0, 0, 0};
    CHECK_INT(est(fr, 0, SPELL_OK), 0);
    CHECK_INT(est(fr, 1 << 20, SPELL_OK), 0);
    CHECK_INT(est(fr, SIZE_MAX, SPELL_OK), 0);
    /* Prices of other models do not matter to free. */
    struct spell_pricing fr2 = {SPELL_PRICING_FREE, -5, 7, 9};
    CHECK_INT(est(fr2, 5000, SPELL_OK), 0);

    CHECK_INT(est(flat(250), 0, SPELL_OK), 250);
    CHECK_INT(est(flat(250), 999999, SPELL_OK), 250);
    CHECK_INT(est(flat(0), 10, SPELL_OK), 0);
    CHECK_INT(est(flat(INT64_MAX), SIZE_MAX, SPELL_OK), INT64_MAX);
    struct spell_pricing fl2 = {SPELL_PRICING_FLAT, 30, -1, -1};
    CHECK_INT(est(fl2, 1, SPELL_OK), 30);
}

static void test_metered_boundaries(void)
{
    struct spell_pricing p = metered(5, 3);
    CHECK_INT(est(p, 0, SPELL_OK), 5);
    CHECK_INT(est(p, 1, SPELL_OK), 8);
    CHECK_INT(est(p, 2, SPELL_OK), 8);
    CHECK_INT(est(p, 1023, SPELL_OK), 8);
    CHECK_INT(est(p, 1024, SPELL_OK), 8);
    CHECK_INT(est(p, 1025, SPELL_OK), 11);
    CHECK_INT(est(p, 2048, SPELL_OK), 11);
    CHECK_INT(est(p, 2049, SPELL_OK), 14);
    CHECK_INT(est(p, 64 * 1024, SPELL_OK), 5 + 64 * 3);
    CHECK_INT(est(p, 64 * 1024 + 1, SPELL_OK), 5 + 65 * 3);
    CHECK_INT(est(metered(0, 0), 5000, SPELL_OK), 0);
    CHECK_INT(est(metered(7, 0), 5000, SPELL_OK), 7);
    CHECK_INT(est(metered(0, 1), 1, SPELL_OK), 1);
    /* SIZE_MAX bytes: 2^54 started KiB on a 64-bit size_t. */
    if (sizeof(size_t) == 8)
        CHECK_INT(est(metered(0, 1), SIZE_MAX, SPELL_OK), INT64_C(1) << 54);
}

static void test_negative_and_bad(void)
{
    int64_t c = -777;
    CHECK_INT(est(flat(-1), 0, SPELL_EINVAL), -777);
    CHECK_INT(est(flat(INT64_MIN), 0, SPELL_EINVAL), -777);
    CHECK_INT(est(metered(-1, 1), 10, SPELL_EINVAL), -777);
    CHECK_INT(est(metered(1, -1), 10, SPELL_EINVAL), -777);
    CHECK_INT(est(metered(1, -1), 0, SPELL_EINVAL), -777);
    struct spell_pricing bad = {(enum spell_pricing_model)9, 1, 1, 1};
    CHECK_INT(est(bad, 10, SPELL_EINVAL), -777);

    struct spell_pricing p = flat(1);
    CHECK_INT(spell_cost_estimate(NULL, 1, &c), SPELL_EINVAL);
    CHECK_INT(spell_cost_estimate(&p, 1, NULL), SPELL_EINVAL);
    CHECK_INT(c, -777);
}

static void test_overflow(void)
{
    /* The product. */
    CHECK_INT(est(metered(0, INT64_MAX), 1024, SPELL_OK), INT64_MAX);
    CHECK_INT(est(metered(0, INT64_MAX), 1025, SPELL_EINVAL), -777);
    CHECK_INT(est(metered(0, INT64_MAX / 2 + 1), 2048, SPELL_EINVAL), -777);
    CHECK_INT(est(metered(0, INT64_MAX / 2), 2048, SPELL_OK), INT64_MAX / 2 * 2);
    if (sizeof(size_t) == 8) {
        /* 2^54 KiB at 2^9 cents is 2^63: one past INT64_MAX. */
        CHECK_INT(est(metered(0, 512), SIZE_MAX, SPELL_EINVAL), -777);
        CHECK_INT(est(metered(0, 511), SIZE_MAX, SPELL_OK), (INT64_C(1) << 54) * 511);
    }
    /* The sum. */
    CHECK_INT(est(metered(INT64_MAX, 0), 1 << 20, SPELL_OK), INT64_MAX);
    CHECK_INT(est(metered(INT64_MAX, 1), 0, SPELL_OK), INT64_MAX);
    CHECK_INT(est(metered(INT64_MAX, 1), 1, SPELL_EINVAL), -777);
    CHECK_INT(est(metered(INT64_MAX - 2, 1), 2048, SPELL_OK), INT64_MAX);
    CHECK_INT(est(metered(INT64_MAX - 2, 1), 2049, SPELL_EINVAL), -777);
    CHECK_INT(est(metered(INT64_MAX - 10, 5), 2049, SPELL_EINVAL), -777);
}

static int64_t est_inputs(struct spell_pricing p, const char *json, int want_rc)
{
    int64_t c = -777;
    cJSON *v = cJSON_Parse(json);
    CHECK(v != NULL);
    CHECK_INT(spell_cost_estimate_inputs(&p, v, &c), want_rc);
    cJSON_Delete(v);
    return c;
}

/* {"s":"<n bytes>"} is n + 8 canonical bytes. */
static cJSON *sized_inputs(size_t total)
{
    char *s = malloc(total - 8 + 1);
    if (!s)
        return NULL;
    memset(s, 'x', total - 8);
    s[total - 8] = '\0';
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "s", s);
    free(s);
    return v;
}

static void test_estimate_inputs(void)
{
    struct spell_pricing m = metered(5, 1);
    int64_t c = -777;

    /* {} is 2 bytes: one started KiB. */
    CHECK_INT(est_inputs(m, "{}", SPELL_OK), 6);
    CHECK_INT(est_inputs(m, " {  } ", SPELL_OK), 6);
    CHECK_INT(est_inputs(flat(40), "{\"a\":1}", SPELL_OK), 40);
    struct spell_pricing fr = {SPELL_PRICING_FREE, 0, 0, 0};
    CHECK_INT(est_inputs(fr, "{\"a\":1}", SPELL_OK), 0);

    static const struct { size_t bytes; int64_t want; } t[] = {
        {9, 6}, {1023, 6}, {1024, 6}, {1025, 7}, {2048, 7}, {2049, 8}, {10000, 15},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        cJSON *v = sized_inputs(t[i].bytes);
        size_t len = 0;
        CHECK_INT(spell_jcs_length(v, &len), SPELL_OK);
        CHECK_INT(len, t[i].bytes);
        c = -777;
        CHECK_INT(spell_cost_estimate_inputs(&m, v, &c), SPELL_OK);
        CHECK_INT(c, t[i].want);
        cJSON_Delete(v);
    }

    /* The canonical length counts, not the length as sent: 1024 bytes of
     * padding and spelling shrink to {"a":1}. */
    char *sent = malloc(2048);
    CHECK(sent != NULL);
    if (sent) {
        memset(sent, ' ', 2047);
        sent[2047] = '\0';
        memcpy(sent, "{\"a\":1.000", 10);
        memcpy(sent + 2040, "}", 2);
        CHECK_INT(est_inputs(metered(0, 10), sent, SPELL_OK), 10);
        free(sent);
    }

    /* Inputs without canonical form: metered fails, the others do not
     * look at the inputs. */
    CHECK_INT(est_inputs(m, "{\"a\":1e999}", SPELL_EINVAL), -777);
    CHECK_INT(est_inputs(m, "{\"a\":1,\"a\":1}", SPELL_EINVAL), -777);
    CHECK_INT(est_inputs(flat(3), "{\"a\":1e999}", SPELL_OK), 3);
    CHECK_INT(est_inputs(metered(-1, 0), "{}", SPELL_EINVAL), -777);

    cJSON *v = cJSON_CreateObject();
    CHECK_INT(spell_cost_estimate_inputs(NULL, v, &c), SPELL_EINVAL);
    CHECK_INT(spell_cost_estimate_inputs(&m, NULL, &c), SPELL_EINVAL);
    CHECK_INT(spell_cost_estimate_inputs(&m, v, NULL), SPELL_EINVAL);
    cJSON_Delete(v);
}

/* from_json with a pricing text (NULL for none). */
int main(void)
{
    RUN(test_model_names);
    RUN(test_free_and_flat);
    RUN(test_metered_boundaries);
    RUN(test_negative_and_bad);
    RUN(test_overflow);
    RUN(test_estimate_inputs);
    return tap_done();
}
