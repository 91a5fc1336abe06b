/* Fuzz target: canonicalization is idempotent.  Any text the strict parser
 * accepts, once canonical, parses back to the very same canonical bytes,
 * and the input hash never fails on a value the serializer accepted. */
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/jcs.h"
#include "spell/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *v = NULL, *again = NULL;
    struct spell_buf a, b;
    spell_buf_init(&a, 256 * 1024);
    spell_buf_init(&b, 256 * 1024);
    if (spell_json_parse((const char *)data, size, NULL, &v, NULL, 0) != SPELL_OK)
        goto out;
    if (spell_jcs_serialize(v, &a) != SPELL_OK)
        goto out;
    size_t n = 0;
    if (spell_jcs_length(v, &n) != SPELL_OK || n != a.len)
        __builtin_trap();
    if (spell_json_parse(a.ptr, a.len, NULL, &again, NULL, 0) != SPELL_OK)
        __builtin_trap();
    if (spell_jcs_serialize(again, &b) != SPELL_OK || a.len != b.len ||
        memcmp(a.ptr, b.ptr, a.len) != 0)
        __builtin_trap();
    char hash[65];
    if (spell_input_hash(v, hash) != SPELL_OK)
        __builtin_trap();
out:
    cJSON_Delete(v);
    cJSON_Delete(again);
    spell_buf_free(&a);
    spell_buf_free(&b);
    return 0;
}
