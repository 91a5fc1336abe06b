/*
 * The HTTP layer of spell-server: a libmicrohttpd daemon, the route table
 * (router.h), requests and responses for handlers, the access log, request
 * metrics (metrics.h) and Server-Sent Event streams (sse_hub.h).
 *
 * Data flow of one request:
 *
 *   connection accepted (per-IP and total limits, small memory pool)
 *   -> request line and headers parsed by libmicrohttpd
 *   -> route found on the raw path (404 NOT_FOUND, 405 + Allow)
 *   -> query string decoded and bounded (400 VALIDATION_ERROR)
 *   -> declared Content-Length checked against the route's body cap (413)
 *   -> ROUTE_AUTH routes: the authenticate hook (401, or its own answer)
 *   -> body accumulated up to the cap (413 as soon as it passes)
 *   -> handler(req, &resp, ud) on one of the daemon's threads
 *   -> response sent with the API headers; SSE responses keep streaming
 *   -> access log line and request metrics when the request completes.
 *
 * Handlers answer with a struct response made by one of the
 * httpd_response_*() functions; the layer frees it after queueing.  All
 * answers carry Cache-Control: no-store and X-Content-Type-Options: nosniff.
 *
 * Stopping (httpd_stop()) is graceful: new connections are turned away at
 * once, requests that arrive on kept-alive connections are answered 503
 * with Connection: close, every SSE stream ends after what is queued, and
 * in-flight requests get up to shutdown_grace_ms to finish before the
 * daemon (and its listening socket) is torn down.
 */
#ifndef SPELL_SERVER_HTTPD_H
#define SPELL_SERVER_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "spell/errors.h"

#include "metrics.h"
#include "router.h"
#include "sse_hub.h"

/* Default body cap for JSON routes (DESIGN.md §3: 64 KiB). */
#define HTTPD_BODY_CAP ((size_t)64 * 1024)
/* Largest body cap a route may ask for. */
#define HTTPD_BODY_CAP_MAX ((size_t)16 * 1024 * 1024)
/* Query string bounds: parameters, and decoded bytes of a name / value. */
#define HTTPD_QUERY_MAX 32
#define HTTPD_QUERY_NAME_MAX 128
#define HTTPD_QUERY_VALUE_MAX 2048
/* Extra headers on one response. */
#define HTTPD_RESPONSE_HEADERS 12
/* Bytes of one response header value. */
#define HTTPD_HEADER_VALUE_MAX 1024
/* Bytes of an error message. */
#define HTTPD_MESSAGE_MAX 1024
/* Bytes of a JSON or text response body built by this layer. */
#define HTTPD_RESPONSE_MAX ((size_t)8 * 1024 * 1024)

struct httpd;
struct request;
struct response;

/* A time source for the access log, injectable for tests. */
struct httpd_clock {
    int64_t (*now_ms)(void *ud);    /* Unix ms; NULL: the system clock */
    void *ud;
};

struct httpd_config {
    /* Numeric listen address, IPv4 or IPv6 ("127.0.0.1", "::"); NULL means
     * every IPv4 address. */
    const char *address;
    /* 0 picks an ephemeral port: httpd_port() tells which. */
    uint16_t port;
    const struct route *routes;
    size_t nroutes;
    /* Event-loop threads that also run handlers; 0 means 4. */
    unsigned threads;
    /* Open connections at once; 0 means 16384 (the process may open 20,000
     * files; SSE streams count). */
    unsigned max_connections;
    /* Open connections per client address; 0 means no per-address limit. */
    unsigned max_per_ip;
    /* Seconds a connection may stay silent before it is closed; 0 means
     * 60.  Idle SSE streams are exempt while they wait (pings keep them
     * active). */
    unsigned timeout_s;
    /* Per-connection memory pool in bytes (request line, headers and the
     * send window); 0 means HTTPD_DEFAULT_POOL.  It bounds the request
     * header size: a larger header block gets 431. */
    size_t pool_size;
    /* Body cap for routes whose body_cap is 0; 0 means HTTPD_BODY_CAP. */
    size_t body_cap;
    /* How long httpd_stop() waits for in-flight requests and streams; 0
     * means 10 s. */
    int64_t shutdown_grace_ms;
    /* Called for ROUTE_AUTH routes once the headers are in, before the
     * body is read.  Return SPELL_OK to go on (after setting the
     * principal); anything else refuses the request with the response set
     * by httpd_request_reject(), or 401 UNAUTHORIZED when none was set. */
    int (*authenticate)(struct request *req, void *ud);
    void *auth_ud;
    /* Where access log lines go (one fprintf per line); NULL for none. */
    FILE *access_log;
    /* The registry the layer registers its families in: requests by route,
     * method and status class, latency histogram, open streams gauge.
     * NULL for none. */
    struct metrics *metrics;
    struct httpd_clock clock;
};

/* 3 KiB: request line and headers up to about 2.5 KB (431 past that; our
 * own clients send well under 1 KB), and 1 KiB less per open SSE stream
 * than 4 KiB. */
#define HTTPD_DEFAULT_POOL ((size_t)3072)

/* Starts the daemon.  SPELL_EINVAL for a bad address or route table
 * (patterns are checked), SPELL_EIO when the socket cannot be bound or
 * the daemon cannot start, SPELL_ENOMEM. */
int httpd_start(const struct httpd_config *cfg, struct httpd **out);

/* The bound port (useful after port 0). */
uint16_t httpd_port(const struct httpd *h);

/* Requests currently in flight, SSE streams included. */
size_t httpd_in_flight(struct httpd *h);

/* Open SSE streams. */
size_t httpd_open_streams(struct httpd *h);

/* Graceful stop as described at the top, then frees everything.  Returns
 * SPELL_OK when everything finished within the grace period,
 * SPELL_ETIMEOUT when stragglers were cut off. */
int httpd_stop(struct httpd *h);

/* ---- requests (valid during the handler and the authenticate hook) ---- */

const char *httpd_request_method(const struct request *req);
/* The raw path without the query string ("/v1/casts/cst_01H...:cancel"). */
const char *httpd_request_path(const struct request *req);
/* The matched route's pattern ("/v1/casts/{id}:cancel"). */
const char *httpd_request_route(const struct request *req);
/* A decoded path parameter, or NULL. */
const char *httpd_request_param(const struct request *req, const char *name);
/* A decoded query parameter (the first of that name), or NULL; a name
 * given without '=' has the value "". */
const char *httpd_request_query(const struct request *req, const char *name);
/* A request header by name, case-insensitively, or NULL. */
const char *httpd_request_header(const struct request *req, const char *name);
/* The body received (NUL-terminated for convenience; len excludes it). */
const char *httpd_request_body(const struct request *req, size_t *len);
/* The client address as text ("127.0.0.1", "::1"). */
const char *httpd_request_remote(const struct request *req);

/* The authenticated principal slot.  free_fn (may be NULL) runs when the
 * request ends. */
void httpd_request_set_principal(struct request *req, void *principal,
                                 void (*free_fn)(void *principal));
void *httpd_request_principal(const struct request *req);

/* From the authenticate hook: the answer to send instead of 401 (429 with
 * Retry-After, 403, ...).  The request takes ownership. */
void httpd_request_reject(struct request *req, struct response *resp);

/* ---- responses ---- */

/* A JSON answer from a cJSON value (printed unformatted) or from a JSON
 * text the caller vouches for. */
int httpd_response_json(int status, const cJSON *value, struct response **out);
int httpd_response_json_str(int status, const char *json, struct response **out);

/* Any other body with its content type; len 0 and body NULL for none. */
int httpd_response_body(int status, const char *content_type, const char *body, size_t len,
                        struct response **out);

/* The error shape of DESIGN.md §3:
 *   {"error": {"code": "...", "message": "...", "details": {...}}}
 * The status comes from the core catalog; message NULL means the
 * catalog's sentence; details NULL means {} (it is copied). */
int httpd_response_error(enum spell_api_error e, const char *message, const cJSON *details,
                         struct response **out);

/*
 * An SSE stream fed by sub (see sse_hub.h: subscribe, backlog, start,
 * then this).  The response owns sub from here on, also on failure.
 */
int httpd_response_sse(struct sse_sub *sub, struct response **out);

/* Adds a header (Location, Retry-After, RateLimit-Policy, RateLimit,
 * Idempotent-Replayed, ...).  SPELL_EINVAL for a name that is not a token
 * or a value with control characters or over HTTPD_HEADER_VALUE_MAX
 * bytes; SPELL_ETOOBIG past HTTPD_RESPONSE_HEADERS. */
int httpd_response_header(struct response *resp, const char *name, const char *value);

int httpd_response_status(const struct response *resp);

void httpd_response_free(struct response *resp);

#endif
