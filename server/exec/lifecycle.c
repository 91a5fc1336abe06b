/*
 * The cast lifecycle (lifecycle.h): store transition, then publication of
 * the events the store wrote, then metrics.
 *
 * Publication reads the cast's events after the last seq the bus has
 * published and hands them to bus_publish() in order.  It holds one event
 * back until it knows whether another follows, so the stream's last event
 * is the one marked terminal: normally the cast.succeeded / failed /
 * canceled event, or the budget.soft_limit event that may follow a
 * settlement.
 *
 * The cast's bus lock (bus_lock_cast) also orders the writes that could
 * otherwise land after the terminal event: lifecycle_log reads the cast's
 * state and appends under it, and the terminal transitions run under it,
 * so a log line racing a cancel is either stored before the terminal event
 * or refused.  The lock is the cast's own (bus.c), so the transitions of
 * different casts do not wait for one another here.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"
#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "spell/utf8.h"

#include "bus.h"
#include "exec-impl.h"
#include "lifecycle.h"
#include "metrics.h"
#include "server.h"
#include "store.h"

#define CANCEL_CODE "CANCELED"
#define CANCEL_MESSAGE "the cast was canceled"

/* ---- Text ------------------------------------------------------------- */

static size_t utf8_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xf0)
        return 4;
    if (c >= 0xe0)
        return 3;
    return 2;
}

void lifecycle_text_clean(const char *in, size_t len, char *out, size_t outsize)
{
    size_t i = 0, o = 0, good, n;

    if (!outsize)
        return;
    while (i < len && o + 1 < outsize) {
        good = spell_utf8_scan(in + i, len - i, NULL);
        if (good == 0) {
            out[o++] = '?';
            i++;
            continue;
        }
        n = utf8_len((unsigned char)in[i]);
        if (o + n >= outsize)
            break;
        if (n == 1) {
            unsigned char c = (unsigned char)in[i];
            out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
        } else {
            memcpy(out + o, in + i, n);
            o += n;
        }
        i += n;
    }
    out[o] = '\0';
}

/* ---- Publication ------------------------------------------------------ */

static bool terminal_type(const char *type)
{
    return strcmp(type, "cast.succeeded") == 0 || strcmp(type, "cast.failed") == 0 ||
           strcmp(type, "cast.canceled") == 0;
}

/* One event held back until the next one (or the end) is seen. */
struct pending {
    struct bus *bus;
    const char *cast_id;
    bool held;
    int64_t seq;
    char type[STORE_EVENT_TYPE_SIZE];
    struct spell_buf data;
    bool finished;          /* a terminal-type event was read */
    int64_t published;      /* the highest seq handed to the bus */
    int rc;                 /* the first publish failure */
};

static void pending_flush(struct pending *p, int terminal)
{
    int rc;

    if (!p->held)
        return;
    rc = bus_publish(p->bus, p->cast_id, p->seq, p->type, spell_buf_str(&p->data), terminal);
    if (rc != SPELL_OK && p->rc == SPELL_OK)
        p->rc = rc;
    p->published = p->seq;
    p->held = false;
}

static int pending_event(void *ud, const struct store_event *e)
{
    struct pending *p = ud;

    pending_flush(p, 0);
    spell_buf_reset(&p->data);
    if (spell_buf_add(&p->data, e->data, e->data_len) != SPELL_OK) {
        /* Cannot happen under the store's own cap; skip rather than stall. */
        if (p->rc == SPELL_OK)
            p->rc = SPELL_ETOOBIG;
        p->published = e->seq;
        return 0;
    }
    p->seq = e->seq;
    snprintf(p->type, sizeof p->type, "%s", e->type);
    p->held = true;
    if (terminal_type(e->type))
        p->finished = true;
    return 0;
}

/* With the cast's bus lock held. */
static int publish_locked(struct server *srv, const char *cast_id)
{
    struct pending p;
    int rc;

    memset(&p, 0, sizeof p);
    p.bus = srv->bus;
    p.cast_id = cast_id;
    /* Event data is capped by the store at STORE_EVENT_DATA_MAX. */
    spell_buf_init(&p.data, STORE_EVENT_DATA_MAX + 1);
    p.published = bus_seq_get(srv->bus, cast_id);
    rc = store_events_after(srv->store, cast_id, p.published, 0, pending_event, &p);
    pending_flush(&p, p.finished);
    if (p.published > 0)
        bus_seq_put(srv->bus, cast_id, p.published, p.finished);
    spell_buf_free(&p.data);
    if (rc == SPELL_OK)
        rc = p.rc;
    return rc;
}

int lifecycle_publish_pending(struct server *srv, const char *cast_id)
{
    int rc;

    if (!srv || !cast_id)
        return SPELL_EINVAL;
    if (!srv->bus)
        return SPELL_OK;
    bus_lock_cast(srv->bus, cast_id);
    rc = publish_locked(srv, cast_id);
    bus_unlock_cast(srv->bus, cast_id);
    return rc;
}

/* ---- Metrics ---------------------------------------------------------- */

static void count_status(struct server *srv, const char *mode, const char *status)
{
    const struct exec_metrics *m = exec_metrics_of(srv->exec);
    const char *v[2] = {mode, status};

    if (m && m->casts)
        metrics_add(m->casts, v, 1);
}

/* After a terminal transition: the status counter and the run time. */
static void count_finish(struct server *srv, const char *cast_id, const char *status,
                         const char *err_code)
{
    const struct exec_metrics *m = exec_metrics_of(srv->exec);
    struct store_cast c;
    const char *v[1];

    if (!m)
        return;
    if (store_cast_get(srv->store, cast_id, NULL, &c) != SPELL_OK)
        return;
    count_status(srv, c.mode, status);
    v[0] = c.mode;
    if (m->run_seconds && c.started_at > 0 && c.duration_ms >= 0)
        metrics_observe(m->run_seconds, v, (double)c.duration_ms / 1000.0);
    v[0] = err_code;
    if (err_code && m->errors)
        metrics_add(m->errors, v, 1);
    store_cast_clear(&c);
}

/* ---- Transitions ------------------------------------------------------ */

static int64_t now_of(struct server *srv)
{
    return srv_now_ms(&srv->clock);
}

int lifecycle_start(struct server *srv, const char *cast_id, const char *run_url)
{
    struct store_cast c;
    int rc;

    if (!srv || !cast_id)
        return SPELL_EINVAL;
    rc = store_cast_start(srv->store, cast_id, run_url, now_of(srv));
    if (rc != SPELL_OK)
        return rc;
    if (exec_metrics_of(srv->exec) && store_cast_get(srv->store, cast_id, NULL, &c) == SPELL_OK) {
        count_status(srv, c.mode, "running");
        store_cast_clear(&c);
    }
    (void)lifecycle_publish_pending(srv, cast_id);
    return SPELL_OK;
}

int lifecycle_progress(struct server *srv, const char *cast_id, int progress,
                       const char *message)
{
    char clean[LIFECYCLE_MESSAGE_MAX + 1];
    int rc;

    if (!srv || !cast_id)
        return SPELL_EINVAL;
    if (progress < 0)
        progress = 0;
    if (progress > 100)
        progress = 100;
    if (message)
        lifecycle_text_clean(message, strlen(message), clean, sizeof clean);
    rc = store_cast_progress(srv->store, cast_id, progress, message ? clean : NULL,
                             now_of(srv));
    if (rc != SPELL_OK)
        return rc;
    (void)lifecycle_publish_pending(srv, cast_id);
    return SPELL_OK;
}

int lifecycle_start_progress(struct server *srv, const char *cast_id, const char *run_url,
                             int progress, const char *message)
{
    char clean[LIFECYCLE_MESSAGE_MAX + 1];
    struct store_cast c;
    int rc;

    if (!srv || !cast_id)
        return SPELL_EINVAL;
    if (progress < 0)
        progress = 0;
    if (progress > 100)
        progress = 100;
    if (message)
        lifecycle_text_clean(message, strlen(message), clean, sizeof clean);
    rc = store_cast_start_progress(srv->store, cast_id, run_url, progress,
                                   message ? clean : NULL, now_of(srv));
    if (rc != SPELL_OK)
        return rc;
    if (exec_metrics_of(srv->exec) && store_cast_get(srv->store, cast_id, NULL, &c) == SPELL_OK) {
        count_status(srv, c.mode, "running");
        store_cast_clear(&c);
    }
    (void)lifecycle_publish_pending(srv, cast_id);
    return SPELL_OK;
}

static bool finished_status(const char *status)
{
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
           strcmp(status, "canceled") == 0;
}

/* The data of a cast.log event: the common fields with the line as message. */
static int log_data(const struct store_cast *c, const char *line, int64_t now,
                    struct spell_buf *out)
{
    int rc = SPELL_ENOMEM;
    cJSON *o = cJSON_CreateObject();
    char *txt = NULL;

    if (!o || spell_json_add_string(o, "cast_id", c->id) ||
        spell_json_add_string(o, "status", c->status) ||
        spell_json_add_int64(o, "progress", c->progress) ||
        spell_json_add_string(o, "message", line) || spell_json_add_time(o, "ts", now))
        goto out;
    if (!(txt = cJSON_PrintUnformatted(o)))
        goto out;
    rc = spell_buf_addstr(out, txt);
out:
    cJSON_free(txt);
    cJSON_Delete(o);
    return rc;
}

int lifecycle_log(struct server *srv, const char *cast_id, const char *line)
{
    char clean[LIFECYCLE_LOG_MAX + 1];
    struct store_cast c;
    struct spell_buf data;
    bool have_cast = false;
    int64_t now;
    int rc;

    if (!srv || !cast_id || !line)
        return SPELL_EINVAL;
    /* Room for the line escaped (6 bytes a character at worst) and the rest. */
    spell_buf_init(&data, 8 * 1024);
    lifecycle_text_clean(line, strlen(line), clean, sizeof clean);
    now = now_of(srv);
    if (srv->bus)
        bus_lock_cast(srv->bus, cast_id);
    if ((rc = store_cast_get(srv->store, cast_id, NULL, &c)) != SPELL_OK)
        goto out;
    have_cast = true;
    if (finished_status(c.status)) {
        rc = STORE_ECONFLICT;
        goto out;
    }
    if ((rc = log_data(&c, clean, now, &data)) != SPELL_OK)
        goto out;
    rc = store_event_append(srv->store, cast_id, "cast.log", spell_buf_str(&data), data.len,
                            now, NULL);
out:
    if (srv->bus)
        bus_unlock_cast(srv->bus, cast_id);
    if (have_cast)
        store_cast_clear(&c);
    spell_buf_free(&data);
    if (rc == SPELL_OK)
        (void)lifecycle_publish_pending(srv, cast_id);
    return rc;
}

/* The data of budget.soft_limit (see lifecycle.h). */
static int soft_limit_data(const char *cast_id, const struct store_settle_result *r,
                           int64_t now, struct spell_buf *out)
{
    int rc = SPELL_ENOMEM;
    cJSON *o = cJSON_CreateObject();
    char *txt = NULL;
    char msg[160];

    snprintf(msg, sizeof msg, "spending this month reached the soft limit of %lld cents",
             (long long)r->soft_limit_cents);
    if (!o || spell_json_add_string(o, "cast_id", cast_id) ||
        spell_json_add_string(o, "status", "succeeded") ||
        spell_json_add_int64(o, "progress", 100) || spell_json_add_string(o, "message", msg) ||
        spell_json_add_time(o, "ts", now) || spell_json_add_string(o, "period", r->period) ||
        spell_json_add_int64(o, "spent_cents", r->spent_cents) ||
        spell_json_add_int64(o, "soft_limit_cents", r->soft_limit_cents) ||
        spell_json_add_int64(o, "hard_limit_cents", r->hard_limit_cents))
        goto out;
    if (!(txt = cJSON_PrintUnformatted(o)))
        goto out;
    rc = spell_buf_addstr(out, txt);
out:
    cJSON_free(txt);
    cJSON_Delete(o);
    return rc;
}

int lifecycle_succeed(struct server *srv, const char *cast_id, int64_t cost_cents,
                      const char *artifact_url)
{
    struct store_settle_result r;
    struct spell_buf data;
    int64_t now;
    int rc;

    if (!srv || !cast_id || cost_cents < 0)
        return SPELL_EINVAL;
    if (artifact_url && !artifact_url[0])
        artifact_url = NULL;
    spell_buf_init(&data, 4096);
    now = now_of(srv);
    if (srv->bus)
        bus_lock_cast(srv->bus, cast_id);
    rc = store_cast_settle(srv->store, cast_id, cost_cents, artifact_url, now, &r);
    if (rc == SPELL_OK && r.soft_limit_crossed &&
        soft_limit_data(cast_id, &r, now, &data) == SPELL_OK)
        /* Best effort: the settlement stands even if the notice is lost. */
        (void)store_event_append(srv->store, cast_id, "budget.soft_limit",
                                 spell_buf_str(&data), data.len, now, NULL);
    /* The cast is settled whatever publication says: a stream that missed
     * an event reads it from the store when it resumes. */
    if (rc == SPELL_OK && srv->bus)
        (void)publish_locked(srv, cast_id);
    if (srv->bus)
        bus_unlock_cast(srv->bus, cast_id);
    spell_buf_free(&data);
    if (rc == SPELL_OK)
        count_finish(srv, cast_id, "succeeded", NULL);
    return rc;
}

static int release(struct server *srv, const char *cast_id, const char *status,
                   const char *code, const char *message)
{
    char clean[LIFECYCLE_MESSAGE_MAX + 1];
    int rc;

    if (!srv || !cast_id || !code || !code[0])
        return SPELL_EINVAL;
    lifecycle_text_clean(message ? message : "", message ? strlen(message) : 0, clean,
                         sizeof clean);
    if (srv->bus)
        bus_lock_cast(srv->bus, cast_id);
    rc = store_cast_release(srv->store, cast_id, status, code, clean, now_of(srv), NULL);
    if (rc == SPELL_OK && srv->bus)
        (void)publish_locked(srv, cast_id);
    if (srv->bus)
        bus_unlock_cast(srv->bus, cast_id);
    if (rc == SPELL_OK)
        count_finish(srv, cast_id, status, strcmp(status, "failed") == 0 ? code : NULL);
    return rc;
}

int lifecycle_fail(struct server *srv, const char *cast_id, const char *code,
                   const char *message)
{
    return release(srv, cast_id, "failed", code, message);
}

int lifecycle_cancel(struct server *srv, const char *cast_id)
{
    return release(srv, cast_id, "canceled", CANCEL_CODE, CANCEL_MESSAGE);
}
