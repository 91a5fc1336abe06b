/*
 * GET /healthz and GET /metrics: the two unauthenticated endpoints an
 * operator's load balancer and Prometheus read.
 *
 * /healthz pings the store on every call (a cheap SELECT), so a server
 * whose database went away answers 503 UNAVAILABLE and is taken out of
 * rotation.  /metrics renders the registry every part registered its
 * families in (requests and latency by route from the HTTP layer, casts,
 * budget rejections, run durations and execution errors from the cast
 * path) plus spell_build_info, in the Prometheus text format 0.0.4.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/version.h"

#include "httpd.h"
#include "metrics.h"
#include "routes.h"
#include "server.h"
#include "store.h"

int health_healthz(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    cJSON *body = NULL;
    int rc = SPELL_ENOMEM;

    (void)req;
    if (!srv->store || store_ping(srv->store) != SPELL_OK) {
        rc = httpd_response_error(SPELL_ERR_UNAVAILABLE, "The store does not answer.", NULL,
                                  out);
        goto out;
    }
    body = cJSON_CreateObject();
    if (!body || !cJSON_AddStringToObject(body, "status", "ok") ||
        !cJSON_AddStringToObject(body, "version", spell_version()))
        goto out;
    rc = httpd_response_json(200, body, out);
out:
    cJSON_Delete(body);
    return rc;
}

int health_metrics(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct spell_buf text;
    int rc;

    (void)req;
    spell_buf_init(&text, HEALTH_METRICS_MAX);
    if (srv->metrics && (rc = metrics_render(srv->metrics, &text)) != SPELL_OK)
        goto out;
    rc = httpd_response_body(200, "text/plain; version=0.0.4; charset=utf-8",
                             text.len ? text.ptr : "", text.len, out);
out:
    spell_buf_free(&text);
    return rc;
}

int health_routes(struct server *srv, struct route *rows, size_t cap, size_t *n)
{
    if (!rows || !n || cap < HEALTH_ROUTES)
        return SPELL_ETOOBIG;
    rows[0] = (struct route){ "GET", "/healthz", health_healthz, srv, ROUTE_NO_BODY, 0 };
    rows[1] = (struct route){ "GET", "/metrics", health_metrics, srv, ROUTE_NO_BODY, 0 };
    *n = HEALTH_ROUTES;
    return SPELL_OK;
}
