/*
 * Metered benefits (spec section 12): from a parsed record, the benefit's
 * allowance and the period it is counted in; the amount a request takes;
 * what a QUOTA refusal from Redis says.  No nginx dependency.
 */

#ifndef MPN_QUOTA_H
#define MPN_QUOTA_H

#include "mpn_record.h"


#define MPN_AMOUNT_MAX     1000000      /* what mpn_consume accepts */
#define MPN_ALLOWANCE_MAX  9007199254740991LL  /* 2^53 - 1, as Lua counts */
#define MPN_IDEM_MAX       256          /* longest IDEM token sent as is */
#define MPN_IDEM_HASHED    (sizeof("sha256:") - 1 + 64)

enum {
    MPN_PER_TERM = 0,
    MPN_PER_MONTH
};


typedef struct {
    int64_t   allowance;    /* the benefit across current grants */
    int64_t   start;        /* the period's first second: the key's suffix */
    int64_t   reset;        /* the first second of the next period */
    int64_t   period_end;   /* reset + grace: period_end_unix for Redis */
    int       grant;        /* the grant whose term it is; -1: a calendar
                               month or year */
} mpn_quota_t;


/*
 * The allowance of benefit `name` and its period at `now`.  per=term: the
 * year ending at the end of the current grant holding it (quantity > 0)
 * that ends last, a grant with no end (a competency) giving the calendar
 * year; per=month: the calendar month.  Several grants: their quantities
 * add up.  Returns 0, or -1 when no current grant holds the benefit.
 */
int mpn_quota_period(const mpn_record_t *rec, const char *name, size_t len,
    unsigned per, int64_t now, int64_t grace, mpn_quota_t *out);

/* A whole number 1..MPN_AMOUNT_MAX in decimal digits; -1 otherwise. */
int64_t mpn_quota_amount(const char *s, size_t len);

/* "QUOTA used U of A, N more asked for": U, or -1 when s is no such text. */
int64_t mpn_quota_refusal_used(const char *s, size_t len);

/*
 * The IDEM token for an idempotency value: the value itself up to
 * MPN_IDEM_MAX bytes (*out points at it), else "sha256:" and its SHA-256
 * in hex, written to buf (MPN_IDEM_HASHED bytes), which is what Redis
 * keeps.  Returns the token's length, 0 for an empty value (no token), or
 * -1 if hashing failed.
 */
long mpn_quota_idem(const char *value, size_t len, char *buf,
    const char **out);

#endif /* MPN_QUOTA_H */
