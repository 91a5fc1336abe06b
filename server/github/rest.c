/*
 * REST calls to GitHub with an installation token: the headers GitHub
 * asks for, one retry with a fresh token on 401, bounded bodies, and the
 * rate-limit headers (x-ratelimit-remaining / x-ratelimit-reset /
 * retry-after) turned into a wait the caller can honour.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spell/errors.h"
#include "spell/http.h"

#include "github-impl.h"
#include "github.h"

/* Longest path accepted after the base URL. */
#define PATH_MAX_LEN 1024

static int64_t header_int(const struct spell_http_response *r, const char *name, int64_t dflt)
{
    const char *v = spell_http_response_header(r, name);
    char *end;
    long long n;

    if (!v || !*v)
        return dflt;
    n = strtoll(v, &end, 10);
    if (*end != '\0' || n < 0)
        return dflt;
    return (int64_t)n;
}

/* Reads the rate-limit headers of an answer into out and the client. */
static void rate_headers(struct github *g, const struct spell_http_response *r,
                         struct github_resp *out)
{
    const char *ra = spell_http_response_header(r, "retry-after");
    int64_t now = github_now_ms(g), remaining, reset, wait = -1;
    long ms = 0;

    remaining = header_int(r, "x-ratelimit-remaining", -1);
    reset = header_int(r, "x-ratelimit-reset", -1);
    if (ra && spell_http_parse_retry_after(ra, (time_t)(now / 1000), &ms) == SPELL_OK)
        wait = ms;
    if (remaining == 0 && (r->status == 403 || r->status == 429)) {
        if (wait < 0)
            wait = reset > 0 ? reset * 1000 - now : 60 * 1000;
    } else if (wait >= 0 && r->status != 403 && r->status != 429 && r->status < 500) {
        wait = -1;  /* a Retry-After only matters on a refusal */
    }
    if (wait < 0)
        return;
    if (wait > GITHUB_WAIT_MAX_MS)
        wait = GITHUB_WAIT_MAX_MS;
    out->rate_limited = 1;
    out->retry_after_ms = wait;
    if (remaining == 0) {
        pthread_mutex_lock(&g->mu);
        if (now + wait > g->blocked_until_ms)
            g->blocked_until_ms = now + wait;
        pthread_mutex_unlock(&g->mu);
    }
}

static int send_once(struct github *g, const char *token, const char *method, const char *url,
                     const char *json_body, size_t body_cap, struct github_resp *out)
{
    const char *hdrs[2] = {"Accept: application/vnd.github+json",
                           "X-GitHub-Api-Version: 2022-11-28"};
    struct spell_http_request req;
    struct spell_http_response resp;
    int rc;

    spell_http_request_init(&req, method, url);
    req.bearer = token;
    req.headers = hdrs;
    req.n_headers = 2;
    if (json_body) {
        req.body = json_body;
        req.body_len = strlen(json_body);
    }
    req.body_cap = body_cap;
    req.timeout_ms = GITHUB_TIMEOUT_MS;
    req.retry.max_attempts = 1;
    rc = spell_http_send(&req, &resp);
    free(out->body);
    out->body = NULL;
    out->len = 0;
    out->status = resp.status;
    out->rate_limited = 0;
    out->retry_after_ms = 0;
    if (rc == SPELL_OK) {
        out->body = resp.body;
        out->len = resp.body_len;
        resp.body = NULL;
        resp.body_len = 0;
        rate_headers(g, &resp, out);
        out->error[0] = '\0';
        if (out->status >= 400)
            snprintf(out->error, sizeof out->error, "GitHub answered %d to %s", out->status,
                     method);
    } else {
        snprintf(out->error, sizeof out->error, "GitHub could not be reached: %.200s",
                 resp.error[0] ? resp.error : spell_strerror(rc));
    }
    spell_http_response_free(&resp);
    return rc;
}

int github_call(struct github *g, const char *installation_id, const char *method,
                const char *path, const char *json_body, size_t body_cap,
                struct github_resp *out)
{
    char token[GITHUB_TOKEN_MAX + 1] = "", url[2048 + PATH_MAX_LEN + 8];
    int64_t now, blocked;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if (!g || !method || !path || path[0] != '/' || strlen(path) > PATH_MAX_LEN)
        return SPELL_EINVAL;
    if (strpbrk(path, " \r\n\t"))
        return SPELL_EINVAL;
    if (body_cap == 0)
        body_cap = GITHUB_BODY_DEFAULT;
    if (body_cap > GITHUB_BODY_MAX)
        body_cap = GITHUB_BODY_MAX;
    now = github_now_ms(g);
    pthread_mutex_lock(&g->mu);
    blocked = g->blocked_until_ms;
    pthread_mutex_unlock(&g->mu);
    if (blocked > now) {
        out->rate_limited = 1;
        out->retry_after_ms = blocked - now;
        snprintf(out->error, sizeof out->error,
                 "the GitHub API rate limit is spent for another %lld s",
                 (long long)((blocked - now + 999) / 1000));
        return SPELL_EABORT;
    }
    snprintf(url, sizeof url, "%s%s", g->api_url, path);
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = github_installation_token(g, installation_id, token, sizeof token)) !=
            SPELL_OK) {
            snprintf(out->error, sizeof out->error,
                     "no installation token for installation %.64s: %s", installation_id,
                     rc == SPELL_EVERIFY ? "GitHub refused the App's credentials"
                                         : spell_strerror(rc));
            goto out;
        }
        rc = send_once(g, token, method, url, json_body, body_cap, out);
        if (rc != SPELL_OK || out->status != 401)
            break;
        /* The token was revoked or expired early: once more with a new one. */
        github_token_forget(g, installation_id);
    }
out:
    OPENSSL_cleanse(token, sizeof token);
    if (!out->body && (out->body = calloc(1, 1)) == NULL)
        rc = SPELL_ENOMEM;
    return rc;
}

void github_resp_free(struct github_resp *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
