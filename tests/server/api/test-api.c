/*
 * Tests of the api part: its handlers on a real httpd on 127.0.0.1:0 with
 * a temporary SQLite store, driven with libcurl.
 *
 * The other parts are stood in for here: the authenticate hook sets the
 * principal named by an X-Test-User header (none: 401); the rate limits
 * pass unless a test turns the cast limit off; exec_submit() records the
 * cast ids it is given; exec_cancel() and the lifecycle functions release
 * casts through the store and publish their events to the SSE hub, as the
 * exec part does.  Time comes from a test clock fixed in November 2026.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "spell/buf.h"
#include "spell/clock.h"
#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/jcs.h"
#include "spell/json.h"
#include "spell/models.h"

#include "api.h"
#include "auth.h"
#include "exec.h"
#include "httpd.h"
#include "lifecycle.h"
#include "metrics.h"
#include "ratelimit.h"
#include "server.h"
#include "sse_hub.h"
#include "store.h"
#include "tap.h"
#include "workflow.h"

/* 2026-11-22T10:00:00Z */
#define T0 INT64_C(1795341600000)

/* ---- the world ---- */

#define SUBMITS_MAX 1024

struct world {
    struct server srv;
    struct httpd *httpd;
    /* The route table the daemon reads while it runs. */
    struct route rows[32];
    struct sse_hub *hub;
    struct store *store;
    char dir[64];
    char base[64];
    atomic_llong now;
    pthread_mutex_t lock;
    char submitted[SUBMITS_MAX][STORE_ID_SIZE];
    size_t nsubmitted;
    atomic_int deny_casts;
    atomic_int submit_fails;
    atomic_int ip_checks;
    char dropped[16][STORE_KEY_PREFIX_SIZE];
    size_t ndropped;
};

static struct world W;

static int64_t test_now(void *ud)
{
    (void)ud;
    return (int64_t)atomic_load(&W.now);
}

int64_t srv_now_ms(const struct srv_clock *c)
{
    return c && c->now_ms ? c->now_ms(c->ud) : spell_time_now_ms();
}

/* ---- stand-ins for the auth and exec parts ---- */

int ratelimit_cast_check(struct server *srv, struct request *req, const struct principal *p,
                         struct response **refusal)
{
    (void)srv;
    (void)req;
    (void)p;
    if (!atomic_load(&W.deny_casts))
        return SPELL_OK;
    if (httpd_response_error(SPELL_ERR_RATE_LIMITED, NULL, NULL, refusal) == SPELL_OK)
        httpd_response_header(*refusal, "Retry-After", "60");
    return SPELL_EABORT;
}

int ratelimit_ip_check(struct server *srv, struct request *req, struct response **refusal)
{
    (void)srv;
    (void)req;
    (void)refusal;
    atomic_fetch_add(&W.ip_checks, 1);
    return SPELL_OK;
}

void ratelimit_headers(struct request *req, struct response *resp)
{
    (void)req;
    httpd_response_header(resp, "X-Test-Rated", "1");
}

void auth_key_cache_drop(struct auth *a, const char *prefix)
{
    (void)a;
    pthread_mutex_lock(&W.lock);
    if (W.ndropped < 16)
        snprintf(W.dropped[W.ndropped++], STORE_KEY_PREFIX_SIZE, "%s", prefix);
    pthread_mutex_unlock(&W.lock);
}

static int publish_one(void *ud, const struct store_event *e)
{
    char data[STORE_EVENT_DATA_MAX + 1];
    int terminal = !strcmp(e->type, "cast.succeeded") || !strcmp(e->type, "cast.failed") ||
                   !strcmp(e->type, "cast.canceled");

    (void)ud;
    memcpy(data, e->data, e->data_len);
    data[e->data_len] = '\0';
    sse_hub_publish(W.hub, e->cast_id, (uint64_t)e->seq, e->type, data, terminal);
    return 0;
}

int lifecycle_publish_pending(struct server *srv, const char *cast_id)
{
    /* Publishing an event twice is harmless: each subscription accepts a
     * seq once. */
    return store_events_after(srv->store, cast_id, 0, 0, publish_one, NULL);
}

int lifecycle_fail(struct server *srv, const char *cast_id, const char *code, const char *message)
{
    int rc = store_cast_release(srv->store, cast_id, "failed", code, message,
                                srv_now_ms(&srv->clock), NULL);
    if (rc == SPELL_OK)
        rc = lifecycle_publish_pending(srv, cast_id);
    return rc;
}

int lifecycle_cancel(struct server *srv, const char *cast_id)
{
    int rc = store_cast_release(srv->store, cast_id, "canceled", "CANCELED",
                                "the cast was canceled", srv_now_ms(&srv->clock), NULL);
    if (rc == SPELL_OK)
        rc = lifecycle_publish_pending(srv, cast_id);
    return rc;
}

int exec_submit(struct executor *e, const char *cast_id)
{
    (void)e;
    if (atomic_load(&W.submit_fails))
        return SPELL_EIO;
    pthread_mutex_lock(&W.lock);
    if (W.nsubmitted < SUBMITS_MAX)
        snprintf(W.submitted[W.nsubmitted++], STORE_ID_SIZE, "%s", cast_id);
    pthread_mutex_unlock(&W.lock);
    return SPELL_OK;
}

int exec_cancel(struct executor *e, const char *cast_id)
{
    (void)e;
    return lifecycle_cancel(&W.srv, cast_id);
}

/* The workflow executor's cast-time check (server/exec/workflow.c, tested
 * in tests/server/workflow/): every input passes here. */
int workflow_validate_inputs(const char *execution, const cJSON *inputs, char *field,
                             size_t fieldlen, char *err, size_t errlen)
{
    (void)execution;
    (void)inputs;
    (void)field;
    (void)fieldlen;
    (void)err;
    (void)errlen;
    return SPELL_OK;
}

static void free_principal(void *p)
{
    free(p);
}

/* The test's authenticate hook: X-Test-User names the user. */
static int authenticate(struct request *req, void *ud)
{
    const char *u = httpd_request_header(req, "X-Test-User");
    struct principal *p;

    (void)ud;
    if (!u || !u[0])
        return SPELL_EABORT;
    if (!(p = calloc(1, sizeof *p)))
        return SPELL_ENOMEM;
    snprintf(p->user_id, sizeof p->user_id, "%s", u);
    snprintf(p->login, sizeof p->login, "%s", u);
    snprintf(p->role, sizeof p->role, "caster");
    httpd_request_set_principal(req, p, free_principal);
    return SPELL_OK;
}

/* ---- fixtures ---- */

static void user_add(const char *id)
{
    struct store_user u;

    memset(&u, 0, sizeof u);
    snprintf(u.id, sizeof u.id, "%s", id);
    snprintf(u.login, sizeof u.login, "%s", id);
    snprintf(u.role, sizeof u.role, "caster");
    u.created_at = T0;
    if (store_user_create(W.store, &u) != SPELL_OK) {
        fprintf(stderr, "# user_add %s failed\n", id);
        exit(1);
    }
}

static void spell_add(const char *key, const char *name, const char *status, const char *mode,
                      const char *model, int64_t price, const char *schema)
{
    struct store_spell sp;

    memset(&sp, 0, sizeof sp);
    snprintf(sp.key, sizeof sp.key, "%s", key);
    snprintf(sp.name, sizeof sp.name, "%s", name);
    snprintf(sp.summary, sizeof sp.summary, "Summary of %s", key);
    snprintf(sp.version, sizeof sp.version, "1.0.0");
    snprintf(sp.status, sizeof sp.status, "%s", status);
    snprintf(sp.execution_mode, sizeof sp.execution_mode, "%s", mode);
    snprintf(sp.pricing_model, sizeof sp.pricing_model, "%s", model);
    if (!strcmp(model, "flat"))
        sp.flat_cents = price;
    else if (!strcmp(model, "metered")) {
        sp.base_cents = price;
        sp.per_kb_cents = 1;
    }
    sp.inputs_schema = (char *)schema;
    sp.execution = (char *)"{\"command\":[\"/bin/true\"]}";
    if (store_spell_upsert(W.store, &sp, T0) != SPELL_OK) {
        fprintf(stderr, "# spell_add %s failed\n", key);
        exit(1);
    }
}

static const char *const THUMB_SCHEMA =
    "{\"type\":\"object\",\"required\":[\"url\"],\"properties\":{"
    "\"url\":{\"type\":\"string\",\"maxLength\":2048},"
    "\"width\":{\"type\":\"integer\",\"minimum\":16,\"maximum\":4096}}}";

static int world_start(void)
{
    struct httpd_config cfg;
    struct route *rows = W.rows;
    const struct route *part;
    size_t n, i;
    char url[128];

    memset(&W.srv, 0, sizeof W.srv);
    pthread_mutex_init(&W.lock, NULL);
    atomic_store(&W.now, T0);
    snprintf(W.dir, sizeof W.dir, "/tmp/test-api-XXXXXX");
    if (!mkdtemp(W.dir))
        return -1;
    snprintf(url, sizeof url, "sqlite://%s/spell.db", W.dir);
    if (store_open(url, &W.store) != SPELL_OK)
        return -1;
    if (sse_hub_new(NULL, &W.hub) != SPELL_OK)
        return -1;
    W.srv.store = W.store;
    W.srv.hub = W.hub;
    if (metrics_new(&W.srv.metrics) != SPELL_OK || api_metrics_register(&W.srv) != SPELL_OK ||
        !W.srv.budget_rejections)
        return -1;
    W.srv.clock.now_ms = test_now;
    W.srv.public_url = "https://spell.example/";
    if (api_routes(&W.srv, &part, &n) != SPELL_OK || n > 32)
        return -1;
    for (i = 0; i < n; i++) {
        rows[i] = part[i];
        rows[i].ud = &W.srv;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.address = "127.0.0.1";
    cfg.routes = rows;
    cfg.nroutes = n;
    cfg.threads = 8;
    cfg.authenticate = authenticate;
    cfg.shutdown_grace_ms = 3000;
    if (httpd_start(&cfg, &W.httpd) != SPELL_OK)
        return -1;
    snprintf(W.base, sizeof W.base, "http://127.0.0.1:%u", (unsigned)httpd_port(W.httpd));
    spell_add("thumbnail", "Thumbnail", "published", "service", "flat", 100, THUMB_SCHEMA);
    spell_add("free", "Free", "published", "service", "free", 0, NULL);
    spell_add("draft", "Draft", "draft", "service", "flat", 1, NULL);
    spell_add("cloned", "Cloned", "published", "clone", "flat", 1, NULL);
    spell_add("metered", "Metered", "published", "service", "metered", 5, NULL);
    return 0;
}

static void world_stop(void)
{
    char cmd[128];

    httpd_stop(W.httpd);
    metrics_free(W.srv.metrics);
    sse_hub_free(W.hub);
    store_close(W.store);
    snprintf(cmd, sizeof cmd, "rm -rf %s", W.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "# could not remove %s\n", W.dir);
}

/* ---- the client ---- */

struct resp {
    long status;
    struct spell_buf headers;
    struct spell_buf body;
    cJSON *json;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct spell_buf *b = ud;

    return spell_buf_add(b, p, size * n) == SPELL_OK ? size * n : 0;
}

static void resp_free(struct resp *r)
{
    spell_buf_free(&r->headers);
    spell_buf_free(&r->body);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

/* One request.  hdrs is a NULL-terminated list of "Name: value" lines. */
static void call(const char *method, const char *path, const char *user, const char *const *hdrs,
                 const char *body, struct resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *sl = NULL;
    char url[2300], line[512];

    memset(r, 0, sizeof *r);
    spell_buf_init(&r->headers, 64 * 1024);
    spell_buf_init(&r->body, 16 * 1024 * 1024);
    snprintf(url, sizeof url, "%s%s", W.base, path);
    if (user) {
        snprintf(line, sizeof line, "X-Test-User: %s", user);
        sl = curl_slist_append(sl, line);
    }
    for (; hdrs && *hdrs; hdrs++)
        sl = curl_slist_append(sl, *hdrs);
    sl = curl_slist_append(sl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, sl);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->body.len)
        spell_json_parse(spell_buf_str(&r->body), r->body.len,
                         &(struct spell_json_limits){16 * 1024 * 1024, 0}, &r->json, NULL, 0);
    curl_slist_free_all(sl);
    curl_easy_cleanup(c);
}

/* A header's value (case-insensitive name) copied into out; "" if none. */
static const char *header(const struct resp *r, const char *name, char *out, size_t outlen)
{
    const char *h = spell_buf_str(&r->headers);
    size_t n = strlen(name);

    out[0] = '\0';
    while (h && *h) {
        const char *eol = strstr(h, "\r\n");
        size_t len = eol ? (size_t)(eol - h) : strlen(h);

        if (len > n + 1 && strncasecmp(h, name, n) == 0 && h[n] == ':') {
            const char *v = h + n + 1;

            while (*v == ' ')
                v++;
            snprintf(out, outlen, "%.*s", (int)(len - (size_t)(v - h)), v);
        }
        h = eol ? eol + 2 : NULL;
    }
    return out;
}

static const char *jstr(const cJSON *j, const char *path)
{
    char buf[128];
    char *save = NULL, *tok;
    const cJSON *cur = j;

    snprintf(buf, sizeof buf, "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cJSON_IsString(cur) ? cur->valuestring : cJSON_IsNull(cur) ? "(null)" : "(none)";
}

static int64_t jint(const cJSON *j, const char *path)
{
    char buf[128];
    char *save = NULL, *tok;
    const cJSON *cur = j;

    snprintf(buf, sizeof buf, "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cJSON_IsNumber(cur) ? (int64_t)cur->valuedouble : INT64_MIN;
}

/* POST /v1/spells/{spell}:cast with an Idempotency-Key. */
static void cast(const char *user, const char *spell, const char *key, const char *body,
                 struct resp *r)
{
    char path[128], kh[400];
    const char *hdrs[2] = {kh, NULL};

    snprintf(path, sizeof path, "/v1/spells/%s:cast", spell);
    if (key)
        snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
    call("POST", path, user, key ? hdrs : NULL, body, r);
}

static size_t count_casts(const char *user)
{
    struct resp r;
    size_t n = 0;

    call("GET", "/v1/casts?limit=100", user, NULL, NULL, &r);
    if (r.json)
        n = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "casts"));
    resp_free(&r);
    return n;
}

static size_t submitted(void)
{
    size_t n;

    pthread_mutex_lock(&W.lock);
    n = W.nsubmitted;
    pthread_mutex_unlock(&W.lock);
    return n;
}

/* ---- cast: the happy path and idempotency ---- */

static void test_cast_happy(void)
{
    struct resp r;
    char h[512], want[256];
    struct store_cast c;
    size_t before = submitted();

    user_add("u_happy");
    cast("u_happy", "thumbnail", "k1", "{\"inputs\": {\"url\": \"https://x/y.png\"}}", &r);
    CHECK_INT(r.status, 202);
    CHECK(r.json != NULL);
    CHECK_STR(jstr(r.json, "status"), "queued");
    CHECK(spell_cast_id_valid(jstr(r.json, "cast_id")));
    CHECK_INT(jint(r.json, "estimated_cost_cents"), 100);
    CHECK_INT(jint(r.json, "budget_remaining_cents"), 4900);
    CHECK_STR(jstr(r.json, "run_url"), "(null)");
    snprintf(want, sizeof want, "https://spell.example/v1/casts/%s", jstr(r.json, "cast_id"));
    CHECK_STR(header(&r, "Location", h, sizeof h), want);
    snprintf(want, sizeof want, "https://spell.example/v1/casts/%s/events",
             jstr(r.json, "cast_id"));
    CHECK_STR(jstr(r.json, "progress_sse"), want);
    CHECK_STR(header(&r, "Idempotent-Replayed", h, sizeof h), "");
    CHECK_STR(header(&r, "X-Test-Rated", h, sizeof h), "1");
    CHECK_INT(submitted(), before + 1);
    pthread_mutex_lock(&W.lock);
    CHECK_STR(W.submitted[W.nsubmitted - 1], jstr(r.json, "cast_id"));
    pthread_mutex_unlock(&W.lock);
    CHECK_INT(store_cast_get(W.store, jstr(r.json, "cast_id"), "u_happy", &c), SPELL_OK);
    CHECK_STR(c.status, "queued");
    CHECK_STR(c.spell_key, "thumbnail");
    CHECK_STR(c.idempotency_key, "k1");
    CHECK(c.inputs && strcmp(c.inputs, "{\"url\":\"https://x/y.png\"}") == 0);
    CHECK_INT(c.last_seq, 1);
    store_cast_clear(&c);
    resp_free(&r);
}

static void test_cast_free_spell_counts(void)
{
    struct resp r;

    user_add("u_free");
    cast("u_free", "free", "f1", "{\"inputs\": {}}", &r);
    CHECK_INT(r.status, 202);
    CHECK_INT(jint(r.json, "estimated_cost_cents"), 0);
    CHECK_INT(jint(r.json, "budget_remaining_cents"), 5000);
    resp_free(&r);
    call("GET", "/v1/budgets/usage", "u_free", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(jint(r.json, "reserved_cents"), 0);
    resp_free(&r);
    CHECK_INT(count_casts("u_free"), 1);
}

static void test_cast_metered_estimate(void)
{
    struct resp r;

    user_add("u_meter");
    /* Canonical inputs {"a":"x"} are 9 bytes: one started KiB -> 5 + 1. */
    cast("u_meter", "metered", "m1", "{\"inputs\": {\"a\": \"x\"}}", &r);
    CHECK_INT(r.status, 202);
    CHECK_INT(jint(r.json, "estimated_cost_cents"), 6);
    resp_free(&r);
}

static void test_cast_replay(void)
{
    struct resp a, b;
    char h[512], loc[512];

    user_add("u_replay");
    cast("u_replay", "thumbnail", "same", "{\"inputs\": {\"url\": \"u\", \"width\": 64}}", &a);
    CHECK_INT(a.status, 202);
    cast("u_replay", "thumbnail", "same", "{\"inputs\": {\"url\": \"u\", \"width\": 64}}", &b);
    CHECK_INT(b.status, 202);
    CHECK_MEM(spell_buf_str(&b.body), b.body.len, spell_buf_str(&a.body), a.body.len);
    CHECK_STR(header(&b, "Idempotent-Replayed", h, sizeof h), "true");
    CHECK_STR(header(&b, "Location", h, sizeof h), header(&a, "Location", loc, sizeof loc));
    resp_free(&b);
    /* Whitespace and member order make no other request. */
    cast("u_replay", "thumbnail", "same",
         "{ \"inputs\" :{\"width\":64,\n\"url\":\"u\"}  }", &b);
    CHECK_INT(b.status, 202);
    CHECK_MEM(spell_buf_str(&b.body), b.body.len, spell_buf_str(&a.body), a.body.len);
    CHECK_STR(header(&b, "Idempotent-Replayed", h, sizeof h), "true");
    resp_free(&b);
    CHECK_INT(count_casts("u_replay"), 1);
    /* The same key with another body is 422. */
    cast("u_replay", "thumbnail", "same", "{\"inputs\": {\"url\": \"u\", \"width\": 65}}", &b);
    CHECK_INT(b.status, 422);
    CHECK_STR(jstr(b.json, "error.code"), "IDEMPOTENCY_KEY_REUSED");
    resp_free(&b);
    /* ... and on another spell (the path is in the hash). */
    cast("u_replay", "free", "same", "{\"inputs\": {\"url\": \"u\", \"width\": 64}}", &b);
    CHECK_INT(b.status, 422);
    resp_free(&b);
    /* Keys are per user: another user's "same" is a new request. */
    user_add("u_replay2");
    cast("u_replay2", "thumbnail", "same", "{\"inputs\": {\"url\": \"u\", \"width\": 64}}", &b);
    CHECK_INT(b.status, 202);
    CHECK_STR(header(&b, "Idempotent-Replayed", h, sizeof h), "");
    CHECK(strcmp(jstr(b.json, "cast_id"), jstr(a.json, "cast_id")) != 0);
    resp_free(&b);
    resp_free(&a);
}

static void test_cast_in_flight(void)
{
    const char *body = "{\"inputs\":{\"url\":\"z\"}}";
    struct spell_buf b;
    struct store_idem idem;
    char hash[65];
    cJSON *j = NULL;
    struct resp r;

    user_add("u_flight");
    spell_buf_init(&b, 4096);
    spell_json_parse(body, strlen(body), NULL, &j, NULL, 0);
    spell_buf_addstr(&b, "POST\n/v1/spells/thumbnail:cast\n");
    spell_jcs_serialize(j, &b);
    spell_sha256_hex(spell_buf_str(&b), b.len, hash);
    CHECK_INT(store_idem_begin(W.store, "u_flight", "busy", hash, T0, &idem), SPELL_OK);
    CHECK_INT(idem.state, STORE_IDEM_NEW);
    store_idem_clear(&idem);
    cast("u_flight", "thumbnail", "busy", body, &r);
    CHECK_INT(r.status, 409);
    CHECK_STR(jstr(r.json, "error.code"), "IDEMPOTENCY_IN_PROGRESS");
    resp_free(&r);
    CHECK_INT(count_casts("u_flight"), 0);
    cJSON_Delete(j);
    spell_buf_free(&b);
}

static void test_cast_key_header(void)
{
    struct resp r;
    char longkey[300], h[400];
    const char *hdrs[2] = {h, NULL};

    user_add("u_key");
    cast("u_key", "thumbnail", NULL, "{\"inputs\":{\"url\":\"a\"}}", &r);
    CHECK_INT(r.status, 400);
    CHECK_STR(jstr(r.json, "error.code"), "IDEMPOTENCY_KEY_REQUIRED");
    resp_free(&r);
    memset(longkey, 'k', 256);
    longkey[256] = '\0';
    cast("u_key", "thumbnail", longkey, "{\"inputs\":{\"url\":\"a\"}}", &r);
    CHECK_INT(r.status, 400);
    CHECK_STR(jstr(r.json, "error.code"), "VALIDATION_ERROR");
    CHECK_STR(jstr(r.json, "error.details.field"), "Idempotency-Key");
    resp_free(&r);
    longkey[255] = '\0';
    cast("u_key", "thumbnail", longkey, "{\"inputs\":{\"url\":\"a\"}}", &r);
    CHECK_INT(r.status, 202);
    resp_free(&r);
    cast("u_key", "thumbnail", "caf\xc3\xa9", "{\"inputs\":{\"url\":\"a\"}}", &r);
    CHECK_INT(r.status, 400);
    CHECK_STR(jstr(r.json, "error.details.field"), "Idempotency-Key");
    resp_free(&r);
    snprintf(h, sizeof h, "X-Idempotency-Key: xk");
    call("POST", "/v1/spells/thumbnail:cast", "u_key", hdrs, "{\"inputs\":{\"url\":\"a\"}}", &r);
    CHECK_INT(r.status, 202);
    resp_free(&r);
    CHECK_INT(count_casts("u_key"), 2);
}

static void expect_invalid(const char *user, const char *key, const char *body,
                           const char *field)
{
    struct resp r;

    cast(user, "thumbnail", key, body, &r);
    CHECK_INT(r.status, 400);
    CHECK_STR(jstr(r.json, "error.code"), "VALIDATION_ERROR");
    CHECK_STR(jstr(r.json, "error.details.field"), field);
    CHECK(strcmp(jstr(r.json, "error.details.reason"), "(none)") != 0);
    resp_free(&r);
}

static void test_cast_body_errors(void)
{
    struct resp r;
    char h[64];

    user_add("u_body");
    expect_invalid("u_body", "b1", "not json", "body");
    expect_invalid("u_body", "b2", "[1,2]", "body");
    expect_invalid("u_body", "b3", "{\"inputs\":{\"url\":\"a\"},\"extra\":1}", "extra");
    expect_invalid("u_body", "b4", "{}", "inputs");
    expect_invalid("u_body", "b5", "{\"inputs\":[]}", "inputs");
    expect_invalid("u_body", "b6", "{\"inputs\":{\"url\":\"a\"},\"mode\":\"rocket\"}", "mode");
    expect_invalid("u_body", "b7", "{\"inputs\":{\"url\":\"a\"},\"mode\":\"wasm\"}", "mode");
    expect_invalid("u_body", "b8", "{\"inputs\":{\"url\":\"a\"},\"budget_cap_cents\":-1}",
                   "budget_cap_cents");
    expect_invalid("u_body", "b9", "{\"inputs\":{\"url\":\"a\"},\"budget_cap_cents\":1.5}",
                   "budget_cap_cents");
    expect_invalid("u_body", "b10", "{\"inputs\":{}}", "inputs.url");
    expect_invalid("u_body", "b11", "{\"inputs\":{\"url\":\"a\",\"width\":15}}", "inputs.width");
    expect_invalid("u_body", "b12", "{\"inputs\":{\"url\":5}}", "inputs.url");
    expect_invalid("u_body", "b13", "{\"inputs\":{\"url\":\"a\",\"evil\":true}}", "inputs.evil");
    expect_invalid("u_body", "b14", "{\"inputs\":{\"url\":\"a\"},\"inputs\":{\"url\":\"b\"}}",
                   "body");
    expect_invalid("u_body", "b15", "{\"inputs\":{\"url\":\"\\u0000\"}}", "body");
    expect_invalid("u_body", "b16", "{\"inputs\":{\"url\":\"\xff\"}}", "body");
    /* A stored 400 (after the record began) replays. */
    cast("u_body", "thumbnail", "b11", "{\"inputs\":{\"url\":\"a\",\"width\":15}}", &r);
    CHECK_INT(r.status, 400);
    CHECK_STR(header(&r, "Idempotent-Replayed", h, sizeof h), "true");
    resp_free(&r);
    /* A body that was not JSON left no record: the key is still free. */
    cast("u_body", "thumbnail", "b1", "{\"inputs\":{\"url\":\"a\"}}", &r);
    CHECK_INT(r.status, 202);
    resp_free(&r);
    CHECK_INT(count_casts("u_body"), 1);
}

static void test_cast_spell_errors(void)
{
    struct resp r;
    char h[64];

    user_add("u_spell");
    cast("u_spell", "nope", "s1", "{\"inputs\":{}}", &r);
    CHECK_INT(r.status, 404);
    CHECK_STR(jstr(r.json, "error.code"), "SPELL_NOT_FOUND");
    resp_free(&r);
    cast("u_spell", "Bad%20Key", "s2", "{\"inputs\":{}}", &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    cast("u_spell", "draft", "s3", "{\"inputs\":{}}", &r);
    CHECK_INT(r.status, 404);
    CHECK_STR(jstr(r.json, "error.code"), "SPELL_NOT_FOUND");
    resp_free(&r);
    /* The 404 was abandoned: once the spell is published the same key runs. */
    spell_add("draft2", "Draft2", "draft", "service", "flat", 1, NULL);
    cast("u_spell", "draft2", "s4", "{\"inputs\":{}}", &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    spell_add("draft2", "Draft2", "published", "service", "flat", 1, NULL);
    cast("u_spell", "draft2", "s4", "{\"inputs\":{}}", &r);
    CHECK_INT(r.status, 202);
    CHECK_STR(header(&r, "Idempotent-Replayed", h, sizeof h), "");
    resp_free(&r);
    /* clone: 402 with the purchase URL. */
    cast("u_spell", "cloned", "s5", "{\"inputs\":{}}", &r);
    CHECK_INT(r.status, 402);
    CHECK_STR(jstr(r.json, "error.code"), "PURCHASE_REQUIRED");
    CHECK_STR(jstr(r.json, "error.details.purchase_url"),
              "https://spell.example/spells/cloned/og");
    resp_free(&r);
    CHECK_INT(count_casts("u_spell"), 1);
}

/* spell_budget_rejections_total{code="BUDGET_EXCEEDED",reason=...}. */
static double rejections(const char *reason)
{
    const char *values[2] = {"BUDGET_EXCEEDED", reason};

    return metrics_value(W.srv.budget_rejections, values);
}

static void test_budget_metric_registered(void)
{
    struct spell_buf text;

    spell_buf_init(&text, 1024 * 1024);
    CHECK_INT(metrics_render(W.srv.metrics, &text), SPELL_OK);
    CHECK(strstr(spell_buf_str(&text), "# TYPE spell_budget_rejections_total counter\n") != NULL);
    CHECK(strstr(spell_buf_str(&text), "spell_budget_rejections_total{code=\"BUDGET_EXCEEDED\","
                                       "reason=\"hard_limit\"} 0\n") != NULL);
    CHECK(strstr(spell_buf_str(&text), "spell_budget_rejections_total{code=\"BUDGET_EXCEEDED\","
                                       "reason=\"budget_cap\"} 0\n") != NULL);
    spell_buf_free(&text);
    /* A second registration is refused (the name is taken) and a server
     * without a registry has nothing to register. */
    {
        struct server bare;
        memset(&bare, 0, sizeof bare);
        CHECK_INT(api_metrics_register(&bare), SPELL_OK);
        CHECK(bare.budget_rejections == NULL);
        bare.metrics = W.srv.metrics;
        CHECK_INT(api_metrics_register(&bare), SPELL_EINVAL);
        CHECK(bare.budget_rejections == NULL);
    }
    CHECK_INT(api_metrics_register(NULL), SPELL_EINVAL);
}

static void test_cast_budget_cap(void)
{
    struct resp r;
    double cap0 = rejections("budget_cap"), hard0 = rejections("hard_limit");
    char h[16];

    user_add("u_cap");
    cast("u_cap", "thumbnail", "c1", "{\"inputs\":{\"url\":\"a\"},\"budget_cap_cents\":99}", &r);
    CHECK_INT(r.status, 402);
    CHECK(rejections("budget_cap") == cap0 + 1);
    CHECK(rejections("hard_limit") == hard0);
    CHECK_STR(jstr(r.json, "error.code"), "BUDGET_EXCEEDED");
    CHECK_INT(jint(r.json, "error.details.budget_cap_cents"), 99);
    CHECK_INT(jint(r.json, "error.details.estimated_cost_cents"), 100);
    resp_free(&r);
    /* A replay of the stored refusal is not a new rejection. */
    cast("u_cap", "thumbnail", "c1", "{\"inputs\":{\"url\":\"a\"},\"budget_cap_cents\":99}", &r);
    CHECK_INT(r.status, 402);
    CHECK_STR(header(&r, "Idempotent-Replayed", h, sizeof h), "true");
    CHECK(rejections("budget_cap") == cap0 + 1);
    resp_free(&r);
    cast("u_cap", "thumbnail", "c2", "{\"inputs\":{\"url\":\"a\"},\"budget_cap_cents\":100}", &r);
    CHECK_INT(r.status, 202);
    resp_free(&r);
}

static void test_cast_budget_exceeded(void)
{
    struct resp r;
    char key[16], h[16];
    double hard0;

    user_add("u_budget");
    CHECK_INT(store_budget_set(W.store, "u_budget", "2026-11", 1000, -1, T0), SPELL_OK);
    spell_add("pricey", "Pricey", "published", "service", "flat", 300, NULL);
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "p%d", i);
        cast("u_budget", "pricey", key, "{\"inputs\":{}}", &r);
        CHECK_INT(r.status, 202);
        CHECK_INT(jint(r.json, "budget_remaining_cents"), 1000 - 300 * (i + 1));
        resp_free(&r);
    }
    hard0 = rejections("hard_limit");
    cast("u_budget", "pricey", "p3", "{\"inputs\":{}}", &r);
    CHECK_INT(r.status, 402);
    CHECK(rejections("hard_limit") == hard0 + 1);
    CHECK_STR(jstr(r.json, "error.code"), "BUDGET_EXCEEDED");
    CHECK_INT(jint(r.json, "error.details.hard_limit_cents"), 1000);
    CHECK_INT(jint(r.json, "error.details.spent_cents"), 0);
    CHECK_INT(jint(r.json, "error.details.reserved_cents"), 900);
    CHECK_INT(jint(r.json, "error.details.estimated_cost_cents"), 300);
    CHECK_INT(jint(r.json, "error.details.remaining_cents"), 100);
    resp_free(&r);
    /* The refusal is stored: the same key replays it. */
    cast("u_budget", "pricey", "p3", "{\"inputs\":{}}", &r);
    CHECK_INT(r.status, 402);
    CHECK_STR(header(&r, "Idempotent-Replayed", h, sizeof h), "true");
    CHECK(rejections("hard_limit") == hard0 + 1);
    resp_free(&r);
    CHECK_INT(count_casts("u_budget"), 3);
}

static void test_cast_rate_limited(void)
{
    struct resp r;
    char h[16];

    user_add("u_rl");
    atomic_store(&W.deny_casts, 1);
    cast("u_rl", "thumbnail", "r1", "{\"inputs\":{\"url\":\"a\"}}", &r);
    atomic_store(&W.deny_casts, 0);
    CHECK_INT(r.status, 429);
    CHECK_STR(header(&r, "Retry-After", h, sizeof h), "60");
    resp_free(&r);
    /* The refusal left no idempotency record. */
    cast("u_rl", "thumbnail", "r1", "{\"inputs\":{\"url\":\"a\"}}", &r);
    CHECK_INT(r.status, 202);
    resp_free(&r);
}

static void test_cast_submit_fails(void)
{
    struct resp r, g;
    char path[128];

    user_add("u_sub");
    atomic_store(&W.submit_fails, 1);
    cast("u_sub", "thumbnail", "x1", "{\"inputs\":{\"url\":\"a\"}}", &r);
    atomic_store(&W.submit_fails, 0);
    CHECK_INT(r.status, 202);
    snprintf(path, sizeof path, "/v1/casts/%s", jstr(r.json, "cast_id"));
    call("GET", path, "u_sub", NULL, NULL, &g);
    CHECK_INT(g.status, 200);
    CHECK_STR(jstr(g.json, "status"), "failed");
    CHECK_STR(jstr(g.json, "error.code"), "INTERNAL");
    resp_free(&g);
    resp_free(&r);
    call("GET", "/v1/budgets/usage", "u_sub", NULL, NULL, &g);
    CHECK_INT(jint(g.json, "reserved_cents"), 0);
    resp_free(&g);
}

/* ---- concurrency ---- */

struct racer {
    const char *user;
    const char *spell;
    char key[32];
    long status;
    int replayed;
};

static void *race(void *ud)
{
    struct racer *rc = ud;
    struct resp r;
    char h[16];

    cast(rc->user, rc->spell, rc->key, "{\"inputs\":{}}", &r);
    rc->status = r.status;
    rc->replayed = strcmp(header(&r, "Idempotent-Replayed", h, sizeof h), "true") == 0;
    resp_free(&r);
    return NULL;
}

static void test_concurrent_one_key(void)
{
    struct racer rs[32];
    pthread_t t[32];
    int fresh = 0, ok = 1;

    user_add("u_race1");
    for (int i = 0; i < 32; i++) {
        rs[i] = (struct racer){"u_race1", "free", "one", 0, 0};
        snprintf(rs[i].key, sizeof rs[i].key, "one");
        pthread_create(&t[i], NULL, race, &rs[i]);
    }
    for (int i = 0; i < 32; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 32; i++) {
        if (rs[i].status == 202 && !rs[i].replayed)
            fresh++;
        else if (!(rs[i].status == 409 || (rs[i].status == 202 && rs[i].replayed)))
            ok = 0;
    }
    CHECK_INT(fresh, 1);
    CHECK(ok);
    CHECK_INT(count_casts("u_race1"), 1);
}

/* A stored error races the same way: one request stores the 400, the
 * others are answered from its record; nothing is cast. */
static void test_concurrent_one_key_invalid(void)
{
    struct racer rs[16];
    pthread_t t[16];
    int fresh = 0, ok = 1;

    user_add("u_race3");
    for (int i = 0; i < 16; i++) {
        rs[i] = (struct racer){"u_race3", "thumbnail", "", 0, 0};
        snprintf(rs[i].key, sizeof rs[i].key, "bad-one");
        pthread_create(&t[i], NULL, race, &rs[i]);
    }
    for (int i = 0; i < 16; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 16; i++) {
        if (rs[i].status != 400)
            ok = 0;
        else if (!rs[i].replayed)
            fresh++;
    }
    CHECK(ok);
    CHECK_INT(fresh, 1);
    CHECK_INT(count_casts("u_race3"), 0);
}

static void test_concurrent_budget(void)
{
    struct racer rs[64];
    pthread_t t[64];
    int accepted = 0, refused = 0;
    struct store_usage *u = calloc(1, sizeof *u);

    user_add("u_race2");
    CHECK_INT(store_budget_set(W.store, "u_race2", "2026-11", 1000, -1, T0), SPELL_OK);
    spell_add("p150", "P150", "published", "service", "flat", 150, NULL);
    for (int i = 0; i < 64; i++) {
        rs[i] = (struct racer){"u_race2", "p150", "", 0, 0};
        snprintf(rs[i].key, sizeof rs[i].key, "race-%d", i);
        pthread_create(&t[i], NULL, race, &rs[i]);
    }
    for (int i = 0; i < 64; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 64; i++) {
        accepted += rs[i].status == 202;
        refused += rs[i].status == 402;
    }
    CHECK_INT(accepted, 1000 / 150);
    CHECK_INT(refused, 64 - 1000 / 150);
    CHECK_INT(store_usage_get(W.store, "u_race2", "2026-11", u), SPELL_OK);
    CHECK_INT(u->reserved_cents, 900);
    CHECK(u->spent_cents + u->reserved_cents <= 1000);
    free(u);
}

/* ---- list, get, cancel ---- */

static void test_list_paging(void)
{
    char key[16], path[256], ids[25][STORE_ID_SIZE], seen[25] = {0};
    const cJSON *c;
    struct resp r;
    int total = 0, pages = 0;
    char cursor[STORE_CURSOR_SIZE * 3] = "";

    user_add("u_list");
    for (int i = 0; i < 25; i++) {
        atomic_store(&W.now, T0 + 1000 * (i + 1));
        snprintf(key, sizeof key, "l%d", i);
        cast("u_list", "free", key, "{\"inputs\":{}}", &r);
        CHECK_INT(r.status, 202);
        snprintf(ids[i], sizeof ids[i], "%s", jstr(r.json, "cast_id"));
        resp_free(&r);
    }
    atomic_store(&W.now, T0);
    for (;;) {
        char *enc;
        CURL *e = curl_easy_init();

        enc = curl_easy_escape(e, cursor, 0);
        snprintf(path, sizeof path, "/v1/casts?limit=7%s%s", cursor[0] ? "&cursor=" : "",
                 cursor[0] ? enc : "");
        curl_free(enc);
        curl_easy_cleanup(e);
        call("GET", path, "u_list", NULL, NULL, &r);
        CHECK_INT(r.status, 200);
        if (r.status != 200 || ++pages > 10) {
            resp_free(&r);
            break;
        }
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r.json, "casts")) {
            for (int i = 0; i < 25; i++)
                if (!strcmp(jstr(c, "id"), ids[i])) {
                    /* newest first */
                    CHECK_INT(i, 24 - total);
                    seen[i]++;
                }
            total++;
        }
        if (!strcmp(jstr(r.json, "next_cursor"), "(null)")) {
            resp_free(&r);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", jstr(r.json, "next_cursor"));
        resp_free(&r);
    }
    CHECK_INT(total, 25);
    CHECK_INT(pages, 4);
    for (int i = 0; i < 25; i++)
        CHECK_INT(seen[i], 1);
    call("GET", "/v1/casts", "u_list", NULL, NULL, &r);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "casts")), 20);
    resp_free(&r);
    const char *bad[] = {"/v1/casts?limit=0", "/v1/casts?limit=101", "/v1/casts?limit=abc",
                         "/v1/casts?limit=-1", "/v1/casts?limit=", "/v1/casts?cursor=zzz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        call("GET", bad[i], "u_list", NULL, NULL, &r);
        CHECK_INT(r.status, 400);
        CHECK_STR(jstr(r.json, "error.code"), "VALIDATION_ERROR");
        resp_free(&r);
    }
    call("GET", "/v1/casts", NULL, NULL, NULL, &r);
    CHECK_INT(r.status, 401);
    resp_free(&r);
}

static void test_get_cast(void)
{
    struct resp r, g;
    char path[128];

    user_add("u_get");
    user_add("u_get2");
    cast("u_get", "thumbnail", "g1", "{\"inputs\":{\"url\":\"a\"}}", &r);
    snprintf(path, sizeof path, "/v1/casts/%s", jstr(r.json, "cast_id"));
    call("GET", path, "u_get", NULL, NULL, &g);
    CHECK_INT(g.status, 200);
    CHECK_STR(jstr(g.json, "id"), jstr(r.json, "cast_id"));
    CHECK_STR(jstr(g.json, "spell_key"), "thumbnail");
    CHECK_STR(jstr(g.json, "status"), "queued");
    CHECK_STR(jstr(g.json, "mode"), "service");
    CHECK_INT(jint(g.json, "estimated_cost_cents"), 100);
    CHECK_STR(jstr(g.json, "cost_cents"), "(null)");
    CHECK_STR(jstr(g.json, "created_at"), "2026-11-22T10:00:00.000Z");
    CHECK_INT((long)strlen(jstr(g.json, "input_hash")), 64);
    resp_free(&g);
    call("GET", path, "u_get2", NULL, NULL, &g);
    CHECK_INT(g.status, 404);
    CHECK_STR(jstr(g.json, "error.code"), "CAST_NOT_FOUND");
    resp_free(&g);
    call("GET", "/v1/casts/cst_nope", "u_get", NULL, NULL, &g);
    CHECK_INT(g.status, 404);
    CHECK_STR(jstr(g.json, "error.code"), "CAST_NOT_FOUND");
    resp_free(&g);
    call("GET", "/v1/casts/cst_01J00000000000000000000000", "u_get", NULL, NULL, &g);
    CHECK_INT(g.status, 404);
    resp_free(&g);
    resp_free(&r);
}

static void test_cancel(void)
{
    struct resp r, g;
    char path[128];

    user_add("u_cancel");
    user_add("u_cancel2");
    cast("u_cancel", "thumbnail", "c1", "{\"inputs\":{\"url\":\"a\"}}", &r);
    snprintf(path, sizeof path, "/v1/casts/%s:cancel", jstr(r.json, "cast_id"));
    call("POST", path, "u_cancel2", NULL, NULL, &g);
    CHECK_INT(g.status, 404);
    resp_free(&g);
    call("POST", path, "u_cancel", NULL, NULL, &g);
    CHECK_INT(g.status, 202);
    CHECK_STR(jstr(g.json, "status"), "canceled");
    CHECK_STR(jstr(g.json, "error.code"), "CANCELED");
    resp_free(&g);
    call("POST", path, "u_cancel", NULL, NULL, &g);
    CHECK_INT(g.status, 200);
    CHECK_STR(jstr(g.json, "status"), "canceled");
    resp_free(&g);
    call("POST", "/v1/casts/bogus:cancel", "u_cancel", NULL, NULL, &g);
    CHECK_INT(g.status, 404);
    resp_free(&g);
    call("GET", "/v1/budgets/usage", "u_cancel", NULL, NULL, &g);
    CHECK_INT(jint(g.json, "reserved_cents"), 0);
    resp_free(&g);
    resp_free(&r);
}

/* ---- SSE ---- */

/* The "id:" values of an SSE body, in order, into ids; returns count. */
static int sse_ids(const struct resp *r, int64_t *ids, int max, int *terminal)
{
    const char *p = spell_buf_str(&r->body);
    int n = 0;

    *terminal = 0;
    while (p && *p) {
        if (!strncmp(p, "id: ", 4) && n < max)
            ids[n++] = strtoll(p + 4, NULL, 10);
        if (!strncmp(p, "event: cast.succeeded", 21))
            *terminal = 1;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

static void test_sse(void)
{
    struct resp r, s;
    struct store_settle_result sr;
    char path[160], id[STORE_ID_SIZE], h[128];
    const char *hdrs[2] = {h, NULL};
    int64_t ids[16];
    int n, term;

    user_add("u_sse");
    user_add("u_sse2");
    cast("u_sse", "thumbnail", "e1", "{\"inputs\":{\"url\":\"a\"}}", &r);
    snprintf(id, sizeof id, "%s", jstr(r.json, "cast_id"));
    resp_free(&r);
    CHECK_INT(store_cast_start(W.store, id, NULL, T0 + 10), SPELL_OK);
    CHECK_INT(store_cast_progress(W.store, id, 50, "half", T0 + 20), SPELL_OK);
    CHECK_INT(store_cast_settle(W.store, id, 80, "https://a/b", T0 + 30, &sr), SPELL_OK);
    snprintf(path, sizeof path, "/v1/casts/%s/events", id);
    call("GET", path, "u_sse", NULL, NULL, &s);
    CHECK_INT(s.status, 200);
    CHECK_STR(header(&s, "Content-Type", h, sizeof h), "text/event-stream");
    n = sse_ids(&s, ids, 16, &term);
    CHECK_INT(n, 4);
    CHECK_INT(ids[0], 1);
    CHECK_INT(ids[3], 4);
    CHECK(term);
    CHECK(strstr(spell_buf_str(&s.body), "event: cast.queued") != NULL);
    CHECK(strstr(spell_buf_str(&s.body), "\"final\":true") != NULL);
    resp_free(&s);
    snprintf(h, sizeof h, "Last-Event-ID: 2");
    call("GET", path, "u_sse", hdrs, NULL, &s);
    CHECK_INT(s.status, 200);
    n = sse_ids(&s, ids, 16, &term);
    CHECK_INT(n, 2);
    CHECK_INT(ids[0], 3);
    CHECK_INT(ids[1], 4);
    resp_free(&s);
    snprintf(path, sizeof path, "/v1/casts/%s/events?last_event_id=3", id);
    call("GET", path, "u_sse", NULL, NULL, &s);
    n = sse_ids(&s, ids, 16, &term);
    CHECK_INT(n, 1);
    CHECK_INT(ids[0], 4);
    resp_free(&s);
    snprintf(path, sizeof path, "/v1/casts/%s/events", id);
    snprintf(h, sizeof h, "Last-Event-ID: 4");
    call("GET", path, "u_sse", hdrs, NULL, &s);
    CHECK_INT(s.status, 204);
    CHECK_INT(s.body.len, 0);
    resp_free(&s);
    snprintf(h, sizeof h, "Last-Event-ID: 99");
    call("GET", path, "u_sse", hdrs, NULL, &s);
    CHECK_INT(s.status, 204);
    resp_free(&s);
    snprintf(h, sizeof h, "Last-Event-ID: 1x");
    call("GET", path, "u_sse", hdrs, NULL, &s);
    CHECK_INT(s.status, 400);
    CHECK_STR(jstr(s.json, "error.details.field"), "Last-Event-ID");
    resp_free(&s);
    snprintf(h, sizeof h, "Last-Event-ID: 1234567890123456789");
    call("GET", path, "u_sse", hdrs, NULL, &s);
    CHECK_INT(s.status, 400);
    resp_free(&s);
    call("GET", path, "u_sse2", NULL, NULL, &s);
    CHECK_INT(s.status, 404);
    resp_free(&s);
}

struct live {
    char path[160];
    struct resp r;
};

static void *live_reader(void *ud)
{
    struct live *l = ud;

    call("GET", l->path, "u_live", NULL, NULL, &l->r);
    return NULL;
}

static void test_sse_live(void)
{
    struct resp r;
    struct live l;
    struct store_settle_result sr;
    char id[STORE_ID_SIZE];
    pthread_t t;
    int64_t ids[16];
    int n, term;

    user_add("u_live");
    cast("u_live", "thumbnail", "lv", "{\"inputs\":{\"url\":\"a\"}}", &r);
    snprintf(id, sizeof id, "%s", jstr(r.json, "cast_id"));
    resp_free(&r);
    memset(&l, 0, sizeof l);
    snprintf(l.path, sizeof l.path, "/v1/casts/%s/events", id);
    pthread_create(&t, NULL, live_reader, &l);
    /* Wait (generously) until the stream is subscribed. */
    for (int i = 0; i < 1000 && sse_hub_count(W.hub) == 0; i++)
        usleep(10000);
    CHECK_INT(store_cast_start(W.store, id, NULL, T0 + 10), SPELL_OK);
    lifecycle_publish_pending(&W.srv, id);
    CHECK_INT(store_cast_settle(W.store, id, 100, NULL, T0 + 30, &sr), SPELL_OK);
    lifecycle_publish_pending(&W.srv, id);
    pthread_join(t, NULL);
    CHECK_INT(l.r.status, 200);
    n = sse_ids(&l.r, ids, 16, &term);
    CHECK_INT(n, 3);
    CHECK_INT(ids[0], 1);
    CHECK_INT(ids[2], 3);
    CHECK(term);
    resp_free(&l.r);
}

/* ---- budgets and usage ---- */

static void budget_call(const char *method, const char *body, long want, struct resp *r)
{
    call(method, "/v1/budgets", "u_bud", NULL, body, r);
    CHECK_INT(r->status, want);
}

static void test_budgets(void)
{
    struct resp r;

    user_add("u_bud");
    budget_call("GET", NULL, 200, &r);
    CHECK_STR(jstr(r.json, "period"), "2026-11");
    CHECK_INT(jint(r.json, "hard_limit_cents"), 5000);
    CHECK_STR(jstr(r.json, "soft_limit_cents"), "(null)");
    resp_free(&r);
    budget_call("POST", "{\"hard_limit_cents\": 999}", 400, &r);
    CHECK_STR(jstr(r.json, "error.details.field"), "hard_limit_cents");
    resp_free(&r);
    budget_call("POST", "{\"hard_limit_cents\": 50001}", 400, &r);
    CHECK_STR(jstr(r.json, "error.details.field"), "hard_limit_cents");
    resp_free(&r);
    budget_call("POST", "{\"hard_limit_cents\": 2000, \"soft_limit_cents\": 2001}", 400, &r);
    CHECK_STR(jstr(r.json, "error.details.field"), "soft_limit_cents");
    resp_free(&r);
    budget_call("POST", "{\"soft_limit_cents\": 100}", 400, &r);
    CHECK_STR(jstr(r.json, "error.details.field"), "hard_limit_cents");
    resp_free(&r);
    budget_call("POST", "{\"hard_limit_cents\": \"2000\"}", 400, &r);
    resp_free(&r);
    budget_call("POST", "{\"hard_limit_cents\": 2000, \"x\": 1}", 400, &r);
    CHECK_STR(jstr(r.json, "error.details.field"), "x");
    resp_free(&r);
    budget_call("POST", "nope", 400, &r);
    resp_free(&r);
    budget_call("POST", NULL, 400, &r);
    resp_free(&r);
    budget_call("POST", "{\"hard_limit_cents\": 1000}", 200, &r);
    CHECK_INT(jint(r.json, "hard_limit_cents"), 1000);
    resp_free(&r);
    budget_call("POST", "{\"hard_limit_cents\": 50000, \"soft_limit_cents\": 40000}", 200, &r);
    CHECK_INT(jint(r.json, "hard_limit_cents"), 50000);
    CHECK_INT(jint(r.json, "soft_limit_cents"), 40000);
    resp_free(&r);
    /* PUT keeps what it leaves out. */
    budget_call("PUT", "{\"hard_limit_cents\": 45000}", 200, &r);
    CHECK_INT(jint(r.json, "hard_limit_cents"), 45000);
    CHECK_INT(jint(r.json, "soft_limit_cents"), 40000);
    resp_free(&r);
    budget_call("PUT", "{\"hard_limit_cents\": 30000}", 400, &r);
    CHECK_STR(jstr(r.json, "error.details.field"), "soft_limit_cents");
    resp_free(&r);
    budget_call("PUT", "{\"soft_limit_cents\": null}", 200, &r);
    CHECK_INT(jint(r.json, "hard_limit_cents"), 45000);
    CHECK_STR(jstr(r.json, "soft_limit_cents"), "(null)");
    resp_free(&r);
    budget_call("PUT", "{\"soft_limit_cents\": 500}", 200, &r);
    CHECK_INT(jint(r.json, "soft_limit_cents"), 500);
    resp_free(&r);
    /* POST replaces: no soft limit given means none. */
    budget_call("POST", "{\"hard_limit_cents\": 2000}", 200, &r);
    CHECK_STR(jstr(r.json, "soft_limit_cents"), "(null)");
    resp_free(&r);
    budget_call("GET", NULL, 200, &r);
    CHECK_INT(jint(r.json, "hard_limit_cents"), 2000);
    resp_free(&r);
    budget_call("DELETE", NULL, 204, &r);
    resp_free(&r);
    budget_call("GET", NULL, 200, &r);
    CHECK_INT(jint(r.json, "hard_limit_cents"), 5000);
    resp_free(&r);
}

static void test_usage(void)
{
    struct resp r;
    struct store_settle_result sr;
    char a[STORE_ID_SIZE], b[STORE_ID_SIZE];
    const cJSON *arr;

    user_add("u_use");
    cast("u_use", "thumbnail", "a", "{\"inputs\":{\"url\":\"a\"}}", &r);
    snprintf(a, sizeof a, "%s", jstr(r.json, "cast_id"));
    resp_free(&r);
    cast("u_use", "thumbnail", "b", "{\"inputs\":{\"url\":\"b\"}}", &r);
    snprintf(b, sizeof b, "%s", jstr(r.json, "cast_id"));
    resp_free(&r);
    cast("u_use", "free", "c", "{\"inputs\":{}}", &r);
    resp_free(&r);
    CHECK_INT(store_cast_settle(W.store, a, 80, NULL, T0 + 5000, &sr), SPELL_OK);
    call("GET", "/v1/budgets/usage", "u_use", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(r.json, "period"), "2026-11");
    CHECK_INT(jint(r.json, "spent_cents"), 80);
    CHECK_INT(jint(r.json, "reserved_cents"), 100);
    CHECK_INT(jint(r.json, "hard_limit_cents"), 5000);
    CHECK_STR(jstr(r.json, "soft_limit_cents"), "(null)");
    CHECK_INT(jint(r.json, "remaining_cents"), 5000 - 80 - 100);
    arr = cJSON_GetObjectItemCaseSensitive(r.json, "daily");
    CHECK_INT(cJSON_GetArraySize(arr), 1);
    CHECK_STR(jstr(cJSON_GetArrayItem(arr, 0), "date"), "2026-11-22");
    CHECK_INT(jint(cJSON_GetArrayItem(arr, 0), "spent_cents"), 80);
    arr = cJSON_GetObjectItemCaseSensitive(r.json, "by_spell");
    CHECK(cJSON_GetArraySize(arr) >= 1);
    CHECK_STR(jstr(cJSON_GetArrayItem(arr, 0), "spell_key"), "thumbnail");
    CHECK_INT(jint(cJSON_GetArrayItem(arr, 0), "spent_cents"), 80);
    CHECK(jint(r.json, "calls") >= 1);
    resp_free(&r);
    call("GET", "/v1/budgets/usage?period=2026-10", "u_use", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(r.json, "period"), "2026-10");
    CHECK_INT(jint(r.json, "spent_cents"), 0);
    CHECK_INT(jint(r.json, "calls"), 0);
    resp_free(&r);
    const char *bad[] = {"2026-13", "2026-1", "2026-001", "26-11", "2026/11", "", "2026-11x",
                         "abcd-ef"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[64];

        snprintf(path, sizeof path, "/v1/budgets/usage?period=%s", bad[i]);
        call("GET", path, "u_use", NULL, NULL, &r);
        CHECK_INT(r.status, 400);
        CHECK_STR(jstr(r.json, "error.details.field"), "period");
        resp_free(&r);
    }
}

/* ---- spells ---- */

static void test_spells_catalog(void)
{
    struct resp r;
    const cJSON *s;
    int found = 0, drafts = 0;

    call("GET", "/v1/spells", "u_happy", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(r.json, "spells")) {
        if (!strcmp(jstr(s, "key"), "thumbnail")) {
            found = 1;
            CHECK_STR(jstr(s, "pricing_model"), "flat");
            CHECK_INT(jint(s, "pricing.flat_cents"), 100);
            CHECK_STR(jstr(s, "inputs_schema.type"), "object");
            CHECK(cJSON_GetObjectItemCaseSensitive(s, "execution") == NULL);
            CHECK(jint(s, "avg_cost_cents") >= 0 && jint(s, "avg_duration_ms") >= 0);
        }
        if (!strcmp(jstr(s, "key"), "draft"))
            drafts++;
    }
    CHECK(found);
    CHECK_INT(drafts, 0);
    resp_free(&r);
    call("GET", "/v1/spells/metered", "u_happy", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(jint(r.json, "pricing.base_cents"), 5);
    CHECK_INT(jint(r.json, "pricing.per_kb_cents"), 1);
    CHECK(cJSON_GetObjectItemCaseSensitive(r.json, "execution") == NULL);
    resp_free(&r);
    call("GET", "/v1/spells/draft", "u_happy", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    CHECK_STR(jstr(r.json, "error.code"), "SPELL_NOT_FOUND");
    resp_free(&r);
    call("GET", "/v1/spells/unknown", "u_happy", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    call("GET", "/v1/spells", NULL, NULL, NULL, &r);
    CHECK_INT(r.status, 401);
    resp_free(&r);
}

static void test_spells_public(void)
{
    struct resp r;
    char h[128];
    int before = atomic_load(&W.ip_checks);
    const char *page;

    spell_add("evil", "<script>alert(\"x\")</script> & 'q'", "published", "service", "free", 0,
              NULL);
    call("GET", "/v1/spells/evil/meta", NULL, NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(r.json, "name"), "<script>alert(\"x\")</script> & 'q'");
    CHECK_STR(jstr(r.json, "og.url"), "https://spell.example/spells/evil/og");
    CHECK_STR(jstr(r.json, "og.type"), "website");
    CHECK_STR(jstr(r.json, "version"), "1.0.0");
    resp_free(&r);
    call("GET", "/spells/evil/og", NULL, NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(header(&r, "Content-Type", h, sizeof h), "text/html; charset=utf-8");
    page = spell_buf_str(&r.body);
    CHECK(strstr(page, "<script>") == NULL);
    CHECK(strstr(page, "<meta property=\"og:title\" content=\"&lt;script&gt;alert(&quot;x&quot;)"
                       "&lt;/script&gt; &amp; &#39;q&#39;\">") != NULL);
    CHECK(strstr(page, "<meta property=\"og:description\" content=\"Summary of evil\">") != NULL);
    CHECK(strstr(page, "<meta property=\"og:type\" content=\"website\">") != NULL);
    CHECK(strstr(page, "<meta property=\"og:url\" content=\"https://spell.example/spells/evil/og\">")
          != NULL);
    CHECK(strstr(page, "<link rel=\"canonical\" href=\"https://spell.example/spells/evil/og\">") !=
          NULL);
    resp_free(&r);
    call("GET", "/spells/draft/og", NULL, NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    call("GET", "/v1/spells/nope/meta", NULL, NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_free(&r);
    CHECK_INT(atomic_load(&W.ip_checks) - before, 4);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_import(void)
{
    char dir[128], path[160], err[256], want[512];
    struct store_spell sp;
    int n = -1;

    snprintf(dir, sizeof dir, "%s/manifests", W.dir);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/tool.sh", dir);
    write_file(path, "#!/bin/sh\n");
    snprintf(path, sizeof path, "%s/ok.json", dir);
    write_file(path,
               "[{\"key\": \"imp-a\", \"name\": \"A\", \"version\": \"1\", \"status\": "
               "\"published\", \"execution_mode\": \"service\", \"pricing_model\": \"flat\", "
               "\"pricing\": {\"flat_cents\": 7}, \"inputs_schema\": {\"type\": \"object\", "
               "\"properties\": {\"n\": {\"type\": \"integer\"}}}, \"execution\": {\"command\": "
               "[\"./bin/run\", \"-v\", \"tool.sh\", \"x/y\"], \"timeout_s\": 30}},"
               " {\"key\": \"imp-b\", \"name\": \"B\", \"version\": \"2\", \"status\": \"draft\", "
               "\"execution_mode\": \"service\", \"pricing_model\": \"free\", \"pricing\": {}, "
               "\"execution\": {\"command\": [\"python3\", \"sub/tool.py\"]}}]");
    CHECK_INT(api_spells_import_file(&W.srv, path, err, sizeof err, &n), SPELL_OK);
    CHECK_INT(n, 2);
    memset(&sp, 0, sizeof sp);
    CHECK_INT(store_spell_get(W.store, "imp-a", &sp), SPELL_OK);
    CHECK_INT(sp.flat_cents, 7);
    snprintf(want, sizeof want, "\"command\":[\"%s/bin/run\",\"-v\",\"%s/tool.sh\",\"x/y\"]", dir,
             dir);
    CHECK(sp.execution && strstr(sp.execution, want) != NULL);
    store_spell_clear(&sp);
    CHECK_INT(store_spell_get(W.store, "imp-b", &sp), SPELL_OK);
    CHECK_STR(sp.status, "draft");
    CHECK(sp.execution && strstr(sp.execution, "[\"python3\",\"sub/tool.py\"]") != NULL);
    store_spell_clear(&sp);

    /* One object whose program is a bare name of a file in the folder. */
    snprintf(path, sizeof path, "%s/one.json", dir);
    write_file(path, "{\"key\": \"imp-c\", \"name\": \"C\", \"version\": \"1\", \"status\": "
                     "\"published\", \"execution_mode\": \"service\", \"pricing_model\": "
                     "\"free\", \"pricing\": {}, \"execution\": {\"command\": [\"tool.sh\", "
                     "\"../manifests/tool.sh\"]}}");
    CHECK_INT(api_spells_import_file(&W.srv, path, err, sizeof err, &n), SPELL_OK);
    CHECK_INT(n, 1);
    CHECK_INT(store_spell_get(W.store, "imp-c", &sp), SPELL_OK);
    snprintf(want, sizeof want, "[\"%s/tool.sh\",\"%s/../manifests/tool.sh\"]", dir, dir);
    CHECK(sp.execution && strstr(sp.execution, want) != NULL);
    store_spell_clear(&sp);

    struct {
        const char *text;
        int rc;
        const char *needle;
    } bad[] = {
        {"not json", SPELL_EPARSE, ""},
        {"42", SPELL_EINVAL, "spell object"},
        {"[]", SPELL_EINVAL, "1 to"},
        {"{\"key\": \"x\"}", SPELL_EINVAL, "name"},
        {"{\"key\": \"imp-d\", \"name\": \"D\", \"version\": \"1\", \"status\": \"published\", "
         "\"execution_mode\": \"service\", \"pricing_model\": \"free\", \"pricing\": {}}",
         SPELL_EINVAL, "execution"},
        {"{\"key\": \"imp-d\", \"name\": \"D\", \"version\": \"1\", \"status\": \"published\", "
         "\"execution_mode\": \"service\", \"pricing_model\": \"free\", \"pricing\": {}, "
         "\"execution\": {\"command\": []}}",
         SPELL_EINVAL, "execution.command"},
        {"{\"key\": \"imp-d\", \"name\": \"D\", \"version\": \"1\", \"status\": \"published\", "
         "\"execution_mode\": \"service\", \"pricing_model\": \"free\", \"pricing\": {}, "
         "\"execution\": {\"command\": [\"a\", 5]}}",
         SPELL_EINVAL, "execution.command[1]"},
        {"{\"key\": \"imp-d\", \"name\": \"D\", \"version\": \"1\", \"status\": \"published\", "
         "\"execution_mode\": \"service\", \"pricing_model\": \"free\", \"pricing\": {}, "
         "\"execution\": {\"command\": [\"a\"], \"timeout_s\": 0}}",
         SPELL_EINVAL, "timeout_s"},
        {"{\"key\": \"imp-d\", \"name\": \"D\", \"version\": \"1\", \"status\": \"published\", "
         "\"execution_mode\": \"service\", \"pricing_model\": \"free\", \"pricing\": {}, "
         "\"execution\": {\"command\": [\"a\"], \"timeout_s\": 3601}}",
         SPELL_EINVAL, "timeout_s"},
        {"{\"key\": \"imp-d\", \"name\": \"D\", \"version\": \"1\", \"status\": \"published\", "
         "\"execution_mode\": \"service\", \"pricing_model\": \"free\", \"pricing\": {}, "
         "\"execution\": {\"command\": [\"a\"], \"memory_mb\": \"big\"}}",
         SPELL_EINVAL, "memory_mb"},
        {"{\"key\": \"imp-d\", \"name\": \"D\", \"version\": \"1\", \"status\": \"published\", "
         "\"execution_mode\": \"service\", \"pricing_model\": \"free\", \"pricing\": {}, "
         "\"inputs_schema\": {\"type\": \"object\", \"properties\": {\"s\": {\"type\": "
         "\"string\", \"pattern\": \"x\"}}}, \"execution\": {\"command\": [\"a\"]}}",
         SPELL_EINVAL, "inputs_schema"},
        {"{\"key\": \"imp-d\", \"name\": \"D\", \"version\": \"1234567890123456789012345678901234\","
         " \"status\": \"published\", \"execution_mode\": \"wasm\", \"pricing_model\": \"free\", "
         "\"pricing\": {}}",
         SPELL_EINVAL, "version"},
        /* One bad spell in an array: nothing is written. */
        {"[{\"key\": \"imp-e\", \"name\": \"E\", \"version\": \"1\", \"status\": \"published\", "
         "\"execution_mode\": \"wasm\", \"pricing_model\": \"free\", \"pricing\": {}},"
         " {\"key\": \"BAD KEY\"}]",
         SPELL_EINVAL, "key"},
        {"[{\"key\": \"imp-f\", \"name\": \"F\", \"version\": \"1\", \"status\": \"published\", "
         "\"execution_mode\": \"wasm\", \"pricing_model\": \"free\", \"pricing\": {}},"
         " {\"key\": \"imp-f\", \"name\": \"F\", \"version\": \"1\", \"status\": \"published\", "
         "\"execution_mode\": \"wasm\", \"pricing_model\": \"free\", \"pricing\": {}}]",
         SPELL_EINVAL, "twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s/bad%zu.json", dir, i);
        write_file(path, bad[i].text);
        n = -1;
        err[0] = '\0';
        CHECK_INT(api_spells_import_file(&W.srv, path, err, sizeof err, &n), bad[i].rc);
        CHECK_INT(n, 0);
        CHECK(err[0] != '\0');
        if (!strstr(err, bad[i].needle))
            fprintf(stderr, "# case %zu: %s\n", i, err);
        CHECK(strstr(err, bad[i].needle) != NULL);
    }
    CHECK_INT(store_spell_get(W.store, "imp-e", &sp), SPELL_ENOTFOUND);
    CHECK_INT(store_spell_get(W.store, "imp-f", &sp), SPELL_ENOTFOUND);

    snprintf(path, sizeof path, "%s/missing.json", dir);
    CHECK_INT(api_spells_import_file(&W.srv, path, err, sizeof err, &n), SPELL_EIO);
    /* Past the 1 MiB cap. */
    snprintf(path, sizeof path, "%s/big.json", dir);
    {
        FILE *f = fopen(path, "w");

        for (int i = 0; f && i < (1 << 20) + 10; i++)
            fputc(' ', f);
        if (f)
            fclose(f);
    }
    CHECK_INT(api_spells_import_file(&W.srv, path, err, sizeof err, &n), SPELL_ETOOBIG);
    CHECK_INT(api_spells_import_file(&W.srv, NULL, err, sizeof err, &n), SPELL_EINVAL);
}

/* ---- privacy ---- */

static void test_privacy(void)
{
    struct resp r;
    struct store_key k;
    struct store_user u;
    char h[128];

    user_add("u_gdpr");
    for (int i = 0; i < 2; i++) {
        memset(&k, 0, sizeof k);
        snprintf(k.id, sizeof k.id, "key_gdpr%d", i);
        snprintf(k.user_id, sizeof k.user_id, "u_gdpr");
        snprintf(k.prefix, sizeof k.prefix, "Gdpr000%c", (char)('0' + i));
        snprintf(k.hash, sizeof k.hash, "$argon2id$fake");
        k.created_at = T0;
        CHECK_INT(store_key_create(W.store, &k), SPELL_OK);
    }
    cast("u_gdpr", "thumbnail", "g", "{\"inputs\":{\"url\":\"a\"}}", &r);
    CHECK_INT(r.status, 202);
    resp_free(&r);
    call("GET", "/v1/users/me/export", "u_gdpr", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(header(&r, "Content-Type", h, sizeof h), "application/json");
    CHECK(strncmp(header(&r, "Content-Disposition", h, sizeof h), "attachment", 10) == 0);
    CHECK(r.json != NULL);
    CHECK(strstr(spell_buf_str(&r.body), "u_gdpr") != NULL);
    CHECK(strstr(spell_buf_str(&r.body), "$argon2id$fake") == NULL);
    resp_free(&r);
    pthread_mutex_lock(&W.lock);
    W.ndropped = 0;
    pthread_mutex_unlock(&W.lock);
    call("DELETE", "/v1/users/me", "u_gdpr", NULL, NULL, &r);
    CHECK_INT(r.status, 204);
    resp_free(&r);
    pthread_mutex_lock(&W.lock);
    CHECK(W.ndropped >= 2);
    int seen0 = 0, seen1 = 0;
    for (size_t i = 0; i < W.ndropped; i++) {
        seen0 |= !strcmp(W.dropped[i], "Gdpr0000");
        seen1 |= !strcmp(W.dropped[i], "Gdpr0001");
    }
    pthread_mutex_unlock(&W.lock);
    CHECK(seen0 && seen1);
    CHECK_INT(store_user_get(W.store, "u_gdpr", &u), SPELL_ENOTFOUND);
    {
        int64_t checked = 0, badseq = 0;

        CHECK_INT(store_ledger_verify(W.store, &checked, &badseq), SPELL_OK);
    }
}

static void test_routes(void)
{
    const struct route *rows;
    size_t n;

    CHECK_INT(api_routes(NULL, &rows, &n), SPELL_EINVAL);
    CHECK_INT(api_routes(&W.srv, NULL, &n), SPELL_EINVAL);
    CHECK_INT(api_routes(&W.srv, &rows, &n), SPELL_OK);
    CHECK_INT(n, 16);
    for (size_t i = 0; i < n; i++) {
        CHECK(rows[i].ud == NULL);
        CHECK_INT(router_pattern_check(rows[i].pattern), SPELL_OK);
        CHECK_INT(!!(rows[i].flags & ROUTE_AUTH), strstr(rows[i].pattern, "/meta") == NULL &&
                                                      strncmp(rows[i].pattern, "/spells/", 8));
    }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (world_start() != 0) {
        printf("Bail out! cannot start the test world\n");
        return 1;
    }
    RUN(test_routes);
    RUN(test_cast_happy);
    RUN(test_cast_free_spell_counts);
    RUN(test_cast_metered_estimate);
    RUN(test_cast_replay);
    RUN(test_cast_in_flight);
    RUN(test_cast_key_header);
    RUN(test_cast_body_errors);
    RUN(test_cast_spell_errors);
    RUN(test_budget_metric_registered);
    RUN(test_cast_budget_cap);
    RUN(test_cast_budget_exceeded);
    RUN(test_cast_rate_limited);
    RUN(test_cast_submit_fails);
    RUN(test_concurrent_one_key);
    RUN(test_concurrent_one_key_invalid);
    RUN(test_concurrent_budget);
    RUN(test_list_paging);
    RUN(test_get_cast);
    RUN(test_cancel);
    RUN(test_sse);
    RUN(test_sse_live);
    RUN(test_budgets);
    RUN(test_usage);
    RUN(test_spells_catalog);
    RUN(test_spells_public);
    RUN(test_import);
    RUN(test_privacy);
    world_stop();
    curl_global_cleanup();
    return tap_done();
}
