/*
 * Tests of the store (server/store/store.h) on its SQLite implementation.
 *
 * Every case opens a fresh database file in a private temporary folder and
 * removes it afterwards.  Where a case must reach past the interface (to
 * tamper with the ledger or plant a newer schema) it opens the same file
 * with SQLite directly, as an attacker or a careless operator would.
 * Time is always a fixed number passed in: the store never reads a clock.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "spell/clock.h"
#include "spell/crypto.h"
#include "spell/errors.h"
#include "tap.h"

#include "store.h"
#include "store-impl.h"

/* 2026-11-22T08:00:00Z */
#define T0 INT64_C(1795334400000)
#define DAY INT64_C(86400000)

static char tmpdir[64];
static int db_counter;

struct db {
    char path[128];
    struct store *s;
};

static void db_remove(const char *path)
{
    char p[160];

    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static int db_open(struct db *d)
{
    snprintf(d->path, sizeof d->path, "%s/t%d.db", tmpdir, ++db_counter);
    db_remove(d->path);
    d->s = NULL;
    return store_open(d->path, &d->s);
}

static void db_close(struct db *d)
{
    store_close(d->s);
    d->s = NULL;
    db_remove(d->path);
}

/* Runs one SQL statement on the file behind the store's back. */
static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc;

    if (sqlite3_open(path, &db) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 10000);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void make_user(struct store *s, const char *id, const char *login)
{
    struct store_user u;

    memset(&u, 0, sizeof u);
    snprintf(u.id, sizeof u.id, "%s", id);
    snprintf(u.login, sizeof u.login, "%s", login);
    snprintf(u.name, sizeof u.name, "Name of %s", login);
    snprintf(u.email, sizeof u.email, "%s@example.org", login);
    strcpy(u.role, "caster");
    u.created_at = T0;
    CHECK_INT(store_user_create(s, &u), SPELL_OK);
}

static void make_spell(struct store *s, const char *key)
{
    struct store_spell sp;

    memset(&sp, 0, sizeof sp);
    snprintf(sp.key, sizeof sp.key, "%s", key);
    strcpy(sp.name, "Thumbnail");
    strcpy(sp.summary, "Scales an image.");
    strcpy(sp.version, "1.2.0");
    strcpy(sp.status, "published");
    strcpy(sp.execution_mode, "service");
    strcpy(sp.pricing_model, "metered");
    sp.base_cents = 5;
    sp.per_kb_cents = 1;
    sp.inputs_schema = (char *)"{\"type\":\"object\"}";
    sp.execution = (char *)"{\"command\":[\"a.sh\"],\"timeout_s\":120}";
    CHECK_INT(store_spell_upsert(s, &sp, T0), SPELL_OK);
}

static void cast_init(struct store_cast *c, const char *id, const char *user, int64_t estimate)
{
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->user_id, sizeof c->user_id, "%s", user);
    strcpy(c->spell_key, "thumb");
    strcpy(c->spell_version, "1.2.0");
    strcpy(c->mode, "service");
    memset(c->input_hash, 'a', 64);
    c->estimated_cost_cents = estimate;
}

/* Reserves without an idempotency key; returns the rc, *outcome the result. */
static int reserve(struct store *s, const char *id, const char *user, int64_t estimate,
                   int64_t now, struct store_reserve_result *r)
{
    struct store_cast c;
    struct store_reserve req;

    cast_init(&c, id, user, estimate);
    c.inputs = (char *)"{\"url\":\"https://example.org/a.png\"}";
    memset(&req, 0, sizeof req);
    req.cast = &c;
    req.now_ms = now;
    return store_cast_reserve(s, &req, r);
}

/* ---- Lifecycle ------------------------------------------------------- */

static void test_open_fresh_and_reopen(void)
{
    struct db d;
    int v = 0;

    CHECK_INT(db_open(&d), SPELL_OK);
    CHECK_INT(store_schema_version(d.s, &v), SPELL_OK);
    CHECK_INT(v, STORE_SCHEMA_VERSION);
    CHECK_INT(store_ping(d.s), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    store_close(d.s);
    CHECK_INT(store_open(d.path, &d.s), SPELL_OK);
    CHECK_INT(store_schema_version(d.s, &v), SPELL_OK);
    CHECK_INT(v, STORE_SCHEMA_VERSION);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM schema_migrations"), STORE_SCHEMA_VERSION);
    CHECK_INT(raw_int(d.path, "PRAGMA journal_mode = WAL") >= 0, 1);
    {
        struct store_user u;
        CHECK_INT(store_user_get(d.s, "usr_1", &u), SPELL_OK);
        CHECK_STR(u.login, "ada");
    }
    db_close(&d);
}

/* The ping fails while the file at the path is not the one opened: moved
 * away, replaced, deleted; it answers again once the file is back. */
static void test_ping_file_moved(void)
{
    struct db d;
    char away[160];
    struct store *mem = NULL;

    CHECK_INT(db_open(&d), SPELL_OK);
    CHECK_INT(store_ping(d.s), SPELL_OK);
    snprintf(away, sizeof away, "%s.away", d.path);
    CHECK_INT(rename(d.path, away), 0);
    CHECK_INT(store_ping(d.s), SPELL_EIO);
    CHECK_INT(store_ping(d.s), SPELL_EIO);
    CHECK_INT(rename(away, d.path), 0);
    CHECK_INT(store_ping(d.s), SPELL_OK);
    /* Another file in its place. */
    CHECK_INT(rename(d.path, away), 0);
    CHECK_INT(raw_exec(d.path, "CREATE TABLE schema_migrations (version INTEGER)"), 0);
    CHECK_INT(store_ping(d.s), SPELL_EIO);
    unlink(d.path);
    CHECK_INT(store_ping(d.s), SPELL_EIO);
    CHECK_INT(rename(away, d.path), 0);
    CHECK_INT(store_ping(d.s), SPELL_OK);
    db_close(&d);
    CHECK_INT(store_open(":memory:", &mem), SPELL_OK);
    CHECK_INT(store_ping(mem), SPELL_OK);
    store_close(mem);
    CHECK_INT(store_ping(NULL), SPELL_EINVAL);
}

static void test_open_sqlite_url(void)
{
    char url[200];
    struct db d;

    snprintf(d.path, sizeof d.path, "%s/url.db", tmpdir);
    snprintf(url, sizeof url, "sqlite://%s", d.path);
    d.s = NULL;
    CHECK_INT(store_open(url, &d.s), SPELL_OK);
    CHECK(d.s != NULL);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM schema_migrations"), STORE_SCHEMA_VERSION);
    db_close(&d);
}

static void test_open_refuses_bad_urls(void)
{
    struct store *s = (struct store *)1;

    CHECK_INT(store_open("postgres://localhost/spell", &s), SPELL_EINVAL);
    CHECK(s == NULL);
    CHECK_INT(store_open("", &s), SPELL_EINVAL);
    CHECK_INT(store_open(NULL, &s), SPELL_EINVAL);
    CHECK_INT(store_open("sqlite://", &s), SPELL_EINVAL);
    CHECK_INT(store_open("ftp://x", &s), SPELL_EINVAL);
    CHECK_INT(store_open("/nonexistent-dir-for-spell/x/y.db", &s), SPELL_EIO);
    CHECK(s == NULL);
    CHECK_INT(store_open("x.db", NULL), SPELL_EINVAL);
}

static void test_open_refuses_newer_schema(void)
{
    struct db d;

    CHECK_INT(db_open(&d), SPELL_OK);
    store_close(d.s);
    d.s = NULL;
    {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO schema_migrations (version, name)"
                                  " VALUES (%d, 'from the future')", STORE_SCHEMA_VERSION + 1);
        CHECK_INT(raw_exec(d.path, sql), 0);
    }
    CHECK_INT(store_open(d.path, &d.s), STORE_ESCHEMA);
    CHECK(d.s == NULL);
    /* Nothing was changed. */
    CHECK_INT(raw_int(d.path, "SELECT MAX(version) FROM schema_migrations"),
              STORE_SCHEMA_VERSION + 1);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM users"), 0);
    db_close(&d);
}

static void test_memory_database(void)
{
    struct store *s = NULL;
    struct store_user u;

    CHECK_INT(store_open(":memory:", &s), SPELL_OK);
    make_user(s, "usr_m", "mem");
    CHECK_INT(store_user_get(s, "usr_m", &u), SPELL_OK);
    store_close(s);
    store_close(NULL);
}

/* ---- Users, sessions, keys ------------------------------------------- */

static void test_users(void)
{
    struct db d;
    struct store_user u, got;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(store_user_get(d.s, "usr_1", &got), SPELL_OK);
    CHECK_STR(got.login, "ada");
    CHECK_STR(got.name, "Name of ada");
    CHECK_STR(got.email, "ada@example.org");
    CHECK_STR(got.role, "caster");
    CHECK_INT(got.created_at, T0);
    CHECK_INT(store_user_by_login(d.s, "ada", &got), SPELL_OK);
    CHECK_STR(got.id, "usr_1");
    CHECK_INT(store_user_get(d.s, "usr_2", &got), SPELL_ENOTFOUND);
    CHECK_STR(got.id, "");
    CHECK_INT(store_user_by_login(d.s, "bob", &got), SPELL_ENOTFOUND);

    memset(&u, 0, sizeof u);
    strcpy(u.id, "usr_1");
    strcpy(u.login, "other");
    strcpy(u.role, "maker");
    CHECK_INT(store_user_create(d.s, &u), STORE_ECONFLICT);
    strcpy(u.id, "usr_2");
    strcpy(u.login, "ada");
    CHECK_INT(store_user_create(d.s, &u), STORE_ECONFLICT);
    strcpy(u.login, "bob");
    strcpy(u.role, "root");
    CHECK_INT(store_user_create(d.s, &u), SPELL_EINVAL);
    strcpy(u.role, "admin");
    memset(u.login, 'x', sizeof u.login);    /* no NUL inside the array */
    CHECK_INT(store_user_create(d.s, &u), SPELL_ETOOBIG);
    strcpy(u.login, "bob");
    strcpy(u.name, "bad \xc3\x28 utf-8");
    CHECK_INT(store_user_create(d.s, &u), SPELL_EINVAL);
    strcpy(u.name, "overlong \xc0\xaf");
    CHECK_INT(store_user_create(d.s, &u), SPELL_EINVAL);
    strcpy(u.name, "B\xc3\xb6" "b \xe2\x9c\x93");
    strcpy(u.login, "bo b");
    CHECK_INT(store_user_create(d.s, &u), SPELL_EINVAL);
    strcpy(u.login, "bob");
    CHECK_INT(store_user_create(d.s, &u), SPELL_OK);
    CHECK_INT(store_user_get(d.s, "usr_2", &got), SPELL_OK);
    CHECK_STR(got.name, "B\xc3\xb6" "b \xe2\x9c\x93");
    CHECK_INT(store_user_create(d.s, NULL), SPELL_EINVAL);
    CHECK_INT(store_user_get(d.s, NULL, &got), SPELL_EINVAL);
    CHECK_INT(store_user_get(NULL, "usr_1", &got), SPELL_EINVAL);
    /* Quotes reach SQLite only as bound values. */
    CHECK_INT(store_user_get(d.s, "usr_1'OR'1'='1", &got), SPELL_ENOTFOUND);
    db_close(&d);
}

static const char tok1[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char tok2[] = "1111111111111111111111111111111111111111111111111111111111111111";

static void test_sessions(void)
{
    struct db d;
    struct store_user u;
    int64_t n = -1;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(store_session_create(d.s, tok1, "usr_1", T0, T0 + STORE_SESSION_TTL_MS), SPELL_OK);
    CHECK_INT(store_session_create(d.s, tok1, "usr_1", T0, T0 + 10), STORE_ECONFLICT);
    CHECK_INT(store_session_create(d.s, tok2, "usr_9", T0, T0 + 10), SPELL_ENOTFOUND);
    CHECK_INT(store_session_create(d.s, "abc", "usr_1", T0, T0 + 10), SPELL_EINVAL);
    CHECK_INT(store_session_create(d.s, tok2, "usr_1", T0, T0), SPELL_EINVAL);
    CHECK_INT(store_session_user(d.s, tok1, T0 + 1000, &u), SPELL_OK);
    CHECK_STR(u.login, "ada");
    CHECK_INT(store_session_user(d.s, tok1, T0 + STORE_SESSION_TTL_MS - 1, &u), SPELL_OK);
    CHECK_INT(store_session_user(d.s, tok1, T0 + STORE_SESSION_TTL_MS, &u), SPELL_ENOTFOUND);
    CHECK_INT(store_session_user(d.s, tok2, T0, &u), SPELL_ENOTFOUND);
    CHECK_INT(store_session_create(d.s, tok2, "usr_1", T0, T0 + DAY), SPELL_OK);
    CHECK_INT(store_sessions_purge(d.s, T0 + DAY, &n), SPELL_OK);
    CHECK_INT(n, 1);
    CHECK_INT(store_session_delete(d.s, tok1), SPELL_OK);
    CHECK_INT(store_session_delete(d.s, tok1), SPELL_ENOTFOUND);
    CHECK_INT(store_session_user(d.s, tok1, T0, &u), SPELL_ENOTFOUND);
    db_close(&d);
}

struct key_seen {
    int n;
    char prefixes[8][STORE_KEY_PREFIX_SIZE];
};

static int key_collect(void *ud, const struct store_key *k)
{
    struct key_seen *ks = ud;

    if (ks->n < 8)
        strcpy(ks->prefixes[ks->n], k->prefix);
    ks->n++;
    return 0;
}

static int stop_at_once(void *ud, const struct store_key *k)
{
    (void)ud;
    (void)k;
    return 1;
}

static void test_keys(void)
{
    struct db d;
    struct store_key k, got;
    struct key_seen ks;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    memset(&k, 0, sizeof k);
    strcpy(k.id, "key_1");
    strcpy(k.user_id, "usr_1");
    strcpy(k.prefix, "AbCdEfGh");
    strcpy(k.name, "laptop");
    strcpy(k.hash, "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA");
    k.created_at = T0;
    CHECK_INT(store_key_create(d.s, &k), SPELL_OK);
    CHECK_INT(store_key_create(d.s, &k), STORE_ECONFLICT);
    strcpy(k.id, "key_2");
    CHECK_INT(store_key_create(d.s, &k), STORE_ECONFLICT);     /* same prefix */
    strcpy(k.prefix, "ZZZZZZZZ");
    k.created_at = T0 + 5;
    CHECK_INT(store_key_create(d.s, &k), SPELL_OK);
    strcpy(k.id, "key_3");
    strcpy(k.prefix, "YYYYYYYY");
    strcpy(k.user_id, "usr_x");
    CHECK_INT(store_key_create(d.s, &k), SPELL_ENOTFOUND);

    CHECK_INT(store_key_by_prefix(d.s, "AbCdEfGh", &got), SPELL_OK);
    CHECK_STR(got.id, "key_1");
    CHECK_STR(got.hash, "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA");
    CHECK_INT(got.last_used_at, 0);
    CHECK_INT(got.revoked_at, 0);
    CHECK_INT(store_key_by_prefix(d.s, "nope", &got), SPELL_ENOTFOUND);

    memset(&ks, 0, sizeof ks);
    CHECK_INT(store_key_list(d.s, "usr_1", key_collect, &ks), SPELL_OK);
    CHECK_INT(ks.n, 2);
    CHECK_STR(ks.prefixes[0], "ZZZZZZZZ");     /* newest first */
    CHECK_STR(ks.prefixes[1], "AbCdEfGh");
    CHECK_INT(store_key_list(d.s, "usr_1", stop_at_once, NULL), SPELL_EABORT);

    CHECK_INT(store_key_touch(d.s, "AbCdEfGh", T0 + 100), SPELL_OK);
    CHECK_INT(store_key_touch(d.s, "nope", T0 + 100), SPELL_ENOTFOUND);
    CHECK_INT(store_key_revoke(d.s, "usr_2", "AbCdEfGh", T0 + 200), SPELL_ENOTFOUND);
    CHECK_INT(store_key_revoke(d.s, "usr_1", "AbCdEfGh", T0 + 200), SPELL_OK);
    CHECK_INT(store_key_revoke(d.s, "usr_1", "AbCdEfGh", T0 + 300), SPELL_ENOTFOUND);
    CHECK_INT(store_key_by_prefix(d.s, "AbCdEfGh", &got), SPELL_OK);
    CHECK_INT(got.last_used_at, T0 + 100);
    CHECK_INT(got.revoked_at, T0 + 200);
    db_close(&d);
}

/* ---- Budgets and spells ---------------------------------------------- */

static void test_budgets(void)
{
    struct db d;
    struct store_budget b;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(store_budget_get(d.s, "usr_1", "2026-11", &b), SPELL_OK);
    CHECK_INT(b.hard_limit_cents, 5000);
    CHECK_INT(b.soft_limit_cents, -1);
    CHECK_INT(b.source, STORE_BUDGET_DEFAULT);
    CHECK_STR(b.period, "2026-11");
    CHECK_INT(store_budget_get(d.s, "usr_9", "2026-11", &b), SPELL_ENOTFOUND);
    CHECK_INT(store_budget_get(d.s, "usr_1", "2026-13", &b), SPELL_EINVAL);
    CHECK_INT(store_budget_get(d.s, "usr_1", "2026-1", &b), SPELL_EINVAL);

    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", 2000, 1500, T0), SPELL_OK);
    CHECK_INT(store_budget_get(d.s, "usr_1", "2026-11", &b), SPELL_OK);
    CHECK_INT(b.hard_limit_cents, 2000);
    CHECK_INT(b.soft_limit_cents, 1500);
    CHECK_INT(b.source, STORE_BUDGET_PERIOD);
    /* The standing limit carries into later months. */
    CHECK_INT(store_budget_get(d.s, "usr_1", "2027-02", &b), SPELL_OK);
    CHECK_INT(b.hard_limit_cents, 2000);
    CHECK_INT(b.soft_limit_cents, 1500);
    CHECK_INT(b.source, STORE_BUDGET_STANDING);
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-12", 3000, -1, T0), SPELL_OK);
    CHECK_INT(store_budget_get(d.s, "usr_1", "2026-11", &b), SPELL_OK);
    CHECK_INT(b.hard_limit_cents, 2000);       /* November keeps its own row */
    CHECK_INT(store_budget_get(d.s, "usr_1", "2027-01", &b), SPELL_OK);
    CHECK_INT(b.hard_limit_cents, 3000);
    CHECK_INT(b.soft_limit_cents, -1);

    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", 1000, 1001, T0), SPELL_EINVAL);
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", -1, -1, T0), SPELL_EINVAL);
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", 1000, -2, T0), SPELL_EINVAL);
    CHECK_INT(store_budget_set(d.s, "usr_9", "2026-11", 1000, -1, T0), SPELL_ENOTFOUND);

    CHECK_INT(store_budget_clear(d.s, "usr_1", "2026-12"), SPELL_OK);
    CHECK_INT(store_budget_get(d.s, "usr_1", "2026-12", &b), SPELL_OK);
    CHECK_INT(b.hard_limit_cents, 5000);
    CHECK_INT(b.source, STORE_BUDGET_DEFAULT);
    CHECK_INT(store_budget_clear(d.s, "usr_9", "2026-12"), SPELL_ENOTFOUND);
    db_close(&d);
}

static int spell_count(void *ud, const struct store_spell *sp)
{
    (void)sp;
    (*(int *)ud)++;
    return 0;
}

static void test_spells(void)
{
    struct db d;
    struct store_spell sp, got;
    int n = 0;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_spell(d.s, "thumb");
    make_spell(d.s, "zeta");
    CHECK_INT(store_spell_get(d.s, "thumb", &got), SPELL_OK);
    CHECK_STR(got.name, "Thumbnail");
    CHECK_STR(got.pricing_model, "metered");
    CHECK_INT(got.base_cents, 5);
    CHECK_INT(got.per_kb_cents, 1);
    CHECK_STR(got.inputs_schema, "{\"type\":\"object\"}");
    CHECK_STR(got.execution, "{\"command\":[\"a.sh\"],\"timeout_s\":120}");
    store_spell_clear(&got);
    CHECK(got.inputs_schema == NULL);
    CHECK_INT(store_spell_get(d.s, "nope", &got), SPELL_ENOTFOUND);

    memset(&sp, 0, sizeof sp);
    strcpy(sp.key, "thumb");
    strcpy(sp.name, "Thumbnail 2");
    strcpy(sp.version, "2.0.0");
    strcpy(sp.status, "deprecated");
    strcpy(sp.execution_mode, "workflow");
    strcpy(sp.pricing_model, "flat");
    sp.flat_cents = 25;
    CHECK_INT(store_spell_upsert(d.s, &sp, T0 + 1), SPELL_OK);
    CHECK_INT(store_spell_get(d.s, "thumb", &got), SPELL_OK);
    CHECK_STR(got.version, "2.0.0");
    CHECK_INT(got.flat_cents, 25);
    CHECK(got.inputs_schema == NULL);
    store_spell_clear(&got);
    CHECK_INT(store_spell_list(d.s, spell_count, &n), SPELL_OK);
    CHECK_INT(n, 2);

    sp.execution = (char *)"{\"a\":";
    CHECK_INT(store_spell_upsert(d.s, &sp, T0), SPELL_EINVAL);
    sp.execution = (char *)"{} {}";
    CHECK_INT(store_spell_upsert(d.s, &sp, T0), SPELL_EINVAL);
    sp.execution = (char *)"[\"\xff\"]";
    CHECK_INT(store_spell_upsert(d.s, &sp, T0), SPELL_EINVAL);
    sp.execution = malloc(STORE_JSON_MAX + 2);
    if (sp.execution) {
        memset(sp.execution, ' ', STORE_JSON_MAX + 1);
        sp.execution[0] = '1';
        sp.execution[STORE_JSON_MAX + 1] = '\0';
        CHECK_INT(store_spell_upsert(d.s, &sp, T0), SPELL_ETOOBIG);
        free(sp.execution);
    }
    sp.execution = NULL;
    sp.flat_cents = -1;
    CHECK_INT(store_spell_upsert(d.s, &sp, T0), SPELL_EINVAL);
    db_close(&d);
}

/* ---- Idempotency ----------------------------------------------------- */

static const char h1[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char h2[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static void test_idempotency_states(void)
{
    struct db d;
    struct store_idem r;
    int64_t n = -1;
    char big_key[300];

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(store_idem_begin(d.s, "usr_1", "k 1", h1, T0, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);
    CHECK_INT(store_idem_begin(d.s, "usr_1", "k 1", h1, T0 + 1, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_IN_FLIGHT);
    CHECK_INT(store_idem_begin(d.s, "usr_1", "k 1", h2, T0 + 1, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_MISMATCH);
    CHECK_INT(store_idem_finish(d.s, "usr_1", "k 1", 201, "{\"ok\":true}", 11), SPELL_OK);
    CHECK_INT(store_idem_finish(d.s, "usr_1", "k 1", 201, "{}", 2), SPELL_ENOTFOUND);
    CHECK_INT(store_idem_begin(d.s, "usr_1", "k 1", h1, T0 + 2, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_REPLAY);
    CHECK_INT(r.status, 201);
    CHECK_INT(r.body_len, 11);
    CHECK_STR(r.body, "{\"ok\":true}");
    store_idem_clear(&r);
    CHECK(r.body == NULL);
    CHECK_INT(store_idem_begin(d.s, "usr_1", "k 1", h2, T0 + 2, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_MISMATCH);

    /* 24 h: one millisecond before, the record holds; at 24 h it is gone. */
    CHECK_INT(store_idem_begin(d.s, "usr_1", "k 1", h1, T0 + STORE_IDEM_TTL_MS - 1, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_REPLAY);
    store_idem_clear(&r);
    CHECK_INT(store_idem_begin(d.s, "usr_1", "k 1", h2, T0 + STORE_IDEM_TTL_MS, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);

    /* Another user's key of the same name is another record. */
    make_user(d.s, "usr_2", "bob");
    CHECK_INT(store_idem_begin(d.s, "usr_2", "k 1", h1, T0, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);
    CHECK_INT(store_idem_abandon(d.s, "usr_2", "k 1"), SPELL_OK);
    CHECK_INT(store_idem_abandon(d.s, "usr_2", "k 1"), SPELL_ENOTFOUND);
    CHECK_INT(store_idem_begin(d.s, "usr_2", "k 1", h2, T0 + 5, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);

    CHECK_INT(store_idem_purge(d.s, T0 + 5 + STORE_IDEM_TTL_MS - 1, &n), SPELL_OK);
    CHECK_INT(n, 0);
    CHECK_INT(store_idem_purge(d.s, T0 + 5 + STORE_IDEM_TTL_MS, &n), SPELL_OK);
    CHECK_INT(n, 1);

    CHECK_INT(store_idem_begin(d.s, "usr_9", "k", h1, T0, &r), SPELL_ENOTFOUND);
    CHECK_INT(store_idem_begin(d.s, "usr_1", "", h1, T0, &r), SPELL_EINVAL);
    CHECK_INT(store_idem_begin(d.s, "usr_1", "tab\tkey", h1, T0, &r), SPELL_EINVAL);
    memset(big_key, 'k', sizeof big_key - 1);
    big_key[sizeof big_key - 1] = '\0';
    CHECK_INT(store_idem_begin(d.s, "usr_1", big_key, h1, T0, &r), SPELL_ETOOBIG);
    big_key[256] = '\0';       /* 256 characters: one past the limit */
    CHECK_INT(store_idem_begin(d.s, "usr_1", big_key, h1, T0, &r), SPELL_ETOOBIG);
    big_key[255] = '\0';       /* 255: the longest allowed */
    CHECK_INT(store_idem_begin(d.s, "usr_1", big_key, h1, T0, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);
    CHECK_INT(store_idem_finish(d.s, "usr_1", big_key, 200, "x", STORE_RESPONSE_MAX + 1),
              SPELL_ETOOBIG);
    CHECK_INT(store_idem_finish(d.s, "usr_1", big_key, 200, "a\0b", 3), SPELL_EINVAL);
    CHECK_INT(store_idem_finish(d.s, "usr_1", big_key, 42, "{}", 2), SPELL_EINVAL);
    db_close(&d);
}

/* ---- Casts and money ------------------------------------------------- */

static int64_t ledger_count(const char *path)
{
    return raw_int(path, "SELECT COUNT(*) FROM ledger");
}

static void test_reserve_at_limit(void)
{
    struct db d;
    struct store_reserve_result r;
    struct store_cast c;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", 1000, -1, T0), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_1", "usr_1", 600, T0, &r), SPELL_OK);
    CHECK_INT(r.outcome, STORE_RESERVED);
    CHECK_INT(r.reserved_cents, 600);
    CHECK_INT(r.remaining_cents, 400);
    CHECK_INT(r.ledger_seq, 1);
    CHECK_STR(r.period, "2026-11");
    /* Exactly at the limit succeeds. */
    CHECK_INT(reserve(d.s, "cst_2", "usr_1", 400, T0 + 1, &r), SPELL_OK);
    CHECK_INT(r.outcome, STORE_RESERVED);
    CHECK_INT(r.remaining_cents, 0);
    CHECK_INT(r.ledger_seq, 2);
    /* One cent over fails, with the numbers, and writes nothing. */
    CHECK_INT(reserve(d.s, "cst_3", "usr_1", 1, T0 + 2, &r), SPELL_OK);
    CHECK_INT(r.outcome, STORE_BUDGET_EXCEEDED);
    CHECK_INT(r.hard_limit_cents, 1000);
    CHECK_INT(r.spent_cents, 0);
    CHECK_INT(r.reserved_cents, 1000);
    CHECK_INT(r.estimate_cents, 1);
    CHECK_INT(r.remaining_cents, 0);
    CHECK_INT(r.ledger_seq, 0);
    CHECK_INT(store_cast_get(d.s, "cst_3", NULL, &c), SPELL_ENOTFOUND);
    CHECK_INT(ledger_count(d.path), 2);
    /* A free cast still fits. */
    CHECK_INT(reserve(d.s, "cst_4", "usr_1", 0, T0 + 3, &r), SPELL_OK);
    CHECK_INT(r.outcome, STORE_RESERVED);
    /* A huge estimate neither overflows nor passes. */
    CHECK_INT(reserve(d.s, "cst_5", "usr_1", INT64_MAX, T0 + 3, &r), SPELL_OK);
    CHECK_INT(r.outcome, STORE_BUDGET_EXCEEDED);
    /* Errors. */
    CHECK_INT(reserve(d.s, "cst_1", "usr_1", 0, T0 + 4, &r), STORE_ECONFLICT);
    CHECK_INT(reserve(d.s, "cst_6", "usr_9", 0, T0 + 4, &r), SPELL_ENOTFOUND);
    CHECK_INT(reserve(d.s, "cst_6", "usr_1", -1, T0 + 4, &r), SPELL_EINVAL);
    CHECK_INT(store_cast_reserve(d.s, NULL, &r), SPELL_EINVAL);
    CHECK_INT(ledger_count(d.path), 3);
    db_close(&d);
}

struct ev_seen {
    int n;
    int64_t seqs[64];
    char types[64][STORE_EVENT_TYPE_SIZE];
    char last_data[2048];
};

static int ev_collect(void *ud, const struct store_event *e)
{
    struct ev_seen *es = ud;

    if (es->n < 64) {
        es->seqs[es->n] = e->seq;
        strcpy(es->types[es->n], e->type);
    }
    snprintf(es->last_data, sizeof es->last_data, "%.*s", (int)e->data_len, e->data);
    es->n++;
    return 0;
}

static void test_cast_lifecycle_and_settle(void)
{
    struct db d;
    struct store_reserve_result r;
    struct store_settle_result st;
    struct store_cast c;
    struct store_usage u;
    struct store_spell sp;
    struct ev_seen es;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    make_spell(d.s, "thumb");
    CHECK_INT(reserve(d.s, "cst_1", "usr_1", 50, T0, &r), SPELL_OK);
    CHECK_INT(store_cast_get(d.s, "cst_1", "usr_1", &c), SPELL_OK);
    CHECK_STR(c.status, "queued");
    CHECK_INT(c.cost_cents, -1);
    CHECK_INT(c.duration_ms, -1);
    CHECK_INT(c.last_seq, 1);
    CHECK_STR(c.inputs, "{\"url\":\"https://example.org/a.png\"}");
    store_cast_clear(&c);
    CHECK_INT(store_cast_get(d.s, "cst_1", "usr_2", &c), SPELL_ENOTFOUND);

    CHECK_INT(store_cast_start(d.s, "cst_1", "https://ci.example/run/1", T0 + 1000), SPELL_OK);
    CHECK_INT(store_cast_start(d.s, "cst_1", NULL, T0 + 1000), STORE_ECONFLICT);
    CHECK_INT(store_cast_start(d.s, "cst_9", NULL, T0 + 1000), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_progress(d.s, "cst_1", 40, "resizing", T0 + 2000), SPELL_OK);
    CHECK_INT(store_cast_progress(d.s, "cst_1", 101, "x", T0 + 2000), SPELL_EINVAL);
    CHECK_INT(store_cast_progress(d.s, "cst_9", 1, "x", T0 + 2000), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_set_run_url(d.s, "cst_1", "https://ci.example/run/2"), SPELL_OK);
    CHECK_INT(store_cast_set_run_url(d.s, "cst_9", "https://x"), SPELL_ENOTFOUND);

    /* A cost above the estimate is charged at the estimate. */
    CHECK_INT(store_cast_settle(d.s, "cst_1", 70, "https://cdn.example/a.png", T0 + 5000, &st),
              SPELL_OK);
    CHECK_INT(st.cost_cents, 50);
    CHECK_INT(st.spent_cents, 50);
    CHECK_INT(st.reserved_cents, 0);
    CHECK_INT(st.hard_limit_cents, 5000);
    CHECK_INT(st.soft_limit_crossed, 0);
    CHECK_INT(st.ledger_seq, 2);
    CHECK_INT(st.event_seq, 4);
    CHECK_STR(st.user_id, "usr_1");
    CHECK_STR(st.period, "2026-11");
    CHECK_INT(store_cast_settle(d.s, "cst_1", 10, NULL, T0 + 6000, &st), STORE_ECONFLICT);
    CHECK_INT(store_cast_release(d.s, "cst_1", "failed", "X", "y", T0 + 6000, NULL),
              STORE_ECONFLICT);
    CHECK_INT(store_cast_settle(d.s, "cst_9", 10, NULL, T0 + 6000, &st), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_progress(d.s, "cst_1", 50, "late", T0 + 7000), STORE_ECONFLICT);

    CHECK_INT(store_cast_get(d.s, "cst_1", NULL, &c), SPELL_OK);
    CHECK_STR(c.status, "succeeded");
    CHECK_INT(c.progress, 100);
    CHECK_STR(c.message, "resizing");
    CHECK_INT(c.cost_cents, 50);
    CHECK_INT(c.started_at, T0 + 1000);
    CHECK_INT(c.finished_at, T0 + 5000);
    CHECK_INT(c.duration_ms, 4000);
    CHECK_STR(c.run_url, "https://ci.example/run/2");
    CHECK_STR(c.artifact_url, "https://cdn.example/a.png");
    CHECK(c.inputs == NULL);     /* dropped once finished */
    CHECK_INT(c.last_seq, 4);
    store_cast_clear(&c);

    memset(&es, 0, sizeof es);
    CHECK_INT(store_events_after(d.s, "cst_1", 0, 0, ev_collect, &es), SPELL_OK);
    CHECK_INT(es.n, 4);
    CHECK_INT(es.seqs[0], 1);
    CHECK_INT(es.seqs[3], 4);
    CHECK_STR(es.types[0], "cast.queued");
    CHECK_STR(es.types[1], "cast.started");
    CHECK_STR(es.types[2], "cast.progress");
    CHECK_STR(es.types[3], "cast.succeeded");
    CHECK_STR(es.last_data, "{\"cast_id\":\"cst_1\",\"status\":\"succeeded\",\"progress\":100,"
                            "\"message\":\"resizing\",\"ts\":\"2026-11-22T08:00:05.000Z\","
                            "\"final\":true,\"cost_cents\":50,"
                            "\"artifact_url\":\"https://cdn.example/a.png\"}");
    memset(&es, 0, sizeof es);
    CHECK_INT(store_events_after(d.s, "cst_1", 1, 2, ev_collect, &es), SPELL_OK);
    CHECK_INT(es.n, 2);
    CHECK_INT(es.seqs[0], 2);
    CHECK_INT(es.seqs[1], 3);
    memset(&es, 0, sizeof es);
    CHECK_INT(store_events_after(d.s, "cst_1", 4, 0, ev_collect, &es), SPELL_OK);
    CHECK_INT(es.n, 0);
    CHECK_INT(store_events_after(d.s, "cst_9", 0, 0, ev_collect, &es), SPELL_ENOTFOUND);

    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT(u.calls, 1);
    CHECK_INT(u.spent_cents, 50);
    CHECK_INT(u.reserved_cents, 0);
    CHECK_INT(u.remaining_cents, 4950);
    CHECK_INT(u.n_daily, 1);
    CHECK_STR(u.daily[0].date, "2026-11-22");
    CHECK_INT(u.daily[0].spent_cents, 50);
    CHECK_INT(u.n_by_spell, 1);
    CHECK_STR(u.by_spell[0].spell_key, "thumb");
    CHECK_INT(u.by_spell[0].calls, 1);
    CHECK_INT(u.by_spell_truncated, 0);
    CHECK_INT(u.budget.source, STORE_BUDGET_PERIOD);    /* copied by the reservation */
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-10", &u), SPELL_OK);
    CHECK_INT(u.calls, 0);
    CHECK_INT(u.remaining_cents, 5000);
    CHECK_INT(store_usage_get(d.s, "usr_9", "2026-10", &u), SPELL_ENOTFOUND);

    CHECK_INT(store_spell_get(d.s, "thumb", &sp), SPELL_OK);
    CHECK_INT(sp.avg_cost_cents, 50);
    CHECK_INT(sp.avg_duration_ms, 4000);
    store_spell_clear(&sp);
    db_close(&d);
}

/* Start and first progress in one transaction: the same events, in order,
 * as the two calls one after the other. */
static void test_start_progress(void)
{
    struct db d;
    struct store_reserve_result r;
    struct store_cast c;
    struct ev_seen es;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(reserve(d.s, "cst_1", "usr_1", 10, T0, &r), SPELL_OK);
    CHECK_INT(store_cast_start_progress(d.s, "cst_1", NULL, -1, "x", T0 + 1), SPELL_EINVAL);
    CHECK_INT(store_cast_start_progress(d.s, "cst_1", NULL, 101, "x", T0 + 1), SPELL_EINVAL);
    CHECK_INT(store_cast_start_progress(d.s, "cst_1", NULL, 50, "bad\xff", T0 + 1), SPELL_EINVAL);
    CHECK_INT(store_cast_start_progress(d.s, "cst_9", NULL, 50, "x", T0 + 1), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_start_progress(d.s, "cst_1", "https://ci.example/r", 50, "echoing",
                                        T0 + 1000), SPELL_OK);
    CHECK_INT(store_cast_get(d.s, "cst_1", NULL, &c), SPELL_OK);
    CHECK_STR(c.status, "running");
    CHECK_INT(c.progress, 50);
    CHECK_STR(c.message, "echoing");
    CHECK_STR(c.run_url, "https://ci.example/r");
    CHECK_INT(c.started_at, T0 + 1000);
    CHECK_INT(c.last_seq, 3);
    store_cast_clear(&c);
    memset(&es, 0, sizeof es);
    CHECK_INT(store_events_after(d.s, "cst_1", 0, 0, ev_collect, &es), SPELL_OK);
    CHECK_INT(es.n, 3);
    CHECK_STR(es.types[1], "cast.started");
    CHECK_INT(es.seqs[1], 2);
    CHECK_STR(es.types[2], "cast.progress");
    CHECK_INT(es.seqs[2], 3);
    CHECK_STR(es.last_data, "{\"cast_id\":\"cst_1\",\"status\":\"running\",\"progress\":50,"
                            "\"message\":\"echoing\",\"ts\":\"2026-11-22T08:00:01.000Z\"}");
    /* Started already: nothing changes. */
    CHECK_INT(store_cast_start_progress(d.s, "cst_1", NULL, 60, "again", T0 + 2000),
              STORE_ECONFLICT);
    CHECK_INT(store_cast_get(d.s, "cst_1", NULL, &c), SPELL_OK);
    CHECK_INT(c.progress, 50);
    CHECK_INT(c.last_seq, 3);
    store_cast_clear(&c);
    db_close(&d);
}

static void test_release(void)
{
    struct db d;
    struct store_reserve_result r;
    struct store_settle_result st;
    struct store_cast c;
    struct store_usage u;
    struct ev_seen es;
    struct store_ledger_entry le;
    int64_t checked = 0, bad = -1;

    (void)le;
    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(reserve(d.s, "cst_1", "usr_1", 300, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_2", "usr_1", 200, T0, &r), SPELL_OK);
    CHECK_INT(store_cast_release(d.s, "cst_1", "succeeded", "X", "y", T0 + 1, &st),
              SPELL_EINVAL);
    CHECK_INT(store_cast_release(d.s, "cst_1", "failed", NULL, "y", T0 + 1, &st), SPELL_EINVAL);
    CHECK_INT(store_cast_release(d.s, "cst_1", "failed", "SPELL_ERROR", "exit \"1\"", T0 + 10,
                                 &st), SPELL_OK);
    CHECK_INT(st.cost_cents, 0);
    CHECK_INT(st.reserved_cents, 200);
    CHECK_INT(st.spent_cents, 0);
    CHECK_INT(st.event_seq, 2);
    CHECK_INT(store_cast_release(d.s, "cst_2", "canceled", "CANCELED", "", T0 + 20, NULL),
              SPELL_OK);
    CHECK_INT(store_cast_release(d.s, "cst_2", "canceled", "CANCELED", "", T0 + 20, NULL),
              STORE_ECONFLICT);
    CHECK_INT(store_cast_release(d.s, "cst_9", "canceled", "CANCELED", "", T0 + 20, NULL),
              SPELL_ENOTFOUND);
    CHECK_INT(store_cast_get(d.s, "cst_1", NULL, &c), SPELL_OK);
    CHECK_STR(c.status, "failed");
    CHECK_STR(c.error_code, "SPELL_ERROR");
    CHECK_STR(c.error_message, "exit \"1\"");
    CHECK_INT(c.cost_cents, -1);
    CHECK_INT(c.duration_ms, 10);
    CHECK(c.inputs == NULL);
    store_cast_clear(&c);
    memset(&es, 0, sizeof es);
    CHECK_INT(store_events_after(d.s, "cst_1", 1, 0, ev_collect, &es), SPELL_OK);
    CHECK_INT(es.n, 1);
    CHECK_STR(es.types[0], "cast.failed");
    CHECK_STR(es.last_data, "{\"cast_id\":\"cst_1\",\"status\":\"failed\",\"progress\":0,"
                            "\"message\":\"\",\"ts\":\"2026-11-22T08:00:00.010Z\","
                            "\"final\":true,\"cost_cents\":0,\"error\":{\"code\":"
                            "\"SPELL_ERROR\",\"message\":\"exit \\\"1\\\"\"}}");
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT(u.reserved_cents, 0);
    CHECK_INT(u.spent_cents, 0);
    CHECK_INT(u.calls, 0);
    CHECK_INT(ledger_count(d.path), 4);
    CHECK_INT(raw_int(d.path, "SELECT amount_cents FROM ledger WHERE seq = 3"), 300);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM ledger WHERE kind = 'release'"), 2);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT(checked, 4);
    CHECK_INT(bad, 0);
    db_close(&d);
}

static void test_soft_limit_once(void)
{
    struct db d;
    struct store_reserve_result r;
    struct store_settle_result st;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", 1000, 100, T0), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_1", "usr_1", 60, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_2", "usr_1", 40, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_3", "usr_1", 40, T0, &r), SPELL_OK);
    CHECK_INT(store_cast_settle(d.s, "cst_1", 60, NULL, T0 + 1, &st), SPELL_OK);
    CHECK_INT(st.soft_limit_crossed, 0);
    CHECK_INT(st.soft_limit_cents, 100);
    CHECK_INT(store_cast_settle(d.s, "cst_2", 40, NULL, T0 + 2, &st), SPELL_OK);
    CHECK_INT(st.spent_cents, 100);
    CHECK_INT(st.soft_limit_crossed, 1);     /* reaching it counts */
    CHECK_INT(store_cast_settle(d.s, "cst_3", 40, NULL, T0 + 3, &st), SPELL_OK);
    CHECK_INT(st.soft_limit_crossed, 0);     /* once per period */
    /* The next month starts afresh under the standing limit. */
    CHECK_INT(reserve(d.s, "cst_4", "usr_1", 150, T0 + 30 * DAY, &r), SPELL_OK);
    CHECK_STR(r.period, "2026-12");
    CHECK_INT(r.soft_limit_cents, 100);
    CHECK_INT(store_cast_settle(d.s, "cst_4", 150, NULL, T0 + 30 * DAY, &st), SPELL_OK);
    CHECK_INT(st.soft_limit_crossed, 1);
    db_close(&d);
}

struct responder {
    int calls;
    int fail;
    int64_t seen_remaining;
    pthread_t thread;               /* the thread of the last call */
};

static int respond_fn(void *ud, const struct store_reserve_result *r, int *status,
                      struct spell_buf *body)
{
    struct responder *rp = ud;

    rp->calls++;
    rp->seen_remaining = r->remaining_cents;
    rp->thread = pthread_self();
    if (rp->fail)
        return 1;
    *status = 202;
    return spell_buf_addf(body, "{\"remaining\":%lld}", (long long)r->remaining_cents);
}

static void test_reserve_with_idempotency(void)
{
    struct db d;
    struct store_cast c, got;
    struct store_reserve req;
    struct store_reserve_result r;
    struct store_idem im;
    struct responder rp;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    cast_init(&c, "cst_1", "usr_1", 100);
    strcpy(c.idempotency_key, "idem-1");
    memset(&req, 0, sizeof req);
    memset(&rp, 0, sizeof rp);
    req.cast = &c;
    req.now_ms = T0;
    CHECK_INT(store_cast_reserve(d.s, &req, &r), SPELL_EINVAL);    /* respond missing */
    req.respond = respond_fn;
    req.respond_ud = &rp;
    CHECK_INT(store_cast_reserve(d.s, &req, &r), SPELL_ENOTFOUND);  /* nothing in flight */

    CHECK_INT(store_idem_begin(d.s, "usr_1", "idem-1", h1, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_NEW);
    rp.fail = 1;
    CHECK_INT(store_cast_reserve(d.s, &req, &r), SPELL_EABORT);
    CHECK_INT(rp.calls, 1);
    CHECK_INT(store_cast_get(d.s, "cst_1", NULL, &got), SPELL_ENOTFOUND);   /* rolled back */
    CHECK_INT(ledger_count(d.path), 0);
    CHECK_INT(store_idem_begin(d.s, "usr_1", "idem-1", h1, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_IN_FLIGHT);

    rp.fail = 0;
    CHECK_INT(store_cast_reserve(d.s, &req, &r), SPELL_OK);
    CHECK_INT(r.outcome, STORE_RESERVED);
    CHECK_INT(rp.seen_remaining, 4900);
    CHECK_INT(store_idem_begin(d.s, "usr_1", "idem-1", h1, T0 + 1, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_REPLAY);
    CHECK_INT(im.status, 202);
    CHECK_STR(im.body, "{\"remaining\":4900}");
    store_idem_clear(&im);
    CHECK_INT(store_cast_get(d.s, "cst_1", NULL, &got), SPELL_OK);
    CHECK_STR(got.idempotency_key, "idem-1");
    store_cast_clear(&got);
    db_close(&d);
}

/* The one-commit form: lookup writes nothing, put stores a final answer
 * once, and a reservation with request_hash creates the record itself. */
static void test_idempotency_lookup_put(void)
{
    struct db d;
    struct store_idem r;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k", h1, T0, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);
    /* Nothing was recorded: a second lookup is NEW again, and so is begin. */
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k", h2, T0, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);

    CHECK_INT(store_idem_put(d.s, "usr_1", "k", h1, T0, 400, "{\"e\":1}", 7, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k", h1, T0 + 1, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_REPLAY);
    CHECK_INT(r.status, 400);
    CHECK_STR(r.body, "{\"e\":1}");
    store_idem_clear(&r);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k", h2, T0 + 1, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_MISMATCH);
    /* A second put under the live key writes nothing and reports it. */
    CHECK_INT(store_idem_put(d.s, "usr_1", "k", h1, T0 + 2, 402, "{}", 2, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_REPLAY);
    CHECK_INT(r.status, 400);
    CHECK_STR(r.body, "{\"e\":1}");
    store_idem_clear(&r);
    CHECK_INT(store_idem_put(d.s, "usr_1", "k", h2, T0 + 2, 402, "{}", 2, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_MISMATCH);
    /* Expired at 24 h: lookup says NEW and put replaces the record. */
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k", h2, T0 + STORE_IDEM_TTL_MS, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);
    CHECK_INT(store_idem_put(d.s, "usr_1", "k", h2, T0 + STORE_IDEM_TTL_MS, 402, "{}", 2, &r),
              SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k", h2, T0 + STORE_IDEM_TTL_MS + 1, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_REPLAY);
    CHECK_INT(r.status, 402);
    store_idem_clear(&r);
    /* A record left in flight by begin is IN_FLIGHT to both. */
    CHECK_INT(store_idem_begin(d.s, "usr_1", "f", h1, T0, &r), SPELL_OK);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "f", h1, T0, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_IN_FLIGHT);
    CHECK_INT(store_idem_put(d.s, "usr_1", "f", h1, T0, 400, "{}", 2, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_IN_FLIGHT);

    /* Arguments. */
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "", h1, T0, &r), SPELL_EINVAL);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k", "", T0, &r), SPELL_EINVAL);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k", h1, -1, &r), SPELL_EINVAL);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k", h1, T0, NULL), SPELL_EINVAL);
    CHECK_INT(store_idem_put(d.s, "usr_1", "p", h1, T0, 99, "{}", 2, &r), SPELL_EINVAL);
    CHECK_INT(store_idem_put(d.s, "usr_1", "p", h1, T0, 600, "{}", 2, &r), SPELL_EINVAL);
    CHECK_INT(store_idem_put(d.s, "usr_1", "p", h1, T0, 400, NULL, 2, &r), SPELL_EINVAL);
    CHECK_INT(store_idem_put(d.s, "usr_1", "p", h1, T0, 400, "{\0}", 3, &r), SPELL_EINVAL);
    CHECK_INT(store_idem_put(d.s, "usr_1", "p", h1, T0, 400, "{}", STORE_RESPONSE_MAX + 1, &r),
              SPELL_ETOOBIG);
    CHECK_INT(store_idem_put(d.s, "usr_9", "p", h1, T0, 400, "{}", 2, &r), SPELL_ENOTFOUND);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "p", h1, T0, &r), SPELL_OK);
    CHECK_INT(r.state, STORE_IDEM_NEW);
    db_close(&d);
}

static void test_reserve_creates_record(void)
{
    struct db d;
    struct store_cast c, got;
    struct store_reserve req;
    struct store_reserve_result r;
    struct store_idem im;
    struct responder rp;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    cast_init(&c, "cst_1", "usr_1", 100);
    memset(&req, 0, sizeof req);
    memset(&rp, 0, sizeof rp);
    req.cast = &c;
    req.now_ms = T0;
    req.respond = respond_fn;
    req.respond_ud = &rp;
    req.request_hash = h1;
    CHECK_INT(store_cast_reserve(d.s, &req, &r), SPELL_EINVAL);    /* a hash without a key */
    strcpy(c.idempotency_key, "one");
    req.request_hash = "not hex\t";
    CHECK_INT(store_cast_reserve(d.s, &req, &r), SPELL_EINVAL);
    req.request_hash = h1;

    /* No record beforehand: the reservation makes it, done, with its answer. */
    rp.fail = 1;
    CHECK_INT(store_cast_reserve(d.s, &req, &r), SPELL_EABORT);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "one", h1, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_NEW);    /* rolled back with the cast */
    rp.fail = 0;
    CHECK_INT(store_cast_reserve(d.s, &req, &r), SPELL_OK);
    CHECK_INT(r.outcome, STORE_RESERVED);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "one", h1, T0 + 1, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_REPLAY);
    CHECK_INT(im.status, 202);
    CHECK_STR(im.body, "{\"remaining\":4900}");
    store_idem_clear(&im);

    /* A racing request under the same key: nothing of it is written. */
    cast_init(&c, "cst_2", "usr_1", 100);
    strcpy(c.idempotency_key, "one");
    CHECK_INT(store_cast_reserve(d.s, &req, &r), STORE_ECONFLICT);
    CHECK_INT(store_cast_get(d.s, "cst_2", NULL, &got), SPELL_ENOTFOUND);
    CHECK_INT(ledger_count(d.path), 1);
    /* ... also with another request hash. */
    req.request_hash = h2;
    CHECK_INT(store_cast_reserve(d.s, &req, &r), STORE_ECONFLICT);
    CHECK_INT(store_cast_get(d.s, "cst_2", NULL, &got), SPELL_ENOTFOUND);

    /* After 24 h the key is free again and the reservation replaces it. */
    req.now_ms = T0 + STORE_IDEM_TTL_MS;
    CHECK_INT(store_cast_reserve(d.s, &req, &r), SPELL_OK);
    CHECK_INT(store_cast_get(d.s, "cst_2", NULL, &got), SPELL_OK);
    store_cast_clear(&got);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "one", h2, req.now_ms, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_REPLAY);
    store_idem_clear(&im);
    db_close(&d);
}

struct key_racer {
    struct store *s;
    int index;
    int rc;
};

static int respond_quiet(void *ud, const struct store_reserve_result *r, int *status,
                         struct spell_buf *body)
{
    (void)ud;
    (void)r;
    *status = 202;
    return spell_buf_addstr(body, "{}");
}

static void *race_one_key(void *arg)
{
    struct key_racer *kr = arg;
    struct store_cast c;
    struct store_reserve req;
    struct store_reserve_result r;
    char id[STORE_ID_SIZE];

    snprintf(id, sizeof id, "cst_k%02d", kr->index);
    cast_init(&c, id, "usr_1", 10);
    strcpy(c.idempotency_key, "shared");
    memset(&req, 0, sizeof req);
    req.cast = &c;
    req.now_ms = T0;
    req.respond = respond_quiet;
    req.request_hash = h1;
    kr->rc = store_cast_reserve(kr->s, &req, &r);
    return NULL;
}

static void test_reserve_one_key_race(void)
{
    struct db d;
    struct key_racer kr[16];
    pthread_t t[16];
    int ok = 0, conflict = 0, other = 0;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    for (int i = 0; i < 16; i++) {
        kr[i] = (struct key_racer){d.s, i, 0};
        pthread_create(&t[i], NULL, race_one_key, &kr[i]);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
        if (kr[i].rc == SPELL_OK)
            ok++;
        else if (kr[i].rc == STORE_ECONFLICT)
            conflict++;
        else
            other++;
    }
    CHECK_INT(ok, 1);
    CHECK_INT(conflict, 15);
    CHECK_INT(other, 0);
    CHECK_INT(ledger_count(d.path), 1);
    db_close(&d);
}


/* ---- Group commit ------------------------------------------------------ */

/* What a job of a batch does. */
enum gc_kind {
    GC_RESERVE, GC_START, GC_PROGRESS, GC_SETTLE, GC_RELEASE, GC_EVENT, GC_USER, GC_LEDGER
};

/* One write of a batch, run on its own thread: a reservation (the
 * default), a lifecycle write of the cast c.id, the user c.user_id with
 * login (GC_USER) or a ledger adjustment of c.user_id (GC_LEDGER). */
struct gc_job {
    struct store *s;
    enum gc_kind kind;
    int64_t cost;                   /* GC_SETTLE's cost, GC_PROGRESS's progress */
    int64_t seq;                    /* GC_EVENT's and GC_LEDGER's seq */
    char login[32];                 /* GC_USER's */
    struct store_cast c;
    struct store_reserve req;
    struct store_reserve_result r;
    struct store_settle_result st;
    struct responder rp;
    pthread_t self;                 /* the job's own thread */
    int rc;
};

static void gc_job_init(struct gc_job *j, struct store *s, const char *id, const char *user,
                        int64_t estimate, const char *key, const char *hash)
{
    memset(j, 0, sizeof *j);
    j->s = s;
    cast_init(&j->c, id, user, estimate);
    j->req.cast = &j->c;
    j->req.now_ms = T0;
    if (key) {
        snprintf(j->c.idempotency_key, sizeof j->c.idempotency_key, "%s", key);
        j->req.respond = respond_fn;
        j->req.respond_ud = &j->rp;
        j->req.request_hash = hash;
    }
    j->rc = 1;      /* no spell_rc: the job did not run */
}

/* A lifecycle write of cast id. */
static void gc_job_life(struct gc_job *j, struct store *s, enum gc_kind kind, const char *id,
                        int64_t cost)
{
    memset(j, 0, sizeof *j);
    j->s = s;
    j->kind = kind;
    j->cost = cost;
    snprintf(j->c.id, sizeof j->c.id, "%s", id);
    j->rc = 1;
}

static void *gc_job_run(void *arg)
{
    struct gc_job *j = arg;

    j->self = pthread_self();
    switch (j->kind) {
    case GC_RESERVE:
        j->rc = store_cast_reserve(j->s, &j->req, &j->r);
        break;
    case GC_START:
        j->rc = store_cast_start(j->s, j->c.id, "https://runs.example.org/1", T0 + 1);
        break;
    case GC_PROGRESS:
        j->rc = store_cast_progress(j->s, j->c.id, (int)j->cost, "working", T0 + 2);
        break;
    case GC_SETTLE:
        j->rc = store_cast_settle(j->s, j->c.id, j->cost, NULL, T0 + 3, &j->st);
        break;
    case GC_RELEASE:
        j->rc = store_cast_release(j->s, j->c.id, "failed", "spell_failed", "exit 1", T0 + 3,
                                   &j->st);
        break;
    case GC_EVENT:
        j->rc = store_event_append(j->s, j->c.id, "cast.log", "{\"line\":\"x\"}", 12, T0 + 2,
                                   &j->seq);
        break;
    case GC_USER: {
        struct store_user u;

        memset(&u, 0, sizeof u);
        snprintf(u.id, sizeof u.id, "%s", j->c.user_id);
        snprintf(u.login, sizeof u.login, "%s", j->login);
        strcpy(u.role, "caster");
        u.created_at = T0;
        j->rc = store_user_create(j->s, &u);
        break;
    }
    case GC_LEDGER:
        j->rc = store_ledger_append(j->s, j->c.user_id, "", "adjust", j->cost, T0 + 2, &j->seq);
        break;
    }
    return NULL;
}

static void wait_queued(struct store *s, size_t n)
{
    struct timespec ts = {0, 1000 * 1000};

    while (store_sqlite_writes_waiting(s) < n)
        nanosleep(&ts, NULL);
}

/* Runs the n jobs as one batch: the store's writes are held while they
 * queue, one thread after another so the queue is in job order, then let
 * go.  Returns the number of group commits they took. */
static long gc_run(struct store *s, struct gc_job *jobs, size_t n)
{
    pthread_t th[64];
    long before = store_sqlite_group_commits(s);
    size_t i;

    store_sqlite_hold_writes(s, 1);
    for (i = 0; i < n; i++) {
        pthread_create(&th[i], NULL, gc_job_run, &jobs[i]);
        wait_queued(s, i + 1);
    }
    store_sqlite_hold_writes(s, 0);
    for (i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    return store_sqlite_group_commits(s) - before;
}

static int cast_exists(struct store *s, const char *id)
{
    struct store_cast got;
    int rc = store_cast_get(s, id, NULL, &got);

    store_cast_clear(&got);
    return rc == SPELL_OK;
}

/* Within and over budget, and failures of their own, in one batch: each
 * sees the budget the earlier ones left, a failure takes back only its
 * own writes, and the totals are exact. */
static void test_group_commit_budget(void)
{
    struct db d;
    static const struct { const char *user; int64_t est; int fail; int rc; int outcome; } want[] = {
        {"usr_1", 300, 0, SPELL_OK, STORE_RESERVED},
        {"usr_1", 300, 1, SPELL_EABORT, 0},             /* its answer fails: rolled back */
        {"usr_1", 300, 0, SPELL_OK, STORE_RESERVED},
        {"usr_404", 10, 0, SPELL_ENOTFOUND, 0},         /* no such user */
        {"usr_1", 300, 0, SPELL_OK, STORE_RESERVED},    /* 900 */
        {"usr_1", 300, 0, SPELL_OK, STORE_BUDGET_EXCEEDED},
        {"usr_1", 100, 0, SPELL_OK, STORE_RESERVED},    /* 1000: the limit */
        {"usr_1", 50, 0, SPELL_OK, STORE_BUDGET_EXCEEDED},
        {"usr_1", 0, 0, SPELL_OK, STORE_RESERVED},
    };
    enum { N = sizeof want / sizeof want[0] };
    struct gc_job jobs[N];
    struct store_usage u;
    struct store_idem im;
    int64_t checked = 0, bad = -1;
    char id[32], key[32];
    int i, reserved = 0;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", 1000, -1, T0), SPELL_OK);
    for (i = 0; i < N; i++) {
        snprintf(id, sizeof id, "cst_g%d", i);
        snprintf(key, sizeof key, "k%d", i);
        gc_job_init(&jobs[i], d.s, id, want[i].user, want[i].est, key, h1);
        jobs[i].rp.fail = want[i].fail;
    }
    CHECK_INT((int)gc_run(d.s, jobs, N), 1);
    for (i = 0; i < N; i++) {
        CHECK_INT(jobs[i].rc, want[i].rc);
        if (want[i].rc == SPELL_OK)
            CHECK_INT(jobs[i].r.outcome, want[i].outcome);
        snprintf(id, sizeof id, "cst_g%d", i);
        CHECK_INT(cast_exists(d.s, id),
                  want[i].rc == SPELL_OK && want[i].outcome == STORE_RESERVED);
        reserved += want[i].rc == SPELL_OK && want[i].outcome == STORE_RESERVED;
    }
    CHECK_INT((int)jobs[4].r.remaining_cents, 100);
    CHECK_INT((int)jobs[5].r.remaining_cents, 100);
    CHECK_INT((int)jobs[6].r.remaining_cents, 0);
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT((int)u.reserved_cents, 1000);
    CHECK_INT((int)u.remaining_cents, 0);
    CHECK_INT((int)ledger_count(d.path), reserved);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT((int)checked, reserved);
    /* The failed answer left no record: a retry under its key runs afresh. */
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k1", h1, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_NEW);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k0", h1, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_REPLAY);
    CHECK_STR(im.body, "{\"remaining\":700}");
    store_idem_clear(&im);
    db_close(&d);
}

/* A batch whose COMMIT fails: every waiter gets the error and nothing of
 * any of them is in the database; the next batch goes through. */
static void test_group_commit_fails(void)
{
    struct db d;
    enum { N = 12 };
    struct gc_job jobs[N];
    struct store_usage u;
    struct store_idem im;
    int64_t checked = 0, bad = -1;
    char id[32], key[32];
    int i;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    for (i = 0; i < N; i++) {
        snprintf(id, sizeof id, "cst_f%d", i);
        snprintf(key, sizeof key, "k%d", i);
        gc_job_init(&jobs[i], d.s, id, "usr_1", 10, i % 3 ? key : NULL, h1);
    }
    store_sqlite_fail_commits(d.s, 1);
    CHECK_INT((int)gc_run(d.s, jobs, N), 1);
    store_sqlite_fail_commits(d.s, 0);
    for (i = 0; i < N; i++) {
        CHECK_INT(jobs[i].rc, SPELL_EIO);
        CHECK_INT(jobs[i].r.outcome, 0);
        CHECK_INT((int)jobs[i].r.ledger_seq, 0);
        CHECK_INT(cast_exists(d.s, jobs[i].c.id), 0);
    }
    CHECK_INT((int)ledger_count(d.path), 0);
    CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM cast_events"), 0);
    CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM idempotency"), 0);
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT((int)u.reserved_cents, 0);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k1", h1, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_NEW);

    /* The same reservations again, with commits working: all of them. */
    for (i = 0; i < N; i++) {
        snprintf(id, sizeof id, "cst_f%d", i);
        snprintf(key, sizeof key, "k%d", i);
        gc_job_init(&jobs[i], d.s, id, "usr_1", 10, i % 3 ? key : NULL, h1);
    }
    CHECK_INT((int)gc_run(d.s, jobs, N), 1);
    for (i = 0; i < N; i++) {
        CHECK_INT(jobs[i].rc, SPELL_OK);
        CHECK_INT(jobs[i].r.outcome, STORE_RESERVED);
        CHECK_INT(cast_exists(d.s, jobs[i].c.id), 1);
    }
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT((int)u.reserved_cents, 10 * N);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT((int)checked, N);
    db_close(&d);
}

/* One Idempotency-Key several times in one batch: the first makes the
 * cast and the record, the others write nothing (STORE_ECONFLICT) and
 * find the record afterwards: the replay, or 422 for another request. */
static void test_group_commit_same_key(void)
{
    struct db d;
    enum { N = 6 };
    struct gc_job jobs[N];
    struct store_idem im;
    int64_t checked = 0, bad = -1;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    gc_job_init(&jobs[0], d.s, "cst_s0", "usr_1", 10, "same", h1);
    gc_job_init(&jobs[1], d.s, "cst_s1", "usr_1", 10, "same", h1);
    gc_job_init(&jobs[2], d.s, "cst_s2", "usr_1", 10, "other", h1);
    gc_job_init(&jobs[3], d.s, "cst_s3", "usr_1", 10, "same", h2);
    gc_job_init(&jobs[4], d.s, "cst_s4", "usr_1", 10, "same", h1);
    gc_job_init(&jobs[5], d.s, "cst_s5", "usr_1", 10, "other", h1);
    CHECK_INT((int)gc_run(d.s, jobs, N), 1);
    CHECK_INT(jobs[0].rc, SPELL_OK);
    CHECK_INT(jobs[1].rc, STORE_ECONFLICT);
    CHECK_INT(jobs[2].rc, SPELL_OK);
    CHECK_INT(jobs[3].rc, STORE_ECONFLICT);
    CHECK_INT(jobs[4].rc, STORE_ECONFLICT);
    CHECK_INT(jobs[5].rc, STORE_ECONFLICT);
    CHECK_INT(cast_exists(d.s, "cst_s0"), 1);
    CHECK_INT(cast_exists(d.s, "cst_s2"), 1);
    CHECK_INT(cast_exists(d.s, "cst_s1") + cast_exists(d.s, "cst_s3") +
                  cast_exists(d.s, "cst_s4") + cast_exists(d.s, "cst_s5"), 0);
    CHECK_INT((int)ledger_count(d.path), 2);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "same", h1, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_REPLAY);
    CHECK_INT(im.status, 202);
    store_idem_clear(&im);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "same", h2, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_MISMATCH);
    store_idem_clear(&im);
    db_close(&d);
}

/* More callers than one batch holds: they are answered over several
 * batches, none lost. */
static void test_group_commit_bound(void)
{
    struct db d;
    enum { N = 64 + 16 };
    static struct gc_job jobs[N];
    pthread_t th[N];
    struct store_usage u;
    int64_t checked = 0, bad = -1;
    long before;
    char id[32];
    int i, ok = 0;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    before = store_sqlite_group_commits(d.s);
    store_sqlite_hold_writes(d.s, 1);
    for (i = 0; i < N; i++) {
        snprintf(id, sizeof id, "cst_b%d", i);
        gc_job_init(&jobs[i], d.s, id, "usr_1", 1, NULL, NULL);
        pthread_create(&th[i], NULL, gc_job_run, &jobs[i]);
    }
    wait_queued(d.s, N);
    store_sqlite_hold_writes(d.s, 0);
    for (i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += jobs[i].rc == SPELL_OK && jobs[i].r.outcome == STORE_RESERVED;
    }
    CHECK_INT(ok, N);
    CHECK(store_sqlite_group_commits(d.s) - before >= 2);
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT((int)u.reserved_cents, N);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT((int)checked, N);
    db_close(&d);
}

static const char *cast_status(struct store *s, const char *id, char *buf, size_t size)
{
    struct store_cast got;

    buf[0] = '\0';
    if (store_cast_get(s, id, NULL, &got) == SPELL_OK)
        snprintf(buf, size, "%s", got.status);
    store_cast_clear(&got);
    return buf;
}

/* Reservations and the lifecycle writes of other casts in one batch: each
 * sees the budget the earlier ones left (a settle or a release before a
 * reservation makes room for it), the totals are exact and the ledger
 * chain runs on through the batch. */
static void test_group_commit_mixed(void)
{
    struct db d;
    enum { N = 9 };
    struct gc_job jobs[N];
    struct store_reserve_result r;
    struct store_usage u;
    int64_t checked = 0, bad = -1;
    char buf[32];

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    make_spell(d.s, "thumb");
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", 1000, -1, T0), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_a", "usr_1", 300, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_b", "usr_1", 200, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_c", "usr_1", 100, T0, &r), SPELL_OK);
    CHECK_INT(store_cast_start(d.s, "cst_a", NULL, T0), SPELL_OK);
    /* spent 0, reserved 600 */
    gc_job_life(&jobs[0], d.s, GC_SETTLE, "cst_a", 250);        /* spent 250, reserved 300 */
    gc_job_init(&jobs[1], d.s, "cst_n1", "usr_1", 400, NULL, NULL);     /* reserved 700 */
    gc_job_life(&jobs[2], d.s, GC_RELEASE, "cst_b", 0);         /* reserved 500 */
    gc_job_init(&jobs[3], d.s, "cst_n2", "usr_1", 300, NULL, NULL);     /* 1050: over */
    gc_job_init(&jobs[4], d.s, "cst_n3", "usr_1", 250, NULL, NULL);     /* 1000: the limit */
    gc_job_life(&jobs[5], d.s, GC_START, "cst_c", 0);
    gc_job_life(&jobs[6], d.s, GC_PROGRESS, "cst_c", 50);
    gc_job_life(&jobs[7], d.s, GC_EVENT, "cst_c", 0);
    gc_job_life(&jobs[8], d.s, GC_SETTLE, "cst_c", 500);        /* capped at 100 */
    CHECK_INT((int)gc_run(d.s, jobs, N), 1);
    for (int i = 0; i < N; i++)
        CHECK_INT(jobs[i].rc, SPELL_OK);
    CHECK_INT((int)jobs[0].st.cost_cents, 250);
    CHECK_INT(jobs[1].r.outcome, STORE_RESERVED);
    CHECK_INT((int)jobs[2].st.reserved_cents, 500);
    CHECK_INT(jobs[3].r.outcome, STORE_BUDGET_EXCEEDED);
    CHECK_INT((int)jobs[3].r.remaining_cents, 250);
    CHECK_INT(jobs[4].r.outcome, STORE_RESERVED);
    CHECK_INT((int)jobs[4].r.remaining_cents, 0);
    CHECK_INT((int)jobs[8].st.cost_cents, 100);
    CHECK_INT((int)jobs[8].st.spent_cents, 350);
    CHECK_INT((int)jobs[8].st.event_seq, 5);
    CHECK_STR(cast_status(d.s, "cst_a", buf, sizeof buf), "succeeded");
    CHECK_STR(cast_status(d.s, "cst_b", buf, sizeof buf), "failed");
    CHECK_STR(cast_status(d.s, "cst_c", buf, sizeof buf), "succeeded");
    CHECK_INT(cast_exists(d.s, "cst_n2"), 0);
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT((int)u.spent_cents, 350);
    CHECK_INT((int)u.reserved_cents, 650);
    CHECK_INT((int)u.remaining_cents, 0);
    /* 3 reservations before; settle, reserve, release, reserve, settle. */
    CHECK_INT((int)ledger_count(d.path), 8);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT((int)checked, 8);
    CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM cast_events WHERE cast_id = 'cst_c'"), 5);
    CHECK_INT((int)raw_int(d.path, "SELECT MAX(seq) FROM cast_events WHERE cast_id = 'cst_c'"),
              5);
    db_close(&d);
}

/* Writes that fail inside a mixed batch take back only their own writes
 * and report their own error; the others of the batch commit. */
static void test_group_commit_mixed_failures(void)
{
    struct db d;
    enum { N = 8 };
    struct gc_job jobs[N];
    struct store_reserve_result r;
    struct store_usage u;
    struct store_idem im;
    int64_t checked = 0, bad = -1;
    char buf[32];

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    make_spell(d.s, "thumb");
    CHECK_INT(reserve(d.s, "cst_a", "usr_1", 300, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_b", "usr_1", 200, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_done", "usr_1", 100, T0, &r), SPELL_OK);
    CHECK_INT(store_cast_settle(d.s, "cst_done", 80, NULL, T0, NULL), SPELL_OK);
    /* spent 80, reserved 500 */
    gc_job_life(&jobs[0], d.s, GC_SETTLE, "cst_a", 120);
    gc_job_life(&jobs[1], d.s, GC_SETTLE, "cst_404", 10);       /* no such cast */
    gc_job_init(&jobs[2], d.s, "cst_n1", "usr_1", 50, "k1", h1);
    jobs[2].rp.fail = 1;                                        /* its answer fails */
    gc_job_life(&jobs[3], d.s, GC_SETTLE, "cst_done", 10);      /* closed already */
    gc_job_life(&jobs[4], d.s, GC_PROGRESS, "cst_done", 10);    /* closed already */
    gc_job_life(&jobs[5], d.s, GC_RELEASE, "cst_b", 0);
    gc_job_init(&jobs[6], d.s, "cst_n2", "usr_404", 10, NULL, NULL);    /* no such user */
    gc_job_init(&jobs[7], d.s, "cst_n3", "usr_1", 70, "k3", h1);
    CHECK_INT((int)gc_run(d.s, jobs, N), 1);
    CHECK_INT(jobs[0].rc, SPELL_OK);
    CHECK_INT(jobs[1].rc, SPELL_ENOTFOUND);
    CHECK_INT(jobs[2].rc, SPELL_EABORT);
    CHECK_INT(jobs[3].rc, STORE_ECONFLICT);
    CHECK_INT(jobs[4].rc, STORE_ECONFLICT);
    CHECK_INT(jobs[5].rc, SPELL_OK);
    CHECK_INT(jobs[6].rc, SPELL_ENOTFOUND);
    CHECK_INT(jobs[7].rc, SPELL_OK);
    CHECK_INT(jobs[7].r.outcome, STORE_RESERVED);
    CHECK_INT((int)jobs[1].st.ledger_seq, 0);
    CHECK_INT((int)jobs[3].st.ledger_seq, 0);
    CHECK_STR(cast_status(d.s, "cst_a", buf, sizeof buf), "succeeded");
    CHECK_STR(cast_status(d.s, "cst_b", buf, sizeof buf), "failed");
    CHECK_INT(cast_exists(d.s, "cst_n1"), 0);
    CHECK_INT(cast_exists(d.s, "cst_n2"), 0);
    CHECK_INT(cast_exists(d.s, "cst_n3"), 1);
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k1", h1, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_NEW);
    store_idem_clear(&im);
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT((int)u.spent_cents, 200);
    CHECK_INT((int)u.reserved_cents, 70);
    /* The closed cast's events did not move: queued, succeeded. */
    CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM cast_events WHERE cast_id = 'cst_done'"),
              2);
    /* 4 before; settle, release, reserve. */
    CHECK_INT((int)ledger_count(d.path), 7);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT((int)checked, 7);
    db_close(&d);
}

/* A mixed batch whose COMMIT fails: every write of it reports the error
 * and none of it is in the database; the same writes go through after. */
static void test_group_commit_mixed_fails(void)
{
    struct db d;
    enum { N = 7 };
    struct gc_job jobs[N];
    struct store_reserve_result r;
    struct store_usage u;
    int64_t checked = 0, bad = -1;
    char buf[32];
    int round, i;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    make_spell(d.s, "thumb");
    CHECK_INT(reserve(d.s, "cst_a", "usr_1", 300, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_b", "usr_1", 200, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_c", "usr_1", 100, T0, &r), SPELL_OK);
    for (round = 0; round < 2; round++) {
        gc_job_life(&jobs[0], d.s, GC_START, "cst_a", 0);
        gc_job_life(&jobs[1], d.s, GC_PROGRESS, "cst_a", 40);
        gc_job_init(&jobs[2], d.s, "cst_n1", "usr_1", 60, "k1", h1);
        gc_job_life(&jobs[3], d.s, GC_SETTLE, "cst_a", 250);
        gc_job_life(&jobs[4], d.s, GC_RELEASE, "cst_b", 0);
        gc_job_life(&jobs[5], d.s, GC_EVENT, "cst_c", 0);
        gc_job_init(&jobs[6], d.s, "cst_n2", "usr_1", 40, NULL, NULL);
        if (round == 0)
            store_sqlite_fail_commits(d.s, 1);
        CHECK_INT((int)gc_run(d.s, jobs, N), 1);
        store_sqlite_fail_commits(d.s, 0);
        for (i = 0; i < N; i++)
            CHECK_INT(jobs[i].rc, round == 0 ? SPELL_EIO : SPELL_OK);
        if (round == 0) {
            CHECK_INT((int)jobs[3].st.ledger_seq, 0);
            CHECK_INT((int)jobs[3].st.cost_cents, 0);
            CHECK_INT(jobs[2].r.outcome, 0);
            CHECK_STR(cast_status(d.s, "cst_a", buf, sizeof buf), "queued");
            CHECK_STR(cast_status(d.s, "cst_b", buf, sizeof buf), "queued");
            CHECK_INT(cast_exists(d.s, "cst_n1") + cast_exists(d.s, "cst_n2"), 0);
            CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM cast_events"), 3);
            CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM idempotency"), 0);
            CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
            CHECK_INT((int)u.spent_cents, 0);
            CHECK_INT((int)u.reserved_cents, 600);
            CHECK_INT((int)ledger_count(d.path), 3);
        }
    }
    CHECK_STR(cast_status(d.s, "cst_a", buf, sizeof buf), "succeeded");
    CHECK_STR(cast_status(d.s, "cst_b", buf, sizeof buf), "failed");
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT((int)u.spent_cents, 250);
    CHECK_INT((int)u.reserved_cents, 100 + 60 + 40);
    CHECK_INT((int)ledger_count(d.path), 7);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT((int)checked, 7);
    db_close(&d);
}

/* Failures of several kinds in the middle of one held batch, every write
 * run by the batch's leader (the first job's thread): each failure takes
 * back only its own writes, the writes after it see what the ones before
 * it left, and the event sequence has no gap where a write failed. */
static void test_group_commit_failures_in_batch(void)
{
    struct db d;
    enum { N = 11 };
    struct gc_job jobs[N];
    struct store_reserve_result r;
    struct store_usage u;
    struct store_idem im;
    struct store_user got;
    int64_t checked = 0, bad = -1;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", 1000, -1, T0), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_a", "usr_1", 100, T0, &r), SPELL_OK);
    /* reserved 100 of 1000 */
    gc_job_init(&jobs[0], d.s, "cst_n0", "usr_1", 300, "k0", h1);       /* 400 */
    gc_job_life(&jobs[1], d.s, GC_EVENT, "cst_n0", 0);                  /* seq 2 */
    gc_job_life(&jobs[2], d.s, GC_EVENT, "cst_404", 0);                 /* no such cast */
    gc_job_life(&jobs[3], d.s, GC_EVENT, "cst_n0", 0);                  /* seq 3 */
    gc_job_init(&jobs[4], d.s, "cst_n1", "usr_1", 700, "k1", h1);       /* 1100: over */
    gc_job_life(&jobs[5], d.s, GC_USER, "", 0);
    snprintf(jobs[5].c.user_id, sizeof jobs[5].c.user_id, "usr_2");
    snprintf(jobs[5].login, sizeof jobs[5].login, "bob");
    gc_job_life(&jobs[6], d.s, GC_USER, "", 0);                         /* login taken */
    snprintf(jobs[6].c.user_id, sizeof jobs[6].c.user_id, "usr_3");
    snprintf(jobs[6].login, sizeof jobs[6].login, "bob");
    gc_job_init(&jobs[7], d.s, "cst_n2", "usr_2", 50, "k2", h1);        /* the new user's */
    gc_job_init(&jobs[8], d.s, "cst_n3", "usr_1", 100, "k3", h1);
    jobs[8].rp.fail = 1;                                                /* its answer fails */
    gc_job_life(&jobs[9], d.s, GC_LEDGER, "", -25);
    snprintf(jobs[9].c.user_id, sizeof jobs[9].c.user_id, "usr_1");
    gc_job_init(&jobs[10], d.s, "cst_n4", "usr_1", 600, NULL, NULL);    /* 1000: the limit */
    CHECK_INT((int)gc_run(d.s, jobs, N), 1);

    CHECK_INT(jobs[0].rc, SPELL_OK);
    CHECK_INT(jobs[0].r.outcome, STORE_RESERVED);
    CHECK_INT((int)jobs[0].r.remaining_cents, 600);
    CHECK_INT(jobs[1].rc, SPELL_OK);
    CHECK_INT((int)jobs[1].seq, 2);
    CHECK_INT(jobs[2].rc, SPELL_ENOTFOUND);
    CHECK_INT((int)jobs[2].seq, 0);
    CHECK_INT(jobs[3].rc, SPELL_OK);
    CHECK_INT((int)jobs[3].seq, 3);
    CHECK_INT(jobs[4].rc, SPELL_OK);
    CHECK_INT(jobs[4].r.outcome, STORE_BUDGET_EXCEEDED);
    CHECK_INT((int)jobs[4].r.remaining_cents, 600);
    CHECK_INT(jobs[4].rp.calls, 0);
    CHECK_INT(jobs[5].rc, SPELL_OK);
    CHECK_INT(jobs[6].rc, STORE_ECONFLICT);
    CHECK_INT(jobs[7].rc, SPELL_OK);
    CHECK_INT(jobs[7].r.outcome, STORE_RESERVED);
    CHECK_INT(jobs[8].rc, SPELL_EABORT);
    CHECK_INT(jobs[8].rp.calls, 1);
    CHECK_INT(jobs[8].r.outcome, 0);
    CHECK_INT(jobs[9].rc, SPELL_OK);
    CHECK_INT((int)jobs[9].seq, 4);     /* cst_a, cst_n0, cst_n2, then this */
    CHECK_INT(jobs[10].rc, SPELL_OK);
    CHECK_INT(jobs[10].r.outcome, STORE_RESERVED);
    CHECK_INT((int)jobs[10].r.remaining_cents, 0);
    CHECK_INT((int)jobs[10].r.ledger_seq, 5);

    /* One thread ran the batch: the answers of reservations made by other
     * threads were written on the first job's thread. */
    CHECK(pthread_equal(jobs[0].rp.thread, jobs[0].self));
    CHECK(pthread_equal(jobs[7].rp.thread, jobs[0].self));
    CHECK(pthread_equal(jobs[8].rp.thread, jobs[0].self));
    CHECK(!pthread_equal(jobs[7].self, jobs[0].self));

    CHECK_INT(cast_exists(d.s, "cst_n0"), 1);
    CHECK_INT(cast_exists(d.s, "cst_n1"), 0);
    CHECK_INT(cast_exists(d.s, "cst_n2"), 1);
    CHECK_INT(cast_exists(d.s, "cst_n3"), 0);
    CHECK_INT(cast_exists(d.s, "cst_n4"), 1);
    CHECK_INT(store_user_get(d.s, "usr_2", &got), SPELL_OK);
    CHECK_STR(got.login, "bob");
    CHECK_INT(store_user_get(d.s, "usr_3", &got), SPELL_ENOTFOUND);
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT((int)u.reserved_cents, 1000);
    CHECK_INT((int)u.spent_cents, 0);
    CHECK_INT(store_usage_get(d.s, "usr_2", "2026-11", &u), SPELL_OK);
    CHECK_INT((int)u.reserved_cents, 50);
    CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM cast_events WHERE cast_id = 'cst_n0'"),
              3);
    CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM cast_events WHERE cast_id = 'cst_n3'"),
              0);
    CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM idempotency"), 2);     /* k0, k2 */
    CHECK_INT(store_idem_lookup(d.s, "usr_1", "k3", h1, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_NEW);
    store_idem_clear(&im);
    CHECK_INT(store_idem_lookup(d.s, "usr_2", "k2", h1, T0, &im), SPELL_OK);
    CHECK_INT(im.state, STORE_IDEM_REPLAY);
    CHECK_STR(im.body, "{\"remaining\":4950}");
    store_idem_clear(&im);
    CHECK_INT((int)ledger_count(d.path), 5);
    CHECK_INT((int)raw_int(d.path, "SELECT SUM(amount_cents) FROM ledger"),
              100 + 300 + 50 - 25 + 600);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT((int)checked, 5);
    db_close(&d);
}

/* The widest writes of one statement bind every parameter they name: the
 * spell upsert (13, the longest format) and the user (7) come back field
 * for field, and a key's 'z' parameters bind NULL for 0. */
static void test_widest_writes(void)
{
    struct db d;
    struct store_spell sp, got;
    struct store_user u, gu;
    struct store_key k, gk;

    CHECK_INT(db_open(&d), SPELL_OK);
    memset(&u, 0, sizeof u);
    strcpy(u.id, "usr_w");
    strcpy(u.login, "wide");
    strcpy(u.name, "W\xc3\xa9 Wide");
    strcpy(u.email, "w@example.org");
    strcpy(u.avatar_url, "https://example.org/w.png");
    strcpy(u.role, "maker");
    u.created_at = T0 + 7;
    CHECK_INT(store_user_create(d.s, &u), SPELL_OK);
    CHECK_INT(store_user_get(d.s, "usr_w", &gu), SPELL_OK);
    CHECK_STR(gu.id, u.id);
    CHECK_STR(gu.login, u.login);
    CHECK_STR(gu.name, u.name);
    CHECK_STR(gu.email, u.email);
    CHECK_STR(gu.avatar_url, u.avatar_url);
    CHECK_STR(gu.role, u.role);
    CHECK_INT(gu.created_at, T0 + 7);
    CHECK_INT(store_user_create(d.s, &u), STORE_ECONFLICT);

    memset(&sp, 0, sizeof sp);
    strcpy(sp.key, "wide");
    strcpy(sp.name, "Wide");
    strcpy(sp.summary, "Binds every parameter.");
    strcpy(sp.version, "3.1.4");
    strcpy(sp.status, "draft");
    strcpy(sp.execution_mode, "clone");
    strcpy(sp.pricing_model, "metered");
    sp.flat_cents = 11;
    sp.base_cents = 13;
    sp.per_kb_cents = 17;
    sp.inputs_schema = (char *)"{\"type\":\"object\",\"x\":1}";
    sp.execution = (char *)"{\"command\":[\"w.sh\"]}";
    CHECK_INT(store_spell_upsert(d.s, &sp, T0 + 9), SPELL_OK);
    CHECK_INT(store_spell_get(d.s, "wide", &got), SPELL_OK);
    CHECK_STR(got.key, sp.key);
    CHECK_STR(got.name, sp.name);
    CHECK_STR(got.summary, sp.summary);
    CHECK_STR(got.version, sp.version);
    CHECK_STR(got.status, sp.status);
    CHECK_STR(got.execution_mode, sp.execution_mode);
    CHECK_STR(got.pricing_model, sp.pricing_model);
    CHECK_INT(got.flat_cents, 11);
    CHECK_INT(got.base_cents, 13);
    CHECK_INT(got.per_kb_cents, 17);
    CHECK_STR(got.inputs_schema, sp.inputs_schema);
    CHECK_STR(got.execution, sp.execution);
    store_spell_clear(&got);
    CHECK_INT(raw_int(d.path, "SELECT created_at FROM spells WHERE key = 'wide'"), T0 + 9);
    CHECK_INT(raw_int(d.path, "SELECT updated_at FROM spells WHERE key = 'wide'"), T0 + 9);

    memset(&k, 0, sizeof k);
    strcpy(k.id, "key_w");
    strcpy(k.user_id, "usr_w");
    strcpy(k.prefix, "sk_wide1");
    strcpy(k.name, "laptop");
    strcpy(k.hash, "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA");
    k.created_at = T0;
    k.revoked_at = T0 + 5;
    CHECK_INT(store_key_create(d.s, &k), SPELL_OK);
    CHECK_INT(raw_int(d.path, "SELECT last_used_at IS NULL FROM api_keys WHERE id = 'key_w'"),
              1);
    CHECK_INT(raw_int(d.path, "SELECT revoked_at FROM api_keys WHERE id = 'key_w'"), T0 + 5);
    CHECK_INT(store_key_by_prefix(d.s, "sk_wide1", &gk), SPELL_OK);
    CHECK_STR(gk.name, "laptop");
    CHECK_STR(gk.hash, k.hash);
    CHECK_INT(gk.last_used_at, 0);
    db_close(&d);
}

/* ---- Writers and readers at once --------------------------------------- */

#define LIFE_WRITERS 256
#define LIFE_READERS 8
#define LIFE_READS 300

struct life {
    struct store *s;
    int index;
    int rc;                         /* the first failure, or SPELL_OK */
    int reads;                      /* reads done */
};

/* One cast's life: reserve, start, two progress, a log line, then a
 * settle (even casts) or a failure (odd ones). */
static void *life_writer(void *arg)
{
    struct life *l = arg;
    struct store_reserve_result r;
    char id[32];
    int rc;

    snprintf(id, sizeof id, "cst_l%03d", l->index);
    rc = reserve(l->s, id, "usr_1", 10, T0, &r);
    if (rc == SPELL_OK && r.outcome != STORE_RESERVED)
        rc = SPELL_EIO;
    if (rc == SPELL_OK)
        rc = store_cast_start(l->s, id, NULL, T0 + 1);
    if (rc == SPELL_OK)
        rc = store_cast_progress(l->s, id, 30, "a", T0 + 2);
    if (rc == SPELL_OK)
        rc = store_cast_progress(l->s, id, 60, "b", T0 + 3);
    if (rc == SPELL_OK)
        rc = store_event_append(l->s, id, "cast.log", "{\"line\":\"x\"}", 12, T0 + 4, NULL);
    if (rc == SPELL_OK && l->index % 2 == 0)
        rc = store_cast_settle(l->s, id, 7, NULL, T0 + 5, NULL);
    else if (rc == SPELL_OK)
        rc = store_cast_release(l->s, id, "failed", "spell_failed", "", T0 + 5, NULL);
    l->rc = rc;
    return NULL;
}

static int count_event(void *ud, const struct store_event *e)
{
    (void)e;
    (*(int *)ud)++;
    return 0;
}

/* Reads the casts of the writers while they write: every read answers
 * (a cast not reserved yet is not found). */
static void *life_reader(void *arg)
{
    struct life *l = arg;
    struct store_cast c;
    struct store_usage u;
    char id[32];
    int i, rc, n;

    l->rc = SPELL_OK;
    for (i = 0; i < LIFE_READS; i++) {
        snprintf(id, sizeof id, "cst_l%03d", (i * 7 + l->index) % LIFE_WRITERS);
        switch (i % 3) {
        case 0:
            rc = store_cast_get(l->s, id, NULL, &c);
            store_cast_clear(&c);
            break;
        case 1:
            n = 0;
            rc = store_events_after(l->s, id, 0, 0, count_event, &n);
            break;
        default:
            rc = store_usage_get(l->s, "usr_1", "2026-11", &u);
            break;
        }
        if (rc != SPELL_OK && rc != SPELL_ENOTFOUND && l->rc == SPELL_OK)
            l->rc = rc;
        l->reads++;
    }
    return NULL;
}

/* 256 threads run casts through their lives while readers read: every
 * write and every read completes, and the money and the ledger add up. */
static void test_lifecycle_writers_and_readers(void)
{
    struct db d;
    static struct life w[LIFE_WRITERS], rd[LIFE_READERS];
    pthread_t tw[LIFE_WRITERS], tr[LIFE_READERS];
    struct store_usage u;
    int64_t checked = 0, bad = -1;
    int i, ok = 0, reads = 0, read_ok = 0;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    make_spell(d.s, "thumb");
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", 100000, -1, T0), SPELL_OK);
    for (i = 0; i < LIFE_READERS; i++) {
        rd[i].s = d.s;
        rd[i].index = i;
        CHECK_INT(pthread_create(&tr[i], NULL, life_reader, &rd[i]), 0);
    }
    for (i = 0; i < LIFE_WRITERS; i++) {
        w[i].s = d.s;
        w[i].index = i;
        CHECK_INT(pthread_create(&tw[i], NULL, life_writer, &w[i]), 0);
    }
    for (i = 0; i < LIFE_WRITERS; i++) {
        pthread_join(tw[i], NULL);
        ok += w[i].rc == SPELL_OK;
    }
    for (i = 0; i < LIFE_READERS; i++) {
        pthread_join(tr[i], NULL);
        reads += rd[i].reads;
        read_ok += rd[i].rc == SPELL_OK;
    }
    CHECK_INT(ok, LIFE_WRITERS);
    CHECK_INT(reads, LIFE_READERS * LIFE_READS);
    CHECK_INT(read_ok, LIFE_READERS);
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT((int)u.spent_cents, 7 * LIFE_WRITERS / 2);
    CHECK_INT((int)u.reserved_cents, 0);
    CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM cast_events"), 6 * LIFE_WRITERS);
    CHECK_INT((int)raw_int(d.path, "SELECT COUNT(*) FROM casts WHERE last_seq = 6"), LIFE_WRITERS);
    CHECK_INT((int)ledger_count(d.path), 2 * LIFE_WRITERS);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT((int)checked, 2 * LIFE_WRITERS);
    db_close(&d);
}

/* ---- Concurrency ----------------------------------------------------- */

#define N_THREADS 64
#define PER_THREAD 3
#define EST 37

struct race {
    struct store *s;
    int index;
    int ok;
    int exceeded;
    int errors;
    char ids[PER_THREAD][STORE_ID_SIZE];
};

static void *race_reserve(void *arg)
{
    struct race *rc = arg;
    struct store_reserve_result r;
    int i;

    for (i = 0; i < PER_THREAD; i++) {
        char id[STORE_ID_SIZE];
        snprintf(id, sizeof id, "cst_%02d_%d", rc->index, i);
        if (reserve(rc->s, id, "usr_1", EST, T0 + rc->index, &r) != SPELL_OK) {
            rc->errors++;
        } else if (r.outcome == STORE_RESERVED) {
            strcpy(rc->ids[rc->ok++], id);
        } else {
            rc->exceeded++;
        }
    }
    return NULL;
}

static void *race_close(void *arg)
{
    struct race *rc = arg;
    int i;

    for (i = 0; i < rc->ok; i++) {
        int r = (i + rc->index) % 2
                    ? store_cast_settle(rc->s, rc->ids[i], EST - 7, NULL, T0 + 1000, NULL)
                    : store_cast_release(rc->s, rc->ids[i], "failed", "E", "", T0 + 1000, NULL);
        if (r != SPELL_OK)
            rc->errors++;
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_concurrent_reservations(void)
{
    struct db d;
    struct race races[N_THREADS];
    pthread_t th[N_THREADS];
    struct store_usage u;
    int i, ok = 0, exceeded = 0, errors = 0, settled = 0;
    int64_t checked = 0, bad = -1;
    double t;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    memset(races, 0, sizeof races);
    t = now_s();
    for (i = 0; i < N_THREADS; i++) {
        races[i].s = d.s;
        races[i].index = i;
        CHECK_INT(pthread_create(&th[i], NULL, race_reserve, &races[i]), 0);
    }
    for (i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    t = now_s() - t;
    for (i = 0; i < N_THREADS; i++) {
        ok += races[i].ok;
        exceeded += races[i].exceeded;
        errors += races[i].errors;
    }
    printf("# %d reservations by %d threads in %.3f s (%.0f per second)\n",
           N_THREADS * PER_THREAD, N_THREADS, t, t > 0 ? N_THREADS * PER_THREAD / t : 0.0);
    CHECK_INT(errors, 0);
    CHECK_INT(ok, 5000 / EST);        /* 135 */
    CHECK_INT(exceeded, N_THREADS * PER_THREAD - 5000 / EST);
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT(u.reserved_cents, (5000 / EST) * EST);
    CHECK(u.reserved_cents <= 5000);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM casts"), 5000 / EST);

    for (i = 0; i < N_THREADS; i++)
        CHECK_INT(pthread_create(&th[i], NULL, race_close, &races[i]), 0);
    for (i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    errors = 0;
    for (i = 0; i < N_THREADS; i++) {
        int j;
        errors += races[i].errors;
        for (j = 0; j < races[i].ok; j++)
            settled += (j + races[i].index) % 2;
    }
    CHECK_INT(errors, 0);
    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT(u.reserved_cents, 0);
    CHECK_INT(u.calls, settled);
    CHECK_INT(u.spent_cents, (int64_t)settled * (EST - 7));
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT(checked, 2 * (5000 / EST));
    CHECK_INT(bad, 0);
    db_close(&d);
}

#define EV_THREADS 16
#define EV_EACH 40

struct ev_race {
    struct store *s;
    int errors;
};

static void *race_events(void *arg)
{
    struct ev_race *er = arg;
    int i;

    for (i = 0; i < EV_EACH; i++) {
        if (store_event_append(er->s, "cst_1", "cast.log", "{\"log\":\"line\"}", 14, T0, NULL) !=
            SPELL_OK)
            er->errors++;
    }
    return NULL;
}

struct gap_check {
    int64_t expect;
    int gaps;
};

static int gap_fn(void *ud, const struct store_event *e)
{
    struct gap_check *g = ud;

    if (e->seq != g->expect)
        g->gaps++;
    g->expect = e->seq + 1;
    return 0;
}

static void test_concurrent_events_gapless(void)
{
    struct db d;
    struct store_reserve_result r;
    struct ev_race er[EV_THREADS];
    pthread_t th[EV_THREADS];
    struct gap_check g = {1, 0};
    struct store_cast c;
    int i, errors = 0;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(reserve(d.s, "cst_1", "usr_1", 1, T0, &r), SPELL_OK);
    for (i = 0; i < EV_THREADS; i++) {
        er[i].s = d.s;
        er[i].errors = 0;
        CHECK_INT(pthread_create(&th[i], NULL, race_events, &er[i]), 0);
    }
    for (i = 0; i < EV_THREADS; i++) {
        pthread_join(th[i], NULL);
        errors += er[i].errors;
    }
    CHECK_INT(errors, 0);
    CHECK_INT(store_events_after(d.s, "cst_1", 0, 0, gap_fn, &g), SPELL_OK);
    CHECK_INT(g.gaps, 0);
    CHECK_INT(g.expect, 1 + 1 + EV_THREADS * EV_EACH);
    CHECK_INT(store_cast_get(d.s, "cst_1", NULL, &c), SPELL_OK);
    CHECK_INT(c.last_seq, 1 + EV_THREADS * EV_EACH);
    store_cast_clear(&c);
    db_close(&d);
}

/* Many threads each make a run of reservations and event appends, some
 * over the budget and some for casts that were never made: every caller
 * gets its own right answer, and the data is exact to the cent. */
#define MANY_THREADS 32
#define MANY_ROUNDS 100             /* a reservation and an event each */
#define MANY_EST 3
#define MANY_FIT 3000               /* reservations the budget holds */

struct many {
    struct store *s;
    int index;
    int reserved;
    int exceeded;
    int exceeded_even;              /* over budget in an even round */
    int own_events;                 /* events on its own casts */
    int own_missing;                /* events refused: the cast was never made */
    int errors;                     /* any answer other than the right one */
    int64_t seqs[MANY_ROUNDS / 2];  /* the seqs it got on the shared cast */
};

static void *many_writer(void *arg)
{
    struct many *m = arg;
    struct store_reserve_result r;
    char id[STORE_ID_SIZE];
    int64_t seq;
    int i, rc, made;

    for (i = 0; i < MANY_ROUNDS; i++) {
        snprintf(id, sizeof id, "cst_m%02d_%03d", m->index, i);
        rc = reserve(m->s, id, "usr_1", MANY_EST, T0, &r);
        made = rc == SPELL_OK && r.outcome == STORE_RESERVED;
        if (made) {
            m->reserved++;
        } else if (rc == SPELL_OK && r.outcome == STORE_BUDGET_EXCEEDED) {
            m->exceeded++;
            m->exceeded_even += i % 2 == 0;
        } else {
            m->errors++;
        }
        seq = -1;
        if (i % 2 == 0) {
            /* Its own cast: the event after cast.queued, or none. */
            rc = store_event_append(m->s, id, "cast.log", "{\"n\":1}", 7, T0 + 1, &seq);
            if (made && rc == SPELL_OK && seq == 2)
                m->own_events++;
            else if (!made && rc == SPELL_ENOTFOUND && seq == 0)
                m->own_missing++;
            else
                m->errors++;
        } else {
            rc = store_event_append(m->s, "cst_shared", "cast.log", "{\"n\":2}", 7, T0 + 1,
                                    &seq);
            if (rc == SPELL_OK)
                m->seqs[i / 2] = seq;
            else
                m->errors++;
        }
    }
    return NULL;
}

static void test_group_commit_many_threads(void)
{
    struct db d;
    static struct many ms[MANY_THREADS];
    static char seen[MANY_THREADS * MANY_ROUNDS / 2 + 2];
    pthread_t th[MANY_THREADS];
    struct store_reserve_result r;
    struct store_usage u;
    struct gap_check g = {1, 0};
    struct store_cast c;
    int64_t checked = 0, bad = -1, s;
    int i, j, reserved = 0, exceeded = 0, exceeded_even = 0, own = 0, missing = 0;
    int errors = 0, dup = 0, out_of_range = 0;
    const int shared = MANY_THREADS * MANY_ROUNDS / 2;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", MANY_FIT * MANY_EST, -1, T0), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_shared", "usr_1", 0, T0, &r), SPELL_OK);
    memset(ms, 0, sizeof ms);
    memset(seen, 0, sizeof seen);
    for (i = 0; i < MANY_THREADS; i++) {
        ms[i].s = d.s;
        ms[i].index = i;
        CHECK_INT(pthread_create(&th[i], NULL, many_writer, &ms[i]), 0);
    }
    for (i = 0; i < MANY_THREADS; i++)
        pthread_join(th[i], NULL);
    for (i = 0; i < MANY_THREADS; i++) {
        reserved += ms[i].reserved;
        exceeded += ms[i].exceeded;
        exceeded_even += ms[i].exceeded_even;
        own += ms[i].own_events;
        missing += ms[i].own_missing;
        errors += ms[i].errors;
        for (j = 0; j < MANY_ROUNDS / 2; j++) {
            s = ms[i].seqs[j];
            if (s < 2 || s > shared + 1)
                out_of_range++;
            else if (seen[s]++)
                dup++;
        }
    }
    CHECK_INT(errors, 0);
    CHECK_INT(reserved, MANY_FIT);
    CHECK_INT(exceeded, MANY_THREADS * MANY_ROUNDS - MANY_FIT);
    CHECK_INT(missing, exceeded_even);
    CHECK_INT(own + missing, MANY_THREADS * MANY_ROUNDS / 2);
    /* The shared cast's seqs: 2 .. shared + 1, each handed out once. */
    CHECK_INT(out_of_range, 0);
    CHECK_INT(dup, 0);
    CHECK_INT(store_events_after(d.s, "cst_shared", 0, 0, gap_fn, &g), SPELL_OK);
    CHECK_INT(g.gaps, 0);
    CHECK_INT(g.expect, 1 + 1 + shared);
    CHECK_INT(store_cast_get(d.s, "cst_shared", NULL, &c), SPELL_OK);
    CHECK_INT(c.last_seq, 1 + shared);
    store_cast_clear(&c);

    CHECK_INT(store_usage_get(d.s, "usr_1", "2026-11", &u), SPELL_OK);
    CHECK_INT(u.reserved_cents, (int64_t)MANY_FIT * MANY_EST);
    CHECK_INT(u.remaining_cents, 0);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM casts"), MANY_FIT + 1);
    CHECK_INT(raw_int(d.path, "SELECT COALESCE(SUM(estimated_cost_cents), 0) FROM casts"),
              (int64_t)MANY_FIT * MANY_EST);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM cast_events"), MANY_FIT + 1 + own + shared);
    CHECK_INT(ledger_count(d.path), MANY_FIT + 1);
    CHECK_INT(raw_int(d.path, "SELECT SUM(amount_cents) FROM ledger"),
              (int64_t)MANY_FIT * MANY_EST);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT(checked, MANY_FIT + 1);
    CHECK_INT(bad, 0);
    db_close(&d);
}

/* An in-memory database writes on the pool's one connection, which the
 * readers want too: writers and readers at once all get through. */
#define MEM_WRITERS 8
#define MEM_EACH 40

struct mem_race {
    struct store *s;
    int index;
    int reserved;
    int errors;
};

static void *mem_writer(void *arg)
{
    struct mem_race *m = arg;
    struct store_reserve_result r;
    struct store_usage u;
    char id[STORE_ID_SIZE];
    int i;

    for (i = 0; i < MEM_EACH; i++) {
        snprintf(id, sizeof id, "cst_%d_%d", m->index, i);
        if (reserve(m->s, id, "usr_m", 2, T0, &r) == SPELL_OK && r.outcome == STORE_RESERVED)
            m->reserved++;
        else
            m->errors++;
        if (store_usage_get(m->s, "usr_m", "2026-11", &u) != SPELL_OK ||
            u.reserved_cents < 2 * (int64_t)m->reserved)
            m->errors++;
    }
    return NULL;
}

static void test_memory_database_writers(void)
{
    struct store *s = NULL;
    struct mem_race ms[MEM_WRITERS];
    pthread_t th[MEM_WRITERS];
    struct store_usage u;
    int64_t checked = 0, bad = -1;
    int i, reserved = 0, errors = 0;

    CHECK_INT(store_open(":memory:", &s), SPELL_OK);
    make_user(s, "usr_m", "mem");
    memset(ms, 0, sizeof ms);
    for (i = 0; i < MEM_WRITERS; i++) {
        ms[i].s = s;
        ms[i].index = i;
        CHECK_INT(pthread_create(&th[i], NULL, mem_writer, &ms[i]), 0);
    }
    for (i = 0; i < MEM_WRITERS; i++) {
        pthread_join(th[i], NULL);
        reserved += ms[i].reserved;
        errors += ms[i].errors;
    }
    CHECK_INT(errors, 0);
    CHECK_INT(reserved, MEM_WRITERS * MEM_EACH);
    CHECK_INT(store_usage_get(s, "usr_m", "2026-11", &u), SPELL_OK);
    CHECK_INT(u.reserved_cents, 2 * MEM_WRITERS * MEM_EACH);
    CHECK_INT(store_ledger_verify(s, &checked, &bad), SPELL_OK);
    CHECK_INT(checked, MEM_WRITERS * MEM_EACH);
    store_close(s);
}

static void test_event_append_input(void)
{
    struct db d;
    struct store_reserve_result r;
    int64_t seq = -1;
    char *big;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(reserve(d.s, "cst_1", "usr_1", 1, T0, &r), SPELL_OK);
    CHECK_INT(store_event_append(d.s, "cst_1", "cast.log", "{\"a\":1}", 7, T0, &seq), SPELL_OK);
    CHECK_INT(seq, 2);
    CHECK_INT(store_event_append(d.s, "cst_9", "cast.log", "{}", 2, T0, &seq), SPELL_ENOTFOUND);
    CHECK_INT(seq, 0);
    CHECK_INT(store_event_append(d.s, "cst_1", "cast.log", "{\"a\":", 5, T0, &seq), SPELL_EINVAL);
    CHECK_INT(store_event_append(d.s, "cst_1", "cast.log", "{}\0{}", 5, T0, &seq), SPELL_EINVAL);
    CHECK_INT(store_event_append(d.s, "cst_1", "cast.log", "\"\xed\xa0\x80\"", 5, T0, &seq),
              SPELL_EINVAL);     /* a UTF-16 surrogate written as UTF-8 */
    CHECK_INT(store_event_append(d.s, "cst_1", "", "{}", 2, T0, &seq), SPELL_EINVAL);
    CHECK_INT(store_event_append(d.s, "cst_1", "cast.log", NULL, 0, T0, &seq), SPELL_EINVAL);
    big = malloc(STORE_EVENT_DATA_MAX + 1);
    if (big) {
        memset(big, ' ', STORE_EVENT_DATA_MAX + 1);
        big[0] = '0';
        CHECK_INT(store_event_append(d.s, "cst_1", "cast.log", big, STORE_EVENT_DATA_MAX + 1, T0,
                                     &seq), SPELL_ETOOBIG);
        CHECK_INT(store_event_append(d.s, "cst_1", "cast.log", big, STORE_EVENT_DATA_MAX, T0,
                                     &seq), SPELL_OK);
        CHECK_INT(seq, 3);
        free(big);
    }
    CHECK_INT(store_events_after(d.s, "cst_1", -1, 0, (int (*)(void *, const struct store_event *))
                                 gap_fn, NULL), SPELL_EINVAL);
    db_close(&d);
}

/* ---- Ledger ---------------------------------------------------------- */

static void fill_ledger(struct db *d)
{
    struct store_reserve_result r;
    int64_t seq = 0;

    make_user(d->s, "usr_1", "ada");
    CHECK_INT(reserve(d->s, "cst_1", "usr_1", 100, T0, &r), SPELL_OK);          /* 1 */
    CHECK_INT(store_cast_settle(d->s, "cst_1", 80, NULL, T0 + 1, NULL), SPELL_OK);  /* 2 */
    CHECK_INT(reserve(d->s, "cst_2", "usr_1", 50, T0 + 2, &r), SPELL_OK);        /* 3 */
    CHECK_INT(store_cast_release(d->s, "cst_2", "failed", "E", "", T0 + 3, NULL), SPELL_OK);
    CHECK_INT(store_ledger_append(d->s, "usr_1", NULL, "invoice", 80, T0 + 4, &seq), SPELL_OK);
    CHECK_INT(seq, 5);
    CHECK_INT(store_ledger_append(d->s, NULL, NULL, "adjust", -5, T0 + 5, &seq), SPELL_OK);
    CHECK_INT(seq, 6);
}

static int ledger_collect(void *ud, const struct store_ledger_entry *e)
{
    struct store_ledger_entry *all = ud;

    if (e->seq >= 1 && e->seq <= 8)
        all[e->seq - 1] = *e;
    return 0;
}

static void test_ledger_chain(void)
{
    struct db d;
    struct store_ledger_entry all[8];
    char h[STORE_HASH_HEX_SIZE];
    int64_t checked = 0, bad = -1, seq;

    CHECK_INT(db_open(&d), SPELL_OK);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);   /* empty */
    CHECK_INT(checked, 0);
    fill_ledger(&d);
    memset(all, 0, sizeof all);
    CHECK_INT(store_ledger_list(d.s, 0, 0, ledger_collect, all), SPELL_OK);
    CHECK_STR(all[0].kind, "reserve");
    CHECK_INT(all[0].amount_cents, 100);
    CHECK_STR(all[0].cast_id, "cst_1");
    CHECK_STR(all[0].user_id, "usr_1");
    CHECK_STR(all[0].prev_hash,
              "0000000000000000000000000000000000000000000000000000000000000000");
    CHECK_STR(all[1].kind, "settle");
    CHECK_INT(all[1].amount_cents, 80);
    CHECK_STR(all[1].prev_hash, all[0].hash);
    CHECK_STR(all[3].kind, "release");
    CHECK_INT(all[3].amount_cents, 50);
    CHECK_STR(all[4].kind, "invoice");
    CHECK_STR(all[4].cast_id, "");
    CHECK_STR(all[5].user_id, "");
    CHECK_INT(all[5].amount_cents, -5);
    /* The first hash, recomputed by hand: SHA-256 of 64 zeros and
     * {"amount_cents":100,"cast_id":"cst_1","kind":"reserve","seq":1,"ts":T0}. */
    {
        char text[256];
        snprintf(text, sizeof text, "%s{\"amount_cents\":100,\"cast_id\":\"cst_1\","
                 "\"kind\":\"reserve\",\"seq\":1,\"ts\":%lld}", all[0].prev_hash,
                 (long long)T0);
        CHECK_INT(spell_sha256_hex(text, strlen(text), h), SPELL_OK);
        CHECK_STR(h, all[0].hash);
        /* The invoice has no cast: "cast_id" is null in what is hashed. */
        snprintf(text, sizeof text, "%s{\"amount_cents\":80,\"cast_id\":null,"
                 "\"kind\":\"invoice\",\"seq\":5,\"ts\":%lld}", all[4].prev_hash,
                 (long long)(T0 + 4));
        CHECK_INT(spell_sha256_hex(text, strlen(text), h), SPELL_OK);
        CHECK_STR(h, all[4].hash);
    }
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT(checked, 6);
    CHECK_INT(bad, 0);
    CHECK_INT(store_ledger_append(d.s, NULL, NULL, "settle", 1, T0, &seq), SPELL_EINVAL);
    CHECK_INT(store_ledger_append(d.s, NULL, NULL, NULL, 1, T0, &seq), SPELL_EINVAL);
    memset(all, 0, sizeof all);
    CHECK_INT(store_ledger_list(d.s, 4, 1, ledger_collect, all), SPELL_OK);
    CHECK_INT(all[4].seq, 5);
    CHECK_INT(all[5].seq, 0);
    db_close(&d);
}

static void test_ledger_edit_caught(void)
{
    struct db d;
    int64_t checked = 0, bad = -1;

    CHECK_INT(db_open(&d), SPELL_OK);
    fill_ledger(&d);
    CHECK_INT(raw_exec(d.path, "UPDATE ledger SET amount_cents = 1 WHERE seq = 3"), 0);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_EVERIFY);
    CHECK_INT(bad, 3);
    CHECK_INT(checked, 3);
    CHECK_INT(raw_exec(d.path, "UPDATE ledger SET amount_cents = 50 WHERE seq = 3"), 0);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT(raw_exec(d.path, "UPDATE ledger SET kind = 'adjust' WHERE seq = 5"), 0);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_EVERIFY);
    CHECK_INT(bad, 5);
    db_close(&d);
}

static void test_ledger_delete_caught(void)
{
    struct db d;
    int64_t checked = 0, bad = -1;

    CHECK_INT(db_open(&d), SPELL_OK);
    fill_ledger(&d);
    CHECK_INT(raw_exec(d.path, "DELETE FROM ledger WHERE seq = 2"), 0);
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_EVERIFY);
    CHECK_INT(bad, 2);
    db_close(&d);

    CHECK_INT(db_open(&d), SPELL_OK);
    fill_ledger(&d);
    CHECK_INT(raw_exec(d.path, "DELETE FROM ledger WHERE seq = 6"), 0);   /* the newest */
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_EVERIFY);
    CHECK_INT(bad, 6);
    CHECK_INT(checked, 5);
    db_close(&d);
}

/* ---- Listing and recovery -------------------------------------------- */

struct page_seen {
    int n;
    char ids[64][STORE_ID_SIZE];
    int64_t created[64];
};

static int page_collect(void *ud, const struct store_cast *c)
{
    struct page_seen *ps = ud;

    if (ps->n < 64) {
        strcpy(ps->ids[ps->n], c->id);
        ps->created[ps->n] = c->created_at;
    }
    ps->n++;
    return 0;
}

static void test_cursor_paging(void)
{
    struct db d;
    struct store_reserve_result r;
    struct page_seen ps;
    char cursor[STORE_CURSOR_SIZE] = "", next[STORE_CURSOR_SIZE];
    int i, j, pages = 0, seen[25];

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    make_user(d.s, "usr_2", "bob");
    for (i = 0; i < 25; i++) {
        char id[STORE_ID_SIZE];
        snprintf(id, sizeof id, "cst_%02d", i);
        /* Three casts share each millisecond, so ties are broken by id. */
        CHECK_INT(reserve(d.s, id, "usr_1", 1, T0 + i / 3, &r), SPELL_OK);
    }
    CHECK_INT(reserve(d.s, "cst_bob", "usr_2", 1, T0, &r), SPELL_OK);
    memset(&ps, 0, sizeof ps);
    memset(seen, 0, sizeof seen);
    do {
        CHECK_INT(store_cast_list(d.s, "usr_1", cursor, 7, page_collect, &ps, next), SPELL_OK);
        strcpy(cursor, next);
        pages++;
    } while (cursor[0] && pages < 10);
    CHECK_INT(pages, 4);
    CHECK_INT(ps.n, 25);
    for (i = 0; i < 25 && i < ps.n; i++) {
        j = atoi(ps.ids[i] + 4);
        if (j >= 0 && j < 25)
            seen[j]++;
    }
    for (i = 0; i < 25; i++)
        CHECK_INT(seen[i], 1);
    CHECK_STR(ps.ids[0], "cst_24");      /* newest first */
    CHECK_STR(ps.ids[24], "cst_00");
    for (i = 1; i < 25; i++)
        CHECK(ps.created[i] <= ps.created[i - 1]);

    /* An exactly full last page says there is nothing more. */
    memset(&ps, 0, sizeof ps);
    CHECK_INT(store_cast_list(d.s, "usr_2", NULL, 1, page_collect, &ps, next), SPELL_OK);
    CHECK_INT(ps.n, 1);
    CHECK_STR(next, "");
    CHECK_INT(store_cast_list(d.s, "usr_1", "garbage", 7, page_collect, &ps, next),
              SPELL_EINVAL);
    CHECK_INT(store_cast_list(d.s, "usr_1", "v1::cst_1", 7, page_collect, &ps, next),
              SPELL_EINVAL);
    CHECK_INT(store_cast_list(d.s, "usr_1", "v1:1234567890123456789:x", 7, page_collect, &ps,
                              next), SPELL_EINVAL);
    CHECK_INT(store_cast_list(d.s, "usr_1", "v1:-5:x", 7, page_collect, &ps, next),
              SPELL_EINVAL);
    CHECK_INT(store_cast_list(d.s, "usr_1", NULL, 0, page_collect, &ps, next), SPELL_EINVAL);
    memset(&ps, 0, sizeof ps);
    CHECK_INT(store_cast_list(d.s, "usr_1", NULL, 100000, page_collect, &ps, next), SPELL_OK);
    CHECK_INT(ps.n, 25);
    CHECK_STR(next, "");
    db_close(&d);
}

static void test_unfinished(void)
{
    struct db d;
    struct store_reserve_result r;
    struct page_seen ps;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    CHECK_INT(reserve(d.s, "cst_a", "usr_1", 1, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_b", "usr_1", 1, T0 + 1, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_c", "usr_1", 1, T0 + 2, &r), SPELL_OK);
    CHECK_INT(store_cast_start(d.s, "cst_b", NULL, T0 + 3), SPELL_OK);
    CHECK_INT(store_cast_settle(d.s, "cst_c", 1, NULL, T0 + 4, NULL), SPELL_OK);
    memset(&ps, 0, sizeof ps);
    CHECK_INT(store_casts_unfinished(d.s, page_collect, &ps), SPELL_OK);
    CHECK_INT(ps.n, 2);
    CHECK_STR(ps.ids[0], "cst_a");
    CHECK_STR(ps.ids[1], "cst_b");
    db_close(&d);
}

/* ---- Privacy --------------------------------------------------------- */

static void test_export(void)
{
    struct db d;
    struct store_key k;
    struct spell_buf b;

    CHECK_INT(db_open(&d), SPELL_OK);
    fill_ledger(&d);
    CHECK_INT(store_session_create(d.s, tok1, "usr_1", T0, T0 + DAY), SPELL_OK);
    memset(&k, 0, sizeof k);
    strcpy(k.id, "key_1");
    strcpy(k.user_id, "usr_1");
    strcpy(k.prefix, "AbCdEfGh");
    strcpy(k.name, "laptop");
    strcpy(k.hash, "$argon2id$secret-hash");
    k.created_at = T0;
    CHECK_INT(store_key_create(d.s, &k), SPELL_OK);
    spell_buf_init(&b, 1024 * 1024);
    CHECK_INT(store_user_export(d.s, "usr_1", &b), SPELL_OK);
    CHECK(strstr(spell_buf_str(&b), "\"login\":\"ada\"") != NULL);
    CHECK(strstr(spell_buf_str(&b), "\"prefix\":\"AbCdEfGh\"") != NULL);
    CHECK(strstr(spell_buf_str(&b), "argon2id") == NULL);      /* no key hashes */
    CHECK(strstr(spell_buf_str(&b), tok1) == NULL);            /* no session hashes */
    CHECK(strstr(spell_buf_str(&b), "\"id\":\"cst_1\"") != NULL);
    CHECK(strstr(spell_buf_str(&b), "\"type\":\"cast.succeeded\"") != NULL);
    CHECK(strstr(spell_buf_str(&b), "\"kind\":\"invoice\"") != NULL);
    CHECK(strstr(spell_buf_str(&b), "\"created_at\":\"2026-11-22T08:00:00.000Z\"") != NULL);
    CHECK(b.len > 0 && b.ptr[0] == '{' && b.ptr[b.len - 1] == '}');
    spell_buf_free(&b);
    spell_buf_init(&b, 64);
    CHECK_INT(store_user_export(d.s, "usr_1", &b), SPELL_ETOOBIG);
    CHECK_INT(b.len, 0);
    spell_buf_free(&b);
    spell_buf_init(&b, 1024);
    CHECK_INT(store_user_export(d.s, "usr_9", &b), SPELL_ENOTFOUND);
    spell_buf_free(&b);
    db_close(&d);
}

static void test_erasure_keeps_ledger(void)
{
    struct db d;
    struct store_reserve_result r;
    struct store_user u;
    struct store_cast c;
    struct store_ledger_entry all[8];
    int64_t checked = 0, bad = -1;

    CHECK_INT(db_open(&d), SPELL_OK);
    fill_ledger(&d);
    make_user(d.s, "usr_2", "bob");
    CHECK_INT(reserve(d.s, "cst_b", "usr_2", 10, T0 + 9, &r), SPELL_OK);     /* seq 7 */
    CHECK_INT(store_session_create(d.s, tok1, "usr_1", T0, T0 + DAY), SPELL_OK);
    CHECK_INT(store_budget_set(d.s, "usr_1", "2026-11", 2000, -1, T0), SPELL_OK);
    CHECK_INT(store_user_erase(d.s, "usr_1"), SPELL_OK);
    CHECK_INT(store_user_erase(d.s, "usr_1"), SPELL_ENOTFOUND);
    CHECK_INT(store_user_get(d.s, "usr_1", &u), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_get(d.s, "cst_1", NULL, &c), SPELL_ENOTFOUND);
    CHECK_INT(store_session_user(d.s, tok1, T0, &u), SPELL_ENOTFOUND);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM cast_events"), 1);    /* bob's only */
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM usage"), 1);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM budgets"), 1);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM ledger WHERE user_id = 'usr_1'"), 0);
    CHECK_INT(ledger_count(d.path), 7);
    memset(all, 0, sizeof all);
    CHECK_INT(store_ledger_list(d.s, 0, 0, ledger_collect, all), SPELL_OK);
    CHECK_STR(all[0].user_id, "");
    CHECK_INT(all[0].amount_cents, 100);
    CHECK_STR(all[6].user_id, "usr_2");
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    CHECK_INT(checked, 7);
    CHECK_INT(bad, 0);
    CHECK_INT(store_cast_get(d.s, "cst_b", "usr_2", &c), SPELL_OK);
    store_cast_clear(&c);
    db_close(&d);
}

/* ---- Workflow runs and GitHub deliveries ----------------------------- */

static void test_workflow_run_and_deliveries(void)
{
    struct store_reserve_result r;
    struct store_cast c;
    char found[STORE_ID_SIZE];
    int64_t run_id = -1;
    int seen = -1;
    struct db d;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    make_spell(d.s, "thumb");
    CHECK_INT(reserve(d.s, "cst_w1", "usr_1", 10, T0, &r), SPELL_OK);
    CHECK_INT(store_cast_run_id(d.s, "cst_w1", &run_id), SPELL_OK);
    CHECK(run_id == 0);
    CHECK_INT(store_cast_by_run_id(d.s, 77, found), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_set_run(d.s, "cst_w1", 77, NULL), SPELL_OK);
    CHECK_INT(store_cast_run_id(d.s, "cst_w1", &run_id), SPELL_OK);
    CHECK(run_id == 77);
    CHECK_INT(store_cast_get(d.s, "cst_w1", NULL, &c), SPELL_OK);
    CHECK_STR(c.run_url, "");
    store_cast_clear(&c);
    CHECK_INT(store_cast_set_run(d.s, "cst_w1", 78, "https://github.com/o/r/actions/runs/78"),
              SPELL_OK);
    CHECK_INT(store_cast_get(d.s, "cst_w1", NULL, &c), SPELL_OK);
    CHECK_STR(c.run_url, "https://github.com/o/r/actions/runs/78");
    store_cast_clear(&c);
    CHECK_INT(store_cast_by_run_id(d.s, 78, found), SPELL_OK);
    CHECK_STR(found, "cst_w1");
    CHECK_INT(store_cast_set_run(d.s, "cst_nope", 5, NULL), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_set_run(d.s, "cst_w1", 0, NULL), SPELL_EINVAL);
    CHECK_INT(store_cast_set_run(d.s, "cst_w1", -3, NULL), SPELL_EINVAL);
    CHECK_INT(store_cast_run_id(d.s, "cst_nope", &run_id), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_run_id(d.s, "bad id", &run_id), SPELL_EINVAL);

    CHECK_INT(store_delivery_seen(d.s, "d-1", &seen), SPELL_OK);
    CHECK_INT(seen, 0);
    CHECK_INT(store_delivery_record(d.s, "d-1", "workflow_run", T0), SPELL_OK);
    CHECK_INT(store_delivery_seen(d.s, "d-1", &seen), SPELL_OK);
    CHECK_INT(seen, 1);
    CHECK_INT(store_delivery_record(d.s, "d-1", "workflow_run", T0), STORE_ECONFLICT);
    CHECK_INT(store_delivery_record(d.s, "", "workflow_run", T0), SPELL_EINVAL);
    CHECK_INT(store_delivery_record(d.s, "a b", "workflow_run", T0), SPELL_EINVAL);
    CHECK_INT(store_delivery_seen(d.s, NULL, &seen), SPELL_EINVAL);
    db_close(&d);
}

/* The dispatch mark: set once, read back, kept across a reopen. */
static void test_dispatch_mark(void)
{
    struct store_reserve_result r;
    int64_t at = -1;
    int already = -1;
    struct db d;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    make_spell(d.s, "thumb");
    CHECK_INT(reserve(d.s, "cst_d1", "usr_1", 10, T0, &r), SPELL_OK);
    CHECK_INT(reserve(d.s, "cst_d2", "usr_1", 10, T0, &r), SPELL_OK);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_d1", &at), SPELL_OK);
    CHECK(at == 0);
    CHECK_INT(store_cast_mark_dispatch(d.s, "cst_d1", T0 + 5, &already), SPELL_OK);
    CHECK_INT(already, 0);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_d1", &at), SPELL_OK);
    CHECK(at == T0 + 5);
    /* A second mark reports the first and leaves it as it is. */
    CHECK_INT(store_cast_mark_dispatch(d.s, "cst_d1", T0 + 9000, &already), SPELL_OK);
    CHECK_INT(already, 1);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_d1", &at), SPELL_OK);
    CHECK(at == T0 + 5);
    /* Another cast is not marked by it. */
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_d2", &at), SPELL_OK);
    CHECK(at == 0);
    /* Bad and unknown input. */
    CHECK_INT(store_cast_mark_dispatch(d.s, "cst_nope", T0, &already), SPELL_ENOTFOUND);
    CHECK_INT(already, 0);
    CHECK_INT(store_cast_mark_dispatch(d.s, "bad id", T0, &already), SPELL_EINVAL);
    CHECK_INT(store_cast_mark_dispatch(d.s, "cst_d2", 0, &already), SPELL_EINVAL);
    CHECK_INT(store_cast_mark_dispatch(d.s, "cst_d2", -1, &already), SPELL_EINVAL);
    CHECK_INT(store_cast_mark_dispatch(d.s, "cst_d2", T0, NULL), SPELL_EINVAL);
    CHECK_INT(store_cast_mark_dispatch(d.s, NULL, T0, &already), SPELL_EINVAL);
    CHECK_INT(store_cast_mark_dispatch(NULL, "cst_d2", T0, &already), SPELL_EINVAL);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_nope", &at), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_dispatched_at(d.s, "bad id", &at), SPELL_EINVAL);
    /* Quotes reach SQLite as a bound value, never as SQL. */
    CHECK_INT(store_cast_dispatched_at(d.s, "x' OR '1'='1", &at), SPELL_EINVAL);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_d1'--", &at), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_mark_dispatch(d.s, "cst_d2'--", T0, &already), SPELL_ENOTFOUND);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_d1", NULL), SPELL_EINVAL);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_d2", &at), SPELL_OK);
    CHECK(at == 0);
    /* Committed: another connection sees it, and so does a reopened store. */
    CHECK_INT(raw_int(d.path, "SELECT dispatched_at FROM casts WHERE id = 'cst_d1'"), T0 + 5);
    store_close(d.s);
    CHECK_INT(store_open(d.path, &d.s), SPELL_OK);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_d1", &at), SPELL_OK);
    CHECK(at == T0 + 5);
    CHECK_INT(store_cast_mark_dispatch(d.s, "cst_d1", T0 + 7, &already), SPELL_OK);
    CHECK_INT(already, 1);
    db_close(&d);
}

/* A database of schema 4 (before the dispatch mark) is brought to 5 at
 * open: its casts are kept, none counts as dispatched, and the mark works. */
static void test_migration_4_to_5(void)
{
    struct store_reserve_result r;
    struct store_cast c;
    int64_t at = -1;
    int already = -1, v = 0;
    struct db d;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    make_spell(d.s, "thumb");
    CHECK_INT(reserve(d.s, "cst_old", "usr_1", 10, T0, &r), SPELL_OK);
    store_close(d.s);
    d.s = NULL;
    /* Back to what a schema 4 server left. */
    CHECK_INT(raw_exec(d.path, "ALTER TABLE casts DROP COLUMN dispatched_at;"
                               "DELETE FROM schema_migrations WHERE version = 5;"),
              0);
    CHECK_INT(raw_int(d.path, "SELECT MAX(version) FROM schema_migrations"), 4);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM pragma_table_info('casts')"
                              " WHERE name = 'dispatched_at'"),
              0);
    CHECK_INT(store_open(d.path, &d.s), SPELL_OK);
    CHECK_INT(store_schema_version(d.s, &v), SPELL_OK);
    CHECK_INT(v, 5);
    CHECK_INT(raw_int(d.path, "SELECT name = 'dispatch' FROM schema_migrations"
                              " WHERE version = 5"),
              1);
    CHECK_INT(store_cast_get(d.s, "cst_old", NULL, &c), SPELL_OK);
    CHECK_STR(c.status, "queued");
    store_cast_clear(&c);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_old", &at), SPELL_OK);
    CHECK(at == 0);
    CHECK_INT(store_cast_mark_dispatch(d.s, "cst_old", T0 + 1, &already), SPELL_OK);
    CHECK_INT(already, 0);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_old", &at), SPELL_OK);
    CHECK(at == T0 + 1);
    /* A second open migrates nothing more. */
    store_close(d.s);
    CHECK_INT(store_open(d.path, &d.s), SPELL_OK);
    CHECK_INT(raw_int(d.path, "SELECT COUNT(*) FROM schema_migrations"), 5);
    CHECK_INT(store_cast_dispatched_at(d.s, "cst_old", &at), SPELL_OK);
    CHECK(at == T0 + 1);
    db_close(&d);
}

static int count_users(void *ud, const char *user_id, int64_t spent_cents)
{
    int64_t *sum = ud;

    (void)user_id;
    *sum += spent_cents;
    return 0;
}

static void test_billing(void)
{
    struct store_billing b;
    struct store_billing_event ev;
    struct store_budget bud;
    struct store_reserve_result r;
    struct store_settle_result sr;
    char period[STORE_PERIOD_SIZE], inv[STORE_PROVIDER_ID_SIZE];
    int64_t seq = 0, sum = 0, checked = 0, bad = 0;
    int dup = -1, applied = -1, seen = -1;
    struct db d;

    CHECK_INT(db_open(&d), SPELL_OK);
    make_user(d.s, "usr_1", "ada");
    make_user(d.s, "usr_2", "bob");
    CHECK_INT(store_billing_get(d.s, "usr_1", &b), SPELL_ENOTFOUND);
    CHECK_INT(store_billing_customer_set(d.s, "usr_1", "cus_A", T0), SPELL_OK);
    CHECK_INT(store_billing_customer_set(d.s, "usr_1", "cus_A", T0), SPELL_OK);
    CHECK_INT(store_billing_customer_set(d.s, "usr_1", "cus_B", T0), STORE_ECONFLICT);
    CHECK_INT(store_billing_customer_set(d.s, "usr_9", "cus_C", T0), SPELL_ENOTFOUND);
    CHECK_INT(store_billing_customer_set(d.s, "usr_2", "cus_A", T0), STORE_ECONFLICT);
    CHECK_INT(store_billing_customer_set(d.s, "usr_2", "bad id", T0), SPELL_EINVAL);
    CHECK_INT(store_billing_by_customer(d.s, "cus_A", &b), SPELL_OK);
    CHECK_STR(b.user_id, "usr_1");
    CHECK_STR(b.payment_method_id, "");

    /* A card: saved once, the $50 standing limit for a user without one. */
    memset(&ev, 0, sizeof ev);
    ev.event_id = "evt_1";
    ev.type = "setup_intent.succeeded";
    ev.effect = STORE_BILLING_CARD_SET;
    ev.customer_id = "cus_A";
    ev.payment_method_id = "pm_1";
    ev.brand = "visa";
    ev.last4 = "4242";
    ev.exp_month = 12;
    ev.exp_year = 2034;
    CHECK_INT(store_billing_event_apply(d.s, &ev, T0, &dup, &applied), SPELL_OK);
    CHECK_INT(dup, 0);
    CHECK_INT(applied, 1);
    CHECK_INT(store_billing_event_seen(d.s, "evt_1", &seen), SPELL_OK);
    CHECK_INT(seen, 1);
    CHECK_INT(store_billing_get(d.s, "usr_1", &b), SPELL_OK);
    CHECK_STR(b.brand, "visa");
    CHECK_STR(b.last4, "4242");
    CHECK_INT(b.exp_month, 12);
    CHECK_INT(b.exp_year, 2034);
    CHECK_INT(spell_time_period(T0, period, sizeof period), SPELL_OK);
    CHECK_INT(store_budget_get(d.s, "usr_1", period, &bud), SPELL_OK);
    CHECK(bud.hard_limit_cents == 5000);
    CHECK_INT(bud.source, STORE_BUDGET_STANDING);
    CHECK_INT(store_billing_event_apply(d.s, &ev, T0, &dup, &applied), SPELL_OK);
    CHECK_INT(dup, 1);
    CHECK_INT(applied, 0);
    /* A user's own limit stays. */
    CHECK_INT(store_budget_set(d.s, "usr_1", period, 2000, -1, T0), SPELL_OK);
    ev.event_id = "evt_2";
    CHECK_INT(store_billing_event_apply(d.s, &ev, T0, &dup, NULL), SPELL_OK);
    CHECK_INT(store_budget_get(d.s, "usr_1", period, &bud), SPELL_OK);
    CHECK(bud.hard_limit_cents == 2000);
    /* Malformed events change nothing and are not recorded. */
    ev.event_id = "evt_3";
    ev.last4 = "42424";
    CHECK_INT(store_billing_event_apply(d.s, &ev, T0, &dup, NULL), SPELL_ETOOBIG);
    ev.last4 = "4242";
    ev.exp_month = 13;
    CHECK_INT(store_billing_event_apply(d.s, &ev, T0, &dup, NULL), SPELL_EINVAL);
    CHECK_INT(store_billing_event_seen(d.s, "evt_3", &seen), SPELL_OK);
    CHECK_INT(seen, 0);
    ev.event_id = "";
    CHECK_INT(store_billing_event_apply(d.s, &ev, T0, &dup, NULL), SPELL_EINVAL);

    /* Failed payment and paid invoice. */
    memset(&ev, 0, sizeof ev);
    ev.event_id = "evt_f";
    ev.type = "invoice.payment_failed";
    ev.effect = STORE_BILLING_PAYMENT_FAILED;
    ev.customer_id = "cus_A";
    CHECK_INT(store_billing_event_apply(d.s, &ev, T0, &dup, &applied), SPELL_OK);
    CHECK_INT(applied, 1);
    CHECK_INT(store_billing_get(d.s, "usr_1", &b), SPELL_OK);
    CHECK_INT(b.payment_failed, 1);
    ev.event_id = "evt_p";
    ev.effect = STORE_BILLING_INVOICE_PAID;
    CHECK_INT(store_billing_event_apply(d.s, &ev, T0, &dup, NULL), SPELL_OK);
    CHECK_INT(store_billing_get(d.s, "usr_1", &b), SPELL_OK);
    CHECK_INT(b.payment_failed, 0);
    /* An unknown customer: recorded, no effect. */
    ev.event_id = "evt_u";
    ev.customer_id = "cus_nobody";
    CHECK_INT(store_billing_event_apply(d.s, &ev, T0, &dup, &applied), SPELL_OK);
    CHECK_INT(applied, 0);
    /* Card removed. */
    memset(&ev, 0, sizeof ev);
    ev.event_id = "evt_d";
    ev.type = "payment_method.detached";
    ev.effect = STORE_BILLING_CARD_REMOVED;
    ev.payment_method_id = "pm_1";
    CHECK_INT(store_billing_event_apply(d.s, &ev, T0, &dup, &applied), SPELL_OK);
    CHECK_INT(applied, 1);
    CHECK_INT(store_billing_get(d.s, "usr_1", &b), SPELL_OK);
    CHECK_STR(b.payment_method_id, "");
    CHECK_STR(b.customer_id, "cus_A");

    /* Invoices: usage users, one record per (user, period), ledger entry. */
    make_spell(d.s, "thumb");
    CHECK_INT(reserve(d.s, "cst_b1", "usr_1", 10, T0, &r), SPELL_OK);
    CHECK_INT(store_cast_settle(d.s, "cst_b1", 7, NULL, T0 + 1, &sr), SPELL_OK);
    CHECK_INT(store_billing_usage_users(d.s, period, count_users, &sum), SPELL_OK);
    CHECK(sum == 7);
    CHECK_INT(store_billing_usage_users(d.s, "2026-13", count_users, &sum), SPELL_EINVAL);
    CHECK_INT(store_billing_invoice_get(d.s, "usr_1", period, inv), SPELL_ENOTFOUND);
    CHECK_INT(store_billing_invoice_record(d.s, "usr_1", period, "in_1", 7, T0 + 2, &seq),
              SPELL_OK);
    CHECK(seq > 0);
    CHECK_INT(store_billing_invoice_record(d.s, "usr_1", period, "in_2", 7, T0 + 2, &seq),
              STORE_ECONFLICT);
    CHECK(seq == 0);
    CHECK_INT(store_billing_invoice_record(d.s, "usr_1", period, "in_3", -1, T0, NULL),
              SPELL_EINVAL);
    CHECK_INT(store_billing_invoice_get(d.s, "usr_1", period, inv), SPELL_OK);
    CHECK_STR(inv, "in_1");
    CHECK_INT(store_ledger_verify(d.s, &checked, &bad), SPELL_OK);
    db_close(&d);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/spell-store-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("Bail out! cannot make a temporary folder\n");
        return 1;
    }
    RUN(test_open_fresh_and_reopen);
    RUN(test_open_sqlite_url);
    RUN(test_open_refuses_bad_urls);
    RUN(test_open_refuses_newer_schema);
    RUN(test_memory_database);
    RUN(test_ping_file_moved);
    RUN(test_users);
    RUN(test_sessions);
    RUN(test_keys);
    RUN(test_budgets);
    RUN(test_spells);
    RUN(test_idempotency_states);
    RUN(test_reserve_at_limit);
    RUN(test_cast_lifecycle_and_settle);
    RUN(test_start_progress);
    RUN(test_release);
    RUN(test_soft_limit_once);
    RUN(test_reserve_with_idempotency);
    RUN(test_idempotency_lookup_put);
    RUN(test_reserve_creates_record);
    RUN(test_reserve_one_key_race);
    RUN(test_concurrent_reservations);
    RUN(test_group_commit_budget);
    RUN(test_group_commit_fails);
    RUN(test_group_commit_same_key);
    RUN(test_group_commit_bound);
    RUN(test_group_commit_mixed);
    RUN(test_group_commit_mixed_failures);
    RUN(test_group_commit_mixed_fails);
    RUN(test_group_commit_failures_in_batch);
    RUN(test_group_commit_many_threads);
    RUN(test_memory_database_writers);
    RUN(test_widest_writes);
    RUN(test_lifecycle_writers_and_readers);
    RUN(test_concurrent_events_gapless);
    RUN(test_event_append_input);
    RUN(test_ledger_chain);
    RUN(test_ledger_edit_caught);
    RUN(test_ledger_delete_caught);
    RUN(test_cursor_paging);
    RUN(test_unfinished);
    RUN(test_export);
    RUN(test_erasure_keeps_ledger);
    RUN(test_workflow_run_and_deliveries);
    RUN(test_dispatch_mark);
    RUN(test_migration_4_to_5);
    RUN(test_billing);
    rmdir(tmpdir);
    return tap_done();
}
