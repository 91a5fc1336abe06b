/*
 * spell-portal: flags, the locale, then the portal (portal.c).
 */
#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "spell/version.h"

#include "portal.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: spell-portal [--api-url URL] [--theme default|dark|light|mono]\n"
            "                    [--socket PATH]\n"
            "\n"
            "The caster portal: account, card, budget, usage, API keys and live casts.\n"
            "\n"
            "  --api-url URL     the platform's base URL (default: SPELL_API_URL, the\n"
            "                    config file, the agent's, else http://127.0.0.1:8080)\n"
            "  --theme NAME      colour theme: default, dark, light or mono\n"
            "                    (NO_COLOR set in the environment means mono)\n"
            "  --socket PATH     the agent's socket (default:\n"
            "                    $XDG_RUNTIME_DIR/spell/agent.sock)\n"
            "  -h, --help        show this help and exit\n"
            "  -V, --version     print the version and exit\n"
            "\n"
            "The API key comes from the agent (spell-agent), else SPELL_API_KEY, else\n"
            "the credentials file; without one the portal opens its login screen.\n"
            "Press ? inside for every key.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"api-url", required_argument, NULL, 'u'},
        {"theme", required_argument, NULL, 't'},
        {"socket", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct portal_options opt = {0};
    int c;
    setlocale(LC_ALL, "");
    while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            opt.api_url = optarg;
            break;
        case 't':
            if (strcmp(optarg, "default") != 0 && strcmp(optarg, "dark") != 0 &&
                strcmp(optarg, "light") != 0 && strcmp(optarg, "mono") != 0) {
                fprintf(stderr, "spell-portal: --theme must be default, dark, light or mono\n");
                return 2;
            }
            opt.theme = optarg;
            break;
        case 's':
            if (strlen(optarg) > SPELL_SOCKET_PATH_MAX) {
                fprintf(stderr, "spell-portal: --socket path is too long\n");
                return 2;
            }
            opt.socket = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("spell-portal %s\n", spell_version());
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "spell-portal: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return portal_run(&opt);
}
