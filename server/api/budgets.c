/*
 * Budgets and usage: GET, POST, PUT and DELETE /v1/budgets and
 * GET /v1/budgets/usage (DESIGN.md §2 "budget" and "usage").
 *
 * Every budget call works on the current UTC calendar month, read from the
 * server's clock.  A limit set here is a standing limit (store.h): it
 * governs this period and every later one until it is changed or cleared.
 *
 *   GET     the limits in force: {period, hard_limit_cents, soft_limit_cents
 *           or null}
 *   POST    creates or replaces both limits: hard_limit_cents is required,
 *           soft_limit_cents absent or null means no soft limit
 *   PUT     updates: a member left out keeps its current value; a
 *           soft_limit_cents of null removes the soft limit
 *   DELETE  back to the $50 default with no soft limit; 204
 *
 * POST and PUT check the result with spell_budget_validate() (hard limit
 * 1000..50000 cents, soft limit at most the hard limit) and answer 200
 * with the budget as it now is.  Unknown members are refused.
 *
 * Usage takes ?period=YYYY-MM (exactly that form; default the current
 * month) and answers the usage resource with daily and by_spell.
 */
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/json.h"
#include "spell/models.h"

#include "api-int.h"

static const char *const budget_fields[] = {"hard_limit_cents", "soft_limit_cents"};

static int current_period(const struct server *srv, char period[STORE_PERIOD_SIZE])
{
    return spell_time_period(srv_now_ms(&srv->clock), period, STORE_PERIOD_SIZE);
}

/* The budget resource of a store budget. */
static cJSON *budget_json(const struct store_budget *b)
{
    struct spell_budget m;

    memset(&m, 0, sizeof m);
    snprintf(m.period, sizeof m.period, "%s", b->period);
    m.hard_limit_cents = b->hard_limit_cents;
    m.has_soft_limit = b->soft_limit_cents >= 0;
    m.soft_limit_cents = b->soft_limit_cents;
    return spell_budget_to_json(&m);
}

static int answer_budget(struct server *srv, const struct principal *p, const char *period,
                         int status, struct response **out)
{
    struct store_budget b;
    int rc;

    if ((rc = store_budget_get(srv->store, p->user_id, period, &b)) != SPELL_OK)
        return rc;
    return api_json(status, budget_json(&b), out);
}

int budgets_get(struct request *req, struct response **out, void *ud)
{
    const struct principal *p = api_principal(req);
    char period[STORE_PERIOD_SIZE];
    int rc;

    if (!p)
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    if ((rc = current_period(ud, period)) != SPELL_OK)
        return rc;
    return answer_budget(ud, p, period, 200, out);
}

/* POST (replace = 1) and PUT (replace = 0). */
static int budgets_write(struct request *req, struct response **out, void *ud, int replace)
{
    struct server *srv = ud;
    const struct principal *p = api_principal(req);
    char period[STORE_PERIOD_SIZE];
    char err[API_REASON_MAX] = "";
    struct spell_json_at at = {NULL, "", err, sizeof err};
    struct store_budget cur;
    struct spell_budget nb;
    const cJSON *soft;
    cJSON *j = NULL;
    bool has_hard = false;
    int rc;

    if (!p)
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    if ((rc = api_body_object(req, &j, out)) != SPELL_OK)
        return rc == SPELL_EINVAL ? SPELL_OK : rc;
    if ((rc = api_only_fields(j, budget_fields, 2, out)) != SPELL_OK) {
        rc = rc == SPELL_EINVAL ? SPELL_OK : rc;
        goto out;
    }
    if ((rc = current_period(srv, period)) != SPELL_OK ||
        (rc = store_budget_get(srv->store, p->user_id, period, &cur)) != SPELL_OK)
        goto out;
    memset(&nb, 0, sizeof nb);
    snprintf(nb.period, sizeof nb.period, "%s", period);
    nb.hard_limit_cents = cur.hard_limit_cents;
    nb.has_soft_limit = !replace && cur.soft_limit_cents >= 0;
    nb.soft_limit_cents = nb.has_soft_limit ? cur.soft_limit_cents : 0;
    at.obj = j;
    rc = spell_json_get_int64(&at, "hard_limit_cents",
                              replace ? SPELL_JSON_REQUIRED : SPELL_JSON_OPTIONAL,
                              &nb.hard_limit_cents, &has_hard);
    if (rc == SPELL_EINVAL) {
        rc = api_error_field(SPELL_ERR_VALIDATION_ERROR, "hard_limit_cents", err, out);
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    soft = cJSON_GetObjectItemCaseSensitive(j, "soft_limit_cents");
    if (soft && cJSON_IsNull(soft)) {
        nb.has_soft_limit = false;
    } else if (soft) {
        bool present = false;

        rc = spell_json_get_int64(&at, "soft_limit_cents", SPELL_JSON_OPTIONAL,
                                  &nb.soft_limit_cents, &present);
        if (rc == SPELL_EINVAL) {
            rc = api_error_field(SPELL_ERR_VALIDATION_ERROR, "soft_limit_cents", err, out);
            goto out;
        }
        if (rc != SPELL_OK)
            goto out;
        nb.has_soft_limit = present;
    }
    err[0] = '\0';
    if (spell_budget_validate(&nb, err, sizeof err) != SPELL_OK) {
        const char *field = strstr(err, "soft_limit") ? "soft_limit_cents" : "hard_limit_cents";

        rc = api_error_field(SPELL_ERR_VALIDATION_ERROR, field, err, out);
        goto out;
    }
    if ((rc = store_budget_set(srv->store, p->user_id, period, nb.hard_limit_cents,
                               nb.has_soft_limit ? nb.soft_limit_cents : -1,
                               srv_now_ms(&srv->clock))) != SPELL_OK)
        goto out;
    rc = answer_budget(srv, p, period, 200, out);
out:
    cJSON_Delete(j);
    return rc;
}

int budgets_post(struct request *req, struct response **out, void *ud)
{
    return budgets_write(req, out, ud, 1);
}

int budgets_put(struct request *req, struct response **out, void *ud)
{
    return budgets_write(req, out, ud, 0);
}

int budgets_delete(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const struct principal *p = api_principal(req);
    char period[STORE_PERIOD_SIZE];
    int rc;

    if (!p)
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    if ((rc = current_period(srv, period)) != SPELL_OK ||
        (rc = store_budget_clear(srv->store, p->user_id, period)) != SPELL_OK)
        return rc;
    return httpd_response_body(204, NULL, NULL, 0, out);
}

/* "YYYY-MM" exactly, a real month. */
static int period_valid(const char *s)
{
    int y, m;

    if (strlen(s) != 7)
        return 0;
    for (int i = 0; i < 7; i++)
        if (i == 4 ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return 0;
    return spell_period_parse(s, &y, &m) == SPELL_OK;
}

static cJSON *usage_json(const struct store_usage *u)
{
    cJSON *j = cJSON_CreateObject(), *daily, *spells, *o;
    const struct store_budget *b = &u->budget;
    size_t i;

    if (!j || spell_json_add_string(j, "period", b->period) ||
        spell_json_add_int64(j, "calls", u->calls) ||
        spell_json_add_int64(j, "spent_cents", u->spent_cents) ||
        spell_json_add_int64(j, "reserved_cents", u->reserved_cents) ||
        spell_json_add_int64(j, "hard_limit_cents", b->hard_limit_cents) ||
        (b->soft_limit_cents >= 0 ? spell_json_add_int64(j, "soft_limit_cents",
                                                          b->soft_limit_cents)
                                  : spell_json_add_string(j, "soft_limit_cents", NULL)) ||
        spell_json_add_int64(j, "remaining_cents", u->remaining_cents) ||
        !(daily = cJSON_AddArrayToObject(j, "daily")) ||
        !(spells = cJSON_AddArrayToObject(j, "by_spell")))
        goto fail;
    for (i = 0; i < u->n_daily && i < STORE_USAGE_DAYS_MAX; i++) {
        if (!(o = cJSON_CreateObject()))
            goto fail;
        if (!cJSON_AddItemToArray(daily, o)) {
            cJSON_Delete(o);
            goto fail;
        }
        if (spell_json_add_string(o, "date", u->daily[i].date) ||
            spell_json_add_int64(o, "spent_cents", u->daily[i].spent_cents) ||
            spell_json_add_int64(o, "calls", u->daily[i].calls))
            goto fail;
    }
    for (i = 0; i < u->n_by_spell && i < STORE_USAGE_SPELLS_MAX; i++) {
        if (!(o = cJSON_CreateObject()))
            goto fail;
        if (!cJSON_AddItemToArray(spells, o)) {
            cJSON_Delete(o);
            goto fail;
        }
        if (spell_json_add_string(o, "spell_key", u->by_spell[i].spell_key) ||
            spell_json_add_int64(o, "spent_cents", u->by_spell[i].spent_cents) ||
            spell_json_add_int64(o, "calls", u->by_spell[i].calls))
            goto fail;
    }
    return j;
fail:
    cJSON_Delete(j);
    return NULL;
}

int budgets_usage(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const struct principal *p = api_principal(req);
    const char *q = httpd_request_query(req, "period");
    char period[STORE_PERIOD_SIZE];
    struct store_usage *u;
    int rc;

    if (!p)
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    if (q) {
        if (!period_valid(q))
            return api_error_field(SPELL_ERR_VALIDATION_ERROR, "period",
                                   "period must be a month written YYYY-MM", out);
        snprintf(period, sizeof period, "%s", q);
    } else if ((rc = current_period(srv, period)) != SPELL_OK) {
        return rc;
    }
    if (!(u = calloc(1, sizeof *u)))       /* some 10 KiB: kept off the stack */
        return SPELL_ENOMEM;
    if ((rc = store_usage_get(srv->store, p->user_id, period, u)) == SPELL_OK)
        rc = api_json(200, usage_json(u), out);
    free(u);
    return rc;
}
