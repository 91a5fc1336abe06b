/*
 * Unit tests for core/src/models.c: every resource of DESIGN.md §2 decoded
 * from hand-written JSON with exact values, encoded back with the exact
 * field names, round-tripped, and refused field by field (missing, null,
 * wrong type, unknown enum value, bad format) with a message naming the
 * field.
 */
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"
#include "spell/json.h"
#include "spell/models.h"
#include "tap.h"

#define ERRLEN 256

#define HASH_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define HASH_0 "0000000000000000000000000000000000000000000000000000000000000000"
#define CAST_ID "cst_01ARZ3NDEKTSV4RRFFQ69G5FAV"     /* the ULID spec's example */

static cJSON *P(const char *text)
{
    cJSON *j = NULL;
    char err[ERRLEN];
    if (spell_json_parse(text, strlen(text), NULL, &j, err, sizeof err) != SPELL_OK)
        printf("# test JSON does not parse: %s\n", err);
    return j;
}

/* Prints and frees a tree; NULL stays NULL. */
static char *text_of(cJSON *j)
{
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return t;
}

/* Per-resource wrappers so the table-driven checks below can treat every
 * resource alike: decode and free, and decode-encode-print. */
#define WRAPPERS(res) \
    static int dec_##res(const cJSON *j, char *err) \
    { \
        struct spell_##res r; \
        int rc = spell_##res##_from_json(j, &r, err, ERRLEN); \
        spell_##res##_free(&r); \
        return rc; \
    } \
    static char *recode_##res(const char *text) \
    { \
        struct spell_##res r; \
        char err[ERRLEN] = ""; \
        char *t = NULL; \
        cJSON *j = P(text); \
        if (spell_##res##_from_json(j, &r, err, sizeof err) == SPELL_OK) \
            t = text_of(spell_##res##_to_json(&r)); \
        else \
            printf("# decode failed: %s\n", err); \
        spell_##res##_free(&r); \
        cJSON_Delete(j); \
        return t; \
    }

WRAPPERS(user)
WRAPPERS(api_key)
WRAPPERS(budget)
WRAPPERS(usage)
WRAPPERS(payment_method)
WRAPPERS(spell)
WRAPPERS(cast)
WRAPPERS(cast_event)
WRAPPERS(ledger_entry)

/* Checks that encoding gives `want` exactly and that decoding `want` and
 * encoding again gives `want` once more (so every field survives). */
static void round_trip(char *(*recode)(const char *), const char *text, const char *want,
                       int line)
{
    char *once = recode(text);
    char *twice = once ? recode(once) : NULL;
    if (!once || strcmp(once, want) != 0 || !twice || strcmp(twice, want) != 0) {
        char m[2048];
        snprintf(m, sizeof m, "line %d: encoded\n#   %s\n# want\n#   %s", line,
                 once ? once : "(null)", want);
        tap_fail(__FILE__, line, m);
    }
    free(once);
    free(twice);
}

/* ---- Field tables: every field, its kind and whether it is required. ---- */

struct field {
    const char *name;
    char kind;          /* s string, i integer, o object, a array, f formatted string */
    bool required;
};

/* Wrong values for each kind; every one must be refused. */
static const char *const wrong_s[] = {"true", "7", "[1]", "{\"a\":1}"};
static const char *const wrong_i[] = {"true", "\"7\"", "1.5", "1e300", "[1]", "{}"};
static const char *const wrong_o[] = {"true", "7", "\"x\"", "[1]"};
static const char *const wrong_a[] = {"true", "7", "\"x\"", "{}"};
static const char *const wrong_f[] = {"true", "7", "\"zz not valid\"", "[1]", "\"\""};

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void check_fields(int (*dec)(const cJSON *, char *), const char *text,
                         const struct field *fields, size_t n, int line)
{
    char err[ERRLEN];
    char m[512];
    cJSON *base = P(text);
    if (!base) {
        tap_fail(__FILE__, line, "base text does not parse");
        return;
    }
    err[0] = '\0';
    if (dec(base, err) != SPELL_OK) {
        snprintf(m, sizeof m, "line %d: base text refused: %s", line, err);
        tap_fail(__FILE__, line, m);
    }

    for (size_t i = 0; i < n; i++) {
        const struct field *f = &fields[i];
        char want[128], prefix[128];
        snprintf(want, sizeof want, "field '%s' is required", f->name);
        snprintf(prefix, sizeof prefix, "field '%s' ", f->name);

        /* Missing, then null. */
        for (int pass = 0; pass < 2; pass++) {
            cJSON *j = cJSON_Duplicate(base, 1);
            if (pass == 0)
                cJSON_DeleteItemFromObjectCaseSensitive(j, f->name);
            else
                cJSON_ReplaceItemInObjectCaseSensitive(j, f->name, cJSON_CreateNull());
            err[0] = '\0';
            int rc = dec(j, err);
            if (f->required ? (rc != SPELL_EINVAL || strcmp(err, want) != 0) : rc != SPELL_OK) {
                snprintf(m, sizeof m, "line %d: %s %s: rc %d, err \"%s\"", line, f->name,
                         pass ? "null" : "missing", rc, err);
                tap_fail(__FILE__, line, m);
            }
            cJSON_Delete(j);
        }

        /* Wrong types and values. */
        const char *const *wrong;
        size_t nw;
        switch (f->kind) {
        case 's': wrong = wrong_s; nw = sizeof wrong_s / sizeof *wrong_s; break;
        case 'i': wrong = wrong_i; nw = sizeof wrong_i / sizeof *wrong_i; break;
        case 'o': wrong = wrong_o; nw = sizeof wrong_o / sizeof *wrong_o; break;
        case 'a': wrong = wrong_a; nw = sizeof wrong_a / sizeof *wrong_a; break;
        default: wrong = wrong_f; nw = sizeof wrong_f / sizeof *wrong_f; break;
        }
        for (size_t w = 0; w < nw; w++) {
            cJSON *j = cJSON_Duplicate(base, 1);
            cJSON_ReplaceItemInObjectCaseSensitive(j, f->name, cJSON_Parse(wrong[w]));
            err[0] = '\0';
            int rc = dec(j, err);
            if (rc != SPELL_EINVAL || !starts_with(err, prefix)) {
                snprintf(m, sizeof m, "line %d: %s = %s: rc %d, err \"%s\"", line, f->name,
                         wrong[w], rc, err);
                tap_fail(__FILE__, line, m);
            }
            cJSON_Delete(j);
        }
    }

    /* Unknown fields are ignored. */
    cJSON *j = cJSON_Duplicate(base, 1);
    cJSON_AddItemToObject(j, "zz_future_field", cJSON_Parse("{\"x\":[1,2,{\"y\":null}]}"));
    cJSON_AddNumberToObject(j, "another", 1.5);
    err[0] = '\0';
    if (dec(j, err) != SPELL_OK) {
        snprintf(m, sizeof m, "line %d: unknown field refused: %s", line, err);
        tap_fail(__FILE__, line, m);
    }
    cJSON_Delete(j);

    /* Not an object at all. */
    const char *not_objects[] = {"[]", "\"x\"", "1", "null", "true"};
    for (size_t k = 0; k < sizeof not_objects / sizeof *not_objects; k++) {
        cJSON *v = cJSON_Parse(not_objects[k]);
        err[0] = '\0';
        if (dec(v, err) != SPELL_EINVAL || strcmp(err, "expected a JSON object") != 0)
            tap_fail(__FILE__, line, not_objects[k]);
        cJSON_Delete(v);
    }
    err[0] = '\0';
    if (dec(NULL, err) != SPELL_EINVAL)
        tap_fail(__FILE__, line, "NULL tree accepted");
    cJSON_Delete(base);
}

#define CHECK_FIELDS(res, text, fields) \
    check_fields(dec_##res, text, fields, sizeof fields / sizeof *fields, __LINE__)

/* Decodes text and expects a failure with exactly `want`. */
#define EXPECT_ERR(res, text, want) do { \
    char e_[ERRLEN] = ""; \
    cJSON *j_ = P(text); \
    CHECK(j_ != NULL); \
    CHECK_INT(dec_##res(j_, e_), SPELL_EINVAL); \
    CHECK_STR(e_, want); \
    cJSON_Delete(j_); \
} while (0)

#define EXPECT_OK(res, text) do { \
    char e_[ERRLEN] = ""; \
    cJSON *j_ = P(text); \
    CHECK(j_ != NULL); \
    CHECK_INT(dec_##res(j_, e_), SPELL_OK); \
    CHECK_STR(e_, ""); \
    cJSON_Delete(j_); \
} while (0)

/* ---- enums ---- */

static void test_enums(void)
{
    enum spell_role role = SPELL_ROLE_CASTER;
    enum spell_cast_status cs = SPELL_CAST_QUEUED;
    enum spell_exec_mode mode = SPELL_MODE_SERVICE;
    enum spell_spell_status ss = SPELL_SPELL_DRAFT;
    enum spell_payment_status ps = SPELL_PAYMENT_ACTIVE;
    enum spell_ledger_kind lk = SPELL_LEDGER_RESERVE;

    CHECK_STR(spell_role_name(SPELL_ROLE_CASTER), "caster");
    CHECK_STR(spell_role_name(SPELL_ROLE_MAKER), "maker");
    CHECK_STR(spell_role_name(SPELL_ROLE_ADMIN), "admin");
    CHECK(spell_role_name((enum spell_role)3) == NULL);
    CHECK(spell_role_name((enum spell_role)-1) == NULL);
    CHECK_INT(spell_role_parse("admin", &role), SPELL_OK);
    CHECK_INT(role, SPELL_ROLE_ADMIN);
    CHECK_INT(spell_role_parse("Admin", &role), SPELL_EINVAL);
    CHECK_INT(spell_role_parse(NULL, &role), SPELL_EINVAL);
    CHECK_INT(role, SPELL_ROLE_ADMIN);

    const char *statuses[] = {"queued", "running", "succeeded", "failed", "canceled"};
    for (int i = 0; i < 5; i++) {
        CHECK_STR(spell_cast_status_name((enum spell_cast_status)i), statuses[i]);
        CHECK_INT(spell_cast_status_parse(statuses[i], &cs), SPELL_OK);
        CHECK_INT(cs, i);
    }
    CHECK(spell_cast_status_name((enum spell_cast_status)5) == NULL);
    CHECK_INT(spell_cast_status_parse("cancelled", &cs), SPELL_EINVAL);
    CHECK_INT(spell_cast_status_parse("", &cs), SPELL_EINVAL);
    CHECK(!spell_cast_status_is_terminal(SPELL_CAST_QUEUED));
    CHECK(!spell_cast_status_is_terminal(SPELL_CAST_RUNNING));
    CHECK(spell_cast_status_is_terminal(SPELL_CAST_SUCCEEDED));
    CHECK(spell_cast_status_is_terminal(SPELL_CAST_FAILED));
    CHECK(spell_cast_status_is_terminal(SPELL_CAST_CANCELED));
    CHECK(!spell_cast_status_is_terminal((enum spell_cast_status)9));

    const char *modes[] = {"service", "workflow", "wasm", "clone"};
    for (int i = 0; i < 4; i++) {
        CHECK_STR(spell_exec_mode_name((enum spell_exec_mode)i), modes[i]);
        CHECK_INT(spell_exec_mode_parse(modes[i], &mode), SPELL_OK);
        CHECK_INT(mode, i);
    }
    CHECK_INT(spell_exec_mode_parse("docker", &mode), SPELL_EINVAL);

    const char *sstat[] = {"draft", "published", "deprecated"};
    for (int i = 0; i < 3; i++) {
        CHECK_STR(spell_spell_status_name((enum spell_spell_status)i), sstat[i]);
        CHECK_INT(spell_spell_status_parse(sstat[i], &ss), SPELL_OK);
        CHECK_INT(ss, i);
    }
    CHECK_INT(spell_spell_status_parse("public", &ss), SPELL_EINVAL);

    CHECK_STR(spell_payment_status_name(SPELL_PAYMENT_ACTIVE), "active");
    CHECK_STR(spell_payment_status_name(SPELL_PAYMENT_FAILED), "failed");
    CHECK_INT(spell_payment_status_parse("failed", &ps), SPELL_OK);
    CHECK_INT(ps, SPELL_PAYMENT_FAILED);
    CHECK_INT(spell_payment_status_parse("expired", &ps), SPELL_EINVAL);

    const char *kinds[] = {"reserve", "settle", "release", "invoice", "adjust"};
    for (int i = 0; i < 5; i++) {
        CHECK_STR(spell_ledger_kind_name((enum spell_ledger_kind)i), kinds[i]);
        CHECK_INT(spell_ledger_kind_parse(kinds[i], &lk), SPELL_OK);
        CHECK_INT(lk, i);
    }
    CHECK_INT(spell_ledger_kind_parse("refund", &lk), SPELL_EINVAL);
}

static void test_formats(void)
{
    CHECK(spell_cast_id_valid(CAST_ID));
    CHECK(spell_cast_id_valid("cst_7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
    CHECK(!spell_cast_id_valid("cst_8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));   /* past 128 bits */
    CHECK(!spell_cast_id_valid("cst_01ARZ3NDEKTSV4RRFFQ69G5FA"));    /* 25 */
    CHECK(!spell_cast_id_valid("cst_01ARZ3NDEKTSV4RRFFQ69G5FAVV"));  /* 27 */
    CHECK(!spell_cast_id_valid("cst_01arz3ndektsv4rrffq69g5fav"));   /* lower case */
    CHECK(!spell_cast_id_valid("cst_01ARZ3NDEKTSV4RRFFQ69G5FAI"));   /* I is not base32 */
    CHECK(!spell_cast_id_valid("cst_01ARZ3NDEKTSV4RRFFQ69G5FAU"));
    CHECK(!spell_cast_id_valid("cas_01ARZ3NDEKTSV4RRFFQ69G5FAV"));
    CHECK(!spell_cast_id_valid("cst_01ARZ3NDEKTSV4/../69G5FAV"));
    CHECK(!spell_cast_id_valid(""));
    CHECK(!spell_cast_id_valid(NULL));

    CHECK(spell_spell_key_valid("thumbnail"));
    CHECK(spell_spell_key_valid("a"));
    CHECK(spell_spell_key_valid("img-2_webp"));
    CHECK(spell_spell_key_valid("0day"));
    CHECK(!spell_spell_key_valid(""));
    CHECK(!spell_spell_key_valid(NULL));
    CHECK(!spell_spell_key_valid("-x"));
    CHECK(!spell_spell_key_valid("_x"));
    CHECK(!spell_spell_key_valid("Thumbnail"));
    CHECK(!spell_spell_key_valid("a/b"));
    CHECK(!spell_spell_key_valid("a.b"));
    CHECK(!spell_spell_key_valid("a b"));
    CHECK(!spell_spell_key_valid("caf\xc3\xa9"));
    char k64[66];
    memset(k64, 'k', 64);
    k64[64] = '\0';
    CHECK(spell_spell_key_valid(k64));
    k64[64] = 'k';
    k64[65] = '\0';
    CHECK(!spell_spell_key_valid(k64));

    CHECK(spell_hash_hex_valid(HASH_A));
    CHECK(spell_hash_hex_valid(HASH_0));
    CHECK(!spell_hash_hex_valid("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"));
    CHECK(!spell_hash_hex_valid(HASH_A "0"));
    CHECK(!spell_hash_hex_valid("9f86"));
    char h[SPELL_HASH_HEX_LEN + 1];
    memcpy(h, HASH_A, sizeof h);
    h[10] = 'g';
    CHECK(!spell_hash_hex_valid(h));
    CHECK(!spell_hash_hex_valid(NULL));
}

/* ---- user ---- */

static const char user_text[] =
    "{\"id\":\"usr_1\",\"login\":\"octocat\",\"name\":\"The Octocat\","
    "\"email\":\"octo@example.com\",\"avatar_url\":\"https://avatars.example/u/1\","
    "\"role\":\"maker\",\"created_at\":\"2026-11-22T17:48:29.123+09:00\"}";

static const struct field user_fields[] = {
    {"id", 's', true}, {"login", 's', true}, {"name", 's', false}, {"email", 's', false},
    {"avatar_url", 's', false}, {"role", 'f', true}, {"created_at", 'f', true},
};

static void test_user(void)
{
    struct spell_user u;
    char err[ERRLEN] = "";
    cJSON *j = P(user_text);
    CHECK_INT(spell_user_from_json(j, &u, err, sizeof err), SPELL_OK);
    CHECK_STR(u.id, "usr_1");
    CHECK_STR(u.login, "octocat");
    CHECK_STR(u.name, "The Octocat");
    CHECK_STR(u.email, "octo@example.com");
    CHECK_STR(u.avatar_url, "https://avatars.example/u/1");
    CHECK_INT(u.role, SPELL_ROLE_MAKER);
    CHECK(u.created_at == INT64_C(1795337309123));
    spell_user_free(&u);
    CHECK(u.id == NULL);
    spell_user_free(&u);        /* twice is safe */
    cJSON_Delete(j);

    round_trip(recode_user, user_text,
               "{\"id\":\"usr_1\",\"login\":\"octocat\",\"name\":\"The Octocat\","
               "\"email\":\"octo@example.com\",\"avatar_url\":\"https://avatars.example/u/1\","
               "\"role\":\"maker\",\"created_at\":\"2026-11-22T08:48:29.123Z\"}", __LINE__);
    round_trip(recode_user,
               "{\"id\":\"u\",\"login\":\"l\",\"name\":null,\"role\":\"admin\","
               "\"created_at\":\"2026-01-01T00:00:00Z\"}",
               "{\"id\":\"u\",\"login\":\"l\",\"name\":null,\"email\":null,\"avatar_url\":null,"
               "\"role\":\"admin\",\"created_at\":\"2026-01-01T00:00:00.000Z\"}", __LINE__);

    CHECK_FIELDS(user, user_text, user_fields);
    EXPECT_ERR(user, "{\"id\":\"u\",\"login\":\"l\",\"role\":\"owner\",\"created_at\":"
                     "\"2026-01-01T00:00:00Z\"}",
               "field 'role' must be one of: caster, maker, admin");
    EXPECT_ERR(user, "{\"id\":\"\",\"login\":\"l\",\"role\":\"admin\",\"created_at\":"
                     "\"2026-01-01T00:00:00Z\"}",
               "field 'id' must not be empty");
    EXPECT_ERR(user, "{\"id\":\"u\",\"login\":\"l\",\"role\":\"admin\",\"created_at\":"
                     "\"2026-01-01\"}",
               "field 'created_at' must be an RFC 3339 time between 1970 and 9999");

    /* A failed decode leaves the caller's struct zeroed. */
    struct spell_user f;
    memset(&f, 0x5a, sizeof f);
    j = P("{\"id\":\"u\",\"login\":\"l\",\"name\":\"n\",\"role\":7}");
    CHECK_INT(spell_user_from_json(j, &f, err, sizeof err), SPELL_EINVAL);
    CHECK(f.id == NULL && f.login == NULL && f.name == NULL && f.created_at == 0);
    cJSON_Delete(j);

    /* Encoding a zeroed struct writes nulls; an enum outside its table fails. */
    struct spell_user z = {0};
    char *t = text_of(spell_user_to_json(&z));
    CHECK_STR(t, "{\"id\":null,\"login\":null,\"name\":null,\"email\":null,\"avatar_url\":null,"
                 "\"role\":\"caster\",\"created_at\":null}");
    free(t);
    z.role = (enum spell_role)42;
    CHECK(spell_user_to_json(&z) == NULL);
    z.role = SPELL_ROLE_CASTER;
    z.created_at = -1;
    CHECK(spell_user_to_json(&z) == NULL);
    CHECK(spell_user_to_json(NULL) == NULL);
}

static void test_string_caps(void)
{
    /* Lengths are capped per field; a hostile 5000-byte login is refused. */
    char *text = malloc(6000);
    CHECK(text != NULL);
    if (!text)
        return;
    int n = snprintf(text, 6000, "{\"id\":\"u\",\"role\":\"admin\",\"created_at\":"
                                 "\"2026-01-01T00:00:00Z\",\"login\":\"");
    memset(text + n, 'x', 5000);
    strcpy(text + n + 5000, "\"}");
    EXPECT_ERR(user, text, "field 'login' must be at most 256 bytes long");
    free(text);

    /* Escapes that decode to control characters pass through unchanged:
     * showing them safely is up to the front end. */
    EXPECT_OK(user, "{\"id\":\"u\",\"login\":\"\\u001b[2J\",\"role\":\"admin\","
                    "\"created_at\":\"2026-01-01T00:00:00Z\"}");
}

/* ---- api_key ---- */

static const char api_key_text[] =
    "{\"id\":\"key_1\",\"prefix\":\"Ab3dE6gH\",\"name\":\"ci\","
    "\"created_at\":\"2026-11-22T08:48:29.123Z\",\"last_used_at\":\"2026-11-23T00:00:00Z\","
    "\"key\":\"sk_live_Ab3dE6gH_0123456789abcdefghijABCDEFGHIJ01xyzXYZ\"}";

static const struct field api_key_fields[] = {
    {"id", 's', true}, {"prefix", 'f', true}, {"name", 's', false},
    {"created_at", 'f', true}, {"last_used_at", 'f', false}, {"key", 's', false},
};

static void test_api_key(void)
{
    struct spell_api_key k;
    char err[ERRLEN] = "";
    cJSON *j = P(api_key_text);
    CHECK_INT(spell_api_key_from_json(j, &k, err, sizeof err), SPELL_OK);
    CHECK_STR(k.id, "key_1");
    CHECK_STR(k.prefix, "Ab3dE6gH");
    CHECK_STR(k.name, "ci");
    CHECK(k.created_at == INT64_C(1795337309123));
    CHECK(k.last_used_at == INT64_C(1795392000000));
    CHECK_STR(k.key, "sk_live_Ab3dE6gH_0123456789abcdefghijABCDEFGHIJ01xyzXYZ");
    spell_api_key_free(&k);
    cJSON_Delete(j);

    round_trip(recode_api_key, api_key_text,
               "{\"id\":\"key_1\",\"prefix\":\"Ab3dE6gH\",\"name\":\"ci\","
               "\"created_at\":\"2026-11-22T08:48:29.123Z\","
               "\"last_used_at\":\"2026-11-23T00:00:00.000Z\","
               "\"key\":\"sk_live_Ab3dE6gH_0123456789abcdefghijABCDEFGHIJ01xyzXYZ\"}", __LINE__);
    /* Listed keys: no "key" member at all, never-used is null. */
    round_trip(recode_api_key,
               "{\"id\":\"key_2\",\"prefix\":\"zzzzzzzz\",\"created_at\":\"2026-11-22T08:48:29Z\","
               "\"last_used_at\":null}",
               "{\"id\":\"key_2\",\"prefix\":\"zzzzzzzz\",\"name\":null,"
               "\"created_at\":\"2026-11-22T08:48:29.000Z\",\"last_used_at\":null}", __LINE__);

    CHECK_FIELDS(api_key, api_key_text, api_key_fields);
    EXPECT_ERR(api_key, "{\"id\":\"k\",\"prefix\":\"abc/../x\",\"created_at\":"
                        "\"2026-11-22T08:48:29Z\"}",
               "field 'prefix' must be 8 letters or digits");
    EXPECT_ERR(api_key, "{\"id\":\"k\",\"prefix\":\"abcdefghi\",\"created_at\":"
                        "\"2026-11-22T08:48:29Z\"}",
               "field 'prefix' must be 8 letters or digits");
}

/* ---- budget ---- */

static const char budget_text[] =
    "{\"period\":\"2026-11\",\"hard_limit_cents\":5000,\"soft_limit_cents\":4000}";

static const struct field budget_fields[] = {
    {"period", 'f', true}, {"hard_limit_cents", 'i', true}, {"soft_limit_cents", 'i', false},
};

static void test_budget(void)
{
    struct spell_budget b;
    char err[ERRLEN] = "";
    cJSON *j = P(budget_text);
    CHECK_INT(spell_budget_from_json(j, &b, err, sizeof err), SPELL_OK);
    CHECK_STR(b.period, "2026-11");
    CHECK_INT(b.hard_limit_cents, 5000);
    CHECK(b.has_soft_limit);
    CHECK_INT(b.soft_limit_cents, 4000);
    CHECK_INT(spell_budget_validate(&b, err, sizeof err), SPELL_OK);
    spell_budget_free(&b);
    cJSON_Delete(j);

    round_trip(recode_budget, budget_text, budget_text, __LINE__);
    round_trip(recode_budget, "{\"period\":\"2026-12\",\"hard_limit_cents\":1000,"
                              "\"soft_limit_cents\":null}",
               "{\"period\":\"2026-12\",\"hard_limit_cents\":1000,\"soft_limit_cents\":null}",
               __LINE__);

    j = P("{\"period\":\"2026-12\",\"hard_limit_cents\":1000}");
    CHECK_INT(spell_budget_from_json(j, &b, err, sizeof err), SPELL_OK);
    CHECK(!b.has_soft_limit);
    CHECK_INT(b.soft_limit_cents, 0);
    cJSON_Delete(j);

    CHECK_FIELDS(budget, budget_text, budget_fields);
    EXPECT_ERR(budget, "{\"period\":\"2026-13\",\"hard_limit_cents\":5000}",
               "field 'period' must be a period YYYY-MM");
    EXPECT_ERR(budget, "{\"period\":\"2026-11-01\",\"hard_limit_cents\":5000}",
               "field 'period' must be a period YYYY-MM");
    EXPECT_ERR(budget, "{\"period\":\"2026-11\",\"hard_limit_cents\":-1}",
               "field 'hard_limit_cents' must be between 0 and 9007199254740991");
    EXPECT_ERR(budget, "{\"period\":\"2026-11\",\"hard_limit_cents\":50.5}",
               "field 'hard_limit_cents' must be an integer");
    EXPECT_ERR(budget, "{\"period\":\"2026-11\",\"hard_limit_cents\":\"5000\"}",
               "field 'hard_limit_cents' must be an integer");
    EXPECT_ERR(budget, "{\"period\":\"2026-11\"}", "field 'hard_limit_cents' is required");

    /* Business rules. */
    struct spell_budget v = {.period = "2026-11", .hard_limit_cents = 999};
    CHECK_INT(spell_budget_validate(&v, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "field 'hard_limit_cents' must be between 1000 and 50000");
    v.hard_limit_cents = 50001;
    CHECK_INT(spell_budget_validate(&v, err, sizeof err), SPELL_EINVAL);
    v.hard_limit_cents = 50000;
    CHECK_INT(spell_budget_validate(&v, err, sizeof err), SPELL_OK);
    v.hard_limit_cents = 1000;
    v.has_soft_limit = true;
    v.soft_limit_cents = 1000;
    CHECK_INT(spell_budget_validate(&v, err, sizeof err), SPELL_OK);
    v.soft_limit_cents = 1001;
    CHECK_INT(spell_budget_validate(&v, err, sizeof err), SPELL_EINVAL);
    CHECK_STR(err, "field 'soft_limit_cents' must be between 0 and the hard limit (1000)");
    v.soft_limit_cents = -1;
    CHECK_INT(spell_budget_validate(&v, err, sizeof err), SPELL_EINVAL);
}

/* ---- usage ---- */

static const char usage_text[] =
    "{\"period\":\"2024-02\",\"calls\":12,\"spent_cents\":340,\"reserved_cents\":25,"
    "\"hard_limit_cents\":5000,\"soft_limit_cents\":null,\"remaining_cents\":4635,"
    "\"daily\":[{\"date\":\"2024-02-01\",\"spent_cents\":100,\"calls\":3},"
    "{\"date\":\"2024-02-29\",\"spent_cents\":240,\"calls\":9}],"
    "\"by_spell\":[{\"spell_key\":\"thumbnail\",\"spent_cents\":340,\"calls\":12}]}";

static const struct field usage_fields[] = {
    {"period", 'f', true}, {"calls", 'i', true}, {"spent_cents", 'i', true},
    {"reserved_cents", 'i', true}, {"hard_limit_cents", 'i', true},
    {"soft_limit_cents", 'i', false}, {"remaining_cents", 'i', true},
    {"daily", 'a', true}, {"by_spell", 'a', true},
};

static void test_usage(void)
{
    struct spell_usage u;
    char err[ERRLEN] = "";
    cJSON *j = P(usage_text);
    CHECK_INT(spell_usage_from_json(j, &u, err, sizeof err), SPELL_OK);
    CHECK_STR(u.period, "2024-02");
    CHECK_INT(u.calls, 12);
    CHECK_INT(u.spent_cents, 340);
    CHECK_INT(u.reserved_cents, 25);
    CHECK_INT(u.hard_limit_cents, 5000);
    CHECK(!u.has_soft_limit);
    CHECK_INT(u.remaining_cents, 4635);
    CHECK_INT(u.n_daily, 2);
    if (u.n_daily == 2) {
        CHECK_STR(u.daily[0].date, "2024-02-01");
        CHECK_INT(u.daily[0].spent_cents, 100);
        CHECK_INT(u.daily[0].calls, 3);
        CHECK_STR(u.daily[1].date, "2024-02-29");
        CHECK_INT(u.daily[1].spent_cents, 240);
        CHECK_INT(u.daily[1].calls, 9);
    }
    CHECK_INT(u.n_by_spell, 1);
    if (u.n_by_spell == 1) {
        CHECK_STR(u.by_spell[0].spell_key, "thumbnail");
        CHECK_INT(u.by_spell[0].spent_cents, 340);
        CHECK_INT(u.by_spell[0].calls, 12);
    }
    spell_usage_free(&u);
    CHECK(u.daily == NULL && u.n_daily == 0);
    cJSON_Delete(j);

    round_trip(recode_usage, usage_text, usage_text, __LINE__);
    const char *empty = "{\"period\":\"2026-11\",\"calls\":0,\"spent_cents\":0,"
                        "\"reserved_cents\":0,\"hard_limit_cents\":5000,"
                        "\"soft_limit_cents\":4000,\"remaining_cents\":5000,"
                        "\"daily\":[],\"by_spell\":[]}";
    round_trip(recode_usage, empty, empty, __LINE__);

    CHECK_FIELDS(usage, usage_text, usage_fields);

    /* Elements are checked one by one, with their index in the path. */
    const char *head = "{\"period\":\"2024-02\",\"calls\":1,\"spent_cents\":1,\"reserved_cents\":0,"
                       "\"hard_limit_cents\":5000,\"remaining_cents\":4999,\"by_spell\":[],";
    char text[1024];
    snprintf(text, sizeof text, "%s\"daily\":[{\"date\":\"2024-02-01\",\"spent_cents\":1,"
                                "\"calls\":1},{\"spent_cents\":1,\"calls\":1}]}", head);
    EXPECT_ERR(usage, text, "field 'daily[1].date' is required");
    snprintf(text, sizeof text, "%s\"daily\":[{\"date\":\"2023-02-29\",\"spent_cents\":1,"
                                "\"calls\":1}]}", head);
    EXPECT_ERR(usage, text, "field 'daily[0].date' must be a date YYYY-MM-DD");
    snprintf(text, sizeof text, "%s\"daily\":[{\"date\":\"2024-02-01\",\"spent_cents\":\"1\","
                                "\"calls\":1}]}", head);
    EXPECT_ERR(usage, text, "field 'daily[0].spent_cents' must be an integer");
    snprintf(text, sizeof text, "%s\"daily\":[1]}", head);
    EXPECT_ERR(usage, text, "field 'daily[0]' must be an object");
    snprintf(text, sizeof text, "%s\"daily\":[{\"date\":\"2024-02-01\",\"spent_cents\":1,"
                                "\"calls\":1},null]}", head);
    EXPECT_ERR(usage, text, "field 'daily[1]' must be an object");

    const char *head2 = "{\"period\":\"2024-02\",\"calls\":1,\"spent_cents\":1,"
                        "\"reserved_cents\":0,\"hard_limit_cents\":5000,"
                        "\"remaining_cents\":4999,\"daily\":[],";
    snprintf(text, sizeof text, "%s\"by_spell\":[{\"spell_key\":\"a\",\"spent_cents\":1,"
                                "\"calls\":1},{\"spell_key\":\"b\",\"spent_cents\":1}]}", head2);
    EXPECT_ERR(usage, text, "field 'by_spell[1].calls' is required");
    snprintf(text, sizeof text, "%s\"by_spell\":[{\"spell_key\":\"../etc\",\"spent_cents\":1,"
                                "\"calls\":1}]}", head2);
    EXPECT_ERR(usage, text, "field 'by_spell[0].spell_key' must be a spell key");
    snprintf(text, sizeof text, "%s\"by_spell\":[{\"spell_key\":\"a\",\"spent_cents\":-1,"
                                "\"calls\":1}]}", head2);
    EXPECT_ERR(usage, text,
               "field 'by_spell[0].spent_cents' must be between 0 and 9007199254740991");

    /* Array caps: 31 days pass, 32 do not. */
    char big[8192];
    for (int days = 31; days <= 32; days++) {
        size_t n = (size_t)snprintf(big, sizeof big, "%s\"daily\":[", head);
        for (int d = 0; d < days; d++)
            n += (size_t)snprintf(big + n, sizeof big - n,
                                  "%s{\"date\":\"2024-01-%02d\",\"spent_cents\":0,\"calls\":0}",
                                  d ? "," : "", d % 31 + 1);
        snprintf(big + n, sizeof big - n, "]}");
        if (days == 31)
            EXPECT_OK(usage, big);
        else
            EXPECT_ERR(usage, big, "field 'daily' must have at most 31 elements");
    }
}

/* ---- payment_method ---- */

static const char payment_text[] =
    "{\"brand\":\"visa\",\"last4\":\"4242\",\"exp_month\":12,\"exp_year\":2030,"
    "\"status\":\"active\"}";

static const struct field payment_fields[] = {
    {"brand", 's', true}, {"last4", 'f', true}, {"exp_month", 'i', true},
    {"exp_year", 'i', true}, {"status", 'f', true},
};

static void test_payment_method(void)
{
    struct spell_payment_method p;
    char err[ERRLEN] = "";
    cJSON *j = P(payment_text);
    CHECK_INT(spell_payment_method_from_json(j, &p, err, sizeof err), SPELL_OK);
    CHECK_STR(p.brand, "visa");
    CHECK_STR(p.last4, "4242");
    CHECK_INT(p.exp_month, 12);
    CHECK_INT(p.exp_year, 2030);
    CHECK_INT(p.status, SPELL_PAYMENT_ACTIVE);
    spell_payment_method_free(&p);
    cJSON_Delete(j);

    round_trip(recode_payment_method, payment_text, payment_text, __LINE__);
    CHECK_FIELDS(payment_method, payment_text, payment_fields);
    EXPECT_ERR(payment_method, "{\"brand\":\"visa\",\"last4\":\"4242\",\"exp_month\":12,"
                               "\"exp_year\":2030,\"status\":\"expired\"}",
               "field 'status' must be one of: active, failed");
    EXPECT_ERR(payment_method, "{\"brand\":\"visa\",\"last4\":\"42424\",\"exp_month\":12,"
                               "\"exp_year\":2030,\"status\":\"failed\"}",
               "field 'last4' must be four digits");
    EXPECT_ERR(payment_method, "{\"brand\":\"visa\",\"last4\":\"42a2\",\"exp_month\":12,"
                               "\"exp_year\":2030,\"status\":\"failed\"}",
               "field 'last4' must be four digits");
    EXPECT_ERR(payment_method, "{\"brand\":\"visa\",\"last4\":\"4242\",\"exp_month\":13,"
                               "\"exp_year\":2030,\"status\":\"failed\"}",
               "field 'exp_month' must be between 1 and 12");
    EXPECT_ERR(payment_method, "{\"brand\":\"visa\",\"last4\":\"4242\",\"exp_month\":0,"
                               "\"exp_year\":2030,\"status\":\"failed\"}",
               "field 'exp_month' must be between 1 and 12");
    EXPECT_ERR(payment_method, "{\"brand\":\"visa\",\"last4\":\"4242\",\"exp_month\":1,"
                               "\"exp_year\":30,\"status\":\"failed\"}",
               "field 'exp_year' must be between 1970 and 9999");
}

/* ---- spell ---- */

/* The manifest of DESIGN.md §2, with the catalog's averages added. */
static const char spell_text[] =
    "{\"key\": \"thumbnail\", \"name\": \"Thumbnail\", "
    "\"summary\": \"Scales an image to a thumbnail.\", \"version\": \"1.2.0\", "
    "\"status\": \"published\", \"execution_mode\": \"service\", "
    "\"pricing_model\": \"metered\", \"pricing\": {\"base_cents\": 5, \"per_kb_cents\": 1}, "
    "\"inputs_schema\": {\"type\": \"object\", \"required\": [\"url\"], "
    "\"properties\": {\"url\": {\"type\": \"string\", \"maxLength\": 2048}, "
    "\"width\": {\"type\": \"integer\", \"minimum\": 16, \"maximum\": 4096}}}, "
    "\"execution\": {\"command\": [\"spells/thumbnail.sh\"], \"timeout_s\": 120}, "
    "\"avg_cost_cents\": 6, \"avg_duration_ms\": 1830}";

static const struct field spell_fields[] = {
    {"key", 'f', true}, {"name", 's', true}, {"summary", 's', false}, {"version", 's', true},
    {"status", 'f', true}, {"execution_mode", 'f', true}, {"pricing_model", 'f', true},
    {"pricing", 'o', true}, {"inputs_schema", 'o', false}, {"execution", 'o', false},
    {"avg_cost_cents", 'i', false}, {"avg_duration_ms", 'i', false},
};

static void test_spell(void)
{
    struct spell_spell s;
    char err[ERRLEN] = "";
    cJSON *j = P(spell_text);
    CHECK_INT(spell_spell_from_json(j, &s, err, sizeof err), SPELL_OK);
    CHECK_STR(s.key, "thumbnail");
    CHECK_STR(s.name, "Thumbnail");
    CHECK_STR(s.summary, "Scales an image to a thumbnail.");
    CHECK_STR(s.version, "1.2.0");
    CHECK_INT(s.status, SPELL_SPELL_PUBLISHED);
    CHECK_INT(s.execution_mode, SPELL_MODE_SERVICE);
    CHECK_INT(s.pricing.model, SPELL_PRICING_METERED);
    CHECK_INT(s.pricing.base_cents, 5);
    CHECK_INT(s.pricing.per_kb_cents, 1);
    CHECK_INT(s.pricing.flat_cents, 0);
    CHECK(s.inputs_schema && s.inputs_schema != cJSON_GetObjectItem(j, "inputs_schema"));
    CHECK(cJSON_Compare(s.inputs_schema, cJSON_GetObjectItem(j, "inputs_schema"), 1));
    CHECK(cJSON_Compare(s.execution, cJSON_GetObjectItem(j, "execution"), 1));
    CHECK(s.has_avg_cost);
    CHECK_INT(s.avg_cost_cents, 6);
    CHECK(s.has_avg_duration);
    CHECK_INT(s.avg_duration_ms, 1830);
    spell_spell_free(&s);
    CHECK(s.inputs_schema == NULL);
    cJSON_Delete(j);     /* the struct held its own copies */

    round_trip(recode_spell, spell_text,
               "{\"key\":\"thumbnail\",\"name\":\"Thumbnail\","
               "\"summary\":\"Scales an image to a thumbnail.\",\"version\":\"1.2.0\","
               "\"status\":\"published\",\"execution_mode\":\"service\","
               "\"pricing_model\":\"metered\",\"pricing\":{\"base_cents\":5,\"per_kb_cents\":1},"
               "\"inputs_schema\":{\"type\":\"object\",\"required\":[\"url\"],"
               "\"properties\":{\"url\":{\"type\":\"string\",\"maxLength\":2048},"
               "\"width\":{\"type\":\"integer\",\"minimum\":16,\"maximum\":4096}}},"
               "\"execution\":{\"command\":[\"spells/thumbnail.sh\"],\"timeout_s\":120},"
               "\"avg_cost_cents\":6,\"avg_duration_ms\":1830}", __LINE__);
    round_trip(recode_spell,
               "{\"key\":\"hello\",\"name\":\"Hello\",\"version\":\"1\",\"status\":\"draft\","
               "\"execution_mode\":\"wasm\",\"pricing_model\":\"flat\","
               "\"pricing\":{\"flat_cents\":25,\"base_cents\":99}}",
               "{\"key\":\"hello\",\"name\":\"Hello\",\"summary\":null,\"version\":\"1\","
               "\"status\":\"draft\",\"execution_mode\":\"wasm\",\"pricing_model\":\"flat\","
               "\"pricing\":{\"flat_cents\":25},\"inputs_schema\":null,\"execution\":null,"
               "\"avg_cost_cents\":null,\"avg_duration_ms\":null}", __LINE__);
    /* A free spell needs no pricing object, and ignores one. */
    round_trip(recode_spell,
               "{\"key\":\"free1\",\"name\":\"F\",\"version\":\"1\",\"status\":\"deprecated\","
               "\"execution_mode\":\"clone\",\"pricing_model\":\"free\"}",
               "{\"key\":\"free1\",\"name\":\"F\",\"summary\":null,\"version\":\"1\","
               "\"status\":\"deprecated\",\"execution_mode\":\"clone\",\"pricing_model\":\"free\","
               "\"pricing\":{},\"inputs_schema\":null,\"execution\":null,"
               "\"avg_cost_cents\":null,\"avg_duration_ms\":null}", __LINE__);
    EXPECT_OK(spell, "{\"key\":\"f\",\"name\":\"F\",\"version\":\"1\",\"status\":\"draft\","
                     "\"execution_mode\":\"workflow\",\"pricing_model\":\"free\","
                     "\"pricing\":{\"flat_cents\":\"junk\"}}");

    CHECK_FIELDS(spell, spell_text, spell_fields);

    const char *head = "{\"key\":\"k\",\"name\":\"K\",\"version\":\"1\",\"status\":\"draft\","
                       "\"execution_mode\":\"service\",";
    char text[512];
    snprintf(text, sizeof text, "%s\"pricing_model\":\"flat\",\"pricing\":{}}", head);
    EXPECT_ERR(spell, text, "field 'pricing.flat_cents' is required");
    snprintf(text, sizeof text, "%s\"pricing_model\":\"flat\",\"pricing\":{\"flat_cents\":1.5}}",
             head);
    EXPECT_ERR(spell, text, "field 'pricing.flat_cents' must be an integer");
    snprintf(text, sizeof text, "%s\"pricing_model\":\"flat\",\"pricing\":{\"flat_cents\":-3}}",
             head);
    EXPECT_ERR(spell, text, "field 'pricing.flat_cents' must be between 0 and 9007199254740991");
    snprintf(text, sizeof text, "%s\"pricing_model\":\"metered\",\"pricing\":{\"base_cents\":1}}",
             head);
    EXPECT_ERR(spell, text, "field 'pricing.per_kb_cents' is required");
    snprintf(text, sizeof text, "%s\"pricing_model\":\"metered\","
                                "\"pricing\":{\"per_kb_cents\":1}}", head);
    EXPECT_ERR(spell, text, "field 'pricing.base_cents' is required");
    snprintf(text, sizeof text, "%s\"pricing_model\":\"flat\"}", head);
    EXPECT_ERR(spell, text, "field 'pricing' is required");
    snprintf(text, sizeof text, "%s\"pricing_model\":\"auction\",\"pricing\":{}}", head);
    EXPECT_ERR(spell, text, "field 'pricing_model' must be one of: free, flat, metered");
    snprintf(text, sizeof text, "%s\"pricing_model\":\"free\",\"pricing\":[]}", head);
    EXPECT_ERR(spell, text, "field 'pricing' must be an object");
    EXPECT_ERR(spell, "{\"key\":\"k\",\"name\":\"K\",\"version\":\"1\",\"status\":\"live\","
                      "\"execution_mode\":\"service\",\"pricing_model\":\"free\"}",
               "field 'status' must be one of: draft, published, deprecated");
    EXPECT_ERR(spell, "{\"key\":\"k\",\"name\":\"K\",\"version\":\"1\",\"status\":\"draft\","
                      "\"execution_mode\":\"docker\",\"pricing_model\":\"free\"}",
               "field 'execution_mode' must be one of: service, workflow, wasm, clone");
    EXPECT_ERR(spell, "{\"key\":\"K/../x\",\"name\":\"K\",\"version\":\"1\",\"status\":\"draft\","
                      "\"execution_mode\":\"service\",\"pricing_model\":\"free\"}",
               "field 'key' must be 1 to 64 of a-z, 0-9, '-' and '_'");

    /* From a struct built in code. */
    struct spell_spell c = {0};
    c.key = strdup("metered-x");
    c.name = strdup("M");
    c.version = strdup("2.0.0");
    c.status = SPELL_SPELL_PUBLISHED;
    c.execution_mode = SPELL_MODE_WORKFLOW;
    c.pricing.model = SPELL_PRICING_FLAT;
    c.pricing.flat_cents = 250;
    c.execution = cJSON_Parse("{\"workflow\":\"run.yml\"}");
    c.has_avg_duration = true;
    c.avg_duration_ms = 0;
    cJSON *enc = spell_spell_to_json(&c);
    struct spell_spell d;
    CHECK_INT(spell_spell_from_json(enc, &d, err, sizeof err), SPELL_OK);
    CHECK_STR(d.key, "metered-x");
    CHECK_STR(d.version, "2.0.0");
    CHECK_INT(d.status, SPELL_SPELL_PUBLISHED);
    CHECK_INT(d.execution_mode, SPELL_MODE_WORKFLOW);
    CHECK_INT(d.pricing.model, SPELL_PRICING_FLAT);
    CHECK_INT(d.pricing.flat_cents, 250);
    CHECK(cJSON_Compare(d.execution, c.execution, 1));
    CHECK(d.inputs_schema == NULL);
    CHECK(!d.has_avg_cost);
    CHECK(d.has_avg_duration);
    CHECK_INT(d.avg_duration_ms, 0);
    spell_spell_free(&d);
    cJSON_Delete(enc);
    c.pricing.model = (enum spell_pricing_model)9;
    CHECK(spell_spell_to_json(&c) == NULL);
    spell_spell_free(&c);
}

/* ---- cast ---- */

static const char cast_text[] =
    "{\"id\":\"" CAST_ID "\",\"spell_key\":\"thumbnail\",\"spell_version\":\"1.2.0\","
    "\"mode\":\"service\",\"status\":\"failed\",\"progress\":40,\"message\":\"resizing\","
    "\"input_hash\":\"" HASH_A "\",\"estimated_cost_cents\":6,\"cost_cents\":null,"
    "\"run_url\":\"https://spell.example/runs/1\",\"artifact_url\":null,"
    "\"error\":{\"code\":\"EXIT_STATUS\",\"message\":\"exit status 1\"},"
    "\"created_at\":\"2026-11-22T08:48:29.123Z\",\"started_at\":\"2026-11-22T08:48:30Z\","
    "\"finished_at\":\"2026-11-22T09:48:31.5+01:00\",\"duration_ms\":1500}";

static const struct field cast_fields[] = {
    {"id", 'f', true}, {"spell_key", 'f', true}, {"spell_version", 's', true},
    {"mode", 'f', true}, {"status", 'f', true}, {"progress", 'i', true},
    {"message", 's', false}, {"input_hash", 'f', true}, {"estimated_cost_cents", 'i', true},
    {"cost_cents", 'i', false}, {"run_url", 's', false}, {"artifact_url", 's', false},
    {"error", 'o', false}, {"created_at", 'f', true}, {"started_at", 'f', false},
    {"finished_at", 'f', false}, {"duration_ms", 'i', false},
};

static void test_cast(void)
{
    struct spell_cast c;
    char err[ERRLEN] = "";
    cJSON *j = P(cast_text);
    CHECK_INT(spell_cast_from_json(j, &c, err, sizeof err), SPELL_OK);
    CHECK_STR(c.id, CAST_ID);
    CHECK_STR(c.spell_key, "thumbnail");
    CHECK_STR(c.spell_version, "1.2.0");
    CHECK_INT(c.mode, SPELL_MODE_SERVICE);
    CHECK_INT(c.status, SPELL_CAST_FAILED);
    CHECK_INT(c.progress, 40);
    CHECK_STR(c.message, "resizing");
    CHECK_STR(c.input_hash, HASH_A);
    CHECK_INT(c.estimated_cost_cents, 6);
    CHECK(!c.has_cost);
    CHECK_STR(c.run_url, "https://spell.example/runs/1");
    CHECK(c.artifact_url == NULL);
    CHECK(c.has_error);
    CHECK_STR(c.error.code, "EXIT_STATUS");
    CHECK_STR(c.error.message, "exit status 1");
    CHECK(c.created_at == INT64_C(1795337309123));
    CHECK(c.started_at == INT64_C(1795337310000));
    CHECK(c.finished_at == INT64_C(1795337311500));
    CHECK(c.has_duration);
    CHECK_INT(c.duration_ms, 1500);
    spell_cast_free(&c);
    cJSON_Delete(j);

    round_trip(recode_cast, cast_text,
               "{\"id\":\"" CAST_ID "\",\"spell_key\":\"thumbnail\",\"spell_version\":\"1.2.0\","
               "\"mode\":\"service\",\"status\":\"failed\",\"progress\":40,"
               "\"message\":\"resizing\",\"input_hash\":\"" HASH_A "\","
               "\"estimated_cost_cents\":6,\"cost_cents\":null,"
               "\"run_url\":\"https://spell.example/runs/1\",\"artifact_url\":null,"
               "\"error\":{\"code\":\"EXIT_STATUS\",\"message\":\"exit status 1\"},"
               "\"created_at\":\"2026-11-22T08:48:29.123Z\","
               "\"started_at\":\"2026-11-22T08:48:30.000Z\","
               "\"finished_at\":\"2026-11-22T08:48:31.500Z\",\"duration_ms\":1500}", __LINE__);

    /* A queued cast: everything optional is null. */
    const char *queued =
        "{\"id\":\"" CAST_ID "\",\"spell_key\":\"thumbnail\",\"spell_version\":\"1.2.0\","
        "\"mode\":\"wasm\",\"status\":\"queued\",\"progress\":0,\"message\":null,"
        "\"input_hash\":\"" HASH_A "\",\"estimated_cost_cents\":0,\"cost_cents\":null,"
        "\"run_url\":null,\"artifact_url\":null,\"error\":null,"
        "\"created_at\":\"2026-11-22T08:48:29.123Z\",\"started_at\":null,"
        "\"finished_at\":null,\"duration_ms\":null}";
    round_trip(recode_cast, queued, queued, __LINE__);
    j = P(queued);
    CHECK_INT(spell_cast_from_json(j, &c, err, sizeof err), SPELL_OK);
    CHECK(!c.has_error && !c.has_cost && !c.has_duration);
    CHECK(c.started_at == 0 && c.finished_at == 0 && c.message == NULL);
    spell_cast_free(&c);
    cJSON_Delete(j);

    CHECK_FIELDS(cast, cast_text, cast_fields);

    /* Built in code, settled. */
    struct spell_cast s = {0};
    s.id = strdup(CAST_ID);
    s.spell_key = strdup("k");
    s.spell_version = strdup("1");
    s.mode = SPELL_MODE_CLONE;
    s.status = SPELL_CAST_SUCCEEDED;
    s.progress = 100;
    s.input_hash = strdup(HASH_0);
    s.estimated_cost_cents = 10;
    s.has_cost = true;
    s.cost_cents = 9;
    s.artifact_url = strdup("https://a.example/x.png");
    s.created_at = 1;
    s.started_at = 2;
    s.finished_at = 3;
    s.has_duration = true;
    s.duration_ms = 1;
    cJSON *enc = spell_cast_to_json(&s);
    struct spell_cast d;
    CHECK_INT(spell_cast_from_json(enc, &d, err, sizeof err), SPELL_OK);
    CHECK_STR(d.id, CAST_ID);
    CHECK_INT(d.mode, SPELL_MODE_CLONE);
    CHECK_INT(d.status, SPELL_CAST_SUCCEEDED);
    CHECK_INT(d.progress, 100);
    CHECK(d.has_cost);
    CHECK_INT(d.cost_cents, 9);
    CHECK_STR(d.artifact_url, "https://a.example/x.png");
    CHECK(d.created_at == 1 && d.started_at == 2 && d.finished_at == 3);
    CHECK(d.has_duration && d.duration_ms == 1);
    CHECK(!d.has_error);
    spell_cast_free(&d);
    cJSON_Delete(enc);
    spell_cast_free(&s);
}

static void test_cast_errors(void)
{
    char text[1024];
#define CAST_FMT \
        "{\"id\":\"%s\",\"spell_key\":\"thumbnail\",\"spell_version\":\"1\"," \
        "\"mode\":\"%s\",\"status\":\"%s\",\"progress\":%s," \
        "\"input_hash\":\"%s\",\"estimated_cost_cents\":0,\"error\":%s," \
        "\"created_at\":\"2026-11-22T08:48:29Z\"}"

    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "queued", "0", HASH_A, "null");
    EXPECT_OK(cast, text);
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "paused", "0", HASH_A, "null");
    EXPECT_ERR(cast, text,
               "field 'status' must be one of: queued, running, succeeded, failed, canceled");
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "Service", "queued", "0", HASH_A, "null");
    EXPECT_ERR(cast, text, "field 'mode' must be one of: service, workflow, wasm, clone");
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "queued", "101", HASH_A, "null");
    EXPECT_ERR(cast, text, "field 'progress' must be between 0 and 100");
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "queued", "-1", HASH_A, "null");
    EXPECT_ERR(cast, text, "field 'progress' must be between 0 and 100");
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "queued", "50.5", HASH_A, "null");
    EXPECT_ERR(cast, text, "field 'progress' must be an integer");
    snprintf(text, sizeof text, CAST_FMT, "cst_123", "service", "queued", "0", HASH_A, "null");
    EXPECT_ERR(cast, text, "field 'id' must be a cast id (cst_ and a 26-character ULID)");
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "queued", "0", "abc", "null");
    EXPECT_ERR(cast, text, "field 'input_hash' must be 64 lowercase hex digits");
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "failed", "0", HASH_A,
             "{\"message\":\"boom\"}");
    EXPECT_ERR(cast, text, "field 'error.code' is required");
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "failed", "0", HASH_A,
             "{\"code\":\"X\"}");
    EXPECT_ERR(cast, text, "field 'error.message' is required");
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "failed", "0", HASH_A,
             "{\"code\":7,\"message\":\"m\"}");
    EXPECT_ERR(cast, text, "field 'error.code' must be a string");
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "failed", "0", HASH_A,
             "{\"code\":\"\",\"message\":\"m\"}");
    EXPECT_ERR(cast, text, "field 'error.code' must not be empty");
    snprintf(text, sizeof text, CAST_FMT, CAST_ID, "service", "failed", "0", HASH_A, "\"oops\"");
    EXPECT_ERR(cast, text, "field 'error' must be an object");
#undef CAST_FMT
}

/* ---- cast event ---- */

static const char event_text[] =
    "{\"seq\":3,\"type\":\"cast.progress\",\"data\":{\"cast_id\":\"" CAST_ID "\","
    "\"status\":\"running\",\"progress\":40,\"message\":\"resizing\","
    "\"ts\":\"2026-11-22T08:48:29.123Z\"},\"ts\":\"2026-11-22T08:48:29.123Z\"}";

static const struct field event_fields[] = {
    {"seq", 'i', true}, {"type", 's', true}, {"data", 'o', true}, {"ts", 'f', true},
};

static void test_cast_event(void)
{
    struct spell_cast_event e;
    char err[ERRLEN] = "";
    cJSON *j = P(event_text);
    CHECK_INT(spell_cast_event_from_json(j, &e, err, sizeof err), SPELL_OK);
    CHECK_INT(e.seq, 3);
    CHECK_STR(e.type, "cast.progress");
    CHECK(cJSON_Compare(e.data, cJSON_GetObjectItem(j, "data"), 1));
    CHECK(e.ts == INT64_C(1795337309123));
    cJSON_Delete(j);
    CHECK_INT(cJSON_GetObjectItem(e.data, "progress")->valuedouble, 40);  /* owned copy */
    spell_cast_event_free(&e);

    round_trip(recode_cast_event, event_text, event_text, __LINE__);
    CHECK_FIELDS(cast_event, event_text, event_fields);
    EXPECT_ERR(cast_event, "{\"seq\":0,\"type\":\"cast.queued\",\"data\":{},"
                           "\"ts\":\"2026-11-22T08:48:29Z\"}",
               "field 'seq' must be between 1 and 9007199254740991");
    EXPECT_ERR(cast_event, "{\"seq\":1,\"type\":\"\",\"data\":{},"
                           "\"ts\":\"2026-11-22T08:48:29Z\"}",
               "field 'type' must not be empty");
    /* A type this build does not know passes through. */
    EXPECT_OK(cast_event, "{\"seq\":1,\"type\":\"cast.paused\",\"data\":{},"
                          "\"ts\":\"2026-11-22T08:48:29Z\"}");
}

/* ---- ledger entry ---- */

static const char ledger_text[] =
    "{\"seq\":1,\"ts\":\"2026-11-22T08:48:29.123Z\",\"user_id\":\"usr_1\","
    "\"cast_id\":\"" CAST_ID "\",\"kind\":\"reserve\",\"amount_cents\":6,"
    "\"prev_hash\":\"" HASH_0 "\",\"hash\":\"" HASH_A "\"}";

static const struct field ledger_fields[] = {
    {"seq", 'i', true}, {"ts", 'f', true}, {"user_id", 's', false}, {"cast_id", 'f', false},
    {"kind", 'f', true}, {"amount_cents", 'i', true}, {"prev_hash", 'f', true},
    {"hash", 'f', true},
};

static void test_ledger_entry(void)
{
    struct spell_ledger_entry l;
    char err[ERRLEN] = "";
    cJSON *j = P(ledger_text);
    CHECK_INT(spell_ledger_entry_from_json(j, &l, err, sizeof err), SPELL_OK);
    CHECK_INT(l.seq, 1);
    CHECK(l.ts == INT64_C(1795337309123));
    CHECK_STR(l.user_id, "usr_1");
    CHECK_STR(l.cast_id, CAST_ID);
    CHECK_INT(l.kind, SPELL_LEDGER_RESERVE);
    CHECK_INT(l.amount_cents, 6);
    CHECK_STR(l.prev_hash, HASH_0);
    CHECK_STR(l.hash, HASH_A);
    spell_ledger_entry_free(&l);
    cJSON_Delete(j);

    round_trip(recode_ledger_entry, ledger_text, ledger_text, __LINE__);
    /* An adjustment of an erased user: no user, no cast, a negative amount. */
    const char *adjust = "{\"seq\":9,\"ts\":\"2026-11-22T08:48:29.123Z\",\"user_id\":null,"
                         "\"cast_id\":null,\"kind\":\"adjust\",\"amount_cents\":-250,"
                         "\"prev_hash\":\"" HASH_A "\",\"hash\":\"" HASH_0 "\"}";
    round_trip(recode_ledger_entry, adjust, adjust, __LINE__);

    CHECK_FIELDS(ledger_entry, ledger_text, ledger_fields);
    EXPECT_ERR(ledger_entry, "{\"seq\":1,\"ts\":\"2026-11-22T08:48:29Z\",\"kind\":\"refund\","
                             "\"amount_cents\":6,\"prev_hash\":\"" HASH_0 "\","
                             "\"hash\":\"" HASH_A "\"}",
               "field 'kind' must be one of: reserve, settle, release, invoice, adjust");
    EXPECT_ERR(ledger_entry, "{\"seq\":1,\"ts\":\"2026-11-22T08:48:29Z\",\"kind\":\"settle\","
                             "\"amount_cents\":6,\"prev_hash\":\"" HASH_0 "\","
                             "\"hash\":\"" HASH_A "0\"}",
               "field 'hash' must be 64 lowercase hex digits");
    EXPECT_ERR(ledger_entry, "{\"seq\":1,\"ts\":\"2026-11-22T08:48:29Z\",\"kind\":\"settle\","
                             "\"amount_cents\":1e16,\"prev_hash\":\"" HASH_0 "\","
                             "\"hash\":\"" HASH_A "\"}",
               "field 'amount_cents' must be an integer");
}

/* ---- API error body ---- */

static int dec_error_body(const cJSON *j, char *err)
{
    struct spell_error_body b;
    int rc = spell_error_body_from_json(j, &b, err, ERRLEN);
    spell_error_body_free(&b);
    return rc;
}

static void test_error_body(void)
{
    struct spell_error_body b;
    char err[ERRLEN] = "";
    cJSON *j = P("{\"error\":{\"code\":\"BUDGET_EXCEEDED\",\"message\":\"over the limit\","
                 "\"details\":{\"hard_limit_cents\":5000,\"estimate_cents\":6}}}");
    CHECK_INT(spell_error_body_from_json(j, &b, err, sizeof err), SPELL_OK);
    CHECK_STR(b.code, "BUDGET_EXCEEDED");
    CHECK_STR(b.message, "over the limit");
    CHECK_INT(b.api_error, SPELL_ERR_BUDGET_EXCEEDED);
    CHECK_INT(cJSON_GetObjectItem(b.details, "hard_limit_cents")->valuedouble, 5000);
    spell_error_body_free(&b);
    CHECK_INT(b.api_error, -1);
    cJSON_Delete(j);

    /* A code from a newer server is kept, with no catalog entry. */
    j = P("{\"error\":{\"code\":\"QUOTA_FROZEN\",\"message\":\"m\",\"details\":null}}");
    CHECK_INT(spell_error_body_from_json(j, &b, err, sizeof err), SPELL_OK);
    CHECK_STR(b.code, "QUOTA_FROZEN");
    CHECK_INT(b.api_error, -1);
    CHECK(b.details == NULL);
    spell_error_body_free(&b);
    cJSON_Delete(j);

    EXPECT_ERR(error_body, "{}", "field 'error' is required");
    EXPECT_ERR(error_body, "{\"error\":\"BUDGET_EXCEEDED\"}", "field 'error' must be an object");
    EXPECT_ERR(error_body, "{\"error\":{\"message\":\"m\"}}", "field 'error.code' is required");
    EXPECT_ERR(error_body, "{\"error\":{\"code\":null,\"message\":\"m\"}}",
               "field 'error.code' is required");
    EXPECT_ERR(error_body, "{\"error\":{\"code\":402,\"message\":\"m\"}}",
               "field 'error.code' must be a string");
    EXPECT_ERR(error_body, "{\"error\":{\"code\":\"X\"}}", "field 'error.message' is required");
    EXPECT_ERR(error_body, "{\"error\":{\"code\":\"X\",\"message\":\"m\",\"details\":[1]}}",
               "field 'error.details' must be an object");
    EXPECT_OK(error_body, "{\"error\":{\"code\":\"X\",\"message\":\"m\",\"extra\":1},\"x\":2}");

    /* Encoding for the server. */
    cJSON *details = cJSON_Parse("{\"field\":\"hard_limit_cents\"}");
    char *t = text_of(spell_error_body_to_json(SPELL_ERR_VALIDATION_ERROR,
                                               "field 'hard_limit_cents' is required", details));
    CHECK_STR(t, "{\"error\":{\"code\":\"VALIDATION_ERROR\","
                 "\"message\":\"field 'hard_limit_cents' is required\","
                 "\"details\":{\"field\":\"hard_limit_cents\"}}}");
    free(t);
    cJSON_Delete(details);
    t = text_of(spell_error_body_to_json(SPELL_ERR_RATE_LIMITED, NULL, NULL));
    CHECK_STR(t, "{\"error\":{\"code\":\"RATE_LIMITED\","
                 "\"message\":\"Too many requests; wait a moment and try again.\"}}");
    free(t);
    t = text_of(spell_error_body_to_json((enum spell_api_error)999, "x", NULL));
    CHECK_STR(t, "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"x\"}}");
    free(t);

    /* What the server writes, a client reads back. */
    j = spell_error_body_to_json(SPELL_ERR_PAYMENT_METHOD_REQUIRED, NULL, NULL);
    CHECK_INT(spell_error_body_from_json(j, &b, err, sizeof err), SPELL_OK);
    CHECK_INT(b.api_error, SPELL_ERR_PAYMENT_METHOD_REQUIRED);
    CHECK_STR(b.code, "PAYMENT_METHOD_REQUIRED");
    spell_error_body_free(&b);
    cJSON_Delete(j);
}

/* ---- Whole path: untrusted text through the strict parser into a model ---- */

static void test_from_text(void)
{
    char err[ERRLEN];
    cJSON *j = NULL;
    struct spell_budget b;
    const char dup[] = "{\"period\":\"2026-11\",\"hard_limit_cents\":5000,"
                       "\"hard_limit_cents\":50000}";
    CHECK_INT(spell_json_parse(dup, sizeof dup - 1, NULL, &j, err, sizeof err), SPELL_EPARSE);
    CHECK_STR(err, "duplicate key \"hard_limit_cents\" in object");
    const char ok[] = "{\"period\":\"2026-11\",\"hard_limit_cents\":5000}";
    CHECK_INT(spell_json_parse(ok, sizeof ok - 1, NULL, &j, err, sizeof err), SPELL_OK);
    CHECK_INT(spell_budget_from_json(j, &b, err, sizeof err), SPELL_OK);
    CHECK_INT(b.hard_limit_cents, 5000);
    cJSON_Delete(j);
}

/* Freeing zeroed structs is safe for every resource. */
static void test_free_zeroed(void)
{
    struct spell_user u = {0};
    struct spell_api_key k = {0};
    struct spell_budget b = {0};
    struct spell_usage us = {0};
    struct spell_payment_method p = {0};
    struct spell_spell s = {0};
    struct spell_cast c = {0};
    struct spell_cast_event e = {0};
    struct spell_ledger_entry l = {0};
    struct spell_error_body eb = {0};
    spell_user_free(&u);
    spell_api_key_free(&k);
    spell_budget_free(&b);
    spell_usage_free(&us);
    spell_payment_method_free(&p);
    spell_spell_free(&s);
    spell_cast_free(&c);
    spell_cast_event_free(&e);
    spell_ledger_entry_free(&l);
    spell_error_body_free(&eb);
    spell_user_free(NULL);
    spell_usage_free(NULL);
    spell_error_body_free(NULL);
    CHECK(u.id == NULL && us.daily == NULL);
}

int main(void)
{
    RUN(test_enums);
    RUN(test_formats);
    RUN(test_user);
    RUN(test_string_caps);
    RUN(test_api_key);
    RUN(test_budget);
    RUN(test_usage);
    RUN(test_payment_method);
    RUN(test_spell);
    RUN(test_cast);
    RUN(test_cast_errors);
    RUN(test_cast_event);
    RUN(test_ledger_entry);
    RUN(test_error_body);
    RUN(test_from_text);
    RUN(test_free_zeroed);
    return tap_done();
}
