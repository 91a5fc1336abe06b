/*
 * Inside the auth part: the context shared by auth.c (verification, the
 * hook, users and sessions) and handlers.c (the /v1/auth and /v1/keys
 * routes).  Not for other parts.
 */
#ifndef SPELL_SERVER_AUTH_IMPL_H
#define SPELL_SERVER_AUTH_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "auth.h"
#include "store.h"

#define AUTH_ROUTES 5

/* auth_key_create(): the user already holds AUTH_KEYS_PER_USER_MAX live
 * keys.  Private to this part, below the store's codes. */
#define AUTH_ETOOMANY (-110)

struct key_entry;

struct auth {
    struct server *srv;
    /* The settings in force, defaults filled in. */
    struct auth_config cfg;
    /* Guards the verified-key cache: buckets, count and generation. */
    pthread_mutex_t cache_lock;
    /* Chained hash table keyed by the SHA-256 of the whole key; nbuckets
     * is a power of two at least cfg.cache_max. */
    struct key_entry **buckets;
    size_t nbuckets;
    size_t count;
    /* Bumped by every drop: a verification that read the store under an
     * older generation does not fill the cache. */
    uint64_t generation;
    /* Serialises "count the user's live keys, then create one", so the
     * per-user cap holds under concurrent requests. */
    pthread_mutex_t create_lock;
    atomic_uint_fast64_t argon2_runs;
    struct route rows[AUTH_ROUTES];
};

/* A new API key for user_id named name, with the context's Argon2
 * parameters (a NULL a takes the defaults).  The full key goes to
 * key_out (AUTH_KEY_OUT_SIZE bytes); *row (may be NULL) receives the
 * stored row (hash included).  AUTH_ETOOMANY when the user already holds
 * AUTH_KEYS_PER_USER_MAX live keys. */
int auth_key_create(struct server *srv, struct auth *a, const char *user_id, const char *name,
                    char *key_out, size_t key_out_len, struct store_key *row);

/* Fills the route rows of a. */
void auth_handlers_init(struct auth *a);

#endif
