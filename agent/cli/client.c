/*
 * The command line's two peers: the agent (over core's agent client) and
 * the server (through the network module, net.c), plus where the
 * credential for the server comes from.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "net.h"
#include "spell/errors.h"
#include "spell/version.h"

/* The credentials file is at most this large. */
#define CRED_FILE_MAX 8192

int cli_agent_report(int rc, const struct spell_agent_error *e)
{
    if (rc == SPELL_EHTTP && e) {
        int status = 0;
        const char *code = NULL, *message = NULL;
        if (e->code == SPELL_AGENT_ERR_SERVER_REFUSED &&
            spell_agent_error_server(e, &status, &code, &message) == SPELL_OK) {
            cli_print_server_error(status, code, message);
            return status == 402 ? CLI_EXIT_BUDGET : CLI_EXIT_ERROR;
        }
        if (e->code == SPELL_AGENT_ERR_SIGNED_OUT) {
            cli_err("%s", spell_agent_code_sentence(e->code));
            return CLI_EXIT_ERROR;
        }
        if (e->message[0])
            cli_err("%s (%s)", spell_agent_code_sentence(e->code), e->message);
        else
            cli_err("%s", spell_agent_code_sentence(e->code));
        return CLI_EXIT_ERROR;
    }
    if (rc == SPELL_ETIMEOUT)
        cli_err("the agent did not answer in time");
    else if (rc == SPELL_ENET)
        cli_err("the agent closed the connection");
    else if (rc == SPELL_EVERIFY)
        cli_err("the agent speaks another protocol version; restart it after upgrading");
    else
        cli_err("talking to the agent failed: %s", spell_strerror(rc));
    return CLI_EXIT_ERROR;
}

int cli_agent_open(struct cli_ctx *ctx, bool quiet, struct spell_agent **out)
{
    char err[512] = "";
    struct spell_agent *a = NULL;
    struct spell_agent_error e = {0};
    int rc;

    *out = NULL;
    rc = spell_agent_connect(&ctx->env, ctx->socket_path, &a, err, sizeof(err));
    if (rc != SPELL_OK) {
        if (!quiet) {
            cli_err("%s", err);
            if (rc == SPELL_ENOTFOUND)
                fprintf(stderr, "hint: start it with 'spell agent start'\n");
        }
        return CLI_EXIT_ERROR;
    }
    char client[64];
    snprintf(client, sizeof(client), "spell/%s", spell_version());
    rc = spell_agent_hello(a, client, CLI_AGENT_TIMEOUT_MS, NULL, &e);
    if (rc != SPELL_OK) {
        if (!quiet)
            cli_agent_report(rc, &e);
        spell_agent_error_clear(&e);
        spell_agent_free(a);
        return CLI_EXIT_ERROR;
    }
    *out = a;
    return CLI_EXIT_OK;
}

int cli_agent_call(struct spell_agent *a, const char *method, const cJSON *params,
                   int timeout_ms, cJSON **result)
{
    struct spell_agent_error e = {0};
    int rc = spell_agent_call(a, method, params, timeout_ms, result, &e);
    int code = rc == SPELL_OK ? CLI_EXIT_OK : cli_agent_report(rc, &e);
    spell_agent_error_clear(&e);
    return code;
}

void cli_token_wipe(struct cli_token *t)
{
    explicit_bzero(t->token, sizeof(t->token));
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    if (i > 0)
        memmove(s, s + i, n - i + 1);
}

int cli_token_from_file(struct cli_ctx *ctx, struct cli_token *t)
{
    char dir[4096];
    char buf[CRED_FILE_MAX + 1];
    char server[SPELL_CONFIG_URL_MAX + 1] = "";
    int result = 1;
    int fd = -1;
    ssize_t n;
    struct stat st;

    if (spell_path_config_dir(&ctx->env, dir, sizeof(dir), NULL, 0) != SPELL_OK)
        return 1;
    if ((size_t)snprintf(t->path, sizeof(t->path), "%.4000s/credentials", dir) >= sizeof(t->path))
        return 1;
    fd = open(t->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        goto out;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 0777) != 0600 || st.st_size > CRED_FILE_MAX)
        goto out;
    n = read(fd, buf, CRED_FILE_MAX);
    if (n <= 0 || memchr(buf, '\0', (size_t)n))
        goto out;
    buf[n] = '\0';
    t->token[0] = '\0';
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (line[0] == '#' || !eq)
            continue;
        *eq = '\0';
        char *name = line, *value = eq + 1;
        trim(name);
        trim(value);
        if (strcmp(name, "server") == 0)
            snprintf(server, sizeof(server), "%s", value);
        else if (strcmp(name, "account") == 0)
            snprintf(t->account, sizeof(t->account), "%s", value);
        else if (strcmp(name, "token") == 0 && strlen(value) < sizeof(t->token))
            memcpy(t->token, value, strlen(value) + 1);
    }
    if (t->token[0] && server[0] && ctx->cfg.api_url &&
        strcmp(server, ctx->cfg.api_url) == 0) {
        snprintf(t->api_url, sizeof(t->api_url), "%s", server);
        t->source = "file";
        result = 0;
    } else {
        cli_token_wipe(t);
    }
out:
    explicit_bzero(buf, sizeof(buf));
    if (fd >= 0)
        close(fd);
    return result;
}

int cli_token(struct cli_ctx *ctx, struct cli_token *t)
{
    struct spell_agent *a = NULL;
    cJSON *res = NULL;
    int code = CLI_EXIT_ERROR;

    memset(t, 0, sizeof(*t));
    if (!ctx->cfg_ok) {
        cli_err("%s", ctx->cfg_error);
        return CLI_EXIT_ERROR;
    }
    if (ctx->cfg.api_key) {
        snprintf(t->token, sizeof(t->token), "%s", ctx->cfg.api_key);
        snprintf(t->api_url, sizeof(t->api_url), "%s", ctx->cfg.api_url);
        t->source = "env";
        return CLI_EXIT_OK;
    }
    if (cli_agent_open(ctx, true, &a) == CLI_EXIT_OK) {
        struct spell_agent_error e = {0};
        int rc = spell_agent_call(a, "auth.token", NULL, CLI_AGENT_TIMEOUT_MS, &res, &e);
        if (rc == SPELL_OK) {
            const cJSON *tok = cJSON_GetObjectItemCaseSensitive(res, "token");
            const cJSON *url = cJSON_GetObjectItemCaseSensitive(res, "api_url");
            if (cJSON_IsString(tok) && strlen(tok->valuestring) < sizeof(t->token) &&
                cJSON_IsString(url) && strlen(url->valuestring) < sizeof(t->api_url)) {
                memcpy(t->token, tok->valuestring, strlen(tok->valuestring) + 1);
                memcpy(t->api_url, url->valuestring, strlen(url->valuestring) + 1);
                explicit_bzero(tok->valuestring, strlen(tok->valuestring));
                t->source = "agent";
                code = CLI_EXIT_OK;
            } else {
                cli_err("the agent's auth.token answer is malformed");
            }
        } else if (rc == SPELL_EHTTP && e.code == SPELL_AGENT_ERR_SIGNED_OUT) {
            cli_err("you are not signed in: run 'spell login --with-key' or set SPELL_API_KEY");
        } else {
            code = cli_agent_report(rc, &e);
        }
        spell_agent_error_clear(&e);
        goto out;
    }
    if (cli_token_from_file(ctx, t) == 0) {
        code = CLI_EXIT_OK;
        goto out;
    }
    cli_err("you are not signed in: run 'spell login --with-key' (the agent must be running) "
            "or set SPELL_API_KEY");
out:
    cJSON_Delete(res);
    spell_agent_free(a);
    return code;
}

/* ---- the server, through the network module ---- */

int cli_api_ex(const struct cli_token *t, const char *method, const char *path,
               const cJSON *body, const char *idem_key, unsigned flags, int *status,
               cJSON **out)
{
    const struct cli_net *net = cli_net();
    if (out)
        *out = NULL;
    if (status)
        *status = 0;
    if (!net)
        return CLI_EXIT_ERROR;
    return net->api(t, method, path, body, idem_key, flags, status, out);
}

int cli_api(const struct cli_token *t, const char *method, const char *path, const cJSON *body,
            const char *idem_key, int *status, cJSON **out)
{
    return cli_api_ex(t, method, path, body, idem_key, 0, status, out);
}

int cli_follow_direct(struct cli_ctx *ctx, const struct cli_token *t, const char *cast_id,
                      bool quiet)
{
    const struct cli_net *net = cli_net();
    return net ? net->follow_direct(ctx, t, cast_id, quiet) : CLI_EXIT_ERROR;
}

/* ---- casts by id ---- */

int cli_check_id(const struct cli_cmd *cmd, const char *id)
{
    size_t n = strlen(id);
    bool ok = n > 3 && n < 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') ||
             (id[i] >= 'A' && id[i] <= 'Z') || id[i] == '_' || id[i] == '-';
    if (!ok || (!cli_is_local_id(id) && strncmp(id, "cst_", 4) != 0))
        return cli_usage_error(cmd, "'%s' is neither a local id (lc_...) nor a cast id (cst_...)",
                               id);
    return 0;
}

cJSON *cli_id_params(const char *id)
{
    cJSON *p = cJSON_CreateObject();
    if (p && !cJSON_AddStringToObject(p, cli_is_local_id(id) ? "local_id" : "cast_id", id)) {
        cJSON_Delete(p);
        p = NULL;
    }
    if (!p)
        cli_err("out of memory");
    return p;
}

int cli_agent_get_cast(struct spell_agent *a, const char *id, cJSON **cast, bool *unknown)
{
    struct spell_agent_error e = {0};
    cJSON *params = cli_id_params(id);
    int code = CLI_EXIT_ERROR;
    if (!params)
        return code;
    int rc = spell_agent_call(a, "cast.get", params, CLI_AGENT_TIMEOUT_MS, cast, &e);
    if (rc == SPELL_OK)
        code = CLI_EXIT_OK;
    else if (unknown && rc == SPELL_EHTTP && e.code == SPELL_AGENT_ERR_NO_CAST)
        *unknown = true;
    else
        code = cli_agent_report(rc, &e);
    spell_agent_error_clear(&e);
    cJSON_Delete(params);
    return code;
}
