/*
 * Tests for device.h: the client side of RFC 8628 against a small HTTP
 * server inside this program that answers each request with a scripted
 * status and body and remembers what it was sent.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spell/device.h"
#include "spell/errors.h"
#include "tap.h"

#define REQ_MAX 16384

struct fake {
    int lfd;
    int port;
    pthread_t thread;
    pthread_mutex_t lock;
    int status;             /* what to answer */
    char body[8192];
    char last_req[REQ_MAX]; /* the last request, headers and body */
    int requests;
    int stop;
};

static void *serve(void *arg)
{
    struct fake *f = arg;
    char buf[REQ_MAX], out[9000];
    size_t got;
    ssize_t n;
    int fd, len;
    char *hdr_end, *cl;
    size_t want;

    for (;;) {
        fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_mutex_lock(&f->lock);
        if (f->stop) {
            pthread_mutex_unlock(&f->lock);
            close(fd);
            return NULL;
        }
        pthread_mutex_unlock(&f->lock);
        got = 0;
        want = 0;
        for (;;) {
            n = read(fd, buf + got, sizeof buf - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
            hdr_end = strstr(buf, "\r\n\r\n");
            if (hdr_end) {
                cl = strcasestr(buf, "Content-Length:");
                want = (size_t)(hdr_end + 4 - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
                if (got >= want)
                    break;
            }
            if (got >= sizeof buf - 1)
                break;
        }
        pthread_mutex_lock(&f->lock);
        memcpy(f->last_req, buf, got + 1);
        f->requests++;
        len = snprintf(out, sizeof out,
                       "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       f->status, strlen(f->body), f->body);
        pthread_mutex_unlock(&f->lock);
        if (len > 0 && write(fd, out, (size_t)len) < 0)
            break;
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int one = 1;

    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(f->lfd, (struct sockaddr *)&a, sizeof a);
    listen(f->lfd, 16);
    getsockname(f->lfd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    pthread_create(&f->thread, NULL, serve, f);
}

static void fake_stop(struct fake *f)
{
    struct sockaddr_in a;
    int fd;

    pthread_mutex_lock(&f->lock);
    f->stop = 1;
    pthread_mutex_unlock(&f->lock);
    /* Wake the accept with one last connection. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)f->port);
    connect(fd, (struct sockaddr *)&a, sizeof a);
    close(fd);
    pthread_join(f->thread, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->lock);
}

static void fake_answer(struct fake *f, int status, const char *body)
{
    pthread_mutex_lock(&f->lock);
    f->status = status;
    snprintf(f->body, sizeof f->body, "%s", body);
    pthread_mutex_unlock(&f->lock);
}

static void base_of(const struct fake *f, char *out, size_t cap)
{
    snprintf(out, cap, "http://127.0.0.1:%d/", f->port);
}

#define GOOD_START \
    "{\"device_code\":\"dc_0123456789abcdefghijABCDEFGHIJ0123456789x\"," \
    "\"user_code\":\"BCDF-GHJK\",\"verification_uri\":\"http://x.test/device\"," \
    "\"verification_uri_complete\":\"http://x.test/device?user_code=BCDF-GHJK\"," \
    "\"expires_in\":900,\"interval\":5}"

static void grant_fixture(struct spell_device_grant *g)
{
    memset(g, 0, sizeof *g);
    snprintf(g->device_code, sizeof g->device_code, "%s", "dc_secret_123");
    snprintf(g->user_code, sizeof g->user_code, "%s", "BCDF-GHJK");
    g->interval = 5;
    g->expires_in = 900;
}

static void test_start_ok(void)
{
    struct fake f;
    struct spell_device_grant g;
    char base[64], err[256];

    fake_start(&f);
    base_of(&f, base, sizeof base);
    fake_answer(&f, 200, GOOD_START);
    CHECK_INT(spell_device_start(base, &g, err, sizeof err), SPELL_OK);
    CHECK_STR(g.device_code, "dc_0123456789abcdefghijABCDEFGHIJ0123456789x");
    CHECK_STR(g.user_code, "BCDF-GHJK");
    CHECK_STR(g.verification_uri, "http://x.test/device");
    CHECK_STR(g.verification_uri_complete, "http://x.test/device?user_code=BCDF-GHJK");
    CHECK_INT(g.expires_in, 900);
    CHECK_INT(g.interval, 5);
    CHECK_STR(err, "");
    /* The trailing slash of the base is not doubled. */
    CHECK(strncmp(f.last_req, "POST /v1/auth/device HTTP/1.1\r\n", 31) == 0);
    fake_stop(&f);
}

static void test_start_defaults(void)
{
    struct fake f;
    struct spell_device_grant g;
    char base[64], err[256];

    fake_start(&f);
    base_of(&f, base, sizeof base);
    fake_answer(&f, 200, "{\"device_code\":\"d\",\"user_code\":\"U\","
                         "\"verification_uri\":\"https://a.test/device\",\"expires_in\":60}");
    CHECK_INT(spell_device_start(base, &g, err, sizeof err), SPELL_OK);
    CHECK_INT(g.interval, SPELL_DEVICE_DEFAULT_INTERVAL);
    CHECK_STR(g.verification_uri_complete, "");
    fake_stop(&f);
}

static void test_start_bad_answers(void)
{
    static const char *const bodies[] = {
        "{}",
        "not json",
        "[1,2]",
        "{\"device_code\":5,\"user_code\":\"U\",\"verification_uri\":\"http://a/\","
        "\"expires_in\":60}",
        "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"http://a/\"}",
        "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"http://a/\","
        "\"expires_in\":-1}",
        "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"http://a/\","
        "\"expires_in\":60,\"interval\":100000}",
        "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"javascript:x\","
        "\"expires_in\":60}",
        "{\"device_code\":\"d e\",\"user_code\":\"U\",\"verification_uri\":\"http://a/\","
        "\"expires_in\":60}",
        "{\"device_code\":\"d\",\"user_code\":\"U\\u001b[2J\",\"verification_uri\":"
        "\"http://a/\",\"expires_in\":60}",
        "{\"device_code\":\"\",\"user_code\":\"U\",\"verification_uri\":\"http://a/\","
        "\"expires_in\":60}",
        "{\"device_code\":\"d\",\"user_code\":\"U\",\"verification_uri\":\"http://a/\","
        "\"expires_in\":60,\"verification_uri_complete\":\"ftp://x\"}",
    };
    struct fake f;
    struct spell_device_grant g;
    char base[64], err[256];
    size_t i;

    fake_start(&f);
    base_of(&f, base, sizeof base);
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        fake_answer(&f, 200, bodies[i]);
        CHECK_INT(spell_device_start(base, &g, err, sizeof err), SPELL_EPARSE);
        CHECK(err[0] != '\0');
        CHECK_STR(g.device_code, "");
    }
    fake_stop(&f);
}

static void test_start_long_code(void)
{
    struct fake f;
    struct spell_device_grant g;
    char base[64], err[256], body[4096], longcode[SPELL_DEVICE_CODE_MAX + 1];

    memset(longcode, 'a', sizeof longcode - 1);
    longcode[sizeof longcode - 1] = '\0';
    snprintf(body, sizeof body,
             "{\"device_code\":\"%s\",\"user_code\":\"U\",\"verification_uri\":\"http://a/\","
             "\"expires_in\":60}", longcode);
    fake_start(&f);
    base_of(&f, base, sizeof base);
    fake_answer(&f, 200, body);
    CHECK_INT(spell_device_start(base, &g, err, sizeof err), SPELL_EPARSE);
    fake_stop(&f);
}

static void test_start_http_error(void)
{
    struct fake f;
    struct spell_device_grant g;
    char base[64], err[256];

    fake_start(&f);
    base_of(&f, base, sizeof base);
    fake_answer(&f, 500, "{}");
    CHECK_INT(spell_device_start(base, &g, err, sizeof err), SPELL_EHTTP);
    CHECK(strstr(err, "500") != NULL);
    fake_answer(&f, 400, "{\"error\":\"x\"}");
    CHECK_INT(spell_device_start(base, &g, err, sizeof err), SPELL_EHTTP);
    fake_stop(&f);
}

static void test_start_args(void)
{
    struct spell_device_grant g;
    char err[128];
    char big[3000];

    CHECK_INT(spell_device_start("http://127.0.0.1:1", NULL, err, sizeof err), SPELL_EINVAL);
    CHECK_INT(spell_device_start(NULL, &g, err, sizeof err), SPELL_EINVAL);
    CHECK_INT(spell_device_start("", &g, err, sizeof err), SPELL_EINVAL);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_INT(spell_device_start(big, &g, err, sizeof err), SPELL_EINVAL);
}

static void test_start_down(void)
{
    struct fake f;
    struct spell_device_grant g;
    char base[64], err[256];
    int rc;

    /* A port that was just closed: connection refused. */
    fake_start(&f);
    base_of(&f, base, sizeof base);
    fake_stop(&f);
    rc = spell_device_start(base, &g, err, sizeof err);
    CHECK(rc == SPELL_ENET || rc == SPELL_ETIMEOUT);
    CHECK(err[0] != '\0');
}

static void test_poll_states(void)
{
    struct fake f;
    struct spell_device_grant g;
    struct spell_device_result r;
    char base[64], err[256];

    fake_start(&f);
    base_of(&f, base, sizeof base);
    grant_fixture(&g);

    fake_answer(&f, 400, "{\"error\":\"authorization_pending\"}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_OK);
    CHECK_INT(r.state, SPELL_DEVICE_PENDING);
    CHECK_INT(g.interval, 5);
    CHECK(strncmp(f.last_req, "POST /v1/auth/token HTTP/1.1\r\n", 30) == 0);
    CHECK(strstr(f.last_req, "\"device_code\":\"dc_secret_123\"") != NULL);
    CHECK(strstr(f.last_req, "urn:ietf:params:oauth:grant-type:device_code") != NULL);

    fake_answer(&f, 400, "{\"error\":\"slow_down\"}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_OK);
    CHECK_INT(r.state, SPELL_DEVICE_SLOW_DOWN);
    CHECK_INT(g.interval, 10);
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_OK);
    CHECK_INT(g.interval, 15);

    /* The server's own interval wins when it is larger. */
    fake_answer(&f, 400, "{\"error\":\"slow_down\",\"interval\":40}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_OK);
    CHECK_INT(g.interval, 40);

    fake_answer(&f, 400, "{\"error\":\"expired_token\"}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_OK);
    CHECK_INT(r.state, SPELL_DEVICE_EXPIRED);

    fake_answer(&f, 400, "{\"error\":\"access_denied\"}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_OK);
    CHECK_INT(r.state, SPELL_DEVICE_DENIED);

    fake_answer(&f, 400, "{\"error\":\"invalid_grant\"}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_EHTTP);
    CHECK(strstr(err, "used already") != NULL);

    fake_answer(&f, 400, "{\"error\":\"weird\\u001b\"}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_EHTTP);
    CHECK(strchr(err, 0x1b) == NULL);

    fake_answer(&f, 400, "{\"nothing\":1}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_EPARSE);

    fake_answer(&f, 503, "{}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_EHTTP);
    fake_stop(&f);
}

static void test_poll_interval_cap(void)
{
    struct fake f;
    struct spell_device_grant g;
    struct spell_device_result r;
    char base[64], err[256];

    fake_start(&f);
    base_of(&f, base, sizeof base);
    grant_fixture(&g);
    g.interval = SPELL_DEVICE_MAX_INTERVAL - 2;
    fake_answer(&f, 400, "{\"error\":\"slow_down\"}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_OK);
    CHECK_INT(g.interval, SPELL_DEVICE_MAX_INTERVAL);
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_OK);
    CHECK_INT(g.interval, SPELL_DEVICE_MAX_INTERVAL);
    /* An out-of-range interval from the server is ignored: +5 capped. */
    g.interval = 5;
    fake_answer(&f, 400, "{\"error\":\"slow_down\",\"interval\":999999}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_OK);
    CHECK_INT(g.interval, 10);
    fake_stop(&f);
}

static void test_poll_approved(void)
{
    struct fake f;
    struct spell_device_grant g;
    struct spell_device_result r;
    char base[64], err[256];

    fake_start(&f);
    base_of(&f, base, sizeof base);
    grant_fixture(&g);
    fake_answer(&f, 200, "{\"access_token\":\"AbC123tok\",\"token_type\":\"Bearer\","
                         "\"expires_in\":2592000}");
    CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_OK);
    CHECK_INT(r.state, SPELL_DEVICE_APPROVED);
    CHECK_STR(r.access_token, "AbC123tok");
    CHECK_STR(r.token_type, "Bearer");
    CHECK_INT(r.expires_in, 2592000);
    spell_device_result_wipe(&r);
    CHECK_STR(r.access_token, "");
    spell_device_result_wipe(NULL);
    fake_stop(&f);
}

static void test_poll_bad_tokens(void)
{
    static const char *const bodies[] = {
        "{\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"a b\",\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"abc\",\"token_type\":\"MAC\"}",
        "{\"access_token\":\"abc\"}",
        "{\"access_token\":7,\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"abc\",\"token_type\":\"Bearer\",\"expires_in\":\"x\"}",
        "{\"access_token\":\"abc\",\"token_type\":\"Bearer\"",
    };
    struct fake f;
    struct spell_device_grant g;
    struct spell_device_result r;
    char base[64], err[256];
    size_t i;

    fake_start(&f);
    base_of(&f, base, sizeof base);
    grant_fixture(&g);
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        fake_answer(&f, 200, bodies[i]);
        CHECK_INT(spell_device_poll(base, &g, &r, err, sizeof err), SPELL_EPARSE);
        CHECK_STR(r.access_token, "");
        CHECK(r.state != SPELL_DEVICE_APPROVED);
    }
    fake_stop(&f);
}

static void test_poll_args(void)
{
    struct spell_device_grant g;
    struct spell_device_result r;
    char err[128];

    grant_fixture(&g);
    CHECK_INT(spell_device_poll("http://127.0.0.1:1", NULL, &r, err, sizeof err), SPELL_EINVAL);
    CHECK_INT(spell_device_poll("http://127.0.0.1:1", &g, NULL, err, sizeof err), SPELL_EINVAL);
    CHECK_INT(spell_device_poll(NULL, &g, &r, err, sizeof err), SPELL_EINVAL);
    g.device_code[0] = '\0';
    CHECK_INT(spell_device_poll("http://127.0.0.1:1", &g, &r, err, sizeof err), SPELL_EINVAL);
    /* A code that would break out of the JSON body is refused. */
    snprintf(g.device_code, sizeof g.device_code, "%s", "a\",\"x\":\"1");
    CHECK_INT(spell_device_poll("http://127.0.0.1:1", &g, &r, err, sizeof err), SPELL_EINVAL);
    memset(g.device_code, 'a', sizeof g.device_code);
    CHECK_INT(spell_device_poll("http://127.0.0.1:1", &g, &r, err, sizeof err), SPELL_EINVAL);
}

static void test_state_names(void)
{
    CHECK_STR(spell_device_state_name(SPELL_DEVICE_PENDING), "pending");
    CHECK_STR(spell_device_state_name(SPELL_DEVICE_SLOW_DOWN), "slow_down");
    CHECK_STR(spell_device_state_name(SPELL_DEVICE_EXPIRED), "expired");
    CHECK_STR(spell_device_state_name(SPELL_DEVICE_DENIED), "denied");
    CHECK_STR(spell_device_state_name(SPELL_DEVICE_APPROVED), "approved");
    CHECK_STR(spell_device_state_name((enum spell_device_state)99), "unknown");
}

static void test_browser(void)
{
    char dir[] = "/tmp/spell-device-XXXXXX";
    char exe[256], mark[256], pathv[300], line[512];
    char *env_none[] = {pathv, NULL};
    char *env_x[] = {pathv, "DISPLAY=:0", NULL};
    char *env_wl[] = {pathv, "WAYLAND_DISPLAY=wayland-0", NULL};
    char *env_nopath[] = {"DISPLAY=:0", "PATH=/nonexistent", NULL};
    FILE *fp;
    int i;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(exe, sizeof exe, "%s/xdg-open", dir);
    snprintf(mark, sizeof mark, "%s/opened", dir);
    snprintf(pathv, sizeof pathv, "PATH=%s", dir);
    fp = fopen(exe, "w");
    CHECK(fp != NULL);
    if (!fp)
        return;
    fprintf(fp, "#!/bin/sh\nprintf '%%s' \"$1\" > %s.tmp && /bin/mv %s.tmp %s\n", mark, mark,
            mark);
    fclose(fp);
    chmod(exe, 0700);

    CHECK_INT(spell_device_open_browser("http://x.test/device", env_none), SPELL_ENOTFOUND);
    CHECK_INT(spell_device_open_browser("http://x.test/device", env_nopath), SPELL_ENOTFOUND);
    CHECK_INT(spell_device_open_browser("file:///etc/passwd", env_x), SPELL_EINVAL);
    CHECK_INT(spell_device_open_browser("http://x.test/a b", env_x), SPELL_EINVAL);
    CHECK_INT(spell_device_open_browser(NULL, env_x), SPELL_EINVAL);
    CHECK_INT(spell_device_open_browser("http://x.test/$(touch${IFS}/tmp/x);&a=`id`", env_wl),
              SPELL_OK);
    /* The child runs on its own: wait (generously) for its mark. */
    line[0] = '\0';
    for (i = 0; i < 200; i++) {
        fp = fopen(mark, "r");
        if (fp) {
            if (!fgets(line, sizeof line, fp))
                line[0] = '\0';
            fclose(fp);
            break;
        }
        usleep(50000);
    }
    /* The URL arrived as one argument, untouched by any shell. */
    CHECK_STR(line, "http://x.test/$(touch${IFS}/tmp/x);&a=`id`");
    unlink(mark);
    CHECK_INT(spell_device_open_browser("https://x.test/device", env_x), SPELL_OK);
    for (i = 0; i < 200 && access(mark, F_OK) != 0; i++)
        usleep(50000);
    CHECK(access(mark, F_OK) == 0);
    unlink(mark);
    unlink(exe);
    rmdir(dir);
}

int main(void)
{
    RUN(test_start_ok);
    RUN(test_start_defaults);
    RUN(test_start_bad_answers);
    RUN(test_start_long_code);
    RUN(test_start_http_error);
    RUN(test_start_args);
    RUN(test_start_down);
    RUN(test_poll_states);
    RUN(test_poll_interval_cap);
    RUN(test_poll_approved);
    RUN(test_poll_bad_tokens);
    RUN(test_poll_args);
    RUN(test_state_names);
    RUN(test_browser);
    return tap_done();
}
