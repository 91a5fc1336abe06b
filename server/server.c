/*
 * Setting up and tearing down the application context (struct server) of
 * spell-server, and the clock every part reads through.
 *
 * The start order is fixed (see app.h): the store first, because every
 * other part reads from it; then the metrics registry, which the others
 * register their families in; the SSE hub and the bus that delivers cast
 * events to it; auth and the rate limiter; the executor last, since it
 * publishes through the bus and reads the store.  Teardown runs the same
 * list backwards and tolerates any prefix of it having been set up.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/version.h"

#include "app.h"
#include "metrics.h"
#include "server.h"
#include "sse_hub.h"
#include "store.h"

#include "api.h"
#include "auth.h"
#include "ratelimit.h"
#include "bus.h"
#include "exec.h"
#include "identity.h"
#include "billing.h"
#include "workflow.h"

int64_t srv_now_ms(const struct srv_clock *c)
{
    if (c && c->now_ms)
        return c->now_ms(c->ud);
    return spell_time_now_ms();
}

static const char *rc_text(int rc)
{
    if (rc == STORE_ESCHEMA)
        return "the database was written by a newer spell-server";
    if (rc == STORE_ECONFLICT)
        return "conflict";
    return spell_strerror(rc);
}

/* spell_build_info{version="x.y.z"} 1, the usual way to see which build
 * a scrape came from. */
static int register_build_info(struct metrics *m)
{
    static const char *const labels[] = {"version"};
    const char *values[1];
    struct metric *f = NULL;
    int rc;

    values[0] = spell_version();
    rc = metrics_gauge(m, "spell_build_info", "The version of this spell-server.", labels, 1,
                       2, &f);
    if (rc == SPELL_OK)
        rc = metrics_set(f, values, 1);
    return rc;
}

int app_setup(struct server *srv, const char *db_url, unsigned parts, char *err, size_t errlen)
{
    int rc = SPELL_EINVAL;
    const char *what = "arguments";

    if (!srv || ((parts & APP_STORE) && !db_url))
        goto out;

    if (parts & APP_STORE) {
        what = "store";
        if ((rc = store_open(db_url, &srv->store)) != SPELL_OK)
            goto out;
    }
    if (parts & APP_METRICS) {
        what = "metrics";
        if ((rc = metrics_new(&srv->metrics)) != SPELL_OK ||
            (rc = register_build_info(srv->metrics)) != SPELL_OK ||
            (rc = api_metrics_register(srv)) != SPELL_OK)
            goto out;
    }
    if (parts & APP_HUB) {
        what = "SSE hub";
        if ((rc = sse_hub_new(NULL, &srv->hub)) != SPELL_OK)
            goto out;
    }
    if (parts & APP_BUS) {
        what = "event bus";
        if ((rc = bus_local_new(srv, &srv->bus)) != SPELL_OK)
            goto out;
    }
    if (parts & APP_AUTH) {
        what = "auth";
        if ((rc = auth_new(srv, &srv->auth)) != SPELL_OK)
            goto out;
        what = "GitHub identity";
        if ((rc = identity_new(srv, &srv->identity)) != SPELL_OK)
            goto out;
        /* Billing comes with auth (its routes need a principal); without
         * STRIPE_SECRET_KEY it lets every cast through. */
        what = "billing";
        if ((rc = billing_new(srv, &srv->billing)) != SPELL_OK)
            goto out;
        srv->cast_gate = billing_cast_check;
    }
    if (parts & APP_RATELIMIT) {
        what = "rate limiter";
        if ((rc = ratelimit_new(&srv->limits, &srv->clock, &srv->rl)) != SPELL_OK)
            goto out;
    }
    if (parts & APP_EXEC) {
        what = "executor";
        if ((rc = exec_new(srv, &srv->exec)) != SPELL_OK)
            goto out;
        what = "GitHub App (check --github-app-id and the private key)";
        if ((rc = workflow_setup(srv)) != SPELL_OK)
            goto out;
    }
    rc = SPELL_OK;
out:
    if (rc != SPELL_OK) {
        spell_errf(err, errlen, "cannot set up the %s: %s", what, rc_text(rc));
        app_teardown(srv);
    }
    return rc;
}

/* spell_exec_workers: the service executor's threads in this process, 0
 * when it accepts casts and runs none (--workers 0).  Set once at start. */
static int set_exec_workers(struct server *srv, int n)
{
    struct metric *f = NULL;
    int rc;

    if (!srv->metrics)
        return SPELL_OK;
    rc = metrics_gauge(srv->metrics, "spell_exec_workers",
                       "Executor threads running casts in this process (0: casts stay queued).",
                       NULL, 0, 1, &f);
    if (rc == SPELL_OK)
        rc = metrics_set(f, NULL, n);
    return rc;
}

int app_exec_start(struct server *srv, char *err, size_t errlen)
{
    int rc = SPELL_OK;

    if (!srv->exec)
        goto out;
    if (srv->limits.workers == 0) {
        /* The executor is there to take and cancel casts, but none of
         * its threads start and nothing is recovered: every accepted cast
         * stays queued in the store for a server with workers. */
        if ((rc = set_exec_workers(srv, 0)) != SPELL_OK)
            spell_errf(err, errlen, "cannot register the executor's metrics: %s", rc_text(rc));
        goto out;
    }
    if ((rc = exec_recover(srv->exec)) != SPELL_OK) {
        spell_errf(err, errlen, "cannot recover unfinished casts: %s", rc_text(rc));
        goto out;
    }
    if ((rc = exec_start(srv->exec)) != SPELL_OK) {
        spell_errf(err, errlen, "cannot start the executor: %s", rc_text(rc));
        goto out;
    }
    if ((rc = set_exec_workers(srv, srv->limits.workers < EXEC_WORKERS_MAX
                                        ? srv->limits.workers : EXEC_WORKERS_MAX)) != SPELL_OK)
        spell_errf(err, errlen, "cannot register the executor's metrics: %s", rc_text(rc));
out:
    return rc;
}

void app_teardown(struct server *srv)
{
    if (!srv)
        return;
    if (srv->exec) {
        exec_stop(srv->exec);
        exec_free(srv->exec);
        srv->exec = NULL;
    }
    workflow_teardown(srv);
    if (srv->rl) {
        ratelimit_free(srv->rl);
        srv->rl = NULL;
    }
    if (srv->identity) {
        identity_free(srv->identity);
        srv->identity = NULL;
    }
    if (srv->auth) {
        auth_free(srv->auth);
        srv->auth = NULL;
    }
    if (srv->billing) {
        srv->cast_gate = NULL;
        billing_free(srv->billing);
        srv->billing = NULL;
    }
    if (srv->bus) {
        bus_free(srv->bus);
        srv->bus = NULL;
    }
    if (srv->hub) {
        sse_hub_shutdown(srv->hub);
        sse_hub_free(srv->hub);
        srv->hub = NULL;
    }
    if (srv->metrics) {
        srv->budget_rejections = NULL;
        metrics_free(srv->metrics);
        srv->metrics = NULL;
    }
    if (srv->store) {
        store_close(srv->store);
        srv->store = NULL;
    }
}
