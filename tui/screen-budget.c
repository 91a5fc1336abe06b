/*
 * Budget: the hard and soft limits of this month, and a form to change
 * them.  Amounts are read with spell_money_parse(); the hard limit must be
 * $10..$500 and the soft limit at most the hard limit, checked here field
 * by field before the server checks them again and, if it refuses, says
 * why in its own words under the form.
 */
#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/models.h"
#include "spell/money.h"

#include "portal.h"

/* Explains why text is not an amount, or SPELL_OK with *cents. */
static int amount(const char *text, int64_t *cents, char *err, size_t errlen)
{
    int rc = spell_money_parse(text, cents);
    if (rc == SPELL_OK)
        return SPELL_OK;
    const char *dot = strchr(text, '.');
    size_t decimals = dot ? strspn(dot + 1, "0123456789") : 0;
    if (strchr(text, '-'))
        spell_errf(err, errlen, "an amount cannot be negative");
    else if (rc == SPELL_ETOOBIG)
        spell_errf(err, errlen, "that amount is far too large");
    else if (decimals > 2)
        spell_errf(err, errlen, "at most two decimals (cents)");
    else
        spell_errf(err, errlen, "not an amount: write dollars, like 50 or 49.99");
    return SPELL_EINVAL;
}

static int check(struct portal *p, struct form *f, int i, char *err, size_t errlen)
{
    int64_t hard = 0, soft = 0;
    char lo[SPELL_MONEY_FORMAT_MAX], hi[SPELL_MONEY_FORMAT_MAX];
    fmt_money(SPELL_BUDGET_HARD_MIN_CENTS, lo, sizeof lo);
    fmt_money(SPELL_BUDGET_HARD_MAX_CENTS, hi, sizeof hi);
    if (i == 0) {
        if (!f->f[0].text[0]) {
            spell_errf(err, errlen, "the hard limit is required");
            return SPELL_EINVAL;
        }
        if (amount(f->f[0].text, &hard, err, errlen) != SPELL_OK)
            return SPELL_EINVAL;
        if (hard < SPELL_BUDGET_HARD_MIN_CENTS || hard > SPELL_BUDGET_HARD_MAX_CENTS) {
            spell_errf(err, errlen, "the hard limit must be between %s and %s", lo, hi);
            return SPELL_EINVAL;
        }
        return SPELL_OK;
    }
    if (!f->f[1].text[0])
        return SPELL_OK;
    if (amount(f->f[1].text, &soft, err, errlen) != SPELL_OK)
        return SPELL_EINVAL;
    if (spell_money_parse(f->f[0].text, &hard) == SPELL_OK && soft > hard) {
        fmt_money(hard, hi, sizeof hi);
        spell_errf(err, errlen, "the soft limit must be at most the hard limit (%s)", hi);
        return SPELL_EINVAL;
    }
    return SPELL_OK;
}

static void open_form(struct portal *p)
{
    struct budget_ui *u = &p->budget_ui;
    char hard[32] = "", soft[32] = "";
    const struct spell_budget *b = &p->acct.budget;
    if (p->acct.has_budget) {
        snprintf(hard, sizeof hard, "%lld.%02lld", (long long)(b->hard_limit_cents / 100),
                 (long long)(b->hard_limit_cents % 100));
        if (b->has_soft_limit)
            snprintf(soft, sizeof soft, "%lld.%02lld", (long long)(b->soft_limit_cents / 100),
                     (long long)(b->soft_limit_cents % 100));
    }
    form_init(&u->form, "Edit the budget", check);
    form_add(&u->form, "Hard limit ($)", "$10.00 to $500.00: casts stop at this amount", hard, 32);
    form_add(&u->form, "Soft limit ($)", "optional, at most the hard limit: a notice only", soft,
             32);
    u->editing = true;
}

static void submit(struct portal *p)
{
    struct form *f = &p->budget_ui.form;
    int64_t hard, soft;
    char body[128];
    if (spell_money_parse(f->f[0].text, &hard) != SPELL_OK)
        return;
    if (f->f[1].text[0] && spell_money_parse(f->f[1].text, &soft) == SPELL_OK)
        snprintf(body, sizeof body, "{\"hard_limit_cents\":%lld,\"soft_limit_cents\":%lld}",
                 (long long)hard, (long long)soft);
    else
        snprintf(body, sizeof body, "{\"hard_limit_cents\":%lld,\"soft_limit_cents\":null}",
                 (long long)hard);
    f->busy = true;
    portal_request(p, JOB_BUDGET_SET, "PUT", "/v1/budgets", body, NULL);
}

static void draw(struct portal *p, const struct rect *rc)
{
    struct budget_ui *u = &p->budget_ui;
    int x = rc->x + 2, w = rc->w - 4, y = rc->y + 1;
    char m[SPELL_MONEY_FORMAT_MAX];
    const struct spell_budget *b = &p->acct.budget;
    draw_text(p, y, x, w, ROLE_HEADER, "Budget");
    y++;
    if (!p->acct.has_budget) {
        draw_text(p, y, x, w, ROLE_DIM, "loading...");
    } else {
        fmt_money(b->hard_limit_cents, m, sizeof m);
        draw_textf(p, y, x, w, ROLE_NORMAL, "Period      %s", b->period);
        draw_textf(p, y + 1, x, w, ROLE_NORMAL, "Hard limit  %-12s casts stop before passing it",
                   m);
        if (b->has_soft_limit)
            fmt_money(b->soft_limit_cents, m, sizeof m);
        else
            snprintf(m, sizeof m, "none");
        draw_textf(p, y + 2, x, w, ROLE_NORMAL, "Soft limit  %-12s a notice when spending passes it",
                   m);
    }
    y += 4;
    if (u->editing) {
        struct rect fr = {y, x, rc->y + rc->h - y - 1, w};
        form_draw(&u->form, p, &fr);
        return;
    }
    draw_text(p, y, x, w, ROLE_DIM, "The hard limit is $10.00 to $500.00; the soft limit, when set,");
    draw_text(p, y + 1, x, w, ROLE_DIM, "is at most the hard limit. A cast that would pass the hard");
    draw_text(p, y + 2, x, w, ROLE_DIM, "limit is refused (402) before it runs.");
    draw_text(p, y + 4, x, w, ROLE_KEY_HINT, "e: edit the limits    D: back to the default ($50)");
}

static int key(struct portal *p, int k)
{
    struct budget_ui *u = &p->budget_ui;
    if (u->editing) {
        bool sub, cancel;
        int r = form_key(&u->form, p, k, &sub, &cancel);
        if (cancel)
            u->editing = false;
        if (sub)
            submit(p);
        return r;
    }
    if (k == 'e' || k == PK_ENTER || k == '\r') {
        open_form(p);
        return PK_HANDLED | PK_REDRAW;
    }
    if (k == 'D') {
        modal_open(p, MODAL_CONFIRM, ACT_RESET_BUDGET, "Reset the budget", NULL);
        modal_line(p, "Go back to the default budget ($50.00 hard limit, no soft limit)?");
        return PK_HANDLED | PK_REDRAW;
    }
    return 0;
}

const struct screen_ops screen_budget = {
    .name = "Budget",
    .draw = draw,
    .key = key,
    .hints = "e edit  D default",
};
