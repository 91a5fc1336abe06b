/*
 * events.subscribe {} -> {"subscribed": true}; from then on the
 * connection receives {"method": "event", "params": {"kind", "cast",
 * "seq"?, "log"?}} notifications.  "seq" is the server's event seq when
 * the notification comes from a progress event; "log" the line of a
 * cast.log event.
 */
#include "spell/errors.h"
#include "spell/json.h"

#include "agent.h"

int method_events_subscribe(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    cJSON *r = cJSON_CreateObject();

    if (!r || spell_json_add_bool(r, "subscribed", true)) {
        cJSON_Delete(r);
        return SPELL_ENOMEM;
    }
    if (call->client)
        call->client->subscribed = true;
    rpc_reply(a, call, r);
    return SPELL_OK;
}
