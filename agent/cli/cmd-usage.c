/*
 * spell usage [--period YYYY-MM] [--json]: what the month cost, with a bar
 * per day scaled to the terminal, and the spells it went to.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "spell/money.h"

enum { OPT_PERIOD, OPT_JSON, N_OPTS };

static const struct cli_opt opts[N_OPTS] = {
    [OPT_PERIOD] = {"--period", NULL, true, false},
    [OPT_JSON] = {"--json", NULL, false, false},
};

static bool period_valid(const char *p)
{
    if (strlen(p) != 7 || p[4] != '-')
        return false;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (p[i] < '0' || p[i] > '9'))
            return false;
    int month = (p[5] - '0') * 10 + (p[6] - '0');
    return month >= 1 && month <= 12;
}

static int64_t num(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static const char *str(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void money_line(const char *label, int64_t cents)
{
    char m[SPELL_MONEY_FORMAT_MAX];
    spell_money_format(cents, m, sizeof(m));
    printf("%-10s %s\n", label, m);
}

static void print_usage(const cJSON *u)
{
    char m[SPELL_MONEY_FORMAT_MAX];
    const cJSON *d;
    printf("period:    %s  (%lld casts)\n", str(u, "period"), (long long)num(u, "calls"));
    money_line("spent:", num(u, "spent_cents"));
    money_line("reserved:", num(u, "reserved_cents"));
    money_line("remaining:", num(u, "remaining_cents"));
    money_line("hard limit:", num(u, "hard_limit_cents"));

    const cJSON *daily = cJSON_GetObjectItemCaseSensitive(u, "daily");
    int64_t top = 0;
    cJSON_ArrayForEach(d, daily)
        if (num(d, "spent_cents") > top)
            top = num(d, "spent_cents");
    int width = isatty(STDOUT_FILENO) ? cli_term_width(STDOUT_FILENO) : 80;
    int bar_max = width - 36;
    if (bar_max < 10)
        bar_max = 10;
    if (cJSON_GetArraySize(daily) > 0)
        printf("\n");
    cJSON_ArrayForEach(d, daily) {
        int64_t cents = num(d, "spent_cents");
        int len = top > 0 ? (int)(cents * bar_max / top) : 0;
        if (cents > 0 && len == 0)
            len = 1;
        spell_money_format(cents, m, sizeof(m));
        printf("%-10s %10s %4lld  ", str(d, "date"), m, (long long)num(d, "calls"));
        for (int i = 0; i < len; i++)
            fputc('#', stdout);
        fputc('\n', stdout);
    }
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(u, "by_spell");
    if (cJSON_GetArraySize(by) > 0)
        printf("\n");
    cJSON_ArrayForEach(d, by) {
        spell_money_format(num(d, "spent_cents"), m, sizeof(m));
        printf("%-20s %10s %4lld casts\n", str(d, "spell_key"), m, (long long)num(d, "calls"));
    }
}

static int usage_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct cli_token t;
    cJSON *res = NULL;
    char path[64] = "/v1/budgets/usage";
    int code = cli_parse(cmd, opts, N_OPTS, argc, argv, 0, 0, &args);

    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    if (args.set[OPT_PERIOD]) {
        if (!period_valid(args.value[OPT_PERIOD]))
            return cli_usage_error(cmd, "--period wants YYYY-MM, not '%s'",
                                   args.value[OPT_PERIOD]);
        snprintf(path, sizeof(path), "/v1/budgets/usage?period=%s", args.value[OPT_PERIOD]);
    }
    code = cli_token(ctx, &t);
    if (code != CLI_EXIT_OK)
        return code;
    code = cli_api(&t, "GET", path, NULL, NULL, NULL, &res);
    cli_token_wipe(&t);
    if (code == CLI_EXIT_OK) {
        if (args.set[OPT_JSON])
            code = cli_print_json(res);
        else
            print_usage(res);
    }
    cJSON_Delete(res);
    return code;
}

const struct cli_cmd cli_cmd_usage = {
    "usage",
    "usage [--period YYYY-MM] [--json]",
    "show what a month cost, per day and per spell",
    "  --period YYYY-MM  another month than the current one\n"
    "  --json            print the server's usage document as JSON\n",
    usage_exec,
};
