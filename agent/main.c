/*
 * spell-agent: the per-user daemon (docs/agent.md, docs/spell-agent.1).
 *
 * main() reads the flags and the client configuration, opens the queue,
 * binds the socket, starts the curl multi and the desktop module, puts
 * rows a crash left submitting back to pending, resumes following every
 * accepted cast, and then runs the one event loop (run()) until SIGTERM or
 * SIGINT.  Signals arrive through a signalfd: no work happens in a
 * handler.
 *
 * The loop is the daemon's one thread (GLib runs in the desktop helper, a
 * process of its own): client sockets, signals, the desktop fd and every
 * HTTP transfer, the submissions' POSTs included, wait in one
 * spell_http_multi_poll().
 *
 * Shutdown drains: the listening socket stops accepting, every request
 * still waiting is answered with -32040, streams are closed, and
 * submissions in flight get up to AGENT_DRAIN_MS to come back (what has
 * not come back by then stays submitting in the queue and is resent, with
 * the same Idempotency-Key, on the next start).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/signalfd.h>

#include "spell/clock.h"
#include "spell/config.h"
#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/http.h"
#include "spell/version.h"

#include "agent.h"
#include "desktop/desktop.h"

/* The longest the loop sleeps without a deadline, in ms. */
#define LOOP_IDLE_MS 1000

void agent_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "spell-agent: %s\n", line);
}

uint32_t agent_random32(void)
{
    uint32_t r = 0;

    if (spell_random_bytes(&r, sizeof(r)) != SPELL_OK)
        r = (uint32_t)spell_time_now_ms();
    return r;
}

static void usage(FILE *f)
{
    fputs("Usage: spell-agent [flags]\n"
          "\n"
          "The per-user spell daemon: keeps the credential, queues casts durably,\n"
          "follows their progress and raises desktop notifications.\n"
          "\n"
          "  --foreground          run in the foreground (the default; systemd runs it so)\n"
          "  --socket PATH         the socket (default $XDG_RUNTIME_DIR/spell/agent.sock)\n"
          "  --state-dir DIR       where agent.db lives (default $XDG_STATE_HOME/spell)\n"
          "  --api-url URL         the platform (default SPELL_API_URL, the config file,\n"
          "                        or " SPELL_CONFIG_DEFAULT_API_URL ")\n"
          "  --no-plaintext        never store the credential in a file\n"
          "  --max-concurrent N    submissions in flight at once, 1..64 (default 4)\n"
          "  --no-notifications    raise no desktop notifications\n"
          "  -h, --help            show this help and exit\n"
          "  -V, --version         print the version and exit\n", f);
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return SPELL_EINVAL;
    *out = (int)v;
    return SPELL_OK;
}

enum {
    OPT_FOREGROUND = 256,
    OPT_SOCKET,
    OPT_STATE_DIR,
    OPT_API_URL,
    OPT_NO_PLAINTEXT,
    OPT_MAX_CONCURRENT,
    OPT_NO_NOTIFICATIONS,
};

static const struct option long_opts[] = {
    {"foreground", no_argument, NULL, OPT_FOREGROUND},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"api-url", required_argument, NULL, OPT_API_URL},
    {"no-plaintext", no_argument, NULL, OPT_NO_PLAINTEXT},
    {"max-concurrent", required_argument, NULL, OPT_MAX_CONCURRENT},
    {"no-notifications", no_argument, NULL, OPT_NO_NOTIFICATIONS},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Returns 0 to go on, 1 for a usage error, -1 to exit 0 (help, version). */
static int parse_flags(int argc, char **argv, struct agent *a, struct spell_config *cfg,
                       const struct spell_env *env)
{
    char err[512];
    const char *sock = NULL, *state = NULL, *url = NULL;
    int max = 0;
    int opt;

    while ((opt = getopt_long(argc, argv, "hV", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_FOREGROUND:
            break;
        case OPT_SOCKET:
            sock = optarg;
            break;
        case OPT_STATE_DIR:
            state = optarg;
            break;
        case OPT_API_URL:
            url = optarg;
            break;
        case OPT_NO_PLAINTEXT:
            a->opt.no_plaintext = true;
            break;
        case OPT_MAX_CONCURRENT:
            if (parse_int(optarg, 1, SPELL_CONFIG_MAX_CASTS_LIMIT, &max) != SPELL_OK) {
                fprintf(stderr, "spell-agent: --max-concurrent must be 1..%d\n",
                        SPELL_CONFIG_MAX_CASTS_LIMIT);
                return 1;
            }
            break;
        case OPT_NO_NOTIFICATIONS:
            a->opt.notifications = false;
            break;
        case 'h':
            usage(stdout);
            return -1;
        case 'V':
            printf("spell-agent %s (protocol %d)\n", spell_version(), AGENT_PROTOCOL_VERSION);
            return -1;
        default:
            fputs("Try 'spell-agent --help'.\n", stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "spell-agent: unexpected argument '%s'\nTry 'spell-agent --help'.\n",
                argv[optind]);
        return 1;
    }
    if (sock) {
        if (sock[0] != '/' || strlen(sock) > SPELL_SOCKET_PATH_MAX) {
            fprintf(stderr, "spell-agent: --socket must be an absolute path of at most %d bytes\n",
                    SPELL_SOCKET_PATH_MAX);
            return 1;
        }
        snprintf(a->opt.socket_path, sizeof(a->opt.socket_path), "%s", sock);
    } else if (spell_path_agent_socket(env, a->opt.socket_path, sizeof(a->opt.socket_path), err,
                                       sizeof(err)) != SPELL_OK) {
        fprintf(stderr, "spell-agent: %s (or give --socket)\n", err);
        return 1;
    }
    if (state) {
        if (state[0] != '/' || strlen(state) >= sizeof(a->opt.state_dir) - 16) {
            fputs("spell-agent: --state-dir must be an absolute path\n", stderr);
            return 1;
        }
        snprintf(a->opt.state_dir, sizeof(a->opt.state_dir), "%s", state);
    } else if (spell_path_state_dir(env, a->opt.state_dir, sizeof(a->opt.state_dir), err,
                                    sizeof(err)) != SPELL_OK) {
        fprintf(stderr, "spell-agent: %s (or give --state-dir)\n", err);
        return 1;
    }
    if (spell_path_config_dir(env, a->opt.config_dir, sizeof(a->opt.config_dir), err,
                              sizeof(err)) != SPELL_OK)
        a->opt.config_dir[0] = '\0';
    if (url) {
        size_t n = strlen(url);

        while (n > 0 && url[n - 1] == '/')
            n--;
        if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
            n > SPELL_CONFIG_URL_MAX) {
            fputs("spell-agent: --api-url must be an http:// or https:// URL\n", stderr);
            return 1;
        }
        a->opt.api_url = strndup(url, n);
    } else {
        a->opt.api_url = strdup(cfg->api_url);
    }
    if (!a->opt.api_url) {
        fputs("spell-agent: out of memory\n", stderr);
        return 1;
    }
    a->opt.max_concurrent = max ? max : cfg->max_concurrent_casts;
    if (!cfg->notify)
        a->opt.notifications = false;
    return 0;
}

static int open_signals(struct agent *a)
{
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return SPELL_EIO;
    a->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return a->signal_fd >= 0 ? SPELL_OK : SPELL_EIO;
}

static void read_signals(struct agent *a)
{
    struct signalfd_siginfo si;

    while (read(a->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP)
            continue;   /* nothing to reload; the journal keeps the log */
        if (!a->stopping) {
            agent_log("signal %u: draining", si.ssi_signo);
            a->stopping = true;
            a->stop_deadline = spell_time_now_ms() + AGENT_DRAIN_MS;
        }
    }
}

/* Resumes what the last run left: submitting rows back to pending, and
 * every accepted cast followed again. */
static int resume_queue(struct agent *a)
{
    struct lcast *v = NULL;
    size_t n = 0;
    int changed = 0;
    int rc;

    if ((rc = queue_reset_submitting(a->queue, &changed)) != SPELL_OK)
        return rc;
    if (changed)
        agent_log("%d submission(s) interrupted by the last stop will be sent again", changed);
    if ((rc = queue_list_active(a->queue, &v, &n)) != SPELL_OK)
        return rc;
    for (size_t i = 0; i < n && rc == SPELL_OK; i++)
        rc = follow_start(a, &v[i]);
    if (n)
        agent_log("following %zu cast(s) again", n);
    queue_free_list(v, n);
    return rc;
}

static void begin_stop(struct agent *a)
{
    /* Answer everything that waits, close the door, end the streams. */
    rpc_fail_all(a);
    if (a->listen_fd >= 0) {
        close(a->listen_fd);
        a->listen_fd = -1;
        unlink(a->opt.socket_path);
    }
    http_get_cancel_all(a);
    follow_stop_all(a);
}

static int run(struct agent *a)
{
    /* signalfd, listen, desktop, and one per client. */
    struct spell_pollfd fds[3 + AGENT_MAX_CLIENTS];
    struct client *polled[AGENT_MAX_CLIENTS];
    bool stop_begun = false;

    for (;;) {
        unsigned n = 0, nc = 0;
        int64_t now = spell_time_now_ms(), next = 0, t;
        int timeout;
        int i_listen = -1, i_desktop = -1;

        if (a->stopping && !stop_begun) {
            begin_stop(a);
            stop_begun = true;
        }
        if (stop_begun && (a->in_flight == 0 || now >= a->stop_deadline))
            break;

        if (now >= a->follow_tick_at || a->stopping) {
            next = follow_tick(a, now);
            a->follow_tick_at = now + FOLLOW_TICK_MS;
        } else {
            /* Skipped: come back for it; what it would start waits at most
             * FOLLOW_TICK_MS. */
            next = a->follow_tick_at;
        }
        t = events_tick_waiters(a, now);
        if (t && (!next || t < next))
            next = t;
        submit_pump(a);
        t = submit_next_due(a);
        if (t && (!next || t < next))
            next = t;
        server_reap(a);

        fds[n++] = (struct spell_pollfd){a->signal_fd, SPELL_POLLIN, 0};
        if (a->listen_fd >= 0 && a->n_clients < AGENT_MAX_CLIENTS) {
            i_listen = (int)n;
            fds[n++] = (struct spell_pollfd){a->listen_fd, SPELL_POLLIN, 0};
        }
        if (a->desktop) {
            i_desktop = (int)n;
            fds[n++] = (struct spell_pollfd){desktop_fd(a->desktop), SPELL_POLLIN, 0};
        }
        for (struct client *c = a->clients; c && nc < AGENT_MAX_CLIENTS; c = c->next) {
            short ev = 0;

            if (c->outstanding < AGENT_MAX_OUTSTANDING && !c->close_after_flush)
                ev |= SPELL_POLLIN;
            if (c->out.len > 0)
                ev |= SPELL_POLLOUT;
            polled[nc++] = c;
            fds[n++] = (struct spell_pollfd){c->fd, ev, 0};
        }
        timeout = LOOP_IDLE_MS;
        if (next) {
            int64_t d = next - now;

            timeout = d < 0 ? 0 : (d < LOOP_IDLE_MS ? (int)d : LOOP_IDLE_MS);
        }
        if (stop_begun)
            timeout = 100;
        if (spell_http_multi_poll(a->multi, fds, n, timeout) != SPELL_OK) {
            agent_log("poll failed");
            return 1;
        }
        if (fds[0].revents)
            read_signals(a);
        if (i_desktop >= 0 && fds[i_desktop].revents)
            desktop_dispatch(a->desktop);
        if (i_listen >= 0 && fds[i_listen].revents && a->listen_fd >= 0)
            server_accept(a);
        for (unsigned i = 0; i < nc; i++) {
            struct spell_pollfd *p = &fds[n - nc + i];
            struct client *c = polled[i];

            if (p->revents & SPELL_POLLOUT)
                server_client_write(a, c);
            if (p->revents & ~SPELL_POLLOUT)
                server_client_read(a, c);
            if (c->out.len > 0)
                server_client_write(a, c);
        }
        spell_http_multi_perform(a->multi, NULL);
        /* Answers queued by callbacks go out without waiting a turn. */
        for (struct client *c = a->clients; c; c = c->next) {
            if (c->out.len > 0)
                server_client_write(a, c);
        }
    }
    return 0;
}

static const char *env_lookup(void *user, const char *name)
{
    return getenv(name);
}

int main(int argc, char **argv)
{
    struct agent a;
    struct spell_env env = {env_lookup, NULL};
    struct spell_config cfg;
    struct desktop_config dc = {0};
    char err[512];
    char db[AGENT_PATH_MAX + 16];
    int status = 1;
    int r;

    memset(&a, 0, sizeof(a));
    a.listen_fd = -1;
    a.signal_fd = -1;
    a.opt.notifications = true;
    a.started_ms = spell_time_now_ms();
    if (spell_config_load(&cfg, &env, err, sizeof(err)) != SPELL_OK) {
        fprintf(stderr, "spell-agent: %s\n", err);
        return 1;
    }
    r = parse_flags(argc, argv, &a, &cfg, &env);
    if (r != 0) {
        status = r < 0 ? 0 : 1;
        goto out;
    }
    if (cfg.api_key && !(a.env_api_key = strdup(cfg.api_key)))
        goto out;
    if (spell_http_global_init() != SPELL_OK || open_signals(&a) != SPELL_OK) {
        agent_log("cannot set up signals or HTTP");
        goto out;
    }
    if (spell_path_mkdir_private(a.opt.state_dir, err, sizeof(err)) != SPELL_OK) {
        agent_log("%s", err);
        goto out;
    }
    snprintf(db, sizeof(db), "%s/agent.db", a.opt.state_dir);
    if (server_listen(&a, err, sizeof(err)) != SPELL_OK) {
        agent_log("%s", err);
        goto out;
    }
    if (queue_open(db, &a.queue, err, sizeof(err)) != SPELL_OK) {
        agent_log("%s", err);
        goto out;
    }
    if (spell_http_multi_new(&a.multi) != SPELL_OK) {
        agent_log("cannot start the HTTP machinery");
        goto out;
    }
    dc.api_url = a.opt.api_url;
    dc.config_dir = a.opt.config_dir[0] ? a.opt.config_dir : NULL;
    dc.env_api_key = a.env_api_key;
    dc.no_plaintext = a.opt.no_plaintext;
    dc.notifications = a.opt.notifications;
    dc.app_name = "spell-agent";
    if (desktop_start(&dc, &a.desktop) != SPELL_OK) {
        agent_log("the desktop module cannot start: no keyring and no notifications; "
                  "SPELL_API_KEY still works");
        a.desktop = NULL;
    }
    if (resume_queue(&a) != SPELL_OK || creds_start(&a) != SPELL_OK) {
        agent_log("cannot resume the queue");
        goto out;
    }
    agent_log("listening on %s (API %s, %d at once)", a.opt.socket_path, a.opt.api_url,
              a.opt.max_concurrent);
    status = run(&a);
    agent_log("stopped");
out:
    rpc_fail_all(&a);
    server_close_all(&a);
    if (a.multi) {
        /* POSTs still on the wire after the drain are dropped: their rows
         * stay submitting and are sent again on the next start. */
        sender_cancel_all(&a);
        http_get_cancel_all(&a);
        follow_stop_all(&a);
        spell_http_multi_free(a.multi);
    }
    desktop_stop(a.desktop);
    creds_free_logins(&a);
    while (a.calls)
        rpc_error(&a, a.calls, AGENT_ERR_SHUTTING_DOWN, "the agent is shutting down", NULL);
    queue_close(a.queue);
    creds_clear(&a);
    if (a.env_api_key) {
        explicit_bzero(a.env_api_key, strlen(a.env_api_key));
        free(a.env_api_key);
    }
    free(a.opt.api_url);
    if (a.signal_fd >= 0)
        close(a.signal_fd);
    spell_config_free(&cfg);
    return status;
}
