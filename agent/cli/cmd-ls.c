/*
 * spell ls [--limit N] [--json]: recent casts, newest first, from the agent
 * (cast.list), or from the server (GET /v1/casts) when it is not running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "spell/json.h"
#include "spell/money.h"

enum { OPT_JSON, OPT_LIMIT, N_OPTS };

static const struct cli_opt opts[N_OPTS] = {
    [OPT_JSON] = {"--json", NULL, false, false},
    [OPT_LIMIT] = {"--limit", NULL, true, false},
};

static const char *str_member(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void print_row(const struct cli_ctx *ctx, const cJSON *c)
{
    const char *local = str_member(c, "local_id");
    const char *id = str_member(c, "cast_id");
    if (!id)
        id = str_member(c, "id");
    const char *spell = str_member(c, "spell");
    if (!spell)
        spell = str_member(c, "spell_key");
    const char *state = str_member(c, "state");
    if (!state)
        state = str_member(c, "status");
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(c, "cost_cents");
    if (!cJSON_IsNumber(cost))
        cost = cJSON_GetObjectItemCaseSensitive(c, "estimated_cost_cents");
    char m[SPELL_MONEY_FORMAT_MAX] = "-";
    if (cJSON_IsNumber(cost))
        spell_money_format((int64_t)cost->valuedouble, m, sizeof(m));
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(c, "progress");
    printf("%-30s %-30s %-12s %s%-10s%s %3d%% %9s %s\n", local ? local : "-", id ? id : "-",
           spell ? spell : "?", cli_color_state(ctx, state), state ? state : "?",
           cli_color_reset(ctx), cJSON_IsNumber(pr) ? (int)pr->valuedouble : 0, m,
           str_member(c, "created_at") ? str_member(c, "created_at") : "");
}

static int ls_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct spell_agent *a = NULL;
    struct cli_token t;
    cJSON *params = NULL;
    cJSON *res = NULL;
    long limit = 20;
    int code = cli_parse(cmd, opts, N_OPTS, argc, argv, 0, 0, &args);

    memset(&t, 0, sizeof(t));
    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    if (args.set[OPT_LIMIT]) {
        char *end = NULL;
        limit = strtol(args.value[OPT_LIMIT], &end, 10);
        if (!end || *end || end == args.value[OPT_LIMIT] || limit < 1 || limit > 100)
            return cli_usage_error(cmd, "--limit wants a number from 1 to 100, not '%s'",
                                   args.value[OPT_LIMIT]);
    }
    if (cli_agent_open(ctx, true, &a) == CLI_EXIT_OK) {
        params = cJSON_CreateObject();
        if (!params || spell_json_add_int64(params, "limit", limit)) {
            cli_err("out of memory");
            code = CLI_EXIT_ERROR;
            goto out;
        }
        code = cli_agent_call(a, "cast.list", params, CLI_AGENT_TIMEOUT_MS, &res);
    } else {
        char path[64];
        fprintf(stderr, "note: the agent is not running; listing the server's casts\n");
        code = cli_token(ctx, &t);
        if (code != CLI_EXIT_OK)
            goto out;
        snprintf(path, sizeof(path), "/v1/casts?limit=%ld", limit);
        code = cli_api(&t, "GET", path, NULL, NULL, NULL, &res);
    }
    if (code != CLI_EXIT_OK)
        goto out;
    if (args.set[OPT_JSON]) {
        code = cli_print_json(res);
    } else {
        const cJSON *c;
        printf("%-30s %-30s %-12s %-10s %4s %9s %s\n", "LOCAL ID", "CAST ID", "SPELL", "STATE",
               "PROG", "COST", "CREATED");
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(res, "casts"))
            print_row(ctx, c);
    }
out:
    cli_token_wipe(&t);
    cJSON_Delete(params);
    cJSON_Delete(res);
    spell_agent_free(a);
    return code;
}

const struct cli_cmd cli_cmd_ls = {
    "ls",
    "ls [--limit N] [--json]",
    "list recent casts, newest first",
    "Lists the agent's casts; when the agent is not running, the server's.\n\n"
    "  --limit N  at most N casts (1 to 100, default 20)\n"
    "  --json     print {\"casts\": [...]} as JSON\n",
    ls_exec,
};
