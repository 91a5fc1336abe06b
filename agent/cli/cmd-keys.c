/*
 * spell keys ls | create NAME | revoke PREFIX: the account's API keys,
 * straight from the server with the stored credential.  create prints the
 * new key once; it is the only secret this program ever prints.
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

static bool prefix_valid(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

static int keys_ls(const struct cli_token *t, bool json)
{
    cJSON *res = NULL;
    int code = cli_api(t, "GET", "/v1/keys", NULL, NULL, NULL, &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (json) {
        code = cli_print_json(res);
    } else {
        const cJSON *keys = cJSON_GetObjectItemCaseSensitive(res, "keys");
        const cJSON *k;
        printf("%-10s %-24s %-26s %s\n", "PREFIX", "NAME", "CREATED", "LAST USED");
        cJSON_ArrayForEach(k, keys) {
            const char *last = str_member(k, "last_used_at");
            printf("%-10s %-24s %-26s %s\n", str_member(k, "prefix") ? str_member(k, "prefix") : "",
                   str_member(k, "name") ? str_member(k, "name") : "",
                   str_member(k, "created_at") ? str_member(k, "created_at") : "",
                   last ? last : "never");
        }
    }
    cJSON_Delete(res);
    return code;
}

static int keys_create(const struct cli_token *t, const char *name, bool json)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *res = NULL;
    int code = CLI_EXIT_ERROR;
    if (!body || !cJSON_AddStringToObject(body, "name", name)) {
        cli_err("out of memory");
        goto out;
    }
    code = cli_api(t, "POST", "/v1/keys", body, NULL, NULL, &res);
    if (code != CLI_EXIT_OK)
        goto out;
    const char *key = str_member(res, "key");
    if (!key) {
        cli_err("the server's answer holds no key");
        code = CLI_EXIT_ERROR;
        goto out;
    }
    fprintf(stderr, "warning: this key will not be shown again; keep it somewhere safe.\n");
    if (json)
        code = cli_print_json(res);
    else
        printf("%s\n", key);
out:
    if (res) {
        cJSON *k = cJSON_GetObjectItemCaseSensitive(res, "key");
        if (cJSON_IsString(k))
            explicit_bzero(k->valuestring, strlen(k->valuestring));
    }
    cJSON_Delete(res);
    cJSON_Delete(body);
    return code;
}

static int keys_revoke(const struct cli_token *t, const char *prefix)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/keys/%s", prefix);
    int code = cli_api(t, "DELETE", path, NULL, NULL, NULL, NULL);
    if (code == CLI_EXIT_OK)
        printf("Revoked key %s.\n", prefix);
    return code;
}

static int keys_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct cli_token t;
    int code = cli_parse(cmd, opts, N_OPTS, argc, argv, 1, 2, &args);

    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    const char *verb = args.pos[0];
    if (strcmp(verb, "ls") == 0) {
        if (args.n_pos != 1)
            return cli_usage_error(cmd, "keys ls takes no argument");
    } else if (strcmp(verb, "create") == 0) {
        if (args.n_pos != 2)
            return cli_usage_error(cmd, "keys create needs a NAME");
        size_t n = strlen(args.pos[1]);
        if (n == 0 || n > 64)
            return cli_usage_error(cmd, "a key name is 1 to 64 characters");
    } else if (strcmp(verb, "revoke") == 0) {
        if (args.n_pos != 2)
            return cli_usage_error(cmd, "keys revoke needs a PREFIX");
        if (!prefix_valid(args.pos[1]))
            return cli_usage_error(cmd, "'%s' is not a key prefix (letters and digits)",
                                   args.pos[1]);
    } else {
        return cli_usage_error(cmd, "unknown keys command '%s' (ls, create, revoke)", verb);
    }
    code = cli_token(ctx, &t);
    if (code != CLI_EXIT_OK)
        return code;
    if (strcmp(verb, "ls") == 0)
        code = keys_ls(&t, args.set[OPT_JSON]);
    else if (strcmp(verb, "create") == 0)
        code = keys_create(&t, args.pos[1], args.set[OPT_JSON]);
    else
        code = keys_revoke(&t, args.pos[1]);
    cli_token_wipe(&t);
    return code;
}

const struct cli_cmd cli_cmd_keys = {
    "keys",
    "keys ls [--json] | keys create NAME [--json] | keys revoke PREFIX",
    "list, create and revoke API keys",
    "  ls             the account's live keys (prefix, name, created, last used)\n"
    "  create NAME    a new key, printed once on stdout (a warning goes to stderr)\n"
    "  revoke PREFIX  revoke the key with this prefix; it stops working at once\n"
    "  --json         print the server's answer as JSON\n",
    keys_exec,
};
