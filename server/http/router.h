/*
 * The route table of spell-server's HTTP layer.
 *
 * A route is one row {method, pattern, handler, flags}.  A pattern is a
 * path made of '/'-separated segments; a segment is either literal text or
 * holds one parameter `{name}`, optionally with literal text around it:
 *
 *   /v1/casts/{id}            /v1/casts/{id}/events
 *   /v1/spells/{key}:cast     /v1/casts/{id}:cancel
 *
 * Data flow: the HTTP layer hands router_find() the request method and the
 * raw (still percent-encoded) path without its query string.  The router
 * walks the table in order, matching segment by segment on the raw text, so
 * an encoded "%2F" can never split a segment.  A parameter matches one or
 * more bytes that are neither '/' nor ':' (so `{id}` and `{id}:cancel` never
 * both match), and its value is then percent-decoded into the caller's
 * struct router_params.  The first route whose pattern and method match
 * wins; when some pattern matches but no row has the method, the answer is
 * ROUTER_METHOD_NOT_ALLOWED with the list of methods for an Allow header.
 *
 * Bounds: at most ROUTER_MAX_PARAMS parameters per pattern, each decoded
 * value at most ROUTER_PARAM_MAX bytes; a value that is longer, or that
 * decodes to a control byte, NUL or '/', does not match (the request ends
 * as 404).  Paths longer than ROUTER_PATH_MAX never match.
 *
 * The table is read-only after start, so matching is safe from any thread.
 */
#ifndef SPELL_SERVER_ROUTER_H
#define SPELL_SERVER_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_PARAMS 4
#define ROUTER_PARAM_MAX 256
#define ROUTER_NAME_MAX 32
#define ROUTER_PATH_MAX 2048
/* Room for "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" and the NUL. */
#define ROUTER_ALLOW_MAX 64

struct request;
struct response;

/* A handler fills *out with the response to send and returns SPELL_OK; any
 * other return sends 500 INTERNAL (and *out, if set, is freed). */
typedef int (*router_handler)(struct request *req, struct response **out, void *ud);

enum router_flag {
    /* Run the server's authenticate hook before the body is read; when it
     * refuses, the handler is not called. */
    ROUTE_AUTH = 1u << 0,
    /* The route takes no body: any body byte is refused with 413. */
    ROUTE_NO_BODY = 1u << 1,
};

struct route {
    const char *method;         /* "GET", "POST", ... (exact, upper case) */
    const char *pattern;        /* also the metrics and access-log label */
    router_handler handler;
    void *ud;                   /* passed to the handler */
    unsigned flags;             /* enum router_flag bits */
    /* Largest request body accepted, in bytes; 0 means the layer's default
     * (64 KiB for JSON routes). */
    size_t body_cap;
};

struct router_param {
    char name[ROUTER_NAME_MAX + 1];
    char value[ROUTER_PARAM_MAX + 1];
};

struct router_params {
    struct router_param p[ROUTER_MAX_PARAMS];
    size_t count;
};

enum router_result {
    ROUTER_FOUND = 0,
    ROUTER_NOT_FOUND = 1,
    ROUTER_METHOD_NOT_ALLOWED = 2,
};

/* Checks a pattern: starts with '/', each '{name}' closed, a name of 1 to
 * ROUTER_NAME_MAX bytes of [A-Za-z0-9_], at most one parameter per segment
 * and ROUTER_MAX_PARAMS per pattern.  SPELL_OK or SPELL_EINVAL. */
int router_pattern_check(const char *pattern);

/* Matches one pattern against a raw path (no query string).  Returns 1 and
 * fills params on a match, 0 otherwise (params then undefined). */
int router_match(const char *pattern, const char *path, size_t path_len,
                 struct router_params *params);

/*
 * Finds the route for method and raw path among n routes.  ROUTER_FOUND
 * sets *index and params; ROUTER_METHOD_NOT_ALLOWED writes the allowed
 * methods, comma-separated and without duplicates, into allow
 * (ROUTER_ALLOW_MAX bytes) and, for logging and metrics, the first matching
 * row's index into *index; ROUTER_NOT_FOUND otherwise.  A HEAD request
 * matches a GET row.
 */
enum router_result router_find(const struct route *routes, size_t n, const char *method,
                               const char *path, size_t path_len, size_t *index,
                               struct router_params *params, char *allow);

/* The decoded value of parameter `name`, or NULL. */
const char *router_param(const struct router_params *params, const char *name);

/*
 * Percent-decodes src[0..len) into dst (at most cap bytes, then NUL).  When
 * plus_is_space is set, '+' becomes ' ' (query strings).  A '%' not
 * followed by two hex digits is kept as is.  Returns the decoded length, or
 * -1 when it would pass cap.  Decoded NUL bytes are refused (-1) so the
 * result is always a proper C string.
 */
long router_decode(const char *src, size_t len, char *dst, size_t cap, int plus_is_space);

#endif
