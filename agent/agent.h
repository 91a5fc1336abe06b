/*
 * spell-agent internals, shared by the files at the top of agent/.
 *
 * One thread runs everything that matters (main.c's loop): it polls the
 * listening socket, every client connection, the signalfd, the desktop
 * module's fd and, through core's spell_http_multi_poll(), every HTTP
 * request and stream (GETs, SSE and POSTs alike).  Data flows like this:
 *
 *   client line --server.c--> rpc.c (strict JSON, JSON-RPC checks) -->
 *   method table (methods.c) --> method-*.c --> queue.c (SQLite row) and
 *   a reply, or a deferred struct rpc_call answered later;
 *
 *   submit.c picks pending rows (at most max_concurrent at once) -->
 *   sender.c POSTs them on curl multi --> submit.c applies the answer to
 *   the row --> follow.c opens GET /v1/casts/{id}/events on curl multi
 *   --> SSE events update the row --> events.c fans them out to
 *   subscribers, answers cast.wait callers and raises notifications.
 *
 * SQLite, the client list, the follows and every callback are touched by
 * the loop thread, the process's only thread.  The desktop module
 * (agent/desktop) runs GLib, libsecret and libnotify in a helper process,
 * spell-agent-desktop, behind its fd.
 */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"
#include "spell/http.h"
#include "spell/sse.h"

#include "protocol.h"

struct desktop;
struct desktop_cred_result;
struct queue;
struct sender_job;

/* Longest local id: "lc_" and a ULID. */
#define AGENT_LOCAL_ID_MAX 32
/* Idempotency keys the agent makes: 32 base62 characters. */
#define AGENT_IDEM_KEY_LEN 32
/* The longest path the agent builds (PATH_MAX). */
#define AGENT_PATH_MAX 4096
/* A cast.list answer holds at most this many casts. */
#define AGENT_LIST_MAX 500
/* Inputs of one cast, as JSON text: the server's body cap. */
#define AGENT_INPUTS_MAX (64 * 1024)
/* Bytes of a response the agent reads outside streams (cast, user). */
#define AGENT_RESPONSE_MAX (256 * 1024)
/* Answers queued for one client that stopped reading; past this it is
 * disconnected.  Larger than AGENT_MAX_PENDING_EVENTS so that one full
 * cast.list always fits. */
#define AGENT_MAX_OUTPUT (4 * 1024 * 1024)

/* Submission retries: exponential backoff with full jitter. */
#define AGENT_RETRY_BASE_MS 1000L
#define AGENT_RETRY_MAX_MS (5L * 60 * 1000)
/* A stream failing this many times in a row falls back to polling. */
#define AGENT_STREAM_FAILURES_MAX 3
#define AGENT_POLL_INTERVAL_MS 5000L
/* The longest follow_tick() may wait while the loop is busy. */
#define FOLLOW_TICK_MS 50
/* Reconnect delays of a stream. */
#define AGENT_STREAM_RETRY_BASE_MS 500L
#define AGENT_STREAM_RETRY_MAX_MS 5000L
/* How long SIGTERM waits for submissions in flight before leaving them to
 * the next start (their rows go back to pending then). */
#define AGENT_DRAIN_MS 10000L

enum lcast_state {
    LCAST_PENDING,
    LCAST_SUBMITTING,
    LCAST_QUEUED,
    LCAST_RUNNING,
    LCAST_SUCCEEDED,
    LCAST_FAILED,
    LCAST_CANCELED,
    LCAST_REJECTED,
};

const char *lcast_state_name(enum lcast_state s);
int lcast_state_parse(const char *s, enum lcast_state *out);
bool lcast_state_is_final(enum lcast_state s);

/* One row of the queue: a cast as this agent knows it.  Times are Unix ms,
 * 0 meaning null; optional numbers carry a has_ flag. */
struct lcast {
    char local_id[AGENT_LOCAL_ID_MAX + 1];
    char idem_key[AGENT_IDEM_KEY_LEN + 1];
    char *spell;
    /* The inputs object as JSON text; kept only until the server accepts
     * the cast (a retry must send the same bytes), then "{}". */
    char *inputs;
    int64_t budget_cap_cents;
    bool has_budget_cap;
    char *mode;                 /* NULL: the spell's own mode */
    enum lcast_state state;
    char *cast_id;              /* NULL until the server accepted it */
    int progress;
    char *message;
    int64_t estimated_cost_cents;
    bool has_estimate;
    int64_t cost_cents;
    bool has_cost;
    char *artifact_url;
    /* error: set when error_code is not NULL. */
    char *error_code;
    char *error_message;
    int error_status;           /* HTTP status, 0 when none */
    int attempts;               /* submissions sent */
    int64_t next_attempt_at;    /* when a pending retry is due */
    /* The seq of the last progress event applied; the stream resumes after
     * it with Last-Event-ID. */
    int64_t last_event_id;
    /* cast.cancel came while the submission was in flight: cancel on the
     * server as soon as it is accepted. */
    bool cancel_requested;
    int64_t created_at;
    int64_t started_at;
    int64_t finished_at;
    int64_t duration_ms;
    bool has_duration;
};

void lcast_free(struct lcast *c);
/* The local cast object of docs/agent.md. */
cJSON *lcast_to_json(const struct lcast *c);

/* ---- queue.c: the SQLite queue ---- */

struct queue_counts {
    int64_t pending, submitting, active, finished;
};

int queue_open(const char *path, struct queue **out, char *err, size_t errlen);
void queue_close(struct queue *q);
int queue_insert(struct queue *q, const struct lcast *c);
/* Writes every mutable column of c (matched by local_id). */
int queue_update(struct queue *q, const struct lcast *c);
/* As queue_update(), without waiting for the disk: the row survives a
 * crash of the agent but perhaps not a power cut.  For what the server can
 * replay: a followed cast's events, resumed after last_event_id. */
int queue_update_progress(struct queue *q, const struct lcast *c);
/* SPELL_ENOTFOUND when no row matches. */
int queue_get(struct queue *q, const char *local_id, struct lcast *out);
int queue_get_by_cast_id(struct queue *q, const char *cast_id, struct lcast *out);
/* Newest first, at most limit rows; the caller frees the array with
 * queue_free_list(). */
int queue_list(struct queue *q, int limit, struct lcast **out, size_t *n);
void queue_free_list(struct lcast *v, size_t n);
/* The oldest pending row due at now, SPELL_ENOTFOUND when none. */
int queue_next_due(struct queue *q, int64_t now, struct lcast *out);
/* The earliest next_attempt_at of a pending row, 0 when none. */
int queue_next_due_time(struct queue *q, int64_t *out);
/* Rows that are queued or running (accepted, not final). */
int queue_list_active(struct queue *q, struct lcast **out, size_t *n);
/* On start: every submitting row back to pending. */
int queue_reset_submitting(struct queue *q, int *changed);
int queue_counts(struct queue *q, struct queue_counts *out);

/* ---- the daemon ---- */

struct agent_options {
    char socket_path[AGENT_PATH_MAX];
    char state_dir[AGENT_PATH_MAX];
    char config_dir[AGENT_PATH_MAX];
    char *api_url;
    bool no_plaintext;
    int max_concurrent;
    bool notifications;
};

struct client;
struct follow;
struct waiter;
struct rpc_call;
struct http_get;
struct login;

struct agent {
    struct agent_options opt;
    int64_t started_ms;
    int listen_fd;
    int signal_fd;
    /* Set by SIGTERM/SIGINT: no new connections or work; answer what
     * waits with -32040 and leave. */
    bool stopping;
    int64_t stop_deadline;
    struct spell_http_multi *multi;
    struct queue *queue;
    struct desktop *desktop;
    struct client *clients;
    unsigned n_clients;
    uint64_t next_client_id;
    /* Deferred answers that wait for something: HTTP, the keyring. */
    struct rpc_call *calls;
    struct waiter *waiters;
    struct follow *follows;
    /* follow_tick() walks every follow: the loop runs it at most every
     * FOLLOW_TICK_MS, not on every turn (a turn per batch of events, with
     * 1,000 casts followed). */
    int64_t follow_tick_at;
    unsigned n_follows;
    struct http_get *gets;
    /* auth.login requests between the server's check and the keyring. */
    struct login *logins;
    /* POSTs on the multi not yet answered, submissions and cancels. */
    struct sender_job *posts;
    /* Submissions among them (at most opt.max_concurrent). */
    int in_flight;
    /* The credential: token (never logged), where it came from, and the
     * login it belongs to ("" while unknown). */
    char *token;
    int cred_source;            /* enum desktop_cred_source */
    char account[256];
    char cred_path[AGENT_PATH_MAX];
    /* The first credential load has not finished yet. */
    bool cred_loading;
    /* Whether the environment's SPELL_API_KEY is set (for the fallback
     * when no desktop module runs). */
    char *env_api_key;
};

/* Logs one line on stderr (the journal under systemd). */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A random 32-bit number for jitter. */
uint32_t agent_random32(void);

/* ---- server.c: the socket and the connections ---- */

struct client {
    struct client *next;
    uint64_t id;
    int fd;
    /* The line being read; at most AGENT_MAX_MESSAGE bytes. */
    struct spell_buf in;
    /* Inside a line that passed the cap: bytes are dropped up to its
     * newline. */
    bool discarding;
    /* Bytes waiting to be written: answers and notifications. */
    struct spell_buf out;
    bool hello;
    bool subscribed;
    /* Close once the output is written (after a version mismatch). */
    bool close_after_flush;
    /* Close at the next chance: peer gone, error, or a slow subscriber. */
    bool dead;
    /* Requests read and not yet answered. */
    int outstanding;
};

int server_listen(struct agent *a, char *err, size_t errlen);
void server_accept(struct agent *a);
void server_client_read(struct agent *a, struct client *c);
void server_client_write(struct agent *a, struct client *c);
/* Queues a line (a newline is added) for c; marks it dead past the cap. */
void server_client_send(struct client *c, const char *line, size_t len, bool is_event);
void server_reap(struct agent *a);
void server_close_all(struct agent *a);

/* ---- rpc.c: JSON-RPC ---- */

struct rpc_call {
    struct rpc_call *next;
    /* The connection to answer; NULL once it closed (the answer is then
     * dropped). */
    struct client *client;
    /* The request id, owned. */
    cJSON *id;
};

void rpc_handle_line(struct agent *a, struct client *c, const char *line, size_t len);
/* Answers and frees a call.  result is consumed. */
void rpc_reply(struct agent *a, struct rpc_call *call, cJSON *result);
/* Answers with an error and frees the call.  data, if not NULL, is consumed. */
void rpc_error(struct agent *a, struct rpc_call *call, int code, const char *message,
               cJSON *data);
/* Sends an error answer with id null on c (for lines that are no request). */
void rpc_error_raw(struct client *c, const cJSON *id, int code, const char *message);
/* Detaches every call of c (its answers will be dropped). */
void rpc_client_gone(struct agent *a, struct client *c);
/* Answers every deferred call with -32040 (shutdown). */
void rpc_fail_all(struct agent *a);
/* Answers with -32030 and the server's {status, code, message}. */
void rpc_error_server(struct agent *a, struct rpc_call *call, int status,
                      const char *body, size_t body_len);

/* ---- methods.c and method-*.c ---- */

/*
 * One JSON-RPC method.  exec answers the call with rpc_reply() or
 * rpc_error(), now or later (then it keeps the call); it returns SPELL_OK,
 * or a negative code without having answered, and the dispatcher then
 * answers -32603.  params is always an object (empty when absent).
 */
struct rpc_method {
    const char *name;
    int (*exec)(struct agent *a, struct rpc_call *call, const cJSON *params);
};

const struct rpc_method *rpc_method_find(const char *name);

int method_agent_hello(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_agent_status(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_auth_status(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_auth_login(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_auth_logout(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_auth_token(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_cast_submit(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_cast_get(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_cast_list(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_cast_cancel(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_cast_wait(struct agent *a, struct rpc_call *call, const cJSON *params);
int method_events_subscribe(struct agent *a, struct rpc_call *call, const cJSON *params);

/* Answers -32602 when a params getter failed (err names the field) and
 * returns SPELL_OK; returns rc unchanged for SPELL_ENOMEM. */
int rpc_params_failed(struct agent *a, struct rpc_call *call, int rc, const char *err);
/* Finds the cast named by params' local_id (or cast_id, when allow_cast_id)
 * into *out; answers the call with -32602 or -32020 itself when it cannot
 * and returns SPELL_ENOTFOUND then. */
int rpc_find_cast(struct agent *a, struct rpc_call *call, const cJSON *params,
                  bool allow_cast_id, struct lcast *out);

/* ---- sender.c: POSTs on the loop's multi ---- */

enum sender_kind {
    SENDER_SUBMIT,
    SENDER_CANCEL,
};

struct sender_job {
    /* Next on a->posts while the POST is on the wire. */
    struct sender_job *next;
    struct agent *a;
    struct spell_http_stream *stream;
    enum sender_kind kind;
    char local_id[AGENT_LOCAL_ID_MAX + 1];
    /* The call waiting for a cancel, or NULL. */
    struct rpc_call *call;
    char *url;
    char *bearer;
    char *body;
    size_t body_len;
    /* "Idempotency-Key: ..." for submissions, NULL otherwise. */
    char *idem_header;
    /* Filled when the answer is in. */
    int rc;
    int status;
    /* The answer body, at most SENDER_BODY_CAP (256 KiB) bytes. */
    struct spell_buf resp;
    /* The server's Retry-After in ms, -1 when none. */
    long retry_after_ms;
    char error[SPELL_HTTP_ERROR_SIZE];
};

/* Starts the job's POST on a->multi (one attempt).  On SPELL_OK the job
 * belongs to the multi: its answer goes to submit_job_done(), in the
 * loop thread, and the job is freed after; otherwise the caller keeps
 * it. */
int sender_post(struct agent *a, struct sender_job *job);
/* Drops every POST still on the wire, without answers (at exit: their
 * rows stay submitting and are sent again on the next start). */
void sender_cancel_all(struct agent *a);
void sender_job_free(struct sender_job *job);

/* ---- submit.c ---- */

/* Starts the POSTs of due pending casts, up to max_concurrent in flight. */
void submit_pump(struct agent *a);
/* Applies the answer of one POST (a submission or a cancel); sender.c
 * frees the job afterwards. */
void submit_job_done(struct agent *a, struct sender_job *job);
/* Sends POST /v1/casts/{id}:cancel for an accepted cast; call may be NULL. */
int submit_cancel(struct agent *a, const struct lcast *c, struct rpc_call *call);
/* The earliest time submit_pump() has work, 0 when none. */
int64_t submit_next_due(struct agent *a);

/* ---- follow.c: SSE and polling ---- */

int follow_start(struct agent *a, const struct lcast *c);
void follow_stop_all(struct agent *a);
/* Opens due streams and polls; returns the earliest next deadline (0:
 * none). */
int64_t follow_tick(struct agent *a, int64_t now);
/* Applies a server cast resource (GET /v1/casts/{id}, a cancel's answer)
 * to the local cast; emits and notifies when it turns final. */
int follow_apply_cast(struct agent *a, const char *body, size_t len, struct lcast *c);

/* ---- http-get.c: one-shot GETs on the multi ---- */

/* Called once with rc (SPELL_OK when an answer arrived), the status and
 * the body (NUL-terminated); user is what was given. */
typedef void (*http_get_done_fn)(struct agent *a, int rc, int status, const char *body,
                                 size_t len, void *user);

int http_get_start(struct agent *a, const char *path, const char *bearer, http_get_done_fn done,
                   void *user);
void http_get_cancel_all(struct agent *a);

/* ---- events.c: fan-out, waiters, notifications ---- */

/* Sends {"kind", "cast"} to every subscriber; seq >= 0 adds the server's
 * event seq; log, when not NULL, the log line of a cast.log event.
 * Answers cast.wait callers when the cast is final. */
void events_emit(struct agent *a, const char *kind, const struct lcast *c, int64_t seq,
                 const char *log);
/* Raises the desktop notification for a cast that turned final. */
void events_notify_final(struct agent *a, const struct lcast *c);
void events_notify(struct agent *a, const char *summary, const char *body, bool critical);
int events_add_waiter(struct agent *a, struct rpc_call *call, const char *local_id,
                      int64_t deadline);
/* Answers waiters whose time passed; returns the next deadline (0: none). */
int64_t events_tick_waiters(struct agent *a, int64_t now);
void events_fail_waiters(struct agent *a);

/* ---- creds.c: the credential through the desktop module ---- */

int creds_start(struct agent *a);
/* The token, or NULL when signed out. */
const char *creds_token(const struct agent *a);
const char *creds_source_name(const struct agent *a);
/* Replaces the in-memory credential (token copied). */
int creds_set(struct agent *a, const char *token, int source, const char *account,
              const char *path);
void creds_clear(struct agent *a);
/* Loads the credential again (after a logout, the environment's key may
 * apply). */
int creds_reload(struct agent *a);
/* An auth.login or auth.logout waiting for the server or the keyring;
 * listed on the agent so that an exit frees what the desktop module
 * dropped. */
struct login {
    struct login *next;
    struct agent *a;
    struct rpc_call *call;
    /* The token being checked and stored; wiped when freed. */
    char *token;
    char account[256];
};

struct login *login_new(struct agent *a, struct rpc_call *call);
void login_free(struct agent *a, struct login *l);
/* Frees every login still listed (at exit). */
void creds_free_logins(struct agent *a);
/* The key prefix of an API key ("Xcwnvbll"), or NULL for another token. */
int creds_key_prefix(const char *token, char *out, size_t outlen);

#endif
