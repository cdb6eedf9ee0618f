/*
 * SipHash-1-3 (Aumasson and Bernstein): a keyed hash for hash tables whose
 * keys come from clients (partner ids, tokens), so that nobody who does
 * not know the key can choose keys that fall into one bucket.
 */

#ifndef MPN_SIPHASH_H
#define MPN_SIPHASH_H

#include <stddef.h>
#include <stdint.h>


typedef struct {
    uint64_t  k0;
    uint64_t  k1;
} mpn_siphash_key_t;


/* a fresh random key from OpenSSL's RAND_bytes: 0, or -1 on failure */
int mpn_siphash_key_init(mpn_siphash_key_t *key);

uint64_t mpn_siphash(const mpn_siphash_key_t *key, const void *data,
    size_t len);

#endif /* MPN_SIPHASH_H */
