/*
 * The SSE fan-out hub: cast events published once, delivered to every open
 * progress stream of that cast (DESIGN.md §3 "Progress stream").
 *
 * Data flow.
 *
 *   publisher (cast code, any thread)
 *     sse_hub_publish(hub, cast_id, seq, type, json, terminal)
 *       -> the event is written once as SSE text (core's spell_sse_write_event)
 *       -> copied into the queue of each subscription of that channel whose
 *          last delivered seq is below it, and that subscription's waker is
 *          called if its reader was idle.
 *
 *   stream (the HTTP layer, one per connection)
 *     1. sse_hub_subscribe(channel, after_seq)  - live events start queueing
 *     2. the handler reads the backlog (events after after_seq) from the
 *        store and feeds it with sse_sub_backlog() in seq order
 *     3. sse_sub_start()  - queued live events whose seq the backlog already
 *        covered are dropped, the rest follow the backlog in order
 *     4. the connection pulls bytes with sse_sub_read(); when nothing is
 *        queued it goes idle (its on_idle callback runs under the
 *        subscription's lock) until the next publish or ping calls its waker
 *     5. after a terminal event has been read, sse_sub_read() reports the end
 *     6. sse_sub_release() when the connection is gone.
 *
 * Subscribing before reading the backlog is what makes resume exact: an
 * event stored and published while the backlog is being read is queued
 * live and then either dropped (the backlog had it) or sent after it.  Each
 * subscription remembers the highest seq it has accepted and never accepts
 * one at or below it, so nothing is delivered twice.
 *
 * No stream holds a thread: an idle stream is a few hundred bytes of queue
 * state.  One hub thread writes a ": ping" comment to every stream each
 * ping interval.  Queues are capped (max_queue bytes); a subscription whose
 * client reads too slowly is ended after what is queued, and the client
 * resumes from its Last-Event-ID, losing nothing.
 *
 * Write-through.  A stream whose HTTP layer hands the hub its socket
 * (sse_sub_set_socket: an HTTP/1.1 response in chunked coding) leaves the
 * queue path once it has sent its backlog and gone idle: its subscription
 * joins its channel's array of write-through streams, and from then on
 *
 *   sse_hub_publish
 *     -> the event is written once as SSE text and once as one HTTP/1.1
 *        chunk ("<hex length>\r\n<text>\r\n")
 *     -> the chunk is sent straight to every write-through socket of the
 *        channel (send, MSG_DONTWAIT), the array taken in batches by the
 *        publishing thread and the hub's writer threads; no copy, no lock
 *        and no wake-up per stream.
 *
 * The connection stays suspended in the HTTP layer all along, so nothing
 * else writes to the socket.  A send that does not take the whole chunk
 * leaves the rest in the subscription's queue (raw bytes, capped at
 * max_queue) and later chunks queue behind it; the hub's send thread
 * flushes them when the socket has room (its own epoll, which also
 * notices clients that hang up).  A stream whose queue passes the cap,
 * whose client is gone, or whose queue makes no progress for
 * SSE_HUB_STALL_MS fails: its reader gets SSE_READ_ERROR and the HTTP
 * layer closes the connection (the client resumes from its Last-Event-ID).
 * A stream that ends (terminal event, sse_sub_end, shutdown) is handed
 * back to its reader once its queue has drained; the reader then reports
 * SSE_READ_END and the HTTP layer writes the last chunk.  Pings take the
 * same path.
 *
 * Locking: the hub mutex guards the channel table, each channel's list and
 * write-through array, and every field of a write-through subscription;
 * each subscription has its own mutex for its queue while it is on the
 * queue path.  Order: hub, then subscription; wakers run with the
 * subscription's mutex held (and sometimes the hub's) and must not call
 * back into the hub.
 */
#ifndef SPELL_SERVER_SSE_HUB_H
#define SPELL_SERVER_SSE_HUB_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of a channel name (a cast id is 30). */
#define SSE_HUB_CHANNEL_MAX 64
/* Bytes of one event's JSON data. */
#define SSE_HUB_DATA_MAX ((size_t)16 * 1024)
/* Default cap on bytes queued for one subscription. */
#define SSE_HUB_DEFAULT_QUEUE ((size_t)64 * 1024)
#define SSE_HUB_DEFAULT_PING_MS 15000
/* A write-through stream whose queued bytes make no progress for this long
 * fails (checked at each ping). */
#define SSE_HUB_STALL_MS ((int64_t)60000)
/* Most writer threads. */
#define SSE_HUB_WRITERS_MAX 16

struct sse_hub;
struct sse_sub;

struct sse_hub_config {
    /* Interval between ": ping" comments, in ms; 0 means 15 s.  Tests
     * inject a short one. */
    int64_t ping_ms;
    /* Cap on bytes queued per subscription; 0 means SSE_HUB_DEFAULT_QUEUE. */
    size_t max_queue;
    /* Most subscriptions at once (0: unlimited); past it subscribe fails
     * with SPELL_ETOOBIG. */
    size_t max_subs;
    /* Threads that send one event to a channel's write-through streams,
     * the publishing thread included; 0 means one per online CPU, at most
     * 4.  At most SSE_HUB_WRITERS_MAX. */
    unsigned writers;
};

/* cfg may be NULL for the defaults.  Starts the ping thread, the send
 * thread and the writer threads. */
int sse_hub_new(const struct sse_hub_config *cfg, struct sse_hub **out);

/* Stops the hub's threads and frees the hub.  Every subscription must have
 * been released first. */
void sse_hub_free(struct sse_hub *hub);

/*
 * Publishes one event to every subscription of channel.  seq starts at 1;
 * type is the SSE event type ("cast.progress"); json_data is one JSON text
 * (its line breaks would become several data: lines, which parsers join
 * back).  terminal marks the last event of the channel: each stream ends
 * after it.  SPELL_EINVAL for a bad argument (seq 0, a channel of more than
 * SSE_HUB_CHANNEL_MAX bytes, data over SSE_HUB_DATA_MAX or not UTF-8),
 * SPELL_ENOMEM.  A subscription that cannot take the event (its queue is
 * full or memory is short) is ended instead; the publish still succeeds.
 */
int sse_hub_publish(struct sse_hub *hub, const char *channel, uint64_t seq, const char *type,
                    const char *json_data, int terminal);

/*
 * Ends every subscription (each stream ends after what it has queued) and
 * refuses new ones with SPELL_EABORT: the first step of graceful shutdown.
 */
void sse_hub_shutdown(struct sse_hub *hub);

/* The number of subscriptions not yet released. */
size_t sse_hub_count(struct sse_hub *hub);

/*
 * Subscribes to channel, accepting only events with seq > after_seq.  The
 * subscription queues live events but reads nothing until sse_sub_start().
 * SPELL_EINVAL, SPELL_ENOMEM, SPELL_ETOOBIG (max_subs reached), SPELL_EABORT
 * (the hub is shutting down).
 */
int sse_hub_subscribe(struct sse_hub *hub, const char *channel, uint64_t after_seq,
                      struct sse_sub **out);

/* Adds one backlog event, in seq order, before sse_sub_start().  An event at
 * or below the last accepted seq is skipped (SPELL_OK).  Same argument
 * rules and failures as sse_hub_publish(); SPELL_ETOOBIG when the queue cap
 * is reached (the caller should end the stream early; the client resumes). */
int sse_sub_backlog(struct sse_sub *sub, uint64_t seq, const char *type, const char *json_data,
                    int terminal);

/* Appends raw SSE text (a "retry:" line, a comment) to the queue. */
int sse_sub_raw(struct sse_sub *sub, const char *text, size_t len);

/* Ends the backlog phase: live events queued meanwhile with seq above the
 * backlog follow it. */
void sse_sub_start(struct sse_sub *sub);

/* Sets the callback that wakes the idle reader; called with the
 * subscription's lock held. */
void sse_sub_set_waker(struct sse_sub *sub, void (*wake)(void *ud), void *ud);

/*
 * Lets the hub write this stream's events straight to the connected socket
 * fd once the reader has gone idle (see "Write-through" above).  The caller
 * vouches that every byte the reader returns goes out as one HTTP/1.1
 * chunk, that nothing else writes to fd while the reader is idle (its
 * connection is suspended from on_idle until the waker runs), and that fd
 * stays open until then.  Call before the first sse_sub_read().
 * SPELL_EINVAL for a negative fd.
 */
int sse_sub_set_socket(struct sse_sub *sub, int fd);

enum sse_read_result {
    SSE_READ_DATA = 0,      /* *n bytes were copied */
    SSE_READ_IDLE = 1,      /* nothing queued; on_idle ran; wait for the waker */
    SSE_READ_END = 2,       /* the stream is over */
    SSE_READ_ERROR = 3,     /* the stream failed: close without the last chunk */
};

/*
 * Copies up to max queued bytes into buf.  When nothing is queued and the
 * stream is not over, calls on_idle(ud) under the subscription's lock
 * (the HTTP layer suspends the connection there) and arms the waker, so a
 * publish racing with this call cannot be missed.
 */
enum sse_read_result sse_sub_read(struct sse_sub *sub, char *buf, size_t max, size_t *n,
                                  void (*on_idle)(void *ud), void *ud);

/* The highest seq the subscription has accepted. */
uint64_t sse_sub_last_seq(struct sse_sub *sub);

/* SSE bytes the hub wrote (or queued) straight to the socket, chunk
 * framing left out: what the reader did not return itself. */
uint64_t sse_sub_direct_bytes(struct sse_sub *sub);

/* Ends the stream after what is queued (e.g. the server is stopping). */
void sse_sub_end(struct sse_sub *sub);

/* Ends the stream at once, dropping what is queued: the reader gets
 * SSE_READ_ERROR (e.g. the server stops and the client does not read). */
void sse_sub_cut(struct sse_sub *sub);

/* Subscriptions on the write-through path (for tests and metrics). */
size_t sse_hub_direct_count(struct sse_hub *hub);

/* Removes the subscription from its channel and frees it. */
void sse_sub_release(struct sse_sub *sub);

#endif
