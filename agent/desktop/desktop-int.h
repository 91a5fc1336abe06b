/*
 * Inside the desktop module: the state shared by desktop.c (the thread,
 * the queues, the eventfd), credstore.c (keyring and file fallback) and
 * notify.c (libnotify).  Nothing outside agent/desktop/ and its tests
 * includes this.
 *
 * Threads: the daemon's thread calls the public functions, which only take
 * `lock`, append to a queue and wake the desktop thread by attaching an
 * idle source to its context.  Every field marked "desktop thread only" is
 * read and written by the desktop thread alone; the fields marked "under
 * lock" by both.
 */
#ifndef AGENT_DESKTOP_INT_H
#define AGENT_DESKTOP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gio/gio.h>

#include "desktop.h"

/* The longest API URL the module takes, as core's config does. */
#define DESKTOP_URL_MAX 2048
/* One log line is cut to this many bytes. */
#define DESKTOP_LOG_LINE_MAX 512
/* The credentials file's name inside config_dir. */
#define DESKTOP_CRED_FILE_NAME "credentials"

enum cred_op {
    CRED_LOAD,
    CRED_SAVE,
    CRED_REMOVE,
};

struct cred_req {
    struct cred_req *next;
    enum cred_op op;
    desktop_cred_done_fn done;
    void *ud;
    /* Save: what to store; wiped when the request is freed. */
    char token[DESKTOP_TOKEN_MAX + 1];
    char account[DESKTOP_ACCOUNT_MAX + 1];
    /* What the done callback receives. */
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

struct desktop {
    /* Copies of the configuration; env_api_key is wiped on stop. */
    char *api_url;
    char *config_dir;
    char *env_api_key;
    char *app_name;
    bool no_plaintext;
    bool notifications;
    int keyring_timeout_ms;

    /* Readable when done requests wait for desktop_dispatch(). */
    int efd;
    pthread_t thread;
    bool thread_started;
    /* The desktop thread's context; made by desktop_start(), pushed as the
     * thread-default context inside the thread, unreffed by desktop_stop(). */
    GMainContext *ctx;

    pthread_mutex_t lock;
    /* Under lock: requests not yet started, oldest first. */
    struct cred_req *req_head, *req_tail;
    /* Under lock: finished requests waiting for desktop_dispatch(). */
    struct cred_req *done_head, *done_tail;
    /* Under lock: every request accepted and not yet dispatched or
     * discarded; capped at DESKTOP_CRED_QUEUE_MAX. */
    int nreq;
    /* Under lock: a ring of waiting notes. */
    struct note *notes[DESKTOP_NOTE_QUEUE_MAX];
    int note_first, note_count;
    /* Under lock: whether a drop was already logged since the queue last
     * emptied. */
    bool note_drop_logged;
    /* Under lock: whether an idle source is already attached to ctx. */
    bool wake_pending;
    /* Under lock: set by desktop_stop(). */
    bool stopping;

    /* Desktop thread only: the request in flight. */
    struct cred_req *cur;
    /* Desktop thread only: cancels the keyring call in flight. */
    GCancellable *cancel;
    /* Desktop thread only: the timeout source of that call. */
    GSource *timeout;
    /* Desktop thread only: what the keyring did last, and since when (in
     * g_get_monotonic_time() microseconds) it is known to be down. */
    enum keyring_state keyring;
    int64_t keyring_down_since;
    /* Desktop thread only: the reason the keyring was last found down. */
    char keyring_reason[200];
    /* Desktop thread only: libnotify state. */
    bool notify_inited;
    bool notify_dead;
    bool notify_markup;

    /* Whether notifications are on and have not failed; read from any
     * thread. */
    atomic_bool notes_ok;
};

/* desktop.c */

/* Writes one line "spell-agent: <text>" to stderr in a single write. */
void desktop_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Desktop thread: hands r (== d->cur) to the dispatch queue, signals the
 * eventfd and lets the next request start. */
void desktop_finish(struct desktop *d, struct cred_req *r);

/* Whether desktop_stop() has been called. */
bool desktop_stopping(struct desktop *d);

/* Copies at most max bytes of s into a new string, replacing each byte of
 * an ill-formed UTF-8 sequence with '?' and never cutting a character in
 * two.  NULL when out of memory. */
char *desktop_text_dup(const char *s, size_t max);

/* credstore.c */

/* Desktop thread: starts the request d->cur; it ends in desktop_finish(),
 * perhaps before this returns. */
void cred_begin(struct desktop *d, struct cred_req *r);

/* Desktop thread: drops libsecret's connection on the way out. */
void cred_thread_exit(struct desktop *d);

/* Whether s (len bytes) is a token, login or URL the module accepts:
 * 1..max bytes of well-formed UTF-8 without NUL, whitespace or control
 * characters. */
bool cred_text_ok(const char *s, size_t len, size_t max);

/* The fields of a credentials file. */
struct credfile {
    char server[DESKTOP_URL_MAX + 1];
    char account[DESKTOP_ACCOUNT_MAX + 1];
    char token[DESKTOP_TOKEN_MAX + 1];
};

/* Parses the text of a credentials file (len bytes; may hold NUL bytes,
 * which are refused).  SPELL_ETOOBIG over DESKTOP_CRED_FILE_MAX,
 * SPELL_EPARSE for anything malformed (the line named in err).  On
 * failure out is wiped. */
int credfile_parse(const char *text, size_t len, struct credfile *out,
                   char *err, size_t errlen);

/* Reads and parses the file at path after checking it is a regular file
 * (not a symlink), owned by the effective user, mode exactly 0600.
 * SPELL_ENOTFOUND when it does not exist, SPELL_EVERIFY for the checks,
 * SPELL_EIO, or the rc of credfile_parse(). */
int credfile_read(const char *path, struct credfile *out, char *err, size_t errlen);

/* Writes the credentials file inside dir (made private with 0700 when
 * missing) through a fresh 0600 temporary file renamed over it.  path
 * receives the file's path (pathlen bytes). */
int credfile_write(const char *dir, const char *server, const char *account,
                   const char *token, char *path, size_t pathlen,
                   char *err, size_t errlen);

/* Writes "<dir>/credentials" into out.  SPELL_ETOOBIG when it does not
 * fit. */
int credfile_path(const char *dir, char *out, size_t outlen);

/* notify.c */

/* Desktop thread: shows n (or drops it when notifications are off or
 * dead).  Takes no ownership. */
void notes_show(struct desktop *d, const struct note *n);

/* Desktop thread: undoes notify_init() on the way out. */
void notes_thread_exit(struct desktop *d);

/* Frees a note and its strings; NULL is a no-op. */
void note_free(struct note *n);

#endif
