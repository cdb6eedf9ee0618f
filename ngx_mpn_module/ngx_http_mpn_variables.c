/*
 * The $mpn_* variables: what the gate decided and the facts behind it, for
 * target URLs, headers, SSI banners and access logs.
 */

#include "ngx_http_mpn_module.h"
#include "mpn_time.h"


#define NGX_HTTP_MPN_VAR_DECISION    0
#define NGX_HTTP_MPN_VAR_REASON      1
#define NGX_HTTP_MPN_VAR_TIER        2
#define NGX_HTTP_MPN_VAR_OFFER       3
#define NGX_HTTP_MPN_VAR_EXPIRES     4
#define NGX_HTTP_MPN_VAR_DAYS_LEFT   5
#define NGX_HTTP_MPN_VAR_AUTO_RENEW  6
#define NGX_HTTP_MPN_VAR_REMIND      7

#define NGX_HTTP_MPN_QUOTA_USED      0
#define NGX_HTTP_MPN_QUOTA_LEFT      1
#define NGX_HTTP_MPN_QUOTA_RESET     2


static ngx_int_t ngx_http_mpn_partner_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpn_decision_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpn_benefit_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpn_quota_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpn_cache_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpn_return_url_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpn_return_url(ngx_http_request_t *r,
    ngx_str_t *url);
static void ngx_http_mpn_set_string(ngx_http_variable_value_t *v,
    u_char *data, size_t len);


static ngx_http_variable_t  ngx_http_mpn_vars[] = {

    { ngx_string("mpn_partner_id"), NULL, ngx_http_mpn_partner_id_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_decision"), NULL, ngx_http_mpn_decision_variable,
      NGX_HTTP_MPN_VAR_DECISION, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_reason"), NULL, ngx_http_mpn_decision_variable,
      NGX_HTTP_MPN_VAR_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_tier"), NULL, ngx_http_mpn_decision_variable,
      NGX_HTTP_MPN_VAR_TIER, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_offer"), NULL, ngx_http_mpn_decision_variable,
      NGX_HTTP_MPN_VAR_OFFER, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_expires"), NULL, ngx_http_mpn_decision_variable,
      NGX_HTTP_MPN_VAR_EXPIRES, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_days_left"), NULL, ngx_http_mpn_decision_variable,
      NGX_HTTP_MPN_VAR_DAYS_LEFT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_auto_renew"), NULL, ngx_http_mpn_decision_variable,
      NGX_HTTP_MPN_VAR_AUTO_RENEW, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_remind"), NULL, ngx_http_mpn_decision_variable,
      NGX_HTTP_MPN_VAR_REMIND, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_benefit_"), NULL, ngx_http_mpn_benefit_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    { ngx_string("mpn_quota_used"), NULL, ngx_http_mpn_quota_variable,
      NGX_HTTP_MPN_QUOTA_USED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_quota_left"), NULL, ngx_http_mpn_quota_variable,
      NGX_HTTP_MPN_QUOTA_LEFT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_quota_reset"), NULL, ngx_http_mpn_quota_variable,
      NGX_HTTP_MPN_QUOTA_RESET, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_cache_status"), NULL,
      ngx_http_mpn_cache_status_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpn_return_url"), NULL, ngx_http_mpn_return_url_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_mpn_cache_statuses[] = {
    ngx_string("BYPASS"),
    ngx_string("MISS"),
    ngx_string("HIT"),
    ngx_string("EXPIRED"),
    ngx_string("STALE")
};


ngx_int_t
ngx_http_mpn_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_mpn_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpn_partner_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_mpn_ctx_t  *ctx;

    ctx = ngx_http_mpn_get_ctx(r);

    if (ctx == NULL || ctx->partner_id.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_mpn_set_string(v, ctx->partner_id.data, ctx->partner_id.len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpn_decision_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char              *p;
    const char          *s;
    mpn_decision_t      *d;
    const mpn_grant_t   *g;
    ngx_http_mpn_ctx_t  *ctx;

    ctx = ngx_http_mpn_get_ctx(r);

    if (ctx == NULL || !ctx->decided) {
        v->not_found = 1;
        return NGX_OK;
    }

    d = &ctx->decision;
    s = "";

    switch (data) {

    case NGX_HTTP_MPN_VAR_DECISION:
        s = mpn_decision_names[d->decision];
        break;

    case NGX_HTTP_MPN_VAR_REASON:
        s = mpn_reason_names[d->reason];
        break;

    case NGX_HTTP_MPN_VAR_TIER:
        s = mpn_tier_names[d->tier];
        break;

    case NGX_HTTP_MPN_VAR_OFFER:

        if (d->grant >= 0 && ctx->record != NULL) {
            g = &mpn_record_grants(ctx->record)[d->grant];
            ngx_http_mpn_set_string(v, (u_char *) mpn_record_str(ctx->record,
                                                                 g->name),
                                    g->name_len);
            return NGX_OK;
        }

        break;

    case NGX_HTTP_MPN_VAR_EXPIRES:

        if (d->has_end) {
            p = ngx_pnalloc(r->pool, MPN_TIME_LEN + 1);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ngx_http_mpn_set_string(v, p, mpn_time_format(d->end, (char *) p));
            return NGX_OK;
        }

        break;

    case NGX_HTTP_MPN_VAR_DAYS_LEFT:

        if (d->has_end) {
            p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ngx_http_mpn_set_string(v, p, ngx_sprintf(p, "%L", d->days_left)
                                          - p);
            return NGX_OK;
        }

        break;

    case NGX_HTTP_MPN_VAR_AUTO_RENEW:

        if (d->auto_renew >= 0) {
            s = d->auto_renew ? "on" : "off";
        }

        break;

    default: /* NGX_HTTP_MPN_VAR_REMIND */
        s = d->remind ? "1" : "";
    }

    ngx_http_mpn_set_string(v, (u_char *) s, ngx_strlen(s));

    return NGX_OK;
}


/* $mpn_benefit_NAME: the quantity of NAME held through current grants */

static ngx_int_t
ngx_http_mpn_benefit_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    u_char                   *p;
    size_t                    prefix;
    int64_t                   n;
    ngx_http_mpn_ctx_t       *ctx;
    ngx_http_mpn_loc_conf_t  *lcf;

    ctx = ngx_http_mpn_get_ctx(r);

    if (ctx == NULL || ctx->record == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_mpn_module);
    prefix = sizeof("mpn_benefit_") - 1;

    n = mpn_benefit_quantity(ctx->record, (char *) name->data + prefix,
                             name->len - prefix, ctx->now, lcf->grace);

    if (n < 0) {
        ngx_http_mpn_set_string(v, (u_char *) "", 0);
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_http_mpn_set_string(v, p, ngx_sprintf(p, "%L", n) - p);

    return NGX_OK;
}


/*
 * mpn_consume's: the usage after this request and what is left, once
 * Redis said (quota refusals included); the first second of the next
 * period once a consumption was tried.
 */

static ngx_int_t
ngx_http_mpn_quota_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char              *p;
    int64_t              n;
    ngx_http_mpn_ctx_t  *ctx;

    ctx = ngx_http_mpn_get_ctx(r);

    if (ctx == NULL
        || (data == NGX_HTTP_MPN_QUOTA_RESET ? !ctx->quota_period
                                             : !ctx->quota_answered))
    {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, ngx_max(NGX_INT64_LEN, MPN_TIME_LEN + 1));
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (data == NGX_HTTP_MPN_QUOTA_RESET) {
        ngx_http_mpn_set_string(v, p, mpn_time_format(ctx->quota_reset,
                                                      (char *) p));
        return NGX_OK;
    }

    n = ctx->quota_used;

    if (data == NGX_HTTP_MPN_QUOTA_LEFT) {
        n = (ctx->quota_allowance > n) ? ctx->quota_allowance - n : 0;
    }

    ngx_http_mpn_set_string(v, p, ngx_sprintf(p, "%L", n) - p);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpn_cache_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_mpn_ctx_t  *ctx;

    ctx = ngx_http_mpn_get_ctx(r);

    /* BYPASS too when identity failed: the cache was not asked */

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_mpn_set_string(v, ngx_http_mpn_cache_statuses[ctx->cache_status]
                               .data,
                            ngx_http_mpn_cache_statuses[ctx->cache_status]
                               .len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpn_return_url_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  url;

    if (ngx_http_mpn_return_url(r, &url) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_mpn_set_string(v, url.data, url.len);

    return NGX_OK;
}


/*
 * The request target as the client sent it (path and query), encoded for a
 * query parameter: every byte but A-Z a-z 0-9 - . _ ~ becomes %XX, so
 * neither CR/LF nor '&' nor '#' survive.  A leading run of slashes,
 * backslashes, blanks and control characters (raw or percent-encoded),
 * which a browser could read as "//host", becomes a single "/".
 */

static ngx_int_t
ngx_http_mpn_return_url(ngx_http_request_t *r, ngx_str_t *url)
{
    u_char      c, *p, *s, *end;
    ngx_str_t   src;
    static u_char  hex[] = "0123456789ABCDEF";

    src = r->unparsed_uri;

    if (src.len == 0) {
        src = r->uri;
    }

    s = src.data;
    end = s + src.len;

    while (s < end) {
        c = *s;

        if (c == '%' && end - s >= 3) {
            c = (u_char) ((ngx_hextoi(s + 1, 2) == NGX_ERROR)
                          ? 'x' : ngx_hextoi(s + 1, 2));

            if (c == '/' || c == '\\' || c <= 0x20 || c == 0x7f) {
                s += 3;
                continue;
            }

            break;
        }

        if (c == '/' || c == '\\' || c <= 0x20 || c == 0x7f) {
            s++;
            continue;
        }

        break;
    }

    p = ngx_pnalloc(r->pool, 3 + 3 * (end - s));
    if (p == NULL) {
        return NGX_ERROR;
    }

    url->data = p;

    p = ngx_cpymem(p, "%2F", 3);

    for ( /* void */ ; s < end; s++) {
        c = *s;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_' || c == '~')
        {
            *p++ = c;

        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        }
    }

    url->len = p - url->data;

    return NGX_OK;
}


static void
ngx_http_mpn_set_string(ngx_http_variable_value_t *v, u_char *data,
    size_t len)
{
    v->len = len;
    v->data = data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
}
