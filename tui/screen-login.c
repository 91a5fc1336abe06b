/*
 * Login, shown while signed out.  Two ways in:
 *
 *   a browser   Enter with the key field empty starts the device flow
 *               (spell/device.h, RFC 8628) on the worker thread: the
 *               server's user code is drawn large beside the address of
 *               its /device page (opened in a browser when there is one),
 *               and the grant is polled at the server's interval from the
 *               loop's timer (login_timer), never from the drawing code;
 *               slow_down stretches the interval, expiry and denial say so
 *               and Enter starts again.  The approved session token goes
 *               where a pasted key goes.
 *   a key       paste an API key, checked offline with spell_apikey_parse()
 *               (shape and check characters, so a key cut short or
 *               mistyped is caught before any request).
 *
 * Either credential is handed to the agent's auth.login, which checks it
 * with the server and keeps it in the keyring; without an agent it is
 * checked with GET /v1/auth/me and used for this session only.
 */
#include <curses.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "spell/crypto.h"
#include "spell/device.h"
#include "spell/errors.h"

#include "portal.h"

/* How long a grant lives when the server did not say. */
#define DEVICE_DEFAULT_LIFETIME_S 900
/* The spinner turns this often while the code is on the screen. */
#define SPIN_MS 100

/* A 3x5 font for user codes: '#' is lit, one string per row. */
struct glyph {
    char c;
    const char *rows[5];
};

static const struct glyph font[] = {
    {'0', {"###", "#.#", "#.#", "#.#", "###"}}, {'1', {".#.", "##.", ".#.", ".#.", "###"}},
    {'2', {"###", "..#", "###", "#..", "###"}}, {'3', {"###", "..#", "###", "..#", "###"}},
    {'4', {"#.#", "#.#", "###", "..#", "..#"}}, {'5', {"###", "#..", "###", "..#", "###"}},
    {'6', {"###", "#..", "###", "#.#", "###"}}, {'7', {"###", "..#", "..#", "..#", "..#"}},
    {'8', {"###", "#.#", "###", "#.#", "###"}}, {'9', {"###", "#.#", "###", "..#", "###"}},
    {'A', {".#.", "#.#", "###", "#.#", "#.#"}}, {'B', {"##.", "#.#", "##.", "#.#", "##."}},
    {'C', {"###", "#..", "#..", "#..", "###"}}, {'D', {"##.", "#.#", "#.#", "#.#", "##."}},
    {'E', {"###", "#..", "##.", "#..", "###"}}, {'F', {"###", "#..", "##.", "#..", "#.."}},
    {'G', {"###", "#..", "#.#", "#.#", "###"}}, {'H', {"#.#", "#.#", "###", "#.#", "#.#"}},
    {'I', {"###", ".#.", ".#.", ".#.", "###"}}, {'J', {"..#", "..#", "..#", "#.#", "###"}},
    {'K', {"#.#", "#.#", "##.", "#.#", "#.#"}}, {'L', {"#..", "#..", "#..", "#..", "###"}},
    {'M', {"#.#", "###", "###", "#.#", "#.#"}}, {'N', {"##.", "#.#", "#.#", "#.#", "#.#"}},
    {'O', {".#.", "#.#", "#.#", "#.#", ".#."}}, {'P', {"###", "#.#", "###", "#..", "#.."}},
    {'Q', {"###", "#.#", "#.#", "###", "..#"}}, {'R', {"##.", "#.#", "##.", "#.#", "#.#"}},
    {'S', {".##", "#..", ".#.", "..#", "##."}}, {'T', {"###", ".#.", ".#.", ".#.", ".#."}},
    {'U', {"#.#", "#.#", "#.#", "#.#", "###"}}, {'V', {"#.#", "#.#", "#.#", "#.#", ".#."}},
    {'W', {"#.#", "#.#", "###", "###", "#.#"}}, {'X', {"#.#", "#.#", ".#.", "#.#", "#.#"}},
    {'Y', {"#.#", "#.#", ".#.", ".#.", ".#."}}, {'Z', {"###", "..#", ".#.", "#..", "###"}},
    {'-', {"...", "...", "###", "...", "..."}},
};

static const struct glyph unknown = {'?', {"###", "..#", ".##", "...", ".#."}};

static const struct glyph *glyph_for(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].c == c)
            return &font[i];
    return &unknown;
}

static bool lit(const struct glyph *g, int row, int col)
{
    return row >= 0 && row < 5 && g->rows[row][col] == '#';
}

/* Draws code in the big font from y, x; returns the rows used (3 with
 * half blocks, 5 in ASCII). */
static int draw_big(struct portal *p, int y, int x, int w, const char *code)
{
    int rows = p->ascii ? 5 : 3;
    for (int line = 0; line < rows; line++) {
        char buf[SPELL_DEVICE_USER_CODE_MAX * 4 * 3 + 1];
        size_t o = 0;
        for (const char *c = code; *c && o + 4 * 3 < sizeof buf; c++) {
            const struct glyph *g = glyph_for(*c);
            for (int col = 0; col < 3; col++) {
                const char *s;
                if (p->ascii) {
                    s = lit(g, line, col) ? "#" : " ";
                } else {
                    bool top = lit(g, 2 * line, col), bottom = lit(g, 2 * line + 1, col);
                    s = top && bottom ? "█" : top ? "▀" : bottom ? "▄" : " ";
                }
                size_t n = strlen(s);
                memcpy(buf + o, s, n);
                o += n;
            }
            buf[o++] = ' ';
        }
        buf[o] = '\0';
        draw_text(p, y + line, x, w, ROLE_KEY_HINT, buf);
    }
    return rows;
}

static int check(struct portal *p, struct form *f, int i, char *err, size_t errlen)
{
    struct spell_apikey k;
    const char *t = f->f[i].text;
    if (!t[0]) {
        spell_errf(err, errlen, "paste an API key (sk_live_...)");
        return SPELL_EINVAL;
    }
    int rc = spell_apikey_parse(t, &k);
    spell_apikey_wipe(&k);
    if (rc == SPELL_EVERIFY) {
        spell_errf(err, errlen, "the key's check characters do not match: it was mistyped or "
                                "cut short");
        return SPELL_EINVAL;
    }
    if (rc != SPELL_OK) {
        spell_errf(err, errlen, "not an API key: it looks like sk_live_ and 47 letters and "
                                "digits");
        return SPELL_EINVAL;
    }
    return SPELL_OK;
}

void login_device_reset(struct portal *p)
{
    struct login_ui *u = &p->login_ui;
    OPENSSL_cleanse(&u->grant, sizeof u->grant);
    u->dev = DEV_IDLE;
    u->polling = false;
    u->browser = false;
    u->error[0] = '\0';
    u->note[0] = '\0';
}

static void enter(struct portal *p)
{
    struct login_ui *u = &p->login_ui;
    form_init(&u->form, "Or sign in with an API key", check);
    form_add(&u->form, "API key",
             "from `spell-server users add` or a Keys screen; checked here before it is sent",
             "", 128);
    u->form.f[0].secret = true;
    login_device_reset(p);
}

/* Hands a credential to the agent, or checks it for this session. */
static void use_credential(struct portal *p, const char *token)
{
    if (p->agent_state == AGENT_UP) {
        cJSON *params = cJSON_CreateObject();
        if (params && cJSON_AddStringToObject(params, "token", token) &&
            portal_agent_call(p, CALL_LOGIN, "auth.login", params) == SPELL_OK) {
            cJSON_Delete(params);
            return;
        }
        cJSON_Delete(params);
    }
    portal_set_token(p, token, "session");
    p->auth = AUTH_CHECKING;
    portal_request(p, JOB_LOGIN_CHECK, "GET", "/v1/auth/me", NULL, NULL);
}

static void device_start(struct portal *p)
{
    struct login_ui *u = &p->login_ui;
    login_device_reset(p);
    int rc = worker_submit_device(p->worker, JOB_DEVICE_START, p->api_url, NULL);
    if (rc != SPELL_OK) {
        u->dev = DEV_FAILED;
        spell_errf(u->error, sizeof u->error, "Could not queue the request: %s",
                 spell_strerror(rc));
        return;
    }
    u->dev = DEV_STARTING;
    p->dirty = true;
}

void login_device_failed(struct portal *p, const char *msg)
{
    struct login_ui *u = &p->login_ui;
    login_device_reset(p);
    u->dev = DEV_FAILED;
    spell_errf(u->error, sizeof u->error, "%s", msg);
    p->dirty = true;
}

static void started(struct portal *p, struct job_result *r, int64_t now)
{
    struct login_ui *u = &p->login_ui;
    if (r->rc != SPELL_OK) {
        u->dev = DEV_FAILED;
        if (r->rc == SPELL_EHTTP)
            spell_errf(u->error, sizeof u->error,
                     "This server does not offer sign-in with a browser (%s).", r->message);
        else if (r->rc == SPELL_ENET || r->rc == SPELL_ETIMEOUT)
            spell_errf(u->error, sizeof u->error, "Cannot reach %s (%s).", p->api_url,
                     r->message);
        else
            spell_errf(u->error, sizeof u->error, "The server's answer was not usable (%s).",
                     r->message);
        return;
    }
    u->grant = *r->grant;
    u->dev = DEV_WAITING;
    int life = u->grant.expires_in > 0 ? u->grant.expires_in : DEVICE_DEFAULT_LIFETIME_S;
    u->expires_at = now + (int64_t)life * 1000;
    u->poll_at = now + (int64_t)u->grant.interval * 1000;
    const char *page = u->grant.verification_uri_complete[0] ? u->grant.verification_uri_complete
                                                              : u->grant.verification_uri;
    u->browser = spell_device_open_browser(page, NULL) == SPELL_OK;
}

static void polled(struct portal *p, struct job_result *r, int64_t now)
{
    struct login_ui *u = &p->login_ui;
    u->polling = false;
    /* An answer about a grant that was cancelled or replaced. */
    if (u->dev != DEV_WAITING || !r->grant ||
        strcmp(r->grant->device_code, u->grant.device_code) != 0)
        return;
    if (r->rc == SPELL_ENET || r->rc == SPELL_ETIMEOUT) {
        spell_errf(u->note, sizeof u->note, "Cannot reach the server (%s); still trying.",
                 r->message);
        u->poll_at = now + (int64_t)u->grant.interval * 1000;
        return;
    }
    if (r->rc != SPELL_OK || !r->device) {
        login_device_failed(p, r->message);
        return;
    }
    u->note[0] = '\0';
    switch (r->device->state) {
    case SPELL_DEVICE_PENDING:
        break;
    case SPELL_DEVICE_SLOW_DOWN:
        u->grant.interval = r->grant->interval;
        spell_errf(u->note, sizeof u->note, "The server asked for slower polling: every %d s.",
                 u->grant.interval);
        break;
    case SPELL_DEVICE_EXPIRED:
        login_device_reset(p);
        u->dev = DEV_EXPIRED;
        return;
    case SPELL_DEVICE_DENIED:
        login_device_reset(p);
        u->dev = DEV_DENIED;
        return;
    case SPELL_DEVICE_APPROVED:
        OPENSSL_cleanse(&u->grant, sizeof u->grant);
        u->dev = DEV_SIGNING_IN;
        use_credential(p, r->device->access_token);
        return;
    }
    u->poll_at = now + (int64_t)u->grant.interval * 1000;
}

void login_device_result(struct portal *p, struct job_result *r)
{
    int64_t now = portal_now_ms();
    if (p->auth != AUTH_OUT && p->auth != AUTH_CHECKING)
        return;
    if (r->kind == JOB_DEVICE_START) {
        if (p->login_ui.dev == DEV_STARTING)
            started(p, r, now);
        return;
    }
    polled(p, r, now);
}

int64_t login_timer(struct portal *p, int64_t now)
{
    struct login_ui *u = &p->login_ui;
    if (p->auth != AUTH_OUT || (u->dev != DEV_WAITING && u->dev != DEV_STARTING &&
                                u->dev != DEV_SIGNING_IN))
        return 0;
    p->dirty = true;
    if (u->dev != DEV_WAITING)
        return now + SPIN_MS;
    if (now >= u->expires_at && !u->polling) {
        login_device_reset(p);
        u->dev = DEV_EXPIRED;
        return 0;
    }
    if (!u->polling && now >= u->poll_at) {
        int rc = worker_submit_device(p->worker, JOB_DEVICE_POLL, p->api_url, &u->grant);
        if (rc == SPELL_OK)
            u->polling = true;
        else
            u->poll_at = now + (int64_t)u->grant.interval * 1000;
    }
    return now + SPIN_MS;
}

static const char *const spin_utf8[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
static const char *const spin_ascii[] = {"|", "/", "-", "\\"};

static const char *spinner(const struct portal *p)
{
    int64_t t = portal_now_ms() / SPIN_MS;
    return p->ascii ? spin_ascii[t % 4] : spin_utf8[t % 10];
}

/* The device section: rows y .. y + 8. */
static void draw_device(struct portal *p, int y, int x, int w)
{
    struct login_ui *u = &p->login_ui;
    switch (u->dev) {
    case DEV_IDLE:
        draw_text(p, y, x, w, ROLE_NORMAL,
                  "Press Enter (with the key field empty) for a code to approve in a browser,");
        draw_text(p, y + 1, x, w, ROLE_NORMAL,
                  "on this machine or any other, a phone included.");
        break;
    case DEV_STARTING:
        draw_textf(p, y, x, w, ROLE_DIM, "%s Asking the server for a code...", spinner(p));
        break;
    case DEV_WAITING: {
        const struct spell_device_grant *g = &u->grant;
        int n = draw_text(p, y, x, w, ROLE_NORMAL, "Open    ");
        draw_text(p, y, x + n, w - n, ROLE_KEY_HINT, g->verification_uri);
        n = draw_text(p, y + 1, x, w, ROLE_NORMAL, "and enter the code  ");
        draw_text(p, y + 1, x + n, w - n, ROLE_HEADER, g->user_code);
        int rows = draw_big(p, y + 3, x + 2, w - 2, g->user_code);
        int64_t left = (u->expires_at - portal_now_ms()) / 1000;
        if (left < 0)
            left = 0;
        draw_textf(p, y + 3 + rows, x, w, ROLE_NORMAL,
                   "%s Waiting for your approval (expires in %d:%02d, checking every %d s)",
                   spinner(p), (int)(left / 60), (int)(left % 60), g->interval);
        if (u->note[0])
            draw_text(p, y + 4 + rows, x, w, ROLE_STATUS_ERROR, u->note);
        else
            draw_text(p, y + 4 + rows, x, w, ROLE_DIM,
                      u->browser ? "A browser was opened at the page.  Esc cancels."
                                 : "Open the address on any device.  Esc cancels.");
        break;
    }
    case DEV_SIGNING_IN:
        draw_textf(p, y, x, w, ROLE_STATUS_OK, "%s Approved; signing in...", spinner(p));
        break;
    case DEV_EXPIRED:
        draw_text(p, y, x, w, ROLE_STATUS_ERROR, "The code expired before it was approved.");
        draw_text(p, y + 1, x, w, ROLE_NORMAL, "Press Enter for a new code.");
        break;
    case DEV_DENIED:
        draw_text(p, y, x, w, ROLE_STATUS_ERROR, "Sign-in was denied on the web page.");
        draw_text(p, y + 1, x, w, ROLE_NORMAL, "Press Enter to start again.");
        break;
    case DEV_FAILED:
        draw_text(p, y, x, w, ROLE_STATUS_ERROR, u->error);
        draw_text(p, y + 1, x, w, ROLE_NORMAL, "Press Enter to try again, or paste an API key.");
        break;
    }
}

static void draw(struct portal *p, const struct rect *rc)
{
    struct login_ui *u = &p->login_ui;
    int x = rc->x + 2, w = rc->w - 4, y = rc->y + 1;
    if (p->auth == AUTH_WAIT) {
        draw_text(p, y, x, w, ROLE_DIM, "Asking the agent for the credential...");
        return;
    }
    if (u->form.n == 0)
        enter(p);
    draw_text(p, y, x, w, ROLE_NORMAL, "You are not signed in.");
    draw_text(p, y + 2, x, w, ROLE_HEADER, "Sign in with a browser (device code)");
    draw_device(p, y + 3, x, w);
    struct rect fr = {y + 12, x, 6, w};
    form_draw(&u->form, p, &fr);
    draw_text(p, y + 18, x, w, ROLE_DIM,
              p->agent_state == AGENT_UP
                  ? "The agent keeps the credential in your keyring."
                  : "The agent is not running: the credential is used for this session only.");
}

static int key(struct portal *p, int k)
{
    struct login_ui *u = &p->login_ui;
    if (p->auth == AUTH_WAIT)
        return 0;
    if (u->form.n == 0)
        enter(p);
    bool empty = !u->form.f[0].text[0];
    /* q quits only while the field is empty; otherwise it is part of a key. */
    if ((k == 'q' || k == '?') && empty)
        return 0;
    if (k == PK_ESC) {
        if (u->dev == DEV_WAITING || u->dev == DEV_STARTING) {
            login_device_reset(p);
            portal_status(p, false, "Sign-in with a browser cancelled.");
            return PK_HANDLED | PK_REDRAW;
        }
        return 0;
    }
    if ((k == PK_ENTER || k == '\r' || k == (PK_FN | KEY_ENTER)) && empty && !u->form.busy) {
        if (u->dev == DEV_IDLE || u->dev == DEV_EXPIRED || u->dev == DEV_DENIED ||
            u->dev == DEV_FAILED)
            device_start(p);
        return PK_HANDLED | PK_REDRAW;
    }
    bool sub, cancel;
    int r = form_key(&u->form, p, k, &sub, &cancel);
    if (sub) {
        /* A pasted key wins over a browser sign-in in progress. */
        login_device_reset(p);
        u->form.busy = true;
        use_credential(p, u->form.f[0].text);
    }
    return r;
}

const struct screen_ops screen_login = {
    .name = "Login",
    .draw = draw,
    .key = key,
    .enter = enter,
    .hints = "Enter: sign in with a browser, or with the pasted key",
};
