/*
 * Hashes, MACs, random tokens, identifiers, API keys and webhook
 * signatures, on OpenSSL 3 (libcrypto).
 *
 * Data flows through this module in four ways:
 *
 *  - Digests.  Bytes in, a SHA-256 or HMAC-SHA-256 out, raw (32 bytes) or
 *    as lowercase hex (64 characters and a NUL).  The server stores session
 *    tokens and cast inputs by their SHA-256 and chains the ledger with it.
 *  - Randomness.  The OpenSSL CSPRNG (seeded by the operating system) feeds
 *    raw bytes, base62 tokens (rejection sampled, so every character is
 *    equally likely), session tokens and the random part of ULIDs.
 *  - Identifiers.  spell_ulid_make() and spell_id_make() turn a caller's
 *    clock reading plus 80 random bits into ids such as "cst_01ARYZ6S41...";
 *    the parse functions check ids that come back from outside.
 *  - Keys and signatures from outside.  spell_apikey_parse() checks the
 *    shape and the CRC32 check characters of an API key offline, before
 *    any store lookup; the webhook verifiers check GitHub's
 *    X-Hub-Signature-256 and Stripe's Stripe-Signature against the raw
 *    request body.  Every comparison of a MAC is constant-time.
 *
 * Conventions: every function returns SPELL_OK or a negative spell_rc
 * (spell_ct_equal and spell_crc32 excepted, see there).  On failure every
 * out-parameter is zeroed (strings become "", digests and structs all
 * zero bytes), so a caller that ignores an error never uses stale data.
 * The one exception is a request past a stated size cap, where the size
 * itself cannot be trusted: spell_random_bytes() then writes nothing and
 * spell_random_token() writes only out[0] = '\0'.  A NULL required
 * argument is SPELL_EINVAL.  Nothing here keeps state
 * between calls: all functions may be called from any thread at once.
 */
#ifndef SPELL_CRYPTO_H
#define SPELL_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define SPELL_SHA256_LEN 32
#define SPELL_SHA256_HEX_LEN 64     /* without the NUL */

/* ---- Digests --------------------------------------------------------- */

/* SHA-256 of data.  data may be NULL only when len is 0. */
int spell_sha256(const void *data, size_t len, unsigned char out[32]);
int spell_sha256_hex(const void *data, size_t len, char out[65]);

/* HMAC-SHA-256 of data under key.  key (or data) may be NULL only when its
 * length is 0; an empty key is valid HMAC. */
int spell_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                      unsigned char out[32]);
int spell_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                          char out[65]);

/* 1 when the two byte strings are equal, 0 otherwise.  The time taken
 * depends on the lengths but not on the contents (CRYPTO_memcmp).
 * Different lengths are simply unequal; two empty strings are equal. */
int spell_ct_equal(const void *a, size_t a_len, const void *b, size_t b_len);

/* CRC-32 as zlib's crc32() computes it (IEEE 802.3 polynomial, reflected,
 * initial and final XOR 0xFFFFFFFF): crc32("123456789") = 0xCBF43926.
 * Not a security check: it catches typing mistakes.  data may be NULL only
 * when len is 0 (the result is then 0). */
uint32_t spell_crc32(const void *data, size_t len);

/* ---- Randomness ------------------------------------------------------ */

/* Largest request spell_random_bytes() serves (1 MiB); more is
 * SPELL_ETOOBIG. */
#define SPELL_RANDOM_BYTES_MAX (1024 * 1024)

/* Longest token spell_random_token() makes (4096 characters). */
#define SPELL_RANDOM_TOKEN_MAX 4096

/* A session token: 43 base62 characters, since 62^43 > 2^256 it carries
 * at least as much entropy as 32 random bytes. */
#define SPELL_SESSION_TOKEN_LEN 43

/* len bytes from the CSPRNG.  SPELL_ECRYPTO when OpenSSL cannot supply
 * them (an unseeded generator). */
int spell_random_bytes(void *out, size_t len);

/* n_chars characters of 0-9A-Za-z and a NUL into out, which must hold
 * n_chars + 1 bytes.  Each character is uniform over the 62 (random bytes
 * of 248 or more are dropped and redrawn, so there is no modulo bias).
 * n_chars 0 gives ""; more than SPELL_RANDOM_TOKEN_MAX is SPELL_ETOOBIG. */
int spell_random_token(char *out, size_t n_chars);

/* A new session token (DESIGN.md §2: 32 random bytes' worth, base62). */
int spell_session_token_make(char out[SPELL_SESSION_TOKEN_LEN + 1]);

/* ---- ULIDs and ids --------------------------------------------------- */

/*
 * A ULID (https://github.com/ulid/spec) is 128 bits: a 48-bit Unix time in
 * milliseconds followed by 80 random bits, written as 26 characters of
 * Crockford base32 (0-9 and A-Z without I, L, O, U), most significant
 * first, so ids sort by creation time as plain strings.
 *
 * We mint ids and compare them as strings, so parsing accepts only the
 * canonical form that spell_ulid_make() writes: uppercase, no Crockford
 * aliases (lowercase, I/L for 1, O for 0), no hyphens.  Accepting aliases
 * would give one id several spellings.
 */
#define SPELL_ULID_LEN 26
#define SPELL_ULID_MS_MAX INT64_C(281474976710655)     /* 2^48 - 1 */

/* A fresh ULID for the time ms (the caller reads the clock, so tests are
 * repeatable).  ms outside 0..SPELL_ULID_MS_MAX is SPELL_EINVAL.  Two ULIDs
 * made in the same millisecond are in random order. */
int spell_ulid_make(int64_t ms, char out[SPELL_ULID_LEN + 1]);

/* Checks that s is a canonical ULID and, when ms_out is not NULL, returns
 * its time.  SPELL_EINVAL for anything else (wrong length, a character
 * outside the alphabet, a first character above '7', which would overflow
 * 128 bits).  s is read no further than its NUL or 27 bytes. */
int spell_ulid_parse(const char *s, int64_t *ms_out);

/*
 * Prefixed ids: "<prefix>_<ULID>", for example "cst_01ARYZ6S41TSV4RRFFQ69G5FAV"
 * for a cast.  The prefix is 1..SPELL_ID_PREFIX_MAX characters of a-z and
 * 0-9; it may be given with its underscore ("cst_") or without ("cst"),
 * the id is the same.
 */
#define SPELL_ID_PREFIX_MAX 15
#define SPELL_ID_MAX (SPELL_ID_PREFIX_MAX + 1 + SPELL_ULID_LEN)  /* without the NUL */

/* Writes the id for prefix and time ms into out (outlen bytes, at least
 * strlen(prefix) + 28 without an underscore given; SPELL_ID_MAX + 1 always
 * suffices).  SPELL_EINVAL for a bad prefix or ms, SPELL_ETOOBIG when out
 * is too small. */
int spell_id_make(const char *prefix, int64_t ms, char *out, size_t outlen);

/* Checks that id is "<prefix>_<canonical ULID>" (prefix as above) and,
 * when ms_out is not NULL, returns the time.  SPELL_EINVAL otherwise. */
int spell_id_parse(const char *id, const char *prefix, int64_t *ms_out);

/* ---- API keys -------------------------------------------------------- */

/*
 * Full key (DESIGN.md §2): "sk_live_" <prefix> "_" <secret> <check>, with
 * an 8-character prefix, a 32-character secret and 6 check characters, all
 * base62.  The check is the CRC-32 of everything before it
 * ("sk_live_<prefix>_<secret>") written as a 6-digit big-endian base62
 * number (62^6 > 2^32), so a client or a secret scanner can tell a
 * mistyped or made-up key without asking the server.  The CRC proves
 * nothing about who made the key: the server still checks the secret.
 */
#define SPELL_APIKEY_TAG "sk_live_"
#define SPELL_APIKEY_PREFIX_LEN 8
#define SPELL_APIKEY_SECRET_LEN 32
#define SPELL_APIKEY_CHECK_LEN 6
#define SPELL_APIKEY_LEN (8 + SPELL_APIKEY_PREFIX_LEN + 1 + SPELL_APIKEY_SECRET_LEN + \
                          SPELL_APIKEY_CHECK_LEN)     /* 55, without the NUL */

struct spell_apikey {
    /* The whole key as the caster types it, NUL-terminated.  It contains
     * the secret: shown once at creation, never logged or stored. */
    char key[SPELL_APIKEY_LEN + 1];
    /* The public part that names the key in listings and in
     * DELETE /v1/keys/{prefix}. */
    char prefix[SPELL_APIKEY_PREFIX_LEN + 1];
    /* The secret part, without the tag, prefix or check characters. */
    char secret[SPELL_APIKEY_SECRET_LEN + 1];
};

/* A new random key.  Wipe it with spell_apikey_wipe() when done. */
int spell_apikey_make(struct spell_apikey *out);

/* Splits and checks a key from outside (any length, any bytes; read no
 * further than its NUL or SPELL_APIKEY_LEN + 1 bytes).  SPELL_EINVAL when
 * the shape is wrong (length, the "sk_live_" tag, the underscore, a
 * character outside base62), SPELL_EVERIFY when the shape is right but the
 * check characters do not match.  out is zeroed on failure. */
int spell_apikey_parse(const char *key, struct spell_apikey *out);

/* Clears the whole struct with OPENSSL_cleanse (not optimised away).
 * NULL is accepted. */
void spell_apikey_wipe(struct spell_apikey *k);

/* ---- Webhook signatures ---------------------------------------------- */

/* Longest webhook secret accepted (4096 bytes); a longer or empty secret is
 * SPELL_EINVAL, since an empty one would be a configuration mistake. */
#define SPELL_WEBHOOK_SECRET_MAX 4096

/*
 * GitHub: "X-Hub-Signature-256: sha256=<64 hex digits>", the HMAC-SHA-256
 * of the raw body under the webhook secret.
 */
#define SPELL_GITHUB_SIGNATURE_LEN (7 + SPELL_SHA256_HEX_LEN)  /* 71, without the NUL */

/* SPELL_OK when header (the field value) is the signature of body;
 * SPELL_EVERIFY when it is well formed but wrong; SPELL_EINVAL when it is
 * malformed (no "sha256=" prefix, not exactly 64 hex digits after it) or a
 * required argument is missing.  Hex digits may be either case.  The MAC
 * comparison is constant-time. */
int spell_github_signature_verify(const char *secret, const void *body, size_t len,
                                  const char *header);

/* The header value ("sha256=" and lowercase hex) for body, as GitHub would
 * send it; for stand-ins and tests. */
int spell_github_signature_make(const char *secret, const void *body, size_t len,
                                char out[SPELL_GITHUB_SIGNATURE_LEN + 1]);

/*
 * Stripe: "Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=...]".
 * Each v1 is the HMAC-SHA-256, in hex, of "<t>.<raw body>" under the
 * endpoint secret (several while a secret is being rolled).  Other schemes
 * (v0, and any Stripe may add) are ignored.
 */
#define SPELL_STRIPE_HEADER_MAX 8192    /* longest header accepted, without the NUL */
#define SPELL_STRIPE_T_DIGITS_MAX 18    /* longest t accepted, so it fits int64_t */

/*
 * Checks header against body, secret and the caller's clock now_s.
 *
 * Returns, in this order of checks:
 *  - SPELL_EINVAL: a missing argument, a bad secret, tolerance_s < 0, or a
 *    malformed header: empty, an element without '=' or with an empty
 *    name, no t or more than one, a t that is not 1..18 decimal digits, no
 *    v1, or a v1 that is not 64 hex digits;
 *  - SPELL_ETOOBIG: a header longer than SPELL_STRIPE_HEADER_MAX;
 *  - SPELL_EVERIFY: no v1 matches (each compared in constant time, all of
 *    them compared);
 *  - SPELL_ETIMEOUT: a genuine signature whose t is more than tolerance_s
 *    seconds before or after now_s (a replay or a badly wrong clock); at
 *    exactly tolerance_s it still passes.
 * The signature is checked before the time, as Stripe's own libraries do,
 * so SPELL_ETIMEOUT always means "authentic but stale".
 */
int spell_stripe_signature_verify(const char *secret, const void *body, size_t len,
                                  const char *header, int64_t now_s, int64_t tolerance_s);

/* Writes "t=<t>,v1=<hex>" for body at time t (0 or more) into out
 * (outlen bytes; 100 always suffice), as Stripe would send it; for
 * stand-ins and tests.  SPELL_ETOOBIG when out is too small. */
int spell_stripe_signature_make(const char *secret, const void *body, size_t len, int64_t t,
                                char *out, size_t outlen);

#endif
