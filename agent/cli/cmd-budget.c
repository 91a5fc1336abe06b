/*
 * spell budget [set --hard N [--soft N]] [--json]: the monthly budget.
 * Amounts are dollars as people type them ("50", "12.50", "$1,000"), read
 * with spell_money_parse() and checked here ($10..$500, soft <= hard)
 * before anything is sent; the server's words follow when it refuses.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "spell/json.h"
#include "spell/money.h"

/* The server's limits for the hard limit, in cents (docs/api.md). */
#define HARD_MIN_CENTS 1000
#define HARD_MAX_CENTS 50000

enum { OPT_HARD, OPT_SOFT, OPT_JSON, N_OPTS };

static const struct cli_opt opts[N_OPTS] = {
    [OPT_HARD] = {"--hard", NULL, true, false},
    [OPT_SOFT] = {"--soft", NULL, true, false},
    [OPT_JSON] = {"--json", NULL, false, false},
};

static void print_budget(const cJSON *b)
{
    const cJSON *period = cJSON_GetObjectItemCaseSensitive(b, "period");
    const cJSON *hard = cJSON_GetObjectItemCaseSensitive(b, "hard_limit_cents");
    const cJSON *soft = cJSON_GetObjectItemCaseSensitive(b, "soft_limit_cents");
    char m[SPELL_MONEY_FORMAT_MAX];
    printf("period:     %s\n", cJSON_IsString(period) ? period->valuestring : "?");
    if (cJSON_IsNumber(hard) && spell_money_format((int64_t)hard->valuedouble, m, sizeof(m)) == 0)
        printf("hard limit: %s\n", m);
    if (cJSON_IsNumber(soft) && spell_money_format((int64_t)soft->valuedouble, m, sizeof(m)) == 0)
        printf("soft limit: %s\n", m);
    else
        printf("soft limit: none\n");
}

static int budget_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct cli_token t;
    cJSON *res = NULL;
    cJSON *body = NULL;
    int64_t hard = 0, soft = 0;
    char m1[SPELL_MONEY_FORMAT_MAX], m2[SPELL_MONEY_FORMAT_MAX];
    int code = cli_parse(cmd, opts, N_OPTS, argc, argv, 0, 1, &args);

    memset(&t, 0, sizeof(t));
    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    bool set = args.n_pos == 1;
    if (set && strcmp(args.pos[0], "set") != 0)
        return cli_usage_error(cmd, "unknown budget command '%s' (set)", args.pos[0]);
    if (!set && (args.set[OPT_HARD] || args.set[OPT_SOFT]))
        return cli_usage_error(cmd, "--hard and --soft go with 'budget set'");
    if (set) {
        if (!args.set[OPT_HARD])
            return cli_usage_error(cmd, "budget set needs --hard");
        if (spell_money_parse(args.value[OPT_HARD], &hard) != 0)
            return cli_usage_error(cmd, "--hard wants a dollar amount such as 50 or 12.50, "
                                        "not '%s'", args.value[OPT_HARD]);
        if (hard < HARD_MIN_CENTS || hard > HARD_MAX_CENTS) {
            spell_money_format(hard, m1, sizeof(m1));
            return cli_usage_error(cmd, "the hard limit must be between $10.00 and $500.00, "
                                        "not %s", m1);
        }
        if (args.set[OPT_SOFT]) {
            if (spell_money_parse(args.value[OPT_SOFT], &soft) != 0)
                return cli_usage_error(cmd, "--soft wants a dollar amount such as 40 or "
                                            "12.50, not '%s'", args.value[OPT_SOFT]);
            if (soft > hard) {
                spell_money_format(soft, m1, sizeof(m1));
                spell_money_format(hard, m2, sizeof(m2));
                return cli_usage_error(cmd, "the soft limit (%s) is above the hard limit (%s)",
                                       m1, m2);
            }
        }
    }
    code = cli_token(ctx, &t);
    if (code != CLI_EXIT_OK)
        return code;
    if (set) {
        body = cJSON_CreateObject();
        if (!body || spell_json_add_int64(body, "hard_limit_cents", hard) ||
            (args.set[OPT_SOFT] && spell_json_add_int64(body, "soft_limit_cents", soft))) {
            cli_err("out of memory");
            code = CLI_EXIT_ERROR;
            goto out;
        }
        code = cli_api(&t, "PUT", "/v1/budgets", body, NULL, NULL, &res);
    } else {
        code = cli_api(&t, "GET", "/v1/budgets", NULL, NULL, NULL, &res);
    }
    if (code != CLI_EXIT_OK)
        goto out;
    if (args.set[OPT_JSON])
        code = cli_print_json(res);
    else
        print_budget(res);
out:
    cli_token_wipe(&t);
    cJSON_Delete(body);
    cJSON_Delete(res);
    return code;
}

const struct cli_cmd cli_cmd_budget = {
    "budget",
    "budget [--json] | budget set --hard DOLLARS [--soft DOLLARS] [--json]",
    "show or set the monthly budget",
    "  set          set the limits from this month on\n"
    "  --hard N     the hard limit in dollars, $10 to $500 (e.g. 50 or 12.50)\n"
    "  --soft N     a soft limit (a warning when crossed), at most the hard limit\n"
    "  --json       print the budget as JSON\n",
    budget_exec,
};
