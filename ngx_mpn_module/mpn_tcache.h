/*
 * A bounded cache of verified tokens, so that a token seen again costs a
 * hash and a compare instead of a signature check (Envoy's jwt_authn
 * jwt_cache_config is the model).  No nginx dependency; one cache per
 * nginx worker, used by one thread.
 *
 * An entry is keyed by the whole token as the client sent it, through a
 * 128-bit tag of all its bytes under the cache's random key (mpn_tag.h, a
 * pseudorandom function: without the key nobody can make another token
 * with the same tag; docs/contract-notes.md), and by a scope (which
 * verifier accepted it: the key set and the claim settings).  It holds
 * what the token proved: the partner id, exp and nbf, and no copy of the
 * token.  exp and nbf are checked against the clock at every use.  Only
 * tokens that verified are stored.
 *
 * The entries are 64-byte slots of one open-addressed table (linear
 * probing from a slot picked by a keyed hash of the token's last bytes, so
 * a hit reads one cache line, fetched while the whole token is hashed),
 * grown by doubling up to the size budget and kept at most half full.
 * When full, CLOCK picks the entry to drop: a hit only marks its own slot
 * as used, and the hand gives marked entries a second chance.
 */

#ifndef MPN_TCACHE_H
#define MPN_TCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "mpn_token.h"


typedef struct mpn_tcache_s  mpn_tcache_t;


/* A cache whose table and partner ids take at most max_bytes; NULL when
 * out of memory.  The hash key comes from OpenSSL's RAND_bytes. */
mpn_tcache_t *mpn_tcache_create(size_t max_bytes);

void mpn_tcache_free(mpn_tcache_t *c);

/* drops every entry (key sets changed); the counters stay */
void mpn_tcache_clear(mpn_tcache_t *c);

/* entries and bytes in use, and the byte budget */
void mpn_tcache_usage(const mpn_tcache_t *c, size_t *entries, size_t *bytes,
    size_t *max_bytes);

/* the bytes one entry for a partner id of id_len bytes counts against
 * max_bytes: two slots (the table is at most half full), and the id when
 * it is too long for its slot */
size_t mpn_tcache_entry_size(size_t id_len);

/* the slot where the search for a token starts (for tests: tokens that
 * start at the same slot) */
size_t mpn_tcache_slot(const mpn_tcache_t *c, const char *tok, size_t len);

/*
 * mpn_token_verify through the cache: the same answers for the same
 * arguments, the same *why.  scope names the verifier (ks and opts'
 * issuer, audience and claim; NULL: not cached); an entry made under one
 * scope never answers for another.  *hit is 1 when the cache answered (the token was
 * found and its times were checked), else 0.  A hit whose exp has passed
 * answers MPN_TOKEN_EXPIRED and drops the entry.
 */
int mpn_tcache_verify(mpn_tcache_t *c, const void *scope,
    const mpn_keyset_t *ks, const char *tok, size_t len, int64_t now,
    const mpn_token_opts_t *opts, char *id, size_t *id_len, const char **why,
    int *hit);

#endif /* MPN_TCACHE_H */
