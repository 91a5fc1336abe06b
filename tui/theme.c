/*
 * Colour roles.  Drawing code asks for a role (theme_attr(ROLE_BAR_WARN));
 * this file alone knows which colours a role has in each scheme, and which
 * attributes stand in for them on a monochrome terminal (no colours, the
 * mono theme, or NO_COLOR set).
 */
#include <curses.h>

#include "portal.h"

struct scheme_row {
    short fg, bg;       /* -1: the terminal's default */
    int attr;           /* added to the colour */
};

struct mono_row {
    int attr;
};

/* Indexed by enum role; one table per colour scheme. */
static const struct scheme_row scheme_default[ROLE__COUNT] = {
    [ROLE_NORMAL] = {-1, -1, 0},
    [ROLE_TITLE] = {COLOR_BLACK, COLOR_CYAN, A_BOLD},
    [ROLE_TAB] = {-1, -1, 0},
    [ROLE_TAB_ACTIVE] = {COLOR_BLACK, COLOR_CYAN, A_BOLD},
    [ROLE_HEADER] = {COLOR_CYAN, -1, A_BOLD},
    [ROLE_SELECTED] = {COLOR_BLACK, COLOR_CYAN, 0},
    [ROLE_STATUS] = {-1, -1, 0},
    [ROLE_STATUS_OK] = {COLOR_GREEN, -1, 0},
    [ROLE_STATUS_ERROR] = {COLOR_WHITE, COLOR_RED, A_BOLD},
    [ROLE_BAR_OK] = {COLOR_GREEN, -1, 0},
    [ROLE_BAR_WARN] = {COLOR_YELLOW, -1, 0},
    [ROLE_BAR_CRIT] = {COLOR_RED, -1, A_BOLD},
    [ROLE_BAR_EMPTY] = {COLOR_BLACK, -1, A_BOLD},
    [ROLE_SOFT_MARK] = {COLOR_MAGENTA, -1, A_BOLD},
    [ROLE_DIM] = {-1, -1, A_DIM},
    [ROLE_KEY_HINT] = {COLOR_CYAN, -1, A_BOLD},
    [ROLE_FIELD] = {-1, -1, A_UNDERLINE},
    [ROLE_FIELD_FOCUS] = {COLOR_BLACK, COLOR_WHITE, 0},
    [ROLE_FIELD_ERROR] = {COLOR_RED, -1, A_BOLD},
    [ROLE_MODAL] = {COLOR_WHITE, COLOR_BLUE, 0},
    [ROLE_MODAL_TITLE] = {COLOR_YELLOW, COLOR_BLUE, A_BOLD},
    [ROLE_QR] = {COLOR_BLACK, COLOR_WHITE, 0},
};

static const struct scheme_row scheme_dark[ROLE__COUNT] = {
    [ROLE_NORMAL] = {COLOR_WHITE, COLOR_BLACK, 0},
    [ROLE_TITLE] = {COLOR_BLACK, COLOR_GREEN, A_BOLD},
    [ROLE_TAB] = {COLOR_WHITE, COLOR_BLACK, 0},
    [ROLE_TAB_ACTIVE] = {COLOR_BLACK, COLOR_GREEN, A_BOLD},
    [ROLE_HEADER] = {COLOR_GREEN, COLOR_BLACK, A_BOLD},
    [ROLE_SELECTED] = {COLOR_BLACK, COLOR_GREEN, 0},
    [ROLE_STATUS] = {COLOR_WHITE, COLOR_BLACK, 0},
    [ROLE_STATUS_OK] = {COLOR_GREEN, COLOR_BLACK, 0},
    [ROLE_STATUS_ERROR] = {COLOR_WHITE, COLOR_RED, A_BOLD},
    [ROLE_BAR_OK] = {COLOR_GREEN, COLOR_BLACK, 0},
    [ROLE_BAR_WARN] = {COLOR_YELLOW, COLOR_BLACK, A_BOLD},
    [ROLE_BAR_CRIT] = {COLOR_RED, COLOR_BLACK, A_BOLD},
    [ROLE_BAR_EMPTY] = {COLOR_BLUE, COLOR_BLACK, 0},
    [ROLE_SOFT_MARK] = {COLOR_MAGENTA, COLOR_BLACK, A_BOLD},
    [ROLE_DIM] = {COLOR_WHITE, COLOR_BLACK, A_DIM},
    [ROLE_KEY_HINT] = {COLOR_YELLOW, COLOR_BLACK, A_BOLD},
    [ROLE_FIELD] = {COLOR_WHITE, COLOR_BLUE, 0},
    [ROLE_FIELD_FOCUS] = {COLOR_BLACK, COLOR_WHITE, 0},
    [ROLE_FIELD_ERROR] = {COLOR_RED, COLOR_BLACK, A_BOLD},
    [ROLE_MODAL] = {COLOR_WHITE, COLOR_BLUE, 0},
    [ROLE_MODAL_TITLE] = {COLOR_YELLOW, COLOR_BLUE, A_BOLD},
    [ROLE_QR] = {COLOR_BLACK, COLOR_WHITE, 0},
};

static const struct scheme_row scheme_light[ROLE__COUNT] = {
    [ROLE_NORMAL] = {COLOR_BLACK, COLOR_WHITE, 0},
    [ROLE_TITLE] = {COLOR_WHITE, COLOR_BLUE, A_BOLD},
    [ROLE_TAB] = {COLOR_BLACK, COLOR_WHITE, 0},
    [ROLE_TAB_ACTIVE] = {COLOR_WHITE, COLOR_BLUE, A_BOLD},
    [ROLE_HEADER] = {COLOR_BLUE, COLOR_WHITE, A_BOLD},
    [ROLE_SELECTED] = {COLOR_WHITE, COLOR_BLUE, 0},
    [ROLE_STATUS] = {COLOR_BLACK, COLOR_WHITE, 0},
    [ROLE_STATUS_OK] = {COLOR_GREEN, COLOR_WHITE, 0},
    [ROLE_STATUS_ERROR] = {COLOR_WHITE, COLOR_RED, A_BOLD},
    [ROLE_BAR_OK] = {COLOR_GREEN, COLOR_WHITE, 0},
    [ROLE_BAR_WARN] = {COLOR_YELLOW, COLOR_WHITE, 0},
    [ROLE_BAR_CRIT] = {COLOR_RED, COLOR_WHITE, A_BOLD},
    [ROLE_BAR_EMPTY] = {COLOR_BLACK, COLOR_WHITE, A_DIM},
    [ROLE_SOFT_MARK] = {COLOR_MAGENTA, COLOR_WHITE, A_BOLD},
    [ROLE_DIM] = {COLOR_BLACK, COLOR_WHITE, A_DIM},
    [ROLE_KEY_HINT] = {COLOR_BLUE, COLOR_WHITE, A_BOLD},
    [ROLE_FIELD] = {COLOR_BLACK, COLOR_CYAN, 0},
    [ROLE_FIELD_FOCUS] = {COLOR_WHITE, COLOR_BLACK, 0},
    [ROLE_FIELD_ERROR] = {COLOR_RED, COLOR_WHITE, A_BOLD},
    [ROLE_MODAL] = {COLOR_BLACK, COLOR_CYAN, 0},
    [ROLE_MODAL_TITLE] = {COLOR_BLUE, COLOR_CYAN, A_BOLD},
    [ROLE_QR] = {COLOR_BLACK, COLOR_WHITE, 0},
};

/* Monochrome: attributes only. */
static const struct mono_row scheme_mono[ROLE__COUNT] = {
    [ROLE_NORMAL] = {A_NORMAL},
    [ROLE_TITLE] = {A_REVERSE | A_BOLD},
    [ROLE_TAB] = {A_NORMAL},
    [ROLE_TAB_ACTIVE] = {A_REVERSE | A_BOLD},
    [ROLE_HEADER] = {A_BOLD | A_UNDERLINE},
    [ROLE_SELECTED] = {A_REVERSE},
    [ROLE_STATUS] = {A_NORMAL},
    [ROLE_STATUS_OK] = {A_NORMAL},
    [ROLE_STATUS_ERROR] = {A_REVERSE | A_BOLD},
    [ROLE_BAR_OK] = {A_NORMAL},
    [ROLE_BAR_WARN] = {A_BOLD},
    [ROLE_BAR_CRIT] = {A_BOLD | A_REVERSE},
    [ROLE_BAR_EMPTY] = {A_DIM},
    [ROLE_SOFT_MARK] = {A_BOLD},
    [ROLE_DIM] = {A_DIM},
    [ROLE_KEY_HINT] = {A_BOLD},
    [ROLE_FIELD] = {A_UNDERLINE},
    [ROLE_FIELD_FOCUS] = {A_REVERSE},
    [ROLE_FIELD_ERROR] = {A_BOLD},
    [ROLE_MODAL] = {A_NORMAL},
    [ROLE_MODAL_TITLE] = {A_BOLD},
    /* Reversed, a block is drawn in the background colour: dark modules on
     * light ones on the usual light-on-dark terminal. */
    [ROLE_QR] = {A_REVERSE},
};

void theme_init(struct theme *t, enum spell_theme which, bool no_color)
{
    const struct scheme_row *s = scheme_default;
    if (which == SPELL_THEME_DARK)
        s = scheme_dark;
    else if (which == SPELL_THEME_LIGHT)
        s = scheme_light;

    t->mono = no_color || which == SPELL_THEME_MONO || !has_colors() ||
              start_color() != OK || COLORS < 8 || COLOR_PAIRS < ROLE__COUNT + 1;
    if (!t->mono)
        use_default_colors();
    for (int r = 0; r < ROLE__COUNT; r++) {
        if (t->mono) {
            t->attr[r] = scheme_mono[r].attr;
            continue;
        }
        init_pair((short)(r + 1), s[r].fg, s[r].bg);
        t->attr[r] = (int)(COLOR_PAIR(r + 1) | (chtype)s[r].attr);
    }
}

int theme_attr(const struct theme *t, enum role r)
{
    if ((int)r < 0 || r >= ROLE__COUNT)
        return A_NORMAL;
    return t->attr[r];
}
