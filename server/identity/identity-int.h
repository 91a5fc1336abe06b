/*
 * Inside the identity part: the context shared by web.c and device.c, the
 * pending web-flow states, the guess counters, form parsing and the page
 * builder (identity.c).
 */
#ifndef SPELL_SERVER_IDENTITY_INT_H
#define SPELL_SERVER_IDENTITY_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "spell/buf.h"

#include "identity.h"

/* A web-flow state is 43 base62 characters (about 256 bits). */
#define IDENTITY_STATE_LEN 43
/* Longest address text kept per guess counter. */
#define IDENTITY_IP_MAX 63
/* Cap of one page. */
#define IDENTITY_PAGE_MAX ((size_t)32 * 1024)

struct id_state {
    char hash[65];              /* SHA-256 hex of the state */
    int64_t expires_at;
    /* The device grant this sign-in approves; "" for a plain web sign-in. */
    char user_code[9];
};

struct id_guess {
    char ip[IDENTITY_IP_MAX + 1];
    int64_t window_start;       /* the window ends IDENTITY_GUESS_WINDOW_MS later */
    int count;
};

struct identity {
    struct server *srv;
    pthread_mutex_t state_lock;         /* guards states and n_states */
    struct id_state *states;            /* IDENTITY_STATES_MAX slots */
    size_t n_states;
    pthread_mutex_t guess_lock;         /* guards guesses and n_guesses */
    struct id_guess *guesses;           /* IDENTITY_GUESS_MAX slots */
    size_t n_guesses;
};

/* A new state (state_out: IDENTITY_STATE_LEN + 1 bytes) remembered for
 * IDENTITY_STATE_TTL_MS, carrying user_code (NULL or "" for none).
 * SPELL_ETOOBIG when the table is full of live states. */
int identity_state_new(struct identity *id, const char *user_code, char *state_out);
/* Finds and removes a state.  SPELL_ENOTFOUND when unknown (or used),
 * SPELL_ETIMEOUT when it expired. */
int identity_state_take(struct identity *id, const char *state, char user_code_out[9]);

/* 1 when the address is past IDENTITY_GUESS_LIMIT wrong guesses in its
 * window (*retry_s: seconds until the window ends). */
int identity_guess_blocked(struct identity *id, const char *ip, int64_t *retry_s);
/* Counts one wrong guess of the address. */
void identity_guess_count(struct identity *id, const char *ip);

/* Reads field `name` of an application/x-www-form-urlencoded body into
 * out (cap bytes).  SPELL_ENOTFOUND when absent, SPELL_ETOOBIG when it
 * does not fit, SPELL_EINVAL when it decodes to a control byte. */
int identity_form_get(const char *body, size_t len, const char *name, char *out, size_t cap);

/* Appends s to b with &, <, >, " and ' escaped. */
int identity_html_escape(struct spell_buf *b, const char *s);

/* A page: title and text (both escaped here) and, after them, trusted
 * markup from this part's templates (NULL for none), with the CSP header. */
int identity_page(int status, const char *title, const char *text, const char *raw_html,
                  struct response **out);

/* The Set-Cookie value that sets (value) or clears (NULL) a cookie. */
int identity_cookie(const struct server *srv, const char *name, const char *value,
                    const char *path, int64_t max_age_s, char *out, size_t cap);
/* Finds cookie `name` in a Cookie header value (cap bytes, NUL included).
 * SPELL_ENOTFOUND when absent, SPELL_ETOOBIG when too long. */
int identity_cookie_get(const char *header, const char *name, char *out, size_t cap);

/* The public base URL without a trailing slash. */
int identity_public_url(const struct server *srv, char *out, size_t cap);

/* The GitHub authorize redirect for a new state carrying user_code (NULL
 * for a plain web sign-in), with its state cookie (web.c). */
int identity_github_redirect(struct server *srv, const char *user_code, struct response **out);

/* Handlers (web.c, device.c). */
int identity_h_github(struct request *req, struct response **out, void *ud);
int identity_h_callback(struct request *req, struct response **out, void *ud);
int identity_h_device_start(struct request *req, struct response **out, void *ud);
int identity_h_token(struct request *req, struct response **out, void *ud);
int identity_h_device_page(struct request *req, struct response **out, void *ud);
int identity_h_device_form(struct request *req, struct response **out, void *ud);

#endif
