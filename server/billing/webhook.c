/*
 * POST /webhooks/stripe: Stripe's event deliveries.
 *
 * The Stripe-Signature header is checked against the raw body with the
 * webhook secret (t and every v1 value, 300 s tolerance): anything else,
 * tampered, stale or unsigned, is 400 and changes nothing.  Each event id
 * is applied once: the store records the id in the same transaction as the
 * event's effect, so a redelivery answers 200 and does nothing.  Unknown
 * event types are recorded and acknowledged with 200.
 *
 * Events handled:
 *   checkout.session.completed   (setup mode) the SetupIntent is fetched for
 *                                its PaymentMethod, then as below
 *   setup_intent.succeeded       the PaymentMethod is fetched: brand, last 4
 *                                and expiry are saved, it becomes the
 *                                customer's default for invoices, and a user
 *                                without a limit of their own gets $50
 *   payment_method.detached      the card is no longer on file
 *   invoice.payment_failed       paid casts are refused with 402
 *   invoice.paid                 ... until an invoice is paid
 *
 * When Stripe cannot be reached while an event needs it, the answer is 503
 * and nothing is recorded: Stripe delivers the event again later.
 */
#include <stdio.h>
#include <string.h>

#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/json.h"

#include "billing-impl.h"
#include "httpd.h"
#include "store.h"

static int answer(int status, const char *json, struct response **out)
{
    return httpd_response_json_str(status, json, out);
}

static int answer_error(enum spell_api_error e, const char *message, struct response **out)
{
    return httpd_response_error(e, message, NULL, out);
}

int billing_card_from_pm(struct server *srv, const char *event_id, const char *type,
                         const char *customer_id, const char *pm_id, int *duplicate,
                         char *err, size_t errlen)
{
    struct store_billing_event ev;
    struct spell_buf form;
    char path[STRIPE_ID_MAX + 64], idem[2 * STRIPE_ID_MAX + 32];
    const cJSON *card, *m, *y;
    const char *brand, *last4, *owner;
    cJSON *pm = NULL, *upd = NULL;
    int rc;

    spell_buf_init(&form, STRIPE_FORM_MAX);
    if (!stripe_id_ok(pm_id) || !stripe_id_ok(customer_id)) {
        snprintf(err, errlen, "the event names no usable payment method or customer");
        rc = SPELL_EINVAL;
        goto out;
    }
    snprintf(path, sizeof path, "/v1/payment_methods/%s", pm_id);
    if ((rc = stripe_call(srv, "GET", path, NULL, NULL, &pm, err, errlen)) != SPELL_OK)
        goto out;
    card = cJSON_GetObjectItemCaseSensitive(pm, "card");
    brand = stripe_str(card, "brand");
    last4 = stripe_str(card, "last4");
    m = cJSON_GetObjectItemCaseSensitive(card, "exp_month");
    y = cJSON_GetObjectItemCaseSensitive(card, "exp_year");
    owner = stripe_str(pm, "customer");
    if (!brand || !last4 || strlen(last4) != 4 || !cJSON_IsNumber(m) || !cJSON_IsNumber(y)) {
        snprintf(err, errlen, "the payment method is not a card");
        rc = SPELL_EINVAL;
        goto out;
    }
    if (owner && strcmp(owner, customer_id) != 0) {
        snprintf(err, errlen, "the payment method belongs to another customer");
        rc = SPELL_EINVAL;
        goto out;
    }
    /* Invoices charge the customer's default payment method. */
    snprintf(path, sizeof path, "/v1/customers/%s", customer_id);
    snprintf(idem, sizeof idem, "spell-default-pm-%s-%s", customer_id, pm_id);
    if ((rc = stripe_form_add(&form, "invoice_settings[default_payment_method]", pm_id)) !=
            SPELL_OK ||
        (rc = stripe_call(srv, "POST", path, &form, idem, &upd, err, errlen)) != SPELL_OK)
        goto out;
    memset(&ev, 0, sizeof ev);
    ev.event_id = event_id;
    ev.type = type;
    ev.effect = STORE_BILLING_CARD_SET;
    ev.customer_id = customer_id;
    ev.payment_method_id = pm_id;
    ev.brand = brand;
    ev.last4 = last4;
    ev.exp_month = m->valueint;
    ev.exp_year = y->valueint;
    rc = store_billing_event_apply(srv->store, &ev, srv_now_ms(&srv->clock), duplicate, NULL);
    if (rc == SPELL_EINVAL)
        snprintf(err, errlen, "the card's details are malformed");
out:
    cJSON_Delete(upd);
    cJSON_Delete(pm);
    spell_buf_free(&form);
    return rc;
}

/* The id of a member that is either an id string or an expanded object. */
static const char *id_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (cJSON_IsObject(v))
        return stripe_str(v, "id");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Applies one verified event; err says why when it fails. */
static int dispatch(struct server *srv, const char *id, const char *type, const cJSON *obj,
                    int *duplicate, char *err, size_t errlen)
{
    struct store_billing_event ev;
    char path[STRIPE_ID_MAX + 64];
    cJSON *si = NULL;
    const char *cus, *pm, *mode;
    int rc;

    memset(&ev, 0, sizeof ev);
    ev.event_id = id;
    ev.type = type;
    ev.effect = STORE_BILLING_NONE;
    cus = id_of(obj, "customer");
    if (strcmp(type, "checkout.session.completed") == 0) {
        mode = stripe_str(obj, "mode");
        pm = id_of(obj, "setup_intent");
        if (mode && strcmp(mode, "setup") == 0 && stripe_id_ok(pm) && stripe_id_ok(cus)) {
            snprintf(path, sizeof path, "/v1/setup_intents/%s", pm);
            if ((rc = stripe_call(srv, "GET", path, NULL, NULL, &si, err, errlen)) != SPELL_OK)
                goto out;
            rc = billing_card_from_pm(srv, id, type, cus, id_of(si, "payment_method"),
                                      duplicate, err, errlen);
            goto out;
        }
    } else if (strcmp(type, "setup_intent.succeeded") == 0) {
        pm = id_of(obj, "payment_method");
        if (stripe_id_ok(pm) && stripe_id_ok(cus)) {
            rc = billing_card_from_pm(srv, id, type, cus, pm, duplicate, err, errlen);
            goto out;
        }
    } else if (strcmp(type, "payment_method.detached") == 0) {
        if (stripe_id_ok(pm = stripe_str(obj, "id"))) {
            ev.effect = STORE_BILLING_CARD_REMOVED;
            ev.payment_method_id = pm;
        }
    } else if (strcmp(type, "invoice.paid") == 0 || strcmp(type, "invoice.payment_failed") == 0) {
        if (stripe_id_ok(cus)) {
            ev.effect = strcmp(type, "invoice.paid") == 0 ? STORE_BILLING_INVOICE_PAID
                                                          : STORE_BILLING_PAYMENT_FAILED;
            ev.customer_id = cus;
        }
    }
    rc = store_billing_event_apply(srv->store, &ev, srv_now_ms(&srv->clock), duplicate, NULL);
    if (rc == SPELL_EINVAL)
        snprintf(err, errlen, "the event is malformed");
out:
    cJSON_Delete(si);
    return rc;
}

int billing_webhook_handler(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct spell_json_limits lim = {BILLING_WEBHOOK_BODY_CAP, 32};
    char err[BILLING_ERR_MAX], msg[BILLING_ERR_MAX + 64];
    const char *secret = srv->providers.stripe_webhook_secret;
    const char *sig = httpd_request_header(req, "Stripe-Signature");
    const char *body, *id, *type;
    const cJSON *data, *obj;
    cJSON *ev = NULL;
    size_t len = 0;
    int rc, seen = 0, duplicate = 0;

    err[0] = '\0';
    body = httpd_request_body(req, &len);
    if (!secret || !secret[0]) {
        rc = answer_error(SPELL_ERR_UNAVAILABLE, "Stripe webhooks are not configured.", out);
        goto out;
    }
    if (!sig || !sig[0]) {
        rc = answer_error(SPELL_ERR_VALIDATION_ERROR, "The Stripe-Signature header is missing.",
                          out);
        goto out;
    }
    rc = spell_stripe_signature_verify(secret, body ? body : "", body ? len : 0, sig,
                                       srv_now_ms(&srv->clock) / 1000,
                                       BILLING_WEBHOOK_TOLERANCE_S);
    if (rc != SPELL_OK) {
        rc = answer_error(SPELL_ERR_VALIDATION_ERROR,
                          rc == SPELL_ETIMEOUT
                              ? "The Stripe-Signature timestamp is outside the tolerance."
                              : "The Stripe-Signature does not match the body.",
                          out);
        goto out;
    }
    if (spell_json_parse(body, len, &lim, &ev, NULL, 0) != SPELL_OK || !cJSON_IsObject(ev) ||
        !(id = stripe_str(ev, "id")) || !stripe_id_ok(id) || !(type = stripe_str(ev, "type")) ||
        !type[0] || strlen(type) >= STORE_NAME_SIZE ||
        !cJSON_IsObject(data = cJSON_GetObjectItemCaseSensitive(ev, "data")) ||
        !cJSON_IsObject(obj = cJSON_GetObjectItemCaseSensitive(data, "object"))) {
        rc = answer_error(SPELL_ERR_VALIDATION_ERROR, "The event is not a Stripe event object.",
                          out);
        goto out;
    }
    if ((rc = store_billing_event_seen(srv->store, id, &seen)) != SPELL_OK)
        goto out;
    if (!seen)
        rc = dispatch(srv, id, type, obj, &duplicate, err, sizeof err);
    if (rc == SPELL_ENET || rc == SPELL_ETIMEOUT || rc == STRIPE_REFUSED || rc == SPELL_EPARSE) {
        snprintf(msg, sizeof msg, "The event could not be processed now: %s.", err);
        rc = answer_error(SPELL_ERR_UNAVAILABLE, msg, out);
        goto out;
    }
    if (rc == SPELL_EINVAL) {
        snprintf(msg, sizeof msg, "The event cannot be applied: %s.", err);
        rc = answer_error(SPELL_ERR_VALIDATION_ERROR, msg, out);
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    rc = answer(200, seen || duplicate ? "{\"received\":true,\"duplicate\":true}"
                                       : "{\"received\":true}",
                out);
out:
    cJSON_Delete(ev);
    return rc;
}
