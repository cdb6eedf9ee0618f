/*
 * mpn_quota: a metered benefit's allowance and period (spec section 12),
 * the amount a request takes, a QUOTA refusal's usage.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mpn_quota.h"
#include "mpn_time.h"
#include "unit_records.h"


#define WE    "windows_enterprise"
#define WE_LEN  (sizeof(WE) - 1)


static int64_t
t(const char *s)
{
    int64_t  v;

    if (mpn_time_parse(s, strlen(s), &v) != 0) {
        fail_msg("bad test time %s", s);
    }

    return v;
}


/* an active Action Pack from start to end listing windows_enterprise: q */

static const mpn_record_t *
action_pack(const char *start, const char *end, int q)
{
    return record(NET "\"subscriptions\":{\"action_pack\":{"
                  "\"status\":\"active\",\"start\":\"%s\",\"end\":\"%s\","
                  "\"auto_renew\":true,\"benefits\":{\"" WE "\":%d}}}",
                  start, end, q);
}


static mpn_quota_t
period(const mpn_record_t *rec, unsigned per, int64_t now, int64_t grace,
    int expect)
{
    mpn_quota_t  q;

    memset(&q, 0x5a, sizeof(mpn_quota_t));
    assert_int_equal(mpn_quota_period(rec, WE, WE_LEN, per, now, grace, &q),
                     expect);

    return q;
}


static void
term_is_the_year_ending_at_the_subscription_end(void **state)
{
    mpn_quota_t          q;
    const mpn_record_t  *rec;

    (void) state;

    rec = action_pack("2026-01-15T00:00:00Z", "2027-01-15T00:00:00Z", 10);
    q = period(rec, MPN_PER_TERM, t("2026-06-01T12:00:00Z"), 0, 0);

    assert_int_equal(q.allowance, 10);
    assert_int_equal(q.start, t("2026-01-15T00:00:00Z"));
    assert_int_equal(q.reset, t("2027-01-15T00:00:00Z"));
    assert_int_equal(q.period_end, t("2027-01-15T00:00:00Z"));
    assert_int_equal(q.grant, 0);
}


static void
term_boundaries_first_and_last_second(void **state)
{
    mpn_quota_t          q;
    const mpn_record_t  *rec;

    (void) state;

    rec = action_pack("2026-01-15T00:00:00Z", "2027-01-15T00:00:00Z", 10);

    /* the first second of the term and the last one: the same period */

    q = period(rec, MPN_PER_TERM, t("2026-01-15T00:00:00Z"), 0, 0);
    assert_int_equal(q.start, t("2026-01-15T00:00:00Z"));

    q = period(rec, MPN_PER_TERM, t("2027-01-14T23:59:59Z"), 0, 0);
    assert_int_equal(q.start, t("2026-01-15T00:00:00Z"));

    /* at the end, without grace, the grant has lapsed: nothing held */

    (void) period(rec, MPN_PER_TERM, t("2027-01-15T00:00:00Z"), 0, -1);
}


static void
renewal_starts_a_new_allowance(void **state)
{
    mpn_quota_t          before, after;
    const mpn_record_t  *old, *renewed;
    int64_t              now;

    (void) state;

    /* mid-term, mpn_renew moves end a year on: a new term (a new key)
     * starts at once, from the old end */

    now = t("2026-06-01T12:00:00Z");
    old = action_pack("2026-01-15T00:00:00Z", "2027-01-15T00:00:00Z", 10);
    renewed = action_pack("2026-01-15T00:00:00Z", "2028-01-15T00:00:00Z", 10);

    before = period(old, MPN_PER_TERM, now, 0, 0);
    after = period(renewed, MPN_PER_TERM, now, 0, 0);

    assert_int_not_equal(before.start, after.start);
    assert_int_equal(after.start, t("2027-01-15T00:00:00Z"));
    assert_int_equal(after.reset, t("2028-01-15T00:00:00Z"));
    assert_int_equal(after.allowance, 10);

    /* a renewal in grace (end = now + 1 year) starts one at now */

    now = t("2027-01-20T08:00:00Z");
    renewed = action_pack("2026-01-15T00:00:00Z", "2028-01-20T08:00:00Z", 10);
    after = period(renewed, MPN_PER_TERM, now, 0, 0);
    assert_int_equal(after.start, now);

    /* the same record under per=month: renewal changes nothing */

    now = t("2026-06-01T12:00:00Z");
    before = period(old, MPN_PER_MONTH, now, 0, 0);
    after = period(renewed, MPN_PER_MONTH, now, 0, 0);
    assert_int_equal(before.start, after.start);
}


static void
grace_extends_the_period_given_to_redis(void **state)
{
    mpn_quota_t          q;
    const mpn_record_t  *rec;

    (void) state;

    rec = action_pack("2026-01-15T00:00:00Z", "2027-01-15T00:00:00Z", 10);

    /* in grace the old term goes on: same key, the reset already past */

    q = period(rec, MPN_PER_TERM, t("2027-01-20T00:00:00Z"), 30 * DAY, 0);
    assert_int_equal(q.start, t("2026-01-15T00:00:00Z"));
    assert_int_equal(q.reset, t("2027-01-15T00:00:00Z"));
    assert_int_equal(q.period_end, t("2027-02-14T00:00:00Z"));

    /* grace is in period_end for a month too, never in reset */

    q = period(rec, MPN_PER_MONTH, t("2026-03-10T00:00:00Z"), DAY, 0);
    assert_int_equal(q.reset, t("2026-04-01T00:00:00Z"));
    assert_int_equal(q.period_end, t("2026-04-02T00:00:00Z"));
}


static void
month_is_the_calendar_month_utc(void **state)
{
    mpn_quota_t          q;
    const mpn_record_t  *rec;

    (void) state;

    rec = action_pack("2026-01-15T00:00:00Z", "2027-01-15T00:00:00Z", 100);

    q = period(rec, MPN_PER_MONTH, t("2026-03-31T23:59:59Z"), 0, 0);
    assert_int_equal(q.start, t("2026-03-01T00:00:00Z"));
    assert_int_equal(q.reset, t("2026-04-01T00:00:00Z"));
    assert_int_equal(q.grant, -1);
    assert_int_equal(q.allowance, 100);

    /* the first second of April is a new period */

    q = period(rec, MPN_PER_MONTH, t("2026-04-01T00:00:00Z"), 0, 0);
    assert_int_equal(q.start, t("2026-04-01T00:00:00Z"));
    assert_int_equal(q.reset, t("2026-05-01T00:00:00Z"));

    /* December rolls into the next year; February of a leap year */

    q = period(rec, MPN_PER_MONTH, t("2026-12-31T23:59:59Z"), 0, 0);
    assert_int_equal(q.start, t("2026-12-01T00:00:00Z"));
    assert_int_equal(q.reset, t("2027-01-01T00:00:00Z"));

    rec = action_pack("2028-01-15T00:00:00Z", "2029-01-15T00:00:00Z", 100);
    q = period(rec, MPN_PER_MONTH, t("2028-02-29T12:00:00Z"), 0, 0);
    assert_int_equal(q.start, t("2028-02-01T00:00:00Z"));
    assert_int_equal(q.reset, t("2028-03-01T00:00:00Z"));
}


static void
competency_without_end_counts_per_calendar_year(void **state)
{
    mpn_quota_t          q;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"competencies\":{"
                 "\"cloud_platform\":{\"level\":\"gold\","
                 "\"benefits\":{\"" WE "\":20}}}");

    q = period(rec, MPN_PER_TERM, t("2026-12-31T23:59:59Z"), 0, 0);
    assert_int_equal(q.allowance, 20);
    assert_int_equal(q.start, t("2026-01-01T00:00:00Z"));
    assert_int_equal(q.reset, t("2027-01-01T00:00:00Z"));
    assert_int_equal(q.grant, -1);

    q = period(rec, MPN_PER_TERM, t("2027-01-01T00:00:00Z"), 0, 0);
    assert_int_equal(q.start, t("2027-01-01T00:00:00Z"));

    /* a competency with an end: the year ending there */

    rec = record(NET "\"competencies\":{"
                 "\"cloud_platform\":{\"level\":\"gold\","
                 "\"end\":\"2027-06-30T00:00:00Z\","
                 "\"benefits\":{\"" WE "\":20}}}");

    q = period(rec, MPN_PER_TERM, t("2026-12-31T00:00:00Z"), 0, 0);
    assert_int_equal(q.start, t("2026-06-30T00:00:00Z"));
    assert_int_equal(q.reset, t("2027-06-30T00:00:00Z"));
    assert_int_equal(q.grant, 1 - 1);
}


static void
several_grants_add_up_and_the_last_ending_sets_the_term(void **state)
{
    mpn_quota_t          q;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 "\"action_pack\":{\"status\":\"active\","
                 "\"end\":\"2027-01-15T00:00:00Z\",\"auto_renew\":true,"
                 "\"benefits\":{\"" WE "\":10}},"
                 "\"extra\":{\"status\":\"active\","
                 "\"end\":\"2027-03-01T00:00:00Z\",\"auto_renew\":true,"
                 "\"benefits\":{\"" WE "\":5}},"
                 "\"old\":{\"status\":\"expired\","
                 "\"end\":\"2028-01-01T00:00:00Z\",\"auto_renew\":false,"
                 "\"benefits\":{\"" WE "\":7}},"
                 "\"zero\":{\"status\":\"active\","
                 "\"end\":\"2029-01-01T00:00:00Z\",\"auto_renew\":true,"
                 "\"benefits\":{\"" WE "\":0}}}");

    /* the expired grant adds nothing; the one listing 0 holds nothing */

    q = period(rec, MPN_PER_TERM, t("2026-06-01T00:00:00Z"), 0, 0);
    assert_int_equal(q.allowance, 15);
    assert_int_equal(q.grant, 1);
    assert_int_equal(q.start, t("2026-03-01T00:00:00Z"));
    assert_int_equal(q.reset, t("2027-03-01T00:00:00Z"));

    /* once the first has lapsed, only the second counts */

    q = period(rec, MPN_PER_TERM, t("2027-02-01T00:00:00Z"), 0, 0);
    assert_int_equal(q.allowance, 5);

    /* a competency with no end outlasts any end: the calendar year */

    rec = record(NET "\"subscriptions\":{"
                 "\"action_pack\":{\"status\":\"active\","
                 "\"end\":\"2027-01-15T00:00:00Z\",\"auto_renew\":true,"
                 "\"benefits\":{\"" WE "\":10}}},"
                 "\"competencies\":{\"cloud_platform\":{\"level\":\"gold\","
                 "\"benefits\":{\"" WE "\":20}}}");

    q = period(rec, MPN_PER_TERM, t("2026-06-01T00:00:00Z"), 0, 0);
    assert_int_equal(q.allowance, 30);
    assert_int_equal(q.start, t("2026-01-01T00:00:00Z"));
    assert_int_equal(q.grant, -1);
}


static void
benefit_not_held_has_no_period(void **state)
{
    const mpn_record_t  *rec;

    (void) state;

    rec = action_pack("2026-01-15T00:00:00Z", "2027-01-15T00:00:00Z", 0);
    (void) period(rec, MPN_PER_TERM, t("2026-06-01T00:00:00Z"), 0, -1);

    rec = record(NET "\"subscriptions\":{\"action_pack\":{\"status\":"
                 "\"cancelled\",\"end\":\"2027-01-15T00:00:00Z\","
                 "\"auto_renew\":false,\"benefits\":{\"" WE "\":10}}}");
    (void) period(rec, MPN_PER_MONTH, t("2026-06-01T00:00:00Z"), 0, -1);

    rec = record(NET "\"subscriptions\":{}");
    (void) period(rec, MPN_PER_TERM, t("2026-06-01T00:00:00Z"), 0, -1);
}


static void
huge_quantities_and_times_saturate(void **state)
{
    mpn_quota_t          q;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 "\"a\":{\"status\":\"active\","
                 "\"end\":\"9999-12-31T23:59:59Z\",\"auto_renew\":true,"
                 "\"benefits\":{\"" WE "\":9007199254740991}},"
                 "\"b\":{\"status\":\"active\","
                 "\"end\":\"9999-12-31T23:59:59Z\",\"auto_renew\":true,"
                 "\"benefits\":{\"" WE "\":9007199254740991}}}");

    q = period(rec, MPN_PER_TERM, t("2026-06-01T00:00:00Z"), INT64_MAX, 0);
    assert_int_equal(q.allowance, MPN_ALLOWANCE_MAX);
    assert_int_equal(q.period_end, MPN_TIME_MAX);
}


static void
amount_is_a_whole_number_from_1_to_a_million(void **state)
{
    (void) state;

    assert_int_equal(mpn_quota_amount("1", 1), 1);
    assert_int_equal(mpn_quota_amount("1000000", 7), 1000000);
    assert_int_equal(mpn_quota_amount("007", 3), 7);
    assert_int_equal(mpn_quota_amount("0", 1), -1);
    assert_int_equal(mpn_quota_amount("1000001", 7), -1);
    assert_int_equal(mpn_quota_amount("", 0), -1);
    assert_int_equal(mpn_quota_amount("-1", 2), -1);
    assert_int_equal(mpn_quota_amount("+1", 2), -1);
    assert_int_equal(mpn_quota_amount("1.5", 3), -1);
    assert_int_equal(mpn_quota_amount("2 ", 2), -1);
    assert_int_equal(mpn_quota_amount(" 2", 2), -1);
    assert_int_equal(mpn_quota_amount("1e3", 3), -1);
    assert_int_equal(mpn_quota_amount("0x10", 4), -1);
    assert_int_equal(mpn_quota_amount("99999999999999999999999", 23), -1);
    assert_int_equal(mpn_quota_amount("12\0", 3), -1);
}


static void
quota_refusal_tells_the_usage(void **state)
{
    const char  *s;

    (void) state;

    s = "QUOTA used 10 of 10, 1 more asked for";
    assert_int_equal(mpn_quota_refusal_used(s, strlen(s)), 10);

    s = "QUOTA used 0 of 0, 5 more asked for";
    assert_int_equal(mpn_quota_refusal_used(s, strlen(s)), 0);

    s = "QUOTA used 10";
    assert_int_equal(mpn_quota_refusal_used(s, strlen(s)), -1);

    s = "QUOTA used x of 10";
    assert_int_equal(mpn_quota_refusal_used(s, strlen(s)), -1);

    s = "BAD_ARGUMENT amount";
    assert_int_equal(mpn_quota_refusal_used(s, strlen(s)), -1);

    assert_int_equal(mpn_quota_refusal_used("QUOTA", 5), -1);
}


static void
idem_token_is_the_value_or_its_hash(void **state)
{
    long         n;
    char         buf[MPN_IDEM_HASHED], buf2[MPN_IDEM_HASHED];
    char         big[MPN_IDEM_MAX + 1];
    const char  *tok, *tok2;

    (void) state;

    assert_int_equal(mpn_quota_idem("", 0, buf, &tok), 0);

    n = mpn_quota_idem("retry-7", 7, buf, &tok);
    assert_int_equal(n, 7);
    assert_memory_equal(tok, "retry-7", 7);

    memset(big, 'k', sizeof(big));

    n = mpn_quota_idem(big, MPN_IDEM_MAX, buf, &tok);
    assert_int_equal(n, MPN_IDEM_MAX);
    assert_ptr_equal(tok, big);

    /* one byte more: its SHA-256 (as sha256sum prints it) */

    n = mpn_quota_idem(big, MPN_IDEM_MAX + 1, buf, &tok);
    assert_int_equal(n, MPN_IDEM_HASHED);
    assert_ptr_equal(tok, buf);
    assert_memory_equal(tok, "sha256:a5de0e3c93b4322bf1d2e6cc13119219"
                        "d665142374de7f2b06bae237759c73e2", MPN_IDEM_HASHED);

    big[0] = 'j';
    assert_int_equal(mpn_quota_idem(big, MPN_IDEM_MAX + 1, buf2, &tok2),
                     MPN_IDEM_HASHED);
    assert_memory_not_equal(tok, tok2, MPN_IDEM_HASHED);
}


static void
month_and_year_of_times_before_1970(void **state)
{
    int64_t  start, next;

    (void) state;

    mpn_time_month(t("1969-12-31T23:59:59Z"), &start, &next);
    assert_int_equal(start, t("1969-12-01T00:00:00Z"));
    assert_int_equal(next, 0);

    mpn_time_year(t("1969-06-01T00:00:00Z"), &start, &next);
    assert_int_equal(start, t("1969-01-01T00:00:00Z"));
    assert_int_equal(next, 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        T(term_is_the_year_ending_at_the_subscription_end),
        T(term_boundaries_first_and_last_second),
        T(renewal_starts_a_new_allowance),
        T(grace_extends_the_period_given_to_redis),
        T(month_is_the_calendar_month_utc),
        T(competency_without_end_counts_per_calendar_year),
        T(several_grants_add_up_and_the_last_ending_sets_the_term),
        T(benefit_not_held_has_no_period),
        T(huge_quantities_and_times_saturate),
        T(amount_is_a_whole_number_from_1_to_a_million),
        T(quota_refusal_tells_the_usage),
        T(idem_token_is_the_value_or_its_hash),
        T(month_and_year_of_times_before_1970),
    };

    return cmocka_run_group_tests_name("mpn_quota", tests, NULL, NULL);
}
