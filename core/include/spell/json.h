/*
 * Strict JSON input and typed field access.
 *
 * Every JSON text that comes from outside (request bodies, server answers,
 * agent messages, spell manifests, spell program output) enters through
 * spell_json_parse().  It checks the bytes before cJSON sees them: a size
 * cap, UTF-8 validity everywhere, the RFC 8259 grammar exactly (no leading
 * zeros, no raw control characters, only space, tab, CR and LF between
 * tokens), a nesting cap, no "\u0000" escape (cJSON would cut the string
 * there) and no unpaired surrogate escape, nothing but whitespace after the
 * value; then, on the tree cJSON built, no object with the same key twice
 * (two readers could pick different values).  What passes is a cJSON tree
 * whose strings are valid UTF-8 without NUL bytes.
 *
 * The tree is then read with the getters below, which check each field's
 * type and report failures as one sentence that names the field by its
 * dotted path from the document root ("field 'pricing.flat_cents' must be
 * an integer").  The models module (models.h) decodes every resource this
 * way; the server turns such sentences into VALIDATION_ERROR details.
 *
 * Going out, the spell_json_add_* builders put int64 values, times and
 * possibly-NULL strings into a cJSON object and report failure as an
 * int, so an encoder is one chain of calls joined by ||.
 *
 * Nothing here keeps state between calls; every function is safe from any
 * thread.  (cJSON itself resets a static error position on every parse;
 * this module never reads it.)
 */
#ifndef SPELL_JSON_H
#define SPELL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "spell/utf8.h"

#define SPELL_JSON_MAX_BYTES_DEFAULT (64 * 1024)
#define SPELL_JSON_MAX_DEPTH_DEFAULT 32

/* The highest nesting cap a caller may ask for; larger values are clamped
 * to it.  The validator recurses once per level, so this bounds its stack. */
#define SPELL_JSON_MAX_DEPTH_LIMIT 256

/* The longest number token accepted, in bytes.  cJSON copies numbers into
 * a 64-byte buffer and would misread longer ones. */
#define SPELL_JSON_NUMBER_MAX 63

/* The largest magnitude the int64 getters and builders accept: 2^53 - 1,
 * the last integer every double holds exactly.  A larger text such as
 * 9007199254740993 cannot be told apart from its rounded neighbour once it
 * is a double, so it is refused rather than silently changed. */
#define SPELL_JSON_INT_MAX INT64_C(9007199254740991)

/* Room for a dotted field path in a message; longer paths are cut. */
#define SPELL_JSON_PATH_MAX 128

/* Caps for spell_json_parse(); a zero field takes its default. */
struct spell_json_limits {
    size_t max_bytes;   /* whole input, in bytes; default 64 KiB */
    int max_depth;      /* nested objects and arrays; default 32 */
};

/* Parses len bytes of untrusted text (no NUL terminator needed; a NUL
 * inside the len bytes is an error).  On success *out owns the tree (free
 * it with cJSON_Delete).  On failure *out is NULL and err (when errlen > 0)
 * holds a sentence with the byte offset of the fault.
 * SPELL_ETOOBIG when len passes the byte cap; SPELL_EPARSE for every other
 * rejection; SPELL_EINVAL for NULL out, or NULL text with len > 0. */
int spell_json_parse(const char *text, size_t len, const struct spell_json_limits *lim,
                     cJSON **out, char *err, size_t errlen);

/* Where getters read and where they report.  Set one up per object:
 * {obj, "", err, errlen} at the document root, and with spell_json_at_member()
 * or spell_json_at_element() for nested objects. */
struct spell_json_at {
    const cJSON *obj;   /* the object whose members are read */
    const char *path;   /* dotted path of obj from the root; "" at the root */
    char *err;          /* receives the failure sentence; may be NULL */
    size_t errlen;      /* size of err */
};

/* Points child at obj, the member `name` of parent's object, with path
 * "<parent path>.name" written into pathbuf (cut to pathsize). */
void spell_json_at_member(struct spell_json_at *child, const struct spell_json_at *parent,
                          const char *name, const cJSON *obj, char *pathbuf, size_t pathsize);

/* The same for element `index` of parent's array member `name`:
 * path "<parent path>.name[index]". */
void spell_json_at_element(struct spell_json_at *child, const struct spell_json_at *parent,
                           const char *name, size_t index, const cJSON *obj,
                           char *pathbuf, size_t pathsize);

/* Writes "field '<path>.<name>' <what>" into at->err and returns
 * SPELL_EINVAL, for checks the getters do not make themselves. */
int spell_json_field_error(const struct spell_json_at *at, const char *name, const char *what);

/* Flags for the getters. */
#define SPELL_JSON_OPTIONAL 0u
#define SPELL_JSON_REQUIRED 1u  /* absent or null is an error */
#define SPELL_JSON_NONEMPTY 2u  /* strings only: "" is an error */

/*
 * Getters.  Each looks up member `name` (case-sensitive) of at->obj.
 * A member that is absent or null is "absent": an error with
 * SPELL_JSON_REQUIRED ("field 'x' is required"), otherwise SPELL_OK with
 * *present = false (present may be NULL) and the output left as it was,
 * so a caller can preset a default.  A member of the wrong type is an
 * error ("field 'x' must be an integer").  Field errors return SPELL_EINVAL,
 * allocation failures SPELL_ENOMEM.
 */

/* A string of at most max_len bytes, copied into *out (caller frees);
 * *out is NULL when absent.  The string must be valid UTF-8. */
int spell_json_get_string(const struct spell_json_at *at, const char *name, unsigned flags,
                          size_t max_len, char **out);

/* An integral JSON number within ±SPELL_JSON_INT_MAX: 12 and 1.2e1 pass;
 * 1.5, "3", true and 1e300 do not. */
int spell_json_get_int64(const struct spell_json_at *at, const char *name, unsigned flags,
                         int64_t *out, bool *present);

/* The same, also within [min, max] ("field 'x' must be between 0 and 100"). */
int spell_json_get_int64_range(const struct spell_json_at *at, const char *name, unsigned flags,
                               int64_t min, int64_t max, int64_t *out, bool *present);

/* true or false. */
int spell_json_get_bool(const struct spell_json_at *at, const char *name, unsigned flags,
                        bool *out, bool *present);

/* An object or an array, borrowed from the tree; *out is NULL when absent. */
int spell_json_get_object(const struct spell_json_at *at, const char *name, unsigned flags,
                          const cJSON **out);
int spell_json_get_array(const struct spell_json_at *at, const char *name, unsigned flags,
                         const cJSON **out);

/* A string that must equal one of names[0..count-1]; *out receives its
 * index, which is the enum value when the table is indexed by the enum.
 * Otherwise: "field 'status' must be one of: queued, running, ...". */
int spell_json_get_enum(const struct spell_json_at *at, const char *name, unsigned flags,
                        const char *const *names, size_t count, int *out, bool *present);

/* An RFC 3339 time (see clock.h) as Unix ms; absent leaves *out as it was. */
int spell_json_get_time(const struct spell_json_at *at, const char *name, unsigned flags,
                        int64_t *out, bool *present);

/*
 * Builders.  Each adds member `name` to obj and returns SPELL_OK, or
 * SPELL_ENOMEM when an allocation fails (or obj is NULL), so encoders can
 * chain them: if (!j || spell_json_add_int64(...) || ...) goto fail;
 */

/* A number; SPELL_EINVAL when |v| > SPELL_JSON_INT_MAX (no double holds
 * it exactly).  The tree then holds v exactly, but note that cJSON_Print()
 * of cJSON 1.7.15 checks its 15-digit form with a relative tolerance and
 * may write a 16-digit integer near 2^53 inexactly (9007199254740991 comes
 * out as 9.00719925474099e+15); spell_jcs_serialize() (jcs.h) writes every
 * such integer exactly.  What the models carry (cents, Unix ms below
 * 2.6e14) has at most 15 digits and prints exactly either way. */
int spell_json_add_int64(cJSON *obj, const char *name, int64_t v);

/* A string, or null when s is NULL. */
int spell_json_add_string(cJSON *obj, const char *name, const char *s);

/* true or false. */
int spell_json_add_bool(cJSON *obj, const char *name, bool v);

/* An RFC 3339 string for a time, or null when ms is 0 ("not yet").
 * SPELL_EINVAL for a time outside clock.h's range. */
int spell_json_add_time(cJSON *obj, const char *name, int64_t ms);

/* A deep copy of item, or null when item is NULL. */
int spell_json_add_copy(cJSON *obj, const char *name, const cJSON *item);

#endif
