/*
 * The client side of the agent protocol (docs/agent.md).
 *
 * spell-agent listens on a Unix socket and speaks JSON-RPC 2.0, one message
 * per '\n'-terminated line, at most SPELL_AGENT_LINE_MAX bytes, in both
 * directions.  A connection starts with agent.hello; after that the client
 * sends requests and the agent sends answers (matched by id) and, once the
 * client subscribed, notifications ({"method": "event", "params": ...}).
 *
 * Data flow.  Going out, spell_agent_send() frames a request into an
 * outbound buffer and writes what the socket takes; the rest is written by
 * spell_agent_flush().  Coming in, bytes enter through spell_agent_read()
 * (which reads the socket) or spell_agent_feed() (bytes the caller read
 * itself), are cut into lines in an inbound buffer, and each complete line
 * is parsed strictly (spell_json_parse) by spell_agent_take(), which hands
 * out one message at a time: an answer or a notification.
 *
 * Two ways to use it:
 *   - blocking, for the command line: spell_agent_connect(),
 *     spell_agent_hello(), spell_agent_call() with a timeout.  Notifications
 *     that arrive while a call waits go to the callback set with
 *     spell_agent_set_notify(), or, without one, into a bounded queue that
 *     spell_agent_take() and spell_agent_wait_notification() drain first;
 *   - non-blocking, for the portal's curses loop: poll spell_agent_fd()
 *     for POLLIN (and POLLOUT while spell_agent_want_write()), then
 *     spell_agent_read() / spell_agent_flush() and spell_agent_take() until
 *     it has nothing more.
 *
 * A line from the agent that is too long or not a valid message is
 * discarded (up to its newline) and reported once, so the connection stays
 * usable; a blocking call that sees one returns at once, since the
 * discarded line may have been its answer.
 *
 * A client is not shared between threads: one client per thread.  Nothing
 * here keeps global state; SIGPIPE is avoided with MSG_NOSIGNAL.
 */
#ifndef SPELL_AGENT_H
#define SPELL_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "spell/config.h"

/* The protocol version this client speaks (agent/protocol.h holds the
 * agent's AGENT_PROTOCOL_VERSION; they must agree). */
#define SPELL_AGENT_PROTOCOL 1

/* The largest message in either direction, in bytes, without its '\n'. */
#define SPELL_AGENT_LINE_MAX (1024 * 1024)

/* The outbound buffer may hold at most this many bytes of unsent requests. */
#define SPELL_AGENT_OUT_MAX (4 * 1024 * 1024)

/* At most this many notifications wait in the queue; when it is full the
 * oldest is dropped and counted (spell_agent_dropped()). */
#define SPELL_AGENT_NOTIFY_QUEUE_MAX 1024

/* The agent's error message is kept up to this many bytes (cut beyond). */
#define SPELL_AGENT_ERRMSG_MAX 512

/* JSON-RPC error codes, standard and the agent's own (docs/agent.md). */
enum spell_agent_code {
    SPELL_AGENT_ERR_PARSE = -32700,
    SPELL_AGENT_ERR_INVALID_REQUEST = -32600,
    SPELL_AGENT_ERR_NO_METHOD = -32601,
    SPELL_AGENT_ERR_INVALID_PARAMS = -32602,
    SPELL_AGENT_ERR_INTERNAL = -32603,
    SPELL_AGENT_ERR_VERSION = -32001,
    SPELL_AGENT_ERR_HELLO_FIRST = -32002,
    SPELL_AGENT_ERR_TOO_LARGE = -32003,
    SPELL_AGENT_ERR_SIGNED_OUT = -32010,
    SPELL_AGENT_ERR_KEYRING = -32011,
    SPELL_AGENT_ERR_NO_CAST = -32020,
    SPELL_AGENT_ERR_SERVER_REFUSED = -32030,
    SPELL_AGENT_ERR_SERVER_UNREACHABLE = -32031,
    SPELL_AGENT_ERR_SHUTTING_DOWN = -32040,
};

/* A short English sentence for an agent error code; for an unknown code a
 * generic one.  Never NULL. */
const char *spell_agent_code_sentence(int code);

/*
 * An error answer from the agent.  Functions that return SPELL_EHTTP fill
 * one in; spell_agent_error_clear() frees data and zeroes the rest, and is
 * safe on a zeroed or already cleared struct.
 */
struct spell_agent_error {
    int code;                               /* the JSON-RPC code; 0 when none */
    char message[SPELL_AGENT_ERRMSG_MAX];   /* the agent's words, NUL-terminated */
    cJSON *data;                            /* the error's data member, owned; may be NULL */
};

void spell_agent_error_clear(struct spell_agent_error *e);

/* For error -32030: the server's {status, code, message} out of data.
 * Each output may be NULL; strings are borrowed from e->data.
 * SPELL_ENOTFOUND when e holds no such data. */
int spell_agent_error_server(const struct spell_agent_error *e, int *status,
                             const char **code, const char **message);

enum spell_agent_msg_kind {
    SPELL_AGENT_MSG_NONE,           /* nothing complete yet */
    SPELL_AGENT_MSG_RESULT,         /* a successful answer: id, result */
    SPELL_AGENT_MSG_ERROR,          /* an error answer: id (0 when null), error */
    SPELL_AGENT_MSG_NOTIFICATION,   /* a notification: method, params */
};

/* One message out of spell_agent_take(); release it with
 * spell_agent_msg_clear().  The pointers point into root. */
struct spell_agent_msg {
    enum spell_agent_msg_kind kind;
    int64_t id;                         /* the request's id, for answers */
    const cJSON *result;                /* RESULT: the result member */
    struct spell_agent_error error;     /* ERROR: code, message and data (owned) */
    const char *method;                 /* NOTIFICATION: the method name */
    const cJSON *params;                /* NOTIFICATION: params, or NULL */
    cJSON *root;                        /* the whole parsed message, owned */
};

void spell_agent_msg_clear(struct spell_agent_msg *m);

struct spell_agent;

/*
 * Connects to the agent's socket: `path`, or when it is NULL the one
 * spell_path_agent_socket(env) names.  The socket is non-blocking; the
 * blocking functions below wait with poll().  SPELL_ENOTFOUND when no path
 * can be made or nobody listens there (ENOENT, ECONNREFUSED), SPELL_EIO for
 * other refusals, SPELL_ETOOBIG for a path that does not fit, SPELL_ENOMEM.
 * err receives a sentence naming the path.
 */
int spell_agent_connect(const struct spell_env *env, const char *path,
                        struct spell_agent **out, char *err, size_t errlen);

/* Wraps an already connected stream socket (the client takes ownership and
 * makes it non-blocking).  For tests and for callers with their own socket. */
int spell_agent_from_fd(int fd, struct spell_agent **out);

/* Closes the socket and frees everything; NULL is fine. */
void spell_agent_free(struct spell_agent *a);

/* Sets the callback for each notification that arrives while a blocking
 * call waits (NULL: queue them instead).  params is borrowed for the
 * duration of the callback. */
void spell_agent_set_notify(struct spell_agent *a,
                            void (*fn)(void *user, const char *method, const cJSON *params),
                            void *user);

/*
 * Blocking API.  timeout_ms < 0 waits without limit.  Returns SPELL_OK;
 * SPELL_EHTTP when the agent answered with an error (e filled in);
 * SPELL_ETIMEOUT when the deadline passed (a late answer is dropped);
 * SPELL_ENET when the agent closed the connection or the socket failed;
 * SPELL_ETOOBIG / SPELL_EPARSE when the agent sent a line too long or not
 * a valid message while waiting; SPELL_EINVAL, SPELL_ENOMEM.
 */

/* agent.hello with SPELL_AGENT_PROTOCOL and client (e.g. "spell/0.1.0").
 * *agent_version (may be NULL) receives a copy of the agent's version
 * string (caller frees).  SPELL_EVERIFY when the agent answered with
 * another protocol number; a -32001 answer is SPELL_EHTTP with e->code
 * SPELL_AGENT_ERR_VERSION. */
int spell_agent_hello(struct spell_agent *a, const char *client, int timeout_ms,
                      char **agent_version, struct spell_agent_error *e);

/* Calls `method` with params (borrowed; NULL sends {}) and waits for its
 * answer.  On SPELL_OK *result owns the result member (cJSON_Delete it). */
int spell_agent_call(struct spell_agent *a, const char *method, const cJSON *params,
                     int timeout_ms, cJSON **result, struct spell_agent_error *e);

/* Waits for the next notification (queued ones first).  On SPELL_OK *msg
 * holds it (kind NOTIFICATION); an answer that arrives meanwhile (a late
 * one) is dropped.  SPELL_ETIMEOUT when none came in time. */
int spell_agent_wait_notification(struct spell_agent *a, int timeout_ms,
                                  struct spell_agent_msg *msg);

/*
 * Non-blocking API.
 */

/* The socket, for poll(): POLLIN always, POLLOUT while
 * spell_agent_want_write().  -1 for a client made without a socket. */
int spell_agent_fd(const struct spell_agent *a);

/* Frames a request and writes what the socket takes now; *id (may be NULL)
 * receives its id (ids count up from 1 per client).  SPELL_ETOOBIG when the
 * message passes SPELL_AGENT_LINE_MAX or the outbound buffer is full;
 * SPELL_ENET when the socket failed. */
int spell_agent_send(struct spell_agent *a, const char *method, const cJSON *params,
                     int64_t *id);

/* Whether unsent bytes wait in the outbound buffer. */
bool spell_agent_want_write(const struct spell_agent *a);

/* Writes what the socket takes of the outbound buffer.  SPELL_ENET when
 * the socket failed. */
int spell_agent_flush(struct spell_agent *a);

/* Reads what the socket has (without blocking) and feeds it.  SPELL_OK
 * also when nothing was there; SPELL_ENET when the agent closed the
 * connection (after the last complete lines were kept for take). */
int spell_agent_read(struct spell_agent *a);

/* Feeds bytes the caller read itself.  Bytes are only buffered here; the
 * inbound buffer holds at most one line of SPELL_AGENT_LINE_MAX plus the
 * bytes after it, so feed in chunks and take in between.  SPELL_ETOOBIG
 * when the chunk does not fit (take first); nothing is kept then. */
int spell_agent_feed(struct spell_agent *a, const char *buf, size_t len);

/* Takes the next complete message (queued notifications first).
 * SPELL_OK with msg->kind SPELL_AGENT_MSG_NONE when there is none yet.
 * SPELL_ETOOBIG once per line that passed SPELL_AGENT_LINE_MAX, and
 * SPELL_EPARSE once per line that is not a valid JSON-RPC message (err
 * holds why); such lines are discarded and the next call goes on. */
int spell_agent_take(struct spell_agent *a, struct spell_agent_msg *msg,
                     char *err, size_t errlen);

/* How many notifications the full queue dropped so far. */
uint64_t spell_agent_dropped(const struct spell_agent *a);

#endif
