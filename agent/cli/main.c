/*
 * spell, the command line: the command table and the dispatch.
 *
 * main() loads the configuration (config file and environment), decides on
 * colour, finds the subcommand by its first word and hands it the rest of
 * argv.  Everything a command prints for a script goes to stdout; progress,
 * warnings and errors go to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "net.h"
#include "spell/version.h"

static const struct cli_cmd *const commands[] = {
    &cli_cmd_cast,
    &cli_cmd_watch,
    &cli_cmd_ls,
    &cli_cmd_show,
    &cli_cmd_cancel,
    &cli_cmd_login,
    &cli_cmd_logout,
    &cli_cmd_whoami,
    &cli_cmd_keys,
    &cli_cmd_budget,
    &cli_cmd_usage,
    &cli_cmd_card,
    &cli_cmd_agent,
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: spell [--socket PATH] COMMAND [ARGS...]\n"
               "       spell COMMAND --help\n\n"
               "Casts spells on the Spell platform, through spell-agent or straight to the "
               "server.\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-8s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "\nGlobal flags:\n"
               "  --socket PATH  the agent's socket (default: $XDG_RUNTIME_DIR/spell/agent.sock,\n"
               "                 or SPELL_AGENT_SOCKET)\n"
               "  -V, --version  print the version and exit\n"
               "  -h, --help     show this help and exit\n\n"
               "Environment: SPELL_API_URL, SPELL_API_KEY, SPELL_AGENT_SOCKET, NO_COLOR.\n\n"
               "Exit status:\n"
               "  0  success\n"
               "  1  an error (the agent or the server refused, the network failed)\n"
               "  2  a usage error (unknown flag, missing or malformed argument)\n"
               "  3  the cast failed or was canceled\n"
               "  4  a budget or payment refusal (HTTP 402)\n");
}

static const char *getenv_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int main(int argc, char **argv)
{
    struct cli_ctx ctx;
    int i = 1;
    int code;

    memset(&ctx, 0, sizeof(ctx));
    spell_env_process(&ctx.env);
    ctx.socket_path = getenv_nonempty("SPELL_AGENT_SOCKET");

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("spell %s\n", spell_version());
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--socket") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "spell: flag '--socket' needs a value\n");
                return CLI_EXIT_USAGE;
            }
            ctx.socket_path = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--socket=", 9) == 0) {
            ctx.socket_path = argv[i] + 9;
            continue;
        }
        fprintf(stderr, "spell: unknown flag '%s'\n", argv[i]);
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const struct cli_cmd *cmd = NULL;
    for (size_t k = 0; k < N_COMMANDS; k++)
        if (strcmp(commands[k]->name, argv[i]) == 0)
            cmd = commands[k];
    if (!cmd) {
        fprintf(stderr, "spell: unknown command '%s'\nTry 'spell --help'.\n", argv[i]);
        return CLI_EXIT_USAGE;
    }

    ctx.tty_out = isatty(STDOUT_FILENO) == 1;
    ctx.tty_err = isatty(STDERR_FILENO) == 1;
    const char *term = getenv("TERM");
    ctx.color = ctx.tty_out && !getenv_nonempty("NO_COLOR") && !(term && strcmp(term, "dumb") == 0);
    ctx.cfg_ok = spell_config_load(&ctx.cfg, &ctx.env, ctx.cfg_error,
                                   sizeof(ctx.cfg_error)) == 0;
    if (ctx.cfg_ok && ctx.cfg.theme == SPELL_THEME_MONO)
        ctx.color = false;

    code = cmd->exec(&ctx, cmd, argc - i - 1, argv + i + 1);
    fflush(stdout);
    if (ctx.cfg_ok)
        spell_config_free(&ctx.cfg);
    cli_net_cleanup();
    return code;
}
