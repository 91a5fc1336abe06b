/*
 * Tests of core's agent client (spell/agent.h) against a fake agent: the
 * test holds the other end of a socket pair (or of a listening Unix socket)
 * and writes the agent's lines itself, reading back what the client sent.
 * Lines larger than a socket buffer are written by a thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "spell/agent.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "tap.h"

struct pair {
    struct spell_agent *a;
    int peer;   /* the fake agent's end */
};

static int pair_open(struct pair *p)
{
    int sv[2];
    p->a = NULL;
    p->peer = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    if (spell_agent_from_fd(sv[0], &p->a) != SPELL_OK) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    p->peer = sv[1];
    return 0;
}

static void pair_close(struct pair *p)
{
    spell_agent_free(p->a);
    if (p->peer >= 0)
        close(p->peer);
}

static void peer_write(struct pair *p, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(p->peer, s, len);
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

/* Reads one line the client sent (waits up to 2 s); returns its parsed
 * object or NULL. */
static cJSON *peer_read_line(struct pair *p)
{
    char line[65536];
    size_t len = 0;
    while (len < sizeof(line) - 1) {
        struct pollfd pfd = {p->peer, POLLIN, 0};
        if (poll(&pfd, 1, 2000) <= 0)
            return NULL;
        ssize_t n = read(p->peer, line + len, 1);
        if (n <= 0)
            return NULL;
        if (line[len] == '\n') {
            cJSON *j = NULL;
            if (spell_json_parse(line, len, NULL, &j, NULL, 0) != SPELL_OK)
                return NULL;
            return j;
        }
        len++;
    }
    return NULL;
}

static void test_hello_ok(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocol\":1,\"agent\":\"0.1.0\"}}\n");
    char *ver = NULL;
    struct spell_agent_error e = {0};
    CHECK_INT(spell_agent_hello(p.a, "spell/0.1.0", 2000, &ver, &e), SPELL_OK);
    CHECK_STR(ver, "0.1.0");
    free(ver);

    cJSON *req = peer_read_line(&p);
    CHECK(req != NULL);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(req, "jsonrpc")), "2.0");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(req, "method")), "agent.hello");
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(req, "id")), 1);
    const cJSON *params = cJSON_GetObjectItem(req, "params");
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(params, "protocol")), 1);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(params, "client")), "spell/0.1.0");
    cJSON_Delete(req);
    spell_agent_error_clear(&e);
    pair_close(&p);
}

static void test_hello_version_mismatch_error(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32001,"
                   "\"message\":\"protocol 1 is not 2\",\"data\":{\"protocol\":2}}}\n");
    /* The agent answers and closes its end; the request still goes in. */
    shutdown(p.peer, SHUT_WR);
    struct spell_agent_error e = {0};
    CHECK_INT(spell_agent_hello(p.a, "t", 2000, NULL, &e), SPELL_EHTTP);
    CHECK_INT(e.code, SPELL_AGENT_ERR_VERSION);
    CHECK_STR(e.message, "protocol 1 is not 2");
    CHECK(cJSON_IsObject(e.data));
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(e.data, "protocol")), 2);
    spell_agent_error_clear(&e);
    CHECK_INT(e.code, 0);
    CHECK(e.data == NULL);
    /* The agent closed the connection after its answer. */
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "agent.status", NULL, 2000, &r, &e), SPELL_ENET);
    CHECK(r == NULL);
    pair_close(&p);
}

static void test_hello_other_protocol_in_result(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocol\":2,\"agent\":\"9\"}}\n");
    char *ver = NULL;
    CHECK_INT(spell_agent_hello(p.a, "t", 2000, &ver, NULL), SPELL_EVERIFY);
    CHECK(ver == NULL);
    pair_close(&p);
}

static void test_call_result_and_ids(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"n\":1}}\n"
                   "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":[1,2,3]}\n");
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "local_id", "lc_1");
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "cast.get", params, 2000, &r, NULL), SPELL_OK);
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(r, "n")), 1);
    cJSON_Delete(r);
    CHECK_INT(spell_agent_call(p.a, "cast.list", NULL, 2000, &r, NULL), SPELL_OK);
    CHECK(cJSON_IsArray(r));
    CHECK_INT(cJSON_GetArraySize(r), 3);
    cJSON_Delete(r);

    cJSON *q1 = peer_read_line(&p);
    cJSON *q2 = peer_read_line(&p);
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(q1, "id")), 1);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(q1, "params"),
                                                       "local_id")), "lc_1");
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(q2, "id")), 2);
    CHECK(cJSON_IsObject(cJSON_GetObjectItem(q2, "params")));
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(q2, "params")), 0);
    cJSON_Delete(q1);
    cJSON_Delete(q2);
    cJSON_Delete(params);
    pair_close(&p);
}

static void test_call_null_result(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}\n");
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "x", NULL, 2000, &r, NULL), SPELL_OK);
    CHECK(cJSON_IsNull(r));
    cJSON_Delete(r);
    pair_close(&p);
}

static void test_call_server_error(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32030,\"message\":\"refused\","
                   "\"data\":{\"status\":402,\"code\":\"BUDGET_EXCEEDED\","
                   "\"message\":\"over the cap\"}}}\n");
    struct spell_agent_error e = {0};
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "cast.submit", NULL, 2000, &r, &e), SPELL_EHTTP);
    CHECK(r == NULL);
    CHECK_INT(e.code, SPELL_AGENT_ERR_SERVER_REFUSED);
    int status = 0;
    const char *code = NULL, *msg = NULL;
    CHECK_INT(spell_agent_error_server(&e, &status, &code, &msg), SPELL_OK);
    CHECK_INT(status, 402);
    CHECK_STR(code, "BUDGET_EXCEEDED");
    CHECK_STR(msg, "over the cap");
    spell_agent_error_clear(&e);
    CHECK_INT(spell_agent_error_server(&e, &status, &code, &msg), SPELL_ENOTFOUND);
    pair_close(&p);
}

static void test_error_without_data_and_long_message(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    char line[2048];
    char longmsg[1000];
    memset(longmsg, 'm', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    snprintf(line, sizeof(line),
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32010,\"message\":\"%s\"}}\n",
             longmsg);
    peer_write(&p, line);
    struct spell_agent_error e = {0};
    CHECK_INT(spell_agent_call(p.a, "auth.token", NULL, 2000, NULL, &e), SPELL_EHTTP);
    CHECK_INT(e.code, SPELL_AGENT_ERR_SIGNED_OUT);
    CHECK_INT(strlen(e.message), SPELL_AGENT_ERRMSG_MAX - 1);
    CHECK(e.data == NULL);
    spell_agent_error_clear(&e);
    pair_close(&p);
}

static void test_sentences(void)
{
    CHECK_STR(spell_agent_code_sentence(-32040), "The agent is shutting down.");
    CHECK_STR(spell_agent_code_sentence(-32031), "The server cannot be reached.");
    CHECK_STR(spell_agent_code_sentence(12345), "The agent answered with an error.");
}

struct notes {
    int count;
    char kinds[8][32];
};

static void on_note(void *user, const char *method, const cJSON *params)
{
    struct notes *n = user;
    if (n->count < 8)
        snprintf(n->kinds[n->count], sizeof(n->kinds[0]), "%s:%s", method,
                 cJSON_GetStringValue(cJSON_GetObjectItem(params, "kind")));
    n->count++;
}

static void test_notifications_callback(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    struct notes n = {0};
    spell_agent_set_notify(p.a, on_note, &n);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"kind\":\"cast.queued\"}}\n"
                   "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"kind\":\"cast.started\"}}\n"
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"subscribed\":true}}\n");
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "events.subscribe", NULL, 2000, &r, NULL), SPELL_OK);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(r, "subscribed")));
    cJSON_Delete(r);
    CHECK_INT(n.count, 2);
    CHECK_STR(n.kinds[0], "event:cast.queued");
    CHECK_STR(n.kinds[1], "event:cast.started");
    pair_close(&p);
}

static void test_notifications_queued(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"kind\":\"a\"}}\n"
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n"
                   "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"kind\":\"b\"}}\n");
    CHECK_INT(spell_agent_call(p.a, "events.subscribe", NULL, 2000, NULL, NULL), SPELL_OK);
    struct spell_agent_msg m;
    CHECK_INT(spell_agent_wait_notification(p.a, 2000, &m), SPELL_OK);
    CHECK_INT(m.kind, SPELL_AGENT_MSG_NOTIFICATION);
    CHECK_STR(m.method, "event");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(m.params, "kind")), "a");
    spell_agent_msg_clear(&m);
    CHECK_INT(spell_agent_wait_notification(p.a, 2000, &m), SPELL_OK);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(m.params, "kind")), "b");
    spell_agent_msg_clear(&m);
    CHECK_INT(spell_agent_wait_notification(p.a, 50, &m), SPELL_ETIMEOUT);
    CHECK_INT(m.kind, SPELL_AGENT_MSG_NONE);
    pair_close(&p);
}

static void test_queue_drops_oldest(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    /* More notifications than the queue holds arrive before the answer;
     * they are fed directly, since together they pass a socket buffer. */
    char line[128];
    int total = SPELL_AGENT_NOTIFY_QUEUE_MAX + 5;
    for (int i = 0; i < total; i++) {
        int n = snprintf(line, sizeof(line),
                         "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"i\":%d}}\n", i);
        CHECK_INT(spell_agent_feed(p.a, line, (size_t)n), SPELL_OK);
    }
    const char *ans = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":7}\n";
    CHECK_INT(spell_agent_feed(p.a, ans, strlen(ans)), SPELL_OK);
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "x", NULL, 2000, &r, NULL), SPELL_OK);
    CHECK_INT(cJSON_GetNumberValue(r), 7);
    cJSON_Delete(r);
    CHECK_INT(spell_agent_dropped(p.a), 5);
    struct spell_agent_msg m;
    CHECK_INT(spell_agent_take(p.a, &m, NULL, 0), SPELL_OK);
    CHECK_INT(m.kind, SPELL_AGENT_MSG_NOTIFICATION);
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(m.params, "i")), 5);
    spell_agent_msg_clear(&m);
    pair_close(&p);
}

static void test_timeout_then_late_answer_dropped(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "cast.wait", NULL, 100, &r, NULL), SPELL_ETIMEOUT);
    CHECK(r == NULL);
    /* The answer to call 1 comes late; call 2 must get its own. */
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"late\"}\n"
                   "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":\"mine\"}\n");
    CHECK_INT(spell_agent_call(p.a, "agent.status", NULL, 2000, &r, NULL), SPELL_OK);
    CHECK_STR(cJSON_GetStringValue(r), "mine");
    cJSON_Delete(r);
    pair_close(&p);
}

static void test_agent_closes(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    close(p.peer);
    p.peer = -1;
    CHECK_INT(spell_agent_call(p.a, "x", NULL, 2000, NULL, NULL), SPELL_ENET);
    pair_close(&p);
}

static void test_answer_then_close(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}\n");
    shutdown(p.peer, SHUT_WR);
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "x", NULL, 2000, &r, NULL), SPELL_OK);
    cJSON_Delete(r);
    CHECK_INT(spell_agent_call(p.a, "x", NULL, 2000, &r, NULL), SPELL_ENET);
    pair_close(&p);
}

static void test_partial_line_then_close(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"res");
    close(p.peer);
    p.peer = -1;
    CHECK_INT(spell_agent_call(p.a, "x", NULL, 2000, NULL, NULL), SPELL_ENET);
    pair_close(&p);
}

static void test_malformed_lines(void)
{
    static const char *const bad[] = {
        "not json\n",
        "[1,2]\n",
        "{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":1}\n",
        "{\"id\":1,\"result\":1}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"result\":1}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":1}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":1}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{\"code\":1,\"message\":\"x\"}}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"x\",\"message\":\"x\"}}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1.5,\"message\":\"x\"}}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"boom\"}\n",
        "{\"jsonrpc\":\"2.0\",\"method\":5}\n",
        "{\"jsonrpc\":\"2.0\",\"method\":\"\"}\n",
        "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":3}\n",
        "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"id\":9}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":1,\"result\":1}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"a\\u0000b\"}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xff\xfe\"}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"trunc\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pair p;
        CHECK(pair_open(&p) == 0);
        peer_write(&p, bad[i]);
        char err[256] = "";
        CHECK_INT(spell_agent_call(p.a, "x", NULL, 2000, NULL, NULL), SPELL_EPARSE);
        /* The connection stays usable: the next call gets its answer. */
        peer_write(&p, bad[i]);
        peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":\"ok\"}\n");
        CHECK_INT(spell_agent_read(p.a), SPELL_OK);
        struct spell_agent_msg m;
        CHECK_INT(spell_agent_take(p.a, &m, err, sizeof(err)), SPELL_EPARSE);
        CHECK(err[0] != '\0');
        CHECK_INT(spell_agent_take(p.a, &m, err, sizeof(err)), SPELL_OK);
        CHECK_INT(m.kind, SPELL_AGENT_MSG_RESULT);
        CHECK_INT(m.id, 2);
        if (m.kind != SPELL_AGENT_MSG_RESULT)
            printf("#   case %zu\n", i);
        spell_agent_msg_clear(&m);
        pair_close(&p);
    }
}

static void test_error_answer_with_null_id_skipped(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\"}}\n"
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":true}\n");
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "x", NULL, 2000, &r, NULL), SPELL_OK);
    CHECK(cJSON_IsTrue(r));
    cJSON_Delete(r);
    pair_close(&p);
}

static void test_blank_lines_skipped(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    peer_write(&p, "\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":true}\r\n");
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "x", NULL, 2000, &r, NULL), SPELL_OK);
    CHECK(cJSON_IsTrue(r));
    cJSON_Delete(r);
    pair_close(&p);
}

struct big_writer {
    int fd;
    size_t size;    /* bytes of filler in the oversized line */
};

static void *write_big(void *arg)
{
    struct big_writer *w = arg;
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"";
    static const char after[] = "\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":\"small\"}\n";
    char *buf = malloc(w->size);
    if (!buf)
        return NULL;
    memset(buf, 'x', w->size);
    const char *parts[3] = {head, buf, after};
    size_t lens[3] = {sizeof(head) - 1, w->size, sizeof(after) - 1};
    for (int i = 0; i < 3; i++) {
        const char *s = parts[i];
        size_t len = lens[i];
        while (len > 0) {
            ssize_t n = write(w->fd, s, len);
            if (n <= 0)
                goto done;
            s += n;
            len -= (size_t)n;
        }
    }
done:
    free(buf);
    return NULL;
}

static void test_oversized_line(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    struct big_writer w = {p.peer, SPELL_AGENT_LINE_MAX + 100};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, write_big, &w) == 0);
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "x", NULL, 5000, &r, NULL), SPELL_ETOOBIG);
    CHECK(r == NULL);
    CHECK_INT(spell_agent_call(p.a, "y", NULL, 5000, &r, NULL), SPELL_OK);
    CHECK_STR(cJSON_GetStringValue(r), "small");
    cJSON_Delete(r);
    pthread_join(t, NULL);
    pair_close(&p);
}

static void test_line_at_the_cap_passes(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    /* A line of exactly SPELL_AGENT_LINE_MAX bytes, without its '\n'. */
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"";
    size_t fill = SPELL_AGENT_LINE_MAX - (sizeof(head) - 1) - 2;
    struct big_writer w = {p.peer, fill};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, write_big, &w) == 0);
    cJSON *r = NULL;
    CHECK_INT(spell_agent_call(p.a, "x", NULL, 5000, &r, NULL), SPELL_OK);
    CHECK_INT(strlen(cJSON_GetStringValue(r)), fill);
    cJSON_Delete(r);
    pthread_join(t, NULL);
    pair_close(&p);
}

static void test_feed_in_pieces_and_take(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    const char *text = "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"kind\":\"cast.log\"}}\n"
                       "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32020,\"message\":\"no\"}}\n";
    struct spell_agent_msg m;
    for (const char *s = text; *s; s++) {
        CHECK_INT(spell_agent_feed(p.a, s, 1), SPELL_OK);
        if (s[1] != '\0') {
            CHECK_INT(spell_agent_take(p.a, &m, NULL, 0), SPELL_OK);
            if (m.kind == SPELL_AGENT_MSG_NOTIFICATION) {
                CHECK(*s == '\n');
                CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(m.params, "kind")), "cast.log");
            } else {
                CHECK_INT(m.kind, SPELL_AGENT_MSG_NONE);
            }
            spell_agent_msg_clear(&m);
        }
    }
    CHECK_INT(spell_agent_take(p.a, &m, NULL, 0), SPELL_OK);
    CHECK_INT(m.kind, SPELL_AGENT_MSG_ERROR);
    CHECK_INT(m.id, 3);
    CHECK_INT(m.error.code, SPELL_AGENT_ERR_NO_CAST);
    CHECK_STR(m.error.message, "no");
    spell_agent_msg_clear(&m);
    CHECK_INT(spell_agent_take(p.a, &m, NULL, 0), SPELL_OK);
    CHECK_INT(m.kind, SPELL_AGENT_MSG_NONE);
    pair_close(&p);
}

static void test_feed_oversized_in_chunks(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    char *chunk = malloc(60000);
    CHECK(chunk != NULL);
    if (!chunk)
        return;
    memset(chunk, 'z', 60000);
    /* 20 chunks: 1.2 MB without a newline. */
    for (int i = 0; i < 20; i++)
        CHECK_INT(spell_agent_feed(p.a, chunk, 60000), SPELL_OK);
    const char *rest = "zzz\n{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":1}\n";
    CHECK_INT(spell_agent_feed(p.a, rest, strlen(rest)), SPELL_OK);
    struct spell_agent_msg m;
    char err[128] = "";
    CHECK_INT(spell_agent_take(p.a, &m, err, sizeof(err)), SPELL_ETOOBIG);
    CHECK(strstr(err, "larger") != NULL);
    CHECK_INT(spell_agent_take(p.a, &m, err, sizeof(err)), SPELL_OK);
    CHECK_INT(m.kind, SPELL_AGENT_MSG_RESULT);
    CHECK_INT(m.id, 4);
    spell_agent_msg_clear(&m);
    free(chunk);
    pair_close(&p);
}

static void test_feed_refuses_chunk_past_cap(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    size_t big = SPELL_AGENT_LINE_MAX + 128 * 1024;
    char *buf = malloc(big);
    CHECK(buf != NULL);
    if (!buf)
        return;
    memset(buf, 'a', big);
    CHECK_INT(spell_agent_feed(p.a, buf, big), SPELL_ETOOBIG);
    struct spell_agent_msg m;
    CHECK_INT(spell_agent_take(p.a, &m, NULL, 0), SPELL_OK);
    CHECK_INT(m.kind, SPELL_AGENT_MSG_NONE);
    CHECK_INT(spell_agent_feed(p.a, NULL, 3), SPELL_EINVAL);
    CHECK_INT(spell_agent_feed(p.a, NULL, 0), SPELL_OK);
    free(buf);
    pair_close(&p);
}

static void test_send_limits(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    int64_t id = 0;
    CHECK_INT(spell_agent_send(p.a, "", NULL, &id), SPELL_EINVAL);
    CHECK_INT(spell_agent_send(NULL, "x", NULL, &id), SPELL_EINVAL);
    cJSON *num = cJSON_CreateNumber(1);
    CHECK_INT(spell_agent_send(p.a, "x", num, &id), SPELL_EINVAL);
    cJSON_Delete(num);

    cJSON *params = cJSON_CreateObject();
    char *s = malloc(SPELL_AGENT_LINE_MAX + 1);
    CHECK(s != NULL);
    if (s) {
        memset(s, 'q', SPELL_AGENT_LINE_MAX);
        s[SPELL_AGENT_LINE_MAX] = '\0';
        cJSON_AddStringToObject(params, "big", s);
    }
    CHECK_INT(spell_agent_send(p.a, "x", params, &id), SPELL_ETOOBIG);
    free(s);
    cJSON_Delete(params);

    /* A string with a newline is escaped, so the line stays one line. */
    params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "text", "a\nb");
    CHECK_INT(spell_agent_send(p.a, "echo", params, &id), SPELL_OK);
    CHECK_INT(id, 1);
    CHECK(!spell_agent_want_write(p.a));
    cJSON *req = peer_read_line(&p);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(req, "params"), "text")),
              "a\nb");
    cJSON_Delete(req);
    cJSON_Delete(params);
    pair_close(&p);
}

static void test_nonblocking_loop(void)
{
    struct pair p;
    CHECK(pair_open(&p) == 0);
    int64_t id1 = 0, id2 = 0;
    CHECK_INT(spell_agent_send(p.a, "agent.status", NULL, &id1), SPELL_OK);
    CHECK_INT(spell_agent_send(p.a, "cast.list", NULL, &id2), SPELL_OK);
    CHECK_INT(id1, 1);
    CHECK_INT(id2, 2);
    CHECK(spell_agent_fd(p.a) >= 0);
    CHECK_INT(spell_agent_read(p.a), SPELL_OK);   /* nothing there yet */
    struct spell_agent_msg m;
    CHECK_INT(spell_agent_take(p.a, &m, NULL, 0), SPELL_OK);
    CHECK_INT(m.kind, SPELL_AGENT_MSG_NONE);
    peer_write(&p, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"casts\":[]}}\n"
                   "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"pid\":42}}\n");
    struct pollfd pfd = {spell_agent_fd(p.a), POLLIN, 0};
    CHECK(poll(&pfd, 1, 2000) == 1);
    CHECK_INT(spell_agent_read(p.a), SPELL_OK);
    CHECK_INT(spell_agent_take(p.a, &m, NULL, 0), SPELL_OK);
    CHECK_INT(m.kind, SPELL_AGENT_MSG_RESULT);
    CHECK_INT(m.id, 2);
    CHECK(cJSON_IsArray(cJSON_GetObjectItem(m.result, "casts")));
    spell_agent_msg_clear(&m);
    CHECK_INT(spell_agent_take(p.a, &m, NULL, 0), SPELL_OK);
    CHECK_INT(m.id, 1);
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(m.result, "pid")), 42);
    spell_agent_msg_clear(&m);
    close(p.peer);
    p.peer = -1;
    CHECK_INT(spell_agent_read(p.a), SPELL_ENET);
    pair_close(&p);
}

static void test_connect_paths(void)
{
    char dir[] = "/tmp/spell-agent-client-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[200];
    snprintf(path, sizeof(path), "%s/agent.sock", dir);
    struct spell_agent *a = NULL;
    char err[256] = "";
    CHECK_INT(spell_agent_connect(NULL, path, &a, err, sizeof(err)), SPELL_ENOTFOUND);
    CHECK(strstr(err, "not running") != NULL);
    CHECK(a == NULL);

    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {0};
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(listen(lfd, 4) == 0);
    CHECK_INT(spell_agent_connect(NULL, path, &a, err, sizeof(err)), SPELL_OK);
    int cfd = accept(lfd, NULL, NULL);
    CHECK(cfd >= 0);
    const char *ans = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocol\":1,\"agent\":\"x\"}}\n";
    CHECK(write(cfd, ans, strlen(ans)) == (ssize_t)strlen(ans));
    CHECK_INT(spell_agent_hello(a, "t", 2000, NULL, NULL), SPELL_OK);
    spell_agent_free(a);
    close(cfd);
    close(lfd);
    unlink(path);

    char longpath[300];
    memset(longpath, 'p', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    CHECK_INT(spell_agent_connect(NULL, longpath, &a, err, sizeof(err)), SPELL_ETOOBIG);
    CHECK_INT(spell_agent_connect(NULL, NULL, &a, err, sizeof(err)), SPELL_EINVAL);
    rmdir(dir);
}

static const char *env_runtime(void *user, const char *name)
{
    if (strcmp(name, "XDG_RUNTIME_DIR") == 0)
        return user;
    return NULL;
}

static void test_connect_from_env(void)
{
    char dir[] = "/tmp/spell-agent-env-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct spell_env env = {env_runtime, dir};
    struct spell_agent *a = NULL;
    char err[256] = "";
    CHECK_INT(spell_agent_connect(&env, NULL, &a, err, sizeof(err)), SPELL_ENOTFOUND);
    char want[200];
    snprintf(want, sizeof(want), "%s/spell/agent.sock", dir);
    CHECK(strstr(err, want) != NULL);
    struct spell_env none = {env_runtime, NULL};
    CHECK_INT(spell_agent_connect(&none, NULL, &a, err, sizeof(err)), SPELL_ENOTFOUND);
    rmdir(dir);
}

static void test_null_safety(void)
{
    spell_agent_free(NULL);
    spell_agent_error_clear(NULL);
    spell_agent_msg_clear(NULL);
    CHECK_INT(spell_agent_fd(NULL), -1);
    CHECK(!spell_agent_want_write(NULL));
    CHECK_INT(spell_agent_from_fd(-1, NULL), SPELL_EINVAL);
    struct spell_agent *a = (struct spell_agent *)1;
    CHECK_INT(spell_agent_from_fd(-1, &a), SPELL_EINVAL);
    CHECK(a == NULL);
    CHECK_INT(spell_agent_call(NULL, "x", NULL, 10, NULL, NULL), SPELL_EINVAL);
}

int main(void)
{
    RUN(test_hello_ok);
    RUN(test_hello_version_mismatch_error);
    RUN(test_hello_other_protocol_in_result);
    RUN(test_call_result_and_ids);
    RUN(test_call_null_result);
    RUN(test_call_server_error);
    RUN(test_error_without_data_and_long_message);
    RUN(test_sentences);
    RUN(test_notifications_callback);
    RUN(test_notifications_queued);
    RUN(test_queue_drops_oldest);
    RUN(test_timeout_then_late_answer_dropped);
    RUN(test_agent_closes);
    RUN(test_answer_then_close);
    RUN(test_partial_line_then_close);
    RUN(test_malformed_lines);
    RUN(test_error_answer_with_null_id_skipped);
    RUN(test_blank_lines_skipped);
    RUN(test_oversized_line);
    RUN(test_line_at_the_cap_passes);
    RUN(test_feed_in_pieces_and_take);
    RUN(test_feed_oversized_in_chunks);
    RUN(test_feed_refuses_chunk_past_cap);
    RUN(test_send_limits);
    RUN(test_nonblocking_loop);
    RUN(test_connect_paths);
    RUN(test_connect_from_env);
    RUN(test_null_safety);
    return tap_done();
}
