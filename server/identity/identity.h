/*
 * GitHub identity for spell-server: the OAuth web flow and the device
 * authorization flow of RFC 8628 (for terminals).
 *
 * Web flow (web.c):
 *   GET /auth/github
 *     -> a random state (32 bytes, base62) kept server-side as its SHA-256
 *        for IDENTITY_STATE_TTL_MS and bound to the browser by the
 *        HttpOnly cookie spell_oauth_state (Path=/auth/github, 10 min)
 *     -> 302 {github_url}/login/oauth/authorize?client_id&redirect_uri&
 *        scope=read:user user:email&state
 *   GET /auth/github/callback?code&state
 *     -> state: query and cookie equal (constant time), known, unexpired,
 *        single use (removed on first sight)          else 400 page
 *     -> error=access_denied                          403 page
 *     -> code exchange at {github_url}/login/oauth/access_token (JSON)
 *        and GET {github_api_url}/user (github.c)      502 page when GitHub
 *                                                      is down, 400 for a
 *                                                      bad code
 *     -> the user, upserted by GitHub id (new users are casters)
 *     -> a state made for a device approval approves that grant and shows
 *        "return to your terminal"; otherwise a session (auth_session_create),
 *        Set-Cookie spell_session (HttpOnly; SameSite=Lax; Path=/;
 *        Max-Age 30 days; Secure when public_url is https) and 302 to
 *        FRONTEND_URL (or public_url).
 *
 * Device flow (device.c):
 *   POST /v1/auth/device  -> {device_code (43 base62), user_code
 *        ("XXXX-XXXX" from IDENTITY_USER_CODE_ALPHABET), verification_uri
 *        ({public_url}/device), verification_uri_complete, expires_in 900,
 *        interval 5}; the store keeps SHA-256(device_code) only.
 *   POST /v1/auth/token   {device_code} (JSON or form) -> 400 {"error":
 *        authorization_pending | slow_down | expired_token | access_denied |
 *        invalid_grant} or 200 {access_token, token_type, expires_in}; the
 *        token (a session) is handed out once.
 *   GET /device, POST /device: the page where a person types the user
 *        code (any case, dash optional) and approves by signing in with
 *        GitHub (the web flow carries the code in its state), or with an
 *        API key of a local account, or denies.  Wrong codes and wrong keys
 *        count per address: IDENTITY_GUESS_LIMIT in IDENTITY_GUESS_WINDOW_MS,
 *        then 429.
 *
 * Pages (html.c) are small, escaped HTML without scripts, sent with
 * Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline';
 * form-action 'self'.  Failures never crash and never echo a key or code.
 *
 * Thread safety: the state table and the guess counters have one mutex
 * each; everything else lives in the store.
 */
#ifndef SPELL_SERVER_IDENTITY_H
#define SPELL_SERVER_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "httpd.h"
#include "router.h"
#include "server.h"

#define IDENTITY_STATE_TTL_MS (10LL * 60 * 1000)
/* Pending web-flow states kept at once; past it new sign-ins get 503. */
#define IDENTITY_STATES_MAX 10000
#define IDENTITY_DEVICE_TTL_S 900
#define IDENTITY_DEVICE_INTERVAL_S 5
/* RFC 8628 §3.5: each slow_down adds this to the interval. */
#define IDENTITY_SLOW_DOWN_STEP_S 5
#define IDENTITY_DEVICE_CODE_LEN 43
/* 20 consonants without look-alikes (no vowels, so no words either). */
#define IDENTITY_USER_CODE_ALPHABET "BCDFGHJKLMNPQRSTVWXZ"
#define IDENTITY_GUESS_LIMIT 5
#define IDENTITY_GUESS_WINDOW_MS (10LL * 60 * 1000)
/* Addresses whose guesses are tracked at once; when full, the oldest
 * window is dropped. */
#define IDENTITY_GUESS_MAX 10000
/* Expired device grants stay this long (so a late poll still reads
 * expired_token), then they are purged. */
#define IDENTITY_DEVICE_KEEP_MS (60LL * 60 * 1000)
#define IDENTITY_STATE_COOKIE "spell_oauth_state"
#define IDENTITY_CSP "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"

struct identity;

/* Creates the identity context (srv->store, srv->clock, srv->providers and
 * srv->public_url are read from then on; srv->auth for API-key approval).
 * Not stored in srv->identity: the caller does that. */
int identity_new(struct server *srv, struct identity **out);
void identity_free(struct identity *id);

/* The part's rows (ud = srv): GET /auth/github, GET /auth/github/callback,
 * POST /v1/auth/device, POST /v1/auth/token, GET /device, POST /device.
 * srv->identity must be set before requests arrive. */
int identity_routes(struct server *srv, const struct route **rows, size_t *n);

/* 1 when the GitHub OAuth app is configured (client id and secret). */
int identity_github_configured(const struct server *srv);

/* ---- GitHub client (github.c) --------------------------------------- */

#define GITHUB_TOKEN_MAX 256
#define GITHUB_BODY_CAP ((size_t)64 * 1024)
#define GITHUB_TIMEOUT_MS 10000L

struct github_user {
    int64_t id;
    char login[40];             /* [A-Za-z0-9-]{1,39} */
    char name[257];             /* "" when GitHub has none */
    char email[321];            /* the public email; "" when hidden */
    char avatar_url[2049];
};

/* Why a GitHub call failed, for the page's status. */
enum github_fail {
    GITHUB_FAIL_NONE = 0,
    GITHUB_FAIL_DOWN,           /* unreachable, timeout, 5xx, garbage: 502 */
    GITHUB_FAIL_REFUSED,        /* a bad or used code, a refused token: 400 */
};

/* Exchanges an authorization code at {github_url}/login/oauth/access_token.
 * token_out receives the access token (cap >= GITHUB_TOKEN_MAX).  On
 * failure *why says whose fault it was and err says what happened. */
int github_exchange_code(const struct providers *p, const char *code, const char *redirect_uri,
                         char *token_out, size_t cap, enum github_fail *why, char *err,
                         size_t errlen);

/* GET {github_api_url}/user with the token. */
int github_fetch_user(const struct providers *p, const char *token, struct github_user *out,
                      enum github_fail *why, char *err, size_t errlen);

/* ---- shared inside the part ------------------------------------------ */

/* Normalises a typed user code: letters upper-cased, '-' and spaces
 * dropped; SPELL_OK when 8 letters of the alphabet remain (out: 9 bytes). */
int identity_user_code_norm(const char *in, char out[9]);

#endif
