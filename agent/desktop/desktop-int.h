/*
 * Inside the desktop module: what the daemon's side (desktop.c) and the
 * desktop helper (spell-agent-desktop: helper.c, credstore.c, notify.c)
 * share.  Nothing here needs GLib, so the daemon links none of it.
 * Nothing outside agent/desktop/ and its tests includes this.
 *
 * The wire between the two is a SOCK_SEQPACKET socketpair: one message
 * per packet, never more than WIRE_MSG_MAX bytes, each a fixed-size struct
 * below whose size, type and version are checked before anything in it is
 * read, and whose strings must end inside their arrays.  Bump
 * WIRE_VERSION when any of these structs changes.
 *
 *   daemon -> helper   WIRE_HELLO   once, first: the configuration
 *                      WIRE_CRED    a credential request (load/save/remove)
 *                      WIRE_NOTE    a notification
 *   helper -> daemon   WIRE_RESULT  the answer to one WIRE_CRED, in order
 *                      WIRE_NOTES_OFF  no notification server answers
 *
 * Secrets (SPELL_API_KEY, a token to save, a loaded token) travel only in
 * these messages; every buffer that held one is wiped.
 */
#ifndef AGENT_DESKTOP_INT_H
#define AGENT_DESKTOP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "desktop.h"

/* The longest API URL the module takes, as core's config does. */
#define DESKTOP_URL_MAX 2048
/* One log line is cut to this many bytes. */
#define DESKTOP_LOG_LINE_MAX 512
/* The credentials file's name inside config_dir. */
#define DESKTOP_CRED_FILE_NAME "credentials"
/* The longest application name. */
#define DESKTOP_APP_NAME_MAX 255

/* The helper finds its end of the socketpair at this descriptor. */
#define DESKTOP_HELPER_FD 3
/* The argument the daemon passes to the helper, so that running it by
 * hand says what it is instead of waiting on a descriptor. */
#define DESKTOP_HELPER_ARG "--desktop-helper"

#define WIRE_VERSION 1u
/* No message is larger; a bigger packet is refused. */
#define WIRE_MSG_MAX (16 * 1024)

enum wire_type {
    WIRE_HELLO = 1,
    WIRE_CRED = 2,
    WIRE_NOTE = 3,
    WIRE_RESULT = 4,
    WIRE_NOTES_OFF = 5,
};

enum cred_op {
    CRED_LOAD,
    CRED_SAVE,
    CRED_REMOVE,
};

struct wire_hdr {
    uint32_t type;
    uint32_t version;
};

struct wire_hello {
    struct wire_hdr h;
    uint8_t no_plaintext;
    uint8_t notifications;
    uint8_t has_config_dir;
    int32_t keyring_timeout_ms;
    char api_url[DESKTOP_URL_MAX + 1];
    char config_dir[DESKTOP_PATH_MAX + 1];
    /* Empty when there is none. */
    char env_api_key[DESKTOP_TOKEN_MAX + 1];
    char app_name[DESKTOP_APP_NAME_MAX + 1];
};

struct wire_cred {
    struct wire_hdr h;
    uint32_t id;
    uint32_t op;
    /* Save only; empty otherwise. */
    char token[DESKTOP_TOKEN_MAX + 1];
    char account[DESKTOP_ACCOUNT_MAX + 1];
};

struct wire_note {
    struct wire_hdr h;
    int32_t urgency;
    int32_t timeout_ms;
    char summary[DESKTOP_NOTE_SUMMARY_MAX + 1];
    char body[DESKTOP_NOTE_BODY_MAX + 1];
    char icon[DESKTOP_PATH_MAX + 1];
    uint8_t has_body;
};

struct wire_result {
    struct wire_hdr h;
    uint32_t id;
    int32_t rc;
    uint32_t source;
    uint8_t keyring_available;
    uint8_t removed;
    char token[DESKTOP_TOKEN_MAX + 1];
    char account[DESKTOP_ACCOUNT_MAX + 1];
    char path[DESKTOP_PATH_MAX + 1];
    char message[256];
};

/* wire.c */

/* Whether len bytes at msg are a well-formed message of type `type`
 * (size, header, every string ending inside its array and holding what
 * the field may hold, every number in range).  why receives the reason
 * when not. */
bool wire_hello_ok(const void *msg, size_t len, char *why, size_t whylen);
bool wire_cred_ok(const void *msg, size_t len, char *why, size_t whylen);
bool wire_note_ok(const void *msg, size_t len, char *why, size_t whylen);
bool wire_result_ok(const void *msg, size_t len, char *why, size_t whylen);

/* The type in a message's header, or 0 when it is too short for one or
 * of another version. */
uint32_t wire_type_of(const void *msg, size_t len);

/* Sends one message, retrying on EINTR; MSG_NOSIGNAL.  0, or -1 with
 * errno (EAGAIN on a non-blocking socket that is full). */
int wire_send(int fd, const void *msg, size_t len);

/* Receives one message into buf (WIRE_MSG_MAX bytes).  The length; 0 at
 * end of file; -1 with errno (EAGAIN when none waits); -2 for a packet
 * larger than WIRE_MSG_MAX (consumed and dropped). */
long wire_recv(int fd, void *buf, bool nonblock);

/* credfile.c: text checks, the log and the 0600 file fallback */

/* Writes one line "spell-agent: <text>" to stderr in a single write. */
void desktop_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies at most max bytes of s into a new string, replacing each byte of
 * an ill-formed UTF-8 sequence with '?' and never cutting a character in
 * two.  NULL when out of memory. */
char *desktop_text_dup(const char *s, size_t max);

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

#endif
