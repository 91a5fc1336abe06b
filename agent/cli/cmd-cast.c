/*
 * spell cast SPELL [-i k=v ...] [--input-file F] [--budget-cap CENTS]
 *            [--wait] [--direct] [--json]
 *
 * Reads the spell from the server for its input schema and pricing, builds
 * the inputs (the file first, then each -i typed by the schema), shows the
 * estimate, and submits: through the agent (cast.submit; the agent owns
 * the Idempotency-Key and the retries) or, with --direct, to the server
 * with an Idempotency-Key of its own.  --wait follows the cast to its end
 * and prints it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "net.h"
#include "spell/json.h"
#include "spell/money.h"
#include "spell/schema.h"

/* --input-file is at most this large, the server's body cap. */
#define INPUT_FILE_MAX (64 * 1024)

enum { OPT_INPUT, OPT_INPUT_FILE, OPT_CAP, OPT_WAIT, OPT_DIRECT, OPT_JSON, N_OPTS };

static const struct cli_opt opts[N_OPTS] = {
    [OPT_INPUT] = {"--input", "-i", true, true},
    [OPT_INPUT_FILE] = {"--input-file", NULL, true, false},
    [OPT_CAP] = {"--budget-cap", NULL, true, false},
    [OPT_WAIT] = {"--wait", NULL, false, false},
    [OPT_DIRECT] = {"--direct", NULL, false, false},
    [OPT_JSON] = {"--json", NULL, false, false},
};

static int read_input_file(const struct cli_cmd *cmd, const char *path, cJSON **out)
{
    char *buf = NULL;
    size_t len = 0;
    int fd = -1;
    int code = CLI_EXIT_ERROR;
    char err[256];

    *out = NULL;
    fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cli_err("cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    buf = malloc(INPUT_FILE_MAX + 1);
    if (!buf) {
        cli_err("out of memory");
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, INPUT_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cli_err("cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > INPUT_FILE_MAX) {
            code = cli_usage_error(cmd, "%s is larger than 64 KiB", path);
            goto out;
        }
    }
    if (spell_json_parse(buf, len, NULL, out, err, sizeof(err)) != 0) {
        code = cli_usage_error(cmd, "%s is not valid JSON: %s", path, err);
        goto out;
    }
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        code = cli_usage_error(cmd, "%s must hold a JSON object", path);
        goto out;
    }
    code = CLI_EXIT_OK;
out:
    if (fd > STDIN_FILENO)
        close(fd);
    free(buf);
    return code;
}

/* Builds the inputs: the file, then each -i k=v typed by the schema. */
static int build_inputs(const struct cli_cmd *cmd, const struct cli_args *args,
                        const cJSON *schema, cJSON **out)
{
    cJSON *inputs = NULL;
    int code;

    *out = NULL;
    if (args->set[OPT_INPUT_FILE]) {
        code = read_input_file(cmd, args->value[OPT_INPUT_FILE], &inputs);
        if (code != CLI_EXIT_OK)
            return code;
    } else {
        inputs = cJSON_CreateObject();
        if (!inputs) {
            cli_err("out of memory");
            return CLI_EXIT_ERROR;
        }
    }
    for (int i = 0; i < args->n_rep; i++) {
        if (args->rep_opt[i] != OPT_INPUT)
            continue;
        const char *kv = args->rep_value[i];
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            code = cli_usage_error(cmd, "-i wants NAME=VALUE, not '%s'", kv);
            goto fail;
        }
        char name[256];
        if ((size_t)(eq - kv) >= sizeof(name)) {
            code = cli_usage_error(cmd, "input name too long in '-i %.40s...'", kv);
            goto fail;
        }
        memcpy(name, kv, (size_t)(eq - kv));
        name[eq - kv] = '\0';
        cJSON *value = NULL;
        struct spell_schema_error se;
        memset(&se, 0, sizeof(se));
        int rc = schema ? spell_schema_value_from_text(schema, name, eq + 1, &value, &se)
                        : SPELL_EINVAL;
        if (rc != 0) {
            if (!schema)
                code = cli_usage_error(cmd, "the spell takes no inputs (-i %s)", name);
            else
                code = cli_usage_error(cmd, "input %s", se.message[0] ? se.message
                                                                        : spell_strerror(rc));
            goto fail;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(inputs, name);
        if (!cJSON_AddItemToObject(inputs, name, value)) {
            cJSON_Delete(value);
            cli_err("out of memory");
            code = CLI_EXIT_ERROR;
            goto fail;
        }
    }
    *out = inputs;
    return CLI_EXIT_OK;
fail:
    cJSON_Delete(inputs);
    return code;
}

static void make_idempotency_key(const struct cli_net *net, char *out, size_t outlen)
{
    char token[33];
    if (net->random_token(token, 32) != 0)
        token[0] = '\0';
    snprintf(out, outlen, "cli-%s", token);
}

/* --direct: POST the cast, and with --wait follow it and fetch it. */
static int cast_direct(struct cli_ctx *ctx, const struct cli_net *net, const struct cli_token *t,
                       const char *key, cJSON *body, const struct cli_args *args)
{
    char path[512];
    char idem[64];
    cJSON *answer = NULL;
    cJSON *cast = NULL;
    int code;

    make_idempotency_key(net, idem, sizeof(idem));
    if (!idem[4]) {
        cli_err("cannot draw a random Idempotency-Key");
        return CLI_EXIT_ERROR;
    }
    snprintf(path, sizeof(path), "/v1/spells/%s:cast", key);
    code = cli_api(t, "POST", path, body, idem, NULL, &answer);
    if (code != CLI_EXIT_OK)
        goto out;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(answer, "cast_id");
    if (!cJSON_IsString(id) || !net->cast_id_valid(id->valuestring)) {
        cli_err("the server's answer has no cast id");
        code = CLI_EXIT_ERROR;
        goto out;
    }
    if (!args->set[OPT_WAIT]) {
        if (args->set[OPT_JSON])
            code = cli_print_json(answer);
        else
            printf("%s\n", id->valuestring);
        goto out;
    }
    fprintf(stderr, "Cast %s accepted.\n", id->valuestring);
    code = cli_follow_direct(ctx, t, id->valuestring, false);
    if (code != CLI_EXIT_OK)
        goto out;
    snprintf(path, sizeof(path), "/v1/casts/%s", id->valuestring);
    code = cli_api(t, "GET", path, NULL, NULL, NULL, &cast);
    if (code != CLI_EXIT_OK)
        goto out;
    if (args->set[OPT_JSON])
        code = cli_print_json(cast);
    else
        cli_print_cast(ctx, cast);
    if (code == CLI_EXIT_OK)
        code = cli_cast_exit(cast);
out:
    cJSON_Delete(cast);
    cJSON_Delete(answer);
    return code;
}

struct agent_follow {
    struct cli_progress progress;
    char local_id[64];
};

static void on_event(void *user, const char *method, const cJSON *params)
{
    struct agent_follow *f = user;
    const cJSON *cast = cJSON_GetObjectItemCaseSensitive(params, "cast");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(params, "kind");
    const cJSON *lid = cJSON_GetObjectItemCaseSensitive(cast, "local_id");
    if (strcmp(method, "event") != 0 || !cJSON_IsString(kind) || !cJSON_IsString(lid) ||
        strcmp(lid->valuestring, f->local_id) != 0)
        return;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(cast, "state");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(cast, "progress");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(cast, "message");
    const char *message = cJSON_IsString(msg) ? msg->valuestring : "";
    if (strcmp(kind->valuestring, "cast.log") == 0)
        cli_progress_log(&f->progress, message);
    else
        cli_progress_show(&f->progress, f->local_id, cJSON_IsString(st) ? st->valuestring : "",
                          cJSON_IsNumber(pr) ? (int)pr->valuedouble : 0, message);
}

int cli_wait_agent(struct cli_ctx *ctx, struct spell_agent *a, const char *local_id,
                   cJSON **final)
{
    struct agent_follow f;
    cJSON *params = NULL;
    int code;

    *final = NULL;
    cli_progress_init(&f.progress, ctx);
    snprintf(f.local_id, sizeof(f.local_id), "%s", local_id);
    spell_agent_set_notify(a, on_event, &f);
    code = cli_agent_call(a, "events.subscribe", NULL, CLI_AGENT_TIMEOUT_MS, NULL);
    if (code != CLI_EXIT_OK)
        goto out;
    params = cJSON_CreateObject();
    if (!params || !cJSON_AddStringToObject(params, "local_id", local_id) ||
        !cJSON_AddNumberToObject(params, "timeout_ms", 0)) {
        cli_err("out of memory");
        code = CLI_EXIT_ERROR;
        goto out;
    }
    code = cli_agent_call(a, "cast.wait", params, -1, final);
out:
    cli_progress_end(&f.progress);
    spell_agent_set_notify(a, NULL, NULL);
    cJSON_Delete(params);
    return code;
}

static int cast_agent(struct cli_ctx *ctx, struct spell_agent *a, const char *key,
                      cJSON *inputs, const struct cli_args *args, int64_t cap, bool has_cap)
{
    cJSON *params = cJSON_CreateObject();
    cJSON *answer = NULL;
    cJSON *final = NULL;
    int code = CLI_EXIT_ERROR;

    if (!params || !cJSON_AddStringToObject(params, "spell", key) ||
        !cJSON_AddItemReferenceToObject(params, "inputs", inputs) ||
        (has_cap && spell_json_add_int64(params, "budget_cap_cents", cap))) {
        cli_err("out of memory");
        goto out;
    }
    code = cli_agent_call(a, "cast.submit", params, CLI_AGENT_TIMEOUT_MS, &answer);
    if (code != CLI_EXIT_OK)
        goto out;
    const cJSON *lid = cJSON_GetObjectItemCaseSensitive(answer, "local_id");
    if (!cJSON_IsString(lid)) {
        cli_err("the agent's answer has no local id");
        code = CLI_EXIT_ERROR;
        goto out;
    }
    if (!args->set[OPT_WAIT]) {
        if (args->set[OPT_JSON])
            code = cli_print_json(answer);
        else
            printf("%s\n", lid->valuestring);
        goto out;
    }
    fprintf(stderr, "Cast %s queued.\n", lid->valuestring);
    code = cli_wait_agent(ctx, a, lid->valuestring, &final);
    if (code != CLI_EXIT_OK)
        goto out;
    if (args->set[OPT_JSON])
        code = cli_print_json(final);
    else
        cli_print_cast(ctx, final);
    if (code == CLI_EXIT_OK)
        code = cli_cast_exit(final);
out:
    cJSON_Delete(final);
    cJSON_Delete(answer);
    cJSON_Delete(params);
    return code;
}

static int cast_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    struct cli_token t;
    struct spell_spell spell;
    const struct cli_net *net;
    struct spell_agent *a = NULL;
    cJSON *spell_json = NULL;
    cJSON *inputs = NULL;
    cJSON *body = NULL;
    int64_t cap = 0;
    int64_t estimate = 0;
    char money[SPELL_MONEY_FORMAT_MAX];
    char path[512];
    char err[256];
    int code;

    memset(&t, 0, sizeof(t));
    memset(&spell, 0, sizeof(spell));
    code = cli_parse(cmd, opts, N_OPTS, argc, argv, 1, 1, &args);
    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    /* Every cast reads the spell from the server, and the spell's model,
     * the estimate and the Idempotency-Key come from the module too. */
    if (!(net = cli_net()))
        return CLI_EXIT_ERROR;
    const char *key = args.pos[0];
    if (!net->spell_key_valid(key))
        return cli_usage_error(cmd, "'%s' is not a spell name", key);
    if (args.set[OPT_CAP]) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(args.value[OPT_CAP], &end, 10);
        if (errno || !end || *end || end == args.value[OPT_CAP] || v < 0 ||
            v > 9007199254740991LL || args.value[OPT_CAP][0] == '-' ||
            args.value[OPT_CAP][0] == '+' || args.value[OPT_CAP][0] == ' ')
            return cli_usage_error(cmd, "--budget-cap wants a whole number of cents, not '%s'",
                                   args.value[OPT_CAP]);
        cap = v;
    }
    /* The agent first, unless --direct: its token reads the spell too. */
    if (!args.set[OPT_DIRECT]) {
        code = cli_agent_open(ctx, false, &a);
        if (code != CLI_EXIT_OK)
            goto out;
    }
    code = cli_token(ctx, &t);
    if (code != CLI_EXIT_OK)
        goto out;
    snprintf(path, sizeof(path), "/v1/spells/%s", key);
    code = cli_api(&t, "GET", path, NULL, NULL, NULL, &spell_json);
    if (code != CLI_EXIT_OK)
        goto out;
    if (net->spell_from_json(spell_json, &spell, err, sizeof(err)) != 0) {
        cli_err("the server's description of %s is malformed: %s", key, err);
        code = CLI_EXIT_ERROR;
        goto out;
    }
    code = build_inputs(cmd, &args, spell.inputs_schema, &inputs);
    if (code != CLI_EXIT_OK)
        goto out;
    if (net->cost_estimate_inputs(&spell.pricing, inputs, &estimate) != 0) {
        cli_err("cannot estimate the cost of these inputs");
        code = CLI_EXIT_ERROR;
        goto out;
    }
    spell_money_format(estimate, money, sizeof(money));
    fprintf(stderr, "Estimated cost of %s: %s\n", key, money);
    if (args.set[OPT_CAP] && estimate > cap) {
        char capm[SPELL_MONEY_FORMAT_MAX];
        spell_money_format(cap, capm, sizeof(capm));
        cli_err("the estimate (%s) is above the budget cap (%s); nothing was cast", money, capm);
        code = CLI_EXIT_BUDGET;
        goto out;
    }
    if (args.set[OPT_DIRECT]) {
        body = cJSON_CreateObject();
        if (!body || !cJSON_AddItemReferenceToObject(body, "inputs", inputs) ||
            (args.set[OPT_CAP] && spell_json_add_int64(body, "budget_cap_cents", cap))) {
            cli_err("out of memory");
            code = CLI_EXIT_ERROR;
            goto out;
        }
        code = cast_direct(ctx, net, &t, key, body, &args);
    } else {
        code = cast_agent(ctx, a, key, inputs, &args, cap, args.set[OPT_CAP]);
    }
out:
    cli_token_wipe(&t);
    net->spell_free(&spell);
    cJSON_Delete(body);
    cJSON_Delete(inputs);
    cJSON_Delete(spell_json);
    spell_agent_free(a);
    return code;
}

const struct cli_cmd cli_cmd_cast = {
    "cast",
    "cast SPELL [-i NAME=VALUE ...] [--input-file FILE] [--budget-cap CENTS] [--wait] "
    "[--direct] [--json]",
    "cast a spell, through the agent or straight to the server",
    "Inputs are typed by the spell's input schema: -i count=3 sends a number when the\n"
    "schema says integer.  --input-file reads a JSON object (at most 64 KiB; - for stdin);\n"
    "-i values then replace its fields.  The estimated cost is shown before submitting.\n\n"
    "  -i, --input NAME=VALUE  one input (repeatable)\n"
    "  --input-file FILE       the inputs as a JSON object\n"
    "  --budget-cap CENTS      refuse the cast when it would cost more than this\n"
    "  --wait                  follow the cast to its end and print it\n"
    "  --direct                skip the agent: submit with this command's own\n"
    "                          Idempotency-Key and follow the event stream itself\n"
    "  --json                  print the agent's (or server's) answer, or with --wait the\n"
    "                          finished cast, as JSON\n",
    cast_exec,
};
