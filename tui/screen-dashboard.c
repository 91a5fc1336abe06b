/*
 * Dashboard: who is signed in, the card on file, and this month's spend
 * against the hard limit as one bar (green, yellow above 70 %, red above
 * 90 %) with the soft limit marked on it.  `c` and `b` open the card view
 * (screen-card.c) in its place until Esc.
 */
#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "spell/money.h"

#include "portal.h"

static void draw(struct portal *p, const struct rect *rc)
{
    const struct account *a = &p->acct;
    int x = rc->x + 2, w = rc->w - 4, y = rc->y + 1;
    if (p->card_ui.phase != CARDV_CLOSED) {
        card_draw(p, rc);
        return;
    }
    char m1[SPELL_MONEY_FORMAT_MAX], m2[SPELL_MONEY_FORMAT_MAX], m3[SPELL_MONEY_FORMAT_MAX];

    draw_text(p, y, x, w, ROLE_HEADER, "Account");
    y++;
    if (a->has_me)
        draw_textf(p, y, x, w, ROLE_NORMAL, "Signed in as %s (%s), key from %s", a->me.login,
                   spell_role_name(a->me.role), p->token_source);
    else
        draw_text(p, y, x, w, ROLE_DIM, "loading...");
    y += 2;

    draw_text(p, y, x, w, ROLE_HEADER, "Card");
    y++;
    card_draw_status(p, y, x, w);
    y += 3;

    if (!a->has_usage) {
        draw_text(p, y, x, w, ROLE_HEADER, "This month");
        draw_text(p, y + 1, x, w, ROLE_DIM, "loading...");
        return;
    }
    const struct spell_usage *u = &a->usage;
    draw_textf(p, y, x, w, ROLE_HEADER, "This month (%s)", u->period);
    y++;
    fmt_money(u->spent_cents, m1, sizeof m1);
    fmt_money(u->hard_limit_cents, m2, sizeof m2);
    int pct = u->hard_limit_cents > 0 ? (int)(u->spent_cents * 100 / u->hard_limit_cents) : 0;
    draw_textf(p, y, x, w, ROLE_NORMAL, "Spent %s of %s (%d %%)", m1, m2, pct);
    y++;
    bar_draw(p, y, x, w, u->spent_cents, u->hard_limit_cents,
             u->has_soft_limit ? u->soft_limit_cents : -1, ROLE_NORMAL);
    y++;
    if (u->has_soft_limit) {
        fmt_money(u->soft_limit_cents, m3, sizeof m3);
        draw_textf(p, y, x, w, ROLE_SOFT_MARK, "%s soft limit %s", p->ascii ? "|" : "┃", m3);
    } else {
        draw_text(p, y, x, w, ROLE_DIM, "no soft limit");
    }
    y += 2;
    fmt_money(u->reserved_cents, m1, sizeof m1);
    fmt_money(u->remaining_cents, m2, sizeof m2);
    draw_textf(p, y, x, w, ROLE_NORMAL, "Reserved   %s", m1);
    draw_textf(p, y + 1, x, w, ROLE_NORMAL, "Remaining  %s", m2);
    draw_textf(p, y + 2, x, w, ROLE_NORMAL, "Calls      %lld", (long long)u->calls);
    y += 4;

    draw_text(p, y, x, w, ROLE_HEADER, "Casts");
    y++;
    if (p->agent_state == AGENT_UP) {
        int active = 0;
        for (int i = 0; i < p->n_casts; i++)
            if (!p->casts[i]->final)
                active++;
        draw_textf(p, y, x, w, ROLE_NORMAL, "%d active, %d in the list (tab 5)", active,
                   p->n_casts);
    } else {
        draw_text(p, y, x, w, ROLE_DIM, "the agent is not running: start spell-agent for casts");
    }
}

static int key(struct portal *p, int k)
{
    if (p->card_ui.phase != CARDV_CLOSED)
        return card_key(p, k);
    if (k == 'b' || k == 'c') {
        card_open(p, k == 'b');
        return PK_HANDLED | PK_REDRAW;
    }
    return 0;
}

const struct screen_ops screen_dashboard = {
    .name = "Dashboard",
    .draw = draw,
    .key = key,
    .hints = "c card  b add card  r reload",
};
