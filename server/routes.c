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

int routes_build(struct server *srv, struct route **rows, size_t *n)
{
    struct route *table = NULL;
    struct route health[HEALTH_ROUTES];
    size_t count = 0, nhealth = 0;
    int rc = SPELL_EINVAL;

    if (!srv || !rows || !n)
        goto out;
    rc = SPELL_ENOMEM;
    table = calloc(ROUTES_MAX, sizeof *table);
    if (!table)
        goto out;

    if ((rc = health_routes(srv, health, HEALTH_ROUTES, &nhealth)) != SPELL_OK ||
        (rc = append(table, &count, srv, health, nhealth)) != SPELL_OK)
        goto out;
    {
        const struct route *part = NULL;
        size_t npart = 0;
        if ((rc = auth_routes(srv, &part, &npart)) != SPELL_OK ||
            (rc = append(table, &count, srv, part, npart)) != SPELL_OK)
            goto out;
    }
    {
        const struct route *part = NULL;
        size_t npart = 0;
        if ((rc = api_routes(srv, &part, &npart)) != SPELL_OK ||
            (rc = append(table, &count, srv, part, npart)) != SPELL_OK)
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

void routes_free(struct route *rows)
{
    free(rows);
}
