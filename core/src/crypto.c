/*
 * Hashes, MACs, randomness, ids, API keys and webhook signatures (see
 * crypto.h for what each is for).
 *
 * Everything cryptographic goes through OpenSSL 3's non-deprecated
 * interfaces: EVP_Digest for SHA-256, EVP_MAC ("HMAC" with SHA256) for
 * HMAC, RAND_bytes for randomness, CRYPTO_memcmp for comparisons and
 * OPENSSL_cleanse for wiping.  The HMAC is fetched per call rather than
 * cached, so the module keeps no state and needs no locking.  CRC-32 and the
 * base62 and Crockford base32 encodings are done here, by table.
 *
 * Every failure path zeroes the caller's out-parameters and wipes local
 * copies of MACs and secrets before returning.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "spell/crypto.h"
#include "spell/errors.h"

static const char hex_digits[] = "0123456789abcdef";
static const char base62_digits[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char crockford_digits[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* zlib's CRC-32 table: polynomial 0xEDB88320 (IEEE 802.3, reflected). */
static const uint32_t crc32_table[256] = {
    0x00000000U, 0x77073096U, 0xee0e612cU, 0x990951baU, 0x076dc419U, 0x706af48fU,
    0xe963a535U, 0x9e6495a3U, 0x0edb8832U, 0x79dcb8a4U, 0xe0d5e91eU, 0x97d2d988U,
    0x09b64c2bU, 0x7eb17cbdU, 0xe7b82d07U, 0x90bf1d91U, 0x1db71064U, 0x6ab020f2U,
    0xf3b97148U, 0x84be41deU, 0x1adad47dU, 0x6ddde4ebU, 0xf4d4b551U, 0x83d385c7U,
    0x136c9856U, 0x646ba8c0U, 0xfd62f97aU, 0x8a65c9ecU, 0x14015c4fU, 0x63066cd9U,
    0xfa0f3d63U, 0x8d080df5U, 0x3b6e20c8U, 0x4c69105eU, 0xd56041e4U, 0xa2677172U,
    0x3c03e4d1U, 0x4b04d447U, 0xd20d85fdU, 0xa50ab56bU, 0x35b5a8faU, 0x42b2986cU,
    0xdbbbc9d6U, 0xacbcf940U, 0x32d86ce3U, 0x45df5c75U, 0xdcd60dcfU, 0xabd13d59U,
    0x26d930acU, 0x51de003aU, 0xc8d75180U, 0xbfd06116U, 0x21b4f4b5U, 0x56b3c423U,
    0xcfba9599U, 0xb8bda50fU, 0x2802b89eU, 0x5f058808U, 0xc60cd9b2U, 0xb10be924U,
    0x2f6f7c87U, 0x58684c11U, 0xc1611dabU, 0xb6662d3dU, 0x76dc4190U, 0x01db7106U,
    0x98d220bcU, 0xefd5102aU, 0x71b18589U, 0x06b6b51fU, 0x9fbfe4a5U, 0xe8b8d433U,
    0x7807c9a2U, 0x0f00f934U, 0x9609a88eU, 0xe10e9818U, 0x7f6a0dbbU, 0x086d3d2dU,
    0x91646c97U, 0xe6635c01U, 0x6b6b51f4U, 0x1c6c6162U, 0x856530d8U, 0xf262004eU,
    0x6c0695edU, 0x1b01a57bU, 0x8208f4c1U, 0xf50fc457U, 0x65b0d9c6U, 0x12b7e950U,
    0x8bbeb8eaU, 0xfcb9887cU, 0x62dd1ddfU, 0x15da2d49U, 0x8cd37cf3U, 0xfbd44c65U,
    0x4db26158U, 0x3ab551ceU, 0xa3bc0074U, 0xd4bb30e2U, 0x4adfa541U, 0x3dd895d7U,
    0xa4d1c46dU, 0xd3d6f4fbU, 0x4369e96aU, 0x346ed9fcU, 0xad678846U, 0xda60b8d0U,
    0x44042d73U, 0x33031de5U, 0xaa0a4c5fU, 0xdd0d7cc9U, 0x5005713cU, 0x270241aaU,
    0xbe0b1010U, 0xc90c2086U, 0x5768b525U, 0x206f85b3U, 0xb966d409U, 0xce61e49fU,
    0x5edef90eU, 0x29d9c998U, 0xb0d09822U, 0xc7d7a8b4U, 0x59b33d17U, 0x2eb40d81U,
    0xb7bd5c3bU, 0xc0ba6cadU, 0xedb88320U, 0x9abfb3b6U, 0x03b6e20cU, 0x74b1d29aU,
    0xead54739U, 0x9dd277afU, 0x04db2615U, 0x73dc1683U, 0xe3630b12U, 0x94643b84U,
    0x0d6d6a3eU, 0x7a6a5aa8U, 0xe40ecf0bU, 0x9309ff9dU, 0x0a00ae27U, 0x7d079eb1U,
    0xf00f9344U, 0x8708a3d2U, 0x1e01f268U, 0x6906c2feU, 0xf762575dU, 0x806567cbU,
    0x196c3671U, 0x6e6b06e7U, 0xfed41b76U, 0x89d32be0U, 0x10da7a5aU, 0x67dd4accU,
    0xf9b9df6fU, 0x8ebeeff9U, 0x17b7be43U, 0x60b08ed5U, 0xd6d6a3e8U, 0xa1d1937eU,
    0x38d8c2c4U, 0x4fdff252U, 0xd1bb67f1U, 0xa6bc5767U, 0x3fb506ddU, 0x48b2364bU,
    0xd80d2bdaU, 0xaf0a1b4cU, 0x36034af6U, 0x41047a60U, 0xdf60efc3U, 0xa867df55U,
    0x316e8eefU, 0x4669be79U, 0xcb61b38cU, 0xbc66831aU, 0x256fd2a0U, 0x5268e236U,
    0xcc0c7795U, 0xbb0b4703U, 0x220216b9U, 0x5505262fU, 0xc5ba3bbeU, 0xb2bd0b28U,
    0x2bb45a92U, 0x5cb36a04U, 0xc2d7ffa7U, 0xb5d0cf31U, 0x2cd99e8bU, 0x5bdeae1dU,
    0x9b64c2b0U, 0xec63f226U, 0x756aa39cU, 0x026d930aU, 0x9c0906a9U, 0xeb0e363fU,
    0x72076785U, 0x05005713U, 0x95bf4a82U, 0xe2b87a14U, 0x7bb12baeU, 0x0cb61b38U,
    0x92d28e9bU, 0xe5d5be0dU, 0x7cdcefb7U, 0x0bdbdf21U, 0x86d3d2d4U, 0xf1d4e242U,
    0x68ddb3f8U, 0x1fda836eU, 0x81be16cdU, 0xf6b9265bU, 0x6fb077e1U, 0x18b74777U,
    0x88085ae6U, 0xff0f6a70U, 0x66063bcaU, 0x11010b5cU, 0x8f659effU, 0xf862ae69U,
    0x616bffd3U, 0x166ccf45U, 0xa00ae278U, 0xd70dd2eeU, 0x4e048354U, 0x3903b3c2U,
    0xa7672661U, 0xd06016f7U, 0x4969474dU, 0x3e6e77dbU, 0xaed16a4aU, 0xd9d65adcU,
    0x40df0b66U, 0x37d83bf0U, 0xa9bcae53U, 0xdebb9ec5U, 0x47b2cf7fU, 0x30b5ffe9U,
    0xbdbdf21cU, 0xcabac28aU, 0x53b39330U, 0x24b4a3a6U, 0xbad03605U, 0xcdd70693U,
    0x54de5729U, 0x23d967bfU, 0xb3667a2eU, 0xc4614ab8U, 0x5d681b02U, 0x2a6f2b94U,
    0xb40bbe37U, 0xc30c8ea1U, 0x5a05df1bU, 0x2d02ef8dU,
};

/* One piece of a message fed to the MAC in turn, so "<t>.<body>" needs no
 * copy of the body. */
struct mac_part {
    const void *data;
    size_t len;
};

/* ---- Helpers --------------------------------------------------------- */

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes exactly 2 * n hex digits (either case) into out; 0 on success,
 * -1 on a non-hex character. */
static int hex_decode(const char *in, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value((unsigned char)in[2 * i]);
        int lo = hex_value((unsigned char)in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int is_base62(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int crockford_value(unsigned char c)
{
    const char *p;
    if (c == '\0')
        return -1;
    p = strchr(crockford_digits, c);
    return p ? (int)(p - crockford_digits) : -1;
}

/* Length of a webhook secret, or 0 when it is missing, empty or longer
 * than SPELL_WEBHOOK_SECRET_MAX. */
static size_t secret_length(const char *secret)
{
    size_t n;
    if (!secret)
        return 0;
    n = strnlen(secret, SPELL_WEBHOOK_SECRET_MAX + 1);
    return n > SPELL_WEBHOOK_SECRET_MAX ? 0 : n;
}

static int hmac_parts(const void *key, size_t key_len, const struct mac_part *parts,
                      size_t n_parts, unsigned char out[SPELL_SHA256_LEN])
{
    /* EVP_MAC_init treats a NULL key as "keep the old key", so an empty key
     * is passed as a valid pointer with length 0. */
    static const unsigned char empty_key[1] = { 0 };
    char digest[] = "SHA256";
    int rc = SPELL_ECRYPTO;
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    size_t out_len = 0;

    mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (!mac)
        goto out;
    ctx = EVP_MAC_CTX_new(mac);
    if (!ctx) {
        rc = SPELL_ENOMEM;
        goto out;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(ctx, key_len ? key : empty_key, key_len, params))
        goto out;
    for (size_t i = 0; i < n_parts; i++)
        if (parts[i].len && !EVP_MAC_update(ctx, parts[i].data, parts[i].len))
            goto out;
    if (!EVP_MAC_final(ctx, out, &out_len, SPELL_SHA256_LEN) || out_len != SPELL_SHA256_LEN)
        goto out;
    rc = SPELL_OK;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    if (rc != SPELL_OK)
        OPENSSL_cleanse(out, SPELL_SHA256_LEN);
    return rc;
}

/* ---- Digests --------------------------------------------------------- */

int spell_sha256(const void *data, size_t len, unsigned char out[32])
{
    static const unsigned char empty[1] = { 0 };
    unsigned int out_len = 0;

    if (!out)
        return SPELL_EINVAL;
    if (!data && len) {
        memset(out, 0, SPELL_SHA256_LEN);
        return SPELL_EINVAL;
    }
    if (!EVP_Digest(len ? data : empty, len, out, &out_len, EVP_sha256(), NULL) ||
        out_len != SPELL_SHA256_LEN) {
        memset(out, 0, SPELL_SHA256_LEN);
        return SPELL_ECRYPTO;
    }
    return SPELL_OK;
}

int spell_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[SPELL_SHA256_LEN];
    int rc;

    if (!out)
        return SPELL_EINVAL;
    rc = spell_sha256(data, len, md);
    if (rc == SPELL_OK)
        hex_encode(md, sizeof md, out);
    else
        memset(out, 0, SPELL_SHA256_HEX_LEN + 1);
    return rc;
}

int spell_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                      unsigned char out[32])
{
    struct mac_part part = { data, len };

    if (!out)
        return SPELL_EINVAL;
    if ((!key && key_len) || (!data && len)) {
        memset(out, 0, SPELL_SHA256_LEN);
        return SPELL_EINVAL;
    }
    return hmac_parts(key, key_len, &part, 1, out);
}

int spell_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
                          char out[65])
{
    unsigned char mac[SPELL_SHA256_LEN];
    int rc;

    if (!out)
        return SPELL_EINVAL;
    rc = spell_hmac_sha256(key, key_len, data, len, mac);
    if (rc == SPELL_OK)
        hex_encode(mac, sizeof mac, out);
    else
        memset(out, 0, SPELL_SHA256_HEX_LEN + 1);
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

int spell_ct_equal(const void *a, size_t a_len, const void *b, size_t b_len)
{
    if (a_len != b_len)
        return 0;
    if (a_len == 0)
        return 1;
    if (!a || !b)
        return 0;
    return CRYPTO_memcmp(a, b, a_len) == 0;
}

uint32_t spell_crc32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t crc = 0xffffffffU;

    if (!p)
        return 0;
    for (size_t i = 0; i < len; i++)
        crc = crc32_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffU;
}

/* ---- Randomness ------------------------------------------------------ */

int spell_random_bytes(void *out, size_t len)
{
    if (!out)
        return SPELL_EINVAL;
    if (len > SPELL_RANDOM_BYTES_MAX)
        return SPELL_ETOOBIG;
    if (len == 0)
        return SPELL_OK;
    if (RAND_bytes(out, (int)len) != 1) {
        OPENSSL_cleanse(out, len);
        return SPELL_ECRYPTO;
    }
    return SPELL_OK;
}

int spell_random_token(char *out, size_t n_chars)
{
    /* 248 = 4 * 62: bytes below it map evenly onto the 62 characters. */
    enum { ACCEPT_BELOW = 248 };
    unsigned char pool[64];
    size_t used = sizeof pool;
    size_t i = 0;
    int rc = SPELL_OK;

    if (!out)
        return SPELL_EINVAL;
    if (n_chars > SPELL_RANDOM_TOKEN_MAX) {
        out[0] = '\0';
        return SPELL_ETOOBIG;
    }
    while (i < n_chars) {
        unsigned char b;
        if (used == sizeof pool) {
            if ((rc = spell_random_bytes(pool, sizeof pool)) != SPELL_OK)
                goto out;
            used = 0;
        }
        b = pool[used++];
        if (b < ACCEPT_BELOW)
            out[i++] = base62_digits[b % 62];
    }
    out[n_chars] = '\0';
out:
    OPENSSL_cleanse(pool, sizeof pool);
    if (rc != SPELL_OK)
        OPENSSL_cleanse(out, n_chars + 1);
    return rc;
}

int spell_session_token_make(char out[SPELL_SESSION_TOKEN_LEN + 1])
{
    return spell_random_token(out, SPELL_SESSION_TOKEN_LEN);
}

/* ---- ULIDs and ids --------------------------------------------------- */

int spell_ulid_make(int64_t ms, char out[SPELL_ULID_LEN + 1])
{
    unsigned char rnd[10];
    uint64_t t, hi, lo;
    int rc;

    if (!out)
        return SPELL_EINVAL;
    if (ms < 0 || ms > SPELL_ULID_MS_MAX) {
        memset(out, 0, SPELL_ULID_LEN + 1);
        return SPELL_EINVAL;
    }
    if ((rc = spell_random_bytes(rnd, sizeof rnd)) != SPELL_OK) {
        memset(out, 0, SPELL_ULID_LEN + 1);
        return rc;
    }
    /* 10 characters of time (the first holds only 3 bits), then the 80
     * random bits as two 40-bit halves of 8 characters each. */
    t = (uint64_t)ms;
    hi = lo = 0;
    for (int i = 0; i < 5; i++) {
        hi = hi << 8 | rnd[i];
        lo = lo << 8 | rnd[5 + i];
    }
    for (int i = 9; i >= 0; i--, t >>= 5)
        out[i] = crockford_digits[t & 31];
    for (int i = 7; i >= 0; i--, hi >>= 5, lo >>= 5) {
        out[10 + i] = crockford_digits[hi & 31];
        out[18 + i] = crockford_digits[lo & 31];
    }
    out[SPELL_ULID_LEN] = '\0';
    OPENSSL_cleanse(rnd, sizeof rnd);
    return SPELL_OK;
}

int spell_ulid_parse(const char *s, int64_t *ms_out)
{
    uint64_t t = 0;

    if (ms_out)
        *ms_out = 0;
    if (!s || strnlen(s, SPELL_ULID_LEN + 1) != SPELL_ULID_LEN || s[0] > '7')
        return SPELL_EINVAL;
    for (int i = 0; i < SPELL_ULID_LEN; i++) {
        int v = crockford_value((unsigned char)s[i]);
        if (v < 0)
            return SPELL_EINVAL;
        if (i < 10)
            t = t << 5 | (uint64_t)v;
    }
    if (ms_out)
        *ms_out = (int64_t)t;
    return SPELL_OK;
}

/* Length of a valid id prefix without its optional underscore, or 0 when
 * the prefix is invalid. */
static size_t id_prefix_length(const char *prefix)
{
    size_t n;

    if (!prefix)
        return 0;
    n = strnlen(prefix, SPELL_ID_PREFIX_MAX + 2);
    if (n > 0 && prefix[n - 1] == '_')
        n--;
    if (n == 0 || n > SPELL_ID_PREFIX_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((prefix[i] >= 'a' && prefix[i] <= 'z') || (prefix[i] >= '0' && prefix[i] <= '9')))
            return 0;
    return n;
}

int spell_id_make(const char *prefix, int64_t ms, char *out, size_t outlen)
{
    size_t plen;
    int rc;

    if (!out || outlen == 0)
        return SPELL_EINVAL;
    memset(out, 0, outlen);
    plen = id_prefix_length(prefix);
    if (plen == 0)
        return SPELL_EINVAL;
    if (outlen < plen + 1 + SPELL_ULID_LEN + 1)
        return SPELL_ETOOBIG;
    memcpy(out, prefix, plen);
    out[plen] = '_';
    rc = spell_ulid_make(ms, out + plen + 1);
    if (rc != SPELL_OK)
        memset(out, 0, outlen);
    return rc;
}

int spell_id_parse(const char *id, const char *prefix, int64_t *ms_out)
{
    size_t plen = id_prefix_length(prefix);

    if (ms_out)
        *ms_out = 0;
    if (!id || plen == 0)
        return SPELL_EINVAL;
    /* strncmp stops at a NUL in id, so a short id is never overread. */
    if (strncmp(id, prefix, plen) != 0 || id[plen] != '_')
        return SPELL_EINVAL;
    return spell_ulid_parse(id + plen + 1, ms_out);
}

/* ---- API keys -------------------------------------------------------- */

enum {
    APIKEY_TAG_LEN = 8,
    APIKEY_PREFIX_AT = APIKEY_TAG_LEN,
    APIKEY_SEP_AT = APIKEY_PREFIX_AT + SPELL_APIKEY_PREFIX_LEN,
    APIKEY_SECRET_AT = APIKEY_SEP_AT + 1,
    APIKEY_CHECK_AT = APIKEY_SECRET_AT + SPELL_APIKEY_SECRET_LEN,
};

/* The check characters for the first APIKEY_CHECK_AT bytes of key: their
 * CRC-32 as a 6-digit big-endian base62 number. */
static void apikey_check(const char *key, char check[SPELL_APIKEY_CHECK_LEN])
{
    uint32_t v = spell_crc32(key, APIKEY_CHECK_AT);

    for (int i = SPELL_APIKEY_CHECK_LEN - 1; i >= 0; i--, v /= 62)
        check[i] = base62_digits[v % 62];
}

int spell_apikey_make(struct spell_apikey *out)
{
    int rc;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if ((rc = spell_random_token(out->prefix, SPELL_APIKEY_PREFIX_LEN)) != SPELL_OK)
        goto out;
    if ((rc = spell_random_token(out->secret, SPELL_APIKEY_SECRET_LEN)) != SPELL_OK)
        goto out;
    memcpy(out->key, SPELL_APIKEY_TAG, APIKEY_TAG_LEN);
    memcpy(out->key + APIKEY_PREFIX_AT, out->prefix, SPELL_APIKEY_PREFIX_LEN);
    out->key[APIKEY_SEP_AT] = '_';
    memcpy(out->key + APIKEY_SECRET_AT, out->secret, SPELL_APIKEY_SECRET_LEN);
    apikey_check(out->key, out->key + APIKEY_CHECK_AT);
    out->key[SPELL_APIKEY_LEN] = '\0';
out:
    if (rc != SPELL_OK)
        spell_apikey_wipe(out);
    return rc;
}

int spell_apikey_parse(const char *key, struct spell_apikey *out)
{
    char check[SPELL_APIKEY_CHECK_LEN];
    int rc = SPELL_EINVAL;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, sizeof *out);
    if (!key || strnlen(key, SPELL_APIKEY_LEN + 1) != SPELL_APIKEY_LEN)
        goto out;
    if (memcmp(key, SPELL_APIKEY_TAG, APIKEY_TAG_LEN) != 0 || key[APIKEY_SEP_AT] != '_')
        goto out;
    for (size_t i = APIKEY_PREFIX_AT; i < SPELL_APIKEY_LEN; i++)
        if (i != APIKEY_SEP_AT && !is_base62((unsigned char)key[i]))
            goto out;
    apikey_check(key, check);
    if (memcmp(check, key + APIKEY_CHECK_AT, SPELL_APIKEY_CHECK_LEN) != 0) {
        rc = SPELL_EVERIFY;
        goto out;
    }
    memcpy(out->key, key, SPELL_APIKEY_LEN);
    memcpy(out->prefix, key + APIKEY_PREFIX_AT, SPELL_APIKEY_PREFIX_LEN);
    memcpy(out->secret, key + APIKEY_SECRET_AT, SPELL_APIKEY_SECRET_LEN);
    rc = SPELL_OK;
out:
    if (rc != SPELL_OK)
        spell_apikey_wipe(out);
    return rc;
}

void spell_apikey_wipe(struct spell_apikey *k)
{
    if (k)
        OPENSSL_cleanse(k, sizeof *k);
}

/* ---- Webhook signatures ---------------------------------------------- */

int spell_github_signature_make(const char *secret, const void *body, size_t len,
                                char out[SPELL_GITHUB_SIGNATURE_LEN + 1])
{
    unsigned char mac[SPELL_SHA256_LEN];
    size_t slen = secret_length(secret);
    int rc = SPELL_EINVAL;

    if (!out)
        return SPELL_EINVAL;
    memset(out, 0, SPELL_GITHUB_SIGNATURE_LEN + 1);
    if (slen == 0 || (!body && len))
        goto out;
    if ((rc = spell_hmac_sha256(secret, slen, body, len, mac)) != SPELL_OK)
        goto out;
    memcpy(out, "sha256=", 7);
    hex_encode(mac, sizeof mac, out + 7);
out:
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

int spell_github_signature_verify(const char *secret, const void *body, size_t len,
                                  const char *header)
{
    unsigned char want[SPELL_SHA256_LEN], got[SPELL_SHA256_LEN];
    size_t slen = secret_length(secret);
    int rc = SPELL_EINVAL;

    memset(got, 0, sizeof got);
    memset(want, 0, sizeof want);
    if (slen == 0 || (!body && len) || !header)
        goto out;
    if (strnlen(header, SPELL_GITHUB_SIGNATURE_LEN + 1) != SPELL_GITHUB_SIGNATURE_LEN ||
        memcmp(header, "sha256=", 7) != 0 ||
        hex_decode(header + 7, sizeof got, got) != 0)
        goto out;
    if ((rc = spell_hmac_sha256(secret, slen, body, len, want)) != SPELL_OK)
        goto out;
    rc = CRYPTO_memcmp(want, got, sizeof want) == 0 ? SPELL_OK : SPELL_EVERIFY;
out:
    OPENSSL_cleanse(want, sizeof want);
    OPENSSL_cleanse(got, sizeof got);
    return rc;
}

/* One "name=value" element of a Stripe-Signature header. */
struct stripe_elem {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Reads the element at *pos of header h (hlen bytes, no NUL inside) and
 * moves *pos past it and its comma.  Returns 1 for an element, 0 at the
 * end, -1 for an element without '=' or with an empty name. */
static int stripe_next(const char *h, size_t hlen, size_t *pos, struct stripe_elem *e)
{
    const char *start, *end, *eq;

    if (*pos > hlen)
        return 0;
    start = h + *pos;
    end = memchr(start, ',', hlen - *pos);
    if (!end)
        end = h + hlen;
    *pos = (size_t)(end - h) + 1;
    eq = memchr(start, '=', (size_t)(end - start));
    if (!eq || eq == start)
        return -1;
    e->name = start;
    e->name_len = (size_t)(eq - start);
    e->value = eq + 1;
    e->value_len = (size_t)(end - eq - 1);
    return 1;
}

static int stripe_name_is(const struct stripe_elem *e, const char *name)
{
    size_t n = strlen(name);
    return e->name_len == n && memcmp(e->name, name, n) == 0;
}

int spell_stripe_signature_verify(const char *secret, const void *body, size_t len,
                                  const char *header, int64_t now_s, int64_t tolerance_s)
{
    unsigned char want[SPELL_SHA256_LEN], got[SPELL_SHA256_LEN];
    struct stripe_elem e;
    struct mac_part parts[3];
    const char *t_str = NULL;
    size_t t_len = 0, hlen, pos;
    size_t slen = secret_length(secret);
    int64_t t = 0;
    uint64_t skew;
    int n_v1 = 0, matched = 0, r;
    int rc = SPELL_EINVAL;

    memset(want, 0, sizeof want);
    memset(got, 0, sizeof got);
    if (slen == 0 || (!body && len) || !header || tolerance_s < 0)
        goto out;
    hlen = strnlen(header, SPELL_STRIPE_HEADER_MAX + 1);
    if (hlen > SPELL_STRIPE_HEADER_MAX) {
        rc = SPELL_ETOOBIG;
        goto out;
    }
    if (hlen == 0)
        goto out;

    /* First pass: check the shape and find t, which may come after the
     * signatures. */
    pos = 0;
    while ((r = stripe_next(header, hlen, &pos, &e)) == 1) {
        if (stripe_name_is(&e, "t")) {
            if (t_str || e.value_len == 0 || e.value_len > SPELL_STRIPE_T_DIGITS_MAX)
                goto out;
            for (size_t i = 0; i < e.value_len; i++) {
                if (e.value[i] < '0' || e.value[i] > '9')
                    goto out;
                t = t * 10 + (e.value[i] - '0');
            }
            t_str = e.value;
            t_len = e.value_len;
        } else if (stripe_name_is(&e, "v1")) {
            if (e.value_len != 2 * SPELL_SHA256_LEN || hex_decode(e.value, sizeof got, got) != 0)
                goto out;
            n_v1++;
        }
    }
    if (r < 0 || !t_str || n_v1 == 0)
        goto out;

    /* The signed payload is the t text exactly as sent, a dot, the body. */
    parts[0].data = t_str;
    parts[0].len = t_len;
    parts[1].data = ".";
    parts[1].len = 1;
    parts[2].data = body;
    parts[2].len = len;
    if ((rc = hmac_parts(secret, slen, parts, 3, want)) != SPELL_OK)
        goto out;

    /* Second pass: compare every v1, each in constant time. */
    pos = 0;
    while (stripe_next(header, hlen, &pos, &e) == 1) {
        if (!stripe_name_is(&e, "v1"))
            continue;
        hex_decode(e.value, sizeof got, got);
        matched |= CRYPTO_memcmp(want, got, sizeof want) == 0;
    }
    if (!matched) {
        rc = SPELL_EVERIFY;
        goto out;
    }

    /* |now - t| computed in unsigned arithmetic, which cannot overflow. */
    skew = t >= now_s ? (uint64_t)t - (uint64_t)now_s : (uint64_t)now_s - (uint64_t)t;
    rc = skew > (uint64_t)tolerance_s ? SPELL_ETIMEOUT : SPELL_OK;
out:
    OPENSSL_cleanse(want, sizeof want);
    OPENSSL_cleanse(got, sizeof got);
    return rc;
}

int spell_stripe_signature_make(const char *secret, const void *body, size_t len, int64_t t,
                                char *out, size_t outlen)
{
    unsigned char mac[SPELL_SHA256_LEN];
    char t_str[24];
    char hex[SPELL_SHA256_HEX_LEN + 1];
    struct mac_part parts[3];
    size_t slen = secret_length(secret);
    int n, rc = SPELL_EINVAL;

    memset(mac, 0, sizeof mac);
    memset(hex, 0, sizeof hex);
    if (!out || outlen == 0)
        return SPELL_EINVAL;
    memset(out, 0, outlen);
    if (slen == 0 || (!body && len) || t < 0)
        goto out;
    n = snprintf(t_str, sizeof t_str, "%" PRId64, t);
    if (n < 0 || (size_t)n >= sizeof t_str)
        goto out;
    parts[0].data = t_str;
    parts[0].len = (size_t)n;
    parts[1].data = ".";
    parts[1].len = 1;
    parts[2].data = body;
    parts[2].len = len;
    if ((rc = hmac_parts(secret, slen, parts, 3, mac)) != SPELL_OK)
        goto out;
    hex_encode(mac, sizeof mac, hex);
    n = snprintf(out, outlen, "t=%s,v1=%s", t_str, hex);
    if (n < 0 || (size_t)n >= outlen) {
        memset(out, 0, outlen);
        rc = SPELL_ETOOBIG;
        goto out;
    }
    rc = SPELL_OK;
out:
    OPENSSL_cleanse(mac, sizeof mac);
    OPENSSL_cleanse(hex, sizeof hex);
    return rc;
}
