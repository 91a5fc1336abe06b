/*
 * auth.token {} -> {"token", "api_url"}: the stored credential, for the
 * same user's front ends that read account data straight from the server.
 * The socket's owner check guards it; it is never logged.
 */
#include "spell/errors.h"
#include "spell/json.h"

#include "agent.h"

int method_auth_token(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    const char *tok = creds_token(a);
    cJSON *r;

    if (!tok) {
        rpc_error(a, call, AGENT_ERR_SIGNED_OUT,
                  a->cred_loading ? "the credential is still being loaded" : "not signed in",
                  NULL);
        return SPELL_OK;
    }
    r = cJSON_CreateObject();
    if (!r || spell_json_add_string(r, "token", tok) ||
        spell_json_add_string(r, "api_url", a->opt.api_url)) {
        cJSON_Delete(r);
        return SPELL_ENOMEM;
    }
    rpc_reply(a, call, r);
    return SPELL_OK;
}
