/*
 * The cache of verified tokens: a chained hash table over a doubly linked
 * LRU list, one malloc()ed block per entry holding the token's bytes.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "mpn_tcache.h"


typedef struct mpn_tcache_entry_s  mpn_tcache_entry_t;

struct mpn_tcache_entry_s {
    mpn_tcache_entry_t  *next;           /* in its bucket */
    mpn_tcache_entry_t  *newer;          /* LRU list */
    mpn_tcache_entry_t  *older;
    uint64_t             hash;
    const void          *scope;
    int64_t              exp;
    int64_t              nbf;
    size_t               len;            /* of the token */
    size_t               id_len;
    char                 id[MPN_TOKEN_ID_MAX + 1];
    char                 token[];
};


struct mpn_tcache_s {
    mpn_tcache_entry_t **buckets;
    size_t               mask;           /* buckets - 1, a power of two */
    mpn_tcache_entry_t  *newest;
    mpn_tcache_entry_t  *oldest;
    size_t               entries;
    size_t               bytes;
    size_t               max_bytes;
    uint64_t             k0, k1;         /* the SipHash key */
};


/* a bucket per this many bytes of budget: about one short token each */
#define MPN_TCACHE_BYTES_PER_BUCKET  256
#define MPN_TCACHE_MIN_BUCKETS       64


static uint64_t mpn_tcache_hash(const mpn_tcache_t *c, const void *scope,
    const char *tok, size_t len);
static mpn_tcache_entry_t *mpn_tcache_find(mpn_tcache_t *c, uint64_t hash,
    const void *scope, const char *tok, size_t len);
static void mpn_tcache_put(mpn_tcache_t *c, uint64_t hash, const void *scope,
    const char *tok, size_t len, const char *id, size_t id_len, int64_t exp,
    int64_t nbf);
static void mpn_tcache_unlink(mpn_tcache_t *c, mpn_tcache_entry_t *e);
static void mpn_tcache_delete(mpn_tcache_t *c, mpn_tcache_entry_t *e);
static void mpn_tcache_touch(mpn_tcache_t *c, mpn_tcache_entry_t *e);


mpn_tcache_t *
mpn_tcache_create(size_t max_bytes)
{
    size_t          n;
    mpn_tcache_t   *c;
    unsigned char   key[16];

    c = calloc(1, sizeof(mpn_tcache_t));
    if (c == NULL) {
        return NULL;
    }

    n = MPN_TCACHE_MIN_BUCKETS;

    while (n < max_bytes / MPN_TCACHE_BYTES_PER_BUCKET && n < (1UL << 30)) {
        n <<= 1;
    }

    c->buckets = calloc(n, sizeof(mpn_tcache_entry_t *));
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }

    if (RAND_bytes(key, sizeof(key)) != 1) {
        free(c->buckets);
        free(c);
        return NULL;
    }

    memcpy(&c->k0, key, 8);
    memcpy(&c->k1, key + 8, 8);
    OPENSSL_cleanse(key, sizeof(key));

    c->mask = n - 1;
    c->max_bytes = max_bytes;

    return c;
}


void
mpn_tcache_free(mpn_tcache_t *c)
{
    if (c == NULL) {
        return;
    }

    mpn_tcache_clear(c);
    free(c->buckets);
    free(c);
}


void
mpn_tcache_clear(mpn_tcache_t *c)
{
    while (c->oldest != NULL) {
        mpn_tcache_delete(c, c->oldest);
    }
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
mpn_tcache_entry_size(size_t len)
{
    return sizeof(mpn_tcache_entry_t) + len;
}


int
mpn_tcache_verify(mpn_tcache_t *c, const void *scope, const mpn_keyset_t *ks,
    const char *tok, size_t len, int64_t now, const mpn_token_opts_t *opts,
    char *id, size_t *id_len, const char **why, int *hit)
{
    int                  rc;
    int64_t              exp, nbf;
    uint64_t             hash;
    mpn_tcache_entry_t  *e;

    *hit = 0;

    if (c == NULL || len == 0 || len > MPN_TOKEN_MAX) {
        return mpn_token_verify(ks, tok, len, now, opts, id, id_len, why);
    }

    hash = mpn_tcache_hash(c, scope, tok, len);

    e = mpn_tcache_find(c, hash, scope, tok, len);

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

        mpn_tcache_touch(c, e);

        memcpy(id, e->id, e->id_len + 1);
        *id_len = e->id_len;

        return MPN_TOKEN_OK;
    }

    rc = mpn_token_verify_times(ks, tok, len, now, opts, id, id_len, &exp,
                                &nbf, why);

    if (rc == MPN_TOKEN_OK) {
        mpn_tcache_put(c, hash, scope, tok, len, id, *id_len, exp, nbf);
    }

    return rc;
}


static mpn_tcache_entry_t *
mpn_tcache_find(mpn_tcache_t *c, uint64_t hash, const void *scope,
    const char *tok, size_t len)
{
    mpn_tcache_entry_t  *e;

    for (e = c->buckets[hash & c->mask]; e != NULL; e = e->next) {
        if (e->hash == hash && e->len == len && e->scope == scope
            && memcmp(e->token, tok, len) == 0)
        {
            return e;
        }
    }

    return NULL;
}


static void
mpn_tcache_put(mpn_tcache_t *c, uint64_t hash, const void *scope,
    const char *tok, size_t len, const char *id, size_t id_len, int64_t exp,
    int64_t nbf)
{
    size_t               size;
    mpn_tcache_entry_t  *e, **b;

    size = mpn_tcache_entry_size(len);

    if (size > c->max_bytes || id_len > MPN_TOKEN_ID_MAX) {
        return;
    }

    while (c->bytes + size > c->max_bytes && c->oldest != NULL) {
        mpn_tcache_delete(c, c->oldest);
    }

    e = malloc(size);
    if (e == NULL) {
        return;                   /* verified, only not remembered */
    }

    e->hash = hash;
    e->scope = scope;
    e->exp = exp;
    e->nbf = nbf;
    e->len = len;
    e->id_len = id_len;
    memcpy(e->id, id, id_len);
    e->id[id_len] = '\0';
    memcpy(e->token, tok, len);

    b = &c->buckets[hash & c->mask];
    e->next = *b;
    *b = e;

    e->older = c->newest;
    e->newer = NULL;

    if (c->newest != NULL) {
        c->newest->newer = e;

    } else {
        c->oldest = e;
    }

    c->newest = e;

    c->entries++;
    c->bytes += size;
}


/* out of the LRU list only */

static void
mpn_tcache_unlink(mpn_tcache_t *c, mpn_tcache_entry_t *e)
{
    if (e->newer != NULL) {
        e->newer->older = e->older;

    } else {
        c->newest = e->older;
    }

    if (e->older != NULL) {
        e->older->newer = e->newer;

    } else {
        c->oldest = e->newer;
    }
}


static void
mpn_tcache_delete(mpn_tcache_t *c, mpn_tcache_entry_t *e)
{
    mpn_tcache_entry_t  **p;

    for (p = &c->buckets[e->hash & c->mask]; *p != e; p = &(*p)->next) {
        /* void */
    }

    *p = e->next;

    mpn_tcache_unlink(c, e);

    c->entries--;
    c->bytes -= mpn_tcache_entry_size(e->len);

    /* a bearer token is a credential: leave no copy in freed memory */
    OPENSSL_cleanse(e->token, e->len);
    free(e);
}


static void
mpn_tcache_touch(mpn_tcache_t *c, mpn_tcache_entry_t *e)
{
    if (c->newest == e) {
        return;
    }

    mpn_tcache_unlink(c, e);

    e->older = c->newest;
    e->newer = NULL;
    c->newest->newer = e;
    c->newest = e;
}


/*
 * SipHash-1-3 (Aumasson and Bernstein) of the scope pointer and the token:
 * a keyed hash, so that nobody can choose tokens that fall into one bucket.
 */

#define MPN_ROTL(x, b)  (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

#define MPN_SIPROUND                                                          \
    v0 += v1; v1 = MPN_ROTL(v1, 13); v1 ^= v0; v0 = MPN_ROTL(v0, 32);         \
    v2 += v3; v3 = MPN_ROTL(v3, 16); v3 ^= v2;                                \
    v0 += v3; v3 = MPN_ROTL(v3, 21); v3 ^= v0;                                \
    v2 += v1; v1 = MPN_ROTL(v1, 17); v1 ^= v2; v2 = MPN_ROTL(v2, 32)


static uint64_t
mpn_tcache_hash(const mpn_tcache_t *c, const void *scope, const char *tok,
    size_t len)
{
    size_t          i, left;
    uint64_t        v0, v1, v2, v3, m, b;
    uintptr_t       s;
    const uint8_t  *p;

    v0 = c->k0 ^ 0x736f6d6570736575ULL;
    v1 = c->k1 ^ 0x646f72616e646f6dULL;
    v2 = c->k0 ^ 0x6c7967656e657261ULL;
    v3 = c->k1 ^ 0x7465646279746573ULL;

    /* the scope first, as one word */

    s = (uintptr_t) scope;
    m = (uint64_t) s;
    v3 ^= m;
    MPN_SIPROUND;
    v0 ^= m;

    p = (const uint8_t *) tok;
    left = len & 7;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&m, p + i, 8);        /* little-endian hosts: as specified */
        v3 ^= m;
        MPN_SIPROUND;
        v0 ^= m;
    }

    b = (uint64_t) (len + 8) << 56;

    switch (left) {
    case 7: b |= (uint64_t) p[i + 6] << 48;  /* fall through */
    case 6: b |= (uint64_t) p[i + 5] << 40;  /* fall through */
    case 5: b |= (uint64_t) p[i + 4] << 32;  /* fall through */
    case 4: b |= (uint64_t) p[i + 3] << 24;  /* fall through */
    case 3: b |= (uint64_t) p[i + 2] << 16;  /* fall through */
    case 2: b |= (uint64_t) p[i + 1] << 8;   /* fall through */
    case 1: b |= (uint64_t) p[i];            /* fall through */
    default: break;
    }

    v3 ^= b;
    MPN_SIPROUND;
    v0 ^= b;

    v2 ^= 0xff;
    MPN_SIPROUND;
    MPN_SIPROUND;
    MPN_SIPROUND;

    return v0 ^ v1 ^ v2 ^ v3;
}
