/*
 * Metered benefits: allowance, period, amount (see mpn_quota.h).  No nginx
 * dependency.
 *
 * A subscription's term is the year that ends at its `end`, so a renewal,
 * which moves `end` a year on, starts a new period (and a new usage key)
 * at once, even before the old end.  The period's end given to Redis
 * includes mpn_grace: a grant in grace still consumes from its last term,
 * whose key must live that long.
 */

#include <string.h>

#include <openssl/evp.h>

#include "mpn_quota.h"
#include "mpn_decide.h"
#include "mpn_time.h"


static int64_t mpn_quota_number(const char **p, const char *end);


int
mpn_quota_period(const mpn_record_t *rec, const char *name, size_t len,
    unsigned per, int64_t now, int64_t grace, mpn_quota_t *out)
{
    int                 last;
    int64_t             q, sum;
    uint32_t            i;
    const mpn_grant_t  *grants, *g;

    if (grace < 0) {
        grace = 0;
    }

    sum = 0;
    last = -1;
    grants = mpn_record_grants(rec);

    for (i = 0; i < rec->ngrants; i++) {
        g = &grants[i];

        if (!mpn_grant_current(g, now, grace)) {
            continue;
        }

        q = mpn_grant_benefit(rec, g, name, len);

        if (q <= 0) {
            continue;
        }

        sum = (q > MPN_ALLOWANCE_MAX - sum) ? MPN_ALLOWANCE_MAX : sum + q;

        /* the one that ends last; no end is later than any end */

        if (last == -1
            || (grants[last].has_end
                && (!g->has_end || g->end > grants[last].end)))
        {
            last = (int) i;
        }
    }

    if (last == -1) {
        return -1;
    }

    out->allowance = sum;
    out->grant = -1;

    if (per == MPN_PER_MONTH) {
        mpn_time_month(now, &out->start, &out->reset);

    } else if (!grants[last].has_end) {
        mpn_time_year(now, &out->start, &out->reset);

    } else {
        out->grant = last;
        out->reset = grants[last].end;
        out->start = mpn_time_add_years(out->reset, -1);
    }

    out->period_end = (grace > MPN_TIME_MAX - out->reset)
                      ? MPN_TIME_MAX : out->reset + grace;

    return 0;
}


int64_t
mpn_quota_amount(const char *s, size_t len)
{
    int64_t      n;
    const char  *end;

    end = s + len;
    n = mpn_quota_number(&s, end);

    if (s != end || n < 1 || n > MPN_AMOUNT_MAX) {
        return -1;
    }

    return n;
}


int64_t
mpn_quota_refusal_used(const char *s, size_t len)
{
    int64_t      n;
    const char  *end;

    if (len < 11 || memcmp(s, "QUOTA used ", 11) != 0) {
        return -1;
    }

    end = s + len;
    s += 11;
    n = mpn_quota_number(&s, end);

    if (n < 0 || s == end || *s != ' ') {
        return -1;
    }

    return n;
}


long
mpn_quota_idem(const char *value, size_t len, char *buf, const char **out)
{
    unsigned       i, md_len;
    unsigned char  md[EVP_MAX_MD_SIZE];
    static const char  hex[] = "0123456789abcdef";

    if (len <= MPN_IDEM_MAX) {
        *out = value;
        return (long) len;
    }

    if (EVP_Digest(value, len, md, &md_len, EVP_sha256(), NULL) != 1
        || md_len != 32)
    {
        return -1;
    }

    memcpy(buf, "sha256:", 7);

    for (i = 0; i < md_len; i++) {
        buf[7 + 2 * i] = hex[md[i] >> 4];
        buf[7 + 2 * i + 1] = hex[md[i] & 0xf];
    }

    *out = buf;

    return (long) MPN_IDEM_HASHED;
}


/* decimal digits at *p (advanced past them): their value, or -1 when there
 * are none or they make more than 2^53 */

static int64_t
mpn_quota_number(const char **p, const char *end)
{
    int64_t      n;
    const char  *s;

    s = *p;
    n = 0;

    if (s == end || *s < '0' || *s > '9') {
        return -1;
    }

    while (s < end && *s >= '0' && *s <= '9') {
        if (n > MPN_ALLOWANCE_MAX / 10) {
            return -1;
        }

        n = n * 10 + (*s++ - '0');
    }

    *p = s;

    return n;
}
