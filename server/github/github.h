/*
 * The GitHub App client of spell-server: what the workflow executor
 * (server/exec/workflow.c) uses to dispatch workflows and follow their runs.
 *
 * Data flow.
 *
 *   github_new(providers, clock)     parses the App's PEM private key once
 *   github_call(g, installation, "POST", "/repos/o/r/...", body)
 *     -> github_installation_token()   cached per installation until
 *          GITHUB_TOKEN_MARGIN_MS before its expires_at; otherwise
 *          github_app_jwt() (RS256, iat = now - 60 s, exp = now + 9 min,
 *          iss = the App id) is exchanged at
 *          POST {api}/app/installations/{id}/access_tokens
 *     -> the REST request with Accept: application/vnd.github+json and
 *          X-GitHub-Api-Version: 2022-11-28; a 401 drops the cached token
 *          and the call is sent once more with a fresh one
 *     <- struct github_resp: status, body (bounded), and when GitHub asks
 *          the caller to wait (403/429 with x-ratelimit-remaining: 0 or a
 *          Retry-After) rate_limited and retry_after_ms
 *
 * Rate limits: once an answer says the quota is spent, every call of this
 * client fails at once (status 0, rate_limited, retry_after_ms) until the
 * x-ratelimit-reset time, without sending anything; callers wait inside
 * their own deadline or fail clearly.
 *
 * The private key and the tokens are never written to a log or an error
 * text.  Everything here is thread-safe (one mutex around the token cache
 * and the rate-limit state, never held across a request).
 */
#ifndef SPELL_SERVER_GITHUB_H
#define SPELL_SERVER_GITHUB_H

#include <stddef.h>
#include <stdint.h>

struct providers;
struct srv_clock;
struct github;

/* A cached installation token is refreshed this long before it expires. */
#define GITHUB_TOKEN_MARGIN_MS (60 * 1000)
/* Installations whose tokens are cached at once (the oldest is dropped). */
#define GITHUB_TOKEN_SLOTS 16
/* Longest installation token, App id and installation id accepted. */
#define GITHUB_TOKEN_MAX 512
#define GITHUB_ID_MAX 64
/* Longest JWT produced (a 4096-bit key signs 512 bytes: ~700 in base64). */
#define GITHUB_JWT_MAX 2048
/* Default cap of a REST answer body, and the hard cap of any. */
#define GITHUB_BODY_DEFAULT ((size_t)1024 * 1024)
#define GITHUB_BODY_MAX ((size_t)8 * 1024 * 1024)
/* The longest wait a rate-limit answer may impose (one hour). */
#define GITHUB_WAIT_MAX_MS (3600 * 1000)
/* Each request attempt's time limit. */
#define GITHUB_TIMEOUT_MS 15000L

/*
 * Creates the client from srv->providers: github_api_url (default
 * https://api.github.com), github_app_id, github_app_private_key (PEM
 * text).  SPELL_ENOTFOUND when the App is not configured (no id or no key:
 * the workflow mode is then off), SPELL_EINVAL when the key cannot be
 * read (the message never quotes it).
 */
int github_new(const struct providers *p, const struct srv_clock *clock, struct github **out);
void github_free(struct github *g);

/* The App's JWT at this moment, NUL-terminated into out (outlen bytes). */
int github_app_jwt(struct github *g, char *out, size_t outlen);

/*
 * An installation access token, from the cache or freshly exchanged.
 * SPELL_EVERIFY when GitHub refused the JWT (401/403/404), SPELL_ENET or
 * SPELL_ETIMEOUT when it could not be reached, SPELL_EIO for a 5xx,
 * SPELL_EPARSE for an answer without token or expires_at.
 */
int github_installation_token(struct github *g, const char *installation_id, char *out,
                              size_t outlen);

/* Drops the cached token of an installation (the next call exchanges a new
 * one). */
void github_token_forget(struct github *g, const char *installation_id);

struct github_resp {
    int status;                 /* 0 when no answer arrived */
    char *body;                 /* NUL-terminated, never NULL after github_call */
    size_t len;
    /* GitHub asked to wait: 403/429 with x-ratelimit-remaining: 0, or a
     * Retry-After on any answer, or the client still blocked by an earlier
     * answer (then status is 0 and nothing was sent). */
    int rate_limited;
    int64_t retry_after_ms;     /* how long, when rate_limited (capped) */
    char error[256];            /* why the call failed, in words; "" on success */
};

/*
 * One REST call: path starts with '/' and is appended to the API base
 * URL; json_body (may be NULL) is sent as application/json.  body_cap 0
 * means GITHUB_BODY_DEFAULT (at most GITHUB_BODY_MAX).  SPELL_OK whenever
 * an answer arrived, whatever its status (read out->status); SPELL_EABORT
 * when rate limited before sending; the token errors above; SPELL_ENET /
 * SPELL_ETIMEOUT when the transport failed.  Free *out with
 * github_resp_free in every case.
 */
int github_call(struct github *g, const char *installation_id, const char *method,
                const char *path, const char *json_body, size_t body_cap,
                struct github_resp *out);
void github_resp_free(struct github_resp *r);

/* The API base URL in use (no trailing slash). */
const char *github_api_url(const struct github *g);

#endif
