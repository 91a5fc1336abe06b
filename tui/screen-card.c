/*
 * The card view, opened over the dashboard with `c` (status) or `b`
 * (register a card).  Registration asks the server for an address
 * (POST /v1/billing/setup: a Stripe Checkout page in setup mode), shows
 * it with a QR code of it drawn by qr.c so that a phone can open it, then
 * asks GET /v1/billing/payment-method every CARD_POLL_MS from the loop's
 * timer (card_timer) until a card other than the one on file when it
 * began shows up: then it says so and returns to the dashboard.  Esc
 * stops waiting at any time.  A server without a billing provider answers
 * the setup with 404, and the view says that it offers no registration.
 *
 * Data flow: keys -> card_key -> portal_request (worker) -> account.c ->
 * card_setup_result / card_status_changed -> struct card_ui -> card_draw.
 */
#include <curses.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "spell/device.h"
#include "spell/errors.h"

#include "portal.h"

/* How often the card status is asked while waiting for a new card. */
#define CARD_POLL_MS 3000
/* The spinner turns this often while waiting. */
#define SPIN_MS 100
/* The address is wrapped over at most this many lines. */
#define URL_LINES 8
/* The text column beside a QR code keeps at least this many columns. */
#define TEXT_MIN_W 36

static const char *const spin_utf8[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
static const char *const spin_ascii[] = {"|", "/", "-", "\\"};

static const char *spinner(const struct portal *p)
{
    int64_t t = portal_now_ms() / SPIN_MS;
    return p->ascii ? spin_ascii[t % 4] : spin_utf8[t % 10];
}

/* What identifies the card on file, to tell a new one from it. */
static void card_signature(const struct portal *p, char *out, size_t outlen)
{
    const struct account *a = &p->acct;
    if (a->card != CARD_OK && a->card != CARD_FAILED) {
        snprintf(out, outlen, "none");
        return;
    }
    snprintf(out, outlen, "%d %s %s %02d/%04d", (int)a->card, a->pm.brand ? a->pm.brand : "",
             a->pm.last4, a->pm.exp_month, a->pm.exp_year);
}

void card_draw_status(struct portal *p, int y, int x, int w)
{
    const struct account *a = &p->acct;
    switch (a->card) {
    case CARD_UNKNOWN:
        draw_text(p, y, x, w, ROLE_DIM, "loading...");
        break;
    case CARD_NONE:
        draw_text(p, y, x, w, ROLE_NORMAL, "no card on file");
        draw_text(p, y + 1, x, w, ROLE_DIM,
                  "Press b to add one (an address to open in a browser, or a QR code).");
        break;
    case CARD_OK:
        draw_textf(p, y, x, w, ROLE_STATUS_OK, "%s ending %s, expires %02d/%04d",
                   a->pm.brand ? a->pm.brand : "card", a->pm.last4, a->pm.exp_month,
                   a->pm.exp_year);
        draw_text(p, y + 1, x, w, ROLE_DIM, "Press b to register another card.");
        break;
    case CARD_FAILED:
        draw_textf(p, y, x, w, ROLE_STATUS_ERROR,
                   "payment failed: %s ending %s, expires %02d/%04d",
                   a->pm.brand ? a->pm.brand : "card", a->pm.last4, a->pm.exp_month,
                   a->pm.exp_year);
        draw_text(p, y + 1, x, w, ROLE_DIM,
                  "Paid spells are refused until it is paid. Press b to register another card.");
        break;
    case CARD_ERROR:
        draw_text(p, y, x, w, ROLE_STATUS_ERROR, "card status unavailable (r retries)");
        break;
    }
}

static void qr_drop(struct card_ui *c)
{
    qr_text_free(&c->qr);
    c->qr_rc = SPELL_EINVAL;
}

void card_open(struct portal *p, bool start)
{
    struct card_ui *c = &p->card_ui;
    if (c->phase == CARDV_CLOSED)
        c->phase = CARDV_STATUS;
    if (!start || c->phase == CARDV_STARTING || c->phase == CARDV_WAITING) {
        portal_request(p, JOB_CARD, "GET", "/v1/billing/payment-method", NULL, NULL);
        p->dirty = true;
        return;
    }
    card_signature(p, c->before, sizeof c->before);
    c->error[0] = '\0';
    c->phase = CARDV_STARTING;
    portal_request(p, JOB_BILLING_SETUP, "POST", "/v1/billing/setup", "{}", NULL);
    p->dirty = true;
}

void card_close(struct portal *p)
{
    struct card_ui *c = &p->card_ui;
    qr_drop(c);
    c->phase = CARDV_CLOSED;
    c->url[0] = '\0';
    c->expires[0] = '\0';
    c->polling = false;
    c->error[0] = '\0';
    p->dirty = true;
}

/* An address fit to show, encode and open: http(s), printable ASCII. */
static bool usable_url(const char *s)
{
    if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
        return false;
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
            return false;
    return n <= CARD_URL_MAX;
}

void card_setup_result(struct portal *p, struct job_result *r)
{
    struct card_ui *c = &p->card_ui;
    /* Esc while it was in flight: nobody is waiting for the address. */
    if (c->phase != CARDV_STARTING)
        return;
    if (r->rc == SPELL_OK && r->status == 404) {
        c->phase = CARDV_UNOFFERED;
        return;
    }
    if (r->rc != SPELL_OK || r->status < 200 || r->status >= 300) {
        c->phase = CARDV_STATUS;
        spell_errf(c->error, sizeof c->error, "%s",
                   r->message[0] ? r->message : spell_api_error_sentence(r->code, r->status));
        return;
    }
    c->error[0] = '\0';
    const cJSON *u = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "url") : NULL;
    const cJSON *e = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "expires_at") : NULL;
    if (!cJSON_IsString(u) || !usable_url(u->valuestring)) {
        c->phase = CARDV_STATUS;
        portal_status(p, true, "Card registration: the server's answer held no usable address.");
        return;
    }
    snprintf(c->url, sizeof c->url, "%s", u->valuestring);
    c->expires[0] = '\0';
    if (cJSON_IsString(e))
        text_clean(e->valuestring, c->expires, sizeof c->expires, true);
    else if (cJSON_IsNumber(e) && e->valuedouble > 0 && e->valuedouble < 1e13) {
        /* Unix seconds (Stripe's own unit) or milliseconds. */
        int64_t ms = (int64_t)e->valuedouble;
        if (ms < 100000000000)
            ms *= 1000;
        char t[32];
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        if (gmtime_r(&secs, &tm) && strftime(t, sizeof t, "%Y-%m-%d %H:%M UTC", &tm) > 0)
            snprintf(c->expires, sizeof c->expires, "%s", t);
    }
    qr_drop(c);
    c->qr_rc = qr_render(c->url, p->ascii, &c->qr);
    c->phase = CARDV_WAITING;
    c->poll_at = portal_now_ms() + CARD_POLL_MS;
    c->polling = false;
}

void card_status_changed(struct portal *p)
{
    struct card_ui *c = &p->card_ui;
    if (c->phase != CARDV_WAITING || p->acct.card != CARD_OK)
        return;
    char now[sizeof c->before];
    card_signature(p, now, sizeof now);
    if (strcmp(now, c->before) == 0)
        return;
    const struct account *a = &p->acct;
    portal_status(p, false, "Card registered: %s ending %s, expires %02d/%04d.",
                  a->pm.brand ? a->pm.brand : "card", a->pm.last4, a->pm.exp_month,
                  a->pm.exp_year);
    card_close(p);
    /* A first card may bring a default budget with it. */
    portal_request(p, JOB_BUDGET, "GET", "/v1/budgets", NULL, NULL);
    account_refresh_usage(p);
}

int64_t card_timer(struct portal *p, int64_t now)
{
    struct card_ui *c = &p->card_ui;
    if (p->auth != AUTH_IN || (c->phase != CARDV_WAITING && c->phase != CARDV_STARTING))
        return 0;
    if (p->tabs[p->tab] == &screen_dashboard)
        p->dirty = true;
    if (c->phase == CARDV_WAITING && !c->polling && now >= c->poll_at) {
        portal_request(p, JOB_CARD, "GET", "/v1/billing/payment-method", NULL, NULL);
        c->polling = true;
        c->poll_at = now + CARD_POLL_MS;
    }
    return now + SPIN_MS;
}

/* The address over up to URL_LINES lines of w columns; returns the rows. */
static int draw_url(struct portal *p, int y, int x, int w, const char *url)
{
    size_t n = strlen(url), per = w > 0 ? (size_t)w : 1;
    int rows = 0;
    for (size_t off = 0; off < n && rows < URL_LINES; off += per, rows++) {
        char line[CARD_URL_MAX + 1];
        size_t k = n - off < per ? n - off : per;
        memcpy(line, url + off, k);
        line[k] = '\0';
        if (rows == URL_LINES - 1 && off + k < n && k > 3)
            memcpy(line + k - 3, "...", 3);
        draw_text(p, y + rows, x, w, ROLE_KEY_HINT, line);
    }
    return rows;
}

static void draw_waiting(struct portal *p, const struct rect *rc)
{
    struct card_ui *c = &p->card_ui;
    int x = rc->x + 2, w = rc->w - 4, top = rc->y + 1;
    const struct qr_text *q = &c->qr;
    bool have = c->qr_rc == SPELL_OK && q->n_lines > 0;
    /* Beside the text when there is room, else under it, else not at all. */
    bool beside = have && q->cols + 2 + TEXT_MIN_W <= w && q->n_lines <= rc->h;
    int tw = beside ? w - q->cols - 2 : w;

    int y = top;
    draw_text(p, y++, x, tw, ROLE_HEADER, "Register a card");
    draw_text(p, y++, x, tw, ROLE_NORMAL, "Open this address in a browser,");
    draw_text(p, y++, x, tw, ROLE_NORMAL, "or scan the QR code with a phone:");
    y++;
    y += draw_url(p, y, x, tw, c->url) + 1;
    draw_textf(p, y++, x, tw, ROLE_NORMAL, "%s Waiting for the card...", spinner(p));
    draw_text(p, y++, x, tw, ROLE_DIM, "The status is checked every 3 s.");
    if (c->expires[0])
        draw_textf(p, y++, x, tw, ROLE_DIM, "The address expires %s.", c->expires);
    y++;
    draw_text(p, y++, x, tw, ROLE_DIM, "c copy the address   o open it here");
    draw_text(p, y++, x, tw, ROLE_DIM, "Esc stop waiting");
    y++;

    if (beside) {
        int qx = rc->x + rc->w - 2 - q->cols;
        int qy = rc->y + (rc->h - q->n_lines) / 2;
        for (int i = 0; i < q->n_lines; i++)
            draw_text(p, qy + i, qx, q->cols, ROLE_QR, q->lines[i]);
        return;
    }
    if (have && q->cols <= w && y + q->n_lines <= rc->y + rc->h) {
        for (int i = 0; i < q->n_lines; i++)
            draw_text(p, y + i, x, q->cols, ROLE_QR, q->lines[i]);
        return;
    }
    if (!have)
        draw_text(p, y, x, w, ROLE_STATUS_ERROR,
                  "The address is too long for a QR code: open the URL above.");
    else
        draw_textf(p, y, x, w, ROLE_STATUS_ERROR,
                   "Terminal too small for the QR code (it needs %dx%d), open the URL above.",
                   q->cols + 4, q->n_lines + 3);
}

void card_draw(struct portal *p, const struct rect *rc)
{
    struct card_ui *c = &p->card_ui;
    int x = rc->x + 2, w = rc->w - 4, y = rc->y + 1;
    switch (c->phase) {
    case CARDV_CLOSED:
        return;
    case CARDV_WAITING:
        draw_waiting(p, rc);
        return;
    case CARDV_STATUS:
    case CARDV_STARTING:
    case CARDV_UNOFFERED:
        break;
    }
    draw_text(p, y, x, w, ROLE_HEADER, "Card");
    card_draw_status(p, y + 1, x, w);
    y += 4;
    if (c->phase == CARDV_STARTING) {
        draw_textf(p, y, x, w, ROLE_DIM, "%s Asking the server for a registration address...",
                   spinner(p));
    } else if (c->phase == CARDV_UNOFFERED) {
        draw_text(p, y, x, w, ROLE_NORMAL,
                  "This server does not offer card registration: it runs without a billing");
        draw_text(p, y + 1, x, w, ROLE_NORMAL,
                  "provider, and your own budget limits govern your casts.");
    } else if (c->error[0]) {
        draw_text(p, y, x, w, ROLE_STATUS_ERROR, "The server refused to start a registration:");
        draw_text(p, y + 1, x, w, ROLE_STATUS_ERROR, c->error);
    } else {
        draw_text(p, y, x, w, ROLE_NORMAL,
                  "Cards are registered with the payment provider, never typed in here:");
        draw_text(p, y + 1, x, w, ROLE_NORMAL,
                  "b gives an address to open in a browser, and a QR code of it for a phone.");
    }
    draw_text(p, y + 3, x, w, ROLE_DIM, "b register a card   Esc back to the dashboard");
}

int card_key(struct portal *p, int k)
{
    struct card_ui *c = &p->card_ui;
    switch (k) {
    case PK_ESC:
        if (c->phase == CARDV_WAITING || c->phase == CARDV_STARTING)
            portal_status(p, false, "Stopped waiting for the card; c shows its status.");
        card_close(p);
        return PK_HANDLED | PK_REDRAW;
    case 'b':
        card_open(p, true);
        return PK_HANDLED | PK_REDRAW;
    case 'c':
        if (c->phase == CARDV_WAITING) {
            osc52_copy(c->url);
            portal_status(p, false, "The address was copied to the clipboard.");
        } else {
            card_open(p, false);
        }
        return PK_HANDLED | PK_REDRAW;
    case 'o':
        if (c->phase == CARDV_WAITING) {
            if (spell_device_open_browser(c->url, NULL) == SPELL_OK)
                portal_status(p, false, "A browser was opened at the address.");
            else
                portal_status(p, true, "No browser here: open the address on another device.");
        }
        return PK_HANDLED | PK_REDRAW;
    default:
        return 0;
    }
}
