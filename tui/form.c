/*
 * Forms: labelled text fields, each validated on its own by the screen's
 * check function, as the caster leaves it and again, all together, on
 * Enter.  A field's error shows under it; the form's own error line
 * carries the server's words when it refuses what passed here.
 */
#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "spell/errors.h"

#include "portal.h"

void form_init(struct form *f, const char *title, field_check_fn *check)
{
    memset(f, 0, sizeof *f);
    snprintf(f->title, sizeof f->title, "%s", title);
    f->check = check;
}

int form_add(struct form *f, const char *label, const char *hint, const char *text,
             size_t max_len)
{
    if (f->n >= FORM_MAX_FIELDS)
        return SPELL_ETOOBIG;
    struct form_field *fl = &f->f[f->n];
    memset(fl, 0, sizeof *fl);
    snprintf(fl->label, sizeof fl->label, "%s", label);
    snprintf(fl->hint, sizeof fl->hint, "%s", hint ? hint : "");
    fl->max_len = max_len && max_len < FORM_TEXT_MAX ? max_len : FORM_TEXT_MAX - 1;
    snprintf(fl->text, fl->max_len + 1, "%s", text ? text : "");
    return f->n++;
}

static bool check_one(struct form *f, struct portal *p, int i)
{
    f->f[i].error[0] = '\0';
    if (!f->check)
        return true;
    return f->check(p, f, i, f->f[i].error, sizeof f->f[i].error) == SPELL_OK;
}

bool form_validate(struct form *f, struct portal *p)
{
    bool ok = true;
    for (int i = 0; i < f->n; i++)
        if (!check_one(f, p, i))
            ok = false;
    return ok;
}

void form_draw(struct form *f, struct portal *p, const struct rect *rc)
{
    int y = rc->y;
    int label_w = 0;
    for (int i = 0; i < f->n; i++) {
        int w = text_width(f->f[i].label);
        if (w > label_w)
            label_w = w;
    }
    label_w += 2;
    if (label_w > rc->w / 3)
        label_w = rc->w / 3;
    int field_w = rc->w - label_w - 2;
    if (field_w > 60)
        field_w = 60;
    if (f->title[0]) {
        draw_text(p, y, rc->x, rc->w, ROLE_HEADER, f->title);
        y += 2;
    }
    for (int i = 0; i < f->n && y < rc->y + rc->h; i++) {
        struct form_field *fl = &f->f[i];
        bool focus = i == f->focus;
        draw_textf(p, y, rc->x, label_w, focus ? ROLE_KEY_HINT : ROLE_NORMAL, "%s:", fl->label);
        draw_fill(p, y, rc->x + label_w, field_w, focus ? ROLE_FIELD_FOCUS : ROLE_FIELD);
        /* A secret shows its public part ("sk_live_<prefix>_") only. */
        char masked[FORM_TEXT_MAX];
        const char *shown = fl->text;
        if (fl->secret) {
            size_t n = strlen(fl->text), keep = n < 17 ? n : 17;
            memcpy(masked, fl->text, keep);
            memset(masked + keep, '*', n - keep);
            masked[n] = '\0';
            shown = masked;
        }
        /* Show the end of a long text, where the cursor is. */
        while (text_width(shown) > field_w - 1 && *shown) {
            shown++;
            while ((*shown & 0xc0) == 0x80)
                shown++;
        }
        int w = draw_text(p, y, rc->x + label_w, field_w, focus ? ROLE_FIELD_FOCUS : ROLE_FIELD,
                          shown);
        if (focus && w < field_w)
            draw_text(p, y, rc->x + label_w + w, 1, ROLE_FIELD_FOCUS, "_");
        y++;
        if (fl->error[0]) {
            draw_textf(p, y, rc->x + label_w, rc->w - label_w, ROLE_FIELD_ERROR, "! %s",
                       fl->error);
            y++;
        } else if (fl->hint[0]) {
            draw_text(p, y, rc->x + label_w, rc->w - label_w, ROLE_DIM, fl->hint);
            y++;
        }
        y++;
    }
    if (f->error[0] && y < rc->y + rc->h) {
        draw_textf(p, y, rc->x, rc->w, ROLE_FIELD_ERROR, "%s", f->error);
        y++;
    }
    if (y < rc->y + rc->h)
        draw_text(p, rc->y + rc->h - 1, rc->x, rc->w, ROLE_DIM,
                  f->busy ? "Sending..."
                          : "Tab/Up/Down move   Enter submit   Ctrl-U clear field   Esc cancel");
}

/* Appends the code point as UTF-8 if it fits. */
static void append(struct form_field *fl, int cp)
{
    char enc[4];
    size_t n;
    if (cp < 0x80) {
        enc[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        enc[0] = (char)(0xc0 | (cp >> 6));
        enc[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        if (cp >= 0xd800 && cp <= 0xdfff)
            return;
        enc[0] = (char)(0xe0 | (cp >> 12));
        enc[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        enc[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else if (cp <= 0x10ffff) {
        enc[0] = (char)(0xf0 | (cp >> 18));
        enc[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        enc[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        enc[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    } else {
        return;
    }
    size_t len = strlen(fl->text);
    if (len + n > fl->max_len)
        return;
    memcpy(fl->text + len, enc, n);
    fl->text[len + n] = '\0';
}

int form_key(struct form *f, struct portal *p, int key, bool *submit, bool *cancel)
{
    *submit = false;
    *cancel = false;
    if (f->n == 0)
        return 0;
    struct form_field *fl = &f->f[f->focus];
    switch (key) {
    case PK_ESC:
        *cancel = true;
        return PK_HANDLED | PK_REDRAW;
    case '\t':
    case PK_FN | KEY_DOWN:
        check_one(f, p, f->focus);
        f->focus = (f->focus + 1) % f->n;
        return PK_HANDLED | PK_REDRAW;
    case PK_FN | KEY_BTAB:
    case PK_FN | KEY_UP:
        check_one(f, p, f->focus);
        f->focus = (f->focus + f->n - 1) % f->n;
        return PK_HANDLED | PK_REDRAW;
    case PK_ENTER:
    case '\r':
    case PK_FN | KEY_ENTER:
        if (f->busy)
            return PK_HANDLED;
        f->error[0] = '\0';
        if (form_validate(f, p)) {
            *submit = true;
        } else {
            for (int i = 0; i < f->n; i++)
                if (f->f[i].error[0]) {
                    f->focus = i;
                    break;
                }
        }
        return PK_HANDLED | PK_REDRAW;
    case PK_FN | KEY_BACKSPACE:
    case 127:
    case 8: {
        size_t len = strlen(fl->text);
        while (len > 0) {
            len--;
            if ((fl->text[len] & 0xc0) != 0x80)
                break;
        }
        fl->text[len] = '\0';
        fl->error[0] = '\0';
        return PK_HANDLED | PK_REDRAW;
    }
    case PK_CTRL('u'):
        fl->text[0] = '\0';
        fl->error[0] = '\0';
        return PK_HANDLED | PK_REDRAW;
    default:
        break;
    }
    if (key >= 0x20 && key != 0x7f && !(key & PK_FN) && !(key >= 0x80 && key <= 0x9f)) {
        append(fl, key);
        fl->error[0] = '\0';
        return PK_HANDLED | PK_REDRAW;
    }
    /* Everything else belongs to the form while it is open. */
    return PK_HANDLED;
}
