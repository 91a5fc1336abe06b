/*
 * A growable byte buffer with a hard cap, after curl's dynbuf.
 *
 * Every buffer is told at init how large it may ever grow; an append that
 * would pass the cap fails with SPELL_ETOOBIG and leaves the contents as
 * they were.  The contents are always NUL-terminated (the NUL is not
 * counted in len, and not in the cap), so text can be used as a C string.
 */
#ifndef SPELL_BUF_H
#define SPELL_BUF_H

#include <stddef.h>

struct spell_buf {
    char *ptr;      /* contents, NUL-terminated; NULL until the first append */
    size_t len;     /* bytes in use, without the NUL */
    size_t alloc;   /* bytes allocated */
    size_t cap;     /* largest len ever allowed */
};

void spell_buf_init(struct spell_buf *b, size_t cap);
void spell_buf_free(struct spell_buf *b);

/* Empties the buffer and keeps its memory. */
void spell_buf_reset(struct spell_buf *b);

int spell_buf_add(struct spell_buf *b, const void *mem, size_t len);
int spell_buf_addstr(struct spell_buf *b, const char *s);
int spell_buf_addc(struct spell_buf *b, char c);
int spell_buf_addf(struct spell_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Drops the first n bytes (the rest moves to the front). */
void spell_buf_consume(struct spell_buf *b, size_t n);

/* The contents as a C string: "" for an empty buffer, never NULL. */
const char *spell_buf_str(const struct spell_buf *b);

/* Hands the contents to the caller, who frees them; the buffer is left
 * empty (same cap).  Returns a heap "" for an empty buffer, or NULL when
 * that allocation fails.  *len, if given, receives the length. */
char *spell_buf_take(struct spell_buf *b, size_t *len);

#endif
