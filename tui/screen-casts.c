/*
 * Casts: the agent's casts, live (status, a progress bar, cost, duration),
 * each with a details view and its event log; a new cast is a spell picked
 * from GET /v1/spells, a form built from its inputs_schema
 * (spell_schema_fields, each field checked with
 * spell_schema_value_from_text), and a confirmation that shows the cost
 * estimate (spell_cost_estimate_inputs) before cast.submit goes to the
 * agent.  x cancels the selected cast through the agent.
 */
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/clock.h"
#include "spell/cost.h"
#include "spell/errors.h"
#include "spell/money.h"
#include "spell/schema.h"

#include "portal.h"

/* ---- the list ---- */

static const char *row_text(struct portal *p, int row, char *buf, size_t buflen)
{
    const struct pcast *c = p->casts[row];
    snprintf(buf, buflen, "%s %s %s %s", c->spell, c->state, c->local_id, c->cast_id);
    return buf;
}

static void cast_duration(const struct pcast *c, char *out, size_t outlen)
{
    if (c->has_duration)
        fmt_duration(c->duration_ms, out, outlen);
    else if (!c->final && c->created_ms > 0)
        fmt_duration(spell_time_now_ms() - c->created_ms, out, outlen);
    else
        snprintf(out, outlen, "-");
}

static enum role state_role(const struct pcast *c)
{
    if (strcmp(c->state, "succeeded") == 0)
        return ROLE_STATUS_OK;
    if (strcmp(c->state, "failed") == 0 || strcmp(c->state, "rejected") == 0)
        return ROLE_FIELD_ERROR;
    if (strcmp(c->state, "canceled") == 0)
        return ROLE_DIM;
    return ROLE_NORMAL;
}

static void draw_row(struct portal *p, int row, int y, int x, int w, bool selected)
{
    const struct pcast *c = p->casts[row];
    char cost[SPELL_MONEY_FORMAT_MAX], dur[32];
    if (c->has_cost)
        fmt_money(c->cost_cents, cost, sizeof cost);
    else
        fmt_money(c->estimated_cost_cents, cost, sizeof cost);
    cast_duration(c, dur, sizeof dur);
    enum role r = selected ? ROLE_SELECTED : ROLE_NORMAL;
    draw_text(p, y, x + 1, 13, r, c->spell);
    draw_text(p, y, x + 15, 10, selected ? r : state_role(c), c->state);
    bar_draw(p, y, x + 26, 20, c->progress, 100, -1,
             strcmp(c->state, "failed") == 0 || strcmp(c->state, "rejected") == 0
                 ? ROLE_BAR_CRIT
                 : ROLE_BAR_OK);
    draw_textf(p, y, x + 47, 5, r, "%3d%%", c->progress);
    draw_textf(p, y, x + 52, 10, r, "%s%s", c->has_cost ? "" : "~", cost);
    draw_text(p, y, x + 62, 8, r, dur);
    draw_text(p, y, x + 71, w - 71, r, c->local_id);
}

static const struct table_ops list_ops = {row_text, draw_row};

/* ---- the spell picker ---- */

static const char *spell_text(struct portal *p, int row, char *buf, size_t buflen)
{
    const struct spell_spell *s = &p->acct.spells[row];
    snprintf(buf, buflen, "%s %s %s", s->key, s->name, s->summary ? s->summary : "");
    return buf;
}

static void price_text(const struct spell_pricing *pr, char *out, size_t outlen)
{
    char a[SPELL_MONEY_FORMAT_MAX], b[SPELL_MONEY_FORMAT_MAX];
    switch (pr->model) {
    case SPELL_PRICING_FREE:
        snprintf(out, outlen, "free");
        break;
    case SPELL_PRICING_FLAT:
        fmt_money(pr->flat_cents, a, sizeof a);
        snprintf(out, outlen, "%s", a);
        break;
    case SPELL_PRICING_METERED:
        fmt_money(pr->base_cents, a, sizeof a);
        fmt_money(pr->per_kb_cents, b, sizeof b);
        snprintf(out, outlen, "%s + %s/KiB", a, b);
        break;
    }
}

static void spell_row(struct portal *p, int row, int y, int x, int w, bool selected)
{
    const struct spell_spell *s = &p->acct.spells[row];
    char price[64];
    enum role r = selected ? ROLE_SELECTED : ROLE_NORMAL;
    price_text(&s->pricing, price, sizeof price);
    draw_text(p, y, x + 1, 13, r, s->key);
    draw_text(p, y, x + 15, 18, r, price);
    draw_text(p, y, x + 34, w - 34, selected ? r : ROLE_DIM, s->summary ? s->summary : s->name);
}

static const struct table_ops spell_ops = {spell_text, spell_row};

/* ---- the inputs form ---- */

static int check(struct portal *p, struct form *f, int i, char *err, size_t errlen)
{
    struct casts_ui *u = &p->casts_ui;
    if (i < 0 || (size_t)i >= u->n_fields || u->spell < 0 || u->spell >= p->acct.n_spells)
        return SPELL_OK;
    const struct spell_schema_field *fd = &u->fields[i];
    const char *text = f->f[i].text;
    if (!text[0]) {
        if (fd->required && fd->type != SPELL_SCHEMA_STRING) {
            spell_errf(err, errlen, "%s is required", fd->name);
            return SPELL_EINVAL;
        }
        if (fd->required && fd->type == SPELL_SCHEMA_STRING) {
            spell_errf(err, errlen, "%s is required", fd->name);
            return SPELL_EINVAL;
        }
        return SPELL_OK;
    }
    cJSON *v = NULL;
    struct spell_schema_error e = {0};
    int rc = spell_schema_value_from_text(p->acct.spells[u->spell].inputs_schema, fd->name, text,
                                          &v, &e);
    cJSON_Delete(v);
    if (rc == SPELL_OK)
        return SPELL_OK;
    if (rc == SPELL_ETOOBIG)
        spell_errf(err, errlen, "%s is too long", fd->name);
    else
        spell_errf(err, errlen, "%s", e.message[0] ? e.message : spell_strerror(rc));
    return SPELL_EINVAL;
}

static void field_hint(const struct spell_schema_field *fd, char *out, size_t outlen)
{
    size_t n = 0;
    n += (size_t)snprintf(out + n, outlen - n, "%s%s", spell_schema_type_name(fd->type),
                          fd->required ? ", required" : ", optional");
    if (n < outlen && fd->has_minimum && fd->has_maximum)
        n += (size_t)snprintf(out + n, outlen - n, ", %g to %g", fd->minimum, fd->maximum);
    else if (n < outlen && fd->has_minimum)
        n += (size_t)snprintf(out + n, outlen - n, ", at least %g", fd->minimum);
    else if (n < outlen && fd->has_maximum)
        n += (size_t)snprintf(out + n, outlen - n, ", at most %g", fd->maximum);
    if (n < outlen && fd->has_max_length)
        n += (size_t)snprintf(out + n, outlen - n, ", up to %zu characters", fd->max_length);
    if (n < outlen && fd->type == SPELL_SCHEMA_BOOLEAN)
        n += (size_t)snprintf(out + n, outlen - n, ", true or false");
    for (size_t i = 0; i < fd->n_enum && n < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s%s", i ? "|" : ", one of ", fd->enum_text[i]);
    if (fd->description && n < outlen)
        snprintf(out + n, outlen - n, " - %s", fd->description);
}

static void free_fields(struct casts_ui *u)
{
    spell_schema_fields_free(u->fields, u->n_fields);
    u->fields = NULL;
    u->n_fields = 0;
}

static void open_form(struct portal *p, int spell)
{
    struct casts_ui *u = &p->casts_ui;
    const struct spell_spell *s = &p->acct.spells[spell];
    char title[160];
    free_fields(u);
    u->spell = spell;
    if (s->inputs_schema && spell_schema_fields(s->inputs_schema, &u->fields, &u->n_fields) !=
                                SPELL_OK) {
        portal_status(p, true, "The %s spell's input schema cannot be read.", s->key);
        return;
    }
    snprintf(title, sizeof title, "Cast %s (%s)", s->name, s->key);
    form_init(&u->form, title, check);
    for (size_t i = 0; i < u->n_fields && i < FORM_MAX_FIELDS; i++) {
        char hint[96];
        field_hint(&u->fields[i], hint, sizeof hint);
        form_add(&u->form, u->fields[i].name, hint, u->fields[i].default_text,
                 FORM_TEXT_MAX - 1);
    }
    u->mode = CASTS_FORM;
}

static void confirm(struct portal *p)
{
    struct casts_ui *u = &p->casts_ui;
    const struct spell_spell *s = &p->acct.spells[u->spell];
    cJSON *inputs = cJSON_CreateObject();
    if (!inputs)
        return;
    for (size_t i = 0; i < u->n_fields && i < FORM_MAX_FIELDS; i++) {
        cJSON *v = NULL;
        if (!u->form.f[i].text[0])
            continue;
        if (spell_schema_value_from_text(s->inputs_schema, u->fields[i].name, u->form.f[i].text,
                                         &v, NULL) != SPELL_OK ||
            !cJSON_AddItemToObject(inputs, u->fields[i].name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(inputs);
            return;
        }
    }
    int64_t est = 0;
    char money[SPELL_MONEY_FORMAT_MAX], remaining[SPELL_MONEY_FORMAT_MAX];
    if (spell_cost_estimate_inputs(&s->pricing, inputs, &est) != SPELL_OK) {
        portal_status(p, true, "These inputs cannot be priced.");
        cJSON_Delete(inputs);
        return;
    }
    fmt_money(est, money, sizeof money);
    char *shown = cJSON_PrintUnformatted(inputs);
    cJSON_Delete(u->pending_inputs);
    u->pending_inputs = inputs;
    modal_open(p, MODAL_CONFIRM, ACT_SUBMIT_CAST, "Start a cast", s->key);
    modal_line(p, "Spell:          %s (%s, version %s)", s->name, s->key, s->version);
    modal_line(p, "Inputs:         %s", shown ? shown : "");
    modal_line(p, "Estimated cost: %s (%s pricing)", money,
               spell_pricing_model_name(s->pricing.model));
    if (p->acct.has_usage) {
        fmt_money(p->acct.usage.remaining_cents, remaining, sizeof remaining);
        modal_line(p, "Budget left:    %s this month", remaining);
    }
    if (p->agent_state != AGENT_UP)
        modal_line(p, "The agent is not running: the cast cannot be sent.");
    else
        modal_line(p, "The agent queues it and follows it to the end.");
    cJSON_free(shown);
}

/* ---- details ---- */

static void draw_detail(struct portal *p, const struct rect *rc)
{
    struct casts_ui *u = &p->casts_ui;
    const struct pcast *c = casts_find(p, u->detail);
    int x = rc->x + 2, w = rc->w - 4, y = rc->y + 1;
    if (!c) {
        draw_text(p, y, x, w, ROLE_DIM, "That cast is no longer in the list.");
        return;
    }
    char est[SPELL_MONEY_FORMAT_MAX], cost[SPELL_MONEY_FORMAT_MAX], dur[32];
    fmt_money(c->estimated_cost_cents, est, sizeof est);
    if (c->has_cost)
        fmt_money(c->cost_cents, cost, sizeof cost);
    else
        snprintf(cost, sizeof cost, "-");
    cast_duration(c, dur, sizeof dur);
    draw_textf(p, y++, x, w, ROLE_HEADER, "Cast of %s", c->spell);
    draw_textf(p, y++, x, w, ROLE_NORMAL, "Local id   %s", c->local_id);
    draw_textf(p, y++, x, w, ROLE_NORMAL, "Cast id    %s", c->cast_id[0] ? c->cast_id : "-");
    draw_text(p, y, x, 11, ROLE_NORMAL, "State");
    draw_text(p, y++, x + 11, w - 11, state_role(c), c->state);
    draw_text(p, y, x, 11, ROLE_NORMAL, "Progress");
    bar_draw(p, y, x + 11, 30, c->progress, 100, -1, ROLE_BAR_OK);
    draw_textf(p, y++, x + 42, 6, ROLE_NORMAL, "%3d%%", c->progress);
    draw_textf(p, y++, x, w, ROLE_NORMAL, "Message    %s", c->message[0] ? c->message : "-");
    draw_textf(p, y++, x, w, ROLE_NORMAL, "Cost       %s (estimated %s)", cost, est);
    draw_textf(p, y++, x, w, ROLE_NORMAL, "Duration   %s", dur);
    if (c->artifact_url[0])
        draw_textf(p, y++, x, w, ROLE_NORMAL, "Artifact   %s", c->artifact_url);
    if (c->error[0])
        draw_textf(p, y++, x, w, ROLE_FIELD_ERROR, "Error      %s", c->error);
    y++;
    draw_text(p, y++, x, w, ROLE_HEADER, "Event log");
    int rows = rc->y + rc->h - y;
    if (c->n_log == 0)
        draw_text(p, y, x, w, ROLE_DIM, "No events seen yet (events arrive while the portal runs).");
    int first = c->n_log > rows ? c->n_log - rows : 0;
    for (int i = first; i < c->n_log; i++)
        draw_text(p, y++, x, w, ROLE_NORMAL, c->log[i]);
}

static void draw(struct portal *p, const struct rect *rc)
{
    struct casts_ui *u = &p->casts_ui;
    struct rect r = {rc->y + 1, rc->x + 1, rc->h - 1, rc->w - 2};
    switch (u->mode) {
    case CASTS_DETAIL:
        draw_detail(p, rc);
        return;
    case CASTS_PICK:
        if (!p->acct.has_spells) {
            draw_text(p, r.y, r.x + 1, r.w, ROLE_DIM, "loading the spells...");
            return;
        }
        table_set_rows(&u->pick, p, &spell_ops, p->acct.n_spells);
        table_draw(&u->pick, p, &spell_ops, &r,
                   " SPELL         PRICE              SUMMARY   (Enter: choose, Esc: back)",
                   "No spells are published.");
        return;
    case CASTS_FORM: {
        struct rect fr = {rc->y + 1, rc->x + 2, rc->h - 2, rc->w - 4};
        if (u->n_fields == 0)
            draw_text(p, fr.y + 2, fr.x, fr.w, ROLE_DIM,
                      "This spell takes no inputs: press Enter to go on.");
        form_draw(&u->form, p, &fr);
        return;
    }
    case CASTS_LIST:
        break;
    }
    if (p->agent_state != AGENT_UP) {
        draw_text(p, r.y, r.x + 1, r.w, ROLE_NORMAL, "The agent is not running.");
        draw_text(p, r.y + 1, r.x + 1, r.w, ROLE_DIM,
                  "Casts are queued and followed by spell-agent: start it (spell-agent &) and this");
        draw_text(p, r.y + 2, r.x + 1, r.w, ROLE_DIM,
                  "list fills in by itself. n still shows a spell's form and its cost estimate.");
        return;
    }
    table_set_rows(&u->list, p, &list_ops, p->n_casts);
    table_draw(&u->list, p, &list_ops, &r,
               " SPELL         STATE      PROGRESS                   COST      TIME     LOCAL ID",
               "No casts yet. Press n to start one.");
}

static int key(struct portal *p, int k)
{
    struct casts_ui *u = &p->casts_ui;
    int page = p->content.h - 3;
    switch (u->mode) {
    case CASTS_DETAIL:
        if (k == PK_ESC || k == 'q' || k == PK_ENTER || k == '\r' || k == (PK_FN | KEY_LEFT)) {
            u->mode = CASTS_LIST;
            return PK_HANDLED | PK_REDRAW;
        }
        if (k == 'x')
            break;
        return 0;
    case CASTS_PICK:
        if (u->pick.filtering)
            return table_key(&u->pick, p, &spell_ops, k, page);
        if (k == PK_ESC) {
            if (u->pick.filter[0])
                return table_key(&u->pick, p, &spell_ops, k, page);
            u->mode = CASTS_LIST;
            return PK_HANDLED | PK_REDRAW;
        }
        if (k == PK_ENTER || k == '\r' || k == (PK_FN | KEY_ENTER)) {
            int cur = table_current(&u->pick);
            if (cur >= 0 && cur < p->acct.n_spells)
                open_form(p, cur);
            return PK_HANDLED | PK_REDRAW;
        }
        return table_key(&u->pick, p, &spell_ops, k, page);
    case CASTS_FORM: {
        bool sub, cancel;
        int r = form_key(&u->form, p, k, &sub, &cancel);
        if (u->n_fields == 0 && (k == PK_ENTER || k == '\r'))
            sub = true;
        if (cancel)
            u->mode = CASTS_PICK;
        if (sub)
            confirm(p);
        return r | PK_HANDLED;
    }
    case CASTS_LIST:
        break;
    }
    if (u->list.filtering)
        return table_key(&u->list, p, &list_ops, k, page);
    int cur = u->mode == CASTS_DETAIL ? -1 : table_current(&u->list);
    const struct pcast *c = NULL;
    if (u->mode == CASTS_DETAIL)
        c = casts_find(p, u->detail);
    else if (cur >= 0 && cur < p->n_casts)
        c = p->casts[cur];
    switch (k) {
    case 'n':
        u->mode = CASTS_PICK;
        table_reset(&u->pick);
        if (!p->acct.has_spells)
            portal_request(p, JOB_SPELLS, "GET", "/v1/spells", NULL, NULL);
        return PK_HANDLED | PK_REDRAW;
    case PK_ENTER:
    case '\r':
    case PK_FN | KEY_ENTER:
        if (c) {
            snprintf(u->detail, sizeof u->detail, "%s", c->local_id);
            u->mode = CASTS_DETAIL;
        }
        return PK_HANDLED | PK_REDRAW;
    case 'x':
        if (!c)
            return PK_HANDLED;
        if (c->final) {
            portal_status(p, false, "That cast has already ended (%s).", c->state);
            return PK_HANDLED | PK_REDRAW;
        }
        modal_open(p, MODAL_CONFIRM, ACT_CANCEL_CAST, "Cancel a cast", c->local_id);
        modal_line(p, "Cancel the %s cast %s (%s, %d %%)?", c->spell, c->local_id, c->state,
                   c->progress);
        return PK_HANDLED | PK_REDRAW;
    default:
        return table_key(&u->list, p, &list_ops, k, page);
    }
}

static int mouse(struct portal *p, int y, int x)
{
    struct casts_ui *u = &p->casts_ui;
    struct table *t = u->mode == CASTS_PICK ? &u->pick : &u->list;
    if (u->mode != CASTS_PICK && u->mode != CASTS_LIST)
        return 0;
    int row = y - (p->content.y + 2) + t->top;
    if (row >= 0 && row < t->n_visible)
        t->selected = row;
    return PK_HANDLED | PK_REDRAW;
}

const struct screen_ops screen_casts = {
    .name = "Casts",
    .draw = draw,
    .key = key,
    .mouse = mouse,
    .hints = "n new  Enter details  x cancel  / filter",
};
