/*
 * The backend-independent half of the event bus (bus.h): the publish locks
 * and the bounded table of the last seq published per cast.
 *
 * Publish locks are per cast: bus_lock_cast marks the cast id busy in a
 * small table and waits only while that same cast is busy, so the
 * publications and terminal transitions of different casts (each a store
 * transaction, the latter with its fsync) run side by side instead of
 * queueing behind one lock.  The table holds one entry per thread inside a
 * publication (at most BUS_BUSY_MAX at once; one more waits for a free
 * entry).  bus_lock waits until no cast is busy and keeps every cast busy
 * until bus_unlock.
 *
 * One mutex guards both tables and is never held across a store call or a
 * delivery; `freed` is broadcast whenever a cast lock is let go.
 *
 * The seq table is a flat array searched linearly: BUS_TRACK_MAX entries
 * of a few dozen bytes each, touched once per event, which is cheaper than
 * the store read that precedes every publish.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"

#include "bus-impl.h"
#include "bus.h"

#define BUS_CAST_ID_SIZE 48
/* Casts being published at once: well above the threads that publish (the
 * executor's workers and the HTTP threads). */
#define BUS_BUSY_MAX 1024

struct bus_track {
    char cast_id[BUS_CAST_ID_SIZE];
    int64_t seq;
    /* A use counter stamp: the smallest is evicted when the table is full. */
    uint64_t used;
};

struct bus {
    const struct bus_ops *ops;
    void *impl;
    pthread_mutex_t mu;
    pthread_cond_t freed;
    /* The casts locked by bus_lock_cast, ids cut to BUS_CAST_ID_SIZE - 1
     * bytes (two longer ids alike in those bytes share a lock). */
    char (*busy)[BUS_CAST_ID_SIZE];     /* BUS_BUSY_MAX slots */
    size_t nbusy;
    bool all;                   /* bus_lock holds every cast */
    struct bus_track *track;    /* BUS_TRACK_MAX slots */
    size_t ntrack;
    uint64_t tick;
};

int bus_create(const struct bus_ops *ops, void *impl, struct bus **out)
{
    int rc = SPELL_ENOMEM;
    struct bus *b = NULL;

    if (!ops || !ops->publish || !out) {
        rc = SPELL_EINVAL;
        goto out;
    }
    *out = NULL;
    if (!(b = calloc(1, sizeof *b)))
        goto out;
    if (!(b->track = calloc(BUS_TRACK_MAX, sizeof *b->track)) ||
        !(b->busy = calloc(BUS_BUSY_MAX, sizeof *b->busy)))
        goto out;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        rc = SPELL_EIO;
        goto out;
    }
    if (pthread_cond_init(&b->freed, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        rc = SPELL_EIO;
        goto out;
    }
    b->ops = ops;
    b->impl = impl;
    impl = NULL;
    *out = b;
    b = NULL;
    rc = SPELL_OK;
out:
    if (b) {
        free(b->busy);
        free(b->track);
        free(b);
    }
    if (impl && ops && ops->free)
        ops->free(impl);
    return rc;
}

void bus_free(struct bus *b)
{
    if (!b)
        return;
    if (b->ops->free)
        b->ops->free(b->impl);
    pthread_cond_destroy(&b->freed);
    pthread_mutex_destroy(&b->mu);
    free(b->busy);
    free(b->track);
    free(b);
}

int bus_publish(struct bus *b, const char *cast_id, int64_t seq, const char *type,
                const char *json, int terminal)
{
    if (!b || !cast_id || !type || !json || seq < 1)
        return SPELL_EINVAL;
    return b->ops->publish(b->impl, cast_id, seq, type, json, terminal);
}

/* ---- Locks ------------------------------------------------------------ */

/* With mu held: the busy slot of cast_id, or -1. */
static long busy_find(struct bus *b, const char *cast_id)
{
    for (size_t i = 0; i < b->nbusy; i++)
        if (strncmp(b->busy[i], cast_id, BUS_CAST_ID_SIZE - 1) == 0)
            return (long)i;
    return -1;
}

void bus_lock_cast(struct bus *b, const char *cast_id)
{
    pthread_mutex_lock(&b->mu);
    while (b->all || b->nbusy == BUS_BUSY_MAX || busy_find(b, cast_id) >= 0)
        pthread_cond_wait(&b->freed, &b->mu);
    snprintf(b->busy[b->nbusy++], BUS_CAST_ID_SIZE, "%s", cast_id);
    pthread_mutex_unlock(&b->mu);
}

void bus_unlock_cast(struct bus *b, const char *cast_id)
{
    long i;

    pthread_mutex_lock(&b->mu);
    if ((i = busy_find(b, cast_id)) >= 0) {
        if ((size_t)i != b->nbusy - 1)
            memcpy(b->busy[i], b->busy[b->nbusy - 1], BUS_CAST_ID_SIZE);
        b->nbusy--;
        pthread_cond_broadcast(&b->freed);
    }
    pthread_mutex_unlock(&b->mu);
}

void bus_lock(struct bus *b)
{
    pthread_mutex_lock(&b->mu);
    while (b->all)
        pthread_cond_wait(&b->freed, &b->mu);
    /* From here no cast lock is handed out; wait for those held. */
    b->all = true;
    while (b->nbusy > 0)
        pthread_cond_wait(&b->freed, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

void bus_unlock(struct bus *b)
{
    pthread_mutex_lock(&b->mu);
    b->all = false;
    pthread_cond_broadcast(&b->freed);
    pthread_mutex_unlock(&b->mu);
}

/* ---- Published seqs ---------------------------------------------------- */

/* With mu held. */
static struct bus_track *track_find(struct bus *b, const char *cast_id)
{
    for (size_t i = 0; i < b->ntrack; i++)
        if (strcmp(b->track[i].cast_id, cast_id) == 0)
            return &b->track[i];
    return NULL;
}

int64_t bus_seq_get(struct bus *b, const char *cast_id)
{
    struct bus_track *t;
    int64_t seq;

    pthread_mutex_lock(&b->mu);
    t = track_find(b, cast_id);
    seq = t ? t->seq : 0;
    pthread_mutex_unlock(&b->mu);
    return seq;
}

void bus_seq_put(struct bus *b, const char *cast_id, int64_t seq, int finished)
{
    struct bus_track *t;
    size_t victim = 0;

    pthread_mutex_lock(&b->mu);
    t = track_find(b, cast_id);
    if (finished || strlen(cast_id) >= BUS_CAST_ID_SIZE) {
        if (t) {
            *t = b->track[b->ntrack - 1];
            b->ntrack--;
        }
        goto out;
    }
    if (!t) {
        if (b->ntrack < BUS_TRACK_MAX) {
            t = &b->track[b->ntrack++];
        } else {
            for (size_t i = 1; i < b->ntrack; i++)
                if (b->track[i].used < b->track[victim].used)
                    victim = i;
            t = &b->track[victim];
        }
        memset(t, 0, sizeof *t);
        strcpy(t->cast_id, cast_id);
    }
    if (seq > t->seq)
        t->seq = seq;
    t->used = ++b->tick;
out:
    pthread_mutex_unlock(&b->mu);
}
