/*
 * auth.logout {} -> {"removed"}: removes the stored credential (keyring
 * item and file) and forgets it; a SPELL_API_KEY in the agent's
 * environment applies again afterwards.
 */
#include "spell/errors.h"
#include "spell/json.h"

#include "agent.h"
#include "desktop/desktop.h"

static void removed(void *ud, const struct desktop_cred_result *r)
{
    struct login *l = ud;
    struct agent *a = l->a;
    cJSON *res = NULL;

    if (r->rc != SPELL_OK) {
        rpc_error(a, l->call, AGENT_ERR_KEYRING,
                  r->message[0] ? r->message : "the credential could not be removed", NULL);
        goto out;
    }
    creds_clear(a);
    agent_log("credential: signed out (%s)", r->removed ? "removed" : "nothing was stored");
    res = cJSON_CreateObject();
    if (!res || spell_json_add_bool(res, "removed", r->removed)) {
        cJSON_Delete(res);
        rpc_error(a, l->call, AGENT_ERR_INTERNAL, "out of memory", NULL);
    } else {
        rpc_reply(a, l->call, res);
    }
    if (creds_reload(a) != SPELL_OK)
        agent_log("credential: cannot be loaded again");
out:
    login_free(a, l);
}

int method_auth_logout(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    struct login *l;
    cJSON *res;
    bool had;

    if (!a->desktop) {
        had = creds_token(a) != NULL;
        creds_clear(a);
        res = cJSON_CreateObject();
        if (!res || spell_json_add_bool(res, "removed", had)) {
            cJSON_Delete(res);
            return SPELL_ENOMEM;
        }
        rpc_reply(a, call, res);
        return SPELL_OK;
    }
    l = login_new(a, call);
    if (!l)
        return SPELL_ENOMEM;
    if (desktop_cred_remove(a->desktop, removed, l) != SPELL_OK) {
        login_free(a, l);
        rpc_error(a, call, AGENT_ERR_KEYRING, "the credential store is busy", NULL);
    }
    return SPELL_OK;
}
