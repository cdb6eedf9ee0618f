/*
 * The decision (spec section 6): a parsed record, the location's
 * requirements and `now` in; the decision, its reason and the facts the
 * $mpn_* variables show out.  No nginx dependency.
 */

#ifndef MPN_DECIDE_H
#define MPN_DECIDE_H

#include "mpn_record.h"


enum {
    MPN_ALLOW = 0,
    MPN_SIGNIN,
    MPN_UPGRADE,
    MPN_RENEW,
    MPN_DENY,
    MPN_ERROR,
    MPN_NDECISIONS
};

enum {
    MPN_R_OK = 0,
    MPN_R_GRACE,
    MPN_R_FAIL_OPEN,
    MPN_R_NO_TOKEN,
    MPN_R_NO_IDENTITY,
    MPN_R_BAD_IDENTITY,
    MPN_R_BAD_TOKEN,
    MPN_R_TOKEN_EXPIRED,
    MPN_R_NOT_MEMBER,
    MPN_R_SUSPENDED,
    MPN_R_TIER,
    MPN_R_BENEFIT,
    MPN_R_COMPETENCY,
    MPN_R_LAPSED,
    MPN_R_CANCELLED,
    MPN_R_REDIS_UNAVAILABLE,
    MPN_R_BAD_RECORD,
    MPN_R_KEYS_UNAVAILABLE,
    MPN_R_QUOTA,                /* mpn_consume: past the allowance */
    MPN_R_BAD_AMOUNT,           /* mpn_consume: amount= not 1..1000000 */
    MPN_NREASONS
};


extern const char *const mpn_decision_names[MPN_NDECISIONS];
extern const char *const mpn_reason_names[MPN_NREASONS];
extern const char *const mpn_tier_names[MPN_TIER_GOLD + 1];  /* [0] "" */


typedef struct {
    const char  *data;
    size_t       len;
} mpn_str_t;


typedef struct {
    unsigned          tier;             /* MPN_TIER_NETWORK by default */
    const mpn_str_t  *benefits;
    size_t            nbenefits;
    mpn_str_t         competency;       /* len 0: no competency required */
    unsigned          competency_level; /* MPN_TIER_SILVER or _GOLD */
    int64_t           grace;            /* seconds */
    int64_t           remind;           /* seconds */
} mpn_require_t;


typedef struct {
    unsigned  decision;         /* MPN_ALLOW ... */
    unsigned  reason;           /* MPN_R_* */
    unsigned  tier;             /* effective tier, MPN_TIER_NONE if unknown */
    int       grant;            /* grant relied on ($mpn_offer), -1: none;
                                   an allow that relied on no grant shows
                                   the "action_pack" subscription, else the
                                   first subscription (see mpn_decide.c) */
    int       has_end;          /* $mpn_expires and $mpn_days_left known */
    int64_t   end;
    int64_t   days_left;
    int       auto_renew;       /* 1, 0, or -1 when not a subscription */
    int       remind;           /* $mpn_remind */
    unsigned  unmet;            /* the requirement that refused, for the
                                   log: MPN_R_TIER, MPN_R_BENEFIT or
                                   MPN_R_COMPETENCY (also behind lapsed
                                   and cancelled); MPN_R_OK: none */
    size_t    unmet_benefit;    /* with MPN_R_BENEFIT: its index in
                                   req->benefits */
} mpn_decision_t;


/* rec NULL means no record exists: upgrade/not_member. */
void mpn_decide(const mpn_record_t *rec, const mpn_require_t *req,
    int64_t now, mpn_decision_t *out);

/* Fills out for an outcome decided before or without a record
 * (signin, error, fail_open). */
void mpn_decision_set(mpn_decision_t *out, unsigned decision,
    unsigned reason);

/* Sum of benefit `name` over current grants; -1 when no current grant
 * lists it. */
int64_t mpn_benefit_quantity(const mpn_record_t *rec, const char *name,
    size_t len, int64_t now, int64_t grace);

/* 1 when grant g is current at now (in grace included), else 0. */
int mpn_grant_current(const mpn_grant_t *g, int64_t now, int64_t grace);

/* The quantity of benefit `name` grant g lists, -1 when it lists none. */
int64_t mpn_grant_benefit(const mpn_record_t *rec, const mpn_grant_t *g,
    const char *name, size_t len);

/* Parses "network", "action_pack", "silver", "gold"; MPN_TIER_NONE if
 * unknown. */
unsigned mpn_tier_parse(const char *s, size_t len);

#endif /* MPN_DECIDE_H */
