/*
 * cast.wait {"local_id", "timeout_ms": 0?} -> the local cast once it is
 * final, or as it stands when the timeout passes first ("final": false).
 * timeout_ms 0 waits without limit.  Any number of callers may wait for
 * the same cast; each counts as an outstanding request of its connection.
 */
#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/json.h"

#include "agent.h"

/* The longest timeout accepted: one day. */
#define WAIT_TIMEOUT_MAX_MS (24LL * 3600 * 1000)

int method_cast_wait(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    char err[256] = "";
    struct spell_json_at at = {params, "", err, sizeof(err)};
    int64_t timeout = 0;
    struct lcast c;
    cJSON *j;
    int rc;

    rc = spell_json_get_int64_range(&at, "timeout_ms", SPELL_JSON_OPTIONAL, 0,
                                    WAIT_TIMEOUT_MAX_MS, &timeout, NULL);
    if (rc != SPELL_OK)
        return rpc_params_failed(a, call, rc, err);
    rc = rpc_find_cast(a, call, params, false, &c);
    if (rc == SPELL_ENOTFOUND)
        return SPELL_OK;
    if (rc != SPELL_OK)
        return rc;
    if (lcast_state_is_final(c.state)) {
        j = lcast_to_json(&c);
        lcast_free(&c);
        if (!j)
            return SPELL_ENOMEM;
        rpc_reply(a, call, j);
        return SPELL_OK;
    }
    rc = events_add_waiter(a, call, c.local_id, timeout ? spell_time_now_ms() + timeout : 0);
    lcast_free(&c);
    return rc;
}
