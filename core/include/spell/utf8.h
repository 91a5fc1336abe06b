/*
 * UTF-8 well-formedness, shared by every module that takes text from
 * outside (JSON, SSE, the config file, schema names and values).
 */
#ifndef SPELL_UTF8_H
#define SPELL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The offset of the first ill-formed byte in n bytes at s, or n when all of
 * it is well-formed UTF-8 (RFC 3629: no overlong forms, no encoded
 * surrogates, nothing past U+10FFFF, no truncated sequence).  When a fault
 * is found and why is not NULL, *why names it ("overlong UTF-8 sequence"). */
size_t spell_utf8_scan(const char *s, size_t n, const char **why);

/* Whether n bytes at s are well-formed UTF-8. */
bool spell_utf8_valid(const char *s, size_t n);

/* The number of code points in n bytes of well-formed UTF-8. */
size_t spell_utf8_count(const char *s, size_t n);

#endif
