/*
 * Signed tokens in nginx: the JWKS is read once per configuration (so a
 * reload picks up a changed file), and a request's token is handed to the
 * pure verifier (mpn_token.c).  Neither a token nor a key is ever logged,
 * not even in part: a rejected token is named by its "kid" and a short
 * hash in the refusal line.
 */

#include "ngx_http_mpn_module.h"
#include "ngx_http_mpn_keys.h"


#define NGX_HTTP_MPN_JWKS_MAX     (1024 * 1024)
#define NGX_HTTP_MPN_LOG_KID_MAX  64


static void ngx_http_mpn_token_warn(void *data, const char *msg);
static void ngx_http_mpn_token_keys_free(void *data);
static void ngx_http_mpn_token_detail(ngx_http_request_t *r,
    ngx_http_mpn_ctx_t *ctx, ngx_str_t *token, const char *why);


/* mpn_token_keys PATH */

char *
ngx_http_mpn_token_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    ngx_str_t           *value, text;
    ngx_pool_cleanup_t  *cln;
    char                 err[256];

    if (lcf->token_keys != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_mpn_conf_read_file(cf, &value[1], NGX_HTTP_MPN_JWKS_MAX,
                                    "JWKS file", "mpn_token_keys", &text)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    lcf->token_keys = mpn_keyset_load((char *) text.data, text.len, err,
                                      sizeof(err), ngx_http_mpn_token_warn,
                                      cf);

    /* the file may hold private members too: keep no copy of it */
    ngx_explicit_memzero(text.data, text.len);

    if (lcf->token_keys == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid JWKS file \"%V\" in \"mpn_token_keys\": "
                           "%s", &value[1], err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        mpn_keyset_free(lcf->token_keys);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_mpn_token_keys_free;
    cln->data = lcf->token_keys;

    ngx_http_mpn_token_cache_keys_changed();

    return NGX_CONF_OK;
}


static void
ngx_http_mpn_token_warn(void *data, const char *msg)
{
    ngx_conf_t  *cf = data;

    ngx_conf_log_error(NGX_LOG_WARN, cf, 0, "mpn_token_keys: %s", msg);
}


static void
ngx_http_mpn_token_keys_free(void *data)
{
    mpn_keyset_free(data);
}


/* token settings inherit like the rest; the options are built once here */

char *
ngx_http_mpn_token_merge(ngx_conf_t *cf, ngx_http_mpn_loc_conf_t *prev,
    ngx_http_mpn_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->token_keys, prev->token_keys, NULL);
    ngx_conf_merge_str_value(conf->token_claim, prev->token_claim, "sub");
    ngx_conf_merge_str_value(conf->token_issuer, prev->token_issuer, "");
    ngx_conf_merge_str_value(conf->token_audience, prev->token_audience, "");
    ngx_conf_merge_sec_value(conf->token_leeway, prev->token_leeway, 0);

    /* directive arguments are NUL-terminated by the parser */

    conf->token_opts.claim = (char *) conf->token_claim.data;
    conf->token_opts.issuer = conf->token_issuer.len
                              ? (char *) conf->token_issuer.data : NULL;
    conf->token_opts.audience = conf->token_audience.len
                                ? (char *) conf->token_audience.data : NULL;
    conf->token_opts.leeway = conf->token_leeway;

    /* locations that verify alike share their cached tokens (the leeway
     * is applied at each use, so it may differ) */

    if (conf->token_keys == prev->token_keys
        && conf->keys_src == prev->keys_src
        && conf->token_claim.data == prev->token_claim.data
        && conf->token_issuer.data == prev->token_issuer.data
        && conf->token_audience.data == prev->token_audience.data)
    {
        conf->token_scope = (prev->token_scope != NULL) ? prev->token_scope
                                                        : prev;

    } else {
        conf->token_scope = conf;
    }

    /* a token source without keys is checked where "mpn on" is in effect
     * (ngx_http_mpn_merge_loc_conf): keys may come per location */

    return NGX_CONF_OK;
}


/*
 * NGX_OK with ctx->partner_id set, NGX_DECLINED with a decision made
 * (signin, or keys_unavailable), NGX_AGAIN while the request waits for a
 * fetched key set, or NGX_ERROR.
 */

ngx_int_t
ngx_http_mpn_token_identify(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx)
{
    int            rc;
    size_t         len;
    u_char        *p;
    ngx_int_t      krc;
    ngx_str_t      token;
    ngx_uint_t     reason;
    const char    *why;
    mpn_keyset_t  *ks, *newer;

    if (ngx_http_complex_value(r, lcf->token, &token) != NGX_OK) {
        return NGX_ERROR;
    }

    ks = lcf->token_keys;

    /* no token, no need to fetch keys for it */

    if (lcf->keys_src != NULL && token.len) {
        krc = ngx_http_mpn_keys_get(r, lcf, ctx, 0, &ks);

        if (krc != NGX_OK) {
            return krc;
        }
    }

    p = ngx_pnalloc(r->pool, MPN_TOKEN_ID_MAX + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    why = "";
    len = 0;

    rc = ngx_http_mpn_token_cache_verify(r, lcf, ks, &token, (char *) p,
                                         &len, &why);

    /* a kid that names no key: the provider may have rotated its keys */

    if (rc == MPN_TOKEN_BAD && lcf->keys_src != NULL
        && ngx_strcmp(why, MPN_TOKEN_WHY_UNKNOWN_KID) == 0)
    {
        krc = ngx_http_mpn_keys_get(r, lcf, ctx, 1, &newer);

        if (krc != NGX_OK) {
            return krc;
        }

        if (newer != ks) {
            rc = ngx_http_mpn_token_cache_verify(r, lcf, newer, &token,
                                                 (char *) p, &len, &why);
        }
    }

    switch (rc) {

    case MPN_TOKEN_OK:
        ctx->partner_id.data = p;
        ctx->partner_id.len = len;
        return NGX_OK;

    case MPN_TOKEN_NONE:
        reason = MPN_R_NO_TOKEN;
        break;

    case MPN_TOKEN_EXPIRED:
        reason = MPN_R_TOKEN_EXPIRED;
        break;

    case MPN_TOKEN_BAD_ID:
        reason = MPN_R_BAD_IDENTITY;
        break;

    default:
        reason = MPN_R_BAD_TOKEN;
    }

    mpn_decision_set(&ctx->decision, MPN_SIGNIN, reason);
    ctx->decided = 1;

    if (rc != MPN_TOKEN_NONE) {
        ngx_http_mpn_token_detail(r, ctx, &token, why);
    }

    return NGX_DECLINED;
}


/* what the refusal line says of a rejected token: its kid, a short hash
 * and why, never any of its bytes */

static void
ngx_http_mpn_token_detail(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx,
    ngx_str_t *token, const char *why)
{
    u_char  *p;
    char     kid[NGX_HTTP_MPN_LOG_KID_MAX + 1];
    char     hash[MPN_TOKEN_HASH_HEX + 1];
    u_char   buf[NGX_HTTP_MPN_LOG_KID_MAX + MPN_TOKEN_HASH_HEX + 128];

    mpn_token_describe((char *) token->data, token->len, kid, sizeof(kid),
                       hash);

    p = ngx_slprintf(buf, buf + sizeof(buf), "token sha256:%s", hash);

    if (kid[0] != '\0') {
        p = ngx_slprintf(p, buf + sizeof(buf), " kid \"%s\"", kid);
    }

    p = ngx_slprintf(p, buf + sizeof(buf), ": %s", why);

    (void) ngx_http_mpn_set_detail(r, ctx, buf, p - buf);
}
