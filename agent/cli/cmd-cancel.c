/*
 * spell cancel ID [--json]: through the agent (cast.cancel, which cancels a
 * cast not yet accepted locally), or with POST /v1/casts/{id}:cancel for a
 * server id the agent does not know.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

enum { OPT_JSON, N_OPTS };

static const struct cli_opt opts[N_OPTS] = {
    [OPT_JSON] = {"--json", NULL, false, false},
};

static const char *str_member(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int cancel_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct spell_agent *a = NULL;
    struct cli_token t;
    cJSON *got = NULL;
    cJSON *params = NULL;
    cJSON *res = NULL;
    bool unknown = false;
    int code = cli_parse(cmd, opts, N_OPTS, argc, argv, 1, 1, &args);

    memset(&t, 0, sizeof(t));
    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    const char *id = args.pos[0];
    if ((code = cli_check_id(cmd, id)) != 0)
        return code;
    bool local = cli_is_local_id(id);
    if (cli_agent_open(ctx, !local, &a) == CLI_EXIT_OK) {
        const char *lid = id;
        if (!local) {
            code = cli_agent_get_cast(a, id, &got, &unknown);
            if (code != CLI_EXIT_OK)
                goto out;
            lid = str_member(got, "local_id");
        }
        if (!unknown && lid) {
            params = cJSON_CreateObject();
            if (!params || !cJSON_AddStringToObject(params, "local_id", lid)) {
                cli_err("out of memory");
                code = CLI_EXIT_ERROR;
                goto out;
            }
            code = cli_agent_call(a, "cast.cancel", params, CLI_AGENT_TIMEOUT_MS, &res);
            goto print;
        }
    } else if (local) {
        code = CLI_EXIT_ERROR;
        goto out;
    }
    /* A server id the agent does not know, or no agent. */
    char path[128];
    code = cli_token(ctx, &t);
    if (code != CLI_EXIT_OK)
        goto out;
    snprintf(path, sizeof(path), "/v1/casts/%s:cancel", id);
    code = cli_api(&t, "POST", path, NULL, NULL, NULL, &res);
print:
    if (code != CLI_EXIT_OK)
        goto out;
    if (args.set[OPT_JSON]) {
        code = cli_print_json(res);
    } else {
        const char *state = str_member(res, "state");
        if (!state)
            state = str_member(res, "status");
        printf("%s: %s\n", id, state ? state : "?");
    }
out:
    cli_token_wipe(&t);
    cJSON_Delete(got);
    cJSON_Delete(params);
    cJSON_Delete(res);
    spell_agent_free(a);
    return code;
}

const struct cli_cmd cli_cmd_cancel = {
    "cancel",
    "cancel ID [--json]",
    "cancel a cast (ID: lc_... or cst_...)",
    "A cast the server has not accepted yet is canceled in the agent and never sent.\n\n"
    "  --json  print the canceled cast as JSON\n",
    cancel_exec,
};
