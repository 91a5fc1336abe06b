/* Fuzz target: API key parsing takes any bytes; a key it accepts must
 * survive a round trip through its own parts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spell/crypto.h"
#include "spell/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct spell_apikey k;
    if (spell_apikey_parse(s, &k) == SPELL_OK && strcmp(k.key, s) != 0)
        __builtin_trap();
    spell_apikey_wipe(&k);
    free(s);
    return 0;
}
