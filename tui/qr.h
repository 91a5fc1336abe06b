/*
 * QR codes drawn as text, so that a phone can open an address shown in
 * the terminal.
 *
 * qr_render() encodes the text with libqrencode (byte mode, error
 * correction level L, the smallest version that holds it) and lays the
 * modules out as lines of text with a quiet zone of QR_QUIET modules on
 * every side:
 *
 *   UTF-8    two rows of modules per line, one column per module, with
 *            the half blocks: top dark "▀", bottom dark "▄", both "█",
 *            neither " ".
 *   ASCII    one row of modules per line, "##" for a dark module and two
 *            blanks for a light one (square enough in most fonts).
 *
 * A glyph stands for a dark module, so the lines read right drawn dark on
 * light (the portal's QR role).  The result owns its lines; the caller
 * draws them and frees them with qr_text_free().  No curses here, and no
 * shared state: safe from any thread.
 */
#ifndef PORTAL_QR_H
#define PORTAL_QR_H

#include <stdbool.h>
#include <stddef.h>

/* Longest text encoded, in bytes (version 40-L holds 2953). */
#define QR_TEXT_MAX 2048
/* Light modules around the code, as ISO/IEC 18004 asks. */
#define QR_QUIET 4

struct qr_text {
    char **lines;   /* n_lines NUL-terminated lines */
    int n_lines;
    int cols;       /* display columns of every line */
    int modules;    /* modules on a side, quiet zone not counted */
};

/* SPELL_OK; SPELL_EINVAL for NULL or empty text; SPELL_ETOOBIG past
 * QR_TEXT_MAX bytes or past what a QR code holds; SPELL_ENOMEM. */
int qr_render(const char *text, bool ascii, struct qr_text *out);
void qr_text_free(struct qr_text *q);

#endif
