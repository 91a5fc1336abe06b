/*
 * spell-agent against a real spell-server, through its real socket.
 *
 * The program starts spell-server on 127.0.0.1 with a temporary database
 * (users made with `users add`, the example spells imported, the rate
 * limits raised), then starts spell-agent with its XDG directories in a
 * temporary folder, SPELL_API_KEY in its environment and no session bus
 * (the credential then comes from the environment), and speaks the
 * protocol of docs/agent.md to it line by line, parsing every answer with
 * core's strict JSON parser.
 *
 *   test-daemon SPELL-SERVER SPELL-AGENT CATALOG.json
 *
 * Waits are bounded by generous deadlines; nothing depends on a timing to
 * pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "spell/buf.h"
#include "spell/clock.h"
#include "spell/errors.h"
#include "spell/http.h"
#include "spell/json.h"

#include "tap.h"

#define LINE_MAX_BYTES (8 * 1024 * 1024)
#define WAIT_MS 30000

struct world {
    const char *server_bin;
    const char *agent_bin;
    const char *catalog;
    char dir[256];
    char db[300];
    int port;
    char url[64];
    pid_t server;
    char key_alice[128];
    char key_bob[128];
    char key_carol[128];
    /* The main agent (alice's key). */
    pid_t agent;
    char sock[300];
};

static struct world w;

/* ---- processes ---- */

static pid_t spawn(char *const argv[], char *const env[], const char *out_path)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd;

        setpgid(0, 0);
        fd = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (env)
            execve(argv[0], argv, env);
        else
            execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
    int64_t end = spell_time_now_ms() + timeout_ms;
    int st;

    while (spell_time_now_ms() < end) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void msleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int read_file(const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f)
        return -1;
    n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    return (int)n;
}

static int user_add(const char *login, char *key, size_t keylen)
{
    char out[300], buf[1024];
    char *argv[] = {(char *)w.server_bin, "users", "add", (char *)login, "--db", w.db, NULL};
    pid_t pid;
    char *nl;

    snprintf(out, sizeof(out), "%s/users-%s.out", w.dir, login);
    pid = spawn(argv, NULL, out);
    if (wait_exit(pid, WAIT_MS) != 0 || read_file(out, buf, sizeof(buf)) <= 0)
        return -1;
    nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    if (strncmp(buf, "sk_live_", 8) != 0 || strlen(buf) >= keylen)
        return -1;
    memcpy(key, buf, strlen(buf) + 1);
    return 0;
}

static int server_start(int port)
{
    char portfile[300], listen[64], buf[32];
    char *argv[] = {(char *)w.server_bin, "--db", w.db, "--listen", listen, "--port-file",
                    portfile, "--rate-casts-per-hour", "100000", "--rate-user-per-min", "100000",
                    "--access-log", "off", NULL};
    char log[300];
    int64_t end = spell_time_now_ms() + WAIT_MS;

    snprintf(portfile, sizeof(portfile), "%s/port", w.dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(log, sizeof(log), "%s/server.log", w.dir);
    unlink(portfile);
    w.server = spawn(argv, NULL, log);
    while (spell_time_now_ms() < end) {
        if (read_file(portfile, buf, sizeof(buf)) > 0 && atoi(buf) > 0) {
            w.port = atoi(buf);
            snprintf(w.url, sizeof(w.url), "http://127.0.0.1:%d", w.port);
            return 0;
        }
        msleep(20);
    }
    return -1;
}

/* The address of the socket at path; -1 when the path does not fit. */
static int sock_addr(struct sockaddr_un *sa, const char *path)
{
    size_t n = strlen(path);

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (n >= sizeof(sa->sun_path))
        return -1;
    memcpy(sa->sun_path, path, n + 1);
    return 0;
}

static bool sock_answers(const char *path)
{
    struct sockaddr_un sa;
    int fd;
    bool ok;

    if (sock_addr(&sa, path) != 0)
        return false;
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Starts an agent in <dir>/<name>/ with key (or none); extra flags after.
 * Returns its pid; *sock receives the socket path.  wait_up: wait for the
 * socket to answer. */
static pid_t agent_start(const char *name, const char *key, char *sock, size_t socklen,
                         const char *flag1, bool wait_up)
{
    char base[300], run[340], state[340], config[340], log[340];
    char e_run[400], e_state[400], e_config[400], e_key[200], e_url[128], e_home[400];
    char *env[10];
    int n = 0;
    char *argv[6];
    int a = 0;
    pid_t pid;
    int64_t end = spell_time_now_ms() + WAIT_MS;

    snprintf(base, sizeof(base), "%s/%s", w.dir, name);
    snprintf(run, sizeof(run), "%s/run", base);
    snprintf(state, sizeof(state), "%s/state", base);
    snprintf(config, sizeof(config), "%s/config", base);
    snprintf(log, sizeof(log), "%s/agent.log", base);
    mkdir(base, 0700);
    mkdir(run, 0700);
    snprintf(sock, socklen, "%s/spell/agent.sock", run);
    snprintf(e_run, sizeof(e_run), "XDG_RUNTIME_DIR=%s", run);
    snprintf(e_state, sizeof(e_state), "XDG_STATE_HOME=%s", state);
    snprintf(e_config, sizeof(e_config), "XDG_CONFIG_HOME=%s", config);
    snprintf(e_home, sizeof(e_home), "HOME=%s", base);
    snprintf(e_url, sizeof(e_url), "SPELL_API_URL=%s", w.url);
    env[n++] = e_run;
    env[n++] = e_state;
    env[n++] = e_config;
    env[n++] = e_home;
    env[n++] = e_url;
    env[n++] = "DBUS_SESSION_BUS_ADDRESS=disabled:";
    if (getenv("ASAN_OPTIONS"))
        env[n++] = "ASAN_OPTIONS=detect_leaks=1";
    if (key) {
        snprintf(e_key, sizeof(e_key), "SPELL_API_KEY=%s", key);
        env[n++] = e_key;
    }
    env[n] = NULL;
    argv[a++] = (char *)w.agent_bin;
    argv[a++] = "--foreground";
    if (flag1)
        argv[a++] = (char *)flag1;
    argv[a] = NULL;
    pid = spawn(argv, env, log);
    if (!wait_up)
        return pid;
    while (spell_time_now_ms() < end) {
        if (sock_answers(sock))
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return -1;
        msleep(20);
    }
    return -1;
}

/* ---- the protocol ---- */

struct conn {
    int fd;
    struct spell_buf in;
};

static int conn_open(struct conn *c, const char *sock)
{
    struct sockaddr_un sa;

    spell_buf_init(&c->in, LINE_MAX_BYTES);
    c->fd = -1;
    if (sock_addr(&sa, sock) != 0)
        return -1;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    spell_buf_free(&c->in);
}

static int conn_write(struct conn *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int conn_sendf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int conn_sendf(struct conn *c, const char *fmt, ...)
{
    struct spell_buf b;
    va_list ap;
    char *text = NULL;
    int n, rc = -1;

    va_start(ap, fmt);
    n = vasprintf(&text, fmt, ap);
    va_end(ap);
    spell_buf_init(&b, LINE_MAX_BYTES);
    if (n >= 0 && spell_buf_add(&b, text, (size_t)n) == SPELL_OK &&
        spell_buf_addc(&b, '\n') == SPELL_OK)
        rc = conn_write(c, b.ptr, b.len);
    free(text);
    spell_buf_free(&b);
    return rc;
}

/* The next line, parsed; NULL on EOF, timeout or bad JSON.  *eof is set
 * when the peer closed. */
static cJSON *conn_read(struct conn *c, int timeout_ms, bool *eof)
{
    int64_t end = spell_time_now_ms() + timeout_ms;
    char chunk[65536];

    if (eof)
        *eof = false;
    for (;;) {
        char *nl = c->in.len ? memchr(c->in.ptr, '\n', c->in.len) : NULL;

        if (nl) {
            size_t len = (size_t)(nl - c->in.ptr);
            struct spell_json_limits lim = {LINE_MAX_BYTES, 64};
            cJSON *j = NULL;

            if (spell_json_parse(c->in.ptr, len, &lim, &j, NULL, 0) != SPELL_OK)
                j = NULL;
            spell_buf_consume(&c->in, len + 1);
            return j;
        }
        int64_t left = end - spell_time_now_ms();
        struct pollfd p = {c->fd, POLLIN, 0};

        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return NULL;
        ssize_t n = read(c->fd, chunk, sizeof(chunk));

        if (n <= 0) {
            if (eof)
                *eof = true;
            return NULL;
        }
        if (spell_buf_add(&c->in, chunk, (size_t)n) != SPELL_OK)
            return NULL;
    }
}

/* Reads until the answer with this numeric id; notifications are passed
 * to on_note (may be NULL) and dropped. */
static cJSON *conn_answer(struct conn *c, int id, int timeout_ms,
                          void (*on_note)(const cJSON *n, void *u), void *u)
{
    int64_t end = spell_time_now_ms() + timeout_ms;

    while (spell_time_now_ms() < end) {
        cJSON *j = conn_read(c, (int)(end - spell_time_now_ms()), NULL);
        const cJSON *jid;

        if (!j)
            return NULL;
        jid = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (cJSON_IsNumber(jid) && (int)jid->valuedouble == id)
            return j;
        if (on_note && cJSON_GetObjectItemCaseSensitive(j, "method"))
            on_note(j, u);
        cJSON_Delete(j);
    }
    return NULL;
}

static int err_code(const cJSON *ans)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(ans, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");

    return cJSON_IsNumber(code) ? (int)code->valuedouble : 0;
}

static const char *err_message(const cJSON *ans)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(ans, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");

    return cJSON_IsString(m) ? m->valuestring : "";
}

static const cJSON *result(const cJSON *ans)
{
    return cJSON_GetObjectItemCaseSensitive(ans, "result");
}

static const char *str_at(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t int_at(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

/* Waits until the agent has its credential (it loads it in the
 * background at start). */
static bool signed_in(const char *sock)
{
    int64_t end = spell_time_now_ms() + WAIT_MS;
    bool ok = false;

    while (!ok && spell_time_now_ms() < end) {
        struct conn c;
        cJSON *a;

        if (conn_open(&c, sock) != 0)
            return false;
        conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"agent.hello\","
                       "\"params\":{\"protocol\":1}}");
        cJSON_Delete(conn_answer(&c, 0, WAIT_MS, NULL, NULL));
        conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"auth.status\"}");
        a = conn_answer(&c, 1, WAIT_MS, NULL, NULL);
        ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(a,
                                                           "result"), "signed_in"));
        cJSON_Delete(a);
        conn_close(&c);
        if (!ok)
            msleep(50);
    }
    return ok;
}

static int hello(struct conn *c, const char *sock)
{
    cJSON *a;
    int ok;

    if (conn_open(c, sock) != 0)
        return -1;
    conn_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"agent.hello\","
                  "\"params\":{\"protocol\":1,\"client\":\"test-daemon\"}}");
    a = conn_answer(c, 0, WAIT_MS, NULL, NULL);
    ok = a && result(a) ? 0 : -1;
    cJSON_Delete(a);
    return ok;
}

/* cast.submit; the local id goes to out. */
static int submit(struct conn *c, int id, const char *params, char *out, size_t outlen)
{
    cJSON *a;
    int rc = -1;

    conn_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"cast.submit\",\"params\":%s}", id,
               params);
    a = conn_answer(c, id, WAIT_MS, NULL, NULL);
    if (a && str_at(result(a), "local_id")) {
        snprintf(out, outlen, "%s", str_at(result(a), "local_id"));
        rc = 0;
    }
    cJSON_Delete(a);
    return rc;
}

/* cast.wait; returns the answer (caller frees). */
static cJSON *wait_cast(struct conn *c, int id, const char *local_id, int timeout_ms,
                        void (*on_note)(const cJSON *n, void *u), void *u)
{
    conn_sendf(c, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"cast.wait\","
                  "\"params\":{\"local_id\":\"%s\",\"timeout_ms\":%d}}", id, local_id, timeout_ms);
    return conn_answer(c, id, timeout_ms + 10000, on_note, u);
}

/* ---- the server's API ---- */

static int api(const char *method, const char *path, const char *key, const char *body,
               struct spell_http_response *resp)
{
    struct spell_http_request req;
    char url[1200];

    snprintf(url, sizeof(url), "%s%s", w.url, path);
    spell_http_request_init(&req, method, url);
    req.bearer = key;
    if (body) {
        req.body = body;
        req.body_len = strlen(body);
    }
    req.retry.max_attempts = 1;
    return spell_http_send(&req, resp);
}

/* The number of casts the server holds for key, paging GET /v1/casts. */
static int server_cast_count(const char *key, int *dups)
{
    char path[1024], (*ids)[40] = calloc(20000, 40);
    char *cursor = NULL;
    int n = 0;

    *dups = 0;
    for (int page = 0; page < 200 && ids; page++) {
        struct spell_http_response resp;
        cJSON *j = NULL;
        const cJSON *arr, *it, *nc;

        if (cursor)
            snprintf(path, sizeof(path), "/v1/casts?limit=100&cursor=%s", cursor);
        else
            snprintf(path, sizeof(path), "/v1/casts?limit=100");
        free(cursor);
        cursor = NULL;
        if (api("GET", path, key, NULL, &resp) != SPELL_OK || resp.status != 200 ||
            spell_json_parse(resp.body, resp.body_len, &(struct spell_json_limits){8 << 20, 32},
                             &j, NULL, 0) != SPELL_OK) {
            spell_http_response_free(&resp);
            n = -1;
            break;
        }
        spell_http_response_free(&resp);
        arr = cJSON_GetObjectItemCaseSensitive(j, "casts");
        cJSON_ArrayForEach(it, arr) {
            const char *id = str_at(it, "id");

            for (int i = 0; id && i < n; i++) {
                if (strcmp(ids[i], id) == 0)
                    (*dups)++;
            }
            if (id && n < 20000)
                snprintf(ids[n++], 40, "%s", id);
        }
        nc = cJSON_GetObjectItemCaseSensitive(j, "next_cursor");
        if (cJSON_IsString(nc))
            cursor = strdup(nc->valuestring);
        cJSON_Delete(j);
        if (!cursor)
            break;
    }
    free(cursor);
    free(ids);
    return n;
}

/* ---- cases ---- */

static void test_socket_mode(void)
{
    struct stat st;
    char dir[300];

    CHECK(stat(w.sock, &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK_INT(st.st_mode & 0777, 0600);
    snprintf(dir, sizeof(dir), "%s", w.sock);
    *strrchr(dir, '/') = '\0';
    CHECK(stat(dir, &st) == 0);
    CHECK_INT(st.st_mode & 0777, 0700);
}

static void test_hello_first(void)
{
    struct conn c;
    cJSON *a;

    CHECK(conn_open(&c, w.sock) == 0);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"agent.status\"}");
    a = conn_answer(&c, 1, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32002);
    cJSON_Delete(a);
    /* Unknown methods too must wait for the hello. */
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"no.such\"}");
    a = conn_answer(&c, 2, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32002);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"agent.hello\","
                   "\"params\":{\"protocol\":1}}");
    a = conn_answer(&c, 3, WAIT_MS, NULL, NULL);
    CHECK_INT(int_at(result(a), "protocol"), 1);
    CHECK_STR(str_at(result(a), "agent"), "0.1.0");
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"agent.status\"}");
    a = conn_answer(&c, 4, WAIT_MS, NULL, NULL);
    CHECK_INT(int_at(result(a), "protocol"), 1);
    CHECK_INT(int_at(result(a), "pid"), w.agent);
    CHECK_STR(str_at(result(a), "api_url"), w.url);
    CHECK_STR(str_at(cJSON_GetObjectItemCaseSensitive(result(a), "credential"), "source"), "env");
    cJSON_Delete(a);
    conn_close(&c);
}

static void test_version_mismatch(void)
{
    struct conn c;
    cJSON *a;
    bool eof = false;

    CHECK(conn_open(&c, w.sock) == 0);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"h\",\"method\":\"agent.hello\","
                   "\"params\":{\"protocol\":2}}");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32001);
    CHECK_STR(str_at(a, "id"), "h");
    CHECK_INT(int_at(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(a, "error"), "data"), "protocol"), 1);
    cJSON_Delete(a);
    /* Then the agent closes the connection. */
    a = conn_read(&c, WAIT_MS, &eof);
    CHECK(a == NULL);
    CHECK(eof);
    conn_close(&c);
}

static void test_garbage(void)
{
    struct conn c;
    cJSON *a;
    static const char *const bad[] = {
        "garbage", "{\"jsonrpc\":\"2.0\",\"id\":1,", "\xff\xfe{}", "{\"a\":1,\"a\":2}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"} trailing",
    };

    CHECK(hello(&c, w.sock) == 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        conn_sendf(&c, "%s", bad[i]);
        a = conn_read(&c, WAIT_MS, NULL);
        CHECK_INT(err_code(a), -32700);
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a, "id")));
        cJSON_Delete(a);
    }
    /* A NUL byte inside a line. */
    conn_write(&c, "{\"x\":\0}\n", 8);
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32700);
    cJSON_Delete(a);
    /* Not a request object. */
    conn_sendf(&c, "42");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32600);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"1.0\",\"id\":7,\"method\":\"agent.status\"}");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32600);
    CHECK_INT(int_at(a, "id"), 7);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":{\"x\":1},\"method\":\"agent.status\"}");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32600);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a, "id")));
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":17}");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32600);
    cJSON_Delete(a);
    /* A batch. */
    conn_sendf(&c, "[{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"agent.status\"}]");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32600);
    CHECK(strstr(err_message(a), "batch") != NULL);
    cJSON_Delete(a);
    /* A notification gets no answer: the next line answers id 10. */
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"method\":\"agent.status\"}");
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"agent.status\"}");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(int_at(a, "id"), 10);
    CHECK(result(a) != NULL);
    cJSON_Delete(a);
    /* Unknown method; params of the wrong type. */
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"cast.explode\"}");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32601);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"cast.list\",\"params\":[1]}");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32602);
    cJSON_Delete(a);
    /* Still usable after all of that. */
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"last\",\"method\":\"agent.status\"}");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_STR(str_at(a, "id"), "last");
    CHECK(result(a) != NULL);
    cJSON_Delete(a);
    conn_close(&c);
}

static void test_invalid_params(void)
{
    struct conn c;
    cJSON *a;
    static const struct {
        const char *params;
        const char *field;
    } cases[] = {
        {"{}", "spell"},
        {"{\"spell\":5}", "spell"},
        {"{\"spell\":\"\"}", "spell"},
        {"{\"spell\":\"Not A Key!\"}", "spell"},
        {"{\"spell\":\"echo\",\"inputs\":5}", "inputs"},
        {"{\"spell\":\"echo\",\"budget_cap_cents\":-1}", "budget_cap_cents"},
        {"{\"spell\":\"echo\",\"budget_cap_cents\":1.5}", "budget_cap_cents"},
        {"{\"spell\":\"echo\",\"mode\":\"teleport\"}", "mode"},
    };

    CHECK(hello(&c, w.sock) == 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"cast.submit\",\"params\":%s}",
                   i + 1, cases[i].params);
        a = conn_answer(&c, (int)i + 1, WAIT_MS, NULL, NULL);
        CHECK_INT(err_code(a), -32602);
        if (!strstr(err_message(a), cases[i].field))
            tap_fail(__FILE__, __LINE__, cases[i].params);
        cJSON_Delete(a);
    }
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":50,\"method\":\"cast.get\",\"params\":{}}");
    a = conn_answer(&c, 50, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32602);
    CHECK(strstr(err_message(a), "local_id") != NULL);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":51,\"method\":\"cast.get\","
                   "\"params\":{\"local_id\":\"lc_nothing\"}}");
    a = conn_answer(&c, 51, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32020);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":52,\"method\":\"cast.list\","
                   "\"params\":{\"limit\":0}}");
    a = conn_answer(&c, 52, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32602);
    CHECK(strstr(err_message(a), "limit") != NULL);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":53,\"method\":\"cast.wait\","
                   "\"params\":{\"local_id\":\"lc_x\",\"timeout_ms\":\"soon\"}}");
    a = conn_answer(&c, 53, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32602);
    CHECK(strstr(err_message(a), "timeout_ms") != NULL);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":54,\"method\":\"auth.login\",\"params\":{}}");
    a = conn_answer(&c, 54, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32602);
    CHECK(strstr(err_message(a), "token") != NULL);
    cJSON_Delete(a);
    conn_close(&c);
}

static void test_oversized(void)
{
    struct conn c;
    cJSON *a;
    size_t big = 1024 * 1024 + 100;
    char *line = malloc(big + 1);
    const char *head = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"agent.status\"";

    CHECK(line != NULL);
    if (!line)
        return;
    CHECK(hello(&c, w.sock) == 0);
    memset(line, 'x', big);
    line[big] = '\n';
    CHECK(conn_write(&c, line, big + 1) == 0);
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32003);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"agent.status\"}");
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(int_at(a, "id"), 2);
    CHECK(result(a) != NULL);
    cJSON_Delete(a);
    /* Exactly 1 MiB of JSON (padded with blanks) is accepted. */
    memset(line, ' ', 1024 * 1024);
    memcpy(line, head, strlen(head));
    line[1024 * 1024 - 1] = '}';
    line[1024 * 1024] = '\n';
    CHECK(conn_write(&c, line, 1024 * 1024 + 1) == 0);
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(int_at(a, "id"), 5);
    CHECK(result(a) != NULL);
    cJSON_Delete(a);
    /* One byte more is not. */
    memset(line, ' ', 1024 * 1024 + 1);
    memcpy(line, head, strlen(head));
    line[1024 * 1024] = '}';
    line[1024 * 1024 + 1] = '\n';
    CHECK(conn_write(&c, line, 1024 * 1024 + 2) == 0);
    a = conn_read(&c, WAIT_MS, NULL);
    CHECK_INT(err_code(a), -32003);
    cJSON_Delete(a);
    free(line);
    conn_close(&c);
}

static void test_second_instance(void)
{
    char sock[300], log[400], buf[4096];
    pid_t pid;

    /* Same runtime dir as the main agent ("main"), so the same socket. */
    pid = agent_start("main", w.key_alice, sock, sizeof(sock), NULL, false);
    CHECK_INT(wait_exit(pid, WAIT_MS), 1);
    snprintf(log, sizeof(log), "%s/main/agent.log", w.dir);
    read_file(log, buf, sizeof(buf));
    CHECK(strstr(buf, "already running") != NULL);
    /* The running agent still answers on its socket. */
    CHECK(sock_answers(w.sock));
}

/* A process of another user is closed before a byte is read.  The socket
 * is 0600, so the test (as root) opens its mode for a moment to let the
 * other uid reach the SO_PEERCRED check at all. */
static void test_other_uid_refused(void)
{
    pid_t pid;
    int st = -1;

    if (geteuid() != 0) {
        printf("# skipped: needs root to act as another user\n");
        return;
    }
    static const char *const dirs[] = {"", "/main", "/main/run", "/main/run/spell"};
    char d[400];

    /* Let the other uid through the private directories for a moment. */
    for (size_t i = 0; i < 4; i++) {
        snprintf(d, sizeof(d), "%s%s", w.dir, dirs[i]);
        CHECK(chmod(d, 0711) == 0);
    }
    CHECK(chmod(w.sock, 0666) == 0);
    pid = fork();
    if (pid == 0) {
        struct conn c;
        cJSON *a;
        bool eof = false;

        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        if (conn_open(&c, w.sock) != 0)
            _exit(11);
        conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"agent.hello\","
                       "\"params\":{\"protocol\":1}}");
        a = conn_read(&c, WAIT_MS, &eof);
        _exit(a == NULL && eof ? 0 : 12);
    }
    waitpid(pid, &st, 0);
    CHECK(chmod(w.sock, 0600) == 0);
    for (size_t i = 0; i < 4; i++) {
        snprintf(d, sizeof(d), "%s%s", w.dir, dirs[i]);
        CHECK(chmod(d, 0700) == 0);
    }
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), 0);
}

static void test_slow_subscriber_dropped(void)
{
    struct conn lazy, c;
    cJSON *a;
    char lid[64];
    bool eof = false;
    int64_t end;
    char sink[65536];

    CHECK(hello(&lazy, w.sock) == 0);
    conn_sendf(&lazy, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}");
    a = conn_answer(&lazy, 1, WAIT_MS, NULL, NULL);
    CHECK(result(a) != NULL);
    cJSON_Delete(a);
    /* Shrink what the kernel buffers for the lazy reader. */
    setsockopt(lazy.fd, SOL_SOCKET, SO_RCVBUF, &(int){4096}, sizeof(int));
    CHECK(hello(&c, w.sock) == 0);
    for (int i = 0; i < 400; i++)
        CHECK(submit(&c, 100 + i, "{\"spell\":\"echo\",\"inputs\":{\"message\":\"flood\"}}", lid,
                     sizeof(lid)) == 0);
    a = wait_cast(&c, 999, lid, 120000, NULL, NULL);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result(a), "final")));
    cJSON_Delete(a);
    /* The lazy subscriber was cut off: its stream ends with EOF. */
    end = spell_time_now_ms() + WAIT_MS;
    while (!eof && spell_time_now_ms() < end) {
        struct pollfd p = {lazy.fd, POLLIN, 0};
        ssize_t n;

        if (poll(&p, 1, 1000) <= 0)
            continue;
        n = read(lazy.fd, sink, sizeof(sink));
        if (n <= 0)
            eof = true;
    }
    CHECK(eof);
    /* The other connection is unaffected. */
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1000,\"method\":\"agent.status\"}");
    a = conn_answer(&c, 1000, WAIT_MS, NULL, NULL);
    CHECK(result(a) != NULL);
    cJSON_Delete(a);
    conn_close(&lazy);
    conn_close(&c);
}

static void test_stale_socket(void)
{
    char sock[512], run[300];
    struct sockaddr_un sa = {0};
    struct conn c;
    int fd;
    pid_t pid;

    snprintf(run, sizeof(run), "%s/stale", w.dir);
    mkdir(run, 0700);
    snprintf(run, sizeof(run), "%s/stale/run", w.dir);
    mkdir(run, 0700);
    snprintf(run, sizeof(run), "%s/stale/run/spell", w.dir);
    mkdir(run, 0700);
    snprintf(sock, sizeof(sock), "%s/agent.sock", run);
    /* A socket file nobody listens on, as a crash leaves it. */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sa.sun_family = AF_UNIX;
    CHECK(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock) < (int)sizeof(sa.sun_path));
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    close(fd);
    CHECK(!sock_answers(sock));
    pid = agent_start("stale", w.key_alice, sock, sizeof(sock), NULL, true);
    CHECK(pid > 0);
    CHECK(hello(&c, sock) == 0);
    conn_close(&c);
    if (pid > 0) {
        kill(pid, SIGTERM);
        CHECK_INT(wait_exit(pid, WAIT_MS), 0);
        /* The socket is gone after a clean stop. */
        CHECK(access(sock, F_OK) != 0);
    }
}

struct seen {
    char local_id[64];
    int64_t seqs[256];
    int n;
    int progress_events;
    bool accepted, queued_local, final_seen;
};

static void collect(const cJSON *n, void *u)
{
    struct seen *s = u;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(n, "params");
    const cJSON *cast = cJSON_GetObjectItemCaseSensitive(p, "cast");
    const char *kind = str_at(p, "kind");
    int64_t seq = int_at(p, "seq");

    if (!kind || !str_at(cast, "local_id") || strcmp(str_at(cast, "local_id"), s->local_id) != 0)
        return;
    if (strcmp(kind, "cast.accepted") == 0)
        s->accepted = true;
    if (strcmp(kind, "cast.queued") == 0 && seq < 0)
        s->queued_local = true;
    if (strcmp(kind, "cast.progress") == 0)
        s->progress_events++;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cast, "final")))
        s->final_seen = true;
    if (seq > 0 && s->n < 256)
        s->seqs[s->n++] = seq;
}

/* Every seq from 1 to the last exactly once, in order. */
static bool seqs_gapless(const struct seen *s)
{
    for (int i = 0; i < s->n; i++) {
        if (s->seqs[i] != i + 1)
            return false;
    }
    return s->n > 0;
}

static void test_submit_wait(void)
{
    struct conn c;
    struct seen s = {0};
    cJSON *a;
    const cJSON *r;

    CHECK(hello(&c, w.sock) == 0);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}");
    a = conn_answer(&c, 1, WAIT_MS, NULL, NULL);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result(a), "subscribed")));
    cJSON_Delete(a);
    CHECK(submit(&c, 2, "{\"spell\":\"slow\",\"inputs\":{\"steps\":3}}", s.local_id,
                 sizeof(s.local_id)) == 0);
    CHECK(strncmp(s.local_id, "lc_", 3) == 0);
    a = wait_cast(&c, 3, s.local_id, 60000, collect, &s);
    r = result(a);
    CHECK_STR(str_at(r, "state"), "succeeded");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "final")));
    CHECK_INT(int_at(r, "progress"), 100);
    CHECK_INT(int_at(r, "cost_cents"), 1);
    CHECK_INT(int_at(r, "estimated_cost_cents"), 1);
    CHECK_INT(int_at(r, "attempts"), 1);
    CHECK(str_at(r, "cast_id") && strncmp(str_at(r, "cast_id"), "cst_", 4) == 0);
    CHECK(int_at(r, "duration_ms") >= 0);
    CHECK(str_at(r, "finished_at") != NULL);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "error")));
    CHECK(s.queued_local);
    CHECK(s.accepted);
    CHECK_INT(s.progress_events, 3);
    CHECK(s.final_seen);
    CHECK(seqs_gapless(&s));
    cJSON_Delete(a);
    /* cast.get by both ids, cast.list newest first. */
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"cast.get\","
                   "\"params\":{\"local_id\":\"%s\"}}", s.local_id);
    a = conn_answer(&c, 4, WAIT_MS, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "succeeded");
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"cast.list\",\"params\":{\"limit\":1}}");
    a = conn_answer(&c, 5, WAIT_MS, NULL, NULL);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(result(a), "casts")), 1);
    CHECK_STR(str_at(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(result(a), "casts"), 0),
                     "local_id"), s.local_id);
    cJSON_Delete(a);
    /* A wait with a timeout on a final cast answers at once. */
    a = wait_cast(&c, 6, s.local_id, 1, NULL, NULL);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result(a), "final")));
    cJSON_Delete(a);
    conn_close(&c);
}

static void test_wait_timeout(void)
{
    struct conn c;
    char lid[64];
    cJSON *a;

    CHECK(hello(&c, w.sock) == 0);
    CHECK(submit(&c, 1, "{\"spell\":\"slow\",\"inputs\":{\"steps\":4}}", lid, sizeof(lid)) == 0);
    a = wait_cast(&c, 2, lid, 200, NULL, NULL);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(result(a), "final")));
    cJSON_Delete(a);
    /* Two waiters on one cast both get the end. */
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"cast.wait\","
                   "\"params\":{\"local_id\":\"%s\"}}", lid);
    a = wait_cast(&c, 4, lid, 60000, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "succeeded");
    cJSON_Delete(a);
    a = conn_answer(&c, 3, WAIT_MS, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "succeeded");
    cJSON_Delete(a);
    conn_close(&c);
}

static void test_rejected_402(void)
{
    struct conn c;
    char lid[64];
    cJSON *a;
    const cJSON *err;

    CHECK(hello(&c, w.sock) == 0);
    /* wordcount costs 5 cents; a cap of 1 is refused with 402. */
    CHECK(submit(&c, 1, "{\"spell\":\"wordcount\",\"inputs\":{\"text\":\"a b\"},"
                        "\"budget_cap_cents\":1}", lid, sizeof(lid)) == 0);
    a = wait_cast(&c, 2, lid, 30000, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "rejected");
    err = cJSON_GetObjectItemCaseSensitive(result(a), "error");
    CHECK_STR(str_at(err, "code"), "BUDGET_EXCEEDED");
    CHECK_STR(str_at(err, "message"), "The estimated cost is above the budget cap of this request.");
    CHECK_INT(int_at(err, "status"), 402);
    CHECK_INT(int_at(result(a), "attempts"), 1);
    cJSON_Delete(a);
    /* An unknown spell is a final 404. */
    CHECK(submit(&c, 3, "{\"spell\":\"no-such-spell\"}", lid, sizeof(lid)) == 0);
    a = wait_cast(&c, 4, lid, 30000, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "rejected");
    CHECK_STR(str_at(cJSON_GetObjectItemCaseSensitive(result(a), "error"), "code"),
              "SPELL_NOT_FOUND");
    cJSON_Delete(a);
    conn_close(&c);
}

static void test_hard_limit_402(void)
{
    struct spell_http_response resp;
    char sock[300], lid[64], big[70000];
    struct conn c;
    cJSON *a;
    pid_t pid;
    size_t n;

    /* carol's hard limit is $10; an uppercase cast of about 60 KB costs
     * 1 + 59 cents, so the 17th cast cannot be reserved. */
    CHECK(api("PUT", "/v1/budgets", w.key_carol, "{\"hard_limit_cents\":1000}", &resp) ==
          SPELL_OK);
    CHECK_INT(resp.status, 200);
    spell_http_response_free(&resp);
    pid = agent_start("carol", w.key_carol, sock, sizeof(sock), NULL, true);
    CHECK(pid > 0);
    if (pid <= 0)
        return;
    CHECK(hello(&c, sock) == 0);
    n = (size_t)snprintf(big, sizeof(big), "{\"spell\":\"uppercase\",\"inputs\":{\"text\":\"");
    memset(big + n, 'a', 60000);
    n += 60000;
    snprintf(big + n, sizeof(big) - n, "\"}}");
    for (int i = 0; i < 20; i++)
        CHECK(submit(&c, 10 + i, big, lid, sizeof(lid)) == 0);
    a = wait_cast(&c, 100, lid, 60000, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "rejected");
    CHECK_STR(str_at(cJSON_GetObjectItemCaseSensitive(result(a), "error"), "code"),
              "BUDGET_EXCEEDED");
    CHECK_INT(int_at(cJSON_GetObjectItemCaseSensitive(result(a), "error"), "status"), 402);
    cJSON_Delete(a);
    conn_close(&c);
    kill(pid, SIGTERM);
    CHECK_INT(wait_exit(pid, WAIT_MS), 0);
}

static void soft_note(const cJSON *n, void *u)
{
    int *soft = u;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(n, "params");

    if (str_at(p, "kind") && strcmp(str_at(p, "kind"), "budget.soft_limit") == 0)
        (*soft)++;
}

static void test_soft_limit(void)
{
    struct spell_http_response resp;
    char sock[300], lid[64], key[128];
    struct conn c;
    cJSON *a;
    pid_t pid;
    int soft = 0;
    int64_t end;

    CHECK(user_add("frank", key, sizeof(key)) == 0);
    CHECK(api("PUT", "/v1/budgets", key, "{\"hard_limit_cents\":1000,\"soft_limit_cents\":1}",
              &resp) == SPELL_OK);
    CHECK_INT(resp.status, 200);
    spell_http_response_free(&resp);
    pid = agent_start("frank", key, sock, sizeof(sock), NULL, true);
    CHECK(pid > 0);
    if (pid <= 0)
        return;
    CHECK(signed_in(sock));
    CHECK(hello(&c, sock) == 0);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}");
    cJSON_Delete(conn_answer(&c, 1, WAIT_MS, NULL, NULL));
    CHECK(submit(&c, 2, "{\"spell\":\"wordcount\",\"inputs\":{\"text\":\"a b c\"}}", lid,
                 sizeof(lid)) == 0);
    a = wait_cast(&c, 3, lid, 60000, soft_note, &soft);
    CHECK_STR(str_at(result(a), "state"), "succeeded");
    CHECK_INT(int_at(result(a), "cost_cents"), 5);
    cJSON_Delete(a);
    /* The server sends budget.soft_limit right after the terminal event. */
    end = spell_time_now_ms() + WAIT_MS;
    while (!soft && spell_time_now_ms() < end) {
        cJSON *n = conn_read(&c, 1000, NULL);

        if (n)
            soft_note(n, &soft);
        cJSON_Delete(n);
    }
    CHECK_INT(soft, 1);
    conn_close(&c);
    kill(pid, SIGTERM);
    CHECK_INT(wait_exit(pid, WAIT_MS), 0);
}

static void test_signed_out_and_cancel_pending(void)
{
    char sock[300], lid[64];
    struct conn c;
    cJSON *a;
    pid_t pid;

    /* No key, no keyring, no file: signed out, so casts stay pending. */
    pid = agent_start("nokey", NULL, sock, sizeof(sock), "--no-plaintext", true);
    CHECK(pid > 0);
    if (pid <= 0)
        return;
    CHECK(hello(&c, sock) == 0);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"auth.token\"}");
    a = conn_answer(&c, 1, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32010);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"auth.status\"}");
    a = conn_answer(&c, 2, WAIT_MS, NULL, NULL);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(result(a), "signed_in")));
    CHECK_STR(str_at(result(a), "source"), "none");
    cJSON_Delete(a);
    CHECK(submit(&c, 3, "{\"spell\":\"echo\"}", lid, sizeof(lid)) == 0);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"cast.get\","
                   "\"params\":{\"local_id\":\"%s\"}}", lid);
    a = conn_answer(&c, 4, WAIT_MS, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "pending");
    CHECK_INT(int_at(result(a), "attempts"), 0);
    cJSON_Delete(a);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"cast.cancel\","
                   "\"params\":{\"local_id\":\"%s\"}}", lid);
    a = conn_answer(&c, 5, WAIT_MS, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "canceled");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result(a), "final")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(result(a), "cast_id")));
    cJSON_Delete(a);
    /* A wrong token is refused by the server: -32030 with its words. */
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"auth.login\","
                   "\"params\":{\"token\":\"sk_live_AAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBCCCCCC\"}}");
    a = conn_answer(&c, 6, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32030);
    CHECK_STR(str_at(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(a, "error"), "data"), "code"), "UNAUTHORIZED");
    CHECK_INT(int_at(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(a, "error"), "data"), "status"), 401);
    cJSON_Delete(a);
    /* A good token, but no keyring and --no-plaintext: -32011. */
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"auth.login\","
                   "\"params\":{\"token\":\"%s\"}}", w.key_alice);
    a = conn_answer(&c, 7, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32011);
    cJSON_Delete(a);
    conn_close(&c);
    /* The server never saw the canceled cast: nothing for it to count. */
    kill(pid, SIGTERM);
    CHECK_INT(wait_exit(pid, WAIT_MS), 0);
}

static void wait_started(const cJSON *n, void *u)
{
    bool *started = u;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(n, "params");

    if (str_at(p, "kind") && strcmp(str_at(p, "kind"), "cast.progress") == 0)
        *started = true;
}

static void test_cancel_running(void)
{
    struct conn c;
    char lid[64];
    cJSON *a;
    bool started = false;
    int64_t end = spell_time_now_ms() + 60000;

    CHECK(hello(&c, w.sock) == 0);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}");
    cJSON_Delete(conn_answer(&c, 1, WAIT_MS, NULL, NULL));
    CHECK(submit(&c, 2, "{\"spell\":\"slow\",\"inputs\":{\"steps\":30}}", lid, sizeof(lid)) == 0);
    while (!started && spell_time_now_ms() < end) {
        cJSON *n = conn_read(&c, 1000, NULL);

        if (n)
            wait_started(n, &started);
        cJSON_Delete(n);
    }
    CHECK(started);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"cast.cancel\","
                   "\"params\":{\"local_id\":\"%s\"}}", lid);
    a = conn_answer(&c, 3, WAIT_MS, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "canceled");
    CHECK_STR(str_at(cJSON_GetObjectItemCaseSensitive(result(a), "error"), "code"), "CANCELED");
    cJSON_Delete(a);
    a = wait_cast(&c, 4, lid, 30000, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "canceled");
    cJSON_Delete(a);
    conn_close(&c);
}

static void test_sigkill_after_submit(void)
{
    char sock[300], lid[64];
    struct conn c;
    cJSON *a;
    pid_t pid;
    int dups = 0;

    pid = agent_start("dave", w.key_bob, sock, sizeof(sock), "--max-concurrent=1", true);
    CHECK(pid > 0);
    if (pid <= 0)
        return;
    CHECK(hello(&c, sock) == 0);
    CHECK(submit(&c, 1, "{\"spell\":\"echo\",\"inputs\":{\"message\":\"once\"}}", lid,
                 sizeof(lid)) == 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    conn_close(&c);
    pid = agent_start("dave", w.key_bob, sock, sizeof(sock), NULL, true);
    CHECK(pid > 0);
    if (pid <= 0)
        return;
    CHECK(hello(&c, sock) == 0);
    a = wait_cast(&c, 2, lid, 60000, NULL, NULL);
    CHECK_STR(str_at(result(a), "state"), "succeeded");
    cJSON_Delete(a);
    conn_close(&c);
    kill(pid, SIGTERM);
    CHECK_INT(wait_exit(pid, WAIT_MS), 0);
    CHECK_INT(server_cast_count(w.key_bob, &dups), 1);
    CHECK_INT(dups, 0);
}

static int queue_busy(const char *sock, int64_t *finished)
{
    struct conn c;
    cJSON *a;
    const cJSON *q;
    int busy = -1;

    if (hello(&c, sock) != 0)
        return -1;
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"agent.status\"}");
    a = conn_answer(&c, 1, WAIT_MS, NULL, NULL);
    q = cJSON_GetObjectItemCaseSensitive(result(a), "queue");
    if (q) {
        busy = (int)(int_at(q, "pending") + int_at(q, "submitting") + int_at(q, "active"));
        *finished = int_at(q, "finished");
    }
    cJSON_Delete(a);
    conn_close(&c);
    return busy;
}

static void test_sigkill_500(void)
{
    char sock[300], lid[64], key[128];
    struct conn c;
    pid_t pid;
    int dups = 0, kills = 0, submitted = 0;
    int64_t finished = 0, end;
    unsigned seed = (unsigned)getpid();

    CHECK(user_add("erin", key, sizeof(key)) == 0);
    pid = agent_start("erin", key, sock, sizeof(sock), NULL, true);
    CHECK(pid > 0);
    if (pid <= 0)
        return;
    CHECK(hello(&c, sock) == 0);
    for (int i = 0; i < 500; i++) {
        char p[128];

        snprintf(p, sizeof(p), "{\"spell\":\"echo\",\"inputs\":{\"count\":%d}}", i);
        if (submit(&c, 1000 + i, p, lid, sizeof(lid)) == 0)
            submitted++;
    }
    conn_close(&c);
    CHECK_INT(submitted, 500);
    /* Kill it at random points while the queue drains, and restart. */
    for (int k = 0; k < 6; k++) {
        msleep(50 + (int)(rand_r(&seed) % 400));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        kills++;
        pid = agent_start("erin", key, sock, sizeof(sock), NULL, true);
        CHECK(pid > 0);
        if (pid <= 0)
            return;
    }
    CHECK_INT(kills, 6);
    end = spell_time_now_ms() + 240000;
    while (spell_time_now_ms() < end && queue_busy(sock, &finished) != 0)
        msleep(200);
    CHECK_INT(queue_busy(sock, &finished), 0);
    CHECK_INT(finished, 500);
    kill(pid, SIGTERM);
    CHECK_INT(wait_exit(pid, WAIT_MS), 0);
    CHECK_INT(server_cast_count(key, &dups), 500);
    CHECK_INT(dups, 0);
}

static void test_server_restart(void)
{
    struct conn c;
    struct seen s = {0};
    cJSON *a = NULL;
    bool started = false;
    int64_t end = spell_time_now_ms() + 60000;
    int port = w.port;

    CHECK(hello(&c, w.sock) == 0);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"events.subscribe\"}");
    cJSON_Delete(conn_answer(&c, 1, WAIT_MS, NULL, NULL));
    CHECK(submit(&c, 2, "{\"spell\":\"slow\",\"inputs\":{\"steps\":8}}", s.local_id,
                 sizeof(s.local_id)) == 0);
    while (!started && spell_time_now_ms() < end) {
        cJSON *n = conn_read(&c, 1000, NULL);

        if (n) {
            collect(n, &s);
            wait_started(n, &started);
        }
        cJSON_Delete(n);
    }
    CHECK(started);
    /* The server dies mid-stream and comes back on the same port. */
    kill(w.server, SIGKILL);
    waitpid(w.server, NULL, 0);
    msleep(1500);
    CHECK(server_start(port) == 0);
    CHECK_INT(w.port, port);
    a = wait_cast(&c, 3, s.local_id, 120000, collect, &s);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result(a), "final")));
    cJSON_Delete(a);
    /* Every seq the server gave, once each, in order. */
    CHECK(s.final_seen);
    CHECK(seqs_gapless(&s));
    if (!seqs_gapless(&s)) {
        for (int i = 0; i < s.n; i++)
            printf("#   seq[%d] = %lld\n", i, (long long)s.seqs[i]);
    }
    conn_close(&c);
}

static void test_sigterm_drains(void)
{
    struct conn c;
    char lid[64];
    cJSON *a;
    int64_t t0;

    CHECK(hello(&c, w.sock) == 0);
    CHECK(submit(&c, 1, "{\"spell\":\"slow\",\"inputs\":{\"steps\":30}}", lid, sizeof(lid)) == 0);
    conn_sendf(&c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"cast.wait\","
                   "\"params\":{\"local_id\":\"%s\"}}", lid);
    msleep(300);
    t0 = spell_time_now_ms();
    kill(w.agent, SIGTERM);
    a = conn_answer(&c, 2, WAIT_MS, NULL, NULL);
    CHECK_INT(err_code(a), -32040);
    cJSON_Delete(a);
    CHECK_INT(wait_exit(w.agent, WAIT_MS), 0);
    CHECK(spell_time_now_ms() - t0 < WAIT_MS);
    CHECK(access(w.sock, F_OK) != 0);
    conn_close(&c);
    w.agent = 0;
}

int main(int argc, char **argv)
{
    char tmpl[] = "/tmp/spell-agent-test-XXXXXX";
    char *sargv[6];
    pid_t pid;

    if (argc != 4) {
        fprintf(stderr, "usage: %s SPELL-SERVER SPELL-AGENT CATALOG.json\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    w.server_bin = argv[1];
    w.agent_bin = argv[2];
    w.catalog = argv[3];
    if (!mkdtemp(tmpl)) {
        printf("Bail out! cannot make a temporary directory\n");
        return 1;
    }
    snprintf(w.dir, sizeof(w.dir), "%s", tmpl);
    snprintf(w.db, sizeof(w.db), "%s/server.db", w.dir);
    if (user_add("alice", w.key_alice, sizeof(w.key_alice)) != 0 ||
        user_add("bob", w.key_bob, sizeof(w.key_bob)) != 0 ||
        user_add("carol", w.key_carol, sizeof(w.key_carol)) != 0) {
        printf("Bail out! spell-server users add failed (see %s)\n", w.dir);
        return 1;
    }
    sargv[0] = (char *)w.server_bin;
    sargv[1] = "spells";
    sargv[2] = "import";
    sargv[3] = (char *)w.catalog;
    sargv[4] = "--db";
    sargv[5] = NULL;
    {
        char *iargv[] = {sargv[0], sargv[1], sargv[2], sargv[3], sargv[4], w.db, NULL};

        pid = spawn(iargv, NULL, NULL);
        if (wait_exit(pid, WAIT_MS) != 0) {
            printf("Bail out! spells import failed\n");
            return 1;
        }
    }
    if (server_start(0) != 0) {
        printf("Bail out! spell-server did not start (see %s/server.log)\n", w.dir);
        return 1;
    }
    w.agent = agent_start("main", w.key_alice, w.sock, sizeof(w.sock), NULL, true);
    if (w.agent <= 0) {
        printf("Bail out! spell-agent did not start (see %s/main/agent.log)\n", w.dir);
        kill(w.server, SIGKILL);
        return 1;
    }
    if (!signed_in(w.sock))
        printf("# the agent did not load SPELL_API_KEY in time\n");
    RUN(test_socket_mode);
    RUN(test_hello_first);
    RUN(test_version_mismatch);
    RUN(test_garbage);
    RUN(test_invalid_params);
    RUN(test_oversized);
    RUN(test_second_instance);
    RUN(test_stale_socket);
    RUN(test_other_uid_refused);
    RUN(test_submit_wait);
    RUN(test_wait_timeout);
    RUN(test_rejected_402);
    RUN(test_hard_limit_402);
    RUN(test_soft_limit);
    RUN(test_signed_out_and_cancel_pending);
    RUN(test_cancel_running);
    RUN(test_sigkill_after_submit);
    RUN(test_server_restart);
    RUN(test_slow_subscriber_dropped);
    RUN(test_sigkill_500);
    RUN(test_sigterm_drains);
    if (w.agent > 0) {
        kill(w.agent, SIGTERM);
        wait_exit(w.agent, WAIT_MS);
    }
    kill(w.server, SIGTERM);
    wait_exit(w.server, WAIT_MS);
    if (tap_failed == 0) {
        char *rm[] = {"/bin/rm", "-rf", w.dir, NULL};

        wait_exit(spawn(rm, NULL, NULL), WAIT_MS);
    } else {
        printf("# logs and databases kept in %s\n", w.dir);
    }
    return tap_done();
}
