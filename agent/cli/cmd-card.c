/*
 * spell card: the card on file for paid spells.
 *
 *   spell card [--json]   brand, last 4 and expiry, "payment failed" when the
 *                         last invoice could not be charged, or "no card on
 *                         file" with how to add one
 *   spell card add        POST /v1/billing/setup, prints the Checkout URL,
 *                         opens a browser when there is a graphical session,
 *                         then polls GET /v1/billing/payment-method every
 *                         3 s until the card appears (at most 10 minutes)
 *
 * Talks to the server directly with the credential of cli_token().
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "net.h"

#define CARD_POLL_S 3
#define CARD_WAIT_S 600

enum { OPT_JSON, N_OPTS };

static const struct cli_opt opts[N_OPTS] = {
    [OPT_JSON] = {"--json", NULL, false, false},
};

static const char *str_member(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int int_member(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsNumber(v) ? v->valueint : 0;
}

/*
 * GET /v1/billing/payment-method without printing a 404: 0 with *pm set
 * for a card, 0 with *pm NULL when none is on file, else an exit code
 * (the error printed).
 */
static int fetch_card(const struct cli_token *t, cJSON **pm)
{
    int status = 0;
    int code = cli_api_ex(t, "GET", "/v1/billing/payment-method", NULL, NULL,
                          CLI_API_ABSENT_OK, &status, pm);

    if (code != CLI_EXIT_OK || status == 404)
        return code;
    if (!cJSON_IsObject(*pm)) {
        cJSON_Delete(*pm);
        *pm = NULL;
        cli_err("the server's answer is not a payment method");
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}

static void print_card(const cJSON *pm)
{
    const char *status = str_member(pm, "status");

    printf("card:    %s ending in %s, expires %02d/%04d\n",
           str_member(pm, "brand") ? str_member(pm, "brand") : "?",
           str_member(pm, "last4") ? str_member(pm, "last4") : "????",
           int_member(pm, "exp_month"), int_member(pm, "exp_year"));
    if (status && strcmp(status, "failed") == 0)
        printf("status:  payment failed: the last invoice could not be charged; paid spells\n"
               "         are refused until it is paid (update the card: spell card add)\n");
    else
        printf("status:  %s\n", status ? status : "?");
}

static int card_show(struct cli_ctx *ctx, bool json)
{
    struct cli_token t;
    cJSON *pm = NULL, *out = NULL;
    int code;

    memset(&t, 0, sizeof t);
    if ((code = cli_token(ctx, &t)) != CLI_EXIT_OK)
        return code;
    if ((code = fetch_card(&t, &pm)) != CLI_EXIT_OK)
        goto out;
    if (json) {
        if (pm) {
            code = cli_print_json(pm);
        } else if (!(out = cJSON_CreateObject()) || !cJSON_AddNullToObject(out, "card")) {
            cli_err("out of memory");
            code = CLI_EXIT_ERROR;
        } else {
            code = cli_print_json(out);
        }
    } else if (pm) {
        print_card(pm);
    } else {
        printf("No card on file: paid spells need one (free spells still run).\n"
               "Add one with: spell card add\n");
    }
out:
    cli_token_wipe(&t);
    cJSON_Delete(pm);
    cJSON_Delete(out);
    return code;
}

static void sleep_s(int s)
{
    struct timespec ts = {s, 0};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int card_add(struct cli_ctx *ctx)
{
    struct cli_token t;
    cJSON *setup = NULL, *pm = NULL;
    const char *url;
    time_t start;
    int code;

    memset(&t, 0, sizeof t);
    if ((code = cli_token(ctx, &t)) != CLI_EXIT_OK)
        return code;
    if ((code = cli_api(&t, "POST", "/v1/billing/setup", NULL, NULL, NULL, &setup)) !=
        CLI_EXIT_OK)
        goto out;
    if (!(url = str_member(setup, "url"))) {
        cli_err("the server's answer has no URL");
        code = CLI_EXIT_ERROR;
        goto out;
    }
    printf("Add your card at:\n\n  %s\n\n", url);
    if (str_member(setup, "expires_at"))
        printf("The page is valid until %s.\n", str_member(setup, "expires_at"));
    /* The request above loaded the module. */
    if (cli_net()->open_browser(url, NULL) == 0)
        printf("Opened it in your browser.\n");
    printf("Waiting for the card (Ctrl-C to stop; check later with: spell card)...\n");
    fflush(stdout);
    start = time(NULL);
    for (;;) {
        if ((code = fetch_card(&t, &pm)) != CLI_EXIT_OK)
            goto out;
        if (pm) {
            print_card(pm);
            break;
        }
        if (time(NULL) - start >= CARD_WAIT_S) {
            cli_err("no card arrived within %d minutes; run spell card add again",
                    CARD_WAIT_S / 60);
            code = CLI_EXIT_ERROR;
            goto out;
        }
        sleep_s(CARD_POLL_S);
    }
out:
    cli_token_wipe(&t);
    cJSON_Delete(setup);
    cJSON_Delete(pm);
    return code;
}

static int card_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    int code = cli_parse(cmd, opts, N_OPTS, argc, argv, 0, 1, &args);

    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    if (args.n_pos == 0)
        return card_show(ctx, args.set[OPT_JSON]);
    if (strcmp(args.pos[0], "add") != 0)
        return cli_usage_error(cmd, "unknown subcommand '%s'", args.pos[0]);
    if (args.set[OPT_JSON])
        return cli_usage_error(cmd, "--json goes with spell card, not spell card add");
    return card_add(ctx);
}

const struct cli_cmd cli_cmd_card = {
    "card",
    "card [add] [--json]",
    "show the card on file for paid spells, or add one",
    "spell card shows the card on file (brand, last 4, expiry) and whether the last\n"
    "payment failed.  spell card add prints a secure page of the payment provider\n"
    "(opened in the browser when there is one) and waits until the card arrives.\n\n"
    "  --json  print the payment_method resource, or {\"card\": null}, as JSON\n",
    card_exec,
};
