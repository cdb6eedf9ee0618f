/*
 * Redis Cluster over the connection layer (ngx_http_mpn_redis.c): the
 * slot map from CLUSTER SLOTS, each command on its key's node, MOVED and
 * ASK, failover, read=replica, and the dataset marker read on its slot's
 * node.
 *
 * Each worker keeps one connection per node it has used, opened on demand
 * and pipelined like the single-server one.  A lookup (one command about
 * one key, a GET or a write such as FCALL mpn_consume, and where it went)
 * is malloc()ed and lives until its handler has been called once: with
 * the reply, or with NULL when none can be had.  It moves between
 * connections on MOVED (to the node named, while the map is refreshed),
 * on ASK (ASKING and the command, once), and, a read only, once after its
 * connection was lost (after the map is refreshed from any other node):
 * a write may have run there, so it is never sent twice.  At most one
 * CLUSTER SLOTS is in flight; lookups that need the map wait for it, each
 * with its own deadline.
 */

#include <hiredis/hiredis.h>

#include "ngx_http_mpn_redis.h"
#include "ngx_http_mpn_cluster.h"
#include "ngx_http_mpn_status.h"
#include "mpn_cluster.h"


#define NGX_HTTP_MPN_CLUSTER_REDIRECTS   5       /* per lookup */
#define NGX_HTTP_MPN_CLUSTER_TICK        1000    /* marker, RTT probes */
#define NGX_HTTP_MPN_CLUSTER_REFRESH     10      /* map every N ticks */
#define NGX_HTTP_MPN_CLUSTER_SOON        100     /* ms between maps */
#define NGX_HTTP_MPN_CLUSTER_RETRY_MIN   50      /* failed refresh */
#define NGX_HTTP_MPN_CLUSTER_RETRY_MAX   1000


typedef struct ngx_http_mpn_cluster_node_s  ngx_http_mpn_cluster_node_t;
typedef struct ngx_http_mpn_cluster_lookup_s  ngx_http_mpn_cluster_lookup_t;


struct ngx_http_mpn_cluster_node_s {
    ngx_http_mpn_redis_conn_t       conn;        /* its data: this node */
    ngx_http_mpn_redis_conf_t       conf;        /* mpn_redis's, named so */
    ngx_queue_t                     queue;       /* in the worker's nodes */
    ngx_str_t                       name;        /* host:port */
    u_char                          name_data[MPN_CLUSTER_HOST_MAX + 8];
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    ngx_http_mpn_redis_rtt_t        rtt;
    unsigned                        resolved:1;  /* sockaddr usable */
    unsigned                        started:1;   /* conn started */
    unsigned                        replica:1;   /* in the map as one */
    unsigned                        readonly:1;  /* READONLY answered */
    unsigned                        in_map:1;
};


struct ngx_http_mpn_cluster_lookup_s {
    ngx_queue_t                     queue;       /* parked for the map */
    ngx_http_mpn_cluster_node_t    *node;        /* where it was sent */
    ngx_http_mpn_redis_cmd_t       *cmd;         /* in flight, or NULL */
    ngx_http_mpn_reply_pt           handler;
    void                           *data;
    ngx_msec_t                      deadline;
    ngx_event_t                     timer;       /* while parked */
    uint64_t                        sent;        /* usec */
    ngx_uint_t                      redirects;
    ngx_str_t                       key;         /* routed by its slot */
    int                             argc;
    const char                    **argv;        /* copies, after lk */
    size_t                         *argvlen;
    unsigned                        parked:1;
    unsigned                        retried:1;   /* after a loss */
    unsigned                        asking:1;
    unsigned                        internal:1;  /* marker: not counted */
    unsigned                        write:1;     /* primary, sent once */
};


typedef struct {
    ngx_http_mpn_redis_conf_t      *conf;
    ngx_log_t                      *log;
    ngx_cycle_t                    *cycle;
    mpn_cluster_map_t              *map;         /* NULL: none yet */
    ngx_http_mpn_cluster_node_t   **map_nodes;   /* by the map's index */
    ngx_queue_t                     nodes;
    ngx_uint_t                      nnodes;
    ngx_queue_t                     parked;      /* lookups awaiting a map */

    /* the one CLUSTER SLOTS in flight */
    ngx_http_mpn_cluster_node_t    *refresh_node;
    ngx_uint_t                      refresh_next;  /* candidate to try */
    ngx_uint_t                      refreshing;
    ngx_msec_t                      refreshed;   /* last map, when */
    ngx_event_t                     refresh_timer;
    ngx_msec_t                      refresh_backoff;

    ngx_event_t                     tick;
    ngx_event_t                     marker_timer;
    ngx_uint_t                      ticks;
    ngx_uint_t                      marker_seen;
    ngx_uint_t                      marker_checking;
    ngx_uint_t                      subscriber_next;

    ngx_http_mpn_limit_t            map_limit;
    ngx_http_mpn_limit_t            marker_limit;
    unsigned                        exiting:1;
} ngx_http_mpn_cluster_t;


static ngx_http_mpn_cluster_node_t *ngx_http_mpn_cluster_node(
    ngx_str_t *host, in_port_t port, ngx_str_t *name, ngx_addr_t *addr);
static void ngx_http_mpn_cluster_node_start(
    ngx_http_mpn_cluster_node_t *node);
static void ngx_http_mpn_cluster_node_locate(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_cluster_node_ready(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_cluster_node_closed(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_cluster_readonly_reply(void *data, void *reply);
static void ngx_http_mpn_cluster_ping_reply(void *data, void *reply);
static void ngx_http_mpn_cluster_ignore_reply(void *data, void *reply);

static ngx_http_mpn_cluster_lookup_t *ngx_http_mpn_cluster_lookup(
    ngx_str_t *key, int argc, const char **argv, const size_t *argvlen,
    ngx_http_mpn_reply_pt handler, void *data);
static ngx_http_mpn_cluster_lookup_t *ngx_http_mpn_cluster_exists(
    ngx_http_mpn_reply_pt handler, void *data);
static void ngx_http_mpn_cluster_route(ngx_http_mpn_cluster_lookup_t *lk);
static ngx_int_t ngx_http_mpn_cluster_send(ngx_http_mpn_cluster_lookup_t *lk,
    ngx_http_mpn_cluster_node_t *node);
static ngx_http_mpn_cluster_node_t *ngx_http_mpn_cluster_pick(
    ngx_uint_t primary);
static void ngx_http_mpn_cluster_reply(void *data, void *reply);
static ngx_int_t ngx_http_mpn_cluster_confirm(
    ngx_http_mpn_cluster_lookup_t *lk);
static void ngx_http_mpn_cluster_confirmed(void *data, void *reply);
static ngx_int_t ngx_http_mpn_cluster_redirect(
    ngx_http_mpn_cluster_lookup_t *lk, redisReply *reply);
static void ngx_http_mpn_cluster_park(ngx_http_mpn_cluster_lookup_t *lk);
static void ngx_http_mpn_cluster_parked_timeout(ngx_event_t *ev);
static void ngx_http_mpn_cluster_finish(ngx_http_mpn_cluster_lookup_t *lk,
    redisReply *reply);

static void ngx_http_mpn_cluster_refresh(ngx_uint_t now);
static ngx_http_mpn_cluster_node_t *ngx_http_mpn_cluster_candidate(
    ngx_uint_t i);
static void ngx_http_mpn_cluster_refresh_next(void);
static void ngx_http_mpn_cluster_refresh_reply(void *data, void *reply);
static void ngx_http_mpn_cluster_refresh_failed(void);
static void ngx_http_mpn_cluster_refresh_retry(ngx_event_t *ev);
static void ngx_http_mpn_cluster_use_map(mpn_cluster_map_t *map);
static void ngx_http_mpn_cluster_tick(ngx_event_t *ev);
static void ngx_http_mpn_cluster_marker_check(ngx_event_t *ev);
static void ngx_http_mpn_cluster_marker_reply(void *data, void *reply);


static ngx_http_mpn_cluster_t  ngx_http_mpn_cluster;


/* the worker's start: the seeds become nodes, the map is asked for */

void
ngx_http_mpn_cluster_init_process(ngx_cycle_t *cycle,
    ngx_http_mpn_redis_conf_t *conf)
{
    ngx_uint_t                   i;
    ngx_http_mpn_redis_seed_t   *seed;
    ngx_http_mpn_cluster_t      *cl = &ngx_http_mpn_cluster;

    ngx_memzero(cl, sizeof(ngx_http_mpn_cluster_t));

    cl->conf = conf;
    cl->log = cycle->log;
    cl->cycle = cycle;
    cl->refresh_backoff = NGX_HTTP_MPN_CLUSTER_RETRY_MIN;
    cl->marker_seen = (conf->marker.len == 0);

    ngx_queue_init(&cl->nodes);
    ngx_queue_init(&cl->parked);

    seed = conf->seeds->elts;

    for (i = 0; i < conf->seeds->nelts; i++) {
        (void) ngx_http_mpn_cluster_node(&seed[i].host, seed[i].port,
                                         &seed[i].text, &seed[i].addr);
    }

    cl->refresh_timer.handler = ngx_http_mpn_cluster_refresh_retry;
    cl->refresh_timer.data = cl;
    cl->refresh_timer.log = cycle->log;
    cl->refresh_timer.cancelable = 1;

    cl->tick.handler = ngx_http_mpn_cluster_tick;
    cl->tick.data = cl;
    cl->tick.log = cycle->log;
    cl->tick.cancelable = 1;

    cl->marker_timer.handler = ngx_http_mpn_cluster_marker_check;
    cl->marker_timer.data = cl;
    cl->marker_timer.log = cycle->log;
    cl->marker_timer.cancelable = 1;

    ngx_http_mpn_cluster_refresh(0);

    ngx_add_timer(&cl->tick, NGX_HTTP_MPN_CLUSTER_TICK);
}


void
ngx_http_mpn_cluster_exit_process(void)
{
    ngx_queue_t                  *q;
    ngx_http_mpn_cluster_node_t  *node;
    ngx_http_mpn_cluster_t       *cl = &ngx_http_mpn_cluster;

    if (cl->conf == NULL) {
        return;
    }

    cl->exiting = 1;

    if (cl->tick.timer_set) {
        ngx_del_timer(&cl->tick);
    }

    if (cl->refresh_timer.timer_set) {
        ngx_del_timer(&cl->refresh_timer);
    }

    if (cl->marker_timer.timer_set) {
        ngx_del_timer(&cl->marker_timer);
    }

    /* every pending command is answered (NULL) and every lookup ends */

    for (q = ngx_queue_head(&cl->nodes);
         q != ngx_queue_sentinel(&cl->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_mpn_cluster_node_t, queue);

        if (node->started) {
            node->started = 0;
            ngx_http_mpn_redis_conn_close(&node->conn);
        }
    }

    while (!ngx_queue_empty(&cl->parked)) {
        q = ngx_queue_head(&cl->parked);
        ngx_http_mpn_cluster_finish(
            ngx_queue_data(q, ngx_http_mpn_cluster_lookup_t, queue), NULL);
    }

    while (!ngx_queue_empty(&cl->nodes)) {
        q = ngx_queue_head(&cl->nodes);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_mpn_cluster_node_t, queue));
    }

    free(cl->map);
    cl->map = NULL;

    if (cl->map_nodes != NULL) {
        ngx_free(cl->map_nodes);
        cl->map_nodes = NULL;
    }
}


/* a map is known and the marker was seen on its slot's node */

ngx_uint_t
ngx_http_mpn_cluster_ready(void)
{
    ngx_http_mpn_cluster_t  *cl = &ngx_http_mpn_cluster;

    return cl->map != NULL && cl->marker_seen;
}


void *
ngx_http_mpn_cluster_command(ngx_str_t *key, int argc, const char **argv,
    const size_t *argvlen, ngx_uint_t write, ngx_http_mpn_reply_pt handler,
    void *data)
{
    ngx_http_mpn_cluster_lookup_t  *lk;

    if (!ngx_http_mpn_cluster_ready()) {
        /* fail at once while no map or no marker: never a stranger */
        return NULL;
    }

    lk = ngx_http_mpn_cluster_lookup(key, argc, argv, argvlen, handler,
                                     data);
    if (lk == NULL) {
        return NULL;
    }

    lk->write = (write != 0);

    ngx_http_mpn_cluster_route(lk);

    return lk;
}


/*
 * The request waiting for this lookup gave up.  A connection that has
 * answered nothing since the command was sent is stalled and dropped (the
 * layer's rule); the lookup ends there, or at its own deadline.
 */

void
ngx_http_mpn_cluster_timed_out(void *handle)
{
    ngx_http_mpn_cluster_lookup_t  *lk = handle;

    if (lk->cmd != NULL) {
        ngx_http_mpn_redis_timed_out(lk->cmd);
        return;
    }

    ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_TIMEOUTS);
}


/*
 * A write not sent yet ends now, unsent, so that it cannot run for a
 * request already answered or gone: parked for a map, or queued on a node
 * connection still being opened (the layer answers it with NULL, and
 * ngx_http_mpn_cluster_reply() never sends a write again).
 */

ngx_int_t
ngx_http_mpn_cluster_withdraw(void *handle)
{
    ngx_http_mpn_cluster_lookup_t  *lk = handle;

    if (!lk->write) {
        return NGX_DECLINED;
    }

    if (lk->parked) {
        ngx_http_mpn_cluster_finish(lk, NULL);
        return NGX_OK;
    }

    if (lk->cmd != NULL) {
        return ngx_http_mpn_redis_withdraw(lk->cmd);
    }

    return NGX_DECLINED;
}


/*
 * The subscriber's address: one node of the map (a replica first with
 * read=replica), the next one at every attempt after a failure.
 */

void
ngx_http_mpn_cluster_locate_any(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_uint_t                    i, k, n, pass;
    ngx_queue_t                  *q;
    ngx_http_mpn_cluster_node_t  *node;
    ngx_http_mpn_cluster_t       *cl = &ngx_http_mpn_cluster;

    n = cl->nnodes;

    for (pass = cl->conf->read_replica ? 0 : 1; pass < 2; pass++) {
        for (k = 0; k < n; k++) {
            i = (cl->subscriber_next + k) % n;

            for (q = ngx_queue_head(&cl->nodes); i > 0; i--) {
                q = ngx_queue_next(q);
            }

            node = ngx_queue_data(q, ngx_http_mpn_cluster_node_t, queue);

            if (!node->resolved
                || (cl->map != NULL && !node->in_map)
                || (pass == 0 && !node->replica))
            {
                continue;
            }

            cl->subscriber_next = (cl->subscriber_next + k + 1) % n;

            /* the node's own settings, so log lines name it */
            rc->conf = &node->conf;

            ngx_http_mpn_redis_conn_connect(rc, &node->sockaddr.sockaddr,
                                            node->socklen, &node->name);
            return;
        }
    }

    ngx_http_mpn_redis_conn_failed(rc);
}


/* nodes */

/*
 * The node at host:port, made when first seen.  A literal address is used
 * as is; a name needs addr (resolved at configuration time, for seeds).
 */

static ngx_http_mpn_cluster_node_t *
ngx_http_mpn_cluster_node(ngx_str_t *host, in_port_t port, ngx_str_t *name,
    ngx_addr_t *addr)
{
    u_char                       *p;
    ngx_addr_t                    a;
    ngx_queue_t                  *q;
    ngx_http_mpn_cluster_node_t  *node;
    ngx_http_mpn_cluster_t       *cl = &ngx_http_mpn_cluster;
    u_char                        text[MPN_CLUSTER_HOST_MAX + 8];

    if (name == NULL) {
        p = ngx_snprintf(text, sizeof(text), "%s%V%s:%d",
                         ngx_strlchr(host->data, host->data + host->len, ':')
                             ? "[" : "",
                         host,
                         ngx_strlchr(host->data, host->data + host->len, ':')
                             ? "]" : "",
                         (int) port);
    } else {
        p = ngx_cpymem(text, name->data,
                       ngx_min(name->len, sizeof(text)));
    }

    for (q = ngx_queue_head(&cl->nodes);
         q != ngx_queue_sentinel(&cl->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_mpn_cluster_node_t, queue);

        if (node->name.len == (size_t) (p - text)
            && ngx_memcmp(node->name.data, text, p - text) == 0)
        {
            return node;
        }
    }

    if (cl->nnodes >= MPN_CLUSTER_MAX_NODES) {
        return NULL;
    }

    node = ngx_alloc(sizeof(ngx_http_mpn_cluster_node_t), cl->log);
    if (node == NULL) {
        return NULL;
    }

    ngx_memzero(node, sizeof(ngx_http_mpn_cluster_node_t));

    node->name.data = node->name_data;
    node->name.len = p - text;
    ngx_memcpy(node->name_data, text, node->name.len);

    if (addr == NULL
        && ngx_parse_addr(cl->cycle->pool, &a, host->data, host->len)
           == NGX_OK)
    {
        addr = &a;
    }

    if (addr != NULL && addr->socklen <= sizeof(ngx_sockaddr_t)) {
        ngx_memcpy(&node->sockaddr, addr->sockaddr, addr->socklen);
        node->socklen = addr->socklen;

        if (node->sockaddr.sockaddr.sa_family != AF_UNIX) {
            ngx_inet_set_port(&node->sockaddr.sockaddr, port);
        }

        node->resolved = 1;

    } else {
        ngx_log_error(NGX_LOG_ERR, cl->log, 0,
                      "mpn: redis cluster node %V is announced by name; "
                      "only addresses are supported", &node->name);
    }

    /* mpn_redis's credentials and TLS; log lines name the node */
    node->conf = *cl->conf;
    node->conf.addr_text = node->name;

    node->conn.conf = &node->conf;
    node->conn.role = "";
    node->conn.locate = ngx_http_mpn_cluster_node_locate;
    node->conn.on_ready = ngx_http_mpn_cluster_node_ready;
    node->conn.on_close = ngx_http_mpn_cluster_node_closed;
    node->conn.data = node;

    /* counted here, per lookup, not per command: a redirected GET that
     * ends well is no error, and CLUSTER SLOTS or PING is no request */
    node->conn.counted = 0;

    ngx_queue_insert_tail(&cl->nodes, &node->queue);
    cl->nnodes++;

    return node;
}


static void
ngx_http_mpn_cluster_node_start(ngx_http_mpn_cluster_node_t *node)
{
    if (!node->started && node->resolved && !ngx_http_mpn_cluster.exiting) {
        node->started = 1;
        ngx_http_mpn_redis_conn_start(&node->conn, ngx_http_mpn_cluster.cycle);
    }
}


static void
ngx_http_mpn_cluster_node_locate(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_cluster_node_t  *node = rc->data;

    ngx_http_mpn_redis_conn_connect(rc, &node->sockaddr.sockaddr,
                                    node->socklen, &node->name);
}


/* a replica serves reads only after READONLY */

static void
ngx_http_mpn_cluster_node_ready(ngx_http_mpn_redis_conn_t *rc)
{
    size_t                        len[1];
    const char                   *argv[1];
    ngx_http_mpn_cluster_node_t  *node = rc->data;

    node->readonly = 0;
    node->rtt.sent = 0;

    if (rc->was_ready) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_RECONNECTS);
    }

    if (!node->replica || !ngx_http_mpn_cluster.conf->read_replica) {
        return;
    }

    argv[0] = "READONLY";
    len[0] = 8;

    (void) ngx_http_mpn_redis_send(rc, 1, argv, len, 0,
                                   ngx_http_mpn_cluster_readonly_reply, node);
}


static void
ngx_http_mpn_cluster_node_closed(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_cluster_node_t  *node = rc->data;

    node->readonly = 0;
    node->rtt.sent = 0;
    node->rtt.rtt = 0;

    /* where its slots went is for the map to say */
    if (node->in_map && !ngx_http_mpn_cluster.exiting) {
        ngx_http_mpn_cluster_refresh(0);
    }
}


static void
ngx_http_mpn_cluster_readonly_reply(void *data, void *reply)
{
    ngx_http_mpn_cluster_node_t  *node = data;
    redisReply                   *r = reply;

    if (r != NULL && r->type == REDIS_REPLY_STATUS) {
        node->readonly = 1;
        return;
    }

    if (r != NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_mpn_cluster.log, 0,
                      "mpn: redis %V: READONLY failed: %*s", &node->name,
                      (size_t) ngx_min(r->len, 200), r->str);
    }
}


/* the round trip of a PING, smoothed: read=replica's choice */

static void
ngx_http_mpn_cluster_ping_reply(void *data, void *reply)
{
    ngx_http_mpn_cluster_node_t  *node = data;

    (void) ngx_http_mpn_redis_rtt_reply(&node->rtt, reply);
}


static void
ngx_http_mpn_cluster_ignore_reply(void *data, void *reply)
{
    /* ASKING: a failure shows in the GET's own reply */
}


/* lookups */

/*
 * One allocation: the lookup, then argvlen[] and argv[] (aligned as the
 * lookup is), then the key's and the arguments' bytes, which may be sent
 * again (a redirect) long after the caller's argv is gone.
 */

static ngx_http_mpn_cluster_lookup_t *
ngx_http_mpn_cluster_lookup(ngx_str_t *key, int argc, const char **argv,
    const size_t *argvlen, ngx_http_mpn_reply_pt handler, void *data)
{
    int                             i;
    size_t                          size;
    u_char                         *p;
    ngx_http_mpn_cluster_lookup_t  *lk;
    ngx_http_mpn_cluster_t         *cl = &ngx_http_mpn_cluster;

    size = sizeof(ngx_http_mpn_cluster_lookup_t)
           + argc * (sizeof(size_t) + sizeof(char *)) + key->len;

    for (i = 0; i < argc; i++) {
        size += argvlen[i];
    }

    lk = ngx_alloc(size, cl->log);
    if (lk == NULL) {
        return NULL;
    }

    ngx_memzero(lk, sizeof(ngx_http_mpn_cluster_lookup_t));

    lk->handler = handler;
    lk->data = data;
    lk->deadline = ngx_current_msec + cl->conf->timeout
                   + cl->conf->connect_timeout;

    lk->argc = argc;
    lk->argvlen = (size_t *) (lk + 1);
    lk->argv = (const char **) (lk->argvlen + argc);
    p = (u_char *) (lk->argv + argc);

    lk->key.data = p;
    lk->key.len = key->len;
    p = ngx_cpymem(p, key->data, key->len);

    for (i = 0; i < argc; i++) {
        lk->argv[i] = (const char *) p;
        lk->argvlen[i] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    lk->timer.handler = ngx_http_mpn_cluster_parked_timeout;
    lk->timer.data = lk;
    lk->timer.log = cl->log;
    lk->timer.cancelable = 1;

    return lk;
}


/* EXISTS marker: the worker's own check, not a request's lookup */

static ngx_http_mpn_cluster_lookup_t *
ngx_http_mpn_cluster_exists(ngx_http_mpn_reply_pt handler, void *data)
{
    size_t                          len[2];
    const char                     *argv[2];
    ngx_http_mpn_cluster_lookup_t  *lk;
    ngx_str_t                      *marker;

    marker = &ngx_http_mpn_cluster.conf->marker;

    argv[0] = "EXISTS";
    len[0] = 6;
    argv[1] = (const char *) marker->data;
    len[1] = marker->len;

    lk = ngx_http_mpn_cluster_lookup(marker, 2, argv, len, handler, data);

    if (lk != NULL) {
        lk->internal = 1;
    }

    return lk;
}


/* to the node of the key's slot: its primary, or for a read with
 * read=replica one of its replicas that answers, the nearest */

static void
ngx_http_mpn_cluster_route(ngx_http_mpn_cluster_lookup_t *lk)
{
    ngx_uint_t                    slot;
    ngx_http_mpn_cluster_node_t  *node;
    ngx_http_mpn_cluster_t       *cl = &ngx_http_mpn_cluster;

    if (cl->map == NULL) {
        ngx_http_mpn_cluster_park(lk);
        return;
    }

    slot = mpn_cluster_slot((const char *) lk->key.data, lk->key.len);

    if (cl->map->slot[slot] == MPN_CLUSTER_NONE) {
        ngx_http_mpn_log_limited(&cl->map_limit, cl->log,
                                 "mpn: redis cluster: no node serves slot "
                                 "%ui", slot);
        ngx_http_mpn_cluster_finish(lk, NULL);
        return;
    }

    node = lk->write ? cl->map_nodes[cl->map->slot[slot]]
                     : ngx_http_mpn_cluster_pick(cl->map->slot[slot]);

    if (node == NULL || ngx_http_mpn_cluster_send(lk, node) != NGX_OK) {
        /*
         * The node is down: its replica may be taking over.  Once the map
         * was asked again for this lookup, it fails at once instead.
         */
        if (lk->retried) {
            ngx_http_mpn_cluster_finish(lk, NULL);
            return;
        }

        lk->retried = 1;
        ngx_http_mpn_cluster_refresh(0);
        ngx_http_mpn_cluster_park(lk);
    }
}


static ngx_http_mpn_cluster_node_t *
ngx_http_mpn_cluster_pick(ngx_uint_t primary)
{
    size_t                        i;
    ngx_http_mpn_cluster_node_t  *node, *best;
    ngx_http_mpn_cluster_t       *cl = &ngx_http_mpn_cluster;

    if (!cl->conf->read_replica) {
        return cl->map_nodes[primary];
    }

    best = NULL;

    for (i = cl->map->nprimaries; i < cl->map->nnodes; i++) {
        node = cl->map_nodes[i];

        if (cl->map->nodes[i].primary != primary || node == NULL) {
            continue;
        }

        /* opened on demand; used once it has taken READONLY */
        ngx_http_mpn_cluster_node_start(node);

        if (!node->readonly || !ngx_http_mpn_redis_conn_ready(&node->conn)) {
            continue;
        }

        if (best == NULL || node->rtt.rtt < best->rtt.rtt) {
            best = node;
        }
    }

    return best != NULL ? best : cl->map_nodes[primary];
}


static ngx_int_t
ngx_http_mpn_cluster_send(ngx_http_mpn_cluster_lookup_t *lk,
    ngx_http_mpn_cluster_node_t *node)
{
    size_t       len[1];
    const char  *argv[1];

    ngx_http_mpn_cluster_node_start(node);

    if (!node->started) {
        return NGX_DECLINED;
    }

    if (lk->asking) {
        argv[0] = "ASKING";
        len[0] = 6;

        if (ngx_http_mpn_redis_send(&node->conn, 1, argv, len, 0,
                                    ngx_http_mpn_cluster_ignore_reply, NULL)
            == NULL)
        {
            return NGX_DECLINED;
        }
    }

    /* not sent (NULL): nothing ran, and it may go elsewhere */

    lk->cmd = ngx_http_mpn_redis_send(&node->conn, lk->argc, lk->argv,
                                      lk->argvlen, 0,
                                      ngx_http_mpn_cluster_reply, lk);
    if (lk->cmd == NULL) {
        return NGX_DECLINED;
    }

    lk->node = node;
    lk->sent = ngx_http_mpn_usec();

    if (!lk->internal) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_REQUESTS);
    }

    return NGX_OK;
}


static void
ngx_http_mpn_cluster_reply(void *data, void *reply)
{
    ngx_http_mpn_cluster_lookup_t  *lk = data;

    redisReply              *r = reply;
    ngx_http_mpn_cluster_t  *cl = &ngx_http_mpn_cluster;

    lk->cmd = NULL;
    lk->node = NULL;

    if (r != NULL && !lk->internal) {
        ngx_http_mpn_status_latency(ngx_http_mpn_usec() - lk->sent);
    }

    if (r == NULL) {
        /*
         * The connection was lost (or the node failed to answer): a read
         * is sent once more where the map, asked again, says, if time
         * allows; a write may have run, and is not.
         */
        if (!lk->retried && !lk->write && !cl->exiting
            && (ngx_msec_int_t) (lk->deadline - ngx_current_msec) > 0)
        {
            lk->retried = 1;
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_RETRIES);
            ngx_http_mpn_cluster_refresh(0);
            ngx_http_mpn_cluster_park(lk);
            return;
        }

        ngx_http_mpn_cluster_finish(lk, NULL);
        return;
    }

    if (r->type == REDIS_REPLY_ERROR
        && ngx_http_mpn_cluster_redirect(lk, r) == NGX_OK)
    {
        return;
    }

    if (r->type == REDIS_REPLY_NIL
        && !lk->internal
        && !lk->write
        && ngx_http_mpn_cluster_confirm(lk) == NGX_OK)
    {
        return;
    }

    ngx_http_mpn_cluster_finish(lk, r);
}


/*
 * No record: handed on only once the marker, asked after the GET was
 * answered, is still there (the rule of the single-server layer): a
 * cluster flushed under live connections never reads as not_member.  The
 * marker vouches for its own node; see docs/cluster.md.
 */

static ngx_int_t
ngx_http_mpn_cluster_confirm(ngx_http_mpn_cluster_lookup_t *lk)
{
    ngx_http_mpn_cluster_lookup_t  *check;
    ngx_http_mpn_cluster_t         *cl = &ngx_http_mpn_cluster;

    if (cl->conf->marker.len == 0) {
        return NGX_DECLINED;
    }

    check = ngx_http_mpn_cluster_exists(ngx_http_mpn_cluster_confirmed, lk);
    if (check == NULL) {
        return NGX_DECLINED;
    }

    /* the check gets what time the lookup has left */
    check->deadline = lk->deadline;

    ngx_http_mpn_cluster_route(check);

    return NGX_OK;
}


static void
ngx_http_mpn_cluster_confirmed(void *data, void *reply)
{
    ngx_http_mpn_cluster_lookup_t  *lk = data;

    redisReply  *r = reply;

    static redisReply  nil = { .type = REDIS_REPLY_NIL };

    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        ngx_http_mpn_cluster_finish(lk, &nil);
        return;
    }

    if (r != NULL && r->type != REDIS_REPLY_ERROR) {
        /* the marker is gone: the data went with it */
        ngx_http_mpn_cluster.marker_seen = 0;
        ngx_http_mpn_cluster_marker_check(&ngx_http_mpn_cluster.marker_timer);
    }

    ngx_http_mpn_cluster_finish(lk, NULL);
}


/* NGX_OK: the lookup went elsewhere (or ended); else the error is its */

static ngx_int_t
ngx_http_mpn_cluster_redirect(ngx_http_mpn_cluster_lookup_t *lk,
    redisReply *reply)
{
    ngx_str_t                     host;
    ngx_http_mpn_cluster_node_t  *node;
    mpn_cluster_redirect_t        rd;
    ngx_http_mpn_cluster_t       *cl = &ngx_http_mpn_cluster;

    if (mpn_cluster_redirect_parse(reply->str, reply->len, &rd) != 0) {
        return NGX_DECLINED;
    }

    if (rd.kind == MPN_CLUSTER_MOVED) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_MOVED);
        /* the map is out of date; meanwhile the node named has the slot */
        ngx_http_mpn_cluster_refresh(1);

    } else {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ASK);
    }

    if (++lk->redirects > NGX_HTTP_MPN_CLUSTER_REDIRECTS
        || (rd.kind == MPN_CLUSTER_ASK && lk->asking))
    {
        ngx_http_mpn_log_limited(&cl->map_limit, cl->log,
                                 "mpn: redis cluster: too many redirects "
                                 "for slot %ui", (ngx_uint_t) rd.slot);
        return NGX_DECLINED;
    }

    if (rd.host_len == 0) {
        /* not announced: the host that answered (rare; use the map) */
        ngx_http_mpn_cluster_park(lk);
        return NGX_OK;
    }

    host.data = (u_char *) rd.host;
    host.len = rd.host_len;

    node = ngx_http_mpn_cluster_node(&host, (in_port_t) rd.port, NULL, NULL);

    lk->asking = (rd.kind == MPN_CLUSTER_ASK);

    if (node == NULL || ngx_http_mpn_cluster_send(lk, node) != NGX_OK) {
        lk->asking = 0;
        ngx_http_mpn_cluster_park(lk);
    }

    return NGX_OK;
}


/* waits for the next map, or for its deadline */

static void
ngx_http_mpn_cluster_park(ngx_http_mpn_cluster_lookup_t *lk)
{
    ngx_msec_int_t           left;
    ngx_http_mpn_cluster_t  *cl = &ngx_http_mpn_cluster;

    left = (ngx_msec_int_t) (lk->deadline - ngx_current_msec);

    if (left <= 0 || cl->exiting) {
        ngx_http_mpn_cluster_finish(lk, NULL);
        return;
    }

    lk->parked = 1;
    ngx_queue_insert_tail(&cl->parked, &lk->queue);
    ngx_add_timer(&lk->timer, (ngx_msec_t) left);

    if (!cl->refreshing && !cl->refresh_timer.timer_set) {
        ngx_http_mpn_cluster_refresh(0);
    }
}


static void
ngx_http_mpn_cluster_parked_timeout(ngx_event_t *ev)
{
    ngx_http_mpn_cluster_finish(ev->data, NULL);
}


static void
ngx_http_mpn_cluster_finish(ngx_http_mpn_cluster_lookup_t *lk,
    redisReply *reply)
{
    if (lk->parked) {
        lk->parked = 0;
        ngx_queue_remove(&lk->queue);
    }

    if (lk->timer.timer_set) {
        ngx_del_timer(&lk->timer);
    }

    /* a write's error reply is its answer (mpn_consume's QUOTA) */

    if ((reply == NULL
         || (reply->type == REDIS_REPLY_ERROR && !lk->write))
        && !lk->internal)
    {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
    }

    lk->handler(lk->data, reply);

    ngx_free(lk);
}


/* the slot map */

/*
 * Asks for the map, unless a request is in flight: the nodes of the map
 * first, then the seeds.  Only MOVED (the map is known to be wrong) asks
 * again within NGX_HTTP_MPN_CLUSTER_SOON of the last map: a node that is
 * down stays in the map until its replica is elected, and every lookup for
 * it would otherwise ask.
 */

static void
ngx_http_mpn_cluster_refresh(ngx_uint_t now)
{
    ngx_msec_int_t           since;
    ngx_http_mpn_cluster_t  *cl = &ngx_http_mpn_cluster;

    if (cl->refreshing || cl->exiting) {
        return;
    }

    since = (ngx_msec_int_t) (ngx_current_msec - cl->refreshed);

    if (!now && cl->map != NULL && since < NGX_HTTP_MPN_CLUSTER_SOON) {
        if (!cl->refresh_timer.timer_set) {
            ngx_add_timer(&cl->refresh_timer,
                          (ngx_msec_t) (NGX_HTTP_MPN_CLUSTER_SOON - since));
        }

        return;
    }

    if (cl->refresh_timer.timer_set) {
        ngx_del_timer(&cl->refresh_timer);
    }

    cl->refreshing = 1;
    cl->refresh_next = 0;
    cl->refresh_node = NULL;

    ngx_http_mpn_cluster_refresh_next();
}


/* the i-th node to ask, or NULL past the last: the map's, then others */

static ngx_http_mpn_cluster_node_t *
ngx_http_mpn_cluster_candidate(ngx_uint_t i)
{
    ngx_uint_t                    n;
    ngx_queue_t                  *q;
    ngx_http_mpn_cluster_node_t  *node;
    ngx_http_mpn_cluster_t       *cl = &ngx_http_mpn_cluster;

    n = 0;

    for (q = ngx_queue_head(&cl->nodes);
         q != ngx_queue_sentinel(&cl->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_mpn_cluster_node_t, queue);

        if (node->in_map && node->resolved && n++ == i) {
            return node;
        }
    }

    for (q = ngx_queue_head(&cl->nodes);
         q != ngx_queue_sentinel(&cl->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_mpn_cluster_node_t, queue);

        if (!node->in_map && node->resolved && n++ == i) {
            return node;
        }
    }

    return NULL;
}


static void
ngx_http_mpn_cluster_refresh_next(void)
{
    size_t                        len[2];
    const char                   *argv[2];
    ngx_http_mpn_cluster_node_t  *node;
    ngx_http_mpn_cluster_t       *cl = &ngx_http_mpn_cluster;

    argv[0] = "CLUSTER";
    len[0] = 7;
    argv[1] = "SLOTS";
    len[1] = 5;

    for ( ;; ) {
        node = cl->refresh_node;
        cl->refresh_node = NULL;

        if (node == NULL) {
            node = ngx_http_mpn_cluster_candidate(cl->refresh_next++);
        }

        if (node == NULL) {
            ngx_http_mpn_cluster_refresh_failed();
            return;
        }

        ngx_http_mpn_cluster_node_start(node);

        if (!node->started) {
            continue;
        }

        cl->refresh_node = node;

        if (ngx_http_mpn_redis_send(&node->conn, 2, argv, len, 0,
                                    ngx_http_mpn_cluster_refresh_reply, node)
            != NULL)
        {
            return;
        }

        cl->refresh_node = NULL;
    }
}


static void
ngx_http_mpn_cluster_refresh_reply(void *data, void *reply)
{
    char                          err[128];
    redisReply                   *r = reply;
    mpn_cluster_map_t            *map;
    ngx_http_mpn_cluster_node_t  *node = data;
    ngx_http_mpn_cluster_t       *cl = &ngx_http_mpn_cluster;
    u_char                        host[MPN_CLUSTER_HOST_MAX + 1];
    size_t                        host_len;

    cl->refresh_node = NULL;

    if (cl->exiting) {
        cl->refreshing = 0;
        return;
    }

    if (r == NULL) {
        ngx_http_mpn_cluster_refresh_next();
        return;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        ngx_http_mpn_log_limited(&cl->map_limit, cl->log,
                                 "mpn: redis %V: CLUSTER SLOTS failed: %*s",
                                 &node->name, (size_t) ngx_min(r->len, 200),
                                 r->str);
        ngx_http_mpn_cluster_refresh_next();
        return;
    }

    /* a node announced with no address is where the reply came from */

    host_len = node->name.len;

    while (host_len > 0 && node->name.data[host_len - 1] != ':') {
        host_len--;
    }

    host_len = host_len ? host_len - 1 : 0;

    if (host_len >= 2 && node->name.data[0] == '[') {
        ngx_memcpy(host, node->name.data + 1, host_len - 2);
        host_len -= 2;

    } else {
        ngx_memcpy(host, node->name.data, host_len);
    }

    map = mpn_cluster_map_parse(r, (char *) host, host_len, err,
                                sizeof(err));
    if (map == NULL) {
        ngx_http_mpn_log_limited(&cl->map_limit, cl->log,
                                 "mpn: redis %V: unusable CLUSTER SLOTS "
                                 "reply: %s", &node->name, err);
        ngx_http_mpn_cluster_refresh_next();
        return;
    }

    cl->refreshing = 0;
    cl->refreshed = ngx_current_msec;
    cl->refresh_backoff = NGX_HTTP_MPN_CLUSTER_RETRY_MIN;

    ngx_http_mpn_cluster_use_map(map);
}


/* no node gave a map: ask again from a backoff timer */

static void
ngx_http_mpn_cluster_refresh_failed(void)
{
    ngx_http_mpn_cluster_t  *cl = &ngx_http_mpn_cluster;

    cl->refreshing = 0;

    ngx_http_mpn_log_limited(&cl->map_limit, cl->log,
                             "mpn: redis cluster: no node gave the slot map");

    if (!cl->refresh_timer.timer_set && !cl->exiting) {
        ngx_add_timer(&cl->refresh_timer, cl->refresh_backoff);
        cl->refresh_backoff = ngx_min(cl->refresh_backoff * 2,
                                      NGX_HTTP_MPN_CLUSTER_RETRY_MAX);
    }
}


static void
ngx_http_mpn_cluster_refresh_retry(ngx_event_t *ev)
{
    ngx_http_mpn_cluster_refresh(1);
}


/*
 * A new map: nodes no longer in it are closed, the lookups that waited are
 * routed again, and a slot now served by what was its primary's replica is
 * a failover.
 */

static void
ngx_http_mpn_cluster_use_map(mpn_cluster_map_t *map)
{
    size_t                          i;
    ngx_str_t                       host;
    ngx_int_t                       was;
    ngx_uint_t                      failovers;
    ngx_queue_t                    *q, parked;
    mpn_cluster_map_t              *old;
    ngx_http_mpn_cluster_node_t    *node, **nodes;
    ngx_http_mpn_cluster_lookup_t  *lk;
    ngx_http_mpn_cluster_t         *cl = &ngx_http_mpn_cluster;

    old = cl->map;
    failovers = 0;

    if (old != NULL) {
        for (i = 0; i < MPN_CLUSTER_SLOTS; i++) {
            if (old->slot[i] == MPN_CLUSTER_NONE
                || map->slot[i] == MPN_CLUSTER_NONE)
            {
                continue;
            }

            was = mpn_cluster_map_find(old, map->nodes[map->slot[i]].host,
                                       map->nodes[map->slot[i]].host_len,
                                       map->nodes[map->slot[i]].port);

            if (was >= 0 && (size_t) was >= old->nprimaries
                && old->nodes[was].primary == old->slot[i])
            {
                failovers++;
                break;
            }
        }
    }

    if (failovers && ngx_worker == 0) {
        /* every worker sees it; one counts it */
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_FAILOVERS);
    }

    if (failovers) {
        ngx_log_error(NGX_LOG_NOTICE, cl->log, 0,
                      "mpn: redis cluster: a replica took over");
    }

    for (q = ngx_queue_head(&cl->nodes);
         q != ngx_queue_sentinel(&cl->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_mpn_cluster_node_t, queue);
        node->in_map = 0;
        node->replica = 0;
    }

    nodes = ngx_alloc(map->nnodes * sizeof(ngx_http_mpn_cluster_node_t *),
                      cl->log);
    if (nodes == NULL) {
        free(map);
        return;
    }

    for (i = 0; i < map->nnodes; i++) {
        host.data = (u_char *) map->nodes[i].host;
        host.len = map->nodes[i].host_len;

        node = ngx_http_mpn_cluster_node(&host,
                                         (in_port_t) map->nodes[i].port,
                                         NULL, NULL);
        nodes[i] = node;

        if (node != NULL) {
            node->in_map = 1;
            node->replica = (i >= map->nprimaries);
        }
    }

    cl->map = map;
    free(old);

    if (cl->map_nodes != NULL) {
        ngx_free(cl->map_nodes);
    }

    cl->map_nodes = nodes;

    /* a node gone from the map has nothing to serve */

    for (q = ngx_queue_head(&cl->nodes);
         q != ngx_queue_sentinel(&cl->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_mpn_cluster_node_t, queue);

        if (!node->in_map && node->started) {
            node->started = 0;
            ngx_http_mpn_redis_conn_close(&node->conn);
        }
    }

    ngx_queue_init(&parked);

    if (!ngx_queue_empty(&cl->parked)) {
        ngx_queue_add(&parked, &cl->parked);
        ngx_queue_init(&cl->parked);
    }

    while (!ngx_queue_empty(&parked)) {
        q = ngx_queue_head(&parked);
        ngx_queue_remove(q);

        lk = ngx_queue_data(q, ngx_http_mpn_cluster_lookup_t, queue);
        lk->parked = 0;
        lk->asking = 0;

        if (lk->timer.timer_set) {
            ngx_del_timer(&lk->timer);
        }

        ngx_http_mpn_cluster_route(lk);
    }

    if (!cl->marker_seen) {
        ngx_http_mpn_cluster_marker_check(&cl->marker_timer);
    }
}


/*
 * Every second: the marker on its slot's node, a PING to each replica in
 * use for its round trip, and now and then the map again (a new replica,
 * a primary that came back).
 */

static void
ngx_http_mpn_cluster_tick(ngx_event_t *ev)
{
    ngx_queue_t                    *q;
    ngx_http_mpn_cluster_node_t    *node;
    ngx_http_mpn_cluster_t         *cl = &ngx_http_mpn_cluster;

    if (cl->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (!cl->tick.timer_set) {
        ngx_add_timer(&cl->tick, NGX_HTTP_MPN_CLUSTER_TICK);
    }

    if (ev == &cl->tick && ++cl->ticks % NGX_HTTP_MPN_CLUSTER_REFRESH == 0) {
        ngx_http_mpn_cluster_refresh(0);
    }

    if (cl->map == NULL) {
        return;
    }

    ngx_http_mpn_cluster_marker_check(&cl->marker_timer);

    if (!cl->conf->read_replica) {
        return;
    }

    for (q = ngx_queue_head(&cl->nodes);
         q != ngx_queue_sentinel(&cl->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_mpn_cluster_node_t, queue);

        if (node->replica && node->started) {
            ngx_http_mpn_redis_rtt_ping(&node->conn, &node->rtt,
                                        ngx_http_mpn_cluster_ping_reply,
                                        node);
        }
    }
}


/* EXISTS marker, routed like a GET (the marker is a key like any other) */

static void
ngx_http_mpn_cluster_marker_check(ngx_event_t *ev)
{
    ngx_http_mpn_cluster_lookup_t  *lk;
    ngx_http_mpn_cluster_t         *cl = &ngx_http_mpn_cluster;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    if (cl->conf->marker.len == 0 || cl->marker_checking || cl->map == NULL
        || cl->exiting)
    {
        return;
    }

    lk = ngx_http_mpn_cluster_exists(ngx_http_mpn_cluster_marker_reply, cl);
    if (lk != NULL) {
        cl->marker_checking = 1;
        ngx_http_mpn_cluster_route(lk);
    }
}


static void
ngx_http_mpn_cluster_marker_reply(void *data, void *reply)
{
    ngx_http_mpn_cluster_t  *cl = data;

    redisReply  *r = reply;

    cl->marker_checking = 0;

    if (cl->exiting) {
        return;
    }

    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        if (!cl->marker_seen) {
            ngx_log_error(NGX_LOG_NOTICE, cl->log, 0,
                          "mpn: redis cluster: ready, dataset marker "
                          "\"%V\" seen", &cl->conf->marker);
        }

        cl->marker_seen = 1;
        return;
    }

    if (r == NULL
        || (r->type == REDIS_REPLY_ERROR && r->len >= 11
            && ngx_strncmp(r->str, "CLUSTERDOWN", 11) == 0))
    {
        /*
         * No answer, or a cluster that serves no key while a slot has no
         * primary, says nothing about the data: keep what was known (every
         * GET fails meanwhile anyway), and look again soon.
         */
        ngx_add_timer(&cl->marker_timer, NGX_HTTP_MPN_CLUSTER_SOON);
        return;
    }

    ngx_http_mpn_log_limited(&cl->marker_limit, cl->log,
                             "mpn: redis cluster: the dataset marker "
                             "\"%V\" is %s; lookups fail until it is there "
                             "(mpnctl --cluster init writes it)",
                             &cl->conf->marker,
                             r->type == REDIS_REPLY_ERROR
                                 ? "unreadable" : "missing");

    cl->marker_seen = 0;

    /* back as soon as it is there, not a tick later */
    ngx_add_timer(&cl->marker_timer, NGX_HTTP_MPN_CLUSTER_SOON);
}
