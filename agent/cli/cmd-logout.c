/*
 * spell logout: the agent removes the stored credential (keyring item or
 * credentials file).
 */
#include <stdio.h>

#include "cli.h"

static int logout_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct spell_agent *a = NULL;
    cJSON *result = NULL;
    int code = cli_parse(cmd, NULL, 0, argc, argv, 0, 0, &args);

    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    code = cli_agent_open(ctx, false, &a);
    if (code != CLI_EXIT_OK)
        return code;
    code = cli_agent_call(a, "auth.logout", NULL, CLI_AGENT_TIMEOUT_MS, &result);
    if (code == CLI_EXIT_OK) {
        bool removed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "removed"));
        printf(removed ? "Signed out: the stored credential was removed.\n"
                       : "No credential was stored.\n");
        if (ctx->cfg.api_key)
            fprintf(stderr, "note: SPELL_API_KEY is still set in this environment\n");
    }
    cJSON_Delete(result);
    spell_agent_free(a);
    return code;
}

const struct cli_cmd cli_cmd_logout = {
    "logout",
    "logout",
    "sign out: the agent removes the stored credential",
    "",
    logout_exec,
};
