/*
 * cast.submit {"spell", "inputs"?, "budget_cap_cents"?, "mode"?} ->
 * {"local_id", "idempotency_key"}.
 *
 * The agent makes the local id and the Idempotency-Key, stores the row as
 * pending and commits it, and only then answers and lets submit.c send
 * it: a crash at any point afterwards leaves a row that is sent (again)
 * with the same key, which the server turns into one cast.
 */
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/json.h"
#include "spell/models.h"

#include "agent.h"

static const char *const modes[] = {"service", "workflow", "wasm", "clone"};

int method_cast_submit(struct agent *a, struct rpc_call *call, const cJSON *params)
{
    char err[256] = "";
    struct spell_json_at at = {params, "", err, sizeof(err)};
    struct lcast c = {0};
    const cJSON *inputs = NULL;
    bool has_mode = false;
    int mode = 0;
    cJSON *r = NULL;
    int rc;

    if ((rc = spell_json_get_string(&at, "spell", SPELL_JSON_REQUIRED | SPELL_JSON_NONEMPTY,
                                    SPELL_SPELL_KEY_MAX, &c.spell)) != SPELL_OK ||
        (rc = spell_json_get_object(&at, "inputs", SPELL_JSON_OPTIONAL, &inputs)) != SPELL_OK ||
        (rc = spell_json_get_int64_range(&at, "budget_cap_cents", SPELL_JSON_OPTIONAL, 0,
                                         SPELL_JSON_INT_MAX, &c.budget_cap_cents,
                                         &c.has_budget_cap)) != SPELL_OK ||
        (rc = spell_json_get_enum(&at, "mode", SPELL_JSON_OPTIONAL, modes, 4, &mode,
                                  &has_mode)) != SPELL_OK) {
        rc = rpc_params_failed(a, call, rc, err);
        goto out;
    }
    if (!spell_spell_key_valid(c.spell)) {
        rpc_error(a, call, AGENT_ERR_INVALID_PARAMS,
                  "field 'spell' must be a spell key (a-z, 0-9, '-' and '_')", NULL);
        goto out;
    }
    rc = SPELL_ENOMEM;
    c.inputs = inputs ? cJSON_PrintUnformatted(inputs) : strdup("{}");
    if (!c.inputs || (has_mode && !(c.mode = strdup(modes[mode]))))
        goto out;
    if (strlen(c.inputs) > AGENT_INPUTS_MAX) {
        rpc_error(a, call, AGENT_ERR_INVALID_PARAMS,
                  "field 'inputs' is larger than the server accepts (64 KiB)", NULL);
        rc = SPELL_OK;
        goto out;
    }
    c.created_at = spell_time_now_ms();
    if ((rc = spell_id_make("lc", c.created_at, c.local_id, sizeof(c.local_id))) != SPELL_OK ||
        (rc = spell_random_token(c.idem_key, AGENT_IDEM_KEY_LEN)) != SPELL_OK)
        goto out;
    c.state = LCAST_PENDING;
    if ((rc = queue_insert(a->queue, &c)) != SPELL_OK) {
        rpc_error(a, call, AGENT_ERR_INTERNAL, "the queue cannot be written", NULL);
        rc = SPELL_OK;
        goto out;
    }
    r = cJSON_CreateObject();
    if (!r || spell_json_add_string(r, "local_id", c.local_id) ||
        spell_json_add_string(r, "idempotency_key", c.idem_key)) {
        rc = SPELL_ENOMEM;
        goto out;
    }
    rpc_reply(a, call, r);
    r = NULL;
    events_emit(a, "cast.queued", &c, 0, NULL);
    submit_pump(a);
    rc = SPELL_OK;
out:
    cJSON_Delete(r);
    lcast_free(&c);
    return rc;
}
