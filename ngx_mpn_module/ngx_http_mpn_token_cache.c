/*
 * mpn_token_cache: each worker remembers the tokens it verified
 * (mpn_tcache.c), so that a partner's next request costs a hash and a
 * compare instead of a signature check.  The cache is created on a
 * worker's first token and emptied whenever the key sets change: a reload
 * starts new workers with an empty one, and key sets replaced at run time
 * call ngx_http_mpn_token_cache_keys_changed().
 */

#include "ngx_http_mpn_module.h"
#include "ngx_http_mpn_status.h"
#include "mpn_tcache.h"


#define NGX_HTTP_MPN_TOKEN_CACHE_DEFAULT  (16 * 1024 * 1024)


static mpn_tcache_t  *ngx_http_mpn_tcache;
static ngx_uint_t     ngx_http_mpn_tcache_generation;   /* of the cache */
static ngx_uint_t     ngx_http_mpn_keys_generation = 1;  /* of the keys */


/* mpn_token_cache SIZE | off */

char *
ngx_http_mpn_token_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_mpn_main_conf_t *mcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (mcf->token_cache != 0) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        mcf->token_cache = NGX_HTTP_MPN_TOKEN_CACHE_OFF;
        return NGX_CONF_OK;
    }

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR || size < 4096) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" in \"mpn_token_cache\", "
                           "expected \"off\" or at least 4k", &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf->token_cache = size;

    return NGX_CONF_OK;
}


/* key sets were replaced: no token verified before is trusted from now */

void
ngx_http_mpn_token_cache_keys_changed(void)
{
    ngx_http_mpn_keys_generation++;
}


/*
 * mpn_token_verify for a request with the key set ks (the scope's file set,
 * fetched set, or both), through this worker's cache; counts the cache's
 * hits and misses.
 */

int
ngx_http_mpn_token_cache_verify(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, mpn_keyset_t *ks, ngx_str_t *token,
    char *id, size_t *len, const char **why)
{
    int                        rc, hit;
    size_t                     size;
    ngx_http_mpn_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_mpn_module);

    if (mcf->token_cache == NGX_HTTP_MPN_TOKEN_CACHE_OFF || token->len == 0) {
        return mpn_token_verify(ks, (char *) token->data,
                                token->len, (int64_t) ngx_time(),
                                &lcf->token_opts, id, len, why);
    }

    if (ngx_http_mpn_tcache != NULL
        && ngx_http_mpn_tcache_generation != ngx_http_mpn_keys_generation)
    {
        mpn_tcache_clear(ngx_http_mpn_tcache);
        ngx_http_mpn_tcache_generation = ngx_http_mpn_keys_generation;
    }

    if (ngx_http_mpn_tcache == NULL) {
        size = (mcf->token_cache != 0) ? (size_t) mcf->token_cache
                                       : NGX_HTTP_MPN_TOKEN_CACHE_DEFAULT;

        /* NULL (no memory) verifies every time, and tries again later */
        ngx_http_mpn_tcache = mpn_tcache_create(size);
        ngx_http_mpn_tcache_generation = ngx_http_mpn_keys_generation;
    }

    rc = mpn_tcache_verify(ngx_http_mpn_tcache, lcf->token_scope,
                           ks, (char *) token->data, token->len,
                           (int64_t) ngx_time(), &lcf->token_opts, id, len,
                           why, &hit);

    if (hit) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_TOKEN_CACHE_HITS);

    } else {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_TOKEN_CACHE_MISSES);
    }

    return rc;
}


void
ngx_http_mpn_token_cache_exit_process(void)
{
    mpn_tcache_free(ngx_http_mpn_tcache);
    ngx_http_mpn_tcache = NULL;
}
