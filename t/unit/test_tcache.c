/*
 * mpn_tcache: the cache of verified tokens answers as mpn_token_verify
 * would, checks exp and nbf at every use, stores no failure, never answers
 * for another token (also one whose search starts at the same slot) or
 * another verifier, and stays within its budget.
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
#include "mpn_siphash.h"


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
test_budget_evicts_an_entry_not_used_since_the_last_sweep(void **state)
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

    /* all eight ids are the same length: room for four entries */
    one = mpn_tcache_entry_size(2);
    c = mpn_tcache_create(4 * one + one / 2);
    assert_non_null(c);

    for (i = 0; i < 4; i++) {
        assert_int_equal(check(c, &scope_a, ks, t[i], NOW, NULL, &hit, id,
                               &why),
                         MPN_TOKEN_OK);
        assert_int_equal(hit, 0);
    }

    /* p0, p1 and p2 used again: p3 is the one entry the hand finds
     * unused, wherever it starts */
    for (i = 0; i < 3; i++) {
        assert_int_equal(check(c, &scope_a, ks, t[i], NOW, NULL, &hit, id,
                               &why),
                         MPN_TOKEN_OK);
        assert_int_equal(hit, 1);
    }

    assert_int_equal(check(c, &scope_a, ks, t[4], NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);

    mpn_tcache_usage(c, &entries, &bytes, &max);
    assert_int_equal(entries, 4);
    assert_true(bytes <= max);

    for (i = 0; i < 3; i++) {
        snprintf(sub, sizeof(sub), "p%d", i);
        assert_int_equal(check(c, &scope_a, ks, t[i], NOW, NULL, &hit, id,
                               &why),
                         MPN_TOKEN_OK);
        assert_int_equal(hit, 1);
        assert_string_equal(id, sub);
    }

    assert_int_equal(check(c, &scope_a, ks, t[4], NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 1);
    assert_string_equal(id, "p4");

    assert_int_equal(check(c, &scope_a, ks, t[3], NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 0);

    /* many more tokens than room: never over budget, every answer right */
    for (i = 0; i < 64; i++) {
        snprintf(sub, sizeof(sub), "p%d", i % 8);
        assert_int_equal(check(c, &scope_a, ks, t[i % 8], NOW, NULL, &hit,
                               id, &why),
                         MPN_TOKEN_OK);
        assert_string_equal(id, sub);
        mpn_tcache_usage(c, &entries, &bytes, &max);
        assert_true(entries <= 4);
        assert_true(bytes <= max);
    }

    /* a budget smaller than one entry caches nothing */
    mpn_tcache_free(c);
    c = mpn_tcache_create(one - 1);
    assert_non_null(c);

    for (i = 0; i < 2; i++) {
        assert_int_equal(check(c, &scope_a, ks, t[5], NOW, NULL, &hit, id,
                               &why),
                         MPN_TOKEN_OK);
        assert_int_equal(hit, 0);
        assert_string_equal(id, "p5");
    }

    for (i = 0; i < 8; i++) {
        free(t[i]);
    }

    mpn_tcache_free(c);
}


/* a token for sub, signed with keys, whose search starts at slot */

static char *
token_at_slot(mpn_tcache_t *c, const char *keys, const char *prefix,
    size_t slot, char *sub, size_t size)
{
    int    i;
    char  *t;

    for (i = 0; i < 100000; i++) {
        snprintf(sub, size, "%s%d", prefix, i);
        t = token(keys, sub, NOW + 3600, 0);

        if (mpn_tcache_slot(c, t, strlen(t)) == slot) {
            return t;
        }

        free(t);
    }

    fail_msg("no token for slot %zu", slot);

    return NULL;
}


static void
test_another_token_at_the_same_slot_never_answers(void **state)
{
    int            hit;
    char          *a, *b, *bad, *forged, *dot, sub[32];
    char           id[MPN_TOKEN_ID_MAX + 1];
    size_t         n, slot;
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    /* 8 slots: tokens often start their search at the same one */
    c = mpn_tcache_create(4 * mpn_tcache_entry_size(8));
    assert_non_null(c);

    a = token(jwks, "a1", NOW + 3600, 0);
    slot = mpn_tcache_slot(c, a, strlen(a));

    assert_int_equal(check(c, &scope_a, ks, a, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 0);

    /* a valid token of another partner, same first slot: verified, and
     * answers with its own id, now and from the cache */
    b = token_at_slot(c, jwks, "b", slot, sub, sizeof(sub));

    assert_int_equal(check(c, &scope_a, ks, b, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 0);
    assert_string_equal(id, sub);

    assert_int_equal(check(c, &scope_a, ks, b, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 1);
    assert_string_equal(id, sub);

    assert_int_equal(check(c, &scope_a, ks, a, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 1);
    assert_string_equal(id, "a1");

    /* a token signed with another key, same first slot: refused, and
     * never remembered */
    bad = token_at_slot(c, jwks2, "x", slot, sub, sizeof(sub));

    assert_int_equal(check(c, &scope_a, ks, bad, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_BAD);
    assert_int_equal(hit, 0);
    assert_int_equal(check(c, &scope_a, ks, bad, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_BAD);
    assert_int_equal(hit, 0);

    /* the same signature after another payload: the same last bytes, so
     * the same first slot, and refused */
    n = strlen(a);
    forged = strdup(a);
    assert_non_null(forged);
    dot = strchr(forged, '.');
    assert_non_null(dot);
    dot[2] = (dot[2] == 'A') ? 'B' : 'A';
    assert_int_equal(mpn_tcache_slot(c, forged, n), slot);

    assert_int_equal(check(c, &scope_a, ks, forged, NOW, NULL, &hit, id,
                           &why),
                     MPN_TOKEN_BAD);
    assert_int_equal(hit, 0);

    /* the first one dropped (expired at use): the second is still found
     * past the freed slot, and the first is a miss */
    assert_int_equal(check(c, &scope_a, ks, a, NOW + 7200, NULL, &hit, id,
                           &why),
                     MPN_TOKEN_EXPIRED);
    assert_int_equal(hit, 1);

    assert_int_equal(check(c, &scope_a, ks, b, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 1);

    assert_int_equal(check(c, &scope_a, ks, a, NOW, NULL, &hit, id, &why),
                     MPN_TOKEN_OK);
    assert_int_equal(hit, 0);
    assert_string_equal(id, "a1");

    free(a);
    free(b);
    free(bad);
    free(forged);
    mpn_tcache_free(c);
}


static void
test_long_partner_id_kept_outside_its_slot(void **state)
{
    int            hit, i;
    char          *t[3], sub[3][80], id[MPN_TOKEN_ID_MAX + 1];
    size_t         entries, bytes, max;
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    c = mpn_tcache_create(1 << 16);
    assert_non_null(c);

    /* 17 bytes fit in the slot, 18 and 64 do not */
    for (i = 0; i < 3; i++) {
        memset(sub[i], 'a' + i, sizeof(sub[i]));
        sub[i][(i == 0) ? 17 : (i == 1) ? 18 : MPN_TOKEN_ID_MAX] = '\0';
        t[i] = token(jwks, sub[i], NOW + 3600, 0);
    }

    for (i = 0; i < 6; i++) {
        assert_int_equal(check(c, &scope_a, ks, t[i % 3], NOW, NULL, &hit,
                               id, &why),
                         MPN_TOKEN_OK);
        assert_int_equal(hit, i >= 3);
        assert_string_equal(id, sub[i % 3]);
    }

    mpn_tcache_usage(c, &entries, &bytes, &max);
    assert_int_equal(entries, 3);
    assert_int_equal(bytes, mpn_tcache_entry_size(17)
                            + mpn_tcache_entry_size(18)
                            + mpn_tcache_entry_size(MPN_TOKEN_ID_MAX));

    /* dropped at use, and with everything else (ASan: no leak) */
    assert_int_equal(check(c, &scope_a, ks, t[2], NOW + 3600, NULL, &hit, id,
                           &why),
                     MPN_TOKEN_EXPIRED);
    mpn_tcache_usage(c, &entries, &bytes, &max);
    assert_int_equal(entries, 2);

    for (i = 0; i < 3; i++) {
        free(t[i]);
    }

    mpn_tcache_free(c);
}


static void
test_many_tokens_all_found_again(void **state)
{
    int            hit, i, hits;
    char          *t[1500], sub[16], id[MPN_TOKEN_ID_MAX + 1];
    const char    *why;
    mpn_tcache_t  *c;

    (void) state;

    /* more entries than the first table holds half full: it grows twice,
     * every entry placed again */
    c = mpn_tcache_create(1);
    mpn_tcache_free(c);
    c = mpn_tcache_create(1 << 20);
    assert_non_null(c);

    for (i = 0; i < 1500; i++) {
        snprintf(sub, sizeof(sub), "id%d", i);
        t[i] = token(jwks, sub, NOW + 3600, 0);
        assert_int_equal(check(c, &scope_a, ks, t[i], NOW, NULL, &hit, id,
                               &why),
                         MPN_TOKEN_OK);
    }

    hits = 0;

    for (i = 0; i < 1500; i++) {
        snprintf(sub, sizeof(sub), "id%d", i);
        assert_int_equal(check(c, &scope_a, ks, t[i], NOW, NULL, &hit, id,
                               &why),
                         MPN_TOKEN_OK);
        assert_string_equal(id, sub);
        hits += hit;
        free(t[i]);
    }

    assert_int_equal(hits, 1500);

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


/* veorq/SipHash vectors.h, vectors_sip128: key 00..0f, message 00..len-1 */

static void
test_siphash128_reference_vectors(void **state)
{
    int                 i, j;
    uint8_t             msg[64], got[16];
    uint64_t            out[2];
    mpn_siphash_key_t   key;

    static const struct {
        size_t       len;
        const char  *hex;
    } v[] = {
        { 0,  "a3817f04ba25a8e66df67214c7550293" },
        { 1,  "da87c1d86b99af44347659119b22fc45" },
        { 7,  "a1f1ebbed8dbc153c0b84aa61ff08239" },
        { 8,  "3b62a9ba6258f5610f83e264f31497b4" },
        { 9,  "264499060ad9baabc47f8b02bb6d71ed" },
        { 63, "5150d1772f50834a503e069a973fbd7c" },
    };

    (void) state;

    key.k0 = 0x0706050403020100ULL;
    key.k1 = 0x0f0e0d0c0b0a0908ULL;

    for (i = 0; i < 64; i++) {
        msg[i] = (uint8_t) i;
    }

    for (i = 0; i < (int) (sizeof(v) / sizeof(v[0])); i++) {
        mpn_siphash128(&key, msg, v[i].len, out);

        for (j = 0; j < 8; j++) {
            got[j] = (uint8_t) (out[0] >> (8 * j));
            got[8 + j] = (uint8_t) (out[1] >> (8 * j));
        }

        for (j = 0; j < 16; j++) {
            unsigned int  x;

            assert_int_equal(sscanf(v[i].hex + 2 * j, "%2x", &x), 1);
            assert_int_equal(got[j], x);
        }
    }
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
        cmocka_unit_test(
            test_budget_evicts_an_entry_not_used_since_the_last_sweep),
        cmocka_unit_test(test_another_token_at_the_same_slot_never_answers),
        cmocka_unit_test(test_long_partner_id_kept_outside_its_slot),
        cmocka_unit_test(test_siphash128_reference_vectors),
        cmocka_unit_test(test_many_tokens_all_found_again),
        cmocka_unit_test(test_without_a_cache_the_verifier_answers),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
