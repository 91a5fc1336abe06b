/*
 * Unit tests for the portal's QR drawing (tui/qr.c): the lines must hold
 * exactly the modules libqrencode makes for the same text, surrounded by
 * a quiet zone of four light modules, in half blocks and in ASCII; the
 * finder patterns are checked against their shape in ISO/IEC 18004
 * (7x7: a dark ring, a light ring, a dark 3x3 centre).
 */
#include <stdlib.h>
#include <string.h>

#include <qrencode.h>

#include "spell/errors.h"
#include "tap.h"

#include "qr.h"

#define URL "https://checkout.stripe.com/c/pay/cs_test_a1B2c3"

/* The module at (y, x) of the picture the lines draw, read back from the
 * glyphs; -1 for a glyph that is none of the four. */
static int module_at(const struct qr_text *q, bool ascii, int y, int x)
{
    if (ascii) {
        const char *s = q->lines[y] + 2 * x;
        if (memcmp(s, "##", 2) == 0)
            return 1;
        return memcmp(s, "  ", 2) == 0 ? 0 : -1;
    }
    /* Walk to glyph x of line y / 2. */
    const char *s = q->lines[y / 2];
    for (int i = 0; i < x; i++)
        s += (unsigned char)*s < 0x80 ? 1 : 3;
    bool top, bottom;
    if (*s == ' ')
        top = bottom = false;
    else if (strncmp(s, "█", 3) == 0)
        top = bottom = true;
    else if (strncmp(s, "▀", 3) == 0)
        top = true, bottom = false;
    else if (strncmp(s, "▄", 3) == 0)
        top = false, bottom = true;
    else
        return -1;
    return (y % 2 == 0 ? top : bottom) ? 1 : 0;
}

/* Every module of the drawing against libqrencode's matrix for the text. */
static bool same_as_libqrencode(const struct qr_text *q, bool ascii, const char *text)
{
    QRcode *c = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_L);
    if (!c)
        return false;
    bool same = q->modules == c->width;
    int side = c->width + 2 * QR_QUIET;
    for (int y = 0; same && y < side; y++)
        for (int x = 0; same && x < side; x++) {
            int want = 0;
            int my = y - QR_QUIET, mx = x - QR_QUIET;
            if (my >= 0 && mx >= 0 && my < c->width && mx < c->width)
                want = c->data[my * c->width + mx] & 1;
            same = module_at(q, ascii, y, x) == want;
        }
    QRcode_free(c);
    return same;
}

/* A finder pattern whose top-left module is at (y, x). */
static bool finder_at(const struct qr_text *q, bool ascii, int y, int x)
{
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 7; j++) {
            bool ring = i == 0 || i == 6 || j == 0 || j == 6;
            bool centre = i >= 2 && i <= 4 && j >= 2 && j <= 4;
            if (module_at(q, ascii, y + i, x + j) != (ring || centre))
                return false;
        }
    return true;
}

static bool quiet_zone(const struct qr_text *q, bool ascii)
{
    int side = q->modules + 2 * QR_QUIET;
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            bool inside = y >= QR_QUIET && x >= QR_QUIET && y < side - QR_QUIET &&
                          x < side - QR_QUIET;
            if (!inside && module_at(q, ascii, y, x) != 0)
                return false;
        }
    return true;
}

static void test_utf8_matches_libqrencode(void)
{
    struct qr_text q;
    CHECK_INT(qr_render(URL, false, &q), SPELL_OK);
    /* 49 bytes in byte mode at level L: version 3, 29 modules. */
    CHECK_INT(q.modules, 29);
    CHECK_INT(q.cols, 37);
    CHECK_INT(q.n_lines, 19);
    CHECK(same_as_libqrencode(&q, false, URL));
    CHECK(quiet_zone(&q, false));
    CHECK(finder_at(&q, false, 4, 4));
    CHECK(finder_at(&q, false, 4, 4 + 29 - 7));
    CHECK(finder_at(&q, false, 4 + 29 - 7, 4));
    /* Two quiet lines on top, then the finders' top edges: row 4 dark,
     * row 5 dark only at the ring's sides. */
    CHECK_STR(q.lines[0], "                                     ");
    CHECK_STR(q.lines[1], "                                     ");
    CHECK(strncmp(q.lines[2], "    █▀▀▀▀▀█", strlen("    █▀▀▀▀▀█")) == 0);
    /* The last line: module row 36 (quiet) under nothing (row 37 does not
     * exist and reads light). */
    CHECK_STR(q.lines[18], "                                     ");
    for (int i = 0; i < q.n_lines; i++) {
        CHECK(strncmp(q.lines[i], "    ", 4) == 0);
        size_t n = strlen(q.lines[i]);
        CHECK(n >= 4 && strcmp(q.lines[i] + n - 4, "    ") == 0);
    }
    qr_text_free(&q);
    CHECK(q.lines == NULL && q.n_lines == 0);
}

static void test_ascii_matches_libqrencode(void)
{
    struct qr_text q;
    CHECK_INT(qr_render(URL, true, &q), SPELL_OK);
    CHECK_INT(q.modules, 29);
    CHECK_INT(q.cols, 74);
    CHECK_INT(q.n_lines, 37);
    CHECK(same_as_libqrencode(&q, true, URL));
    CHECK(quiet_zone(&q, true));
    CHECK(finder_at(&q, true, 4, 4));
    CHECK(finder_at(&q, true, 4, 26));
    CHECK(finder_at(&q, true, 26, 4));
    for (int i = 0; i < q.n_lines; i++)
        CHECK_INT(strlen(q.lines[i]), 74);
    CHECK(strncmp(q.lines[4], "        ##############  ", 24) == 0);
    CHECK(strncmp(q.lines[5], "        ##          ##  ", 24) == 0);
    CHECK(strncmp(q.lines[6], "        ##  ######  ##  ", 24) == 0);
    qr_text_free(&q);
}

static void test_smallest_version(void)
{
    struct qr_text q;
    /* Version 1-L holds 17 bytes: 21 modules, 29 with the quiet zone,
     * 15 lines of half blocks (the last one's lower half is blank). */
    CHECK_INT(qr_render("https://spell.io", false, &q), SPELL_OK);
    CHECK_INT(q.modules, 21);
    CHECK_INT(q.n_lines, 15);
    CHECK(same_as_libqrencode(&q, false, "https://spell.io"));
    CHECK(quiet_zone(&q, false));
    qr_text_free(&q);
}

static void test_largest_text(void)
{
    char *big = malloc(QR_TEXT_MAX + 2);
    CHECK(big != NULL);
    if (!big)
        return;
    memset(big, 'a', QR_TEXT_MAX + 1);
    big[QR_TEXT_MAX] = '\0';
    struct qr_text q;
    CHECK_INT(qr_render(big, false, &q), SPELL_OK);
    CHECK(q.modules >= 137 && q.modules <= 177);
    CHECK(same_as_libqrencode(&q, false, big));
    qr_text_free(&q);
    big[QR_TEXT_MAX] = 'a';
    big[QR_TEXT_MAX + 1] = '\0';
    CHECK_INT(qr_render(big, false, &q), SPELL_ETOOBIG);
    CHECK(q.lines == NULL && q.n_lines == 0);
    free(big);
}

static void test_bad_input(void)
{
    struct qr_text q;
    CHECK_INT(qr_render(NULL, false, &q), SPELL_EINVAL);
    CHECK_INT(qr_render("", true, &q), SPELL_EINVAL);
    CHECK(q.lines == NULL);
    /* Bytes that are not UTF-8 are still encoded as bytes. */
    CHECK_INT(qr_render("\xff\xfe http://x", false, &q), SPELL_OK);
    CHECK(same_as_libqrencode(&q, false, "\xff\xfe http://x"));
    qr_text_free(&q);
    qr_text_free(&q);
    qr_text_free(NULL);
}

int main(void)
{
    RUN(test_utf8_matches_libqrencode);
    RUN(test_ascii_matches_libqrencode);
    RUN(test_smallest_version);
    RUN(test_largest_text);
    RUN(test_bad_input);
    return tap_done();
}
