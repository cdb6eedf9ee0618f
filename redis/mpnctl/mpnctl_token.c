/*
 * mpnctl token and keygen: test and demo tokens signed by the module's own
 * signer (ngx_mpn_module/mpn_token.c), so what mpnctl signs is what the
 * module verifies.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mpnctl.h"
#include "mpn_token.h"


static json_t *mpnctl_token_claims(mpnctl_t *ctl);


int
mpnctl_token(mpnctl_t *ctl, int argc, char **argv)
{
    char    *jwks, *claims, *tok, err[256];
    size_t   len;
    json_t  *o;

    (void) argc;
    (void) argv;

    if (ctl->jwks == NULL) {
        mpnctl_error("token: BAD_ARGUMENT --jwks FILE is required");
        return 2;
    }

    if (ctl->sub == NULL && ctl->nclaims == 0) {
        mpnctl_error("token: BAD_ARGUMENT give --sub ID (or the partner "
                     "claim with --claim NAME=ID)");
        return 2;
    }

    o = mpnctl_token_claims(ctl);
    if (o == NULL) {
        return 2;
    }

    claims = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);

    if (claims == NULL) {
        mpnctl_error("out of memory");
        return 1;
    }

    if (mpnctl_read_file(ctl->jwks, &jwks, &len) != 0) {
        free(claims);
        return 1;
    }

    tok = mpn_token_sign(jwks, len, ctl->kid, ctl->alg, claims, err,
                         sizeof(err));

    explicit_bzero(jwks, len);
    free(jwks);
    free(claims);

    if (tok == NULL) {
        mpnctl_error("token: BAD_KEY %s", err);
        return 1;
    }

    printf("%s\n", tok);
    free(tok);

    return 0;
}


/* {"sub": ID, "iat": now, "exp": now + exp} and each --claim NAME=VALUE */
static json_t *
mpnctl_token_claims(mpnctl_t *ctl)
{
    int           i;
    char         *name;
    json_t       *o, *v;
    const char   *eq;
    json_error_t  jerr;

    o = json_object();
    if (o == NULL) {
        mpnctl_error("out of memory");
        return NULL;
    }

    if (ctl->sub != NULL) {
        json_object_set_new(o, "sub", json_string(ctl->sub));
    }

    json_object_set_new(o, "iat", json_integer(ctl->now));
    json_object_set_new(o, "exp", json_integer(ctl->now + ctl->exp));

    for (i = 0; i < ctl->nclaims; i++) {
        eq = strchr(ctl->claims[i], '=');
        if (eq == NULL || eq == ctl->claims[i]) {
            mpnctl_error("token: BAD_ARGUMENT --claim \"%s\": expected "
                         "NAME=VALUE", ctl->claims[i]);
            json_decref(o);
            return NULL;
        }

        v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                       &jerr);
        if (v == NULL) {
            v = json_string(eq + 1);
        }

        name = strndup(ctl->claims[i], eq - ctl->claims[i]);
        if (v == NULL || name == NULL
            || json_object_set_new(o, name, v) != 0)
        {
            mpnctl_error("token: BAD_ARGUMENT --claim \"%s\": not UTF-8",
                         ctl->claims[i]);
            free(name);
            json_decref(o);
            return NULL;
        }

        free(name);
    }

    return o;
}


/* keygen --alg ALG [--kid KID]: a new JWKS holding one private key */
int
mpnctl_keygen(mpnctl_t *ctl, int argc, char **argv)
{
    char    *jwk, *out, err[256];
    json_t  *k, *set;

    (void) argc;
    (void) argv;

    jwk = mpn_token_keygen(ctl->alg != NULL ? ctl->alg : "ES256", ctl->kid,
                           err, sizeof(err));
    if (jwk == NULL) {
        mpnctl_error("keygen: BAD_ARGUMENT %s", err);
        return 1;
    }

    k = json_loads(jwk, 0, NULL);
    explicit_bzero(jwk, strlen(jwk));
    free(jwk);

    set = (k != NULL) ? json_pack("{s:[o]}", "keys", k) : NULL;
    out = (set != NULL) ? json_dumps(set, JSON_INDENT(2)
                                          | JSON_PRESERVE_ORDER)
                        : NULL;
    json_decref(set);

    if (out == NULL) {
        mpnctl_error("keygen: out of memory");
        return 1;
    }

    printf("%s\n", out);
    explicit_bzero(out, strlen(out));
    free(out);

    return 0;
}


/* verify --jwks FILE TOKEN: the module's own verifier, for debugging */
int
mpnctl_verify(mpnctl_t *ctl, int argc, char **argv)
{
    int                rc;
    char              *jwks, id[MPN_TOKEN_ID_MAX + 1], err[256];
    size_t             len, id_len;
    const char        *why;
    mpn_keyset_t      *ks;
    mpn_token_opts_t   opts;

    (void) argc;

    if (ctl->jwks == NULL) {
        mpnctl_error("verify: BAD_ARGUMENT --jwks FILE is required");
        return 2;
    }

    if (mpnctl_read_file(ctl->jwks, &jwks, &len) != 0) {
        return 1;
    }

    ks = mpn_keyset_load(jwks, len, err, sizeof(err), NULL, NULL);
    explicit_bzero(jwks, len);
    free(jwks);

    if (ks == NULL) {
        mpnctl_error("verify: BAD_KEY %s", err);
        return 1;
    }

    memset(&opts, 0, sizeof(mpn_token_opts_t));
    why = "";

    rc = mpn_token_verify(ks, argv[0], strlen(argv[0]), ctl->now, &opts, id,
                          &id_len, &why);
    mpn_keyset_free(ks);

    switch (rc) {

    case MPN_TOKEN_OK:
        printf("%.*s\n", (int) id_len, id);
        return 0;

    case MPN_TOKEN_NONE:
        mpnctl_error("verify: no_token");
        return 1;

    case MPN_TOKEN_EXPIRED:
        mpnctl_error("verify: token_expired (%s)", why);
        return 1;

    default:
        mpnctl_error("verify: bad_token (%s)", why);
        return 1;
    }
}
