/*
 * Verifications per second through mpn_token_verify, one line per
 * algorithm: "ALG RATE".  bench_token.sh puts them next to `openssl speed`.
 *
 *     bench_token [SECONDS [ALG ...]]
 *
 * ALG is HS256, RS256, ES256 or EdDSA; all four by default.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "mpn_token.h"


static double bench_now(void);
static char *bench_public_jwks(const char *jwk);


int
main(int argc, char **argv)
{
    int            i, rc, nalgs;
    char          *jwk, *priv, *pub, *tok, err[256], claims[256];
    char           id[MPN_TOKEN_ID_MAX + 1];
    size_t         id_len, len, n, k;
    double         seconds, start, elapsed;
    int64_t        now;
    const char    *why;
    mpn_keyset_t  *ks;

    static const char  *all[] = { "HS256", "RS256", "ES256", "EdDSA" };

    const char  **algs;

    mpn_token_opts_t  opts = { NULL, "https://idp.example", "portal", 30 };

    seconds = (argc > 1) ? atof(argv[1]) : 3.0;

    if (argc > 2) {
        algs = (const char **) argv + 2;
        nalgs = argc - 2;

    } else {
        algs = all;
        nalgs = 4;
    }
    now = (int64_t) time(NULL);

    snprintf(claims, sizeof(claims),
             "{\"iss\":\"https://idp.example\",\"sub\":\"4412345\","
             "\"aud\":\"portal\",\"iat\":%lld,\"exp\":%lld}",
             (long long) now, (long long) now + 3600);

    for (i = 0; i < nalgs; i++) {
        jwk = mpn_token_keygen(algs[i], "bench-1", err, sizeof(err));
        if (jwk == NULL) {
            fprintf(stderr, "keygen %s: %s\n", algs[i], err);
            return 1;
        }

        len = strlen(jwk) + 16;
        priv = malloc(len);
        snprintf(priv, len, "{\"keys\":[%s]}", jwk);
        pub = bench_public_jwks(jwk);

        tok = mpn_token_sign(priv, strlen(priv), NULL, NULL, claims, err,
                             sizeof(err));
        ks = mpn_keyset_load(pub, strlen(pub), err, sizeof(err), NULL, NULL);

        if (tok == NULL || ks == NULL) {
            fprintf(stderr, "%s: %s\n", algs[i], err);
            return 1;
        }

        len = strlen(tok);
        n = 0;
        start = bench_now();

        do {
            for (k = 0; k < 64; k++) {
                rc = mpn_token_verify(ks, tok, len, now, &opts, id, &id_len,
                                      &why);
                if (rc != MPN_TOKEN_OK) {
                    fprintf(stderr, "%s: %s\n", algs[i], why);
                    return 1;
                }
            }

            n += 64;
            elapsed = bench_now() - start;

        } while (elapsed < seconds);

        printf("%s %.0f %zu\n", algs[i], n / elapsed, len);
        fflush(stdout);

        mpn_keyset_free(ks);
        free(tok);
        free(pub);
        free(priv);
        free(jwk);
    }

    return 0;
}


static double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static char *
bench_public_jwks(const char *jwk)
{
    char    *s;
    size_t   i;
    json_t  *o, *set;

    static const char  *priv[] = { "d", "p", "q", "dp", "dq", "qi" };

    o = json_loads(jwk, 0, NULL);
    if (o == NULL) {
        return NULL;
    }

    for (i = 0; i < sizeof(priv) / sizeof(priv[0]); i++) {
        json_object_del(o, priv[i]);
    }

    set = json_pack("{s:[o]}", "keys", o);
    s = json_dumps(set, JSON_COMPACT);
    json_decref(set);

    return s;
}
