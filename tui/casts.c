/*
 * Casts as the agent reports them.  cast.list fills the list when the
 * portal connects; each "event" notification then updates one local cast
 * (found by local_id, added when new) and appends a line to its event
 * log.  A cast that ends asks for a usage refresh, so the dashboard and
 * the usage screen follow spending without waiting for the timer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spell/clock.h"
#include "spell/errors.h"

#include "portal.h"

static void pcast_free(struct pcast *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_log; i++)
        free(c->log[i]);
    free(c);
}

void casts_free(struct portal *p)
{
    for (int i = 0; i < p->n_casts; i++)
        pcast_free(p->casts[i]);
    p->n_casts = 0;
}

struct pcast *casts_find(struct portal *p, const char *local_id)
{
    for (int i = 0; i < p->n_casts; i++)
        if (strcmp(p->casts[i]->local_id, local_id) == 0)
            return p->casts[i];
    return NULL;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool num(const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || v->valuedouble < -9e15 || v->valuedouble > 9e15)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static void set(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* Adds (newest first) or updates a cast from a local cast object. */
static struct pcast *upsert(struct portal *p, const cJSON *o, bool append_new)
{
    const char *id = str(o, "local_id");
    if (!id || !*id)
        return NULL;
    struct pcast *c = casts_find(p, id);
    if (!c) {
        if (!(c = calloc(1, sizeof *c)))
            return NULL;
        if (p->n_casts >= PORTAL_MAX_CASTS) {
            pcast_free(p->casts[p->n_casts - 1]);
            p->n_casts--;
        }
        if (append_new) {
            p->casts[p->n_casts++] = c;
        } else {
            memmove(&p->casts[1], &p->casts[0], (size_t)p->n_casts * sizeof p->casts[0]);
            p->casts[0] = c;
            p->n_casts++;
        }
        set(c->local_id, sizeof c->local_id, id);
    }
    int64_t v;
    set(c->cast_id, sizeof c->cast_id, str(o, "cast_id"));
    set(c->spell, sizeof c->spell, str(o, "spell"));
    set(c->state, sizeof c->state, str(o, "state"));
    set(c->message, sizeof c->message, str(o, "message"));
    set(c->artifact_url, sizeof c->artifact_url, str(o, "artifact_url"));
    if (num(o, "progress", &v) && v >= 0 && v <= 100)
        c->progress = (int)v;
    if (num(o, "estimated_cost_cents", &v))
        c->estimated_cost_cents = v;
    c->has_cost = num(o, "cost_cents", &c->cost_cents);
    c->has_duration = num(o, "duration_ms", &c->duration_ms);
    const char *created = str(o, "created_at");
    if (created)
        spell_time_parse(created, &c->created_ms);
    const cJSON *fin = cJSON_GetObjectItemCaseSensitive(o, "final");
    c->final = cJSON_IsTrue(fin);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    c->error[0] = '\0';
    if (cJSON_IsObject(e)) {
        const char *code = str(e, "code"), *msg = str(e, "message");
        snprintf(c->error, sizeof c->error, "%s%s%s", code ? code : "", code && msg ? ": " : "",
                 msg ? msg : "");
    }
    return c;
}

void casts_from_list(struct portal *p, const cJSON *result)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(result, "casts");
    if (!cJSON_IsArray(arr))
        return;
    const cJSON *o;
    cJSON_ArrayForEach(o, arr) {
        /* The list is newest first: keep that order. */
        if (!casts_find(p, str(o, "local_id") ? str(o, "local_id") : ""))
            upsert(p, o, true);
        else
            upsert(p, o, false);
    }
}

static void log_line(struct pcast *c, const char *kind)
{
    char line[400], ts[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    spell_errf(line, sizeof line, "%s %-15s %3d%%  %s%s%s", ts, kind, c->progress, c->message,
             c->error[0] ? "  " : "", c->error);
    char *copy = strdup(line);
    if (!copy)
        return;
    if (c->n_log == PORTAL_CAST_LOG) {
        free(c->log[0]);
        memmove(&c->log[0], &c->log[1], (PORTAL_CAST_LOG - 1) * sizeof c->log[0]);
        c->n_log--;
    }
    c->log[c->n_log++] = copy;
}

void casts_event(struct portal *p, const cJSON *params)
{
    const char *kind = str(params, "kind");
    const cJSON *cast = cJSON_GetObjectItemCaseSensitive(params, "cast");
    if (!kind)
        return;
    if (strcmp(kind, "budget.soft_limit") == 0) {
        portal_status(p, true, "This month's spending passed the soft limit.");
        p->usage_event_at = portal_now_ms() + 200;
        return;
    }
    if (!cJSON_IsObject(cast))
        return;
    struct pcast *c = upsert(p, cast, false);
    if (!c)
        return;
    log_line(c, kind);
    if (c->final || strcmp(kind, "cast.accepted") == 0)
        p->usage_event_at = portal_now_ms() + 500;
    if (strcmp(kind, "cast.rejected") == 0)
        portal_status(p, true, "The %s cast was refused: %s", c->spell,
                      c->error[0] ? c->error : "no reason given");
    p->dirty = true;
}

static void agent_refusal(struct portal *p, const char *what, const struct spell_agent_msg *m)
{
    int status = 0;
    const char *code = NULL, *msg = NULL;
    if (spell_agent_error_server(&m->error, &status, &code, &msg) == SPELL_OK)
        portal_status(p, true, "%s: %s (%s)", what, spell_api_error_sentence(code ? code : "",
                                                                               status),
                      msg ? msg : "");
    else
        portal_status(p, true, "%s: %s", what, m->error.message[0]
                                                   ? m->error.message
                                                   : spell_agent_code_sentence(m->error.code));
}

void casts_agent_result(struct portal *p, enum agent_call what, const struct spell_agent_msg *m)
{
    switch (what) {
    case CALL_LIST:
        if (m->kind == SPELL_AGENT_MSG_RESULT)
            casts_from_list(p, m->result);
        break;
    case CALL_SUBMIT:
        if (m->kind == SPELL_AGENT_MSG_RESULT) {
            const char *id = str(m->result, "local_id");
            portal_status(p, false, "Cast queued by the agent as %s.", id ? id : "?");
        } else {
            agent_refusal(p, "The agent did not take the cast", m);
        }
        break;
    case CALL_CANCEL:
        if (m->kind == SPELL_AGENT_MSG_RESULT) {
            struct pcast *c = upsert(p, m->result, false);
            portal_status(p, false, "Cast %s canceled.", c ? c->local_id : "");
        } else {
            agent_refusal(p, "Canceling failed", m);
        }
        break;
    case CALL_SUBSCRIBE:
        if (m->kind == SPELL_AGENT_MSG_ERROR)
            agent_refusal(p, "Live cast updates are off", m);
        break;
    default:
        break;
    }
}

void casts_confirmed(struct portal *p, enum modal_action action, const char *arg)
{
    struct casts_ui *u = &p->casts_ui;
    if (action == ACT_SUBMIT_CAST) {
        cJSON *params = cJSON_CreateObject();
        if (!params || !u->pending_inputs || !cJSON_AddStringToObject(params, "spell", arg)) {
            cJSON_Delete(params);
            portal_status(p, true, "Out of memory.");
            return;
        }
        cJSON_AddItemToObject(params, "inputs", u->pending_inputs);
        u->pending_inputs = NULL;
        int rc = portal_agent_call(p, CALL_SUBMIT, "cast.submit", params);
        cJSON_Delete(params);
        if (rc != SPELL_OK) {
            portal_status(p, true, "The agent is not running: start spell-agent to cast.");
            return;
        }
        u->mode = CASTS_LIST;
    } else if (action == ACT_CANCEL_CAST) {
        cJSON *params = cJSON_CreateObject();
        if (!params || !cJSON_AddStringToObject(params, "local_id", arg)) {
            cJSON_Delete(params);
            return;
        }
        if (portal_agent_call(p, CALL_CANCEL, "cast.cancel", params) != SPELL_OK)
            portal_status(p, true, "The agent is not running: start spell-agent to cancel.");
        cJSON_Delete(params);
    }
}
