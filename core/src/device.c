/*
 * Device authorization, the client side (device.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "spell/device.h"
#include "spell/errors.h"
#include "spell/http.h"
#include "spell/json.h"

extern char **environ;

/* Longest base URL accepted; the endpoint path is appended to it. */
#define BASE_URL_MAX 2000
/* Room for the form body of a poll. */
#define POLL_BODY_MAX (SPELL_DEVICE_CODE_MAX + 128)
/* Longest PATH searched for xdg-open, and one directory of it. */
#define PATH_ENV_MAX 8192
#define EXE_PATH_MAX 4096
/* Each request's own deadline: polls are cheap, and a stuck one must not
 * hold up the caller's schedule for long. */
#define DEVICE_TIMEOUT_MS 15000L

static int make_url(const char *base, const char *path, char *out, size_t cap)
{
    size_t len;
    int n;

    if (!base || !base[0])
        return SPELL_EINVAL;
    len = strnlen(base, BASE_URL_MAX + 1);
    if (len > BASE_URL_MAX)
        return SPELL_ETOOBIG;
    while (len > 0 && base[len - 1] == '/')
        len--;
    n = snprintf(out, cap, "%.*s%s", (int)len, base, path);
    if (n < 0 || (size_t)n >= cap)
        return SPELL_ETOOBIG;
    return SPELL_OK;
}

/* Copies string member `name` of obj into dst (cap bytes, NUL included).
 * required: absence is an error; otherwise dst becomes "". */
static int copy_str(const cJSON *obj, const char *name, char *dst, size_t cap, int required,
                    char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    size_t len;

    dst[0] = '\0';
    if (!it || cJSON_IsNull(it)) {
        if (!required)
            return SPELL_OK;
        spell_errf(err, errlen, "the server's answer lacks \"%s\"", name);
        return SPELL_EPARSE;
    }
    if (!cJSON_IsString(it) || !it->valuestring) {
        spell_errf(err, errlen, "the server's \"%s\" is not a string", name);
        return SPELL_EPARSE;
    }
    len = strlen(it->valuestring);
    if (len >= cap || (required && len == 0)) {
        spell_errf(err, errlen, "the server's \"%s\" is %s", name, len ? "too long" : "empty");
        return SPELL_EPARSE;
    }
    memcpy(dst, it->valuestring, len + 1);
    return SPELL_OK;
}

/* An integral number member within [lo, hi]; absent leaves *out. */
static int get_int(const cJSON *obj, const char *name, int64_t lo, int64_t hi, int required,
                   int64_t *out, char *err, size_t errlen)
{
    struct spell_json_at at = {obj, "", NULL, 0};
    int64_t v = *out;
    bool present = false;

    if (spell_json_get_int64_range(&at, name, required ? SPELL_JSON_REQUIRED : 0, lo, hi, &v,
                                   &present) != SPELL_OK) {
        spell_errf(err, errlen, "the server's \"%s\" is missing or out of range", name);
        return SPELL_EPARSE;
    }
    if (present)
        *out = v;
    return SPELL_OK;
}

/* A printable ASCII code without spaces (what RFC 6749 allows in codes and
 * what a terminal can show safely). */
static int printable(const char *s)
{
    for (; *s; s++) {
        if (*s <= ' ' || *s > '~')
            return 0;
    }
    return 1;
}

static int http_url_ok(const char *u)
{
    return strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0;
}

/* Sends one POST and parses the JSON answer into *doc (for 200 and 400,
 * the two statuses the endpoints answer with); *status gets the status. */
static int post_json(const char *url, const char *body, const char *ctype, int *status,
                     cJSON **doc, char *err, size_t errlen)
{
    struct spell_http_request req;
    struct spell_http_response resp;
    struct spell_json_limits lim = {SPELL_DEVICE_BODY_CAP, 8};
    char perr[128];
    int rc;

    *doc = NULL;
    *status = 0;
    spell_http_request_init(&req, "POST", url);
    req.body = body;
    req.body_len = strlen(body);
    req.content_type = ctype;
    req.body_cap = SPELL_DEVICE_BODY_CAP;
    req.timeout_ms = DEVICE_TIMEOUT_MS;
    /* A poll repeats on the caller's schedule; one attempt each time keeps
     * that schedule honest (a retry would count as a fast poll). */
    req.retry.max_attempts = 1;
    rc = spell_http_send(&req, &resp);
    if (rc != SPELL_OK) {
        spell_errf(err, errlen, "%s", resp.error[0] ? resp.error : spell_strerror(rc));
        goto out;
    }
    *status = resp.status;
    if (resp.status != 200 && resp.status != 400) {
        spell_errf(err, errlen, "the server answered HTTP %d", resp.status);
        rc = SPELL_EHTTP;
        goto out;
    }
    rc = spell_json_parse(resp.body, resp.body_len, &lim, doc, perr, sizeof perr);
    if (rc != SPELL_OK || !cJSON_IsObject(*doc)) {
        spell_errf(err, errlen, "the server's answer is not a JSON object");
        cJSON_Delete(*doc);
        *doc = NULL;
        rc = SPELL_EPARSE;
    }
out:
    spell_http_response_free(&resp);
    return rc;
}

int spell_device_start(const char *base_url, struct spell_device_grant *grant, char *err,
                       size_t errlen)
{
    char url[BASE_URL_MAX + 64];
    cJSON *doc = NULL;
    int64_t expires = 0, interval = SPELL_DEVICE_DEFAULT_INTERVAL;
    int status, rc;

    spell_errf(err, errlen, "%s", "");
    if (!grant)
        return SPELL_EINVAL;
    memset(grant, 0, sizeof *grant);
    if ((rc = make_url(base_url, "/v1/auth/device", url, sizeof url)) != SPELL_OK) {
        spell_errf(err, errlen, "the server URL is missing or too long");
        return SPELL_EINVAL;
    }
    if ((rc = post_json(url, "{}", "application/json", &status, &doc, err, errlen)) != SPELL_OK)
        goto out;
    if (status != 200) {
        spell_errf(err, errlen, "the server refused to start a sign-in (HTTP %d)", status);
        rc = SPELL_EHTTP;
        goto out;
    }
    if ((rc = copy_str(doc, "device_code", grant->device_code, sizeof grant->device_code, 1,
                       err, errlen)) != SPELL_OK ||
        (rc = copy_str(doc, "user_code", grant->user_code, sizeof grant->user_code, 1, err,
                       errlen)) != SPELL_OK ||
        (rc = copy_str(doc, "verification_uri", grant->verification_uri,
                       sizeof grant->verification_uri, 1, err, errlen)) != SPELL_OK ||
        (rc = copy_str(doc, "verification_uri_complete", grant->verification_uri_complete,
                       sizeof grant->verification_uri_complete, 0, err, errlen)) != SPELL_OK ||
        (rc = get_int(doc, "expires_in", 1, 86400, 1, &expires, err, errlen)) != SPELL_OK ||
        (rc = get_int(doc, "interval", 1, SPELL_DEVICE_MAX_INTERVAL, 0, &interval, err,
                      errlen)) != SPELL_OK)
        goto out;
    if (!printable(grant->device_code) || !printable(grant->user_code) ||
        !printable(grant->verification_uri) || !http_url_ok(grant->verification_uri) ||
        !printable(grant->verification_uri_complete) ||
        (grant->verification_uri_complete[0] &&
         !http_url_ok(grant->verification_uri_complete))) {
        spell_errf(err, errlen, "the server's answer holds a malformed code or URL");
        rc = SPELL_EPARSE;
        goto out;
    }
    grant->expires_in = (int)expires;
    grant->interval = (int)interval;
out:
    cJSON_Delete(doc);
    if (rc != SPELL_OK) {
        memset(grant, 0, sizeof *grant);
        /* The form of an unknown answer is no reason to read it further. */
        if (rc == SPELL_EINVAL)
            rc = SPELL_EPARSE;
    }
    return rc;
}

static int poll_error(cJSON *doc, struct spell_device_grant *grant,
                      struct spell_device_result *res, char *err, size_t errlen)
{
    char code[64];
    int64_t interval = 0;
    int rc;

    if ((rc = copy_str(doc, "error", code, sizeof code, 1, err, errlen)) != SPELL_OK)
        return rc;
    if (strcmp(code, "authorization_pending") == 0) {
        res->state = SPELL_DEVICE_PENDING;
    } else if (strcmp(code, "slow_down") == 0) {
        res->state = SPELL_DEVICE_SLOW_DOWN;
        /* RFC 8628 §3.5: the interval grows by 5 seconds, unless the server
         * says what it is now. */
        if (get_int(doc, "interval", 1, SPELL_DEVICE_MAX_INTERVAL, 0, &interval, NULL, 0) ==
                SPELL_OK &&
            interval > grant->interval)
            grant->interval = (int)interval;
        else if (grant->interval <= SPELL_DEVICE_MAX_INTERVAL - 5)
            grant->interval += 5;
        else
            grant->interval = SPELL_DEVICE_MAX_INTERVAL;
    } else if (strcmp(code, "expired_token") == 0) {
        res->state = SPELL_DEVICE_EXPIRED;
    } else if (strcmp(code, "access_denied") == 0) {
        res->state = SPELL_DEVICE_DENIED;
    } else if (strcmp(code, "invalid_grant") == 0) {
        spell_errf(err, errlen, "the sign-in code is unknown or was used already");
        return SPELL_EHTTP;
    } else {
        spell_errf(err, errlen, "the server refused the sign-in (%s)",
                   printable(code) ? code : "unknown error");
        return SPELL_EHTTP;
    }
    return SPELL_OK;
}

int spell_device_poll(const char *base_url, struct spell_device_grant *grant,
                      struct spell_device_result *res, char *err, size_t errlen)
{
    char url[BASE_URL_MAX + 64];
    char body[POLL_BODY_MAX];
    cJSON *doc = NULL;
    int64_t expires = 0;
    int status, n, rc;

    spell_errf(err, errlen, "%s", "");
    if (!grant || !res)
        return SPELL_EINVAL;
    memset(res, 0, sizeof *res);
    res->state = SPELL_DEVICE_PENDING;
    if (!grant->device_code[0] ||
        strnlen(grant->device_code, sizeof grant->device_code) == sizeof grant->device_code ||
        !printable(grant->device_code) || strchr(grant->device_code, '"') ||
        strchr(grant->device_code, '\\'))
        return SPELL_EINVAL;
    if (grant->interval < 1 || grant->interval > SPELL_DEVICE_MAX_INTERVAL)
        grant->interval = SPELL_DEVICE_DEFAULT_INTERVAL;
    if (make_url(base_url, "/v1/auth/token", url, sizeof url) != SPELL_OK) {
        spell_errf(err, errlen, "the server URL is missing or too long");
        return SPELL_EINVAL;
    }
    n = snprintf(body, sizeof body,
                 "{\"grant_type\":\"urn:ietf:params:oauth:grant-type:device_code\","
                 "\"device_code\":\"%s\"}",
                 grant->device_code);
    if (n < 0 || (size_t)n >= sizeof body)
        return SPELL_EINVAL;
    rc = post_json(url, body, "application/json", &status, &doc, err, errlen);
    memset(body, 0, sizeof body);
    if (rc != SPELL_OK)
        goto out;
    if (status == 400) {
        rc = poll_error(doc, grant, res, err, errlen);
        goto out;
    }
    if ((rc = copy_str(doc, "access_token", res->access_token, sizeof res->access_token, 1,
                       err, errlen)) != SPELL_OK ||
        (rc = copy_str(doc, "token_type", res->token_type, sizeof res->token_type, 1, err,
                       errlen)) != SPELL_OK ||
        (rc = get_int(doc, "expires_in", 0, SPELL_JSON_INT_MAX, 0, &expires, err, errlen)) !=
            SPELL_OK)
        goto out;
    if (!printable(res->access_token) || strcasecmp(res->token_type, "Bearer") != 0) {
        spell_errf(err, errlen, "the server's token is malformed");
        rc = SPELL_EPARSE;
        goto out;
    }
    res->expires_in = expires;
    res->state = SPELL_DEVICE_APPROVED;
out:
    cJSON_Delete(doc);
    if (rc != SPELL_OK) {
        spell_device_result_wipe(res);
        memset(res, 0, sizeof *res);
        res->state = SPELL_DEVICE_PENDING;
    }
    return rc;
}

void spell_device_result_wipe(struct spell_device_result *res)
{
    volatile char *p;
    size_t i;

    if (!res)
        return;
    p = (volatile char *)res->access_token;
    for (i = 0; i < sizeof res->access_token; i++)
        p[i] = 0;
}

const char *spell_device_state_name(enum spell_device_state s)
{
    switch (s) {
    case SPELL_DEVICE_PENDING:
        return "pending";
    case SPELL_DEVICE_SLOW_DOWN:
        return "slow_down";
    case SPELL_DEVICE_EXPIRED:
        return "expired";
    case SPELL_DEVICE_DENIED:
        return "denied";
    case SPELL_DEVICE_APPROVED:
        return "approved";
    }
    return "unknown";
}

/* The value of `name` in envp, or NULL. */
static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);

    for (; envp && *envp; envp++) {
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    }
    return NULL;
}

/* Finds an executable xdg-open on PATH into out. */
static int find_xdg_open(const char *path, char *out, size_t cap)
{
    const char *p = path, *end;
    struct stat sb;
    size_t len;
    int n;

    if (!path || strnlen(path, PATH_ENV_MAX + 1) > PATH_ENV_MAX)
        return SPELL_ENOTFOUND;
    while (*p) {
        end = strchr(p, ':');
        len = end ? (size_t)(end - p) : strlen(p);
        /* An empty entry means the current directory: never searched, so a
         * file in whatever folder the caller stands in cannot pose as it. */
        if (len > 0 && p[0] == '/') {
            n = snprintf(out, cap, "%.*s/xdg-open", (int)len, p);
            if (n > 0 && (size_t)n < cap && stat(out, &sb) == 0 && S_ISREG(sb.st_mode) &&
                access(out, X_OK) == 0)
                return SPELL_OK;
        }
        if (!end)
            break;
        p = end + 1;
    }
    out[0] = '\0';
    return SPELL_ENOTFOUND;
}

int spell_device_open_browser(const char *url, char *const *envp)
{
    char exe[EXE_PATH_MAX];
    char *argv[3];
    const char *disp, *wl;
    pid_t pid, w;
    int status, fd;

    if (!url || strnlen(url, SPELL_DEVICE_URI_MAX) >= SPELL_DEVICE_URI_MAX ||
        !http_url_ok(url) || !printable(url))
        return SPELL_EINVAL;
    if (!envp)
        envp = environ;
    disp = env_get(envp, "DISPLAY");
    wl = env_get(envp, "WAYLAND_DISPLAY");
    if ((!disp || !disp[0]) && (!wl || !wl[0]))
        return SPELL_ENOTFOUND;
    if (find_xdg_open(env_get(envp, "PATH"), exe, sizeof exe) != SPELL_OK)
        return SPELL_ENOTFOUND;
    argv[0] = exe;
    argv[1] = (char *)url;
    argv[2] = NULL;

    /* Double fork: the middle child exits at once, so xdg-open is adopted
     * by init and never left as a zombie of ours; only the short wait for
     * the middle child happens here.  Between fork and exec only
     * async-signal-safe calls are made. */
    pid = fork();
    if (pid < 0)
        return SPELL_EIO;
    if (pid == 0) {
        pid_t g = fork();

        if (g == 0) {
            fd = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (fd >= 0) {
                dup2(fd, 0);
                dup2(fd, 1);
                dup2(fd, 2);
            }
            setsid();
            execve(exe, argv, envp);
            _exit(127);
        }
        _exit(g < 0 ? 1 : 0);
    }
    do {
        w = waitpid(pid, &status, 0);
    } while (w < 0 && errno == EINTR);
    if (w != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return SPELL_EIO;
    return SPELL_OK;
}
