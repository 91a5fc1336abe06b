/*
 * Tests of the agent's desktop module (agent/desktop/).
 *
 * One program, several scenes, because each scene needs its own session:
 * run-desktop-tests.sh starts the right D-Bus session for each (a real
 * gnome-keyring, a Secret Service that never answers, no bus at all, a
 * dunst on an Xvfb, a bus without a notification server) and runs
 *     test-desktop <scene> <scratch dir>
 * inside it.  Each scene prints TAP; the script renumbers and joins them.
 *
 * Log lines are counted by pointing stderr at a file in the scratch dir
 * for the length of a case (the helper inherits it when it starts inside
 * one).  The helper is SPELL_TEST_DESKTOP_HELPER; SPELL_TEST_FAKE_HELPER_BIN
 * is a stand-in that misbehaves as SPELL_TEST_FAKE_HELPER says.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <spell/config.h>
#include <spell/errors.h>

#include "desktop-int.h"
#include "tap.h"

static const char *scratch;
static const char *const url = "http://127.0.0.1:8080";
static const char *helper;

struct got {
    int calls;
    struct desktop_cred_result r;
};

static void on_done(void *ud, const struct desktop_cred_result *r)
{
    struct got *g = ud;
    g->calls++;
    g->r = *r;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the daemon side's loop until g has its answer or limit_s passes. */
static bool wait_for(struct desktop *d, struct got *g, double limit_s)
{
    double end = now_s() + limit_s;

    while (g->calls == 0 && now_s() < end) {
        struct pollfd p = { .fd = desktop_fd(d), .events = POLLIN };
        if (poll(&p, 1, 100) > 0)
            desktop_dispatch(d);
    }
    return g->calls == 1;
}

static int load(struct desktop *d, struct got *g)
{
    int rc;
    memset(g, 0, sizeof *g);
    rc = desktop_cred_load(d, on_done, g);
    if (rc == SPELL_OK && !wait_for(d, g, 20))
        rc = SPELL_ETIMEOUT;
    return rc;
}

static int save(struct desktop *d, const char *token, const char *account, struct got *g)
{
    int rc;
    memset(g, 0, sizeof *g);
    rc = desktop_cred_save(d, token, account, on_done, g);
    if (rc == SPELL_OK && !wait_for(d, g, 20))
        rc = SPELL_ETIMEOUT;
    return rc;
}

static int removal(struct desktop *d, struct got *g)
{
    int rc;
    memset(g, 0, sizeof *g);
    rc = desktop_cred_remove(d, on_done, g);
    if (rc == SPELL_OK && !wait_for(d, g, 20))
        rc = SPELL_ETIMEOUT;
    return rc;
}

/* A fresh config dir under the scratch dir for each case. */
static char cfgdir[512];
static char credpath[600];

static void fresh_dir(const char *name)
{
    char cmd[700];
    snprintf(cfgdir, sizeof cfgdir, "%s/%s/spell", scratch, name);
    snprintf(credpath, sizeof credpath, "%s/credentials", cfgdir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s/%s'", scratch, name);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot clean %s\n", name);
}

static struct desktop *start(const char *env_key, bool no_plaintext, bool notes)
{
    struct desktop_config c = {
        .api_url = url,
        .config_dir = cfgdir,
        .env_api_key = env_key,
        .no_plaintext = no_plaintext,
        .notifications = notes,
        .app_name = "spell-agent-test",
        .helper_path = helper,
    };
    struct desktop *d = NULL;
    if (desktop_start(&c, &d) != SPELL_OK)
        return NULL;
    return d;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    char dir[600];
    char *slash;
    int fd;

    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    *slash = '\0';
    spell_path_mkdir_private(dir, NULL, 0);
    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        fprintf(stderr, "cannot write %s\n", path);
    if (fd >= 0)
        close(fd);
    chmod(path, mode);
}

static char *slurp(const char *path)
{
    static char buf[8192];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return buf;
}

/* ---- stderr capture ---- */

static int saved_stderr = -1;
static char logpath[600];

static void capture_begin(void)
{
    int fd;
    snprintf(logpath, sizeof logpath, "%s/stderr.log", scratch);
    fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

/* Restores stderr, echoes what was captured as TAP comments, and returns
 * how many captured lines hold needle. */
static int capture_end(const char *needle)
{
    char *text, *line, *save_ptr = NULL;
    int n = 0;

    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    text = slurp(logpath);
    if (!text)
        return -1;
    for (line = strtok_r(text, "\n", &save_ptr); line; line = strtok_r(NULL, "\n", &save_ptr)) {
        printf("# log: %s\n", line);
        if (strstr(line, needle))
            n++;
    }
    return n;
}

/* ================= unit: no session needed ================= */

static void test_text_ok(void)
{
    CHECK(cred_text_ok("sk_live_abc", 11, 100));
    CHECK(cred_text_ok("h\xc3\xa9llo", 6, 100));
    CHECK(!cred_text_ok("", 0, 100));
    CHECK(!cred_text_ok("a b", 3, 100));
    CHECK(!cred_text_ok("a\tb", 3, 100));
    CHECK(!cred_text_ok("a\nb", 3, 100));
    CHECK(!cred_text_ok("a\x7f", 2, 100));
    CHECK(!cred_text_ok("a\0b", 3, 100));
    CHECK(!cred_text_ok("\xc3\x28", 2, 100));
    CHECK(!cred_text_ok("\xed\xa0\x80", 3, 100));
    CHECK(!cred_text_ok("abcd", 4, 3));
    CHECK(cred_text_ok("abc", 3, 3));
}

static void test_text_dup(void)
{
    char *s;

    s = desktop_text_dup("plain", 100);
    CHECK_STR(s, "plain");
    free(s);
    s = desktop_text_dup("a\xff" "b\xc3", 100);
    CHECK_STR(s, "a?b?");
    free(s);
    /* "é" is two bytes; a cap of 2 must not split it. */
    s = desktop_text_dup("a\xc3\xa9z", 2);
    CHECK_STR(s, "a");
    free(s);
    s = desktop_text_dup("abcdef", 3);
    CHECK_STR(s, "abc");
    free(s);
    s = desktop_text_dup("", 3);
    CHECK_STR(s, "");
    free(s);
}

static void test_parse_ok(void)
{
    struct credfile cf;
    char err[200] = "";
    const char *t = "# spell\n\nserver = http://x:1\naccount=alice\n  token =  sk_live_a  \n";

    CHECK_INT(credfile_parse(t, strlen(t), &cf, err, sizeof err), SPELL_OK);
    CHECK_STR(cf.server, "http://x:1");
    CHECK_STR(cf.account, "alice");
    CHECK_STR(cf.token, "sk_live_a");
    /* No final newline, other order. */
    t = "token = t\naccount = a\nserver = s";
    CHECK_INT(credfile_parse(t, strlen(t), &cf, err, sizeof err), SPELL_OK);
    CHECK_STR(cf.server, "s");
    CHECK_STR(cf.token, "t");
}

static void check_parse_fails(const char *t, size_t len, int want, const char *why)
{
    struct credfile cf;
    char err[200] = "";

    memset(&cf, 'x', sizeof cf);
    CHECK_INT(credfile_parse(t, len, &cf, err, sizeof err), want);
    if (why && !strstr(err, why)) {
        printf("#   err was '%s', want '%s'\n", err, why);
        CHECK(!"message");
    }
    /* A refused file leaves nothing behind. */
    CHECK_INT(cf.token[0], 0);
    CHECK_INT(cf.token[5], 0);
}

static void test_parse_bad(void)
{
    char *big;

    check_parse_fails("", 0, SPELL_EPARSE, "lacks a server");
    check_parse_fails("server = s\naccount = a\n", 23, SPELL_EPARSE, "lacks a token");
    check_parse_fails("server = s\ntoken = t\n", 21, SPELL_EPARSE, "lacks a account");
    check_parse_fails("server = s\naccount = a\ntoken = t\ntoken = u\n", 42, SPELL_EPARSE,
                      "line 4: token given twice");
    check_parse_fails("server = s\naccount = a\ntoken = t u\n", 34, SPELL_EPARSE,
                      "line 3: bad value for token");
    check_parse_fails("server = s\naccount = a\ntoken =\n", 30, SPELL_EPARSE, "bad value");
    check_parse_fails("server s\n", 9, SPELL_EPARSE, "line 1: expected");
    check_parse_fails("colour = red\n", 13, SPELL_EPARSE, "line 1: unknown key");
    check_parse_fails("Server = s\naccount = a\ntoken = t\n", 32, SPELL_EPARSE, "unknown key");
    check_parse_fails("server = s\naccount = a\ntoken = t\0x\n", 34, SPELL_EPARSE, "NUL");
    check_parse_fails("server = s\naccount = \xc3\x28\ntoken = t\n", 33, SPELL_EPARSE,
                      "bad value for account");
    check_parse_fails("server = s\r\naccount = a\ntoken = t\n", 33, SPELL_EPARSE, "bad value");
    big = malloc(DESKTOP_CRED_FILE_MAX + 2);
    memset(big, '#', DESKTOP_CRED_FILE_MAX + 1);
    check_parse_fails(big, DESKTOP_CRED_FILE_MAX + 1, SPELL_ETOOBIG, "larger");
    free(big);
    /* A token one byte over its cap. */
    big = malloc(DESKTOP_TOKEN_MAX + 64);
    strcpy(big, "server = s\naccount = a\ntoken = ");
    size_t l = strlen(big);
    memset(big + l, 'k', DESKTOP_TOKEN_MAX + 1);
    big[l + DESKTOP_TOKEN_MAX + 1] = '\0';
    check_parse_fails(big, strlen(big), SPELL_EPARSE, "bad value for token");
    /* Exactly at the cap it is fine. */
    big[l + DESKTOP_TOKEN_MAX] = '\0';
    {
        struct credfile cf;
        CHECK_INT(credfile_parse(big, strlen(big), &cf, NULL, 0), SPELL_OK);
        CHECK_INT(strlen(cf.token), DESKTOP_TOKEN_MAX);
    }
    free(big);
}

static void test_file_roundtrip(void)
{
    char path[600], err[300] = "";
    struct credfile cf;
    struct stat st;

    fresh_dir("roundtrip");
    CHECK_INT(credfile_write(cfgdir, url, "alice", "sk_live_x", path, sizeof path, err,
                             sizeof err), SPELL_OK);
    CHECK_STR(path, credpath);
    CHECK(stat(cfgdir, &st) == 0 && (st.st_mode & 0777) == 0700);
    CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600);
    CHECK_STR(slurp(path), "server = http://127.0.0.1:8080\naccount = alice\ntoken = sk_live_x\n");
    CHECK_INT(credfile_read(path, &cf, err, sizeof err), SPELL_OK);
    CHECK_STR(cf.token, "sk_live_x");
    /* A second write replaces the first. */
    CHECK_INT(credfile_write(cfgdir, url, "bob", "sk_live_y", path, sizeof path, err,
                             sizeof err), SPELL_OK);
    CHECK_INT(credfile_read(path, &cf, err, sizeof err), SPELL_OK);
    CHECK_STR(cf.account, "bob");
    /* No temporary file is left behind. */
    CHECK_INT(system("test $(ls -A1 \"$SCRATCH_CFG\" | wc -l) -eq 1") == 0 ? 0 : 1, 0);
    /* Malformed values are never written. */
    CHECK_INT(credfile_write(cfgdir, url, "a b", "t", path, sizeof path, err, sizeof err),
              SPELL_EINVAL);
    CHECK_INT(credfile_write(cfgdir, url, "a", "t\nserver = evil", path, sizeof path, err,
                             sizeof err), SPELL_EINVAL);
}

static void test_file_refusals(void)
{
    char err[300] = "";
    struct credfile cf;
    const char *good = "server = http://127.0.0.1:8080\naccount = a\ntoken = t\n";
    char target[700];

    fresh_dir("refuse");
    CHECK_INT(credfile_read(credpath, &cf, err, sizeof err), SPELL_ENOTFOUND);
    write_file(credpath, good, 0644);
    CHECK_INT(credfile_read(credpath, &cf, err, sizeof err), SPELL_EVERIFY);
    CHECK(strstr(err, "0644") != NULL);
    write_file(credpath, good, 0400);
    CHECK_INT(credfile_read(credpath, &cf, err, sizeof err), SPELL_EVERIFY);
    write_file(credpath, good, 0600);
    CHECK_INT(credfile_read(credpath, &cf, err, sizeof err), SPELL_OK);
    /* A symlink to a good file is refused. */
    snprintf(target, sizeof target, "%s/elsewhere", cfgdir);
    write_file(target, good, 0600);
    unlink(credpath);
    CHECK(symlink(target, credpath) == 0);
    CHECK_INT(credfile_read(credpath, &cf, err, sizeof err), SPELL_EVERIFY);
    CHECK(strstr(err, "symbolic link") != NULL);
    unlink(credpath);
    /* A directory in its place. */
    CHECK(mkdir(credpath, 0700) == 0);
    CHECK_INT(credfile_read(credpath, &cf, err, sizeof err), SPELL_EVERIFY);
    rmdir(credpath);
    /* Too big on disk. */
    {
        char *big = malloc(DESKTOP_CRED_FILE_MAX + 10);
        memset(big, '#', DESKTOP_CRED_FILE_MAX + 9);
        big[DESKTOP_CRED_FILE_MAX + 9] = '\0';
        write_file(credpath, big, 0600);
        free(big);
        CHECK_INT(credfile_read(credpath, &cf, err, sizeof err), SPELL_ETOOBIG);
    }
    /* Garbage content names the file. */
    write_file(credpath, "token = x\n", 0600);
    CHECK_INT(credfile_read(credpath, &cf, err, sizeof err), SPELL_EPARSE);
    CHECK(strstr(err, credpath) != NULL);
}

static void test_start_args(void)
{
    struct desktop *d = (struct desktop *)1;
    struct desktop_config c = { .api_url = url, .helper_path = helper };
    char longurl[DESKTOP_URL_MAX + 2];

    CHECK_INT(desktop_start(NULL, &d), SPELL_EINVAL);
    CHECK(d == NULL);
    CHECK_INT(desktop_start(&c, NULL), SPELL_EINVAL);
    c.api_url = NULL;
    CHECK_INT(desktop_start(&c, &d), SPELL_EINVAL);
    c.api_url = "";
    CHECK_INT(desktop_start(&c, &d), SPELL_EINVAL);
    c.api_url = "http://a b";
    CHECK_INT(desktop_start(&c, &d), SPELL_EINVAL);
    memset(longurl, 'u', sizeof longurl - 1);
    longurl[sizeof longurl - 1] = '\0';
    c.api_url = longurl;
    CHECK_INT(desktop_start(&c, &d), SPELL_EINVAL);
    c.api_url = url;
    c.config_dir = "relative/dir";
    CHECK_INT(desktop_start(&c, &d), SPELL_EINVAL);
    c.config_dir = NULL;
    c.env_api_key = "bad key";
    CHECK_INT(desktop_start(&c, &d), SPELL_EINVAL);
    c.env_api_key = NULL;
    c.keyring_timeout_ms = -1;
    CHECK_INT(desktop_start(&c, &d), SPELL_EINVAL);
    c.keyring_timeout_ms = 0;
    c.helper_path = "/nonexistent/spell-agent-desktop";
    capture_begin();
    CHECK_INT(desktop_start(&c, &d), SPELL_ENOTFOUND);
    CHECK_INT(capture_end("cannot run the helper"), 1);
    c.helper_path = helper;
    CHECK_INT(desktop_start(&c, &d), SPELL_OK);
    CHECK(desktop_fd(d) >= 0);
    desktop_stop(d);
    desktop_stop(NULL);
    CHECK_STR(desktop_cred_source_name(DESKTOP_CRED_NONE), "none");
    CHECK_STR(desktop_cred_source_name(DESKTOP_CRED_KEYRING), "keyring");
    CHECK_STR(desktop_cred_source_name(DESKTOP_CRED_FILE), "file");
    CHECK_STR(desktop_cred_source_name(DESKTOP_CRED_ENV), "env");
}

static void test_request_args(void)
{
    struct desktop *d;
    struct got g = { 0 };
    char longtok[DESKTOP_TOKEN_MAX + 2];

    fresh_dir("args");
    d = start(NULL, false, false);
    CHECK(d != NULL);
    CHECK_INT(desktop_cred_load(d, NULL, &g), SPELL_EINVAL);
    CHECK_INT(desktop_cred_load(NULL, on_done, &g), SPELL_EINVAL);
    CHECK_INT(desktop_cred_save(d, NULL, "a", on_done, &g), SPELL_EINVAL);
    CHECK_INT(desktop_cred_save(d, "t", NULL, on_done, &g), SPELL_EINVAL);
    CHECK_INT(desktop_cred_save(d, "", "a", on_done, &g), SPELL_EINVAL);
    CHECK_INT(desktop_cred_save(d, "t", "", on_done, &g), SPELL_EINVAL);
    CHECK_INT(desktop_cred_save(d, "t t", "a", on_done, &g), SPELL_EINVAL);
    CHECK_INT(desktop_cred_save(d, "t\n", "a", on_done, &g), SPELL_EINVAL);
    CHECK_INT(desktop_cred_save(d, "t", "a\nb", on_done, &g), SPELL_EINVAL);
    CHECK_INT(desktop_cred_save(d, "\xff", "a", on_done, &g), SPELL_EINVAL);
    memset(longtok, 'k', sizeof longtok - 1);
    longtok[sizeof longtok - 1] = '\0';
    CHECK_INT(desktop_cred_save(d, longtok, "a", on_done, &g), SPELL_EINVAL);
    CHECK_INT(desktop_cred_remove(d, NULL, NULL), SPELL_EINVAL);
    {
        struct desktop_note n = { .summary = "" };
        CHECK_INT(desktop_notify(d, &n), SPELL_EINVAL);
        n.summary = NULL;
        CHECK_INT(desktop_notify(d, &n), SPELL_EINVAL);
        CHECK_INT(desktop_notify(d, NULL), SPELL_EINVAL);
        n.summary = "s";
        n.urgency = (enum desktop_urgency)7;
        CHECK_INT(desktop_notify(d, &n), SPELL_EINVAL);
        /* Notifications off: accepted and dropped. */
        n.urgency = DESKTOP_URGENCY_LOW;
        CHECK_INT(desktop_notify(d, &n), SPELL_OK);
        CHECK(!desktop_notifications_available(d));
    }
    CHECK_INT(g.calls, 0);
    desktop_stop(d);
}

/* Stopping with requests waiting or in flight calls nobody and leaks
 * nothing (LeakSanitizer checks the second half). */
static void test_stop_pending(void)
{
    struct desktop *d;
    struct got g[DESKTOP_CRED_QUEUE_MAX + 1];
    int accepted = 0, refused = 0;

    memset(g, 0, sizeof g);
    fresh_dir("stop");
    d = start("sk_env", false, false);
    CHECK(d != NULL);
    for (int i = 0; i <= DESKTOP_CRED_QUEUE_MAX; i++) {
        int rc = i % 2 ? desktop_cred_save(d, "tok", "acct", on_done, &g[i])
                       : desktop_cred_load(d, on_done, &g[i]);
        if (rc == SPELL_OK)
            accepted++;
        else if (rc == SPELL_ETOOBIG)
            refused++;
    }
    /* Nothing was dispatched, so the cap counts every request. */
    CHECK_INT(accepted, DESKTOP_CRED_QUEUE_MAX);
    CHECK_INT(refused, 1);
    desktop_stop(d);
    for (int i = 0; i <= DESKTOP_CRED_QUEUE_MAX; i++)
        CHECK_INT(g[i].calls, 0);
}

/* ================= nobus: no session bus at all ================= */

static void test_nobus_env(void)
{
    struct desktop *d;
    struct got g;
    double t0;

    fresh_dir("nobus-env");
    capture_begin();
    d = start("sk_live_fromenv", false, false);
    t0 = now_s();
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK(now_s() - t0 < 2.5);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_ENV);
    CHECK_STR(g.r.token, "sk_live_fromenv");
    CHECK(!g.r.keyring_available);
    CHECK(strstr(g.r.message, "Secret Service") != NULL);
    /* A second load does not log again. */
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_ENV);
    CHECK(strstr(g.r.message, "Secret Service") != NULL);
    desktop_stop(d);
    CHECK_INT(capture_end("Secret Service"), 1);
    /* The env key is never written anywhere. */
    CHECK(access(credpath, F_OK) != 0);
}

static void test_nobus_file(void)
{
    struct desktop *d;
    struct got g;
    struct stat st;

    fresh_dir("nobus-file");
    capture_begin();
    d = start(NULL, false, false);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    CHECK_STR(g.r.token, "");
    CHECK_INT(save(d, "sk_live_file1", "alice", &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_FILE);
    CHECK_STR(g.r.path, credpath);
    CHECK_STR(g.r.account, "alice");
    CHECK_STR(g.r.token, "");
    CHECK(lstat(credpath, &st) == 0 && (st.st_mode & 07777) == 0600);
    CHECK(stat(cfgdir, &st) == 0 && (st.st_mode & 07777) == 0700);
    CHECK_STR(slurp(credpath),
              "server = http://127.0.0.1:8080\naccount = alice\ntoken = sk_live_file1\n");
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_FILE);
    CHECK_STR(g.r.token, "sk_live_file1");
    CHECK_STR(g.r.account, "alice");
    CHECK_STR(g.r.path, credpath);
    CHECK_INT(removal(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK(g.r.removed);
    CHECK(access(credpath, F_OK) != 0);
    CHECK_INT(removal(d, &g), SPELL_OK);
    CHECK(!g.r.removed);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    desktop_stop(d);
    CHECK_INT(capture_end("Secret Service"), 1);
}

static void test_nobus_env_beats_file(void)
{
    struct desktop *d;
    struct got g;

    fresh_dir("nobus-both");
    write_file(credpath, "server = http://127.0.0.1:8080\naccount = a\ntoken = sk_file\n",
               0600);
    capture_begin();
    d = start("sk_env", false, false);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_ENV);
    CHECK_STR(g.r.token, "sk_env");
    desktop_stop(d);
    capture_end("Secret Service");
}

static void test_nobus_file_mode(void)
{
    struct desktop *d;
    struct got g;

    fresh_dir("nobus-mode");
    write_file(credpath, "server = http://127.0.0.1:8080\naccount = a\ntoken = sk_file\n",
               0644);
    capture_begin();
    d = start(NULL, false, false);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_EVERIFY);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    CHECK_STR(g.r.token, "");
    CHECK_STR(g.r.path, credpath);
    CHECK(strstr(g.r.message, "0644") != NULL);
    desktop_stop(d);
    CHECK_INT(capture_end("0644"), 1);
}

static void test_nobus_other_server(void)
{
    struct desktop *d;
    struct got g;

    fresh_dir("nobus-other");
    write_file(credpath, "server = https://elsewhere\naccount = a\ntoken = sk_file\n", 0600);
    capture_begin();
    d = start(NULL, false, false);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    CHECK_STR(g.r.token, "");
    /* Remove leaves another server's file alone. */
    CHECK_INT(removal(d, &g), SPELL_OK);
    CHECK(!g.r.removed);
    CHECK(access(credpath, F_OK) == 0);
    desktop_stop(d);
    capture_end("Secret Service");
}

static void test_nobus_no_plaintext(void)
{
    struct desktop *d;
    struct got g;

    fresh_dir("nobus-noplain");
    capture_begin();
    d = start(NULL, true, false);
    CHECK_INT(save(d, "sk_live_x", "alice", &g), SPELL_OK);
    CHECK_INT(g.r.rc, DESKTOP_ENOPLAINTEXT);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    CHECK(strstr(g.r.message, "--no-plaintext") != NULL);
    CHECK(access(credpath, F_OK) != 0);
    CHECK(access(cfgdir, F_OK) != 0);
    /* A file left from before is not read either. */
    write_file(credpath, "server = http://127.0.0.1:8080\naccount = a\ntoken = sk_file\n",
               0600);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    CHECK(strstr(g.r.message, "--no-plaintext") != NULL);
    desktop_stop(d);
    CHECK_INT(capture_end("Secret Service"), 1);
}

static void test_nobus_no_config_dir(void)
{
    struct desktop_config c = { .api_url = url, .helper_path = helper };
    struct desktop *d = NULL;
    struct got g;

    capture_begin();
    CHECK_INT(desktop_start(&c, &d), SPELL_OK);
    CHECK_INT(save(d, "sk_live_x", "alice", &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_ENOTFOUND);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    desktop_stop(d);
    capture_end("Secret Service");
}

/* With no bus, notes return at once, the module logs once and goes
 * silent. */
static void test_no_notification_server(void)
{
    struct desktop *d;
    struct got g;
    struct desktop_note n = { .summary = "Cast succeeded", .body = "echo" };
    double t0;

    fresh_dir("nonotify");
    capture_begin();
    d = start("sk_env", false, true);
    CHECK(desktop_notifications_available(d));
    t0 = now_s();
    CHECK_INT(desktop_notify(d, &n), SPELL_OK);
    CHECK_INT(desktop_notify(d, &n), SPELL_OK);
    CHECK_INT(desktop_notify(d, &n), SPELL_OK);
    CHECK(now_s() - t0 < 0.5);
    /* Requests are served after the notes queued before them, so once the
     * load is back every note has been tried. */
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK(!desktop_notifications_available(d));
    CHECK_INT(desktop_notify(d, &n), SPELL_OK);
    CHECK_INT(load(d, &g), SPELL_OK);
    desktop_stop(d);
    CHECK_INT(capture_end("notifications are off"), 1);
}

/* Starts the stand-in helper in the given mode. */
static struct desktop *start_fake(const char *mode)
{
    struct desktop_config c = {
        .api_url = url,
        .notifications = true,
        .helper_path = getenv("SPELL_TEST_FAKE_HELPER_BIN"),
    };
    struct desktop *d = NULL;

    setenv("SPELL_TEST_FAKE_HELPER", mode, 1);
    if (desktop_start(&c, &d) != SPELL_OK)
        return NULL;
    return d;
}

/* Whether pid is gone: no such process, or a zombie nobody reaped yet. */
static bool process_gone(pid_t pid)
{
    char path[64], stat[256];
    int fd;
    ssize_t n;
    char *paren;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return true;
    n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0)
        return true;
    stat[n] = '\0';
    paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

/* Runs the loop until a helper other than old_pid runs. */
static int wait_new_helper(struct desktop *d, int old_pid, double limit_s)
{
    double end = now_s() + limit_s;
    int pid = 0;

    while (now_s() < end) {
        struct pollfd p = { .fd = desktop_fd(d), .events = POLLIN };
        if (poll(&p, 1, 100) > 0)
            desktop_dispatch(d);
        if (desktop_helper_info(d, &pid, NULL) && pid != old_pid)
            return pid;
    }
    return 0;
}

/* Past DESKTOP_NOTE_QUEUE_MAX waiting notes the oldest go, logged once per
 * burst, and desktop_notify() never waits for the helper: this one reads
 * nothing, so the socket fills and the notes wait in the outbox. */
static void test_note_overflow(void)
{
    struct desktop *d;
    struct desktop_note n = { .summary = "s", .body = "b" };
    int ok = 0;
    double t0;

    capture_begin();
    d = start_fake("stall");
    CHECK(d != NULL);
    t0 = now_s();
    for (int i = 0; i < DESKTOP_NOTE_QUEUE_MAX * 3 + 200; i++)
        ok += desktop_notify(d, &n) == SPELL_OK;
    CHECK(now_s() - t0 < 5.0);
    CHECK(desktop_helper_info(d, NULL, NULL));
    desktop_stop(d);
    CHECK_INT(ok, DESKTOP_NOTE_QUEUE_MAX * 3 + 200);
    CHECK_INT(capture_end("dropping the oldest"), 1);
}

/* Whatever malformed thing the helper sends is refused: the request it
 * answered fails with SPELL_EIO, the helper is killed and reaped, and the
 * log says why. */
static void check_refused(const char *mode, const char *why)
{
    struct desktop *d;
    struct got g;
    int pid = 0;

    printf("# helper mode %s\n", mode);
    capture_begin();
    d = start_fake(mode);
    CHECK(d != NULL);
    CHECK(desktop_helper_info(d, &pid, NULL));
    CHECK(pid > 0);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_EIO);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    CHECK_STR(g.r.token, "");
    CHECK(strstr(g.r.message, "helper stopped") != NULL);
    CHECK(strstr(g.r.message, why) != NULL);
    /* Reaped before the result was handed over. */
    CHECK(kill(pid, 0) != 0);
    CHECK(!desktop_helper_info(d, NULL, NULL));
    /* While it is down a request fails at once, the same way. */
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_EIO);
    desktop_stop(d);
    CHECK_INT(capture_end("refused"), 1);
}

static void test_helper_refused(void)
{
    check_refused("garbage", "an unknown message");
    check_refused("oversize", "oversized");
    check_refused("badid", "an answer to no request");
    check_refused("unterminated", "malformed token");
    check_refused("badrc", "out of range");
}

/* The helper killed under the daemon: the request in flight or the next
 * one fails clearly, a new helper comes after the backoff, and credentials
 * work again. */
static void test_helper_killed(void)
{
    struct desktop *d;
    struct got g;
    int pid = 0, pid2;
    unsigned starts = 0;

    fresh_dir("killed");
    capture_begin();
    d = start("sk_live_fromenv", false, false);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_ENV);
    CHECK(desktop_helper_info(d, &pid, &starts));
    CHECK_INT(starts, 1);
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_EIO);
    CHECK_STR(g.r.token, "");
    CHECK(strstr(g.r.message, "helper stopped") != NULL);
    pid2 = wait_new_helper(d, pid, 20);
    CHECK(pid2 > 0 && pid2 != pid);
    CHECK(desktop_helper_info(d, NULL, &starts));
    CHECK_INT(starts, 2);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_ENV);
    CHECK_STR(g.r.token, "sk_live_fromenv");
    desktop_stop(d);
    CHECK(process_gone(pid2));
    CHECK_INT(capture_end("killed by signal 9"), 1);
}

/* The daemon SIGKILLed: its helper does not outlive it. */
static void test_daemon_killed(void)
{
    int pfd[2];
    pid_t child;
    int helper_pid = 0, st;
    double end;

    fresh_dir("daemon-killed");
    CHECK(pipe(pfd) == 0);
    child = fork();
    if (child == 0) {
        struct desktop *d;
        int pid = 0;

        close(pfd[0]);
        d = start("sk_env", false, false);
        if (d)
            desktop_helper_info(d, &pid, NULL);
        if (write(pfd[1], &pid, sizeof pid) != (ssize_t)sizeof pid)
            _exit(1);
        for (;;)
            pause();
    }
    close(pfd[1]);
    CHECK(read(pfd[0], &helper_pid, sizeof helper_pid) == (ssize_t)sizeof helper_pid);
    close(pfd[0]);
    CHECK(helper_pid > 0);
    CHECK(!process_gone(helper_pid));
    kill(child, SIGKILL);
    waitpid(child, &st, 0);
    end = now_s() + 10;
    while (!process_gone(helper_pid) && now_s() < end)
        usleep(10000);
    CHECK(process_gone(helper_pid));
}

/* No secret in the helper's command line or environment. */
static void test_helper_env(void)
{
    struct desktop *d;
    int pid = 0;
    char path[64], *text;
    size_t n = 0;
    int fd;
    static char buf[65536];

    fresh_dir("env");
    setenv("SPELL_API_KEY", "sk_live_secret_env", 1);
    d = start("sk_live_secret_env", false, false);
    CHECK(desktop_helper_info(d, &pid, NULL));
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    if (fd >= 0) {
        ssize_t got;
        while ((got = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
            n += (size_t)got;
        close(fd);
    }
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = '\n';
    buf[n] = '\0';
    CHECK(n > 0);
    CHECK(strstr(buf, "sk_live_secret_env") == NULL);
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    text = slurp(path);
    CHECK(text != NULL);
    CHECK(text && strstr(text, "sk_live") == NULL);
    desktop_stop(d);
    unsetenv("SPELL_API_KEY");
}

/* ================= keyring: a real gnome-keyring ================= */

static void test_keyring_roundtrip(void)
{
    struct desktop *d;
    struct got g;

    fresh_dir("kr");
    capture_begin();
    d = start(NULL, false, false);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    CHECK(g.r.keyring_available);
    CHECK_STR(g.r.message, "");
    CHECK_INT(save(d, "sk_live_kr1", "alice", &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_KEYRING);
    CHECK_STR(g.r.account, "alice");
    CHECK(g.r.keyring_available);
    CHECK(access(credpath, F_OK) != 0);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_KEYRING);
    CHECK_STR(g.r.token, "sk_live_kr1");
    CHECK_STR(g.r.account, "alice");
    /* A new login for the same server replaces the old item. */
    CHECK_INT(save(d, "sk_live_kr2", "bob", &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_KEYRING);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_STR(g.r.token, "sk_live_kr2");
    CHECK_STR(g.r.account, "bob");
    CHECK_INT(system("test $(secret-tool search --all server http://127.0.0.1:8080 2>&1"
                     " | grep -c '^attribute.account') -eq 1"), 0);
    CHECK_INT(removal(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK(g.r.removed);
    CHECK_INT(removal(d, &g), SPELL_OK);
    CHECK(!g.r.removed);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    desktop_stop(d);
    CHECK_INT(capture_end("Secret Service"), 0);
}

/* The keyring wins over SPELL_API_KEY, which only fills in when the
 * keyring holds nothing; a file is not read while the keyring answers. */
static void test_keyring_precedence(void)
{
    struct desktop *d;
    struct got g;

    fresh_dir("kr-prec");
    write_file(credpath, "server = http://127.0.0.1:8080\naccount = f\ntoken = sk_file\n",
               0600);
    d = start(NULL, false, false);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_NONE);
    desktop_stop(d);

    d = start("sk_env", false, false);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_ENV);
    CHECK_STR(g.r.token, "sk_env");
    /* Saving to the keyring drops the plaintext copy for this server. */
    CHECK_INT(save(d, "sk_live_kr3", "carol", &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_KEYRING);
    CHECK(access(credpath, F_OK) != 0);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_KEYRING);
    CHECK_STR(g.r.token, "sk_live_kr3");
    desktop_stop(d);
}

/* Leaves an item for run-desktop-tests.sh to find with secret-tool. */
static void test_keyring_leave_item(void)
{
    struct desktop *d;
    struct got g;

    fresh_dir("kr-leave");
    d = start(NULL, false, false);
    CHECK_INT(save(d, "sk_live_left", "dave", &g), SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_KEYRING);
    desktop_stop(d);
}

/* Stopping while a keyring call is in flight. */
static void test_keyring_stop_in_flight(void)
{
    struct desktop *d;
    struct got g = { 0 };

    fresh_dir("kr-stop");
    d = start(NULL, false, false);
    CHECK_INT(desktop_cred_load(d, on_done, &g), SPELL_OK);
    usleep(20000);
    desktop_stop(d);
    CHECK_INT(g.calls, 0);
}

/* ================= hang: a Secret Service that never answers ========== */

static void test_hang_fallback(void)
{
    struct desktop *d;
    struct got g;
    double t0, took;

    fresh_dir("hang");
    write_file(credpath, "server = http://127.0.0.1:8080\naccount = a\ntoken = sk_file\n",
               0600);
    capture_begin();
    d = start(NULL, false, false);
    t0 = now_s();
    CHECK_INT(load(d, &g), SPELL_OK);
    took = now_s() - t0;
    printf("# first load took %.2f s\n", took);
    CHECK(took >= 2.9 && took < 6.0);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK_INT(g.r.source, DESKTOP_CRED_FILE);
    CHECK_STR(g.r.token, "sk_file");
    CHECK(!g.r.keyring_available);
    CHECK(strstr(g.r.message, "did not answer within 3000 ms") != NULL);
    /* The verdict is remembered: the next requests do not wait again. */
    t0 = now_s();
    CHECK_INT(save(d, "sk_live_h", "hank", &g), SPELL_OK);
    CHECK(now_s() - t0 < 1.0);
    CHECK_INT(g.r.source, DESKTOP_CRED_FILE);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_STR(g.r.token, "sk_live_h");
    CHECK(strstr(g.r.message, "did not answer") != NULL);
    CHECK_INT(removal(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK(g.r.removed);
    CHECK(access(credpath, F_OK) != 0);
    desktop_stop(d);
    CHECK_INT(capture_end("did not answer"), 1);
}

/* Stopping while the silent Secret Service holds a call does not wait for
 * the timeout, and calls nobody. */
static void test_hang_stop(void)
{
    struct desktop *d;
    struct got g = { 0 };
    double t0;

    fresh_dir("hang-stop");
    capture_begin();
    d = start(NULL, false, false);
    CHECK_INT(desktop_cred_load(d, on_done, &g), SPELL_OK);
    usleep(200000);
    t0 = now_s();
    desktop_stop(d);
    printf("# stop took %.2f s\n", now_s() - t0);
    CHECK(now_s() - t0 < 1.5);
    CHECK_INT(g.calls, 0);
    capture_end("did not answer");
}

static void test_hang_no_plaintext(void)
{
    struct desktop *d;
    struct got g;
    double t0, took;

    fresh_dir("hang-np");
    capture_begin();
    d = start(NULL, true, false);
    t0 = now_s();
    CHECK_INT(save(d, "sk_live_h", "hank", &g), SPELL_OK);
    took = now_s() - t0;
    CHECK(took >= 2.9 && took < 6.0);
    CHECK_INT(g.r.rc, DESKTOP_ENOPLAINTEXT);
    CHECK(access(credpath, F_OK) != 0);
    desktop_stop(d);
    CHECK_INT(capture_end("did not answer"), 1);
}

/* ================= notify: dunst on an Xvfb ================= */

static void test_notify_shown(void)
{
    struct desktop *d;
    struct got g;
    struct desktop_note ok = {
        .summary = "Cast succeeded",
        .body = "echo finished: 3 < 4 & done",
        .urgency = DESKTOP_URGENCY_NORMAL,
    };
    struct desktop_note bad = {
        .summary = "Budget exceeded",
        .body = "bad \xff byte",
        .urgency = DESKTOP_URGENCY_CRITICAL,
        .timeout_ms = -1,
    };

    fresh_dir("notify");
    capture_begin();
    d = start("sk_env", false, true);
    CHECK_INT(desktop_notify(d, &ok), SPELL_OK);
    CHECK_INT(desktop_notify(d, &bad), SPELL_OK);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK(desktop_notifications_available(d));
    desktop_stop(d);
    CHECK_INT(capture_end("notifications are off"), 0);
}

/* A helper killed and started again shows notes again (the script looks
 * for this one in dunst's history). */
static void test_notify_after_restart(void)
{
    struct desktop *d;
    struct got g;
    struct desktop_note again = { .summary = "After restart", .body = "shown" };
    int pid = 0;

    fresh_dir("notify-restart");
    capture_begin();
    d = start("sk_env", false, true);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK(desktop_helper_info(d, &pid, NULL));
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK(wait_new_helper(d, pid, 20) > 0);
    CHECK_INT(desktop_notify(d, &again), SPELL_OK);
    CHECK_INT(load(d, &g), SPELL_OK);
    CHECK_INT(g.r.rc, SPELL_OK);
    CHECK(desktop_notifications_available(d));
    desktop_stop(d);
    CHECK_INT(capture_end("notifications are off"), 0);
}

int main(int argc, char **argv)
{
    const char *scene = argc > 1 ? argv[1] : "unit";
    static char cfg_env[600];

    scratch = argc > 2 ? argv[2] : "/tmp/desktop-test";
    helper = getenv("SPELL_TEST_DESKTOP_HELPER");
    mkdir(scratch, 0700);
    snprintf(cfg_env, sizeof cfg_env, "%s/roundtrip/spell", scratch);
    setenv("SCRATCH_CFG", cfg_env, 1);

    if (strcmp(scene, "unit") == 0) {
        RUN(test_text_ok);
        RUN(test_text_dup);
        RUN(test_parse_ok);
        RUN(test_parse_bad);
        RUN(test_file_roundtrip);
        RUN(test_file_refusals);
        RUN(test_start_args);
        RUN(test_request_args);
        RUN(test_stop_pending);
        RUN(test_helper_refused);
        RUN(test_note_overflow);
    } else if (strcmp(scene, "nobus") == 0) {
        RUN(test_nobus_env);
        RUN(test_nobus_file);
        RUN(test_nobus_env_beats_file);
        RUN(test_nobus_file_mode);
        RUN(test_nobus_other_server);
        RUN(test_nobus_no_plaintext);
        RUN(test_nobus_no_config_dir);
        RUN(test_no_notification_server);
        RUN(test_helper_killed);
        RUN(test_daemon_killed);
        RUN(test_helper_env);
    } else if (strcmp(scene, "keyring") == 0) {
        RUN(test_keyring_roundtrip);
        RUN(test_keyring_precedence);
        RUN(test_keyring_stop_in_flight);
        RUN(test_keyring_leave_item);
    } else if (strcmp(scene, "hang") == 0) {
        RUN(test_hang_fallback);
        RUN(test_hang_no_plaintext);
        RUN(test_hang_stop);
    } else if (strcmp(scene, "notify") == 0) {
        RUN(test_notify_shown);
        RUN(test_notify_after_restart);
    } else if (strcmp(scene, "nonotify") == 0) {
        RUN(test_no_notification_server);
    } else {
        fprintf(stderr, "unknown scene %s\n", scene);
        return 2;
    }
    return tap_done();
}
