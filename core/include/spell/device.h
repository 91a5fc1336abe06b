/*
 * Device authorization, the client side (RFC 8628).
 *
 * A front end with no browser of its own (the CLI, the terminal portal)
 * signs a person in like this:
 *
 *   1. spell_device_start() asks the platform for a grant
 *      (POST {base}/v1/auth/device) and fills a struct spell_device_grant:
 *      the secret device_code (kept by the caller, never shown), the
 *      user_code and verification URIs (shown to the person), its lifetime
 *      and the polling interval.
 *   2. The caller shows user_code and verification_uri, and may call
 *      spell_device_open_browser() with verification_uri_complete.
 *   3. The caller polls with spell_device_poll() on its own schedule,
 *      waiting grant->interval seconds between polls.  Each poll says one
 *      of: still pending; slow down (grant->interval has then been raised
 *      to the server's new interval, 5 s more per RFC 8628 §3.5); expired;
 *      denied; or approved, with the access token (a session token, handed
 *      out once).
 *
 * Nothing here sleeps or keeps a thread: the caller owns the schedule, so
 * a portal can poll from its event loop and a CLI from a plain loop.
 * Tokens and device codes never appear in error texts.
 *
 * Thread safety: no shared state; each grant belongs to its caller.
 */
#ifndef SPELL_DEVICE_H
#define SPELL_DEVICE_H

#include <stddef.h>
#include <stdint.h>

/* Caps on what the server may send back (NUL included). */
#define SPELL_DEVICE_CODE_MAX 128
#define SPELL_DEVICE_USER_CODE_MAX 32
#define SPELL_DEVICE_URI_MAX 2048
#define SPELL_DEVICE_TOKEN_MAX 512
/* Longest answer body read from either endpoint. */
#define SPELL_DEVICE_BODY_CAP ((size_t)64 * 1024)
/* Default and largest polling interval, in seconds. */
#define SPELL_DEVICE_DEFAULT_INTERVAL 5
#define SPELL_DEVICE_MAX_INTERVAL 300

struct spell_device_grant {
    /* The secret the client polls with; never shown to the person. */
    char device_code[SPELL_DEVICE_CODE_MAX];
    /* What the person types on the page, e.g. "BCDF-GHJK". */
    char user_code[SPELL_DEVICE_USER_CODE_MAX];
    /* The page where the person types the code: {public_url}/device. */
    char verification_uri[SPELL_DEVICE_URI_MAX];
    /* The same page with the code filled in; "" when the server sent none. */
    char verification_uri_complete[SPELL_DEVICE_URI_MAX];
    /* Lifetime of the grant in seconds, as the server said. */
    int expires_in;
    /* Seconds to wait between polls; raised by a slow_down answer.  Always
     * in [1, SPELL_DEVICE_MAX_INTERVAL]. */
    int interval;
};

/* What one poll found. */
enum spell_device_state {
    SPELL_DEVICE_PENDING,   /* the person has not finished yet: poll again */
    SPELL_DEVICE_SLOW_DOWN, /* polled too fast; grant->interval was raised */
    SPELL_DEVICE_EXPIRED,   /* the grant expired: start over */
    SPELL_DEVICE_DENIED,    /* the person pressed deny */
    SPELL_DEVICE_APPROVED,  /* the token is in the result */
};

struct spell_device_result {
    enum spell_device_state state;
    /* The access token (a session token); only when state is APPROVED. */
    char access_token[SPELL_DEVICE_TOKEN_MAX];
    /* "Bearer"; only when state is APPROVED. */
    char token_type[32];
    /* Lifetime of the token in seconds; 0 when unknown. */
    int64_t expires_in;
};

/*
 * Starts a grant at `base_url` (the platform, e.g. "https://spell.example",
 * without a trailing /v1).  On SPELL_OK *grant is filled.  Failures:
 * SPELL_EINVAL (bad arguments), SPELL_ENET / SPELL_ETIMEOUT (the server
 * could not be reached), SPELL_EHTTP (it answered with an error status),
 * SPELL_EPARSE (its answer lacked a field or broke a cap); err says why in
 * words.
 */
int spell_device_start(const char *base_url, struct spell_device_grant *grant, char *err,
                       size_t errlen);

/*
 * One poll: POST {base}/v1/auth/token with the grant's device code.  On
 * SPELL_OK *res says what the server answered; on SLOW_DOWN
 * grant->interval grew (by 5 s, or to the server's "interval" when it sent
 * one).  An "invalid_grant" answer, another error status or a malformed
 * body gives SPELL_EHTTP or SPELL_EPARSE; transport trouble SPELL_ENET or
 * SPELL_ETIMEOUT (the caller may keep polling).  Wipe res->access_token
 * when done with it (spell_device_result_wipe).
 */
int spell_device_poll(const char *base_url, struct spell_device_grant *grant,
                      struct spell_device_result *res, char *err, size_t errlen);

/* Zeroes the token in *res (volatile writes, so the compiler keeps them). */
void spell_device_result_wipe(struct spell_device_result *res);

/*
 * Opens `url` in the person's browser when there is a graphical session:
 * only when DISPLAY or WAYLAND_DISPLAY is set in `envp` (NULL: the
 * process environment) and an executable xdg-open is on PATH.  Runs
 * xdg-open directly (posix_spawn, no shell), with its output sent to
 * /dev/null, and does not wait for it (the child is reaped by a double
 * fork, so no zombie is left behind).  Only http and https URLs are
 * accepted.  Returns SPELL_OK when the browser was launched, SPELL_ENOTFOUND
 * when there is no graphical session or no xdg-open (the caller just shows
 * the URL), SPELL_EINVAL for a bad URL, SPELL_EIO when spawning failed.
 */
int spell_device_open_browser(const char *url, char *const *envp);

/* The name of a state, for logs: "pending", "slow_down", ... */
const char *spell_device_state_name(enum spell_device_state s);

#endif
