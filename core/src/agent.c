/*
 * The client side of the agent protocol (spell/agent.h).
 *
 * Inbound bytes collect in `in`; `tail` counts the bytes after its last
 * '\n' (the line still arriving).  When that line passes the cap, it is
 * cut off, later bytes are dropped until its newline (`discarding`), and
 * take() reports it once.  Complete lines are parsed and classified one at
 * a time by take_line(); notifications that a blocking call meets are
 * parked in a ring (`queue`) for take() to hand out later.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "spell/agent.h"
#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/json.h"

/* One read() takes at most this many bytes. */
#define READ_CHUNK (64 * 1024)

/* The inbound buffer: one whole line with its newline plus one read. */
#define IN_CAP (SPELL_AGENT_LINE_MAX + 1 + READ_CHUNK)

/* Queued notifications may hold at most this many bytes of message text
 * together; past it the oldest are dropped. */
#define QUEUE_BYTES_MAX (8 * 1024 * 1024)

/* Messages from the agent are nested at most this deep. */
#define MSG_DEPTH_MAX 64

struct queued {
    cJSON *root;
    size_t bytes;   /* the length of the line it came from */
};

struct spell_agent {
    int fd;
    int64_t next_id;
    struct spell_buf in;
    size_t tail;        /* bytes of the unterminated last line in `in` */
    bool discarding;    /* dropping an oversized line up to its newline */
    unsigned toobig;    /* oversized lines not yet reported by take() */
    bool eof;           /* the agent closed its end */
    struct spell_buf out;

    void (*notify)(void *user, const char *method, const cJSON *params);
    void *notify_user;

    /* A ring of SPELL_AGENT_NOTIFY_QUEUE_MAX entries: qhead is the oldest,
     * qlen how many are in use, qbytes their line bytes together. */
    struct queued queue[SPELL_AGENT_NOTIFY_QUEUE_MAX];
    size_t qhead;
    size_t qlen;
    size_t qbytes;
    uint64_t dropped;
};

const char *spell_agent_code_sentence(int code)
{
    switch (code) {
    case SPELL_AGENT_ERR_PARSE: return "The agent could not read the message.";
    case SPELL_AGENT_ERR_INVALID_REQUEST: return "The agent refused a malformed request.";
    case SPELL_AGENT_ERR_NO_METHOD: return "The agent does not know that method.";
    case SPELL_AGENT_ERR_INVALID_PARAMS: return "The agent refused the request's parameters.";
    case SPELL_AGENT_ERR_INTERNAL: return "The agent failed inside; its log says more.";
    case SPELL_AGENT_ERR_VERSION:
        return "The agent speaks another protocol version; restart it after upgrading.";
    case SPELL_AGENT_ERR_HELLO_FIRST: return "The connection must begin with agent.hello.";
    case SPELL_AGENT_ERR_TOO_LARGE: return "The message is larger than the agent accepts.";
    case SPELL_AGENT_ERR_SIGNED_OUT: return "You are not signed in; run `spell login --with-key`.";
    case SPELL_AGENT_ERR_KEYRING:
        return "The keyring is unavailable and the agent may not store the credential in a file.";
    case SPELL_AGENT_ERR_NO_CAST: return "No such cast.";
    case SPELL_AGENT_ERR_SERVER_REFUSED: return "The server refused the request.";
    case SPELL_AGENT_ERR_SERVER_UNREACHABLE: return "The server cannot be reached.";
    case SPELL_AGENT_ERR_SHUTTING_DOWN: return "The agent is shutting down.";
    }
    return "The agent answered with an error.";
}

void spell_agent_error_clear(struct spell_agent_error *e)
{
    if (!e)
        return;
    cJSON_Delete(e->data);
    e->data = NULL;
    e->code = 0;
    e->message[0] = '\0';
}

int spell_agent_error_server(const struct spell_agent_error *e, int *status,
                             const char **code, const char **message)
{
    if (!e || !cJSON_IsObject(e->data))
        return SPELL_ENOTFOUND;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(e->data, "status");
    const cJSON *cd = cJSON_GetObjectItemCaseSensitive(e->data, "code");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(e->data, "message");
    if (!cJSON_IsNumber(st) && !cJSON_IsString(cd))
        return SPELL_ENOTFOUND;
    if (status)
        *status = cJSON_IsNumber(st) && st->valuedouble >= 0 && st->valuedouble < 1000
                      ? (int)st->valuedouble : 0;
    if (code)
        *code = cJSON_IsString(cd) ? cd->valuestring : NULL;
    if (message)
        *message = cJSON_IsString(ms) ? ms->valuestring : NULL;
    return SPELL_OK;
}

void spell_agent_msg_clear(struct spell_agent_msg *m)
{
    if (!m)
        return;
    spell_agent_error_clear(&m->error);
    cJSON_Delete(m->root);
    memset(m, 0, sizeof(*m));
}

static int agent_new(int fd, struct spell_agent **out)
{
    struct spell_agent *a = calloc(1, sizeof(*a));
    if (!a)
        return SPELL_ENOMEM;
    a->fd = fd;
    a->next_id = 1;
    spell_buf_init(&a->in, IN_CAP);
    /* Requests waiting for the socket: a few whole lines at most. */
    spell_buf_init(&a->out, SPELL_AGENT_OUT_MAX);
    *out = a;
    return SPELL_OK;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return SPELL_EIO;
    return SPELL_OK;
}

int spell_agent_from_fd(int fd, struct spell_agent **out)
{
    if (!out)
        return SPELL_EINVAL;
    *out = NULL;
    if (fd < 0)
        return SPELL_EINVAL;
    if (set_nonblock(fd) != SPELL_OK)
        return SPELL_EIO;
    return agent_new(fd, out);
}

int spell_agent_connect(const struct spell_env *env, const char *path,
                        struct spell_agent **out, char *err, size_t errlen)
{
    int rc = SPELL_EINVAL;
    int fd = -1;
    char pathbuf[SPELL_SOCKET_PATH_MAX + 1];
    struct sockaddr_un sa;

    if (!out)
        goto out;
    *out = NULL;
    if (!path) {
        if (!env) {
            spell_errf(err, errlen, "no agent socket path and no environment to find one");
            goto out;
        }
        rc = spell_path_agent_socket(env, pathbuf, sizeof(pathbuf), err, errlen);
        if (rc != SPELL_OK)
            goto out;
        path = pathbuf;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        spell_errf(err, errlen, "the agent socket path is too long: %s", path);
        rc = SPELL_ETOOBIG;
        goto out;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        spell_errf(err, errlen, "cannot make a socket: %s", strerror(errno));
        rc = SPELL_EIO;
        goto out;
    }
    if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED) {
            spell_errf(err, errlen, "the agent is not running (nothing answers at %s)", path);
            rc = SPELL_ENOTFOUND;
        } else {
            spell_errf(err, errlen, "cannot connect to the agent at %s: %s", path, strerror(e));
            rc = SPELL_EIO;
        }
        goto out;
    }
    if (set_nonblock(fd) != SPELL_OK) {
        spell_errf(err, errlen, "cannot make the agent socket non-blocking: %s", strerror(errno));
        rc = SPELL_EIO;
        goto out;
    }
    rc = agent_new(fd, out);
    if (rc != SPELL_OK) {
        spell_errf(err, errlen, "out of memory");
        goto out;
    }
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static void queue_drop_oldest(struct spell_agent *a)
{
    struct queued *q = &a->queue[a->qhead];
    cJSON_Delete(q->root);
    a->qbytes -= q->bytes;
    q->root = NULL;
    a->qhead = (a->qhead + 1) % SPELL_AGENT_NOTIFY_QUEUE_MAX;
    a->qlen--;
    a->dropped++;
}

void spell_agent_free(struct spell_agent *a)
{
    if (!a)
        return;
    if (a->fd >= 0)
        close(a->fd);
    while (a->qlen > 0)
        queue_drop_oldest(a);
    spell_buf_free(&a->in);
    spell_buf_free(&a->out);
    free(a);
}

void spell_agent_set_notify(struct spell_agent *a,
                            void (*fn)(void *user, const char *method, const cJSON *params),
                            void *user)
{
    if (!a)
        return;
    a->notify = fn;
    a->notify_user = user;
}

int spell_agent_fd(const struct spell_agent *a)
{
    return a ? a->fd : -1;
}

uint64_t spell_agent_dropped(const struct spell_agent *a)
{
    return a ? a->dropped : 0;
}

bool spell_agent_want_write(const struct spell_agent *a)
{
    return a && a->out.len > 0;
}

int spell_agent_flush(struct spell_agent *a)
{
    if (!a)
        return SPELL_EINVAL;
    while (a->out.len > 0) {
        if (a->fd < 0)
            return SPELL_ENET;
        ssize_t n = send(a->fd, a->out.ptr, a->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return SPELL_OK;
            return SPELL_ENET;
        }
        spell_buf_consume(&a->out, (size_t)n);
    }
    return SPELL_OK;
}

int spell_agent_send(struct spell_agent *a, const char *method, const cJSON *params,
                     int64_t *id)
{
    int rc = SPELL_EINVAL;
    cJSON *req = NULL;
    char *text = NULL;

    if (!a || !method || !*method)
        goto out;
    if (params && !cJSON_IsObject(params) && !cJSON_IsArray(params))
        goto out;
    rc = SPELL_ENOMEM;
    req = cJSON_CreateObject();
    if (!req || spell_json_add_string(req, "jsonrpc", "2.0") ||
        spell_json_add_int64(req, "id", a->next_id) ||
        spell_json_add_string(req, "method", method))
        goto out;
    if (params) {
        if (spell_json_add_copy(req, "params", params))
            goto out;
    } else if (!cJSON_AddObjectToObject(req, "params")) {
        goto out;
    }
    /* Unformatted output escapes every control character in strings, so
     * the text holds no newline. */
    text = cJSON_PrintUnformatted(req);
    if (!text)
        goto out;
    size_t len = strlen(text);
    rc = SPELL_ETOOBIG;
    if (len > SPELL_AGENT_LINE_MAX || a->out.len + len + 1 > a->out.cap)
        goto out;
    if ((rc = spell_buf_add(&a->out, text, len)) != SPELL_OK ||
        (rc = spell_buf_addc(&a->out, '\n')) != SPELL_OK)
        goto out;
    if (id)
        *id = a->next_id;
    a->next_id++;
    rc = spell_agent_flush(a);
out:
    free(text);
    cJSON_Delete(req);
    return rc;
}

int spell_agent_feed(struct spell_agent *a, const char *buf, size_t len)
{
    if (!a || (!buf && len > 0))
        return SPELL_EINVAL;
    if (len > a->in.cap - a->in.len)
        return SPELL_ETOOBIG;
    while (len > 0) {
        const char *nl = memchr(buf, '\n', len);
        size_t seg = nl ? (size_t)(nl - buf) + 1 : len;
        if (a->discarding) {
            if (nl)
                a->discarding = false;
            buf += seg;
            len -= seg;
            continue;
        }
        size_t body = nl ? seg - 1 : seg;
        if (a->tail + body > SPELL_AGENT_LINE_MAX) {
            /* Cut off what arrived of this line; drop the rest. */
            a->in.len -= a->tail;
            if (a->in.ptr)
                a->in.ptr[a->in.len] = '\0';
            a->tail = 0;
            a->toobig++;
            a->discarding = nl == NULL;
            buf += seg;
            len -= seg;
            continue;
        }
        /* It fits: the whole chunk was checked against the cap. */
        int rc = spell_buf_add(&a->in, buf, seg);
        if (rc != SPELL_OK)
            return rc;
        a->tail = nl ? 0 : a->tail + seg;
        buf += seg;
        len -= seg;
    }
    return SPELL_OK;
}

int spell_agent_read(struct spell_agent *a)
{
    char chunk[4096];
    if (!a)
        return SPELL_EINVAL;
    if (a->eof || a->fd < 0)
        return SPELL_ENET;
    size_t budget = READ_CHUNK;
    while (budget > 0) {
        size_t room = a->in.cap - a->in.len;
        size_t want = sizeof(chunk);
        if (want > budget)
            want = budget;
        if (want > room)
            want = room;
        if (want == 0)
            return SPELL_OK;
        ssize_t n = recv(a->fd, chunk, want, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return SPELL_OK;
            a->eof = true;
            return SPELL_ENET;
        }
        if (n == 0) {
            a->eof = true;
            return SPELL_ENET;
        }
        int rc = spell_agent_feed(a, chunk, (size_t)n);
        if (rc != SPELL_OK)
            return rc;
        budget -= (size_t)n;
    }
    return SPELL_OK;
}

/* Reads the error member of an answer into e. */
static int classify_error(const cJSON *error, struct spell_agent_error *e, char *err, size_t errlen)
{
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(error, "data");
    if (!cJSON_IsObject(error) || !cJSON_IsNumber(code) || !cJSON_IsString(message)) {
        spell_errf(err, errlen, "an error answer needs an object with a code and a message");
        return SPELL_EPARSE;
    }
    double c = code->valuedouble;
    if (c != (double)(int)c || c < -2147483647.0 || c > 2147483647.0) {
        spell_errf(err, errlen, "an error code must be an integer");
        return SPELL_EPARSE;
    }
    e->code = (int)c;
    snprintf(e->message, sizeof(e->message), "%s", message->valuestring);
    if (data && !cJSON_IsNull(data)) {
        e->data = cJSON_Duplicate(data, 1);
        if (!e->data)
            return SPELL_ENOMEM;
    }
    return SPELL_OK;
}

/* Checks that root is a JSON-RPC answer or notification and points msg at
 * its parts; msg takes root on success. */
static int classify(cJSON *root, struct spell_agent_msg *msg, char *err, size_t errlen)
{
    int rc = SPELL_EPARSE;
    memset(msg, 0, sizeof(*msg));
    if (!cJSON_IsObject(root)) {
        spell_errf(err, errlen, "a message must be a JSON object");
        goto out;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "jsonrpc");
    if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0") != 0) {
        spell_errf(err, errlen, "member 'jsonrpc' must be \"2.0\"");
        goto out;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(root, "method");
    if (method) {
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "params");
        if (!cJSON_IsString(method) || !*method->valuestring) {
            spell_errf(err, errlen, "member 'method' must be a non-empty string");
            goto out;
        }
        if (id) {
            spell_errf(err, errlen, "the agent sent a request, which this client does not serve");
            goto out;
        }
        if (params && !cJSON_IsObject(params) && !cJSON_IsArray(params)) {
            spell_errf(err, errlen, "member 'params' must be an object or an array");
            goto out;
        }
        msg->kind = SPELL_AGENT_MSG_NOTIFICATION;
        msg->method = method->valuestring;
        msg->params = params;
        msg->root = root;
        return SPELL_OK;
    }
    if (!id || (!cJSON_IsNumber(id) && !cJSON_IsNull(id))) {
        spell_errf(err, errlen, "an answer needs an integer or null 'id'");
        goto out;
    }
    if (cJSON_IsNumber(id)) {
        double d = id->valuedouble;
        if (d != (double)(int64_t)d || d < 1 || d > (double)SPELL_JSON_INT_MAX) {
            spell_errf(err, errlen, "member 'id' must be a positive integer");
            goto out;
        }
        msg->id = (int64_t)d;
    }
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(root, "result");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    if ((result != NULL) == (error != NULL)) {
        spell_errf(err, errlen, "an answer needs exactly one of 'result' and 'error'");
        goto out;
    }
    if (result) {
        if (msg->id == 0) {
            spell_errf(err, errlen, "a result needs an integer 'id'");
            goto out;
        }
        msg->kind = SPELL_AGENT_MSG_RESULT;
        msg->result = result;
    } else {
        rc = classify_error(error, &msg->error, err, errlen);
        if (rc != SPELL_OK) {
            spell_agent_error_clear(&msg->error);
            goto out;
        }
        msg->kind = SPELL_AGENT_MSG_ERROR;
    }
    msg->root = root;
    return SPELL_OK;
out:
    msg->kind = SPELL_AGENT_MSG_NONE;
    return rc;
}

/* Takes the next complete line out of `in` (not the queue).  *bytes
 * receives the line's length. */
static int take_line(struct spell_agent *a, struct spell_agent_msg *msg, size_t *bytes,
                     char *err, size_t errlen)
{
    memset(msg, 0, sizeof(*msg));
    if (a->toobig > 0) {
        a->toobig--;
        spell_errf(err, errlen, "the agent sent a message larger than %d bytes",
                   SPELL_AGENT_LINE_MAX);
        return SPELL_ETOOBIG;
    }
    for (;;) {
        size_t complete = a->in.len - a->tail;
        if (complete == 0)
            return SPELL_OK;
        const char *nl = memchr(a->in.ptr, '\n', complete);
        if (!nl)
            return SPELL_OK;   /* cannot happen: complete ends in '\n' */
        size_t len = (size_t)(nl - a->in.ptr);
        if (len == 0 || (len == 1 && a->in.ptr[0] == '\r')) {
            spell_buf_consume(&a->in, len + 1);
            continue;
        }
        struct spell_json_limits lim = {SPELL_AGENT_LINE_MAX, MSG_DEPTH_MAX};
        cJSON *root = NULL;
        char why[160];
        int rc = spell_json_parse(a->in.ptr, len, &lim, &root, why, sizeof(why));
        spell_buf_consume(&a->in, len + 1);
        if (rc != SPELL_OK) {
            spell_errf(err, errlen, "the agent sent a line that is not JSON: %s", why);
            return rc == SPELL_ENOMEM ? rc : SPELL_EPARSE;
        }
        rc = classify(root, msg, err, errlen);
        if (rc != SPELL_OK) {
            cJSON_Delete(root);
            return rc;
        }
        if (bytes)
            *bytes = len;
        return SPELL_OK;
    }
}

static void queue_push(struct spell_agent *a, struct spell_agent_msg *msg, size_t bytes)
{
    while (a->qlen > 0 &&
           (a->qlen == SPELL_AGENT_NOTIFY_QUEUE_MAX || a->qbytes + bytes > QUEUE_BYTES_MAX))
        queue_drop_oldest(a);
    struct queued *q = &a->queue[(a->qhead + a->qlen) % SPELL_AGENT_NOTIFY_QUEUE_MAX];
    q->root = msg->root;
    q->bytes = bytes;
    a->qlen++;
    a->qbytes += bytes;
    msg->root = NULL;
    spell_agent_msg_clear(msg);
}

static bool queue_pop(struct spell_agent *a, struct spell_agent_msg *msg)
{
    if (a->qlen == 0)
        return false;
    struct queued *q = &a->queue[a->qhead];
    cJSON *root = q->root;
    a->qbytes -= q->bytes;
    q->root = NULL;
    a->qhead = (a->qhead + 1) % SPELL_AGENT_NOTIFY_QUEUE_MAX;
    a->qlen--;
    /* It was classified once already, so this cannot fail. */
    if (classify(root, msg, NULL, 0) != SPELL_OK) {
        cJSON_Delete(root);
        return false;
    }
    return true;
}

int spell_agent_take(struct spell_agent *a, struct spell_agent_msg *msg, char *err, size_t errlen)
{
    if (!a || !msg)
        return SPELL_EINVAL;
    if (queue_pop(a, msg))
        return SPELL_OK;
    return take_line(a, msg, NULL, err, errlen);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the socket is readable (flushing pending output meanwhile)
 * or the deadline (-1: none) passes. */
static int wait_io(struct spell_agent *a, int64_t deadline)
{
    for (;;) {
        int rc = spell_agent_flush(a);
        if (rc != SPELL_OK)
            return rc;
        int timeout = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return SPELL_ETIMEOUT;
            timeout = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd pfd = {a->fd, POLLIN, 0};
        if (spell_agent_want_write(a))
            pfd.events |= POLLOUT;
        int n = poll(&pfd, 1, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SPELL_EIO;
        }
        if (n == 0)
            continue;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
            return SPELL_OK;
    }
}

/*
 * The blocking loop under call and wait_notification: waits for the answer
 * to `want_id` (0: for a notification instead), handing other notifications
 * to the callback or the queue and dropping other answers.
 */
static int pump(struct spell_agent *a, int64_t want_id, int timeout_ms,
                struct spell_agent_msg *got)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    bool closed = false;
    for (;;) {
        struct spell_agent_msg m;
        size_t bytes = 0;
        int rc = take_line(a, &m, &bytes, NULL, 0);
        if (rc != SPELL_OK)
            return rc;
        if (m.kind == SPELL_AGENT_MSG_NONE) {
            if (closed)
                return SPELL_ENET;
            rc = wait_io(a, deadline);
            if (rc != SPELL_OK)
                return rc;
            rc = spell_agent_read(a);
            if (rc == SPELL_ENET)
                closed = true;
            else if (rc != SPELL_OK)
                return rc;
            continue;
        }
        if (m.kind == SPELL_AGENT_MSG_NOTIFICATION) {
            if (want_id == 0) {
                *got = m;
                return SPELL_OK;
            }
            if (a->notify) {
                a->notify(a->notify_user, m.method, m.params);
                spell_agent_msg_clear(&m);
            } else {
                queue_push(a, &m, bytes);
            }
            continue;
        }
        if (want_id != 0 && m.id == want_id) {
            *got = m;
            return SPELL_OK;
        }
        /* An answer to an earlier call that timed out, or an error about
         * a line the agent could not read (id null). */
        spell_agent_msg_clear(&m);
    }
}

int spell_agent_call(struct spell_agent *a, const char *method, const cJSON *params,
                     int timeout_ms, cJSON **result, struct spell_agent_error *e)
{
    int rc = SPELL_EINVAL;
    int64_t id = 0;
    struct spell_agent_msg m = {0};

    if (result)
        *result = NULL;
    if (e)
        spell_agent_error_clear(e);
    if (!a || !method)
        goto out;
    rc = spell_agent_send(a, method, params, &id);
    if (rc != SPELL_OK)
        goto out;
    rc = pump(a, id, timeout_ms, &m);
    if (rc != SPELL_OK)
        goto out;
    if (m.kind == SPELL_AGENT_MSG_ERROR) {
        if (e) {
            *e = m.error;
            m.error.data = NULL;
        }
        rc = SPELL_EHTTP;
        goto out;
    }
    if (result) {
        *result = cJSON_DetachItemViaPointer(m.root, (cJSON *)m.result);
        m.result = NULL;
    }
    rc = SPELL_OK;
out:
    spell_agent_msg_clear(&m);
    return rc;
}

int spell_agent_wait_notification(struct spell_agent *a, int timeout_ms,
                                  struct spell_agent_msg *msg)
{
    if (!a || !msg)
        return SPELL_EINVAL;
    memset(msg, 0, sizeof(*msg));
    if (queue_pop(a, msg))
        return SPELL_OK;
    return pump(a, 0, timeout_ms, msg);
}

int spell_agent_hello(struct spell_agent *a, const char *client, int timeout_ms,
                      char **agent_version, struct spell_agent_error *e)
{
    int rc = SPELL_ENOMEM;
    cJSON *params = NULL;
    cJSON *result = NULL;

    if (agent_version)
        *agent_version = NULL;
    params = cJSON_CreateObject();
    if (!params || spell_json_add_int64(params, "protocol", SPELL_AGENT_PROTOCOL) ||
        spell_json_add_string(params, "client", client ? client : "spell"))
        goto out;
    rc = spell_agent_call(a, "agent.hello", params, timeout_ms, &result, e);
    if (rc != SPELL_OK)
        goto out;
    const cJSON *proto = cJSON_GetObjectItemCaseSensitive(result, "protocol");
    if (!cJSON_IsNumber(proto) || proto->valuedouble != (double)SPELL_AGENT_PROTOCOL) {
        rc = SPELL_EVERIFY;
        goto out;
    }
    if (agent_version) {
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(result, "agent");
        if (cJSON_IsString(ver)) {
            *agent_version = strdup(ver->valuestring);
            if (!*agent_version) {
                rc = SPELL_ENOMEM;
                goto out;
            }
        }
    }
    rc = SPELL_OK;
out:
    cJSON_Delete(result);
    cJSON_Delete(params);
    return rc;
}
