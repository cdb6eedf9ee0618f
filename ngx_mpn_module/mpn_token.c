/*
 * JWS compact serialization (RFC 7515) and JWT claims (RFC 7519) for
 * partner tokens, spec section 4.  Every rejection gives a reason in words
 * and never echoes the token.
 */

#include "mpn_token.h"
#include "mpn_jwk.h"
#include "mpn_b64url.h"
#include "mpn_record.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>


#define MPN_TOKEN_TIME_MAX  9007199254740992LL    /* 2^53 */
#define MPN_JWK_SIG_MAX     2048                  /* RSA-16384 */


static int mpn_token_header(const mpn_keyset_t *ks, const unsigned char *p,
    size_t len, const mpn_jwk_t **key, int *alg, const char **why);
static int mpn_token_header_cached(const mpn_keyset_t *ks, const char *text,
    size_t len, const mpn_jwk_t **key, int *alg);
static void mpn_token_header_cache(const mpn_keyset_t *ks, const char *text,
    size_t len, const mpn_jwk_t *key, int alg);
static const mpn_jwk_t *mpn_token_key(const mpn_keyset_t *ks, int alg,
    const char *kid, size_t kid_len, const char **why);
static int mpn_token_check_sig(const mpn_keyset_t *ks, const mpn_jwk_t *key,
    int alg, const char *input, size_t input_len, const unsigned char *sig,
    size_t sig_len, const char **why);
static int mpn_token_digest(const mpn_keyset_t *ks, int md,
    const char *input, size_t input_len, unsigned char *out,
    unsigned int *out_len);
static int mpn_token_time(json_t *v, int round_up, int64_t *t);
static int mpn_token_audience(json_t *aud, const char *audience);
static int mpn_token_string_is(json_t *v, const char *s);
static void mpn_token_strip_bearer(const char **tok, size_t *len);
static int mpn_token_sign_input(const mpn_keyset_t *ks, const mpn_jwk_t *key,
    int alg, const char *input, size_t input_len, unsigned char *sig,
    size_t *sig_len);


int
mpn_token_verify_jws(const mpn_keyset_t *ks, const char *tok, size_t len,
    unsigned char *payload, size_t size, size_t *payload_len,
    const char **why)
{
    int               alg;
    size_t            hlen, plen, slen, n;
    const char       *dot1, *dot2, *p, *s;
    const mpn_jwk_t  *key;
    unsigned char     buf[MPN_TOKEN_MAX];

    if (len == 0) {
        *why = "no token";
        return MPN_TOKEN_NONE;
    }

    /* refused before any decoding */
    if (len > MPN_TOKEN_MAX) {
        *why = "token too long";
        return MPN_TOKEN_BAD;
    }

    dot1 = memchr(tok, '.', len);
    dot2 = (dot1 != NULL) ? memchr(dot1 + 1, '.', len - (dot1 + 1 - tok))
                          : NULL;

    if (dot2 == NULL
        || memchr(dot2 + 1, '.', len - (dot2 + 1 - tok)) != NULL)
    {
        *why = "not three segments";
        return MPN_TOKEN_BAD;
    }

    hlen = dot1 - tok;
    p = dot1 + 1;
    plen = dot2 - p;
    s = dot2 + 1;
    slen = len - (s - tok);

    if (hlen == 0 || plen == 0) {
        *why = "empty segment";
        return MPN_TOKEN_BAD;
    }

    if (mpn_token_header_cached(ks, tok, hlen, &key, &alg) != 0) {

        if (mpn_b64url_decode(tok, hlen, buf, &n) != 0) {
            *why = "bad base64url";
            return MPN_TOKEN_BAD;
        }

        if (mpn_token_header(ks, buf, n, &key, &alg, why) != 0) {
            return MPN_TOKEN_BAD;
        }

        mpn_token_header_cache(ks, tok, hlen, key, alg);
    }

    if (slen == 0) {
        *why = "no signature";
        return MPN_TOKEN_BAD;
    }

    if (MPN_B64URL_DECODED_LEN(plen) > size
        || mpn_b64url_decode(p, plen, payload, payload_len) != 0)
    {
        *why = "bad base64url";
        return MPN_TOKEN_BAD;
    }

    if (mpn_b64url_decode(s, slen, buf, &n) != 0) {
        *why = "bad base64url";
        return MPN_TOKEN_BAD;
    }

    if (mpn_token_check_sig(ks, key, alg, tok, dot2 - tok, buf, n, why)
        != 0)
    {
        return MPN_TOKEN_BAD;
    }

    return MPN_TOKEN_OK;
}


int
mpn_token_verify(const mpn_keyset_t *ks, const char *tok, size_t len,
    int64_t now, const mpn_token_opts_t *opts, char *id, size_t *id_len,
    const char **why)
{
    int64_t  exp, nbf;

    return mpn_token_verify_times(ks, tok, len, now, opts, id, id_len, &exp,
                                  &nbf, why);
}


int
mpn_token_verify_times(const mpn_keyset_t *ks, const char *tok, size_t len,
    int64_t now, const mpn_token_opts_t *opts, char *id, size_t *id_len,
    int64_t *exp_out, int64_t *nbf_out, const char **why)
{
    int             rc;
    size_t          plen, n;
    int64_t         exp, nbf;
    json_t         *claims, *v;
    const char     *claim, *s;
    unsigned char   payload[MPN_TOKEN_MAX];

    if (len == 0) {
        *why = "no token";
        return MPN_TOKEN_NONE;
    }

    if (len > MPN_TOKEN_MAX) {
        *why = "token too long";
        return MPN_TOKEN_BAD;
    }

    mpn_token_strip_bearer(&tok, &len);

    rc = mpn_token_verify_jws(ks, tok, len, payload, sizeof(payload), &plen,
                              why);
    if (rc != MPN_TOKEN_OK) {
        return rc;
    }

    claims = json_loadb((const char *) payload, plen, JSON_REJECT_DUPLICATES,
                        NULL);
    if (claims == NULL) {
        *why = "claims not JSON";
        return MPN_TOKEN_BAD;
    }

    rc = MPN_TOKEN_BAD;

    if (!json_is_object(claims)) {
        *why = "claims not an object";
        goto done;
    }

    v = json_object_get(claims, "exp");
    if (v == NULL) {
        *why = "no exp";
        goto done;
    }

    if (mpn_token_time(v, 0, &exp) != 0) {
        *why = "bad exp";
        goto done;
    }

    nbf = 0;
    v = json_object_get(claims, "nbf");

    if (v != NULL && mpn_token_time(v, 1, &nbf) != 0) {
        *why = "bad nbf";
        goto done;
    }

    if (opts != NULL && opts->issuer != NULL
        && !mpn_token_string_is(json_object_get(claims, "iss"),
                                opts->issuer))
    {
        *why = "issuer mismatch";
        goto done;
    }

    if (opts != NULL && opts->audience != NULL
        && !mpn_token_audience(json_object_get(claims, "aud"),
                               opts->audience))
    {
        *why = "audience mismatch";
        goto done;
    }

    claim = (opts != NULL && opts->claim != NULL) ? opts->claim : "sub";

    v = json_object_get(claims, claim);
    if (v == NULL) {
        *why = "no partner claim";
        goto done;
    }

    if (!json_is_string(v)) {
        *why = "bad partner claim";
        goto done;
    }

    /* a string that is no partner id is decided once the token is
     * otherwise known good: bad_identity, not bad_token */

    s = json_string_value(v);
    n = json_string_length(v);

    rc = mpn_token_check_times(exp, nbf, now, opts, why);
    if (rc != MPN_TOKEN_OK) {
        goto done;
    }

    if (!mpn_partner_id_valid(s, n)) {
        *why = "partner claim is not a partner id";
        rc = MPN_TOKEN_BAD_ID;
        goto done;
    }

    memcpy(id, s, n);
    id[n] = '\0';
    *id_len = n;

    *exp_out = exp;
    *nbf_out = nbf;

done:

    json_decref(claims);

    return rc;
}


int
mpn_token_check_times(int64_t exp, int64_t nbf, int64_t now,
    const mpn_token_opts_t *opts, const char **why)
{
    int64_t  leeway;

    leeway = (opts != NULL) ? opts->leeway : 0;

    if (leeway < 0) {
        leeway = 0;

    } else if (leeway > MPN_TOKEN_TIME_MAX) {
        leeway = MPN_TOKEN_TIME_MAX;
    }

    if (now < INT64_MAX - leeway && nbf > now + leeway) {
        *why = "not yet valid";
        return MPN_TOKEN_BAD;
    }

    if (now > INT64_MIN + leeway && exp <= now - leeway) {
        *why = "expired";
        return MPN_TOKEN_EXPIRED;
    }

    *why = "ok";

    return MPN_TOKEN_OK;
}


void
mpn_token_describe(const char *tok, size_t len, char *kid, size_t kid_size,
    char *hash)
{
    size_t          i, n, hlen;
    json_t         *hdr, *v;
    const char     *dot, *s;
    unsigned int    md_len;
    unsigned char   md[EVP_MAX_MD_SIZE];
    unsigned char   buf[MPN_TOKEN_MAX];
    static const char  hex[] = "0123456789abcdef";

    mpn_token_strip_bearer(&tok, &len);

    if (kid_size > 0) {
        kid[0] = '\0';
    }

    hash[0] = '\0';

    if (EVP_Digest(tok, len, md, &md_len, EVP_sha256(), NULL) == 1) {
        for (i = 0; i < MPN_TOKEN_HASH_HEX / 2; i++) {
            hash[2 * i] = hex[md[i] >> 4];
            hash[2 * i + 1] = hex[md[i] & 0xf];
        }

        hash[MPN_TOKEN_HASH_HEX] = '\0';
    }

    if (kid_size == 0 || len > MPN_TOKEN_MAX) {
        return;
    }

    dot = memchr(tok, '.', len);
    hlen = (dot != NULL) ? (size_t) (dot - tok) : 0;

    if (hlen == 0 || mpn_b64url_decode(tok, hlen, buf, &n) != 0) {
        return;
    }

    hdr = json_loadb((const char *) buf, n, JSON_REJECT_DUPLICATES, NULL);
    if (hdr == NULL) {
        return;
    }

    v = json_object_get(hdr, "kid");

    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);

        if (n > kid_size - 1) {
            n = kid_size - 1;
        }

        /* printable ASCII only: a kid must not forge or split a log line */

        for (i = 0; i < n; i++) {
            kid[i] = (s[i] > 0x20 && s[i] < 0x7f && s[i] != '"'
                      && s[i] != '\\')
                     ? s[i] : '?';
        }

        kid[n] = '\0';
    }

    json_decref(hdr);
}


/* "Bearer" in any case, then one or more spaces */

static void
mpn_token_strip_bearer(const char **tok, size_t *len)
{
    const char  *t;
    size_t       n;

    t = *tok;
    n = *len;

    if (n > 6 && strncasecmp(t, "bearer", 6) == 0 && t[6] == ' ') {
        t += 7;
        n -= 7;

        while (n > 0 && *t == ' ') {
            t++;
            n--;
        }
    }

    *tok = t;
    *len = n;
}

static int
mpn_token_header(const mpn_keyset_t *ks, const unsigned char *p, size_t len,
    const mpn_jwk_t **key, int *alg, const char **why)
{
    int          rc;
    json_t      *hdr, *v;
    const char  *kid;
    size_t       kid_len;

    hdr = json_loadb((const char *) p, len, JSON_REJECT_DUPLICATES, NULL);
    if (hdr == NULL) {
        *why = "header not JSON";
        return -1;
    }

    rc = -1;

    if (!json_is_object(hdr)) {
        *why = "header not an object";
        goto done;
    }

    v = json_object_get(hdr, "alg");
    if (!json_is_string(v)) {
        *why = "no alg";
        goto done;
    }

    if (strcasecmp(json_string_value(v), "none") == 0) {
        *why = "alg none";
        goto done;
    }

    *alg = mpn_alg_find(json_string_value(v), json_string_length(v));
    if (*alg == -1) {
        *why = "unsupported alg";
        goto done;
    }

    /* no extension is understood (RFC 7515 section 4.1.11) */
    if (json_object_get(hdr, "crit") != NULL) {
        *why = "unknown crit";
        goto done;
    }

    kid = NULL;
    kid_len = 0;

    v = json_object_get(hdr, "kid");
    if (v != NULL) {
        if (!json_is_string(v)
            || !mpn_kid_valid(json_string_value(v), json_string_length(v)))
        {
            *why = "bad kid";
            goto done;
        }

        kid = json_string_value(v);
        kid_len = json_string_length(v);
    }

    *key = mpn_token_key(ks, *alg, kid, kid_len, why);
    if (*key == NULL) {
        goto done;
    }

    rc = 0;

done:

    json_decref(hdr);

    return rc;
}


/* 0: found, with the key and alg of an earlier identical header */

static int
mpn_token_header_cached(const mpn_keyset_t *ks, const char *text,
    size_t len, const mpn_jwk_t **key, int *alg)
{
    size_t                  i;
    const mpn_hdr_cache_t  *c;

    for (i = 0; i < MPN_HDR_CACHE; i++) {
        c = &ks->hdr[i];

        if (c->len == len && memcmp(c->text, text, len) == 0) {
            *key = c->key;
            *alg = c->alg;
            return 0;
        }
    }

    return -1;
}


/* only headers that passed every check are kept; the key set is shared
 * read-only except for this cache and the OpenSSL contexts */

static void
mpn_token_header_cache(const mpn_keyset_t *ks, const char *text, size_t len,
    const mpn_jwk_t *key, int alg)
{
    mpn_keyset_t     *mks;
    mpn_hdr_cache_t  *c;

    if (len == 0 || len > MPN_HDR_CACHE_LEN) {
        return;
    }

    mks = (mpn_keyset_t *) ks;
    c = &mks->hdr[mks->hdr_next++ % MPN_HDR_CACHE];

    memcpy(c->text, text, len);
    c->len = len;
    c->key = key;
    c->alg = alg;
}


static const mpn_jwk_t *
mpn_token_key(const mpn_keyset_t *ks, int alg, const char *kid,
    size_t kid_len, const char **why)
{
    size_t            i, named, fit;
    const mpn_jwk_t  *k, *found;

    found = NULL;
    named = 0;
    fit = 0;

    for (i = 0; i < ks->nkeys; i++) {
        k = &ks->keys[i];

        if (kid != NULL) {
            if (k->kid == NULL || k->kid_len != kid_len
                || memcmp(k->kid, kid, kid_len) != 0)
            {
                continue;
            }

            named++;
        }

        if (mpn_jwk_fits(k, alg)) {
            found = k;
            fit++;
        }
    }

    if (kid != NULL && named == 0) {
        *why = MPN_TOKEN_WHY_UNKNOWN_KID;
        return NULL;
    }

    if (fit == 0) {
        *why = (kid != NULL) ? "alg does not fit the key"
                             : "no key for alg";
        return NULL;
    }

    if (fit > 1) {
        *why = "more than one key fits";
        return NULL;
    }

    return found;
}


static int
mpn_token_check_sig(const mpn_keyset_t *ks, const mpn_jwk_t *key, int alg,
    const char *input, size_t input_len, const unsigned char *sig,
    size_t sig_len, const char **why)
{
    int               rc, i;
    size_t            n, j, mac_len;
    BIGNUM           *r, *s;
    ECDSA_SIG        *esig;
    unsigned int      md_len;
    unsigned char    *der_p;
    unsigned char     md[EVP_MAX_MD_SIZE], der[160];
    EVP_MAC_CTX      *mac;
    const mpn_alg_t  *a;

    a = &mpn_algs[alg];
    rc = -1;

    switch (key->kty) {

    case MPN_KTY_OCT:
        if (sig_len != a->size) {
            *why = "bad signature length";
            return -1;
        }

        mac = key->mac[a->md];

        if (EVP_MAC_init(mac, NULL, 0, NULL) != 1
            || EVP_MAC_update(mac, (const unsigned char *) input, input_len)
               != 1
            || EVP_MAC_final(mac, md, &mac_len, sizeof(md)) != 1
            || mac_len != a->size)
        {
            *why = "HMAC failed";
            break;
        }

        if (CRYPTO_memcmp(md, sig, mac_len) != 0) {
            *why = "signature mismatch";
            break;
        }

        rc = 0;
        break;

    case MPN_KTY_RSA:
        if (sig_len != (size_t) EVP_PKEY_get_size(key->pkey)) {
            *why = "bad signature length";
            return -1;
        }

        if (mpn_token_digest(ks, a->md, input, input_len, md, &md_len)
            != 0)
        {
            *why = "digest failed";
            break;
        }

        if (EVP_PKEY_verify(key->vctx[alg], sig, sig_len, md, md_len)
            != 1)
        {
            *why = "signature mismatch";
            break;
        }

        rc = 0;
        break;

    case MPN_KTY_EC:
        n = a->size;

        /* only raw r || s; a DER signature has another length */
        if (sig_len != 2 * n) {
            *why = "not a raw ECDSA signature";
            return -1;
        }

        /* 0 < r, s < order: CVE-2022-21449 */
        for (i = 0; i < 2; i++) {
            for (j = 0; j < n && sig[i * n + j] == 0; j++) {
                /* void */
            }

            if (j == n || memcmp(sig + i * n, key->order, n) >= 0) {
                *why = "ECDSA r or s out of range";
                return -1;
            }
        }

        r = BN_bin2bn(sig, (int) n, NULL);
        s = BN_bin2bn(sig + n, (int) n, NULL);
        esig = ECDSA_SIG_new();

        if (r == NULL || s == NULL || esig == NULL
            || ECDSA_SIG_set0(esig, r, s) != 1)
        {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(esig);
            *why = "out of memory";
            break;
        }

        der_p = der;
        md_len = 0;

        if (i2d_ECDSA_SIG(esig, NULL) > (int) sizeof(der)
            || i2d_ECDSA_SIG(esig, &der_p) <= 0)
        {
            ECDSA_SIG_free(esig);
            *why = "ECDSA encoding failed";
            break;
        }

        ECDSA_SIG_free(esig);

        if (mpn_token_digest(ks, a->md, input, input_len, md, &md_len)
            != 0)
        {
            *why = "digest failed";
            break;
        }

        if (EVP_PKEY_verify(key->vctx[alg], der, der_p - der, md, md_len)
            != 1)
        {
            *why = "signature mismatch";
            break;
        }

        rc = 0;
        break;

    default:
        if (sig_len != 64) {
            *why = "bad signature length";
            return -1;
        }

        if (EVP_DigestVerifyInit_ex(key->mdctx, NULL, NULL, NULL, NULL,
                                    key->pkey, NULL)
            != 1
            || EVP_DigestVerify(key->mdctx, sig, sig_len,
                                (const unsigned char *) input, input_len)
               != 1)
        {
            *why = "signature mismatch";
            break;
        }

        rc = 0;
        break;
    }

    if (rc != 0) {
        ERR_clear_error();
    }

    return rc;
}


static int
mpn_token_digest(const mpn_keyset_t *ks, int md, const char *input,
    size_t input_len, unsigned char *out, unsigned int *out_len)
{
    if (EVP_DigestInit_ex(ks->dctx, ks->md[md], NULL) != 1
        || EVP_DigestUpdate(ks->dctx, input, input_len) != 1
        || EVP_DigestFinal_ex(ks->dctx, out, out_len) != 1)
    {
        return -1;
    }

    return 0;
}


/* a NumericDate: a JSON number within 0 .. 2^53; fractions are rounded
 * toward the stricter side (down for exp, up for nbf) */

static int
mpn_token_time(json_t *v, int round_up, int64_t *t)
{
    double     d;
    json_int_t i;

    if (json_is_integer(v)) {
        i = json_integer_value(v);

        if (i < 0 || i > MPN_TOKEN_TIME_MAX) {
            return -1;
        }

        *t = (int64_t) i;
        return 0;
    }

    if (json_is_real(v)) {
        d = json_real_value(v);

        if (!isfinite(d) || d < 0 || d > (double) MPN_TOKEN_TIME_MAX) {
            return -1;
        }

        *t = (int64_t) (round_up ? ceil(d) : floor(d));
        return 0;
    }

    return -1;
}


static int
mpn_token_audience(json_t *aud, const char *audience)
{
    size_t   i;
    json_t  *v;

    if (json_is_string(aud)) {
        return mpn_token_string_is(aud, audience);
    }

    if (!json_is_array(aud)) {
        return 0;
    }

    json_array_foreach(aud, i, v) {
        if (mpn_token_string_is(v, audience)) {
            return 1;
        }
    }

    return 0;
}


static int
mpn_token_string_is(json_t *v, const char *s)
{
    size_t  n;

    if (!json_is_string(v)) {
        return 0;
    }

    n = strlen(s);

    return json_string_length(v) == n
           && memcmp(json_string_value(v), s, n) == 0;
}


char *
mpn_token_sign(const char *jwks_json, size_t len, const char *kid,
    const char *alg, const char *claims_json, char *err, size_t err_len)
{
    return mpn_token_sign_raw(jwks_json, len, kid, alg, NULL,
                              (const unsigned char *) claims_json,
                              strlen(claims_json), err, err_len);
}


char *
mpn_token_sign_raw(const char *jwks_json, size_t len, const char *kid,
    const char *alg, const char *header_json, const unsigned char *payload,
    size_t payload_len, char *err, size_t err_len)
{
    int               a;
    char             *out, *hdr, *q;
    size_t            i, n, fit, hlen, sig_len;
    mpn_jwk_t        *k, *key;
    mpn_keyset_t     *ks;
    unsigned char     sig[MPN_JWK_SIG_MAX];

    static const int  defaults[] = {
        MPN_ALG_HS256, MPN_ALG_RS256, MPN_ALG_ES256, MPN_ALG_EDDSA
    };

    out = NULL;
    hdr = NULL;

    ks = mpn_keyset_load_private(jwks_json, len, err, err_len);
    if (ks == NULL) {
        return NULL;
    }

    a = -1;

    if (alg != NULL) {
        a = mpn_alg_find(alg, strlen(alg));
        if (a == -1) {
            snprintf(err, err_len, "unsupported alg");
            goto done;
        }
    }

    key = NULL;
    fit = 0;

    for (i = 0; i < ks->nkeys; i++) {
        k = &ks->keys[i];

        if (!k->has_private
            || (kid != NULL
                && (k->kid == NULL || strcmp(k->kid, kid) != 0))
            || (a != -1 && !mpn_jwk_fits(k, a)))
        {
            continue;
        }

        key = k;
        fit++;
    }

    if (fit != 1) {
        snprintf(err, err_len, fit == 0 ? "no private key fits"
                                        : "more than one private key fits");
        goto done;
    }

    if (a == -1) {
        a = key->alg;

        if (a == MPN_ALG_ANY) {
            a = (key->kty == MPN_KTY_EC && key->crv == MPN_CRV_P384)
                ? MPN_ALG_ES384 : defaults[key->kty];
        }

        if (!mpn_jwk_fits(key, a)) {
            snprintf(err, err_len, "the key does not fit %s",
                     mpn_algs[a].name);
            goto done;
        }
    }

    if (header_json == NULL) {
        json_t  *h;

        h = (key->kid != NULL)
            ? json_pack("{s:s, s:s}", "alg", mpn_algs[a].name,
                        "kid", key->kid)
            : json_pack("{s:s}", "alg", mpn_algs[a].name);

        hdr = (h != NULL) ? json_dumps(h, JSON_COMPACT) : NULL;
        json_decref(h);

        if (hdr == NULL) {
            snprintf(err, err_len, "out of memory");
            goto done;
        }

        header_json = hdr;
    }

    hlen = strlen(header_json);
    n = MPN_B64URL_ENCODED_LEN(hlen) + 1 + MPN_B64URL_ENCODED_LEN(payload_len)
        + 1 + MPN_B64URL_ENCODED_LEN(sizeof(sig)) + 1;

    out = malloc(n);
    if (out == NULL) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }

    q = out;
    q += mpn_b64url_encode((const unsigned char *) header_json, hlen, q);
    *q++ = '.';
    q += mpn_b64url_encode(payload, payload_len, q);

    if (mpn_token_sign_input(ks, key, a, out, q - out, sig, &sig_len) != 0) {
        snprintf(err, err_len, "signing failed");
        free(out);
        out = NULL;
        goto done;
    }

    *q++ = '.';
    q += mpn_b64url_encode(sig, sig_len, q);
    *q = '\0';

done:

    free(hdr);
    mpn_keyset_free(ks);
    ERR_clear_error();

    return out;
}


static int
mpn_token_sign_input(const mpn_keyset_t *ks, const mpn_jwk_t *key, int alg,
    const char *input, size_t input_len, unsigned char *sig,
    size_t *sig_len)
{
    int                   rc;
    size_t                len, n;
    ECDSA_SIG            *esig;
    EVP_MD_CTX           *mdctx;
    EVP_MAC_CTX          *mac;
    EVP_PKEY_CTX         *pctx;
    const BIGNUM         *r, *s;
    const mpn_alg_t      *a;
    const unsigned char  *p;
    unsigned char         der[MPN_JWK_SIG_MAX];

    a = &mpn_algs[alg];

    if (key->kty == MPN_KTY_OCT) {
        mac = key->mac[a->md];

        if (EVP_MAC_init(mac, NULL, 0, NULL) != 1
            || EVP_MAC_update(mac, (const unsigned char *) input, input_len)
               != 1
            || EVP_MAC_final(mac, sig, sig_len, MPN_JWK_SIG_MAX) != 1)
        {
            return -1;
        }

        return 0;
    }

    rc = -1;
    esig = NULL;
    pctx = NULL;

    mdctx = EVP_MD_CTX_new();
    if (mdctx == NULL) {
        return -1;
    }

    if (EVP_DigestSignInit_ex(mdctx, &pctx,
                              a->md == MPN_MD_NONE
                              ? NULL : EVP_MD_get0_name(ks->md[a->md]),
                              NULL, NULL, key->pkey, NULL)
        != 1)
    {
        goto done;
    }

    if (key->kty == MPN_KTY_RSA) {
        if (a->pss) {
            if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING)
                != 1
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
                                                    RSA_PSS_SALTLEN_DIGEST)
                   != 1)
            {
                goto done;
            }

        } else if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING)
                   != 1)
        {
            goto done;
        }
    }

    len = sizeof(der);

    if (EVP_DigestSign(mdctx, der, &len, (const unsigned char *) input,
                       input_len)
        != 1)
    {
        goto done;
    }

    if (key->kty != MPN_KTY_EC) {
        memcpy(sig, der, len);
        *sig_len = len;
        rc = 0;
        goto done;
    }

    /* DER to the raw r || s of JWS (RFC 7518 section 3.4) */

    p = der;
    esig = d2i_ECDSA_SIG(NULL, &p, (long) len);
    if (esig == NULL) {
        goto done;
    }

    ECDSA_SIG_get0(esig, &r, &s);
    n = a->size;

    if (BN_bn2binpad(r, sig, (int) n) != (int) n
        || BN_bn2binpad(s, sig + n, (int) n) != (int) n)
    {
        goto done;
    }

    *sig_len = 2 * n;
    rc = 0;

done:

    ECDSA_SIG_free(esig);
    EVP_MD_CTX_free(mdctx);

    return rc;
}
