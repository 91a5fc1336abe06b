/*
 * Server-Sent Events (sse.h): the text/event-stream parser and writer.
 *
 * The parser is three stages run byte by byte as chunks arrive, each
 * keeping its state in struct spell_sse_parser so a chunk may end anywhere:
 *
 *   feed -> UTF-8 decoder -> line splitter -> line interpreter -> callbacks
 *
 * The decoder follows the WHATWG Encoding "UTF-8 decoder" (the one
 * EventSource uses): well-formed sequences pass through unchanged, each
 * ill-formed one becomes U+FFFD and the byte that broke it is looked at
 * again as the start of a new sequence.  Runs of plain ASCII skip the
 * decoder and go to the line buffer in one append.  The splitter ends
 * lines at CR, LF and CRLF; the interpreter is the WHATWG HTML
 * "Interpreting an event stream" steps, one function per step.
 */
#include <limits.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/sse.h"
#include "spell/utf8.h"

static const char replacement[] = "\xEF\xBF\xBD";   /* U+FFFD in UTF-8 */

int spell_sse_parser_init(struct spell_sse_parser *p, size_t max_line, size_t max_event,
                          spell_sse_event_cb on_event, spell_sse_comment_cb on_comment,
                          void *userdata)
{
    int rc = SPELL_OK;
    if (!p)
        return SPELL_EINVAL;
    if (max_line == 0)
        max_line = SPELL_SSE_DEFAULT_MAX_LINE;
    if (max_event == 0)
        max_event = SPELL_SSE_DEFAULT_MAX_EVENT;
    if (max_line > SPELL_SSE_MAX_CAP || max_event > SPELL_SSE_MAX_CAP) {
        /* Buffers of cap 0 keep spell_sse_parser_free() safe. */
        max_line = 0;
        max_event = 0;
        rc = SPELL_EINVAL;
    }
    memset(p, 0, sizeof *p);
    p->max_line = max_line;
    p->max_event = max_event;
    spell_buf_init(&p->line, max_line);
    /* The data buffer also holds the LF after the last value, which the
     * dispatched data does not count. */
    spell_buf_init(&p->data, max_event + 1);
    spell_buf_init(&p->type, max_line);
    spell_buf_init(&p->id_buf, max_line);
    spell_buf_init(&p->last_id, max_line);
    p->retry_ms = -1;
    p->on_event = on_event;
    p->on_comment = on_comment;
    p->userdata = userdata;
    p->at_start = 1;
    p->failed = rc;
    return rc;
}

void spell_sse_parser_free(struct spell_sse_parser *p)
{
    if (!p)
        return;
    spell_buf_free(&p->line);
    spell_buf_free(&p->data);
    spell_buf_free(&p->type);
    spell_buf_free(&p->id_buf);
    spell_buf_free(&p->last_id);
}

void spell_sse_parser_reset_stream(struct spell_sse_parser *p)
{
    if (!p)
        return;
    spell_buf_reset(&p->line);
    spell_buf_reset(&p->data);
    spell_buf_reset(&p->type);
    spell_buf_reset(&p->id_buf);
    p->id_set = 0;
    p->seq_len = 0;
    p->seq_need = 0;
    p->at_start = 1;
    p->after_cr = 0;
    if (p->max_line != 0)       /* 0 only after a refused init */
        p->failed = SPELL_OK;
}

const char *spell_sse_last_event_id(const struct spell_sse_parser *p)
{
    return p ? spell_buf_str(&p->last_id) : "";
}

long spell_sse_retry_ms(const struct spell_sse_parser *p)
{
    return p ? p->retry_ms : -1;
}

/* ---- line interpreter ---- */

static int field_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

/* "retry": only ASCII digits, at least one, and small enough for a long. */
static void set_retry(struct spell_sse_parser *p, const char *v, size_t len)
{
    long ms = 0;
    if (len == 0)
        return;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
        long d = v[i] - '0';
        if (ms > (LONG_MAX - d) / 10)
            return;
        ms = ms * 10 + d;
    }
    p->retry_ms = ms;
}

static int process_field(struct spell_sse_parser *p, const char *name, size_t name_len,
                         const char *value, size_t value_len)
{
    int rc = SPELL_OK;
    if (field_is(name, name_len, "event")) {
        spell_buf_reset(&p->type);
        rc = spell_buf_add(&p->type, value, value_len);
    } else if (field_is(name, name_len, "data")) {
        /* p->data ends in LF (or is empty), so its length plus this value
         * is the data as it would be dispatched now. */
        if (value_len > p->max_event || p->data.len > p->max_event - value_len)
            return SPELL_ETOOBIG;
        if ((rc = spell_buf_add(&p->data, value, value_len)) != SPELL_OK)
            return rc;
        rc = spell_buf_addc(&p->data, '\n');
    } else if (field_is(name, name_len, "id")) {
        if (memchr(value, '\0', value_len))
            return SPELL_OK;
        spell_buf_reset(&p->id_buf);
        if ((rc = spell_buf_add(&p->id_buf, value, value_len)) != SPELL_OK)
            return rc;
        p->id_set = 1;
    } else if (field_is(name, name_len, "retry")) {
        set_retry(p, value, value_len);
    }
    return rc;
}

static int dispatch(struct spell_sse_parser *p)
{
    int stop = 0;
    if (p->id_set) {
        struct spell_buf t = p->last_id;
        p->last_id = p->id_buf;
        p->id_buf = t;
        spell_buf_reset(&p->id_buf);
        p->id_set = 0;
    }
    if (p->data.len == 0) {
        spell_buf_reset(&p->type);
        return SPELL_OK;
    }
    /* Drop the LF after the last value; the NUL keeps data a C string. */
    p->data.len--;
    p->data.ptr[p->data.len] = '\0';
    if (p->on_event) {
        struct spell_sse_event ev = {
            .type = p->type.len ? spell_buf_str(&p->type) : "message",
            .type_len = p->type.len ? p->type.len : strlen("message"),
            .data = spell_buf_str(&p->data),
            .data_len = p->data.len,
            .id = spell_buf_str(&p->last_id),
            .id_len = p->last_id.len,
        };
        stop = p->on_event(&ev, p->userdata);
    }
    spell_buf_reset(&p->data);
    spell_buf_reset(&p->type);
    return stop ? SPELL_EABORT : SPELL_OK;
}

static int process_line(struct spell_sse_parser *p)
{
    int rc = SPELL_OK;
    const char *s = spell_buf_str(&p->line);
    size_t len = p->line.len;

    if (len == 0) {
        rc = dispatch(p);
    } else if (s[0] == ':') {
        const char *text = s + 1;
        size_t text_len = len - 1;
        if (text_len && text[0] == ' ') {
            text++;
            text_len--;
        }
        if (p->on_comment && p->on_comment(text, text_len, p->userdata) != 0)
            rc = SPELL_EABORT;
    } else {
        const char *colon = memchr(s, ':', len);
        size_t name_len = colon ? (size_t)(colon - s) : len;
        const char *value = colon ? colon + 1 : s + len;
        size_t value_len = colon ? len - name_len - 1 : 0;
        if (value_len && value[0] == ' ') {
            value++;
            value_len--;
        }
        rc = process_field(p, s, name_len, value, value_len);
    }
    spell_buf_reset(&p->line);
    return rc;
}

/* ---- line splitter ---- */

/* Decoded bytes that are not a line end go to the current line. */
static int line_add(struct spell_sse_parser *p, const void *bytes, size_t n)
{
    p->at_start = 0;
    p->after_cr = 0;
    return spell_buf_add(&p->line, bytes, n);
}

static int line_break(struct spell_sse_parser *p, unsigned char c)
{
    p->at_start = 0;
    if (c == '\n' && p->after_cr) {
        p->after_cr = 0;        /* the LF of a CRLF whose CR ended the line */
        return SPELL_OK;
    }
    p->after_cr = c == '\r';
    return process_line(p);
}

/* ---- UTF-8 decoder ---- */

/* A complete well-formed multi-byte sequence. */
static int emit_sequence(struct spell_sse_parser *p)
{
    static const unsigned char bom[3] = { 0xEF, 0xBB, 0xBF };
    size_t n = p->seq_len;
    p->seq_len = 0;
    p->seq_need = 0;
    if (p->at_start && n == 3 && memcmp(p->seq, bom, 3) == 0) {
        p->at_start = 0;
        return SPELL_OK;
    }
    return line_add(p, p->seq, n);
}

/* Starts a sequence at lead byte c; returns 0 when c cannot start one. */
static int start_sequence(struct spell_sse_parser *p, unsigned char c)
{
    p->lower = 0x80;
    p->upper = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        p->seq_need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0)
            p->lower = 0xA0;        /* no overlong forms */
        else if (c == 0xED)
            p->upper = 0x9F;        /* no surrogates */
        p->seq_need = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0)
            p->lower = 0x90;        /* no overlong forms */
        else if (c == 0xF4)
            p->upper = 0x8F;        /* nothing past U+10FFFF */
        p->seq_need = 4;
    } else {
        return 0;
    }
    p->seq[0] = c;
    p->seq_len = 1;
    return 1;
}

int spell_sse_feed(struct spell_sse_parser *p, const char *buf, size_t len)
{
    int rc = SPELL_OK;
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;

    if (!p || (!buf && len))
        return SPELL_EINVAL;
    if (p->failed != SPELL_OK)
        return p->failed;

    while (i < len) {
        unsigned char c = s[i];
        if (p->seq_need) {
            if (c < p->lower || c > p->upper) {
                /* Ill-formed: one U+FFFD for what came so far, and c is
                 * decoded again on the next turn, as a lead byte. */
                p->seq_len = 0;
                p->seq_need = 0;
                rc = line_add(p, replacement, 3);
            } else {
                p->lower = 0x80;
                p->upper = 0xBF;
                p->seq[p->seq_len++] = c;
                i++;
                if (p->seq_len == p->seq_need)
                    rc = emit_sequence(p);
            }
        } else if (c == '\n' || c == '\r') {
            i++;
            rc = line_break(p, c);
        } else if (c < 0x80) {
            size_t j = i + 1;
            while (j < len && s[j] < 0x80 && s[j] != '\n' && s[j] != '\r')
                j++;
            rc = line_add(p, s + i, j - i);
            i = j;
        } else {
            i++;
            if (!start_sequence(p, c))
                rc = line_add(p, replacement, 3);
        }
        if (rc != SPELL_OK)
            goto out;
    }
out:
    if (rc != SPELL_OK)
        p->failed = rc;
    return rc;
}

/* ---- writer ---- */

/* A value that may stand on one field line: no line end, valid UTF-8. */
static int line_value_ok(const char *s)
{
    return strpbrk(s, "\r\n") == NULL && spell_utf8_valid(s, strlen(s));
}

/* Appends "name: value\n", or "name:\n" for an empty value. */
static int add_field(struct spell_buf *out, const char *name, const char *value, size_t len)
{
    int rc;
    if ((rc = spell_buf_addstr(out, name)) != SPELL_OK)
        return rc;
    if ((rc = spell_buf_addc(out, ':')) != SPELL_OK)
        return rc;
    if (len) {
        if ((rc = spell_buf_addc(out, ' ')) != SPELL_OK)
            return rc;
        if ((rc = spell_buf_add(out, value, len)) != SPELL_OK)
            return rc;
    }
    return spell_buf_addc(out, '\n');
}

/* Puts out back to its first `len` bytes, undoing a partial append. */
static void truncate_to(struct spell_buf *out, size_t len)
{
    out->len = len;
    if (out->ptr)
        out->ptr[len] = '\0';
}

/* The index of the first CR or LF in s[from..len), or len. */
static size_t next_break(const char *s, size_t from, size_t len)
{
    while (from < len && s[from] != '\r' && s[from] != '\n')
        from++;
    return from;
}

int spell_sse_write_event(struct spell_buf *out, const char *id, const char *type,
                          const char *data, size_t len)
{
    int rc = SPELL_EINVAL;
    size_t start;

    if (!out || (!data && len))
        return SPELL_EINVAL;
    if ((id && !line_value_ok(id)) || (type && !line_value_ok(type)))
        return SPELL_EINVAL;
    if (data && !spell_utf8_valid(data, len))
        return SPELL_EINVAL;

    start = out->len;
    if (id && (rc = add_field(out, "id", id, strlen(id))) != SPELL_OK)
        goto out;
    if (type && (rc = add_field(out, "event", type, strlen(type))) != SPELL_OK)
        goto out;
    if (data) {
        size_t pos = 0;
        for (;;) {
            size_t brk = next_break(data, pos, len);
            if ((rc = add_field(out, "data", data + pos, brk - pos)) != SPELL_OK)
                goto out;
            if (brk == len)
                break;
            if (data[brk] == '\r' && brk + 1 < len && data[brk + 1] == '\n')
                brk++;
            pos = brk + 1;
        }
    }
    rc = spell_buf_addc(out, '\n');
out:
    if (rc != SPELL_OK)
        truncate_to(out, start);
    return rc;
}

int spell_sse_write_comment(struct spell_buf *out, const char *text)
{
    int rc;
    size_t start;

    if (!out || (text && !line_value_ok(text)))
        return SPELL_EINVAL;
    start = out->len;
    if ((rc = add_field(out, "", text, text ? strlen(text) : 0)) == SPELL_OK)
        rc = spell_buf_addc(out, '\n');
    if (rc != SPELL_OK)
        truncate_to(out, start);
    return rc;
}

int spell_sse_write_retry(struct spell_buf *out, long ms)
{
    if (!out || ms < 0)
        return SPELL_EINVAL;
    /* spell_buf_addf appends nothing when it fails. */
    return spell_buf_addf(out, "retry: %ld\n\n", ms);
}
