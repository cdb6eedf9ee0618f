/*
 * mpn_record: JSON record validation (spec section 5) and the flat blob.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mpn_record.h"
#include "mpn_time.h"


#define ID  "4412345"

#define EXAMPLE                                                              \
    "{\"v\": 1, \"partner_id\": \"4412345\", \"name\": \"Contoso Ltd\","     \
    " \"network\": true, \"status\": \"active\", \"rev\": 7,"                \
    " \"updated_at\": \"2026-11-20T10:00:00Z\","                             \
    " \"subscriptions\": {\"action_pack\": {\"status\": \"active\","         \
    " \"start\": \"2026-01-15T00:00:00Z\","                                  \
    " \"end\": \"2027-01-15T00:00:00Z\","                                    \
    " \"auto_renew\": true, \"benefits\": {\"developer_tools\": 1,"          \
    " \"windows_enterprise\": 10, \"visual_studio_pro\": 3, \"vsts\": 1,"    \
    " \"office365_e3\": 10, \"ems\": 5, \"dynamics_crm\": 5,"                \
    " \"azure_credits\": 100}}},"                                            \
    " \"competencies\": {\"cloud_platform\": {\"level\": \"gold\","          \
    " \"end\": \"2027-06-30T00:00:00Z\","                                    \
    " \"benefits\": {\"advisory_hours\": 20}}}}"

#define HEAD  "{\"v\":1,\"partner_id\":\"" ID "\","


static char  err[256];


static mpn_record_t *
parse(const char *json)
{
    memset(err, 'x', sizeof(err));
    return mpn_record_parse(json, strlen(json), ID, sizeof(ID) - 1, err,
                            sizeof(err));
}


static mpn_record_t *
parse_ok(const char *json)
{
    mpn_record_t  *rec;

    rec = parse(json);

    if (rec == NULL) {
        fail_msg("rejected %s: %s", json, err);
    }

    return rec;
}


/* the record is rejected and the reason contains `want` */

static void
bad(const char *json, const char *want)
{
    mpn_record_t  *rec;

    rec = parse(json);

    if (rec != NULL) {
        free(rec);
        fail_msg("accepted %.200s", json);
    }

    if (strstr(err, want) == NULL) {
        fail_msg("%.200s: error \"%s\", want \"%s\"", json, err, want);
    }
}


static int
name_is(const mpn_record_t *rec, uint32_t off, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(mpn_record_str(rec, off), s, len) == 0
           && mpn_record_str(rec, off)[len] == '\0';
}


static void
spec_example_parses_into_flat_blob(void **state)
{
    int64_t               end;
    mpn_record_t         *rec;
    const mpn_grant_t    *g;
    const mpn_benefit_t  *b;

    (void) state;

    rec = parse_ok(EXAMPLE);

    assert_int_equal(rec->network, 1);
    assert_int_equal(rec->suspended, 0);
    assert_int_equal(rec->rev, 7);
    assert_int_equal(rec->ngrants, 2);
    assert_int_equal(rec->nbenefits, 9);

    g = mpn_record_grants(rec);
    b = mpn_record_benefits(rec);

    assert_true(name_is(rec, g[0].name, g[0].name_len, "action_pack"));
    assert_int_equal(g[0].kind, MPN_GRANT_SUBSCRIPTION);
    assert_int_equal(g[0].status, MPN_SUB_ACTIVE);
    assert_int_equal(g[0].auto_renew, 1);
    assert_int_equal(g[0].has_end, 1);
    assert_int_equal(g[0].start, 1768435200);
    assert_int_equal(g[0].end, 1799971200);
    assert_int_equal(g[0].benefits, 0);
    assert_int_equal(g[0].nbenefits, 8);
    assert_true(name_is(rec, b[0].name, b[0].name_len, "developer_tools"));
    assert_int_equal(b[0].quantity, 1);
    assert_true(name_is(rec, b[7].name, b[7].name_len, "azure_credits"));
    assert_int_equal(b[7].quantity, 100);

    assert_true(name_is(rec, g[1].name, g[1].name_len, "cloud_platform"));
    assert_int_equal(g[1].kind, MPN_GRANT_COMPETENCY);
    assert_int_equal(g[1].level, MPN_TIER_GOLD);
    assert_int_equal(g[1].has_end, 1);
    assert_int_equal(mpn_time_parse("2027-06-30T00:00:00Z", 20, &end), 0);
    assert_int_equal(g[1].end, end);
    assert_int_equal(g[1].benefits, 8);
    assert_int_equal(g[1].nbenefits, 1);
    assert_true(name_is(rec, b[8].name, b[8].name_len, "advisory_hours"));
    assert_int_equal(b[8].quantity, 20);

    free(rec);
}


static void
blob_survives_memcpy_to_another_place(void **state)
{
    mpn_record_t       *rec, *copy;
    const mpn_grant_t  *g;

    (void) state;

    rec = parse_ok(EXAMPLE);
    copy = malloc(rec->size);
    assert_non_null(copy);
    memcpy(copy, rec, rec->size);
    memset(rec, 0xff, rec->size);
    free(rec);

    g = mpn_record_grants(copy);
    assert_int_equal(copy->ngrants, 2);
    assert_true(name_is(copy, g[1].name, g[1].name_len, "cloud_platform"));
    assert_true(name_is(copy, mpn_record_benefits(copy)[3].name,
                        mpn_record_benefits(copy)[3].name_len, "vsts"));
    free(copy);
}


static void
same_input_gives_byte_identical_blobs(void **state)
{
    mpn_record_t  *a, *b;

    (void) state;

    a = parse_ok(EXAMPLE);
    b = parse_ok(EXAMPLE);
    assert_int_equal(a->size, b->size);
    assert_memory_equal(a, b, a->size);
    free(a);
    free(b);
}


static void
minimal_record_defaults_to_active_non_member(void **state)
{
    mpn_record_t  *rec;

    (void) state;

    rec = parse_ok("{\"v\":1,\"partner_id\":\"" ID "\"}");
    assert_int_equal(rec->network, 0);
    assert_int_equal(rec->suspended, 0);
    assert_int_equal(rec->rev, 0);
    assert_int_equal(rec->ngrants, 0);
    assert_int_equal(rec->nbenefits, 0);
    assert_int_equal(rec->size, sizeof(mpn_record_t));
    free(rec);
}


static void
suspended_status_is_recorded(void **state)
{
    mpn_record_t  *rec;

    (void) state;

    rec = parse_ok(HEAD "\"network\":true,\"status\":\"suspended\"}");
    assert_int_equal(rec->suspended, 1);
    assert_int_equal(rec->network, 1);
    free(rec);
}


static void
optional_grant_fields_get_defaults(void **state)
{
    mpn_record_t       *rec;
    const mpn_grant_t  *g;

    (void) state;

    rec = parse_ok(HEAD "\"subscriptions\":{\"x\":{\"status\":\"cancelled\","
                   "\"end\":\"2027-01-15T00:00:00Z\"},"
                   "\"y\":{\"status\":\"expired\","
                   "\"end\":\"2027-01-15T01:00:00+01:00\"}},"
                   "\"competencies\":{\"c\":{\"level\":\"silver\"}}}");
    g = mpn_record_grants(rec);
    assert_int_equal(rec->ngrants, 3);
    assert_int_equal(g[0].status, MPN_SUB_CANCELLED);
    assert_int_equal(g[0].auto_renew, 0);
    assert_int_equal(g[0].start, 0);
    assert_int_equal(g[0].nbenefits, 0);
    assert_int_equal(g[1].status, MPN_SUB_EXPIRED);
    assert_int_equal(g[1].end, 1799971200);
    assert_int_equal(g[2].kind, MPN_GRANT_COMPETENCY);
    assert_int_equal(g[2].level, MPN_TIER_SILVER);
    assert_int_equal(g[2].has_end, 0);
    assert_int_equal(g[2].status, MPN_SUB_ACTIVE);
    free(rec);
}


static void
unknown_fields_are_ignored(void **state)
{
    mpn_record_t  *rec;

    (void) state;

    rec = parse_ok(HEAD "\"name\":\"C\",\"updated_at\":42,"
                   "\"future\":{\"a\":[1,{\"b\":null}]},\"network\":true,"
                   "\"subscriptions\":{\"action_pack\":{\"status\":\"active\","
                   "\"end\":\"2027-01-15T00:00:00Z\",\"price\":\"99\","
                   "\"benefits\":{}}},"
                   "\"competencies\":{\"c\":{\"level\":\"gold\",\"x\":[]}}}");
    assert_int_equal(rec->network, 1);
    assert_int_equal(rec->ngrants, 2);
    free(rec);
}


static void
empty_input_is_not_json(void **state)
{
    mpn_record_t  *rec;

    (void) state;

    rec = mpn_record_parse("", 0, ID, sizeof(ID) - 1, err, sizeof(err));
    assert_null(rec);
    assert_non_null(strstr(err, "not JSON at line 1"));
}


static void
non_json_is_rejected(void **state)
{
    (void) state;

    bad("{", "not JSON at line 1");
    bad("hello", "not JSON");
    bad("42", "not JSON");
    bad("\"v\"", "not JSON");
    bad("{\"v\":1,}", "not JSON");
    bad(HEAD "\"network\":true} trailing", "not JSON");
    bad("[1]", "not a JSON object");
}


static void
wrong_v_is_rejected(void **state)
{
    (void) state;

    bad("{\"v\":0,\"partner_id\":\"" ID "\"}", "wrong \"v\"");
    bad("{\"v\":2,\"partner_id\":\"" ID "\"}", "wrong \"v\"");
    bad("{\"v\":\"1\",\"partner_id\":\"" ID "\"}", "wrong \"v\"");
    bad("{\"v\":1.0,\"partner_id\":\"" ID "\"}", "wrong \"v\"");
    bad("{\"v\":true,\"partner_id\":\"" ID "\"}", "wrong \"v\"");
    bad("{\"v\":null,\"partner_id\":\"" ID "\"}", "wrong \"v\"");
    bad("{\"partner_id\":\"" ID "\"}", "wrong \"v\"");
}


static void
mismatched_partner_id_is_rejected(void **state)
{
    (void) state;

    bad("{\"v\":1,\"partner_id\":\"4412346\"}", "partner_id mismatch");
    bad("{\"v\":1,\"partner_id\":\"441234\"}", "partner_id mismatch");
    bad("{\"v\":1,\"partner_id\":\"44123456\"}", "partner_id mismatch");
    bad("{\"v\":1,\"partner_id\":4412345}", "partner_id mismatch");
    bad("{\"v\":1,\"partner_id\":null}", "partner_id mismatch");
    bad("{\"v\":1}", "partner_id mismatch");
}


static void
wrong_top_level_types_are_rejected(void **state)
{
    (void) state;

    bad(HEAD "\"status\":1}", "status: not \"active\" or \"suspended\"");
    bad(HEAD "\"status\":\"Active\"}", "status: not");
    bad(HEAD "\"status\":\"deleted\"}", "status: not");
    bad(HEAD "\"status\":null}", "status: not");
    bad(HEAD "\"network\":\"true\"}", "network: not a boolean");
    bad(HEAD "\"network\":1}", "network: not a boolean");
    bad(HEAD "\"network\":null}", "network: not a boolean");
    bad(HEAD "\"rev\":\"7\"}", "rev: not an integer");
    bad(HEAD "\"rev\":7.5}", "rev: not an integer");
    bad(HEAD "\"subscriptions\":[]}", "subscriptions: not an object");
    bad(HEAD "\"subscriptions\":\"ap\"}", "subscriptions: not an object");
    bad(HEAD "\"competencies\":[]}", "competencies: not an object");
    bad(HEAD "\"competencies\":null}", "competencies: not an object");
}


#define SUB(body)  HEAD "\"subscriptions\":{\"action_pack\":" body "}}"
#define END        "\"end\":\"2027-01-15T00:00:00Z\""

static void
wrong_subscription_types_are_rejected(void **state)
{
    (void) state;

    bad(SUB("[]"), "subscriptions.action_pack: not an object");
    bad(SUB("{" END "}"), "subscriptions.action_pack.status: missing");
    bad(SUB("{\"status\":1," END "}"),
        "subscriptions.action_pack.status: not a string");
    bad(SUB("{\"status\":\"paused\"," END "}"),
        "subscriptions.action_pack.status: not \"active\", \"cancelled\" "
        "or \"expired\"");
    bad(SUB("{\"status\":\"active\"}"),
        "subscriptions.action_pack.end: missing");
    bad(SUB("{\"status\":\"active\",\"end\":1799971200}"),
        "subscriptions.action_pack.end: not an RFC 3339 time");
    bad(SUB("{\"status\":\"active\",\"end\":\"2027-01-15\"}"),
        "subscriptions.action_pack.end: not an RFC 3339 time");
    bad(SUB("{\"status\":\"active\",\"end\":null}"),
        "subscriptions.action_pack.end: not an RFC 3339 time");
    bad(SUB("{\"status\":\"active\"," END ",\"start\":\"yesterday\"}"),
        "subscriptions.action_pack.start: not an RFC 3339 time");
    bad(SUB("{\"status\":\"active\"," END ",\"auto_renew\":\"yes\"}"),
        "subscriptions.action_pack.auto_renew: not a boolean");
    bad(SUB("{\"status\":\"active\"," END ",\"auto_renew\":1}"),
        "subscriptions.action_pack.auto_renew: not a boolean");
    bad(SUB("{\"status\":\"active\"," END ",\"benefits\":[]}"),
        "subscriptions.action_pack.benefits: not an object");
    bad(SUB("{\"status\":\"active\"," END ",\"benefits\":{\"vsts\":\"1\"}}"),
        "subscriptions.action_pack.benefits.vsts: not a non-negative "
        "integer");
    bad(SUB("{\"status\":\"active\"," END ",\"benefits\":{\"vsts\":1.5}}"),
        "subscriptions.action_pack.benefits.vsts: not a non-negative");
    bad(SUB("{\"status\":\"active\"," END ",\"benefits\":{\"vsts\":true}}"),
        "subscriptions.action_pack.benefits.vsts: not a non-negative");
    bad(SUB("{\"status\":\"active\"," END ",\"benefits\":{\"vsts\":-1}}"),
        "subscriptions.action_pack.benefits.vsts: not a non-negative");
}


#define COMP(body)  HEAD "\"competencies\":{\"cloud_platform\":" body "}}"

static void
wrong_competency_types_are_rejected(void **state)
{
    (void) state;

    bad(COMP("\"gold\""), "competencies.cloud_platform: not an object");
    bad(COMP("{}"), "competencies.cloud_platform.level: missing");
    bad(COMP("{\"level\":3}"),
        "competencies.cloud_platform.level: not a string");
    bad(COMP("{\"level\":\"platinum\"}"),
        "competencies.cloud_platform.level: not \"silver\" or \"gold\"");
    bad(COMP("{\"level\":\"gold\",\"end\":\"never\"}"),
        "competencies.cloud_platform.end: not an RFC 3339 time");
    bad(COMP("{\"level\":\"gold\",\"benefits\":{\"x\":null}}"),
        "competencies.cloud_platform.benefits.x: not a non-negative");
    bad(COMP("{\"level\":\"gold\",\"benefits\":7}"),
        "competencies.cloud_platform.benefits: not an object");
}


static void
value_over_size_limit_is_rejected_before_parsing(void **state)
{
    char          *json;
    size_t         len;
    mpn_record_t  *rec;

    (void) state;

    /* 1 MB of valid JSON: a long string in an unknown field */

    len = 1024 * 1024;
    json = malloc(len);
    assert_non_null(json);
    memset(json, 'a', len);
    memcpy(json, HEAD "\"pad\":\"", sizeof(HEAD "\"pad\":\"") - 1);
    memcpy(json + len - 2, "\"}", 2);

    rec = mpn_record_parse(json, len, ID, sizeof(ID) - 1, err, sizeof(err));
    assert_null(rec);
    assert_string_equal(err, "too large");

    /* not JSON at all, so only the size check can have said "too large" */

    memset(json, '[', MPN_RECORD_MAX_JSON + 1);
    rec = mpn_record_parse(json, MPN_RECORD_MAX_JSON + 1, ID, sizeof(ID) - 1,
                           err, sizeof(err));
    assert_null(rec);
    assert_string_equal(err, "too large");

    free(json);
}


static void
value_of_exactly_size_limit_is_accepted(void **state)
{
    char          *json;
    size_t         len, head;
    mpn_record_t  *rec;

    (void) state;

    len = MPN_RECORD_MAX_JSON;
    head = sizeof(HEAD "\"pad\":\"") - 1;
    json = malloc(len);
    assert_non_null(json);
    memset(json, 'a', len);
    memcpy(json, HEAD "\"pad\":\"", head);
    memcpy(json + len - 2, "\"}", 2);

    rec = mpn_record_parse(json, len, ID, sizeof(ID) - 1, err, sizeof(err));
    if (rec == NULL) {
        fail_msg("rejected: %s", err);
    }

    free(rec);
    free(json);
}


static void
nesting_100000_deep_is_rejected_cleanly(void **state)
{
    char          *json;
    size_t         n, len, i;
    mpn_record_t  *rec;

    (void) state;

    n = 100000;
    len = 2 * n + 2;
    json = malloc(len);
    assert_non_null(json);
    json[0] = '{';

    for (i = 0; i < n; i++) {
        json[1 + i] = '[';
        json[1 + n + i] = ']';
    }

    json[len - 1] = '}';

    rec = mpn_record_parse(json, len, ID, sizeof(ID) - 1, err, sizeof(err));
    assert_null(rec);
    assert_string_equal(err, "too large");

    free(json);
}


static void
nesting_within_size_limit_hits_parser_depth_limit(void **state)
{
    char          *json, *p;
    size_t         n, head, i;
    mpn_record_t  *rec;

    (void) state;

    /* 30000 levels in an unknown field: under 64 KB, over jansson's 2048 */

    n = 30000;
    head = sizeof(HEAD "\"deep\":") - 1;
    json = malloc(head + 2 * n + 1);
    assert_non_null(json);
    memcpy(json, HEAD "\"deep\":", head);
    p = json + head;

    for (i = 0; i < n; i++) {
        p[i] = '[';
        p[n + i] = ']';
    }

    p[2 * n] = '}';

    assert_true(head + 2 * n + 1 <= MPN_RECORD_MAX_JSON);

    rec = mpn_record_parse(json, head + 2 * n + 1, ID, sizeof(ID) - 1, err,
                           sizeof(err));
    assert_null(rec);
    assert_non_null(strstr(err, "not JSON"));
    assert_non_null(strstr(err, "depth"));

    free(json);
}


static void
moderate_nesting_in_unknown_field_is_accepted(void **state)
{
    char          *json, *p;
    size_t         n, head, i;
    mpn_record_t  *rec;

    (void) state;

    n = 1000;
    head = sizeof(HEAD "\"deep\":") - 1;
    json = malloc(head + 2 * n + 1);
    assert_non_null(json);
    memcpy(json, HEAD "\"deep\":", head);
    p = json + head;

    for (i = 0; i < n; i++) {
        p[i] = '[';
        p[n + i] = ']';
    }

    p[2 * n] = '}';

    rec = mpn_record_parse(json, head + 2 * n + 1, ID, sizeof(ID) - 1, err,
                           sizeof(err));
    assert_non_null(rec);

    free(rec);
    free(json);
}


static void
duplicate_keys_are_rejected_at_top_level(void **state)
{
    (void) state;

    bad("{\"v\":1,\"v\":1,\"partner_id\":\"" ID "\"}", "duplicate");
    bad(HEAD "\"network\":false,\"network\":true}", "duplicate");
    bad(HEAD "\"unknown\":1,\"unknown\":2}", "duplicate");
}


static void
duplicate_keys_are_rejected_when_nested(void **state)
{
    (void) state;

    bad(HEAD "\"subscriptions\":{\"action_pack\":{\"status\":\"active\","
        END "},\"action_pack\":{\"status\":\"active\"," END "}}}",
        "duplicate");
    bad(SUB("{\"status\":\"active\",\"status\":\"expired\"," END "}"),
        "duplicate");
    bad(SUB("{\"status\":\"active\"," END ",\"benefits\":{\"vsts\":1,"
            "\"vsts\":2}}"), "duplicate");
    bad(HEAD "\"extra\":{\"deep\":{\"a\":1,\"a\":1}}}", "duplicate");
}


static void
grant_and_benefit_names_must_be_1_to_64_printable_bytes(void **state)
{
    char           json[512], a[66], b[66];
    mpn_record_t  *rec;

    (void) state;

    memset(a, 'a', 65);
    a[65] = '\0';
    memset(b, 'b', 65);
    b[65] = '\0';

    bad(HEAD "\"subscriptions\":{\"\":{\"status\":\"active\"," END "}}}",
        "subscriptions: bad name");
    bad(HEAD "\"competencies\":{\"a\\u0001\":{\"level\":\"gold\"}}}",
        "competencies: bad name");
    bad(SUB("{\"status\":\"active\"," END ",\"benefits\":{\"\":1}}"),
        "subscriptions.action_pack.benefits: bad name");
    bad(SUB("{\"status\":\"active\"," END ",\"benefits\":{\"a\\nb\":1}}"),
        "subscriptions.action_pack.benefits: bad name");

    snprintf(json, sizeof(json), HEAD "\"competencies\":{\"%.64s\":"
             "{\"level\":\"gold\",\"benefits\":{\"%.64s\":1}}}}",
             a, b);
    rec = parse_ok(json);
    assert_int_equal(mpn_record_grants(rec)[0].name_len, 64);
    assert_int_equal(mpn_record_benefits(rec)[0].name_len, 64);
    free(rec);

    snprintf(json, sizeof(json), HEAD "\"competencies\":{\"%.65s\":"
             "{\"level\":\"gold\"}}}",
             a);
    bad(json, "competencies: bad name");

    snprintf(json, sizeof(json), HEAD "\"competencies\":{\"a\":"
             "{\"level\":\"gold\",\"benefits\":{\"%.65s\":1}}}}",
             b);
    bad(json, "competencies.a.benefits: bad name");
}


static char *
many_grants(int n, int benefits_each)
{
    int     i, j;
    char   *json, *p;

    json = malloc(MPN_RECORD_MAX_JSON);
    assert_non_null(json);
    p = json + sprintf(json, HEAD "\"competencies\":{");

    for (i = 0; i < n; i++) {
        p += sprintf(p, "%s\"c%d\":{\"level\":\"silver\",\"benefits\":{",
                     i > 0 ? "," : "", i);

        for (j = 0; j < benefits_each; j++) {
            p += sprintf(p, "%s\"%d\":1", j > 0 ? "," : "", j);
        }

        p += sprintf(p, "}}");
    }

    sprintf(p, "}}");

    assert_true(strlen(json) < MPN_RECORD_MAX_JSON);

    return json;
}


static void
grant_count_is_capped_at_64(void **state)
{
    char          *json;
    mpn_record_t  *rec;

    (void) state;

    json = many_grants(MPN_RECORD_MAX_GRANTS, 0);
    rec = parse_ok(json);
    assert_int_equal(rec->ngrants, MPN_RECORD_MAX_GRANTS);
    free(rec);
    free(json);

    json = many_grants(MPN_RECORD_MAX_GRANTS + 1, 0);
    bad(json, "too many grants");
    free(json);
}


static void
benefit_count_is_capped_at_1024_in_total(void **state)
{
    char          *json;
    mpn_record_t  *rec;

    (void) state;

    json = many_grants(32, 32);
    rec = parse_ok(json);
    assert_int_equal(rec->nbenefits, MPN_RECORD_MAX_BENEFITS);
    assert_int_equal(mpn_record_grants(rec)[31].benefits, 31 * 32);
    free(rec);
    free(json);

    json = many_grants(33, 32);
    bad(json, "too many benefits");
    free(json);
}


/* the JSON tree lives in an arena reused by every parse (mpn_json_arena):
 * large trees spill to malloc(), and a failed parse leaves it clean */

static void
parses_in_a_row_share_the_json_arena_cleanly(void **state)
{
    int            i;
    char          *big;
    mpn_record_t  *rec, *first;

    (void) state;

    first = parse_ok(EXAMPLE);

    big = many_grants(32, 32);

    for (i = 0; i < 50; i++) {
        rec = parse_ok(big);
        assert_int_equal(rec->nbenefits, MPN_RECORD_MAX_BENEFITS);
        free(rec);

        bad("{\"v\":1,\"partner_id\":\"" ID "\",\"subscriptions\":{\"a\":[1,",
            "not JSON");

        rec = parse_ok(EXAMPLE);
        assert_int_equal(rec->size, first->size);
        assert_memory_equal(rec, first, first->size);
        free(rec);
    }

    free(big);
    free(first);
}


static void
error_text_is_printable_and_fits_the_buffer(void **state)
{
    size_t         i;
    char           small[8];
    mpn_record_t  *rec;
    const char    *junk = "{\"v\":\x01\xff\xfe}";

    (void) state;

    rec = mpn_record_parse(junk, strlen(junk), ID, sizeof(ID) - 1, err,
                           sizeof(err));
    assert_null(rec);
    assert_non_null(strstr(err, "not JSON"));

    for (i = 0; err[i] != '\0'; i++) {
        assert_true(err[i] >= 0x20 && err[i] <= 0x7e);
    }

    rec = mpn_record_parse("{}", 2, ID, sizeof(ID) - 1, small,
                           sizeof(small));
    assert_null(rec);
    assert_int_equal(strlen(small), sizeof(small) - 1);

    rec = mpn_record_parse("{}", 2, ID, sizeof(ID) - 1, NULL, 0);
    assert_null(rec);
}


static void
partner_id_pattern_is_enforced(void **state)
{
    (void) state;

    assert_true(mpn_partner_id_valid("4412345", 7));
    assert_true(mpn_partner_id_valid("a", 1));
    assert_true(mpn_partner_id_valid("A-z_0.9", 7));
    assert_true(mpn_partner_id_valid(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        64));
    assert_false(mpn_partner_id_valid(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        65));
    assert_false(mpn_partner_id_valid("", 0));
    assert_false(mpn_partner_id_valid(NULL, 0));
    assert_false(mpn_partner_id_valid("a/b", 3));
    assert_false(mpn_partner_id_valid("a b", 3));
    assert_false(mpn_partner_id_valid("a:b", 3));
    assert_false(mpn_partner_id_valid("a\0b", 3));
    assert_false(mpn_partner_id_valid("a\r\n", 3));
    assert_false(mpn_partner_id_valid("\xc3\xa9", 2));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(spec_example_parses_into_flat_blob),
        cmocka_unit_test(blob_survives_memcpy_to_another_place),
        cmocka_unit_test(same_input_gives_byte_identical_blobs),
        cmocka_unit_test(minimal_record_defaults_to_active_non_member),
        cmocka_unit_test(suspended_status_is_recorded),
        cmocka_unit_test(optional_grant_fields_get_defaults),
        cmocka_unit_test(unknown_fields_are_ignored),
        cmocka_unit_test(empty_input_is_not_json),
        cmocka_unit_test(non_json_is_rejected),
        cmocka_unit_test(wrong_v_is_rejected),
        cmocka_unit_test(mismatched_partner_id_is_rejected),
        cmocka_unit_test(wrong_top_level_types_are_rejected),
        cmocka_unit_test(wrong_subscription_types_are_rejected),
        cmocka_unit_test(wrong_competency_types_are_rejected),
        cmocka_unit_test(value_over_size_limit_is_rejected_before_parsing),
        cmocka_unit_test(value_of_exactly_size_limit_is_accepted),
        cmocka_unit_test(nesting_100000_deep_is_rejected_cleanly),
        cmocka_unit_test(nesting_within_size_limit_hits_parser_depth_limit),
        cmocka_unit_test(moderate_nesting_in_unknown_field_is_accepted),
        cmocka_unit_test(duplicate_keys_are_rejected_at_top_level),
        cmocka_unit_test(duplicate_keys_are_rejected_when_nested),
        cmocka_unit_test(
            grant_and_benefit_names_must_be_1_to_64_printable_bytes),
        cmocka_unit_test(grant_count_is_capped_at_64),
        cmocka_unit_test(benefit_count_is_capped_at_1024_in_total),
        cmocka_unit_test(parses_in_a_row_share_the_json_arena_cleanly),
        cmocka_unit_test(error_text_is_printable_and_fits_the_buffer),
        cmocka_unit_test(partner_id_pattern_is_enforced),
    };

    return cmocka_run_group_tests_name("mpn_record", tests, NULL, NULL);
}
