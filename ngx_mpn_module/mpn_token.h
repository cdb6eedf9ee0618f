/*
 * Signed partner tokens (spec section 4): a JWS in compact form, a key set
 * read from a JWKS document, `now` and the settings go in; the partner id
 * or a reason come out.  No nginx dependency.
 *
 * A key set is built once (every key becomes an EVP_PKEY or an HMAC
 * context at load time) and is then used read-only, except for OpenSSL
 * contexts it keeps for reuse: one key set must not be used by two
 * threads at once (nginx workers are single-threaded).
 */

#ifndef MPN_TOKEN_H
#define MPN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define MPN_TOKEN_MAX     8192       /* longer tokens are bad, undecoded */
#define MPN_TOKEN_ID_MAX  64         /* the partner id buffer holds 65 */
#define MPN_TOKEN_KID_MAX 255
#define MPN_TOKEN_HASH_HEX 8         /* hex digits of a token's log hash */

#define MPN_TOKEN_WHY_UNKNOWN_KID  "unknown kid"


enum {
    MPN_TOKEN_OK = 0,
    MPN_TOKEN_NONE,                  /* empty value: no_token */
    MPN_TOKEN_EXPIRED,               /* otherwise valid: token_expired */
    MPN_TOKEN_BAD,                   /* anything else: bad_token */
    MPN_TOKEN_BAD_ID                 /* valid, but the partner claim is a
                                        string that is no partner id:
                                        bad_identity */
};


typedef struct mpn_keyset_s  mpn_keyset_t;

typedef void (*mpn_token_warn_pt)(void *data, const char *msg);

typedef struct {
    const char  *claim;              /* NULL: "sub" */
    const char  *issuer;             /* NULL: iss unchecked */
    const char  *audience;           /* NULL: aud unchecked */
    int64_t      leeway;             /* seconds, for exp and nbf */
} mpn_token_opts_t;


/* Parses a JWKS document ({"keys":[...]}).  Keys with a "use" other than
 * "sig", or an unsupported kty, crv or alg, are skipped and reported through
 * warn (which may be NULL).  Private members are ignored.  On failure
 * returns NULL and puts a message in err, naming the key by its index in
 * "keys" from 0, e.g. "key 2: bad \"n\"". */
mpn_keyset_t *mpn_keyset_load(const char *json, size_t len, char *err,
    size_t err_len, mpn_token_warn_pt warn, void *warn_data);

void mpn_keyset_free(mpn_keyset_t *ks);

/* the number of usable keys */
size_t mpn_keyset_count(const mpn_keyset_t *ks);

/* A key set holding the keys of a, then those of b, as if both documents
 * had been one (a kid in both is ambiguous, as within one set).  The keys
 * are borrowed, not copied: the join must be freed (mpn_keyset_free)
 * before a or b.  NULL when out of memory. */
mpn_keyset_t *mpn_keyset_join(const mpn_keyset_t *a, const mpn_keyset_t *b);


/* Verifies a compact JWS and its claims.  A leading "Bearer" (any case)
 * followed by one or more spaces is stripped.  On MPN_TOKEN_OK, id gets
 * the partner id (MPN_TOKEN_ID_MAX + 1 bytes, NUL-terminated) and *id_len
 * its length.  MPN_TOKEN_BAD_ID: every check passed but the partner claim
 * is a string that does not match ^[A-Za-z0-9._-]{1,64}$.  Otherwise *why is a static string in words ("signature
 * mismatch", "unknown kid", "alg none", "expired", ...) that never holds
 * any byte of the token; a kid that names no key is always
 * MPN_TOKEN_WHY_UNKNOWN_KID, which a caller may compare with strcmp(). */
int mpn_token_verify(const mpn_keyset_t *ks, const char *tok, size_t len,
    int64_t now, const mpn_token_opts_t *opts, char *id, size_t *id_len,
    const char **why);

/* The same, and on MPN_TOKEN_OK the token's exp and nbf (0 when absent),
 * so that a cache of verified tokens can check them again at each use. */
int mpn_token_verify_times(const mpn_keyset_t *ks, const char *tok,
    size_t len, int64_t now, const mpn_token_opts_t *opts, char *id,
    size_t *id_len, int64_t *exp, int64_t *nbf, const char **why);

/* The time checks of mpn_token_verify alone: MPN_TOKEN_OK, _EXPIRED
 * ("expired") or _BAD ("not yet valid"), with opts->leeway. */
int mpn_token_check_times(int64_t exp, int64_t nbf, int64_t now,
    const mpn_token_opts_t *opts, const char **why);

/* What may be logged of a rejected token, and nothing else of it: the
 * "kid" of its JOSE header when the header decodes (printable ASCII, with
 * '"' and '\\' shown as '?', cut to kid_size - 1 bytes; else "") and in
 * hash the first MPN_TOKEN_HASH_HEX hex digits of the SHA-256 of the token
 * past any "Bearer " (hash holds MPN_TOKEN_HASH_HEX + 1 bytes).  The hash
 * is enough to match two log lines about one token. */
void mpn_token_describe(const char *tok, size_t len, char *kid,
    size_t kid_size, char *hash);

/* The signature layer alone: header checks, key choice and signature, no
 * claims.  The decoded payload goes into payload (size bytes; at least
 * MPN_TOKEN_MAX is always enough).  Returns MPN_TOKEN_OK, _NONE or _BAD.
 * No "Bearer" stripping. */
int mpn_token_verify_jws(const mpn_keyset_t *ks, const char *tok,
    size_t len, unsigned char *payload, size_t size, size_t *payload_len,
    const char **why);


/* A small signer for tests, benchmarks and the operator CLI.  Signs
 * claims_json (as is, byte for byte) with the private key of a JWKS
 * document entry chosen by kid, else the only private key that fits alg.
 * alg NULL: the key's "alg", else the default for its kty and crv (HS256,
 * RS256, ES256, ES384, EdDSA).  Returns the compact JWS in a malloc()ed
 * string, or NULL with a message in err. */
char *mpn_token_sign(const char *jwks_json, size_t len, const char *kid,
    const char *alg, const char *claims_json, char *err, size_t err_len);

/* The same with a JOSE header given as is (NULL: {"alg":..,"kid":..}) and
 * a payload of any bytes: tests use it to build hostile tokens. */
char *mpn_token_sign_raw(const char *jwks_json, size_t len, const char *kid,
    const char *alg, const char *header_json, const unsigned char *payload,
    size_t payload_len, char *err, size_t err_len);

/* Makes a new key for alg (HS256 .. EdDSA) as a JWK object with its private
 * members, "alg", "use":"sig" and kid when not NULL: a malloc()ed string,
 * or NULL with a message in err. */
char *mpn_token_keygen(const char *alg, const char *kid, char *err,
    size_t err_len);

#endif /* MPN_TOKEN_H */
