/*
 * The backend-independent half of the event bus (bus.h): the publish lock
 * and the bounded table of the last seq published per cast.  The table is
 * a flat array searched linearly: BUS_TRACK_MAX entries of a few dozen
 * bytes each, touched once per event, which is cheaper than the store read
 * that precedes every publish.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"

#include "bus-impl.h"
#include "bus.h"

#define BUS_CAST_ID_SIZE 48

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
    if (!(b->track = calloc(BUS_TRACK_MAX, sizeof *b->track)))
        goto out;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
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
    pthread_mutex_destroy(&b->mu);
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

void bus_lock(struct bus *b)
{
    pthread_mutex_lock(&b->mu);
}

void bus_unlock(struct bus *b)
{
    pthread_mutex_unlock(&b->mu);
}

static struct bus_track *track_find(struct bus *b, const char *cast_id)
{
    for (size_t i = 0; i < b->ntrack; i++)
        if (strcmp(b->track[i].cast_id, cast_id) == 0)
            return &b->track[i];
    return NULL;
}

int64_t bus_seq_get(struct bus *b, const char *cast_id)
{
    struct bus_track *t = track_find(b, cast_id);

    return t ? t->seq : 0;
}

void bus_seq_put(struct bus *b, const char *cast_id, int64_t seq, int finished)
{
    struct bus_track *t = track_find(b, cast_id);
    size_t victim = 0;

    if (finished || strlen(cast_id) >= BUS_CAST_ID_SIZE) {
        if (t) {
            *t = b->track[b->ntrack - 1];
            b->ntrack--;
        }
        return;
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
}
