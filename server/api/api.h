/*
 * The api part of spell-server: the handlers for casts, budgets and usage,
 * spells and privacy (DESIGN.md §3), and the manifest import behind
 * `spell-server spells import`.
 *
 * Data flow.  main.c asks api_routes() for this part's route rows and adds
 * them to the one route table; every row's ud is the struct server, so a
 * handler reaches the store, the SSE hub, the executor, the rate limiter
 * and the clock through it.  Each resource has its own file:
 *
 *   casts.c    POST /v1/spells/{key}:cast (the 11 steps of DESIGN.md §3
 *              "Cast": rate limit, idempotency, body and schema checks,
 *              estimate, atomic reservation, hand-off to the executor),
 *              GET /v1/casts, GET /v1/casts/{id}, POST /v1/casts/{id}:cancel,
 *              GET /v1/casts/{id}/events (SSE with resume)
 *   budgets.c  GET/POST/PUT/DELETE /v1/budgets, GET /v1/budgets/usage
 *   spells.c   GET /v1/spells, GET /v1/spells/{key}, and the public
 *              GET /v1/spells/{key}/meta and GET /spells/{key}/og; the
 *              manifest import
 *   privacy.c  GET /v1/users/me/export, DELETE /v1/users/me
 *
 * Authenticated rows carry ROUTE_AUTH, so the server's authenticate hook
 * has set the principal before a handler runs; the public rows call the
 * per-IP rate limit themselves.  Handlers are stateless and run on any of
 * the HTTP layer's threads at once; everything they share lives in the
 * store (one transaction per money path) or behind the hub's locks.
 *
 * What other parts provide: the authenticate hook, ratelimit_cast_check(),
 * ratelimit_ip_check() and auth_key_cache_drop() (server/auth/),
 * exec_submit(), exec_cancel() and lifecycle_publish_pending()
 * (server/exec/), srv_now_ms() (server/server.c).
 */
#ifndef SPELL_SERVER_API_H
#define SPELL_SERVER_API_H

#include <stddef.h>

#include "router.h"

struct server;

/* A manifest file is read up to this many bytes (1 MiB). */
#define API_MANIFEST_MAX ((size_t)1024 * 1024)

/* Default and largest page of GET /v1/casts. */
#define API_CASTS_PAGE_DEFAULT 20
#define API_CASTS_PAGE_MAX 100

/*
 * This part's route rows, in a table owned by the part (static, read-only,
 * valid for the life of the process); *n receives their number.  The rows'
 * ud must be srv: since the table is shared, the rows carry ud = NULL and
 * the caller copies them into its own table, setting ud = srv on each.
 * srv is accepted so a later version can pick rows by configuration.
 * SPELL_EINVAL for NULL arguments.
 */
int api_routes(struct server *srv, const struct route **rows, size_t *n);

/*
 * Registers this part's metric families in srv->metrics and keeps their
 * handles in srv: spell_budget_rejections_total{code,reason}, the casts
 * refused 402 BUDGET_EXCEEDED, with reason "hard_limit" (the budget's hard
 * limit would be passed) or "budget_cap" (the estimate is above the
 * request's budget_cap_cents); both series start at 0.  A replayed
 * answer is not counted again.  SPELL_OK without a registry.
 */
int api_metrics_register(struct server *srv);

/*
 * Imports a manifest: a file holding one spell object or a JSON array of
 * them (DESIGN.md §2), read up to API_MANIFEST_MAX bytes.  Each spell is
 * decoded with spell_spell_from_json(), its inputs_schema checked with
 * spell_schema_check(), and for execution_mode "service" its execution
 * checked: "command" a non-empty array of non-empty strings, where a
 * relative path naming a file in the manifest's folder (and the program,
 * the first element, whenever it is relative and holds a '/') is stored as
 * an absolute path; "timeout_s" 1..3600 and "memory_mb" 1..65536 when
 * given.
 * Then every spell is upserted with store_spell_upsert().  Nothing is
 * written unless every spell of the file is valid.
 *
 * On failure err (errlen bytes, may be 0) receives one line naming the
 * spell and field at fault.  *imported (may be NULL) receives the number of
 * spells written.  SPELL_EIO when the file cannot be read, SPELL_ETOOBIG
 * past the cap, SPELL_EPARSE for malformed JSON, SPELL_EINVAL for an
 * invalid spell, or the store's failure.
 */
int api_spells_import_file(struct server *srv, const char *path, char *err, size_t errlen,
                           int *imported);

#endif
