/*
 * API key and session verification, the verified-key cache, the httpd
 * authenticate hook, user creation and sessions (see auth.h for the flow
 * and the parameters).
 *
 * The cache maps SHA-256(full key) to what a verification established: the
 * user, the key prefix, and when the store last confirmed the key was not
 * revoked.  A hit never runs Argon2; it re-reads the store only when that
 * confirmation is older than revoke_recheck_ms.  Full keys and session
 * tokens stay in stack buffers that are wiped before return.
 */
#include <argon2.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "spell/crypto.h"
#include "spell/errors.h"

#include "auth-impl.h"
#include "ratelimit.h"
#include "store.h"

struct key_entry {
    struct key_entry *next;
    unsigned char digest[SPELL_SHA256_LEN];
    char user_id[STORE_ID_SIZE];
    char login[STORE_LOGIN_SIZE];
    char role[STORE_ROLE_SIZE];
    char prefix[STORE_KEY_PREFIX_SIZE];
    /* When the store last said the key is live (Unix ms). */
    int64_t checked_ms;
    /* When last_used_at was last written for this key (Unix ms). */
    int64_t touched_ms;
    /* The cache generation the entry was filled under. */
    uint64_t generation;
};

static void wipe(void *p, size_t n)
{
    explicit_bzero(p, n);
}

/* ---- context ---------------------------------------------------------- */

int auth_new(struct server *srv, struct auth **out)
{
    return auth_new_config(srv, NULL, out);
}

int auth_new_config(struct server *srv, const struct auth_config *cfg, struct auth **out)
{
    int rc = SPELL_EINVAL;
    struct auth *a = NULL;
    int cache_lock = 0, create_lock = 0;

    if (!out)
        return SPELL_EINVAL;
    *out = NULL;
    if (!srv)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(a = calloc(1, sizeof *a)))
        goto out;
    a->srv = srv;
    if (cfg)
        a->cfg = *cfg;
    if (!a->cfg.argon2_t_cost)
        a->cfg.argon2_t_cost = AUTH_ARGON2_T_COST;
    if (!a->cfg.argon2_m_cost_kib)
        a->cfg.argon2_m_cost_kib = AUTH_ARGON2_M_COST_KIB;
    if (!a->cfg.cache_max)
        a->cfg.cache_max = AUTH_KEY_CACHE_MAX;
    if (a->cfg.cache_max > (size_t)1 << 24)
        a->cfg.cache_max = (size_t)1 << 24;
    if (!a->cfg.revoke_recheck_ms)
        a->cfg.revoke_recheck_ms = AUTH_REVOKE_RECHECK_MS;
    if (!a->cfg.touch_interval_ms)
        a->cfg.touch_interval_ms = AUTH_TOUCH_INTERVAL_MS;
    a->nbuckets = 1;
    while (a->nbuckets < a->cfg.cache_max)
        a->nbuckets <<= 1;
    if (!(a->buckets = calloc(a->nbuckets, sizeof *a->buckets)))
        goto out;
    if (pthread_mutex_init(&a->cache_lock, NULL) != 0)
        goto out;
    cache_lock = 1;
    if (pthread_mutex_init(&a->create_lock, NULL) != 0)
        goto out;
    create_lock = 1;
    atomic_init(&a->argon2_runs, 0);
    auth_handlers_init(a);
    *out = a;
    a = NULL;
    rc = SPELL_OK;
out:
    if (a) {
        if (cache_lock)
            pthread_mutex_destroy(&a->cache_lock);
        if (create_lock)
            pthread_mutex_destroy(&a->create_lock);
        free(a->buckets);
        free(a);
    }
    return rc;
}

void auth_free(struct auth *a)
{
    size_t i;

    if (!a)
        return;
    for (i = 0; i < a->nbuckets; i++) {
        struct key_entry *e = a->buckets[i];
        while (e) {
            struct key_entry *next = e->next;
            wipe(e, sizeof *e);
            free(e);
            e = next;
        }
    }
    free(a->buckets);
    pthread_mutex_destroy(&a->cache_lock);
    pthread_mutex_destroy(&a->create_lock);
    free(a);
}

uint64_t auth_argon2_runs(struct auth *a)
{
    return a ? (uint64_t)atomic_load(&a->argon2_runs) : 0;
}

/* ---- Argon2id --------------------------------------------------------- */

static int key_hash_params(uint32_t t_cost, uint32_t m_cost, const char *key, char *out,
                           size_t outlen)
{
    unsigned char salt[AUTH_ARGON2_SALT_LEN];
    int rc;

    if (outlen < argon2_encodedlen(t_cost, m_cost, AUTH_ARGON2_PARALLELISM,
                                   AUTH_ARGON2_SALT_LEN, AUTH_ARGON2_HASH_LEN, Argon2_id))
        return SPELL_ETOOBIG;
    if ((rc = spell_random_bytes(salt, sizeof salt)) != SPELL_OK)
        return rc;
    if (argon2id_hash_encoded(t_cost, m_cost, AUTH_ARGON2_PARALLELISM, key, strlen(key), salt,
                              sizeof salt, AUTH_ARGON2_HASH_LEN, out, outlen) != ARGON2_OK) {
        out[0] = '\0';
        return SPELL_ECRYPTO;
    }
    return SPELL_OK;
}

int auth_key_hash(struct auth *a, const char *key, char *out, size_t outlen)
{
    if (!a || !key || !out || !outlen)
        return SPELL_EINVAL;
    atomic_fetch_add(&a->argon2_runs, 1);
    return key_hash_params(a->cfg.argon2_t_cost, a->cfg.argon2_m_cost_kib, key, out, outlen);
}

/* ---- the verified-key cache ------------------------------------------ */

static size_t bucket_of(const struct auth *a, const unsigned char *digest)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++)
        v = v << 8 | digest[i];
    return (size_t)(v & (a->nbuckets - 1));
}

/* Lock held. */
static struct key_entry *cache_find(struct auth *a, const unsigned char *digest)
{
    struct key_entry *e;

    for (e = a->buckets[bucket_of(a, digest)]; e; e = e->next)
        if (spell_ct_equal(e->digest, sizeof e->digest, digest, SPELL_SHA256_LEN))
            return e;
    return NULL;
}

/* Lock held.  Removes one entry chosen by the digest of the newcomer
 * (uniformly spread, so a random one): the first entry at or after its
 * bucket. */
static void cache_evict_one(struct auth *a, const unsigned char *digest)
{
    size_t start = bucket_of(a, digest), i;

    for (i = 0; i < a->nbuckets; i++) {
        size_t b = (start + i) & (a->nbuckets - 1);
        struct key_entry *e = a->buckets[b];
        if (e) {
            a->buckets[b] = e->next;
            wipe(e, sizeof *e);
            free(e);
            a->count--;
            return;
        }
    }
}

/* Lock held.  Removes the entry with this digest, or every entry of the
 * prefix when digest is NULL. */
static void cache_remove(struct auth *a, const unsigned char *digest, const char *prefix)
{
    size_t b, first = 0, last = a->nbuckets;

    if (digest) {
        first = bucket_of(a, digest);
        last = first + 1;
    }
    for (b = first; b < last; b++) {
        struct key_entry **pp = &a->buckets[b];
        while (*pp) {
            struct key_entry *e = *pp;
            int match = digest ? spell_ct_equal(e->digest, sizeof e->digest, digest,
                                                SPELL_SHA256_LEN)
                               : strcmp(e->prefix, prefix) == 0;
            if (match) {
                *pp = e->next;
                wipe(e, sizeof *e);
                free(e);
                a->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}

void auth_key_cache_drop(struct auth *a, const char *prefix)
{
    if (!a || !prefix)
        return;
    pthread_mutex_lock(&a->cache_lock);
    a->generation++;
    cache_remove(a, NULL, prefix);
    pthread_mutex_unlock(&a->cache_lock);
}

/* Puts a verified key in the cache unless a drop happened since gen. */
static void cache_insert(struct auth *a, const unsigned char *digest, uint64_t gen,
                         const struct store_user *u, const char *prefix, int64_t now,
                         int64_t touched)
{
    struct key_entry *e;
    size_t b;

    pthread_mutex_lock(&a->cache_lock);
    if (a->generation != gen || cache_find(a, digest))
        goto out;
    if (a->count >= a->cfg.cache_max)
        cache_evict_one(a, digest);
    if (!(e = calloc(1, sizeof *e)))
        goto out;   /* the cache is an optimisation: go on without it */
    memcpy(e->digest, digest, sizeof e->digest);
    memcpy(e->user_id, u->id, sizeof e->user_id);
    memcpy(e->login, u->login, sizeof e->login);
    memcpy(e->role, u->role, sizeof e->role);
    snprintf(e->prefix, sizeof e->prefix, "%s", prefix);
    e->checked_ms = now;
    e->touched_ms = touched;
    e->generation = gen;
    b = bucket_of(a, digest);
    e->next = a->buckets[b];
    a->buckets[b] = e;
    a->count++;
out:
    pthread_mutex_unlock(&a->cache_lock);
}

/* ---- verification ---------------------------------------------------- */

static void principal_fill(struct auth_principal *out, const char *user_id, const char *login,
                           const char *role)
{
    snprintf(out->p.user_id, sizeof out->p.user_id, "%s", user_id);
    snprintf(out->p.login, sizeof out->p.login, "%s", login);
    snprintf(out->p.role, sizeof out->p.role, "%s", role);
}

/* Confirms a cached key against the store: still there, live, the same
 * user.  SPELL_OK, SPELL_EVERIFY, or a store failure. */
static int key_recheck(struct auth *a, const char *prefix, const char *user_id,
                       struct store_user *u)
{
    struct store_key k;
    int rc;

    rc = store_key_by_prefix(a->srv->store, prefix, &k);
    if (rc == SPELL_ENOTFOUND)
        return SPELL_EVERIFY;
    if (rc != SPELL_OK)
        return rc;
    rc = SPELL_EVERIFY;
    if (k.revoked_at != 0 || strcmp(k.user_id, user_id) != 0)
        goto out;
    rc = store_user_get(a->srv->store, user_id, u);
    if (rc == SPELL_ENOTFOUND)
        rc = SPELL_EVERIFY;
out:
    wipe(&k, sizeof k);
    return rc;
}

/*
 * auth_verify_key() with a gate before Argon2id: when gate is set it is
 * asked (with the key's prefix) right before the one expensive step, and
 * a 0 answer ends the verification with SPELL_EABORT and no Argon2 run.
 * A key in the verified-key cache never reaches the gate.
 */
static int verify_key(struct auth *a, const char *key, struct auth_principal *out,
                      int (*gate)(void *ud, const char *prefix), void *gate_ud)
{
    int rc = SPELL_EINVAL;
    struct spell_apikey parsed;
    unsigned char digest[SPELL_SHA256_LEN];
    struct store_key k;
    struct store_user u;
    struct key_entry *e;
    char prefix[STORE_KEY_PREFIX_SIZE] = "";
    char user_id[STORE_ID_SIZE] = "";
    int recheck = 0, touch = 0;
    uint64_t gen;
    int64_t now;

    memset(&parsed, 0, sizeof parsed);
    memset(&k, 0, sizeof k);
    memset(&u, 0, sizeof u);
    if (out)
        memset(out, 0, sizeof *out);
    if (!a || !key || !out)
        goto out;
    if ((rc = spell_apikey_parse(key, &parsed)) != SPELL_OK)
        goto out;
    if ((rc = spell_sha256(parsed.key, strlen(parsed.key), digest)) != SPELL_OK)
        goto out;
    now = srv_now_ms(&a->srv->clock);

    pthread_mutex_lock(&a->cache_lock);
    gen = a->generation;
    if ((e = cache_find(a, digest))) {
        principal_fill(out, e->user_id, e->login, e->role);
        snprintf(prefix, sizeof prefix, "%s", e->prefix);
        snprintf(user_id, sizeof user_id, "%s", e->user_id);
        recheck = now - e->checked_ms >= a->cfg.revoke_recheck_ms || now < e->checked_ms;
        if (now - e->touched_ms >= a->cfg.touch_interval_ms) {
            e->touched_ms = now;
            touch = 1;
        }
    }
    pthread_mutex_unlock(&a->cache_lock);

    if (e) {
        if (recheck) {
            rc = key_recheck(a, prefix, user_id, &u);
            if (rc == SPELL_EVERIFY) {
                pthread_mutex_lock(&a->cache_lock);
                a->generation++;
                cache_remove(a, digest, NULL);
                pthread_mutex_unlock(&a->cache_lock);
                goto out;
            }
            if (rc != SPELL_OK)
                goto out;
            principal_fill(out, u.id, u.login, u.role);
            pthread_mutex_lock(&a->cache_lock);
            if ((e = cache_find(a, digest))) {
                e->checked_ms = now;
                memcpy(e->login, u.login, sizeof e->login);
                memcpy(e->role, u.role, sizeof e->role);
            }
            pthread_mutex_unlock(&a->cache_lock);
        }
        if (touch)
            (void)store_key_touch(a->srv->store, prefix, now);
        snprintf(out->p.key_prefix, sizeof out->p.key_prefix, "%s", prefix);
        rc = SPELL_OK;
        goto out;
    }

    /* A miss: the store and one Argon2id verification. */
    rc = store_key_by_prefix(a->srv->store, parsed.prefix, &k);
    if (rc == SPELL_ENOTFOUND) {
        rc = SPELL_EVERIFY;
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    rc = SPELL_EVERIFY;
    if (k.revoked_at != 0)
        goto out;
    if (gate && !gate(gate_ud, k.prefix)) {
        rc = SPELL_EABORT;
        goto out;
    }
    atomic_fetch_add(&a->argon2_runs, 1);
    if (argon2id_verify(k.hash, parsed.key, strlen(parsed.key)) != ARGON2_OK)
        goto out;
    rc = store_user_get(a->srv->store, k.user_id, &u);
    if (rc == SPELL_ENOTFOUND)
        rc = SPELL_EVERIFY;
    if (rc != SPELL_OK)
        goto out;
    touch = now - k.last_used_at >= a->cfg.touch_interval_ms;
    if (touch)
        (void)store_key_touch(a->srv->store, k.prefix, now);
    cache_insert(a, digest, gen, &u, k.prefix, now, touch ? now : k.last_used_at);
    principal_fill(out, u.id, u.login, u.role);
    snprintf(out->p.key_prefix, sizeof out->p.key_prefix, "%s", k.prefix);
    rc = SPELL_OK;
out:
    if (rc != SPELL_OK && out)
        memset(out, 0, sizeof *out);
    spell_apikey_wipe(&parsed);
    wipe(digest, sizeof digest);
    wipe(&k, sizeof k);
    return rc;
}

int auth_verify_key(struct auth *a, const char *key, struct auth_principal *out)
{
    return verify_key(a, key, out, NULL, NULL);
}

static int is_base62(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

int auth_verify_session(struct auth *a, const char *token, struct auth_principal *out)
{
    int rc = SPELL_EINVAL;
    char hex[SPELL_SHA256_HEX_LEN + 1];
    struct store_user u;
    size_t i;

    memset(&u, 0, sizeof u);
    if (out)
        memset(out, 0, sizeof *out);
    if (!a || !token || !out)
        return SPELL_EINVAL;
    rc = SPELL_EVERIFY;
    for (i = 0; i < SPELL_SESSION_TOKEN_LEN; i++)
        if (!is_base62((unsigned char)token[i]))
            return rc;
    if (token[SPELL_SESSION_TOKEN_LEN] != '\0')
        return rc;
    if ((rc = spell_sha256_hex(token, SPELL_SESSION_TOKEN_LEN, hex)) != SPELL_OK)
        return rc;
    rc = store_session_user(a->srv->store, hex, srv_now_ms(&a->srv->clock), &u);
    if (rc == SPELL_ENOTFOUND)
        rc = SPELL_EVERIFY;
    if (rc != SPELL_OK)
        goto out;
    principal_fill(out, u.id, u.login, u.role);
    out->p.via_session = 1;
    memcpy(out->p.session_hash, hex, sizeof out->p.session_hash);
out:
    wipe(hex, sizeof hex);
    return rc;
}

/* ---- header parsing ----------------------------------------------------- */

static int is_token68(int c)
{
    return is_base62(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int auth_bearer_parse(const char *value, char *token, size_t cap)
{
    const char *p, *t;
    size_t n;

    if (token && cap)
        token[0] = '\0';
    if (!value || !token || !cap)
        return SPELL_EINVAL;
    p = value;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return SPELL_EINVAL;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    t = p;
    while (is_token68((unsigned char)*p))
        p++;
    while (*p == '=')
        p++;
    n = (size_t)(p - t);
    while (*p == ' ' || *p == '\t')
        p++;
    /* Anything else (a second token, a comma, a control byte) is not one
     * bearer credential. */
    if (*p != '\0' || n == 0)
        return SPELL_EINVAL;
    if (n > AUTH_TOKEN_MAX || n >= cap)
        return SPELL_ETOOBIG;
    memcpy(token, t, n);
    token[n] = '\0';
    return SPELL_OK;
}

int auth_cookie_session(const char *value, char *token, size_t cap)
{
    const size_t name_len = sizeof AUTH_SESSION_COOKIE - 1;
    const char *p;
    int found = 0, rc = SPELL_OK;

    if (token && cap)
        token[0] = '\0';
    if (!value || !token || !cap)
        return SPELL_EINVAL;
    for (p = value; *p;) {
        const char *name, *val, *end;
        size_t n, vn;

        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        name = p;
        while (*p && *p != ';' && *p != '=')
            p++;
        n = (size_t)(p - name);
        while (n && (name[n - 1] == ' ' || name[n - 1] == '\t'))
            n--;
        if (*p != '=') {
            continue;
        }
        val = ++p;
        while (*p && *p != ';')
            p++;
        end = p;
        while (end > val && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        while (val < end && (*val == ' ' || *val == '\t'))
            val++;
        if (n != name_len || strncmp(name, AUTH_SESSION_COOKIE, name_len) != 0)
            continue;
        if (found++) {
            rc = SPELL_EINVAL;
            break;
        }
        vn = (size_t)(end - val);
        if (vn > AUTH_TOKEN_MAX || vn >= cap) {
            rc = SPELL_ETOOBIG;
            break;
        }
        for (size_t i = 0; i < vn; i++) {
            if (!is_base62((unsigned char)val[i])) {
                rc = SPELL_EINVAL;
                break;
            }
        }
        if (rc != SPELL_OK)
            break;
        if (vn == 0) {
            rc = SPELL_EINVAL;
            break;
        }
        memcpy(token, val, vn);
        token[vn] = '\0';
    }
    if (rc == SPELL_OK && !found)
        rc = SPELL_ENOTFOUND;
    if (rc != SPELL_OK)
        wipe(token, cap);
    return rc;
}

/* ---- the hook --------------------------------------------------------- */

/* 401 with WWW-Authenticate; err is NULL or an RFC 6750 error code. */
static void reject_401(struct request *req, const char *err, const char *message)
{
    struct response *resp = NULL;
    char value[96];

    if (httpd_response_error(SPELL_ERR_UNAUTHORIZED, message, NULL, &resp) != SPELL_OK)
        return;     /* httpd answers a plain 401 */
    if (err)
        snprintf(value, sizeof value, "Bearer error=\"%s\"", err);
    else
        snprintf(value, sizeof value, "Bearer");
    (void)httpd_response_header(resp, "WWW-Authenticate", value);
    httpd_request_reject(req, resp);
}

static void reject_error(struct request *req, enum spell_api_error e)
{
    struct response *resp = NULL;

    if (httpd_response_error(e, NULL, NULL, &resp) == SPELL_OK)
        httpd_request_reject(req, resp);
}

/* The address a request is counted under by the "ip" policy. */
static const char *remote_of(struct request *req)
{
    const char *ip = httpd_request_remote(req);

    return ip && *ip && strcmp(ip, "-") != 0 ? ip : "unknown";
}

/* The gate verify_key() asks before Argon2id when the caller's address is
 * already past its "ip" limit: at most RATELIMIT_VERIFY_LIMIT runs per
 * minute for one address and key prefix (see auth.h). */
struct verify_gate {
    struct ratelimit *rl;
    const char *ip;
};

static int gate_argon2(void *ud, const char *prefix)
{
    const struct verify_gate *g = ud;
    struct ratelimit_result r;
    char subject[RATELIMIT_SUBJECT_MAX + 1];
    int n = snprintf(subject, sizeof subject, "%s %s", g->ip, prefix);

    if (n < 0 || (size_t)n >= sizeof subject)
        return 0;
    return ratelimit_take(g->rl, RATELIMIT_IP_VERIFY, subject, &r) == SPELL_OK && r.allowed;
}

/*
 * A request without a valid credential: it counts against its address's
 * "ip" limit.  Within the limit the answer is the 401 (err and message as
 * for reject_401()); past it, 429 with Retry-After and the RateLimit
 * fields of the "ip" policy.
 */
static void reject_failed(struct request *req, struct server *srv, const char *err,
                          const char *message)
{
    struct ratelimit_result r;
    struct response *resp = NULL;

    if (srv->rl) {
        if (ratelimit_take(srv->rl, RATELIMIT_IP, remote_of(req), &r) != SPELL_OK) {
            /* An address that cannot be tracked is refused, not let past. */
            memset(&r, 0, sizeof r);
            r.window_s = 60;
            r.reset_s = RATELIMIT_FULL_RETRY_S;
        }
        if (!r.allowed) {
            if (ratelimit_refusal(RATELIMIT_IP, &r, &resp) == SPELL_OK)
                httpd_request_reject(req, resp);
            else
                reject_error(req, SPELL_ERR_INTERNAL);
            return;
        }
    }
    reject_401(req, err, message);
}

int auth_authenticate(struct request *req, void *ud)
{
    struct server *srv = ud;
    struct auth_principal *ap = NULL;
    char token[AUTH_TOKEN_MAX + 1];
    const char *authz, *cookie;
    struct verify_gate gate;
    int rc = SPELL_EINVAL, blocked = 0;

    token[0] = '\0';
    if (!req || !srv || !srv->auth) {
        if (req)
            reject_error(req, SPELL_ERR_INTERNAL);
        return SPELL_EINVAL;
    }
    gate.rl = srv->rl;
    gate.ip = remote_of(req);
    authz = httpd_request_header(req, "Authorization");
    cookie = httpd_request_header(req, "Cookie");
    if (authz) {
        if ((rc = auth_bearer_parse(authz, token, sizeof token)) != SPELL_OK) {
            reject_failed(req, srv, "invalid_request",
                          "The Authorization field must be one Bearer token.");
            goto out;
        }
    } else if (cookie &&
               (rc = auth_cookie_session(cookie, token, sizeof token)) != SPELL_ENOTFOUND) {
        if (rc != SPELL_OK) {
            reject_failed(req, srv, "invalid_request", "The spell_session cookie is malformed.");
            goto out;
        }
    } else {
        rc = SPELL_EVERIFY;
        reject_failed(req, srv, NULL, NULL);
        goto out;
    }

    /* An address already past its "ip" limit may still present a valid
     * credential, but may not make the server run Argon2id at will. */
    if (srv->rl) {
        struct ratelimit_result r;
        blocked = ratelimit_peek(srv->rl, RATELIMIT_IP, gate.ip, &r) != SPELL_OK || !r.allowed;
    }

    rc = SPELL_ENOMEM;
    if (!(ap = calloc(1, sizeof *ap))) {
        reject_error(req, SPELL_ERR_INTERNAL);
        goto out;
    }
    if (strncmp(token, "sk_", 3) == 0)
        rc = verify_key(srv->auth, token, ap, blocked ? gate_argon2 : NULL, &gate);
    else
        rc = auth_verify_session(srv->auth, token, ap);
    if (rc == SPELL_EINVAL || rc == SPELL_EVERIFY || rc == SPELL_EABORT) {
        reject_failed(req, srv, "invalid_token", "The credential is not valid.");
        goto out;
    }
    if (rc != SPELL_OK) {
        reject_error(req, rc == SPELL_ENOMEM ? SPELL_ERR_INTERNAL : SPELL_ERR_UNAVAILABLE);
        goto out;
    }

    if (srv->rl) {
        struct ratelimit_result r;
        if ((rc = ratelimit_take(srv->rl, RATELIMIT_REQUESTS, ap->p.user_id, &r)) != SPELL_OK) {
            reject_error(req, SPELL_ERR_INTERNAL);
            goto out;
        }
        if (!r.allowed) {
            struct response *resp = NULL;
            if (ratelimit_refusal(RATELIMIT_REQUESTS, &r, &resp) == SPELL_OK)
                httpd_request_reject(req, resp);
            else
                reject_error(req, SPELL_ERR_INTERNAL);
            rc = SPELL_EABORT;
            goto out;
        }
        ap->req_counted = 1;
        ap->req_limit = r.limit;
        ap->req_remaining = r.remaining;
        ap->req_reset_s = r.reset_s;
        ap->req_window_s = r.window_s;
    }
    httpd_request_set_principal(req, ap, free);
    ap = NULL;
    rc = SPELL_OK;
out:
    wipe(token, sizeof token);
    free(ap);
    return rc;
}

/* ---- users and sessions ---------------------------------------------- */

static int login_valid(const char *login)
{
    size_t i, n;

    if (!login)
        return 0;
    n = strnlen(login, AUTH_LOGIN_MAX + 1);
    if (n == 0 || n > AUTH_LOGIN_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)login[i];
        if (!is_base62(c) && c != '-')
            return 0;
    }
    return 1;
}

static int count_live(void *ud, const struct store_key *k)
{
    if (k->revoked_at == 0)
        ++*(size_t *)ud;
    return 0;
}

/* AUTH_ETOOMANY when the user already holds the most live keys allowed. */
static int live_keys_check(struct server *srv, const char *user_id)
{
    size_t live = 0;
    int rc = store_key_list(srv->store, user_id, count_live, &live);

    if (rc != SPELL_OK)
        return rc;
    return live >= AUTH_KEYS_PER_USER_MAX ? AUTH_ETOOMANY : SPELL_OK;
}

int auth_key_create(struct server *srv, struct auth *a, const char *user_id, const char *name,
                    char *key_out, size_t key_out_len, struct store_key *row)
{
    int rc = SPELL_EINVAL;
    struct spell_apikey key;
    struct store_key k;
    int locked = 0, attempt;

    memset(&key, 0, sizeof key);
    memset(&k, 0, sizeof k);
    if (key_out && key_out_len)
        key_out[0] = '\0';
    if (row)
        memset(row, 0, sizeof *row);
    if (!srv || !user_id || !name || !key_out)
        goto out;
    rc = SPELL_ETOOBIG;
    if (key_out_len < SPELL_APIKEY_LEN + 1)
        goto out;
    if (strlen(user_id) >= sizeof k.user_id || strlen(name) >= sizeof k.name)
        goto out;
    snprintf(k.user_id, sizeof k.user_id, "%s", user_id);
    snprintf(k.name, sizeof k.name, "%s", name);

    /* A prefix collision (one in 62^8) gets a fresh key. */
    for (attempt = 0; attempt < 3; attempt++) {
        int64_t now = srv_now_ms(&srv->clock);
        if ((rc = spell_apikey_make(&key)) != SPELL_OK)
            goto out;
        if (a)
            rc = auth_key_hash(a, key.key, k.hash, sizeof k.hash);
        else
            rc = key_hash_params(AUTH_ARGON2_T_COST, AUTH_ARGON2_M_COST_KIB, key.key, k.hash,
                                 sizeof k.hash);
        if (rc != SPELL_OK)
            goto out;
        if ((rc = spell_id_make("key", now, k.id, sizeof k.id)) != SPELL_OK)
            goto out;
        snprintf(k.prefix, sizeof k.prefix, "%s", key.prefix);
        k.created_at = now;
        if (a) {
            pthread_mutex_lock(&a->create_lock);
            locked = 1;
        }
        if ((rc = live_keys_check(srv, user_id)) == SPELL_OK)
            rc = store_key_create(srv->store, &k);
        if (a) {
            pthread_mutex_unlock(&a->create_lock);
            locked = 0;
        }
        if (rc != STORE_ECONFLICT)
            break;
        spell_apikey_wipe(&key);
    }
    if (rc != SPELL_OK)
        goto out;
    memcpy(key_out, key.key, SPELL_APIKEY_LEN + 1);
    if (row)
        *row = k;
    rc = SPELL_OK;
out:
    if (locked)
        pthread_mutex_unlock(&a->create_lock);
    spell_apikey_wipe(&key);
    wipe(&k, sizeof k);
    return rc;
}

int auth_user_create(struct server *srv, const char *login, const char *role, char *key_out,
                     size_t key_out_len, char *user_id_out)
{
    int rc = SPELL_EINVAL;
    struct store_user u;
    int created = 0;

    memset(&u, 0, sizeof u);
    if (key_out && key_out_len)
        key_out[0] = '\0';
    if (user_id_out)
        user_id_out[0] = '\0';
    if (!srv || !srv->store || !key_out || !user_id_out || !login_valid(login))
        goto out;
    if (!role)
        role = "caster";
    if (strcmp(role, "caster") != 0 && strcmp(role, "maker") != 0 && strcmp(role, "admin") != 0)
        goto out;
    rc = SPELL_ETOOBIG;
    if (key_out_len < AUTH_KEY_OUT_SIZE)
        goto out;
    u.created_at = srv_now_ms(&srv->clock);
    if ((rc = spell_id_make("usr", u.created_at, u.id, sizeof u.id)) != SPELL_OK)
        goto out;
    snprintf(u.login, sizeof u.login, "%s", login);
    snprintf(u.role, sizeof u.role, "%s", role);
    if ((rc = store_user_create(srv->store, &u)) != SPELL_OK)
        goto out;
    created = 1;
    if ((rc = auth_key_create(srv, srv->auth, u.id, "default", key_out, key_out_len, NULL)) !=
        SPELL_OK)
        goto out;
    memcpy(user_id_out, u.id, strlen(u.id) + 1);
    rc = SPELL_OK;
out:
    if (rc != SPELL_OK && created)
        (void)store_user_erase(srv->store, u.id);
    if (rc != SPELL_OK && key_out && key_out_len)
        wipe(key_out, key_out_len);
    return rc;
}

int auth_session_create(struct server *srv, const char *user_id, char *token_out, size_t len)
{
    int rc = SPELL_EINVAL;
    char token[SPELL_SESSION_TOKEN_LEN + 1];
    char hex[SPELL_SHA256_HEX_LEN + 1];
    int64_t now;

    if (token_out && len)
        token_out[0] = '\0';
    if (!srv || !srv->store || !user_id || !token_out)
        return SPELL_EINVAL;
    if (len < sizeof token)
        return SPELL_ETOOBIG;
    if ((rc = spell_session_token_make(token)) != SPELL_OK ||
        (rc = spell_sha256_hex(token, SPELL_SESSION_TOKEN_LEN, hex)) != SPELL_OK)
        goto out;
    now = srv_now_ms(&srv->clock);
    if ((rc = store_session_create(srv->store, hex, user_id, now, now + STORE_SESSION_TTL_MS)) !=
        SPELL_OK)
        goto out;
    memcpy(token_out, token, sizeof token);
    rc = SPELL_OK;
out:
    wipe(token, sizeof token);
    return rc;
}
