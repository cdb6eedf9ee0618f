/*
 * The decision (spec section 6).  No nginx dependency.
 *
 * Identity (6.1) and fetching the record (6.2) are the caller's; this file
 * takes the parsed record, or NULL when none exists, and applies 6.2-6.6.
 *
 * Where several grants could meet one requirement, the one kept is the
 * strongest: a current grant out of grace beats one in grace, and among
 * lapsed grants the one that ended last is offered for renewal; ties go to
 * the first in record order (subscriptions before competencies).  So a
 * request "relies on" grace only when a requirement is met by grants in
 * grace alone.
 */

#include <string.h>

#include "mpn_decide.h"
#include "mpn_time.h"


#define MPN_ACTION_PACK      "action_pack"
#define MPN_ACTION_PACK_LEN  (sizeof(MPN_ACTION_PACK) - 1)

enum {
    MPN_G_CURRENT = 0,
    MPN_G_GRACE,            /* current, but end <= now */
    MPN_G_LAPSED,
    MPN_G_CANCELLED
};


typedef struct {
    const mpn_record_t  *rec;
    const mpn_grant_t   *grants;
    int64_t              now;
    int64_t              grace;
    int64_t              remind;
    int                  current;   /* best current grant, -1: none */
    int                  lapsed;    /* latest-ended lapsed grant */
    int                  cancelled; /* first cancelled subscription */
} mpn_match_t;


static int64_t mpn_add_sat(int64_t a, int64_t b);
static int64_t mpn_sub_sat(int64_t a, int64_t b);
static unsigned mpn_grant_state(const mpn_grant_t *g, int64_t now,
    int64_t grace);
static unsigned mpn_grant_tier(const mpn_record_t *rec,
    const mpn_grant_t *g);
static int mpn_grant_is(const mpn_record_t *rec, const mpn_grant_t *g,
    const char *name, size_t len);
static void mpn_match_init(mpn_match_t *m, const mpn_record_t *rec,
    int64_t now, int64_t grace, int64_t remind);
static void mpn_match_add(mpn_match_t *m, int i);
static void mpn_match_tier(mpn_match_t *m, unsigned tier);
static void mpn_match_benefit(mpn_match_t *m, const mpn_str_t *name);
static void mpn_match_competency(mpn_match_t *m, const mpn_str_t *area,
    unsigned level);
static int mpn_match_decide(mpn_match_t *m, unsigned reason,
    mpn_decision_t *out, int *relied, int *in_grace);
static int mpn_fallback_grant(const mpn_record_t *rec);
static void mpn_decision_grant(const mpn_record_t *rec, int i, int64_t now,
    int64_t grace, int64_t remind, mpn_decision_t *out);


const char *const mpn_decision_names[MPN_NDECISIONS] = {
    "allow", "signin", "upgrade", "renew", "deny", "error"
};


const char *const mpn_reason_names[MPN_NREASONS] = {
    "ok",
    "grace",
    "fail_open",
    "no_token",
    "no_identity",
    "bad_identity",
    "bad_token",
    "token_expired",
    "not_member",
    "suspended",
    "tier",
    "benefit",
    "competency",
    "lapsed",
    "cancelled",
    "redis_unavailable",
    "bad_record",
    "keys_unavailable",
    "quota",
    "bad_amount"
};


const char *const mpn_tier_names[MPN_TIER_GOLD + 1] = {
    "", "network", "action_pack", "silver", "gold"
};


void
mpn_decide(const mpn_record_t *rec, const mpn_require_t *req,
    int64_t now, mpn_decision_t *out)
{
    int                 i, relied, in_grace;
    size_t              b;
    int64_t             grace, remind;
    unsigned            tier, state;
    mpn_match_t         m;
    const mpn_grant_t  *grants;

    mpn_decision_set(out, MPN_UPGRADE, MPN_R_NOT_MEMBER);

    if (rec == NULL) {
        return;
    }

    grace = req->grace > 0 ? req->grace : 0;
    remind = req->remind > 0 ? req->remind : 0;
    grants = mpn_record_grants(rec);

    /* 6.4: the effective tier; none for a partner outside the network */

    tier = MPN_TIER_NONE;

    if (rec->network) {
        tier = MPN_TIER_NETWORK;

        for (i = 0; i < (int) rec->ngrants; i++) {
            state = mpn_grant_state(&grants[i], now, grace);

            if (state <= MPN_G_GRACE
                && mpn_grant_tier(rec, &grants[i]) > tier)
            {
                tier = mpn_grant_tier(rec, &grants[i]);
            }
        }
    }

    out->tier = tier;

    /* 6.3 */

    if (rec->suspended) {
        out->decision = MPN_DENY;
        out->reason = MPN_R_SUSPENDED;
        return;
    }

    if (!rec->network) {
        return;                 /* upgrade/not_member */
    }

    /* 6.5: tier, then each benefit, then the competency */

    relied = -1;                /* the grant shown for allow */
    in_grace = -1;              /* the first relied-on grant in grace */

    if (req->tier > MPN_TIER_NETWORK) {
        mpn_match_init(&m, rec, now, grace, remind);
        mpn_match_tier(&m, req->tier);

        if (mpn_match_decide(&m, MPN_R_TIER, out, &relied, &in_grace)) {
            out->unmet = MPN_R_TIER;
            return;
        }
    }

    for (b = 0; b < req->nbenefits; b++) {
        mpn_match_init(&m, rec, now, grace, remind);
        mpn_match_benefit(&m, &req->benefits[b]);

        if (mpn_match_decide(&m, MPN_R_BENEFIT, out, &relied, &in_grace)) {
            out->unmet = MPN_R_BENEFIT;
            out->unmet_benefit = b;
            return;
        }
    }

    if (req->competency.len > 0) {
        mpn_match_init(&m, rec, now, grace, remind);
        mpn_match_competency(&m, &req->competency, req->competency_level);

        if (mpn_match_decide(&m, MPN_R_COMPETENCY, out, &relied, &in_grace))
        {
            out->unmet = MPN_R_COMPETENCY;
            return;
        }
    }

    /* 6.6 */

    out->decision = MPN_ALLOW;

    if (in_grace != -1) {
        out->reason = MPN_R_GRACE;
        relied = in_grace;

    } else {
        out->reason = MPN_R_OK;
    }

    /*
     * Nothing relied on (only network membership was required): show the
     * partner's "action_pack" subscription, else its first subscription,
     * whatever their state, so that banners can still show an expiry and
     * $mpn_remind.  This fallback never turns "ok" into "grace".
     */

    if (relied == -1) {
        relied = mpn_fallback_grant(rec);
    }

    mpn_decision_grant(rec, relied, now, grace, remind, out);
}


void
mpn_decision_set(mpn_decision_t *out, unsigned decision, unsigned reason)
{
    memset(out, 0, sizeof(mpn_decision_t));

    out->decision = decision;
    out->reason = reason;
    out->tier = MPN_TIER_NONE;
    out->grant = -1;
    out->has_end = 0;
    out->end = 0;
    out->days_left = 0;
    out->auto_renew = -1;
    out->remind = 0;
    out->unmet = MPN_R_OK;
    out->unmet_benefit = 0;
}


int64_t
mpn_benefit_quantity(const mpn_record_t *rec, const char *name,
    size_t len, int64_t now, int64_t grace)
{
    int64_t             sum, q;
    uint32_t            i;
    const mpn_grant_t  *grants;

    if (rec == NULL) {
        return -1;
    }

    if (grace < 0) {
        grace = 0;
    }

    sum = -1;
    grants = mpn_record_grants(rec);

    for (i = 0; i < rec->ngrants; i++) {
        if (mpn_grant_state(&grants[i], now, grace) > MPN_G_GRACE) {
            continue;
        }

        q = mpn_grant_benefit(rec, &grants[i], name, len);

        if (q < 0) {
            continue;
        }

        sum = (sum < 0) ? q : mpn_add_sat(sum, q);
    }

    return sum;
}


unsigned
mpn_tier_parse(const char *s, size_t len)
{
    unsigned  t;

    for (t = MPN_TIER_NETWORK; t <= MPN_TIER_GOLD; t++) {
        if (strlen(mpn_tier_names[t]) == len
            && memcmp(mpn_tier_names[t], s, len) == 0)
        {
            return t;
        }
    }

    return MPN_TIER_NONE;
}


static int64_t
mpn_add_sat(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b) {
        return INT64_MAX;
    }

    if (b < 0 && a < INT64_MIN - b) {
        return INT64_MIN;
    }

    return a + b;
}


static int64_t
mpn_sub_sat(int64_t a, int64_t b)
{
    if (b < 0 && a > INT64_MAX + b) {
        return INT64_MAX;
    }

    if (b > 0 && a < INT64_MIN + b) {
        return INT64_MIN;
    }

    return a - b;
}


static unsigned
mpn_grant_state(const mpn_grant_t *g, int64_t now, int64_t grace)
{
    if (g->kind == MPN_GRANT_SUBSCRIPTION) {
        if (g->status == MPN_SUB_CANCELLED) {
            return MPN_G_CANCELLED;
        }

        if (g->status != MPN_SUB_ACTIVE) {
            return MPN_G_LAPSED;
        }

    } else if (!g->has_end) {
        return MPN_G_CURRENT;
    }

    if (now >= mpn_add_sat(g->end, grace)) {
        return MPN_G_LAPSED;
    }

    return (g->end <= now) ? MPN_G_GRACE : MPN_G_CURRENT;
}


/* the tier a grant confers while current */

static unsigned
mpn_grant_tier(const mpn_record_t *rec, const mpn_grant_t *g)
{
    if (g->kind == MPN_GRANT_COMPETENCY) {
        return g->level;
    }

    if (mpn_grant_is(rec, g, MPN_ACTION_PACK, MPN_ACTION_PACK_LEN)) {
        return MPN_TIER_ACTION_PACK;
    }

    return MPN_TIER_NONE;
}


static int
mpn_grant_is(const mpn_record_t *rec, const mpn_grant_t *g,
    const char *name, size_t len)
{
    return g->name_len == len
           && memcmp(mpn_record_str(rec, g->name), name, len) == 0;
}


int
mpn_grant_current(const mpn_grant_t *g, int64_t now, int64_t grace)
{
    return mpn_grant_state(g, now, grace > 0 ? grace : 0) <= MPN_G_GRACE;
}


int64_t
mpn_grant_benefit(const mpn_record_t *rec, const mpn_grant_t *g,
    const char *name, size_t len)
{
    uint32_t              i;
    const mpn_benefit_t  *b;

    b = mpn_record_benefits(rec) + g->benefits;

    for (i = 0; i < g->nbenefits; i++) {
        if (b[i].name_len == len
            && memcmp(mpn_record_str(rec, b[i].name), name, len) == 0)
        {
            return b[i].quantity;
        }
    }

    return -1;
}


static void
mpn_match_init(mpn_match_t *m, const mpn_record_t *rec, int64_t now,
    int64_t grace, int64_t remind)
{
    m->rec = rec;
    m->grants = mpn_record_grants(rec);
    m->now = now;
    m->grace = grace;
    m->remind = remind;
    m->current = -1;
    m->lapsed = -1;
    m->cancelled = -1;
}


/* grant i would meet the requirement at hand: keep it if it is the best */

static void
mpn_match_add(mpn_match_t *m, int i)
{
    unsigned            state;
    const mpn_grant_t  *g, *o;

    g = &m->grants[i];
    state = mpn_grant_state(g, m->now, m->grace);

    switch (state) {

    case MPN_G_CURRENT:
    case MPN_G_GRACE:
        if (m->current == -1
            || (state == MPN_G_CURRENT
                && mpn_grant_state(&m->grants[m->current], m->now, m->grace)
                   == MPN_G_GRACE))
        {
            m->current = i;
        }

        break;

    case MPN_G_LAPSED:
        if (m->lapsed == -1) {
            m->lapsed = i;
            break;
        }

        o = &m->grants[m->lapsed];

        /* lapsed competencies always have an end */

        if (g->end > o->end) {
            m->lapsed = i;
        }

        break;

    default: /* MPN_G_CANCELLED */
        if (m->cancelled == -1) {
            m->cancelled = i;
        }

        break;
    }
}


static void
mpn_match_tier(mpn_match_t *m, unsigned tier)
{
    uint32_t  i;

    for (i = 0; i < m->rec->ngrants; i++) {
        if (mpn_grant_tier(m->rec, &m->grants[i]) >= tier) {
            mpn_match_add(m, (int) i);
        }
    }
}


static void
mpn_match_benefit(mpn_match_t *m, const mpn_str_t *name)
{
    uint32_t  i;

    for (i = 0; i < m->rec->ngrants; i++) {
        if (mpn_grant_benefit(m->rec, &m->grants[i], name->data, name->len)
            > 0)
        {
            mpn_match_add(m, (int) i);
        }
    }
}


static void
mpn_match_competency(mpn_match_t *m, const mpn_str_t *area, unsigned level)
{
    uint32_t            i;
    const mpn_grant_t  *g;

    if (level < MPN_TIER_SILVER) {
        level = MPN_TIER_SILVER;
    }

    for (i = 0; i < m->rec->ngrants; i++) {
        g = &m->grants[i];

        if (g->kind == MPN_GRANT_COMPETENCY && g->level >= level
            && mpn_grant_is(m->rec, g, area->data, area->len))
        {
            mpn_match_add(m, (int) i);
        }
    }
}


/*
 * A current grant meets the requirement: remember it as relied on (the
 * first one kept, and the first one in grace) and return 0.  Otherwise
 * decide renew/lapsed, upgrade/cancelled or upgrade/`reason` and return 1.
 */

static int
mpn_match_decide(mpn_match_t *m, unsigned reason, mpn_decision_t *out,
    int *relied, int *in_grace)
{
    int  grant;

    if (m->current != -1) {
        if (*relied == -1) {
            *relied = m->current;
        }

        if (*in_grace == -1
            && mpn_grant_state(&m->grants[m->current], m->now, m->grace)
               == MPN_G_GRACE)
        {
            *in_grace = m->current;
        }

        return 0;
    }

    if (m->lapsed != -1) {
        out->decision = MPN_RENEW;
        out->reason = MPN_R_LAPSED;
        grant = m->lapsed;

    } else if (m->cancelled != -1) {
        out->decision = MPN_UPGRADE;
        out->reason = MPN_R_CANCELLED;
        grant = m->cancelled;

    } else {
        out->decision = MPN_UPGRADE;
        out->reason = reason;
        grant = -1;
    }

    mpn_decision_grant(m->rec, grant, m->now, m->grace, m->remind, out);

    return 1;
}


static int
mpn_fallback_grant(const mpn_record_t *rec)
{
    int                 first;
    uint32_t            i;
    const mpn_grant_t  *grants;

    first = -1;
    grants = mpn_record_grants(rec);

    for (i = 0; i < rec->ngrants; i++) {
        if (grants[i].kind != MPN_GRANT_SUBSCRIPTION) {
            continue;
        }

        if (mpn_grant_is(rec, &grants[i], MPN_ACTION_PACK,
                         MPN_ACTION_PACK_LEN))
        {
            return (int) i;
        }

        if (first == -1) {
            first = (int) i;
        }
    }

    return first;
}


/*
 * The facts about grant i for $mpn_offer, $mpn_expires, $mpn_days_left,
 * $mpn_auto_renew and $mpn_remind.  $mpn_remind is set for an active
 * subscription with auto-renew off that ends within `remind`, and for any
 * grant in grace.
 */

static void
mpn_decision_grant(const mpn_record_t *rec, int i, int64_t now,
    int64_t grace, int64_t remind, mpn_decision_t *out)
{
    int64_t             left;
    const mpn_grant_t  *g;

    out->grant = i;
    out->has_end = 0;
    out->end = 0;
    out->days_left = 0;
    out->auto_renew = -1;
    out->remind = 0;

    if (i < 0) {
        return;
    }

    g = &mpn_record_grants(rec)[i];

    if (g->kind == MPN_GRANT_SUBSCRIPTION) {
        out->auto_renew = g->auto_renew ? 1 : 0;
    }

    if (!g->has_end) {
        return;
    }

    left = mpn_sub_sat(g->end, now);

    out->has_end = 1;
    out->end = g->end;
    out->days_left = mpn_days_floor(left);

    if (mpn_grant_state(g, now, grace) == MPN_G_GRACE) {
        out->remind = 1;

    } else if (g->kind == MPN_GRANT_SUBSCRIPTION
               && g->status == MPN_SUB_ACTIVE && !g->auto_renew
               && left > 0 && left <= remind)
    {
        out->remind = 1;
    }
}
