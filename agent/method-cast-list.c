/*
 * cast.list {"limit": 50?} -> {"casts": [local cast, ...]}, newest first;
 * limit 1..500.
 */
#include "spell/errors.h"
#include "spell/json.h"

#include "agent.h"

int method_cast_list(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    char err[256] = "";
    struct spell_json_at at = {params, "", err, sizeof(err)};
    int64_t limit = 50;
    struct lcast *v = NULL;
    size_t n = 0;
    cJSON *r = NULL, *arr = NULL;
    int rc;

    rc = spell_json_get_int64_range(&at, "limit", SPELL_JSON_OPTIONAL, 1, AGENT_LIST_MAX, &limit,
                                    NULL);
    if (rc != SPELL_OK)
        return rpc_params_failed(a, call, rc, err);
    if ((rc = queue_list(a->queue, (int)limit, &v, &n)) != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    r = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(r, "casts");
    if (!r || !arr)
        goto out;
    for (size_t i = 0; i < n; i++) {
        cJSON *j = lcast_to_json(&v[i]);

        if (!j)
            goto out;
        cJSON_AddItemToArray(arr, j);
    }
    rpc_reply(a, call, r);
    r = NULL;
    rc = SPELL_OK;
out:
    cJSON_Delete(r);
    queue_free_list(v, n);
    return rc;
}
