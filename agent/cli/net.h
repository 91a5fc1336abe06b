/*
 * spell, the command line: the network module's interface.
 *
 * `spell` itself links neither libcurl nor libcrypto: loading them and the
 * thirty-odd libraries libcurl brings (GnuTLS, OpenSSL, Kerberos, LDAP,
 * ...) costs about 6 MiB and several milliseconds at every start, and the
 * commands that only ask the agent (whoami, ls, show, cancel, agent ...)
 * need none of it.  Everything that does, the HTTP client above all, lives
 * in spell-net.so, a private shared module that net-load.c opens with
 * dlopen() the first time a command needs it.
 *
 * Why a module rather than a helper program that spell executes (as git
 * runs git-remote-http): a command mixes both peers in one run (cast asks
 * the agent for the token, reads the spell from the server, then submits
 * through the agent), keeps one agent connection, one progress line and
 * the credential in its own memory.  A helper would have to be handed the
 * token through a pipe, parse the command again and report back; the
 * module is called like any function and the token never leaves the
 * process.
 *
 * The module is found next to the executable (the build tree) or in
 * spell's private library directory (<libdir>/spell, fixed at configure
 * time).  Both sides are built from the same tree: they share struct
 * cli_token, struct cli_ctx and struct cli_progress, so the module checks
 * CLI_NET_ABI, the version and the sizes of those structs before it hands
 * out its table.
 */
#ifndef CLI_NET_H
#define CLI_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "spell/cost.h"
#include "spell/crypto.h"
#include "spell/device.h"
#include "spell/models.h"
#include "spell/version.h"

/* The module's file name, and the one symbol it exports. */
#define CLI_NET_MODULE "spell-net.so"
#define CLI_NET_ENTRY "spell_cli_net"

/* Raised whenever this table or a struct it passes changes. */
#define CLI_NET_ABI 1

struct cli_net {
    /* cli_api() with flags (CLI_API_*). */
    int (*api)(const struct cli_token *t, const char *method, const char *path,
               const cJSON *body, const char *idem_key, unsigned flags, int *status,
               cJSON **out);
    /* cli_follow_direct(). */
    int (*follow_direct)(struct cli_ctx *ctx, const struct cli_token *t, const char *cast_id,
                         bool quiet);
    /* core's device.h: the sign-in with a code, and the browser. */
    int (*device_start)(const char *base_url, struct spell_device_grant *grant, char *err,
                        size_t errlen);
    int (*device_poll)(const char *base_url, struct spell_device_grant *grant,
                       struct spell_device_result *res, char *err, size_t errlen);
    void (*device_result_wipe)(struct spell_device_result *res);
    int (*open_browser)(const char *url, char *const *envp);
    /* core's crypto.h (libcrypto): the offline check of an API key and
     * random tokens. */
    int (*apikey_parse)(const char *key, struct spell_apikey *out);
    void (*apikey_wipe)(struct spell_apikey *k);
    int (*random_token)(char *out, size_t n_chars);
    /* core's models.h and cost.h: models.c names the pricing models from
     * cost.c, whose estimate measures the inputs with jcs.c, whose object
     * also holds the input hash, on libcrypto. */
    bool (*spell_key_valid)(const char *s);
    bool (*cast_id_valid)(const char *s);
    int (*spell_from_json)(const cJSON *j, struct spell_spell *out, char *err, size_t errlen);
    void (*spell_free)(struct spell_spell *r);
    int (*cost_estimate_inputs)(const struct spell_pricing *p, const cJSON *inputs,
                                int64_t *out_cents);
    /* At exit: libcurl's global cleanup. */
    void (*cleanup)(void);
};

/* What the two sides must agree on: both fill it with cli_net_abi_here()
 * and the module compares. */
struct cli_net_abi {
    int abi;
    const char *version;
    size_t table, ctx, token, progress;
};

static inline struct cli_net_abi cli_net_abi_here(void)
{
    struct cli_net_abi a = {CLI_NET_ABI, spell_version(), sizeof(struct cli_net),
                            sizeof(struct cli_ctx), sizeof(struct cli_token),
                            sizeof(struct cli_progress)};
    return a;
}

/* The module's entry (CLI_NET_ENTRY): its table when want matches the
 * module, else NULL with why in err. */
typedef const struct cli_net *cli_net_entry_fn(const struct cli_net_abi *want, char *err,
                                               size_t errlen);
cli_net_entry_fn spell_cli_net;

/* In spell: the module's table, loaded on the first call.  NULL when it
 * cannot be loaded, after saying why on stderr; the caller then returns
 * CLI_EXIT_ERROR. */
const struct cli_net *cli_net(void);

/* In spell, at exit: the module's cleanup when it was loaded. */
void cli_net_cleanup(void);

#endif
