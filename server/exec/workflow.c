/*
 * The workflow executor (workflow.h): dispatch, run tracking by polling and
 * by webhook, progress from the run's steps, cancel, and the webhook route.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"
#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/http.h"
#include "spell/jcs.h"
#include "spell/json.h"

#include "exec-impl.h"
#include "exec.h"
#include "github.h"
#include "httpd.h"
#include "lifecycle.h"
#include "router.h"
#include "server.h"
#include "store.h"
#include "workflow.h"

#define REPO_MAX 200            /* "owner/name" */
#define NAME_MAX_LEN 255        /* workflow file, ref, event type */
#define EXEC_JSON_MAX (64 * 1024)
#define STEP_MS 100             /* sleep slice while waiting */
#define FIND_EVERY_MS 500
#define BACKOFF_BASE_MS 500L
#define BACKOFF_MAX_MS 8000L
#define LIST_BODY_CAP ((size_t)4 * 1024 * 1024)
#define DEFAULT_TIMEOUT_S 60

struct wf_config {
    char repo[REPO_MAX + 1];
    char workflow[NAME_MAX_LEN + 1];
    char ref[NAME_MAX_LEN + 1];
    char event_type[NAME_MAX_LEN + 1];
    char installation[GITHUB_ID_MAX + 1];
    bool repository;            /* repository_dispatch instead of workflow_dispatch */
    int64_t timeout_s;
};

/* ---- helpers --------------------------------------------------------- */

static void sleep_ms(int64_t ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

static bool safe_name(const char *s, bool slash)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            c == '.' || c == '_' || c == '-' || (slash && c == '/'))
            continue;
        return false;
    }
    return true;
}

static bool is_open_status(const char *s)
{
    return strcmp(s, "queued") == 0 || strcmp(s, "running") == 0;
}

/* Copies a string member (at most cap bytes) of obj, "" when absent. */
static void member_str(const cJSON *obj, const char *name, char *out, size_t cap)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);

    out[0] = '\0';
    if (cJSON_IsString(m) && m->valuestring && strlen(m->valuestring) < cap)
        snprintf(out, cap, "%s", m->valuestring);
}

static int64_t member_id(const cJSON *obj, const char *name)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (cJSON_IsNumber(m) && m->valuedouble >= 1 && m->valuedouble <= 9007199254740991.0)
        return (int64_t)m->valuedouble;
    return 0;
}

static int parse_config(const struct server *srv, const char *text, struct wf_config *cfg,
                        char *err, size_t errlen)
{
    struct spell_json_limits lim = {EXEC_JSON_MAX, 0};
    const cJSON *m;
    cJSON *j = NULL;
    int rc = SPELL_EINVAL;

    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->ref, sizeof cfg->ref, "main");
    snprintf(cfg->event_type, sizeof cfg->event_type, "spell_cast");
    cfg->timeout_s = srv->limits.default_timeout_s > 0 ? srv->limits.default_timeout_s
                                                       : DEFAULT_TIMEOUT_S;
    if (srv->providers.github_app_installation_id &&
        strlen(srv->providers.github_app_installation_id) <= GITHUB_ID_MAX)
        snprintf(cfg->installation, sizeof cfg->installation, "%s",
                 srv->providers.github_app_installation_id);
    if (!text || spell_json_parse(text, strlen(text), &lim, &j, NULL, 0) != SPELL_OK ||
        !cJSON_IsObject(j)) {
        snprintf(err, errlen, "the spell's execution config is not a JSON object");
        goto out;
    }
    member_str(j, "repo", cfg->repo, sizeof cfg->repo);
    member_str(j, "workflow", cfg->workflow, sizeof cfg->workflow);
    if ((m = cJSON_GetObjectItemCaseSensitive(j, "ref")) && cJSON_IsString(m))
        member_str(j, "ref", cfg->ref, sizeof cfg->ref);
    if ((m = cJSON_GetObjectItemCaseSensitive(j, "event_type")) && cJSON_IsString(m))
        member_str(j, "event_type", cfg->event_type, sizeof cfg->event_type);
    if ((m = cJSON_GetObjectItemCaseSensitive(j, "dispatch")) && cJSON_IsString(m)) {
        if (strcmp(m->valuestring, "repository") == 0)
            cfg->repository = true;
        else if (strcmp(m->valuestring, "workflow") != 0) {
            snprintf(err, errlen, "execution.dispatch must be \"workflow\" or \"repository\"");
            goto out;
        }
    }
    if ((m = cJSON_GetObjectItemCaseSensitive(j, "installation_id"))) {
        if (cJSON_IsNumber(m) && member_id(j, "installation_id") > 0)
            snprintf(cfg->installation, sizeof cfg->installation, "%lld",
                     (long long)member_id(j, "installation_id"));
        else if (cJSON_IsString(m))
            member_str(j, "installation_id", cfg->installation, sizeof cfg->installation);
    }
    if ((m = cJSON_GetObjectItemCaseSensitive(j, "timeout_s"))) {
        int64_t t = member_id(j, "timeout_s");
        if (t < 1 || t > EXEC_TIMEOUT_MAX_S) {
            snprintf(err, errlen, "execution.timeout_s must be between 1 and %d",
                     EXEC_TIMEOUT_MAX_S);
            goto out;
        }
        cfg->timeout_s = t;
    }
    if (!safe_name(cfg->repo, true) || !strchr(cfg->repo, '/') ||
        strchr(strchr(cfg->repo, '/') + 1, '/')) {
        snprintf(err, errlen, "execution.repo must be \"owner/name\"");
        goto out;
    }
    if (!cfg->repository && !safe_name(cfg->workflow, false)) {
        snprintf(err, errlen, "execution.workflow must name the workflow file");
        goto out;
    }
    if (!cfg->ref[0] || strpbrk(cfg->ref, "\"\\ \r\n\t") || !cfg->event_type[0] ||
        strpbrk(cfg->event_type, "\"\\\r\n")) {
        snprintf(err, errlen, "execution.ref or execution.event_type is not valid");
        goto out;
    }
    if (!safe_name(cfg->installation, false)) {
        snprintf(err, errlen, "no GitHub App installation is configured for this spell");
        goto out;
    }
    rc = SPELL_OK;
out:
    cJSON_Delete(j);
    return rc;
}

/* Characters (code points) of UTF-8 text. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

int workflow_validate_inputs(const char *execution, const cJSON *inputs, char *field,
                             size_t fieldlen, char *err, size_t errlen)
{
    struct spell_buf txt;
    int rc;

    (void)execution;
    if (!inputs || !field || !err || fieldlen == 0 || errlen == 0)
        return SPELL_EINVAL;
    field[0] = err[0] = '\0';
    /* The cap is generous: a text of more than 4 bytes a character is
     * impossible, so a longer one is refused without counting. */
    spell_buf_init(&txt, (size_t)WORKFLOW_INPUT_MAX * 4 + 1);
    rc = spell_jcs_serialize(inputs, &txt);
    if (rc == SPELL_OK && utf8_chars(spell_buf_str(&txt), txt.len) > WORKFLOW_INPUT_MAX)
        rc = SPELL_ETOOBIG;
    if (rc == SPELL_ETOOBIG) {
        snprintf(field, fieldlen, "inputs");
        snprintf(err, errlen,
                 "the inputs of a workflow spell travel as one GitHub Actions input, which "
                 "holds at most %d characters of JSON",
                 WORKFLOW_INPUT_MAX);
        rc = SPELL_EINVAL;
    }
    spell_buf_free(&txt);
    return rc;
}

/* ---- setup ----------------------------------------------------------- */

int workflow_setup(struct server *srv)
{
    int rc;

    if (!srv)
        return SPELL_EINVAL;
    if (srv->github)
        return SPELL_OK;
    rc = github_new(&srv->providers, &srv->clock, &srv->github);
    return rc == SPELL_ENOTFOUND ? SPELL_OK : rc;
}

void workflow_teardown(struct server *srv)
{
    if (!srv)
        return;
    github_free(srv->github);
    srv->github = NULL;
}

/* ---- GitHub calls ---------------------------------------------------- */

/* Parses an answer body as a JSON object; NULL when it is not one. */
static cJSON *body_json(const struct github_resp *r, size_t cap)
{
    struct spell_json_limits lim = {cap, 64};
    cJSON *j = NULL;

    if (spell_json_parse(r->body, r->len, &lim, &j, NULL, 0) != SPELL_OK)
        return NULL;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* Whether the text holds cast_id as a whole word. */
static bool names_cast(const char *text, const char *cast_id)
{
    size_t n = strlen(cast_id);
    const char *p = text;

    while (p && (p = strstr(p, cast_id))) {
        unsigned char after = (unsigned char)p[n];
        unsigned char before = p == text ? ' ' : (unsigned char)p[-1];
        bool word_after = after == '_' || (after >= '0' && after <= '9') ||
                          (after >= 'a' && after <= 'z') || (after >= 'A' && after <= 'Z');
        bool word_before = before == '_' || (before >= '0' && before <= '9') ||
                           (before >= 'a' && before <= 'z') || (before >= 'A' && before <= 'Z');
        if (!word_after && !word_before)
            return true;
        p += n;
    }
    return false;
}

/* Searches the runs list for the cast's run: 1 found, 0 not (yet), < 0 a
 * failed call. */
static int find_run(struct server *srv, const struct wf_config *cfg, const char *cast_id,
                    int64_t *run_id, char *html_url, size_t urlsize)
{
    struct github_resp r;
    char path[600];
    const cJSON *runs, *run;
    cJSON *j = NULL;
    int rc;

    snprintf(path, sizeof path, "/repos/%s/actions/runs?event=%s&per_page=100", cfg->repo,
             cfg->repository ? "repository_dispatch" : "workflow_dispatch");
    rc = github_call(srv->github, cfg->installation, "GET", path, NULL, LIST_BODY_CAP, &r);
    if (rc == SPELL_OK && r.status != 200)
        rc = SPELL_EIO;
    if (rc != SPELL_OK)
        goto out;
    rc = SPELL_EPARSE;
    if (!(j = body_json(&r, LIST_BODY_CAP)))
        goto out;
    rc = 0;
    runs = cJSON_GetObjectItemCaseSensitive(j, "workflow_runs");
    cJSON_ArrayForEach(run, runs) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(run, "name");
        const cJSON *title = cJSON_GetObjectItemCaseSensitive(run, "display_title");
        bool hit = (cJSON_IsString(name) && names_cast(name->valuestring, cast_id)) ||
                   (cJSON_IsString(title) && names_cast(title->valuestring, cast_id));

        if (!hit || member_id(run, "id") <= 0)
            continue;
        *run_id = member_id(run, "id");
        member_str(run, "html_url", html_url, urlsize);
        rc = 1;
        break;
    }
out:
    cJSON_Delete(j);
    github_resp_free(&r);
    return rc;
}

/* The page of the run's first artifact into url ("" when it has none).
 * SPELL_OK, or a failure when the list could not be read. */
static int artifact_of(struct server *srv, const struct wf_config *cfg, int64_t run_id,
                       const char *run_html, char *url, size_t urlsize)
{
    struct github_resp r;
    char path[400];
    const cJSON *list, *first;
    cJSON *j = NULL;
    int rc;

    url[0] = '\0';
    snprintf(path, sizeof path, "/repos/%s/actions/runs/%lld/artifacts", cfg->repo,
             (long long)run_id);
    rc = github_call(srv->github, cfg->installation, "GET", path, NULL, 0, &r);
    if (rc == SPELL_OK && r.status != 200)
        rc = SPELL_EIO;
    if (rc != SPELL_OK)
        goto out;
    rc = SPELL_EPARSE;
    if (!(j = body_json(&r, GITHUB_BODY_DEFAULT)))
        goto out;
    rc = SPELL_OK;
    list = cJSON_GetObjectItemCaseSensitive(j, "artifacts");
    first = cJSON_IsArray(list) ? cJSON_GetArrayItem(list, 0) : NULL;
    if (first && member_id(first, "id") > 0) {
        if (run_html && (strncmp(run_html, "https://", 8) == 0 ||
                         strncmp(run_html, "http://", 7) == 0))
            snprintf(url, urlsize, "%s/artifacts/%lld", run_html,
                     (long long)member_id(first, "id"));
        else
            member_str(first, "archive_download_url", url, urlsize);
    }
out:
    cJSON_Delete(j);
    github_resp_free(&r);
    return rc;
}

static int cancel_on_github(struct server *srv, const struct wf_config *cfg, int64_t run_id)
{
    struct github_resp r;
    char path[400];
    int rc;

    snprintf(path, sizeof path, "/repos/%s/actions/runs/%lld/cancel", cfg->repo,
             (long long)run_id);
    rc = github_call(srv->github, cfg->installation, "POST", path, NULL, 0, &r);
    /* 409: the run already completed. */
    if (rc == SPELL_OK && r.status != 202 && r.status != 409 && r.status != 200)
        rc = SPELL_EIO;
    github_resp_free(&r);
    return rc;
}

/* ---- the end of a run ------------------------------------------------ */

/*
 * Ends the cast by the run's conclusion.  SPELL_OK when the cast is ended
 * (by this call or before it); a failure to list the artifacts is
 * returned so the caller tries again later.
 */
static int finish(struct server *srv, const struct wf_config *cfg, const char *cast_id,
                  int64_t run_id, const char *html_url, const char *conclusion)
{
    struct store_cast c;
    char art[STORE_URL_SIZE], msg[200];
    int rc;

    if ((rc = store_cast_get(srv->store, cast_id, NULL, &c)) != SPELL_OK)
        return rc;
    if (!is_open_status(c.status)) {
        rc = SPELL_OK;
        goto out;
    }
    if (strcmp(conclusion, "cancelled") == 0) {
        rc = lifecycle_cancel(srv, cast_id);
        goto out;
    }
    /* A completion that overtook in_progress still starts the cast first,
     * so the stream shows cast.started before the end. */
    if (strcmp(c.status, "queued") == 0)
        (void)lifecycle_start(srv, cast_id, html_url && html_url[0] ? html_url : NULL);
    if (strcmp(conclusion, "success") == 0) {
        if ((rc = artifact_of(srv, cfg, run_id, html_url, art, sizeof art)) != SPELL_OK)
            goto out;
        rc = lifecycle_succeed(srv, cast_id, c.estimated_cost_cents, art[0] ? art : NULL);
    } else {
        snprintf(msg, sizeof msg, "the workflow run ended with conclusion '%.40s'",
                 conclusion[0] ? conclusion : "unknown");
        rc = lifecycle_fail(srv, cast_id, WORKFLOW_ERR_FAILED, msg);
    }
out:
    if (rc == STORE_ECONFLICT)
        rc = SPELL_OK;
    store_cast_clear(&c);
    return rc;
}

/* ---- dispatch -------------------------------------------------------- */

static int dispatch_body(const struct wf_config *cfg, const struct store_cast *c,
                         char **out)
{
    struct spell_json_limits lim = {STORE_JSON_MAX, 0};
    cJSON *j = cJSON_CreateObject(), *sub = NULL, *inputs = NULL;
    int rc = SPELL_ENOMEM;

    *out = NULL;
    if (!j)
        goto out;
    if (cfg->repository) {
        if (spell_json_parse(c->inputs, strlen(c->inputs), &lim, &inputs, NULL, 0) !=
            SPELL_OK) {
            rc = SPELL_EINVAL;
            goto out;
        }
        if (spell_json_add_string(j, "event_type", cfg->event_type) ||
            !(sub = cJSON_AddObjectToObject(j, "client_payload")) ||
            spell_json_add_string(sub, "cast_id", c->id))
            goto out;
        cJSON_AddItemToObject(sub, "inputs", inputs);
        inputs = NULL;
    } else {
        if (spell_json_add_string(j, "ref", cfg->ref) ||
            !(sub = cJSON_AddObjectToObject(j, "inputs")) ||
            spell_json_add_string(sub, "cast_id", c->id) ||
            spell_json_add_string(sub, "inputs", c->inputs))
            goto out;
    }
    if (!(*out = cJSON_PrintUnformatted(j)))
        goto out;
    rc = SPELL_OK;
out:
    cJSON_Delete(inputs);
    cJSON_Delete(j);
    return rc;
}

/* What a failed call means for a caller that may retry. */
static bool retryable(int rc, const struct github_resp *r)
{
    if (rc == SPELL_ENET || rc == SPELL_ETIMEOUT || rc == SPELL_EABORT || rc == SPELL_EIO)
        return true;
    if (rc != SPELL_OK)
        return false;
    return r->status >= 500 || r->status == 429 || (r->status == 403 && r->rate_limited);
}

/* Whether a retryable failure leaves open that GitHub made the run: no
 * answer arrived, and the request may have been sent (a call the client
 * held back for the rate limit sent nothing).  An HTTP status is a clear
 * refusal: GitHub made no run. */
static bool ambiguous(int rc, const struct github_resp *r)
{
    return rc != SPELL_OK && r->status == 0 && !(rc == SPELL_EABORT && r->rate_limited);
}

/*
 * The wait of wait_ms before the dispatch is sent again.  With search set
 * (the last attempt's outcome is unknown) the runs list is searched every
 * FIND_EVERY_MS meanwhile, for at least WORKFLOW_FIND_MS and until it has
 * answered once: 1 when the cast's run is there (the attempt went
 * through; *run_id and html filled in), 0 to send again, SPELL_EABORT when
 * the executor stops, SPELL_ETIMEOUT when the deadline comes first.
 */
static int retry_wait(struct executor *e, struct exec_slot *slot, const struct wf_config *cfg,
                      const char *cast_id, int64_t wait_ms, bool search, int64_t deadline,
                      int64_t *run_id, char *html, size_t htmlsize)
{
    struct server *srv = exec_server(e);
    int64_t start = srv_now_ms(&srv->clock), now, next_find = start;
    bool answered = !search;
    int found;

    if (search && wait_ms < WORKFLOW_FIND_MS)
        wait_ms = WORKFLOW_FIND_MS;
    for (;;) {
        if (exec_slot_flags(e, slot) & EXEC_FLAG_STOP)
            return SPELL_EABORT;
        now = srv_now_ms(&srv->clock);
        if (search && now >= next_find) {
            next_find = now + FIND_EVERY_MS;
            found = find_run(srv, cfg, cast_id, run_id, html, htmlsize);
            if (found == 1)
                return 1;
            *run_id = 0;
            if (found == 0)
                answered = true;
            now = srv_now_ms(&srv->clock);
        }
        if (now - start >= wait_ms && answered)
            return 0;
        if (now >= deadline)
            return SPELL_ETIMEOUT;
        sleep_ms(STEP_MS);
    }
}

/*
 * SPELL_OK once dispatched (*run_id is set when the run was already found
 * in the runs list, else 0); otherwise msg says why (the caller fails the
 * cast), or SPELL_EABORT when the executor stops.  A retry after an attempt
 * whose outcome is unknown first searches the runs list, so a dispatch
 * that went through is not sent a second time.
 */
static int dispatch(struct executor *e, struct exec_slot *slot, const struct wf_config *cfg,
                    const struct store_cast *c, int64_t deadline, int64_t *run_id, char *html,
                    size_t htmlsize, char *msg, size_t msglen)
{
    struct server *srv = exec_server(e);
    struct github_resp r;
    char path[600], last[160], *body = NULL;
    int64_t wait;
    int rc, attempt = 0;
    bool unknown;
    uint32_t rnd;

    *run_id = 0;
    if (cfg->repository)
        snprintf(path, sizeof path, "/repos/%s/dispatches", cfg->repo);
    else
        snprintf(path, sizeof path, "/repos/%s/actions/workflows/%s/dispatches", cfg->repo,
                 cfg->workflow);
    if (!c->inputs) {
        snprintf(msg, msglen, "the cast's inputs were no longer kept");
        return SPELL_EINVAL;
    }
    if ((rc = dispatch_body(cfg, c, &body)) != SPELL_OK) {
        snprintf(msg, msglen, "the dispatch could not be built");
        return rc;
    }
    for (;;) {
        rc = github_call(srv->github, cfg->installation, "POST", path, body, 0, &r);
        if (rc == SPELL_OK && r.status >= 200 && r.status < 300) {
            github_resp_free(&r);
            rc = SPELL_OK;
            break;
        }
        if (!retryable(rc, &r)) {
            snprintf(msg, msglen, "GitHub refused the dispatch: %.200s%s%.200s",
                     r.error[0] ? r.error : spell_strerror(rc), r.len ? ": " : "",
                     r.len ? r.body : "");
            lifecycle_text_clean(msg, strlen(msg), msg, msglen);
            github_resp_free(&r);
            rc = SPELL_EINVAL;
            break;
        }
        unknown = ambiguous(rc, &r);
        spell_random_bytes(&rnd, sizeof rnd);
        wait = spell_http_backoff_ms(attempt < 10 ? attempt : 10, BACKOFF_BASE_MS,
                                     BACKOFF_MAX_MS, rnd);
        if (wait < BACKOFF_BASE_MS / 2)
            wait = BACKOFF_BASE_MS / 2;
        if (r.rate_limited && r.retry_after_ms > wait)
            wait = r.retry_after_ms;
        attempt++;
        snprintf(last, sizeof last, "%.150s", r.error[0] ? r.error : spell_strerror(rc));
        github_resp_free(&r);
        /* After an unknown outcome the list is searched even when the
         * deadline is near: a run that exists is followed (and canceled
         * at the deadline), not left behind. */
        if (!unknown && srv_now_ms(&srv->clock) + wait >= deadline)
            rc = SPELL_ETIMEOUT;
        else
            rc = retry_wait(e, slot, cfg, c->id, wait, unknown, deadline, run_id, html,
                            htmlsize);
        if (rc == 1) {
            rc = SPELL_OK;
            break;
        }
        if (rc == SPELL_ETIMEOUT) {
            snprintf(msg, msglen,
                     "GitHub did not accept the dispatch before the cast's deadline "
                     "(%d attempts; last: %s)",
                     attempt, last);
            break;
        }
        if (rc == SPELL_EABORT) {
            snprintf(msg, msglen, "stopping");
            break;
        }
    }
    cJSON_free(body);
    return rc;
}

/* ---- tracking -------------------------------------------------------- */

struct progress_state {
    int pct;
    char message[LIFECYCLE_MESSAGE_MAX + 1];
};

/* Reads the jobs of a run and reports progress when it changed. */
static void poll_steps(struct server *srv, const struct wf_config *cfg, const char *cast_id,
                       int64_t run_id, struct progress_state *ps)
{
    struct github_resp r;
    char path[400], current[LIFECYCLE_MESSAGE_MAX + 1] = "";
    const cJSON *jobs, *job, *steps, *step;
    cJSON *j = NULL;
    int total = 0, done = 0, pct;

    snprintf(path, sizeof path, "/repos/%s/actions/runs/%lld/jobs?per_page=100", cfg->repo,
             (long long)run_id);
    if (github_call(srv->github, cfg->installation, "GET", path, NULL, LIST_BODY_CAP, &r) !=
            SPELL_OK ||
        r.status != 200 || !(j = body_json(&r, LIST_BODY_CAP)))
        goto out;
    jobs = cJSON_GetObjectItemCaseSensitive(j, "jobs");
    cJSON_ArrayForEach(job, jobs) {
        steps = cJSON_GetObjectItemCaseSensitive(job, "steps");
        cJSON_ArrayForEach(step, steps) {
            char status[32], name[256];

            member_str(step, "status", status, sizeof status);
            member_str(step, "name", name, sizeof name);
            total++;
            if (strcmp(status, "completed") == 0)
                done++;
            else if (strcmp(status, "in_progress") == 0 && !current[0])
                snprintf(current, sizeof current, "%s", name);
        }
    }
    if (total == 0)
        goto out;
    pct = done * 100 / total;
    if (pct > 99)
        pct = 99;   /* 100 is for the end of the cast */
    if (!current[0])
        snprintf(current, sizeof current, "%d of %d steps done", done, total);
    if (pct != ps->pct || strcmp(current, ps->message) != 0) {
        if (lifecycle_progress(srv, cast_id, pct, current) == SPELL_OK) {
            ps->pct = pct;
            snprintf(ps->message, sizeof ps->message, "%s", current);
        }
    }
out:
    cJSON_Delete(j);
    github_resp_free(&r);
}

/* Polls the run itself: SPELL_OK when the cast is ended (or was), 1 when
 * the run goes on, a failure when GitHub could not tell. */
static int poll_run(struct server *srv, const struct wf_config *cfg, const char *cast_id,
                    int64_t run_id, const char *cast_status, bool *running)
{
    struct github_resp r;
    char path[400], status[32], conclusion[32], html[STORE_URL_SIZE];
    cJSON *j = NULL;
    int rc = SPELL_EIO;

    *running = false;
    snprintf(path, sizeof path, "/repos/%s/actions/runs/%lld", cfg->repo, (long long)run_id);
    if (github_call(srv->github, cfg->installation, "GET", path, NULL, 0, &r) != SPELL_OK ||
        r.status != 200 || !(j = body_json(&r, GITHUB_BODY_DEFAULT)))
        goto out;
    member_str(j, "status", status, sizeof status);
    member_str(j, "conclusion", conclusion, sizeof conclusion);
    member_str(j, "html_url", html, sizeof html);
    if (strcmp(status, "completed") == 0) {
        rc = finish(srv, cfg, cast_id, run_id, html, conclusion);
        goto out;
    }
    if (strcmp(status, "in_progress") == 0) {
        *running = true;
        if (strcmp(cast_status, "queued") == 0)
            (void)lifecycle_start(srv, cast_id, html[0] ? html : NULL);
    }
    rc = 1;     /* not ended yet */
out:
    cJSON_Delete(j);
    github_resp_free(&r);
    return rc;
}

void workflow_run(struct executor *e, struct exec_slot *slot, const struct store_cast *c0)
{
    struct server *srv = exec_server(e);
    struct progress_state ps = {-1, ""};
    struct store_spell sp;
    struct store_cast c;
    struct wf_config cfg;
    char msg[600], html[STORE_URL_SIZE] = "";
    int64_t run_id = 0, marked = 0, deadline, now, next_poll = 0, next_find = 0, find_until;
    bool have_spell = false, running, unknown = false;
    int rc, flags, already = 0;

    memset(&sp, 0, sizeof sp);
    if (!srv->github) {
        lifecycle_fail(srv, c0->id, EXEC_ERR_INTERNAL,
                       "execution mode 'workflow' is not configured on this server");
        return;
    }
    if (store_spell_get(srv->store, c0->spell_key, &sp) != SPELL_OK) {
        lifecycle_fail(srv, c0->id, EXEC_ERR_INTERNAL, "the spell of the cast is gone");
        return;
    }
    have_spell = true;
    if (parse_config(srv, sp.execution, &cfg, msg, sizeof msg) != SPELL_OK) {
        lifecycle_fail(srv, c0->id, EXEC_ERR_INTERNAL, msg);
        goto out;
    }
    deadline = c0->created_at + cfg.timeout_s * 1000;
    if (store_cast_run_id(srv->store, c0->id, &run_id) != SPELL_OK)
        goto out;
    if (run_id == 0) {
        if (store_cast_dispatched_at(srv->store, c0->id, &marked) != SPELL_OK)
            goto out;
        /* A run named after the cast may be listed already (a restart
         * after the dispatch). */
        if (find_run(srv, &cfg, c0->id, &run_id, html, sizeof html) != 1)
            run_id = 0;
        if (run_id == 0 && marked == 0 && strcmp(c0->status, "queued") == 0) {
            /* The mark is committed before the request leaves: whatever
             * happens from here on, the cast is never dispatched again. */
            rc = store_cast_mark_dispatch(srv->store, c0->id, srv_now_ms(&srv->clock),
                                          &already);
            if (rc != SPELL_OK) {
                snprintf(msg, sizeof msg, "the dispatch could not be recorded, so it was not "
                                          "sent: %s", spell_strerror(rc));
                lifecycle_fail(srv, c0->id, EXEC_ERR_INTERNAL, msg);
                goto out;
            }
            if (already) {
                (void)store_cast_dispatched_at(srv->store, c0->id, &marked);
            } else {
                rc = dispatch(e, slot, &cfg, c0, deadline, &run_id, html, sizeof html, msg,
                              sizeof msg);
                if (rc == SPELL_EABORT)
                    goto out;
                if (rc != SPELL_OK) {
                    lifecycle_fail(srv, c0->id,
                                   rc == SPELL_ETIMEOUT ? EXEC_ERR_TIMEOUT : EXEC_ERR_INTERNAL,
                                   msg);
                    goto out;
                }
            }
        }
        if (run_id > 0)
            (void)store_cast_set_run(srv->store, c0->id, run_id, html[0] ? html : NULL);
        /* Dispatched before this worker took the cast (by a server that
         * stopped while it sent it, or after): GitHub may or may not have
         * made the run, so it is looked for, and only for a while. */
        unknown = run_id == 0 && marked > 0;
    }
    find_until = srv_now_ms(&srv->clock) + WORKFLOW_FIND_MS;
    for (;;) {
        flags = exec_slot_flags(e, slot);
        if (flags & EXEC_FLAG_STOP)
            break;      /* stays open in the store: followed again after a restart */
        if (store_cast_get(srv->store, c0->id, NULL, &c) != SPELL_OK)
            break;
        if (!is_open_status(c.status)) {
            store_cast_clear(&c);
            break;
        }
        now = srv_now_ms(&srv->clock);
        if (now >= deadline) {
            store_cast_clear(&c);
            if (run_id > 0)
                (void)cancel_on_github(srv, &cfg, run_id);
            snprintf(msg, sizeof msg, "the workflow run did not finish within %lld s",
                     (long long)cfg.timeout_s);
            lifecycle_fail(srv, c0->id, EXEC_ERR_TIMEOUT, msg);
            break;
        }
        if (run_id == 0) {
            /* The webhook may have found it. */
            (void)store_cast_run_id(srv->store, c0->id, &run_id);
            if (run_id == 0 && now >= next_find) {
                next_find = now + (now < find_until ? FIND_EVERY_MS : WORKFLOW_POLL_MS * 3);
                rc = find_run(srv, &cfg, c0->id, &run_id, html, sizeof html);
                if (rc == 1) {
                    (void)store_cast_set_run(srv->store, c0->id, run_id,
                                             html[0] ? html : NULL);
                } else {
                    run_id = 0;
                    if (rc == 0 && unknown && now >= marked + WORKFLOW_DISPATCH_WAIT_MS) {
                        store_cast_clear(&c);
                        snprintf(msg, sizeof msg,
                                 "the outcome of the workflow dispatch is unknown (the "
                                 "server stopped while sending it) and no run named after "
                                 "the cast appeared within %d s of it",
                                 WORKFLOW_DISPATCH_WAIT_MS / 1000);
                        lifecycle_fail(srv, c0->id, EXEC_ERR_INTERNAL, msg);
                        break;
                    }
                }
            }
        }
        if (run_id > 0 && now >= next_poll) {
            next_poll = now + WORKFLOW_POLL_MS;
            rc = poll_run(srv, &cfg, c0->id, run_id, c.status, &running);
            if (rc == SPELL_OK) {
                store_cast_clear(&c);
                break;
            }
            if (running)
                poll_steps(srv, &cfg, c0->id, run_id, &ps);
        }
        store_cast_clear(&c);
        sleep_ms(STEP_MS * 2);
    }
out:
    if (have_spell)
        store_spell_clear(&sp);
}

/* ---- cancel ---------------------------------------------------------- */

int workflow_cancel_run(struct server *srv, const char *cast_id)
{
    struct store_spell sp;
    struct store_cast c;
    struct wf_config cfg;
    char err[200];
    int64_t run_id = 0;
    int rc;

    if (!srv || !cast_id)
        return SPELL_EINVAL;
    if (!srv->github)
        return SPELL_OK;
    if ((rc = store_cast_get(srv->store, cast_id, NULL, &c)) != SPELL_OK)
        return rc;
    if (strcmp(c.mode, "workflow") != 0 ||
        store_cast_run_id(srv->store, cast_id, &run_id) != SPELL_OK || run_id <= 0) {
        store_cast_clear(&c);
        return SPELL_OK;
    }
    memset(&sp, 0, sizeof sp);
    rc = store_spell_get(srv->store, c.spell_key, &sp);
    store_cast_clear(&c);
    if (rc != SPELL_OK)
        return rc;
    rc = parse_config(srv, sp.execution, &cfg, err, sizeof err);
    store_spell_clear(&sp);
    if (rc == SPELL_OK)
        rc = cancel_on_github(srv, &cfg, run_id);
    return rc;
}

/* ---- webhooks -------------------------------------------------------- */

/* The cast id named in a run's name ("cast cst_..."), "" when none. */
static void cast_in_name(const char *name, char *out, size_t outsize)
{
    const char *p = name;
    size_t n = 0;

    out[0] = '\0';
    while (p && (p = strstr(p, "cst_"))) {
        if (p == name || p[-1] == ' ' || p[-1] == '(' || p[-1] == ':')
            break;
        p += 4;
    }
    if (!p)
        return;
    while (n + 1 < outsize && ((p[n] >= '0' && p[n] <= '9') || (p[n] >= 'A' && p[n] <= 'Z') ||
                               (p[n] >= 'a' && p[n] <= 'z') || p[n] == '_'))
        n++;
    memcpy(out, p, n);
    out[n] = '\0';
}

static int on_workflow_run(struct server *srv, const cJSON *j)
{
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(j, "workflow_run");
    struct store_spell sp;
    struct store_cast c;
    struct wf_config cfg;
    char action[32], name[512], title[512], cast_id[STORE_ID_SIZE] = "", html[STORE_URL_SIZE];
    char conclusion[32], err[200];
    int64_t run_id, stored = 0;
    int rc;

    member_str(j, "action", action, sizeof action);
    if (!cJSON_IsObject(run) || (run_id = member_id(run, "id")) <= 0) {
        fprintf(stderr, "spell-server: github webhook: workflow_run without a run id\n");
        return SPELL_OK;
    }
    member_str(run, "name", name, sizeof name);
    member_str(run, "display_title", title, sizeof title);
    member_str(run, "html_url", html, sizeof html);
    member_str(run, "conclusion", conclusion, sizeof conclusion);
    if (store_cast_by_run_id(srv->store, run_id, cast_id) != SPELL_OK) {
        cast_in_name(name, cast_id, sizeof cast_id);
        if (!cast_id[0])
            cast_in_name(title, cast_id, sizeof cast_id);
    }
    if (!cast_id[0] || store_cast_get(srv->store, cast_id, NULL, &c) != SPELL_OK) {
        fprintf(stderr, "spell-server: github webhook: run %lld (%s) belongs to no cast\n",
                (long long)run_id, action);
        return SPELL_OK;
    }
    if (strcmp(c.mode, "workflow") != 0) {
        store_cast_clear(&c);
        fprintf(stderr, "spell-server: github webhook: run %lld names a cast that is not a "
                        "workflow cast\n", (long long)run_id);
        return SPELL_OK;
    }
    (void)store_cast_run_id(srv->store, cast_id, &stored);
    if (stored == 0)
        (void)store_cast_set_run(srv->store, cast_id, run_id, html[0] ? html : NULL);
    else if (stored != run_id) {
        store_cast_clear(&c);
        fprintf(stderr, "spell-server: github webhook: run %lld is not the run of %s\n",
                (long long)run_id, cast_id);
        return SPELL_OK;
    }
    rc = SPELL_OK;
    if (strcmp(action, "in_progress") == 0) {
        if (strcmp(c.status, "queued") == 0) {
            rc = lifecycle_start(srv, cast_id, html[0] ? html : NULL);
            if (rc == STORE_ECONFLICT)
                rc = SPELL_OK;
        }
    } else if (strcmp(action, "completed") == 0 && is_open_status(c.status)) {
        memset(&sp, 0, sizeof sp);
        if ((rc = store_spell_get(srv->store, c.spell_key, &sp)) == SPELL_OK) {
            if (parse_config(srv, sp.execution, &cfg, err, sizeof err) == SPELL_OK)
                rc = finish(srv, &cfg, cast_id, run_id, html, conclusion);
            store_spell_clear(&sp);
        }
        /* An artifact list that failed is left to the executor's poll of
         * the run, which ends the cast as soon as GitHub answers again. */
        if (rc != SPELL_OK)
            fprintf(stderr, "spell-server: github webhook: completing %s deferred: %s\n",
                    cast_id, spell_strerror(rc));
        rc = SPELL_OK;
    }
    store_cast_clear(&c);
    return rc;
}

int workflow_webhook(struct server *srv, const char *event, const char *delivery,
                     const char *body, size_t len, int *status)
{
    struct spell_json_limits lim = {WORKFLOW_WEBHOOK_MAX, 64};
    cJSON *j = NULL;
    int seen = 0, rc;

    if (!srv || !event || !delivery || !status)
        return SPELL_EINVAL;
    *status = 200;
    if ((rc = store_delivery_seen(srv->store, delivery, &seen)) != SPELL_OK)
        return rc;
    if (seen)
        return SPELL_OK;
    if (strcmp(event, "workflow_run") == 0) {
        if (spell_json_parse(body, len, &lim, &j, NULL, 0) != SPELL_OK || !cJSON_IsObject(j)) {
            *status = 400;
            rc = SPELL_OK;
            goto out;
        }
        if ((rc = on_workflow_run(srv, j)) != SPELL_OK)
            goto out;
    }
    rc = store_delivery_record(srv->store, delivery, event, srv_now_ms(&srv->clock));
    if (rc == STORE_ECONFLICT)
        rc = SPELL_OK;
out:
    cJSON_Delete(j);
    return rc;
}

static bool header_word(const char *s, size_t max)
{
    size_t n;

    if (!s)
        return false;
    n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static int webhook_handler(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const char *secret = srv->providers.github_webhook_secret;
    const char *sig = httpd_request_header(req, "X-Hub-Signature-256");
    const char *event = httpd_request_header(req, "X-GitHub-Event");
    const char *delivery = httpd_request_header(req, "X-GitHub-Delivery");
    const char *body;
    size_t len = 0;
    int status = 200, rc;

    if (!secret || !secret[0])
        return httpd_response_error(SPELL_ERR_NOT_FOUND,
                                    "GitHub webhooks are not configured on this server", NULL,
                                    out);
    body = httpd_request_body(req, &len);
    if (!sig || spell_github_signature_verify(secret, body ? body : "", len, sig) != SPELL_OK)
        return httpd_response_error(SPELL_ERR_UNAUTHORIZED,
                                    "the X-Hub-Signature-256 signature is missing or wrong",
                                    NULL, out);
    if (!header_word(event, 64) || !header_word(delivery, 90))
        return httpd_response_error(SPELL_ERR_VALIDATION_ERROR,
                                    "X-GitHub-Event and X-GitHub-Delivery are required", NULL,
                                    out);
    if (strcmp(event, "ping") == 0)
        return httpd_response_json_str(200, "{\"ok\":true}", out);
    rc = workflow_webhook(srv, event, delivery, body ? body : "", len, &status);
    if (rc != SPELL_OK)
        return rc;
    if (status == 400)
        return httpd_response_error(SPELL_ERR_VALIDATION_ERROR,
                                    "the body is not a JSON object", NULL, out);
    return httpd_response_json_str(200, "{\"ok\":true}", out);
}

static const struct route workflow_rows[] = {
    {"POST", "/webhooks/github", webhook_handler, NULL, 0, WORKFLOW_WEBHOOK_MAX},
};

int workflow_routes(struct server *srv, const struct route **rows, size_t *n)
{
    if (!srv || !rows || !n)
        return SPELL_EINVAL;
    *rows = workflow_rows;
    *n = sizeof workflow_rows / sizeof workflow_rows[0];
    return SPELL_OK;
}
