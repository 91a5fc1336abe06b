/*
 * The store interface (store.h): picks an implementation from the URL at
 * open and forwards every call through its function table.  Also home of
 * what all implementations must do alike: the ledger hash.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "spell/crypto.h"
#include "spell/errors.h"
#include "spell/jcs.h"

#include "store-impl.h"

/* The longest URL or path store_open() takes. */
#define URL_MAX 4096

int store_open(const char *url, struct store **out)
{
    const char *sep;
    size_t len;

    if (!out)
        return SPELL_EINVAL;
    *out = NULL;
    if (!url)
        return SPELL_EINVAL;
    len = strnlen(url, URL_MAX + 1);
    if (len == 0)
        return SPELL_EINVAL;
    if (len > URL_MAX)
        return SPELL_ETOOBIG;
    if (strncmp(url, "sqlite://", 9) == 0)
        return url[9] ? store_sqlite_open(url + 9, out) : SPELL_EINVAL;
    sep = strstr(url, "://");
    if (sep)    /* postgres:// is reserved; nothing else is known */
        return SPELL_EINVAL;
    return store_sqlite_open(url, out);
}

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}

int store_ledger_hash(const char *prev_hash, int64_t seq, int64_t ts, const char *cast_id,
                      const char *kind, int64_t amount_cents, char out[STORE_HASH_HEX_SIZE])
{
    int rc = SPELL_ENOMEM;
    cJSON *o = NULL;
    struct spell_buf b;

    /* The canonical object is five short members; 1 KiB is ample. */
    spell_buf_init(&b, 1024);
    out[0] = '\0';
    if (!prev_hash || strlen(prev_hash) != STORE_HASH_HEX_SIZE - 1 || !kind) {
        rc = SPELL_EINVAL;
        goto out;
    }
    o = cJSON_CreateObject();
    if (!o)
        goto out;
    /* Integers pass through a double in cJSON: exact below 2^53, which
     * covers any amount of cents and any Unix ms up to year 9999. */
    if (!cJSON_AddNumberToObject(o, "amount_cents", (double)amount_cents))
        goto out;
    if (cast_id && cast_id[0]) {
        if (!cJSON_AddStringToObject(o, "cast_id", cast_id))
            goto out;
    } else if (!cJSON_AddNullToObject(o, "cast_id")) {
        goto out;
    }
    if (!cJSON_AddStringToObject(o, "kind", kind) ||
        !cJSON_AddNumberToObject(o, "seq", (double)seq) ||
        !cJSON_AddNumberToObject(o, "ts", (double)ts))
        goto out;
    if ((rc = spell_buf_add(&b, prev_hash, STORE_HASH_HEX_SIZE - 1)) != SPELL_OK)
        goto out;
    if ((rc = spell_jcs_serialize(o, &b)) != SPELL_OK)
        goto out;
    rc = spell_sha256_hex(b.ptr, b.len, out);
out:
    cJSON_Delete(o);
    spell_buf_free(&b);
    return rc;
}

void store_spell_clear(struct store_spell *sp)
{
    if (!sp)
        return;
    free(sp->inputs_schema);
    free(sp->execution);
    sp->inputs_schema = NULL;
    sp->execution = NULL;
}

void store_cast_clear(struct store_cast *c)
{
    if (!c)
        return;
    free(c->inputs);
    c->inputs = NULL;
}

void store_idem_clear(struct store_idem *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* Every forwarder below refuses a NULL store the same way. */
#define FORWARD(op, ...) return s ? s->ops->op(s, __VA_ARGS__) : SPELL_EINVAL

int store_ping(struct store *s)
{
    return s ? s->ops->ping(s) : SPELL_EINVAL;
}

int store_schema_version(struct store *s, int *out)
{
    FORWARD(schema_version, out);
}

int store_user_create(struct store *s, const struct store_user *u)
{
    FORWARD(user_create, u);
}

int store_user_get(struct store *s, const char *user_id, struct store_user *out)
{
    FORWARD(user_get, user_id, out);
}

int store_user_by_login(struct store *s, const char *login, struct store_user *out)
{
    FORWARD(user_by_login, login, out);
}

int store_session_create(struct store *s, const char *token_sha256_hex, const char *user_id,
                         int64_t now_ms, int64_t expires_at)
{
    FORWARD(session_create, token_sha256_hex, user_id, now_ms, expires_at);
}

int store_session_user(struct store *s, const char *token_sha256_hex, int64_t now_ms,
                       struct store_user *out)
{
    FORWARD(session_user, token_sha256_hex, now_ms, out);
}

int store_session_delete(struct store *s, const char *token_sha256_hex)
{
    FORWARD(session_delete, token_sha256_hex);
}

int store_sessions_purge(struct store *s, int64_t now_ms, int64_t *removed)
{
    FORWARD(sessions_purge, now_ms, removed);
}

int store_key_create(struct store *s, const struct store_key *k)
{
    FORWARD(key_create, k);
}

int store_key_by_prefix(struct store *s, const char *prefix, struct store_key *out)
{
    FORWARD(key_by_prefix, prefix, out);
}

int store_key_list(struct store *s, const char *user_id,
                   int (*fn)(void *ud, const struct store_key *k), void *ud)
{
    FORWARD(key_list, user_id, fn, ud);
}

int store_key_revoke(struct store *s, const char *user_id, const char *prefix, int64_t now_ms)
{
    FORWARD(key_revoke, user_id, prefix, now_ms);
}

int store_key_touch(struct store *s, const char *prefix, int64_t now_ms)
{
    FORWARD(key_touch, prefix, now_ms);
}

int store_budget_get(struct store *s, const char *user_id, const char *period,
                     struct store_budget *out)
{
    FORWARD(budget_get, user_id, period, out);
}

int store_budget_set(struct store *s, const char *user_id, const char *period,
                     int64_t hard_limit_cents, int64_t soft_limit_cents, int64_t now_ms)
{
    FORWARD(budget_set, user_id, period, hard_limit_cents, soft_limit_cents, now_ms);
}

int store_budget_clear(struct store *s, const char *user_id, const char *period)
{
    FORWARD(budget_clear, user_id, period);
}

int store_usage_get(struct store *s, const char *user_id, const char *period,
                    struct store_usage *out)
{
    FORWARD(usage_get, user_id, period, out);
}

int store_spell_upsert(struct store *s, const struct store_spell *sp, int64_t now_ms)
{
    FORWARD(spell_upsert, sp, now_ms);
}

int store_spell_get(struct store *s, const char *key, struct store_spell *out)
{
    FORWARD(spell_get, key, out);
}

int store_spell_list(struct store *s, int (*fn)(void *ud, const struct store_spell *sp),
                     void *ud)
{
    FORWARD(spell_list, fn, ud);
}

int store_idem_begin(struct store *s, const char *user_id, const char *key,
                     const char *request_hash, int64_t now_ms, struct store_idem *out)
{
    FORWARD(idem_begin, user_id, key, request_hash, now_ms, out);
}

int store_idem_finish(struct store *s, const char *user_id, const char *key, int status,
                      const char *body, size_t len)
{
    FORWARD(idem_finish, user_id, key, status, body, len);
}

int store_idem_abandon(struct store *s, const char *user_id, const char *key)
{
    FORWARD(idem_abandon, user_id, key);
}

int store_idem_lookup(struct store *s, const char *user_id, const char *key,
                      const char *request_hash, int64_t now_ms, struct store_idem *out)
{
    FORWARD(idem_lookup, user_id, key, request_hash, now_ms, out);
}

int store_idem_put(struct store *s, const char *user_id, const char *key,
                   const char *request_hash, int64_t now_ms, int status, const char *body,
                   size_t len, struct store_idem *out)
{
    FORWARD(idem_put, user_id, key, request_hash, now_ms, status, body, len, out);
}

int store_idem_purge(struct store *s, int64_t now_ms, int64_t *removed)
{
    FORWARD(idem_purge, now_ms, removed);
}

int store_cast_reserve(struct store *s, const struct store_reserve *req,
                       struct store_reserve_result *out)
{
    FORWARD(cast_reserve, req, out);
}

int store_cast_start(struct store *s, const char *cast_id, const char *run_url, int64_t now_ms)
{
    FORWARD(cast_start, cast_id, run_url, now_ms);
}

int store_cast_start_progress(struct store *s, const char *cast_id, const char *run_url,
                              int progress, const char *message, int64_t now_ms)
{
    FORWARD(cast_start_progress, cast_id, run_url, progress, message, now_ms);
}

int store_cast_progress(struct store *s, const char *cast_id, int progress, const char *message,
                        int64_t now_ms)
{
    FORWARD(cast_progress, cast_id, progress, message, now_ms);
}

int store_cast_set_run_url(struct store *s, const char *cast_id, const char *run_url)
{
    FORWARD(cast_set_run_url, cast_id, run_url);
}

int store_cast_set_run(struct store *s, const char *cast_id, int64_t run_id, const char *run_url)
{
    FORWARD(cast_set_run, cast_id, run_id, run_url);
}

int store_cast_run_id(struct store *s, const char *cast_id, int64_t *run_id)
{
    FORWARD(cast_run_id, cast_id, run_id);
}

int store_cast_by_run_id(struct store *s, int64_t run_id, char cast_id[STORE_ID_SIZE])
{
    FORWARD(cast_by_run_id, run_id, cast_id);
}

int store_cast_mark_dispatch(struct store *s, const char *cast_id, int64_t now_ms, int *already)
{
    FORWARD(cast_mark_dispatch, cast_id, now_ms, already);
}

int store_cast_dispatched_at(struct store *s, const char *cast_id, int64_t *at_ms)
{
    FORWARD(cast_dispatched_at, cast_id, at_ms);
}

int store_delivery_seen(struct store *s, const char *delivery_id, int *seen)
{
    FORWARD(delivery_seen, delivery_id, seen);
}

int store_delivery_record(struct store *s, const char *delivery_id, const char *event,
                          int64_t now_ms)
{
    FORWARD(delivery_record, delivery_id, event, now_ms);
}

int store_cast_settle(struct store *s, const char *cast_id, int64_t cost_cents,
                      const char *artifact_url, int64_t now_ms, struct store_settle_result *out)
{
    FORWARD(cast_settle, cast_id, cost_cents, artifact_url, now_ms, out);
}

int store_cast_release(struct store *s, const char *cast_id, const char *status,
                       const char *error_code, const char *error_message, int64_t now_ms,
                       struct store_settle_result *out)
{
    FORWARD(cast_release, cast_id, status, error_code, error_message, now_ms, out);
}

int store_cast_get(struct store *s, const char *cast_id, const char *user_id,
                   struct store_cast *out)
{
    FORWARD(cast_get, cast_id, user_id, out);
}

int store_cast_list(struct store *s, const char *user_id, const char *cursor, int limit,
                    int (*fn)(void *ud, const struct store_cast *c), void *ud,
                    char next_cursor[STORE_CURSOR_SIZE])
{
    FORWARD(cast_list, user_id, cursor, limit, fn, ud, next_cursor);
}

int store_casts_unfinished(struct store *s, int (*fn)(void *ud, const struct store_cast *c),
                           void *ud)
{
    FORWARD(casts_unfinished, fn, ud);
}

int store_event_append(struct store *s, const char *cast_id, const char *type, const char *data,
                       size_t len, int64_t now_ms, int64_t *seq)
{
    FORWARD(event_append, cast_id, type, data, len, now_ms, seq);
}

int store_events_after(struct store *s, const char *cast_id, int64_t after_seq, int limit,
                       int (*fn)(void *ud, const struct store_event *e), void *ud)
{
    FORWARD(events_after, cast_id, after_seq, limit, fn, ud);
}

int store_ledger_append(struct store *s, const char *user_id, const char *cast_id,
                        const char *kind, int64_t amount_cents, int64_t now_ms, int64_t *seq)
{
    FORWARD(ledger_append, user_id, cast_id, kind, amount_cents, now_ms, seq);
}

int store_ledger_list(struct store *s, int64_t after_seq, int limit,
                      int (*fn)(void *ud, const struct store_ledger_entry *e), void *ud)
{
    FORWARD(ledger_list, after_seq, limit, fn, ud);
}

int store_ledger_verify(struct store *s, int64_t *checked, int64_t *bad_seq)
{
    FORWARD(ledger_verify, checked, bad_seq);
}

int store_user_export(struct store *s, const char *user_id, struct spell_buf *out)
{
    FORWARD(user_export, user_id, out);
}

int store_user_erase(struct store *s, const char *user_id)
{
    FORWARD(user_erase, user_id);
}

int store_billing_get(struct store *s, const char *user_id, struct store_billing *out)
{
    FORWARD(billing_get, user_id, out);
}

int store_billing_by_customer(struct store *s, const char *customer_id,
                              struct store_billing *out)
{
    FORWARD(billing_by_customer, customer_id, out);
}

int store_billing_customer_set(struct store *s, const char *user_id, const char *customer_id,
                               int64_t now_ms)
{
    FORWARD(billing_customer_set, user_id, customer_id, now_ms);
}

int store_billing_event_seen(struct store *s, const char *event_id, int *seen)
{
    FORWARD(billing_event_seen, event_id, seen);
}

int store_billing_event_apply(struct store *s, const struct store_billing_event *ev,
                              int64_t now_ms, int *duplicate, int *applied)
{
    FORWARD(billing_event_apply, ev, now_ms, duplicate, applied);
}

int store_billing_invoice_get(struct store *s, const char *user_id, const char *period,
                              char *out)
{
    FORWARD(billing_invoice_get, user_id, period, out);
}

int store_billing_invoice_record(struct store *s, const char *user_id, const char *period,
                                 const char *invoice_id, int64_t amount_cents, int64_t now_ms,
                                 int64_t *ledger_seq)
{
    FORWARD(billing_invoice_record, user_id, period, invoice_id, amount_cents, now_ms,
            ledger_seq);
}

int store_billing_usage_users(struct store *s, const char *period,
                              int (*fn)(void *ud, const char *user_id, int64_t spent_cents),
                              void *ud)
{
    FORWARD(billing_usage_users, period, fn, ud);
}

int store_user_upsert_github(struct store *s, int64_t github_id, const struct store_user *u,
                             int64_t now_ms, struct store_user *out, int *created)
{
    FORWARD(user_upsert_github, github_id, u, now_ms, out, created);
}

int store_device_create(struct store *s, const struct store_device *d)
{
    FORWARD(device_create, d);
}

int store_device_by_user_code(struct store *s, const char *user_code, int64_t now_ms,
                              struct store_device *out)
{
    FORWARD(device_by_user_code, user_code, now_ms, out);
}

int store_device_decide(struct store *s, const char *user_code, const char *user_id,
                        int64_t now_ms)
{
    FORWARD(device_decide, user_code, user_id, now_ms);
}

int store_device_poll(struct store *s, const char *device_hash, int64_t now_ms,
                      int slow_down_step_s, int *outcome, struct store_device *out)
{
    FORWARD(device_poll, device_hash, now_ms, slow_down_step_s, outcome, out);
}

int store_devices_purge(struct store *s, int64_t before_ms, int64_t *removed)
{
    FORWARD(devices_purge, before_ms, removed);
}
