/*
 * One-shot GET requests on the loop's curl multi: GET /v1/auth/me when
 * signing in, GET /v1/casts/{id} for a finished stream's final state and
 * for polling.  The body is collected (at most AGENT_RESPONSE_MAX bytes)
 * and handed to a done callback in the loop thread, so none of this needs
 * a thread of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"

#include "agent.h"

/* A one-shot request may take this long in all. */
#define HTTP_GET_TIMEOUT_MS 30000L

struct http_get {
    struct http_get *next;
    struct agent *a;
    struct spell_http_stream *stream;
    struct spell_buf body;
    http_get_done_fn done;
    void *user;
};

static void get_unlink(struct agent *a, struct http_get *g)
{
    for (struct http_get **pp = &a->gets; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            return;
        }
    }
}

static int on_data(struct spell_http_stream *s, const char *data, size_t len, void *user)
{
    struct http_get *g = user;

    return spell_buf_add(&g->body, data, len) == SPELL_OK ? 0 : 1;
}

static void on_done(struct spell_http_stream *s, int rc, int status, const char *error,
                    void *user)
{
    struct http_get *g = user;
    struct agent *a = g->a;

    get_unlink(a, g);
    if (rc == SPELL_EABORT)
        rc = SPELL_ETOOBIG;     /* only the body cap aborts */
    g->done(a, rc, status, spell_buf_str(&g->body), g->body.len, g->user);
    spell_buf_free(&g->body);
    free(g);
}

int http_get_start(struct agent *a, const char *path, const char *bearer, http_get_done_fn done,
                   void *user)
{
    struct spell_http_stream_config cfg = {0};
    struct http_get *g;
    char url[SPELL_HTTP_MAX_URL];
    int rc;

    if ((size_t)snprintf(url, sizeof(url), "%s%s", a->opt.api_url, path) >= sizeof(url))
        return SPELL_ETOOBIG;
    g = calloc(1, sizeof(*g));
    if (!g)
        return SPELL_ENOMEM;
    g->a = a;
    g->done = done;
    g->user = user;
    spell_buf_init(&g->body, AGENT_RESPONSE_MAX);
    cfg.url = url;
    cfg.bearer = bearer;
    cfg.timeout_ms = HTTP_GET_TIMEOUT_MS;
    cfg.on_data = on_data;
    cfg.on_done = on_done;
    cfg.user = g;
    rc = spell_http_multi_add(a->multi, &cfg, &g->stream);
    if (rc != SPELL_OK) {
        spell_buf_free(&g->body);
        free(g);
        return rc;
    }
    g->next = a->gets;
    a->gets = g;
    return SPELL_OK;
}

void http_get_cancel_all(struct agent *a)
{
    while (a->gets) {
        struct http_get *g = a->gets;

        a->gets = g->next;
        spell_http_multi_remove(a->multi, g->stream);
        g->done(a, SPELL_EABORT, 0, "", 0, g->user);
        spell_buf_free(&g->body);
        free(g);
    }
}
