/*
 * One hiredis asynchronous connection on nginx's event loop, shared by the
 * lookup connection (ngx_http_mpn_redis.c) and the invalidation subscriber
 * (ngx_http_mpn_subscriber.c): connect with AUTH and SELECT queued first,
 * a connect timer, the read/write event plumbing, and reconnection with
 * backoff from a timer after any loss.  A user sends nothing of its own
 * before on_ready: every setup command succeeded, so nothing is read
 * unauthenticated or from a database that was not selected.
 */

#ifndef NGX_HTTP_MPN_REDIS_H
#define NGX_HTTP_MPN_REDIS_H

#include "ngx_http_mpn_module.h"


struct redisAsyncContext;

typedef struct ngx_http_mpn_conn_s  ngx_http_mpn_conn_t;

typedef void (*ngx_http_mpn_conn_pt)(ngx_http_mpn_conn_t *mc);


struct ngx_http_mpn_conn_s {
    ngx_http_mpn_redis_conf_t *conf;
    ngx_log_t                 *log;
    const char                *role;         /* "" or e.g. "subscriber: " */

    struct redisAsyncContext  *ac;           /* NULL while disconnected */
    ngx_connection_t          *conn;
    ngx_event_t                reconnect;
    ngx_event_t                connect_timer;
    ngx_msec_t                 backoff;
    ngx_uint_t                 setup;        /* setup replies outstanding */

    /* the server accepted the connection; was_connected tells a reconnect */
    ngx_http_mpn_conn_pt       on_connect;
    /* AUTH and SELECT succeeded (or there were none) */
    ngx_http_mpn_conn_pt       on_ready;
    /* the context is being freed: its pending callbacks have run */
    ngx_http_mpn_conn_pt       on_close;
    void                      *data;

    ngx_http_mpn_limit_t       connect_limit;
    ngx_http_mpn_limit_t       error_limit;

    unsigned                   connected:1;
    unsigned                   set_up:1;     /* on_ready was called */
    unsigned                   was_connected:1;
    unsigned                   exiting:1;
};


/* mc->conf, role, on_connect, on_ready, on_close and data are set by the
 * caller */
void ngx_http_mpn_conn_start(ngx_http_mpn_conn_t *mc, ngx_cycle_t *cycle);
void ngx_http_mpn_conn_close(ngx_http_mpn_conn_t *mc);

#endif /* NGX_HTTP_MPN_REDIS_H */
