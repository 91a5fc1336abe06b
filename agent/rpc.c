/*
 * JSON-RPC 2.0 over the agent socket: one line in, one request checked and
 * dispatched through the method table, one answer out.
 *
 * A line is parsed with core's strict spell_json_parse() (UTF-8, grammar,
 * no duplicate members, 1 MiB, depth 32).  Then, in this order:
 *   not JSON                          -> -32700, id null
 *   an array (a batch)                -> -32600, id null: batches are not
 *                                        supported, send one request a line
 *   not an object, a bad "jsonrpc",
 *   an id that is not a string,
 *   number or null, a missing or
 *   non-string "method"               -> -32600 (id null when it was bad)
 *   no "id" member (a notification)   -> ignored: clients send none
 *   params not an object              -> -32602
 *   before agent.hello                -> -32002
 *   an unknown method                 -> -32601
 * Answers that come later (cast.wait, auth.login, cast.cancel) keep a
 * struct rpc_call on the agent's list, detached when its client leaves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/json.h"
#include "spell/models.h"

#include "agent.h"

/* Longest string id accepted. */
#define RPC_ID_MAX 256

static void send_json(struct client *c, cJSON *msg, bool is_event)
{
    char *text;

    if (!c || !msg)
        return;
    text = cJSON_PrintUnformatted(msg);
    if (!text) {
        c->dead = true;
        return;
    }
    server_client_send(c, text, strlen(text), is_event);
    free(text);
}

static cJSON *envelope(const cJSON *id)
{
    cJSON *m = cJSON_CreateObject();
    cJSON *idc = id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull();

    if (!m || !idc || !cJSON_AddStringToObject(m, "jsonrpc", "2.0")) {
        cJSON_Delete(m);
        cJSON_Delete(idc);
        return NULL;
    }
    cJSON_AddItemToObject(m, "id", idc);
    return m;
}

static cJSON *error_message(const cJSON *id, int code, const char *message, cJSON *data)
{
    cJSON *m = envelope(id);
    cJSON *e = cJSON_CreateObject();

    if (!m || !e || spell_json_add_int64(e, "code", code) ||
        spell_json_add_string(e, "message", message))
        goto fail;
    if (data) {
        cJSON_AddItemToObject(e, "data", data);
        data = NULL;
    }
    cJSON_AddItemToObject(m, "error", e);
    return m;
fail:
    cJSON_Delete(data);
    cJSON_Delete(e);
    cJSON_Delete(m);
    return NULL;
}

void rpc_error_raw(struct client *c, const cJSON *id, int code, const char *message)
{
    cJSON *m = error_message(id, code, message, NULL);

    if (!m) {
        c->dead = true;
        return;
    }
    send_json(c, m, false);
    cJSON_Delete(m);
}

static void call_free(struct agent *a, struct rpc_call *call)
{
    struct rpc_call **pp;

    for (pp = &a->calls; *pp; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            break;
        }
    }
    if (call->client && call->client->outstanding > 0)
        call->client->outstanding--;
    cJSON_Delete(call->id);
    free(call);
}

void rpc_reply(struct agent *a, struct rpc_call *call, cJSON *result)
{
    cJSON *m = NULL;

    if (call->client) {
        m = envelope(call->id);
        if (m && result) {
            cJSON_AddItemToObject(m, "result", result);
            result = NULL;
            send_json(call->client, m, false);
        } else {
            /* Out of memory while building the answer. */
            cJSON_Delete(m);
            m = error_message(call->id, AGENT_ERR_INTERNAL, "out of memory", NULL);
            if (m)
                send_json(call->client, m, false);
            else
                call->client->dead = true;
        }
    }
    cJSON_Delete(m);
    cJSON_Delete(result);
    call_free(a, call);
}

void rpc_error(struct agent *a, struct rpc_call *call, int code, const char *message,
               cJSON *data)
{
    cJSON *m;

    if (call->client) {
        m = error_message(call->id, code, message, data);
        data = NULL;
        if (m)
            send_json(call->client, m, false);
        else
            call->client->dead = true;
        cJSON_Delete(m);
    }
    cJSON_Delete(data);
    call_free(a, call);
}

void rpc_error_server(struct agent *a, struct rpc_call *call, int status, const char *body,
                      size_t body_len)
{
    struct spell_error_body eb = {0};
    cJSON *j = NULL;
    cJSON *data = cJSON_CreateObject();
    const char *code = NULL, *msg = NULL;

    if (body && spell_json_parse(body, body_len, NULL, &j, NULL, 0) == SPELL_OK &&
        spell_error_body_from_json(j, &eb, NULL, 0) == SPELL_OK) {
        code = eb.code;
        msg = eb.message;
    }
    if (!msg)
        msg = spell_api_error_sentence(code ? code : "", status);
    if (data && (spell_json_add_int64(data, "status", status) ||
                 spell_json_add_string(data, "code", code) ||
                 spell_json_add_string(data, "message", msg))) {
        cJSON_Delete(data);
        data = NULL;
    }
    rpc_error(a, call, AGENT_ERR_SERVER_REFUSED, msg, data);
    spell_error_body_free(&eb);
    cJSON_Delete(j);
}

void rpc_client_gone(struct agent *a, struct client *c)
{
    for (struct rpc_call *call = a->calls; call; call = call->next) {
        if (call->client == c)
            call->client = NULL;
    }
}

void rpc_fail_all(struct agent *a)
{
    /* Waiters first: they hold calls of their own. */
    events_fail_waiters(a);
    for (struct rpc_call *call = a->calls; call; call = call->next) {
        cJSON *m;

        if (!call->client)
            continue;
        m = error_message(call->id, AGENT_ERR_SHUTTING_DOWN, "the agent is shutting down",
                          NULL);
        send_json(call->client, m, false);
        cJSON_Delete(m);
        call->client->outstanding--;
        call->client = NULL;
    }
}

int rpc_params_failed(struct agent *a, struct rpc_call *call, int rc, const char *err)
{
    if (rc == SPELL_ENOMEM)
        return rc;
    rpc_error(a, call, AGENT_ERR_INVALID_PARAMS, err[0] ? err : "invalid params", NULL);
    return SPELL_OK;
}

/* A valid id: a string (capped), a number, or null. */
static bool id_valid(const cJSON *id)
{
    if (cJSON_IsNull(id) || cJSON_IsNumber(id))
        return true;
    return cJSON_IsString(id) && strlen(id->valuestring) <= RPC_ID_MAX;
}

void rpc_handle_line(struct agent *a, struct client *c, const char *line, size_t len)
{
    struct spell_json_limits lim = {AGENT_MAX_MESSAGE, SPELL_JSON_MAX_DEPTH_DEFAULT};
    char err[256];
    cJSON *req = NULL;
    const cJSON *id, *method, *jsonrpc, *params;
    const struct rpc_method *m;
    struct rpc_call *call = NULL;
    cJSON *empty = NULL;
    size_t i;

    for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'); i++)
        ;
    if (i == len)
        return;     /* a blank line: nothing to answer */
    if (spell_json_parse(line, len, &lim, &req, err, sizeof(err)) != SPELL_OK) {
        char msg[300];

        snprintf(msg, sizeof(msg), "parse error: %s", err);
        rpc_error_raw(c, NULL, AGENT_ERR_PARSE, msg);
        goto out;
    }
    if (cJSON_IsArray(req)) {
        rpc_error_raw(c, NULL, AGENT_ERR_INVALID_REQUEST,
                      "batches are not supported: send one request per line");
        goto out;
    }
    if (!cJSON_IsObject(req)) {
        rpc_error_raw(c, NULL, AGENT_ERR_INVALID_REQUEST, "a request must be a JSON object");
        goto out;
    }
    id = cJSON_GetObjectItemCaseSensitive(req, "id");
    if (id && !id_valid(id)) {
        rpc_error_raw(c, NULL, AGENT_ERR_INVALID_REQUEST,
                      "field 'id' must be a string, a number or null");
        goto out;
    }
    jsonrpc = cJSON_GetObjectItemCaseSensitive(req, "jsonrpc");
    if (!cJSON_IsString(jsonrpc) || strcmp(jsonrpc->valuestring, "2.0") != 0) {
        rpc_error_raw(c, id, AGENT_ERR_INVALID_REQUEST, "field 'jsonrpc' must be \"2.0\"");
        goto out;
    }
    method = cJSON_GetObjectItemCaseSensitive(req, "method");
    if (!cJSON_IsString(method)) {
        rpc_error_raw(c, id, AGENT_ERR_INVALID_REQUEST, "field 'method' must be a string");
        goto out;
    }
    if (!id)
        goto out;   /* a notification: the agent acts on none */
    params = cJSON_GetObjectItemCaseSensitive(req, "params");
    if (params && cJSON_IsNull(params))
        params = NULL;
    if (params && !cJSON_IsObject(params)) {
        rpc_error_raw(c, id, AGENT_ERR_INVALID_PARAMS, "field 'params' must be an object");
        goto out;
    }
    if (!params) {
        empty = cJSON_CreateObject();
        if (!empty) {
            rpc_error_raw(c, id, AGENT_ERR_INTERNAL, "out of memory");
            goto out;
        }
        params = empty;
    }
    if (a->stopping) {
        rpc_error_raw(c, id, AGENT_ERR_SHUTTING_DOWN, "the agent is shutting down");
        goto out;
    }
    if (!c->hello && strcmp(method->valuestring, "agent.hello") != 0) {
        rpc_error_raw(c, id, AGENT_ERR_HELLO_FIRST, "agent.hello must come first");
        goto out;
    }
    m = rpc_method_find(method->valuestring);
    if (!m) {
        snprintf(err, sizeof(err), "method not found: %.200s", method->valuestring);
        rpc_error_raw(c, id, AGENT_ERR_METHOD_NOT_FOUND, err);
        goto out;
    }
    call = calloc(1, sizeof(*call));
    if (!call || !(call->id = cJSON_Duplicate(id, 1))) {
        free(call);
        rpc_error_raw(c, id, AGENT_ERR_INTERNAL, "out of memory");
        goto out;
    }
    call->client = c;
    call->next = a->calls;
    a->calls = call;
    c->outstanding++;
    if (m->exec(a, call, params) != SPELL_OK)
        rpc_error(a, call, AGENT_ERR_INTERNAL, "internal error", NULL);
out:
    cJSON_Delete(empty);
    cJSON_Delete(req);
}
