/*
 * Strict JSON input and typed field access (json.h).
 *
 * spell_json_parse() runs in four steps, each of which may refuse the input
 * with a sentence naming the byte offset:
 *   1. size: len against the byte cap;
 *   2. encoding: the whole buffer must be well-formed UTF-8;
 *   3. grammar: a validating scan of RFC 8259 that also enforces the
 *      nesting cap and refuses "\u0000" and unpaired surrogate escapes;
 *   4. cJSON builds the tree from the same bytes, and a walk over the tree
 *      refuses objects that repeat a key.
 * Step 3 accepts exactly the texts that cJSON reads the same way we do, so
 * cJSON's own leniencies (leading zeros, any byte below 0x21 taken as
 * whitespace, raw control characters in strings) never reach a caller.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "spell/utf8.h"

/* Objects with at most this many members are checked for repeated keys
 * pair by pair; larger ones are sorted. */
#define DUP_PAIRWISE_MAX 16

/* Room for a repeated key when it is quoted in a message. */
#define KEY_QUOTE_MAX 40

/* ---- Step 3: grammar ---- */

struct scan {
    const unsigned char *s;
    size_t n;
    size_t pos;         /* the next byte to read */
    int max_depth;
    char *err;
    size_t errlen;
};

static int scan_fail(struct scan *sc, const char *what)
{
    spell_errf(sc->err, sc->errlen, "%s at offset %zu", what, sc->pos);
    return SPELL_EPARSE;
}

static void skip_ws(struct scan *sc)
{
    while (sc->pos < sc->n) {
        unsigned char c = sc->s[sc->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        sc->pos++;
    }
}

/* Four hex digits at s[at..at+3] into *cp; false if any is missing. */
static bool hex4(const struct scan *sc, size_t at, unsigned *cp)
{
    unsigned v = 0;
    if (at > sc->n || sc->n - at < 4)
        return false;
    for (size_t i = at; i < at + 4; i++) {
        unsigned char c = sc->s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return false;
    }
    *cp = v;
    return true;
}

static int scan_string(struct scan *sc)
{
    sc->pos++;          /* the opening quote */
    for (;;) {
        if (sc->pos >= sc->n)
            return scan_fail(sc, "unterminated string");
        unsigned char c = sc->s[sc->pos];
        if (c == '"') {
            sc->pos++;
            return SPELL_OK;
        }
        if (c == '\0')
            return scan_fail(sc, "NUL byte in string");
        if (c < 0x20)
            return scan_fail(sc, "unescaped control character in string");
        if (c != '\\') {
            sc->pos++;  /* UTF-8 was checked in step 2 */
            continue;
        }
        if (sc->pos + 1 >= sc->n)
            return scan_fail(sc, "unterminated string");
        switch (sc->s[sc->pos + 1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            sc->pos += 2;
            continue;
        case 'u':
            break;
        default:
            return scan_fail(sc, "invalid escape in string");
        }
        unsigned cp, lo;
        if (!hex4(sc, sc->pos + 2, &cp))
            return scan_fail(sc, "invalid \\u escape");
        if (cp == 0)
            return scan_fail(sc, "\\u0000 escape is not allowed");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return scan_fail(sc, "unpaired surrogate escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            size_t at = sc->pos + 6;
            if (at + 1 >= sc->n || sc->s[at] != '\\' || sc->s[at + 1] != 'u'
                || !hex4(sc, at + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return scan_fail(sc, "unpaired surrogate escape");
            sc->pos += 12;
        } else {
            sc->pos += 6;
        }
    }
}

static size_t scan_digits(struct scan *sc)
{
    size_t start = sc->pos;
    while (sc->pos < sc->n && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9')
        sc->pos++;
    return sc->pos - start;
}

static int scan_number(struct scan *sc)
{
    size_t start = sc->pos;
    if (sc->s[sc->pos] == '-')
        sc->pos++;
    if (sc->pos < sc->n && sc->s[sc->pos] == '0')
        sc->pos++;
    else if (scan_digits(sc) == 0)
        return scan_fail(sc, "invalid number");
    if (sc->pos < sc->n && sc->s[sc->pos] == '.') {
        sc->pos++;
        if (scan_digits(sc) == 0)
            return scan_fail(sc, "invalid number: digits must follow '.'");
    }
    if (sc->pos < sc->n && (sc->s[sc->pos] == 'e' || sc->s[sc->pos] == 'E')) {
        sc->pos++;
        if (sc->pos < sc->n && (sc->s[sc->pos] == '+' || sc->s[sc->pos] == '-'))
            sc->pos++;
        if (scan_digits(sc) == 0)
            return scan_fail(sc, "invalid number: digits must follow the exponent");
    }
    if (sc->pos - start > SPELL_JSON_NUMBER_MAX) {
        sc->pos = start;
        return scan_fail(sc, "number longer than 63 bytes");
    }
    return SPELL_OK;
}

static int scan_literal(struct scan *sc, const char *word)
{
    size_t len = strlen(word);
    if (sc->n - sc->pos < len || memcmp(sc->s + sc->pos, word, len) != 0)
        return scan_fail(sc, "invalid literal");
    sc->pos += len;
    return SPELL_OK;
}

static int scan_value(struct scan *sc, int depth);

/* An object or array; depth counts the containers around it. */
static int scan_container(struct scan *sc, int depth)
{
    bool object = sc->s[sc->pos] == '{';
    char close = object ? '}' : ']';
    int rc;

    if (depth + 1 > sc->max_depth) {
        char what[64];
        snprintf(what, sizeof what, "nesting deeper than %d levels", sc->max_depth);
        return scan_fail(sc, what);
    }
    sc->pos++;
    skip_ws(sc);
    if (sc->pos < sc->n && sc->s[sc->pos] == close) {
        sc->pos++;
        return SPELL_OK;
    }
    for (;;) {
        if (object) {
            skip_ws(sc);
            if (sc->pos >= sc->n)
                return scan_fail(sc, "unexpected end of input");
            if (sc->s[sc->pos] != '"')
                return scan_fail(sc, "expected a string key");
            if ((rc = scan_string(sc)) != SPELL_OK)
                return rc;
            skip_ws(sc);
            if (sc->pos >= sc->n || sc->s[sc->pos] != ':')
                return scan_fail(sc, "expected ':' after key");
            sc->pos++;
        }
        if ((rc = scan_value(sc, depth + 1)) != SPELL_OK)
            return rc;
        skip_ws(sc);
        if (sc->pos >= sc->n)
            return scan_fail(sc, "unexpected end of input");
        if (sc->s[sc->pos] == close) {
            sc->pos++;
            return SPELL_OK;
        }
        if (sc->s[sc->pos] != ',')
            return scan_fail(sc, object ? "expected ',' or '}'" : "expected ',' or ']'");
        sc->pos++;
    }
}

static int scan_value(struct scan *sc, int depth)
{
    skip_ws(sc);
    if (sc->pos >= sc->n)
        return scan_fail(sc, "unexpected end of input");
    unsigned char c = sc->s[sc->pos];
    switch (c) {
    case '{':
    case '[':
        return scan_container(sc, depth);
    case '"':
        return scan_string(sc);
    case 't':
        return scan_literal(sc, "true");
    case 'f':
        return scan_literal(sc, "false");
    case 'n':
        return scan_literal(sc, "null");
    case '\0':
        return scan_fail(sc, "NUL byte");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return scan_number(sc);
        return scan_fail(sc, "unexpected character");
    }
}

/* ---- Step 4: repeated keys ---- */

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int dup_fail(const char *key, char *err, size_t errlen)
{
    char shown[KEY_QUOTE_MAX + 1];
    size_t i = 0;
    /* Only printable ASCII is quoted back: the key came from outside. */
    for (; key[i] && i < KEY_QUOTE_MAX; i++)
        shown[i] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
    shown[i] = '\0';
    spell_errf(err, errlen, "duplicate key \"%s%s\" in object", shown, key[i] ? "..." : "");
    return SPELL_EPARSE;
}

static int check_dups(const cJSON *node, char *err, size_t errlen)
{
    int rc = SPELL_OK;
    const char **keys = NULL;
    size_t n = 0;

    for (const cJSON *c = node->child; c; c = c->next) {
        n++;
        if (cJSON_IsObject(c) || cJSON_IsArray(c))
            if ((rc = check_dups(c, err, errlen)) != SPELL_OK)
                goto out;
    }
    if (!cJSON_IsObject(node) || n < 2)
        goto out;
    if (n <= DUP_PAIRWISE_MAX) {
        for (const cJSON *a = node->child; a; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (strcmp(a->string, b->string) == 0) {
                    rc = dup_fail(a->string, err, errlen);
                    goto out;
                }
        goto out;
    }
    /* n is bounded by the input byte cap: every member takes bytes. */
    keys = malloc(n * sizeof *keys);
    if (!keys) {
        spell_errf(err, errlen, "out of memory");
        rc = SPELL_ENOMEM;
        goto out;
    }
    size_t i = 0;
    for (const cJSON *c = node->child; c; c = c->next)
        keys[i++] = c->string;
    qsort(keys, n, sizeof *keys, cmp_keys);
    for (i = 1; i < n; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            rc = dup_fail(keys[i], err, errlen);
            goto out;
        }
out:
    free(keys);
    return rc;
}

int spell_json_parse(const char *text, size_t len, const struct spell_json_limits *lim,
                     cJSON **out, char *err, size_t errlen)
{
    int rc = SPELL_EINVAL;
    size_t max_bytes = SPELL_JSON_MAX_BYTES_DEFAULT;
    int max_depth = SPELL_JSON_MAX_DEPTH_DEFAULT;
    cJSON *tree = NULL;
    const char *why = NULL;

    spell_errf(err, errlen, "%s", "");
    if (!out) {
        spell_errf(err, errlen, "no place for the result");
        goto out;
    }
    *out = NULL;
    if (!text && len > 0) {
        spell_errf(err, errlen, "no input");
        goto out;
    }
    if (lim && lim->max_bytes > 0)
        max_bytes = lim->max_bytes;
    if (lim && lim->max_depth > 0)
        max_depth = lim->max_depth < SPELL_JSON_MAX_DEPTH_LIMIT
            ? lim->max_depth : SPELL_JSON_MAX_DEPTH_LIMIT;

    if (len > max_bytes) {
        spell_errf(err, errlen, "input of %zu bytes is larger than the limit of %zu", len, max_bytes);
        rc = SPELL_ETOOBIG;
        goto out;
    }
    rc = SPELL_EPARSE;
    if (len == 0) {
        spell_errf(err, errlen, "empty input");
        goto out;
    }
    size_t bad = spell_utf8_scan(text, len, &why);
    if (bad < len) {
        spell_errf(err, errlen, "%s at offset %zu", why, bad);
        goto out;
    }

    struct scan sc = {
        .s = (const unsigned char *)text, .n = len, .pos = 0,
        .max_depth = max_depth, .err = err, .errlen = errlen,
    };
    skip_ws(&sc);
    if (sc.pos == len) {
        spell_errf(err, errlen, "no value in input (only whitespace)");
        goto out;
    }
    if ((rc = scan_value(&sc, 0)) != SPELL_OK)
        goto out;
    skip_ws(&sc);
    if (sc.pos < len) {
        rc = scan_fail(&sc, "unexpected data after the value");
        goto out;
    }

    const char *end = NULL;
    tree = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!tree) {
        /* The scan above passed, so this is cJSON running out of memory
         * or disagreeing with RFC 8259; its own position is reported. */
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        spell_errf(err, errlen, "syntax error at offset %zu", at);
        rc = SPELL_EPARSE;
        goto out;
    }
    if ((rc = check_dups(tree, err, errlen)) != SPELL_OK)
        goto out;
    *out = tree;
    tree = NULL;
    rc = SPELL_OK;
out:
    cJSON_Delete(tree);
    return rc;
}

/* ---- Field access ---- */

void spell_json_at_member(struct spell_json_at *child, const struct spell_json_at *parent,
                          const char *name, const cJSON *obj, char *pathbuf, size_t pathsize)
{
    const char *pp = parent->path ? parent->path : "";
    snprintf(pathbuf, pathsize, "%s%s%s", pp, *pp ? "." : "", name);
    child->obj = obj;
    child->path = pathbuf;
    child->err = parent->err;
    child->errlen = parent->errlen;
}

void spell_json_at_element(struct spell_json_at *child, const struct spell_json_at *parent,
                           const char *name, size_t index, const cJSON *obj,
                           char *pathbuf, size_t pathsize)
{
    const char *pp = parent->path ? parent->path : "";
    snprintf(pathbuf, pathsize, "%s%s%s[%zu]", pp, *pp ? "." : "", name, index);
    child->obj = obj;
    child->path = pathbuf;
    child->err = parent->err;
    child->errlen = parent->errlen;
}

int spell_json_field_error(const struct spell_json_at *at, const char *name, const char *what)
{
    const char *pp = at->path ? at->path : "";
    spell_errf(at->err, at->errlen, "field '%s%s%s' %s", pp, *pp ? "." : "", name, what);
    return SPELL_EINVAL;
}

/* Finds member `name`; NULL when absent or null.  A required absent
 * member sets *rc to the "is required" failure. */
static const cJSON *member(const struct spell_json_at *at, const char *name, unsigned flags,
                           int *rc)
{
    const cJSON *v = at->obj ? cJSON_GetObjectItemCaseSensitive(at->obj, name) : NULL;
    *rc = SPELL_OK;
    if (v && cJSON_IsNull(v))
        v = NULL;
    if (!v && (flags & SPELL_JSON_REQUIRED))
        *rc = spell_json_field_error(at, name, "is required");
    return v;
}

static void set_present(bool *present, bool v)
{
    if (present)
        *present = v;
}

int spell_json_get_string(const struct spell_json_at *at, const char *name, unsigned flags,
                          size_t max_len, char **out)
{
    int rc;
    const cJSON *v = member(at, name, flags, &rc);
    *out = NULL;
    if (!v)
        return rc;
    if (!cJSON_IsString(v) || !v->valuestring)
        return spell_json_field_error(at, name, "must be a string");
    size_t len = strnlen(v->valuestring, max_len + 1);
    if (len > max_len) {
        char what[64];
        snprintf(what, sizeof what, "must be at most %zu bytes long", max_len);
        return spell_json_field_error(at, name, what);
    }
    if (len == 0 && (flags & SPELL_JSON_NONEMPTY))
        return spell_json_field_error(at, name, "must not be empty");
    if (!spell_utf8_valid(v->valuestring, len))
        return spell_json_field_error(at, name, "must be valid UTF-8");
    char *copy = malloc(len + 1);
    if (!copy) {
        spell_errf(at->err, at->errlen, "out of memory");
        return SPELL_ENOMEM;
    }
    memcpy(copy, v->valuestring, len + 1);
    *out = copy;
    return SPELL_OK;
}

int spell_json_get_int64_range(const struct spell_json_at *at, const char *name, unsigned flags,
                               int64_t min, int64_t max, int64_t *out, bool *present)
{
    int rc;
    const cJSON *v = member(at, name, flags, &rc);
    set_present(present, false);
    if (!v)
        return rc;
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || !isfinite(d) || d != floor(d)
        || fabs(d) > (double)SPELL_JSON_INT_MAX)
        return spell_json_field_error(at, name, "must be an integer");
    int64_t i = (int64_t)d;
    if (i < min || i > max) {
        char what[96];
        snprintf(what, sizeof what, "must be between %lld and %lld", (long long)min,
                 (long long)max);
        return spell_json_field_error(at, name, what);
    }
    *out = i;
    set_present(present, true);
    return SPELL_OK;
}

int spell_json_get_int64(const struct spell_json_at *at, const char *name, unsigned flags,
                         int64_t *out, bool *present)
{
    return spell_json_get_int64_range(at, name, flags, -SPELL_JSON_INT_MAX, SPELL_JSON_INT_MAX,
                                      out, present);
}

int spell_json_get_bool(const struct spell_json_at *at, const char *name, unsigned flags,
                        bool *out, bool *present)
{
    int rc;
    const cJSON *v = member(at, name, flags, &rc);
    set_present(present, false);
    if (!v)
        return rc;
    if (!cJSON_IsBool(v))
        return spell_json_field_error(at, name, "must be true or false");
    *out = cJSON_IsTrue(v);
    set_present(present, true);
    return SPELL_OK;
}

int spell_json_get_object(const struct spell_json_at *at, const char *name, unsigned flags,
                          const cJSON **out)
{
    int rc;
    const cJSON *v = member(at, name, flags, &rc);
    *out = NULL;
    if (!v)
        return rc;
    if (!cJSON_IsObject(v))
        return spell_json_field_error(at, name, "must be an object");
    *out = v;
    return SPELL_OK;
}

int spell_json_get_array(const struct spell_json_at *at, const char *name, unsigned flags,
                         const cJSON **out)
{
    int rc;
    const cJSON *v = member(at, name, flags, &rc);
    *out = NULL;
    if (!v)
        return rc;
    if (!cJSON_IsArray(v))
        return spell_json_field_error(at, name, "must be an array");
    *out = v;
    return SPELL_OK;
}

int spell_json_get_enum(const struct spell_json_at *at, const char *name, unsigned flags,
                        const char *const *names, size_t count, int *out, bool *present)
{
    int rc;
    const cJSON *v = member(at, name, flags, &rc);
    set_present(present, false);
    if (!v)
        return rc;
    if (cJSON_IsString(v) && v->valuestring) {
        for (size_t i = 0; i < count; i++) {
            if (names[i] && strcmp(names[i], v->valuestring) == 0) {
                *out = (int)i;
                set_present(present, true);
                return SPELL_OK;
            }
        }
    }
    /* Room for every table in models.h; a longer list is cut. */
    char what[256];
    size_t used = (size_t)snprintf(what, sizeof what, "must be one of: ");
    for (size_t i = 0; i < count && used < sizeof what; i++)
        used += (size_t)snprintf(what + used, sizeof what - used, "%s%s", i ? ", " : "",
                                 names[i] ? names[i] : "");
    return spell_json_field_error(at, name, what);
}

int spell_json_get_time(const struct spell_json_at *at, const char *name, unsigned flags,
                        int64_t *out, bool *present)
{
    int rc;
    const cJSON *v = member(at, name, flags, &rc);
    int64_t ms;
    set_present(present, false);
    if (!v)
        return rc;
    if (!cJSON_IsString(v) || !v->valuestring)
        return spell_json_field_error(at, name, "must be a string");
    if (spell_time_parse(v->valuestring, &ms) != SPELL_OK)
        return spell_json_field_error(at, name,
            "must be an RFC 3339 time between 1970 and 9999");
    *out = ms;
    set_present(present, true);
    return SPELL_OK;
}

/* ---- Builders ---- */

int spell_json_add_int64(cJSON *obj, const char *name, int64_t v)
{
    if (!obj)
        return SPELL_ENOMEM;
    if (v > SPELL_JSON_INT_MAX || v < -SPELL_JSON_INT_MAX)
        return SPELL_EINVAL;
    return cJSON_AddNumberToObject(obj, name, (double)v) ? SPELL_OK : SPELL_ENOMEM;
}

int spell_json_add_string(cJSON *obj, const char *name, const char *s)
{
    if (!obj)
        return SPELL_ENOMEM;
    if (!s)
        return cJSON_AddNullToObject(obj, name) ? SPELL_OK : SPELL_ENOMEM;
    return cJSON_AddStringToObject(obj, name, s) ? SPELL_OK : SPELL_ENOMEM;
}

int spell_json_add_bool(cJSON *obj, const char *name, bool v)
{
    if (!obj)
        return SPELL_ENOMEM;
    return cJSON_AddBoolToObject(obj, name, v) ? SPELL_OK : SPELL_ENOMEM;
}

int spell_json_add_time(cJSON *obj, const char *name, int64_t ms)
{
    char text[SPELL_TIME_RFC3339_SIZE];
    if (!obj)
        return SPELL_ENOMEM;
    if (ms == 0)
        return cJSON_AddNullToObject(obj, name) ? SPELL_OK : SPELL_ENOMEM;
    if (spell_time_format(ms, text, sizeof text) != SPELL_OK)
        return SPELL_EINVAL;
    return cJSON_AddStringToObject(obj, name, text) ? SPELL_OK : SPELL_ENOMEM;
}

int spell_json_add_copy(cJSON *obj, const char *name, const cJSON *item)
{
    if (!obj)
        return SPELL_ENOMEM;
    if (!item)
        return cJSON_AddNullToObject(obj, name) ? SPELL_OK : SPELL_ENOMEM;
    cJSON *copy = cJSON_Duplicate(item, 1);
    if (!copy)
        return SPELL_ENOMEM;
    if (!cJSON_AddItemToObject(obj, name, copy)) {
        cJSON_Delete(copy);
        return SPELL_ENOMEM;
    }
    return SPELL_OK;
}
