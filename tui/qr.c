/*
 * QR codes as lines of text (qr.h): libqrencode makes the module matrix,
 * this file turns it into half-block or "##" lines with the quiet zone.
 */
#include "qr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <qrencode.h>

#include "spell/errors.h"

void qr_text_free(struct qr_text *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->n_lines; i++)
        free(q->lines[i]);
    free(q->lines);
    memset(q, 0, sizeof *q);
}

/* Whether the module at row y, column x (quiet zone included) is dark. */
static bool dark(const QRcode *c, int y, int x)
{
    y -= QR_QUIET;
    x -= QR_QUIET;
    if (y < 0 || x < 0 || y >= c->width || x >= c->width)
        return false;
    return c->data[y * c->width + x] & 1;
}

int qr_render(const char *text, bool ascii, struct qr_text *out)
{
    int rc = SPELL_EINVAL;
    QRcode *code = NULL;
    struct qr_text q = {0};
    memset(out, 0, sizeof *out);
    if (!text || !text[0])
        goto out;
    rc = SPELL_ETOOBIG;
    if (strnlen(text, QR_TEXT_MAX + 1) > QR_TEXT_MAX)
        goto out;
    errno = 0;
    code = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_L);
    if (!code) {
        rc = errno == ENOMEM ? SPELL_ENOMEM : SPELL_ETOOBIG;
        goto out;
    }
    int side = code->width + 2 * QR_QUIET;
    q.modules = code->width;
    q.n_lines = ascii ? side : (side + 1) / 2;
    q.cols = ascii ? 2 * side : side;
    /* A line is at most side glyphs of 3 bytes (UTF-8) or 2 (ASCII). */
    size_t line_max = (size_t)side * 3 + 1;
    rc = SPELL_ENOMEM;
    if (!(q.lines = calloc((size_t)q.n_lines, sizeof *q.lines)))
        goto out;
    for (int i = 0; i < q.n_lines; i++) {
        char *s = malloc(line_max), *o = s;
        if (!s) {
            q.n_lines = i;
            goto out;
        }
        q.lines[i] = s;
        for (int x = 0; x < side; x++) {
            if (ascii) {
                const char *g = dark(code, i, x) ? "##" : "  ";
                memcpy(o, g, 2);
                o += 2;
                continue;
            }
            bool top = dark(code, 2 * i, x), bottom = dark(code, 2 * i + 1, x);
            const char *g = top && bottom ? "█" : top ? "▀" : bottom ? "▄" : " ";
            size_t n = strlen(g);
            memcpy(o, g, n);
            o += n;
        }
        *o = '\0';
    }
    *out = q;
    q = (struct qr_text){0};
    rc = SPELL_OK;
out:
    QRcode_free(code);
    qr_text_free(&q);
    return rc;
}
