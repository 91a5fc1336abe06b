/* Fuzz target: the Stripe-Signature header parser takes any header text;
 * a random header must never verify. */
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
    static const char body[] = "{\"id\":\"evt_1\"}";
    int rc = spell_stripe_signature_verify("whsec_fuzz", body, sizeof body - 1, s,
                                           1700000000, 300);
    if (rc == SPELL_OK)
        __builtin_trap();
    free(s);
    return 0;
}
