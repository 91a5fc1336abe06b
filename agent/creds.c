/*
 * The credential as the loop sees it: a token in memory, where it came
 * from and the login it belongs to.
 *
 * The desktop module (desktop/desktop.h) owns the keyring, the 0600 file
 * fallback and SPELL_API_KEY: creds_start() asks it for the credential
 * and, until the answer comes back, nothing is submitted (casts wait as
 * pending).  When the desktop module cannot start at all, the agent still
 * works with SPELL_API_KEY from its environment.  A credential whose
 * login is unknown (SPELL_API_KEY) is checked once with GET /v1/auth/me
 * to learn it.  The token is wiped when replaced and never logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "spell/models.h"

#include "agent.h"
#include "desktop/desktop.h"

const char *creds_token(const struct agent *a)
{
    return a->token && a->token[0] ? a->token : NULL;
}

const char *creds_source_name(const struct agent *a)
{
    if (!creds_token(a))
        return "none";
    return desktop_cred_source_name((enum desktop_cred_source)a->cred_source);
}

void creds_clear(struct agent *a)
{
    if (a->token) {
        explicit_bzero(a->token, strlen(a->token));
        free(a->token);
    }
    a->token = NULL;
    a->cred_source = DESKTOP_CRED_NONE;
    a->account[0] = '\0';
    a->cred_path[0] = '\0';
}

int creds_set(struct agent *a, const char *token, int source, const char *account,
              const char *path)
{
    char *t = strdup(token);

    if (!t)
        return SPELL_ENOMEM;
    creds_clear(a);
    a->token = t;
    a->cred_source = source;
    snprintf(a->account, sizeof(a->account), "%s", account ? account : "");
    snprintf(a->cred_path, sizeof(a->cred_path), "%s", path ? path : "");
    return SPELL_OK;
}

int creds_key_prefix(const char *token, char *out, size_t outlen)
{
    struct spell_apikey k;
    int rc = spell_apikey_parse(token, &k);

    if (rc == SPELL_OK)
        snprintf(out, outlen, "%s", k.prefix);
    spell_apikey_wipe(&k);
    return rc;
}

/* GET /v1/auth/me for a credential whose login is not known. */
static void me_done(struct agent *a, int rc, int status, const char *body, size_t len,
                    void *user)
{
    struct spell_user u = {0};
    cJSON *j = NULL;

    if (rc != SPELL_OK || status != 200)
        return;
    if (spell_json_parse(body, len, NULL, &j, NULL, 0) == SPELL_OK &&
        spell_user_from_json(j, &u, NULL, 0) == SPELL_OK && creds_token(a) && !a->account[0])
        snprintf(a->account, sizeof(a->account), "%s", u.login);
    spell_user_free(&u);
    cJSON_Delete(j);
}

static void learn_account(struct agent *a)
{
    if (creds_token(a) && !a->account[0] &&
        http_get_start(a, "/v1/auth/me", a->token, me_done, NULL) != SPELL_OK)
        agent_log("cannot ask the server who the credential belongs to");
}

static void load_done(void *ud, const struct desktop_cred_result *r)
{
    struct agent *a = ud;

    a->cred_loading = false;
    /* A fallback (keyring unavailable) was already said once by the
     * desktop module; only a failure is worth a line of its own. */
    if (r->rc != SPELL_OK) {
        agent_log("credential: cannot be loaded (%s)",
                  r->message[0] ? r->message : spell_strerror(r->rc));
        /* The desktop helper down (or the file refused): SPELL_API_KEY
         * still works, as it does with no desktop module at all. */
        if (a->env_api_key && !creds_token(a) &&
            creds_set(a, a->env_api_key, DESKTOP_CRED_ENV, "", "") == SPELL_OK) {
            agent_log("credential: from env");
            learn_account(a);
        }
    } else if (r->source == DESKTOP_CRED_NONE || !r->token[0]) {
        creds_clear(a);
        agent_log("credential: none stored; sign in with `spell login`");
    } else if (creds_set(a, r->token, r->source, r->account, r->path) == SPELL_OK) {
        agent_log("credential: from %s", desktop_cred_source_name(r->source));
        learn_account(a);
    }
    submit_pump(a);
}

int creds_reload(struct agent *a)
{
    if (!a->desktop) {
        if (a->env_api_key && creds_set(a, a->env_api_key, DESKTOP_CRED_ENV, "", "") == SPELL_OK)
            learn_account(a);
        a->cred_loading = false;
        return SPELL_OK;
    }
    a->cred_loading = true;
    return desktop_cred_load(a->desktop, load_done, a);
}

int creds_start(struct agent *a)
{
    return creds_reload(a);
}

struct login *login_new(struct agent *a, struct rpc_call *call)
{
    struct login *l = calloc(1, sizeof(*l));

    if (!l)
        return NULL;
    l->a = a;
    l->call = call;
    l->next = a->logins;
    a->logins = l;
    return l;
}

void login_free(struct agent *a, struct login *l)
{
    for (struct login **pp = &a->logins; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    if (l->token) {
        explicit_bzero(l->token, strlen(l->token));
        free(l->token);
    }
    free(l);
}

void creds_free_logins(struct agent *a)
{
    while (a->logins)
        login_free(a, a->logins);
}
