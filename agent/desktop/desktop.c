/*
 * The daemon's side of the desktop module: it starts the desktop helper
 * (spell-agent-desktop, helper.c) and speaks to it over a SOCK_SEQPACKET
 * socketpair, in the daemon's one thread, without GLib.
 *
 * Why a separate executable rather than a re-exec of /proc/self/exe: the
 * daemon then links neither GLib nor libsecret nor libnotify (smaller, no
 * library constructors, no threads), and the helper is a program of its
 * own that can be read and audited alone.  It is looked up beside the
 * daemon's executable first (a build tree) and in the install's libexec
 * directory otherwise; desktop_config.helper_path overrides both.
 *
 * Data flow:
 *
 *   desktop_cred_load/save/remove -> a pending request (in order) and a
 *   WIRE_CRED in the outbox;  desktop_notify -> a WIRE_NOTE in the outbox
 *   (at most DESKTOP_NOTE_QUEUE_MAX notes wait there; past that the
 *   oldest goes).  The outbox is written to the socket as far as it takes
 *   it.  The helper answers each WIRE_CRED with a WIRE_RESULT, in order;
 *   desktop_dispatch() reads them, checks each (wire.c) and runs the done
 *   callbacks in request order.
 *
 * desktop_fd() is an epoll descriptor that holds the socket (readable, or
 * writable while the outbox waits) and a timerfd (a restart is due, or
 * results made without the helper wait for their callbacks), so the
 * daemon's loop polls one descriptor that never changes.
 *
 * When the helper dies (end of file on the socket, a send that fails) or
 * sends anything malformed or unexpected (it is then killed), every request
 * it held fails with SPELL_EIO and a sentence saying so, the waiting notes
 * are dropped, and a new helper is started after a backoff
 * (HELPER_BACKOFF_MIN_MS doubling to HELPER_BACKOFF_MAX_MS; back to the
 * start once a helper has lived HELPER_STABLE_MS).  While it is down,
 * credential requests fail the same way at once and notes are dropped,
 * logged once per outage.
 *
 * The helper's process: fork, then in the child only async-signal-safe
 * calls: its end of the socketpair to DESKTOP_HELPER_FD, every other
 * descriptor above stderr closed, the signal mask and SIGPIPE reset,
 * PR_SET_PDEATHSIG (SIGKILL) and exec with the daemon's environment minus
 * SPELL_API_KEY (the key goes over the socket in WIRE_HELLO).  The helper
 * exits at end of file on the socket; desktop_stop() closes it and reaps
 * the helper (SIGKILL after HELPER_EXIT_WAIT_MS).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <spell/errors.h>

#include "desktop-int.h"

#ifndef SPELL_LIBEXECDIR
#define SPELL_LIBEXECDIR "/usr/local/libexec"
#endif
#define HELPER_NAME "spell-agent-desktop"

/* The first restart waits this long, each further one twice as long up
 * to the cap; a helper that lived HELPER_STABLE_MS resets the wait. */
#define HELPER_BACKOFF_MIN_MS 200
#define HELPER_BACKOFF_MAX_MS 30000
#define HELPER_STABLE_MS 60000
/* desktop_stop() waits this long for the helper to leave by itself. */
#define HELPER_EXIT_WAIT_MS 2000

extern char **environ;

struct pending {
    struct pending *next;
    uint32_t id;
    desktop_cred_done_fn done;
    void *ud;
    /* Answered (by the helper, or failed here): res holds the result. */
    bool finished;
    struct desktop_cred_result res;
};

struct outmsg {
    struct outmsg *next;
    bool is_note;
    size_t len;
    /* The message; wiped when freed (a save carries a token). */
    unsigned char data[];
};

enum helper_state {
    HELPER_UP,
    HELPER_DOWN,
};

struct desktop {
    /* Copies of the configuration; env_api_key is wiped on stop. */
    char *api_url;
    char *config_dir;
    char *env_api_key;
    char *app_name;
    char *helper_path;
    bool no_plaintext;
    bool notifications;
    int keyring_timeout_ms;

    /* What desktop_fd() returns, and the two descriptors in it. */
    int epfd;
    int tfd;
    /* The daemon's end of the socketpair; -1 while the helper is down. */
    int sock;
    pid_t pid;
    enum helper_state state;
    /* CLOCK_MONOTONIC milliseconds: when the helper started, when the next
     * one is due. */
    int64_t started_ms;
    int64_t restart_ms;
    int backoff_ms;
    /* Why the helper is down, for the requests that fail meanwhile. */
    char down_reason[160];
    /* Notes dropped during this outage; whether that was logged. */
    unsigned notes_dropped;
    bool drop_logged;
    /* Whether the epoll set watches the socket for writing. */
    bool want_out;

    /* Every accepted request not yet dispatched, oldest first; at most
     * DESKTOP_CRED_QUEUE_MAX. */
    struct pending *req_head, *req_tail;
    int nreq;
    uint32_t next_id;

    /* Messages not yet taken by the socket, oldest first. */
    struct outmsg *out_head, *out_tail;
    int out_notes;
    /* Whether a drop from a full note queue was logged since it last
     * emptied. */
    bool note_drop_logged;

    /* Whether notifications are on and the helper has not said they are
     * off. */
    bool notes_ok;
    /* Helpers started, for desktop_helper_info(). */
    unsigned starts;

    unsigned char buf[WIRE_MSG_MAX];
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

static void pending_free(struct pending *p)
{
    if (!p)
        return;
    explicit_bzero(p, sizeof *p);
    free(p);
}

static void outmsg_free(struct outmsg *m)
{
    if (!m)
        return;
    explicit_bzero(m->data, m->len);
    free(m);
}

/* Arms the timer for `at` (CLOCK_MONOTONIC ms; <= now fires at once), or
 * disarms it for 0. */
static void timer_at(struct desktop *d, int64_t at)
{
    struct itimerspec its = {0};

    if (at > 0) {
        its.it_value.tv_sec = at / 1000;
        its.it_value.tv_nsec = (long)(at % 1000) * 1000000;
    }
    timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* The next thing the timer must wake the loop for. */
static void timer_update(struct desktop *d)
{
    int64_t at = 0;

    if (d->req_head && d->req_head->finished)
        at = 1;
    else if (d->state == HELPER_DOWN)
        at = d->restart_ms;
    timer_at(d, at);
}

static void watch_socket(struct desktop *d, bool want_out)
{
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.fd = d->sock };

    if (d->sock < 0 || want_out == d->want_out)
        return;
    d->want_out = want_out;
    epoll_ctl(d->epfd, EPOLL_CTL_MOD, d->sock, &ev);
}

/* Fails p now with SPELL_EIO and why. */
static void pending_fail(struct pending *p, const char *why)
{
    explicit_bzero(&p->res, sizeof p->res);
    p->res.rc = SPELL_EIO;
    p->res.source = DESKTOP_CRED_NONE;
    snprintf(p->res.message, sizeof p->res.message, "%s", why);
    p->finished = true;
}

/* Reaps the helper: at once when it has exited, else after SIGKILL (kill
 * true) or after waiting up to HELPER_EXIT_WAIT_MS and then SIGKILL.
 * Says how it ended into how. */
static void helper_reap(struct desktop *d, bool kill_now, char *how, size_t howlen)
{
    int st = 0;
    pid_t r;

    if (d->pid <= 0)
        return;
    if (kill_now)
        kill(d->pid, SIGKILL);
    for (int waited = 0;; waited += 10) {
        r = waitpid(d->pid, &st, WNOHANG);
        if (r != 0 || waited >= HELPER_EXIT_WAIT_MS)
            break;
        usleep(10000);
    }
    if (r == 0) {
        kill(d->pid, SIGKILL);
        r = waitpid(d->pid, &st, 0);
    }
    if (how && r == d->pid) {
        if (WIFSIGNALED(st))
            snprintf(how, howlen, "killed by signal %d", WTERMSIG(st));
        else
            snprintf(how, howlen, "exited with status %d", WEXITSTATUS(st));
    }
    d->pid = -1;
}

/* The helper is gone or no longer trusted: fail what it held, drop the
 * notes, schedule a restart.  why is said in the log and the results. */
static void helper_down(struct desktop *d, const char *why, bool kill_now)
{
    char how[64] = "gone";
    int64_t now = now_ms();
    struct outmsg *m;

    if (d->sock >= 0) {
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->sock, NULL);
        close(d->sock);
        d->sock = -1;
        d->want_out = false;
    }
    helper_reap(d, kill_now, how, sizeof how);
    if (now - d->started_ms >= HELPER_STABLE_MS)
        d->backoff_ms = HELPER_BACKOFF_MIN_MS;
    d->state = HELPER_DOWN;
    d->restart_ms = now + d->backoff_ms;
    snprintf(d->down_reason, sizeof d->down_reason,
             "the desktop helper stopped (%s); keyring and notifications are unavailable "
             "until it is back", why);
    desktop_log("desktop: the helper %s (%s); starting it again in %d ms", why, how,
                d->backoff_ms);
    d->backoff_ms = d->backoff_ms * 2 > HELPER_BACKOFF_MAX_MS ? HELPER_BACKOFF_MAX_MS
                                                              : d->backoff_ms * 2;
    for (struct pending *p = d->req_head; p; p = p->next) {
        if (!p->finished)
            pending_fail(p, d->down_reason);
    }
    d->notes_dropped = 0;
    d->drop_logged = false;
    while ((m = d->out_head) != NULL) {
        d->out_head = m->next;
        if (m->is_note)
            d->notes_dropped++;
        outmsg_free(m);
    }
    d->out_tail = NULL;
    d->out_notes = 0;
    d->note_drop_logged = false;
    timer_update(d);
}

/* Builds the environment of the helper: the daemon's, without
 * SPELL_API_KEY.  NULL when out of memory. */
static char **helper_env(void)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ && environ[n])
        n++;
    env = calloc(n + 1, sizeof *env);
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "SPELL_API_KEY=", 14) != 0)
            env[k++] = environ[i];
    }
    return env;
}

/* Starts a helper and sends it WIRE_HELLO.  On failure the helper is down
 * and the caller schedules the next try. */
static int helper_spawn(struct desktop *d, char *why, size_t whylen)
{
    int rc = SPELL_EIO;
    int sv[2] = {-1, -1};
    char **env = NULL;
    char *argv[] = {d->helper_path, (char *)DESKTOP_HELPER_ARG, NULL};
    struct wire_hello *hello = NULL;
    struct epoll_event ev = { .events = EPOLLIN };
    pid_t parent = getpid(), pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(why, whylen, "socketpair: %s", strerror(errno));
        goto out;
    }
    rc = SPELL_ENOMEM;
    env = helper_env();
    hello = calloc(1, sizeof *hello);
    if (!env || !hello) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    hello->h.type = WIRE_HELLO;
    hello->h.version = WIRE_VERSION;
    hello->no_plaintext = d->no_plaintext;
    hello->notifications = d->notifications;
    hello->has_config_dir = d->config_dir != NULL;
    hello->keyring_timeout_ms = d->keyring_timeout_ms;
    snprintf(hello->api_url, sizeof hello->api_url, "%s", d->api_url);
    snprintf(hello->config_dir, sizeof hello->config_dir, "%s",
             d->config_dir ? d->config_dir : "");
    snprintf(hello->env_api_key, sizeof hello->env_api_key, "%s",
             d->env_api_key ? d->env_api_key : "");
    snprintf(hello->app_name, sizeof hello->app_name, "%s", d->app_name);

    rc = SPELL_EIO;
    pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        sigset_t none;

        /* The child: async-signal-safe calls only. */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        if (sv[1] == DESKTOP_HELPER_FD) {
            int fl = fcntl(sv[1], F_GETFD);
            fcntl(sv[1], F_SETFD, fl & ~FD_CLOEXEC);
        } else if (dup2(sv[1], DESKTOP_HELPER_FD) < 0) {
            _exit(127);
        }
        syscall(SYS_close_range, DESKTOP_HELPER_FD + 1, ~0U, 0);
        execve(d->helper_path, argv, env);
        _exit(127);
    }
    close(sv[1]);
    sv[1] = -1;
    d->pid = pid;
    d->sock = sv[0];
    sv[0] = -1;
    d->started_ms = now_ms();
    d->starts++;
    fcntl(d->sock, F_SETFL, fcntl(d->sock, F_GETFL) | O_NONBLOCK);
    ev.data.fd = d->sock;
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->sock, &ev) != 0 ||
        wire_send(d->sock, hello, sizeof *hello) != 0) {
        snprintf(why, whylen, "cannot reach it: %s", strerror(errno));
        goto out;
    }
    d->state = HELPER_UP;
    d->want_out = false;
    d->notes_ok = d->notifications;
    if (d->notes_dropped) {
        desktop_log("desktop: the helper is back; %u notifications were dropped meanwhile",
                    d->notes_dropped);
        d->notes_dropped = 0;
    }
    rc = SPELL_OK;
out:
    if (hello) {
        explicit_bzero(hello, sizeof *hello);
        free(hello);
    }
    free(env);
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    return rc;
}

static void helper_start(struct desktop *d)
{
    char why[200];

    if (helper_spawn(d, why, sizeof why) != SPELL_OK)
        helper_down(d, why, true);
}

/* Writes the outbox to the socket as far as it takes it. */
static void flush(struct desktop *d)
{
    struct outmsg *m;

    while (d->state == HELPER_UP && (m = d->out_head) != NULL) {
        if (wire_send(d->sock, m->data, m->len) != 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            helper_down(d, "cannot be written to", true);
            return;
        }
        d->out_head = m->next;
        if (!d->out_head)
            d->out_tail = NULL;
        if (m->is_note && --d->out_notes == 0)
            d->note_drop_logged = false;
        outmsg_free(m);
    }
    if (d->state == HELPER_UP)
        watch_socket(d, d->out_head != NULL);
}

static void out_append(struct desktop *d, struct outmsg *m)
{
    m->next = NULL;
    if (d->out_tail)
        d->out_tail->next = m;
    else
        d->out_head = m;
    d->out_tail = m;
    if (m->is_note)
        d->out_notes++;
}

/* Drops the oldest note of the outbox. */
static void out_drop_note(struct desktop *d)
{
    struct outmsg **pp = &d->out_head, *prev = NULL;

    while (*pp && !(*pp)->is_note) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    {
        struct outmsg *m = *pp;
        *pp = m->next;
        if (d->out_tail == m)
            d->out_tail = prev;
        d->out_notes--;
        outmsg_free(m);
    }
}

/* Checks a WIRE_RESULT against the oldest request in flight and fills
 * its result.  false for anything the helper had no business sending. */
static bool take_result(struct desktop *d, size_t len, char *why, size_t whylen)
{
    const struct wire_result *m = (const struct wire_result *)d->buf;
    struct pending *p = d->req_head;

    if (!wire_result_ok(d->buf, len, why, whylen))
        return false;
    while (p && p->finished)
        p = p->next;
    if (!p || p->id != m->id) {
        snprintf(why, whylen, "an answer to no request");
        return false;
    }
    p->res.rc = m->rc;
    p->res.source = (enum desktop_cred_source)m->source;
    p->res.keyring_available = m->keyring_available;
    p->res.removed = m->removed;
    memcpy(p->res.token, m->token, sizeof p->res.token);
    memcpy(p->res.account, m->account, sizeof p->res.account);
    memcpy(p->res.path, m->path, sizeof p->res.path);
    memcpy(p->res.message, m->message, sizeof p->res.message);
    p->finished = true;
    return true;
}

/* Reads every message that waits on the socket. */
static void read_socket(struct desktop *d)
{
    char why[160];

    while (d->state == HELPER_UP) {
        long n = wire_recv(d->sock, d->buf, true);
        uint32_t type;
        bool ok;

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n == 0 || n == -1) {
            helper_down(d, n == 0 || errno == ECONNRESET ? "exited" : "cannot be read from",
                        false);
            return;
        }
        if (n == -2) {
            helper_down(d, "sent an oversized message; refused", true);
            return;
        }
        type = wire_type_of(d->buf, (size_t)n);
        snprintf(why, sizeof why, "an unknown message");
        if (type == WIRE_RESULT)
            ok = take_result(d, (size_t)n, why, sizeof why);
        else if ((ok = type == WIRE_NOTES_OFF && n == sizeof(struct wire_hdr)))
            d->notes_ok = false;
        explicit_bzero(d->buf, (size_t)n);
        if (!ok) {
            char line[200];
            snprintf(line, sizeof line, "sent %s; refused", why);
            helper_down(d, line, true);
            return;
        }
    }
}

static void desktop_free(struct desktop *d)
{
    struct pending *p;
    struct outmsg *m;

    if (!d)
        return;
    if (d->sock >= 0)
        close(d->sock);
    d->sock = -1;
    helper_reap(d, false, NULL, 0);
    while ((p = d->req_head) != NULL) {
        d->req_head = p->next;
        pending_free(p);
    }
    while ((m = d->out_head) != NULL) {
        d->out_head = m->next;
        outmsg_free(m);
    }
    if (d->env_api_key) {
        explicit_bzero(d->env_api_key, strlen(d->env_api_key));
        free(d->env_api_key);
    }
    free(d->api_url);
    free(d->config_dir);
    free(d->app_name);
    free(d->helper_path);
    if (d->tfd >= 0)
        close(d->tfd);
    if (d->epfd >= 0)
        close(d->epfd);
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

/* The helper beside the daemon's executable, else the installed one. */
static int find_helper(const char *given, char **out)
{
    char self[PATH_MAX], path[PATH_MAX + sizeof HELPER_NAME];
    ssize_t n;

    if (given)
        return dup_capped(given, PATH_MAX - 1, out);
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        char *slash;

        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash) {
            slash[1] = '\0';
            snprintf(path, sizeof path, "%s%s", self, HELPER_NAME);
            if (access(path, X_OK) == 0)
                return dup_capped(path, PATH_MAX - 1, out);
        }
    }
    return dup_capped(SPELL_LIBEXECDIR "/" HELPER_NAME, PATH_MAX - 1, out);
}

int desktop_start(const struct desktop_config *cfg, struct desktop **out)
{
    int rc = SPELL_EINVAL;
    struct desktop *d = NULL;
    struct epoll_event ev = { .events = EPOLLIN };

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
    d->epfd = d->tfd = d->sock = -1;
    d->pid = -1;
    if ((rc = dup_capped(cfg->api_url, DESKTOP_URL_MAX, &d->api_url)) != SPELL_OK ||
        (rc = dup_capped(cfg->config_dir, DESKTOP_PATH_MAX - 32, &d->config_dir)) != SPELL_OK ||
        (rc = dup_capped(cfg->app_name ? cfg->app_name : "spell-agent", DESKTOP_APP_NAME_MAX,
                         &d->app_name)) != SPELL_OK ||
        (rc = find_helper(cfg->helper_path, &d->helper_path)) != SPELL_OK)
        goto out;
    rc = SPELL_EINVAL;
    if (!d->app_name[0])
        goto out;
    if (cfg->env_api_key && cfg->env_api_key[0]) {
        if (!cred_text_ok(cfg->env_api_key, strlen(cfg->env_api_key), DESKTOP_TOKEN_MAX))
            goto out;
        if ((rc = dup_capped(cfg->env_api_key, DESKTOP_TOKEN_MAX, &d->env_api_key)) != SPELL_OK)
            goto out;
    }
    d->no_plaintext = cfg->no_plaintext;
    d->notifications = cfg->notifications;
    d->notes_ok = cfg->notifications;
    d->keyring_timeout_ms = cfg->keyring_timeout_ms > 0 ? cfg->keyring_timeout_ms
                                                       : DESKTOP_KEYRING_TIMEOUT_MS;
    d->backoff_ms = HELPER_BACKOFF_MIN_MS;

    rc = SPELL_ENOTFOUND;
    if (access(d->helper_path, X_OK) != 0) {
        desktop_log("desktop: cannot run the helper %s: %s", d->helper_path, strerror(errno));
        goto out;
    }
    rc = SPELL_EIO;
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    ev.data.fd = d->tfd;
    if (d->epfd < 0 || d->tfd < 0 || epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->tfd, &ev) != 0)
        goto out;
    helper_start(d);
    *out = d;
    d = NULL;
    rc = SPELL_OK;
out:
    desktop_free(d);
    return rc;
}

int desktop_fd(struct desktop *d)
{
    return d ? d->epfd : -1;
}

void desktop_dispatch(struct desktop *d)
{
    uint64_t n;
    struct pending *p;

    if (!d)
        return;
    /* The epoll descriptor is level-triggered: it stops polling readable
     * once the timer is read and the socket drained (or no longer
     * wanted for writing). */
    while (read(d->tfd, &n, sizeof n) > 0)
        ;
    if (d->state == HELPER_UP)
        read_socket(d);
    if (d->state == HELPER_DOWN && now_ms() >= d->restart_ms)
        helper_start(d);
    flush(d);
    while ((p = d->req_head) != NULL && p->finished) {
        d->req_head = p->next;
        if (!d->req_head)
            d->req_tail = NULL;
        d->nreq--;
        if (p->done)
            p->done(p->ud, &p->res);
        pending_free(p);
    }
    timer_update(d);
}

static int cred_request(struct desktop *d, enum cred_op op, const char *token,
                        const char *account, desktop_cred_done_fn done, void *ud)
{
    int rc = SPELL_EINVAL;
    struct pending *p = NULL;
    struct outmsg *m = NULL;
    struct wire_cred *w;

    if (!d || !done)
        goto out;
    if (op == CRED_SAVE) {
        if (!token || !account ||
            !cred_text_ok(token, strnlen(token, DESKTOP_TOKEN_MAX + 1), DESKTOP_TOKEN_MAX) ||
            !cred_text_ok(account, strnlen(account, DESKTOP_ACCOUNT_MAX + 1),
                          DESKTOP_ACCOUNT_MAX))
            goto out;
    }
    rc = SPELL_ETOOBIG;
    if (d->nreq >= DESKTOP_CRED_QUEUE_MAX)
        goto out;
    rc = SPELL_ENOMEM;
    p = calloc(1, sizeof *p);
    if (!p)
        goto out;
    p->id = ++d->next_id;
    p->done = done;
    p->ud = ud;
    if (d->state == HELPER_UP) {
        m = calloc(1, sizeof *m + sizeof *w);
        if (!m)
            goto out;
        m->len = sizeof *w;
        w = (struct wire_cred *)m->data;
        w->h.type = WIRE_CRED;
        w->h.version = WIRE_VERSION;
        w->id = p->id;
        w->op = (uint32_t)op;
        if (op == CRED_SAVE) {
            memcpy(w->token, token, strlen(token) + 1);
            memcpy(w->account, account, strlen(account) + 1);
        }
        out_append(d, m);
        m = NULL;
    } else {
        pending_fail(p, d->down_reason);
    }
    if (d->req_tail)
        d->req_tail->next = p;
    else
        d->req_head = p;
    d->req_tail = p;
    d->nreq++;
    p = NULL;
    flush(d);
    timer_update(d);
    rc = SPELL_OK;
out:
    pending_free(p);
    outmsg_free(m);
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

/* Copies text into a fixed field the way desktop_text_dup() cuts it. */
static int note_field(char *dst, size_t cap, const char *s, size_t max)
{
    char *t = desktop_text_dup(s, max);

    if (!t)
        return SPELL_ENOMEM;
    snprintf(dst, cap, "%s", t);
    free(t);
    return SPELL_OK;
}

int desktop_notify(struct desktop *d, const struct desktop_note *n)
{
    int rc = SPELL_EINVAL;
    struct outmsg *m = NULL;
    struct wire_note *w;

    if (!d || !n || !n->summary || !n->summary[0])
        goto out;
    if (n->urgency < DESKTOP_URGENCY_LOW || n->urgency > DESKTOP_URGENCY_CRITICAL)
        goto out;
    rc = SPELL_OK;
    if (!d->notes_ok)
        goto out;
    if (d->state != HELPER_UP) {
        d->notes_dropped++;
        if (!d->drop_logged) {
            d->drop_logged = true;
            desktop_log("desktop: the helper is down; dropping notifications until it is back");
        }
        goto out;
    }
    rc = SPELL_ENOMEM;
    m = calloc(1, sizeof *m + sizeof *w);
    if (!m)
        goto out;
    m->is_note = true;
    m->len = sizeof *w;
    w = (struct wire_note *)m->data;
    w->h.type = WIRE_NOTE;
    w->h.version = WIRE_VERSION;
    w->urgency = n->urgency;
    w->timeout_ms = n->timeout_ms < -1 ? -1 : n->timeout_ms;
    if ((rc = note_field(w->summary, sizeof w->summary, n->summary,
                         DESKTOP_NOTE_SUMMARY_MAX)) != SPELL_OK ||
        (n->body && (rc = note_field(w->body, sizeof w->body, n->body,
                                     DESKTOP_NOTE_BODY_MAX)) != SPELL_OK) ||
        (n->icon && (rc = note_field(w->icon, sizeof w->icon, n->icon,
                                     DESKTOP_PATH_MAX)) != SPELL_OK))
        goto out;
    w->has_body = n->body != NULL;
    /* Control characters the wire refuses (the text is shown, not run). */
    for (char *s = w->summary; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
    for (char *s = w->body; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') || *s == 0x7f)
            *s = ' ';
    for (char *s = w->icon; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
    if (d->out_notes >= DESKTOP_NOTE_QUEUE_MAX) {
        out_drop_note(d);
        if (!d->note_drop_logged) {
            d->note_drop_logged = true;
            desktop_log("desktop: more than %d notifications waiting; dropping the oldest",
                        DESKTOP_NOTE_QUEUE_MAX);
        }
    }
    out_append(d, m);
    m = NULL;
    flush(d);
    rc = SPELL_OK;
out:
    outmsg_free(m);
    return rc;
}

bool desktop_notifications_available(struct desktop *d)
{
    return d && d->notes_ok;
}

bool desktop_helper_info(struct desktop *d, int *pid, unsigned *starts)
{
    if (pid)
        *pid = d && d->state == HELPER_UP ? (int)d->pid : 0;
    if (starts)
        *starts = d ? d->starts : 0;
    return d && d->state == HELPER_UP;
}

void desktop_stop(struct desktop *d)
{
    desktop_free(d);
}
