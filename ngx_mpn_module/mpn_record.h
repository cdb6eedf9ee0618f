/*
 * The partner record (spec section 5): JSON bytes in, a compact flat blob
 * out.  The blob holds no pointers, only offsets, so it can be copied as is
 * into a pool or a shared-memory cache.
 */

#ifndef MPN_RECORD_H
#define MPN_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define MPN_RECORD_MAX_JSON  65536  /* larger values are bad records */
#define MPN_ID_MAX           64

/*
 * Caps on what one record may hold; a record over them is a bad record.
 * Names of offers, areas and benefits are 1..MPN_NAME_MAX bytes with no
 * control characters (they end up in variables and so in headers).
 * Benefit quantities are integers >= 0.
 */
#define MPN_NAME_MAX             64
#define MPN_RECORD_MAX_GRANTS    64     /* subscriptions + competencies */
#define MPN_RECORD_MAX_BENEFITS  1024   /* over all grants together */


enum {
    MPN_TIER_NONE = 0,
    MPN_TIER_NETWORK,
    MPN_TIER_ACTION_PACK,
    MPN_TIER_SILVER,
    MPN_TIER_GOLD
};

enum {
    MPN_GRANT_SUBSCRIPTION = 0,
    MPN_GRANT_COMPETENCY
};

enum {
    MPN_SUB_ACTIVE = 0,
    MPN_SUB_CANCELLED,
    MPN_SUB_EXPIRED
};


typedef struct {
    uint32_t  name;             /* offset of the name in the blob */
    uint16_t  name_len;
    uint8_t   kind;             /* MPN_GRANT_* */
    uint8_t   status;           /* MPN_SUB_*; competencies: MPN_SUB_ACTIVE */
    uint8_t   level;            /* competencies: MPN_TIER_SILVER or _GOLD */
    uint8_t   auto_renew;       /* subscriptions: 0 or 1 */
    uint8_t   has_end;          /* competencies may have no end */
    uint8_t   pad;
    int64_t   start;            /* 0 when absent */
    int64_t   end;
    uint32_t  benefits;         /* index of the first benefit */
    uint32_t  nbenefits;
} mpn_grant_t;


typedef struct {
    uint32_t  name;             /* offset of the name in the blob */
    uint32_t  name_len;
    int64_t   quantity;
} mpn_benefit_t;


typedef struct {
    uint32_t  size;             /* bytes in the whole blob */
    uint8_t   network;
    uint8_t   suspended;
    uint16_t  pad;
    int64_t   rev;
    uint32_t  ngrants;
    uint32_t  nbenefits;
    /* followed by mpn_grant_t[ngrants] (subscriptions, then competencies,
     * each in record order), mpn_benefit_t[nbenefits], and the names, each
     * NUL-terminated */
} mpn_record_t;


static inline const mpn_grant_t *
mpn_record_grants(const mpn_record_t *rec)
{
    return (const mpn_grant_t *) (rec + 1);
}


static inline const mpn_benefit_t *
mpn_record_benefits(const mpn_record_t *rec)
{
    return (const mpn_benefit_t *) (mpn_record_grants(rec) + rec->ngrants);
}


static inline const char *
mpn_record_str(const mpn_record_t *rec, uint32_t off)
{
    return (const char *) rec + off;
}


/*
 * Parses and validates a record stored under partner id `id`.  Returns a
 * malloc()ed blob (free() it), or NULL with a short reason in err, e.g.
 * "not JSON at line 1: ...", "wrong \"v\"", "partner_id mismatch",
 * "too large".  Duplicate keys, wrong types in fields the decision reads and
 * values over MPN_RECORD_MAX_JSON bytes are bad records; unknown fields are
 * ignored.
 */
mpn_record_t *mpn_record_parse(const char *json, size_t len, const char *id,
    size_t id_len, char *err, size_t err_len);

/* 1 when id matches ^[A-Za-z0-9._-]{1,64}$ */
int mpn_partner_id_valid(const char *id, size_t len);

#endif /* MPN_RECORD_H */
