/*
 * JWKS documents into OpenSSL keys, once per configuration, and new keys
 * for the signer.  Every public key is checked (EVP_PKEY_public_check) and
 * gets its verify contexts here, so that verification parses nothing.
 */

#include "mpn_jwk.h"
#include "mpn_b64url.h"
#include "mpn_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>


#define MPN_JWK_MAX_KEYS     256
#define MPN_JWK_MAX_PARAM    2048    /* decoded bytes of one member */
#define MPN_JWK_HMAC_MIN     32
#define MPN_JWK_RSA_MIN      2048
#define MPN_JWK_RSA_MAX      16384


const mpn_alg_t  mpn_algs[MPN_ALG_N] = {
    { "HS256", MPN_KTY_OCT, MPN_CRV_NONE, MPN_MD_SHA256, 32, 0 },
    { "HS384", MPN_KTY_OCT, MPN_CRV_NONE, MPN_MD_SHA384, 48, 0 },
    { "HS512", MPN_KTY_OCT, MPN_CRV_NONE, MPN_MD_SHA512, 64, 0 },
    { "RS256", MPN_KTY_RSA, MPN_CRV_NONE, MPN_MD_SHA256, 32, 0 },
    { "RS384", MPN_KTY_RSA, MPN_CRV_NONE, MPN_MD_SHA384, 48, 0 },
    { "RS512", MPN_KTY_RSA, MPN_CRV_NONE, MPN_MD_SHA512, 64, 0 },
    { "PS256", MPN_KTY_RSA, MPN_CRV_NONE, MPN_MD_SHA256, 32, 1 },
    { "ES256", MPN_KTY_EC, MPN_CRV_P256, MPN_MD_SHA256, 32, 0 },
    { "ES384", MPN_KTY_EC, MPN_CRV_P384, MPN_MD_SHA384, 48, 0 },
    { "EdDSA", MPN_KTY_OKP, MPN_CRV_ED25519, MPN_MD_NONE, 0, 0 }
};

static const char  *mpn_md_names[MPN_MD_N] = { "SHA256", "SHA384", "SHA512" };


static int mpn_jwk_load_key(mpn_keyset_t *ks, mpn_jwk_t *key, json_t *obj,
    int want_private, char *msg, size_t msg_len);
static int mpn_jwk_load_oct(mpn_keyset_t *ks, mpn_jwk_t *key, json_t *obj,
    char *msg, size_t msg_len);
static int mpn_jwk_load_rsa(mpn_jwk_t *key, json_t *obj, int want_private,
    char *msg, size_t msg_len);
static int mpn_jwk_load_ec(mpn_jwk_t *key, json_t *obj, int want_private,
    char *msg, size_t msg_len);
static int mpn_jwk_load_okp(mpn_jwk_t *key, json_t *obj, int want_private,
    char *msg, size_t msg_len);
static int mpn_jwk_prepare(mpn_keyset_t *ks, mpn_jwk_t *key, char *msg,
    size_t msg_len);
static int mpn_jwk_member(json_t *obj, const char *name, unsigned char *out,
    size_t size, size_t *len, char *msg, size_t msg_len);
static int mpn_jwk_bn(OSSL_PARAM_BLD *bld, BIGNUM **bns, int *nbn,
    const char *param, json_t *obj, const char *name, char *msg,
    size_t msg_len);
static EVP_PKEY *mpn_jwk_fromdata(const char *type, OSSL_PARAM_BLD *bld,
    int selection);
static void mpn_jwk_free(mpn_jwk_t *key);
static int mpn_jwk_has_private_members(json_t *obj);
static mpn_keyset_t *mpn_keyset_new(size_t nkeys, char *err,
    size_t err_len);
static mpn_keyset_t *mpn_keyset_parse(const char *json, size_t len,
    int want_private, char *err, size_t err_len, mpn_token_warn_pt warn,
    void *warn_data);
static int mpn_jwk_put_b64(json_t *obj, const char *name,
    const unsigned char *p, size_t len);
static int mpn_jwk_put_bn(json_t *obj, const char *name, EVP_PKEY *pkey,
    const char *param, size_t pad);


int
mpn_alg_find(const char *name, size_t len)
{
    int  i;

    for (i = 0; i < MPN_ALG_N; i++) {
        if (strlen(mpn_algs[i].name) == len
            && memcmp(mpn_algs[i].name, name, len) == 0)
        {
            return i;
        }
    }

    return -1;
}


int
mpn_kid_valid(const char *kid, size_t len)
{
    size_t  i;

    if (len == 0 || len > MPN_TOKEN_KID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) kid[i] < 0x20 || kid[i] == 0x7f
            || kid[i] == '/' || kid[i] == '\\')
        {
            return 0;
        }

        if (kid[i] == '.' && i + 1 < len && kid[i + 1] == '.') {
            return 0;
        }
    }

    return 1;
}


int
mpn_jwk_fits(const mpn_jwk_t *key, int alg)
{
    const mpn_alg_t  *a;

    if (alg < 0 || alg >= MPN_ALG_N) {
        return 0;
    }

    a = &mpn_algs[alg];

    if (key->kty != a->kty) {
        return 0;
    }

    if (key->alg != MPN_ALG_ANY && key->alg != alg) {
        return 0;
    }

    switch (key->kty) {

    case MPN_KTY_OCT:
        return key->mac[a->md] != NULL;

    case MPN_KTY_EC:
    case MPN_KTY_OKP:
        return key->crv == a->crv;

    default:
        return 1;
    }
}


mpn_keyset_t *
mpn_keyset_load(const char *json, size_t len, char *err, size_t err_len,
    mpn_token_warn_pt warn, void *warn_data)
{
    return mpn_keyset_parse(json, len, 0, err, err_len, warn, warn_data);
}


mpn_keyset_t *
mpn_keyset_load_private(const char *json, size_t len, char *err,
    size_t err_len)
{
    return mpn_keyset_parse(json, len, 1, err, err_len, NULL, NULL);
}


size_t
mpn_keyset_count(const mpn_keyset_t *ks)
{
    return ks->nkeys;
}


/* RFC 7518 sections 6.2.2, 6.3.2 and RFC 8037 section 2 */

static int
mpn_jwk_has_private_members(json_t *obj)
{
    size_t              i;
    static const char  *members[] = { "d", "p", "q", "dp", "dq", "qi", "oth" };

    for (i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        if (json_object_get(obj, members[i]) != NULL) {
            return 1;
        }
    }

    return 0;
}


static mpn_keyset_t *
mpn_keyset_parse(const char *json, size_t len, int want_private, char *err,
    size_t err_len, mpn_token_warn_pt warn, void *warn_data)
{
    int            rc;
    size_t         index;
    char           msg[160], line[200];
    json_t        *root, *keys, *obj;
    json_error_t   jerr;
    mpn_keyset_t  *ks;

    ks = NULL;

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        mpn_err(err, err_len, "not JSON: %s at line %d",
                jerr.text, jerr.line);
        return NULL;
    }

    if (!json_is_object(root)) {
        mpn_err(err, err_len, "not a JSON object");
        goto failed;
    }

    keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        mpn_err(err, err_len, "no \"keys\" array");
        goto failed;
    }

    if (json_array_size(keys) > MPN_JWK_MAX_KEYS) {
        mpn_err(err, err_len, "more than %d keys", MPN_JWK_MAX_KEYS);
        goto failed;
    }

    ks = mpn_keyset_new(json_array_size(keys), err, err_len);
    if (ks == NULL) {
        goto failed;
    }

    json_array_foreach(keys, index, obj) {
        msg[0] = '\0';

        rc = mpn_jwk_load_key(ks, &ks->keys[ks->nkeys], obj, want_private,
                              msg, sizeof(msg));

        if (rc == -1) {
            mpn_jwk_free(&ks->keys[ks->nkeys]);
            mpn_err(err, err_len, "key %zu: %s", index, msg);
            goto failed;
        }

        if (rc == 1) {
            /* skipped */
            mpn_jwk_free(&ks->keys[ks->nkeys]);

            if (warn != NULL) {
                snprintf(line, sizeof(line), "key %zu skipped: %s",
                         index, msg);
                warn(warn_data, line);
            }

            continue;
        }

        /* a verifier needs only the public half of an asymmetric key; a
         * file that holds the private half can sign tokens too */

        if (!want_private && warn != NULL
            && ks->keys[ks->nkeys].kty != MPN_KTY_OCT
            && mpn_jwk_has_private_members(obj))
        {
            snprintf(line, sizeof(line), "key %zu%s%.64s%s holds private "
                     "members: give nginx only the public half "
                     "(mpnctl pubkeys)", index,
                     ks->keys[ks->nkeys].kid != NULL ? " (kid \"" : "",
                     ks->keys[ks->nkeys].kid != NULL
                         ? ks->keys[ks->nkeys].kid : "",
                     ks->keys[ks->nkeys].kid != NULL ? "\")" : "");
            warn(warn_data, line);
        }

        ks->nkeys++;
    }

    if (ks->nkeys == 0) {
        mpn_err(err, err_len, "no usable key");
        goto failed;
    }

    json_decref(root);
    ERR_clear_error();

    return ks;

failed:

    json_decref(root);
    mpn_keyset_free(ks);
    ERR_clear_error();

    return NULL;
}


/* an empty set with room for nkeys keys and its own digests */

static mpn_keyset_t *
mpn_keyset_new(size_t nkeys, char *err, size_t err_len)
{
    int            i;
    mpn_keyset_t  *ks;

    ks = calloc(1, sizeof(mpn_keyset_t));
    if (ks == NULL) {
        mpn_err(err, err_len, "out of memory");
        return NULL;
    }

    ks->keys = calloc(nkeys + 1, sizeof(mpn_jwk_t));
    ks->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ks->dctx = EVP_MD_CTX_new();

    if (ks->keys == NULL || ks->hmac == NULL || ks->dctx == NULL) {
        mpn_err(err, err_len, "out of memory");
        mpn_keyset_free(ks);
        return NULL;
    }

    for (i = 0; i < MPN_MD_N; i++) {
        ks->md[i] = EVP_MD_fetch(NULL, mpn_md_names[i], NULL);
        if (ks->md[i] == NULL) {
            mpn_err(err, err_len, "no %s in OpenSSL", mpn_md_names[i]);
            mpn_keyset_free(ks);
            return NULL;
        }
    }

    return ks;
}


/*
 * The keys are copied as structures: their OpenSSL objects stay owned by
 * a and b.  The join has its own digests and header cache, so a header
 * cached in it can only name a key of a or b, both alive while it is.
 */

mpn_keyset_t *
mpn_keyset_join(const mpn_keyset_t *a, const mpn_keyset_t *b)
{
    char           err[64];
    mpn_keyset_t  *ks;

    ks = mpn_keyset_new(a->nkeys + b->nkeys, err, sizeof(err));
    if (ks == NULL) {
        ERR_clear_error();
        return NULL;
    }

    ks->borrowed = 1;

    memcpy(ks->keys, a->keys, a->nkeys * sizeof(mpn_jwk_t));
    memcpy(ks->keys + a->nkeys, b->keys, b->nkeys * sizeof(mpn_jwk_t));
    ks->nkeys = a->nkeys + b->nkeys;

    return ks;
}


void
mpn_keyset_free(mpn_keyset_t *ks)
{
    int     i;
    size_t  k;

    if (ks == NULL) {
        return;
    }

    if (ks->keys != NULL) {
        for (k = 0; k < ks->nkeys && !ks->borrowed; k++) {
            mpn_jwk_free(&ks->keys[k]);
        }

        free(ks->keys);
    }

    for (i = 0; i < MPN_MD_N; i++) {
        EVP_MD_free(ks->md[i]);
    }

    EVP_MAC_free(ks->hmac);
    EVP_MD_CTX_free(ks->dctx);
    free(ks);
}


static void
mpn_jwk_free(mpn_jwk_t *key)
{
    int  i;

    free(key->kid);

    if (key->secret != NULL) {
        OPENSSL_cleanse(key->secret, key->secret_len);
        free(key->secret);
    }

    for (i = 0; i < MPN_MD_N; i++) {
        EVP_MAC_CTX_free(key->mac[i]);
    }

    for (i = 0; i < MPN_ALG_N; i++) {
        EVP_PKEY_CTX_free(key->vctx[i]);
    }

    EVP_MD_CTX_free(key->mdctx);
    EVP_PKEY_free(key->pkey);

    memset(key, 0, sizeof(mpn_jwk_t));
}


/* 0: loaded, 1: skipped (msg says why), -1: bad key (msg says why) */

static int
mpn_jwk_load_key(mpn_keyset_t *ks, mpn_jwk_t *key, json_t *obj,
    int want_private, char *msg, size_t msg_len)
{
    int          rc;
    size_t       n;
    json_t      *v;
    const char  *s;

    if (!json_is_object(obj)) {
        snprintf(msg, msg_len, "not a JSON object");
        return -1;
    }

    key->alg = MPN_ALG_ANY;

    v = json_object_get(obj, "use");
    if (v != NULL) {
        if (!json_is_string(v)) {
            snprintf(msg, msg_len, "bad \"use\"");
            return -1;
        }

        if (strcmp(json_string_value(v), "sig") != 0) {
            snprintf(msg, msg_len, "\"use\" is not \"sig\"");
            return 1;
        }
    }

    v = json_object_get(obj, "kty");
    if (!json_is_string(v)) {
        snprintf(msg, msg_len, "no \"kty\"");
        return -1;
    }

    s = json_string_value(v);

    if (strcmp(s, "oct") == 0) {
        key->kty = MPN_KTY_OCT;

    } else if (strcmp(s, "RSA") == 0) {
        key->kty = MPN_KTY_RSA;

    } else if (strcmp(s, "EC") == 0) {
        key->kty = MPN_KTY_EC;

    } else if (strcmp(s, "OKP") == 0) {
        key->kty = MPN_KTY_OKP;

    } else {
        snprintf(msg, msg_len, "unsupported \"kty\"");
        return 1;
    }

    if (key->kty == MPN_KTY_EC || key->kty == MPN_KTY_OKP) {
        v = json_object_get(obj, "crv");
        if (!json_is_string(v)) {
            snprintf(msg, msg_len, "no \"crv\"");
            return -1;
        }

        s = json_string_value(v);

        if (key->kty == MPN_KTY_EC && strcmp(s, "P-256") == 0) {
            key->crv = MPN_CRV_P256;

        } else if (key->kty == MPN_KTY_EC && strcmp(s, "P-384") == 0) {
            key->crv = MPN_CRV_P384;

        } else if (key->kty == MPN_KTY_OKP && strcmp(s, "Ed25519") == 0) {
            key->crv = MPN_CRV_ED25519;

        } else {
            snprintf(msg, msg_len, "unsupported \"crv\"");
            return 1;
        }
    }

    v = json_object_get(obj, "alg");
    if (v != NULL) {
        if (!json_is_string(v)) {
            snprintf(msg, msg_len, "bad \"alg\"");
            return -1;
        }

        key->alg = mpn_alg_find(json_string_value(v), json_string_length(v));

        if (key->alg == -1) {
            snprintf(msg, msg_len, "unsupported \"alg\"");
            return 1;
        }

        if (mpn_algs[key->alg].kty != key->kty
            || (key->crv != MPN_CRV_NONE
                && mpn_algs[key->alg].crv != key->crv))
        {
            snprintf(msg, msg_len, "\"alg\" does not fit \"kty\" or \"crv\"");
            return -1;
        }
    }

    v = json_object_get(obj, "kid");
    if (v != NULL) {
        if (!json_is_string(v)
            || !mpn_kid_valid(json_string_value(v), json_string_length(v)))
        {
            snprintf(msg, msg_len, "bad \"kid\"");
            return -1;
        }

        n = json_string_length(v);

        key->kid = malloc(n + 1);
        if (key->kid == NULL) {
            snprintf(msg, msg_len, "out of memory");
            return -1;
        }

        memcpy(key->kid, json_string_value(v), n + 1);
        key->kid_len = n;
    }

    switch (key->kty) {

    case MPN_KTY_OCT:
        rc = mpn_jwk_load_oct(ks, key, obj, msg, msg_len);
        break;

    case MPN_KTY_RSA:
        rc = mpn_jwk_load_rsa(key, obj, want_private, msg, msg_len);
        break;

    case MPN_KTY_EC:
        rc = mpn_jwk_load_ec(key, obj, want_private, msg, msg_len);
        break;

    default:
        rc = mpn_jwk_load_okp(key, obj, want_private, msg, msg_len);
        break;
    }

    if (rc != 0) {
        return rc;
    }

    if (key->kty == MPN_KTY_OCT) {
        return 0;
    }

    return mpn_jwk_prepare(ks, key, msg, msg_len);
}


static int
mpn_jwk_load_oct(mpn_keyset_t *ks, mpn_jwk_t *key, json_t *obj, char *msg,
    size_t msg_len)
{
    int            i, fit;
    unsigned char  buf[MPN_JWK_MAX_PARAM];
    OSSL_PARAM     params[2];

    if (mpn_jwk_member(obj, "k", buf, sizeof(buf), &key->secret_len,
                       msg, msg_len)
        != 0)
    {
        return -1;
    }

    if (key->secret_len < MPN_JWK_HMAC_MIN) {
        OPENSSL_cleanse(buf, sizeof(buf));
        snprintf(msg, msg_len, "\"k\" is shorter than 256 bits");
        return -1;
    }

    key->secret = malloc(key->secret_len);
    if (key->secret == NULL) {
        OPENSSL_cleanse(buf, sizeof(buf));
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }

    memcpy(key->secret, buf, key->secret_len);
    OPENSSL_cleanse(buf, sizeof(buf));
    key->has_private = 1;

    /* one keyed HMAC context per hash the key is long enough for
     * (RFC 7518 section 3.2) */

    fit = 0;

    for (i = 0; i < MPN_MD_N; i++) {
        if (key->secret_len < mpn_algs[MPN_ALG_HS256 + i].size
            || (key->alg != MPN_ALG_ANY && key->alg != MPN_ALG_HS256 + i))
        {
            continue;
        }

        key->mac[i] = EVP_MAC_CTX_new(ks->hmac);
        if (key->mac[i] == NULL) {
            snprintf(msg, msg_len, "out of memory");
            return -1;
        }

        params[0] = OSSL_PARAM_construct_utf8_string(
                        OSSL_MAC_PARAM_DIGEST, (char *) mpn_md_names[i], 0);
        params[1] = OSSL_PARAM_construct_end();

        if (EVP_MAC_init(key->mac[i], key->secret, key->secret_len, params)
            != 1)
        {
            snprintf(msg, msg_len, "HMAC setup failed");
            return -1;
        }

        fit = 1;
    }

    if (!fit) {
        snprintf(msg, msg_len, "\"k\" is too short for \"alg\"");
        return -1;
    }

    return 0;
}


static int
mpn_jwk_load_rsa(mpn_jwk_t *key, json_t *obj, int want_private, char *msg,
    size_t msg_len)
{
    int              i, nbn, rc, priv;
    BIGNUM          *bns[8];
    OSSL_PARAM_BLD  *bld;

    static const char  *names[] = { "d", "p", "q", "dp", "dq", "qi" };
    static const char  *params[] = {
        OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1
    };

    nbn = 0;
    rc = -1;

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL) {
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }

    if (mpn_jwk_bn(bld, bns, &nbn, OSSL_PKEY_PARAM_RSA_N, obj, "n",
                   msg, msg_len)
        != 0
        || mpn_jwk_bn(bld, bns, &nbn, OSSL_PKEY_PARAM_RSA_E, obj, "e",
                      msg, msg_len)
           != 0)
    {
        goto done;
    }

    if (BN_num_bits(bns[0]) < MPN_JWK_RSA_MIN
        || BN_num_bits(bns[0]) > MPN_JWK_RSA_MAX)
    {
        snprintf(msg, msg_len, "\"n\" is not %d to %d bits",
                 MPN_JWK_RSA_MIN, MPN_JWK_RSA_MAX);
        goto done;
    }

    priv = 0;

    if (want_private && json_object_get(obj, "d") != NULL) {
        /* d alone, or d with all five CRT members */
        for (i = 0; i < 6; i++) {
            if (i > 0 && json_object_get(obj, "p") == NULL) {
                break;
            }

            if (mpn_jwk_bn(bld, bns, &nbn, params[i], obj, names[i],
                           msg, msg_len)
                != 0)
            {
                goto done;
            }
        }

        priv = 1;
    }

    key->pkey = mpn_jwk_fromdata("RSA", bld,
                                 priv ? EVP_PKEY_KEYPAIR
                                      : EVP_PKEY_PUBLIC_KEY);
    if (key->pkey == NULL) {
        snprintf(msg, msg_len, "bad RSA key");
        goto done;
    }

    key->has_private = priv;
    rc = 0;

done:

    for (i = 0; i < nbn; i++) {
        BN_clear_free(bns[i]);
    }

    OSSL_PARAM_BLD_free(bld);

    return rc;
}


static int
mpn_jwk_load_ec(mpn_jwk_t *key, json_t *obj, int want_private, char *msg,
    size_t msg_len)
{
    int              nid, rc, nbn;
    size_t           n, len;
    BIGNUM          *bns[1];
    EC_GROUP        *group;
    const char      *name;
    unsigned char    pub[1 + 2 * 66];
    OSSL_PARAM_BLD  *bld;

    if (key->crv == MPN_CRV_P256) {
        name = "prime256v1";
        nid = NID_X9_62_prime256v1;
        n = 32;

    } else {
        name = "secp384r1";
        nid = NID_secp384r1;
        n = 48;
    }

    pub[0] = 0x04;

    if (mpn_jwk_member(obj, "x", pub + 1, 66, &len, msg, msg_len) != 0) {
        return -1;
    }

    if (len != n) {
        snprintf(msg, msg_len, "bad \"x\"");
        return -1;
    }

    if (mpn_jwk_member(obj, "y", pub + 1 + n, 66, &len, msg, msg_len) != 0) {
        return -1;
    }

    if (len != n) {
        snprintf(msg, msg_len, "bad \"y\"");
        return -1;
    }

    group = EC_GROUP_new_by_curve_name(nid);
    if (group == NULL
        || BN_bn2binpad(EC_GROUP_get0_order(group), key->order, (int) n)
           != (int) n)
    {
        EC_GROUP_free(group);
        snprintf(msg, msg_len, "no curve %s in OpenSSL", name);
        return -1;
    }

    EC_GROUP_free(group);

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL) {
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }

    nbn = 0;
    rc = -1;

    if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        name, 0)
        != 1
        || OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                            pub, 1 + 2 * n)
           != 1)
    {
        snprintf(msg, msg_len, "out of memory");
        goto done;
    }

    if (want_private && json_object_get(obj, "d") != NULL) {
        if (mpn_jwk_bn(bld, bns, &nbn, OSSL_PKEY_PARAM_PRIV_KEY, obj, "d",
                       msg, msg_len)
            != 0)
        {
            goto done;
        }

        key->has_private = 1;
    }

    key->pkey = mpn_jwk_fromdata("EC", bld,
                                 key->has_private ? EVP_PKEY_KEYPAIR
                                                  : EVP_PKEY_PUBLIC_KEY);
    if (key->pkey == NULL) {
        snprintf(msg, msg_len, "bad EC key");
        goto done;
    }

    rc = 0;

done:

    if (nbn > 0) {
        BN_clear_free(bns[0]);
    }

    OSSL_PARAM_BLD_free(bld);

    return rc;
}


static int
mpn_jwk_load_okp(mpn_jwk_t *key, json_t *obj, int want_private, char *msg,
    size_t msg_len)
{
    int              rc;
    size_t           len;
    unsigned char    pub[64], priv[64];
    OSSL_PARAM_BLD  *bld;

    if (mpn_jwk_member(obj, "x", pub, sizeof(pub), &len, msg, msg_len)
        != 0)
    {
        return -1;
    }

    if (len != 32) {
        snprintf(msg, msg_len, "bad \"x\"");
        return -1;
    }

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL
        || OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                            pub, 32)
           != 1)
    {
        OSSL_PARAM_BLD_free(bld);
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }

    rc = -1;

    if (want_private && json_object_get(obj, "d") != NULL) {
        if (mpn_jwk_member(obj, "d", priv, sizeof(priv), &len, msg, msg_len)
            != 0)
        {
            goto done;
        }

        if (len != 32) {
            snprintf(msg, msg_len, "bad \"d\"");
            goto done;
        }

        if (OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PRIV_KEY,
                                             priv, 32)
            != 1)
        {
            snprintf(msg, msg_len, "out of memory");
            goto done;
        }

        key->has_private = 1;
    }

    key->pkey = mpn_jwk_fromdata("ED25519", bld,
                                 key->has_private ? EVP_PKEY_KEYPAIR
                                                  : EVP_PKEY_PUBLIC_KEY);
    if (key->pkey == NULL) {
        snprintf(msg, msg_len, "bad Ed25519 key");
        goto done;
    }

    rc = 0;

done:

    OPENSSL_cleanse(priv, sizeof(priv));
    OSSL_PARAM_BLD_free(bld);

    return rc;
}


/* checks the public key and makes the contexts verification reuses */

static int
mpn_jwk_prepare(mpn_keyset_t *ks, mpn_jwk_t *key, char *msg, size_t msg_len)
{
    int              i;
    EVP_PKEY_CTX    *ctx;
    const mpn_alg_t  *a;

    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
    if (ctx == NULL || EVP_PKEY_public_check(ctx) != 1) {
        EVP_PKEY_CTX_free(ctx);
        snprintf(msg, msg_len, "public key check failed");
        return -1;
    }

    EVP_PKEY_CTX_free(ctx);

    if (key->kty == MPN_KTY_OKP) {
        key->mdctx = EVP_MD_CTX_new();
        if (key->mdctx == NULL) {
            snprintf(msg, msg_len, "out of memory");
            return -1;
        }

        return 0;
    }

    for (i = 0; i < MPN_ALG_N; i++) {
        if (!mpn_jwk_fits(key, i)) {
            continue;
        }

        a = &mpn_algs[i];

        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
        if (ctx == NULL) {
            snprintf(msg, msg_len, "out of memory");
            return -1;
        }

        key->vctx[i] = ctx;

        if (EVP_PKEY_verify_init(ctx) != 1
            || EVP_PKEY_CTX_set_signature_md(ctx, ks->md[a->md]) != 1)
        {
            snprintf(msg, msg_len, "verify setup failed");
            return -1;
        }

        if (key->kty != MPN_KTY_RSA) {
            continue;
        }

        if (a->pss) {
            if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING)
                != 1
                || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, ks->md[a->md]) != 1
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx,
                                                    RSA_PSS_SALTLEN_DIGEST)
                   != 1)
            {
                snprintf(msg, msg_len, "verify setup failed");
                return -1;
            }

        } else if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING)
                   != 1)
        {
            snprintf(msg, msg_len, "verify setup failed");
            return -1;
        }
    }

    return 0;
}


static int
mpn_jwk_member(json_t *obj, const char *name, unsigned char *out,
    size_t size, size_t *len, char *msg, size_t msg_len)
{
    json_t  *v;

    v = json_object_get(obj, name);

    if (v == NULL) {
        snprintf(msg, msg_len, "no \"%s\"", name);
        return -1;
    }

    if (!json_is_string(v)
        || json_string_length(v) == 0
        || MPN_B64URL_DECODED_LEN(json_string_length(v)) > size
        || mpn_b64url_decode(json_string_value(v), json_string_length(v),
                             out, len)
           != 0)
    {
        snprintf(msg, msg_len, "bad \"%s\"", name);
        return -1;
    }

    return 0;
}


static int
mpn_jwk_bn(OSSL_PARAM_BLD *bld, BIGNUM **bns, int *nbn, const char *param,
    json_t *obj, const char *name, char *msg, size_t msg_len)
{
    size_t          len;
    BIGNUM         *bn;
    unsigned char   buf[MPN_JWK_MAX_PARAM];

    if (mpn_jwk_member(obj, name, buf, sizeof(buf), &len, msg, msg_len)
        != 0)
    {
        return -1;
    }

    bn = BN_bin2bn(buf, (int) len, NULL);
    OPENSSL_cleanse(buf, len);

    if (bn == NULL) {
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }

    bns[(*nbn)++] = bn;

    if (BN_is_zero(bn)) {
        snprintf(msg, msg_len, "bad \"%s\"", name);
        return -1;
    }

    if (OSSL_PARAM_BLD_push_BN(bld, param, bn) != 1) {
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }

    return 0;
}


static EVP_PKEY *
mpn_jwk_fromdata(const char *type, OSSL_PARAM_BLD *bld, int selection)
{
    EVP_PKEY      *pkey;
    OSSL_PARAM    *params;
    EVP_PKEY_CTX  *ctx;

    pkey = NULL;

    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);

    if (params == NULL || ctx == NULL
        || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, selection, params) != 1)
    {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);

    return pkey;
}



char *
mpn_token_keygen(const char *alg, const char *kid, char *err,
    size_t err_len)
{
    int              a;
    char            *out;
    json_t          *obj;
    EVP_PKEY        *pkey;
    size_t           n, len;
    unsigned char    buf[64];
    const mpn_alg_t  *al;

    a = (alg != NULL) ? mpn_alg_find(alg, strlen(alg)) : -1;
    if (a == -1) {
        mpn_err(err, err_len, "unsupported alg");
        return NULL;
    }

    al = &mpn_algs[a];
    pkey = NULL;
    out = NULL;

    obj = json_object();
    if (obj == NULL) {
        mpn_err(err, err_len, "out of memory");
        return NULL;
    }

    switch (al->kty) {

    case MPN_KTY_OCT:
        if (RAND_bytes(buf, (int) al->size) != 1
            || json_object_set_new(obj, "kty", json_string("oct")) != 0
            || mpn_jwk_put_b64(obj, "k", buf, al->size) != 0)
        {
            goto failed;
        }

        OPENSSL_cleanse(buf, sizeof(buf));
        break;

    case MPN_KTY_RSA:
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
        if (pkey == NULL
            || json_object_set_new(obj, "kty", json_string("RSA")) != 0
            || mpn_jwk_put_bn(obj, "n", pkey, OSSL_PKEY_PARAM_RSA_N, 0)
            || mpn_jwk_put_bn(obj, "e", pkey, OSSL_PKEY_PARAM_RSA_E, 0)
            || mpn_jwk_put_bn(obj, "d", pkey, OSSL_PKEY_PARAM_RSA_D, 0)
            || mpn_jwk_put_bn(obj, "p", pkey, OSSL_PKEY_PARAM_RSA_FACTOR1, 0)
            || mpn_jwk_put_bn(obj, "q", pkey, OSSL_PKEY_PARAM_RSA_FACTOR2, 0)
            || mpn_jwk_put_bn(obj, "dp", pkey,
                              OSSL_PKEY_PARAM_RSA_EXPONENT1, 0)
            || mpn_jwk_put_bn(obj, "dq", pkey,
                              OSSL_PKEY_PARAM_RSA_EXPONENT2, 0)
            || mpn_jwk_put_bn(obj, "qi", pkey,
                              OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 0))
        {
            goto failed;
        }

        break;

    case MPN_KTY_EC:
        n = al->size;
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
                                 al->crv == MPN_CRV_P256 ? "P-256"
                                                         : "P-384");
        if (pkey == NULL
            || json_object_set_new(obj, "kty", json_string("EC")) != 0
            || json_object_set_new(obj, "crv",
                                   json_string(al->crv == MPN_CRV_P256
                                               ? "P-256" : "P-384"))
               != 0
            || mpn_jwk_put_bn(obj, "x", pkey, OSSL_PKEY_PARAM_EC_PUB_X, n)
            || mpn_jwk_put_bn(obj, "y", pkey, OSSL_PKEY_PARAM_EC_PUB_Y, n)
            || mpn_jwk_put_bn(obj, "d", pkey, OSSL_PKEY_PARAM_PRIV_KEY, n))
        {
            goto failed;
        }

        break;

    default:
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        if (pkey == NULL
            || json_object_set_new(obj, "kty", json_string("OKP")) != 0
            || json_object_set_new(obj, "crv", json_string("Ed25519")) != 0)
        {
            goto failed;
        }

        len = sizeof(buf);
        if (EVP_PKEY_get_raw_public_key(pkey, buf, &len) != 1
            || mpn_jwk_put_b64(obj, "x", buf, len) != 0)
        {
            goto failed;
        }

        len = sizeof(buf);
        if (EVP_PKEY_get_raw_private_key(pkey, buf, &len) != 1
            || mpn_jwk_put_b64(obj, "d", buf, len) != 0)
        {
            goto failed;
        }

        OPENSSL_cleanse(buf, sizeof(buf));
        break;
    }

    if (json_object_set_new(obj, "use", json_string("sig")) != 0
        || json_object_set_new(obj, "alg", json_string(al->name)) != 0
        || (kid != NULL
            && json_object_set_new(obj, "kid", json_string(kid)) != 0))
    {
        goto failed;
    }

    out = json_dumps(obj, JSON_COMPACT);

failed:

    if (out == NULL) {
        mpn_err(err, err_len, "key generation failed");
    }

    OPENSSL_cleanse(buf, sizeof(buf));
    EVP_PKEY_free(pkey);
    json_decref(obj);
    ERR_clear_error();

    return out;
}


static int
mpn_jwk_put_b64(json_t *obj, const char *name, const unsigned char *p,
    size_t len)
{
    int     rc;
    char   *s;
    size_t  n;

    s = malloc(MPN_B64URL_ENCODED_LEN(len) + 1);
    if (s == NULL) {
        return -1;
    }

    n = mpn_b64url_encode(p, len, s);
    s[n] = '\0';

    rc = json_object_set_new(obj, name, json_string(s));

    OPENSSL_cleanse(s, n);
    free(s);

    return rc;
}


/* pad: the fixed length in bytes, or 0 for the minimal one */

static int
mpn_jwk_put_bn(json_t *obj, const char *name, EVP_PKEY *pkey,
    const char *param, size_t pad)
{
    int             rc, len;
    BIGNUM         *bn;
    unsigned char   buf[MPN_JWK_RSA_MAX / 8];

    bn = NULL;

    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) {
        return -1;
    }

    len = (pad != 0) ? (int) pad : BN_num_bytes(bn);

    if (BN_bn2binpad(bn, buf, len) != len) {
        BN_clear_free(bn);
        return -1;
    }

    BN_clear_free(bn);

    rc = mpn_jwk_put_b64(obj, name, buf, (size_t) len);
    OPENSSL_cleanse(buf, (size_t) len);

    return rc;
}
