/*
 * API keys: the caller's live keys (name, prefix, created, last used),
 * a form to create one, whose full key the server sends this one time
 * (shown in a modal that can copy it with OSC 52), and revocation after a
 * confirmation that names the key.
 */
#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/utf8.h"

#include "portal.h"

/* The server takes names of 1..64 printable characters. */
#define KEY_NAME_MAX 64

static const char *row_text(struct portal *p, int row, char *buf, size_t buflen)
{
    const struct spell_api_key *k = &p->acct.keys[row];
    snprintf(buf, buflen, "%s %s", k->name ? k->name : "", k->prefix);
    return buf;
}

static void draw_row(struct portal *p, int row, int y, int x, int w, bool selected)
{
    const struct spell_api_key *k = &p->acct.keys[row];
    char created[32], used[32];
    enum role r = selected ? ROLE_SELECTED : ROLE_NORMAL;
    fmt_time(k->created_at, created, sizeof created);
    fmt_time(k->last_used_at, used, sizeof used);
    draw_text(p, y, x + 1, 26, r, k->name ? k->name : "");
    draw_text(p, y, x + 28, 10, r, k->prefix);
    draw_text(p, y, x + 39, 18, r, created);
    draw_text(p, y, x + 58, w - 58, r, used);
}

static const struct table_ops ops = {row_text, draw_row};

static int check(struct portal *p, struct form *f, int i, char *err, size_t errlen)
{
    const char *t = f->f[i].text;
    size_t n = strlen(t);
    if (n == 0) {
        spell_errf(err, errlen, "a name is required");
        return SPELL_EINVAL;
    }
    if (spell_utf8_count(t, n) > KEY_NAME_MAX) {
        spell_errf(err, errlen, "at most %d characters (this one has %zu)", KEY_NAME_MAX,
                   spell_utf8_count(t, n));
        return SPELL_EINVAL;
    }
    for (size_t j = 0; j < n; j++)
        if ((unsigned char)t[j] < 0x20 || t[j] == 0x7f) {
            spell_errf(err, errlen, "only printable characters");
            return SPELL_EINVAL;
        }
    return SPELL_OK;
}

static void draw(struct portal *p, const struct rect *rc)
{
    struct keys_ui *u = &p->keys_ui;
    struct rect r = {rc->y + 1, rc->x + 1, rc->h - 1, rc->w - 2};
    if (u->creating) {
        struct rect fr = {rc->y + 1, rc->x + 2, rc->h - 2, rc->w - 4};
        form_draw(&u->form, p, &fr);
        return;
    }
    if (!p->acct.has_keys) {
        draw_text(p, r.y, r.x + 1, r.w, ROLE_DIM, "loading...");
        return;
    }
    table_set_rows(&u->list, p, &ops, p->acct.n_keys);
    table_draw(&u->list, p, &ops, &r,
               " NAME                       PREFIX     CREATED            LAST USED",
               "No API keys. Press n to create one.");
}

static int key(struct portal *p, int k)
{
    struct keys_ui *u = &p->keys_ui;
    if (u->creating) {
        bool sub, cancel;
        int r = form_key(&u->form, p, k, &sub, &cancel);
        if (cancel)
            u->creating = false;
        if (sub) {
            cJSON *o = cJSON_CreateObject();
            char *body = NULL;
            if (o && cJSON_AddStringToObject(o, "name", u->form.f[0].text))
                body = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            if (body) {
                u->form.busy = true;
                portal_request(p, JOB_KEY_CREATE, "POST", "/v1/keys", body, NULL);
                cJSON_free(body);
            }
        }
        return r;
    }
    if (u->list.filtering)
        return table_key(&u->list, p, &ops, k, p->content.h - 3);
    int cur = table_current(&u->list);
    switch (k) {
    case 'n':
    case 'c':
        form_init(&u->form, "Create an API key", check);
        form_add(&u->form, "Name", "1 to 64 characters, e.g. the machine it is for", "", 256);
        u->creating = true;
        return PK_HANDLED | PK_REDRAW;
    case 'd':
    case 'x':
    case PK_FN | KEY_DC:
        if (cur < 0 || cur >= p->acct.n_keys)
            return PK_HANDLED;
        {
            const struct spell_api_key *key = &p->acct.keys[cur];
            modal_open(p, MODAL_CONFIRM, ACT_REVOKE_KEY, "Revoke API key", key->prefix);
            modal_line(p, "Revoke the key \"%s\" (prefix %s)?", key->name ? key->name : "",
                       key->prefix);
            modal_line(p, "Anything using it stops working at once. This cannot be undone.");
        }
        return PK_HANDLED | PK_REDRAW;
    default:
        return table_key(&u->list, p, &ops, k, p->content.h - 3);
    }
}

static int mouse(struct portal *p, int y, int x)
{
    struct keys_ui *u = &p->keys_ui;
    int row = y - (p->content.y + 2) + u->list.top;
    if (!u->creating && row >= 0 && row < u->list.n_visible)
        u->list.selected = row;
    return PK_HANDLED | PK_REDRAW;
}

static void enter(struct portal *p)
{
    portal_request(p, JOB_KEYS, "GET", "/v1/keys", NULL, NULL);
}

const struct screen_ops screen_keys = {
    .name = "API keys",
    .draw = draw,
    .key = key,
    .enter = enter,
    .mouse = mouse,
    .hints = "n new  d revoke  / filter",
};
