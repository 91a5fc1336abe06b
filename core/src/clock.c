/*
 * Time and billing periods (clock.h).
 *
 * Calendar arithmetic is done here, on integers, with the proleptic
 * Gregorian day count of Howard Hinnant's "chrono-Compatible Low-Level Date
 * Algorithms" (days_from_civil / civil_from_days).  Nothing here reads the
 * time zone database, the locale or any libc static buffer, so every
 * function may run on any thread at once.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "spell/clock.h"
#include "spell/errors.h"

#define MS_PER_DAY INT64_C(86400000)
#define YEAR_MIN 1970
#define YEAR_MAX 9999

/* Days since 1970-01-01 of a proleptic Gregorian date; y may be 0..9999. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Reads exactly n ASCII digits at s; -1 if any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t spell_time_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Splits a time in range into calendar fields. */
static int split(int64_t ms, int *y, int *mo, int *d, int64_t *ms_of_day)
{
    if (ms < 0 || ms > SPELL_TIME_MAX_MS)
        return SPELL_EINVAL;
    civil_from_days(ms / MS_PER_DAY, y, mo, d);
    if (ms_of_day)
        *ms_of_day = ms % MS_PER_DAY;
    return SPELL_OK;
}

int spell_time_format(int64_t ms, char *buf, size_t size)
{
    int y, mo, d;
    int64_t t;
    if (!buf)
        return SPELL_EINVAL;
    if (size < SPELL_TIME_RFC3339_SIZE)
        return SPELL_ETOOBIG;
    if (split(ms, &y, &mo, &d, &t) != SPELL_OK)
        return SPELL_EINVAL;
    int hh = (int)(t / 3600000), mm = (int)(t / 60000 % 60);
    int ss = (int)(t / 1000 % 60), frac = (int)(t % 1000);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d, hh, mm, ss, frac);
    return SPELL_OK;
}

int spell_time_period(int64_t ms, char *buf, size_t size)
{
    int y, mo, d;
    if (!buf)
        return SPELL_EINVAL;
    if (size < SPELL_PERIOD_SIZE)
        return SPELL_ETOOBIG;
    if (split(ms, &y, &mo, &d, NULL) != SPELL_OK)
        return SPELL_EINVAL;
    snprintf(buf, size, "%04d-%02d", y, mo);
    return SPELL_OK;
}

int spell_time_date(int64_t ms, char *buf, size_t size)
{
    int y, mo, d;
    if (!buf)
        return SPELL_EINVAL;
    if (size < SPELL_DATE_SIZE)
        return SPELL_ETOOBIG;
    if (split(ms, &y, &mo, &d, NULL) != SPELL_OK)
        return SPELL_EINVAL;
    snprintf(buf, size, "%04d-%02d-%02d", y, mo, d);
    return SPELL_OK;
}

/* "YYYY-MM-DD" at s (exactly ten bytes read, no terminator checked). */
static int parse_date10(const char *s, int *y, int *mo, int *d)
{
    *y = digits(s, 4);
    *mo = s[4] == '-' ? digits(s + 5, 2) : -1;
    *d = s[7] == '-' ? digits(s + 8, 2) : -1;
    if (*y < 0 || *mo < 1 || *mo > 12 || *d < 1 || *d > days_in_month(*y, *mo))
        return SPELL_EINVAL;
    return SPELL_OK;
}

int spell_time_parse(const char *s, int64_t *out)
{
    int y, mo, d;
    if (!s || !out)
        return SPELL_EINVAL;
    size_t n = strnlen(s, SPELL_TIME_PARSE_MAX + 1);
    /* The shortest form is "YYYY-MM-DDThh:mm:ssZ", twenty bytes. */
    if (n < 20 || n > SPELL_TIME_PARSE_MAX)
        return SPELL_EINVAL;
    if (parse_date10(s, &y, &mo, &d) != SPELL_OK)
        return SPELL_EINVAL;
    if (s[10] != 'T' && s[10] != 't')
        return SPELL_EINVAL;
    int hh = digits(s + 11, 2);
    int mi = s[13] == ':' ? digits(s + 14, 2) : -1;
    int ss = s[16] == ':' ? digits(s + 17, 2) : -1;
    if (hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59)
        return SPELL_EINVAL;

    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        int nd = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, nd++)
            if (nd < 3)
                frac = frac * 10 + (*p - '0');
        if (nd == 0)
            return SPELL_EINVAL;
        for (; nd < 3; nd++)
            frac *= 10;
    }

    int64_t offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh = digits(p + 1, 2);
        int om = oh >= 0 && p[3] == ':' ? digits(p + 4, 2) : -1;
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return SPELL_EINVAL;
        offset_min = (int64_t)oh * 60 + om;
        if (*p == '-')
            offset_min = -offset_min;
        p += 6;
    } else {
        return SPELL_EINVAL;
    }
    if (*p != '\0')
        return SPELL_EINVAL;

    /* Local time minus its offset is UTC.  Year 0..9999 keeps every term
     * far inside int64_t. */
    int64_t ms = days_from_civil(y, mo, d) * MS_PER_DAY
        + ((int64_t)hh * 3600 + mi * 60 + ss) * 1000 + frac
        - offset_min * 60000;
    if (ms < 0 || ms > SPELL_TIME_MAX_MS)
        return SPELL_EINVAL;
    *out = ms;
    return SPELL_OK;
}

int spell_period_parse(const char *s, int *year, int *month)
{
    if (!s || strnlen(s, SPELL_PERIOD_SIZE) != SPELL_PERIOD_SIZE - 1)
        return SPELL_EINVAL;
    int y = digits(s, 4);
    int m = s[4] == '-' ? digits(s + 5, 2) : -1;
    if (y < YEAR_MIN || y > YEAR_MAX || m < 1 || m > 12)
        return SPELL_EINVAL;
    if (year)
        *year = y;
    if (month)
        *month = m;
    return SPELL_OK;
}

int spell_period_bounds(const char *period, int64_t *start, int64_t *end)
{
    int y, m;
    if (spell_period_parse(period, &y, &m) != SPELL_OK)
        return SPELL_EINVAL;
    int ny = m == 12 ? y + 1 : y;
    int nm = m == 12 ? 1 : m + 1;
    if (start)
        *start = days_from_civil(y, m, 1) * MS_PER_DAY;
    if (end)
        *end = days_from_civil(ny, nm, 1) * MS_PER_DAY;
    return SPELL_OK;
}

int spell_date_parse(const char *s, int64_t *start)
{
    int y, mo, d;
    if (!s || strnlen(s, SPELL_DATE_SIZE) != SPELL_DATE_SIZE - 1)
        return SPELL_EINVAL;
    if (parse_date10(s, &y, &mo, &d) != SPELL_OK || y < YEAR_MIN)
        return SPELL_EINVAL;
    if (start)
        *start = days_from_civil(y, mo, d) * MS_PER_DAY;
    return SPELL_OK;
}
