/*
 * Redis on nginx's own connections.
 *
 * A connection (ngx_http_mpn_redis_conn_t) is an nginx peer connection,
 * with TLS from nginx's OpenSSL layer when configured, carrying pipelined
 * commands: hiredis only encodes them (redisFormatCommandArgv) and parses
 * the replies (a redisReader).  AUTH and SELECT go first on every
 * connection and must succeed before anything else is sent, and a
 * connection with a "probe" (the lookups': the dataset marker) serves only
 * while EXISTS finds that key, checked every second; a lost connection is
 * reopened from a backoff timer.  Where to connect comes
 * from a "locate" callback, so a topology (re-resolved names today;
 * Sentinel, replicas, Cluster nodes later) decides the address of each
 * attempt (ngx_http_mpn_redis_server.c).
 *
 * The rest of the module calls two things: ngx_http_mpn_redis_get() on the
 * worker's lookup connection ("get this key, call me back"), and, for the
 * invalidation subscriber, a connection of its own with a PUSH command.
 */

#ifndef NGX_HTTP_MPN_REDIS_H
#define NGX_HTTP_MPN_REDIS_H

#include "ngx_http_mpn_module.h"


/* ngx_http_mpn_redis_send() flags */

/* idempotent: may be sent once more on the next connection after a loss */
#define NGX_HTTP_MPN_REDIS_RETRY  0x01
/* answered again and again (SUBSCRIBE): stays until the connection goes */
#define NGX_HTTP_MPN_REDIS_PUSH   0x02
/* a nil reply is handed on only once a probe sent after it succeeded */
#define NGX_HTTP_MPN_REDIS_CONFIRM_NIL  0x04
/* not in the mpn_redis_* metrics, which count lookups (a PING) */
#define NGX_HTTP_MPN_REDIS_QUIET  0x08
/* an error reply is an answer (mpn_consume's QUOTA), not a Redis error:
 * the caller counts the ones it does not expect */
#define NGX_HTTP_MPN_REDIS_ERROR_ANSWERS  0x10


typedef struct ngx_http_mpn_redis_conn_s  ngx_http_mpn_redis_conn_t;

typedef void (*ngx_http_mpn_redis_conn_pt)(ngx_http_mpn_redis_conn_t *rc);


struct ngx_http_mpn_redis_conn_s {
    /* set by the caller before ngx_http_mpn_redis_conn_start() */
    ngx_http_mpn_redis_conf_t *conf;
    const char                *role;         /* "" or e.g. "subscriber: " */
    ngx_http_mpn_redis_conn_pt locate;       /* calls ..._conn_connect() */
    ngx_http_mpn_redis_conn_pt on_ready;     /* setup done: serve */
    ngx_http_mpn_redis_conn_pt on_close;     /* a ready connection went */
    /* the worker exits: ngx_close_idle_connections() found the connection
     * marked idle by its user */
    ngx_http_mpn_redis_conn_pt on_exiting;
    void                      *data;
    ngx_str_t                 *probe;        /* the dataset marker, or NULL */
    unsigned                   counted:1;    /* in mpn_redis_* metrics */
    unsigned                   expect_primary:1;  /* ROLE must say master */

    /* the layer's own */
    ngx_log_t                 *log;
    ngx_log_t                  quiet_log;    /* connect(): ours rate-limited */
    ngx_peer_connection_t      peer;         /* peer.connection: NULL if
                                                none */
    ngx_sockaddr_t             addr;         /* of the last attempt */
    socklen_t                  addr_len;
    ngx_str_t                  peer_name;    /* addr as text */
    u_char                     peer_name_data[NGX_SOCKADDR_STRLEN];
    void                      *reader;       /* redisReader */
    ngx_uint_t                 state;
    ngx_uint_t                 setup;        /* setup replies still due */
    ngx_uint_t                 generation;   /* of the connection */

    ngx_queue_t                sent;         /* commands awaiting a reply */
    ngx_queue_t                waiting;      /* to send once ready */
    ngx_queue_t                nils;         /* nil replies to confirm */
    ngx_uint_t                 probes;       /* EXISTS outstanding */
    uint64_t                   probe_seq;    /* seq of the last EXISTS */

    u_char                    *out_start;    /* the output buffer */
    u_char                    *out_pos;
    u_char                    *out_last;
    u_char                    *out_end;

    uint64_t                   seq;          /* of the last command sent */
    uint64_t                   answered;     /* of the last one answered */

    ngx_event_t                reconnect;
    ngx_event_t                connect_timer;
    ngx_event_t                probe_timer;  /* the marker, every second */
    time_t                     unready_logged;
    ngx_msec_t                 backoff;
    void                      *resolving;    /* ngx_resolver_ctx_t */

    ngx_http_mpn_limit_t       connect_limit;
    ngx_http_mpn_limit_t       error_limit;

    unsigned                   was_ready:1;
    unsigned                   exiting:1;
    unsigned                   served:1;     /* this connection was ready */
    unsigned                   unready_said:1;
};


void ngx_http_mpn_redis_conn_start(ngx_http_mpn_redis_conn_t *rc,
    ngx_cycle_t *cycle);
void ngx_http_mpn_redis_conn_close(ngx_http_mpn_redis_conn_t *rc);

/* from locate: connect to this address (copied), or give up this attempt */
void ngx_http_mpn_redis_conn_connect(ngx_http_mpn_redis_conn_t *rc,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *name);
void ngx_http_mpn_redis_conn_failed(ngx_http_mpn_redis_conn_t *rc);

ngx_uint_t ngx_http_mpn_redis_conn_ready(ngx_http_mpn_redis_conn_t *rc);
/* waiting for its locate callback to name an address */
ngx_uint_t ngx_http_mpn_redis_conn_locating(ngx_http_mpn_redis_conn_t *rc);
/* a connection waiting out its backoff tries again now */
void ngx_http_mpn_redis_conn_retry_now(ngx_http_mpn_redis_conn_t *rc);

/*
 * Queues a command: sent at once on a ready connection, on readiness on
 * one being opened; NULL when there is no connection (handler not called).
 * Otherwise the handler is called exactly once (PUSH: once per reply, then
 * once with NULL), with a reply, or NULL when none will come.
 */
ngx_http_mpn_redis_cmd_t *ngx_http_mpn_redis_send(
    ngx_http_mpn_redis_conn_t *rc, int argc, const char **argv,
    const size_t *argvlen, ngx_uint_t flags, ngx_http_mpn_reply_pt handler,
    void *data);

/*
 * Takes back a command not yet written (waiting for its connection to be
 * ready): its handler is called with NULL now, and it is never sent.
 * NGX_DECLINED once written (or carried over after being written once):
 * its reply, or NULL, still comes.
 */
ngx_int_t ngx_http_mpn_redis_withdraw(ngx_http_mpn_redis_cmd_t *cmd);

/* closes the connection now (its commands fail or are retried) and
 * reconnects with backoff */
void ngx_http_mpn_redis_conn_drop(ngx_http_mpn_redis_conn_t *rc,
    const char *why);


/* a replica's PING round trip: read=replica goes to the nearest */
typedef struct {
    uint64_t                   rtt;          /* usec, smoothed; 0: none */
    uint64_t                   sent;         /* usec; 0: no PING out */
} ngx_http_mpn_redis_rtt_t;

/* a PING (not in the metrics) unless one is out; its reply handler
 * calls ngx_http_mpn_redis_rtt_reply() */
void ngx_http_mpn_redis_rtt_ping(ngx_http_mpn_redis_conn_t *rc,
    ngx_http_mpn_redis_rtt_t *rtt, ngx_http_mpn_reply_pt handler,
    void *data);
/* 1: a round trip measured */
ngx_uint_t ngx_http_mpn_redis_rtt_reply(ngx_http_mpn_redis_rtt_t *rtt,
    void *reply);


/* ngx_http_mpn_redis_server.c: the topology, the mpn_redis directive */

char *ngx_http_mpn_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_mpn_redis_init_conf(ngx_conf_t *cf,
    ngx_http_mpn_redis_conf_t *rc);
void ngx_http_mpn_redis_locate(ngx_http_mpn_redis_conn_t *rc);
void ngx_http_mpn_redis_tls_name(ngx_str_t *name, ngx_str_t *host);
void ngx_http_mpn_redis_locate_cancel(ngx_http_mpn_redis_conn_t *rc);
#if (NGX_SSL)
ngx_int_t ngx_http_mpn_redis_tls_start(ngx_http_mpn_redis_conn_t *rc,
    ngx_connection_t *c);
ngx_int_t ngx_http_mpn_redis_tls_check(ngx_http_mpn_redis_conn_t *rc,
    ngx_connection_t *c);
#endif

#endif /* NGX_HTTP_MPN_REDIS_H */
