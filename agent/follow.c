/*
 * Following accepted casts to their end, all on the loop's curl multi.
 *
 * Each cast that is queued or running has one struct follow.  It opens
 * GET /v1/casts/{id}/events (Accept: text/event-stream, Last-Event-ID:
 * the row's last_event_id) and feeds the body to core's SSE parser.  Each
 * event with a seq past the last one applied updates the row (committed
 * with its seq, so a restart resumes exactly after it) and is fanned out
 * by events.c; a terminal event ends the follow and raises the
 * notification.  A budget.soft_limit event raises its own.
 *
 * A stream that brings nothing (not even the server's 15 s ping) for
 * FOLLOW_IDLE_S is cut by follow_tick(), which walks the follows at most
 * every FOLLOW_TICK_MS anyway.  This is deliberately not curl's low-speed
 * check: curl re-arms a one-second timer per transfer for it, which woke
 * the loop every second, idle or not, for a turn in which curl is handed
 * every transfer whose one-second timer expired.
 *
 * When a stream ends without a terminal event it is opened again after a
 * short backoff; a connection that delivered events resets the count.
 * After AGENT_STREAM_FAILURES_MAX failures in a row the follow polls GET
 * /v1/casts/{id} every AGENT_POLL_INTERVAL_MS instead; a poll that
 * answers and shows the cast not yet final sends it back to the stream
 * (which then replays what was missed, so no event is lost).  A 204 from
 * the stream means the cast finished and everything was seen: one GET of
 * the cast gives the final state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "spell/models.h"

#include "agent.h"

/* Caps of the SSE parser: one line and one event's data. */
#define FOLLOW_SSE_MAX_LINE (64 * 1024)
#define FOLLOW_SSE_MAX_EVENT (256 * 1024)
/* A stream sending nothing (not even the 15 s ping) for this long is
 * considered dead. */
#define FOLLOW_IDLE_S 45L

enum follow_phase {
    FOLLOW_WAIT,        /* nothing open; next_at says when to act */
    FOLLOW_STREAM,      /* the SSE stream is open */
    FOLLOW_GET,         /* a GET of the cast is in flight */
};

struct follow {
    struct follow *next;
    struct agent *a;
    char local_id[AGENT_LOCAL_ID_MAX + 1];
    char cast_id[SPELL_CAST_ID_LEN + 1];
    enum follow_phase phase;
    struct spell_http_stream *stream;
    struct spell_sse_parser sse;
    /* The last seq applied; the next stream resumes after it. */
    int64_t last_seq;
    int64_t next_at;
    /* Failed streams in a row. */
    int failures;
    /* Polling instead of streaming. */
    bool polling;
    /* The cast reached its end: free the follow when the stream is done. */
    bool finished;
    /* Events applied on the current connection. */
    int events_this_stream;
    /* When the current stream last brought a byte (or opened). */
    int64_t last_data_at;
    /* The status of the current stream. */
    int status;
};

static void follow_free(struct agent *a, struct follow *f)
{
    for (struct follow **pp = &a->follows; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            a->n_follows--;
            break;
        }
    }
    spell_sse_parser_free(&f->sse);
    free(f);
}

static struct follow *follow_find(struct agent *a, const char *local_id)
{
    for (struct follow *f = a->follows; f; f = f->next) {
        if (strcmp(f->local_id, local_id) == 0)
            return f;
    }
    return NULL;
}

static void replace_str(char **dst, const char *src)
{
    char *n = src ? strdup(src) : NULL;

    if (src && !n)
        return;     /* keep the old value when memory runs out */
    free(*dst);
    *dst = n;
}

static void set_duration(struct lcast *c)
{
    if (c->started_at && c->finished_at >= c->started_at) {
        c->duration_ms = c->finished_at - c->started_at;
        c->has_duration = true;
    }
}

static const char *final_kind(enum lcast_state s)
{
    switch (s) {
    case LCAST_SUCCEEDED:
        return "cast.succeeded";
    case LCAST_FAILED:
        return "cast.failed";
    case LCAST_CANCELED:
        return "cast.canceled";
    default:
        return "cast.rejected";
    }
}

static enum lcast_state from_status(enum spell_cast_status s)
{
    switch (s) {
    case SPELL_CAST_QUEUED:
        return LCAST_QUEUED;
    case SPELL_CAST_RUNNING:
        return LCAST_RUNNING;
    case SPELL_CAST_SUCCEEDED:
        return LCAST_SUCCEEDED;
    case SPELL_CAST_FAILED:
        return LCAST_FAILED;
    default:
        return LCAST_CANCELED;
    }
}

int follow_apply_cast(struct agent *a, const char *body, size_t len, struct lcast *c)
{
    struct spell_cast sc = {0};
    cJSON *j = NULL;
    bool was_final = lcast_state_is_final(c->state);
    int rc = SPELL_EPARSE;

    if (spell_json_parse(body, len, NULL, &j, NULL, 0) != SPELL_OK ||
        spell_cast_from_json(j, &sc, NULL, 0) != SPELL_OK)
        goto out;
    if (!was_final)
        c->state = from_status(sc.status);
    c->progress = sc.progress;
    replace_str(&c->message, sc.message);
    c->has_estimate = true;
    c->estimated_cost_cents = sc.estimated_cost_cents;
    c->has_cost = sc.has_cost;
    c->cost_cents = sc.cost_cents;
    replace_str(&c->artifact_url, sc.artifact_url);
    if (sc.has_error) {
        replace_str(&c->error_code, sc.error.code);
        replace_str(&c->error_message, sc.error.message);
        c->error_status = 0;
    }
    if (sc.started_at)
        c->started_at = sc.started_at;
    if (sc.finished_at)
        c->finished_at = sc.finished_at;
    c->has_duration = sc.has_duration;
    c->duration_ms = sc.duration_ms;
    if ((rc = queue_update(a->queue, c)) != SPELL_OK)
        goto out;
    if (!was_final && lcast_state_is_final(c->state)) {
        struct follow *f = follow_find(a, c->local_id);

        events_emit(a, final_kind(c->state), c, 0, NULL);
        events_notify_final(a, c);
        if (f) {
            f->finished = true;
            if (f->phase == FOLLOW_WAIT)
                follow_free(a, f);
            else if (f->phase == FOLLOW_STREAM)
                f->next_at = 0;
        }
    }
out:
    spell_cast_free(&sc);
    cJSON_Delete(j);
    return rc;
}

/* Applies one SSE event to the row.  Returns nonzero to stop the feed
 * (the cast is final, or the queue cannot be written). */
static int on_event(const struct spell_sse_event *ev, void *user)
{
    struct follow *f = user;
    struct agent *a = f->a;
    struct lcast c;
    cJSON *j = NULL;
    char err[128];
    struct spell_json_at at = {NULL, "", err, sizeof(err)};
    char *status = NULL, *message = NULL, *artifact = NULL;
    const cJSON *error = NULL;
    int64_t seq = 0, progress = 0, cost = 0, ts = 0;
    bool has_progress = false, has_cost = false, is_log, is_soft;
    enum spell_cast_status st;
    bool was_final;
    const char *kind = ev->type;
    int stop = 0;

    /* A seq is a plain decimal; anything else is not ours to apply. */
    for (size_t i = 0; i < ev->id_len; i++) {
        if (ev->id[i] < '0' || ev->id[i] > '9' || seq > SPELL_JSON_INT_MAX / 10)
            return 0;
        seq = seq * 10 + (ev->id[i] - '0');
    }
    if (seq <= f->last_seq)
        return 0;   /* seen already: resumes never double an event */
    if (queue_get(a->queue, f->local_id, &c) != SPELL_OK)
        return 1;
    was_final = lcast_state_is_final(c.state);
    is_log = strcmp(kind, "cast.log") == 0;
    is_soft = strcmp(kind, "budget.soft_limit") == 0;
    if (spell_json_parse(ev->data, ev->data_len, NULL, &j, NULL, 0) == SPELL_OK &&
        cJSON_IsObject(j)) {
        at.obj = j;
        spell_json_get_string(&at, "status", SPELL_JSON_OPTIONAL, SPELL_MODEL_ID_MAX, &status);
        spell_json_get_string(&at, "message", SPELL_JSON_OPTIONAL, SPELL_MODEL_TEXT_MAX, &message);
        spell_json_get_string(&at, "artifact_url", SPELL_JSON_OPTIONAL, SPELL_MODEL_URL_MAX,
                              &artifact);
        spell_json_get_int64_range(&at, "progress", SPELL_JSON_OPTIONAL, 0, 100, &progress,
                                   &has_progress);
        spell_json_get_int64(&at, "cost_cents", SPELL_JSON_OPTIONAL, &cost, &has_cost);
        spell_json_get_time(&at, "ts", SPELL_JSON_OPTIONAL, &ts, NULL);
        spell_json_get_object(&at, "error", SPELL_JSON_OPTIONAL, &error);
    }
    if (!was_final && status && spell_cast_status_parse(status, &st) == SPELL_OK)
        c.state = from_status(st);
    if (has_progress)
        c.progress = (int)progress;
    if (message && !is_log && !is_soft)
        replace_str(&c.message, message);
    if (strcmp(kind, "cast.started") == 0 && ts)
        c.started_at = ts;
    if (lcast_state_is_final(c.state) && !was_final) {
        c.finished_at = ts ? ts : spell_time_now_ms();
        set_duration(&c);
        if (has_cost) {
            c.has_cost = true;
            c.cost_cents = cost;
        }
        replace_str(&c.artifact_url, artifact);
        if (error) {
            const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
            const cJSON *msg = cJSON_GetObjectItemCaseSensitive(error, "message");

            replace_str(&c.error_code, cJSON_IsString(code) ? code->valuestring : "FAILED");
            replace_str(&c.error_message, cJSON_IsString(msg) ? msg->valuestring : NULL);
            c.error_status = 0;
        }
    }
    c.last_event_id = seq;
    /* The server replays from last_event_id: no fsync per event. */
    if (queue_update_progress(a->queue, &c) != SPELL_OK) {
        stop = 1;
        goto out;
    }
    f->last_seq = seq;
    f->events_this_stream++;
    if (is_soft) {
        events_emit(a, "budget.soft_limit", &c, seq, NULL);
        events_notify(a, "Budget soft limit reached",
                      message && message[0] ? message
                                            : "This month's spending passed your soft limit.",
                      true);
    } else if (lcast_state_is_final(c.state) && !was_final) {
        events_emit(a, final_kind(c.state), &c, seq, NULL);
        events_notify_final(a, &c);
    } else if (strncmp(kind, "cast.", 5) == 0) {
        events_emit(a, kind, &c, seq, is_log ? message : NULL);
    }
    /* The stream is not cut at the terminal event: the server may send
     * budget.soft_limit after it, and ends the stream itself. */
    if (lcast_state_is_final(c.state))
        f->finished = true;
out:
    free(status);
    free(message);
    free(artifact);
    cJSON_Delete(j);
    lcast_free(&c);
    return stop;
}

static void schedule_retry(struct follow *f)
{
    int64_t now = spell_time_now_ms();
    long d;

    if (f->polling) {
        f->next_at = now + AGENT_POLL_INTERVAL_MS;
        return;
    }
    d = spell_http_backoff_ms(f->failures > 0 ? f->failures - 1 : 0, AGENT_STREAM_RETRY_BASE_MS,
                              AGENT_STREAM_RETRY_MAX_MS, agent_random32());
    if (d < 100)
        d = 100;
    f->next_at = now + d;
}

static int stream_headers(struct spell_http_stream *s, int status, void *user)
{
    struct follow *f = user;

    f->status = status;
    f->last_data_at = spell_time_now_ms();
    return 0;
}

static int stream_data(struct spell_http_stream *s, const char *data, size_t len, void *user)
{
    struct follow *f = user;
    int rc;

    f->last_data_at = spell_time_now_ms();
    if (f->status != 200)
        return 0;   /* an error body; read and dropped */
    rc = spell_sse_feed(&f->sse, data, len);
    return rc == SPELL_OK ? 0 : 1;
}

static int start_get(struct follow *f);

/* The stream is over (closed, failed, or cut for idling): decide what
 * comes next. */
static void stream_ended(struct follow *f, int rc, int status, const char *error)
{
    struct agent *a = f->a;

    f->stream = NULL;
    f->phase = FOLLOW_WAIT;
    spell_sse_parser_reset_stream(&f->sse);
    if (f->finished) {
        follow_free(a, f);
        return;
    }
    if (a->stopping)
        return;
    if (rc == SPELL_OK && status == 204) {
        /* Finished, and every event seen: the cast itself gives the end. */
        if (start_get(f) != SPELL_OK)
            schedule_retry(f);
        return;
    }
    if (f->events_this_stream > 0)
        f->failures = 0;
    else
        f->failures++;
    if (status == 404 || status == 401 || status == 403) {
        /* The poll tells the whole story (and ends a cast that is gone). */
        f->polling = true;
    } else if (f->failures >= AGENT_STREAM_FAILURES_MAX && !f->polling) {
        agent_log("cast %s: the progress stream failed %d times (%s); polling every %ld s",
                  f->local_id, f->failures, error && error[0] ? error : "no events",
                  AGENT_POLL_INTERVAL_MS / 1000);
        f->polling = true;
    }
    schedule_retry(f);
}

static void stream_done(struct spell_http_stream *s, int rc, int status, const char *error,
                        void *user)
{
    stream_ended(user, rc, status, error);
}

static int start_stream(struct follow *f)
{
    struct agent *a = f->a;
    struct spell_http_stream_config cfg = {0};
    char url[SPELL_HTTP_MAX_URL];
    char last[64];
    const char *hdrs[2];
    size_t n = 0;
    int rc;

    snprintf(url, sizeof(url), "%s/v1/casts/%s/events", a->opt.api_url, f->cast_id);
    hdrs[n++] = "Accept: text/event-stream";
    if (f->last_seq > 0) {
        snprintf(last, sizeof(last), "Last-Event-ID: %lld", (long long)f->last_seq);
        hdrs[n++] = last;
    }
    cfg.url = url;
    cfg.bearer = a->token;
    cfg.headers = hdrs;
    cfg.n_headers = n;
    cfg.on_headers = stream_headers;
    cfg.on_data = stream_data;
    cfg.on_done = stream_done;
    cfg.user = f;
    f->status = 0;
    f->events_this_stream = 0;
    f->last_data_at = spell_time_now_ms();
    rc = spell_http_multi_add(a->multi, &cfg, &f->stream);
    if (rc == SPELL_OK)
        f->phase = FOLLOW_STREAM;
    return rc;
}

static void get_done(struct agent *a, int rc, int status, const char *body, size_t len,
                     void *user)
{
    struct follow *f = user;
    struct lcast c;

    f->phase = FOLLOW_WAIT;
    if (rc == SPELL_EABORT)
        return;     /* the agent is stopping; follow_stop_all frees f */
    if (rc == SPELL_OK && status == 200 && queue_get(a->queue, f->local_id, &c) == SPELL_OK) {
        if (follow_apply_cast(a, body, len, &c) == SPELL_OK) {
            bool final = lcast_state_is_final(c.state);

            lcast_free(&c);
            if (final) {
                /* follow_apply_cast freed f already when it was waiting. */
                return;
            }
            /* The server answers: back to the stream, which replays. */
            f->polling = false;
            f->failures = 0;
            f->next_at = 0;
            return;
        }
        lcast_free(&c);
    } else if (rc == SPELL_OK && status == 404 &&
               queue_get(a->queue, f->local_id, &c) == SPELL_OK) {
        /* The server no longer knows the cast (the account was erased). */
        c.state = LCAST_FAILED;
        c.finished_at = spell_time_now_ms();
        replace_str(&c.error_code, "CAST_NOT_FOUND");
        replace_str(&c.error_message, "the server no longer knows this cast");
        c.error_status = 404;
        if (queue_update(a->queue, &c) == SPELL_OK) {
            events_emit(a, "cast.failed", &c, 0, NULL);
            events_notify_final(a, &c);
        }
        lcast_free(&c);
        follow_free(a, f);
        return;
    }
    f->polling = true;
    schedule_retry(f);
}

static int start_get(struct follow *f)
{
    char path[64];
    int rc;

    snprintf(path, sizeof(path), "/v1/casts/%s", f->cast_id);
    rc = http_get_start(f->a, path, f->a->token, get_done, f);
    if (rc == SPELL_OK)
        f->phase = FOLLOW_GET;
    return rc;
}

int follow_start(struct agent *a, const struct lcast *c)
{
    struct follow *f;
    int rc;

    if (!c->cast_id || follow_find(a, c->local_id))
        return SPELL_OK;
    f = calloc(1, sizeof(*f));
    if (!f)
        return SPELL_ENOMEM;
    f->a = a;
    snprintf(f->local_id, sizeof(f->local_id), "%s", c->local_id);
    snprintf(f->cast_id, sizeof(f->cast_id), "%s", c->cast_id);
    f->last_seq = c->last_event_id;
    rc = spell_sse_parser_init(&f->sse, FOLLOW_SSE_MAX_LINE, FOLLOW_SSE_MAX_EVENT, on_event, NULL,
                               f);
    if (rc != SPELL_OK) {
        spell_sse_parser_free(&f->sse);
        free(f);
        return rc;
    }
    f->next = a->follows;
    a->follows = f;
    a->n_follows++;
    /* Its stream opens on the next turn, not a tick later: a cast that
     * ends at once still has its events (budget.soft_limit among them)
     * read from the stream. */
    a->follow_tick_at = 0;
    return SPELL_OK;
}

int64_t follow_tick(struct agent *a, int64_t now)
{
    int64_t next = 0;

    if (a->stopping)
        return 0;
    for (struct follow *f = a->follows, *nf; f; f = nf) {
        nf = f->next;
        if (f->phase == FOLLOW_STREAM && f->stream) {
            int64_t idle_at = f->last_data_at + FOLLOW_IDLE_S * 1000;

            if (now >= idle_at) {
                spell_http_multi_remove(a->multi, f->stream);
                /* May free f (a finished cast). */
                stream_ended(f, SPELL_ETIMEOUT, f->status, "no data for 45 s");
                continue;
            }
            if (!next || idle_at < next)
                next = idle_at;
            continue;
        }
        if (f->phase != FOLLOW_WAIT)
            continue;
        if (f->finished) {
            follow_free(a, f);
            continue;
        }
        if (f->next_at <= now && creds_token(a)) {
            int rc = f->polling ? start_get(f) : start_stream(f);

            if (rc != SPELL_OK) {
                f->failures++;
                schedule_retry(f);
            }
        }
        if (f->phase == FOLLOW_WAIT && f->next_at && (!next || f->next_at < next))
            next = f->next_at;
    }
    return next;
}

void follow_stop_all(struct agent *a)
{
    while (a->follows) {
        struct follow *f = a->follows;

        if (f->stream)
            spell_http_multi_remove(a->multi, f->stream);
        follow_free(a, f);
    }
}
