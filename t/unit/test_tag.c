/*
 * mpn_tag: its GHASH is GCM's (OpenSSL's CRYPTO_gcm128 is the reference),
 * for every length around the 16-byte blocks and the eight-block groups;
 * the tag depends on every byte and on the key.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/modes.h>
#include <openssl/rand.h>

#include "mpn_tag.h"


static void
test_block(const unsigned char in[16], unsigned char out[16],
    const void *key)
{
    int  n;

    assert_int_equal(EVP_EncryptUpdate((EVP_CIPHER_CTX *) key, out, &n, in,
                                       16), 1);
}


/* GHASH(A) of GCM with additional data A and no text: the tag of a GCM
 * with A, less E_K(J0) */

static void
reference_ghash(EVP_CIPHER_CTX *aes, GCM128_CONTEXT *gcm, const uint8_t *a,
    size_t len, uint8_t out[16])
{
    int            i;
    unsigned char  iv[12], j0[16], ek0[16];

    memset(iv, 0, sizeof(iv));
    memset(j0, 0, sizeof(j0));
    j0[15] = 1;
    test_block(j0, ek0, aes);

    CRYPTO_gcm128_setiv(gcm, iv, sizeof(iv));
    assert_int_equal(CRYPTO_gcm128_aad(gcm, a, len), 0);
    CRYPTO_gcm128_tag(gcm, out, 16);

    for (i = 0; i < 16; i++) {
        out[i] ^= ek0[i];
    }
}


static void
test_ghash_is_gcms(void **state)
{
    int              trial, n;
    size_t           len;
    uint8_t          key[16], H[16], data[400], want[16], got[16];
    GCM128_CONTEXT  *gcm;
    EVP_CIPHER_CTX  *aes;

    (void) state;

    memset(H, 0, sizeof(H));
    if (mpn_tag_ghash(H, "", 0, got) != 0) {
        skip();                   /* no carry-less multiply: SipHash only */
    }

    for (trial = 0; trial < 20; trial++) {
        assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
        assert_int_equal(RAND_bytes(data, sizeof(data)), 1);

        aes = EVP_CIPHER_CTX_new();
        assert_non_null(aes);
        assert_int_equal(EVP_EncryptInit_ex(aes, EVP_aes_128_ecb(), NULL,
                                            key, NULL), 1);
        EVP_CIPHER_CTX_set_padding(aes, 0);

        memset(H, 0, sizeof(H));
        assert_int_equal(EVP_EncryptUpdate(aes, H, &n, H, 16), 1);

        gcm = CRYPTO_gcm128_new(aes, test_block);
        assert_non_null(gcm);

        /* 0..400 bytes: partial blocks, 1-7 blocks, one and several
         * groups of eight, groups plus a rest */
        for (len = 0; len <= sizeof(data); len++) {
            reference_ghash(aes, gcm, data, len, want);
            assert_int_equal(mpn_tag_ghash(H, data, len, got), 0);
            assert_memory_equal(got, want, 16);
        }

        CRYPTO_gcm128_release(gcm);
        EVP_CIPHER_CTX_free(aes);
    }
}


static void
test_tag_depends_on_every_byte_and_the_key(void **state)
{
    size_t          i;
    uint8_t         data[300];
    uint64_t        t0[2], t1[2];
    mpn_tag_key_t   k1, k2;

    (void) state;

    assert_int_equal(mpn_tag_key_init(&k1), 0);
    assert_int_equal(mpn_tag_key_init(&k2), 0);
    memset(data, 'a', sizeof(data));

    mpn_tag(&k1, data, sizeof(data), t0);

    mpn_tag(&k1, data, sizeof(data), t1);
    assert_memory_equal(t0, t1, sizeof(t0));

    mpn_tag(&k2, data, sizeof(data), t1);
    assert_memory_not_equal(t0, t1, sizeof(t0));

    for (i = 0; i < sizeof(data); i++) {
        data[i] = 'b';
        mpn_tag(&k1, data, sizeof(data), t1);
        assert_memory_not_equal(t0, t1, sizeof(t0));
        data[i] = 'a';
    }

    /* a zero byte more is another string (the length is hashed too) */
    memset(data, 0, sizeof(data));
    mpn_tag(&k1, data, 31, t0);
    mpn_tag(&k1, data, 32, t1);
    assert_memory_not_equal(t0, t1, sizeof(t0));

    /* without the carry-less multiply, SipHash-2-4-128 of the string */
    k1.clmul = 0;
    mpn_tag(&k1, data, 32, t0);
    mpn_siphash128(&k1.prf, data, 32, t1);
    assert_memory_equal(t0, t1, sizeof(t0));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_ghash_is_gcms),
        cmocka_unit_test(test_tag_depends_on_every_byte_and_the_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
