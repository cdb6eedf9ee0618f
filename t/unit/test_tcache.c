/*
 * mpn_tcache: the cache of verified tokens answers as mpn_token_verify
 * would, checks exp and nbf at every use, stores no failure, never answers
 * for another token or another verifier, and stays within its budget.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mpn_tcache.h"


#define NOW  1800000000LL


static char           err[256];
static char          *jwks;            /* {"keys":[ <HS256 key "k1"> ]} */
static char          *jwks2;           /* another key, same kid */
static mpn_keyset_t  *ks;
static mpn_keyset_t  *ks2;

static int            scope_a;         /* two verifiers' addresses */
static int            scope_b;


static char *
make_jwks(void)
{
    char    *k, *s;
    size_t   n;

    k = mpn_token_keygen("HS256", "k1", err, sizeof(err));
    assert_non_null(k);

    n = strlen(k) + 16;
    s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "{\"keys\":[%s]}", k);
    free(k);

    return s;
}


static char *
token(const char *keys, const char *sub, int64_t exp, int64_t nbf)
{
    char  claims[256], *t;

    if (nbf != 0) {
        snprintf(claims, sizeof(claims),
                 "{\"sub\":\"%s\",\"exp\":%lld,\"nbf\":%lld}", sub,
                 (long long) exp, (long long) nbf);

    } else {
        snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":%lld}",
                 sub, (long long) exp);
    }

    t = mpn_token_sign(keys, strlen(keys), "k1", "HS256", claims, err,
                       sizeof(err));
    assert_non_null(t);

    return t;
}


/* a 1 MB cache and a token for sub */

static mpn_tcache_t *
cache_and_token(const char *sub, int64_t exp, int64_t nbf, char **t)
{
    mpn_tcache_t  *c;

    c = mpn_tcache_create(1 << 20);
    assert_non_null(c);
    *t = token(jwks, sub, exp, nbf);

    return c;
}


static int
check(mpn_tcache_t *c, const void *scope, mpn_keyset_t *k, const char *tok,
    int64_t now, const mpn_token_opts_t *opts, int *hit, char *id,
    const char **why)
{
    size_t  id_len;

    id[0] = '\0';

    return mpn_tcache_verify(c, scope, k, tok, strlen(tok), now, opts, id,
                             &id_len, why, hit);
}


static void
test_second_use_is_a_hit_with_the_same_answer(void **state)
{
    int            hit;
    char          *t, id[MPN_TOKEN_ID_MAX + 1];
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    c = cache_and_token("4412345", NOW + 3600, 0, &t);

    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 0);
    assert_string_equal(id, "4412345");

    assert_int_equal(check(c, &scope_a, ks, t, NOW + 1, NULL, &hit, id,
                           &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 1);
    assert_string_equal(id, "4412345");

    free(t);
    mpn_tcache_free(c);
}


static void
test_cached_token_past_exp_is_refused_and_dropped(void **state)
{
    int                hit;
    char              *t, id[MPN_TOKEN_ID_MAX + 1];
    const char        *why;
    mpn_tcache_t      *c;
    mpn_token_opts_t   opts = { NULL, NULL, NULL, 30 };

    (void) state;

    c = cache_and_token("4412345", NOW + 10, 0, &t);

    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 0);

    /* the leeway is applied at use, as the verifier applies it */
    assert_int_equal(check(c, &scope_a, ks, t, NOW + 20, &opts, &hit, id,
                           &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 1);

    assert_int_equal(check(c, &scope_a, ks, t, NOW + 10, NULL, &hit, id,
                           &why),
                     MPN_TOKEN_EXPIRED);
    assert_int_equal(hit, 1);
    assert_string_equal(why, "expired");
    assert_string_equal(id, "");

    /* dropped: the verifier answers again, the same way */
    assert_int_equal(check(c, &scope_a, ks, t, NOW + 10, NULL, &hit, id,
                           &why),
                     MPN_TOKEN_EXPIRED);
    assert_int_equal(hit, 0);

    free(t);
    mpn_tcache_free(c);
}


static void
test_cached_token_before_nbf_is_refused(void **state)
{
    int            hit;
    char          *t, id[MPN_TOKEN_ID_MAX + 1];
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    c = cache_and_token("4412345", NOW + 3600, NOW, &t);

    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);

    /* the clock stepped back */
    assert_int_equal(check(c, &scope_a, ks, t, NOW - 5, NULL, &hit, id,
                           &why),
                     MPN_TOKEN_BAD);
    assert_int_equal(hit, 1);
    assert_string_equal(why, "not yet valid");

    free(t);
    mpn_tcache_free(c);
}


static void
test_tampered_token_never_hits(void **state)
{
    int            hit;
    char          *t, id[MPN_TOKEN_ID_MAX + 1];
    size_t         n;
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    c = cache_and_token("4412345", NOW + 3600, 0, &t);

    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);

    n = strlen(t);
    t[n - 2] = (t[n - 2] == 'A') ? 'B' : 'A';

    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_BAD);
    assert_int_equal(hit, 0);

    /* a failure is not remembered either */
    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_BAD);
    assert_int_equal(hit, 0);

    /* a prefix of a cached token is another token */
    t[n - 2] = '\0';
    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_BAD);
    assert_int_equal(hit, 0);

    free(t);
    mpn_tcache_free(c);
}


static void
test_expired_token_is_not_cached(void **state)
{
    int            hit;
    char          *t, id[MPN_TOKEN_ID_MAX + 1];
    size_t         entries, bytes, max;
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    c = cache_and_token("4412345", NOW - 1, 0, &t);

    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_EXPIRED);
    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_EXPIRED);
    assert_int_equal(hit, 0);

    mpn_tcache_usage(c, &entries, &bytes, &max);
    assert_int_equal(entries, 0);
    assert_int_equal(bytes, 0);

    free(t);
    mpn_tcache_free(c);
}


static void
test_entry_answers_only_for_its_own_verifier(void **state)
{
    int            hit;
    char          *t, id[MPN_TOKEN_ID_MAX + 1];
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    c = cache_and_token("4412345", NOW + 3600, 0, &t);

    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);

    /* another location, whose key set does not verify the token */
    assert_int_equal(check(c, &scope_b, ks2, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_BAD);
    assert_int_equal(hit, 0);

    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 1);

    free(t);
    mpn_tcache_free(c);
}


static void
test_clear_empties_the_cache(void **state)
{
    int            hit;
    char          *t, id[MPN_TOKEN_ID_MAX + 1];
    size_t         entries, bytes, max;
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    c = cache_and_token("4412345", NOW + 3600, 0, &t);

    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);

    mpn_tcache_clear(c);

    mpn_tcache_usage(c, &entries, &bytes, &max);
    assert_int_equal(entries, 0);
    assert_int_equal(bytes, 0);

    assert_int_equal(check(c, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 0);

    free(t);
    mpn_tcache_free(c);
}


static void
test_budget_evicts_least_recently_used(void **state)
{
    int            hit, i;
    char          *t[8], sub[16], id[MPN_TOKEN_ID_MAX + 1];
    size_t         entries, bytes, max, one;
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    for (i = 0; i < 8; i++) {
        snprintf(sub, sizeof(sub), "p%d", i);
        t[i] = token(jwks, sub, NOW + 3600, 0);
    }

    /* all eight tokens are the same length: room for four entries */
    one = mpn_tcache_entry_size(strlen(t[0]));
    c = mpn_tcache_create(4 * one + one / 2);
    assert_non_null(c);

    for (i = 0; i < 4; i++) {
        assert_int_equal(check(c, &scope_a, ks, t[i], NOW, NULL, &hit, id,
                               &why),
                         MPN_TOKEN_OK);
    }

    /* p0 used again: p1 is now the least recently used */
    assert_int_equal(check(c, &scope_a, ks, t[0], NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 1);

    assert_int_equal(check(c, &scope_a, ks, t[4], NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);

    mpn_tcache_usage(c, &entries, &bytes, &max);
    assert_int_equal(entries, 4);
    assert_true(bytes <= max);

    assert_int_equal(check(c, &scope_a, ks, t[0], NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 1);
    assert_string_equal(id, "p0");

    assert_int_equal(check(c, &scope_a, ks, t[1], NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 0);

    /* a budget smaller than one entry caches nothing */
    mpn_tcache_free(c);
    c = mpn_tcache_create(one - 1);
    assert_non_null(c);

    for (i = 0; i < 2; i++) {
        assert_int_equal(check(c, &scope_a, ks, t[5], NOW, NULL, &hit, id,
                               &why),
                         MPN_TOKEN_OK);
        assert_int_equal(hit, 0);
    }

    for (i = 0; i < 8; i++) {
        free(t[i]);
    }

    mpn_tcache_free(c);
}


static void
test_many_tokens_all_found_again(void **state)
{
    int            hit, i, hits;
    char          *t[300], sub[16], id[MPN_TOKEN_ID_MAX + 1];
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    /* more entries than buckets: chains are walked and compared */
    c = mpn_tcache_create(1);
    mpn_tcache_free(c);
    c = mpn_tcache_create(1 << 20);
    assert_non_null(c);

    for (i = 0; i < 300; i++) {
        snprintf(sub, sizeof(sub), "id%d", i);
        t[i] = token(jwks, sub, NOW + 3600, 0);
        assert_int_equal(check(c, &scope_a, ks, t[i], NOW, NULL, &hit, id,
                               &why),
                         MPN_TOKEN_OK);
    }

    hits = 0;

    for (i = 0; i < 300; i++) {
        snprintf(sub, sizeof(sub), "id%d", i);
        assert_int_equal(check(c, &scope_a, ks, t[i], NOW, NULL, &hit, id,
                               &why),
                         MPN_TOKEN_OK);
        assert_string_equal(id, sub);
        hits += hit;
        free(t[i]);
    }

    assert_int_equal(hits, 300);

    mpn_tcache_free(c);
}


static void
test_without_a_cache_the_verifier_answers(void **state)
{
    int          hit;
    char        *t, id[MPN_TOKEN_ID_MAX + 1];
    const char  *why;

    (void) state;

    t = token(jwks, "4412345", NOW + 3600, 0);

    assert_int_equal(check(NULL, &scope_a, ks, t, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 0);
    assert_string_equal(id, "4412345");

    assert_int_equal(check(NULL, &scope_a, ks, "", NOW, NULL, &hit, id,
                           &why),
                     MPN_TOKEN_NONE);

    free(t);
}


static int
setup(void **state)
{
    (void) state;

    jwks = make_jwks();
    jwks2 = make_jwks();

    ks = mpn_keyset_load(jwks, strlen(jwks), err, sizeof(err), NULL, NULL);
    ks2 = mpn_keyset_load(jwks2, strlen(jwks2), err, sizeof(err), NULL,
                          NULL);

    return (ks == NULL || ks2 == NULL) ? -1 : 0;
}


static int
teardown(void **state)
{
    (void) state;

    mpn_keyset_free(ks);
    mpn_keyset_free(ks2);
    free(jwks);
    free(jwks2);

    return 0;
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_second_use_is_a_hit_with_the_same_answer),
        cmocka_unit_test(test_cached_token_past_exp_is_refused_and_dropped),
        cmocka_unit_test(test_cached_token_before_nbf_is_refused),
        cmocka_unit_test(test_tampered_token_never_hits),
        cmocka_unit_test(test_expired_token_is_not_cached),
        cmocka_unit_test(test_entry_answers_only_for_its_own_verifier),
        cmocka_unit_test(test_clear_empties_the_cache),
        cmocka_unit_test(test_budget_evicts_least_recently_used),
        cmocka_unit_test(test_many_tokens_all_found_again),
        cmocka_unit_test(test_without_a_cache_the_verifier_answers),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
