/*
 * spell show ID [--json]: one cast.  ID is a local id (lc_...) or a server
 * cast id (cst_...); a server id the agent does not know, or any server id
 * without a running agent, is read from the server.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

enum { OPT_JSON, N_OPTS };

static const struct cli_opt opts[N_OPTS] = {
    [OPT_JSON] = {"--json", NULL, false, false},
};

/* Fetches one cast: through the agent, else (a cst_ id) from the server. */
static int fetch_cast(struct cli_ctx *ctx, const char *id, cJSON **cast)
{
    struct spell_agent *a = NULL;
    struct cli_token t;
    bool unknown = false;
    int code;

    *cast = NULL;
    memset(&t, 0, sizeof(t));
    if (cli_agent_open(ctx, cli_is_local_id(id) ? false : true, &a) == CLI_EXIT_OK) {
        code = cli_agent_get_cast(a, id, cast, cli_is_local_id(id) ? NULL : &unknown);
        spell_agent_free(a);
        if (code == CLI_EXIT_OK || !unknown)
            return code;
    } else if (cli_is_local_id(id)) {
        return CLI_EXIT_ERROR;
    }
    char path[128];
    code = cli_token(ctx, &t);
    if (code != CLI_EXIT_OK)
        return code;
    snprintf(path, sizeof(path), "/v1/casts/%s", id);
    code = cli_api(&t, "GET", path, NULL, NULL, NULL, cast);
    cli_token_wipe(&t);
    return code;
}

static int show_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    cJSON *cast = NULL;
    int code = cli_parse(cmd, opts, N_OPTS, argc, argv, 1, 1, &args);

    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    if ((code = cli_check_id(cmd, args.pos[0])) != 0)
        return code;
    code = fetch_cast(ctx, args.pos[0], &cast);
    if (code == CLI_EXIT_OK) {
        if (args.set[OPT_JSON])
            code = cli_print_json(cast);
        else
            cli_print_cast(ctx, cast);
    }
    cJSON_Delete(cast);
    return code;
}

const struct cli_cmd cli_cmd_show = {
    "show",
    "show ID [--json]",
    "show one cast (ID: lc_... or cst_...)",
    "  --json  print the cast as JSON (the agent's local cast, or the server's cast)\n",
    show_exec,
};
