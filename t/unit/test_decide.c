/*
 * mpn_decide: the decision table of spec section 6 and the facts behind
 * the $mpn_* variables of section 7.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mpn_decide.h"
#include "mpn_time.h"
#include "unit_records.h"


#define NOW   ((int64_t) 1780272000)       /* 2026-06-01T00:00:00Z */


/* an RFC 3339 time `s` seconds from NOW; a few stay valid at once */

static const char *
at(int64_t s)
{
    static char  buf[16][MPN_TIME_LEN + 1];
    static int   n;

    n = (n + 1) % 16;
    mpn_time_format(NOW + s, buf[n]);

    return buf[n];
}


static mpn_require_t
require(unsigned tier)
{
    mpn_require_t  req;

    memset(&req, 0, sizeof(mpn_require_t));
    req.tier = tier;
    req.competency_level = MPN_TIER_SILVER;
    req.grace = 0;
    req.remind = 30 * DAY;

    return req;
}


static mpn_decision_t
decide(const mpn_record_t *rec, const mpn_require_t *req, int64_t now)
{
    mpn_decision_t  d;

    memset(&d, 0x5a, sizeof(mpn_decision_t));
    mpn_decide(rec, req, now, &d);

    return d;
}


static void
expect(const mpn_decision_t *d, unsigned decision, unsigned reason)
{
    if (d->decision != decision || d->reason != reason) {
        fail_msg("got %s/%s, want %s/%s",
                 d->decision < MPN_NDECISIONS
                     ? mpn_decision_names[d->decision] : "?",
                 d->reason < MPN_NREASONS ? mpn_reason_names[d->reason] : "?",
                 mpn_decision_names[decision], mpn_reason_names[reason]);
    }
}


static void
expect_grant(const mpn_record_t *rec, const mpn_decision_t *d,
    const char *name)
{
    const mpn_grant_t  *g;

    if (name == NULL) {
        assert_int_equal(d->grant, -1);
        return;
    }

    assert_true(d->grant >= 0 && d->grant < (int) rec->ngrants);
    g = &mpn_record_grants(rec)[d->grant];
    assert_string_equal(mpn_record_str(rec, g->name), name);
}


static const mpn_str_t *
names(const char *a, const char *b)
{
    static mpn_str_t  s[2];

    s[0].data = a;
    s[0].len = strlen(a);
    s[1].data = b;
    s[1].len = b != NULL ? strlen(b) : 0;

    return s;
}


#define AP(status, end, renew, benefits)                                      \
    "\"action_pack\":{\"status\":\"" status "\",\"end\":\"%s\","             \
    "\"auto_renew\":" renew ",\"benefits\":{" benefits "}}"


/* 6.2 */

static void
no_record_is_upgrade_not_member(void **state)
{
    mpn_require_t   req;
    mpn_decision_t  d;

    (void) state;

    req = require(MPN_TIER_NETWORK);
    d = decide(NULL, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_NOT_MEMBER);
    assert_int_equal(d.tier, MPN_TIER_NONE);
    assert_int_equal(d.grant, -1);
    assert_int_equal(d.has_end, 0);
    assert_int_equal(d.auto_renew, -1);
    assert_int_equal(d.remind, 0);
}


/* 6.3 */

static void
suspended_account_is_deny_suspended(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"status\":\"suspended\",\"subscriptions\":{"
                 AP("active", , "true", "\"vsts\":1") "}", at(DAY));
    req = require(MPN_TIER_NETWORK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_DENY, MPN_R_SUSPENDED);
    assert_int_equal(d.grant, -1);
    assert_int_equal(d.tier, MPN_TIER_ACTION_PACK);
}


static void
suspended_wins_over_missing_network(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record("\"status\":\"suspended\"");
    req = require(MPN_TIER_NETWORK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_DENY, MPN_R_SUSPENDED);
}


static void
network_false_or_absent_is_upgrade_not_member(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    req = require(MPN_TIER_NETWORK);

    rec = record("\"network\":false,\"subscriptions\":{"
                 AP("active", , "true", "\"vsts\":1") "}", at(DAY));
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_NOT_MEMBER);
    assert_int_equal(d.tier, MPN_TIER_NONE);
    assert_int_equal(d.grant, -1);

    rec = record("\"status\":\"active\"");
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_NOT_MEMBER);
}


/* 6.5 / 6.6 with only membership required */

static void
network_member_is_allowed_for_network_tier(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"rev\":3");
    req = require(MPN_TIER_NETWORK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    assert_int_equal(d.tier, MPN_TIER_NETWORK);
    assert_int_equal(d.grant, -1);
    assert_int_equal(d.has_end, 0);
    assert_int_equal(d.auto_renew, -1);
    assert_int_equal(d.remind, 0);

    /* MPN_TIER_NONE as a requirement means membership too */

    req = require(MPN_TIER_NONE);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
}


/* tier */

static void
current_action_pack_meets_action_pack_tier(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{\"other\":{\"status\":\"active\","
                 "\"end\":\"%s\"}," AP("active", , "true", "\"vsts\":1") "}",
                 at(DAY), at(100 * DAY));
    req = require(MPN_TIER_ACTION_PACK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "action_pack");
    assert_int_equal(d.tier, MPN_TIER_ACTION_PACK);
    assert_int_equal(d.has_end, 1);
    assert_int_equal(d.end, NOW + 100 * DAY);
    assert_int_equal(d.days_left, 100);
    assert_int_equal(d.auto_renew, 1);
    assert_int_equal(d.remind, 0);
}


static void
missing_tier_is_upgrade_tier(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{\"other\":{\"status\":\"active\","
                 "\"end\":\"%s\"}}", at(DAY));
    req = require(MPN_TIER_ACTION_PACK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_TIER);
    assert_int_equal(d.grant, -1);
    assert_int_equal(d.tier, MPN_TIER_NETWORK);
    assert_int_equal(d.auto_renew, -1);
}


static void
competency_levels_rank_above_action_pack(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"competencies\":{\"cloud\":{\"level\":\"silver\"}}");

    req = require(MPN_TIER_ACTION_PACK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "cloud");
    assert_int_equal(d.tier, MPN_TIER_SILVER);

    req = require(MPN_TIER_SILVER);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);

    req = require(MPN_TIER_GOLD);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_TIER);
    assert_int_equal(d.tier, MPN_TIER_SILVER);

    rec = record(NET "\"competencies\":{\"a\":{\"level\":\"silver\"},"
                 "\"b\":{\"level\":\"gold\"}}");
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "b");
    assert_int_equal(d.tier, MPN_TIER_GOLD);
}


static void
expired_action_pack_is_renew_lapsed(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    /* status "expired" lapses even before its end */

    rec = record(NET "\"subscriptions\":{"
                 AP("expired", , "false", "\"vsts\":1") "}", at(10 * DAY));
    req = require(MPN_TIER_ACTION_PACK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    expect_grant(rec, &d, "action_pack");
    assert_int_equal(d.tier, MPN_TIER_NETWORK);
    assert_int_equal(d.days_left, 10);
    assert_int_equal(d.auto_renew, 0);
    assert_int_equal(d.remind, 0);
}


static void
active_action_pack_past_end_is_renew_lapsed(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "") "}", at(-3 * DAY));
    req = require(MPN_TIER_ACTION_PACK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    expect_grant(rec, &d, "action_pack");
    assert_int_equal(d.has_end, 1);
    assert_int_equal(d.days_left, -3);
    assert_int_equal(d.auto_renew, 1);
    assert_int_equal(d.remind, 0);
}


static void
cancelled_action_pack_is_upgrade_cancelled(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("cancelled", , "false", "\"vsts\":1") "}", at(10 * DAY));
    req = require(MPN_TIER_ACTION_PACK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_CANCELLED);
    expect_grant(rec, &d, "action_pack");
    assert_int_equal(d.days_left, 10);

    /* a cancelled subscription is not reminded of, even inside the window */
    assert_int_equal(d.remind, 0);
}


static void
lapsed_gold_competency_is_renew_lapsed_for_gold_tier(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"competencies\":{\"s\":{\"level\":\"silver\"},"
                 "\"g\":{\"level\":\"gold\",\"end\":\"%s\"}}", at(-DAY));
    req = require(MPN_TIER_GOLD);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    expect_grant(rec, &d, "g");
    assert_int_equal(d.tier, MPN_TIER_SILVER);
    assert_int_equal(d.auto_renew, -1);
    assert_int_equal(d.days_left, -1);
}


static void
lapsed_is_preferred_over_cancelled(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("cancelled", , "false", "\"x\":1") "},"
                 "\"competencies\":{\"c\":{\"level\":\"silver\","
                 "\"end\":\"%s\",\"benefits\":{\"x\":1}}}",
                 at(DAY), at(-DAY));

    req = require(MPN_TIER_ACTION_PACK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    expect_grant(rec, &d, "c");

    req = require(MPN_TIER_NETWORK);
    req.benefits = names("x", NULL);
    req.nbenefits = 1;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    expect_grant(rec, &d, "c");
}


static void
latest_ended_lapsed_grant_is_offered_for_renewal(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 "\"old\":{\"status\":\"expired\",\"end\":\"%s\","
                 "\"benefits\":{\"x\":1}},"
                 "\"new\":{\"status\":\"expired\",\"end\":\"%s\","
                 "\"benefits\":{\"x\":1}},"
                 "\"older\":{\"status\":\"expired\",\"end\":\"%s\","
                 "\"benefits\":{\"x\":1}}}",
                 at(-90 * DAY), at(-DAY), at(-400 * DAY));
    req = require(MPN_TIER_NETWORK);
    req.benefits = names("x", NULL);
    req.nbenefits = 1;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    expect_grant(rec, &d, "new");
}


/* benefits */

static void
benefit_held_by_current_grant_is_allowed(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "false", "\"vsts\":1,\"ems\":5") "}",
                 at(200 * DAY));
    req = require(MPN_TIER_NETWORK);
    req.benefits = names("ems", "vsts");
    req.nbenefits = 2;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "action_pack");
    assert_int_equal(d.auto_renew, 0);
    assert_int_equal(d.days_left, 200);
}


static void
benefit_with_zero_quantity_is_not_held(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "\"vsts\":0") "}", at(DAY));
    req = require(MPN_TIER_NETWORK);
    req.benefits = names("vsts", NULL);
    req.nbenefits = 1;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_BENEFIT);
    assert_int_equal(d.grant, -1);
    assert_int_equal(d.tier, MPN_TIER_ACTION_PACK);
}


static void
missing_benefit_is_upgrade_benefit(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "\"vsts\":1") "}", at(DAY));
    req = require(MPN_TIER_ACTION_PACK);
    req.benefits = names("vst", NULL);
    req.nbenefits = 1;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_BENEFIT);
    assert_int_equal(d.grant, -1);
}


static void
benefit_only_in_lapsed_grant_is_renew_lapsed(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("expired", , "true", "\"azure_credits\":100") "},"
                 "\"competencies\":{\"c\":{\"level\":\"gold\"}}",
                 at(-DAY));
    req = require(MPN_TIER_GOLD);
    req.benefits = names("azure_credits", NULL);
    req.nbenefits = 1;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    expect_grant(rec, &d, "action_pack");
    assert_int_equal(d.tier, MPN_TIER_GOLD);
}


static void
benefit_only_in_cancelled_subscription_is_upgrade_cancelled(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{\"addon\":{\"status\":\"cancelled\","
                 "\"end\":\"%s\",\"benefits\":{\"ems\":5}}}", at(DAY));
    req = require(MPN_TIER_NETWORK);
    req.benefits = names("ems", NULL);
    req.nbenefits = 1;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_CANCELLED);
    expect_grant(rec, &d, "addon");
}


/* competency */

static void
gold_competency_meets_silver_requirement(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"competencies\":{\"cloud_platform\":{\"level\":"
                 "\"gold\",\"end\":\"%s\"}}", at(5 * DAY));
    req = require(MPN_TIER_NETWORK);
    req.competency.data = "cloud_platform";
    req.competency.len = 14;
    req.competency_level = MPN_TIER_SILVER;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "cloud_platform");
    assert_int_equal(d.days_left, 5);
    assert_int_equal(d.auto_renew, -1);
    assert_int_equal(d.remind, 0);
    assert_int_equal(d.tier, MPN_TIER_GOLD);
}


static void
silver_competency_is_upgrade_competency_for_gold(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"competencies\":{\"cloud_platform\":{\"level\":"
                 "\"silver\"},\"data\":{\"level\":\"gold\"}}");
    req = require(MPN_TIER_NETWORK);
    req.competency.data = "cloud_platform";
    req.competency.len = 14;
    req.competency_level = MPN_TIER_GOLD;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_COMPETENCY);
    assert_int_equal(d.grant, -1);
    assert_int_equal(d.tier, MPN_TIER_GOLD);
}


static void
missing_competency_is_upgrade_competency(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"competencies\":{\"cloud\":{\"level\":\"gold\"}}");
    req = require(MPN_TIER_NETWORK);
    req.competency.data = "cloud_platform";
    req.competency.len = 14;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_COMPETENCY);

    /* a subscription of the same name is not a competency */

    rec = record(NET "\"subscriptions\":{\"cloud_platform\":{\"status\":"
                 "\"active\",\"end\":\"%s\"}}", at(DAY));
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_COMPETENCY);
}


static void
lapsed_competency_is_renew_lapsed(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"competencies\":{\"cloud_platform\":{\"level\":"
                 "\"gold\",\"end\":\"%s\"}}", at(-10 * DAY));
    req = require(MPN_TIER_NETWORK);
    req.competency.data = "cloud_platform";
    req.competency.len = 14;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    expect_grant(rec, &d, "cloud_platform");
    assert_int_equal(d.days_left, -10);
    assert_int_equal(d.tier, MPN_TIER_NETWORK);
}


static void
competency_without_end_never_lapses(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"competencies\":{\"cloud_platform\":{\"level\":"
                 "\"gold\"}}");
    req = require(MPN_TIER_GOLD);
    req.competency.data = "cloud_platform";
    req.competency.len = 14;
    req.competency_level = MPN_TIER_GOLD;

    d = decide(rec, &req, MPN_TIME_MAX);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "cloud_platform");
    assert_int_equal(d.has_end, 0);
    assert_int_equal(d.days_left, 0);
    assert_int_equal(d.remind, 0);
    assert_int_equal(d.auto_renew, -1);

    d = decide(rec, &req, INT64_MAX);
    expect(&d, MPN_ALLOW, MPN_R_OK);
}


/* order: tier, then benefits in order, then competency */

static void
tier_is_checked_before_benefits_and_competency(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{\"x\":{\"status\":\"expired\","
                 "\"end\":\"%s\",\"benefits\":{\"b\":1}}}", at(-DAY));
    req = require(MPN_TIER_GOLD);
    req.benefits = names("b", NULL);
    req.nbenefits = 1;
    req.competency.data = "c";
    req.competency.len = 1;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_TIER);
}


static void
benefits_are_checked_in_order_before_competency(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{\"x\":{\"status\":\"expired\","
                 "\"end\":\"%s\",\"benefits\":{\"lapsed\":1}},"
                 "\"y\":{\"status\":\"active\",\"end\":\"%s\","
                 "\"benefits\":{\"held\":1}}}", at(-DAY), at(DAY));
    req = require(MPN_TIER_NETWORK);
    req.competency.data = "c";
    req.competency.len = 1;
    req.nbenefits = 2;

    req.benefits = names("absent", "lapsed");
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_BENEFIT);
    assert_int_equal(d.unmet, MPN_R_BENEFIT);
    assert_int_equal(d.unmet_benefit, 0);

    req.benefits = names("lapsed", "absent");
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    expect_grant(rec, &d, "x");
    assert_int_equal(d.unmet, MPN_R_BENEFIT);
    assert_int_equal(d.unmet_benefit, 0);

    req.benefits = names("held", "lapsed");
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    assert_int_equal(d.unmet, MPN_R_BENEFIT);
    assert_int_equal(d.unmet_benefit, 1);

    req.benefits = names("held", "held");
    d = decide(rec, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_COMPETENCY);
    assert_int_equal(d.unmet, MPN_R_COMPETENCY);
}


/* the log names what was missing: the requirement behind a refusal */

static void
unmet_requirement_is_named_only_when_one_refused(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{" AP("expired", , "true", "\"vsts\":1")
                 "}", at(-DAY));

    req = require(MPN_TIER_ACTION_PACK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    assert_int_equal(d.unmet, MPN_R_TIER);

    req = require(MPN_TIER_NETWORK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    assert_int_equal(d.unmet, MPN_R_OK);

    d = decide(NULL, &req, NOW);
    expect(&d, MPN_UPGRADE, MPN_R_NOT_MEMBER);
    assert_int_equal(d.unmet, MPN_R_OK);
}


/* grace boundaries */

static void
grace_zero_lapses_exactly_at_end(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "") "}", at(0));
    req = require(MPN_TIER_ACTION_PACK);

    d = decide(rec, &req, NOW - 1);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    assert_int_equal(d.days_left, 0);

    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    assert_int_equal(d.days_left, 0);
    assert_int_equal(d.remind, 0);
}


static void
grace_starts_exactly_at_end_and_ends_at_end_plus_grace(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "\"vsts\":1") "}", at(0));
    req = require(MPN_TIER_ACTION_PACK);
    req.grace = 7 * DAY;

    d = decide(rec, &req, NOW - 1);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    assert_int_equal(d.remind, 0);             /* auto-renew is on */

    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_GRACE);
    expect_grant(rec, &d, "action_pack");
    assert_int_equal(d.days_left, 0);
    assert_int_equal(d.remind, 1);
    assert_int_equal(d.tier, MPN_TIER_ACTION_PACK);

    d = decide(rec, &req, NOW + 7 * DAY - 1);
    expect(&d, MPN_ALLOW, MPN_R_GRACE);
    assert_int_equal(d.days_left, -7);
    assert_int_equal(d.remind, 1);

    d = decide(rec, &req, NOW + 7 * DAY);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    assert_int_equal(d.days_left, -7);
    assert_int_equal(d.remind, 0);
    assert_int_equal(d.tier, MPN_TIER_NETWORK);
}


static void
competency_in_grace_is_allow_grace(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"competencies\":{\"c\":{\"level\":\"gold\","
                 "\"end\":\"%s\"}}", at(0));
    req = require(MPN_TIER_GOLD);
    req.grace = DAY;

    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_GRACE);
    expect_grant(rec, &d, "c");
    assert_int_equal(d.remind, 1);
    assert_int_equal(d.auto_renew, -1);
    assert_int_equal(d.tier, MPN_TIER_GOLD);

    d = decide(rec, &req, NOW + DAY);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
}


static void
grant_out_of_grace_is_preferred_over_one_in_grace(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "\"x\":1") "},"
                 "\"competencies\":{\"c\":{\"level\":\"silver\","
                 "\"end\":\"%s\",\"benefits\":{\"x\":2}}}",
                 at(-DAY), at(DAY));
    req = require(MPN_TIER_ACTION_PACK);
    req.grace = 30 * DAY;
    req.benefits = names("x", NULL);
    req.nbenefits = 1;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "c");
}


static void
relied_on_grant_in_grace_is_shown(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    /* the tier is met out of grace, the benefit only by a grant in grace */

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "") ","
                 "\"addon\":{\"status\":\"active\",\"end\":\"%s\","
                 "\"auto_renew\":false,\"benefits\":{\"ems\":5}}}",
                 at(300 * DAY), at(-2 * DAY));
    req = require(MPN_TIER_ACTION_PACK);
    req.grace = 3 * DAY;
    req.benefits = names("ems", NULL);
    req.nbenefits = 1;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_GRACE);
    expect_grant(rec, &d, "addon");
    assert_int_equal(d.days_left, -2);
    assert_int_equal(d.auto_renew, 0);
    assert_int_equal(d.remind, 1);
}


/* which grant $mpn_offer shows on allow */

static void
allow_shows_tier_grant_then_first_benefit_then_competency(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "\"a\":1") ","
                 "\"other\":{\"status\":\"active\",\"end\":\"%s\","
                 "\"benefits\":{\"b\":1}}},"
                 "\"competencies\":{\"c\":{\"level\":\"silver\"}}",
                 at(10 * DAY), at(20 * DAY));
    req = require(MPN_TIER_ACTION_PACK);
    req.benefits = names("b", "a");
    req.nbenefits = 2;
    req.competency.data = "c";
    req.competency.len = 1;

    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "action_pack");
    assert_int_equal(d.tier, MPN_TIER_SILVER);

    req.tier = MPN_TIER_NETWORK;
    d = decide(rec, &req, NOW);
    expect_grant(rec, &d, "other");
    assert_int_equal(d.days_left, 20);

    req.nbenefits = 0;
    d = decide(rec, &req, NOW);
    expect_grant(rec, &d, "c");
    assert_int_equal(d.has_end, 0);
}


static void
allow_without_relied_grant_falls_back_to_action_pack(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{\"first\":{\"status\":\"active\","
                 "\"end\":\"%s\"}," AP("expired", , "false", "") "}",
                 at(DAY), at(-DAY));
    req = require(MPN_TIER_NETWORK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "action_pack");
    assert_int_equal(d.days_left, -1);
    assert_int_equal(d.auto_renew, 0);
}


static void
allow_without_action_pack_falls_back_to_first_subscription(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{\"first\":{\"status\":\"active\","
                 "\"end\":\"%s\",\"auto_renew\":false},"
                 "\"second\":{\"status\":\"active\",\"end\":\"%s\"}},"
                 "\"competencies\":{\"c\":{\"level\":\"gold\"}}",
                 at(3 * DAY), at(DAY));
    req = require(MPN_TIER_NETWORK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "first");
    assert_int_equal(d.days_left, 3);
    assert_int_equal(d.remind, 1);

    /* competencies are never the fallback */

    rec = record(NET "\"competencies\":{\"c\":{\"level\":\"gold\"}}");
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    assert_int_equal(d.grant, -1);
}


static void
fallback_grant_in_grace_reminds_but_stays_ok(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "") "}", at(-DAY));
    req = require(MPN_TIER_NETWORK);
    req.grace = 2 * DAY;
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    expect_grant(rec, &d, "action_pack");
    assert_int_equal(d.remind, 1);
}


/* $mpn_days_left and $mpn_remind */

static void
days_left_is_floor_of_remaining_days(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "") "}", at(0));
    req = require(MPN_TIER_NETWORK);
    req.grace = 100 * DAY;

    d = decide(rec, &req, NOW - 1);
    assert_int_equal(d.days_left, 0);
    d = decide(rec, &req, NOW - DAY);
    assert_int_equal(d.days_left, 1);
    d = decide(rec, &req, NOW - DAY - 1);
    assert_int_equal(d.days_left, 1);
    d = decide(rec, &req, NOW - 2 * DAY + 1);
    assert_int_equal(d.days_left, 1);
    d = decide(rec, &req, NOW);
    assert_int_equal(d.days_left, 0);
    d = decide(rec, &req, NOW + 1);
    assert_int_equal(d.days_left, -1);
    d = decide(rec, &req, NOW + DAY);
    assert_int_equal(d.days_left, -1);
    d = decide(rec, &req, NOW + DAY + 1);
    assert_int_equal(d.days_left, -2);
    assert_int_equal(d.end, NOW);
    assert_int_equal(d.has_end, 1);
}


static void
remind_window_edges_with_auto_renew_off(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "false", "") "}", at(0));
    req = require(MPN_TIER_ACTION_PACK);
    req.remind = 30 * DAY;

    d = decide(rec, &req, NOW - 30 * DAY - 1);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    assert_int_equal(d.remind, 0);

    d = decide(rec, &req, NOW - 30 * DAY);
    assert_int_equal(d.remind, 1);

    d = decide(rec, &req, NOW - 1);
    assert_int_equal(d.remind, 1);

    /* at the end with no grace it has lapsed: renew, not remind */

    d = decide(rec, &req, NOW);
    expect(&d, MPN_RENEW, MPN_R_LAPSED);
    assert_int_equal(d.remind, 0);

    req.remind = 0;
    d = decide(rec, &req, NOW - 1);
    assert_int_equal(d.remind, 0);
}


static void
no_remind_when_auto_renew_is_on(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "") "}", at(DAY));
    req = require(MPN_TIER_ACTION_PACK);
    d = decide(rec, &req, NOW);
    expect(&d, MPN_ALLOW, MPN_R_OK);
    assert_int_equal(d.auto_renew, 1);
    assert_int_equal(d.remind, 0);
}


/* effective tier */

static void
effective_tier_counts_grants_in_grace_but_not_lapsed(void **state)
{
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "") "},"
                 "\"competencies\":{\"g\":{\"level\":\"gold\","
                 "\"end\":\"%s\"}}", at(DAY), at(-DAY));
    req = require(MPN_TIER_NETWORK);

    d = decide(rec, &req, NOW);
    assert_int_equal(d.tier, MPN_TIER_ACTION_PACK);

    req.grace = 2 * DAY;
    d = decide(rec, &req, NOW);
    assert_int_equal(d.tier, MPN_TIER_GOLD);

    /* only a subscription named action_pack confers the tier */

    rec = record(NET "\"subscriptions\":{\"action_pack2\":{\"status\":"
                 "\"active\",\"end\":\"%s\"}}", at(DAY));
    d = decide(rec, &req, NOW);
    assert_int_equal(d.tier, MPN_TIER_NETWORK);
}


/* robustness */

static void
extreme_times_and_settings_do_not_overflow(void **state)
{
    int                  i;
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_record_t  *rec;
    static const int64_t nows[] = {
        INT64_MIN, INT64_MIN + 1, -1, 0, NOW, INT64_MAX - 1, INT64_MAX
    };

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "false", "\"x\":9223372036854775807") ","
                 "\"b\":{\"status\":\"active\",\"end\":\"%s\","
                 "\"benefits\":{\"x\":9223372036854775807}}},"
                 "\"competencies\":{\"c\":{\"level\":\"gold\","
                 "\"end\":\"9999-12-31T23:59:59Z\"}}",
                 "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z");

    for (i = 0; i < (int) (sizeof(nows) / sizeof(nows[0])); i++) {
        req = require(MPN_TIER_GOLD);
        req.grace = INT64_MAX;
        req.remind = INT64_MAX;
        req.benefits = names("x", NULL);
        req.nbenefits = 1;
        d = decide(rec, &req, nows[i]);
        assert_true(d.decision < MPN_NDECISIONS);

        req.grace = -5;
        req.remind = INT64_MIN;
        d = decide(rec, &req, nows[i]);
        assert_true(d.decision < MPN_NDECISIONS);

        assert_true(mpn_benefit_quantity(rec, "x", 1, nows[i], INT64_MAX)
                    >= -1);
    }

    assert_int_equal(mpn_benefit_quantity(rec, "x", 1, NOW, INT64_MAX),
                     INT64_MAX);
}


/* the other entry points */

static void
decision_set_fills_a_decision_without_record(void **state)
{
    mpn_decision_t  d;

    (void) state;

    memset(&d, 0x5a, sizeof(mpn_decision_t));
    mpn_decision_set(&d, MPN_SIGNIN, MPN_R_BAD_TOKEN);
    expect(&d, MPN_SIGNIN, MPN_R_BAD_TOKEN);
    assert_int_equal(d.tier, MPN_TIER_NONE);
    assert_int_equal(d.grant, -1);
    assert_int_equal(d.has_end, 0);
    assert_int_equal(d.end, 0);
    assert_int_equal(d.days_left, 0);
    assert_int_equal(d.auto_renew, -1);
    assert_int_equal(d.remind, 0);

    mpn_decision_set(&d, MPN_ALLOW, MPN_R_FAIL_OPEN);
    expect(&d, MPN_ALLOW, MPN_R_FAIL_OPEN);
    mpn_decision_set(&d, MPN_ERROR, MPN_R_REDIS_UNAVAILABLE);
    expect(&d, MPN_ERROR, MPN_R_REDIS_UNAVAILABLE);
    mpn_decision_set(&d, MPN_ERROR, MPN_R_BAD_RECORD);
    expect(&d, MPN_ERROR, MPN_R_BAD_RECORD);
}


static void
benefit_quantity_sums_current_grants(void **state)
{
    const mpn_record_t  *rec;

    (void) state;

    rec = record(NET "\"subscriptions\":{"
                 AP("active", , "true", "\"ems\":5,\"zero\":0") ","
                 "\"old\":{\"status\":\"expired\",\"end\":\"%s\","
                 "\"benefits\":{\"ems\":100,\"gone\":1}},"
                 "\"cx\":{\"status\":\"cancelled\",\"end\":\"%s\","
                 "\"benefits\":{\"ems\":1000}}},"
                 "\"competencies\":{\"c\":{\"level\":\"gold\","
                 "\"end\":\"%s\",\"benefits\":{\"ems\":2}}}",
                 at(DAY), at(DAY), at(DAY), at(-DAY));

    assert_int_equal(mpn_benefit_quantity(rec, "ems", 3, NOW, 0), 5);
    assert_int_equal(mpn_benefit_quantity(rec, "ems", 3, NOW, 2 * DAY), 7);
    assert_int_equal(mpn_benefit_quantity(rec, "zero", 4, NOW, 0), 0);
    assert_int_equal(mpn_benefit_quantity(rec, "gone", 4, NOW, 0), -1);
    assert_int_equal(mpn_benefit_quantity(rec, "none", 4, NOW, 0), -1);
    assert_int_equal(mpn_benefit_quantity(rec, "em", 2, NOW, 0), -1);
    assert_int_equal(mpn_benefit_quantity(NULL, "ems", 3, NOW, 0), -1);
}


static void
tier_parse_knows_the_four_tiers(void **state)
{
    (void) state;

    assert_int_equal(mpn_tier_parse("network", 7), MPN_TIER_NETWORK);
    assert_int_equal(mpn_tier_parse("action_pack", 11),
                     MPN_TIER_ACTION_PACK);
    assert_int_equal(mpn_tier_parse("silver", 6), MPN_TIER_SILVER);
    assert_int_equal(mpn_tier_parse("gold", 4), MPN_TIER_GOLD);
    assert_int_equal(mpn_tier_parse("gol", 3), MPN_TIER_NONE);
    assert_int_equal(mpn_tier_parse("golden", 6), MPN_TIER_NONE);
    assert_int_equal(mpn_tier_parse("Gold", 4), MPN_TIER_NONE);
    assert_int_equal(mpn_tier_parse("", 0), MPN_TIER_NONE);
    assert_int_equal(mpn_tier_parse("goldx", 4), MPN_TIER_GOLD);
}


static void
name_tables_match_the_spec_words(void **state)
{
    int          i;
    char         buf[512];
    const char  *reasons = "ok grace fail_open no_token no_identity "
                           "bad_identity bad_token token_expired not_member "
                           "suspended tier benefit competency lapsed "
                           "cancelled redis_unavailable bad_record "
                           "keys_unavailable quota bad_amount";

    (void) state;

    buf[0] = '\0';

    for (i = 0; i < MPN_NREASONS; i++) {
        strcat(buf, mpn_reason_names[i]);
        strcat(buf, i + 1 < MPN_NREASONS ? " " : "");
    }

    assert_string_equal(buf, reasons);

    buf[0] = '\0';

    for (i = 0; i < MPN_NDECISIONS; i++) {
        strcat(buf, mpn_decision_names[i]);
        strcat(buf, i + 1 < MPN_NDECISIONS ? " " : "");
    }

    assert_string_equal(buf, "allow signin upgrade renew deny error");

    assert_string_equal(mpn_tier_names[MPN_TIER_NONE], "");
    assert_string_equal(mpn_tier_names[MPN_TIER_NETWORK], "network");
    assert_string_equal(mpn_tier_names[MPN_TIER_ACTION_PACK], "action_pack");
    assert_string_equal(mpn_tier_names[MPN_TIER_SILVER], "silver");
    assert_string_equal(mpn_tier_names[MPN_TIER_GOLD], "gold");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        T(no_record_is_upgrade_not_member),
        T(suspended_account_is_deny_suspended),
        T(suspended_wins_over_missing_network),
        T(network_false_or_absent_is_upgrade_not_member),
        T(network_member_is_allowed_for_network_tier),
        T(current_action_pack_meets_action_pack_tier),
        T(missing_tier_is_upgrade_tier),
        T(competency_levels_rank_above_action_pack),
        T(expired_action_pack_is_renew_lapsed),
        T(active_action_pack_past_end_is_renew_lapsed),
        T(cancelled_action_pack_is_upgrade_cancelled),
        T(lapsed_gold_competency_is_renew_lapsed_for_gold_tier),
        T(lapsed_is_preferred_over_cancelled),
        T(latest_ended_lapsed_grant_is_offered_for_renewal),
        T(benefit_held_by_current_grant_is_allowed),
        T(benefit_with_zero_quantity_is_not_held),
        T(missing_benefit_is_upgrade_benefit),
        T(benefit_only_in_lapsed_grant_is_renew_lapsed),
        T(benefit_only_in_cancelled_subscription_is_upgrade_cancelled),
        T(gold_competency_meets_silver_requirement),
        T(silver_competency_is_upgrade_competency_for_gold),
        T(missing_competency_is_upgrade_competency),
        T(lapsed_competency_is_renew_lapsed),
        T(competency_without_end_never_lapses),
        T(tier_is_checked_before_benefits_and_competency),
        T(benefits_are_checked_in_order_before_competency),
        T(unmet_requirement_is_named_only_when_one_refused),
        T(grace_zero_lapses_exactly_at_end),
        T(grace_starts_exactly_at_end_and_ends_at_end_plus_grace),
        T(competency_in_grace_is_allow_grace),
        T(grant_out_of_grace_is_preferred_over_one_in_grace),
        T(relied_on_grant_in_grace_is_shown),
        T(allow_shows_tier_grant_then_first_benefit_then_competency),
        T(allow_without_relied_grant_falls_back_to_action_pack),
        T(allow_without_action_pack_falls_back_to_first_subscription),
        T(fallback_grant_in_grace_reminds_but_stays_ok),
        T(days_left_is_floor_of_remaining_days),
        T(remind_window_edges_with_auto_renew_off),
        T(no_remind_when_auto_renew_is_on),
        T(effective_tier_counts_grants_in_grace_but_not_lapsed),
        T(extreme_times_and_settings_do_not_overflow),
        T(decision_set_fills_a_decision_without_record),
        T(benefit_quantity_sums_current_grants),
        T(tier_parse_knows_the_four_tiers),
        T(name_tables_match_the_spec_words),
    };

    return cmocka_run_group_tests_name("mpn_decide", tests, NULL, NULL);
}
