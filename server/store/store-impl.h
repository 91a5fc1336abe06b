/*
 * The seam between store.c, which callers link against, and the
 * implementations (sqlite.c now, postgres.c later).
 *
 * An implementation embeds struct store as the first member of its own
 * state and fills ops with its functions; store.c checks the common
 * arguments nothing could accept (a NULL store) and forwards every call
 * unchanged.  Each op has the signature of the public function of the same
 * name in store.h.
 */
#ifndef SERVER_STORE_IMPL_H
#define SERVER_STORE_IMPL_H

#include "store.h"

struct store_ops {
    void (*close)(struct store *s);
    int (*ping)(struct store *s);
    int (*schema_version)(struct store *s, int *out);

    int (*user_create)(struct store *s, const struct store_user *u);
    int (*user_get)(struct store *s, const char *user_id, struct store_user *out);
    int (*user_by_login)(struct store *s, const char *login, struct store_user *out);
    int (*session_create)(struct store *s, const char *token_sha256_hex, const char *user_id,
                          int64_t now_ms, int64_t expires_at);
    int (*session_user)(struct store *s, const char *token_sha256_hex, int64_t now_ms,
                        struct store_user *out);
    int (*session_delete)(struct store *s, const char *token_sha256_hex);
    int (*sessions_purge)(struct store *s, int64_t now_ms, int64_t *removed);
    int (*key_create)(struct store *s, const struct store_key *k);
    int (*key_by_prefix)(struct store *s, const char *prefix, struct store_key *out);
    int (*key_list)(struct store *s, const char *user_id,
                    int (*fn)(void *ud, const struct store_key *k), void *ud);
    int (*key_revoke)(struct store *s, const char *user_id, const char *prefix, int64_t now_ms);
    int (*key_touch)(struct store *s, const char *prefix, int64_t now_ms);

    int (*budget_get)(struct store *s, const char *user_id, const char *period,
                      struct store_budget *out);
    int (*budget_set)(struct store *s, const char *user_id, const char *period,
                      int64_t hard_limit_cents, int64_t soft_limit_cents, int64_t now_ms);
    int (*budget_clear)(struct store *s, const char *user_id, const char *period);
    int (*usage_get)(struct store *s, const char *user_id, const char *period,
                     struct store_usage *out);

    int (*spell_upsert)(struct store *s, const struct store_spell *sp, int64_t now_ms);
    int (*spell_get)(struct store *s, const char *key, struct store_spell *out);
    int (*spell_list)(struct store *s, int (*fn)(void *ud, const struct store_spell *sp),
                      void *ud);

    int (*idem_begin)(struct store *s, const char *user_id, const char *key,
                      const char *request_hash, int64_t now_ms, struct store_idem *out);
    int (*idem_finish)(struct store *s, const char *user_id, const char *key, int status,
                       const char *body, size_t len);
    int (*idem_abandon)(struct store *s, const char *user_id, const char *key);
    int (*idem_lookup)(struct store *s, const char *user_id, const char *key,
                       const char *request_hash, int64_t now_ms, struct store_idem *out);
    int (*idem_put)(struct store *s, const char *user_id, const char *key,
                    const char *request_hash, int64_t now_ms, int status, const char *body,
                    size_t len, struct store_idem *out);
    int (*idem_purge)(struct store *s, int64_t now_ms, int64_t *removed);

    int (*cast_reserve)(struct store *s, const struct store_reserve *req,
                        struct store_reserve_result *out);
    int (*cast_start)(struct store *s, const char *cast_id, const char *run_url, int64_t now_ms);
    int (*cast_start_progress)(struct store *s, const char *cast_id, const char *run_url,
                               int progress, const char *message, int64_t now_ms);
    int (*cast_progress)(struct store *s, const char *cast_id, int progress, const char *message,
                         int64_t now_ms);
    int (*cast_set_run_url)(struct store *s, const char *cast_id, const char *run_url);
    int (*cast_settle)(struct store *s, const char *cast_id, int64_t cost_cents,
                       const char *artifact_url, int64_t now_ms, struct store_settle_result *out);
    int (*cast_release)(struct store *s, const char *cast_id, const char *status,
                        const char *error_code, const char *error_message, int64_t now_ms,
                        struct store_settle_result *out);
    int (*cast_get)(struct store *s, const char *cast_id, const char *user_id,
                    struct store_cast *out);
    int (*cast_list)(struct store *s, const char *user_id, const char *cursor, int limit,
                     int (*fn)(void *ud, const struct store_cast *c), void *ud,
                     char next_cursor[STORE_CURSOR_SIZE]);
    int (*casts_unfinished)(struct store *s, int (*fn)(void *ud, const struct store_cast *c),
                            void *ud);

    int (*event_append)(struct store *s, const char *cast_id, const char *type,
                        const char *data, size_t len, int64_t now_ms, int64_t *seq);
    int (*events_after)(struct store *s, const char *cast_id, int64_t after_seq, int limit,
                        int (*fn)(void *ud, const struct store_event *e), void *ud);

    int (*ledger_append)(struct store *s, const char *user_id, const char *cast_id,
                         const char *kind, int64_t amount_cents, int64_t now_ms, int64_t *seq);
    int (*ledger_list)(struct store *s, int64_t after_seq, int limit,
                       int (*fn)(void *ud, const struct store_ledger_entry *e), void *ud);
    int (*ledger_verify)(struct store *s, int64_t *checked, int64_t *bad_seq);

    int (*user_export)(struct store *s, const char *user_id, struct spell_buf *out);
    int (*user_erase)(struct store *s, const char *user_id);

    int (*billing_get)(struct store *s, const char *user_id, struct store_billing *out);
    int (*billing_by_customer)(struct store *s, const char *customer_id,
                               struct store_billing *out);
    int (*billing_customer_set)(struct store *s, const char *user_id, const char *customer_id,
                                int64_t now_ms);
    int (*billing_event_seen)(struct store *s, const char *event_id, int *seen);
    int (*billing_event_apply)(struct store *s, const struct store_billing_event *ev,
                               int64_t now_ms, int *duplicate, int *applied);
    int (*billing_invoice_get)(struct store *s, const char *user_id, const char *period,
                               char *out);
    int (*billing_invoice_record)(struct store *s, const char *user_id, const char *period,
                                  const char *invoice_id, int64_t amount_cents, int64_t now_ms,
                                  int64_t *ledger_seq);
    int (*billing_usage_users)(struct store *s, const char *period,
                               int (*fn)(void *ud, const char *user_id, int64_t spent_cents),
                               void *ud);

    int (*cast_set_run)(struct store *s, const char *cast_id, int64_t run_id,
                        const char *run_url);
    int (*cast_run_id)(struct store *s, const char *cast_id, int64_t *run_id);
    int (*cast_by_run_id)(struct store *s, int64_t run_id, char cast_id[STORE_ID_SIZE]);
    int (*cast_mark_dispatch)(struct store *s, const char *cast_id, int64_t now_ms,
                              int *already);
    int (*cast_dispatched_at)(struct store *s, const char *cast_id, int64_t *at_ms);
    int (*delivery_seen)(struct store *s, const char *delivery_id, int *seen);
    int (*delivery_record)(struct store *s, const char *delivery_id, const char *event,
                           int64_t now_ms);
    int (*user_upsert_github)(struct store *s, int64_t github_id, const struct store_user *u,
                              int64_t now_ms, struct store_user *out, int *created);
    int (*device_create)(struct store *s, const struct store_device *d);
    int (*device_by_user_code)(struct store *s, const char *user_code, int64_t now_ms,
                               struct store_device *out);
    int (*device_decide)(struct store *s, const char *user_code, const char *user_id,
                         int64_t now_ms);
    int (*device_poll)(struct store *s, const char *device_hash, int64_t now_ms,
                       int slow_down_step_s, int *outcome, struct store_device *out);
    int (*devices_purge)(struct store *s, int64_t before_ms, int64_t *removed);
};

struct store {
    const struct store_ops *ops;
};

/* Opens the SQLite store at path (a file name, not a URL). */
int store_sqlite_open(const char *path, struct store **out);

/*
 * Test hooks of the SQLite store (s must come from store_sqlite_open or a
 * sqlite URL).  hold_writes(s, 1) waits until no group commit is under
 * way and holds off the next one, so writes (reservations, cast
 * transitions, events, any write) queue for it; hold_writes(s, 0) lets
 * them go, in batches of at most 64.  writes_waiting() counts writes
 * queued and not yet taken into a batch; group_commits() the batches run
 * so far.  fail_commits(s,
 * n) makes the next n COMMITs of any connection fail (SQLite rolls them
 * back); call it while no other thread uses the store.
 */
void store_sqlite_hold_writes(struct store *s, int hold);
size_t store_sqlite_writes_waiting(struct store *s);
long store_sqlite_group_commits(struct store *s);
void store_sqlite_fail_commits(struct store *s, int n);

/* The canonical JSON of a ledger entry and its chained hash, as store.h
 * defines them; shared by every implementation so all of them chain alike.
 * cast_id may be NULL or "" for none. */
int store_ledger_hash(const char *prev_hash, int64_t seq, int64_t ts, const char *cast_id,
                      const char *kind, int64_t amount_cents, char out[STORE_HASH_HEX_SIZE]);

#endif
