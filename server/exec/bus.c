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
 * The seq table is BUS_TRACK_MAX entries in a fixed array, found through
 * a hash of the cast id (chained buckets, twice as many as entries) and
 * kept on a list from least to most recently published, so a lookup, an
 * update and the eviction of the oldest entry each cost a few steps
 * whatever the number of open casts.
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

/* Hash buckets of the seq table: a power of two, twice BUS_TRACK_MAX. */
#define BUS_TRACK_BUCKETS (2 * BUS_TRACK_MAX)
/* No entry (the indexes below are of b->track). */
#define NIL (-1)

struct bus_track {
    char cast_id[BUS_CAST_ID_SIZE];
    int64_t seq;
    int32_t chain;              /* next entry of the bucket, or of the free list */
    int32_t older, newer;       /* the recency list */
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
    int32_t *bucket;            /* BUS_TRACK_BUCKETS chain heads */
    int32_t free_head;          /* unused slots, linked by chain */
    int32_t oldest, newest;     /* ends of the recency list */
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
        !(b->bucket = calloc(BUS_TRACK_BUCKETS, sizeof *b->bucket)) ||
        !(b->busy = calloc(BUS_BUSY_MAX, sizeof *b->busy)))
        goto out;
    for (int32_t i = 0; i < BUS_TRACK_BUCKETS; i++)
        b->bucket[i] = NIL;
    for (int32_t i = 0; i < BUS_TRACK_MAX; i++)
        b->track[i].chain = i + 1 < BUS_TRACK_MAX ? i + 1 : NIL;
    b->free_head = 0;
    b->oldest = b->newest = NIL;
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
        free(b->bucket);
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
    free(b->bucket);
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

/* FNV-1a of the cast id, reduced to a bucket. */
static size_t track_hash(const char *cast_id)
{
    uint64_t h = 14695981039346656037ULL;

    for (const unsigned char *p = (const unsigned char *)cast_id; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 32)) & (BUS_TRACK_BUCKETS - 1);
}

/* With mu held: the entry of cast_id, or NIL. */
static int32_t track_find(struct bus *b, const char *cast_id)
{
    int32_t i;

    for (i = b->bucket[track_hash(cast_id)]; i != NIL; i = b->track[i].chain)
        if (strcmp(b->track[i].cast_id, cast_id) == 0)
            break;
    return i;
}

/* With mu held: takes entry i out of the recency list. */
static void track_unlist(struct bus *b, int32_t i)
{
    struct bus_track *t = &b->track[i];

    if (t->older != NIL)
        b->track[t->older].newer = t->newer;
    else
        b->oldest = t->newer;
    if (t->newer != NIL)
        b->track[t->newer].older = t->older;
    else
        b->newest = t->older;
}

/* With mu held: puts entry i at the recent end of the list. */
static void track_list(struct bus *b, int32_t i)
{
    b->track[i].older = b->newest;
    b->track[i].newer = NIL;
    if (b->newest != NIL)
        b->track[b->newest].newer = i;
    else
        b->oldest = i;
    b->newest = i;
}

/* With mu held: forgets entry i and frees its slot. */
static void track_drop(struct bus *b, int32_t i)
{
    int32_t *p = &b->bucket[track_hash(b->track[i].cast_id)];

    while (*p != i)
        p = &b->track[*p].chain;
    *p = b->track[i].chain;
    track_unlist(b, i);
    b->track[i].chain = b->free_head;
    b->free_head = i;
}

int64_t bus_seq_get(struct bus *b, const char *cast_id)
{
    int32_t i;
    int64_t seq;

    pthread_mutex_lock(&b->mu);
    i = track_find(b, cast_id);
    seq = i != NIL ? b->track[i].seq : 0;
    pthread_mutex_unlock(&b->mu);
    return seq;
}

void bus_seq_put(struct bus *b, const char *cast_id, int64_t seq, int finished)
{
    struct bus_track *t;
    size_t h;
    int32_t i;

    pthread_mutex_lock(&b->mu);
    i = track_find(b, cast_id);
    if (finished || strlen(cast_id) >= BUS_CAST_ID_SIZE) {
        if (i != NIL)
            track_drop(b, i);
        goto out;
    }
    if (i == NIL) {
        /* Full: the least recently published entry makes room. */
        if (b->free_head == NIL)
            track_drop(b, b->oldest);
        i = b->free_head;
        t = &b->track[i];
        b->free_head = t->chain;
        memset(t, 0, sizeof *t);
        strcpy(t->cast_id, cast_id);
        h = track_hash(cast_id);
        t->chain = b->bucket[h];
        b->bucket[h] = i;
    } else {
        track_unlist(b, i);
    }
    track_list(b, i);
    if (seq > b->track[i].seq)
        b->track[i].seq = seq;
out:
    pthread_mutex_unlock(&b->mu);
}
