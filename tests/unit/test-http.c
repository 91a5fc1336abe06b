/*
 * Unit tests for core/src/http.c.
 *
 * A small HTTP/1.1 server runs in this process on 127.0.0.1, port 0: an
 * accept thread and one thread per connection.  Each test queues canned
 * answers (raw bytes, sent in segments with pauses between them, matched
 * to a path or to any path) and afterwards reads what every request
 * carried: method, path, header block and body.  The pure retry helpers
 * are tested directly.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "spell/errors.h"
#include "spell/http.h"
#include "spell/version.h"
#include "tap.h"

/* ---- the test server ---- */

#define SRV_MAX_SCRIPT 32
#define SRV_MAX_SEGS 8
#define SRV_MAX_REQS 64
#define SRV_MAX_CONNS 64
#define SRV_MAX_REQUEST (64 * 1024)

struct seg {
    const char *data;
    size_t len;
    int pause_ms;               /* wait before sending this segment */
};

struct canned {
    const char *path;           /* NULL answers any path */
    struct seg segs[SRV_MAX_SEGS];
    int n_segs;
    int close;                  /* close the connection after answering */
    int used;
};

struct rec {
    char method[16];
    char path[256];
    char headers[16384];
    char *body;
    size_t body_len;
};

struct server {
    int lfd;
    int port;
    atomic_int stop;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    struct canned script[SRV_MAX_SCRIPT];
    int n_script;
    struct rec reqs[SRV_MAX_REQS];
    int n_reqs;
    pthread_t conns[SRV_MAX_CONNS];
    int n_conns;
};

struct conn_arg {
    struct server *srv;
    int fd;
};

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits ms, in slices; nonzero when the server stops or the peer sends or
 * hangs up meanwhile. */
static int srv_pause(struct server *srv, int fd, int ms)
{
    long end = now_ms() + ms;
    while (!atomic_load(&srv->stop)) {
        long left = end - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
        if (poll(&p, 1, left < 20 ? (int)left : 20) != 0)
            return -1;
    }
    return -1;
}

/* Reads one request into buf; returns its header length (up to and
 * including the empty line) and fills *total with the whole request
 * length, or -1 on EOF, error or stop. */
static int srv_read_request(struct server *srv, int fd, char *buf, size_t cap, size_t *total)
{
    size_t len = 0;
    char *eoh = NULL;
    size_t need = 0;
    for (;;) {
        if (eoh && len >= need)
            break;
        if (atomic_load(&srv->stop) || len == cap)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int pr = poll(&p, 1, 20);
        if (pr < 0)
            return -1;
        if (pr == 0)
            continue;
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len < cap ? len : cap - 1] = '\0';
        if (!eoh && (eoh = memmem(buf, len, "\r\n\r\n", 4)) != NULL) {
            size_t hlen = (size_t)(eoh - buf) + 4;
            size_t clen = 0;
            for (char *l = buf; l && l < eoh; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL)
                if (strncasecmp(l, "Content-Length:", 15) == 0)
                    clen = strtoul(l + 15, NULL, 10);
            need = hlen + clen;
            if (need > cap)
                return -1;
        }
    }
    *total = need;
    return (int)((eoh - buf) + 4);
}

static void srv_record(struct server *srv, const char *buf, int hlen, size_t total,
                       const char **path_out, char *path, size_t path_cap)
{
    char method[16] = "", p[256] = "";
    sscanf(buf, "%15s %255s", method, p);
    snprintf(path, path_cap, "%s", p);
    *path_out = path;
    pthread_mutex_lock(&srv->mu);
    if (srv->n_reqs < SRV_MAX_REQS) {
        struct rec *r = &srv->reqs[srv->n_reqs++];
        snprintf(r->method, sizeof r->method, "%s", method);
        snprintf(r->path, sizeof r->path, "%s", p);
        size_t hl = (size_t)hlen < sizeof r->headers ? (size_t)hlen : sizeof r->headers - 1;
        memcpy(r->headers, buf, hl);
        r->headers[hl] = '\0';
        r->body_len = total - (size_t)hlen;
        r->body = malloc(r->body_len + 1);
        if (r->body) {
            memcpy(r->body, buf + hlen, r->body_len);
            r->body[r->body_len] = '\0';
        }
    }
    pthread_mutex_unlock(&srv->mu);
}

static struct canned *srv_take(struct server *srv, const char *path)
{
    struct canned *c = NULL;
    pthread_mutex_lock(&srv->mu);
    for (int i = 0; i < srv->n_script; i++) {
        struct canned *k = &srv->script[i];
        if (!k->used && (!k->path || strcmp(k->path, path) == 0)) {
            k->used = 1;
            c = k;
            break;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return c;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *srv_conn(void *arg)
{
    struct conn_arg *a = arg;
    struct server *srv = a->srv;
    int fd = a->fd;
    free(a);
    char *buf = malloc(SRV_MAX_REQUEST + 1);
    while (buf) {
        size_t total = 0;
        int hlen = srv_read_request(srv, fd, buf, SRV_MAX_REQUEST, &total);
        if (hlen < 0)
            break;
        const char *path;
        char pathbuf[256];
        srv_record(srv, buf, hlen, total, &path, pathbuf, sizeof pathbuf);
        struct canned *c = srv_take(srv, path);
        if (!c) {
            static const char none[] =
                "HTTP/1.1 418 No Script\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            send_all(fd, none, sizeof none - 1);
            break;
        }
        int ok = 1;
        for (int i = 0; ok && i < c->n_segs; i++) {
            const struct seg *s = &c->segs[i];
            if (s->pause_ms && srv_pause(srv, fd, s->pause_ms) != 0)
                ok = 0;
            else if (send_all(fd, s->data, s->len) != 0)
                ok = 0;
        }
        if (!ok || c->close)
            break;
    }
    free(buf);
    close(fd);
    return NULL;
}

static void *srv_accept(void *arg)
{
    struct server *srv = arg;
    while (!atomic_load(&srv->stop)) {
        struct pollfd p = {srv->lfd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept(srv->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        struct conn_arg *a = malloc(sizeof *a);
        if (!a || srv->n_conns == SRV_MAX_CONNS) {
            free(a);
            close(fd);
            continue;
        }
        a->srv = srv;
        a->fd = fd;
        if (pthread_create(&srv->conns[srv->n_conns], NULL, srv_conn, a) != 0) {
            free(a);
            close(fd);
            continue;
        }
        srv->n_conns++;
    }
    return NULL;
}

static struct server *srv_start(void)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (!srv)
        abort();
    pthread_mutex_init(&srv->mu, NULL);
    srv->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (srv->lfd < 0 || bind(srv->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(srv->lfd, 64) != 0 || getsockname(srv->lfd, (struct sockaddr *)&sa, &sl) != 0)
        abort();
    srv->port = ntohs(sa.sin_port);
    if (pthread_create(&srv->accept_thread, NULL, srv_accept, srv) != 0)
        abort();
    return srv;
}

static void srv_stop(struct server *srv)
{
    atomic_store(&srv->stop, 1);
    pthread_join(srv->accept_thread, NULL);
    for (int i = 0; i < srv->n_conns; i++)
        pthread_join(srv->conns[i], NULL);
    close(srv->lfd);
    for (int i = 0; i < srv->n_reqs; i++)
        free(srv->reqs[i].body);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

static struct canned *srv_push(struct server *srv, const char *path, int close_after)
{
    pthread_mutex_lock(&srv->mu);
    if (srv->n_script == SRV_MAX_SCRIPT)
        abort();
    struct canned *c = &srv->script[srv->n_script++];
    c->path = path;
    c->close = close_after;
    pthread_mutex_unlock(&srv->mu);
    return c;
}

static void seg_add(struct canned *c, const char *data, size_t len, int pause_ms)
{
    if (c->n_segs == SRV_MAX_SEGS)
        abort();
    c->segs[c->n_segs].data = data;
    c->segs[c->n_segs].len = len;
    c->segs[c->n_segs].pause_ms = pause_ms;
    c->n_segs++;
}

/* A segment from a string literal, NUL bytes included. */
#define SEGL(c, lit, pause) seg_add((c), (lit), sizeof(lit) - 1, (pause))

/* One whole answer on a kept-alive connection. */
static void srv_reply(struct server *srv, const char *raw)
{
    seg_add(srv_push(srv, NULL, 0), raw, strlen(raw), 0);
}

static int srv_count(struct server *srv)
{
    pthread_mutex_lock(&srv->mu);
    int n = srv->n_reqs;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

/* The value of header `name` in recorded request i, or NULL. */
static const char *rec_header(struct server *srv, int i, const char *name, char *out, size_t cap)
{
    if (i >= srv_count(srv))
        return NULL;
    const char *h = srv->reqs[i].headers;
    size_t nl = strlen(name);
    for (const char *l = strstr(h, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        const char *line = l + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
    }
    return NULL;
}

static void url_of(char *out, size_t cap, struct server *srv, const char *path)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s", srv->port, path);
}

/* A port nobody listens on: bound, then closed. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        abort();
    close(fd);
    return ntohs(sa.sin_port);
}

/* Fast retries for the tests. */
static void quick_retry(struct spell_http_request *req, int attempts)
{
    req->retry.max_attempts = attempts;
    req->retry.base_ms = 1;
    req->retry.max_ms = 5;
}

/* ---- retry helpers ---- */

static void test_backoff_values(void)
{
    CHECK_INT(spell_http_backoff_ms(0, 200, 10000, UINT32_MAX), 200);
    CHECK_INT(spell_http_backoff_ms(1, 200, 10000, UINT32_MAX), 400);
    CHECK_INT(spell_http_backoff_ms(5, 200, 10000, UINT32_MAX), 6400);
    CHECK_INT(spell_http_backoff_ms(6, 200, 10000, UINT32_MAX), 10000);
    CHECK_INT(spell_http_backoff_ms(1000, 200, 10000, UINT32_MAX), 10000);
    CHECK_INT(spell_http_backoff_ms(INT32_MAX, 200, 10000, UINT32_MAX), 10000);
    CHECK_INT(spell_http_backoff_ms(3, 200, 10000, 0), 0);
    CHECK_INT(spell_http_backoff_ms(0, 200, 10000, 0x80000000u), 100);
    CHECK_INT(spell_http_backoff_ms(2, 200, 10000, 0x80000000u), 400);
    CHECK_INT(spell_http_backoff_ms(-5, 200, 10000, UINT32_MAX), 200);
    CHECK_INT(spell_http_backoff_ms(0, 500, 300, UINT32_MAX), 300);
    CHECK_INT(spell_http_backoff_ms(2, 0, 300, UINT32_MAX), 0);
    CHECK_INT(spell_http_backoff_ms(2, 100, 0, UINT32_MAX), 0);
    CHECK_INT(spell_http_backoff_ms(2, -100, 1000, UINT32_MAX), 0);
    CHECK_INT(spell_http_backoff_ms(100, 1, 2000000000L, UINT32_MAX), SPELL_HTTP_DELAY_CAP_MS);
    CHECK_INT(spell_http_backoff_ms(100, 2000000000L, 2000000000L, UINT32_MAX),
              SPELL_HTTP_DELAY_CAP_MS);
}

static void test_backoff_bounds(void)
{
    static const uint32_t rnd[] = {0, 1, 12345, 0x7fffffffu, 0x80000000u, 0xdeadbeefu,
                                   UINT32_MAX - 1, UINT32_MAX};
    static const long bases[] = {1, 3, 200, 1000, 9999};
    int bad = 0;
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
        for (size_t r = 0; r < sizeof rnd / sizeof rnd[0]; r++) {
            long prev = 0;
            for (int a = 0; a < 80; a++) {
                long d = spell_http_backoff_ms(a, bases[b], 10000, rnd[r]);
                long ceiling = bases[b];
                for (int i = 0; i < a && ceiling < 10000; i++)
                    ceiling *= 2;
                if (ceiling > 10000)
                    ceiling = 10000;
                if (d < 0 || d > ceiling || d > 10000 || d < prev)
                    bad++;
                prev = d;
            }
        }
    }
    CHECK_INT(bad, 0);
    /* With the top random value the delay tracks the ceiling: it grows. */
    CHECK(spell_http_backoff_ms(1, 200, 10000, UINT32_MAX) >
          spell_http_backoff_ms(0, 200, 10000, UINT32_MAX));
    CHECK(spell_http_backoff_ms(4, 200, 10000, UINT32_MAX) >
          spell_http_backoff_ms(3, 200, 10000, UINT32_MAX));
}

/* 1994-11-06T08:49:37Z, the RFC 9110 §5.6.7 example date. */
#define RFC_DATE 784111777L

static void test_retry_after_seconds(void)
{
    long ms = -1;
    CHECK_INT(spell_http_parse_retry_after("0", 0, &ms), SPELL_OK);
    CHECK_INT(ms, 0);
    CHECK_INT(spell_http_parse_retry_after("120", 0, &ms), SPELL_OK);
    CHECK_INT(ms, 120000);
    CHECK_INT(spell_http_parse_retry_after(" \t7 ", 0, &ms), SPELL_OK);
    CHECK_INT(ms, 7000);
    CHECK_INT(spell_http_parse_retry_after("0001", 0, &ms), SPELL_OK);
    CHECK_INT(ms, 1000);
    CHECK_INT(spell_http_parse_retry_after("86399", 0, &ms), SPELL_OK);
    CHECK_INT(ms, 86399000);
    CHECK_INT(spell_http_parse_retry_after("86400", 0, &ms), SPELL_OK);
    CHECK_INT(ms, SPELL_HTTP_DELAY_CAP_MS);
    CHECK_INT(spell_http_parse_retry_after("2147483648", 0, &ms), SPELL_OK);
    CHECK_INT(ms, SPELL_HTTP_DELAY_CAP_MS);
    CHECK_INT(spell_http_parse_retry_after("99999999999999999999999999999999999", 0, &ms),
              SPELL_OK);
    CHECK_INT(ms, SPELL_HTTP_DELAY_CAP_MS);
}

static void test_retry_after_dates(void)
{
    long ms = -1;
    /* RFC 9110 §5.6.7: the three forms of the same instant. */
    CHECK_INT(spell_http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE - 30, &ms),
              SPELL_OK);
    CHECK_INT(ms, 30000);
    ms = -1;
    CHECK_INT(spell_http_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", RFC_DATE - 30, &ms),
              SPELL_OK);
    CHECK_INT(ms, 30000);
    ms = -1;
    CHECK_INT(spell_http_parse_retry_after("Sun Nov  6 08:49:37 1994", RFC_DATE - 30, &ms),
              SPELL_OK);
    CHECK_INT(ms, 30000);
    /* In the past, or now: no wait. */
    CHECK_INT(spell_http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE + 500, &ms),
              SPELL_OK);
    CHECK_INT(ms, 0);
    CHECK_INT(spell_http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", RFC_DATE, &ms),
              SPELL_OK);
    CHECK_INT(ms, 0);
    /* 2000 was a leap year; 2024-02-29T00:00:00Z is 1709164800. */
    CHECK_INT(spell_http_parse_retry_after("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800L - 2, &ms),
              SPELL_OK);
    CHECK_INT(ms, 2000);
    /* Far future and absurd clocks saturate without overflow. */
    CHECK_INT(spell_http_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", 0, &ms), SPELL_OK);
    CHECK_INT(ms, SPELL_HTTP_DELAY_CAP_MS);
    CHECK_INT(spell_http_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", INT64_MIN, &ms),
              SPELL_OK);
    CHECK_INT(ms, SPELL_HTTP_DELAY_CAP_MS);
    CHECK_INT(spell_http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", INT64_MAX, &ms),
              SPELL_OK);
    CHECK_INT(ms, 0);
}

static void test_retry_after_garbage(void)
{
    static const char *const bad[] = {
        "", "   ", "abc", "12abc", "-5", "-0", "+5", "1.5", "1 2", "0x10", "\xff\xfe",
        "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Nov 1994 08:49:37",
        "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Nov 1994 08:60:37 GMT", "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT x", "Sun, 06 nov 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long ms = 12345;
        int rc = spell_http_parse_retry_after(bad[i], RFC_DATE, &ms);
        if (rc != SPELL_EINVAL)
            printf("#   accepted \"%s\"\n", bad[i]);
        CHECK_INT(rc, SPELL_EINVAL);
        CHECK_INT(ms, 12345);
    }
    long ms = 0;
    CHECK_INT(spell_http_parse_retry_after(NULL, 0, &ms), SPELL_EINVAL);
    CHECK_INT(spell_http_parse_retry_after("1", 0, NULL), SPELL_EINVAL);
    /* An embedded NUL ends the string: "1\0junk" is "1". */
    CHECK_INT(spell_http_parse_retry_after("1\0junk", 0, &ms), SPELL_OK);
    CHECK_INT(ms, 1000);
    /* Longer than any real value: refused before parsing. */
    char big[400];
    memset(big, '9', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_INT(spell_http_parse_retry_after(big, 0, &ms), SPELL_EINVAL);
}

/* ---- one request ---- */

static void test_roundtrip(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/hello?x=1");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                   "X-Thing:   spaced value \t\r\nX-Empty:\r\nContent-Length: 5\r\n\r\nhello");
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, NULL, url);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 200);
    CHECK_INT(resp.body_len, 5);
    CHECK_STR(resp.body, "hello");
    CHECK_INT(resp.attempts, 1);
    CHECK_STR(resp.error, "");
    CHECK_STR(spell_http_response_header(&resp, "content-type"), "text/plain");
    CHECK_STR(spell_http_response_header(&resp, "X-THING"), "spaced value");
    CHECK_STR(spell_http_response_header(&resp, "x-empty"), "");
    CHECK(spell_http_response_header(&resp, "x-missing") == NULL);
    CHECK(spell_http_response_header(&resp, "X-Thin") == NULL);
    CHECK(spell_http_response_header(&resp, NULL) == NULL);
    CHECK(spell_http_response_header(NULL, "x") == NULL);
    CHECK_INT(resp.n_headers, 4);
    CHECK_INT(srv_count(srv), 1);
    CHECK_STR(srv->reqs[0].method, "GET");
    CHECK_STR(srv->reqs[0].path, "/hello?x=1");
    CHECK_INT(srv->reqs[0].body_len, 0);
    spell_http_response_free(&resp);
    CHECK(resp.body == NULL && resp.headers == NULL);
    spell_http_response_free(&resp);    /* twice is harmless */
    srv_stop(srv);
}

static void test_bearer_user_agent(void)
{
    struct server *srv = srv_start();
    char url[128], v[256], ua[64];
    url_of(url, sizeof url, srv, "/v1/auth/me");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    static const char *const extra[] = {"X-Trace: abc", "Last-Event-ID: 42"};
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "GET", url);
    req.bearer = "sk_live_abcdefgh_0123456789.-~+/=";
    req.headers = extra;
    req.n_headers = 2;
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    spell_http_response_free(&resp);
    snprintf(ua, sizeof ua, "spell/%s", spell_version());
    CHECK_STR(rec_header(srv, 0, "Authorization", v, sizeof v),
              "Bearer sk_live_abcdefgh_0123456789.-~+/=");
    CHECK_STR(rec_header(srv, 0, "User-Agent", v, sizeof v), ua);
    CHECK_STR(ua, "spell/0.1.0");
    CHECK_STR(rec_header(srv, 0, "X-Trace", v, sizeof v), "abc");
    CHECK_STR(rec_header(srv, 0, "Last-Event-ID", v, sizeof v), "42");
    CHECK(rec_header(srv, 0, "Content-Type", v, sizeof v) == NULL);
    CHECK(rec_header(srv, 0, "Expect", v, sizeof v) == NULL);

    spell_http_request_init(&req, "GET", url);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    spell_http_response_free(&resp);
    CHECK(rec_header(srv, 1, "Authorization", v, sizeof v) == NULL);
    CHECK_STR(rec_header(srv, 1, "User-Agent", v, sizeof v), ua);
    srv_stop(srv);
}

static void test_json_body(void)
{
    struct server *srv = srv_start();
    char url[128], v[256];
    url_of(url, sizeof url, srv, "/v1/spells/thumbnail:cast");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    SEGL(srv_push(srv, NULL, 0), "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\na\0b\xff\xfe\n", 0);
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    static const char json[] = "{\"inputs\":{\"url\":\"https://x\"}}";
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "POST", url);
    req.body = json;
    req.body_len = strlen(json);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    spell_http_response_free(&resp);
    CHECK_STR(srv->reqs[0].method, "POST");
    CHECK_STR(rec_header(srv, 0, "Content-Type", v, sizeof v), "application/json");
    CHECK_INT(srv->reqs[0].body_len, strlen(json));
    CHECK_STR(srv->reqs[0].body, json);

    /* Binary both ways: NUL bytes and invalid UTF-8 travel untouched. */
    static const char bin[] = {'x', 0, 'y', (char)0xc3, (char)0x28, 0};
    spell_http_request_init(&req, "PUT", url);
    req.body = bin;
    req.body_len = sizeof bin;
    req.content_type = "application/octet-stream";
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.body_len, 6);
    CHECK_MEM(resp.body, resp.body_len, "a\0b\xff\xfe\n", 6);
    CHECK_INT(resp.body[6], 0);
    spell_http_response_free(&resp);
    CHECK_STR(srv->reqs[1].method, "PUT");
    CHECK_STR(rec_header(srv, 1, "Content-Type", v, sizeof v), "application/octet-stream");
    CHECK_MEM(srv->reqs[1].body, srv->reqs[1].body_len, bin, sizeof bin);

    /* POST without a body: empty, and no form content type slipped in. */
    spell_http_request_init(&req, "POST", url);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.body_len, 0);
    CHECK_STR(resp.body, "");
    spell_http_response_free(&resp);
    CHECK_STR(rec_header(srv, 2, "Content-Length", v, sizeof v), "0");
    CHECK(rec_header(srv, 2, "Content-Type", v, sizeof v) == NULL);
    srv_stop(srv);
}

static void test_methods(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/v1/keys/abc");
    srv_reply(srv, "HTTP/1.1 204 No Content\r\n\r\n");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-H: 1\r\n\r\n");
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "DELETE", url);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 204);
    spell_http_response_free(&resp);
    spell_http_request_init(&req, "HEAD", url);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 200);
    CHECK_INT(resp.body_len, 0);
    CHECK_STR(spell_http_response_header(&resp, "x-h"), "1");
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 2);
    CHECK_STR(srv->reqs[0].method, "DELETE");
    CHECK_STR(srv->reqs[1].method, "HEAD");
    srv_stop(srv);
}

static void test_no_redirect(void)
{
    struct server *srv = srv_start();
    char url[128], raw[256];
    url_of(url, sizeof url, srv, "/v1/spells/x:cast");
    srv_reply(srv, "HTTP/1.1 202 Accepted\r\nLocation: /v1/casts/cst_01\r\n"
                   "Content-Length: 21\r\n\r\n{\"cast_id\":\"cst_01\"}\n");
    snprintf(raw, sizeof raw, "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/elsewhere\r\n"
                              "Content-Length: 0\r\n\r\n", srv->port);
    srv_reply(srv, raw);
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "POST", url);
    req.body = "{}";
    req.body_len = 2;
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 202);
    CHECK_STR(spell_http_response_header(&resp, "location"), "/v1/casts/cst_01");
    CHECK_STR(resp.body, "{\"cast_id\":\"cst_01\"}\n");
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 1);
    spell_http_request_init(&req, "GET", url);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 302);
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 2);
    srv_stop(srv);
}

static void test_body_cap(void)
{
    struct server *srv = srv_start();
    char url[128];
    static char long_body[512];
    url_of(url, sizeof url, srv, "/big");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n0123456789abcdef");
    SEGL(srv_push(srv, NULL, 1), "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n0123456789abcdefg", 0);
    /* Unknown length: the body runs until the connection closes. */
    memcpy(long_body, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 38);
    memset(long_body + 38, 'z', sizeof long_body - 38);
    seg_add(srv_push(srv, NULL, 1), long_body, sizeof long_body, 0);
    /* Chunked. */
    SEGL(srv_push(srv, NULL, 1), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n", 0);

    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "GET", url);
    req.body_cap = 16;
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.body_len, 16);
    spell_http_response_free(&resp);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(spell_http_send(&req, &resp), SPELL_ETOOBIG);
        CHECK(resp.body == NULL);
        CHECK_INT(resp.attempts, 1);
        CHECK(resp.error[0] != '\0');
        spell_http_response_free(&resp);
    }
    CHECK_INT(srv_count(srv), 4);
    srv_stop(srv);
}

static void test_header_caps(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/h");
    /* 99 fields plus Content-Length: exactly the cap. */
    static char ok_raw[4096], over_raw[4096], long_raw[9000], edge_raw[9000];
    size_t n = (size_t)snprintf(ok_raw, sizeof ok_raw, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 99; i++)
        n += (size_t)snprintf(ok_raw + n, sizeof ok_raw - n, "X-%d: %d\r\n", i, i);
    snprintf(ok_raw + n, sizeof ok_raw - n, "Content-Length: 0\r\n\r\n");
    n = (size_t)snprintf(over_raw, sizeof over_raw, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(over_raw + n, sizeof over_raw - n, "X-%d: %d\r\n", i, i);
    snprintf(over_raw + n, sizeof over_raw - n, "Content-Length: 0\r\n\r\n");
    /* One line of 8193 bytes, then one of exactly 8192. */
    n = (size_t)snprintf(long_raw, sizeof long_raw, "HTTP/1.1 200 OK\r\nX-Long: ");
    memset(long_raw + n, 'a', 8193 - 8);
    n += 8193 - 8;
    snprintf(long_raw + n, sizeof long_raw - n, "\r\nContent-Length: 0\r\n\r\n");
    n = (size_t)snprintf(edge_raw, sizeof edge_raw, "HTTP/1.1 200 OK\r\nX-Long: ");
    memset(edge_raw + n, 'a', 8192 - 8);
    n += 8192 - 8;
    snprintf(edge_raw + n, sizeof edge_raw - n, "\r\nContent-Length: 0\r\n\r\n");
    srv_reply(srv, ok_raw);
    seg_add(srv_push(srv, NULL, 1), over_raw, strlen(over_raw), 0);
    seg_add(srv_push(srv, NULL, 1), long_raw, strlen(long_raw), 0);
    srv_reply(srv, edge_raw);

    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "GET", url);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.n_headers, 100);
    CHECK_STR(spell_http_response_header(&resp, "x-98"), "98");
    spell_http_response_free(&resp);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_ETOOBIG);
    spell_http_response_free(&resp);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_ETOOBIG);
    spell_http_response_free(&resp);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(strlen(spell_http_response_header(&resp, "x-long")), 8192 - 8);
    spell_http_response_free(&resp);
    srv_stop(srv);
}

static void test_interim_and_odd_headers(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/i");
    srv_reply(srv, "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nX-Final: 2\r\nX-Fold: a\r\n  b \r\n"
                   "Content-Length: 2\r\n\r\nok");
    SEGL(srv_push(srv, NULL, 1), "HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",
         0);
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "GET", url);
    quick_retry(&req, 1);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 200);
    CHECK(spell_http_response_header(&resp, "x-interim") == NULL);
    CHECK_STR(spell_http_response_header(&resp, "x-final"), "2");
    CHECK_STR(spell_http_response_header(&resp, "x-fold"), "a b");
    CHECK_STR(resp.body, "ok");
    spell_http_response_free(&resp);
    /* curl refuses a field line without a colon. */
    CHECK_INT(spell_http_send(&req, &resp), SPELL_EPARSE);
    CHECK(resp.error[0] != '\0');
    spell_http_response_free(&resp);
    srv_stop(srv);
}

static void test_hostile_responses(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/x");
    SEGL(srv_push(srv, NULL, 1), "NOT HTTP AT ALL\r\n\r\n", 0);
    /* Truncated: fewer bytes than promised, then close. */
    SEGL(srv_push(srv, NULL, 1), "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0);
    /* A NUL inside a header line. */
    SEGL(srv_push(srv, NULL, 1), "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n", 0);
    /* Nothing at all. */
    SEGL(srv_push(srv, NULL, 1), "", 0);
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "GET", url);
    quick_retry(&req, 1);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_EPARSE);
    CHECK(resp.error[0] != '\0');
    spell_http_response_free(&resp);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_ENET);
    spell_http_response_free(&resp);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_EPARSE);
    spell_http_response_free(&resp);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_ENET);
    CHECK_INT(resp.status, 0);
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 4);
    srv_stop(srv);
}

static void test_timeout(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/slow");
    SEGL(srv_push(srv, NULL, 1), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 3000);
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "GET", url);
    req.timeout_ms = 300;
    req.retry.max_attempts = 1;
    CHECK_INT(spell_http_send(&req, &resp), SPELL_ETIMEOUT);
    CHECK(resp.error[0] != '\0');
    CHECK_INT(resp.attempts, 1);
    spell_http_response_free(&resp);
    srv_stop(srv);
}

static void test_refused(void)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", dead_port());
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "GET", url);
    req.bearer = "secret_token_value";
    quick_retry(&req, 3);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_ENET);
    CHECK_INT(resp.attempts, 3);
    CHECK_INT(resp.status, 0);
    CHECK(resp.error[0] != '\0');
    CHECK(strstr(resp.error, "secret_token_value") == NULL);
    CHECK(resp.body == NULL);
    spell_http_response_free(&resp);
    /* Not idempotent: a single try. */
    spell_http_request_init(&req, "POST", url);
    quick_retry(&req, 3);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_ENET);
    CHECK_INT(resp.attempts, 1);
    spell_http_response_free(&resp);
}

static void test_bad_requests(void)
{
    struct spell_http_request req;
    struct spell_http_response resp;
    static char long_url[SPELL_HTTP_MAX_URL + 64];
    static char long_bearer[SPELL_HTTP_MAX_BEARER + 2];
    static const char *many[SPELL_HTTP_MAX_EXTRA_HEADERS + 1];
    const char *line[1];

    CHECK_INT(spell_http_send(NULL, &resp), SPELL_EINVAL);
    spell_http_response_free(&resp);
    spell_http_request_init(&req, "GET", "http://127.0.0.1:1/");
    CHECK_INT(spell_http_send(&req, NULL), SPELL_EINVAL);

#define BAD(setup, want) do { \
    spell_http_request_init(&req, "GET", "http://127.0.0.1:1/"); \
    setup; \
    CHECK_INT(spell_http_send(&req, &resp), want); \
    CHECK_INT(resp.attempts, 0); \
    CHECK(resp.error[0] != '\0'); \
    spell_http_response_free(&resp); \
} while (0)

    BAD(req.url = NULL, SPELL_EINVAL);
    BAD(req.url = "", SPELL_EINVAL);
    BAD(req.url = "ftp://127.0.0.1/x", SPELL_EINVAL);
    BAD(req.url = "file:///etc/passwd", SPELL_EINVAL);
    BAD(req.url = "http://127.0.0.1/a b", SPELL_EINVAL);
    BAD(req.url = "http://127.0.0.1/a\r\nX-Evil: 1", SPELL_EINVAL);
    memcpy(long_url, "http://127.0.0.1/", 17);
    memset(long_url + 17, 'a', sizeof long_url - 18);
    BAD(req.url = long_url, SPELL_ETOOBIG);
    BAD(req.bearer = "tok\r\nX-Evil: 1", SPELL_EINVAL);
    BAD(req.bearer = "tok en", SPELL_EINVAL);
    BAD(req.bearer = "", SPELL_EINVAL);
    BAD(req.bearer = "t\xc3\xa9", SPELL_EINVAL);
    memset(long_bearer, 'k', sizeof long_bearer - 1);
    BAD(req.bearer = long_bearer, SPELL_ETOOBIG);
    BAD(req.method = "GE T", SPELL_EINVAL);
    BAD(req.method = "", SPELL_EINVAL);
    BAD(req.method = "GET\r\n", SPELL_EINVAL);
    BAD(req.method = "HEAD"; req.body = "x"; req.body_len = 1, SPELL_EINVAL);
    BAD(req.body_len = 5, SPELL_EINVAL);
    BAD(req.body = "x"; req.body_len = SPELL_HTTP_MAX_REQUEST_BODY + 1, SPELL_ETOOBIG);
    BAD(req.body = "x"; req.body_len = 1; req.content_type = "a\r\nb", SPELL_EINVAL);
    BAD(req.body_cap = SPELL_HTTP_MAX_BODY_CAP + 1, SPELL_EINVAL);
    BAD(req.body_cap = (size_t)-1, SPELL_EINVAL);
    BAD(req.retry.max_attempts = SPELL_HTTP_MAX_ATTEMPTS + 1, SPELL_EINVAL);
    BAD(req.retry.max_attempts = -1, SPELL_EINVAL);
    BAD(req.retry.base_ms = -1, SPELL_EINVAL);
    BAD(req.timeout_ms = -1, SPELL_EINVAL);
    BAD(req.connect_timeout_ms = -1, SPELL_EINVAL);
    line[0] = "no colon";
    BAD(req.headers = line; req.n_headers = 1, SPELL_EINVAL);
    line[0] = "X-A: b\r\nX-Evil: 1";
    BAD(req.headers = line; req.n_headers = 1, SPELL_EINVAL);
    line[0] = ": empty name";
    BAD(req.headers = line; req.n_headers = 1, SPELL_EINVAL);
    line[0] = NULL;
    BAD(req.headers = line; req.n_headers = 1, SPELL_EINVAL);
    BAD(req.headers = NULL; req.n_headers = 1, SPELL_EINVAL);
    for (size_t i = 0; i < SPELL_HTTP_MAX_EXTRA_HEADERS + 1; i++)
        many[i] = "X-A: 1";
    BAD(req.headers = many; req.n_headers = SPELL_HTTP_MAX_EXTRA_HEADERS + 1, SPELL_ETOOBIG);
#undef BAD
}

/* ---- retries ---- */

static void test_retry_get_on_500(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/r");
    srv_reply(srv, "HTTP/1.1 500 Internal\r\nContent-Length: 0\r\n\r\n");
    srv_reply(srv, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone");
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "GET", url);
    quick_retry(&req, 3);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 200);
    CHECK_INT(resp.attempts, 3);
    CHECK_STR(resp.body, "done");
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 3);
    srv_stop(srv);
}

static void test_post_not_retried(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/r");
    srv_reply(srv, "HTTP/1.1 500 Internal\r\nContent-Length: 5\r\n\r\noops!");
    srv_reply(srv, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "POST", url);
    req.body = "{}";
    req.body_len = 2;
    quick_retry(&req, 3);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 500);
    CHECK_INT(resp.attempts, 1);
    CHECK_STR(resp.body, "oops!");
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 1);
    /* An empty key does not count. */
    static const char *const empty_key[] = {"Idempotency-Key:   "};
    req.headers = empty_key;
    req.n_headers = 1;
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 502);
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 2);
    srv_stop(srv);
}

static void test_post_idempotency_key_retried(void)
{
    struct server *srv = srv_start();
    char url[128], v[64];
    url_of(url, sizeof url, srv, "/r");
    srv_reply(srv, "HTTP/1.1 500 Internal\r\nContent-Length: 0\r\n\r\n");
    srv_reply(srv, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    static const char *const key[] = {"idempotency-key: k-123"};
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "POST", url);
    req.body = "{}";
    req.body_len = 2;
    req.headers = key;
    req.n_headers = 1;
    quick_retry(&req, 3);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 202);
    CHECK_INT(resp.attempts, 2);
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 2);
    CHECK_STR(rec_header(srv, 0, "Idempotency-Key", v, sizeof v), "k-123");
    CHECK_STR(rec_header(srv, 1, "Idempotency-Key", v, sizeof v), "k-123");
    CHECK_STR(srv->reqs[1].body, "{}");
    srv_stop(srv);
}

static void test_retry_after_honoured(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/r");
    srv_reply(srv, "HTTP/1.1 429 Too Many\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n");
    srv_reply(srv, "HTTP/1.1 503 Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n");
    srv_reply(srv, "HTTP/1.1 429 Too Many\r\nRetry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                   "Content-Length: 0\r\n\r\n");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "POST", url);
    req.body = "{}";
    req.body_len = 2;
    req.retry.max_attempts = 4;
    req.retry.base_ms = 1;
    req.retry.max_ms = 50;      /* caps the 1 s Retry-After */
    long t0 = now_ms();
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    long took = now_ms() - t0;
    CHECK_INT(resp.status, 200);
    CHECK_INT(resp.attempts, 4);
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 4);
    CHECK(took < 900);          /* an uncapped wait would take 1000 ms */
    srv_stop(srv);
}

static void test_max_attempts(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/r");
    for (int i = 0; i < 6; i++)
        srv_reply(srv, "HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n");
    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, "GET", url);
    quick_retry(&req, 3);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 503);
    CHECK_INT(resp.attempts, 3);
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 3);
    quick_retry(&req, 1);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.attempts, 1);
    spell_http_response_free(&resp);
    CHECK_INT(srv_count(srv), 4);
    srv_stop(srv);

    /* 4xx other than 429 is final, even for GET. */

    srv = srv_start();
    url_of(url, sizeof url, srv, "/r");
    srv_reply(srv, "HTTP/1.1 402 Payment Required\r\nContent-Length: 0\r\n\r\n");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    spell_http_request_init(&req, "GET", url);
    quick_retry(&req, 3);
    CHECK_INT(spell_http_send(&req, &resp), SPELL_OK);
    CHECK_INT(resp.status, 402);
    CHECK_INT(resp.attempts, 1);
    spell_http_response_free(&resp);
    srv_stop(srv);
}

struct thread_job {
    const char *url;
    int ok;
};

static void *parallel_worker(void *arg)
{
    struct thread_job *j = arg;
    for (int i = 0; i < 5; i++) {
        struct spell_http_request req;
        struct spell_http_response resp;
        spell_http_request_init(&req, "GET", j->url);
        if (spell_http_send(&req, &resp) == SPELL_OK && resp.status == 200 &&
            strcmp(resp.body, "pong") == 0)
            j->ok++;
        spell_http_response_free(&resp);
    }
    return NULL;
}

static void test_parallel_threads(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/ping");
    for (int i = 0; i < 20; i++)
        srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong");
    pthread_t t[4];
    struct thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].url = url;
        jobs[i].ok = 0;
        CHECK_INT(pthread_create(&t[i], NULL, parallel_worker, &jobs[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ok += jobs[i].ok;
    }
    CHECK_INT(ok, 20);
    CHECK_INT(srv_count(srv), 20);
    srv_stop(srv);
}

/* ---- streams ---- */

struct sink {
    char data[4096];
    size_t len;
    int headers_calls;
    int header_status;
    char content_type[64];
    int data_before_headers;
    int data_calls;
    int done_calls;
    int done_rc;
    int done_status;
    int abort_on_data;
    int remove_self_on_data;
    int remove_self_on_headers;
    struct spell_http_multi *m;
    struct spell_http_stream *remove_on_headers;    /* another stream */
    struct spell_http_stream_config *add_on_done;   /* started from on_done */
    struct spell_http_stream *self;
    /* Location and Retry-After as read from inside on_done. */
    char done_location[128];
    char done_retry_after[32];
};

static int sink_headers(struct spell_http_stream *s, int status, void *user)
{
    struct sink *k = user;
    k->headers_calls++;
    k->header_status = status;
    const char *ct = spell_http_stream_header(s, "content-type");
    snprintf(k->content_type, sizeof k->content_type, "%s", ct ? ct : "");
    if (k->remove_on_headers) {
        spell_http_multi_remove(k->m, k->remove_on_headers);
        k->remove_on_headers = NULL;
    }
    if (k->remove_self_on_headers)
        CHECK_INT(spell_http_multi_remove(k->m, s), SPELL_OK);
    return 0;
}

static int sink_data(struct spell_http_stream *s, const char *data, size_t len, void *user)
{
    struct sink *k = user;
    if (!k->headers_calls)
        k->data_before_headers = 1;
    k->data_calls++;
    if (len > sizeof k->data - k->len)
        len = sizeof k->data - k->len;
    memcpy(k->data + k->len, data, len);
    k->len += len;
    if (k->remove_self_on_data) {
        CHECK_INT(spell_http_multi_remove(k->m, s), SPELL_OK);
        CHECK_INT(spell_http_multi_remove(k->m, s), SPELL_OK);  /* twice is harmless */
        return 0;
    }
    return k->abort_on_data;
}

static void sink_done(struct spell_http_stream *s, int rc, int status, const char *error,
                      void *user)
{
    struct sink *k = user;
    k->done_calls++;
    k->done_rc = rc;
    k->done_status = status;
    CHECK(error != NULL);
    CHECK(spell_http_stream_user(s) == user);
    const char *loc = spell_http_stream_header(s, "Location");
    const char *ra = spell_http_stream_header(s, "retry-after");
    snprintf(k->done_location, sizeof k->done_location, "%s", loc ? loc : "");
    snprintf(k->done_retry_after, sizeof k->done_retry_after, "%s", ra ? ra : "");
    if (k->add_on_done) {
        CHECK_INT(spell_http_multi_add(k->m, k->add_on_done, NULL), SPELL_OK);
        k->add_on_done = NULL;
    }
}

static void stream_cfg(struct spell_http_stream_config *cfg, const char *url, struct sink *k,
                       struct spell_http_multi *m)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->url = url;
    cfg->on_headers = sink_headers;
    cfg->on_data = sink_data;
    cfg->on_done = sink_done;
    cfg->user = k;
    k->m = m;
}

/* Drives the loop until no stream is left, or 10 s pass. */
static void run_loop(struct spell_http_multi *m)
{
    long end = now_ms() + 10000;
    int running = 1;
    CHECK_INT(spell_http_multi_perform(m, &running), SPELL_OK);
    while (running > 0 && now_ms() < end) {
        CHECK_INT(spell_http_multi_poll(m, NULL, 0, 200), SPELL_OK);
        CHECK_INT(spell_http_multi_perform(m, &running), SPELL_OK);
    }
    CHECK_INT(running, 0);
    CHECK_INT(spell_http_multi_count(m), 0);
}

static const char sse_head[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Connection: close\r\n\r\n";
static const char sse_head_chunked[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

/* Two streams with pauses: one read until close, one chunked. */
static void push_two_streams(struct server *srv, int pause_ms)
{
    struct canned *a = srv_push(srv, "/a", 1);
    seg_add(a, sse_head, strlen(sse_head), 0);
    SEGL(a, "id: 1\ndata: a1\n\n", pause_ms);
    SEGL(a, "id: 2\ndata: a2\n\n", pause_ms);
    SEGL(a, "id: 3\ndata: a3\n\n", pause_ms);
    struct canned *b = srv_push(srv, "/b", 1);
    seg_add(b, sse_head_chunked, strlen(sse_head_chunked), 0);
    SEGL(b, "a\r\ndata: b1\n\n\r\n", pause_ms);
    SEGL(b, "a\r\ndata: b2\n\n\r\n", pause_ms);
    SEGL(b, "a\r\ndata: b3\n\n\r\n0\r\n\r\n", pause_ms);
}

static void test_stream_two_concurrent(void)
{
    struct server *srv = srv_start();
    char ua[128], ub[128], v[128];
    url_of(ua, sizeof ua, srv, "/a");
    url_of(ub, sizeof ub, srv, "/b");
    push_two_streams(srv, 60);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink ka = {0}, kb = {0};
    struct spell_http_stream_config ca, cb;
    static const char *const hdr[] = {"Accept: text/event-stream", "Last-Event-ID: 7"};
    stream_cfg(&ca, ua, &ka, m);
    stream_cfg(&cb, ub, &kb, m);
    ca.bearer = "tok_stream";
    ca.headers = hdr;
    ca.n_headers = 2;
    cb.low_speed_bytes = 1;
    cb.low_speed_secs = 30;
    struct spell_http_stream *sa = NULL, *sb = NULL;
    CHECK_INT(spell_http_multi_add(m, &ca, &sa), SPELL_OK);
    CHECK_INT(spell_http_multi_add(m, &cb, &sb), SPELL_OK);
    CHECK(sa && sb && sa != sb);
    CHECK_INT(spell_http_multi_count(m), 2);
    run_loop(m);
    CHECK_MEM(ka.data, ka.len, "id: 1\ndata: a1\n\nid: 2\ndata: a2\n\nid: 3\ndata: a3\n\n", 48);
    CHECK_MEM(kb.data, kb.len, "data: b1\n\ndata: b2\n\ndata: b3\n\n", 30);
    struct sink *ks[2] = {&ka, &kb};
    for (int i = 0; i < 2; i++) {
        CHECK_INT(ks[i]->headers_calls, 1);
        CHECK_INT(ks[i]->header_status, 200);
        CHECK_STR(ks[i]->content_type, "text/event-stream");
        CHECK_INT(ks[i]->data_before_headers, 0);
        CHECK_INT(ks[i]->done_calls, 1);
        CHECK_INT(ks[i]->done_rc, SPELL_OK);
        CHECK_INT(ks[i]->done_status, 200);
    }
    CHECK_INT(srv_count(srv), 2);
    int ia = strcmp(srv->reqs[0].path, "/a") == 0 ? 0 : 1;
    CHECK_STR(rec_header(srv, ia, "Authorization", v, sizeof v), "Bearer tok_stream");
    CHECK_STR(rec_header(srv, ia, "Last-Event-ID", v, sizeof v), "7");
    CHECK_STR(rec_header(srv, ia, "Accept", v, sizeof v), "text/event-stream");
    CHECK_STR(rec_header(srv, 1 - ia, "User-Agent", v, sizeof v), "spell/0.1.0");
    spell_http_multi_free(m);
    srv_stop(srv);
}

static void test_stream_204_and_error_body(void)
{
    struct server *srv = srv_start();
    char u1[128], u2[128];
    url_of(u1, sizeof u1, srv, "/done");
    url_of(u2, sizeof u2, srv, "/denied");
    SEGL(srv_push(srv, "/done", 0), "HTTP/1.1 204 No Content\r\n\r\n", 0);
    static const char denied[] =
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 36\r\n"
        "\r\n{\"error\":{\"code\":\"UNAUTHORIZED\"}}\n\n\n";
    seg_add(srv_push(srv, "/denied", 0), denied, strlen(denied), 0);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink k1 = {0}, k2 = {0};
    struct spell_http_stream_config c1, c2;
    stream_cfg(&c1, u1, &k1, m);
    stream_cfg(&c2, u2, &k2, m);
    CHECK_INT(spell_http_multi_add(m, &c1, NULL), SPELL_OK);
    CHECK_INT(spell_http_multi_add(m, &c2, NULL), SPELL_OK);
    run_loop(m);
    CHECK_INT(k1.headers_calls, 1);
    CHECK_INT(k1.header_status, 204);
    CHECK_INT(k1.data_calls, 0);
    CHECK_INT(k1.len, 0);
    CHECK_INT(k1.done_calls, 1);
    CHECK_INT(k1.done_rc, SPELL_OK);
    CHECK_INT(k1.done_status, 204);
    CHECK_INT(k2.header_status, 401);
    CHECK_STR(k2.content_type, "application/json");
    CHECK_MEM(k2.data, k2.len, "{\"error\":{\"code\":\"UNAUTHORIZED\"}}\n\n\n", 36);
    CHECK_INT(k2.done_rc, SPELL_OK);
    CHECK_INT(k2.done_status, 401);
    spell_http_multi_free(m);
    srv_stop(srv);
}

static void test_stream_abort_one(void)
{
    struct server *srv = srv_start();
    char ua[128], ub[128];
    url_of(ua, sizeof ua, srv, "/a");
    url_of(ub, sizeof ub, srv, "/b");
    push_two_streams(srv, 40);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink ka = {0}, kb = {0};
    struct spell_http_stream_config ca, cb;
    stream_cfg(&ca, ua, &ka, m);
    stream_cfg(&cb, ub, &kb, m);
    ka.abort_on_data = 1;
    CHECK_INT(spell_http_multi_add(m, &ca, NULL), SPELL_OK);
    CHECK_INT(spell_http_multi_add(m, &cb, NULL), SPELL_OK);
    run_loop(m);
    CHECK_INT(ka.data_calls, 1);
    CHECK_MEM(ka.data, ka.len, "id: 1\ndata: a1\n\n", 16);
    CHECK_INT(ka.done_calls, 1);
    CHECK_INT(ka.done_rc, SPELL_EABORT);
    CHECK_INT(kb.done_calls, 1);
    CHECK_INT(kb.done_rc, SPELL_OK);
    CHECK_MEM(kb.data, kb.len, "data: b1\n\ndata: b2\n\ndata: b3\n\n", 30);
    spell_http_multi_free(m);
    srv_stop(srv);
}

static void test_stream_remove_in_callbacks(void)
{
    struct server *srv = srv_start();
    char ua[128], ub[128], uc[128];
    url_of(ua, sizeof ua, srv, "/a");
    url_of(ub, sizeof ub, srv, "/b");
    url_of(uc, sizeof uc, srv, "/c");
    push_two_streams(srv, 40);
    struct canned *c = srv_push(srv, "/c", 1);
    seg_add(c, sse_head, strlen(sse_head), 0);
    SEGL(c, "data: c1\n\n", 2000);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink ka = {0}, kb = {0}, kc = {0};
    struct spell_http_stream_config ca, cb, cc;
    stream_cfg(&ca, ua, &ka, m);
    stream_cfg(&cb, ub, &kb, m);
    stream_cfg(&cc, uc, &kc, m);
    struct spell_http_stream *sa = NULL, *sc = NULL;
    CHECK_INT(spell_http_multi_add(m, &ca, &sa), SPELL_OK);
    CHECK_INT(spell_http_multi_add(m, &cc, &sc), SPELL_OK);
    /* a removes itself at its first data; b removes c from its header
     * callback; c's answer is held back so it is still open then. */
    ka.remove_self_on_data = 1;
    kb.remove_on_headers = sc;
    CHECK_INT(spell_http_multi_add(m, &cb, NULL), SPELL_OK);
    run_loop(m);
    CHECK_INT(ka.data_calls, 1);
    CHECK_INT(ka.done_calls, 0);
    CHECK_INT(kc.data_calls, 0);
    CHECK_INT(kc.done_calls, 0);
    CHECK_INT(kb.done_calls, 1);
    CHECK_INT(kb.done_rc, SPELL_OK);
    CHECK_MEM(kb.data, kb.len, "data: b1\n\ndata: b2\n\ndata: b3\n\n", 30);
    CHECK_INT(spell_http_multi_remove(m, NULL), SPELL_EINVAL);
    spell_http_multi_free(m);
    srv_stop(srv);
}

static void test_stream_remove_outside_and_add_in_done(void)
{
    struct server *srv = srv_start();
    char u1[128], u2[128];
    url_of(u1, sizeof u1, srv, "/one");
    url_of(u2, sizeof u2, srv, "/two");
    SEGL(srv_push(srv, "/one", 0), "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", 0);
    SEGL(srv_push(srv, "/two", 0), "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", 0);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink k0 = {0}, k1 = {0}, k2 = {0};
    struct spell_http_stream_config c0, c1, c2;
    stream_cfg(&c0, u1, &k0, m);
    stream_cfg(&c1, u1, &k1, m);
    stream_cfg(&c2, u2, &k2, m);
    struct spell_http_stream *s0 = NULL;
    CHECK_INT(spell_http_multi_add(m, &c0, &s0), SPELL_OK);
    CHECK_INT(spell_http_multi_remove(m, s0), SPELL_OK);
    CHECK_INT(spell_http_multi_count(m), 0);
    k1.add_on_done = &c2;
    CHECK_INT(spell_http_multi_add(m, &c1, NULL), SPELL_OK);
    run_loop(m);
    CHECK_INT(k0.headers_calls + k0.data_calls + k0.done_calls, 0);
    CHECK_MEM(k1.data, k1.len, "one", 3);
    CHECK_INT(k1.done_rc, SPELL_OK);
    CHECK_MEM(k2.data, k2.len, "two", 3);
    CHECK_INT(k2.done_calls, 1);
    CHECK_INT(k2.done_rc, SPELL_OK);
    spell_http_multi_free(m);
    srv_stop(srv);
}

static void test_stream_failures(void)
{
    struct server *srv = srv_start();
    char u1[128], u2[128], u3[128];
    static char over_raw[4096];
    snprintf(u1, sizeof u1, "http://127.0.0.1:%d/", dead_port());
    url_of(u2, sizeof u2, srv, "/many");
    url_of(u3, sizeof u3, srv, "/slow");
    size_t n = (size_t)snprintf(over_raw, sizeof over_raw, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 101; i++)
        n += (size_t)snprintf(over_raw + n, sizeof over_raw - n, "X-%d: %d\r\n", i, i);
    snprintf(over_raw + n, sizeof over_raw - n, "Content-Length: 0\r\n\r\n");
    seg_add(srv_push(srv, "/many", 1), over_raw, strlen(over_raw), 0);
    struct canned *slow = srv_push(srv, "/slow", 1);
    seg_add(slow, sse_head, strlen(sse_head), 0);
    SEGL(slow, "data: late\n\n", 3000);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink k1 = {0}, k2 = {0}, k3 = {0};
    struct spell_http_stream_config c1, c2, c3;
    stream_cfg(&c1, u1, &k1, m);
    stream_cfg(&c2, u2, &k2, m);
    stream_cfg(&c3, u3, &k3, m);
    c3.timeout_ms = 300;
    CHECK_INT(spell_http_multi_add(m, &c1, NULL), SPELL_OK);
    CHECK_INT(spell_http_multi_add(m, &c2, NULL), SPELL_OK);
    CHECK_INT(spell_http_multi_add(m, &c3, NULL), SPELL_OK);
    run_loop(m);
    CHECK_INT(k1.done_rc, SPELL_ENET);
    CHECK_INT(k1.headers_calls, 0);
    CHECK_INT(k2.done_rc, SPELL_ETOOBIG);
    CHECK_INT(k2.headers_calls, 0);
    CHECK_INT(k3.headers_calls, 1);
    CHECK_INT(k3.done_rc, SPELL_ETIMEOUT);

    /* Bad arguments. */
    struct spell_http_stream_config bad;
    stream_cfg(&bad, "ftp://127.0.0.1/", &k1, m);
    CHECK_INT(spell_http_multi_add(m, &bad, NULL), SPELL_EINVAL);
    bad.url = NULL;
    CHECK_INT(spell_http_multi_add(m, &bad, NULL), SPELL_EINVAL);
    bad.url = u2;
    bad.bearer = "a\nb";
    CHECK_INT(spell_http_multi_add(m, &bad, NULL), SPELL_EINVAL);
    bad.bearer = NULL;
    bad.timeout_ms = -1;
    CHECK_INT(spell_http_multi_add(m, &bad, NULL), SPELL_EINVAL);
    CHECK_INT(spell_http_multi_add(NULL, &bad, NULL), SPELL_EINVAL);
    CHECK_INT(spell_http_multi_add(m, NULL, NULL), SPELL_EINVAL);
    CHECK_INT(spell_http_multi_count(m), 0);
    struct spell_pollfd pfd = {0, SPELL_POLLIN, 0};
    CHECK_INT(spell_http_multi_poll(m, &pfd, 1, -1), SPELL_EINVAL);
    CHECK_INT(spell_http_multi_poll(m, NULL, 1, 0), SPELL_EINVAL);
    CHECK_INT(spell_http_multi_poll(m, &pfd, SPELL_HTTP_MULTI_MAX_EXTRA + 1, 0), SPELL_ETOOBIG);
    CHECK_INT(spell_http_multi_poll(NULL, NULL, 0, 0), SPELL_EINVAL);
    CHECK_INT(spell_http_multi_perform(NULL, NULL), SPELL_EINVAL);
    CHECK_INT(spell_http_multi_new(NULL), SPELL_EINVAL);
    spell_http_multi_free(m);
    spell_http_multi_free(NULL);
    srv_stop(srv);
}

static void test_stream_free_while_open(void)
{
    struct server *srv = srv_start();
    char ua[128], ub[128];
    url_of(ua, sizeof ua, srv, "/a");
    url_of(ub, sizeof ub, srv, "/b");
    push_two_streams(srv, 500);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink ka = {0}, kb = {0};
    struct spell_http_stream_config ca, cb;
    stream_cfg(&ca, ua, &ka, m);
    stream_cfg(&cb, ub, &kb, m);
    CHECK_INT(spell_http_multi_add(m, &ca, NULL), SPELL_OK);
    CHECK_INT(spell_http_multi_add(m, &cb, NULL), SPELL_OK);
    long end = now_ms() + 5000;
    while ((ka.headers_calls == 0 || kb.headers_calls == 0) && now_ms() < end) {
        spell_http_multi_poll(m, NULL, 0, 100);
        spell_http_multi_perform(m, NULL);
    }
    CHECK_INT(ka.headers_calls, 1);
    CHECK_INT(kb.headers_calls, 1);
    spell_http_multi_free(m);
    CHECK_INT(ka.done_calls + kb.done_calls, 0);
    srv_stop(srv);
}

struct poke {
    int fd;                             /* pipe end to write, or -1 */
    struct spell_http_multi *m;         /* multi to wake, or NULL */
};

static void *poke_later(void *arg)
{
    struct poke *p = arg;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    if (p->fd >= 0 && write(p->fd, "x", 1) != 1)
        abort();
    if (p->m)
        spell_http_multi_wakeup(p->m);
    return NULL;
}

static void test_poll_extra_fd_and_wakeup(void)
{
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    struct spell_pollfd extra[2] = {{fds[0], SPELL_POLLIN, 0}, {fds[1], 0, 0}};

    /* Nothing ready: the short timeout passes. */
    CHECK_INT(spell_http_multi_poll(m, extra, 2, 10), SPELL_OK);
    CHECK_INT(extra[0].revents, 0);

    /* Another thread writes to the pipe while the loop waits. */
    struct poke p = {fds[1], NULL};
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, poke_later, &p), 0);
    long t0 = now_ms();
    CHECK_INT(spell_http_multi_poll(m, extra, 2, 10000), SPELL_OK);
    CHECK(now_ms() - t0 < 5000);
    pthread_join(t, NULL);
    CHECK_INT(extra[0].revents & SPELL_POLLIN, SPELL_POLLIN);
    CHECK_INT(extra[1].revents, 0);
    char c;
    CHECK_INT(read(fds[0], &c, 1), 1);

    /* A wakeup from another thread ends the wait too. */
    struct poke w = {-1, m};
    CHECK_INT(pthread_create(&t, NULL, poke_later, &w), 0);
    t0 = now_ms();
    CHECK_INT(spell_http_multi_poll(m, extra, 1, 10000), SPELL_OK);
    CHECK(now_ms() - t0 < 5000);
    pthread_join(t, NULL);
    CHECK_INT(extra[0].revents, 0);
    int running = -1;
    CHECK_INT(spell_http_multi_perform(m, &running), SPELL_OK);
    CHECK_INT(running, 0);
    CHECK_INT(spell_http_multi_wakeup(NULL), SPELL_EINVAL);
    close(fds[0]);
    close(fds[1]);
    spell_http_multi_free(m);
}

/* A POST with a JSON body, a bearer and an Idempotency-Key through the
 * loop; the body is the stream's own copy, so the caller's may change
 * at once.  The 202's header fields are still readable in on_done. */
static void test_stream_post_json(void)
{
    struct server *srv = srv_start();
    char url[128], v[256];
    url_of(url, sizeof url, srv, "/v1/spells/thumbnail:cast");
    static const char accepted[] =
        "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
        "Location: /v1/casts/cst_1\r\nContent-Length: 40\r\n\r\n"
        "{\"cast_id\":\"cst_1\",\"status\":\"queued\"}\n\n\n";
    seg_add(srv_push(srv, "/v1/spells/thumbnail:cast", 0), accepted, strlen(accepted), 0);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink k = {0};
    struct spell_http_stream_config c;
    stream_cfg(&c, url, &k, m);
    char json[64];
    snprintf(json, sizeof json, "%s", "{\"inputs\":{\"url\":\"https://x\"}}");
    size_t json_len = strlen(json);
    static const char *const hdr[] = {"Idempotency-Key: k0123456789abcdef0123456789abcde"};
    c.method = "POST";
    c.body = json;
    c.body_len = json_len;
    c.bearer = "tok_post";
    c.headers = hdr;
    c.n_headers = 1;
    c.timeout_ms = 10000;
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_OK);
    memset(json, 'z', sizeof json - 1);
    run_loop(m);
    CHECK_INT(k.headers_calls, 1);
    CHECK_INT(k.header_status, 202);
    CHECK_STR(k.content_type, "application/json");
    CHECK_INT(k.done_calls, 1);
    CHECK_INT(k.done_rc, SPELL_OK);
    CHECK_INT(k.done_status, 202);
    CHECK_MEM(k.data, k.len, "{\"cast_id\":\"cst_1\",\"status\":\"queued\"}\n\n\n", 40);
    CHECK_STR(k.done_location, "/v1/casts/cst_1");
    CHECK_STR(k.done_retry_after, "");
    CHECK_INT(srv_count(srv), 1);
    CHECK_STR(srv->reqs[0].method, "POST");
    CHECK_STR(srv->reqs[0].path, "/v1/spells/thumbnail:cast");
    CHECK_INT(srv->reqs[0].body_len, json_len);
    CHECK_STR(srv->reqs[0].body, "{\"inputs\":{\"url\":\"https://x\"}}");
    CHECK_STR(rec_header(srv, 0, "Content-Type", v, sizeof v), "application/json");
    CHECK_STR(rec_header(srv, 0, "Content-Length", v, sizeof v), "30");
    CHECK_STR(rec_header(srv, 0, "Authorization", v, sizeof v), "Bearer tok_post");
    CHECK_STR(rec_header(srv, 0, "Idempotency-Key", v, sizeof v),
              "k0123456789abcdef0123456789abcde");
    CHECK_STR(rec_header(srv, 0, "User-Agent", v, sizeof v), "spell/0.1.0");
    CHECK(rec_header(srv, 0, "Expect", v, sizeof v) == NULL);
    spell_http_multi_free(m);
    srv_stop(srv);
}

/* Bodies with NUL bytes and invalid UTF-8 go out byte for byte; a POST
 * without a body sends an empty one with no form type; other methods
 * keep their names; a 503's Retry-After is readable at the end; the
 * caller's GET configs (method NULL) are unchanged. */
static void test_stream_binary_body_and_methods(void)
{
    struct server *srv = srv_start();
    char url[128], v[256];
    url_of(url, sizeof url, srv, "/x");
    SEGL(srv_push(srv, NULL, 0), "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nb\0\xff\n", 0);
    srv_reply(srv, "HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    srv_reply(srv, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget");
    static const char bin[] = {'x', 0, 'y', (char)0xc3, (char)0x28, 0, '\n'};
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink k[4];
    memset(k, 0, sizeof k);
    struct spell_http_stream_config c;

    stream_cfg(&c, url, &k[0], m);
    c.method = "PUT";
    c.body = bin;
    c.body_len = sizeof bin;
    c.content_type = "application/octet-stream";
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_OK);
    run_loop(m);
    CHECK_INT(k[0].done_rc, SPELL_OK);
    CHECK_MEM(k[0].data, k[0].len, "b\0\xff\n", 4);
    CHECK_STR(srv->reqs[0].method, "PUT");
    CHECK_STR(rec_header(srv, 0, "Content-Type", v, sizeof v), "application/octet-stream");
    CHECK_MEM(srv->reqs[0].body, srv->reqs[0].body_len, bin, sizeof bin);

    stream_cfg(&c, url, &k[1], m);
    c.method = "POST";
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_OK);
    run_loop(m);
    CHECK_INT(k[1].done_rc, SPELL_OK);
    CHECK_INT(k[1].done_status, 503);
    CHECK_STR(k[1].done_retry_after, "7");
    CHECK_INT(k[1].len, 0);
    CHECK_STR(srv->reqs[1].method, "POST");
    CHECK_STR(rec_header(srv, 1, "Content-Length", v, sizeof v), "0");
    CHECK(rec_header(srv, 1, "Content-Type", v, sizeof v) == NULL);
    CHECK_INT(srv_count(srv), 2);       /* a 503 is not retried here */

    stream_cfg(&c, url, &k[2], m);
    c.method = "DELETE";
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_OK);
    run_loop(m);
    CHECK_MEM(k[2].data, k[2].len, "ok", 2);
    CHECK_STR(srv->reqs[2].method, "DELETE");
    CHECK_INT(srv->reqs[2].body_len, 0);

    stream_cfg(&c, url, &k[3], m);
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_OK);
    run_loop(m);
    CHECK_MEM(k[3].data, k[3].len, "get", 3);
    CHECK_STR(srv->reqs[3].method, "GET");
    CHECK(rec_header(srv, 3, "Content-Type", v, sizeof v) == NULL);
    spell_http_multi_free(m);
    srv_stop(srv);
}

/* A 202 whose body comes in pieces, with pauses, is read to its end. */
static void test_stream_202_read_fully(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/v1/casts/cst_1:cancel");
    struct canned *a = srv_push(srv, NULL, 0);
    SEGL(a, "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
            "Content-Length: 30\r\n\r\n", 0);
    SEGL(a, "{\"cast_id\":", 40);
    SEGL(a, "\"cst_1\",", 40);
    SEGL(a, "\"status\":\"x\"}", 40);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink k = {0};
    struct spell_http_stream_config c;
    stream_cfg(&c, url, &k, m);
    c.method = "POST";
    c.body = "";
    c.body_len = 0;
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_OK);
    run_loop(m);
    CHECK_INT(k.header_status, 202);
    CHECK_INT(k.data_before_headers, 0);
    CHECK(k.data_calls >= 1);
    CHECK_INT(k.done_calls, 1);
    CHECK_INT(k.done_rc, SPELL_OK);
    CHECK_MEM(k.data, k.len, "{\"cast_id\":\"cst_1\",\"status\":\"x\"}", 30);
    CHECK_STR(srv->reqs[0].method, "POST");
    CHECK_INT(srv->reqs[0].body_len, 0);
    spell_http_multi_free(m);
    srv_stop(srv);
}

/* A POST's answer stopped mid-body: by its data callback (on_done says
 * SPELL_EABORT), by removing it (no on_done at all), and by the server
 * closing early (SPELL_ENET); the loop goes on with other streams. */
static void test_stream_post_abort_mid_body(void)
{
    struct server *srv = srv_start();
    char ua[128], ub[128], uc[128];
    url_of(ua, sizeof ua, srv, "/a");
    url_of(ub, sizeof ub, srv, "/b");
    url_of(uc, sizeof uc, srv, "/c");
    static const char head[] = "HTTP/1.1 202 Accepted\r\nContent-Length: 20\r\n\r\n";
    struct canned *a = srv_push(srv, "/a", 1);
    seg_add(a, head, strlen(head), 0);
    SEGL(a, "0123456789", 0);
    SEGL(a, "abcdefghij", 300);
    struct canned *b = srv_push(srv, "/b", 1);
    seg_add(b, head, strlen(head), 0);
    SEGL(b, "0123456789", 0);
    SEGL(b, "abcdefghij", 300);
    struct canned *cc = srv_push(srv, "/c", 1);
    seg_add(cc, head, strlen(head), 0);
    SEGL(cc, "01234", 0);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink ka = {0}, kb = {0}, kc = {0};
    struct spell_http_stream_config c;
    stream_cfg(&c, ua, &ka, m);
    c.method = "POST";
    c.body = "{\"a\":1}";
    c.body_len = 7;
    ka.abort_on_data = 1;
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_OK);
    stream_cfg(&c, ub, &kb, m);
    c.method = "POST";
    c.body = "{\"b\":1}";
    c.body_len = 7;
    kb.remove_self_on_data = 1;
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_OK);
    stream_cfg(&c, uc, &kc, m);
    c.method = "POST";
    c.body = "{\"c\":1}";
    c.body_len = 7;
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_OK);
    run_loop(m);
    CHECK_INT(ka.header_status, 202);
    CHECK_INT(ka.data_calls, 1);
    CHECK_MEM(ka.data, ka.len, "0123456789", 10);
    CHECK_INT(ka.done_calls, 1);
    CHECK_INT(ka.done_rc, SPELL_EABORT);
    CHECK_INT(kb.data_calls, 1);
    CHECK_MEM(kb.data, kb.len, "0123456789", 10);
    CHECK_INT(kb.done_calls, 0);
    CHECK_INT(kc.done_calls, 1);
    CHECK_INT(kc.done_rc, SPELL_ENET);
    CHECK_INT(kc.done_status, 202);
    CHECK_MEM(kc.data, kc.len, "01234", 5);
    spell_http_multi_free(m);
    srv_stop(srv);
}

/* Bad methods and bodies are refused at add, and nothing is sent. */
static void test_stream_bad_method_body(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/x");
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink k = {0};
    struct spell_http_stream_config c;
    struct spell_http_stream *s = (struct spell_http_stream *)&k;

    stream_cfg(&c, url, &k, m);
    c.method = "PO ST";
    CHECK_INT(spell_http_multi_add(m, &c, &s), SPELL_EINVAL);
    CHECK(s == NULL);
    c.method = "";
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_EINVAL);
    c.method = "POST\r\nX: y";
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_EINVAL);
    c.method = "AVERYLONGMETHODNAMETHATGOESONANDONPASTTHECAP";
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_EINVAL);
    c.method = "POST";
    c.body = NULL;
    c.body_len = 5;
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_EINVAL);
    c.body = "x";
    c.body_len = SPELL_HTTP_MAX_REQUEST_BODY + 1;
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_ETOOBIG);
    c.body_len = 1;
    c.content_type = "text/plain\r\nX-Evil: 1";
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_EINVAL);
    c.content_type = "";
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_EINVAL);
    c.content_type = NULL;
    c.method = "HEAD";
    CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_EINVAL);
    CHECK_INT(spell_http_multi_count(m), 0);
    int running = -1;
    CHECK_INT(spell_http_multi_perform(m, &running), SPELL_OK);
    CHECK_INT(running, 0);
    CHECK_INT(k.done_calls, 0);
    CHECK_INT(srv_count(srv), 0);
    spell_http_multi_free(m);
    srv_stop(srv);
}

/* ---- many streams, and the loop's corners ---- */

#define MASS_STREAMS 500

/* A one-thread server for MASS_STREAMS streams: it reads every request
 * ("GET /s/<n>") and answers none until all are in, so every stream is
 * open at once; then each gets "data: <n>" and the connection closes. */
struct mass_server {
    int lfd;
    int port;
    atomic_int stop;
    pthread_t thread;
    int answered;               /* read after the join */
};

struct mass_conn {
    int fd;
    char req[1024];
    size_t len;
    int id;                     /* -1 until the request is in */
};

static void *mass_run(void *arg)
{
    struct mass_server *ms = arg;
    struct pollfd *p = calloc(MASS_STREAMS + 1, sizeof *p);
    struct mass_conn *c = calloc(MASS_STREAMS, sizeof *c);
    int n = 0, in = 0;
    while (p && c && !atomic_load(&ms->stop) && in < MASS_STREAMS) {
        p[0] = (struct pollfd){ms->lfd, n < MASS_STREAMS ? POLLIN : 0, 0};
        for (int i = 0; i < n; i++)
            p[i + 1] = (struct pollfd){c[i].fd, c[i].id < 0 ? POLLIN : 0, 0};
        if (poll(p, (nfds_t)n + 1, 20) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (!(p[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) || c[i].id >= 0)
                continue;
            ssize_t r = recv(c[i].fd, c[i].req + c[i].len, sizeof c[i].req - 1 - c[i].len, 0);
            if (r <= 0) {
                atomic_store(&ms->stop, 1);     /* a client gave up: the test fails */
                break;
            }
            c[i].len += (size_t)r;
            c[i].req[c[i].len] = '\0';
            if (strstr(c[i].req, "\r\n\r\n") && sscanf(c[i].req, "GET /s/%d ", &c[i].id) == 1)
                in++;
        }
        if ((p[0].revents & POLLIN) && n < MASS_STREAMS) {
            int fd = accept(ms->lfd, NULL, NULL);
            if (fd >= 0)
                c[n++] = (struct mass_conn){.fd = fd, .id = -1};
        }
    }
    for (int i = 0; c && i < n; i++) {
        if (in == MASS_STREAMS) {
            char out[256];
            int len = snprintf(out, sizeof out,
                               "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Connection: close\r\n\r\ndata: %d\n\n", c[i].id);
            if (send_all(c[i].fd, out, (size_t)len) == 0)
                ms->answered++;
        }
        close(c[i].fd);
    }
    free(p);
    free(c);
    return NULL;
}

/* The descriptors the test needs: a client and a server end per stream. */
static int raise_fd_limit(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur >= want)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        return -1;
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

static void test_stream_many_concurrent(void)
{
    if (raise_fd_limit(2 * MASS_STREAMS + 256) != 0) {
        printf("ok - # SKIP the open-file limit is below %d\n", 2 * MASS_STREAMS + 256);
        return;
    }
    struct mass_server ms = {.lfd = socket(AF_INET, SOCK_STREAM, 0)};
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (ms.lfd < 0 || bind(ms.lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(ms.lfd, MASS_STREAMS) != 0 ||
        getsockname(ms.lfd, (struct sockaddr *)&sa, &sl) != 0)
        abort();
    ms.port = ntohs(sa.sin_port);
    CHECK_INT(pthread_create(&ms.thread, NULL, mass_run, &ms), 0);

    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink *k = calloc(MASS_STREAMS, sizeof *k);
    CHECK(k != NULL);
    static char urls[MASS_STREAMS][64];
    for (int i = 0; k && i < MASS_STREAMS; i++) {
        struct spell_http_stream_config c;
        snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d/s/%d", ms.port, i);
        stream_cfg(&c, urls[i], &k[i], m);
        CHECK_INT(spell_http_multi_add(m, &c, NULL), SPELL_OK);
    }
    CHECK_INT(spell_http_multi_count(m), MASS_STREAMS);
    long end = now_ms() + 60000;
    int running = 1;
    while (running > 0 && now_ms() < end) {
        CHECK_INT(spell_http_multi_poll(m, NULL, 0, 1000), SPELL_OK);
        CHECK_INT(spell_http_multi_perform(m, &running), SPELL_OK);
    }
    CHECK_INT(running, 0);
    atomic_store(&ms.stop, 1);
    pthread_join(ms.thread, NULL);
    close(ms.lfd);
    CHECK_INT(ms.answered, MASS_STREAMS);
    int good = 0;
    for (int i = 0; k && i < MASS_STREAMS; i++) {
        char want[32];
        int len = snprintf(want, sizeof want, "data: %d\n\n", i);
        if (k[i].done_calls == 1 && k[i].done_rc == SPELL_OK && k[i].done_status == 200 &&
            k[i].headers_calls == 1 && k[i].len == (size_t)len &&
            memcmp(k[i].data, want, (size_t)len) == 0)
            good++;
    }
    CHECK_INT(good, MASS_STREAMS);
    spell_http_multi_free(m);
    free(k);
}

/* A stream removed from inside its own callbacks gets no callback after,
 * and its socket leaves the loop: the streams after it, whose sockets
 * may reuse its descriptor numbers, run as usual. */
static void test_stream_remove_self(void)
{
    struct server *srv = srv_start();
    char u1[128], u2[128], u3[128];
    url_of(u1, sizeof u1, srv, "/data");
    url_of(u2, sizeof u2, srv, "/head");
    url_of(u3, sizeof u3, srv, "/after");
    struct canned *d = srv_push(srv, "/data", 1);
    seg_add(d, sse_head, strlen(sse_head), 0);
    SEGL(d, "data: d1\n\n", 0);
    SEGL(d, "data: d2\n\n", 100);
    SEGL(d, "data: d3\n\n", 100);
    struct canned *h = srv_push(srv, "/head", 1);
    seg_add(h, sse_head, strlen(sse_head), 0);
    SEGL(h, "data: h1\n\n", 100);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink k1 = {0}, k2 = {0};
    struct spell_http_stream_config c1, c2;
    stream_cfg(&c1, u1, &k1, m);
    stream_cfg(&c2, u2, &k2, m);
    k1.remove_self_on_data = 1;
    k2.remove_self_on_headers = 1;
    CHECK_INT(spell_http_multi_add(m, &c1, NULL), SPELL_OK);
    CHECK_INT(spell_http_multi_add(m, &c2, NULL), SPELL_OK);
    run_loop(m);
    CHECK_INT(k1.headers_calls, 1);
    CHECK_INT(k1.data_calls, 1);
    CHECK_MEM(k1.data, k1.len, "data: d1\n\n", 10);
    CHECK_INT(k1.done_calls, 0);
    CHECK_INT(k2.headers_calls, 1);
    CHECK_INT(k2.data_calls, 0);
    CHECK_INT(k2.done_calls, 0);

    /* Three more rounds on the same object. */
    for (int round = 0; round < 3; round++) {
        SEGL(srv_push(srv, "/after", 1),
             "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nafter", 0);
        struct sink k3 = {0};
        struct spell_http_stream_config c3;
        stream_cfg(&c3, u3, &k3, m);
        CHECK_INT(spell_http_multi_add(m, &c3, NULL), SPELL_OK);
        run_loop(m);
        CHECK_INT(k3.done_calls, 1);
        CHECK_INT(k3.done_rc, SPELL_OK);
        CHECK_MEM(k3.data, k3.len, "after", 5);
    }
    spell_http_multi_free(m);
    srv_stop(srv);
}

/* The caller's descriptor stays ready on every turn while a stream's data
 * comes in: each poll reports it, and the stream still moves on, so curl's
 * sockets are read in the same turns. */
static void test_poll_extras_with_streams(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/x");
    struct canned *c = srv_push(srv, "/x", 1);
    /* The pauses outlast curl's happy-eyeballs timer and the connect
     * timeout is long, so only the socket's readiness can move the stream
     * on. */
    seg_add(c, sse_head, strlen(sse_head), 0);
    SEGL(c, "data: x1\n\n", 400);
    SEGL(c, "data: x2\n\n", 400);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    CHECK_INT(write(fds[1], "x", 1), 1);
    struct sink k = {0};
    struct spell_http_stream_config cfg;
    stream_cfg(&cfg, url, &k, m);
    cfg.connect_timeout_ms = 60000;
    CHECK_INT(spell_http_multi_add(m, &cfg, NULL), SPELL_OK);
    long end = now_ms() + 10000;
    int running = 1, polls = 0, missed = 0;
    while (running > 0 && now_ms() < end) {
        struct spell_pollfd extra[2] = {{fds[0], SPELL_POLLIN, 0}, {-1, SPELL_POLLIN, 0}};
        CHECK_INT(spell_http_multi_poll(m, extra, 2, 10000), SPELL_OK);
        polls++;
        if (extra[0].revents != SPELL_POLLIN || extra[1].revents != 0)
            missed++;
        CHECK_INT(spell_http_multi_perform(m, &running), SPELL_OK);
    }
    CHECK_INT(running, 0);
    CHECK(polls > 0);
    CHECK_INT(missed, 0);
    CHECK_INT(k.done_rc, SPELL_OK);
    CHECK_MEM(k.data, k.len, "data: x1\n\ndata: x2\n\n", 20);

    /* A pipe whose writer is gone shows as readable, so the caller's read
     * meets the end; one whose reader is gone as readable and writable,
     * so the caller's write meets the error. */
    char b;
    CHECK_INT(read(fds[0], &b, 1), 1);
    close(fds[1]);
    int gone[2];
    CHECK_INT(pipe(gone), 0);
    close(gone[0]);
    struct spell_pollfd hup[2] = {{fds[0], SPELL_POLLIN, 0}, {gone[1], SPELL_POLLOUT, 0}};
    CHECK_INT(spell_http_multi_poll(m, hup, 2, 10000), SPELL_OK);
    CHECK_INT(hup[0].revents, SPELL_POLLIN);
    CHECK_INT(hup[1].revents, SPELL_POLLIN | SPELL_POLLOUT);
    CHECK_INT(read(fds[0], &b, 1), 0);
    close(fds[0]);
    close(gone[1]);
    spell_http_multi_free(m);
    srv_stop(srv);
}

struct waker {
    struct spell_http_multi *m;
    int times;
    atomic_int done;
};

static void *wake_many(void *arg)
{
    struct waker *w = arg;
    for (int i = 0; i < w->times; i++)
        if (spell_http_multi_wakeup(w->m) != SPELL_OK)
            abort();
    atomic_store(&w->done, 1);
    return NULL;
}

/* Wakeups from other threads end a long wait while a stream is open and
 * idle, and leave the stream alone. */
static void test_wakeup_with_open_stream(void)
{
    struct server *srv = srv_start();
    char url[128];
    url_of(url, sizeof url, srv, "/idle");
    struct canned *c = srv_push(srv, "/idle", 1);
    seg_add(c, sse_head, strlen(sse_head), 0);
    SEGL(c, "data: late\n\n", 60000);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink k = {0};
    struct spell_http_stream_config cfg;
    stream_cfg(&cfg, url, &k, m);
    cfg.connect_timeout_ms = 200;
    struct spell_http_stream *s = NULL;
    CHECK_INT(spell_http_multi_add(m, &cfg, &s), SPELL_OK);
    long end = now_ms() + 10000;
    while (k.headers_calls == 0 && now_ms() < end) {
        CHECK_INT(spell_http_multi_poll(m, NULL, 0, 200), SPELL_OK);
        CHECK_INT(spell_http_multi_perform(m, NULL), SPELL_OK);
    }
    CHECK_INT(k.headers_calls, 1);

    /* Idle, the loop sleeps in its poll, before and after curl's connect
     * timer (200 ms) is spent: no spinning on a timer that has fired. */
    long t0 = now_ms();
    int turns = 0;
    while (now_ms() - t0 < 600) {
        CHECK_INT(spell_http_multi_poll(m, NULL, 0, 100), SPELL_OK);
        CHECK_INT(spell_http_multi_perform(m, NULL), SPELL_OK);
        turns++;
    }
    CHECK(turns <= 20);

    /* One thread, then four at once, each ending one long wait. */
    for (int nthreads = 1; nthreads <= 4; nthreads += 3) {
        struct waker w[4];
        pthread_t t[4];
        for (int i = 0; i < nthreads; i++) {
            w[i] = (struct waker){.m = m, .times = 100};
            CHECK_INT(pthread_create(&t[i], NULL, wake_many, &w[i]), 0);
        }
        t0 = now_ms();
        int running = -1;
        CHECK_INT(spell_http_multi_poll(m, NULL, 0, 60000), SPELL_OK);
        CHECK(now_ms() - t0 < 30000);
        CHECK_INT(spell_http_multi_perform(m, &running), SPELL_OK);
        CHECK_INT(running, 1);
        for (int i = 0; i < nthreads; i++)
            pthread_join(t[i], NULL);
        /* Wakeups sent before the poll make it return at once too. */
        CHECK_INT(spell_http_multi_wakeup(m), SPELL_OK);
        t0 = now_ms();
        CHECK_INT(spell_http_multi_poll(m, NULL, 0, 60000), SPELL_OK);
        CHECK(now_ms() - t0 < 30000);
    }
    CHECK_INT(k.data_calls, 0);
    CHECK_INT(k.done_calls, 0);
    CHECK_INT(spell_http_multi_count(m), 1);
    CHECK_INT(spell_http_multi_remove(m, s), SPELL_OK);
    CHECK_INT(spell_http_multi_count(m), 0);
    spell_http_multi_free(m);
    srv_stop(srv);
}

/* With nothing on the wire, only curl's timer can end a stream: the poll
 * must wake for it long before the caller's own timeout. */
static void test_stream_timeout_without_activity(void)
{
    struct server *srv = srv_start();
    char u1[128], u2[128];
    url_of(u1, sizeof u1, srv, "/silent");
    url_of(u2, sizeof u2, srv, "/stalled");
    SEGL(srv_push(srv, "/silent", 1), "HTTP/1.1 200 OK\r\n\r\n", 60000);
    struct canned *c = srv_push(srv, "/stalled", 1);
    seg_add(c, sse_head, strlen(sse_head), 0);
    SEGL(c, "data: late\n\n", 60000);
    struct spell_http_multi *m = NULL;
    CHECK_INT(spell_http_multi_new(&m), SPELL_OK);
    struct sink k1 = {0}, k2 = {0};
    struct spell_http_stream_config c1, c2;
    stream_cfg(&c1, u1, &k1, m);
    stream_cfg(&c2, u2, &k2, m);
    c1.timeout_ms = 200;
    c2.low_speed_bytes = 1000;
    c2.low_speed_secs = 1;
    CHECK_INT(spell_http_multi_add(m, &c1, NULL), SPELL_OK);
    CHECK_INT(spell_http_multi_add(m, &c2, NULL), SPELL_OK);
    long t0 = now_ms();
    int running = 1, turns = 0;
    CHECK_INT(spell_http_multi_perform(m, &running), SPELL_OK);
    while (running > 0 && turns < 1000) {
        CHECK_INT(spell_http_multi_poll(m, NULL, 0, 60000), SPELL_OK);
        CHECK_INT(spell_http_multi_perform(m, &running), SPELL_OK);
        turns++;
    }
    CHECK_INT(running, 0);
    CHECK(now_ms() - t0 < 30000);
    CHECK_INT(k1.headers_calls, 0);
    CHECK_INT(k1.done_calls, 1);
    CHECK_INT(k1.done_rc, SPELL_ETIMEOUT);
    CHECK_INT(k2.headers_calls, 1);
    CHECK_INT(k2.data_calls, 0);
    CHECK_INT(k2.done_calls, 1);
    CHECK_INT(k2.done_rc, SPELL_ETIMEOUT);
    spell_http_multi_free(m);
    srv_stop(srv);
}

int main(void)
{
    /* The tests talk to 127.0.0.1 directly, whatever the environment says. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    if (spell_http_global_init() != SPELL_OK)
        return 1;
    RUN(test_backoff_values);
    RUN(test_backoff_bounds);
    RUN(test_retry_after_seconds);
    RUN(test_retry_after_dates);
    RUN(test_retry_after_garbage);
    RUN(test_roundtrip);
    RUN(test_bearer_user_agent);
    RUN(test_json_body);
    RUN(test_methods);
    RUN(test_no_redirect);
    RUN(test_body_cap);
    RUN(test_header_caps);
    RUN(test_interim_and_odd_headers);
    RUN(test_hostile_responses);
    RUN(test_timeout);
    RUN(test_refused);
    RUN(test_bad_requests);
    RUN(test_retry_get_on_500);
    RUN(test_post_not_retried);
    RUN(test_post_idempotency_key_retried);
    RUN(test_retry_after_honoured);
    RUN(test_max_attempts);
    RUN(test_parallel_threads);
    RUN(test_stream_two_concurrent);
    RUN(test_stream_204_and_error_body);
    RUN(test_stream_abort_one);
    RUN(test_stream_remove_in_callbacks);
    RUN(test_stream_remove_outside_and_add_in_done);
    RUN(test_stream_failures);
    RUN(test_stream_free_while_open);
    RUN(test_poll_extra_fd_and_wakeup);
    RUN(test_stream_post_json);
    RUN(test_stream_binary_body_and_methods);
    RUN(test_stream_202_read_fully);
    RUN(test_stream_post_abort_mid_body);
    RUN(test_stream_bad_method_body);
    RUN(test_stream_many_concurrent);
    RUN(test_stream_remove_self);
    RUN(test_poll_extras_with_streams);
    RUN(test_wakeup_with_open_stream);
    RUN(test_stream_timeout_without_activity);
    spell_http_global_cleanup();
    return tap_done();
}
