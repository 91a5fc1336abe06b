/*
 * The GitHub OAuth web flow (identity.h): GET /auth/github and
 * GET /auth/github/callback.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "spell/crypto.h"
#include "spell/errors.h"

#include "auth.h"
#include "ratelimit.h"
#include "store.h"

#include "identity-int.h"

#define URL_MAX 4096
#define COOKIE_MAX 512
#define CODE_MAX 512
/* Seconds the state cookie lives: the state's own lifetime. */
#define STATE_COOKIE_AGE_S (IDENTITY_STATE_TTL_MS / 1000)
#define SESSION_COOKIE_AGE_S (STORE_SESSION_TTL_MS / 1000)

static int escape_into(char *out, size_t cap, const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    int n;

    if (!e)
        return SPELL_ENOMEM;
    n = snprintf(out, cap, "%s", e);
    curl_free(e);
    return n < 0 || (size_t)n >= cap ? SPELL_ETOOBIG : SPELL_OK;
}

/* A page that also clears the state cookie (every callback answer does). */
static int callback_page(struct server *srv, int status, const char *title, const char *text,
                         const char *raw, struct response **out)
{
    char cookie[COOKIE_MAX];
    int rc;

    if ((rc = identity_page(status, title, text, raw, out)) != SPELL_OK)
        return rc;
    if (identity_cookie(srv, IDENTITY_STATE_COOKIE, NULL, "/auth/github", 0, cookie,
                        sizeof cookie) == SPELL_OK)
        httpd_response_header(*out, "Set-Cookie", cookie);
    return SPELL_OK;
}

int identity_github_redirect(struct server *srv, const char *user_code, struct response **out)
{
    char state[IDENTITY_STATE_LEN + 1], pub[URL_MAX], redirect[URL_MAX], esc_redirect[URL_MAX],
        esc_client[512], base[URL_MAX], location[URL_MAX * 2], cookie[COOKIE_MAX];
    const char *gh = srv->providers.github_url && srv->providers.github_url[0]
                         ? srv->providers.github_url
                         : "https://github.com";
    size_t len;
    int rc, n;

    *out = NULL;
    if (!srv->identity)
        return SPELL_EINVAL;
    if (!identity_github_configured(srv))
        return identity_page(503, "GitHub sign-in is not set up",
                             "This server has no GitHub OAuth app configured. Sign in with an "
                             "API key of a local account instead.",
                             NULL, out);
    if ((rc = identity_public_url(srv, pub, sizeof pub)) != SPELL_OK)
        return rc;
    n = snprintf(redirect, sizeof redirect, "%s/auth/github/callback", pub);
    if (n < 0 || (size_t)n >= sizeof redirect)
        return SPELL_ETOOBIG;
    len = strlen(gh);
    while (len > 0 && gh[len - 1] == '/')
        len--;
    n = snprintf(base, sizeof base, "%.*s", (int)len, gh);
    if (n < 0 || (size_t)n >= sizeof base)
        return SPELL_ETOOBIG;
    if ((rc = escape_into(esc_redirect, sizeof esc_redirect, redirect)) != SPELL_OK ||
        (rc = escape_into(esc_client, sizeof esc_client, srv->providers.github_client_id)) !=
            SPELL_OK)
        return rc;
    rc = identity_state_new(srv->identity, user_code, state);
    if (rc == SPELL_ETOOBIG)
        return identity_page(503, "Too many sign-ins at once",
                             "Too many sign-ins are in progress. Try again in a few minutes.",
                             NULL, out);
    if (rc != SPELL_OK)
        return rc;
    n = snprintf(location, sizeof location,
                 "%s/login/oauth/authorize?client_id=%s&redirect_uri=%s"
                 "&scope=read%%3Auser%%20user%%3Aemail&state=%s",
                 base, esc_client, esc_redirect, state);
    if (n < 0 || (size_t)n >= sizeof location)
        return SPELL_ETOOBIG;
    if ((rc = identity_cookie(srv, IDENTITY_STATE_COOKIE, state, "/auth/github",
                              STATE_COOKIE_AGE_S, cookie, sizeof cookie)) != SPELL_OK)
        return rc;
    if ((rc = identity_page(302, "Signing in with GitHub", "On to GitHub.", NULL, out)) !=
        SPELL_OK)
        return rc;
    if ((rc = httpd_response_header(*out, "Location", location)) != SPELL_OK ||
        (rc = httpd_response_header(*out, "Set-Cookie", cookie)) != SPELL_OK) {
        httpd_response_free(*out);
        *out = NULL;
    }
    return rc;
}

int identity_h_github(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    int rc;

    if ((rc = ratelimit_ip_check(srv, req, out)) != SPELL_OK || *out)
        return rc;
    return identity_github_redirect(srv, NULL, out);
}

/* Upserts the GitHub user as a platform user. */
static int upsert(struct server *srv, const struct github_user *gu, struct store_user *user)
{
    struct store_user u;
    int64_t now = srv_now_ms(&srv->clock);
    int created = 0, rc;

    memset(&u, 0, sizeof u);
    if ((rc = spell_id_make("usr", now, u.id, sizeof u.id)) != SPELL_OK)
        return rc;
    snprintf(u.login, sizeof u.login, "%s", gu->login);
    snprintf(u.name, sizeof u.name, "%s", gu->name);
    snprintf(u.email, sizeof u.email, "%s", gu->email);
    snprintf(u.avatar_url, sizeof u.avatar_url, "%s", gu->avatar_url);
    snprintf(u.role, sizeof u.role, "%s", "caster");
    u.created_at = now;
    return store_user_upsert_github(srv->store, gu->id, &u, now, user, &created);
}

static int github_failed(struct server *srv, enum github_fail why, const char *err,
                         struct response **out)
{
    fprintf(stderr, "spell-server: GitHub sign-in failed: %s\n", err);
    if (why == GITHUB_FAIL_REFUSED)
        return callback_page(srv, 400, "Sign-in failed",
                             "GitHub did not accept this sign-in (the code may have expired "
                             "or been used). Start again.",
                             NULL, out);
    return callback_page(srv, 502, "GitHub is not answering",
                         "GitHub could not be reached or answered with an error. Nothing was "
                         "changed; try again in a moment.",
                         NULL, out);
}

int identity_h_callback(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct github_user gu;
    struct store_user user;
    enum github_fail why = GITHUB_FAIL_NONE;
    char cookie_state[IDENTITY_STATE_LEN + 2], user_code[9], token[GITHUB_TOKEN_MAX],
        session[SPELL_SESSION_TOKEN_LEN + 1], pub[URL_MAX], redirect[URL_MAX],
        cookie[COOKIE_MAX], err[256];
    const char *state = httpd_request_query(req, "state");
    const char *error = httpd_request_query(req, "error");
    const char *code = httpd_request_query(req, "code");
    const char *cookies = httpd_request_header(req, "Cookie");
    const char *dest;
    int rc, n;

    *out = NULL;
    memset(token, 0, sizeof token);
    memset(session, 0, sizeof session);
    if (!srv->identity)
        return SPELL_EINVAL;
    if ((rc = ratelimit_ip_check(srv, req, out)) != SPELL_OK || *out)
        return rc;
    if (!state || !cookies ||
        identity_cookie_get(cookies, IDENTITY_STATE_COOKIE, cookie_state, sizeof cookie_state) !=
            SPELL_OK ||
        !spell_ct_equal(state, strlen(state), cookie_state, strlen(cookie_state)))
        return callback_page(srv, 400, "Sign-in link not valid",
                             "This sign-in did not start in this browser, or its link was "
                             "changed. Start the sign-in again.",
                             NULL, out);
    rc = identity_state_take(srv->identity, state, user_code);
    if (rc == SPELL_ETIMEOUT)
        return callback_page(srv, 400, "Sign-in expired",
                             "This sign-in took longer than 10 minutes. Start it again.", NULL,
                             out);
    if (rc != SPELL_OK)
        return callback_page(srv, 400, "Sign-in link already used",
                             "This sign-in link was used already or is unknown. Start the "
                             "sign-in again.",
                             NULL, out);
    if (error) {
        if (strcmp(error, "access_denied") == 0)
            return callback_page(srv, 403, "Sign-in declined",
                                 "You declined the sign-in on GitHub. Nothing was changed.",
                                 NULL, out);
        return callback_page(srv, 400, "Sign-in failed",
                             "GitHub reported an error for this sign-in. Start again.", NULL,
                             out);
    }
    if (!code || !code[0] || strlen(code) >= CODE_MAX)
        return callback_page(srv, 400, "Sign-in failed",
                             "GitHub sent no sign-in code. Start again.", NULL, out);
    if ((rc = identity_public_url(srv, pub, sizeof pub)) != SPELL_OK)
        return rc;
    n = snprintf(redirect, sizeof redirect, "%s/auth/github/callback", pub);
    if (n < 0 || (size_t)n >= sizeof redirect)
        return SPELL_ETOOBIG;
    if (github_exchange_code(&srv->providers, code, redirect, token, sizeof token, &why, err,
                             sizeof err) != SPELL_OK) {
        rc = github_failed(srv, why, err, out);
        goto out;
    }
    if (github_fetch_user(&srv->providers, token, &gu, &why, err, sizeof err) != SPELL_OK) {
        rc = github_failed(srv, why, err, out);
        goto out;
    }
    rc = upsert(srv, &gu, &user);
    if (rc == STORE_ECONFLICT) {
        rc = callback_page(srv, 409, "Login taken",
                           "A local account already uses this GitHub login. Ask the operator "
                           "to rename it, or sign in with its API key.",
                           NULL, out);
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    if (user_code[0]) {
        rc = store_device_decide(srv->store, user_code, user.id, srv_now_ms(&srv->clock));
        if (rc == SPELL_ENOTFOUND)
            rc = callback_page(srv, 400, "Code expired",
                               "The code from your terminal expired or was used already. "
                               "Run the sign-in in the terminal again.",
                               NULL, out);
        else if (rc == SPELL_OK)
            rc = callback_page(srv, 200, "Signed in",
                               "You are signed in. You may close this page and return to "
                               "your terminal.",
                               NULL, out);
        goto out;
    }
    if ((rc = auth_session_create(srv, user.id, session, sizeof session)) != SPELL_OK ||
        (rc = identity_cookie(srv, AUTH_SESSION_COOKIE, session, "/", SESSION_COOKIE_AGE_S,
                              cookie, sizeof cookie)) != SPELL_OK)
        goto out;
    dest = srv->providers.frontend_url && srv->providers.frontend_url[0]
               ? srv->providers.frontend_url
               : pub;
    if ((rc = callback_page(srv, 302, "Signed in", "You are signed in.", NULL, out)) !=
        SPELL_OK)
        goto out;
    if ((rc = httpd_response_header(*out, "Location", dest)) != SPELL_OK ||
        (rc = httpd_response_header(*out, "Set-Cookie", cookie)) != SPELL_OK) {
        httpd_response_free(*out);
        *out = NULL;
    }
out:
    memset(token, 0, sizeof token);
    memset(session, 0, sizeof session);
    memset(cookie, 0, sizeof cookie);
    return rc;
}
