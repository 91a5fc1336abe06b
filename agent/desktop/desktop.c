/*
 * The desktop thread and the two queues around it.
 *
 * desktop_start() copies the configuration, makes the eventfd and a
 * GMainContext and starts the one thread that will own every GLib,
 * libsecret and libnotify object.  Public calls from the daemon's thread
 * append a credential request or a note under `lock` and attach an idle
 * source (pump) to the thread's context, which wakes it.  pump shows the
 * waiting notes and starts the next credential request when none is in
 * flight; a finished request comes back through desktop_finish(), which
 * moves it to the done queue and writes the eventfd.  desktop_dispatch(),
 * in the daemon's thread, runs the done callbacks and frees the requests
 * (wiping their tokens).
 *
 * desktop_stop() marks the desktop stopping and wakes the thread; the
 * thread cancels the keyring call in flight, waits for its callback (so
 * libsecret hands back everything it holds), leaves its loop, disconnects
 * from libsecret and libnotify, and is joined.  What is left in the queues
 * is freed without calling anyone.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

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

static void req_free(struct cred_req *r)
{
    if (!r)
        return;
    explicit_bzero(r, sizeof *r);
    free(r);
}

const char *desktop_cred_source_name(enum desktop_cred_source s)
{
    switch (s) {
    case DESKTOP_CRED_NONE:
        return "none";
    case DESKTOP_CRED_KEYRING:
        return "keyring";
    case DESKTOP_CRED_FILE:
        return "file";
    case DESKTOP_CRED_ENV:
        return "env";
    }
    return "none";
}

static gboolean pump(gpointer data);

/* Under lock: makes sure the thread will run pump once more. */
static void wake_locked(struct desktop *d)
{
    GSource *s;

    if (d->wake_pending)
        return;
    d->wake_pending = true;
    s = g_idle_source_new();
    g_source_set_callback(s, pump, d, NULL);
    g_source_attach(s, d->ctx);
    g_source_unref(s);
}

bool desktop_stopping(struct desktop *d)
{
    bool stopping;

    pthread_mutex_lock(&d->lock);
    stopping = d->stopping;
    pthread_mutex_unlock(&d->lock);
    return stopping;
}

void desktop_finish(struct desktop *d, struct cred_req *r)
{
    uint64_t one = 1;

    pthread_mutex_lock(&d->lock);
    r->next = NULL;
    if (d->done_tail)
        d->done_tail->next = r;
    else
        d->done_head = r;
    d->done_tail = r;
    if (d->cur == r)
        d->cur = NULL;
    wake_locked(d);
    pthread_mutex_unlock(&d->lock);
    if (write(d->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        desktop_log("desktop: cannot signal a completion: %s", strerror(errno));
}

static struct note *note_pop(struct desktop *d)
{
    struct note *n = NULL;

    pthread_mutex_lock(&d->lock);
    if (d->note_count > 0) {
        n = d->notes[d->note_first];
        d->notes[d->note_first] = NULL;
        d->note_first = (d->note_first + 1) % DESKTOP_NOTE_QUEUE_MAX;
        d->note_count--;
        if (d->note_count == 0)
            d->note_drop_logged = false;
    }
    pthread_mutex_unlock(&d->lock);
    return n;
}

/* Runs in the desktop thread whenever something was queued. */
static gboolean pump(gpointer data)
{
    struct desktop *d = data;
    struct cred_req *r = NULL;
    struct note *n;
    bool stopping;

    pthread_mutex_lock(&d->lock);
    d->wake_pending = false;
    stopping = d->stopping;
    pthread_mutex_unlock(&d->lock);

    if (stopping) {
        if (d->cancel)
            g_cancellable_cancel(d->cancel);
        return G_SOURCE_REMOVE;
    }

    while ((n = note_pop(d)) != NULL) {
        notes_show(d, n);
        note_free(n);
    }

    pthread_mutex_lock(&d->lock);
    if (!d->cur && d->req_head) {
        r = d->req_head;
        d->req_head = r->next;
        if (!d->req_head)
            d->req_tail = NULL;
        r->next = NULL;
        d->cur = r;
    }
    pthread_mutex_unlock(&d->lock);

    if (r)
        cred_begin(d, r);
    return G_SOURCE_REMOVE;
}

static void *desktop_thread(void *arg)
{
    struct desktop *d = arg;

    g_main_context_push_thread_default(d->ctx);
    for (;;) {
        bool quit;

        pthread_mutex_lock(&d->lock);
        quit = d->stopping && d->cur == NULL;
        pthread_mutex_unlock(&d->lock);
        if (quit)
            break;
        g_main_context_iteration(d->ctx, TRUE);
    }
    cred_thread_exit(d);
    notes_thread_exit(d);
    while (g_main_context_iteration(d->ctx, FALSE))
        ;
    g_main_context_pop_thread_default(d->ctx);
    return NULL;
}

static void desktop_free(struct desktop *d)
{
    struct cred_req *r;

    if (!d)
        return;
    while ((r = d->req_head) != NULL) {
        d->req_head = r->next;
        req_free(r);
    }
    while ((r = d->done_head) != NULL) {
        d->done_head = r->next;
        req_free(r);
    }
    req_free(d->cur);
    for (int i = 0; i < DESKTOP_NOTE_QUEUE_MAX; i++)
        note_free(d->notes[i]);
    if (d->env_api_key) {
        explicit_bzero(d->env_api_key, strlen(d->env_api_key));
        free(d->env_api_key);
    }
    free(d->api_url);
    free(d->config_dir);
    free(d->app_name);
    if (d->efd >= 0)
        close(d->efd);
    if (d->ctx)
        g_main_context_unref(d->ctx);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* Copies an optional string of at most max bytes into *out. */
static int dup_capped(const char *s, size_t max, char **out)
{
    *out = NULL;
    if (!s)
        return SPELL_OK;
    if (strnlen(s, max + 1) > max)
        return SPELL_EINVAL;
    *out = strdup(s);
    return *out ? SPELL_OK : SPELL_ENOMEM;
}

int desktop_start(const struct desktop_config *cfg, struct desktop **out)
{
    int rc = SPELL_EINVAL;
    struct desktop *d = NULL;

    if (out)
        *out = NULL;
    if (!cfg || !out || !cfg->api_url || !cfg->api_url[0] ||
        !cred_text_ok(cfg->api_url, strlen(cfg->api_url), DESKTOP_URL_MAX) ||
        cfg->keyring_timeout_ms < 0)
        goto out;
    if (cfg->config_dir && cfg->config_dir[0] != '/')
        goto out;

    rc = SPELL_ENOMEM;
    d = calloc(1, sizeof *d);
    if (!d)
        goto out;
    d->efd = -1;
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        free(d);
        d = NULL;
        rc = SPELL_EIO;
        goto out;
    }
    if ((rc = dup_capped(cfg->api_url, DESKTOP_URL_MAX, &d->api_url)) != SPELL_OK ||
        (rc = dup_capped(cfg->config_dir, DESKTOP_PATH_MAX - 32, &d->config_dir)) != SPELL_OK ||
        (rc = dup_capped(cfg->app_name ? cfg->app_name : "spell-agent", 255,
                         &d->app_name)) != SPELL_OK)
        goto out;
    if (cfg->env_api_key && cfg->env_api_key[0]) {
        rc = SPELL_EINVAL;
        if (!cred_text_ok(cfg->env_api_key, strlen(cfg->env_api_key), DESKTOP_TOKEN_MAX))
            goto out;
        if ((rc = dup_capped(cfg->env_api_key, DESKTOP_TOKEN_MAX, &d->env_api_key)) != SPELL_OK)
            goto out;
    }
    d->no_plaintext = cfg->no_plaintext;
    d->notifications = cfg->notifications;
    d->keyring_timeout_ms = cfg->keyring_timeout_ms > 0 ? cfg->keyring_timeout_ms
                                                       : DESKTOP_KEYRING_TIMEOUT_MS;
    atomic_init(&d->notes_ok, cfg->notifications);

    rc = SPELL_EIO;
    d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->efd < 0)
        goto out;
    d->ctx = g_main_context_new();
    if (pthread_create(&d->thread, NULL, desktop_thread, d) != 0)
        goto out;
    d->thread_started = true;
    *out = d;
    d = NULL;
    rc = SPELL_OK;
out:
    desktop_free(d);
    return rc;
}

int desktop_fd(struct desktop *d)
{
    return d ? d->efd : -1;
}

void desktop_dispatch(struct desktop *d)
{
    uint64_t n;
    struct cred_req *list, *r;

    if (!d)
        return;
    while (read(d->efd, &n, sizeof n) > 0)
        ;
    pthread_mutex_lock(&d->lock);
    list = d->done_head;
    d->done_head = d->done_tail = NULL;
    pthread_mutex_unlock(&d->lock);

    while ((r = list) != NULL) {
        list = r->next;
        if (r->done)
            r->done(r->ud, &r->res);
        req_free(r);
        pthread_mutex_lock(&d->lock);
        d->nreq--;
        pthread_mutex_unlock(&d->lock);
    }
}

static int submit(struct desktop *d, struct cred_req *r)
{
    int rc = SPELL_ETOOBIG;

    pthread_mutex_lock(&d->lock);
    if (d->stopping) {
        rc = SPELL_EABORT;
        goto out;
    }
    if (d->nreq >= DESKTOP_CRED_QUEUE_MAX)
        goto out;
    d->nreq++;
    if (d->req_tail)
        d->req_tail->next = r;
    else
        d->req_head = r;
    d->req_tail = r;
    wake_locked(d);
    rc = SPELL_OK;
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int cred_request(struct desktop *d, enum cred_op op, const char *token,
                        const char *account, desktop_cred_done_fn done, void *ud)
{
    int rc = SPELL_EINVAL;
    struct cred_req *r = NULL;

    if (!d || !done)
        goto out;
    if (op == CRED_SAVE) {
        if (!token || !account ||
            !cred_text_ok(token, strnlen(token, DESKTOP_TOKEN_MAX + 1), DESKTOP_TOKEN_MAX) ||
            !cred_text_ok(account, strnlen(account, DESKTOP_ACCOUNT_MAX + 1),
                          DESKTOP_ACCOUNT_MAX))
            goto out;
    }
    rc = SPELL_ENOMEM;
    r = calloc(1, sizeof *r);
    if (!r)
        goto out;
    r->op = op;
    r->done = done;
    r->ud = ud;
    if (op == CRED_SAVE) {
        memcpy(r->token, token, strlen(token) + 1);
        memcpy(r->account, account, strlen(account) + 1);
    }
    if ((rc = submit(d, r)) != SPELL_OK)
        goto out;
    r = NULL;
out:
    req_free(r);
    return rc;
}

int desktop_cred_load(struct desktop *d, desktop_cred_done_fn done, void *ud)
{
    return cred_request(d, CRED_LOAD, NULL, NULL, done, ud);
}

int desktop_cred_save(struct desktop *d, const char *token, const char *account,
                      desktop_cred_done_fn done, void *ud)
{
    return cred_request(d, CRED_SAVE, token, account, done, ud);
}

int desktop_cred_remove(struct desktop *d, desktop_cred_done_fn done, void *ud)
{
    return cred_request(d, CRED_REMOVE, NULL, NULL, done, ud);
}

void note_free(struct note *n)
{
    if (!n)
        return;
    free(n->summary);
    free(n->body);
    free(n->icon);
    free(n);
}

int desktop_notify(struct desktop *d, const struct desktop_note *n)
{
    int rc = SPELL_EINVAL;
    struct note *copy = NULL, *dropped = NULL;
    bool log_drop = false;

    if (!d || !n || !n->summary || !n->summary[0])
        goto out;
    if (n->urgency < DESKTOP_URGENCY_LOW || n->urgency > DESKTOP_URGENCY_CRITICAL)
        goto out;
    rc = SPELL_OK;
    if (!atomic_load(&d->notes_ok))
        goto out;

    rc = SPELL_ENOMEM;
    copy = calloc(1, sizeof *copy);
    if (!copy)
        goto out;
    copy->urgency = n->urgency;
    copy->timeout_ms = n->timeout_ms < -1 ? -1 : n->timeout_ms;
    copy->summary = desktop_text_dup(n->summary, DESKTOP_NOTE_SUMMARY_MAX);
    if (!copy->summary)
        goto out;
    if (n->body && !(copy->body = desktop_text_dup(n->body, DESKTOP_NOTE_BODY_MAX)))
        goto out;
    if (n->icon && n->icon[0] && !(copy->icon = desktop_text_dup(n->icon, DESKTOP_PATH_MAX)))
        goto out;

    pthread_mutex_lock(&d->lock);
    if (d->stopping) {
        pthread_mutex_unlock(&d->lock);
        rc = SPELL_OK;
        goto out;
    }
    if (d->note_count == DESKTOP_NOTE_QUEUE_MAX) {
        dropped = d->notes[d->note_first];
        d->notes[d->note_first] = NULL;
        d->note_first = (d->note_first + 1) % DESKTOP_NOTE_QUEUE_MAX;
        d->note_count--;
        if (!d->note_drop_logged) {
            d->note_drop_logged = true;
            log_drop = true;
        }
    }
    d->notes[(d->note_first + d->note_count) % DESKTOP_NOTE_QUEUE_MAX] = copy;
    d->note_count++;
    copy = NULL;
    wake_locked(d);
    pthread_mutex_unlock(&d->lock);
    if (log_drop)
        desktop_log("desktop: more than %d notifications waiting; dropping the oldest",
                    DESKTOP_NOTE_QUEUE_MAX);
    rc = SPELL_OK;
out:
    note_free(copy);
    note_free(dropped);
    return rc;
}

bool desktop_notifications_available(struct desktop *d)
{
    return d && atomic_load(&d->notes_ok);
}

void desktop_stop(struct desktop *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    if (d->thread_started)
        wake_locked(d);
    pthread_mutex_unlock(&d->lock);
    if (d->thread_started)
        pthread_join(d->thread, NULL);
    desktop_free(d);
}
