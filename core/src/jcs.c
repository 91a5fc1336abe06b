/*
 * RFC 8785 canonical JSON (jcs.h).
 *
 * One recursive writer walks the cJSON tree and hands every piece of text
 * to a sink.  The sink either appends to a capped spell_buf (serialize,
 * input hash) or only counts bytes (length), so the metered price of a
 * cast is known without keeping its canonical text.
 *
 * Object members are put in order by copying the member pointers into an
 * array and sorting it; names are validated as UTF-8 first, because the
 * comparison walks them as UTF-16 code units.  Numbers go through the
 * shortest decimal that strtod reads back to the same double, then through
 * the ECMAScript Number::toString layout rules.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/jcs.h"

/* Where canonical text goes: into buf, or, when buf is NULL, only into
 * count. */
struct sink {
    struct spell_buf *buf;
    size_t count;           /* bytes written when counting */
};

/* Room for any number spell_jcs writes: a sign, 17 digits, "0." and five
 * zeros is 25; a sign, 17 digits, a point and "e-308" is 24. */
#define NUMBER_MAX 32

static int sink_add(struct sink *k, const char *s, size_t n)
{
    if (k->buf)
        return spell_buf_add(k->buf, s, n);
    if (n > SIZE_MAX - k->count)
        return SPELL_ETOOBIG;
    k->count += n;
    return SPELL_OK;
}

static int sink_addc(struct sink *k, char c)
{
    return sink_add(k, &c, 1);
}

/*
 * Decodes one UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF).  Returns its length and the code
 * point in *cp, or 0 when the bytes are not valid UTF-8.  s is
 * NUL-terminated, and NUL is never a valid continuation byte, so reading
 * stops at the end of the string.
 */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    uint32_t v;
    size_t n;
    uint32_t min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        v = c & 0x1F;
        n = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        v = c & 0x0F;
        n = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        v = c & 0x07;
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;

    while (*p) {
        size_t n = utf8_decode(p, &cp);
        if (n == 0)
            return 0;
        p += n;
    }
    return 1;
}

/*
 * The next UTF-16 code unit of a valid UTF-8 string, or -1 at its end.
 * *low carries the low surrogate of a character above U+FFFF between two
 * calls (0 when none is pending).
 */
static int32_t utf16_next(const unsigned char **p, uint32_t *low)
{
    uint32_t cp;

    if (*low) {
        uint32_t u = *low;
        *low = 0;
        return (int32_t)u;
    }
    if (**p == '\0')
        return -1;
    size_t n = utf8_decode(*p, &cp);
    if (n == 0)
        return -1;          /* names are validated before sorting */
    *p += n;
    if (cp < 0x10000)
        return (int32_t)cp;
    cp -= 0x10000;
    *low = 0xDC00 | (cp & 0x3FF);
    return (int32_t)(0xD800 | (cp >> 10));
}

static int utf16_cmp(const char *a, const char *b)
{
    const unsigned char *pa = (const unsigned char *)a;
    const unsigned char *pb = (const unsigned char *)b;
    uint32_t la = 0, lb = 0;

    for (;;) {
        int32_t ua = utf16_next(&pa, &la);
        int32_t ub = utf16_next(&pb, &lb);
        if (ua != ub)
            return ua < ub ? -1 : 1;
        if (ua < 0)
            return 0;
    }
}

static int member_cmp(const void *x, const void *y)
{
    const cJSON *a = *(const cJSON *const *)x;
    const cJSON *b = *(const cJSON *const *)y;
    return utf16_cmp(a->string, b->string);
}

/* RFC 8785 §3.2.2.2: the two-character escapes, \u00xx with lowercase hex
 * for the other controls, everything else as it is. */
static int write_string(struct sink *k, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;
    const char *p = s;
    int rc = SPELL_OK;

    if (!utf8_valid(s))
        return SPELL_EINVAL;
    if ((rc = sink_addc(k, '"')) != SPELL_OK)
        return rc;
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[6];
        size_t n = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        esc[0] = '\\';
        switch (c) {
        case '\b': esc[1] = 'b'; break;
        case '\t': esc[1] = 't'; break;
        case '\n': esc[1] = 'n'; break;
        case '\f': esc[1] = 'f'; break;
        case '\r': esc[1] = 'r'; break;
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xF];
            n = 6;
            break;
        }
        if ((rc = sink_add(k, run, (size_t)(p - run))) != SPELL_OK)
            return rc;
        if ((rc = sink_add(k, esc, n)) != SPELL_OK)
            return rc;
        run = p + 1;
    }
    if ((rc = sink_add(k, run, (size_t)(p - run))) != SPELL_OK)
        return rc;
    return sink_addc(k, '"');
}

/*
 * The shortest decimal digits that read back as d (d finite and > 0):
 * digits without a point into dig (NUL-terminated, no trailing zeros),
 * and the ECMAScript exponent n, so that d = 0.dig × 10^n.  %e and strtod
 * use the same locale, so the round trip holds under any LC_NUMERIC; the
 * digits are picked out around whatever decimal separator %e printed.
 */
static int shortest_digits(double d, char dig[20], int *n)
{
    char tmp[NUMBER_MAX + 16];
    int prec;

    for (prec = 1; prec <= 17; prec++) {
        int len = snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (len < 0 || (size_t)len >= sizeof tmp)
            return SPELL_EINVAL;
        if (strtod(tmp, NULL) == d)
            break;
    }
    if (prec > 17)
        return SPELL_EINVAL;    /* cannot happen for a finite double */

    size_t k = 0;
    const char *p = tmp;
    for (; *p && *p != 'e' && *p != 'E'; p++)
        if (*p >= '0' && *p <= '9' && k < 19)
            dig[k++] = *p;
    if (*p == '\0' || k == 0)
        return SPELL_EINVAL;
    while (k > 1 && dig[k - 1] == '0')
        k--;
    dig[k] = '\0';
    *n = (int)strtol(p + 1, NULL, 10) + 1;
    return SPELL_OK;
}

/* ECMAScript Number::toString (ECMA-262 Number::toString, RFC 8785
 * §3.2.2.3) for a finite double; -0 is written 0. */
static int format_number(double d, char out[NUMBER_MAX])
{
    char dig[20];
    int n = 0;
    size_t o = 0;
    int rc;

    if (!isfinite(d))
        return SPELL_EINVAL;
    if (d == 0) {
        out[0] = '0';
        out[1] = '\0';
        return SPELL_OK;
    }
    if (d < 0) {
        out[o++] = '-';
        d = -d;
    }
    if ((rc = shortest_digits(d, dig, &n)) != SPELL_OK)
        return rc;

    int k = (int)strlen(dig);
    if (k <= n && n <= 21) {
        memcpy(out + o, dig, (size_t)k);
        o += (size_t)k;
        for (int i = 0; i < n - k; i++)
            out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, dig, (size_t)n);
        o += (size_t)n;
        out[o++] = '.';
        memcpy(out + o, dig + n, (size_t)(k - n));
        o += (size_t)(k - n);
    } else if (-6 < n && n <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -n; i++)
            out[o++] = '0';
        memcpy(out + o, dig, (size_t)k);
        o += (size_t)k;
    } else {
        int e = n - 1;
        out[o++] = dig[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, dig + 1, (size_t)(k - 1));
            o += (size_t)(k - 1);
        }
        int w = snprintf(out + o, NUMBER_MAX - o, "e%c%d", e < 0 ? '-' : '+',
                         e < 0 ? -e : e);
        if (w < 0 || (size_t)w >= NUMBER_MAX - o)
            return SPELL_EINVAL;
        o += (size_t)w;
    }
    out[o] = '\0';
    return SPELL_OK;
}

static int write_value(struct sink *k, const cJSON *v, int depth);

static int write_object(struct sink *k, const cJSON *v, int depth)
{
    const cJSON **m = NULL;
    size_t count = 0;
    int rc = SPELL_OK;

    for (const cJSON *c = v->child; c; c = c->next) {
        if (!c->string || !utf8_valid(c->string)) {
            rc = SPELL_EINVAL;
            goto out;
        }
        count++;
    }
    if ((rc = sink_addc(k, '{')) != SPELL_OK)
        goto out;
    if (count > 0) {
        /* The array is as long as the object, which the caller already
         * holds in memory; the check only keeps the product in range. */
        if (count > SIZE_MAX / sizeof *m) {
            rc = SPELL_ETOOBIG;
            goto out;
        }
        m = malloc(count * sizeof *m);
        if (!m) {
            rc = SPELL_ENOMEM;
            goto out;
        }
        size_t i = 0;
        for (const cJSON *c = v->child; c; c = c->next)
            m[i++] = c;
        qsort(m, count, sizeof *m, member_cmp);
        for (i = 0; i < count; i++) {
            if (i > 0 && strcmp(m[i - 1]->string, m[i]->string) == 0) {
                rc = SPELL_EINVAL;      /* no canonical form for duplicates */
                goto out;
            }
            if (i > 0 && (rc = sink_addc(k, ',')) != SPELL_OK)
                goto out;
            if ((rc = write_string(k, m[i]->string)) != SPELL_OK)
                goto out;
            if ((rc = sink_addc(k, ':')) != SPELL_OK)
                goto out;
            if ((rc = write_value(k, m[i], depth)) != SPELL_OK)
                goto out;
        }
    }
    rc = sink_addc(k, '}');
out:
    free(m);
    return rc;
}

static int write_array(struct sink *k, const cJSON *v, int depth)
{
    int rc;

    if ((rc = sink_addc(k, '[')) != SPELL_OK)
        return rc;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (c != v->child && (rc = sink_addc(k, ',')) != SPELL_OK)
            return rc;
        if ((rc = write_value(k, c, depth)) != SPELL_OK)
            return rc;
    }
    return sink_addc(k, ']');
}

/* depth: how many containers enclose v. */
static int write_value(struct sink *k, const cJSON *v, int depth)
{
    char num[NUMBER_MAX];
    int rc;

    if (!v)
        return SPELL_EINVAL;
    if (cJSON_IsNull(v))
        return sink_add(k, "null", 4);
    if (cJSON_IsTrue(v))
        return sink_add(k, "true", 4);
    if (cJSON_IsFalse(v))
        return sink_add(k, "false", 5);
    if (cJSON_IsNumber(v)) {
        if ((rc = format_number(v->valuedouble, num)) != SPELL_OK)
            return rc;
        return sink_add(k, num, strlen(num));
    }
    if (cJSON_IsString(v))
        return v->valuestring ? write_string(k, v->valuestring) : SPELL_EINVAL;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        if (depth >= SPELL_JCS_MAX_DEPTH)
            return SPELL_ETOOBIG;
        if (cJSON_IsArray(v))
            return write_array(k, v, depth + 1);
        return write_object(k, v, depth + 1);
    }
    return SPELL_EINVAL;        /* cJSON_Raw, cJSON_Invalid */
}

int spell_jcs_serialize(const cJSON *v, struct spell_buf *out)
{
    struct sink k = {out, 0};
    size_t start;
    int rc;

    if (!v || !out)
        return SPELL_EINVAL;
    start = out->len;
    rc = write_value(&k, v, 0);
    if (rc != SPELL_OK && out->ptr) {
        out->len = start;
        out->ptr[start] = '\0';
    }
    return rc;
}

int spell_jcs_length(const cJSON *v, size_t *out)
{
    struct sink k = {NULL, 0};
    int rc;

    if (!v || !out)
        return SPELL_EINVAL;
    if ((rc = write_value(&k, v, 0)) == SPELL_OK)
        *out = k.count;
    return rc;
}

int spell_input_hash(const cJSON *inputs, char out[65])
{
    struct spell_buf b;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    out[0] = '\0';
    spell_buf_init(&b, SPELL_JCS_HASH_MAX);
    if ((rc = spell_jcs_serialize(inputs, &b)) != SPELL_OK)
        goto out;
    if ((rc = spell_sha256_hex(spell_buf_str(&b), b.len, out)) != SPELL_OK)
        out[0] = '\0';
out:
    spell_buf_free(&b);
    return rc;
}
