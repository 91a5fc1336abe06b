/*
 * Fixed-window rate limits in a striped hash table (see ratelimit.h).
 *
 * A subject is (policy, text).  Its entry holds the start of its current
 * window and the requests counted in it; a request after the window's end
 * opens a new one.  Each stripe has its own mutex, bucket array and entry
 * count, so two requests contend only when their subjects share a stripe.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/crypto.h"
#include "spell/errors.h"

#include "auth.h"
#include "ratelimit.h"

/* Buckets per stripe: a power of two. */
#define STRIPE_BUCKETS 1024u
/* Idle entries are swept at most this often per stripe when not full. */
#define SWEEP_INTERVAL_MS (60LL * 1000)

struct rl_entry {
    struct rl_entry *next;
    uint64_t hash;
    enum ratelimit_policy policy;
    int64_t window_start_ms;
    int count;
    char subject[RATELIMIT_SUBJECT_MAX + 1];
};

struct rl_stripe {
    pthread_mutex_t lock;
    struct rl_entry *buckets[STRIPE_BUCKETS];
    size_t count;
    int64_t last_sweep_ms;
};

struct ratelimit {
    struct srv_clock clock;
    int limit[RATELIMIT_POLICIES];
    int window_s[RATELIMIT_POLICIES];
    /* Entries one stripe may hold: the table's cap over RATELIMIT_STRIPES,
     * at least 1. */
    size_t stripe_cap;
    /* Random key of the subject hash, drawn at creation. */
    uint64_t seed[2];
    struct rl_stripe stripes[RATELIMIT_STRIPES];
};

static const char *const policy_names[RATELIMIT_POLICIES] = {"requests", "ip", "casts",
                                                               "ip-verify"};

const char *ratelimit_policy_name(enum ratelimit_policy policy)
{
    if ((int)policy < 0 || (int)policy >= RATELIMIT_POLICIES)
        return "requests";
    return policy_names[policy];
}

int ratelimit_new(const struct server_limits *l, const struct srv_clock *c,
                  struct ratelimit **out)
{
    return ratelimit_new_cap(l, c, 0, out);
}

int ratelimit_new_cap(const struct server_limits *l, const struct srv_clock *c,
                      size_t max_entries, struct ratelimit **out)
{
    int rc = SPELL_EINVAL;
    struct ratelimit *rl = NULL;
    size_t i, inited = 0;

    if (!out)
        return SPELL_EINVAL;
    *out = NULL;
    rc = SPELL_ENOMEM;
    if (!(rl = calloc(1, sizeof *rl)))
        goto out;
    if (c)
        rl->clock = *c;
    rl->limit[RATELIMIT_REQUESTS] = l && l->rate_user_per_min > 0 ? l->rate_user_per_min : 60;
    rl->limit[RATELIMIT_IP] = l && l->rate_ip_per_min > 0 ? l->rate_ip_per_min : 10;
    rl->limit[RATELIMIT_CASTS] = l && l->rate_casts_per_hour > 0 ? l->rate_casts_per_hour : 100;
    rl->window_s[RATELIMIT_REQUESTS] = 60;
    rl->window_s[RATELIMIT_IP] = 60;
    rl->window_s[RATELIMIT_CASTS] = 3600;
    rl->limit[RATELIMIT_IP_VERIFY] = RATELIMIT_VERIFY_LIMIT;
    rl->window_s[RATELIMIT_IP_VERIFY] = 60;
    if (max_entries == 0)
        max_entries = RATELIMIT_MAX_ENTRIES;
    rl->stripe_cap = max_entries / RATELIMIT_STRIPES;
    if (rl->stripe_cap == 0)
        rl->stripe_cap = 1;
    if ((rc = spell_random_bytes(rl->seed, sizeof rl->seed)) != SPELL_OK)
        goto out;
    for (i = 0; i < RATELIMIT_STRIPES; i++, inited++) {
        if (pthread_mutex_init(&rl->stripes[i].lock, NULL) != 0) {
            rc = SPELL_ENOMEM;
            goto out;
        }
    }
    *out = rl;
    rl = NULL;
    rc = SPELL_OK;
out:
    if (rl) {
        for (i = 0; i < inited; i++)
            pthread_mutex_destroy(&rl->stripes[i].lock);
        free(rl);
    }
    return rc;
}

void ratelimit_free(struct ratelimit *rl)
{
    size_t i, b;

    if (!rl)
        return;
    for (i = 0; i < RATELIMIT_STRIPES; i++) {
        for (b = 0; b < STRIPE_BUCKETS; b++) {
            struct rl_entry *e = rl->stripes[i].buckets[b];
            while (e) {
                struct rl_entry *next = e->next;
                free(e);
                e = next;
            }
        }
        pthread_mutex_destroy(&rl->stripes[i].lock);
    }
    free(rl);
}

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

/* SipHash-1-3 style mixing of the subject under the table's seed. */
static uint64_t subject_hash(const struct ratelimit *rl, enum ratelimit_policy policy,
                             const char *s, size_t len)
{
    uint64_t v0 = rl->seed[0] ^ 0x736f6d6570736575ULL;
    uint64_t v1 = rl->seed[1] ^ 0x646f72616e646f6dULL;
    uint64_t v2 = rl->seed[0] ^ 0x6c7967656e657261ULL;
    uint64_t v3 = rl->seed[1] ^ 0x7465646279746573ULL;
    uint64_t m;
    size_t i = 0;
    int r;

#define SIPROUND()                                                      \
    do {                                                                \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);       \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                          \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                          \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);       \
    } while (0)

    for (;;) {
        size_t k, n = len - i < 8 ? len - i : 8;
        m = 0;
        for (k = 0; k < n; k++)
            m |= (uint64_t)(unsigned char)s[i + k] << (8 * k);
        if (n < 8)
            m |= ((uint64_t)len & 0xff) << 56 | (uint64_t)policy << 48;
        v3 ^= m;
        SIPROUND();
        v0 ^= m;
        i += n;
        if (n < 8)
            break;
    }
    v2 ^= 0xff;
    for (r = 0; r < 3; r++)
        SIPROUND();
#undef SIPROUND
    return v0 ^ v1 ^ v2 ^ v3;
}

static int64_t window_end(const struct ratelimit *rl, const struct rl_entry *e)
{
    return e->window_start_ms + (int64_t)rl->window_s[e->policy] * 1000;
}

/* Removes every entry whose window ended at now.  Lock held. */
static void stripe_sweep(struct ratelimit *rl, struct rl_stripe *st, int64_t now)
{
    size_t b;

    for (b = 0; b < STRIPE_BUCKETS; b++) {
        struct rl_entry **pp = &st->buckets[b];
        while (*pp) {
            struct rl_entry *e = *pp;
            if (now >= window_end(rl, e)) {
                *pp = e->next;
                free(e);
                st->count--;
            } else {
                pp = &e->next;
            }
        }
    }
    st->last_sweep_ms = now;
}

static int64_t ceil_seconds(int64_t ms)
{
    if (ms <= 0)
        return 0;
    return (ms + 999) / 1000;
}

/* take (count = 1) or peek (count = 0) at one subject. */
static int lookup(struct ratelimit *rl, enum ratelimit_policy policy, const char *subject,
                  int count, struct ratelimit_result *out)
{
    int rc = SPELL_EINVAL;
    struct rl_stripe *st = NULL;
    struct rl_entry *e;
    size_t len;
    uint64_t h;
    int64_t now;

    if (out)
        memset(out, 0, sizeof *out);
    if (!rl || !subject || !out || (int)policy < 0 || (int)policy >= RATELIMIT_POLICIES)
        return SPELL_EINVAL;
    len = strnlen(subject, RATELIMIT_SUBJECT_MAX + 1);
    if (len == 0 || len > RATELIMIT_SUBJECT_MAX)
        return SPELL_EINVAL;

    now = srv_now_ms(&rl->clock);
    h = subject_hash(rl, policy, subject, len);
    st = &rl->stripes[h % RATELIMIT_STRIPES];
    out->limit = rl->limit[policy];
    out->window_s = rl->window_s[policy];

    pthread_mutex_lock(&st->lock);
    for (e = st->buckets[(h / RATELIMIT_STRIPES) % STRIPE_BUCKETS]; e; e = e->next)
        if (e->hash == h && e->policy == policy && strcmp(e->subject, subject) == 0)
            break;
    if (e && now >= window_end(rl, e)) {
        if (!count) {
            /* The window has ended: the next take opens a new one. */
            out->tracked = 1;
            out->allowed = 1;
            out->remaining = out->limit;
            out->reset_s = out->window_s;
            rc = SPELL_OK;
            goto out;
        }
        e->window_start_ms = now;
        e->count = 0;
    }
    if (!e && !count) {
        out->tracked = st->count < rl->stripe_cap;
        out->allowed = out->tracked || policy != RATELIMIT_IP;
        out->remaining = out->allowed ? out->limit : 0;
        out->reset_s = out->allowed ? out->window_s : RATELIMIT_FULL_RETRY_S;
        rc = SPELL_OK;
        goto out;
    }
    if (!e) {
        if (st->count >= rl->stripe_cap || now - st->last_sweep_ms >= SWEEP_INTERVAL_MS)
            stripe_sweep(rl, st, now);
        if (st->count >= rl->stripe_cap) {
            /* Full: refuse an unknown address, let a user through. */
            out->tracked = 0;
            if (policy == RATELIMIT_IP || policy == RATELIMIT_IP_VERIFY) {
                out->allowed = 0;
                out->remaining = 0;
                out->reset_s = RATELIMIT_FULL_RETRY_S;
            } else {
                out->allowed = 1;
                out->remaining = out->limit - 1;
                out->reset_s = out->window_s;
            }
            rc = SPELL_OK;
            goto out;
        }
        rc = SPELL_ENOMEM;
        if (!(e = calloc(1, sizeof *e)))
            goto out;
        e->hash = h;
        e->policy = policy;
        e->window_start_ms = now;
        memcpy(e->subject, subject, len + 1);
        e->next = st->buckets[(h / RATELIMIT_STRIPES) % STRIPE_BUCKETS];
        st->buckets[(h / RATELIMIT_STRIPES) % STRIPE_BUCKETS] = e;
        st->count++;
    }
    out->tracked = 1;
    out->reset_s = ceil_seconds(window_end(rl, e) - now);
    if (e->count >= out->limit) {
        out->allowed = 0;
        out->remaining = 0;
    } else {
        if (count)
            e->count++;
        out->allowed = 1;
        out->remaining = out->limit - e->count;
    }
    rc = SPELL_OK;
out:
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int ratelimit_take(struct ratelimit *rl, enum ratelimit_policy policy, const char *subject,
                   struct ratelimit_result *out)
{
    return lookup(rl, policy, subject, 1, out);
}

int ratelimit_peek(struct ratelimit *rl, enum ratelimit_policy policy, const char *subject,
                   struct ratelimit_result *out)
{
    return lookup(rl, policy, subject, 0, out);
}

size_t ratelimit_entries(struct ratelimit *rl)
{
    size_t i, n = 0;

    if (!rl)
        return 0;
    for (i = 0; i < RATELIMIT_STRIPES; i++) {
        pthread_mutex_lock(&rl->stripes[i].lock);
        n += rl->stripes[i].count;
        pthread_mutex_unlock(&rl->stripes[i].lock);
    }
    return n;
}

static int add_fields(struct response *resp, enum ratelimit_policy policy,
                      const struct ratelimit_result *r)
{
    char policy_v[128], limit_v[128];
    int rc;

    snprintf(policy_v, sizeof policy_v, "\"%s\";q=%d;w=%d", ratelimit_policy_name(policy),
             r->limit, r->window_s);
    snprintf(limit_v, sizeof limit_v, "\"%s\";r=%d;t=%" PRId64, ratelimit_policy_name(policy),
             r->remaining, r->reset_s);
    if ((rc = httpd_response_header(resp, "RateLimit-Policy", policy_v)) != SPELL_OK)
        return rc;
    return httpd_response_header(resp, "RateLimit", limit_v);
}

int ratelimit_refusal(enum ratelimit_policy policy, const struct ratelimit_result *r,
                      struct response **out)
{
    int rc = SPELL_EINVAL;
    struct response *resp = NULL;
    cJSON *details = NULL;
    char retry[32];
    int64_t wait_s;

    if (!r || !out)
        return SPELL_EINVAL;
    *out = NULL;
    wait_s = r->reset_s > 0 ? r->reset_s : 1;
    rc = SPELL_ENOMEM;
    if (!(details = cJSON_CreateObject()) ||
        !cJSON_AddStringToObject(details, "policy", ratelimit_policy_name(policy)) ||
        !cJSON_AddNumberToObject(details, "limit", r->limit) ||
        !cJSON_AddNumberToObject(details, "window_s", r->window_s) ||
        !cJSON_AddNumberToObject(details, "retry_after_s", (double)wait_s))
        goto out;
    if ((rc = httpd_response_error(SPELL_ERR_RATE_LIMITED, NULL, details, &resp)) != SPELL_OK)
        goto out;
    snprintf(retry, sizeof retry, "%" PRId64, wait_s);
    if ((rc = httpd_response_header(resp, "Retry-After", retry)) != SPELL_OK ||
        (rc = add_fields(resp, policy, r)) != SPELL_OK)
        goto out;
    *out = resp;
    resp = NULL;
    rc = SPELL_OK;
out:
    cJSON_Delete(details);
    httpd_response_free(resp);
    return rc;
}

/* A refusal from take() or from a failure inside it: either way the
 * request stops with an answer (500 when even the 429 cannot be made). */
static int refuse(enum ratelimit_policy policy, const struct ratelimit_result *r,
                  struct response **refusal)
{
    if (ratelimit_refusal(policy, r, refusal) != SPELL_OK) {
        if (httpd_response_error(SPELL_ERR_INTERNAL, NULL, NULL, refusal) != SPELL_OK)
            *refusal = NULL;
    }
    return SPELL_EABORT;
}

int ratelimit_ip_check(struct server *srv, struct request *req, struct response **refusal)
{
    struct ratelimit_result r;
    const char *ip;
    int rc;

    if (!refusal)
        return SPELL_EINVAL;
    *refusal = NULL;
    if (!srv || !srv->rl || !req)
        return SPELL_OK;
    ip = httpd_request_remote(req);
    if (!ip || !*ip)
        ip = "unknown";
    rc = ratelimit_take(srv->rl, RATELIMIT_IP, ip, &r);
    if (rc == SPELL_OK && r.allowed)
        return SPELL_OK;
    if (rc != SPELL_OK) {
        /* An address we cannot track (too long, out of memory): refuse
         * rather than let it past the limit. */
        memset(&r, 0, sizeof r);
        r.limit = 0;
        r.window_s = 60;
        r.reset_s = RATELIMIT_FULL_RETRY_S;
    }
    return refuse(RATELIMIT_IP, &r, refusal);
}

int ratelimit_cast_check(struct server *srv, struct request *req, const struct principal *p,
                         struct response **refusal)
{
    struct ratelimit_result r;
    struct auth_principal *ap = NULL;
    int rc;

    if (!refusal)
        return SPELL_EINVAL;
    *refusal = NULL;
    if (!srv || !p)
        return SPELL_EINVAL;
    if (!srv->rl)
        return SPELL_OK;
    rc = ratelimit_take(srv->rl, RATELIMIT_CASTS, p->user_id, &r);
    if (rc != SPELL_OK)
        return rc;
    if (!r.allowed)
        return refuse(RATELIMIT_CASTS, &r, refusal);
    if (req)
        ap = httpd_request_principal(req);
    if (ap && &ap->p == p) {
        ap->cast_counted = 1;
        ap->cast_limit = r.limit;
        ap->cast_remaining = r.remaining;
        ap->cast_reset_s = r.reset_s;
        ap->cast_window_s = r.window_s;
    }
    return SPELL_OK;
}

void ratelimit_headers(struct request *req, struct response *resp)
{
    const struct auth_principal *ap;
    char policy_v[256], limit_v[256];
    int n1 = 0, n2 = 0;

    if (!req || !resp || !(ap = httpd_request_principal(req)))
        return;
    policy_v[0] = limit_v[0] = '\0';
    if (ap->req_counted) {
        n1 = snprintf(policy_v, sizeof policy_v, "\"requests\";q=%d;w=%d", ap->req_limit,
                      ap->req_window_s);
        n2 = snprintf(limit_v, sizeof limit_v, "\"requests\";r=%d;t=%" PRId64,
                      ap->req_remaining, ap->req_reset_s);
    }
    if (ap->cast_counted && n1 >= 0 && n2 >= 0 && (size_t)n1 < 100 && (size_t)n2 < 100) {
        snprintf(policy_v + n1, sizeof policy_v - (size_t)n1, "%s\"casts\";q=%d;w=%d",
                 n1 ? ", " : "", ap->cast_limit, ap->cast_window_s);
        snprintf(limit_v + n2, sizeof limit_v - (size_t)n2, "%s\"casts\";r=%d;t=%" PRId64,
                 n2 ? ", " : "", ap->cast_remaining, ap->cast_reset_s);
    }
    if (!policy_v[0])
        return;
    (void)httpd_response_header(resp, "RateLimit-Policy", policy_v);
    (void)httpd_response_header(resp, "RateLimit", limit_v);
}
