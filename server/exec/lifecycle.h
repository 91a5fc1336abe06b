/*
 * The cast lifecycle: the one place where a cast changes state once it has
 * been reserved.  Executors (exec.h) and the API handlers call these
 * functions; each does the store transition with now from srv->clock,
 * publishes the events the store wrote (through srv->bus, see bus.h) and
 * updates the cast metrics.
 *
 *   queued --lifecycle_start--> running --lifecycle_succeed--> succeeded
 *     |                           |     \--lifecycle_fail-----> failed
 *     \---------------------------+------lifecycle_cancel---> canceled
 *
 * Events (DESIGN.md §3 "Progress stream"): the store writes cast.queued,
 * cast.started, cast.progress and the terminal cast.succeeded / failed /
 * canceled; lifecycle_log appends cast.log itself.  Every event's data
 * holds cast_id, status, progress, message and ts; terminal ones add
 * final: true, cost_cents and artifact_url or error {code, message}.
 *
 * Soft limit: when a settlement takes the user's spending to or past the
 * soft limit for the first time in the period (the store reports it once
 * per period), lifecycle_succeed appends a `budget.soft_limit` event to
 * that cast right after its terminal event, with data {cast_id, status,
 * progress, message, ts, period, spent_cents, soft_limit_cents,
 * hard_limit_cents}.  It is published as the stream's last event (the
 * stream ends after it), so a client following the cast sees both.
 *
 * Races: a cast ends exactly once.  The store refuses a second terminal
 * transition with STORE_ECONFLICT; lifecycle_succeed, lifecycle_fail and
 * lifecycle_cancel return that code to the caller unchanged and publish
 * nothing new, so the loser of a race between completion and cancel can
 * ignore it quietly.
 *
 * Metrics (when srv->metrics and srv->exec are set; the executor registers
 * the families): spell_casts_total{mode,status} counts casts reaching
 * running and each terminal status, spell_cast_run_seconds{mode} observes
 * the run time of finished casts, spell_exec_errors_total{code} counts
 * failures by run error code.
 *
 * Every function is thread-safe.  Results: SPELL_OK, STORE_ECONFLICT (the
 * cast is not in a state that allows the change), SPELL_ENOTFOUND (no
 * such cast), or another store or core code.  The result is the store
 * transition's: once it is done, a failed publication is not reported
 * (the events are stored, and a stream that missed one reads it from the
 * store when it resumes).
 */
#ifndef SPELL_SERVER_LIFECYCLE_H
#define SPELL_SERVER_LIFECYCLE_H

#include <stdint.h>

struct server;

/* Caps of what the lifecycle writes into an event, in bytes without the
 * NUL; longer text is cut at a UTF-8 boundary. */
#define LIFECYCLE_MESSAGE_MAX 1024
#define LIFECYCLE_LOG_MAX 1024

/* queued -> running (cast.started).  run_url may be NULL. */
int lifecycle_start(struct server *srv, const char *cast_id, const char *run_url);

/* Progress 0..100 (clamped) and a message (NULL keeps the current one;
 * cut to LIFECYCLE_MESSAGE_MAX, control characters replaced). */
int lifecycle_progress(struct server *srv, const char *cast_id, int progress,
                       const char *message);

/* lifecycle_start then lifecycle_progress as one store transaction (one
 * commit): for an executor that starts a cast when its program first
 * reports progress. */
int lifecycle_start_progress(struct server *srv, const char *cast_id, const char *run_url,
                             int progress, const char *message);

/* Appends a cast.log event whose message is line (cut to LIFECYCLE_LOG_MAX,
 * control characters replaced).  STORE_ECONFLICT once the cast finished.
 * Rate limiting of chatty spells is the executor's job. */
int lifecycle_log(struct server *srv, const char *cast_id, const char *line);

/* -> succeeded, charging cost_cents (>= 0; the store caps it at the
 * estimate).  artifact_url may be NULL. */
int lifecycle_succeed(struct server *srv, const char *cast_id, int64_t cost_cents,
                      const char *artifact_url);

/* -> failed with error {code, message}; the reservation is released. */
int lifecycle_fail(struct server *srv, const char *cast_id, const char *code,
                   const char *message);

/* -> canceled with error {CANCELED, "the cast was canceled"}; the
 * reservation is released. */
int lifecycle_cancel(struct server *srv, const char *cast_id);

/* Publishes, in seq order, every stored event of the cast not yet
 * published through srv->bus.  Called by the functions above and by any
 * caller that appended events through the store itself (the API part after
 * store_cast_reserve).  SPELL_OK with nothing done when srv->bus is NULL. */
int lifecycle_publish_pending(struct server *srv, const char *cast_id);

#endif
