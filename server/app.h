/*
 * Assembly of spell-server: building a struct server from its parts,
 * tearing it down again, the route table and the health endpoints.
 *
 * Data flow at start (main.c, `spell-server serve`):
 *
 *   app_setup()      store_open (migrations) -> metrics -> SSE hub -> bus
 *                    -> auth -> rate limiter -> executor (not started)
 *   app_exec_start() exec_recover (unfinished casts re-queued or failed)
 *                    -> exec_start (worker threads); neither with
 *                    --workers 0
 *   routes_build()   the route table (routes.h)
 *   httpd_start()    with auth_authenticate as the authenticate hook
 *
 * and at the end, after httpd_stop(): app_teardown() stops the executor
 * (running jobs stay durable in the store) and frees every part in the
 * reverse order.  The command-line subcommands (`users add`, `spells
 * import`, `ledger verify`) use app_setup() with a smaller set of parts.
 *
 * A part that app_setup() was not asked for leaves its pointer in struct
 * server NULL; app_teardown() frees exactly the parts that are set.
 */
#ifndef SPELL_SERVER_APP_H
#define SPELL_SERVER_APP_H

#include <stddef.h>

#include "server.h"

/* Which parts app_setup() brings up. */
enum app_part {
    APP_STORE = 1u << 0,
    APP_METRICS = 1u << 1,
    APP_HUB = 1u << 2,
    APP_BUS = 1u << 3,
    APP_AUTH = 1u << 4,
    APP_RATELIMIT = 1u << 5,
    APP_EXEC = 1u << 6,
    APP_ALL = 0x7f,
};

/* Bytes of a diagnostic written by app_setup(). */
#define APP_ERR_MAX 512

/*
 * Zeroes nothing: srv must arrive zeroed with clock, limits and
 * public_url already set.  Brings up the parts named by `parts` in the
 * start order above.  On failure everything brought up is torn down
 * again, err names the part that failed, and the result is that part's
 * code (STORE_ESCHEMA for a database written by a newer binary).
 */
int app_setup(struct server *srv, const char *db_url, unsigned parts, char *err, size_t errlen);

/* exec_recover() then exec_start(); SPELL_OK when no executor is built.
 * With srv->limits.workers 0 (`serve --workers 0`) neither runs: the
 * executor takes casts (they stay queued in the store, durable, until a
 * server with workers starts on the database and recovers them) and
 * cancels queued ones, but this process runs no spell.  Either way the
 * gauge spell_exec_workers shows the threads started. */
int app_exec_start(struct server *srv, char *err, size_t errlen);

/* Stops the executor and frees every part that is set; srv's pointers are
 * NULL afterwards.  Safe on a partly set up server. */
void app_teardown(struct server *srv);

#endif
