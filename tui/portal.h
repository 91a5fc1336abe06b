/*
 * spell-portal: the ncursesw caster portal.
 *
 * One thread draws and handles input; it owns struct portal and every
 * byte of state in it.  Data reaches it three ways, all through the one
 * poll() in portal_run():
 *
 *   keys and mouse       stdin          -> the open modal, the screen, then
 *                                          the global keys (1-5, ?, q, r)
 *   account data         worker thread  -> results through the wakeup pipe
 *                        (worker.c)        -> account.c applies them
 *   casts and the token  agent socket   -> agentlink.c (spell/agent.h)
 *                                          -> casts.c
 *
 * Every handler returns PK_* flags; the loop marks the screen dirty and
 * draws at most once per turn.  Screens are struct screen_ops, one file
 * each (screen-*.c); widgets are bar.c, table.c, form.c and modal.c;
 * colours come from roles (theme.c) and drawing code never names one.
 */
#ifndef PORTAL_H
#define PORTAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "spell/config.h"
#include "spell/models.h"
#include "spell/schema.h"

#include "spell/agent.h"

#include "qr.h"
#include "worker.h"

/* ---- handler flags ---- */
#define PK_HANDLED 1
#define PK_REDRAW 2
#define PK_RESIZE 4
#define PK_QUIT 8

/* Keys: a Unicode character is itself; a curses function key (KEY_UP,
 * KEY_RESIZE, KEY_MOUSE, ...) is PK_FN | code. */
#define PK_FN 0x40000000
#define PK_ESC 27
#define PK_ENTER 10
#define PK_CTRL(c) ((c) & 0x1f)

/* The smallest terminal the portal draws in. */
#define PORTAL_MIN_W 80
#define PORTAL_MIN_H 24

/* Caps on lists kept in memory. */
#define PORTAL_MAX_KEYS 100
#define PORTAL_MAX_SPELLS 200
#define PORTAL_MAX_CASTS 200
#define PORTAL_CAST_LOG 64
#define PORTAL_PREV_MONTHS 5

/* Text kept for one line of the status bar or one form error. */
#define PORTAL_MSG_MAX 512

/* ---- theme ---- */
enum role {
    ROLE_NORMAL,
    ROLE_TITLE,
    ROLE_TAB,
    ROLE_TAB_ACTIVE,
    ROLE_HEADER,
    ROLE_SELECTED,
    ROLE_STATUS,
    ROLE_STATUS_OK,
    ROLE_STATUS_ERROR,
    ROLE_BAR_OK,
    ROLE_BAR_WARN,
    ROLE_BAR_CRIT,
    ROLE_BAR_EMPTY,
    ROLE_SOFT_MARK,
    ROLE_DIM,
    ROLE_KEY_HINT,
    ROLE_FIELD,
    ROLE_FIELD_FOCUS,
    ROLE_FIELD_ERROR,
    ROLE_MODAL,
    ROLE_MODAL_TITLE,
    /* Dark modules on light ones, whatever the terminal's own colours. */
    ROLE_QR,
    ROLE__COUNT
};

struct theme {
    /* The curses attributes of each role, colour pair included. */
    int attr[ROLE__COUNT];
    bool mono;
};

/* Sets up colour pairs (when the terminal has colours, NO_COLOR is unset
 * and the theme is not mono) and fills t. */
void theme_init(struct theme *t, enum spell_theme which, bool no_color);
int theme_attr(const struct theme *t, enum role r);

/* ---- geometry and text ---- */
struct rect {
    int y, x, h, w;
};

struct portal;

/* Copies text from outside into out (outlen bytes, NUL included), keeping
 * printable UTF-8 and replacing control characters, escape sequences'
 * introducers, bidi overrides and ill-formed bytes with '?'.  With ascii
 * set, everything outside printable ASCII becomes '?'. */
void text_clean(const char *in, char *out, size_t outlen, bool ascii);
/* Display columns of clean UTF-8 text. */
int text_width(const char *s);
/* Draws text (cleaned here) at y, x, at most maxw columns, in role r.
 * Returns the columns drawn. */
int draw_text(struct portal *p, int y, int x, int maxw, enum role r, const char *s);
int draw_textf(struct portal *p, int y, int x, int maxw, enum role r, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Fills a row segment with blanks in role r. */
void draw_fill(struct portal *p, int y, int x, int w, enum role r);
/* A box around rect in role r (UTF-8 lines or ASCII). */
void draw_box(struct portal *p, const struct rect *rc, enum role r, const char *title);
/* "$12.34" */
void fmt_money(int64_t cents, char *out, size_t outlen);
/* "2026-11-22 09:13" from Unix ms; "never" for 0. */
void fmt_time(int64_t ms, char *out, size_t outlen);
/* "1.2s", "3m04s" */
void fmt_duration(int64_t ms, char *out, size_t outlen);

/* ---- widgets ---- */

/* bar.c: a horizontal bar of `w` columns filled value/max, eighth blocks
 * in UTF-8 or '#' in ASCII; the fill role follows the ratio (above 70 %
 * warn, above 90 % crit) unless fixed is not ROLE_NORMAL.  mark, when in
 * 0..max, draws the soft-limit marker at its place. */
void bar_draw(struct portal *p, int y, int x, int w, int64_t value, int64_t max, int64_t mark,
              enum role fixed);
enum role bar_role(int64_t value, int64_t max);

/* table.c: a scrolling, selectable list with a `/` filter.  The table
 * does not own rows; the screen answers row_text (for the filter) and
 * draws rows itself through draw_row. */
struct table {
    int selected;       /* index into the visible (filtered) rows, or -1 */
    int top;            /* first visible row shown */
    int n_rows;         /* rows before filtering */
    int visible[PORTAL_MAX_CASTS > PORTAL_MAX_SPELLS ? PORTAL_MAX_CASTS : PORTAL_MAX_SPELLS];
    int n_visible;
    char filter[64];
    bool filtering;     /* the `/` prompt has the keyboard */
};

struct table_ops {
    /* Text the filter matches against (case-insensitive substring). */
    const char *(*row_text)(struct portal *p, int row, char *buf, size_t buflen);
    void (*draw_row)(struct portal *p, int row, int y, int x, int w, bool selected);
};

void table_reset(struct table *t);
void table_set_rows(struct table *t, struct portal *p, const struct table_ops *ops, int n_rows);
void table_draw(struct table *t, struct portal *p, const struct table_ops *ops,
                const struct rect *rc, const char *header, const char *empty);
int table_key(struct table *t, struct portal *p, const struct table_ops *ops, int key,
              int page);
/* The selected row's index in the unfiltered rows, or -1. */
int table_current(const struct table *t);

/* form.c: labelled text fields, each with its own validation. */
#define FORM_MAX_FIELDS 16
#define FORM_TEXT_MAX 1024

struct form;
typedef int field_check_fn(struct portal *p, struct form *f, int i, char *err, size_t errlen);

struct form_field {
    char label[80];
    char hint[96];
    char text[FORM_TEXT_MAX];
    size_t max_len;         /* bytes the field takes, at most FORM_TEXT_MAX - 1 */
    bool secret;            /* shown masked past the key's public prefix */
    char error[PORTAL_MSG_MAX];
};

struct form {
    char title[96];
    struct form_field f[FORM_MAX_FIELDS];
    int n;
    int focus;
    /* A form-wide message: the server's words on a rejection. */
    char error[PORTAL_MSG_MAX];
    field_check_fn *check;  /* validates field i; SPELL_OK or message in err */
    bool busy;              /* submitted, waiting for the answer */
};

void form_init(struct form *f, const char *title, field_check_fn *check);
int form_add(struct form *f, const char *label, const char *hint, const char *text,
             size_t max_len);
/* Validates every field, fills their errors; true when all pass. */
bool form_validate(struct form *f, struct portal *p);
void form_draw(struct form *f, struct portal *p, const struct rect *rc);
/* Returns PK_* flags; sets *submit when Enter asks to submit a valid form
 * and *cancel on Esc. */
int form_key(struct form *f, struct portal *p, int key, bool *submit, bool *cancel);

/* modal.c: one box over the screen. */
enum modal_kind {
    MODAL_NONE,
    MODAL_CONFIRM,  /* y / Enter confirm, n / Esc back */
    MODAL_KEY,      /* the one-time display of a new API key */
    MODAL_INFO,     /* text, any key closes */
};

enum modal_action {
    ACT_NONE,
    ACT_REVOKE_KEY,
    ACT_SUBMIT_CAST,
    ACT_CANCEL_CAST,
    ACT_RESET_BUDGET,
    ACT_QUIT,
};

struct modal {
    enum modal_kind kind;
    enum modal_action action;
    char title[96];
    char lines[8][PORTAL_MSG_MAX];
    int n_lines;
    /* The full key for MODAL_KEY; wiped when the modal closes. */
    char secret[128];
    char arg[128];          /* what the action acts on: a prefix, a local id */
    bool copied;
};

void modal_open(struct portal *p, enum modal_kind kind, enum modal_action action,
                const char *title, const char *arg);
void modal_line(struct portal *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void modal_close(struct portal *p);
/* Runs a confirmed action (portal.c). */
void portal_action(struct portal *p, enum modal_action action, const char *arg);
void modal_draw(struct portal *p);
int modal_key(struct portal *p, int key);
/* Writes OSC 52 with the text to the terminal. */
void osc52_copy(const char *text);

/* ---- screens ---- */
struct screen_ops {
    const char *name;
    void (*draw)(struct portal *p, const struct rect *rc);
    int (*key)(struct portal *p, int key);
    void (*resize)(struct portal *p, const struct rect *rc);
    void (*enter)(struct portal *p);
    /* A click inside the content area, in screen coordinates. */
    int (*mouse)(struct portal *p, int y, int x);
    /* Key hints for the status line. */
    const char *hints;
};

extern const struct screen_ops screen_dashboard;
extern const struct screen_ops screen_budget;
extern const struct screen_ops screen_usage;
extern const struct screen_ops screen_keys;
extern const struct screen_ops screen_casts;
extern const struct screen_ops screen_login;

/* ---- account data (account.c) ---- */
enum card_state {
    CARD_UNKNOWN,   /* not asked yet or in flight */
    CARD_NONE,      /* 404: no card on file */
    CARD_OK,
    CARD_FAILED,    /* status "failed" */
    CARD_ERROR,     /* the request failed otherwise */
};

struct month {
    char period[SPELL_PERIOD_SIZE];
    bool loaded;
    int64_t spent_cents;
    int64_t calls;
};

struct account {
    struct spell_user me;
    bool has_me;
    struct spell_usage usage;
    bool has_usage;
    struct spell_budget budget;
    bool has_budget;
    struct spell_api_key keys[PORTAL_MAX_KEYS];
    int n_keys;
    bool has_keys;
    enum card_state card;
    struct spell_payment_method pm;
    struct spell_spell spells[PORTAL_MAX_SPELLS];
    int n_spells;
    bool has_spells;
    struct month prev[PORTAL_PREV_MONTHS];
};

/* ---- casts from the agent (casts.c) ---- */
struct pcast {
    char local_id[64];
    char cast_id[64];
    char spell[80];
    char state[16];
    int progress;
    char message[256];
    int64_t estimated_cost_cents;
    int64_t cost_cents;
    bool has_cost;
    int64_t created_ms;
    int64_t duration_ms;
    bool has_duration;
    bool final;
    char error[320];
    /* Where the finished cast's result is (a workflow's artifact); empty
     * when it has none. */
    char artifact_url[SPELL_MODEL_URL_MAX + 1];
    /* The event log, oldest first, at most PORTAL_CAST_LOG lines. */
    char *log[PORTAL_CAST_LOG];
    int n_log;
};

enum agent_state {
    AGENT_DOWN,         /* no agent answers the socket */
    AGENT_CONNECTING,   /* hello sent */
    AGENT_UP,
};

/* What an outstanding agent call was for. */
enum agent_call {
    CALL_NONE,
    CALL_HELLO,
    CALL_TOKEN,
    CALL_SUBSCRIBE,
    CALL_LIST,
    CALL_LOGIN,
    CALL_SUBMIT,
    CALL_CANCEL,
};

#define PORTAL_MAX_CALLS 64

/* ---- per-screen state ---- */
enum casts_mode {
    CASTS_LIST,
    CASTS_DETAIL,
    CASTS_PICK,
    CASTS_FORM,
};

struct casts_ui {
    enum casts_mode mode;
    struct table list;
    struct table pick;
    struct form form;
    int spell;              /* index into account.spells for the form */
    /* The chosen spell's inputs, one per form field, in schema order. */
    struct spell_schema_field *fields;
    size_t n_fields;
    char detail[64];        /* local id shown in detail */
    int log_top;
    cJSON *pending_inputs;  /* inputs waiting for the confirmation */
};

struct keys_ui {
    struct table list;
    struct form form;
    bool creating;
};

struct budget_ui {
    struct form form;
    bool editing;
};

struct usage_ui {
    int day_top;
    /* 0: this month; 1..PORTAL_PREV_MONTHS: one of account.prev. */
    int shown;
};

/* The device flow on the login screen (spell/device.h). */
enum device_phase {
    DEV_IDLE,       /* not started: Enter with the key field empty starts it */
    DEV_STARTING,   /* POST /v1/auth/device in flight */
    DEV_WAITING,    /* showing the code, polling at the grant's interval */
    DEV_SIGNING_IN, /* approved: the token is with the agent or being checked */
    DEV_EXPIRED,
    DEV_DENIED,
    DEV_FAILED,     /* the server refused or is not offering it; see error */
};

struct login_ui {
    struct form form;
    enum device_phase dev;
    /* The grant being polled; its device code is a secret, wiped when the
     * flow ends. */
    struct spell_device_grant grant;
    bool polling;           /* a poll is with the worker */
    int64_t poll_at;        /* monotonic ms of the next poll */
    int64_t expires_at;     /* monotonic ms when the grant runs out */
    bool browser;           /* a browser was opened at the page */
    /* What went wrong (DEV_FAILED), or a passing note while waiting
     * (slow_down, the server unreachable for a moment). */
    char error[PORTAL_MSG_MAX];
    char note[PORTAL_MSG_MAX];
};

/* The card view over the dashboard (screen-card.c). */
enum card_phase {
    CARDV_CLOSED,   /* the dashboard shows */
    CARDV_STATUS,   /* the card on file, and how to add one */
    CARDV_STARTING, /* POST /v1/billing/setup in flight */
    CARDV_WAITING,  /* the registration address and its QR code; polling */
    CARDV_UNOFFERED,/* the server answered 404 to the setup */
};

/* The registration address kept at most (a Checkout URL is far shorter). */
#define CARD_URL_MAX QR_TEXT_MAX

struct card_ui {
    enum card_phase phase;
    char url[CARD_URL_MAX + 1];
    char expires[64];       /* the link's expires_at as the server wrote it, or "" */
    struct qr_text qr;      /* url drawn for the current charset; n_lines 0: none */
    int qr_rc;              /* qr_render()'s result for url */
    int64_t poll_at;        /* monotonic ms of the next GET while waiting */
    bool polling;           /* a GET /v1/billing/payment-method is in flight */
    /* The card on file when registration began ("brand last4 mm/yyyy"
     * and its state), so that a new one can be told from it. */
    char before[96];
    /* The last refusal of a setup, in the server's words, shown in the
     * view (the status line cuts long ones). */
    char error[PORTAL_MSG_MAX];
};

/* ---- the portal ---- */
struct portal {
    struct theme theme;
    bool ascii;             /* no UTF-8 locale: ASCII boxes and bars */
    int rows, cols;
    bool too_small;
    bool dirty;
    bool quit;

    /* Settings. */
    char api_url[SPELL_CONFIG_URL_MAX + 1];
    bool api_url_explicit;  /* from --api-url or SPELL_API_URL or the config file */
    char socket_path[SPELL_SOCKET_PATH_MAX + 1];
    char *token;            /* the credential in use; wiped on free */
    char token_source[32];  /* "agent", "env", "file", "session" */
    char *env_key;          /* SPELL_API_KEY, when set */
    char *file_key;         /* the credentials file, when readable */
    enum {
        AUTH_WAIT,          /* asking the agent */
        AUTH_OUT,
        AUTH_CHECKING,      /* GET /v1/auth/me in flight */
        AUTH_IN,
    } auth;

    /* Screens: tabs[] when signed in, the login screen otherwise. */
    const struct screen_ops *tabs[5];
    int n_tabs;
    int tab;
    int tab_x[6];           /* column where each tab label starts; [n] ends */
    struct rect content;
    bool help;

    struct modal modal;

    /* The status line. */
    char status[PORTAL_MSG_MAX];
    bool status_error;
    int64_t status_at;
    /* The last failed request, for `r`. */
    struct job retry;
    bool has_retry;

    /* Background HTTP. */
    struct worker *worker;
    int wake_rd;
    unsigned spin;

    /* The agent. */
    struct spell_agent *agent;
    enum agent_state agent_state;
    char agent_error[PORTAL_MSG_MAX];
    int64_t agent_retry_at;
    int64_t calls_id[PORTAL_MAX_CALLS];
    enum agent_call calls[PORTAL_MAX_CALLS];
    int n_calls;
    int next_id;
    bool login_via_agent;

    struct account acct;
    struct pcast *casts[PORTAL_MAX_CASTS];
    int n_casts;

    struct casts_ui casts_ui;
    struct keys_ui keys_ui;
    struct budget_ui budget_ui;
    struct usage_ui usage_ui;
    struct login_ui login_ui;
    struct card_ui card_ui;

    /* Timers (monotonic ms). */
    int64_t started_ms;
    int64_t usage_refresh_at;
    int64_t usage_event_at;  /* a cast ended: refresh soon, once */

    /* Benchmark: where to note the first complete dashboard, if anywhere. */
    const char *mark_file;
    bool marked;
};

int64_t portal_now_ms(void);
void portal_status(struct portal *p, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool portal_busy(const struct portal *p);
/* Sends one request through the worker. */
void portal_request(struct portal *p, enum job_kind kind, const char *method, const char *path,
                    const char *body, const char *tag);
void portal_switch_tab(struct portal *p, int tab);
void portal_set_token(struct portal *p, const char *token, const char *source);
void portal_sign_out(struct portal *p, const char *why);
/* Starts the signed-in portal with the token already set. */
void portal_sign_in(struct portal *p);
int portal_agent_call(struct portal *p, enum agent_call what, const char *method,
                      cJSON *params);

/* account.c */
void account_free(struct account *a);
void account_load(struct portal *p);
void account_refresh_usage(struct portal *p);
void account_apply(struct portal *p, struct job_result *r);
void account_error(struct portal *p, const struct job_result *r, const char *what,
                   char *out, size_t outlen);

/* screen-login.c: the device flow's results and schedule. */
void login_device_result(struct portal *p, struct job_result *r);
/* Sends the next poll when it is due; returns the monotonic ms it wants
 * to be called again by (the spinner, the next poll), or 0. */
int64_t login_timer(struct portal *p, int64_t now);
/* The token from an approved grant was refused (by the agent or the
 * server): back to the start of the flow, with the words. */
void login_device_failed(struct portal *p, const char *msg);
/* The flow ends (signed in or out): the grant is wiped. */
void login_device_reset(struct portal *p);

/* screen-card.c: the card view the dashboard opens. */
/* The card block: status, and how to add one (two rows). */
void card_draw_status(struct portal *p, int y, int x, int w);
/* Opens the view (start: and asks for a registration address at once). */
void card_open(struct portal *p, bool start);
void card_close(struct portal *p);
void card_draw(struct portal *p, const struct rect *rc);
int card_key(struct portal *p, int key);
/* Results of JOB_BILLING_SETUP and of JOB_CARD while the view is open. */
void card_setup_result(struct portal *p, struct job_result *r);
void card_status_changed(struct portal *p);
int64_t card_timer(struct portal *p, int64_t now);

/* casts.c */
void casts_free(struct portal *p);
void casts_from_list(struct portal *p, const cJSON *result);
void casts_event(struct portal *p, const cJSON *params);
struct pcast *casts_find(struct portal *p, const char *local_id);
void casts_agent_result(struct portal *p, enum agent_call what, const struct spell_agent_msg *m);
/* A cast submission or cancellation the caster confirmed. */
void casts_confirmed(struct portal *p, enum modal_action action, const char *arg);

/* agentlink.c: the connection to spell-agent, on core's non-blocking
 * client (spell/agent.h). */
void agentlink_open(struct portal *p);
void agentlink_close(struct portal *p, const char *why);
short agentlink_events(const struct portal *p);
void agentlink_io(struct portal *p, short revents);
void agentlink_timer(struct portal *p);
/* Called by agentlink.c (defined in portal.c): whether the agent answered
 * at all, and each answer with what its call was for. */
void agentlink_opened(struct portal *p, bool ok);
void agentlink_answer(struct portal *p, enum agent_call what, const struct spell_agent_msg *m);

/* Used by main.c. */
struct portal_options {
    const char *api_url;
    const char *socket;
    const char *theme;
};
int portal_run(const struct portal_options *opt);

#endif
