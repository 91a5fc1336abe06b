/*
 * Tests of server/exec: the service executor running real programs (small
 * shell scripts written into a temporary folder), the cast lifecycle with
 * its store transitions and ledger entries, and the local bus delivering
 * to a real SSE hub.
 *
 * Each case builds a fresh server context: a temporary SQLite store with
 * one user, the hub, the metrics registry, the local bus and an executor.
 * A cast is reserved the way the API part does it (store_cast_reserve,
 * then lifecycle_publish_pending, then exec_submit), and the test waits
 * for its terminal state with a generous deadline.  Spells keep their own
 * run times short (timeouts of 1 s, sleepers of at most 30 s that are
 * always killed), so no assertion depends on the machine being fast.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "spell/clock.h"
#include "spell/crypto.h"
#include "spell/errors.h"

#include "bus-impl.h"
#include "bus.h"
#include "exec-impl.h"
#include "exec.h"
#include "lifecycle.h"
#include "metrics.h"
#include "server.h"
#include "sse_hub.h"
#include "store.h"
#include "tap.h"

/* The assembly part provides this in server/server.c; the tests carry
 * their own copy. */
int64_t srv_now_ms(const struct srv_clock *c)
{
    if (c && c->now_ms)
        return c->now_ms(c->ud);
    return spell_time_now_ms();
}

#define WAIT_MS 20000

struct fixture {
    char dir[64];
    struct server srv;
    struct store *store;
    struct sse_hub *hub;
    struct metrics *metrics;
    struct bus *bus;
    struct executor *exec;
    int spells;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int64_t mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fx_exec(struct fixture *f)
{
    int rc = exec_new(&f->srv, &f->exec);

    f->srv.exec = f->exec;
    return rc;
}

static void fx_init(struct fixture *f, int start)
{
    char url[128];
    struct store_user u;

    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test-exec-XXXXXX");
    if (!mkdtemp(f->dir))
        abort();
    snprintf(url, sizeof url, "%s/spell.db", f->dir);
    CHECK_INT(store_open(url, &f->store), SPELL_OK);
    CHECK_INT(sse_hub_new(NULL, &f->hub), SPELL_OK);
    CHECK_INT(metrics_new(&f->metrics), SPELL_OK);
    f->srv.store = f->store;
    f->srv.hub = f->hub;
    f->srv.metrics = f->metrics;
    f->srv.limits.workers = 2;
    f->srv.limits.default_timeout_s = 10;
    f->srv.limits.max_output_bytes = 64 * 1024;
    f->srv.limits.max_memory_bytes = (int64_t)2 << 30;
    CHECK_INT(bus_local_new(&f->srv, &f->bus), SPELL_OK);
    f->srv.bus = f->bus;
    CHECK_INT(fx_exec(f), SPELL_OK);
    if (start)
        CHECK_INT(exec_start(f->exec), SPELL_OK);
    memset(&u, 0, sizeof u);
    snprintf(u.id, sizeof u.id, "usr_test");
    snprintf(u.login, sizeof u.login, "tester");
    snprintf(u.role, sizeof u.role, "caster");
    u.created_at = spell_time_now_ms();
    CHECK_INT(store_user_create(f->store, &u), SPELL_OK);
}

static int rm_all(const char *dir)
{
    char cmd[256];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static void fx_done(struct fixture *f)
{
    exec_free(f->exec);
    bus_free(f->bus);
    sse_hub_free(f->hub);
    metrics_free(f->metrics);
    store_close(f->store);
    if (rm_all(f->dir) != 0)
        printf("# could not remove %s\n", f->dir);
}

/* Writes an executable script and registers a spell running it. */
static void spell_add(struct fixture *f, const char *key, const char *script, int timeout_s,
                      const char *mode, const char *pricing, int64_t cents)
{
    char path[128], exec_json[512];
    struct store_spell sp;
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s.sh", f->dir, key);
    fp = fopen(path, "w");
    if (!fp)
        abort();
    fprintf(fp, "#!/bin/sh\n%s\n", script);
    fclose(fp);
    chmod(path, 0755);
    snprintf(exec_json, sizeof exec_json, "{\"command\":[\"%s\"],\"timeout_s\":%d}", path,
             timeout_s);
    memset(&sp, 0, sizeof sp);
    snprintf(sp.key, sizeof sp.key, "%s", key);
    snprintf(sp.name, sizeof sp.name, "%s", key);
    snprintf(sp.version, sizeof sp.version, "1.0.0");
    snprintf(sp.status, sizeof sp.status, "published");
    snprintf(sp.execution_mode, sizeof sp.execution_mode, "%s", mode);
    snprintf(sp.pricing_model, sizeof sp.pricing_model, "%s", pricing);
    if (strcmp(pricing, "flat") == 0)
        sp.flat_cents = cents;
    if (strcmp(pricing, "metered") == 0)
        sp.base_cents = cents;
    sp.inputs_schema = (char *)"{\"type\":\"object\"}";
    sp.execution = exec_json;
    CHECK_INT(store_spell_upsert(f->store, &sp, spell_time_now_ms()), SPELL_OK);
    f->spells++;
}

/* Reserves a cast as the API part does; returns its id in id. */
static int cast_reserve(struct fixture *f, const char *key, const char *mode, int64_t estimate,
                        const char *inputs, char id[STORE_ID_SIZE])
{
    struct store_reserve req;
    struct store_reserve_result res;
    struct store_cast c;
    int rc;

    memset(&c, 0, sizeof c);
    if (spell_id_make("cst", spell_time_now_ms(), id, STORE_ID_SIZE) != SPELL_OK)
        return SPELL_EIO;
    snprintf(c.id, sizeof c.id, "%s", id);
    snprintf(c.user_id, sizeof c.user_id, "usr_test");
    snprintf(c.spell_key, sizeof c.spell_key, "%s", key);
    snprintf(c.spell_version, sizeof c.spell_version, "1.0.0");
    snprintf(c.mode, sizeof c.mode, "%s", mode);
    memset(c.input_hash, 'a', 64);
    c.estimated_cost_cents = estimate;
    c.inputs = (char *)inputs;
    memset(&req, 0, sizeof req);
    req.cast = &c;
    req.now_ms = spell_time_now_ms();
    if ((rc = store_cast_reserve(f->store, &req, &res)) != SPELL_OK)
        return rc;
    if (res.outcome != STORE_RESERVED)
        return SPELL_EINVAL;
    return lifecycle_publish_pending(&f->srv, id);
}

static int cast_start(struct fixture *f, const char *key, const char *inputs,
                      char id[STORE_ID_SIZE])
{
    int rc = cast_reserve(f, key, "service", 0, inputs, id);

    return rc == SPELL_OK ? exec_submit(f->exec, id) : rc;
}

static bool finished(const char *status)
{
    return !strcmp(status, "succeeded") || !strcmp(status, "failed") ||
           !strcmp(status, "canceled");
}

/* Waits for the cast to reach want ("" for any terminal status). */
static int cast_wait(struct fixture *f, const char *id, const char *want, struct store_cast *out)
{
    int64_t end = mono() + WAIT_MS;

    for (;;) {
        memset(out, 0, sizeof *out);
        if (store_cast_get(f->store, id, NULL, out) != SPELL_OK)
            return -1;
        if (want[0] ? !strcmp(out->status, want) : finished(out->status))
            return 0;
        store_cast_clear(out);
        if (mono() > end)
            return -1;
        sleep_ms(20);
    }
}

/* The cast's event types joined by spaces, checking seqs are 1, 2, 3... */
struct evlist {
    char types[4096];
    int64_t next;
    bool gapless;
    char last_data[2048];
    char all_data[16384];
};

static int ev_collect(void *ud, const struct store_event *e)
{
    struct evlist *l = ud;
    size_t n = strlen(l->types);

    if (e->seq != l->next)
        l->gapless = false;
    l->next = e->seq + 1;
    snprintf(l->types + n, sizeof l->types - n, "%s%s", n ? " " : "", e->type);
    snprintf(l->last_data, sizeof l->last_data, "%.*s", (int)e->data_len, e->data);
    n = strlen(l->all_data);
    snprintf(l->all_data + n, sizeof l->all_data - n, "%.*s\n", (int)e->data_len, e->data);
    return 0;
}

static void events_of(struct fixture *f, const char *id, struct evlist *l)
{
    memset(l, 0, sizeof *l);
    l->next = 1;
    l->gapless = true;
    CHECK_INT(store_events_after(f->store, id, 0, 0, ev_collect, l), SPELL_OK);
}

/* events_of() once the cast's last event is of type `last`: events that
 * follow the terminal one (budget.soft_limit) are stored in a transaction
 * of their own, just after the cast turns final. */
static void events_wait(struct fixture *f, const char *id, const char *last, struct evlist *l)
{
    int64_t end = mono() + WAIT_MS;
    size_t n = strlen(last);

    for (;;) {
        events_of(f, id, l);
        size_t len = strlen(l->types);
        if ((len >= n && strcmp(l->types + len - n, last) == 0) || mono() > end)
            return;
        sleep_ms(20);
    }
}

/* The ledger kinds of one cast, in order, and the chain verified. */
struct ledger_ctx {
    const char *cast_id;
    char kinds[256];
};

static int ledger_collect(void *ud, const struct store_ledger_entry *e)
{
    struct ledger_ctx *l = ud;
    size_t n = strlen(l->kinds);

    if (strcmp(e->cast_id, l->cast_id) == 0)
        snprintf(l->kinds + n, sizeof l->kinds - n, "%s%s", n ? " " : "", e->kind);
    return 0;
}

static void check_ledger(struct fixture *f, const char *id, const char *want)
{
    struct ledger_ctx l;
    int64_t checked = 0, bad = 0;

    memset(&l, 0, sizeof l);
    l.cast_id = id;
    CHECK_INT(store_ledger_list(f->store, 0, 0, ledger_collect, &l), SPELL_OK);
    CHECK_STR(l.kinds, want);
    CHECK_INT(store_ledger_verify(f->store, &checked, &bad), SPELL_OK);
    CHECK(checked >= 2);
    CHECK_INT(bad, 0);
}

/* ---- Hub subscription --------------------------------------------------- */

static void no_idle(void *ud)
{
    (void)ud;
}

/* Reads a subscription until its end; returns the "event:" types joined
 * and checks the "id:" lines run 1, 2, 3... */
static void sub_drain(struct sse_sub *sub, char *types, size_t typesize, bool *ordered)
{
    char buf[4096], all[32768];
    size_t n, len = 0;
    int64_t end = mono() + WAIT_MS, want = 1;
    enum sse_read_result r;
    char *line, *save = NULL;

    types[0] = '\0';
    *ordered = true;
    for (;;) {
        r = sse_sub_read(sub, buf, sizeof buf, &n, no_idle, NULL);
        if (r == SSE_READ_END || mono() > end)
            break;
        if (r == SSE_READ_IDLE) {
            sleep_ms(10);
            continue;
        }
        if (len + n < sizeof all) {
            memcpy(all + len, buf, n);
            len += n;
        }
    }
    all[len] = '\0';
    for (line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t t = strlen(types);
        if (!strncmp(line, "id: ", 4)) {
            if (atoll(line + 4) != want)
                *ordered = false;
            want++;
        } else if (!strncmp(line, "event: ", 7)) {
            snprintf(types + t, typesize - t, "%s%s", t ? " " : "", line + 7);
        }
    }
}

/* ---- Cases ------------------------------------------------------------ */

static void test_success_with_progress_and_stream(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    struct sse_sub *sub = NULL;
    char id[STORE_ID_SIZE], types[1024];
    bool ordered;

    fx_init(&f, 1);
    spell_add(&f, "ok", "cat >/dev/null\n"
                        "echo '{\"progress\": 10, \"message\": \"starting\"}'\n"
                        "echo '{\"log\": \"fetched 120 KiB\"}'\n"
                        "echo '{\"progress\": 60, \"message\": \"resizing\"}'\n"
                        "echo '{\"result\": {\"w\": 16}, \"artifact_url\": "
                        "\"https://example.com/a.png\"}'\n",
              5, "service", "flat", 0);
    CHECK_INT(spell_id_make("cst", spell_time_now_ms(), id, sizeof id), SPELL_OK);
    /* Reserve first (so the id exists), subscribe, then publish and run. */
    {
        struct store_reserve req;
        struct store_reserve_result res;
        struct store_cast k;

        memset(&k, 0, sizeof k);
        snprintf(k.id, sizeof k.id, "%s", id);
        snprintf(k.user_id, sizeof k.user_id, "usr_test");
        snprintf(k.spell_key, sizeof k.spell_key, "ok");
        snprintf(k.spell_version, sizeof k.spell_version, "1.0.0");
        snprintf(k.mode, sizeof k.mode, "service");
        memset(k.input_hash, 'a', 64);
        k.inputs = (char *)"{\"x\":1}";
        memset(&req, 0, sizeof req);
        req.cast = &k;
        req.now_ms = spell_time_now_ms();
        CHECK_INT(store_cast_reserve(f.store, &req, &res), SPELL_OK);
    }
    CHECK_INT(sse_hub_subscribe(f.hub, id, 0, &sub), SPELL_OK);
    sse_sub_start(sub);
    CHECK_INT(lifecycle_publish_pending(&f.srv, id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    CHECK_STR(c.artifact_url, "https://example.com/a.png");
    CHECK_INT(c.progress, 100);
    CHECK_INT(c.cost_cents, 0);
    CHECK(c.inputs == NULL);
    store_cast_clear(&c);
    events_of(&f, id, &ev);
    CHECK_STR(ev.types, "cast.queued cast.started cast.progress cast.log cast.progress "
                        "cast.succeeded");
    CHECK(ev.gapless);
    CHECK(strstr(ev.all_data, "\"message\":\"fetched 120 KiB\"") != NULL);
    CHECK(strstr(ev.last_data, "\"final\":true") != NULL);
    sub_drain(sub, types, sizeof types, &ordered);
    CHECK_STR(types, "cast.queued cast.started cast.progress cast.log cast.progress "
                     "cast.succeeded");
    CHECK(ordered);
    sse_sub_release(sub);
    check_ledger(&f, id, "reserve settle");
    {
        const char *v[] = {"service", "succeeded"};
        CHECK(metrics_value(f.exec ? exec_metrics_of(f.exec)->casts : NULL, v) == 1.0);
    }
    fx_done(&f);
}

static void test_nonzero_exit_with_stderr(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE];

    fx_init(&f, 1);
    spell_add(&f, "bad", "echo '{\"progress\": 30}'\necho 'disk \001full' >&2\nexit 3", 5,
              "service", "flat", 25);
    CHECK_INT(cast_reserve(&f, "bad", "service", 25, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "failed", &c), 0);
    CHECK_STR(c.error_code, "SPELL_FAILED");
    CHECK_STR(c.error_message, "the spell exited with status 3: disk  full");
    CHECK_INT(c.cost_cents, -1);
    store_cast_clear(&c);
    events_of(&f, id, &ev);
    CHECK_STR(ev.types, "cast.queued cast.started cast.progress cast.failed");
    CHECK(ev.gapless);
    CHECK(strstr(ev.last_data, "\"code\":\"SPELL_FAILED\"") != NULL);
    check_ledger(&f, id, "reserve release");
    {
        const char *v[] = {"SPELL_FAILED"};
        CHECK(metrics_value(exec_metrics_of(f.exec)->errors, v) == 1.0);
    }
    fx_done(&f);
}

static void test_timeout(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE];
    int64_t t0 = mono();

    fx_init(&f, 1);
    /* A shell that ignores SIGTERM: only the SIGKILL after the grace ends it. */
    spell_add(&f, "slow", "trap '' TERM\nsleep 30 & wait\nsleep 30", 1, "service", "free", 0);
    CHECK_INT(cast_start(&f, "slow", "{}", id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "failed", &c), 0);
    CHECK_STR(c.error_code, "TIMEOUT");
    CHECK_STR(c.error_message, "the spell timed out after 1 s");
    store_cast_clear(&c);
    CHECK(mono() - t0 < 15000);
    events_of(&f, id, &ev);
    CHECK_STR(ev.types, "cast.queued cast.started cast.failed");
    check_ledger(&f, id, "reserve release");
    fx_done(&f);
}

static void test_grandchild_holding_stdout(void)
{
    struct fixture f;
    struct store_cast c;
    char id[STORE_ID_SIZE];
    int64_t t0 = mono();

    fx_init(&f, 1);
    /* The background sleeper keeps stdout open after the script exits; the
     * group kill ends it, and the cast succeeds long before 30 s. */
    spell_add(&f, "fork", "sleep 30 &\necho '{\"result\": {}}'\nexit 0", 5, "service", "free",
              0);
    CHECK_INT(cast_start(&f, "fork", "{}", id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    store_cast_clear(&c);
    CHECK(mono() - t0 < 10000);
    fx_done(&f);
}

static void test_grandchild_timeout(void)
{
    struct fixture f;
    struct store_cast c;
    char id[STORE_ID_SIZE];
    int64_t t0 = mono();

    fx_init(&f, 1);
    spell_add(&f, "fork2", "(sleep 30; echo late) &\nsleep 30", 1, "service", "free", 0);
    CHECK_INT(cast_start(&f, "fork2", "{}", id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "failed", &c), 0);
    CHECK_STR(c.error_code, "TIMEOUT");
    store_cast_clear(&c);
    CHECK(mono() - t0 < 15000);
    fx_done(&f);
}

static void test_output_flood(void)
{
    struct fixture f;
    struct store_cast c;
    char id[STORE_ID_SIZE];

    fx_init(&f, 1);
    spell_add(&f, "flood",
              "while :; do echo '{\"progress\": 1, \"message\": "
              "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}'; done",
              10, "service", "free", 0);
    CHECK_INT(cast_start(&f, "flood", "{}", id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "failed", &c), 0);
    CHECK_STR(c.error_code, "OUTPUT_LIMIT");
    CHECK_STR(c.error_message, "the spell wrote more than 65536 bytes of output");
    store_cast_clear(&c);
    check_ledger(&f, id, "reserve release");
    fx_done(&f);
}

static void test_long_line(void)
{
    struct fixture f;
    struct store_cast c;
    char id[STORE_ID_SIZE];

    fx_init(&f, 1);
    f.srv.limits.max_output_bytes = 1 << 20;
    spell_add(&f, "longline", "head -c 70000 /dev/zero | tr '\\0' 'a'\necho", 10, "service",
              "free", 0);
    CHECK_INT(cast_start(&f, "longline", "{}", id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "failed", &c), 0);
    CHECK_STR(c.error_code, "OUTPUT_LIMIT");
    CHECK_STR(c.error_message, "a line of output passed 65536 bytes");
    store_cast_clear(&c);
    fx_done(&f);
}

struct bad_line {
    const char *script;
    const char *message;
};

static void test_invalid_output(void)
{
    static const struct bad_line cases[] = {
        {"echo 'hello world'", NULL},
        {"echo '[1,2]'", "line 1 of the output is not a JSON object"},
        {"echo '{\"other\": 1}'", "line 1 of the output is not a progress, log or result record"},
        {"echo '{\"progress\": \"50\"}'",
         "line 1: 'progress' must be a number and 'message' a string"},
        {"echo '{\"log\": 5}'", "line 1: 'log' must be a string"},
        {"echo '{\"result\": 5}'", "line 1: field 'result' must be an object"},
        {"echo '{\"result\": {}, \"artifact_url\": \"ftp://x/y\"}'",
         "line 1: field 'artifact_url' must be an http(s) URL of at most 2048 bytes"},
        {"echo '{\"result\": {}, \"cost_cents\": -1}'",
         "line 1: field 'cost_cents' must be a whole number of cents >= 0"},
        {"echo '{\"result\": {}}'\necho '{\"result\": {}}'", "line 2: a second result line"},
        {"printf '{\"log\": \"a\\377b\"}\\n'", NULL},
        {"printf '{\"log\": \"a\"}\\000\\n'", NULL},
        {"echo\necho '{\"log\": \"x\"}'\necho '{'", NULL},
    };
    struct fixture f;
    struct store_cast c;
    char id[STORE_ID_SIZE], key[32];

    fx_init(&f, 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(key, sizeof key, "inv%zu", i);
        spell_add(&f, key, cases[i].script, 5, "service", "free", 0);
        CHECK_INT(cast_start(&f, key, "{}", id), SPELL_OK);
        CHECK_INT(cast_wait(&f, id, "failed", &c), 0);
        CHECK_STR(c.error_code, "INVALID_OUTPUT");
        if (cases[i].message)
            CHECK_STR(c.error_message, cases[i].message);
        else
            CHECK(strstr(c.error_message, "is not JSON") != NULL);
        store_cast_clear(&c);
    }
    fx_done(&f);
}

static void test_no_result_line_succeeds(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE];

    fx_init(&f, 1);
    spell_add(&f, "quiet", "exit 0", 5, "service", "flat", 40);
    CHECK_INT(cast_reserve(&f, "quiet", "service", 40, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    CHECK_INT(c.cost_cents, 40);
    CHECK_STR(c.artifact_url, "");
    store_cast_clear(&c);
    events_of(&f, id, &ev);
    CHECK(strstr(ev.last_data, "\"artifact_url\":null") != NULL);
    check_ledger(&f, id, "reserve settle");
    fx_done(&f);
}

static void test_metered_cost(void)
{
    struct fixture f;
    struct store_cast c;
    char id[STORE_ID_SIZE];

    fx_init(&f, 1);
    spell_add(&f, "m3", "echo '{\"result\": {}, \"cost_cents\": 3}'", 5, "service", "metered",
              10);
    spell_add(&f, "m50", "echo '{\"result\": {}, \"cost_cents\": 50}'", 5, "service",
              "metered", 10);
    spell_add(&f, "mnone", "echo '{\"result\": {}}'", 5, "service", "metered", 10);
    spell_add(&f, "flat3", "echo '{\"result\": {}, \"cost_cents\": 3}'", 5, "service", "flat",
              10);
    CHECK_INT(cast_reserve(&f, "m3", "service", 10, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    CHECK_INT(c.cost_cents, 3);
    store_cast_clear(&c);
    CHECK_INT(cast_reserve(&f, "m50", "service", 10, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    CHECK_INT(c.cost_cents, 10);
    store_cast_clear(&c);
    CHECK_INT(cast_reserve(&f, "mnone", "service", 10, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    CHECK_INT(c.cost_cents, 10);
    store_cast_clear(&c);
    CHECK_INT(cast_reserve(&f, "flat3", "service", 10, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    CHECK_INT(c.cost_cents, 10);
    store_cast_clear(&c);
    fx_done(&f);
}

static void test_progress_never_decreases(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE];

    fx_init(&f, 1);
    spell_add(&f, "prog",
              "echo '{\"progress\": 50}'\necho '{\"progress\": 20, \"message\": \"back\"}'\n"
              "echo '{\"progress\": 250}'\necho '{\"progress\": 99.7}'",
              5, "service", "free", 0);
    CHECK_INT(cast_start(&f, "prog", "{}", id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    store_cast_clear(&c);
    events_of(&f, id, &ev);
    CHECK(strstr(ev.all_data, "\"progress\":50,\"message\":\"back\"") != NULL);
    CHECK(strstr(ev.all_data, "\"progress\":20") == NULL);
    CHECK(strstr(ev.all_data, "\"status\":\"running\",\"progress\":100") != NULL);
    fx_done(&f);
}

static void test_environment_and_stdin(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE], want[128];

    fx_init(&f, 1);
    spell_add(&f, "env",
              "in=$(cat)\n"
              "echo \"{\\\"log\\\": \\\"in=$in\\\"}\" | sed 's/\"x\"/x/'\n"
              "echo \"{\\\"log\\\": \\\"id=$SPELL_CAST_ID path=$PATH lang=$LANG\\\"}\"\n"
              "case \"$HOME\" in /tmp/spell-cast-*/home) echo '{\"log\": \"home ok\"}';; esac\n"
              "case \"$(pwd)\" in /tmp/spell-cast-*/work) echo '{\"log\": \"cwd ok\"}';; esac\n"
              "n=$(ls /proc/self/fd | wc -l); echo \"{\\\"log\\\": \\\"fds=$n\\\"}\"\n"
              "[ -z \"$SECRET_FROM_SERVER\" ] && echo '{\"log\": \"clean env\"}'\n"
              "echo '{\"result\": {}}'",
              5, "service", "free", 0);
    setenv("SECRET_FROM_SERVER", "leak", 1);
    CHECK_INT(cast_start(&f, "env", "{\"x\":1}", id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    store_cast_clear(&c);
    unsetenv("SECRET_FROM_SERVER");
    events_of(&f, id, &ev);
    CHECK(strstr(ev.all_data, "in={x:1}") != NULL);
    snprintf(want, sizeof want, "id=%s path=/usr/bin:/bin lang=C.UTF-8", id);
    CHECK(strstr(ev.all_data, want) != NULL);
    CHECK(strstr(ev.all_data, "home ok") != NULL);
    CHECK(strstr(ev.all_data, "cwd ok") != NULL);
    CHECK(strstr(ev.all_data, "clean env") != NULL);
    /* 0, 1, 2 and the one ls opens to read the folder. */
    CHECK(strstr(ev.all_data, "fds=4") != NULL);
    fx_done(&f);
}

/* A spell runs limits.spell_nice nicer than the server, and at the
 * server's own niceness with 0. */
static void test_spell_niceness(void)
{
    static const int asked[] = {0, 7, 19};
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE], want[64];
    int own, expect;

    errno = 0;
    own = getpriority(PRIO_PROCESS, 0);
    CHECK(errno == 0);
    for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
        fx_init(&f, 0);
        f.srv.limits.spell_nice = asked[i];
        CHECK_INT(exec_start(f.exec), SPELL_OK);
        spell_add(&f, "nice", "echo \"{\\\"log\\\": \\\"nice=$(nice)\\\"}\"\necho '{\"result\": {}}'",
                  5, "service", "free", 0);
        CHECK_INT(cast_start(&f, "nice", "{}", id), SPELL_OK);
        CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
        store_cast_clear(&c);
        events_of(&f, id, &ev);
        expect = own + asked[i] > 19 ? 19 : own + asked[i];
        snprintf(want, sizeof want, "nice=%d\"", expect);
        if (!strstr(ev.all_data, want))
            printf("# spell_nice %d: no %s in %.300s\n", asked[i], want, ev.all_data);
        CHECK(strstr(ev.all_data, want) != NULL);
        fx_done(&f);
    }
}

static void test_log_flood_is_limited(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE];
    int logs = 0;
    const char *p;

    fx_init(&f, 1);
    spell_add(&f, "chatty",
              "i=0; while [ $i -lt 300 ]; do echo \"{\\\"log\\\": \\\"line $i\\\"}\"; "
              "i=$((i+1)); done\necho '{\"result\": {}}'",
              10, "service", "free", 0);
    CHECK_INT(cast_start(&f, "chatty", "{}", id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    store_cast_clear(&c);
    events_of(&f, id, &ev);
    for (p = ev.types; (p = strstr(p, "cast.log")); p++)
        logs++;
    /* Far fewer than 300; the rest are summarised. */
    CHECK(logs >= EXEC_LOG_PER_SEC);
    CHECK(logs < 150);
    CHECK(strstr(ev.all_data, "log lines suppressed") != NULL);
    CHECK(ev.gapless);
    fx_done(&f);
}

static void test_cancel_running(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE];
    int64_t t0;

    fx_init(&f, 1);
    spell_add(&f, "sleeper", "echo '{\"progress\": 5}'\nsleep 30", 60, "service", "flat", 15);
    CHECK_INT(cast_reserve(&f, "sleeper", "service", 15, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "running", &c), 0);
    store_cast_clear(&c);
    t0 = mono();
    while (exec_running(f.exec) == 0 && mono() - t0 < WAIT_MS)
        sleep_ms(10);
    CHECK_INT(exec_cancel(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "canceled", &c), 0);
    CHECK_STR(c.error_code, "CANCELED");
    store_cast_clear(&c);
    /* The program is gone soon after (the worker frees its slot). */
    t0 = mono();
    while (exec_running(f.exec) != 0 && mono() - t0 < WAIT_MS)
        sleep_ms(10);
    CHECK_INT(exec_running(f.exec), 0);
    CHECK_INT(exec_cancel(f.exec, id), STORE_ECONFLICT);
    sleep_ms(200);
    events_of(&f, id, &ev);
    CHECK(strncmp(ev.types, "cast.queued cast.started", 24) == 0);
    CHECK(strstr(ev.types, "cast.canceled") != NULL);
    CHECK(strcmp(ev.types + strlen(ev.types) - 13, "cast.canceled") == 0);
    CHECK(ev.gapless);
    check_ledger(&f, id, "reserve release");
    fx_done(&f);
}

static void test_cancel_queued(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE];

    fx_init(&f, 0);
    spell_add(&f, "never", "touch /tmp/test-exec-never-ran\necho '{\"result\": {}}'", 5,
              "service", "free", 0);
    unlink("/tmp/test-exec-never-ran");
    CHECK_INT(cast_start(&f, "never", "{}", id), SPELL_OK);
    CHECK_INT(exec_cancel(f.exec, id), SPELL_OK);
    CHECK_INT(exec_start(f.exec), SPELL_OK);
    CHECK_INT(exec_start(f.exec), SPELL_EINVAL);
    sleep_ms(300);
    CHECK_INT(cast_wait(&f, id, "canceled", &c), 0);
    store_cast_clear(&c);
    CHECK(access("/tmp/test-exec-never-ran", F_OK) != 0);
    events_of(&f, id, &ev);
    CHECK_STR(ev.types, "cast.queued cast.canceled");
    check_ledger(&f, id, "reserve release");
    CHECK_INT(exec_cancel(f.exec, "cst_unknown"), SPELL_ENOTFOUND);
    CHECK_INT(exec_cancel(f.exec, "bad id"), SPELL_EINVAL);
    fx_done(&f);
}

static void test_stop_and_recover(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE], marker[128], script[512];
    int64_t t0;
    int requeued = -1, failed = -1;

    fx_init(&f, 1);
    /* First run: sleeps (and is killed by the stop); second run: the
     * marker exists and it finishes at once. */
    snprintf(marker, sizeof marker, "%s/ran-once", f.dir);
    snprintf(script, sizeof script,
             "echo '{\"progress\": 10}'\n"
             "if [ -e %s ]; then echo '{\"result\": {\"second\": true}}'; exit 0; fi\n"
             "touch %s\nsleep 30",
             marker, marker);
    spell_add(&f, "twice", script, 60, "service", "flat", 5);
    CHECK_INT(cast_reserve(&f, "twice", "service", 5, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    t0 = mono();
    while (access(marker, F_OK) != 0 && mono() - t0 < WAIT_MS)
        sleep_ms(10);
    t0 = mono();
    exec_stop(f.exec);
    CHECK(mono() - t0 < 10000);
    CHECK_INT(exec_submit(f.exec, id), SPELL_EABORT);
    CHECK_INT(store_cast_get(f.store, id, NULL, &c), SPELL_OK);
    CHECK_STR(c.status, "running");
    CHECK(c.inputs != NULL);
    store_cast_clear(&c);
    exec_free(f.exec);
    f.srv.exec = NULL;
    f.exec = NULL;

    /* The next start. */
    CHECK_INT(sse_hub_count(f.hub), 0);
    metrics_free(f.metrics);
    CHECK_INT(metrics_new(&f.metrics), SPELL_OK);
    f.srv.metrics = f.metrics;
    CHECK_INT(fx_exec(&f), SPELL_OK);
    CHECK_INT(exec_recover_counts(f.exec, &requeued, &failed), SPELL_OK);
    CHECK_INT(requeued, 1);
    CHECK_INT(failed, 0);
    CHECK_INT(exec_start(f.exec), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    CHECK_INT(c.cost_cents, 5);
    store_cast_clear(&c);
    events_of(&f, id, &ev);
    CHECK_STR(ev.types, "cast.queued cast.started cast.progress cast.progress cast.succeeded");
    CHECK(ev.gapless);
    check_ledger(&f, id, "reserve settle");
    fx_done(&f);
}

static void test_recover_without_inputs(void)
{
    struct fixture f;
    struct store_cast c;
    char id[STORE_ID_SIZE], id2[STORE_ID_SIZE];
    int requeued = -1, failed = -1;

    fx_init(&f, 0);
    spell_add(&f, "fine", "echo '{\"result\": {}}'", 5, "service", "free", 0);
    CHECK_INT(cast_reserve(&f, "fine", "service", 0, NULL, id), SPELL_OK);
    CHECK_INT(cast_reserve(&f, "fine", "service", 0, "{}", id2), SPELL_OK);
    CHECK_INT(exec_recover_counts(f.exec, &requeued, &failed), SPELL_OK);
    CHECK_INT(requeued, 1);
    CHECK_INT(failed, 1);
    CHECK_INT(store_cast_get(f.store, id, NULL, &c), SPELL_OK);
    CHECK_STR(c.status, "failed");
    CHECK_STR(c.error_code, "INTERNAL");
    CHECK_STR(c.error_message, "the server restarted and the inputs were no longer kept");
    store_cast_clear(&c);
    CHECK_INT(exec_start(f.exec), SPELL_OK);
    CHECK_INT(cast_wait(&f, id2, "succeeded", &c), 0);
    store_cast_clear(&c);
    check_ledger(&f, id, "reserve release");
    fx_done(&f);
}

/* The threads of this process. */
static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Replaces the fixture's executor with one of `workers` threads (a fresh
 * metrics registry, as a restarted server has). */
static int fx_reexec(struct fixture *f, int workers)
{
    exec_free(f->exec);
    f->srv.exec = NULL;
    f->exec = NULL;
    metrics_free(f->metrics);
    CHECK_INT(metrics_new(&f->metrics), SPELL_OK);
    f->srv.metrics = f->metrics;
    f->srv.limits.workers = workers;
    return fx_exec(f);
}

static void test_zero_workers(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char ids[3][STORE_ID_SIZE], url[128];
    int threads, requeued = -1, failed = -1;

    fx_init(&f, 0);
    spell_add(&f, "later", "echo '{\"result\": {}}'", 5, "service", "free", 0);
    /* A count below 0 is refused; 0 is an executor that runs nothing. */
    CHECK_INT(fx_reexec(&f, -1), SPELL_EINVAL);
    CHECK(f.exec == NULL);
    CHECK_INT(fx_reexec(&f, 0), SPELL_OK);
    threads = thread_count();
    CHECK(threads > 0);
    CHECK_INT(exec_start(f.exec), SPELL_OK);
    CHECK_INT(exec_start(f.exec), SPELL_EINVAL);
    CHECK_INT(thread_count(), threads);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(cast_reserve(&f, "later", "service", 0, "{}", ids[i]), SPELL_OK);
        CHECK_INT(exec_submit(f.exec, ids[i]), SPELL_OK);
    }
    CHECK_INT(exec_submit(f.exec, "bad id"), SPELL_EINVAL);
    CHECK_INT(exec_submit(f.exec, ""), SPELL_EINVAL);
    CHECK_INT(exec_running(f.exec), 0);
    /* A queued cast is canceled without a worker. */
    CHECK_INT(exec_cancel(f.exec, ids[2]), SPELL_OK);
    CHECK_INT(exec_cancel(f.exec, ids[2]), STORE_ECONFLICT);
    CHECK_INT(exec_cancel(f.exec, "cst_unknown"), SPELL_ENOTFOUND);
    exec_stop(f.exec);
    CHECK_INT(exec_submit(f.exec, ids[0]), SPELL_EABORT);

    /* Durable: the store, closed and opened again, still has them queued. */
    exec_free(f.exec);
    f.srv.exec = NULL;
    f.exec = NULL;
    store_close(f.store);
    snprintf(url, sizeof url, "%s/spell.db", f.dir);
    CHECK_INT(store_open(url, &f.store), SPELL_OK);
    f.srv.store = f.store;
    for (int i = 0; i < 3; i++) {
        CHECK_INT(store_cast_get(f.store, ids[i], NULL, &c), SPELL_OK);
        CHECK_STR(c.status, i < 2 ? "queued" : "canceled");
        store_cast_clear(&c);
    }

    /* The next start, with workers, runs the two still queued. */
    CHECK_INT(fx_reexec(&f, 2), SPELL_OK);
    CHECK_INT(exec_recover_counts(f.exec, &requeued, &failed), SPELL_OK);
    CHECK_INT(requeued, 2);
    CHECK_INT(failed, 0);
    CHECK_INT(exec_start(f.exec), SPELL_OK);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(cast_wait(&f, ids[i], "succeeded", &c), 0);
        store_cast_clear(&c);
        events_of(&f, ids[i], &ev);
        CHECK_STR(ev.types, "cast.queued cast.started cast.succeeded");
        CHECK(ev.gapless);
    }
    events_of(&f, ids[2], &ev);
    CHECK_STR(ev.types, "cast.queued cast.canceled");
    fx_done(&f);
}

static void test_modes_not_configured(void)
{
    struct fixture f;
    struct store_cast c;
    char id[STORE_ID_SIZE];

    fx_init(&f, 1);
    spell_add(&f, "wf", "exit 0", 5, "workflow", "free", 0);
    CHECK_INT(cast_reserve(&f, "wf", "workflow", 0, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "failed", &c), 0);
    CHECK_STR(c.error_code, "INTERNAL");
    CHECK_STR(c.error_message, "execution mode 'workflow' is not configured on this server");
    store_cast_clear(&c);
    CHECK_INT(cast_reserve(&f, "wf", "wasm", 0, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "failed", &c), 0);
    CHECK_STR(c.error_message, "execution mode 'wasm' is not configured on this server");
    store_cast_clear(&c);
    fx_done(&f);
}

static void test_bad_execution_config(void)
{
    struct fixture f;
    struct store_cast c;
    struct store_spell sp;
    char id[STORE_ID_SIZE];
    int tried = 0;
    static const char *const configs[] = {
        "{\"command\": []}",
        "{\"command\": \"/bin/true\"}",
        "{\"command\": [\"/bin/true\"], \"timeout_s\": 0}",
        "{\"command\": [\"/bin/true\"], \"memory_mb\": 1}",
        "{\"command\": [\"relative/x.sh\"]}",
        "{\"command\": [\"no-such-program-here\"]}",
        "[1]",
        "not json",
    };

    fx_init(&f, 1);
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        memset(&sp, 0, sizeof sp);
        snprintf(sp.key, sizeof sp.key, "cfg");
        snprintf(sp.name, sizeof sp.name, "cfg");
        snprintf(sp.version, sizeof sp.version, "1.0.0");
        snprintf(sp.status, sizeof sp.status, "published");
        snprintf(sp.execution_mode, sizeof sp.execution_mode, "service");
        snprintf(sp.pricing_model, sizeof sp.pricing_model, "free");
        sp.inputs_schema = (char *)"{\"type\":\"object\"}";
        sp.execution = (char *)configs[i];
        if (store_spell_upsert(f.store, &sp, spell_time_now_ms()) != SPELL_OK)
            continue;   /* the store refused it already */
        tried++;
        CHECK_INT(cast_start(&f, "cfg", "{}", id), SPELL_OK);
        CHECK_INT(cast_wait(&f, id, "failed", &c), 0);
        CHECK_STR(c.error_code, "INTERNAL");
        CHECK(strncmp(c.error_message, "the spell", 9) == 0);
        store_cast_clear(&c);
    }
    CHECK(tried >= 6);
    /* A bare name is looked up in /usr/bin:/bin; arguments are passed as
     * they are, with no shell. */
    memset(&sp, 0, sizeof sp);
    snprintf(sp.key, sizeof sp.key, "echo");
    snprintf(sp.name, sizeof sp.name, "echo");
    snprintf(sp.version, sizeof sp.version, "1.0.0");
    snprintf(sp.status, sizeof sp.status, "published");
    snprintf(sp.execution_mode, sizeof sp.execution_mode, "service");
    snprintf(sp.pricing_model, sizeof sp.pricing_model, "free");
    sp.inputs_schema = (char *)"{\"type\":\"object\"}";
    sp.execution = (char *)"{\"command\": [\"echo\", \"{\\\"log\\\": \\\"$HOME;x\\\"}\"]}";
    CHECK_INT(store_spell_upsert(f.store, &sp, spell_time_now_ms()), SPELL_OK);
    CHECK_INT(cast_start(&f, "echo", "{}", id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    store_cast_clear(&c);
    {
        struct evlist ev;
        events_of(&f, id, &ev);
        CHECK(strstr(ev.all_data, "\"message\":\"$HOME;x\"") != NULL);
    }
    fx_done(&f);
}

static void test_soft_limit_event(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE], period[8];

    fx_init(&f, 1);
    CHECK_INT(spell_time_period(spell_time_now_ms(), period, sizeof period), SPELL_OK);
    CHECK_INT(store_budget_set(f.store, "usr_test", period, 5000, 1000, spell_time_now_ms()),
              SPELL_OK);
    spell_add(&f, "pricey", "echo '{\"result\": {}}'", 5, "service", "flat", 1200);
    CHECK_INT(cast_reserve(&f, "pricey", "service", 1200, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    store_cast_clear(&c);
    events_wait(&f, id, "budget.soft_limit", &ev);
    CHECK_STR(ev.types, "cast.queued cast.started cast.succeeded budget.soft_limit");
    CHECK(strstr(ev.last_data, "\"soft_limit_cents\":1000") != NULL);
    CHECK(strstr(ev.last_data, "\"spent_cents\":1200") != NULL);
    /* Once per period: the next cast emits none. */
    CHECK_INT(cast_reserve(&f, "pricey", "service", 1200, "{}", id), SPELL_OK);
    CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
    CHECK_INT(cast_wait(&f, id, "succeeded", &c), 0);
    store_cast_clear(&c);
    events_of(&f, id, &ev);
    CHECK_STR(ev.types, "cast.queued cast.started cast.succeeded");
    fx_done(&f);
}

/* Completion and cancel racing: exactly one terminal state, every time. */
static void test_cancel_races_completion(void)
{
    struct fixture f;
    struct store_cast c;
    struct evlist ev;
    char id[STORE_ID_SIZE];
    int terminals;
    const char *p;

    fx_init(&f, 1);
    spell_add(&f, "quick", "echo '{\"result\": {}}'", 5, "service", "flat", 1);
    for (int i = 0; i < 10; i++) {
        CHECK_INT(cast_reserve(&f, "quick", "service", 1, "{}", id), SPELL_OK);
        CHECK_INT(exec_submit(f.exec, id), SPELL_OK);
        sleep_ms(i * 7);
        int rc = exec_cancel(f.exec, id);
        CHECK(rc == SPELL_OK || rc == STORE_ECONFLICT);
        CHECK_INT(cast_wait(&f, id, "", &c), 0);
        store_cast_clear(&c);
        sleep_ms(50);
        events_of(&f, id, &ev);
        terminals = 0;
        for (p = ev.types; (p = strstr(p, "cast.")); p++)
            if (!strncmp(p, "cast.succeeded", 14) || !strncmp(p, "cast.canceled", 13))
                terminals++;
        CHECK_INT(terminals, 1);
        CHECK(ev.gapless);
    }
    {
        int64_t bad = 0;
        CHECK_INT(store_ledger_verify(f.store, NULL, &bad), SPELL_OK);
    }
    fx_done(&f);
}

static void test_text_clean(void)
{
    char out[16];

    lifecycle_text_clean("plain", 5, out, sizeof out);
    CHECK_STR(out, "plain");
    lifecycle_text_clean("a\tb\nc\x7f", 6, out, sizeof out);
    CHECK_STR(out, "a b c ");
    lifecycle_text_clean("a\xff" "b", 3, out, sizeof out);
    CHECK_STR(out, "a?b");
    lifecycle_text_clean("a\0b", 3, out, sizeof out);
    CHECK_STR(out, "a b");
    /* Cut at a character boundary: "é" (2 bytes) does not fit in 1. */
    lifecycle_text_clean("abcdefghijklmn\xc3\xa9", 16, out, sizeof out);
    CHECK_STR(out, "abcdefghijklmn");
    lifecycle_text_clean("\xe2\x82", 2, out, sizeof out);   /* truncated sequence */
    CHECK_STR(out, "??");
    lifecycle_text_clean("xyz", 3, out, 1);
    CHECK_STR(out, "");
}

static int fake_published;
static int64_t fake_last_seq;
static int fake_terminal;

static int fake_publish(void *impl, const char *cast_id, int64_t seq, const char *type,
                        const char *json, int terminal)
{
    (void)impl;
    (void)cast_id;
    (void)type;
    (void)json;
    fake_published++;
    fake_last_seq = seq;
    fake_terminal = terminal;
    return SPELL_OK;
}

static void test_bus_tracking(void)
{
    static const struct bus_ops ops = {"fake", fake_publish, NULL};
    struct bus *b = NULL;
    char id[32];

    CHECK_INT(bus_create(&ops, NULL, &b), SPELL_OK);
    CHECK_INT(bus_publish(b, "cst_a", 0, "cast.log", "{}", 0), SPELL_EINVAL);
    CHECK_INT(bus_publish(b, NULL, 1, "cast.log", "{}", 0), SPELL_EINVAL);
    CHECK_INT(bus_publish(b, "cst_a", 3, "cast.log", "{}", 1), SPELL_OK);
    CHECK_INT(fake_published, 1);
    CHECK_INT(fake_last_seq, 3);
    CHECK_INT(fake_terminal, 1);
    bus_lock(b);
    CHECK_INT(bus_seq_get(b, "cst_a"), 0);
    bus_seq_put(b, "cst_a", 4, 0);
    bus_seq_put(b, "cst_a", 2, 0);      /* never goes back */
    CHECK_INT(bus_seq_get(b, "cst_a"), 4);
    bus_seq_put(b, "cst_a", 5, 1);      /* finished: forgotten */
    CHECK_INT(bus_seq_get(b, "cst_a"), 0);
    /* Bounded: past BUS_TRACK_MAX the least recently used is forgotten. */
    for (int i = 0; i <= BUS_TRACK_MAX; i++) {
        snprintf(id, sizeof id, "cst_%d", i);
        bus_seq_put(b, id, i + 1, 0);
    }
    CHECK_INT(bus_seq_get(b, "cst_0"), 0);
    CHECK_INT(bus_seq_get(b, "cst_1"), 2);
    snprintf(id, sizeof id, "cst_%d", BUS_TRACK_MAX);
    CHECK_INT(bus_seq_get(b, id), BUS_TRACK_MAX + 1);
    bus_unlock(b);
    bus_free(b);
    bus_free(NULL);
}

/* The seq table against a model of it: casts published, finished and
 * evicted in a mixed order keep their seqs exactly, the least recently
 * published goes first when the table is full, and ids too long to keep
 * (or alike in their first bytes) are never confused. */
static void test_bus_tracking_model(void)
{
    static const struct bus_ops ops = {"fake", fake_publish, NULL};
    enum { IDS = BUS_TRACK_MAX + BUS_TRACK_MAX / 2 };
    static int64_t model[IDS];      /* the seq the bus should know, 0 for none */
    static uint64_t stamp[IDS];     /* when it was last put, for the eviction */
    struct bus *b = NULL;
    char id[96];
    uint64_t tick = 0, x = 88172645463325252ULL;
    int i, n, wrong = 0, live = 0;

    CHECK_INT(bus_create(&ops, NULL, &b), SPELL_OK);
    bus_lock(b);
    for (n = 0; n < 40000; n++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        i = (int)(x % IDS);
        snprintf(id, sizeof id, "cst_%08x", (unsigned)i * 2654435761u);
        if (x % 11 == 0) {
            bus_seq_put(b, id, n + 1, 1);
            live -= model[i] != 0;
            model[i] = 0;
            continue;
        }
        if (!model[i] && live == BUS_TRACK_MAX) {
            int old = -1;

            for (int j = 0; j < IDS; j++)
                if (model[j] && (old < 0 || stamp[j] < stamp[old]))
                    old = j;
            model[old] = 0;
            live--;
        }
        bus_seq_put(b, id, n + 1, 0);
        live += model[i] == 0;
        model[i] = n + 1;
        stamp[i] = ++tick;
    }
    for (i = 0; i < IDS; i++) {
        snprintf(id, sizeof id, "cst_%08x", (unsigned)i * 2654435761u);
        wrong += bus_seq_get(b, id) != model[i];
    }
    CHECK_INT(wrong, 0);
    /* An id past the table's size is never kept; one of exactly the size
     * minus one is, and a longer one alike in those bytes is another. */
    memset(id, 'x', 60);
    id[60] = '\0';
    bus_seq_put(b, id, 9, 0);
    CHECK_INT(bus_seq_get(b, id), 0);
    id[47] = '\0';
    bus_seq_put(b, id, 7, 0);
    CHECK_INT(bus_seq_get(b, id), 7);
    id[47] = 'x';
    CHECK_INT(bus_seq_get(b, id), 0);
    bus_unlock(b);
    bus_free(b);
}

/* A thread taking one lock of a bus: the cast's (cast_id set) or all. */
struct locker {
    struct bus *b;
    const char *cast_id;
    pthread_mutex_t mu;
    bool got;
};

static void *locker_main(void *arg)
{
    struct locker *l = arg;

    if (l->cast_id)
        bus_lock_cast(l->b, l->cast_id);
    else
        bus_lock(l->b);
    pthread_mutex_lock(&l->mu);
    l->got = true;
    pthread_mutex_unlock(&l->mu);
    if (l->cast_id)
        bus_unlock_cast(l->b, l->cast_id);
    else
        bus_unlock(l->b);
    return NULL;
}

static bool locker_got(struct locker *l)
{
    bool got;

    pthread_mutex_lock(&l->mu);
    got = l->got;
    pthread_mutex_unlock(&l->mu);
    return got;
}

static void locker_run(struct locker *l, struct bus *b, const char *cast_id, pthread_t *t)
{
    l->b = b;
    l->cast_id = cast_id;
    l->got = false;
    CHECK_INT(pthread_create(t, NULL, locker_main, l), 0);
}

static void test_bus_cast_locks(void)
{
    static const struct bus_ops ops = {"fake", fake_publish, NULL};
    struct bus *b = NULL;
    struct locker l;
    pthread_t t;
    char long_a[80], long_b[80];

    CHECK_INT(bus_create(&ops, NULL, &b), SPELL_OK);
    pthread_mutex_init(&l.mu, NULL);
    /* Another cast's lock is not held up by this one (a shared lock would
     * never let the join return). */
    bus_lock_cast(b, "cst_a");
    locker_run(&l, b, "cst_b", &t);
    pthread_join(t, NULL);
    CHECK(l.got);
    /* The same cast waits until it is let go. */
    locker_run(&l, b, "cst_a", &t);
    sleep_ms(50);
    CHECK(!locker_got(&l));
    bus_unlock_cast(b, "cst_a");
    pthread_join(t, NULL);
    CHECK(l.got);
    /* The whole bus waits for every cast, and every cast for it. */
    bus_lock_cast(b, "cst_c");
    locker_run(&l, b, NULL, &t);
    sleep_ms(50);
    CHECK(!locker_got(&l));
    bus_unlock_cast(b, "cst_c");
    pthread_join(t, NULL);
    CHECK(l.got);
    bus_lock(b);
    locker_run(&l, b, "cst_d", &t);
    sleep_ms(50);
    CHECK(!locker_got(&l));
    bus_unlock(b);
    pthread_join(t, NULL);
    CHECK(l.got);
    /* Ids longer than the busy table keeps, alike in what it keeps, share
     * a lock: never a lock too few. */
    memset(long_a, 'x', sizeof long_a);
    long_a[sizeof long_a - 1] = '\0';
    memcpy(long_b, long_a, sizeof long_b);
    long_b[70] = 'y';
    bus_lock_cast(b, long_a);
    locker_run(&l, b, long_b, &t);
    sleep_ms(50);
    CHECK(!locker_got(&l));
    bus_unlock_cast(b, long_a);
    pthread_join(t, NULL);
    CHECK(l.got);
    /* Letting go of a cast not locked changes nothing. */
    bus_unlock_cast(b, "cst_never");
    bus_lock(b);
    bus_unlock(b);
    pthread_mutex_destroy(&l.mu);
    bus_free(b);
}

static void test_api_errors(void)
{
    struct fixture f;
    struct server bare;
    struct executor *e = NULL;
    struct bus *b = NULL;

    fx_init(&f, 0);
    CHECK_INT(exec_submit(f.exec, NULL), SPELL_EINVAL);
    CHECK_INT(exec_submit(f.exec, ""), SPELL_EINVAL);
    CHECK_INT(exec_submit(f.exec, "cst_with space"), SPELL_EINVAL);
    CHECK_INT(exec_submit(f.exec, "cst_0123456789012345678901234567890123456789012345"),
              SPELL_EINVAL);
    CHECK_INT(exec_submit(NULL, "cst_x"), SPELL_EINVAL);
    CHECK_INT(lifecycle_start(&f.srv, "cst_unknown", NULL), SPELL_ENOTFOUND);
    CHECK_INT(lifecycle_log(&f.srv, "cst_unknown", "x"), SPELL_ENOTFOUND);
    CHECK_INT(lifecycle_succeed(&f.srv, "cst_unknown", -1, NULL), SPELL_EINVAL);
    CHECK_INT(lifecycle_fail(&f.srv, "cst_unknown", "", "x"), SPELL_EINVAL);
    CHECK_INT(lifecycle_publish_pending(NULL, "x"), SPELL_EINVAL);
    /* A second executor on the same registry cannot register its families. */
    CHECK_INT(exec_new(&f.srv, &e), SPELL_EINVAL);
    CHECK(e == NULL);
    memset(&bare, 0, sizeof bare);
    CHECK_INT(exec_new(&bare, &e), SPELL_EINVAL);
    CHECK_INT(bus_local_new(NULL, &b), SPELL_EINVAL);
    /* Without a bus, publishing is a no-op. */
    bare.store = f.store;
    CHECK_INT(lifecycle_publish_pending(&bare, "cst_x"), SPELL_OK);
    exec_free(NULL);
    exec_stop(NULL);
    CHECK_INT(exec_running(NULL), 0);
    fx_done(&f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_text_clean);
    RUN(test_bus_tracking);
    RUN(test_bus_tracking_model);
    RUN(test_bus_cast_locks);
    RUN(test_api_errors);
    RUN(test_success_with_progress_and_stream);
    RUN(test_nonzero_exit_with_stderr);
    RUN(test_timeout);
    RUN(test_grandchild_holding_stdout);
    RUN(test_grandchild_timeout);
    RUN(test_output_flood);
    RUN(test_long_line);
    RUN(test_invalid_output);
    RUN(test_no_result_line_succeeds);
    RUN(test_metered_cost);
    RUN(test_progress_never_decreases);
    RUN(test_environment_and_stdin);
    RUN(test_spell_niceness);
    RUN(test_log_flood_is_limited);
    RUN(test_cancel_running);
    RUN(test_cancel_queued);
    RUN(test_stop_and_recover);
    RUN(test_recover_without_inputs);
    RUN(test_zero_workers);
    RUN(test_modes_not_configured);
    RUN(test_bad_execution_config);
    RUN(test_soft_limit_event);
    RUN(test_cancel_races_completion);
    return tap_done();
}
