/*
 * The cache of verified tokens: a chained hash table over a doubly linked
 * LRU list, one malloc()ed block per entry holding the token's bytes.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "mpn_tcache.h"
#include "mpn_siphash.h"


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
    mpn_siphash_key_t    key;
};


/* a bucket per this many bytes of budget: about one short token each */
#define MPN_TCACHE_BYTES_PER_BUCKET  256
#define MPN_TCACHE_MIN_BUCKETS       64


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
    size_t         n;
    mpn_tcache_t  *c;

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

    if (mpn_siphash_key_init(&c->key) != 0) {
        free(c->buckets);
        free(c);
        return NULL;
    }

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

    /* the scope is compared, not hashed: one token is rarely seen by two
     * verifiers */
    hash = mpn_siphash(&c->key, tok, len);

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
