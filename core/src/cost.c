/*
 * Cost estimation (cost.h).
 *
 * A spell's pricing arrives as part of the spell resource (models.h
 * decodes and encodes it, with the field checks of every other resource).
 * Before a cast runs, spell_cost_estimate_inputs() measures the canonical inputs
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
