/*
 * Inside the billing part: the part's state and the Stripe client that
 * handlers.c, webhook.c and invoices.c share.
 *
 * stripe_call() sends one form-encoded request to srv->providers'
 * stripe_api_url and hands back the parsed JSON object of a 2xx answer.
 * A create passes an Idempotency-Key; core's HTTP client then retries it
 * like any idempotent request (transport failures, 5xx, 429), so a retry
 * can never create a second object.
 */
#ifndef SPELL_SERVER_BILLING_IMPL_H
#define SPELL_SERVER_BILLING_IMPL_H

#include <cjson/cJSON.h>

#include "spell/buf.h"

#include "billing.h"
#include "router.h"

#define BILLING_ROUTES 5

/* Largest form body built for one Stripe request. */
#define STRIPE_FORM_MAX ((size_t)16 * 1024)
/* Longest Stripe object id accepted in a path ("cus_...", "seti_..."). */
#define STRIPE_ID_MAX 255

struct billing {
    struct server *srv;
    struct route rows[BILLING_ROUTES];
};

enum stripe_fail {
    /* Stripe answered 4xx: the request itself was refused (message in
     * err); retrying the same request will not help. */
    STRIPE_REFUSED = -200,
};

/* Appends "name=value" (value percent-encoded, name as given: Stripe's
 * bracket notation such as metadata[user_id] stays readable) to form. */
int stripe_form_add(struct spell_buf *form, const char *name, const char *value);
int stripe_form_add_int(struct spell_buf *form, const char *name, int64_t value);

/*
 * method "GET" or "POST", path from "/v1/..." on; form may be NULL; idem
 * is the Idempotency-Key or NULL.  SPELL_OK with *obj (caller frees) for a
 * 2xx answer holding a JSON object; STRIPE_REFUSED for a 4xx (err holds
 * Stripe's message and code); SPELL_ENET or SPELL_ETIMEOUT when Stripe
 * could not be reached or kept failing (5xx); SPELL_EPARSE for an answer
 * that is not a JSON object.  err always says why in a sentence.
 */
int stripe_call(const struct server *srv, const char *method, const char *path,
                const struct spell_buf *form, const char *idem, cJSON **obj, char *err,
                size_t errlen);

/* 1 when s is a plausible Stripe object id (letters, digits, '_'), safe in
 * a URL path. */
int stripe_id_ok(const char *s);

/* The string member name of o, or NULL (absent, null, another type). */
const char *stripe_str(const cJSON *o, const char *name);

/* Webhook and monthly handlers (webhook.c, invoices.c). */
int billing_webhook_handler(struct request *req, struct response **out, void *ud);
int billing_admin_monthly_handler(struct request *req, struct response **out, void *ud);

/* Saves a card from a PaymentMethod id for the customer as the result of
 * event_id (fetches it from Stripe and makes it the customer's default). */
int billing_card_from_pm(struct server *srv, const char *event_id, const char *type,
                         const char *customer_id, const char *pm_id, int *duplicate,
                         char *err, size_t errlen);

#endif
