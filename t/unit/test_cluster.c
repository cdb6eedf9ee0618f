/*
 * mpn_cluster: key slots, the slot map from CLUSTER SLOTS, MOVED and ASK.
 * Replies are written as RESP and read with hiredis's own reader, as the
 * module and mpnctl read them.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mpn_cluster.h"
#include "unit_reply.h"


static char  err[256];


/* a node entry: [host, port, id] */
#define NODE(len, host, port)                                                \
    "*3\r\n$" #len "\r\n" #host "\r\n:" #port "\r\n$3\r\nabc\r\n"


static mpn_cluster_map_t *
map_of(const char *text)
{
    redisReply         *reply;
    mpn_cluster_map_t  *map;

    reply = resp(text);
    map = mpn_cluster_map_parse(reply, S("10.0.0.9"), err, sizeof(err));
    freeReplyObject(reply);

    return map;
}


static void
crc16_matches_the_xmodem_check_value(void **state)
{
    (void) state;

    assert_int_equal(mpn_cluster_crc16(S("123456789")), 0x31C3);
    assert_int_equal(mpn_cluster_crc16(S("")), 0);
}


static void
slot_matches_redis(void **state)
{
    (void) state;

    /* CLUSTER KEYSLOT on Redis 7.0 */
    assert_int_equal(mpn_cluster_slot(S("123456789")), 0x31C3 & 16383);
    assert_int_equal(mpn_cluster_slot(S("foo")), 12182);
    assert_int_equal(mpn_cluster_slot(S("bar")), 5061);
    assert_int_equal(mpn_cluster_slot(S("hello")), 866);
    assert_int_equal(mpn_cluster_slot(S("")), 0);
}


static void
slot_honours_hash_tags(void **state)
{
    unsigned  bar;

    (void) state;

    bar = mpn_cluster_slot(S("bar"));

    /* the spec's examples */
    assert_int_equal(mpn_cluster_slot(S("{user1000}.following")),
                     mpn_cluster_slot(S("{user1000}.followers")));
    assert_int_equal(mpn_cluster_slot(S("{user1000}.following")),
                     mpn_cluster_slot(S("user1000")));
    assert_int_equal(mpn_cluster_slot(S("foo{bar}{zap}")), bar);
    assert_int_equal(mpn_cluster_slot(S("foo{{bar}}zap")),
                     mpn_cluster_slot(S("{bar")));
    assert_int_equal(mpn_cluster_slot(S("foo{}{bar}")),
                     mpn_cluster_crc16(S("foo{}{bar}")) & 16383);

    /* no closing brace, or one before the opening: the whole key */
    assert_int_equal(mpn_cluster_slot(S("foo{bar")),
                     mpn_cluster_crc16(S("foo{bar")) & 16383);
    assert_int_equal(mpn_cluster_slot(S("}bar{")),
                     mpn_cluster_crc16(S("}bar{")) & 16383);
    assert_int_equal(mpn_cluster_slot(S("x}{bar}")), bar);
    assert_int_equal(mpn_cluster_slot(S("{bar}")), bar);
}


static void
map_routes_every_slot_to_its_primary(void **state)
{
    mpn_cluster_map_t  *map;

    (void) state;

    map = map_of("*3\r\n"
                 "*4\r\n:0\r\n:5460\r\n" NODE(9, 127.0.0.1, 7000)
                     NODE(9, 127.0.0.1, 7004)
                 "*4\r\n:5461\r\n:10922\r\n" NODE(9, 127.0.0.1, 7001)
                     NODE(9, 127.0.0.1, 7005)
                 "*4\r\n:10923\r\n:16383\r\n" NODE(9, 127.0.0.1, 7002)
                     NODE(9, 127.0.0.1, 7003));
    assert_non_null(map);
    assert_int_equal(map->nprimaries, 3);
    assert_int_equal(map->nnodes, 6);
    assert_int_equal(map->nslots, 16384);

    assert_string_equal(map->nodes[map->slot[0]].host, "127.0.0.1");
    assert_int_equal(map->nodes[map->slot[0]].port, 7000);
    assert_int_equal(map->nodes[map->slot[5460]].port, 7000);
    assert_int_equal(map->nodes[map->slot[5461]].port, 7001);
    assert_int_equal(map->nodes[map->slot[12182]].port, 7002);
    assert_int_equal(map->nodes[map->slot[16383]].port, 7002);

    /* primaries first, each its own primary; replicas name theirs */
    assert_int_equal(map->nodes[0].primary, 0);
    assert_int_equal(map->nodes[2].primary, 2);
    assert_int_equal(map->nodes[mpn_cluster_map_find(map, S("127.0.0.1"),
                                                     7004)].primary,
                     map->slot[0]);
    assert_int_equal(map->nodes[mpn_cluster_map_find(map, S("127.0.0.1"),
                                                     7003)].primary,
                     map->slot[16383]);
    assert_int_equal(mpn_cluster_map_find(map, S("127.0.0.1"), 7009), -1);
    assert_int_equal(mpn_cluster_map_find(map, S("127.0.0.2"), 7000), -1);

    free(map);
}


static void
map_merges_ranges_of_one_primary(void **state)
{
    mpn_cluster_map_t  *map;

    (void) state;

    /* after a reshard a primary owns several ranges; unassigned slots */
    map = map_of("*3\r\n"
                 "*4\r\n:0\r\n:99\r\n" NODE(9, 127.0.0.1, 7000)
                     NODE(9, 127.0.0.1, 7004)
                 "*3\r\n:100\r\n:100\r\n" NODE(9, 127.0.0.1, 7001)
                 "*4\r\n:200\r\n:300\r\n" NODE(9, 127.0.0.1, 7000)
                     NODE(9, 127.0.0.1, 7004));
    assert_non_null(map);
    assert_int_equal(map->nprimaries, 2);
    assert_int_equal(map->nnodes, 3);
    assert_int_equal(map->nslots, 100 + 1 + 101);
    assert_int_equal(map->slot[100], 1);
    assert_int_equal(map->slot[200], 0);
    assert_int_equal(map->slot[101], MPN_CLUSTER_NONE);
    assert_int_equal(map->slot[16383], MPN_CLUSTER_NONE);
    free(map);
}


static void
map_takes_unannounced_hosts_from_the_origin(void **state)
{
    mpn_cluster_map_t  *map;

    (void) state;

    /* nil or "" is the host asked; "?" is unreachable, its slots unserved */
    map = map_of("*3\r\n"
                 "*4\r\n:0\r\n:9\r\n*2\r\n$-1\r\n:7000\r\n"
                     "*2\r\n$0\r\n\r\n:7001\r\n"
                 "*3\r\n:10\r\n:19\r\n*2\r\n$1\r\n?\r\n:7002\r\n"
                 "*4\r\n:20\r\n:29\r\n" NODE(3, ::1, 7003)
                     "*2\r\n$1\r\n?\r\n:7004\r\n");
    assert_non_null(map);
    assert_int_equal(map->nprimaries, 2);
    assert_int_equal(map->nnodes, 3);
    assert_int_equal(map->nslots, 20);
    assert_string_equal(map->nodes[map->slot[0]].host, "10.0.0.9");
    assert_int_equal(map->nodes[map->slot[0]].port, 7000);
    assert_string_equal(map->nodes[2].host, "10.0.0.9");
    assert_int_equal(map->nodes[2].port, 7001);
    assert_int_equal(map->nodes[2].primary, 0);
    assert_int_equal(map->slot[10], MPN_CLUSTER_NONE);
    assert_string_equal(map->nodes[map->slot[25]].host, "::1");
    free(map);
}


static void
map_refuses_malformed_replies(void **state)
{
    size_t  i;

    static const char  *bad[] = {
        "$2\r\nOK\r\n",
        "-ERR This instance has cluster support disabled\r\n",
        "*0\r\n",
        "*1\r\n:0\r\n",
        "*1\r\n*2\r\n:0\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n$1\r\n1\r\n" NODE(1, h, 1),
        "*1\r\n*3\r\n:5\r\n:4\r\n" NODE(1, h, 1),
        "*1\r\n*3\r\n:-1\r\n:4\r\n" NODE(1, h, 1),
        "*1\r\n*3\r\n:0\r\n:16384\r\n" NODE(1, h, 1),
        "*1\r\n*3\r\n:0\r\n:1\r\n" NODE(1, h, 0),
        "*1\r\n*3\r\n:0\r\n:1\r\n" NODE(1, h, 65536),
        "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na b\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na\nb\r\n:1\r\n",
        "*1\r\n*4\r\n:0\r\n:1\r\n" NODE(1, h, 1) ":3\r\n",
        "*2\r\n*3\r\n:0\r\n:10\r\n" NODE(1, h, 1)
            "*3\r\n:10\r\n:20\r\n" NODE(1, h, 2),
        "*2\r\n*3\r\n:0\r\n:10\r\n" NODE(1, h, 1)
            "*3\r\n:10\r\n:20\r\n*2\r\n$1\r\n?\r\n:2\r\n",
        "*2\r\n*4\r\n:0\r\n:10\r\n" NODE(1, h, 1) NODE(1, h, 2)
            "*3\r\n:11\r\n:20\r\n" NODE(1, h, 2),
        "*2\r\n*4\r\n:0\r\n:10\r\n" NODE(1, h, 1) NODE(1, h, 3)
            "*4\r\n:11\r\n:20\r\n" NODE(1, h, 2) NODE(1, h, 3),
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (map_of(bad[i]) != NULL) {
            fail_msg("accepted reply %zu", i);
        }

        assert_true(err[0] != '\0');
    }

    assert_null(mpn_cluster_map_parse(NULL, S("h"), err, sizeof(err)));
}


static void
map_refuses_a_host_over_255_bytes(void **state)
{
    char    text[1024], host[257];

    (void) state;

    memset(host, 'a', 256);
    host[256] = '\0';
    snprintf(text, sizeof(text),
             "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$256\r\n%s\r\n:1\r\n", host);
    assert_null(map_of(text));

    host[255] = '\0';
    snprintf(text, sizeof(text),
             "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$255\r\n%s\r\n:1\r\n", host);
    free(map_of(text));
}


static void
redirects_parse(void **state)
{
    mpn_cluster_redirect_t  r;

    (void) state;

    assert_int_equal(mpn_cluster_redirect_parse(S("MOVED 3999 127.0.0.1:6381"),
                                                &r), 0);
    assert_int_equal(r.kind, MPN_CLUSTER_MOVED);
    assert_int_equal(r.slot, 3999);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.host_len, 9);
    assert_int_equal(r.port, 6381);

    assert_int_equal(mpn_cluster_redirect_parse(S("ASK 16383 ::1:7000"), &r),
                     0);
    assert_int_equal(r.kind, MPN_CLUSTER_ASK);
    assert_int_equal(r.slot, 16383);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 7000);

    assert_int_equal(mpn_cluster_redirect_parse(S("MOVED 0 :6380"), &r), 0);
    assert_int_equal(r.host_len, 0);
    assert_int_equal(r.port, 6380);

    assert_int_equal(mpn_cluster_redirect_parse(
                         S("MOVED 12 redis-0.example.net:6379"), &r), 0);
    assert_string_equal(r.host, "redis-0.example.net");
}


static void
redirects_refuse_other_errors_and_bad_forms(void **state)
{
    size_t                  i;
    mpn_cluster_redirect_t  r;

    static const char  *bad[] = {
        "ERR unknown command",
        "MOVED",
        "MOVED ",
        "MOVED 3999",
        "MOVED 3999 ",
        "MOVED 3999 127.0.0.1",
        "MOVED 3999 127.0.0.1:",
        "MOVED 3999 127.0.0.1:0",
        "MOVED 3999 127.0.0.1:65536",
        "MOVED 3999 127.0.0.1:63a",
        "MOVED 16384 127.0.0.1:6381",
        "MOVED -1 127.0.0.1:6381",
        "MOVED 39x9 127.0.0.1:6381",
        "MOVED 3999  127.0.0.1:6381",
        "MOVED 3999 bad host:6381",
        "MOVED 3999 a\nb:6381",
        "moved 3999 127.0.0.1:6381",
        "ASKING 1 h:1",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN Hash slot not served",
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mpn_cluster_redirect_parse(bad[i], strlen(bad[i]), &r) != -1) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(crc16_matches_the_xmodem_check_value),
        cmocka_unit_test(slot_matches_redis),
        cmocka_unit_test(slot_honours_hash_tags),
        cmocka_unit_test(map_routes_every_slot_to_its_primary),
        cmocka_unit_test(map_merges_ranges_of_one_primary),
        cmocka_unit_test(map_takes_unannounced_hosts_from_the_origin),
        cmocka_unit_test(map_refuses_malformed_replies),
        cmocka_unit_test(map_refuses_a_host_over_255_bytes),
        cmocka_unit_test(redirects_parse),
        cmocka_unit_test(redirects_refuse_other_errors_and_bad_forms),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
