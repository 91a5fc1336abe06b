/*
 * auth.login {"token"} -> {"account", "source"}.
 *
 * The token is first checked with GET /v1/auth/me (a refusal is -32030
 * with the server's words, no answer -32031); the login the server names
 * is then stored with the token through the desktop module (keyring, or
 * the 0600 file unless --no-plaintext: -32011).  Only then does the agent
 * use the new credential.  The token is held in memory for the two steps
 * and wiped after.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/json.h"
#include "spell/models.h"

#include "agent.h"
#include "desktop/desktop.h"

static void saved(void *ud, const struct desktop_cred_result *r)
{
    struct login *l = ud;
    struct agent *a = l->a;
    cJSON *res = NULL;

    if (r->rc == DESKTOP_ENOPLAINTEXT) {
        rpc_error(a, l->call, AGENT_ERR_KEYRING,
                  r->message[0] ? r->message
                                : "the keyring is unavailable and --no-plaintext refuses the file",
                  NULL);
        goto out;
    }
    if (r->rc != SPELL_OK) {
        rpc_error(a, l->call, AGENT_ERR_KEYRING,
                  r->message[0] ? r->message : "the credential could not be stored", NULL);
        goto out;
    }
    if (creds_set(a, l->token, r->source, l->account, r->path) != SPELL_OK) {
        rpc_error(a, l->call, AGENT_ERR_INTERNAL, "out of memory", NULL);
        goto out;
    }
    agent_log("credential: signed in as %s (%s)", l->account, desktop_cred_source_name(r->source));
    res = cJSON_CreateObject();
    if (!res || spell_json_add_string(res, "account", l->account) ||
        spell_json_add_string(res, "source", desktop_cred_source_name(r->source))) {
        cJSON_Delete(res);
        rpc_error(a, l->call, AGENT_ERR_INTERNAL, "out of memory", NULL);
    } else {
        rpc_reply(a, l->call, res);
    }
    submit_pump(a);
out:
    login_free(a, l);
}

static void checked(struct agent *a, int rc, int status, const char *body, size_t len,
                    void *user)
{
    struct login *l = user;
    struct spell_user u = {0};
    cJSON *j = NULL;

    if (rc == SPELL_EABORT) {
        login_free(a, l);
        return;
    }
    if (rc != SPELL_OK) {
        rpc_error(a, l->call, AGENT_ERR_UNREACHABLE, "the server cannot be reached", NULL);
        goto fail;
    }
    if (status != 200) {
        rpc_error_server(a, l->call, status, body, len);
        goto fail;
    }
    if (spell_json_parse(body, len, NULL, &j, NULL, 0) != SPELL_OK ||
        spell_user_from_json(j, &u, NULL, 0) != SPELL_OK ||
        strlen(u.login) > DESKTOP_ACCOUNT_MAX) {
        rpc_error(a, l->call, AGENT_ERR_UNREACHABLE, "the server's answer is not a user", NULL);
        goto fail;
    }
    snprintf(l->account, sizeof(l->account), "%s", u.login);
    if (!a->desktop) {
        rpc_error(a, l->call, AGENT_ERR_KEYRING, "no credential store is available", NULL);
        goto fail;
    }
    if (desktop_cred_save(a->desktop, l->token, l->account, saved, l) != SPELL_OK) {
        rpc_error(a, l->call, AGENT_ERR_KEYRING, "the credential store is busy", NULL);
        goto fail;
    }
    spell_user_free(&u);
    cJSON_Delete(j);
    return;
fail:
    spell_user_free(&u);
    cJSON_Delete(j);
    login_free(a, l);
}

int method_auth_login(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    char err[256] = "";
    struct spell_json_at at = {params, "", err, sizeof(err)};
    struct login *l = NULL;
    int rc;

    l = login_new(a, call);
    if (!l)
        return SPELL_ENOMEM;
    rc = spell_json_get_string(&at, "token", SPELL_JSON_REQUIRED | SPELL_JSON_NONEMPTY,
                               DESKTOP_TOKEN_MAX, &l->token);
    if (rc != SPELL_OK) {
        rc = rpc_params_failed(a, call, rc, err);
        login_free(a, l);
        return rc;
    }
    for (const char *p = l->token; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            login_free(a, l);
            rpc_error(a, call, AGENT_ERR_INVALID_PARAMS,
                      "field 'token' must not hold spaces or control characters", NULL);
            return SPELL_OK;
        }
    }
    rc = http_get_start(a, "/v1/auth/me", l->token, checked, l);
    if (rc != SPELL_OK)
        login_free(a, l);
    return rc;
}
