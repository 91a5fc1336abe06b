/*
 * Loading the network module (net.h) on the first command that needs it.
 *
 * The module is looked for next to the executable first (in the build
 * tree spell-net.so sits beside spell), then in SPELL_CLI_MODULE_DIR,
 * spell's private library directory, fixed at configure time.  The first
 * one that exists is loaded; when none exists, or the one found cannot be
 * loaded or belongs to another build, the command says so and fails
 * (exit 1).  The module stays loaded until exit.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "net.h"

#ifndef SPELL_CLI_MODULE_DIR
#error "SPELL_CLI_MODULE_DIR must name spell's private library directory"
#endif

static const struct cli_net *loaded;
static bool failed;

/* The directory of the running executable into dir; false when
 * /proc/self/exe cannot be read. */
static bool exe_dir(char *dir, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", dir, size - 1);
    if (n <= 0 || (size_t)n >= size - 1)
        return false;
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (!slash)
        return false;
    *slash = '\0';
    return true;
}

static const struct cli_net *load(const char *path)
{
    char err[512];
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        cli_err("cannot load the network module: %s", why ? why : path);
        return NULL;
    }
    /* dlsym() gives an object pointer; POSIX makes it the function's. */
    union {
        void *sym;
        cli_net_entry_fn *fn;
    } entry;
    entry.sym = dlsym(h, CLI_NET_ENTRY);
    if (!entry.sym) {
        cli_err("%s is not spell's network module (no %s)", path, CLI_NET_ENTRY);
        dlclose(h);
        return NULL;
    }
    struct cli_net_abi want = cli_net_abi_here();
    err[0] = '\0';
    const struct cli_net *net = entry.fn(&want, err, sizeof(err));
    if (!net) {
        cli_err("cannot use the network module %s: %s", path, err);
        dlclose(h);
        return NULL;
    }
    return net;
}

const struct cli_net *cli_net(void)
{
    char dir[PATH_MAX];
    char path[PATH_MAX + sizeof(CLI_NET_MODULE) + 1];
    const char *found = NULL;

    if (loaded || failed)
        return loaded;
    if (exe_dir(dir, sizeof(dir)) &&
        (size_t)snprintf(path, sizeof(path), "%s/%s", dir, CLI_NET_MODULE) < sizeof(path) &&
        access(path, F_OK) == 0)
        found = path;
    else if ((size_t)snprintf(path, sizeof(path), "%s/%s", SPELL_CLI_MODULE_DIR,
                              CLI_NET_MODULE) < sizeof(path) &&
             access(path, F_OK) == 0)
        found = path;
    if (found)
        loaded = load(found);
    else
        cli_err("this command needs spell's network module %s, which is missing: it is "
                "neither beside the spell executable nor in %s", CLI_NET_MODULE,
                SPELL_CLI_MODULE_DIR);
    if (!loaded) {
        fprintf(stderr, "hint: the module holds spell's HTTP client; reinstall spell\n");
        failed = true;
    }
    return loaded;
}

void cli_net_cleanup(void)
{
    if (loaded)
        loaded->cleanup();
}
