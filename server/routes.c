/*
 * The one route table of spell-server, assembled from the parts.
 *
 * Each part hands out its rows in a read-only table of its own (auth_routes(),
 * api_routes()); a row whose ud is NULL is meant to receive the struct
 * server, so the rows are copied here into one heap array with ud set.
 * A method and pattern registered twice would leave the second row dead
 * (the router takes the first match), so that is refused at start rather
 * than found in production.
 */
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"

#include "router.h"
#include "routes.h"
#include "server.h"

#include "auth.h"
#include "api.h"
#include "identity.h"
#include "workflow.h"
#include "billing.h"

static int append(struct route *table, size_t *n, struct server *srv, const struct route *rows,
                  size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (*n >= ROUTES_MAX)
            return SPELL_ETOOBIG;
        if (!rows[i].method || !rows[i].pattern || !rows[i].handler)
            return SPELL_EINVAL;
        for (size_t j = 0; j < *n; j++)
            if (strcmp(table[j].method, rows[i].method) == 0 &&
                strcmp(table[j].pattern, rows[i].pattern) == 0)
                return SPELL_EINVAL;
        table[*n] = rows[i];
        if (!table[*n].ud)
            table[*n].ud = srv;
        (*n)++;
    }
    return SPELL_OK;
}

int routes_merge(struct server *srv, const struct route *const *parts, const size_t *counts,
                 size_t nparts, struct route **rows, size_t *n)
{
    struct route *table = NULL;
    size_t count = 0;
    int rc = SPELL_EINVAL;

    if (!srv || !rows || !n || (nparts && (!parts || !counts)))
        goto out;
    rc = SPELL_ENOMEM;
    table = calloc(ROUTES_MAX, sizeof *table);
    if (!table)
        goto out;
    for (size_t i = 0; i < nparts; i++) {
        rc = SPELL_EINVAL;
        if (counts[i] && !parts[i])
            goto out;
        if ((rc = append(table, &count, srv, parts[i], counts[i])) != SPELL_OK)
            goto out;
    }
    *rows = table;
    *n = count;
    table = NULL;
    rc = SPELL_OK;
out:
    free(table);
    return rc;
}

int routes_build(struct server *srv, struct route **rows, size_t *n)
{
    struct route health[HEALTH_ROUTES];
    const struct route *parts[6] = {health, NULL, NULL, NULL, NULL, NULL};
    size_t counts[6] = {0, 0, 0, 0, 0, 0};
    int rc;

    if (!srv || !rows || !n)
        return SPELL_EINVAL;
    if ((rc = health_routes(srv, health, HEALTH_ROUTES, &counts[0])) != SPELL_OK ||
        (rc = auth_routes(srv, &parts[1], &counts[1])) != SPELL_OK ||
        (rc = api_routes(srv, &parts[2], &counts[2])) != SPELL_OK ||
        (rc = identity_routes(srv, &parts[5], &counts[5])) != SPELL_OK ||
        (rc = workflow_routes(srv, &parts[3], &counts[3])) != SPELL_OK)
        return rc;
    /* Billing's rows exist once its part is built (app_setup, APP_BILLING). */
    if (srv->billing && (rc = billing_routes(srv, &parts[4], &counts[4])) != SPELL_OK)
        return rc;
    return routes_merge(srv, parts, counts, 6, rows, n);
}

void routes_free(struct route *rows)
{
    free(rows);
}
