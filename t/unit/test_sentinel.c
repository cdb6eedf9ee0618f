/*
 * mpn_sentinel: the +switch-master message and the entries of SENTINEL
 * REPLICAS, read as Redis 7's Sentinel writes them (replies parsed with
 * hiredis's own reader, as the module reads them).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mpn_sentinel.h"
#include "unit_reply.h"


/* a replica entry as SENTINEL REPLICAS gives it (shortened) */
static char *
replica(const char *ip, const char *port, const char *flags)
{
    static char  buf[512];

    snprintf(buf, sizeof(buf),
             "*8\r\n$4\r\nname\r\n$14\r\n127.0.0.1:6380\r\n"
             "$2\r\nip\r\n$%zu\r\n%s\r\n"
             "$4\r\nport\r\n$%zu\r\n%s\r\n"
             "$5\r\nflags\r\n$%zu\r\n%s\r\n",
             strlen(ip), ip, strlen(port), port, strlen(flags), flags);

    return buf;
}


static void
switch_master_names_the_new_primary(void **state)
{
    mpn_sentinel_addr_t  to;

    (void) state;

    assert_int_equal(mpn_sentinel_switch(
        S("mymaster 127.0.0.1 6379 10.0.0.6 6380"), S("mymaster"), &to), 0);
    assert_int_equal(to.host_len, 8);
    assert_memory_equal(to.host, "10.0.0.6", 8);
    assert_int_equal(to.port, 6380);

    assert_int_equal(mpn_sentinel_switch(
        S("m ::1 6379 fe80::1 6381"), S("m"), &to), 0);
    assert_int_equal(to.host_len, 7);
    assert_int_equal(to.port, 6381);
}


static void
switch_master_of_another_master_or_malformed_is_refused(void **state)
{
    size_t               i;
    mpn_sentinel_addr_t  to;

    static const char  *bad[] = {
        "other 127.0.0.1 6379 10.0.0.6 6380",
        "mymaster2 127.0.0.1 6379 10.0.0.6 6380",
        "mymaster 127.0.0.1 6379 10.0.0.6",
        "mymaster 127.0.0.1 6379 10.0.0.6 6380 extra",
        "mymaster 127.0.0.1 6379 10.0.0.6 0",
        "mymaster 127.0.0.1 6379 10.0.0.6 65536",
        "mymaster 127.0.0.1 6379 10.0.0.6 63x0",
        "mymaster 127.0.0.1 6379 10.0.0.6  6380",
        "mymaster",
        "",
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mpn_sentinel_switch(bad[i], strlen(bad[i]), S("mymaster"), &to)
            != -1)
        {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}


static void
replica_up_is_usable(void **state)
{
    redisReply           *r;
    mpn_sentinel_addr_t   a;

    (void) state;

    r = resp(replica("127.0.0.1", "6380", "slave"));
    assert_int_equal(mpn_sentinel_replica(r, &a), 1);
    assert_int_equal(a.host_len, 9);
    assert_memory_equal(a.host, "127.0.0.1", 9);
    assert_int_equal(a.port, 6380);
    freeReplyObject(r);
}


static void
replica_down_or_disconnected_is_not(void **state)
{
    size_t               i;
    redisReply          *r;
    mpn_sentinel_addr_t  a;

    static const char  *flags[] = {
        "s_down,slave",
        "slave,o_down",
        "s_down,slave,disconnected",
        "slave,disconnected",
    };

    (void) state;

    for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        r = resp(replica("127.0.0.1", "6380", flags[i]));
        if (mpn_sentinel_replica(r, &a) != 0) {
            fail_msg("flags \"%s\" taken as usable", flags[i]);
        }
        freeReplyObject(r);
    }

    /* a word only like a flag is no flag */
    r = resp(replica("127.0.0.1", "6380", "slave,promoted_s_downish"));
    assert_int_equal(mpn_sentinel_replica(r, &a), 1);
    freeReplyObject(r);
}


static void
replica_without_its_fields_is_malformed(void **state)
{
    redisReply           *r;
    mpn_sentinel_addr_t   a;

    (void) state;

    r = resp("*4\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nport\r\n$4\r\n6380"
             "\r\n");
    assert_int_equal(mpn_sentinel_replica(r, &a), -1);
    freeReplyObject(r);

    r = resp(replica("127.0.0.1", "http", "slave"));
    assert_int_equal(mpn_sentinel_replica(r, &a), -1);
    freeReplyObject(r);

    r = resp(replica("", "6380", "slave"));
    assert_int_equal(mpn_sentinel_replica(r, &a), -1);
    freeReplyObject(r);

    r = resp("$5\r\nslave\r\n");
    assert_int_equal(mpn_sentinel_replica(r, &a), -1);
    freeReplyObject(r);

    assert_int_equal(mpn_sentinel_replica(NULL, &a), -1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(switch_master_names_the_new_primary),
        cmocka_unit_test(
            switch_master_of_another_master_or_malformed_is_refused),
        cmocka_unit_test(replica_up_is_usable),
        cmocka_unit_test(replica_down_or_disconnected_is_not),
        cmocka_unit_test(replica_without_its_fields_is_malformed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
