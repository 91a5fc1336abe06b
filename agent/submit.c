/*
 * Submitting casts: from a pending row to a cast the server accepted.
 *
 * submit_pump() takes the oldest due pending rows, at most
 * max_concurrent at a time, marks each submitting (committed), and starts
 * POST /v1/spells/{key}:cast with the row's stored Idempotency-Key on the
 * loop's curl multi (sender.c).  submit_job_done() applies each answer,
 * in the loop thread:
 *
 *   202                          -> queued, with the cast id and estimate;
 *                                   following starts (follow.c)
 *   no answer, 5xx, 429, 409
 *   IDEMPOTENCY_IN_PROGRESS      -> pending again, due after a backoff
 *                                   with full jitter (1 s base, 5 min cap),
 *                                   or after Retry-After when longer
 *   402 and any other 4xx        -> rejected, with the server's code,
 *                                   message and status; 402 notifies
 *
 * Crash safety comes from the order of writes: the key is stored with the
 * row before the first send, and a row left submitting by a crash goes
 * back to pending on the next start; its resend carries the same key, so
 * the server answers with the cast it made the first time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "spell/models.h"

#include "agent.h"

static void set_error(struct lcast *c, const char *code, const char *message, int status)
{
    free(c->error_code);
    free(c->error_message);
    c->error_code = code ? strdup(code) : NULL;
    c->error_message = message ? strdup(message) : NULL;
    c->error_status = status;
}

static int make_job(struct agent *a, const struct lcast *c, struct sender_job **out)
{
    struct sender_job *j = calloc(1, sizeof(*j));
    cJSON *body = NULL, *inputs = NULL;
    char url[SPELL_HTTP_MAX_URL];
    int rc = SPELL_ENOMEM;

    *out = NULL;
    if (!j)
        goto out;
    j->kind = SENDER_SUBMIT;
    snprintf(j->local_id, sizeof(j->local_id), "%s", c->local_id);
    if ((size_t)snprintf(url, sizeof(url), "%s/v1/spells/%s:cast", a->opt.api_url, c->spell) >=
        sizeof(url)) {
        rc = SPELL_ETOOBIG;
        goto out;
    }
    if (spell_json_parse(c->inputs, strlen(c->inputs), NULL, &inputs, NULL, 0) != SPELL_OK) {
        rc = SPELL_EPARSE;
        goto out;
    }
    body = cJSON_CreateObject();
    if (!body)
        goto out;
    cJSON_AddItemToObject(body, "inputs", inputs);
    inputs = NULL;
    if ((c->mode && spell_json_add_string(body, "mode", c->mode)) ||
        (c->has_budget_cap && spell_json_add_int64(body, "budget_cap_cents", c->budget_cap_cents)))
        goto out;
    j->url = strdup(url);
    j->bearer = strdup(a->token);
    j->body = cJSON_PrintUnformatted(body);
    j->idem_header = malloc(strlen("Idempotency-Key: ") + AGENT_IDEM_KEY_LEN + 1);
    if (!j->url || !j->bearer || !j->body || !j->idem_header)
        goto out;
    j->body_len = strlen(j->body);
    sprintf(j->idem_header, "Idempotency-Key: %s", c->idem_key);
    *out = j;
    j = NULL;
    rc = SPELL_OK;
out:
    cJSON_Delete(inputs);
    cJSON_Delete(body);
    sender_job_free(j);
    return rc;
}

void submit_pump(struct agent *a)
{
    while (!a->stopping && creds_token(a) && a->in_flight < a->opt.max_concurrent) {
        struct lcast c;
        struct sender_job *job = NULL;
        int rc = queue_next_due(a->queue, spell_time_now_ms(), &c);

        if (rc != SPELL_OK) {
            if (rc != SPELL_ENOTFOUND)
                agent_log("queue: cannot read the next cast");
            return;
        }
        rc = make_job(a, &c, &job);
        if (rc != SPELL_OK) {
            /* Nothing that a retry could mend (an unreadable row). */
            agent_log("cast %s: cannot be sent (%s)", c.local_id, spell_strerror(rc));
            c.state = LCAST_FAILED;
            c.finished_at = spell_time_now_ms();
            set_error(&c, "AGENT_ERROR", "the agent could not build the request", 0);
            if (queue_update(a->queue, &c) == SPELL_OK)
                events_emit(a, "cast.failed", &c, 0, NULL);
            lcast_free(&c);
            if (rc == SPELL_ENOMEM)
                return;
            continue;
        }
        c.state = LCAST_SUBMITTING;
        c.attempts++;
        c.next_attempt_at = 0;
        if (queue_update(a->queue, &c) != SPELL_OK || sender_post(a, job) != SPELL_OK) {
            sender_job_free(job);
            lcast_free(&c);
            return;
        }
        a->in_flight++;
        lcast_free(&c);
    }
}

int64_t submit_next_due(struct agent *a)
{
    int64_t t = 0;

    if (a->stopping || !creds_token(a) || a->in_flight >= a->opt.max_concurrent)
        return 0;
    if (queue_next_due_time(a->queue, &t) != SPELL_OK)
        return 0;
    return t;
}

/* The answer body's error code, or NULL; *eb is filled when parsed. */
static void parse_error(const char *body, size_t len, struct spell_error_body *eb)
{
    cJSON *j = NULL;

    memset(eb, 0, sizeof(*eb));
    if (body && spell_json_parse(body, len, NULL, &j, NULL, 0) == SPELL_OK)
        spell_error_body_from_json(j, eb, NULL, 0);
    cJSON_Delete(j);
}

static void retry_later(struct agent *a, struct lcast *c, long retry_after_ms, const char *why)
{
    long delay = spell_http_backoff_ms(c->attempts > 0 ? c->attempts - 1 : 0, AGENT_RETRY_BASE_MS,
                                       AGENT_RETRY_MAX_MS, agent_random32());

    if (retry_after_ms > delay)
        delay = retry_after_ms > AGENT_RETRY_MAX_MS ? AGENT_RETRY_MAX_MS : retry_after_ms;
    c->state = LCAST_PENDING;
    c->next_attempt_at = spell_time_now_ms() + delay;
    agent_log("cast %s: %s; retry %d in %ld ms", c->local_id, why, c->attempts, delay);
}

static void accepted(struct agent *a, struct lcast *c, const struct sender_job *j)
{
    cJSON *body = NULL;
    char *cast_id = NULL;
    int64_t est = 0;
    bool has_est = false;
    char err[128];
    struct spell_json_at at = {NULL, "", err, sizeof(err)};

    if (spell_json_parse(spell_buf_str(&j->resp), j->resp.len, NULL, &body, NULL, 0) ==
        SPELL_OK) {
        at.obj = body;
        if (spell_json_get_string(&at, "cast_id", SPELL_JSON_REQUIRED, SPELL_CAST_ID_LEN,
                                  &cast_id) != SPELL_OK ||
            !spell_cast_id_valid(cast_id)) {
            free(cast_id);
            cast_id = NULL;
        }
        spell_json_get_int64(&at, "estimated_cost_cents", SPELL_JSON_OPTIONAL, &est, &has_est);
    }
    cJSON_Delete(body);
    if (!cast_id) {
        retry_later(a, c, -1, "the server's 202 carries no cast id");
        return;
    }
    free(c->cast_id);
    c->cast_id = cast_id;
    c->state = LCAST_QUEUED;
    c->has_estimate = has_est;
    c->estimated_cost_cents = est;
    /* The inputs served their purpose: a retry is no longer needed. */
    free(c->inputs);
    c->inputs = strdup("{}");
}

static void apply_submit(struct agent *a, struct sender_job *j)
{
    struct lcast c;
    struct spell_error_body eb;
    const char *kind = NULL;
    char why[SPELL_HTTP_ERROR_SIZE + 32];

    a->in_flight--;
    if (queue_get(a->queue, j->local_id, &c) != SPELL_OK) {
        agent_log("cast %s: answered but no longer in the queue", j->local_id);
        return;
    }
    if (c.state != LCAST_SUBMITTING) {
        lcast_free(&c);
        return;
    }
    memset(&eb, 0, sizeof(eb));
    if (j->rc != SPELL_OK) {
        snprintf(why, sizeof(why), "no answer (%s)", j->error[0] ? j->error : spell_strerror(j->rc));
        retry_later(a, &c, -1, why);
    } else if (j->status == 202 || j->status == 200) {
        accepted(a, &c, j);
        if (c.state == LCAST_QUEUED)
            kind = "cast.accepted";
    } else {
        parse_error(spell_buf_str(&j->resp), j->resp.len, &eb);
        if (j->status >= 500 || j->status == 429 ||
            (j->status == 409 && eb.code && strcmp(eb.code, "IDEMPOTENCY_IN_PROGRESS") == 0)) {
            snprintf(why, sizeof(why), "the server answered %d", j->status);
            retry_later(a, &c, j->retry_after_ms, why);
        } else {
            const char *code = eb.code ? eb.code : "HTTP_ERROR";
            const char *msg = eb.message ? eb.message
                                         : spell_api_error_sentence(code, j->status);

            c.state = LCAST_REJECTED;
            c.finished_at = spell_time_now_ms();
            set_error(&c, code, msg, j->status);
            kind = "cast.rejected";
            agent_log("cast %s: rejected by the server: %d %s", c.local_id, j->status, code);
        }
    }
    if (queue_update(a->queue, &c) != SPELL_OK) {
        agent_log("cast %s: the queue cannot be written", c.local_id);
        goto out;
    }
    if (kind)
        events_emit(a, kind, &c, 0, NULL);
    if (c.state == LCAST_REJECTED) {
        if (j->status == 402)
            events_notify_final(a, &c);
    } else if (c.state == LCAST_QUEUED) {
        if (c.cancel_requested && submit_cancel(a, &c, NULL) != SPELL_OK)
            agent_log("cast %s: the cancel could not be sent", c.local_id);
        if (follow_start(a, &c) != SPELL_OK)
            agent_log("cast %s: cannot be followed", c.local_id);
    }
out:
    spell_error_body_free(&eb);
    lcast_free(&c);
}

int submit_cancel(struct agent *a, const struct lcast *c, struct rpc_call *call)
{
    struct sender_job *j = calloc(1, sizeof(*j));
    char url[SPELL_HTTP_MAX_URL];

    if (!j)
        return SPELL_ENOMEM;
    j->kind = SENDER_CANCEL;
    j->call = call;
    snprintf(j->local_id, sizeof(j->local_id), "%s", c->local_id);
    snprintf(url, sizeof(url), "%s/v1/casts/%s:cancel", a->opt.api_url, c->cast_id);
    j->url = strdup(url);
    j->bearer = strdup(a->token ? a->token : "");
    if (!j->url || !j->bearer || sender_post(a, j) != SPELL_OK) {
        sender_job_free(j);
        return SPELL_ENOMEM;
    }
    return SPELL_OK;
}

static void apply_cancel(struct agent *a, struct sender_job *j)
{
    struct lcast c;
    cJSON *res;

    if (queue_get(a->queue, j->local_id, &c) != SPELL_OK) {
        if (j->call)
            rpc_error(a, j->call, AGENT_ERR_NO_SUCH_CAST, "no such cast", NULL);
        return;
    }
    if (j->rc != SPELL_OK) {
        if (j->call)
            rpc_error(a, j->call, AGENT_ERR_UNREACHABLE, "the server cannot be reached", NULL);
        else
            agent_log("cast %s: the cancel got no answer", c.local_id);
    } else if (j->status != 202 && j->status != 200) {
        if (j->call)
            rpc_error_server(a, j->call, j->status, spell_buf_str(&j->resp), j->resp.len);
        else
            agent_log("cast %s: the server refused the cancel (%d)", c.local_id, j->status);
    } else {
        /* The answer is the cast; apply it as a poll would. */
        if (follow_apply_cast(a, spell_buf_str(&j->resp), j->resp.len, &c) != SPELL_OK)
            agent_log("cast %s: the cancel's answer is not a cast", c.local_id);
        if (j->call) {
            res = lcast_to_json(&c);
            if (res)
                rpc_reply(a, j->call, res);
            else
                rpc_error(a, j->call, AGENT_ERR_INTERNAL, "out of memory", NULL);
        }
    }
    lcast_free(&c);
}

void submit_job_done(struct agent *a, struct sender_job *j)
{
    if (j->kind == SENDER_SUBMIT)
        apply_submit(a, j);
    else
        apply_cancel(a, j);
    submit_pump(a);
}
