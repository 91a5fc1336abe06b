/*
 * Unit tests for core/src/config.c: XDG paths under every combination of
 * variables, the private-directory check, the config file parser with each
 * of its complaints, and the env > file > default resolution.  The
 * environment is a table handed in through struct spell_env; nothing here
 * calls setenv.  Files live in a fresh directory under /tmp.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spell/config.h"
#include "spell/errors.h"
#include "tap.h"

/* ---- a table environment ---------------------------------------------- */

struct fake_env {
    const char *names[16];
    const char *values[16];
    int n;
};

static const char *fake_get(void *user, const char *name)
{
    const struct fake_env *f = user;
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0)
            return f->values[i];
    return NULL;
}

static void fake_set(struct fake_env *f, const char *name, const char *value)
{
    f->names[f->n] = name;
    f->values[f->n] = value;
    f->n++;
}

static struct spell_env env_of(struct fake_env *f)
{
    struct spell_env e = {fake_get, f};
    return e;
}

/* ---- temp files -------------------------------------------------------- */

static char tmpdir[64];

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp)
        return;
    CHECK_INT(fwrite(text, 1, len, fp), len);
    fclose(fp);
}

static void sub(char *out, size_t outlen, const char *rel)
{
    snprintf(out, outlen, "%s/%s", tmpdir, rel);
}

/* ---- paths ------------------------------------------------------------- */

/* XDG variable: unset, empty, relative, absolute (with a trailing slash);
 * HOME: unset, relative, absolute. */
static void check_xdg(const char *xdg, const char *home_rel,
                      int (*fn)(const struct spell_env *, char *, size_t, char *, size_t),
                      const char *xdg_want)
{
    static const char *const xdg_vals[] = {NULL, "", "rel/dir", "/xdg/base/"};
    static const char *const home_vals[] = {NULL, "home/u", "/home/u"};
    for (int x = 0; x < 4; x++) {
        for (int h = 0; h < 3; h++) {
            struct fake_env f = {0};
            if (xdg_vals[x])
                fake_set(&f, xdg, xdg_vals[x]);
            if (home_vals[h])
                fake_set(&f, "HOME", home_vals[h]);
            struct spell_env env = env_of(&f);
            char out[PATH_MAX], err[256], want[256];
            int rc = fn(&env, out, sizeof out, err, sizeof err);
            if (x == 3) {
                CHECK_INT(rc, SPELL_OK);
                CHECK_STR(out, xdg_want);
            } else if (h == 2) {
                snprintf(want, sizeof want, "/home/u/%s/spell", home_rel);
                CHECK_INT(rc, SPELL_OK);
                CHECK_STR(out, want);
            } else {
                snprintf(want, sizeof want, "neither %s nor HOME is set to an absolute path",
                         xdg);
                CHECK_INT(rc, SPELL_ENOTFOUND);
                CHECK_STR(err, want);
            }
        }
    }
}

static void test_config_dir_combinations(void)
{
    check_xdg("XDG_CONFIG_HOME", ".config", spell_path_config_dir, "/xdg/base/spell");
}

static void test_state_dir_combinations(void)
{
    check_xdg("XDG_STATE_HOME", ".local/state", spell_path_state_dir, "/xdg/base/spell");
}

static void test_config_file_path(void)
{
    struct fake_env f = {0};
    fake_set(&f, "HOME", "/home/u/");
    struct spell_env env = env_of(&f);
    char out[PATH_MAX], err[256];
    CHECK_INT(spell_path_config_file(&env, out, sizeof out, err, sizeof err), SPELL_OK);
    CHECK_STR(out, "/home/u/.config/spell/config");

    fake_set(&f, "XDG_CONFIG_HOME", "/cfg");
    CHECK_INT(spell_path_config_file(&env, out, sizeof out, err, sizeof err), SPELL_OK);
    CHECK_STR(out, "/cfg/spell/config");

    struct fake_env g = {0};
    fake_set(&g, "XDG_CONFIG_HOME", "/");
    env = env_of(&g);
    CHECK_INT(spell_path_config_file(&env, out, sizeof out, err, sizeof err), SPELL_OK);
    CHECK_STR(out, "/spell/config");

    /* A null environment is an empty one. */
    CHECK_INT(spell_path_config_file(NULL, out, sizeof out, err, sizeof err), SPELL_ENOTFOUND);
}

static void test_runtime_dir_and_socket(void)
{
    char out[PATH_MAX], err[256];
    struct fake_env f = {0};
    fake_set(&f, "HOME", "/home/u");
    struct spell_env env = env_of(&f);

    CHECK_INT(spell_path_runtime_dir(&env, out, sizeof out, err, sizeof err), SPELL_ENOTFOUND);
    CHECK_STR(err, "XDG_RUNTIME_DIR is not set; the agent needs a private runtime directory "
                   "(log in through a session manager, or set XDG_RUNTIME_DIR)");
    CHECK_INT(spell_path_agent_socket(&env, out, sizeof out, err, sizeof err), SPELL_ENOTFOUND);

    struct fake_env e1 = {0};
    fake_set(&e1, "XDG_RUNTIME_DIR", "");
    env = env_of(&e1);
    CHECK_INT(spell_path_agent_socket(&env, out, sizeof out, err, sizeof err), SPELL_ENOTFOUND);

    struct fake_env e2 = {0};
    fake_set(&e2, "XDG_RUNTIME_DIR", "run/user/1000");
    env = env_of(&e2);
    CHECK_INT(spell_path_runtime_dir(&env, out, sizeof out, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "XDG_RUNTIME_DIR is not an absolute path");
    CHECK_INT(spell_path_agent_socket(&env, out, sizeof out, err, sizeof err), SPELL_EINVAL);

    struct fake_env e3 = {0};
    fake_set(&e3, "XDG_RUNTIME_DIR", "/run/user/1000/");
    env = env_of(&e3);
    CHECK_INT(spell_path_runtime_dir(&env, out, sizeof out, err, sizeof err), SPELL_OK);
    CHECK_STR(out, "/run/user/1000/spell");
    CHECK_INT(spell_path_agent_socket(&env, out, sizeof out, err, sizeof err), SPELL_OK);
    CHECK_STR(out, "/run/user/1000/spell/agent.sock");
}

static void test_socket_path_length(void)
{
    /* "/spell/agent.sock" is 17 bytes: a 90-byte runtime dir gives exactly
     * 107, the most sun_path holds with its NUL; 91 bytes is one too many. */
    char dir[200], out[PATH_MAX], err[256];
    memset(dir, 'r', sizeof dir);
    dir[0] = '/';
    dir[90] = '\0';
    struct fake_env f = {0};
    fake_set(&f, "XDG_RUNTIME_DIR", dir);
    struct spell_env env = env_of(&f);
    CHECK_INT(spell_path_agent_socket(&env, out, sizeof out, err, sizeof err), SPELL_OK);
    CHECK_INT(strlen(out), 107);

    memset(dir, 'r', sizeof dir);
    dir[0] = '/';
    dir[91] = '\0';
    CHECK_INT(spell_path_agent_socket(&env, out, sizeof out, err, sizeof err), SPELL_ETOOBIG);
    CHECK_STR(err, "agent socket path is 108 bytes, longer than the 107 a Unix socket allows; "
                   "set XDG_RUNTIME_DIR to a shorter directory");
    CHECK_STR(out, "");
    /* The runtime dir itself is fine. */
    CHECK_INT(spell_path_runtime_dir(&env, out, sizeof out, err, sizeof err), SPELL_OK);
}

static void test_path_max(void)
{
    char *big = malloc(PATH_MAX + 100);
    CHECK(big != NULL);
    if (!big)
        return;
    char out[PATH_MAX], err[256];
    memset(big, 'a', PATH_MAX + 99);
    big[0] = '/';
    big[PATH_MAX + 99] = '\0';
    struct fake_env f = {0};
    fake_set(&f, "XDG_CONFIG_HOME", big);
    fake_set(&f, "HOME", big);
    struct spell_env env = env_of(&f);

    /* Longer than PATH_MAX on its own. */
    CHECK_INT(spell_path_config_dir(&env, out, sizeof out, err, sizeof err), SPELL_ETOOBIG);
    CHECK(strstr(err, "is longer than 4095 bytes") != NULL);

    /* Fits, but not with "/spell" added: PATH_MAX - 1 is the longest path. */
    big[PATH_MAX - 6] = '\0';
    CHECK_INT(spell_path_config_dir(&env, out, sizeof out, err, sizeof err), SPELL_ETOOBIG);
    CHECK(strstr(err, "is 4096 bytes, longer than the 4095 allowed") != NULL);
    big[PATH_MAX - 7] = '\0';
    CHECK_INT(spell_path_config_dir(&env, out, sizeof out, err, sizeof err), SPELL_OK);
    CHECK_INT(strlen(out), PATH_MAX - 1);
    CHECK_INT(spell_path_config_file(&env, out, sizeof out, err, sizeof err), SPELL_ETOOBIG);

    /* A short out buffer. */
    struct fake_env g = {0};
    fake_set(&g, "XDG_STATE_HOME", "/s");
    env = env_of(&g);
    char small[8];
    CHECK_INT(spell_path_state_dir(&env, small, sizeof small, err, sizeof err), SPELL_ETOOBIG);
    char fits[9];
    CHECK_INT(spell_path_state_dir(&env, fits, sizeof fits, err, sizeof err), SPELL_OK);
    CHECK_STR(fits, "/s/spell");
    CHECK_INT(spell_path_state_dir(&env, fits, 0, err, sizeof err), SPELL_EINVAL);
    /* No err buffer at all is allowed. */
    CHECK_INT(spell_path_state_dir(&env, small, sizeof small, NULL, 0), SPELL_ETOOBIG);
    free(big);
}

/* ---- private directories ---------------------------------------------- */

static unsigned mode_of(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0xFFFFu;
    return (unsigned)(st.st_mode & 07777);
}

static void test_mkdir_private_creates_chain(void)
{
    char p[256], q[256], err[512];
    sub(p, sizeof p, "state/a/b/spell");
    /* An umask that even takes the owner's write bit must not matter. */
    mode_t old = umask(0277);
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_OK);
    umask(old);
    CHECK_INT(mode_of(p), 0700);
    sub(q, sizeof q, "state/a/b");
    CHECK_INT(mode_of(q), 0700);
    sub(q, sizeof q, "state");
    CHECK_INT(mode_of(q), 0700);
    /* Again: it exists and is fine. */
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_OK);
    /* Trailing slashes are fine too. */
    strcat(p, "//");
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_OK);
}

static void test_mkdir_private_refuses(void)
{
    char p[256], want[1024], err[1024];

    sub(p, sizeof p, "open");
    CHECK_INT(mkdir(p, 0700), 0);
    CHECK_INT(chmod(p, 0777), 0);
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_EVERIFY);
    snprintf(want, sizeof want, "%s: writable by group or others (mode 0777); run chmod 700 on it",
             p);
    CHECK_STR(err, want);
    CHECK_INT(chmod(p, 0720), 0);
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_EVERIFY);
    CHECK_INT(chmod(p, 0702), 0);
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_EVERIFY);
    /* Readable by others is not what this check is about. */
    CHECK_INT(chmod(p, 0755), 0);
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_OK);

    /* A symlink to a good directory is still refused. */
    char link[256], target[256];
    sub(target, sizeof target, "real");
    sub(link, sizeof link, "link");
    CHECK_INT(mkdir(target, 0700), 0);
    CHECK_INT(symlink(target, link), 0);
    CHECK_INT(spell_path_mkdir_private(link, err, sizeof err), SPELL_EVERIFY);
    snprintf(want, sizeof want, "%s: is a symbolic link or not a directory", link);
    CHECK_STR(err, want);

    /* A file where a directory should be, last or in the middle. */
    sub(p, sizeof p, "plain");
    write_file(p, "x", 1);
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_EIO);
    snprintf(want, sizeof want, "%s: cannot create directory: Not a directory", p);
    CHECK_STR(err, want);
    sub(p, sizeof p, "plain/below");
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_EIO);

    CHECK_INT(spell_path_mkdir_private("relative/dir", err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "relative/dir: not an absolute path");
    CHECK_INT(spell_path_mkdir_private(NULL, err, sizeof err), SPELL_EINVAL);
    CHECK_INT(spell_path_mkdir_private("", err, sizeof err), SPELL_EINVAL);

    char *big = malloc(PATH_MAX + 10);
    CHECK(big != NULL);
    if (big) {
        memset(big, 'd', PATH_MAX + 9);
        big[0] = '/';
        big[PATH_MAX + 9] = '\0';
        CHECK_INT(spell_path_mkdir_private(big, err, sizeof err), SPELL_EINVAL);
        free(big);
    }
}

static void test_mkdir_private_other_owner(void)
{
    char err[512];
    if (geteuid() != 0) {
        /* "/" belongs to root, which we are not. */
        CHECK_INT(spell_path_mkdir_private("/", err, sizeof err), SPELL_EVERIFY);
        char want[128];
        snprintf(want, sizeof want, "/: owned by uid 0, not by you (uid %u); refusing to use it",
                 (unsigned)geteuid());
        CHECK_STR(err, want);
        return;
    }
    char p[PATH_MAX];
    sub(p, sizeof p, "theirs");
    CHECK_INT(mkdir(p, 0700), 0);
    CHECK_INT(chown(p, 65534, 65534), 0);
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_EVERIFY);
    CHECK(strstr(err, ": owned by uid 65534, not by you (uid 0)") != NULL);
}

/* ---- parsing ----------------------------------------------------------- */

static int parse(struct spell_config *cfg, const char *text, char *err, size_t errlen)
{
    return spell_config_parse(cfg, "/home/u/.config/spell/config", text, strlen(text), err,
                              errlen);
}

static void test_defaults(void)
{
    struct spell_config c;
    CHECK_INT(spell_config_defaults(&c), SPELL_OK);
    CHECK_STR(c.api_url, "http://127.0.0.1:8080");
    CHECK(c.api_key == NULL);
    CHECK_INT(c.theme, SPELL_THEME_DEFAULT);
    CHECK(c.notify);
    CHECK_INT(c.max_concurrent_casts, 4);
    CHECK_INT(c.api_url_from, SPELL_CONFIG_FROM_DEFAULT);
    CHECK_INT(c.theme_from, SPELL_CONFIG_FROM_DEFAULT);
    spell_config_free(&c);
    CHECK(c.api_url == NULL);
    spell_config_free(&c);
    spell_config_free(NULL);
}

static void test_parse_good_file(void)
{
    static const char text[] =
        "\xEF\xBB\xBF# spell client settings\r\n"
        "\n"
        "   # indented comment\n"
        "api_url = \"https://spell.example.com/base/\"  \r\n"
        "\t theme\t=  dark\n"
        "notify=OFF\n"
        "max_concurrent_casts = 64";
    struct spell_config c;
    char err[256] = "";
    CHECK_INT(spell_config_defaults(&c), SPELL_OK);
    CHECK_INT(parse(&c, text, err, sizeof err), SPELL_OK);
    CHECK_STR(err, "");
    CHECK_STR(c.api_url, "https://spell.example.com/base");
    CHECK_INT(c.theme, SPELL_THEME_DARK);
    CHECK(!c.notify);
    CHECK_INT(c.max_concurrent_casts, 64);
    CHECK_INT(c.api_url_from, SPELL_CONFIG_FROM_FILE);
    CHECK_INT(c.theme_from, SPELL_CONFIG_FROM_FILE);
    CHECK_INT(c.notify_from, SPELL_CONFIG_FROM_FILE);
    CHECK_INT(c.max_concurrent_casts_from, SPELL_CONFIG_FROM_FILE);
    CHECK_INT(c.api_key_from, SPELL_CONFIG_FROM_DEFAULT);
    spell_config_free(&c);
}

static void test_parse_values(void)
{
    static const struct {
        const char *text;
        int theme, notify, casts;
    } cases[] = {
        {"theme = default", SPELL_THEME_DEFAULT, 1, 4},
        {"theme = light", SPELL_THEME_LIGHT, 1, 4},
        {"theme = \"mono\"", SPELL_THEME_MONO, 1, 4},
        {"theme = Dark", SPELL_THEME_DARK, 1, 4},
        {"notify = no", 0, 0, 4},
        {"notify = yes", 0, 1, 4},
        {"notify = false", 0, 0, 4},
        {"notify = TRUE", 0, 1, 4},
        {"notify = on", 0, 1, 4},
        {"notify = off", 0, 0, 4},
        {"notify = 0", 0, 0, 4},
        {"notify = 1", 0, 1, 4},
        {"max_concurrent_casts = 1", 0, 1, 1},
        {"max_concurrent_casts = 007", 0, 1, 7},
        {"", 0, 1, 4},
        {"\n\n#only comments\n", 0, 1, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spell_config c;
        char err[256];
        CHECK_INT(spell_config_defaults(&c), SPELL_OK);
        CHECK_INT(parse(&c, cases[i].text, err, sizeof err), SPELL_OK);
        CHECK_INT(c.theme, cases[i].theme);
        CHECK_INT(c.notify, cases[i].notify);
        CHECK_INT(c.max_concurrent_casts, cases[i].casts);
        spell_config_free(&c);
    }
}

static void test_parse_quotes(void)
{
    struct spell_config c;
    char err[256];
    CHECK_INT(spell_config_defaults(&c), SPELL_OK);
    /* Escapes resolve before the value is checked. */
    CHECK_INT(parse(&c, "theme = \"d\\\\ark\"", err, sizeof err), SPELL_EPARSE);
    CHECK_STR(err, "/home/u/.config/spell/config:1: bad value for 'theme': 'd\\ark' "
                   "(expected default, dark, light or mono)");
    CHECK_INT(parse(&c, "theme = \"  dark  \"", err, sizeof err), SPELL_EPARSE);
    CHECK_STR(err, "/home/u/.config/spell/config:1: bad value for 'theme': '  dark  ' "
                   "(expected default, dark, light or mono)");
    CHECK_INT(parse(&c, "theme = \"\\\"\"", err, sizeof err), SPELL_EPARSE);
    CHECK_STR(err, "/home/u/.config/spell/config:1: bad value for 'theme': '\"' "
                   "(expected default, dark, light or mono)");
    CHECK_INT(parse(&c, "api_url = \"http://h:1/a b\"", err, sizeof err), SPELL_EPARSE);
    CHECK_INT(parse(&c, "notify = \"\"", err, sizeof err), SPELL_EPARSE);
    CHECK_INT(parse(&c, "theme = \"light\" \t", err, sizeof err), SPELL_OK);
    CHECK_INT(c.theme, SPELL_THEME_LIGHT);
    spell_config_free(&c);
}

struct bad_case {
    const char *text;
    int rc;
    const char *msg;
};

static void test_parse_errors(void)
{
#define F "/home/u/.config/spell/config:"
    static const struct bad_case cases[] = {
        {"api_ur = http://x", SPELL_EPARSE, F "1: unknown key 'api_ur'"},
        {"# c\n\ncolour = red", SPELL_EPARSE, F "3: unknown key 'colour'"},
        {"theme = dark\nnotify = yes\ntheme = light", SPELL_EPARSE,
         F "3: duplicate key 'theme' (first set on line 1)"},
        {"theme dark", SPELL_EPARSE, F "1: missing '=' (expected 'key = value')"},
        {"\n  notify\n", SPELL_EPARSE, F "2: missing '=' (expected 'key = value')"},
        {" = dark", SPELL_EPARSE, F "1: missing key before '='"},
        {"the me = dark", SPELL_EPARSE, F "1: invalid key (letters, digits and _ only)"},
        {"th\x01me = dark", SPELL_EPARSE, F "1: invalid key (letters, digits and _ only)"},
        {"theme = \"dark", SPELL_EPARSE, F "1: unterminated quote"},
        {"theme = \"dark\\\"", SPELL_EPARSE, F "1: unterminated quote"},
        {"theme = \"dark\\", SPELL_EPARSE, F "1: unterminated quote"},
        {"theme = \"da\\nrk\"", SPELL_EPARSE,
         F "1: unsupported escape in quoted value (only \\\" and \\\\)"},
        {"theme = \"dark\" light", SPELL_EPARSE, F "1: unexpected text after closing quote"},
        {"theme = blue", SPELL_EPARSE,
         F "1: bad value for 'theme': 'blue' (expected default, dark, light or mono)"},
        {"theme =", SPELL_EPARSE,
         F "1: bad value for 'theme': '' (expected default, dark, light or mono)"},
        {"notify = maybe", SPELL_EPARSE,
         F "1: bad value for 'notify': 'maybe' (expected yes, no, true, false, on, off, 1 or 0)"},
        {"notify = yes # comment", SPELL_EPARSE,
         F "1: bad value for 'notify': 'yes # comment' (expected yes, no, true, false, on, off, "
           "1 or 0)"},
        {"max_concurrent_casts = 0", SPELL_EPARSE,
         F "1: bad value for 'max_concurrent_casts': '0' (expected an integer from 1 to 64)"},
        {"max_concurrent_casts = 65", SPELL_EPARSE,
         F "1: bad value for 'max_concurrent_casts': '65' (expected an integer from 1 to 64)"},
        {"max_concurrent_casts = -1", SPELL_EPARSE,
         F "1: bad value for 'max_concurrent_casts': '-1' (expected an integer from 1 to 64)"},
        {"max_concurrent_casts = 4x", SPELL_EPARSE,
         F "1: bad value for 'max_concurrent_casts': '4x' (expected an integer from 1 to 64)"},
        {"max_concurrent_casts = 1e1", SPELL_EPARSE,
         F "1: bad value for 'max_concurrent_casts': '1e1' (expected an integer from 1 to 64)"},
        {"max_concurrent_casts = 99999999999999999999", SPELL_EPARSE,
         F "1: bad value for 'max_concurrent_casts': '99999999999999999999' (expected an "
           "integer from 1 to 64)"},
        {"notify = yes\ntheme = \xC3\x28", SPELL_EPARSE, F "2: invalid UTF-8"},
        {"theme = \xC0\xAF", SPELL_EPARSE, F "1: invalid UTF-8"},
        {"theme = \xED\xA0\x80", SPELL_EPARSE, F "1: invalid UTF-8"},
        {"theme = \xF4\x90\x80\x80", SPELL_EPARSE, F "1: invalid UTF-8"},
        {"theme = \xE2\x82", SPELL_EPARSE, F "1: invalid UTF-8"},
        {"# \xFF in a comment\n", SPELL_EPARSE, F "1: invalid UTF-8"},
    };
    static const char *const bad_urls[] = {
        "ftp://example.com", "http://", "https://", "http:/x", "example.com", "http://:8080",
        "http://a b", "http://user:pw@host", "http://h/?q=1", "http://h/#frag", "http://h\\x",
        "http://h/\xC3\xA9", "HTTP//x",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spell_config c;
        char err[512] = "";
        CHECK_INT(spell_config_defaults(&c), SPELL_OK);
        int rc = parse(&c, cases[i].text, err, sizeof err);
        if (rc != cases[i].rc || strcmp(err, cases[i].msg) != 0)
            printf("#   case %zu: %s\n", i, cases[i].text);
        CHECK_INT(rc, cases[i].rc);
        CHECK_STR(err, cases[i].msg);
        /* Nothing of a failed file is applied. */
        CHECK_INT(c.theme, SPELL_THEME_DEFAULT);
        CHECK(c.notify);
        CHECK_INT(c.theme_from, SPELL_CONFIG_FROM_DEFAULT);
        CHECK_STR(c.api_url, "http://127.0.0.1:8080");
        spell_config_free(&c);
    }
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        struct spell_config c;
        char text[256], err[512];
        snprintf(text, sizeof text, "\n\napi_url = %s", bad_urls[i]);
        CHECK_INT(spell_config_defaults(&c), SPELL_OK);
        int rc = parse(&c, text, err, sizeof err);
        if (rc != SPELL_EPARSE)
            printf("#   url case %zu: %s\n", i, bad_urls[i]);
        CHECK_INT(rc, SPELL_EPARSE);
        CHECK_STR(err, F "3: bad value for 'api_url' (expected an http:// or https:// URL "
                         "without spaces, credentials, query or fragment)");
        spell_config_free(&c);
    }
#undef F
}

static void test_parse_urls(void)
{
    static const char *const good[][2] = {
        {"http://localhost:8080", "http://localhost:8080"},
        {"https://spell.example.com/", "https://spell.example.com"},
        {"HTTPS://Spell.Example.com///", "HTTPS://Spell.Example.com"},
        {"http://[::1]:9000/api/", "http://[::1]:9000/api"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct spell_config c;
        char text[256], err[256];
        snprintf(text, sizeof text, "api_url = %s", good[i][0]);
        CHECK_INT(spell_config_defaults(&c), SPELL_OK);
        CHECK_INT(parse(&c, text, err, sizeof err), SPELL_OK);
        CHECK_STR(c.api_url, good[i][1]);
        spell_config_free(&c);
    }
}

static void test_parse_nul_and_sizes(void)
{
    struct spell_config c;
    char err[512];
    CHECK_INT(spell_config_defaults(&c), SPELL_OK);

    static const char nul[] = "notify = yes\ntheme = da\0rk\n";
    CHECK_INT(spell_config_parse(&c, "cfg", nul, sizeof nul - 1, err, sizeof err), SPELL_EPARSE);
    CHECK_STR(err, "cfg:2: NUL byte");
    CHECK(c.notify);

    /* A line of exactly 4096 bytes is fine; 4097 is not. */
    char *big = malloc(SPELL_CONFIG_FILE_MAX + 2);
    CHECK(big != NULL);
    if (!big) {
        spell_config_free(&c);
        return;
    }
    memset(big, ' ', SPELL_CONFIG_FILE_MAX + 1);
    memcpy(big, "theme = mono", 12);
    CHECK_INT(spell_config_parse(&c, "cfg", big, 4096, err, sizeof err), SPELL_OK);
    CHECK_INT(c.theme, SPELL_THEME_MONO);
    /* The \r of a CRLF ending does not count. */
    big[4096] = '\r';
    big[4097] = '\n';
    CHECK_INT(spell_config_parse(&c, "cfg", big, 4098, err, sizeof err), SPELL_OK);
    big[4096] = ' ';
    big[4097] = ' ';
    CHECK_INT(spell_config_parse(&c, "cfg", big, 4097, err, sizeof err), SPELL_ETOOBIG);
    CHECK_STR(err, "cfg:1: line longer than 4096 bytes");

    /* A whole file of exactly 64 KiB is fine; one byte more is not. */
    for (size_t i = 100; i < SPELL_CONFIG_FILE_MAX; i += 100)
        big[i] = '\n';
    CHECK_INT(spell_config_parse(&c, "cfg", big, SPELL_CONFIG_FILE_MAX, err, sizeof err),
              SPELL_OK);
    CHECK_INT(spell_config_parse(&c, "cfg", big, SPELL_CONFIG_FILE_MAX + 1, err, sizeof err),
              SPELL_ETOOBIG);
    CHECK_STR(err, "cfg: larger than 65536 bytes");
    CHECK_INT(spell_config_parse(&c, "cfg", big, (size_t)-1, err, sizeof err), SPELL_ETOOBIG);
    free(big);
    spell_config_free(&c);
}

/* ---- files and resolution --------------------------------------------- */

static void test_read_file(void)
{
    struct spell_config c;
    char p[256], err[1024], want[1024];
    bool found = true;
    CHECK_INT(spell_config_defaults(&c), SPELL_OK);

    sub(p, sizeof p, "no-such-config");
    CHECK_INT(spell_config_read_file(&c, p, &found, err, sizeof err), SPELL_OK);
    CHECK(!found);

    sub(p, sizeof p, "cfg-good");
    write_file(p, "theme = light\n", 14);
    CHECK_INT(spell_config_read_file(&c, p, &found, err, sizeof err), SPELL_OK);
    CHECK(found);
    CHECK_INT(c.theme, SPELL_THEME_LIGHT);

    sub(p, sizeof p, "cfg-bad");
    write_file(p, "theme = light\nbogus = 1\n", 24);
    CHECK_INT(spell_config_read_file(&c, p, NULL, err, sizeof err), SPELL_EPARSE);
    snprintf(want, sizeof want, "%s:2: unknown key 'bogus'", p);
    CHECK_STR(err, want);

    sub(p, sizeof p, "cfg-huge");
    char *big = malloc(SPELL_CONFIG_FILE_MAX + 1);
    CHECK(big != NULL);
    if (big) {
        memset(big, '\n', SPELL_CONFIG_FILE_MAX + 1);
        write_file(p, big, SPELL_CONFIG_FILE_MAX + 1);
        CHECK_INT(spell_config_read_file(&c, p, NULL, err, sizeof err), SPELL_ETOOBIG);
        snprintf(want, sizeof want, "%s: larger than 65536 bytes", p);
        CHECK_STR(err, want);
        write_file(p, big, SPELL_CONFIG_FILE_MAX);
        CHECK_INT(spell_config_read_file(&c, p, NULL, err, sizeof err), SPELL_OK);
        free(big);
    }

    CHECK_INT(spell_config_read_file(&c, tmpdir, NULL, err, sizeof err), SPELL_EIO);
    snprintf(want, sizeof want, "%s: not a regular file", tmpdir);
    CHECK_STR(err, want);

    sub(p, sizeof p, "cfg-fifo");
    CHECK_INT(mkfifo(p, 0600), 0);
    CHECK_INT(spell_config_read_file(&c, p, NULL, err, sizeof err), SPELL_EIO);

    if (geteuid() != 0) {
        sub(p, sizeof p, "cfg-good");
        CHECK_INT(chmod(p, 0), 0);
        CHECK_INT(spell_config_read_file(&c, p, NULL, err, sizeof err), SPELL_EIO);
        snprintf(want, sizeof want, "%s: Permission denied", p);
        CHECK_STR(err, want);
    }
    spell_config_free(&c);
}

/* A HOME under the temp dir holding .config/spell/config with `text`. */
static void make_home(const char *name, const char *text, char *home, size_t homelen)
{
    char p[512], err[512];
    sub(home, homelen, name);
    snprintf(p, sizeof p, "%s/.config/spell", home);
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_OK);
    if (text) {
        strcat(p, "/config");
        write_file(p, text, strlen(text));
    }
}

static void test_load_precedence(void)
{
    char home[256], err[1024], want[1024];
    make_home("home1", "api_url = http://file.example:1\ntheme = dark\nnotify = no\n", home,
              sizeof home);

    /* File over defaults. */
    struct fake_env f = {0};
    fake_set(&f, "HOME", home);
    struct spell_env env = env_of(&f);
    struct spell_config c;
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_OK);
    CHECK_STR(c.api_url, "http://file.example:1");
    CHECK_INT(c.api_url_from, SPELL_CONFIG_FROM_FILE);
    CHECK_INT(c.theme, SPELL_THEME_DARK);
    CHECK_INT(c.theme_from, SPELL_CONFIG_FROM_FILE);
    CHECK(!c.notify);
    CHECK_INT(c.max_concurrent_casts, 4);
    CHECK_INT(c.max_concurrent_casts_from, SPELL_CONFIG_FROM_DEFAULT);
    CHECK(c.api_key == NULL);
    CHECK(c.file_found);
    snprintf(want, sizeof want, "%s/.config/spell/config", home);
    CHECK_STR(c.file, want);
    CHECK_STR(spell_config_source_name(c.api_url_from), "config file");
    spell_config_free(&c);

    /* Environment over file. */
    fake_set(&f, "SPELL_API_URL", "https://env.example/");
    fake_set(&f, "SPELL_API_KEY", "sk_live_abcdefgh_secret");
    fake_set(&f, "NO_COLOR", "1");
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_OK);
    CHECK_STR(c.api_url, "https://env.example");
    CHECK_INT(c.api_url_from, SPELL_CONFIG_FROM_ENV);
    CHECK_STR(c.api_key, "sk_live_abcdefgh_secret");
    CHECK_INT(c.api_key_from, SPELL_CONFIG_FROM_ENV);
    CHECK_INT(c.theme, SPELL_THEME_MONO);
    CHECK_INT(c.theme_from, SPELL_CONFIG_FROM_ENV);
    CHECK_INT(c.notify_from, SPELL_CONFIG_FROM_FILE);
    CHECK_STR(spell_config_source_name(c.theme_from), "environment");
    spell_config_free(&c);
}

static void test_load_defaults_and_no_color(void)
{
    char home[256], err[512];
    make_home("home2", NULL, home, sizeof home);
    struct fake_env f = {0};
    fake_set(&f, "HOME", home);
    fake_set(&f, "NO_COLOR", "");
    fake_set(&f, "SPELL_API_URL", "");
    fake_set(&f, "SPELL_API_KEY", "");
    struct spell_env env = env_of(&f);
    struct spell_config c;
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_OK);
    CHECK(!c.file_found);
    CHECK(c.file != NULL);
    CHECK_STR(c.api_url, "http://127.0.0.1:8080");
    CHECK_INT(c.api_url_from, SPELL_CONFIG_FROM_DEFAULT);
    /* An empty NO_COLOR does not count. */
    CHECK_INT(c.theme, SPELL_THEME_DEFAULT);
    CHECK(c.api_key == NULL);
    CHECK(c.notify);
    CHECK_STR(spell_config_source_name(c.api_url_from), "default");
    spell_config_free(&c);

    /* No HOME and no XDG_CONFIG_HOME: no file, defaults and env apply. */
    struct fake_env g = {0};
    fake_set(&g, "NO_COLOR", "yes please");
    env = env_of(&g);
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_OK);
    CHECK_STR(err, "");
    CHECK(c.file == NULL);
    CHECK(!c.file_found);
    CHECK_INT(c.theme, SPELL_THEME_MONO);
    spell_config_free(&c);
}

static void test_load_errors(void)
{
    char home[256], err[1024], want[1024];
    make_home("home3", "notify = yes\nmax_concurrent_casts = 100\n", home, sizeof home);
    struct fake_env f = {0};
    fake_set(&f, "HOME", home);
    struct spell_env env = env_of(&f);
    struct spell_config c;
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_EPARSE);
    snprintf(want, sizeof want, "%s/.config/spell/config:2: bad value for "
             "'max_concurrent_casts': '100' (expected an integer from 1 to 64)", home);
    CHECK_STR(err, want);
    CHECK(c.api_url == NULL && c.file == NULL);
    spell_config_free(&c);

    struct fake_env g = {0};
    fake_set(&g, "SPELL_API_URL", "localhost:8080");
    env = env_of(&g);
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "SPELL_API_URL is not an http:// or https:// URL (no spaces, credentials, "
                   "query or fragment; at most 2048 bytes)");
    CHECK(c.api_url == NULL);

    char longurl[SPELL_CONFIG_URL_MAX + 2];
    memset(longurl, 'a', sizeof longurl - 1);
    memcpy(longurl, "http://", 7);
    longurl[sizeof longurl - 1] = '\0';
    g.n = 0;
    fake_set(&g, "SPELL_API_URL", longurl);
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_EINVAL);
    longurl[SPELL_CONFIG_URL_MAX] = '\0';
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_OK);
    CHECK_INT(strlen(c.api_url), SPELL_CONFIG_URL_MAX);
    spell_config_free(&c);

    /* The key is never echoed, whatever is wrong with it. */
    g.n = 0;
    fake_set(&g, "SPELL_API_KEY", "sk_live_secret value");
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "SPELL_API_KEY holds spaces, control characters or non-ASCII bytes");
    CHECK(strstr(err, "secret") == NULL);
    char longkey[SPELL_CONFIG_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    g.n = 0;
    fake_set(&g, "SPELL_API_KEY", longkey);
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "SPELL_API_KEY is longer than 1024 bytes");

    /* XDG_CONFIG_HOME pointing to a directory where the config is a dir. */
    char xdg[256], p[512];
    sub(xdg, sizeof xdg, "xdgdir");
    snprintf(p, sizeof p, "%s/spell/config", xdg);
    CHECK_INT(spell_path_mkdir_private(p, err, sizeof err), SPELL_OK);
    g.n = 0;
    fake_set(&g, "XDG_CONFIG_HOME", xdg);
    CHECK_INT(spell_config_load(&c, &env, err, sizeof err), SPELL_EIO);
    snprintf(want, sizeof want, "%s: not a regular file", p);
    CHECK_STR(err, want);
}

static void test_names(void)
{
    CHECK_STR(spell_theme_name(SPELL_THEME_DEFAULT), "default");
    CHECK_STR(spell_theme_name(SPELL_THEME_DARK), "dark");
    CHECK_STR(spell_theme_name(SPELL_THEME_LIGHT), "light");
    CHECK_STR(spell_theme_name(SPELL_THEME_MONO), "mono");
    CHECK(spell_theme_name((enum spell_theme)4) == NULL);
    CHECK(spell_theme_name((enum spell_theme)-1) == NULL);
    CHECK(spell_config_source_name((enum spell_config_source)9) == NULL);
}

static void test_process_env(void)
{
    struct spell_env env;
    spell_env_process(&env);
    CHECK(env.get != NULL);
    const char *path = env.get(env.user, "PATH");
    CHECK(path == getenv("PATH"));
}

static void rm_tree(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s'; rm -rf '%s'", tmpdir, tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test-config-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    RUN(test_config_dir_combinations);
    RUN(test_state_dir_combinations);
    RUN(test_config_file_path);
    RUN(test_runtime_dir_and_socket);
    RUN(test_socket_path_length);
    RUN(test_path_max);
    RUN(test_mkdir_private_creates_chain);
    RUN(test_mkdir_private_refuses);
    RUN(test_mkdir_private_other_owner);
    RUN(test_defaults);
    RUN(test_parse_good_file);
    RUN(test_parse_values);
    RUN(test_parse_quotes);
    RUN(test_parse_errors);
    RUN(test_parse_urls);
    RUN(test_parse_nul_and_sizes);
    RUN(test_read_file);
    RUN(test_load_precedence);
    RUN(test_load_defaults_and_no_color);
    RUN(test_load_errors);
    RUN(test_names);
    RUN(test_process_env);
    rm_tree();
    return tap_done();
}
