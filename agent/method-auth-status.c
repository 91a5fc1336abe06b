/*
 * auth.status {} -> {"signed_in", "source", "api_url", "account",
 * "key_prefix", "path" (file source only)}.  Never the token itself.
 */
#include "spell/errors.h"
#include "spell/json.h"

#include "agent.h"
#include "desktop/desktop.h"

int method_auth_status(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    cJSON *r = cJSON_CreateObject();
    const char *tok = creds_token(a);
    char prefix[32];
    bool has_prefix = tok && creds_key_prefix(tok, prefix, sizeof(prefix)) == SPELL_OK;

    if (!r || spell_json_add_bool(r, "signed_in", tok != NULL) ||
        spell_json_add_string(r, "source", creds_source_name(a)) ||
        spell_json_add_string(r, "api_url", a->opt.api_url) ||
        spell_json_add_string(r, "account", tok && a->account[0] ? a->account : NULL) ||
        spell_json_add_string(r, "key_prefix", has_prefix ? prefix : NULL) ||
        (a->cred_source == DESKTOP_CRED_FILE && tok &&
         spell_json_add_string(r, "path", a->cred_path))) {
        cJSON_Delete(r);
        return SPELL_ENOMEM;
    }
    rpc_reply(a, call, r);
    return SPELL_OK;
}
