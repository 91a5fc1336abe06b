/*
 * The command line's common parts: flag parsing, messages, colour,
 * progress display and how a cast is printed.  The network module
 * (net.c) is built with this file too, for its messages and progress.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "spell/errors.h"
#include "spell/money.h"

void cli_err(const char *fmt, ...)
{
    va_list ap;
    fputs("spell: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_print_server_error(int status, const char *code, const char *message)
{
    const char *sentence = spell_api_error_sentence(code ? code : "", status);
    if (message && *message && strcmp(message, sentence) != 0)
        cli_err("%s (%s%s%s)", sentence, code ? code : "", code ? ": " : "", message);
    else
        cli_err("%s%s%s%s", sentence, code ? " (" : "", code ? code : "", code ? ")" : "");
}

int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "spell %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: spell %s\nTry 'spell %s --help'.\n", cmd->usage, cmd->name);
    return CLI_EXIT_USAGE;
}

int cli_help(const struct cli_cmd *cmd)
{
    printf("usage: spell %s\n\n%s\n", cmd->usage, cmd->summary);
    if (cmd->help && *cmd->help)
        printf("\n%s", cmd->help);
    printf("\nExit status: 0 ok, 1 error, 2 usage, 3 the cast failed, 4 budget or payment "
           "refused.\n");
    return CLI_EXIT_OK;
}

static int find_opt(const struct cli_opt *opts, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++) {
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return i;
        if (opts[i].alias && strlen(opts[i].alias) == len && strncmp(opts[i].alias, name, len) == 0)
            return i;
    }
    return -1;
}

int cli_parse(const struct cli_cmd *cmd, const struct cli_opt *opts, int n, int argc,
              char **argv, int min_pos, int max_pos, struct cli_args *out)
{
    bool operands_only = false;
    memset(out, 0, sizeof(*out));
    if (n > CLI_MAX_OPTS)
        n = CLI_MAX_OPTS;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!operands_only && strcmp(arg, "--") == 0) {
            operands_only = true;
            continue;
        }
        if (!operands_only && arg[0] == '-' && arg[1] != '\0') {
            if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
                out->help = true;
                return 0;
            }
            const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
            size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
            int k = find_opt(opts, n, arg, len);
            if (k < 0)
                return cli_usage_error(cmd, "unknown flag '%.*s'", (int)len, arg);
            const char *value = NULL;
            if (opts[k].takes_value) {
                if (eq) {
                    value = eq + 1;
                } else if (i + 1 < argc) {
                    value = argv[++i];
                } else {
                    return cli_usage_error(cmd, "flag '%s' needs a value", opts[k].name);
                }
            } else if (eq) {
                return cli_usage_error(cmd, "flag '%s' takes no value", opts[k].name);
            }
            if (opts[k].repeat) {
                if (out->n_rep >= CLI_MAX_REPEAT)
                    return cli_usage_error(cmd, "flag '%s' is given more than %d times",
                                           opts[k].name, CLI_MAX_REPEAT);
                out->rep_opt[out->n_rep] = k;
                out->rep_value[out->n_rep] = value;
                out->n_rep++;
            } else if (out->set[k]) {
                return cli_usage_error(cmd, "flag '%s' is given twice", opts[k].name);
            }
            out->set[k] = true;
            out->value[k] = value;
            continue;
        }
        if (out->n_pos >= max_pos || out->n_pos >= CLI_MAX_POS)
            return cli_usage_error(cmd, "unexpected argument '%s'", arg);
        out->pos[out->n_pos++] = arg;
    }
    if (out->n_pos < min_pos)
        return cli_usage_error(cmd, "missing argument");
    return 0;
}

int cli_print_json(const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    if (!s) {
        cli_err("out of memory");
        return CLI_EXIT_ERROR;
    }
    puts(s);
    free(s);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

const char *cli_color_state(const struct cli_ctx *ctx, const char *state)
{
    if (!ctx->color || !state)
        return "";
    if (strcmp(state, "succeeded") == 0)
        return "\033[32m";
    if (strcmp(state, "failed") == 0 || strcmp(state, "rejected") == 0)
        return "\033[31m";
    if (strcmp(state, "canceled") == 0)
        return "\033[33m";
    return "\033[36m";
}

const char *cli_color_reset(const struct cli_ctx *ctx)
{
    return ctx->color ? "\033[0m" : "";
}

int cli_term_width(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20 && ws.ws_col <= 1000)
        return ws.ws_col;
    return 80;
}

void cli_progress_init(struct cli_progress *p, const struct cli_ctx *ctx)
{
    memset(p, 0, sizeof(*p));
    p->tty = ctx->tty_err;
    p->last_progress = -1;
}

void cli_progress_show(struct cli_progress *p, const char *id, const char *state, int progress,
                       const char *message)
{
    if (progress < 0)
        progress = 0;
    if (progress > 100)
        progress = 100;
    if (!state)
        state = "";
    if (!message)
        message = "";
    if (p->tty) {
        int width = cli_term_width(STDERR_FILENO);
        /* "[#####     ]  40% running  message", cut to the width. */
        int bar = width / 4;
        if (bar > 30)
            bar = 30;
        char line[1024];
        int pos = 0;
        line[pos++] = '[';
        int fill = progress * bar / 100;
        for (int i = 0; i < bar; i++)
            line[pos++] = i < fill ? '#' : ' ';
        pos += snprintf(line + pos, sizeof(line) - (size_t)pos, "] %3d%% %-9s %s", progress,
                        state, message);
        if (pos > width - 1)
            pos = width - 1;
        if (pos >= (int)sizeof(line))
            pos = (int)sizeof(line) - 1;
        line[pos] = '\0';
        fprintf(stderr, "\r%s\033[K", line);
        fflush(stderr);
        p->drawn = true;
    } else if (progress != p->last_progress || strcmp(state, p->last_state) != 0 ||
               strcmp(message, p->last_message) != 0) {
        fprintf(stderr, "%s %s %d%%%s%s\n", id ? id : "", state, progress, *message ? " " : "",
                message);
    }
    p->last_progress = progress;
    snprintf(p->last_state, sizeof(p->last_state), "%s", state);
    snprintf(p->last_message, sizeof(p->last_message), "%s", message);
}

void cli_progress_log(struct cli_progress *p, const char *line)
{
    if (p->tty && p->drawn)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "  %s\n", line ? line : "");
    p->drawn = false;
}

void cli_progress_end(struct cli_progress *p)
{
    if (p->tty && p->drawn)
        fputc('\n', stderr);
    p->drawn = false;
}

bool cli_is_local_id(const char *id)
{
    return strncmp(id, "lc_", 3) == 0;
}

static const char *str_member(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool int_member(const cJSON *j, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!cJSON_IsNumber(v))
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

/* The state of a local cast or the status of a server cast. */
static const char *cast_state(const cJSON *cast)
{
    const char *s = str_member(cast, "state");
    return s ? s : str_member(cast, "status");
}

int cli_cast_exit(const cJSON *cast)
{
    const char *state = cast_state(cast);
    if (!state)
        return CLI_EXIT_ERROR;
    if (strcmp(state, "succeeded") == 0)
        return CLI_EXIT_OK;
    if (strcmp(state, "failed") == 0 || strcmp(state, "canceled") == 0)
        return CLI_EXIT_CAST_FAILED;
    if (strcmp(state, "rejected") == 0) {
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(cast, "error");
        int64_t status = 0;
        if (int_member(err, "status", &status) && status == 402)
            return CLI_EXIT_BUDGET;
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_ERROR;
}

static void print_money_line(const char *label, const cJSON *cast, const char *name)
{
    int64_t cents;
    char money[SPELL_MONEY_FORMAT_MAX];
    if (int_member(cast, name, &cents) && spell_money_format(cents, money, sizeof(money)) == 0)
        printf("%-10s %s\n", label, money);
}

void cli_print_cast(const struct cli_ctx *ctx, const cJSON *cast)
{
    const char *local = str_member(cast, "local_id");
    const char *id = str_member(cast, "cast_id");
    if (!id)
        id = str_member(cast, "id");
    const char *spell = str_member(cast, "spell");
    if (!spell)
        spell = str_member(cast, "spell_key");
    const char *state = cast_state(cast);
    int64_t v;

    if (local)
        printf("%-10s %s\n", "local id", local);
    printf("%-10s %s\n", "cast id", id ? id : "(not accepted yet)");
    printf("%-10s %s\n", "spell", spell ? spell : "?");
    printf("%-10s %s%s%s\n", "state", cli_color_state(ctx, state), state ? state : "?",
           cli_color_reset(ctx));
    if (int_member(cast, "progress", &v))
        printf("%-10s %d%%\n", "progress", (int)v);
    const char *msg = str_member(cast, "message");
    if (msg && *msg)
        printf("%-10s %s\n", "message", msg);
    print_money_line("estimate", cast, "estimated_cost_cents");
    print_money_line("cost", cast, "cost_cents");
    if (int_member(cast, "duration_ms", &v))
        printf("%-10s %.1f s\n", "duration", (double)v / 1000.0);
    const char *created = str_member(cast, "created_at");
    if (created)
        printf("%-10s %s\n", "created", created);
    const char *finished = str_member(cast, "finished_at");
    if (finished)
        printf("%-10s %s\n", "finished", finished);
    const char *art = str_member(cast, "artifact_url");
    if (art)
        printf("%-10s %s\n", "artifact", art);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(cast, "error");
    if (cJSON_IsObject(err)) {
        const char *code = str_member(err, "code");
        const char *m = str_member(err, "message");
        printf("%-10s %s%s%s\n", "error", code ? code : "", code && m ? ": " : "", m ? m : "");
    }
}
