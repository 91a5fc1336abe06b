/*
 * Account data: what the dashboard, budget, usage and keys screens show.
 * account_load() asks the server for all of it through the worker;
 * account_apply() takes each answer on the drawing thread, decodes it
 * with core's models and stores it in struct account, or turns a refusal
 * into words for the status line (or the form that asked), keeping the
 * request so that `r` can send it again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spell/errors.h"
#include "spell/json.h"
#include "spell/money.h"

#include "portal.h"

void account_free(struct account *a)
{
    spell_user_free(&a->me);
    spell_usage_free(&a->usage);
    for (int i = 0; i < a->n_keys; i++)
        spell_api_key_free(&a->keys[i]);
    spell_payment_method_free(&a->pm);
    for (int i = 0; i < a->n_spells; i++)
        spell_spell_free(&a->spells[i]);
    memset(a, 0, sizeof *a);
}

static void previous_periods(struct account *a)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int y = tm.tm_year + 1900, m = tm.tm_mon + 1;
    for (int i = 0; i < PORTAL_PREV_MONTHS; i++) {
        if (--m == 0) {
            m = 12;
            y--;
        }
        spell_errf(a->prev[i].period, sizeof a->prev[i].period, "%04d-%02d", y % 10000, m);
        a->prev[i].loaded = false;
    }
}

void account_refresh_usage(struct portal *p)
{
    portal_request(p, JOB_USAGE, "GET", "/v1/budgets/usage", NULL, NULL);
}

void account_load(struct portal *p)
{
    previous_periods(&p->acct);
    portal_request(p, JOB_ME, "GET", "/v1/auth/me", NULL, NULL);
    portal_request(p, JOB_USAGE, "GET", "/v1/budgets/usage", NULL, NULL);
    portal_request(p, JOB_CARD, "GET", "/v1/billing/payment-method", NULL, NULL);
    portal_request(p, JOB_BUDGET, "GET", "/v1/budgets", NULL, NULL);
    portal_request(p, JOB_KEYS, "GET", "/v1/keys", NULL, NULL);
    portal_request(p, JOB_SPELLS, "GET", "/v1/spells", NULL, NULL);
    for (int i = 0; i < PORTAL_PREV_MONTHS; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/budgets/usage?period=%s", p->acct.prev[i].period);
        portal_request(p, JOB_USAGE_PERIOD, "GET", path, NULL, p->acct.prev[i].period);
    }
}

void account_error(struct portal *p, const struct job_result *r, const char *what, char *out,
                   size_t outlen)
{
    if (r->rc != SPELL_OK) {
        snprintf(out, outlen, "%s: cannot reach %s (%s)", what, p->api_url, r->message);
        return;
    }
    const char *sentence = spell_api_error_sentence(r->code, r->status);
    if (r->message[0] && strcmp(r->message, sentence) != 0)
        snprintf(out, outlen, "%s: %s (%s)", what, sentence, r->message);
    else
        snprintf(out, outlen, "%s: %s", what, sentence);
}

static void keep_for_retry(struct portal *p, struct job_result *r)
{
    free(p->retry.body);
    memset(&p->retry, 0, sizeof p->retry);
    p->retry.kind = r->kind;
    snprintf(p->retry.method, sizeof p->retry.method, "%s", r->method);
    snprintf(p->retry.path, sizeof p->retry.path, "%s", r->path);
    snprintf(p->retry.tag, sizeof p->retry.tag, "%s", r->tag);
    p->retry.body = r->body;
    r->body = NULL;
    p->has_retry = true;
}

static void failed(struct portal *p, struct job_result *r, const char *what)
{
    char msg[PORTAL_MSG_MAX];
    account_error(p, r, what, msg, sizeof msg);
    keep_for_retry(p, r);
    portal_status(p, true, "%s", msg);
}

static bool ok(const struct job_result *r)
{
    return r->rc == SPELL_OK && r->status >= 200 && r->status < 300;
}

static void apply_keys(struct portal *p, const cJSON *json)
{
    struct account *a = &p->acct;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(json, "keys");
    if (!cJSON_IsArray(arr))
        return;
    for (int i = 0; i < a->n_keys; i++)
        spell_api_key_free(&a->keys[i]);
    a->n_keys = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, arr) {
        char err[256];
        if (a->n_keys >= PORTAL_MAX_KEYS)
            break;
        if (spell_api_key_from_json(k, &a->keys[a->n_keys], err, sizeof err) == SPELL_OK)
            a->n_keys++;
    }
    a->has_keys = true;
}

static void apply_spells(struct portal *p, const cJSON *json)
{
    struct account *a = &p->acct;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(json, "spells");
    if (!cJSON_IsArray(arr))
        return;
    for (int i = 0; i < a->n_spells; i++)
        spell_spell_free(&a->spells[i]);
    a->n_spells = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, arr) {
        char err[256];
        if (a->n_spells >= PORTAL_MAX_SPELLS)
            break;
        if (spell_spell_from_json(s, &a->spells[a->n_spells], err, sizeof err) == SPELL_OK)
            a->n_spells++;
    }
    a->has_spells = true;
}

/* A refusal of a form's request goes to the form, in the server's words. */
static void form_refused(struct portal *p, struct form *f, struct job_result *r, const char *what)
{
    f->busy = false;
    account_error(p, r, what, f->error, sizeof f->error);
}

/* A credential refused at sign-in: the words go to the way it came by. */
static void login_refused(struct portal *p, struct job_result *r, const char *what)
{
    if (p->login_ui.dev == DEV_SIGNING_IN) {
        char msg[PORTAL_MSG_MAX];
        account_error(p, r, what, msg, sizeof msg);
        login_device_failed(p, msg);
        return;
    }
    form_refused(p, &p->login_ui.form, r, what);
}

static void apply_ok(struct portal *p, struct job_result *r)
{
    struct account *a = &p->acct;
    char err[256], m1[SPELL_MONEY_FORMAT_MAX], m2[SPELL_MONEY_FORMAT_MAX];
    switch (r->kind) {
    case JOB_ME:
    case JOB_LOGIN_CHECK: {
        struct spell_user u;
        if (!r->json || spell_user_from_json(r->json, &u, err, sizeof err) != SPELL_OK) {
            portal_status(p, true, "The server's answer about the account was malformed: %s",
                          err);
            return;
        }
        spell_user_free(&a->me);
        a->me = u;
        a->has_me = true;
        if (r->kind == JOB_LOGIN_CHECK) {
            portal_sign_in(p);
            portal_status(p, false,
                          "Signed in as %s for this session (the agent is not running to keep "
                          "the credential).", u.login);
        }
        p->auth = AUTH_IN;
        break;
    }
    case JOB_USAGE: {
        struct spell_usage u;
        if (!r->json || spell_usage_from_json(r->json, &u, err, sizeof err) != SPELL_OK) {
            portal_status(p, true, "The usage answer was malformed: %s", err);
            return;
        }
        spell_usage_free(&a->usage);
        a->usage = u;
        a->has_usage = true;
        break;
    }
    case JOB_USAGE_PERIOD: {
        struct spell_usage u;
        if (!r->json || spell_usage_from_json(r->json, &u, err, sizeof err) != SPELL_OK)
            return;
        for (int i = 0; i < PORTAL_PREV_MONTHS; i++)
            if (strcmp(a->prev[i].period, r->tag) == 0) {
                a->prev[i].loaded = true;
                a->prev[i].spent_cents = u.spent_cents;
                a->prev[i].calls = u.calls;
            }
        spell_usage_free(&u);
        break;
    }
    case JOB_BUDGET:
    case JOB_BUDGET_SET: {
        struct spell_budget b;
        if (!r->json || spell_budget_from_json(r->json, &b, err, sizeof err) != SPELL_OK) {
            portal_status(p, true, "The budget answer was malformed: %s", err);
            return;
        }
        a->budget = b;
        a->has_budget = true;
        if (r->kind == JOB_BUDGET_SET) {
            p->budget_ui.editing = false;
            p->budget_ui.form.busy = false;
            fmt_money(b.hard_limit_cents, m1, sizeof m1);
            if (b.has_soft_limit)
                fmt_money(b.soft_limit_cents, m2, sizeof m2);
            else
                snprintf(m2, sizeof m2, "none");
            portal_status(p, false, "Budget saved: hard limit %s, soft limit %s.", m1, m2);
            account_refresh_usage(p);
        }
        break;
    }
    case JOB_BUDGET_RESET:
        portal_status(p, false, "Budget back to the default.");
        portal_request(p, JOB_BUDGET, "GET", "/v1/budgets", NULL, NULL);
        account_refresh_usage(p);
        break;
    case JOB_KEYS:
        if (r->json)
            apply_keys(p, r->json);
        break;
    case JOB_KEY_CREATE: {
        struct spell_api_key k;
        if (!r->json || spell_api_key_from_json(r->json, &k, err, sizeof err) != SPELL_OK ||
            !k.key) {
            p->keys_ui.form.busy = false;
            snprintf(p->keys_ui.form.error, sizeof p->keys_ui.form.error,
                     "The server's answer held no key.");
            if (r->json)
                spell_api_key_free(&k);
            return;
        }
        p->keys_ui.creating = false;
        p->keys_ui.form.busy = false;
        modal_open(p, MODAL_KEY, ACT_NONE, "New API key", k.prefix);
        modal_line(p, "Key \"%s\" (prefix %s) was created. Copy it now:", k.name ? k.name : "",
                   k.prefix);
        modal_line(p, "it will not be shown again, and the server cannot show it either.");
        snprintf(p->modal.secret, sizeof p->modal.secret, "%s", k.key);
        spell_api_key_free(&k);
        portal_request(p, JOB_KEYS, "GET", "/v1/keys", NULL, NULL);
        break;
    }
    case JOB_KEY_REVOKE:
        portal_status(p, false, "Key %s revoked; it stops working at once.", r->tag);
        portal_request(p, JOB_KEYS, "GET", "/v1/keys", NULL, NULL);
        break;
    case JOB_CARD: {
        struct spell_payment_method pm;
        if (!r->json || spell_payment_method_from_json(r->json, &pm, err, sizeof err) != SPELL_OK) {
            a->card = CARD_ERROR;
            card_status_changed(p);
            return;
        }
        spell_payment_method_free(&a->pm);
        a->pm = pm;
        a->card = pm.status == SPELL_PAYMENT_FAILED ? CARD_FAILED : CARD_OK;
        card_status_changed(p);
        break;
    }
    case JOB_BILLING_SETUP:
        card_setup_result(p, r);
        break;
    case JOB_DEVICE_START:
    case JOB_DEVICE_POLL:
        break;
    case JOB_SPELLS:
        if (r->json)
            apply_spells(p, r->json);
        break;
    }
}

void account_apply(struct portal *p, struct job_result *r)
{
    if (r->kind == JOB_DEVICE_START || r->kind == JOB_DEVICE_POLL) {
        login_device_result(p, r);
        return;
    }
    if (r->kind == JOB_CARD)
        p->card_ui.polling = false;
    if (ok(r)) {
        apply_ok(p, r);
        if (p->has_retry && p->retry.kind == r->kind && strcmp(p->retry.path, r->path) == 0) {
            p->has_retry = false;
            p->status[0] = '\0';
        }
        return;
    }
    /* A 401 means the credential no longer works: back to the login. */
    if (r->rc == SPELL_OK && r->status == 401) {
        if (r->kind == JOB_LOGIN_CHECK) {
            portal_set_token(p, NULL, "none");
            p->auth = AUTH_OUT;
            login_refused(p, r, "Sign-in refused");
            return;
        }
        if (p->auth == AUTH_OUT)
            return;
        char msg[PORTAL_MSG_MAX];
        account_error(p, r, "Signed out", msg, sizeof msg);
        portal_sign_out(p, msg);
        return;
    }
    switch (r->kind) {
    case JOB_CARD:
        if (r->rc == SPELL_OK && r->status == 404) {
            p->acct.card = CARD_NONE;
            card_status_changed(p);
            return;
        }
        /* While waiting for a new card a failed poll is tried again at
         * the next tick; the status line says why meanwhile. */
        if (p->card_ui.phase == CARDV_WAITING) {
            char msg[PORTAL_MSG_MAX];
            account_error(p, r, "Checking for the card", msg, sizeof msg);
            portal_status(p, true, "%s", msg);
            return;
        }
        p->acct.card = CARD_ERROR;
        failed(p, r, "Card status");
        return;
    case JOB_BILLING_SETUP:
        card_setup_result(p, r);
        if (!(r->rc == SPELL_OK && r->status == 404))
            failed(p, r, "Card registration");
        return;
    case JOB_BUDGET_SET:
        form_refused(p, &p->budget_ui.form, r, "The server refused the budget");
        return;
    case JOB_KEY_CREATE:
        form_refused(p, &p->keys_ui.form, r, "The server refused the key");
        return;
    case JOB_LOGIN_CHECK:
        portal_set_token(p, NULL, "none");
        p->auth = AUTH_OUT;
        login_refused(p, r, "Sign-in failed");
        return;
    case JOB_DEVICE_START:
    case JOB_DEVICE_POLL:
        return;
    case JOB_USAGE_PERIOD:
        /* Older months are a nicety; the usage screen says "not loaded". */
        return;
    case JOB_ME:
        failed(p, r, "Loading the account");
        return;
    case JOB_USAGE:
        failed(p, r, "Loading usage");
        return;
    case JOB_BUDGET:
        failed(p, r, "Loading the budget");
        return;
    case JOB_BUDGET_RESET:
        failed(p, r, "Resetting the budget");
        return;
    case JOB_KEYS:
        failed(p, r, "Loading the API keys");
        return;
    case JOB_KEY_REVOKE:
        failed(p, r, "Revoking the key");
        return;
    case JOB_SPELLS:
        failed(p, r, "Loading the spells");
        return;
    }
}
