/*
 * Modals: one box over the current screen that takes the keyboard until
 * it closes.  A confirmation names what it is about to do and runs its
 * action on y or Enter; the key modal shows a new API key the one time
 * the server ever sends it, can copy it with OSC 52, and wipes it when it
 * closes.
 */
#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "portal.h"


void modal_open(struct portal *p, enum modal_kind kind, enum modal_action action,
                const char *title, const char *arg)
{
    modal_close(p);
    struct modal *m = &p->modal;
    m->kind = kind;
    m->action = action;
    snprintf(m->title, sizeof m->title, "%s", title);
    snprintf(m->arg, sizeof m->arg, "%s", arg ? arg : "");
    p->dirty = true;
}

void modal_line(struct portal *p, const char *fmt, ...)
{
    struct modal *m = &p->modal;
    if (m->n_lines >= (int)(sizeof m->lines / sizeof m->lines[0]))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->lines[m->n_lines++], sizeof m->lines[0], fmt, ap);
    va_end(ap);
}

void modal_close(struct portal *p)
{
    OPENSSL_cleanse(&p->modal, sizeof p->modal);
    p->modal.kind = MODAL_NONE;
    p->dirty = true;
}

void osc52_copy(const char *text)
{
    size_t n = strlen(text);
    if (n > 4096)
        return;
    unsigned char b64[4 * (4096 + 2) / 3 + 4];
    int len = EVP_EncodeBlock(b64, (const unsigned char *)text, (int)n);
    char seq[sizeof b64 + 16];
    int sl = snprintf(seq, sizeof seq, "\033]52;c;%.*s\a", len, (const char *)b64);
    fflush(stdout);
    if (sl > 0 && write(STDOUT_FILENO, seq, (size_t)sl) < 0) {
        /* The terminal is gone; nothing to report to. */
    }
    OPENSSL_cleanse(b64, sizeof b64);
    OPENSSL_cleanse(seq, sizeof seq);
}

void modal_draw(struct portal *p)
{
    struct modal *m = &p->modal;
    if (m->kind == MODAL_NONE)
        return;
    int w = p->cols - 8;
    if (w > 76)
        w = 76;
    int extra = m->kind == MODAL_KEY ? 4 : 2;
    struct rect rc = {0, 0, m->n_lines + 2 + extra, w};
    rc.y = (p->rows - rc.h) / 2;
    rc.x = (p->cols - rc.w) / 2;
    draw_box(p, &rc, ROLE_MODAL, m->title);
    int y = rc.y + 2;
    for (int i = 0; i < m->n_lines; i++)
        draw_text(p, y++, rc.x + 2, rc.w - 4, ROLE_MODAL, m->lines[i]);
    if (m->kind == MODAL_KEY) {
        y++;
        draw_text(p, y++, rc.x + 2, rc.w - 4, ROLE_MODAL_TITLE, m->secret);
        y++;
    }
    const char *hint = "";
    if (m->kind == MODAL_CONFIRM)
        hint = "y/Enter: yes   n/Esc: no";
    else if (m->kind == MODAL_KEY)
        hint = m->copied ? "Copied with OSC 52.   Enter: close" : "c: copy (OSC 52)   Enter: close";
    else
        hint = "any key: close";
    draw_text(p, rc.y + rc.h - 1, rc.x + 2, rc.w - 4, ROLE_MODAL_TITLE, hint);
}

int modal_key(struct portal *p, int key)
{
    struct modal *m = &p->modal;
    if (key == (PK_FN | KEY_RESIZE) || key == (PK_FN | KEY_MOUSE))
        return 0;
    switch (m->kind) {
    case MODAL_CONFIRM:
        if (key == 'y' || key == 'Y' || key == PK_ENTER || key == '\r' ||
            key == (PK_FN | KEY_ENTER)) {
            enum modal_action a = m->action;
            char arg[sizeof m->arg];
            snprintf(arg, sizeof arg, "%s", m->arg);
            modal_close(p);
            portal_action(p, a, arg);
        } else if (key == 'n' || key == 'N' || key == PK_ESC || key == 'q') {
            modal_close(p);
        }
        break;
    case MODAL_KEY:
        if (key == 'c' || key == 'C') {
            osc52_copy(m->secret);
            m->copied = true;
        } else if (key == PK_ENTER || key == '\r' || key == PK_ESC || key == 'q' ||
                   key == (PK_FN | KEY_ENTER)) {
            modal_close(p);
        }
        break;
    default:
        modal_close(p);
        break;
    }
    return PK_HANDLED | PK_REDRAW;
}
