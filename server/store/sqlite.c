/*
 * The SQLite implementation of the store (store.h), the embedded default.
 *
 * Connections.  A small pool of connections to one database file in WAL
 * mode, each used by one thread at a time: a caller takes a free
 * connection (waiting when all are out), runs its statements and hands it
 * back.  Readers run side by side.  Writers are serialised twice: by the
 * group commit's queue inside the process (below), so threads wait on a
 * condition instead of spinning in SQLite's busy handler, and write on a
 * connection of their own, outside the pool; and by BEGIN IMMEDIATE, which takes
 * the database's write lock up front and so also orders us against other
 * processes (the command line's `ledger verify`, a second server).  Every
 * connection has foreign keys on, a busy timeout and synchronous=FULL: a
 * reservation the caller has answered 202 for survives a power cut.
 *
 * Statements.  Every statement is a constant in sql_text[] below, prepared
 * once per connection and kept; data only ever reaches SQLite as bound
 * parameters.  The migrations are constant text too, numbered entries in
 * migrations[], applied at open inside one transaction and recorded in
 * schema_migrations.  A database whose highest version is above
 * STORE_SCHEMA_VERSION is refused before anything is written.
 *
 * Decisions this file makes (store.h states the interface):
 *
 *  - Budgets.  budget_standing holds the limit a user set, which stays in
 *    force month after month until changed or cleared; budgets holds one
 *    row per (user, period), written when the user sets a limit and copied
 *    from the limits in force by the period's first reservation.  The
 *    limits of a period are: its own row, else the standing limit, else
 *    the $50 default without a soft limit.
 *  - Periods.  A cast is counted in the period of its reservation, from
 *    reserve to settle or release, even when it finishes in the next
 *    month: reserved_cents must come off the row it was added to.  Its
 *    daily usage row is dated by the settlement but filed under the same
 *    period.
 *  - Settlement.  The charge is the reported cost capped at the estimate
 *    (store.h); the soft limit counts as crossed when spent reaches it, and
 *    usage.soft_notified makes that happen once per user and period.
 *  - Idempotency.  A record expires STORE_IDEM_TTL_MS after it was made:
 *    at now_ms >= created_at + TTL it counts as absent.  A key seen with a
 *    different request hash is a mismatch even while the first request is
 *    in flight.
 *  - Erasure.  The user row goes, and with it (ON DELETE CASCADE) the
 *    sessions, keys, budgets, usage, casts, their events and idempotency
 *    records.  Ledger rows stay with user_id set to NULL; the hash covers
 *    no user link (store.h), so the chain still verifies.  The cast ids in
 *    those rows remain as bare identifiers without a cast behind them.
 *  - Cursor.  The cast list's cursor is "v1:<created_at>:<id>" of the last
 *    cast handed out; paging is by (created_at, id) descending, so casts
 *    made between two pages neither repeat nor shift a page.
 *
 *  - Ledger amounts.  reserve carries the estimate, settle the charge and
 *    release the estimate given back; a settle closes its reservation, so
 *    no separate release follows it.
 *
 *  - Group commit.  Every write (reservations, the cast transitions,
 *    events, ledger entries, idempotency records, any other) joins a
 *    group commit: writes that arrive together share one transaction and
 *    one COMMIT (one fsync), each in its own savepoint, in arrival order,
 *    so it sees what the earlier ones left and a failure takes back only
 *    its own writes; every caller returns after the COMMIT, and a failed
 *    COMMIT fails them all (see write_run).  A write is a function over
 *    the write connection, and one thread, the batch's leader, runs every
 *    write of a batch in a row, so a batch costs its SQL and one COMMIT,
 *    not a wake-up per write.  Waiting writers hold no connection: the
 *    batches write on a connection of their own, so readers never wait
 *    behind the write queue for the pool.
 *
 * Callbacks: respond() of store_cast_reserve() runs inside the batch that
 * carries the reservation, on the thread leading that batch (which may be
 * another caller's), while the store's other writes wait for it; it must
 * not call back into the store nor depend on the thread it runs on.  The
 * walks (key, spell, cast, event and ledger lists) call fn while holding
 * one pooled connection; a nested call takes another, so fn should stay
 * short.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "spell/clock.h"
#include "spell/errors.h"

#include "store-impl.h"

/* Connections in the pool; a ":memory:" database gets one, since each
 * connection to it would be a database of its own. */
#define POOL_SIZE 8

/* Writes one group commit carries at most (see write_run). */
#define WRITE_BATCH_MAX 64

/* How long a connection waits for another process's write lock. */
#define BUSY_TIMEOUT_MS 30000

/* The prev_hash of the first ledger entry. */
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* An event's data as the store writes it is a few short members plus a
 * message and an artifact URL, each capped; 16 KiB is ample. */
#define EVENT_BUILD_MAX (16 * 1024)

/* ---- Schema ---------------------------------------------------------- */

struct migration {
    int version;
    const char *name;
    /* Statements run in order; NULL ends the list. */
    const char *const *sql;
};

static const char *const migration_1[] = {
    "CREATE TABLE users ("
    " id TEXT PRIMARY KEY,"
    " login TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " email TEXT NOT NULL,"
    " avatar_url TEXT NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('caster', 'maker', 'admin')),"
    " created_at INTEGER NOT NULL);",
    "CREATE TABLE sessions ("
    " token_hash TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL);",
    "CREATE INDEX sessions_user ON sessions(user_id);",
    "CREATE INDEX sessions_expiry ON sessions(expires_at);",
    "CREATE TABLE api_keys ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " prefix TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " hash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " last_used_at INTEGER,"
    " revoked_at INTEGER);",
    "CREATE INDEX api_keys_user ON api_keys(user_id, created_at);",
    "CREATE TABLE budget_standing ("
    " user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,"
    " hard_limit_cents INTEGER NOT NULL,"
    " soft_limit_cents INTEGER,"
    " updated_at INTEGER NOT NULL);",
    "CREATE TABLE budgets ("
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " period TEXT NOT NULL,"
    " hard_limit_cents INTEGER NOT NULL,"
    " soft_limit_cents INTEGER,"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (user_id, period));",
    "CREATE TABLE usage ("
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " period TEXT NOT NULL,"
    " spent_cents INTEGER NOT NULL DEFAULT 0,"
    " reserved_cents INTEGER NOT NULL DEFAULT 0,"
    " calls INTEGER NOT NULL DEFAULT 0,"
    " soft_notified INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (user_id, period));",
    "CREATE TABLE usage_daily ("
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " period TEXT NOT NULL,"
    " date TEXT NOT NULL,"
    " spent_cents INTEGER NOT NULL,"
    " calls INTEGER NOT NULL,"
    " PRIMARY KEY (user_id, period, date));",
    "CREATE TABLE usage_spell ("
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " period TEXT NOT NULL,"
    " spell_key TEXT NOT NULL,"
    " spent_cents INTEGER NOT NULL,"
    " calls INTEGER NOT NULL,"
    " PRIMARY KEY (user_id, period, spell_key));",
    "CREATE TABLE spells ("
    " key TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " summary TEXT NOT NULL,"
    " version TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " execution_mode TEXT NOT NULL,"
    " pricing_model TEXT NOT NULL,"
    " flat_cents INTEGER NOT NULL,"
    " base_cents INTEGER NOT NULL,"
    " per_kb_cents INTEGER NOT NULL,"
    " inputs_schema TEXT,"
    " execution TEXT,"
    " avg_cost_cents INTEGER NOT NULL DEFAULT 0,"
    " avg_duration_ms INTEGER NOT NULL DEFAULT 0,"
    " settled_count INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);",
    "CREATE TABLE casts ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " spell_key TEXT NOT NULL,"
    " spell_version TEXT NOT NULL,"
    " mode TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " progress INTEGER NOT NULL,"
    " message TEXT NOT NULL,"
    " input_hash TEXT NOT NULL,"
    " estimated_cost_cents INTEGER NOT NULL,"
    " cost_cents INTEGER,"
    " run_url TEXT,"
    " artifact_url TEXT,"
    " error_code TEXT,"
    " error_message TEXT,"
    " created_at INTEGER NOT NULL,"
    " started_at INTEGER,"
    " finished_at INTEGER,"
    " duration_ms INTEGER,"
    " idempotency_key TEXT,"
    " period TEXT NOT NULL,"
    " inputs TEXT,"
    " last_seq INTEGER NOT NULL);",
    "CREATE INDEX casts_user ON casts(user_id, created_at, id);",
    "CREATE INDEX casts_unfinished ON casts(created_at, id)"
    " WHERE status IN ('queued', 'running');",
    "CREATE TABLE cast_events ("
    " cast_id TEXT NOT NULL REFERENCES casts(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL,"
    " type TEXT NOT NULL,"
    " data TEXT NOT NULL,"
    " ts INTEGER NOT NULL,"
    " PRIMARY KEY (cast_id, seq)) WITHOUT ROWID;",
    "CREATE TABLE idempotency ("
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL,"
    " request_hash TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),"
    " status INTEGER NOT NULL,"
    " body BLOB,"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (user_id, key));",
    "CREATE INDEX idempotency_created ON idempotency(created_at);",
    "CREATE TABLE ledger ("
    " seq INTEGER PRIMARY KEY,"
    " ts INTEGER NOT NULL,"
    " user_id TEXT,"
    " cast_id TEXT,"
    " kind TEXT NOT NULL,"
    " amount_cents INTEGER NOT NULL,"
    " prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL);",
    "CREATE INDEX ledger_user ON ledger(user_id);",
    "CREATE TABLE ledger_head ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " seq INTEGER NOT NULL,"
    " hash TEXT NOT NULL);",
    "INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, '" ZERO_HASH "');",
    NULL,
};

/* Workflow casts (GitHub Actions): the run a cast dispatched, and the
 * webhook deliveries already processed (each X-GitHub-Delivery once). */
static const char *const migration_workflow[] = {
    "ALTER TABLE casts ADD COLUMN run_id INTEGER;",
    "CREATE INDEX casts_run_id ON casts(run_id) WHERE run_id IS NOT NULL;",
    "CREATE TABLE github_deliveries ("
    " id TEXT PRIMARY KEY,"
    " event TEXT NOT NULL,"
    " received_at INTEGER NOT NULL);",
    NULL,
};

/* GitHub sign-in: the GitHub account behind a user, and the device
 * authorization grants of RFC 8628 (device codes kept as SHA-256 hex). */
static const char *const migration_identity[] = {
    "CREATE TABLE github_identities ("
    " github_id INTEGER PRIMARY KEY,"
    " user_id TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,"
    " created_at INTEGER NOT NULL);",
    "CREATE TABLE device_grants ("
    " device_hash TEXT PRIMARY KEY,"
    " user_code TEXT NOT NULL UNIQUE,"
    " status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),"
    " user_id TEXT REFERENCES users(id) ON DELETE CASCADE,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " last_poll_at INTEGER NOT NULL,"
    " interval_s INTEGER NOT NULL);",
    "CREATE INDEX device_grants_expiry ON device_grants(expires_at);",
    NULL,
};

/* Stripe billing: the customer and card on file per user, the webhook
 * events already applied (each event id once) and the invoices made per
 * user and closed period. */
static const char *const migration_billing[] = {
    "CREATE TABLE billing_accounts ("
    " user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,"
    " customer_id TEXT UNIQUE,"
    " payment_method_id TEXT,"
    " brand TEXT,"
    " last4 TEXT,"
    " exp_month INTEGER NOT NULL DEFAULT 0,"
    " exp_year INTEGER NOT NULL DEFAULT 0,"
    " payment_failed INTEGER NOT NULL DEFAULT 0,"
    " updated_at INTEGER NOT NULL);",
    "CREATE INDEX billing_accounts_pm ON billing_accounts(payment_method_id);",
    "CREATE TABLE billing_events ("
    " event_id TEXT PRIMARY KEY,"
    " type TEXT NOT NULL,"
    " processed_at INTEGER NOT NULL);",
    "CREATE TABLE billing_invoices ("
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " period TEXT NOT NULL,"
    " invoice_id TEXT NOT NULL,"
    " amount_cents INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (user_id, period));",
    NULL,
};

/* Workflow dispatch: when the executor first sent a cast's dispatch (NULL
 * while it never did), written before the request leaves, so a restart
 * never sends a second one. */
static const char *const migration_dispatch[] = {
    "ALTER TABLE casts ADD COLUMN dispatched_at INTEGER;",
    NULL,
};

static const struct migration migrations[] = {
    {1, "initial", migration_1},
    {2, "workflow", migration_workflow},
    {3, "identity", migration_identity},
    {4, "billing", migration_billing},
    {5, "dispatch", migration_dispatch},
};

#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

/* ---- Statements ------------------------------------------------------ */

enum st {
    ST_BEGIN,
    ST_BEGIN_IMMEDIATE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_SAVEPOINT_ROLLBACK,
    ST_SAVEPOINT_RELEASE,
    ST_PING,
    ST_SCHEMA_VERSION,
    ST_MIGRATION_INSERT,
    ST_USER_INSERT,
    ST_USER_GET,
    ST_USER_BY_LOGIN,
    ST_USER_EXISTS,
    ST_USER_DELETE,
    ST_SESSION_INSERT,
    ST_SESSION_USER,
    ST_SESSION_DELETE,
    ST_SESSION_PURGE,
    ST_KEY_INSERT,
    ST_KEY_BY_PREFIX,
    ST_KEY_LIST,
    ST_KEY_REVOKE,
    ST_KEY_TOUCH,
    ST_BUDGET_PERIOD_GET,
    ST_BUDGET_STANDING_GET,
    ST_BUDGET_PERIOD_PUT,
    ST_BUDGET_STANDING_PUT,
    ST_BUDGET_PERIOD_DELETE,
    ST_BUDGET_STANDING_DELETE,
    ST_USAGE_GET,
    ST_USAGE_RESERVE,
    ST_USAGE_CLOSE,
    ST_USAGE_SOFT_MARK,
    ST_USAGE_DAILY_ADD,
    ST_USAGE_SPELL_ADD,
    ST_USAGE_DAILY_LIST,
    ST_USAGE_SPELL_LIST,
    ST_SPELL_UPSERT,
    ST_SPELL_GET,
    ST_SPELL_LIST,
    ST_SPELL_AVERAGE,
    ST_IDEM_GET,
    ST_IDEM_PUT,
    ST_IDEM_IN_FLIGHT,
    ST_IDEM_FINISH,
    ST_IDEM_ABANDON,
    ST_IDEM_PURGE,
    ST_IDEM_PUT_DONE,
    ST_CAST_INSERT,
    ST_CAST_GET,
    ST_CAST_LIST_FIRST,
    ST_CAST_LIST_AFTER,
    ST_CAST_UNFINISHED,
    ST_CAST_STATE,
    ST_CAST_START,
    ST_CAST_PROGRESS,
    ST_CAST_RUN_URL,
    ST_CAST_SUCCEED,
    ST_CAST_FAIL,
    ST_CAST_SET_SEQ,
    ST_EVENT_INSERT,
    ST_EVENT_LIST,
    ST_LEDGER_HEAD,
    ST_LEDGER_INSERT,
    ST_LEDGER_HEAD_SET,
    ST_LEDGER_LIST,
    ST_LEDGER_ERASE,
    ST_X_SESSIONS,
    ST_X_BUDGETS,
    ST_X_USAGE,
    ST_X_DAILY,
    ST_X_SPELLS,
    ST_X_CASTS,
    ST_X_IDEM,
    ST_X_LEDGER,
    ST_CAST_RUN_SET,
    ST_CAST_RUN_GET,
    ST_CAST_BY_RUN,
    ST_CAST_DISPATCH_MARK,
    ST_CAST_DISPATCH_GET,
    ST_DELIVERY_SEEN,
    ST_DELIVERY_INSERT,
    ST_BILLING_GET,
    ST_BILLING_BY_CUSTOMER,
    ST_BILLING_CUSTOMER_PUT,
    ST_BILLING_CARD_PUT,
    ST_BILLING_CARD_CLEAR,
    ST_BILLING_FAILED_SET,
    ST_BILLING_DEFAULT_LIMIT,
    ST_BILLING_EVENT_SEEN,
    ST_BILLING_EVENT_INSERT,
    ST_BILLING_INVOICE_GET,
    ST_BILLING_INVOICE_INSERT,
    ST_BILLING_USAGE_USERS,
    ST__COUNT
};

#define USER_COLS "id, login, name, email, avatar_url, role, created_at"
#define KEY_COLS "id, user_id, prefix, name, hash, created_at, last_used_at, revoked_at"
#define SPELL_COLS "key, name, summary, version, status, execution_mode, pricing_model," \
    " flat_cents, base_cents, per_kb_cents, inputs_schema, execution, avg_cost_cents," \
    " avg_duration_ms"
#define CAST_COLS "id, user_id, spell_key, spell_version, mode, status, progress, message," \
    " input_hash, estimated_cost_cents, cost_cents, run_url, artifact_url, error_code," \
    " error_message, created_at, started_at, finished_at, duration_ms, idempotency_key," \
    " period, inputs, last_seq"
#define BILLING_COLS "user_id, customer_id, payment_method_id, brand, last4, exp_month," \
    " exp_year, payment_failed, updated_at"
#define LEDGER_COLS "seq, ts, user_id, cast_id, kind, amount_cents, prev_hash, hash"

static const char *const sql_text[ST__COUNT] = {
    [ST_BILLING_GET] = "SELECT " BILLING_COLS " FROM billing_accounts WHERE user_id = ?",
    [ST_BILLING_BY_CUSTOMER] =
        "SELECT " BILLING_COLS " FROM billing_accounts WHERE customer_id = ?",
    [ST_BILLING_CUSTOMER_PUT] =
        "INSERT INTO billing_accounts (user_id, customer_id, updated_at) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (user_id) DO UPDATE SET customer_id = ?2, updated_at = ?3",
    [ST_BILLING_CARD_PUT] =
        "UPDATE billing_accounts SET payment_method_id = ?, brand = ?, last4 = ?,"
        " exp_month = ?, exp_year = ?, updated_at = ? WHERE customer_id = ?",
    [ST_BILLING_CARD_CLEAR] =
        "UPDATE billing_accounts SET payment_method_id = NULL, brand = NULL, last4 = NULL,"
        " exp_month = 0, exp_year = 0, updated_at = ? WHERE payment_method_id = ?",
    [ST_BILLING_FAILED_SET] =
        "UPDATE billing_accounts SET payment_failed = ?, updated_at = ? WHERE customer_id = ?",
    [ST_BILLING_DEFAULT_LIMIT] =
        "INSERT INTO budget_standing (user_id, hard_limit_cents, soft_limit_cents, updated_at)"
        " VALUES (?, ?, NULL, ?) ON CONFLICT (user_id) DO NOTHING",
    [ST_BILLING_EVENT_SEEN] = "SELECT 1 FROM billing_events WHERE event_id = ?",
    [ST_BILLING_EVENT_INSERT] =
        "INSERT INTO billing_events (event_id, type, processed_at) VALUES (?, ?, ?)",
    [ST_BILLING_INVOICE_GET] =
        "SELECT invoice_id FROM billing_invoices WHERE user_id = ? AND period = ?",
    [ST_BILLING_INVOICE_INSERT] =
        "INSERT INTO billing_invoices (user_id, period, invoice_id, amount_cents, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
    [ST_BILLING_USAGE_USERS] = "SELECT user_id, spent_cents FROM usage"
                               " WHERE period = ? AND spent_cents > 0 ORDER BY user_id",
    [ST_BEGIN] = "BEGIN",
    [ST_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT write",
    [ST_SAVEPOINT_ROLLBACK] = "ROLLBACK TO write",
    [ST_SAVEPOINT_RELEASE] = "RELEASE write",
    [ST_PING] = "SELECT COUNT(*) FROM schema_migrations",
    [ST_SCHEMA_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
    [ST_MIGRATION_INSERT] = "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
    [ST_USER_INSERT] = "INSERT INTO users (" USER_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?)",
    [ST_USER_GET] = "SELECT " USER_COLS " FROM users WHERE id = ?",
    [ST_USER_BY_LOGIN] = "SELECT " USER_COLS " FROM users WHERE login = ?",
    [ST_USER_EXISTS] = "SELECT 1 FROM users WHERE id = ?",
    [ST_USER_DELETE] = "DELETE FROM users WHERE id = ?",
    [ST_SESSION_INSERT] =
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
    [ST_SESSION_USER] =
        "SELECT u.id, u.login, u.name, u.email, u.avatar_url, u.role, u.created_at"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = ? AND s.expires_at > ?",
    [ST_SESSION_DELETE] = "DELETE FROM sessions WHERE token_hash = ?",
    [ST_SESSION_PURGE] = "DELETE FROM sessions WHERE expires_at <= ?",
    [ST_KEY_INSERT] = "INSERT INTO api_keys (" KEY_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_KEY_BY_PREFIX] = "SELECT " KEY_COLS " FROM api_keys WHERE prefix = ?",
    [ST_KEY_LIST] = "SELECT " KEY_COLS " FROM api_keys WHERE user_id = ?"
                    " ORDER BY created_at DESC, id DESC",
    [ST_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = ?"
                      " WHERE user_id = ? AND prefix = ? AND revoked_at IS NULL",
    [ST_KEY_TOUCH] = "UPDATE api_keys SET last_used_at = ? WHERE prefix = ?",
    [ST_BUDGET_PERIOD_GET] =
        "SELECT hard_limit_cents, soft_limit_cents FROM budgets WHERE user_id = ? AND period = ?",
    [ST_BUDGET_STANDING_GET] =
        "SELECT hard_limit_cents, soft_limit_cents FROM budget_standing WHERE user_id = ?",
    [ST_BUDGET_PERIOD_PUT] =
        "INSERT INTO budgets (user_id, period, hard_limit_cents, soft_limit_cents, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, period) DO UPDATE SET"
        " hard_limit_cents = excluded.hard_limit_cents,"
        " soft_limit_cents = excluded.soft_limit_cents, updated_at = excluded.updated_at",
    [ST_BUDGET_STANDING_PUT] =
        "INSERT INTO budget_standing (user_id, hard_limit_cents, soft_limit_cents, updated_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
        " hard_limit_cents = excluded.hard_limit_cents,"
        " soft_limit_cents = excluded.soft_limit_cents, updated_at = excluded.updated_at",
    [ST_BUDGET_PERIOD_DELETE] = "DELETE FROM budgets WHERE user_id = ? AND period = ?",
    [ST_BUDGET_STANDING_DELETE] = "DELETE FROM budget_standing WHERE user_id = ?",
    [ST_USAGE_GET] = "SELECT spent_cents, reserved_cents, calls, soft_notified FROM usage"
                     " WHERE user_id = ? AND period = ?",
    [ST_USAGE_RESERVE] =
        "INSERT INTO usage (user_id, period, reserved_cents) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, period) DO UPDATE SET"
        " reserved_cents = reserved_cents + excluded.reserved_cents",
    [ST_USAGE_CLOSE] =
        "UPDATE usage SET reserved_cents = reserved_cents - ?, spent_cents = spent_cents + ?,"
        " calls = calls + ? WHERE user_id = ? AND period = ?",
    [ST_USAGE_SOFT_MARK] = "UPDATE usage SET soft_notified = 1 WHERE user_id = ? AND period = ?",
    [ST_USAGE_DAILY_ADD] =
        "INSERT INTO usage_daily (user_id, period, date, spent_cents, calls) VALUES (?, ?, ?, ?, 1)"
        " ON CONFLICT (user_id, period, date) DO UPDATE SET"
        " spent_cents = spent_cents + excluded.spent_cents, calls = calls + 1",
    [ST_USAGE_SPELL_ADD] =
        "INSERT INTO usage_spell (user_id, period, spell_key, spent_cents, calls)"
        " VALUES (?, ?, ?, ?, 1) ON CONFLICT (user_id, period, spell_key) DO UPDATE SET"
        " spent_cents = spent_cents + excluded.spent_cents, calls = calls + 1",
    [ST_USAGE_DAILY_LIST] = "SELECT date, spent_cents, calls FROM usage_daily"
                            " WHERE user_id = ? AND period = ? ORDER BY date LIMIT 31",
    [ST_USAGE_SPELL_LIST] = "SELECT spell_key, spent_cents, calls FROM usage_spell"
                            " WHERE user_id = ? AND period = ?"
                            " ORDER BY spent_cents DESC, calls DESC, spell_key LIMIT 101",
    [ST_SPELL_UPSERT] =
        "INSERT INTO spells (key, name, summary, version, status, execution_mode, pricing_model,"
        " flat_cents, base_cents, per_kb_cents, inputs_schema, execution, created_at, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)"
        " ON CONFLICT (key) DO UPDATE SET name = excluded.name, summary = excluded.summary,"
        " version = excluded.version, status = excluded.status,"
        " execution_mode = excluded.execution_mode, pricing_model = excluded.pricing_model,"
        " flat_cents = excluded.flat_cents, base_cents = excluded.base_cents,"
        " per_kb_cents = excluded.per_kb_cents, inputs_schema = excluded.inputs_schema,"
        " execution = excluded.execution, updated_at = excluded.updated_at",
    [ST_SPELL_GET] = "SELECT " SPELL_COLS " FROM spells WHERE key = ?",
    [ST_SPELL_LIST] = "SELECT " SPELL_COLS " FROM spells ORDER BY key",
    [ST_SPELL_AVERAGE] =
        "UPDATE spells SET"
        " avg_cost_cents = (avg_cost_cents * settled_count + ?1) / (settled_count + 1),"
        " avg_duration_ms = (avg_duration_ms * settled_count + ?2) / (settled_count + 1),"
        " settled_count = settled_count + 1 WHERE key = ?3",
    [ST_IDEM_GET] = "SELECT request_hash, state, status, body, created_at FROM idempotency"
                    " WHERE user_id = ? AND key = ?",
    [ST_IDEM_PUT] =
        "INSERT OR REPLACE INTO idempotency"
        " (user_id, key, request_hash, state, status, body, created_at)"
        " VALUES (?, ?, ?, 'in_flight', 0, NULL, ?)",
    [ST_IDEM_IN_FLIGHT] = "SELECT 1 FROM idempotency"
                          " WHERE user_id = ? AND key = ? AND state = 'in_flight'",
    [ST_IDEM_FINISH] = "UPDATE idempotency SET state = 'done', status = ?, body = ?"
                       " WHERE user_id = ? AND key = ? AND state = 'in_flight'",
    [ST_IDEM_ABANDON] = "DELETE FROM idempotency"
                        " WHERE user_id = ? AND key = ? AND state = 'in_flight'",
    [ST_IDEM_PURGE] = "DELETE FROM idempotency WHERE created_at <= ?",
    /* A done record, replacing only an expired one (?7 = now - TTL): no
     * change means a live record holds the key. */
    [ST_IDEM_PUT_DONE] =
        "INSERT INTO idempotency (user_id, key, request_hash, state, status, body, created_at)"
        " VALUES (?1, ?2, ?3, 'done', ?4, ?5, ?6) ON CONFLICT (user_id, key) DO UPDATE SET"
        " request_hash = excluded.request_hash, state = 'done', status = excluded.status,"
        " body = excluded.body, created_at = excluded.created_at"
        " WHERE idempotency.created_at <= ?7",
    [ST_CAST_INSERT] =
        "INSERT INTO casts (id, user_id, spell_key, spell_version, mode, status, progress,"
        " message, input_hash, estimated_cost_cents, created_at, idempotency_key, period,"
        " inputs, last_seq) VALUES (?, ?, ?, ?, ?, 'queued', 0, '', ?, ?, ?, ?, ?, ?, 0)",
    [ST_CAST_GET] = "SELECT " CAST_COLS " FROM casts WHERE id = ?",
    [ST_CAST_LIST_FIRST] = "SELECT " CAST_COLS " FROM casts WHERE user_id = ?"
                           " ORDER BY created_at DESC, id DESC LIMIT ?",
    [ST_CAST_LIST_AFTER] =
        "SELECT " CAST_COLS " FROM casts WHERE user_id = ?1"
        " AND (created_at < ?2 OR (created_at = ?2 AND id < ?3))"
        " ORDER BY created_at DESC, id DESC LIMIT ?4",
    [ST_CAST_UNFINISHED] = "SELECT " CAST_COLS " FROM casts"
                           " WHERE status IN ('queued', 'running') ORDER BY created_at, id",
    [ST_CAST_STATE] =
        "SELECT user_id, status, estimated_cost_cents, period, spell_key, created_at,"
        " started_at, progress, message, last_seq FROM casts WHERE id = ?",
    [ST_CAST_START] = "UPDATE casts SET status = 'running', started_at = ?,"
                      " run_url = COALESCE(?, run_url) WHERE id = ? AND status = 'queued'",
    [ST_CAST_PROGRESS] = "UPDATE casts SET progress = ?, message = ? WHERE id = ?",
    [ST_CAST_RUN_URL] = "UPDATE casts SET run_url = ? WHERE id = ?",
    [ST_CAST_RUN_SET] = "UPDATE casts SET run_id = ?, run_url = COALESCE(?, run_url) WHERE id = ?",
    [ST_CAST_RUN_GET] = "SELECT COALESCE(run_id, 0) FROM casts WHERE id = ?",
    [ST_CAST_BY_RUN] = "SELECT id FROM casts WHERE run_id = ? LIMIT 1",
    [ST_CAST_DISPATCH_MARK] =
        "UPDATE casts SET dispatched_at = ? WHERE id = ? AND dispatched_at IS NULL",
    [ST_CAST_DISPATCH_GET] = "SELECT COALESCE(dispatched_at, 0) FROM casts WHERE id = ?",
    [ST_DELIVERY_SEEN] = "SELECT 1 FROM github_deliveries WHERE id = ?",
    [ST_DELIVERY_INSERT] = "INSERT INTO github_deliveries (id, event, received_at) VALUES (?, ?, ?)",
    [ST_CAST_SUCCEED] =
        "UPDATE casts SET status = 'succeeded', progress = 100, cost_cents = ?,"
        " artifact_url = COALESCE(?, artifact_url), finished_at = ?, duration_ms = ?,"
        " inputs = NULL WHERE id = ?",
    [ST_CAST_FAIL] =
        "UPDATE casts SET status = ?, error_code = ?, error_message = ?, finished_at = ?,"
        " duration_ms = ?, inputs = NULL WHERE id = ?",
    [ST_CAST_SET_SEQ] = "UPDATE casts SET last_seq = ? WHERE id = ?",
    [ST_EVENT_INSERT] = "INSERT INTO cast_events (cast_id, seq, type, data, ts)"
                        " VALUES (?, ?, ?, ?, ?)",
    [ST_EVENT_LIST] = "SELECT seq, type, data, ts FROM cast_events"
                      " WHERE cast_id = ? AND seq > ? ORDER BY seq LIMIT ?",
    [ST_LEDGER_HEAD] = "SELECT seq, hash FROM ledger_head WHERE id = 1",
    [ST_LEDGER_INSERT] = "INSERT INTO ledger (" LEDGER_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_LEDGER_HEAD_SET] = "UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1",
    [ST_LEDGER_LIST] = "SELECT " LEDGER_COLS " FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?",
    [ST_LEDGER_ERASE] = "UPDATE ledger SET user_id = NULL WHERE user_id = ?",
    [ST_X_SESSIONS] = "SELECT created_at, expires_at FROM sessions WHERE user_id = ?"
                      " ORDER BY created_at",
    [ST_X_BUDGETS] = "SELECT period, hard_limit_cents, soft_limit_cents FROM budgets"
                     " WHERE user_id = ? ORDER BY period",
    [ST_X_USAGE] = "SELECT period, spent_cents, reserved_cents, calls FROM usage"
                   " WHERE user_id = ? ORDER BY period",
    [ST_X_DAILY] = "SELECT period, date, spent_cents, calls FROM usage_daily"
                   " WHERE user_id = ? ORDER BY period, date",
    [ST_X_SPELLS] = "SELECT period, spell_key, spent_cents, calls FROM usage_spell"
                    " WHERE user_id = ? ORDER BY period, spell_key",
    [ST_X_CASTS] = "SELECT " CAST_COLS " FROM casts WHERE user_id = ? ORDER BY created_at, id",
    [ST_X_IDEM] = "SELECT key, state, status, created_at FROM idempotency WHERE user_id = ?"
                  " ORDER BY created_at, key",
    [ST_X_LEDGER] = "SELECT " LEDGER_COLS " FROM ledger WHERE user_id = ? ORDER BY seq",
};

/* ---- Connections ----------------------------------------------------- */

struct conn {
    sqlite3 *db;
    /* 1 while a thread holds the connection. */
    int in_use;
    /* Prepared on first use, kept until close. */
    sqlite3_stmt *st[ST__COUNT];
};

/* A write of the store: its statements on the batch's connection c, with
 * its inputs and outputs in arg; returns its outcome.  It runs on the
 * thread leading the batch, inside the write's savepoint. */
typedef int (*write_fn)(struct conn *c, void *arg);

/* A write queued for, or taken into, a group commit; lives on its
 * caller's stack for the length of write_run(), and is not touched by
 * any other thread once its state is WAIT_DONE. */
struct write_wait {
    write_fn fn;
    void *arg;
    int rc;                         /* the write's outcome, then the batch's */
    int state;                      /* WAIT_*, changed under gc_lock */
    pthread_cond_t wake;            /* signalled when state changes */
    struct write_wait *next;
};

/* Queued; handed the lead of the next batch; answered. */
enum { WAIT_QUEUED, WAIT_LEAD, WAIT_DONE };

struct sqlite_store {
    struct store base;              /* first: struct store * points here */
    pthread_mutex_t pool_lock;      /* guards in_use of every connection */
    pthread_cond_t pool_free;       /* signalled when a connection comes back */
    /* Group commit (see write_run): the writes queued for a batch, in
     * arrival order.  The batch under way is its leader's alone. */
    pthread_mutex_t gc_lock;
    pthread_cond_t gc_idle;         /* signalled when busy drops to 0 */
    struct write_wait *gc_head, **gc_tail;
    size_t gc_queued;
    int gc_busy;                    /* a batch is under way, or writes held */
    atomic_long batches;            /* group commits run, for tests */
    atomic_int fail_commits;        /* test hook: commits still to refuse */
    /* The connection of the write batches, outside the pool so a writer
     * never waits for a reader's connection (not opened for ":memory:",
     * whose batches write on the pool's one connection). */
    struct conn writer;
    size_t n_conns;
    struct conn conns[POOL_SIZE];
};

static struct sqlite_store *sq(struct store *s)
{
    return (struct sqlite_store *)s;
}

static int map_rc(int src)
{
    switch (src & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return SPELL_OK;
    case SQLITE_NOMEM:
        return SPELL_ENOMEM;
    case SQLITE_TOOBIG:
        return SPELL_ETOOBIG;
    case SQLITE_CONSTRAINT:
        if (src == SQLITE_CONSTRAINT_FOREIGNKEY)
            return SPELL_ENOTFOUND;
        if (src == SQLITE_CONSTRAINT_UNIQUE || src == SQLITE_CONSTRAINT_PRIMARYKEY)
            return STORE_ECONFLICT;
        return SPELL_EINVAL;
    default:
        return SPELL_EIO;
    }
}

static struct conn *conn_get(struct sqlite_store *ss)
{
    struct conn *c = NULL;
    size_t i;

    pthread_mutex_lock(&ss->pool_lock);
    for (;;) {
        for (i = 0; i < ss->n_conns; i++) {
            if (!ss->conns[i].in_use) {
                c = &ss->conns[i];
                c->in_use = 1;
                break;
            }
        }
        if (c)
            break;
        pthread_cond_wait(&ss->pool_free, &ss->pool_lock);
    }
    pthread_mutex_unlock(&ss->pool_lock);
    return c;
}

static void stmts_reset(struct conn *c)
{
    sqlite3_stmt *st = NULL;

    while ((st = sqlite3_next_stmt(c->db, st)) != NULL) {
        if (sqlite3_stmt_busy(st))
            sqlite3_reset(st);
    }
}

static void conn_put(struct sqlite_store *ss, struct conn *c)
{
    stmts_reset(c);
    /* A transaction left open by a failure path must not leak into the
     * next caller. */
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_lock(&ss->pool_lock);
    c->in_use = 0;
    pthread_cond_signal(&ss->pool_free);
    pthread_mutex_unlock(&ss->pool_lock);
}

/* The connection's statement id, reset and with its bindings cleared. */
static int prep(struct conn *c, enum st id, sqlite3_stmt **out)
{
    int src;

    *out = NULL;
    if (!c->st[id]) {
        src = sqlite3_prepare_v3(c->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT,
                                 &c->st[id], NULL);
        if (src != SQLITE_OK)
            return map_rc(src);
    } else {
        sqlite3_reset(c->st[id]);
        sqlite3_clear_bindings(c->st[id]);
    }
    *out = c->st[id];
    return SPELL_OK;
}

/*
 * Parameters are bound from a format, one letter each:
 *   t  const char *, NULL binds NULL
 *   e  const char *, NULL or "" binds NULL
 *   b  const char *, size_t: text of that length, NULL binds NULL
 *   i  int64_t
 *   z  int64_t, 0 binds NULL
 * The arguments are first collected into an array of struct bind_arg, then
 * bound from it: a write run by another thread (see write_run) carries the
 * array, since a va_list must not be read on another thread.
 */
struct bind_arg {
    const char *s;                  /* t, e, b */
    size_t len;                     /* b */
    int64_t v;                      /* i, z */
};

/* Parameters a statement binds at most; the longest format is the spell
 * upsert's, 13 letters (see sq_spell_upsert).  A longer one is refused
 * with SPELL_EINVAL before anything is bound. */
#define BIND_ARGS_MAX 16

/* Collects the arguments of fmt from ap into args[BIND_ARGS_MAX]. */
static int bind_collect(struct bind_arg *args, const char *fmt, va_list ap)
{
    size_t i;

    for (i = 0; fmt[i]; i++) {
        if (i == BIND_ARGS_MAX)
            return SPELL_EINVAL;
        memset(&args[i], 0, sizeof args[i]);
        switch (fmt[i]) {
        case 't':
        case 'e':
            args[i].s = va_arg(ap, const char *);
            break;
        case 'b':
            args[i].s = va_arg(ap, const char *);
            args[i].len = va_arg(ap, size_t);
            break;
        case 'i':
        case 'z':
            args[i].v = va_arg(ap, int64_t);
            break;
        default:
            return SPELL_EINVAL;
        }
    }
    return SPELL_OK;
}

/* Binds parameters 1.. of st from args, collected for fmt by
 * bind_collect(). */
static int bind_args(sqlite3_stmt *st, const char *fmt, const struct bind_arg *args)
{
    int i, src = SQLITE_OK;
    const struct bind_arg *a;

    for (i = 0; fmt[i] && src == SQLITE_OK; i++) {
        if (i == BIND_ARGS_MAX)
            return SPELL_EINVAL;
        a = &args[i];
        switch (fmt[i]) {
        case 't':
            src = a->s ? sqlite3_bind_text(st, i + 1, a->s, -1, SQLITE_TRANSIENT)
                       : sqlite3_bind_null(st, i + 1);
            break;
        case 'e':
            src = a->s && a->s[0] ? sqlite3_bind_text(st, i + 1, a->s, -1, SQLITE_TRANSIENT)
                                  : sqlite3_bind_null(st, i + 1);
            break;
        case 'b':
            src = a->s ? sqlite3_bind_text64(st, i + 1, a->s, a->len, SQLITE_TRANSIENT,
                                             SQLITE_UTF8)
                       : sqlite3_bind_null(st, i + 1);
            break;
        case 'i':
            src = sqlite3_bind_int64(st, i + 1, a->v);
            break;
        case 'z':
            src = a->v ? sqlite3_bind_int64(st, i + 1, a->v) : sqlite3_bind_null(st, i + 1);
            break;
        default:
            return SPELL_EINVAL;
        }
    }
    return map_rc(src);
}

/* Binds parameters 1.. of st from the arguments of fmt. */
static int bindv(sqlite3_stmt *st, const char *fmt, va_list ap)
{
    struct bind_arg args[BIND_ARGS_MAX];
    int rc;

    if ((rc = bind_collect(args, fmt, ap)) != SPELL_OK)
        return rc;
    return bind_args(st, fmt, args);
}

/* Prepares statement id and binds its parameters (see bindv). */
static int query(struct conn *c, enum st id, sqlite3_stmt **out, const char *fmt, ...)
{
    int rc;
    va_list ap;

    if ((rc = prep(c, id, out)) != SPELL_OK)
        return rc;
    va_start(ap, fmt);
    rc = bindv(*out, fmt, ap);
    va_end(ap);
    return rc;
}

/* 1 for a row, 0 when done, a negative spell_rc on failure. */
static int step(sqlite3_stmt *st)
{
    int src = sqlite3_step(st);

    if (src == SQLITE_ROW)
        return 1;
    if (src == SQLITE_DONE)
        return 0;
    return map_rc(src);
}

/* Runs a statement that returns no rows; *changes (may be NULL) receives
 * the rows it changed. */
static int run(struct conn *c, enum st id, int64_t *changes, const char *fmt, ...)
{
    int rc;
    va_list ap;
    sqlite3_stmt *st;

    if ((rc = prep(c, id, &st)) != SPELL_OK)
        return rc;
    va_start(ap, fmt);
    rc = bindv(st, fmt, ap);
    va_end(ap);
    if (rc != SPELL_OK)
        return rc;
    rc = step(st);
    if (rc > 0)
        rc = SPELL_OK;
    if (rc == SPELL_OK && changes)
        *changes = sqlite3_changes64(c->db);
    sqlite3_reset(st);
    return rc;
}

/* A read transaction, for reads that must see one snapshot. */
static int tx_begin(struct conn *c)
{
    return run(c, ST_BEGIN, NULL, "");
}

/* Ends a read transaction; returns rc. */
static int tx_end(struct conn *c, int rc)
{
    stmts_reset(c);
    if (!sqlite3_get_autocommit(c->db))
        run(c, ST_ROLLBACK, NULL, "");
    return rc;
}

/*
 * Group commit.  Every write transaction of the store goes through
 * write_run(), and writes that arrive together share one transaction and
 * one COMMIT, so one fsync makes them all durable.
 *
 * A write is a function (write_fn) and its argument.  write_run() queues
 * the pair and sleeps on the caller's own condition, holding no
 * connection.  When no batch is under way, the caller leads the next one
 * itself; otherwise the leader of the batch under way hands it the lead
 * when that batch is over.  The leader takes the write connection, opens
 * the transaction (BEGIN IMMEDIATE, which also orders us against other
 * processes) and runs the writes itself, in arrival order, its own first:
 * each inside its own savepoint, so it sees what the earlier ones wrote
 * and a failure takes back only its own writes.  After each one it takes
 * the next queued write into the batch, up to WRITE_BATCH_MAX; when the
 * queue is empty (or the batch full) it commits, gives every member of
 * the batch its outcome and wakes it, and hands the lead to whoever
 * queued meanwhile, which opens the next batch: writes that arrive while
 * a COMMIT is on disk wait for the next one, which is what makes batches
 * grow with the load.  A batch costs one wake-up for its members and one
 * for the next leader, not one per write.
 *
 * Each writer returns only after the COMMIT that carried its write, with
 * its own outcome, or the batch's error when the batch was lost: a failed
 * BEGIN or COMMIT, a savepoint that cannot be made, released or rolled
 * back, or a transaction SQLite rolled back under a write, fails every
 * member of the batch and leaves nothing of any of them.
 */

/* Takes the head of the queue out and returns it (NULL for an empty
 * queue); under gc_lock. */
static struct write_wait *queue_take(struct sqlite_store *ss)
{
    struct write_wait *w = ss->gc_head;

    if (!w)
        return NULL;
    if (!(ss->gc_head = w->next))
        ss->gc_tail = &ss->gc_head;
    ss->gc_queued--;
    w->next = NULL;
    return w;
}

/* Hands the head of the queue the lead of the next batch; under gc_lock,
 * with the queue not empty. */
static void lead_give(struct sqlite_store *ss)
{
    struct write_wait *w = queue_take(ss);

    w->state = WAIT_LEAD;
    pthread_cond_signal(&w->wake);
}

/* Runs the write w inside its own savepoint on c, leaving its outcome in
 * w->rc; returns SPELL_OK, or the error that lost the batch's
 * transaction. */
static int batch_write(struct conn *c, struct write_wait *w)
{
    int rc;

    if ((rc = run(c, ST_SAVEPOINT, NULL, "")) != SPELL_OK) {
        w->rc = rc;
        return rc;
    }
    w->rc = w->fn(c, w->arg);
    stmts_reset(c);
    if (w->rc != SPELL_OK &&
        (sqlite3_get_autocommit(c->db) || run(c, ST_SAVEPOINT_ROLLBACK, NULL, "") != SPELL_OK))
        return SPELL_EIO;
    if (run(c, ST_SAVEPOINT_RELEASE, NULL, "") != SPELL_OK)
        return SPELL_EIO;
    return SPELL_OK;
}

/*
 * Leads one batch whose first write is the leader's own, already out of
 * the queue: runs it and the writes queued behind it, commits, answers
 * every member, and hands the lead on or ends the group commit.  On
 * return first->rc holds the leader's outcome.
 */
static void batch_lead(struct sqlite_store *ss, struct write_wait *first)
{
    struct write_wait *batch[WRITE_BATCH_MAX];
    struct write_wait *w = first;
    struct conn *c;
    size_t i, n = 0;
    int rc;                         /* the batch's transaction: SPELL_OK or lost */

    c = ss->writer.db ? &ss->writer : conn_get(ss);
    rc = run(c, ST_BEGIN_IMMEDIATE, NULL, "");
    for (;;) {
        batch[n++] = w;
        if (rc == SPELL_OK)
            rc = batch_write(c, w);
        else
            w->rc = rc;
        w = NULL;
        if (rc == SPELL_OK && n < WRITE_BATCH_MAX) {
            pthread_mutex_lock(&ss->gc_lock);
            w = queue_take(ss);
            pthread_mutex_unlock(&ss->gc_lock);
        }
        if (!w)
            break;
    }

    stmts_reset(c);
    /* A COMMIT that fails is a database failure for every member,
     * whatever SQLite called it. */
    if (rc == SPELL_OK && (rc = run(c, ST_COMMIT, NULL, "")) != SPELL_OK)
        rc = rc == SPELL_ENOMEM ? rc : SPELL_EIO;
    if (!sqlite3_get_autocommit(c->db))
        run(c, ST_ROLLBACK, NULL, "");
    if (c != &ss->writer)
        conn_put(ss, c);
    atomic_fetch_add(&ss->batches, 1);

    pthread_mutex_lock(&ss->gc_lock);
    /* A member may return as soon as it sees WAIT_DONE (under gc_lock),
     * so nothing of it is touched after its signal. */
    for (i = 0; i < n; i++) {
        struct write_wait *m = batch[i];

        if (rc != SPELL_OK)
            m->rc = rc;
        m->state = WAIT_DONE;
        if (m != first)
            pthread_cond_signal(&m->wake);
    }
    if (ss->gc_head) {
        lead_give(ss);
    } else {
        ss->gc_busy = 0;
        pthread_cond_broadcast(&ss->gc_idle);
    }
    pthread_mutex_unlock(&ss->gc_lock);
}

/*
 * Runs the write fn(c, arg) in a group commit and returns its outcome,
 * once the COMMIT that carried it is done: fn's own result, or the
 * batch's error when the batch was lost (arg's outputs are then not to be
 * trusted).  fn runs on whichever thread leads the batch, this one or
 * another; it must not call back into the store, nor wait for anything
 * the store's callers may hold.
 */
static int write_run(struct sqlite_store *ss, write_fn fn, void *arg)
{
    struct write_wait w;
    int lead, rc;

    memset(&w, 0, sizeof w);
    w.fn = fn;
    w.arg = arg;
    if (pthread_cond_init(&w.wake, NULL) != 0)
        return SPELL_ENOMEM;
    w.state = WAIT_QUEUED;
    pthread_mutex_lock(&ss->gc_lock);
    *ss->gc_tail = &w;
    ss->gc_tail = &w.next;
    ss->gc_queued++;
    if (!ss->gc_busy) {
        ss->gc_busy = 1;
        lead_give(ss);
    }
    while (w.state == WAIT_QUEUED)
        pthread_cond_wait(&w.wake, &ss->gc_lock);
    lead = w.state == WAIT_LEAD;
    pthread_mutex_unlock(&ss->gc_lock);
    if (lead)
        batch_lead(ss, &w);
    rc = w.rc;
    pthread_cond_destroy(&w.wake);
    return rc;
}

/* ---- Columns and checks ---------------------------------------------- */

/* Copies a text column into dst; a value that does not fit was not
 * written by this store and is reported as a database fault. */
static int col_copy(sqlite3_stmt *st, int i, char *dst, size_t size)
{
    const unsigned char *t;
    int n;

    dst[0] = '\0';
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return 0;
    t = sqlite3_column_text(st, i);
    n = sqlite3_column_bytes(st, i);
    if (!t)
        return 1;
    if ((size_t)n >= size)
        return 1;
    memcpy(dst, t, (size_t)n);
    dst[n] = '\0';
    return 0;
}

/* A text column as a heap string (NULL for SQL NULL). */
static int col_dup(sqlite3_stmt *st, int i, char **out)
{
    const unsigned char *t;
    int n;

    *out = NULL;
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return 0;
    t = sqlite3_column_text(st, i);
    n = sqlite3_column_bytes(st, i);
    if (!t)
        return 1;
    *out = malloc((size_t)n + 1);
    if (!*out)
        return 1;
    memcpy(*out, t, (size_t)n);
    (*out)[n] = '\0';
    return 0;
}

/* An integer column, with a value for SQL NULL. */
static int64_t col_i64(sqlite3_stmt *st, int i, int64_t if_null)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? if_null : sqlite3_column_int64(st, i);
}

static int utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0, n, k;
    uint32_t cp;

    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Free text (names, messages, URLs): valid UTF-8 shorter than size. */
static int text_ok(const char *s, size_t size, int may_be_empty)
{
    size_t len;

    if (!s)
        return SPELL_EINVAL;
    len = strnlen(s, size);
    if (len == size)
        return SPELL_ETOOBIG;
    if (len == 0 && !may_be_empty)
        return SPELL_EINVAL;
    return utf8_valid((const unsigned char *)s, len) ? SPELL_OK : SPELL_EINVAL;
}

/* Identifiers and keys: 1..size-1 printable ASCII characters, space
 * allowed only where spaces is set (Idempotency-Key). */
static int word_ok(const char *s, size_t size, int spaces)
{
    size_t len, i;

    if (!s)
        return SPELL_EINVAL;
    len = strnlen(s, size);
    if (len == size)
        return SPELL_ETOOBIG;
    if (len == 0)
        return SPELL_EINVAL;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch > 0x7e || ch < 0x20 || (ch == 0x20 && !spaces))
            return SPELL_EINVAL;
    }
    return SPELL_OK;
}

/* A JSON text of len bytes: at most max, no NUL, valid UTF-8, exactly one
 * JSON value with nothing but white space after it. */
static int json_ok(const char *s, size_t len, size_t max)
{
    cJSON *v;
    const char *end = NULL;

    if (!s)
        return SPELL_EINVAL;
    if (len > max)
        return SPELL_ETOOBIG;
    if (memchr(s, '\0', len) || !utf8_valid((const unsigned char *)s, len))
        return SPELL_EINVAL;
    v = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (!v)
        return SPELL_EINVAL;
    cJSON_Delete(v);
    while (end < s + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    return end == s + len ? SPELL_OK : SPELL_EINVAL;
}

/* A NUL-terminated JSON text as json_ok() checks it. */
static int json_str_ok(const char *s, size_t max)
{
    if (!s)
        return SPELL_EINVAL;
    return json_ok(s, strnlen(s, max + 1), max);
}

static int64_t nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
}

/* ---- Lifecycle ------------------------------------------------------- */

static int conn_open(const char *path, struct conn *c)
{
    int src;

    memset(c, 0, sizeof *c);
    src = sqlite3_open_v2(path, &c->db,
                          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK)
        return src == SQLITE_NOMEM ? SPELL_ENOMEM : SPELL_EIO;
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    if (sqlite3_exec(c->db,
                     "PRAGMA journal_mode = WAL;"
                     "PRAGMA synchronous = FULL;"
                     "PRAGMA foreign_keys = ON;",
                     NULL, NULL, NULL) != SQLITE_OK)
        return SPELL_EIO;
    return SPELL_OK;
}

static void conn_close(struct conn *c)
{
    size_t i;

    for (i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    memset(c, 0, sizeof *c);
}

/* Brings the schema up to STORE_SCHEMA_VERSION; a write (write_fn) with
 * no argument. */
static int migrate_tx(struct conn *c, void *arg)
{
    int rc, row;
    int64_t have = 0;
    size_t i, j;
    sqlite3_stmt *st;

    (void)arg;
    if (sqlite3_exec(c->db,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version INTEGER PRIMARY KEY, name TEXT NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK) {
        rc = SPELL_EIO;
        goto out;
    }
    if ((rc = query(c, ST_SCHEMA_VERSION, &st, "")) != SPELL_OK)
        goto out;
    if ((row = step(st)) < 0) {
        rc = row;
        goto out;
    }
    have = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (have > STORE_SCHEMA_VERSION) {
        rc = STORE_ESCHEMA;
        goto out;
    }
    for (i = 0; i < N_MIGRATIONS; i++) {
        if (migrations[i].version <= have)
            continue;
        for (j = 0; migrations[i].sql[j]; j++) {
            if (sqlite3_exec(c->db, migrations[i].sql[j], NULL, NULL, NULL) != SQLITE_OK) {
                rc = SPELL_EIO;
                goto out;
            }
        }
        rc = run(c, ST_MIGRATION_INSERT, NULL, "it", (int64_t)migrations[i].version,
                 migrations[i].name);
        if (rc != SPELL_OK)
            goto out;
    }
    rc = SPELL_OK;
out:
    return rc;
}

/* Brings the schema up to STORE_SCHEMA_VERSION in one transaction. */
static int migrate(struct sqlite_store *ss)
{
    return write_run(ss, migrate_tx, NULL);
}

static void sq_close(struct store *s)
{
    struct sqlite_store *ss = sq(s);
    size_t i;

    for (i = 0; i < ss->n_conns; i++)
        conn_close(&ss->conns[i]);
    pthread_mutex_destroy(&ss->pool_lock);
    pthread_cond_destroy(&ss->pool_free);
    if (ss->writer.db)
        conn_close(&ss->writer);
    pthread_mutex_destroy(&ss->gc_lock);
    pthread_cond_destroy(&ss->gc_idle);
    free(ss);
}

/*
 * The database answers when a real table can be read and the file at the
 * configured path is still the one the connection opened: a database that
 * was deleted, moved away or replaced underneath the server keeps
 * answering through the open descriptor, but nothing written now would be
 * found at the next start, so that counts as down (SQLITE_FCNTL_HAS_MOVED;
 * an in-memory database has no file and never moves).
 */
static int sq_ping(struct store *s)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c = conn_get(ss);
    sqlite3_stmt *st;
    int moved = 0, rc;

    if ((rc = query(c, ST_PING, &st, "")) == SPELL_OK)
        rc = step(st) == 1 ? SPELL_OK : SPELL_EIO;
    if (rc == SPELL_OK &&
        sqlite3_file_control(c->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK &&
        moved)
        rc = SPELL_EIO;
    conn_put(ss, c);
    return rc;
}

static int sq_schema_version(struct store *s, int *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    *out = 0;
    c = conn_get(ss);
    if ((rc = query(c, ST_SCHEMA_VERSION, &st, "")) == SPELL_OK) {
        rc = step(st);
        if (rc == 1) {
            *out = (int)sqlite3_column_int64(st, 0);
            rc = SPELL_OK;
        } else if (rc == 0) {
            rc = SPELL_EIO;
        }
    }
    conn_put(ss, c);
    return rc;
}

/* ---- Users, sessions, API keys --------------------------------------- */

static int user_ok(const struct store_user *u)
{
    int rc;

    if (!u)
        return SPELL_EINVAL;
    if ((rc = word_ok(u->id, sizeof u->id, 0)) != SPELL_OK ||
        (rc = word_ok(u->login, sizeof u->login, 0)) != SPELL_OK ||
        (rc = text_ok(u->name, sizeof u->name, 1)) != SPELL_OK ||
        (rc = text_ok(u->email, sizeof u->email, 1)) != SPELL_OK ||
        (rc = text_ok(u->avatar_url, sizeof u->avatar_url, 1)) != SPELL_OK ||
        (rc = word_ok(u->role, sizeof u->role, 0)) != SPELL_OK)
        return rc;
    if (strcmp(u->role, "caster") != 0 && strcmp(u->role, "maker") != 0 &&
        strcmp(u->role, "admin") != 0)
        return SPELL_EINVAL;
    return u->created_at < 0 ? SPELL_EINVAL : SPELL_OK;
}

static int user_row(sqlite3_stmt *st, struct store_user *u)
{
    int bad = 0;

    bad |= col_copy(st, 0, u->id, sizeof u->id);
    bad |= col_copy(st, 1, u->login, sizeof u->login);
    bad |= col_copy(st, 2, u->name, sizeof u->name);
    bad |= col_copy(st, 3, u->email, sizeof u->email);
    bad |= col_copy(st, 4, u->avatar_url, sizeof u->avatar_url);
    bad |= col_copy(st, 5, u->role, sizeof u->role);
    u->created_at = sqlite3_column_int64(st, 6);
    return bad ? SPELL_EIO : SPELL_OK;
}

/* A write of one statement: the statement, its format and the collected
 * arguments (see bind_collect); changes receives the rows it changed. */
struct write1_args {
    enum st id;
    const char *fmt;
    struct bind_arg args[BIND_ARGS_MAX];
    int64_t changes;
};

static int write1_tx(struct conn *c, void *arg)
{
    struct write1_args *a = arg;
    sqlite3_stmt *st;
    int rc;

    if ((rc = prep(c, a->id, &st)) == SPELL_OK)
        rc = bind_args(st, a->fmt, a->args);
    if (rc == SPELL_OK) {
        rc = step(st);
        if (rc > 0)
            rc = SPELL_OK;
        if (rc == SPELL_OK)
            a->changes = sqlite3_changes64(c->db);
    }
    return rc;
}

/* Runs a write of one statement in a group commit; the arguments of fmt
 * (see bindv) are collected here, on the caller's thread, since the write
 * may run on another. */
static int write1(struct sqlite_store *ss, enum st id, int64_t *changes, const char *fmt, ...)
{
    struct write1_args a;
    va_list ap;
    int rc;

    a.id = id;
    a.fmt = fmt;
    a.changes = 0;
    va_start(ap, fmt);
    rc = bind_collect(a.args, fmt, ap);
    va_end(ap);
    if (rc == SPELL_OK)
        rc = write_run(ss, write1_tx, &a);
    if (changes)
        *changes = a.changes;
    return rc;
}

static int sq_user_create(struct store *s, const struct store_user *u)
{
    int rc;

    if ((rc = user_ok(u)) != SPELL_OK)
        return rc;
    return write1(sq(s), ST_USER_INSERT, NULL, "tttttti", u->id,
                  u->login, u->name, u->email, u->avatar_url, u->role, u->created_at);
}

/* Reads the one user a prepared, bound statement finds. */
static int user_fetch(struct sqlite_store *ss, struct conn *c, sqlite3_stmt *st,
                      struct store_user *out)
{
    int rc = step(st);

    if (rc == 0)
        rc = SPELL_ENOTFOUND;
    else if (rc == 1)
        rc = user_row(st, out);
    if (rc != SPELL_OK)
        memset(out, 0, sizeof *out);
    conn_put(ss, c);
    return rc;
}

static int sq_user_get(struct store *s, const char *user_id, struct store_user *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, ST_USER_GET, &st, "t", user_id)) != SPELL_OK) {
        conn_put(ss, c);
        return rc;
    }
    return user_fetch(ss, c, st, out);
}

static int sq_user_by_login(struct store *s, const char *login, struct store_user *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = word_ok(login, STORE_LOGIN_SIZE, 0)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, ST_USER_BY_LOGIN, &st, "t", login)) != SPELL_OK) {
        conn_put(ss, c);
        return rc;
    }
    return user_fetch(ss, c, st, out);
}

static int hash_ok(const char *h)
{
    size_t i;

    if (!h || strnlen(h, STORE_HASH_HEX_SIZE) != STORE_HASH_HEX_SIZE - 1)
        return SPELL_EINVAL;
    for (i = 0; i < STORE_HASH_HEX_SIZE - 1; i++) {
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return SPELL_EINVAL;
    }
    return SPELL_OK;
}

static int sq_session_create(struct store *s, const char *token_sha256_hex, const char *user_id,
                             int64_t now_ms, int64_t expires_at)
{
    int rc;

    if ((rc = hash_ok(token_sha256_hex)) != SPELL_OK ||
        (rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if (now_ms < 0 || expires_at <= now_ms)
        return SPELL_EINVAL;
    return write1(sq(s), ST_SESSION_INSERT, NULL, "ttii", token_sha256_hex, user_id, now_ms,
                  expires_at);
}

static int sq_session_user(struct store *s, const char *token_sha256_hex, int64_t now_ms,
                           struct store_user *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = hash_ok(token_sha256_hex)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, ST_SESSION_USER, &st, "ti", token_sha256_hex, now_ms)) != SPELL_OK) {
        conn_put(ss, c);
        return rc;
    }
    return user_fetch(ss, c, st, out);
}

static int sq_session_delete(struct store *s, const char *token_sha256_hex)
{
    int64_t n = 0;
    int rc;

    if ((rc = hash_ok(token_sha256_hex)) != SPELL_OK)
        return rc;
    rc = write1(sq(s), ST_SESSION_DELETE, &n, "t", token_sha256_hex);
    return rc == SPELL_OK && n == 0 ? SPELL_ENOTFOUND : rc;
}

static int sq_sessions_purge(struct store *s, int64_t now_ms, int64_t *removed)
{
    int64_t n = 0;
    int rc = write1(sq(s), ST_SESSION_PURGE, &n, "i", now_ms);

    if (removed)
        *removed = rc == SPELL_OK ? n : 0;
    return rc;
}

static int key_ok(const struct store_key *k)
{
    int rc;

    if (!k)
        return SPELL_EINVAL;
    if ((rc = word_ok(k->id, sizeof k->id, 0)) != SPELL_OK ||
        (rc = word_ok(k->user_id, sizeof k->user_id, 0)) != SPELL_OK ||
        (rc = word_ok(k->prefix, sizeof k->prefix, 0)) != SPELL_OK ||
        (rc = text_ok(k->name, sizeof k->name, 1)) != SPELL_OK ||
        (rc = word_ok(k->hash, sizeof k->hash, 0)) != SPELL_OK)
        return rc;
    return k->created_at < 0 || k->last_used_at < 0 || k->revoked_at < 0 ? SPELL_EINVAL
                                                                          : SPELL_OK;
}

static int key_row(sqlite3_stmt *st, struct store_key *k)
{
    int bad = 0;

    memset(k, 0, sizeof *k);
    bad |= col_copy(st, 0, k->id, sizeof k->id);
    bad |= col_copy(st, 1, k->user_id, sizeof k->user_id);
    bad |= col_copy(st, 2, k->prefix, sizeof k->prefix);
    bad |= col_copy(st, 3, k->name, sizeof k->name);
    bad |= col_copy(st, 4, k->hash, sizeof k->hash);
    k->created_at = sqlite3_column_int64(st, 5);
    k->last_used_at = col_i64(st, 6, 0);
    k->revoked_at = col_i64(st, 7, 0);
    return bad ? SPELL_EIO : SPELL_OK;
}

static int sq_key_create(struct store *s, const struct store_key *k)
{
    int rc;

    if ((rc = key_ok(k)) != SPELL_OK)
        return rc;
    return write1(sq(s), ST_KEY_INSERT, NULL, "tttttizz", k->id, k->user_id, k->prefix, k->name,
                  k->hash, k->created_at, k->last_used_at, k->revoked_at);
}

static int sq_key_by_prefix(struct store *s, const char *prefix, struct store_key *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = word_ok(prefix, STORE_KEY_PREFIX_SIZE, 0)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, ST_KEY_BY_PREFIX, &st, "t", prefix)) == SPELL_OK) {
        rc = step(st);
        if (rc == 0)
            rc = SPELL_ENOTFOUND;
        else if (rc == 1)
            rc = key_row(st, out);
    }
    if (rc != SPELL_OK)
        memset(out, 0, sizeof *out);
    conn_put(ss, c);
    return rc;
}

static int sq_key_list(struct store *s, const char *user_id,
                       int (*fn)(void *ud, const struct store_key *k), void *ud)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    struct store_key k;
    int rc;

    if (!fn)
        return SPELL_EINVAL;
    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, ST_KEY_LIST, &st, "t", user_id)) != SPELL_OK)
        goto out;
    while ((rc = step(st)) == 1) {
        if ((rc = key_row(st, &k)) != SPELL_OK)
            goto out;
        if (fn(ud, &k) != 0) {
            rc = SPELL_EABORT;
            goto out;
        }
    }
out:
    conn_put(ss, c);
    return rc;
}

static int sq_key_revoke(struct store *s, const char *user_id, const char *prefix,
                         int64_t now_ms)
{
    int64_t n = 0;
    int rc;

    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = word_ok(prefix, STORE_KEY_PREFIX_SIZE, 0)) != SPELL_OK)
        return rc;
    if (now_ms <= 0)
        return SPELL_EINVAL;
    rc = write1(sq(s), ST_KEY_REVOKE, &n, "itt", now_ms, user_id, prefix);
    return rc == SPELL_OK && n == 0 ? SPELL_ENOTFOUND : rc;
}

static int sq_key_touch(struct store *s, const char *prefix, int64_t now_ms)
{
    int64_t n = 0;
    int rc;

    if ((rc = word_ok(prefix, STORE_KEY_PREFIX_SIZE, 0)) != SPELL_OK)
        return rc;
    if (now_ms <= 0)
        return SPELL_EINVAL;
    rc = write1(sq(s), ST_KEY_TOUCH, &n, "it", now_ms, prefix);
    return rc == SPELL_OK && n == 0 ? SPELL_ENOTFOUND : rc;
}

/* ---- Budgets and usage ----------------------------------------------- */

static int period_ok(const char *period)
{
    if (!period || strnlen(period, STORE_PERIOD_SIZE) != STORE_PERIOD_SIZE - 1)
        return SPELL_EINVAL;
    return spell_period_parse(period, NULL, NULL);
}

/* 1 when the user exists, 0 when not, a negative spell_rc on failure. */
static int user_exists(struct conn *c, const char *user_id)
{
    sqlite3_stmt *st;
    int rc;

    if ((rc = query(c, ST_USER_EXISTS, &st, "t", user_id)) != SPELL_OK)
        return rc;
    rc = step(st);
    sqlite3_reset(st);
    return rc;
}

/* The limits in force for user and period (see the top of the file). */
static int limits_get(struct conn *c, const char *user_id, const char *period,
                      struct store_budget *out)
{
    sqlite3_stmt *st;
    int rc;

    memset(out, 0, sizeof *out);
    memcpy(out->period, period, STORE_PERIOD_SIZE);
    if ((rc = query(c, ST_BUDGET_PERIOD_GET, &st, "tt", user_id, period)) != SPELL_OK)
        return rc;
    if ((rc = step(st)) == 1) {
        out->hard_limit_cents = sqlite3_column_int64(st, 0);
        out->soft_limit_cents = col_i64(st, 1, -1);
        out->source = STORE_BUDGET_PERIOD;
        sqlite3_reset(st);
        return SPELL_OK;
    }
    sqlite3_reset(st);
    if (rc < 0)
        return rc;
    if ((rc = query(c, ST_BUDGET_STANDING_GET, &st, "t", user_id)) != SPELL_OK)
        return rc;
    if ((rc = step(st)) == 1) {
        out->hard_limit_cents = sqlite3_column_int64(st, 0);
        out->soft_limit_cents = col_i64(st, 1, -1);
        out->source = STORE_BUDGET_STANDING;
        sqlite3_reset(st);
        return SPELL_OK;
    }
    sqlite3_reset(st);
    if (rc < 0)
        return rc;
    out->hard_limit_cents = STORE_DEFAULT_HARD_LIMIT_CENTS;
    out->soft_limit_cents = -1;
    out->source = STORE_BUDGET_DEFAULT;
    return SPELL_OK;
}

struct counters {
    int64_t spent;
    int64_t reserved;
    int64_t calls;
    int soft_notified;
};

/* The usage row of user and period; all zeros when there is none. */
static int counters_get(struct conn *c, const char *user_id, const char *period,
                        struct counters *out)
{
    sqlite3_stmt *st;
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = query(c, ST_USAGE_GET, &st, "tt", user_id, period)) != SPELL_OK)
        return rc;
    if ((rc = step(st)) == 1) {
        out->spent = sqlite3_column_int64(st, 0);
        out->reserved = sqlite3_column_int64(st, 1);
        out->calls = sqlite3_column_int64(st, 2);
        out->soft_notified = sqlite3_column_int(st, 3) != 0;
        rc = SPELL_OK;
    }
    sqlite3_reset(st);
    return rc;
}

static int sq_budget_get(struct store *s, const char *user_id, const char *period,
                         struct store_budget *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = period_ok(period)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = tx_begin(c)) != SPELL_OK)
        goto out;
    rc = user_exists(c, user_id);
    if (rc == 0)
        rc = SPELL_ENOTFOUND;
    else if (rc == 1)
        rc = limits_get(c, user_id, period, out);
    rc = tx_end(c, rc);
out:
    if (rc != SPELL_OK)
        memset(out, 0, sizeof *out);
    conn_put(ss, c);
    return rc;
}

struct budget_set_args {
    const char *user_id;
    const char *period;
    int64_t hard_limit_cents;
    int64_t soft_limit_cents;
    int64_t now_ms;
};

static int budget_set_tx(struct conn *c, void *arg)
{
    const struct budget_set_args *a = arg;
    int rc;

    /* NULL for "no soft limit": -1 never reaches a row. */
    if (a->soft_limit_cents < 0) {
        if ((rc = run(c, ST_BUDGET_STANDING_PUT, NULL, "titi",
                      a->user_id, a->hard_limit_cents, NULL, a->now_ms)) == SPELL_OK)
            rc = run(c, ST_BUDGET_PERIOD_PUT, NULL, "ttiti", a->user_id, a->period,
                     a->hard_limit_cents, NULL, a->now_ms);
    } else {
        if ((rc = run(c, ST_BUDGET_STANDING_PUT, NULL, "tiii", a->user_id, a->hard_limit_cents,
                      a->soft_limit_cents, a->now_ms)) == SPELL_OK)
            rc = run(c, ST_BUDGET_PERIOD_PUT, NULL, "ttiii", a->user_id, a->period,
                     a->hard_limit_cents, a->soft_limit_cents, a->now_ms);
    }
    return rc;
}

static int sq_budget_set(struct store *s, const char *user_id, const char *period,
                         int64_t hard_limit_cents, int64_t soft_limit_cents, int64_t now_ms)
{
    struct budget_set_args a = {user_id, period, hard_limit_cents, soft_limit_cents, now_ms};
    int rc;

    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = period_ok(period)) != SPELL_OK)
        return rc;
    if (hard_limit_cents < 0 || soft_limit_cents < -1 || soft_limit_cents > hard_limit_cents)
        return SPELL_EINVAL;
    return write_run(sq(s), budget_set_tx, &a);
}

struct budget_clear_args {
    const char *user_id;
    const char *period;
};

static int budget_clear_tx(struct conn *c, void *arg)
{
    const struct budget_clear_args *a = arg;
    int rc = user_exists(c, a->user_id);

    if (rc == 0)
        rc = SPELL_ENOTFOUND;
    else if (rc == 1 &&
             (rc = run(c, ST_BUDGET_STANDING_DELETE, NULL, "t", a->user_id)) == SPELL_OK)
        rc = run(c, ST_BUDGET_PERIOD_DELETE, NULL, "tt", a->user_id, a->period);
    return rc;
}

static int sq_budget_clear(struct store *s, const char *user_id, const char *period)
{
    struct budget_clear_args a = {user_id, period};
    int rc;

    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = period_ok(period)) != SPELL_OK)
        return rc;
    return write_run(sq(s), budget_clear_tx, &a);
}

static int sq_usage_get(struct store *s, const char *user_id, const char *period,
                        struct store_usage *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    struct counters k;
    sqlite3_stmt *st;
    int rc, bad = 0;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = period_ok(period)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = tx_begin(c)) != SPELL_OK)
        goto out;
    rc = user_exists(c, user_id);
    if (rc == 0)
        rc = SPELL_ENOTFOUND;
    if (rc < 0)
        goto end;
    if ((rc = limits_get(c, user_id, period, &out->budget)) != SPELL_OK ||
        (rc = counters_get(c, user_id, period, &k)) != SPELL_OK)
        goto end;
    out->calls = k.calls;
    out->spent_cents = k.spent;
    out->reserved_cents = k.reserved;
    out->remaining_cents = nonneg(out->budget.hard_limit_cents - k.spent - k.reserved);
    if ((rc = query(c, ST_USAGE_DAILY_LIST, &st, "tt", user_id, period)) != SPELL_OK)
        goto end;
    while ((rc = step(st)) == 1 && out->n_daily < STORE_USAGE_DAYS_MAX) {
        struct store_usage_day *d = &out->daily[out->n_daily++];
        bad |= col_copy(st, 0, d->date, sizeof d->date);
        d->spent_cents = sqlite3_column_int64(st, 1);
        d->calls = sqlite3_column_int64(st, 2);
    }
    if (rc < 0)
        goto end;
    if ((rc = query(c, ST_USAGE_SPELL_LIST, &st, "tt", user_id, period)) != SPELL_OK)
        goto end;
    while ((rc = step(st)) == 1) {
        struct store_usage_spell *u;
        if (out->n_by_spell == STORE_USAGE_SPELLS_MAX) {
            out->by_spell_truncated = 1;
            continue;
        }
        u = &out->by_spell[out->n_by_spell++];
        bad |= col_copy(st, 0, u->spell_key, sizeof u->spell_key);
        u->spent_cents = sqlite3_column_int64(st, 1);
        u->calls = sqlite3_column_int64(st, 2);
    }
    if (rc == 0)
        rc = bad ? SPELL_EIO : SPELL_OK;
end:
    rc = tx_end(c, rc);
out:
    if (rc != SPELL_OK)
        memset(out, 0, sizeof *out);
    conn_put(ss, c);
    return rc;
}

/* ---- Spells ---------------------------------------------------------- */

static int spell_ok(const struct store_spell *sp)
{
    int rc;

    if (!sp)
        return SPELL_EINVAL;
    if ((rc = word_ok(sp->key, sizeof sp->key, 0)) != SPELL_OK ||
        (rc = text_ok(sp->name, sizeof sp->name, 0)) != SPELL_OK ||
        (rc = text_ok(sp->summary, sizeof sp->summary, 1)) != SPELL_OK ||
        (rc = word_ok(sp->version, sizeof sp->version, 0)) != SPELL_OK ||
        (rc = word_ok(sp->status, sizeof sp->status, 0)) != SPELL_OK ||
        (rc = word_ok(sp->execution_mode, sizeof sp->execution_mode, 0)) != SPELL_OK ||
        (rc = word_ok(sp->pricing_model, sizeof sp->pricing_model, 0)) != SPELL_OK)
        return rc;
    if (sp->inputs_schema && (rc = json_str_ok(sp->inputs_schema, STORE_JSON_MAX)) != SPELL_OK)
        return rc;
    if (sp->execution && (rc = json_str_ok(sp->execution, STORE_JSON_MAX)) != SPELL_OK)
        return rc;
    if (sp->flat_cents < 0 || sp->base_cents < 0 || sp->per_kb_cents < 0)
        return SPELL_EINVAL;
    return SPELL_OK;
}

static int spell_row(sqlite3_stmt *st, struct store_spell *sp)
{
    int bad = 0;

    memset(sp, 0, sizeof *sp);
    bad |= col_copy(st, 0, sp->key, sizeof sp->key);
    bad |= col_copy(st, 1, sp->name, sizeof sp->name);
    bad |= col_copy(st, 2, sp->summary, sizeof sp->summary);
    bad |= col_copy(st, 3, sp->version, sizeof sp->version);
    bad |= col_copy(st, 4, sp->status, sizeof sp->status);
    bad |= col_copy(st, 5, sp->execution_mode, sizeof sp->execution_mode);
    bad |= col_copy(st, 6, sp->pricing_model, sizeof sp->pricing_model);
    sp->flat_cents = sqlite3_column_int64(st, 7);
    sp->base_cents = sqlite3_column_int64(st, 8);
    sp->per_kb_cents = sqlite3_column_int64(st, 9);
    bad |= col_dup(st, 10, &sp->inputs_schema);
    bad |= col_dup(st, 11, &sp->execution);
    sp->avg_cost_cents = sqlite3_column_int64(st, 12);
    sp->avg_duration_ms = sqlite3_column_int64(st, 13);
    if (bad) {
        store_spell_clear(sp);
        return SPELL_ENOMEM;
    }
    return SPELL_OK;
}

/* The longest format of the file: what BIND_ARGS_MAX must hold. */
#define SPELL_UPSERT_FMT "tttttttiiitti"
_Static_assert(sizeof SPELL_UPSERT_FMT - 1 <= BIND_ARGS_MAX,
               "BIND_ARGS_MAX must hold the spell upsert's parameters");

static int sq_spell_upsert(struct store *s, const struct store_spell *sp, int64_t now_ms)
{
    int rc;

    if ((rc = spell_ok(sp)) != SPELL_OK)
        return rc;
    return write1(sq(s), ST_SPELL_UPSERT, NULL, SPELL_UPSERT_FMT, sp->key, sp->name, sp->summary,
                  sp->version, sp->status, sp->execution_mode, sp->pricing_model, sp->flat_cents,
                  sp->base_cents, sp->per_kb_cents, sp->inputs_schema, sp->execution, now_ms);
}

static int sq_spell_get(struct store *s, const char *key, struct store_spell *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = word_ok(key, STORE_SPELL_KEY_SIZE, 0)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, ST_SPELL_GET, &st, "t", key)) == SPELL_OK) {
        rc = step(st);
        if (rc == 0)
            rc = SPELL_ENOTFOUND;
        else if (rc == 1)
            rc = spell_row(st, out);
    }
    conn_put(ss, c);
    return rc;
}

static int sq_spell_list(struct store *s, int (*fn)(void *ud, const struct store_spell *sp),
                         void *ud)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    struct store_spell sp;
    int rc, stop;

    if (!fn)
        return SPELL_EINVAL;
    c = conn_get(ss);
    if ((rc = query(c, ST_SPELL_LIST, &st, "")) != SPELL_OK)
        goto out;
    while ((rc = step(st)) == 1) {
        if ((rc = spell_row(st, &sp)) != SPELL_OK)
            goto out;
        stop = fn(ud, &sp);
        store_spell_clear(&sp);
        if (stop) {
            rc = SPELL_EABORT;
            goto out;
        }
    }
out:
    conn_put(ss, c);
    return rc;
}

/* ---- Idempotency ----------------------------------------------------- */

static int idem_args_ok(const char *user_id, const char *key)
{
    int rc;

    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    return word_ok(key, STORE_IDEM_KEY_SIZE, 1);
}

/* Reads the live record of (user, key) into out: 1 when there is one
 * (out->state REPLAY, MISMATCH or IN_FLIGHT), 0 when there is none or it
 * expired at now_ms, a negative spell_rc on failure. */
static int idem_read(struct conn *c, const char *user_id, const char *key,
                     const char *request_hash, int64_t now_ms, struct store_idem *out)
{
    sqlite3_stmt *st;
    char have_hash[STORE_HASH_HEX_SIZE];
    int rc, done;

    if ((rc = query(c, ST_IDEM_GET, &st, "tt", user_id, key)) != SPELL_OK)
        return rc;
    if ((rc = step(st)) != 1)
        goto out;
    if (now_ms >= sqlite3_column_int64(st, 4) + STORE_IDEM_TTL_MS) {
        rc = 0;
        goto out;
    }
    if (col_copy(st, 0, have_hash, sizeof have_hash)) {
        rc = SPELL_EIO;
        goto out;
    }
    done = strcmp((const char *)sqlite3_column_text(st, 1), "done") == 0;
    if (strcmp(have_hash, request_hash) != 0) {
        out->state = STORE_IDEM_MISMATCH;
    } else if (!done) {
        out->state = STORE_IDEM_IN_FLIGHT;
    } else {
        out->state = STORE_IDEM_REPLAY;
        out->status = sqlite3_column_int(st, 2);
        if (col_dup(st, 3, &out->body) || (!out->body && !(out->body = calloc(1, 1)))) {
            rc = SPELL_ENOMEM;
            goto out;
        }
        out->body_len = strlen(out->body);
    }
    rc = 1;
out:
    sqlite3_reset(st);
    return rc;
}

static int idem_lookup_ok(const char *user_id, const char *key, const char *request_hash,
                          int64_t now_ms, struct store_idem *out)
{
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = idem_args_ok(user_id, key)) != SPELL_OK ||
        (rc = word_ok(request_hash, STORE_HASH_HEX_SIZE, 0)) != SPELL_OK)
        return rc;
    return now_ms < 0 ? SPELL_EINVAL : SPELL_OK;
}

/* The arguments of an idempotency write; out receives the record. */
struct idem_args {
    const char *user_id;
    const char *key;
    const char *request_hash;
    int64_t now_ms;
    int status;                     /* idem_put's answer */
    const char *body;
    size_t len;
    struct store_idem *out;
};

static int idem_begin_tx(struct conn *c, void *arg)
{
    const struct idem_args *a = arg;
    int rc;

    if ((rc = idem_read(c, a->user_id, a->key, a->request_hash, a->now_ms, a->out)) != 0)
        return rc > 0 ? SPELL_OK : rc;
    a->out->state = STORE_IDEM_NEW;
    return run(c, ST_IDEM_PUT, NULL, "ttti", a->user_id, a->key, a->request_hash, a->now_ms);
}

static int sq_idem_begin(struct store *s, const char *user_id, const char *key,
                         const char *request_hash, int64_t now_ms, struct store_idem *out)
{
    struct idem_args a = {user_id, key, request_hash, now_ms, 0, NULL, 0, out};
    int rc;

    if ((rc = idem_lookup_ok(user_id, key, request_hash, now_ms, out)) != SPELL_OK)
        return rc;
    rc = write_run(sq(s), idem_begin_tx, &a);
    if (rc != SPELL_OK) {
        store_idem_clear(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

/* Read-only: one SELECT, no transaction and no write lock. */
static int sq_idem_lookup(struct store *s, const char *user_id, const char *key,
                          const char *request_hash, int64_t now_ms, struct store_idem *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    int rc;

    if ((rc = idem_lookup_ok(user_id, key, request_hash, now_ms, out)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    rc = idem_read(c, user_id, key, request_hash, now_ms, out);
    conn_put(ss, c);
    if (rc < 0) {
        store_idem_clear(out);
        memset(out, 0, sizeof *out);
        return rc;
    }
    if (rc == 0)
        out->state = STORE_IDEM_NEW;
    return SPELL_OK;
}

/* Inserts the done record of (user, key) unless a live one holds the key:
 * 1 when written, 0 when not, a negative spell_rc on failure.  Inside a
 * write transaction. */
static int idem_insert_done(struct conn *c, const char *user_id, const char *key,
                            const char *request_hash, int64_t now_ms, int status,
                            const char *body, size_t len)
{
    int64_t n = 0;
    int rc = run(c, ST_IDEM_PUT_DONE, &n, "tttibii", user_id, key, request_hash,
                 (int64_t)status, body, len, now_ms, now_ms - STORE_IDEM_TTL_MS);

    return rc != SPELL_OK ? rc : n > 0;
}

static int idem_put_tx(struct conn *c, void *arg)
{
    const struct idem_args *a = arg;
    int rc;

    rc = idem_insert_done(c, a->user_id, a->key, a->request_hash, a->now_ms, a->status,
                          a->body ? a->body : "", a->len);
    if (rc == 0) {
        /* A live record holds the key: report it, write nothing. */
        if ((rc = idem_read(c, a->user_id, a->key, a->request_hash, a->now_ms, a->out)) == 0)
            rc = SPELL_EIO;     /* the upsert saw a live record the read does not */
    }
    if (rc > 0)
        rc = SPELL_OK;
    return rc;
}

static int sq_idem_put(struct store *s, const char *user_id, const char *key,
                       const char *request_hash, int64_t now_ms, int status, const char *body,
                       size_t len, struct store_idem *out)
{
    struct idem_args a = {user_id, key, request_hash, now_ms, status, body, len, out};
    int rc;

    if ((rc = idem_lookup_ok(user_id, key, request_hash, now_ms, out)) != SPELL_OK)
        return rc;
    if (status < 100 || status > 599 || (!body && len))
        return SPELL_EINVAL;
    if (len > STORE_RESPONSE_MAX)
        return SPELL_ETOOBIG;
    if (body && memchr(body, '\0', len))
        return SPELL_EINVAL;
    rc = write_run(sq(s), idem_put_tx, &a);
    if (rc != SPELL_OK) {
        store_idem_clear(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

static int sq_idem_finish(struct store *s, const char *user_id, const char *key, int status,
                          const char *body, size_t len)
{
    int64_t n = 0;
    int rc;

    if ((rc = idem_args_ok(user_id, key)) != SPELL_OK)
        return rc;
    if (status < 100 || status > 599 || (!body && len))
        return SPELL_EINVAL;
    if (len > STORE_RESPONSE_MAX)
        return SPELL_ETOOBIG;
    if (body && memchr(body, '\0', len))
        return SPELL_EINVAL;
    rc = write1(sq(s), ST_IDEM_FINISH, &n, "ibtt", (int64_t)status, body ? body : "", len,
                user_id, key);
    return rc == SPELL_OK && n == 0 ? SPELL_ENOTFOUND : rc;
}

static int sq_idem_abandon(struct store *s, const char *user_id, const char *key)
{
    int64_t n = 0;
    int rc;

    if ((rc = idem_args_ok(user_id, key)) != SPELL_OK)
        return rc;
    rc = write1(sq(s), ST_IDEM_ABANDON, &n, "tt", user_id, key);
    return rc == SPELL_OK && n == 0 ? SPELL_ENOTFOUND : rc;
}

static int sq_idem_purge(struct store *s, int64_t now_ms, int64_t *removed)
{
    int64_t n = 0;
    int rc = write1(sq(s), ST_IDEM_PURGE, &n, "i", now_ms - STORE_IDEM_TTL_MS);

    if (removed)
        *removed = rc == SPELL_OK ? n : 0;
    return rc;
}

/* ---- Casts: rows, events and ledger entries inside a transaction ------ */

static int cast_row(sqlite3_stmt *st, struct store_cast *c)
{
    int bad = 0;

    memset(c, 0, sizeof *c);
    bad |= col_copy(st, 0, c->id, sizeof c->id);
    bad |= col_copy(st, 1, c->user_id, sizeof c->user_id);
    bad |= col_copy(st, 2, c->spell_key, sizeof c->spell_key);
    bad |= col_copy(st, 3, c->spell_version, sizeof c->spell_version);
    bad |= col_copy(st, 4, c->mode, sizeof c->mode);
    bad |= col_copy(st, 5, c->status, sizeof c->status);
    c->progress = sqlite3_column_int(st, 6);
    bad |= col_copy(st, 7, c->message, sizeof c->message);
    bad |= col_copy(st, 8, c->input_hash, sizeof c->input_hash);
    c->estimated_cost_cents = sqlite3_column_int64(st, 9);
    c->cost_cents = col_i64(st, 10, -1);
    bad |= col_copy(st, 11, c->run_url, sizeof c->run_url);
    bad |= col_copy(st, 12, c->artifact_url, sizeof c->artifact_url);
    bad |= col_copy(st, 13, c->error_code, sizeof c->error_code);
    bad |= col_copy(st, 14, c->error_message, sizeof c->error_message);
    c->created_at = sqlite3_column_int64(st, 15);
    c->started_at = col_i64(st, 16, 0);
    c->finished_at = col_i64(st, 17, 0);
    c->duration_ms = col_i64(st, 18, -1);
    bad |= col_copy(st, 19, c->idempotency_key, sizeof c->idempotency_key);
    bad |= col_copy(st, 20, c->period, sizeof c->period);
    bad |= col_dup(st, 21, &c->inputs);
    c->last_seq = sqlite3_column_int64(st, 22);
    if (bad) {
        store_cast_clear(c);
        return SPELL_EIO;
    }
    return SPELL_OK;
}

/* What the store itself says in an event's data (DESIGN.md §3: cast_id,
 * status, progress, message, ts; terminal events add final, cost_cents
 * and artifact_url or error).  err_code NULL means no error member. */
struct event_info {
    const char *cast_id;
    const char *status;
    int progress;
    const char *message;
    int64_t ts;
    int final;
    int64_t cost_cents;
    const char *artifact_url;
    const char *err_code;
    const char *err_message;
};

static int event_build(const struct event_info *e, struct spell_buf *out)
{
    int rc = SPELL_ENOMEM;
    cJSON *o = cJSON_CreateObject(), *err;
    char ts[SPELL_TIME_RFC3339_SIZE];
    char *txt = NULL;

    if (!o)
        goto out;
    if ((rc = spell_time_format(e->ts, ts, sizeof ts)) != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (!cJSON_AddStringToObject(o, "cast_id", e->cast_id) ||
        !cJSON_AddStringToObject(o, "status", e->status) ||
        !cJSON_AddNumberToObject(o, "progress", e->progress) ||
        !cJSON_AddStringToObject(o, "message", e->message ? e->message : "") ||
        !cJSON_AddStringToObject(o, "ts", ts))
        goto out;
    if (e->final) {
        if (!cJSON_AddBoolToObject(o, "final", 1) ||
            !cJSON_AddNumberToObject(o, "cost_cents", (double)e->cost_cents))
            goto out;
        if (e->err_code) {
            err = cJSON_AddObjectToObject(o, "error");
            if (!err || !cJSON_AddStringToObject(err, "code", e->err_code) ||
                !cJSON_AddStringToObject(err, "message", e->err_message ? e->err_message : ""))
                goto out;
        } else if (e->artifact_url && e->artifact_url[0]) {
            if (!cJSON_AddStringToObject(o, "artifact_url", e->artifact_url))
                goto out;
        } else if (!cJSON_AddNullToObject(o, "artifact_url")) {
            goto out;
        }
    }
    if (!(txt = cJSON_PrintUnformatted(o)))
        goto out;
    rc = spell_buf_addstr(out, txt);
out:
    cJSON_free(txt);
    cJSON_Delete(o);
    return rc;
}

/* Appends an event to a cast with the next seq; inside a write
 * transaction.  last_seq is the cast's seq before it (from its row). */
static int event_insert(struct conn *c, const char *cast_id, int64_t last_seq, const char *type,
                        const char *data, size_t len, int64_t ts, int64_t *seq)
{
    int rc;

    if ((rc = run(c, ST_EVENT_INSERT, NULL, "titbi", cast_id, last_seq + 1, type, data, len,
                  ts)) != SPELL_OK)
        return rc;
    if ((rc = run(c, ST_CAST_SET_SEQ, NULL, "it", last_seq + 1, cast_id)) != SPELL_OK)
        return rc;
    if (seq)
        *seq = last_seq + 1;
    return SPELL_OK;
}

/* Builds and appends one of the store's own events. */
static int event_emit(struct conn *c, int64_t last_seq, const char *type,
                      const struct event_info *e, int64_t *seq)
{
    struct spell_buf b;
    int rc;

    spell_buf_init(&b, EVENT_BUILD_MAX);
    if ((rc = event_build(e, &b)) == SPELL_OK)
        rc = event_insert(c, e->cast_id, last_seq, type, spell_buf_str(&b), b.len, e->ts, seq);
    spell_buf_free(&b);
    return rc;
}

/* Appends a ledger entry chained to the head; inside a write transaction. */
static int ledger_insert(struct conn *c, const char *user_id, const char *cast_id,
                         const char *kind, int64_t amount, int64_t ts, int64_t *seq)
{
    sqlite3_stmt *st;
    char prev[STORE_HASH_HEX_SIZE], hash[STORE_HASH_HEX_SIZE];
    int64_t head;
    int rc;

    if ((rc = query(c, ST_LEDGER_HEAD, &st, "")) != SPELL_OK)
        return rc;
    if ((rc = step(st)) != 1) {
        sqlite3_reset(st);
        return rc < 0 ? rc : SPELL_EIO;
    }
    head = sqlite3_column_int64(st, 0);
    rc = col_copy(st, 1, prev, sizeof prev) ? SPELL_EIO : SPELL_OK;
    sqlite3_reset(st);
    if (rc != SPELL_OK)
        return rc;
    if ((rc = store_ledger_hash(prev, head + 1, ts, cast_id, kind, amount, hash)) != SPELL_OK)
        return rc;
    if ((rc = run(c, ST_LEDGER_INSERT, NULL, "iieetitt", head + 1, ts, user_id, cast_id, kind,
                  amount, prev, hash)) != SPELL_OK)
        return rc;
    if ((rc = run(c, ST_LEDGER_HEAD_SET, NULL, "it", head + 1, hash)) != SPELL_OK)
        return rc;
    if (seq)
        *seq = head + 1;
    return SPELL_OK;
}

/* The parts of a cast's row the state changes read. */
struct cast_state {
    char user_id[STORE_ID_SIZE];
    char status[STORE_WORD_SIZE];
    int64_t estimate;
    char period[STORE_PERIOD_SIZE];
    char spell_key[STORE_SPELL_KEY_SIZE];
    int64_t created_at;
    int64_t started_at;
    int progress;
    char message[STORE_MESSAGE_SIZE];
    int64_t last_seq;
};

static int cast_state_get(struct conn *c, const char *cast_id, struct cast_state *out)
{
    sqlite3_stmt *st;
    int rc, bad = 0;

    memset(out, 0, sizeof *out);
    if ((rc = query(c, ST_CAST_STATE, &st, "t", cast_id)) != SPELL_OK)
        return rc;
    rc = step(st);
    if (rc == 1) {
        bad |= col_copy(st, 0, out->user_id, sizeof out->user_id);
        bad |= col_copy(st, 1, out->status, sizeof out->status);
        out->estimate = sqlite3_column_int64(st, 2);
        bad |= col_copy(st, 3, out->period, sizeof out->period);
        bad |= col_copy(st, 4, out->spell_key, sizeof out->spell_key);
        out->created_at = sqlite3_column_int64(st, 5);
        out->started_at = col_i64(st, 6, 0);
        out->progress = sqlite3_column_int(st, 7);
        bad |= col_copy(st, 8, out->message, sizeof out->message);
        out->last_seq = sqlite3_column_int64(st, 9);
        rc = bad ? SPELL_EIO : SPELL_OK;
    } else if (rc == 0) {
        rc = SPELL_ENOTFOUND;
    }
    sqlite3_reset(st);
    return rc;
}

static int is_open(const char *status)
{
    return strcmp(status, "queued") == 0 || strcmp(status, "running") == 0;
}

/* Writes the period row of the limits (soft -1 stores NULL). */
static int period_row_put(struct conn *c, const char *user_id, const char *period, int64_t hard,
                          int64_t soft, int64_t now_ms)
{
    if (soft < 0)
        return run(c, ST_BUDGET_PERIOD_PUT, NULL, "ttiti", user_id, period, hard, NULL, now_ms);
    return run(c, ST_BUDGET_PERIOD_PUT, NULL, "ttiii", user_id, period, hard, soft, now_ms);
}

/* ---- Casts: the money paths ------------------------------------------ */

static int reserve_ok(const struct store_reserve *req)
{
    const struct store_cast *k;
    size_t idem_len;
    int rc;

    if (!req || !req->cast)
        return SPELL_EINVAL;
    k = req->cast;
    if ((rc = word_ok(k->id, sizeof k->id, 0)) != SPELL_OK ||
        (rc = word_ok(k->user_id, sizeof k->user_id, 0)) != SPELL_OK ||
        (rc = word_ok(k->spell_key, sizeof k->spell_key, 0)) != SPELL_OK ||
        (rc = word_ok(k->spell_version, sizeof k->spell_version, 0)) != SPELL_OK ||
        (rc = word_ok(k->mode, sizeof k->mode, 0)) != SPELL_OK ||
        (rc = word_ok(k->input_hash, sizeof k->input_hash, 0)) != SPELL_OK)
        return rc;
    idem_len = strnlen(k->idempotency_key, sizeof k->idempotency_key);
    if (idem_len == sizeof k->idempotency_key)
        return SPELL_ETOOBIG;
    if (idem_len && (rc = word_ok(k->idempotency_key, sizeof k->idempotency_key, 1)) != SPELL_OK)
        return rc;
    if (idem_len && !req->respond)
        return SPELL_EINVAL;
    if (req->request_hash &&
        (!idem_len || (rc = word_ok(req->request_hash, STORE_HASH_HEX_SIZE, 0)) != SPELL_OK))
        return idem_len ? rc : SPELL_EINVAL;
    if (k->inputs && (rc = json_str_ok(k->inputs, STORE_JSON_MAX)) != SPELL_OK)
        return rc;
    if (k->estimated_cost_cents < 0 || req->now_ms < 0)
        return SPELL_EINVAL;
    return SPELL_OK;
}

/* Asks the caller for the idempotent answer and records it. */
static int reserve_respond(struct conn *c, const struct store_reserve *req,
                           const struct store_reserve_result *r)
{
    struct spell_buf body;
    int status = 0, rc;
    int64_t n = 0;

    spell_buf_init(&body, STORE_RESPONSE_MAX);
    rc = req->respond(req->respond_ud, r, &status, &body);
    if (rc != 0) {
        rc = rc < 0 ? rc : SPELL_EABORT;
        goto out;
    }
    if (status < 100 || status > 599 || memchr(spell_buf_str(&body), '\0', body.len)) {
        rc = SPELL_EINVAL;
        goto out;
    }
    if (req->request_hash) {
        rc = idem_insert_done(c, req->cast->user_id, req->cast->idempotency_key,
                              req->request_hash, req->now_ms, status, spell_buf_str(&body),
                              body.len);
        rc = rc == 0 ? STORE_ECONFLICT : rc > 0 ? SPELL_OK : rc;
        goto out;
    }
    rc = run(c, ST_IDEM_FINISH, &n, "ibtt", (int64_t)status, spell_buf_str(&body), body.len,
             req->cast->user_id, req->cast->idempotency_key);
    if (rc == SPELL_OK && n == 0)
        rc = SPELL_ENOTFOUND;
out:
    spell_buf_free(&body);
    return rc;
}

/* One reservation inside the batch's write transaction: the budget check,
 * the cast, its queued event, the usage counter, the ledger entry and the
 * idempotency answer.  out->period is set by the caller.  A failure leaves
 * partial writes for the batch to roll back (see batch_write). */
static int reserve_tx(struct conn *c, const struct store_reserve *req,
                      struct store_reserve_result *out)
{
    const struct store_cast *k = req->cast;
    struct store_budget b;
    struct counters u;
    struct event_info ev;
    sqlite3_stmt *st;
    int rc;

    if ((rc = user_exists(c, k->user_id)) <= 0)
        return rc == 0 ? SPELL_ENOTFOUND : rc;
    if (k->idempotency_key[0] && !req->request_hash) {
        if ((rc = query(c, ST_IDEM_IN_FLIGHT, &st, "tt", k->user_id, k->idempotency_key)) !=
            SPELL_OK)
            return rc;
        rc = step(st);
        sqlite3_reset(st);
        if (rc <= 0)
            return rc == 0 ? SPELL_ENOTFOUND : rc;
    }
    if ((rc = limits_get(c, k->user_id, out->period, &b)) != SPELL_OK ||
        (rc = counters_get(c, k->user_id, out->period, &u)) != SPELL_OK)
        return rc;
    out->hard_limit_cents = b.hard_limit_cents;
    out->soft_limit_cents = b.soft_limit_cents;
    out->spent_cents = u.spent;
    out->reserved_cents = u.reserved;
    out->estimate_cents = k->estimated_cost_cents;
    /* Written so that no sum can overflow: the counters are bounded by the
     * limit, the estimate is not. */
    if (u.spent + u.reserved > b.hard_limit_cents ||
        k->estimated_cost_cents > b.hard_limit_cents - u.spent - u.reserved) {
        out->outcome = STORE_BUDGET_EXCEEDED;
        out->remaining_cents = nonneg(b.hard_limit_cents - u.spent - u.reserved);
        return SPELL_OK;
    }
    if (b.source != STORE_BUDGET_PERIOD &&
        (rc = period_row_put(c, k->user_id, out->period, b.hard_limit_cents, b.soft_limit_cents,
                             req->now_ms)) != SPELL_OK)
        return rc;
    if ((rc = run(c, ST_CAST_INSERT, NULL, "ttttttiiett", k->id, k->user_id, k->spell_key,
                  k->spell_version, k->mode, k->input_hash, k->estimated_cost_cents, req->now_ms,
                  k->idempotency_key, out->period, k->inputs)) != SPELL_OK)
        return rc;
    memset(&ev, 0, sizeof ev);
    ev.cast_id = k->id;
    ev.status = "queued";
    ev.message = "";
    ev.ts = req->now_ms;
    if ((rc = event_emit(c, 0, "cast.queued", &ev, NULL)) != SPELL_OK)
        return rc;
    if ((rc = run(c, ST_USAGE_RESERVE, NULL, "tti", k->user_id, out->period,
                  k->estimated_cost_cents)) != SPELL_OK)
        return rc;
    if ((rc = ledger_insert(c, k->user_id, k->id, "reserve", k->estimated_cost_cents,
                            req->now_ms, &out->ledger_seq)) != SPELL_OK)
        return rc;
    out->outcome = STORE_RESERVED;
    out->reserved_cents = u.reserved + k->estimated_cost_cents;
    out->remaining_cents = nonneg(b.hard_limit_cents - out->spent_cents - out->reserved_cents);
    if (k->idempotency_key[0])
        return reserve_respond(c, req, out);
    return SPELL_OK;
}

struct reserve_args {
    const struct store_reserve *req;
    struct store_reserve_result *out;
};

static int reserve_run(struct conn *c, void *arg)
{
    const struct reserve_args *a = arg;

    return reserve_tx(c, a->req, a->out);
}

/* The reservation runs in a group commit with the writes that arrive with
 * it (see write_run): in arrival order, so it sees the budget the writes
 * before it left, and answered only after the COMMIT that carried it. */
static int sq_cast_reserve(struct store *s, const struct store_reserve *req,
                           struct store_reserve_result *out)
{
    struct reserve_args a = {req, out};
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = reserve_ok(req)) != SPELL_OK)
        return rc;
    if ((rc = spell_time_period(req->now_ms, out->period, sizeof out->period)) != SPELL_OK)
        return rc;
    rc = write_run(sq(s), reserve_run, &a);
    if (rc != SPELL_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

/* Fills a settlement result from the cast's period after a change. */
static int settle_result(struct conn *c, const struct cast_state *cs, struct store_settle_result *r)
{
    struct store_budget b;
    struct counters u;
    int rc;

    if ((rc = limits_get(c, cs->user_id, cs->period, &b)) != SPELL_OK ||
        (rc = counters_get(c, cs->user_id, cs->period, &u)) != SPELL_OK)
        return rc;
    memcpy(r->user_id, cs->user_id, sizeof r->user_id);
    memcpy(r->period, cs->period, sizeof r->period);
    r->spent_cents = u.spent;
    r->reserved_cents = u.reserved;
    r->hard_limit_cents = b.hard_limit_cents;
    r->soft_limit_cents = b.soft_limit_cents;
    if (b.soft_limit_cents >= 0 && u.spent >= b.soft_limit_cents && !u.soft_notified)
        r->soft_limit_crossed = 1;
    return SPELL_OK;
}

struct settle_args {
    const char *cast_id;
    int64_t cost_cents;
    const char *artifact_url;
    int64_t now_ms;
    const char *date;               /* the usage day of now_ms */
    struct store_settle_result *r;
};

static int settle_tx(struct conn *c, void *arg)
{
    const struct settle_args *a = arg;
    struct store_settle_result *r = a->r;
    struct cast_state cs;
    struct event_info ev;
    int64_t charge, duration;
    int rc;

    if ((rc = cast_state_get(c, a->cast_id, &cs)) != SPELL_OK)
        return rc;
    if (!is_open(cs.status))
        return STORE_ECONFLICT;
    charge = a->cost_cents < cs.estimate ? a->cost_cents : cs.estimate;
    duration = nonneg(a->now_ms - (cs.started_at ? cs.started_at : cs.created_at));
    if ((rc = run(c, ST_CAST_SUCCEED, NULL, "ieiit", charge, a->artifact_url, a->now_ms,
                  duration, a->cast_id)) != SPELL_OK ||
        (rc = run(c, ST_USAGE_CLOSE, NULL, "iiitt", cs.estimate, charge, (int64_t)1, cs.user_id,
                  cs.period)) != SPELL_OK ||
        (rc = run(c, ST_USAGE_DAILY_ADD, NULL, "ttti", cs.user_id, cs.period, a->date,
                  charge)) != SPELL_OK ||
        (rc = run(c, ST_USAGE_SPELL_ADD, NULL, "ttti", cs.user_id, cs.period, cs.spell_key,
                  charge)) != SPELL_OK ||
        (rc = run(c, ST_SPELL_AVERAGE, NULL, "iit", charge, duration, cs.spell_key)) != SPELL_OK)
        return rc;
    if ((rc = settle_result(c, &cs, r)) != SPELL_OK)
        return rc;
    if (r->soft_limit_crossed &&
        (rc = run(c, ST_USAGE_SOFT_MARK, NULL, "tt", cs.user_id, cs.period)) != SPELL_OK)
        return rc;
    r->cost_cents = charge;
    if ((rc = ledger_insert(c, cs.user_id, a->cast_id, "settle", charge, a->now_ms,
                            &r->ledger_seq)) != SPELL_OK)
        return rc;
    memset(&ev, 0, sizeof ev);
    ev.cast_id = a->cast_id;
    ev.status = "succeeded";
    ev.progress = 100;
    ev.message = cs.message;
    ev.ts = a->now_ms;
    ev.final = 1;
    ev.cost_cents = charge;
    ev.artifact_url = a->artifact_url;
    return event_emit(c, cs.last_seq, "cast.succeeded", &ev, &r->event_seq);
}

static int sq_cast_settle(struct store *s, const char *cast_id, int64_t cost_cents,
                          const char *artifact_url, int64_t now_ms,
                          struct store_settle_result *out)
{
    struct store_settle_result tmp, *r = out ? out : &tmp;
    char date[STORE_DATE_SIZE];
    struct settle_args a = {cast_id, cost_cents, artifact_url, now_ms, date, r};
    int rc;

    memset(r, 0, sizeof *r);
    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if (artifact_url && (rc = text_ok(artifact_url, STORE_URL_SIZE, 1)) != SPELL_OK)
        return rc;
    if (cost_cents < 0)
        return SPELL_EINVAL;
    if ((rc = spell_time_date(now_ms, date, sizeof date)) != SPELL_OK)
        return rc;
    if ((rc = write_run(sq(s), settle_tx, &a)) != SPELL_OK)
        memset(r, 0, sizeof *r);
    return rc;
}

struct release_args {
    const char *cast_id;
    const char *status;             /* failed or canceled */
    const char *type;               /* cast.<status> */
    const char *error_code;
    const char *error_message;
    int64_t now_ms;
    struct store_settle_result *r;
};

static int release_tx(struct conn *c, void *arg)
{
    const struct release_args *a = arg;
    struct store_settle_result *r = a->r;
    struct cast_state cs;
    struct event_info ev;
    int64_t duration;
    int rc;

    if ((rc = cast_state_get(c, a->cast_id, &cs)) != SPELL_OK)
        return rc;
    if (!is_open(cs.status))
        return STORE_ECONFLICT;
    duration = nonneg(a->now_ms - (cs.started_at ? cs.started_at : cs.created_at));
    if ((rc = run(c, ST_CAST_FAIL, NULL, "tttiit", a->status, a->error_code, a->error_message,
                  a->now_ms, duration, a->cast_id)) != SPELL_OK ||
        (rc = run(c, ST_USAGE_CLOSE, NULL, "iiitt", cs.estimate, (int64_t)0, (int64_t)0,
                  cs.user_id, cs.period)) != SPELL_OK)
        return rc;
    if ((rc = settle_result(c, &cs, r)) != SPELL_OK)
        return rc;
    r->soft_limit_crossed = 0;
    if ((rc = ledger_insert(c, cs.user_id, a->cast_id, "release", cs.estimate, a->now_ms,
                            &r->ledger_seq)) != SPELL_OK)
        return rc;
    memset(&ev, 0, sizeof ev);
    ev.cast_id = a->cast_id;
    ev.status = a->status;
    ev.progress = cs.progress;
    ev.message = cs.message;
    ev.ts = a->now_ms;
    ev.final = 1;
    ev.err_code = a->error_code;
    ev.err_message = a->error_message;
    return event_emit(c, cs.last_seq, a->type, &ev, &r->event_seq);
}

static int sq_cast_release(struct store *s, const char *cast_id, const char *status,
                           const char *error_code, const char *error_message, int64_t now_ms,
                           struct store_settle_result *out)
{
    struct store_settle_result tmp, *r = out ? out : &tmp;
    char type[STORE_EVENT_TYPE_SIZE];
    struct release_args a;
    int rc;

    memset(r, 0, sizeof *r);
    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = word_ok(error_code, STORE_ERROR_CODE_SIZE, 0)) != SPELL_OK)
        return rc;
    if (!error_message)
        error_message = "";
    if ((rc = text_ok(error_message, STORE_MESSAGE_SIZE, 1)) != SPELL_OK)
        return rc;
    if (!status || (strcmp(status, "failed") != 0 && strcmp(status, "canceled") != 0) ||
        now_ms < 0)
        return SPELL_EINVAL;
    snprintf(type, sizeof type, "cast.%s", status);
    a = (struct release_args){cast_id, status, type, error_code, error_message, now_ms, r};
    if ((rc = write_run(sq(s), release_tx, &a)) != SPELL_OK)
        memset(r, 0, sizeof *r);
    return rc;
}

/* ---- Casts: the other state changes and reads ------------------------ */

/* queued -> running with cast.started; inside a write transaction.  *cs
 * is updated to the row as it is afterwards. */
static int cast_start_tx(struct conn *c, const char *cast_id, const char *run_url,
                         int64_t now_ms, struct cast_state *cs)
{
    struct event_info ev;
    int rc;

    if ((rc = cast_state_get(c, cast_id, cs)) != SPELL_OK)
        return rc;
    if (strcmp(cs->status, "queued") != 0)
        return STORE_ECONFLICT;
    if ((rc = run(c, ST_CAST_START, NULL, "iet", now_ms, run_url, cast_id)) != SPELL_OK)
        return rc;
    memset(&ev, 0, sizeof ev);
    ev.cast_id = cast_id;
    ev.status = "running";
    ev.progress = cs->progress;
    ev.message = cs->message;
    ev.ts = now_ms;
    if ((rc = event_emit(c, cs->last_seq, "cast.started", &ev, NULL)) != SPELL_OK)
        return rc;
    snprintf(cs->status, sizeof cs->status, "running");
    cs->last_seq++;
    return SPELL_OK;
}

/* Progress with cast.progress on an open cast whose state is *cs; inside a
 * write transaction.  message NULL keeps the current one. */
static int cast_progress_tx(struct conn *c, const char *cast_id, const struct cast_state *cs,
                            int progress, const char *message, int64_t now_ms)
{
    struct event_info ev;
    int rc;

    if (!is_open(cs->status))
        return STORE_ECONFLICT;
    if (!message)
        message = cs->message;
    if ((rc = run(c, ST_CAST_PROGRESS, NULL, "itt", (int64_t)progress, message, cast_id)) !=
        SPELL_OK)
        return rc;
    memset(&ev, 0, sizeof ev);
    ev.cast_id = cast_id;
    ev.status = cs->status;
    ev.progress = progress;
    ev.message = message;
    ev.ts = now_ms;
    return event_emit(c, cs->last_seq, "cast.progress", &ev, NULL);
}

struct advance_args {
    const char *cast_id;
    int start;
    const char *run_url;
    int progress;
    const char *message;
    int64_t now_ms;
};

static int advance_tx(struct conn *c, void *arg)
{
    const struct advance_args *a = arg;
    struct cast_state cs;
    int rc;

    if (a->start)
        rc = cast_start_tx(c, a->cast_id, a->run_url, a->now_ms, &cs);
    else
        rc = cast_state_get(c, a->cast_id, &cs);
    if (rc == SPELL_OK && a->progress >= 0)
        rc = cast_progress_tx(c, a->cast_id, &cs, a->progress, a->message, a->now_ms);
    return rc;
}

/* Does the start (run_url, with start set), then the progress (with
 * progress >= 0), in one transaction. */
static int cast_advance(struct sqlite_store *ss, const char *cast_id, int start,
                        const char *run_url, int progress, const char *message, int64_t now_ms)
{
    struct advance_args a = {cast_id, start, run_url, progress, message, now_ms};
    int rc;

    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if (run_url && (rc = text_ok(run_url, STORE_URL_SIZE, 1)) != SPELL_OK)
        return rc;
    if (message && (rc = text_ok(message, STORE_MESSAGE_SIZE, 1)) != SPELL_OK)
        return rc;
    if (progress > 100 || (!start && progress < 0) || now_ms < 0)
        return SPELL_EINVAL;
    return write_run(ss, advance_tx, &a);
}

static int sq_cast_start(struct store *s, const char *cast_id, const char *run_url,
                         int64_t now_ms)
{
    return cast_advance(sq(s), cast_id, 1, run_url, -1, NULL, now_ms);
}

static int sq_cast_start_progress(struct store *s, const char *cast_id, const char *run_url,
                                  int progress, const char *message, int64_t now_ms)
{
    if (progress < 0)
        return SPELL_EINVAL;
    return cast_advance(sq(s), cast_id, 1, run_url, progress, message, now_ms);
}

static int sq_cast_progress(struct store *s, const char *cast_id, int progress,
                            const char *message, int64_t now_ms)
{
    return cast_advance(sq(s), cast_id, 0, NULL, progress, message, now_ms);
}

static int sq_cast_set_run_url(struct store *s, const char *cast_id, const char *run_url)
{
    int64_t n = 0;
    int rc;

    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = text_ok(run_url, STORE_URL_SIZE, 0)) != SPELL_OK)
        return rc;
    rc = write1(sq(s), ST_CAST_RUN_URL, &n, "tt", run_url, cast_id);
    return rc == SPELL_OK && n == 0 ? SPELL_ENOTFOUND : rc;
}

static int sq_cast_set_run(struct store *s, const char *cast_id, int64_t run_id,
                           const char *run_url)
{
    int64_t n = 0;
    int rc;

    if (run_id <= 0)
        return SPELL_EINVAL;
    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (run_url && (rc = text_ok(run_url, STORE_URL_SIZE, 0)) != SPELL_OK))
        return rc;
    rc = write1(sq(s), ST_CAST_RUN_SET, &n, "itt", run_id, run_url, cast_id);
    return rc == SPELL_OK && n == 0 ? SPELL_ENOTFOUND : rc;
}

/* Runs a one-column lookup keyed by text or by an integer; 1 for a row. */
static int lookup1(struct store *s, enum st id, const char *key, int64_t ikey, int64_t *iout,
                   char *tout, size_t tsize)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c = conn_get(ss);
    const unsigned char *t;
    sqlite3_stmt *st;
    int rc;

    rc = key ? query(c, id, &st, "t", key) : query(c, id, &st, "i", ikey);
    if (rc == SPELL_OK && (rc = step(st)) == 1) {
        if (iout)
            *iout = sqlite3_column_int64(st, 0);
        if (tout) {
            t = sqlite3_column_text(st, 0);
            snprintf(tout, tsize, "%s", t ? (const char *)t : "");
        }
    }
    conn_put(ss, c);
    return rc;
}

static int sq_cast_run_id(struct store *s, const char *cast_id, int64_t *run_id)
{
    int rc;

    if (!run_id)
        return SPELL_EINVAL;
    *run_id = 0;
    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    rc = lookup1(s, ST_CAST_RUN_GET, cast_id, 0, run_id, NULL, 0);
    return rc == 1 ? SPELL_OK : rc == 0 ? SPELL_ENOTFOUND : rc;
}

static int sq_cast_by_run_id(struct store *s, int64_t run_id, char cast_id[STORE_ID_SIZE])
{
    int rc;

    if (!cast_id || run_id <= 0)
        return SPELL_EINVAL;
    cast_id[0] = '\0';
    rc = lookup1(s, ST_CAST_BY_RUN, NULL, run_id, NULL, cast_id, STORE_ID_SIZE);
    return rc == 1 ? SPELL_OK : rc == 0 ? SPELL_ENOTFOUND : rc;
}

/* The mark is only ever set, never cleared: when the update changed no
 * row, a row that is there was marked before. */
static int sq_cast_mark_dispatch(struct store *s, const char *cast_id, int64_t now_ms,
                                 int *already)
{
    int64_t n = 0;
    int rc;

    if (!already || now_ms <= 0)
        return SPELL_EINVAL;
    *already = 0;
    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if ((rc = write1(sq(s), ST_CAST_DISPATCH_MARK, &n, "it", now_ms, cast_id)) != SPELL_OK ||
        n > 0)
        return rc;
    rc = lookup1(s, ST_CAST_DISPATCH_GET, cast_id, 0, NULL, NULL, 0);
    if (rc == 1)
        *already = 1;
    return rc == 1 ? SPELL_OK : rc == 0 ? SPELL_ENOTFOUND : rc;
}

static int sq_cast_dispatched_at(struct store *s, const char *cast_id, int64_t *at_ms)
{
    int rc;

    if (!at_ms)
        return SPELL_EINVAL;
    *at_ms = 0;
    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    rc = lookup1(s, ST_CAST_DISPATCH_GET, cast_id, 0, at_ms, NULL, 0);
    return rc == 1 ? SPELL_OK : rc == 0 ? SPELL_ENOTFOUND : rc;
}

static int sq_delivery_seen(struct store *s, const char *delivery_id, int *seen)
{
    int rc;

    if (!seen)
        return SPELL_EINVAL;
    *seen = 0;
    if ((rc = word_ok(delivery_id, STORE_ID_SIZE * 2, 0)) != SPELL_OK)
        return rc;
    rc = lookup1(s, ST_DELIVERY_SEEN, delivery_id, 0, NULL, NULL, 0);
    if (rc < 0)
        return rc;
    *seen = rc;
    return SPELL_OK;
}

static int sq_delivery_record(struct store *s, const char *delivery_id, const char *event,
                              int64_t now_ms)
{
    int rc;

    if ((rc = word_ok(delivery_id, STORE_ID_SIZE * 2, 0)) != SPELL_OK ||
        (rc = word_ok(event, STORE_WORD_SIZE * 2, 0)) != SPELL_OK)
        return rc;
    return write1(sq(s), ST_DELIVERY_INSERT, NULL, "tti", delivery_id, event, now_ms);
}

static int sq_cast_get(struct store *s, const char *cast_id, const char *user_id,
                       struct store_cast *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if (user_id && (rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, ST_CAST_GET, &st, "t", cast_id)) == SPELL_OK) {
        rc = step(st);
        if (rc == 0)
            rc = SPELL_ENOTFOUND;
        else if (rc == 1)
            rc = cast_row(st, out);
    }
    if (rc == SPELL_OK && user_id && strcmp(out->user_id, user_id) != 0)
        rc = SPELL_ENOTFOUND;
    if (rc != SPELL_OK) {
        store_cast_clear(out);
        memset(out, 0, sizeof *out);
    }
    conn_put(ss, c);
    return rc;
}

/* Reads "v1:<created_at>:<id>". */
static int cursor_parse(const char *cur, int64_t *ts, char id[STORE_ID_SIZE])
{
    const char *p;
    int64_t v = 0;
    int digits = 0;

    if (strnlen(cur, STORE_CURSOR_SIZE) == STORE_CURSOR_SIZE || strncmp(cur, "v1:", 3) != 0)
        return SPELL_EINVAL;
    for (p = cur + 3; *p >= '0' && *p <= '9'; p++) {
        if (++digits > 18)
            return SPELL_EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (digits == 0 || *p != ':')
        return SPELL_EINVAL;
    p++;
    if (word_ok(p, STORE_ID_SIZE, 0) != SPELL_OK)
        return SPELL_EINVAL;
    *ts = v;
    strcpy(id, p);
    return SPELL_OK;
}

static int sq_cast_list(struct store *s, const char *user_id, const char *cursor, int limit,
                        int (*fn)(void *ud, const struct store_cast *c), void *ud,
                        char next_cursor[STORE_CURSOR_SIZE])
{
    struct sqlite_store *ss = sq(s);
    struct store_cast k;
    struct conn *c;
    sqlite3_stmt *st;
    char after_id[STORE_ID_SIZE], last_id[STORE_ID_SIZE] = "";
    int64_t after_ts = 0, last_ts = 0;
    int rc, n = 0, stop;

    if (!next_cursor || !fn)
        return SPELL_EINVAL;
    next_cursor[0] = '\0';
    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if (limit < 1)
        return SPELL_EINVAL;
    if (limit > STORE_LIST_MAX)
        limit = STORE_LIST_MAX;
    if (cursor && cursor[0] && (rc = cursor_parse(cursor, &after_ts, after_id)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if (cursor && cursor[0])
        rc = query(c, ST_CAST_LIST_AFTER, &st, "titi", user_id, after_ts, after_id,
                   (int64_t)limit + 1);
    else
        rc = query(c, ST_CAST_LIST_FIRST, &st, "ti", user_id, (int64_t)limit + 1);
    if (rc != SPELL_OK)
        goto out;
    while ((rc = step(st)) == 1) {
        if (n == limit) {
            /* One row more than the page: there is a next page. */
            snprintf(next_cursor, STORE_CURSOR_SIZE, "v1:%" PRId64 ":%s", last_ts, last_id);
            rc = 0;
            break;
        }
        if ((rc = cast_row(st, &k)) != SPELL_OK)
            goto out;
        n++;
        last_ts = k.created_at;
        memcpy(last_id, k.id, sizeof last_id);
        stop = fn(ud, &k);
        store_cast_clear(&k);
        if (stop) {
            rc = SPELL_EABORT;
            goto out;
        }
    }
out:
    if (rc != SPELL_OK)
        next_cursor[0] = '\0';
    conn_put(ss, c);
    return rc;
}

static int sq_casts_unfinished(struct store *s, int (*fn)(void *ud, const struct store_cast *c),
                               void *ud)
{
    struct sqlite_store *ss = sq(s);
    struct store_cast k;
    struct conn *c;
    sqlite3_stmt *st;
    int rc, stop;

    if (!fn)
        return SPELL_EINVAL;
    c = conn_get(ss);
    if ((rc = query(c, ST_CAST_UNFINISHED, &st, "")) != SPELL_OK)
        goto out;
    while ((rc = step(st)) == 1) {
        if ((rc = cast_row(st, &k)) != SPELL_OK)
            goto out;
        stop = fn(ud, &k);
        store_cast_clear(&k);
        if (stop) {
            rc = SPELL_EABORT;
            goto out;
        }
    }
out:
    conn_put(ss, c);
    return rc;
}

/* ---- Cast events ----------------------------------------------------- */

struct event_append_args {
    const char *cast_id;
    const char *type;
    const char *data;
    size_t len;
    int64_t now_ms;
    int64_t *seq;                   /* may be NULL */
};

static int event_append_tx(struct conn *c, void *arg)
{
    const struct event_append_args *a = arg;
    struct cast_state cs;
    int rc;

    if ((rc = cast_state_get(c, a->cast_id, &cs)) == SPELL_OK)
        rc = event_insert(c, a->cast_id, cs.last_seq, a->type, a->data, a->len, a->now_ms,
                          a->seq);
    return rc;
}

static int sq_event_append(struct store *s, const char *cast_id, const char *type,
                           const char *data, size_t len, int64_t now_ms, int64_t *seq)
{
    struct event_append_args a = {cast_id, type, data, len, now_ms, seq};
    int rc;

    if (seq)
        *seq = 0;
    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = word_ok(type, STORE_EVENT_TYPE_SIZE, 0)) != SPELL_OK ||
        (rc = json_ok(data, len, STORE_EVENT_DATA_MAX)) != SPELL_OK)
        return rc;
    if (now_ms < 0)
        return SPELL_EINVAL;
    rc = write_run(sq(s), event_append_tx, &a);
    if (rc != SPELL_OK && seq)
        *seq = 0;
    return rc;
}

static int sq_events_after(struct store *s, const char *cast_id, int64_t after_seq, int limit,
                           int (*fn)(void *ud, const struct store_event *e), void *ud)
{
    struct sqlite_store *ss = sq(s);
    struct cast_state cs;
    struct store_event e;
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!fn)
        return SPELL_EINVAL;
    if ((rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if (after_seq < 0 || limit < 0)
        return SPELL_EINVAL;
    c = conn_get(ss);
    if ((rc = tx_begin(c)) != SPELL_OK)
        goto out;
    if ((rc = cast_state_get(c, cast_id, &cs)) != SPELL_OK)
        goto end;
    if ((rc = query(c, ST_EVENT_LIST, &st, "tii", cast_id, after_seq,
                    limit ? (int64_t)limit : (int64_t)-1)) != SPELL_OK)
        goto end;
    while ((rc = step(st)) == 1) {
        memset(&e, 0, sizeof e);
        memcpy(e.cast_id, cast_id, strlen(cast_id) + 1);
        e.seq = sqlite3_column_int64(st, 0);
        if (col_copy(st, 1, e.type, sizeof e.type)) {
            rc = SPELL_EIO;
            goto end;
        }
        e.data = (const char *)sqlite3_column_text(st, 2);
        e.data_len = (size_t)sqlite3_column_bytes(st, 2);
        if (!e.data) {
            rc = SPELL_ENOMEM;
            goto end;
        }
        e.ts = sqlite3_column_int64(st, 3);
        if (fn(ud, &e) != 0) {
            rc = SPELL_EABORT;
            goto end;
        }
    }
end:
    rc = tx_end(c, rc);
out:
    conn_put(ss, c);
    return rc;
}

/* ---- Ledger ---------------------------------------------------------- */

static int ledger_row(sqlite3_stmt *st, struct store_ledger_entry *e)
{
    int bad = 0;

    memset(e, 0, sizeof *e);
    e->seq = sqlite3_column_int64(st, 0);
    e->ts = sqlite3_column_int64(st, 1);
    bad |= col_copy(st, 2, e->user_id, sizeof e->user_id);
    bad |= col_copy(st, 3, e->cast_id, sizeof e->cast_id);
    bad |= col_copy(st, 4, e->kind, sizeof e->kind);
    e->amount_cents = sqlite3_column_int64(st, 5);
    bad |= col_copy(st, 6, e->prev_hash, sizeof e->prev_hash);
    bad |= col_copy(st, 7, e->hash, sizeof e->hash);
    return bad ? SPELL_EIO : SPELL_OK;
}

struct ledger_append_args {
    const char *user_id;            /* may be NULL */
    const char *cast_id;            /* may be NULL or "" */
    const char *kind;
    int64_t amount_cents;
    int64_t now_ms;
    int64_t *seq;                   /* may be NULL */
};

static int ledger_append_tx(struct conn *c, void *arg)
{
    const struct ledger_append_args *a = arg;

    return ledger_insert(c, a->user_id, a->cast_id, a->kind, a->amount_cents, a->now_ms,
                         a->seq);
}

static int sq_ledger_append(struct store *s, const char *user_id, const char *cast_id,
                            const char *kind, int64_t amount_cents, int64_t now_ms, int64_t *seq)
{
    struct ledger_append_args a = {user_id, cast_id, kind, amount_cents, now_ms, seq};
    int rc;

    if (seq)
        *seq = 0;
    if (user_id && (rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if (cast_id && cast_id[0] && (rc = word_ok(cast_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if (!kind || (strcmp(kind, "invoice") != 0 && strcmp(kind, "adjust") != 0) || now_ms < 0)
        return SPELL_EINVAL;
    rc = write_run(sq(s), ledger_append_tx, &a);
    if (rc != SPELL_OK && seq)
        *seq = 0;
    return rc;
}

static int sq_ledger_list(struct store *s, int64_t after_seq, int limit,
                          int (*fn)(void *ud, const struct store_ledger_entry *e), void *ud)
{
    struct sqlite_store *ss = sq(s);
    struct store_ledger_entry e;
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!fn || after_seq < 0 || limit < 0)
        return SPELL_EINVAL;
    c = conn_get(ss);
    if ((rc = query(c, ST_LEDGER_LIST, &st, "ii", after_seq,
                    limit ? (int64_t)limit : (int64_t)-1)) != SPELL_OK)
        goto out;
    while ((rc = step(st)) == 1) {
        if ((rc = ledger_row(st, &e)) != SPELL_OK)
            goto out;
        if (fn(ud, &e) != 0) {
            rc = SPELL_EABORT;
            goto out;
        }
    }
out:
    conn_put(ss, c);
    return rc;
}

static int sq_ledger_verify(struct store *s, int64_t *checked, int64_t *bad_seq)
{
    struct sqlite_store *ss = sq(s);
    struct store_ledger_entry e;
    struct conn *c;
    sqlite3_stmt *st;
    char prev[STORE_HASH_HEX_SIZE] = ZERO_HASH, hash[STORE_HASH_HEX_SIZE];
    char head_hash[STORE_HASH_HEX_SIZE];
    int64_t expect = 1, n = 0, bad = 0, head;
    int rc;

    c = conn_get(ss);
    if ((rc = tx_begin(c)) != SPELL_OK)
        goto out;
    if ((rc = query(c, ST_LEDGER_LIST, &st, "ii", (int64_t)0, (int64_t)-1)) != SPELL_OK)
        goto end;
    while ((rc = step(st)) == 1) {
        n++;
        /* A row that does not even read back is a bad row. */
        if (ledger_row(st, &e) != SPELL_OK) {
            bad = expect;
            break;
        }
        if (e.seq != expect) {
            bad = expect;
            break;
        }
        if (strcmp(e.prev_hash, prev) != 0) {
            bad = e.seq;
            break;
        }
        rc = store_ledger_hash(e.prev_hash, e.seq, e.ts, e.cast_id, e.kind, e.amount_cents,
                               hash);
        if (rc == SPELL_ENOMEM)
            goto end;
        if (rc != SPELL_OK || strcmp(hash, e.hash) != 0) {
            bad = e.seq;
            break;
        }
        memcpy(prev, e.hash, sizeof prev);
        expect++;
    }
    if (rc < 0 && !bad)
        goto end;
    sqlite3_reset(st);
    if (!bad) {
        /* The head row catches what the walk cannot: entries cut off the
         * end (head ahead of the rows) or added past it. */
        if ((rc = query(c, ST_LEDGER_HEAD, &st, "")) != SPELL_OK)
            goto end;
        if ((rc = step(st)) != 1) {
            rc = rc < 0 ? rc : SPELL_EIO;
            goto end;
        }
        head = sqlite3_column_int64(st, 0);
        if (col_copy(st, 1, head_hash, sizeof head_hash))
            head_hash[0] = '\0';
        if (head > expect - 1)
            bad = expect;
        else if (head < expect - 1)
            bad = head + 1;
        else if (strcmp(head_hash, prev) != 0)
            bad = head > 0 ? head : 1;
    }
    rc = bad ? SPELL_EVERIFY : SPELL_OK;
end:
    if (rc == SPELL_EVERIFY)
        rc = tx_end(c, SPELL_OK) == SPELL_OK ? SPELL_EVERIFY : SPELL_EIO;
    else
        rc = tx_end(c, rc);
out:
    if (checked)
        *checked = n;
    if (bad_seq)
        *bad_seq = bad;
    conn_put(ss, c);
    return rc;
}

/* ---- Privacy --------------------------------------------------------- */

/* Adds a time as RFC 3339, or null when it is 0 and optional. */
static int add_time(cJSON *o, const char *name, int64_t ms, int optional)
{
    char t[SPELL_TIME_RFC3339_SIZE];

    if (optional && ms <= 0)
        return cJSON_AddNullToObject(o, name) ? SPELL_OK : SPELL_ENOMEM;
    if (spell_time_format(ms, t, sizeof t) != SPELL_OK)
        return SPELL_EIO;
    return cJSON_AddStringToObject(o, name, t) ? SPELL_OK : SPELL_ENOMEM;
}

static int add_num(cJSON *o, const char *name, int64_t v)
{
    return cJSON_AddNumberToObject(o, name, (double)v) ? SPELL_OK : SPELL_ENOMEM;
}

static int add_str(cJSON *o, const char *name, const char *v)
{
    return cJSON_AddStringToObject(o, name, v) ? SPELL_OK : SPELL_ENOMEM;
}

/* Adds a stored JSON text as a value (null when absent). */
static int add_json(cJSON *o, const char *name, const char *text, size_t len)
{
    cJSON *v;

    if (!text)
        return cJSON_AddNullToObject(o, name) ? SPELL_OK : SPELL_ENOMEM;
    v = cJSON_ParseWithLength(text, len);
    if (!v)
        v = cJSON_CreateString(text);   /* kept verbatim if it no longer parses */
    if (!v)
        return SPELL_ENOMEM;
    if (!cJSON_AddItemToObject(o, name, v)) {
        cJSON_Delete(v);
        return SPELL_ENOMEM;
    }
    return SPELL_OK;
}

/* A new object appended to array a, or NULL. */
static cJSON *push_obj(cJSON *a)
{
    cJSON *o = cJSON_CreateObject();

    if (o && !cJSON_AddItemToArray(a, o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

static int export_cast(struct conn *c, sqlite3_stmt *st, cJSON *arr, size_t *budget)
{
    struct store_cast k;
    sqlite3_stmt *ev;
    cJSON *o, *events, *e, *err;
    size_t len;
    int rc;

    if ((rc = cast_row(st, &k)) != SPELL_OK)
        return rc;
    rc = SPELL_ENOMEM;
    if (!(o = push_obj(arr)))
        goto out;
    if ((rc = add_str(o, "id", k.id)) || (rc = add_str(o, "spell_key", k.spell_key)) ||
        (rc = add_str(o, "spell_version", k.spell_version)) || (rc = add_str(o, "mode", k.mode)) ||
        (rc = add_str(o, "status", k.status)) || (rc = add_num(o, "progress", k.progress)) ||
        (rc = add_str(o, "message", k.message)) || (rc = add_str(o, "input_hash", k.input_hash)) ||
        (rc = add_num(o, "estimated_cost_cents", k.estimated_cost_cents)))
        goto out;
    if (k.cost_cents >= 0 ? (rc = add_num(o, "cost_cents", k.cost_cents)) != SPELL_OK
                          : !cJSON_AddNullToObject(o, "cost_cents")) {
        rc = rc ? rc : SPELL_ENOMEM;
        goto out;
    }
    if ((rc = add_str(o, "run_url", k.run_url)) ||
        (rc = add_str(o, "artifact_url", k.artifact_url)))
        goto out;
    if (k.error_code[0]) {
        rc = SPELL_ENOMEM;
        if (!(err = cJSON_AddObjectToObject(o, "error")) ||
            (rc = add_str(err, "code", k.error_code)) ||
            (rc = add_str(err, "message", k.error_message)))
            goto out;
    }
    if ((rc = add_time(o, "created_at", k.created_at, 0)) ||
        (rc = add_time(o, "started_at", k.started_at, 1)) ||
        (rc = add_time(o, "finished_at", k.finished_at, 1)) ||
        (rc = add_str(o, "idempotency_key", k.idempotency_key)) ||
        (rc = add_str(o, "period", k.period)))
        goto out;
    len = k.inputs ? strlen(k.inputs) : 0;
    if (len > *budget) {
        rc = SPELL_ETOOBIG;
        goto out;
    }
    *budget -= len;
    if ((rc = add_json(o, "inputs", k.inputs, len)) != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(events = cJSON_AddArrayToObject(o, "events")))
        goto out;
    if ((rc = query(c, ST_EVENT_LIST, &ev, "tii", k.id, (int64_t)0, (int64_t)-1)) != SPELL_OK)
        goto out;
    while ((rc = step(ev)) == 1) {
        const char *data = (const char *)sqlite3_column_text(ev, 2);
        len = (size_t)sqlite3_column_bytes(ev, 2);
        if (len > *budget) {
            rc = SPELL_ETOOBIG;
            goto out;
        }
        *budget -= len;
        rc = SPELL_ENOMEM;
        if (!(e = push_obj(events)))
            goto out;
        if ((rc = add_num(e, "seq", sqlite3_column_int64(ev, 0))) ||
            (rc = add_str(e, "type", (const char *)sqlite3_column_text(ev, 1))) ||
            (rc = add_json(e, "data", data, len)) ||
            (rc = add_time(e, "ts", sqlite3_column_int64(ev, 3), 0)))
            goto out;
    }
out:
    store_cast_clear(&k);
    return rc;
}

/* Runs statement id bound to user_id and calls row() for each row. */
static int export_rows(struct conn *c, enum st id, const char *user_id, cJSON *arr,
                       int (*row)(sqlite3_stmt *st, cJSON *o))
{
    sqlite3_stmt *st;
    cJSON *o;
    int rc;

    if ((rc = query(c, id, &st, "t", user_id)) != SPELL_OK)
        return rc;
    while ((rc = step(st)) == 1) {
        if (!(o = push_obj(arr)))
            return SPELL_ENOMEM;
        if ((rc = row(st, o)) != SPELL_OK)
            return rc;
    }
    return rc;
}

static const char *col_str(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);

    return t ? t : "";
}

static int row_session(sqlite3_stmt *st, cJSON *o)
{
    int rc;

    if ((rc = add_time(o, "created_at", sqlite3_column_int64(st, 0), 0)) != SPELL_OK)
        return rc;
    return add_time(o, "expires_at", sqlite3_column_int64(st, 1), 0);
}

static int row_key(sqlite3_stmt *st, cJSON *o)
{
    int rc;

    if ((rc = add_str(o, "id", col_str(st, 0))) || (rc = add_str(o, "prefix", col_str(st, 2))) ||
        (rc = add_str(o, "name", col_str(st, 3))) ||
        (rc = add_time(o, "created_at", sqlite3_column_int64(st, 5), 0)) ||
        (rc = add_time(o, "last_used_at", col_i64(st, 6, 0), 1)))
        return rc;
    return add_time(o, "revoked_at", col_i64(st, 7, 0), 1);
}

static int add_soft(cJSON *o, sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return cJSON_AddNullToObject(o, "soft_limit_cents") ? SPELL_OK : SPELL_ENOMEM;
    return add_num(o, "soft_limit_cents", sqlite3_column_int64(st, i));
}

static int row_budget(sqlite3_stmt *st, cJSON *o)
{
    int rc;

    if ((rc = add_str(o, "period", col_str(st, 0))) ||
        (rc = add_num(o, "hard_limit_cents", sqlite3_column_int64(st, 1))))
        return rc;
    return add_soft(o, st, 2);
}

static int row_usage(sqlite3_stmt *st, cJSON *o)
{
    int rc;

    if ((rc = add_str(o, "period", col_str(st, 0))) ||
        (rc = add_num(o, "spent_cents", sqlite3_column_int64(st, 1))) ||
        (rc = add_num(o, "reserved_cents", sqlite3_column_int64(st, 2))))
        return rc;
    return add_num(o, "calls", sqlite3_column_int64(st, 3));
}

static int row_daily(sqlite3_stmt *st, cJSON *o)
{
    int rc;

    if ((rc = add_str(o, "period", col_str(st, 0))) || (rc = add_str(o, "date", col_str(st, 1))) ||
        (rc = add_num(o, "spent_cents", sqlite3_column_int64(st, 2))))
        return rc;
    return add_num(o, "calls", sqlite3_column_int64(st, 3));
}

static int row_spell(sqlite3_stmt *st, cJSON *o)
{
    int rc;

    if ((rc = add_str(o, "period", col_str(st, 0))) ||
        (rc = add_str(o, "spell_key", col_str(st, 1))) ||
        (rc = add_num(o, "spent_cents", sqlite3_column_int64(st, 2))))
        return rc;
    return add_num(o, "calls", sqlite3_column_int64(st, 3));
}

static int row_idem(sqlite3_stmt *st, cJSON *o)
{
    int rc;

    if ((rc = add_str(o, "key", col_str(st, 0))) || (rc = add_str(o, "state", col_str(st, 1))) ||
        (rc = add_num(o, "status", sqlite3_column_int64(st, 2))))
        return rc;
    return add_time(o, "created_at", sqlite3_column_int64(st, 3), 0);
}

static int row_ledger(sqlite3_stmt *st, cJSON *o)
{
    int rc;

    if ((rc = add_num(o, "seq", sqlite3_column_int64(st, 0))) ||
        (rc = add_time(o, "ts", sqlite3_column_int64(st, 1), 0)))
        return rc;
    if (sqlite3_column_type(st, 3) == SQLITE_NULL ? !cJSON_AddNullToObject(o, "cast_id")
                                                  : add_str(o, "cast_id", col_str(st, 3)) != 0)
        return SPELL_ENOMEM;
    if ((rc = add_str(o, "kind", col_str(st, 4))) ||
        (rc = add_num(o, "amount_cents", sqlite3_column_int64(st, 5))) ||
        (rc = add_str(o, "prev_hash", col_str(st, 6))))
        return rc;
    return add_str(o, "hash", col_str(st, 7));
}

static int export_doc(struct conn *c, const char *user_id, cJSON *doc, size_t budget)
{
    struct store_user u;
    sqlite3_stmt *st;
    cJSON *o, *a;
    int rc;

    if ((rc = query(c, ST_USER_GET, &st, "t", user_id)) != SPELL_OK)
        return rc;
    if ((rc = step(st)) != 1)
        return rc == 0 ? SPELL_ENOTFOUND : rc;
    if ((rc = user_row(st, &u)) != SPELL_OK)
        return rc;
    sqlite3_reset(st);
    if (!(o = cJSON_AddObjectToObject(doc, "user")))
        return SPELL_ENOMEM;
    if ((rc = add_str(o, "id", u.id)) || (rc = add_str(o, "login", u.login)) ||
        (rc = add_str(o, "name", u.name)) || (rc = add_str(o, "email", u.email)) ||
        (rc = add_str(o, "avatar_url", u.avatar_url)) || (rc = add_str(o, "role", u.role)) ||
        (rc = add_time(o, "created_at", u.created_at, 0)))
        return rc;

    if (!(a = cJSON_AddArrayToObject(doc, "sessions")) ||
        (rc = export_rows(c, ST_X_SESSIONS, user_id, a, row_session)) != SPELL_OK)
        return a ? rc : SPELL_ENOMEM;
    if (!(a = cJSON_AddArrayToObject(doc, "api_keys")) ||
        (rc = export_rows(c, ST_KEY_LIST, user_id, a, row_key)) != SPELL_OK)
        return a ? rc : SPELL_ENOMEM;

    if ((rc = query(c, ST_BUDGET_STANDING_GET, &st, "t", user_id)) != SPELL_OK)
        return rc;
    if ((rc = step(st)) < 0)
        return rc;
    if (rc == 1) {
        if (!(o = cJSON_AddObjectToObject(doc, "standing_budget")))
            return SPELL_ENOMEM;
        if ((rc = add_num(o, "hard_limit_cents", sqlite3_column_int64(st, 0))) ||
            (rc = add_soft(o, st, 1)))
            return rc;
    } else if (!cJSON_AddNullToObject(doc, "standing_budget")) {
        return SPELL_ENOMEM;
    }
    sqlite3_reset(st);
    if (!(a = cJSON_AddArrayToObject(doc, "budgets")) ||
        (rc = export_rows(c, ST_X_BUDGETS, user_id, a, row_budget)) != SPELL_OK)
        return a ? rc : SPELL_ENOMEM;
    if (!(a = cJSON_AddArrayToObject(doc, "usage")) ||
        (rc = export_rows(c, ST_X_USAGE, user_id, a, row_usage)) != SPELL_OK)
        return a ? rc : SPELL_ENOMEM;
    if (!(a = cJSON_AddArrayToObject(doc, "usage_daily")) ||
        (rc = export_rows(c, ST_X_DAILY, user_id, a, row_daily)) != SPELL_OK)
        return a ? rc : SPELL_ENOMEM;
    if (!(a = cJSON_AddArrayToObject(doc, "usage_by_spell")) ||
        (rc = export_rows(c, ST_X_SPELLS, user_id, a, row_spell)) != SPELL_OK)
        return a ? rc : SPELL_ENOMEM;

    if (!(a = cJSON_AddArrayToObject(doc, "casts")))
        return SPELL_ENOMEM;
    if ((rc = query(c, ST_X_CASTS, &st, "t", user_id)) != SPELL_OK)
        return rc;
    while ((rc = step(st)) == 1) {
        if ((rc = export_cast(c, st, a, &budget)) != SPELL_OK)
            return rc;
    }
    if (rc < 0)
        return rc;

    if (!(a = cJSON_AddArrayToObject(doc, "idempotency_keys")) ||
        (rc = export_rows(c, ST_X_IDEM, user_id, a, row_idem)) != SPELL_OK)
        return a ? rc : SPELL_ENOMEM;
    if (!(a = cJSON_AddArrayToObject(doc, "ledger")) ||
        (rc = export_rows(c, ST_X_LEDGER, user_id, a, row_ledger)) != SPELL_OK)
        return a ? rc : SPELL_ENOMEM;
    return SPELL_OK;
}

static int sq_user_export(struct store *s, const char *user_id, struct spell_buf *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    cJSON *doc = NULL;
    char *txt = NULL;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if (out->len > out->cap)
        return SPELL_ETOOBIG;
    c = conn_get(ss);
    if ((rc = tx_begin(c)) != SPELL_OK)
        goto out;
    if (!(doc = cJSON_CreateObject()))
        rc = SPELL_ENOMEM;
    else
        /* The large texts (inputs, event data) are counted against the room
         * left in out while the tree is built, so a huge history stops early
         * instead of filling memory first. */
        rc = export_doc(c, user_id, doc, out->cap - out->len);
    rc = tx_end(c, rc);
    if (rc != SPELL_OK)
        goto out;
    if (!(txt = cJSON_PrintUnformatted(doc))) {
        rc = SPELL_ENOMEM;
        goto out;
    }
    rc = spell_buf_addstr(out, txt);
out:
    cJSON_free(txt);
    cJSON_Delete(doc);
    conn_put(ss, c);
    return rc;
}

struct user_erase_args {
    const char *user_id;
};

static int user_erase_tx(struct conn *c, void *arg)
{
    const char *user_id = ((const struct user_erase_args *)arg)->user_id;
    int64_t n = 0;
    int rc;

    /* The ledger first: its rows outlive the user and only lose the link. */
    if ((rc = run(c, ST_LEDGER_ERASE, NULL, "t", user_id)) == SPELL_OK &&
        (rc = run(c, ST_USER_DELETE, &n, "t", user_id)) == SPELL_OK && n == 0)
        rc = SPELL_ENOTFOUND;
    return rc;
}

static int sq_user_erase(struct store *s, const char *user_id)
{
    struct user_erase_args a = {user_id};
    int rc;

    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    return write_run(sq(s), user_erase_tx, &a);
}

/* ---- Billing --------------------------------------------------------- */

static int billing_row(sqlite3_stmt *st, struct store_billing *b)
{
    int bad = 0;

    memset(b, 0, sizeof *b);
    bad |= col_copy(st, 0, b->user_id, sizeof b->user_id);
    bad |= col_copy(st, 1, b->customer_id, sizeof b->customer_id);
    bad |= col_copy(st, 2, b->payment_method_id, sizeof b->payment_method_id);
    bad |= col_copy(st, 3, b->brand, sizeof b->brand);
    bad |= col_copy(st, 4, b->last4, sizeof b->last4);
    b->exp_month = (int)col_i64(st, 5, 0);
    b->exp_year = (int)col_i64(st, 6, 0);
    b->payment_failed = col_i64(st, 7, 0) != 0;
    b->updated_at = col_i64(st, 8, 0);
    return bad ? SPELL_EIO : SPELL_OK;
}

/* The billing row found by statement id with key; inside no transaction. */
static int billing_find(struct store *s, enum st id, const char *key, struct store_billing *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = word_ok(key, id == ST_BILLING_GET ? STORE_ID_SIZE : STORE_PROVIDER_ID_SIZE, 0)) !=
        SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, id, &st, "t", key)) == SPELL_OK) {
        rc = step(st);
        if (rc == 1)
            rc = billing_row(st, out);
        else if (rc == 0)
            rc = SPELL_ENOTFOUND;
        sqlite3_reset(st);
    }
    if (rc != SPELL_OK)
        memset(out, 0, sizeof *out);
    conn_put(ss, c);
    return rc;
}

static int sq_billing_get(struct store *s, const char *user_id, struct store_billing *out)
{
    return billing_find(s, ST_BILLING_GET, user_id, out);
}

static int sq_billing_by_customer(struct store *s, const char *customer_id,
                                  struct store_billing *out)
{
    return billing_find(s, ST_BILLING_BY_CUSTOMER, customer_id, out);
}

struct customer_set_args {
    const char *user_id;
    const char *customer_id;
    int64_t now_ms;
};

static int customer_set_tx(struct conn *c, void *arg)
{
    const struct customer_set_args *a = arg;
    sqlite3_stmt *st;
    char have[STORE_PROVIDER_ID_SIZE];
    int rc;

    have[0] = '\0';
    rc = user_exists(c, a->user_id);
    if (rc == 0)
        rc = SPELL_ENOTFOUND;
    else if (rc == 1 && (rc = query(c, ST_BILLING_GET, &st, "t", a->user_id)) == SPELL_OK) {
        rc = step(st);
        if (rc == 1)
            rc = col_copy(st, 1, have, sizeof have) ? SPELL_EIO : SPELL_OK;
        sqlite3_reset(st);
        if (rc == SPELL_OK && have[0])
            rc = strcmp(have, a->customer_id) == 0 ? SPELL_OK : STORE_ECONFLICT;
        else if (rc == SPELL_OK)
            rc = run(c, ST_BILLING_CUSTOMER_PUT, NULL, "tti", a->user_id, a->customer_id,
                     a->now_ms);
    }
    return rc;
}

static int sq_billing_customer_set(struct store *s, const char *user_id, const char *customer_id,
                                   int64_t now_ms)
{
    struct customer_set_args a = {user_id, customer_id, now_ms};
    int rc;

    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = word_ok(customer_id, STORE_PROVIDER_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    return write_run(sq(s), customer_set_tx, &a);
}

static int sq_billing_event_seen(struct store *s, const char *event_id, int *seen)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!seen)
        return SPELL_EINVAL;
    *seen = 0;
    if ((rc = word_ok(event_id, STORE_PROVIDER_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, ST_BILLING_EVENT_SEEN, &st, "t", event_id)) == SPELL_OK) {
        rc = step(st);
        if (rc >= 0) {
            *seen = rc;
            rc = SPELL_OK;
        }
        sqlite3_reset(st);
    }
    conn_put(ss, c);
    return rc;
}

/* The effect of one event, inside the write transaction. */
static int billing_effect(struct conn *c, const struct store_billing_event *ev, int64_t now_ms,
                          int *applied)
{
    sqlite3_stmt *st;
    char user_id[STORE_ID_SIZE];
    int64_t n = 0;
    int rc;

    switch (ev->effect) {
    case STORE_BILLING_NONE:
        return SPELL_OK;
    case STORE_BILLING_CARD_REMOVED:
        rc = run(c, ST_BILLING_CARD_CLEAR, &n, "it", now_ms, ev->payment_method_id);
        break;
    case STORE_BILLING_PAYMENT_FAILED:
    case STORE_BILLING_INVOICE_PAID:
        rc = run(c, ST_BILLING_FAILED_SET, &n, "iit",
                 (int64_t)(ev->effect == STORE_BILLING_PAYMENT_FAILED), now_ms, ev->customer_id);
        break;
    case STORE_BILLING_CARD_SET:
        if ((rc = query(c, ST_BILLING_BY_CUSTOMER, &st, "t", ev->customer_id)) != SPELL_OK)
            return rc;
        rc = step(st);
        if (rc == 1)
            rc = col_copy(st, 0, user_id, sizeof user_id) ? SPELL_EIO : 1;
        sqlite3_reset(st);
        if (rc <= 0)
            return rc;
        if ((rc = run(c, ST_BILLING_CARD_PUT, &n, "tttiiit", ev->payment_method_id, ev->brand,
                      ev->last4, (int64_t)ev->exp_month, (int64_t)ev->exp_year, now_ms,
                      ev->customer_id)) != SPELL_OK)
            return rc;
        /* DESIGN.md §2: the first card brings the $50 hard limit unless
         * the user set a limit of their own. */
        rc = run(c, ST_BILLING_DEFAULT_LIMIT, NULL, "tii", user_id,
                 (int64_t)STORE_DEFAULT_HARD_LIMIT_CENTS, now_ms);
        break;
    default:
        return SPELL_EINVAL;
    }
    if (rc == SPELL_OK && applied)
        *applied = n > 0;
    return rc;
}

struct event_apply_args {
    const struct store_billing_event *ev;
    int64_t now_ms;
    int *duplicate;
    int *applied;                   /* may be NULL */
};

static int event_apply_tx(struct conn *c, void *arg)
{
    const struct event_apply_args *a = arg;
    sqlite3_stmt *st;
    int rc;

    if ((rc = query(c, ST_BILLING_EVENT_SEEN, &st, "t", a->ev->event_id)) == SPELL_OK) {
        rc = step(st);
        sqlite3_reset(st);
    }
    if (rc == 1) {
        *a->duplicate = 1;
        rc = SPELL_OK;
    } else if (rc == 0 &&
               (rc = run(c, ST_BILLING_EVENT_INSERT, NULL, "tti", a->ev->event_id, a->ev->type,
                         a->now_ms)) == SPELL_OK) {
        rc = billing_effect(c, a->ev, a->now_ms, a->applied);
    }
    return rc;
}

static int sq_billing_event_apply(struct store *s, const struct store_billing_event *ev,
                                  int64_t now_ms, int *duplicate, int *applied)
{
    struct event_apply_args a = {ev, now_ms, duplicate, applied};
    int rc;

    if (applied)
        *applied = 0;
    if (!ev || !duplicate)
        return SPELL_EINVAL;
    *duplicate = 0;
    if ((rc = word_ok(ev->event_id, STORE_PROVIDER_ID_SIZE, 0)) != SPELL_OK ||
        (rc = word_ok(ev->type, STORE_NAME_SIZE, 0)) != SPELL_OK)
        return rc;
    switch (ev->effect) {
    case STORE_BILLING_NONE:
        break;
    case STORE_BILLING_CARD_SET:
        if ((rc = word_ok(ev->customer_id, STORE_PROVIDER_ID_SIZE, 0)) != SPELL_OK ||
            (rc = word_ok(ev->payment_method_id, STORE_PROVIDER_ID_SIZE, 0)) != SPELL_OK ||
            (rc = word_ok(ev->brand, STORE_BRAND_SIZE, 0)) != SPELL_OK ||
            (rc = word_ok(ev->last4, 5, 0)) != SPELL_OK)
            return rc;
        if (ev->exp_month < 1 || ev->exp_month > 12 || ev->exp_year < 1970 ||
            ev->exp_year > 9999)
            return SPELL_EINVAL;
        break;
    case STORE_BILLING_CARD_REMOVED:
        if ((rc = word_ok(ev->payment_method_id, STORE_PROVIDER_ID_SIZE, 0)) != SPELL_OK)
            return rc;
        break;
    case STORE_BILLING_PAYMENT_FAILED:
    case STORE_BILLING_INVOICE_PAID:
        if ((rc = word_ok(ev->customer_id, STORE_PROVIDER_ID_SIZE, 0)) != SPELL_OK)
            return rc;
        break;
    default:
        return SPELL_EINVAL;
    }
    rc = write_run(sq(s), event_apply_tx, &a);
    if (rc != SPELL_OK && applied)
        *applied = 0;
    return rc;
}

static int sq_billing_invoice_get(struct store *s, const char *user_id, const char *period,
                                  char *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    out[0] = '\0';
    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = period_ok(period)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, ST_BILLING_INVOICE_GET, &st, "tt", user_id, period)) == SPELL_OK) {
        rc = step(st);
        if (rc == 1)
            rc = col_copy(st, 0, out, STORE_PROVIDER_ID_SIZE) ? SPELL_EIO : SPELL_OK;
        else if (rc == 0)
            rc = SPELL_ENOTFOUND;
        sqlite3_reset(st);
    }
    if (rc != SPELL_OK)
        out[0] = '\0';
    conn_put(ss, c);
    return rc;
}

struct invoice_record_args {
    const char *user_id;
    const char *period;
    const char *invoice_id;
    int64_t amount_cents;
    int64_t now_ms;
    int64_t *ledger_seq;            /* may be NULL */
};

static int invoice_record_tx(struct conn *c, void *arg)
{
    const struct invoice_record_args *a = arg;
    sqlite3_stmt *st;
    int rc = user_exists(c, a->user_id);

    if (rc == 0)
        rc = SPELL_ENOTFOUND;
    else if (rc == 1 &&
             (rc = query(c, ST_BILLING_INVOICE_GET, &st, "tt", a->user_id, a->period)) ==
                 SPELL_OK) {
        rc = step(st);
        sqlite3_reset(st);
        if (rc == 1)
            rc = STORE_ECONFLICT;
        else if (rc == 0 &&
                 (rc = run(c, ST_BILLING_INVOICE_INSERT, NULL, "tttii", a->user_id, a->period,
                           a->invoice_id, a->amount_cents, a->now_ms)) == SPELL_OK)
            rc = ledger_insert(c, a->user_id, NULL, "invoice", a->amount_cents, a->now_ms,
                               a->ledger_seq);
    }
    return rc;
}

static int sq_billing_invoice_record(struct store *s, const char *user_id, const char *period,
                                     const char *invoice_id, int64_t amount_cents,
                                     int64_t now_ms, int64_t *ledger_seq)
{
    struct invoice_record_args a = {user_id, period, invoice_id, amount_cents, now_ms,
                                    ledger_seq};
    int rc;

    if (ledger_seq)
        *ledger_seq = 0;
    if ((rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK ||
        (rc = period_ok(period)) != SPELL_OK ||
        (rc = word_ok(invoice_id, STORE_PROVIDER_ID_SIZE, 0)) != SPELL_OK)
        return rc;
    if (amount_cents < 0 || now_ms < 0)
        return SPELL_EINVAL;
    rc = write_run(sq(s), invoice_record_tx, &a);
    if (rc != SPELL_OK && ledger_seq)
        *ledger_seq = 0;
    return rc;
}

static int sq_billing_usage_users(struct store *s, const char *period,
                                  int (*fn)(void *ud, const char *user_id, int64_t spent_cents),
                                  void *ud)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    sqlite3_stmt *st;
    char user_id[STORE_ID_SIZE];
    int rc;

    if (!fn)
        return SPELL_EINVAL;
    if ((rc = period_ok(period)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    if ((rc = query(c, ST_BILLING_USAGE_USERS, &st, "t", period)) == SPELL_OK) {
        while ((rc = step(st)) == 1) {
            if (col_copy(st, 0, user_id, sizeof user_id)) {
                rc = SPELL_EIO;
                break;
            }
            if (fn(ud, user_id, sqlite3_column_int64(st, 1)) != 0) {
                rc = SPELL_EABORT;
                break;
            }
        }
        if (rc == 0)
            rc = SPELL_OK;
        sqlite3_reset(st);
    }
    conn_put(ss, c);
    return rc;
}

/* ---- Open ------------------------------------------------------------ */

/* ---- GitHub identities and device grants ----------------------------- */

/* These statements run rarely (a sign-in, a poll every few seconds), so
 * they are prepared per call instead of joining the cached table. */
static int raw_query(struct conn *c, const char *sql, sqlite3_stmt **out, const char *fmt, ...)
{
    va_list ap;
    int rc, src;

    *out = NULL;
    src = sqlite3_prepare_v2(c->db, sql, -1, out, NULL);
    if (src != SQLITE_OK)
        return map_rc(src);
    va_start(ap, fmt);
    rc = bindv(*out, fmt, ap);
    va_end(ap);
    return rc;
}

static int raw_run(struct conn *c, const char *sql, int64_t *changes, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int rc, src;

    src = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (src != SQLITE_OK)
        return map_rc(src);
    va_start(ap, fmt);
    rc = bindv(st, fmt, ap);
    va_end(ap);
    if (rc == SPELL_OK) {
        rc = step(st);
        if (rc > 0)
            rc = SPELL_OK;
        if (rc == SPELL_OK && changes)
            *changes = sqlite3_changes64(c->db);
    }
    sqlite3_finalize(st);
    return rc;
}

static int gh_user_load(struct conn *c, const char *sql, struct store_user *out, const char *fmt,
                        const void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (fmt[0] == 'i')
        rc = raw_query(c, sql, &st, "i", *(const int64_t *)arg);
    else
        rc = raw_query(c, sql, &st, "t", (const char *)arg);
    if (rc == SPELL_OK) {
        rc = step(st);
        if (rc == 0)
            rc = SPELL_ENOTFOUND;
        else if (rc == 1)
            rc = user_row(st, out);
    }
    sqlite3_finalize(st);
    return rc;
}

struct upsert_github_args {
    int64_t github_id;
    const struct store_user *u;
    int64_t now_ms;
    struct store_user *out;
    int *created;
};

static int upsert_github_tx(struct conn *c, void *arg)
{
    const struct upsert_github_args *a = arg;
    const struct store_user *u = a->u;
    struct store_user *out = a->out;
    struct store_user other;
    int rc;

    rc = gh_user_load(c, "SELECT u.id, u.login, u.name, u.email, u.avatar_url, u.role,"
                         " u.created_at FROM github_identities g JOIN users u ON u.id = g.user_id"
                         " WHERE g.github_id = ?", out, "i", &a->github_id);
    if (rc == SPELL_OK) {
        /* A renamed GitHub account keeps its user; its new login must not
         * belong to somebody else. */
        rc = gh_user_load(c, "SELECT " USER_COLS " FROM users WHERE login = ?", &other, "t",
                          u->login);
        if (rc == SPELL_OK && strcmp(other.id, out->id) != 0)
            rc = STORE_ECONFLICT;
        else if (rc == SPELL_ENOTFOUND || rc == SPELL_OK)
            rc = raw_run(c, "UPDATE users SET login = ?, name = ?, email = ?, avatar_url = ?"
                            " WHERE id = ?", NULL, "ttttt", u->login, u->name, u->email,
                         u->avatar_url, out->id);
        if (rc == SPELL_OK) {
            snprintf(out->login, sizeof out->login, "%s", u->login);
            snprintf(out->name, sizeof out->name, "%s", u->name);
            snprintf(out->email, sizeof out->email, "%s", u->email);
            snprintf(out->avatar_url, sizeof out->avatar_url, "%s", u->avatar_url);
        }
    } else if (rc == SPELL_ENOTFOUND) {
        /* A local account with the same login is never taken over by a
         * GitHub sign-in: the login is a conflict. */
        rc = raw_run(c, "INSERT INTO users (" USER_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?)", NULL,
                     "tttttti", u->id, u->login, u->name, u->email, u->avatar_url, u->role,
                     u->created_at);
        if (rc == SPELL_OK)
            rc = raw_run(c, "INSERT INTO github_identities (github_id, user_id, created_at)"
                            " VALUES (?, ?, ?)", NULL, "iti", a->github_id, u->id, a->now_ms);
        if (rc == SPELL_OK) {
            *out = *u;
            *a->created = 1;
        }
    }
    return rc;
}

static int sq_user_upsert_github(struct store *s, int64_t github_id, const struct store_user *u,
                                 int64_t now_ms, struct store_user *out, int *created)
{
    struct upsert_github_args a = {github_id, u, now_ms, out, created};
    int rc;

    if (!out || !created)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    *created = 0;
    if (github_id <= 0)
        return SPELL_EINVAL;
    if ((rc = user_ok(u)) != SPELL_OK)
        return rc;
    rc = write_run(sq(s), upsert_github_tx, &a);
    if (rc != SPELL_OK) {
        memset(out, 0, sizeof *out);
        *created = 0;
    }
    return rc;
}

#define DEVICE_COLS "device_hash, user_code, status, user_id, created_at, expires_at," \
    " last_poll_at, interval_s"

static int device_row(sqlite3_stmt *st, struct store_device *d)
{
    int bad = 0;

    bad |= col_copy(st, 0, d->device_hash, sizeof d->device_hash);
    bad |= col_copy(st, 1, d->user_code, sizeof d->user_code);
    bad |= col_copy(st, 2, d->status, sizeof d->status);
    bad |= col_copy(st, 3, d->user_id, sizeof d->user_id);
    d->created_at = sqlite3_column_int64(st, 4);
    d->expires_at = sqlite3_column_int64(st, 5);
    d->last_poll_at = sqlite3_column_int64(st, 6);
    d->interval_s = (int)sqlite3_column_int64(st, 7);
    return bad ? SPELL_EIO : SPELL_OK;
}

static int user_code_ok(const char *code)
{
    size_t i;

    if (!code || strnlen(code, STORE_USER_CODE_SIZE) != STORE_USER_CODE_SIZE - 1)
        return SPELL_EINVAL;
    for (i = 0; i < STORE_USER_CODE_SIZE - 1; i++) {
        if (code[i] < 'A' || code[i] > 'Z')
            return SPELL_EINVAL;
    }
    return SPELL_OK;
}

static int device_load(struct conn *c, const char *where, const char *key,
                       struct store_device *out)
{
    char sql[256];
    sqlite3_stmt *st = NULL;
    int rc;

    snprintf(sql, sizeof sql, "SELECT " DEVICE_COLS " FROM device_grants WHERE %s = ?", where);
    if ((rc = raw_query(c, sql, &st, "t", key)) == SPELL_OK) {
        rc = step(st);
        if (rc == 0)
            rc = SPELL_ENOTFOUND;
        else if (rc == 1)
            rc = device_row(st, out);
    }
    sqlite3_finalize(st);
    return rc;
}

struct device_create_args {
    const struct store_device *d;
};

static int device_create_tx(struct conn *c, void *arg)
{
    const struct store_device *d = ((const struct device_create_args *)arg)->d;

    return raw_run(c, "INSERT INTO device_grants (" DEVICE_COLS ") VALUES"
                      " (?, ?, 'pending', NULL, ?, ?, 0, ?)", NULL, "ttiii", d->device_hash,
                   d->user_code, d->created_at, d->expires_at, (int64_t)d->interval_s);
}

static int sq_device_create(struct store *s, const struct store_device *d)
{
    struct device_create_args a = {d};

    if (!d || hash_ok(d->device_hash) != SPELL_OK || user_code_ok(d->user_code) != SPELL_OK ||
        d->created_at < 0 || d->expires_at <= d->created_at || d->interval_s < 1)
        return SPELL_EINVAL;
    return write_run(sq(s), device_create_tx, &a);
}

static int sq_device_by_user_code(struct store *s, const char *user_code, int64_t now_ms,
                                  struct store_device *out)
{
    struct sqlite_store *ss = sq(s);
    struct conn *c;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = user_code_ok(user_code)) != SPELL_OK)
        return rc;
    c = conn_get(ss);
    rc = device_load(c, "user_code", user_code, out);
    if (rc == SPELL_OK && (strcmp(out->status, "pending") != 0 || out->expires_at <= now_ms))
        rc = SPELL_ENOTFOUND;
    if (rc != SPELL_OK)
        memset(out, 0, sizeof *out);
    conn_put(ss, c);
    return rc;
}

struct device_decide_args {
    const char *user_code;
    const char *user_id;            /* NULL to deny */
    int64_t now_ms;
};

static int device_decide_tx(struct conn *c, void *arg)
{
    const struct device_decide_args *a = arg;
    int64_t n = 0;
    int rc;

    rc = raw_run(c, "UPDATE device_grants SET status = ?, user_id = ? WHERE user_code = ?"
                    " AND status = 'pending' AND expires_at > ?", &n, "ttti",
                 a->user_id ? "approved" : "denied", a->user_id, a->user_code, a->now_ms);
    if (rc == SPELL_OK && n == 0)
        rc = SPELL_ENOTFOUND;
    return rc;
}

static int sq_device_decide(struct store *s, const char *user_code, const char *user_id,
                            int64_t now_ms)
{
    struct device_decide_args a = {user_code, user_id, now_ms};
    int rc;

    if ((rc = user_code_ok(user_code)) != SPELL_OK ||
        (user_id && (rc = word_ok(user_id, STORE_ID_SIZE, 0)) != SPELL_OK))
        return rc;
    return write_run(sq(s), device_decide_tx, &a);
}

struct device_poll_args {
    const char *device_hash;
    int64_t now_ms;
    int slow_down_step_s;
    int *outcome;
    struct store_device *out;
};

static int device_poll_tx(struct conn *c, void *arg)
{
    const struct device_poll_args *a = arg;
    struct store_device *out = a->out;
    int64_t now_ms = a->now_ms;
    int rc;

    rc = device_load(c, "device_hash", a->device_hash, out);
    if (rc == SPELL_ENOTFOUND) {
        rc = SPELL_OK;
    } else if (rc == SPELL_OK && strcmp(out->status, "consumed") == 0) {
        *a->outcome = STORE_DEVICE_INVALID;
    } else if (rc == SPELL_OK && out->expires_at <= now_ms) {
        *a->outcome = STORE_DEVICE_EXPIRED;
    } else if (rc == SPELL_OK && out->last_poll_at > 0 &&
               now_ms - out->last_poll_at < (int64_t)out->interval_s * 1000) {
        *a->outcome = STORE_DEVICE_SLOW_DOWN;
        if (out->interval_s <= STORE_DEVICE_INTERVAL_MAX - a->slow_down_step_s)
            out->interval_s += a->slow_down_step_s;
        rc = raw_run(c, "UPDATE device_grants SET last_poll_at = ?, interval_s = ?"
                        " WHERE device_hash = ?", NULL, "iit", now_ms,
                     (int64_t)out->interval_s, a->device_hash);
    } else if (rc == SPELL_OK) {
        if (strcmp(out->status, "approved") == 0)
            *a->outcome = STORE_DEVICE_APPROVED;
        else if (strcmp(out->status, "denied") == 0)
            *a->outcome = STORE_DEVICE_DENIED;
        else
            *a->outcome = STORE_DEVICE_PENDING;
        /* An approval is handed out once: the grant is spent here, in the
         * same transaction that read it. */
        rc = raw_run(c, "UPDATE device_grants SET last_poll_at = ?,"
                        " status = CASE WHEN status = 'approved' THEN 'consumed' ELSE status END"
                        " WHERE device_hash = ?", NULL, "it", now_ms, a->device_hash);
    }
    return rc;
}

static int sq_device_poll(struct store *s, const char *device_hash, int64_t now_ms,
                          int slow_down_step_s, int *outcome, struct store_device *out)
{
    struct device_poll_args a = {device_hash, now_ms, slow_down_step_s, outcome, out};
    int rc;

    if (!outcome || !out || slow_down_step_s < 0)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    *outcome = STORE_DEVICE_INVALID;
    if ((rc = hash_ok(device_hash)) != SPELL_OK)
        return rc;
    if ((rc = write_run(sq(s), device_poll_tx, &a)) != SPELL_OK)
        *outcome = STORE_DEVICE_INVALID;
    return rc;
}

struct devices_purge_args {
    int64_t before_ms;
    int64_t removed;
};

static int devices_purge_tx(struct conn *c, void *arg)
{
    struct devices_purge_args *a = arg;

    return raw_run(c, "DELETE FROM device_grants WHERE expires_at <= ?", &a->removed, "i",
                   a->before_ms);
}

static int sq_devices_purge(struct store *s, int64_t before_ms, int64_t *removed)
{
    struct devices_purge_args a = {before_ms, 0};
    int rc = write_run(sq(s), devices_purge_tx, &a);

    if (removed)
        *removed = rc == SPELL_OK ? a.removed : 0;
    return rc;
}

static const struct store_ops sqlite_ops = {
    .close = sq_close,
    .ping = sq_ping,
    .schema_version = sq_schema_version,
    .user_create = sq_user_create,
    .user_get = sq_user_get,
    .user_by_login = sq_user_by_login,
    .session_create = sq_session_create,
    .session_user = sq_session_user,
    .session_delete = sq_session_delete,
    .sessions_purge = sq_sessions_purge,
    .key_create = sq_key_create,
    .key_by_prefix = sq_key_by_prefix,
    .key_list = sq_key_list,
    .key_revoke = sq_key_revoke,
    .key_touch = sq_key_touch,
    .budget_get = sq_budget_get,
    .budget_set = sq_budget_set,
    .budget_clear = sq_budget_clear,
    .usage_get = sq_usage_get,
    .spell_upsert = sq_spell_upsert,
    .spell_get = sq_spell_get,
    .spell_list = sq_spell_list,
    .idem_begin = sq_idem_begin,
    .idem_finish = sq_idem_finish,
    .idem_abandon = sq_idem_abandon,
    .idem_lookup = sq_idem_lookup,
    .idem_put = sq_idem_put,
    .idem_purge = sq_idem_purge,
    .cast_reserve = sq_cast_reserve,
    .cast_start = sq_cast_start,
    .cast_start_progress = sq_cast_start_progress,
    .cast_progress = sq_cast_progress,
    .cast_set_run_url = sq_cast_set_run_url,
    .cast_settle = sq_cast_settle,
    .cast_release = sq_cast_release,
    .cast_get = sq_cast_get,
    .cast_list = sq_cast_list,
    .casts_unfinished = sq_casts_unfinished,
    .event_append = sq_event_append,
    .events_after = sq_events_after,
    .ledger_append = sq_ledger_append,
    .ledger_list = sq_ledger_list,
    .ledger_verify = sq_ledger_verify,
    .user_export = sq_user_export,
    .user_erase = sq_user_erase,
    .billing_get = sq_billing_get,
    .billing_by_customer = sq_billing_by_customer,
    .billing_customer_set = sq_billing_customer_set,
    .billing_event_seen = sq_billing_event_seen,
    .billing_event_apply = sq_billing_event_apply,
    .billing_invoice_get = sq_billing_invoice_get,
    .billing_invoice_record = sq_billing_invoice_record,
    .billing_usage_users = sq_billing_usage_users,
    .cast_set_run = sq_cast_set_run,
    .cast_run_id = sq_cast_run_id,
    .cast_by_run_id = sq_cast_by_run_id,
    .cast_mark_dispatch = sq_cast_mark_dispatch,
    .cast_dispatched_at = sq_cast_dispatched_at,
    .delivery_seen = sq_delivery_seen,
    .delivery_record = sq_delivery_record,
    .user_upsert_github = sq_user_upsert_github,
    .device_create = sq_device_create,
    .device_by_user_code = sq_device_by_user_code,
    .device_decide = sq_device_decide,
    .device_poll = sq_device_poll,
    .devices_purge = sq_devices_purge,
};

int store_sqlite_open(const char *path, struct store **out)
{
    struct sqlite_store *ss;
    size_t i, want;
    int memory, rc;

    if (!out)
        return SPELL_EINVAL;
    *out = NULL;
    if (!path || !path[0])
        return SPELL_EINVAL;
    if (!(ss = calloc(1, sizeof *ss)))
        return SPELL_ENOMEM;
    if (pthread_mutex_init(&ss->pool_lock, NULL) != 0) {
        free(ss);
        return SPELL_ENOMEM;
    }
    if (pthread_cond_init(&ss->pool_free, NULL) != 0) {
        pthread_mutex_destroy(&ss->pool_lock);
        free(ss);
        return SPELL_ENOMEM;
    }
    if (pthread_mutex_init(&ss->gc_lock, NULL) != 0) {
        pthread_cond_destroy(&ss->pool_free);
        pthread_mutex_destroy(&ss->pool_lock);
        free(ss);
        return SPELL_ENOMEM;
    }
    if (pthread_cond_init(&ss->gc_idle, NULL) != 0) {
        pthread_mutex_destroy(&ss->gc_lock);
        pthread_cond_destroy(&ss->pool_free);
        pthread_mutex_destroy(&ss->pool_lock);
        free(ss);
        return SPELL_ENOMEM;
    }
    ss->gc_tail = &ss->gc_head;
    ss->base.ops = &sqlite_ops;
    memory = strcmp(path, ":memory:") == 0;
    if (!memory && (rc = conn_open(path, &ss->writer)) != SPELL_OK)
        goto fail;
    want = memory ? 1 : POOL_SIZE;
    for (i = 0; i < want; i++) {
        rc = conn_open(path, &ss->conns[i]);
        ss->n_conns++;
        if (rc != SPELL_OK)
            goto fail;
        /* The schema is settled before the other connections open, so
         * none of them sees a half-made database. */
        if (i == 0 && (rc = migrate(ss)) != SPELL_OK)
            goto fail;
    }
    *out = &ss->base;
    return SPELL_OK;
fail:
    sq_close(&ss->base);
    return rc;
}

/* ---- Test hooks (store-impl.h) ---------------------------------------- */

/* Holding counts as a batch under way: writes queue behind it, and
 * letting go hands the lead to the first of them. */
void store_sqlite_hold_writes(struct store *s, int hold)
{
    struct sqlite_store *ss = sq(s);

    pthread_mutex_lock(&ss->gc_lock);
    if (hold) {
        while (ss->gc_busy)
            pthread_cond_wait(&ss->gc_idle, &ss->gc_lock);
        ss->gc_busy = 1;
    } else if (ss->gc_head) {
        lead_give(ss);
    } else {
        ss->gc_busy = 0;
        pthread_cond_broadcast(&ss->gc_idle);
    }
    pthread_mutex_unlock(&ss->gc_lock);
}

size_t store_sqlite_writes_waiting(struct store *s)
{
    struct sqlite_store *ss = sq(s);
    size_t n;

    pthread_mutex_lock(&ss->gc_lock);
    n = ss->gc_queued;
    pthread_mutex_unlock(&ss->gc_lock);
    return n;
}

long store_sqlite_group_commits(struct store *s)
{
    return atomic_load(&sq(s)->batches);
}

/* Nonzero turns the COMMIT into a ROLLBACK (sqlite3_commit_hook). */
static int refuse_commit(void *ud)
{
    struct sqlite_store *ss = ud;
    int n = atomic_load(&ss->fail_commits);

    while (n > 0 && !atomic_compare_exchange_weak(&ss->fail_commits, &n, n - 1))
        ;
    return n > 0;
}

void store_sqlite_fail_commits(struct store *s, int n)
{
    struct sqlite_store *ss = sq(s);
    size_t i;

    atomic_store(&ss->fail_commits, n);
    for (i = 0; i < ss->n_conns; i++)
        sqlite3_commit_hook(ss->conns[i].db, n > 0 ? refuse_commit : NULL, ss);
    if (ss->writer.db)
        sqlite3_commit_hook(ss->writer.db, n > 0 ? refuse_commit : NULL, ss);
}
