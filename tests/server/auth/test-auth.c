/*
 * Tests of the auth part: bearer and cookie parsing, Argon2id hashing and
 * key verification with its cache, sessions, users, the rate limiter under
 * an injected clock, and the handlers over real HTTP (httpd on 127.0.0.1
 * with the auth routes and a temporary SQLite store, driven by libcurl).
 */
#include <argon2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "spell/buf.h"
#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/json.h"

#include "auth.h"
#include "auth-impl.h"
#include "httpd.h"
#include "ratelimit.h"
#include "store.h"
#include "tap.h"

/* ---- the clock ---- */

static _Atomic int64_t test_now = 1800000000000LL;    /* 2027-01-15 */

static int64_t test_clock(void *ud)
{
    (void)ud;
    return atomic_load(&test_now);
}

/* The assembly part provides this in server/server.c; the test links its
 * own copy. */
int64_t srv_now_ms(const struct srv_clock *c)
{
    struct timespec ts;

    if (c && c->now_ms)
        return c->now_ms(c->ud);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void advance(int64_t ms)
{
    atomic_fetch_add(&test_now, ms);
}

/* Cheap Argon2 for most tests; test_hash_default checks the real cost. */
static const struct auth_config cheap = {2, 64, 0, 0, 0};

struct world {
    char dir[64];
    struct server srv;
    struct httpd *httpd;
    char base[64];
};

static void world_open(struct world *w, const struct auth_config *cfg)
{
    char url[128];

    memset(w, 0, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "/tmp/test-auth-XXXXXX");
    if (!mkdtemp(w->dir))
        abort();
    snprintf(url, sizeof url, "%s/spell.db", w->dir);
    w->srv.clock.now_ms = test_clock;
    if (store_open(url, &w->srv.store) != SPELL_OK)
        abort();
    if (auth_new_config(&w->srv, cfg, &w->srv.auth) != SPELL_OK)
        abort();
    if (ratelimit_new(&w->srv.limits, &w->srv.clock, &w->srv.rl) != SPELL_OK)
        abort();
}

static void world_close(struct world *w)
{
    char path[128];

    if (w->httpd)
        httpd_stop(w->httpd);
    ratelimit_free(w->srv.rl);
    auth_free(w->srv.auth);
    store_close(w->srv.store);
    snprintf(path, sizeof path, "%s/spell.db", w->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/spell.db-wal", w->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/spell.db-shm", w->dir);
    unlink(path);
    rmdir(w->dir);
}

static void user_add(struct world *w, const char *login, char *key, char *uid)
{
    if (auth_user_create(&w->srv, login, NULL, key, AUTH_KEY_OUT_SIZE, uid) != SPELL_OK)
        abort();
}

/* ---- bearer and cookie parsing ---- */

static void test_bearer_ok(void)
{
    char t[AUTH_TOKEN_MAX + 1];

    CHECK_INT(auth_bearer_parse("Bearer abc", t, sizeof t), SPELL_OK);
    CHECK_STR(t, "abc");
    CHECK_INT(auth_bearer_parse("bearer abc", t, sizeof t), SPELL_OK);
    CHECK_INT(auth_bearer_parse("BEARER\tsk_live_x.y~z+/==", t, sizeof t), SPELL_OK);
    CHECK_STR(t, "sk_live_x.y~z+/==");
    CHECK_INT(auth_bearer_parse("  Bearer   tok  ", t, sizeof t), SPELL_OK);
    CHECK_STR(t, "tok");
}

static void test_bearer_errors(void)
{
    char t[AUTH_TOKEN_MAX + 1], big[AUTH_TOKEN_MAX + 16];
    static const char *const bad[] = {
        "", "Bearer", "Bearer ", "Bearer  ", "Basic abc", "Bearerabc", "Bear abc",
        "Bearer a b", "Bearer abc, Bearer def", "Bearer abc,def", "Bearer a\x01" "b",
        "Bearer abc\r\n", "Bearer \x7f", "Bearer ab\xc3\xa9", "Bearer a=b", "Token abc",
        "Bearer Bearer abc", "Bearer \"abc\"",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(t, "junk");
        CHECK_INT(auth_bearer_parse(bad[i], t, sizeof t), SPELL_EINVAL);
        CHECK_STR(t, "");
    }
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'a', AUTH_TOKEN_MAX);
    big[7 + AUTH_TOKEN_MAX] = '\0';
    CHECK_INT(auth_bearer_parse(big, t, sizeof t), SPELL_OK);
    CHECK_INT(strlen(t), AUTH_TOKEN_MAX);
    big[7 + AUTH_TOKEN_MAX] = 'a';
    big[8 + AUTH_TOKEN_MAX] = '\0';
    CHECK_INT(auth_bearer_parse(big, t, sizeof t), SPELL_ETOOBIG);
    CHECK_INT(auth_bearer_parse("Bearer abcdef", t, 4), SPELL_ETOOBIG);
    CHECK_INT(auth_bearer_parse(NULL, t, sizeof t), SPELL_EINVAL);
    CHECK_INT(auth_bearer_parse("Bearer a", NULL, 8), SPELL_EINVAL);
}

static void test_cookie(void)
{
    char t[AUTH_TOKEN_MAX + 1];

    CHECK_INT(auth_cookie_session("spell_session=abc123", t, sizeof t), SPELL_OK);
    CHECK_STR(t, "abc123");
    CHECK_INT(auth_cookie_session("a=1; spell_session=Xyz; b=2", t, sizeof t), SPELL_OK);
    CHECK_STR(t, "Xyz");
    CHECK_INT(auth_cookie_session("a=1; xspell_session=1", t, sizeof t), SPELL_ENOTFOUND);
    CHECK_INT(auth_cookie_session("", t, sizeof t), SPELL_ENOTFOUND);
    CHECK_INT(auth_cookie_session("flag; other=2", t, sizeof t), SPELL_ENOTFOUND);
    CHECK_INT(auth_cookie_session("spell_session=a; spell_session=b", t, sizeof t),
              SPELL_EINVAL);
    CHECK_STR(t, "");
    CHECK_INT(auth_cookie_session("spell_session=a-b", t, sizeof t), SPELL_EINVAL);
    CHECK_INT(auth_cookie_session("spell_session=", t, sizeof t), SPELL_EINVAL);
    CHECK_INT(auth_cookie_session("spell_session=\"abc\"", t, sizeof t), SPELL_EINVAL);
    {
        char big[400] = "spell_session=";
        memset(big + 14, 'a', 300);
        big[314] = '\0';
        CHECK_INT(auth_cookie_session(big, t, sizeof t), SPELL_ETOOBIG);
    }
}

/* ---- hashing and key verification ---- */

static void test_hash_default(void)
{
    struct world w;
    char hash[STORE_KEY_HASH_SIZE];
    struct spell_apikey k;

    world_open(&w, NULL);
    CHECK_INT(spell_apikey_make(&k), SPELL_OK);
    CHECK_INT(auth_key_hash(w.srv.auth, k.key, hash, sizeof hash), SPELL_OK);
    CHECK(strncmp(hash, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    CHECK_INT(argon2id_verify(hash, k.key, strlen(k.key)), ARGON2_OK);
    k.key[20] ^= 1;
    CHECK_INT(argon2id_verify(hash, k.key, strlen(k.key)), ARGON2_VERIFY_MISMATCH);
    CHECK_INT(auth_argon2_runs(w.srv.auth), 1);
    CHECK_INT(auth_key_hash(w.srv.auth, k.key, hash, 20), SPELL_ETOOBIG);
    spell_apikey_wipe(&k);
    world_close(&w);
}

static void test_user_create(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE];
    struct store_user u;
    struct auth_principal p;
    static const char *const bad[] = {
        "", "a b", "a_b", "\xc3\xa9", "a\nb", "0123456789012345678901234567890123456789",
    };
    size_t i;

    world_open(&w, &cheap);
    CHECK_INT(auth_user_create(&w.srv, "ada-l", "admin", key, sizeof key, uid), SPELL_OK);
    CHECK_INT(spell_id_parse(uid, "usr", NULL), SPELL_OK);
    CHECK_INT(strlen(key), SPELL_APIKEY_LEN);
    CHECK_INT(store_user_by_login(w.srv.store, "ada-l", &u), SPELL_OK);
    CHECK_STR(u.id, uid);
    CHECK_STR(u.role, "admin");
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    CHECK_STR(p.p.user_id, uid);
    CHECK_STR(p.p.login, "ada-l");
    CHECK_STR(p.p.role, "admin");
    CHECK_INT(p.p.via_session, 0);
    CHECK_INT(strncmp(key + 8, p.p.key_prefix, 8), 0);
    {
        struct store_key sk;
        CHECK_INT(store_key_by_prefix(w.srv.store, p.p.key_prefix, &sk), SPELL_OK);
        CHECK_STR(sk.name, "default");
        CHECK(strstr(sk.hash, "$argon2id$") == sk.hash);
        CHECK(strstr(sk.hash, key) == NULL);
    }

    CHECK_INT(auth_user_create(&w.srv, "ada-l", NULL, key, sizeof key, uid), STORE_ECONFLICT);
    CHECK_STR(key, "");
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(auth_user_create(&w.srv, bad[i], NULL, key, sizeof key, uid), SPELL_EINVAL);
    CHECK_INT(auth_user_create(&w.srv, "bob", "root", key, sizeof key, uid), SPELL_EINVAL);
    CHECK_INT(auth_user_create(&w.srv, "bob", NULL, key, 20, uid), SPELL_ETOOBIG);
    CHECK_INT(store_user_by_login(w.srv.store, "bob", &u), SPELL_ENOTFOUND);
    CHECK_INT(auth_user_create(&w.srv, "Bob-2", NULL, key, sizeof key, uid), SPELL_OK);
    CHECK_INT(store_user_by_login(w.srv.store, "Bob-2", &u), SPELL_OK);
    CHECK_STR(u.role, "caster");
    /* 39 characters is the most a login may have. */
    CHECK_INT(auth_user_create(&w.srv, "012345678901234567890123456789012345678", NULL, key,
                               sizeof key, uid), SPELL_OK);
    world_close(&w);
}

static void test_bad_check_no_store(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE];
    struct auth_principal p;
    struct store *saved;
    char *last, orig;

    world_open(&w, &cheap);
    user_add(&w, "carol", key, uid);
    last = &key[SPELL_APIKEY_LEN - 1];
    orig = *last;
    *last = orig == 'A' ? 'B' : 'A';
    /* Without a store, anything that reached it would fail as
     * SPELL_EINVAL; the check character is refused first. */
    saved = w.srv.store;
    w.srv.store = NULL;
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_EVERIFY);
    CHECK_STR(p.p.user_id, "");
    CHECK_INT(auth_verify_key(w.srv.auth, "sk_live_short", &p), SPELL_EINVAL);
    CHECK_INT(auth_verify_key(w.srv.auth, "", &p), SPELL_EINVAL);
    *last = orig;
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_EINVAL);     /* reached the store */
    CHECK_INT(auth_argon2_runs(w.srv.auth), 1);                        /* the creation only */
    w.srv.store = saved;
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    world_close(&w);
}

static void test_wrong_secret_and_unknown_prefix(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE];
    struct spell_apikey other;
    struct auth_principal p;

    world_open(&w, &cheap);
    user_add(&w, "dan", key, uid);
    /* A well-formed key for nobody. */
    CHECK_INT(spell_apikey_make(&other), SPELL_OK);
    CHECK_INT(auth_verify_key(w.srv.auth, other.key, &p), SPELL_EVERIFY);
    CHECK_INT(auth_argon2_runs(w.srv.auth), 1);
    /* The right prefix with another secret and a matching check. */
    {
        char forged[SPELL_APIKEY_LEN + 1];
        char body[64];
        struct spell_apikey parsed;
        uint32_t crc;
        static const char b62[] =
            "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        int i;

        snprintf(body, sizeof body, "sk_live_%.8s_%s", key + 8, other.secret);
        crc = spell_crc32(body, strlen(body));
        memcpy(forged, body, strlen(body));
        for (i = 5; i >= 0; i--) {
            forged[strlen(body) + (size_t)i] = b62[crc % 62];
            crc /= 62;
        }
        forged[SPELL_APIKEY_LEN] = '\0';
        CHECK_INT(spell_apikey_parse(forged, &parsed), SPELL_OK);
        CHECK_INT(auth_verify_key(w.srv.auth, forged, &p), SPELL_EVERIFY);
        CHECK_INT(auth_argon2_runs(w.srv.auth), 2);
        /* Failures are not cached. */
        CHECK_INT(auth_verify_key(w.srv.auth, forged, &p), SPELL_EVERIFY);
        CHECK_INT(auth_argon2_runs(w.srv.auth), 3);
        spell_apikey_wipe(&parsed);
    }
    spell_apikey_wipe(&other);
    world_close(&w);
}

static void test_cache_hit(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE];
    struct auth_principal p;
    int i;

    world_open(&w, &cheap);
    user_add(&w, "erin", key, uid);
    CHECK_INT(auth_argon2_runs(w.srv.auth), 1);
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    CHECK_INT(auth_argon2_runs(w.srv.auth), 2);
    for (i = 0; i < 50; i++)
        CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    CHECK_INT(auth_argon2_runs(w.srv.auth), 2);
    CHECK_STR(p.p.user_id, uid);
    /* Past the re-check time the store is read again, Argon2 still not. */
    advance(AUTH_REVOKE_RECHECK_MS + 1);
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    CHECK_INT(auth_argon2_runs(w.srv.auth), 2);
    world_close(&w);
}

static void test_cache_bounded(void)
{
    struct world w;
    struct auth_config cfg = cheap;
    char keys[6][AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE];
    struct auth_principal p;
    int i;
    uint64_t before;

    cfg.cache_max = 4;
    world_open(&w, &cfg);
    user_add(&w, "fay", keys[0], uid);
    for (i = 1; i < 6; i++)
        CHECK_INT(auth_key_create(&w.srv, w.srv.auth, uid, "k", keys[i], sizeof keys[i], NULL),
                  SPELL_OK);
    for (i = 0; i < 6; i++)
        CHECK_INT(auth_verify_key(w.srv.auth, keys[i], &p), SPELL_OK);
    /* At most four stay cached: verifying all six again runs Argon2 for
     * at least two of them. */
    before = auth_argon2_runs(w.srv.auth);
    for (i = 0; i < 6; i++)
        CHECK_INT(auth_verify_key(w.srv.auth, keys[i], &p), SPELL_OK);
    CHECK(auth_argon2_runs(w.srv.auth) - before >= 2);
    world_close(&w);
}

static void test_revocation(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], key2[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE];
    struct auth_principal p;

    world_open(&w, &cheap);
    user_add(&w, "gus", key, uid);
    CHECK_INT(auth_key_create(&w.srv, w.srv.auth, uid, "two", key2, sizeof key2, NULL),
              SPELL_OK);
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    CHECK_INT(auth_verify_key(w.srv.auth, key2, &p), SPELL_OK);

    /* This instance revokes: immediate. */
    CHECK_INT(store_key_revoke(w.srv.store, uid, p.p.key_prefix, test_clock(NULL)), SPELL_OK);
    auth_key_cache_drop(w.srv.auth, p.p.key_prefix);
    CHECK_INT(auth_verify_key(w.srv.auth, key2, &p), SPELL_EVERIFY);

    /* Another instance revokes (the store only): seen after the TTL. */
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    CHECK_INT(store_key_revoke(w.srv.store, uid, p.p.key_prefix, test_clock(NULL)), SPELL_OK);
    advance(AUTH_REVOKE_RECHECK_MS - 1);
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    advance(1);
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_EVERIFY);
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_EVERIFY);
    auth_key_cache_drop(w.srv.auth, "nosuchpx");
    auth_key_cache_drop(NULL, "x");
    world_close(&w);
}

static int64_t last_used(struct world *w, const char *prefix)
{
    struct store_key k;
    if (store_key_by_prefix(w->srv.store, prefix, &k) != SPELL_OK)
        return -1;
    return k.last_used_at;
}

static void test_last_used_throttled(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE];
    struct auth_principal p;
    int64_t t0;

    world_open(&w, &cheap);
    user_add(&w, "hal", key, uid);
    t0 = test_clock(NULL);
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    CHECK_INT(last_used(&w, p.p.key_prefix), t0);
    advance(10 * 1000);
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    CHECK_INT(last_used(&w, p.p.key_prefix), t0);
    advance(50 * 1000);
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_OK);
    CHECK_INT(last_used(&w, p.p.key_prefix), t0 + 60 * 1000);
    world_close(&w);
}

static void test_sessions(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE], tok[SPELL_SESSION_TOKEN_LEN + 1];
    char hex[65];
    struct auth_principal p;

    world_open(&w, &cheap);
    user_add(&w, "ivy", key, uid);
    CHECK_INT(auth_session_create(&w.srv, uid, tok, 10), SPELL_ETOOBIG);
    CHECK_INT(auth_session_create(&w.srv, uid, tok, sizeof tok), SPELL_OK);
    CHECK_INT(strlen(tok), SPELL_SESSION_TOKEN_LEN);
    CHECK_INT(auth_verify_session(w.srv.auth, tok, &p), SPELL_OK);
    CHECK_STR(p.p.user_id, uid);
    CHECK_INT(p.p.via_session, 1);
    spell_sha256_hex(tok, strlen(tok), hex);
    CHECK_STR(p.p.session_hash, hex);
    CHECK_INT(auth_verify_session(w.srv.auth, "short", &p), SPELL_EVERIFY);
    CHECK_INT(auth_verify_session(w.srv.auth, "0123456789012345678901234567890123456789012",
                                  &p), SPELL_EVERIFY);
    advance(STORE_SESSION_TTL_MS - 1);
    CHECK_INT(auth_verify_session(w.srv.auth, tok, &p), SPELL_OK);
    advance(1);
    CHECK_INT(auth_verify_session(w.srv.auth, tok, &p), SPELL_EVERIFY);
    world_close(&w);
}

/* ---- rate limits ---- */

static void test_rl_exact(void)
{
    struct server_limits l = {0};
    struct srv_clock c = {test_clock, NULL};
    struct ratelimit *rl;
    struct ratelimit_result r;
    int i;

    l.rate_user_per_min = 60;
    CHECK_INT(ratelimit_new(&l, &c, &rl), SPELL_OK);
    for (i = 1; i <= 60; i++) {
        CHECK_INT(ratelimit_take(rl, RATELIMIT_REQUESTS, "usr_a", &r), SPELL_OK);
        CHECK_INT(r.allowed, 1);
        CHECK_INT(r.remaining, 60 - i);
        CHECK_INT(r.limit, 60);
        CHECK_INT(r.window_s, 60);
        CHECK_INT(r.reset_s, 60);
    }
    advance(20500);                 /* 39.5 s left: rounded up to 40 */
    CHECK_INT(ratelimit_take(rl, RATELIMIT_REQUESTS, "usr_a", &r), SPELL_OK);
    CHECK_INT(r.allowed, 0);
    CHECK_INT(r.remaining, 0);
    CHECK_INT(r.reset_s, 40);
    /* Another user and another policy are separate. */
    CHECK_INT(ratelimit_take(rl, RATELIMIT_REQUESTS, "usr_b", &r), SPELL_OK);
    CHECK_INT(r.allowed, 1);
    CHECK_INT(ratelimit_take(rl, RATELIMIT_CASTS, "usr_a", &r), SPELL_OK);
    CHECK_INT(r.allowed, 1);
    CHECK_INT(r.remaining, 99);
    CHECK_INT(r.window_s, 3600);
    CHECK_INT(r.reset_s, 3600);
    /* The last millisecond of the window is still closed; then it rolls. */
    advance(39499);
    CHECK_INT(ratelimit_take(rl, RATELIMIT_REQUESTS, "usr_a", &r), SPELL_OK);
    CHECK_INT(r.allowed, 0);
    CHECK_INT(r.reset_s, 1);
    advance(1);
    CHECK_INT(ratelimit_take(rl, RATELIMIT_REQUESTS, "usr_a", &r), SPELL_OK);
    CHECK_INT(r.allowed, 1);
    CHECK_INT(r.remaining, 59);
    CHECK_INT(r.reset_s, 60);
    /* Bad subjects. */
    CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, "", &r), SPELL_EINVAL);
    {
        char big[RATELIMIT_SUBJECT_MAX + 2];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, big, &r), SPELL_EINVAL);
        big[RATELIMIT_SUBJECT_MAX] = '\0';
        CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, big, &r), SPELL_OK);
    }
    CHECK_INT(ratelimit_take(rl, (enum ratelimit_policy)7, "x", &r), SPELL_EINVAL);
    CHECK_STR(ratelimit_policy_name(RATELIMIT_CASTS), "casts");
    CHECK_STR(ratelimit_policy_name(RATELIMIT_IP), "ip");
    ratelimit_free(rl);
}

static void test_rl_defaults_and_casts(void)
{
    struct srv_clock c = {test_clock, NULL};
    struct ratelimit *rl;
    struct ratelimit_result r;
    int i;

    CHECK_INT(ratelimit_new(NULL, &c, &rl), SPELL_OK);
    for (i = 0; i < 100; i++)
        CHECK_INT(ratelimit_take(rl, RATELIMIT_CASTS, "u", &r) == SPELL_OK && r.allowed, 1);
    advance(1800 * 1000);
    CHECK_INT(ratelimit_take(rl, RATELIMIT_CASTS, "u", &r), SPELL_OK);
    CHECK_INT(r.allowed, 0);
    CHECK_INT(r.reset_s, 1800);
    for (i = 0; i < 10; i++)
        CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, "10.0.0.1", &r) == SPELL_OK && r.allowed, 1);
    CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, "10.0.0.1", &r), SPELL_OK);
    CHECK_INT(r.allowed, 0);
    CHECK_INT(r.limit, 10);
    ratelimit_free(rl);
}

static void test_rl_cap(void)
{
    struct srv_clock c = {test_clock, NULL};
    struct ratelimit *rl;
    struct ratelimit_result r;
    char ip[32];
    int i, refused = 0, untracked = 0;

    /* One entry per stripe. */
    CHECK_INT(ratelimit_new_cap(NULL, &c, RATELIMIT_STRIPES, &rl), SPELL_OK);
    for (i = 0; i < 2000; i++) {
        snprintf(ip, sizeof ip, "10.1.%d.%d", i / 256, i % 256);
        CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, ip, &r), SPELL_OK);
        if (!r.allowed) {
            refused++;
            CHECK_INT(r.tracked, 0);
            CHECK_INT(r.reset_s, RATELIMIT_FULL_RETRY_S);
        }
    }
    CHECK_INT(ratelimit_entries(rl), RATELIMIT_STRIPES);
    CHECK_INT(refused, 2000 - RATELIMIT_STRIPES);
    /* Users are never refused for want of room. */
    for (i = 0; i < 500; i++) {
        snprintf(ip, sizeof ip, "usr_%d", i);
        CHECK_INT(ratelimit_take(rl, RATELIMIT_REQUESTS, ip, &r), SPELL_OK);
        CHECK_INT(r.allowed, 1);
        untracked += !r.tracked;
    }
    CHECK_INT(untracked, 500);
    /* Once the windows end, the entries are swept and room returns. */
    advance(60 * 1000);
    for (i = 0; i < 2000; i++) {
        snprintf(ip, sizeof ip, "10.2.%d.%d", i / 256, i % 256);
        CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, ip, &r), SPELL_OK);
    }
    CHECK_INT(ratelimit_entries(rl), RATELIMIT_STRIPES);
    advance(61 * 1000);
    CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, "10.3.0.1", &r), SPELL_OK);
    CHECK_INT(r.allowed, 1);
    CHECK(ratelimit_entries(rl) <= RATELIMIT_STRIPES);
    ratelimit_free(rl);
}

/* ---- threads ---- */

struct hammer {
    struct ratelimit *rl;
    struct auth *auth;
    const char *key;
    _Atomic int allowed;
    _Atomic int ok;
    _Atomic int refused;
};

static void *rl_thread(void *ud)
{
    struct hammer *hm = ud;
    struct ratelimit_result r;
    int i;

    for (i = 0; i < 200; i++)
        if (ratelimit_take(hm->rl, RATELIMIT_REQUESTS, "usr_shared", &r) == SPELL_OK && r.allowed)
            atomic_fetch_add(&hm->allowed, 1);
    return NULL;
}

static void test_rl_threads(void)
{
    struct srv_clock c = {test_clock, NULL};
    struct hammer hm = {0};
    pthread_t t[8];
    int i;

    CHECK_INT(ratelimit_new(NULL, &c, &hm.rl), SPELL_OK);
    for (i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, rl_thread, &hm);
    for (i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(atomic_load(&hm.allowed), 60);
    ratelimit_free(hm.rl);
}

static void *verify_thread(void *ud)
{
    struct hammer *hm = ud;
    struct auth_principal p;
    int i;

    for (i = 0; i < 200; i++) {
        int rc = auth_verify_key(hm->auth, hm->key, &p);
        if (rc == SPELL_OK)
            atomic_fetch_add(&hm->ok, 1);
        else if (rc == SPELL_EVERIFY)
            atomic_fetch_add(&hm->refused, 1);
    }
    return NULL;
}

static void test_verify_threads(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE], prefix[16];
    struct hammer hm = {0};
    struct auth_principal p;
    pthread_t t[8];
    int i;

    world_open(&w, &cheap);
    user_add(&w, "quin", key, uid);
    hm.auth = w.srv.auth;
    hm.key = key;
    snprintf(prefix, sizeof prefix, "%.8s", key + 8);
    for (i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, verify_thread, &hm);
    /* Revoke while they run: afterwards nobody may get in. */
    usleep(2000);
    CHECK_INT(store_key_revoke(w.srv.store, uid, prefix, test_clock(NULL)), SPELL_OK);
    auth_key_cache_drop(w.srv.auth, prefix);
    for (i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(atomic_load(&hm.ok) + atomic_load(&hm.refused), 1600);
    CHECK_INT(auth_verify_key(w.srv.auth, key, &p), SPELL_EVERIFY);
    world_close(&w);
}

/* ---- over HTTP ---- */

static struct world *H;

static int handle_public(struct request *req, struct response **out, void *ud)
{
    struct response *refusal = NULL;
    if (ratelimit_ip_check(ud, req, &refusal) != SPELL_OK) {
        *out = refusal;
        return refusal ? SPELL_OK : SPELL_ENOMEM;
    }
    return httpd_response_json_str(200, "{\"ok\":true}", out);
}

static int handle_cast(struct request *req, struct response **out, void *ud)
{
    struct response *refusal = NULL;
    const struct principal *p = httpd_request_principal(req);
    int rc = ratelimit_cast_check(ud, req, p, &refusal);

    if (rc != SPELL_OK) {
        *out = refusal;
        return refusal ? SPELL_OK : rc;
    }
    if ((rc = httpd_response_json_str(202, "{}", out)) != SPELL_OK)
        return rc;
    ratelimit_headers(req, *out);
    return SPELL_OK;
}

static void http_start(struct world *w)
{
    static struct route rows[8];
    const struct route *ar;
    size_t n = 0, i;
    struct httpd_config cfg = {0};

    CHECK_INT(auth_routes(&w->srv, &ar, &n), SPELL_OK);
    CHECK_INT(n, 5);
    for (i = 0; i < n; i++)
        rows[i] = ar[i];
    rows[n++] = (struct route){"GET", "/public", handle_public, &w->srv, ROUTE_NO_BODY, 0};
    rows[n++] = (struct route){"POST", "/cast", handle_cast, &w->srv, ROUTE_AUTH, 0};
    cfg.address = "127.0.0.1";
    cfg.routes = rows;
    cfg.nroutes = n;
    cfg.threads = 2;
    cfg.authenticate = auth_authenticate;
    cfg.auth_ud = &w->srv;
    cfg.shutdown_grace_ms = 5000;
    if (httpd_start(&cfg, &w->httpd) != SPELL_OK)
        abort();
    snprintf(w->base, sizeof w->base, "http://127.0.0.1:%u", (unsigned)httpd_port(w->httpd));
    H = w;
}

struct reply {
    long status;
    struct spell_buf body;
    struct spell_buf headers;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    return spell_buf_add(ud, p, size * n) == SPELL_OK ? size * n : 0;
}

/* auth: NULL, or a full header line ("Authorization: ...", "Cookie: ..."). */
static void req(const char *method, const char *path, const char *auth, const char *body,
                struct reply *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *sl = NULL;
    char url[512];

    memset(r, 0, sizeof *r);
    spell_buf_init(&r->body, 1024 * 1024);
    spell_buf_init(&r->headers, 64 * 1024);
    snprintf(url, sizeof url, "%s%s", H->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (auth)
        sl = curl_slist_append(sl, auth);
    sl = curl_slist_append(sl, "Expect:");
    if (body) {
        sl = curl_slist_append(sl, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    if (curl_easy_perform(c) != CURLE_OK)
        r->status = -1;
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(sl);
    curl_easy_cleanup(c);
}

static void reply_free(struct reply *r)
{
    spell_buf_free(&r->body);
    spell_buf_free(&r->headers);
}

static const char *hdr(struct reply *r, const char *name, char *out, size_t cap)
{
    const char *p = spell_buf_str(&r->headers);
    size_t nlen = strlen(name);

    out[0] = '\0';
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

static cJSON *body_json(struct reply *r)
{
    return cJSON_ParseWithLength(spell_buf_str(&r->body), r->body.len);
}

/* The error code and details.field of an error answer. */
static void error_of(struct reply *r, char *code, char *field, size_t cap)
{
    cJSON *j = body_json(r), *e, *c, *d, *f;

    code[0] = field[0] = '\0';
    e = cJSON_GetObjectItem(j, "error");
    if ((c = cJSON_GetObjectItem(e, "code")) && cJSON_IsString(c))
        snprintf(code, cap, "%s", c->valuestring);
    d = cJSON_GetObjectItem(e, "details");
    if ((f = cJSON_GetObjectItem(d, "field")) && cJSON_IsString(f))
        snprintf(field, cap, "%s", f->valuestring);
    cJSON_Delete(j);
}

static void bearer(char *out, size_t cap, const char *token)
{
    snprintf(out, cap, "Authorization: Bearer %s", token);
}

static void test_http_keys_flow(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE], a1[128], a2[128], h[256], path[64];
    char newkey[AUTH_KEY_OUT_SIZE] = "", prefix[16] = "";
    struct reply r;
    cJSON *j, *arr;

    world_open(&w, &cheap);
    http_start(&w);
    user_add(&w, "jo", key, uid);
    bearer(a1, sizeof a1, key);

    req("GET", "/v1/auth/me", a1, NULL, &r);
    CHECK_INT(r.status, 200);
    j = body_json(&r);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "login")), "jo");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")), uid);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "role")), "caster");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "email")));
    cJSON_Delete(j);
    CHECK_STR(hdr(&r, "RateLimit", h, sizeof h), "\"requests\";r=59;t=60");
    CHECK_STR(hdr(&r, "RateLimit-Policy", h, sizeof h), "\"requests\";q=60;w=60");
    reply_free(&r);

    advance(1000);
    req("POST", "/v1/keys", a1, "{\"name\": \"ci runner\"}", &r);
    CHECK_INT(r.status, 201);
    j = body_json(&r);
    snprintf(newkey, sizeof newkey, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "key")));
    snprintf(prefix, sizeof prefix, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(j, "prefix")));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "name")), "ci runner");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "last_used_at")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "created_at")));
    CHECK_INT(spell_id_parse(cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")), "key", NULL),
              SPELL_OK);
    cJSON_Delete(j);
    reply_free(&r);
    CHECK_INT(strlen(newkey), SPELL_APIKEY_LEN);
    CHECK_INT(strncmp(newkey + 8, prefix, 8), 0);

    bearer(a2, sizeof a2, newkey);
    req("GET", "/v1/auth/me", a2, NULL, &r);
    CHECK_INT(r.status, 200);
    reply_free(&r);

    req("GET", "/v1/keys", a2, NULL, &r);
    CHECK_INT(r.status, 200);
    j = body_json(&r);
    arr = cJSON_GetObjectItem(j, "keys");
    CHECK_INT(cJSON_GetArraySize(arr), 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "prefix")),
              prefix);
    CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "key") == NULL);
    CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "key") == NULL);
    CHECK(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "last_used_at")));
    CHECK(strstr(spell_buf_str(&r.body), "argon2") == NULL);
    cJSON_Delete(j);
    reply_free(&r);

    /* Revoke the new key with itself; it stops working at once. */
    snprintf(path, sizeof path, "/v1/keys/%s", prefix);
    req("DELETE", path, a2, NULL, &r);
    CHECK_INT(r.status, 204);
    CHECK_INT(r.body.len, 0);
    reply_free(&r);
    req("GET", "/v1/auth/me", a2, NULL, &r);
    CHECK_INT(r.status, 401);
    CHECK_STR(hdr(&r, "WWW-Authenticate", h, sizeof h), "Bearer error=\"invalid_token\"");
    reply_free(&r);
    req("DELETE", path, a1, NULL, &r);
    CHECK_INT(r.status, 404);
    reply_free(&r);
    req("GET", "/v1/keys", a1, NULL, &r);
    j = body_json(&r);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "keys")), 1);
    cJSON_Delete(j);
    reply_free(&r);

    /* Unknown, malformed and foreign prefixes are 404. */
    req("DELETE", "/v1/keys/AAAAAAAA", a1, NULL, &r);
    CHECK_INT(r.status, 404);
    reply_free(&r);
    req("DELETE", "/v1/keys/abc", a1, NULL, &r);
    CHECK_INT(r.status, 404);
    reply_free(&r);
    {
        char k2[AUTH_KEY_OUT_SIZE], u2[STORE_ID_SIZE], p2[64];
        user_add(&w, "kim", k2, u2);
        snprintf(p2, sizeof p2, "/v1/keys/%.8s", k2 + 8);
        req("DELETE", p2, a1, NULL, &r);
        CHECK_INT(r.status, 404);
        reply_free(&r);
    }
    world_close(&w);
}

static void test_http_key_cap(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE], a1[128], code[64], field[64];
    struct reply r;
    int i;

    world_open(&w, &cheap);
    http_start(&w);
    user_add(&w, "lee", key, uid);
    bearer(a1, sizeof a1, key);
    for (i = 1; i < AUTH_KEYS_PER_USER_MAX; i++) {
        req("POST", "/v1/keys", a1, "{\"name\":\"k\"}", &r);
        CHECK_INT(r.status, 201);
        reply_free(&r);
    }
    req("POST", "/v1/keys", a1, "{\"name\":\"k\"}", &r);
    CHECK_INT(r.status, 400);
    error_of(&r, code, field, sizeof code);
    CHECK_STR(code, "VALIDATION_ERROR");
    CHECK_STR(field, "keys");
    reply_free(&r);
    world_close(&w);
}

static void test_http_bad_bodies(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE], a1[128], code[64], field[64];
    char long_name[128];
    struct reply r;
    static const struct {
        const char *body;
        const char *field;
    } cases[] = {
        {"", "body"}, {"{", "body"}, {"[]", "body"}, {"\"name\"", "body"}, {"null", "body"},
        {"{\"name\":\"a\",\"name\":\"b\"}", "body"}, {"{\"name\":\"\xff\"}", "body"},
        {"{}", "name"}, {"{\"name\":null}", "name"}, {"{\"name\":5}", "name"},
        {"{\"name\":[\"a\"]}", "name"}, {"{\"name\":true}", "name"}, {"{\"name\":\"\"}", "name"},
        {"{\"name\":\"a\\u0001b\"}", "name"}, {"{\"name\":\"tab\\there\"}", "name"},
        {"{\"name\":\"\\u0085\"}", "name"},
    };
    size_t i;

    world_open(&w, &cheap);
    http_start(&w);
    user_add(&w, "max", key, uid);
    bearer(a1, sizeof a1, key);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        req("POST", "/v1/keys", a1, cases[i].body, &r);
        CHECK_INT(r.status, 400);
        error_of(&r, code, field, sizeof code);
        CHECK_STR(code, "VALIDATION_ERROR");
        CHECK_STR(field, cases[i].field);
        if (strcmp(field, cases[i].field) != 0)
            printf("#   case %zu: %s\n", i, cases[i].body);
        reply_free(&r);
    }
    /* 64 characters pass, 65 do not; multi-byte characters count once. */
    memset(long_name, 'n', 64);
    long_name[64] = '\0';
    {
        char body[256];
        snprintf(body, sizeof body, "{\"name\":\"%s\"}", long_name);
        req("POST", "/v1/keys", a1, body, &r);
        CHECK_INT(r.status, 201);
        reply_free(&r);
        snprintf(body, sizeof body, "{\"name\":\"%sn\"}", long_name);
        req("POST", "/v1/keys", a1, body, &r);
        CHECK_INT(r.status, 400);
        reply_free(&r);
        req("POST", "/v1/keys", a1, "{\"name\":\"caf\xc3\xa9 \xe2\x9c\x93\"}", &r);
        CHECK_INT(r.status, 201);
        reply_free(&r);
    }
    /* A body past the route's cap. */
    {
        char *big = malloc(8192);
        memset(big, ' ', 8191);
        big[0] = '{';
        big[8189] = '}';
        big[8190] = '\0';
        req("POST", "/v1/keys", a1, big, &r);
        CHECK_INT(r.status, 413);
        reply_free(&r);
        free(big);
    }
    world_close(&w);
}

static void test_http_auth_errors(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE], a[512], h[256], code[64], field[64];
    struct reply r;
    static const char *const malformed[] = {
        "Authorization: Basic dXNlcjpwYXNz", "Authorization: Bearer", "Authorization: Bearer a b",
        "Authorization: Bearer a, Bearer b", "Authorization: Bearerabc",
    };
    size_t i;

    world_open(&w, &cheap);
    http_start(&w);
    user_add(&w, "ned", key, uid);
    /* More failures than the default per-IP limit follow. */
    {
        struct server_limits l = {0};
        ratelimit_free(w.srv.rl);
        l.rate_ip_per_min = 100;
        CHECK_INT(ratelimit_new(&l, &w.srv.clock, &w.srv.rl), SPELL_OK);
    }

    req("GET", "/v1/auth/me", NULL, NULL, &r);
    CHECK_INT(r.status, 401);
    CHECK_STR(hdr(&r, "WWW-Authenticate", h, sizeof h), "Bearer");
    error_of(&r, code, field, sizeof code);
    CHECK_STR(code, "UNAUTHORIZED");
    reply_free(&r);

    for (i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        req("GET", "/v1/auth/me", malformed[i], NULL, &r);
        CHECK_INT(r.status, 401);
        CHECK_STR(hdr(&r, "WWW-Authenticate", h, sizeof h), "Bearer error=\"invalid_request\"");
        reply_free(&r);
    }
    /* Too long. */
    memcpy(a, "Authorization: Bearer ", 22);
    memset(a + 22, 'a', 300);
    a[322] = '\0';
    req("GET", "/v1/auth/me", a, NULL, &r);
    CHECK_INT(r.status, 401);
    reply_free(&r);
    /* Wrong check character, unknown session, a bad cookie. */
    snprintf(a, sizeof a, "Authorization: Bearer %s", key);
    a[strlen(a) - 1] = a[strlen(a) - 1] == 'A' ? 'B' : 'A';
    req("GET", "/v1/auth/me", a, NULL, &r);
    CHECK_INT(r.status, 401);
    CHECK_STR(hdr(&r, "WWW-Authenticate", h, sizeof h), "Bearer error=\"invalid_token\"");
    reply_free(&r);
    req("GET", "/v1/auth/me",
        "Authorization: Bearer 0123456789012345678901234567890123456789012", NULL, &r);
    CHECK_INT(r.status, 401);
    reply_free(&r);
    req("GET", "/v1/auth/me", "Cookie: spell_session=a-b", NULL, &r);
    CHECK_INT(r.status, 401);
    reply_free(&r);
    req("GET", "/v1/auth/me", "Cookie: theme=dark", NULL, &r);
    CHECK_INT(r.status, 401);
    CHECK_STR(hdr(&r, "WWW-Authenticate", h, sizeof h), "Bearer");
    reply_free(&r);
    CHECK_INT(auth_argon2_runs(w.srv.auth), 1);
    world_close(&w);
}

static void test_http_sessions(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE], tok[64], a[256];
    struct reply r;

    world_open(&w, &cheap);
    http_start(&w);
    user_add(&w, "ora", key, uid);

    /* Logout with an API key: 204, and the key still works. */
    bearer(a, sizeof a, key);
    req("POST", "/v1/auth/logout", a, NULL, &r);
    CHECK_INT(r.status, 204);
    reply_free(&r);
    req("GET", "/v1/auth/me", a, NULL, &r);
    CHECK_INT(r.status, 200);
    reply_free(&r);

    /* A cookie session, ended by logout. */
    CHECK_INT(auth_session_create(&w.srv, uid, tok, sizeof tok), SPELL_OK);
    snprintf(a, sizeof a, "Cookie: lang=en; spell_session=%s", tok);
    req("GET", "/v1/auth/me", a, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(strstr(spell_buf_str(&r.body), "\"login\":\"ora\"") != NULL);
    reply_free(&r);
    req("POST", "/v1/auth/logout", a, "{}", &r);
    CHECK_INT(r.status, 204);
    reply_free(&r);
    req("GET", "/v1/auth/me", a, NULL, &r);
    CHECK_INT(r.status, 401);
    reply_free(&r);

    /* A bearer session that expires. */
    CHECK_INT(auth_session_create(&w.srv, uid, tok, sizeof tok), SPELL_OK);
    bearer(a, sizeof a, tok);
    req("GET", "/v1/keys", a, NULL, &r);
    CHECK_INT(r.status, 200);
    reply_free(&r);
    advance(STORE_SESSION_TTL_MS);
    req("GET", "/v1/keys", a, NULL, &r);
    CHECK_INT(r.status, 401);
    reply_free(&r);
    world_close(&w);
}


/* A key with key's prefix, another secret and valid check characters. */
static void forge_key(const char *key, char *forged)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    struct spell_apikey other;
    char body[64];
    uint32_t crc;
    size_t n;
    int i;

    if (spell_apikey_make(&other) != SPELL_OK)
        abort();
    snprintf(body, sizeof body, "sk_live_%.8s_%s", key + 8, other.secret);
    n = strlen(body);
    crc = spell_crc32(body, n);
    memcpy(forged, body, n);
    for (i = 5; i >= 0; i--) {
        forged[n + (size_t)i] = b62[crc % 62];
        crc /= 62;
    }
    forged[SPELL_APIKEY_LEN] = '\0';
    spell_apikey_wipe(&other);
}

static void test_rl_peek(void)
{
    struct server_limits l = {0};
    struct srv_clock c = {test_clock, NULL};
    struct ratelimit *rl = NULL;
    struct ratelimit_result r;
    int i;

    l.rate_ip_per_min = 2;
    CHECK_INT(ratelimit_new(&l, &c, &rl), SPELL_OK);
    /* Peeking at an unknown subject tracks nothing. */
    CHECK_INT(ratelimit_peek(rl, RATELIMIT_IP, "10.0.0.1", &r), SPELL_OK);
    CHECK_INT(r.allowed, 1);
    CHECK_INT(r.remaining, 2);
    CHECK_INT((int)ratelimit_entries(rl), 0);
    CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, "10.0.0.1", &r), SPELL_OK);
    for (i = 0; i < 5; i++) {
        CHECK_INT(ratelimit_peek(rl, RATELIMIT_IP, "10.0.0.1", &r), SPELL_OK);
        CHECK_INT(r.allowed, 1);
        CHECK_INT(r.remaining, 1);
    }
    CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, "10.0.0.1", &r), SPELL_OK);
    CHECK_INT(r.allowed, 1);
    CHECK_INT(r.remaining, 0);
    CHECK_INT(ratelimit_peek(rl, RATELIMIT_IP, "10.0.0.1", &r), SPELL_OK);
    CHECK_INT(r.allowed, 0);
    CHECK_INT(r.reset_s, 60);
    advance(60000);
    CHECK_INT(ratelimit_peek(rl, RATELIMIT_IP, "10.0.0.1", &r), SPELL_OK);
    CHECK_INT(r.allowed, 1);
    CHECK_INT(r.remaining, 2);
    /* The verification gate: one per minute and subject. */
    CHECK_INT(ratelimit_take(rl, RATELIMIT_IP_VERIFY, "10.0.0.1 abcdefgh", &r), SPELL_OK);
    CHECK_INT(r.allowed, 1);
    CHECK_INT(r.limit, RATELIMIT_VERIFY_LIMIT);
    CHECK_INT(ratelimit_take(rl, RATELIMIT_IP_VERIFY, "10.0.0.1 abcdefgh", &r), SPELL_OK);
    CHECK_INT(r.allowed, 0);
    CHECK_INT(ratelimit_take(rl, RATELIMIT_IP_VERIFY, "10.0.0.1 bcdefghi", &r), SPELL_OK);
    CHECK_INT(r.allowed, 1);
    CHECK_STR(ratelimit_policy_name(RATELIMIT_IP_VERIFY), "ip-verify");
    CHECK_INT(ratelimit_peek(rl, RATELIMIT_IP, "", &r), SPELL_EINVAL);
    CHECK_INT(ratelimit_peek(NULL, RATELIMIT_IP, "x", &r), SPELL_EINVAL);
    CHECK_INT(ratelimit_peek(rl, (enum ratelimit_policy)7, "x", &r), SPELL_EINVAL);
    ratelimit_free(rl);

    /* A full table: an unknown address is refused by peek as by take. */
    CHECK_INT(ratelimit_new_cap(&l, &c, 1, &rl), SPELL_OK);
    for (i = 0; i < 400; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.1.%d.%d", i / 250, i % 250);
        CHECK_INT(ratelimit_take(rl, RATELIMIT_IP, ip, &r), SPELL_OK);
    }
    {
        int refused = 0;
        for (i = 0; i < 400; i++) {
            char ip[32];
            snprintf(ip, sizeof ip, "10.2.%d.%d", i / 250, i % 250);
            CHECK_INT(ratelimit_peek(rl, RATELIMIT_IP, ip, &r), SPELL_OK);
            refused += !r.allowed;
        }
        CHECK(refused > 0);
    }
    ratelimit_free(rl);
}

/*
 * Failed credentials count against the address: with 3 a minute, the
 * fourth failure is 429 and no Argon2id runs for it, while valid keys and
 * sessions from the same address keep working.
 */
static void test_http_ip_guessing(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], key2[AUTH_KEY_OUT_SIZE], key3[AUTH_KEY_OUT_SIZE];
    char uid[STORE_ID_SIZE], tok[64], forged[SPELL_APIKEY_LEN + 1];
    char valid[128], session[128], a[128], h[256], code[64], field[64];
    struct store_key k2;
    struct server_limits l = {0};
    struct reply r;
    uint64_t runs;
    int i;

    world_open(&w, &cheap);
    http_start(&w);
    ratelimit_free(w.srv.rl);
    l.rate_ip_per_min = 3;
    CHECK_INT(ratelimit_new(&l, &w.srv.clock, &w.srv.rl), SPELL_OK);
    user_add(&w, "vic", key, uid);
    CHECK_INT(auth_key_create(&w.srv, w.srv.auth, uid, "two", key2, sizeof key2, &k2), SPELL_OK);
    CHECK_INT(store_key_revoke(w.srv.store, uid, k2.prefix, test_clock(NULL)), SPELL_OK);
    CHECK_INT(auth_session_create(&w.srv, uid, tok, sizeof tok), SPELL_OK);
    bearer(valid, sizeof valid, key);
    bearer(session, sizeof session, tok);

    /* Valid credentials are not counted: more of them than the limit. */
    for (i = 0; i < 5; i++) {
        req("GET", "/v1/auth/me", i % 2 ? session : valid, NULL, &r);
        CHECK_INT(r.status, 200);
        reply_free(&r);
    }
    /* Three failures of different kinds: 401 each. */
    req("GET", "/v1/auth/me", NULL, NULL, &r);
    CHECK_INT(r.status, 401);
    reply_free(&r);
    snprintf(a, sizeof a, "Authorization: Bearer %s", key);
    a[strlen(a) - 1] = a[strlen(a) - 1] == 'A' ? 'B' : 'A';
    req("GET", "/v1/auth/me", a, NULL, &r);
    CHECK_INT(r.status, 401);
    reply_free(&r);
    bearer(a, sizeof a, key2);
    req("GET", "/v1/auth/me", a, NULL, &r);
    CHECK_INT(r.status, 401);
    CHECK_STR(hdr(&r, "WWW-Authenticate", h, sizeof h), "Bearer error=\"invalid_token\"");
    reply_free(&r);

    /* The fourth: 429 with the "ip" policy. */
    advance(2000);
    req("GET", "/v1/auth/me",
        "Authorization: Bearer 0123456789012345678901234567890123456789012", NULL, &r);
    CHECK_INT(r.status, 429);
    CHECK_STR(hdr(&r, "Retry-After", h, sizeof h), "58");
    CHECK_STR(hdr(&r, "RateLimit-Policy", h, sizeof h), "\"ip\";q=3;w=60");
    CHECK_STR(hdr(&r, "RateLimit", h, sizeof h), "\"ip\";r=0;t=58");
    error_of(&r, code, field, sizeof code);
    CHECK_STR(code, "RATE_LIMITED");
    reply_free(&r);
    req("GET", "/v1/auth/me", "Cookie: spell_session=a-b", NULL, &r);
    CHECK_INT(r.status, 429);
    reply_free(&r);
    req("POST", "/cast", NULL, "{}", &r);
    CHECK_INT(r.status, 429);
    reply_free(&r);

    /* A wrong secret on a live prefix: one Argon2id run a minute for this
     * address and prefix, then none. */
    runs = auth_argon2_runs(w.srv.auth);
    forge_key(key, forged);
    bearer(a, sizeof a, forged);
    req("GET", "/v1/auth/me", a, NULL, &r);
    CHECK_INT(r.status, 429);
    reply_free(&r);
    CHECK_INT((int)(auth_argon2_runs(w.srv.auth) - runs), 1);
    for (i = 0; i < 3; i++) {
        forge_key(key, forged);
        bearer(a, sizeof a, forged);
        req("GET", "/v1/auth/me", a, NULL, &r);
        CHECK_INT(r.status, 429);
        CHECK(hdr(&r, "Retry-After", h, sizeof h) != NULL);
        reply_free(&r);
    }
    /* An unknown prefix and a revoked key cost no Argon2id either. */
    {
        struct spell_apikey nobody;
        CHECK_INT(spell_apikey_make(&nobody), SPELL_OK);
        bearer(a, sizeof a, nobody.key);
        req("GET", "/v1/auth/me", a, NULL, &r);
        CHECK_INT(r.status, 429);
        reply_free(&r);
        spell_apikey_wipe(&nobody);
    }
    bearer(a, sizeof a, key2);
    req("GET", "/v1/auth/me", a, NULL, &r);
    CHECK_INT(r.status, 429);
    reply_free(&r);
    CHECK_INT((int)(auth_argon2_runs(w.srv.auth) - runs), 1);

    /* Valid credentials still pass: the cached key, the session, and a
     * key this process has not verified yet (its own prefix). */
    req("GET", "/v1/auth/me", valid, NULL, &r);
    CHECK_INT(r.status, 200);
    reply_free(&r);
    req("GET", "/v1/keys", session, NULL, &r);
    CHECK_INT(r.status, 200);
    reply_free(&r);
    CHECK_INT(auth_key_create(&w.srv, w.srv.auth, uid, "three", key3, sizeof key3, NULL),
              SPELL_OK);
    runs = auth_argon2_runs(w.srv.auth);
    bearer(a, sizeof a, key3);
    req("GET", "/v1/auth/me", a, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(hdr(&r, "RateLimit", h, sizeof h) != NULL);
    CHECK_STR(h, "\"requests\";r=52;t=58");
    reply_free(&r);
    CHECK_INT((int)(auth_argon2_runs(w.srv.auth) - runs), 1);

    /* A new window: failures answer 401 again. */
    advance(58000);
    req("GET", "/v1/auth/me", NULL, NULL, &r);
    CHECK_INT(r.status, 401);
    reply_free(&r);
    world_close(&w);
}

static void test_http_rate_limits(void)
{
    struct world w;
    char key[AUTH_KEY_OUT_SIZE], uid[STORE_ID_SIZE], a[128], h[256], code[64], field[64];
    struct reply r;
    struct server_limits l = {0};
    int i;

    world_open(&w, &cheap);
    http_start(&w);
    user_add(&w, "pat", key, uid);
    bearer(a, sizeof a, key);
    /* Lower limits for the test: 5 requests/min, 3 per IP, 2 casts/hour. */
    ratelimit_free(w.srv.rl);
    l.rate_user_per_min = 5;
    l.rate_ip_per_min = 3;
    l.rate_casts_per_hour = 2;
    CHECK_INT(ratelimit_new(&l, &w.srv.clock, &w.srv.rl), SPELL_OK);

    /* Casts: the cast route counts a request and a cast. */
    req("POST", "/cast", a, "{}", &r);
    CHECK_INT(r.status, 202);
    CHECK_STR(hdr(&r, "RateLimit", h, sizeof h), "\"requests\";r=4;t=60, \"casts\";r=1;t=3600");
    CHECK_STR(hdr(&r, "RateLimit-Policy", h, sizeof h),
              "\"requests\";q=5;w=60, \"casts\";q=2;w=3600");
    reply_free(&r);
    advance(1000);
    req("POST", "/cast", a, "{}", &r);
    CHECK_INT(r.status, 202);
    CHECK_STR(hdr(&r, "RateLimit", h, sizeof h), "\"requests\";r=3;t=59, \"casts\";r=0;t=3599");
    reply_free(&r);
    req("POST", "/cast", a, "{}", &r);
    CHECK_INT(r.status, 429);
    CHECK_STR(hdr(&r, "Retry-After", h, sizeof h), "3599");
    CHECK_STR(hdr(&r, "RateLimit-Policy", h, sizeof h), "\"casts\";q=2;w=3600");
    CHECK_STR(hdr(&r, "RateLimit", h, sizeof h), "\"casts\";r=0;t=3599");
    error_of(&r, code, field, sizeof code);
    CHECK_STR(code, "RATE_LIMITED");
    reply_free(&r);

    /* Requests: two left in this minute, then 429 from the hook. */
    for (i = 0; i < 2; i++) {
        req("GET", "/v1/keys", a, NULL, &r);
        CHECK_INT(r.status, 200);
        reply_free(&r);
    }
    advance(500);
    req("GET", "/v1/keys", a, NULL, &r);
    CHECK_INT(r.status, 429);
    CHECK_STR(hdr(&r, "Retry-After", h, sizeof h), "59");
    CHECK_STR(hdr(&r, "RateLimit-Policy", h, sizeof h), "\"requests\";q=5;w=60");
    CHECK_STR(hdr(&r, "RateLimit", h, sizeof h), "\"requests\";r=0;t=59");
    reply_free(&r);
    advance(58500);
    req("GET", "/v1/keys", a, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(hdr(&r, "RateLimit", h, sizeof h), "\"requests\";r=4;t=60");
    reply_free(&r);

    /* Per IP on a public route. */
    for (i = 0; i < 3; i++) {
        req("GET", "/public", NULL, NULL, &r);
        CHECK_INT(r.status, 200);
        reply_free(&r);
    }
    req("GET", "/public", NULL, NULL, &r);
    CHECK_INT(r.status, 429);
    CHECK_STR(hdr(&r, "Retry-After", h, sizeof h), "60");
    CHECK_STR(hdr(&r, "RateLimit-Policy", h, sizeof h), "\"ip\";q=3;w=60");
    CHECK_STR(hdr(&r, "RateLimit", h, sizeof h), "\"ip\";r=0;t=60");
    reply_free(&r);
    advance(60000);
    req("GET", "/public", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    reply_free(&r);
    world_close(&w);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    RUN(test_bearer_ok);
    RUN(test_bearer_errors);
    RUN(test_cookie);
    RUN(test_hash_default);
    RUN(test_user_create);
    RUN(test_bad_check_no_store);
    RUN(test_wrong_secret_and_unknown_prefix);
    RUN(test_cache_hit);
    RUN(test_cache_bounded);
    RUN(test_revocation);
    RUN(test_last_used_throttled);
    RUN(test_sessions);
    RUN(test_rl_exact);
    RUN(test_rl_defaults_and_casts);
    RUN(test_rl_cap);
    RUN(test_rl_threads);
    RUN(test_verify_threads);
    RUN(test_http_keys_flow);
    RUN(test_http_key_cap);
    RUN(test_http_bad_bodies);
    RUN(test_http_auth_errors);
    RUN(test_http_sessions);
    RUN(test_http_rate_limits);
    RUN(test_rl_peek);
    RUN(test_http_ip_guessing);
    curl_global_cleanup();
    return tap_done();
}
