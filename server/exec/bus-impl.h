/*
 * What a bus backend provides (bus.h): a delivery function and its state.
 * bus.c owns the parts every backend shares (the lock and the table of
 * last published seqs); a backend file (bus_local.c, later bus_nats.c)
 * fills a struct bus_ops and calls bus_create().
 */
#ifndef SPELL_SERVER_BUS_IMPL_H
#define SPELL_SERVER_BUS_IMPL_H

#include <stdint.h>

struct bus;

struct bus_ops {
    const char *name;
    /* Delivers one event; called with the bus locked, in seq order per cast. */
    int (*publish)(void *impl, const char *cast_id, int64_t seq, const char *type,
                   const char *json, int terminal);
    /* Frees impl; may be NULL. */
    void (*free)(void *impl);
};

/* A bus over the backend (ops, impl); on failure impl is freed with
 * ops->free. */
int bus_create(const struct bus_ops *ops, void *impl, struct bus **out);

#endif
