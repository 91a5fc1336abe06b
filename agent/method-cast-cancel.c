/*
 * cast.cancel {"local_id"} -> the local cast.
 *
 * A cast the server has not accepted is canceled here and never sent.
 * One whose submission is in flight is marked, and canceled on the server
 * as soon as the answer brings its id.  An accepted one is canceled with
 * POST /v1/casts/{id}:cancel and answered with the server's verdict.  A
 * final cast is answered as it is.
 */
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/errors.h"

#include "agent.h"

int method_cast_cancel(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    struct lcast c;
    cJSON *j;
    int rc = rpc_find_cast(a, call, params, false, &c);

    if (rc == SPELL_ENOTFOUND)
        return SPELL_OK;
    if (rc != SPELL_OK)
        return rc;
    switch (c.state) {
    case LCAST_PENDING:
        c.state = LCAST_CANCELED;
        c.finished_at = spell_time_now_ms();
        free(c.error_code);
        free(c.error_message);
        c.error_code = strdup("CANCELED");
        c.error_message = strdup("canceled before it was sent");
        c.error_status = 0;
        if ((rc = queue_update(a->queue, &c)) != SPELL_OK)
            goto out;
        events_emit(a, "cast.canceled", &c, 0, NULL);
        break;
    case LCAST_SUBMITTING:
        c.cancel_requested = true;
        if ((rc = queue_update(a->queue, &c)) != SPELL_OK)
            goto out;
        break;
    case LCAST_QUEUED:
    case LCAST_RUNNING:
        if (!creds_token(a)) {
            rpc_error(a, call, AGENT_ERR_SIGNED_OUT, "not signed in", NULL);
            rc = SPELL_OK;
            goto out;
        }
        rc = submit_cancel(a, &c, call);
        goto out;
    default:
        break;
    }
    rc = SPELL_ENOMEM;
    j = lcast_to_json(&c);
    if (!j)
        goto out;
    rpc_reply(a, call, j);
    rc = SPELL_OK;
out:
    lcast_free(&c);
    return rc;
}
