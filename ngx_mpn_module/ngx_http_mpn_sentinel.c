/*
 * Sentinel mode of mpn_redis (sentinel=MASTER, the addresses are
 * Sentinels) over the connection layer (ngx_http_mpn_redis.c).
 *
 * Each worker keeps two connections to a Sentinel, any one that answers
 * and the next one after a failure: one asks (SENTINEL
 * GET-MASTER-ADDR-BY-NAME, SENTINEL REPLICAS), one listens for
 * +switch-master.  A data connection (the lookups', the subscriber's) asks
 * where the primary is at every attempt, so any loss asks again; a switch
 * announced moves the connections at once, and the Sentinels are asked
 * again every second in case an announcement was missed.  A primary is
 * used only once ROLE says "master" (the layer checks it in the set-up),
 * so a demoted one still listed somewhere is never read.
 *
 * With read=replica, each replica the Sentinels list and do not report
 * down gets a connection of its own, PINGed every second for its round
 * trip; a GET goes to the nearest one that answers, to the primary while
 * none does, and the subscriber connection likewise.
 */

#include <hiredis/hiredis.h>

#include "ngx_http_mpn_sentinel.h"
#include "ngx_http_mpn_status.h"
#include "mpn_sentinel.h"


#define NGX_HTTP_MPN_SENTINEL_TICK      1000    /* ms: ask again, PING */
#define NGX_HTTP_MPN_SENTINEL_TRUST     2000    /* ms an announcement wins */
#define NGX_HTTP_MPN_SENTINEL_REPLICAS  8
#define NGX_HTTP_MPN_SENTINEL_USERS     2       /* lookups, subscriber */


typedef struct {
    ngx_http_mpn_redis_conn_t       conn;        /* its data: this node */
    ngx_http_mpn_redis_conf_t       conf;        /* named after the node */
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    u_char                          name[NGX_SOCKADDR_STRLEN];
    u_char                          host[NGX_SOCKADDR_STRLEN];  /* tls */
    ngx_http_mpn_redis_rtt_t        rtt;
    unsigned                        in_use:1;
    unsigned                        listed:1;    /* in the last list */
} ngx_http_mpn_sentinel_node_t;


typedef struct {
    ngx_http_mpn_redis_conn_t      *conn;
    ngx_http_mpn_redis_conf_t       conf;        /* tls_name: its server */
    ngx_sockaddr_t                  sockaddr;    /* of the last attempt */
    u_char                          host[NGX_SOCKADDR_STRLEN];
    ngx_uint_t                      generation;  /* of the waiting attempt */
    ngx_http_mpn_sentinel_node_t   *node;        /* a replica, or NULL */
    unsigned                        replica:1;   /* may read a replica */
    unsigned                        waiting:1;   /* for the primary */
} ngx_http_mpn_sentinel_user_t;


typedef struct {
    ngx_http_mpn_redis_conf_t      *conf;
    ngx_cycle_t                    *cycle;
    ngx_log_t                      *log;

    ngx_http_mpn_redis_conf_t      *sentinels;   /* a conf per Sentinel */
    ngx_uint_t                      nsentinels;

    ngx_http_mpn_redis_conn_t       query;
    ngx_http_mpn_redis_conn_t       watch;
    ngx_uint_t                      query_at;    /* its Sentinel */
    ngx_uint_t                      watch_at;

    ngx_sockaddr_t                  primary;
    socklen_t                       primary_len;  /* 0: none known */
    u_char                          primary_name[NGX_SOCKADDR_STRLEN];
    size_t                          primary_name_len;
    ngx_msec_t                      announced;   /* by +switch-master */

    ngx_http_mpn_sentinel_user_t    users[NGX_HTTP_MPN_SENTINEL_USERS];
    ngx_uint_t                      nusers;
    ngx_http_mpn_sentinel_node_t    replicas[NGX_HTTP_MPN_SENTINEL_REPLICAS];

    ngx_event_t                     tick;
    uint64_t                        primary_ping;  /* usec; 0: none out */
    ngx_http_mpn_limit_t            query_limit;

    unsigned                        querying:1;
    unsigned                        listing:1;
    unsigned                        was_announced:1;
    unsigned                        exiting:1;
} ngx_http_mpn_sentinel_t;


static void ngx_http_mpn_sentinel_locate_query(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_sentinel_locate_watch(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_sentinel_connect(ngx_http_mpn_redis_conn_t *rc,
    ngx_uint_t i);
static void ngx_http_mpn_sentinel_query_ready(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_sentinel_watch_ready(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_sentinel_watch_reply(void *data, void *reply);
static void ngx_http_mpn_sentinel_ask(void);
static void ngx_http_mpn_sentinel_primary_reply(void *data, void *reply);
static void ngx_http_mpn_sentinel_set_primary(ngx_sockaddr_t *sa,
    socklen_t len, ngx_uint_t announced);
static void ngx_http_mpn_sentinel_serve(void);
static void ngx_http_mpn_sentinel_locate_user(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_sentinel_connect_user(
    ngx_http_mpn_sentinel_user_t *u, ngx_sockaddr_t *sa, socklen_t len,
    u_char *name, size_t name_len);
static void ngx_http_mpn_sentinel_move(ngx_http_mpn_sentinel_user_t *u,
    const char *why);
static void ngx_http_mpn_sentinel_list(void);
static void ngx_http_mpn_sentinel_replicas_reply(void *data, void *reply);
static void ngx_http_mpn_sentinel_replica_seen(redisReply *r);
static void ngx_http_mpn_sentinel_node_locate(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_sentinel_node_ready(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_sentinel_node_closed(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_sentinel_node_remove(
    ngx_http_mpn_sentinel_node_t *node);
static void ngx_http_mpn_sentinel_ping_reply(void *data, void *reply);
static void ngx_http_mpn_sentinel_watch_primary(
    ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_sentinel_primary_pong(void *data, void *reply);
static ngx_http_mpn_sentinel_node_t *ngx_http_mpn_sentinel_nearest(void);
static void ngx_http_mpn_sentinel_tick(ngx_event_t *ev);
static ngx_int_t ngx_http_mpn_sentinel_sockaddr(mpn_sentinel_addr_t *a,
    ngx_sockaddr_t *sa, socklen_t *len);
static void ngx_http_mpn_sentinel_tls_name(ngx_http_mpn_redis_conf_t *conf,
    u_char *buf, ngx_sockaddr_t *sa, socklen_t len);


static ngx_http_mpn_sentinel_t  ngx_http_mpn_sentinel;


/* the worker's start: a conf per Sentinel, the two Sentinel connections */

void
ngx_http_mpn_sentinel_init_process(ngx_cycle_t *cycle,
    ngx_http_mpn_redis_conf_t *conf)
{
    u_char                     *p;
    ngx_str_t                   name;
    ngx_uint_t                  i;
    ngx_http_mpn_redis_seed_t  *seed;
    ngx_http_mpn_redis_conf_t  *sc;
    ngx_http_mpn_sentinel_t    *s = &ngx_http_mpn_sentinel;

    ngx_memzero(s, sizeof(ngx_http_mpn_sentinel_t));

    s->conf = conf;
    s->cycle = cycle;
    s->log = cycle->log;

    s->nsentinels = conf->seeds->nelts;
    s->sentinels = ngx_pcalloc(cycle->pool,
                               s->nsentinels * sizeof(*s->sentinels));
    if (s->sentinels == NULL) {
        return;
    }

    seed = conf->seeds->elts;

    for (i = 0; i < s->nsentinels; i++) {
        sc = &s->sentinels[i];

        /* TLS as for the data; AUTH as sentinel_user=; no SELECT */

        *sc = *conf;
        sc->addr_text = seed[i].text;
        sc->user = conf->sentinel_user;
        sc->password = conf->sentinel_password;
        sc->db = 0;

        if (conf->ssl != NULL && !conf->tls_name_set) {
            ngx_http_mpn_redis_tls_name(&name, &seed[i].host);

            p = ngx_pnalloc(cycle->pool, name.len + 1);
            if (p == NULL) {
                return;
            }

            (void) ngx_cpystrn(p, name.data, name.len + 1);
            sc->tls_name.data = p;
            sc->tls_name.len = name.len;
        }
    }

    /* the workers start on different Sentinels */

    s->query_at = (ngx_worker + s->nsentinels - 1) % s->nsentinels;
    s->watch_at = ngx_worker % s->nsentinels;

    s->query.conf = &s->sentinels[0];
    s->query.role = "sentinel: ";
    s->query.locate = ngx_http_mpn_sentinel_locate_query;
    s->query.on_ready = ngx_http_mpn_sentinel_query_ready;
    s->query.data = s;

    s->watch.conf = &s->sentinels[0];
    s->watch.role = "sentinel: ";
    s->watch.locate = ngx_http_mpn_sentinel_locate_watch;
    s->watch.on_ready = ngx_http_mpn_sentinel_watch_ready;
    s->watch.data = s;

    s->tick.handler = ngx_http_mpn_sentinel_tick;
    s->tick.data = s;
    s->tick.log = cycle->log;
    s->tick.cancelable = 1;

    ngx_http_mpn_redis_conn_start(&s->query, cycle);
    ngx_http_mpn_redis_conn_start(&s->watch, cycle);

    ngx_add_timer(&s->tick, NGX_HTTP_MPN_SENTINEL_TICK);
}


/* after the data connections: what is left is the Sentinel's own */

void
ngx_http_mpn_sentinel_exit_process(void)
{
    ngx_uint_t                i;
    ngx_http_mpn_sentinel_t  *s = &ngx_http_mpn_sentinel;

    s->exiting = 1;

    if (s->tick.timer_set) {
        ngx_del_timer(&s->tick);
    }

    for (i = 0; i < NGX_HTTP_MPN_SENTINEL_REPLICAS; i++) {
        if (s->replicas[i].in_use) {
            ngx_http_mpn_redis_conn_close(&s->replicas[i].conn);
            s->replicas[i].in_use = 0;
        }
    }

    ngx_http_mpn_redis_conn_close(&s->query);
    ngx_http_mpn_redis_conn_close(&s->watch);
}


void
ngx_http_mpn_sentinel_attach(ngx_http_mpn_redis_conn_t *rc,
    ngx_uint_t replica)
{
    ngx_http_mpn_sentinel_user_t  *u;
    ngx_http_mpn_sentinel_t       *s = &ngx_http_mpn_sentinel;

    if (s->nusers == NGX_HTTP_MPN_SENTINEL_USERS) {
        return;
    }

    u = &s->users[s->nusers++];

    u->conn = rc;
    u->conf = *s->conf;
    u->conf.addr_text = s->conf->sentinel;     /* "redis MASTER: ..." */
    u->replica = (replica && s->conf->read_replica);

    rc->conf = &u->conf;
    rc->locate = ngx_http_mpn_sentinel_locate_user;
    rc->expect_primary = 1;
}


ngx_http_mpn_redis_conn_t *
ngx_http_mpn_sentinel_replica(void)
{
    ngx_http_mpn_sentinel_node_t  *node;

    node = ngx_http_mpn_sentinel_nearest();

    return node != NULL ? &node->conn : NULL;
}


/* the Sentinel connections: the next Sentinel at every attempt */

static void
ngx_http_mpn_sentinel_locate_query(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_sentinel_t  *s = &ngx_http_mpn_sentinel;

    s->query_at = (s->query_at + 1) % s->nsentinels;
    ngx_http_mpn_sentinel_connect(rc, s->query_at);
}


static void
ngx_http_mpn_sentinel_locate_watch(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_sentinel_t  *s = &ngx_http_mpn_sentinel;

    s->watch_at = (s->watch_at + 1) % s->nsentinels;
    ngx_http_mpn_sentinel_connect(rc, s->watch_at);
}


static void
ngx_http_mpn_sentinel_connect(ngx_http_mpn_redis_conn_t *rc, ngx_uint_t i)
{
    ngx_http_mpn_redis_seed_t  *seed;
    ngx_http_mpn_sentinel_t    *s = &ngx_http_mpn_sentinel;

    seed = s->conf->seeds->elts;

    rc->conf = &s->sentinels[i];

    rc->peer_name.len = ngx_min(seed[i].text.len, NGX_SOCKADDR_STRLEN);
    ngx_memcpy(rc->peer_name.data, seed[i].text.data, rc->peer_name.len);

    ngx_http_mpn_redis_conn_connect(rc, seed[i].addr.sockaddr,
                                    seed[i].addr.socklen, &rc->peer_name);
}


/* a Sentinel (again): what was missed while none answered is asked for */

static void
ngx_http_mpn_sentinel_query_ready(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_sentinel_ask();
    ngx_http_mpn_sentinel_list();
}


static void
ngx_http_mpn_sentinel_watch_ready(ngx_http_mpn_redis_conn_t *rc)
{
    size_t       len[2];
    const char  *argv[2];

    argv[0] = "SUBSCRIBE";
    len[0] = 9;
    argv[1] = "+switch-master";
    len[1] = 14;

    if (ngx_http_mpn_redis_send(rc, 2, argv, len, NGX_HTTP_MPN_REDIS_PUSH,
                                ngx_http_mpn_sentinel_watch_reply, NULL)
        == NULL)
    {
        ngx_http_mpn_redis_conn_drop(rc, "cannot send SUBSCRIBE");
    }
}


/*
 * The confirmation, then each message: "MASTER old-ip old-port new-ip
 * new-port".  A switch of another master is not ours.
 */

static void
ngx_http_mpn_sentinel_watch_reply(void *data, void *reply)
{
    socklen_t                 len;
    redisReply               *r = reply, *m;
    ngx_sockaddr_t            sa;
    mpn_sentinel_addr_t       to;
    ngx_http_mpn_sentinel_t  *s = &ngx_http_mpn_sentinel;

    if (r == NULL || s->exiting || r->type != REDIS_REPLY_ARRAY
        || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (r->element[0]->len == 9
        && ngx_strncmp(r->element[0]->str, "subscribe", 9) == 0)
    {
        /* listening (again): a switch may have been missed meanwhile */
        ngx_http_mpn_sentinel_ask();
        return;
    }

    m = r->element[2];

    if (r->element[0]->len != 7
        || ngx_strncmp(r->element[0]->str, "message", 7) != 0
        || m->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (mpn_sentinel_switch(m->str, m->len,
                            (const char *) s->conf->sentinel.data,
                            s->conf->sentinel.len, &to)
        != 0)
    {
        /* another master's */
        return;
    }

    if (ngx_http_mpn_sentinel_sockaddr(&to, &sa, &len) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, s->log, 0,
                      "mpn: redis %V: unusable +switch-master \"%*s\"",
                      &s->conf->sentinel, (size_t) ngx_min(m->len, 200),
                      m->str);
        return;
    }

    ngx_http_mpn_sentinel_set_primary(&sa, len, 1);
    ngx_http_mpn_sentinel_list();
}


/* SENTINEL GET-MASTER-ADDR-BY-NAME on the query connection, one at a time */

static void
ngx_http_mpn_sentinel_ask(void)
{
    size_t                    len[3];
    const char               *argv[3];
    ngx_http_mpn_sentinel_t  *s = &ngx_http_mpn_sentinel;

    if (s->querying || s->exiting) {
        return;
    }

    argv[0] = "SENTINEL";
    len[0] = 8;
    argv[1] = "GET-MASTER-ADDR-BY-NAME";
    len[1] = 23;
    argv[2] = (const char *) s->conf->sentinel.data;
    len[2] = s->conf->sentinel.len;

    if (ngx_http_mpn_redis_send(&s->query, 3, argv, len, 0,
                                ngx_http_mpn_sentinel_primary_reply, NULL)
        == NULL)
    {
        /* no Sentinel connection: the last primary known, if any */
        ngx_http_mpn_sentinel_serve();
        return;
    }

    s->querying = 1;
}


static void
ngx_http_mpn_sentinel_primary_reply(void *data, void *reply)
{
    socklen_t                 len;
    redisReply               *r = reply;
    ngx_sockaddr_t            sa;
    mpn_sentinel_addr_t       addr;
    ngx_http_mpn_sentinel_t  *s = &ngx_http_mpn_sentinel;

    s->querying = 0;
    addr.port = -1;

    if (s->exiting) {
        return;
    }

    if (r != NULL
        && r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && r->element[0]->type == REDIS_REPLY_STRING
        && r->element[1]->type == REDIS_REPLY_STRING)
    {
        addr.host = r->element[0]->str;
        addr.host_len = r->element[0]->len;
        addr.port = mpn_sentinel_port(r->element[1]->str,
                                      r->element[1]->len);
    }

    if (addr.port != -1
        && ngx_http_mpn_sentinel_sockaddr(&addr, &sa, &len) == NGX_OK)
    {
        ngx_http_mpn_sentinel_set_primary(&sa, len, 0);

    } else if (r != NULL) {
        ngx_http_mpn_log_limited(&s->query_limit, s->log,
                                 "mpn: redis %V: Sentinel %V does not name "
                                 "the primary: %*s", &s->conf->sentinel,
                                 &s->query.conf->addr_text,
                                 (size_t) (r->type == REDIS_REPLY_ERROR
                                           ? ngx_min(r->len, 200) : 9),
                                 r->type == REDIS_REPLY_ERROR
                                 ? r->str : "no master");

        /* another Sentinel may know it */
        ngx_http_mpn_redis_conn_drop(&s->query, NULL);
    }

    ngx_http_mpn_sentinel_serve();
}


/*
 * A primary named by a Sentinel.  What +switch-master announced wins over
 * an answer for a while: another Sentinel may not have heard of it yet.
 */

static void
ngx_http_mpn_sentinel_set_primary(ngx_sockaddr_t *sa, socklen_t len,
    ngx_uint_t announced)
{
    u_char                         text[NGX_SOCKADDR_STRLEN];
    size_t                         n;
    ngx_uint_t                     i;
    ngx_http_mpn_sentinel_user_t  *u;
    ngx_http_mpn_sentinel_t       *s = &ngx_http_mpn_sentinel;

    if (s->primary_len == len
        && ngx_cmp_sockaddr(&sa->sockaddr, len, &s->primary.sockaddr,
                            s->primary_len, 1)
           == NGX_OK)
    {
        if (announced) {
            s->announced = ngx_current_msec;
            s->was_announced = 1;
        }

        return;
    }

    if (!announced && s->was_announced
        && ngx_current_msec - s->announced < NGX_HTTP_MPN_SENTINEL_TRUST)
    {
        return;
    }

    if (announced) {
        s->announced = ngx_current_msec;
        s->was_announced = 1;
    }

    n = ngx_sock_ntop(&sa->sockaddr, len, text, NGX_SOCKADDR_STRLEN, 1);

    if (s->primary_len == 0) {
        ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                      "mpn: redis %V: primary at %*s", &s->conf->sentinel,
                      n, text);

    } else {
        ngx_log_error(NGX_LOG_WARN, s->log, 0,
                      "mpn: redis %V: failover: primary now at %*s "
                      "(was %*s), %s", &s->conf->sentinel, n, text,
                      s->primary_name_len, s->primary_name,
                      announced ? "announced by +switch-master"
                                : "as a Sentinel answered");

        if (ngx_worker == 0) {
            /* every worker sees it; one counts it */
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_FAILOVERS);
        }
    }

    ngx_memcpy(&s->primary, sa, len);
    s->primary_len = len;
    ngx_memcpy(s->primary_name, text, n);
    s->primary_name_len = n;

    /* the connections to the old one move now, without their backoff */

    for (i = 0; i < s->nusers; i++) {
        u = &s->users[i];

        if (u->node == NULL && !u->waiting
            && ngx_cmp_sockaddr(&u->sockaddr.sockaddr, len, &sa->sockaddr,
                                len, 1)
               != NGX_OK)
        {
            ngx_http_mpn_sentinel_move(u, NULL);
        }
    }
}


/* the data connections that waited for the answer */

static void
ngx_http_mpn_sentinel_serve(void)
{
    ngx_uint_t                     i;
    ngx_http_mpn_sentinel_user_t  *u;
    ngx_http_mpn_sentinel_t       *s = &ngx_http_mpn_sentinel;

    for (i = 0; i < s->nusers; i++) {
        u = &s->users[i];

        if (!u->waiting) {
            continue;
        }

        u->waiting = 0;

        if (u->conn->generation != u->generation
            || !ngx_http_mpn_redis_conn_locating(u->conn))
        {
            /* that attempt is over */
            continue;
        }

        if (s->primary_len == 0) {
            ngx_http_mpn_log_limited(&s->query_limit, s->log,
                                     "mpn: redis %V: no Sentinel names the "
                                     "primary", &s->conf->sentinel);
            ngx_http_mpn_redis_conn_failed(u->conn);
            continue;
        }

        ngx_http_mpn_sentinel_connect_user(u, &s->primary, s->primary_len,
                                           s->primary_name,
                                           s->primary_name_len);
    }
}


/*
 * A data connection's address: the nearest replica that answers where it
 * may read one, else the primary as a Sentinel names it now (or as just
 * announced).
 */

static void
ngx_http_mpn_sentinel_locate_user(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_uint_t                     i;
    ngx_http_mpn_sentinel_node_t  *node;
    ngx_http_mpn_sentinel_user_t  *u;
    ngx_http_mpn_sentinel_t       *s = &ngx_http_mpn_sentinel;

    u = NULL;

    for (i = 0; i < s->nusers; i++) {
        if (s->users[i].conn == rc) {
            u = &s->users[i];
            break;
        }
    }

    if (u == NULL) {
        ngx_http_mpn_redis_conn_failed(rc);
        return;
    }

    u->node = NULL;
    rc->expect_primary = 1;

    if (u->replica) {
        node = ngx_http_mpn_sentinel_nearest();

        if (node != NULL) {
            u->node = node;
            rc->expect_primary = 0;

            ngx_http_mpn_sentinel_connect_user(u, &node->sockaddr,
                                               node->socklen, node->name,
                                               ngx_strlen(node->name));
            return;
        }
    }

    if (s->primary_len != 0 && s->was_announced
        && ngx_current_msec - s->announced < NGX_HTTP_MPN_SENTINEL_TRUST)
    {
        ngx_http_mpn_sentinel_connect_user(u, &s->primary, s->primary_len,
                                           s->primary_name,
                                           s->primary_name_len);
        return;
    }

    u->waiting = 1;
    u->generation = rc->generation;

    ngx_http_mpn_sentinel_ask();
}


static void
ngx_http_mpn_sentinel_connect_user(ngx_http_mpn_sentinel_user_t *u,
    ngx_sockaddr_t *sa, socklen_t len, u_char *name, size_t name_len)
{
    ngx_http_mpn_redis_conn_t  *rc = u->conn;

    ngx_memcpy(&u->sockaddr, sa, len);
    ngx_http_mpn_sentinel_tls_name(&u->conf, u->host, sa, len);

    rc->peer_name.len = name_len;
    ngx_memcpy(rc->peer_name.data, name, name_len);

    ngx_http_mpn_redis_conn_connect(rc, &u->sockaddr.sockaddr, len,
                                    &rc->peer_name);
}


/* closes a data connection where it is and opens it where it now belongs */

static void
ngx_http_mpn_sentinel_move(ngx_http_mpn_sentinel_user_t *u, const char *why)
{
    if (ngx_http_mpn_redis_conn_locating(u->conn)) {
        return;
    }

    if (ngx_http_mpn_redis_conn_ready(u->conn) || u->conn->peer.connection) {
        ngx_http_mpn_redis_conn_drop(u->conn, why);
    }

    ngx_http_mpn_redis_conn_retry_now(u->conn);
}


/* read=replica: SENTINEL REPLICAS, one at a time */

static void
ngx_http_mpn_sentinel_list(void)
{
    size_t                    len[3];
    const char               *argv[3];
    ngx_http_mpn_sentinel_t  *s = &ngx_http_mpn_sentinel;

    if (!s->conf->read_replica || s->listing || s->exiting) {
        return;
    }

    argv[0] = "SENTINEL";
    len[0] = 8;
    argv[1] = "REPLICAS";
    len[1] = 8;
    argv[2] = (const char *) s->conf->sentinel.data;
    len[2] = s->conf->sentinel.len;

    if (ngx_http_mpn_redis_send(&s->query, 3, argv, len, 0,
                                ngx_http_mpn_sentinel_replicas_reply, NULL)
        != NULL)
    {
        s->listing = 1;
    }
}


/* the replicas not reported down get a connection; the others lose it */

static void
ngx_http_mpn_sentinel_replicas_reply(void *data, void *reply)
{
    size_t                         i;
    redisReply                    *r = reply;
    ngx_http_mpn_sentinel_node_t  *node;
    ngx_http_mpn_sentinel_t       *s = &ngx_http_mpn_sentinel;

    s->listing = 0;

    if (s->exiting || r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (i = 0; i < NGX_HTTP_MPN_SENTINEL_REPLICAS; i++) {
        s->replicas[i].listed = 0;
    }

    for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_ARRAY) {
            ngx_http_mpn_sentinel_replica_seen(r->element[i]);
        }
    }

    for (i = 0; i < NGX_HTTP_MPN_SENTINEL_REPLICAS; i++) {
        node = &s->replicas[i];

        if (node->in_use && !node->listed) {
            ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                          "mpn: redis %V: replica %s is down or gone",
                          &s->conf->sentinel, node->name);

            ngx_http_mpn_sentinel_node_remove(node);
        }
    }
}


/* one entry of SENTINEL REPLICAS */

static void
ngx_http_mpn_sentinel_replica_seen(redisReply *r)
{
    size_t                         i, n;
    socklen_t                      len;
    ngx_sockaddr_t                 sa;
    mpn_sentinel_addr_t            addr;
    ngx_http_mpn_sentinel_node_t  *node, *free;
    ngx_http_mpn_sentinel_t       *s = &ngx_http_mpn_sentinel;

    /* one flagged down or disconnected is left out, and so dropped */

    if (mpn_sentinel_replica(r, &addr) != 1
        || ngx_http_mpn_sentinel_sockaddr(&addr, &sa, &len) != NGX_OK)
    {
        return;
    }

    free = NULL;

    for (i = 0; i < NGX_HTTP_MPN_SENTINEL_REPLICAS; i++) {
        node = &s->replicas[i];

        if (!node->in_use) {
            if (free == NULL) {
                free = node;
            }

            continue;
        }

        if (node->socklen == len
            && ngx_cmp_sockaddr(&sa.sockaddr, len, &node->sockaddr.sockaddr,
                                node->socklen, 1)
               == NGX_OK)
        {
            node->listed = 1;
            return;
        }
    }

    if (free == NULL) {
        return;
    }

    node = free;
    ngx_memzero(node, sizeof(ngx_http_mpn_sentinel_node_t));

    node->in_use = 1;
    node->listed = 1;
    ngx_memcpy(&node->sockaddr, &sa, len);
    node->socklen = len;

    n = ngx_sock_ntop(&sa.sockaddr, len, node->name, NGX_SOCKADDR_STRLEN - 1,
                      1);
    node->name[n] = '\0';

    node->conf = *s->conf;
    node->conf.addr_text.data = node->name;
    node->conf.addr_text.len = n;
    ngx_http_mpn_sentinel_tls_name(&node->conf, node->host, &sa, len);

    node->conn.conf = &node->conf;
    node->conn.role = "replica: ";
    node->conn.locate = ngx_http_mpn_sentinel_node_locate;
    node->conn.on_ready = ngx_http_mpn_sentinel_node_ready;
    node->conn.on_close = ngx_http_mpn_sentinel_node_closed;
    node->conn.data = node;
    node->conn.counted = 1;

    /* an empty replica is no better than an empty primary */
    node->conn.probe = s->conf->marker.len ? &s->conf->marker : NULL;

    ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                  "mpn: redis %V: replica at %s", &s->conf->sentinel,
                  node->name);

    ngx_http_mpn_redis_conn_start(&node->conn, s->cycle);
}


static void
ngx_http_mpn_sentinel_node_locate(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_sentinel_node_t  *node = rc->data;

    rc->peer_name.len = ngx_strlen(node->name);
    ngx_memcpy(rc->peer_name.data, node->name, rc->peer_name.len);

    ngx_http_mpn_redis_conn_connect(rc, &node->sockaddr.sockaddr,
                                    node->socklen, &rc->peer_name);
}


/* usable once a PING has measured it */

static void
ngx_http_mpn_sentinel_node_ready(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_sentinel_node_t  *node = rc->data;

    node->rtt.rtt = 0;
    node->rtt.sent = 0;

    ngx_http_mpn_redis_rtt_ping(rc, &node->rtt,
                                ngx_http_mpn_sentinel_ping_reply, node);
}


/* what read from it moves elsewhere */

static void
ngx_http_mpn_sentinel_node_closed(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_uint_t                     i;
    ngx_http_mpn_sentinel_node_t  *node = rc->data;
    ngx_http_mpn_sentinel_t       *s = &ngx_http_mpn_sentinel;

    node->rtt.rtt = 0;
    node->rtt.sent = 0;

    if (s->exiting) {
        return;
    }

    for (i = 0; i < s->nusers; i++) {
        if (s->users[i].node == node) {
            s->users[i].node = NULL;
            ngx_http_mpn_sentinel_move(&s->users[i], "its replica went");
        }
    }
}


static void
ngx_http_mpn_sentinel_node_remove(ngx_http_mpn_sentinel_node_t *node)
{
    ngx_http_mpn_redis_conn_close(&node->conn);
    node->in_use = 0;

    /* conn_close() ran on_close only for a ready connection */
    ngx_http_mpn_sentinel_node_closed(&node->conn);
}


/*
 * The round trip, smoothed; the first one makes the replica usable, and
 * a subscriber that had to take the primary moves to it.
 */

static void
ngx_http_mpn_sentinel_ping_reply(void *data, void *reply)
{
    ngx_uint_t                     i, first;
    ngx_http_mpn_sentinel_node_t  *node = data;
    ngx_http_mpn_sentinel_t       *s = &ngx_http_mpn_sentinel;

    first = (node->rtt.rtt == 0);

    if (!ngx_http_mpn_redis_rtt_reply(&node->rtt, s->exiting ? NULL : reply)
        || !first)
    {
        return;
    }

    for (i = 0; i < s->nusers; i++) {
        if (s->users[i].replica && s->users[i].node == NULL
            && ngx_http_mpn_redis_conn_ready(s->users[i].conn))
        {
            ngx_http_mpn_sentinel_move(&s->users[i], "a replica answers");
        }
    }
}


static ngx_http_mpn_sentinel_node_t *
ngx_http_mpn_sentinel_nearest(void)
{
    ngx_uint_t                     i;
    ngx_http_mpn_sentinel_node_t  *node, *best;
    ngx_http_mpn_sentinel_t       *s = &ngx_http_mpn_sentinel;

    best = NULL;

    for (i = 0; i < NGX_HTTP_MPN_SENTINEL_REPLICAS; i++) {
        node = &s->replicas[i];

        if (!node->in_use || node->rtt.rtt == 0
            || !ngx_http_mpn_redis_conn_ready(&node->conn))
        {
            continue;
        }

        if (best == NULL || node->rtt.rtt < best->rtt.rtt) {
            best = node;
        }
    }

    return best;
}


/*
 * Every second: the primary and the replicas asked for again, and a PING
 * to each replica; one that left the last PING unanswered for longer than
 * timeout= is stalled (a stopped server keeps its sockets) and dropped.
 */

static void
ngx_http_mpn_sentinel_tick(ngx_event_t *ev)
{
    ngx_uint_t                     i;
    ngx_http_mpn_sentinel_node_t  *node;
    ngx_http_mpn_sentinel_t       *s = &ngx_http_mpn_sentinel;

    if (s->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_http_mpn_sentinel_ask();
    ngx_http_mpn_sentinel_list();

    if (s->conf->read_replica && s->nusers > 0) {
        /* the fallback is watched too: a stopped primary keeps its
         * sockets, and GETs would wait on it for a timeout each */
        ngx_http_mpn_sentinel_watch_primary(s->users[0].conn);
    }

    for (i = 0; i < NGX_HTTP_MPN_SENTINEL_REPLICAS; i++) {
        node = &s->replicas[i];

        if (!node->in_use || !ngx_http_mpn_redis_conn_ready(&node->conn)) {
            continue;
        }

        if (node->rtt.sent == 0) {
            ngx_http_mpn_redis_rtt_ping(&node->conn, &node->rtt,
                                        ngx_http_mpn_sentinel_ping_reply,
                                        node);
            continue;
        }

        if (ngx_http_mpn_usec() - node->rtt.sent
            > (uint64_t) s->conf->timeout * 1000)
        {
            ngx_http_mpn_redis_conn_drop(&node->conn, "no reply to PING");
        }
    }

    ngx_add_timer(&s->tick, NGX_HTTP_MPN_SENTINEL_TICK);
}


/* the lookups' connection to the primary (read=replica's fallback) */

static void
ngx_http_mpn_sentinel_watch_primary(ngx_http_mpn_redis_conn_t *rc)
{
    size_t                    len[1];
    const char               *argv[1];
    ngx_http_mpn_sentinel_t  *s = &ngx_http_mpn_sentinel;

    if (!ngx_http_mpn_redis_conn_ready(rc)) {
        s->primary_ping = 0;
        return;
    }

    if (s->primary_ping != 0) {
        if (ngx_http_mpn_usec() - s->primary_ping
            > (uint64_t) s->conf->timeout * 1000)
        {
            s->primary_ping = 0;
            ngx_http_mpn_redis_conn_drop(rc, "no reply to PING");
        }

        return;
    }

    argv[0] = "PING";
    len[0] = 4;

    if (ngx_http_mpn_redis_send(rc, 1, argv, len, NGX_HTTP_MPN_REDIS_QUIET,
                                ngx_http_mpn_sentinel_primary_pong, NULL)
        != NULL)
    {
        s->primary_ping = ngx_http_mpn_usec();
    }
}


static void
ngx_http_mpn_sentinel_primary_pong(void *data, void *reply)
{
    ngx_http_mpn_sentinel.primary_ping = 0;
}


/* an address as Sentinel gives it: a literal IPv4 or IPv6 one */

static ngx_int_t
ngx_http_mpn_sentinel_sockaddr(mpn_sentinel_addr_t *a, ngx_sockaddr_t *sa,
    socklen_t *len)
{
    in_port_t  p;
    in_addr_t  inaddr;

    p = (in_port_t) a->port;

    ngx_memzero(sa, sizeof(ngx_sockaddr_t));

    inaddr = ngx_inet_addr((u_char *) a->host, a->host_len);

    if (inaddr != INADDR_NONE) {
        sa->sockaddr_in.sin_family = AF_INET;
        sa->sockaddr_in.sin_addr.s_addr = inaddr;
        sa->sockaddr_in.sin_port = htons(p);
        *len = sizeof(struct sockaddr_in);
        return NGX_OK;
    }

#if (NGX_HAVE_INET6)

    if (ngx_inet6_addr((u_char *) a->host, a->host_len,
                       sa->sockaddr_in6.sin6_addr.s6_addr)
        == NGX_OK)
    {
        sa->sockaddr_in6.sin6_family = AF_INET6;
        sa->sockaddr_in6.sin6_port = htons(p);
        *len = sizeof(struct sockaddr_in6);
        return NGX_OK;
    }

#endif

    /* a host name (announce-hostnames): not followed */
    return NGX_ERROR;
}


/* with tls and no tls_name=, a node is checked against its own address */

static void
ngx_http_mpn_sentinel_tls_name(ngx_http_mpn_redis_conf_t *conf, u_char *buf,
    ngx_sockaddr_t *sa, socklen_t len)
{
    size_t  n;

    if (conf->ssl == NULL || conf->tls_name_set) {
        return;
    }

    n = ngx_sock_ntop(&sa->sockaddr, len, buf, NGX_SOCKADDR_STRLEN - 1, 0);
    buf[n] = '\0';

    conf->tls_name.data = buf;
    conf->tls_name.len = n;
}
