/*
 * Route matching for the HTTP layer: see router.h.  Patterns are matched
 * directly on their text, segment by segment, without compiling them; the
 * table is small and this keeps the routes plain const data.
 */
#include <string.h>

#include "spell/errors.h"

#include "router.h"

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

int router_pattern_check(const char *pattern)
{
    size_t params = 0;
    int in_segment_param = 0;

    if (!pattern || pattern[0] != '/')
        return SPELL_EINVAL;
    for (const char *p = pattern; *p; p++) {
        if (*p == '/') {
            in_segment_param = 0;
        } else if (*p == '{') {
            size_t n = 0;
            if (in_segment_param || ++params > ROUTER_MAX_PARAMS)
                return SPELL_EINVAL;
            in_segment_param = 1;
            for (p++; *p && *p != '}'; p++, n++)
                if (!name_char(*p))
                    return SPELL_EINVAL;
            if (*p != '}' || n == 0 || n > ROUTER_NAME_MAX)
                return SPELL_EINVAL;
        } else if (*p == '}') {
            return SPELL_EINVAL;
        }
    }
    return SPELL_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long router_decode(const char *src, size_t len, char *dst, size_t cap, int plus_is_space)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%' && i + 2 < len && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            c = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0' || o >= cap)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (long)o;
}

/* Matches one pattern segment [ps, pe) against one path segment [s, e). */
static int match_segment(const char *ps, const char *pe, const char *s, const char *e,
                         struct router_params *params)
{
    const char *open = memchr(ps, '{', (size_t)(pe - ps));
    const char *close;
    size_t prefix, suffix, vlen;
    struct router_param *p;
    long dlen;

    if (!open)
        return (size_t)(pe - ps) == (size_t)(e - s) && memcmp(ps, s, (size_t)(e - s)) == 0;
    close = memchr(open, '}', (size_t)(pe - open));
    prefix = (size_t)(open - ps);
    suffix = (size_t)(pe - close - 1);
    if ((size_t)(e - s) < prefix + suffix + 1)
        return 0;
    if (memcmp(ps, s, prefix) != 0 || memcmp(close + 1, e - suffix, suffix) != 0)
        return 0;
    vlen = (size_t)(e - s) - prefix - suffix;
    if (memchr(s + prefix, ':', vlen) || params->count >= ROUTER_MAX_PARAMS)
        return 0;
    p = &params->p[params->count];
    memcpy(p->name, open + 1, (size_t)(close - open - 1));
    p->name[close - open - 1] = '\0';
    dlen = router_decode(s + prefix, vlen, p->value, ROUTER_PARAM_MAX, 0);
    if (dlen <= 0)
        return 0;
    for (long i = 0; i < dlen; i++) {
        unsigned char c = (unsigned char)p->value[i];
        if (c < 0x20 || c == 0x7f || c == '/')
            return 0;
    }
    params->count++;
    return 1;
}

int router_match(const char *pattern, const char *path, size_t path_len,
                 struct router_params *params)
{
    const char *pp = pattern, *s = path, *end = path + path_len;

    params->count = 0;
    if (path_len == 0 || path_len > ROUTER_PATH_MAX || path[0] != '/' || pattern[0] != '/')
        return 0;
    for (;;) {
        const char *pe, *se;
        pp++;
        s++;
        pe = strchr(pp, '/');
        if (!pe)
            pe = pp + strlen(pp);
        se = memchr(s, '/', (size_t)(end - s));
        if (!se)
            se = end;
        if (!match_segment(pp, pe, s, se, params))
            return 0;
        if (*pe == '\0' || se == end)
            return *pe == '\0' && se == end;
        pp = pe;
        s = se;
    }
}

static void allow_add(char *allow, const char *method)
{
    size_t len = strlen(allow), mlen = strlen(method);
    const char *p = allow;

    while ((p = strstr(p, method)) != NULL) {
        if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
            return;
        p += mlen;
    }
    if (len + (len ? 2 : 0) + mlen + 1 > ROUTER_ALLOW_MAX)
        return;
    if (len) {
        memcpy(allow + len, ", ", 2);
        len += 2;
    }
    memcpy(allow + len, method, mlen + 1);
}

enum router_result router_find(const struct route *routes, size_t n, const char *method,
                               const char *path, size_t path_len, size_t *index,
                               struct router_params *params, char *allow)
{
    struct router_params scratch;
    int path_matched = 0;
    int is_head = strcmp(method, "HEAD") == 0;

    allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!router_match(routes[i].pattern, path, path_len, &scratch))
            continue;
        if (strcmp(routes[i].method, method) == 0 ||
            (is_head && strcmp(routes[i].method, "GET") == 0)) {
            *index = i;
            *params = scratch;
            return ROUTER_FOUND;
        }
        if (!path_matched)
            *index = i;
        path_matched = 1;
        allow_add(allow, routes[i].method);
        if (strcmp(routes[i].method, "GET") == 0)
            allow_add(allow, "HEAD");
    }
    return path_matched ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}

const char *router_param(const struct router_params *params, const char *name)
{
    for (size_t i = 0; i < params->count; i++)
        if (strcmp(params->p[i].name, name) == 0)
            return params->p[i].value;
    return NULL;
}
