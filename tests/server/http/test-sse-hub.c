/* Unit tests for server/http/sse_hub.c without any network: backlog and
 * live ordering, exact resume, terminal events, queue caps, shutdown,
 * pings and concurrent publishing; and the write-through path over Unix
 * socket pairs: chunk framing, a reader that stops reading, a peer that
 * hangs up, ending after queued bytes, cutting, pings and many streams
 * split over writer threads. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "spell/buf.h"
#include "spell/errors.h"

#include "sse_hub.h"
#include "tap.h"

struct waker {
    int woken;
    int idled;
};

static void wake(void *ud)
{
    ((struct waker *)ud)->woken++;
}

static void idle(void *ud)
{
    ((struct waker *)ud)->idled++;
}

/* Reads everything queued into out; returns the last read result. */
static enum sse_read_result drain(struct sse_sub *sub, struct spell_buf *out, struct waker *w)
{
    char buf[100];
    size_t n;
    enum sse_read_result r;

    while ((r = sse_sub_read(sub, buf, sizeof buf, &n, idle, w)) == SSE_READ_DATA)
        spell_buf_add(out, buf, n);
    return r;
}

static void test_backlog_then_live(void)
{
    struct sse_hub *hub = NULL;
    struct sse_sub *sub = NULL;
    struct spell_buf out;
    struct waker w = {0, 0};

    spell_buf_init(&out, 1 << 20);
    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, "cst_a", 0, &sub), SPELL_OK);
    sse_sub_set_waker(sub, wake, &w);
    CHECK_INT(sse_hub_count(hub), 1);
    /* Published while the backlog is being read: 2 is also in the backlog,
     * 3 is not. */
    CHECK_INT(sse_hub_publish(hub, "cst_a", 2, "cast.started", "{\"n\":2}", 0), SPELL_OK);
    CHECK_INT(sse_hub_publish(hub, "cst_a", 3, "cast.progress", "{\"n\":3}", 0), SPELL_OK);
    CHECK_INT(sse_hub_publish(hub, "other", 1, "cast.queued", "{}", 0), SPELL_OK);
    /* Nothing is readable before start. */
    CHECK_INT(drain(sub, &out, &w), SSE_READ_IDLE);
    CHECK_INT(out.len, 0);
    CHECK_INT(sse_sub_backlog(sub, 1, "cast.queued", "{\"n\":1}", 0), SPELL_OK);
    CHECK_INT(sse_sub_backlog(sub, 2, "cast.started", "{\"n\":2}", 0), SPELL_OK);
    CHECK_INT(sse_sub_backlog(sub, 2, "cast.started", "{\"n\":2}", 0), SPELL_OK);
    sse_sub_start(sub);
    CHECK_INT(w.woken, 1);
    CHECK_INT(drain(sub, &out, &w), SSE_READ_IDLE);
    CHECK_STR(spell_buf_str(&out), "id: 1\nevent: cast.queued\ndata: {\"n\":1}\n\n"
                                   "id: 2\nevent: cast.started\ndata: {\"n\":2}\n\n"
                                   "id: 3\nevent: cast.progress\ndata: {\"n\":3}\n\n");
    CHECK_INT(sse_sub_last_seq(sub), 3);
    spell_buf_reset(&out);
    /* Live, a duplicate, then the terminal event and one after it. */
    CHECK_INT(sse_hub_publish(hub, "cst_a", 3, "cast.progress", "{\"n\":3}", 0), SPELL_OK);
    CHECK_INT(w.woken, 1);
    CHECK_INT(sse_hub_publish(hub, "cst_a", 4, "cast.succeeded", "{\"final\":true}", 1),
              SPELL_OK);
    CHECK_INT(w.woken, 2);
    CHECK_INT(sse_hub_publish(hub, "cst_a", 5, "cast.progress", "{}", 0), SPELL_OK);
    CHECK_INT(drain(sub, &out, &w), SSE_READ_END);
    CHECK_STR(spell_buf_str(&out), "id: 4\nevent: cast.succeeded\ndata: {\"final\":true}\n\n");
    sse_sub_release(sub);
    CHECK_INT(sse_hub_count(hub), 0);
    sse_hub_free(hub);
    spell_buf_free(&out);
}

static void test_resume_after(void)
{
    struct sse_hub *hub = NULL;
    struct sse_sub *sub = NULL;
    struct spell_buf out;
    struct waker w = {0, 0};

    spell_buf_init(&out, 1 << 20);
    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, "c", 5, &sub), SPELL_OK);
    CHECK_INT(sse_sub_backlog(sub, 4, "t", "{}", 0), SPELL_OK);  /* at or below: skipped */
    CHECK_INT(sse_sub_backlog(sub, 5, "t", "{}", 0), SPELL_OK);
    CHECK_INT(sse_sub_backlog(sub, 6, "t", "{}", 0), SPELL_OK);
    sse_sub_start(sub);
    CHECK_INT(sse_hub_publish(hub, "c", 6, "t", "{}", 0), SPELL_OK);
    CHECK_INT(sse_hub_publish(hub, "c", 7, "t", "{}", 0), SPELL_OK);
    CHECK_INT(drain(sub, &out, &w), SSE_READ_IDLE);
    CHECK_STR(spell_buf_str(&out), "id: 6\nevent: t\ndata: {}\n\nid: 7\nevent: t\ndata: {}\n\n");
    sse_sub_release(sub);
    sse_hub_free(hub);
    spell_buf_free(&out);
}

static void test_idle_and_wake(void)
{
    struct sse_hub *hub = NULL;
    struct sse_sub *sub = NULL;
    struct spell_buf out;
    struct waker w = {0, 0};

    spell_buf_init(&out, 1 << 20);
    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, "c", 0, &sub), SPELL_OK);
    sse_sub_set_waker(sub, wake, &w);
    sse_sub_start(sub);
    CHECK_INT(w.woken, 0);
    CHECK_INT(drain(sub, &out, &w), SSE_READ_IDLE);
    CHECK_INT(w.idled, 1);
    CHECK_INT(sse_hub_publish(hub, "c", 1, "t", "{}", 0), SPELL_OK);
    CHECK_INT(w.woken, 1);
    /* Not idle any more: a second publish does not wake again. */
    CHECK_INT(sse_hub_publish(hub, "c", 2, "t", "{}", 0), SPELL_OK);
    CHECK_INT(w.woken, 1);
    CHECK_INT(sse_sub_raw(sub, ": hi\n\n", 6), SPELL_OK);
    CHECK_INT(drain(sub, &out, &w), SSE_READ_IDLE);
    CHECK_STR(spell_buf_str(&out), "id: 1\nevent: t\ndata: {}\n\nid: 2\nevent: t\ndata: {}\n\n: hi\n\n");
    sse_sub_end(sub);
    CHECK_INT(w.woken, 2);
    CHECK_INT(drain(sub, &out, &w), SSE_READ_END);
    sse_sub_release(sub);
    sse_hub_free(hub);
    spell_buf_free(&out);
}

static void test_bad_arguments(void)
{
    struct sse_hub *hub = NULL;
    struct sse_sub *sub = NULL;
    char longname[SSE_HUB_CHANNEL_MAX + 2];
    char *bigdata = malloc(SSE_HUB_DATA_MAX + 2);

    memset(longname, 'c', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    memset(bigdata, 'd', SSE_HUB_DATA_MAX + 1);
    bigdata[SSE_HUB_DATA_MAX + 1] = '\0';
    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, longname, 0, &sub), SPELL_EINVAL);
    CHECK_INT(sse_hub_subscribe(hub, "", 0, &sub), SPELL_EINVAL);
    CHECK_INT(sse_hub_subscribe(hub, NULL, 0, &sub), SPELL_EINVAL);
    CHECK(sub == NULL);
    CHECK_INT(sse_hub_publish(hub, longname, 1, "t", "{}", 0), SPELL_EINVAL);
    CHECK_INT(sse_hub_publish(hub, "c", 0, "t", "{}", 0), SPELL_EINVAL);
    CHECK_INT(sse_hub_publish(hub, "c", 1, NULL, "{}", 0), SPELL_EINVAL);
    CHECK_INT(sse_hub_publish(hub, "c", 1, "t", NULL, 0), SPELL_EINVAL);
    CHECK_INT(sse_hub_publish(hub, "c", 1, "t\nx", "{}", 0), SPELL_EINVAL);
    CHECK_INT(sse_hub_publish(hub, "c", 1, "t", "\xff\xfe", 0), SPELL_EINVAL);
    CHECK_INT(sse_hub_publish(hub, "c", 1, "t", bigdata, 0), SPELL_EINVAL);
    bigdata[SSE_HUB_DATA_MAX] = '\0';
    CHECK_INT(sse_hub_publish(hub, "c", 1, "t", bigdata, 0), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, "c", 0, &sub), SPELL_OK);
    CHECK_INT(sse_sub_backlog(sub, 0, "t", "{}", 0), SPELL_EINVAL);
    CHECK_INT(sse_sub_backlog(sub, 1, "t", "\xc3", 0), SPELL_EINVAL);
    CHECK_INT(sse_sub_raw(sub, NULL, 3), SPELL_EINVAL);
    sse_sub_release(sub);
    sse_hub_free(hub);
    free(bigdata);
}

static void test_queue_cap_ends_stream(void)
{
    struct sse_hub *hub = NULL;
    struct sse_sub *sub = NULL, *early = NULL, *third = NULL;
    struct sse_hub_config cfg = {0};
    struct spell_buf out;
    struct waker w = {0, 0};
    char data[200];

    memset(data, 'x', sizeof data - 1);
    data[sizeof data - 1] = '\0';
    spell_buf_init(&out, 1 << 20);
    cfg.max_queue = 1024;
    cfg.max_subs = 2;
    CHECK_INT(sse_hub_new(&cfg, &hub), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, "c", 0, &sub), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, "c", 0, &early), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, "c", 0, &third), SPELL_ETOOBIG);
    CHECK(third == NULL);
    sse_sub_start(sub);
    /* A reader that never reads: the queue fills and the stream ends after
     * what fits; the client resumes from its last id. */
    for (uint64_t s = 1; s <= 20; s++)
        CHECK_INT(sse_hub_publish(hub, "c", s, "t", data, 0), SPELL_OK);
    CHECK_INT(drain(sub, &out, &w), SSE_READ_END);
    CHECK(out.len <= 1024);
    CHECK(sse_sub_last_seq(sub) >= 3 && sse_sub_last_seq(sub) < 20);
    /* The one still in its backlog phase overflowed too: after start it
     * ends at once. */
    sse_sub_start(early);
    spell_buf_reset(&out);
    CHECK_INT(drain(early, &out, &w), SSE_READ_END);
    sse_sub_release(sub);
    sse_sub_release(early);
    sse_hub_free(hub);
    spell_buf_free(&out);
}

static void test_shutdown(void)
{
    struct sse_hub *hub = NULL;
    struct sse_sub *a = NULL, *b = NULL, *c = NULL;
    struct spell_buf out;
    struct waker w = {0, 0};

    spell_buf_init(&out, 1 << 20);
    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, "x", 0, &a), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, "y", 0, &b), SPELL_OK);
    sse_sub_set_waker(a, wake, &w);
    sse_sub_start(a);
    sse_sub_start(b);
    CHECK_INT(sse_hub_publish(hub, "y", 1, "t", "{}", 0), SPELL_OK);
    CHECK_INT(drain(a, &out, &w), SSE_READ_IDLE);
    sse_hub_shutdown(hub);
    CHECK_INT(w.woken, 1);
    CHECK_INT(drain(a, &out, &w), SSE_READ_END);
    /* b still gets what was queued before the end. */
    CHECK_INT(drain(b, &out, &w), SSE_READ_END);
    CHECK_STR(spell_buf_str(&out), "id: 1\nevent: t\ndata: {}\n\n");
    CHECK_INT(sse_hub_subscribe(hub, "z", 0, &c), SPELL_EABORT);
    sse_sub_release(a);
    sse_sub_release(b);
    sse_hub_free(hub);
    spell_buf_free(&out);
}

static void test_ping(void)
{
    struct sse_hub *hub = NULL;
    struct sse_sub *sub = NULL;
    struct sse_hub_config cfg = {0};
    struct spell_buf out;
    struct waker w = {0, 0};

    spell_buf_init(&out, 1 << 20);
    cfg.ping_ms = 20;
    CHECK_INT(sse_hub_new(&cfg, &hub), SPELL_OK);
    CHECK_INT(sse_hub_subscribe(hub, "c", 0, &sub), SPELL_OK);
    sse_sub_set_waker(sub, wake, &w);
    sse_sub_start(sub);
    CHECK_INT(drain(sub, &out, &w), SSE_READ_IDLE);
    for (int i = 0; i < 500 && out.len < 16; i++) {
        usleep(10000);
        drain(sub, &out, &w);
    }
    /* Several pings, each a whole comment; an unread ping is not doubled. */
    CHECK(out.len >= 16);
    CHECK(strncmp(spell_buf_str(&out), ": ping\n\n: ping\n\n", 16) == 0);
    CHECK(w.woken >= 2);
    sse_sub_release(sub);
    sse_hub_free(hub);
    spell_buf_free(&out);
}

struct pub {
    struct sse_hub *hub;
    int count;
    atomic_int done;
};

static void *publish_many(void *arg)
{
    struct pub *p = arg;
    for (int i = 1; i <= p->count; i++)
        sse_hub_publish(p->hub, "race", (uint64_t)i, "t", "{}", i == p->count);
    atomic_store(&p->done, 1);
    return NULL;
}

/*
 * Subscribers join while events fly.  Each feeds a backlog of the 30
 * events after its resume point, as a store would, then reads: the ids it
 * sees must start right after the resume point, strictly increase, have no
 * gap inside the backlog, and no id may appear twice.
 */
static void test_concurrent_join(void)
{
    struct sse_hub *hub = NULL;
    struct pub p;
    pthread_t t;
    int ok = 1;

    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    p.hub = hub;
    p.count = 3000;
    atomic_init(&p.done, 0);
    pthread_create(&t, NULL, publish_many, &p);
    for (int k = 0; k < 20; k++) {
        struct sse_sub *sub = NULL;
        struct spell_buf out;
        struct waker w = {0, 0};
        uint64_t after = (uint64_t)k * 50, expect = after + 1;
        const char *s;
        spell_buf_init(&out, 1 << 22);
        if (sse_hub_subscribe(hub, "race", after, &sub) != SPELL_OK) {
            ok = 0;
            break;
        }
        for (uint64_t seq = after + 1; seq <= after + 30; seq++)
            sse_sub_backlog(sub, seq, "t", "{}", 0);
        sse_sub_start(sub);
        for (int spin = 0; spin < 200000; spin++) {
            int finished = atomic_load(&p.done);
            if (drain(sub, &out, &w) == SSE_READ_END || finished)
                break;
            usleep(50);
        }
        drain(sub, &out, &w);
        for (s = spell_buf_str(&out); (s = strstr(s, "id: ")) != NULL; s += 4) {
            uint64_t id = strtoull(s + 4, NULL, 10);
            if (id < expect || (id != expect && expect <= after + 30))
                ok = 0;
            expect = id + 1;
        }
        if (expect <= after + 30)
            ok = 0;
        sse_sub_release(sub);
        spell_buf_free(&out);
    }
    pthread_join(t, NULL);
    CHECK(ok);
    CHECK_INT(sse_hub_count(hub), 0);
    sse_hub_free(hub);
}

/* ---- write-through ---- */

/* A waker called from the hub's threads. */
struct awaker {
    atomic_int woken;
    atomic_int idled;
};

static void awake(void *ud)
{
    atomic_fetch_add(&((struct awaker *)ud)->woken, 1);
}

static void aidle(void *ud)
{
    atomic_fetch_add(&((struct awaker *)ud)->idled, 1);
}

/* Waits (bounded) until *v reaches want; returns whether it did. */
static int wait_atomic(atomic_int *v, int want)
{
    for (int i = 0; i < 2000 && atomic_load(v) < want; i++)
        usleep(5000);
    return atomic_load(v) >= want;
}

/* A subscription on channel whose socket is sv[0]; the client end is
 * sv[1].  Started, backlog read, gone idle onto the write-through path. */
static struct sse_sub *direct_sub(struct sse_hub *hub, const char *channel, int sv[2],
                                  struct awaker *w)
{
    struct sse_sub *sub = NULL;
    char buf[256];
    size_t n;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return NULL;
    if (sse_hub_subscribe(hub, channel, 0, &sub) != SPELL_OK)
        return NULL;
    sse_sub_set_waker(sub, awake, w);
    if (sse_sub_set_socket(sub, sv[0]) != SPELL_OK)
        return NULL;
    sse_sub_start(sub);
    while (sse_sub_read(sub, buf, sizeof buf, &n, aidle, w) == SSE_READ_DATA)
        ;
    return sub;
}

/* Reads what the client end has without blocking longer than wait_ms for
 * the first byte. */
static void read_client(int fd, struct spell_buf *out, int wait_ms)
{
    char buf[4096];
    struct pollfd p = {fd, POLLIN, 0};

    while (poll(&p, 1, wait_ms) == 1) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            break;
        spell_buf_add(out, buf, (size_t)n);
        wait_ms = 0;
    }
}

static void test_direct_chunks(void)
{
    struct sse_hub *hub = NULL;
    struct sse_sub *sub;
    struct awaker w;
    struct spell_buf got;
    int sv[2];
    char buf[64];
    size_t n;

    atomic_init(&w.woken, 0);
    atomic_init(&w.idled, 0);
    spell_buf_init(&got, 1 << 20);
    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    CHECK(sse_sub_set_socket(NULL, 3) == SPELL_EINVAL);
    sub = direct_sub(hub, "d", sv, &w);
    CHECK(sub != NULL);
    CHECK_INT(sse_sub_set_socket(sub, -1), SPELL_EINVAL);
    CHECK_INT(atomic_load(&w.idled), 1);
    CHECK_INT(sse_hub_direct_count(hub), 1);
    CHECK_INT(sse_hub_publish(hub, "d", 1, "cast.progress", "{\"n\":1}", 0), SPELL_OK);
    CHECK_INT(sse_hub_publish(hub, "d", 1, "cast.progress", "{\"n\":1}", 0), SPELL_OK);
    CHECK_INT(sse_sub_raw(sub, ": hi\n\n", 6), SPELL_OK);
    CHECK_INT(sse_hub_publish(hub, "d", 2, "cast.succeeded", "{}", 1), SPELL_OK);
    CHECK_INT(sse_hub_publish(hub, "d", 3, "cast.progress", "{}", 0), SPELL_OK);
    /* Each event once, as one chunk each, the duplicate and the event
     * after the end left out; then the reader gets the stream back. */
    read_client(sv[1], &got, 1000);
    CHECK_STR(spell_buf_str(&got), "2a\r\nid: 1\nevent: cast.progress\ndata: {\"n\":1}\n\n\r\n"
                                   "6\r\n: hi\n\n\r\n"
                                   "26\r\nid: 2\nevent: cast.succeeded\ndata: {}\n\n\r\n");
    CHECK_INT(atomic_load(&w.woken), 1);
    CHECK_INT(sse_hub_direct_count(hub), 0);
    CHECK_INT(sse_sub_last_seq(sub), 2);
    CHECK_INT(sse_sub_direct_bytes(sub), 0x2a + 6 + 0x26);
    CHECK_INT(sse_sub_read(sub, buf, sizeof buf, &n, aidle, &w), SSE_READ_END);
    sse_sub_release(sub);
    close(sv[0]);
    close(sv[1]);
    sse_hub_free(hub);
    spell_buf_free(&got);
}

/* A client that stops reading: its bytes queue up to the cap, then it is
 * cut; a stream next to it gets every event. */
static void test_direct_slow_reader_cut(void)
{
    struct sse_hub *hub = NULL;
    struct sse_hub_config cfg = {0};
    struct sse_sub *slow, *fast;
    struct awaker ws, wf;
    struct spell_buf got;
    int s1[2], s2[2], small = 4096, ok = 1;
    char data[1100], buf[64];
    size_t n;
    uint64_t seq;

    atomic_init(&ws.woken, 0);
    atomic_init(&ws.idled, 0);
    atomic_init(&wf.woken, 0);
    atomic_init(&wf.idled, 0);
    spell_buf_init(&got, 1 << 24);
    memset(data, 'x', sizeof data - 1);
    data[sizeof data - 1] = '\0';
    cfg.max_queue = 8192;
    CHECK_INT(sse_hub_new(&cfg, &hub), SPELL_OK);
    slow = direct_sub(hub, "s", s1, &ws);
    fast = direct_sub(hub, "s", s2, &wf);
    CHECK(slow && fast);
    setsockopt(s1[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    for (seq = 1; seq <= 400 && atomic_load(&ws.woken) == 0; seq++) {
        CHECK_INT(sse_hub_publish(hub, "s", seq, "t", data, 0), SPELL_OK);
        read_client(s2[1], &got, 0);
    }
    CHECK_INT(atomic_load(&ws.woken), 1);
    CHECK_INT(sse_sub_read(slow, buf, sizeof buf, &n, aidle, &ws), SSE_READ_ERROR);
    CHECK_INT(sse_hub_direct_count(hub), 1);
    CHECK_INT(sse_hub_publish(hub, "s", seq, "t", "{}", 1), SPELL_OK);
    CHECK(wait_atomic(&wf.woken, 1));
    read_client(s2[1], &got, 100);
    /* The fast stream: every event, in order, then the end. */
    for (uint64_t i = 1; i <= seq; i++) {
        char id[32];
        snprintf(id, sizeof id, "id: %llu\n", (unsigned long long)i);
        if (!strstr(spell_buf_str(&got), id))
            ok = 0;
    }
    CHECK(ok);
    CHECK_INT(sse_sub_read(fast, buf, sizeof buf, &n, aidle, &wf), SSE_READ_END);
    sse_sub_release(slow);
    sse_sub_release(fast);
    for (int i = 0; i < 2; i++) {
        close(s1[i]);
        close(s2[i]);
    }
    sse_hub_free(hub);
    spell_buf_free(&got);
}

/* The peer hangs up while the stream is idle: the hub notices without an
 * event to send, and the reader reports an error. */
static void test_direct_peer_gone(void)
{
    struct sse_hub *hub = NULL;
    struct sse_sub *sub;
    struct awaker w;
    int sv[2];
    char buf[64];
    size_t n;

    atomic_init(&w.woken, 0);
    atomic_init(&w.idled, 0);
    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    sub = direct_sub(hub, "g", sv, &w);
    CHECK(sub != NULL);
    CHECK_INT(sse_hub_direct_count(hub), 1);
    close(sv[1]);
    CHECK(wait_atomic(&w.woken, 1));
    CHECK_INT(sse_hub_direct_count(hub), 0);
    CHECK_INT(sse_sub_read(sub, buf, sizeof buf, &n, aidle, &w), SSE_READ_ERROR);
    /* Publishing to the channel afterwards touches nothing. */
    CHECK_INT(sse_hub_publish(hub, "g", 1, "t", "{}", 0), SPELL_OK);
    sse_sub_release(sub);
    close(sv[0]);
    sse_hub_free(hub);
}

/* Ending with bytes still queued: the reader gets the stream back only
 * once they are out, and the client sees whole chunks. */
static void test_direct_end_after_queue(void)
{
    struct sse_hub *hub = NULL;
    struct sse_sub *sub;
    struct awaker w;
    struct spell_buf got;
    int sv[2], small = 4096;
    char data[900], buf[64];
    size_t n;

    atomic_init(&w.woken, 0);
    atomic_init(&w.idled, 0);
    spell_buf_init(&got, 1 << 22);
    memset(data, 'y', sizeof data - 1);
    data[sizeof data - 1] = '\0';
    CHECK_INT(sse_hub_new(NULL, &hub), SPELL_OK);
    sub = direct_sub(hub, "e", sv, &w);
    CHECK(sub != NULL);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    for (uint64_t seq = 1; seq <= 30; seq++)
        CHECK_INT(sse_hub_publish(hub, "e", seq, "t", data, 0), SPELL_OK);
    sse_sub_end(sub);
    /* Bytes are queued (the socket holds far less than 30 events): no
     * hand-back yet. */
    CHECK_INT(atomic_load(&w.woken), 0);
    CHECK_INT(sse_hub_direct_count(hub), 1);
    for (int i = 0; i < 400 && atomic_load(&w.woken) == 0; i++)
        read_client(sv[1], &got, 10);
    CHECK_INT(atomic_load(&w.woken), 1);
    read_client(sv[1], &got, 0);
    CHECK(got.len > 30 * 900);
    CHECK(strstr(spell_buf_str(&got), "id: 30\n") != NULL);
    CHECK(got.len >= 4 && memcmp(got.ptr + got.len - 4, "\n\n\r\n", 4) == 0);
    CHECK_INT(sse_sub_read(sub, buf, sizeof buf, &n, aidle, &w), SSE_READ_END);
    sse_sub_release(sub);
    close(sv[0]);
    close(sv[1]);
    sse_hub_free(hub);
    spell_buf_free(&got);
}

static void test_direct_cut_shutdown_ping(void)
{
    struct sse_hub *hub = NULL;
    struct sse_hub_config cfg = {0};
    struct sse_sub *a, *b, *c = NULL;
    struct awaker wa, wb;
    struct spell_buf got;
    int sa[2], sb[2];
    char buf[64];
    size_t n;

    atomic_init(&wa.woken, 0);
    atomic_init(&wa.idled, 0);
    atomic_init(&wb.woken, 0);
    atomic_init(&wb.idled, 0);
    spell_buf_init(&got, 1 << 20);
    cfg.ping_ms = 20;
    CHECK_INT(sse_hub_new(&cfg, &hub), SPELL_OK);
    a = direct_sub(hub, "p", sa, &wa);
    b = direct_sub(hub, "p", sb, &wb);
    CHECK(a && b);
    /* Pings go straight to the sockets as chunks. */
    for (int i = 0; i < 200 && got.len < 30; i++)
        read_client(sb[1], &got, 10);
    CHECK(strncmp(spell_buf_str(&got), "8\r\n: ping\n\n\r\n8\r\n: ping\n\n\r\n", 26) == 0);
    CHECK_INT(atomic_load(&wb.woken), 0);
    /* Cut: at once, with an error. */
    sse_sub_cut(a);
    CHECK_INT(atomic_load(&wa.woken), 1);
    CHECK_INT(sse_sub_read(a, buf, sizeof buf, &n, aidle, &wa), SSE_READ_ERROR);
    /* Shutdown: the other ends cleanly. */
    sse_hub_shutdown(hub);
    CHECK_INT(atomic_load(&wb.woken), 1);
    CHECK_INT(sse_sub_read(b, buf, sizeof buf, &n, aidle, &wb), SSE_READ_END);
    CHECK_INT(sse_hub_direct_count(hub), 0);
    CHECK_INT(sse_hub_subscribe(hub, "p", 0, &c), SPELL_EABORT);
    sse_sub_release(a);
    sse_sub_release(b);
    for (int i = 0; i < 2; i++) {
        close(sa[i]);
        close(sb[i]);
    }
    sse_hub_free(hub);
    spell_buf_free(&got);
}

#define SPLIT_STREAMS 600

/* Enough streams that each event is split over the writer threads: every
 * stream gets every event once, in order, as whole chunks. */
static void test_direct_writers_split(void)
{
    struct sse_hub *hub = NULL;
    struct sse_hub_config cfg = {0};
    static struct sse_sub *subs[SPLIT_STREAMS];
    static int sv[SPLIT_STREAMS][2];
    static struct awaker w[SPLIT_STREAMS];
    struct spell_buf got, want;
    int ok = 1, woken = 1;

    cfg.writers = 3;
    CHECK_INT(sse_hub_new(&cfg, &hub), SPELL_OK);
    spell_buf_init(&got, 1 << 20);
    spell_buf_init(&want, 1 << 20);
    for (int i = 0; i < SPLIT_STREAMS; i++) {
        atomic_init(&w[i].woken, 0);
        atomic_init(&w[i].idled, 0);
        subs[i] = direct_sub(hub, "split", sv[i], &w[i]);
        if (!subs[i])
            ok = 0;
    }
    CHECK(ok);
    CHECK_INT(sse_hub_direct_count(hub), SPLIT_STREAMS);
    for (uint64_t seq = 1; seq <= 5; seq++) {
        char id[32];
        CHECK_INT(sse_hub_publish(hub, "split", seq, "t", "{}", seq == 5), SPELL_OK);
        snprintf(id, sizeof id, "%llu", (unsigned long long)seq);
        spell_buf_addf(&want, "%zx\r\nid: %s\nevent: t\ndata: {}\n\n\r\n", 24 + strlen(id), id);
    }
    for (int i = 0; i < SPLIT_STREAMS; i++) {
        spell_buf_reset(&got);
        read_client(sv[i][1], &got, 1000);
        if (strcmp(spell_buf_str(&got), spell_buf_str(&want)) != 0)
            ok = 0;
        if (atomic_load(&w[i].woken) != 1)
            woken = 0;
        sse_sub_release(subs[i]);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    CHECK(ok);
    CHECK(woken);
    sse_hub_free(hub);
    cfg.writers = SSE_HUB_WRITERS_MAX + 1;
    CHECK_INT(sse_hub_new(&cfg, &hub), SPELL_EINVAL);
    spell_buf_free(&got);
    spell_buf_free(&want);
}

int main(void)
{
    RUN(test_direct_chunks);
    RUN(test_direct_slow_reader_cut);
    RUN(test_direct_peer_gone);
    RUN(test_direct_end_after_queue);
    RUN(test_direct_cut_shutdown_ping);
    RUN(test_direct_writers_split);
    RUN(test_backlog_then_live);
    RUN(test_resume_after);
    RUN(test_idle_and_wake);
    RUN(test_bad_arguments);
    RUN(test_queue_cap_ends_stream);
    RUN(test_shutdown);
    RUN(test_ping);
    RUN(test_concurrent_join);
    return tap_done();
}
