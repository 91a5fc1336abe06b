/*
 * Privacy: GET /v1/users/me/export and DELETE /v1/users/me (GDPR, CCPA,
 * APPI access and erasure).
 *
 * Export hands back everything the store holds about the caller as one
 * JSON document (store_user_export), sent as a download.  Erasure removes
 * the caller and every row about them in one store transaction; ledger
 * entries keep their amounts and lose the user link, so the chain still
 * verifies.  Before erasing, each of the caller's API keys is dropped from
 * the auth part's verified-key cache, so no cached key can authenticate a
 * request for a user who no longer exists; the drop is repeated after the
 * erasure to close the window in which a concurrent request could have
 * cached a key again.
 */
#include <stdlib.h>
#include <string.h>

#include "spell/buf.h"

#include "api-int.h"

/* The largest export answered; the layer's response cap. */
#define EXPORT_MAX HTTPD_RESPONSE_MAX
/* Keys whose cache entries one erasure drops; a user with more keys than
 * this (revoked ones included) has the rest dropped by the auth part when
 * their lookup fails against the erased store. */
#define ERASE_KEYS_MAX 1024

int privacy_export(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const struct principal *p = api_principal(req);
    struct spell_buf b;
    int rc;

    if (!p)
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    spell_buf_init(&b, EXPORT_MAX);
    if ((rc = store_user_export(srv->store, p->user_id, &b)) != SPELL_OK)
        goto out;
    if ((rc = httpd_response_body(200, "application/json", spell_buf_str(&b), b.len, out)) !=
        SPELL_OK)
        goto out;
    rc = httpd_response_header(*out, "Content-Disposition",
                               "attachment; filename=\"spell-export.json\"");
    if (rc != SPELL_OK) {
        httpd_response_free(*out);
        *out = NULL;
    }
out:
    spell_buf_free(&b);
    return rc;
}

struct prefixes {
    char (*p)[STORE_KEY_PREFIX_SIZE];
    size_t n;
};

static int collect(void *ud, const struct store_key *k)
{
    struct prefixes *ps = ud;

    if (ps->n >= ERASE_KEYS_MAX)
        return 1;
    memcpy(ps->p[ps->n++], k->prefix, STORE_KEY_PREFIX_SIZE);
    return 0;
}

static void drop_all(struct server *srv, const struct prefixes *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        auth_key_cache_drop(srv->auth, ps->p[i]);
}

int privacy_erase(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const struct principal *p = api_principal(req);
    struct prefixes ps = {NULL, 0};
    int rc = SPELL_ENOMEM;

    if (!p)
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    if (!(ps.p = calloc(ERASE_KEYS_MAX, sizeof *ps.p)))
        goto out;
    rc = store_key_list(srv->store, p->user_id, collect, &ps);
    if (rc != SPELL_OK && rc != SPELL_EABORT)
        goto out;
    drop_all(srv, &ps);
    if ((rc = store_user_erase(srv->store, p->user_id)) != SPELL_OK)
        goto out;
    drop_all(srv, &ps);
    rc = httpd_response_body(204, NULL, NULL, 0, out);
out:
    free(ps.p);
    return rc;
}
