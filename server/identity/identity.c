/*
 * The identity part's context (identity.h): pending web-flow states,
 * guess counters per address, form fields, cookies and the small HTML
 * pages every flow ends on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/buf.h"
#include "spell/crypto.h"
#include "spell/errors.h"

#include "identity-int.h"

int identity_new(struct server *srv, struct identity **out)
{
    struct identity *id = NULL;
    int rc = SPELL_EINVAL;

    if (!out)
        return SPELL_EINVAL;
    *out = NULL;
    if (!srv || !srv->store)
        goto fail;
    rc = SPELL_ENOMEM;
    if (!(id = calloc(1, sizeof *id)))
        goto fail;
    id->srv = srv;
    if (!(id->states = calloc(IDENTITY_STATES_MAX, sizeof *id->states)) ||
        !(id->guesses = calloc(IDENTITY_GUESS_MAX, sizeof *id->guesses)))
        goto fail;
    if (pthread_mutex_init(&id->state_lock, NULL) != 0)
        goto fail;
    if (pthread_mutex_init(&id->guess_lock, NULL) != 0) {
        pthread_mutex_destroy(&id->state_lock);
        goto fail;
    }
    *out = id;
    return SPELL_OK;
fail:
    if (id) {
        free(id->states);
        free(id->guesses);
        free(id);
    }
    return rc;
}

void identity_free(struct identity *id)
{
    if (!id)
        return;
    pthread_mutex_destroy(&id->state_lock);
    pthread_mutex_destroy(&id->guess_lock);
    free(id->states);
    free(id->guesses);
    free(id);
}

int identity_github_configured(const struct server *srv)
{
    return srv && srv->providers.github_client_id && srv->providers.github_client_id[0] &&
           srv->providers.github_client_secret && srv->providers.github_client_secret[0];
}

int identity_user_code_norm(const char *in, char out[9])
{
    size_t n = 0;
    char c;

    out[0] = '\0';
    if (!in)
        return SPELL_EINVAL;
    for (; *in; in++) {
        c = *in;
        if (c == '-' || c == ' ')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (!strchr(IDENTITY_USER_CODE_ALPHABET, c) || c == '\0' || n >= 8) {
            out[0] = '\0';
            return SPELL_EINVAL;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    if (n != 8) {
        out[0] = '\0';
        return SPELL_EINVAL;
    }
    return SPELL_OK;
}

/* ---- states ---------------------------------------------------------- */

int identity_state_new(struct identity *id, const char *user_code, char *state_out)
{
    char hex[SPELL_SHA256_HEX_LEN + 1];
    int64_t now;
    size_t i;
    int rc;

    state_out[0] = '\0';
    if ((rc = spell_random_token(state_out, IDENTITY_STATE_LEN)) != SPELL_OK ||
        (rc = spell_sha256_hex(state_out, IDENTITY_STATE_LEN, hex)) != SPELL_OK)
        return rc;
    now = srv_now_ms(&id->srv->clock);
    pthread_mutex_lock(&id->state_lock);
    /* Expired states go first, so a full table means live sign-ins. */
    for (i = 0; i < id->n_states;) {
        if (id->states[i].expires_at <= now)
            id->states[i] = id->states[--id->n_states];
        else
            i++;
    }
    if (id->n_states >= IDENTITY_STATES_MAX) {
        rc = SPELL_ETOOBIG;
    } else {
        struct id_state *s = &id->states[id->n_states++];

        memcpy(s->hash, hex, sizeof s->hash);
        s->expires_at = now + IDENTITY_STATE_TTL_MS;
        snprintf(s->user_code, sizeof s->user_code, "%s", user_code ? user_code : "");
        rc = SPELL_OK;
    }
    pthread_mutex_unlock(&id->state_lock);
    if (rc != SPELL_OK)
        state_out[0] = '\0';
    return rc;
}

int identity_state_take(struct identity *id, const char *state, char user_code_out[9])
{
    char hex[SPELL_SHA256_HEX_LEN + 1];
    int64_t now;
    size_t i;
    int rc = SPELL_ENOTFOUND;

    user_code_out[0] = '\0';
    if (!state || strnlen(state, IDENTITY_STATE_LEN + 1) != IDENTITY_STATE_LEN)
        return SPELL_ENOTFOUND;
    if (spell_sha256_hex(state, IDENTITY_STATE_LEN, hex) != SPELL_OK)
        return SPELL_ENOTFOUND;
    now = srv_now_ms(&id->srv->clock);
    pthread_mutex_lock(&id->state_lock);
    for (i = 0; i < id->n_states; i++) {
        /* Hashes of random values: comparing them leaks nothing useful, but
         * the comparison is constant-time anyway. */
        if (spell_ct_equal(id->states[i].hash, 64, hex, 64)) {
            rc = id->states[i].expires_at <= now ? SPELL_ETIMEOUT : SPELL_OK;
            if (rc == SPELL_OK)
                memcpy(user_code_out, id->states[i].user_code, 9);
            id->states[i] = id->states[--id->n_states];
            break;
        }
    }
    pthread_mutex_unlock(&id->state_lock);
    return rc;
}

/* ---- guesses --------------------------------------------------------- */

static struct id_guess *guess_find(struct identity *id, const char *ip, int64_t now, int add)
{
    struct id_guess *g = NULL;
    size_t i, oldest = 0;

    for (i = 0; i < id->n_guesses; i++) {
        if (id->guesses[i].window_start + IDENTITY_GUESS_WINDOW_MS <= now) {
            id->guesses[i] = id->guesses[--id->n_guesses];
            i--;
            continue;
        }
        if (strcmp(id->guesses[i].ip, ip) == 0)
            return &id->guesses[i];
    }
    if (!add)
        return NULL;
    if (id->n_guesses >= IDENTITY_GUESS_MAX) {
        for (i = 1; i < id->n_guesses; i++) {
            if (id->guesses[i].window_start < id->guesses[oldest].window_start)
                oldest = i;
        }
        g = &id->guesses[oldest];
    } else {
        g = &id->guesses[id->n_guesses++];
    }
    snprintf(g->ip, sizeof g->ip, "%s", ip);
    g->window_start = now;
    g->count = 0;
    return g;
}

static const char *ip_or(const char *ip)
{
    return ip && ip[0] ? ip : "unknown";
}

int identity_guess_blocked(struct identity *id, const char *ip, int64_t *retry_s)
{
    struct id_guess *g;
    int64_t now = srv_now_ms(&id->srv->clock);
    int blocked = 0;

    *retry_s = 0;
    pthread_mutex_lock(&id->guess_lock);
    g = guess_find(id, ip_or(ip), now, 0);
    if (g && g->count >= IDENTITY_GUESS_LIMIT) {
        blocked = 1;
        *retry_s = (g->window_start + IDENTITY_GUESS_WINDOW_MS - now + 999) / 1000;
    }
    pthread_mutex_unlock(&id->guess_lock);
    return blocked;
}

void identity_guess_count(struct identity *id, const char *ip)
{
    struct id_guess *g;
    int64_t now = srv_now_ms(&id->srv->clock);

    pthread_mutex_lock(&id->guess_lock);
    g = guess_find(id, ip_or(ip), now, 1);
    if (g && g->count < IDENTITY_GUESS_LIMIT * 100)
        g->count++;
    pthread_mutex_unlock(&id->guess_lock);
}

/* ---- forms, cookies, pages ------------------------------------------- */

int identity_form_get(const char *body, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name), i = 0, end, klen;
    const char *amp, *eq;
    long n;

    if (cap)
        out[0] = '\0';
    while (body && i < len) {
        amp = memchr(body + i, '&', len - i);
        end = amp ? (size_t)(amp - body) : len;
        eq = memchr(body + i, '=', end - i);
        klen = eq ? (size_t)(eq - (body + i)) : end - i;
        if (klen == nlen && memcmp(body + i, name, nlen) == 0) {
            if (!eq) {
                out[0] = '\0';
                return SPELL_OK;
            }
            n = router_decode(eq + 1, end - (size_t)(eq + 1 - body), out, cap, 1);
            if (n < 0)
                return SPELL_ETOOBIG;
            for (i = 0; i < (size_t)n; i++) {
                if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) {
                    out[0] = '\0';
                    return SPELL_EINVAL;
                }
            }
            return SPELL_OK;
        }
        i = end + 1;
    }
    return SPELL_ENOTFOUND;
}

int identity_html_escape(struct spell_buf *b, const char *s)
{
    int rc = SPELL_OK;

    for (; s && *s && rc == SPELL_OK; s++) {
        switch (*s) {
        case '&':
            rc = spell_buf_addstr(b, "&amp;");
            break;
        case '<':
            rc = spell_buf_addstr(b, "&lt;");
            break;
        case '>':
            rc = spell_buf_addstr(b, "&gt;");
            break;
        case '"':
            rc = spell_buf_addstr(b, "&quot;");
            break;
        case '\'':
            rc = spell_buf_addstr(b, "&#39;");
            break;
        default:
            rc = spell_buf_addc(b, *s);
        }
    }
    return rc;
}

int identity_page(int status, const char *title, const char *text, const char *raw_html,
                  struct response **out)
{
    struct spell_buf b;
    int rc;

    *out = NULL;
    spell_buf_init(&b, IDENTITY_PAGE_MAX);
    if ((rc = spell_buf_addstr(&b, "<!doctype html>\n<html lang=\"en\"><head>"
                                   "<meta charset=\"utf-8\">"
                                   "<meta name=\"viewport\" content=\"width=device-width\">"
                                   "<title>")) ||
        (rc = identity_html_escape(&b, title)) ||
        (rc = spell_buf_addstr(&b, " - spell</title><style>"
                                   "body{font-family:sans-serif;max-width:32em;margin:3em auto;"
                                   "padding:0 1em;line-height:1.5}"
                                   "input{font-size:1.2em;padding:.3em}"
                                   "button{font-size:1em;padding:.4em 1em;margin:.3em .3em 0 0}"
                                   "</style></head><body><h1>")) ||
        (rc = identity_html_escape(&b, title)) ||
        (rc = spell_buf_addstr(&b, "</h1><p>")) ||
        (rc = identity_html_escape(&b, text)) ||
        (rc = spell_buf_addstr(&b, "</p>")) ||
        (raw_html && (rc = spell_buf_addstr(&b, raw_html))) ||
        (rc = spell_buf_addstr(&b, "</body></html>\n")))
        goto out;
    if ((rc = httpd_response_body(status, "text/html; charset=utf-8", spell_buf_str(&b), b.len,
                                  out)) != SPELL_OK)
        goto out;
    if ((rc = httpd_response_header(*out, "Content-Security-Policy", IDENTITY_CSP)) ||
        (rc = httpd_response_header(*out, "X-Frame-Options", "DENY")) ||
        (rc = httpd_response_header(*out, "Referrer-Policy", "no-referrer"))) {
        httpd_response_free(*out);
        *out = NULL;
    }
out:
    spell_buf_free(&b);
    return rc;
}

int identity_public_url(const struct server *srv, char *out, size_t cap)
{
    const char *u = srv->public_url && srv->public_url[0] ? srv->public_url
                                                           : "http://127.0.0.1:8080";
    size_t len = strlen(u);
    int n;

    while (len > 0 && u[len - 1] == '/')
        len--;
    n = snprintf(out, cap, "%.*s", (int)len, u);
    return n < 0 || (size_t)n >= cap ? SPELL_ETOOBIG : SPELL_OK;
}

int identity_cookie(const struct server *srv, const char *name, const char *value,
                    const char *path, int64_t max_age_s, char *out, size_t cap)
{
    int secure = srv->public_url && strncmp(srv->public_url, "https://", 8) == 0;
    int n;

    n = snprintf(out, cap, "%s=%s; Path=%s; Max-Age=%lld; HttpOnly; SameSite=Lax%s", name,
                 value ? value : "", path, value ? (long long)max_age_s : 0LL,
                 secure ? "; Secure" : "");
    return n < 0 || (size_t)n >= cap ? SPELL_ETOOBIG : SPELL_OK;
}

int identity_cookie_get(const char *header, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name), vlen;
    const char *p = header, *v, *end;

    out[0] = '\0';
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        end = strchr(p, ';');
        if (!end)
            end = p + strlen(p);
        if ((size_t)(end - p) > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            v = p + nlen + 1;
            vlen = (size_t)(end - v);
            while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            if (vlen >= cap)
                return SPELL_ETOOBIG;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return SPELL_OK;
        }
        p = end;
    }
    return SPELL_ENOTFOUND;
}

/* ---- routes ---------------------------------------------------------- */

static const struct route identity_rows[] = {
    {"GET", "/auth/github", identity_h_github, NULL, ROUTE_NO_BODY, 0},
    {"GET", "/auth/github/callback", identity_h_callback, NULL, ROUTE_NO_BODY, 0},
    {"POST", "/v1/auth/device", identity_h_device_start, NULL, 0, 4096},
    {"POST", "/v1/auth/token", identity_h_token, NULL, 0, 4096},
    {"GET", "/device", identity_h_device_page, NULL, ROUTE_NO_BODY, 0},
    {"POST", "/device", identity_h_device_form, NULL, 0, 4096},
};

int identity_routes(struct server *srv, const struct route **rows, size_t *n)
{
    if (!srv || !rows || !n)
        return SPELL_EINVAL;
    *rows = identity_rows;
    *n = sizeof identity_rows / sizeof identity_rows[0];
    return SPELL_OK;
}
