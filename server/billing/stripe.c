/*
 * The Stripe client of the billing part (billing-impl.h): form encoding
 * with Stripe's bracket notation, Bearer secret key, Idempotency-Key on
 * creates, Stripe's error bodies turned into sentences, bounded bodies and
 * core's retry policy (spell/http.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/http.h"
#include "spell/json.h"

#include "billing-impl.h"

/* The longest base URL plus path we build. */
#define STRIPE_URL_MAX 2048
/* Stripe answers in well under this; a request hung longer is retried. */
#define STRIPE_TIMEOUT_MS 20000L

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int stripe_form_add(struct spell_buf *form, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p;
    char enc[3];
    int rc;

    if (!form || !name || !name[0] || !value)
        return SPELL_EINVAL;
    if (form->len && (rc = spell_buf_add(form, "&", 1)) != SPELL_OK)
        return rc;
    if ((rc = spell_buf_add(form, name, strlen(name))) != SPELL_OK ||
        (rc = spell_buf_add(form, "=", 1)) != SPELL_OK)
        return rc;
    for (p = (const unsigned char *)value; *p; p++) {
        if (unreserved(*p)) {
            rc = spell_buf_add(form, (const char *)p, 1);
        } else {
            enc[0] = '%';
            enc[1] = hex[*p >> 4];
            enc[2] = hex[*p & 15];
            rc = spell_buf_add(form, enc, 3);
        }
        if (rc != SPELL_OK)
            return rc;
    }
    return SPELL_OK;
}

int stripe_form_add_int(struct spell_buf *form, const char *name, int64_t value)
{
    char num[24];

    snprintf(num, sizeof num, "%" PRId64, value);
    return stripe_form_add(form, name, num);
}

int stripe_id_ok(const char *s)
{
    size_t i;

    if (!s || !s[0])
        return 0;
    for (i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];

        if (i >= STRIPE_ID_MAX || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                    (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

const char *stripe_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* Stripe's error body: {"error": {"type", "code"?, "message"?, "param"?}}. */
static void error_sentence(const struct spell_http_response *resp, char *err, size_t errlen)
{
    struct spell_json_limits lim = {BILLING_STRIPE_BODY_CAP, 16};
    cJSON *j = NULL;
    const cJSON *e;
    const char *msg = NULL, *code = NULL, *type = NULL;

    if (spell_json_parse(resp->body, resp->body_len, &lim, &j, NULL, 0) == SPELL_OK &&
        cJSON_IsObject(e = cJSON_GetObjectItemCaseSensitive(j, "error"))) {
        msg = stripe_str(e, "message");
        code = stripe_str(e, "code");
        type = stripe_str(e, "type");
    }
    snprintf(err, errlen, "Stripe answered %d: %.200s%s%.64s%s", resp->status,
             msg ? msg : "no error message", code || type ? " (" : "",
             code ? code : type ? type : "", code || type ? ")" : "");
    cJSON_Delete(j);
}

int stripe_call(const struct server *srv, const char *method, const char *path,
                const struct spell_buf *form, const char *idem, cJSON **obj, char *err,
                size_t errlen)
{
    struct spell_http_request req;
    struct spell_http_response resp;
    struct spell_json_limits lim = {BILLING_STRIPE_BODY_CAP, 32};
    char url[STRIPE_URL_MAX], idem_line[300];
    const char *headers[1];
    const char *base;
    int rc, n;

    memset(&resp, 0, sizeof resp);
    if (obj)
        *obj = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!srv || !method || !path || !obj || !err || !errlen)
        return SPELL_EINVAL;
    if (!srv->providers.stripe_secret_key || !srv->providers.stripe_secret_key[0]) {
        snprintf(err, errlen, "Stripe is not configured");
        return SPELL_EINVAL;
    }
    base = srv->providers.stripe_api_url && srv->providers.stripe_api_url[0]
               ? srv->providers.stripe_api_url
               : "https://api.stripe.com";
    n = snprintf(url, sizeof url, "%s%s", base, path);
    if (n < 0 || (size_t)n >= sizeof url) {
        snprintf(err, errlen, "the Stripe URL is too long");
        return SPELL_ETOOBIG;
    }
    spell_http_request_init(&req, method, url);
    req.bearer = srv->providers.stripe_secret_key;
    req.timeout_ms = STRIPE_TIMEOUT_MS;
    req.body_cap = BILLING_STRIPE_BODY_CAP;
    if (form) {
        req.body = form->ptr;
        req.body_len = form->len;
        req.content_type = "application/x-www-form-urlencoded";
    }
    if (idem) {
        n = snprintf(idem_line, sizeof idem_line, "Idempotency-Key: %s", idem);
        if (n < 0 || (size_t)n >= sizeof idem_line) {
            snprintf(err, errlen, "the idempotency key is too long");
            return SPELL_ETOOBIG;
        }
        headers[0] = idem_line;
        req.headers = headers;
        req.n_headers = 1;
    }
    rc = spell_http_send(&req, &resp);
    if (rc != SPELL_OK) {
        snprintf(err, errlen, "Stripe could not be reached: %.200s", resp.error);
        if (rc != SPELL_ETIMEOUT)
            rc = SPELL_ENET;
        goto out;
    }
    if (resp.status >= 500 || resp.status == 429 || resp.status == 0) {
        snprintf(err, errlen, "Stripe is unavailable (HTTP %d)", resp.status);
        rc = SPELL_ENET;
        goto out;
    }
    if (resp.status < 200 || resp.status > 299) {
        error_sentence(&resp, err, errlen);
        rc = STRIPE_REFUSED;
        goto out;
    }
    rc = spell_json_parse(resp.body, resp.body_len, &lim, obj, NULL, 0);
    if (rc == SPELL_OK && !cJSON_IsObject(*obj)) {
        cJSON_Delete(*obj);
        *obj = NULL;
        rc = SPELL_EPARSE;
    }
    if (rc != SPELL_OK) {
        snprintf(err, errlen, "Stripe's answer is not a JSON object");
        rc = SPELL_EPARSE;
    }
out:
    spell_http_response_free(&resp);
    return rc;
}
