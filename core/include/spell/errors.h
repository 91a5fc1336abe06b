/*
 * Errors, in two tables.
 *
 * enum spell_rc is what core functions return: SPELL_OK (0) or a negative
 * failure.  The numbers are fixed; a retired code keeps its slot.
 *
 * enum spell_api_error is the platform's error catalog (DESIGN.md §3): the
 * code string that travels in {"error": {"code": ...}}, the HTTP status the
 * server answers with, and the sentence every front end shows a caster.
 * The catalog lives here once; server, agent, CLI and portal all read it.
 */
#ifndef SPELL_ERRORS_H
#define SPELL_ERRORS_H

#include <stddef.h>

enum spell_rc {
    SPELL_OK = 0,
    SPELL_ENOMEM = -1,      /* an allocation failed */
    SPELL_EINVAL = -2,      /* an argument or input is malformed */
    SPELL_ETOOBIG = -3,     /* a size cap was reached */
    SPELL_EIO = -4,         /* the operating system refused (errno kept) */
    SPELL_ENET = -5,        /* transport failed: DNS, connect, TLS, reset */
    SPELL_ETIMEOUT = -6,    /* a deadline passed */
    SPELL_EPARSE = -7,      /* data from outside is not well formed */
    SPELL_ENOTFOUND = -8,   /* the thing asked for does not exist */
    SPELL_EHTTP = -9,       /* the peer answered with an error status */
    SPELL_ECRYPTO = -10,    /* the crypto library failed */
    SPELL_EVERIFY = -11,    /* a signature, check or hash did not match */
    SPELL_EABORT = -12,     /* a callback asked to stop */
};

/* A short English sentence for a spell_rc; never NULL. */
const char *spell_strerror(int rc);

/* Writes a message into a caller's error buffer (err, errlen), the way
 * every core function that explains a refusal does; a NULL err or a zero
 * errlen writes nothing, a long message is cut to fit. */
void spell_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum spell_api_error {
    SPELL_ERR_UNAUTHORIZED,
    SPELL_ERR_FORBIDDEN,
    SPELL_ERR_NOT_FOUND,
    SPELL_ERR_SPELL_NOT_FOUND,
    SPELL_ERR_CAST_NOT_FOUND,
    SPELL_ERR_VALIDATION_ERROR,
    SPELL_ERR_IDEMPOTENCY_KEY_REQUIRED,
    SPELL_ERR_IDEMPOTENCY_KEY_REUSED,
    SPELL_ERR_IDEMPOTENCY_IN_PROGRESS,
    SPELL_ERR_BUDGET_EXCEEDED,
    SPELL_ERR_PAYMENT_METHOD_REQUIRED,
    SPELL_ERR_PAYMENT_FAILED,
    SPELL_ERR_PURCHASE_REQUIRED,
    SPELL_ERR_RATE_LIMITED,
    SPELL_ERR_PAYLOAD_TOO_LARGE,
    SPELL_ERR_METHOD_NOT_ALLOWED,
    SPELL_ERR_INTERNAL,
    SPELL_ERR_UNAVAILABLE,
    SPELL_ERR__COUNT
};

struct spell_api_error_info {
    const char *code;       /* "BUDGET_EXCEEDED", as on the wire */
    int status;             /* HTTP status: 402 */
    const char *sentence;   /* what a front end tells the caster */
};

/* The catalog row for e, or NULL when e is out of range. */
const struct spell_api_error_info *spell_api_error_info(enum spell_api_error e);

/* The catalog entry whose wire code is `code` (case-sensitive); -1 when the
 * code is unknown, as a newer server's code may be. */
int spell_api_error_lookup(const char *code);

/* Shorthands over spell_api_error_info(). */
const char *spell_api_error_code(enum spell_api_error e);
int spell_api_error_status(enum spell_api_error e);

/* The sentence for a wire code; for an unknown code, a generic sentence
 * chosen by the HTTP status (4xx: request refused, 5xx: server trouble). */
const char *spell_api_error_sentence(const char *code, int status);

#endif
