/*
 * The SSE fan-out hub: see sse_hub.h for the data flow and the locking
 * rules.  Channels live in a fixed hash table of lists; a channel exists
 * while it has subscriptions.  An event is formatted once per publish and
 * then copied into each subscription's queue, so a reader never touches
 * shared memory and a slow client never holds a lock another stream needs.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/sse.h"

#include "sse_hub.h"

/* Buckets of the channel table; channels per bucket stay few even with
 * 10,000 open casts. */
#define HUB_BUCKETS 4096
/* Bytes of an event type. */
#define TYPE_MAX 64
/* Bytes of one formatted event: the data plus its field names, the id and
 * the type, with room for data split over many lines. */
#define EVENT_MAX (SSE_HUB_DATA_MAX * 2 + 256)

/* A live event that arrived while the backlog was being read. */
struct held {
    struct held *next;
    uint64_t seq;
    int terminal;
    size_t len;
    char text[];
};

struct channel {
    struct channel *next;           /* in its bucket */
    struct sse_sub *subs;           /* doubly linked through sub->prev/next */
    char name[SSE_HUB_CHANNEL_MAX + 1];
};

struct sse_sub {
    struct sse_hub *hub;
    struct channel *chan;
    struct sse_sub *prev, *next;    /* in chan->subs; guarded by the hub lock */
    pthread_mutex_t lock;           /* guards everything below */
    /* Bytes ready for the reader; freed whenever it drains, so an idle
     * stream holds no buffer. */
    struct spell_buf out;
    /* Live events queued before sse_sub_start(), oldest first. */
    struct held *held_head, *held_tail;
    size_t held_bytes;
    /* The highest seq accepted into out (after_seq at first). */
    uint64_t last_seq;
    /* Set by sse_sub_start(). */
    int started;
    /* No more events are accepted; the stream ends once out drains. */
    int ending;
    /* The queue overflowed before start: end right after the backlog. */
    int overflow;
    /* The reader found nothing and is waiting for the waker. */
    int idle;
    void (*wake)(void *ud);
    void *wake_ud;
};

struct sse_hub {
    pthread_mutex_t lock;
    pthread_cond_t cond;            /* wakes the ping thread to stop */
    pthread_t ping_thread;
    int64_t ping_ms;
    size_t max_queue;
    size_t max_subs;
    size_t count;                   /* subscriptions not yet released */
    int closing;                    /* sse_hub_shutdown() was called */
    int stop;                       /* the ping thread must exit */
    struct channel *buckets[HUB_BUCKETS];
};

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static struct channel **find_channel(struct sse_hub *hub, const char *name)
{
    struct channel **pp = &hub->buckets[name_hash(name) % HUB_BUCKETS];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Runs with sub->lock held. */
static void wake_locked(struct sse_sub *sub)
{
    if (sub->idle && sub->wake) {
        sub->idle = 0;
        sub->wake(sub->wake_ud);
    }
}

/* Appends one formatted event to out; called with sub->lock held.
 * Returns nonzero when the reader has something new to act on. */
static int accept_locked(struct sse_sub *sub, uint64_t seq, const char *text, size_t len,
                         int terminal)
{
    if (sub->ending || seq <= sub->last_seq)
        return 0;
    if (spell_buf_add(&sub->out, text, len) != SPELL_OK) {
        /* The client reads too slowly (or memory is short): end after
         * what is queued; it resumes from its last id. */
        sub->ending = 1;
        return 1;
    }
    sub->last_seq = seq;
    if (terminal)
        sub->ending = 1;
    return 1;
}

static void deliver_locked(struct sse_sub *sub, uint64_t seq, const char *text, size_t len,
                           int terminal)
{
    struct held *h;

    if (sub->started) {
        if (accept_locked(sub, seq, text, len, terminal))
            wake_locked(sub);
        return;
    }
    if (sub->ending || sub->overflow || seq <= sub->last_seq)
        return;
    if (sub->held_bytes + len > sub->out.cap || !(h = malloc(sizeof *h + len))) {
        sub->overflow = 1;
        return;
    }
    h->next = NULL;
    h->seq = seq;
    h->terminal = terminal;
    h->len = len;
    memcpy(h->text, text, len);
    if (sub->held_tail)
        sub->held_tail->next = h;
    else
        sub->held_head = h;
    sub->held_tail = h;
    sub->held_bytes += len;
}

static void *ping_main(void *arg)
{
    struct sse_hub *hub = arg;
    struct timespec deadline;

    pthread_mutex_lock(&hub->lock);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    while (!hub->stop) {
        deadline.tv_sec += hub->ping_ms / 1000;
        deadline.tv_nsec += (long)(hub->ping_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!hub->stop) {
            int err = pthread_cond_timedwait(&hub->cond, &hub->lock, &deadline);
            if (err == ETIMEDOUT)
                break;
        }
        if (hub->stop)
            break;
        for (size_t b = 0; b < HUB_BUCKETS; b++) {
            for (struct channel *c = hub->buckets[b]; c; c = c->next) {
                for (struct sse_sub *s = c->subs; s; s = s->next) {
                    pthread_mutex_lock(&s->lock);
                    /* A stream with bytes still queued is not idle and
                     * needs no keep-alive. */
                    if (s->started && !s->ending && s->out.len == 0 &&
                        spell_sse_write_comment(&s->out, "ping") == SPELL_OK)
                        wake_locked(s);
                    pthread_mutex_unlock(&s->lock);
                }
            }
        }
    }
    pthread_mutex_unlock(&hub->lock);
    return NULL;
}

int sse_hub_new(const struct sse_hub_config *cfg, struct sse_hub **out)
{
    int rc = SPELL_ENOMEM;
    struct sse_hub *hub = NULL;
    pthread_condattr_t attr;
    int have_lock = 0, have_cond = 0;

    *out = NULL;
    if (!(hub = calloc(1, sizeof *hub)))
        goto out;
    hub->ping_ms = cfg && cfg->ping_ms > 0 ? cfg->ping_ms : SSE_HUB_DEFAULT_PING_MS;
    hub->max_queue = cfg && cfg->max_queue ? cfg->max_queue : SSE_HUB_DEFAULT_QUEUE;
    hub->max_subs = cfg ? cfg->max_subs : 0;
    if (pthread_mutex_init(&hub->lock, NULL) != 0)
        goto out;
    have_lock = 1;
    if (pthread_condattr_init(&attr) != 0)
        goto out;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    have_cond = pthread_cond_init(&hub->cond, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!have_cond)
        goto out;
    if (pthread_create(&hub->ping_thread, NULL, ping_main, hub) != 0)
        goto out;
    *out = hub;
    hub = NULL;
    rc = SPELL_OK;
out:
    if (hub) {
        if (have_cond)
            pthread_cond_destroy(&hub->cond);
        if (have_lock)
            pthread_mutex_destroy(&hub->lock);
        free(hub);
    }
    return rc;
}

void sse_hub_free(struct sse_hub *hub)
{
    if (!hub)
        return;
    pthread_mutex_lock(&hub->lock);
    hub->stop = 1;
    pthread_cond_broadcast(&hub->cond);
    pthread_mutex_unlock(&hub->lock);
    pthread_join(hub->ping_thread, NULL);
    pthread_cond_destroy(&hub->cond);
    pthread_mutex_destroy(&hub->lock);
    free(hub);
}

static int check_event(const char *type, const char *json_data, uint64_t seq)
{
    if (seq == 0 || !type || !json_data || strlen(type) > TYPE_MAX ||
        strlen(json_data) > SSE_HUB_DATA_MAX)
        return SPELL_EINVAL;
    return SPELL_OK;
}

static int format_event(struct spell_buf *ev, uint64_t seq, const char *type,
                        const char *json_data)
{
    char id[24];

    snprintf(id, sizeof id, "%" PRIu64, seq);
    return spell_sse_write_event(ev, id, type, json_data, strlen(json_data));
}

int sse_hub_publish(struct sse_hub *hub, const char *channel, uint64_t seq, const char *type,
                    const char *json_data, int terminal)
{
    int rc;
    struct spell_buf ev;
    struct channel *c;

    spell_buf_init(&ev, EVENT_MAX);
    if (!hub || !channel || strlen(channel) > SSE_HUB_CHANNEL_MAX) {
        rc = SPELL_EINVAL;
        goto out;
    }
    if ((rc = check_event(type, json_data, seq)) != SPELL_OK)
        goto out;
    if ((rc = format_event(&ev, seq, type, json_data)) != SPELL_OK)
        goto out;
    pthread_mutex_lock(&hub->lock);
    if ((c = *find_channel(hub, channel)) != NULL) {
        for (struct sse_sub *s = c->subs; s; s = s->next) {
            pthread_mutex_lock(&s->lock);
            deliver_locked(s, seq, ev.ptr, ev.len, terminal);
            pthread_mutex_unlock(&s->lock);
        }
    }
    pthread_mutex_unlock(&hub->lock);
out:
    spell_buf_free(&ev);
    return rc;
}

void sse_hub_shutdown(struct sse_hub *hub)
{
    pthread_mutex_lock(&hub->lock);
    hub->closing = 1;
    for (size_t b = 0; b < HUB_BUCKETS; b++) {
        for (struct channel *c = hub->buckets[b]; c; c = c->next) {
            for (struct sse_sub *s = c->subs; s; s = s->next) {
                pthread_mutex_lock(&s->lock);
                s->ending = 1;
                wake_locked(s);
                pthread_mutex_unlock(&s->lock);
            }
        }
    }
    pthread_mutex_unlock(&hub->lock);
}

size_t sse_hub_count(struct sse_hub *hub)
{
    size_t n;

    pthread_mutex_lock(&hub->lock);
    n = hub->count;
    pthread_mutex_unlock(&hub->lock);
    return n;
}

int sse_hub_subscribe(struct sse_hub *hub, const char *channel, uint64_t after_seq,
                      struct sse_sub **out)
{
    int rc = SPELL_EINVAL;
    struct sse_sub *sub = NULL;
    struct channel *c = NULL, **pp;
    int locked = 0;

    *out = NULL;
    if (!hub || !channel || !*channel || strlen(channel) > SSE_HUB_CHANNEL_MAX)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(sub = calloc(1, sizeof *sub)))
        goto out;
    if (pthread_mutex_init(&sub->lock, NULL) != 0) {
        free(sub);
        sub = NULL;
        goto out;
    }
    sub->hub = hub;
    sub->last_seq = after_seq;
    spell_buf_init(&sub->out, hub->max_queue);

    pthread_mutex_lock(&hub->lock);
    locked = 1;
    rc = SPELL_EABORT;
    if (hub->closing)
        goto out;
    rc = SPELL_ETOOBIG;
    if (hub->max_subs && hub->count >= hub->max_subs)
        goto out;
    pp = find_channel(hub, channel);
    if (!(c = *pp)) {
        rc = SPELL_ENOMEM;
        if (!(c = calloc(1, sizeof *c)))
            goto out;
        strcpy(c->name, channel);
        *pp = c;
    }
    sub->chan = c;
    sub->next = c->subs;
    if (c->subs)
        c->subs->prev = sub;
    c->subs = sub;
    hub->count++;
    *out = sub;
    sub = NULL;
    rc = SPELL_OK;
out:
    if (locked)
        pthread_mutex_unlock(&hub->lock);
    if (sub) {
        pthread_mutex_destroy(&sub->lock);
        free(sub);
    }
    return rc;
}

int sse_sub_backlog(struct sse_sub *sub, uint64_t seq, const char *type, const char *json_data,
                    int terminal)
{
    int rc;
    struct spell_buf ev;

    spell_buf_init(&ev, EVENT_MAX);
    if (!sub) {
        rc = SPELL_EINVAL;
        goto out;
    }
    if ((rc = check_event(type, json_data, seq)) != SPELL_OK)
        goto out;
    if ((rc = format_event(&ev, seq, type, json_data)) != SPELL_OK)
        goto out;
    pthread_mutex_lock(&sub->lock);
    if (!sub->ending && seq > sub->last_seq) {
        rc = spell_buf_add(&sub->out, ev.ptr, ev.len);
        if (rc == SPELL_OK) {
            sub->last_seq = seq;
            if (terminal)
                sub->ending = 1;
        }
    }
    pthread_mutex_unlock(&sub->lock);
out:
    spell_buf_free(&ev);
    return rc;
}

int sse_sub_raw(struct sse_sub *sub, const char *text, size_t len)
{
    int rc;

    if (!sub || (!text && len))
        return SPELL_EINVAL;
    pthread_mutex_lock(&sub->lock);
    rc = spell_buf_add(&sub->out, text, len);
    if (rc == SPELL_OK)
        wake_locked(sub);
    pthread_mutex_unlock(&sub->lock);
    return rc;
}

void sse_sub_start(struct sse_sub *sub)
{
    struct held *h, *next;

    pthread_mutex_lock(&sub->lock);
    sub->started = 1;
    for (h = sub->held_head; h; h = next) {
        next = h->next;
        accept_locked(sub, h->seq, h->text, h->len, h->terminal);
        free(h);
    }
    sub->held_head = sub->held_tail = NULL;
    sub->held_bytes = 0;
    if (sub->overflow)
        sub->ending = 1;
    wake_locked(sub);
    pthread_mutex_unlock(&sub->lock);
}

void sse_sub_set_waker(struct sse_sub *sub, void (*wake)(void *ud), void *ud)
{
    pthread_mutex_lock(&sub->lock);
    sub->wake = wake;
    sub->wake_ud = ud;
    pthread_mutex_unlock(&sub->lock);
}

enum sse_read_result sse_sub_read(struct sse_sub *sub, char *buf, size_t max, size_t *n,
                                  void (*on_idle)(void *ud), void *ud)
{
    enum sse_read_result res;

    *n = 0;
    pthread_mutex_lock(&sub->lock);
    if (sub->out.len > 0) {
        size_t take = sub->out.len < max ? sub->out.len : max;
        memcpy(buf, sub->out.ptr, take);
        if (take == sub->out.len)
            spell_buf_free(&sub->out);
        else
            spell_buf_consume(&sub->out, take);
        *n = take;
        res = SSE_READ_DATA;
    } else if (sub->started && sub->ending) {
        res = SSE_READ_END;
    } else {
        sub->idle = 1;
        if (on_idle)
            on_idle(ud);
        res = SSE_READ_IDLE;
    }
    pthread_mutex_unlock(&sub->lock);
    return res;
}

uint64_t sse_sub_last_seq(struct sse_sub *sub)
{
    uint64_t seq;

    pthread_mutex_lock(&sub->lock);
    seq = sub->last_seq;
    pthread_mutex_unlock(&sub->lock);
    return seq;
}

void sse_sub_end(struct sse_sub *sub)
{
    pthread_mutex_lock(&sub->lock);
    sub->ending = 1;
    wake_locked(sub);
    pthread_mutex_unlock(&sub->lock);
}

void sse_sub_release(struct sse_sub *sub)
{
    struct sse_hub *hub;
    struct channel *c;
    struct held *h, *next;

    if (!sub)
        return;
    hub = sub->hub;
    pthread_mutex_lock(&hub->lock);
    c = sub->chan;
    if (sub->prev)
        sub->prev->next = sub->next;
    else
        c->subs = sub->next;
    if (sub->next)
        sub->next->prev = sub->prev;
    if (!c->subs) {
        struct channel **pp = find_channel(hub, c->name);
        *pp = c->next;
        free(c);
    }
    hub->count--;
    pthread_mutex_unlock(&hub->lock);

    for (h = sub->held_head; h; h = next) {
        next = h->next;
        free(h);
    }
    spell_buf_free(&sub->out);
    pthread_mutex_destroy(&sub->lock);
    free(sub);
}
