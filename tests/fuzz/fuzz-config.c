/* Fuzz target: the config file parser takes any bytes and either applies
 * them or names the file and line of the first fault. */
#include <stdint.h>
#include <string.h>

#include "spell/config.h"
#include "spell/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spell_config cfg;
    char err[512] = "";
    if (spell_config_defaults(&cfg) != SPELL_OK)
        return 0;
    int rc = spell_config_parse(&cfg, "fuzz.conf", (const char *)data, size, err, sizeof err);
    if (rc != SPELL_OK && rc != SPELL_ENOMEM && strncmp(err, "fuzz.conf", 9) != 0)
        __builtin_trap();
    spell_config_free(&cfg);
    return 0;
}
