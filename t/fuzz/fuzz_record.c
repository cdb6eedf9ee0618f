/*
 * libFuzzer target: bytes as the record of partner "4412345"; a record that
 * parses is decided against several requirement sets and times, and its
 * benefit quantities are read.  Every grant, benefit and name offset in the
 * blob is checked to lie inside it.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpn_decide.h"
#include "mpn_time.h"


#define ID  "4412345"


static void fuzz_check_blob(const mpn_record_t *rec);
static void fuzz_check_decision(const mpn_record_t *rec,
    const mpn_decision_t *d);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t               r, n, b;
    char                 err[256];
    mpn_record_t        *rec;
    mpn_require_t        req;
    mpn_decision_t       d;
    const mpn_grant_t   *g;
    const mpn_benefit_t *bs;

    static const mpn_str_t  benefits[] = {
        { "developer_tools", 15 },
        { "azure_credits", 13 },
        { "vsts", 4 },
        { "", 0 }
    };

    static const int64_t  nows[] = {
        INT64_MIN, -1, 0, 1768435200, 1799971200, 1799971199,
        1800000000, MPN_TIME_MAX, INT64_MAX
    };

    static const struct {
        unsigned  tier;
        size_t    nbenefits;
        char     *competency;
        unsigned  level;
        int64_t   grace;
        int64_t   remind;
    } reqs[] = {
        { MPN_TIER_NETWORK, 0, NULL, MPN_TIER_SILVER, 0, 30 * MPN_DAY },
        { MPN_TIER_ACTION_PACK, 0, NULL, MPN_TIER_SILVER, 0, 30 * MPN_DAY },
        { MPN_TIER_GOLD, 1, "cloud_platform", MPN_TIER_GOLD, 7 * MPN_DAY,
          30 * MPN_DAY },
        { MPN_TIER_SILVER, 4, "cloud_platform", MPN_TIER_SILVER,
          INT64_MAX, INT64_MAX },
        { MPN_TIER_NONE, 3, "", MPN_TIER_SILVER, -1, -1 },
    };

    rec = mpn_record_parse((const char *) data, size, ID, sizeof(ID) - 1,
                           err, sizeof(err));

    if (rec == NULL) {
        if (memchr(err, '\0', sizeof(err)) == NULL) {
            abort();
        }

        return 0;
    }

    fuzz_check_blob(rec);

    for (r = 0; r < sizeof(reqs) / sizeof(reqs[0]); r++) {
        memset(&req, 0, sizeof(mpn_require_t));
        req.tier = reqs[r].tier;
        req.benefits = benefits;
        req.nbenefits = reqs[r].nbenefits;

        if (reqs[r].competency != NULL) {
            req.competency.data = reqs[r].competency;
            req.competency.len = strlen(reqs[r].competency);
        }

        req.competency_level = reqs[r].level;
        req.grace = reqs[r].grace;
        req.remind = reqs[r].remind;

        for (n = 0; n < sizeof(nows) / sizeof(nows[0]); n++) {
            mpn_decide(rec, &req, nows[n], &d);
            fuzz_check_decision(rec, &d);

            for (b = 0; b < sizeof(benefits) / sizeof(benefits[0]); b++) {
                if (mpn_benefit_quantity(rec, benefits[b].data,
                                         benefits[b].len, nows[n],
                                         req.grace)
                    < -1)
                {
                    abort();
                }
            }
        }
    }

    /* every grant's own benefits, by name */

    g = mpn_record_grants(rec);
    bs = mpn_record_benefits(rec);

    for (n = 0; n < rec->ngrants; n++) {
        for (b = g[n].benefits; b < g[n].benefits + g[n].nbenefits; b++) {
            if (mpn_benefit_quantity(rec, mpn_record_str(rec, bs[b].name),
                                     bs[b].name_len, nows[3], 0)
                < -1)
            {
                abort();
            }
        }
    }

    free(rec);

    return 0;
}


static void
fuzz_check_blob(const mpn_record_t *rec)
{
    size_t                i, names;
    const mpn_grant_t    *g;
    const mpn_benefit_t  *b;

    names = sizeof(mpn_record_t) + rec->ngrants * sizeof(mpn_grant_t)
            + rec->nbenefits * sizeof(mpn_benefit_t);

    if (rec->ngrants > MPN_RECORD_MAX_GRANTS
        || rec->nbenefits > MPN_RECORD_MAX_BENEFITS
        || names > rec->size)
    {
        abort();
    }

    g = mpn_record_grants(rec);
    b = mpn_record_benefits(rec);

    for (i = 0; i < rec->ngrants; i++) {
        if (g[i].name < names || g[i].name_len == 0
            || g[i].name_len > MPN_NAME_MAX
            || (size_t) g[i].name + g[i].name_len >= rec->size
            || mpn_record_str(rec, g[i].name)[g[i].name_len] != '\0'
            || (size_t) g[i].benefits + g[i].nbenefits > rec->nbenefits
            || (g[i].kind == MPN_GRANT_COMPETENCY
                && g[i].level != MPN_TIER_SILVER
                && g[i].level != MPN_TIER_GOLD)
            || (g[i].kind == MPN_GRANT_SUBSCRIPTION && !g[i].has_end)
            || (g[i].has_end
                && (g[i].end < MPN_TIME_MIN || g[i].end > MPN_TIME_MAX)))
        {
            abort();
        }
    }

    for (i = 0; i < rec->nbenefits; i++) {
        if (b[i].name < names || b[i].name_len == 0
            || b[i].name_len > MPN_NAME_MAX
            || (size_t) b[i].name + b[i].name_len >= rec->size
            || mpn_record_str(rec, b[i].name)[b[i].name_len] != '\0'
            || b[i].quantity < 0)
        {
            abort();
        }
    }
}


static void
fuzz_check_decision(const mpn_record_t *rec, const mpn_decision_t *d)
{
    if (d->decision >= MPN_NDECISIONS || d->reason >= MPN_NREASONS
        || d->tier > MPN_TIER_GOLD
        || d->grant < -1 || d->grant >= (int) rec->ngrants
        || d->auto_renew < -1 || d->auto_renew > 1
        || (d->remind != 0 && d->remind != 1)
        || (d->decision == MPN_RENEW && d->grant == -1)
        || (d->reason == MPN_R_CANCELLED && d->grant == -1)
        || (d->reason == MPN_R_GRACE && d->grant == -1))
    {
        abort();
    }
}
