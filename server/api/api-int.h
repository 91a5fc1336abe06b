/*
 * Internals shared by the api part's files (casts.c, budgets.c, spells.c,
 * privacy.c, api.c): each resource file's route handlers, the helpers that
 * turn store rows into the resources of DESIGN.md §2, and the error
 * answers every handler gives the same way.
 *
 * A handler's ud is the struct server; the principal is the one the
 * authenticate hook set on the request (ROUTE_AUTH rows only).
 */
#ifndef SPELL_SERVER_API_INT_H
#define SPELL_SERVER_API_INT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "spell/errors.h"

#include "httpd.h"
#include "server.h"
#include "store.h"

/* The other parts this one calls: the rate limits and the key cache
 * (auth), the executor and the cast lifecycle (exec). */
#include "auth.h"
#include "exec.h"
#include "lifecycle.h"
#include "ratelimit.h"

/* Cap of one JSON answer built by this part (a page of 100 casts with
 * their messages and URLs fits well inside it). */
#define API_JSON_MAX ((size_t)4 * 1024 * 1024)

/* Room for a dotted field name or a reason sentence in error details. */
#define API_REASON_MAX 512

/* Route handlers, one set per resource file. */
int casts_cast(struct request *req, struct response **out, void *ud);
int casts_list(struct request *req, struct response **out, void *ud);
int casts_get(struct request *req, struct response **out, void *ud);
int casts_cancel(struct request *req, struct response **out, void *ud);
int casts_events(struct request *req, struct response **out, void *ud);
int budgets_get(struct request *req, struct response **out, void *ud);
int budgets_post(struct request *req, struct response **out, void *ud);
int budgets_put(struct request *req, struct response **out, void *ud);
int budgets_delete(struct request *req, struct response **out, void *ud);
int budgets_usage(struct request *req, struct response **out, void *ud);
int spells_list(struct request *req, struct response **out, void *ud);
int spells_get(struct request *req, struct response **out, void *ud);
int spells_meta(struct request *req, struct response **out, void *ud);
int spells_og(struct request *req, struct response **out, void *ud);
int privacy_export(struct request *req, struct response **out, void *ud);
int privacy_erase(struct request *req, struct response **out, void *ud);

/* Counts one cast refused 402 BUDGET_EXCEEDED for reason ("hard_limit" or
 * "budget_cap") in spell_budget_rejections_total, when registered. */
void api_budget_rejected(struct server *srv, const char *reason);

/* The caller of a ROUTE_AUTH request; NULL when the hook set none (then
 * the handler answers 401). */
const struct principal *api_principal(const struct request *req);

/* An error answer with details {"field": field, "reason": reason} (400
 * VALIDATION_ERROR and the like); field NULL leaves it out. */
int api_error_field(enum spell_api_error e, const char *field, const char *reason,
                    struct response **out);

/* An error answer with the catalog's sentence and no details. */
int api_error(enum spell_api_error e, struct response **out);

/* A JSON answer from a tree the function consumes (deletes), also on
 * failure. */
int api_json(int status, cJSON *body, struct response **out);

/* Appends to out the public base URL (srv->public_url without a trailing
 * '/', nothing when unset) and then path. */
int api_url(const struct server *srv, const char *path, struct spell_buf *out);

/* The cast resource (models.h) of a stored cast; NULL when memory runs
 * out or a stored value cannot be written. */
cJSON *api_cast_json(const struct store_cast *c);

/* The catalog fields of a spell (not its execution config, which stays
 * private to the server); NULL when memory runs out or a stored JSON text
 * does not parse. */
cJSON *api_spell_json(const struct store_spell *sp);

/* The pricing object of a spell: {} for free, {flat_cents} for flat,
 * {base_cents, per_kb_cents} for metered. */
cJSON *api_pricing_json(const struct store_spell *sp);

/* Parses a request body (already capped by the layer) strictly into an
 * object; on failure *out is the 400 (or 413) to send and the result is
 * SPELL_EINVAL.  An empty body is refused the same way. */
int api_body_object(struct request *req, cJSON **obj, struct response **out);

/* Checks that obj has no member outside names[0..n-1]; on an unknown one,
 * *out is the 400 naming it and the result is SPELL_EINVAL. */
int api_only_fields(const cJSON *obj, const char *const *names, size_t n, struct response **out);

#endif
