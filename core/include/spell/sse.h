/*
 * Server-Sent Events (text/event-stream): an incremental parser for the
 * clients that follow cast progress (agent, portal) and a writer for the
 * server that produces those streams (DESIGN.md §3 "Progress stream").
 *
 * Parser data flow.  The caller hands the bytes of one HTTP response body
 * to spell_sse_feed() in whatever chunks the network delivers.  The parser
 *
 *   1. decodes UTF-8 as the WHATWG "UTF-8 decode" algorithm does: one
 *      leading byte order mark at the very start of the stream is dropped
 *      (even when its three bytes arrive in different chunks), and every
 *      ill-formed sequence is replaced by U+FFFD (EF BF BD), one U+FFFD per
 *      maximal ill-formed subpart, exactly as browsers do.  What the
 *      callbacks see is therefore always well-formed UTF-8; it may contain
 *      U+0000 (a NUL byte), which is valid UTF-8;
 *   2. splits lines at CRLF, LF or CR (a CR ending one chunk and an LF
 *      starting the next make one line end);
 *   3. interprets each line by the WHATWG HTML rules "Interpreting an event
 *      stream": comments, the fields event, data, id and retry, and a blank
 *      line that dispatches the event to on_event.
 *
 * Bytes after the last line end are held until more arrive; when the stream
 * ends, whatever is pending (a partial line, an event without its blank
 * line) is discarded, as the spec requires: call spell_sse_parser_reset_stream()
 * before feeding the next connection's body.  The last event ID and the
 * reconnection time survive that reset, so a client reconnects with
 * Last-Event-ID: spell_sse_last_event_id().
 *
 * Memory is bounded by two caps given at init: max_line (bytes of one line
 * after decoding, line end excluded) and max_event (bytes of an event's
 * data as it would be dispatched: the data values joined by LF).  Passing
 * either fails with SPELL_ETOOBIG: a line at the byte that passes max_line,
 * before its line end arrives; an event at the `data` line that passes
 * max_event.  A hostile peer thus costs at most about max_line + max_event
 * bytes, plus max_line for the event type and twice that for the IDs.
 *
 * Writer data flow.  The server appends whole events to a spell_buf it then
 * sends: spell_sse_write_event() writes `id:`, `event:` and `data:` lines
 * and the blank line; the spell_sse_write_*() functions append nothing at
 * all when they fail.
 *
 * A parser is used by one thread at a time; distinct parsers share nothing.
 * Callbacks run inside spell_sse_feed() and must not feed, reset or free
 * the parser that called them.
 */
#ifndef SPELL_SSE_H
#define SPELL_SSE_H

#include <stddef.h>

#include "spell/buf.h"

/* Default caps, used when 0 is passed to spell_sse_parser_init(). */
#define SPELL_SSE_DEFAULT_MAX_LINE ((size_t)64 * 1024)
#define SPELL_SSE_DEFAULT_MAX_EVENT ((size_t)1024 * 1024)

/* The largest cap spell_sse_parser_init() accepts (1 GiB). */
#define SPELL_SSE_MAX_CAP ((size_t)1 << 30)

/* One dispatched event; every pointer is valid only during the callback. */
struct spell_sse_event {
    /* The event type, NUL-terminated: the last `event` field's value, or
     * "message" when there was none or it was empty.  type_len is given
     * because a peer may put U+0000 inside a type. */
    const char *type;
    size_t type_len;
    /* The data values joined by LF (the final LF removed), NUL-terminated
     * for convenience; data_len counts the bytes, any NUL included. */
    const char *data;
    size_t data_len;
    /* The last event ID string after this event's block ("" when none was
     * ever set or it was reset); never contains NUL. */
    const char *id;
    size_t id_len;
};

/* Return 0 to go on, nonzero to stop: spell_sse_feed() then returns
 * SPELL_EABORT. */
typedef int (*spell_sse_event_cb)(const struct spell_sse_event *ev, void *userdata);

/* A comment line (one starting with ':'): text is what follows the colon,
 * with one leading space removed as for a field value (": ping" gives
 * "ping"), NUL-terminated; len counts its bytes. */
typedef int (*spell_sse_comment_cb)(const char *text, size_t len, void *userdata);

/*
 * Parser state, allocated by the caller (on the stack or inside another
 * struct).  The fields are private to sse.c.
 */
struct spell_sse_parser {
    /* The line being collected, decoded, without its line end. */
    struct spell_buf line;
    /* The spec's data buffer: each data value followed by LF. */
    struct spell_buf data;
    /* The spec's event type buffer. */
    struct spell_buf type;
    /* The value of the last `id` field since the last blank line, valid
     * only while id_set is nonzero.  The spec's last event ID buffer is
     * id_buf when id_set is nonzero and last_id otherwise, so dispatching
     * swaps the two instead of copying. */
    struct spell_buf id_buf;
    int id_set;
    /* The last event ID string: the ID buffer as of the last blank line.
     * It outlives reconnections and is what Last-Event-ID carries. */
    struct spell_buf last_id;
    size_t max_line;
    size_t max_event;
    /* The reconnection time from the last valid `retry` field, or -1. */
    long retry_ms;
    spell_sse_event_cb on_event;
    spell_sse_comment_cb on_comment;
    void *userdata;
    /* UTF-8 decoder state (WHATWG Encoding): the bytes of the sequence in
     * progress, how many it needs in all, and the range the next
     * continuation byte must fall in. */
    unsigned char seq[4];
    unsigned seq_len;
    unsigned seq_need;
    unsigned char lower;
    unsigned char upper;
    /* Nonzero until the first code point of the stream is decoded; a
     * U+FEFF there is the byte order mark and is dropped. */
    int at_start;
    /* Nonzero when the last character was a CR, so an LF right after it
     * (perhaps in the next chunk) belongs to the same line end. */
    int after_cr;
    /* SPELL_OK, or the failure that made the stream unusable; every feed
     * returns it until spell_sse_parser_reset_stream(). */
    int failed;
};

/*
 * Prepares p.  max_line and max_event are the caps described at the top
 * (0 picks the SPELL_SSE_DEFAULT_* value; at most SPELL_SSE_MAX_CAP).
 * on_event may be NULL (events are then parsed and dropped, IDs still
 * tracked); on_comment may be NULL.  Returns SPELL_EINVAL for a NULL p or
 * a cap above SPELL_SSE_MAX_CAP; p may then still be freed, and every feed
 * returns SPELL_EINVAL.  Allocates nothing:
 * buffers grow on demand and spell_sse_parser_free() releases them.
 */
int spell_sse_parser_init(struct spell_sse_parser *p, size_t max_line, size_t max_event,
                          spell_sse_event_cb on_event, spell_sse_comment_cb on_comment,
                          void *userdata);

void spell_sse_parser_free(struct spell_sse_parser *p);

/*
 * Parses len more bytes of the stream, calling the callbacks for each
 * complete comment and event, in stream order, before it returns.
 *
 * Returns SPELL_OK; SPELL_ETOOBIG when a line passed max_line or an event's
 * data passed max_event; SPELL_ENOMEM; SPELL_EABORT when a callback
 * returned nonzero (the bytes after the line that called it are not
 * parsed); SPELL_EINVAL for a NULL p, or a NULL buf with len > 0.  After
 * any failure but SPELL_EINVAL the stream is unusable: every later feed
 * returns the same code until spell_sse_parser_reset_stream().  Events
 * dispatched before the failure stay dispatched, and the last event ID and
 * retry they set are kept.
 */
int spell_sse_feed(struct spell_sse_parser *p, const char *buf, size_t len);

/*
 * Starts a new stream (a new connection): discards the partial line, the
 * pending event and any failure, restarts UTF-8 and BOM handling, and keeps
 * the last event ID and the reconnection time.  Call it when a stream ends.
 */
void spell_sse_parser_reset_stream(struct spell_sse_parser *p);

/* The last event ID string ("" when none), NUL-terminated, valid until the
 * next feed, reset or free. */
const char *spell_sse_last_event_id(const struct spell_sse_parser *p);

/* The reconnection time the server asked for with `retry`, in ms, or -1
 * when no valid `retry` field was seen.  A value too large for a long is
 * ignored like any other invalid one. */
long spell_sse_retry_ms(const struct spell_sse_parser *p);

/*
 * Appends one complete event to out:
 *
 *   id: <id>\n          (omitted when id is NULL)
 *   event: <type>\n     (omitted when type is NULL)
 *   data: <line>\n      (one per line of data; none when data is NULL)
 *   \n
 *
 * Every CRLF, LF or CR in data starts a new `data:` line, so a parser
 * rebuilds the data with LF line breaks; len 0 with a non-NULL data writes
 * one empty `data:` line (an event with empty data).  id, type and data
 * must be valid UTF-8 (data may hold NUL bytes); id and type must not
 * contain CR or LF.  Returns SPELL_EINVAL for any of these, or for a NULL
 * out or a NULL data with len > 0; SPELL_ETOOBIG or SPELL_ENOMEM when out
 * cannot hold the event.  On failure out is left as it was.
 */
int spell_sse_write_event(struct spell_buf *out, const char *id, const char *type,
                          const char *data, size_t len);

/* Appends ": <text>\n\n" (":\n\n" for a NULL or empty text), the keep-alive
 * form.  SPELL_EINVAL when text holds CR or LF or is not valid UTF-8; out
 * is left as it was on failure. */
int spell_sse_write_comment(struct spell_buf *out, const char *text);

/* Appends "retry: <ms>\n\n".  SPELL_EINVAL for a negative ms; out is left
 * as it was on failure. */
int spell_sse_write_retry(struct spell_buf *out, long ms);

#endif
