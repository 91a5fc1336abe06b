/*
 * spell login [--with-key].
 *
 * Without --with-key, login runs the device flow (RFC 8628, core's
 * device.h): it asks the server for a code, shows the code and the page
 * where the person types it, opens a browser when there is one, polls at
 * the server's interval (slower after slow_down) and hands the session
 * token it gets to the agent (auth.login), which checks and stores it.
 *
 * With --with-key, login reads an API key from standard input (one line,
 * as gh auth login --with-token does, so it never reaches argv or the
 * shell history), checks its shape offline with spell_apikey_parse(), then
 * hands it to the agent the same way.
 *
 * Both use core functions that live in the network module (net.h): the
 * device flow talks HTTP, and the key check sits in core's crypto.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "net.h"
#include "spell/errors.h"

/* Polls that fail in transport in a row before login gives up. */
#define DEVICE_NET_FAILS_MAX 5

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

static void sleep_s(int s)
{
    struct timespec ts = {s, 0};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Hands a token to the agent and says who signed in; the token is wiped
 * from params afterwards by the caller. */
static int agent_store(struct cli_ctx *ctx, const char *token, const char *what)
{
    struct spell_agent *a = NULL;
    cJSON *params = NULL, *result = NULL;
    int code = cli_agent_open(ctx, false, &a);

    if (code != CLI_EXIT_OK)
        goto out;
    params = cJSON_CreateObject();
    if (!params || !cJSON_AddStringToObject(params, "token", token)) {
        cli_err("out of memory");
        code = CLI_EXIT_ERROR;
        goto out;
    }
    code = cli_agent_call(a, "auth.login", params, CLI_AGENT_TIMEOUT_MS, &result);
    if (code != CLI_EXIT_OK)
        goto out;
    const cJSON *acct = cJSON_GetObjectItemCaseSensitive(result, "account");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(result, "source");
    printf("Signed in as %s (%s, stored in the %s).\n",
           cJSON_IsString(acct) ? acct->valuestring : "?", what,
           cJSON_IsString(src) && strcmp(src->valuestring, "file") == 0 ? "credentials file"
                                                                         : "keyring");
out:
    if (params) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(params, "token");
        if (cJSON_IsString(tok))
            explicit_bzero(tok->valuestring, strlen(tok->valuestring));
    }
    cJSON_Delete(params);
    cJSON_Delete(result);
    spell_agent_free(a);
    return code;
}

static int login_device(struct cli_ctx *ctx)
{
    const struct cli_net *net;
    struct spell_device_grant g;
    struct spell_device_result r;
    char err[256];
    time_t deadline;
    int rc, fails = 0, code = CLI_EXIT_ERROR;

    memset(&r, 0, sizeof(r));
    if (!ctx->cfg.api_url || !ctx->cfg.api_url[0]) {
        cli_err("no server is configured (set SPELL_API_URL or api_url in the config file)");
        return CLI_EXIT_USAGE;
    }
    if (!(net = cli_net()))
        return CLI_EXIT_ERROR;
    rc = net->device_start(ctx->cfg.api_url, &g, err, sizeof(err));
    if (rc != SPELL_OK) {
        cli_err("cannot start the sign-in at %s: %s", ctx->cfg.api_url, err);
        return CLI_EXIT_ERROR;
    }
    printf("To sign in, open  %s\nand enter the code  %s\n", g.verification_uri, g.user_code);
    if (net->open_browser(g.verification_uri_complete[0] ? g.verification_uri_complete
                                                         : g.verification_uri,
                          NULL) == SPELL_OK)
        printf("(A browser window was opened for you.)\n");
    printf("Waiting for the sign-in to finish in the browser...\n");
    fflush(stdout);
    deadline = time(NULL) + g.expires_in;
    for (;;) {
        sleep_s(g.interval);
        rc = net->device_poll(ctx->cfg.api_url, &g, &r, err, sizeof(err));
        if (rc == SPELL_ENET || rc == SPELL_ETIMEOUT) {
            if (++fails >= DEVICE_NET_FAILS_MAX) {
                cli_err("lost the server at %s: %s", ctx->cfg.api_url, err);
                goto out;
            }
            continue;
        }
        fails = 0;
        if (rc != SPELL_OK) {
            cli_err("the sign-in failed: %s", err);
            goto out;
        }
        if (r.state == SPELL_DEVICE_APPROVED)
            break;
        if (r.state == SPELL_DEVICE_DENIED) {
            cli_err("the sign-in was denied in the browser");
            goto out;
        }
        if (r.state == SPELL_DEVICE_EXPIRED || time(NULL) > deadline) {
            cli_err("the code expired before the sign-in finished; run spell login again");
            goto out;
        }
    }
    code = agent_store(ctx, r.access_token, "session");
out:
    net->device_result_wipe(&r);
    explicit_bzero(g.device_code, sizeof(g.device_code));
    return code;
}

static int login_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct spell_apikey key;
    struct spell_agent *a = NULL;
    const struct cli_net *net = NULL;
    cJSON *params = NULL;
    cJSON *result = NULL;
    char line[KEY_LINE_MAX];
    int code = cli_parse(cmd, login_opts, N_LOGIN_OPTS, argc, argv, 0, 0, &args);

    memset(&key, 0, sizeof(key));
    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    if (!args.set[OPT_WITH_KEY])
        return login_device(ctx);
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
    if (!(net = cli_net())) {
        explicit_bzero(line, sizeof(line));
        return CLI_EXIT_ERROR;
    }
    int rc = net->apikey_parse(line, &key);
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
    if (net)
        net->apikey_wipe(&key);
    cJSON_Delete(params);
    cJSON_Delete(result);
    spell_agent_free(a);
    return code;
}

const struct cli_cmd cli_cmd_login = {
    "login",
    "login [--with-key]",
    "sign in: the agent stores a session token or an API key in the keyring",
    "Without options: shows a code and a page to enter it on (opened in a browser when\n"
    "there is one), waits for the sign-in there, and stores the session it gets.\n"
    "  --with-key  read an API key from standard input (one line) instead, e.g.\n"
    "              spell login --with-key < keyfile\n"
    "The key's shape is checked before anything is sent, so a typo is caught at once.\n",
    login_exec,
};
