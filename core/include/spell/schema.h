/*
 * The spell input schema (DESIGN.md §2): the JSON Schema subset a spell's
 * `inputs_schema` may use, and the validation of cast inputs against it.
 *
 * The subset: the root is {"type": "object"} with `properties` (each of
 * type string, integer, number or boolean), `required`, and per property
 * `enum`, `minimum` and `maximum` (numeric types, inclusive), `maxLength`
 * (strings, counted in Unicode code points).  Annotations such as `title`,
 * `description`, `default` and `format` are allowed and do not constrain
 * anything (a `default` must itself be a valid value); validation keywords
 * outside the subset (`pattern`, `minLength`, `exclusiveMinimum`, ...) are
 * refused rather than silently ignored.  Inputs may not carry properties
 * the schema does not declare.
 *
 * Data flows in three directions from one schema:
 *   spell-server spells import  -> spell_schema_check()    (is it in the subset?)
 *   server, on every cast       -> spell_schema_validate() (the inputs object)
 *   CLI -i name=value, portal   -> spell_schema_value_from_text() (one typed field)
 *   portal form                 -> spell_schema_fields()   (what to ask for)
 * A struct spell_schema_error names the field and carries a sentence fit
 * for the `details` of a VALIDATION_ERROR: field "width", message
 * "width must be at least 16".
 *
 * Nothing here keeps state; numbers are parsed and printed independently of
 * the process locale.
 */
#ifndef SPELL_SCHEMA_H
#define SPELL_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* At most this many properties in a schema. */
#define SPELL_SCHEMA_MAX_PROPERTIES 64
/* A property name is 1 to this many bytes of UTF-8. */
#define SPELL_SCHEMA_MAX_NAME 64
/* An enum lists 1 to this many values. */
#define SPELL_SCHEMA_MAX_ENUM 64
/* A typed text (value_from_text) is at most this many bytes: the cast body
 * cap. */
#define SPELL_SCHEMA_MAX_TEXT (64 * 1024)
/* Integers are exact in a double up to 2^53 - 1 either way (JSON's "safe"
 * range, what a JavaScript front end can hold). */
#define SPELL_SCHEMA_INT_MAX 9007199254740991.0

enum spell_schema_type {
    SPELL_SCHEMA_STRING,
    SPELL_SCHEMA_INTEGER,
    SPELL_SCHEMA_NUMBER,
    SPELL_SCHEMA_BOOLEAN,
};

/* "string", "integer", "number", "boolean"; NULL outside the enum. */
const char *spell_schema_type_name(enum spell_schema_type t);

struct spell_schema_error {
    /* The property at fault, or "" when the fault is the inputs as a whole
     * (not an object) or a property name too long or not UTF-8 to repeat. */
    char field[SPELL_SCHEMA_MAX_NAME + 1];
    /* One sentence starting with the field name, for a caster to read. */
    char message[512];
};

/*
 * Is `schema` inside the subset?  SPELL_OK, or SPELL_EINVAL with a
 * sentence in err naming where ("properties.width: maxLength is only
 * allowed on string properties").
 */
int spell_schema_check(const cJSON *schema, char *err, size_t errlen);

/*
 * Validates a cast's inputs against schema.  SPELL_OK when they conform;
 * SPELL_EINVAL with e filled when they do not (the first fault found:
 * inputs not an object, an undeclared or repeated property, a missing
 * required one, a wrong type, a value outside enum, minimum, maximum or
 * maxLength); SPELL_EPARSE when the schema itself is outside the subset
 * (a server fault, not the caster's), with the reason in e->message.
 * e may be NULL.
 */
int spell_schema_validate(const cJSON *schema, const cJSON *inputs,
                          struct spell_schema_error *e);

/*
 * Turns what a person typed for property `field` into its typed JSON value
 * and validates it against the property.  Integers: an optional '-' and
 * decimal digits only, within the safe range; numbers: decimal notation
 * with optional exponent, finite; booleans: true/false/yes/no/1/0 in any
 * case; for those three, surrounding spaces and tabs are dropped.  Strings
 * are taken as they are and must be UTF-8 without NUL.  On success *out is
 * a new cJSON the caller deletes.  SPELL_EINVAL with e filled for an
 * unknown field or a bad value, SPELL_ETOOBIG for text over
 * SPELL_SCHEMA_MAX_TEXT, SPELL_EPARSE for a schema outside the subset,
 * SPELL_ENOMEM.
 */
int spell_schema_value_from_text(const cJSON *schema, const char *field, const char *text,
                                 cJSON **out, struct spell_schema_error *e);

/* One property, as a form would show it.  Every string is owned by the
 * array and freed by spell_schema_fields_free(). */
struct spell_schema_field {
    char *name;
    enum spell_schema_type type;
    bool required;
    /* The schema's "title" and "description" when they are strings, else
     * NULL. */
    char *title;
    char *description;
    bool has_minimum;
    bool has_maximum;
    bool has_max_length;
    double minimum;
    double maximum;
    /* Largest length in code points. */
    size_t max_length;
    /* The allowed values as text that spell_schema_value_from_text()
     * accepts back (numbers printed shortest-exact, booleans as
     * true/false); n_enum is 0 when any value of the type is allowed. */
    char **enum_text;
    size_t n_enum;
    /* The "default" as such text, or NULL when the schema has none. */
    char *default_text;
};

/*
 * The properties of schema in declaration order.  *out is NULL and *n 0
 * for a schema without properties.  SPELL_EINVAL for a schema outside the
 * subset, SPELL_ENOMEM.
 */
int spell_schema_fields(const cJSON *schema, struct spell_schema_field **out, size_t *n);
void spell_schema_fields_free(struct spell_schema_field *fields, size_t n);

#endif
