/*
 * The agent's Unix socket: listening, peer checks, and line framing for
 * every connection.
 *
 * The socket lives in a private directory (0700, made by core's
 * spell_path_mkdir_private) and is bound under umask 077, so it is 0600.
 * Before binding, an existing socket file is probed: if an agent answers
 * there, this one refuses to start; if nobody answers, the stale file is
 * removed.  Each accepted connection's peer must have our uid
 * (SO_PEERCRED); any other is closed before a byte is read.
 *
 * Reading: bytes are cut into lines; each line (at most AGENT_MAX_MESSAGE
 * bytes) goes to rpc_handle_line().  A longer line is answered with -32003
 * once and dropped up to its newline; the connection stays usable.  While
 * a connection has AGENT_MAX_OUTSTANDING requests unanswered it is not
 * read (the peer waits, its kernel buffer fills).  Writing: answers and
 * notifications are appended to the connection's output buffer and
 * written when the socket is writable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "spell/config.h"
#include "spell/errors.h"

#include "agent.h"

/* Bytes read from a socket at a time. */
#define READ_CHUNK (64 * 1024)

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return SPELL_ETOOBIG;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return SPELL_OK;
}

/* Whether an agent answers on path. */
static bool socket_answers(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd < 0)
        return false;
    ok = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
    close(fd);
    return ok;
}

int server_listen(struct agent *a, char *err, size_t errlen)
{
    int rc = SPELL_EIO;
    struct sockaddr_un sa;
    char dir[AGENT_PATH_MAX];
    char *slash;
    struct stat st;
    mode_t old;
    int fd = -1;
    const char *path = a->opt.socket_path;
    size_t plen = strnlen(path, sizeof(a->opt.socket_path));

    if (plen >= sizeof(dir)) {
        spell_errf(err, errlen, "socket path too long");
        return SPELL_ETOOBIG;
    }
    if (fill_addr(&sa, path) != SPELL_OK) {
        spell_errf(err, errlen, "socket path too long: %s", path);
        return SPELL_ETOOBIG;
    }
    memcpy(dir, path, plen + 1);
    slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if ((rc = spell_path_mkdir_private(dir, err, errlen)) != SPELL_OK)
            return rc;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            spell_errf(err, errlen, "%s exists and is not a socket", path);
            return SPELL_EINVAL;
        }
        if (socket_answers(&sa)) {
            spell_errf(err, errlen, "another spell-agent is already running on %s",
                       path);
            return SPELL_EINVAL;
        }
        agent_log("removing the stale socket %s", path);
        if (unlink(path) != 0 && errno != ENOENT) {
            spell_errf(err, errlen, "cannot remove %s: %s", path,
                       strerror(errno));
            return SPELL_EIO;
        }
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        spell_errf(err, errlen, "socket: %s", strerror(errno));
        return SPELL_EIO;
    }
    old = umask(077);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        umask(old);
        spell_errf(err, errlen, "cannot bind %s: %s", path, strerror(errno));
        goto fail;
    }
    umask(old);
    if (chmod(path, 0600) != 0 || listen(fd, 64) != 0) {
        const char *why = strerror(errno);

        spell_errf(err, errlen, "cannot listen on %s: %s", path, why ? why : "unknown error");
        unlink(path);
        goto fail;
    }
    a->listen_fd = fd;
    return SPELL_OK;
fail:
    close(fd);
    return SPELL_EIO;
}

static void client_free(struct client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    spell_buf_free(&c->in);
    spell_buf_free(&c->out);
    free(c);
}

void server_accept(struct agent *a)
{
    for (;;) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        struct client *c;
        int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                agent_log("accept: %s", strerror(errno));
            return;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
            cred.uid != geteuid()) {
            agent_log("refused a connection from uid %ld", (long)cred.uid);
            close(fd);
            continue;
        }
        if (a->stopping || a->n_clients >= AGENT_MAX_CLIENTS) {
            close(fd);
            continue;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->id = ++a->next_client_id;
        spell_buf_init(&c->in, AGENT_MAX_MESSAGE);
        spell_buf_init(&c->out, AGENT_MAX_OUTPUT);
        c->next = a->clients;
        a->clients = c;
        a->n_clients++;
    }
}

/* Moves what the socket takes now from c->out to the kernel; never blocks. */
static void client_flush(struct client *c)
{
    while (c->out.len > 0 && !c->dead) {
        ssize_t n = send(c->fd, c->out.ptr, c->out.len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                c->dead = true;
            return;
        }
        spell_buf_consume(&c->out, (size_t)n);
    }
}

void server_client_send(struct client *c, const char *line, size_t len, bool is_event)
{
    if (c->dead)
        return;
    /* A burst (a thousand casts finishing in one turn of the loop) can pass
     * the limit before the loop gets to write: hand the socket what it
     * takes first, so only a subscriber that really does not read is
     * dropped. */
    if (is_event && c->out.len + len + 1 > AGENT_MAX_PENDING_EVENTS)
        client_flush(c);
    if (c->dead)
        return;
    if (is_event && c->out.len + len + 1 > AGENT_MAX_PENDING_EVENTS) {
        agent_log("dropping a subscriber that does not read (%zu bytes waiting)", c->out.len);
        c->dead = true;
        return;
    }
    if (spell_buf_add(&c->out, line, len) != SPELL_OK || spell_buf_addc(&c->out, '\n') != SPELL_OK) {
        agent_log("dropping a client that does not read its answers");
        c->dead = true;
    }
}

/* Takes the bytes of one read: whole lines go to the dispatcher. */
static void take_bytes(struct agent *a, struct client *c, const char *p, size_t n)
{
    while (n > 0 && !c->dead) {
        const char *nl = memchr(p, '\n', n);
        size_t piece = nl ? (size_t)(nl - p) : n;

        if (c->discarding) {
            if (nl)
                c->discarding = false;
        } else if (c->in.len + piece > AGENT_MAX_MESSAGE) {
            rpc_error_raw(c, NULL, AGENT_ERR_TOO_LARGE, "message too large (the limit is 1 MiB)");
            spell_buf_reset(&c->in);
            c->discarding = nl == NULL;
        } else if (spell_buf_add(&c->in, p, piece) != SPELL_OK) {
            c->dead = true;
            return;
        } else if (nl) {
            rpc_handle_line(a, c, c->in.ptr ? c->in.ptr : "", c->in.len);
            spell_buf_reset(&c->in);
        }
        if (!nl)
            return;
        n -= piece + 1;
        p = nl + 1;
    }
}

void server_client_read(struct agent *a, struct client *c)
{
    char chunk[READ_CHUNK];

    if (c->dead || c->close_after_flush)
        return;
    for (int i = 0; i < 4 && c->outstanding < AGENT_MAX_OUTSTANDING; i++) {
        ssize_t n = read(c->fd, chunk, sizeof(chunk));

        if (n == 0) {
            c->dead = true;
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                c->dead = true;
            return;
        }
        take_bytes(a, c, chunk, (size_t)n);
        if (c->dead || c->close_after_flush || (size_t)n < sizeof(chunk))
            return;
    }
}

void server_client_write(struct agent *a, struct client *c)
{
    (void)a;
    client_flush(c);
    if (c->out.len == 0 && c->close_after_flush)
        c->dead = true;
}

void server_reap(struct agent *a)
{
    struct client **pp = &a->clients;

    while (*pp) {
        struct client *c = *pp;

        if (c->dead) {
            *pp = c->next;
            a->n_clients--;
            rpc_client_gone(a, c);
            client_free(c);
        } else {
            pp = &c->next;
        }
    }
}

void server_close_all(struct agent *a)
{
    for (struct client *c = a->clients; c; c = c->next) {
        /* A last try to deliver what waits (the -32040 answers). */
        server_client_write(a, c);
        c->dead = true;
    }
    server_reap(a);
    if (a->listen_fd >= 0) {
        close(a->listen_fd);
        a->listen_fd = -1;
        unlink(a->opt.socket_path);
    }
}
