/*
 * spell-agent-desktop: the desktop helper that spell-agent starts and
 * talks to over a socketpair (desktop-int.h).  It is the only program of
 * the agent that links GLib, libsecret and libnotify: GLib and GDBus keep
 * threads of their own, so they run here and the daemon stays one thread,
 * the way gpg-agent runs pinentry apart.
 *
 * Data flow: the daemon's end is DESKTOP_HELPER_FD.  The first message is
 * WIRE_HELLO (the configuration, SPELL_API_KEY among it).  Then an fd
 * watch on GLib's default context reads messages as they come: a
 * WIRE_NOTE is shown at once (notify.c), a WIRE_CRED joins the request
 * queue; an idle source (pump) starts the oldest request when none is in
 * flight (credstore.c), and helper_finish() sends its WIRE_RESULT back.
 * So requests are served one at a time, in order, and a note sent before
 * a request is tried before the request starts.
 *
 * Lifetime: the helper exits when the socket reaches end of file (the
 * daemon closed it, exited or died) once the request in flight has
 * returned from libsecret, and the kernel kills it (PR_SET_PDEATHSIG, set
 * by the daemon before exec and again here) if the daemon dies first.
 * SIGINT and SIGTERM are ignored: the daemon decides when it stops, and a
 * Ctrl-C or a service stop reaches the daemon, which then closes the
 * socket.  Anything malformed from the daemon ends the helper.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>

#include <spell/errors.h>

#include "helper.h"

/* How long the helper waits for WIRE_HELLO after it starts. */
#define HELPER_HELLO_WAIT_MS 10000

static void req_free(struct cred_req *r)
{
    if (!r)
        return;
    explicit_bzero(r, sizeof *r);
    free(r);
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

bool helper_stopping(struct helper *h)
{
    return h->stopping;
}

static gboolean pump(gpointer data);

static void wake(struct helper *h)
{
    if (h->wake_pending)
        return;
    h->wake_pending = true;
    g_idle_add(pump, h);
}

/* The daemon is gone: cancel what is in flight and leave the loop. */
static void stop(struct helper *h)
{
    h->stopping = true;
    if (h->cancel)
        g_cancellable_cancel(h->cancel);
}

void helper_finish(struct helper *h, struct cred_req *r)
{
    struct wire_result m;

    if (!h->stopping) {
        memset(&m, 0, sizeof m);
        m.h.type = WIRE_RESULT;
        m.h.version = WIRE_VERSION;
        m.id = r->id;
        m.rc = r->res.rc;
        m.source = (uint32_t)r->res.source;
        m.keyring_available = r->res.keyring_available;
        m.removed = r->res.removed;
        memcpy(m.token, r->res.token, sizeof m.token);
        memcpy(m.account, r->res.account, sizeof m.account);
        memcpy(m.path, r->res.path, sizeof m.path);
        memcpy(m.message, r->res.message, sizeof m.message);
        if (wire_send(h->sock, &m, sizeof m) != 0)
            stop(h);
        explicit_bzero(&m, sizeof m);
    }
    if (h->cur == r)
        h->cur = NULL;
    req_free(r);
    h->nreq--;
    wake(h);
}

void helper_notes_off(struct helper *h)
{
    struct wire_hdr m = { .type = WIRE_NOTES_OFF, .version = WIRE_VERSION };

    if (!h->stopping && wire_send(h->sock, &m, sizeof m) != 0)
        stop(h);
}

/* Starts the oldest waiting request when none is in flight. */
static gboolean pump(gpointer data)
{
    struct helper *h = data;
    struct cred_req *r;

    h->wake_pending = false;
    if (h->cur || !h->req_head)
        return G_SOURCE_REMOVE;
    r = h->req_head;
    h->req_head = r->next;
    if (!h->req_head)
        h->req_tail = NULL;
    r->next = NULL;
    h->cur = r;
    cred_begin(h, r);
    return G_SOURCE_REMOVE;
}

static int take_cred(struct helper *h, const struct wire_cred *m)
{
    struct cred_req *r;

    if (h->nreq >= DESKTOP_CRED_QUEUE_MAX) {
        desktop_log("desktop helper: more than %d credential requests at once",
                    DESKTOP_CRED_QUEUE_MAX);
        return SPELL_ETOOBIG;
    }
    r = calloc(1, sizeof *r);
    if (!r)
        return SPELL_ENOMEM;
    r->id = m->id;
    r->op = (enum cred_op)m->op;
    memcpy(r->token, m->token, sizeof r->token);
    memcpy(r->account, m->account, sizeof r->account);
    if (h->req_tail)
        h->req_tail->next = r;
    else
        h->req_head = r;
    h->req_tail = r;
    h->nreq++;
    wake(h);
    return SPELL_OK;
}

static void show_note(struct helper *h, const struct wire_note *m)
{
    struct note n = {
        .summary = (char *)m->summary,
        .body = m->has_body ? (char *)m->body : NULL,
        .icon = m->icon[0] ? (char *)m->icon : NULL,
        .urgency = (enum desktop_urgency)m->urgency,
        .timeout_ms = m->timeout_ms,
    };

    notes_show(h, &n);
}

/* Reads every message that waits on the socket. */
static gboolean on_socket(gint fd, GIOCondition cond, gpointer data)
{
    struct helper *h = data;
    static unsigned char buf[WIRE_MSG_MAX];
    char why[160];

    for (;;) {
        long n = wire_recv(fd, buf, true);
        uint32_t type;
        bool ok = false;

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && n == -1)
            return G_SOURCE_CONTINUE;
        if (n <= 0) {
            if (n == -2)
                desktop_log("desktop helper: the daemon sent an oversized message");
            stop(h);
            return G_SOURCE_REMOVE;
        }
        type = wire_type_of(buf, (size_t)n);
        snprintf(why, sizeof why, "an unknown message");
        if (type == WIRE_CRED && (ok = wire_cred_ok(buf, (size_t)n, why, sizeof why)))
            ok = take_cred(h, (const struct wire_cred *)buf) == SPELL_OK;
        else if (type == WIRE_NOTE && (ok = wire_note_ok(buf, (size_t)n, why, sizeof why)))
            show_note(h, (const struct wire_note *)buf);
        explicit_bzero(buf, (size_t)n);
        if (!ok) {
            desktop_log("desktop helper: the daemon sent %s; stopping", why);
            stop(h);
            return G_SOURCE_REMOVE;
        }
    }
}

/* Reads WIRE_HELLO, waiting at most HELPER_HELLO_WAIT_MS. */
static int read_hello(struct helper *h)
{
    int rc = SPELL_EPARSE;
    struct wire_hello *m = calloc(1, WIRE_MSG_MAX);
    struct pollfd p = { .fd = h->sock, .events = POLLIN };
    char why[160] = "nothing";
    long n;

    if (!m)
        return SPELL_ENOMEM;
    if (poll(&p, 1, HELPER_HELLO_WAIT_MS) != 1)
        goto out;
    n = wire_recv(h->sock, m, true);
    if (n <= 0 || !wire_hello_ok(m, (size_t)n, why, sizeof why))
        goto out;
    rc = SPELL_ENOMEM;
    h->no_plaintext = m->no_plaintext;
    h->notifications = m->notifications;
    h->keyring_timeout_ms = m->keyring_timeout_ms;
    if (!(h->api_url = strdup(m->api_url)) || !(h->app_name = strdup(m->app_name)) ||
        (m->has_config_dir && !(h->config_dir = strdup(m->config_dir))) ||
        (m->env_api_key[0] && !(h->env_api_key = strdup(m->env_api_key))))
        goto out;
    rc = SPELL_OK;
out:
    if (rc == SPELL_EPARSE)
        desktop_log("desktop helper: no valid configuration from the daemon (%s)", why);
    explicit_bzero(m, WIRE_MSG_MAX);
    free(m);
    return rc;
}

static void helper_free(struct helper *h)
{
    struct cred_req *r;

    while ((r = h->req_head) != NULL) {
        h->req_head = r->next;
        req_free(r);
    }
    req_free(h->cur);
    if (h->env_api_key) {
        explicit_bzero(h->env_api_key, strlen(h->env_api_key));
        free(h->env_api_key);
    }
    free(h->api_url);
    free(h->config_dir);
    free(h->app_name);
}

int main(int argc, char **argv)
{
    struct helper h = { .sock = DESKTOP_HELPER_FD };
    struct stat st;
    int flags;

    if (argc != 2 || strcmp(argv[1], DESKTOP_HELPER_ARG) != 0 ||
        fstat(DESKTOP_HELPER_FD, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "spell-agent-desktop: the desktop helper of spell-agent, which starts "
                        "it; not meant to be run by hand\n");
        return 2;
    }
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Born to a daemon that is already gone: the socket tells as much too,
     * but there is no reason to wait for it. */
    if (getppid() == 1)
        return 1;
    flags = fcntl(h.sock, F_GETFD);
    fcntl(h.sock, F_SETFD, flags < 0 ? FD_CLOEXEC : flags | FD_CLOEXEC);
    if (read_hello(&h) != SPELL_OK) {
        helper_free(&h);
        return 1;
    }
    g_unix_fd_add(h.sock, G_IO_IN | G_IO_HUP | G_IO_ERR, on_socket, &h);
    while (!h.stopping || h.cur)
        g_main_context_iteration(NULL, TRUE);
    cred_exit(&h);
    notes_exit(&h);
    while (g_main_context_iteration(NULL, FALSE))
        ;
    helper_free(&h);
    close(h.sock);
    return 0;
}
