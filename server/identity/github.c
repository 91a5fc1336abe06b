/*
 * The small GitHub client of the identity part: the OAuth code exchange
 * and the signed-in user, on core's HTTP client.  Bodies are capped at
 * GITHUB_BODY_CAP; the access token never appears in an error text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "spell/errors.h"
#include "spell/http.h"
#include "spell/json.h"

#include "identity.h"

#define URL_MAX 4096
#define FORM_MAX 4096

static const char *const github_headers[] = {
    "Accept: application/vnd.github+json",
    "X-GitHub-Api-Version: 2022-11-28",
};

static const char *base_or(const char *v, const char *dflt)
{
    return v && v[0] ? v : dflt;
}

/* base without trailing slashes, then path. */
static int join(char *out, size_t cap, const char *base, const char *path)
{
    size_t len = strlen(base);
    int n;

    while (len > 0 && base[len - 1] == '/')
        len--;
    n = snprintf(out, cap, "%.*s%s", (int)len, base, path);
    return n < 0 || (size_t)n >= cap ? SPELL_ETOOBIG : SPELL_OK;
}

/* Appends name=value, form-encoded, to a form of cap bytes. */
static int form_add(char *form, size_t cap, const char *name, const char *value)
{
    char *esc = curl_easy_escape(NULL, value, 0);
    size_t used = strlen(form);
    int n;

    if (!esc)
        return SPELL_ENOMEM;
    n = snprintf(form + used, cap - used, "%s%s=%s", used ? "&" : "", name, esc);
    curl_free(esc);
    return n < 0 || (size_t)n >= cap - used ? SPELL_ETOOBIG : SPELL_OK;
}

static int parse_body(const struct spell_http_response *resp, cJSON **doc)
{
    struct spell_json_limits lim = {GITHUB_BODY_CAP, 16};

    *doc = NULL;
    if (spell_json_parse(resp->body, resp->body_len, &lim, doc, NULL, 0) != SPELL_OK)
        return SPELL_EPARSE;
    if (!cJSON_IsObject(*doc)) {
        cJSON_Delete(*doc);
        *doc = NULL;
        return SPELL_EPARSE;
    }
    return SPELL_OK;
}

/* A string member, or "" when absent or null; SPELL_EPARSE when it is
 * another type or does not fit. */
static int str_member(const cJSON *doc, const char *name, char *dst, size_t cap)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(doc, name);
    size_t len;

    dst[0] = '\0';
    if (!it || cJSON_IsNull(it))
        return SPELL_OK;
    if (!cJSON_IsString(it) || !it->valuestring)
        return SPELL_EPARSE;
    len = strlen(it->valuestring);
    if (len >= cap)
        return SPELL_EPARSE;
    memcpy(dst, it->valuestring, len + 1);
    return SPELL_OK;
}

static int login_ok(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > 39)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return 0;
    }
    return 1;
}

int github_exchange_code(const struct providers *p, const char *code, const char *redirect_uri,
                         char *token_out, size_t cap, enum github_fail *why, char *err,
                         size_t errlen)
{
    struct spell_http_request req;
    struct spell_http_response resp;
    char url[URL_MAX], form[FORM_MAX] = "", gh_err[64];
    cJSON *doc = NULL;
    int rc;

    memset(&resp, 0, sizeof resp);
    *why = GITHUB_FAIL_DOWN;
    if (token_out && cap)
        token_out[0] = '\0';
    if (!p || !code || !redirect_uri || !token_out || cap < GITHUB_TOKEN_MAX) {
        *why = GITHUB_FAIL_REFUSED;
        return SPELL_EINVAL;
    }
    if ((rc = join(url, sizeof url, base_or(p->github_url, "https://github.com"),
                   "/login/oauth/access_token")) != SPELL_OK ||
        (rc = form_add(form, sizeof form, "client_id", base_or(p->github_client_id, ""))) ||
        (rc = form_add(form, sizeof form, "client_secret",
                       base_or(p->github_client_secret, ""))) ||
        (rc = form_add(form, sizeof form, "code", code)) ||
        (rc = form_add(form, sizeof form, "redirect_uri", redirect_uri))) {
        spell_errf(err, errlen, "the sign-in request is too large");
        *why = GITHUB_FAIL_REFUSED;
        goto out;
    }
    spell_http_request_init(&req, "POST", url);
    req.body = form;
    req.body_len = strlen(form);
    req.content_type = "application/x-www-form-urlencoded";
    /* The token endpoint answers JSON only when asked for it. */
    req.headers = (const char *const[]){"Accept: application/json"};
    req.n_headers = 1;
    req.body_cap = GITHUB_BODY_CAP;
    req.timeout_ms = GITHUB_TIMEOUT_MS;
    req.retry.max_attempts = 1;
    rc = spell_http_send(&req, &resp);
    /* The form holds the client secret. */
    memset(form, 0, sizeof form);
    if (rc != SPELL_OK) {
        spell_errf(err, errlen, "GitHub could not be reached: %s", resp.error);
        goto out;
    }
    if (resp.status >= 500 || resp.status == 429) {
        spell_errf(err, errlen, "GitHub answered HTTP %d", resp.status);
        rc = SPELL_EHTTP;
        goto out;
    }
    if (parse_body(&resp, &doc) != SPELL_OK) {
        spell_errf(err, errlen, "GitHub's token answer is not JSON (HTTP %d)", resp.status);
        rc = SPELL_EPARSE;
        goto out;
    }
    /* A bad, expired or reused code is a 200 with {"error": ...}. */
    if (str_member(doc, "error", gh_err, sizeof gh_err) != SPELL_OK || gh_err[0] ||
        resp.status != 200) {
        spell_errf(err, errlen, "GitHub refused the sign-in code (%s)",
                   gh_err[0] ? gh_err : "no token");
        *why = GITHUB_FAIL_REFUSED;
        rc = SPELL_EVERIFY;
        goto out;
    }
    if (str_member(doc, "access_token", token_out, cap) != SPELL_OK || !token_out[0]) {
        spell_errf(err, errlen, "GitHub's token answer has no access token");
        token_out[0] = '\0';
        rc = SPELL_EPARSE;
        goto out;
    }
    *why = GITHUB_FAIL_NONE;
    rc = SPELL_OK;
out:
    cJSON_Delete(doc);
    spell_http_response_free(&resp);
    return rc;
}

int github_fetch_user(const struct providers *p, const char *token, struct github_user *out,
                      enum github_fail *why, char *err, size_t errlen)
{
    struct spell_http_request req;
    struct spell_http_response resp;
    char url[URL_MAX];
    cJSON *doc = NULL;
    const cJSON *id;
    int rc;

    memset(&resp, 0, sizeof resp);
    *why = GITHUB_FAIL_DOWN;
    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if (!p || !token || !token[0])
        return SPELL_EINVAL;
    if ((rc = join(url, sizeof url, base_or(p->github_api_url, "https://api.github.com"),
                   "/user")) != SPELL_OK)
        goto out;
    spell_http_request_init(&req, "GET", url);
    req.bearer = token;
    req.headers = github_headers;
    req.n_headers = sizeof github_headers / sizeof github_headers[0];
    req.body_cap = GITHUB_BODY_CAP;
    req.timeout_ms = GITHUB_TIMEOUT_MS;
    req.retry.max_attempts = 1;
    rc = spell_http_send(&req, &resp);
    if (rc != SPELL_OK) {
        spell_errf(err, errlen, "GitHub could not be reached: %s", resp.error);
        goto out;
    }
    if (resp.status == 401 || resp.status == 403) {
        spell_errf(err, errlen, "GitHub refused the access token (HTTP %d)", resp.status);
        *why = GITHUB_FAIL_REFUSED;
        rc = SPELL_EVERIFY;
        goto out;
    }
    if (resp.status != 200) {
        spell_errf(err, errlen, "GitHub answered HTTP %d for the user", resp.status);
        rc = SPELL_EHTTP;
        goto out;
    }
    rc = SPELL_EPARSE;
    if (parse_body(&resp, &doc) != SPELL_OK) {
        spell_errf(err, errlen, "GitHub's user answer is not JSON");
        goto out;
    }
    id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    if (!cJSON_IsNumber(id) || id->valuedouble < 1 || id->valuedouble > 9007199254740991.0 ||
        (double)(int64_t)id->valuedouble != id->valuedouble ||
        str_member(doc, "login", out->login, sizeof out->login) != SPELL_OK ||
        !login_ok(out->login) ||
        str_member(doc, "name", out->name, sizeof out->name) != SPELL_OK ||
        str_member(doc, "email", out->email, sizeof out->email) != SPELL_OK ||
        str_member(doc, "avatar_url", out->avatar_url, sizeof out->avatar_url) != SPELL_OK) {
        spell_errf(err, errlen, "GitHub's user answer lacks a valid id or login");
        memset(out, 0, sizeof *out);
        goto out;
    }
    out->id = (int64_t)id->valuedouble;
    *why = GITHUB_FAIL_NONE;
    rc = SPELL_OK;
out:
    cJSON_Delete(doc);
    spell_http_response_free(&resp);
    return rc;
}
