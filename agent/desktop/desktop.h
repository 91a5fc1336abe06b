/*
 * The agent's desktop side: the credential in the Secret Service (libsecret)
 * with its fallbacks, and desktop notifications (libnotify).
 *
 * GLib, libsecret and libnotify block, keep their own state and start
 * threads of their own, so none of them runs in the daemon's process.
 * desktop_start() starts the desktop helper, spell-agent-desktop, a small
 * program that owns every GLib object (libsecret calls, notify_init and
 * every NotifyNotification) and speaks to the daemon over a socketpair.
 * Data flows like this:
 *
 *   daemon loop --desktop_cred_load/save/remove, desktop_notify--> one
 *   message each on the socket (a bounded outbox while the socket is full)
 *   --> helper (async libsecret with a GCancellable and a timeout source;
 *   file fallback; notify) --> one result message per request --> the
 *   daemon loop sees desktop_fd() readable --> desktop_dispatch() checks
 *   each result and runs the done callbacks.
 *
 * So every done callback runs in the thread that calls desktop_dispatch(),
 * and no call here ever waits for D-Bus or for the helper.  Requests are
 * served one at a time, in the order they were made; notes queued before
 * a request are tried before it starts.
 *
 * The helper: started at desktop_start(); exits when the daemon closes the
 * socket or dies (PR_SET_PDEATHSIG); restarted with a backoff when it dies
 * or sends anything malformed (it is then killed).  Requests it held, and
 * requests made while it is down, complete with SPELL_EIO and a message
 * saying the helper stopped; notes are dropped meanwhile (logged once per
 * outage).  Secrets (SPELL_API_KEY, tokens) reach it only over the socket,
 * never through argv or the environment.
 *
 * Credentials (DESIGN.md §4, docs/agent.md).  The keyring item uses the
 * libsecret schema "io.spell.Credential" with the string attributes
 * "server" (the API URL) and "account" (the login), is stored in the
 * default collection with the label "Spell API key for <account> at
 * <server>", and is looked up by "server" alone.
 *
 * The keyring counts as unavailable when there is no session bus, no
 * Secret Service on it, it answers with an error, or it does not answer
 * within keyring_timeout_ms (a locked keyring on a headless machine waits
 * for a prompt nobody sees).  The first time it is found unavailable the
 * module says so once on stderr; every result served by a fallback for
 * that reason carries the same sentence in its message, so a caller can
 * show it where it answers.  The verdict is remembered for
 * DESKTOP_KEYRING_RETRY_S seconds, so later requests do not each wait for
 * the timeout again; afterwards the keyring is tried again (and a recovery
 * is logged once as well).
 *
 * Which source wins on load:
 *   1. the keyring, when it is reachable and holds an item for api_url;
 *   2. otherwise env_api_key (SPELL_API_KEY), when set: source ENV; it is
 *      never saved anywhere;
 *   3. otherwise, only when the keyring is unavailable (never merely
 *      because it holds no item) and no_plaintext is false, the file
 *      <config_dir>/credentials: source FILE;
 *   4. otherwise nothing: rc SPELL_OK, source NONE (signed out).
 * Save first clears the keyring items for api_url (one login per server),
 * then stores the new one; a credentials file left for the same server by
 * an earlier fallback is then deleted.  When the keyring is unavailable it
 * writes the file instead, or (no_plaintext) fails with
 * DESKTOP_ENOPLAINTEXT.  Remove deletes the
 * keyring item (when the keyring is reachable) and the file (when it
 * exists), and reports whether anything was removed.
 *
 * The file fallback: mode 0600, inside config_dir (created 0700 when
 * missing), written to a fresh temporary file (O_CREAT | O_EXCL |
 * O_NOFOLLOW, 0600) that is renamed over the old one.  Its content is
 * three lines, in any order, each exactly once:
 *     server = <api url>
 *     account = <login>
 *     token = <token>
 * Blank lines and lines starting with '#' are allowed; anything else, a
 * file over DESKTOP_CRED_FILE_MAX bytes, a NUL byte, a file that is not a
 * regular file, not owned by the user or whose mode is not exactly 0600 is
 * refused (SPELL_EVERIFY for ownership and mode, SPELL_EPARSE for content,
 * SPELL_ETOOBIG for size), with the path and the reason in message.  A file
 * that names another server than api_url counts as absent.
 *
 * Tokens are wiped (explicit_bzero) from every buffer this module owns as
 * soon as they are no longer needed, the result struct included once the
 * done callback has returned.  No token is ever written to a log line or a
 * message.
 *
 * Notifications are fire and forget.  notify_init() runs once in the
 * helper.  When no notification server answers (no session bus,
 * nobody owning org.freedesktop.Notifications, or a show fails), the module
 * logs one line and goes silent for good: later notes are dropped without
 * another try.  At most DESKTOP_NOTE_QUEUE_MAX notes wait; past that the
 * oldest is dropped (logged once per burst).  Text that is not UTF-8 has
 * its bad bytes replaced with '?', control characters other than newline
 * and tab in the body are replaced with spaces, and over-long text is cut
 * at a character boundary.
 */
#ifndef AGENT_DESKTOP_H
#define AGENT_DESKTOP_H

#include <stdbool.h>

/* A token (API key or session token) may be at most this many bytes;
 * the same cap as SPELL_API_KEY (SPELL_CONFIG_KEY_MAX). */
#define DESKTOP_TOKEN_MAX 1024
/* A login may be at most this many bytes. */
#define DESKTOP_ACCOUNT_MAX 255
/* A path in a result may be at most this many bytes (PATH_MAX - 1). */
#define DESKTOP_PATH_MAX 4095
/* The credentials file may be at most this many bytes. */
#define DESKTOP_CRED_FILE_MAX (16 * 1024)
/* At most this many credential requests may wait for their answers. */
#define DESKTOP_CRED_QUEUE_MAX 16
/* At most this many notes may wait to be shown; older ones are dropped. */
#define DESKTOP_NOTE_QUEUE_MAX 64
/* Summary and body of a note are cut to these many bytes. */
#define DESKTOP_NOTE_SUMMARY_MAX 256
#define DESKTOP_NOTE_BODY_MAX 4096
/* The default wait for the Secret Service, in milliseconds. */
#define DESKTOP_KEYRING_TIMEOUT_MS 3000
/* How long an "unavailable" verdict on the keyring is kept, in seconds. */
#define DESKTOP_KEYRING_RETRY_S 60

/* Failures of this module beyond enum spell_rc (which it also returns). */
enum desktop_rc {
    /* The keyring is unavailable and the file fallback is refused
     * (no_plaintext); the daemon answers -32011. */
    DESKTOP_ENOPLAINTEXT = -100,
};

struct desktop;

struct desktop_config {
    /* The API URL: the keyring item's "server" attribute and the file's
     * server line.  Required; copied. */
    const char *api_url;
    /* The directory of the file fallback, $XDG_CONFIG_HOME/spell (from
     * spell_path_config_dir()); NULL disables the file fallback.  Copied. */
    const char *config_dir;
    /* SPELL_API_KEY from the daemon's environment, or NULL.  Copied, and
     * wiped when the desktop stops. */
    const char *env_api_key;
    /* Refuse the plaintext file fallback (--no-plaintext). */
    bool no_plaintext;
    /* How long to wait for the Secret Service; 0 means
     * DESKTOP_KEYRING_TIMEOUT_MS. */
    int keyring_timeout_ms;
    /* Whether to show notifications at all; when false desktop_notify()
     * drops every note and no D-Bus connection is made for them. */
    bool notifications;
    /* The application name given to notify_init(); NULL means
     * "spell-agent".  Copied. */
    const char *app_name;
    /* The helper to run; NULL means spell-agent-desktop beside the
     * running executable, else in the install's libexec directory.
     * Copied. */
    const char *helper_path;
};

enum desktop_cred_source {
    DESKTOP_CRED_NONE,
    DESKTOP_CRED_KEYRING,
    DESKTOP_CRED_FILE,
    DESKTOP_CRED_ENV,
};

/* "none", "keyring", "file", "env" (the words of docs/agent.md). */
const char *desktop_cred_source_name(enum desktop_cred_source s);

struct desktop_cred_result {
    /* SPELL_OK, DESKTOP_ENOPLAINTEXT or a negative enum spell_rc. */
    int rc;
    /* Load: where the credential came from (NONE when there is none).
     * Save: where it was stored.  Remove: NONE. */
    enum desktop_cred_source source;
    /* Whether the Secret Service answered during this request. */
    bool keyring_available;
    /* Remove: whether a keyring item or the file was deleted. */
    bool removed;
    /* Load: the token, NUL-terminated; empty otherwise.  Wiped when the
     * done callback returns: copy it if you keep it. */
    char token[DESKTOP_TOKEN_MAX + 1];
    /* Load and save: the login the credential belongs to; may be empty for
     * an ENV credential (the daemon learns it from GET /v1/auth/me). */
    char account[DESKTOP_ACCOUNT_MAX + 1];
    /* The credentials file, when source is FILE or a file was refused. */
    char path[DESKTOP_PATH_MAX + 1];
    /* A sentence for the log or the user, empty when there is nothing to
     * say: why the keyring was skipped, why a file was refused. */
    char message[256];
};

/* Called in the thread that runs desktop_dispatch(), exactly once per
 * accepted request, unless desktop_stop() comes first. */
typedef void (*desktop_cred_done_fn)(void *ud, const struct desktop_cred_result *r);

/* Starts the desktop helper.  SPELL_EINVAL for a missing api_url or an
 * over-long string, SPELL_ENOMEM, SPELL_ENOTFOUND when the helper is not
 * an executable, SPELL_EIO when the descriptors cannot be made.  A helper
 * that fails to start is tried again as after a death.  No D-Bus traffic
 * happens before the first request. */
int desktop_start(const struct desktop_config *cfg, struct desktop **out);

/* An fd that polls readable when desktop_dispatch() has work: results or
 * messages from the helper, room on the socket for waiting messages, a
 * restart that is due (an epoll descriptor, close-on-exec, the same for
 * the desktop's life; owned by the desktop). */
int desktop_fd(struct desktop *d);

/* Reads the helper's messages, writes waiting ones, restarts the helper
 * when due, and runs every ready done callback, in request order.
 * Callbacks may make new requests. */
void desktop_dispatch(struct desktop *d);

/* Queues a load of the credential for api_url.  SPELL_OK when accepted,
 * SPELL_ETOOBIG past DESKTOP_CRED_QUEUE_MAX waiting requests, SPELL_EINVAL
 * for a NULL argument. */
int desktop_cred_load(struct desktop *d, desktop_cred_done_fn done, void *ud);

/* Queues a save of token (the credential for api_url) for the login
 * account.  Both are copied at once (the caller may wipe its token when
 * this returns).  SPELL_EINVAL for an empty or over-long token or account,
 * or one holding whitespace or control characters; SPELL_ETOOBIG as for
 * load. */
int desktop_cred_save(struct desktop *d, const char *token, const char *account,
                      desktop_cred_done_fn done, void *ud);

/* Queues a removal of the credential for api_url from the keyring and the
 * file.  As for load. */
int desktop_cred_remove(struct desktop *d, desktop_cred_done_fn done, void *ud);

enum desktop_urgency {
    DESKTOP_URGENCY_LOW,
    DESKTOP_URGENCY_NORMAL,
    /* For failures and budget problems. */
    DESKTOP_URGENCY_CRITICAL,
};

struct desktop_note {
    /* Required. */
    const char *summary;
    /* May be NULL. */
    const char *body;
    enum desktop_urgency urgency;
    /* An icon name or file path, or NULL for none. */
    const char *icon;
    /* Expiry in milliseconds; 0 means the server's default, -1 never. */
    int timeout_ms;
};

/* Queues a note (every string copied).  Fire and forget: SPELL_OK even when
 * notifications are off or the server is absent (the note is then
 * dropped); SPELL_EINVAL for a NULL or empty summary; SPELL_ENOMEM. */
int desktop_notify(struct desktop *d, const struct desktop_note *n);

/* Whether notifications are on and no notification server failure has been
 * seen (so far); for agent.status. */
bool desktop_notifications_available(struct desktop *d);

/* Whether the helper runs; *pid receives its pid (0 when down), *starts
 * how many helpers were started so far.  Either may be NULL. */
bool desktop_helper_info(struct desktop *d, int *pid, unsigned *starts);

/* Closes the socket (the helper cancels a keyring call in flight and
 * exits), reaps the helper (killing it if it lingers), drops pending
 * requests and notes without calling anyone, wipes every token and frees
 * d.  NULL is a no-op. */
void desktop_stop(struct desktop *d);

#endif
