/*
 * Canonical JSON after RFC 8785, the JSON Canonicalization Scheme (JCS).
 *
 * Two parties that hold the same JSON value, however it was spelled on the
 * wire, get the same bytes out of spell_jcs_serialize(): object members
 * sorted by name as UTF-16 code units, no whitespace, strings escaped the
 * one way RFC 8785 §3.2.2.2 allows, numbers written as ECMAScript's
 * Number.prototype.toString writes them.  Those bytes are what the platform
 * hashes and measures:
 *
 *   request body --cJSON_Parse--> cJSON tree --spell_jcs_serialize--> bytes
 *       bytes --SHA-256--> a cast's input_hash (DESIGN.md §2)
 *       bytes --length--> the metered price of a cast (cost.h)
 *
 * A value that has no canonical form fails with SPELL_EINVAL: NaN or an
 * infinity (cJSON reads "1e400" as infinity), a string or member name that
 * is not valid UTF-8 (lone surrogates included), an object with two members
 * of one name, a raw or invalid cJSON node.  Containers nested deeper than
 * SPELL_JCS_MAX_DEPTH fail with SPELL_ETOOBIG.
 *
 * cJSON keeps strings as C strings, so a string that held "\u0000" arrives
 * here cut at the NUL; the canonical form is that of the cut string.
 */
#ifndef SPELL_JCS_H
#define SPELL_JCS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"

/* How many containers may nest, the outermost one counting as 1. */
#define SPELL_JCS_MAX_DEPTH 64

/* The largest canonical text spell_input_hash() will hash: 1 MiB.  Cast
 * bodies are capped at 64 KiB, and canonical numbers are at most a few
 * times longer than the shortest way to type them. */
#define SPELL_JCS_HASH_MAX (1024 * 1024)

/*
 * Appends the canonical form of v to out.  SPELL_ETOOBIG when out's cap is
 * reached or v nests too deep, SPELL_EINVAL for a value without canonical
 * form (see above), SPELL_ENOMEM.  On failure out holds what it held
 * before the call.
 */
int spell_jcs_serialize(const cJSON *v, struct spell_buf *out);

/*
 * The length in bytes of v's canonical form, without keeping the text.
 * Fails as spell_jcs_serialize() does; *out is set only on success.
 */
int spell_jcs_length(const cJSON *v, size_t *out);

/*
 * A cast's input_hash: the SHA-256 of the canonical form of inputs, as 64
 * lowercase hex digits and a NUL.  The canonical text may be at most
 * SPELL_JCS_HASH_MAX bytes (SPELL_ETOOBIG past that).  On failure out is
 * the empty string.
 */
int spell_input_hash(const cJSON *inputs, char out[65]);

#endif
