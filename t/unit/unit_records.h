/*
 * Records for the unit tests of the parts that read a parsed record
 * (mpn_decide, mpn_quota): JSON made from a fragment, parsed with
 * mpn_record_parse, and freed by the teardown after each test (T()).
 */

#ifndef UNIT_RECORDS_H
#define UNIT_RECORDS_H

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


#define ID    "p1"
#define DAY   ((int64_t) MPN_DAY)

#define NET   "\"network\":true,"

static mpn_record_t  *recs[8];
static int            nrecs;


/* a record made of `fmt` inside {"v":1,"partner_id":"p1", ... } */

static const mpn_record_t *record(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static const mpn_record_t *
record(const char *fmt, ...)
{
    int            n;
    char           json[4096], err[256];
    va_list        args;
    mpn_record_t  *rec;

    n = snprintf(json, sizeof(json), "{\"v\":1,\"partner_id\":\"" ID "\",");

    va_start(args, fmt);
    vsnprintf(json + n, sizeof(json) - n - 1, fmt, args);
    va_end(args);

    strcat(json, "}");

    rec = mpn_record_parse(json, strlen(json), ID, sizeof(ID) - 1, err,
                           sizeof(err));
    if (rec == NULL) {
        fail_msg("bad test record %s: %s", json, err);
    }

    assert_true(nrecs < 8);
    recs[nrecs++] = rec;

    return rec;
}


static int
teardown(void **state)
{
    (void) state;

    while (nrecs > 0) {
        free(recs[--nrecs]);
    }

    return 0;
}


/* a test whose records the teardown frees */
#define T(f)  cmocka_unit_test_teardown(f, teardown)

#endif /* UNIT_RECORDS_H */
