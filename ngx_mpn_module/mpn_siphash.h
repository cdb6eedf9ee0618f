/*
 * SipHash (Aumasson and Bernstein), keyed hashes of what clients send:
 * SipHash-1-3 for hash tables (partner ids), so that nobody who does not
 * know the key can choose keys that fall into one bucket; SipHash-2-4 with
 * a 128-bit output, the designers' pseudorandom function, where the hash
 * stands for the bytes themselves (the token cache's entries).
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

/* SipHash-1-3, 64 bits */
uint64_t mpn_siphash(const mpn_siphash_key_t *key, const void *data,
    size_t len);

/* SipHash-2-4, 128 bits: out[0] and out[1] are the reference's output
 * bytes 0-7 and 8-15 read little-endian */
void mpn_siphash128(const mpn_siphash_key_t *key, const void *data,
    size_t len, uint64_t out[2]);

#endif /* MPN_SIPHASH_H */
