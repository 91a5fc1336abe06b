/*
 * Capped byte buffers (buf.h).  Growth doubles, bounded by the cap, so a
 * peer that streams without end costs at most cap bytes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/buf.h"
#include "spell/errors.h"

void spell_buf_init(struct spell_buf *b, size_t cap)
{
    b->ptr = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void spell_buf_free(struct spell_buf *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->alloc = 0;
}

void spell_buf_reset(struct spell_buf *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

/* Makes room for `more` bytes plus the NUL. */
static int buf_grow(struct spell_buf *b, size_t more)
{
    if (more > b->cap || b->len > b->cap - more)
        return SPELL_ETOOBIG;
    size_t need = b->len + more + 1;
    if (need <= b->alloc)
        return SPELL_OK;
    size_t want = b->alloc ? b->alloc : 64;
    while (want < need)
        want = want > ((size_t)-1) / 2 ? need : want * 2;
    if (want > b->cap + 1)
        want = b->cap + 1;
    char *p = realloc(b->ptr, want);
    if (!p)
        return SPELL_ENOMEM;
    b->ptr = p;
    b->alloc = want;
    return SPELL_OK;
}

int spell_buf_add(struct spell_buf *b, const void *mem, size_t len)
{
    int rc = buf_grow(b, len);
    if (rc != SPELL_OK)
        return rc;
    if (len)
        memcpy(b->ptr + b->len, mem, len);
    b->len += len;
    b->ptr[b->len] = '\0';
    return SPELL_OK;
}

int spell_buf_addstr(struct spell_buf *b, const char *s)
{
    return spell_buf_add(b, s, strlen(s));
}

int spell_buf_addc(struct spell_buf *b, char c)
{
    return spell_buf_add(b, &c, 1);
}

int spell_buf_addf(struct spell_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return SPELL_EINVAL;
    int rc = buf_grow(b, (size_t)n);
    if (rc != SPELL_OK)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SPELL_OK;
}

void spell_buf_consume(struct spell_buf *b, size_t n)
{
    if (n >= b->len) {
        spell_buf_reset(b);
        return;
    }
    memmove(b->ptr, b->ptr + n, b->len - n);
    b->len -= n;
    b->ptr[b->len] = '\0';
}

const char *spell_buf_str(const struct spell_buf *b)
{
    return b->ptr ? b->ptr : "";
}

char *spell_buf_take(struct spell_buf *b, size_t *len)
{
    char *p = b->ptr;
    size_t n = b->len;
    if (!p)
        p = calloc(1, 1);
    b->ptr = NULL;
    b->len = 0;
    b->alloc = 0;
    if (len)
        *len = p ? n : 0;
    return p;
}
