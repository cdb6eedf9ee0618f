/*
 * mpn_time: RFC 3339 parsing and formatting, calendar years, day counts.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "mpn_time.h"


static int64_t
parse(const char *s)
{
    int64_t  t;

    t = 0x5a5a5a5a;

    if (mpn_time_parse(s, strlen(s), &t) != 0) {
        return INT64_MIN;
    }

    return t;
}


static void
parse_accepts_utc_and_known_values(void **state)
{
    (void) state;

    assert_int_equal(parse("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse("2026-01-15T00:00:00Z"), 1768435200);
    assert_int_equal(parse("2027-01-15T00:00:00Z"), 1799971200);
    assert_int_equal(parse("2024-02-29T12:34:56Z"), 1709210096);
    assert_int_equal(parse("2000-03-01T00:00:00Z"), 951868800);
    assert_int_equal(parse("1900-03-01T00:00:00Z"), -2203891200LL);
    assert_int_equal(parse("1969-12-31T23:59:59Z"), -1);
}


static void
parse_accepts_lowercase_t_and_z(void **state)
{
    (void) state;

    assert_int_equal(parse("2026-01-15t00:00:00z"), 1768435200);
    assert_int_equal(parse("2026-01-15T00:00:00z"), 1768435200);
}


static void
parse_applies_numeric_offsets(void **state)
{
    (void) state;

    assert_int_equal(parse("2026-01-15T05:30:00+05:30"), 1768435200);
    assert_int_equal(parse("2026-01-14T16:00:00-08:00"), 1768435200);
    assert_int_equal(parse("2026-01-15T00:00:00+00:00"), 1768435200);
    assert_int_equal(parse("2026-01-15T00:00:00-00:00"), 1768435200);
    assert_int_equal(parse("2026-01-15T23:59:00+23:59"), 1768435200);
}


static void
parse_drops_fractional_seconds(void **state)
{
    (void) state;

    assert_int_equal(parse("2026-01-15T00:00:00.999999999Z"), 1768435200);
    assert_int_equal(parse("2026-01-15T00:00:00.5Z"), 1768435200);
    assert_int_equal(parse("2026-01-15T01:00:00.123+01:00"), 1768435200);
}


static void
parse_validates_calendar_ranges(void **state)
{
    (void) state;

    assert_int_equal(parse("2024-02-29T00:00:00Z"), 1709164800);
    assert_int_equal(parse("2000-02-29T00:00:00Z"), 951782400);
    assert_int_equal(parse("2023-02-29T00:00:00Z"), INT64_MIN);
    assert_int_equal(parse("1900-02-29T00:00:00Z"), INT64_MIN);
    assert_int_equal(parse("2026-04-31T00:00:00Z"), INT64_MIN);
    assert_int_equal(parse("2026-04-30T00:00:00Z"), 1777507200);
    assert_int_equal(parse("2026-01-32T00:00:00Z"), INT64_MIN);
    assert_int_equal(parse("2026-01-00T00:00:00Z"), INT64_MIN);
    assert_int_equal(parse("2026-00-10T00:00:00Z"), INT64_MIN);
    assert_int_equal(parse("2026-13-10T00:00:00Z"), INT64_MIN);
    assert_int_equal(parse("2026-01-15T24:00:00Z"), INT64_MIN);
    assert_int_equal(parse("2026-01-15T23:60:00Z"), INT64_MIN);
    assert_int_equal(parse("2026-01-15T23:59:61Z"), INT64_MIN);
    assert_int_equal(parse("2026-01-15T00:00:00+24:00"), INT64_MIN);
    assert_int_equal(parse("2026-01-15T00:00:00+01:60"), INT64_MIN);
}


static void
parse_counts_leap_second_as_next_minute(void **state)
{
    (void) state;

    assert_int_equal(parse("2016-12-31T23:59:60Z"),
                     parse("2017-01-01T00:00:00Z"));
}


static void
parse_rejects_malformed_text(void **state)
{
    static const char  *bad[] = {
        "",
        "2026-01-15",
        "2026-01-15T00:00:00",
        "2026-01-15 00:00:00Z",
        "2026-01-15T00:00Z",
        "2026/01/15T00:00:00Z",
        "26-01-15T00:00:00Z",
        "+2026-01-15T00:00:00Z",
        "2026-1-15T00:00:00Z",
        "2026-01-15T00:00:00.Z",
        "2026-01-15T00:00:00.",
        "2026-01-15T00:00:00ZZ",
        "2026-01-15T00:00:00Z ",
        " 2026-01-15T00:00:00Z",
        "2026-01-15T00:00:00+0100",
        "2026-01-15T00:00:00+01",
        "2026-01-15T00:00:00+01:00:00",
        "2026-01-15T00:00:00UTC",
        "2026-01-15T0a:00:00Z",
        "2026-01-15T00:00:00-1:00",
        NULL
    };

    int  i;

    (void) state;

    for (i = 0; bad[i] != NULL; i++) {
        if (parse(bad[i]) != INT64_MIN) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}


static void
parse_honours_len_not_nul(void **state)
{
    int64_t      t;
    const char  *s = "2026-01-15T00:00:00Zjunk";

    (void) state;

    assert_int_equal(mpn_time_parse(s, 20, &t), 0);
    assert_int_equal(t, 1768435200);
    assert_int_equal(mpn_time_parse(s, 19, &t), -1);
    assert_int_equal(mpn_time_parse(s, 21, &t), -1);
    assert_int_equal(mpn_time_parse(NULL, 0, &t), -1);
}


static void
parse_keeps_years_0000_to_9999(void **state)
{
    (void) state;

    assert_int_equal(parse("0000-01-01T00:00:00Z"), MPN_TIME_MIN);
    assert_int_equal(parse("9999-12-31T23:59:59Z"), MPN_TIME_MAX);
    assert_int_equal(parse("0000-01-01T00:00:00+00:01"), INT64_MIN);
    assert_int_equal(parse("9999-12-31T23:59:59-00:01"), INT64_MIN);
    assert_int_equal(parse("9999-12-31T23:59:60Z"), INT64_MIN);
}


static void
format_writes_utc_with_z(void **state)
{
    char  buf[MPN_TIME_LEN + 1];

    (void) state;

    assert_int_equal(mpn_time_format(0, buf), MPN_TIME_LEN);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");

    mpn_time_format(-1, buf);
    assert_string_equal(buf, "1969-12-31T23:59:59Z");

    mpn_time_format(1709210096, buf);
    assert_string_equal(buf, "2024-02-29T12:34:56Z");

    mpn_time_format(MPN_TIME_MIN, buf);
    assert_string_equal(buf, "0000-01-01T00:00:00Z");

    mpn_time_format(MPN_TIME_MAX, buf);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
}


static void
format_clamps_out_of_range_times(void **state)
{
    char  buf[MPN_TIME_LEN + 1];

    (void) state;

    mpn_time_format(INT64_MAX, buf);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");

    mpn_time_format(INT64_MIN, buf);
    assert_string_equal(buf, "0000-01-01T00:00:00Z");
}


static void
format_and_parse_round_trip_over_the_whole_range(void **state)
{
    char     buf[MPN_TIME_LEN + 1];
    int64_t  t, back;

    (void) state;

    for (t = MPN_TIME_MIN; t <= MPN_TIME_MAX; t += 7777777) {
        mpn_time_format(t, buf);
        assert_int_equal(mpn_time_parse(buf, MPN_TIME_LEN, &back), 0);
        assert_int_equal(back, t);
    }
}


static void
add_years_keeps_date_and_time_of_day(void **state)
{
    (void) state;

    assert_int_equal(mpn_time_add_years(parse("2026-01-15T00:00:00Z"), 1),
                     parse("2027-01-15T00:00:00Z"));
    assert_int_equal(mpn_time_add_years(parse("2026-07-01T13:14:15Z"), 1),
                     parse("2027-07-01T13:14:15Z"));
    assert_int_equal(mpn_time_add_years(parse("2026-07-01T13:14:15Z"), -3),
                     parse("2023-07-01T13:14:15Z"));
    assert_int_equal(mpn_time_add_years(parse("1969-12-31T23:59:59Z"), 1),
                     parse("1970-12-31T23:59:59Z"));
    assert_int_equal(mpn_time_add_years(0, 0), 0);
}


static void
add_years_turns_feb_29_into_feb_28(void **state)
{
    (void) state;

    assert_int_equal(mpn_time_add_years(parse("2024-02-29T10:00:00Z"), 1),
                     parse("2025-02-28T10:00:00Z"));
    assert_int_equal(mpn_time_add_years(parse("2024-02-29T10:00:00Z"), 4),
                     parse("2028-02-29T10:00:00Z"));
    assert_int_equal(mpn_time_add_years(parse("2096-02-29T10:00:00Z"), 4),
                     parse("2100-02-28T10:00:00Z"));
    assert_int_equal(mpn_time_add_years(parse("2023-02-28T10:00:00Z"), 1),
                     parse("2024-02-28T10:00:00Z"));
}


static void
add_years_clamps_to_the_supported_range(void **state)
{
    (void) state;

    assert_int_equal(mpn_time_add_years(MPN_TIME_MAX, 1), MPN_TIME_MAX);
    assert_int_equal(mpn_time_add_years(MPN_TIME_MIN, -1), MPN_TIME_MIN);
    assert_int_equal(mpn_time_add_years(INT64_MAX, 2147483647),
                     MPN_TIME_MAX);
    assert_int_equal(mpn_time_add_years(INT64_MIN, -2147483647 - 1),
                     MPN_TIME_MIN);
}


static void
days_floor_rounds_toward_minus_infinity(void **state)
{
    (void) state;

    assert_int_equal(mpn_days_floor(0), 0);
    assert_int_equal(mpn_days_floor(1), 0);
    assert_int_equal(mpn_days_floor(MPN_DAY - 1), 0);
    assert_int_equal(mpn_days_floor(MPN_DAY), 1);
    assert_int_equal(mpn_days_floor(30 * MPN_DAY + 5), 30);
    assert_int_equal(mpn_days_floor(-1), -1);
    assert_int_equal(mpn_days_floor(-MPN_DAY), -1);
    assert_int_equal(mpn_days_floor(-MPN_DAY - 1), -2);
    assert_true(mpn_days_floor(INT64_MIN) < 0);
    assert_true(mpn_days_floor(INT64_MAX) > 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(parse_accepts_utc_and_known_values),
        cmocka_unit_test(parse_accepts_lowercase_t_and_z),
        cmocka_unit_test(parse_applies_numeric_offsets),
        cmocka_unit_test(parse_drops_fractional_seconds),
        cmocka_unit_test(parse_validates_calendar_ranges),
        cmocka_unit_test(parse_counts_leap_second_as_next_minute),
        cmocka_unit_test(parse_rejects_malformed_text),
        cmocka_unit_test(parse_honours_len_not_nul),
        cmocka_unit_test(parse_keeps_years_0000_to_9999),
        cmocka_unit_test(format_writes_utc_with_z),
        cmocka_unit_test(format_clamps_out_of_range_times),
        cmocka_unit_test(format_and_parse_round_trip_over_the_whole_range),
        cmocka_unit_test(add_years_keeps_date_and_time_of_day),
        cmocka_unit_test(add_years_turns_feb_29_into_feb_28),
        cmocka_unit_test(add_years_clamps_to_the_supported_range),
        cmocka_unit_test(days_floor_rounds_toward_minus_infinity),
    };

    return cmocka_run_group_tests_name("mpn_time", tests, NULL, NULL);
}
