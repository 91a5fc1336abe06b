/*
 * Where the credential lives: the Secret Service first, then SPELL_API_KEY
 * and the 0600 file (desktop.h says which wins and when).
 *
 * Everything here runs in the desktop thread.  A request starts in
 * cred_begin(); when the keyring is worth asking, one asynchronous
 * libsecret call (or, for a save, a clear followed by a store) runs with a
 * GCancellable and a timeout source on the thread's context.  Its callback
 * decides between the keyring's answer and the fallback, fills the result
 * and ends the request with desktop_finish().  The file fallback is plain
 * POSIX I/O and finishes at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libsecret/secret.h>

#include <spell/config.h>
#include <spell/errors.h>
#include <spell/utf8.h>

#include "desktop-int.h"

/* The item's schema (DESIGN.md §4).  Items are matched on xdg:schema too,
 * so only items made by a spell client are ever read or cleared. */
static const SecretSchema cred_schema = {
    .name = "io.spell.Credential",
    .flags = SECRET_SCHEMA_NONE,
    .attributes = {
        { .name = "server", .type = SECRET_SCHEMA_ATTRIBUTE_STRING },
        { .name = "account", .type = SECRET_SCHEMA_ATTRIBUTE_STRING },
        { .name = NULL, .type = 0 },
    },
};

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

static void copy_field(char *dst, size_t dstlen, const char *src)
{
    snprintf(dst, dstlen, "%s", src);
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

/* Removes the credentials file when it holds the credential for server or
 * cannot be read as anyone's (a refused file is of no use to anybody).
 * A file for another server is left alone. */
static int credfile_remove(struct desktop *d, bool *removed, char *err, size_t errlen)
{
    int rc;
    char path[DESKTOP_PATH_MAX + 1];
    struct credfile cf;
    char why[256];

    if (!d->config_dir)
        return SPELL_OK;
    if ((rc = credfile_path(d->config_dir, path, sizeof path)) != SPELL_OK)
        return rc;
    rc = credfile_read(path, &cf, why, sizeof why);
    if (rc == SPELL_ENOTFOUND)
        return SPELL_OK;
    if (rc == SPELL_OK && strcmp(cf.server, d->api_url) != 0) {
        explicit_bzero(&cf, sizeof cf);
        return SPELL_OK;
    }
    explicit_bzero(&cf, sizeof cf);
    if (unlink(path) != 0) {
        if (errno == ENOENT)
            return SPELL_OK;
        spell_errf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
        return SPELL_EIO;
    }
    *removed = true;
    return SPELL_OK;
}

/* ---- keyring bookkeeping ---- */

static bool keyring_worth_asking(struct desktop *d)
{
    if (d->keyring != KEYRING_DOWN)
        return true;
    return g_get_monotonic_time() - d->keyring_down_since >=
           (int64_t)DESKTOP_KEYRING_RETRY_S * G_USEC_PER_SEC;
}

static void keyring_up(struct desktop *d, struct cred_req *r)
{
    if (d->keyring == KEYRING_DOWN)
        desktop_log("desktop: the Secret Service answers again; using the keyring");
    d->keyring = KEYRING_UP;
    r->res.keyring_available = true;
}

/* Records that the keyring failed this request and says so, once. */
static void keyring_down(struct desktop *d, struct cred_req *r, const GError *error)
{
    if (r->timed_out)
        snprintf(d->keyring_reason, sizeof d->keyring_reason,
                 "the Secret Service did not answer within %d ms", d->keyring_timeout_ms);
    else
        snprintf(d->keyring_reason, sizeof d->keyring_reason,
                 "the Secret Service is unavailable (%.140s)",
                 error && error->message ? error->message : "unknown error");
    if (d->keyring != KEYRING_DOWN)
        desktop_log("desktop: %s; falling back to %s", d->keyring_reason,
                    d->no_plaintext ? "SPELL_API_KEY only (--no-plaintext)"
                                    : "SPELL_API_KEY or the credentials file");
    d->keyring = KEYRING_DOWN;
    d->keyring_down_since = g_get_monotonic_time();
}

static gboolean on_timeout(gpointer data)
{
    struct desktop *d = data;

    if (d->cur)
        d->cur->timed_out = true;
    if (d->cancel)
        g_cancellable_cancel(d->cancel);
    if (d->timeout) {
        g_source_unref(d->timeout);
        d->timeout = NULL;
    }
    return G_SOURCE_REMOVE;
}

static void keyring_arm(struct desktop *d)
{
    d->cancel = g_cancellable_new();
    d->timeout = g_timeout_source_new((guint)d->keyring_timeout_ms);
    g_source_set_callback(d->timeout, on_timeout, d, NULL);
    g_source_attach(d->timeout, d->ctx);
}

static void keyring_disarm(struct desktop *d)
{
    if (d->timeout) {
        g_source_destroy(d->timeout);
        g_source_unref(d->timeout);
        d->timeout = NULL;
    }
    if (d->cancel) {
        g_object_unref(d->cancel);
        d->cancel = NULL;
    }
}

/* Whether the request must end now because the desktop is stopping. */
static bool abort_if_stopping(struct desktop *d, struct cred_req *r)
{
    if (!desktop_stopping(d))
        return false;
    r->res.rc = SPELL_EABORT;
    desktop_finish(d, r);
    return true;
}

static void set_unavailable_message(struct desktop *d, struct cred_req *r)
{
    if (!r->res.message[0])
        copy_field(r->res.message, sizeof r->res.message, d->keyring_reason);
}

/* ---- load ---- */

/* The rest of a load once the keyring had nothing (keyring_down false) or
 * was unavailable (true). */
static void load_fallback(struct desktop *d, struct cred_req *r, bool keyring_down_now)
{
    char path[DESKTOP_PATH_MAX + 1];
    struct credfile cf;
    char why[256];
    int rc;

    r->res.rc = SPELL_OK;
    r->res.source = DESKTOP_CRED_NONE;
    if (keyring_down_now)
        set_unavailable_message(d, r);
    if (d->env_api_key) {
        r->res.source = DESKTOP_CRED_ENV;
        copy_field(r->res.token, sizeof r->res.token, d->env_api_key);
        goto out;
    }
    if (!keyring_down_now || !d->config_dir)
        goto out;
    if (d->no_plaintext) {
        snprintf(r->res.message, sizeof r->res.message,
                 "%.190s; the credentials file is refused (--no-plaintext)", d->keyring_reason);
        goto out;
    }
    if (credfile_path(d->config_dir, path, sizeof path) != SPELL_OK)
        goto out;
    rc = credfile_read(path, &cf, why, sizeof why);
    if (rc == SPELL_ENOTFOUND)
        goto out;
    copy_field(r->res.path, sizeof r->res.path, path);
    if (rc != SPELL_OK) {
        r->res.rc = rc;
        copy_field(r->res.message, sizeof r->res.message, why);
        desktop_log("desktop: %s", why);
        goto out;
    }
    if (strcmp(cf.server, d->api_url) != 0) {
        snprintf(r->res.message, sizeof r->res.message,
                 "the credentials file is for another server");
        goto out;
    }
    r->res.source = DESKTOP_CRED_FILE;
    copy_field(r->res.token, sizeof r->res.token, cf.token);
    copy_field(r->res.account, sizeof r->res.account, cf.account);
out:
    explicit_bzero(&cf, sizeof cf);
    desktop_finish(d, r);
}

static void load_searched(GObject *src, GAsyncResult *res, gpointer data)
{
    struct desktop *d = data;
    struct cred_req *r = d->cur;
    GError *error = NULL;
    GList *items = secret_service_search_finish(NULL, res, &error);
    SecretItem *best = NULL;

    keyring_disarm(d);
    if (abort_if_stopping(d, r))
        goto out;
    if (error) {
        keyring_down(d, r, error);
        load_fallback(d, r, true);
        goto out;
    }
    keyring_up(d, r);
    for (GList *l = items; l; l = l->next) {
        SecretItem *it = l->data;
        if (!best || secret_item_get_modified(it) > secret_item_get_modified(best))
            best = it;
    }
    if (best) {
        SecretValue *v = secret_item_get_secret(best);
        GHashTable *attrs = secret_item_get_attributes(best);
        const char *acct = attrs ? g_hash_table_lookup(attrs, "account") : NULL;
        gsize len = 0;
        const gchar *pw = v ? secret_value_get(v, &len) : NULL;

        if (pw && cred_text_ok(pw, len, DESKTOP_TOKEN_MAX)) {
            memcpy(r->res.token, pw, len);
            r->res.token[len] = '\0';
            r->res.source = DESKTOP_CRED_KEYRING;
            if (acct && cred_text_ok(acct, strlen(acct), DESKTOP_ACCOUNT_MAX))
                copy_field(r->res.account, sizeof r->res.account, acct);
            r->res.rc = SPELL_OK;
        } else {
            best = NULL;
            snprintf(r->res.message, sizeof r->res.message,
                     "the keyring item for %.200s holds no usable token", d->api_url);
        }
        if (v)
            secret_value_unref(v);
        if (attrs)
            g_hash_table_unref(attrs);
    }
    if (best)
        desktop_finish(d, r);
    else
        load_fallback(d, r, false);
out:
    g_list_free_full(items, g_object_unref);
    g_clear_error(&error);
}

/* ---- save ---- */

static void save_fallback(struct desktop *d, struct cred_req *r)
{
    char why[256] = "";

    set_unavailable_message(d, r);
    if (d->no_plaintext) {
        r->res.rc = DESKTOP_ENOPLAINTEXT;
        snprintf(r->res.message, sizeof r->res.message,
                 "%.190s; the credentials file is refused (--no-plaintext)", d->keyring_reason);
        goto out;
    }
    if (!d->config_dir) {
        r->res.rc = SPELL_ENOTFOUND;
        snprintf(r->res.message, sizeof r->res.message,
                 "%.190s; and there is no config directory for a file", d->keyring_reason);
        goto out;
    }
    r->res.rc = credfile_write(d->config_dir, d->api_url, r->account, r->token, r->res.path,
                               sizeof r->res.path, why, sizeof why);
    if (r->res.rc != SPELL_OK) {
        copy_field(r->res.message, sizeof r->res.message, why);
        desktop_log("desktop: %s", why);
        goto out;
    }
    r->res.source = DESKTOP_CRED_FILE;
    copy_field(r->res.account, sizeof r->res.account, r->account);
out:
    explicit_bzero(r->token, sizeof r->token);
    desktop_finish(d, r);
}

static void save_stored(GObject *src, GAsyncResult *res, gpointer data)
{
    struct desktop *d = data;
    struct cred_req *r = d->cur;
    GError *error = NULL;
    bool removed = false;
    char why[256] = "";

    secret_password_store_finish(res, &error);
    keyring_disarm(d);
    if (abort_if_stopping(d, r))
        goto out;
    if (error) {
        keyring_down(d, r, error);
        save_fallback(d, r);
        goto out;
    }
    keyring_up(d, r);
    r->res.rc = SPELL_OK;
    r->res.source = DESKTOP_CRED_KEYRING;
    copy_field(r->res.account, sizeof r->res.account, r->account);
    explicit_bzero(r->token, sizeof r->token);
    /* The keyring holds it now: a plaintext copy from an earlier fallback
     * would only linger. */
    if (credfile_remove(d, &removed, why, sizeof why) != SPELL_OK)
        desktop_log("desktop: %s", why);
    desktop_finish(d, r);
out:
    g_clear_error(&error);
}

static void save_cleared(GObject *src, GAsyncResult *res, gpointer data)
{
    struct desktop *d = data;
    struct cred_req *r = d->cur;
    GError *error = NULL;
    char label[DESKTOP_URL_MAX + DESKTOP_ACCOUNT_MAX + 64];

    secret_password_clear_finish(res, &error);
    if (desktop_stopping(d)) {
        keyring_disarm(d);
        abort_if_stopping(d, r);
        goto out;
    }
    if (error) {
        keyring_disarm(d);
        keyring_down(d, r, error);
        save_fallback(d, r);
        goto out;
    }
    snprintf(label, sizeof label, "Spell API key for %s at %s", r->account, d->api_url);
    secret_password_store(&cred_schema, SECRET_COLLECTION_DEFAULT, label, r->token, d->cancel,
                          save_stored, d, "server", d->api_url, "account", r->account, NULL);
out:
    g_clear_error(&error);
}

/* ---- remove ---- */

static void remove_rest(struct desktop *d, struct cred_req *r)
{
    char why[256] = "";

    r->res.rc = credfile_remove(d, &r->res.removed, why, sizeof why);
    if (r->res.rc != SPELL_OK)
        copy_field(r->res.message, sizeof r->res.message, why);
    desktop_finish(d, r);
}

static void remove_cleared(GObject *src, GAsyncResult *res, gpointer data)
{
    struct desktop *d = data;
    struct cred_req *r = d->cur;
    GError *error = NULL;
    gboolean removed = secret_password_clear_finish(res, &error);

    keyring_disarm(d);
    if (abort_if_stopping(d, r))
        goto out;
    if (error) {
        keyring_down(d, r, error);
        set_unavailable_message(d, r);
    } else {
        keyring_up(d, r);
        r->res.removed = removed;
    }
    remove_rest(d, r);
out:
    g_clear_error(&error);
}

void cred_begin(struct desktop *d, struct cred_req *r)
{
    GHashTable *attrs;

    if (abort_if_stopping(d, r))
        return;
    if (!keyring_worth_asking(d)) {
        switch (r->op) {
        case CRED_LOAD:
            load_fallback(d, r, true);
            return;
        case CRED_SAVE:
            save_fallback(d, r);
            return;
        case CRED_REMOVE:
            set_unavailable_message(d, r);
            remove_rest(d, r);
            return;
        }
    }
    keyring_arm(d);
    switch (r->op) {
    case CRED_LOAD:
        attrs = secret_attributes_build(&cred_schema, "server", d->api_url, NULL);
        secret_service_search(NULL, &cred_schema, attrs,
                              SECRET_SEARCH_ALL | SECRET_SEARCH_UNLOCK |
                                  SECRET_SEARCH_LOAD_SECRETS,
                              d->cancel, load_searched, d);
        g_hash_table_unref(attrs);
        break;
    case CRED_SAVE:
        secret_password_clear(&cred_schema, d->cancel, save_cleared, d, "server", d->api_url,
                              NULL);
        break;
    case CRED_REMOVE:
        secret_password_clear(&cred_schema, d->cancel, remove_cleared, d, "server", d->api_url,
                              NULL);
        break;
    }
}

void cred_thread_exit(struct desktop *d)
{
    keyring_disarm(d);
    secret_service_disconnect();
}
