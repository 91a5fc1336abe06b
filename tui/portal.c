/*
 * The portal's loop and frame.  portal_run() sets up curses, the worker
 * and the agent link, then turns the one poll() loop: stdin, the worker's
 * wakeup pipe and the agent socket, with a timeout that is the next timer
 * (the spinner, the usage refresh, a reconnect to the agent).  Each event
 * goes to its handler, which returns PK_* flags; the frame (title, tabs,
 * the screen, the status line, a modal or the help overlay) is drawn at
 * most once per turn, and only when something marked it dirty.
 */
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "spell/config.h"
#include "spell/errors.h"
#include "spell/version.h"

#include "portal.h"

/* Usage is asked again this often while the portal is open. */
#define USAGE_REFRESH_MS 30000
/* A cast that ends refreshes usage this long after (several ending
 * together cause one request). */
#define USAGE_EVENT_DELAY_MS 500
/* How long the agent may take to hand over the credential at start. */
#define AGENT_ANSWER_MS 3000
/* The credentials file is read up to this many bytes. */
#define CREDENTIALS_MAX (64 * 1024)

int64_t portal_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void portal_status(struct portal *p, bool error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->status, sizeof p->status, fmt, ap);
    va_end(ap);
    p->status_error = error;
    p->status_at = portal_now_ms();
    p->dirty = true;
}

bool portal_busy(const struct portal *p)
{
    return (p->worker && worker_pending(p->worker) > 0) || p->agent_state == AGENT_CONNECTING ||
           p->n_calls > 0;
}

void portal_request(struct portal *p, enum job_kind kind, const char *method, const char *path,
                    const char *body, const char *tag)
{
    if (!p->token)
        return;
    int rc = worker_submit(p->worker, kind, method, p->api_url, path, body, tag, p->token);
    if (rc != SPELL_OK)
        portal_status(p, true, "Could not queue the request: %s", spell_strerror(rc));
    p->dirty = true;
}

void portal_set_token(struct portal *p, const char *token, const char *source)
{
    if (p->token) {
        OPENSSL_cleanse(p->token, strlen(p->token));
        free(p->token);
        p->token = NULL;
    }
    if (token && !(p->token = strdup(token))) {
        portal_status(p, true, "Out of memory.");
        return;
    }
    snprintf(p->token_source, sizeof p->token_source, "%s", source);
}

static void tabs_signed_in(struct portal *p)
{
    p->tabs[0] = &screen_dashboard;
    p->tabs[1] = &screen_budget;
    p->tabs[2] = &screen_usage;
    p->tabs[3] = &screen_keys;
    p->tabs[4] = &screen_casts;
    p->n_tabs = 5;
    p->tab = 0;
}

void portal_sign_out(struct portal *p, const char *why)
{
    portal_set_token(p, NULL, "none");
    account_free(&p->acct);
    p->auth = AUTH_OUT;
    p->tabs[0] = &screen_login;
    p->n_tabs = 1;
    p->tab = 0;
    p->has_retry = false;
    modal_close(p);
    card_close(p);
    if (screen_login.enter)
        screen_login.enter(p);
    if (why)
        portal_status(p, true, "%s", why);
    p->dirty = true;
}

void portal_sign_in(struct portal *p)
{
    login_device_reset(p);
    p->auth = AUTH_CHECKING;
    tabs_signed_in(p);
    account_load(p);
    p->usage_refresh_at = portal_now_ms() + USAGE_REFRESH_MS;
    p->dirty = true;
}

void portal_switch_tab(struct portal *p, int tab)
{
    if (tab < 0 || tab >= p->n_tabs)
        return;
    p->tab = tab;
    p->help = false;
    if (p->tabs[tab]->enter)
        p->tabs[tab]->enter(p);
    p->dirty = true;
}

int portal_agent_call(struct portal *p, enum agent_call what, const char *method,
                      cJSON *params)
{
    if (!p->agent || p->n_calls >= PORTAL_MAX_CALLS)
        return SPELL_EINVAL;
    int64_t id = 0;
    int rc = spell_agent_send(p->agent, method, params, &id);
    if (rc != SPELL_OK)
        return rc;
    p->calls_id[p->n_calls] = id;
    p->calls[p->n_calls] = what;
    p->n_calls++;
    p->dirty = true;
    return SPELL_OK;
}

/* ---- the token without an agent ---- */

static char *read_credentials_file(void)
{
    struct spell_env env;
    char path[4096], err[256];
    spell_env_process(&env);
    if (spell_path_config_dir(&env, path, sizeof path, err, sizeof err) != SPELL_OK)
        return NULL;
    size_t n = strlen(path);
    if (n + sizeof "/credentials" > sizeof path)
        return NULL;
    memcpy(path + n, "/credentials", sizeof "/credentials");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    char *buf = malloc(CREDENTIALS_MAX + 1), *out = NULL;
    ssize_t got = buf ? read(fd, buf, CREDENTIALS_MAX) : -1;
    close(fd);
    if (got <= 0)
        goto out;
    buf[got] = '\0';
    /* The agent's file fallback (agent/desktop/desktop.h): lines
     * `server = URL`, `account = LOGIN` and `token = TOKEN`. */
    char *s = NULL;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            next++;
        while (*line == ' ' || *line == '\t')
            line++;
        if (strncmp(line, "token", 5) != 0)
            continue;
        char *v = line + 5;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v != '=')
            continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        s = v;
        break;
    }
    if (!s)
        goto out;
    size_t len = strcspn(s, " \t\r\n\"'");
    if (len == 0 || len > SPELL_CONFIG_KEY_MAX)
        goto out;
    out = strndup(s, len);
out:
    if (buf) {
        OPENSSL_cleanse(buf, CREDENTIALS_MAX + 1);
        free(buf);
    }
    return out;
}

/* Without an agent: SPELL_API_KEY, then the credentials file. */
static void sign_in_without_agent(struct portal *p)
{
    if (p->auth != AUTH_WAIT)
        return;
    if (p->env_key) {
        portal_set_token(p, p->env_key, "env");
        portal_sign_in(p);
    } else if (p->file_key) {
        portal_set_token(p, p->file_key, "file");
        portal_sign_in(p);
    } else {
        portal_sign_out(p, NULL);
    }
}

/* ---- agent link results ---- */

void agentlink_opened(struct portal *p, bool ok)
{
    if (!ok)
        sign_in_without_agent(p);
}

void agentlink_answer(struct portal *p, enum agent_call what, const struct spell_agent_msg *m)
{
    switch (what) {
    case CALL_TOKEN:
        if (m->kind == SPELL_AGENT_MSG_RESULT) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(m->result, "token");
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(m->result, "api_url");
            if (cJSON_IsString(u) && !p->api_url_explicit && strlen(u->valuestring) <
                sizeof p->api_url) {
                snprintf(p->api_url, sizeof p->api_url, "%s", u->valuestring);
                size_t n = strlen(p->api_url);
                while (n > 0 && p->api_url[n - 1] == '/')
                    p->api_url[--n] = '\0';
            }
            if (cJSON_IsString(t) && t->valuestring[0]) {
                if (p->token && strcmp(p->token, t->valuestring) == 0)
                    break;
                portal_set_token(p, t->valuestring, "agent");
                portal_sign_in(p);
                break;
            }
        }
        if (m->kind == SPELL_AGENT_MSG_ERROR && m->error.code == SPELL_AGENT_ERR_SIGNED_OUT) {
            /* An environment key or the file still works without the
             * keyring; sign_in_without_agent() shows the login otherwise. */
            if (p->auth == AUTH_WAIT)
                sign_in_without_agent(p);
            break;
        }
        if (p->auth == AUTH_WAIT)
            sign_in_without_agent(p);
        break;
    case CALL_LOGIN:
        if (m->kind == SPELL_AGENT_MSG_RESULT) {
            const cJSON *src = cJSON_GetObjectItemCaseSensitive(m->result, "source");
            portal_status(p, false, "Signed in; the key is kept in the %s.",
                          cJSON_IsString(src) ? src->valuestring : "agent");
            portal_agent_call(p, CALL_TOKEN, "auth.token", NULL);
        } else {
            struct form *f = &p->login_ui.form;
            int status = 0;
            const char *code = NULL, *msg = NULL;
            f->busy = false;
            if (spell_agent_error_server(&m->error, &status, &code, &msg) == SPELL_OK)
                spell_errf(f->error, sizeof f->error, "%s (%s)",
                         spell_api_error_sentence(code ? code : "", status),
                         msg ? msg : m->error.message);
            else
                spell_errf(f->error, sizeof f->error, "%s: %s",
                         spell_agent_code_sentence(m->error.code), m->error.message);
            /* The refusal of a browser sign-in's token belongs to that flow. */
            if (p->login_ui.dev == DEV_SIGNING_IN) {
                login_device_failed(p, f->error);
                f->error[0] = '\0';
            }
        }
        break;
    default:
        casts_agent_result(p, what, m);
        break;
    }
    p->dirty = true;
}

/* ---- actions confirmed in a modal ---- */

void portal_action(struct portal *p, enum modal_action action, const char *arg)
{
    char path[256];
    switch (action) {
    case ACT_REVOKE_KEY:
        snprintf(path, sizeof path, "/v1/keys/%s", arg);
        portal_request(p, JOB_KEY_REVOKE, "DELETE", path, NULL, arg);
        break;
    case ACT_RESET_BUDGET:
        portal_request(p, JOB_BUDGET_RESET, "DELETE", "/v1/budgets", NULL, NULL);
        break;
    case ACT_SUBMIT_CAST:
    case ACT_CANCEL_CAST:
        casts_confirmed(p, action, arg);
        break;
    case ACT_QUIT:
        p->quit = true;
        break;
    default:
        break;
    }
    p->dirty = true;
}

/* ---- drawing ---- */

static const char *const spinner_utf8[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
static const char *const spinner_ascii[] = {"|", "/", "-", "\\"};

static void draw_help(struct portal *p)
{
    static const char *const lines[] = {
        "Everywhere",
        "  1-5             switch tab (or click it)",
        "  Left/Right      previous / next tab",
        "  j k / Up Down   move in a list",
        "  g G / Home End  first / last row",
        "  PgUp PgDn       page up / down",
        "  /               filter the list",
        "  r               retry what failed, or reload",
        "  ?               this help        q  quit",
        "  Esc             back out (filter, form, details)",
        "Budget   e edit limits   D back to the default",
        "Usage    j k scroll the days",
        "Keys     n new key   d revoke   c copy (in the key box)",
        "Casts    n new cast   Enter details   x cancel",
        "Dashboard  c card   b add a card (address and QR code)",
        "Login    Enter: browser sign-in (code), or paste a key",
    };
    int n = (int)(sizeof lines / sizeof lines[0]);
    struct rect rc = {0, 0, n + 4, 60};
    rc.y = (p->rows - rc.h) / 2;
    rc.x = (p->cols - rc.w) / 2;
    draw_box(p, &rc, ROLE_MODAL, "Help: every key");
    for (int i = 0; i < n; i++)
        draw_text(p, rc.y + 2 + i, rc.x + 2, rc.w - 4,
                  lines[i][0] == ' ' ? ROLE_MODAL : ROLE_MODAL_TITLE, lines[i]);
    draw_text(p, rc.y + rc.h - 1, rc.x + 2, rc.w - 4, ROLE_MODAL_TITLE, "any key: close");
}

static void draw_frame(struct portal *p)
{
    erase();
    getmaxyx(stdscr, p->rows, p->cols);
    p->too_small = p->cols < PORTAL_MIN_W || p->rows < PORTAL_MIN_H;
    if (p->too_small) {
        char msg[96];
        snprintf(msg, sizeof msg, "terminal too small (need %dx%d)", PORTAL_MIN_W,
                 PORTAL_MIN_H);
        int w = (int)strlen(msg);
        draw_text(p, p->rows / 2 - 1, (p->cols - w) / 2 > 0 ? (p->cols - w) / 2 : 0, p->cols,
                  ROLE_STATUS_ERROR, msg);
        snprintf(msg, sizeof msg, "now %dx%d; q quits", p->cols, p->rows);
        w = (int)strlen(msg);
        draw_text(p, p->rows / 2, (p->cols - w) / 2 > 0 ? (p->cols - w) / 2 : 0, p->cols,
                  ROLE_DIM, msg);
        wnoutrefresh(stdscr);
        doupdate();
        return;
    }

    /* Title. */
    draw_fill(p, 0, 0, p->cols, ROLE_TITLE);
    char who[320] = "signed out";
    if (p->acct.has_me)
        snprintf(who, sizeof who, "%s", p->acct.me.login);
    else if (p->auth == AUTH_CHECKING || p->auth == AUTH_WAIT)
        snprintf(who, sizeof who, "signing in...");
    draw_textf(p, 0, 1, p->cols - 30, ROLE_TITLE, "spell portal  %s  %s", who, p->api_url);
    const char *agent = p->agent_state == AGENT_UP           ? "agent: connected"
                        : p->agent_state == AGENT_CONNECTING ? "agent: connecting"
                                                             : "agent: not running";
    draw_text(p, 0, p->cols - 1 - text_width(agent), 28, ROLE_TITLE, agent);

    /* Tabs. */
    int x = 0;
    for (int i = 0; i < p->n_tabs; i++) {
        char label[64];
        if (p->n_tabs > 1)
            snprintf(label, sizeof label, " %d %s ", i + 1, p->tabs[i]->name);
        else
            snprintf(label, sizeof label, " %s ", p->tabs[i]->name);
        p->tab_x[i] = x;
        x += draw_text(p, 1, x, p->cols - x, i == p->tab ? ROLE_TAB_ACTIVE : ROLE_TAB, label);
        x += draw_text(p, 1, x, 1, ROLE_TAB, " ");
    }
    p->tab_x[p->n_tabs] = x;

    p->content = (struct rect){2, 0, p->rows - 3, p->cols};
    const struct screen_ops *s = p->tabs[p->tab];
    if (s && s->draw)
        s->draw(p, &p->content);

    /* Status line. */
    int y = p->rows - 1;
    draw_fill(p, y, 0, p->cols, ROLE_STATUS);
    int right = 0;
    if (portal_busy(p)) {
        const char *sp = p->ascii ? spinner_ascii[p->spin % 4] : spinner_utf8[p->spin % 10];
        char buf[32];
        snprintf(buf, sizeof buf, "%s loading", sp);
        right = text_width(buf) + 1;
        draw_text(p, y, p->cols - right, right, ROLE_KEY_HINT, buf);
    }
    if (p->status[0]) {
        if (p->status_error && p->has_retry)
            draw_textf(p, y, 0, p->cols - right - 1, ROLE_STATUS_ERROR, " [r retry] %s",
                       p->status);
        else
            draw_textf(p, y, 0, p->cols - right - 1,
                       p->status_error ? ROLE_STATUS_ERROR : ROLE_STATUS_OK, " %s", p->status);
    } else {
        int w = draw_textf(p, y, 0, p->cols - right - 1, ROLE_KEY_HINT, " %s",
                           s && s->hints ? s->hints : "");
        draw_text(p, y, w + 2, p->cols - right - w - 3, ROLE_DIM, "? help  q quit");
    }

    if (p->help)
        draw_help(p);
    modal_draw(p);
    wnoutrefresh(stdscr);
    doupdate();
}

/* The benchmark's mark: the first frame that shows a complete dashboard. */
static void maybe_mark(struct portal *p, int64_t started_ns)
{
    if (p->marked || !p->mark_file || p->too_small)
        return;
    if (p->tabs[p->tab] != &screen_dashboard || !p->acct.has_me || !p->acct.has_usage ||
        p->acct.card == CARD_UNKNOWN)
        return;
    p->marked = true;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - started_ns;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    long rss = 0, hwm = 0;
    FILE *f = fopen("/proc/self/status", "re");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            sscanf(line, "VmRSS: %ld", &rss);
            sscanf(line, "VmHWM: %ld", &hwm);
        }
        fclose(f);
    }
    f = fopen(p->mark_file, "we");
    if (f) {
        fprintf(f, "wall_ns=%lld paint_ms=%.3f rss_kb=%ld hwm_kb=%ld\n",
                (long long)wall.tv_sec * 1000000000LL + wall.tv_nsec, (double)ns / 1e6, rss,
                hwm);
        fclose(f);
    }
}

/* ---- input ---- */

static int global_key(struct portal *p, int key)
{
    if (p->auth != AUTH_OUT && key >= '1' && key <= '0' + p->n_tabs) {
        portal_switch_tab(p, key - '1');
        return PK_HANDLED | PK_REDRAW;
    }
    switch (key) {
    case 'q':
        p->quit = true;
        return PK_QUIT;
    case '?':
        p->help = true;
        return PK_HANDLED | PK_REDRAW;
    case PK_FN | KEY_RIGHT:
    case 'l':
        portal_switch_tab(p, (p->tab + 1) % p->n_tabs);
        return PK_HANDLED | PK_REDRAW;
    case PK_FN | KEY_LEFT:
    case 'h':
        portal_switch_tab(p, (p->tab + p->n_tabs - 1) % p->n_tabs);
        return PK_HANDLED | PK_REDRAW;
    case 'r':
        if (p->has_retry) {
            struct job *j = &p->retry;
            p->has_retry = false;
            p->status[0] = '\0';
            portal_request(p, j->kind, j->method, j->path, j->body, j->tag);
            free(j->body);
            j->body = NULL;
        } else if (p->auth == AUTH_IN || p->auth == AUTH_CHECKING) {
            p->status[0] = '\0';
            account_load(p);
        }
        if (p->agent_state == AGENT_DOWN)
            p->agent_retry_at = 0;
        return PK_HANDLED | PK_REDRAW;
    case PK_ESC:
        if (p->status[0]) {
            p->status[0] = '\0';
            return PK_HANDLED | PK_REDRAW;
        }
        return PK_HANDLED;
    default:
        return 0;
    }
}

static void handle_mouse(struct portal *p)
{
    MEVENT ev;
    if (getmouse(&ev) != OK || p->too_small)
        return;
    if (!(ev.bstate & (BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_RELEASED)))
        return;
    if (p->modal.kind != MODAL_NONE || p->help)
        return;
    if (ev.y == 1) {
        for (int i = 0; i < p->n_tabs; i++)
            if (ev.x >= p->tab_x[i] && ev.x < p->tab_x[i + 1]) {
                portal_switch_tab(p, i);
                return;
            }
        return;
    }
    const struct screen_ops *s = p->tabs[p->tab];
    if (s->mouse && ev.y >= p->content.y && ev.y < p->content.y + p->content.h)
        s->mouse(p, ev.y, ev.x);
    p->dirty = true;
}

static void handle_key(struct portal *p, int key)
{
    if (key == (PK_FN | KEY_RESIZE)) {
        getmaxyx(stdscr, p->rows, p->cols);
        for (int i = 0; i < p->n_tabs; i++)
            if (p->tabs[i]->resize)
                p->tabs[i]->resize(p, &p->content);
        p->dirty = true;
        return;
    }
    if (key == (PK_FN | KEY_MOUSE)) {
        handle_mouse(p);
        return;
    }
    p->dirty = true;
    if (p->too_small) {
        if (key == 'q')
            p->quit = true;
        return;
    }
    if (p->help) {
        p->help = false;
        return;
    }
    if (p->modal.kind != MODAL_NONE) {
        modal_key(p, key);
        return;
    }
    const struct screen_ops *s = p->tabs[p->tab];
    int r = s->key ? s->key(p, key) : 0;
    if (r & PK_QUIT)
        p->quit = true;
    if (r & PK_HANDLED)
        return;
    global_key(p, key);
}

static void read_keys(struct portal *p)
{
    for (int i = 0; i < 4096; i++) {
        wint_t wc;
        int r = get_wch(&wc);
        if (r == ERR)
            break;
        handle_key(p, r == KEY_CODE_YES ? (int)(PK_FN | (int)wc) : (int)wc);
        if (p->quit)
            break;
    }
}

static void drain_results(struct portal *p)
{
    char buf[256];
    while (read(p->wake_rd, buf, sizeof buf) > 0)
        ;
    struct job_result *r;
    while ((r = worker_take(p->worker))) {
        account_apply(p, r);
        job_result_free(r);
        p->dirty = true;
    }
}

static int next_timeout(struct portal *p, int64_t now)
{
    int64_t t = now + 1000;
    if (portal_busy(p))
        t = now + 100;
    if (p->auth == AUTH_IN && p->usage_refresh_at && p->usage_refresh_at < t)
        t = p->usage_refresh_at;
    if (p->usage_event_at && p->usage_event_at < t)
        t = p->usage_event_at;
    if (p->agent_state == AGENT_DOWN && p->agent_retry_at && p->agent_retry_at < t)
        t = p->agent_retry_at;
    int64_t lt = login_timer(p, now), ct = card_timer(p, now);
    if (lt && lt < t)
        t = lt;
    if (ct && ct < t)
        t = ct;
    return t <= now ? 0 : (int)(t - now);
}

static void timers(struct portal *p, int64_t now)
{
    if (portal_busy(p)) {
        p->spin++;
        p->dirty = true;
    }
    if (p->auth == AUTH_IN &&
        ((p->usage_refresh_at && now >= p->usage_refresh_at) ||
         (p->usage_event_at && now >= p->usage_event_at))) {
        p->usage_refresh_at = now + USAGE_REFRESH_MS;
        p->usage_event_at = 0;
        account_refresh_usage(p);
    }
    agentlink_timer(p);
    /* An agent that takes the connection but does not answer must not
     * keep the portal from the account screens. */
    if (p->auth == AUTH_WAIT && now - p->started_ms > AGENT_ANSWER_MS) {
        portal_status(p, true, "The agent does not answer; going on without it.");
        sign_in_without_agent(p);
    }
    /* A status that is not an error fades after a while. */
    if (p->status[0] && !p->status_error && now - p->status_at > 8000) {
        p->status[0] = '\0';
        p->dirty = true;
    }
    /* Running casts show a ticking duration. */
    if (p->tabs[p->tab] == &screen_casts)
        p->dirty = true;
}

int portal_run(const struct portal_options *opt)
{
    int rc = 1;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t started_ns = (int64_t)t0.tv_sec * 1000000000 + t0.tv_nsec;

    struct portal *p = calloc(1, sizeof *p);
    if (!p) {
        fprintf(stderr, "spell-portal: out of memory\n");
        return 1;
    }
    p->wake_rd = -1;
    p->started_ms = portal_now_ms();
    p->mark_file = getenv("SPELL_PORTAL_MARK");
    if (p->mark_file && !*p->mark_file)
        p->mark_file = NULL;

    struct spell_env env;
    struct spell_config cfg;
    char err[512];
    spell_env_process(&env);
    if (spell_config_load(&cfg, &env, err, sizeof err) != SPELL_OK) {
        fprintf(stderr, "spell-portal: %s\n", err);
        free(p);
        return 2;
    }
    const char *url = opt->api_url ? opt->api_url : cfg.api_url;
    if (strlen(url) >= sizeof p->api_url || (strncmp(url, "http://", 7) != 0 &&
                                             strncmp(url, "https://", 8) != 0)) {
        fprintf(stderr, "spell-portal: --api-url must be an http:// or https:// URL\n");
        goto out_cfg;
    }
    snprintf(p->api_url, sizeof p->api_url, "%s", url);
    for (size_t n = strlen(p->api_url); n > 0 && p->api_url[n - 1] == '/'; n--)
        p->api_url[n - 1] = '\0';
    p->api_url_explicit = opt->api_url || cfg.api_url_from != SPELL_CONFIG_FROM_DEFAULT;
    enum spell_theme theme = cfg.theme;
    if (opt->theme) {
        theme = SPELL_THEME_DEFAULT;
        for (int t = SPELL_THEME_DEFAULT; t <= SPELL_THEME_MONO; t++)
            if (strcmp(opt->theme, spell_theme_name((enum spell_theme)t)) == 0)
                theme = (enum spell_theme)t;
    }
    const char *nc = getenv("NO_COLOR");
    bool no_color = nc && *nc;
    if (cfg.api_key && !(p->env_key = strdup(cfg.api_key)))
        goto out_cfg;
    p->file_key = read_credentials_file();
    if (opt->socket) {
        snprintf(p->socket_path, sizeof p->socket_path, "%s", opt->socket);
    } else if (spell_path_agent_socket(&env, p->socket_path, sizeof p->socket_path, err,
                                       sizeof err) != SPELL_OK) {
        p->socket_path[0] = '\0';
        snprintf(p->agent_error, sizeof p->agent_error, "%s", err);
    }
    const char *cs = nl_langinfo(CODESET);
    p->ascii = !cs || strcmp(cs, "UTF-8") != 0;

    /* SIGTERM, SIGHUP and SIGINT arrive through a descriptor in the poll
     * set, so the loop ends and the terminal is restored.  They are blocked
     * before the worker starts, so that no thread takes them instead. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);

    if (worker_start(&p->worker, &p->wake_rd) != SPELL_OK) {
        fprintf(stderr, "spell-portal: cannot start the network thread\n");
        goto out_cfg;
    }

    set_escdelay(25);
    if (!initscr()) {
        fprintf(stderr, "spell-portal: cannot set up the terminal\n");
        goto out_worker;
    }
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    mousemask(BUTTON1_CLICKED | BUTTON1_PRESSED, NULL);
    mouseinterval(0);
    theme_init(&p->theme, theme, no_color);
    getmaxyx(stdscr, p->rows, p->cols);

    table_reset(&p->keys_ui.list);
    table_reset(&p->casts_ui.list);
    table_reset(&p->casts_ui.pick);
    p->tabs[0] = &screen_login;
    p->n_tabs = 1;
    p->auth = AUTH_WAIT;
    agentlink_open(p);
    p->dirty = true;

    while (!p->quit) {
        if (p->dirty) {
            p->dirty = false;
            draw_frame(p);
            maybe_mark(p, started_ns);
        }
        struct pollfd fds[4];
        int n = 0;
        fds[n++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = p->wake_rd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        int agent_i = -1;
        if (p->agent) {
            agent_i = n;
            fds[n++] = (struct pollfd){.fd = spell_agent_fd(p->agent),
                                       .events = agentlink_events(p)};
        }
        int64_t now = portal_now_ms();
        int r = poll(fds, (nfds_t)n, next_timeout(p, now));
        if (r < 0 && errno != EINTR)
            break;
        if (r > 0 && (fds[2].revents & POLLIN))
            break;
        if (r > 0 && (fds[1].revents & POLLIN))
            drain_results(p);
        if (r > 0 && agent_i >= 0 && fds[agent_i].revents)
            agentlink_io(p, fds[agent_i].revents);
        /* Keys, and after EINTR the KEY_RESIZE that SIGWINCH leaves. */
        if (r < 0 || (fds[0].revents & (POLLIN | POLLHUP)))
            read_keys(p);
        if (r > 0 && (fds[0].revents & (POLLHUP | POLLERR)) && !(fds[0].revents & POLLIN))
            break;
        timers(p, portal_now_ms());
    }
    rc = 0;
    endwin();
    if (sig_fd >= 0)
        close(sig_fd);
out_worker:
    agentlink_close(p, NULL);
    worker_stop(p->worker);
out_cfg:
    spell_config_free(&cfg);
    modal_close(p);
    account_free(&p->acct);
    casts_free(p);
    cJSON_Delete(p->casts_ui.pending_inputs);
    spell_schema_fields_free(p->casts_ui.fields, p->casts_ui.n_fields);
    free(p->retry.body);
    portal_set_token(p, NULL, "none");
    if (p->env_key) {
        OPENSSL_cleanse(p->env_key, strlen(p->env_key));
        free(p->env_key);
    }
    if (p->file_key) {
        OPENSSL_cleanse(p->file_key, strlen(p->file_key));
        free(p->file_key);
    }
    free(p);
    return rc;
}
