/*
 * Cost estimation (DESIGN.md §3 step 6): what a cast of a spell is expected
 * to cost, in integer cents.  The server reserves this amount before a cast
 * runs and the front ends show the same figure before the caster confirms,
 * so both call this one implementation.
 */
#ifndef SPELL_COST_H
#define SPELL_COST_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

enum spell_pricing_model {
    SPELL_PRICING_FREE,
    SPELL_PRICING_FLAT,
    SPELL_PRICING_METERED,
};

/* A spell's "pricing_model" and "pricing" object together.  Only the
 * fields of the model are meaningful; the rest stay 0. */
struct spell_pricing {
    enum spell_pricing_model model;
    int64_t flat_cents;     /* flat: the price of one cast */
    int64_t base_cents;     /* metered: the price of any cast */
    int64_t per_kb_cents;   /* metered: per started KiB of canonical input */
};

/* "free", "flat", "metered"; NULL for a value outside the enum. */
const char *spell_pricing_model_name(enum spell_pricing_model m);

/* Parses a pricing model name; SPELL_EINVAL for anything else. */
int spell_pricing_model_parse(const char *s, enum spell_pricing_model *out);

/* The largest price a spell may carry in any field (models.h enforces it):
 * 2^53 - 1 cents, the largest integer a JSON number carries exactly. */
#define SPELL_PRICE_MAX_CENTS INT64_C(9007199254740991)

/*
 * The estimate for a cast whose inputs are canonical_input_bytes long in
 * RFC 8785 form (jcs.h): free 0; flat flat_cents; metered base_cents +
 * ceil(canonical_input_bytes / 1024) * per_kb_cents, so 1 to 1024 bytes
 * are one KiB and 1025 are two.  SPELL_EINVAL for a NULL argument, a model
 * outside the enum, a negative price of the model, or a total past
 * INT64_MAX.  *out_cents is set only on success.
 */
int spell_cost_estimate(const struct spell_pricing *p, size_t canonical_input_bytes,
                        int64_t *out_cents);

/*
 * The same from the inputs themselves.  Only the metered model measures
 * them (spell_jcs_length()); its errors pass through, so inputs that have
 * no canonical form fail there with SPELL_EINVAL.  inputs must not be NULL.
 */
int spell_cost_estimate_inputs(const struct spell_pricing *p, const cJSON *inputs,
                               int64_t *out_cents);

#endif
