/*
 * HTTP client, on libcurl.
 *
 * Two ways to talk to a server:
 *
 *  - spell_http_send() sends one request and waits for the whole answer.
 *    The caller fills a struct spell_http_request (method, URL, bearer
 *    token, body, extra header lines, timeouts, caps, retry policy) and
 *    gets back a struct spell_http_response (status, header fields, body,
 *    and a sentence when the transport failed).  An HTTP error status is
 *    not a failure of the call: the caller reads resp->status.  Transient
 *    trouble is retried with exponential backoff and full jitter:
 *    transport failures and 5xx for idempotent requests, 429 and 503 for
 *    any request, honouring Retry-After.
 *
 *  - struct spell_http_multi follows many long-lived responses (Server-
 *    Sent Events) from one event-loop thread, and carries that thread's
 *    one-shot requests too (a POST with a JSON body, say): a stream may
 *    have any method, a body and extra header lines, and is sent once
 *    (retrying is the caller's business there).  Each stream reports its
 *    status and header fields first (on_headers), then body bytes as they
 *    arrive (on_data), then its end (on_done).  The loop waits with
 *    spell_http_multi_poll(), which also watches the caller's own file
 *    descriptors, then calls spell_http_multi_perform(), which moves the
 *    transfers on and fires the callbacks.  The object keeps curl's
 *    sockets in an epoll set of its own and hands curl only the ones that
 *    are ready (and its timer when due), so a loop turn costs the streams
 *    that have something to do, not every stream followed.
 *
 * Every request carries "User-Agent: spell/<version>".  Redirects are
 * never followed (the API answers 202 with Location) and only http and
 * https URLs are accepted.  The bearer token goes into the Authorization
 * header and nowhere else: no error text ever holds it.
 *
 * Thread safety: every call and every multi object has its own curl
 * handles; nothing mutable is shared.  A multi object belongs to one
 * thread, except spell_http_multi_wakeup(), which any thread may call.
 * The only process-wide state is curl's global init, done once through
 * spell_http_global_init() (the other entry points call it too).
 */
#ifndef SPELL_HTTP_H
#define SPELL_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Defaults, used where a request leaves the field at 0. */
#define SPELL_HTTP_CONNECT_TIMEOUT_MS 5000L
#define SPELL_HTTP_TIMEOUT_MS 30000L
#define SPELL_HTTP_BODY_CAP ((size_t)8 * 1024 * 1024)
#define SPELL_HTTP_RETRY_ATTEMPTS 3
#define SPELL_HTTP_RETRY_BASE_MS 200L
#define SPELL_HTTP_RETRY_MAX_MS 10000L

/* Caps on what a server may send: header fields kept per response, and
 * the length of one header line (without its CRLF).  Passing either gives
 * SPELL_ETOOBIG. */
#define SPELL_HTTP_MAX_HEADERS 100
#define SPELL_HTTP_MAX_HEADER_LINE (8 * 1024)

/* Caps on what a caller may send. */
#define SPELL_HTTP_MAX_URL (8 * 1024)
#define SPELL_HTTP_MAX_BEARER 4096
#define SPELL_HTTP_MAX_EXTRA_HEADERS 64
#define SPELL_HTTP_MAX_REQUEST_BODY ((size_t)64 * 1024 * 1024)
#define SPELL_HTTP_MAX_ATTEMPTS 10
/* Largest response body cap a request may ask for. */
#define SPELL_HTTP_MAX_BODY_CAP ((size_t)1024 * 1024 * 1024)

/* Longest delay the retry helpers ever return: one day.  Larger inputs
 * saturate here, so no arithmetic on them can overflow. */
#define SPELL_HTTP_DELAY_CAP_MS 86400000L

/* Most streams one multi object follows, and most extra descriptors one
 * poll watches. */
#define SPELL_HTTP_MULTI_MAX_STREAMS 1024
#define SPELL_HTTP_MULTI_MAX_EXTRA 1024

/* Size of the error sentence buffers, NUL included. */
#define SPELL_HTTP_ERROR_SIZE 256

int spell_http_global_init(void);
/* Call once, when no other thread uses HTTP any more (at exit). */
void spell_http_global_cleanup(void);

struct spell_http_retry {
    /* Attempts in all, the first included: 1 disables retries; 0 means
     * SPELL_HTTP_RETRY_ATTEMPTS.  At most SPELL_HTTP_MAX_ATTEMPTS. */
    int max_attempts;
    /* Backoff before the first retry (doubling after); 0 means default. */
    long base_ms;
    /* No delay is ever longer, Retry-After included; 0 means default. */
    long max_ms;
};

struct spell_http_request {
    const char *method;         /* "GET" when NULL */
    const char *url;            /* http:// or https:// only */
    /* Sent as "Authorization: Bearer <token>" when not NULL. */
    const char *bearer;
    /* Request body; NULL sends none (an empty one for POST, PUT and
     * PATCH).  May hold NUL bytes. */
    const void *body;
    size_t body_len;
    /* Content-Type of the body; "application/json" when NULL. */
    const char *content_type;
    /* Extra header lines, "Name: value", without CR or LF.  A line
     * "Idempotency-Key: <key>" makes any method safe to retry. */
    const char *const *headers;
    size_t n_headers;
    long connect_timeout_ms;    /* 0: SPELL_HTTP_CONNECT_TIMEOUT_MS */
    long timeout_ms;            /* whole attempt; 0: SPELL_HTTP_TIMEOUT_MS */
    size_t body_cap;            /* response body; 0: SPELL_HTTP_BODY_CAP */
    struct spell_http_retry retry;
};

struct spell_http_header {
    char *name;                 /* as the server spelled it */
    char *value;                /* without surrounding whitespace */
};

struct spell_http_response {
    int status;                 /* 0 when no response arrived */
    /* Header fields of the final response (interim 1xx ones dropped). */
    struct spell_http_header *headers;
    size_t n_headers;
    /* NUL-terminated (the NUL not counted in body_len) and never NULL
     * when spell_http_send() returns SPELL_OK; may hold NUL bytes. */
    char *body;
    size_t body_len;
    int attempts;               /* requests actually sent */
    /* Why the call failed, in words; "" on success. */
    char error[SPELL_HTTP_ERROR_SIZE];
};

/* Zeroes *req and sets method and url; every other field takes its
 * default. */
void spell_http_request_init(struct spell_http_request *req, const char *method,
                             const char *url);

/*
 * Sends req, retrying as its policy says, and fills *resp with the last
 * answer.  *resp is always initialised, even on failure: free it with
 * spell_http_response_free().  Returns SPELL_OK whenever a response
 * arrived, whatever its status; SPELL_EINVAL or SPELL_ETOOBIG for a bad
 * request; SPELL_ENET or SPELL_ETIMEOUT when the transport failed;
 * SPELL_ETOOBIG when the response passed a cap; SPELL_EPARSE when it was
 * not HTTP.
 */
int spell_http_send(const struct spell_http_request *req, struct spell_http_response *resp);

/* The value of the first header field called `name` (any case), or NULL. */
const char *spell_http_response_header(const struct spell_http_response *resp,
                                       const char *name);

void spell_http_response_free(struct spell_http_response *resp);

/*
 * The delay before retry number `attempt` (0 for the first retry): a
 * uniform pick, driven by `random`, in [0, min(max_ms, base_ms * 2^attempt)]
 * ("full jitter").  random = 0 gives 0, random = UINT32_MAX the ceiling.
 * max_ms is itself capped at SPELL_HTTP_DELAY_CAP_MS; a base or max that
 * is not positive gives 0.
 */
long spell_http_backoff_ms(int attempt, long base_ms, long max_ms, uint32_t random);

/*
 * Parses a Retry-After value: delay-seconds ("120") or an HTTP-date
 * (IMF-fixdate, RFC 850 or asctime form, RFC 9110 §5.6.7) compared with
 * `now`.  A date in the past gives 0.  The result saturates at
 * SPELL_HTTP_DELAY_CAP_MS.  SPELL_EINVAL for anything else.
 */
int spell_http_parse_retry_after(const char *value, time_t now, long *out_ms);

/* ---- Streaming many responses from one loop ---- */

struct spell_http_multi;
struct spell_http_stream;

/* Event bits for spell_pollfd, as poll(2) spells them. */
#define SPELL_POLLIN 0x1
#define SPELL_POLLPRI 0x2
#define SPELL_POLLOUT 0x4

/* One of the caller's descriptors for spell_http_multi_poll(). */
struct spell_pollfd {
    int fd;
    short events;               /* SPELL_POLL* bits to wait for */
    short revents;              /* bits that are ready, set by the poll */
};

struct spell_http_stream_config {
    const char *url;
    const char *bearer;         /* as in struct spell_http_request */
    const char *const *headers; /* e.g. "Last-Event-ID: 42" */
    size_t n_headers;
    long connect_timeout_ms;    /* 0: SPELL_HTTP_CONNECT_TIMEOUT_MS */
    long timeout_ms;            /* 0: no limit, as a stream may last hours */
    /* When both are set, a stream slower than low_speed_bytes per second
     * for low_speed_secs seconds ends with SPELL_ETIMEOUT. */
    long low_speed_bytes;
    long low_speed_secs;
    /*
     * Called once, when the final status line and header fields are in
     * and before any body byte; spell_http_stream_header() reads the
     * fields.  Nonzero aborts the stream.  May be NULL.
     */
    int (*on_headers)(struct spell_http_stream *s, int status, void *user);
    /* Body bytes as they arrive; nonzero aborts the stream.  May be NULL. */
    int (*on_data)(struct spell_http_stream *s, const char *data, size_t len, void *user);
    /*
     * Called once at the end, unless the stream was removed first.  rc is
     * SPELL_OK when the response was read to its end (whatever its
     * status), SPELL_EABORT when a callback aborted it, SPELL_ENET,
     * SPELL_ETIMEOUT, SPELL_ETOOBIG or SPELL_EPARSE otherwise; `error`
     * says why in words ("" on success).  The stream is freed when this
     * returns.  May be NULL.
     */
    void (*on_done)(struct spell_http_stream *s, int rc, int status, const char *error,
                    void *user);
    void *user;
    /* "GET" when NULL.  As in struct spell_http_request. */
    const char *method;
    /*
     * Request body; NULL sends none (an empty one for POST, PUT and
     * PATCH).  May hold NUL bytes; at most SPELL_HTTP_MAX_REQUEST_BODY.
     * Copied by spell_http_multi_add(), so the caller's may go at once.
     */
    const void *body;
    size_t body_len;
    /* Content-Type of the body; "application/json" when NULL. */
    const char *content_type;
};

int spell_http_multi_new(struct spell_http_multi **out);
/* Ends every stream without callbacks.  Not from inside a callback. */
void spell_http_multi_free(struct spell_http_multi *m);

/*
 * Starts a request for cfg->url (a GET unless cfg->method says otherwise).
 * *out, if given, receives the stream, valid until its on_done returns or
 * it is removed.  May be called from a callback; the transfer then starts
 * once perform returns.  The header fields stay readable with
 * spell_http_stream_header() until on_done returns.  Nothing is retried.
 */
int spell_http_multi_add(struct spell_http_multi *m, const struct spell_http_stream_config *cfg,
                         struct spell_http_stream **out);

/*
 * Ends a stream; no callback of it fires afterwards.  Safe at any time,
 * from inside its own callbacks or another stream's included (the curl
 * handle is then released when perform returns).
 */
int spell_http_multi_remove(struct spell_http_multi *m, struct spell_http_stream *s);

/*
 * Waits up to timeout_ms (>= 0) for curl's sockets, the extra
 * descriptors, or a wakeup, and fills each extra[i].revents (a hangup
 * shows as SPELL_POLLIN, an error as SPELL_POLLIN | SPELL_POLLOUT).
 * Returns early when curl has work to do or a timer of its is due
 * (a stream's timeout, say); call spell_http_multi_perform() next, which
 * acts on what this poll found ready.  A signal ending the wait early is
 * not an error.
 */
int spell_http_multi_poll(struct spell_http_multi *m, struct spell_pollfd *extra,
                          unsigned n_extra, int timeout_ms);

/* Moves transfers on and fires callbacks.  *running, if given, receives
 * the number of streams not yet done. */
int spell_http_multi_perform(struct spell_http_multi *m, int *running);

/* Makes a spell_http_multi_poll() in progress return; any thread. */
int spell_http_multi_wakeup(struct spell_http_multi *m);

/* Streams added and neither done nor removed. */
unsigned spell_http_multi_count(const struct spell_http_multi *m);

int spell_http_stream_status(const struct spell_http_stream *s);
const char *spell_http_stream_header(const struct spell_http_stream *s, const char *name);
void *spell_http_stream_user(const struct spell_http_stream *s);

#endif
