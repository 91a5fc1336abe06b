/*
 * Client configuration: where the agent, the CLI and the portal keep their
 * files, and which settings they run with (DESIGN.md §4 and §6).
 *
 * Data flows one way.  The caller hands in its environment as a struct
 * spell_env (a lookup callback with user data, so nothing here reads or
 * writes process-wide state and tests need no setenv).  The path functions
 * turn XDG variables into the config, state and runtime directories and
 * the agent socket path.  spell_config_load() reads
 * $XDG_CONFIG_HOME/spell/config, then lets the environment override it, and
 * fills a struct spell_config whose strings it owns; each setting records
 * where it came from (environment, config file or default) so that
 * `spell whoami` can say so.
 *
 * The config file is lines of `key = value`; `#` starts a comment line,
 * blank lines are skipped, whitespace around key and value is trimmed, and
 * a value may be double-quoted (with \" and \\ escapes) to keep spaces.
 * Every complaint names the file and line: "<path>:3: unknown key 'api_ur'".
 *
 * Errors come back as an enum spell_rc plus a sentence written into the
 * caller's err buffer (always NUL-terminated when errlen > 0).  The API key
 * from SPELL_API_KEY is never written into any message.
 */
#ifndef SPELL_CONFIG_H
#define SPELL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* The config file may be at most this many bytes. */
#define SPELL_CONFIG_FILE_MAX (64 * 1024)
/* One line of the config file may be at most this many bytes, without its
 * line ending. */
#define SPELL_CONFIG_LINE_MAX 4096
/* An API URL may be at most this many bytes. */
#define SPELL_CONFIG_URL_MAX 2048
/* SPELL_API_KEY may be at most this many bytes. */
#define SPELL_CONFIG_KEY_MAX 1024
/* The agent socket path must fit sockaddr_un.sun_path (108 bytes with the
 * terminating NUL). */
#define SPELL_SOCKET_PATH_MAX 107

#define SPELL_CONFIG_DEFAULT_API_URL "http://127.0.0.1:8080"
#define SPELL_CONFIG_DEFAULT_MAX_CASTS 4
#define SPELL_CONFIG_MAX_CASTS_LIMIT 64

/*
 * The environment, passed in explicitly.  get() returns the value of the
 * variable `name`, or NULL when it is unset; the string must stay valid
 * until the call that asked for it returns.  An empty string counts as
 * unset everywhere in this module.
 */
struct spell_env {
    const char *(*get)(void *user, const char *name);
    void *user;
};

/* Fills env with a lookup into the process environment (getenv).  Only for
 * programs that do not change their environment while running. */
void spell_env_process(struct spell_env *env);

/*
 * Paths.  Each writes a NUL-terminated path into out (outlen bytes) and
 * returns SPELL_OK, or fails with a sentence in err:
 *   SPELL_ENOTFOUND  neither the XDG variable (absolute) nor HOME (absolute)
 *                    is set; for the runtime dir, XDG_RUNTIME_DIR is unset;
 *   SPELL_EINVAL     XDG_RUNTIME_DIR is set but not absolute;
 *   SPELL_ETOOBIG    the path would reach PATH_MAX, or does not fit outlen,
 *                    or (socket) is longer than SPELL_SOCKET_PATH_MAX bytes.
 * Relative XDG_CONFIG_HOME / XDG_STATE_HOME values are ignored, as the XDG
 * Base Directory specification says, and the HOME default applies.  There
 * is no fallback for the runtime dir: a guess in /tmp would be shared with
 * other users.  Trailing slashes of the variables are dropped.
 */
int spell_path_config_dir(const struct spell_env *env, char *out, size_t outlen,
                          char *err, size_t errlen);
int spell_path_config_file(const struct spell_env *env, char *out, size_t outlen,
                           char *err, size_t errlen);
int spell_path_state_dir(const struct spell_env *env, char *out, size_t outlen,
                         char *err, size_t errlen);
int spell_path_runtime_dir(const struct spell_env *env, char *out, size_t outlen,
                           char *err, size_t errlen);
int spell_path_agent_socket(const struct spell_env *env, char *out, size_t outlen,
                            char *err, size_t errlen);

/*
 * Makes sure the absolute directory `path` exists and is private: missing
 * components are created with mode 0700; the last component must then be a
 * real directory (not a symlink), owned by the effective user, and not
 * writable by group or others.  For the runtime and state dirs.
 * SPELL_EINVAL for a relative or over-long path, SPELL_EIO when the system
 * refuses, SPELL_EVERIFY when the directory exists but is not private.
 */
int spell_path_mkdir_private(const char *path, char *err, size_t errlen);

enum spell_theme {
    SPELL_THEME_DEFAULT,
    SPELL_THEME_DARK,
    SPELL_THEME_LIGHT,
    SPELL_THEME_MONO,
};

/* "default", "dark", "light", "mono"; NULL outside the enum. */
const char *spell_theme_name(enum spell_theme t);

enum spell_config_source {
    SPELL_CONFIG_FROM_DEFAULT,
    SPELL_CONFIG_FROM_FILE,
    SPELL_CONFIG_FROM_ENV,
};

/* "default", "config file", "environment"; NULL outside the enum. */
const char *spell_config_source_name(enum spell_config_source s);

struct spell_config {
    /* Base URL of the platform, http or https, without trailing slashes. */
    char *api_url;
    /* The API key from SPELL_API_KEY, or NULL when the environment carries
     * none (the agent then looks in the keyring).  Never printed here. */
    char *api_key;
    enum spell_theme theme;
    /* Whether the agent raises desktop notifications. */
    bool notify;
    /* How many casts the agent runs at once, 1..64. */
    int max_concurrent_casts;
    /* The config file consulted, or NULL when no path could be computed
     * (neither XDG_CONFIG_HOME nor HOME is usable). */
    char *file;
    /* Whether that file existed and was read. */
    bool file_found;
    /* Where each setting came from. */
    enum spell_config_source api_url_from;
    enum spell_config_source api_key_from;
    enum spell_config_source theme_from;
    enum spell_config_source notify_from;
    enum spell_config_source max_concurrent_casts_from;
};

/* Sets every field to its default; owns nothing yet except api_url.
 * SPELL_ENOMEM when that copy fails. */
int spell_config_defaults(struct spell_config *cfg);

/*
 * Applies the text of a config file (len bytes, may hold NUL bytes, which
 * are refused) on top of cfg.  `name` is the file name used in messages.
 * SPELL_ETOOBIG for text over SPELL_CONFIG_FILE_MAX or a line over
 * SPELL_CONFIG_LINE_MAX, SPELL_EPARSE for anything else wrong in it; on
 * failure cfg is unchanged.
 */
int spell_config_parse(struct spell_config *cfg, const char *name, const char *text,
                       size_t len, char *err, size_t errlen);

/* Reads the file at path and applies it with spell_config_parse().  A
 * missing file is not an error (SPELL_OK, *found = false); another failure
 * to read it is SPELL_EIO.  found may be NULL. */
int spell_config_read_file(struct spell_config *cfg, const char *path, bool *found,
                           char *err, size_t errlen);

/*
 * The whole resolution: defaults, then the config file, then the
 * environment (SPELL_API_URL, SPELL_API_KEY, NO_COLOR forcing the mono
 * theme).  cfg is overwritten; on failure it holds nothing to free.
 * SPELL_EINVAL for a bad SPELL_API_URL or an over-long SPELL_API_KEY.
 */
int spell_config_load(struct spell_config *cfg, const struct spell_env *env,
                      char *err, size_t errlen);

/* Frees the strings of cfg (the API key is wiped first) and zeroes it. */
void spell_config_free(struct spell_config *cfg);

#endif
