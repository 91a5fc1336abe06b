/*
 * What both sides of the desktop module check and write without GLib:
 * the text checks, the log line, and the 0600 credentials file that is the
 * fallback when the keyring is unavailable (desktop.h says when).  The
 * helper reads and writes the file; the daemon's side only checks text.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spell/config.h>
#include <spell/errors.h>
#include <spell/utf8.h>

#include "desktop-int.h"

void desktop_log(const char *fmt, ...)
{
    char line[DESKTOP_LOG_LINE_MAX];
    int n = snprintf(line, sizeof line, "spell-agent: ");
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

char *desktop_text_dup(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    char *out;
    size_t i = 0;

    /* Cut at max bytes, then back off to the start of a character so the
     * cut never leaves half of one behind. */
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    out = malloc(n + 1);
    if (!out)
        return NULL;
    memcpy(out, s, n);
    out[n] = '\0';
    while (i < n) {
        size_t ok = spell_utf8_scan(out + i, n - i, NULL);
        i += ok;
        if (i < n)
            out[i++] = '?';
    }
    return out;
}

bool cred_text_ok(const char *s, size_t len, size_t max)
{
    if (!s || len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return spell_utf8_valid(s, len);
}


/* ---- the file fallback ---- */

int credfile_path(const char *dir, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/%s", dir, DESKTOP_CRED_FILE_NAME);
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen)
            out[0] = '\0';
        return SPELL_ETOOBIG;
    }
    return SPELL_OK;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int credfile_parse(const char *text, size_t len, struct credfile *out,
                   char *err, size_t errlen)
{
    int rc = SPELL_ETOOBIG;
    size_t pos = 0;
    int lineno = 0;
    bool seen_server = false, seen_account = false, seen_token = false;

    memset(out, 0, sizeof *out);
    if (len > DESKTOP_CRED_FILE_MAX) {
        spell_errf(err, errlen, "the file is larger than %d bytes", DESKTOP_CRED_FILE_MAX);
        goto out;
    }
    rc = SPELL_EPARSE;
    if (memchr(text, '\0', len)) {
        spell_errf(err, errlen, "the file holds a NUL byte");
        goto out;
    }
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        size_t k = 0, kend, v, vend;
        char *dst;
        size_t dstmax;
        bool *seen;

        pos += n + (nl ? 1 : 0);
        lineno++;
        while (k < n && is_blank(line[k]))
            k++;
        if (k == n || line[k] == '#')
            continue;
        kend = k;
        while (kend < n && line[kend] != '=' && !is_blank(line[kend]))
            kend++;
        v = kend;
        while (v < n && is_blank(line[v]))
            v++;
        if (v == n || line[v] != '=') {
            spell_errf(err, errlen, "line %d: expected 'key = value'", lineno);
            goto out;
        }
        v++;
        while (v < n && is_blank(line[v]))
            v++;
        vend = n;
        while (vend > v && is_blank(line[vend - 1]))
            vend--;

        if (kend - k == 6 && memcmp(line + k, "server", 6) == 0) {
            dst = out->server, dstmax = DESKTOP_URL_MAX, seen = &seen_server;
        } else if (kend - k == 7 && memcmp(line + k, "account", 7) == 0) {
            dst = out->account, dstmax = DESKTOP_ACCOUNT_MAX, seen = &seen_account;
        } else if (kend - k == 5 && memcmp(line + k, "token", 5) == 0) {
            dst = out->token, dstmax = DESKTOP_TOKEN_MAX, seen = &seen_token;
        } else {
            spell_errf(err, errlen, "line %d: unknown key", lineno);
            goto out;
        }
        if (*seen) {
            spell_errf(err, errlen, "line %d: %.*s given twice", lineno, (int)(kend - k),
                       line + k);
            goto out;
        }
        if (!cred_text_ok(line + v, vend - v, dstmax)) {
            spell_errf(err, errlen, "line %d: bad value for %.*s", lineno, (int)(kend - k),
                       line + k);
            goto out;
        }
        memcpy(dst, line + v, vend - v);
        dst[vend - v] = '\0';
        *seen = true;
    }
    if (!seen_server || !seen_account || !seen_token) {
        spell_errf(err, errlen, "the file lacks a %s line",
                   !seen_server ? "server" : !seen_account ? "account" : "token");
        goto out;
    }
    rc = SPELL_OK;
out:
    if (rc != SPELL_OK)
        explicit_bzero(out, sizeof *out);
    return rc;
}

int credfile_read(const char *path, struct credfile *out, char *err, size_t errlen)
{
    int rc = SPELL_EIO;
    int fd = -1;
    struct stat st;
    char *text = NULL;
    size_t len = 0;

    memset(out, 0, sizeof *out);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT) {
            rc = SPELL_ENOTFOUND;
        } else if (errno == ELOOP) {
            rc = SPELL_EVERIFY;
            spell_errf(err, errlen, "%s is a symbolic link; refusing it", path);
        } else {
            spell_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        }
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        spell_errf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    rc = SPELL_EVERIFY;
    if (!S_ISREG(st.st_mode)) {
        spell_errf(err, errlen, "%s is not a regular file; refusing it", path);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        spell_errf(err, errlen, "%s is not owned by you; refusing it", path);
        goto out;
    }
    if ((st.st_mode & 07777) != 0600) {
        spell_errf(err, errlen, "%s has mode %04o, not 0600; refusing it (chmod 600 it)",
                   path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    rc = SPELL_ETOOBIG;
    if (st.st_size > DESKTOP_CRED_FILE_MAX) {
        spell_errf(err, errlen, "%s is larger than %d bytes", path, DESKTOP_CRED_FILE_MAX);
        goto out;
    }
    rc = SPELL_ENOMEM;
    /* One byte more than the cap, to notice a file that grew meanwhile. */
    text = malloc(DESKTOP_CRED_FILE_MAX + 1);
    if (!text)
        goto out;
    rc = SPELL_EIO;
    for (;;) {
        ssize_t got = read(fd, text + len, DESKTOP_CRED_FILE_MAX + 1 - len);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            spell_errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        len += (size_t)got;
        if (len == DESKTOP_CRED_FILE_MAX + 1)
            break;
    }
    {
        char why[160];
        rc = credfile_parse(text, len, out, why, sizeof why);
        if (rc != SPELL_OK)
            spell_errf(err, errlen, "%s: %s", path, why);
    }
out:
    if (text) {
        explicit_bzero(text, DESKTOP_CRED_FILE_MAX + 1);
        free(text);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int credfile_write(const char *dir, const char *server, const char *account,
                   const char *token, char *path, size_t pathlen,
                   char *err, size_t errlen)
{
    int rc = SPELL_EINVAL;
    int fd = -1;
    char tmp[PATH_MAX];
    bool tmp_made = false;
    /* server = ... / account = ... / token = ...: the three capped values and
     * their keys. */
    char text[DESKTOP_URL_MAX + DESKTOP_ACCOUNT_MAX + DESKTOP_TOKEN_MAX + 64];
    int len = 0;
    unsigned char rnd[8];

    if (!cred_text_ok(server, strlen(server), DESKTOP_URL_MAX) ||
        !cred_text_ok(account, strlen(account), DESKTOP_ACCOUNT_MAX) ||
        !cred_text_ok(token, strlen(token), DESKTOP_TOKEN_MAX)) {
        spell_errf(err, errlen, "refusing to write a malformed credential");
        goto out;
    }
    if ((rc = credfile_path(dir, path, pathlen)) != SPELL_OK) {
        spell_errf(err, errlen, "the credentials path is too long");
        goto out;
    }
    if ((rc = spell_path_mkdir_private(dir, err, errlen)) != SPELL_OK)
        goto out;
    rc = SPELL_EIO;
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        spell_errf(err, errlen, "getrandom: %s", strerror(errno));
        goto out;
    }
    len = snprintf(tmp, sizeof tmp, "%s/.%s.%02x%02x%02x%02x%02x%02x%02x%02x", dir,
                   DESKTOP_CRED_FILE_NAME, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
                   rnd[6], rnd[7]);
    if (len < 0 || (size_t)len >= sizeof tmp) {
        rc = SPELL_ETOOBIG;
        spell_errf(err, errlen, "the credentials path is too long");
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        spell_errf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    tmp_made = true;
    /* The umask may have taken bits away; never added any, but say 0600 to
     * be exact. */
    if (fchmod(fd, 0600) != 0) {
        spell_errf(err, errlen, "cannot chmod %s: %s", tmp, strerror(errno));
        goto out;
    }
    len = snprintf(text, sizeof text, "server = %s\naccount = %s\ntoken = %s\n", server,
                   account, token);
    if (len < 0 || (size_t)len >= sizeof text) {
        rc = SPELL_ETOOBIG;
        goto out;
    }
    if (write_all(fd, text, (size_t)len) != 0 || fsync(fd) != 0) {
        spell_errf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        spell_errf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        spell_errf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    tmp_made = false;
    rc = SPELL_OK;
out:
    explicit_bzero(text, sizeof text);
    if (fd >= 0)
        close(fd);
    if (tmp_made)
        unlink(tmp);
    return rc;
}
