/*
 * The cache of verified tokens: one open-addressed table of 64-byte slots
 * (linear probing, deletion by shifting back, no tombstones), grown by
 * doubling within the budget, at most half full; CLOCK eviction.  A slot
 * holds the token's 128-bit keyed hash, never the token.
 */

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>

#include "mpn_tcache.h"
#include "mpn_siphash.h"
#include "mpn_tag.h"


/* partner ids up to this long live in their slot, longer ones in a
 * malloc()ed copy whose pointer the slot holds */
#define MPN_TCACHE_ID_INLINE  17

/* the slot a search starts at is picked from the token's last bytes (the
 * signature's, where tokens differ), so that its cache line can be on its
 * way while the whole token is hashed */
#define MPN_TCACHE_TAIL       16

typedef struct {
    uint64_t             tag[2];         /* mpn_tag of the token */
    const void          *scope;          /* NULL: a free slot */
    int64_t              exp;
    int64_t              nbf;
    uint32_t             home;           /* hash of the tail: first slot */
    uint8_t              id_len;
    uint8_t              used;           /* hit since the hand passed */
    char                 id[MPN_TCACHE_ID_INLINE + 1];
} mpn_tcache_entry_t;

_Static_assert(sizeof(mpn_tcache_entry_t) == 64,
               "a token cache entry is one cache line");


struct mpn_tcache_s {
    mpn_tcache_entry_t  *slots;          /* NULL when nothing fits */
    size_t               mask;           /* slots - 1, a power of two */
    size_t               max_slots;      /* the largest table in budget */
    size_t               hand;           /* CLOCK */
    size_t               entries;
    size_t               bytes;
    size_t               max_bytes;
    mpn_tag_key_t        key;            /* of the tag */
    mpn_siphash_key_t    home_key;       /* of the first slot */
};


#define MPN_TCACHE_SLOT        sizeof(mpn_tcache_entry_t)
#define MPN_TCACHE_MIN_SLOTS   1024      /* 64 KB, grown from there */

/* probes land anywhere in the table: from this size on it is asked to
 * sit on 2 MB pages, so that a probe is not a TLB miss as well */
#define MPN_TCACHE_HUGE        (2 * 1024 * 1024)


static mpn_tcache_entry_t *mpn_tcache_alloc(size_t n);
static void mpn_tcache_release(mpn_tcache_entry_t *slots, size_t n);
static int mpn_tcache_grow(mpn_tcache_t *c);
static uint32_t mpn_tcache_home(const mpn_tcache_t *c, const char *tok,
    size_t len);
static mpn_tcache_entry_t *mpn_tcache_find(mpn_tcache_t *c, uint32_t home,
    const uint64_t tag[2], const void *scope);
static void mpn_tcache_put(mpn_tcache_t *c, uint32_t home,
    const uint64_t tag[2], const void *scope, const char *id, size_t id_len,
    int64_t exp, int64_t nbf);
static void mpn_tcache_delete(mpn_tcache_t *c, mpn_tcache_entry_t *e);
static void mpn_tcache_evict(mpn_tcache_t *c);
static const char *mpn_tcache_id(const mpn_tcache_entry_t *e);


mpn_tcache_t *
mpn_tcache_create(size_t max_bytes)
{
    size_t         n;
    mpn_tcache_t  *c;

    c = calloc(1, sizeof(mpn_tcache_t));
    if (c == NULL) {
        return NULL;
    }

    if (mpn_tag_key_init(&c->key) != 0
        || mpn_siphash_key_init(&c->home_key) != 0)
    {
        free(c);
        return NULL;
    }

    c->max_bytes = max_bytes;

    n = 1;

    while (n * 2 * MPN_TCACHE_SLOT <= max_bytes && n < (1UL << 30)) {
        n <<= 1;
    }

    /* a table of one slot holds nothing when kept half full */

    if (n < 2) {
        return c;
    }

    c->max_slots = n;

    n = (n < MPN_TCACHE_MIN_SLOTS) ? n : MPN_TCACHE_MIN_SLOTS;

    c->slots = mpn_tcache_alloc(n);
    if (c->slots == NULL) {
        free(c);
        return NULL;
    }

    c->mask = n - 1;

    return c;
}


void
mpn_tcache_free(mpn_tcache_t *c)
{
    if (c == NULL) {
        return;
    }

    mpn_tcache_clear(c);

    if (c->slots != NULL) {
        mpn_tcache_release(c->slots, c->mask + 1);
    }

    OPENSSL_cleanse(c, sizeof(mpn_tcache_t));
    free(c);
}


void
mpn_tcache_clear(mpn_tcache_t *c)
{
    size_t  i;

    if (c->slots == NULL) {
        return;
    }

    for (i = 0; i <= c->mask; i++) {
        if (c->slots[i].scope != NULL
            && c->slots[i].id_len > MPN_TCACHE_ID_INLINE)
        {
            free((char *) mpn_tcache_id(&c->slots[i]));
        }
    }

    memset(c->slots, 0, (c->mask + 1) * MPN_TCACHE_SLOT);

    c->entries = 0;
    c->bytes = 0;
    c->hand = 0;
}


void
mpn_tcache_usage(const mpn_tcache_t *c, size_t *entries, size_t *bytes,
    size_t *max_bytes)
{
    *entries = c->entries;
    *bytes = c->bytes;
    *max_bytes = c->max_bytes;
}


size_t
mpn_tcache_entry_size(size_t id_len)
{
    return 2 * MPN_TCACHE_SLOT
           + ((id_len > MPN_TCACHE_ID_INLINE) ? id_len + 1 : 0);
}


size_t
mpn_tcache_slot(const mpn_tcache_t *c, const char *tok, size_t len)
{
    return mpn_tcache_home(c, tok, len) & c->mask;
}


int
mpn_tcache_verify(mpn_tcache_t *c, const void *scope, const mpn_keyset_t *ks,
    const char *tok, size_t len, int64_t now, const mpn_token_opts_t *opts,
    char *id, size_t *id_len, const char **why, int *hit)
{
    int                  rc;
    int64_t              exp, nbf;
    uint32_t             home;
    uint64_t             tag[2];
    mpn_tcache_entry_t  *e;

    *hit = 0;

    if (c == NULL || scope == NULL || len == 0 || len > MPN_TOKEN_MAX) {
        return mpn_token_verify(ks, tok, len, now, opts, id, id_len, why);
    }

    home = mpn_tcache_home(c, tok, len);

    if (c->entries != 0) {
        __builtin_prefetch(&c->slots[home & c->mask]);
    }

    /* the scope is compared, not hashed: one token is rarely seen by two
     * verifiers */
    mpn_tag(&c->key, tok, len, tag);

    e = (c->entries != 0) ? mpn_tcache_find(c, home, tag, scope) : NULL;

    if (e != NULL) {
        *hit = 1;

        rc = mpn_token_check_times(e->exp, e->nbf, now, opts, why);

        if (rc == MPN_TOKEN_EXPIRED) {
            mpn_tcache_delete(c, e);
            return rc;
        }

        if (rc != MPN_TOKEN_OK) {
            return rc;
        }

        /* the only write a hit makes, once per pass of the hand */

        if (!e->used) {
            e->used = 1;
        }

        memcpy(id, mpn_tcache_id(e), e->id_len);
        id[e->id_len] = '\0';
        *id_len = e->id_len;

        return MPN_TOKEN_OK;
    }

    rc = mpn_token_verify_times(ks, tok, len, now, opts, id, id_len, &exp,
                                &nbf, why);

    if (rc == MPN_TOKEN_OK) {
        mpn_tcache_put(c, home, tag, scope, id, *id_len, exp, nbf);
    }

    return rc;
}


/*
 * A table is mapped on its own rather than malloc()ed: heap pages already
 * touched would stay 4 KB pages, and a fresh mapping comes zeroed.  A
 * large one is aligned to 2 MB, the rest of the mapping given back.
 */

static mpn_tcache_entry_t *
mpn_tcache_alloc(size_t n)
{
    size_t   size, extra, lead;
    char    *p, *start;

    size = n * MPN_TCACHE_SLOT;
    extra = (size < MPN_TCACHE_HUGE) ? 0 : MPN_TCACHE_HUGE;

    p = mmap(NULL, size + extra, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }

    if (extra == 0) {
        return (mpn_tcache_entry_t *) p;
    }

    start = (char *) (((uintptr_t) p + MPN_TCACHE_HUGE - 1)
                      & ~((uintptr_t) MPN_TCACHE_HUGE - 1));
    lead = start - p;

    if (lead != 0) {
        (void) munmap(p, lead);
    }

    (void) munmap(start + size, MPN_TCACHE_HUGE - lead);

#ifdef MADV_HUGEPAGE
    (void) madvise(start, size, MADV_HUGEPAGE);
#endif

    return (mpn_tcache_entry_t *) start;
}


static void
mpn_tcache_release(mpn_tcache_entry_t *slots, size_t n)
{
    (void) munmap(slots, n * MPN_TCACHE_SLOT);
}


/* twice the slots, every entry placed again; -1 when out of memory */

static int
mpn_tcache_grow(mpn_tcache_t *c)
{
    size_t               i, j, mask;
    mpn_tcache_entry_t  *slots;

    mask = (c->mask + 1) * 2 - 1;

    slots = mpn_tcache_alloc(mask + 1);
    if (slots == NULL) {
        return -1;
    }

    for (i = 0; i <= c->mask; i++) {
        if (c->slots[i].scope == NULL) {
            continue;
        }

        for (j = c->slots[i].home & mask;
             slots[j].scope != NULL;
             j = (j + 1) & mask)
        {
            /* void */
        }

        slots[j] = c->slots[i];
    }

    mpn_tcache_release(c->slots, c->mask + 1);

    c->slots = slots;
    c->mask = mask;
    c->hand = 0;

    return 0;
}


/* a keyed hash of the token's last bytes (all of a short one) */

static uint32_t
mpn_tcache_home(const mpn_tcache_t *c, const char *tok, size_t len)
{
    size_t  n;

    n = (len < MPN_TCACHE_TAIL) ? len : MPN_TCACHE_TAIL;

    return (uint32_t) mpn_siphash(&c->home_key, tok + len - n, n);
}


/* the table is at most half full: a free slot ends every search */

static mpn_tcache_entry_t *
mpn_tcache_find(mpn_tcache_t *c, uint32_t home, const uint64_t tag[2],
    const void *scope)
{
    size_t               i;
    mpn_tcache_entry_t  *e;

    for (i = home & c->mask; /* void */; i = (i + 1) & c->mask) {
        e = &c->slots[i];

        if (e->scope == NULL) {
            return NULL;
        }

        if (e->tag[0] == tag[0] && e->tag[1] == tag[1] && e->scope == scope) {
            return e;
        }
    }
}


static void
mpn_tcache_put(mpn_tcache_t *c, uint32_t home, const uint64_t tag[2],
    const void *scope, const char *id, size_t id_len, int64_t exp,
    int64_t nbf)
{
    char                *copy;
    size_t               i, size;
    mpn_tcache_entry_t  *e;

    size = mpn_tcache_entry_size(id_len);

    if (c->slots == NULL || size > c->max_bytes || id_len > MPN_TOKEN_ID_MAX)
    {
        return;
    }

    if (c->entries + 1 > (c->mask + 1) / 2 && c->mask + 1 < c->max_slots) {
        /* out of memory: the table stays as it is and evicts */
        (void) mpn_tcache_grow(c);
    }

    while (c->entries != 0
           && (c->entries + 1 > (c->mask + 1) / 2
               || c->bytes + size > c->max_bytes))
    {
        mpn_tcache_evict(c);
    }

    copy = NULL;

    if (id_len > MPN_TCACHE_ID_INLINE) {
        copy = malloc(id_len + 1);
        if (copy == NULL) {
            return;               /* verified, only not remembered */
        }

        memcpy(copy, id, id_len);
        copy[id_len] = '\0';
    }

    for (i = home & c->mask;
         c->slots[i].scope != NULL;
         i = (i + 1) & c->mask)
    {
        /* void */
    }

    e = &c->slots[i];

    e->tag[0] = tag[0];
    e->tag[1] = tag[1];
    e->scope = scope;
    e->exp = exp;
    e->nbf = nbf;
    e->home = home;
    e->id_len = (uint8_t) id_len;
    e->used = 0;

    if (copy != NULL) {
        memcpy(e->id, &copy, sizeof(char *));

    } else {
        memcpy(e->id, id, id_len);
        e->id[id_len] = '\0';
    }

    c->entries++;
    c->bytes += size;
}


/* frees the slot and moves back the entries after it that may sit
 * nearer their first slot, so that no search stops short of them */

static void
mpn_tcache_delete(mpn_tcache_t *c, mpn_tcache_entry_t *e)
{
    size_t  i, j, k;

    if (e->id_len > MPN_TCACHE_ID_INLINE) {
        free((char *) mpn_tcache_id(e));
    }

    c->entries--;
    c->bytes -= mpn_tcache_entry_size(e->id_len);

    i = e - c->slots;

    for (j = (i + 1) & c->mask;
         c->slots[j].scope != NULL;
         j = (j + 1) & c->mask)
    {
        k = c->slots[j].home & c->mask;

        /* the entry at j stays unless its first slot is outside (i, j] */

        if ((j > i) ? (k <= i || k > j) : (k <= i && k > j)) {
            c->slots[i] = c->slots[j];
            i = j;
        }
    }

    memset(&c->slots[i], 0, MPN_TCACHE_SLOT);
}


/* CLOCK: the first entry not hit since the hand last passed it goes; the
 * hand unmarks those it passes.  Called with at least one entry. */

static void
mpn_tcache_evict(mpn_tcache_t *c)
{
    mpn_tcache_entry_t  *e;

    for ( ;; ) {
        e = &c->slots[c->hand];
        c->hand = (c->hand + 1) & c->mask;

        if (e->scope == NULL) {
            continue;
        }

        if (e->used) {
            e->used = 0;
            continue;
        }

        mpn_tcache_delete(c, e);
        return;
    }
}


static const char *
mpn_tcache_id(const mpn_tcache_entry_t *e)
{
    char  *p;

    if (e->id_len <= MPN_TCACHE_ID_INLINE) {
        return e->id;
    }

    memcpy(&p, e->id, sizeof(char *));

    return p;
}
