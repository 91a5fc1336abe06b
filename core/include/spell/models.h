/*
 * The platform's resources (DESIGN.md §2) as C structs, and their JSON.
 *
 * Every resource has three functions:
 *
 *   int   spell_<res>_from_json(const cJSON *j, struct spell_<res> *out,
 *                               char *err, size_t errlen);
 *   cJSON *spell_<res>_to_json(const struct spell_<res> *r);
 *   void  spell_<res>_free(struct spell_<res> *r);
 *
 * from_json reads a tree that spell_json_parse() (json.h) built from
 * untrusted text.  It checks every field it knows (type, presence, length
 * caps, enum values, ranges such as progress 0..100, formats such as cast
 * ids and RFC 3339 times), ignores fields it does not know so that an older
 * client can read a newer server, and fills *out only on success: on
 * failure *out is zeroed, nothing stays allocated, err holds one sentence
 * naming the field ("field 'pricing.flat_cents' is required") and the
 * result is SPELL_EINVAL (SPELL_ENOMEM when memory ran out).
 *
 * to_json writes the resource with the field names of DESIGN.md; the
 * caller owns the tree.  It returns NULL when an allocation fails or a
 * value cannot be written exactly (a time outside clock.h's range, an
 * integer past 2^53).  Optional fields that are unset are written as null.
 *
 * Structs own their members: strings are heap copies, JSON members
 * (spell inputs_schema and execution, event data, error details) are owned
 * cJSON trees.  free releases them and zeroes the struct; it is safe on a
 * zeroed struct and safe to call twice.
 *
 * Conventions inside the structs: times are Unix ms with 0 meaning null
 * ("not started yet"); money is integer cents; an optional number has a
 * has_<name> flag beside it; an optional string is NULL when unset.
 */
#ifndef SPELL_MODELS_H
#define SPELL_MODELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "spell/clock.h"
#include "spell/cost.h"
#include "spell/errors.h"

/* Length caps for strings read from outside, in bytes. */
#define SPELL_MODEL_ID_MAX 128      /* ids, keys, prefixes, codes, types */
#define SPELL_MODEL_NAME_MAX 256    /* names, logins, versions, brands */
#define SPELL_MODEL_EMAIL_MAX 320   /* RFC 5321: 64 + @ + 255 */
#define SPELL_MODEL_URL_MAX 2048
#define SPELL_MODEL_TEXT_MAX 4096   /* summaries, progress and error messages */
#define SPELL_MODEL_KEY_MAX 256     /* a full API key */

/* A cast id: "cst_" and a 26-character ULID. */
#define SPELL_CAST_ID_LEN 30
/* A spell key (slug): 1..64 of [a-z0-9_-], starting with a letter or digit. */
#define SPELL_SPELL_KEY_MAX 64
/* An API key prefix: 8 base62 characters. */
#define SPELL_KEY_PREFIX_LEN 8
/* SHA-256 in lowercase hex (input_hash, ledger hashes). */
#define SPELL_HASH_HEX_LEN 64

/* Budget rules (DESIGN.md §2): hard limit $10..$500, default $50. */
#define SPELL_BUDGET_HARD_MIN_CENTS 1000
#define SPELL_BUDGET_HARD_MAX_CENTS 50000
#define SPELL_BUDGET_DEFAULT_CENTS 5000

/* Array caps for usage: one entry per day of the period, and a bound on
 * the spells one caster can have used in a month. */
#define SPELL_USAGE_DAYS_MAX 31
#define SPELL_USAGE_SPELLS_MAX 1000

/* ---- Enums.  _name() gives the wire string (NULL for a value outside
 * the enum); _parse() takes one and returns SPELL_OK or SPELL_EINVAL. ---- */

enum spell_role {
    SPELL_ROLE_CASTER,
    SPELL_ROLE_MAKER,
    SPELL_ROLE_ADMIN,
};
const char *spell_role_name(enum spell_role v);
int spell_role_parse(const char *s, enum spell_role *out);

enum spell_payment_status {
    SPELL_PAYMENT_ACTIVE,
    SPELL_PAYMENT_FAILED,
};
const char *spell_payment_status_name(enum spell_payment_status v);
int spell_payment_status_parse(const char *s, enum spell_payment_status *out);

enum spell_spell_status {
    SPELL_SPELL_DRAFT,
    SPELL_SPELL_PUBLISHED,
    SPELL_SPELL_DEPRECATED,
};
const char *spell_spell_status_name(enum spell_spell_status v);
int spell_spell_status_parse(const char *s, enum spell_spell_status *out);

/* A spell's execution_mode, and the mode a cast ran in. */
enum spell_exec_mode {
    SPELL_MODE_SERVICE,
    SPELL_MODE_WORKFLOW,
    SPELL_MODE_WASM,
    SPELL_MODE_CLONE,
};
const char *spell_exec_mode_name(enum spell_exec_mode v);
int spell_exec_mode_parse(const char *s, enum spell_exec_mode *out);

enum spell_cast_status {
    SPELL_CAST_QUEUED,
    SPELL_CAST_RUNNING,
    SPELL_CAST_SUCCEEDED,
    SPELL_CAST_FAILED,
    SPELL_CAST_CANCELED,
};
const char *spell_cast_status_name(enum spell_cast_status v);
int spell_cast_status_parse(const char *s, enum spell_cast_status *out);
/* succeeded, failed and canceled: the cast will not change again. */
bool spell_cast_status_is_terminal(enum spell_cast_status v);

enum spell_ledger_kind {
    SPELL_LEDGER_RESERVE,
    SPELL_LEDGER_SETTLE,
    SPELL_LEDGER_RELEASE,
    SPELL_LEDGER_INVOICE,
    SPELL_LEDGER_ADJUST,
};
const char *spell_ledger_kind_name(enum spell_ledger_kind v);
int spell_ledger_kind_parse(const char *s, enum spell_ledger_kind *out);

/* ---- Format checks, shared with the server's routing. ---- */

/* "cst_" and 26 Crockford base32 characters (upper case, first 0..7). */
bool spell_cast_id_valid(const char *s);
/* A spell key as SPELL_SPELL_KEY_MAX describes. */
bool spell_spell_key_valid(const char *s);
/* Exactly SPELL_HASH_HEX_LEN lowercase hex digits. */
bool spell_hash_hex_valid(const char *s);

/* ---- user ---- */

struct spell_user {
    char *id;
    char *login;
    char *name;         /* optional: GitHub accounts may have none */
    char *email;        /* optional */
    char *avatar_url;   /* optional */
    enum spell_role role;
    int64_t created_at;
};
int spell_user_from_json(const cJSON *j, struct spell_user *out, char *err, size_t errlen);
cJSON *spell_user_to_json(const struct spell_user *r);
void spell_user_free(struct spell_user *r);

/* ---- api_key ---- */

struct spell_api_key {
    char *id;
    char *prefix;           /* SPELL_KEY_PREFIX_LEN base62 characters */
    char *name;             /* optional label the user gave the key */
    int64_t created_at;
    int64_t last_used_at;   /* 0: never used */
    /* The full key "sk_live_<prefix>_<secret><check>": only in the answer
     * to POST /v1/keys, NULL (and not written) everywhere else. */
    char *key;
};
int spell_api_key_from_json(const cJSON *j, struct spell_api_key *out, char *err, size_t errlen);
cJSON *spell_api_key_to_json(const struct spell_api_key *r);
void spell_api_key_free(struct spell_api_key *r);

/* ---- budget ---- */

struct spell_budget {
    char period[SPELL_PERIOD_SIZE];     /* "2026-11" */
    int64_t hard_limit_cents;
    int64_t soft_limit_cents;           /* meaningful when has_soft_limit */
    bool has_soft_limit;
};
int spell_budget_from_json(const cJSON *j, struct spell_budget *out, char *err, size_t errlen);
cJSON *spell_budget_to_json(const struct spell_budget *r);
void spell_budget_free(struct spell_budget *r);

/* The business rules of DESIGN.md §2, which from_json does not apply (it
 * only checks shape): hard limit within SPELL_BUDGET_HARD_MIN/MAX_CENTS,
 * soft limit, when set, 0..hard.  SPELL_EINVAL with a message naming the
 * field. */
int spell_budget_validate(const struct spell_budget *b, char *err, size_t errlen);

/* ---- usage ---- */

struct spell_usage_day {
    char date[SPELL_DATE_SIZE];         /* "2026-11-22" */
    int64_t spent_cents;
    int64_t calls;
};

struct spell_usage_spell {
    char *spell_key;
    int64_t spent_cents;
    int64_t calls;
};

struct spell_usage {
    char period[SPELL_PERIOD_SIZE];
    int64_t calls;
    int64_t spent_cents;
    int64_t reserved_cents;
    int64_t hard_limit_cents;
    int64_t soft_limit_cents;           /* meaningful when has_soft_limit */
    bool has_soft_limit;
    int64_t remaining_cents;            /* hard - spent - reserved, never below 0 */
    struct spell_usage_day *daily;      /* n_daily <= SPELL_USAGE_DAYS_MAX */
    size_t n_daily;
    struct spell_usage_spell *by_spell; /* n_by_spell <= SPELL_USAGE_SPELLS_MAX */
    size_t n_by_spell;
};
int spell_usage_from_json(const cJSON *j, struct spell_usage *out, char *err, size_t errlen);
cJSON *spell_usage_to_json(const struct spell_usage *r);
void spell_usage_free(struct spell_usage *r);

/* ---- payment_method ---- */

struct spell_payment_method {
    char *brand;                /* "visa" */
    char last4[5];              /* four digits and NUL */
    int exp_month;              /* 1..12 */
    int exp_year;               /* 1970..9999 */
    enum spell_payment_status status;
};
int spell_payment_method_from_json(const cJSON *j, struct spell_payment_method *out,
                                   char *err, size_t errlen);
cJSON *spell_payment_method_to_json(const struct spell_payment_method *r);
void spell_payment_method_free(struct spell_payment_method *r);

/* ---- spell ---- */

struct spell_spell {
    char *key;
    char *name;
    char *summary;                      /* optional */
    char *version;
    enum spell_spell_status status;
    enum spell_exec_mode execution_mode;
    /* pricing_model and the pricing object together (cost.h). */
    struct spell_pricing pricing;
    cJSON *inputs_schema;               /* optional object, owned */
    cJSON *execution;                   /* optional object, owned */
    int64_t avg_cost_cents;             /* meaningful when has_avg_cost */
    bool has_avg_cost;
    int64_t avg_duration_ms;            /* meaningful when has_avg_duration */
    bool has_avg_duration;
};
int spell_spell_from_json(const cJSON *j, struct spell_spell *out, char *err, size_t errlen);
cJSON *spell_spell_to_json(const struct spell_spell *r);
void spell_spell_free(struct spell_spell *r);

/* ---- cast ---- */

struct spell_cast_error {
    char *code;
    char *message;
};

struct spell_cast {
    char *id;                           /* "cst_" + ULID */
    char *spell_key;
    char *spell_version;
    enum spell_exec_mode mode;
    enum spell_cast_status status;
    int progress;                       /* 0..100 */
    char *message;                      /* optional: the last progress message */
    char *input_hash;                   /* SHA-256 hex of the canonical inputs */
    int64_t estimated_cost_cents;
    int64_t cost_cents;                 /* meaningful when has_cost: once settled */
    bool has_cost;
    char *run_url;                      /* optional */
    char *artifact_url;                 /* optional */
    struct spell_cast_error error;      /* meaningful when has_error */
    bool has_error;
    int64_t created_at;
    int64_t started_at;                 /* 0 until running */
    int64_t finished_at;                /* 0 until terminal */
    int64_t duration_ms;                /* meaningful when has_duration */
    bool has_duration;
};
int spell_cast_from_json(const cJSON *j, struct spell_cast *out, char *err, size_t errlen);
cJSON *spell_cast_to_json(const struct spell_cast *r);
void spell_cast_free(struct spell_cast *r);

/* ---- cast event ---- */

struct spell_cast_event {
    int64_t seq;                        /* per cast, from 1 */
    char *type;                         /* "cast.progress"; kept as text so a
                                           newer server's types pass through */
    cJSON *data;                        /* object, owned */
    int64_t ts;
};
int spell_cast_event_from_json(const cJSON *j, struct spell_cast_event *out,
                               char *err, size_t errlen);
cJSON *spell_cast_event_to_json(const struct spell_cast_event *r);
void spell_cast_event_free(struct spell_cast_event *r);

/* ---- ledger entry ---- */

struct spell_ledger_entry {
    int64_t seq;                        /* global, from 1 */
    int64_t ts;
    char *user_id;                      /* NULL once the user was erased */
    char *cast_id;                      /* NULL for invoice and adjust rows */
    enum spell_ledger_kind kind;
    int64_t amount_cents;               /* may be negative (adjust) */
    char *prev_hash;                    /* the previous entry's hash; the first
                                           entry's is 64 zeros */
    char *hash;
};
int spell_ledger_entry_from_json(const cJSON *j, struct spell_ledger_entry *out,
                                 char *err, size_t errlen);
cJSON *spell_ledger_entry_to_json(const struct spell_ledger_entry *r);
void spell_ledger_entry_free(struct spell_ledger_entry *r);

/* ---- API error body: {"error": {"code", "message", "details"}} ---- */

struct spell_error_body {
    char *code;                         /* as on the wire, known or not */
    char *message;
    cJSON *details;                     /* optional object, owned */
    /* The catalog entry of code (enum spell_api_error), or -1 for a code
     * this build does not know; front ends then word it by HTTP status. */
    int api_error;
};
int spell_error_body_from_json(const cJSON *j, struct spell_error_body *out,
                               char *err, size_t errlen);
void spell_error_body_free(struct spell_error_body *r);

/* The body the server answers an error with.  message NULL takes the
 * catalog sentence; details (may be NULL) is copied, the caller keeps it.
 * An e outside the catalog is written as INTERNAL. */
cJSON *spell_error_body_to_json(enum spell_api_error e, const char *message,
                                const cJSON *details);

#endif
