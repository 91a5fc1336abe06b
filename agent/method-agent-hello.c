/*
 * agent.hello {"protocol": 1, "client": "spell/0.1.0"} -> {"protocol",
 * "agent"}: the first request of every connection.  A client speaking
 * another protocol version gets -32001 and the connection is closed once
 * the answer is written.
 */
#include <stdio.h>
#include <stdlib.h>

#include "spell/errors.h"
#include "spell/json.h"
#include "spell/version.h"

#include "agent.h"

/* Longest client name accepted. */
#define HELLO_CLIENT_MAX 256

int method_agent_hello(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    char err[256] = "";
    struct spell_json_at at = {params, "", err, sizeof(err)};
    int64_t protocol = 0;
    char *client = NULL;
    cJSON *r = NULL;
    struct client *c = call->client;
    int rc;

    rc = spell_json_get_int64(&at, "protocol", SPELL_JSON_REQUIRED, &protocol, NULL);
    if (rc == SPELL_OK)
        rc = spell_json_get_string(&at, "client", SPELL_JSON_OPTIONAL, HELLO_CLIENT_MAX,
                                   &client);
    if (rc != SPELL_OK) {
        rc = rpc_params_failed(a, call, rc, err);
        goto out;
    }
    if (protocol != AGENT_PROTOCOL_VERSION) {
        cJSON *data = cJSON_CreateObject();

        if (data && spell_json_add_int64(data, "protocol", AGENT_PROTOCOL_VERSION)) {
            cJSON_Delete(data);
            data = NULL;
        }
        snprintf(err, sizeof(err), "protocol version mismatch: the agent speaks %d, the client %lld",
                 AGENT_PROTOCOL_VERSION, (long long)protocol);
        rpc_error(a, call, AGENT_ERR_PROTOCOL_MISMATCH, err, data);
        if (c)
            c->close_after_flush = true;
        goto out;
    }
    r = cJSON_CreateObject();
    if (!r || spell_json_add_int64(r, "protocol", AGENT_PROTOCOL_VERSION) ||
        spell_json_add_string(r, "agent", spell_version())) {
        rc = SPELL_ENOMEM;
        goto out;
    }
    if (c)
        c->hello = true;
    rpc_reply(a, call, r);
    r = NULL;
out:
    cJSON_Delete(r);
    free(client);
    return rc;
}
