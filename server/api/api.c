/*
 * The api part's route table and the helpers its resource files share:
 * error answers, JSON answers, public URLs, and the conversion of store
 * rows into the resources of DESIGN.md §2.
 *
 * Data flow: main.c copies the rows of api_routes() into the server's one
 * route table with ud = the struct server; the HTTP layer then calls the
 * handlers of casts.c, budgets.c, spells.c and privacy.c, which read and
 * write through the store and answer with the helpers below.
 */
#include <stdlib.h>
#include <string.h>

#include "spell/buf.h"
#include "spell/json.h"
#include "spell/models.h"

#include "api.h"
#include "metrics.h"
#include "api-int.h"

/*
 * Every answer of this part carries the RateLimit-Policy and RateLimit
 * fields of the policies its request consumed (ratelimit.h); the wrappers
 * below add them in one place, after the handler.
 */
#define WITH_RATE_HEADERS(name)                                                         \
    static int rated_##name(struct request *req, struct response **out, void *ud)     \
    {                                                                                   \
        int rc = name(req, out, ud);                                                    \
        if (rc == SPELL_OK && *out)                                                     \
            ratelimit_headers(req, *out);                                               \
        return rc;                                                                      \
    }

WITH_RATE_HEADERS(casts_cast)
WITH_RATE_HEADERS(casts_list)
WITH_RATE_HEADERS(casts_get)
WITH_RATE_HEADERS(casts_cancel)
WITH_RATE_HEADERS(casts_events)
WITH_RATE_HEADERS(budgets_get)
WITH_RATE_HEADERS(budgets_post)
WITH_RATE_HEADERS(budgets_put)
WITH_RATE_HEADERS(budgets_delete)
WITH_RATE_HEADERS(budgets_usage)
WITH_RATE_HEADERS(spells_list)
WITH_RATE_HEADERS(spells_get)
WITH_RATE_HEADERS(spells_meta)
WITH_RATE_HEADERS(spells_og)
WITH_RATE_HEADERS(privacy_export)
WITH_RATE_HEADERS(privacy_erase)

/*
 * The rows.  ud is NULL here: the table is shared read-only data, and the
 * caller sets ud = srv in its own copy (see api.h).  Routes without a
 * body carry ROUTE_NO_BODY; the cast route keeps the layer's 64 KiB cap.
 */
static const struct route api_rows[] = {
    {"POST", "/v1/spells/{key}:cast", rated_casts_cast, NULL, ROUTE_AUTH, 0},
    {"GET", "/v1/casts", rated_casts_list, NULL, ROUTE_AUTH | ROUTE_NO_BODY, 0},
    {"GET", "/v1/casts/{id}", rated_casts_get, NULL, ROUTE_AUTH | ROUTE_NO_BODY, 0},
    {"POST", "/v1/casts/{id}:cancel", rated_casts_cancel, NULL, ROUTE_AUTH, 0},
    {"GET", "/v1/casts/{id}/events", rated_casts_events, NULL, ROUTE_AUTH | ROUTE_NO_BODY, 0},
    {"GET", "/v1/budgets", rated_budgets_get, NULL, ROUTE_AUTH | ROUTE_NO_BODY, 0},
    {"POST", "/v1/budgets", rated_budgets_post, NULL, ROUTE_AUTH, 0},
    {"PUT", "/v1/budgets", rated_budgets_put, NULL, ROUTE_AUTH, 0},
    {"DELETE", "/v1/budgets", rated_budgets_delete, NULL, ROUTE_AUTH | ROUTE_NO_BODY, 0},
    {"GET", "/v1/budgets/usage", rated_budgets_usage, NULL, ROUTE_AUTH | ROUTE_NO_BODY, 0},
    {"GET", "/v1/spells", rated_spells_list, NULL, ROUTE_AUTH | ROUTE_NO_BODY, 0},
    {"GET", "/v1/spells/{key}", rated_spells_get, NULL, ROUTE_AUTH | ROUTE_NO_BODY, 0},
    {"GET", "/v1/spells/{key}/meta", rated_spells_meta, NULL, ROUTE_NO_BODY, 0},
    {"GET", "/spells/{key}/og", rated_spells_og, NULL, ROUTE_NO_BODY, 0},
    {"GET", "/v1/users/me/export", rated_privacy_export, NULL, ROUTE_AUTH | ROUTE_NO_BODY, 0},
    {"DELETE", "/v1/users/me", rated_privacy_erase, NULL, ROUTE_AUTH | ROUTE_NO_BODY, 0},
};

int api_routes(struct server *srv, const struct route **rows, size_t *n)
{
    if (!srv || !rows || !n)
        return SPELL_EINVAL;
    *rows = api_rows;
    *n = sizeof api_rows / sizeof api_rows[0];
    return SPELL_OK;
}

int api_metrics_register(struct server *srv)
{
    static const char *const labels[] = {"code", "reason"};
    static const char *const reasons[] = {"hard_limit", "budget_cap"};
    struct metric *f = NULL;
    int rc;

    if (!srv)
        return SPELL_EINVAL;
    if (!srv->metrics)
        return SPELL_OK;
    rc = metrics_counter(srv->metrics, "spell_budget_rejections_total",
                         "Casts refused 402 BUDGET_EXCEEDED, by reason.", labels, 2, 8, &f);
    for (size_t i = 0; rc == SPELL_OK && i < sizeof reasons / sizeof reasons[0]; i++) {
        const char *values[2] = {"BUDGET_EXCEEDED", reasons[i]};
        rc = metrics_add(f, values, 0);
    }
    if (rc == SPELL_OK)
        srv->budget_rejections = f;
    return rc;
}

void api_budget_rejected(struct server *srv, const char *reason)
{
    const char *values[2] = {"BUDGET_EXCEEDED", reason};

    if (srv && srv->budget_rejections)
        (void)metrics_add(srv->budget_rejections, values, 1);
}

const struct principal *api_principal(const struct request *req)
{
    return httpd_request_principal(req);
}

int api_error(enum spell_api_error e, struct response **out)
{
    return httpd_response_error(e, NULL, NULL, out);
}

int api_error_field(enum spell_api_error e, const char *field, const char *reason,
                    struct response **out)
{
    int rc = SPELL_ENOMEM;
    cJSON *d = cJSON_CreateObject();

    if (!d)
        goto out;
    if (field && !cJSON_AddStringToObject(d, "field", field))
        goto out;
    if (reason && !cJSON_AddStringToObject(d, "reason", reason))
        goto out;
    rc = httpd_response_error(e, reason, d, out);
out:
    cJSON_Delete(d);
    return rc;
}

int api_json(int status, cJSON *body, struct response **out)
{
    int rc = SPELL_ENOMEM;

    if (body)
        rc = httpd_response_json(status, body, out);
    cJSON_Delete(body);
    return rc;
}

int api_url(const struct server *srv, const char *path, struct spell_buf *out)
{
    const char *base = srv->public_url ? srv->public_url : "";
    size_t n = strlen(base);
    int rc;

    while (n > 0 && base[n - 1] == '/')
        n--;
    if ((rc = spell_buf_add(out, base, n)) != SPELL_OK)
        return rc;
    return spell_buf_addstr(out, path);
}

/* An optional stored string: "" means null. */
static char *opt(const char *s)
{
    return s[0] ? (char *)s : NULL;
}

cJSON *api_cast_json(const struct store_cast *c)
{
    struct spell_cast m;

    memset(&m, 0, sizeof m);
    if (spell_exec_mode_parse(c->mode, &m.mode) != SPELL_OK ||
        spell_cast_status_parse(c->status, &m.status) != SPELL_OK)
        return NULL;
    m.id = (char *)c->id;
    m.spell_key = (char *)c->spell_key;
    m.spell_version = (char *)c->spell_version;
    m.progress = c->progress;
    m.message = opt(c->message);
    m.input_hash = (char *)c->input_hash;
    m.estimated_cost_cents = c->estimated_cost_cents;
    m.has_cost = c->cost_cents >= 0;
    m.cost_cents = c->cost_cents;
    m.run_url = opt(c->run_url);
    m.artifact_url = opt(c->artifact_url);
    m.has_error = c->error_code[0] != '\0';
    m.error.code = (char *)c->error_code;
    m.error.message = (char *)c->error_message;
    m.created_at = c->created_at;
    m.started_at = c->started_at;
    m.finished_at = c->finished_at;
    m.has_duration = c->duration_ms >= 0 && c->finished_at != 0;
    m.duration_ms = c->duration_ms;
    return spell_cast_to_json(&m);
}

cJSON *api_pricing_json(const struct store_spell *sp)
{
    cJSON *p = cJSON_CreateObject();
    int failed = !p;

    if (!failed && strcmp(sp->pricing_model, "flat") == 0)
        failed = spell_json_add_int64(p, "flat_cents", sp->flat_cents) != SPELL_OK;
    else if (!failed && strcmp(sp->pricing_model, "metered") == 0)
        failed = spell_json_add_int64(p, "base_cents", sp->base_cents) != SPELL_OK ||
                 spell_json_add_int64(p, "per_kb_cents", sp->per_kb_cents) != SPELL_OK;
    if (failed) {
        cJSON_Delete(p);
        return NULL;
    }
    return p;
}

cJSON *api_spell_json(const struct store_spell *sp)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *schema = NULL, *pricing = NULL;
    int failed = !j;

    if (!failed && sp->inputs_schema && sp->inputs_schema[0] &&
        spell_json_parse(sp->inputs_schema, strlen(sp->inputs_schema), NULL, &schema, NULL, 0) !=
            SPELL_OK)
        failed = 1;
    if (!failed && !(pricing = api_pricing_json(sp)))
        failed = 1;
    failed = failed || spell_json_add_string(j, "key", sp->key) ||
             spell_json_add_string(j, "name", sp->name) ||
             spell_json_add_string(j, "summary", opt(sp->summary)) ||
             spell_json_add_string(j, "version", sp->version) ||
             spell_json_add_string(j, "status", sp->status) ||
             spell_json_add_string(j, "execution_mode", sp->execution_mode) ||
             spell_json_add_string(j, "pricing_model", sp->pricing_model) ||
             !cJSON_AddItemToObject(j, "pricing", pricing);
    if (!failed)
        pricing = NULL;     /* j owns it */
    failed = failed || spell_json_add_copy(j, "inputs_schema", schema) ||
             spell_json_add_int64(j, "avg_cost_cents", sp->avg_cost_cents) ||
             spell_json_add_int64(j, "avg_duration_ms", sp->avg_duration_ms);
    cJSON_Delete(schema);
    cJSON_Delete(pricing);
    if (failed) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

int api_body_object(struct request *req, cJSON **obj, struct response **out)
{
    char err[256] = "";
    struct spell_json_limits lim = {HTTPD_BODY_CAP, 0};
    const char *body;
    size_t len = 0;
    int rc;

    *obj = NULL;
    body = httpd_request_body(req, &len);
    if (!body || len == 0) {
        if ((rc = api_error_field(SPELL_ERR_VALIDATION_ERROR, "body",
                                  "the request body must be a JSON object", out)) != SPELL_OK)
            return rc;
        return SPELL_EINVAL;
    }
    rc = spell_json_parse(body, len, &lim, obj, err, sizeof err);
    if (rc == SPELL_ETOOBIG) {
        if ((rc = api_error(SPELL_ERR_PAYLOAD_TOO_LARGE, out)) != SPELL_OK)
            return rc;
        return SPELL_EINVAL;
    }
    if (rc == SPELL_ENOMEM)
        return rc;
    if (rc != SPELL_OK || !cJSON_IsObject(*obj)) {
        cJSON_Delete(*obj);
        *obj = NULL;
        if ((rc = api_error_field(SPELL_ERR_VALIDATION_ERROR, "body",
                                  err[0] ? err : "the request body must be a JSON object",
                                  out)) != SPELL_OK)
            return rc;
        return SPELL_EINVAL;
    }
    return SPELL_OK;
}

int api_only_fields(const cJSON *obj, const char *const *names, size_t n, struct response **out)
{
    const cJSON *m;
    size_t i;
    int rc;

    cJSON_ArrayForEach(m, obj) {
        for (i = 0; i < n; i++)
            if (strcmp(m->string, names[i]) == 0)
                break;
        if (i == n) {
            /* The name goes into details only: it is the caller's text,
             * valid UTF-8 of any length up to the body cap. */
            if ((rc = api_error_field(SPELL_ERR_VALIDATION_ERROR, m->string,
                                      "this field is not known", out)) != SPELL_OK)
                return rc;
            return SPELL_EINVAL;
        }
    }
    return SPELL_OK;
}
