/*
 * spell, the command line: shared declarations.
 *
 * main.c looks the first word up in the command table (one struct
 * cli_cmd per subcommand, each in its own cmd-*.c) and calls its exec with
 * the rest of argv.  Each command parses its flags with cli_parse(), then
 * talks to the agent (cli_agent_open() and core's spell/agent.h client) or
 * straight to the server (cli_api() with the token cli_token() finds), and
 * prints for a person or, with --json, one JSON document for a script.
 *
 * Exit codes: 0 ok, 1 error, 2 usage, 3 the cast failed, 4 a budget or
 * payment refusal (HTTP 402).
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "spell/agent.h"
#include "spell/config.h"

enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_ERROR = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_CAST_FAILED = 3,
    CLI_EXIT_BUDGET = 4,
};

/* How long a call to the agent may take before the CLI gives up, except
 * the ones that wait for a cast. */
#define CLI_AGENT_TIMEOUT_MS 15000

/* What every command gets from main. */
struct cli_ctx {
    struct spell_env env;
    struct spell_config cfg;
    /* The config could not be loaded; its sentence, shown by commands
     * that need it. */
    char cfg_error[256];
    bool cfg_ok;
    /* Colour on stdout: a terminal, and neither NO_COLOR nor TERM=dumb. */
    bool color;
    /* stdout and stderr are terminals. */
    bool tty_out;
    bool tty_err;
    /* --socket from the command line or SPELL_AGENT_SOCKET, else NULL (the
     * XDG path). */
    const char *socket_path;
};

/* One subcommand. */
struct cli_cmd {
    const char *name;
    const char *usage;      /* the synopsis after "spell " */
    const char *summary;    /* one line for `spell --help` */
    const char *help;       /* the rest of `spell NAME --help` */
    int (*exec)(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv);
};

/* ---- flags ---- */

#define CLI_MAX_OPTS 16
#define CLI_MAX_POS 8
#define CLI_MAX_REPEAT 64

struct cli_opt {
    const char *name;       /* "--budget-cap" */
    const char *alias;      /* "-i", or NULL */
    bool takes_value;
    bool repeat;            /* may be given many times (values kept in order) */
};

struct cli_args {
    bool set[CLI_MAX_OPTS];
    const char *value[CLI_MAX_OPTS];    /* the last value given */
    /* Values of repeatable flags in command-line order, with their flag. */
    int rep_opt[CLI_MAX_REPEAT];
    const char *rep_value[CLI_MAX_REPEAT];
    int n_rep;
    const char *pos[CLI_MAX_POS];
    int n_pos;
    bool help;
};

/* Parses argv[0..argc) against opts (n <= CLI_MAX_OPTS); --help is always
 * known.  Accepts "--flag value", "--flag=value" and "--" before operands.
 * Between min_pos and max_pos operands.  On a usage error prints it with
 * the command's usage line and returns CLI_EXIT_USAGE; otherwise 0. */
int cli_parse(const struct cli_cmd *cmd, const struct cli_opt *opts, int n, int argc,
              char **argv, int min_pos, int max_pos, struct cli_args *out);

/* Prints "spell NAME: message" and the usage line to stderr; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints the command's --help to stdout; returns CLI_EXIT_OK. */
int cli_help(const struct cli_cmd *cmd);

/* Prints "spell: message" to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints a JSON document on one line to stdout; CLI_EXIT_ERROR when it
 * cannot be printed. */
int cli_print_json(const cJSON *j);

/* Colour roles for stdout (empty strings without colour). */
const char *cli_color_state(const struct cli_ctx *ctx, const char *state);
const char *cli_color_reset(const struct cli_ctx *ctx);

/* The width of the terminal on fd, or 80. */
int cli_term_width(int fd);

/* ---- the agent ---- */

/* Connects and says hello.  On failure *a is NULL and, when quiet is
 * false, the reason was printed.  Returns 0 or an exit code. */
int cli_agent_open(struct cli_ctx *ctx, bool quiet, struct spell_agent **a);

/* Calls a method; on an error answer prints it (with the server's words
 * for -32030) and returns an exit code (4 for a 402 refusal). */
int cli_agent_call(struct spell_agent *a, const char *method, const cJSON *params,
                   int timeout_ms, cJSON **result);

/* Subscribes to events and waits (without limit) for a local cast to
 * finish, showing its progress; *final receives the final local cast. */
int cli_wait_agent(struct cli_ctx *ctx, struct spell_agent *a, const char *local_id,
                   cJSON **final);

/* Prints an agent error and maps it to an exit code. */
int cli_agent_report(int rc, const struct spell_agent_error *e);

/* ---- the server ---- */

/* The credential for talking to the server directly. */
struct cli_token {
    char token[SPELL_CONFIG_KEY_MAX + 1];
    char api_url[SPELL_CONFIG_URL_MAX + 1];
    /* "env", "agent", "file" */
    const char *source;
    /* The credentials file, when source is "file". */
    char path[4096];
    char account[256];
};

/* SPELL_API_KEY, else the agent's auth.token, else the credentials file.
 * Prints why when nothing is found and returns CLI_EXIT_ERROR. */
int cli_token(struct cli_ctx *ctx, struct cli_token *t);

/* Wipes the token. */
void cli_token_wipe(struct cli_token *t);

/* Reads $XDG_CONFIG_HOME/spell/credentials (docs: server, account, token
 * lines; 0600, owned by the user).  Returns 0 when a token for the
 * configured server was read, 1 when there is none, and prints nothing. */
int cli_token_from_file(struct cli_ctx *ctx, struct cli_token *t);

/*
 * One request to the server.  body may be NULL; idem_key adds an
 * Idempotency-Key.  On a 2xx answer *out (may be NULL) receives the parsed
 * body (NULL for an empty one) and 0 is returned; otherwise the error is
 * printed (catalog sentence plus the server's message) and the exit code
 * returned (4 for 402).  *status (may be NULL) receives the HTTP status.
 * This and cli_follow_direct() load the network module (net.h) on first
 * use; when it cannot be loaded they say so and return CLI_EXIT_ERROR.
 */
int cli_api(const struct cli_token *t, const char *method, const char *path, const cJSON *body,
            const char *idem_key, int *status, cJSON **out);

/* cli_api() with flags: CLI_API_ABSENT_OK makes a 404 an answer rather
 * than an error (0 is returned with *status 404 and *out NULL, nothing is
 * printed), for a resource that may not exist. */
#define CLI_API_ABSENT_OK 1u
int cli_api_ex(const struct cli_token *t, const char *method, const char *path,
               const cJSON *body, const char *idem_key, unsigned flags, int *status,
               cJSON **out);

/* Prints a server error body: "spell: <sentence> (<message>)". */
void cli_print_server_error(int status, const char *code, const char *message);

/* Follows GET /v1/casts/{id}/events to the terminal event, showing
 * progress on stderr (a bar on a terminal, lines otherwise; nothing when
 * quiet).  Returns 0 when the stream ended, else an exit code. */
int cli_follow_direct(struct cli_ctx *ctx, const struct cli_token *t, const char *cast_id,
                      bool quiet);

/* ---- progress and casts ---- */

/* Shows one progress update for a cast on stderr: on a terminal redraws
 * one line, otherwise prints a line when something changed. */
struct cli_progress {
    bool tty;
    int last_progress;
    char last_state[32];
    char last_message[256];
    bool drawn;
};

void cli_progress_init(struct cli_progress *p, const struct cli_ctx *ctx);
void cli_progress_show(struct cli_progress *p, const char *id, const char *state, int progress,
                       const char *message);
void cli_progress_log(struct cli_progress *p, const char *line);
void cli_progress_end(struct cli_progress *p);

/* Prints a local cast (agent) or a server cast for a person. */
void cli_print_cast(const struct cli_ctx *ctx, const cJSON *cast);

/* The exit code for a final cast: 0 succeeded, 3 failed or canceled, 4
 * rejected with 402, 1 rejected otherwise. */
int cli_cast_exit(const cJSON *cast);

/* Whether an id is a local id (lc_...) rather than a server cast id. */
bool cli_is_local_id(const char *id);

/* Checks an ID operand (lc_... or cst_..., letters, digits, '_' and '-');
 * 0, or prints a usage error and returns CLI_EXIT_USAGE. */
int cli_check_id(const struct cli_cmd *cmd, const char *id);

/* {"local_id": id} or {"cast_id": id}; NULL (after a message) when memory
 * runs out. */
cJSON *cli_id_params(const char *id);

/* cast.get through the agent.  With unknown given, an unknown cast (-32020)
 * sets *unknown and prints nothing (the caller asks the server instead). */
int cli_agent_get_cast(struct spell_agent *a, const char *id, cJSON **cast, bool *unknown);

/* ---- the command table ---- */

extern const struct cli_cmd cli_cmd_login;
extern const struct cli_cmd cli_cmd_logout;
extern const struct cli_cmd cli_cmd_whoami;
extern const struct cli_cmd cli_cmd_cast;
extern const struct cli_cmd cli_cmd_watch;
extern const struct cli_cmd cli_cmd_ls;
extern const struct cli_cmd cli_cmd_show;
extern const struct cli_cmd cli_cmd_cancel;
extern const struct cli_cmd cli_cmd_keys;
extern const struct cli_cmd cli_cmd_budget;
extern const struct cli_cmd cli_cmd_usage;
extern const struct cli_cmd cli_cmd_card;
extern const struct cli_cmd cli_cmd_agent;

#endif
