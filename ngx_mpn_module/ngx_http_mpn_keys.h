/*
 * mpn_token_keys_request: key sets fetched from the identity provider by
 * subrequest, shared by the workers through a zone of their own, rotated
 * without a reload (spec section 4, docs/tokens.md).
 */

#ifndef NGX_HTTP_MPN_KEYS_H
#define NGX_HTTP_MPN_KEYS_H

#include "ngx_http_mpn_module.h"


/* mpn_token_keys_fetches_total{result} */
#define NGX_HTTP_MPN_KEYS_OK       0
#define NGX_HTTP_MPN_KEYS_ERROR    1
#define NGX_HTTP_MPN_KEYS_INVALID  2
#define NGX_HTTP_MPN_KEYS_NRESULTS 3


char *ngx_http_mpn_keys_request_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_mpn_keys_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_mpn_keys_merge(ngx_conf_t *cf, ngx_http_mpn_loc_conf_t *prev,
    ngx_http_mpn_loc_conf_t *conf);
ngx_int_t ngx_http_mpn_keys_add_zone(ngx_conf_t *cf,
    ngx_http_mpn_main_conf_t *mcf);

/*
 * The key set a request's token is verified with: NGX_OK with *ks set;
 * NGX_AGAIN while the request waits for a fetch (it is woken with
 * ctx->keys_woken set and identifies again); NGX_DECLINED with the
 * decision made (keys_unavailable, or fail_open); NGX_ERROR.  unknown_kid:
 * the token's kid named no key of the set it was given, which may start
 * an early fetch.
 */
ngx_int_t ngx_http_mpn_keys_get(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx,
    ngx_uint_t unknown_kid, mpn_keyset_t **ks);

/* keys usable now in the fetched key sets (the mpn_token_keys gauge) */
ngx_uint_t ngx_http_mpn_keys_usable(ngx_http_mpn_main_conf_t *mcf);

#endif /* NGX_HTTP_MPN_KEYS_H */
