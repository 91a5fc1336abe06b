/*
 * The store of spell-server: everything the platform keeps between
 * requests and across restarts, behind one interface.
 *
 * Callers (the HTTP handlers, the executors, the command line) speak in
 * platform terms: create a user, reserve a cast against a budget, settle
 * it, append a progress event, verify the ledger.  They never see SQL.
 * store_open() picks an implementation from the URL and every function
 * below goes through that implementation's function table, so a
 * PostgreSQL store can slot in later without touching a caller:
 *
 *   "sqlite:///var/lib/spell/spell.db"   SQLite (sqlite.c), the default
 *   "/var/lib/spell/spell.db"            the same, written as a plain path
 *   "postgres://..."                     reserved: SPELL_EINVAL for now
 *
 * Time never comes from a clock inside the store: every function that
 * stamps or compares a time takes `now_ms` (Unix milliseconds, UTC, see
 * spell/clock.h) from the caller, who reads an injectable clock.  So do
 * expiry checks (sessions, 24 h idempotency records).
 *
 * Money paths are single transactions.  store_cast_reserve() checks the
 * budget, inserts the cast and its first event, bumps reserved_cents,
 * appends the ledger entry and records the idempotency response, or does
 * none of it.  store_cast_settle() and store_cast_release() close a cast
 * the same way.  However many threads reserve at once, spent + reserved
 * never passes the hard limit.  Writes made at the same moment
 * (reservations, settlements, the other cast transitions, events, any
 * write) may share one transaction and its commit (group commit,
 * sqlite.c): each is still all-or-nothing on its own, sees the ones before
 * it, and returns only once the commit that made it durable is done; a
 * commit that fails fails every write it carried.
 *
 * Every function is safe to call from any thread at any time; a struct
 * store is shared by all of them.  Results: SPELL_OK, a core spell_rc
 * (SPELL_ENOTFOUND for a missing row, SPELL_EINVAL for a malformed
 * argument, SPELL_ETOOBIG for an argument past its cap, SPELL_EIO for a
 * database failure), or one of the store's own codes below.  Out-structs
 * are zeroed on failure.  Strings in structs are NUL-terminated and
 * capped by their array size; a longer input is SPELL_ETOOBIG, never cut.
 */
#ifndef SERVER_STORE_H
#define SERVER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "spell/buf.h"

/* The store's own results, below core's range (core's codes stop well
 * above -100 and keep their slots). */
enum store_rc {
    /* A unique name is taken (login, key prefix, cast id), or the row is
     * not in a state that allows the change (settling a finished cast). */
    STORE_ECONFLICT = -100,
    /* The database was written by a newer spell-server (its schema
     * version is higher than STORE_SCHEMA_VERSION); nothing was changed. */
    STORE_ESCHEMA = -101,
};

/* The schema version this binary writes and understands. */
#define STORE_SCHEMA_VERSION 5

/* Caps of the stored text fields, NUL included. */
#define STORE_ID_SIZE 48            /* "cst_" + ULID is 30; room for other prefixes */
#define STORE_LOGIN_SIZE 65
#define STORE_NAME_SIZE 257
#define STORE_EMAIL_SIZE 321
#define STORE_URL_SIZE 2049
#define STORE_ROLE_SIZE 16
#define STORE_HASH_HEX_SIZE 65      /* SHA-256 as lowercase hex */
#define STORE_KEY_PREFIX_SIZE 17
#define STORE_KEY_HASH_SIZE 257     /* an Argon2id encoded string */
#define STORE_SPELL_KEY_SIZE 65
#define STORE_VERSION_SIZE 33
#define STORE_WORD_SIZE 16          /* status, mode, pricing model, kind */
#define STORE_SUMMARY_SIZE 1025
#define STORE_MESSAGE_SIZE 1025
#define STORE_ERROR_CODE_SIZE 65
#define STORE_IDEM_KEY_SIZE 256     /* 1..255 printable characters */
#define STORE_EVENT_TYPE_SIZE 33
#define STORE_PERIOD_SIZE 8         /* "2026-11" */
#define STORE_DATE_SIZE 11          /* "2026-11-22" */
#define STORE_CURSOR_SIZE 80

/* Caps of the JSON blobs the store keeps, in bytes without the NUL. */
#define STORE_JSON_MAX (64 * 1024)          /* inputs_schema, execution, inputs */
#define STORE_EVENT_DATA_MAX (64 * 1024)    /* one cast event's data */
#define STORE_RESPONSE_MAX (64 * 1024)      /* one stored idempotent response */

/* The hard limit of a user who never set one (DESIGN.md §2: $50). */
#define STORE_DEFAULT_HARD_LIMIT_CENTS 5000

/* Sessions last 30 days; idempotency records 24 hours. */
#define STORE_SESSION_TTL_MS (30LL * 24 * 3600 * 1000)
#define STORE_IDEM_TTL_MS (24LL * 3600 * 1000)

/* Page sizes: a list asked for more gets this many. */
#define STORE_LIST_MAX 200

struct store;

/* ---- Lifecycle ------------------------------------------------------- */

/* Opens (creating when absent) the database named by url and applies the
 * pending migrations in one transaction.  STORE_ESCHEMA when the database
 * is newer than this binary, SPELL_EINVAL for an unknown or reserved
 * scheme, SPELL_EIO when the file cannot be opened. */
int store_open(const char *url, struct store **out);

/* Closes every connection; NULL is accepted.  No call may be running. */
void store_close(struct store *s);

/* SPELL_OK when the database answers (for /healthz). */
int store_ping(struct store *s);

/* The schema version recorded in the database. */
int store_schema_version(struct store *s, int *out);

/* ---- Users, sessions, API keys -------------------------------------- */

struct store_user {
    char id[STORE_ID_SIZE];
    char login[STORE_LOGIN_SIZE];
    char name[STORE_NAME_SIZE];
    char email[STORE_EMAIL_SIZE];
    char avatar_url[STORE_URL_SIZE];
    char role[STORE_ROLE_SIZE];     /* "caster", "maker" or "admin" */
    int64_t created_at;
};

/* STORE_ECONFLICT when the id or the login is taken. */
int store_user_create(struct store *s, const struct store_user *u);
int store_user_get(struct store *s, const char *user_id, struct store_user *out);
int store_user_by_login(struct store *s, const char *login, struct store_user *out);

/* Sessions are known by the SHA-256 (hex) of their token only. */
int store_session_create(struct store *s, const char *token_sha256_hex, const char *user_id,
                         int64_t now_ms, int64_t expires_at);
/* The session's user; SPELL_ENOTFOUND when unknown or expired at now_ms. */
int store_session_user(struct store *s, const char *token_sha256_hex, int64_t now_ms,
                       struct store_user *out);
int store_session_delete(struct store *s, const char *token_sha256_hex);
/* Deletes sessions expired at now_ms; *removed may be NULL. */
int store_sessions_purge(struct store *s, int64_t now_ms, int64_t *removed);

struct store_key {
    char id[STORE_ID_SIZE];
    char user_id[STORE_ID_SIZE];
    char prefix[STORE_KEY_PREFIX_SIZE];
    char name[STORE_NAME_SIZE];
    /* The Argon2id encoded hash of the whole key; the server verifies,
     * the store only keeps it. */
    char hash[STORE_KEY_HASH_SIZE];
    int64_t created_at;
    int64_t last_used_at;   /* 0 when never used */
    int64_t revoked_at;     /* 0 while the key is live */
};

/* STORE_ECONFLICT when the id or prefix is taken. */
int store_key_create(struct store *s, const struct store_key *k);
/* Finds a key by prefix, revoked ones included (the caller checks). */
int store_key_by_prefix(struct store *s, const char *prefix, struct store_key *out);
/* Calls fn for each of the user's keys, newest first, revoked ones
 * included; a nonzero return from fn stops the walk with SPELL_EABORT. */
int store_key_list(struct store *s, const char *user_id,
                   int (*fn)(void *ud, const struct store_key *k), void *ud);
/* SPELL_ENOTFOUND unless the user has a live key with this prefix. */
int store_key_revoke(struct store *s, const char *user_id, const char *prefix, int64_t now_ms);
int store_key_touch(struct store *s, const char *prefix, int64_t now_ms);

/* ---- Budgets and usage ----------------------------------------------- */

/*
 * Where a period's limits come from.  A limit the user sets is a standing
 * limit: it governs the period it was set in and every later one until
 * the user changes or clears it.  The first reservation of a period also
 * copies the limits then in force into that period's own row, so a
 * period's history keeps the limit it was spent under after the standing
 * limit moves on.  A user who never set a limit has the $50 default and no
 * soft limit.
 */
enum store_budget_source {
    STORE_BUDGET_DEFAULT = 0,
    STORE_BUDGET_STANDING = 1,
    STORE_BUDGET_PERIOD = 2,
};

struct store_budget {
    char period[STORE_PERIOD_SIZE];
    int64_t hard_limit_cents;
    int64_t soft_limit_cents;       /* -1 when no soft limit is set */
    enum store_budget_source source;
};

/* The limits in force for user and period ("YYYY-MM"). */
int store_budget_get(struct store *s, const char *user_id, const char *period,
                     struct store_budget *out);
/* Sets the user's standing limit and the given period's limit.  soft -1
 * means none.  SPELL_EINVAL when hard < 0 or soft > hard; the API's
 * $10..$500 range is the caller's to check. */
int store_budget_set(struct store *s, const char *user_id, const char *period,
                     int64_t hard_limit_cents, int64_t soft_limit_cents, int64_t now_ms);
/* Back to the default: drops the standing limit and the period's row. */
int store_budget_clear(struct store *s, const char *user_id, const char *period);

#define STORE_USAGE_DAYS_MAX 31
#define STORE_USAGE_SPELLS_MAX 100

struct store_usage_day {
    char date[STORE_DATE_SIZE];
    int64_t spent_cents;
    int64_t calls;
};

struct store_usage_spell {
    char spell_key[STORE_SPELL_KEY_SIZE];
    int64_t spent_cents;
    int64_t calls;
};

struct store_usage {
    struct store_budget budget;
    int64_t calls;
    int64_t spent_cents;
    int64_t reserved_cents;
    int64_t remaining_cents;        /* hard - spent - reserved, never below 0 */
    size_t n_daily;                 /* days with usage, oldest first */
    struct store_usage_day daily[STORE_USAGE_DAYS_MAX];
    /* Spells by spend, largest first; when a user cast more than
     * STORE_USAGE_SPELLS_MAX spells in one period the rest are left out
     * and by_spell_truncated is 1. */
    size_t n_by_spell;
    int by_spell_truncated;
    struct store_usage_spell by_spell[STORE_USAGE_SPELLS_MAX];
};

/* Usage of user in period; a period without casts is all zeros. */
int store_usage_get(struct store *s, const char *user_id, const char *period,
                    struct store_usage *out);

/* ---- Spells ---------------------------------------------------------- */

struct store_spell {
    char key[STORE_SPELL_KEY_SIZE];
    char name[STORE_NAME_SIZE];
    char summary[STORE_SUMMARY_SIZE];
    char version[STORE_VERSION_SIZE];
    char status[STORE_WORD_SIZE];           /* draft, published, deprecated */
    char execution_mode[STORE_WORD_SIZE];   /* service, workflow, wasm, clone */
    char pricing_model[STORE_WORD_SIZE];    /* free, flat, metered */
    int64_t flat_cents;                     /* for flat */
    int64_t base_cents;                     /* for metered */
    int64_t per_kb_cents;                   /* for metered */
    /* JSON texts, heap-owned by the struct (store_spell_clear frees
     * them), each at most STORE_JSON_MAX bytes. */
    char *inputs_schema;
    char *execution;
    /* Kept by the store from settled casts; ignored by upsert. */
    int64_t avg_cost_cents;
    int64_t avg_duration_ms;
};

/* Inserts or replaces the spell with this key (imports run again). */
int store_spell_upsert(struct store *s, const struct store_spell *sp, int64_t now_ms);
int store_spell_get(struct store *s, const char *key, struct store_spell *out);
/* Calls fn for every spell by key; the struct is valid during the call. */
int store_spell_list(struct store *s, int (*fn)(void *ud, const struct store_spell *sp),
                     void *ud);
void store_spell_clear(struct store_spell *sp);

/* ---- Idempotency ----------------------------------------------------- */

enum store_idem_state {
    /* No live record existed: one is now recorded in flight for this
     * request, and the caller goes on to do the work. */
    STORE_IDEM_NEW = 0,
    /* The same request finished before: status and body hold its answer. */
    STORE_IDEM_REPLAY = 1,
    /* The key was used with a different request (422). */
    STORE_IDEM_MISMATCH = 2,
    /* The first request with this key is still running (409). */
    STORE_IDEM_IN_FLIGHT = 3,
};

struct store_idem {
    enum store_idem_state state;
    int status;                 /* for REPLAY */
    char *body;                 /* for REPLAY: heap, NUL-terminated */
    size_t body_len;
};

/* Looks up (user, key) and, when no live record exists, records this
 * request in flight.  Records older than STORE_IDEM_TTL_MS at now_ms count
 * as absent and are replaced. */
int store_idem_begin(struct store *s, const char *user_id, const char *key,
                     const char *request_hash, int64_t now_ms, struct store_idem *out);
/* Stores the final answer of the in-flight request (status and body at
 * most STORE_RESPONSE_MAX bytes).  SPELL_ENOTFOUND when no record is in
 * flight under this key. */
int store_idem_finish(struct store *s, const char *user_id, const char *key, int status,
                      const char *body, size_t len);
/* Forgets an in-flight record so a retry can run (after a 5xx). */
int store_idem_abandon(struct store *s, const char *user_id, const char *key);
/* The one-commit form for callers that decide their answer in one step.
 * store_idem_lookup() reads (user, key) and writes nothing: STORE_IDEM_NEW
 * means no live record exists and none was made; REPLAY, MISMATCH and
 * IN_FLIGHT (a record left in flight by store_idem_begin()) are as above.
 * store_idem_put() then stores the final answer (status 100..599, body at
 * most STORE_RESPONSE_MAX bytes) in one transaction, replacing an expired
 * record; when a live record exists meanwhile (two requests with one key
 * racing) it writes nothing and fills out as store_idem_lookup() would,
 * else out->state is STORE_IDEM_NEW.  A reservation stores its own answer
 * the same way (store_reserve.request_hash). */
int store_idem_lookup(struct store *s, const char *user_id, const char *key,
                      const char *request_hash, int64_t now_ms, struct store_idem *out);
int store_idem_put(struct store *s, const char *user_id, const char *key,
                   const char *request_hash, int64_t now_ms, int status, const char *body,
                   size_t len, struct store_idem *out);
int store_idem_purge(struct store *s, int64_t now_ms, int64_t *removed);
void store_idem_clear(struct store_idem *r);

/* ---- Casts ----------------------------------------------------------- */

struct store_cast {
    char id[STORE_ID_SIZE];
    char user_id[STORE_ID_SIZE];
    char spell_key[STORE_SPELL_KEY_SIZE];
    char spell_version[STORE_VERSION_SIZE];
    char mode[STORE_WORD_SIZE];
    char status[STORE_WORD_SIZE];   /* queued, running, succeeded, failed, canceled */
    int progress;                   /* 0..100 */
    char message[STORE_MESSAGE_SIZE];
    char input_hash[STORE_HASH_HEX_SIZE];
    int64_t estimated_cost_cents;
    int64_t cost_cents;             /* -1 until the cast succeeds */
    char run_url[STORE_URL_SIZE];
    char artifact_url[STORE_URL_SIZE];
    char error_code[STORE_ERROR_CODE_SIZE];     /* "" unless failed or canceled */
    char error_message[STORE_MESSAGE_SIZE];
    int64_t created_at;
    int64_t started_at;             /* 0 until running */
    int64_t finished_at;            /* 0 until finished */
    int64_t duration_ms;            /* -1 until finished */
    /* The Idempotency-Key the cast was created under ("" for none). */
    char idempotency_key[STORE_IDEM_KEY_SIZE];
    /* The budget period the reservation was made in. */
    char period[STORE_PERIOD_SIZE];
    /* The inputs as JSON text, heap-owned (store_cast_clear frees them);
     * kept only until the cast finishes, NULL afterwards. */
    char *inputs;
    /* The seq of the cast's latest event. */
    int64_t last_seq;
};

void store_cast_clear(struct store_cast *c);

enum store_reserve_outcome {
    STORE_RESERVED = 0,
    /* spent + reserved + estimate would pass the hard limit: nothing was
     * written; the numbers below fill the 402 BUDGET_EXCEEDED details. */
    STORE_BUDGET_EXCEEDED = 1,
};

struct store_reserve_result {
    enum store_reserve_outcome outcome;
    char period[STORE_PERIOD_SIZE];
    int64_t hard_limit_cents;
    int64_t soft_limit_cents;       /* -1 for none */
    /* The period's counters after the reservation (before it, when the
     * budget was exceeded). */
    int64_t spent_cents;
    int64_t reserved_cents;
    int64_t estimate_cents;
    int64_t remaining_cents;        /* hard - spent - reserved, never below 0 */
    int64_t ledger_seq;             /* the reserve entry, 0 when not reserved */
};

/*
 * The idempotent answer to a reservation is stored in the reservation's
 * own transaction, so a replay can never find a cast without its answer or
 * an answer without its cast.  The store calls respond() back inside the
 * transaction, with the result, to have the answer written into body
 * (capped at STORE_RESPONSE_MAX); a failure from it rolls everything back.
 * It runs on the thread that leads the group commit carrying the
 * reservation (the caller's own or another caller's) while the store's
 * other writes wait for it; it must not call back into the store nor
 * depend on the thread it runs on.
 */
struct store_reserve {
    /* The new cast: id, user_id, spell_key, spell_version, mode,
     * input_hash, estimated_cost_cents, inputs (may be NULL) and
     * idempotency_key are read; the store sets status queued, progress 0,
     * created_at = now_ms and the period of now_ms. */
    const struct store_cast *cast;
    int64_t now_ms;
    /* When cast->idempotency_key is not "", the in-flight record of
     * (user, key) is finished with respond()'s answer in the same
     * transaction; respond is then required, and the reservation fails
     * with SPELL_ENOTFOUND when no such record is in flight. */
    int (*respond)(void *ud, const struct store_reserve_result *r, int *status,
                   struct spell_buf *body);
    void *respond_ud;
    /* NULL: as above.  Else the request hash (SHA-256 hex) of a caller
     * that looked the key up with store_idem_lookup() and made no record:
     * the record is created here, done, with respond()'s answer, in the
     * reservation's transaction.  When a live record exists under the key
     * by then (a racing request) nothing is written and the result is
     * STORE_ECONFLICT: look the key up again for the answer. */
    const char *request_hash;
};

/* Reserves the estimate and creates the cast (see the top of the file).
 * SPELL_OK with outcome STORE_BUDGET_EXCEEDED is a refusal, not an error. */
int store_cast_reserve(struct store *s, const struct store_reserve *req,
                       struct store_reserve_result *out);

/* queued -> running with the event cast.started; run_url may be NULL.
 * STORE_ECONFLICT when the cast is not queued. */
int store_cast_start(struct store *s, const char *cast_id, const char *run_url, int64_t now_ms);

/* store_cast_start and then store_cast_progress in one transaction (one
 * commit instead of two): the events cast.started and cast.progress.  For
 * an executor that starts a cast when its program first reports. */
int store_cast_start_progress(struct store *s, const char *cast_id, const char *run_url,
                              int progress, const char *message, int64_t now_ms);

/* Records progress (0..100) and a message on a running (or queued) cast
 * with the event cast.progress.  STORE_ECONFLICT once it finished. */
int store_cast_progress(struct store *s, const char *cast_id, int progress, const char *message,
                        int64_t now_ms);

/* Sets run_url (a workflow run found after the start). */
int store_cast_set_run_url(struct store *s, const char *cast_id, const char *run_url);

/* Workflow casts (GitHub Actions).  store_cast_set_run records the run a
 * cast dispatched (run_id > 0; run_url NULL keeps the current one);
 * store_cast_run_id reads it back (0 when none is known yet);
 * store_cast_by_run_id finds the cast of a run (SPELL_ENOTFOUND when
 * none). */
int store_cast_set_run(struct store *s, const char *cast_id, int64_t run_id, const char *run_url);
int store_cast_run_id(struct store *s, const char *cast_id, int64_t *run_id);
int store_cast_by_run_id(struct store *s, int64_t run_id, char cast_id[STORE_ID_SIZE]);

/* The dispatch mark of a workflow cast: when its dispatch was first sent
 * (ms), committed before the request leaves, so that a restart knows
 * GitHub may hold a run for the cast even when none is stored or listed
 * yet.  store_cast_mark_dispatch sets it to now_ms (> 0) when the cast has
 * none (*already 0) and leaves an earlier mark as it is (*already 1);
 * store_cast_dispatched_at reads it (0 when never dispatched).  Both
 * SPELL_ENOTFOUND for an unknown cast. */
int store_cast_mark_dispatch(struct store *s, const char *cast_id, int64_t now_ms, int *already);
int store_cast_dispatched_at(struct store *s, const char *cast_id, int64_t *at_ms);

/* GitHub webhook deliveries (X-GitHub-Delivery, at most 95 bytes):
 * whether one was processed, and recording it once its effect is done
 * (STORE_ECONFLICT when it already was). */
int store_delivery_seen(struct store *s, const char *delivery_id, int *seen);
int store_delivery_record(struct store *s, const char *delivery_id, const char *event,
                          int64_t now_ms);

struct store_settle_result {
    /* What the caster is charged: the cost reported, capped at the
     * estimate (the estimate is the most a cast may ever cost: it is what
     * the budget check let through). */
    int64_t cost_cents;
    char user_id[STORE_ID_SIZE];
    char period[STORE_PERIOD_SIZE];
    int64_t spent_cents;            /* the period's counters afterwards */
    int64_t reserved_cents;
    int64_t hard_limit_cents;
    int64_t soft_limit_cents;
    /* 1 when this settlement took spent to or past the soft limit for the
     * first time in the period: the caller emits budget.soft_limit. */
    int soft_limit_crossed;
    int64_t ledger_seq;
    int64_t event_seq;              /* the terminal event */
};

/* queued or running -> succeeded with cost_cents (>= 0; capped at the
 * estimate), in one transaction: counters, daily and per-spell usage, the
 * spell's averages, the ledger settle entry and the terminal event
 * cast.succeeded.  The inputs are dropped.  STORE_ECONFLICT when the cast
 * already finished. */
int store_cast_settle(struct store *s, const char *cast_id, int64_t cost_cents,
                      const char *artifact_url, int64_t now_ms, struct store_settle_result *out);

/* queued or running -> failed or canceled (status names which), releasing
 * the reservation, with the ledger release entry and the terminal event
 * cast.failed or cast.canceled carrying error {code, message}.  out may be
 * NULL.  STORE_ECONFLICT when the cast already finished. */
int store_cast_release(struct store *s, const char *cast_id, const char *status,
                       const char *error_code, const char *error_message, int64_t now_ms,
                       struct store_settle_result *out);

/* One cast.  With user_id not NULL, a cast of another user is
 * SPELL_ENOTFOUND too. */
int store_cast_get(struct store *s, const char *cast_id, const char *user_id,
                   struct store_cast *out);

/*
 * The user's casts, newest first, limit (1..STORE_LIST_MAX) at a time.
 * cursor is NULL or "" for the first page, else the next_cursor of the
 * page before; next_cursor is set to "" on the last page.  The cursor is
 * opaque to callers; a malformed one is SPELL_EINVAL.  The struct handed
 * to fn is valid during the call only; a nonzero return stops the walk
 * with SPELL_EABORT.
 */
int store_cast_list(struct store *s, const char *user_id, const char *cursor, int limit,
                    int (*fn)(void *ud, const struct store_cast *c), void *ud,
                    char next_cursor[STORE_CURSOR_SIZE]);

/* Every cast still queued or running, oldest first: what a restarted
 * server must re-run or fail. */
int store_casts_unfinished(struct store *s, int (*fn)(void *ud, const struct store_cast *c),
                           void *ud);

/* ---- Cast events ----------------------------------------------------- */

struct store_event {
    char cast_id[STORE_ID_SIZE];
    int64_t seq;                    /* per cast, from 1, gapless */
    char type[STORE_EVENT_TYPE_SIZE];
    const char *data;               /* JSON text, valid during the callback */
    size_t data_len;
    int64_t ts;
};

/* Appends an event (data: JSON text of at most STORE_EVENT_DATA_MAX
 * bytes) and returns its seq, the cast's next one, in *seq (may be NULL). */
int store_event_append(struct store *s, const char *cast_id, const char *type, const char *data,
                       size_t len, int64_t now_ms, int64_t *seq);

/* Calls fn for the cast's events with seq > after_seq, in order, at most
 * limit of them (0 means all).  SPELL_ENOTFOUND when the cast is unknown. */
int store_events_after(struct store *s, const char *cast_id, int64_t after_seq, int limit,
                       int (*fn)(void *ud, const struct store_event *e), void *ud);

/* ---- Ledger ---------------------------------------------------------- */

/*
 * The ledger is append-only with a global gapless seq from 1 and a hash
 * chain.  Entry n's hash is
 *
 *   hash_n = lowercase hex SHA-256 of ( prev_hash_n || canonical_n )
 *
 * where prev_hash_n is hash_(n-1) (64 ASCII '0' for n = 1) as 64 hex
 * characters, and canonical_n is the RFC 8785 canonical JSON of exactly
 *
 *   {"amount_cents": <integer>, "cast_id": <string or null>,
 *    "kind": <string>, "seq": <integer>, "ts": <integer Unix ms>}
 *
 * user_id is deliberately left out: erasure (GDPR) clears it from the
 * user's entries, and the chain must still verify afterwards.  The user
 * link is an index into the ledger, not part of what the ledger proves.
 * A separate head row holds the last seq and hash, so deleting the newest
 * entry is caught too.
 */
struct store_ledger_entry {
    int64_t seq;
    int64_t ts;
    char user_id[STORE_ID_SIZE];    /* "" after erasure */
    char cast_id[STORE_ID_SIZE];    /* "" for none */
    char kind[STORE_WORD_SIZE];     /* reserve, settle, release, invoice, adjust */
    int64_t amount_cents;
    char prev_hash[STORE_HASH_HEX_SIZE];
    char hash[STORE_HASH_HEX_SIZE];
};

/* Appends an invoice or adjust entry (the money paths append their own).
 * user_id and cast_id may be NULL. */
int store_ledger_append(struct store *s, const char *user_id, const char *cast_id,
                        const char *kind, int64_t amount_cents, int64_t now_ms, int64_t *seq);

/* Entries with seq > after_seq in order, at most limit (0 means all). */
int store_ledger_list(struct store *s, int64_t after_seq, int limit,
                      int (*fn)(void *ud, const struct store_ledger_entry *e), void *ud);

/* Walks the whole chain.  SPELL_OK when every seq from 1 is present, each
 * prev_hash is the hash before it and each hash recomputes; SPELL_EVERIFY
 * otherwise with *bad_seq the first seq that is missing or wrong.
 * *checked (may be NULL) receives the number of entries read. */
int store_ledger_verify(struct store *s, int64_t *checked, int64_t *bad_seq);

/* ---- GitHub identities and device grants ----------------------------- */

/*
 * The user signed in as GitHub account github_id.  When the account is
 * linked already, its user's login, name, email and avatar_url are
 * refreshed from u; otherwise u (id, role and created_at included) is
 * created and linked, and *created is set.  STORE_ECONFLICT when the login
 * belongs to another user (a local account is never taken over).
 */
int store_user_upsert_github(struct store *s, int64_t github_id, const struct store_user *u,
                             int64_t now_ms, struct store_user *out, int *created);

#define STORE_USER_CODE_SIZE 9          /* 8 letters A-Z, no dash */
#define STORE_DEVICE_INTERVAL_MAX 300   /* seconds; slow_down stops growing there */

/* A device authorization grant (RFC 8628). */
struct store_device {
    char device_hash[STORE_HASH_HEX_SIZE];  /* SHA-256 hex of the device code */
    char user_code[STORE_USER_CODE_SIZE];
    char status[STORE_WORD_SIZE];   /* pending, approved, denied, consumed */
    char user_id[STORE_ID_SIZE];    /* who approved; "" otherwise */
    int64_t created_at;
    int64_t expires_at;
    int64_t last_poll_at;           /* 0 before the first poll */
    int interval_s;                 /* seconds the client must wait between polls */
};

enum store_device_outcome {
    STORE_DEVICE_PENDING,
    STORE_DEVICE_SLOW_DOWN,     /* polled sooner than interval_s: it grew */
    STORE_DEVICE_EXPIRED,
    STORE_DEVICE_DENIED,
    STORE_DEVICE_APPROVED,      /* spent by this poll: out->user_id is the user */
    STORE_DEVICE_INVALID,       /* unknown, or its approval was handed out already */
};

/* A new pending grant (device_hash, user_code, created_at, expires_at,
 * interval_s are read).  STORE_ECONFLICT when the hash or the user code
 * is taken. */
int store_device_create(struct store *s, const struct store_device *d);
/* The pending, unexpired grant with this user code; SPELL_ENOTFOUND
 * otherwise. */
int store_device_by_user_code(struct store *s, const char *user_code, int64_t now_ms,
                              struct store_device *out);
/* Approves (user_id) or denies (user_id NULL) a pending, unexpired grant;
 * SPELL_ENOTFOUND otherwise (so a user code is used once). */
int store_device_decide(struct store *s, const char *user_code, const char *user_id,
                        int64_t now_ms);
/* One poll of the token endpoint, in one transaction: *outcome says what
 * to answer.  Polling sooner than interval_s after the last poll is
 * SLOW_DOWN and adds slow_down_step_s to the interval (RFC 8628 §3.5). */
int store_device_poll(struct store *s, const char *device_hash, int64_t now_ms,
                      int slow_down_step_s, int *outcome, struct store_device *out);
/* Deletes grants that expired at or before before_ms. */
int store_devices_purge(struct store *s, int64_t before_ms, int64_t *removed);

/* ---- Privacy --------------------------------------------------------- */

/* Everything the platform holds about a user, as one JSON document
 * appended to out (whose cap bounds it: SPELL_ETOOBIG past it): the
 * user, sessions (times only), API keys (no hashes), budgets, usage,
 * casts with their events, idempotency keys and ledger entries. */
int store_user_export(struct store *s, const char *user_id, struct spell_buf *out);

/* Deletes the user and every row about them in one transaction; their
 * ledger entries stay, with the amounts, and lose the user link. */
int store_user_erase(struct store *s, const char *user_id);

/* ---- Billing (Stripe) ------------------------------------------------ */

/*
 * What the platform keeps of a user's billing account at the provider:
 * the customer id (created once), the card on file (brand, last 4, expiry;
 * never the number) and whether an invoice payment failed and no invoice
 * was paid since.  Webhook events are recorded by id in the same
 * transaction as their effect, so each is applied once however often the
 * provider delivers it.  Monthly invoices are recorded per (user, period)
 * with their ledger `invoice` entry in one transaction.
 */
#define STORE_PROVIDER_ID_SIZE 256  /* "cus_...", "pm_...", "evt_...", "in_..." */
#define STORE_BRAND_SIZE 33         /* "visa", "american_express", ... */

struct store_billing {
    char user_id[STORE_ID_SIZE];
    char customer_id[STORE_PROVIDER_ID_SIZE];       /* "" until created */
    /* The card on file; payment_method_id is "" when there is none. */
    char payment_method_id[STORE_PROVIDER_ID_SIZE];
    char brand[STORE_BRAND_SIZE];
    char last4[5];
    int exp_month;
    int exp_year;
    /* 1 from an invoice.payment_failed until the next invoice.paid. */
    int payment_failed;
    int64_t updated_at;
};

/* The user's billing row; SPELL_ENOTFOUND when there is none. */
int store_billing_get(struct store *s, const char *user_id, struct store_billing *out);
/* The billing row holding this customer id; SPELL_ENOTFOUND when none. */
int store_billing_by_customer(struct store *s, const char *customer_id,
                              struct store_billing *out);
/* Records the user's customer id.  Setting the id already recorded is
 * SPELL_OK; another one is STORE_ECONFLICT (a customer is created once);
 * an unknown user SPELL_ENOTFOUND. */
int store_billing_customer_set(struct store *s, const char *user_id, const char *customer_id,
                               int64_t now_ms);

enum store_billing_effect {
    STORE_BILLING_NONE = 0,         /* recorded, nothing else changes */
    /* The card becomes the one on file; when the user never set a limit,
     * the standing hard limit becomes STORE_DEFAULT_HARD_LIMIT_CENTS. */
    STORE_BILLING_CARD_SET = 1,
    /* The card with payment_method_id is no longer on file. */
    STORE_BILLING_CARD_REMOVED = 2,
    STORE_BILLING_PAYMENT_FAILED = 3,
    STORE_BILLING_INVOICE_PAID = 4,
};

struct store_billing_event {
    const char *event_id;           /* the provider's event id */
    const char *type;               /* e.g. "invoice.paid" */
    enum store_billing_effect effect;
    /* Whose account (CARD_SET, PAYMENT_FAILED, INVOICE_PAID); an
     * unknown customer makes the effect a no-op. */
    const char *customer_id;
    /* CARD_SET and CARD_REMOVED. */
    const char *payment_method_id;
    /* CARD_SET. */
    const char *brand;
    const char *last4;
    int exp_month;
    int exp_year;
};

/* 1 in *seen when the event id was recorded before. */
int store_billing_event_seen(struct store *s, const char *event_id, int *seen);
/* Records the event id and applies its effect in one transaction.  An id
 * recorded before: SPELL_OK with *duplicate 1 and nothing changed.
 * *applied (may be NULL) is 1 when the effect changed a billing row. */
int store_billing_event_apply(struct store *s, const struct store_billing_event *ev,
                              int64_t now_ms, int *duplicate, int *applied);

/* The invoice recorded for (user, period): its provider id in out
 * (STORE_PROVIDER_ID_SIZE bytes); SPELL_ENOTFOUND when none. */
int store_billing_invoice_get(struct store *s, const char *user_id, const char *period,
                              char *out);
/* Records (user, period) as invoiced with the provider's invoice id and
 * appends the ledger `invoice` entry of amount_cents, in one transaction;
 * STORE_ECONFLICT when the pair was recorded before. */
int store_billing_invoice_record(struct store *s, const char *user_id, const char *period,
                                 const char *invoice_id, int64_t amount_cents, int64_t now_ms,
                                 int64_t *ledger_seq);
/* Calls fn for every user with spent_cents > 0 in period, by user id; a
 * nonzero return from fn stops the walk with SPELL_EABORT. */
int store_billing_usage_users(struct store *s, const char *period,
                              int (*fn)(void *ud, const char *user_id, int64_t spent_cents),
                              void *ud);

#endif
