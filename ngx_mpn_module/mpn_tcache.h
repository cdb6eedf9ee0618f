/*
 * A bounded cache of verified tokens, so that a token seen again costs a
 * hash and a compare instead of a signature check (Envoy's jwt_authn
 * jwt_cache_config is the model).  No nginx dependency; one cache per
 * nginx worker, used by one thread.
 *
 * An entry is keyed by the whole token as the client sent it and by a
 * scope (which verifier accepted it: the key set and the claim settings);
 * it holds what the token proved: the partner id, exp and nbf.  exp and
 * nbf are checked against the clock at every use.  Only tokens that
 * verified are stored.  The hash (mpn_siphash.h, under a random key) picks
 * the bucket; the token's bytes are compared in full.  The least recently
 * used entries go when the byte budget is spent.
 */

#ifndef MPN_TCACHE_H
#define MPN_TCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "mpn_token.h"


typedef struct mpn_tcache_s  mpn_tcache_t;


/* A cache that holds at most max_bytes of entries (their bookkeeping and
 * their tokens) and a bucket array sized from it; NULL when out of
 * memory.  The hash key comes from OpenSSL's RAND_bytes. */
mpn_tcache_t *mpn_tcache_create(size_t max_bytes);

void mpn_tcache_free(mpn_tcache_t *c);

/* drops every entry (key sets changed); the counters stay */
void mpn_tcache_clear(mpn_tcache_t *c);

/* entries and bytes in use, and the byte budget */
void mpn_tcache_usage(const mpn_tcache_t *c, size_t *entries, size_t *bytes,
    size_t *max_bytes);

/* the bytes one entry for a token of len bytes counts against max_bytes */
size_t mpn_tcache_entry_size(size_t len);

/*
 * mpn_token_verify through the cache: the same answers for the same
 * arguments, the same *why.  scope names the verifier (ks and opts'
 * issuer, audience and claim); an entry made under one scope never
 * answers for another.  *hit is 1 when the cache answered (the token was
 * found and its times were checked), else 0.  A hit whose exp has passed
 * answers MPN_TOKEN_EXPIRED and drops the entry.
 */
int mpn_tcache_verify(mpn_tcache_t *c, const void *scope,
    const mpn_keyset_t *ks, const char *tok, size_t len, int64_t now,
    const mpn_token_opts_t *opts, char *id, size_t *id_len, const char **why,
    int *hit);

#endif /* MPN_TCACHE_H */
