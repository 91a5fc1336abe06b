/*
 * The routes of the auth part: who am I, logout, and the caller's API
 * keys.  Every route is ROUTE_AUTH, so a handler always finds a principal
 * set by auth_authenticate(); each answer carries the RateLimit fields of
 * the request through ratelimit_headers().
 *
 *   GET    /v1/auth/me          the user resource (DESIGN.md §2)
 *   POST   /v1/auth/logout      ends the current session; 204 (a request
 *                               made with an API key: 204, nothing changes)
 *   POST   /v1/keys             {"name": "..."} -> 201 api_key with `key`
 *   GET    /v1/keys             {"keys": [api_key...]}, newest first,
 *                               revoked keys left out
 *   DELETE /v1/keys/{prefix}     204; 404 NOT_FOUND for an unknown, revoked
 *                               or foreign prefix
 */
#include <stdlib.h>
#include <string.h>

#include "spell/crypto.h"
#include "spell/json.h"
#include "spell/models.h"
#include "spell/utf8.h"

#include "auth-impl.h"
#include "ratelimit.h"
#include "store.h"

/* Request body cap of POST /v1/keys; a name is at most 64 characters. */
#define KEYS_BODY_CAP ((size_t)4096)
/* Logout takes no meaningful body; a client may still send "{}". */
#define LOGOUT_BODY_CAP ((size_t)1024)

static struct auth_principal *principal_of(struct request *req)
{
    return httpd_request_principal(req);
}

/* The answer goes out with the request's RateLimit fields. */
static int finish(struct request *req, struct response *resp, struct response **out)
{
    ratelimit_headers(req, resp);
    *out = resp;
    return SPELL_OK;
}

static int answer_error(struct request *req, enum spell_api_error e, const char *message,
                        const char *field, struct response **out)
{
    struct response *resp = NULL;
    cJSON *details = NULL;
    int rc;

    if (field) {
        if (!(details = cJSON_CreateObject()) ||
            !cJSON_AddStringToObject(details, "field", field)) {
            cJSON_Delete(details);
            return SPELL_ENOMEM;
        }
    }
    rc = httpd_response_error(e, message, details, &resp);
    cJSON_Delete(details);
    if (rc != SPELL_OK)
        return rc;
    return finish(req, resp, out);
}

static int answer_json(struct request *req, int status, const cJSON *j, struct response **out)
{
    struct response *resp = NULL;
    int rc;

    if ((rc = httpd_response_json(status, j, &resp)) != SPELL_OK)
        return rc;
    return finish(req, resp, out);
}

static int answer_empty(struct request *req, int status, struct response **out)
{
    struct response *resp = NULL;
    int rc;

    if ((rc = httpd_response_body(status, NULL, NULL, 0, &resp)) != SPELL_OK)
        return rc;
    return finish(req, resp, out);
}

static const char *or_null(const char *s)
{
    return s && *s ? s : NULL;
}

/* GET /v1/auth/me */
static int handle_me(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct auth_principal *ap = principal_of(req);
    struct store_user u;
    struct spell_user su;
    cJSON *j = NULL;
    int rc;

    memset(&su, 0, sizeof su);
    if (!ap)
        return answer_error(req, SPELL_ERR_UNAUTHORIZED, NULL, NULL, out);
    rc = store_user_get(srv->store, ap->p.user_id, &u);
    if (rc == SPELL_ENOTFOUND)
        return answer_error(req, SPELL_ERR_UNAUTHORIZED, NULL, NULL, out);
    if (rc != SPELL_OK)
        return answer_error(req, SPELL_ERR_UNAVAILABLE, NULL, NULL, out);
    su.id = u.id;
    su.login = u.login;
    su.name = (char *)or_null(u.name);
    su.email = (char *)or_null(u.email);
    su.avatar_url = (char *)or_null(u.avatar_url);
    su.created_at = u.created_at;
    if (spell_role_parse(u.role, &su.role) != SPELL_OK)
        su.role = SPELL_ROLE_CASTER;
    if (!(j = spell_user_to_json(&su)))
        return SPELL_ENOMEM;
    rc = answer_json(req, 200, j, out);
    cJSON_Delete(j);
    return rc;
}

/* POST /v1/auth/logout */
static int handle_logout(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct auth_principal *ap = principal_of(req);
    int rc;

    if (!ap)
        return answer_error(req, SPELL_ERR_UNAUTHORIZED, NULL, NULL, out);
    if (ap->p.via_session) {
        rc = store_session_delete(srv->store, ap->p.session_hash);
        if (rc != SPELL_OK && rc != SPELL_ENOTFOUND)
            return answer_error(req, SPELL_ERR_UNAVAILABLE, NULL, NULL, out);
    }
    return answer_empty(req, 204, out);
}

/* A key name: 1..AUTH_KEY_NAME_MAX characters of valid UTF-8 without
 * control characters (C0, DEL, C1). */
static int key_name_valid(const char *name)
{
    size_t n = strlen(name), i, chars;

    if (n == 0 || !spell_utf8_valid(name, n))
        return 0;
    chars = spell_utf8_count(name, n);
    if (chars < 1 || chars > AUTH_KEY_NAME_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c == 0xc2 && i + 1 < n && (unsigned char)name[i + 1] >= 0x80 &&
            (unsigned char)name[i + 1] <= 0x9f)
            return 0;
    }
    return 1;
}

static cJSON *key_json(const struct store_key *k, const char *full)
{
    struct spell_api_key r;

    memset(&r, 0, sizeof r);
    r.id = (char *)k->id;
    r.prefix = (char *)k->prefix;
    r.name = (char *)or_null(k->name);
    r.created_at = k->created_at;
    r.last_used_at = k->last_used_at;
    r.key = (char *)full;
    return spell_api_key_to_json(&r);
}

/* POST /v1/keys */
static int handle_key_create(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct auth_principal *ap = principal_of(req);
    char err[256] = "";
    char full[AUTH_KEY_OUT_SIZE] = "";
    struct store_key row;
    struct spell_json_at at;
    const char *body;
    size_t len = 0;
    cJSON *doc = NULL, *j = NULL;
    char *name = NULL;
    int rc;

    memset(&row, 0, sizeof row);
    if (!ap)
        return answer_error(req, SPELL_ERR_UNAUTHORIZED, NULL, NULL, out);
    body = httpd_request_body(req, &len);
    if (!body || len == 0) {
        rc = answer_error(req, SPELL_ERR_VALIDATION_ERROR,
                          "The request body must be a JSON object with a \"name\".", "body", out);
        goto out;
    }
    rc = spell_json_parse(body, len, NULL, &doc, err, sizeof err);
    if (rc == SPELL_ENOMEM)
        goto out;
    if (rc != SPELL_OK) {
        rc = answer_error(req, SPELL_ERR_VALIDATION_ERROR, err, "body", out);
        goto out;
    }
    if (!cJSON_IsObject(doc)) {
        rc = answer_error(req, SPELL_ERR_VALIDATION_ERROR,
                          "The request body must be a JSON object.", "body", out);
        goto out;
    }
    at.obj = doc;
    at.path = "";
    at.err = err;
    at.errlen = sizeof err;
    rc = spell_json_get_string(&at, "name", SPELL_JSON_REQUIRED | SPELL_JSON_NONEMPTY,
                               4 * AUTH_KEY_NAME_MAX, &name);
    if (rc == SPELL_ENOMEM)
        goto out;
    if (rc != SPELL_OK || !key_name_valid(name)) {
        rc = answer_error(req, SPELL_ERR_VALIDATION_ERROR,
                          rc != SPELL_OK ? err
                                         : "field 'name' must be 1 to 64 printable characters",
                          "name", out);
        goto out;
    }
    rc = auth_key_create(srv, srv->auth, ap->p.user_id, name, full, sizeof full, &row);
    if (rc == AUTH_ETOOMANY) {
        rc = answer_error(req, SPELL_ERR_VALIDATION_ERROR,
                          "A user may hold at most 20 API keys: revoke one first.", "keys", out);
        goto out;
    }
    if (rc == SPELL_ENOMEM)
        goto out;
    if (rc != SPELL_OK) {
        rc = answer_error(req, SPELL_ERR_UNAVAILABLE, NULL, NULL, out);
        goto out;
    }
    rc = SPELL_ENOMEM;
    if (!(j = key_json(&row, full)))
        goto out;
    rc = answer_json(req, 201, j, out);
out:
    explicit_bzero(full, sizeof full);
    explicit_bzero(&row, sizeof row);
    if (j) {
        /* The tree holds the full key: clear it before it is freed. */
        cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "key");
        if (cJSON_IsString(k) && k->valuestring)
            explicit_bzero(k->valuestring, strlen(k->valuestring));
        cJSON_Delete(j);
    }
    free(name);
    cJSON_Delete(doc);
    return rc;
}

struct list_ctx {
    cJSON *arr;
    int failed;
};

static int list_one(void *ud, const struct store_key *k)
{
    struct list_ctx *c = ud;
    cJSON *j;

    if (k->revoked_at != 0)
        return 0;
    if (!(j = key_json(k, NULL)) || !cJSON_AddItemToArray(c->arr, j)) {
        cJSON_Delete(j);
        c->failed = 1;
        return 1;
    }
    return 0;
}

/* GET /v1/keys */
static int handle_key_list(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct auth_principal *ap = principal_of(req);
    struct list_ctx c = {0};
    cJSON *doc = NULL;
    int rc;

    if (!ap)
        return answer_error(req, SPELL_ERR_UNAUTHORIZED, NULL, NULL, out);
    if (!(doc = cJSON_CreateObject()) || !(c.arr = cJSON_AddArrayToObject(doc, "keys"))) {
        cJSON_Delete(doc);
        return SPELL_ENOMEM;
    }
    rc = store_key_list(srv->store, ap->p.user_id, list_one, &c);
    if (c.failed)
        rc = SPELL_ENOMEM;
    else if (rc != SPELL_OK)
        rc = answer_error(req, SPELL_ERR_UNAVAILABLE, NULL, NULL, out);
    else
        rc = answer_json(req, 200, doc, out);
    cJSON_Delete(doc);
    return rc;
}

static int prefix_valid(const char *p)
{
    size_t i;

    if (!p)
        return 0;
    for (i = 0; i < SPELL_APIKEY_PREFIX_LEN; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return p[SPELL_APIKEY_PREFIX_LEN] == '\0';
}

/* DELETE /v1/keys/{prefix} */
static int handle_key_revoke(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct auth_principal *ap = principal_of(req);
    const char *prefix = httpd_request_param(req, "prefix");
    int rc;

    if (!ap)
        return answer_error(req, SPELL_ERR_UNAUTHORIZED, NULL, NULL, out);
    if (!prefix_valid(prefix))
        return answer_error(req, SPELL_ERR_NOT_FOUND, "No such API key.", NULL, out);
    rc = store_key_revoke(srv->store, ap->p.user_id, prefix, srv_now_ms(&srv->clock));
    if (rc == SPELL_ENOTFOUND)
        return answer_error(req, SPELL_ERR_NOT_FOUND, "No such API key.", NULL, out);
    if (rc != SPELL_OK)
        return answer_error(req, SPELL_ERR_UNAVAILABLE, NULL, NULL, out);
    auth_key_cache_drop(srv->auth, prefix);
    return answer_empty(req, 204, out);
}

void auth_handlers_init(struct auth *a)
{
    const struct route rows[AUTH_ROUTES] = {
        {"GET", "/v1/auth/me", handle_me, a->srv, ROUTE_AUTH | ROUTE_NO_BODY, 0},
        {"POST", "/v1/auth/logout", handle_logout, a->srv, ROUTE_AUTH, LOGOUT_BODY_CAP},
        {"POST", "/v1/keys", handle_key_create, a->srv, ROUTE_AUTH, KEYS_BODY_CAP},
        {"GET", "/v1/keys", handle_key_list, a->srv, ROUTE_AUTH | ROUTE_NO_BODY, 0},
        {"DELETE", "/v1/keys/{prefix}", handle_key_revoke, a->srv, ROUTE_AUTH | ROUTE_NO_BODY, 0},
    };

    memcpy(a->rows, rows, sizeof rows);
}

int auth_routes(struct server *srv, const struct route **rows, size_t *n)
{
    if (rows)
        *rows = NULL;
    if (n)
        *n = 0;
    if (!srv || !srv->auth || !rows || !n)
        return SPELL_EINVAL;
    *rows = srv->auth->rows;
    *n = AUTH_ROUTES;
    return SPELL_OK;
}
