/*
 * spell-net.so, the command line's network module (see net.h for why it
 * is a module): requests to the server and a cast's event stream over
 * core's HTTP client, and the other parts of core that need libcurl or
 * libcrypto, handed to spell as one table.
 *
 * Built from this file, cli.c (messages and progress) and core; only
 * spell_cli_net() is exported, so its copy of core stays its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "net.h"
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
/* A dropped event stream is reopened at most this many times. */
#define FOLLOW_RECONNECTS 5

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

static int net_api(const struct cli_token *t, const char *method, const char *path,
                   const cJSON *body, const char *idem_key, unsigned flags, int *status,
                   cJSON **out)
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
    if (resp.status == 404 && (flags & CLI_API_ABSENT_OK)) {
        code = CLI_EXIT_OK;
        goto out;
    }
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

static int net_follow_direct(struct cli_ctx *ctx, const struct cli_token *t,
                             const char *cast_id, bool quiet)
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

static const struct cli_net table = {
    .api = net_api,
    .follow_direct = net_follow_direct,
    .device_start = spell_device_start,
    .device_poll = spell_device_poll,
    .device_result_wipe = spell_device_result_wipe,
    .open_browser = spell_device_open_browser,
    .apikey_parse = spell_apikey_parse,
    .apikey_wipe = spell_apikey_wipe,
    .random_token = spell_random_token,
    .spell_key_valid = spell_spell_key_valid,
    .cast_id_valid = spell_cast_id_valid,
    .spell_from_json = spell_spell_from_json,
    .spell_free = spell_spell_free,
    .cost_estimate_inputs = spell_cost_estimate_inputs,
    .cleanup = spell_http_global_cleanup,
};

__attribute__((visibility("default"))) const struct cli_net *
spell_cli_net(const struct cli_net_abi *want, char *err, size_t errlen)
{
    struct cli_net_abi here = cli_net_abi_here();
    if (!want || want->abi != here.abi || !want->version ||
        strcmp(want->version, here.version) != 0 || want->table != here.table ||
        want->ctx != here.ctx || want->token != here.token || want->progress != here.progress) {
        snprintf(err, errlen, "it belongs to another build of spell (%s, interface %d), not to "
                 "this spell %s (interface %d)", here.version, here.abi,
                 want && want->version ? want->version : "?", want ? want->abi : 0);
        return NULL;
    }
    return &table;
}
