/*
 * Sentinel mode of mpn_redis (ngx_http_mpn_sentinel.c): where the primary
 * and, with read=replica, the replicas are, as the Sentinels say.
 */

#ifndef NGX_HTTP_MPN_SENTINEL_H
#define NGX_HTTP_MPN_SENTINEL_H

#include "ngx_http_mpn_redis.h"


void ngx_http_mpn_sentinel_init_process(ngx_cycle_t *cycle,
    ngx_http_mpn_redis_conf_t *conf);
void ngx_http_mpn_sentinel_exit_process(void);

/*
 * Gives a data connection (the lookups', the subscriber's) its address
 * from the Sentinels: the primary, or with replica set and read=replica
 * the nearest replica that answers.  Call before ..._conn_start().
 */
void ngx_http_mpn_sentinel_attach(ngx_http_mpn_redis_conn_t *rc,
    ngx_uint_t replica);

/* read=replica: the nearest replica's ready connection, or NULL */
ngx_http_mpn_redis_conn_t *ngx_http_mpn_sentinel_replica(void);

#endif /* NGX_HTTP_MPN_SENTINEL_H */
