/*
 * spell watch ID [--json]: follows a cast to its end, through the agent's
 * events (events.subscribe plus cast.wait) or, for a server id without the
 * agent, the server's event stream; prints the finished cast.
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

static int watch_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct spell_agent *a = NULL;
    struct cli_token t;
    cJSON *got = NULL;
    cJSON *final = NULL;
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
        code = cli_agent_get_cast(a, id, &got, local ? NULL : &unknown);
        if (code != CLI_EXIT_OK)
            goto out;
        if (!unknown) {
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(got, "final"))) {
                final = got;
                got = NULL;
            } else {
                const char *lid = str_member(got, "local_id");
                code = cli_wait_agent(ctx, a, lid ? lid : id, &final);
                if (code != CLI_EXIT_OK)
                    goto out;
            }
            goto print;
        }
    } else if (local) {
        code = CLI_EXIT_ERROR;
        goto out;
    }
    char path[128];
    code = cli_token(ctx, &t);
    if (code != CLI_EXIT_OK)
        goto out;
    code = cli_follow_direct(ctx, &t, id, false);
    if (code != CLI_EXIT_OK)
        goto out;
    snprintf(path, sizeof(path), "/v1/casts/%s", id);
    code = cli_api(&t, "GET", path, NULL, NULL, NULL, &final);
    if (code != CLI_EXIT_OK)
        goto out;
print:
    if (args.set[OPT_JSON])
        code = cli_print_json(final);
    else
        cli_print_cast(ctx, final);
    if (code == CLI_EXIT_OK)
        code = cli_cast_exit(final);
out:
    cli_token_wipe(&t);
    cJSON_Delete(got);
    cJSON_Delete(final);
    spell_agent_free(a);
    return code;
}

const struct cli_cmd cli_cmd_watch = {
    "watch",
    "watch ID [--json]",
    "follow a cast to its end (ID: lc_... or cst_...)",
    "On a terminal a progress bar is redrawn on one line of stderr; otherwise each change is\n"
    "a line.  The finished cast is printed at the end; exit status 3 when it failed.\n\n"
    "  --json  print the finished cast as JSON\n",
    watch_exec,
};
