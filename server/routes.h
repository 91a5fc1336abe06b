/*
 * The route table of spell-server and the health endpoints.
 *
 * routes_build() concatenates, in this order, the health rows of this
 * file (GET /healthz, GET /metrics), the auth part's rows (auth_routes():
 * /v1/auth/..., /v1/keys...) and the api part's rows (api_routes():
 * spells, casts, budgets, usage, GDPR).  Every row's ud is the struct
 * server.  The table is built once before httpd_start() and is read-only
 * while the daemon runs; the router takes the first row that matches, so
 * the parts must not register the same method and pattern twice
 * (routes_build() refuses a duplicate with SPELL_EINVAL).
 */
#ifndef SPELL_SERVER_ROUTES_H
#define SPELL_SERVER_ROUTES_H

#include <stddef.h>

#include "server.h"

struct route;
struct request;
struct response;

/* Rows of the table, all parts together. */
#define ROUTES_MAX 128

/* The health rows, with ud = srv, written into rows (cap entries); *n
 * receives the count.  SPELL_ETOOBIG when cap is too small. */
#define HEALTH_ROUTES 2
int health_routes(struct server *srv, struct route *rows, size_t cap, size_t *n);

/* GET /healthz: {"status":"ok","version":"x.y.z"}, or 503 UNAVAILABLE
 * when store_ping() fails.  ud is the struct server. */
int health_healthz(struct request *req, struct response **out, void *ud);

/* GET /metrics: metrics_render() as text/plain; version=0.0.4. */
int health_metrics(struct request *req, struct response **out, void *ud);

/* Bytes GET /metrics may render. */
#define HEALTH_METRICS_MAX ((size_t)4 * 1024 * 1024)

/* The whole table; *rows is a heap array the caller frees with
 * routes_free() once the daemon has stopped. */
int routes_build(struct server *srv, struct route **rows, size_t *n);
void routes_free(struct route *rows);

/* The merge behind routes_build(): the rows of parts[0..nparts) (counts[i]
 * rows each) copied in order into one heap table, each row's NULL ud set
 * to srv.  SPELL_EINVAL for a row without method, pattern or handler or a
 * method and pattern given twice, SPELL_ETOOBIG past ROUTES_MAX rows. */
int routes_merge(struct server *srv, const struct route *const *parts, const size_t *counts,
                 size_t nparts, struct route **rows, size_t *n);

#endif
