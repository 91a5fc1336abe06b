/*
 * Unit tests for core/src/sse.c: the text/event-stream parser against the
 * WHATWG HTML rules "Interpreting an event stream" and the spec's own
 * example streams, its caps and failure modes, UTF-8 repair, and the
 * writer, alone and in round trips through the parser.
 *
 * Events and comments are recorded in one log, binary-safe:
 *   "E:<type>|<data>|<id>\n" per event, "C:<text>\n" per comment,
 * so a whole stream is checked with one CHECK_MEM against a literal.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/sse.h"
#include "tap.h"

#define LIT(s) (s), (sizeof(s) - 1)

struct rec {
    struct spell_buf log;
    int events;
    int comments;
    /* Abort when the event (or comment) count reaches this; 0 never. */
    int stop_events;
    int stop_comments;
    /* Count comments without logging them. */
    int quiet_comments;
};

static int rec_event(const struct spell_sse_event *ev, void *userdata)
{
    struct rec *r = userdata;
    CHECK(ev->type[ev->type_len] == '\0');
    CHECK(ev->data[ev->data_len] == '\0');
    CHECK(ev->id[ev->id_len] == '\0');
    CHECK(strlen(ev->id) == ev->id_len);
    spell_buf_add(&r->log, "E:", 2);
    spell_buf_add(&r->log, ev->type, ev->type_len);
    spell_buf_addc(&r->log, '|');
    spell_buf_add(&r->log, ev->data, ev->data_len);
    spell_buf_addc(&r->log, '|');
    spell_buf_add(&r->log, ev->id, ev->id_len);
    spell_buf_addc(&r->log, '\n');
    r->events++;
    return r->stop_events && r->events >= r->stop_events;
}

static int rec_comment(const char *text, size_t len, void *userdata)
{
    struct rec *r = userdata;
    CHECK(text[len] == '\0');
    r->comments++;
    if (r->quiet_comments)
        return 0;
    spell_buf_add(&r->log, "C:", 2);
    spell_buf_add(&r->log, text, len);
    spell_buf_addc(&r->log, '\n');
    return r->stop_comments && r->comments >= r->stop_comments;
}

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof *r);
    spell_buf_init(&r->log, 1 << 20);
}

static void open_parser(struct spell_sse_parser *p, struct rec *r, size_t max_line,
                        size_t max_event)
{
    rec_init(r);
    CHECK_INT(spell_sse_parser_init(p, max_line, max_event, rec_event, rec_comment, r),
              SPELL_OK);
}

static void close_parser(struct spell_sse_parser *p, struct rec *r)
{
    spell_sse_parser_free(p);
    spell_buf_free(&r->log);
}

/* Feeds in chunks of `step` bytes (0: all at once); the first failure. */
static int feed_steps(struct spell_sse_parser *p, const char *s, size_t n, size_t step)
{
    if (step == 0)
        return spell_sse_feed(p, s, n);
    for (size_t i = 0; i < n; i += step) {
        size_t k = n - i < step ? n - i : step;
        int rc = spell_sse_feed(p, s + i, k);
        if (rc != SPELL_OK)
            return rc;
    }
    return SPELL_OK;
}

/*
 * Parses `in` whole, one byte at a time and in chunks of 2, 3 and 7 bytes,
 * and checks every way gives the log `want` and the last event ID.
 */
static void expect_at(const char *file, int line, const char *in, size_t in_len,
                      const char *want, size_t want_len, const char *want_id)
{
    static const size_t steps[] = { 0, 1, 2, 3, 7 };
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        struct spell_sse_parser p;
        struct rec r;
        open_parser(&p, &r, 0, 0);
        int rc = feed_steps(&p, in, in_len, steps[k]);
        if (rc != SPELL_OK || r.log.len != want_len ||
            memcmp(spell_buf_str(&r.log), want, want_len) != 0 ||
            strcmp(spell_sse_last_event_id(&p), want_id) != 0) {
            char m[1200];
            snprintf(m, sizeof m, "step %zu: rc %d, log \"%.400s\", last id \"%.100s\"",
                     steps[k], rc, spell_buf_str(&r.log), spell_sse_last_event_id(&p));
            tap_fail(file, line, m);
        }
        close_parser(&p, &r);
    }
}

#define EXPECT(in, want, id) expect_at(__FILE__, __LINE__, LIT(in), LIT(want), (id))

/* ---- WHATWG examples ---- */

/*
 * The example streams of the WHATWG HTML Living Standard, section 9.2.6
 * "Interpreting an event stream"
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation),
 * reproduced verbatim with the outcomes the spec text states.
 */
static void test_spec_stock_example(void)
{
    /* "...would cause an event message ... The event's data attribute would
     * contain the string YHOO\n+2\n10". */
    EXPECT("data: YHOO\ndata: +2\ndata: 10\n\n", "E:message|YHOO\n+2\n10|\n", "");
}

static void test_spec_four_blocks_example(void)
{
    /* First block: a comment, fires nothing.  Second: "first event", last
     * event ID 1.  Third: "second event", ID reset to "".  Fourth: data
     * " third event" with a single leading space. */
    EXPECT(": test stream\n"
           "\n"
           "data: first event\n"
           "id: 1\n"
           "\n"
           "data:second event\n"
           "id\n"
           "\n"
           "data:  third event\n"
           "\n",
           "C:test stream\n"
           "E:message|first event|1\n"
           "E:message|second event|\n"
           "E:message| third event|\n",
           "");
}

static void test_spec_two_events_example(void)
{
    /* "The first block fires events with the data set to the empty string
     * ... The middle block fires an event with the data set to a single
     * newline character. The last block is discarded because it is not
     * followed by a blank line." */
    EXPECT("data\n\ndata\ndata\n\ndata:", "E:message||\nE:message|\n|\n", "");
}

static void test_spec_identical_events_example(void)
{
    /* "The following stream fires two identical events ... the space after
     * the colon is ignored if present." */
    EXPECT("data:test\n\ndata: test\n\n", "E:message|test|\nE:message|test|\n", "");
}

static void test_spec_event_types_example(void)
{
    /* The stream with "add" and "remove" event types from the same
     * standard, section 9.2.1 "Introduction". */
    EXPECT("event: add\ndata: 73857293\n\n"
           "event: remove\ndata: 2153\n\n"
           "event: add\ndata: 113411\n\n",
           "E:add|73857293|\nE:remove|2153|\nE:add|113411|\n", "");
}

/* ---- line ends ---- */

static void test_line_ends(void)
{
    EXPECT("data: x\n\n", "E:message|x|\n", "");
    EXPECT("data: x\r\r", "E:message|x|\n", "");
    EXPECT("data: x\r\n\r\n", "E:message|x|\n", "");
    /* Mixed in one event and between events. */
    EXPECT("data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\n\n",
           "E:message|a\nb\nc|\nE:message|d|\n", "");
    /* LF then CR is two line ends, not one. */
    EXPECT("data: a\n\r", "E:message|a|\n", "");
    /* CR CR LF: a line end, then a CRLF blank line. */
    EXPECT("data: a\r\r\ndata: b\n\n", "E:message|a|\nE:message|b|\n", "");
}

static void test_crlf_split_across_chunks(void)
{
    struct spell_sse_parser p;
    struct rec r;
    open_parser(&p, &r, 0, 0);
    static const char *const chunks[] = { "data: a\r", "\n", "data: b\r", "\n", "\r", "\n" };
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
        CHECK_INT(spell_sse_feed(&p, chunks[i], strlen(chunks[i])), SPELL_OK);
    CHECK_STR(spell_buf_str(&r.log), "E:message|a\nb|\n");
    /* A CR at a chunk end followed by a CR is two line ends. */
    CHECK_INT(spell_sse_feed(&p, LIT("data: c\r")), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, LIT("\r")), SPELL_OK);
    CHECK_STR(spell_buf_str(&r.log), "E:message|a\nb|\nE:message|c|\n");
    /* Empty chunks change nothing, even between CR and LF. */
    CHECK_INT(spell_sse_feed(&p, LIT("data: d\r")), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, "", 0), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, NULL, 0), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, LIT("\n\n")), SPELL_OK);
    CHECK_STR(spell_buf_str(&r.log), "E:message|a\nb|\nE:message|c|\nE:message|d|\n");
    close_parser(&p, &r);
}

static void test_byte_at_a_time_long_stream(void)
{
    struct spell_buf in;
    spell_buf_init(&in, 1 << 20);
    for (int i = 0; i < 300; i++)
        spell_buf_addf(&in, "id: %d\r\nevent: e%d\rdata: line %d \xE2\x82\xAC\ndata: x\r\n%s\n",
                       i, i % 7, i, i % 5 == 0 ? ": keep\r\n" : "");
    struct spell_buf whole;
    spell_buf_init(&whole, 1 << 20);
    for (size_t step = 0; step <= 5; step++) {
        struct spell_sse_parser p;
        struct rec r;
        open_parser(&p, &r, 0, 0);
        CHECK_INT(feed_steps(&p, in.ptr, in.len, step), SPELL_OK);
        CHECK_INT(r.events, 300);
        CHECK_INT(r.comments, 60);
        CHECK_STR(spell_sse_last_event_id(&p), "299");
        if (step == 0)
            spell_buf_add(&whole, r.log.ptr, r.log.len);
        else
            CHECK_MEM(r.log.ptr, r.log.len, whole.ptr, whole.len);
        close_parser(&p, &r);
    }
    CHECK(strstr(spell_buf_str(&whole), "E:e3|line 10 \xE2\x82\xAC\nx|10\n") != NULL);
    spell_buf_free(&in);
    spell_buf_free(&whole);
}

/* ---- BOM ---- */

static void test_bom_whole_and_split(void)
{
    EXPECT("\xEF\xBB\xBF" "data: a\n\n", "E:message|a|\n", "");

    struct spell_sse_parser p;
    struct rec r;
    open_parser(&p, &r, 0, 0);
    CHECK_INT(spell_sse_feed(&p, LIT("\xEF")), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, LIT("\xBB")), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, LIT("\xBF")), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, LIT("data: a\n\n")), SPELL_OK);
    CHECK_STR(spell_buf_str(&r.log), "E:message|a|\n");
    /* A new stream strips its own BOM again. */
    spell_sse_parser_reset_stream(&p);
    CHECK_INT(spell_sse_feed(&p, LIT("\xEF\xBB")), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, LIT("\xBF" "data: b\n\n")), SPELL_OK);
    CHECK_STR(spell_buf_str(&r.log), "E:message|a|\nE:message|b|\n");
    close_parser(&p, &r);
}

static void test_bom_only_once(void)
{
    /* The second BOM is data: it becomes part of the first line, whose
     * field name is then "\uFEFFdata", an unknown field; a line starting
     * with it is no comment either. */
    EXPECT("\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\n", "", "");
    EXPECT("\xEF\xBB\xBF\xEF\xBB\xBF" ":c\n", "", "");
    EXPECT("\xEF\xBB\xBF" "data: \xEF\xBB\xBF" "x\n\n", "E:message|\xEF\xBB\xBF" "x|\n", "");
    EXPECT("\xEF\xBB\xBF\xEF\xBB\xBF\ndata: a\n\n", "E:message|a|\n", "");
}

static void test_bom_not_at_start_kept(void)
{
    EXPECT("data: a\n\n\xEF\xBB\xBF" "data: b\n\n", "E:message|a|\n", "");
    EXPECT("\n\xEF\xBB\xBF" "data: b\n\n", "", "");
    EXPECT("data: \xEF\xBB\xBF\n\n", "E:message|\xEF\xBB\xBF|\n", "");
    /* A broken BOM at the start is repaired, not stripped. */
    EXPECT("\xEF\xBB" "data: a\n\n", "", "");
    EXPECT("\xEF\xBB:x\n", "", "");
    EXPECT("\xEF\xBB\n:x\n", "C:x\n", "");
}

/* ---- fields ---- */

static void test_data_lines(void)
{
    EXPECT("data: a\ndata: b\ndata: c\n\n", "E:message|a\nb\nc|\n", "");
    EXPECT("data\n\n", "E:message||\n", "");
    EXPECT("data\ndata: x\ndata\n\n", "E:message|\nx\n|\n", "");
    EXPECT("data:\n\n", "E:message||\n", "");
    /* A value may hold colons. */
    EXPECT("data: a:b: c\n\n", "E:message|a:b: c|\n", "");
    /* data with a NUL byte stays whole. */
    EXPECT("data: a\0b\n\n", "E:message|a\0b|\n", "");
}

static void test_one_space_rule(void)
{
    EXPECT("data:  x\n\n", "E:message| x|\n", "");
    EXPECT("data:x\n\n", "E:message|x|\n", "");
    EXPECT("data:\tx\n\n", "E:message|\tx|\n", "");
    EXPECT("data: \n\n", "E:message||\n", "");
    EXPECT("data:  \n\n", "E:message| |\n", "");
    EXPECT("event:  t\ndata: x\n\n", "E: t|x|\n", "");
    EXPECT("id:  7\ndata: x\n\n", "E:message|x| 7\n", " 7");
}

static void test_id_rules(void)
{
    /* An id holding NUL is ignored: the last ID stays 5. */
    EXPECT("id: 5\ndata: a\n\nid: 6\0\ndata: b\n\n",
           "E:message|a|5\nE:message|b|5\n", "5");
    EXPECT("id: \0\n\n", "", "");
    /* Empty values reset the last ID, with or without a colon. */
    EXPECT("id: 1\ndata: a\n\nid\ndata: b\n\n", "E:message|a|1\nE:message|b|\n", "");
    EXPECT("id: 1\ndata: a\n\nid:\ndata: b\n\n", "E:message|a|1\nE:message|b|\n", "");
    EXPECT("id: 1\ndata: a\n\nid: \ndata: b\n\n", "E:message|a|1\nE:message|b|\n", "");
    /* The last ID carries over to events without an id field. */
    EXPECT("id: 7\ndata: a\n\ndata: b\n\n", "E:message|a|7\nE:message|b|7\n", "7");
    /* The last id field of a block wins; it may come after the data. */
    EXPECT("id: 1\ndata: a\nid: 2\n\n", "E:message|a|2\n", "2");
    /* An id-only block changes the last ID and dispatches nothing. */
    EXPECT("id: 7\n\n", "", "7");
    EXPECT("data: a\n\nid: 8\n\ndata: b\n\n", "E:message|a|\nE:message|b|8\n", "8");
}

static void test_id_needs_blank_line(void)
{
    struct spell_sse_parser p;
    struct rec r;
    open_parser(&p, &r, 0, 0);
    CHECK_INT(spell_sse_feed(&p, LIT("id: 1\n\nid: 2\ndata: x\n")), SPELL_OK);
    CHECK_STR(spell_sse_last_event_id(&p), "1");
    CHECK_INT(spell_sse_feed(&p, LIT("\n")), SPELL_OK);
    CHECK_STR(spell_sse_last_event_id(&p), "2");
    CHECK_STR(spell_buf_str(&r.log), "E:message|x|2\n");
    close_parser(&p, &r);
}

static long retry_after(const char *s, size_t n)
{
    struct spell_sse_parser p;
    struct rec r;
    open_parser(&p, &r, 0, 0);
    CHECK_INT(spell_sse_feed(&p, s, n), SPELL_OK);
    long ms = spell_sse_retry_ms(&p);
    close_parser(&p, &r);
    return ms;
}

static void test_retry_rules(void)
{
    CHECK_INT(retry_after(LIT("")), -1);
    CHECK_INT(retry_after(LIT("retry: 1000\n")), 1000);
    CHECK_INT(retry_after(LIT("retry:1000\n")), 1000);
    CHECK_INT(retry_after(LIT("retry: 0\n")), 0);
    CHECK_INT(retry_after(LIT("retry: 007\n")), 7);
    CHECK_INT(retry_after(LIT("retry: 10a\n")), -1);
    CHECK_INT(retry_after(LIT("retry: -1\n")), -1);
    CHECK_INT(retry_after(LIT("retry: +5\n")), -1);
    CHECK_INT(retry_after(LIT("retry:\n")), -1);
    CHECK_INT(retry_after(LIT("retry\n")), -1);
    CHECK_INT(retry_after(LIT("retry:  5\n")), -1);
    CHECK_INT(retry_after(LIT("retry: 5 \n")), -1);
    CHECK_INT(retry_after(LIT("retry: 1.5\n")), -1);
    CHECK_INT(retry_after(LIT("retry: \xD9\xA3\n")), -1);  /* ARABIC-INDIC DIGIT THREE */
    CHECK_INT(retry_after(LIT("retry: 99999999999999999999999999\n")), -1);
    CHECK_INT(retry_after(LIT("Retry: 5\n")), -1);
    /* The last valid one wins, invalid ones leave it; no blank line needed. */
    CHECK_INT(retry_after(LIT("retry: 5000\nretry: 1a\nretry: -1\nretry:\nretry: 250\n")), 250);
    CHECK_INT(retry_after(LIT("retry: 5000\nretry: x\n")), 5000);
    /* Only a complete line counts. */
    CHECK_INT(retry_after(LIT("retry: 5000")), -1);
}

static void test_retry_survives_reset(void)
{
    struct spell_sse_parser p;
    struct rec r;
    open_parser(&p, &r, 0, 0);
    CHECK_INT(spell_sse_feed(&p, LIT("retry: 3000\nid: 4\n\ndata: x\n")), SPELL_OK);
    spell_sse_parser_reset_stream(&p);
    CHECK_INT(spell_sse_retry_ms(&p), 3000);
    CHECK_STR(spell_sse_last_event_id(&p), "4");
    CHECK_INT(spell_sse_feed(&p, LIT("\n")), SPELL_OK);
    CHECK_INT(r.events, 0);
    close_parser(&p, &r);
}

static void test_comments(void)
{
    EXPECT(": ping\n", "C:ping\n", "");
    EXPECT(":\n", "C:\n", "");
    EXPECT(":ping\n", "C:ping\n", "");
    EXPECT(":  two\n", "C: two\n", "");
    EXPECT(":: x: y\n", "C:: x: y\n", "");
}

static void test_comments_order(void)
{
    /* Comments are reported in stream order and neither split nor
     * dispatch the event around them. */
    EXPECT("data: a\n: c\ndata: b\n\n", "C:c\nE:message|a\nb|\n", "");
    EXPECT(": one\r: two\r\n\r\n", "C:one\nC:two\n", "");

    /* Without a comment callback, comments are still skipped. */
    struct spell_sse_parser p;
    struct rec r;
    rec_init(&r);
    CHECK_INT(spell_sse_parser_init(&p, 0, 0, rec_event, NULL, &r), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, LIT(": ping\ndata: a\n\n")), SPELL_OK);
    CHECK_STR(spell_buf_str(&r.log), "E:message|a|\n");
    close_parser(&p, &r);
}

static void test_unknown_fields(void)
{
    EXPECT("foo: bar\nData: x\nDATA: y\ndata : z\n data: w\nevent\n\n", "", "");
    EXPECT("foo: bar\ndata: x\nEvent: no\nID: 9\n\n", "E:message|x|\n", "");
    EXPECT("datax: 1\ndat: 2\ndata: 3\n\n", "E:message|3|\n", "");
}

static void test_event_type(void)
{
    EXPECT("event:\ndata: a\n\n", "E:message|a|\n", "");
    EXPECT("event\ndata: a\n\n", "E:message|a|\n", "");
    EXPECT("event: x\ndata: a\n\ndata: b\n\n", "E:x|a|\nE:message|b|\n", "");
    /* A block without data resets the type too. */
    EXPECT("event: ignored\n\ndata: x\n\n", "E:message|x|\n", "");
    /* The last event field wins; an empty one means "message". */
    EXPECT("event: a\nevent: b\ndata: x\n\n", "E:b|x|\n", "");
    EXPECT("event: a\nevent:\ndata: x\n\n", "E:message|x|\n", "");
    EXPECT("event: cast.progress\ndata: {}\n\n", "E:cast.progress|{}|\n", "");
    /* A NUL inside a type is kept; type_len tells. */
    EXPECT("event: a\0b\ndata: x\n\n", "E:a\0b|x|\n", "");
}

static void test_incomplete_event_discarded(void)
{
    struct spell_sse_parser p;
    struct rec r;
    open_parser(&p, &r, 0, 0);
    CHECK_INT(spell_sse_feed(&p, LIT("id: 1\ndata: a\n\nid: 9\nevent: t\ndata: b\n")),
              SPELL_OK);
    CHECK_INT(r.events, 1);
    /* The stream ends: the pending event, its type and ID are dropped. */
    spell_sse_parser_reset_stream(&p);
    CHECK_STR(spell_sse_last_event_id(&p), "1");
    CHECK_INT(spell_sse_feed(&p, LIT("\n")), SPELL_OK);
    CHECK_INT(r.events, 1);
    CHECK_STR(spell_sse_last_event_id(&p), "1");
    /* A partial line is dropped too. */
    CHECK_INT(spell_sse_feed(&p, LIT("data: c")), SPELL_OK);
    spell_sse_parser_reset_stream(&p);
    CHECK_INT(spell_sse_feed(&p, LIT("\n\ndata: d\n\n")), SPELL_OK);
    CHECK_STR(spell_buf_str(&r.log), "E:message|a|1\nE:message|d|1\n");
    /* A CR ending the old stream and an LF starting the new do no harm. */
    CHECK_INT(spell_sse_feed(&p, LIT("data: e\r")), SPELL_OK);
    spell_sse_parser_reset_stream(&p);
    CHECK_INT(spell_sse_feed(&p, LIT("\ndata: f\n\n")), SPELL_OK);
    CHECK_STR(spell_buf_str(&r.log), "E:message|a|1\nE:message|d|1\nE:message|f|1\n");
    /* A sequence cut by the end of a stream does not join the next. */
    CHECK_INT(spell_sse_feed(&p, LIT("data: \xE2\x82")), SPELL_OK);
    spell_sse_parser_reset_stream(&p);
    CHECK_INT(spell_sse_feed(&p, LIT("\xAC\n\n")), SPELL_OK);
    CHECK_INT(r.events, 3);
    close_parser(&p, &r);
}

/* ---- caps and failures ---- */

static void test_line_cap(void)
{
    struct spell_sse_parser p;
    struct rec r;
    open_parser(&p, &r, 8, 0);
    CHECK_INT(spell_sse_feed(&p, LIT("data: ab\n\n")), SPELL_OK);         /* 8 bytes */
    CHECK_INT(spell_sse_feed(&p, LIT(":2345678\r\n")), SPELL_OK);
    CHECK_STR(spell_buf_str(&r.log), "E:message|ab|\nC:2345678\n");
    CHECK_INT(spell_sse_feed(&p, LIT("data: abc\n\n")), SPELL_ETOOBIG);
    /* The failure sticks until a new stream. */
    CHECK_INT(spell_sse_feed(&p, LIT("data: a\n\n")), SPELL_ETOOBIG);
    CHECK_INT(r.events, 1);
    spell_sse_parser_reset_stream(&p);
    CHECK_INT(spell_sse_feed(&p, LIT("data: a\n\n")), SPELL_OK);
    CHECK_INT(r.events, 2);
    close_parser(&p, &r);

    /* The cap trips at the ninth byte, before any line end arrives. */
    open_parser(&p, &r, 8, 0);
    for (int i = 0; i < 8; i++)
        CHECK_INT(spell_sse_feed(&p, "x", 1), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, "x", 1), SPELL_ETOOBIG);
    close_parser(&p, &r);

    /* Replacement characters count after decoding: 3 bytes each. */
    open_parser(&p, &r, 8, 0);
    CHECK_INT(spell_sse_feed(&p, LIT("data:\xFF\n")), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, LIT("data:\xFF\xFF\n")), SPELL_ETOOBIG);
    close_parser(&p, &r);
}

static void test_default_line_cap(void)
{
    struct spell_sse_parser p;
    struct rec r;
    open_parser(&p, &r, 0, 0);
    size_t n = SPELL_SSE_DEFAULT_MAX_LINE;
    char *big = malloc(n + 2);
    CHECK(big != NULL);
    if (!big)
        return;
    memcpy(big, "data:", 5);
    memset(big + 5, 'q', n - 5);
    big[n] = '\n';
    big[n + 1] = '\n';
    CHECK_INT(spell_sse_feed(&p, big, n + 2), SPELL_OK);
    CHECK_INT(r.events, 1);
    big[n] = 'q';
    CHECK_INT(spell_sse_feed(&p, big, n + 2), SPELL_ETOOBIG);
    free(big);
    close_parser(&p, &r);
}

static void test_event_cap(void)
{
    struct spell_sse_parser p;
    struct rec r;
    open_parser(&p, &r, 0, 10);
    CHECK_INT(spell_sse_feed(&p, LIT("data: 0123456789\n\n")), SPELL_OK);
    /* Joined with LF: "01234\n0123" is 10 bytes. */
    CHECK_INT(spell_sse_feed(&p, LIT("data: 01234\ndata: 0123\n\n")), SPELL_OK);
    CHECK_INT(spell_sse_feed(&p, LIT("data\ndata\ndata\ndata\ndata\ndata\ndata\n"
                                     "data\ndata\ndata\ndata\n\n")), SPELL_OK);
    CHECK_INT(r.events, 3);
    CHECK_INT(spell_sse_feed(&p, LIT("data: 01234\ndata: 01234\n\n")), SPELL_ETOOBIG);
    CHECK_INT(r.events, 3);
    spell_sse_parser_reset_stream(&p);
    CHECK_INT(spell_sse_feed(&p, LIT("data: 01234567890\n")), SPELL_ETOOBIG);
    spell_sse_parser_reset_stream(&p);
    /* Twelve empty data lines are eleven LFs: one too many. */
    CHECK_INT(spell_sse_feed(&p, LIT("data\ndata\ndata\ndata\ndata\ndata\ndata\n"
                                     "data\ndata\ndata\ndata\ndata\n")), SPELL_ETOOBIG);
    spell_sse_parser_reset_stream(&p);
    /* A dispatched event frees its room for the next. */
    for (int i = 0; i < 50; i++)
        CHECK_INT(spell_sse_feed(&p, LIT("data: 0123456789\n\n")), SPELL_OK);
    CHECK_INT(r.events, 53);
    /* Other fields do not count against the data cap. */
    CHECK_INT(spell_sse_feed(&p, LIT("event: a-long-event-type\nid: a-long-event-id\n"
                                     "data: 0123456789\n\n")), SPELL_OK);
    CHECK_INT(r.events, 54);
    close_parser(&p, &r);
}

static void test_abort_from_callback(void)
{
    struct spell_sse_parser p;
    struct rec r;
    open_parser(&p, &r, 0, 0);
    r.stop_events = 1;
    CHECK_INT(spell_sse_feed(&p, LIT("id: 1\ndata: a\n\nid: 2\ndata: b\n\n")), SPELL_EABORT);
    CHECK_INT(r.events, 1);
    CHECK_STR(spell_sse_last_event_id(&p), "1");
    CHECK_INT(spell_sse_feed(&p, LIT("data: c\n\n")), SPELL_EABORT);
    CHECK_INT(r.events, 1);
    spell_sse_parser_reset_stream(&p);
    r.stop_events = 0;
    CHECK_INT(spell_sse_feed(&p, LIT("data: c\n\n")), SPELL_OK);
    CHECK_STR(spell_buf_str(&r.log), "E:message|a|1\nE:message|c|1\n");
    close_parser(&p, &r);

    open_parser(&p, &r, 0, 0);
    r.stop_comments = 1;
    CHECK_INT(spell_sse_feed(&p, LIT(": ping\ndata: a\n\n")), SPELL_EABORT);
    CHECK_STR(spell_buf_str(&r.log), "C:ping\n");
    close_parser(&p, &r);
}

static void test_bad_arguments(void)
{
    struct spell_sse_parser p;
    CHECK_INT(spell_sse_parser_init(NULL, 0, 0, NULL, NULL, NULL), SPELL_EINVAL);
    CHECK_INT(spell_sse_parser_init(&p, SPELL_SSE_MAX_CAP + 1, 0, NULL, NULL, NULL),
              SPELL_EINVAL);
    CHECK_INT(spell_sse_feed(&p, LIT("data: a\n\n")), SPELL_EINVAL);
    spell_sse_parser_reset_stream(&p);
    CHECK_INT(spell_sse_feed(&p, LIT("data: a\n\n")), SPELL_EINVAL);
    spell_sse_parser_free(&p);
    CHECK_INT(spell_sse_parser_init(&p, 0, (size_t)-1, NULL, NULL, NULL), SPELL_EINVAL);
    spell_sse_parser_free(&p);

    CHECK_INT(spell_sse_parser_init(&p, 0, 0, NULL, NULL, NULL), SPELL_OK);
    CHECK_INT(spell_sse_feed(NULL, "x", 1), SPELL_EINVAL);
    CHECK_INT(spell_sse_feed(&p, NULL, 1), SPELL_EINVAL);
    /* No event callback: IDs are still tracked. */
    CHECK_INT(spell_sse_feed(&p, LIT("id: 3\ndata: a\n\n")), SPELL_OK);
    CHECK_STR(spell_sse_last_event_id(&p), "3");
    spell_sse_parser_free(&p);
    spell_sse_parser_free(NULL);
    spell_sse_parser_reset_stream(NULL);
    CHECK_STR(spell_sse_last_event_id(NULL), "");
    CHECK_INT(spell_sse_retry_ms(NULL), -1);
}

/* ---- UTF-8 repair ---- */

static void test_invalid_utf8_replaced(void)
{
#define FFFD "\xEF\xBF\xBD"
    EXPECT("data: a\xFF" "b\n\n", "E:message|a" FFFD "b|\n", "");
    EXPECT("data: \xC0\xAF\n\n", "E:message|" FFFD FFFD "|\n", "");           /* overlong */
    EXPECT("data: \xE0\x80\x80\n\n", "E:message|" FFFD FFFD FFFD "|\n", "");
    EXPECT("data: \xED\xA0\x80\n\n", "E:message|" FFFD FFFD FFFD "|\n", "");   /* surrogate */
    EXPECT("data: \xF4\x90\x80\x80\n\n", "E:message|" FFFD FFFD FFFD FFFD "|\n", "");
    EXPECT("data: \xF5\n\n", "E:message|" FFFD "|\n", "");
    /* A truncated sequence is one U+FFFD (its maximal subpart), and the
     * byte that cut it is decoded afresh. */
    EXPECT("data: \xF0\x9F\x98x\n\n", "E:message|" FFFD "x|\n", "");
    EXPECT("data: \xE2\x82\n\n", "E:message|" FFFD "|\n", "");
    EXPECT("data: \xE2\x82\xE2\x82\xAC\n\n", "E:message|" FFFD "\xE2\x82\xAC|\n", "");
    EXPECT("data: \x80\x80\n\n", "E:message|" FFFD FFFD "|\n", "");
    /* Well-formed text passes unchanged, whatever the chunking. */
    EXPECT("data: \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF\n\n",
           "E:message|\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF|\n", "");
    /* A CR inside a sequence ends both the sequence and the line. */
    EXPECT("data: \xE2\r\n\n", "E:message|" FFFD "|\n", "");
    /* Field names are decoded too: a broken "data" is not "data". */
    EXPECT("dat\xE1:x\n\n", "", "");
    /* An invalid id is repaired, not rejected. */
    EXPECT("id: \xFF\ndata: a\n\n", "E:message|a|" FFFD "\n", FFFD);
#undef FFFD
}

/* ---- writer ---- */

static void test_writer_exact_bytes(void)
{
    struct spell_buf b;
    spell_buf_init(&b, 4096);
    CHECK_INT(spell_sse_write_event(&b, "1", "cast.queued", LIT("{\"status\":\"queued\"}")),
              SPELL_OK);
    CHECK_STR(spell_buf_str(&b), "id: 1\nevent: cast.queued\ndata: {\"status\":\"queued\"}\n\n");
    spell_buf_reset(&b);
    CHECK_INT(spell_sse_write_event(&b, NULL, NULL, LIT("x")), SPELL_OK);
    CHECK_STR(spell_buf_str(&b), "data: x\n\n");
    spell_buf_reset(&b);
    CHECK_INT(spell_sse_write_event(&b, "7", NULL, NULL, 0), SPELL_OK);
    CHECK_STR(spell_buf_str(&b), "id: 7\n\n");
    spell_buf_reset(&b);
    CHECK_INT(spell_sse_write_event(&b, "", "", "", 0), SPELL_OK);
    CHECK_STR(spell_buf_str(&b), "id:\nevent:\ndata:\n\n");
    spell_buf_reset(&b);
    CHECK_INT(spell_sse_write_event(&b, NULL, "t", LIT("a\nb\r\nc\rd")), SPELL_OK);
    CHECK_STR(spell_buf_str(&b), "event: t\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
    spell_buf_reset(&b);
    CHECK_INT(spell_sse_write_event(&b, NULL, NULL, LIT("\n\r\r\n a\n")), SPELL_OK);
    CHECK_STR(spell_buf_str(&b), "data:\ndata:\ndata:\ndata:  a\ndata:\n\n");
    spell_buf_reset(&b);
    CHECK_INT(spell_sse_write_event(&b, " 1", " t", LIT(" x")), SPELL_OK);
    CHECK_STR(spell_buf_str(&b), "id:  1\nevent:  t\ndata:  x\n\n");
    spell_buf_reset(&b);
    CHECK_INT(spell_sse_write_event(&b, NULL, NULL, LIT("a\0b")), SPELL_OK);
    CHECK_MEM(b.ptr, b.len, "data: a\0b\n\n", 11);
    spell_buf_reset(&b);

    CHECK_INT(spell_sse_write_comment(&b, "ping"), SPELL_OK);
    CHECK_INT(spell_sse_write_comment(&b, NULL), SPELL_OK);
    CHECK_INT(spell_sse_write_comment(&b, ""), SPELL_OK);
    CHECK_INT(spell_sse_write_retry(&b, 15000), SPELL_OK);
    CHECK_INT(spell_sse_write_retry(&b, 0), SPELL_OK);
    CHECK_STR(spell_buf_str(&b), ": ping\n\n:\n\n:\n\nretry: 15000\n\nretry: 0\n\n");
    spell_buf_free(&b);
}

static void test_writer_rejects(void)
{
    struct spell_buf b;
    spell_buf_init(&b, 4096);
    spell_buf_addstr(&b, "kept");
    static const char *const bad[] = { "1\n2", "1\r", "\n", "\r\n", "a\xFF", "\xC0\xAF",
                                       "\xED\xA0\x80", "\xE2\x82" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(spell_sse_write_event(&b, bad[i], "t", LIT("x")), SPELL_EINVAL);
        CHECK_INT(spell_sse_write_event(&b, "1", bad[i], LIT("x")), SPELL_EINVAL);
        CHECK_INT(spell_sse_write_comment(&b, bad[i]), SPELL_EINVAL);
    }
    CHECK_INT(spell_sse_write_event(&b, "1", "t", LIT("a\xFF")), SPELL_EINVAL);
    CHECK_INT(spell_sse_write_event(&b, "1", "t", LIT("\xF0\x9F\x98")), SPELL_EINVAL);
    CHECK_INT(spell_sse_write_event(&b, "1", "t", NULL, 3), SPELL_EINVAL);
    CHECK_INT(spell_sse_write_event(NULL, "1", "t", LIT("x")), SPELL_EINVAL);
    CHECK_INT(spell_sse_write_comment(NULL, "x"), SPELL_EINVAL);
    CHECK_INT(spell_sse_write_retry(&b, -1), SPELL_EINVAL);
    CHECK_INT(spell_sse_write_retry(NULL, 5), SPELL_EINVAL);
    CHECK_STR(spell_buf_str(&b), "kept");
    CHECK_INT(b.len, 4);
    spell_buf_free(&b);

    /* Out of room: nothing is appended, not even the lines that fit. */
    spell_buf_init(&b, 30);
    spell_buf_addstr(&b, "kept");
    CHECK_INT(spell_sse_write_event(&b, "123", "cast.progress", LIT("0123456789")),
              SPELL_ETOOBIG);
    CHECK_STR(spell_buf_str(&b), "kept");
    CHECK_INT(spell_sse_write_comment(&b, "a long comment that will not fit"), SPELL_ETOOBIG);
    CHECK_INT(spell_sse_write_retry(&b, LONG_MAX), SPELL_ETOOBIG);
    CHECK_STR(spell_buf_str(&b), "kept");
    /* Exactly full is fine: "kept" + "data: 0123456789abc\n\n" is 25. */
    CHECK_INT(spell_sse_write_event(&b, NULL, NULL, LIT("0123456789abc")), SPELL_OK);
    CHECK_INT(spell_sse_write_event(&b, NULL, NULL, LIT("abcd")), SPELL_ETOOBIG);
    CHECK_INT(spell_sse_write_event(&b, NULL, NULL, LIT("a")), SPELL_ETOOBIG);
    CHECK_INT(spell_sse_write_comment(&b, "a"), SPELL_OK);
    CHECK_INT(b.len, 30);
    CHECK_STR(spell_buf_str(&b), "keptdata: 0123456789abc\n\n: a\n\n");
    spell_buf_free(&b);
}

/* ---- round trips ---- */

/* CRLF and CR become LF, as a parser rebuilds them. */
static size_t normalize(const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            out[k++] = '\n';
            if (i + 1 < n && s[i + 1] == '\n')
                i++;
        } else {
            out[k++] = s[i];
        }
    }
    return k;
}

static void test_round_trip_line_breaks(void)
{
    static const struct { const char *in; size_t len; const char *out; } cases[] = {
        { LIT("a\nb"), "a\nb" },
        { LIT("a\rb"), "a\nb" },
        { LIT("a\r\nb"), "a\nb" },
        { LIT("\r\n\r\n"), "\n\n" },
        { LIT("\n"), "\n" },
        { LIT("\r"), "\n" },
        { LIT("x\r\r\n\n\ry"), "x\n\n\n\ny" },
        { LIT(""), "" },
        { LIT(" lead"), " lead" },
        { LIT("data: nested\n\nid: 9"), "data: nested\n\nid: 9" },
        { LIT(": not a comment"), ": not a comment" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spell_buf b;
        struct spell_sse_parser p;
        struct rec r;
        spell_buf_init(&b, 4096);
        CHECK_INT(spell_sse_write_event(&b, "42", "cast.log", cases[i].in, cases[i].len),
                  SPELL_OK);
        open_parser(&p, &r, 0, 0);
        CHECK_INT(spell_sse_feed(&p, b.ptr, b.len), SPELL_OK);
        struct spell_buf want;
        spell_buf_init(&want, 4096);
        spell_buf_addf(&want, "E:cast.log|%s|42\n", cases[i].out);
        CHECK_STR(spell_buf_str(&r.log), spell_buf_str(&want));
        CHECK_STR(spell_sse_last_event_id(&p), "42");
        spell_buf_free(&want);
        spell_buf_free(&b);
        close_parser(&p, &r);
    }
}

/* A small generator with its state in the caller's hands (xorshift64*). */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static size_t rng_below(uint64_t *s, size_t n)
{
    return (size_t)(rng_next(s) % n);
}

/* Random well-formed text from pieces chosen to stress the format. */
static size_t random_text(uint64_t *s, char *out, size_t max_pieces, int line_breaks)
{
    static const char *const pieces[] = {
        "a", "Z", " ", ":", "data: ", "id", "\xC3\xA9", "\xE2\x82\xAC",
        "\xF0\x9F\x98\x80", "\xEF\xBB\xBF", "{\"k\":1}", "\t", "\n", "\r", "\r\n", "\0",
    };
    size_t n = 0;
    size_t count = rng_below(s, max_pieces + 1);
    size_t kinds = sizeof pieces / sizeof pieces[0] - (line_breaks ? 0 : 4);
    for (size_t i = 0; i < count; i++) {
        size_t k = rng_below(s, kinds);
        size_t len = pieces[k][0] ? strlen(pieces[k]) : 1;
        memcpy(out + n, pieces[k], len);
        n += len;
    }
    out[n] = '\0';
    return n;
}

static void test_random_round_trip(void)
{
    enum { EVENTS = 300 };
    uint64_t seed = 0x5eed5ca57ULL;
    struct spell_buf stream, want;
    spell_buf_init(&stream, 1 << 20);
    spell_buf_init(&want, 1 << 20);
    char id[256], type[256], data[256], norm[256], text[256];
    char last_id[256] = "";
    long last_retry = -1;
    int comments = 0;

    for (int i = 0; i < EVENTS; i++) {
        int has_id = rng_below(&seed, 3) != 0;
        int has_type = rng_below(&seed, 3) != 0;
        size_t id_len = random_text(&seed, id, 6, 0);
        random_text(&seed, type, 6, 0);
        size_t data_len = random_text(&seed, data, 12, 1);
        CHECK_INT(spell_sse_write_event(&stream, has_id ? id : NULL, has_type ? type : NULL,
                                        data, data_len), SPELL_OK);
        if (has_id)
            memcpy(last_id, id, id_len + 1);
        size_t norm_len = normalize(data, data_len, norm);
        spell_buf_addstr(&want, "E:");
        if (has_type && type[0])
            spell_buf_addstr(&want, type);
        else
            spell_buf_addstr(&want, "message");
        spell_buf_addc(&want, '|');
        spell_buf_add(&want, norm, norm_len);
        spell_buf_addc(&want, '|');
        spell_buf_addstr(&want, last_id);
        spell_buf_addc(&want, '\n');

        if (rng_below(&seed, 5) == 0) {
            random_text(&seed, text, 4, 0);
            CHECK_INT(spell_sse_write_comment(&stream, text), SPELL_OK);
            comments++;
        }
        if (rng_below(&seed, 10) == 0) {
            last_retry = (long)rng_below(&seed, 100000);
            CHECK_INT(spell_sse_write_retry(&stream, last_retry), SPELL_OK);
        }
    }

    /* Round 0 feeds one byte at a time, then small and large random cuts. */
    for (int round = 0; round < 40; round++) {
        struct spell_sse_parser p;
        struct rec r;
        open_parser(&p, &r, 0, 0);
        r.quiet_comments = 1;
        size_t pos = 0;
        int rc = SPELL_OK;
        while (pos < stream.len && rc == SPELL_OK) {
            size_t n = round == 0 ? 1 : 1 + rng_below(&seed, round < 20 ? 8 : 300);
            if (n > stream.len - pos)
                n = stream.len - pos;
            rc = spell_sse_feed(&p, stream.ptr + pos, n);
            pos += n;
        }
        CHECK_INT(rc, SPELL_OK);
        CHECK_INT(r.events, EVENTS);
        CHECK_INT(r.comments, comments);
        CHECK_MEM(r.log.ptr, r.log.len, want.ptr, want.len);
        CHECK_STR(spell_sse_last_event_id(&p), last_id);
        CHECK_INT(spell_sse_retry_ms(&p), last_retry);
        close_parser(&p, &r);
    }
    spell_buf_free(&stream);
    spell_buf_free(&want);
}

int main(void)
{
    RUN(test_spec_stock_example);
    RUN(test_spec_four_blocks_example);
    RUN(test_spec_two_events_example);
    RUN(test_spec_identical_events_example);
    RUN(test_spec_event_types_example);
    RUN(test_line_ends);
    RUN(test_crlf_split_across_chunks);
    RUN(test_byte_at_a_time_long_stream);
    RUN(test_bom_whole_and_split);
    RUN(test_bom_only_once);
    RUN(test_bom_not_at_start_kept);
    RUN(test_data_lines);
    RUN(test_one_space_rule);
    RUN(test_id_rules);
    RUN(test_id_needs_blank_line);
    RUN(test_retry_rules);
    RUN(test_retry_survives_reset);
    RUN(test_comments);
    RUN(test_comments_order);
    RUN(test_unknown_fields);
    RUN(test_event_type);
    RUN(test_incomplete_event_discarded);
    RUN(test_line_cap);
    RUN(test_default_line_cap);
    RUN(test_event_cap);
    RUN(test_abort_from_callback);
    RUN(test_bad_arguments);
    RUN(test_invalid_utf8_replaced);
    RUN(test_writer_exact_bytes);
    RUN(test_writer_rejects);
    RUN(test_round_trip_line_breaks);
    RUN(test_random_round_trip);
    return tap_done();
}
