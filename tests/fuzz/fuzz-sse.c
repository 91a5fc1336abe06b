/* Fuzz target: the SSE parser, fed whole and in irregular chunks, must
 * agree with itself and never read or write out of bounds. */
#include <stdint.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tally {
    size_t events;
    size_t bytes;
};

static int on_event(const struct spell_sse_event *ev, void *ud)
{
    struct tally *t = ud;
    t->events++;
    t->bytes += ev->data_len + ev->type_len + ev->id_len;
    /* Touch every byte so ASan checks the lengths. */
    volatile char sink = 0;
    for (size_t i = 0; i < ev->data_len; i++)
        sink ^= ev->data[i];
    (void)sink;
    return 0;
}

static int parse(const uint8_t *data, size_t size, size_t step, struct tally *t, int *rc)
{
    struct spell_sse_parser p;
    if (spell_sse_parser_init(&p, 512, 4096, on_event, NULL, t) != SPELL_OK)
        return -1;
    *rc = SPELL_OK;
    for (size_t off = 0; off < size && *rc == SPELL_OK; off += step) {
        size_t n = size - off < step ? size - off : step;
        *rc = spell_sse_feed(&p, (const char *)data + off, n);
    }
    spell_sse_parser_free(&p);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tally whole = {0, 0}, chunked = {0, 0};
    int rc_whole, rc_chunked;
    if (parse(data, size, size ? size : 1, &whole, &rc_whole) != 0)
        return 0;
    if (parse(data, size, 3, &chunked, &rc_chunked) != 0)
        return 0;
    if (rc_whole == SPELL_OK && rc_chunked == SPELL_OK &&
        (whole.events != chunked.events || whole.bytes != chunked.bytes))
        __builtin_trap();
    return 0;
}
