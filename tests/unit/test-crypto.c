/*
 * Unit tests for core/src/crypto.c: digests against published vectors,
 * constant-time comparison, CRC-32, random tokens, ULIDs and ids, API keys,
 * and the GitHub and Stripe webhook signatures, including hostile input.
 *
 * Expected values not taken from a published source were computed outside
 * this code base, with Python 3's hashlib, hmac and zlib modules; each such
 * value says so where it is used.
 */
#include <pthread.h>
#include <stdlib.h>

#include "spell/crypto.h"
#include "spell/errors.h"
#include "tap.h"

static const char base62_alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char crockford_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Decodes a hex test vector; returns its length in bytes. */
static size_t unhex(const char *s, unsigned char *out)
{
    size_t n = strlen(s) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned int v = 0;
        sscanf(s + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    return n;
}

static int all_in(const char *s, size_t n, const char *alphabet)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || !strchr(alphabet, s[i]))
            return 0;
    return 1;
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* The check characters of an API key, computed here independently of
 * crypto.c's own encoder: CRC-32 as a 6-digit big-endian base62 number. */
static void test_check_chars(const char *body, size_t len, char out[7])
{
    uint32_t v = spell_crc32(body, len);
    for (int i = 5; i >= 0; i--, v /= 62)
        out[i] = base62_alphabet[v % 62];
    out[6] = '\0';
}

/* ---- SHA-256 ---------------------------------------------------------- */

/* FIPS 180-2, Appendix B.1 ("abc") and B.2 (the 448-bit message); the
 * empty-string digest is the well-known SHA-256("") value. */
static void test_sha256_fips(void)
{
    unsigned char md[32], want[32];
    char hex[65];

    CHECK_INT(spell_sha256_hex("", 0, hex), SPELL_OK);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_INT(spell_sha256_hex(NULL, 0, hex), SPELL_OK);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_INT(spell_sha256_hex("abc", 3, hex), SPELL_OK);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_INT(spell_sha256("abc", 3, md), SPELL_OK);
    unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want);
    CHECK_MEM(md, 32, want, 32);
    CHECK_INT(spell_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex),
              SPELL_OK);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_binary_and_errors(void)
{
    unsigned char md[32];
    char hex[65];

    /* An embedded NUL is data like any other (Python hashlib). */
    CHECK_INT(spell_sha256_hex("a\0b", 3, hex), SPELL_OK);
    CHECK_STR(hex, "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138");

    memset(md, 0xff, sizeof md);
    CHECK_INT(spell_sha256(NULL, 5, md), SPELL_EINVAL);
    CHECK(all_zero(md, sizeof md));
    memset(hex, 'x', sizeof hex);
    CHECK_INT(spell_sha256_hex(NULL, 5, hex), SPELL_EINVAL);
    CHECK(all_zero(hex, sizeof hex));
    CHECK_INT(spell_sha256("abc", 3, NULL), SPELL_EINVAL);
    CHECK_INT(spell_sha256_hex("abc", 3, NULL), SPELL_EINVAL);
}

/* ---- HMAC-SHA-256 ----------------------------------------------------- */

/* RFC 4231, section 4, test cases 1 to 7 (HMAC-SHA-256 rows). */
struct rfc4231_case {
    const char *key_hex;
    const char *data_hex;
    const char *mac_hex;        /* case 5 gives only the first 128 bits */
};

static const struct rfc4231_case rfc4231[] = {
    /* Test Case 1 */
    { "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
      "4869205468657265",
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
    /* Test Case 2 */
    { "4a656665",
      "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
    /* Test Case 3 */
    { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
      "dddddddddddddddddddddddddddddddddddd",
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
    /* Test Case 4 */
    { "0102030405060708090a0b0c0d0e0f10111213141516171819",
      "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
      "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
    /* Test Case 5: "Test With Truncation", output truncated to 128 bits */
    { "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c",
      "546573742057697468205472756e636174696f6e",
      "a3b6167473100ee06e0c796c2955552b" },
    /* Test Case 6: 131-byte key, "Test Using Larger Than Block-Size Key -
     * Hash Key First" */
    { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaa",
      "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a"
      "65204b6579202d2048617368204b6579204669727374",
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
    /* Test Case 7: 131-byte key, "This is a test using a larger than
     * block-size key and a larger than block-size data. The key needs to
     * be hashed before being used by the HMAC algorithm." */
    { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaa",
      "5468697320697320612074657374207573696e672061206c6172676572207468"
      "616e20626c6f636b2d73697a65206b657920616e642061206c61726765722074"
      "68616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565"
      "647320746f20626520686173686564206265666f7265206265696e6720757365"
      "642062792074686520484d414320616c676f726974686d2e",
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
};

static void test_hmac_rfc4231(void)
{
    unsigned char key[200], data[200], want[32], mac[32];
    char hex[65];

    for (size_t i = 0; i < sizeof rfc4231 / sizeof rfc4231[0]; i++) {
        size_t klen = unhex(rfc4231[i].key_hex, key);
        size_t dlen = unhex(rfc4231[i].data_hex, data);
        size_t mlen = unhex(rfc4231[i].mac_hex, want);

        CHECK_INT(spell_hmac_sha256(key, klen, data, dlen, mac), SPELL_OK);
        CHECK_MEM(mac, mlen, want, mlen);
        CHECK_INT(spell_hmac_sha256_hex(key, klen, data, dlen, hex), SPELL_OK);
        CHECK_INT(strlen(hex), 64);
        CHECK(strncmp(hex, rfc4231[i].mac_hex, 2 * mlen) == 0);
    }
    /* Case 1's sizes as a sanity check on the decoding above. */
    CHECK_INT(unhex(rfc4231[0].key_hex, key), 20);
    CHECK_INT(unhex(rfc4231[5].key_hex, key), 131);
    CHECK_INT(unhex(rfc4231[4].mac_hex, want), 16);
}

static void test_hmac_empty_and_errors(void)
{
    unsigned char mac[32];
    char hex[65];

    /* HMAC-SHA-256 with an empty key over "abc" (Python hmac). */
    CHECK_INT(spell_hmac_sha256_hex("", 0, "abc", 3, hex), SPELL_OK);
    CHECK_STR(hex, "fd7adb152c05ef80dccf50a1fa4c05d5a3ec6da95575fc312ae7c5d091836351");
    CHECK_INT(spell_hmac_sha256_hex(NULL, 0, "abc", 3, hex), SPELL_OK);
    CHECK_STR(hex, "fd7adb152c05ef80dccf50a1fa4c05d5a3ec6da95575fc312ae7c5d091836351");
    /* Empty data (Python hmac). */
    CHECK_INT(spell_hmac_sha256_hex("It's a Secret to Everybody", 26, NULL, 0, hex), SPELL_OK);
    CHECK_STR(hex, "66a0c074deaa0f489ead6537e0d32f9a344b90bbeda705b6ed45ecd3b413fb40");

    memset(mac, 0xff, sizeof mac);
    CHECK_INT(spell_hmac_sha256(NULL, 4, "abc", 3, mac), SPELL_EINVAL);
    CHECK(all_zero(mac, sizeof mac));
    memset(mac, 0xff, sizeof mac);
    CHECK_INT(spell_hmac_sha256("k", 1, NULL, 3, mac), SPELL_EINVAL);
    CHECK(all_zero(mac, sizeof mac));
    memset(hex, 'x', sizeof hex);
    CHECK_INT(spell_hmac_sha256_hex("k", 1, NULL, 3, hex), SPELL_EINVAL);
    CHECK(all_zero(hex, sizeof hex));
    CHECK_INT(spell_hmac_sha256("k", 1, "abc", 3, NULL), SPELL_EINVAL);
    CHECK_INT(spell_hmac_sha256_hex("k", 1, "abc", 3, NULL), SPELL_EINVAL);
}

/* ---- Comparison and CRC-32 -------------------------------------------- */

static void test_ct_equal(void)
{
    CHECK_INT(spell_ct_equal("abcdef", 6, "abcdef", 6), 1);
    CHECK_INT(spell_ct_equal("abcdef", 6, "abcdeg", 6), 0);
    CHECK_INT(spell_ct_equal("bbcdef", 6, "abcdef", 6), 0);
    CHECK_INT(spell_ct_equal("abcdef", 6, "abcde", 5), 0);
    CHECK_INT(spell_ct_equal("abc", 3, "abcdef", 6), 0);
    CHECK_INT(spell_ct_equal("", 0, "", 0), 1);
    CHECK_INT(spell_ct_equal(NULL, 0, NULL, 0), 1);
    CHECK_INT(spell_ct_equal(NULL, 3, "abc", 3), 0);
    CHECK_INT(spell_ct_equal("abc", 3, NULL, 3), 0);
    CHECK_INT(spell_ct_equal("a\0b", 3, "a\0c", 3), 0);
    CHECK_INT(spell_ct_equal("a\0b", 3, "a\0b", 3), 1);
}

static void test_crc32(void)
{
    /* The CRC-32 check value (the catalogue of parametrised CRC algorithms,
     * CRC-32/ISO-HDLC, as zlib computes it). */
    CHECK_INT(spell_crc32("123456789", 9), 0xCBF43926U);
    CHECK_INT(spell_crc32("", 0), 0);
    CHECK_INT(spell_crc32(NULL, 0), 0);
    CHECK_INT(spell_crc32(NULL, 10), 0);
    /* Python zlib.crc32. */
    CHECK_INT(spell_crc32("a", 1), 0xe8b7be43U);
    CHECK_INT(spell_crc32("The quick brown fox jumps over the lazy dog", 43), 0x414fa339U);
}

/* ---- Randomness ------------------------------------------------------- */

static void test_random_bytes(void)
{
    unsigned char a[32], b[32];

    CHECK_INT(spell_random_bytes(a, sizeof a), SPELL_OK);
    CHECK_INT(spell_random_bytes(b, sizeof b), SPELL_OK);
    CHECK(memcmp(a, b, sizeof a) != 0);
    CHECK(!all_zero(a, sizeof a));
    CHECK_INT(spell_random_bytes(a, 0), SPELL_OK);
    CHECK_INT(spell_random_bytes(NULL, 4), SPELL_EINVAL);
    CHECK_INT(spell_random_bytes(a, (size_t)SPELL_RANDOM_BYTES_MAX + 1), SPELL_ETOOBIG);
    CHECK_INT(spell_random_bytes(a, (size_t)-1), SPELL_ETOOBIG);
}

static void test_random_token_shape(void)
{
    static char big[SPELL_RANDOM_TOKEN_MAX + 1];
    char t[64];
    const size_t sizes[] = { 0, 1, 2, 8, 43, 63 };

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        memset(t, 'x', sizeof t);
        CHECK_INT(spell_random_token(t, sizes[i]), SPELL_OK);
        CHECK_INT(strlen(t), sizes[i]);
        CHECK(all_in(t, sizes[i], base62_alphabet));
    }
    CHECK_INT(spell_random_token(big, SPELL_RANDOM_TOKEN_MAX), SPELL_OK);
    CHECK_INT(strlen(big), SPELL_RANDOM_TOKEN_MAX);
    CHECK(all_in(big, SPELL_RANDOM_TOKEN_MAX, base62_alphabet));

    t[0] = 'x';
    CHECK_INT(spell_random_token(t, SPELL_RANDOM_TOKEN_MAX + 1), SPELL_ETOOBIG);
    CHECK_INT(t[0], '\0');
    CHECK_INT(spell_random_token(t, (size_t)-1), SPELL_ETOOBIG);
    CHECK_INT(spell_random_token(NULL, 4), SPELL_EINVAL);
}

/*
 * 620,000 characters: each of the 62 is expected 10,000 times with a
 * standard deviation near 99.  The bounds sit 7 deviations out, so a fair
 * generator essentially never fails, while "byte % 62" (which gives '0'..'7'
 * a 5/256 chance instead of 4/256, about 12,100 expected) always does.
 */
static void test_random_token_distribution(void)
{
    enum { CHUNK = 4000, CHUNKS = 155 };
    static char buf[CHUNK + 1];
    long counts[62];
    long lo = 10000, hi = 10000;

    memset(counts, 0, sizeof counts);
    for (int c = 0; c < CHUNKS; c++) {
        if (spell_random_token(buf, CHUNK) != SPELL_OK) {
            CHECK(0);
            return;
        }
        for (int i = 0; i < CHUNK; i++) {
            const char *p = strchr(base62_alphabet, buf[i]);
            if (!p || buf[i] == '\0') {
                CHECK(0);
                return;
            }
            counts[p - base62_alphabet]++;
        }
    }
    for (int i = 0; i < 62; i++) {
        if (counts[i] < lo)
            lo = counts[i];
        if (counts[i] > hi)
            hi = counts[i];
    }
    printf("# base62 counts: min %ld, max %ld (expected 10000 each)\n", lo, hi);
    CHECK(lo > 0);
    CHECK(lo >= 9300);
    CHECK(hi <= 10700);
}

static void test_session_token(void)
{
    char a[SPELL_SESSION_TOKEN_LEN + 1], b[SPELL_SESSION_TOKEN_LEN + 1];

    CHECK_INT(SPELL_SESSION_TOKEN_LEN, 43);
    CHECK_INT(spell_session_token_make(a), SPELL_OK);
    CHECK_INT(spell_session_token_make(b), SPELL_OK);
    CHECK_INT(strlen(a), 43);
    CHECK(all_in(a, 43, base62_alphabet));
    CHECK(strcmp(a, b) != 0);
    CHECK_INT(spell_session_token_make(NULL), SPELL_EINVAL);
}

/* ---- ULIDs and ids ---------------------------------------------------- */

/* https://github.com/ulid/spec: "01ARYZ6S41TSV4RRFFQ69G5FAV" is the
 * README's example ULID; its time part 01ARYZ6S41 is 1469918176385 ms. */
static void test_ulid_spec_example(void)
{
    char u[SPELL_ULID_LEN + 1];
    int64_t ms = -1;

    CHECK_INT(spell_ulid_make(INT64_C(1469918176385), u), SPELL_OK);
    CHECK_INT(strlen(u), 26);
    CHECK(strncmp(u, "01ARYZ6S41", 10) == 0);
    CHECK(all_in(u, 26, crockford_alphabet));
    CHECK_INT(spell_ulid_parse(u, &ms), SPELL_OK);
    CHECK_INT(ms, INT64_C(1469918176385));

    ms = -1;
    CHECK_INT(spell_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAV", &ms), SPELL_OK);
    CHECK_INT(ms, INT64_C(1469918176385));
    CHECK_INT(spell_ulid_parse("01ARYZ6S41TSV4RRFFQ69G5FAV", NULL), SPELL_OK);

    CHECK_INT(spell_ulid_make(0, u), SPELL_OK);
    CHECK(strncmp(u, "0000000000", 10) == 0);
    CHECK_INT(spell_ulid_parse(u, &ms), SPELL_OK);
    CHECK_INT(ms, 0);
    CHECK_INT(spell_ulid_make(SPELL_ULID_MS_MAX, u), SPELL_OK);
    CHECK(strncmp(u, "7ZZZZZZZZZ", 10) == 0);
    CHECK_INT(spell_ulid_parse(u, &ms), SPELL_OK);
    CHECK_INT(ms, SPELL_ULID_MS_MAX);
    CHECK_INT(spell_ulid_parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", &ms), SPELL_OK);
    CHECK_INT(ms, SPELL_ULID_MS_MAX);
}

static void test_ulid_random_part(void)
{
    char a[SPELL_ULID_LEN + 1], b[SPELL_ULID_LEN + 1];

    CHECK_INT(spell_ulid_make(1000, a), SPELL_OK);
    CHECK_INT(spell_ulid_make(1000, b), SPELL_OK);
    CHECK(strncmp(a, b, 10) == 0);
    CHECK(strcmp(a + 10, b + 10) != 0);
}

static void test_ulid_sorts_by_time(void)
{
    const int64_t times[] = {
        0, 1, 31, 32, 33, 1023, 1024, INT64_C(1469918176385), INT64_C(1469918176386),
        INT64_C(1700000000000), INT64_C(1700000000001), INT64_C(1735689600000),
        INT64_C(4102444800000), SPELL_ULID_MS_MAX - 1, SPELL_ULID_MS_MAX,
    };
    char prev[SPELL_ULID_LEN + 1], cur[SPELL_ULID_LEN + 1];

    CHECK_INT(spell_ulid_make(times[0], prev), SPELL_OK);
    for (size_t i = 1; i < sizeof times / sizeof times[0]; i++) {
        int64_t ms = -1;
        CHECK_INT(spell_ulid_make(times[i], cur), SPELL_OK);
        CHECK(strcmp(prev, cur) < 0);
        CHECK_INT(spell_ulid_parse(cur, &ms), SPELL_OK);
        CHECK_INT(ms, times[i]);
        memcpy(prev, cur, sizeof cur);
    }
    /* Many random times, compared pairwise with their strings. */
    for (int i = 0; i < 2000; i++) {
        unsigned char r[12];
        uint64_t x = 0, y = 0;
        char ua[SPELL_ULID_LEN + 1], ub[SPELL_ULID_LEN + 1];
        spell_random_bytes(r, sizeof r);
        for (int k = 0; k < 6; k++) {
            x = x << 8 | r[k];
            y = y << 8 | r[6 + k];
        }
        if (x == y)
            continue;
        CHECK_INT(spell_ulid_make((int64_t)x, ua), SPELL_OK);
        CHECK_INT(spell_ulid_make((int64_t)y, ub), SPELL_OK);
        CHECK((x < y) == (strcmp(ua, ub) < 0));
    }
}

static void test_ulid_rejects(void)
{
    char u[SPELL_ULID_LEN + 1];
    int64_t ms;
    static const char *bad[] = {
        "",
        "01ARYZ6S41TSV4RRFFQ69G5FA",            /* 25 */
        "01ARYZ6S41TSV4RRFFQ69G5FAVX",          /* 27 */
        "01aryz6s41tsv4rrffq69g5fav",           /* lowercase */
        "01ARYZ6S41TSV4RRFFQ69G5FAI",           /* I */
        "01ARYZ6S41TSV4RRFFQ69G5FAL",           /* L */
        "01ARYZ6S41TSV4RRFFQ69G5FAO",           /* O */
        "01ARYZ6S41TSV4RRFFQ69G5FAU",           /* U */
        "81ARYZ6S41TSV4RRFFQ69G5FAV",           /* overflows 128 bits */
        "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "01ARYZ6S41-TSV4RRFFQ69G5FA",
        "01ARYZ6S41 TSV4RRFFQ69G5FA",
        "01ARYZ6S41TSV4RRFFQ69G5FA\xff",
        "\303\2511ARYZ6S41TSV4RRFFQ69G5FA",     /* UTF-8 e-acute first */
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms = 42;
        CHECK_INT(spell_ulid_parse(bad[i], &ms), SPELL_EINVAL);
        CHECK_INT(ms, 0);
    }
    /* A NUL inside: the parser stops there and sees 10 characters. */
    CHECK_INT(spell_ulid_parse("01ARYZ6S41\0SV4RRFFQ69G5FAV", &ms), SPELL_EINVAL);
    CHECK_INT(spell_ulid_parse(NULL, &ms), SPELL_EINVAL);

    memset(u, 'x', sizeof u);
    CHECK_INT(spell_ulid_make(-1, u), SPELL_EINVAL);
    CHECK(all_zero(u, sizeof u));
    CHECK_INT(spell_ulid_make(SPELL_ULID_MS_MAX + 1, u), SPELL_EINVAL);
    CHECK_INT(spell_ulid_make(INT64_MIN, u), SPELL_EINVAL);
    CHECK_INT(spell_ulid_make(INT64_MAX, u), SPELL_EINVAL);
    CHECK_INT(spell_ulid_make(0, NULL), SPELL_EINVAL);
}

static void test_id_make_and_parse(void)
{
    char id[SPELL_ID_MAX + 1], id2[SPELL_ID_MAX + 1];
    int64_t ms = -1;

    CHECK_INT(spell_id_make("cst", INT64_C(1469918176385), id, sizeof id), SPELL_OK);
    CHECK_INT(strlen(id), 30);
    CHECK(strncmp(id, "cst_01ARYZ6S41", 14) == 0);
    CHECK(all_in(id + 4, 26, crockford_alphabet));
    CHECK_INT(spell_id_parse(id, "cst", &ms), SPELL_OK);
    CHECK_INT(ms, INT64_C(1469918176385));
    CHECK_INT(spell_id_parse(id, "cst_", &ms), SPELL_OK);

    /* With or without the underscore, the same shape. */
    CHECK_INT(spell_id_make("cst_", INT64_C(1469918176385), id2, sizeof id2), SPELL_OK);
    CHECK_INT(strlen(id2), 30);
    CHECK(strncmp(id2, "cst_01ARYZ6S41", 14) == 0);
    CHECK(strcmp(id, id2) != 0);

    CHECK_INT(spell_id_parse("cst_01ARYZ6S41TSV4RRFFQ69G5FAV", "cst", NULL), SPELL_OK);

    /* The longest prefix fits SPELL_ID_MAX exactly. */
    CHECK_INT(spell_id_make("abcdefghijklmn5", 7, id, sizeof id), SPELL_OK);
    CHECK_INT(strlen(id), SPELL_ID_MAX);
    CHECK_INT(spell_id_parse(id, "abcdefghijklmn5", &ms), SPELL_OK);
    CHECK_INT(ms, 7);
}

static void test_id_rejects(void)
{
    char id[SPELL_ID_MAX + 1];
    char small[30];
    int64_t ms;
    static const char *bad_prefixes[] = {
        "", "_", "CST", "c-t", "cst__", "c t", "abcdefghijklmnop", "abcdefghijklmnop_",
        "cst\xff", "\xc3\xa9t",
    };

    for (size_t i = 0; i < sizeof bad_prefixes / sizeof bad_prefixes[0]; i++) {
        memset(id, 'x', sizeof id);
        CHECK_INT(spell_id_make(bad_prefixes[i], 1, id, sizeof id), SPELL_EINVAL);
        CHECK(all_zero(id, sizeof id));
        CHECK_INT(spell_id_parse("cst_01ARYZ6S41TSV4RRFFQ69G5FAV", bad_prefixes[i], &ms),
                  SPELL_EINVAL);
    }
    CHECK_INT(spell_id_make(NULL, 1, id, sizeof id), SPELL_EINVAL);
    CHECK_INT(spell_id_make("cst", 1, NULL, 10), SPELL_EINVAL);
    CHECK_INT(spell_id_make("cst", 1, id, 0), SPELL_EINVAL);
    CHECK_INT(spell_id_make("cst", -1, id, sizeof id), SPELL_EINVAL);
    CHECK(all_zero(id, sizeof id));
    CHECK_INT(spell_id_make("cst", SPELL_ULID_MS_MAX + 1, id, sizeof id), SPELL_EINVAL);

    /* "cst_" + 26 + NUL = 31 bytes: 30 is one short, 31 is enough. */
    memset(small, 'x', sizeof small);
    CHECK_INT(spell_id_make("cst", 1, small, sizeof small), SPELL_ETOOBIG);
    CHECK(all_zero(small, sizeof small));
    CHECK_INT(spell_id_make("cst", 1, id, 31), SPELL_OK);
    CHECK_INT(strlen(id), 30);

    static const char *bad_ids[] = {
        "",
        "cst",
        "cst_",
        "cs",
        "cst01ARYZ6S41TSV4RRFFQ69G5FAV",
        "usr_01ARYZ6S41TSV4RRFFQ69G5FAV",
        "CST_01ARYZ6S41TSV4RRFFQ69G5FAV",
        "cst-01ARYZ6S41TSV4RRFFQ69G5FAV",
        "cst__01ARYZ6S41TSV4RRFFQ69G5FAV",
        "cst_01ARYZ6S41TSV4RRFFQ69G5FA",
        "cst_01ARYZ6S41TSV4RRFFQ69G5FAVV",
        "cst_01aryz6s41tsv4rrffq69g5fav",
        "cst_81ARYZ6S41TSV4RRFFQ69G5FAV",
        "xcst_01ARYZ6S41TSV4RRFFQ69G5FAV",
    };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        ms = 42;
        CHECK_INT(spell_id_parse(bad_ids[i], "cst", &ms), SPELL_EINVAL);
        CHECK_INT(ms, 0);
    }
    CHECK_INT(spell_id_parse("cst\0_01ARYZ6S41TSV4RRFFQ69G5FAV", "cst", &ms), SPELL_EINVAL);
    CHECK_INT(spell_id_parse(NULL, "cst", &ms), SPELL_EINVAL);
    CHECK_INT(spell_id_parse("cst_01ARYZ6S41TSV4RRFFQ69G5FAV", NULL, &ms), SPELL_EINVAL);
}

/* ---- API keys --------------------------------------------------------- */

/* Check characters computed with Python: zlib.crc32 of the first 49
 * characters (0x5e6d0fdd and 0xdd6fc2dc), as 6 big-endian base62 digits. */
static const char known_key[] = "sk_live_AbCdEf12_0123456789abcdefghijABCDEFGHIJkl1jDAIH";
static const char zero_key[] = "sk_live_00000000_0000000000000000000000000000000043Q8OC";

static void test_apikey_known(void)
{
    struct spell_apikey k;
    char check[7];

    CHECK_INT(strlen(known_key), SPELL_APIKEY_LEN);
    CHECK_INT(spell_crc32(known_key, 49), 0x5e6d0fddU);
    test_check_chars(known_key, 49, check);
    CHECK_STR(check, "1jDAIH");

    CHECK_INT(spell_apikey_parse(known_key, &k), SPELL_OK);
    CHECK_STR(k.key, known_key);
    CHECK_STR(k.prefix, "AbCdEf12");
    CHECK_STR(k.secret, "0123456789abcdefghijABCDEFGHIJkl");

    CHECK_INT(spell_apikey_parse(zero_key, &k), SPELL_OK);
    CHECK_STR(k.prefix, "00000000");
    CHECK_STR(k.secret, "00000000000000000000000000000000");
    spell_apikey_wipe(&k);
}

static void test_apikey_roundtrip(void)
{
    struct spell_apikey k, p;
    char prev[SPELL_APIKEY_LEN + 1] = "";
    char check[7];

    for (int i = 0; i < 2000; i++) {
        CHECK_INT(spell_apikey_make(&k), SPELL_OK);
        CHECK_INT(strlen(k.key), SPELL_APIKEY_LEN);
        CHECK(strncmp(k.key, "sk_live_", 8) == 0);
        CHECK_INT(k.key[16], '_');
        CHECK(all_in(k.key + 8, 8, base62_alphabet));
        CHECK(all_in(k.key + 17, 38, base62_alphabet));
        CHECK_INT(strlen(k.prefix), 8);
        CHECK_INT(strlen(k.secret), 32);
        CHECK(memcmp(k.key + 8, k.prefix, 8) == 0);
        CHECK(memcmp(k.key + 17, k.secret, 32) == 0);
        test_check_chars(k.key, 49, check);
        CHECK(memcmp(k.key + 49, check, 6) == 0);
        CHECK(strcmp(k.key, prev) != 0);

        memset(&p, 'x', sizeof p);
        CHECK_INT(spell_apikey_parse(k.key, &p), SPELL_OK);
        CHECK_MEM(&p, sizeof p, &k, sizeof k);
        memcpy(prev, k.key, sizeof prev);
    }
    spell_apikey_wipe(&k);
    spell_apikey_wipe(&p);
    CHECK_INT(spell_apikey_make(NULL), SPELL_EINVAL);
}

static int is_base62_char(int c)
{
    return c != 0 && strchr(base62_alphabet, c) != NULL;
}

/* Every position, every other byte value: the shape check or the CRC
 * catches each single change (CRC-32 detects every error burst of up to
 * 32 bits, and a different check digit is a different number). */
static void exhaust_single_changes(const char *key)
{
    struct spell_apikey out;
    char m[SPELL_APIKEY_LEN + 1];
    int wrong = 0, zeroed_failures = 0;

    for (int pos = 0; pos < SPELL_APIKEY_LEN; pos++) {
        for (int c = 0; c < 256; c++) {
            int want, got;
            if (c == (unsigned char)key[pos])
                continue;
            memcpy(m, key, sizeof m);
            m[pos] = (char)c;
            if (pos < 8 || pos == 16 || !is_base62_char(c))
                want = SPELL_EINVAL;
            else
                want = SPELL_EVERIFY;
            memset(&out, 'x', sizeof out);
            got = spell_apikey_parse(m, &out);
            if (got != want) {
                if (!wrong)
                    printf("# position %d byte %d: got %d, want %d\n", pos, c, got, want);
                wrong++;
            }
            if (!all_zero(&out, sizeof out))
                zeroed_failures++;
        }
    }
    CHECK_INT(wrong, 0);
    CHECK_INT(zeroed_failures, 0);
}

static void test_apikey_single_changes(void)
{
    struct spell_apikey k;

    exhaust_single_changes(known_key);
    exhaust_single_changes(zero_key);
    CHECK_INT(spell_apikey_make(&k), SPELL_OK);
    exhaust_single_changes(k.key);
    spell_apikey_wipe(&k);
}

static void test_apikey_transposition(void)
{
    struct spell_apikey out;
    char m[SPELL_APIKEY_LEN + 1];

    /* Swapping two different neighbours in the secret is caught too. */
    memcpy(m, known_key, sizeof m);
    m[20] = known_key[21];
    m[21] = known_key[20];
    CHECK_INT(spell_apikey_parse(m, &out), SPELL_EVERIFY);
}

static void test_apikey_shape_rejects(void)
{
    struct spell_apikey out;
    char m[128];
    char check[7];
    char *huge;

    CHECK_INT(spell_apikey_parse(NULL, &out), SPELL_EINVAL);
    CHECK_INT(spell_apikey_parse(known_key, NULL), SPELL_EINVAL);
    CHECK_INT(spell_apikey_parse("", &out), SPELL_EINVAL);
    CHECK_INT(spell_apikey_parse("sk_live_", &out), SPELL_EINVAL);

    /* One character short and one too many. */
    memcpy(m, known_key, SPELL_APIKEY_LEN - 1);
    m[SPELL_APIKEY_LEN - 1] = '\0';
    CHECK_INT(spell_apikey_parse(m, &out), SPELL_EINVAL);
    snprintf(m, sizeof m, "%sA", known_key);
    CHECK_INT(spell_apikey_parse(m, &out), SPELL_EINVAL);
    snprintf(m, sizeof m, "%s\n", known_key);
    CHECK_INT(spell_apikey_parse(m, &out), SPELL_EINVAL);
    snprintf(m, sizeof m, " %s", known_key);
    CHECK_INT(spell_apikey_parse(m, &out), SPELL_EINVAL);

    /* sk_test_ with check characters that are right for it. */
    memcpy(m, known_key, sizeof known_key);
    memcpy(m, "sk_test_", 8);
    test_check_chars(m, 49, check);
    memcpy(m + 49, check, 6);
    CHECK_INT(spell_apikey_parse(m, &out), SPELL_EINVAL);

    /* A dash for the underscore, again with a matching check. */
    memcpy(m, known_key, sizeof known_key);
    m[16] = '-';
    test_check_chars(m, 49, check);
    memcpy(m + 49, check, 6);
    CHECK_INT(spell_apikey_parse(m, &out), SPELL_EINVAL);

    /* A NUL in the middle: the parser sees a 30-character string. */
    memcpy(m, known_key, sizeof known_key);
    m[30] = '\0';
    CHECK_INT(spell_apikey_parse(m, &out), SPELL_EINVAL);

    /* Non-base62 characters in each part, with a matching check. */
    const int spots[] = { 9, 25, 50 };
    const char *intruders[] = { "-", "_", "+", "/", "=", " ", "\xff", "\x80" };
    for (size_t s = 0; s < sizeof spots / sizeof spots[0]; s++) {
        for (size_t j = 0; j < sizeof intruders / sizeof intruders[0]; j++) {
            memcpy(m, known_key, sizeof known_key);
            m[spots[s]] = intruders[j][0];
            if (spots[s] < 49) {
                test_check_chars(m, 49, check);
                memcpy(m + 49, check, 6);
            }
            CHECK_INT(spell_apikey_parse(m, &out), SPELL_EINVAL);
        }
    }

    /* A megabyte of base62: read no further than one past the length. */
    huge = malloc(1 << 20);
    CHECK(huge != NULL);
    if (huge) {
        memset(huge, 'a', (1 << 20) - 1);
        huge[(1 << 20) - 1] = '\0';
        memcpy(huge, "sk_live_", 8);
        CHECK_INT(spell_apikey_parse(huge, &out), SPELL_EINVAL);
        free(huge);
    }
    CHECK(all_zero(&out, sizeof out));
}

static void test_apikey_wipe(void)
{
    struct spell_apikey k;

    CHECK_INT(spell_apikey_make(&k), SPELL_OK);
    spell_apikey_wipe(&k);
    CHECK(all_zero(&k, sizeof k));
    spell_apikey_wipe(NULL);
}

/* ---- GitHub ----------------------------------------------------------- */

/* GitHub Docs, "Validating webhook deliveries", "Testing the webhook
 * payload validation": secret "It's a Secret to Everybody", payload
 * "Hello, World!", signature below. */
static const char gh_secret[] = "It's a Secret to Everybody";
static const char gh_body[] = "Hello, World!";
static const char gh_header[] =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

static void test_github_example(void)
{
    char out[SPELL_GITHUB_SIGNATURE_LEN + 1];
    char m[128];

    CHECK_INT(spell_github_signature_verify(gh_secret, gh_body, strlen(gh_body), gh_header),
              SPELL_OK);
    CHECK_INT(spell_github_signature_make(gh_secret, gh_body, strlen(gh_body), out), SPELL_OK);
    CHECK_STR(out, gh_header);

    /* Uppercase hex digits are the same signature. */
    memcpy(m, gh_header, sizeof gh_header);
    for (char *p = m + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    CHECK_INT(spell_github_signature_verify(gh_secret, gh_body, strlen(gh_body), m), SPELL_OK);

    /* Empty body: made and checked both ways. */
    CHECK_INT(spell_github_signature_make(gh_secret, NULL, 0, out), SPELL_OK);
    CHECK_STR(out, "sha256=66a0c074deaa0f489ead6537e0d32f9a344b90bbeda705b6ed45ecd3b413fb40");
    CHECK_INT(spell_github_signature_verify(gh_secret, "", 0, out), SPELL_OK);
}

static void test_github_mismatch(void)
{
    char m[128];
    const size_t blen = strlen(gh_body);

    CHECK_INT(spell_github_signature_verify("It's a Secret to Everybody!", gh_body, blen,
                                            gh_header), SPELL_EVERIFY);
    CHECK_INT(spell_github_signature_verify(gh_secret, "Hello, World?", blen, gh_header),
              SPELL_EVERIFY);
    CHECK_INT(spell_github_signature_verify(gh_secret, gh_body, blen - 1, gh_header),
              SPELL_EVERIFY);
    CHECK_INT(spell_github_signature_verify(gh_secret, "Hello, World!\n", blen + 1, gh_header),
              SPELL_EVERIFY);
    /* Every hex digit changed in turn. */
    for (size_t i = 7; i < SPELL_GITHUB_SIGNATURE_LEN; i++) {
        memcpy(m, gh_header, sizeof gh_header);
        m[i] = m[i] == '0' ? '1' : '0';
        CHECK_INT(spell_github_signature_verify(gh_secret, gh_body, blen, m), SPELL_EVERIFY);
    }
}

static void test_github_malformed(void)
{
    char m[256];
    char *huge;
    const size_t blen = strlen(gh_body);
    static const char *bad[] = {
        "",
        "sha256=",
        "sha256",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256:757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e177",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1g",
        "sha256= 57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        " sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e\xff",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_INT(spell_github_signature_verify(gh_secret, gh_body, blen, bad[i]), SPELL_EINVAL);

    /* A NUL inside the header. */
    memcpy(m, gh_header, sizeof gh_header);
    m[40] = '\0';
    CHECK_INT(spell_github_signature_verify(gh_secret, gh_body, blen, m), SPELL_EINVAL);

    /* The right signature followed by more. */
    snprintf(m, sizeof m, "%s,sha256=%s", gh_header, gh_header + 7);
    CHECK_INT(spell_github_signature_verify(gh_secret, gh_body, blen, m), SPELL_EINVAL);

    huge = malloc(1 << 20);
    CHECK(huge != NULL);
    if (huge) {
        memset(huge, 'a', (1 << 20) - 1);
        huge[(1 << 20) - 1] = '\0';
        memcpy(huge, "sha256=", 7);
        CHECK_INT(spell_github_signature_verify(gh_secret, gh_body, blen, huge), SPELL_EINVAL);
        free(huge);
    }
}

static void test_github_arguments(void)
{
    char out[SPELL_GITHUB_SIGNATURE_LEN + 1];
    char long_secret[SPELL_WEBHOOK_SECRET_MAX + 2];
    const size_t blen = strlen(gh_body);

    CHECK_INT(spell_github_signature_verify(NULL, gh_body, blen, gh_header), SPELL_EINVAL);
    CHECK_INT(spell_github_signature_verify("", gh_body, blen, gh_header), SPELL_EINVAL);
    CHECK_INT(spell_github_signature_verify(gh_secret, NULL, blen, gh_header), SPELL_EINVAL);
    CHECK_INT(spell_github_signature_verify(gh_secret, gh_body, blen, NULL), SPELL_EINVAL);

    memset(long_secret, 's', sizeof long_secret - 1);
    long_secret[sizeof long_secret - 1] = '\0';
    CHECK_INT(spell_github_signature_make(long_secret, gh_body, blen, out), SPELL_EINVAL);
    CHECK(all_zero(out, sizeof out));
    long_secret[SPELL_WEBHOOK_SECRET_MAX] = '\0';      /* exactly at the cap */
    CHECK_INT(spell_github_signature_make(long_secret, gh_body, blen, out), SPELL_OK);
    CHECK_INT(spell_github_signature_verify(long_secret, gh_body, blen, out), SPELL_OK);

    memset(out, 'x', sizeof out);
    CHECK_INT(spell_github_signature_make("", gh_body, blen, out), SPELL_EINVAL);
    CHECK(all_zero(out, sizeof out));
    CHECK_INT(spell_github_signature_make(gh_secret, NULL, 3, out), SPELL_EINVAL);
    CHECK_INT(spell_github_signature_make(gh_secret, gh_body, blen, NULL), SPELL_EINVAL);
}

/* ---- Stripe ----------------------------------------------------------- */

/* Stripe signs "<t>.<body>": HMAC-SHA-256 under "whsec_test" of
 * '1700000000.{"id":"evt_1"}', computed with Python's hmac module. */
static const char st_secret[] = "whsec_test";
static const char st_body[] = "{\"id\":\"evt_1\"}";
static const int64_t st_t = INT64_C(1700000000);
static const char st_v1[] = "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925";

/* A wrong but well-formed signature. */
static const char st_wrong[] = "0000000000000000000000000000000000000000000000000000000000000000";

static int st_verify(const char *header, int64_t now)
{
    return spell_stripe_signature_verify(st_secret, st_body, strlen(st_body), header, now, 300);
}

static void test_stripe_by_hand(void)
{
    char hex[65], header[256], made[128];

    /* Built here from the HMAC primitive, independently of the make side. */
    CHECK_INT(spell_hmac_sha256_hex(st_secret, strlen(st_secret),
                                    "1700000000.{\"id\":\"evt_1\"}", 25, hex), SPELL_OK);
    CHECK_STR(hex, st_v1);
    snprintf(header, sizeof header, "t=1700000000,v1=%s", st_v1);
    CHECK_INT(st_verify(header, st_t), SPELL_OK);

    CHECK_INT(spell_stripe_signature_make(st_secret, st_body, strlen(st_body), st_t, made,
                                          sizeof made), SPELL_OK);
    CHECK_STR(made, header);

    /* Stripe's own header order puts v0 last; t may come anywhere. */
    snprintf(header, sizeof header, "t=1700000000,v1=%s,v0=%s", st_v1, st_wrong);
    CHECK_INT(st_verify(header, st_t), SPELL_OK);
    snprintf(header, sizeof header, "v1=%s,t=1700000000", st_v1);
    CHECK_INT(st_verify(header, st_t), SPELL_OK);
    /* Uppercase hex and unknown schemes, even odd ones, are accepted. */
    snprintf(header, sizeof header, "t=1700000000,v2=whatever,x=,v1=%s", st_v1);
    for (char *p = strstr(header, "v1=") + 3; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    CHECK_INT(st_verify(header, st_t), SPELL_OK);
}

static void test_stripe_several_v1(void)
{
    char header[512];

    snprintf(header, sizeof header, "t=1700000000,v1=%s,v1=%s", st_wrong, st_v1);
    CHECK_INT(st_verify(header, st_t), SPELL_OK);
    snprintf(header, sizeof header, "t=1700000000,v1=%s,v1=%s", st_v1, st_wrong);
    CHECK_INT(st_verify(header, st_t), SPELL_OK);
    snprintf(header, sizeof header, "t=1700000000,v1=%s,v1=%s,v1=%s,v0=%s", st_wrong,
             st_wrong, st_v1, st_wrong);
    CHECK_INT(st_verify(header, st_t), SPELL_OK);
    snprintf(header, sizeof header, "t=1700000000,v1=%s,v1=%s", st_wrong, st_wrong);
    CHECK_INT(st_verify(header, st_t), SPELL_EVERIFY);

    /* The right MAC under v0 only: there is no v1 to check. */
    snprintf(header, sizeof header, "t=1700000000,v0=%s", st_v1);
    CHECK_INT(st_verify(header, st_t), SPELL_EINVAL);
    /* The right MAC under v0, a wrong one under v1. */
    snprintf(header, sizeof header, "t=1700000000,v0=%s,v1=%s", st_v1, st_wrong);
    CHECK_INT(st_verify(header, st_t), SPELL_EVERIFY);
}

static void test_stripe_tampered(void)
{
    char header[256];
    const char body2[] = "{\"id\":\"evt_2\"}";

    snprintf(header, sizeof header, "t=1700000000,v1=%s", st_v1);
    CHECK_INT(spell_stripe_signature_verify(st_secret, body2, strlen(body2), header, st_t, 300),
              SPELL_EVERIFY);
    CHECK_INT(spell_stripe_signature_verify(st_secret, st_body, strlen(st_body) - 1, header,
                                            st_t, 300), SPELL_EVERIFY);
    CHECK_INT(spell_stripe_signature_verify("whsec_tesT", st_body, strlen(st_body), header,
                                            st_t, 300), SPELL_EVERIFY);
    /* A moved timestamp breaks the MAC, even within tolerance. */
    snprintf(header, sizeof header, "t=1700000001,v1=%s", st_v1);
    CHECK_INT(st_verify(header, st_t), SPELL_EVERIFY);
    /* The same number written differently is different signed text. */
    snprintf(header, sizeof header, "t=01700000000,v1=%s", st_v1);
    CHECK_INT(st_verify(header, st_t), SPELL_EVERIFY);

    /* Bodies with NUL bytes are signed and checked whole. */
    char made[128];
    CHECK_INT(spell_stripe_signature_make(st_secret, "a\0b", 3, st_t, made, sizeof made),
              SPELL_OK);
    CHECK_INT(spell_stripe_signature_verify(st_secret, "a\0b", 3, made, st_t, 300), SPELL_OK);
    CHECK_INT(spell_stripe_signature_verify(st_secret, "a\0b", 1, made, st_t, 300),
              SPELL_EVERIFY);
    CHECK_INT(spell_stripe_signature_verify(st_secret, "a\0c", 3, made, st_t, 300),
              SPELL_EVERIFY);
}

static void test_stripe_tolerance(void)
{
    char header[256];

    snprintf(header, sizeof header, "t=1700000000,v1=%s", st_v1);
    CHECK_INT(st_verify(header, st_t + 300), SPELL_OK);
    CHECK_INT(st_verify(header, st_t + 301), SPELL_ETIMEOUT);
    CHECK_INT(st_verify(header, st_t - 300), SPELL_OK);
    CHECK_INT(st_verify(header, st_t - 301), SPELL_ETIMEOUT);
    CHECK_INT(st_verify(header, st_t + 86400), SPELL_ETIMEOUT);
    CHECK_INT(st_verify(header, 0), SPELL_ETIMEOUT);
    CHECK_INT(st_verify(header, INT64_MAX), SPELL_ETIMEOUT);
    CHECK_INT(st_verify(header, INT64_MIN), SPELL_ETIMEOUT);
    CHECK_INT(st_verify(header, -1), SPELL_ETIMEOUT);

    CHECK_INT(spell_stripe_signature_verify(st_secret, st_body, strlen(st_body), header, st_t, 0),
              SPELL_OK);
    CHECK_INT(spell_stripe_signature_verify(st_secret, st_body, strlen(st_body), header,
                                            st_t + 1, 0), SPELL_ETIMEOUT);
    CHECK_INT(spell_stripe_signature_verify(st_secret, st_body, strlen(st_body), header, 0,
                                            INT64_MAX), SPELL_OK);
    /* |INT64_MIN - t| is past INT64_MAX: stale, and no overflow on the way. */
    CHECK_INT(spell_stripe_signature_verify(st_secret, st_body, strlen(st_body), header,
                                            INT64_MIN, INT64_MAX), SPELL_ETIMEOUT);
    CHECK_INT(spell_stripe_signature_verify(st_secret, st_body, strlen(st_body), header, st_t,
                                            -1), SPELL_EINVAL);

    /* A stale header with a forged MAC is a forgery, not a stale event. */
    snprintf(header, sizeof header, "t=1700000000,v1=%s", st_wrong);
    CHECK_INT(st_verify(header, st_t + 10000), SPELL_EVERIFY);
}

static void test_stripe_malformed(void)
{
    char header[512];
    char *huge;
    static const char *bad[] = {
        "",
        "t",
        "t=",
        "=5",
        ",",
        "v1",
        "t=1700000000",
        "t=1700000000,",
        ",t=1700000000",
        "t=1700000000,,v1=0000000000000000000000000000000000000000000000000000000000000000",
        "t=abc,v1=0000000000000000000000000000000000000000000000000000000000000000",
        "t=-5,v1=0000000000000000000000000000000000000000000000000000000000000000",
        "t=+5,v1=0000000000000000000000000000000000000000000000000000000000000000",
        "t=1.5,v1=0000000000000000000000000000000000000000000000000000000000000000",
        "t=17 ,v1=0000000000000000000000000000000000000000000000000000000000000000",
        "t=1234567890123456789,v1=0000000000000000000000000000000000000000000000000000000000000000",
        "t=1,t=1,v1=0000000000000000000000000000000000000000000000000000000000000000",
        "v1=0000000000000000000000000000000000000000000000000000000000000000",
        " t=1700000000,v1=0000000000000000000000000000000000000000000000000000000000000000",
        "t=1700000000,v1=",
        "t=1700000000,v1=zz",
        "t=1700000000,v1=000000000000000000000000000000000000000000000000000000000000000",
        "t=1700000000,v1=00000000000000000000000000000000000000000000000000000000000000000",
        "t=1700000000,v1=000000000000000000000000000000000000000000000000000000000000000g",
        "t=1700000000;v1=0000000000000000000000000000000000000000000000000000000000000000",
        "t=1700000000,v1",
        "t=1700000000,=x,v1=0000000000000000000000000000000000000000000000000000000000000000",
        "t=\xff,v1=0000000000000000000000000000000000000000000000000000000000000000",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = st_verify(bad[i], st_t);
        if (rc != SPELL_EINVAL)
            printf("# bad header %zu gave %d\n", i, rc);
        CHECK_INT(rc, SPELL_EINVAL);
    }

    /* Malformed elements are rejected even next to a valid v1. */
    snprintf(header, sizeof header, "t=1700000000,v1=%s,v1=zz", st_v1);
    CHECK_INT(st_verify(header, st_t), SPELL_EINVAL);
    snprintf(header, sizeof header, "t=1700000000,v1=%s,junk", st_v1);
    CHECK_INT(st_verify(header, st_t), SPELL_EINVAL);

    /* A NUL ends the header where it stands. */
    snprintf(header, sizeof header, "t=1700000000,v1=%s", st_v1);
    header[40] = '\0';
    CHECK_INT(st_verify(header, st_t), SPELL_EINVAL);

    /* Exactly at the length cap (padded with an unknown scheme) and one past. */
    huge = malloc(1 << 20);
    CHECK(huge != NULL);
    if (huge) {
        int n = snprintf(huge, 200, "t=1700000000,v1=%s,x=", st_v1);
        memset(huge + n, 'a', SPELL_STRIPE_HEADER_MAX - (size_t)n);
        huge[SPELL_STRIPE_HEADER_MAX] = '\0';
        CHECK_INT(strlen(huge), SPELL_STRIPE_HEADER_MAX);
        CHECK_INT(st_verify(huge, st_t), SPELL_OK);
        huge[SPELL_STRIPE_HEADER_MAX] = 'a';
        huge[SPELL_STRIPE_HEADER_MAX + 1] = '\0';
        CHECK_INT(st_verify(huge, st_t), SPELL_ETOOBIG);

        memset(huge, 'a', (1 << 20) - 1);
        huge[(1 << 20) - 1] = '\0';
        CHECK_INT(st_verify(huge, st_t), SPELL_ETOOBIG);
        /* Many elements within the cap: all compared, none match. */
        size_t off = (size_t)snprintf(huge, 64, "t=1700000000");
        while (off + 68 < SPELL_STRIPE_HEADER_MAX)
            off += (size_t)snprintf(huge + off, 70, ",v1=%s", st_wrong);
        CHECK_INT(st_verify(huge, st_t), SPELL_EVERIFY);
        free(huge);
    }
}

static void test_stripe_arguments(void)
{
    char header[256], out[128];
    char long_secret[SPELL_WEBHOOK_SECRET_MAX + 2];
    const size_t blen = strlen(st_body);

    snprintf(header, sizeof header, "t=1700000000,v1=%s", st_v1);
    CHECK_INT(spell_stripe_signature_verify(NULL, st_body, blen, header, st_t, 300),
              SPELL_EINVAL);
    CHECK_INT(spell_stripe_signature_verify("", st_body, blen, header, st_t, 300),
              SPELL_EINVAL);
    CHECK_INT(spell_stripe_signature_verify(st_secret, NULL, blen, header, st_t, 300),
              SPELL_EINVAL);
    CHECK_INT(spell_stripe_signature_verify(st_secret, st_body, blen, NULL, st_t, 300),
              SPELL_EINVAL);
    memset(long_secret, 's', sizeof long_secret - 1);
    long_secret[sizeof long_secret - 1] = '\0';
    CHECK_INT(spell_stripe_signature_verify(long_secret, st_body, blen, header, st_t, 300),
              SPELL_EINVAL);

    /* "t=1700000000,v1=" + 64 hex = 80 characters and a NUL. */
    memset(out, 'x', sizeof out);
    CHECK_INT(spell_stripe_signature_make(st_secret, st_body, blen, st_t, out, 80),
              SPELL_ETOOBIG);
    CHECK(all_zero(out, 80));
    CHECK_INT(spell_stripe_signature_make(st_secret, st_body, blen, st_t, out, 81), SPELL_OK);
    CHECK_STR(out, header);
    CHECK_INT(spell_stripe_signature_make(st_secret, st_body, blen, -1, out, sizeof out),
              SPELL_EINVAL);
    CHECK_STR(out, "");
    CHECK_INT(spell_stripe_signature_make("", st_body, blen, st_t, out, sizeof out),
              SPELL_EINVAL);
    CHECK_INT(spell_stripe_signature_make(st_secret, NULL, 2, st_t, out, sizeof out),
              SPELL_EINVAL);
    CHECK_INT(spell_stripe_signature_make(st_secret, st_body, blen, st_t, NULL, 100),
              SPELL_EINVAL);
    CHECK_INT(spell_stripe_signature_make(st_secret, st_body, blen, st_t, out, 0),
              SPELL_EINVAL);

    /* The largest t made and verified; t = 0 also works. */
    CHECK_INT(spell_stripe_signature_make(st_secret, st_body, blen, INT64_C(999999999999999999),
                                          out, sizeof out), SPELL_OK);
    CHECK_INT(spell_stripe_signature_verify(st_secret, st_body, blen, out,
                                            INT64_C(999999999999999999), 0), SPELL_OK);
    CHECK_INT(spell_stripe_signature_make(st_secret, st_body, blen, 0, out, sizeof out),
              SPELL_OK);
    CHECK(strncmp(out, "t=0,v1=", 7) == 0);
    CHECK_INT(spell_stripe_signature_verify(st_secret, st_body, blen, out, 0, 0), SPELL_OK);
}

/* ---- Threads ---------------------------------------------------------- */

static void *thread_work(void *arg)
{
    int *failures = arg;

    for (int i = 0; i < 300; i++) {
        struct spell_apikey k, p;
        char id[SPELL_ID_MAX + 1];
        char sig[SPELL_GITHUB_SIGNATURE_LEN + 1];
        int64_t ms = 0;

        if (spell_apikey_make(&k) != SPELL_OK || spell_apikey_parse(k.key, &p) != SPELL_OK ||
            strcmp(k.key, p.key) != 0)
            (*failures)++;
        if (spell_id_make("cst", 1000 + i, id, sizeof id) != SPELL_OK ||
            spell_id_parse(id, "cst", &ms) != SPELL_OK || ms != 1000 + i)
            (*failures)++;
        if (spell_github_signature_make(k.secret, id, strlen(id), sig) != SPELL_OK ||
            spell_github_signature_verify(k.secret, id, strlen(id), sig) != SPELL_OK)
            (*failures)++;
        spell_apikey_wipe(&k);
        spell_apikey_wipe(&p);
    }
    return NULL;
}

static void test_threads(void)
{
    enum { N = 4 };
    pthread_t th[N];
    int failures[N] = { 0 };
    int started = 0;

    for (int i = 0; i < N; i++)
        if (pthread_create(&th[i], NULL, thread_work, &failures[i]) == 0)
            started++;
        else
            break;
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    CHECK_INT(started, N);
    for (int i = 0; i < N; i++)
        CHECK_INT(failures[i], 0);
}

int main(void)
{
    RUN(test_sha256_fips);
    RUN(test_sha256_binary_and_errors);
    RUN(test_hmac_rfc4231);
    RUN(test_hmac_empty_and_errors);
    RUN(test_ct_equal);
    RUN(test_crc32);
    RUN(test_random_bytes);
    RUN(test_random_token_shape);
    RUN(test_random_token_distribution);
    RUN(test_session_token);
    RUN(test_ulid_spec_example);
    RUN(test_ulid_random_part);
    RUN(test_ulid_sorts_by_time);
    RUN(test_ulid_rejects);
    RUN(test_id_make_and_parse);
    RUN(test_id_rejects);
    RUN(test_apikey_known);
    RUN(test_apikey_roundtrip);
    RUN(test_apikey_single_changes);
    RUN(test_apikey_transposition);
    RUN(test_apikey_shape_rejects);
    RUN(test_apikey_wipe);
    RUN(test_github_example);
    RUN(test_github_mismatch);
    RUN(test_github_malformed);
    RUN(test_github_arguments);
    RUN(test_stripe_by_hand);
    RUN(test_stripe_several_v1);
    RUN(test_stripe_tampered);
    RUN(test_stripe_tolerance);
    RUN(test_stripe_malformed);
    RUN(test_stripe_arguments);
    RUN(test_threads);
    return tap_done();
}
