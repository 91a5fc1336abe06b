/*
 * Stripe billing for spell-server (DESIGN.md §2-§3, issue 6).
 *
 * How money flows:
 *
 *   card registration   POST /v1/billing/setup creates the user's Stripe
 *                       Customer once (its id kept in the store) and a
 *                       Checkout Session in setup mode; the browser
 *                       completes it at Stripe, and Stripe calls back
 *                       POST /webhooks/stripe with checkout.session.completed.
 *                       The webhook fetches the SetupIntent and the
 *                       PaymentMethod and saves brand, last 4 and expiry
 *                       (and the $50 hard limit when the user set none).
 *   casting             billing_cast_check() runs between the estimate and
 *                       the reservation: a paid cast needs a card on file
 *                       and no failed invoice payment (402 otherwise).
 *   month end           billing_run_monthly() (the command line's
 *                       `billing run-monthly` and POST
 *                       /admin/billing/process-monthly) makes one finalized
 *                       invoice per user for a closed period, an item per
 *                       spell, records it with a ledger `invoice` entry and
 *                       never bills a (user, period) twice.
 *   payment results     invoice.payment_failed marks the account (paid casts
 *                       then get 402 PAYMENT_FAILED), invoice.paid clears it.
 *
 * With no STRIPE_SECRET_KEY the part is inert: billing_new() still builds
 * it, the routes answer 503 UNAVAILABLE and billing_cast_check() lets every
 * cast through (the self-hosted default).
 *
 * Every request to Stripe is form-encoded with the secret key as Bearer
 * token (never logged) and every create carries an Idempotency-Key derived
 * from what it creates, so a retry or a second run never creates twice.
 * Thread safety: struct billing is read-only after billing_new(); all
 * state lives in the store.
 */
#ifndef SPELL_SERVER_BILLING_H
#define SPELL_SERVER_BILLING_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"

struct request;
struct response;
struct route;

/* Stripe's signature tolerance (seconds), as its own libraries use. */
#define BILLING_WEBHOOK_TOLERANCE_S 300
/* Largest webhook body accepted; Stripe events are a few KiB. */
#define BILLING_WEBHOOK_BODY_CAP ((size_t)256 * 1024)
/* Largest response body read from Stripe. */
#define BILLING_STRIPE_BODY_CAP ((size_t)1024 * 1024)

/* A sentence for people (CLI, logs, 5xx messages). */
#define BILLING_ERR_MAX 512

struct billing;

/* Builds the part from srv->providers (reads nothing else yet). */
int billing_new(struct server *srv, struct billing **out);
void billing_free(struct billing *b);

/* 1 when Stripe is configured (a secret key is set). */
int billing_enabled(const struct server *srv);

/* The part's routes (ud = srv): POST /v1/billing/setup,
 * POST /v1/billing/setup-intent, GET /v1/billing/payment-method,
 * POST /webhooks/stripe and POST /admin/billing/process-monthly. */
int billing_routes(struct server *srv, const struct route **rows, size_t *n);

/*
 * The cast gate.  SPELL_OK to go on; otherwise *refusal is the answer to
 * send (402 PAYMENT_METHOD_REQUIRED or 402 PAYMENT_FAILED) and the return
 * is SPELL_EABORT.  With billing not configured, or estimate_cents <= 0,
 * always SPELL_OK.  A store failure is returned as is.
 */
int billing_cast_check(struct server *srv, const char *user_id, int64_t estimate_cents,
                       struct response **refusal);

/* What one monthly run did. */
struct billing_run_summary {
    char period[8];             /* "YYYY-MM" */
    int invoiced;               /* invoices made now */
    int skipped;                /* users already invoiced for the period */
    int failed;                 /* users left for a later run (see err) */
};

/*
 * Invoices every user with usage in period ("YYYY-MM", or NULL for the
 * month before now).  A current or future period is SPELL_EINVAL.  Users
 * whose invoice cannot be made now count as failed and are retried safely
 * by the next run; err (may be NULL) receives the first reason.  Returns
 * SPELL_OK when the walk completed, even with failures.
 */
int billing_run_monthly(struct server *srv, const char *period,
                        struct billing_run_summary *sum, char *err, size_t errlen);

#endif
