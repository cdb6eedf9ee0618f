/*
 * mpn_token: JWS verification (spec section 4).  The public vectors of
 * RFC 7515 appendix A, RFC 7520 section 4 and RFC 8037 appendix A, one
 * test per attack the verifier must refuse, and a round trip for every
 * algorithm with keys made here.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/bn.h>
#include <openssl/ec.h>

#include "mpn_token.h"
#include "mpn_b64url.h"


/* RFC 7515 A.1 - A.3 expire at 1300819380 */
#define RFC_BEFORE  1300819000
#define RFC_EXP     1300819380

#define NOW         1700000000


/* RFC 7515 appendix A.1: HS256 */

#define A1_JWK                                                               \
    "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T" \
    "-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}"

#define A1_JWS                                                               \
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"                               \
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"      \
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"                                         \
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

/* the payload of A.1 - A.5 */
#define A_PAYLOAD                                                            \
    "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n"                          \
    " \"http://example.com/is_root\":true}"

/* RFC 7515 appendix A.2: RS256 (the private members are ignored) */

#define A2_JWK                                                               \
    "{\"kty\":\"RSA\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k"\
    "0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"  \
    "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rex"  \
    "MdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh"  \
    "9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAc"  \
    "DTW9gb54h4FRWyuXpoQ\",\"e\":\"AQAB\",\"d\":\"Eq5xpGnNCivDflJsRQBXHx1hdR" \
    "1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJ"  \
    "e46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzub"  \
    "Su3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTC"  \
    "Br6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4c"  \
    "S98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ\"}"

#define A2_JWS                                                               \
    "eyJhbGciOiJSUzI1NiJ9"                                                   \
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"      \
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"                                         \
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAu"   \
    "HIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdi"  \
    "uB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9"  \
    "383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9"  \
    "QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"

/* RFC 7515 appendix A.3: ES256 */

#define A3_JWK                                                               \
    "{\"kty\":\"EC\",\"crv\":\"P-256\","                                     \
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","                 \
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\","                 \
    "\"d\":\"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI\"}"

#define A3_JWS                                                               \
    "eyJhbGciOiJFUzI1NiJ9"                                                   \
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"      \
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"                                         \
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQ"  \
    "xfKTUJqPP3-Kg6NU1Q"

/* RFC 7515 appendix A.5: unsecured */

#define A5_JWS                                                               \
    "eyJhbGciOiJub25lIn0"                                                    \
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"      \
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ."

/* RFC 7520 section 3.4 (RSA), 3.5 (oct) and 3.2 (P-521) keys */

#define R34_JWK                                                              \
    "{\"kty\":\"RSA\",\"kid\":\"bilbo.baggins@hobbiton.example\","           \
    "\"use\":\"sig\",\"n\":\"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHL"  \
    "d4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_N"  \
    "sYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-Of"  \
    "VfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb"  \
    "9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkR"  \
    "z5iaiQkqgc5gHdrNP5zw\",\"e\":\"AQAB\"}"

#define R35_JWK                                                              \
    "{\"kty\":\"oct\",\"kid\":\"018c0ae5-4d9b-471b-bfd6-eef314bc7037\","     \
    "\"use\":\"sig\",\"alg\":\"HS256\","                                     \
    "\"k\":\"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg\"}"

#define R32_JWK                                                              \
    "{\"kty\":\"EC\",\"kid\":\"bilbo.baggins@hobbiton.example\","            \
    "\"use\":\"sig\",\"crv\":\"P-521\",\"x\":\"AHKZLLOsCOzz5cY97ewNUajB957y-" \
    "C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt\",\"y\":\"A" \
    "dymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJ"  \
    "mbnX9cwlGfP-HqHZR1\"}"

/* the payload of RFC 7520 section 4, base64url */
#define R4_PAYLOAD                                                           \
    ".SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIg"  \
    "ZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVw"   \
    "IHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJl"   \
    "IHN3ZXB0IG9mZiB0by4"

#define R41_JWS                                                              \
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBs"   \
    "ZSJ9" R4_PAYLOAD                                                        \
    ".MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM"  \
    "1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa"  \
    "-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXF"  \
    "xnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQS"  \
    "E_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg"

#define R42_JWS                                                              \
    "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBs"   \
    "ZSJ9" R4_PAYLOAD                                                        \
    ".cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tP"  \
    "id6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8bi"  \
    "iReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUe"  \
    "T3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHt"  \
    "fa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw"

#define R43_JWS                                                              \
    "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBs"   \
    "ZSJ9" R4_PAYLOAD                                                        \
    ".AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon"  \
    "7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQ"  \
    "ens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2"

#define R44_JWS                                                              \
    "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMx"   \
    "NGJjNzAzNyJ9" R4_PAYLOAD                                                \
    ".s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0"

#define R4_TEXT                                                              \
    "It\xe2\x80\x99s a dangerous business, Frodo, going out your door. "     \
    "You step onto the road, and if you don't keep your feet, there\xe2\x80" \
    "\x99s no knowing where you might be swept off to."

/* RFC 8037 appendix A.1, A.4: Ed25519 */

#define E_JWK                                                                \
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\","                                  \
    "\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\","                 \
    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}"

#define E_JWS                                                                \
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"              \
    ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsP"  \
    "t9g7sVvpAr_MuM0KAg"

#define KEYS(k)  "{\"keys\":[" k "]}"


/* keys made once for the whole run */

static struct {
    char          *priv;           /* JWKS with private members */
    char          *pub;            /* the same, public members only */
    mpn_keyset_t  *ks;             /* loaded from pub */
    char          *rsa_pem;        /* the RSA public key as PEM */
    char          *rsa_pub_jwk;    /* the RSA public JWK alone */
} K;

static char  err[256];


static mpn_keyset_t *
load(const char *json)
{
    mpn_keyset_t  *ks;

    err[0] = '\0';
    ks = mpn_keyset_load(json, strlen(json), err, sizeof(err), NULL, NULL);
    if (ks == NULL) {
        print_error("keyset: %s\n", err);
    }

    return ks;
}


static int
verify(const mpn_keyset_t *ks, const char *tok, int64_t now,
    const mpn_token_opts_t *opts, const char **why)
{
    char         id[MPN_TOKEN_ID_MAX + 1];
    size_t       id_len;
    const char  *dummy;

    return mpn_token_verify(ks, tok, strlen(tok), now, opts, id, &id_len,
                            why != NULL ? why : &dummy);
}


#define assert_bad(ks, tok, now, opts, reason)                               \
    do {                                                                     \
        const char *why_ = NULL;                                             \
        const char *reason_ = (reason);                                      \
        assert_int_equal(verify(ks, tok, now, opts, &why_), MPN_TOKEN_BAD);  \
        if (reason_ != NULL) {                                               \
            assert_string_equal(why_, reason_);                              \
        }                                                                    \
    } while (0)


static char *
b64(const void *p, size_t n)
{
    char    *s;
    size_t   len;

    s = malloc(MPN_B64URL_ENCODED_LEN(n) + 1);
    assert_non_null(s);
    len = mpn_b64url_encode(p, n, s);
    s[len] = '\0';

    return s;
}


/* "b64(header).b64(payload).sig" with sig as given */

static char *
raw_token(const char *header, const char *payload, const char *sig)
{
    char    *h, *p, *t;
    size_t   n;

    h = b64(header, strlen(header));
    p = b64(payload, strlen(payload));
    n = strlen(h) + strlen(p) + strlen(sig) + 3;
    t = malloc(n);
    assert_non_null(t);
    snprintf(t, n, "%s.%s.%s", h, p, sig);
    free(h);
    free(p);

    return t;
}


static char *
sign(const char *kid, const char *alg, const char *claims)
{
    char  *t;

    t = mpn_token_sign(K.priv, strlen(K.priv), kid, alg, claims, err,
                       sizeof(err));
    if (t == NULL) {
        print_error("sign: %s\n", err);
    }

    assert_non_null(t);

    return t;
}


static char *
sign_raw(const char *kid, const char *alg, const char *header,
    const char *payload)
{
    char  *t;

    t = mpn_token_sign_raw(K.priv, strlen(K.priv), kid, alg, header,
                           (const unsigned char *) payload, strlen(payload),
                           err, sizeof(err));
    if (t == NULL) {
        print_error("sign: %s\n", err);
    }

    assert_non_null(t);

    return t;
}


/* {"sub":"acme-1","exp":NOW+3600} and variants */

static const char *
claims(const char *extra)
{
    static char  buf[9000];

    snprintf(buf, sizeof(buf), "{\"sub\":\"acme-1\",\"exp\":%lld%s%s}",
             (long long) NOW + 3600, extra[0] != '\0' ? "," : "", extra);

    return buf;
}


static char *
strip_private(const char *jwk)
{
    char    *s;
    json_t  *o;

    o = json_loads(jwk, 0, NULL);
    assert_non_null(o);
    json_object_del(o, "d");
    json_object_del(o, "p");
    json_object_del(o, "q");
    json_object_del(o, "dp");
    json_object_del(o, "dq");
    json_object_del(o, "qi");
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);

    return s;
}


static char *
without_alg(char *jwk)
{
    char    *s;
    json_t  *o;

    o = json_loads(jwk, 0, NULL);
    assert_non_null(o);
    json_object_del(o, "alg");
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(jwk);

    return s;
}


static char *
rsa_pem(const char *jwk)
{
    char           *pem;
    long            n;
    BIO            *bio;
    BIGNUM         *bn_n, *bn_e;
    json_t         *o;
    EVP_PKEY       *pkey;
    size_t          len;
    EVP_PKEY_CTX   *ctx;
    OSSL_PARAM      params[3];
    unsigned char   nb[512], eb[8], nl[512], el[8];
    char           *data;

    /* the RSA public key of the JWK as "-----BEGIN PUBLIC KEY-----" */

    o = json_loads(jwk, 0, NULL);
    assert_non_null(o);

    assert_int_equal(mpn_b64url_decode(
        json_string_value(json_object_get(o, "n")),
        json_string_length(json_object_get(o, "n")), nb, &len), 0);
    bn_n = BN_bin2bn(nb, (int) len, NULL);
    assert_int_equal(BN_bn2nativepad(bn_n, nl, (int) len), (int) len);
    params[0] = OSSL_PARAM_construct_BN("n", nl, len);

    assert_int_equal(mpn_b64url_decode(
        json_string_value(json_object_get(o, "e")),
        json_string_length(json_object_get(o, "e")), eb, &len), 0);
    bn_e = BN_bin2bn(eb, (int) len, NULL);
    assert_int_equal(BN_bn2nativepad(bn_e, el, (int) len), (int) len);
    params[1] = OSSL_PARAM_construct_BN("e", el, len);
    params[2] = OSSL_PARAM_construct_end();

    pkey = NULL;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY,
                                       params), 1);

    bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    n = BIO_get_mem_data(bio, &data);
    pem = malloc(n + 1);
    memcpy(pem, data, n);
    pem[n] = '\0';

    BIO_free(bio);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    BN_free(bn_n);
    BN_free(bn_e);
    json_decref(o);

    return pem;
}


static int
setup(void **state)
{
    int     i;
    char   *priv[5], *pub[5];
    size_t  n;

    (void) state;

    priv[0] = without_alg(mpn_token_keygen("HS512", "oct1", err,
                                           sizeof(err)));
    priv[1] = without_alg(mpn_token_keygen("RS256", "rsa1", err,
                                           sizeof(err)));
    priv[2] = mpn_token_keygen("ES256", "ec256", err, sizeof(err));
    priv[3] = mpn_token_keygen("ES384", "ec384", err, sizeof(err));
    priv[4] = mpn_token_keygen("EdDSA", "ed1", err, sizeof(err));

    for (i = 0; i < 5; i++) {
        if (priv[i] == NULL) {
            print_error("keygen %d: %s\n", i, err);
            return -1;
        }

        pub[i] = strip_private(priv[i]);
    }

    n = 64;
    for (i = 0; i < 5; i++) {
        n += strlen(priv[i]) + 1;
    }

    K.priv = malloc(n);
    K.pub = malloc(n);

    snprintf(K.priv, n, "{\"keys\":[%s,%s,%s,%s,%s]}",
             priv[0], priv[1], priv[2], priv[3], priv[4]);
    snprintf(K.pub, n, "{\"keys\":[%s,%s,%s,%s,%s]}",
             pub[0], pub[1], pub[2], pub[3], pub[4]);

    K.rsa_pem = rsa_pem(pub[1]);
    K.rsa_pub_jwk = strdup(pub[1]);

    for (i = 0; i < 5; i++) {
        free(priv[i]);
        free(pub[i]);
    }

    K.ks = load(K.pub);

    return K.ks == NULL ? -1 : 0;
}


static int
teardown(void **state)
{
    (void) state;

    mpn_keyset_free(K.ks);
    free(K.priv);
    free(K.pub);
    free(K.rsa_pem);
    free(K.rsa_pub_jwk);

    return 0;
}


/* --- the public vectors ------------------------------------------------ */


static void
rfc_vector_verifies(const char *jwks, const char *jws, const char *payload)
{
    int             i, rc;
    char            id[MPN_TOKEN_ID_MAX + 1];
    size_t          n, id_len;
    const char     *why;
    mpn_keyset_t   *ks;
    unsigned char   buf[MPN_TOKEN_MAX];

    mpn_token_opts_t  opts = { "iss", NULL, NULL, 0 };

    ks = load(jwks);
    assert_non_null(ks);

    /* twice: contexts kept in the key set are reused */
    for (i = 0; i < 2; i++) {
        rc = mpn_token_verify_jws(ks, jws, strlen(jws), buf, sizeof(buf),
                                  &n, &why);
        assert_int_equal(rc, MPN_TOKEN_OK);
        assert_int_equal(n, strlen(payload));
        assert_memory_equal(buf, payload, n);
    }

    if (strcmp(payload, A_PAYLOAD) == 0) {
        /* no "sub": the default claim is missing */
        assert_bad(ks, jws, RFC_BEFORE, NULL, "no partner claim");

        rc = mpn_token_verify(ks, jws, strlen(jws), RFC_BEFORE, &opts, id,
                              &id_len, &why);
        assert_int_equal(rc, MPN_TOKEN_OK);
        assert_string_equal(id, "joe");
        assert_int_equal(id_len, 3);

        rc = mpn_token_verify(ks, jws, strlen(jws), RFC_EXP, &opts, id,
                              &id_len, &why);
        assert_int_equal(rc, MPN_TOKEN_EXPIRED);
        assert_string_equal(why, "expired");

    } else {
        /* the signature holds, but the payload is no JSON claims set */
        assert_bad(ks, jws, RFC_BEFORE, NULL, "claims not JSON");
    }

    mpn_keyset_free(ks);
}


static void
test_rfc7515_a1_hs256_vector_verifies(void **state)
{
    (void) state;
    rfc_vector_verifies(KEYS(A1_JWK), A1_JWS, A_PAYLOAD);
}


static void
test_rfc7515_a2_rs256_vector_verifies(void **state)
{
    (void) state;
    rfc_vector_verifies(KEYS(A2_JWK), A2_JWS, A_PAYLOAD);
}


static void
test_rfc7515_a3_es256_vector_verifies(void **state)
{
    (void) state;
    rfc_vector_verifies(KEYS(A3_JWK), A3_JWS, A_PAYLOAD);
}


static void
test_rfc7515_a5_unsecured_vector_is_rejected(void **state)
{
    mpn_keyset_t  *ks;

    (void) state;

    ks = load(KEYS(A1_JWK "," A2_JWK "," A3_JWK "," E_JWK));
    assert_non_null(ks);
    assert_bad(ks, A5_JWS, RFC_BEFORE, NULL, "alg none");
    mpn_keyset_free(ks);
}


static void
test_rfc7520_4_1_rs256_signature_verifies_but_payload_is_bad(void **state)
{
    (void) state;
    rfc_vector_verifies(KEYS(R34_JWK), R41_JWS, R4_TEXT);
}


static void
test_rfc7520_4_4_hs256_signature_verifies_but_payload_is_bad(void **state)
{
    (void) state;
    rfc_vector_verifies(KEYS(R35_JWK), R44_JWS, R4_TEXT);
}


static void
test_rfc7520_4_2_ps384_and_4_3_es512_are_unsupported(void **state)
{
    mpn_keyset_t  *ks;

    (void) state;

    ks = load(KEYS(R34_JWK "," R32_JWK));
    assert_non_null(ks);
    assert_int_equal(mpn_keyset_count(ks), 1);   /* P-521 skipped */
    assert_bad(ks, R42_JWS, RFC_BEFORE, NULL, "unsupported alg");
    assert_bad(ks, R43_JWS, RFC_BEFORE, NULL, "unsupported alg");
    mpn_keyset_free(ks);
}


static void
test_rfc8037_ed25519_signature_verifies_but_payload_is_bad(void **state)
{
    (void) state;
    rfc_vector_verifies(KEYS(E_JWK), E_JWS, "Example of Ed25519 signing");
}


static void
test_rfc_vectors_fail_after_one_changed_byte(void **state)
{
    size_t          i, n;
    char            buf[2048];
    const char     *why;
    mpn_keyset_t   *ks;
    unsigned char   out[MPN_TOKEN_MAX];

    static const char  *jws[] = { A1_JWS, A2_JWS, A3_JWS, E_JWS };

    (void) state;

    ks = load(KEYS(A1_JWK "," A2_JWK "," A3_JWK "," E_JWK));
    assert_non_null(ks);

    for (i = 0; i < 4; i++) {
        strcpy(buf, jws[i]);

        /* one payload character */
        buf[strchr(buf, '.') - buf + 3] ^= 0x01;

        assert_int_equal(mpn_token_verify_jws(ks, buf, strlen(buf), out,
                                              sizeof(out), &n, &why),
                         MPN_TOKEN_BAD);
        assert_string_equal(why, "signature mismatch");
    }

    mpn_keyset_free(ks);
}


/* --- round trips --------------------------------------------------------- */


static void
test_round_trip_every_algorithm(void **state)
{
    int                i, rc;
    char              *t, id[MPN_TOKEN_ID_MAX + 1];
    size_t             id_len;
    const char        *why;

    static const struct {
        const char  *alg;
        const char  *kid;
    } algs[] = {
        { "HS256", "oct1" }, { "HS384", "oct1" }, { "HS512", "oct1" },
        { "RS256", "rsa1" }, { "RS384", "rsa1" }, { "RS512", "rsa1" },
        { "PS256", "rsa1" }, { "ES256", "ec256" }, { "ES384", "ec384" },
        { "EdDSA", "ed1" }
    };

    (void) state;

    for (i = 0; i < 10; i++) {
        /* by kid */
        t = sign(algs[i].kid, algs[i].alg, claims(""));
        rc = mpn_token_verify(K.ks, t, strlen(t), NOW, NULL, id, &id_len,
                              &why);
        if (rc != MPN_TOKEN_OK) {
            print_error("%s: %s\n", algs[i].alg, why);
        }

        assert_int_equal(rc, MPN_TOKEN_OK);
        assert_string_equal(id, "acme-1");
        assert_int_equal(id_len, 6);
        free(t);

        /* without kid: the only key that fits the alg */
        t = sign_raw(algs[i].kid, algs[i].alg, NULL, claims(""));
        free(t);
    }
}


static void
test_round_trip_without_kid_uses_the_only_fitting_key(void **state)
{
    int           i;
    char         *t, hdr[64];

    static const char  *algs[] = { "ES256", "ES384", "EdDSA", "PS256" };
    static const char  *kids[] = { "ec256", "ec384", "ed1", "rsa1" };

    (void) state;

    for (i = 0; i < 4; i++) {
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"}", algs[i]);
        t = sign_raw(kids[i], algs[i], hdr, claims(""));
        assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
        free(t);
    }
}


/* a token made with OpenSSL alone, not with mpn_token_sign */

static char *
openssl_token(EVP_PKEY *pkey, const char *md, const char *header,
    size_t raw_ec, char **jwks)
{
    char           *input, *sig64, *t, *x, *y, *n, *e, *jwk;
    size_t          len, slen;
    BIGNUM         *bx, *by;
    EVP_MD_CTX     *ctx;
    ECDSA_SIG      *esig;
    unsigned char   sig[1024], buf[512];
    const BIGNUM   *r, *s;
    const unsigned char  *p;

    t = raw_token(header, claims(""), "");
    input = t;
    input[strlen(input) - 1] = '\0';

    ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, md, NULL, NULL, pkey,
                                           NULL), 1);
    slen = sizeof(sig);
    assert_int_equal(EVP_DigestSign(ctx, sig, &slen,
                                    (unsigned char *) input, strlen(input)),
                     1);
    EVP_MD_CTX_free(ctx);

    if (raw_ec != 0) {
        p = sig;
        esig = d2i_ECDSA_SIG(NULL, &p, (long) slen);
        assert_non_null(esig);
        ECDSA_SIG_get0(esig, &r, &s);
        BN_bn2binpad(r, buf, (int) raw_ec);
        BN_bn2binpad(s, buf + raw_ec, (int) raw_ec);
        ECDSA_SIG_free(esig);
        memcpy(sig, buf, 2 * raw_ec);
        slen = 2 * raw_ec;
    }

    sig64 = b64(sig, slen);
    len = strlen(input) + strlen(sig64) + 2;
    t = malloc(len);
    snprintf(t, len, "%s.%s", input, sig64);
    free(sig64);
    free(input);

    /* and its public JWK */
    jwk = malloc(2048);

    if (EVP_PKEY_is_a(pkey, "EC")) {
        bx = NULL;
        by = NULL;
        EVP_PKEY_get_bn_param(pkey, "qx", &bx);
        EVP_PKEY_get_bn_param(pkey, "qy", &by);
        BN_bn2binpad(bx, buf, 32);
        x = b64(buf, 32);
        BN_bn2binpad(by, buf, 32);
        y = b64(buf, 32);
        snprintf(jwk, 2048, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                 "\"x\":\"%s\",\"y\":\"%s\"}]}", x, y);
        free(x);
        free(y);
        BN_free(bx);
        BN_free(by);

    } else if (EVP_PKEY_is_a(pkey, "RSA")) {
        bx = NULL;
        by = NULL;
        EVP_PKEY_get_bn_param(pkey, "n", &bx);
        EVP_PKEY_get_bn_param(pkey, "e", &by);
        len = BN_bn2bin(bx, buf);
        n = b64(buf, len);
        len = BN_bn2bin(by, buf);
        e = b64(buf, len);
        snprintf(jwk, 2048, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\","
                 "\"e\":\"%s\"}]}", n, e);
        free(n);
        free(e);
        BN_free(bx);
        BN_free(by);

    } else {
        len = sizeof(buf);
        EVP_PKEY_get_raw_public_key(pkey, buf, &len);
        x = b64(buf, len);
        snprintf(jwk, 2048, "{\"keys\":[{\"kty\":\"OKP\","
                 "\"crv\":\"Ed25519\",\"x\":\"%s\"}]}", x);
        free(x);
    }

    *jwks = jwk;

    return t;
}


static void
test_tokens_signed_by_openssl_directly_verify(void **state)
{
    int            i;
    char          *t, *jwks;
    EVP_PKEY      *pkey;
    mpn_keyset_t  *ks;

    (void) state;

    for (i = 0; i < 3; i++) {
        switch (i) {
        case 0:
            pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
            t = openssl_token(pkey, "SHA256", "{\"alg\":\"ES256\"}", 32,
                              &jwks);
            break;
        case 1:
            pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
            t = openssl_token(pkey, "SHA256", "{\"alg\":\"RS256\"}", 0,
                              &jwks);
            break;
        default:
            pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
            t = openssl_token(pkey, NULL, "{\"alg\":\"EdDSA\"}", 0, &jwks);
            break;
        }

        ks = load(jwks);
        assert_non_null(ks);
        assert_int_equal(verify(ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
        mpn_keyset_free(ks);
        EVP_PKEY_free(pkey);
        free(t);
        free(jwks);
    }
}


static void
test_bearer_scheme_is_stripped_case_insensitively(void **state)
{
    char        *t, buf[4096];
    const char  *why;

    (void) state;

    t = sign("oct1", "HS256", claims(""));

    snprintf(buf, sizeof(buf), "Bearer %s", t);
    assert_int_equal(verify(K.ks, buf, NOW, NULL, &why), MPN_TOKEN_OK);
    snprintf(buf, sizeof(buf), "bEaReR    %s", t);
    assert_int_equal(verify(K.ks, buf, NOW, NULL, &why), MPN_TOKEN_OK);
    snprintf(buf, sizeof(buf), "BEARER %s", t);
    assert_int_equal(verify(K.ks, buf, NOW, NULL, &why), MPN_TOKEN_OK);

    /* no space, or another scheme */
    snprintf(buf, sizeof(buf), "Bearer%s", t);
    assert_bad(K.ks, buf, NOW, NULL, NULL);
    snprintf(buf, sizeof(buf), "Token %s", t);
    assert_bad(K.ks, buf, NOW, NULL, NULL);
    snprintf(buf, sizeof(buf), "Bearer\t%s", t);
    assert_bad(K.ks, buf, NOW, NULL, NULL);
    snprintf(buf, sizeof(buf), " Bearer %s", t);
    assert_bad(K.ks, buf, NOW, NULL, NULL);

    free(t);
}


static void
test_empty_value_is_no_token(void **state)
{
    const char  *why;

    (void) state;

    assert_int_equal(verify(K.ks, "", NOW, NULL, &why), MPN_TOKEN_NONE);
    assert_int_equal(verify(K.ks, "Bearer ", NOW, NULL, &why),
                     MPN_TOKEN_NONE);
    assert_int_equal(verify(K.ks, "bearer    ", NOW, NULL, &why),
                     MPN_TOKEN_NONE);
    assert_bad(K.ks, "Bearer", NOW, NULL, NULL);
}


/* --- attacks ------------------------------------------------------------ */


static void
test_alg_none_in_any_case_is_rejected(void **state)
{
    int          i;
    char        *t;

    static const char  *hdrs[] = {
        "{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
        "{\"alg\":\"nOnE\"}", "{\"alg\":\"none\",\"kid\":\"oct1\"}"
    };

    (void) state;

    for (i = 0; i < 5; i++) {
        t = raw_token(hdrs[i], claims(""), "");
        assert_bad(K.ks, t, NOW, NULL, "alg none");
        free(t);

        /* with some signature bytes too */
        t = raw_token(hdrs[i], claims(""), "AAAA");
        assert_bad(K.ks, t, NOW, NULL, "alg none");
        free(t);
    }
}


static void
test_unknown_crit_is_rejected(void **state)
{
    char  *t;

    (void) state;

    t = sign_raw("oct1", "HS256",
                 "{\"alg\":\"HS256\",\"kid\":\"oct1\",\"crit\":[\"exp\"],"
                 "\"exp\":1}", claims(""));
    assert_bad(K.ks, t, NOW, NULL, "unknown crit");
    free(t);

    /* RFC 7797 unencoded payload */
    t = sign_raw("oct1", "HS256",
                 "{\"alg\":\"HS256\",\"kid\":\"oct1\",\"b64\":false,"
                 "\"crit\":[\"b64\"]}", claims(""));
    assert_bad(K.ks, t, NOW, NULL, "unknown crit");
    free(t);

    t = sign_raw("oct1", "HS256",
                 "{\"alg\":\"HS256\",\"kid\":\"oct1\",\"crit\":[]}",
                 claims(""));
    assert_bad(K.ks, t, NOW, NULL, "unknown crit");
    free(t);
}


static void
test_duplicate_header_member_is_rejected(void **state)
{
    char  *t;

    (void) state;

    /* a last-wins parser would see HS256 */
    t = sign_raw("oct1", "HS256",
                 "{\"alg\":\"none\",\"alg\":\"HS256\",\"kid\":\"oct1\"}",
                 claims(""));
    assert_bad(K.ks, t, NOW, NULL, "header not JSON");
    free(t);

    t = sign_raw("oct1", "HS256",
                 "{\"alg\":\"HS256\",\"kid\":\"rsa1\",\"kid\":\"oct1\"}",
                 claims(""));
    assert_bad(K.ks, t, NOW, NULL, "header not JSON");
    free(t);
}


static void
test_duplicate_claim_is_rejected(void **state)
{
    char  *t;

    (void) state;

    t = sign("oct1", "HS256", claims("\"sub\":\"other\""));
    assert_bad(K.ks, t, NOW, NULL, "claims not JSON");
    free(t);

    t = sign("oct1", "HS256", claims("\"exp\":99999999999"));
    assert_bad(K.ks, t, NOW, NULL, "claims not JSON");
    free(t);
}


static void
test_claims_not_an_object_are_rejected(void **state)
{
    int    i;
    char  *t;

    static const char  *payloads[] = {
        "[\"acme-1\"]", "\"acme-1\"", "42", "null", "{\"sub\":\"a\"",
        "{\"sub\":\"acme-1\",\"exp\":2000000000} x", ""
    };

    (void) state;

    for (i = 0; i < 7; i++) {
        t = sign_raw("oct1", "HS256", NULL, payloads[i]);
        assert_bad(K.ks, t, NOW, NULL, NULL);
        free(t);
    }
}


static void
test_noncanonical_base64url_is_rejected(void **state)
{
    char           *t, *last, buf[4096];
    size_t          n;
    unsigned char   out[64];
    const char     *alphabet;

    (void) state;

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
               "0123456789-_";

    t = sign("oct1", "HS256", claims(""));
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);

    /* padding */
    snprintf(buf, sizeof(buf), "%s=", t);
    assert_bad(K.ks, buf, NOW, NULL, "bad base64url");

    /* '+' or '/' in the signature or the header */
    strcpy(buf, t);
    buf[strlen(buf) - 5] = '+';
    assert_bad(K.ks, buf, NOW, NULL, "bad base64url");
    strcpy(buf, t);
    buf[strlen(buf) - 5] = '/';
    assert_bad(K.ks, buf, NOW, NULL, "bad base64url");
    strcpy(buf, t);
    buf[2] = '+';
    assert_bad(K.ks, buf, NOW, NULL, "bad base64url");

    /* a 32-byte HMAC is 43 characters: the last one has 2 unused bits;
     * setting them gives other text for the same bytes */
    strcpy(buf, t);
    last = &buf[strlen(buf) - 1];
    n = strchr(alphabet, *last) - alphabet;
    assert_int_equal(n & 3, 0);
    *last = alphabet[n | 1];
    assert_bad(K.ks, buf, NOW, NULL, "bad base64url");

    /* the decoder itself */
    assert_int_equal(mpn_b64url_decode("QQ", 2, out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'A');
    assert_int_equal(mpn_b64url_decode("QR", 2, out, &n), -1);
    assert_int_equal(mpn_b64url_decode("QQ==", 4, out, &n), -1);
    assert_int_equal(mpn_b64url_decode("QUI", 3, out, &n), 0);
    assert_int_equal(mpn_b64url_decode("QUJ", 3, out, &n), -1);
    assert_int_equal(mpn_b64url_decode("QUJD", 4, out, &n), 0);
    assert_int_equal(mpn_b64url_decode("QUJDR", 5, out, &n), -1);
    assert_int_equal(mpn_b64url_decode("+/8A", 4, out, &n), -1);
    assert_int_equal(mpn_b64url_decode("-_8A", 4, out, &n), 0);
    assert_int_equal(mpn_b64url_decode("QU\nJD", 5, out, &n), -1);
    assert_int_equal(mpn_b64url_decode("QU\0D", 4, out, &n), -1);

    free(t);
}


static void
test_segment_count_other_than_three_is_rejected(void **state)
{
    char  *t, buf[4096], *dot;

    (void) state;

    t = sign("oct1", "HS256", claims(""));

    /* two segments */
    strcpy(buf, t);
    dot = strrchr(buf, '.');
    *dot = '\0';
    assert_bad(K.ks, buf, NOW, NULL, "not three segments");

    /* four and five (JWE compact) */
    snprintf(buf, sizeof(buf), "%s.AAAA", t);
    assert_bad(K.ks, buf, NOW, NULL, "not three segments");
    snprintf(buf, sizeof(buf), "%s.AAAA.AAAA", t);
    assert_bad(K.ks, buf, NOW, NULL, "not three segments");

    assert_bad(K.ks, "abc", NOW, NULL, "not three segments");
    assert_bad(K.ks, "..", NOW, NULL, "empty segment");
    assert_bad(K.ks, "...", NOW, NULL, "not three segments");

    free(t);
}


static char *
es_token_with_sig(const char *kid, const char *alg, const unsigned char *sig,
    size_t n)
{
    char    *t, *s, *out, *dot;
    size_t   len;

    t = sign(kid, alg, claims(""));
    dot = strrchr(t, '.');
    *dot = '\0';
    s = b64(sig, n);
    len = strlen(t) + strlen(s) + 2;
    out = malloc(len);
    snprintf(out, len, "%s.%s", t, s);
    free(s);
    free(t);

    return out;
}


static void
test_der_encoded_ecdsa_signature_is_rejected(void **state)
{
    int             len;
    char           *t, *dot, *good;
    size_t          n;
    BIGNUM         *r, *s;
    ECDSA_SIG      *esig;
    unsigned char   raw[96], der[128], *p;

    (void) state;

    good = sign("ec256", "ES256", claims(""));
    assert_int_equal(verify(K.ks, good, NOW, NULL, NULL), MPN_TOKEN_OK);

    dot = strrchr(good, '.');
    assert_int_equal(mpn_b64url_decode(dot + 1, strlen(dot + 1), raw, &n),
                     0);
    assert_int_equal(n, 64);

    r = BN_bin2bn(raw, 32, NULL);
    s = BN_bin2bn(raw + 32, 32, NULL);
    esig = ECDSA_SIG_new();
    ECDSA_SIG_set0(esig, r, s);
    p = der;
    len = i2d_ECDSA_SIG(esig, &p);
    assert_true(len > 0);
    ECDSA_SIG_free(esig);

    /* the same signature, valid for OpenSSL, in DER */
    *dot = '\0';
    t = es_token_with_sig("ec256", "ES256", der, (size_t) len);
    assert_bad(K.ks, t, NOW, NULL, "not a raw ECDSA signature");
    free(t);

    /* truncated raw */
    t = es_token_with_sig("ec256", "ES256", raw, 63);
    assert_bad(K.ks, t, NOW, NULL, "not a raw ECDSA signature");
    free(t);

    free(good);
}


static void
test_ecdsa_r_or_s_zero_or_at_least_order_is_rejected(void **state)
{
    char           *t;
    unsigned char   sig[96];

    /* the orders of P-256 and P-384 */
    static const unsigned char  n256[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
        0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51
    };

    (void) state;

    /* the "psychic signature": r = s = 0 (CVE-2022-21449) */
    memset(sig, 0, sizeof(sig));
    t = es_token_with_sig("ec256", "ES256", sig, 64);
    assert_bad(K.ks, t, NOW, NULL, "ECDSA r or s out of range");
    free(t);

    t = es_token_with_sig("ec384", "ES384", sig, 96);
    assert_bad(K.ks, t, NOW, NULL, "ECDSA r or s out of range");
    free(t);

    /* r = s = n, which is 0 mod n */
    memcpy(sig, n256, 32);
    memcpy(sig + 32, n256, 32);
    t = es_token_with_sig("ec256", "ES256", sig, 64);
    assert_bad(K.ks, t, NOW, NULL, "ECDSA r or s out of range");
    free(t);

    /* r valid-looking, s = 0 */
    memset(sig, 0x11, 32);
    memset(sig + 32, 0, 32);
    t = es_token_with_sig("ec256", "ES256", sig, 64);
    assert_bad(K.ks, t, NOW, NULL, "ECDSA r or s out of range");
    free(t);

    /* r = n + 1 > n */
    memcpy(sig, n256, 32);
    sig[31]++;
    memset(sig + 32, 0x11, 32);
    t = es_token_with_sig("ec256", "ES256", sig, 64);
    assert_bad(K.ks, t, NOW, NULL, "ECDSA r or s out of range");
    free(t);

    /* all ones */
    memset(sig, 0xff, 64);
    t = es_token_with_sig("ec256", "ES256", sig, 64);
    assert_bad(K.ks, t, NOW, NULL, "ECDSA r or s out of range");
    free(t);

    /* in range but wrong: just a mismatch */
    memset(sig, 0x11, 64);
    t = es_token_with_sig("ec256", "ES256", sig, 64);
    assert_bad(K.ks, t, NOW, NULL, "signature mismatch");
    free(t);
}


static void
test_token_over_8k_is_refused_before_decoding(void **state)
{
    char    *t, *pad, *big;
    size_t   n, len;

    (void) state;

    /* just under the limit: fine */
    pad = malloc(8192);
    memset(pad, 'x', 7000);
    memcpy(pad, "\"pad\":\"", 7);
    strcpy(pad + 5600, "\"");
    t = sign("oct1", "HS256", claims(pad));
    len = strlen(t);
    assert_true(len <= MPN_TOKEN_MAX);
    assert_true(len > MPN_TOKEN_MAX - 800);
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    /* over it, valid signature or not */
    memset(pad + 7, 'x', 7000 - 7);
    strcpy(pad + 6400, "\"");
    t = sign("oct1", "HS256", claims(pad));
    assert_true(strlen(t) > MPN_TOKEN_MAX);
    assert_bad(K.ks, t, NOW, NULL, "token too long");
    free(t);

    /* 1 MB of garbage that is not even base64url */
    n = 1 << 20;
    big = malloc(n + 1);
    memset(big, '%', n);
    big[n] = '\0';
    assert_bad(K.ks, big, NOW, NULL, "token too long");
    free(big);
    free(pad);
}


static void
test_kid_with_path_nul_or_control_chars_is_rejected(void **state)
{
    int            i;
    char          *t, hdr[128], jwks[256];
    mpn_keyset_t  *ks;

    static const char  *kids[] = {
        "../../etc/passwd", "keys/oct1", "..", "a\\\\b", "oct1\\n",
        "oct1\\u0001", "oct1\\u007f", "oct1\\u001b[31m", ""
    };

    (void) state;

    for (i = 0; i < 9; i++) {
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"kid\":\"%s\"}",
                 kids[i]);
        t = sign_raw("oct1", "HS256", hdr, claims(""));
        assert_bad(K.ks, t, NOW, NULL, "bad kid");
        free(t);

        /* nor is such a kid accepted in a JWKS */
        snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"oct\",\"kid\":"
                 "\"%s\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\""
                 "}]}", kids[i]);
        ks = mpn_keyset_load(jwks, strlen(jwks), err, sizeof(err), NULL,
                             NULL);
        assert_null(ks);
        assert_string_equal(err, "key 0: bad \"kid\"");
    }

    /* NUL: jansson refuses \u0000 in strings */
    t = sign_raw("oct1", "HS256",
                 "{\"alg\":\"HS256\",\"kid\":\"oct1\\u0000x\"}", claims(""));
    assert_bad(K.ks, t, NOW, NULL, "header not JSON");
    free(t);

    /* a number */
    t = sign_raw("oct1", "HS256", "{\"alg\":\"HS256\",\"kid\":1}", claims(""));
    assert_bad(K.ks, t, NOW, NULL, "bad kid");
    free(t);
}


static void
test_exp_required_numeric_and_in_range(void **state)
{
    int          i;
    char        *t;

    static const char  *bad[] = {
        "{\"sub\":\"acme-1\"}",
        "{\"sub\":\"acme-1\",\"exp\":\"2000000000\"}",
        "{\"sub\":\"acme-1\",\"exp\":1e400}",
        "{\"sub\":\"acme-1\",\"exp\":1e300}",
        "{\"sub\":\"acme-1\",\"exp\":-1}",
        "{\"sub\":\"acme-1\",\"exp\":9007199254740993}",
        "{\"sub\":\"acme-1\",\"exp\":99999999999999999999}",
        "{\"sub\":\"acme-1\",\"exp\":null}",
        "{\"sub\":\"acme-1\",\"exp\":true}",
        "{\"sub\":\"acme-1\",\"exp\":[2000000000]}",
        "{\"sub\":\"acme-1\",\"exp\":NaN}",
        "{\"sub\":\"acme-1\",\"exp\":-0.5}"
    };

    (void) state;

    for (i = 0; i < 12; i++) {
        t = sign("oct1", "HS256", bad[i]);
        assert_bad(K.ks, t, NOW, NULL, NULL);
        free(t);
    }

    /* a float and the top of the range are fine */
    t = sign("oct1", "HS256", "{\"sub\":\"acme-1\",\"exp\":2000000000.5}");
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    t = sign("oct1", "HS256", "{\"sub\":\"acme-1\",\"exp\":9007199254740992}");
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    t = sign("oct1", "HS256", "{\"sub\":\"acme-1\",\"exp\":1.7e9}");
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_EXPIRED);
    free(t);
}


static void
test_expired_with_and_without_leeway(void **state)
{
    char        *t, c[128];
    const char  *why;

    mpn_token_opts_t  lee = { NULL, NULL, NULL, 60 };

    (void) state;

    snprintf(c, sizeof(c), "{\"sub\":\"acme-1\",\"exp\":%lld}",
             (long long) NOW - 30);
    t = sign("ec256", "ES256", c);
    assert_int_equal(verify(K.ks, t, NOW, NULL, &why), MPN_TOKEN_EXPIRED);
    assert_string_equal(why, "expired");
    assert_int_equal(verify(K.ks, t, NOW, &lee, &why), MPN_TOKEN_OK);
    assert_int_equal(verify(K.ks, t, NOW + 31, &lee, &why),
                     MPN_TOKEN_EXPIRED);
    free(t);

    /* exp == now is expired (RFC 7519: now must be before exp) */
    snprintf(c, sizeof(c), "{\"sub\":\"acme-1\",\"exp\":%lld}",
             (long long) NOW);
    t = sign("ec256", "ES256", c);
    assert_int_equal(verify(K.ks, t, NOW, NULL, &why), MPN_TOKEN_EXPIRED);
    assert_int_equal(verify(K.ks, t, NOW - 1, NULL, &why), MPN_TOKEN_OK);
    free(t);

    /* an expired token with a bad signature is bad, not expired */
    snprintf(c, sizeof(c), "{\"sub\":\"acme-1\",\"exp\":%lld}",
             (long long) NOW - 30);
    t = sign("oct1", "HS256", c);
    t[strlen(t) - 2] = (t[strlen(t) - 2] == 'A') ? 'B' : 'A';
    assert_bad(K.ks, t, NOW, NULL, "signature mismatch");
    free(t);
}


static void
test_nbf_checked_when_present(void **state)
{
    char        *t, c[160];

    mpn_token_opts_t  lee = { NULL, NULL, NULL, 60 };

    (void) state;

    snprintf(c, sizeof(c), "{\"sub\":\"acme-1\",\"exp\":%lld,\"nbf\":%lld}",
             (long long) NOW + 3600, (long long) NOW + 30);
    t = sign("ed1", "EdDSA", c);
    assert_bad(K.ks, t, NOW, NULL, "not yet valid");
    assert_int_equal(verify(K.ks, t, NOW, &lee, NULL), MPN_TOKEN_OK);
    assert_int_equal(verify(K.ks, t, NOW + 30, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    snprintf(c, sizeof(c), "{\"sub\":\"acme-1\",\"exp\":%lld,\"nbf\":%lld.5}",
             (long long) NOW + 3600, (long long) NOW);
    t = sign("ed1", "EdDSA", c);
    assert_bad(K.ks, t, NOW, NULL, "not yet valid");
    assert_int_equal(verify(K.ks, t, NOW + 1, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    t = sign("ed1", "EdDSA", claims("\"nbf\":\"0\""));
    assert_bad(K.ks, t, NOW, NULL, "bad nbf");
    free(t);

    t = sign("ed1", "EdDSA", claims("\"nbf\":1e400"));
    assert_bad(K.ks, t, NOW, NULL, NULL);
    free(t);

    t = sign("ed1", "EdDSA", claims("\"nbf\":-5"));
    assert_bad(K.ks, t, NOW, NULL, "bad nbf");
    free(t);
}


static void
test_issuer_checked_when_configured(void **state)
{
    char  *t;

    mpn_token_opts_t  iss = { NULL, "https://idp.example", NULL, 0 };

    (void) state;

    t = sign("rsa1", "RS256", claims("\"iss\":\"https://idp.example\""));
    assert_int_equal(verify(K.ks, t, NOW, &iss, NULL), MPN_TOKEN_OK);
    free(t);

    t = sign("rsa1", "RS256", claims("\"iss\":\"https://idp.example/\""));
    assert_bad(K.ks, t, NOW, &iss, "issuer mismatch");
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    t = sign("rsa1", "RS256", claims(""));
    assert_bad(K.ks, t, NOW, &iss, "issuer mismatch");
    free(t);

    t = sign("rsa1", "RS256", claims("\"iss\":[\"https://idp.example\"]"));
    assert_bad(K.ks, t, NOW, &iss, "issuer mismatch");
    free(t);
}


static void
test_audience_string_or_array_checked_when_configured(void **state)
{
    int    i;
    char  *t;

    mpn_token_opts_t  aud = { NULL, NULL, "portal", 0 };

    static const char  *good[] = {
        "\"aud\":\"portal\"", "\"aud\":[\"portal\"]",
        "\"aud\":[\"other\",\"portal\"]", "\"aud\":[1,\"portal\"]"
    };

    static const char  *bad[] = {
        "\"aud\":\"portal2\"", "\"aud\":[\"other\"]", "\"aud\":[]",
        "\"aud\":1", "\"aud\":{\"portal\":1}", "\"aud\":\"Portal\"", ""
    };

    (void) state;

    for (i = 0; i < 4; i++) {
        t = sign("ec384", "ES384", claims(good[i]));
        assert_int_equal(verify(K.ks, t, NOW, &aud, NULL), MPN_TOKEN_OK);
        free(t);
    }

    for (i = 0; i < 7; i++) {
        t = sign("ec384", "ES384", claims(bad[i]));
        assert_bad(K.ks, t, NOW, &aud, "audience mismatch");
        free(t);
    }
}


static void
test_partner_claim_must_match_the_id_pattern(void **state)
{
    int          i, rc;
    char        *t, id[MPN_TOKEN_ID_MAX + 1];
    size_t       id_len;
    const char  *why;

    mpn_token_opts_t  pid = { "partner_id", NULL, NULL, 0 };

    /* a string that is no partner id: the token is good, the identity
     * is not (spec section 4: bad_identity) */
    static const char  *bad_id[] = {
        "{\"sub\":\"a b\",\"exp\":2000000000}",
        "{\"sub\":\"\",\"exp\":2000000000}",
        "{\"sub\":\"a/b\",\"exp\":2000000000}",
        "{\"sub\":\"caf\\u00e9\",\"exp\":2000000000}",
        "{\"sub\":\"x*\",\"exp\":2000000000}",
        "{\"sub\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaa\",\"exp\":2000000000}"
    };

    /* no claim, or not a string: the token itself is bad */
    static const char  *bad_token[] = {
        "{\"sub\":12345,\"exp\":2000000000}",
        "{\"exp\":2000000000}"
    };

    (void) state;

    for (i = 0; i < 6; i++) {
        t = sign("oct1", "HS384", bad_id[i]);
        why = NULL;
        assert_int_equal(verify(K.ks, t, NOW, NULL, &why), MPN_TOKEN_BAD_ID);
        assert_string_equal(why, "partner claim is not a partner id");
        free(t);
    }

    for (i = 0; i < 2; i++) {
        t = sign("oct1", "HS384", bad_token[i]);
        assert_bad(K.ks, t, NOW, NULL, NULL);
        free(t);
    }

    /* the rest of the token is checked first: expired stays expired, a
     * bad signature stays bad */
    t = sign("oct1", "HS384", "{\"sub\":\"a b\",\"exp\":1000}");
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_EXPIRED);
    t[strlen(t) - 2] ^= 1;
    assert_bad(K.ks, t, NOW, NULL, NULL);
    free(t);

    /* 64 characters is the maximum */
    t = sign("oct1", "HS384",
             "{\"sub\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaa\",\"exp\":2000000000}");
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    /* another claim by configuration */
    t = sign("oct1", "HS384", claims("\"partner_id\":\"4412345\""));
    rc = mpn_token_verify(K.ks, t, strlen(t), NOW, &pid, id, &id_len, &why);
    assert_int_equal(rc, MPN_TOKEN_OK);
    assert_string_equal(id, "4412345");
    free(t);
}


/* a rejected token is described by its kid and a short hash, no more */

static void
test_describe_gives_kid_and_hash_only(void **state)
{
    char   *t, *bearer, kid[65], hash[MPN_TOKEN_HASH_HEX + 1];
    char    hash2[MPN_TOKEN_HASH_HEX + 1];
    size_t  i;

    (void) state;

    t = sign("oct1", "HS256", claims(""));

    mpn_token_describe(t, strlen(t), kid, sizeof(kid), hash);
    assert_string_equal(kid, "oct1");
    assert_int_equal(strlen(hash), MPN_TOKEN_HASH_HEX);

    for (i = 0; i < MPN_TOKEN_HASH_HEX; i++) {
        assert_non_null(strchr("0123456789abcdef", hash[i]));
    }

    /* the same token behind "Bearer " hashes the same */
    bearer = malloc(strlen(t) + 10);
    assert_non_null(bearer);
    sprintf(bearer, "BEARER  %s", t);
    mpn_token_describe(bearer, strlen(bearer), kid, sizeof(kid), hash2);
    assert_string_equal(hash, hash2);
    free(bearer);

    /* one changed byte, another hash */
    t[strlen(t) - 1] ^= 1;
    mpn_token_describe(t, strlen(t), kid, sizeof(kid), hash2);
    assert_string_not_equal(hash, hash2);
    free(t);

    /* a secret that is no JWS: no kid, and no byte of it */
    mpn_token_describe("supersecretpassword", 19, kid, sizeof(kid), hash);
    assert_string_equal(kid, "");
    assert_null(strstr(hash, "super"));

    /* a kid that would split or forge a log line is defused, and cut */
    t = raw_token("{\"alg\":\"HS256\",\"kid\":\"a\\n\\\"b c\"}",
                  claims(""), "AAAA");
    mpn_token_describe(t, strlen(t), kid, 4, hash);
    assert_string_equal(kid, "a??");
    mpn_token_describe(t, strlen(t), kid, sizeof(kid), hash);
    assert_string_equal(kid, "a??b?c");
    free(t);
}


static void
test_alg_must_agree_with_key_kty_and_crv(void **state)
{
    char  *t;

    (void) state;

    /* signed with P-256 and SHA-256, labelled ES384 for the P-256 key */
    t = sign_raw("ec256", "ES256", "{\"alg\":\"ES384\",\"kid\":\"ec256\"}",
                 claims(""));
    assert_bad(K.ks, t, NOW, NULL, "alg does not fit the key");
    free(t);

    /* RSA signature labelled EdDSA / ES256 for the RSA key */
    t = sign_raw("rsa1", "RS256", "{\"alg\":\"EdDSA\",\"kid\":\"rsa1\"}",
                 claims(""));
    assert_bad(K.ks, t, NOW, NULL, "alg does not fit the key");
    free(t);

    t = sign_raw("rsa1", "RS256", "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}",
                 claims(""));
    assert_bad(K.ks, t, NOW, NULL, "alg does not fit the key");
    free(t);

    /* an HMAC for the EC key */
    t = sign_raw("oct1", "HS256", "{\"alg\":\"HS256\",\"kid\":\"ec256\"}",
                 claims(""));
    assert_bad(K.ks, t, NOW, NULL, "alg does not fit the key");
    free(t);

    /* RS256 signature labelled PS256 */
    t = sign_raw("rsa1", "RS256", "{\"alg\":\"PS256\",\"kid\":\"rsa1\"}",
                 claims(""));
    assert_bad(K.ks, t, NOW, NULL, "signature mismatch");
    free(t);
}


static void
test_jwk_alg_when_present_must_equal_header_alg(void **state)
{
    char          *t, *jwk, *jwks;
    json_t        *o;
    size_t         n;
    mpn_keyset_t  *ks;

    (void) state;

    /* the RSA public key, restricted to RS256 */
    o = json_loads(K.rsa_pub_jwk, 0, NULL);
    json_object_set_new(o, "alg", json_string("RS256"));
    jwk = json_dumps(o, JSON_COMPACT);
    json_decref(o);

    n = strlen(jwk) + 16;
    jwks = malloc(n);
    snprintf(jwks, n, "{\"keys\":[%s]}", jwk);
    ks = load(jwks);
    assert_non_null(ks);

    t = sign("rsa1", "RS256", claims(""));
    assert_int_equal(verify(ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    t = sign("rsa1", "PS256", claims(""));
    assert_bad(ks, t, NOW, NULL, "alg does not fit the key");
    free(t);

    t = sign("rsa1", "RS512", claims(""));
    assert_bad(ks, t, NOW, NULL, "alg does not fit the key");
    free(t);

    mpn_keyset_free(ks);
    free(jwks);
    free(jwk);
}


static void
test_hs256_signed_with_rsa_public_pem_is_rejected(void **state)
{
    int            i;
    char          *k, *t, *jwks, hdr[64];
    size_t         n;
    mpn_keyset_t  *ks;

    static const char  *hdrs[] = {
        "{\"alg\":\"HS256\"}", "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}"
    };

    (void) state;

    /* the attacker knows the public key and uses its PEM as HMAC key */
    k = b64(K.rsa_pem, strlen(K.rsa_pem));
    n = strlen(k) + 64;
    jwks = malloc(n);
    snprintf(jwks, n, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"%s\"}]}", k);

    n = strlen(K.rsa_pub_jwk) + 16;
    {
        char  *only = malloc(n);

        snprintf(only, n, "{\"keys\":[%s]}", K.rsa_pub_jwk);
        ks = load(only);
        free(only);
    }

    assert_non_null(ks);

    for (i = 0; i < 2; i++) {
        snprintf(hdr, sizeof(hdr), "%s", hdrs[i]);
        t = mpn_token_sign_raw(jwks, strlen(jwks), NULL, "HS256", hdr,
                               (const unsigned char *) claims(""),
                               strlen(claims("")), err, sizeof(err));
        assert_non_null(t);

        assert_bad(ks, t, NOW, NULL,
                   i == 0 ? "no key for alg" : "alg does not fit the key");
        assert_bad(K.ks, t, NOW, NULL, NULL);
        free(t);
    }

    mpn_keyset_free(ks);
    free(jwks);
    free(k);
}


static void
test_key_embedded_in_header_is_never_used(void **state)
{
    char    *evil, *evil_pub, *jwks, *t, hdr[1024];
    size_t   n;

    (void) state;

    /* the attacker's own key, sent along in "jwk" (CVE-2018-0114) */
    evil = mpn_token_keygen("ES256", NULL, err, sizeof(err));
    assert_non_null(evil);
    evil_pub = strip_private(evil);

    n = strlen(evil) + 16;
    jwks = malloc(n);
    snprintf(jwks, n, "{\"keys\":[%s]}", evil);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"jwk\":%s}", evil_pub);

    t = mpn_token_sign_raw(jwks, strlen(jwks), NULL, "ES256", hdr,
                           (const unsigned char *) claims(""),
                           strlen(claims("")), err, sizeof(err));
    assert_non_null(t);
    assert_bad(K.ks, t, NOW, NULL, "signature mismatch");
    free(t);

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"ec256\","
             "\"jku\":\"https://evil.example/jwks\"}");
    t = mpn_token_sign_raw(jwks, strlen(jwks), NULL, "ES256", hdr,
                           (const unsigned char *) claims(""),
                           strlen(claims("")), err, sizeof(err));
    assert_non_null(t);
    assert_bad(K.ks, t, NOW, NULL, "signature mismatch");
    free(t);

    free(jwks);
    free(evil_pub);
    free(evil);
}


static void
test_key_choice_by_kid_or_only_fitting_key(void **state)
{
    char          *t, *jwks, *k2, *k2pub;
    size_t         n;
    mpn_keyset_t  *ks;

    (void) state;

    /* a second EC P-256 key: without kid, two keys fit ES256 */
    k2 = mpn_token_keygen("ES256", "ec256b", err, sizeof(err));
    assert_non_null(k2);
    k2pub = strip_private(k2);

    n = strlen(K.pub) + strlen(k2pub) + 8;
    jwks = malloc(n);
    snprintf(jwks, n, "%.*s,%s]}", (int) strlen(K.pub) - 2, K.pub, k2pub);
    ks = load(jwks);
    assert_non_null(ks);
    assert_int_equal(mpn_keyset_count(ks), 6);

    t = sign_raw("ec256", "ES256", "{\"alg\":\"ES256\"}", claims(""));
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    assert_bad(ks, t, NOW, NULL, "more than one key fits");
    free(t);

    /* kid picks the right one */
    t = sign("ec256", "ES256", claims(""));
    assert_int_equal(verify(ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    /* a kid naming no key */
    t = sign_raw("ec256", "ES256", "{\"alg\":\"ES256\",\"kid\":\"nope\"}",
                 claims(""));
    assert_bad(ks, t, NOW, NULL, "unknown kid");
    free(t);

    /* kid of the other P-256 key: signature mismatch, no fallback */
    t = sign_raw("ec256", "ES256", "{\"alg\":\"ES256\",\"kid\":\"ec256b\"}",
                 claims(""));
    assert_bad(ks, t, NOW, NULL, "signature mismatch");
    free(t);

    mpn_keyset_free(ks);
    free(jwks);
    free(k2);
    free(k2pub);
}


/* a file set and a fetched set used as one (mpn_token_keys_request) */

static void
test_joined_sets_act_as_one(void **state)
{
    char          *t, *k2, *k2pub, *jwks, *priv;
    size_t         n;
    mpn_keyset_t  *b, *dup, *join, *join2;

    (void) state;

    k2 = mpn_token_keygen("ES256", "fetched", err, sizeof(err));
    assert_non_null(k2);
    k2pub = strip_private(k2);

    n = strlen(k2pub) + 16;
    jwks = malloc(n);
    snprintf(jwks, n, "{\"keys\":[%s]}", k2pub);
    b = load(jwks);
    assert_non_null(b);

    join = mpn_keyset_join(K.ks, b);
    assert_non_null(join);
    assert_int_equal(mpn_keyset_count(join),
                     mpn_keyset_count(K.ks) + 1);

    /* a key of either set verifies */
    t = sign("ec256", "ES256", claims(""));
    assert_int_equal(verify(join, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    n = strlen(k2) + 16;
    priv = malloc(n);
    snprintf(priv, n, "{\"keys\":[%s]}", k2);
    t = mpn_token_sign(priv, strlen(priv), "fetched", NULL, claims(""), err,
                       sizeof(err));
    free(priv);
    assert_non_null(t);
    assert_int_equal(verify(join, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    assert_bad(K.ks, t, NOW, NULL, MPN_TOKEN_WHY_UNKNOWN_KID);
    free(t);

    /* without kid, a P-256 key in each set: ambiguous, as in one set */
    t = sign_raw("ec256", "ES256", "{\"alg\":\"ES256\"}", claims(""));
    assert_bad(join, t, NOW, NULL, "more than one key fits");
    free(t);

    /* a kid in neither */
    t = sign_raw("ec256", "ES256", "{\"alg\":\"ES256\",\"kid\":\"x\"}",
                 claims(""));
    assert_bad(join, t, NOW, NULL, "unknown kid");
    free(t);

    /* the same kid in both sets is ambiguous too */
    dup = load(K.pub);
    assert_non_null(dup);
    join2 = mpn_keyset_join(join, dup);
    assert_non_null(join2);
    t = sign("ec256", "ES256", claims(""));
    assert_bad(join2, t, NOW, NULL, "more than one key fits");
    free(t);

    /* freeing a join leaves the keys to their sets, which still work */
    mpn_keyset_free(join2);
    mpn_keyset_free(join);
    mpn_keyset_free(dup);

    t = sign("ec256", "ES256", claims(""));
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    mpn_keyset_free(b);
    free(jwks);
    free(k2);
    free(k2pub);
}


static void
test_hmac_key_shorter_than_hash_does_not_fit(void **state)
{
    char          *t;
    mpn_keyset_t  *ks;

    static const char  jwks[] =
        "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"s\","
        "\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr8\"}]}";

    (void) state;

    ks = load(jwks);
    assert_non_null(ks);

    t = mpn_token_sign_raw(KEYS(A1_JWK), strlen(KEYS(A1_JWK)), NULL,
                           "HS512", "{\"alg\":\"HS512\",\"kid\":\"s\"}",
                           (const unsigned char *) claims(""),
                           strlen(claims("")), err, sizeof(err));
    assert_non_null(t);
    assert_bad(ks, t, NOW, NULL, "alg does not fit the key");
    free(t);

    mpn_keyset_free(ks);
}


static void
test_signature_of_wrong_length_or_tampered_is_rejected(void **state)
{
    int          i;
    char        *t, buf[4096];

    static const char  *algs[] = { "HS256", "RS256", "ES256", "EdDSA" };
    static const char  *kids[] = { "oct1", "rsa1", "ec256", "ed1" };

    (void) state;

    for (i = 0; i < 4; i++) {
        t = sign(kids[i], algs[i], claims(""));

        /* drop the last 4 characters (3 bytes) */
        strcpy(buf, t);
        buf[strlen(buf) - 4] = '\0';
        assert_bad(K.ks, buf, NOW, NULL, NULL);

        /* another payload under the same signature */
        strcpy(buf, t);
        buf[strchr(buf, '.') - buf + 5] ^= 0x02;
        assert_bad(K.ks, buf, NOW, NULL, NULL);

        free(t);
    }
}


static void
test_reasons_never_hold_token_bytes(void **state)
{
    char        *t;
    const char  *why;

    (void) state;

    t = raw_token("{\"alg\":\"HS256\",\"kid\":\"SECRET-MARKER\"}",
                  claims(""), "AAAA");
    assert_int_equal(verify(K.ks, t, NOW, NULL, &why), MPN_TOKEN_BAD);
    assert_string_equal(why, "unknown kid");
    assert_null(strstr(why, "SECRET"));
    free(t);
}


/* --- JWKS --------------------------------------------------------------- */


static int   warned;
static char  warning[256];


static void
warn(void *data, const char *msg)
{
    (void) data;

    warned++;
    snprintf(warning, sizeof(warning), "%s", msg);
}


static void
expect_jwks_error(const char *jwks, const char *msg)
{
    mpn_keyset_t  *ks;

    err[0] = '\0';
    ks = mpn_keyset_load(jwks, strlen(jwks), err, sizeof(err), NULL, NULL);
    assert_null(ks);
    assert_string_equal(err, msg);
}


static void
test_jwks_errors_name_the_key_index(void **state)
{
    (void) state;

    expect_jwks_error("{\"keys\":", "not JSON: "
                      "unexpected token near end of file at line 1");
    expect_jwks_error("[]", "not a JSON object");
    expect_jwks_error("{}", "no \"keys\" array");
    expect_jwks_error("{\"keys\":[]}", "no usable key");
    expect_jwks_error(KEYS(A1_JWK "," A1_JWK "," "{\"kty\":\"RSA\","
                           "\"n\":\"AQAB=\",\"e\":\"AQAB\"}"),
                      "key 2: bad \"n\"");
    expect_jwks_error(KEYS(A1_JWK "," "{\"kty\":\"RSA\",\"n\":\"AQAB\","
                           "\"e\":\"AQAB\"}"),
                      "key 1: \"n\" is not 2048 to 16384 bits");
    expect_jwks_error(KEYS("{\"kty\":\"RSA\",\"e\":\"AQAB\"}"),
                      "key 0: no \"n\"");
    expect_jwks_error(KEYS("{\"k\":\"AAAA\"}"), "key 0: no \"kty\"");
    expect_jwks_error(KEYS("{\"kty\":\"oct\",\"k\":\"AAAA\"}"),
                      "key 0: \"k\" is shorter than 256 bits");
    expect_jwks_error(KEYS("{\"kty\":\"oct\",\"alg\":\"RS256\","
                           "\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJ"
                           "QLr8\"}"),
                      "key 0: \"alg\" does not fit \"kty\" or \"crv\"");
    expect_jwks_error(KEYS("{\"kty\":\"EC\",\"crv\":\"P-256\","
                           "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHv"
                           "RVEU\",\"y\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8T"
                           "us9uPHvRVEU\"}"),
                      "key 0: bad EC key");
    expect_jwks_error(KEYS("{\"kty\":\"EC\",\"crv\":\"P-256\","
                           "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHv"
                           "RVEU\"}"),
                      "key 0: no \"y\"");
    expect_jwks_error(KEYS("{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
                           "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPc"
                           "HU\"}"),
                      "key 0: bad \"x\"");
    expect_jwks_error(KEYS(A1_JWK ",[]"), "key 1: not a JSON object");
    expect_jwks_error("{\"keys\":[" A1_JWK "],\"keys\":[]}",
                      "not JSON: duplicate object key near '\"keys\"'"
                      " at line 1");
}


static void
test_jwks_skips_enc_and_unsupported_keys_with_a_warning(void **state)
{
    mpn_keyset_t  *ks;

    (void) state;

    warned = 0;
    ks = mpn_keyset_load(KEYS(A1_JWK ","
                              "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"x\"},"
                              "{\"kty\":\"EC\",\"crv\":\"P-521\"},"
                              "{\"kty\":\"OKP\",\"crv\":\"X25519\"},"
                              "{\"kty\":\"OKP\",\"crv\":\"Ed448\"},"
                              "{\"kty\":\"DSA\"},"
                              "{\"kty\":\"RSA\",\"alg\":\"RSA-OAEP\"}"),
                         strlen(KEYS(A1_JWK ","
                              "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"x\"},"
                              "{\"kty\":\"EC\",\"crv\":\"P-521\"},"
                              "{\"kty\":\"OKP\",\"crv\":\"X25519\"},"
                              "{\"kty\":\"OKP\",\"crv\":\"Ed448\"},"
                              "{\"kty\":\"DSA\"},"
                              "{\"kty\":\"RSA\",\"alg\":\"RSA-OAEP\"}")),
                         err, sizeof(err), warn, NULL);
    assert_non_null(ks);
    assert_int_equal(mpn_keyset_count(ks), 1);
    assert_int_equal(warned, 6);
    assert_string_equal(warning, "key 6 skipped: unsupported \"alg\"");

    /* and the one left still verifies its vector */
    assert_int_equal(verify(ks, A1_JWS, RFC_BEFORE, NULL, NULL),
                     MPN_TOKEN_BAD);
    mpn_keyset_free(ks);
}


/* nginx gets the public half; a signer's file is warned about, key by
 * key (an oct key has no public half and is not) */

static void
test_jwks_private_members_of_asymmetric_keys_warn(void **state)
{
    mpn_keyset_t  *ks;

    (void) state;

    warned = 0;
    ks = mpn_keyset_load(K.priv, strlen(K.priv), err, sizeof(err), warn,
                         NULL);
    assert_non_null(ks);
    assert_int_equal(mpn_keyset_count(ks), 5);
    assert_int_equal(warned, 4);
    assert_string_equal(warning, "key 4 (kid \"ed1\") holds private members: "
                        "give nginx only the public half (mpnctl pubkeys)");
    mpn_keyset_free(ks);

    warned = 0;
    ks = mpn_keyset_load(K.pub, strlen(K.pub), err, sizeof(err), warn, NULL);
    assert_non_null(ks);
    assert_int_equal(warned, 0);
    mpn_keyset_free(ks);
}


static void
test_jwks_private_members_are_not_needed_to_verify(void **state)
{
    char  *t;

    (void) state;

    /* K.ks was loaded from public members only */
    t = sign("rsa1", "RS384", claims(""));
    assert_int_equal(verify(K.ks, t, NOW, NULL, NULL), MPN_TOKEN_OK);
    free(t);

    /* the signer refuses a key set without private keys */
    t = mpn_token_sign(K.pub, strlen(K.pub), "rsa1", "RS256", claims(""),
                       err, sizeof(err));
    assert_null(t);
    assert_string_equal(err, "no private key fits");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_rfc7515_a1_hs256_vector_verifies),
        cmocka_unit_test(test_rfc7515_a2_rs256_vector_verifies),
        cmocka_unit_test(test_rfc7515_a3_es256_vector_verifies),
        cmocka_unit_test(test_rfc7515_a5_unsecured_vector_is_rejected),
        cmocka_unit_test(
            test_rfc7520_4_1_rs256_signature_verifies_but_payload_is_bad),
        cmocka_unit_test(
            test_rfc7520_4_4_hs256_signature_verifies_but_payload_is_bad),
        cmocka_unit_test(test_rfc7520_4_2_ps384_and_4_3_es512_are_unsupported),
        cmocka_unit_test(
            test_rfc8037_ed25519_signature_verifies_but_payload_is_bad),
        cmocka_unit_test(test_rfc_vectors_fail_after_one_changed_byte),
        cmocka_unit_test(test_round_trip_every_algorithm),
        cmocka_unit_test(
            test_round_trip_without_kid_uses_the_only_fitting_key),
        cmocka_unit_test(test_tokens_signed_by_openssl_directly_verify),
        cmocka_unit_test(test_bearer_scheme_is_stripped_case_insensitively),
        cmocka_unit_test(test_empty_value_is_no_token),
        cmocka_unit_test(test_alg_none_in_any_case_is_rejected),
        cmocka_unit_test(test_unknown_crit_is_rejected),
        cmocka_unit_test(test_duplicate_header_member_is_rejected),
        cmocka_unit_test(test_duplicate_claim_is_rejected),
        cmocka_unit_test(test_claims_not_an_object_are_rejected),
        cmocka_unit_test(test_noncanonical_base64url_is_rejected),
        cmocka_unit_test(test_segment_count_other_than_three_is_rejected),
        cmocka_unit_test(test_der_encoded_ecdsa_signature_is_rejected),
        cmocka_unit_test(test_ecdsa_r_or_s_zero_or_at_least_order_is_rejected),
        cmocka_unit_test(test_token_over_8k_is_refused_before_decoding),
        cmocka_unit_test(test_kid_with_path_nul_or_control_chars_is_rejected),
        cmocka_unit_test(test_exp_required_numeric_and_in_range),
        cmocka_unit_test(test_expired_with_and_without_leeway),
        cmocka_unit_test(test_nbf_checked_when_present),
        cmocka_unit_test(test_issuer_checked_when_configured),
        cmocka_unit_test(
            test_audience_string_or_array_checked_when_configured),
        cmocka_unit_test(test_partner_claim_must_match_the_id_pattern),
        cmocka_unit_test(test_describe_gives_kid_and_hash_only),
        cmocka_unit_test(test_alg_must_agree_with_key_kty_and_crv),
        cmocka_unit_test(test_jwk_alg_when_present_must_equal_header_alg),
        cmocka_unit_test(test_hs256_signed_with_rsa_public_pem_is_rejected),
        cmocka_unit_test(test_key_embedded_in_header_is_never_used),
        cmocka_unit_test(test_key_choice_by_kid_or_only_fitting_key),
        cmocka_unit_test(test_joined_sets_act_as_one),
        cmocka_unit_test(test_hmac_key_shorter_than_hash_does_not_fit),
        cmocka_unit_test(
            test_signature_of_wrong_length_or_tampered_is_rejected),
        cmocka_unit_test(test_reasons_never_hold_token_bytes),
        cmocka_unit_test(test_jwks_errors_name_the_key_index),
        cmocka_unit_test(
            test_jwks_skips_enc_and_unsupported_keys_with_a_warning),
        cmocka_unit_test(test_jwks_private_members_of_asymmetric_keys_warn),
        cmocka_unit_test(test_jwks_private_members_are_not_needed_to_verify),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
