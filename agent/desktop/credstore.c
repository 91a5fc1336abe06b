/*
 * Where the credential lives: the Secret Service first, then SPELL_API_KEY
 * and the 0600 file (desktop.h says which wins and when).
 *
 * Everything here runs in the desktop thread.  A request starts in
 * cred_begin(); when the keyring is worth asking, one asynchronous
 * libsecret call (or, for a save, a clear followed by a store) runs with a
 * GCancellable and a timeout source on the thread's context.  Its callback
 * decides between the keyring's answer and the fallback, fills the result
 * and ends the request with helper_finish().  The file fallback is plain
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

#include "helper.h"

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

static void copy_field(char *dst, size_t dstlen, const char *src)
{
    snprintf(dst, dstlen, "%s", src);
}

/* Removes the credentials file when it holds the credential for server or
 * cannot be read as anyone's (a refused file is of no use to anybody).
 * A file for another server is left alone. */
static int credfile_remove(struct helper *d, bool *removed, char *err, size_t errlen)
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

static bool keyring_worth_asking(struct helper *d)
{
    if (d->keyring != KEYRING_DOWN)
        return true;
    return g_get_monotonic_time() - d->keyring_down_since >=
           (int64_t)DESKTOP_KEYRING_RETRY_S * G_USEC_PER_SEC;
}

static void keyring_up(struct helper *d, struct cred_req *r)
{
    if (d->keyring == KEYRING_DOWN)
        desktop_log("desktop: the Secret Service answers again; using the keyring");
    d->keyring = KEYRING_UP;
    r->res.keyring_available = true;
}

/* Records that the keyring failed this request and says so, once. */
static void keyring_down(struct helper *d, struct cred_req *r, const GError *error)
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
    struct helper *d = data;

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

static void keyring_arm(struct helper *d)
{
    d->cancel = g_cancellable_new();
    d->timeout = g_timeout_source_new((guint)d->keyring_timeout_ms);
    g_source_set_callback(d->timeout, on_timeout, d, NULL);
    g_source_attach(d->timeout, NULL);
}

static void keyring_disarm(struct helper *d)
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

/* Whether the request must end now because the daemon has gone. */
static bool abort_if_stopping(struct helper *d, struct cred_req *r)
{
    if (!helper_stopping(d))
        return false;
    r->res.rc = SPELL_EABORT;
    helper_finish(d, r);
    return true;
}

static void set_unavailable_message(struct helper *d, struct cred_req *r)
{
    if (!r->res.message[0])
        copy_field(r->res.message, sizeof r->res.message, d->keyring_reason);
}

/* ---- load ---- */

/* The rest of a load once the keyring had nothing (keyring_down false) or
 * was unavailable (true). */
static void load_fallback(struct helper *d, struct cred_req *r, bool keyring_down_now)
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
    helper_finish(d, r);
}

static void load_searched(GObject *src, GAsyncResult *res, gpointer data)
{
    struct helper *d = data;
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
        helper_finish(d, r);
    else
        load_fallback(d, r, false);
out:
    g_list_free_full(items, g_object_unref);
    g_clear_error(&error);
}

/* ---- save ---- */

static void save_fallback(struct helper *d, struct cred_req *r)
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
    helper_finish(d, r);
}

static void save_stored(GObject *src, GAsyncResult *res, gpointer data)
{
    struct helper *d = data;
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
    helper_finish(d, r);
out:
    g_clear_error(&error);
}

static void save_cleared(GObject *src, GAsyncResult *res, gpointer data)
{
    struct helper *d = data;
    struct cred_req *r = d->cur;
    GError *error = NULL;
    char label[DESKTOP_URL_MAX + DESKTOP_ACCOUNT_MAX + 64];

    secret_password_clear_finish(res, &error);
    if (helper_stopping(d)) {
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

static void remove_rest(struct helper *d, struct cred_req *r)
{
    char why[256] = "";

    r->res.rc = credfile_remove(d, &r->res.removed, why, sizeof why);
    if (r->res.rc != SPELL_OK)
        copy_field(r->res.message, sizeof r->res.message, why);
    helper_finish(d, r);
}

static void remove_cleared(GObject *src, GAsyncResult *res, gpointer data)
{
    struct helper *d = data;
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

void cred_begin(struct helper *d, struct cred_req *r)
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

void cred_exit(struct helper *d)
{
    keyring_disarm(d);
    secret_service_disconnect();
}
