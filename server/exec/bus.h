/*
 * The event bus of spell-server: the seam between whoever changes a cast
 * (the lifecycle, on any thread) and whoever delivers its events (the SSE
 * hub of this process now; a NATS JetStream subject later, so that API
 * servers and `spell-server worker` processes can be separate).
 *
 * Data flow.
 *
 *   lifecycle_publish_pending(srv, cast_id)          (lifecycle.h)
 *     reads the cast's stored events after the last seq published
 *       -> bus_publish(bus, cast_id, seq, type, json, terminal), in seq order
 *            -> the backend: bus_local delivers with sse_hub_publish() on
 *               srv->hub; a NATS backend would publish on a subject with
 *               the seq as its message id (JetStream deduplicates on it).
 *
 * The store is the source of truth and every event carries its per-cast
 * seq, so a backend may deliver an event more than once (the hub and every
 * SSE client drop a seq they already have) but never out of order for one
 * cast: the bus serialises the publishes of one cast (bus_lock_cast) so two
 * threads publishing the same cast cannot interleave, while other casts
 * publish at the same time.
 *
 * Besides delivering, the bus remembers for each open cast the highest
 * seq it has published (bus_seq_get / bus_seq_put).  The table is bounded
 * (BUS_TRACK_MAX casts): an entry is dropped after the cast's terminal
 * event, and when the table is full the least recently used entry is
 * forgotten, which costs only a harmless re-publication of that cast's
 * events the next time.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef SPELL_SERVER_BUS_H
#define SPELL_SERVER_BUS_H

#include <stdint.h>

struct server;
struct bus;

/* Casts whose last published seq the bus remembers at once. */
#define BUS_TRACK_MAX 4096

/* A bus that delivers to srv->hub in this process (srv->hub may be NULL:
 * events are then dropped, which suits command-line tools). */
int bus_local_new(struct server *srv, struct bus **out);

/* NULL is accepted.  No publish may be running. */
void bus_free(struct bus *b);

/*
 * Delivers one stored event.  type is the SSE event type ("cast.progress"),
 * json its data (one JSON text), terminal 1 for the cast's last event (the
 * streams of that cast end after it).  SPELL_EINVAL for a bad argument
 * (NULL, seq < 1), or what the backend reports.
 */
int bus_publish(struct bus *b, const char *cast_id, int64_t seq, const char *type,
                const char *json, int terminal);

/* Serialises publishing one cast: lifecycle_publish_pending holds it while
 * it reads the store and publishes, so the cast's events go out in seq
 * order.  It is the cast's own lock: holding it delays no other cast's
 * publications.  Not recursive; a thread holds one at a time. */
void bus_lock_cast(struct bus *b, const char *cast_id);
void bus_unlock_cast(struct bus *b, const char *cast_id);

/* Serialises publishing every cast at once: waits until no cast is locked
 * and keeps bus_lock_cast waiting until bus_unlock.  Not while holding a
 * cast's lock. */
void bus_lock(struct bus *b);
void bus_unlock(struct bus *b);

/* The highest seq published for cast_id (0 when unknown).  Call with the
 * cast locked (bus_lock_cast or bus_lock), so that it stays true until
 * bus_seq_put. */
int64_t bus_seq_get(struct bus *b, const char *cast_id);

/* Records seq as published for cast_id; finished 1 drops the entry (the
 * cast's terminal event went out).  Call with the cast locked. */
void bus_seq_put(struct bus *b, const char *cast_id, int64_t seq, int finished);

#endif
