/*
 * The durable queue: one SQLite table of local casts under
 * $XDG_STATE_HOME/spell/agent.db, in WAL mode with synchronous=FULL, so a
 * row the agent answered about is on disk whatever happens next.
 *
 * The one exception is queue_update_progress(), for the events of a
 * followed cast: it commits with synchronous=NORMAL, so the commit waits
 * for no fsync (the next FULL commit or checkpoint syncs it along).  Such
 * a row survives the agent crashing (it is in the kernel's page cache);
 * after a power cut it may be older than the last event, and the stream
 * resumes from the older last_event_id, so the server replays what was
 * lost.  An fsync per event was the agent's largest share of the
 * completion-to-notification latency: the loop waited on the disk for
 * every event of 1,000 streams, each wait delaying all the others.
 *
 * Checkpoints are rarer than SQLite's default (every QUEUE_CHECKPOINT_PAGES
 * pages of WAL instead of 1,000).  A checkpoint runs inside a commit, on
 * the loop, and waits for two fsyncs; it copies each page once however
 * often the WAL holds it, and the queue's few hundred pages are rewritten
 * over and over, so a checkpoint costs about the same whatever the WAL's
 * length.  Following 1,000 casts, the default made one checkpoint a second,
 * each holding the loop 20-120 ms.  The WAL file is cut back to
 * QUEUE_WAL_KEEP_BYTES after a checkpoint.
 *
 * A row is inserted (with its Idempotency-Key) before any request for it
 * is sent; every later change writes the whole mutable part of the row.
 * Only the loop thread uses the connection.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "spell/errors.h"
#include "spell/json.h"

#include "agent.h"

/* WAL pages between checkpoints (64 MiB at 4 KiB pages), and what is kept
 * of the WAL file after one (see above). */
#define QUEUE_CHECKPOINT_PAGES 16384
#define QUEUE_WAL_KEEP_BYTES 4194304
#define STR_(x) #x
#define STR(x) STR_(x)

/* Distinct statements the queue prepares (every one a literal here). */
#define QUEUE_STMTS 16

struct queue {
    sqlite3 *db;
    /* Prepared once, on first use, and kept: a followed event costs a
     * lookup and an update, not two parses.  Keyed by the SQL text's
     * address; every statement is reset (stmt_put) before its caller
     * returns, so none holds a read transaction between turns. */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } stmts[QUEUE_STMTS];
};

/* The statement for sql, prepared on first use; NULL when it does not
 * prepare (logged) or the cache is full (a programming error). */
static sqlite3_stmt *stmt_get(struct queue *q, const char *sql)
{
    size_t i;

    for (i = 0; i < QUEUE_STMTS && q->stmts[i].sql; i++)
        if (q->stmts[i].sql == sql)
            return q->stmts[i].st;
    if (i == QUEUE_STMTS) {
        agent_log("queue: more than %d statements", QUEUE_STMTS);
        return NULL;
    }
    if (sqlite3_prepare_v2(q->db, sql, -1, &q->stmts[i].st, NULL) != SQLITE_OK) {
        agent_log("queue: %s", sqlite3_errmsg(q->db));
        sqlite3_finalize(q->stmts[i].st);
        q->stmts[i].st = NULL;
        return NULL;
    }
    q->stmts[i].sql = sql;
    return q->stmts[i].st;
}

/* Done with a statement from stmt_get(): ready for its next use. */
static void stmt_put(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

static const char *const state_names[] = {
    "pending", "submitting", "queued", "running", "succeeded", "failed", "canceled", "rejected",
};

const char *lcast_state_name(enum lcast_state s)
{
    if ((unsigned)s >= sizeof(state_names) / sizeof(state_names[0]))
        return NULL;
    return state_names[s];
}

int lcast_state_parse(const char *s, enum lcast_state *out)
{
    for (size_t i = 0; s && i < sizeof(state_names) / sizeof(state_names[0]); i++) {
        if (strcmp(s, state_names[i]) == 0) {
            *out = (enum lcast_state)i;
            return SPELL_OK;
        }
    }
    return SPELL_EINVAL;
}

bool lcast_state_is_final(enum lcast_state s)
{
    return s == LCAST_SUCCEEDED || s == LCAST_FAILED || s == LCAST_CANCELED ||
           s == LCAST_REJECTED;
}

void lcast_free(struct lcast *c)
{
    if (!c)
        return;
    free(c->spell);
    free(c->inputs);
    free(c->mode);
    free(c->cast_id);
    free(c->message);
    free(c->artifact_url);
    free(c->error_code);
    free(c->error_message);
    memset(c, 0, sizeof(*c));
}

static int add_opt_int(cJSON *o, const char *name, bool has, int64_t v)
{
    if (!has)
        return cJSON_AddNullToObject(o, name) ? SPELL_OK : SPELL_ENOMEM;
    return spell_json_add_int64(o, name, v);
}

cJSON *lcast_to_json(const struct lcast *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = NULL;

    if (!o || spell_json_add_string(o, "local_id", c->local_id) ||
        spell_json_add_string(o, "cast_id", c->cast_id) ||
        spell_json_add_string(o, "spell", c->spell) ||
        spell_json_add_string(o, "state", lcast_state_name(c->state)) ||
        spell_json_add_int64(o, "progress", c->progress) ||
        spell_json_add_string(o, "message", c->message) ||
        add_opt_int(o, "estimated_cost_cents", c->has_estimate, c->estimated_cost_cents) ||
        add_opt_int(o, "cost_cents", c->has_cost, c->cost_cents) ||
        spell_json_add_string(o, "artifact_url", c->artifact_url))
        goto fail;
    if (c->error_code) {
        e = cJSON_CreateObject();
        if (!e || spell_json_add_string(e, "code", c->error_code) ||
            spell_json_add_string(e, "message", c->error_message) ||
            add_opt_int(e, "status", c->error_status != 0, c->error_status))
            goto fail;
        cJSON_AddItemToObject(o, "error", e);
        e = NULL;
    } else if (!cJSON_AddNullToObject(o, "error")) {
        goto fail;
    }
    if (spell_json_add_int64(o, "attempts", c->attempts) ||
        spell_json_add_time(o, "next_attempt_at",
                            c->state == LCAST_PENDING ? c->next_attempt_at : 0) ||
        spell_json_add_time(o, "created_at", c->created_at) ||
        spell_json_add_time(o, "finished_at", c->finished_at) ||
        add_opt_int(o, "duration_ms", c->has_duration, c->duration_ms) ||
        spell_json_add_bool(o, "final", lcast_state_is_final(c->state)))
        goto fail;
    return o;
fail:
    cJSON_Delete(e);
    cJSON_Delete(o);
    return NULL;
}

/* ---- SQLite ---- */

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS casts ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " local_id TEXT NOT NULL UNIQUE,"
    " idem_key TEXT NOT NULL,"
    " spell TEXT NOT NULL,"
    " inputs TEXT NOT NULL,"
    " budget_cap INTEGER,"
    " mode TEXT,"
    " state TEXT NOT NULL,"
    " cast_id TEXT,"
    " progress INTEGER NOT NULL DEFAULT 0,"
    " message TEXT,"
    " estimated_cost INTEGER,"
    " cost INTEGER,"
    " artifact_url TEXT,"
    " error_code TEXT,"
    " error_message TEXT,"
    " error_status INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    " last_event_id INTEGER NOT NULL DEFAULT 0,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL,"
    " started_at INTEGER NOT NULL DEFAULT 0,"
    " finished_at INTEGER NOT NULL DEFAULT 0,"
    " duration_ms INTEGER"
    ");"
    "CREATE INDEX IF NOT EXISTS casts_state ON casts(state, next_attempt_at);"
    "CREATE INDEX IF NOT EXISTS casts_cast_id ON casts(cast_id);";

#define COLUMNS \
    "local_id, idem_key, spell, inputs, budget_cap, mode, state, cast_id, progress, message," \
    " estimated_cost, cost, artifact_url, error_code, error_message, error_status, attempts," \
    " next_attempt_at, last_event_id, cancel_requested, created_at, started_at, finished_at," \
    " duration_ms"

int queue_open(const char *path, struct queue **out, char *err, size_t errlen)
{
    int rc = SPELL_ENOMEM;
    struct queue *q = calloc(1, sizeof(*q));
    char *msg = NULL;

    *out = NULL;
    if (!q)
        goto out;
    rc = SPELL_EIO;
    if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        spell_errf(err, errlen, "%s: %s", path, q->db ? sqlite3_errmsg(q->db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(q->db, 5000);
    if (sqlite3_exec(q->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     " PRAGMA wal_autocheckpoint=" STR(QUEUE_CHECKPOINT_PAGES) ";"
                     " PRAGMA journal_size_limit=" STR(QUEUE_WAL_KEEP_BYTES) ";",
                     NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(q->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        spell_errf(err, errlen, "%s: %s", path, msg ? msg : "cannot set up the queue");
        goto out;
    }
    *out = q;
    q = NULL;
    rc = SPELL_OK;
out:
    sqlite3_free(msg);
    queue_close(q);
    return rc;
}

void queue_close(struct queue *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < QUEUE_STMTS; i++)
        sqlite3_finalize(q->stmts[i].st);
    sqlite3_close(q->db);
    free(q);
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (!s)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static int bind_row(sqlite3_stmt *st, const struct lcast *c)
{
    int r = 0;

    r |= bind_text(st, 1, c->local_id);
    r |= bind_text(st, 2, c->idem_key);
    r |= bind_text(st, 3, c->spell);
    r |= bind_text(st, 4, c->inputs ? c->inputs : "{}");
    r |= c->has_budget_cap ? sqlite3_bind_int64(st, 5, c->budget_cap_cents)
                           : sqlite3_bind_null(st, 5);
    r |= bind_text(st, 6, c->mode);
    r |= bind_text(st, 7, lcast_state_name(c->state));
    r |= bind_text(st, 8, c->cast_id);
    r |= sqlite3_bind_int(st, 9, c->progress);
    r |= bind_text(st, 10, c->message);
    r |= c->has_estimate ? sqlite3_bind_int64(st, 11, c->estimated_cost_cents)
                         : sqlite3_bind_null(st, 11);
    r |= c->has_cost ? sqlite3_bind_int64(st, 12, c->cost_cents) : sqlite3_bind_null(st, 12);
    r |= bind_text(st, 13, c->artifact_url);
    r |= bind_text(st, 14, c->error_code);
    r |= bind_text(st, 15, c->error_message);
    r |= sqlite3_bind_int(st, 16, c->error_status);
    r |= sqlite3_bind_int(st, 17, c->attempts);
    r |= sqlite3_bind_int64(st, 18, c->next_attempt_at);
    r |= sqlite3_bind_int64(st, 19, c->last_event_id);
    r |= sqlite3_bind_int(st, 20, c->cancel_requested ? 1 : 0);
    r |= sqlite3_bind_int64(st, 21, c->created_at);
    r |= sqlite3_bind_int64(st, 22, c->started_at);
    r |= sqlite3_bind_int64(st, 23, c->finished_at);
    r |= c->has_duration ? sqlite3_bind_int64(st, 24, c->duration_ms)
                         : sqlite3_bind_null(st, 24);
    return r == SQLITE_OK ? SPELL_OK : SPELL_ENOMEM;
}

static int col_text(sqlite3_stmt *st, int i, char **out)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    *out = NULL;
    if (!s)
        return SPELL_OK;
    *out = strdup((const char *)s);
    return *out ? SPELL_OK : SPELL_ENOMEM;
}

static void col_fixed(sqlite3_stmt *st, int i, char *out, size_t size)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    out[0] = '\0';
    if (s && strlen((const char *)s) < size)
        memcpy(out, s, strlen((const char *)s) + 1);
}

static int read_row(sqlite3_stmt *st, struct lcast *c)
{
    int rc;

    memset(c, 0, sizeof(*c));
    col_fixed(st, 0, c->local_id, sizeof(c->local_id));
    col_fixed(st, 1, c->idem_key, sizeof(c->idem_key));
    if ((rc = col_text(st, 2, &c->spell)) || (rc = col_text(st, 3, &c->inputs)) ||
        (rc = col_text(st, 5, &c->mode)) || (rc = col_text(st, 7, &c->cast_id)) ||
        (rc = col_text(st, 9, &c->message)) || (rc = col_text(st, 12, &c->artifact_url)) ||
        (rc = col_text(st, 13, &c->error_code)) || (rc = col_text(st, 14, &c->error_message)))
        goto fail;
    c->has_budget_cap = sqlite3_column_type(st, 4) != SQLITE_NULL;
    c->budget_cap_cents = sqlite3_column_int64(st, 4);
    if (lcast_state_parse((const char *)sqlite3_column_text(st, 6), &c->state) != SPELL_OK)
        c->state = LCAST_FAILED;
    c->progress = sqlite3_column_int(st, 8);
    c->has_estimate = sqlite3_column_type(st, 10) != SQLITE_NULL;
    c->estimated_cost_cents = sqlite3_column_int64(st, 10);
    c->has_cost = sqlite3_column_type(st, 11) != SQLITE_NULL;
    c->cost_cents = sqlite3_column_int64(st, 11);
    c->error_status = sqlite3_column_int(st, 15);
    c->attempts = sqlite3_column_int(st, 16);
    c->next_attempt_at = sqlite3_column_int64(st, 17);
    c->last_event_id = sqlite3_column_int64(st, 18);
    c->cancel_requested = sqlite3_column_int(st, 19) != 0;
    c->created_at = sqlite3_column_int64(st, 20);
    c->started_at = sqlite3_column_int64(st, 21);
    c->finished_at = sqlite3_column_int64(st, 22);
    c->has_duration = sqlite3_column_type(st, 23) != SQLITE_NULL;
    c->duration_ms = sqlite3_column_int64(st, 23);
    return SPELL_OK;
fail:
    lcast_free(c);
    return rc;
}

static int step_done(struct queue *q, sqlite3_stmt *st)
{
    int r = sqlite3_step(st);

    if (r != SQLITE_DONE) {
        agent_log("queue: %s", sqlite3_errmsg(q->db));
        return SPELL_EIO;
    }
    return SPELL_OK;
}

int queue_insert(struct queue *q, const struct lcast *c)
{
    int rc = SPELL_EIO;
    sqlite3_stmt *st = NULL;

    if (!(st = stmt_get(q, "INSERT INTO casts (" COLUMNS ") VALUES (?,?,?,?,?,?,?,?,?,?,"
                           "?,?,?,?,?,?,?,?,?,?,?,?,?,?)")))
        goto out;
    if ((rc = bind_row(st, c)) != SPELL_OK)
        goto out;
    rc = step_done(q, st);
out:
    stmt_put(st);
    return rc;
}

int queue_update(struct queue *q, const struct lcast *c)
{
    int rc = SPELL_EIO;
    sqlite3_stmt *st = NULL;

    /* The same 24 placeholders as the insert; local_id (1), idem_key (2)
     * and created_at (21) are bound but never change. */
    if (!(st = stmt_get(q, "UPDATE casts SET idem_key = ?2, spell = ?3, inputs = ?4,"
                           " budget_cap = ?5, mode = ?6, state = ?7, cast_id = ?8,"
                           " progress = ?9, message = ?10, estimated_cost = ?11, cost = ?12,"
                           " artifact_url = ?13, error_code = ?14, error_message = ?15,"
                           " error_status = ?16, attempts = ?17, next_attempt_at = ?18,"
                           " last_event_id = ?19, cancel_requested = ?20, created_at = ?21,"
                           " started_at = ?22, finished_at = ?23, duration_ms = ?24"
                           " WHERE local_id = ?1")))
        goto out;
    if ((rc = bind_row(st, c)) != SPELL_OK)
        goto out;
    rc = step_done(q, st);
out:
    stmt_put(st);
    return rc;
}

/* Runs one PRAGMA synchronous statement, prepared once. */
static int sync_set(struct queue *q, const char *sql)
{
    sqlite3_stmt *st = stmt_get(q, sql);
    int r = st ? sqlite3_step(st) : SQLITE_ERROR;

    stmt_put(st);
    return r == SQLITE_DONE || r == SQLITE_ROW ? SPELL_OK : SPELL_EIO;
}

int queue_update_progress(struct queue *q, const struct lcast *c)
{
    int rc;

    if (sync_set(q, "PRAGMA synchronous=NORMAL") != SPELL_OK)
        return queue_update(q, c);
    rc = queue_update(q, c);
    if (sync_set(q, "PRAGMA synchronous=FULL") != SPELL_OK) {
        agent_log("queue: %s", sqlite3_errmsg(q->db));
        return SPELL_EIO;
    }
    return rc;
}

/* sql: a literal (statements are kept by its address, see stmt_get). */
static int get_one(struct queue *q, const char *sql, const char *text, int64_t num,
                   struct lcast *out)
{
    int rc = SPELL_EIO;
    sqlite3_stmt *st = NULL;
    int r;

    memset(out, 0, sizeof(*out));
    if (!(st = stmt_get(q, sql)))
        goto out;
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_int64(st, 1, num);
    r = sqlite3_step(st);
    if (r == SQLITE_DONE) {
        rc = SPELL_ENOTFOUND;
        goto out;
    }
    if (r != SQLITE_ROW)
        goto out;
    rc = read_row(st, out);
out:
    stmt_put(st);
    return rc;
}

int queue_get(struct queue *q, const char *local_id, struct lcast *out)
{
    return get_one(q, "SELECT " COLUMNS " FROM casts WHERE local_id = ?", local_id, 0, out);
}

int queue_get_by_cast_id(struct queue *q, const char *cast_id, struct lcast *out)
{
    return get_one(q, "SELECT " COLUMNS " FROM casts WHERE cast_id = ?", cast_id, 0, out);
}

int queue_next_due(struct queue *q, int64_t now, struct lcast *out)
{
    return get_one(q, "SELECT " COLUMNS " FROM casts WHERE state = 'pending'"
                   " AND next_attempt_at <= ? ORDER BY seq LIMIT 1", NULL, now, out);
}

void queue_free_list(struct lcast *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        lcast_free(&v[i]);
    free(v);
}

/* sql: a literal, as for get_one. */
static int list_rows(struct queue *q, const char *sql, int limit, struct lcast **out, size_t *n)
{
    int rc = SPELL_EIO;
    sqlite3_stmt *st = NULL;
    struct lcast *v = NULL;
    size_t len = 0, alloc = 0;
    int r;

    *out = NULL;
    *n = 0;
    if (!(st = stmt_get(q, sql)))
        goto out;
    sqlite3_bind_int(st, 1, limit);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == alloc) {
            size_t na = alloc ? alloc * 2 : 16;
            struct lcast *nv = realloc(v, na * sizeof(*v));

            if (!nv) {
                rc = SPELL_ENOMEM;
                goto out;
            }
            v = nv;
            alloc = na;
        }
        if ((rc = read_row(st, &v[len])) != SPELL_OK)
            goto out;
        len++;
    }
    if (r != SQLITE_DONE) {
        rc = SPELL_EIO;
        goto out;
    }
    *out = v;
    *n = len;
    v = NULL;
    len = 0;
    rc = SPELL_OK;
out:
    queue_free_list(v, len);
    stmt_put(st);
    return rc;
}

int queue_list(struct queue *q, int limit, struct lcast **out, size_t *n)
{
    return list_rows(q, "SELECT " COLUMNS " FROM casts ORDER BY seq DESC LIMIT ?", limit, out, n);
}

int queue_list_active(struct queue *q, struct lcast **out, size_t *n)
{
    /* Bounded by the rows that exist; -1 means no LIMIT in SQLite. */
    return list_rows(q, "SELECT " COLUMNS " FROM casts WHERE state IN ('queued', 'running')"
                     " ORDER BY seq LIMIT ?", -1, out, n);
}

int queue_next_due_time(struct queue *q, int64_t *out)
{
    int rc = SPELL_EIO;
    sqlite3_stmt *st = NULL;

    *out = 0;
    if (!(st = stmt_get(q, "SELECT MIN(next_attempt_at) FROM casts"
                           " WHERE state = 'pending'")))
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW)
        goto out;
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        *out = sqlite3_column_int64(st, 0);
    rc = SPELL_OK;
out:
    stmt_put(st);
    return rc;
}

int queue_reset_submitting(struct queue *q, int *changed)
{
    int rc = SPELL_EIO;
    sqlite3_stmt *st = NULL;

    *changed = 0;
    if (!(st = stmt_get(q, "UPDATE casts SET state = 'pending', next_attempt_at = 0"
                           " WHERE state = 'submitting'")))
        goto out;
    if ((rc = step_done(q, st)) != SPELL_OK)
        goto out;
    *changed = sqlite3_changes(q->db);
out:
    stmt_put(st);
    return rc;
}

int queue_counts(struct queue *q, struct queue_counts *out)
{
    int rc = SPELL_EIO;
    sqlite3_stmt *st = NULL;
    int r;

    memset(out, 0, sizeof(*out));
    if (!(st = stmt_get(q, "SELECT state, COUNT(*) FROM casts GROUP BY state")))
        goto out;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        enum lcast_state s;
        int64_t n = sqlite3_column_int64(st, 1);

        if (lcast_state_parse((const char *)sqlite3_column_text(st, 0), &s) != SPELL_OK)
            continue;
        if (s == LCAST_PENDING)
            out->pending += n;
        else if (s == LCAST_SUBMITTING)
            out->submitting += n;
        else if (s == LCAST_QUEUED || s == LCAST_RUNNING)
            out->active += n;
        else
            out->finished += n;
    }
    rc = r == SQLITE_DONE ? SPELL_OK : SPELL_EIO;
out:
    stmt_put(st);
    return rc;
}
