/*
 * The service executor's run of one cast: spawn the spell program, feed it
 * the inputs, read its JSON lines, enforce the limits, and end the cast
 * through the lifecycle (the contract is in exec.h).
 *
 * Data flow inside service_run():
 *
 *   store_spell_get -> execution {command, timeout_s, memory_mb}
 *   prepare: argv, a clean environment, a temp dir (home/ and work/)
 *   spawn (vfork + execve, own process group, limits, no other fds)
 *   lifecycle_start, deferred for a queued cast by at most START_DEFER_MS:
 *     when the program's first record is progress, the start and that
 *     progress are one store transaction (lifecycle_start_progress), one
 *     commit fewer per cast; any other record, the end of the program or
 *     the deadline starts the cast on its own first
 *   poll loop, one tick at most TICK_MS:
 *     stdin  <- the inputs JSON, written without blocking, then closed
 *     stdout -> lines -> record() -> lifecycle_progress / lifecycle_log /
 *               the result kept for the end
 *     stderr -> a bounded tail
 *     the child's exit (seen without reaping, so the group can be killed
 *     while its leader's pid is still reserved), the timeout, cancel and
 *     stop flags
 *   end: succeed / fail / nothing (canceled or the server is stopping)
 *   the temp dir is removed
 *
 * Wall-clock limits use CLOCK_MONOTONIC: srv->clock is for what the
 * platform records, and a test that moves it must not kill programs.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/json.h"

#include "exec-impl.h"
#include "exec.h"
#include "lifecycle.h"
#include "server.h"
#include "store.h"

#define TICK_MS 100
/* How long the start of a queued cast may wait for the program's first
 * progress record, to be stored with it: the cast shows "running" at most
 * this much later than its program started. */
#define START_DEFER_MS 100
/* After the program exits, how long its pipes may stay open (a process
 * that left the group holds them) before they are closed anyway. */
#define DRAIN_MS 1000
#define READ_CHUNK 16384
#define ENV_MAX 8
#define ENV_ENTRY_MAX 4352      /* "HOME=" and a path */
#define ARTIFACT_URL_MAX 2048
#define MEMORY_DEFAULT ((int64_t)1024 * 1024 * 1024)
#define TIMEOUT_DEFAULT_S 60

struct job {
    struct executor *e;
    struct exec_slot *slot;
    struct server *srv;
    const struct store_cast *cast;
    bool metered;

    /* execution config */
    char *argv[EXEC_ARGV_MAX + 1];
    char *path;             /* argv[0] resolved */
    int64_t timeout_s;
    int64_t memory_bytes;
    int nice;               /* added to the server's niceness, 0..19 */

    char dir[64];           /* the temp dir; "" when none */
    char env_store[ENV_MAX][ENV_ENTRY_MAX];
    char *envp[ENV_MAX + 1];

    /* Output state. */
    struct spell_buf line;  /* the current stdout line, capped at EXEC_LINE_MAX */
    int64_t out_total;
    int64_t out_max;
    long line_no;
    int progress;           /* never goes back */
    char err_tail[EXEC_STDERR_TAIL];
    size_t err_len;

    bool have_result;
    char artifact_url[ARTIFACT_URL_MAX + 1];
    int64_t reported_cost;  /* -1 when the result line named none */

    /* Log rate limit: events in the current one-second window. */
    int64_t log_window;
    int log_count;
    long log_suppressed;

    /* The first protocol or limit failure; the run is ended when set. */
    const char *fail_code;
    char fail_msg[LIFECYCLE_MESSAGE_MAX + 1];

    /* Set once the start was stored (or tried); until then the cast is
     * queued and start_by (monotonic ms) is when it starts on its own. */
    bool started;
    int64_t start_by;
    pid_t pid;              /* the program's, once spawned */
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_failf(struct job *j, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void job_failf(struct job *j, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (j->fail_code)
        return;
    j->fail_code = code;
    va_start(ap, fmt);
    vsnprintf(j->fail_msg, sizeof j->fail_msg, fmt, ap);
    va_end(ap);
}

/* ---- Preparation ------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void dir_remove(struct job *j)
{
    if (j->dir[0])
        nftw(j->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    j->dir[0] = '\0';
}

/* Reads execution {command, timeout_s, memory_mb}; an error sentence into
 * msg on failure. */
static int parse_execution(struct job *j, const char *text, char *msg, size_t msglen)
{
    struct spell_json_limits lim = {STORE_JSON_MAX, 8};
    struct spell_json_at at;
    const cJSON *cmd = NULL, *it;
    cJSON *root = NULL;
    char err[256] = "";
    bool present = false;
    int64_t mb = 0;
    size_t n = 0;
    int rc;

    if (!text || !text[0]) {
        snprintf(msg, msglen, "the spell has no execution config");
        return SPELL_EINVAL;
    }
    if ((rc = spell_json_parse(text, strlen(text), &lim, &root, err, sizeof err)) != SPELL_OK)
        goto bad;
    rc = SPELL_EINVAL;
    if (!cJSON_IsObject(root)) {
        snprintf(err, sizeof err, "it is not an object");
        goto bad;
    }
    at = (struct spell_json_at){root, "execution", err, sizeof err};
    if ((rc = spell_json_get_array(&at, "command", SPELL_JSON_REQUIRED, &cmd)) != SPELL_OK)
        goto bad;
    rc = SPELL_EINVAL;
    cJSON_ArrayForEach(it, cmd) {
        if (n >= EXEC_ARGV_MAX) {
            snprintf(err, sizeof err, "command has more than %d elements", EXEC_ARGV_MAX);
            goto bad;
        }
        if (!cJSON_IsString(it) || strlen(it->valuestring) > EXEC_ARG_MAX ||
            (n == 0 && !it->valuestring[0])) {
            snprintf(err, sizeof err, "command[%zu] must be a string of 1..%d bytes", n,
                     EXEC_ARG_MAX);
            goto bad;
        }
        if (!(j->argv[n] = strdup(it->valuestring))) {
            rc = SPELL_ENOMEM;
            snprintf(err, sizeof err, "out of memory");
            goto bad;
        }
        n++;
    }
    if (n == 0) {
        snprintf(err, sizeof err, "command is empty");
        goto bad;
    }
    j->argv[n] = NULL;
    if ((rc = spell_json_get_int64_range(&at, "timeout_s", SPELL_JSON_OPTIONAL, 1,
                                         EXEC_TIMEOUT_MAX_S, &j->timeout_s, &present)) !=
        SPELL_OK)
        goto bad;
    if ((rc = spell_json_get_int64_range(&at, "memory_mb", SPELL_JSON_OPTIONAL, 16, 65536, &mb,
                                         &present)) != SPELL_OK)
        goto bad;
    if (present)
        j->memory_bytes = mb * 1024 * 1024;
    cJSON_Delete(root);
    return SPELL_OK;
bad:
    snprintf(msg, msglen, "the spell's execution config is invalid: %s", err);
    cJSON_Delete(root);
    return rc == SPELL_OK ? SPELL_EINVAL : rc;
}

/* argv[0]: an absolute path, or a bare name found in /usr/bin or /bin. */
static int resolve_path(struct job *j, char *msg, size_t msglen)
{
    static const char *const dirs[] = {"/usr/bin", "/bin"};
    char buf[EXEC_ARG_MAX + 16];

    if (j->argv[0][0] == '/') {
        j->path = strdup(j->argv[0]);
        return j->path ? SPELL_OK : SPELL_ENOMEM;
    }
    if (!strchr(j->argv[0], '/')) {
        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
            snprintf(buf, sizeof buf, "%s/%s", dirs[i], j->argv[0]);
            if (access(buf, X_OK) == 0) {
                j->path = strdup(buf);
                return j->path ? SPELL_OK : SPELL_ENOMEM;
            }
        }
    }
    snprintf(msg, msglen,
             "the spell's command must be an absolute path or a program in /usr/bin or /bin");
    return SPELL_EINVAL;
}

static int prepare_dirs(struct job *j)
{
    char sub[96];

    snprintf(j->dir, sizeof j->dir, "/tmp/spell-cast-XXXXXX");
    if (!mkdtemp(j->dir)) {
        j->dir[0] = '\0';
        return SPELL_EIO;
    }
    snprintf(sub, sizeof sub, "%s/home", j->dir);
    if (mkdir(sub, 0700) != 0)
        return SPELL_EIO;
    snprintf(sub, sizeof sub, "%s/work", j->dir);
    if (mkdir(sub, 0700) != 0)
        return SPELL_EIO;
    return SPELL_OK;
}

static void prepare_env(struct job *j)
{
    size_t n = 0;

    snprintf(j->env_store[n++], ENV_ENTRY_MAX, "PATH=/usr/bin:/bin");
    snprintf(j->env_store[n++], ENV_ENTRY_MAX, "HOME=%s/home", j->dir);
    snprintf(j->env_store[n++], ENV_ENTRY_MAX, "LANG=C.UTF-8");
    snprintf(j->env_store[n++], ENV_ENTRY_MAX, "SPELL_CAST_ID=%s", j->cast->id);
    for (size_t i = 0; i < n; i++)
        j->envp[i] = j->env_store[i];
    j->envp[n] = NULL;
}

/* ---- Spawning --------------------------------------------------------- */

static void child_limit(int res, rlim_t v)
{
    struct rlimit rl = {v, v};

    setrlimit(res, &rl);
}

/* Makes the program inc nicer than the server (the kernel stops at 19), so
 * the server's threads keep their turn when spells fill the CPU.  Raising
 * niceness needs no privilege; should it fail all the same, the program
 * runs at the server's niceness. */
static void child_nice(int inc)
{
    if (inc > 0 && nice(inc) == -1)
        return;
}

/* In the child, between vfork and exec: async-signal-safe calls only, on
 * the parent's memory (no writes but to this frame), never returning. */
static void child_exec(const struct job *j, int in_r, int out_w, int err_w, int maxfd,
                       const char *workdir)
{
    static const char msg[] = "spell-server: cannot execute the spell's command\n";
    struct sigaction sa;
    sigset_t none;
    int a, b, c;

    setpgid(0, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Move the pipe ends above 2 first, so none is overwritten by another. */
    a = fcntl(in_r, F_DUPFD, 3);
    b = fcntl(out_w, F_DUPFD, 3);
    c = fcntl(err_w, F_DUPFD, 3);
    if (a < 0 || b < 0 || c < 0 || dup2(a, 0) < 0 || dup2(b, 1) < 0 || dup2(c, 2) < 0)
        _exit(126);
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
        for (int fd = 3; fd < maxfd; fd++)
            close(fd);
    if (chdir(workdir) != 0)
        _exit(126);
    child_limit(RLIMIT_AS, (rlim_t)j->memory_bytes);
    child_limit(RLIMIT_CPU, (rlim_t)(j->timeout_s + 5));
    child_limit(RLIMIT_NOFILE, 256);
    child_limit(RLIMIT_CORE, 0);
    child_nice(j->nice);
    execve(j->path, j->argv, j->envp);
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(127);
    _exit(127);
}

struct proc {
    pid_t pid;
    int in_w, out_r, err_r;
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/*
 * vfork, not fork: the server's address space is large and has many
 * threads, and copying its page tables for every cast (then breaking
 * copy-on-write in the parent) cost about as much CPU as a small spell's
 * whole run.  All
 * signals stay blocked in this thread until the child has reset its
 * handlers, so none of ours runs on the shared memory.
 */
static pid_t start_child(const struct job *j, int in_r, int out_w, int err_w, int maxfd,
                         const char *workdir)
{
    sigset_t all, old;
    pid_t pid;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = vfork();
    if (pid == 0)
        child_exec(j, in_r, out_w, err_w, maxfd, workdir);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pid;
}

static int spawn(struct job *j, struct proc *p)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    char workdir[96];
    struct rlimit rl;
    int maxfd = 65536, rc = SPELL_EIO;
    pid_t pid;

    p->pid = -1;
    p->in_w = p->out_r = p->err_r = -1;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)maxfd)
        maxfd = (int)rl.rlim_cur;
    snprintf(workdir, sizeof workdir, "%s/work", j->dir);
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
        goto out;
    pid = start_child(j, in[0], out[1], err[1], maxfd, workdir);
    if (pid < 0)
        goto out;
    /* Both sides set the group, so a kill right after fork cannot miss it. */
    setpgid(pid, pid);
    p->pid = pid;
    p->in_w = in[1];
    p->out_r = out[0];
    p->err_r = err[0];
    in[1] = out[0] = err[0] = -1;
    fcntl(p->in_w, F_SETFL, fcntl(p->in_w, F_GETFL) | O_NONBLOCK);
    fcntl(p->out_r, F_SETFL, fcntl(p->out_r, F_GETFL) | O_NONBLOCK);
    fcntl(p->err_r, F_SETFL, fcntl(p->err_r, F_GETFL) | O_NONBLOCK);
    rc = SPELL_OK;
out:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&err[i]);
    }
    return rc;
}

/* ---- Protocol --------------------------------------------------------- */

static bool url_ok(const char *u)
{
    size_t n = strlen(u);

    if (n > ARTIFACT_URL_MAX)
        return false;
    if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)
        return false;
    if (n <= (u[4] == 's' ? 8u : 7u))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* Stores the start once, with the first progress when progress >= 0 (one
 * transaction).  A cast that finished meanwhile (canceled by another
 * path) has nothing to run: its program is killed. */
static void job_start(struct job *j, int progress, const char *message)
{
    int rc;

    if (j->started)
        return;
    j->started = true;
    if (progress >= 0)
        rc = lifecycle_start_progress(j->srv, j->cast->id, NULL, progress, message);
    else
        rc = lifecycle_start(j->srv, j->cast->id, NULL);
    if (rc == STORE_ECONFLICT && j->pid > 0)
        kill(-j->pid, SIGKILL);
}

static void log_line(struct job *j, const char *text)
{
    int64_t now = mono_ms();
    char summary[64];

    if (now - j->log_window >= 1000) {
        if (j->log_suppressed > 0) {
            snprintf(summary, sizeof summary, "(%ld log lines suppressed)", j->log_suppressed);
            lifecycle_log(j->srv, j->cast->id, summary);
            j->log_suppressed = 0;
        }
        j->log_window = now;
        j->log_count = 0;
    }
    if (j->log_count >= EXEC_LOG_PER_SEC) {
        j->log_suppressed++;
        return;
    }
    j->log_count++;
    lifecycle_log(j->srv, j->cast->id, text);
}

static void record_result(struct job *j, const cJSON *o)
{
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "result");
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(o, "artifact_url");
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(o, "cost_cents");

    if (j->have_result) {
        job_failf(j, EXEC_ERR_INVALID_OUTPUT, "line %ld: a second result line", j->line_no);
        return;
    }
    if (!cJSON_IsObject(res)) {
        job_failf(j, EXEC_ERR_INVALID_OUTPUT, "line %ld: field 'result' must be an object",
                  j->line_no);
        return;
    }
    if (url && !cJSON_IsNull(url)) {
        if (!cJSON_IsString(url) || !url_ok(url->valuestring)) {
            job_failf(j, EXEC_ERR_INVALID_OUTPUT,
                      "line %ld: field 'artifact_url' must be an http(s) URL of at most %d "
                      "bytes",
                      j->line_no, ARTIFACT_URL_MAX);
            return;
        }
        snprintf(j->artifact_url, sizeof j->artifact_url, "%s", url->valuestring);
    }
    if (cost && !cJSON_IsNull(cost)) {
        double v = cJSON_IsNumber(cost) ? cost->valuedouble : -1;
        if (v < 0 || v > 9007199254740991.0 || v != (double)(int64_t)v) {
            job_failf(j, EXEC_ERR_INVALID_OUTPUT,
                      "line %ld: field 'cost_cents' must be a whole number of cents >= 0",
                      j->line_no);
            return;
        }
        j->reported_cost = (int64_t)v;
    }
    j->have_result = true;
}

static void record(struct job *j, const char *text, size_t len)
{
    struct spell_json_limits lim = {EXEC_LINE_MAX, 32};
    const cJSON *f;
    cJSON *o = NULL;
    char err[200];
    size_t i;

    j->line_no++;
    for (i = 0; i < len; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r')
            break;
    if (i == len || j->fail_code)
        return;
    if (spell_json_parse(text, len, &lim, &o, err, sizeof err) != SPELL_OK) {
        job_failf(j, EXEC_ERR_INVALID_OUTPUT, "line %ld of the output is not JSON: %s",
                  j->line_no, err);
        return;
    }
    if (!cJSON_IsObject(o)) {
        job_failf(j, EXEC_ERR_INVALID_OUTPUT, "line %ld of the output is not a JSON object",
                  j->line_no);
        goto out;
    }
    if (cJSON_GetObjectItemCaseSensitive(o, "result")) {
        record_result(j, o);
    } else if ((f = cJSON_GetObjectItemCaseSensitive(o, "progress"))) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
        double v;
        int p;

        if (!cJSON_IsNumber(f) || (m && !cJSON_IsNull(m) && !cJSON_IsString(m))) {
            job_failf(j, EXEC_ERR_INVALID_OUTPUT,
                      "line %ld: 'progress' must be a number and 'message' a string",
                      j->line_no);
            goto out;
        }
        v = f->valuedouble;
        p = v <= 0 ? 0 : v >= 100 ? 100 : (int)v;
        if (p < j->progress)
            p = j->progress;
        j->progress = p;
        if (!j->started)
            job_start(j, p, cJSON_IsString(m) ? m->valuestring : NULL);
        else
            lifecycle_progress(j->srv, j->cast->id, p, cJSON_IsString(m) ? m->valuestring : NULL);
    } else if ((f = cJSON_GetObjectItemCaseSensitive(o, "log"))) {
        if (!cJSON_IsString(f)) {
            job_failf(j, EXEC_ERR_INVALID_OUTPUT, "line %ld: 'log' must be a string",
                      j->line_no);
            goto out;
        }
        job_start(j, -1, NULL);
        log_line(j, f->valuestring);
    } else {
        job_failf(j, EXEC_ERR_INVALID_OUTPUT,
                  "line %ld of the output is not a progress, log or result record", j->line_no);
    }
out:
    cJSON_Delete(o);
}

/* Splits stdout bytes into lines. */
static void take_stdout(struct job *j, const char *buf, size_t n)
{
    size_t start = 0;

    j->out_total += (int64_t)n;
    if (j->out_total > j->out_max) {
        job_failf(j, EXEC_ERR_OUTPUT_LIMIT, "the spell wrote more than %lld bytes of output",
                  (long long)j->out_max);
        return;
    }
    for (size_t i = 0; i < n && !j->fail_code; i++) {
        if (buf[i] != '\n')
            continue;
        if (spell_buf_add(&j->line, buf + start, i - start) != SPELL_OK) {
            job_failf(j, EXEC_ERR_OUTPUT_LIMIT, "a line of output passed %d bytes",
                      EXEC_LINE_MAX);
            return;
        }
        record(j, spell_buf_str(&j->line), j->line.len);
        spell_buf_reset(&j->line);
        start = i + 1;
    }
    if (!j->fail_code && start < n && spell_buf_add(&j->line, buf + start, n - start) != SPELL_OK)
        job_failf(j, EXEC_ERR_OUTPUT_LIMIT, "a line of output passed %d bytes", EXEC_LINE_MAX);
}

static void take_stderr(struct job *j, const char *buf, size_t n)
{
    if (n >= sizeof j->err_tail) {
        memcpy(j->err_tail, buf + n - sizeof j->err_tail, sizeof j->err_tail);
        j->err_len = sizeof j->err_tail;
        return;
    }
    if (j->err_len + n > sizeof j->err_tail) {
        size_t drop = j->err_len + n - sizeof j->err_tail;
        memmove(j->err_tail, j->err_tail + drop, j->err_len - drop);
        j->err_len -= drop;
    }
    memcpy(j->err_tail + j->err_len, buf, n);
    j->err_len += n;
}

/* ---- The run ---------------------------------------------------------- */

/* A write to a pipe whose reader is gone raises SIGPIPE in this thread;
 * the workers block it, and this takes the pending one away. */
static void drop_sigpipe(void)
{
    struct timespec zero = {0, 0};
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    while (sigtimedwait(&set, NULL, &zero) > 0)
        ;
}

enum run_end { END_EXITED, END_TIMEOUT, END_CANCELED, END_STOPPED, END_FAILED };

/* One tick, shorter while the start waits for its deadline. */
static int poll_ms(const struct job *j)
{
    int64_t left;

    if (j->started)
        return TICK_MS;
    left = j->start_by - mono_ms();
    return left <= 0 ? 0 : left < TICK_MS ? (int)left : TICK_MS;
}

/* Runs the program until it and its pipes are done. */
static enum run_end run_loop(struct job *j, struct proc *p, int *wstatus)
{
    const char *in = j->cast->inputs;
    size_t in_len = strlen(in), in_off = 0;
    int64_t now = mono_ms(), deadline = now + j->timeout_s * 1000, kill_at = 0, drain_until = 0;
    bool reaped = false, timed_out = false, canceled = false, stopped = false, killed = false;
    char buf[READ_CHUNK];
    struct pollfd fds[3];
    ssize_t r;
    int flags, nf;

    *wstatus = 0;
    for (;;) {
        nf = 0;
        if (p->in_w >= 0)
            fds[nf++] = (struct pollfd){p->in_w, POLLOUT, 0};
        if (p->out_r >= 0)
            fds[nf++] = (struct pollfd){p->out_r, POLLIN, 0};
        if (p->err_r >= 0)
            fds[nf++] = (struct pollfd){p->err_r, POLLIN, 0};
        if (nf == 0 && reaped)
            break;
        if (nf > 0 && poll(fds, (nfds_t)nf, poll_ms(j)) < 0 && errno != EINTR)
            break;
        if (nf == 0)
            poll(NULL, 0, 10);
        if (p->in_w >= 0) {
            if (in_off < in_len) {
                r = write(p->in_w, in + in_off, in_len - in_off);
                if (r > 0)
                    in_off += (size_t)r;
                else if (r < 0 && errno != EAGAIN && errno != EINTR) {
                    if (errno == EPIPE)
                        drop_sigpipe();
                    close_fd(&p->in_w);
                }
            }
            if (in_off >= in_len)
                close_fd(&p->in_w);
        }
        while (p->out_r >= 0) {
            r = read(p->out_r, buf, sizeof buf);
            if (r > 0) {
                if (!j->fail_code && !stopped)
                    take_stdout(j, buf, (size_t)r);
                continue;
            }
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close_fd(&p->out_r);
                /* The last line may lack its newline. */
                if (j->line.len && !j->fail_code && !stopped)
                    record(j, spell_buf_str(&j->line), j->line.len);
                spell_buf_reset(&j->line);
            }
            break;
        }
        while (p->err_r >= 0) {
            r = read(p->err_r, buf, sizeof buf);
            if (r > 0) {
                take_stderr(j, buf, (size_t)r);
                continue;
            }
            if (r == 0 || (errno != EAGAIN && errno != EINTR))
                close_fd(&p->err_r);
            break;
        }
        now = mono_ms();
        if (!j->started && now >= j->start_by)
            job_start(j, -1, NULL);
        flags = exec_slot_flags(j->e, j->slot);
        if (!reaped) {
            siginfo_t si;

            memset(&si, 0, sizeof si);
            if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                si.si_pid == p->pid) {
                /* Whatever the program left behind in its group goes too;
                 * its pid is still reserved, so the group id is ours. */
                kill(-p->pid, SIGKILL);
                exec_slot_set_pgid(j->e, j->slot, 0);
                waitpid(p->pid, wstatus, 0);
                reaped = true;
                drain_until = now + DRAIN_MS;
            } else if ((flags & EXEC_FLAG_STOP) && !stopped) {
                stopped = true;
                kill(-p->pid, SIGKILL);
            } else if ((flags & EXEC_FLAG_CANCEL) && !canceled) {
                /* exec_cancel sent SIGTERM; SIGKILL follows the grace. */
                canceled = true;
                kill_at = now + EXEC_KILL_GRACE_MS;
            } else if (j->fail_code && !killed) {
                killed = true;
                kill(-p->pid, SIGKILL);
            } else if (!timed_out && now >= deadline) {
                timed_out = true;
                kill(-p->pid, SIGTERM);
                kill_at = now + EXEC_KILL_GRACE_MS;
            } else if (kill_at && now >= kill_at) {
                kill(-p->pid, SIGKILL);
                kill_at = 0;
            }
        } else if (now >= drain_until) {
            close_fd(&p->in_w);
            close_fd(&p->out_r);
            close_fd(&p->err_r);
        }
    }
    close_fd(&p->in_w);
    close_fd(&p->out_r);
    close_fd(&p->err_r);
    if (!reaped) {
        kill(-p->pid, SIGKILL);
        exec_slot_set_pgid(j->e, j->slot, 0);
        waitpid(p->pid, wstatus, 0);
    }
    flags = exec_slot_flags(j->e, j->slot);
    if (stopped || (flags & EXEC_FLAG_STOP && !WIFEXITED(*wstatus)))
        return END_STOPPED;
    if (canceled || (flags & EXEC_FLAG_CANCEL))
        return END_CANCELED;
    if (j->fail_code)
        return END_FAILED;
    if (timed_out)
        return END_TIMEOUT;
    return END_EXITED;
}

/* The stderr tail as one clean line for a failure message. */
static void exit_message(struct job *j, int wstatus, char *out, size_t outsize)
{
    char tail[LIFECYCLE_MESSAGE_MAX / 2 + 1];
    size_t start = 0;
    int n;

    if (WIFEXITED(wstatus))
        n = snprintf(out, outsize, "the spell exited with status %d", WEXITSTATUS(wstatus));
    else
        n = snprintf(out, outsize, "the spell was killed by signal %d", WTERMSIG(wstatus));
    while (j->err_len > start && (j->err_tail[j->err_len - 1] == '\n'))
        j->err_len--;
    /* Keep the end of the tail: that is where the reason usually is. */
    if (j->err_len > LIFECYCLE_MESSAGE_MAX / 2)
        start = j->err_len - LIFECYCLE_MESSAGE_MAX / 2;
    /* Do not start inside a UTF-8 sequence. */
    while (start < j->err_len && ((unsigned char)j->err_tail[start] & 0xc0) == 0x80)
        start++;
    if (j->err_len > start && n > 0 && (size_t)n < outsize) {
        lifecycle_text_clean(j->err_tail + start, j->err_len - start, tail, sizeof tail);
        snprintf(out + n, outsize - (size_t)n, ": %s", tail);
    }
}

static void job_free(struct job *j)
{
    for (size_t i = 0; i < EXEC_ARGV_MAX && j->argv[i]; i++)
        free(j->argv[i]);
    free(j->path);
    spell_buf_free(&j->line);
    dir_remove(j);
}

void service_run(struct executor *e, struct exec_slot *slot, const struct store_cast *c)
{
    struct server *srv = exec_server(e);
    struct store_spell sp;
    struct job *j = NULL;
    struct proc p = {-1, -1, -1, -1};
    char msg[LIFECYCLE_MESSAGE_MAX + 1] = "";
    enum run_end end;
    int wstatus = 0, rc, flags;
    int64_t cost;

    memset(&sp, 0, sizeof sp);
    if (!(j = calloc(1, sizeof *j))) {
        lifecycle_fail(srv, c->id, EXEC_ERR_INTERNAL, "the server ran out of memory");
        return;
    }
    j->e = e;
    j->slot = slot;
    j->srv = srv;
    j->cast = c;
    j->progress = c->progress;
    j->reported_cost = -1;
    j->timeout_s = srv->limits.default_timeout_s > 0 ? srv->limits.default_timeout_s
                                                     : TIMEOUT_DEFAULT_S;
    if (j->timeout_s > EXEC_TIMEOUT_MAX_S)
        j->timeout_s = EXEC_TIMEOUT_MAX_S;
    j->memory_bytes = srv->limits.max_memory_bytes > 0 ? srv->limits.max_memory_bytes
                                                        : MEMORY_DEFAULT;
    j->nice = srv->limits.spell_nice < 0 ? 0 : srv->limits.spell_nice;
    if (j->nice > 19)
        j->nice = 19;
    j->out_max = srv->limits.max_output_bytes > 0 ? srv->limits.max_output_bytes
                                                   : EXEC_OUTPUT_DEFAULT;
    spell_buf_init(&j->line, EXEC_LINE_MAX);

    if ((rc = store_spell_get(srv->store, c->spell_key, &sp)) != SPELL_OK) {
        lifecycle_fail(srv, c->id, EXEC_ERR_INTERNAL, "the spell of this cast is not available");
        goto out;
    }
    j->metered = strcmp(sp.pricing_model, "metered") == 0;
    if (!c->inputs) {
        lifecycle_fail(srv, c->id, EXEC_ERR_INTERNAL, "the inputs of this cast are not stored");
        goto out;
    }
    if (parse_execution(j, sp.execution, msg, sizeof msg) != SPELL_OK ||
        resolve_path(j, msg, sizeof msg) != SPELL_OK) {
        lifecycle_fail(srv, c->id, EXEC_ERR_INTERNAL, msg);
        goto out;
    }
    if (prepare_dirs(j) != SPELL_OK) {
        lifecycle_fail(srv, c->id, EXEC_ERR_INTERNAL,
                       "the server could not make a working directory for the spell");
        goto out;
    }
    prepare_env(j);
    flags = exec_slot_flags(e, slot);
    if (flags)
        goto out;   /* canceled (the store says so already) or stopping */
    if (spawn(j, &p) != SPELL_OK) {
        lifecycle_fail(srv, c->id, EXEC_ERR_INTERNAL, "the spell's program could not be started");
        goto out;
    }
    flags = exec_slot_set_pgid(e, slot, p.pid);
    if (flags & EXEC_FLAG_STOP)
        kill(-p.pid, SIGKILL);
    else if (flags & EXEC_FLAG_CANCEL)
        kill(-p.pid, SIGTERM);
    j->pid = p.pid;
    j->start_by = mono_ms() + START_DEFER_MS;
    if (strcmp(c->status, "queued") != 0) {
        /* Re-run after a restart: running already, so no start is stored
         * (the store refuses it) and nothing waits for one. */
        (void)lifecycle_start(srv, c->id, NULL);
        j->started = true;
    }
    end = run_loop(j, &p, &wstatus);
    if (end == END_STOPPED || end == END_CANCELED)
        goto out;
    job_start(j, -1, NULL);
    if (j->log_suppressed > 0) {
        snprintf(msg, sizeof msg, "(%ld log lines suppressed)", j->log_suppressed);
        lifecycle_log(srv, c->id, msg);
    }
    switch (end) {
    case END_FAILED:
        lifecycle_fail(srv, c->id, j->fail_code, j->fail_msg);
        break;
    case END_TIMEOUT:
        snprintf(msg, sizeof msg, "the spell timed out after %lld s", (long long)j->timeout_s);
        lifecycle_fail(srv, c->id, EXEC_ERR_TIMEOUT, msg);
        break;
    default:
        if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
            cost = c->estimated_cost_cents;
            if (j->metered && j->reported_cost >= 0 && j->reported_cost < cost)
                cost = j->reported_cost;
            lifecycle_succeed(srv, c->id, cost, j->artifact_url[0] ? j->artifact_url : NULL);
        } else {
            exit_message(j, wstatus, msg, sizeof msg);
            lifecycle_fail(srv, c->id, EXEC_ERR_SPELL_FAILED, msg);
        }
        break;
    }
out:
    store_spell_clear(&sp);
    job_free(j);
    free(j);
}
