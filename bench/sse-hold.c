/*
 * sse-hold: holds many concurrent Server-Sent Events streams open on one
 * server and measures how every published event reaches every stream.
 *
 * Usage (bench/sse-hold.sh drives it against spell-server and against
 * nginx + Nchan in one run):
 *
 *   sse-hold --port PORT --path PATH [--auth TOKEN] [--streams N]
 *            [--events E] [--interval-ms MS] [--publish PATH | --go-file FILE]
 *            [--rss-pid PID]... [--rss-tree PID]... [--label NAME]
 *            [--connecting K] [--timeout-s S]
 *
 * Data flow.
 *
 *   1. Connect: N non-blocking sockets to 127.0.0.1:PORT, at most K of them
 *      between connect() and the end of the response head at a time (so
 *      the server's listen backlog never overflows), each sending a raw
 *      HTTP/1.1 GET PATH with Accept: text/event-stream.  A stream counts
 *      as open once its 200 response head has arrived.
 *   2. Memory: the RSS of the server processes (VmRSS of every --rss-pid,
 *      and of every --rss-tree process and its direct children) is read
 *      before the first connect and again one second after the last stream
 *      opened; the difference divided by N is the memory per stream.
 *      The servers' CPU time (user + system, from /proc/PID/stat, same
 *      processes) is read when publishing starts and when the last event
 *      has been received: the server's work for the fan-out.
 *   3. Publish: with --publish PATH a second thread POSTs E events to PATH
 *      (Nchan's publisher location), one every interval; each body is
 *      "bench <i> <unix-us>" with the wall-clock time just before the
 *      write.  With --go-file FILE the program creates FILE instead, and
 *      the spell the streams follow (bench/spells/sse-bench.sh) starts
 *      emitting progress whose message is the same "bench <i> <unix-us>".
 *   4. Receive: one epoll thread reads every stream (one read per ready
 *      stream when it comes back short of the buffer, the usual case: no
 *      second read to see EAGAIN), undoes chunked
 *      transfer coding, feeds the bytes to core's SSE parser and, for each
 *      event carrying the marker, records receive time minus the embedded
 *      time (the fan-out latency of that event on that stream).  For
 *      spell-server events it also records the latency against the
 *      event's own `ts` field (milliseconds, parsed by spell_time_parse).
 *      The spread is each receive time minus the first receive of the same
 *      event on any stream: the fan-out alone, without what happens before
 *      the server sends the first copy.
 *   5. A stream is complete when it has all E events; it is closed then,
 *      or when the server ends it (EOF, a terminal cast event).  The run
 *      stops when every stream is complete or failed, or at the deadline.
 *
 * The program prints its figures and one machine-readable RESULT line.
 * It only ever connects to 127.0.0.1, and every count and wait is capped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "spell/buf.h"
#include "spell/clock.h"
#include "spell/sse.h"

#include "stats.h"

/* Caps of the run. */
#define MAX_STREAMS 20000
#define MAX_EVENTS 64               /* events fit a 64-bit mask per stream */
#define MAX_PIDS 8
#define HEAD_MAX ((size_t)16 * 1024)
#define READ_BUF ((size_t)64 * 1024)
#define SSE_LINE_MAX ((size_t)32 * 1024)
#define SSE_EVENT_MAX ((size_t)64 * 1024)
#define CONNECT_RETRIES 3
#define ARG_MAX_LEN 1024

enum conn_state {
    ST_IDLE,
    ST_CONNECTING,
    ST_HEAD,
    ST_BODY,
    ST_DONE,
    ST_FAILED,
};

enum chunk_state {
    CH_SIZE,        /* reading the hex size line */
    CH_EXT,         /* skipping a chunk extension up to LF */
    CH_DATA,        /* chunk_left bytes of data */
    CH_DATA_END,    /* the CRLF after a chunk's data */
    CH_END,         /* the last chunk was seen: the body has ended */
};

struct ctx;

struct conn {
    struct ctx *ctx;
    int fd;
    unsigned char state;
    unsigned char retries;
    unsigned char chunked;
    unsigned char cstate;
    /* The server ended the stream: EOF, the last chunk, or a terminal
     * cast event. */
    unsigned char ended;
    size_t req_off;
    /* The response head while it is being read; freed once parsed. */
    struct spell_buf head;
    uint64_t chunk_left;
    /* Bit i-1 is set once event i has arrived. */
    uint64_t got;
    unsigned nevents;
    unsigned dups;
    /* The SSE id each event arrived with, for reporting duplicates. */
    uint32_t ids[MAX_EVENTS];
    struct spell_sse_parser parser;
};

struct ctx {
    /* Options. */
    int port;
    const char *path;
    const char *auth;
    const char *publish;
    const char *go_file;
    const char *label;
    int streams;
    int events;
    int interval_ms;
    int connecting;
    int timeout_s;
    long rss_pid[MAX_PIDS];
    int n_rss_pid;
    long rss_tree[MAX_PIDS];
    int n_rss_tree;

    struct sockaddr_in addr;
    char *request;
    size_t request_len;
    int ep;
    struct conn *conns;
    char *rbuf;

    /* Wall clock of the read being parsed, in microseconds. */
    int64_t now_us;
    int64_t now_ms;

    int next;           /* next connection to start */
    int in_flight;      /* connections between connect() and head */
    int open;           /* heads with status 200 seen */
    int failed;
    int finished;       /* streams in ST_DONE or ST_FAILED */
    int complete;       /* streams that got all events */
    int ended_early;    /* ended by the server before all events arrived */
    long non200;
    int first_status;
    char first_dup[160];
    char first_error[256];

    struct stats lat;       /* from the embedded microsecond time */
    struct stats lat_ts;    /* from the event's ts field (ms) */
    /* Receive time of event i on stream k at [k * events + i - 1] (0: not
     * received), for the spread: receive time minus the event's first
     * receive on any stream, which leaves out what comes before the
     * server's fan-out (the publisher, Nchan's POST, the spell's pipe, the
     * executor, the store). */
    int64_t *recv_us;
    struct stats spread;
    uint64_t delivered;
    uint64_t dups;

    /* The publisher thread's results. */
    int published;
    int publish_errors;
    int64_t publish_start_us;
};

static void die(const char *msg)
{
    fprintf(stderr, "sse-hold: %s\n", msg);
    exit(2);
}

static int parse_int(const char *s, int lo, int hi, const char *what)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "sse-hold: %s must be %d..%d\n", what, lo, hi);
        exit(2);
    }
    return (int)v;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sse-hold --port PORT --path PATH [--auth TOKEN] [--streams N]\n"
            "                [--events E] [--interval-ms MS] [--publish PATH | --go-file FILE]\n"
            "                [--rss-pid PID]... [--rss-tree PID]... [--label NAME]\n"
            "                [--connecting K] [--timeout-s S]\n");
    exit(2);
}

static void parse_args(struct ctx *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!v)
            usage();
        if (strlen(v) > ARG_MAX_LEN)
            die("argument too long");
        if (strcmp(a, "--port") == 0)
            c->port = parse_int(v, 1, 65535, "--port");
        else if (strcmp(a, "--path") == 0)
            c->path = v;
        else if (strcmp(a, "--auth") == 0)
            c->auth = v;
        else if (strcmp(a, "--publish") == 0)
            c->publish = v;
        else if (strcmp(a, "--go-file") == 0)
            c->go_file = v;
        else if (strcmp(a, "--label") == 0)
            c->label = v;
        else if (strcmp(a, "--streams") == 0)
            c->streams = parse_int(v, 1, MAX_STREAMS, "--streams");
        else if (strcmp(a, "--events") == 0)
            c->events = parse_int(v, 1, MAX_EVENTS, "--events");
        else if (strcmp(a, "--interval-ms") == 0)
            c->interval_ms = parse_int(v, 1, 10000, "--interval-ms");
        else if (strcmp(a, "--connecting") == 0)
            c->connecting = parse_int(v, 1, 4096, "--connecting");
        else if (strcmp(a, "--timeout-s") == 0)
            c->timeout_s = parse_int(v, 5, 600, "--timeout-s");
        else if (strcmp(a, "--rss-pid") == 0 && c->n_rss_pid < MAX_PIDS)
            c->rss_pid[c->n_rss_pid++] = parse_int(v, 1, 1 << 30, "--rss-pid");
        else if (strcmp(a, "--rss-tree") == 0 && c->n_rss_tree < MAX_PIDS)
            c->rss_tree[c->n_rss_tree++] = parse_int(v, 1, 1 << 30, "--rss-tree");
        else
            usage();
    }
    if (!c->port || !c->path || c->path[0] != '/')
        usage();
    if (!!c->publish == !!c->go_file)
        die("give exactly one of --publish and --go-file");
}

/* CPU time (user + system) of a process so far, in ms; -1 when it cannot
 * be read.  Fields 14 and 15 of /proc/PID/stat, after the command name. */
static long proc_cpu_ms(long pid)
{
    char path[64], line[1024];
    const char *p;
    unsigned long long ut, st;
    long hz = sysconf(_SC_CLK_TCK);
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    p = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
    fclose(f);
    if (!p || hz <= 0 ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long)((ut + st) * 1000 / (unsigned long long)hz);
}

/* Sum of probe(pid) over the watched processes (VmRSS in KiB, CPU time in
 * ms); the children of each --rss-tree process are found in
 * /proc/PID/task/PID/children. */
static long server_sum(const struct ctx *c, long (*probe)(long pid), int *nproc)
{
    long total = 0;
    int n = 0;

    for (int i = 0; i < c->n_rss_pid; i++) {
        long k = probe(c->rss_pid[i]);
        if (k >= 0) {
            total += k;
            n++;
        }
    }
    for (int i = 0; i < c->n_rss_tree; i++) {
        char path[96], list[1024];
        long k = probe(c->rss_tree[i]);
        FILE *f;

        if (k >= 0) {
            total += k;
            n++;
        }
        snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", c->rss_tree[i], c->rss_tree[i]);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(list, sizeof list, f)) {
            char *save = NULL;
            for (char *t = strtok_r(list, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
                k = probe(strtol(t, NULL, 10));
                if (k >= 0) {
                    total += k;
                    n++;
                }
            }
        }
        fclose(f);
    }
    *nproc = n;
    return total;
}

/* ---- Events ------------------------------------------------------------ */

static int is_terminal(const char *type)
{
    return strcmp(type, "cast.succeeded") == 0 || strcmp(type, "cast.failed") == 0 ||
           strcmp(type, "cast.canceled") == 0;
}

/* The `ts` string field of a JSON event, in Unix ms; -1 when absent. */
static int64_t event_ts_ms(const char *data)
{
    const char *p = strstr(data, "\"ts\"");
    char text[SPELL_TIME_PARSE_MAX + 1];
    size_t n = 0;
    int64_t ms;

    if (!p)
        return -1;
    p += 4;
    while (*p == ' ' || *p == ':')
        p++;
    if (*p != '"')
        return -1;
    p++;
    while (p[n] && p[n] != '"' && n < SPELL_TIME_PARSE_MAX)
        n++;
    if (p[n] != '"')
        return -1;
    memcpy(text, p, n);
    text[n] = '\0';
    if (spell_time_parse(text, &ms) != 0)
        return -1;
    return ms;
}

static int on_event(const struct spell_sse_event *ev, void *ud)
{
    struct conn *cn = ud;
    struct ctx *c = cn->ctx;
    const char *m = strstr(ev->data, "bench ");
    unsigned idx;
    long long pub_us;

    /* A terminal cast event repeats the last progress message: it ends
     * the stream and is not an event of its own. */
    if (is_terminal(ev->type)) {
        cn->ended = 1;
        return 0;
    }
    if (!m || sscanf(m + 6, "%u %lld", &idx, &pub_us) != 2 || idx < 1 ||
        idx > (unsigned)c->events)
        return 0;
    if (cn->got & ((uint64_t)1 << (idx - 1))) {
        cn->dups++;
        c->dups++;
        if (!c->first_dup[0])
            snprintf(c->first_dup, sizeof c->first_dup,
                     "stream %ld: event %u again with id '%s' (first with id '%u')",
                     (long)(cn - c->conns), idx, ev->id, (unsigned)cn->ids[idx - 1]);
        return 0;
    }
    cn->got |= (uint64_t)1 << (idx - 1);
    cn->ids[idx - 1] = (uint32_t)strtoul(ev->id, NULL, 10);
    cn->nevents++;
    c->recv_us[(size_t)(cn - c->conns) * (size_t)c->events + idx - 1] = c->now_us;
    c->delivered++;
    stats_add(&c->lat, c->now_us - pub_us);
    if (!c->publish) {
        int64_t ts = event_ts_ms(ev->data);
        if (ts >= 0)
            stats_add(&c->lat_ts, (c->now_ms - ts) * 1000);
    }
    return 0;
}

/* ---- Connections ------------------------------------------------------- */

static void conn_close(struct ctx *c, struct conn *cn, int failed)
{
    if (cn->fd >= 0) {
        close(cn->fd);
        cn->fd = -1;
    }
    if (cn->state == ST_CONNECTING || cn->state == ST_HEAD)
        c->in_flight--;
    spell_buf_free(&cn->head);
    spell_sse_parser_free(&cn->parser);
    cn->state = failed ? ST_FAILED : ST_DONE;
    if (failed)
        c->failed++;
    else if (cn->nevents == (unsigned)c->events)
        c->complete++;
    else
        c->ended_early++;
    c->finished++;
}

static void note_error(struct ctx *c, const char *what)
{
    if (!c->first_error[0])
        snprintf(c->first_error, sizeof c->first_error, "%s", what);
}

static int conn_start(struct ctx *c, struct conn *cn)
{
    struct epoll_event ev;
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_error(c, strerror(errno));
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr) != 0 && errno != EINPROGRESS) {
        note_error(c, strerror(errno));
        close(fd);
        return -1;
    }
    cn->fd = fd;
    cn->state = ST_CONNECTING;
    cn->req_off = 0;
    ev.events = EPOLLOUT;
    ev.data.u32 = (uint32_t)(cn - c->conns);
    if (epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        note_error(c, strerror(errno));
        close(fd);
        cn->fd = -1;
        cn->state = ST_IDLE;
        return -1;
    }
    c->in_flight++;
    return 0;
}

/* Starts connections until K are in flight or all have been started. */
static void fill_connections(struct ctx *c)
{
    while (c->in_flight < c->connecting && c->next < c->streams) {
        struct conn *cn = &c->conns[c->next++];
        if (conn_start(c, cn) != 0) {
            cn->state = ST_IDLE;
            conn_close(c, cn, 1);
        }
    }
}

/* A connect or early read failed: retry the stream a few times. */
static void conn_retry(struct ctx *c, struct conn *cn, const char *why)
{
    note_error(c, why);
    close(cn->fd);
    cn->fd = -1;
    c->in_flight--;
    cn->state = ST_IDLE;
    spell_buf_reset(&cn->head);
    if (cn->retries++ < CONNECT_RETRIES && conn_start(c, cn) == 0)
        return;
    cn->state = ST_FAILED;
    c->failed++;
    c->finished++;
    spell_buf_free(&cn->head);
    spell_sse_parser_free(&cn->parser);
}

static void conn_writable(struct ctx *c, struct conn *cn)
{
    struct epoll_event ev;
    int err = 0;
    socklen_t len = sizeof err;
    ssize_t n;

    if (getsockopt(cn->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
        conn_retry(c, cn, strerror(err ? err : errno));
        return;
    }
    while (cn->req_off < c->request_len) {
        n = write(cn->fd, c->request + cn->req_off, c->request_len - cn->req_off);
        if (n < 0) {
            if (errno == EAGAIN)
                return;
            conn_retry(c, cn, strerror(errno));
            return;
        }
        cn->req_off += (size_t)n;
    }
    cn->state = ST_HEAD;
    ev.events = EPOLLIN;
    ev.data.u32 = (uint32_t)(cn - c->conns);
    epoll_ctl(c->ep, EPOLL_CTL_MOD, cn->fd, &ev);
}

/* Feeds body bytes (after transfer decoding) to the SSE parser. */
static int feed_sse(struct conn *cn, const char *p, size_t n)
{
    int rc = spell_sse_feed(&cn->parser, p, n);
    if (rc != 0) {
        note_error(cn->ctx, "SSE parse failure");
        return -1;
    }
    return 0;
}

/* Undoes chunked transfer coding incrementally; 0 or -1 on a malformed
 * body. */
static int body_bytes(struct conn *cn, const char *p, size_t n)
{
    if (!cn->chunked)
        return feed_sse(cn, p, n);
    while (n > 0 && cn->cstate != CH_END) {
        switch (cn->cstate) {
        case CH_SIZE: {
            char ch = *p++;
            int d;
            n--;
            if (ch >= '0' && ch <= '9')
                d = ch - '0';
            else if (ch >= 'a' && ch <= 'f')
                d = ch - 'a' + 10;
            else if (ch >= 'A' && ch <= 'F')
                d = ch - 'A' + 10;
            else if (ch == '\r' || ch == ';' || ch == ' ' || ch == '\t') {
                cn->cstate = CH_EXT;
                break;
            } else if (ch == '\n') {
                cn->cstate = cn->chunk_left ? CH_DATA : CH_END;
                break;
            } else
                return -1;
            if (cn->chunk_left > (UINT64_C(1) << 40))
                return -1;
            cn->chunk_left = cn->chunk_left * 16 + (uint64_t)d;
            break;
        }
        case CH_EXT:
            if (*p == '\n')
                cn->cstate = cn->chunk_left ? CH_DATA : CH_END;
            p++;
            n--;
            break;
        case CH_DATA: {
            size_t take = n < cn->chunk_left ? n : (size_t)cn->chunk_left;
            if (feed_sse(cn, p, take) != 0)
                return -1;
            p += take;
            n -= take;
            cn->chunk_left -= take;
            if (cn->chunk_left == 0)
                cn->cstate = CH_DATA_END;
            break;
        }
        case CH_DATA_END:
            if (*p == '\n') {
                cn->cstate = CH_SIZE;
                cn->chunk_left = 0;
            } else if (*p != '\r')
                return -1;
            p++;
            n--;
            break;
        default:
            return -1;
        }
    }
    if (cn->cstate == CH_END)
        cn->ended = 1;
    return 0;
}

/* Parses the response head once it is complete; returns the number of
 * head bytes, 0 when more are needed, -1 on a refusal. */
static long parse_head(struct ctx *c, struct conn *cn)
{
    const char *h = spell_buf_str(&cn->head);
    const char *end = strstr(h, "\r\n\r\n");
    int status = 0;

    if (!end)
        return cn->head.len >= HEAD_MAX ? -1 : 0;
    if (sscanf(h, "HTTP/1.%*c %d", &status) != 1)
        status = -1;
    if (status != 200) {
        c->non200++;
        if (!c->first_status) {
            c->first_status = status;
            note_error(c, h);
        }
        return -1;
    }
    for (const char *l = strstr(h, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, "transfer-encoding:", 18) == 0) {
            const char *v = l + 20;
            const char *e = strstr(v, "\r\n");
            for (; v + 7 <= e; v++)
                if (strncasecmp(v, "chunked", 7) == 0)
                    cn->chunked = 1;
        }
    }
    return (long)(end - h) + 4;
}

static void conn_readable(struct ctx *c, struct conn *cn)
{
    for (int rounds = 0; rounds < 4; rounds++) {
        ssize_t n = read(cn->fd, c->rbuf, READ_BUF);

        if (n < 0 && errno == EAGAIN)
            return;
        c->now_us = stats_wall_us();
        c->now_ms = c->now_us / 1000;
        if (n <= 0) {
            if (cn->state == ST_HEAD) {
                conn_retry(c, cn, n == 0 ? "connection closed before the head" : strerror(errno));
                return;
            }
            if (n < 0)
                note_error(c, strerror(errno));
            conn_close(c, cn, 0);
            return;
        }
        if (cn->state == ST_HEAD) {
            long used;
            if (spell_buf_add(&cn->head, c->rbuf, (size_t)n) != 0) {
                conn_close(c, cn, 1);
                return;
            }
            used = parse_head(c, cn);
            if (used < 0) {
                conn_close(c, cn, 1);
                return;
            }
            if (used == 0)
                continue;
            c->in_flight--;
            c->open++;
            cn->state = ST_BODY;
            if (body_bytes(cn, cn->head.ptr + used, cn->head.len - (size_t)used) != 0) {
                spell_buf_free(&cn->head);
                conn_close(c, cn, 1);
                return;
            }
            spell_buf_free(&cn->head);
        } else if (body_bytes(cn, c->rbuf, (size_t)n) != 0) {
            conn_close(c, cn, 1);
            return;
        }
        if (cn->nevents == (unsigned)c->events || cn->ended) {
            conn_close(c, cn, 0);
            return;
        }
        /* A short read emptied the socket: the (level-triggered) epoll
         * says when more arrives, so no read just to see EAGAIN. */
        if ((size_t)n < READ_BUF)
            return;
    }
}

static void run_loop(struct ctx *c, int64_t until_mono_us, int stop_when_open)
{
    struct epoll_event evs[1024];

    for (;;) {
        int64_t now = stats_mono_us();
        int timeout, n;

        fill_connections(c);
        if (c->finished >= c->streams)
            return;
        if (stop_when_open && c->next >= c->streams && c->in_flight == 0)
            return;
        if (now >= until_mono_us)
            return;
        timeout = (int)((until_mono_us - now) / 1000) + 1;
        if (timeout > 100)
            timeout = 100;
        n = epoll_wait(c->ep, evs, 1024, timeout);
        for (int i = 0; i < n; i++) {
            struct conn *cn = &c->conns[evs[i].data.u32];
            if (cn->state == ST_CONNECTING)
                conn_writable(c, cn);
            else if (cn->state == ST_HEAD || cn->state == ST_BODY)
                conn_readable(c, cn);
        }
    }
}

/* ---- Publisher --------------------------------------------------------- */

/* One POST of body to the publish path on a fresh connection; 0 when the
 * answer is 2xx.  The send time is taken just before the request is
 * written, after the connection is up. */
static int publish_one(struct ctx *c, int idx)
{
    char req[1024], body[128], resp[512];
    int fd, status = 0, blen, rlen, rc = -1;
    size_t got = 0;
    struct timeval tv = {5, 0};

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr) != 0)
        goto out;
    blen = snprintf(body, sizeof body, "bench %d %" PRId64, idx, stats_wall_us());
    rlen = snprintf(req, sizeof req,
                    "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: text/plain\r\n"
                    "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                    c->publish, c->port, blen, body);
    if (rlen <= 0 || (size_t)rlen >= sizeof req || write(fd, req, (size_t)rlen) != rlen)
        goto out;
    while (got < sizeof resp - 1) {
        ssize_t n = read(fd, resp + got, sizeof resp - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        resp[got] = '\0';
        if (strstr(resp, "\r\n"))
            break;
    }
    resp[got] = '\0';
    if (sscanf(resp, "HTTP/1.%*c %d", &status) == 1 && status >= 200 && status < 300)
        rc = 0;
out:
    close(fd);
    return rc;
}

static void *publisher(void *arg)
{
    struct ctx *c = arg;
    int64_t start = stats_mono_us();

    c->publish_start_us = stats_wall_us();
    for (int i = 1; i <= c->events; i++) {
        int64_t at = start + (int64_t)(i - 1) * c->interval_ms * 1000;
        int64_t now = stats_mono_us();
        if (at > now) {
            struct timespec ts = {(time_t)((at - now) / 1000000), (long)((at - now) % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
        if (publish_one(c, i) == 0)
            c->published++;
        else
            c->publish_errors++;
    }
    return NULL;
}

/* ---- Main -------------------------------------------------------------- */

static double ms(int64_t us)
{
    return (double)us / 1000.0;
}

int main(int argc, char **argv)
{
    struct ctx c;
    struct spell_buf req;
    pthread_t pub;
    int pub_started = 0, nproc_before, nproc_after, nproc_cpu;
    long rss_before, rss_after, cpu_before, cpu_after;
    int64_t t0, t_open, deadline_total;
    double per_stream;
    uint64_t expected;

    memset(&c, 0, sizeof c);
    c.streams = 10000;
    c.events = 20;
    c.interval_ms = 500;
    c.connecting = 256;
    c.timeout_s = 170;
    c.label = "server";
    parse_args(&c, argc, argv);
    signal(SIGPIPE, SIG_IGN);

    c.addr.sin_family = AF_INET;
    c.addr.sin_port = htons((uint16_t)c.port);
    c.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    /* The request is the same for every stream: at most about 3 KiB. */
    spell_buf_init(&req, 4096);
    if (spell_buf_addf(&req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                       "Accept: text/event-stream\r\nCache-Control: no-cache\r\n",
                       c.path, c.port) != 0 ||
        (c.auth && spell_buf_addf(&req, "Authorization: Bearer %s\r\n", c.auth) != 0) ||
        spell_buf_addstr(&req, "\r\n") != 0)
        die("request too long");
    c.request = req.ptr;
    c.request_len = req.len;

    c.conns = calloc((size_t)c.streams, sizeof *c.conns);
    c.rbuf = malloc(READ_BUF);
    if (!c.conns || !c.rbuf ||
        stats_init(&c.lat, (size_t)c.streams * (size_t)c.events) != 0 ||
        stats_init(&c.lat_ts, (size_t)c.streams * (size_t)c.events) != 0 ||
        stats_init(&c.spread, (size_t)c.streams * (size_t)c.events) != 0 ||
        !(c.recv_us = calloc((size_t)c.streams * (size_t)c.events, sizeof *c.recv_us)))
        die("out of memory");
    for (int i = 0; i < c.streams; i++) {
        struct conn *cn = &c.conns[i];
        cn->ctx = &c;
        cn->fd = -1;
        spell_buf_init(&cn->head, HEAD_MAX);
        if (spell_sse_parser_init(&cn->parser, SSE_LINE_MAX, SSE_EVENT_MAX, on_event, NULL, cn) != 0)
            die("SSE parser init failed");
    }
    c.ep = epoll_create1(EPOLL_CLOEXEC);
    if (c.ep < 0)
        die("epoll_create1 failed");

    rss_before = server_sum(&c, stats_rss_kib, &nproc_before);
    t0 = stats_mono_us();
    deadline_total = t0 + (int64_t)c.timeout_s * 1000000;

    /* 1. Open every stream (at most 120 s of the budget). */
    {
        int64_t open_deadline = t0 + 120 * INT64_C(1000000);
        run_loop(&c, open_deadline < deadline_total ? open_deadline : deadline_total, 1);
    }
    t_open = stats_mono_us();
    printf("sse-hold [%s]: %d/%d streams open in %.1f s (%d failed", c.label, c.open, c.streams,
           (double)(t_open - t0) / 1e6, c.failed);
    if (c.non200)
        printf(", %ld refused, first status %d", c.non200, c.first_status);
    printf(")\n");
    if (c.first_error[0]) {
        char *nl = strpbrk(c.first_error, "\r\n");
        if (nl)
            *nl = '\0';
        printf("sse-hold [%s]: first error: %s\n", c.label, c.first_error);
    }

    /* 2. Memory one second after the last stream opened (streams keep
     * being read meanwhile). */
    run_loop(&c, stats_mono_us() + 1000000, 0);
    rss_after = server_sum(&c, stats_rss_kib, &nproc_after);
    per_stream = c.open > 0 ? (double)(rss_after - rss_before) / c.open : 0.0;

    /* 3. Publish, with the server's CPU time from here to the end of the
     * events. */
    cpu_before = server_sum(&c, proc_cpu_ms, &nproc_cpu);
    if (c.publish) {
        if (pthread_create(&pub, NULL, publisher, &c) != 0)
            die("pthread_create failed");
        pub_started = 1;
    } else {
        int fd = open(c.go_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            die("cannot create the --go-file");
        close(fd);
    }

    /* 4. Receive until every stream is done, or 20 s after the last event
     * is due, or the overall deadline. */
    {
        int64_t until = stats_mono_us() + (int64_t)c.events * c.interval_ms * 1000 + 20 * INT64_C(1000000);
        run_loop(&c, until < deadline_total ? until : deadline_total, 0);
    }
    cpu_after = server_sum(&c, proc_cpu_ms, &nproc_cpu);
    if (pub_started)
        pthread_join(pub, NULL);

    stats_finish(&c.lat);
    stats_finish(&c.lat_ts);
    for (int i = 0; i < c.events; i++) {
        int64_t first = 0;
        for (int k = 0; k < c.streams; k++) {
            int64_t t = c.recv_us[(size_t)k * (size_t)c.events + (size_t)i];
            if (t && (!first || t < first))
                first = t;
        }
        for (int k = 0; k < c.streams; k++) {
            int64_t t = c.recv_us[(size_t)k * (size_t)c.events + (size_t)i];
            if (t)
                stats_add(&c.spread, t - first);
        }
    }
    stats_finish(&c.spread);
    expected = (uint64_t)c.streams * (uint64_t)c.events;

    if (c.publish)
        printf("sse-hold [%s]: published %d/%d events (%d errors), %d ms apart\n", c.label,
               c.published, c.events, c.publish_errors, c.interval_ms);
    printf("sse-hold [%s]: server RSS %ld KiB before, %ld KiB after (%d process%s): %.2f KiB per open stream\n",
           c.label, rss_before, rss_after, nproc_after, nproc_after == 1 ? "" : "es", per_stream);
    printf("sse-hold [%s]: server CPU while the events went out: %ld ms (%.1f ms per event)\n",
           c.label, cpu_after - cpu_before, (double)(cpu_after - cpu_before) / c.events);
    printf("sse-hold [%s]: events delivered %" PRIu64 "/%" PRIu64 "; streams complete %d/%d"
           " (ended early %d, still open at the deadline %d, duplicates %" PRIu64 ")\n",
           c.label, c.delivered, expected, c.complete, c.streams, c.ended_early,
           c.streams - c.finished, c.dups);
    if (c.first_dup[0])
        printf("sse-hold [%s]: first duplicate: %s\n", c.label, c.first_dup);
    printf("sse-hold [%s]: fan-out latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (%zu samples)\n",
           c.label, ms(stats_pct(&c.lat, 50)), ms(stats_pct(&c.lat, 90)), ms(stats_pct(&c.lat, 99)),
           ms(stats_max(&c.lat)), c.lat.n);
    printf("sse-hold [%s]: fan-out spread ms (receive minus the event's first receive): p50 %.2f  p90 %.2f"
           "  p99 %.2f  max %.2f\n", c.label, ms(stats_pct(&c.spread, 50)),
           ms(stats_pct(&c.spread, 90)), ms(stats_pct(&c.spread, 99)), ms(stats_max(&c.spread)));
    if (c.lat_ts.n)
        printf("sse-hold [%s]: latency from the event's ts (ms resolution): p50 %.0f  p90 %.0f  p99 %.0f  max %.0f\n",
               c.label, ms(stats_pct(&c.lat_ts, 50)), ms(stats_pct(&c.lat_ts, 90)),
               ms(stats_pct(&c.lat_ts, 99)), ms(stats_max(&c.lat_ts)));
    {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            printf("sse-hold [%s]: this client used %.2f s user + %.2f s system CPU in %.1f s\n", c.label,
                   (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
                   (double)(stats_mono_us() - t0) / 1e6);
    }
    printf("RESULT label=%s streams=%d open=%d complete=%d delivered=%" PRIu64 " expected=%" PRIu64
           " kib_per_stream=%.3f p50_us=%" PRId64 " p90_us=%" PRId64 " p99_us=%" PRId64 " max_us=%" PRId64
           " spread_p99_us=%" PRId64 " server_cpu_ms=%ld\n",
           c.label, c.streams, c.open, c.complete, c.delivered, expected, per_stream,
           stats_pct(&c.lat, 50), stats_pct(&c.lat, 90), stats_pct(&c.lat, 99), stats_max(&c.lat),
           stats_pct(&c.spread, 99), cpu_after - cpu_before);
    fflush(stdout);

    for (int i = 0; i < c.streams; i++) {
        if (c.conns[i].fd >= 0)
            close(c.conns[i].fd);
        spell_buf_free(&c.conns[i].head);
        spell_sse_parser_free(&c.conns[i].parser);
    }
    close(c.ep);
    free(c.conns);
    free(c.rbuf);
    stats_free(&c.lat);
    stats_free(&c.lat_ts);
    stats_free(&c.spread);
    free(c.recv_us);
    spell_buf_free(&req);
    return c.complete == c.streams && c.delivered == expected ? 0 : 1;
}
