/*
 * Integration tests of the HTTP layer: a daemon on 127.0.0.1:0 with a few
 * test routes, driven with libcurl (and raw sockets for malformed input).
 * SSE streams are read with core's SSE parser.  The test "store" is an
 * array of events per channel; a publisher appends to it and then
 * publishes, as the cast code will.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/sse.h"

#include "httpd.h"
#include "tap.h"

/* ---- the test store ---- */

#define STORE_MAX 512

struct stored {
    char channel[32];
    uint64_t seq;
    char type[32];
    char data[128];
    int terminal;
};

struct world {
    pthread_mutex_t lock;
    struct stored events[STORE_MAX];
    size_t nevents;
    struct sse_hub *hub;
    struct metrics *metrics;
    struct httpd *httpd;
    FILE *log;
    char base[64];
};

static struct world W;

static void store_publish(const char *channel, uint64_t seq, const char *type, int terminal)
{
    struct stored *e;

    pthread_mutex_lock(&W.lock);
    e = &W.events[W.nevents++];
    snprintf(e->channel, sizeof e->channel, "%s", channel);
    e->seq = seq;
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->data, sizeof e->data, "{\"cast_id\":\"%s\",\"seq\":%llu%s}", channel,
             (unsigned long long)seq, terminal ? ",\"final\":true" : "");
    e->terminal = terminal;
    pthread_mutex_unlock(&W.lock);
    /* Stored first, then published: the order the cast code follows. */
    sse_hub_publish(W.hub, channel, seq, type, e->data, terminal);
}

/* ---- handlers ---- */

static int h_get_cast(struct request *req, struct response **out, void *ud)
{
    cJSON *o = cJSON_CreateObject();
    int rc;
    cJSON_AddStringToObject(o, "route", httpd_request_route(req));
    cJSON_AddStringToObject(o, "id", httpd_request_param(req, "id"));
    cJSON_AddStringToObject(o, "method", httpd_request_method(req));
    rc = httpd_response_json(200, o, out);
    cJSON_Delete(o);
    return rc;
}

static int h_delete_cast(struct request *req, struct response **out, void *ud)
{
    return httpd_response_body(204, NULL, NULL, 0, out);
}

static int h_cancel(struct request *req, struct response **out, void *ud)
{
    char buf[300];
    snprintf(buf, sizeof buf, "{\"route\":\"cancel\",\"id\":\"%s\"}", httpd_request_param(req, "id"));
    return httpd_response_json_str(200, buf, out);
}

static int h_cast(struct request *req, struct response **out, void *ud)
{
    char buf[400];
    size_t len;
    int rc;
    httpd_request_body(req, &len);
    snprintf(buf, sizeof buf, "{\"key\":\"%s\",\"len\":%zu,\"who\":\"%s\"}",
             httpd_request_param(req, "key"), len, (const char *)httpd_request_principal(req));
    if ((rc = httpd_response_json_str(202, buf, out)) != SPELL_OK)
        return rc;
    return httpd_response_header(*out, "Location", "/v1/casts/cst_new");
}

static int h_query(struct request *req, struct response **out, void *ud)
{
    cJSON *o = cJSON_CreateObject();
    const char *names[] = {"a", "b", "c", "missing"};
    int rc;
    for (size_t i = 0; i < 4; i++) {
        const char *v = httpd_request_query(req, names[i]);
        if (v)
            cJSON_AddStringToObject(o, names[i], v);
        else
            cJSON_AddNullToObject(o, names[i]);
    }
    rc = httpd_response_json(200, o, out);
    cJSON_Delete(o);
    return rc;
}

static int h_slow(struct request *req, struct response **out, void *ud)
{
    struct timespec ts = {0, 600 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return httpd_response_json_str(200, "{\"slow\":true}", out);
}

static int h_fail(struct request *req, struct response **out, void *ud)
{
    return SPELL_EINVAL;
}

static int h_headers(struct request *req, struct response **out, void *ud)
{
    int rc = httpd_response_error(SPELL_ERR_RATE_LIMITED, NULL, NULL, out);
    if (rc == SPELL_OK)
        rc = httpd_response_header(*out, "Retry-After", "30");
    if (rc == SPELL_OK)
        rc = httpd_response_header(*out, "RateLimit-Policy", "\"casts\";q=100;w=3600");
    if (rc == SPELL_OK)
        rc = httpd_response_header(*out, "RateLimit", "\"casts\";r=0;t=30");
    if (rc == SPELL_OK && httpd_response_header(*out, "Bad Name", "x") != SPELL_EINVAL)
        rc = SPELL_EINVAL;
    if (rc == SPELL_OK && httpd_response_header(*out, "X-Evil", "a\r\nSet-Cookie: x") !=
        SPELL_EINVAL)
        rc = SPELL_EINVAL;
    return rc;
}

static int h_metrics(struct request *req, struct response **out, void *ud)
{
    struct spell_buf b;
    int rc;
    spell_buf_init(&b, 1024 * 1024);
    rc = metrics_render(W.metrics, &b);
    if (rc == SPELL_OK)
        rc = httpd_response_body(200, "text/plain; version=0.0.4", b.ptr, b.len, out);
    spell_buf_free(&b);
    return rc;
}

/* GET /v1/casts/{id}/events: subscribe, backlog from the store, start. */
static int h_events(struct request *req, struct response **out, void *ud)
{
    struct sse_hub *hub = ud;
    const char *id = httpd_request_param(req, "id");
    const char *last = httpd_request_header(req, "Last-Event-ID");
    uint64_t after = 0;
    struct sse_sub *sub = NULL;
    int rc;

    if (!last)
        last = httpd_request_query(req, "last_event_id");
    if (last)
        after = strtoull(last, NULL, 10);
    if ((rc = sse_hub_subscribe(hub, id, after, &sub)) != SPELL_OK)
        return httpd_response_error(SPELL_ERR_UNAVAILABLE, NULL, NULL, out);
    pthread_mutex_lock(&W.lock);
    for (size_t i = 0; i < W.nevents; i++) {
        struct stored *e = &W.events[i];
        if (strcmp(e->channel, id) == 0 && e->seq > after)
            sse_sub_backlog(sub, e->seq, e->type, e->data, e->terminal);
    }
    pthread_mutex_unlock(&W.lock);
    sse_sub_raw(sub, "retry: 1000\n\n", 13);
    sse_sub_start(sub);
    return httpd_response_sse(sub, out);
}

static int authenticate(struct request *req, void *ud)
{
    const char *auth = httpd_request_header(req, "authorization");
    if (auth && strcmp(auth, "Bearer good-SECRET123") == 0) {
        httpd_request_set_principal(req, strdup("alice"), free);
        return SPELL_OK;
    }
    if (auth && strcmp(auth, "Bearer ratelimited") == 0) {
        struct response *resp = NULL;
        if (httpd_response_error(SPELL_ERR_RATE_LIMITED, NULL, NULL, &resp) == SPELL_OK &&
            httpd_response_header(resp, "Retry-After", "7") == SPELL_OK)
            httpd_request_reject(req, resp);
        return SPELL_EABORT;
    }
    return SPELL_EABORT;
}

static struct route routes[8 + 4];

static void make_routes(struct sse_hub *hub)
{
    struct route r[] = {
        {"GET", "/v1/casts/{id}", h_get_cast, NULL, ROUTE_NO_BODY, 0},
        {"DELETE", "/v1/casts/{id}", h_delete_cast, NULL, 0, 0},
        {"POST", "/v1/casts/{id}:cancel", h_cancel, NULL, 0, 0},
        {"GET", "/v1/casts/{id}/events", h_events, hub, 0, 0},
        {"POST", "/v1/spells/{key}:cast", h_cast, NULL, ROUTE_AUTH, 0},
        {"GET", "/q", h_query, NULL, 0, 0},
        {"GET", "/slow", h_slow, NULL, 0, 0},
        {"GET", "/fail", h_fail, NULL, 0, 0},
        {"GET", "/headers", h_headers, NULL, 0, 0},
        {"GET", "/metrics", h_metrics, NULL, 0, 0},
    };
    memset(routes, 0, sizeof routes);
    memcpy(routes, r, sizeof r);
}

static size_t nroutes(void)
{
    size_t n = 0;
    while (n < sizeof routes / sizeof routes[0] && routes[n].method)
        n++;
    return n;
}

static struct httpd *start_server(struct sse_hub *hub, struct metrics *m, FILE *log)
{
    struct httpd_config cfg = {0};
    struct httpd *h = NULL;
    cfg.address = "127.0.0.1";
    cfg.routes = routes;
    cfg.nroutes = nroutes();
    cfg.threads = 2;
    cfg.authenticate = authenticate;
    cfg.access_log = log;
    cfg.metrics = m;
    cfg.shutdown_grace_ms = 5000;
    if (httpd_start(&cfg, &h) != SPELL_OK)
        return NULL;
    return h;
}

/* ---- a small curl client ---- */

struct reply {
    long status;
    struct spell_buf body;
    struct spell_buf headers;
    CURLcode cc;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct spell_buf *b = ud;
    return spell_buf_add(b, p, size * n) == SPELL_OK ? size * n : 0;
}

struct upload {
    size_t left;
};

static size_t read_zeros(char *p, size_t size, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t take = size * n < u->left ? size * n : u->left;
    memset(p, 'a', take);
    u->left -= take;
    return take;
}

/* body_len (size_t)-1 with chunked_len > 0 uploads chunked_len bytes
 * without Content-Length. */
static void request(const char *method, const char *path, const char *const *hdrs,
                    const char *body, size_t body_len, size_t chunked_len, struct reply *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *sl = NULL;
    char url[4096];
    struct upload up = {chunked_len};

    memset(r, 0, sizeof *r);
    spell_buf_init(&r->body, 4 * 1024 * 1024);
    spell_buf_init(&r->headers, 64 * 1024);
    snprintf(url, sizeof url, "%s%s", W.base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    for (; hdrs && *hdrs; hdrs++)
        sl = curl_slist_append(sl, *hdrs);
    if (chunked_len) {
        sl = curl_slist_append(sl, "Transfer-Encoding: chunked");
        sl = curl_slist_append(sl, "Expect:");
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_zeros);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    r->cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(sl);
    curl_easy_cleanup(c);
}

static void reply_free(struct reply *r)
{
    spell_buf_free(&r->body);
    spell_buf_free(&r->headers);
}

/* The value of header name in r (case-insensitive), copied into out. */
static const char *header(struct reply *r, const char *name, char *out, size_t cap)
{
    const char *p = spell_buf_str(&r->headers);
    size_t nlen = strlen(name);
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Sends raw bytes and returns the first line of the answer. */
static void raw_exchange(const char *data, size_t len, char *first_line, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {0};
    char buf[4096];
    ssize_t n, got = 0;
    struct timeval tv = {10, 0};

    first_line[0] = '\0';
    sin.sin_family = AF_INET;
    sin.sin_port = htons(httpd_port(W.httpd));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        close(fd);
        return;
    }
    for (size_t off = 0; off < len;) {
        n = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    while ((n = recv(fd, buf + got, sizeof buf - 1 - (size_t)got, 0)) > 0) {
        got += n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n"))
            break;
    }
    close(fd);
    buf[got > 0 ? got : 0] = '\0';
    char *eol = strstr(buf, "\r\n");
    if (eol)
        *eol = '\0';
    buf[cap - 1 < sizeof buf - 1 ? cap - 1 : sizeof buf - 1] = '\0';
    memcpy(first_line, buf, strlen(buf) + 1);
}

/* ---- SSE client ---- */

#define CLIENT_MAX_EVENTS 512

struct sse_client {
    struct spell_sse_parser parser;
    uint64_t ids[CLIENT_MAX_EVENTS];
    char types[CLIENT_MAX_EVENTS][24];
    size_t nevents;
    size_t comments;
    atomic_size_t pings;        /* read by the test while curl runs */
    size_t stop_after;          /* abort the transfer after this many events (0: never) */
    int stopped;
    int bad_data;
    char last_id[32];
    CURLcode cc;
    long status;
    char channel[32];
};

static int on_event(const struct spell_sse_event *ev, void *ud)
{
    struct sse_client *c = ud;
    char want[96];
    if (c->nevents >= CLIENT_MAX_EVENTS)
        return 1;
    c->ids[c->nevents] = strtoull(ev->id, NULL, 10);
    snprintf(c->types[c->nevents], sizeof c->types[0], "%s", ev->type);
    snprintf(want, sizeof want, "{\"cast_id\":\"%s\",\"seq\":%s", c->channel, ev->id);
    if (strncmp(ev->data, want, strlen(want)) != 0)
        c->bad_data = 1;
    c->nevents++;
    snprintf(c->last_id, sizeof c->last_id, "%s", ev->id);
    if (c->stop_after && c->nevents >= c->stop_after) {
        c->stopped = 1;
        return 1;
    }
    return 0;
}

static int on_comment(const char *text, size_t len, void *ud)
{
    struct sse_client *c = ud;
    c->comments++;
    if (strcmp(text, "ping") == 0)
        c->pings++;
    return 0;
}

static size_t sse_write(char *p, size_t size, size_t n, void *ud)
{
    struct sse_client *c = ud;
    int rc = spell_sse_feed(&c->parser, p, size * n);
    return rc == SPELL_OK ? size * n : 0;
}

static void sse_client_init(struct sse_client *c, const char *channel)
{
    memset(c, 0, sizeof *c);
    snprintf(c->channel, sizeof c->channel, "%s", channel);
    spell_sse_parser_init(&c->parser, 0, 0, on_event, on_comment, c);
}

static CURL *sse_easy(struct sse_client *c, const char *extra_query)
{
    CURL *e = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/v1/casts/%s/events%s", W.base, c->channel,
             extra_query ? extra_query : "");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sse_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    return e;
}

/* One connection: runs until the stream ends or stop_after is reached. */
static void sse_run(struct sse_client *c)
{
    struct curl_slist *sl = NULL;
    char hdr[64];
    CURL *e = sse_easy(c, NULL);
    if (c->last_id[0]) {
        snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", c->last_id);
        sl = curl_slist_append(sl, hdr);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, sl);
    }
    c->stopped = 0;
    spell_sse_parser_reset_stream(&c->parser);
    c->cc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
    curl_easy_cleanup(e);
    curl_slist_free_all(sl);
}

static void *sse_thread(void *arg)
{
    sse_run(arg);
    return NULL;
}

static int wait_streams(struct httpd *h, size_t n)
{
    for (int i = 0; i < 2000; i++) {
        if (httpd_open_streams(h) >= n)
            return 1;
        usleep(5000);
    }
    return 0;
}

static int wait_idle(struct httpd *h)
{
    for (int i = 0; i < 2000; i++) {
        if (httpd_in_flight(h) == 0)
            return 1;
        usleep(5000);
    }
    return 0;
}

/* ---- tests ---- */

static void test_routing_params_and_verbs(void)
{
    struct reply r;
    char v[128];

    request("GET", "/v1/casts/cst_01", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(spell_buf_str(&r.body),
              "{\"route\":\"/v1/casts/{id}\",\"id\":\"cst_01\",\"method\":\"GET\"}");
    CHECK_STR(header(&r, "Content-Type", v, sizeof v), "application/json");
    CHECK_STR(header(&r, "Cache-Control", v, sizeof v), "no-store");
    CHECK_STR(header(&r, "X-Content-Type-Options", v, sizeof v), "nosniff");
    reply_free(&r);

    request("GET", "/v1/casts/cst%5F02", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK(strstr(spell_buf_str(&r.body), "\"id\":\"cst_02\"") != NULL);
    reply_free(&r);

    request("POST", "/v1/casts/cst_03:cancel", NULL, "", 0, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(spell_buf_str(&r.body), "{\"route\":\"cancel\",\"id\":\"cst_03\"}");
    reply_free(&r);

    request("HEAD", "/v1/casts/cst_04", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.body.len, 0);
    reply_free(&r);

    /* An encoded slash never splits a segment, an unknown verb is no route. */
    request("GET", "/v1/casts/a%2Fb/events", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 404);
    reply_free(&r);
    request("POST", "/v1/casts/cst_03:bogus", NULL, "", 0, 0, &r);
    CHECK_INT(r.status, 404);
    reply_free(&r);
    request("GET", "/v1/casts/", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 404);
    reply_free(&r);
    request("GET", "/v1/casts/x/", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 404);
    reply_free(&r);
}

static void test_not_found_shape(void)
{
    struct reply r;
    char v[128];

    request("GET", "/nope?token=abc", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 404);
    CHECK_STR(spell_buf_str(&r.body),
              "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"There is nothing at that "
              "address.\",\"details\":{}}}");
    CHECK_STR(header(&r, "Content-Type", v, sizeof v), "application/json");
    CHECK_STR(header(&r, "Cache-Control", v, sizeof v), "no-store");
    reply_free(&r);
}

static void test_method_not_allowed(void)
{
    struct reply r;
    char v[128];

    request("PUT", "/v1/casts/x", NULL, "{}", 2, 0, &r);
    CHECK_INT(r.status, 405);
    CHECK_STR(header(&r, "Allow", v, sizeof v), "GET, HEAD, DELETE");
    CHECK_STR(spell_buf_str(&r.body),
              "{\"error\":{\"code\":\"METHOD_NOT_ALLOWED\",\"message\":\"That address does not "
              "accept this method.\",\"details\":{}}}");
    reply_free(&r);

    request("GET", "/v1/casts/x:cancel", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 405);
    CHECK_STR(header(&r, "Allow", v, sizeof v), "POST");
    reply_free(&r);

    request("DELETE", "/v1/casts/x", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 204);
    reply_free(&r);
}

static void test_query(void)
{
    struct reply r;
    char path[4096];

    request("GET", "/q?a=1&b=hello%20world+x&b=second&c", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(spell_buf_str(&r.body),
              "{\"a\":\"1\",\"b\":\"hello world x\",\"c\":\"\",\"missing\":null}");
    reply_free(&r);

    /* Too many parameters: one past the cap of 32 (far more do not fit
     * the 3 KiB connection pool, and MHD refuses them itself). */
    strcpy(path, "/q?");
    for (int i = 0; i < 33; i++)
        snprintf(path + strlen(path), sizeof path - strlen(path), "p%d=%d&", i, i);
    request("GET", path, NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 400);
    CHECK_STR(spell_buf_str(&r.body),
              "{\"error\":{\"code\":\"VALIDATION_ERROR\",\"message\":\"The query string is too "
              "long or malformed.\",\"details\":{\"field\":\"query\"}}}");
    reply_free(&r);

    /* An encoded NUL is refused. */
    request("GET", "/q?a=x%00y", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 400);
    reply_free(&r);
}

static void test_auth_and_body_cap(void)
{
    struct reply r;
    const char *good[] = {"Authorization: Bearer good-SECRET123",
                          "Content-Type: application/json", NULL};
    const char *limited[] = {"Authorization: Bearer ratelimited", NULL};
    char *big = malloc(HTTPD_BODY_CAP + 1);
    char v[64];

    memset(big, 'x', HTTPD_BODY_CAP + 1);

    request("POST", "/v1/spells/thumb:cast", NULL, "{}", 2, 0, &r);
    CHECK_INT(r.status, 401);
    CHECK(strstr(spell_buf_str(&r.body), "\"code\":\"UNAUTHORIZED\"") != NULL);
    reply_free(&r);

    request("POST", "/v1/spells/thumb:cast", limited, "{}", 2, 0, &r);
    CHECK_INT(r.status, 429);
    CHECK_STR(header(&r, "Retry-After", v, sizeof v), "7");
    reply_free(&r);

    request("POST", "/v1/spells/thumb:cast", good, "{\"inputs\":{}}", 13, 0, &r);
    CHECK_INT(r.status, 202);
    CHECK_STR(spell_buf_str(&r.body), "{\"key\":\"thumb\",\"len\":13,\"who\":\"alice\"}");
    CHECK_STR(header(&r, "Location", v, sizeof v), "/v1/casts/cst_new");
    reply_free(&r);

    /* Exactly the cap is fine; one byte more is 413 from the declared length. */
    request("POST", "/v1/spells/thumb:cast", good, big, HTTPD_BODY_CAP, 0, &r);
    CHECK_INT(r.status, 202);
    CHECK(strstr(spell_buf_str(&r.body), "\"len\":65536") != NULL);
    reply_free(&r);
    request("POST", "/v1/spells/thumb:cast", good, big, HTTPD_BODY_CAP + 1, 0, &r);
    CHECK_INT(r.status, 413);
    CHECK_STR(spell_buf_str(&r.body),
              "{\"error\":{\"code\":\"PAYLOAD_TOO_LARGE\",\"message\":\"The request is larger "
              "than the server accepts.\",\"details\":{}}}");
    reply_free(&r);

    /* Chunked, no Content-Length: 413 once the received bytes pass it. */
    request("POST", "/v1/spells/thumb:cast", good, NULL, 0, 200 * 1024, &r);
    CHECK_INT(r.status, 413);
    CHECK(strstr(spell_buf_str(&r.body), "PAYLOAD_TOO_LARGE") != NULL);
    reply_free(&r);
    request("POST", "/v1/spells/thumb:cast", good, NULL, 0, 1000, &r);
    CHECK_INT(r.status, 202);
    CHECK(strstr(spell_buf_str(&r.body), "\"len\":1000") != NULL);
    reply_free(&r);

    /* A route without a body refuses one. */
    request("GET", "/v1/casts/x", NULL, "abc", 3, 0, &r);
    CHECK_INT(r.status, 413);
    reply_free(&r);

    /* A bogus Content-Length. */
    {
        char line[256];
        const char *req = "POST /v1/casts/x:cancel HTTP/1.1\r\nHost: a\r\n"
                          "Content-Length: 99999999999999999999999\r\n\r\n";
        raw_exchange(req, strlen(req), line, sizeof line);
        CHECK(strncmp(line, "HTTP/1.1 4", 10) == 0);
    }
    free(big);
}

static void test_malformed_requests(void)
{
    char line[256];
    struct reply r;
    const char *garbage = "GARBAGE\r\n\r\n";
    const char *bad_version = "GET /v1/casts/x HTTP/9.9\r\nHost: a\r\n\r\n";
    const char *nul = "GET /v1/casts/a\0b HTTP/1.1\r\nHost: a\r\n\r\n";
    char *huge = malloc(20000);

    /* libmicrohttpd closes the connection on a request line it cannot
     * parse (0.9.75 sends nothing; later versions answer 400). */
    raw_exchange(garbage, strlen(garbage), line, sizeof line);
    CHECK(line[0] == '\0' || strncmp(line, "HTTP/1.1 400", 12) == 0);
    raw_exchange(bad_version, strlen(bad_version), line, sizeof line);
    CHECK(strncmp(line, "HTTP/1.1 505", 12) == 0 || strncmp(line, "HTTP/1.1 400", 12) == 0 ||
          line[0] == '\0');

    /* A NUL inside the request line ends the path there: MHD hands the
     * layer a C string, so nothing after the NUL can reach a handler. */
    raw_exchange(nul, 40, line, sizeof line);
    CHECK(strncmp(line, "HTTP/1.1 ", 9) == 0 || line[0] == '\0');

    /* A header block larger than the connection pool. */
    if (!huge)
        abort();
    {
        size_t n = (size_t)sprintf(huge, "GET /v1/casts/x HTTP/1.1\r\nHost: a\r\nX-Big: ");
        memset(huge + n, 'b', 12000);
        memcpy(huge + n + 12000, "\r\n\r\n", 5);
    }
    raw_exchange(huge, strlen(huge), line, sizeof line);
    CHECK(strncmp(line, "HTTP/1.1 431", 12) == 0 || strncmp(line, "HTTP/1.1 414", 12) == 0);
    free(huge);

    /* The server still answers. */
    request("GET", "/v1/casts/ok", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 200);
    reply_free(&r);
}

static void test_error_shapes(void)
{
    struct reply r;
    char v[128];

    request("GET", "/fail", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 500);
    CHECK_STR(spell_buf_str(&r.body),
              "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"Something went wrong on the "
              "server; nothing was charged for it.\",\"details\":{}}}");
    reply_free(&r);

    request("GET", "/headers", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 429);
    CHECK_STR(header(&r, "Retry-After", v, sizeof v), "30");
    CHECK_STR(header(&r, "RateLimit-Policy", v, sizeof v), "\"casts\";q=100;w=3600");
    CHECK_STR(header(&r, "RateLimit", v, sizeof v), "\"casts\";r=0;t=30");
    CHECK(header(&r, "X-Evil", v, sizeof v) == NULL);
    reply_free(&r);
}

static void test_response_constructors(void)
{
    struct response *resp = NULL;
    cJSON *details = cJSON_CreateObject();
    char longmsg[HTTPD_MESSAGE_MAX + 2];

    cJSON_AddStringToObject(details, "field", "inputs.width");
    CHECK_INT(httpd_response_error(SPELL_ERR_VALIDATION_ERROR, "width too small", details,
                                   &resp), SPELL_OK);
    CHECK_INT(httpd_response_status(resp), 400);
    httpd_response_free(resp);
    CHECK_INT(httpd_response_error(SPELL_ERR__COUNT, NULL, NULL, &resp), SPELL_OK);
    CHECK_INT(httpd_response_status(resp), 500);
    httpd_response_free(resp);
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    CHECK_INT(httpd_response_error(SPELL_ERR_INTERNAL, longmsg, NULL, &resp), SPELL_EINVAL);
    CHECK(resp == NULL);
    CHECK_INT(httpd_response_body(99, NULL, NULL, 0, &resp), SPELL_EINVAL);
    CHECK_INT(httpd_response_body(200, "text/plain\r\nX: y", "a", 1, &resp), SPELL_EINVAL);
    CHECK_INT(httpd_response_body(200, NULL, NULL, 5, &resp), SPELL_EINVAL);
    CHECK_INT(httpd_response_json(200, NULL, &resp), SPELL_EINVAL);
    CHECK_INT(httpd_response_sse(NULL, &resp), SPELL_EINVAL);
    CHECK_INT(httpd_response_body(200, NULL, NULL, 0, &resp), SPELL_OK);
    for (int i = 0; i < HTTPD_RESPONSE_HEADERS; i++)
        CHECK_INT(httpd_response_header(resp, "X-N", "v"), SPELL_OK);
    CHECK_INT(httpd_response_header(resp, "X-N", "v"), SPELL_ETOOBIG);
    CHECK_INT(httpd_response_header(resp, "", "v"), SPELL_EINVAL);
    CHECK_INT(httpd_response_header(resp, "X:Y", "v"), SPELL_EINVAL);
    httpd_response_free(resp);
    cJSON_Delete(details);
}

static void test_access_log_has_no_secrets(void)
{
    struct reply r;
    const char *hdrs[] = {"Authorization: Bearer good-SECRET123", "Cookie: spell_session=COOKIESECRET",
                          NULL};
    char *text;
    long size;

    request("GET", "/q?token=QUERYSECRET&a=1", hdrs, NULL, 0, 0, &r);
    CHECK_INT(r.status, 200);
    reply_free(&r);
    request("POST", "/v1/spells/thumb:cast", hdrs, "{\"pw\":\"BODYSECRET\"}", 19, 0, &r);
    CHECK_INT(r.status, 202);
    reply_free(&r);
    request("GET", "/nowhere/SECRETPATH?token=QUERYSECRET", hdrs, NULL, 0, 0, &r);
    CHECK_INT(r.status, 404);
    reply_free(&r);

    /* The log line is written when MHD reports the request complete,
     * which may be just after the client has its answer. */
    CHECK(wait_idle(W.httpd));
    fflush(W.log);
    size = ftell(W.log);
    CHECK(size > 0);
    text = calloc(1, (size_t)size + 1);
    rewind(W.log);
    CHECK_INT(fread(text, 1, (size_t)size, W.log), size);
    fseek(W.log, 0, SEEK_END);
    CHECK(strstr(text, "SECRET123") == NULL);
    CHECK(strstr(text, "COOKIESECRET") == NULL);
    CHECK(strstr(text, "QUERYSECRET") == NULL);
    CHECK(strstr(text, "BODYSECRET") == NULL);
    CHECK(strstr(text, " 127.0.0.1 \"GET /q\" 200 ") != NULL);
    CHECK(strstr(text, " 127.0.0.1 \"POST /v1/spells/{key}:cast\" 202 ") != NULL);
    CHECK(strstr(text, "\"GET /nowhere/SECRETPATH\" 404 ") != NULL);
    CHECK(strstr(text, "us\n") != NULL);
    free(text);
}

static void test_sse_backlog_then_live(void)
{
    struct sse_client c;
    pthread_t t;

    store_publish("cst_live", 1, "cast.queued", 0);
    store_publish("cst_live", 2, "cast.started", 0);
    store_publish("cst_live", 3, "cast.progress", 0);
    sse_client_init(&c, "cst_live");
    pthread_create(&t, NULL, sse_thread, &c);
    CHECK(wait_streams(W.httpd, 1));
    store_publish("cst_live", 4, "cast.progress", 0);
    store_publish("cst_live", 5, "cast.log", 0);
    store_publish("cst_live", 6, "cast.succeeded", 1);
    store_publish("cst_live", 7, "cast.progress", 0);   /* after the end: never sent */
    pthread_join(t, NULL);
    CHECK_INT(c.cc, CURLE_OK);
    CHECK_INT(c.status, 200);
    CHECK_INT(c.nevents, 6);
    for (size_t i = 0; i < c.nevents && i < 6; i++)
        CHECK_INT(c.ids[i], i + 1);
    CHECK_STR(c.types[0], "cast.queued");
    CHECK_STR(c.types[3], "cast.progress");
    CHECK_STR(c.types[5], "cast.succeeded");
    CHECK(!c.bad_data);
    CHECK_INT(spell_sse_retry_ms(&c.parser), 1000);
    spell_sse_parser_free(&c.parser);
}

struct pub_args {
    const char *channel;
    int count;
    int delay_us;
};

static void *publisher(void *arg)
{
    struct pub_args *a = arg;
    for (int i = 1; i <= a->count; i++) {
        store_publish(a->channel, (uint64_t)i, "cast.progress", i == a->count);
        usleep((useconds_t)a->delay_us);
    }
    return NULL;
}

static void test_sse_resume_exact(void)
{
    struct sse_client c;
    pthread_t pub;
    struct pub_args args = {"cst_resume", 300, 700};
    uint64_t all[CLIENT_MAX_EVENTS];
    size_t nall = 0;
    size_t drops[] = {5, 40, 90};
    int ok = 1;

    sse_client_init(&c, "cst_resume");
    pthread_create(&pub, NULL, publisher, &args);
    /* Connect and drop three times mid-stream, then follow to the end. */
    for (size_t round = 0; round <= 3; round++) {
        c.stop_after = round < 3 ? drops[round] : 0;
        c.nevents = 0;
        sse_run(&c);
        for (size_t i = 0; i < c.nevents && nall < CLIENT_MAX_EVENTS; i++)
            all[nall++] = c.ids[i];
        if (round < 3)
            CHECK(c.stopped);
        else
            CHECK_INT(c.cc, CURLE_OK);
    }
    pthread_join(pub, NULL);
    CHECK_INT(nall, 300);
    for (size_t i = 0; i < nall; i++)
        if (all[i] != i + 1)
            ok = 0;
    CHECK(ok);
    CHECK(!c.bad_data);

    /* Resume through the query parameter, from the middle of a finished
     * cast: exactly the rest. */
    c.nevents = 0;
    c.last_id[0] = '\0';
    {
        CURL *e = sse_easy(&c, "?last_event_id=297");
        spell_sse_parser_reset_stream(&c.parser);
        c.stop_after = 0;
        CHECK_INT(curl_easy_perform(e), CURLE_OK);
        curl_easy_cleanup(e);
    }
    CHECK_INT(c.nevents, 3);
    CHECK_INT(c.ids[0], 298);
    CHECK_INT(c.ids[2], 300);
    spell_sse_parser_free(&c.parser);
}

static void test_sse_ping(void)
{
    struct sse_client c;
    pthread_t t;

    sse_client_init(&c, "cst_idle");
    pthread_create(&t, NULL, sse_thread, &c);
    CHECK(wait_streams(W.httpd, 1));
    /* The hub pings every 100 ms in this test program; wait for three. */
    for (int i = 0; i < 1000 && atomic_load(&c.pings) < 3; i++)
        usleep(10000);
    CHECK(atomic_load(&c.pings) >= 3);
    store_publish("cst_idle", 1, "cast.canceled", 1);
    pthread_join(t, NULL);
    CHECK_INT(c.cc, CURLE_OK);
    CHECK_INT(c.nevents, 1);
    CHECK_STR(c.types[0], "cast.canceled");
    spell_sse_parser_free(&c.parser);
}

#define MANY 300

static void test_sse_many_streams(void)
{
    static struct sse_client clients[MANY];
    CURL *easy[MANY];
    CURLM *multi = curl_multi_init();
    int running = 1, published = 0, ok = 1, clean = 1;
    size_t before = httpd_open_streams(W.httpd);
    size_t direct_before = sse_hub_direct_count(W.hub);

    for (int i = 0; i < MANY; i++) {
        sse_client_init(&clients[i], "cst_many");
        easy[i] = sse_easy(&clients[i], NULL);
        curl_multi_add_handle(multi, easy[i]);
    }
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)MANY + 10);
    for (int spins = 0; running && spins < 200000; spins++) {
        curl_multi_perform(multi, &running);
        /* Every stream on the write-through path (more than the hub
         * splits over its two writers), then the events. */
        if (!published && httpd_open_streams(W.httpd) >= before + MANY &&
            sse_hub_direct_count(W.hub) >= direct_before + MANY) {
            for (int s = 1; s <= 20; s++)
                store_publish("cst_many", (uint64_t)s, "cast.progress", s == 20);
            published = 1;
        }
        curl_multi_poll(multi, NULL, 0, 20, NULL);
    }
    CHECK(published);
    CHECK_INT(running, 0);
    {
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE && m->data.result != CURLE_OK)
                clean = 0;
    }
    CHECK(clean);
    for (int i = 0; i < MANY; i++) {
        if (clients[i].nevents != 20 || clients[i].bad_data)
            ok = 0;
        for (size_t k = 0; k < clients[i].nevents && k < 20; k++)
            if (clients[i].ids[k] != k + 1)
                ok = 0;
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
        spell_sse_parser_free(&clients[i].parser);
    }
    CHECK(ok);
    curl_multi_cleanup(multi);
}

/* ---- raw stream clients ---- */

/* Connects, sends a GET of path with the given HTTP version and reads the
 * response head into head; returns the socket or -1.  rcvbuf > 0 shrinks
 * the receive buffer first (a client that reads slowly). */
static int raw_stream(const char *path, const char *version, int rcvbuf, char *head,
                      size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {0};
    struct timeval tv = {10, 0};
    char req[512];
    size_t got = 0;
    int len;

    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(httpd_port(W.httpd));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = snprintf(req, sizeof req, "GET %s %s\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
                   path, version);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
        close(fd);
        return -1;
    }
    /* One byte at a time: nothing past the head is consumed. */
    while (got + 1 < cap) {
        if (recv(fd, head + got, 1, 0) != 1) {
            close(fd);
            return -1;
        }
        got++;
        head[got] = '\0';
        if (got >= 4 && strcmp(head + got - 4, "\r\n\r\n") == 0)
            return fd;
    }
    close(fd);
    return -1;
}

/* Reads until the peer closes (or an error, or the receive timeout). */
static void raw_read_all(int fd, struct spell_buf *out)
{
    char buf[16384];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        spell_buf_add(out, buf, (size_t)n);
}

static int wait_open(struct httpd *h, size_t n)
{
    for (int i = 0; i < 2000; i++) {
        if (httpd_open_streams(h) == n)
            return 1;
        usleep(5000);
    }
    return 0;
}

static int wait_direct(struct sse_hub *hub, size_t n)
{
    for (int i = 0; i < 2000; i++) {
        if (sse_hub_direct_count(hub) >= n)
            return 1;
        usleep(5000);
    }
    return 0;
}

/* A big event for channel with the shape the SSE client checks. */
static void publish_big(const char *channel, uint64_t seq, int terminal)
{
    static char data[12 * 1024];
    int n = snprintf(data, sizeof data, "{\"cast_id\":\"%s\",\"seq\":%llu,\"pad\":\"", channel,
                     (unsigned long long)seq);
    memset(data + n, 'p', sizeof data - (size_t)n - 3);
    memcpy(data + sizeof data - 3, "\"}", 3);
    sse_hub_publish(W.hub, channel, seq, terminal ? "cast.succeeded" : "cast.progress", data,
                    terminal);
}

/* A client that stops reading: its bytes queue in the hub up to the cap,
 * then its stream is cut (no last chunk); the stream next to it gets
 * every event and a clean end. */
static void test_sse_slow_client_cut(void)
{
    struct sse_client fast;
    pthread_t t;
    char head[1024];
    struct spell_buf body;
    size_t open0 = httpd_open_streams(W.httpd), direct0 = sse_hub_direct_count(W.hub);
    uint64_t seq;
    int fd, ok = 1;

    spell_buf_init(&body, 64 * 1024 * 1024);
    fd = raw_stream("/v1/casts/cst_slow/events", "HTTP/1.1", 4096, head, sizeof head);
    CHECK(fd >= 0);
    CHECK(strstr(head, "HTTP/1.1 200") == head);
    CHECK(strstr(head, "chunked") != NULL);
    sse_client_init(&fast, "cst_slow");
    pthread_create(&t, NULL, sse_thread, &fast);
    CHECK(wait_streams(W.httpd, open0 + 2));
    CHECK(wait_direct(W.hub, direct0 + 2));
    for (seq = 1; seq < 400 && httpd_open_streams(W.httpd) == open0 + 2; seq++) {
        publish_big("cst_slow", seq, 0);
        usleep(1000);
    }
    /* The slow one is gone (stream released), the fast one still open. */
    CHECK(seq < 400);
    CHECK(wait_open(W.httpd, open0 + 1));
    publish_big("cst_slow", seq, 1);
    pthread_join(t, NULL);
    CHECK_INT(fast.cc, CURLE_OK);
    CHECK_INT(fast.nevents, seq);
    for (size_t i = 0; i < fast.nevents; i++)
        if (fast.ids[i] != i + 1)
            ok = 0;
    CHECK(ok);
    CHECK(!fast.bad_data);
    CHECK_STR(fast.types[fast.nevents ? fast.nevents - 1 : 0], "cast.succeeded");
    /* What the slow client finally reads ends without the last chunk. */
    raw_read_all(fd, &body);
    CHECK(body.len > 0);
    CHECK(body.len < 5 || memcmp(body.ptr + body.len - 5, "0\r\n\r\n", 5) != 0);
    close(fd);
    CHECK(wait_open(W.httpd, open0));
    spell_sse_parser_free(&fast.parser);
    spell_buf_free(&body);
}

/* A client that hangs up while its stream is idle on the write-through
 * path: the stream is released without any event being sent, and the
 * open-streams gauge goes back down. */
static void test_sse_disconnect_while_idle(void)
{
    char head[1024];
    struct reply r;
    char want[64];
    size_t open0 = httpd_open_streams(W.httpd), direct0 = sse_hub_direct_count(W.hub);
    int fd = raw_stream("/v1/casts/cst_gone/events", "HTTP/1.1", 0, head, sizeof head);

    CHECK(fd >= 0);
    CHECK(wait_streams(W.httpd, open0 + 1));
    CHECK(wait_direct(W.hub, direct0 + 1));
    close(fd);
    CHECK(wait_open(W.httpd, open0));
    CHECK_INT(sse_hub_direct_count(W.hub), direct0);
    request("GET", "/metrics", NULL, NULL, 0, 0, &r);
    snprintf(want, sizeof want, "\nspell_sse_streams_open %zu\n", open0);
    CHECK(strstr(spell_buf_str(&r.body), want) != NULL);
    reply_free(&r);
}

/* An HTTP/1.0 client: no chunked coding, so the stream stays on the
 * resume path; the body is plain SSE text ended by closing. */
static void test_sse_http10(void)
{
    char head[1024];
    struct spell_buf body;
    size_t open0 = httpd_open_streams(W.httpd);
    int fd;

    spell_buf_init(&body, 1 << 20);
    store_publish("cst_h10", 1, "cast.queued", 0);
    fd = raw_stream("/v1/casts/cst_h10/events", "HTTP/1.0", 0, head, sizeof head);
    CHECK(fd >= 0);
    CHECK(strstr(head, " 200 ") != NULL);
    CHECK(strstr(head, "chunked") == NULL);
    CHECK(wait_streams(W.httpd, open0 + 1));
    store_publish("cst_h10", 2, "cast.progress", 0);
    store_publish("cst_h10", 3, "cast.succeeded", 1);
    raw_read_all(fd, &body);
    close(fd);
    CHECK_STR(spell_buf_str(&body),
              "id: 1\nevent: cast.queued\ndata: {\"cast_id\":\"cst_h10\",\"seq\":1}\n\n"
              "retry: 1000\n\n"
              "id: 2\nevent: cast.progress\ndata: {\"cast_id\":\"cst_h10\",\"seq\":2}\n\n"
              "id: 3\nevent: cast.succeeded\ndata: {\"cast_id\":\"cst_h10\",\"seq\":3,\"final\":true}\n\n");
    CHECK(wait_open(W.httpd, open0));
    spell_buf_free(&body);
}

/* Splits the exposition text into lines and checks each one's form. */
static int metrics_lines_ok(const char *text)
{
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len;
        if (!eol)
            return 0;
        len = (size_t)(eol - p);
        if (len == 0)
            return 0;
        if (p[0] == '#') {
            if (strncmp(p, "# HELP ", 7) != 0 && strncmp(p, "# TYPE ", 7) != 0)
                return 0;
        } else {
            /* name{labels} value  or  name value */
            const char *sp = memchr(p, ' ', len);
            const char *brace = memchr(p, '{', len);
            char *end;
            if (!sp)
                return 0;
            if (brace && brace < sp) {
                const char *close = memchr(p, '}', len);
                if (!close || close < brace)
                    return 0;
                sp = memchr(close, ' ', (size_t)(eol - close));
                if (!sp)
                    return 0;
            }
            strtod(sp + 1, &end);
            if (end != eol && strncmp(sp + 1, "+Inf", 4) != 0)
                return 0;
        }
        p = eol + 1;
    }
    return 1;
}

static void test_metrics_exact(void)
{
    struct metrics *m = NULL;
    struct sse_hub *hub = NULL;
    struct httpd *h;
    struct httpd *saved = W.httpd;
    char saved_base[64];
    struct reply r;
    const char *text;

    CHECK_INT(metrics_new(&m), SPELL_OK);
    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    /* A fresh server and registry so the counts are exact. */
    struct metrics *saved_m = W.metrics;
    W.metrics = m;
    h = start_server(hub, m, NULL);
    CHECK(h != NULL);
    strcpy(saved_base, W.base);
    snprintf(W.base, sizeof W.base, "http://127.0.0.1:%u", httpd_port(h));
    W.httpd = h;
    for (int i = 0; i < 3; i++) {
        request("GET", "/v1/casts/x", NULL, NULL, 0, 0, &r);
        reply_free(&r);
    }
    request("GET", "/nope", NULL, NULL, 0, 0, &r);
    reply_free(&r);
    request("GET", "/nope2", NULL, NULL, 0, 0, &r);
    reply_free(&r);
    CHECK(wait_idle(h));
    request("GET", "/metrics", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.status, 200);
    text = spell_buf_str(&r.body);
    CHECK(metrics_lines_ok(text));
    CHECK(strstr(text, "spell_http_requests_total{route=\"/v1/casts/{id}\",method=\"GET\","
                       "code=\"2xx\"} 3\n") != NULL);
    CHECK(strstr(text, "spell_http_requests_total{route=\"unmatched\",method=\"GET\","
                       "code=\"4xx\"} 2\n") != NULL);
    CHECK(strstr(text, "spell_http_request_duration_seconds_count{route=\"/v1/casts/{id}\","
                       "method=\"GET\"} 3\n") != NULL);
    CHECK(strstr(text, "spell_http_request_duration_seconds_bucket{route=\"/v1/casts/{id}\","
                       "method=\"GET\",le=\"+Inf\"} 3\n") != NULL);
    CHECK(strstr(text, "# TYPE spell_sse_streams_open gauge\nspell_sse_streams_open 0\n") != NULL);
    CHECK(strstr(text, "/nope") == NULL);
    reply_free(&r);
    CHECK_INT(httpd_stop(h), SPELL_OK);
    sse_hub_free(hub);
    metrics_free(m);
    W.metrics = saved_m;
    W.httpd = saved;
    strcpy(W.base, saved_base);
}

struct slow_args {
    struct reply r;
};

static void *slow_thread(void *arg)
{
    struct slow_args *a = arg;
    request("GET", "/slow", NULL, NULL, 0, 0, &a->r);
    return NULL;
}

static void test_graceful_shutdown(void)
{
    struct sse_hub *hub = NULL;
    struct httpd *h;
    struct httpd *saved = W.httpd;
    char saved_base[64];
    struct sse_client clients[3];
    pthread_t st[3], slow;
    struct slow_args sa;
    struct reply r;
    size_t direct0 = sse_hub_direct_count(W.hub);

    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    h = start_server(hub, NULL, NULL);
    CHECK(h != NULL);
    strcpy(saved_base, W.base);
    snprintf(W.base, sizeof W.base, "http://127.0.0.1:%u", httpd_port(h));
    W.httpd = h;
    store_publish("cst_shut", 1, "cast.queued", 0);
    for (int i = 0; i < 3; i++) {
        sse_client_init(&clients[i], "cst_shut");
        pthread_create(&st[i], NULL, sse_thread, &clients[i]);
    }
    CHECK(wait_streams(h, 3));
    /* The streams are suspended, their sockets written by the hub (the
     * routes' hub). */
    CHECK(wait_direct(W.hub, direct0 + 3));
    pthread_create(&slow, NULL, slow_thread, &sa);
    for (int i = 0; i < 500 && httpd_in_flight(h) < 4; i++)
        usleep(2000);
    CHECK_INT(httpd_in_flight(h), 4);
    CHECK_INT(httpd_stop(h), SPELL_OK);
    pthread_join(slow, NULL);
    CHECK_INT(sa.r.cc, CURLE_OK);
    CHECK_INT(sa.r.status, 200);
    CHECK_STR(spell_buf_str(&sa.r.body), "{\"slow\":true}");
    reply_free(&sa.r);
    for (int i = 0; i < 3; i++) {
        pthread_join(st[i], NULL);
        /* The stream ended cleanly (final chunk), with the backlog in it. */
        CHECK_INT(clients[i].cc, CURLE_OK);
        CHECK_INT(clients[i].nevents, 1);
        spell_sse_parser_free(&clients[i].parser);
    }
    /* Nothing listens any more. */
    request("GET", "/v1/casts/x", NULL, NULL, 0, 0, &r);
    CHECK_INT(r.cc, CURLE_COULDNT_CONNECT);
    reply_free(&r);
    sse_hub_free(hub);
    W.httpd = saved;
    strcpy(W.base, saved_base);
}

/* Stopping while a write-through stream's client reads nothing: its bytes
 * stay queued in the hub past the grace period; the stream is cut and the
 * daemon stops (libmicrohttpd must not be stopped with a suspended
 * connection). */
static void test_shutdown_stuck_client(void)
{
    struct sse_hub *hub = NULL, *saved_hub = W.hub;
    struct sse_hub_config hc = {0};
    struct httpd_config cfg = {0};
    struct httpd *h = NULL, *saved = W.httpd;
    char saved_base[64], head[1024];
    /* The routes with this hub (the shared table stays as the main server
     * uses it). */
    static struct route local[sizeof routes / sizeof routes[0]];
    int fd;

    hc.max_queue = 64 * 1024 * 1024;
    CHECK_INT(sse_hub_new(&hc, &hub), SPELL_OK);
    memcpy(local, routes, sizeof routes);
    for (size_t i = 0; i < nroutes(); i++)
        if (local[i].ud == saved_hub)
            local[i].ud = hub;
    cfg.address = "127.0.0.1";
    cfg.routes = local;
    cfg.nroutes = nroutes();
    cfg.threads = 2;
    cfg.shutdown_grace_ms = 200;
    CHECK_INT(httpd_start(&cfg, &h), SPELL_OK);
    strcpy(saved_base, W.base);
    snprintf(W.base, sizeof W.base, "http://127.0.0.1:%u", httpd_port(h));
    W.httpd = h;
    W.hub = hub;
    fd = raw_stream("/v1/casts/cst_stuck/events", "HTTP/1.1", 4096, head, sizeof head);
    CHECK(fd >= 0);
    CHECK(wait_direct(hub, 1));
    /* Far more than the socket buffers hold (on loopback they grow to a
     * few MiB). */
    for (uint64_t seq = 1; seq <= 1500; seq++)
        publish_big("cst_stuck", seq, 0);
    CHECK_INT(sse_hub_direct_count(hub), 1);
    CHECK_INT(httpd_stop(h), SPELL_ETIMEOUT);
    CHECK_INT(sse_hub_direct_count(hub), 0);
    CHECK_INT(sse_hub_count(hub), 0);
    close(fd);
    sse_hub_free(hub);
    W.hub = saved_hub;
    W.httpd = saved;
    strcpy(W.base, saved_base);
}

static void test_start_errors(void)
{
    struct httpd_config cfg = {0};
    struct httpd *h = NULL;
    struct route bad[] = {{"GET", "/x/{", h_fail, NULL, 0, 0}};
    struct route bad2[] = {{"GET", "nope", h_fail, NULL, 0, 0}};

    cfg.address = "127.0.0.1";
    cfg.routes = bad;
    cfg.nroutes = 1;
    CHECK_INT(httpd_start(&cfg, &h), SPELL_EINVAL);
    cfg.routes = bad2;
    CHECK_INT(httpd_start(&cfg, &h), SPELL_EINVAL);
    cfg.routes = routes;
    cfg.nroutes = nroutes();
    cfg.address = "not-an-address";
    CHECK_INT(httpd_start(&cfg, &h), SPELL_EINVAL);
    /* The port is taken. */
    cfg.address = "127.0.0.1";
    cfg.port = httpd_port(W.httpd);
    CHECK_INT(httpd_start(&cfg, &h), SPELL_EIO);
    CHECK(h == NULL);
}

int main(void)
{
    struct sse_hub_config hc = {0};

    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&W.lock, NULL);
    hc.ping_ms = 100;
    hc.writers = 2;
    if (sse_hub_new(&hc, &W.hub) != SPELL_OK || metrics_new(&W.metrics) != SPELL_OK)
        return 1;
    W.log = tmpfile();
    make_routes(W.hub);
    W.httpd = start_server(W.hub, W.metrics, W.log);
    if (!W.httpd) {
        printf("Bail out! cannot start the daemon\n");
        return 1;
    }
    snprintf(W.base, sizeof W.base, "http://127.0.0.1:%u", httpd_port(W.httpd));

    RUN(test_routing_params_and_verbs);
    RUN(test_not_found_shape);
    RUN(test_method_not_allowed);
    RUN(test_query);
    RUN(test_auth_and_body_cap);
    RUN(test_malformed_requests);
    RUN(test_error_shapes);
    RUN(test_response_constructors);
    RUN(test_access_log_has_no_secrets);
    RUN(test_sse_backlog_then_live);
    RUN(test_sse_resume_exact);
    RUN(test_sse_ping);
    RUN(test_sse_many_streams);
    RUN(test_sse_slow_client_cut);
    RUN(test_sse_disconnect_while_idle);
    RUN(test_sse_http10);
    RUN(test_metrics_exact);
    RUN(test_graceful_shutdown);
    RUN(test_shutdown_stuck_client);
    RUN(test_start_errors);

    httpd_stop(W.httpd);
    sse_hub_free(W.hub);
    metrics_free(W.metrics);
    fclose(W.log);
    pthread_mutex_destroy(&W.lock);
    curl_global_cleanup();
    return tap_done();
}
