/*
 * libFuzzer target for the token verifier: arbitrary bytes as the value of
 * mpn_token, against a fixed key set holding the public keys of the RFC
 * 7515 (HS256, RS256, ES256) and RFC 8037 (Ed25519) examples, so that the
 * seeds reach the claims checks.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpn_token.h"


#define FUZZ_NOW  1300819000        /* before the RFC examples expire */

static const char  fuzz_jwks[] =
    "{\"keys\":["
    "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T"
    "-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"},"
    "{\"kty\":\"RSA\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k"
    "0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
    "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rex"
    "MdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh"
    "9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAc"
    "DTW9gb54h4FRWyuXpoQ\",\"e\":\"AQAB\"},"
    "{\"kty\":\"EC\",\"crv\":\"P-256\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}"
    "]}";

static mpn_keyset_t  *fuzz_ks;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int            rc;
    char           id[MPN_TOKEN_ID_MAX + 1], err[256];
    size_t         id_len, n;
    const char    *why;
    unsigned char  payload[MPN_TOKEN_MAX];

    static const mpn_token_opts_t  plain = { NULL, NULL, NULL, 0 };
    static const mpn_token_opts_t  strict = { "iss", "joe", "portal", 60 };

    if (fuzz_ks == NULL) {
        fuzz_ks = mpn_keyset_load(fuzz_jwks, sizeof(fuzz_jwks) - 1, err,
                                  sizeof(err), NULL, NULL);
        if (fuzz_ks == NULL) {
            abort();
        }
    }

    why = NULL;
    id_len = 0;

    rc = mpn_token_verify(fuzz_ks, (const char *) data, size, FUZZ_NOW,
                          &plain, id, &id_len, &why);

    if (why == NULL) {
        abort();
    }

    if (rc == MPN_TOKEN_OK
        && (id_len == 0 || id_len > MPN_TOKEN_ID_MAX
            || strlen(id) != id_len))
    {
        abort();
    }

    rc = mpn_token_verify(fuzz_ks, (const char *) data, size, FUZZ_NOW,
                          &strict, id, &id_len, &why);

    if (rc == MPN_TOKEN_OK && strlen(id) != id_len) {
        abort();
    }

    (void) mpn_token_verify_jws(fuzz_ks, (const char *) data, size, payload,
                                sizeof(payload), &n, &why);

    return 0;
}
