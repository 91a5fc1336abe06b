/*
 * sqlite-tx: the rate of bare SQLite write transactions shaped like the
 * one spell-server runs when it accepts a cast, as the yardstick for
 * bench/cast-load.
 *
 * Usage:
 *
 *   sqlite-tx --db PATH [--threads T] [--count N] [--duration-s S]
 *             [--writers mutex|busy]
 *
 * Data flow.  The main thread creates PATH (which must not exist) with the
 * server's pragmas (WAL, synchronous = FULL, foreign keys on, a busy
 * timeout) and the four tables involved, copied from the server's first
 * migration (casts, cast_events, ledger, usage), plus one user's usage
 * row.  Then T threads, each with its own connection and prepared
 * statements, take transaction numbers from a shared counter until N are
 * taken or S seconds have passed, and run for each:
 *
 *   BEGIN IMMEDIATE;
 *   INSERT INTO casts (a queued cast row);
 *   INSERT INTO cast_events (its cast.queued event);
 *   INSERT INTO ledger (its reserve entry);
 *   UPDATE usage SET reserved_cents = reserved_cents + 1, calls = calls + 1;
 *   COMMIT;
 *
 * With --writers busy (the default) the threads contend inside SQLite:
 * BEGIN IMMEDIATE waits in SQLite's busy handler, which sleeps in steps of
 * 1 to 100 ms, so a thread that has just committed usually wins the lock
 * again while the others sleep: a high rate with a very long tail.  With
 * --writers mutex the threads queue on one process mutex around each
 * transaction, as spell-server's store does (its write_lock), so SQLite
 * never sees two writers at once and every commit hands the lock to
 * another thread (a context switch each).
 *
 * Each transaction's time from taking the mutex (or BEGIN) to the end of
 * COMMIT is one sample.
 * The program prints throughput and p50/p90/p99/max and one RESULT line.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "stats.h"

#define MAX_THREADS 256
#define MAX_COUNT 1000000
#define BUSY_TIMEOUT_MS 30000      /* the server's store waits as long */

static const char *const schema =
    "CREATE TABLE casts ("
    " id TEXT PRIMARY KEY, user_id TEXT NOT NULL, spell_key TEXT NOT NULL,"
    " spell_version TEXT NOT NULL, mode TEXT NOT NULL, status TEXT NOT NULL,"
    " progress INTEGER NOT NULL, message TEXT NOT NULL, input_hash TEXT NOT NULL,"
    " estimated_cost_cents INTEGER NOT NULL, cost_cents INTEGER, run_url TEXT,"
    " artifact_url TEXT, error_code TEXT, error_message TEXT,"
    " created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,"
    " duration_ms INTEGER, idempotency_key TEXT, period TEXT NOT NULL, inputs TEXT,"
    " last_seq INTEGER NOT NULL);"
    "CREATE INDEX casts_user ON casts(user_id, created_at, id);"
    "CREATE INDEX casts_unfinished ON casts(created_at, id)"
    " WHERE status IN ('queued', 'running');"
    "CREATE TABLE cast_events ("
    " cast_id TEXT NOT NULL REFERENCES casts(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, ts INTEGER NOT NULL,"
    " PRIMARY KEY (cast_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE ledger ("
    " seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, user_id TEXT, cast_id TEXT,"
    " kind TEXT NOT NULL, amount_cents INTEGER NOT NULL, prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL);"
    "CREATE INDEX ledger_user ON ledger(user_id);"
    "CREATE TABLE usage ("
    " user_id TEXT NOT NULL, period TEXT NOT NULL,"
    " spent_cents INTEGER NOT NULL DEFAULT 0, reserved_cents INTEGER NOT NULL DEFAULT 0,"
    " calls INTEGER NOT NULL DEFAULT 0, soft_notified INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (user_id, period));"
    "INSERT INTO usage (user_id, period) VALUES ('usr_bench', '2026-11');";

static const char *const pragmas =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = FULL;"
    "PRAGMA foreign_keys = ON;";

static const char *const sql_insert_cast =
    "INSERT INTO casts (id, user_id, spell_key, spell_version, mode, status, progress,"
    " message, input_hash, estimated_cost_cents, created_at, idempotency_key, period,"
    " inputs, last_seq) VALUES (?1, 'usr_bench', 'echo', '1.0.0', 'service', 'queued', 0,"
    " '', ?2, 0, ?3, ?4, '2026-11', '{\"message\":\"hello\"}', 1)";
static const char *const sql_insert_event =
    "INSERT INTO cast_events (cast_id, seq, type, data, ts) VALUES (?1, 1, 'cast.queued', ?2, ?3)";
static const char *const sql_insert_ledger =
    "INSERT INTO ledger (ts, user_id, cast_id, kind, amount_cents, prev_hash, hash)"
    " VALUES (?1, 'usr_bench', ?2, 'reserve', 0, ?3, ?4)";
static const char *const sql_update_usage =
    "UPDATE usage SET reserved_cents = reserved_cents + 1, calls = calls + 1"
    " WHERE user_id = 'usr_bench' AND period = '2026-11'";

struct shared {
    const char *db;
    int use_mutex;
    pthread_mutex_t write_lock;
    long count;
    int64_t deadline_us;
    atomic_long next;
    atomic_long errors;
};

struct worker {
    struct shared *sh;
    int id;
    struct stats lat;
    char err[256];
};

static const char hex64[] =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : rc;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    sqlite3 *db = NULL;
    sqlite3_stmt *begin = NULL, *ins_cast = NULL, *ins_event = NULL, *ins_ledger = NULL,
                 *upd_usage = NULL, *commit = NULL, *rollback = NULL;

    if (sqlite3_open_v2(sh->db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql_insert_cast, -1, &ins_cast, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql_insert_event, -1, &ins_event, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql_insert_ledger, -1, &ins_ledger, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql_update_usage, -1, &upd_usage, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "ROLLBACK", -1, &rollback, NULL) != SQLITE_OK)
        goto fail;

    for (;;) {
        long n = atomic_fetch_add(&sh->next, 1);
        char id[40], key[48], data[256];
        int64_t t0, now_ms;
        int rc;

        if (n >= sh->count || stats_mono_us() >= sh->deadline_us)
            break;
        snprintf(id, sizeof id, "cst_%026ld", n);
        snprintf(key, sizeof key, "bench-%d-%ld", w->id, n);
        t0 = stats_mono_us();
        if (sh->use_mutex)
            pthread_mutex_lock(&sh->write_lock);
        now_ms = stats_wall_us() / 1000;
        snprintf(data, sizeof data,
                 "{\"cast_id\":\"%s\",\"status\":\"queued\",\"progress\":0,\"message\":\"\","
                 "\"ts\":\"2026-11-22T09:00:00.000Z\"}", id);
        sqlite3_bind_text(ins_cast, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins_cast, 2, hex64, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins_cast, 3, now_ms);
        sqlite3_bind_text(ins_cast, 4, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins_event, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins_event, 2, data, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins_event, 3, now_ms);
        sqlite3_bind_int64(ins_ledger, 1, now_ms);
        sqlite3_bind_text(ins_ledger, 2, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins_ledger, 3, hex64, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_ledger, 4, hex64, -1, SQLITE_STATIC);
        if ((rc = step_done(begin)) != 0 || (rc = step_done(ins_cast)) != 0 ||
            (rc = step_done(ins_event)) != 0 || (rc = step_done(ins_ledger)) != 0 ||
            (rc = step_done(upd_usage)) != 0 || (rc = step_done(commit)) != 0) {
            if (!w->err[0])
                snprintf(w->err, sizeof w->err, "%s", sqlite3_errstr(rc));
            step_done(rollback);
            if (sh->use_mutex)
                pthread_mutex_unlock(&sh->write_lock);
            atomic_fetch_add(&sh->errors, 1);
            continue;
        }
        if (sh->use_mutex)
            pthread_mutex_unlock(&sh->write_lock);
        stats_add(&w->lat, stats_mono_us() - t0);
    }
    goto out;
fail:
    snprintf(w->err, sizeof w->err, "%s", db ? sqlite3_errmsg(db) : "cannot open the database");
    atomic_fetch_add(&sh->errors, 1);
out:
    sqlite3_finalize(begin);
    sqlite3_finalize(ins_cast);
    sqlite3_finalize(ins_event);
    sqlite3_finalize(ins_ledger);
    sqlite3_finalize(upd_usage);
    sqlite3_finalize(commit);
    sqlite3_finalize(rollback);
    sqlite3_close(db);
    return NULL;
}

static long parse_long(const char *s, long lo, long hi, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*end || v < lo || v > hi) {
        fprintf(stderr, "sqlite-tx: %s must be %ld..%ld\n", what, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    struct shared sh;
    struct worker *w;
    pthread_t *tids;
    struct stats all;
    int threads = 64, duration_s = 20;
    sqlite3 *db = NULL;
    int64_t t0, t1;
    double secs;
    size_t ok = 0;

    memset(&sh, 0, sizeof sh);
    sh.count = 20000;
    sh.use_mutex = 0;
    pthread_mutex_init(&sh.write_lock, NULL);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--db") == 0)
            sh.db = argv[i + 1];
        else if (strcmp(argv[i], "--threads") == 0)
            threads = (int)parse_long(argv[i + 1], 1, MAX_THREADS, "--threads");
        else if (strcmp(argv[i], "--count") == 0)
            sh.count = parse_long(argv[i + 1], 1, MAX_COUNT, "--count");
        else if (strcmp(argv[i], "--duration-s") == 0)
            duration_s = (int)parse_long(argv[i + 1], 1, 600, "--duration-s");
        else if (strcmp(argv[i], "--writers") == 0 && strcmp(argv[i + 1], "mutex") == 0)
            sh.use_mutex = 1;
        else if (strcmp(argv[i], "--writers") == 0 && strcmp(argv[i + 1], "busy") == 0)
            sh.use_mutex = 0;
        else {
            fprintf(stderr, "sqlite-tx: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!sh.db || argc % 2 == 0) {
        fprintf(stderr, "usage: sqlite-tx --db PATH [--threads T] [--count N] [--duration-s S]\n"
                        "                 [--writers mutex|busy]\n");
        return 2;
    }
    if (access(sh.db, F_OK) == 0) {
        fprintf(stderr, "sqlite-tx: %s exists; give a new path\n", sh.db);
        return 2;
    }
    if (sqlite3_open(sh.db, &db) != SQLITE_OK || sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite-tx: cannot create %s: %s\n", sh.db, db ? sqlite3_errmsg(db) : "");
        sqlite3_close(db);
        return 2;
    }
    sqlite3_close(db);

    w = calloc((size_t)threads, sizeof *w);
    tids = calloc((size_t)threads, sizeof *tids);
    if (!w || !tids || stats_init(&all, (size_t)sh.count) != 0) {
        fprintf(stderr, "sqlite-tx: out of memory\n");
        return 2;
    }
    t0 = stats_mono_us();
    sh.deadline_us = t0 + (int64_t)duration_s * 1000000;
    for (int i = 0; i < threads; i++) {
        w[i].sh = &sh;
        w[i].id = i;
        if (stats_init(&w[i].lat, (size_t)sh.count) != 0 ||
            pthread_create(&tids[i], NULL, run_worker, &w[i]) != 0) {
            fprintf(stderr, "sqlite-tx: cannot start thread %d\n", i);
            return 2;
        }
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        stats_merge(&all, &w[i].lat);
        if (w[i].err[0])
            fprintf(stderr, "sqlite-tx: thread %d: %s\n", i, w[i].err);
        stats_free(&w[i].lat);
    }
    t1 = stats_mono_us();
    stats_finish(&all);
    ok = all.n;
    secs = (double)(t1 - t0) / 1e6;
    printf("sqlite-tx: %zu transactions from %d threads (writers: %s) in %.2f s: %.0f tx/s (%ld errors)\n",
           ok, threads, sh.use_mutex ? "one mutex" : "SQLite busy handler", secs, (double)ok / secs,
           atomic_load(&sh.errors));
    printf("sqlite-tx: latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
           (double)stats_pct(&all, 50) / 1000.0, (double)stats_pct(&all, 90) / 1000.0,
           (double)stats_pct(&all, 99) / 1000.0, (double)stats_max(&all) / 1000.0);
    printf("RESULT label=sqlite-%s count=%zu seconds=%.3f rate=%.1f errors=%ld p50_us=%" PRId64
           " p90_us=%" PRId64 " p99_us=%" PRId64 " max_us=%" PRId64 "\n",
           sh.use_mutex ? "mutex" : "busy", ok, secs, (double)ok / secs, atomic_load(&sh.errors),
           stats_pct(&all, 50),
           stats_pct(&all, 90), stats_pct(&all, 99), stats_max(&all));
    stats_free(&all);
    free(w);
    free(tids);
    pthread_mutex_destroy(&sh.write_lock);
    return atomic_load(&sh.errors) ? 1 : 0;
}
