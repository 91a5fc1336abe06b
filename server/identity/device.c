/*
 * The device authorization flow of RFC 8628 (identity.h): the device and
 * token endpoints for terminals, and the /device page for the person.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"
#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/json.h"

#include "auth.h"
#include "ratelimit.h"
#include "store.h"

#include "identity-int.h"

#define URL_MAX 4096
#define GRANT_TYPE "urn:ietf:params:oauth:grant-type:device_code"
/* Longest typed user code, with dashes and spaces. */
#define USER_CODE_INPUT_MAX 32
/* Tries at a free user code before giving up (20^8 codes: a clash is
 * already rare). */
#define USER_CODE_TRIES 5

static int user_code_make(char out[9])
{
    static const char alphabet[] = IDENTITY_USER_CODE_ALPHABET;
    unsigned char r[32];
    size_t i, n = 0;
    int rc;

    /* Rejection sampling: bytes of 240 and up would favour the first 16
     * letters (256 = 12 * 20 + 16). */
    while (n < 8) {
        if ((rc = spell_random_bytes(r, sizeof r)) != SPELL_OK)
            return rc;
        for (i = 0; i < sizeof r && n < 8; i++) {
            if (r[i] < 240)
                out[n++] = alphabet[r[i] % 20];
        }
    }
    out[8] = '\0';
    return SPELL_OK;
}

static int json_answer(int status, cJSON *doc, struct response **out)
{
    int rc = doc ? httpd_response_json(status, doc, out) : SPELL_ENOMEM;

    cJSON_Delete(doc);
    return rc;
}

int identity_h_device_start(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct store_device d;
    char device_code[IDENTITY_DEVICE_CODE_LEN + 1], pub[URL_MAX], uri[URL_MAX],
        complete[URL_MAX], shown[10];
    cJSON *doc = NULL;
    int64_t now;
    int rc, tries, n;

    *out = NULL;
    memset(device_code, 0, sizeof device_code);
    if ((rc = ratelimit_ip_check(srv, req, out)) != SPELL_OK || *out)
        return rc;
    if ((rc = identity_public_url(srv, pub, sizeof pub)) != SPELL_OK)
        return rc;
    now = srv_now_ms(&srv->clock);
    /* Old grants go here, so the table never grows without bound. */
    store_devices_purge(srv->store, now - IDENTITY_DEVICE_KEEP_MS, NULL);
    for (tries = 0; tries < USER_CODE_TRIES; tries++) {
        memset(&d, 0, sizeof d);
        if ((rc = spell_random_token(device_code, IDENTITY_DEVICE_CODE_LEN)) != SPELL_OK ||
            (rc = spell_sha256_hex(device_code, IDENTITY_DEVICE_CODE_LEN, d.device_hash)) !=
                SPELL_OK ||
            (rc = user_code_make(d.user_code)) != SPELL_OK)
            goto out;
        d.created_at = now;
        d.expires_at = now + IDENTITY_DEVICE_TTL_S * 1000LL;
        d.interval_s = IDENTITY_DEVICE_INTERVAL_S;
        rc = store_device_create(srv->store, &d);
        if (rc != STORE_ECONFLICT)
            break;
    }
    if (rc != SPELL_OK)
        goto out;
    n = snprintf(shown, sizeof shown, "%.4s-%.4s", d.user_code, d.user_code + 4);
    if (n != 9) {
        rc = SPELL_EINVAL;
        goto out;
    }
    n = snprintf(uri, sizeof uri, "%s/device", pub);
    if (n < 0 || (size_t)n >= sizeof uri) {
        rc = SPELL_ETOOBIG;
        goto out;
    }
    n = snprintf(complete, sizeof complete, "%s/device?user_code=%s", pub, shown);
    if (n < 0 || (size_t)n >= sizeof complete) {
        rc = SPELL_ETOOBIG;
        goto out;
    }
    if (!(doc = cJSON_CreateObject()) ||
        (rc = spell_json_add_string(doc, "device_code", device_code)) ||
        (rc = spell_json_add_string(doc, "user_code", shown)) ||
        (rc = spell_json_add_string(doc, "verification_uri", uri)) ||
        (rc = spell_json_add_string(doc, "verification_uri_complete", complete)) ||
        (rc = spell_json_add_int64(doc, "expires_in", IDENTITY_DEVICE_TTL_S)) ||
        (rc = spell_json_add_int64(doc, "interval", IDENTITY_DEVICE_INTERVAL_S))) {
        cJSON_Delete(doc);
        rc = doc ? rc : SPELL_ENOMEM;
        goto out;
    }
    rc = json_answer(200, doc, out);
out:
    memset(device_code, 0, sizeof device_code);
    return rc;
}

/* 400 {"error": code} (RFC 8628 §3.5 and RFC 6749 §5.2). */
static int token_error(const char *code, int interval, struct response **out)
{
    cJSON *doc = cJSON_CreateObject();

    if (doc && (spell_json_add_string(doc, "error", code) != SPELL_OK ||
                (interval > 0 && spell_json_add_int64(doc, "interval", interval) != SPELL_OK))) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    return json_answer(400, doc, out);
}

static int base62(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return 0;
    }
    return 1;
}

/* Reads device_code and grant_type from a JSON or form body. */
static int token_fields(struct request *req, char *code, size_t code_cap, char *grant,
                        size_t grant_cap)
{
    const char *ctype = httpd_request_header(req, "Content-Type");
    size_t len = 0;
    const char *body = httpd_request_body(req, &len);
    struct spell_json_limits lim = {4096, 4};
    struct spell_json_at at;
    cJSON *doc = NULL;
    char *v = NULL;
    int rc;

    code[0] = grant[0] = '\0';
    if (ctype && strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0) {
        rc = identity_form_get(body, len, "device_code", code, code_cap);
        if (rc != SPELL_OK)
            return SPELL_EINVAL;
        rc = identity_form_get(body, len, "grant_type", grant, grant_cap);
        return rc == SPELL_OK || rc == SPELL_ENOTFOUND ? SPELL_OK : SPELL_EINVAL;
    }
    if (spell_json_parse(body, len, &lim, &doc, NULL, 0) != SPELL_OK || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return SPELL_EINVAL;
    }
    at = (struct spell_json_at){doc, "", NULL, 0};
    rc = spell_json_get_string(&at, "device_code", SPELL_JSON_REQUIRED, code_cap - 1, &v);
    if (rc == SPELL_OK)
        snprintf(code, code_cap, "%s", v);
    free(v);
    v = NULL;
    if (rc == SPELL_OK &&
        (rc = spell_json_get_string(&at, "grant_type", 0, grant_cap - 1, &v)) == SPELL_OK && v)
        snprintf(grant, grant_cap, "%s", v);
    free(v);
    cJSON_Delete(doc);
    return rc == SPELL_OK ? SPELL_OK : SPELL_EINVAL;
}

int identity_h_token(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct store_device d;
    char code[IDENTITY_DEVICE_CODE_LEN + 2], grant[64], hex[SPELL_SHA256_HEX_LEN + 1],
        session[SPELL_SESSION_TOKEN_LEN + 1];
    cJSON *doc = NULL;
    int outcome = STORE_DEVICE_INVALID, rc;

    *out = NULL;
    memset(session, 0, sizeof session);
    /* Not under the per-address limit: a terminal polls every few
     * seconds, and each grant limits itself by its interval. */
    if (token_fields(req, code, sizeof code, grant, sizeof grant) != SPELL_OK)
        return token_error("invalid_request", 0, out);
    if (grant[0] && strcmp(grant, GRANT_TYPE) != 0)
        return token_error("unsupported_grant_type", 0, out);
    if (strlen(code) != IDENTITY_DEVICE_CODE_LEN || !base62(code, IDENTITY_DEVICE_CODE_LEN))
        return token_error("invalid_grant", 0, out);
    if ((rc = spell_sha256_hex(code, IDENTITY_DEVICE_CODE_LEN, hex)) != SPELL_OK)
        goto out;
    memset(code, 0, sizeof code);
    rc = store_device_poll(srv->store, hex, srv_now_ms(&srv->clock), IDENTITY_SLOW_DOWN_STEP_S,
                           &outcome, &d);
    if (rc != SPELL_OK)
        goto out;
    switch (outcome) {
    case STORE_DEVICE_PENDING:
        rc = token_error("authorization_pending", 0, out);
        goto out;
    case STORE_DEVICE_SLOW_DOWN:
        rc = token_error("slow_down", d.interval_s, out);
        goto out;
    case STORE_DEVICE_EXPIRED:
        rc = token_error("expired_token", 0, out);
        goto out;
    case STORE_DEVICE_DENIED:
        rc = token_error("access_denied", 0, out);
        goto out;
    case STORE_DEVICE_APPROVED:
        break;
    default:
        rc = token_error("invalid_grant", 0, out);
        goto out;
    }
    if ((rc = auth_session_create(srv, d.user_id, session, sizeof session)) != SPELL_OK)
        goto out;
    if (!(doc = cJSON_CreateObject()) ||
        (rc = spell_json_add_string(doc, "access_token", session)) ||
        (rc = spell_json_add_string(doc, "token_type", "Bearer")) ||
        (rc = spell_json_add_int64(doc, "expires_in", STORE_SESSION_TTL_MS / 1000))) {
        cJSON_Delete(doc);
        rc = doc ? rc : SPELL_ENOMEM;
        goto out;
    }
    rc = json_answer(200, doc, out);
out:
    memset(session, 0, sizeof session);
    memset(code, 0, sizeof code);
    return rc;
}

/* ---- the /device page ------------------------------------------------- */

/* The form, with the code (already normalised or "") filled in. */
static int device_form(struct server *srv, int status, const char *title, const char *text,
                       const char *code, struct response **out)
{
    struct spell_buf b;
    char shown[10] = "";
    int rc;

    if (code && strlen(code) == 8)
        snprintf(shown, sizeof shown, "%.4s-%.4s", code, code + 4);
    spell_buf_init(&b, IDENTITY_PAGE_MAX);
    if ((rc = spell_buf_addstr(&b, "<form method=\"post\" action=\"/device\">"
                                   "<p><label for=\"user_code\">Code</label><br>"
                                   "<input id=\"user_code\" name=\"user_code\" "
                                   "autocomplete=\"off\" autocapitalize=\"characters\" "
                                   "maxlength=\"16\" required value=\"")) ||
        (rc = identity_html_escape(&b, shown)) ||
        (rc = spell_buf_addstr(&b, "\"></p>")))
        goto out;
    if (identity_github_configured(srv) &&
        (rc = spell_buf_addstr(&b, "<p><button name=\"action\" value=\"github\">"
                                   "Sign in with GitHub</button></p>")))
        goto out;
    if ((rc = spell_buf_addstr(&b, "<p><label for=\"api_key\">Or, for a local account, "
                                   "its API key</label><br>"
                                   "<input id=\"api_key\" name=\"api_key\" type=\"password\" "
                                   "autocomplete=\"off\" maxlength=\"128\"><br>"
                                   "<button name=\"action\" value=\"key\">"
                                   "Sign in with the API key</button></p>"
                                   "<p><button name=\"action\" value=\"deny\">"
                                   "Deny</button> if you did not start this sign-in.</p>"
                                   "</form>")))
        goto out;
    rc = identity_page(status, title, text, spell_buf_str(&b), out);
out:
    spell_buf_free(&b);
    return rc;
}

int identity_h_device_page(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const char *given = httpd_request_query(req, "user_code");
    char code[9] = "";

    *out = NULL;
    if (given && identity_user_code_norm(given, code) != SPELL_OK)
        code[0] = '\0';
    return device_form(srv, 200, "Sign in a terminal",
                       "Enter the code your terminal shows, then sign in to let it act for "
                       "you.",
                       code, out);
}

static int too_many(int64_t retry_s, struct response **out)
{
    char v[32];
    int rc;

    rc = identity_page(429, "Too many attempts",
                       "Too many wrong codes or keys came from your address. Wait a few "
                       "minutes, then try again.",
                       NULL, out);
    if (rc == SPELL_OK) {
        snprintf(v, sizeof v, "%lld", (long long)(retry_s > 0 ? retry_s : 1));
        httpd_response_header(*out, "Retry-After", v);
    }
    return rc;
}

int identity_h_device_form(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct auth_principal ap;
    struct store_device d;
    const char *ip = httpd_request_remote(req);
    size_t len = 0;
    const char *body = httpd_request_body(req, &len);
    char typed[USER_CODE_INPUT_MAX + 1], code[9], action[16], key[AUTH_TOKEN_MAX + 1];
    int64_t retry_s = 0, now = srv_now_ms(&srv->clock);
    int rc, got;

    *out = NULL;
    memset(key, 0, sizeof key);
    if (!srv->identity)
        return SPELL_EINVAL;
    if (identity_guess_blocked(srv->identity, ip, &retry_s))
        return too_many(retry_s, out);
    got = identity_form_get(body, len, "user_code", typed, sizeof typed);
    if (got != SPELL_OK || identity_user_code_norm(typed, code) != SPELL_OK) {
        identity_guess_count(srv->identity, ip);
        return device_form(srv, 400, "Code not valid",
                           "A code has eight letters, like BCDF-GHJK. Check your terminal "
                           "and enter it again.",
                           NULL, out);
    }
    if (store_device_by_user_code(srv->store, code, now, &d) != SPELL_OK) {
        identity_guess_count(srv->identity, ip);
        return device_form(srv, 400, "Code not found",
                           "This code is unknown, expired or used already. Check your "
                           "terminal, or start the sign-in there again.",
                           NULL, out);
    }
    if (identity_form_get(body, len, "action", action, sizeof action) != SPELL_OK)
        snprintf(action, sizeof action, "%s", identity_github_configured(srv) ? "github" : "");
    if (strcmp(action, "deny") == 0) {
        rc = store_device_decide(srv->store, code, NULL, now);
        if (rc == SPELL_ENOTFOUND)
            return device_form(srv, 400, "Code not found",
                               "This code expired or was used already.", NULL, out);
        if (rc != SPELL_OK)
            return rc;
        return identity_page(200, "Sign-in denied",
                             "The terminal will be told that the sign-in was denied.", NULL,
                             out);
    }
    if (strcmp(action, "github") == 0)
        return identity_github_redirect(srv, code, out);
    if (strcmp(action, "key") != 0)
        return device_form(srv, 400, "Choose how to sign in",
                           "Sign in with GitHub, or enter the API key of a local account.",
                           code, out);
    rc = identity_form_get(body, len, "api_key", key, sizeof key);
    if (rc != SPELL_OK || !key[0] || !srv->auth ||
        auth_verify_key(srv->auth, key, &ap) != SPELL_OK) {
        memset(key, 0, sizeof key);
        identity_guess_count(srv->identity, ip);
        return device_form(srv, 401, "API key not accepted",
                           "That API key was not accepted. Check it and try again.", code,
                           out);
    }
    memset(key, 0, sizeof key);
    rc = store_device_decide(srv->store, code, ap.p.user_id, now);
    if (rc == SPELL_ENOTFOUND)
        return device_form(srv, 400, "Code not found", "This code expired or was used already.",
                           NULL, out);
    if (rc != SPELL_OK)
        return rc;
    return identity_page(200, "Signed in",
                         "You are signed in. You may close this page and return to your "
                         "terminal.",
                         NULL, out);
}
