/*
 * What the agent tells others about casts: "event" notifications to the
 * connections that called events.subscribe, answers to cast.wait callers,
 * and desktop notifications.
 *
 * Every change of a local cast that someone may care about goes through
 * events_emit() with one of the kinds of docs/agent.md; when the cast is
 * final, the waiters for it are answered there too.  A subscriber that
 * lets AGENT_MAX_PENDING_EVENTS bytes pile up is disconnected
 * (server_client_send()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "spell/money.h"

#include "agent.h"
#include "desktop/desktop.h"

struct waiter {
    struct waiter *next;
    struct rpc_call *call;
    char local_id[AGENT_LOCAL_ID_MAX + 1];
    int64_t deadline;           /* 0: none */
};

static void waiter_answer(struct agent *a, struct waiter *w, const struct lcast *c)
{
    struct lcast own = {0};
    cJSON *j;

    if (!c) {
        if (queue_get(a->queue, w->local_id, &own) != SPELL_OK) {
            rpc_error(a, w->call, AGENT_ERR_NO_SUCH_CAST, "no such cast", NULL);
            return;
        }
        c = &own;
    }
    j = lcast_to_json(c);
    if (j)
        rpc_reply(a, w->call, j);
    else
        rpc_error(a, w->call, AGENT_ERR_INTERNAL, "out of memory", NULL);
    lcast_free(&own);
}

static void answer_waiters(struct agent *a, const struct lcast *c)
{
    struct waiter **pp = &a->waiters;

    while (*pp) {
        struct waiter *w = *pp;

        if (strcmp(w->local_id, c->local_id) == 0) {
            *pp = w->next;
            waiter_answer(a, w, c);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

void events_emit(struct agent *a, const char *kind, const struct lcast *c, int64_t seq,
                 const char *log)
{
    cJSON *msg = NULL, *params = NULL, *cast = NULL;
    char *text = NULL;

    for (struct client *cl = a->clients; cl; cl = cl->next) {
        if (cl->subscribed && !cl->dead)
            goto build;
    }
    goto out;
build:
    msg = cJSON_CreateObject();
    params = cJSON_CreateObject();
    cast = lcast_to_json(c);
    if (!msg || !params || !cast || !cJSON_AddStringToObject(msg, "jsonrpc", "2.0") ||
        !cJSON_AddStringToObject(msg, "method", "event") ||
        spell_json_add_string(params, "kind", kind) ||
        (seq > 0 && spell_json_add_int64(params, "seq", seq)) ||
        (log && spell_json_add_string(params, "log", log)))
        goto out;
    cJSON_AddItemToObject(params, "cast", cast);
    cast = NULL;
    cJSON_AddItemToObject(msg, "params", params);
    params = NULL;
    text = cJSON_PrintUnformatted(msg);
    if (!text)
        goto out;
    for (struct client *cl = a->clients; cl; cl = cl->next) {
        if (cl->subscribed)
            server_client_send(cl, text, strlen(text), true);
    }
out:
    if (msg && !text)
        agent_log("events: out of memory; a %s notification was not sent", kind);
    /* Subscribers hear of the end first, then the waiters get it. */
    if (lcast_state_is_final(c->state))
        answer_waiters(a, c);
    free(text);
    cJSON_Delete(cast);
    cJSON_Delete(params);
    cJSON_Delete(msg);
}

void events_notify(struct agent *a, const char *summary, const char *body, bool critical)
{
    struct desktop_note n = {0};

    agent_log("notify: %s%s%s", summary, body ? ": " : "", body ? body : "");
    if (!a->desktop || !a->opt.notifications)
        return;
    n.summary = summary;
    n.body = body;
    n.urgency = critical ? DESKTOP_URGENCY_CRITICAL : DESKTOP_URGENCY_NORMAL;
    n.icon = "spell";
    if (desktop_notify(a->desktop, &n) != SPELL_OK)
        agent_log("notify: the note could not be queued");
}

void events_notify_final(struct agent *a, const struct lcast *c)
{
    char summary[256], body[512], cost[SPELL_MONEY_FORMAT_MAX];
    size_t len = 0;
    bool critical = c->state != LCAST_SUCCEEDED;

    snprintf(summary, sizeof(summary), "%s %s", c->spell, lcast_state_name(c->state));
    body[0] = '\0';
    if (c->has_cost && spell_money_format(c->cost_cents, cost, sizeof(cost)) == SPELL_OK)
        len += (size_t)snprintf(body + len, sizeof(body) - len, "Cost %s", cost);
    else if (c->state != LCAST_REJECTED && c->state != LCAST_SUCCEEDED)
        len += (size_t)snprintf(body + len, sizeof(body) - len, "Nothing charged");
    if (c->has_duration && len < sizeof(body))
        len += (size_t)snprintf(body + len, sizeof(body) - len, "%s%lld.%01lld s",
                                len ? " · " : "", (long long)(c->duration_ms / 1000),
                                (long long)(c->duration_ms % 1000 / 100));
    if (c->error_message && len < sizeof(body))
        snprintf(body + len, sizeof(body) - len, "%s%s", len ? "\n" : "", c->error_message);
    events_notify(a, summary, body[0] ? body : NULL, critical);
}

int events_add_waiter(struct agent *a, struct rpc_call *call, const char *local_id,
                      int64_t deadline)
{
    struct waiter *w = calloc(1, sizeof(*w));

    if (!w)
        return SPELL_ENOMEM;
    w->call = call;
    snprintf(w->local_id, sizeof(w->local_id), "%s", local_id);
    w->deadline = deadline;
    w->next = a->waiters;
    a->waiters = w;
    return SPELL_OK;
}

int64_t events_tick_waiters(struct agent *a, int64_t now)
{
    struct waiter **pp = &a->waiters;
    int64_t next = 0;

    while (*pp) {
        struct waiter *w = *pp;

        if (!w->call->client) {
            /* Nobody to answer: drop it now. */
            *pp = w->next;
            rpc_error(a, w->call, AGENT_ERR_SHUTTING_DOWN, "gone", NULL);
            free(w);
        } else if (w->deadline && w->deadline <= now) {
            *pp = w->next;
            waiter_answer(a, w, NULL);
            free(w);
        } else {
            if (w->deadline && (!next || w->deadline < next))
                next = w->deadline;
            pp = &w->next;
        }
    }
    return next;
}

void events_fail_waiters(struct agent *a)
{
    while (a->waiters) {
        struct waiter *w = a->waiters;

        a->waiters = w->next;
        rpc_error(a, w->call, AGENT_ERR_SHUTTING_DOWN, "the agent is shutting down", NULL);
        free(w);
    }
}
