/*
 * Monthly invoicing for a closed period, and its admin route
 * POST /admin/billing/process-monthly.
 *
 * For each user with spend in the period (store_billing_usage_users):
 *   1  already recorded as invoiced for the period: skipped
 *   2  one invoice item per spell, amount = the period's spend on it,
 *      description "<spell name>: N casts"
 *      (Idempotency-Key spell-invoice-item-<user>-<period>-<spell>)
 *   3  the invoice, taking the customer's pending items
 *      (spell-invoice-<user>-<period>), then finalized
 *      (spell-invoice-finalize-<user>-<period>)
 *   4  (user, period) recorded with the ledger `invoice` entry in one
 *      store transaction.
 * A run that dies between 2 and 4 is repeated safely: Stripe replays each
 * create under its key instead of making a second one, and step 1 stops a
 * second run once 4 happened.  A user without a Stripe customer, or whose
 * spend covers more spells than the store's usage lists hold, is counted
 * as failed (never billed short) and named in the run's first error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/json.h"

#include "billing-impl.h"
#include "httpd.h"
#include "store.h"

/* Users invoiced in one run; the walk collects ids first, so Stripe calls
 * never run while the store's walk holds a connection. */
#define RUN_USERS_MAX 100000
/* Longest Idempotency-Key we derive. */
#define IDEM_MAX (STORE_ID_SIZE + STORE_PERIOD_SIZE + STORE_SPELL_KEY_SIZE + 48)

struct user_list {
    char (*ids)[STORE_ID_SIZE];
    size_t n, cap;
    int overflow;
};

static int collect(void *ud, const char *user_id, int64_t spent_cents)
{
    struct user_list *l = ud;
    char(*grown)[STORE_ID_SIZE];
    size_t cap;

    (void)spent_cents;
    if (l->n == l->cap) {
        if (l->cap >= RUN_USERS_MAX) {
            l->overflow = 1;
            return 1;
        }
        cap = l->cap ? l->cap * 2 : 64;
        if (cap > RUN_USERS_MAX)
            cap = RUN_USERS_MAX;
        if (!(grown = realloc(l->ids, cap * sizeof *grown)))
            return 1;
        l->ids = grown;
        l->cap = cap;
    }
    snprintf(l->ids[l->n++], STORE_ID_SIZE, "%s", user_id);
    return 0;
}

/* Invoices one user; SPELL_OK when made now. */
static int invoice_user(struct server *srv, const char *user_id, const char *period, char *err,
                        size_t errlen)
{
    struct store_usage *u = NULL;
    struct store_billing b;
    struct store_spell sp;
    struct spell_buf form;
    char idem[IDEM_MAX], desc[STORE_NAME_SIZE + 48], path[STRIPE_ID_MAX + 64];
    char inv_id[STORE_PROVIDER_ID_SIZE];
    cJSON *obj = NULL;
    const char *id;
    int64_t total = 0;
    size_t i;
    int rc;

    memset(&sp, 0, sizeof sp);
    spell_buf_init(&form, STRIPE_FORM_MAX);
    rc = store_billing_get(srv->store, user_id, &b);
    if (rc == SPELL_ENOTFOUND || (rc == SPELL_OK && !b.customer_id[0])) {
        snprintf(err, errlen, "user %s has usage but no Stripe customer", user_id);
        rc = SPELL_ENOTFOUND;
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(u = calloc(1, sizeof *u)))
        goto out;
    if ((rc = store_usage_get(srv->store, user_id, period, u)) != SPELL_OK)
        goto out;
    if (u->by_spell_truncated) {
        snprintf(err, errlen, "user %s cast more spells in %s than one invoice lists", user_id,
                 period);
        rc = SPELL_ETOOBIG;
        goto out;
    }
    for (i = 0; i < u->n_by_spell; i++) {
        const struct store_usage_spell *us = &u->by_spell[i];

        if (us->spent_cents <= 0)
            continue;
        store_spell_clear(&sp);
        rc = store_spell_get(srv->store, us->spell_key, &sp);
        if (rc != SPELL_OK && rc != SPELL_ENOTFOUND)
            goto out;
        snprintf(desc, sizeof desc, "%s: %" PRId64 " cast%s",
                 rc == SPELL_OK && sp.name[0] ? sp.name : us->spell_key, us->calls,
                 us->calls == 1 ? "" : "s");
        snprintf(idem, sizeof idem, "spell-invoice-item-%s-%s-%s", user_id, period,
                 us->spell_key);
        spell_buf_reset(&form);
        if ((rc = stripe_form_add(&form, "customer", b.customer_id)) != SPELL_OK ||
            (rc = stripe_form_add_int(&form, "amount", us->spent_cents)) != SPELL_OK ||
            (rc = stripe_form_add(&form, "currency", "usd")) != SPELL_OK ||
            (rc = stripe_form_add(&form, "description", desc)) != SPELL_OK ||
            (rc = stripe_form_add(&form, "metadata[user_id]", user_id)) != SPELL_OK ||
            (rc = stripe_form_add(&form, "metadata[period]", period)) != SPELL_OK ||
            (rc = stripe_form_add(&form, "metadata[spell_key]", us->spell_key)) != SPELL_OK)
            goto out;
        if ((rc = stripe_call(srv, "POST", "/v1/invoiceitems", &form, idem, &obj, err,
                              errlen)) != SPELL_OK)
            goto out;
        cJSON_Delete(obj);
        obj = NULL;
        total += us->spent_cents;
    }
    snprintf(idem, sizeof idem, "spell-invoice-%s-%s", user_id, period);
    spell_buf_reset(&form);
    snprintf(desc, sizeof desc, "spell usage %s", period);
    if ((rc = stripe_form_add(&form, "customer", b.customer_id)) != SPELL_OK ||
        (rc = stripe_form_add(&form, "collection_method", "charge_automatically")) !=
            SPELL_OK ||
        (rc = stripe_form_add(&form, "pending_invoice_items_behavior", "include")) !=
            SPELL_OK ||
        (rc = stripe_form_add(&form, "auto_advance", "true")) != SPELL_OK ||
        (rc = stripe_form_add(&form, "description", desc)) != SPELL_OK ||
        (rc = stripe_form_add(&form, "metadata[user_id]", user_id)) != SPELL_OK ||
        (rc = stripe_form_add(&form, "metadata[period]", period)) != SPELL_OK)
        goto out;
    if ((rc = stripe_call(srv, "POST", "/v1/invoices", &form, idem, &obj, err, errlen)) !=
        SPELL_OK)
        goto out;
    id = stripe_str(obj, "id");
    if (!stripe_id_ok(id)) {
        snprintf(err, errlen, "Stripe's invoice has no usable id");
        rc = SPELL_EPARSE;
        goto out;
    }
    snprintf(inv_id, sizeof inv_id, "%s", id);
    cJSON_Delete(obj);
    obj = NULL;
    snprintf(path, sizeof path, "/v1/invoices/%s/finalize", inv_id);
    snprintf(idem, sizeof idem, "spell-invoice-finalize-%s-%s", user_id, period);
    spell_buf_reset(&form);
    if ((rc = stripe_form_add(&form, "auto_advance", "true")) != SPELL_OK ||
        (rc = stripe_call(srv, "POST", path, &form, idem, &obj, err, errlen)) != SPELL_OK)
        goto out;
    rc = store_billing_invoice_record(srv->store, user_id, period, inv_id, total,
                                      srv_now_ms(&srv->clock), NULL);
    if (rc != SPELL_OK)
        snprintf(err, errlen, "the invoice %s of user %s could not be recorded (%s)", inv_id,
                 user_id, spell_strerror(rc));
out:
    cJSON_Delete(obj);
    store_spell_clear(&sp);
    spell_buf_free(&form);
    free(u);
    return rc;
}

int billing_run_monthly(struct server *srv, const char *period, struct billing_run_summary *sum,
                        char *err, size_t errlen)
{
    struct user_list users = {NULL, 0, 0, 0};
    char now_period[STORE_PERIOD_SIZE], prev[STORE_PERIOD_SIZE], inv[STORE_PROVIDER_ID_SIZE];
    char one[BILLING_ERR_MAX];
    int64_t start, end;
    int rc;
    size_t i;

    if (err && errlen)
        err[0] = '\0';
    if (!srv || !sum)
        return SPELL_EINVAL;
    memset(sum, 0, sizeof sum[0]);
    if (!billing_enabled(srv)) {
        if (err)
            snprintf(err, errlen, "Stripe is not configured (STRIPE_SECRET_KEY)");
        return SPELL_EINVAL;
    }
    /* The previous period is the one holding the last ms before this one. */
    if ((rc = spell_time_period(srv_now_ms(&srv->clock), now_period, sizeof now_period)) !=
            SPELL_OK ||
        (rc = spell_period_bounds(now_period, &start, &end)) != SPELL_OK ||
        (rc = spell_time_period(start - 1, prev, sizeof prev)) != SPELL_OK)
        return rc;
    if (!period)
        period = prev;
    if (strlen(period) != STORE_PERIOD_SIZE - 1 || spell_period_parse(period, NULL, NULL) != SPELL_OK) {
        if (err)
            snprintf(err, errlen, "the period must be YYYY-MM");
        return SPELL_EINVAL;
    }
    /* "YYYY-MM" compares as text in time order. */
    if (strcmp(period, now_period) >= 0) {
        if (err)
            snprintf(err, errlen, "the period %s is not closed yet", period);
        return SPELL_EINVAL;
    }
    memcpy(sum->period, period, STORE_PERIOD_SIZE);
    rc = store_billing_usage_users(srv->store, period, collect, &users);
    if (rc == SPELL_EABORT)
        rc = users.overflow ? SPELL_ETOOBIG : SPELL_ENOMEM;
    if (rc != SPELL_OK)
        goto out;
    for (i = 0; i < users.n; i++) {
        rc = store_billing_invoice_get(srv->store, users.ids[i], period, inv);
        if (rc == SPELL_OK) {
            sum->skipped++;
            continue;
        }
        if (rc != SPELL_ENOTFOUND)
            goto out;
        one[0] = '\0';
        rc = invoice_user(srv, users.ids[i], period, one, sizeof one);
        if (rc == SPELL_OK) {
            sum->invoiced++;
        } else if (rc == STORE_ECONFLICT) {
            sum->skipped++;     /* a concurrent run recorded it first */
        } else {
            sum->failed++;
            if (err && errlen && !err[0])
                snprintf(err, errlen, "%s", one[0] ? one : spell_strerror(rc));
        }
    }
    rc = SPELL_OK;
out:
    free(users.ids);
    return rc;
}

/* 1 when the request carries "Authorization: Bearer <admin secret>". */
static int admin_ok(const struct server *srv, const char *auth, int *present)
{
    const char *secret = srv->providers.admin_secret;

    *present = auth && strncmp(auth, "Bearer ", 7) == 0 && auth[7];
    if (!*present || !secret || !secret[0])
        return 0;
    return spell_ct_equal(auth + 7, strlen(auth + 7), secret, strlen(secret));
}

int billing_admin_monthly_handler(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct spell_json_limits lim = {4096, 4};
    struct billing_run_summary sum;
    char err[BILLING_ERR_MAX], period[STORE_PERIOD_SIZE];
    const char *body, *p = NULL;
    const cJSON *v;
    cJSON *j = NULL, *res = NULL;
    size_t len = 0;
    int rc, present;

    err[0] = '\0';
    if (!srv->providers.admin_secret || !srv->providers.admin_secret[0]) {
        rc = httpd_response_error(SPELL_ERR_FORBIDDEN,
                                  "Admin routes are disabled (SPELL_ADMIN_SECRET is not set).",
                                  NULL, out);
        goto out;
    }
    if (!admin_ok(srv, httpd_request_header(req, "Authorization"), &present)) {
        rc = present ? httpd_response_error(SPELL_ERR_FORBIDDEN, "The admin secret is wrong.",
                                            NULL, out)
                     : httpd_response_error(SPELL_ERR_UNAUTHORIZED,
                                            "Send Authorization: Bearer <admin secret>.", NULL,
                                            out);
        if (rc == SPELL_OK && !present)
            httpd_response_header(*out, "WWW-Authenticate", "Bearer");
        goto out;
    }
    body = httpd_request_body(req, &len);
    if (body && len) {
        if (spell_json_parse(body, len, &lim, &j, NULL, 0) != SPELL_OK || !cJSON_IsObject(j)) {
            rc = httpd_response_error(SPELL_ERR_VALIDATION_ERROR, "The body must be a JSON object.",
                                      NULL, out);
            goto out;
        }
        v = cJSON_GetObjectItemCaseSensitive(j, "period");
        if (v && !cJSON_IsNull(v)) {
            if (!cJSON_IsString(v) || strlen(v->valuestring) != STORE_PERIOD_SIZE - 1) {
                rc = httpd_response_error(SPELL_ERR_VALIDATION_ERROR,
                                          "period must be a string YYYY-MM.", NULL, out);
                goto out;
            }
            memcpy(period, v->valuestring, STORE_PERIOD_SIZE);
            p = period;
        }
    }
    rc = billing_run_monthly(srv, p, &sum, err, sizeof err);
    if (rc == SPELL_EINVAL) {
        rc = httpd_response_error(SPELL_ERR_VALIDATION_ERROR, err, NULL, out);
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(res = cJSON_CreateObject()) || !cJSON_AddStringToObject(res, "period", sum.period) ||
        !cJSON_AddNumberToObject(res, "invoiced", sum.invoiced) ||
        !cJSON_AddNumberToObject(res, "skipped", sum.skipped) ||
        !cJSON_AddNumberToObject(res, "failed", sum.failed) ||
        (err[0] && !cJSON_AddStringToObject(res, "error", err)))
        goto out;
    rc = httpd_response_json(200, res, out);
out:
    cJSON_Delete(res);
    cJSON_Delete(j);
    return rc;
}
