/*
 * Login, shown while signed out: paste an API key, checked offline with
 * spell_apikey_parse() (shape and check characters, so a key cut short or
 * mistyped is caught before any request), then handed to the agent's
 * auth.login, which checks it with the server and keeps it in the
 * keyring.  Without an agent the key is checked with GET /v1/auth/me and
 * used for this session only.  The device flow is not offered by this
 * server yet, and the screen says so.
 */
#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "spell/crypto.h"
#include "spell/errors.h"

#include "portal.h"

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

static void enter(struct portal *p)
{
    struct login_ui *u = &p->login_ui;
    form_init(&u->form, "Sign in with an API key", check);
    form_add(&u->form, "API key", "paste it; it is checked here before it is sent", "", 128);
    u->form.f[0].secret = true;
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
    draw_text(p, y + 1, x, w, ROLE_DIM,
              "Make a key with `spell-server users add LOGIN`, or on the Keys screen of");
    draw_text(p, y + 2, x, w, ROLE_DIM, "another signed-in portal, then paste it below.");
    struct rect fr = {y + 4, x, 9, w};
    form_draw(&u->form, p, &fr);
    y += 14;
    draw_text(p, y, x, w, ROLE_HEADER, "Sign in with a browser (device code)");
    draw_text(p, y + 1, x, w, ROLE_DIM, "Not offered by this server yet.");
    y += 3;
    if (p->agent_state == AGENT_UP)
        draw_text(p, y, x, w, ROLE_DIM, "The agent keeps the key in your keyring.");
    else
        draw_text(p, y, x, w, ROLE_DIM,
                  "The agent is not running: the key is used for this session only.");
}

static int key(struct portal *p, int k)
{
    struct login_ui *u = &p->login_ui;
    if (p->auth == AUTH_WAIT)
        return 0;
    if (u->form.n == 0)
        enter(p);
    /* q quits only while the field is empty; otherwise it is part of a key. */
    if ((k == 'q' || k == '?') && !u->form.f[0].text[0])
        return 0;
    if (k == PK_ESC)
        return 0;
    bool sub, cancel;
    int r = form_key(&u->form, p, k, &sub, &cancel);
    if (sub) {
        const char *key = u->form.f[0].text;
        u->form.busy = true;
        if (p->agent_state == AGENT_UP) {
            cJSON *params = cJSON_CreateObject();
            if (params && cJSON_AddStringToObject(params, "token", key) &&
                portal_agent_call(p, CALL_LOGIN, "auth.login", params) == SPELL_OK) {
                cJSON_Delete(params);
                return r;
            }
            cJSON_Delete(params);
        }
        portal_set_token(p, key, "session");
        p->auth = AUTH_CHECKING;
        portal_request(p, JOB_LOGIN_CHECK, "GET", "/v1/auth/me", NULL, NULL);
    }
    return r;
}

const struct screen_ops screen_login = {
    .name = "Login",
    .draw = draw,
    .key = key,
    .enter = enter,
    .hints = "paste a key, Enter",
};
