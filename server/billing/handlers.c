/*
 * The caller-facing routes of billing, the cast gate and the part's
 * lifecycle:
 *
 *   POST /v1/billing/setup           the user's Customer (created once) and a
 *                                    Checkout Session in setup mode ->
 *                                    {url, expires_at}
 *   POST /v1/billing/setup-intent    a SetupIntent for web front ends ->
 *                                    {client_secret}
 *   GET  /v1/billing/payment-method  the payment_method resource, or 404
 *                                    NOT_FOUND when no card is on file
 *
 * Stripe failures answer 503 UNAVAILABLE with a sentence saying what went
 * wrong; nothing is lost, since the customer id is stored as soon as it
 * exists and every create is idempotent at Stripe.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "spell/models.h"

#include "billing-impl.h"
#include "httpd.h"
#include "ratelimit.h"
#include "store.h"

/* Idempotency-Key a client may pass for its setup request. */
#define CLIENT_IDEM_MAX 200

static int answer_error(struct request *req, enum spell_api_error e, const char *message,
                        struct response **out)
{
    int rc = httpd_response_error(e, message, NULL, out);

    if (rc == SPELL_OK && req)
        ratelimit_headers(req, *out);
    return rc;
}

static int answer_json(struct request *req, int status, const cJSON *j, struct response **out)
{
    int rc = httpd_response_json(status, j, out);

    if (rc == SPELL_OK)
        ratelimit_headers(req, *out);
    return rc;
}

int billing_enabled(const struct server *srv)
{
    return srv && srv->providers.stripe_secret_key && srv->providers.stripe_secret_key[0];
}

/* The user's Stripe customer id, created at Stripe and stored the first
 * time.  The Idempotency-Key names the user, so two racing requests, or a
 * retry after the store failed, get the same customer. */
static int ensure_customer(struct server *srv, const char *user_id, char *cus, size_t cuslen,
                           char *err, size_t errlen)
{
    struct store_billing b;
    struct store_user u;
    struct spell_buf form;
    char idem[STORE_ID_SIZE + 32];
    cJSON *obj = NULL;
    const char *id;
    int rc;

    spell_buf_init(&form, STRIPE_FORM_MAX);
    rc = store_billing_get(srv->store, user_id, &b);
    if (rc == SPELL_OK && b.customer_id[0]) {
        snprintf(cus, cuslen, "%s", b.customer_id);
        goto out;
    }
    if (rc != SPELL_OK && rc != SPELL_ENOTFOUND)
        goto out;
    if ((rc = store_user_get(srv->store, user_id, &u)) != SPELL_OK)
        goto out;
    snprintf(idem, sizeof idem, "spell-customer-%s", user_id);
    if ((rc = stripe_form_add(&form, "name", u.name[0] ? u.name : u.login)) != SPELL_OK ||
        (u.email[0] && (rc = stripe_form_add(&form, "email", u.email)) != SPELL_OK) ||
        (rc = stripe_form_add(&form, "metadata[user_id]", user_id)) != SPELL_OK ||
        (rc = stripe_form_add(&form, "metadata[login]", u.login)) != SPELL_OK)
        goto out;
    if ((rc = stripe_call(srv, "POST", "/v1/customers", &form, idem, &obj, err, errlen)) !=
        SPELL_OK)
        goto out;
    id = stripe_str(obj, "id");
    if (!stripe_id_ok(id) || strlen(id) >= cuslen) {
        snprintf(err, errlen, "Stripe's customer has no usable id");
        rc = SPELL_EPARSE;
        goto out;
    }
    rc = store_billing_customer_set(srv->store, user_id, id, srv_now_ms(&srv->clock));
    if (rc == STORE_ECONFLICT) {
        /* Another request stored a customer first: use that one. */
        if ((rc = store_billing_get(srv->store, user_id, &b)) == SPELL_OK)
            snprintf(cus, cuslen, "%s", b.customer_id);
        goto out;
    }
    if (rc == SPELL_OK)
        snprintf(cus, cuslen, "%s", id);
out:
    cJSON_Delete(obj);
    spell_buf_free(&form);
    return rc;
}

/* A Stripe failure as the answer: 503 UNAVAILABLE with the reason. */
static int answer_stripe(struct request *req, int rc, const char *err, struct response **out)
{
    char msg[BILLING_ERR_MAX + 64];

    if (rc == SPELL_ENOMEM || rc == SPELL_EIO || rc == SPELL_ENOTFOUND)
        return rc;
    snprintf(msg, sizeof msg, "Card registration is unavailable right now: %s. Try again later.",
             err[0] ? err : "the billing provider failed");
    return answer_error(req, SPELL_ERR_UNAVAILABLE, msg, out);
}

/* Where the browser lands after Checkout: FRONTEND_URL, else the server. */
static const char *landing_base(const struct server *srv)
{
    if (srv->providers.frontend_url && srv->providers.frontend_url[0])
        return srv->providers.frontend_url;
    return srv->public_url ? srv->public_url : "";
}

static int setup_handler(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const struct principal *p = httpd_request_principal(req);
    struct spell_buf form;
    char cus[STORE_PROVIDER_ID_SIZE], err[BILLING_ERR_MAX], idem[STORE_ID_SIZE + 260];
    char url[STORE_URL_SIZE], expires[40];
    const char *client_idem = httpd_request_header(req, "Idempotency-Key");
    const char *surl;
    const cJSON *exp;
    cJSON *obj = NULL, *j = NULL;
    int rc;

    spell_buf_init(&form, STRIPE_FORM_MAX);
    err[0] = '\0';
    if (!billing_enabled(srv)) {
        rc = answer_error(req, SPELL_ERR_UNAVAILABLE,
                          "Card payments are not configured on this server.", out);
        goto out;
    }
    if ((rc = ensure_customer(srv, p->user_id, cus, sizeof cus, err, sizeof err)) != SPELL_OK) {
        rc = answer_stripe(req, rc, err, out);
        goto out;
    }
    /* A client's own key makes its retry land on the same session; without
     * one each request is a new session (they expire after 24 hours). */
    if (client_idem && client_idem[0] && strlen(client_idem) <= CLIENT_IDEM_MAX &&
        stripe_id_ok(client_idem))
        snprintf(idem, sizeof idem, "spell-setup-%s-%s", p->user_id, client_idem);
    else
        snprintf(idem, sizeof idem, "spell-setup-%s-%" PRId64, p->user_id,
                 srv_now_ms(&srv->clock));
    snprintf(url, sizeof url, "%s/billing/done?session_id={CHECKOUT_SESSION_ID}",
             landing_base(srv));
    if ((rc = stripe_form_add(&form, "mode", "setup")) != SPELL_OK ||
        (rc = stripe_form_add(&form, "customer", cus)) != SPELL_OK ||
        (rc = stripe_form_add(&form, "payment_method_types[]", "card")) != SPELL_OK ||
        (rc = stripe_form_add(&form, "success_url", url)) != SPELL_OK ||
        (rc = stripe_form_add(&form, "metadata[user_id]", p->user_id)) != SPELL_OK)
        goto out;
    snprintf(url, sizeof url, "%s/billing/canceled", landing_base(srv));
    if ((rc = stripe_form_add(&form, "cancel_url", url)) != SPELL_OK)
        goto out;
    if ((rc = stripe_call(srv, "POST", "/v1/checkout/sessions", &form, idem, &obj, err,
                          sizeof err)) != SPELL_OK) {
        rc = answer_stripe(req, rc, err, out);
        goto out;
    }
    surl = stripe_str(obj, "url");
    exp = cJSON_GetObjectItemCaseSensitive(obj, "expires_at");
    if (!surl || !cJSON_IsNumber(exp) || exp->valuedouble < 0 || exp->valuedouble > 253402300799.0) {
        rc = answer_stripe(req, SPELL_EPARSE, "Stripe's checkout session has no URL", out);
        goto out;
    }
    if ((rc = spell_time_format((int64_t)exp->valuedouble * 1000, expires, sizeof expires)) !=
        SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(j = cJSON_CreateObject()) || !cJSON_AddStringToObject(j, "url", surl) ||
        !cJSON_AddStringToObject(j, "expires_at", expires))
        goto out;
    rc = answer_json(req, 200, j, out);
out:
    cJSON_Delete(j);
    cJSON_Delete(obj);
    spell_buf_free(&form);
    return rc;
}

static int setup_intent_handler(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const struct principal *p = httpd_request_principal(req);
    struct spell_buf form;
    char cus[STORE_PROVIDER_ID_SIZE], err[BILLING_ERR_MAX], idem[STORE_ID_SIZE + 64];
    const char *secret;
    cJSON *obj = NULL, *j = NULL;
    int rc;

    spell_buf_init(&form, STRIPE_FORM_MAX);
    err[0] = '\0';
    if (!billing_enabled(srv)) {
        rc = answer_error(req, SPELL_ERR_UNAVAILABLE,
                          "Card payments are not configured on this server.", out);
        goto out;
    }
    if ((rc = ensure_customer(srv, p->user_id, cus, sizeof cus, err, sizeof err)) != SPELL_OK) {
        rc = answer_stripe(req, rc, err, out);
        goto out;
    }
    snprintf(idem, sizeof idem, "spell-setup-intent-%s-%" PRId64, p->user_id,
             srv_now_ms(&srv->clock));
    if ((rc = stripe_form_add(&form, "customer", cus)) != SPELL_OK ||
        (rc = stripe_form_add(&form, "payment_method_types[]", "card")) != SPELL_OK ||
        (rc = stripe_form_add(&form, "usage", "off_session")) != SPELL_OK ||
        (rc = stripe_form_add(&form, "metadata[user_id]", p->user_id)) != SPELL_OK)
        goto out;
    if ((rc = stripe_call(srv, "POST", "/v1/setup_intents", &form, idem, &obj, err,
                          sizeof err)) != SPELL_OK) {
        rc = answer_stripe(req, rc, err, out);
        goto out;
    }
    if (!(secret = stripe_str(obj, "client_secret"))) {
        rc = answer_stripe(req, SPELL_EPARSE, "Stripe's setup intent has no client secret", out);
        goto out;
    }
    rc = SPELL_ENOMEM;
    if (!(j = cJSON_CreateObject()) || !cJSON_AddStringToObject(j, "client_secret", secret))
        goto out;
    rc = answer_json(req, 200, j, out);
out:
    cJSON_Delete(j);
    cJSON_Delete(obj);
    spell_buf_free(&form);
    return rc;
}

static int payment_method_handler(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const struct principal *p = httpd_request_principal(req);
    struct store_billing b;
    struct spell_payment_method pm;
    cJSON *j = NULL;
    int rc;

    rc = store_billing_get(srv->store, p->user_id, &b);
    if (rc == SPELL_ENOTFOUND || (rc == SPELL_OK && !b.payment_method_id[0]))
        return answer_error(req, SPELL_ERR_NOT_FOUND, "No card is on file.", out);
    if (rc != SPELL_OK)
        return rc;
    memset(&pm, 0, sizeof pm);
    pm.brand = b.brand;
    memcpy(pm.last4, b.last4, sizeof pm.last4);
    pm.exp_month = b.exp_month;
    pm.exp_year = b.exp_year;
    pm.status = b.payment_failed ? SPELL_PAYMENT_FAILED : SPELL_PAYMENT_ACTIVE;
    if (!(j = spell_payment_method_to_json(&pm)))
        return SPELL_ENOMEM;
    rc = answer_json(req, 200, j, out);
    cJSON_Delete(j);
    return rc;
}

int billing_cast_check(struct server *srv, const char *user_id, int64_t estimate_cents,
                       struct response **refusal)
{
    struct store_billing b;
    int rc;

    if (refusal)
        *refusal = NULL;
    if (!srv || !user_id || !refusal)
        return SPELL_EINVAL;
    if (!billing_enabled(srv) || estimate_cents <= 0)
        return SPELL_OK;
    rc = store_billing_get(srv->store, user_id, &b);
    if (rc != SPELL_OK && rc != SPELL_ENOTFOUND)
        return rc;
    if (rc == SPELL_ENOTFOUND || !b.payment_method_id[0]) {
        rc = httpd_response_error(SPELL_ERR_PAYMENT_METHOD_REQUIRED,
                                  "This spell is paid: add a card first (spell card add).", NULL,
                                  refusal);
        return rc == SPELL_OK ? SPELL_EABORT : rc;
    }
    if (b.payment_failed) {
        rc = httpd_response_error(SPELL_ERR_PAYMENT_FAILED,
                                  "The last invoice could not be paid: update your card "
                                  "(spell card add); paid spells run again once it is paid.",
                                  NULL, refusal);
        return rc == SPELL_OK ? SPELL_EABORT : rc;
    }
    return SPELL_OK;
}

int billing_new(struct server *srv, struct billing **out)
{
    struct billing *b;

    if (!out)
        return SPELL_EINVAL;
    *out = NULL;
    if (!srv)
        return SPELL_EINVAL;
    if (!(b = calloc(1, sizeof *b)))
        return SPELL_ENOMEM;
    b->srv = srv;
    b->rows[0] = (struct route){"POST", "/v1/billing/setup", setup_handler, srv, ROUTE_AUTH,
                                4096};
    b->rows[1] = (struct route){"POST", "/v1/billing/setup-intent", setup_intent_handler, srv,
                                ROUTE_AUTH, 4096};
    b->rows[2] = (struct route){"GET", "/v1/billing/payment-method", payment_method_handler, srv,
                                ROUTE_AUTH | ROUTE_NO_BODY, 0};
    /* Providers and cron call these: no authenticate hook (and so no
     * per-IP limit); each checks its own credential on the raw body. */
    b->rows[3] = (struct route){"POST", "/webhooks/stripe", billing_webhook_handler, srv, 0,
                                BILLING_WEBHOOK_BODY_CAP};
    b->rows[4] = (struct route){"POST", "/admin/billing/process-monthly",
                                billing_admin_monthly_handler, srv, 0, 4096};
    *out = b;
    return SPELL_OK;
}

void billing_free(struct billing *b)
{
    free(b);
}

int billing_routes(struct server *srv, const struct route **rows, size_t *n)
{
    if (rows)
        *rows = NULL;
    if (n)
        *n = 0;
    if (!srv || !srv->billing || !rows || !n)
        return SPELL_EINVAL;
    *rows = srv->billing->rows;
    *n = BILLING_ROUTES;
    return SPELL_OK;
}
