/*
 * The resources of DESIGN.md §2 and their JSON (models.h).
 *
 * Decoders read through the json.h getters into a zeroed local struct and
 * hand it to the caller only when every field passed, so a failure frees
 * whatever was copied so far and leaves the caller's struct zeroed.
 * Encoders chain the json.h builders, each of which returns nonzero on
 * failure, and drop the half-built tree if any link fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/json.h"
#include "spell/models.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define REQ SPELL_JSON_REQUIRED
#define OPT SPELL_JSON_OPTIONAL
#define REQ_NONEMPTY (SPELL_JSON_REQUIRED | SPELL_JSON_NONEMPTY)
#define OPT_NONEMPTY (SPELL_JSON_OPTIONAL | SPELL_JSON_NONEMPTY)

/* Room for a pricing model table read from cost.h. */
#define PRICING_MODELS_MAX 8

/* ---- Enums ---- */

static const char *const role_names[] = {
    [SPELL_ROLE_CASTER] = "caster",
    [SPELL_ROLE_MAKER] = "maker",
    [SPELL_ROLE_ADMIN] = "admin",
};

static const char *const payment_status_names[] = {
    [SPELL_PAYMENT_ACTIVE] = "active",
    [SPELL_PAYMENT_FAILED] = "failed",
};

static const char *const spell_status_names[] = {
    [SPELL_SPELL_DRAFT] = "draft",
    [SPELL_SPELL_PUBLISHED] = "published",
    [SPELL_SPELL_DEPRECATED] = "deprecated",
};

static const char *const exec_mode_names[] = {
    [SPELL_MODE_SERVICE] = "service",
    [SPELL_MODE_WORKFLOW] = "workflow",
    [SPELL_MODE_WASM] = "wasm",
    [SPELL_MODE_CLONE] = "clone",
};

static const char *const cast_status_names[] = {
    [SPELL_CAST_QUEUED] = "queued",
    [SPELL_CAST_RUNNING] = "running",
    [SPELL_CAST_SUCCEEDED] = "succeeded",
    [SPELL_CAST_FAILED] = "failed",
    [SPELL_CAST_CANCELED] = "canceled",
};

static const char *const ledger_kind_names[] = {
    [SPELL_LEDGER_RESERVE] = "reserve",
    [SPELL_LEDGER_SETTLE] = "settle",
    [SPELL_LEDGER_RELEASE] = "release",
    [SPELL_LEDGER_INVOICE] = "invoice",
    [SPELL_LEDGER_ADJUST] = "adjust",
};

static const char *table_name(const char *const *names, size_t count, int v)
{
    return v >= 0 && (size_t)v < count ? names[v] : NULL;
}

static int table_parse(const char *const *names, size_t count, const char *s, int *out)
{
    if (!s)
        return SPELL_EINVAL;
    for (size_t i = 0; i < count; i++)
        if (strcmp(names[i], s) == 0) {
            *out = (int)i;
            return SPELL_OK;
        }
    return SPELL_EINVAL;
}

#define ENUM_FUNCS(prefix, type, names) \
    const char *prefix##_name(type v) \
    { \
        return table_name(names, COUNT(names), (int)v); \
    } \
    int prefix##_parse(const char *s, type *out) \
    { \
        int v; \
        if (table_parse(names, COUNT(names), s, &v) != SPELL_OK) \
            return SPELL_EINVAL; \
        *out = (type)v; \
        return SPELL_OK; \
    }

ENUM_FUNCS(spell_role, enum spell_role, role_names)
ENUM_FUNCS(spell_payment_status, enum spell_payment_status, payment_status_names)
ENUM_FUNCS(spell_spell_status, enum spell_spell_status, spell_status_names)
ENUM_FUNCS(spell_exec_mode, enum spell_exec_mode, exec_mode_names)
ENUM_FUNCS(spell_cast_status, enum spell_cast_status, cast_status_names)
ENUM_FUNCS(spell_ledger_kind, enum spell_ledger_kind, ledger_kind_names)

bool spell_cast_status_is_terminal(enum spell_cast_status v)
{
    return v == SPELL_CAST_SUCCEEDED || v == SPELL_CAST_FAILED || v == SPELL_CAST_CANCELED;
}

/* ---- Format checks ---- */

bool spell_cast_id_valid(const char *s)
{
    /* Crockford base32: no I, L, O or U. */
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    if (!s || strnlen(s, SPELL_CAST_ID_LEN + 1) != SPELL_CAST_ID_LEN
        || strncmp(s, "cst_", 4) != 0)
        return false;
    /* 26 base32 digits hold 130 bits; a ULID is 128, so the first is 0..7. */
    if (s[4] < '0' || s[4] > '7')
        return false;
    for (size_t i = 5; i < SPELL_CAST_ID_LEN; i++)
        if (!strchr(alphabet, s[i]))
            return false;
    return true;
}

bool spell_spell_key_valid(const char *s)
{
    size_t n = s ? strnlen(s, SPELL_SPELL_KEY_MAX + 1) : 0;
    if (n == 0 || n > SPELL_SPELL_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_')))
            return false;
    }
    return true;
}

bool spell_hash_hex_valid(const char *s)
{
    if (!s || strnlen(s, SPELL_HASH_HEX_LEN + 1) != SPELL_HASH_HEX_LEN)
        return false;
    for (size_t i = 0; i < SPELL_HASH_HEX_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool key_prefix_valid(const char *s)
{
    if (strnlen(s, SPELL_KEY_PREFIX_LEN + 1) != SPELL_KEY_PREFIX_LEN)
        return false;
    for (size_t i = 0; i < SPELL_KEY_PREFIX_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return true;
}

static bool period_valid(const char *s)
{
    return spell_period_parse(s, NULL, NULL) == SPELL_OK;
}

static bool date_valid(const char *s)
{
    return spell_date_parse(s, NULL) == SPELL_OK;
}

static bool last4_valid(const char *s)
{
    if (strnlen(s, 5) != 4)
        return false;
    for (size_t i = 0; i < 4; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* ---- Decoding helpers ---- */

static int root(struct spell_json_at *at, const cJSON *j, char *err, size_t errlen)
{
    at->obj = j;
    at->path = "";
    at->err = err;
    at->errlen = errlen;
    if (!cJSON_IsObject(j)) {
        if (err && errlen)
            snprintf(err, errlen, "expected a JSON object");
        return SPELL_EINVAL;
    }
    return SPELL_OK;
}

/* A string that must also pass `ok`; otherwise "field 'x' <what>". */
static int get_format(const struct spell_json_at *at, const char *name, unsigned flags,
                      size_t max_len, bool (*ok)(const char *), const char *what, char **out)
{
    int rc = spell_json_get_string(at, name, flags, max_len, out);
    if (rc == SPELL_OK && *out && !ok(*out)) {
        free(*out);
        *out = NULL;
        rc = spell_json_field_error(at, name, what);
    }
    return rc;
}

/* The same into a fixed array of `size` bytes (periods, dates, last4);
 * `ok` guarantees the length fits. */
static int get_fixed(const struct spell_json_at *at, const char *name, bool (*ok)(const char *),
                     const char *what, char *out, size_t size)
{
    char *s = NULL;
    int rc = get_format(at, name, REQ, SPELL_MODEL_ID_MAX, ok, what, &s);
    if (rc == SPELL_OK)
        snprintf(out, size, "%s", s);
    free(s);
    return rc;
}

/* A required enum into an int, to be cast by the caller. */
static int get_enum(const struct spell_json_at *at, const char *name,
                    const char *const *names, size_t count, int *out)
{
    return spell_json_get_enum(at, name, REQ, names, count, out, NULL);
}

/* A count or an amount of money: an integer >= 0. */
static int get_count(const struct spell_json_at *at, const char *name, unsigned flags,
                     int64_t *out, bool *present)
{
    return spell_json_get_int64_range(at, name, flags, 0, SPELL_JSON_INT_MAX, out, present);
}

/* A required time other than 0 (0 is written as null). */
static int get_req_time(const struct spell_json_at *at, const char *name, int64_t *out)
{
    return spell_json_get_time(at, name, REQ, out, NULL);
}

/* An optional object, deep-copied; *out stays NULL when absent. */
static int get_owned_object(const struct spell_json_at *at, const char *name, unsigned flags,
                            cJSON **out)
{
    const cJSON *obj = NULL;
    int rc = spell_json_get_object(at, name, flags, &obj);
    if (rc != SPELL_OK || !obj)
        return rc;
    *out = cJSON_Duplicate(obj, 1);
    if (!*out) {
        if (at->err && at->errlen)
            snprintf(at->err, at->errlen, "out of memory");
        return SPELL_ENOMEM;
    }
    return SPELL_OK;
}

/* Counts the elements of an array up to cap + 1, so a huge array is not
 * walked to the end before it is refused. */
static size_t count_capped(const cJSON *arr, size_t cap)
{
    size_t n = 0;
    for (const cJSON *c = arr->child; c && n <= cap; c = c->next)
        n++;
    return n;
}

/* ---- Encoding helpers ---- */

/* A required enum name; SPELL_EINVAL when the value was outside the enum. */
static int add_name(cJSON *j, const char *key, const char *name)
{
    if (!j)
        return SPELL_ENOMEM;
    return name ? spell_json_add_string(j, key, name) : SPELL_EINVAL;
}

static int add_opt_int64(cJSON *j, const char *key, bool has, int64_t v)
{
    if (!j)
        return SPELL_ENOMEM;
    if (!has)
        return cJSON_AddNullToObject(j, key) ? SPELL_OK : SPELL_ENOMEM;
    return spell_json_add_int64(j, key, v);
}

static cJSON *finish(cJSON *j, int failed)
{
    if (failed) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* ---- user ---- */

void spell_user_free(struct spell_user *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->login);
    free(r->name);
    free(r->email);
    free(r->avatar_url);
    memset(r, 0, sizeof *r);
}

int spell_user_from_json(const cJSON *j, struct spell_user *out, char *err, size_t errlen)
{
    struct spell_user u = {0};
    struct spell_json_at at;
    int role = 0;
    int rc;

    if ((rc = root(&at, j, err, errlen))
        || (rc = spell_json_get_string(&at, "id", REQ_NONEMPTY, SPELL_MODEL_ID_MAX, &u.id))
        || (rc = spell_json_get_string(&at, "login", REQ_NONEMPTY, SPELL_MODEL_NAME_MAX, &u.login))
        || (rc = spell_json_get_string(&at, "name", OPT, SPELL_MODEL_NAME_MAX, &u.name))
        || (rc = spell_json_get_string(&at, "email", OPT, SPELL_MODEL_EMAIL_MAX, &u.email))
        || (rc = spell_json_get_string(&at, "avatar_url", OPT, SPELL_MODEL_URL_MAX,
                                       &u.avatar_url))
        || (rc = get_enum(&at, "role", role_names, COUNT(role_names), &role))
        || (rc = get_req_time(&at, "created_at", &u.created_at)))
        goto out;
    u.role = (enum spell_role)role;
out:
    if (rc != SPELL_OK)
        spell_user_free(&u);
    *out = u;
    return rc;
}

cJSON *spell_user_to_json(const struct spell_user *r)
{
    if (!r)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    int failed = !j
        || spell_json_add_string(j, "id", r->id)
        || spell_json_add_string(j, "login", r->login)
        || spell_json_add_string(j, "name", r->name)
        || spell_json_add_string(j, "email", r->email)
        || spell_json_add_string(j, "avatar_url", r->avatar_url)
        || add_name(j, "role", spell_role_name(r->role))
        || spell_json_add_time(j, "created_at", r->created_at);
    return finish(j, failed);
}

/* ---- api_key ---- */

void spell_api_key_free(struct spell_api_key *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->prefix);
    free(r->name);
    free(r->key);
    memset(r, 0, sizeof *r);
}

int spell_api_key_from_json(const cJSON *j, struct spell_api_key *out, char *err, size_t errlen)
{
    struct spell_api_key k = {0};
    struct spell_json_at at;
    int rc;

    if ((rc = root(&at, j, err, errlen))
        || (rc = spell_json_get_string(&at, "id", REQ_NONEMPTY, SPELL_MODEL_ID_MAX, &k.id))
        || (rc = get_format(&at, "prefix", REQ, SPELL_MODEL_ID_MAX, key_prefix_valid,
                            "must be 8 letters or digits", &k.prefix))
        || (rc = spell_json_get_string(&at, "name", OPT, SPELL_MODEL_NAME_MAX, &k.name))
        || (rc = get_req_time(&at, "created_at", &k.created_at))
        || (rc = spell_json_get_time(&at, "last_used_at", OPT, &k.last_used_at, NULL))
        || (rc = spell_json_get_string(&at, "key", OPT_NONEMPTY, SPELL_MODEL_KEY_MAX, &k.key)))
        goto out;
out:
    if (rc != SPELL_OK)
        spell_api_key_free(&k);
    *out = k;
    return rc;
}

cJSON *spell_api_key_to_json(const struct spell_api_key *r)
{
    if (!r)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    int failed = !j
        || spell_json_add_string(j, "id", r->id)
        || spell_json_add_string(j, "prefix", r->prefix)
        || spell_json_add_string(j, "name", r->name)
        || spell_json_add_time(j, "created_at", r->created_at)
        || spell_json_add_time(j, "last_used_at", r->last_used_at)
        || (r->key && spell_json_add_string(j, "key", r->key));
    return finish(j, failed);
}

/* ---- budget ---- */

void spell_budget_free(struct spell_budget *r)
{
    if (r)
        memset(r, 0, sizeof *r);
}

int spell_budget_from_json(const cJSON *j, struct spell_budget *out, char *err, size_t errlen)
{
    struct spell_budget b = {0};
    struct spell_json_at at;
    int rc;

    if ((rc = root(&at, j, err, errlen))
        || (rc = get_fixed(&at, "period", period_valid, "must be a period YYYY-MM",
                           b.period, sizeof b.period))
        || (rc = get_count(&at, "hard_limit_cents", REQ, &b.hard_limit_cents, NULL))
        || (rc = get_count(&at, "soft_limit_cents", OPT, &b.soft_limit_cents,
                           &b.has_soft_limit)))
        goto out;
out:
    if (rc != SPELL_OK)
        spell_budget_free(&b);
    *out = b;
    return rc;
}

cJSON *spell_budget_to_json(const struct spell_budget *r)
{
    if (!r)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    int failed = !j
        || spell_json_add_string(j, "period", r->period)
        || spell_json_add_int64(j, "hard_limit_cents", r->hard_limit_cents)
        || add_opt_int64(j, "soft_limit_cents", r->has_soft_limit, r->soft_limit_cents);
    return finish(j, failed);
}

int spell_budget_validate(const struct spell_budget *b, char *err, size_t errlen)
{
    if (b->hard_limit_cents < SPELL_BUDGET_HARD_MIN_CENTS
        || b->hard_limit_cents > SPELL_BUDGET_HARD_MAX_CENTS) {
        if (err && errlen)
            snprintf(err, errlen, "field 'hard_limit_cents' must be between %d and %d",
                     SPELL_BUDGET_HARD_MIN_CENTS, SPELL_BUDGET_HARD_MAX_CENTS);
        return SPELL_EINVAL;
    }
    if (b->has_soft_limit
        && (b->soft_limit_cents < 0 || b->soft_limit_cents > b->hard_limit_cents)) {
        if (err && errlen)
            snprintf(err, errlen,
                     "field 'soft_limit_cents' must be between 0 and the hard limit (%lld)",
                     (long long)b->hard_limit_cents);
        return SPELL_EINVAL;
    }
    return SPELL_OK;
}

/* ---- usage ---- */

void spell_usage_free(struct spell_usage *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_by_spell; i++)
        free(r->by_spell[i].spell_key);
    free(r->by_spell);
    free(r->daily);
    memset(r, 0, sizeof *r);
}

/* Checks an array member's length against cap and that every element is
 * an object; *n receives the length. */
static int get_object_array(const struct spell_json_at *at, const char *name, size_t cap,
                            const cJSON **arr, size_t *n)
{
    char what[64];
    int rc = spell_json_get_array(at, name, REQ, arr);
    if (rc != SPELL_OK)
        return rc;
    *n = count_capped(*arr, cap);
    if (*n > cap) {
        snprintf(what, sizeof what, "must have at most %zu elements", cap);
        return spell_json_field_error(at, name, what);
    }
    size_t i = 0;
    for (const cJSON *e = (*arr)->child; e; e = e->next, i++) {
        if (!cJSON_IsObject(e)) {
            char elem[SPELL_JSON_PATH_MAX];
            snprintf(elem, sizeof elem, "%s[%zu]", name, i);
            return spell_json_field_error(at, elem, "must be an object");
        }
    }
    return SPELL_OK;
}

static int get_daily(const struct spell_json_at *at, struct spell_usage *u)
{
    const cJSON *arr = NULL;
    size_t n = 0, i = 0;
    int rc = get_object_array(at, "daily", SPELL_USAGE_DAYS_MAX, &arr, &n);
    if (rc != SPELL_OK || n == 0)
        return rc;
    u->daily = calloc(n, sizeof *u->daily);
    if (!u->daily)
        return SPELL_ENOMEM;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        char path[SPELL_JSON_PATH_MAX];
        struct spell_json_at sub;
        struct spell_usage_day *d = &u->daily[i];
        spell_json_at_element(&sub, at, "daily", i, e, path, sizeof path);
        if ((rc = get_fixed(&sub, "date", date_valid, "must be a date YYYY-MM-DD",
                            d->date, sizeof d->date))
            || (rc = get_count(&sub, "spent_cents", REQ, &d->spent_cents, NULL))
            || (rc = get_count(&sub, "calls", REQ, &d->calls, NULL)))
            return rc;
        u->n_daily = i + 1;
    }
    return SPELL_OK;
}

static int get_by_spell(const struct spell_json_at *at, struct spell_usage *u)
{
    const cJSON *arr = NULL;
    size_t n = 0, i = 0;
    int rc = get_object_array(at, "by_spell", SPELL_USAGE_SPELLS_MAX, &arr, &n);
    if (rc != SPELL_OK || n == 0)
        return rc;
    u->by_spell = calloc(n, sizeof *u->by_spell);
    if (!u->by_spell)
        return SPELL_ENOMEM;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        char path[SPELL_JSON_PATH_MAX];
        struct spell_json_at sub;
        struct spell_usage_spell *s = &u->by_spell[i];
        spell_json_at_element(&sub, at, "by_spell", i, e, path, sizeof path);
        /* Counted first, so spell_usage_free() releases a partial entry. */
        u->n_by_spell = i + 1;
        if ((rc = get_format(&sub, "spell_key", REQ, SPELL_MODEL_ID_MAX, spell_spell_key_valid,
                             "must be a spell key", &s->spell_key))
            || (rc = get_count(&sub, "spent_cents", REQ, &s->spent_cents, NULL))
            || (rc = get_count(&sub, "calls", REQ, &s->calls, NULL)))
            return rc;
    }
    return SPELL_OK;
}

int spell_usage_from_json(const cJSON *j, struct spell_usage *out, char *err, size_t errlen)
{
    struct spell_usage u = {0};
    struct spell_json_at at;
    int rc;

    if ((rc = root(&at, j, err, errlen))
        || (rc = get_fixed(&at, "period", period_valid, "must be a period YYYY-MM",
                           u.period, sizeof u.period))
        || (rc = get_count(&at, "calls", REQ, &u.calls, NULL))
        || (rc = get_count(&at, "spent_cents", REQ, &u.spent_cents, NULL))
        || (rc = get_count(&at, "reserved_cents", REQ, &u.reserved_cents, NULL))
        || (rc = get_count(&at, "hard_limit_cents", REQ, &u.hard_limit_cents, NULL))
        || (rc = get_count(&at, "soft_limit_cents", OPT, &u.soft_limit_cents,
                           &u.has_soft_limit))
        || (rc = get_count(&at, "remaining_cents", REQ, &u.remaining_cents, NULL))
        || (rc = get_daily(&at, &u))
        || (rc = get_by_spell(&at, &u)))
        goto out;
out:
    if (rc == SPELL_ENOMEM && err && errlen)
        snprintf(err, errlen, "out of memory");
    if (rc != SPELL_OK)
        spell_usage_free(&u);
    *out = u;
    return rc;
}

cJSON *spell_usage_to_json(const struct spell_usage *r)
{
    if (!r)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    cJSON *daily = NULL, *by_spell = NULL;
    int failed = !j
        || spell_json_add_string(j, "period", r->period)
        || spell_json_add_int64(j, "calls", r->calls)
        || spell_json_add_int64(j, "spent_cents", r->spent_cents)
        || spell_json_add_int64(j, "reserved_cents", r->reserved_cents)
        || spell_json_add_int64(j, "hard_limit_cents", r->hard_limit_cents)
        || add_opt_int64(j, "soft_limit_cents", r->has_soft_limit, r->soft_limit_cents)
        || spell_json_add_int64(j, "remaining_cents", r->remaining_cents)
        || !(daily = cJSON_AddArrayToObject(j, "daily"))
        || !(by_spell = cJSON_AddArrayToObject(j, "by_spell"));
    for (size_t i = 0; !failed && i < r->n_daily; i++) {
        const struct spell_usage_day *d = &r->daily[i];
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(daily, e)) {
            cJSON_Delete(e);
            failed = 1;
            break;
        }
        failed = spell_json_add_string(e, "date", d->date)
            || spell_json_add_int64(e, "spent_cents", d->spent_cents)
            || spell_json_add_int64(e, "calls", d->calls);
    }
    for (size_t i = 0; !failed && i < r->n_by_spell; i++) {
        const struct spell_usage_spell *s = &r->by_spell[i];
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(by_spell, e)) {
            cJSON_Delete(e);
            failed = 1;
            break;
        }
        failed = spell_json_add_string(e, "spell_key", s->spell_key)
            || spell_json_add_int64(e, "spent_cents", s->spent_cents)
            || spell_json_add_int64(e, "calls", s->calls);
    }
    return finish(j, failed);
}

/* ---- payment_method ---- */

void spell_payment_method_free(struct spell_payment_method *r)
{
    if (!r)
        return;
    free(r->brand);
    memset(r, 0, sizeof *r);
}

int spell_payment_method_from_json(const cJSON *j, struct spell_payment_method *out,
                                   char *err, size_t errlen)
{
    struct spell_payment_method p = {0};
    struct spell_json_at at;
    int64_t month = 0, year = 0;
    int status = 0;
    int rc;

    if ((rc = root(&at, j, err, errlen))
        || (rc = spell_json_get_string(&at, "brand", REQ_NONEMPTY, SPELL_MODEL_NAME_MAX,
                                       &p.brand))
        || (rc = get_fixed(&at, "last4", last4_valid, "must be four digits",
                           p.last4, sizeof p.last4))
        || (rc = spell_json_get_int64_range(&at, "exp_month", REQ, 1, 12, &month, NULL))
        || (rc = spell_json_get_int64_range(&at, "exp_year", REQ, 1970, 9999, &year, NULL))
        || (rc = get_enum(&at, "status", payment_status_names, COUNT(payment_status_names),
                          &status)))
        goto out;
    p.exp_month = (int)month;
    p.exp_year = (int)year;
    p.status = (enum spell_payment_status)status;
out:
    if (rc != SPELL_OK)
        spell_payment_method_free(&p);
    *out = p;
    return rc;
}

cJSON *spell_payment_method_to_json(const struct spell_payment_method *r)
{
    if (!r)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    int failed = !j
        || spell_json_add_string(j, "brand", r->brand)
        || spell_json_add_string(j, "last4", r->last4)
        || spell_json_add_int64(j, "exp_month", r->exp_month)
        || spell_json_add_int64(j, "exp_year", r->exp_year)
        || add_name(j, "status", spell_payment_status_name(r->status));
    return finish(j, failed);
}

/* ---- spell ---- */

void spell_spell_free(struct spell_spell *r)
{
    if (!r)
        return;
    free(r->key);
    free(r->name);
    free(r->summary);
    free(r->version);
    cJSON_Delete(r->inputs_schema);
    cJSON_Delete(r->execution);
    memset(r, 0, sizeof *r);
}

/* "pricing_model" and the "pricing" object.  The model names come from
 * cost.h, whose enum runs 0, 1, 2, ... */
static int get_pricing(const struct spell_json_at *at, struct spell_pricing *p)
{
    const char *names[PRICING_MODELS_MAX];
    size_t count = 0;
    const cJSON *obj = NULL;
    char path[SPELL_JSON_PATH_MAX];
    struct spell_json_at sub;
    int model = 0;
    int rc;

    while (count < PRICING_MODELS_MAX
           && (names[count] = spell_pricing_model_name((enum spell_pricing_model)count)))
        count++;
    if ((rc = get_enum(at, "pricing_model", names, count, &model)))
        return rc;
    p->model = (enum spell_pricing_model)model;
    rc = spell_json_get_object(at, "pricing", p->model == SPELL_PRICING_FREE ? OPT : REQ, &obj);
    if (rc != SPELL_OK || !obj)
        return rc;
    spell_json_at_member(&sub, at, "pricing", obj, path, sizeof path);
    switch (p->model) {
    case SPELL_PRICING_FREE:
        return SPELL_OK;
    case SPELL_PRICING_FLAT:
        return get_count(&sub, "flat_cents", REQ, &p->flat_cents, NULL);
    case SPELL_PRICING_METERED:
        if ((rc = get_count(&sub, "base_cents", REQ, &p->base_cents, NULL)))
            return rc;
        return get_count(&sub, "per_kb_cents", REQ, &p->per_kb_cents, NULL);
    }
    return spell_json_field_error(at, "pricing_model", "is not supported");
}

int spell_spell_from_json(const cJSON *j, struct spell_spell *out, char *err, size_t errlen)
{
    struct spell_spell s = {0};
    struct spell_json_at at;
    int status = 0, mode = 0;
    int rc;

    if ((rc = root(&at, j, err, errlen))
        || (rc = get_format(&at, "key", REQ, SPELL_MODEL_ID_MAX, spell_spell_key_valid,
                            "must be 1 to 64 of a-z, 0-9, '-' and '_'", &s.key))
        || (rc = spell_json_get_string(&at, "name", REQ_NONEMPTY, SPELL_MODEL_NAME_MAX, &s.name))
        || (rc = spell_json_get_string(&at, "summary", OPT, SPELL_MODEL_TEXT_MAX, &s.summary))
        || (rc = spell_json_get_string(&at, "version", REQ_NONEMPTY, SPELL_MODEL_NAME_MAX,
                                       &s.version))
        || (rc = get_enum(&at, "status", spell_status_names, COUNT(spell_status_names),
                          &status))
        || (rc = get_enum(&at, "execution_mode", exec_mode_names, COUNT(exec_mode_names),
                          &mode))
        || (rc = get_pricing(&at, &s.pricing))
        || (rc = get_owned_object(&at, "inputs_schema", OPT, &s.inputs_schema))
        || (rc = get_owned_object(&at, "execution", OPT, &s.execution))
        || (rc = get_count(&at, "avg_cost_cents", OPT, &s.avg_cost_cents, &s.has_avg_cost))
        || (rc = get_count(&at, "avg_duration_ms", OPT, &s.avg_duration_ms,
                           &s.has_avg_duration)))
        goto out;
    s.status = (enum spell_spell_status)status;
    s.execution_mode = (enum spell_exec_mode)mode;
out:
    if (rc != SPELL_OK)
        spell_spell_free(&s);
    *out = s;
    return rc;
}

static int add_pricing(cJSON *j, const struct spell_pricing *p)
{
    cJSON *obj = j ? cJSON_AddObjectToObject(j, "pricing") : NULL;
    if (!obj)
        return SPELL_ENOMEM;
    switch (p->model) {
    case SPELL_PRICING_FREE:
        return SPELL_OK;
    case SPELL_PRICING_FLAT:
        return spell_json_add_int64(obj, "flat_cents", p->flat_cents);
    case SPELL_PRICING_METERED:
        return spell_json_add_int64(obj, "base_cents", p->base_cents)
            || spell_json_add_int64(obj, "per_kb_cents", p->per_kb_cents)
            ? SPELL_ENOMEM : SPELL_OK;
    }
    return SPELL_EINVAL;
}

cJSON *spell_spell_to_json(const struct spell_spell *r)
{
    if (!r)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    int failed = !j
        || spell_json_add_string(j, "key", r->key)
        || spell_json_add_string(j, "name", r->name)
        || spell_json_add_string(j, "summary", r->summary)
        || spell_json_add_string(j, "version", r->version)
        || add_name(j, "status", spell_spell_status_name(r->status))
        || add_name(j, "execution_mode", spell_exec_mode_name(r->execution_mode))
        || add_name(j, "pricing_model", spell_pricing_model_name(r->pricing.model))
        || add_pricing(j, &r->pricing)
        || spell_json_add_copy(j, "inputs_schema", r->inputs_schema)
        || spell_json_add_copy(j, "execution", r->execution)
        || add_opt_int64(j, "avg_cost_cents", r->has_avg_cost, r->avg_cost_cents)
        || add_opt_int64(j, "avg_duration_ms", r->has_avg_duration, r->avg_duration_ms);
    return finish(j, failed);
}

/* ---- cast ---- */

void spell_cast_free(struct spell_cast *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->spell_key);
    free(r->spell_version);
    free(r->message);
    free(r->input_hash);
    free(r->run_url);
    free(r->artifact_url);
    free(r->error.code);
    free(r->error.message);
    memset(r, 0, sizeof *r);
}

static int get_cast_error(const struct spell_json_at *at, struct spell_cast *c)
{
    const cJSON *obj = NULL;
    char path[SPELL_JSON_PATH_MAX];
    struct spell_json_at sub;
    int rc = spell_json_get_object(at, "error", OPT, &obj);
    if (rc != SPELL_OK || !obj)
        return rc;
    spell_json_at_member(&sub, at, "error", obj, path, sizeof path);
    if ((rc = spell_json_get_string(&sub, "code", REQ_NONEMPTY, SPELL_MODEL_ID_MAX,
                                    &c->error.code))
        || (rc = spell_json_get_string(&sub, "message", REQ, SPELL_MODEL_TEXT_MAX,
                                       &c->error.message)))
        return rc;
    c->has_error = true;
    return SPELL_OK;
}

int spell_cast_from_json(const cJSON *j, struct spell_cast *out, char *err, size_t errlen)
{
    struct spell_cast c = {0};
    struct spell_json_at at;
    int mode = 0, status = 0;
    int64_t progress = 0;
    int rc;

    if ((rc = root(&at, j, err, errlen))
        || (rc = get_format(&at, "id", REQ, SPELL_MODEL_ID_MAX, spell_cast_id_valid,
                            "must be a cast id (cst_ and a 26-character ULID)", &c.id))
        || (rc = get_format(&at, "spell_key", REQ, SPELL_MODEL_ID_MAX, spell_spell_key_valid,
                            "must be a spell key", &c.spell_key))
        || (rc = spell_json_get_string(&at, "spell_version", REQ_NONEMPTY, SPELL_MODEL_NAME_MAX,
                                       &c.spell_version))
        || (rc = get_enum(&at, "mode", exec_mode_names, COUNT(exec_mode_names), &mode))
        || (rc = get_enum(&at, "status", cast_status_names, COUNT(cast_status_names), &status))
        || (rc = spell_json_get_int64_range(&at, "progress", REQ, 0, 100, &progress, NULL))
        || (rc = spell_json_get_string(&at, "message", OPT, SPELL_MODEL_TEXT_MAX, &c.message))
        || (rc = get_format(&at, "input_hash", REQ, SPELL_MODEL_ID_MAX, spell_hash_hex_valid,
                            "must be 64 lowercase hex digits", &c.input_hash))
        || (rc = get_count(&at, "estimated_cost_cents", REQ, &c.estimated_cost_cents, NULL))
        || (rc = get_count(&at, "cost_cents", OPT, &c.cost_cents, &c.has_cost))
        || (rc = spell_json_get_string(&at, "run_url", OPT, SPELL_MODEL_URL_MAX, &c.run_url))
        || (rc = spell_json_get_string(&at, "artifact_url", OPT, SPELL_MODEL_URL_MAX,
                                       &c.artifact_url))
        || (rc = get_cast_error(&at, &c))
        || (rc = get_req_time(&at, "created_at", &c.created_at))
        || (rc = spell_json_get_time(&at, "started_at", OPT, &c.started_at, NULL))
        || (rc = spell_json_get_time(&at, "finished_at", OPT, &c.finished_at, NULL))
        || (rc = get_count(&at, "duration_ms", OPT, &c.duration_ms, &c.has_duration)))
        goto out;
    c.mode = (enum spell_exec_mode)mode;
    c.status = (enum spell_cast_status)status;
    c.progress = (int)progress;
out:
    if (rc != SPELL_OK)
        spell_cast_free(&c);
    *out = c;
    return rc;
}

static int add_cast_error(cJSON *j, const struct spell_cast *r)
{
    if (!j)
        return SPELL_ENOMEM;
    if (!r->has_error)
        return cJSON_AddNullToObject(j, "error") ? SPELL_OK : SPELL_ENOMEM;
    cJSON *e = cJSON_AddObjectToObject(j, "error");
    if (!e)
        return SPELL_ENOMEM;
    return spell_json_add_string(e, "code", r->error.code)
        || spell_json_add_string(e, "message", r->error.message)
        ? SPELL_ENOMEM : SPELL_OK;
}

cJSON *spell_cast_to_json(const struct spell_cast *r)
{
    if (!r)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    int failed = !j
        || spell_json_add_string(j, "id", r->id)
        || spell_json_add_string(j, "spell_key", r->spell_key)
        || spell_json_add_string(j, "spell_version", r->spell_version)
        || add_name(j, "mode", spell_exec_mode_name(r->mode))
        || add_name(j, "status", spell_cast_status_name(r->status))
        || spell_json_add_int64(j, "progress", r->progress)
        || spell_json_add_string(j, "message", r->message)
        || spell_json_add_string(j, "input_hash", r->input_hash)
        || spell_json_add_int64(j, "estimated_cost_cents", r->estimated_cost_cents)
        || add_opt_int64(j, "cost_cents", r->has_cost, r->cost_cents)
        || spell_json_add_string(j, "run_url", r->run_url)
        || spell_json_add_string(j, "artifact_url", r->artifact_url)
        || add_cast_error(j, r)
        || spell_json_add_time(j, "created_at", r->created_at)
        || spell_json_add_time(j, "started_at", r->started_at)
        || spell_json_add_time(j, "finished_at", r->finished_at)
        || add_opt_int64(j, "duration_ms", r->has_duration, r->duration_ms);
    return finish(j, failed);
}

/* ---- cast event ---- */

void spell_cast_event_free(struct spell_cast_event *r)
{
    if (!r)
        return;
    free(r->type);
    cJSON_Delete(r->data);
    memset(r, 0, sizeof *r);
}

int spell_cast_event_from_json(const cJSON *j, struct spell_cast_event *out,
                               char *err, size_t errlen)
{
    struct spell_cast_event e = {0};
    struct spell_json_at at;
    int rc;

    if ((rc = root(&at, j, err, errlen))
        || (rc = spell_json_get_int64_range(&at, "seq", REQ, 1, SPELL_JSON_INT_MAX, &e.seq, NULL))
        || (rc = spell_json_get_string(&at, "type", REQ_NONEMPTY, SPELL_MODEL_ID_MAX, &e.type))
        || (rc = get_owned_object(&at, "data", REQ, &e.data))
        || (rc = get_req_time(&at, "ts", &e.ts)))
        goto out;
out:
    if (rc != SPELL_OK)
        spell_cast_event_free(&e);
    *out = e;
    return rc;
}

cJSON *spell_cast_event_to_json(const struct spell_cast_event *r)
{
    if (!r)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    int failed = !j
        || spell_json_add_int64(j, "seq", r->seq)
        || spell_json_add_string(j, "type", r->type)
        || spell_json_add_copy(j, "data", r->data)
        || spell_json_add_time(j, "ts", r->ts);
    return finish(j, failed);
}

/* ---- ledger entry ---- */

void spell_ledger_entry_free(struct spell_ledger_entry *r)
{
    if (!r)
        return;
    free(r->user_id);
    free(r->cast_id);
    free(r->prev_hash);
    free(r->hash);
    memset(r, 0, sizeof *r);
}

int spell_ledger_entry_from_json(const cJSON *j, struct spell_ledger_entry *out,
                                 char *err, size_t errlen)
{
    struct spell_ledger_entry l = {0};
    struct spell_json_at at;
    int kind = 0;
    int rc;

    if ((rc = root(&at, j, err, errlen))
        || (rc = spell_json_get_int64_range(&at, "seq", REQ, 1, SPELL_JSON_INT_MAX, &l.seq, NULL))
        || (rc = get_req_time(&at, "ts", &l.ts))
        || (rc = spell_json_get_string(&at, "user_id", OPT_NONEMPTY, SPELL_MODEL_ID_MAX,
                                       &l.user_id))
        || (rc = get_format(&at, "cast_id", OPT, SPELL_MODEL_ID_MAX, spell_cast_id_valid,
                            "must be a cast id (cst_ and a 26-character ULID)", &l.cast_id))
        || (rc = get_enum(&at, "kind", ledger_kind_names, COUNT(ledger_kind_names), &kind))
        || (rc = spell_json_get_int64(&at, "amount_cents", REQ, &l.amount_cents, NULL))
        || (rc = get_format(&at, "prev_hash", REQ, SPELL_MODEL_ID_MAX, spell_hash_hex_valid,
                            "must be 64 lowercase hex digits", &l.prev_hash))
        || (rc = get_format(&at, "hash", REQ, SPELL_MODEL_ID_MAX, spell_hash_hex_valid,
                            "must be 64 lowercase hex digits", &l.hash)))
        goto out;
    l.kind = (enum spell_ledger_kind)kind;
out:
    if (rc != SPELL_OK)
        spell_ledger_entry_free(&l);
    *out = l;
    return rc;
}

cJSON *spell_ledger_entry_to_json(const struct spell_ledger_entry *r)
{
    if (!r)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    int failed = !j
        || spell_json_add_int64(j, "seq", r->seq)
        || spell_json_add_time(j, "ts", r->ts)
        || spell_json_add_string(j, "user_id", r->user_id)
        || spell_json_add_string(j, "cast_id", r->cast_id)
        || add_name(j, "kind", spell_ledger_kind_name(r->kind))
        || spell_json_add_int64(j, "amount_cents", r->amount_cents)
        || spell_json_add_string(j, "prev_hash", r->prev_hash)
        || spell_json_add_string(j, "hash", r->hash);
    return finish(j, failed);
}

/* ---- API error body ---- */

void spell_error_body_free(struct spell_error_body *r)
{
    if (!r)
        return;
    free(r->code);
    free(r->message);
    cJSON_Delete(r->details);
    memset(r, 0, sizeof *r);
    r->api_error = -1;
}

int spell_error_body_from_json(const cJSON *j, struct spell_error_body *out,
                               char *err, size_t errlen)
{
    struct spell_error_body b = {.api_error = -1};
    struct spell_json_at at, sub;
    char path[SPELL_JSON_PATH_MAX];
    const cJSON *obj = NULL;
    int rc;

    if ((rc = root(&at, j, err, errlen))
        || (rc = spell_json_get_object(&at, "error", REQ, &obj)))
        goto out;
    spell_json_at_member(&sub, &at, "error", obj, path, sizeof path);
    if ((rc = spell_json_get_string(&sub, "code", REQ_NONEMPTY, SPELL_MODEL_ID_MAX, &b.code))
        || (rc = spell_json_get_string(&sub, "message", REQ, SPELL_MODEL_TEXT_MAX, &b.message))
        || (rc = get_owned_object(&sub, "details", OPT, &b.details)))
        goto out;
    b.api_error = spell_api_error_lookup(b.code);
out:
    if (rc != SPELL_OK)
        spell_error_body_free(&b);
    *out = b;
    return rc;
}

cJSON *spell_error_body_to_json(enum spell_api_error e, const char *message,
                                const cJSON *details)
{
    const struct spell_api_error_info *info = spell_api_error_info(e);
    if (!info)
        info = spell_api_error_info(SPELL_ERR_INTERNAL);
    cJSON *j = cJSON_CreateObject();
    cJSON *body = j ? cJSON_AddObjectToObject(j, "error") : NULL;
    int failed = !body
        || spell_json_add_string(body, "code", info->code)
        || spell_json_add_string(body, "message", message ? message : info->sentence)
        || (details && spell_json_add_copy(body, "details", details));
    return finish(j, failed);
}
