/*
 * Tests of the assembly of spell-server: routes_merge() and its refusal of
 * duplicate rows, the real table of routes_build(), the health rows, and
 * /healthz and /metrics both as plain handler calls and over HTTP on
 * 127.0.0.1:0, including /healthz answering 503 when the database file
 * was moved away underneath the server; and an executor with no workers
 * (`serve --workers 0`): it takes casts and runs none, and a later start
 * with workers on the same database runs them to the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "spell/buf.h"
#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/crypto.h"
#include "spell/version.h"

#include "app.h"
#include "api.h"
#include "auth.h"
#include "billing.h"
#include "exec.h"
#include "lifecycle.h"
#include "metrics.h"
#include "store.h"
#include "identity.h"
#include "workflow.h"
#include "httpd.h"
#include "routes.h"
#include "server.h"
#include "tap.h"

static int h_a(struct request *req, struct response **out, void *ud)
{
    (void)req;
    (void)ud;
    return httpd_response_json_str(200, "{}", out);
}

static int h_b(struct request *req, struct response **out, void *ud)
{
    (void)req;
    (void)ud;
    return httpd_response_json_str(201, "{}", out);
}

struct world {
    char dir[64];
    char db[128];
    struct server srv;
};

static int world_open(struct world *w)
{
    char err[APP_ERR_MAX];

    memset(w, 0, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "/tmp/test-app-XXXXXX");
    if (!mkdtemp(w->dir))
        return -1;
    snprintf(w->db, sizeof w->db, "%s/spell.db", w->dir);
    w->srv.public_url = "http://127.0.0.1:1";
    if (app_setup(&w->srv, w->db, APP_STORE | APP_METRICS | APP_AUTH | APP_RATELIMIT, err,
                  sizeof err) != SPELL_OK) {
        fprintf(stderr, "# %s\n", err);
        return -1;
    }
    return 0;
}

static void world_close(struct world *w)
{
    char cmd[128];

    app_teardown(&w->srv);
    snprintf(cmd, sizeof cmd, "rm -rf %s", w->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "# could not remove %s\n", w->dir);
}

/* ---- routes_merge ---- */

static void test_merge_ok(void)
{
    struct server srv;
    int other = 0;
    const struct route p1[] = {
        {"GET", "/a", h_a, NULL, ROUTE_NO_BODY, 0},
        {"POST", "/a", h_b, &other, 0, 0},
    };
    const struct route p2[] = {
        {"GET", "/b/{id}", h_a, NULL, ROUTE_AUTH, 0},
    };
    const struct route *parts[] = {p1, p2, NULL};
    size_t counts[] = {2, 1, 0};
    struct route *rows = NULL;
    size_t n = 99;

    memset(&srv, 0, sizeof srv);
    CHECK_INT(routes_merge(&srv, parts, counts, 3, &rows, &n), SPELL_OK);
    CHECK_INT((int)n, 3);
    CHECK_STR(rows[0].pattern, "/a");
    CHECK_STR(rows[1].method, "POST");
    CHECK_STR(rows[2].pattern, "/b/{id}");
    CHECK(rows[0].ud == &srv);          /* NULL ud becomes srv */
    CHECK(rows[1].ud == &other);        /* a part's own ud is kept */
    CHECK(rows[2].ud == &srv);
    CHECK_INT((int)rows[2].flags, ROUTE_AUTH);
    routes_free(rows);
    rows = NULL;
    CHECK_INT(routes_merge(&srv, NULL, NULL, 0, &rows, &n), SPELL_OK);
    CHECK_INT((int)n, 0);
    routes_free(rows);
    routes_free(NULL);
}

static void test_merge_refuses(void)
{
    struct server srv;
    const struct route p1[] = {
        {"GET", "/a", h_a, NULL, 0, 0},
        {"POST", "/a", h_a, NULL, 0, 0},
    };
    const struct route dup_in_one[] = {
        {"GET", "/x", h_a, NULL, 0, 0},
        {"GET", "/x", h_b, NULL, 0, 0},
    };
    const struct route dup_across[] = {
        {"POST", "/a", h_b, NULL, ROUTE_AUTH, 0},
    };
    const struct route no_handler[] = {{"GET", "/c", NULL, NULL, 0, 0}};
    const struct route no_method[] = {{NULL, "/c", h_a, NULL, 0, 0}};
    const struct route no_pattern[] = {{"GET", NULL, h_a, NULL, 0, 0}};
    const struct route *parts[2];
    size_t counts[2];
    struct route *rows = (struct route *)p1;
    size_t n = 7;

    memset(&srv, 0, sizeof srv);
    parts[0] = dup_in_one;
    counts[0] = 2;
    CHECK_INT(routes_merge(&srv, parts, counts, 1, &rows, &n), SPELL_EINVAL);
    CHECK(rows == p1);                  /* untouched on failure */
    CHECK_INT((int)n, 7);
    parts[0] = p1;
    counts[0] = 2;
    parts[1] = dup_across;
    counts[1] = 1;
    CHECK_INT(routes_merge(&srv, parts, counts, 2, &rows, &n), SPELL_EINVAL);
    parts[1] = no_handler;
    CHECK_INT(routes_merge(&srv, parts, counts, 2, &rows, &n), SPELL_EINVAL);
    parts[1] = no_method;
    CHECK_INT(routes_merge(&srv, parts, counts, 2, &rows, &n), SPELL_EINVAL);
    parts[1] = no_pattern;
    CHECK_INT(routes_merge(&srv, parts, counts, 2, &rows, &n), SPELL_EINVAL);
    parts[1] = NULL;                    /* rows promised, none given */
    CHECK_INT(routes_merge(&srv, parts, counts, 2, &rows, &n), SPELL_EINVAL);
    CHECK_INT(routes_merge(NULL, parts, counts, 1, &rows, &n), SPELL_EINVAL);
    CHECK_INT(routes_merge(&srv, parts, counts, 1, NULL, &n), SPELL_EINVAL);
    CHECK_INT(routes_merge(&srv, NULL, counts, 1, &rows, &n), SPELL_EINVAL);
    CHECK(rows == p1);
}

static void test_merge_cap(void)
{
    struct server srv;
    static struct route many[ROUTES_MAX + 1];
    static char patterns[ROUTES_MAX + 1][16];
    const struct route *parts[1] = {many};
    size_t counts[1] = {ROUTES_MAX};
    struct route *rows = NULL;
    size_t n = 0;

    memset(&srv, 0, sizeof srv);
    for (size_t i = 0; i <= ROUTES_MAX; i++) {
        snprintf(patterns[i], sizeof patterns[i], "/r%zu", i);
        many[i] = (struct route){"GET", patterns[i], h_a, NULL, 0, 0};
    }
    CHECK_INT(routes_merge(&srv, parts, counts, 1, &rows, &n), SPELL_OK);
    CHECK_INT((int)n, ROUTES_MAX);
    routes_free(rows);
    rows = NULL;
    counts[0] = ROUTES_MAX + 1;
    CHECK_INT(routes_merge(&srv, parts, counts, 1, &rows, &n), SPELL_ETOOBIG);
    CHECK(rows == NULL);
}

/* ---- the real table ---- */

static void test_build_real_table(void)
{
    struct world w;
    struct route *rows = NULL;
    size_t n = 0, i, j;
    int found_cast = 0, found_export = 0, dups = 0;

    if (world_open(&w) != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT(routes_build(&w.srv, &rows, &n), SPELL_OK);
    {
        /* Every part's rows, and nothing else: billing's only when Stripe
         * is set up. */
        const struct route *part;
        size_t count, want = HEALTH_ROUTES;
        int (*const parts[])(struct server *, const struct route **, size_t *) = {
            auth_routes, api_routes, identity_routes, workflow_routes,
        };
        for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
            CHECK_INT(parts[k](&w.srv, &part, &count), SPELL_OK);
            want += count;
        }
        if (w.srv.billing) {
            CHECK_INT(billing_routes(&w.srv, &part, &count), SPELL_OK);
            want += count;
        }
        CHECK_INT((int)n, (int)want);
        CHECK((int)n > HEALTH_ROUTES + 20);
    }
    CHECK_STR(rows[0].pattern, "/healthz");
    CHECK_STR(rows[1].pattern, "/metrics");
    for (i = 0; i < n; i++) {
        CHECK(rows[i].ud == &w.srv);
        CHECK(rows[i].handler != NULL);
        for (j = i + 1; j < n; j++)
            dups += strcmp(rows[i].method, rows[j].method) == 0 &&
                    strcmp(rows[i].pattern, rows[j].pattern) == 0;
        if (strcmp(rows[i].method, "POST") == 0 &&
            strcmp(rows[i].pattern, "/v1/spells/{key}:cast") == 0) {
            found_cast = 1;
            CHECK(rows[i].flags & ROUTE_AUTH);
        }
        if (strcmp(rows[i].pattern, "/v1/users/me/export") == 0)
            found_export = 1;
        /* Public rows: health, the public spell pages, the sign-in flows
         * (they authenticate the person themselves), provider webhooks
         * (signed) and admin routes (their own secret). */
        if (!(rows[i].flags & ROUTE_AUTH))
            CHECK(i < HEALTH_ROUTES || strstr(rows[i].pattern, "/meta") ||
                  strstr(rows[i].pattern, "/og") ||
                  strncmp(rows[i].pattern, "/webhooks/", 10) == 0 ||
                  strncmp(rows[i].pattern, "/admin/", 7) == 0 ||
                  strncmp(rows[i].pattern, "/auth/github", 12) == 0 ||
                  strcmp(rows[i].pattern, "/device") == 0 ||
                  strcmp(rows[i].pattern, "/v1/auth/device") == 0 ||
                  strcmp(rows[i].pattern, "/v1/auth/token") == 0);
    }
    CHECK_INT(dups, 0);
    CHECK(found_cast);
    CHECK(found_export);
    routes_free(rows);
    CHECK_INT(routes_build(NULL, &rows, &n), SPELL_EINVAL);
    CHECK_INT(routes_build(&w.srv, NULL, &n), SPELL_EINVAL);
    world_close(&w);
}

static void test_health_routes_cap(void)
{
    struct server srv;
    struct route rows[HEALTH_ROUTES];
    size_t n = 0;

    memset(&srv, 0, sizeof srv);
    CHECK_INT(health_routes(&srv, rows, HEALTH_ROUTES - 1, &n), SPELL_ETOOBIG);
    CHECK_INT(health_routes(&srv, NULL, HEALTH_ROUTES, &n), SPELL_ETOOBIG);
    CHECK_INT(health_routes(&srv, rows, HEALTH_ROUTES, &n), SPELL_OK);
    CHECK_INT((int)n, HEALTH_ROUTES);
    CHECK(rows[0].handler == health_healthz);
    CHECK(rows[1].handler == health_metrics);
    CHECK_INT((int)rows[0].flags, ROUTE_NO_BODY);
}

/* ---- the health handlers, called directly ---- */

static void test_health_direct(void)
{
    struct world w;
    struct response *r = NULL;
    struct store *saved;
    char away[160];

    if (world_open(&w) != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT(health_healthz(NULL, &r, &w.srv), SPELL_OK);
    CHECK_INT(httpd_response_status(r), 200);
    httpd_response_free(r);
    r = NULL;

    snprintf(away, sizeof away, "%s.away", w.db);
    CHECK_INT(rename(w.db, away), 0);
    CHECK_INT(health_healthz(NULL, &r, &w.srv), SPELL_OK);
    CHECK_INT(httpd_response_status(r), 503);
    httpd_response_free(r);
    r = NULL;
    CHECK_INT(rename(away, w.db), 0);
    CHECK_INT(health_healthz(NULL, &r, &w.srv), SPELL_OK);
    CHECK_INT(httpd_response_status(r), 200);
    httpd_response_free(r);
    r = NULL;

    saved = w.srv.store;
    w.srv.store = NULL;
    CHECK_INT(health_healthz(NULL, &r, &w.srv), SPELL_OK);
    CHECK_INT(httpd_response_status(r), 503);
    httpd_response_free(r);
    r = NULL;
    w.srv.store = saved;

    CHECK_INT(health_metrics(NULL, &r, &w.srv), SPELL_OK);
    CHECK_INT(httpd_response_status(r), 200);
    httpd_response_free(r);
    r = NULL;
    world_close(&w);
}

/* ---- over HTTP ---- */

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    return spell_buf_add(ud, p, size * n) == SPELL_OK ? size * n : 0;
}

static long get(const char *base, const char *path, struct spell_buf *body)
{
    CURL *c = curl_easy_init();
    char url[256];
    long status = -1;

    spell_buf_reset(body);
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static void test_health_http(void)
{
    struct world w;
    struct route *rows = NULL;
    size_t n = 0;
    struct httpd_config cfg;
    struct httpd *h = NULL;
    struct spell_buf body;
    char base[64], want[128], away[160];

    spell_buf_init(&body, 4 * 1024 * 1024);
    if (world_open(&w) != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT(routes_build(&w.srv, &rows, &n), SPELL_OK);
    memset(&cfg, 0, sizeof cfg);
    cfg.address = "127.0.0.1";
    cfg.routes = rows;
    cfg.nroutes = n;
    cfg.threads = 2;
    cfg.metrics = w.srv.metrics;
    cfg.authenticate = auth_authenticate;
    cfg.auth_ud = &w.srv;
    cfg.shutdown_grace_ms = 3000;
    CHECK_INT(httpd_start(&cfg, &h), SPELL_OK);
    if (!h)
        goto out;
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)httpd_port(h));

    CHECK_INT((int)get(base, "/healthz", &body), 200);
    snprintf(want, sizeof want, "{\"status\":\"ok\",\"version\":\"%s\"}", spell_version());
    CHECK_STR(spell_buf_str(&body), want);

    snprintf(away, sizeof away, "%s.away", w.db);
    CHECK_INT(rename(w.db, away), 0);
    CHECK_INT((int)get(base, "/healthz", &body), 503);
    CHECK(strstr(spell_buf_str(&body), "\"code\":\"UNAVAILABLE\"") != NULL);
    CHECK_INT(rename(away, w.db), 0);
    CHECK_INT((int)get(base, "/healthz", &body), 200);

    CHECK_INT((int)get(base, "/metrics", &body), 200);
    CHECK(strstr(spell_buf_str(&body), "spell_build_info{version=\"") != NULL);
    CHECK(strstr(spell_buf_str(&body), "# TYPE spell_budget_rejections_total counter") != NULL);
    CHECK(strstr(spell_buf_str(&body),
                 "spell_http_requests_total{route=\"/healthz\",method=\"GET\",code=\"5xx\"} 1") !=
          NULL);
    /* The authenticated rows are wired to the hook. */
    CHECK_INT((int)get(base, "/v1/auth/me", &body), 401);
    CHECK_INT((int)get(base, "/v1/casts", &body), 401);
out:
    if (h)
        httpd_stop(h);
    routes_free(rows);
    spell_buf_free(&body);
    world_close(&w);
}


/* ---- --workers 0, then a start with workers ---- */

/* The value of one unlabelled series in the /metrics text, -1 if absent. */
static double metric_of(struct server *srv, const char *name)
{
    struct spell_buf text;
    char want[96];
    const char *p;
    double v = -1;

    spell_buf_init(&text, 4 * 1024 * 1024);
    snprintf(want, sizeof want, "\n%s ", name);
    if (metrics_render(srv->metrics, &text) == SPELL_OK &&
        (p = strstr(spell_buf_str(&text), want)) != NULL)
        v = strtod(p + strlen(want), NULL);
    spell_buf_free(&text);
    return v;
}

static int app_start(struct world *w, int workers)
{
    char err[APP_ERR_MAX];

    memset(&w->srv, 0, sizeof w->srv);
    w->srv.public_url = "http://127.0.0.1:1";
    w->srv.limits.workers = workers;
    w->srv.limits.default_timeout_s = 30;
    w->srv.limits.max_output_bytes = 64 * 1024;
    w->srv.limits.max_memory_bytes = (int64_t)1 << 30;
    if (app_setup(&w->srv, w->db, APP_ALL, err, sizeof err) != SPELL_OK ||
        app_exec_start(&w->srv, err, sizeof err) != SPELL_OK) {
        fprintf(stderr, "# %s\n", err);
        return -1;
    }
    return 0;
}

/* Reserves a cast of key and hands it to the executor, as the API does. */
static int cast_submit(struct server *srv, const char *key, char id[STORE_ID_SIZE])
{
    struct store_reserve req;
    struct store_reserve_result res;
    struct store_cast c;
    int rc;

    memset(&c, 0, sizeof c);
    if ((rc = spell_id_make("cst", spell_time_now_ms(), id, STORE_ID_SIZE)) != SPELL_OK)
        return rc;
    snprintf(c.id, sizeof c.id, "%.*s", (int)sizeof c.id - 1, id);
    snprintf(c.user_id, sizeof c.user_id, "usr_w0");
    snprintf(c.spell_key, sizeof c.spell_key, "%s", key);
    snprintf(c.spell_version, sizeof c.spell_version, "1.0.0");
    snprintf(c.mode, sizeof c.mode, "service");
    memset(c.input_hash, 'a', 64);
    c.inputs = (char *)"{\"message\":\"hi\"}";
    memset(&req, 0, sizeof req);
    req.cast = &c;
    req.now_ms = spell_time_now_ms();
    if ((rc = store_cast_reserve(srv->store, &req, &res)) != SPELL_OK)
        return rc;
    if (res.outcome != STORE_RESERVED)
        return SPELL_EINVAL;
    (void)lifecycle_publish_pending(srv, id);
    return exec_submit(srv->exec, id);
}

#define W0_CASTS 5

static void test_workers_zero_then_restart(void)
{
    struct world w;
    struct store_user u;
    struct store_spell sp;
    struct store_cast c;
    char script[160], exec_json[256], ids[W0_CASTS][STORE_ID_SIZE];
    int i, done, rounds;
    FILE *fp;

    memset(&w, 0, sizeof w);
    snprintf(w.dir, sizeof w.dir, "/tmp/test-app-XXXXXX");
    if (!mkdtemp(w.dir)) {
        CHECK(0);
        return;
    }
    snprintf(w.db, sizeof w.db, "%s/spell.db", w.dir);
    snprintf(script, sizeof script, "%s/echo.sh", w.dir);
    fp = fopen(script, "w");
    CHECK(fp != NULL);
    if (!fp)
        return;
    fprintf(fp, "#!/bin/sh\ncat >/dev/null\necho '{\"progress\":50,\"message\":\"half\"}'\n"
                "echo '{\"result\":{}}'\n");
    fclose(fp);
    CHECK_INT(chmod(script, 0755), 0);

    /* 1: no workers.  Casts are taken, none runs. */
    if (app_start(&w, 0) != 0) {
        CHECK(0);
        world_close(&w);
        return;
    }
    CHECK(metric_of(&w.srv, "spell_exec_workers") == 0);
    memset(&u, 0, sizeof u);
    snprintf(u.id, sizeof u.id, "usr_w0");
    snprintf(u.login, sizeof u.login, "w0");
    snprintf(u.role, sizeof u.role, "caster");
    u.created_at = spell_time_now_ms();
    CHECK_INT(store_user_create(w.srv.store, &u), SPELL_OK);
    snprintf(exec_json, sizeof exec_json, "{\"command\":[\"%s\"],\"timeout_s\":30}", script);
    memset(&sp, 0, sizeof sp);
    snprintf(sp.key, sizeof sp.key, "echo");
    snprintf(sp.name, sizeof sp.name, "echo");
    snprintf(sp.version, sizeof sp.version, "1.0.0");
    snprintf(sp.status, sizeof sp.status, "published");
    snprintf(sp.execution_mode, sizeof sp.execution_mode, "service");
    snprintf(sp.pricing_model, sizeof sp.pricing_model, "free");
    sp.inputs_schema = (char *)"{\"type\":\"object\"}";
    sp.execution = exec_json;
    CHECK_INT(store_spell_upsert(w.srv.store, &sp, spell_time_now_ms()), SPELL_OK);
    for (i = 0; i < W0_CASTS; i++)
        CHECK_INT(cast_submit(&w.srv, "echo", ids[i]), SPELL_OK);
    CHECK_INT(exec_running(w.srv.exec), 0);
    /* A queued cast can still be canceled here. */
    CHECK_INT(exec_cancel(w.srv.exec, ids[W0_CASTS - 1]), SPELL_OK);
    app_teardown(&w.srv);

    /* Nothing ran: the casts are still queued (no thread ever existed
     * that could have started one). */
    CHECK_INT(store_open(w.db, &w.srv.store), SPELL_OK);
    for (i = 0; i < W0_CASTS; i++) {
        memset(&c, 0, sizeof c);
        CHECK_INT(store_cast_get(w.srv.store, ids[i], NULL, &c), SPELL_OK);
        CHECK_STR(c.status, i == W0_CASTS - 1 ? "canceled" : "queued");
        store_cast_clear(&c);
    }
    store_close(w.srv.store);
    w.srv.store = NULL;

    /* 2: a start with workers recovers them and runs them to the end. */
    if (app_start(&w, 2) != 0) {
        CHECK(0);
        world_close(&w);
        return;
    }
    CHECK(metric_of(&w.srv, "spell_exec_workers") == 2);
    for (rounds = 0, done = 0; rounds < 6000 && done < W0_CASTS - 1; rounds++) {
        struct timespec ts = {0, 10 * 1000 * 1000};

        for (done = 0, i = 0; i < W0_CASTS - 1; i++) {
            memset(&c, 0, sizeof c);
            if (store_cast_get(w.srv.store, ids[i], NULL, &c) == SPELL_OK &&
                strcmp(c.status, "succeeded") == 0)
                done++;
            store_cast_clear(&c);
        }
        if (done < W0_CASTS - 1)
            nanosleep(&ts, NULL);
    }
    CHECK_INT(done, W0_CASTS - 1);
    memset(&c, 0, sizeof c);
    CHECK_INT(store_cast_get(w.srv.store, ids[W0_CASTS - 1], NULL, &c), SPELL_OK);
    CHECK_STR(c.status, "canceled");
    store_cast_clear(&c);
    {
        int64_t checked = 0, bad = 0;

        CHECK_INT(store_ledger_verify(w.srv.store, &checked, &bad), SPELL_OK);
        CHECK(checked >= 2 * (W0_CASTS - 1));
    }
    world_close(&w);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    RUN(test_merge_ok);
    RUN(test_merge_refuses);
    RUN(test_merge_cap);
    RUN(test_build_real_table);
    RUN(test_health_routes_cap);
    RUN(test_health_direct);
    RUN(test_health_http);
    RUN(test_workers_zero_then_restart);
    curl_global_cleanup();
    return tap_done();
}
