/*
 * The two error tables of errors.h.  Front ends never word an error
 * themselves: they look the code up here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "spell/errors.h"

const char *spell_strerror(int rc)
{
    switch ((enum spell_rc)rc) {
    case SPELL_OK: return "success";
    case SPELL_ENOMEM: return "out of memory";
    case SPELL_EINVAL: return "invalid argument or input";
    case SPELL_ETOOBIG: return "size limit exceeded";
    case SPELL_EIO: return "input/output error";
    case SPELL_ENET: return "network error";
    case SPELL_ETIMEOUT: return "timed out";
    case SPELL_EPARSE: return "malformed data";
    case SPELL_ENOTFOUND: return "not found";
    case SPELL_EHTTP: return "the server answered with an error";
    case SPELL_ECRYPTO: return "cryptographic library failure";
    case SPELL_EVERIFY: return "verification failed";
    case SPELL_EABORT: return "aborted";
    }
    return "unknown error";
}

void spell_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const struct spell_api_error_info catalog[SPELL_ERR__COUNT] = {
    [SPELL_ERR_UNAUTHORIZED] = {"UNAUTHORIZED", 401,
        "You are not signed in, or your key or session is no longer valid."},
    [SPELL_ERR_FORBIDDEN] = {"FORBIDDEN", 403,
        "Your account is not allowed to do that."},
    [SPELL_ERR_NOT_FOUND] = {"NOT_FOUND", 404,
        "There is nothing at that address."},
    [SPELL_ERR_SPELL_NOT_FOUND] = {"SPELL_NOT_FOUND", 404,
        "No published spell has that name."},
    [SPELL_ERR_CAST_NOT_FOUND] = {"CAST_NOT_FOUND", 404,
        "No cast of yours has that id."},
    [SPELL_ERR_VALIDATION_ERROR] = {"VALIDATION_ERROR", 400,
        "Some of the input is not valid; the details name the field."},
    [SPELL_ERR_IDEMPOTENCY_KEY_REQUIRED] = {"IDEMPOTENCY_KEY_REQUIRED", 400,
        "A cast needs an Idempotency-Key header so a retry cannot charge twice."},
    [SPELL_ERR_IDEMPOTENCY_KEY_REUSED] = {"IDEMPOTENCY_KEY_REUSED", 422,
        "That Idempotency-Key was already used for a different request."},
    [SPELL_ERR_IDEMPOTENCY_IN_PROGRESS] = {"IDEMPOTENCY_IN_PROGRESS", 409,
        "The first request with that Idempotency-Key is still being handled; try again shortly."},
    [SPELL_ERR_BUDGET_EXCEEDED] = {"BUDGET_EXCEEDED", 402,
        "This cast would go over your budget's hard limit."},
    [SPELL_ERR_PAYMENT_METHOD_REQUIRED] = {"PAYMENT_METHOD_REQUIRED", 402,
        "Paid spells need a card on file; add one to continue."},
    [SPELL_ERR_PAYMENT_FAILED] = {"PAYMENT_FAILED", 402,
        "Your last payment failed; paid spells are paused until it is settled."},
    [SPELL_ERR_PURCHASE_REQUIRED] = {"PURCHASE_REQUIRED", 402,
        "This spell must be purchased before it can be used."},
    [SPELL_ERR_RATE_LIMITED] = {"RATE_LIMITED", 429,
        "Too many requests; wait a moment and try again."},
    [SPELL_ERR_PAYLOAD_TOO_LARGE] = {"PAYLOAD_TOO_LARGE", 413,
        "The request is larger than the server accepts."},
    [SPELL_ERR_METHOD_NOT_ALLOWED] = {"METHOD_NOT_ALLOWED", 405,
        "That address does not accept this method."},
    [SPELL_ERR_INTERNAL] = {"INTERNAL", 500,
        "Something went wrong on the server; nothing was charged for it."},
    [SPELL_ERR_UNAVAILABLE] = {"UNAVAILABLE", 503,
        "The service is unavailable right now; try again shortly."},
};

const struct spell_api_error_info *spell_api_error_info(enum spell_api_error e)
{
    if ((int)e < 0 || e >= SPELL_ERR__COUNT)
        return NULL;
    return &catalog[e];
}

int spell_api_error_lookup(const char *code)
{
    if (!code)
        return -1;
    for (int i = 0; i < SPELL_ERR__COUNT; i++)
        if (strcmp(catalog[i].code, code) == 0)
            return i;
    return -1;
}

const char *spell_api_error_code(enum spell_api_error e)
{
    const struct spell_api_error_info *info = spell_api_error_info(e);
    return info ? info->code : "INTERNAL";
}

int spell_api_error_status(enum spell_api_error e)
{
    const struct spell_api_error_info *info = spell_api_error_info(e);
    return info ? info->status : 500;
}

const char *spell_api_error_sentence(const char *code, int status)
{
    int e = spell_api_error_lookup(code);
    if (e >= 0)
        return catalog[e].sentence;
    if (status >= 500)
        return "The server ran into trouble; try again shortly.";
    if (status >= 400)
        return "The server refused the request.";
    return "Unexpected answer from the server.";
}
