/*
 * JSON Web Keys (RFC 7517) as OpenSSL objects: the internals shared by
 * mpn_jwk.c (key sets, key generation) and mpn_token.c (verify, sign).
 * Not for use outside these two files and their tests.
 */

#ifndef MPN_JWK_H
#define MPN_JWK_H

#include <stddef.h>

#include <openssl/evp.h>

#include "mpn_token.h"


enum {
    MPN_KTY_OCT = 0,
    MPN_KTY_RSA,
    MPN_KTY_EC,
    MPN_KTY_OKP
};

enum {
    MPN_CRV_NONE = 0,
    MPN_CRV_P256,
    MPN_CRV_P384,
    MPN_CRV_ED25519
};

enum {
    MPN_ALG_HS256 = 0,
    MPN_ALG_HS384,
    MPN_ALG_HS512,
    MPN_ALG_RS256,
    MPN_ALG_RS384,
    MPN_ALG_RS512,
    MPN_ALG_PS256,
    MPN_ALG_ES256,
    MPN_ALG_ES384,
    MPN_ALG_EDDSA,
    MPN_ALG_N,
    MPN_ALG_ANY = -1
};

enum {
    MPN_MD_SHA256 = 0,
    MPN_MD_SHA384,
    MPN_MD_SHA512,
    MPN_MD_N,
    MPN_MD_NONE = -1
};


typedef struct {
    const char     *name;           /* "HS256" */
    int             kty;            /* MPN_KTY_* */
    int             crv;            /* MPN_CRV_*, for EC and OKP */
    int             md;             /* MPN_MD_* */
    size_t          size;           /* digest bytes; EC: bytes of r or s */
    int             pss;
} mpn_alg_t;


typedef struct {
    int             kty;
    int             crv;
    int             alg;            /* the JWK "alg", or MPN_ALG_ANY */
    char           *kid;            /* NULL: none */
    size_t          kid_len;
    int             has_private;    /* pkey or secret can sign */

    unsigned char  *secret;         /* oct */
    size_t          secret_len;
    EVP_MAC_CTX    *mac[MPN_MD_N];  /* oct: keyed HMAC, NULL if unfit */

    EVP_PKEY       *pkey;           /* RSA, EC, OKP */
    EVP_PKEY_CTX   *vctx[MPN_ALG_N];/* RSA, EC: verify, NULL if unfit */
    EVP_MD_CTX     *mdctx;          /* OKP */
    unsigned char   order[66];      /* EC: the group order, big-endian */
} mpn_jwk_t;


/* the outcome of a recently seen JOSE header, by its exact base64url text:
 * the headers of one issuer repeat, and parsing them again is waste */

#define MPN_HDR_CACHE      4
#define MPN_HDR_CACHE_LEN  200

typedef struct {
    size_t            len;          /* 0: empty slot */
    const mpn_jwk_t  *key;
    int               alg;
    char              text[MPN_HDR_CACHE_LEN];
} mpn_hdr_cache_t;


struct mpn_keyset_s {
    mpn_jwk_t      *keys;
    size_t          nkeys;
    EVP_MD         *md[MPN_MD_N];
    EVP_MAC        *hmac;
    EVP_MD_CTX     *dctx;           /* digests for RSA and EC */
    mpn_hdr_cache_t hdr[MPN_HDR_CACHE];
    unsigned        hdr_next;
    int             borrowed;       /* a join: the keys are not its own */
};


extern const mpn_alg_t  mpn_algs[MPN_ALG_N];

/* MPN_ALG_* for a name, or -1 */
int mpn_alg_find(const char *name, size_t len);

/* the key fits alg: kty, crv, JWK alg, HMAC key length */
int mpn_jwk_fits(const mpn_jwk_t *key, int alg);

/* kid text: 1..255 bytes, no control character, NUL, slash, backslash
 * or ".." */
int mpn_kid_valid(const char *kid, size_t len);

/* mpn_keyset_load with private keys kept, for the signer */
mpn_keyset_t *mpn_keyset_load_private(const char *json, size_t len,
    char *err, size_t err_len);

#endif /* MPN_JWK_H */
