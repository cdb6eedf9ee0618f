/*
 * SipHash-1-3: one compression round per 8-byte word, three finalization
 * rounds, as in the reference implementation (and in Python and Rust's
 * hash tables); SipHash-2-4-128: two and four, and a second output word,
 * as the reference's 128-bit mode.  Words are read little-endian, as the
 * reference does on the hosts nginx runs on here.
 */

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "mpn_siphash.h"


#define MPN_ROTL(x, b)  (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

#define MPN_SIPROUND                                                          \
    v0 += v1; v1 = MPN_ROTL(v1, 13); v1 ^= v0; v0 = MPN_ROTL(v0, 32);         \
    v2 += v3; v3 = MPN_ROTL(v3, 16); v3 ^= v2;                                \
    v0 += v3; v3 = MPN_ROTL(v3, 21); v3 ^= v0;                                \
    v2 += v1; v1 = MPN_ROTL(v1, 17); v1 ^= v2; v2 = MPN_ROTL(v2, 32)


int
mpn_siphash_key_init(mpn_siphash_key_t *key)
{
    unsigned char  buf[16];

    if (RAND_bytes(buf, sizeof(buf)) != 1) {
        return -1;
    }

    memcpy(&key->k0, buf, 8);
    memcpy(&key->k1, buf + 8, 8);
    OPENSSL_cleanse(buf, sizeof(buf));

    return 0;
}


/* the last word: the bytes after the whole words, and the length on top */

static uint64_t
mpn_siphash_last(const uint8_t *p, size_t len)
{
    uint64_t  b;

    b = (uint64_t) len << 56;

    switch (len & 7) {
    case 7: b |= (uint64_t) p[6] << 48;  /* fall through */
    case 6: b |= (uint64_t) p[5] << 40;  /* fall through */
    case 5: b |= (uint64_t) p[4] << 32;  /* fall through */
    case 4: b |= (uint64_t) p[3] << 24;  /* fall through */
    case 3: b |= (uint64_t) p[2] << 16;  /* fall through */
    case 2: b |= (uint64_t) p[1] << 8;   /* fall through */
    case 1: b |= (uint64_t) p[0];        /* fall through */
    default: break;
    }

    return b;
}


uint64_t
mpn_siphash(const mpn_siphash_key_t *key, const void *data, size_t len)
{
    size_t          i;
    uint64_t        v0, v1, v2, v3, m, b;
    const uint8_t  *p;

    v0 = key->k0 ^ 0x736f6d6570736575ULL;
    v1 = key->k1 ^ 0x646f72616e646f6dULL;
    v2 = key->k0 ^ 0x6c7967656e657261ULL;
    v3 = key->k1 ^ 0x7465646279746573ULL;

    p = data;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&m, p + i, 8);
        v3 ^= m;
        MPN_SIPROUND;
        v0 ^= m;
    }

    b = mpn_siphash_last(p + i, len);

    v3 ^= b;
    MPN_SIPROUND;
    v0 ^= b;

    v2 ^= 0xff;
    MPN_SIPROUND;
    MPN_SIPROUND;
    MPN_SIPROUND;

    return v0 ^ v1 ^ v2 ^ v3;
}


void
mpn_siphash128(const mpn_siphash_key_t *key, const void *data, size_t len,
    uint64_t out[2])
{
    size_t          i;
    uint64_t        v0, v1, v2, v3, m, b;
    const uint8_t  *p;

    v0 = key->k0 ^ 0x736f6d6570736575ULL;
    v1 = key->k1 ^ 0x646f72616e646f6dULL ^ 0xee;
    v2 = key->k0 ^ 0x6c7967656e657261ULL;
    v3 = key->k1 ^ 0x7465646279746573ULL;

    p = data;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&m, p + i, 8);
        v3 ^= m;
        MPN_SIPROUND;
        MPN_SIPROUND;
        v0 ^= m;
    }

    b = mpn_siphash_last(p + i, len);

    v3 ^= b;
    MPN_SIPROUND;
    MPN_SIPROUND;
    v0 ^= b;

    v2 ^= 0xee;
    MPN_SIPROUND;
    MPN_SIPROUND;
    MPN_SIPROUND;
    MPN_SIPROUND;
    out[0] = v0 ^ v1 ^ v2 ^ v3;

    v1 ^= 0xdd;
    MPN_SIPROUND;
    MPN_SIPROUND;
    MPN_SIPROUND;
    MPN_SIPROUND;
    out[1] = v0 ^ v1 ^ v2 ^ v3;
}
