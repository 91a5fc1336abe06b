/*
 * The spell input schema (schema.h).
 *
 * Every entry point first compiles the schema into a struct compiled: a
 * fixed array of at most SPELL_SCHEMA_MAX_PROPERTIES struct prop on the
 * caller's stack, each pointing into the cJSON tree.  Compiling is the
 * subset check, so validation never meets a keyword it does not know how
 * to enforce.  Values are then judged one property at a time by
 * value_check(), which import (defaults), the server (cast inputs), the CLI
 * and the portal (typed text) all share.
 */
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spell/errors.h"
#include "spell/schema.h"
#include "spell/utf8.h"

/* A schema object (the root or one property) may hold at most this many
 * keywords; it bounds the duplicate-key scan. */
#define KEYWORDS_MAX 64

struct prop {
    const char *name;
    enum spell_schema_type type;
    /* The "enum" array, or NULL when any value of the type is allowed. */
    const cJSON *enum_values;
    /* The "default" value, or NULL. */
    const cJSON *def;
    const cJSON *title;
    const cJSON *description;
    bool required;
    bool has_min;
    bool has_max;
    bool has_max_length;
    double min;
    double max;
    size_t max_length;
};

struct compiled {
    struct prop props[SPELL_SCHEMA_MAX_PROPERTIES];
    size_t n;
};

static const char *const type_names[] = {"string", "integer", "number", "boolean"};

/* Validation keywords of JSON Schema outside our subset: refused, because a
 * maker who writes one expects it enforced. */
static const char *const unsupported[] = {
    "$ref", "additionalItems", "allOf", "anyOf", "const", "contains", "dependencies",
    "dependentRequired", "dependentSchemas", "else", "exclusiveMaximum", "exclusiveMinimum",
    "if", "items", "maxContains", "maxItems", "maxProperties", "minContains", "minItems",
    "minLength", "minProperties", "multipleOf", "not", "oneOf", "pattern",
    "patternProperties", "prefixItems", "propertyNames", "then", "unevaluatedItems",
    "unevaluatedProperties", "uniqueItems",
};

const char *spell_schema_type_name(enum spell_schema_type t)
{
    if ((unsigned)t >= sizeof type_names / sizeof type_names[0])
        return NULL;
    return type_names[t];
}

/* ---- messages ---------------------------------------------------------- */

/* Fills e: field (when it fits, else "") and the message. */
static void fault(struct spell_schema_error *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fault(struct spell_schema_error *e, const char *field, const char *fmt, ...)
{
    if (!e)
        return;
    e->field[0] = '\0';
    if (field && strlen(field) < sizeof e->field)
        memcpy(e->field, field, strlen(field) + 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* ---- text and numbers -------------------------------------------------- */

static int is_whole(double d)
{
    return isfinite(d) && d == trunc(d);
}

/*
 * d as the shortest decimal text that reads back as d, with '.' whatever
 * the process locale says (the portal sets LC_ALL from the environment).
 * out holds at least 32 bytes.
 */
static void num_text(double d, char *out, size_t outlen)
{
    if (is_whole(d) && fabs(d) < 1e17) {
        snprintf(out, outlen, "%.0f", d == 0 ? 0.0 : d);
        return;
    }
    locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    locale_t old = c ? uselocale(c) : (locale_t)0;
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, d);
        if (!c || strtod_l(out, NULL, c) == d)
            break;
    }
    if (c) {
        uselocale(old);
        freelocale(c);
    }
}

/* ---- compiling --------------------------------------------------------- */

static int in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return 1;
    return 0;
}

/* The keywords of one schema object: at most KEYWORDS_MAX, none twice. */
static int keywords_ok(const cJSON *obj, const char *where, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(obj);
    if (n > KEYWORDS_MAX) {
        spell_errf(err, errlen, "%shas more than %d keywords", where, KEYWORDS_MAX);
        return 0;
    }
    for (const cJSON *a = obj->child; a; a = a->next) {
        if (!a->string) {
            spell_errf(err, errlen, "%sholds a keyword without a name", where);
            return 0;
        }
        for (const cJSON *b = obj->child; b != a; b = b->next) {
            if (strcmp(a->string, b->string) == 0) {
                spell_errf(err, errlen, "%skeyword '%.64s' appears twice", where, a->string);
                return 0;
            }
        }
    }
    return 1;
}

/* Why v is not of type t, as the end of a sentence, or NULL when it is. */
static const char *type_fault(enum spell_schema_type t, const cJSON *v)
{
    switch (t) {
    case SPELL_SCHEMA_STRING:
        if (!cJSON_IsString(v) || !v->valuestring)
            return "must be a string";
        if (!spell_utf8_valid(v->valuestring, strlen(v->valuestring)))
            return "must be valid UTF-8 text";
        return NULL;
    case SPELL_SCHEMA_INTEGER:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !is_whole(v->valuedouble))
            return "must be an integer";
        if (fabs(v->valuedouble) > SPELL_SCHEMA_INT_MAX)
            return "must be an integer between -9007199254740991 and 9007199254740991";
        return NULL;
    case SPELL_SCHEMA_NUMBER:
        if (!cJSON_IsNumber(v))
            return "must be a number";
        if (!isfinite(v->valuedouble))
            return "must be a finite number";
        return NULL;
    case SPELL_SCHEMA_BOOLEAN:
        return cJSON_IsBool(v) ? NULL : "must be true or false";
    }
    return "has an unknown type";
}

/* Two values of the same (checked) type are equal. */
static int same_value(enum spell_schema_type t, const cJSON *a, const cJSON *b)
{
    switch (t) {
    case SPELL_SCHEMA_STRING:
        return strcmp(a->valuestring, b->valuestring) == 0;
    case SPELL_SCHEMA_INTEGER:
    case SPELL_SCHEMA_NUMBER:
        return a->valuedouble == b->valuedouble;
    case SPELL_SCHEMA_BOOLEAN:
        return cJSON_IsTrue(a) == cJSON_IsTrue(b);
    }
    return 0;
}

/* The text form of a valid value: what value_from_text reads back. */
static void value_text(enum spell_schema_type t, const cJSON *v, char *out, size_t outlen)
{
    switch (t) {
    case SPELL_SCHEMA_STRING:
        snprintf(out, outlen, "%s", v->valuestring);
        break;
    case SPELL_SCHEMA_INTEGER:
    case SPELL_SCHEMA_NUMBER:
        num_text(v->valuedouble, out, outlen);
        break;
    case SPELL_SCHEMA_BOOLEAN:
        snprintf(out, outlen, "%s", cJSON_IsTrue(v) ? "true" : "false");
        break;
    }
}

/*
 * Judges one value against its property: type first, then enum, minimum,
 * maximum and maxLength.  SPELL_OK or SPELL_EINVAL with e filled.
 */
static int value_check(const struct prop *p, const cJSON *v, struct spell_schema_error *e)
{
    const char *why = type_fault(p->type, v);
    if (why) {
        fault(e, p->name, "%s %s", p->name, why);
        return SPELL_EINVAL;
    }
    if (p->enum_values) {
        for (const cJSON *x = p->enum_values->child; x; x = x->next)
            if (same_value(p->type, x, v))
                return SPELL_OK;
        /* List the choices when they fit the message. */
        char list[sizeof e->message], one[128];
        size_t used = 0;
        int fits = 1;
        list[0] = '\0';
        for (const cJSON *x = p->enum_values->child; x && fits; x = x->next) {
            value_text(p->type, x, one, sizeof one);
            int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", one);
            if (w < 0 || (size_t)w >= sizeof list - used ||
                strlen(one) >= sizeof one - 1)
                fits = 0;
            else
                used += (size_t)w;
        }
        if (fits && strlen(p->name) + used + 20 < sizeof e->message)
            fault(e, p->name, "%s must be one of: %s", p->name, list);
        else
            fault(e, p->name, "%s is not one of the allowed values", p->name);
        return SPELL_EINVAL;
    }
    char num[64];
    if (p->has_min && v->valuedouble < p->min) {
        num_text(p->min, num, sizeof num);
        fault(e, p->name, "%s must be at least %s", p->name, num);
        return SPELL_EINVAL;
    }
    if (p->has_max && v->valuedouble > p->max) {
        num_text(p->max, num, sizeof num);
        fault(e, p->name, "%s must be at most %s", p->name, num);
        return SPELL_EINVAL;
    }
    if (p->has_max_length && spell_utf8_count(v->valuestring, strlen(v->valuestring)) > p->max_length) {
        fault(e, p->name, "%s must be at most %zu characters", p->name, p->max_length);
        return SPELL_EINVAL;
    }
    return SPELL_OK;
}

static int compile_prop(struct prop *p, const cJSON *node, char *err, size_t errlen)
{
    char where[SPELL_SCHEMA_MAX_NAME + 32];
    snprintf(where, sizeof where, "properties.%s: ", p->name);

    if (!cJSON_IsObject(node)) {
        spell_errf(err, errlen, "%smust be an object", where);
        return SPELL_EINVAL;
    }
    if (!keywords_ok(node, where, err, errlen))
        return SPELL_EINVAL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(node, "type");
    if (!type) {
        spell_errf(err, errlen, "%stype is missing", where);
        return SPELL_EINVAL;
    }
    int t = -1;
    if (cJSON_IsString(type) && type->valuestring)
        for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
            if (strcmp(type->valuestring, type_names[i]) == 0)
                t = (int)i;
    if (t < 0) {
        spell_errf(err, errlen, "%stype must be one of string, integer, number, boolean", where);
        return SPELL_EINVAL;
    }
    p->type = (enum spell_schema_type)t;
    int numeric = t == SPELL_SCHEMA_INTEGER || t == SPELL_SCHEMA_NUMBER;

    for (const cJSON *k = node->child; k; k = k->next) {
        const char *kw = k->string;
        if (strcmp(kw, "minimum") == 0 || strcmp(kw, "maximum") == 0) {
            if (!numeric) {
                spell_errf(err, errlen, "%s%s is only allowed on integer and number properties",
                     where, kw);
                return SPELL_EINVAL;
            }
            if (!cJSON_IsNumber(k) || !isfinite(k->valuedouble)) {
                spell_errf(err, errlen, "%s%s must be a finite number", where, kw);
                return SPELL_EINVAL;
            }
            if (kw[1] == 'i') {
                p->has_min = true;
                p->min = k->valuedouble;
            } else {
                p->has_max = true;
                p->max = k->valuedouble;
            }
        } else if (strcmp(kw, "maxLength") == 0) {
            if (t != SPELL_SCHEMA_STRING) {
                spell_errf(err, errlen, "%smaxLength is only allowed on string properties", where);
                return SPELL_EINVAL;
            }
            if (!cJSON_IsNumber(k) || !is_whole(k->valuedouble) || k->valuedouble < 0 ||
                k->valuedouble > SPELL_SCHEMA_INT_MAX) {
                spell_errf(err, errlen, "%smaxLength must be a non-negative integer", where);
                return SPELL_EINVAL;
            }
            p->has_max_length = true;
            p->max_length = (size_t)k->valuedouble;
        } else if (strcmp(kw, "enum") == 0) {
            int n = cJSON_GetArraySize(k);
            if (!cJSON_IsArray(k) || n < 1 || n > SPELL_SCHEMA_MAX_ENUM) {
                spell_errf(err, errlen, "%senum must be an array of 1 to %d values", where,
                     SPELL_SCHEMA_MAX_ENUM);
                return SPELL_EINVAL;
            }
            int i = 0;
            for (const cJSON *x = k->child; x; x = x->next, i++) {
                const char *why = type_fault(p->type, x);
                if (why) {
                    spell_errf(err, errlen, "%senum value %d %s", where, i, why);
                    return SPELL_EINVAL;
                }
                for (const cJSON *y = k->child; y != x; y = y->next) {
                    if (same_value(p->type, x, y)) {
                        spell_errf(err, errlen, "%senum value %d repeats an earlier one", where, i);
                        return SPELL_EINVAL;
                    }
                }
            }
            p->enum_values = k;
        } else if (strcmp(kw, "default") == 0) {
            p->def = k;
        } else if (strcmp(kw, "title") == 0) {
            p->title = k;
        } else if (strcmp(kw, "description") == 0) {
            p->description = k;
        } else if (in_list(kw, unsupported, sizeof unsupported / sizeof unsupported[0])) {
            spell_errf(err, errlen, "%s'%s' is not supported", where, kw);
            return SPELL_EINVAL;
        }
    }
    if (p->has_min && p->has_max && p->min > p->max) {
        spell_errf(err, errlen, "%sminimum is greater than maximum", where);
        return SPELL_EINVAL;
    }
    if (p->def) {
        struct spell_schema_error e;
        if (value_check(p, p->def, &e) != SPELL_OK) {
            spell_errf(err, errlen, "%sdefault does not fit: %s", where, e.message);
            return SPELL_EINVAL;
        }
    }
    return SPELL_OK;
}

static int compile(const cJSON *schema, struct compiled *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(schema)) {
        spell_errf(err, errlen, "schema must be a JSON object");
        return SPELL_EINVAL;
    }
    if (!keywords_ok(schema, "schema: ", err, errlen))
        return SPELL_EINVAL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (!cJSON_IsString(type) || !type->valuestring || strcmp(type->valuestring, "object")) {
        spell_errf(err, errlen, "schema: type must be \"object\"");
        return SPELL_EINVAL;
    }
    for (const cJSON *k = schema->child; k; k = k->next) {
        if (strcmp(k->string, "additionalProperties") == 0 && !cJSON_IsFalse(k)) {
            spell_errf(err, errlen, "schema: additionalProperties may only be false (inputs not "
                 "declared in properties are always refused)");
            return SPELL_EINVAL;
        }
        if (strcmp(k->string, "enum") == 0 ||
            in_list(k->string, unsupported, sizeof unsupported / sizeof unsupported[0])) {
            spell_errf(err, errlen, "schema: '%s' is not supported", k->string);
            return SPELL_EINVAL;
        }
    }

    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    if (props) {
        if (!cJSON_IsObject(props)) {
            spell_errf(err, errlen, "properties must be an object");
            return SPELL_EINVAL;
        }
        if (cJSON_GetArraySize(props) > SPELL_SCHEMA_MAX_PROPERTIES) {
            spell_errf(err, errlen, "properties: more than %d properties",
                 SPELL_SCHEMA_MAX_PROPERTIES);
            return SPELL_EINVAL;
        }
        for (const cJSON *p = props->child; p; p = p->next) {
            const char *name = p->string;
            size_t len = name ? strlen(name) : 0;
            if (len == 0) {
                spell_errf(err, errlen, "properties: a property name is empty");
                return SPELL_EINVAL;
            }
            if (len > SPELL_SCHEMA_MAX_NAME) {
                spell_errf(err, errlen, "properties: a property name is longer than %d bytes",
                     SPELL_SCHEMA_MAX_NAME);
                return SPELL_EINVAL;
            }
            if (!spell_utf8_valid(name, len)) {
                spell_errf(err, errlen, "properties: a property name is not valid UTF-8");
                return SPELL_EINVAL;
            }
            for (size_t i = 0; i < c->n; i++) {
                if (strcmp(c->props[i].name, name) == 0) {
                    spell_errf(err, errlen, "properties: '%s' is declared twice", name);
                    return SPELL_EINVAL;
                }
            }
            struct prop *pr = &c->props[c->n];
            pr->name = name;
            int rc = compile_prop(pr, p, err, errlen);
            if (rc != SPELL_OK)
                return rc;
            c->n++;
        }
    }

    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
    if (req) {
        if (!cJSON_IsArray(req) || cJSON_GetArraySize(req) > SPELL_SCHEMA_MAX_PROPERTIES) {
            spell_errf(err, errlen, "required must be an array of at most %d property names",
                 SPELL_SCHEMA_MAX_PROPERTIES);
            return SPELL_EINVAL;
        }
        int i = 0;
        for (const cJSON *r = req->child; r; r = r->next, i++) {
            if (!cJSON_IsString(r) || !r->valuestring) {
                spell_errf(err, errlen, "required[%d] must be a string", i);
                return SPELL_EINVAL;
            }
            struct prop *found = NULL;
            for (size_t k = 0; k < c->n; k++)
                if (strcmp(c->props[k].name, r->valuestring) == 0)
                    found = &c->props[k];
            if (!found) {
                spell_errf(err, errlen, "required[%d] names '%.64s', which properties does not "
                     "declare", i, r->valuestring);
                return SPELL_EINVAL;
            }
            if (found->required) {
                spell_errf(err, errlen, "required[%d]: '%s' is listed twice", i, found->name);
                return SPELL_EINVAL;
            }
            found->required = true;
        }
    }
    return SPELL_OK;
}

static const struct prop *find_prop(const struct compiled *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->props[i].name, name) == 0)
            return &c->props[i];
    return NULL;
}

/* A property name from outside, if it can be repeated in a message. */
static const char *printable_name(const char *name)
{
    if (!name)
        return NULL;
    size_t len = strnlen(name, SPELL_SCHEMA_MAX_NAME + 1);
    if (len == 0 || len > SPELL_SCHEMA_MAX_NAME)
        return NULL;
    if (!spell_utf8_valid(name, len))
        return NULL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return NULL;
    return name;
}

static void unknown_field(struct spell_schema_error *e, const char *name)
{
    const char *shown = printable_name(name);
    if (shown)
        fault(e, shown, "%s is not a known input", shown);
    else
        fault(e, NULL, "inputs hold a property that is not a known input");
}

/* ---- public ------------------------------------------------------------ */

int spell_schema_check(const cJSON *schema, char *err, size_t errlen)
{
    struct compiled c;
    if (err && errlen)
        err[0] = '\0';
    return compile(schema, &c, err, errlen);
}

int spell_schema_validate(const cJSON *schema, const cJSON *inputs,
                          struct spell_schema_error *e)
{
    struct compiled c;
    char why[sizeof e->message];
    /* Which properties the inputs gave, to catch a repeated name. */
    bool seen[SPELL_SCHEMA_MAX_PROPERTIES] = {false};
    int rc;

    if (e)
        e->field[0] = e->message[0] = '\0';
    if (compile(schema, &c, why, sizeof why) != SPELL_OK) {
        fault(e, NULL, "the spell's input schema is invalid: %s", why);
        return SPELL_EPARSE;
    }
    if (!cJSON_IsObject(inputs)) {
        fault(e, NULL, "inputs must be a JSON object");
        return SPELL_EINVAL;
    }
    for (const cJSON *v = inputs->child; v; v = v->next) {
        const struct prop *p = v->string ? find_prop(&c, v->string) : NULL;
        if (!p) {
            unknown_field(e, v->string);
            return SPELL_EINVAL;
        }
        size_t idx = (size_t)(p - c.props);
        if (seen[idx]) {
            fault(e, p->name, "%s is given more than once", p->name);
            return SPELL_EINVAL;
        }
        seen[idx] = true;
        if ((rc = value_check(p, v, e)) != SPELL_OK)
            return rc;
    }
    for (size_t i = 0; i < c.n; i++) {
        if (c.props[i].required && !seen[i]) {
            fault(e, c.props[i].name, "%s is required", c.props[i].name);
            return SPELL_EINVAL;
        }
    }
    return SPELL_OK;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Strict decimal integer: -?[0-9]+, within the safe range. */
static int text_to_integer(const char *s, size_t n, double *out, int *range)
{
    size_t i = 0;
    int neg = 0;
    *range = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i == n)
        return 0;
    long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        if (v > 100000000000000000LL) {
            *range = 1;
            continue;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (*range || (double)v > SPELL_SCHEMA_INT_MAX) {
        *range = 1;
        return 0;
    }
    *out = neg && v ? -(double)v : (double)v;
    return 1;
}

/* Decimal number as JSON writes it (a leading '.' allowed), then strtod in
 * the C locale, which must take every byte. */
static int text_to_number(const char *s, size_t n, double *out, int *inf)
{
    size_t i = 0, digits = 0;
    *inf = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (!digits)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t ed = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ed++;
        if (!ed)
            return 0;
    }
    if (i != n)
        return 0;

    char tmp[128];
    if (n >= sizeof tmp)
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!c)
        return -1;
    char *end = NULL;
    double d = strtod_l(tmp, &end, c);
    freelocale(c);
    if (!end || *end != '\0')
        return 0;
    if (!isfinite(d)) {
        *inf = 1;
        return 0;
    }
    *out = d;
    return 1;
}

static int text_to_bool(const char *s, size_t n, int *out)
{
    static const char *const words[] = {"true", "false", "yes", "no", "1", "0"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (strlen(words[i]) == n && strncasecmp(s, words[i], n) == 0) {
            *out = i % 2 == 0;
            return 1;
        }
    }
    return 0;
}

int spell_schema_value_from_text(const cJSON *schema, const char *field, const char *text,
                                 cJSON **out, struct spell_schema_error *e)
{
    struct compiled c;
    char why[sizeof e->message];
    cJSON *v = NULL;
    int rc = SPELL_EINVAL;

    if (e)
        e->field[0] = e->message[0] = '\0';
    if (out)
        *out = NULL;
    if (compile(schema, &c, why, sizeof why) != SPELL_OK) {
        fault(e, NULL, "the spell's input schema is invalid: %s", why);
        rc = SPELL_EPARSE;
        goto out;
    }
    const struct prop *p = field ? find_prop(&c, field) : NULL;
    if (!p) {
        unknown_field(e, field);
        goto out;
    }
    if (!text || !out) {
        fault(e, p->name, "%s has no value", p->name);
        goto out;
    }
    size_t len = strnlen(text, SPELL_SCHEMA_MAX_TEXT + 1);
    if (len > SPELL_SCHEMA_MAX_TEXT) {
        fault(e, p->name, "%s is longer than %d bytes", p->name, SPELL_SCHEMA_MAX_TEXT);
        rc = SPELL_ETOOBIG;
        goto out;
    }

    if (p->type == SPELL_SCHEMA_STRING) {
        if (!spell_utf8_valid(text, len)) {
            fault(e, p->name, "%s must be valid UTF-8 text", p->name);
            goto out;
        }
        v = cJSON_CreateString(text);
    } else {
        const char *s = text;
        size_t n = len;
        while (n && is_blank(*s)) {
            s++;
            n--;
        }
        while (n && is_blank(s[n - 1]))
            n--;
        double d = 0;
        int flag = 0, b = 0, ok;
        switch (p->type) {
        case SPELL_SCHEMA_INTEGER:
            if (!text_to_integer(s, n, &d, &flag)) {
                fault(e, p->name, "%s %s", p->name, flag ? "must be an integer between "
                      "-9007199254740991 and 9007199254740991" : "must be an integer");
                goto out;
            }
            v = cJSON_CreateNumber(d);
            break;
        case SPELL_SCHEMA_NUMBER:
            ok = text_to_number(s, n, &d, &flag);
            if (ok < 0) {
                rc = SPELL_ENOMEM;
                fault(e, p->name, "out of memory");
                goto out;
            }
            if (!ok) {
                fault(e, p->name, "%s %s", p->name,
                      flag ? "must be a finite number" : "must be a number");
                goto out;
            }
            v = cJSON_CreateNumber(d);
            break;
        default:
            if (!text_to_bool(s, n, &b)) {
                fault(e, p->name, "%s must be true or false", p->name);
                goto out;
            }
            v = cJSON_CreateBool(b);
            break;
        }
    }
    if (!v) {
        fault(e, p->name, "out of memory");
        rc = SPELL_ENOMEM;
        goto out;
    }
    if ((rc = value_check(p, v, e)) != SPELL_OK)
        goto out;
    *out = v;
    v = NULL;
    rc = SPELL_OK;
out:
    cJSON_Delete(v);
    return rc;
}

/* A heap copy of the text form of v; NULL on allocation failure. */
static char *value_dup(enum spell_schema_type t, const cJSON *v)
{
    if (t == SPELL_SCHEMA_STRING)
        return strdup(v->valuestring);
    char tmp[64];
    value_text(t, v, tmp, sizeof tmp);
    return strdup(tmp);
}

static char *string_or_null(const cJSON *v, int *fail)
{
    if (!cJSON_IsString(v) || !v->valuestring)
        return NULL;
    char *s = strdup(v->valuestring);
    if (!s)
        *fail = 1;
    return s;
}

void spell_schema_fields_free(struct spell_schema_field *fields, size_t n)
{
    if (!fields)
        return;
    for (size_t i = 0; i < n; i++) {
        struct spell_schema_field *f = &fields[i];
        free(f->name);
        free(f->title);
        free(f->description);
        free(f->default_text);
        if (f->enum_text)
            for (size_t k = 0; k < f->n_enum; k++)
                free(f->enum_text[k]);
        free(f->enum_text);
    }
    free(fields);
}

int spell_schema_fields(const cJSON *schema, struct spell_schema_field **out, size_t *n)
{
    struct compiled c;
    struct spell_schema_field *fs = NULL;
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = compile(schema, &c, NULL, 0)) != SPELL_OK)
        return rc;
    if (c.n == 0)
        return SPELL_OK;
    rc = SPELL_ENOMEM;
    fs = calloc(c.n, sizeof *fs);
    if (!fs)
        goto out;
    for (size_t i = 0; i < c.n; i++) {
        const struct prop *p = &c.props[i];
        struct spell_schema_field *f = &fs[i];
        int fail = 0;
        f->type = p->type;
        f->required = p->required;
        f->has_minimum = p->has_min;
        f->has_maximum = p->has_max;
        f->has_max_length = p->has_max_length;
        f->minimum = p->min;
        f->maximum = p->max;
        f->max_length = p->max_length;
        if (!(f->name = strdup(p->name)))
            goto out;
        f->title = string_or_null(p->title, &fail);
        f->description = string_or_null(p->description, &fail);
        if (fail)
            goto out;
        if (p->def && !(f->default_text = value_dup(p->type, p->def)))
            goto out;
        if (p->enum_values) {
            size_t m = (size_t)cJSON_GetArraySize(p->enum_values);
            if (!(f->enum_text = calloc(m, sizeof *f->enum_text)))
                goto out;
            for (const cJSON *x = p->enum_values->child; x; x = x->next) {
                if (!(f->enum_text[f->n_enum] = value_dup(p->type, x)))
                    goto out;
                f->n_enum++;
            }
        }
    }
    *out = fs;
    *n = c.n;
    fs = NULL;
    rc = SPELL_OK;
out:
    spell_schema_fields_free(fs, c.n);
    return rc;
}
