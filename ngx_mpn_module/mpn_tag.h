/*
 * A 128-bit keyed tag of a byte string that stands for the string itself
 * (the token cache's key): a pseudorandom function of the whole string
 * under a random key, so that without the key nobody can make another
 * string with the same tag.
 *
 * With the CPU's carry-less multiply (x86-64 PCLMULQDQ) the string is
 * hashed with GHASH (GCM's almost-universal hash, H random) and the
 * 16-byte result goes through SipHash-2-4-128: universal hash then PRF,
 * several times faster than SipHash over the whole string.  Elsewhere
 * the tag is SipHash-2-4-128 of the string.  Tags are compared only
 * within one process.
 */

#ifndef MPN_TAG_H
#define MPN_TAG_H

#include <stddef.h>
#include <stdint.h>

#include "mpn_siphash.h"


#define MPN_TAG_POWERS  8

typedef struct {
    /* H^1..H^8 in the byte-reflected form the multiply works on */
    uint64_t           h[MPN_TAG_POWERS][2] __attribute__((aligned(16)));
    mpn_siphash_key_t  prf;
    int                clmul;            /* the GHASH path is available */
} mpn_tag_key_t;


/* a fresh random key (RAND_bytes): 0, or -1 on failure */
int mpn_tag_key_init(mpn_tag_key_t *key);

void mpn_tag(const mpn_tag_key_t *key, const void *data, size_t len,
    uint64_t out[2]);

/*
 * For tests: GCM's GHASH of data (as GCM's additional data, with its
 * length block) under the hash key H (E_K(0^128) in GCM), as 16 bytes;
 * -1 without the carry-less multiply.
 */
int mpn_tag_ghash(const uint8_t H[16], const void *data, size_t len,
    uint8_t out[16]);

#endif /* MPN_TAG_H */
