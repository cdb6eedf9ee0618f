/*
 * Signed tokens in nginx: the JWKS is read once per configuration (so a
 * reload picks up a changed file), and a request's token is handed to the
 * pure verifier (mpn_token.c).  Neither the token nor a key is ever logged;
 * at most the token's first 8 characters are.
 */

#include "ngx_http_mpn_module.h"


#define NGX_HTTP_MPN_JWKS_MAX  (1024 * 1024)
#define NGX_HTTP_MPN_TOKEN_LOG_PREFIX  8


static void ngx_http_mpn_token_warn(void *data, const char *msg);
static void ngx_http_mpn_token_keys_free(void *data);
static u_char *ngx_http_mpn_token_prefix(u_char *buf, ngx_str_t *token);


/* mpn_token_keys PATH */

char *
ngx_http_mpn_token_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    char                *rv;
    u_char              *buf;
    ssize_t              n;
    ngx_fd_t             fd;
    ngx_str_t           *value, name;
    ngx_file_t           file;
    ngx_file_info_t      fi;
    ngx_pool_cleanup_t  *cln;
    char                 err[256];

    if (lcf->token_keys != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open JWKS file \"%V\" in "
                           "\"mpn_token_keys\"", &name);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;
    buf = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > NGX_HTTP_MPN_JWKS_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot read JWKS file \"%V\" in "
                           "\"mpn_token_keys\": not a file of at most 1 MB",
                           &name);
        goto done;
    }

    buf = ngx_alloc(ngx_file_size(&fi) + 1, cf->log);
    if (buf == NULL) {
        goto done;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = name;
    file.log = cf->log;

    n = ngx_read_file(&file, buf, ngx_file_size(&fi), 0);

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read JWKS file \"%V\" in "
                           "\"mpn_token_keys\"", &name);
        goto done;
    }

    lcf->token_keys = mpn_keyset_load((char *) buf, n, err, sizeof(err),
                                      ngx_http_mpn_token_warn, cf);

    if (lcf->token_keys == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid JWKS file \"%V\" in \"mpn_token_keys\": "
                           "%s", &name, err);
        goto done;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        mpn_keyset_free(lcf->token_keys);
        goto done;
    }

    cln->handler = ngx_http_mpn_token_keys_free;
    cln->data = lcf->token_keys;

    rv = NGX_CONF_OK;

done:

    if (buf != NULL) {
        ngx_free(buf);
    }

    ngx_close_file(fd);

    return rv;
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

    if (conf->token != NULL && conf->token_keys == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mpn_token\" is set but \"mpn_token_keys\" "
                           "is not");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * NGX_OK with ctx->partner_id set, NGX_DECLINED with a signin decision made,
 * or NGX_ERROR.
 */

ngx_int_t
ngx_http_mpn_token_identify(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx)
{
    int          rc;
    size_t       len;
    u_char      *p;
    ngx_str_t    token;
    ngx_uint_t   reason;
    const char  *why;
    u_char       prefix[NGX_HTTP_MPN_TOKEN_LOG_PREFIX + 4];

    if (ngx_http_complex_value(r, lcf->token, &token) != NGX_OK) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, MPN_TOKEN_ID_MAX + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    why = "";
    len = 0;

    rc = mpn_token_verify(lcf->token_keys, (char *) token.data, token.len,
                          (int64_t) ngx_time(), &lcf->token_opts,
                          (char *) p, &len, &why);

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

    default:
        reason = MPN_R_BAD_TOKEN;
    }

    if (rc != MPN_TOKEN_NONE) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "mpn: token \"%s\" rejected: %s",
                      ngx_http_mpn_token_prefix(prefix, &token), why);
    }

    mpn_decision_set(&ctx->decision, MPN_SIGNIN, reason);
    ctx->decided = 1;

    return NGX_DECLINED;
}


/* the first characters of a token for the log, past any "Bearer "; bytes
 * outside base64url and '.' show as '?' so nothing raw reaches the log */

static u_char *
ngx_http_mpn_token_prefix(u_char *buf, ngx_str_t *token)
{
    u_char   c, *s, *end, *p;
    size_t   n;

    s = token->data;
    end = s + token->len;

    if (end - s > 7 && ngx_strncasecmp(s, (u_char *) "bearer ", 7) == 0) {
        s += 7;

        while (s < end && *s == ' ') {
            s++;
        }
    }

    p = buf;

    for (n = 0; s < end && n < NGX_HTTP_MPN_TOKEN_LOG_PREFIX; n++, s++) {
        c = *s;
        *p++ = (isalnum(c) || c == '-' || c == '_' || c == '.') ? c : '?';
    }

    if (s < end) {
        p = ngx_cpymem(p, "...", 3);
    }

    *p = '\0';

    return buf;
}
