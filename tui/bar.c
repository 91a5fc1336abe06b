/*
 * Horizontal bars: a value against a maximum, w columns wide, in eighths
 * of a column with the UTF-8 block characters (or whole '#' columns in
 * ASCII).  The fill colour is a role chosen by the ratio, so a spend bar
 * turns from BAR_OK to BAR_WARN above 70 % and BAR_CRIT above 90 %.
 */
#include <curses.h>

#include "portal.h"

static const char *const eighths[8] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};

enum role bar_role(int64_t value, int64_t max)
{
    if (max <= 0)
        return value > 0 ? ROLE_BAR_CRIT : ROLE_BAR_OK;
    /* value * 10 > max * 9 avoids floating point and rounding. */
    if (value * 10 > max * 9)
        return ROLE_BAR_CRIT;
    if (value * 10 > max * 7)
        return ROLE_BAR_WARN;
    return ROLE_BAR_OK;
}

void bar_draw(struct portal *p, int y, int x, int w, int64_t value, int64_t max, int64_t mark,
              enum role fixed)
{
    if (w <= 0 || y < 0 || y >= p->rows)
        return;
    if (value < 0)
        value = 0;
    int64_t units = 0;      /* eighths of a column */
    if (max > 0)
        units = value >= max ? (int64_t)w * 8 : value * w * 8 / max;
    else if (value > 0)
        units = (int64_t)w * 8;
    enum role fill = fixed != ROLE_NORMAL ? fixed : bar_role(value, max);
    int mark_col = -1;
    if (max > 0 && mark >= 0 && mark <= max)
        mark_col = (int)(mark * (w - 1) / max);

    for (int i = 0; i < w && x + i < p->cols; i++) {
        int64_t cell = units - (int64_t)i * 8;   /* eighths in this column */
        if (i == mark_col) {
            attrset(theme_attr(&p->theme, ROLE_SOFT_MARK));
            mvaddstr(y, x + i, p->ascii ? "|" : "┃");
            continue;
        }
        if (cell >= 8) {
            attrset(theme_attr(&p->theme, fill));
            mvaddstr(y, x + i, p->ascii ? "#" : "█");
        } else if (cell > 0 && !p->ascii) {
            attrset(theme_attr(&p->theme, fill));
            mvaddstr(y, x + i, eighths[cell]);
        } else {
            attrset(theme_attr(&p->theme, ROLE_BAR_EMPTY));
            mvaddstr(y, x + i, p->ascii ? "." : "·");
        }
    }
    attrset(A_NORMAL);
}
