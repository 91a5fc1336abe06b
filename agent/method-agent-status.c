/*
 * agent.status {} -> version, protocol, pid, uptime, API URL, where the
 * credential lives, whether notifications work, the desktop helper (its
 * state, pid and how many were started) and the queue's counts.
 */
#include <unistd.h>

#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "spell/version.h"

#include "agent.h"
#include "desktop/desktop.h"

int method_agent_status(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    struct queue_counts qc;
    cJSON *r = cJSON_CreateObject();
    cJSON *cred = cJSON_CreateObject();
    cJSON *q = cJSON_CreateObject();
    cJSON *helper = cJSON_CreateObject();
    int rc = SPELL_ENOMEM;
    int helper_pid = 0;
    unsigned helper_starts = 0;
    bool helper_up = desktop_helper_info(a->desktop, &helper_pid, &helper_starts);
    bool notes = a->desktop && a->opt.notifications &&
                 desktop_notifications_available(a->desktop);

    if (queue_counts(a->queue, &qc) != SPELL_OK) {
        rc = SPELL_EIO;
        goto out;
    }
    if (!r || !cred || !q || !helper || spell_json_add_string(r, "version", spell_version()) ||
        spell_json_add_int64(r, "protocol", AGENT_PROTOCOL_VERSION) ||
        spell_json_add_int64(r, "pid", (int64_t)getpid()) ||
        spell_json_add_int64(r, "uptime_s", (spell_time_now_ms() - a->started_ms) / 1000) ||
        spell_json_add_string(r, "api_url", a->opt.api_url) ||
        spell_json_add_string(cred, "source", creds_source_name(a)) ||
        spell_json_add_string(cred, "account", a->account[0] ? a->account : NULL) ||
        spell_json_add_bool(r, "notifications", notes) ||
        spell_json_add_string(helper, "state", !a->desktop ? "off" : helper_up ? "running"
                                                                               : "restarting") ||
        spell_json_add_int64(helper, "pid", helper_pid) ||
        spell_json_add_int64(helper, "starts", helper_starts) ||
        spell_json_add_int64(q, "pending", qc.pending) ||
        spell_json_add_int64(q, "submitting", qc.submitting) ||
        spell_json_add_int64(q, "active", qc.active) ||
        spell_json_add_int64(q, "finished", qc.finished))
        goto out;
    cJSON_AddItemToObject(r, "credential", cred);
    cred = NULL;
    cJSON_AddItemToObject(r, "queue", q);
    q = NULL;
    cJSON_AddItemToObject(r, "desktop_helper", helper);
    helper = NULL;
    rpc_reply(a, call, r);
    r = NULL;
    rc = SPELL_OK;
out:
    cJSON_Delete(r);
    cJSON_Delete(cred);
    cJSON_Delete(q);
    cJSON_Delete(helper);
    return rc;
}
