/*
 * Cost estimation (cost.h).
 *
 * A spell manifest's pricing object comes in through
 * spell_pricing_from_json(), which checks it once at import; the server
 * stores the struct and gives it back with spell_pricing_to_json().  Before
 * a cast runs, spell_cost_estimate_inputs() measures the canonical inputs
 * (jcs.h) and spell_cost_estimate() turns model, prices and size into
 * cents with every multiplication and addition checked for overflow.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "spell/cost.h"
#include "spell/errors.h"
#include "spell/jcs.h"

static const char *const model_names[] = {
    [SPELL_PRICING_FREE] = "free",
    [SPELL_PRICING_FLAT] = "flat",
    [SPELL_PRICING_METERED] = "metered",
};

#define MODEL_COUNT (sizeof model_names / sizeof model_names[0])

const char *spell_pricing_model_name(enum spell_pricing_model m)
{
    if ((unsigned)m >= MODEL_COUNT)
        return NULL;
    return model_names[m];
}

int spell_pricing_model_parse(const char *s, enum spell_pricing_model *out)
{
    if (!s || !out)
        return SPELL_EINVAL;
    for (size_t i = 0; i < MODEL_COUNT; i++) {
        if (strcmp(s, model_names[i]) == 0) {
            *out = (enum spell_pricing_model)i;
            return SPELL_OK;
        }
    }
    return SPELL_EINVAL;
}

int spell_cost_estimate(const struct spell_pricing *p, size_t canonical_input_bytes,
                        int64_t *out_cents)
{
    int64_t total = 0;
    int rc = SPELL_EINVAL;

    if (!p || !out_cents)
        goto out;
    switch (p->model) {
    case SPELL_PRICING_FREE:
        total = 0;
        break;
    case SPELL_PRICING_FLAT:
        if (p->flat_cents < 0)
            goto out;
        total = p->flat_cents;
        break;
    case SPELL_PRICING_METERED: {
        if (p->base_cents < 0 || p->per_kb_cents < 0)
            goto out;
        /* Started KiB, without the overflow of bytes + 1023. */
        uint64_t kib = canonical_input_bytes / 1024u +
                       (canonical_input_bytes % 1024u != 0);
        if (kib > (uint64_t)INT64_MAX)
            goto out;
        int64_t per = p->per_kb_cents;
        if (per != 0 && (int64_t)kib > INT64_MAX / per)
            goto out;
        int64_t metered = (int64_t)kib * per;
        if (metered > INT64_MAX - p->base_cents)
            goto out;
        total = p->base_cents + metered;
        break;
    }
    default:
        goto out;
    }
    *out_cents = total;
    rc = SPELL_OK;
out:
    return rc;
}

int spell_cost_estimate_inputs(const struct spell_pricing *p, const cJSON *inputs,
                               int64_t *out_cents)
{
    size_t bytes = 0;
    int rc;

    if (!p || !inputs || !out_cents)
        return SPELL_EINVAL;
    if (p->model == SPELL_PRICING_METERED &&
        (rc = spell_jcs_length(inputs, &bytes)) != SPELL_OK)
        return rc;
    return spell_cost_estimate(p, bytes, out_cents);
}

/* A member that must be an integral JSON number in 0..SPELL_PRICE_MAX_CENTS. */
static int price_field(const cJSON *pricing, const char *name, int64_t *out,
                       char *err, size_t errlen)
{
    const cJSON *v = cJSON_IsObject(pricing)
                     ? cJSON_GetObjectItemCaseSensitive(pricing, name) : NULL;

    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > (double)SPELL_PRICE_MAX_CENTS) {
        if (err && errlen > 0)
            snprintf(err, errlen, "pricing.%s must be a non-negative integer", name);
        return SPELL_EINVAL;
    }
    *out = (int64_t)v->valuedouble;
    return SPELL_OK;
}

int spell_pricing_from_json(const char *model, const cJSON *pricing,
                            struct spell_pricing *out, char *err, size_t errlen)
{
    struct spell_pricing p = {SPELL_PRICING_FREE, 0, 0, 0};
    int rc = SPELL_EINVAL;

    if (err && errlen > 0)
        err[0] = '\0';
    if (!out)
        goto out;
    if (spell_pricing_model_parse(model, &p.model) != SPELL_OK) {
        if (err && errlen > 0)
            snprintf(err, errlen, "pricing_model must be free, flat or metered");
        goto out;
    }
    if (pricing && !cJSON_IsObject(pricing)) {
        if (err && errlen > 0)
            snprintf(err, errlen, "pricing must be an object");
        goto out;
    }
    switch (p.model) {
    case SPELL_PRICING_FREE:
        break;
    case SPELL_PRICING_FLAT:
        if ((rc = price_field(pricing, "flat_cents", &p.flat_cents, err, errlen)) != SPELL_OK)
            goto out;
        break;
    case SPELL_PRICING_METERED:
        if ((rc = price_field(pricing, "base_cents", &p.base_cents, err, errlen)) != SPELL_OK)
            goto out;
        if ((rc = price_field(pricing, "per_kb_cents", &p.per_kb_cents, err, errlen)) != SPELL_OK)
            goto out;
        break;
    }
    *out = p;
    rc = SPELL_OK;
out:
    return rc;
}

static int price_ok(int64_t v)
{
    return v >= 0 && v <= SPELL_PRICE_MAX_CENTS;
}

cJSON *spell_pricing_to_json(const struct spell_pricing *p)
{
    cJSON *o = NULL;
    cJSON *result = NULL;

    if (!p)
        goto out;
    switch (p->model) {
    case SPELL_PRICING_FREE:
        break;
    case SPELL_PRICING_FLAT:
        if (!price_ok(p->flat_cents))
            goto out;
        break;
    case SPELL_PRICING_METERED:
        if (!price_ok(p->base_cents) || !price_ok(p->per_kb_cents))
            goto out;
        break;
    default:
        goto out;
    }
    if (!(o = cJSON_CreateObject()))
        goto out;
    if (p->model == SPELL_PRICING_FLAT &&
        !cJSON_AddNumberToObject(o, "flat_cents", (double)p->flat_cents))
        goto out;
    if (p->model == SPELL_PRICING_METERED &&
        (!cJSON_AddNumberToObject(o, "base_cents", (double)p->base_cents) ||
         !cJSON_AddNumberToObject(o, "per_kb_cents", (double)p->per_kb_cents)))
        goto out;
    result = o;
    o = NULL;
out:
    cJSON_Delete(o);
    return result;
}
