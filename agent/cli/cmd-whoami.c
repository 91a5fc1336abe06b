/*
 * spell whoami: the account, the server, and where the credential lives
 * (keyring, a file, SPELL_API_KEY).  Asks the agent (auth.status); without
 * a running agent it asks the server with SPELL_API_KEY or the credentials
 * file, and says so.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "spell/json.h"

enum { OPT_JSON, N_OPTS };

static const struct cli_opt opts[N_OPTS] = {
    [OPT_JSON] = {"--json", NULL, false, false},
};

static const char *str_member(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void print_where(const char *source, const char *path)
{
    if (strcmp(source, "keyring") == 0)
        printf("credential: in the keyring\n");
    else if (strcmp(source, "file") == 0)
        printf("credential: in the file %s\n", path ? path : "?");
    else if (strcmp(source, "env") == 0)
        printf("credential: SPELL_API_KEY in the environment\n");
    else
        printf("credential: none\n");
}

static int whoami_agent(struct cli_ctx *ctx, struct spell_agent *a, bool json)
{
    cJSON *st = NULL;
    int code = cli_agent_call(a, "auth.status", NULL, CLI_AGENT_TIMEOUT_MS, &st);
    if (code != CLI_EXIT_OK)
        return code;
    bool signed_in = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "signed_in"));
    if (json) {
        code = cli_print_json(st);
    } else if (signed_in) {
        const char *account = str_member(st, "account");
        const char *prefix = str_member(st, "key_prefix");
        printf("account:    %s\n", account ? account : "?");
        printf("server:     %s\n", str_member(st, "api_url") ? str_member(st, "api_url") : "?");
        print_where(str_member(st, "source") ? str_member(st, "source") : "none",
                    str_member(st, "path"));
        if (prefix)
            printf("key:        %s\n", prefix);
    } else {
        printf("Not signed in (server %s).\n",
               str_member(st, "api_url") ? str_member(st, "api_url") : "?");
    }
    if (code == CLI_EXIT_OK && !signed_in) {
        if (!json)
            fprintf(stderr, "hint: spell login --with-key < keyfile\n");
        code = CLI_EXIT_ERROR;
    }
    cJSON_Delete(st);
    return code;
}

static int whoami_direct(struct cli_ctx *ctx, bool json)
{
    struct cli_token t;
    cJSON *me = NULL;
    cJSON *out = NULL;
    int code = CLI_EXIT_ERROR;

    memset(&t, 0, sizeof(t));
    if (!ctx->cfg_ok) {
        cli_err("%s", ctx->cfg_error);
        return CLI_EXIT_ERROR;
    }
    if (ctx->cfg.api_key) {
        snprintf(t.token, sizeof(t.token), "%s", ctx->cfg.api_key);
        snprintf(t.api_url, sizeof(t.api_url), "%s", ctx->cfg.api_url);
        t.source = "env";
    } else if (cli_token_from_file(ctx, &t) != 0) {
        cli_err("not signed in, and the agent is not running "
                "(hint: spell agent start; spell login --with-key)");
        return CLI_EXIT_ERROR;
    }
    fprintf(stderr, "note: the agent is not running; asked the server with %s\n",
            strcmp(t.source, "env") == 0 ? "SPELL_API_KEY" : "the credentials file");
    code = cli_api(&t, "GET", "/v1/auth/me", NULL, NULL, NULL, &me);
    if (code != CLI_EXIT_OK)
        goto out;
    const char *login = str_member(me, "login");
    if (json) {
        out = cJSON_CreateObject();
        if (!out || spell_json_add_bool(out, "signed_in", true) ||
            spell_json_add_string(out, "source", t.source) ||
            spell_json_add_string(out, "api_url", t.api_url) ||
            spell_json_add_string(out, "account", login) ||
            (strcmp(t.source, "file") == 0 && spell_json_add_string(out, "path", t.path))) {
            cli_err("out of memory");
            code = CLI_EXIT_ERROR;
            goto out;
        }
        code = cli_print_json(out);
    } else {
        printf("account:    %s\n", login ? login : "?");
        printf("server:     %s\n", t.api_url);
        print_where(t.source, t.path);
    }
out:
    cli_token_wipe(&t);
    cJSON_Delete(me);
    cJSON_Delete(out);
    return code;
}

static int whoami_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct spell_agent *a = NULL;
    int code = cli_parse(cmd, opts, N_OPTS, argc, argv, 0, 0, &args);

    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    if (cli_agent_open(ctx, true, &a) == CLI_EXIT_OK) {
        code = whoami_agent(ctx, a, args.set[OPT_JSON]);
        spell_agent_free(a);
        return code;
    }
    return whoami_direct(ctx, args.set[OPT_JSON]);
}

const struct cli_cmd cli_cmd_whoami = {
    "whoami",
    "whoami [--json]",
    "show the account, the server and where the credential lives",
    "Asks the agent; when it is not running, asks the server with SPELL_API_KEY or the\n"
    "credentials file and says so.  Exit status 1 when signed out.\n\n"
    "  --json  print {signed_in, source, api_url, account, ...} as JSON\n",
    whoami_exec,
};
