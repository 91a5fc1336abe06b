/*
 * Client configuration (config.h): XDG paths, the private-directory check,
 * the config file parser and the env > file > default resolution.
 *
 * Nothing here keeps state between calls: the environment arrives as a
 * struct spell_env, results go into caller-owned buffers or a struct
 * spell_config, so any thread may call any function at any time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "spell/buf.h"
#include "spell/config.h"
#include "spell/errors.h"
#include "spell/utf8.h"

/* ---- messages ---------------------------------------------------------- */

static const char *errno_text(int e, char *tmp, size_t tmplen)
{
    return strerror_r(e, tmp, tmplen);
}

/* ---- environment ------------------------------------------------------- */

static const char *process_get(void *user, const char *name)
{
    (void)user;
    return getenv(name);
}

void spell_env_process(struct spell_env *env)
{
    env->get = process_get;
    env->user = NULL;
}

/* The value of `name`, or NULL when it is unset or empty. */
static const char *env_get(const struct spell_env *env, const char *name)
{
    if (!env || !env->get)
        return NULL;
    const char *v = env->get(env->user, name);
    return v && v[0] ? v : NULL;
}

/* ---- paths ------------------------------------------------------------- */

/*
 * Writes base (without its trailing slashes) followed by the parts into
 * out.  The result must be shorter than PATH_MAX and fit outlen.
 */
static int path_join(char *out, size_t outlen, const char *base, const char *a,
                     const char *b, char *err, size_t errlen)
{
    size_t limit = (outlen < PATH_MAX ? outlen : (size_t)PATH_MAX);
    if (limit == 0) {
        spell_errf(err, errlen, "no room for a path");
        return SPELL_EINVAL;
    }
    limit--;
    size_t blen = strnlen(base, PATH_MAX);
    if (blen >= PATH_MAX) {
        spell_errf(err, errlen, "path %.48s... is longer than %d bytes", base, PATH_MAX - 1);
        return SPELL_ETOOBIG;
    }
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    size_t alen = strlen(a), bl = b ? strlen(b) : 0;
    size_t total = blen + alen + bl;
    if (total > limit) {
        spell_errf(err, errlen, "path %.48s... is %zu bytes, longer than the %zu allowed", base,
             total, limit);
        return SPELL_ETOOBIG;
    }
    memcpy(out, base, blen);
    memcpy(out + blen, a, alen);
    if (bl)
        memcpy(out + blen + alen, b, bl);
    out[total] = '\0';
    return SPELL_OK;
}

/*
 * $<xdg>/spell/<leaf> when the variable is absolute, else
 * $HOME/<home_rel>/spell/<leaf>.  Relative XDG values are ignored, as the
 * XDG Base Directory specification asks.
 */
static int xdg_path(const struct spell_env *env, const char *xdg, const char *home_rel,
                    const char *leaf, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *v = env_get(env, xdg);
    if (v && v[0] == '/')
        return path_join(out, outlen, v, "/spell", leaf, err, errlen);
    const char *home = env_get(env, "HOME");
    if (!home || home[0] != '/') {
        spell_errf(err, errlen, "neither %s nor HOME is set to an absolute path", xdg);
        return SPELL_ENOTFOUND;
    }
    char mid[64];
    snprintf(mid, sizeof mid, "/%s/spell", home_rel);
    return path_join(out, outlen, home, mid, leaf, err, errlen);
}

int spell_path_config_dir(const struct spell_env *env, char *out, size_t outlen,
                          char *err, size_t errlen)
{
    return xdg_path(env, "XDG_CONFIG_HOME", ".config", NULL, out, outlen, err, errlen);
}

int spell_path_config_file(const struct spell_env *env, char *out, size_t outlen,
                           char *err, size_t errlen)
{
    return xdg_path(env, "XDG_CONFIG_HOME", ".config", "/config", out, outlen, err, errlen);
}

int spell_path_state_dir(const struct spell_env *env, char *out, size_t outlen,
                         char *err, size_t errlen)
{
    return xdg_path(env, "XDG_STATE_HOME", ".local/state", NULL, out, outlen, err, errlen);
}

static int runtime_path(const struct spell_env *env, const char *leaf, char *out,
                        size_t outlen, char *err, size_t errlen)
{
    const char *v = env_get(env, "XDG_RUNTIME_DIR");
    if (!v) {
        spell_errf(err, errlen, "XDG_RUNTIME_DIR is not set; the agent needs a private runtime "
             "directory (log in through a session manager, or set XDG_RUNTIME_DIR)");
        return SPELL_ENOTFOUND;
    }
    if (v[0] != '/') {
        spell_errf(err, errlen, "XDG_RUNTIME_DIR is not an absolute path");
        return SPELL_EINVAL;
    }
    return path_join(out, outlen, v, "/spell", leaf, err, errlen);
}

int spell_path_runtime_dir(const struct spell_env *env, char *out, size_t outlen,
                           char *err, size_t errlen)
{
    return runtime_path(env, NULL, out, outlen, err, errlen);
}

int spell_path_agent_socket(const struct spell_env *env, char *out, size_t outlen,
                            char *err, size_t errlen)
{
    int rc = runtime_path(env, "/agent.sock", out, outlen, err, errlen);
    if (rc != SPELL_OK)
        return rc;
    size_t n = strlen(out);
    if (n > SPELL_SOCKET_PATH_MAX) {
        spell_errf(err, errlen, "agent socket path is %zu bytes, longer than the %d a Unix socket "
             "allows; set XDG_RUNTIME_DIR to a shorter directory", n, SPELL_SOCKET_PATH_MAX);
        out[0] = '\0';
        return SPELL_ETOOBIG;
    }
    return SPELL_OK;
}

/* Creates dir with mode 0700 unless it is already a directory. */
static int mkdir_one(const char *dir, int *created, char *err, size_t errlen)
{
    char tmp[128];
    *created = 0;
    if (mkdir(dir, 0700) == 0) {
        *created = 1;
        /* The umask may have taken bits away, even the owner's. */
        if (chmod(dir, 0700) != 0) {
            spell_errf(err, errlen, "%s: chmod: %s", dir, errno_text(errno, tmp, sizeof tmp));
            return SPELL_EIO;
        }
        return SPELL_OK;
    }
    int e = errno;
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return SPELL_OK;
    if (e == EEXIST)
        e = ENOTDIR;
    spell_errf(err, errlen, "%s: cannot create directory: %s", dir, errno_text(e, tmp, sizeof tmp));
    return SPELL_EIO;
}

int spell_path_mkdir_private(const char *path, char *err, size_t errlen)
{
    char p[PATH_MAX];
    char tmp[128];
    int rc = SPELL_EINVAL;
    int fd = -1;
    int created;

    if (!path || path[0] != '/') {
        spell_errf(err, errlen, "%s: not an absolute path", path ? path : "(null)");
        goto out;
    }
    size_t n = strnlen(path, PATH_MAX);
    if (n >= PATH_MAX) {
        spell_errf(err, errlen, "directory path is longer than %d bytes", PATH_MAX - 1);
        goto out;
    }
    memcpy(p, path, n + 1);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';

    for (size_t i = 1; i < n; i++) {
        if (p[i] != '/')
            continue;
        p[i] = '\0';
        rc = mkdir_one(p, &created, err, errlen);
        p[i] = '/';
        if (rc != SPELL_OK)
            goto out;
    }
    if ((rc = mkdir_one(p, &created, err, errlen)) != SPELL_OK)
        goto out;

    fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP || e == ENOTDIR) {
            spell_errf(err, errlen, "%s: is a symbolic link or not a directory", p);
            rc = SPELL_EVERIFY;
        } else {
            spell_errf(err, errlen, "%s: %s", p, errno_text(e, tmp, sizeof tmp));
            rc = SPELL_EIO;
        }
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        spell_errf(err, errlen, "%s: %s", p, errno_text(errno, tmp, sizeof tmp));
        rc = SPELL_EIO;
        goto out;
    }
    if (st.st_uid != geteuid()) {
        spell_errf(err, errlen, "%s: owned by uid %u, not by you (uid %u); refusing to use it", p,
             (unsigned)st.st_uid, (unsigned)geteuid());
        rc = SPELL_EVERIFY;
        goto out;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        spell_errf(err, errlen, "%s: writable by group or others (mode %04o); run chmod 700 on it",
             p, (unsigned)(st.st_mode & 07777));
        rc = SPELL_EVERIFY;
        goto out;
    }
    rc = SPELL_OK;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---- names ------------------------------------------------------------- */

static const char *const theme_names[] = {"default", "dark", "light", "mono"};

const char *spell_theme_name(enum spell_theme t)
{
    if ((unsigned)t >= sizeof theme_names / sizeof theme_names[0])
        return NULL;
    return theme_names[t];
}

const char *spell_config_source_name(enum spell_config_source s)
{
    switch (s) {
    case SPELL_CONFIG_FROM_DEFAULT: return "default";
    case SPELL_CONFIG_FROM_FILE: return "config file";
    case SPELL_CONFIG_FROM_ENV: return "environment";
    }
    return NULL;
}

/* ---- values ------------------------------------------------------------ */

/*
 * An API base URL: http:// or https:// (any case), then a non-empty host,
 * printable ASCII only, no query or fragment, and no user:password@ part,
 * since the URL is shown by `spell whoami` and in logs.  On success *keep
 * is the length without trailing slashes after the host.
 */
static int url_ok(const char *s, size_t len, size_t *keep)
{
    size_t skip;
    if (len == 0 || len > SPELL_CONFIG_URL_MAX)
        return 0;
    if (len >= 7 && strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else if (len >= 8 && strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '@' || c == '\\')
            return 0;
    }
    size_t host_end = skip;
    while (host_end < len && s[host_end] != '/')
        host_end++;
    if (host_end == skip || s[skip] == ':')
        return 0;
    size_t n = len;
    while (n > host_end && s[n - 1] == '/')
        n--;
    *keep = n;
    return 1;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 1;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

static int parse_theme(const char *s, enum spell_theme *out)
{
    for (size_t i = 0; i < sizeof theme_names / sizeof theme_names[0]; i++) {
        if (strcasecmp(s, theme_names[i]) == 0) {
            *out = (enum spell_theme)i;
            return 1;
        }
    }
    return 0;
}

/* Decimal digits only, 1..SPELL_CONFIG_MAX_CASTS_LIMIT. */
static int parse_max_casts(const char *s, int *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 4)
        return 0;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > SPELL_CONFIG_MAX_CASTS_LIMIT)
        return 0;
    *out = v;
    return 1;
}

/* ---- the file ---------------------------------------------------------- */

enum cfg_key { KEY_API_URL, KEY_THEME, KEY_NOTIFY, KEY_MAX_CASTS, KEY__COUNT };

static const char *const key_names[KEY__COUNT] = {
    "api_url", "theme", "notify", "max_concurrent_casts",
};

/* What a file sets, gathered before any of it is applied. */
struct file_values {
    int line[KEY__COUNT];   /* line that set the key, 0 when not set */
    char *api_url;
    enum spell_theme theme;
    int notify;
    int max_casts;
};

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Turns the raw value [v, v + n) into text in val (SPELL_CONFIG_LINE_MAX + 1
 * bytes): quoted values lose their quotes and escapes.  Returns NULL on
 * success or the complaint.
 */
static const char *unquote(const char *v, size_t n, char *val)
{
    if (n == 0 || v[0] != '"') {
        memcpy(val, v, n);
        val[n] = '\0';
        return NULL;
    }
    size_t o = 0, i = 1;
    for (;;) {
        if (i >= n)
            return "unterminated quote";
        char c = v[i++];
        if (c == '"')
            break;
        if (c == '\\') {
            if (i >= n)
                return "unterminated quote";
            c = v[i++];
            if (c != '"' && c != '\\')
                return "unsupported escape in quoted value (only \\\" and \\\\)";
        }
        val[o++] = c;
    }
    for (; i < n; i++)
        if (!is_blank(v[i]))
            return "unexpected text after closing quote";
    val[o] = '\0';
    return NULL;
}

static int key_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

/* One line without its ending: fills fv or writes "name:lineno: why". */
static int parse_line(struct file_values *fv, const char *name, int lineno, const char *s,
                      size_t n, char *val, char *err, size_t errlen)
{
    if (n > SPELL_CONFIG_LINE_MAX) {
        spell_errf(err, errlen, "%s:%d: line longer than %d bytes", name, lineno,
             SPELL_CONFIG_LINE_MAX);
        return SPELL_ETOOBIG;
    }
    if (memchr(s, '\0', n)) {
        spell_errf(err, errlen, "%s:%d: NUL byte", name, lineno);
        return SPELL_EPARSE;
    }
    if (!spell_utf8_valid(s, n)) {
        spell_errf(err, errlen, "%s:%d: invalid UTF-8", name, lineno);
        return SPELL_EPARSE;
    }
    size_t b = 0, e = n;
    while (b < e && is_blank(s[b]))
        b++;
    while (e > b && is_blank(s[e - 1]))
        e--;
    if (b == e || s[b] == '#')
        return SPELL_OK;

    const char *eq = memchr(s + b, '=', e - b);
    if (!eq) {
        spell_errf(err, errlen, "%s:%d: missing '=' (expected 'key = value')", name, lineno);
        return SPELL_EPARSE;
    }
    size_t kb = b, ke = (size_t)(eq - s);
    while (ke > kb && is_blank(s[ke - 1]))
        ke--;
    if (ke == kb) {
        spell_errf(err, errlen, "%s:%d: missing key before '='", name, lineno);
        return SPELL_EPARSE;
    }
    for (size_t i = kb; i < ke; i++) {
        if (!key_char_ok(s[i])) {
            spell_errf(err, errlen, "%s:%d: invalid key (letters, digits and _ only)", name, lineno);
            return SPELL_EPARSE;
        }
    }
    size_t klen = ke - kb;
    int key = -1;
    for (int k = 0; k < KEY__COUNT; k++)
        if (strlen(key_names[k]) == klen && memcmp(key_names[k], s + kb, klen) == 0)
            key = k;
    if (key < 0) {
        spell_errf(err, errlen, "%s:%d: unknown key '%.*s'", name, lineno,
             (int)(klen > 64 ? 64 : klen), s + kb);
        return SPELL_EPARSE;
    }
    if (fv->line[key]) {
        spell_errf(err, errlen, "%s:%d: duplicate key '%s' (first set on line %d)", name, lineno,
             key_names[key], fv->line[key]);
        return SPELL_EPARSE;
    }

    size_t vb = (size_t)(eq - s) + 1;
    while (vb < e && is_blank(s[vb]))
        vb++;
    const char *why = unquote(s + vb, e - vb, val);
    if (why) {
        spell_errf(err, errlen, "%s:%d: %s", name, lineno, why);
        return SPELL_EPARSE;
    }

    switch (key) {
    case KEY_API_URL: {
        size_t keep;
        if (!url_ok(val, strlen(val), &keep)) {
            spell_errf(err, errlen, "%s:%d: bad value for 'api_url' (expected an http:// or "
                 "https:// URL without spaces, credentials, query or fragment)", name, lineno);
            return SPELL_EPARSE;
        }
        char *u = strndup(val, keep);
        if (!u) {
            spell_errf(err, errlen, "out of memory");
            return SPELL_ENOMEM;
        }
        free(fv->api_url);
        fv->api_url = u;
        break;
    }
    case KEY_THEME:
        if (!parse_theme(val, &fv->theme)) {
            spell_errf(err, errlen, "%s:%d: bad value for 'theme': '%.64s' (expected default, "
                 "dark, light or mono)", name, lineno, val);
            return SPELL_EPARSE;
        }
        break;
    case KEY_NOTIFY:
        if (!parse_bool(val, &fv->notify)) {
            spell_errf(err, errlen, "%s:%d: bad value for 'notify': '%.64s' (expected yes, no, "
                 "true, false, on, off, 1 or 0)", name, lineno, val);
            return SPELL_EPARSE;
        }
        break;
    default:
        if (!parse_max_casts(val, &fv->max_casts)) {
            spell_errf(err, errlen, "%s:%d: bad value for 'max_concurrent_casts': '%.64s' "
                 "(expected an integer from 1 to %d)", name, lineno, val,
                 SPELL_CONFIG_MAX_CASTS_LIMIT);
            return SPELL_EPARSE;
        }
        break;
    }
    fv->line[key] = lineno;
    return SPELL_OK;
}

int spell_config_defaults(struct spell_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->theme = SPELL_THEME_DEFAULT;
    cfg->notify = true;
    cfg->max_concurrent_casts = SPELL_CONFIG_DEFAULT_MAX_CASTS;
    cfg->api_url = strdup(SPELL_CONFIG_DEFAULT_API_URL);
    return cfg->api_url ? SPELL_OK : SPELL_ENOMEM;
}

int spell_config_parse(struct spell_config *cfg, const char *name, const char *text,
                       size_t len, char *err, size_t errlen)
{
    struct file_values fv;
    int rc = SPELL_ENOMEM;
    /* One value at a time, as long as the longest line allows. */
    char *val = NULL;

    memset(&fv, 0, sizeof fv);
    if (!name)
        name = "config";
    if (len > SPELL_CONFIG_FILE_MAX) {
        spell_errf(err, errlen, "%s: larger than %d bytes", name, SPELL_CONFIG_FILE_MAX);
        rc = SPELL_ETOOBIG;
        goto out;
    }
    val = malloc(SPELL_CONFIG_LINE_MAX + 1);
    if (!val) {
        spell_errf(err, errlen, "out of memory");
        goto out;
    }
    size_t pos = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    int lineno = 0;
    while (pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t n = end - pos;
        if (n > 0 && text[end - 1] == '\r')
            n--;
        rc = parse_line(&fv, name, lineno, text + pos, n, val, err, errlen);
        if (rc != SPELL_OK)
            goto out;
        pos = nl ? end + 1 : len;
    }

    if (fv.line[KEY_API_URL]) {
        free(cfg->api_url);
        cfg->api_url = fv.api_url;
        fv.api_url = NULL;
        cfg->api_url_from = SPELL_CONFIG_FROM_FILE;
    }
    if (fv.line[KEY_THEME]) {
        cfg->theme = fv.theme;
        cfg->theme_from = SPELL_CONFIG_FROM_FILE;
    }
    if (fv.line[KEY_NOTIFY]) {
        cfg->notify = fv.notify != 0;
        cfg->notify_from = SPELL_CONFIG_FROM_FILE;
    }
    if (fv.line[KEY_MAX_CASTS]) {
        cfg->max_concurrent_casts = fv.max_casts;
        cfg->max_concurrent_casts_from = SPELL_CONFIG_FROM_FILE;
    }
    rc = SPELL_OK;
out:
    free(fv.api_url);
    free(val);
    return rc;
}

int spell_config_read_file(struct spell_config *cfg, const char *path, bool *found,
                           char *err, size_t errlen)
{
    struct spell_buf b;
    char tmp[128];
    char chunk[4096];
    int rc = SPELL_EIO;
    int fd = -1;

    /* One byte more than a file may hold, so an oversized file is seen. */
    spell_buf_init(&b, SPELL_CONFIG_FILE_MAX + 1);
    if (found)
        *found = false;
    /* O_NONBLOCK: opening a FIFO planted at the path must not hang. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) {
            rc = SPELL_OK;
            goto out;
        }
        spell_errf(err, errlen, "%s: %s", path, errno_text(errno, tmp, sizeof tmp));
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        spell_errf(err, errlen, "%s: %s", path, errno_text(errno, tmp, sizeof tmp));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        spell_errf(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            spell_errf(err, errlen, "%s: %s", path, errno_text(errno, tmp, sizeof tmp));
            goto out;
        }
        if (r == 0)
            break;
        rc = spell_buf_add(&b, chunk, (size_t)r);
        if (rc == SPELL_ETOOBIG) {
            spell_errf(err, errlen, "%s: larger than %d bytes", path, SPELL_CONFIG_FILE_MAX);
            goto out;
        }
        if (rc != SPELL_OK) {
            spell_errf(err, errlen, "out of memory");
            goto out;
        }
    }
    if (found)
        *found = true;
    rc = spell_config_parse(cfg, path, spell_buf_str(&b), b.len, err, errlen);
out:
    if (fd >= 0)
        close(fd);
    spell_buf_free(&b);
    return rc;
}

/* ---- resolution -------------------------------------------------------- */

void spell_config_free(struct spell_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->api_key) {
        explicit_bzero(cfg->api_key, strlen(cfg->api_key));
        free(cfg->api_key);
    }
    free(cfg->api_url);
    free(cfg->file);
    memset(cfg, 0, sizeof *cfg);
}

int spell_config_load(struct spell_config *cfg, const struct spell_env *env,
                      char *err, size_t errlen)
{
    struct spell_config c;
    char path[PATH_MAX];
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if ((rc = spell_config_defaults(&c)) != SPELL_OK) {
        spell_errf(err, errlen, "out of memory");
        goto out;
    }

    rc = spell_path_config_file(env, path, sizeof path, err, errlen);
    if (rc == SPELL_OK) {
        rc = SPELL_ENOMEM;
        if (!(c.file = strdup(path))) {
            spell_errf(err, errlen, "out of memory");
            goto out;
        }
        if ((rc = spell_config_read_file(&c, path, &c.file_found, err, errlen)) != SPELL_OK)
            goto out;
    } else if (rc == SPELL_ENOTFOUND) {
        /* No usable HOME: there is no file to read, and defaults apply. */
        if (err && errlen)
            err[0] = '\0';
    } else {
        goto out;
    }

    const char *url = env_get(env, "SPELL_API_URL");
    if (url) {
        size_t n = strnlen(url, SPELL_CONFIG_URL_MAX + 1), keep;
        if (!url_ok(url, n, &keep)) {
            spell_errf(err, errlen, "SPELL_API_URL is not an http:// or https:// URL (no spaces, "
                 "credentials, query or fragment; at most %d bytes)", SPELL_CONFIG_URL_MAX);
            rc = SPELL_EINVAL;
            goto out;
        }
        char *u = strndup(url, keep);
        if (!u) {
            spell_errf(err, errlen, "out of memory");
            rc = SPELL_ENOMEM;
            goto out;
        }
        free(c.api_url);
        c.api_url = u;
        c.api_url_from = SPELL_CONFIG_FROM_ENV;
    }

    const char *key = env_get(env, "SPELL_API_KEY");
    if (key) {
        size_t n = strnlen(key, SPELL_CONFIG_KEY_MAX + 1);
        if (n > SPELL_CONFIG_KEY_MAX) {
            spell_errf(err, errlen, "SPELL_API_KEY is longer than %d bytes", SPELL_CONFIG_KEY_MAX);
            rc = SPELL_EINVAL;
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)key[i];
            if (ch <= 0x20 || ch >= 0x7f) {
                spell_errf(err, errlen, "SPELL_API_KEY holds spaces, control characters or "
                     "non-ASCII bytes");
                rc = SPELL_EINVAL;
                goto out;
            }
        }
        if (!(c.api_key = strndup(key, n))) {
            spell_errf(err, errlen, "out of memory");
            rc = SPELL_ENOMEM;
            goto out;
        }
        c.api_key_from = SPELL_CONFIG_FROM_ENV;
    }

    /* https://no-color.org: any non-empty value. */
    if (env_get(env, "NO_COLOR")) {
        c.theme = SPELL_THEME_MONO;
        c.theme_from = SPELL_CONFIG_FROM_ENV;
    }

    *cfg = c;
    memset(&c, 0, sizeof c);
    rc = SPELL_OK;
out:
    spell_config_free(&c);
    if (rc != SPELL_OK)
        memset(cfg, 0, sizeof *cfg);
    return rc;
}
