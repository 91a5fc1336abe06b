/*
 * The portal's one background thread for account data.
 *
 * The drawing thread queues jobs (worker_submit); the worker sends each
 * with spell_http_send(), parses the answer and queues a result, then
 * writes one byte to the wakeup pipe so the drawing thread's poll()
 * returns.  The drawing thread takes results with worker_take() and owns
 * them from then on.  Nothing the drawing thread reads is ever written by
 * the worker, except the two lists, guarded by one mutex.
 */
#ifndef PORTAL_WORKER_H
#define PORTAL_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "spell/device.h"

/* Most jobs waiting at once; a submit past it is refused. */
#define WORKER_MAX_QUEUE 64
/* Largest answer body read, in bytes (a usage or key list is far less). */
#define WORKER_BODY_CAP ((size_t)1024 * 1024)

enum job_kind {
    JOB_ME,
    JOB_USAGE,
    JOB_USAGE_PERIOD,
    JOB_BUDGET,
    JOB_BUDGET_SET,
    JOB_BUDGET_RESET,
    JOB_KEYS,
    JOB_KEY_CREATE,
    JOB_KEY_REVOKE,
    JOB_CARD,
    JOB_BILLING_SETUP,
    JOB_SPELLS,
    JOB_LOGIN_CHECK,
    /* The device flow (spell/device.h): no bearer, the grant travels with
     * the job and comes back in the result. */
    JOB_DEVICE_START,
    JOB_DEVICE_POLL,
};

/* A request as the drawing thread describes it; also kept for retry. */
struct job {
    enum job_kind kind;
    char method[8];
    char path[256];
    char *body;             /* owned; NULL for none */
    char tag[128];          /* what the caller needs back (a prefix, a period) */
    char *bearer;           /* owned copy of the token; wiped when freed */
    char *url;              /* owned: base URL + path */
    /* Owned; the device-flow jobs only (the device code is a secret and
     * is wiped when freed). */
    struct spell_device_grant *grant;
    struct job *next;
};

struct job_result {
    enum job_kind kind;
    char tag[128];
    /* The request again, so that a failed one can be retried. */
    char method[8];
    char path[256];
    char *body;             /* owned; NULL for none */
    int rc;                 /* spell_http_send()'s result */
    int status;             /* HTTP status, 0 when none arrived */
    cJSON *json;            /* the parsed body, or NULL */
    char code[64];          /* the error body's code, or "" */
    char message[512];      /* the error body's message, or the transport's words */
    /* Device-flow jobs only, owned and wiped when freed: the grant as it
     * stands after the call (a slow_down raises its interval) and what a
     * poll found. */
    struct spell_device_grant *grant;
    struct spell_device_result *device;
    struct job_result *next;
};

struct worker;

int worker_start(struct worker **out, int *wake_rd);
/* Stops the thread (a request in flight finishes or times out first). */
void worker_stop(struct worker *w);
/* Copies everything it needs; SPELL_ETOOBIG when the queue is full. */
int worker_submit(struct worker *w, enum job_kind kind, const char *method, const char *base_url,
                  const char *path, const char *body, const char *tag, const char *bearer);
/* A device-flow job (JOB_DEVICE_START with grant NULL, JOB_DEVICE_POLL
 * with the grant to poll); the grant is copied. */
int worker_submit_device(struct worker *w, enum job_kind kind, const char *base_url,
                         const struct spell_device_grant *grant);
/* The next finished result, or NULL; the caller frees it. */
struct job_result *worker_take(struct worker *w);
void job_result_free(struct job_result *r);
/* Jobs queued or in flight. */
int worker_pending(struct worker *w);

#endif
