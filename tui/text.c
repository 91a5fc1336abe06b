/*
 * Text on the screen.  Everything that reaches the terminal passes
 * through draw_text(), which cleans it first: text from the server or the
 * agent (logins, key names, spell names, messages) may hold control
 * characters or escape sequences, and none of them may reach the
 * terminal.  Widths are counted in display columns, so wide characters
 * are clipped whole.
 */
#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "spell/money.h"
#include "spell/utf8.h"

#include "portal.h"

/* The length of the UTF-8 sequence starting with byte c, or 0. */
static size_t seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

static unsigned long decode(const unsigned char *s, size_t n)
{
    if (n == 1)
        return s[0];
    unsigned long cp = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (s[i] & 0x3f);
    return cp;
}

static bool drawable(unsigned long cp)
{
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
        return false;
    /* Bidirectional overrides and isolates reorder what follows. */
    if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
        cp == 0x200e || cp == 0x200f || cp == 0x061c)
        return false;
    if (cp == 0xfeff)
        return false;
    return wcwidth((wchar_t)cp) >= 0;
}

void text_clean(const char *in, char *out, size_t outlen, bool ascii)
{
    if (!outlen)
        return;
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)(in ? in : "");
    while (*s) {
        size_t n = seq_len(*s);
        bool ok = n > 0;
        for (size_t i = 1; ok && i < n; i++)
            ok = s[i] != 0;
        if (ok)
            ok = spell_utf8_valid((const char *)s, n);
        if (ok && ascii && n > 1)
            ok = false;
        if (ok && !drawable(decode(s, n)))
            ok = false;
        if (!ok) {
            if (o + 1 >= outlen)
                break;
            out[o++] = '?';
            s += n ? n : 1;
            /* Skip the rest of an ill-formed sequence byte by byte. */
            continue;
        }
        if (o + n >= outlen)
            break;
        memcpy(out + o, s, n);
        o += n;
        s += n;
    }
    out[o] = '\0';
}

/* Columns of clean text, and the byte length that fits in maxw columns. */
static int measure(const char *s, int maxw, size_t *fit)
{
    int w = 0;
    size_t i = 0;
    while (s[i]) {
        size_t n = seq_len((unsigned char)s[i]);
        if (!n)
            n = 1;
        int cw = n == 1 ? 1 : wcwidth((wchar_t)decode((const unsigned char *)s + i, n));
        if (cw < 0)
            cw = 1;
        if (maxw >= 0 && w + cw > maxw)
            break;
        w += cw;
        i += n;
    }
    if (fit)
        *fit = i;
    return w;
}

int text_width(const char *s)
{
    return measure(s, -1, NULL);
}

int draw_text(struct portal *p, int y, int x, int maxw, enum role r, const char *s)
{
    char clean[2048];
    if (maxw <= 0 || y < 0 || y >= p->rows || x >= p->cols)
        return 0;
    if (x + maxw > p->cols)
        maxw = p->cols - x;
    text_clean(s, clean, sizeof clean, p->ascii);
    size_t fit;
    int w = measure(clean, maxw, &fit);
    attrset(theme_attr(&p->theme, r));
    mvaddnstr(y, x, clean, (int)fit);
    attrset(A_NORMAL);
    return w;
}

int draw_textf(struct portal *p, int y, int x, int maxw, enum role r, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return draw_text(p, y, x, maxw, r, buf);
}

void draw_fill(struct portal *p, int y, int x, int w, enum role r)
{
    if (y < 0 || y >= p->rows)
        return;
    if (x + w > p->cols)
        w = p->cols - x;
    if (w <= 0)
        return;
    attrset(theme_attr(&p->theme, r));
    mvhline(y, x, ' ', w);
    attrset(A_NORMAL);
}

void draw_box(struct portal *p, const struct rect *rc, enum role r, const char *title)
{
    const char *h = p->ascii ? "-" : "─", *v = p->ascii ? "|" : "│";
    const char *tl = p->ascii ? "+" : "┌", *tr = p->ascii ? "+" : "┐";
    const char *bl = p->ascii ? "+" : "└", *br = p->ascii ? "+" : "┘";
    int attr = theme_attr(&p->theme, r);
    attrset(attr);
    for (int y = rc->y; y < rc->y + rc->h; y++) {
        if (y < 0 || y >= p->rows)
            continue;
        bool top = y == rc->y, bottom = y == rc->y + rc->h - 1;
        for (int x = rc->x; x < rc->x + rc->w && x < p->cols; x++) {
            bool left = x == rc->x, right = x == rc->x + rc->w - 1;
            const char *c = " ";
            if (top)
                c = left ? tl : right ? tr : h;
            else if (bottom)
                c = left ? bl : right ? br : h;
            else if (left || right)
                c = v;
            mvaddstr(y, x, c);
        }
    }
    attrset(A_NORMAL);
    if (title && *title)
        draw_textf(p, rc->y, rc->x + 2, rc->w - 4, ROLE_MODAL_TITLE, " %s ", title);
}

void fmt_money(int64_t cents, char *out, size_t outlen)
{
    char buf[SPELL_MONEY_FORMAT_MAX];
    if (spell_money_format(cents, buf, sizeof buf) != 0)
        snprintf(buf, sizeof buf, "?");
    snprintf(out, outlen, "%s", buf);
}

void fmt_time(int64_t ms, char *out, size_t outlen)
{
    if (ms <= 0) {
        snprintf(out, outlen, "never");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, outlen, "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(out, outlen, "?");
}

void fmt_duration(int64_t ms, char *out, size_t outlen)
{
    if (ms < 0)
        ms = 0;
    if (ms < 60000)
        snprintf(out, outlen, "%lld.%llds", (long long)(ms / 1000), (long long)(ms % 1000 / 100));
    else if (ms < 3600000)
        snprintf(out, outlen, "%lldm%02llds", (long long)(ms / 60000),
                 (long long)(ms % 60000 / 1000));
    else
        snprintf(out, outlen, "%lldh%02lldm", (long long)(ms / 3600000),
                 (long long)(ms % 3600000 / 60000));
}
