/*
 * Cents to text and back (money.h), in integer arithmetic only.
 *
 * Formatting writes the amount backwards into a local array (cents, point,
 * dollar digits with a comma every three, "$", sign) and copies it out in
 * order.  Parsing trims blanks, then walks the grammar of money.h once,
 * left to right, accumulating dollars and cents with overflow checks.
 */
#include <string.h>

#include "spell/errors.h"
#include "spell/money.h"

int spell_money_format(int64_t cents, char *out, size_t outlen)
{
    char rev[SPELL_MONEY_FORMAT_MAX];
    size_t n = 0;
    uint64_t mag;
    uint64_t dollars;
    unsigned frac;
    int rc = SPELL_OK;

    if (!out) {
        rc = SPELL_EINVAL;
        goto out;
    }
    /* -(INT64_MIN) does not fit in int64_t; its magnitude fits in uint64_t. */
    mag = cents < 0 ? (uint64_t)(-(cents + 1)) + 1u : (uint64_t)cents;
    dollars = mag / 100u;
    frac = (unsigned)(mag % 100u);

    rev[n++] = (char)('0' + frac % 10u);
    rev[n++] = (char)('0' + frac / 10u);
    rev[n++] = '.';
    for (int group = 0;; group++) {
        if (group > 0 && group % 3 == 0)
            rev[n++] = ',';
        rev[n++] = (char)('0' + dollars % 10u);
        dollars /= 10u;
        if (dollars == 0)
            break;
    }
    rev[n++] = '$';
    if (cents < 0)
        rev[n++] = '-';

    if (outlen < n + 1) {
        rc = SPELL_ETOOBIG;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
out:
    if (rc != SPELL_OK && out && outlen > 0)
        out[0] = '\0';
    return rc;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* dollars = dollars * 10 + d; past INT64_MAX / 100 dollars (the cents
 * are checked by the caller) *big is set and dollars stops growing, so
 * the syntax is still checked to the end. */
static void add_digit(uint64_t *dollars, char d, int *big)
{
    const uint64_t max = (uint64_t)INT64_MAX / 100u;
    uint64_t v = (uint64_t)(d - '0');

    if (*big || *dollars > (max - v) / 10u) {
        *big = 1;
        return;
    }
    *dollars = *dollars * 10u + v;
}

int spell_money_parse(const char *s, int64_t *out_cents)
{
    uint64_t dollars = 0;
    uint64_t frac = 0;
    int big = 0;
    size_t len;
    size_t i;
    size_t end;
    int rc = SPELL_EINVAL;

    if (!s || !out_cents)
        goto out;
    len = strnlen(s, SPELL_MONEY_PARSE_MAX + 1);
    if (len > SPELL_MONEY_PARSE_MAX) {
        rc = SPELL_ETOOBIG;
        goto out;
    }
    for (i = 0; i < len && is_blank(s[i]); i++)
        ;
    for (end = len; end > i && is_blank(s[end - 1]); end--)
        ;
    if (i < end && s[i] == '$')
        i++;

    /* Dollars: "0", or a first group of 1..3 digits followed by groups
     * of exactly three after commas, or a run of digits without commas. */
    if (i >= end || !is_digit(s[i]))
        goto out;
    if (s[i] == '0' && i + 1 < end && is_digit(s[i + 1]))
        goto out;               /* a leading zero */
    size_t first = i;
    while (i < end && is_digit(s[i]))
        add_digit(&dollars, s[i++], &big);
    if (i < end && s[i] == ',') {
        if (i - first > 3 || s[first] == '0')
            goto out;
        while (i < end && s[i] == ',') {
            i++;
            for (int g = 0; g < 3; g++, i++) {
                if (i >= end || !is_digit(s[i]))
                    goto out;
                add_digit(&dollars, s[i], &big);
            }
        }
        if (i < end && is_digit(s[i]))
            goto out;           /* a group of more than three */
    }

    if (i < end && s[i] == '.') {
        i++;
        size_t places = 0;
        while (i < end && is_digit(s[i]) && places < 2) {
            frac = frac * 10u + (uint64_t)(s[i] - '0');
            places++;
            i++;
        }
        if (places == 0)
            goto out;
        if (places == 1)
            frac *= 10u;
    }
    if (i != end)
        goto out;               /* a third decimal, a letter, a blank inside */

    if (big || dollars * 100u > (uint64_t)INT64_MAX - frac) {
        rc = SPELL_ETOOBIG;
        goto out;
    }
    *out_cents = (int64_t)(dollars * 100u + frac);
    rc = SPELL_OK;
out:
    return rc;
}
