/*
 * Authentication for spell-server: API keys, sessions, the httpd
 * authenticate hook and the /v1/auth and /v1/keys handlers.
 *
 * Data flow of an authenticated request (auth_authenticate(), the hook
 * httpd runs for ROUTE_AUTH routes before the body is read):
 *
 *   Authorization: Bearer <credential>   (or the spell_session cookie)
 *   -> bearer parsing: exactly one "Bearer" scheme (any case), one token
 *      of 1..AUTH_TOKEN_MAX bytes without control characters or spaces
 *   -> a token starting "sk_" is an API key:
 *        spell_apikey_parse() offline (a wrong check character is 401
 *        without touching the store)
 *        -> verified-key cache, keyed by SHA-256 of the whole key: a hit
 *           costs no Argon2 and no store read (only a re-check of the
 *           revocation against the store every AUTH_REVOKE_RECHECK_MS)
 *        -> on a miss: store_key_by_prefix(), argon2id_verify() against
 *           the stored hash, and the key enters the cache
 *      any other token is a session token (43 base62 characters), looked
 *      up in the store by its SHA-256 hex (30 days, expiry on srv->clock)
 *   -> a failure counts against the address (see "Guessing" below)
 *   -> the per-user request limit (ratelimit.h; 429 + Retry-After)
 *   -> the request's principal is set: a struct auth_principal whose first
 *      member is the struct principal of server.h, so every part may cast
 *      httpd_request_principal() to struct principal *.
 *
 * Failures answer 401 UNAUTHORIZED with "WWW-Authenticate: Bearer" (and
 * error="invalid_request" / "invalid_token" as RFC 6750 §3 describes).
 * No key, token or hash is ever logged.
 *
 * Guessing from one address: every request that brings no credential, a
 * malformed one or one that fails (wrong check characters, an unknown
 * prefix, a revoked key, a wrong secret, an unknown or expired session)
 * counts against the address's "ip" limit (ratelimit.h, 10 a minute by
 * default).  Past the limit such requests get 429 RATE_LIMITED with
 * Retry-After instead of 401.  A valid credential is neither counted nor
 * refused there.  Telling a valid key from a wrong secret needs Argon2id
 * unless the key is in the verified-key cache, so an address past its
 * limit may cause at most RATELIMIT_VERIFY_LIMIT (1) Argon2id run a minute
 * per key prefix it names (a prefix it does not know costs a store read
 * only); a further attempt on that prefix from that address within the
 * minute is refused with 429 without Argon2id.  The one case where a valid
 * key is refused is therefore a key not yet cached whose prefix was just
 * tried with a wrong secret from the same address past its limit.
 *
 * Argon2id parameters (AUTH_ARGON2_*): t_cost 2, m_cost 19456 KiB (19 MiB),
 * parallelism 1, 16-byte random salt, 32-byte tag: OWASP's recommended
 * Argon2id setting; one hash or verify costs about 20-50 ms on a current
 * x86-64 core (45-50 ms measured on the shared build machine).  The
 * encoded string ("$argon2id$v=19$m=19456,t=2,p=1$...") carries its
 * parameters, so raising them later keeps old keys valid.
 *
 * The verified-key cache holds at most AUTH_KEY_CACHE_MAX entries (random
 * eviction past that).  Each entry carries the user id, the key prefix, the
 * time it was last confirmed against the store and the cache generation it
 * was filled under: auth_key_cache_drop() (called by DELETE /v1/keys) bumps
 * the generation and removes the entry at once, so a verification that
 * raced with the revocation cannot put the key back.  A revocation made by
 * another server instance is seen within AUTH_REVOKE_RECHECK_MS (30 s).
 * last_used_at is written at most once per AUTH_TOUCH_INTERVAL_MS (60 s)
 * per key, never once per request.
 *
 * POST /v1/auth/logout with an API key answers 204 and changes nothing: a
 * key ends by DELETE /v1/keys/{prefix}, and a logout must be safe to repeat.
 *
 * Everything here is thread-safe: the cache has its own mutex, the rest
 * is the store's.
 */
#ifndef SPELL_SERVER_AUTH_H
#define SPELL_SERVER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "httpd.h"
#include "router.h"
#include "server.h"

/* Argon2id cost (see above). */
#define AUTH_ARGON2_T_COST 2u
#define AUTH_ARGON2_M_COST_KIB 19456u
#define AUTH_ARGON2_PARALLELISM 1u
#define AUTH_ARGON2_SALT_LEN 16u
#define AUTH_ARGON2_HASH_LEN 32u

/* Verified keys kept in memory. */
#define AUTH_KEY_CACHE_MAX 10000
/* How long a cached key is trusted before its revocation is re-checked in
 * the store (another instance may have revoked it). */
#define AUTH_REVOKE_RECHECK_MS (30LL * 1000)
/* last_used_at is written at most this often per key. */
#define AUTH_TOUCH_INTERVAL_MS (60LL * 1000)
/* Longest bearer token accepted, in bytes. */
#define AUTH_TOKEN_MAX 256
/* Live API keys one user may hold. */
#define AUTH_KEYS_PER_USER_MAX 20
/* A key name: 1..64 printable characters (UTF-8, no control characters). */
#define AUTH_KEY_NAME_MAX 64
/* A login: 1..39 of [A-Za-z0-9-] (GitHub's rule). */
#define AUTH_LOGIN_MAX 39
/* The session cookie (DESIGN.md §2). */
#define AUTH_SESSION_COOKIE "spell_session"
/* Room for a full API key and its NUL (key_out of auth_user_create()). */
#define AUTH_KEY_OUT_SIZE 56

struct auth;

/* Settings for auth_new_config(); a zero field takes the default above.
 * Tests lower the Argon2 cost and the cache size with it. */
struct auth_config {
    uint32_t argon2_t_cost;
    uint32_t argon2_m_cost_kib;
    size_t cache_max;
    int64_t revoke_recheck_ms;
    int64_t touch_interval_ms;
};

/*
 * The principal auth_authenticate() attaches to a request.  Its first
 * member is the shared struct principal, so other parts read it as that;
 * the rest is the request's rate-limit state that ratelimit_headers()
 * turns into RateLimit fields on the answer.
 */
struct auth_principal {
    struct principal p;
    /* The per-minute request policy this request consumed. */
    int req_counted;
    int req_limit;
    int req_remaining;
    int64_t req_reset_s;
    int req_window_s;
    /* The casts policy, when ratelimit_cast_check() counted this request. */
    int cast_counted;
    int cast_limit;
    int cast_remaining;
    int64_t cast_reset_s;
    int cast_window_s;
};

/* Creates the auth context for srv (srv->store and srv->clock are used
 * from then on; srv->rl for the per-user limit when it is set).  It is
 * not stored in srv->auth: the caller does that. */
int auth_new(struct server *srv, struct auth **out);
int auth_new_config(struct server *srv, const struct auth_config *cfg, struct auth **out);
void auth_free(struct auth *a);

/*
 * The httpd authenticate hook; ud is the struct server * (whose auth
 * field must be set).  SPELL_OK with the principal set, or a refusal
 * already attached with httpd_request_reject() (401 or 429).
 */
int auth_authenticate(struct request *req, void *srv);

/* The route rows of this part (ud = srv): GET /v1/auth/me,
 * POST /v1/auth/logout, POST /v1/keys, GET /v1/keys,
 * DELETE /v1/keys/{prefix}.  The rows live in srv's auth context. */
int auth_routes(struct server *srv, const struct route **rows, size_t *n);

/*
 * For `spell-server users add LOGIN [--role ROLE]`: creates the user
 * (id "usr_<ULID>", role NULL means "caster") and its first API key named
 * "default".  key_out (at least AUTH_KEY_OUT_SIZE bytes) receives the full
 * key, user_id_out (at least STORE_ID_SIZE bytes) the id.  Prints nothing.
 * srv->store is required; srv->auth may be NULL (the command line need not
 * build an auth context), the default Argon2 parameters are then used.
 * When the key cannot be made the new user is removed again.
 * SPELL_EINVAL for a bad login or role, STORE_ECONFLICT when the login is
 * taken, SPELL_ETOOBIG when key_out is too small.
 */
int auth_user_create(struct server *srv, const char *login, const char *role, char *key_out,
                     size_t key_out_len, char *user_id_out);

/* A new session for user_id (for the login flows): the token (43
 * characters and a NUL, len >= 44) goes to token_out, its SHA-256 hex to
 * the store with a 30-day expiry. */
int auth_session_create(struct server *srv, const char *user_id, char *token_out, size_t len);

/* Removes the cached verification of the key with this prefix, at once. */
void auth_key_cache_drop(struct auth *a, const char *prefix);

/* ---- pieces of the hook, public for tests and other login paths ---- */

/*
 * Reads a bearer token from an Authorization field value into token
 * (cap bytes, NUL included).  SPELL_OK; SPELL_EINVAL when the value is not
 * exactly "Bearer <token>" (scheme case-insensitive, single spaces or tabs
 * between, one token of token68 characters); SPELL_ETOOBIG past
 * AUTH_TOKEN_MAX or cap.
 */
int auth_bearer_parse(const char *value, char *token, size_t cap);

/* Finds the spell_session cookie in a Cookie field value.  SPELL_OK,
 * SPELL_ENOTFOUND when absent, SPELL_EINVAL when it appears twice or
 * holds characters outside base62, SPELL_ETOOBIG as above. */
int auth_cookie_session(const char *value, char *token, size_t cap);

/* Verifies a full API key and fills the principal (rate-limit fields
 * zeroed).  SPELL_EINVAL (shape) or SPELL_EVERIFY (check characters, an
 * unknown prefix, a revoked key, a wrong secret): both 401;
 * SPELL_EIO / SPELL_ENOMEM otherwise. */
int auth_verify_key(struct auth *a, const char *key, struct auth_principal *out);

/* The same for a session token: SPELL_EVERIFY when unknown or expired. */
int auth_verify_session(struct auth *a, const char *token, struct auth_principal *out);

/* Argon2id runs since auth_new() (hashes and verifications). */
uint64_t auth_argon2_runs(struct auth *a);

/* Hashes a full API key into an Argon2id encoded string (out: at least
 * STORE_KEY_HASH_SIZE bytes) with the context's parameters. */
int auth_key_hash(struct auth *a, const char *key, char *out, size_t outlen);

#endif
