/*
 * Time and billing periods.
 *
 * Inside the system a point in time is an int64_t count of milliseconds
 * since the Unix epoch, UTC ("Unix ms").  On the wire it is an RFC 3339 UTC
 * string (DESIGN.md §2: "Times are RFC 3339 UTC strings"), written by
 * spell_time_format() and read back by spell_time_parse(), which also takes
 * the offsets other producers may send and converts them to UTC.
 *
 * Budgets and usage are kept per UTC calendar month, the billing period,
 * written "YYYY-MM".  spell_time_period() names the period a time falls in,
 * spell_period_parse() checks a period string from outside, and
 * spell_period_bounds() gives the half-open range [start, end) of Unix ms
 * that the period covers, which is what store queries filter on.
 * Usage is broken down by UTC day, written "YYYY-MM-DD".
 *
 * The range is deliberate: times from 1970-01-01T00:00:00.000Z up to
 * 9999-12-31T23:59:59.999Z.  Anything before the epoch or past year 9999
 * is refused with SPELL_EINVAL rather than wrapped or clamped, so no
 * negative millisecond count ever reaches a store or a ledger.  Leap
 * seconds (":60") are refused as well: Unix time has no slot for them.
 *
 * All functions are pure computations on their arguments (no gmtime, no
 * locale, no time zone database), so they are safe from any thread.
 */
#ifndef SPELL_CLOCK_H
#define SPELL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Buffer sizes, NUL included: "2026-11-22T08:48:29.123Z" is 24 bytes. */
#define SPELL_TIME_RFC3339_SIZE 25
#define SPELL_PERIOD_SIZE 8         /* "2026-11" */
#define SPELL_DATE_SIZE 11          /* "2026-11-22" */

/* The last millisecond that can be represented: 9999-12-31T23:59:59.999Z. */
#define SPELL_TIME_MAX_MS INT64_C(253402300799999)

/* The longest RFC 3339 text spell_time_parse() reads, in bytes; longer
 * input (however many fraction digits) is refused. */
#define SPELL_TIME_PARSE_MAX 64

/* The current time (CLOCK_REALTIME) in Unix ms; 0 if the clock fails. */
int64_t spell_time_now_ms(void);

/* Writes `ms` as "YYYY-MM-DDThh:mm:ss.mmmZ" into buf.  SPELL_EINVAL for a
 * time outside the range above, SPELL_ETOOBIG when size is smaller than
 * SPELL_TIME_RFC3339_SIZE. */
int spell_time_format(int64_t ms, char *buf, size_t size);

/* Parses an RFC 3339 date-time ("2026-11-22T08:48:29.123Z",
 * "2026-11-22T17:48:29+09:00", "2026-11-22t08:48:29.5z") into Unix ms.
 * Fractional seconds may have any number of digits; they are truncated to
 * milliseconds.  Everything else must be exact: two-digit fields, a real
 * calendar date (no Feb 30, Feb 29 only in leap years), hours 00..23,
 * minutes and seconds 00..59, offsets "Z" or +hh:mm / -hh:mm within 23:59.
 * SPELL_EINVAL for anything malformed or out of range; *out is written only
 * on success. */
int spell_time_parse(const char *s, int64_t *out);

/* Writes the UTC billing period of `ms`, "YYYY-MM", into buf
 * (size >= SPELL_PERIOD_SIZE, else SPELL_ETOOBIG). */
int spell_time_period(int64_t ms, char *buf, size_t size);

/* Writes the UTC date of `ms`, "YYYY-MM-DD", into buf
 * (size >= SPELL_DATE_SIZE, else SPELL_ETOOBIG). */
int spell_time_date(int64_t ms, char *buf, size_t size);

/* Parses a period "YYYY-MM" (exactly seven bytes, year 1970..9999, month
 * 01..12).  SPELL_EINVAL otherwise.  year and month may be NULL. */
int spell_period_parse(const char *s, int *year, int *month);

/* The bounds of a period: *start is its first millisecond, *end the first
 * millisecond of the next period (2026-12 ends at 2027-01-01T00:00:00Z).
 * SPELL_EINVAL for a malformed period. */
int spell_period_bounds(const char *period, int64_t *start, int64_t *end);

/* Parses a date "YYYY-MM-DD" (a real calendar day, 1970..9999) and gives
 * its first millisecond in *start (may be NULL).  SPELL_EINVAL otherwise. */
int spell_date_parse(const char *s, int64_t *start);

#endif
