/*
 * mpn_cache: parsed partner records (or "no record") in one shared-memory
 * zone across the workers, in the model of limit_req (a hash index of the
 * partner ids instead of its rbtree) and an LRU queue under the zone mutex,
 * a few of the least recently used entries evicted when the slab is full.
 * The zone remembers where its records came from (server, database, key
 * prefix) and is emptied by a reload that changes it.
 */

#ifndef NGX_HTTP_MPN_CACHE_H
#define NGX_HTTP_MPN_CACHE_H

#include "ngx_http_mpn_module.h"


typedef struct ngx_http_mpn_cache_sh_s  ngx_http_mpn_cache_sh_t;


struct ngx_http_mpn_cache_s {
    ngx_http_mpn_cache_sh_t   *sh;
    ngx_slab_pool_t           *shpool;
    ngx_shm_zone_t            *shm_zone;
    ngx_http_mpn_main_conf_t  *mcf;          /* the source of the records */
    ngx_uint_t                 generation;   /* of the zone's source */
    ngx_uint_t                 cycle;        /* this configuration's number */
    ngx_msec_t                 ttl;
    ngx_msec_t                 negative_ttl;
    ngx_msec_t                 stale;
};


char *ngx_http_mpn_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * Looks the partner up and returns a $mpn_cache_status value.  A fresh
 * entry (HIT), or with `stale` set any entry still inside ttl + stale
 * (STALE), is copied into pool: *result is NGX_HTTP_MPN_FOUND with *rec
 * set, or NGX_HTTP_MPN_MISSING.  Otherwise returns EXPIRED or MISS and
 * copies nothing.
 */
ngx_uint_t ngx_http_mpn_cache_get(ngx_http_mpn_cache_t *cache,
    ngx_str_t *id, ngx_uint_t stale, ngx_pool_t *pool, mpn_record_t **rec,
    ngx_uint_t *result);

/* the read and invalidation epoch to pass to put when the reply comes */
ngx_msec_t ngx_http_mpn_cache_epoch(ngx_http_mpn_cache_t *cache,
    ngx_atomic_uint_t *drops);

/* stores rec (NULL: the partner has no record) read at time `read` */
void ngx_http_mpn_cache_put(ngx_http_mpn_cache_t *cache, ngx_str_t *id,
    mpn_record_t *rec, ngx_msec_t read, ngx_atomic_uint_t drops);

/* an invalidation message: the entry is dropped */
void ngx_http_mpn_cache_drop(ngx_http_mpn_cache_t *cache, ngx_str_t *id);

/* the subscription was lost or restored: everything older is expired */
void ngx_http_mpn_cache_mark_gap(ngx_http_mpn_cache_t *cache);

/*
 * This worker holds (on = 1) or lost (on = 0) a subscription.  Returns how
 * many other workers are subscribed now; with on = 1, *died tells that this
 * worker's predecessor in its process slot died subscribed.
 */
ngx_uint_t ngx_http_mpn_cache_subscribed(ngx_http_mpn_cache_t *cache,
    ngx_uint_t on, ngx_uint_t *died);

/*
 * For a worker that exits: NGX_DECLINED when no newer configuration uses
 * the zone (nginx stops), NGX_AGAIN while none of its workers subscribed
 * yet (a reload), NGX_OK once one did.
 */
ngx_int_t ngx_http_mpn_cache_successor(ngx_http_mpn_cache_t *cache);

/* 1 when this worker is the one that counts invalidation messages */
ngx_uint_t ngx_http_mpn_cache_counts(ngx_http_mpn_cache_t *cache);

void ngx_http_mpn_cache_usage(ngx_http_mpn_cache_t *cache,
    ngx_uint_t *entries, size_t *used, size_t *total);

#endif /* NGX_HTTP_MPN_CACHE_H */
