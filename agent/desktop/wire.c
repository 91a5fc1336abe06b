/*
 * The messages between the daemon and the desktop helper (desktop-int.h
 * describes them): one packet each on a SOCK_SEQPACKET socketpair, checked
 * field by field before use.  Each side checks what the other sends: the
 * helper is the part that talks to D-Bus, so the daemon trusts nothing it
 * says beyond what these checks let through.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <spell/errors.h>
#include <spell/utf8.h>

#include "desktop-int.h"

uint32_t wire_type_of(const void *msg, size_t len)
{
    struct wire_hdr h;

    if (len < sizeof h)
        return 0;
    memcpy(&h, msg, sizeof h);
    return h.version == WIRE_VERSION ? h.type : 0;
}

/* Whether a fixed array holds a string: a NUL inside it. */
static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

/* Empty, or a token/login/URL cred_text_ok() accepts. */
static bool empty_or_text(const char *s, size_t cap, size_t max)
{
    return terminated(s, cap) && (!s[0] || cred_text_ok(s, strlen(s), max));
}

/* Well-formed UTF-8 without control characters other than tab and
 * newline: text for a log line or a message. */
static bool plain_text(const char *s, size_t cap)
{
    size_t n;

    if (!terminated(s, cap))
        return false;
    n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
            return false;
    }
    return spell_utf8_valid(s, n);
}

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), false)

static bool header_ok(const void *msg, size_t len, size_t want, uint32_t type, char *why,
                      size_t whylen)
{
    if (len != want)
        return WHY("a message of %zu bytes where %zu were due", len, want);
    if (wire_type_of(msg, len) != type)
        return WHY("a message of another type or version");
    return true;
}

bool wire_hello_ok(const void *msg, size_t len, char *why, size_t whylen)
{
    const struct wire_hello *m = msg;

    if (!header_ok(msg, len, sizeof *m, WIRE_HELLO, why, whylen))
        return false;
    if (m->no_plaintext > 1 || m->notifications > 1 || m->has_config_dir > 1 ||
        m->keyring_timeout_ms <= 0)
        return WHY("a flag out of range");
    if (!terminated(m->api_url, sizeof m->api_url) ||
        !cred_text_ok(m->api_url, strlen(m->api_url), DESKTOP_URL_MAX))
        return WHY("a malformed API URL");
    if (!plain_text(m->config_dir, sizeof m->config_dir) ||
        (m->has_config_dir && m->config_dir[0] != '/'))
        return WHY("a malformed config dir");
    if (!empty_or_text(m->env_api_key, sizeof m->env_api_key, DESKTOP_TOKEN_MAX))
        return WHY("a malformed SPELL_API_KEY");
    if (!plain_text(m->app_name, sizeof m->app_name) || !m->app_name[0])
        return WHY("a malformed application name");
    return true;
}

bool wire_cred_ok(const void *msg, size_t len, char *why, size_t whylen)
{
    const struct wire_cred *m = msg;

    if (!header_ok(msg, len, sizeof *m, WIRE_CRED, why, whylen))
        return false;
    if (m->op > CRED_REMOVE)
        return WHY("an unknown credential operation");
    if (!empty_or_text(m->token, sizeof m->token, DESKTOP_TOKEN_MAX) ||
        !empty_or_text(m->account, sizeof m->account, DESKTOP_ACCOUNT_MAX))
        return WHY("a malformed token or login");
    if ((m->op == CRED_SAVE) != (m->token[0] != '\0') ||
        (m->op == CRED_SAVE) != (m->account[0] != '\0'))
        return WHY("a token or login where none belongs, or none where one does");
    return true;
}

bool wire_note_ok(const void *msg, size_t len, char *why, size_t whylen)
{
    const struct wire_note *m = msg;

    if (!header_ok(msg, len, sizeof *m, WIRE_NOTE, why, whylen))
        return false;
    if (m->urgency < DESKTOP_URGENCY_LOW || m->urgency > DESKTOP_URGENCY_CRITICAL ||
        m->timeout_ms < -1 || m->has_body > 1)
        return WHY("a number out of range");
    if (!plain_text(m->summary, sizeof m->summary) || !m->summary[0] ||
        !plain_text(m->body, sizeof m->body) || !plain_text(m->icon, sizeof m->icon))
        return WHY("malformed text");
    return true;
}

bool wire_result_ok(const void *msg, size_t len, char *why, size_t whylen)
{
    const struct wire_result *m = msg;

    if (!header_ok(msg, len, sizeof *m, WIRE_RESULT, why, whylen))
        return false;
    if (m->rc > 0 || (m->rc < SPELL_EABORT && m->rc != DESKTOP_ENOPLAINTEXT) ||
        m->source > DESKTOP_CRED_ENV || m->keyring_available > 1 || m->removed > 1)
        return WHY("a number out of range");
    if (!empty_or_text(m->token, sizeof m->token, DESKTOP_TOKEN_MAX) ||
        !empty_or_text(m->account, sizeof m->account, DESKTOP_ACCOUNT_MAX))
        return WHY("a malformed token or login");
    if (!plain_text(m->path, sizeof m->path) || !plain_text(m->message, sizeof m->message))
        return WHY("malformed text");
    return true;
}

int wire_send(int fd, const void *msg, size_t len)
{
    for (;;) {
        if (send(fd, msg, len, MSG_NOSIGNAL) == (ssize_t)len)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

long wire_recv(int fd, void *buf, bool nonblock)
{
    for (;;) {
        /* MSG_TRUNC: the packet's real length, so that an oversized one is
         * seen as such and not read as a cut message. */
        ssize_t n = recv(fd, buf, WIRE_MSG_MAX, MSG_TRUNC | (nonblock ? MSG_DONTWAIT : 0));

        if (n < 0 && errno == EINTR)
            continue;
        if (n > WIRE_MSG_MAX)
            return -2;
        return (long)n;
    }
}
