/*
 * spell's network module (agent/cli/net.h) as spell loads it: dlopen(),
 * the one exported entry, and its check that the caller is the spell it
 * was built with.  A caller that differs in the interface number, the
 * version or the size of any shared struct gets no table and a reason.
 *
 *   test-net-module PATH_TO_spell-net.so
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "net.h"
#include "spell/errors.h"
#include "tap.h"

static const char *module_path;
static cli_net_entry_fn *entry;

/* Asks the module with want; returns the table (NULL when refused) and
 * leaves the reason in err. */
static const struct cli_net *ask(const struct cli_net_abi *want, char *err, size_t errlen)
{
    err[0] = '\0';
    return entry(want, err, errlen);
}

static void test_loads_and_exports_the_entry(void)
{
    void *h = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL);
    if (!h) {
        printf("#   %s\n", dlerror());
        return;
    }
    union {
        void *sym;
        cli_net_entry_fn *fn;
    } u;
    u.sym = dlsym(h, CLI_NET_ENTRY);
    CHECK(u.sym != NULL);
    entry = u.fn;
    /* core stays inside: none of its functions is exported. */
    CHECK(dlsym(h, "spell_http_send") == NULL);
    CHECK(dlsym(h, "spell_version") == NULL);
    CHECK(dlsym(h, "cli_err") == NULL);
}

static void test_the_same_build_gets_a_full_table(void)
{
    char err[512];
    struct cli_net_abi want = cli_net_abi_here();
    if (!entry)
        return;
    const struct cli_net *net = ask(&want, err, sizeof(err));
    CHECK(net != NULL);
    if (!net)
        return;
    CHECK_STR(err, "");
    CHECK(net->api && net->follow_direct && net->device_start && net->device_poll &&
          net->device_result_wipe && net->open_browser && net->apikey_parse &&
          net->apikey_wipe && net->random_token && net->spell_key_valid &&
          net->cast_id_valid && net->spell_from_json && net->spell_free &&
          net->cost_estimate_inputs && net->cleanup);
    /* The table works: a key checked offline, a token drawn. */
    struct spell_apikey k;
    CHECK_INT(net->apikey_parse("sk_live_nope", &k), SPELL_EINVAL);
    char tok[33];
    CHECK_INT(net->random_token(tok, 32), 0);
    CHECK_INT(strlen(tok), 32);
    CHECK(net->spell_key_valid("echo"));
    CHECK(!net->spell_key_valid("no such/spell"));
}

static void expect_refused(const struct cli_net_abi *want, const char *what)
{
    char err[512];
    const struct cli_net *net = ask(want, err, sizeof(err));
    if (net || !strstr(err, "another build of spell")) {
        printf("#   %s: table %p, err \"%s\"\n", what, (const void *)net, err);
        CHECK(net == NULL);
        CHECK(strstr(err, "another build of spell") != NULL);
    }
}

static void test_another_build_is_refused(void)
{
    struct cli_net_abi here = cli_net_abi_here();
    struct cli_net_abi w;
    if (!entry)
        return;
    w = here;
    w.abi = CLI_NET_ABI + 1;
    expect_refused(&w, "interface + 1");
    w = here;
    w.abi = -1;
    expect_refused(&w, "interface -1");
    w = here;
    w.version = "0.0.0-other";
    expect_refused(&w, "another version");
    w = here;
    w.version = NULL;
    expect_refused(&w, "no version");
    w = here;
    w.table = here.table - sizeof(void *);
    expect_refused(&w, "a shorter table");
    w = here;
    w.ctx = here.ctx + 8;
    expect_refused(&w, "another struct cli_ctx");
    w = here;
    w.token = SIZE_MAX;
    expect_refused(&w, "another struct cli_token");
    w = here;
    w.progress = 0;
    expect_refused(&w, "another struct cli_progress");
    /* No caller description at all. */
    expect_refused(NULL, "NULL");
    /* The reason fits whatever buffer it is given. */
    char small[8];
    w = here;
    w.abi = 0;
    CHECK(ask(&w, small, sizeof(small)) == NULL);
    CHECK_INT(strlen(small), sizeof(small) - 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test-net-module PATH_TO_spell-net.so\n");
        return 2;
    }
    module_path = argv[1];
    RUN(test_loads_and_exports_the_entry);
    RUN(test_the_same_build_gets_a_full_table);
    RUN(test_another_build_is_refused);
    return tap_done();
}
