/*
 * UTF-8 checks (utf8.h), after RFC 3629 and the Unicode "well-formed
 * UTF-8" table: the second byte's range depends on the first, which rules
 * out overlong forms, encoded surrogates and code points past U+10FFFF.
 */
#include <stdbool.h>
#include <stddef.h>

#include "spell/utf8.h"

size_t spell_utf8_scan(const char *text, size_t n, const char **why)
{
    const unsigned char *s = (const unsigned char *)text;
    const char *unused;
    if (!why)
        why = &unused;
    if (!s)
        return 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;     /* range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c < 0xC0) {
            *why = "unexpected UTF-8 continuation byte";
            return i;
        }
        if (c < 0xC2) {
            *why = "overlong UTF-8 sequence";
            return i;
        }
        if (c < 0xE0) {
            need = 1;
        } else if (c < 0xF0) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c < 0xF5) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            *why = "invalid UTF-8 byte (beyond U+10FFFF)";
            return i;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= n || (s[i + k] & 0xC0) != 0x80) {
                *why = "truncated UTF-8 sequence";
                return i;
            }
        }
        if (s[i + 1] < lo) {
            *why = "overlong UTF-8 sequence";
            return i;
        }
        if (s[i + 1] > hi) {
            *why = c == 0xED ? "UTF-16 surrogate encoded in UTF-8"
                             : "UTF-8 code point beyond U+10FFFF";
            return i;
        }
        i += need + 1;
    }
    return n;
}

bool spell_utf8_valid(const char *s, size_t n)
{
    if (!s)
        return n == 0;
    return spell_utf8_scan(s, n, NULL) == n;
}

size_t spell_utf8_count(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; s && i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    return count;
}
