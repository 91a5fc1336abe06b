/*
 * cast.get {"local_id"} or {"cast_id"} -> the local cast.
 */
#include "spell/errors.h"

#include "agent.h"

int method_cast_get(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    struct lcast c;
    cJSON *j;
    int rc = rpc_find_cast(a, call, params, true, &c);

    if (rc == SPELL_ENOTFOUND)
        return SPELL_OK;
    if (rc != SPELL_OK)
        return rc;
    j = lcast_to_json(&c);
    lcast_free(&c);
    if (!j)
        return SPELL_ENOMEM;
    rpc_reply(a, call, j);
    return SPELL_OK;
}
