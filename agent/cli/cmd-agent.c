/*
 * spell agent status | start | stop.
 *
 * start prefers systemd (`systemctl --user start spell-agent` when the unit
 * is installed and the user manager answers); otherwise it runs
 * `spell-agent --foreground` detached, in a session of its own, with its
 * output appended to agent.log in the state dir, and waits for the socket
 * to answer.  stop asks systemd, or sends SIGTERM to the pid agent.status
 * names, and waits for the agent to go.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum { OPT_JSON, N_OPTS };

static const struct cli_opt opts[N_OPTS] = {
    [OPT_JSON] = {"--json", NULL, false, false},
};

/* How long start and stop wait for the agent, in 50 ms steps. */
#define WAIT_STEPS 200

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs argv with stdout and stderr silenced; its exit status, or -1. */
static int run_quiet(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool systemd_unit_present(void)
{
    if (getenv("SPELL_NO_SYSTEMD"))
        return false;
    char *const argv[] = {"systemctl", "--user", "cat", "spell-agent.service", NULL};
    return run_quiet(argv) == 0;
}

static bool agent_answers(struct cli_ctx *ctx)
{
    struct spell_agent *a = NULL;
    if (cli_agent_open(ctx, true, &a) != CLI_EXIT_OK)
        return false;
    spell_agent_free(a);
    return true;
}

/* The spell-agent to run: SPELL_AGENT_BIN, else beside this program (or
 * one folder up, as in the build tree), else from PATH. */
static void agent_binary(char *out, size_t outlen)
{
    const char *env = getenv("SPELL_AGENT_BIN");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, outlen, "%.4000s/spell-agent", self);
            if (access(out, X_OK) == 0)
                return;
            snprintf(out, outlen, "%.4000s/../spell-agent", self);
            if (access(out, X_OK) == 0)
                return;
        }
    }
    snprintf(out, outlen, "spell-agent");
}

static int spawn_agent(struct cli_ctx *ctx)
{
    char state[4096], log[4200], bin[PATH_MAX + 32];
    char err[256];
    if (spell_path_state_dir(&ctx->env, state, sizeof(state), err, sizeof(err)) != 0 ||
        spell_path_mkdir_private(state, err, sizeof(err)) != 0) {
        cli_err("%s", err);
        return CLI_EXIT_ERROR;
    }
    snprintf(log, sizeof(log), "%s/agent.log", state);
    agent_binary(bin, sizeof(bin));
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        cli_err("cannot open %s: %s", log, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        cli_err("cannot start spell-agent: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    if (pid == 0) {
        /* A grandchild in its own session: nothing ties it to this
         * terminal, and init reaps it. */
        if (fork() != 0)
            _exit(0);
        setsid();
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (ctx->socket_path) {
            char *const argv[] = {bin, "--foreground", "--socket", (char *)ctx->socket_path,
                                  NULL};
            execvp(bin, argv);
        } else {
            char *const argv[] = {bin, "--foreground", NULL};
            execvp(bin, argv);
        }
        dprintf(STDERR_FILENO, "spell: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(fd);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < WAIT_STEPS; i++) {
        if (agent_answers(ctx)) {
            printf("spell-agent started (log: %s).\n", log);
            return CLI_EXIT_OK;
        }
        sleep_ms(50);
    }
    cli_err("spell-agent did not start; see %s", log);
    return CLI_EXIT_ERROR;
}

static int agent_start(struct cli_ctx *ctx)
{
    if (agent_answers(ctx)) {
        printf("spell-agent is already running.\n");
        return CLI_EXIT_OK;
    }
    if (!ctx->socket_path && systemd_unit_present()) {
        char *const argv[] = {"systemctl", "--user", "start", "spell-agent.service", NULL};
        if (run_quiet(argv) == 0) {
            for (int i = 0; i < WAIT_STEPS; i++) {
                if (agent_answers(ctx)) {
                    printf("spell-agent started (systemd user service).\n");
                    return CLI_EXIT_OK;
                }
                sleep_ms(50);
            }
        }
        fprintf(stderr, "spell: systemctl --user start spell-agent did not bring it up; "
                        "starting it directly\n");
    }
    return spawn_agent(ctx);
}

static int agent_stop(struct cli_ctx *ctx)
{
    struct spell_agent *a = NULL;
    cJSON *st = NULL;
    if (cli_agent_open(ctx, true, &a) != CLI_EXIT_OK) {
        printf("spell-agent is not running.\n");
        return CLI_EXIT_OK;
    }
    int code = cli_agent_call(a, "agent.status", NULL, CLI_AGENT_TIMEOUT_MS, &st);
    spell_agent_free(a);
    if (code != CLI_EXIT_OK)
        return code;
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(st, "pid");
    bool via_systemd = false;
    if (!ctx->socket_path && systemd_unit_present()) {
        char *const argv[] = {"systemctl", "--user", "is-active", "--quiet",
                              "spell-agent.service", NULL};
        if (run_quiet(argv) == 0) {
            char *const stop[] = {"systemctl", "--user", "stop", "spell-agent.service", NULL};
            via_systemd = run_quiet(stop) == 0;
        }
    }
    if (!via_systemd) {
        if (!cJSON_IsNumber(pid) || pid->valuedouble < 2 || pid->valuedouble > 4194304) {
            cli_err("the agent did not say its pid");
            cJSON_Delete(st);
            return CLI_EXIT_ERROR;
        }
        if (kill((pid_t)pid->valuedouble, SIGTERM) != 0) {
            cli_err("cannot signal the agent (pid %d): %s", (int)pid->valuedouble,
                    strerror(errno));
            cJSON_Delete(st);
            return CLI_EXIT_ERROR;
        }
    }
    cJSON_Delete(st);
    for (int i = 0; i < WAIT_STEPS; i++) {
        if (!agent_answers(ctx)) {
            printf("spell-agent stopped.\n");
            return CLI_EXIT_OK;
        }
        sleep_ms(50);
    }
    cli_err("spell-agent is still answering after 10 s");
    return CLI_EXIT_ERROR;
}

static int agent_status(struct cli_ctx *ctx, bool json)
{
    struct spell_agent *a = NULL;
    cJSON *st = NULL;
    if (cli_agent_open(ctx, json, &a) != CLI_EXIT_OK) {
        if (json)
            puts("{\"running\":false}");
        return CLI_EXIT_ERROR;
    }
    int code = cli_agent_call(a, "agent.status", NULL, CLI_AGENT_TIMEOUT_MS, &st);
    spell_agent_free(a);
    if (code != CLI_EXIT_OK)
        return code;
    if (json) {
        code = cli_print_json(st);
    } else {
        const cJSON *v;
        printf("spell-agent is running\n");
        if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(st, "version")))
            printf("version:       %s\n", v->valuestring);
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(st, "pid")))
            printf("pid:           %d\n", (int)v->valuedouble);
        if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(st, "uptime_s")))
            printf("uptime:        %lld s\n", (long long)v->valuedouble);
        if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(st, "api_url")))
            printf("server:        %s\n", v->valuestring);
        const cJSON *cred = cJSON_GetObjectItemCaseSensitive(st, "credential");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(cred, "source");
        const cJSON *acct = cJSON_GetObjectItemCaseSensitive(cred, "account");
        printf("credential:    %s%s%s\n", cJSON_IsString(src) ? src->valuestring : "?",
               cJSON_IsString(acct) ? " as " : "", cJSON_IsString(acct) ? acct->valuestring : "");
        v = cJSON_GetObjectItemCaseSensitive(st, "notifications");
        printf("notifications: %s\n", cJSON_IsTrue(v) ? "on" : "off");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(st, "queue");
        static const char *const names[] = {"pending", "submitting", "active", "finished"};
        printf("queue:        ");
        for (size_t i = 0; i < 4; i++) {
            v = cJSON_GetObjectItemCaseSensitive(q, names[i]);
            printf(" %s %d", names[i], cJSON_IsNumber(v) ? (int)v->valuedouble : 0);
        }
        printf("\n");
    }
    cJSON_Delete(st);
    return code;
}

static int agent_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct cli_args args;
    int code = cli_parse(cmd, opts, N_OPTS, argc, argv, 1, 1, &args);
    if (code != 0 || args.help)
        return code ? code : cli_help(cmd);
    const char *verb = args.pos[0];
    if (strcmp(verb, "status") == 0)
        return agent_status(ctx, args.set[OPT_JSON]);
    if (args.set[OPT_JSON])
        return cli_usage_error(cmd, "--json goes with 'agent status'");
    if (strcmp(verb, "start") == 0)
        return agent_start(ctx);
    if (strcmp(verb, "stop") == 0)
        return agent_stop(ctx);
    return cli_usage_error(cmd, "unknown agent command '%s' (status, start, stop)", verb);
}

const struct cli_cmd cli_cmd_agent = {
    "agent",
    "agent status [--json] | agent start | agent stop",
    "show, start or stop spell-agent",
    "  status  the agent's version, pid, server, credential and queue (exit 1 when it is\n"
    "          not running)\n"
    "  start   systemctl --user start spell-agent when the unit is installed, else run\n"
    "          spell-agent --foreground in the background, logging to\n"
    "          $XDG_STATE_HOME/spell/agent.log\n"
    "  stop    systemctl --user stop spell-agent, or SIGTERM to the agent's pid\n"
    "  --json  (status) print agent.status as JSON, or {\"running\":false}\n",
    agent_exec,
};
