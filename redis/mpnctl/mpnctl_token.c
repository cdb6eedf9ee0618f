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
#include "mpn_record.h"
#include "mpn_token.h"


static json_t *mpnctl_token_claims(mpnctl_t *ctl);
static int mpnctl_token_subject(json_t *claims);


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

    if (!ctl->any_sub && mpnctl_token_subject(o) != 0) {
        json_decref(o);
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


/*
 * The subject, when there is one (--sub, or --claim sub=...), must be a
 * partner id: the gate would refuse any other as bad_identity, so a token
 * signed for one is only a confusing test.
 */
static int
mpnctl_token_subject(json_t *claims)
{
    json_t  *sub;

    sub = json_object_get(claims, "sub");
    if (sub == NULL) {
        return 0;
    }

    if (json_is_string(sub)
        && mpn_partner_id_valid(json_string_value(sub),
                                json_string_length(sub)))
    {
        return 0;
    }

    if (json_is_string(sub)) {
        mpnctl_error("token: BAD_ARGUMENT subject \"%.80s\" is not a partner "
                     "id (^[A-Za-z0-9._-]{1,64}$)", json_string_value(sub));
    } else {
        mpnctl_error("token: BAD_ARGUMENT subject is not a string: a "
                     "partner id is (^[A-Za-z0-9._-]{1,64}$)");
    }

    return -1;
}


/*
 * pubkeys FILE: the key set without its private members, for nginx's
 * mpn_token_keys.  oct keys are secret through and through: left out.
 */
int
mpnctl_pubkeys(mpnctl_t *ctl, int argc, char **argv)
{
    int            kept;
    char          *data, *out;
    size_t         len, i, j;
    json_t        *set, *keys, *pub, *k, *copy, *kty, *kid;
    const char    *type;
    json_error_t   jerr;

    static const char  *private_members[] = {
        "d", "p", "q", "dp", "dq", "qi", "oth", "k", NULL
    };

    (void) ctl;
    (void) argc;

    if (mpnctl_read_file(argv[0], &data, &len) != 0) {
        return 1;
    }

    set = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    explicit_bzero(data, len);
    free(data);

    keys = json_is_object(set) ? json_object_get(set, "keys") : NULL;
    if (!json_is_array(keys)) {
        mpnctl_error("pubkeys: BAD_KEY %s is not a JWKS (an object with a "
                     "\"keys\" array)%s%s", argv[0], set == NULL ? ": " : "",
                     set == NULL ? jerr.text : "");
        json_decref(set);
        return 1;
    }

    pub = json_array();
    kept = 0;

    json_array_foreach(keys, i, k) {
        kty = json_object_get(k, "kty");
        kid = json_object_get(k, "kid");
        type = json_is_string(kty) ? json_string_value(kty) : "";

        if (strcmp(type, "RSA") != 0 && strcmp(type, "EC") != 0
            && strcmp(type, "OKP") != 0)
        {
            mpnctl_error("pubkeys: key %zu%s%s%s is %s%s: %s, left out", i,
                         json_is_string(kid) ? " (kid \"" : "",
                         json_is_string(kid) ? json_string_value(kid) : "",
                         json_is_string(kid) ? "\")" : "",
                         strcmp(type, "oct") == 0 ? "oct" : "of kty ",
                         strcmp(type, "oct") == 0 ? "" : type,
                         strcmp(type, "oct") == 0
                         ? "a shared secret has no public half (nginx needs "
                           "the secret itself; keep that file private)"
                         : "not a kind the module reads");
            continue;
        }

        copy = json_deep_copy(k);
        for (j = 0; private_members[j] != NULL; j++) {
            json_object_del(copy, private_members[j]);
        }

        json_array_append_new(pub, copy);
        kept++;
    }

    json_decref(set);

    set = json_pack("{s:o}", "keys", pub);
    out = (set != NULL) ? json_dumps(set, JSON_INDENT(2)
                                          | JSON_PRESERVE_ORDER)
                        : NULL;
    json_decref(set);

    if (out == NULL) {
        mpnctl_error("pubkeys: out of memory");
        return 1;
    }

    if (kept == 0) {
        free(out);
        mpnctl_error("pubkeys: no public key in %s", argv[0]);
        return 1;
    }

    printf("%s\n", out);
    free(out);

    return 0;
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
