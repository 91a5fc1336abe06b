/*
 * HTTP client on libcurl (http.h).
 *
 * Both modes share struct xfer: one curl easy handle, its header list,
 * and the header fields of the response being read.  curl hands us the
 * response header lines one by one (xfer_header_line); we keep the fields
 * of the current block, start over at each status line (so interim 1xx
 * blocks are dropped), and mark the block complete at its empty line.
 * Body bytes go to a capped buffer (spell_http_send) or straight to the
 * stream's callback (multi mode).  A callback that must stop a transfer
 * records why in xfer.failure and returns a short count, which curl turns
 * into CURLE_WRITE_ERROR; xfer_result() then maps the curl code to a
 * spell_rc and a sentence.
 *
 * In multi mode curl forbids adding or removing handles from inside its
 * callbacks, and a stream may be removed by the caller from inside any of
 * them.  So removal only marks a stream dead (its callbacks then refuse
 * more data) and the handle is released once spell_http_multi_perform()
 * is done with curl; streams added while perform runs are attached at its
 * end.
 * A stream may carry any method and a body (xfer_method(), shared with
 * spell_http_send()); the stream keeps its own copy of the body, since
 * curl reads it only as the transfer goes.
 *
 * The multi object drives curl through its socket interface, so a loop
 * turn costs only the streams that have something to do.  curl says which
 * sockets to watch, and for what, through multi_socket_cb(), which keeps
 * them in an epoll set the object owns, and when it next wants to be
 * called through multi_timer_cb(), which keeps that deadline.  The poll
 * waits on the epoll descriptor (with poll(2) when the caller adds its own
 * descriptors, which change every call) until the deadline at most, and
 * records the ready curl sockets, one bounded batch of epoll events.  The
 * perform hands exactly those sockets to curl_multi_socket_action(),
 * reads further batches while they come back full, then runs curl's timer
 * if it is due.  The wakeup is an eventfd in the same epoll set.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/http.h"
#include "spell/version.h"

/* Header lines one transfer may carry in all: interim blocks and trailers
 * count too, so a peer cannot send 1xx blocks forever. */
#define MAX_HEADER_LINES_TOTAL (SPELL_HTTP_MAX_HEADERS * 4)
#define MAX_METHOD 32
#define MAX_CONTENT_TYPE 256
#define MAX_RETRY_AFTER 256
/* "Authorization: Bearer " plus the token. */
#define AUTH_LINE_CAP (SPELL_HTTP_MAX_BEARER + 32)

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static pthread_once_t global_cleanup_once = PTHREAD_ONCE_INIT;
/* Written once, inside global_once; read only after it. */
static int global_rc = SPELL_ENET;

static void global_init_run(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? SPELL_OK : SPELL_ENOMEM;
}

static void global_cleanup_run(void)
{
    curl_global_cleanup();
}

int spell_http_global_init(void)
{
    if (pthread_once(&global_once, global_init_run) != 0)
        return SPELL_EIO;
    return global_rc;
}

void spell_http_global_cleanup(void)
{
    pthread_once(&global_cleanup_once, global_cleanup_run);
}

/* ---- small text helpers (ASCII only, whatever the locale) ---- */

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int ascii_caseeq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b))
            return 0;
    return *a == *b;
}

static int ascii_caseprefix(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (!*s || ascii_lower((unsigned char)*s) != ascii_lower((unsigned char)*prefix))
            return 0;
    return 1;
}

/* RFC 9110 tchar. */
static int is_tchar(int c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(int c)
{
    return c == ' ' || c == '\t';
}

/* A control character other than HTAB. */
static int is_ctl(int c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static const char *header_find(const struct spell_http_header *v, size_t n, const char *name)
{
    if (!v || !name)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (ascii_caseeq(v[i].name, name))
            return v[i].value;
    return NULL;
}

static void headers_free(struct spell_http_header *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i].name);     /* the value lives in the same block */
    free(v);
}

/* ---- one transfer ---- */

struct xfer {
    CURL *easy;
    struct curl_slist *slist;
    /* Fields of the current header block: SPELL_HTTP_MAX_HEADERS slots,
     * allocated at the first field. */
    struct spell_http_header *hdrs;
    size_t n_hdrs;
    /* Header lines seen in this attempt, all blocks counted. */
    unsigned lines;
    /* The final (non-1xx) header block has ended. */
    int complete;
    /* The spell_rc a callback stopped the transfer with, or SPELL_OK. */
    int failure;
    char error[SPELL_HTTP_ERROR_SIZE];
    char curl_error[CURL_ERROR_SIZE];
};

static void xfer_fail(struct xfer *x, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void xfer_fail(struct xfer *x, int rc, const char *fmt, ...)
{
    if (x->failure != SPELL_OK)
        return;
    x->failure = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->error, sizeof x->error, fmt, ap);
    va_end(ap);
}

static void xfer_clear_headers(struct xfer *x)
{
    if (x->hdrs)
        for (size_t i = 0; i < x->n_hdrs; i++)
            free(x->hdrs[i].name);
    x->n_hdrs = 0;
}

/* Readies the xfer for another attempt on the same handle. */
static void xfer_reset(struct xfer *x)
{
    xfer_clear_headers(x);
    x->lines = 0;
    x->complete = 0;
    x->failure = SPELL_OK;
    x->error[0] = '\0';
    x->curl_error[0] = '\0';
}

static void xfer_free(struct xfer *x)
{
    if (x->easy)
        curl_easy_cleanup(x->easy);
    x->easy = NULL;
    curl_slist_free_all(x->slist);
    x->slist = NULL;
    headers_free(x->hdrs, x->n_hdrs);
    x->hdrs = NULL;
    x->n_hdrs = 0;
}

/* An obs-fold line continues the previous field's value. */
static int xfer_fold(struct xfer *x, const char *line, size_t len)
{
    while (len && is_ows((unsigned char)*line)) {
        line++;
        len--;
    }
    while (len && is_ows((unsigned char)line[len - 1]))
        len--;
    if (x->n_hdrs == 0 || len == 0)
        return SPELL_OK;
    struct spell_http_header *h = &x->hdrs[x->n_hdrs - 1];
    size_t name_len = strlen(h->name);
    size_t value_len = strlen(h->value);
    if (name_len + value_len + 1 + len > SPELL_HTTP_MAX_HEADER_LINE) {
        xfer_fail(x, SPELL_ETOOBIG, "a response header field is longer than %d bytes",
                  SPELL_HTTP_MAX_HEADER_LINE);
        return SPELL_ETOOBIG;
    }
    char *block = realloc(h->name, name_len + 1 + value_len + 1 + len + 1);
    if (!block) {
        xfer_fail(x, SPELL_ENOMEM, "out of memory reading response headers");
        return SPELL_ENOMEM;
    }
    h->name = block;
    h->value = block + name_len + 1;
    h->value[value_len] = ' ';
    memcpy(h->value + value_len + 1, line, len);
    h->value[value_len + 1 + len] = '\0';
    return SPELL_OK;
}

/* Takes one response header line, as curl delivers it (CRLF included). */
static int xfer_header_line(struct xfer *x, const char *line, size_t len)
{
    if (++x->lines > MAX_HEADER_LINES_TOTAL) {
        xfer_fail(x, SPELL_ETOOBIG, "the response has more than %d header lines",
                  MAX_HEADER_LINES_TOTAL);
        return SPELL_ETOOBIG;
    }
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len > SPELL_HTTP_MAX_HEADER_LINE) {
        xfer_fail(x, SPELL_ETOOBIG, "a response header line is longer than %d bytes",
                  SPELL_HTTP_MAX_HEADER_LINE);
        return SPELL_ETOOBIG;
    }
    if (memchr(line, '\0', len)) {
        xfer_fail(x, SPELL_EPARSE, "a response header line holds a NUL byte");
        return SPELL_EPARSE;
    }
    if (x->complete)
        return SPELL_OK;        /* trailers after the body are not kept */
    if (len == 0) {
        long code = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200)
            x->complete = 1;
        return SPELL_OK;
    }
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        xfer_clear_headers(x);
        return SPELL_OK;
    }
    if (is_ows((unsigned char)line[0]))
        return xfer_fold(x, line, len);

    size_t name_len = 0;
    while (name_len < len && is_tchar((unsigned char)line[name_len]))
        name_len++;
    if (name_len == 0 || name_len == len || line[name_len] != ':')
        return SPELL_OK;        /* not a field line: ignored, as browsers do */
    const char *value = line + name_len + 1;
    size_t value_len = len - name_len - 1;
    while (value_len && is_ows((unsigned char)*value)) {
        value++;
        value_len--;
    }
    while (value_len && is_ows((unsigned char)value[value_len - 1]))
        value_len--;

    if (x->n_hdrs == SPELL_HTTP_MAX_HEADERS) {
        xfer_fail(x, SPELL_ETOOBIG, "the response has more than %d header fields",
                  SPELL_HTTP_MAX_HEADERS);
        return SPELL_ETOOBIG;
    }
    if (!x->hdrs) {
        x->hdrs = calloc(SPELL_HTTP_MAX_HEADERS, sizeof *x->hdrs);
        if (!x->hdrs) {
            xfer_fail(x, SPELL_ENOMEM, "out of memory reading response headers");
            return SPELL_ENOMEM;
        }
    }
    char *block = malloc(name_len + 1 + value_len + 1);
    if (!block) {
        xfer_fail(x, SPELL_ENOMEM, "out of memory reading response headers");
        return SPELL_ENOMEM;
    }
    memcpy(block, line, name_len);
    block[name_len] = '\0';
    memcpy(block + name_len + 1, value, value_len);
    block[name_len + 1 + value_len] = '\0';
    x->hdrs[x->n_hdrs].name = block;
    x->hdrs[x->n_hdrs].value = block + name_len + 1;
    x->n_hdrs++;
    return SPELL_OK;
}

/* Maps how curl ended a transfer to a spell_rc and fills x->error. */
static int xfer_result(struct xfer *x, CURLcode cc)
{
    int rc;
    switch (cc) {
    case CURLE_OK:
        x->error[0] = '\0';
        return SPELL_OK;
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        if (x->failure != SPELL_OK)
            return x->failure;
        rc = SPELL_EABORT;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        rc = SPELL_ETIMEOUT;
        break;
    case CURLE_FILESIZE_EXCEEDED:
        rc = SPELL_ETOOBIG;
        break;
    case CURLE_OUT_OF_MEMORY:
        rc = SPELL_ENOMEM;
        break;
    case CURLE_URL_MALFORMAT:
        rc = SPELL_EINVAL;
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* The scheme was checked before sending, so this is curl refusing
         * an answer that is not HTTP ("HTTP/0.9"). */
    case CURLE_WEIRD_SERVER_REPLY:
        rc = SPELL_EPARSE;
        break;
    default:
        rc = SPELL_ENET;
        break;
    }
    if (x->failure != SPELL_OK && x->error[0])
        return x->failure;
    snprintf(x->error, sizeof x->error, "%s",
             x->curl_error[0] ? x->curl_error : curl_easy_strerror(cc));
    return rc;
}

static int setopt_rc(CURLcode cc)
{
    if (cc == CURLE_OK)
        return SPELL_OK;
    return cc == CURLE_OUT_OF_MEMORY ? SPELL_ENOMEM : SPELL_EINVAL;
}

#define SETOPT(x, opt, val) do { \
    if ((rc = setopt_rc(curl_easy_setopt((x)->easy, (opt), (val)))) != SPELL_OK) \
        goto out; \
} while (0)

static int check_url(const char *url)
{
    if (!url)
        return SPELL_EINVAL;
    size_t len = strnlen(url, SPELL_HTTP_MAX_URL + 1);
    if (len > SPELL_HTTP_MAX_URL)
        return SPELL_ETOOBIG;
    if (!ascii_caseprefix(url, "http://") && !ascii_caseprefix(url, "https://"))
        return SPELL_EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return SPELL_EINVAL;
    return SPELL_OK;
}

static int check_bearer(const char *bearer)
{
    size_t len = strnlen(bearer, SPELL_HTTP_MAX_BEARER + 1);
    if (len > SPELL_HTTP_MAX_BEARER)
        return SPELL_ETOOBIG;
    if (len == 0)
        return SPELL_EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)bearer[i] < 0x21 || (unsigned char)bearer[i] > 0x7e)
            return SPELL_EINVAL;
    return SPELL_OK;
}

/* "Name: value" with a token name and no control characters. */
static int check_header(const char *h)
{
    if (!h)
        return SPELL_EINVAL;
    size_t len = strnlen(h, SPELL_HTTP_MAX_HEADER_LINE + 1);
    if (len > SPELL_HTTP_MAX_HEADER_LINE)
        return SPELL_ETOOBIG;
    size_t name_len = 0;
    while (name_len < len && is_tchar((unsigned char)h[name_len]))
        name_len++;
    if (name_len == 0 || h[name_len] != ':')
        return SPELL_EINVAL;
    for (size_t i = name_len; i < len; i++)
        if (is_ctl((unsigned char)h[i]))
            return SPELL_EINVAL;
    return SPELL_OK;
}

/*
 * Creates the easy handle with everything both modes share: URL, the
 * protocol and redirect policy, timeouts, User-Agent, Authorization and
 * the caller's header lines (left in x->slist for the caller to extend
 * and install), and the callbacks.  total_ms 0 means no total limit.
 */
static int xfer_setup(struct xfer *x, const char *url, const char *bearer,
                      const char *const *headers, size_t n_headers,
                      long connect_ms, long total_ms,
                      curl_write_callback header_cb, curl_write_callback write_cb, void *ud)
{
    int rc;
    struct spell_buf auth;
    char ua[64];

    spell_buf_init(&auth, AUTH_LINE_CAP);
    if ((rc = check_url(url)) != SPELL_OK)
        goto out;
    if (bearer && (rc = check_bearer(bearer)) != SPELL_OK)
        goto out;
    rc = SPELL_ETOOBIG;
    if (n_headers > SPELL_HTTP_MAX_EXTRA_HEADERS)
        goto out;
    rc = SPELL_EINVAL;
    if (n_headers && !headers)
        goto out;
    if (connect_ms < 0 || total_ms < 0)
        goto out;
    for (size_t i = 0; i < n_headers; i++)
        if ((rc = check_header(headers[i])) != SPELL_OK)
            goto out;

    rc = SPELL_ENOMEM;
    x->easy = curl_easy_init();
    if (!x->easy)
        goto out;
    SETOPT(x, CURLOPT_ERRORBUFFER, x->curl_error);
    SETOPT(x, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(x, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(x, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SETOPT(x, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SETOPT(x, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(x, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(x, CURLOPT_NOSIGNAL, 1L);
    SETOPT(x, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    SETOPT(x, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(x, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SETOPT(x, CURLOPT_TIMEOUT_MS, total_ms);
    snprintf(ua, sizeof ua, "spell/%s", spell_version());
    SETOPT(x, CURLOPT_USERAGENT, ua);
    SETOPT(x, CURLOPT_HEADERFUNCTION, header_cb);
    SETOPT(x, CURLOPT_HEADERDATA, ud);
    SETOPT(x, CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(x, CURLOPT_WRITEDATA, ud);

    struct curl_slist *l;
    if (bearer) {
        if ((rc = spell_buf_addf(&auth, "Authorization: Bearer %s", bearer)) != SPELL_OK)
            goto out;
        rc = SPELL_ENOMEM;
        if (!(l = curl_slist_append(x->slist, auth.ptr)))
            goto out;
        x->slist = l;
    }
    rc = SPELL_ENOMEM;
    /* No "Expect: 100-continue" round trip before bodies. */
    if (!(l = curl_slist_append(x->slist, "Expect:")))
        goto out;
    x->slist = l;
    for (size_t i = 0; i < n_headers; i++) {
        if (!(l = curl_slist_append(x->slist, headers[i])))
            goto out;
        x->slist = l;
    }
    rc = SPELL_OK;
out:
    if (auth.ptr)
        explicit_bzero(auth.ptr, auth.alloc);
    spell_buf_free(&auth);
    return rc;
}

/* ---- retry policy ---- */

long spell_http_backoff_ms(int attempt, long base_ms, long max_ms, uint32_t random)
{
    if (base_ms <= 0 || max_ms <= 0)
        return 0;
    if (max_ms > SPELL_HTTP_DELAY_CAP_MS)
        max_ms = SPELL_HTTP_DELAY_CAP_MS;
    uint64_t ceiling = (uint64_t)(base_ms < max_ms ? base_ms : max_ms);
    for (int i = 0; i < attempt && ceiling < (uint64_t)max_ms; i++)
        ceiling *= 2;
    if (ceiling > (uint64_t)max_ms)
        ceiling = (uint64_t)max_ms;
    /* (ceiling + 1) < 2^27, so the product fits in 64 bits. */
    return (long)(((ceiling + 1) * (uint64_t)random) >> 32);
}

static const char *const day_short[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_long[7] = {
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
};
static const char *const month_short[12] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* A cursor over the text being parsed. */
struct scan {
    const char *p;
    const char *end;
};

static int scan_word(struct scan *s, const char *const *words, int n)
{
    for (int i = 0; i < n; i++) {
        size_t wl = strlen(words[i]);
        if ((size_t)(s->end - s->p) >= wl && memcmp(s->p, words[i], wl) == 0) {
            s->p += wl;
            return i;
        }
    }
    return -1;
}

static int scan_char(struct scan *s, char c)
{
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 1;
    }
    return 0;
}

static int scan_digits(struct scan *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return 0;
        v = v * 10 + (*s->p++ - '0');
    }
    *out = v;
    return 1;
}

/* "HH:MM:SS" */
static int scan_time(struct scan *s, int *h, int *m, int *sec)
{
    return scan_digits(s, 2, h) && scan_char(s, ':') && scan_digits(s, 2, m) &&
           scan_char(s, ':') && scan_digits(s, 2, sec) && *h <= 23 && *m <= 59 && *sec <= 60;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* An HTTP-date in any of its three forms, as seconds since the epoch. */
static int parse_http_date(const char *p, const char *end, time_t now, int64_t *out)
{
    int day = 0, mon = 0, year = 0, h = 0, m = 0, sec = 0;
    struct scan s = {p, end};
    int ok = 0;

    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    if (scan_word(&s, day_short, 7) >= 0 && scan_char(&s, ',')) {
        ok = scan_char(&s, ' ') && scan_digits(&s, 2, &day) && scan_char(&s, ' ') &&
             (mon = scan_word(&s, month_short, 12)) >= 0 && scan_char(&s, ' ') &&
             scan_digits(&s, 4, &year) && scan_char(&s, ' ') &&
             scan_time(&s, &h, &m, &sec) && scan_char(&s, ' ') && scan_char(&s, 'G') &&
             scan_char(&s, 'M') && scan_char(&s, 'T') && s.p == s.end;
    }
    /* asctime: "Sun Nov  6 08:49:37 1994" */
    if (!ok) {
        s.p = p;
        ok = scan_word(&s, day_short, 7) >= 0 && scan_char(&s, ' ') &&
             (mon = scan_word(&s, month_short, 12)) >= 0 && scan_char(&s, ' ') &&
             (scan_char(&s, ' ') ? scan_digits(&s, 1, &day) : scan_digits(&s, 2, &day)) &&
             scan_char(&s, ' ') && scan_time(&s, &h, &m, &sec) && scan_char(&s, ' ') &&
             scan_digits(&s, 4, &year) && s.p == s.end;
    }
    /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
    if (!ok) {
        int yy = 0;
        s.p = p;
        ok = scan_word(&s, day_long, 7) >= 0 && scan_char(&s, ',') && scan_char(&s, ' ') &&
             scan_digits(&s, 2, &day) && scan_char(&s, '-') &&
             (mon = scan_word(&s, month_short, 12)) >= 0 && scan_char(&s, '-') &&
             scan_digits(&s, 2, &yy) && scan_char(&s, ' ') && scan_time(&s, &h, &m, &sec) &&
             scan_char(&s, ' ') && scan_char(&s, 'G') && scan_char(&s, 'M') &&
             scan_char(&s, 'T') && s.p == s.end;
        if (ok) {
            /* A two-digit year more than 50 years ahead is in the past
             * century (RFC 9110 §5.6.7). */
            struct tm tm;
            int cur = 2000;
            if (gmtime_r(&now, &tm) && tm.tm_year > -1900 && tm.tm_year < 8000)
                cur = tm.tm_year + 1900;
            year = cur / 100 * 100 + yy;
            if (year > cur + 50)
                year -= 100;
            else if (year < cur - 50)
                year += 100;
        }
    }
    if (!ok || day < 1 || day > days_in_month(year, mon + 1))
        return SPELL_EINVAL;
    *out = days_from_civil(year, mon + 1, day) * 86400 + h * 3600 + m * 60 + sec;
    return SPELL_OK;
}

int spell_http_parse_retry_after(const char *value, time_t now, long *out_ms)
{
    if (!value || !out_ms)
        return SPELL_EINVAL;
    size_t len = strnlen(value, MAX_RETRY_AFTER + 1);
    if (len > MAX_RETRY_AFTER)
        return SPELL_EINVAL;
    const char *p = value, *end = value + len;
    while (p < end && is_ows((unsigned char)*p))
        p++;
    while (end > p && is_ows((unsigned char)end[-1]))
        end--;
    if (p == end)
        return SPELL_EINVAL;

    const long cap_s = SPELL_HTTP_DELAY_CAP_MS / 1000;
    if (*p >= '0' && *p <= '9') {
        int64_t secs = 0;
        for (const char *q = p; q < end; q++) {
            if (*q < '0' || *q > '9')
                return SPELL_EINVAL;
            if (secs <= cap_s)          /* saturates past the cap */
                secs = secs * 10 + (*q - '0');
        }
        *out_ms = secs >= cap_s ? SPELL_HTTP_DELAY_CAP_MS : (long)secs * 1000;
        return SPELL_OK;
    }

    int64_t when = 0;
    int rc = parse_http_date(p, end, now, &when);
    if (rc != SPELL_OK)
        return rc;
    int64_t n = (int64_t)now;
    if (when <= n)
        *out_ms = 0;
    else if (n < when - cap_s)          /* `when` is bounded, so no overflow */
        *out_ms = SPELL_HTTP_DELAY_CAP_MS;
    else
        *out_ms = (long)(when - n) * 1000;
    return SPELL_OK;
}

/* Jitter needs no secrecy, only independence between threads. */
static uint32_t random32(void)
{
    uint32_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
        return r;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)&r;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static void sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- one request ---- */

struct send_ctx {
    struct xfer x;
    struct spell_buf body;
};

static size_t send_header_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct send_ctx *c = ud;
    size_t len = size * n;
    return xfer_header_line(&c->x, buf, len) == SPELL_OK ? len : 0;
}

static size_t send_write_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct send_ctx *c = ud;
    size_t len = size * n;
    int rc = spell_buf_add(&c->body, buf, len);
    if (rc == SPELL_ETOOBIG) {
        xfer_fail(&c->x, rc, "the response body is larger than the %zu-byte cap", c->body.cap);
        return 0;
    }
    if (rc != SPELL_OK) {
        xfer_fail(&c->x, rc, "out of memory reading the response body");
        return 0;
    }
    return len;
}

static int check_method(const char *method)
{
    size_t len = strnlen(method, MAX_METHOD + 1);
    if (len == 0 || len > MAX_METHOD)
        return SPELL_EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)method[i]))
            return SPELL_EINVAL;
    return SPELL_OK;
}

static int method_idempotent(const char *method)
{
    static const char *const safe[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (strcmp(method, safe[i]) == 0)
            return 1;
    return 0;
}

/* Whether the caller's lines carry a non-empty Idempotency-Key (or the
 * X- form the server also accepts). */
static int has_idempotency_key(const char *const *headers, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = NULL;
        if (ascii_caseprefix(headers[i], "Idempotency-Key:"))
            v = headers[i] + strlen("Idempotency-Key:");
        else if (ascii_caseprefix(headers[i], "X-Idempotency-Key:"))
            v = headers[i] + strlen("X-Idempotency-Key:");
        if (!v)
            continue;
        while (is_ows((unsigned char)*v))
            v++;
        if (*v)
            return 1;
    }
    return 0;
}

static int should_retry(int rc, int status, int idempotent)
{
    if (rc == SPELL_ENET || rc == SPELL_ETIMEOUT)
        return idempotent;
    if (rc != SPELL_OK)
        return 0;
    if (status == 429 || status == 503)
        return 1;
    return status >= 500 && status <= 599 && idempotent;
}

void spell_http_request_init(struct spell_http_request *req, const char *method,
                             const char *url)
{
    if (!req)
        return;
    memset(req, 0, sizeof *req);
    req->method = method;
    req->url = url;
}

static void response_init(struct spell_http_response *resp)
{
    memset(resp, 0, sizeof *resp);
}

void spell_http_response_free(struct spell_http_response *resp)
{
    if (!resp)
        return;
    headers_free(resp->headers, resp->n_headers);
    free(resp->body);
    response_init(resp);
}

const char *spell_http_response_header(const struct spell_http_response *resp,
                                       const char *name)
{
    return resp ? header_find(resp->headers, resp->n_headers, name) : NULL;
}

/*
 * Installs method and body on the handle, and the Content-Type line; the
 * header list is installed too, so this comes after xfer_setup().  body
 * must outlive the transfer (curl does not copy it).
 */
static int xfer_method(struct xfer *x, const char *method, const void *body, size_t body_len,
                       const char *content_type)
{
    int rc = SPELL_OK;
    int wants_body = body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                     strcmp(method, "PATCH") == 0;
    struct spell_buf ct;

    spell_buf_init(&ct, MAX_CONTENT_TYPE + 32);
    if (strcmp(method, "HEAD") == 0) {
        rc = SPELL_EINVAL;
        if (body)
            goto out;
        SETOPT(x, CURLOPT_NOBODY, 1L);
    } else if (wants_body) {
        SETOPT(x, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        SETOPT(x, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        if (strcmp(method, "POST") != 0)
            SETOPT(x, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") == 0) {
        SETOPT(x, CURLOPT_HTTPGET, 1L);
    } else {
        SETOPT(x, CURLOPT_CUSTOMREQUEST, method);
    }

    if (wants_body) {
        /* Without a body, "Content-Type:" stops curl adding a form type. */
        if (body)
            rc = spell_buf_addf(&ct, "Content-Type: %s",
                                content_type ? content_type : "application/json");
        else
            rc = spell_buf_addstr(&ct, "Content-Type:");
        if (rc != SPELL_OK)
            goto out;
        struct curl_slist *l = curl_slist_append(x->slist, ct.ptr);
        rc = SPELL_ENOMEM;
        if (!l)
            goto out;
        x->slist = l;
    }
    SETOPT(x, CURLOPT_HTTPHEADER, x->slist);
    rc = SPELL_OK;
out:
    spell_buf_free(&ct);
    return rc;
}

/* Method, body and Content-Type as both modes take them. */
static int check_method_body(const char *method, const void *body, size_t body_len,
                             const char *content_type)
{
    int rc;
    if ((rc = check_method(method)) != SPELL_OK)
        return rc;
    if (!body && body_len)
        return SPELL_EINVAL;
    if (body_len > SPELL_HTTP_MAX_REQUEST_BODY)
        return SPELL_ETOOBIG;
    if (body && strcmp(method, "HEAD") == 0)
        return SPELL_EINVAL;
    if (content_type) {
        size_t len = strnlen(content_type, MAX_CONTENT_TYPE + 1);
        if (len == 0 || len > MAX_CONTENT_TYPE)
            return SPELL_EINVAL;
        for (size_t i = 0; i < len; i++)
            if (is_ctl((unsigned char)content_type[i]))
                return SPELL_EINVAL;
    }
    return SPELL_OK;
}

static int check_request(const struct spell_http_request *req, const char *method)
{
    int rc;
    if (!req->url)
        return SPELL_EINVAL;
    if ((rc = check_method_body(method, req->body, req->body_len, req->content_type)) !=
        SPELL_OK)
        return rc;
    if (req->body_cap > SPELL_HTTP_MAX_BODY_CAP)
        return SPELL_EINVAL;
    if (req->retry.max_attempts < 0 || req->retry.max_attempts > SPELL_HTTP_MAX_ATTEMPTS ||
        req->retry.base_ms < 0 || req->retry.max_ms < 0)
        return SPELL_EINVAL;
    if (req->connect_timeout_ms < 0 || req->timeout_ms < 0)
        return SPELL_EINVAL;
    return SPELL_OK;
}

int spell_http_send(const struct spell_http_request *req, struct spell_http_response *resp)
{
    int rc = SPELL_EINVAL;
    struct send_ctx c;

    if (!resp)
        return SPELL_EINVAL;
    response_init(resp);
    memset(&c, 0, sizeof c);
    spell_buf_init(&c.body, req && req->body_cap && req->body_cap <= SPELL_HTTP_MAX_BODY_CAP
                                ? req->body_cap : SPELL_HTTP_BODY_CAP);
    if (!req)
        goto out;
    const char *method = req->method ? req->method : "GET";
    if ((rc = check_request(req, method)) != SPELL_OK)
        goto out;
    if ((rc = spell_http_global_init()) != SPELL_OK)
        goto out;

    long connect_ms = req->connect_timeout_ms ? req->connect_timeout_ms
                                              : SPELL_HTTP_CONNECT_TIMEOUT_MS;
    long total_ms = req->timeout_ms ? req->timeout_ms : SPELL_HTTP_TIMEOUT_MS;
    int max_attempts = req->retry.max_attempts ? req->retry.max_attempts
                                               : SPELL_HTTP_RETRY_ATTEMPTS;
    long base_ms = req->retry.base_ms ? req->retry.base_ms : SPELL_HTTP_RETRY_BASE_MS;
    long max_ms = req->retry.max_ms ? req->retry.max_ms : SPELL_HTTP_RETRY_MAX_MS;
    if (max_ms > SPELL_HTTP_DELAY_CAP_MS)
        max_ms = SPELL_HTTP_DELAY_CAP_MS;

    rc = xfer_setup(&c.x, req->url, req->bearer, req->headers, req->n_headers, connect_ms,
                    total_ms, send_header_cb, send_write_cb, &c);
    if (rc != SPELL_OK)
        goto out;
    if ((rc = xfer_method(&c.x, method, req->body, req->body_len, req->content_type)) !=
        SPELL_OK)
        goto out;
    if ((rc = setopt_rc(curl_easy_setopt(c.x.easy, CURLOPT_MAXFILESIZE_LARGE,
                                         (curl_off_t)c.body.cap))) != SPELL_OK)
        goto out;

    int idempotent = method_idempotent(method) || has_idempotency_key(req->headers,
                                                                       req->n_headers);
    for (;;) {
        xfer_reset(&c.x);
        spell_buf_reset(&c.body);
        CURLcode cc = curl_easy_perform(c.x.easy);
        resp->attempts++;
        rc = xfer_result(&c.x, cc);
        long code = 0;
        curl_easy_getinfo(c.x.easy, CURLINFO_RESPONSE_CODE, &code);
        resp->status = code > 0 && code < 1000 ? (int)code : 0;
        if (resp->attempts >= max_attempts || !should_retry(rc, resp->status, idempotent))
            break;

        long delay_ms = -1;
        const char *ra = header_find(c.x.hdrs, c.x.n_hdrs, "Retry-After");
        if (rc == SPELL_OK && ra &&
            spell_http_parse_retry_after(ra, time(NULL), &delay_ms) == SPELL_OK) {
            if (delay_ms > max_ms)
                delay_ms = max_ms;
        } else {
            delay_ms = spell_http_backoff_ms(resp->attempts - 1, base_ms, max_ms, random32());
        }
        sleep_ms(delay_ms);
    }

    resp->headers = c.x.hdrs;
    resp->n_headers = c.x.n_hdrs;
    c.x.hdrs = NULL;
    c.x.n_hdrs = 0;
    if (rc != SPELL_OK)
        goto out;
    resp->body = spell_buf_take(&c.body, &resp->body_len);
    if (!resp->body) {
        rc = SPELL_ENOMEM;
        snprintf(c.x.error, sizeof c.x.error, "out of memory reading the response body");
    }
out:
    if (rc != SPELL_OK) {
        if (c.x.error[0])
            snprintf(resp->error, sizeof resp->error, "%s", c.x.error);
        else
            snprintf(resp->error, sizeof resp->error, "%s", spell_strerror(rc));
    }
    xfer_free(&c.x);
    spell_buf_free(&c.body);
    return rc;
}

/* ---- many streams, one loop ---- */

struct spell_http_stream {
    struct spell_http_multi *m;
    struct xfer x;
    int status;
    /* Finished for its owner (removed, or done and reported): no callback
     * fires any more, and the handle is released after perform. */
    int dead;
    /* The easy handle is in curl's multi handle. */
    int attached;
    int headers_fired;
    /* The stream's own copy of the request body (curl reads it while the
     * transfer runs); NULL when none is sent. */
    char *body;
    int (*on_headers)(struct spell_http_stream *s, int status, void *user);
    int (*on_data)(struct spell_http_stream *s, const char *data, size_t len, void *user);
    void (*on_done)(struct spell_http_stream *s, int rc, int status, const char *error,
                    void *user);
    void *user;
    struct spell_http_stream *prev, *next;
};

/* Most epoll events read at once; a busier set is read in several
 * batches. */
#define MULTI_BATCH 256

struct spell_http_multi {
    CURLM *multi;
    /* Every stream not yet released, in the order added; new ones go to
     * the tail, so a walk from the head meets those added during it. */
    struct spell_http_stream *head, *tail;
    unsigned live;              /* neither dead nor released */
    unsigned total;             /* in the list, dead ones included */
    /* Streams added during perform and not attached yet, and dead ones not
     * released yet: perform walks the list only when one is non-zero, so a
     * turn with 1,000 streams open costs only the ready ones. */
    unsigned to_attach;
    unsigned to_release;
    /* Inside spell_http_multi_perform(): curl handles may not be added
     * or removed, so add and remove defer. */
    int in_perform;
    /* curl's sockets, each watched for what curl last asked, and the
     * wakeup eventfd. */
    int epfd;
    int wakefd;
    unsigned n_socks;           /* curl sockets in epfd */
    /* When curl wants CURL_SOCKET_TIMEOUT, in monotonic ms; -1: never. */
    int64_t timer_at;
    /* Ready curl sockets from the last poll, not yet handed to curl;
     * ready_full says the batch filled up, so more may be waiting. */
    struct epoll_event ready[MULTI_BATCH];
    unsigned n_ready;
    int ready_full;
    /* Scratch array for poll(2): the epoll descriptor, then the caller's
     * extra ones; grown up to SPELL_HTTP_MULTI_MAX_EXTRA + 1 entries. */
    struct pollfd *pfds;
    unsigned pfds_alloc;
};

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* curl tells what to watch on socket fd; socketp is non-NULL once fd is
 * in the epoll set. */
static int multi_socket_cb(CURL *easy, curl_socket_t fd, int what, void *clientp,
                           void *socketp)
{
    struct spell_http_multi *m = clientp;
    (void)easy;
    if (what == CURL_POLL_REMOVE || what == CURL_POLL_NONE) {
        if (!socketp)
            return 0;
        /* Fails only when curl closed fd already, which dropped it from
         * the set anyway. */
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, fd, NULL);
        m->n_socks--;
        if (what == CURL_POLL_NONE)
            curl_multi_assign(m->multi, fd, NULL);
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    ev.data.fd = fd;
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(m->epfd, op, fd, &ev) != 0) {
        /* The set and our mark disagree (a descriptor closed and its
         * number reused without curl seeing it): go by the set. */
        if (errno == ENOENT)
            op = EPOLL_CTL_ADD;
        else if (errno == EEXIST)
            op = EPOLL_CTL_MOD;
        else
            return -1;
        if (epoll_ctl(m->epfd, op, fd, &ev) != 0)
            return -1;
    }
    if (!socketp) {
        curl_multi_assign(m->multi, fd, m);
        m->n_socks++;
    }
    return 0;
}

static int multi_timer_cb(CURLM *multi, long timeout_ms, void *clientp)
{
    struct spell_http_multi *m = clientp;
    (void)multi;
    m->timer_at = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
    return 0;
}

static int multi_setopt_rc(CURLMcode mc)
{
    if (mc == CURLM_OK)
        return SPELL_OK;
    return mc == CURLM_OUT_OF_MEMORY ? SPELL_ENOMEM : SPELL_EIO;
}

int spell_http_multi_new(struct spell_http_multi **out)
{
    int rc = SPELL_EINVAL;
    struct spell_http_multi *m = NULL;

    if (!out)
        goto out;
    *out = NULL;
    if ((rc = spell_http_global_init()) != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    m = calloc(1, sizeof *m);
    if (!m)
        goto out;
    m->epfd = -1;
    m->wakefd = -1;
    m->timer_at = -1;
    m->multi = curl_multi_init();
    if (!m->multi)
        goto out;
    rc = SPELL_EIO;
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (m->epfd < 0)
        goto out;
    m->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->wakefd < 0)
        goto out;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = m->wakefd;
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->wakefd, &ev) != 0)
        goto out;
    if ((rc = multi_setopt_rc(curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION,
                                                multi_socket_cb))) != SPELL_OK ||
        (rc = multi_setopt_rc(curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m))) !=
            SPELL_OK ||
        (rc = multi_setopt_rc(curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION,
                                                multi_timer_cb))) != SPELL_OK ||
        (rc = multi_setopt_rc(curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m))) !=
            SPELL_OK)
        goto out;
    *out = m;
    m = NULL;
    rc = SPELL_OK;
out:
    spell_http_multi_free(m);
    return rc;
}

static void stream_release(struct spell_http_multi *m, struct spell_http_stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        m->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        m->tail = s->prev;
    m->total--;
    if (s->attached)
        curl_multi_remove_handle(m->multi, s->x.easy);
    xfer_free(&s->x);
    free(s->body);
    free(s);
}

void spell_http_multi_free(struct spell_http_multi *m)
{
    if (!m)
        return;
    while (m->head)
        stream_release(m, m->head);
    /* The cleanup may still tell multi_socket_cb() about cached
     * connections, so the epoll set outlives it. */
    if (m->multi)
        curl_multi_cleanup(m->multi);
    if (m->epfd >= 0)
        close(m->epfd);
    if (m->wakefd >= 0)
        close(m->wakefd);
    free(m->pfds);
    free(m);
}

static int stream_fire_headers(struct spell_http_stream *s)
{
    long code = 0;
    s->headers_fired = 1;
    curl_easy_getinfo(s->x.easy, CURLINFO_RESPONSE_CODE, &code);
    s->status = code > 0 && code < 1000 ? (int)code : 0;
    if (s->on_headers && s->on_headers(s, s->status, s->user) != 0) {
        xfer_fail(&s->x, SPELL_EABORT, "the stream was stopped by its header callback");
        return SPELL_EABORT;
    }
    return s->dead ? SPELL_EABORT : SPELL_OK;
}

static size_t stream_header_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct spell_http_stream *s = ud;
    size_t len = size * n;
    if (s->dead || xfer_header_line(&s->x, buf, len) != SPELL_OK)
        return 0;
    if (s->x.complete && !s->headers_fired && stream_fire_headers(s) != SPELL_OK)
        return 0;
    return len;
}

static size_t stream_write_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct spell_http_stream *s = ud;
    size_t len = size * n;
    if (s->dead)
        return 0;
    if (!s->headers_fired && stream_fire_headers(s) != SPELL_OK)
        return 0;
    if (s->on_data && s->on_data(s, buf, len, s->user) != 0) {
        xfer_fail(&s->x, SPELL_EABORT, "the stream was stopped by its data callback");
        return 0;
    }
    return s->dead ? 0 : len;
}

static int stream_attach(struct spell_http_multi *m, struct spell_http_stream *s)
{
    CURLMcode mc = curl_multi_add_handle(m->multi, s->x.easy);
    if (mc != CURLM_OK)
        return mc == CURLM_OUT_OF_MEMORY ? SPELL_ENOMEM : SPELL_EINVAL;
    s->attached = 1;
    return SPELL_OK;
}

int spell_http_multi_add(struct spell_http_multi *m, const struct spell_http_stream_config *cfg,
                         struct spell_http_stream **out)
{
    int rc = SPELL_EINVAL;
    struct spell_http_stream *s = NULL;

    if (out)
        *out = NULL;
    if (!m || !cfg || !cfg->url || cfg->timeout_ms < 0 || cfg->connect_timeout_ms < 0 ||
        cfg->low_speed_bytes < 0 || cfg->low_speed_secs < 0)
        goto out;
    const char *method = cfg->method ? cfg->method : "GET";
    if ((rc = check_method_body(method, cfg->body, cfg->body_len, cfg->content_type)) !=
        SPELL_OK)
        goto out;
    rc = SPELL_ETOOBIG;
    if (m->total >= SPELL_HTTP_MULTI_MAX_STREAMS)
        goto out;
    rc = SPELL_ENOMEM;
    s = calloc(1, sizeof *s);
    if (!s)
        goto out;
    s->m = m;
    s->on_headers = cfg->on_headers;
    s->on_data = cfg->on_data;
    s->on_done = cfg->on_done;
    s->user = cfg->user;
    long connect_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
                                              : SPELL_HTTP_CONNECT_TIMEOUT_MS;
    rc = xfer_setup(&s->x, cfg->url, cfg->bearer, cfg->headers, cfg->n_headers, connect_ms,
                    cfg->timeout_ms, stream_header_cb, stream_write_cb, s);
    if (rc != SPELL_OK)
        goto out;
    struct xfer *x = &s->x;
    if (cfg->body) {
        rc = SPELL_ENOMEM;
        /* At most SPELL_HTTP_MAX_REQUEST_BODY bytes, checked above. */
        s->body = malloc(cfg->body_len ? cfg->body_len : 1);
        if (!s->body)
            goto out;
        if (cfg->body_len)
            memcpy(s->body, cfg->body, cfg->body_len);
    }
    if ((rc = xfer_method(x, method, s->body, cfg->body_len, cfg->content_type)) != SPELL_OK)
        goto out;
    SETOPT(x, CURLOPT_PRIVATE, (void *)s);
    if (cfg->low_speed_bytes > 0 && cfg->low_speed_secs > 0) {
        SETOPT(x, CURLOPT_LOW_SPEED_LIMIT, cfg->low_speed_bytes);
        SETOPT(x, CURLOPT_LOW_SPEED_TIME, cfg->low_speed_secs);
    }
    if (!m->in_perform && (rc = stream_attach(m, s)) != SPELL_OK)
        goto out;
    if (m->in_perform)
        m->to_attach++;

    s->prev = m->tail;
    if (m->tail)
        m->tail->next = s;
    else
        m->head = s;
    m->tail = s;
    m->total++;
    m->live++;
    if (out)
        *out = s;
    s = NULL;
    rc = SPELL_OK;
out:
    if (s) {
        if (s->attached)
            curl_multi_remove_handle(m->multi, s->x.easy);
        xfer_free(&s->x);
        free(s->body);
        free(s);
    }
    return rc;
}

int spell_http_multi_remove(struct spell_http_multi *m, struct spell_http_stream *s)
{
    if (!m || !s || s->m != m)
        return SPELL_EINVAL;
    if (s->dead)
        return SPELL_OK;
    s->dead = 1;
    m->live--;
    if (!m->in_perform)
        stream_release(m, s);
    else
        m->to_release++;
    return SPELL_OK;
}

/* Reports the end of a stream to its owner. */
static void stream_finish(struct spell_http_multi *m, struct spell_http_stream *s, int rc)
{
    long code = 0;
    curl_easy_getinfo(s->x.easy, CURLINFO_RESPONSE_CODE, &code);
    s->status = code > 0 && code < 1000 ? (int)code : 0;
    s->dead = 1;
    m->live--;
    m->to_release++;
    if (s->on_done)
        s->on_done(s, rc, s->status, s->x.error, s->user);
}

/* What epoll saw on a curl socket, as curl_multi_socket_action() wants
 * it.  A hangup or an error is also offered as input, so curl reads the
 * end of the stream or the socket's own error instead of failing with a
 * bare "poll error". */
static int epoll_to_curl(uint32_t ev)
{
    int out = 0;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
        out |= CURL_CSELECT_IN;
    if (ev & EPOLLOUT)
        out |= CURL_CSELECT_OUT;
    if (ev & EPOLLERR)
        out |= CURL_CSELECT_ERR;
    return out;
}

/*
 * Hands curl the sockets the last poll found ready, then the next batches
 * while they come back full (at most one event per socket in the set, so
 * a busy socket cannot hold the loop), then its timer when due.  Returns
 * the first error curl gave.
 */
static CURLMcode multi_act(struct spell_http_multi *m, int *still)
{
    CURLMcode mc = CURLM_OK, c;
    unsigned acted = 0;
    for (;;) {
        for (unsigned i = 0; i < m->n_ready; i++) {
            int fd = m->ready[i].data.fd;
            if (fd == m->wakefd)
                continue;       /* left for the next poll to drain */
            c = curl_multi_socket_action(m->multi, fd, epoll_to_curl(m->ready[i].events),
                                         still);
            if (c != CURLM_OK && mc == CURLM_OK)
                mc = c;
        }
        acted += m->n_ready;
        int more = m->ready_full && acted < m->n_socks;
        m->n_ready = 0;
        m->ready_full = 0;
        if (!more)
            break;
        unsigned room = m->n_socks - acted + 1;
        int n = epoll_wait(m->epfd, m->ready, room < MULTI_BATCH ? (int)room : MULTI_BATCH, 0);
        if (n <= 0)
            break;
        m->n_ready = (unsigned)n;
        m->ready_full = n == MULTI_BATCH;
    }
    if (m->timer_at >= 0 && monotonic_ms() >= m->timer_at) {
        /* Spent: curl sets the next one, if it has any, during the call. */
        m->timer_at = -1;
        c = curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, still);
        if (c != CURLM_OK && mc == CURLM_OK)
            mc = c;
    }
    return mc;
}

int spell_http_multi_perform(struct spell_http_multi *m, int *running)
{
    int rc = SPELL_OK;
    int still = 0;
    CURLMsg *msg;
    int left;

    if (!m || m->in_perform)
        return SPELL_EINVAL;
    m->in_perform = 1;
    CURLMcode mc = multi_act(m, &still);
    if (mc != CURLM_OK)
        rc = mc == CURLM_OUT_OF_MEMORY ? SPELL_ENOMEM : SPELL_EIO;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode result = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        struct spell_http_stream *s = (struct spell_http_stream *)(void *)priv;
        if (!s || s->dead)
            continue;
        stream_finish(m, s, xfer_result(&s->x, result));
    }
    /* Attach streams added from callbacks; the walk also reaches those
     * that an on_done below adds, since they go to the tail. */
    if (m->to_attach) {
        for (struct spell_http_stream *s = m->head; s; s = s->next) {
            if (s->dead || s->attached)
                continue;
            int arc = stream_attach(m, s);
            if (arc != SPELL_OK) {
                snprintf(s->x.error, sizeof s->x.error, "%s", spell_strerror(arc));
                stream_finish(m, s, arc);
            }
        }
        m->to_attach = 0;
    }
    m->in_perform = 0;
    if (m->to_release) {
        struct spell_http_stream *next;
        for (struct spell_http_stream *s = m->head; s; s = next) {
            next = s->next;
            if (s->dead)
                stream_release(m, s);
        }
        m->to_release = 0;
    }
    if (running)
        *running = (int)m->live;
    return rc;
}

static short poll_to_sys(short ev)
{
    short out = 0;
    if (ev & SPELL_POLLIN)
        out |= POLLIN;
    if (ev & SPELL_POLLPRI)
        out |= POLLPRI;
    if (ev & SPELL_POLLOUT)
        out |= POLLOUT;
    return out;
}

/* A hangup shows as input and an error as input and output, so the
 * caller's own read or write meets it. */
static short poll_from_sys(short ev)
{
    short out = 0;
    if (ev & (POLLIN | POLLHUP | POLLERR))
        out |= SPELL_POLLIN;
    if (ev & POLLPRI)
        out |= SPELL_POLLPRI;
    if (ev & (POLLOUT | POLLERR))
        out |= SPELL_POLLOUT;
    return out;
}

/* Keeps the first n events epoll_wait() gave, draining the wakeup
 * eventfd if it is among them. */
static void multi_take_ready(struct spell_http_multi *m, int n)
{
    m->n_ready = (unsigned)n;
    m->ready_full = n == MULTI_BATCH;
    for (int i = 0; i < n; i++) {
        if (m->ready[i].data.fd == m->wakefd) {
            uint64_t count;
            /* Fails only with EAGAIN, when it is drained already. */
            ssize_t r = read(m->wakefd, &count, sizeof count);
            (void)r;
        }
    }
}

int spell_http_multi_poll(struct spell_http_multi *m, struct spell_pollfd *extra,
                          unsigned n_extra, int timeout_ms)
{
    if (!m || m->in_perform || timeout_ms < 0 || (n_extra && !extra))
        return SPELL_EINVAL;
    if (n_extra > SPELL_HTTP_MULTI_MAX_EXTRA)
        return SPELL_ETOOBIG;
    if (n_extra && n_extra + 1 > m->pfds_alloc) {
        struct pollfd *p = realloc(m->pfds, (n_extra + 1) * sizeof *p);
        if (!p)
            return SPELL_ENOMEM;
        m->pfds = p;
        m->pfds_alloc = n_extra + 1;
    }
    int wait_ms = timeout_ms;
    if (m->timer_at >= 0) {
        int64_t left = m->timer_at - monotonic_ms();
        if (left < wait_ms)
            wait_ms = left > 0 ? (int)left : 0;
    }
    m->n_ready = 0;
    m->ready_full = 0;
    int n;
    if (n_extra == 0) {
        n = epoll_wait(m->epfd, m->ready, MULTI_BATCH, wait_ms);
    } else {
        m->pfds[0] = (struct pollfd){m->epfd, POLLIN, 0};
        for (unsigned i = 0; i < n_extra; i++) {
            m->pfds[i + 1] = (struct pollfd){extra[i].fd, poll_to_sys(extra[i].events), 0};
            extra[i].revents = 0;
        }
        n = poll(m->pfds, n_extra + 1, wait_ms);
        if (n > 0) {
            for (unsigned i = 0; i < n_extra; i++)
                extra[i].revents = poll_from_sys(m->pfds[i + 1].revents);
            n = (m->pfds[0].revents & POLLIN) ? epoll_wait(m->epfd, m->ready, MULTI_BATCH, 0)
                                              : 0;
        }
    }
    if (n < 0)
        return errno == EINTR ? SPELL_OK : SPELL_EIO;   /* a signal is not a failure */
    multi_take_ready(m, n);
    return SPELL_OK;
}

int spell_http_multi_wakeup(struct spell_http_multi *m)
{
    if (!m)
        return SPELL_EINVAL;
    uint64_t one = 1;
    /* EAGAIN: the counter is full, so the poll wakes anyway. */
    if (write(m->wakefd, &one, sizeof one) != (ssize_t)sizeof one && errno != EAGAIN)
        return SPELL_EIO;
    return SPELL_OK;
}

unsigned spell_http_multi_count(const struct spell_http_multi *m)
{
    return m ? m->live : 0;
}

int spell_http_stream_status(const struct spell_http_stream *s)
{
    return s ? s->status : 0;
}

const char *spell_http_stream_header(const struct spell_http_stream *s, const char *name)
{
    return s ? header_find(s->x.hdrs, s->x.n_hdrs, name) : NULL;
}

void *spell_http_stream_user(const struct spell_http_stream *s)
{
    return s ? s->user : NULL;
}
