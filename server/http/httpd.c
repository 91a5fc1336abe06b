/*
 * The HTTP layer on GNU libmicrohttpd: see httpd.h for the request flow.
 *
 * Threading model.  The daemon runs MHD's internal epoll event loop on a
 * small pool of threads (MHD_OPTION_THREAD_POOL_SIZE, each thread with its
 * own epoll set and its share of the connections), and handlers run on
 * those threads.  epoll keeps the cost of 10,000 mostly idle connections
 * proportional to the active ones, and the pool lets a slow handler (a
 * store transaction) block only its own share.  SSE streams do not hold a
 * thread: when a stream has nothing to send, its content reader suspends
 * the connection (MHD_suspend_connection takes it out of the epoll set),
 * and the hub resumes it when an event or a ping is queued.  Suspended
 * connections do not time out, which is what an idle stream wants.
 *
 * Write-through.  An HTTP/1.1 stream's socket is handed to the hub
 * (sse_sub_set_socket), which then sends each event to it directly, as
 * one HTTP/1.1 chunk, while the connection stays suspended (sse_hub.h,
 * "Write-through").  What libmicrohttpd 0.9.75 does that makes this safe:
 *   - a response of MHD_SIZE_UNKNOWN to an HTTP/1.1 request (exactly:
 *     HTTP/1.1 or 1.2-1.9, without the MHD_RF_HTTP_1_0_* flags, with a
 *     body) is sent in chunked coding, each callback result as one chunk
 *     (setup_reply_properties, try_ready_chunked_body); the hub is only
 *     given streams whose request line says HTTP/1.1 and whose method is
 *     GET, and every other stream keeps the resume path;
 *   - the content reader is only called in the CHUNKED_BODY_UNREADY
 *     state, reached once the write buffer has been sent completely
 *     (check_write_done), so when the reader suspends no byte of MHD's is
 *     left unsent for ours to overtake;
 *   - a suspended connection is out of MHD's epoll set and its timeout
 *     lists; MHD neither reads, writes, times out nor closes it, and on
 *     resume it resets the timeout and calls the reader again.
 * When the stream ends the hub resumes the connection once its own bytes
 * are out; the reader then returns END_OF_STREAM (MHD writes the last
 * chunk and keeps or closes the connection as usual) or, for a stream that
 * failed (client gone or far behind), END_WITH_ERROR (MHD closes it).
 *
 * Memory per connection.  libmicrohttpd's default pool is 32 KiB per
 * connection; ours is HTTPD_DEFAULT_POOL (3 KiB): it holds the request line
 * and headers and is reused as the send window.  Bodies are not kept in the
 * pool but in a capped spell_buf of the request, and response bodies are
 * handed to MHD as heap buffers, so the pool only bounds header size (431
 * past it).  With the subscription's queue freed whenever it drains, an
 * idle SSE stream costs the pool, MHD's connection and response structs
 * and a few hundred bytes of ours.
 *
 * Paths are matched raw: an unescape callback that leaves MHD's text as it
 * is lets the router see "%2F" as three bytes, and query values are
 * decoded here with their own bounds.
 *
 * Graceful stop: see httpd_stop().
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "spell/buf.h"
#include "spell/clock.h"
#include "spell/errors.h"

#include "httpd.h"

/* Once the body cap is passed, up to this many further bytes are read and
 * dropped so the client can be told 413; past it the connection is cut. */
#define DISCARD_MAX ((size_t)1024 * 1024)
/* Bytes of the path as it appears in the access log. */
#define LOG_PATH_MAX 256
/* MHD's buffer for callback responses sent without chunking (HTTP/1.0). */
#define SSE_BLOCK 256

struct header {
    char *name;
    char *value;
};

struct response {
    int status;
    char *content_type;         /* NULL: no Content-Type */
    char *body;                 /* malloc'd; handed to MHD */
    size_t len;
    struct header headers[HTTPD_RESPONSE_HEADERS];
    size_t nheaders;
    /* Set for an SSE stream; owned by the response until queued. */
    struct sse_sub *sub;
};

struct query_param {
    char *name;
    char *value;
};

struct stream;

struct request {
    struct httpd *httpd;
    struct MHD_Connection *conn;
    const char *method;             /* MHD's string, valid for the request */
    const char *version;            /* MHD's string ("HTTP/1.1"), likewise */
    char *path;                     /* copy of the raw path */
    const struct route *route;      /* NULL when none matched */
    /* Path and query parameters live on the heap and are dropped once an
     * SSE response is queued, so a long-lived stream keeps only what the
     * access log needs. */
    struct router_params *params;
    struct query_param *query;      /* HTTPD_QUERY_MAX slots, made on demand */
    size_t nquery;
    struct spell_buf body;
    /* The body passed its cap: bytes are dropped, 413 follows. */
    int overflow;
    size_t discarded;
    /* A response has been queued; later calls only drain the body. */
    int queued;
    int status;
    /* Response body bytes, for the log and metrics. */
    uint64_t bytes;
    struct timespec t0;
    char remote[INET6_ADDRSTRLEN];
    void *principal;
    void (*principal_free)(void *principal);
    struct response *rejection;
    /* The SSE stream this request answered with, while both live. */
    struct stream *stream;
};

/* The state of one SSE response: the glue between MHD and a subscription. */
struct stream {
    struct httpd *httpd;
    struct MHD_Connection *conn;
    struct sse_sub *sub;
    struct request *req;            /* cleared when the request completes */
    struct stream *prev, *next;     /* in httpd->streams, under httpd->lock */
};

struct httpd {
    struct MHD_Daemon *daemon;
    struct httpd_config cfg;
    uint16_t port;
    pthread_mutex_t lock;           /* guards the fields below */
    pthread_cond_t idle;            /* signalled when in_flight drops */
    size_t in_flight;
    size_t nstreams;
    struct stream *streams;
    atomic_int draining;
    struct metric *m_requests;
    struct metric *m_latency;
    struct metric *m_streams;
};

/* ---------------------------------------------------------------- */

static int64_t now_ms(const struct httpd *h)
{
    if (h->cfg.clock.now_ms)
        return h->cfg.clock.now_ms(h->cfg.clock.ud);
    return spell_time_now_ms();
}

static int token_char(char c)
{
    return isalnum((unsigned char)c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* ---- responses ---- */

static int response_new(int status, struct response **out)
{
    struct response *r;

    *out = NULL;
    if (status < 100 || status > 599)
        return SPELL_EINVAL;
    if (!(r = calloc(1, sizeof *r)))
        return SPELL_ENOMEM;
    r->status = status;
    *out = r;
    return SPELL_OK;
}

void httpd_response_free(struct response *resp)
{
    if (!resp)
        return;
    for (size_t i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->content_type);
    free(resp->body);
    sse_sub_release(resp->sub);
    free(resp);
}

int httpd_response_status(const struct response *resp)
{
    return resp ? resp->status : 0;
}

int httpd_response_body(int status, const char *content_type, const char *body, size_t len,
                        struct response **out)
{
    int rc;
    struct response *r = NULL;

    *out = NULL;
    if ((!body && len) || len > HTTPD_RESPONSE_MAX ||
        (content_type && strpbrk(content_type, "\r\n")))
        return SPELL_EINVAL;
    if ((rc = response_new(status, &r)) != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (content_type && !(r->content_type = strdup(content_type)))
        goto out;
    if (len) {
        if (!(r->body = malloc(len)))
            goto out;
        memcpy(r->body, body, len);
        r->len = len;
    }
    *out = r;
    r = NULL;
    rc = SPELL_OK;
out:
    httpd_response_free(r);
    return rc;
}

int httpd_response_json_str(int status, const char *json, struct response **out)
{
    *out = NULL;
    if (!json)
        return SPELL_EINVAL;
    return httpd_response_body(status, "application/json", json, strlen(json), out);
}

int httpd_response_json(int status, const cJSON *value, struct response **out)
{
    int rc;
    char *text;

    *out = NULL;
    if (!value)
        return SPELL_EINVAL;
    if (!(text = cJSON_PrintUnformatted(value)))
        return SPELL_ENOMEM;
    rc = httpd_response_json_str(status, text, out);
    cJSON_free(text);
    return rc;
}

int httpd_response_error(enum spell_api_error e, const char *message, const cJSON *details,
                         struct response **out)
{
    int rc = SPELL_ENOMEM;
    const struct spell_api_error_info *info = spell_api_error_info(e);
    cJSON *root = NULL, *err, *det;

    *out = NULL;
    if (!info)
        info = spell_api_error_info(SPELL_ERR_INTERNAL);
    if (!message)
        message = info->sentence;
    if (strlen(message) > HTTPD_MESSAGE_MAX)
        return SPELL_EINVAL;
    if (!(root = cJSON_CreateObject()))
        goto out;
    if (!(err = cJSON_AddObjectToObject(root, "error")))
        goto out;
    if (!cJSON_AddStringToObject(err, "code", info->code) ||
        !cJSON_AddStringToObject(err, "message", message))
        goto out;
    det = details ? cJSON_Duplicate(details, 1) : cJSON_CreateObject();
    if (!det)
        goto out;
    if (!cJSON_AddItemToObject(err, "details", det)) {
        cJSON_Delete(det);
        goto out;
    }
    rc = httpd_response_json(info->status, root, out);
out:
    cJSON_Delete(root);
    return rc;
}

int httpd_response_sse(struct sse_sub *sub, struct response **out)
{
    int rc;
    struct response *r = NULL;

    *out = NULL;
    if (!sub)
        return SPELL_EINVAL;
    if ((rc = httpd_response_body(200, "text/event-stream", NULL, 0, &r)) != SPELL_OK) {
        sse_sub_release(sub);
        return rc;
    }
    r->sub = sub;
    *out = r;
    return SPELL_OK;
}

int httpd_response_header(struct response *resp, const char *name, const char *value)
{
    struct header *hd;

    if (!resp || !name || !value || !*name || strlen(name) > 64 ||
        strlen(value) > HTTPD_HEADER_VALUE_MAX)
        return SPELL_EINVAL;
    for (const char *p = name; *p; p++)
        if (!token_char(*p))
            return SPELL_EINVAL;
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return SPELL_EINVAL;
    if (resp->nheaders >= HTTPD_RESPONSE_HEADERS)
        return SPELL_ETOOBIG;
    hd = &resp->headers[resp->nheaders];
    hd->name = strdup(name);
    hd->value = strdup(value);
    if (!hd->name || !hd->value) {
        free(hd->name);
        free(hd->value);
        hd->name = hd->value = NULL;
        return SPELL_ENOMEM;
    }
    resp->nheaders++;
    return SPELL_OK;
}

/* ---- requests ---- */

const char *httpd_request_method(const struct request *req)
{
    return req->method;
}

const char *httpd_request_path(const struct request *req)
{
    return req->path;
}

const char *httpd_request_route(const struct request *req)
{
    return req->route ? req->route->pattern : NULL;
}

const char *httpd_request_param(const struct request *req, const char *name)
{
    return req->params ? router_param(req->params, name) : NULL;
}

const char *httpd_request_query(const struct request *req, const char *name)
{
    for (size_t i = 0; i < req->nquery; i++)
        if (strcmp(req->query[i].name, name) == 0)
            return req->query[i].value;
    return NULL;
}

const char *httpd_request_header(const struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *httpd_request_body(const struct request *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return spell_buf_str(&req->body);
}

const char *httpd_request_remote(const struct request *req)
{
    return req->remote;
}

void httpd_request_set_principal(struct request *req, void *principal,
                                 void (*free_fn)(void *principal))
{
    if (req->principal_free)
        req->principal_free(req->principal);
    req->principal = principal;
    req->principal_free = free_fn;
}

void *httpd_request_principal(const struct request *req)
{
    return req->principal;
}

void httpd_request_reject(struct request *req, struct response *resp)
{
    httpd_response_free(req->rejection);
    req->rejection = resp;
}

/* Frees what only the handler needs. */
static void request_trim(struct request *req)
{
    if (req->principal_free)
        req->principal_free(req->principal);
    req->principal = NULL;
    req->principal_free = NULL;
    for (size_t i = 0; i < req->nquery; i++) {
        free(req->query[i].name);
        free(req->query[i].value);
    }
    free(req->query);
    req->query = NULL;
    req->nquery = 0;
    free(req->params);
    req->params = NULL;
    httpd_response_free(req->rejection);
    req->rejection = NULL;
    spell_buf_free(&req->body);
}

static void request_free(struct request *req)
{
    if (!req)
        return;
    if (req->stream)
        req->stream->req = NULL;
    request_trim(req);
    free(req->path);
    free(req);
}

/* ---- SSE streams ---- */

static void stream_suspend(void *ud)
{
    struct stream *s = ud;
    MHD_suspend_connection(s->conn);
}

static void stream_resume(void *ud)
{
    struct stream *s = ud;
    MHD_resume_connection(s->conn);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    size_t n = 0;

    switch (sse_sub_read(s->sub, buf, max, &n, stream_suspend, s)) {
    case SSE_READ_DATA:
        if (s->req)
            s->req->bytes += n;
        return (ssize_t)n;
    case SSE_READ_IDLE:
        return 0;
    case SSE_READ_ERROR:
        if (s->req)
            s->req->bytes += sse_sub_direct_bytes(s->sub);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    case SSE_READ_END:
        break;
    }
    if (s->req)
        s->req->bytes += sse_sub_direct_bytes(s->sub);
    return MHD_CONTENT_READER_END_OF_STREAM;
}

/* Hands the stream's socket to the hub when MHD will send the body in
 * chunked coding (see the top of this file). */
static void stream_write_through(struct stream *s, const struct request *req)
{
    const union MHD_ConnectionInfo *ci;

    if (!req->version || strcmp(req->version, MHD_HTTP_VERSION_1_1) != 0 ||
        strcmp(req->method, MHD_HTTP_METHOD_GET) != 0)
        return;
    ci = MHD_get_connection_info(s->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && ci->connect_fd >= 0)
        sse_sub_set_socket(s->sub, ci->connect_fd);
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    struct httpd *h = s->httpd;

    pthread_mutex_lock(&h->lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    h->nstreams--;
    pthread_mutex_unlock(&h->lock);
    if (h->m_streams)
        metrics_add(h->m_streams, NULL, -1);
    if (s->req)
        s->req->stream = NULL;
    sse_sub_release(s->sub);
    free(s);
}

/* ---- queueing ---- */

static int add_headers(struct MHD_Response *mr, const struct response *r, int closing)
{
    if (MHD_add_response_header(mr, "Cache-Control", "no-store") != MHD_YES ||
        MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff") != MHD_YES)
        return SPELL_ENOMEM;
    if (r->content_type &&
        MHD_add_response_header(mr, "Content-Type", r->content_type) != MHD_YES)
        return SPELL_ENOMEM;
    if (r->sub && MHD_add_response_header(mr, "X-Accel-Buffering", "no") != MHD_YES)
        return SPELL_ENOMEM;
    if (closing && MHD_add_response_header(mr, "Connection", "close") != MHD_YES)
        return SPELL_ENOMEM;
    for (size_t i = 0; i < r->nheaders; i++)
        if (MHD_add_response_header(mr, r->headers[i].name, r->headers[i].value) != MHD_YES)
            return SPELL_EINVAL;
    return SPELL_OK;
}

/*
 * Queues resp (always consumed).  Returns MHD_YES when MHD took it, MHD_NO
 * when the connection must be closed instead.
 */
static enum MHD_Result queue(struct request *req, struct response *resp)
{
    struct httpd *h = req->httpd;
    struct MHD_Response *mr = NULL;
    struct stream *s = NULL;
    enum MHD_Result ret = MHD_NO;
    int closing = atomic_load(&h->draining) != 0;

    if (resp->sub) {
        if (!(s = calloc(1, sizeof *s)))
            goto out;
        s->httpd = h;
        s->conn = req->conn;
        s->req = req;
        s->sub = resp->sub;
        resp->sub = NULL;
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK, stream_read, s,
                                               stream_free);
        if (!mr) {
            sse_sub_release(s->sub);
            free(s);
            goto out;
        }
        /* From here on stream_free() owns s. */
        pthread_mutex_lock(&h->lock);
        s->next = h->streams;
        if (h->streams)
            h->streams->prev = s;
        h->streams = s;
        h->nstreams++;
        pthread_mutex_unlock(&h->lock);
        if (h->m_streams)
            metrics_add(h->m_streams, NULL, 1);
        req->stream = s;
        request_trim(req);
        sse_sub_set_waker(s->sub, stream_resume, s);
        stream_write_through(s, req);
        if (closing)
            sse_sub_end(s->sub);
    } else {
        mr = MHD_create_response_from_buffer(resp->len, resp->body, MHD_RESPMEM_MUST_FREE);
        if (!mr)
            goto out;
        resp->body = NULL;
        req->bytes = resp->len;
    }
    if (add_headers(mr, resp, closing) != SPELL_OK)
        goto out;
    req->status = resp->status;
    req->queued = 1;
    ret = MHD_queue_response(req->conn, (unsigned)resp->status, mr);
out:
    if (mr)
        MHD_destroy_response(mr);
    httpd_response_free(resp);
    return ret;
}

static enum MHD_Result queue_error(struct request *req, enum spell_api_error e,
                                   const char *message, const cJSON *details)
{
    struct response *resp = NULL;

    if (httpd_response_error(e, message, details, &resp) != SPELL_OK)
        return MHD_NO;
    return queue(req, resp);
}

/* ---- the access handler ---- */

struct query_ctx {
    struct request *req;
    int failed;
};

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct query_ctx *q = cls;
    struct request *req = q->req;
    struct query_param *p;
    char *name = NULL, *val = NULL;
    long n;

    if (req->nquery >= HTTPD_QUERY_MAX) {
        q->failed = 1;
        return MHD_NO;
    }
    if (!req->query && !(req->query = calloc(HTTPD_QUERY_MAX, sizeof *req->query))) {
        q->failed = 1;
        return MHD_NO;
    }
    if (!value)
        value = "";
    name = malloc(HTTPD_QUERY_NAME_MAX + 1);
    val = malloc(HTTPD_QUERY_VALUE_MAX + 1);
    if (!name || !val)
        goto fail;
    if ((n = router_decode(key, strlen(key), name, HTTPD_QUERY_NAME_MAX, 1)) <= 0)
        goto fail;
    if (router_decode(value, strlen(value), val, HTTPD_QUERY_VALUE_MAX, 1) < 0)
        goto fail;
    p = &req->query[req->nquery++];
    p->name = name;
    p->value = val;
    return MHD_YES;
fail:
    free(name);
    free(val);
    q->failed = 1;
    return MHD_NO;
}

/* New connections are turned away at once while the server stops. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    struct httpd *h = cls;
    return atomic_load(&h->draining) ? MHD_NO : MHD_YES;
}

static size_t keep_raw(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static size_t route_body_cap(const struct httpd *h, const struct route *r)
{
    if (r->flags & ROUTE_NO_BODY)
        return 0;
    return r->body_cap ? r->body_cap : h->cfg.body_cap;
}

static void remote_address(struct request *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    strcpy(req->remote, "-");
    if (!sa)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                  req->remote, sizeof req->remote);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                  req->remote, sizeof req->remote);
}

/* The first call for a request: route, query, declared length, auth. */
static enum MHD_Result begin(struct httpd *h, struct request *req, const char *url)
{
    size_t index = 0;
    char allow[ROUTER_ALLOW_MAX];
    enum router_result found;
    struct query_ctx q = {req, 0};
    const char *cl;

    if (atomic_load(&h->draining))
        return queue_error(req, SPELL_ERR_UNAVAILABLE, "The server is shutting down.", NULL);

    if (!(req->params = malloc(sizeof *req->params)))
        return MHD_NO;
    found = router_find(h->cfg.routes, h->cfg.nroutes, req->method, url, strlen(url), &index,
                        req->params, allow);
    if (found == ROUTER_NOT_FOUND)
        return queue_error(req, SPELL_ERR_NOT_FOUND, NULL, NULL);
    req->route = &h->cfg.routes[index];
    if (found == ROUTER_METHOD_NOT_ALLOWED) {
        struct response *resp = NULL;
        if (httpd_response_error(SPELL_ERR_METHOD_NOT_ALLOWED, NULL, NULL, &resp) != SPELL_OK)
            return MHD_NO;
        if (httpd_response_header(resp, "Allow", allow) != SPELL_OK) {
            httpd_response_free(resp);
            return MHD_NO;
        }
        return queue(req, resp);
    }

    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, collect_query, &q);
    if (q.failed) {
        cJSON *details = cJSON_CreateObject();
        enum MHD_Result ret;
        if (!details || !cJSON_AddStringToObject(details, "field", "query")) {
            cJSON_Delete(details);
            return MHD_NO;
        }
        ret = queue_error(req, SPELL_ERR_VALIDATION_ERROR,
                          "The query string is too long or malformed.", details);
        cJSON_Delete(details);
        return ret;
    }

    spell_buf_init(&req->body, route_body_cap(h, req->route));
    cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        unsigned long long declared;
        errno = 0;
        declared = strtoull(cl, &end, 10);
        if (errno || end == cl || *end != '\0' || declared > req->body.cap)
            return queue_error(req, SPELL_ERR_PAYLOAD_TOO_LARGE, NULL, NULL);
    }

    if ((req->route->flags & ROUTE_AUTH) && h->cfg.authenticate &&
        h->cfg.authenticate(req, h->cfg.auth_ud) != SPELL_OK) {
        struct response *resp = req->rejection;
        req->rejection = NULL;
        if (resp)
            return queue(req, resp);
        return queue_error(req, SPELL_ERR_UNAUTHORIZED, NULL, NULL);
    }
    return MHD_YES;
}

static enum MHD_Result finish(struct httpd *h, struct request *req)
{
    struct response *resp = NULL;
    int rc;

    if (req->overflow)
        return queue_error(req, SPELL_ERR_PAYLOAD_TOO_LARGE, NULL, NULL);
    rc = req->route->handler(req, &resp, req->route->ud);
    if (rc != SPELL_OK || !resp) {
        httpd_response_free(resp);
        return queue_error(req, SPELL_ERR_INTERNAL, NULL, NULL);
    }
    return queue(req, resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct httpd *h = cls;
    struct request *req = *con_cls;

    if (!req) {
        if (!(req = calloc(1, sizeof *req)))
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &req->t0);
        req->httpd = h;
        req->conn = conn;
        req->method = method;
        req->version = version;
        spell_buf_init(&req->body, 0);
        remote_address(req);
        *con_cls = req;
        pthread_mutex_lock(&h->lock);
        h->in_flight++;
        pthread_mutex_unlock(&h->lock);
        if (!(req->path = strdup(url)))
            return MHD_NO;
        return begin(h, req, url);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->queued || req->overflow) {
            req->discarded += n;
            return req->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        if (spell_buf_add(&req->body, upload_data, n) != SPELL_OK) {
            /* Past the cap (or out of memory): drop what we have and say
             * 413 now if MHD lets us, else when the body ends. */
            req->overflow = 1;
            req->discarded = n;
            spell_buf_free(&req->body);
            if (queue_error(req, SPELL_ERR_PAYLOAD_TOO_LARGE, NULL, NULL) == MHD_YES)
                return MHD_YES;
            req->queued = 0;
            req->status = 0;
        }
        return MHD_YES;
    }
    if (req->queued)
        return MHD_YES;
    return finish(h, req);
}

/* ---- completion: access log and metrics ---- */

static void log_path(char *dst, size_t cap, const char *src)
{
    size_t o = 0;

    for (; *src && o + 4 < cap; src++) {
        unsigned char c = (unsigned char)*src;
        if (c < 0x21 || c >= 0x7f || c == '"' || c == '\\') {
            snprintf(dst + o, cap - o, "\\x%02x", c);
            o += 4;
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o] = '\0';
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct httpd *h = cls;
    struct request *req = *con_cls;
    struct timespec t1;
    int64_t us;
    char status_class[4] = "xxx";
    const char *label;

    if (!req)
        return;
    *con_cls = NULL;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    us = (int64_t)(t1.tv_sec - req->t0.tv_sec) * 1000000 +
         (t1.tv_nsec - req->t0.tv_nsec) / 1000;
    if (req->status >= 100 && req->status <= 599)
        status_class[0] = (char)('0' + req->status / 100);
    label = req->route ? req->route->pattern : "unmatched";

    if (h->cfg.access_log) {
        char ts[SPELL_TIME_RFC3339_SIZE] = "-";
        char path[LOG_PATH_MAX];
        spell_time_format(now_ms(h), ts, sizeof ts);
        log_path(path, sizeof path, req->route ? req->route->pattern :
                 req->path ? req->path : "-");
        fprintf(h->cfg.access_log, "%s %s \"%s %s\" %d %" PRIu64 " %" PRId64 "us%s\n", ts,
                req->remote, req->method ? req->method : "-", path, req->status, req->bytes,
                us, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
        fflush(h->cfg.access_log);
    }
    if (h->m_requests) {
        const char *values[3] = {label, req->method ? req->method : "-", status_class};
        metrics_add(h->m_requests, values, 1);
    }
    if (h->m_latency) {
        const char *values[2] = {label, req->method ? req->method : "-"};
        metrics_observe(h->m_latency, values, (double)us / 1e6);
    }
    request_free(req);

    pthread_mutex_lock(&h->lock);
    h->in_flight--;
    pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->lock);
}

/* ---- the daemon ---- */

static int register_metrics(struct httpd *h, struct metrics *m)
{
    static const char *const req_labels[] = {"route", "method", "code"};
    static const char *const lat_labels[] = {"route", "method"};
    int rc;

    if (!m)
        return SPELL_OK;
    /* Labels come from the route table (bounded), the method (bounded by
     * the overflow series) and the status class. */
    rc = metrics_counter(m, "spell_http_requests_total",
                         "HTTP requests by route pattern, method and status class.",
                         req_labels, 3, 1024, &h->m_requests);
    if (rc == SPELL_OK)
        rc = metrics_histogram(m, "spell_http_request_duration_seconds",
                               "HTTP request latency by route pattern and method.",
                               lat_labels, 2, metrics_latency_bounds, metrics_latency_nbounds,
                               512, &h->m_latency);
    if (rc == SPELL_OK)
        rc = metrics_gauge(m, "spell_sse_streams_open", "Open Server-Sent Event streams.",
                           NULL, 0, 1, &h->m_streams);
    if (rc == SPELL_OK)
        rc = metrics_set(h->m_streams, NULL, 0);
    return rc;
}

static int parse_address(const struct httpd_config *cfg, struct sockaddr_storage *ss,
                         int *ipv6)
{
    memset(ss, 0, sizeof *ss);
    *ipv6 = 0;
    if (!cfg->address || inet_pton(AF_INET, cfg->address,
                                   &((struct sockaddr_in *)(void *)ss)->sin_addr) == 1) {
        struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(cfg->port);
        if (!cfg->address)
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
        return SPELL_OK;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;
    if (inet_pton(AF_INET6, cfg->address, &sin6->sin6_addr) != 1)
        return SPELL_EINVAL;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(cfg->port);
    *ipv6 = 1;
    return SPELL_OK;
}

int httpd_start(const struct httpd_config *cfg, struct httpd **out)
{
    int rc = SPELL_EINVAL;
    struct httpd *h = NULL;
    struct sockaddr_storage ss;
    int ipv6 = 0, have_lock = 0, have_cond = 0;
    unsigned flags;
    const union MHD_DaemonInfo *info;

    *out = NULL;
    if (!cfg || (cfg->nroutes && !cfg->routes))
        goto out;
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (!cfg->routes[i].method || !cfg->routes[i].handler ||
            router_pattern_check(cfg->routes[i].pattern) != SPELL_OK ||
            cfg->routes[i].body_cap > HTTPD_BODY_CAP_MAX)
            goto out;
    if ((rc = parse_address(cfg, &ss, &ipv6)) != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(h = calloc(1, sizeof *h)))
        goto out;
    h->cfg = *cfg;
    if (!h->cfg.threads)
        h->cfg.threads = 4;
    if (!h->cfg.max_connections)
        h->cfg.max_connections = 16384;
    if (!h->cfg.timeout_s)
        h->cfg.timeout_s = 60;
    if (!h->cfg.pool_size)
        h->cfg.pool_size = HTTPD_DEFAULT_POOL;
    if (!h->cfg.body_cap)
        h->cfg.body_cap = HTTPD_BODY_CAP;
    if (h->cfg.body_cap > HTTPD_BODY_CAP_MAX) {
        rc = SPELL_EINVAL;
        goto out;
    }
    if (!h->cfg.shutdown_grace_ms)
        h->cfg.shutdown_grace_ms = 10000;
    atomic_init(&h->draining, 0);
    if (pthread_mutex_init(&h->lock, NULL) != 0)
        goto out;
    have_lock = 1;
    if (pthread_cond_init(&h->idle, NULL) != 0)
        goto out;
    have_cond = 1;
    if ((rc = register_metrics(h, cfg->metrics)) != SPELL_OK)
        goto out;

    flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
    if (ipv6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(
        flags, 0, accept_policy, h, on_request, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)h->cfg.threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)h->cfg.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)h->cfg.max_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)h->cfg.timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, h->cfg.pool_size,
        MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t)512,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)4096,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_raw, NULL,
        MHD_OPTION_END);
    rc = SPELL_EIO;
    if (!h->daemon)
        goto out;
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : cfg->port;
    *out = h;
    h = NULL;
    rc = SPELL_OK;
out:
    if (h) {
        if (h->daemon)
            MHD_stop_daemon(h->daemon);
        if (have_cond)
            pthread_cond_destroy(&h->idle);
        if (have_lock)
            pthread_mutex_destroy(&h->lock);
        free(h);
    }
    return rc;
}

uint16_t httpd_port(const struct httpd *h)
{
    return h->port;
}

size_t httpd_in_flight(struct httpd *h)
{
    size_t n;

    pthread_mutex_lock(&h->lock);
    n = h->in_flight;
    pthread_mutex_unlock(&h->lock);
    return n;
}

size_t httpd_open_streams(struct httpd *h)
{
    size_t n;

    pthread_mutex_lock(&h->lock);
    n = h->nstreams;
    pthread_mutex_unlock(&h->lock);
    return n;
}

/*
 * 1. draining: new connections are closed as soon as they are accepted
 *    (the accept policy), and requests starting now on kept-alive
 *    connections get 503 + Connection: close.  MHD_quiesce_daemon() is
 *    not used: in libmicrohttpd 0.9.75 with an epoll thread pool it races
 *    with the worker threads removing the listening socket from their
 *    epoll sets and aborts the process ("Failed to remove listen FD from
 *    epoll set"); the socket itself is closed by MHD_stop_daemon();
 * 3. every SSE stream is told to end after what it has queued (which
 *    also resumes its connection: MHD must not be stopped while any is
 *    suspended);
 * 4. wait up to shutdown_grace_ms for in-flight requests to finish;
 * 5. streams still open then are cut (sse_sub_cut: a write-through
 *    stream whose client does not read is still suspended, and MHD must
 *    not be stopped with a suspended connection);
 * 6. MHD_stop_daemon closes whatever is left (idle keep-alive
 *    connections, clients that do not read).
 */
int httpd_stop(struct httpd *h)
{
    int rc = SPELL_OK;
    struct timespec deadline;

    if (!h)
        return SPELL_OK;
    atomic_store(&h->draining, 1);

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += h->cfg.shutdown_grace_ms / 1000;
    deadline.tv_nsec += (long)(h->cfg.shutdown_grace_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->lock);
    for (struct stream *s = h->streams; s; s = s->next)
        sse_sub_end(s->sub);
    while (h->in_flight > 0) {
        if (pthread_cond_timedwait(&h->idle, &h->lock, &deadline) == ETIMEDOUT) {
            rc = h->in_flight > 0 ? SPELL_ETIMEOUT : SPELL_OK;
            break;
        }
    }
    for (struct stream *s = h->streams; s; s = s->next)
        sse_sub_cut(s->sub);
    pthread_mutex_unlock(&h->lock);

    MHD_stop_daemon(h->daemon);
    pthread_cond_destroy(&h->idle);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return rc;
}
