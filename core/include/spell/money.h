/*
 * Money as people read and type it.  The platform counts money in integer
 * cents (int64_t) everywhere; this module is the only place where cents
 * become text and text becomes cents, and it never uses floating point:
 *
 *   int64_t cents --spell_money_format--> "$1,234.56" (CLI, portal, mail)
 *   "$1,234.56", "50", "50.5" --spell_money_parse--> int64_t cents
 *                                  (budget fields, --budget-cap flags)
 *
 * Both are pure functions of their arguments and safe from any thread.
 */
#ifndef SPELL_MONEY_H
#define SPELL_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* Room for any int64 amount and its NUL.  The longest is INT64_MIN:
 * "-$92,233,720,368,547,758.08", 27 characters. */
#define SPELL_MONEY_FORMAT_MAX 28

/* The longest text spell_money_parse() reads, surrounding blanks
 * included; the longest valid amount, "$92,233,720,368,547,758.07", is 26
 * characters. */
#define SPELL_MONEY_PARSE_MAX 64

/*
 * Writes cents as dollars: "$12.34", "$0.05", "$0.00", "-$1.50",
 * "$1,234.56".  SPELL_ETOOBIG when out (outlen bytes, NUL included) is too
 * small, and then out is "" if outlen > 0; SPELL_EINVAL when out is NULL.
 * SPELL_MONEY_FORMAT_MAX bytes are always enough.
 */
int spell_money_format(int64_t cents, char *out, size_t outlen);

/*
 * Reads an amount a caster typed, strictly:
 *
 *   [blanks] ["$"] dollars ["." 1 or 2 digits] [blanks]
 *
 * dollars is "0", or digits without a leading zero, either all together
 * ("1234") or grouped by commas in every thousands position ("1,234",
 * "12,345,678"); blanks are ASCII spaces, tabs, CR and LF.  "50" is 5000,
 * "50.5" is 5050, "$1,234.56" is 123456.
 *
 * Refused with SPELL_EINVAL: the empty string, any sign (budgets and caps
 * are never negative, so "-5" is a mistake, not a refund; "+5" too), a
 * point without digits on either side ("12." and ".5": write "0.5"), more
 * than two decimals, exponents ("1e3"), hex ("0x10"), letters, misplaced
 * commas ("1,23", "1234,567", ",123"), blanks inside the amount.
 * SPELL_ETOOBIG for an amount past INT64_MAX cents and for text longer
 * than SPELL_MONEY_PARSE_MAX bytes (read no further than that).
 * *out_cents is set only on success.
 */
int spell_money_parse(const char *s, int64_t *out_cents);

#endif
