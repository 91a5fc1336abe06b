/*
 * Inside the desktop helper (spell-agent-desktop): the state shared by
 * helper.c (the socket, the request queue, the main loop), credstore.c
 * (keyring and file fallback) and notify.c (libnotify).
 *
 * The helper is one process with one main loop of its own, GLib's default
 * context: everything here is touched from that loop only (GLib and GDBus
 * keep worker threads of their own, which is why this runs outside the
 * daemon).  Requests arrive on the socket in order and are served one at a
 * time; notes are shown as they arrive.
 */
#ifndef AGENT_DESKTOP_HELPER_H
#define AGENT_DESKTOP_HELPER_H

#include <stdbool.h>
#include <stdint.h>

#include <gio/gio.h>

#include "desktop-int.h"

struct cred_req {
    struct cred_req *next;
    uint32_t id;
    enum cred_op op;
    /* Save: what to store; wiped when the request is freed. */
    char token[DESKTOP_TOKEN_MAX + 1];
    char account[DESKTOP_ACCOUNT_MAX + 1];
    /* What goes back to the daemon. */
    struct desktop_cred_result res;
    /* Set by the timeout source when it cancelled the keyring call, so the
     * failure is told as a timeout rather than as a cancellation. */
    bool timed_out;
};

struct note {
    char *summary;
    char *body;
    char *icon;
    enum desktop_urgency urgency;
    int timeout_ms;
};

enum keyring_state {
    KEYRING_UNKNOWN,
    KEYRING_UP,
    KEYRING_DOWN,
};

struct helper {
    /* The configuration from WIRE_HELLO; env_api_key is wiped on exit. */
    char *api_url;
    char *config_dir;
    char *env_api_key;
    char *app_name;
    bool no_plaintext;
    bool notifications;
    int keyring_timeout_ms;

    /* The helper's end of the socketpair. */
    int sock;
    /* Set at end of file on the socket, or when it fails: the daemon is
     * gone, the helper finishes what is in flight (without answering) and
     * exits. */
    bool stopping;

    /* Requests not yet started, oldest first; with cur, at most
     * DESKTOP_CRED_QUEUE_MAX. */
    struct cred_req *req_head, *req_tail;
    int nreq;
    /* The request in flight. */
    struct cred_req *cur;
    /* Whether an idle source will start the next request. */
    bool wake_pending;
    /* Cancels the keyring call in flight. */
    GCancellable *cancel;
    /* The timeout source of that call. */
    GSource *timeout;
    /* What the keyring did last, and since when (in g_get_monotonic_time()
     * microseconds) it is known to be down. */
    enum keyring_state keyring;
    int64_t keyring_down_since;
    /* The reason the keyring was last found down. */
    char keyring_reason[200];
    /* libnotify state. */
    bool notify_inited;
    bool notify_dead;
    bool notify_markup;
};

/* helper.c */

/* Sends r's result to the daemon, frees r (wiping it) and lets the next
 * request start.  r must be h->cur. */
void helper_finish(struct helper *h, struct cred_req *r);

/* Whether the daemon has gone. */
bool helper_stopping(struct helper *h);

/* Tells the daemon that notifications are off for good. */
void helper_notes_off(struct helper *h);

/* credstore.c */

/* Starts the request h->cur; it ends in helper_finish(), perhaps before
 * this returns. */
void cred_begin(struct helper *h, struct cred_req *r);

/* Drops libsecret's connection on the way out. */
void cred_exit(struct helper *h);

/* notify.c */

/* Shows n (or drops it when notifications are off or dead).  Takes no
 * ownership. */
void notes_show(struct helper *h, const struct note *n);

/* Undoes notify_init() on the way out. */
void notes_exit(struct helper *h);

/* Frees a note and its strings; NULL is a no-op. */
void note_free(struct note *n);

#endif
