/*
 * What app.c and rest.c share: the client's state.
 */
#ifndef SPELL_SERVER_GITHUB_IMPL_H
#define SPELL_SERVER_GITHUB_IMPL_H

#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>

#include "github.h"
#include "server.h"

struct github_token {
    char installation[GITHUB_ID_MAX + 1];   /* "" for a free slot */
    char token[GITHUB_TOKEN_MAX + 1];
    int64_t expires_ms;
    int64_t fetched_ms;
};

struct github {
    char api_url[2048];
    char app_id[GITHUB_ID_MAX + 1];
    EVP_PKEY *key;
    struct srv_clock clock;
    pthread_mutex_t mu;
    /* Guarded by mu. */
    struct github_token tokens[GITHUB_TOKEN_SLOTS];
    /* No call is sent before this time (a spent rate limit), 0 for none. */
    int64_t blocked_until_ms;
};

int64_t github_now_ms(const struct github *g);

#endif
