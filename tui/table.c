/*
 * A scrolling, selectable list with a `/` filter.  The screen keeps its
 * rows; the table keeps only which of them pass the filter, which one is
 * selected, and which is at the top.  Rows are drawn by the screen's
 * draw_row, one line each.
 */
#include <ctype.h>
#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "portal.h"

#define TABLE_CAP ((int)(sizeof ((struct table *)0)->visible / sizeof(int)))

void table_reset(struct table *t)
{
    memset(t, 0, sizeof *t);
    t->selected = -1;
}

static bool matches(const char *text, const char *filter)
{
    if (!*filter)
        return true;
    size_t fl = strlen(filter);
    for (const char *s = text; *s; s++) {
        size_t i = 0;
        while (i < fl && s[i] &&
               tolower((unsigned char)s[i]) == tolower((unsigned char)filter[i]))
            i++;
        if (i == fl)
            return true;
    }
    return false;
}

void table_set_rows(struct table *t, struct portal *p, const struct table_ops *ops, int n_rows)
{
    int cur = table_current(t);
    if (n_rows > TABLE_CAP)
        n_rows = TABLE_CAP;
    t->n_rows = n_rows;
    t->n_visible = 0;
    int sel = -1;
    for (int i = 0; i < n_rows; i++) {
        char buf[512];
        const char *text = ops->row_text(p, i, buf, sizeof buf);
        if (!matches(text ? text : "", t->filter))
            continue;
        if (i == cur)
            sel = t->n_visible;
        t->visible[t->n_visible++] = i;
    }
    if (sel < 0)
        sel = t->n_visible ? (t->selected >= 0 && t->selected < t->n_visible ? t->selected : 0)
                           : -1;
    t->selected = sel;
}

int table_current(const struct table *t)
{
    if (t->selected < 0 || t->selected >= t->n_visible)
        return -1;
    return t->visible[t->selected];
}

void table_draw(struct table *t, struct portal *p, const struct table_ops *ops,
                const struct rect *rc, const char *header, const char *empty)
{
    int y = rc->y, h = rc->h;
    if (header) {
        draw_fill(p, y, rc->x, rc->w, ROLE_HEADER);
        draw_text(p, y, rc->x, rc->w, ROLE_HEADER, header);
        y++;
        h--;
    }
    if (t->filtering || t->filter[0]) {
        h--;
        draw_textf(p, rc->y + rc->h - 1, rc->x, rc->w, t->filtering ? ROLE_FIELD_FOCUS : ROLE_DIM,
                   "/%s%s", t->filter, t->filtering ? "_" : "  (Esc clears the filter)");
    }
    if (h <= 0)
        return;
    if (t->n_visible == 0) {
        draw_text(p, y + 1, rc->x + 2, rc->w - 2, ROLE_DIM,
                  t->filter[0] ? "Nothing matches the filter." : empty);
        return;
    }
    if (t->selected < t->top)
        t->top = t->selected;
    if (t->selected >= t->top + h)
        t->top = t->selected - h + 1;
    if (t->top > t->n_visible - h)
        t->top = t->n_visible - h;
    if (t->top < 0)
        t->top = 0;
    for (int i = 0; i < h && t->top + i < t->n_visible; i++) {
        bool sel = t->top + i == t->selected;
        if (sel)
            draw_fill(p, y + i, rc->x, rc->w, ROLE_SELECTED);
        ops->draw_row(p, t->visible[t->top + i], y + i, rc->x, rc->w, sel);
    }
}

int table_key(struct table *t, struct portal *p, const struct table_ops *ops, int key, int page)
{
    if (t->filtering) {
        size_t n = strlen(t->filter);
        if (key == PK_ESC) {
            t->filtering = false;
            t->filter[0] = '\0';
        } else if (key == PK_ENTER || key == '\r' || key == (PK_FN | KEY_ENTER)) {
            t->filtering = false;
        } else if (key == (PK_FN | KEY_BACKSPACE) || key == 127 || key == 8) {
            if (n)
                t->filter[n - 1] = '\0';
        } else if (key >= 0x20 && key < 0x7f && n + 1 < sizeof t->filter) {
            t->filter[n] = (char)key;
            t->filter[n + 1] = '\0';
        } else {
            return PK_HANDLED;
        }
        table_set_rows(t, p, ops, t->n_rows);
        return PK_HANDLED | PK_REDRAW;
    }
    if (page < 1)
        page = 1;
    int sel = t->selected;
    switch (key) {
    case 'j':
    case PK_FN | KEY_DOWN:
        sel++;
        break;
    case 'k':
    case PK_FN | KEY_UP:
        sel--;
        break;
    case PK_FN | KEY_NPAGE:
    case PK_CTRL('f'):
        sel += page;
        break;
    case PK_FN | KEY_PPAGE:
    case PK_CTRL('b'):
        sel -= page;
        break;
    case 'g':
    case PK_FN | KEY_HOME:
        sel = 0;
        break;
    case 'G':
    case PK_FN | KEY_END:
        sel = t->n_visible - 1;
        break;
    case '/':
        t->filtering = true;
        return PK_HANDLED | PK_REDRAW;
    case PK_ESC:
        if (!t->filter[0])
            return 0;
        t->filter[0] = '\0';
        table_set_rows(t, p, ops, t->n_rows);
        return PK_HANDLED | PK_REDRAW;
    default:
        return 0;
    }
    if (sel >= t->n_visible)
        sel = t->n_visible - 1;
    if (sel < 0)
        sel = t->n_visible ? 0 : -1;
    t->selected = sel;
    return PK_HANDLED | PK_REDRAW;
}
