/*
 * spell login --with-key.
 *
 * login reads an API key from standard input (one line, as gh auth login
 * --with-token does, so it never reaches argv or the shell history),
 * checks its shape offline with spell_apikey_parse(), then hands it to the
 * agent (auth.login), which verifies it with the server and stores it.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "spell/crypto.h"
#include "spell/errors.h"

/* The longest line read as a key; a key is 55 characters. */
#define KEY_LINE_MAX 1024

enum { OPT_WITH_KEY, N_LOGIN_OPTS };

static const struct cli_opt login_opts[N_LOGIN_OPTS] = {
    [OPT_WITH_KEY] = {"--with-key", NULL, false, false},
};

/* Reads one line from stdin into buf, without its line ending; -1 when
 * nothing or too much came. */
static int read_key_line(char *buf, size_t size)
{
    size_t len = 0;
    for (;;) {
        char c;
        ssize_t n = read(STDIN_FILENO, &c, 1);
        if (n <= 0 || c == '\n')
            break;
        if (len + 1 >= size)
            return -1;
        buf[len++] = c;
    }
    while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    return len > 0 ? 0 : -1;
}

static int login_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct spell_apikey key;
    struct spell_agent *a = NULL;
    cJSON *params = NULL;
    cJSON *result = NULL;
    char line[KEY_LINE_MAX];
    int code = cli_parse(cmd, login_opts, N_LOGIN_OPTS, argc, argv, 0, 0, &args);

    memset(&key, 0, sizeof(key));
    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    if (!args.set[OPT_WITH_KEY]) {
        fprintf(stderr, "spell login: signing in with a browser (the device flow) is not in "
                        "this version.\nPipe an API key instead:  spell login --with-key "
                        "< keyfile\n");
        return CLI_EXIT_USAGE;
    }
    if (isatty(STDIN_FILENO)) {
        fprintf(stderr, "spell login: --with-key reads the key from standard input; pipe it, "
                        "e.g.  spell login --with-key < keyfile\n");
        return CLI_EXIT_USAGE;
    }
    if (read_key_line(line, sizeof(line)) != 0) {
        explicit_bzero(line, sizeof(line));
        cli_err("no key on standard input (one line, at most %d bytes)", KEY_LINE_MAX - 1);
        return CLI_EXIT_USAGE;
    }
    int rc = spell_apikey_parse(line, &key);
    explicit_bzero(line, sizeof(line));
    if (rc != 0) {
        cli_err(rc == SPELL_EVERIFY
                    ? "that key has a typo: its check characters do not match"
                    : "that is not an API key (they look like sk_live_XXXXXXXX_...)");
        return CLI_EXIT_USAGE;
    }
    code = cli_agent_open(ctx, false, &a);
    if (code != CLI_EXIT_OK)
        goto out;
    params = cJSON_CreateObject();
    if (!params || !cJSON_AddStringToObject(params, "token", key.key)) {
        cli_err("out of memory");
        code = CLI_EXIT_ERROR;
        goto out;
    }
    code = cli_agent_call(a, "auth.login", params, CLI_AGENT_TIMEOUT_MS, &result);
    if (code != CLI_EXIT_OK)
        goto out;
    const cJSON *acct = cJSON_GetObjectItemCaseSensitive(result, "account");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(result, "source");
    printf("Signed in as %s (key %s, stored in the %s).\n",
           cJSON_IsString(acct) ? acct->valuestring : "?", key.prefix,
           cJSON_IsString(src) && strcmp(src->valuestring, "file") == 0 ? "credentials file"
                                                                         : "keyring");
out:
    if (params) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(params, "token");
        if (cJSON_IsString(tok))
            explicit_bzero(tok->valuestring, strlen(tok->valuestring));
    }
    spell_apikey_wipe(&key);
    cJSON_Delete(params);
    cJSON_Delete(result);
    spell_agent_free(a);
    return code;
}

const struct cli_cmd cli_cmd_login = {
    "login",
    "login --with-key",
    "sign in: the agent stores an API key in the keyring",
    "  --with-key  read the API key from standard input (one line), e.g.\n"
    "              spell login --with-key < keyfile\n"
    "The key's shape is checked before anything is sent, so a typo is caught at once.\n"
    "Signing in with a browser (the device flow) comes in a later version.\n",
    login_exec,
};
