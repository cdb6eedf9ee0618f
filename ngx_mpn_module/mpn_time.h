/*
 * RFC 3339 times and calendar years, with no nginx dependency.
 */

#ifndef MPN_TIME_H
#define MPN_TIME_H

#include <stddef.h>
#include <stdint.h>

#define MPN_TIME_LEN  20            /* "2026-01-15T00:00:00Z" */
#define MPN_DAY       86400

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: parsed times lie within,
 * and format and add_years clamp to, this range */
#define MPN_TIME_MIN  (-62167219200LL)
#define MPN_TIME_MAX  253402300799LL


/* RFC 3339 date-time to Unix seconds; fractions are dropped and a numeric
 * offset is applied.  Returns 0, or -1 when the text is not RFC 3339. */
int mpn_time_parse(const char *s, size_t len, int64_t *out);

/* Unix seconds to "YYYY-MM-DDTHH:MM:SSZ"; buf holds MPN_TIME_LEN + 1 bytes.
 * Returns MPN_TIME_LEN. */
size_t mpn_time_format(int64_t t, char *buf);

/* The same calendar date and time of day `years` later; 29 Feb becomes
 * 28 Feb in a year without it. */
int64_t mpn_time_add_years(int64_t t, int years);

/* The calendar month (UTC) holding t: its first second in *start, the
 * first second of the next month in *next. */
void mpn_time_month(int64_t t, int64_t *start, int64_t *next);

/* The calendar year (UTC) holding t, likewise. */
void mpn_time_year(int64_t t, int64_t *start, int64_t *next);

/* Whole days in `seconds`, rounded toward minus infinity, so a moment after
 * an end is a negative count. */
int64_t mpn_days_floor(int64_t seconds);

#endif /* MPN_TIME_H */
