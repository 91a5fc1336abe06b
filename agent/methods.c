/*
 * The method table: every JSON-RPC method the agent serves, one file each
 * (method-<name>.c), as docs/agent.md lists them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/json.h"
#include "spell/models.h"

#include "agent.h"

static const struct rpc_method methods[] = {
    {"agent.hello", method_agent_hello},
    {"agent.status", method_agent_status},
    {"auth.status", method_auth_status},
    {"auth.login", method_auth_login},
    {"auth.logout", method_auth_logout},
    {"auth.token", method_auth_token},
    {"cast.submit", method_cast_submit},
    {"cast.get", method_cast_get},
    {"cast.list", method_cast_list},
    {"cast.cancel", method_cast_cancel},
    {"cast.wait", method_cast_wait},
    {"events.subscribe", method_events_subscribe},
};

const struct rpc_method *rpc_method_find(const char *name)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(methods[i].name, name) == 0)
            return &methods[i];
    }
    return NULL;
}

int rpc_find_cast(struct agent *a, struct rpc_call *call, const cJSON *params,
                  bool allow_cast_id, struct lcast *out)
{
    struct spell_json_at at = {params, "", NULL, 0};
    char err[256] = "";
    char *local_id = NULL, *cast_id = NULL;
    int rc;

    at.err = err;
    at.errlen = sizeof(err);
    memset(out, 0, sizeof(*out));
    rc = spell_json_get_string(&at, "local_id", SPELL_JSON_OPTIONAL, AGENT_LOCAL_ID_MAX,
                               &local_id);
    if (rc == SPELL_OK && allow_cast_id)
        rc = spell_json_get_string(&at, "cast_id", SPELL_JSON_OPTIONAL, SPELL_CAST_ID_LEN,
                                   &cast_id);
    if (rc == SPELL_OK && !local_id && !cast_id) {
        rc = SPELL_EINVAL;
        snprintf(err, sizeof(err), "field 'local_id' is required");
    }
    if (rc != SPELL_OK) {
        if (rc == SPELL_ENOMEM)
            goto out;
        rpc_error(a, call, AGENT_ERR_INVALID_PARAMS, err, NULL);
        rc = SPELL_ENOTFOUND;
        goto out;
    }
    rc = local_id ? queue_get(a->queue, local_id, out) : queue_get_by_cast_id(a->queue, cast_id, out);
    if (rc == SPELL_ENOTFOUND) {
        rpc_error(a, call, AGENT_ERR_NO_SUCH_CAST, "no such cast", NULL);
        goto out;
    }
    if (rc != SPELL_OK) {
        rpc_error(a, call, AGENT_ERR_INTERNAL, "the queue cannot be read", NULL);
        rc = SPELL_ENOTFOUND;
    }
out:
    free(local_id);
    free(cast_id);
    return rc;
}
