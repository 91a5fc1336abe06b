/*
 * The command line's two peers: the agent (over core's agent client) and
 * the server (over core's HTTP client), plus where the credential for the
 * server comes from and how a cast's event stream is followed directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/http.h"
#include "spell/json.h"
#include "spell/sse.h"
#include "spell/version.h"

/* Answers from the server are read up to this size. */
#define API_BODY_CAP (4 * 1024 * 1024)
/* A request body is at most the server's own cap. */
#define API_REQUEST_MAX (64 * 1024)
/* The credentials file is at most this large. */
#define CRED_FILE_MAX 8192
/* A dropped event stream is reopened at most this many times. */
#define FOLLOW_RECONNECTS 5

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

void cli_print_server_error(int status, const char *code, const char *message)
{
    const char *sentence = spell_api_error_sentence(code ? code : "", status);
    if (message && *message && strcmp(message, sentence) != 0)
        cli_err("%s (%s%s%s)", sentence, code ? code : "", code ? ": " : "", message);
    else
        cli_err("%s%s%s%s", sentence, code ? " (" : "", code ? code : "", code ? ")" : "");
}

static int report_error_body(const struct spell_http_response *resp)
{
    cJSON *j = NULL;
    const char *code = NULL, *message = NULL;
    if (resp->body_len > 0 &&
        spell_json_parse(resp->body, resp->body_len, NULL, &j, NULL, 0) == SPELL_OK) {
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(err, "code");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
        code = cJSON_IsString(c) ? c->valuestring : NULL;
        message = cJSON_IsString(m) ? m->valuestring : NULL;
    }
    cli_print_server_error(resp->status, code, message);
    cJSON_Delete(j);
    return resp->status == 402 ? CLI_EXIT_BUDGET : CLI_EXIT_ERROR;
}

int cli_api(const struct cli_token *t, const char *method, const char *path, const cJSON *body,
            const char *idem_key, int *status, cJSON **out)
{
    struct spell_http_request req;
    struct spell_http_response resp;
    struct spell_buf url;
    char idem_header[300];
    const char *headers[1];
    char *text = NULL;
    int code = CLI_EXIT_ERROR;

    if (out)
        *out = NULL;
    if (status)
        *status = 0;
    memset(&resp, 0, sizeof(resp));
    spell_buf_init(&url, SPELL_HTTP_MAX_URL);
    if (spell_buf_addstr(&url, t->api_url) || spell_buf_addstr(&url, path)) {
        cli_err("the request address is too long");
        goto out;
    }
    spell_http_request_init(&req, method, spell_buf_str(&url));
    req.bearer = t->token;
    req.body_cap = API_BODY_CAP;
    if (body) {
        text = cJSON_PrintUnformatted(body);
        if (!text) {
            cli_err("out of memory");
            goto out;
        }
        if (strlen(text) > API_REQUEST_MAX) {
            cli_err("the request is larger than the server accepts (64 KiB)");
            goto out;
        }
        req.body = text;
        req.body_len = strlen(text);
    }
    if (idem_key) {
        snprintf(idem_header, sizeof(idem_header), "Idempotency-Key: %s", idem_key);
        headers[0] = idem_header;
        req.headers = headers;
        req.n_headers = 1;
    }
    int rc = spell_http_send(&req, &resp);
    if (rc != SPELL_OK) {
        cli_err("cannot reach the server at %s: %s", t->api_url,
                resp.error[0] ? resp.error : spell_strerror(rc));
        goto out;
    }
    if (status)
        *status = resp.status;
    if (resp.status < 200 || resp.status > 299) {
        code = report_error_body(&resp);
        goto out;
    }
    if (out && resp.body_len > 0) {
        char err[256];
        struct spell_json_limits lim = {API_BODY_CAP, 64};
        if (spell_json_parse(resp.body, resp.body_len, &lim, out, err, sizeof(err)) != SPELL_OK) {
            cli_err("the server's answer is not valid JSON: %s", err);
            goto out;
        }
    }
    code = CLI_EXIT_OK;
out:
    free(text);
    spell_buf_free(&url);
    spell_http_response_free(&resp);
    return code;
}

/* ---- following a cast's event stream ---- */

struct follow {
    struct cli_progress progress;
    struct spell_sse_parser sse;
    const char *cast_id;
    bool quiet;
    bool final;         /* the terminal event arrived */
    bool done;          /* the stream ended */
    int status;
    int rc;
    char error[256];
};

static int follow_event(const struct spell_sse_event *ev, void *user)
{
    struct follow *f = user;
    cJSON *j = NULL;
    if (spell_json_parse(ev->data, ev->data_len, NULL, &j, NULL, 0) != SPELL_OK)
        return 0;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "progress");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
    const char *message = cJSON_IsString(msg) ? msg->valuestring : "";
    if (!f->quiet) {
        if (strcmp(ev->type, "cast.log") == 0)
            cli_progress_log(&f->progress, message);
        else
            cli_progress_show(&f->progress, f->cast_id,
                              cJSON_IsString(st) ? st->valuestring : "",
                              cJSON_IsNumber(pr) ? (int)pr->valuedouble : 0,
                              strcmp(ev->type, "cast.progress") == 0 ? message : "");
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "final")))
        f->final = true;
    cJSON_Delete(j);
    return 0;
}

static int follow_headers(struct spell_http_stream *s, int status, void *user)
{
    struct follow *f = user;
    f->status = status;
    return 0;
}

static int follow_data(struct spell_http_stream *s, const char *data, size_t len, void *user)
{
    struct follow *f = user;
    if (f->status != 200)
        return 0;
    return spell_sse_feed(&f->sse, data, len) == SPELL_OK ? 0 : 1;
}

static void follow_done(struct spell_http_stream *s, int rc, int status, const char *error,
                        void *user)
{
    struct follow *f = user;
    f->done = true;
    f->rc = rc;
    f->status = status;
    snprintf(f->error, sizeof(f->error), "%s", error ? error : "");
}

int cli_follow_direct(struct cli_ctx *ctx, const struct cli_token *t, const char *cast_id,
                      bool quiet)
{
    struct follow f;
    struct spell_http_multi *m = NULL;
    struct spell_buf url;
    char last_id_header[128];
    int code = CLI_EXIT_ERROR;

    memset(&f, 0, sizeof(f));
    cli_progress_init(&f.progress, ctx);
    f.cast_id = cast_id;
    f.quiet = quiet;
    spell_buf_init(&url, SPELL_HTTP_MAX_URL);
    /* Lines and events of a cast stream are small; 64 KiB each is ample. */
    spell_sse_parser_init(&f.sse, 64 * 1024, 64 * 1024, follow_event, NULL, &f);
    if (spell_buf_addf(&url, "%s/v1/casts/%s/events", t->api_url, cast_id) != SPELL_OK) {
        cli_err("the request address is too long");
        goto out;
    }
    if (spell_http_multi_new(&m) != SPELL_OK) {
        cli_err("cannot start the HTTP client");
        goto out;
    }
    for (int attempt = 0; attempt <= FOLLOW_RECONNECTS && !f.final; attempt++) {
        const char *headers[1];
        struct spell_http_stream_config sc;
        memset(&sc, 0, sizeof(sc));
        sc.url = spell_buf_str(&url);
        sc.bearer = t->token;
        const char *last = spell_sse_last_event_id(&f.sse);
        if (last && *last) {
            snprintf(last_id_header, sizeof(last_id_header), "Last-Event-ID: %s", last);
            headers[0] = last_id_header;
            sc.headers = headers;
            sc.n_headers = 1;
        }
        sc.on_headers = follow_headers;
        sc.on_data = follow_data;
        sc.on_done = follow_done;
        sc.user = &f;
        f.done = false;
        f.status = 0;
        if (spell_http_multi_add(m, &sc, NULL) != SPELL_OK) {
            cli_err("cannot open the event stream");
            goto out;
        }
        while (!f.done) {
            int running = 0;
            spell_http_multi_poll(m, NULL, 0, 1000);
            spell_http_multi_perform(m, &running);
        }
        spell_sse_parser_reset_stream(&f.sse);
        if (f.status == 204)
            break;
        if (f.status != 0 && f.status != 200) {
            cli_progress_end(&f.progress);
            cli_print_server_error(f.status, NULL, NULL);
            code = f.status == 402 ? CLI_EXIT_BUDGET : CLI_EXIT_ERROR;
            goto out;
        }
    }
    cli_progress_end(&f.progress);
    if (!f.final && f.status != 204) {
        cli_err("the event stream of %s keeps failing%s%s", cast_id, f.error[0] ? ": " : "",
                f.error);
        goto out;
    }
    code = CLI_EXIT_OK;
out:
    spell_http_multi_free(m);
    spell_sse_parser_free(&f.sse);
    spell_buf_free(&url);
    return code;
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
