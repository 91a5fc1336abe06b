/*
 * Executors: what runs a cast once the API part has reserved it.
 *
 * Data flow.
 *
 *   POST /v1/spells/{key}:cast  (api part)
 *     store_cast_reserve()            the cast row is stored, status queued
 *     exec_submit(exec, cast_id)      wakes a worker with the id only
 *   worker thread
 *     store_cast_get / store_spell_get   inputs and the spell's execution
 *     dispatch by the cast's mode:
 *       service   run the spell program here (below)
 *       wasm, workflow   not configured on this server yet: the cast fails
 *                 at once with INTERNAL "execution mode 'workflow' is not
 *                 configured on this server", so it never hangs
 *       clone     never reaches an executor (the API answers 402)
 *     lifecycle_*()  (lifecycle.h) moves the cast and publishes its events
 *
 * The queue is durable because the cast rows are: the in-memory queue only
 * holds ids of casts that are queued in the store.  If it overflows
 * (EXEC_QUEUE_MAX ids), exec_submit still succeeds and the workers rescan
 * the store for queued casts once the queue drains.  exec_recover(), run
 * once at start before exec_start(), re-queues every unfinished cast whose
 * inputs are still stored; a cast found `running` is run again from the
 * start, so a spell program must be idempotent: running it twice with the
 * same inputs must be harmless (write results under a name derived from
 * the inputs, not append to something shared).  An unfinished cast without
 * inputs is failed with INTERNAL "the server restarted and the inputs were
 * no longer kept".
 *
 * The service executor.  execution config of the spell (JSON object):
 *   "command":   argv array of 1..EXEC_ARGV_MAX strings; argv[0] is a path
 *                (a bare name is looked up in /usr/bin:/bin); no shell.
 *   "timeout_s": wall-clock limit, 1..86400 (default
 *                srv->limits.default_timeout_s, else 60).
 *   "memory_mb": optional address-space limit, 16..65536 (default
 *                srv->limits.max_memory_bytes, else 1 GiB).
 * The program runs in its own process group with stdin = the inputs JSON
 * (written whole, then closed), a clean environment (PATH=/usr/bin:/bin,
 * HOME=<a temporary directory>, LANG=C.UTF-8, SPELL_CAST_ID=<id>), a fresh
 * temporary working directory removed afterwards, RLIMIT_AS as above,
 * RLIMIT_CPU = timeout + 5 s, RLIMIT_NOFILE 256, RLIMIT_CORE 0, a niceness
 * srv->limits.spell_nice (0..19) above the server's, and no file
 * descriptor of the server besides its three pipes.  The program's stderr
 * is kept as a tail of its last EXEC_STDERR_TAIL bytes for the failure
 * message.  When the program exits, whatever is left of its process group
 * (a background grandchild) is killed.  The wall-clock timeout is measured
 * on the monotonic clock: at the limit the group gets SIGTERM, and SIGKILL
 * EXEC_KILL_GRACE_MS later.
 *
 * Protocol (DESIGN.md §2): every stdout line is one JSON object, at most
 * EXEC_LINE_MAX bytes; blank lines are ignored.
 *   {"progress": 0..100, "message": "..."}   cast.progress: the value is
 *       clamped to 0..100 and never goes back; message cut to 1 KiB.
 *   {"log": "..."}                           cast.log: at most
 *       EXEC_LOG_PER_SEC events a second; lines beyond that are counted and
 *       summarised in one "(N log lines suppressed)" event.
 *   {"result": {...}, "artifact_url": "...", "cost_cents": N}   the final
 *       record: result must be an object (the platform does not keep it:
 *       the cast resource has no field for it; artifact_url is how a spell
 *       hands back something large); artifact_url is optional, http or
 *       https, at most 2048 bytes; cost_cents is optional and only read
 *       for metered spells.  A second result line is invalid.
 * The cast is started (cast.started) when its program has been spawned.
 * Exit status 0 means success: the cast succeeds with the artifact_url of
 * the result line, or none when the program wrote no result line.  The
 * charge is the estimate for free and flat spells; for metered spells it
 * is the cost_cents of the result line capped at the estimate, or the
 * estimate when the line has none (the estimate is what the budget let
 * through, so a cast never costs more).
 *
 * Run error codes: the error.code of a failed cast (cast.error, not HTTP
 * error codes):
 */
#ifndef SPELL_SERVER_EXEC_H
#define SPELL_SERVER_EXEC_H

#include <stdint.h>

struct server;
struct executor;

/* The program ran past its timeout_s ("the spell timed out after N s"). */
#define EXEC_ERR_TIMEOUT "TIMEOUT"
/* The program exited nonzero or was killed by a signal; the message
 * carries the sanitised tail of its stderr. */
#define EXEC_ERR_SPELL_FAILED "SPELL_FAILED"
/* The program wrote more than srv->limits.max_output_bytes (default
 * EXEC_OUTPUT_DEFAULT) or a line longer than EXEC_LINE_MAX. */
#define EXEC_ERR_OUTPUT_LIMIT "OUTPUT_LIMIT"
/* A stdout line is not a JSON object of the protocol, or a field has the
 * wrong type or range. */
#define EXEC_ERR_INVALID_OUTPUT "INVALID_OUTPUT"
/* The server could not run the cast at all: the mode is not configured,
 * the spell or its execution config is missing or malformed, the program
 * could not be started, or the inputs were lost in a restart. */
#define EXEC_ERR_INTERNAL "INTERNAL"

/* Caps. */
#define EXEC_LINE_MAX (64 * 1024)               /* one stdout line */
#define EXEC_OUTPUT_DEFAULT (1024 * 1024)       /* total stdout of one run */
#define EXEC_STDERR_TAIL 4096                   /* stderr kept for messages */
#define EXEC_ARGV_MAX 64                        /* command elements */
#define EXEC_ARG_MAX 4096                       /* bytes of one element */
#define EXEC_QUEUE_MAX 65536                    /* ids queued in memory */
#define EXEC_WORKERS_MAX 256
#define EXEC_LOG_PER_SEC 20
#define EXEC_KILL_GRACE_MS 2000
#define EXEC_TIMEOUT_MAX_S 86400

/* Creates the executor of srv (srv->store must be set; srv->metrics and
 * srv->bus may be NULL) with srv->limits.workers threads (at most
 * EXEC_WORKERS_MAX; SPELL_EINVAL below 0), registers its metric families,
 * and stores nothing in srv: the caller sets srv->exec = *out.  No thread
 * runs yet.  With 0 threads the executor runs nothing: exec_submit accepts
 * a cast and leaves it queued in the store, where an executor with threads
 * finds it through exec_recover; exec_cancel cancels it as usual. */
int exec_new(struct server *srv, struct executor **out);

/* Starts the worker threads.  SPELL_EINVAL when already started. */
int exec_start(struct executor *e);

/*
 * Server shutdown: stops taking jobs, kills the process group of every
 * running program and joins the workers.  The casts that were running
 * stay `running` in the store (nothing is settled or failed on their
 * behalf), so exec_recover() at the next start runs them again; queued
 * casts stay queued.  Idempotent.
 */
void exec_stop(struct executor *e);

/* Stops (when still running) and frees; NULL is accepted. */
void exec_free(struct executor *e);

/* Hands a stored, queued cast to the workers.  SPELL_EINVAL for a
 * malformed id, SPELL_EABORT after exec_stop(). */
int exec_submit(struct executor *e, const char *cast_id);

/*
 * Cancels a cast.  A queued cast is canceled in the store at once (a
 * worker that dequeues it later skips it); a running one has its process
 * group sent SIGTERM (SIGKILL follows after EXEC_KILL_GRACE_MS) and is
 * canceled in the store.  STORE_ECONFLICT when the cast had already
 * finished (completion won the race), SPELL_ENOTFOUND when unknown.
 */
int exec_cancel(struct executor *e, const char *cast_id);

/*
 * At start, before exec_start(): every cast still queued or running in the
 * store is queued again when its inputs are stored, or failed with INTERNAL
 * "the server restarted and the inputs were no longer kept".  *requeued
 * and *failed (each may be NULL) receive the counts.
 */
int exec_recover_counts(struct executor *e, int *requeued, int *failed);
int exec_recover(struct executor *e);

/* The number of casts running at this moment (for tests and /healthz). */
int exec_running(struct executor *e);

#endif
