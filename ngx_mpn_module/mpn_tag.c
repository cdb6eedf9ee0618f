/*
 * mpn_tag: GHASH with PCLMULQDQ (the reflected-operand method of Intel's
 * "Carry-Less Multiplication and Its Usage for Computing the GCM Mode":
 * byte-reversed blocks, Karatsuba, eight blocks per reduction), then
 * SipHash-2-4-128 of the result.
 */

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "mpn_tag.h"


#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define MPN_TAG_CLMUL  1

#include <immintrin.h>

#define MPN_TAG_TARGET  __attribute__((target("pclmul,ssse3")))


MPN_TAG_TARGET static __m128i mpn_tag_bswap(__m128i x);
MPN_TAG_TARGET static void mpn_tag_clmul(__m128i a, __m128i b,
    __m128i *lo, __m128i *hi);
MPN_TAG_TARGET static __m128i mpn_tag_reduce(__m128i lo, __m128i hi);
MPN_TAG_TARGET static void mpn_tag_powers(const uint8_t H[16],
    uint64_t h[MPN_TAG_POWERS][2]);
MPN_TAG_TARGET static __m128i mpn_tag_blocks(
    const uint64_t h[MPN_TAG_POWERS][2], __m128i y, const __m128i *x,
    size_t n);
MPN_TAG_TARGET static void mpn_tag_ghash_core(
    const uint64_t h[MPN_TAG_POWERS][2], const uint8_t *p, size_t len,
    uint8_t out[16]);

#endif


int
mpn_tag_key_init(mpn_tag_key_t *key)
{
    uint8_t  H[16];

    memset(key, 0, sizeof(mpn_tag_key_t));

    if (mpn_siphash_key_init(&key->prf) != 0) {
        return -1;
    }

#ifdef MPN_TAG_CLMUL

    __builtin_cpu_init();

    if (__builtin_cpu_supports("pclmul") && __builtin_cpu_supports("ssse3")) {

        if (RAND_bytes(H, sizeof(H)) != 1) {
            return -1;
        }

        mpn_tag_powers(H, key->h);
        OPENSSL_cleanse(H, sizeof(H));

        key->clmul = 1;
    }

#else
    (void) H;
#endif

    return 0;
}


void
mpn_tag(const mpn_tag_key_t *key, const void *data, size_t len,
    uint64_t out[2])
{
#ifdef MPN_TAG_CLMUL
    uint8_t  y[16];

    if (key->clmul) {
        mpn_tag_ghash_core(key->h, data, len, y);
        mpn_siphash128(&key->prf, y, sizeof(y), out);
        return;
    }
#endif

    mpn_siphash128(&key->prf, data, len, out);
}


int
mpn_tag_ghash(const uint8_t H[16], const void *data, size_t len,
    uint8_t out[16])
{
#ifdef MPN_TAG_CLMUL
    uint64_t  h[MPN_TAG_POWERS][2] __attribute__((aligned(16)));

    __builtin_cpu_init();

    if (__builtin_cpu_supports("pclmul") && __builtin_cpu_supports("ssse3")) {
        mpn_tag_powers(H, h);
        mpn_tag_ghash_core(h, data, len, out);
        return 0;
    }
#else
    (void) H;
    (void) data;
    (void) len;
    (void) out;
#endif

    return -1;
}


#ifdef MPN_TAG_CLMUL

/* GCM's bit order, reflected: byte-reversed blocks multiply as integers */

MPN_TAG_TARGET static __m128i
mpn_tag_bswap(__m128i x)
{
    return _mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                            10, 11, 12, 13, 14, 15));
}


/* the 256-bit carry-less product of a and b, as lo and hi */

MPN_TAG_TARGET static void
mpn_tag_clmul(__m128i a, __m128i b, __m128i *lo, __m128i *hi)
{
    __m128i  t0, t1, t2, t3;

    t0 = _mm_clmulepi64_si128(a, b, 0x00);
    t1 = _mm_clmulepi64_si128(a, b, 0x10);
    t2 = _mm_clmulepi64_si128(a, b, 0x01);
    t3 = _mm_clmulepi64_si128(a, b, 0x11);

    t1 = _mm_xor_si128(t1, t2);

    *lo = _mm_xor_si128(t0, _mm_slli_si128(t1, 8));
    *hi = _mm_xor_si128(t3, _mm_srli_si128(t1, 8));
}


/* a product (or a sum of products) shifted left by one bit, for the
 * reflection, and reduced modulo x^128 + x^7 + x^2 + x + 1 */

MPN_TAG_TARGET static __m128i
mpn_tag_reduce(__m128i lo, __m128i hi)
{
    __m128i  a, b, c;

    a = _mm_srli_epi32(lo, 31);
    b = _mm_srli_epi32(hi, 31);
    lo = _mm_slli_epi32(lo, 1);
    hi = _mm_slli_epi32(hi, 1);
    c = _mm_srli_si128(a, 12);
    b = _mm_slli_si128(b, 4);
    a = _mm_slli_si128(a, 4);
    lo = _mm_or_si128(lo, a);
    hi = _mm_or_si128(hi, b);
    hi = _mm_or_si128(hi, c);

    a = _mm_slli_epi32(lo, 31);
    b = _mm_slli_epi32(lo, 30);
    c = _mm_slli_epi32(lo, 25);
    a = _mm_xor_si128(a, b);
    a = _mm_xor_si128(a, c);
    b = _mm_srli_si128(a, 4);
    a = _mm_slli_si128(a, 12);
    lo = _mm_xor_si128(lo, a);

    a = _mm_srli_epi32(lo, 1);
    c = _mm_srli_epi32(lo, 2);
    a = _mm_xor_si128(a, c);
    c = _mm_srli_epi32(lo, 7);
    a = _mm_xor_si128(a, c);
    a = _mm_xor_si128(a, b);
    lo = _mm_xor_si128(lo, a);

    return _mm_xor_si128(hi, lo);
}


MPN_TAG_TARGET static void
mpn_tag_powers(const uint8_t H[16], uint64_t h[MPN_TAG_POWERS][2])
{
    int      i;
    __m128i  h1, hi, lo, up;

    h1 = mpn_tag_bswap(_mm_loadu_si128((const __m128i *) H));
    _mm_store_si128((__m128i *) h[0], h1);

    for (i = 1; i < MPN_TAG_POWERS; i++) {
        mpn_tag_clmul(_mm_load_si128((const __m128i *) h[i - 1]), h1, &lo,
                      &hi);
        up = mpn_tag_reduce(lo, hi);
        _mm_store_si128((__m128i *) h[i], up);
    }
}


/* y = (y + x[0]) H^n + x[1] H^(n-1) + ... + x[n-1] H, n <= 8: three
 * multiplies a block (Karatsuba), one reduction for all of them */

MPN_TAG_TARGET static __m128i
mpn_tag_blocks(const uint64_t h[MPN_TAG_POWERS][2], __m128i y,
    const __m128i *x, size_t n)
{
    size_t   i;
    __m128i  a, b, lo, hi, mid;

    lo = _mm_setzero_si128();
    hi = _mm_setzero_si128();
    mid = _mm_setzero_si128();

    for (i = 0; i < n; i++) {
        a = (i == 0) ? _mm_xor_si128(y, x[0]) : x[i];
        b = _mm_load_si128((const __m128i *) h[n - 1 - i]);

        lo = _mm_xor_si128(lo, _mm_clmulepi64_si128(a, b, 0x00));
        hi = _mm_xor_si128(hi, _mm_clmulepi64_si128(a, b, 0x11));
        mid = _mm_xor_si128(mid, _mm_clmulepi64_si128(
                  _mm_xor_si128(a, _mm_shuffle_epi32(a, 0x4e)),
                  _mm_xor_si128(b, _mm_shuffle_epi32(b, 0x4e)), 0x00));
    }

    mid = _mm_xor_si128(mid, _mm_xor_si128(lo, hi));
    lo = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
    hi = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));

    return mpn_tag_reduce(lo, hi);
}


/* GHASH of p as GCM's additional data: its blocks, the last one padded
 * with zeros, then the length block */

MPN_TAG_TARGET static void
mpn_tag_ghash_core(const uint64_t h[MPN_TAG_POWERS][2], const uint8_t *p,
    size_t len, uint8_t out[16])
{
    size_t    i, n, total;
    uint8_t   last[16];
    uint64_t  bits;
    __m128i   y, x[MPN_TAG_POWERS + 2];

    y = _mm_setzero_si128();
    total = len;

    for ( /* void */ ; len >= 16 * MPN_TAG_POWERS;
         p += 16 * MPN_TAG_POWERS, len -= 16 * MPN_TAG_POWERS)
    {
        for (i = 0; i < MPN_TAG_POWERS; i++) {
            x[i] = mpn_tag_bswap(
                       _mm_loadu_si128((const __m128i *) (p + 16 * i)));
        }

        y = mpn_tag_blocks(h, y, x, MPN_TAG_POWERS);
    }

    /* what is left: up to 7 whole blocks, a partial one, the length */

    for (n = 0; len >= 16; n++, p += 16, len -= 16) {
        x[n] = mpn_tag_bswap(_mm_loadu_si128((const __m128i *) p));
    }

    if (len != 0) {
        memset(last, 0, sizeof(last));
        memcpy(last, p, len);
        x[n++] = mpn_tag_bswap(_mm_loadu_si128((const __m128i *) last));
    }

    /* the length in bits, big-endian, then 0 for GCM's ciphertext */
    bits = (uint64_t) total * 8;

    for (i = 0; i < 8; i++) {
        last[i] = (uint8_t) (bits >> (56 - 8 * i));
        last[8 + i] = 0;
    }

    x[n++] = mpn_tag_bswap(_mm_loadu_si128((const __m128i *) last));

    if (n > MPN_TAG_POWERS) {
        y = mpn_tag_blocks(h, y, x, MPN_TAG_POWERS);
        y = mpn_tag_blocks(h, y, x + MPN_TAG_POWERS, n - MPN_TAG_POWERS);

    } else {
        y = mpn_tag_blocks(h, y, x, n);
    }

    _mm_storeu_si128((__m128i *) out, mpn_tag_bswap(y));
}

#endif
