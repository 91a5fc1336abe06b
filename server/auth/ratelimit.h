/*
 * Rate limits of spell-server (DESIGN.md §3), with the IETF fields of
 * draft-ietf-httpapi-ratelimit-headers.
 *
 * Three policies, each a fixed window that opens at a subject's first
 * counted request and lasts the policy's window:
 *
 *   "requests"  per authenticated user, limits.rate_user_per_min per 60 s;
 *               counted by auth_authenticate() for every ROUTE_AUTH request
 *   "ip"        per client address without authentication,
 *               limits.rate_ip_per_min per 60 s; counted by
 *               ratelimit_ip_check(), which the unauthenticated public
 *               handlers call (/healthz, /metrics and webhooks do not),
 *               and by auth_authenticate() for every request on a
 *               ROUTE_AUTH route that brings no credential or one that
 *               fails (a bad key, a revoked key, an unknown or expired
 *               session, wrong check characters).  A request whose
 *               credential is valid is never counted nor refused here.
 *   "casts"     per user, limits.rate_casts_per_hour per 3600 s; counted by
 *               ratelimit_cast_check() in the cast handler
 *
 * A request past a limit is answered 429 RATE_LIMITED with
 *
 *   Retry-After: <seconds until the window ends, rounded up>
 *   RateLimit-Policy: "casts";q=100;w=3600
 *   RateLimit: "casts";r=0;t=<seconds until the window ends, rounded up>
 *
 * and a refused request does not count.  Successful answers carry the
 * same two fields for the policies the request consumed: the hook and
 * ratelimit_cast_check() note them in the request's principal (struct
 * auth_principal) and the handler calls ratelimit_headers(req, resp) on
 * the response it is about to return (several policies are written as one
 * list per field: "requests";r=59;t=60, "casts";r=99;t=3600).
 *
 * A fixed window lets a subject send up to twice the limit across a
 * window boundary; the simplicity (one counter and one time per subject)
 * is worth it at these limits.
 *
 * Memory: subjects live in a hash table split into RATELIMIT_STRIPES
 * stripes, each with its own mutex (low contention), holding at most
 * max_entries / RATELIMIT_STRIPES subjects.  Entries whose window has ended
 * are swept from a stripe when it is full and at most once a minute
 * otherwise.  A stripe still full after the sweep refuses new IP subjects
 * (fail closed: 429 with Retry-After 60) but lets new users through
 * untracked (never fail closed for an authenticated caller).  Hashing is
 * keyed with a random seed per table, so addresses cannot be chosen to
 * collide.
 *
 * Time comes from the injected struct srv_clock only.
 */
#ifndef SPELL_SERVER_RATELIMIT_H
#define SPELL_SERVER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "httpd.h"
#include "server.h"

/* Subjects tracked at once, all policies together. */
#define RATELIMIT_MAX_ENTRIES 100000
#define RATELIMIT_STRIPES 64
/* Longest subject (a user id or an address as text), NUL excluded. */
#define RATELIMIT_SUBJECT_MAX 63
/* Seconds a refused new IP is told to wait when the table is full. */
#define RATELIMIT_FULL_RETRY_S 60

struct ratelimit;

enum ratelimit_policy {
    RATELIMIT_REQUESTS = 0,     /* "requests": per user per minute */
    RATELIMIT_IP = 1,           /* "ip": per address per minute, unauthenticated */
    RATELIMIT_CASTS = 2,        /* "casts": per user per hour */
    /* "ip-verify": Argon2id verifications an address past its "ip" limit
     * may still cause, per address and key prefix: RATELIMIT_VERIFY_LIMIT
     * per 60 s (see auth.h).  Never on the wire. */
    RATELIMIT_IP_VERIFY = 3,
};
#define RATELIMIT_POLICIES 4
/* Argon2id verifications per minute for one address and key prefix once
 * the address is past its "ip" limit. */
#define RATELIMIT_VERIFY_LIMIT 1

/* The outcome of one ratelimit_take(). */
struct ratelimit_result {
    int allowed;            /* 1: go on; 0: answer 429 */
    int tracked;            /* 0 when the table was full (see above) */
    int limit;              /* q: requests per window */
    int window_s;           /* w: the window in seconds */
    int remaining;          /* r: after this request */
    int64_t reset_s;        /* t: seconds until the window ends, rounded up */
};

/* Limits from l (a field <= 0 takes the DESIGN.md default: 60, 10, 100);
 * c is copied.  ratelimit_new_cap() sets the entry cap (0: the default). */
int ratelimit_new(const struct server_limits *l, const struct srv_clock *c,
                  struct ratelimit **out);
int ratelimit_new_cap(const struct server_limits *l, const struct srv_clock *c,
                      size_t max_entries, struct ratelimit **out);
void ratelimit_free(struct ratelimit *rl);

/* Counts one request of subject under policy (when allowed) and fills
 * *out.  SPELL_EINVAL for an empty subject or one past
 * RATELIMIT_SUBJECT_MAX. */
int ratelimit_take(struct ratelimit *rl, enum ratelimit_policy policy, const char *subject,
                   struct ratelimit_result *out);

/* What ratelimit_take() would answer now, without counting anything or
 * tracking a new subject (allowed is 0 when the subject is at its limit,
 * or is unknown to a full table under RATELIMIT_IP).  Same errors. */
int ratelimit_peek(struct ratelimit *rl, enum ratelimit_policy policy, const char *subject,
                   struct ratelimit_result *out);

/* Subjects tracked now (all stripes). */
size_t ratelimit_entries(struct ratelimit *rl);

/* The policy's name on the wire: "requests", "ip" or "casts". */
const char *ratelimit_policy_name(enum ratelimit_policy policy);

/* The 429 answer for a refused result, with the fields described above. */
int ratelimit_refusal(enum ratelimit_policy policy, const struct ratelimit_result *r,
                      struct response **out);

/* Per-IP limit for unauthenticated public routes.  SPELL_OK to go on;
 * otherwise *refusal is the 429 to send (the handler returns SPELL_OK
 * with it as its answer). */
int ratelimit_ip_check(struct server *srv, struct request *req, struct response **refusal);

/* Casts per user.  SPELL_OK to go on (the count is noted in the request's
 * principal for ratelimit_headers()); otherwise *refusal is the 429. */
int ratelimit_cast_check(struct server *srv, struct request *req, const struct principal *p,
                         struct response **refusal);

/* Adds RateLimit-Policy and RateLimit for the policies the request
 * consumed (nothing for a request without an auth principal).  A failure
 * to add them is ignored: the answer matters more than its hints. */
void ratelimit_headers(struct request *req, struct response *resp);

#endif
