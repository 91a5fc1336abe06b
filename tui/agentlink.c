/*
 * The portal's connection to spell-agent, on core's non-blocking client
 * (spell/agent.h).  On connect it sends, pipelined, agent.hello, then
 * auth.token (the credential for the account screens), events.subscribe
 * and cast.list.  The loop polls the socket; answers are matched to the
 * call that asked (portal.calls) and go to agentlink_answer(), and every
 * "event" notification goes to casts_event().  When the agent is not
 * running, or goes away, the portal carries on without it and tries again
 * every few seconds.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/version.h"

#include "portal.h"

#define AGENT_RETRY_MS 3000

void agentlink_close(struct portal *p, const char *why)
{
    spell_agent_free(p->agent);
    p->agent = NULL;
    p->n_calls = 0;
    if (p->agent_state != AGENT_DOWN && why)
        snprintf(p->agent_error, sizeof p->agent_error, "%s", why);
    p->agent_state = AGENT_DOWN;
    p->agent_retry_at = portal_now_ms() + AGENT_RETRY_MS;
    p->dirty = true;
}

void agentlink_open(struct portal *p)
{
    struct spell_env env;
    char err[256];
    spell_env_process(&env);
    p->agent_retry_at = 0;
    if (!p->socket_path[0] ||
        spell_agent_connect(&env, p->socket_path, &p->agent, err, sizeof err) != SPELL_OK) {
        if (p->socket_path[0])
            snprintf(p->agent_error, sizeof p->agent_error, "%s", err);
        p->agent = NULL;
        p->agent_state = AGENT_DOWN;
        p->agent_retry_at = portal_now_ms() + AGENT_RETRY_MS;
        agentlink_opened(p, false);
        return;
    }
    p->agent_state = AGENT_CONNECTING;
    p->n_calls = 0;
    cJSON *hello = cJSON_CreateObject();
    cJSON *list = cJSON_CreateObject();
    char client[64];
    snprintf(client, sizeof client, "spell-portal/%s", spell_version());
    if (!hello || !list || !cJSON_AddNumberToObject(hello, "protocol", SPELL_AGENT_PROTOCOL) ||
        !cJSON_AddStringToObject(hello, "client", client) ||
        !cJSON_AddNumberToObject(list, "limit", 50) ||
        portal_agent_call(p, CALL_HELLO, "agent.hello", hello) != SPELL_OK ||
        portal_agent_call(p, CALL_TOKEN, "auth.token", NULL) != SPELL_OK ||
        portal_agent_call(p, CALL_SUBSCRIBE, "events.subscribe", NULL) != SPELL_OK ||
        portal_agent_call(p, CALL_LIST, "cast.list", list) != SPELL_OK) {
        cJSON_Delete(hello);
        cJSON_Delete(list);
        agentlink_close(p, "could not talk to the agent");
        agentlink_opened(p, false);
        return;
    }
    cJSON_Delete(hello);
    cJSON_Delete(list);
}

short agentlink_events(const struct portal *p)
{
    short ev = POLLIN;
    if (p->agent && spell_agent_want_write(p->agent))
        ev |= POLLOUT;
    return ev;
}

static enum agent_call pop_call(struct portal *p, int64_t id)
{
    for (int i = 0; i < p->n_calls; i++) {
        if (p->calls_id[i] != id)
            continue;
        enum agent_call what = p->calls[i];
        memmove(&p->calls_id[i], &p->calls_id[i + 1],
                (size_t)(p->n_calls - i - 1) * sizeof p->calls_id[0]);
        memmove(&p->calls[i], &p->calls[i + 1], (size_t)(p->n_calls - i - 1) * sizeof p->calls[0]);
        p->n_calls--;
        return what;
    }
    return CALL_NONE;
}

void agentlink_io(struct portal *p, short revents)
{
    bool closed = false;
    bool was_connecting = p->agent_state == AGENT_CONNECTING;
    if ((revents & POLLOUT) && spell_agent_flush(p->agent) != SPELL_OK)
        closed = true;
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        if (spell_agent_read(p->agent) != SPELL_OK)
            closed = true;
    }
    for (int guard = 0; guard < 10000 && p->agent; guard++) {
        struct spell_agent_msg m;
        char err[256];
        int rc = spell_agent_take(p->agent, &m, err, sizeof err);
        if (rc != SPELL_OK) {
            /* A bad line was dropped; the connection stays usable. */
            continue;
        }
        if (m.kind == SPELL_AGENT_MSG_NONE) {
            spell_agent_msg_clear(&m);
            break;
        }
        if (m.kind == SPELL_AGENT_MSG_NOTIFICATION) {
            if (m.method && strcmp(m.method, "event") == 0 && m.params)
                casts_event(p, m.params);
        } else {
            enum agent_call what = pop_call(p, m.id);
            if (what == CALL_HELLO) {
                if (m.kind == SPELL_AGENT_MSG_RESULT) {
                    p->agent_state = AGENT_UP;
                    p->agent_error[0] = '\0';
                } else {
                    char why[PORTAL_MSG_MAX];
                    spell_errf(why, sizeof why, "the agent refused us: %s", m.error.message);
                    spell_agent_msg_clear(&m);
                    agentlink_close(p, why);
                    agentlink_opened(p, false);
                    return;
                }
            } else if (what != CALL_NONE) {
                agentlink_answer(p, what, &m);
            }
        }
        spell_agent_msg_clear(&m);
        p->dirty = true;
    }
    if (closed && p->agent) {
        bool waiting = p->auth == AUTH_WAIT;
        agentlink_close(p, "the agent closed the connection");
        if (was_connecting || waiting)
            agentlink_opened(p, false);
    }
}

void agentlink_timer(struct portal *p)
{
    if (p->agent_state == AGENT_DOWN && p->agent_retry_at &&
        portal_now_ms() >= p->agent_retry_at)
        agentlink_open(p);
}
