/*
 * A test helper around the module's own signer (mpn_token.c):
 *   mpn_sign keygen ALG KID        prints a private JWK
 *   mpn_sign sign JWKS KID ALG CLAIMS_JSON   prints a compact JWS
 * The integration tests use it to make keys and tokens.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpn_token.h"


static char *
read_all(const char *path, size_t *len)
{
    FILE   *f;
    char   *buf;
    long    n;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);

    buf = malloc(n + 1);
    if (buf == NULL || fread(buf, 1, n, f) != (size_t) n) {
        fclose(f);
        free(buf);
        return NULL;
    }

    fclose(f);
    buf[n] = '\0';
    *len = n;

    return buf;
}


int
main(int argc, char **argv)
{
    char    err[256], *out, *jwks;
    size_t  len;

    if (argc == 4 && strcmp(argv[1], "keygen") == 0) {
        out = mpn_token_keygen(argv[2], argv[3], err, sizeof(err));

    } else if (argc == 6 && strcmp(argv[1], "sign") == 0) {
        jwks = read_all(argv[2], &len);
        if (jwks == NULL) {
            fprintf(stderr, "mpn_sign: cannot read %s\n", argv[2]);
            return 1;
        }

        out = mpn_token_sign(jwks, len, argv[3][0] ? argv[3] : NULL,
                             argv[4][0] ? argv[4] : NULL, argv[5],
                             err, sizeof(err));
        free(jwks);

    } else {
        fprintf(stderr, "usage: mpn_sign keygen ALG KID\n"
                        "       mpn_sign sign JWKS KID ALG CLAIMS\n");
        return 2;
    }

    if (out == NULL) {
        fprintf(stderr, "mpn_sign: %s\n", err);
        return 1;
    }

    printf("%s\n", out);
    free(out);

    return 0;
}
