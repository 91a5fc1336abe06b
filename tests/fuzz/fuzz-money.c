/* Fuzz target: money parsing takes any text; whatever it accepts must
 * format and parse back to the same number of cents. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/money.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t cents, again;
    char text[SPELL_MONEY_FORMAT_MAX];
    if (spell_money_parse(s, &cents) == SPELL_OK) {
        if (cents < 0 || spell_money_format(cents, text, sizeof text) != SPELL_OK ||
            spell_money_parse(text, &again) != SPELL_OK || again != cents)
            __builtin_trap();
    }
    free(s);
    return 0;
}
