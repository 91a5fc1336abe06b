/* Unit tests for server/http/sse_hub.c without any network: backlog and
 * live ordering, exact resume, terminal events, queue caps, shutdown,
 * pings and concurrent publishing. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
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

int main(void)
{
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
