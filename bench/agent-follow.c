/*
 * agent-follow: the client side of bench/agent-follow.sh.  It makes
 * spell-agent follow N casts at once and measures the agent's memory and
 * threads while it does, and the latency from each cast's completion on
 * the server to the agent's notification of it.
 *
 * Data flow, on one connection to the agent socket (docs/agent.md):
 *
 *   agent.hello, events.subscribe
 *   N x cast.submit {spell, inputs: {go_fifo, delay_ms}}, at most
 *       SUBMIT_WINDOW unanswered at once -> local ids
 *   wait until the server's spell_sse_streams_open gauge (GET /metrics)
 *       reaches N and agent.status says N casts active: the agent now
 *       follows every cast over its own SSE stream
 *   sample the agent's VmRSS, VmHWM and Threads (/proc/PID/status), and
 *       the same of its desktop helper (spell-agent-desktop, the child
 *       process whose parent is the agent), reported beside the agent's
 *   open the FIFO for writing: every cast's program returns from its
 *       open, sleeps its delay_ms and finishes
 *   read "event" notifications; the receipt time (CLOCK_REALTIME, taken
 *       right after the read that brought the line) of each terminal
 *       kind is recorded per cast; Threads and VmRSS are sampled on the way
 *   GET /v1/casts (paged) -> each cast's finished_at, which the server
 *       writes in the same transaction, with the same clock reading, as
 *       the terminal event's ts
 *   latency = receipt - finished_at, in microseconds (finished_at has
 *       millisecond resolution)
 *
 * With --direct K, the program also follows the first K casts itself,
 * straight from the server (GET /v1/casts/{id}/events on curl multi, in
 * the same poll as the agent socket), and records when each terminal
 * event arrives: the same latency without the agent in between, to tell
 * the server's share from the agent's.
 *
 * It prints the figures and one "RESULT key=value ..." line for the
 * script.  Every buffer is capped where it is made; the program is a
 * benchmark, so it exits on the first unexpected failure with a sentence.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>

#include "stats.h"

/* The most casts one run may follow: the agent's stream limit
 * (SPELL_HTTP_MULTI_MAX_STREAMS) with room to spare. */
#define CASTS_MAX 4096
/* cast.submit requests sent and not yet answered; the agent allows 64. */
#define SUBMIT_WINDOW 32
/* One line from the agent is at most 1 MiB (AGENT_MAX_MESSAGE) plus its
 * newline; the buffer holds two. */
#define LINE_BUF_MAX (2 * 1024 * 1024 + 2)
/* One HTTP answer (a page of 100 casts, or /metrics) is at most this. */
#define HTTP_BODY_MAX (4 * 1024 * 1024)
#define ID_MAX 64
/* Streams this program opens itself with --direct. */
#define DIRECT_MAX 256

/* A stream this program reads straight from the server (--direct). */
struct direct {
    CURL *h;
    struct curl_slist *hdr;
    int idx;                    /* the cast's index in run.casts */
    /* The last bytes of the previous chunk, so that a marker split across
     * two chunks is still found. */
    char tail[40];
    bool final;
    int64_t final_us;
    struct run *r;
};

struct cast {
    char local_id[ID_MAX];
    char cast_id[ID_MAX];
    bool accepted;
    /* A terminal kind was received; its receipt time and kind. */
    bool final;
    int64_t final_us;
    char kind[32];
    /* finished_at from the server, in microseconds since the epoch. */
    int64_t finished_us;
};

struct run {
    const char *socket_path;
    const char *api;
    const char *key;
    const char *fifo;
    const char *spell;
    long agent_pid;
    int ncasts;
    int delay_max_ms;
    int timeout_s;
    int fd;
    char *buf;
    size_t len;
    /* The receipt time of the bytes now in buf. */
    int64_t read_us;
    struct cast *casts;
    int submitted, answered, accepted, finals, failures;
    /* The answer to the last agent.status sent (id STATUS_ID). */
    bool status_pending;
    long long status_active;
    long max_threads;
    long max_rss_kib;
    /* The desktop helper (0 when none runs) and its peaks. */
    long helper_pid;
    long max_helper_threads;
    long max_helper_rss_kib;
    CURLM *multi;
    struct direct *direct;
    int ndirect;
};

#define HELLO_ID 1
#define SUBSCRIBE_ID 2
#define STATUS_ID 3
#define SUBMIT_ID0 1000

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("agent-follow: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void send_line(struct run *r, const char *line)
{
    size_t n = strlen(line), off = 0;
    while (off < n) {
        ssize_t w = write(r->fd, line + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write to the agent: %s", strerror(errno));
        off += (size_t)w;
    }
    if (write(r->fd, "\n", 1) != 1)
        die("write to the agent: %s", strerror(errno));
}

static struct cast *find_local(struct run *r, const char *local_id)
{
    for (int i = 0; i < r->submitted; i++)
        if (strcmp(r->casts[i].local_id, local_id) == 0)
            return &r->casts[i];
    return NULL;
}

static bool kind_is_final(const char *k)
{
    return strcmp(k, "cast.succeeded") == 0 || strcmp(k, "cast.failed") == 0 ||
           strcmp(k, "cast.canceled") == 0 || strcmp(k, "cast.rejected") == 0;
}

static void copy_str(char *dst, size_t cap, const cJSON *v)
{
    if (cJSON_IsString(v) && strlen(v->valuestring) < cap)
        strcpy(dst, v->valuestring);
}

static void on_event(struct run *r, const cJSON *params)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(params, "kind");
    const cJSON *cast = cJSON_GetObjectItemCaseSensitive(params, "cast");
    const cJSON *lid = cJSON_GetObjectItemCaseSensitive(cast, "local_id");
    struct cast *c;

    if (!cJSON_IsString(kind) || !cJSON_IsString(lid))
        return;
    if (!(c = find_local(r, lid->valuestring)))
        return;
    copy_str(c->cast_id, sizeof c->cast_id, cJSON_GetObjectItemCaseSensitive(cast, "cast_id"));
    if (strcmp(kind->valuestring, "cast.accepted") == 0 && !c->accepted) {
        c->accepted = true;
        r->accepted++;
    }
    if (kind_is_final(kind->valuestring) && !c->final) {
        c->final = true;
        c->final_us = r->read_us;
        snprintf(c->kind, sizeof c->kind, "%s", kind->valuestring);
        r->finals++;
        if (strcmp(c->kind, "cast.succeeded") != 0)
            r->failures++;
    }
}

static void on_answer(struct run *r, const cJSON *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(msg, "result");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(msg, "error");
    int n;

    if (!cJSON_IsNumber(id))
        return;
    n = (int)id->valuedouble;
    if (error) {
        char *t = cJSON_PrintUnformatted(error);
        die("request %d failed: %s", n, t ? t : "(error)");
    }
    if (n == STATUS_ID) {
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(result, "queue");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(q, "active");
        r->status_active = cJSON_IsNumber(a) ? (long long)a->valuedouble : -1;
        r->status_pending = false;
    } else if (n >= SUBMIT_ID0 && n < SUBMIT_ID0 + r->ncasts) {
        struct cast *c = &r->casts[n - SUBMIT_ID0];
        copy_str(c->local_id, sizeof c->local_id,
                 cJSON_GetObjectItemCaseSensitive(result, "local_id"));
        if (!c->local_id[0])
            die("cast.submit %d answered without a local_id", n - SUBMIT_ID0);
        r->answered++;
    }
}

static void on_line(struct run *r, const char *line)
{
    cJSON *msg = cJSON_Parse(line);
    const cJSON *method;

    if (!msg)
        die("the agent sent a line that is not JSON: %.200s", line);
    method = cJSON_GetObjectItemCaseSensitive(msg, "method");
    if (cJSON_IsString(method) && strcmp(method->valuestring, "event") == 0)
        on_event(r, cJSON_GetObjectItemCaseSensitive(msg, "params"));
    else
        on_answer(r, msg);
    cJSON_Delete(msg);
}

/* Reads what the agent sent within timeout_ms and handles every complete
 * line; returns whether anything was read. */
static bool pump(struct run *r, int timeout_ms)
{
    struct curl_waitfd w = { .fd = r->fd, .events = CURL_WAIT_POLLIN };
    ssize_t n;
    char *nl, *start;
    int running, numfds = 0;

    if (curl_multi_poll(r->multi, &w, 1, timeout_ms, &numfds) != CURLM_OK)
        die("curl_multi_poll failed");
    if (r->ndirect)
        curl_multi_perform(r->multi, &running);
    if (!(w.revents & CURL_WAIT_POLLIN))
        return false;
    if (r->len + 65536 > LINE_BUF_MAX)
        die("a line from the agent is longer than %d bytes", LINE_BUF_MAX);
    n = read(r->fd, r->buf + r->len, 65536);
    r->read_us = stats_wall_us();
    if (n < 0 && errno == EINTR)
        return false;
    if (n <= 0)
        die("the agent closed the connection");
    r->len += (size_t)n;
    start = r->buf;
    while ((nl = memchr(start, '\n', r->len - (size_t)(start - r->buf)))) {
        *nl = '\0';
        on_line(r, start);
        start = nl + 1;
    }
    r->len -= (size_t)(start - r->buf);
    memmove(r->buf, start, r->len);
    return true;
}

static void agent_connect(struct run *r)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    char line[256];

    if (strlen(r->socket_path) >= sizeof a.sun_path)
        die("the socket path is too long");
    strcpy(a.sun_path, r->socket_path);
    r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("cannot connect to %s: %s", r->socket_path, strerror(errno));
    snprintf(line, sizeof line,
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"agent.hello\","
             "\"params\":{\"protocol\":1,\"client\":\"agent-follow/1\"}}", HELLO_ID);
    send_line(r, line);
    snprintf(line, sizeof line,
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"events.subscribe\",\"params\":{}}",
             SUBSCRIBE_ID);
    send_line(r, line);
}

static void ask_status(struct run *r)
{
    char line[128];
    snprintf(line, sizeof line,
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"agent.status\",\"params\":{}}", STATUS_ID);
    r->status_pending = true;
    send_line(r, line);
}

/* /proc/PID/status fields in KiB or count; -1 when missing. */
static long proc_field(long pid, const char *name)
{
    char path[64], line[256];
    size_t nl = strlen(name);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
            v = strtol(line + nl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* The names of the agent's threads (/proc/PID/task/TID/comm), counted:
 * "spell-agent x1, gdbus x1, ...". */
static void thread_names(long pid, char *out, size_t cap)
{
    char path[64], names[64][16];
    int counts[64], n = 0;
    size_t len = 0;
    struct dirent *e;
    DIR *d;

    out[0] = '\0';
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    if (!(d = opendir(path)))
        return;
    while ((e = readdir(d))) {
        char p2[320], name[16] = "";
        FILE *f;
        int i;
        if (e->d_name[0] == '.')
            continue;
        snprintf(p2, sizeof p2, "/proc/%ld/task/%s/comm", pid, e->d_name);
        if (!(f = fopen(p2, "r")))
            continue;
        if (fgets(name, sizeof name, f))
            name[strcspn(name, "\n")] = '\0';
        fclose(f);
        for (i = 0; i < n && strcmp(names[i], name) != 0; i++)
            ;
        if (i == n && n < 64) {
            snprintf(names[n], sizeof names[n], "%s", name);
            counts[n++] = 0;
        }
        if (i < n)
            counts[i]++;
    }
    closedir(d);
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s x%d", i ? ", " : "", names[i], counts[i]);
}

/* The agent's desktop helper: the child of pid named spell-agent-des(ktop)
 * (comm is cut at 15 bytes), from /proc/N/stat; 0 when there is none. */
static long find_helper(long pid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long found = 0;

    if (!d)
        return 0;
    while (!found && (e = readdir(d))) {
        char path[300], stat[512], *paren;
        long ppid = 0;
        FILE *f;
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        if (!fgets(stat, sizeof stat, f))
            stat[0] = '\0';
        fclose(f);
        paren = strrchr(stat, ')');
        if (!paren || sscanf(paren + 1, " %*c %ld", &ppid) != 1 || ppid != pid)
            continue;
        if (strstr(stat, "(spell-agent-des"))
            found = strtol(e->d_name, NULL, 10);
    }
    closedir(d);
    return found;
}

static void sample_agent(struct run *r)
{
    long t = proc_field(r->agent_pid, "Threads"), rss = proc_field(r->agent_pid, "VmRSS");
    if (t > r->max_threads)
        r->max_threads = t;
    if (rss > r->max_rss_kib)
        r->max_rss_kib = rss;
    if (r->helper_pid > 0) {
        t = proc_field(r->helper_pid, "Threads");
        rss = proc_field(r->helper_pid, "VmRSS");
        if (t > r->max_helper_threads)
            r->max_helper_threads = t;
        if (rss > r->max_helper_rss_kib)
            r->max_helper_rss_kib = rss;
    }
}

/* ---- HTTP: /metrics and GET /v1/casts -------------------------------- */

struct body {
    char *p;
    size_t len;
};

static size_t body_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct body *b = ud;
    size_t n = size * nmemb;
    char *q;
    if (b->len + n + 1 > HTTP_BODY_MAX)
        return 0;
    if (!(q = realloc(b->p, b->len + n + 1)))
        return 0;
    b->p = q;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* GET url into a fresh body; returns the HTTP status or -1. */
static long http_get(const struct run *r, const char *url, bool auth, struct body *b)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char bearer[1200];
    long status = -1;

    b->p = NULL;
    b->len = 0;
    if (!h)
        return -1;
    if (auth) {
        snprintf(bearer, sizeof bearer, "Authorization: Bearer %s", r->key);
        hdr = curl_slist_append(hdr, bearer);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    if (!b->p && status >= 0) {
        b->p = calloc(1, 1);
        if (!b->p)
            status = -1;
    }
    return status;
}

static long open_streams(const struct run *r)
{
    char url[2048];
    struct body b;
    const char *k = "\nspell_sse_streams_open ";
    long v = -1;
    char *at;

    snprintf(url, sizeof url, "%s/metrics", r->api);
    if (http_get(r, url, false, &b) == 200 && (at = strstr(b.p, k)))
        v = strtol(at + strlen(k), NULL, 10);
    free(b.p);
    return v;
}

/* "2026-11-22T09:13:36.356Z" -> microseconds since the epoch, or -1. */
static int64_t parse_rfc3339(const char *s)
{
    struct tm tm;
    int ms = 0;
    memset(&tm, 0, sizeof tm);
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000000 + (int64_t)ms * 1000;
}

static void fetch_finished(struct run *r)
{
    char url[2048], cursor[256] = "";
    int pages = 0;

    do {
        struct body b;
        cJSON *page, *casts, *c, *next;
        long st;

        if (cursor[0])
            snprintf(url, sizeof url, "%s/v1/casts?limit=100&cursor=%s", r->api, cursor);
        else
            snprintf(url, sizeof url, "%s/v1/casts?limit=100", r->api);
        if ((st = http_get(r, url, true, &b)) != 200)
            die("GET /v1/casts answered %ld", st);
        if (!(page = cJSON_Parse(b.p)))
            die("GET /v1/casts answered something that is not JSON");
        free(b.p);
        casts = cJSON_GetObjectItemCaseSensitive(page, "casts");
        cJSON_ArrayForEach(c, casts) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
            const cJSON *fin = cJSON_GetObjectItemCaseSensitive(c, "finished_at");
            if (!cJSON_IsString(id) || !cJSON_IsString(fin))
                continue;
            for (int i = 0; i < r->submitted; i++)
                if (strcmp(r->casts[i].cast_id, id->valuestring) == 0) {
                    r->casts[i].finished_us = parse_rfc3339(fin->valuestring);
                    break;
                }
        }
        next = cJSON_GetObjectItemCaseSensitive(page, "next_cursor");
        cursor[0] = '\0';
        if (cJSON_IsString(next) && strlen(next->valuestring) < sizeof cursor)
            strcpy(cursor, next->valuestring);
        cJSON_Delete(page);
    } while (cursor[0] && ++pages < CASTS_MAX);
}

static size_t direct_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct direct *d = ud;
    size_t n = size * nmemb, tl = strlen(d->tail);
    char probe[2 * sizeof d->tail];
    static const char *const marks[] = { "event: cast.succeeded", "event: cast.failed",
                                         "event: cast.canceled" };

    if (d->final)
        return n;
    /* The marker within the chunk, or across the old tail and its start. */
    for (size_t m = 0; m < sizeof marks / sizeof marks[0] && !d->final; m++) {
        size_t ml = strlen(marks[m]);
        if (memmem(data, n, marks[m], ml))
            d->final = true;
        else {
            size_t take = n < sizeof d->tail - 1 ? n : sizeof d->tail - 1;
            memcpy(probe, d->tail, tl);
            memcpy(probe + tl, data, take);
            if (memmem(probe, tl + take, marks[m], ml))
                d->final = true;
        }
    }
    if (d->final)
        d->final_us = stats_wall_us();
    else {
        size_t keep = n < sizeof d->tail - 1 ? n : sizeof d->tail - 1;
        memcpy(d->tail, data + n - keep, keep);
        d->tail[keep] = '\0';
    }
    return n;
}

static void direct_open(struct run *r)
{
    char url[2048], bearer[1200];

    snprintf(bearer, sizeof bearer, "Authorization: Bearer %s", r->key);
    for (int i = 0; i < r->ndirect; i++) {
        struct direct *d = &r->direct[i];
        d->r = r;
        d->idx = i;
        if (!r->casts[i].cast_id[0])
            die("cast %d has no server id yet", i);
        snprintf(url, sizeof url, "%s/v1/casts/%s/events", r->api, r->casts[i].cast_id);
        if (!(d->h = curl_easy_init()) || !(d->hdr = curl_slist_append(NULL, bearer)))
            die("out of memory");
        curl_easy_setopt(d->h, CURLOPT_URL, url);
        curl_easy_setopt(d->h, CURLOPT_HTTPHEADER, d->hdr);
        curl_easy_setopt(d->h, CURLOPT_WRITEFUNCTION, direct_write);
        curl_easy_setopt(d->h, CURLOPT_WRITEDATA, d);
        curl_easy_setopt(d->h, CURLOPT_NOSIGNAL, 1L);
        if (curl_multi_add_handle(r->multi, d->h) != CURLM_OK)
            die("curl_multi_add_handle failed");
    }
}

static void direct_close(struct run *r)
{
    for (int i = 0; i < r->ndirect; i++) {
        if (r->direct[i].h) {
            curl_multi_remove_handle(r->multi, r->direct[i].h);
            curl_easy_cleanup(r->direct[i].h);
        }
        curl_slist_free_all(r->direct[i].hdr);
    }
}

/* ---- the run ----------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: agent-follow --socket PATH --api URL --key KEY --agent-pid PID --go-fifo PATH\n"
            "                    [--casts N (1000)] [--spell KEY (follow-bench)]\n"
            "                    [--delay-max-ms MS (4000)] [--timeout-s S (600)] [--direct K (0)]\n");
    exit(2);
}

static void parse_args(struct run *r, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (strcmp(a, "--socket") == 0)
            r->socket_path = v;
        else if (strcmp(a, "--api") == 0)
            r->api = v;
        else if (strcmp(a, "--key") == 0)
            r->key = v;
        else if (strcmp(a, "--go-fifo") == 0)
            r->fifo = v;
        else if (strcmp(a, "--spell") == 0)
            r->spell = v;
        else if (strcmp(a, "--agent-pid") == 0)
            r->agent_pid = strtol(v, NULL, 10);
        else if (strcmp(a, "--casts") == 0)
            r->ncasts = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--delay-max-ms") == 0)
            r->delay_max_ms = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--timeout-s") == 0)
            r->timeout_s = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--direct") == 0)
            r->ndirect = (int)strtol(v, NULL, 10);
        else
            usage();
        i++;
    }
    if (!r->socket_path || !r->api || !r->key || !r->fifo || r->agent_pid <= 0 ||
        r->ncasts < 1 || r->ncasts > CASTS_MAX || r->delay_max_ms < 0 ||
        r->delay_max_ms > 60000 || r->timeout_s < 1 || r->ndirect < 0 ||
        r->ndirect > r->ncasts || r->ndirect > DIRECT_MAX || strlen(r->key) > 1024 ||
        strlen(r->fifo) > 1024 || strlen(r->api) > 1024)
        usage();
}

static void submit_all(struct run *r)
{
    char line[2560];
    while (r->answered < r->ncasts) {
        while (r->submitted < r->ncasts && r->submitted - r->answered < SUBMIT_WINDOW) {
            int i = r->submitted;
            /* Delays spread evenly over 0..delay_max_ms, in an order
             * unrelated to the submission order. */
            int delay = r->delay_max_ms ? (int)(((long)i * 7919) % (r->delay_max_ms + 1)) : 0;
            snprintf(line, sizeof line,
                     "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"cast.submit\",\"params\":"
                     "{\"spell\":\"%s\",\"inputs\":{\"go_fifo\":\"%s\",\"delay_ms\":%d}}}",
                     SUBMIT_ID0 + i, r->spell, r->fifo, delay);
            r->submitted++;
            send_line(r, line);
        }
        pump(r, 1000);
    }
}

static double ms(int64_t us)
{
    return (double)us / 1000.0;
}

int main(int argc, char **argv)
{
    struct run r = { .spell = "follow-bench", .ncasts = 1000, .delay_max_ms = 4000,
                     .timeout_s = 600, .fd = -1 };
    struct stats lat, dlat, alat;
    int64_t t0, deadline, t_go;
    long streams = -1, rss_steady, hwm_steady, threads_steady, rss_end, hwm_end;
    long helper_rss = -1, helper_threads = -1;
    int fifo_fd, missing = 0;
    char names[1024];

    parse_args(&r, argc, argv);
    if (!(r.buf = malloc(LINE_BUF_MAX)) || !(r.casts = calloc((size_t)r.ncasts, sizeof *r.casts)) ||
        !(r.direct = calloc((size_t)r.ndirect + 1, sizeof *r.direct)) ||
        stats_init(&lat, (size_t)r.ncasts) != 0 || stats_init(&dlat, (size_t)r.ndirect + 1) != 0 ||
        stats_init(&alat, (size_t)r.ndirect + 1) != 0)
        die("out of memory");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!(r.multi = curl_multi_init()))
        die("out of memory");

    t0 = stats_mono_us();
    agent_connect(&r);
    submit_all(&r);
    printf("submitted %d casts through the agent in %.1f s\n", r.ncasts,
           (double)(stats_mono_us() - t0) / 1e6);
    fflush(stdout);

    /* Until the agent follows every cast. */
    deadline = stats_mono_us() + (int64_t)r.timeout_s * 1000000;
    for (;;) {
        if (!r.status_pending)
            ask_status(&r);
        while (pump(&r, 200))
            ;
        streams = open_streams(&r);
        if (streams >= r.ncasts && r.status_active >= r.ncasts && r.accepted >= r.ncasts)
            break;
        if (r.finals > 0)
            die("%d casts ended before the start signal (%d failed)", r.finals, r.failures);
        if (stats_mono_us() > deadline)
            die("after %d s: %ld streams open on the server, %lld casts active in the agent, "
                "%d accepted", r.timeout_s, streams, r.status_active, r.accepted);
        usleep(250000);
    }
    printf("the agent follows %d casts: %ld SSE streams open on the server, %.1f s after the start\n",
           r.ncasts, streams, (double)(stats_mono_us() - t0) / 1e6);
    direct_open(&r);
    /* Let whatever the streams' first events caused settle, then sample. */
    for (int64_t until = stats_mono_us() + 2000000; stats_mono_us() < until;)
        pump(&r, 100);
    rss_steady = proc_field(r.agent_pid, "VmRSS");
    hwm_steady = proc_field(r.agent_pid, "VmHWM");
    threads_steady = proc_field(r.agent_pid, "Threads");
    r.max_threads = threads_steady;
    r.max_rss_kib = rss_steady;
    thread_names(r.agent_pid, names, sizeof names);
    printf("agent while following: VmRSS %.1f MiB, VmHWM %.1f MiB, %ld threads (%s)\n",
           (double)rss_steady / 1024, (double)hwm_steady / 1024, threads_steady, names);
    r.helper_pid = find_helper(r.agent_pid);
    if (r.helper_pid > 0) {
        helper_rss = proc_field(r.helper_pid, "VmRSS");
        helper_threads = proc_field(r.helper_pid, "Threads");
        r.max_helper_rss_kib = helper_rss;
        r.max_helper_threads = helper_threads;
        thread_names(r.helper_pid, names, sizeof names);
        printf("its desktop helper (pid %ld): VmRSS %.1f MiB, %ld threads (%s)\n", r.helper_pid,
               (double)helper_rss / 1024, helper_threads, names);
    } else {
        printf("no desktop helper runs beside the agent\n");
    }
    fflush(stdout);

    /* Go: the casts finish over the next delay_max_ms (and the waves of
     * queued casts after them). */
    if ((fifo_fd = open(r.fifo, O_RDWR | O_CLOEXEC)) < 0)
        die("cannot open %s: %s", r.fifo, strerror(errno));
    t_go = stats_mono_us();
    deadline = t_go + (int64_t)r.timeout_s * 1000000;
    while (stats_mono_us() < deadline) {
        int dfin = 0;
        for (int i = 0; i < r.ndirect; i++)
            dfin += r.direct[i].final;
        if (r.finals >= r.ncasts && dfin >= r.ndirect)
            break;
        int64_t next_sample = stats_mono_us() + 100000;
        while (stats_mono_us() < next_sample)
            pump(&r, 50);
        sample_agent(&r);
    }
    printf("%d of %d casts reported final by the agent %.1f s after the start signal (%d not succeeded)\n",
           r.finals, r.ncasts, (double)(stats_mono_us() - t_go) / 1e6, r.failures);
    rss_end = proc_field(r.agent_pid, "VmRSS");
    hwm_end = proc_field(r.agent_pid, "VmHWM");

    fetch_finished(&r);
    for (int i = 0; i < r.ncasts; i++) {
        struct cast *c = &r.casts[i];
        if (!c->final || c->finished_us <= 0) {
            missing++;
            continue;
        }
        stats_add(&lat, c->final_us - c->finished_us);
    }
    stats_finish(&lat);
    printf("agent at the end: VmRSS %.1f MiB, VmHWM %.1f MiB; most threads seen %ld, most VmRSS %.1f MiB\n",
           (double)rss_end / 1024, (double)hwm_end / 1024, r.max_threads,
           (double)r.max_rss_kib / 1024);
    printf("completion -> notification (server finished_at -> events.subscribe line read), %zu casts:\n"
           "  p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms%s\n",
           lat.n, ms(stats_pct(&lat, 50)), ms(stats_pct(&lat, 90)), ms(stats_pct(&lat, 99)),
           ms(stats_max(&lat)), missing ? " (some casts missing: see RESULT)" : "");
    if (r.ndirect) {
        for (int i = 0; i < r.ndirect; i++) {
            const struct direct *d = &r.direct[i];
            const struct cast *c = &r.casts[d->idx];
            if (!d->final || !c->final || c->finished_us <= 0)
                continue;
            stats_add(&dlat, d->final_us - c->finished_us);
            stats_add(&alat, c->final_us - c->finished_us);
        }
        stats_finish(&dlat);
        stats_finish(&alat);
        printf("the same %zu casts, straight from the server's stream: p50 %.1f ms, p90 %.1f ms, "
               "p99 %.1f ms, max %.1f ms\n"
               "                             through the agent: p50 %.1f ms, p90 %.1f ms, "
               "p99 %.1f ms, max %.1f ms\n",
               dlat.n, ms(stats_pct(&dlat, 50)), ms(stats_pct(&dlat, 90)),
               ms(stats_pct(&dlat, 99)), ms(stats_max(&dlat)), ms(stats_pct(&alat, 50)),
               ms(stats_pct(&alat, 90)), ms(stats_pct(&alat, 99)), ms(stats_max(&alat)));
    }
    printf("RESULT casts=%d streams=%ld finals=%d not_succeeded=%d missing=%d rss_kib=%ld "
           "hwm_kib=%ld threads=%ld max_threads=%ld max_rss_kib=%ld helper_pid=%ld "
           "helper_rss_kib=%ld helper_threads=%ld max_helper_rss_kib=%ld max_helper_threads=%ld "
           "p50_us=%lld p90_us=%lld p99_us=%lld max_us=%lld",
           r.ncasts, streams, r.finals, r.failures, missing, rss_steady, hwm_end,
           threads_steady, r.max_threads, r.max_rss_kib, r.helper_pid, helper_rss,
           helper_threads, r.max_helper_rss_kib, r.max_helper_threads,
           (long long)stats_pct(&lat, 50), (long long)stats_pct(&lat, 90),
           (long long)stats_pct(&lat, 99), (long long)stats_max(&lat));
    if (r.ndirect)
        printf(" direct_p50_us=%lld direct_p90_us=%lld direct_p99_us=%lld via_p50_us=%lld "
               "via_p90_us=%lld via_p99_us=%lld",
               (long long)stats_pct(&dlat, 50), (long long)stats_pct(&dlat, 90),
               (long long)stats_pct(&dlat, 99), (long long)stats_pct(&alat, 50),
               (long long)stats_pct(&alat, 90), (long long)stats_pct(&alat, 99));
    printf("\n");
    close(fifo_fd);
    close(r.fd);
    direct_close(&r);
    curl_multi_cleanup(r.multi);
    free(r.direct);
    stats_free(&lat);
    stats_free(&dlat);
    stats_free(&alat);
    free(r.casts);
    free(r.buf);
    curl_global_cleanup();
    return missing || r.failures ? 1 : 0;
}
