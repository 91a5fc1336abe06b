/*
 * spell-server: the platform API of DESIGN.md §3.
 *
 * This entry point parses the command line; the HTTP service, the store
 * and the executors are added behind it.
 */
#include <stdio.h>
#include <string.h>

#include "spell/version.h"

static void usage(FILE *to)
{
    fprintf(to,
        "Usage: spell-server [--help] [--version]\n"
        "\n"
        "The Spell platform server.\n"
        "\n"
        "  -h, --help     show this help and exit\n"
        "  -V, --version  print the version and exit\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("spell-server %s\n", spell_version());
            return 0;
        }
        fprintf(stderr, "spell-server: unknown option '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    usage(stderr);
    return 2;
}
