/* Fuzz target: validating untrusted inputs against a fixed schema, and
 * checking untrusted schemas; a refusal always names a field. */
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "spell/errors.h"
#include "spell/json.h"
#include "spell/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char schema_text[] =
    "{\"type\":\"object\",\"required\":[\"url\"],\"properties\":{"
    "\"url\":{\"type\":\"string\",\"maxLength\":64},"
    "\"width\":{\"type\":\"integer\",\"minimum\":16,\"maximum\":4096},"
    "\"scale\":{\"type\":\"number\",\"minimum\":0.5},"
    "\"format\":{\"type\":\"string\",\"enum\":[\"png\",\"jpeg\"]},"
    "\"crop\":{\"type\":\"boolean\"}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *schema = NULL, *v = NULL;
    if (spell_json_parse(schema_text, sizeof schema_text - 1, NULL, &schema, NULL, 0) != SPELL_OK)
        __builtin_trap();
    if (spell_json_parse((const char *)data, size, NULL, &v, NULL, 0) == SPELL_OK) {
        struct spell_schema_error e;
        memset(&e, 0, sizeof e);
        int rc = spell_schema_validate(schema, v, &e);
        if (rc == SPELL_EINVAL && e.message[0] == '\0')
            __builtin_trap();
        char err[256];
        (void)spell_schema_check(v, err, sizeof err);
    }
    cJSON_Delete(schema);
    cJSON_Delete(v);
    return 0;
}
