/*
 * The in-process bus backend: every event goes straight to the SSE hub of
 * this server (sse_hub_publish), which fans it out to the open progress
 * streams of the cast.  Nothing is buffered here; the store keeps every
 * event, so a stream that missed one reads it from the store on resume.
 */
#include <stdlib.h>

#include "spell/errors.h"

#include "bus-impl.h"
#include "bus.h"
#include "server.h"
#include "sse_hub.h"

struct bus_local {
    struct server *srv;
};

static int local_publish(void *impl, const char *cast_id, int64_t seq, const char *type,
                         const char *json, int terminal)
{
    struct bus_local *l = impl;

    if (!l->srv->hub)
        return SPELL_OK;
    return sse_hub_publish(l->srv->hub, cast_id, (uint64_t)seq, type, json, terminal);
}

static void local_free(void *impl)
{
    free(impl);
}

static const struct bus_ops local_ops = {
    .name = "local",
    .publish = local_publish,
    .free = local_free,
};

int bus_local_new(struct server *srv, struct bus **out)
{
    struct bus_local *l;

    if (!srv || !out)
        return SPELL_EINVAL;
    *out = NULL;
    if (!(l = calloc(1, sizeof *l)))
        return SPELL_ENOMEM;
    l->srv = srv;
    return bus_create(&local_ops, l, out);
}
