/*
 * Usage: this month day by day as bars scaled to the busiest day, the
 * per-spell breakdown, and the previous months' totals.  Refreshed by the
 * portal's timer and whenever a cast ends.
 */
#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "spell/money.h"

#include "portal.h"

static void draw(struct portal *p, const struct rect *rc)
{
    const struct account *a = &p->acct;
    struct usage_ui *ui = &p->usage_ui;
    char m[SPELL_MONEY_FORMAT_MAX];
    int lw = rc->w / 2 - 2, x = rc->x + 2, rx = rc->x + rc->w / 2 + 1, rw = rc->w / 2 - 3;
    int y = rc->y + 1, bottom = rc->y + rc->h;
    if (!a->has_usage) {
        draw_text(p, y, x, rc->w - 4, ROLE_DIM, "loading...");
        return;
    }
    const struct spell_usage *u = &a->usage;
    fmt_money(u->spent_cents, m, sizeof m);
    draw_textf(p, y, x, lw, ROLE_HEADER, "Day by day, %s", u->period);
    draw_textf(p, y + 1, x, lw, ROLE_DIM, "%s in %lld calls", m, (long long)u->calls);
    int64_t max = 1;
    for (size_t i = 0; i < u->n_daily; i++)
        if (u->daily[i].spent_cents > max)
            max = u->daily[i].spent_cents;
    int rows = bottom - (y + 3);
    if (ui->day_top > (int)u->n_daily - rows)
        ui->day_top = (int)u->n_daily - rows;
    if (ui->day_top < 0)
        ui->day_top = 0;
    if (u->n_daily == 0)
        draw_text(p, y + 3, x, lw, ROLE_DIM, "No casts this month yet.");
    for (int i = 0; i < rows && ui->day_top + i < (int)u->n_daily; i++) {
        const struct spell_usage_day *d = &u->daily[ui->day_top + i];
        fmt_money(d->spent_cents, m, sizeof m);
        int yy = y + 3 + i;
        draw_text(p, yy, x, 6, ROLE_NORMAL, d->date + 5);
        bar_draw(p, yy, x + 6, lw - 24, d->spent_cents, max, -1, ROLE_BAR_OK);
        draw_textf(p, yy, x + lw - 17, 17, ROLE_NORMAL, "%8s %4lld", m, (long long)d->calls);
    }

    draw_text(p, y, rx, rw, ROLE_HEADER, "By spell");
    int yy = y + 1;
    int64_t smax = 1;
    for (size_t i = 0; i < u->n_by_spell; i++)
        if (u->by_spell[i].spent_cents > smax)
            smax = u->by_spell[i].spent_cents;
    if (u->n_by_spell == 0)
        draw_text(p, yy++, rx, rw, ROLE_DIM, "No spells cast this month.");
    for (size_t i = 0; i < u->n_by_spell && yy < bottom - PORTAL_PREV_MONTHS - 3; i++) {
        const struct spell_usage_spell *s = &u->by_spell[i];
        fmt_money(s->spent_cents, m, sizeof m);
        draw_text(p, yy, rx, 12, ROLE_NORMAL, s->spell_key);
        bar_draw(p, yy, rx + 12, rw - 29, s->spent_cents, smax, -1, ROLE_BAR_OK);
        draw_textf(p, yy, rx + rw - 16, 16, ROLE_NORMAL, "%8s %4lld", m, (long long)s->calls);
        yy++;
    }
    yy++;
    draw_text(p, yy++, rx, rw, ROLE_HEADER, "Previous months");
    int64_t pmax = 1;
    for (int i = 0; i < PORTAL_PREV_MONTHS; i++)
        if (a->prev[i].loaded && a->prev[i].spent_cents > pmax)
            pmax = a->prev[i].spent_cents;
    for (int i = 0; i < PORTAL_PREV_MONTHS && yy < bottom; i++, yy++) {
        const struct month *mo = &a->prev[i];
        draw_text(p, yy, rx, 8, ROLE_NORMAL, mo->period);
        if (!mo->loaded) {
            draw_text(p, yy, rx + 9, rw - 9, ROLE_DIM, "not loaded");
            continue;
        }
        fmt_money(mo->spent_cents, m, sizeof m);
        bar_draw(p, yy, rx + 9, rw - 26, mo->spent_cents, pmax, -1, ROLE_BAR_OK);
        draw_textf(p, yy, rx + rw - 16, 16, ROLE_NORMAL, "%8s %4lld", m, (long long)mo->calls);
    }
}

static int key(struct portal *p, int k)
{
    struct usage_ui *ui = &p->usage_ui;
    switch (k) {
    case 'j':
    case PK_FN | KEY_DOWN:
        ui->day_top++;
        return PK_HANDLED | PK_REDRAW;
    case 'k':
    case PK_FN | KEY_UP:
        if (ui->day_top > 0)
            ui->day_top--;
        return PK_HANDLED | PK_REDRAW;
    case 'g':
    case PK_FN | KEY_HOME:
        ui->day_top = 0;
        return PK_HANDLED | PK_REDRAW;
    case 'G':
    case PK_FN | KEY_END:
        ui->day_top = SPELL_USAGE_DAYS_MAX;
        return PK_HANDLED | PK_REDRAW;
    default:
        return 0;
    }
}

static void enter(struct portal *p)
{
    account_refresh_usage(p);
}

const struct screen_ops screen_usage = {
    .name = "Usage",
    .draw = draw,
    .key = key,
    .enter = enter,
    .hints = "j/k scroll days  r reload",
};
