/*
 * Redis Cluster mode of mpn_redis (ngx_http_mpn_cluster.c): the lookups and
 * writes of a worker routed by the slot map, and the subscriber's node.
 */

#ifndef NGX_HTTP_MPN_CLUSTER_H
#define NGX_HTTP_MPN_CLUSTER_H

#include "ngx_http_mpn_redis.h"


void ngx_http_mpn_cluster_init_process(ngx_cycle_t *cycle,
    ngx_http_mpn_redis_conf_t *conf);
void ngx_http_mpn_cluster_exit_process(void);
ngx_uint_t ngx_http_mpn_cluster_ready(void);

/*
 * A command about one key, on the node of the key's slot: a handle for
 * ngx_http_mpn_cluster_timed_out(), or NULL.  A write goes to the slot's
 * primary even with read=replica and is never sent twice.
 */
void *ngx_http_mpn_cluster_command(ngx_str_t *key, int argc,
    const char **argv, const size_t *argvlen, ngx_uint_t write,
    ngx_http_mpn_reply_pt handler, void *data);
void ngx_http_mpn_cluster_timed_out(void *lookup);
/* a write not sent yet (waiting for a map, or queued on a node connection
 * being opened) ends unsent: NGX_OK; NGX_DECLINED once sent, or a read */
ngx_int_t ngx_http_mpn_cluster_withdraw(void *handle);

/* the subscriber's locate callback: one node, the next after a failure */
void ngx_http_mpn_cluster_locate_any(ngx_http_mpn_redis_conn_t *rc);

#endif /* NGX_HTTP_MPN_CLUSTER_H */
