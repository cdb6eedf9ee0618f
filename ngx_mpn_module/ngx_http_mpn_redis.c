/*
 * hiredis on nginx's event loop.  The generic part opens one asynchronous
 * connection (AUTH and SELECT go first on every connect), owns its connect
 * timer and event plumbing, and reopens it from a backoff timer after any
 * loss; the invalidation subscriber uses it too.  On top of it, each worker
 * keeps one lookup connection, opened in init_process and closed in
 * exit_process, on which the GETs are pipelined.
 */

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_mpn_redis.h"
#include "ngx_http_mpn_status.h"


#define NGX_HTTP_MPN_BACKOFF_MIN  50
#define NGX_HTTP_MPN_BACKOFF_MAX  1000


struct ngx_http_mpn_lookup_s {
    ngx_http_mpn_reply_pt      handler;
    void                      *data;
    uint64_t                   seq;          /* order sent */
    uint64_t                   answered;     /* last answered when sent */
    uint64_t                   sent_usec;    /* for the latency histogram */
    ngx_http_mpn_lookup_t     *next;         /* free list */
};


typedef struct {
    ngx_http_mpn_conn_t        conn;
    uint64_t                   sent;         /* seq of the last GET sent */
    uint64_t                   answered;     /* seq of the last GET answered */
    ngx_http_mpn_lookup_t     *free;
} ngx_http_mpn_redis_t;


static void ngx_http_mpn_conn_connect(ngx_event_t *ev);
static void ngx_http_mpn_conn_schedule(ngx_http_mpn_conn_t *mc);
static void ngx_http_mpn_conn_connect_timeout(ngx_event_t *ev);
static void ngx_http_mpn_conn_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_mpn_conn_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_http_mpn_conn_setup_reply(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_mpn_conn_read_handler(ngx_event_t *ev);
static void ngx_http_mpn_conn_write_handler(ngx_event_t *ev);
static void ngx_http_mpn_conn_add_read(void *data);
static void ngx_http_mpn_conn_del_read(void *data);
static void ngx_http_mpn_conn_add_write(void *data);
static void ngx_http_mpn_conn_del_write(void *data);
static void ngx_http_mpn_conn_cleanup(void *data);

static void ngx_http_mpn_redis_on_connect(ngx_http_mpn_conn_t *mc);
static void ngx_http_mpn_redis_reply(redisAsyncContext *ac, void *reply,
    void *data);


static ngx_http_mpn_redis_t  ngx_http_mpn_redis;

static ngx_http_mpn_limit_t  ngx_http_mpn_redis_timeout_limit;


/* the generic connection */

void
ngx_http_mpn_conn_start(ngx_http_mpn_conn_t *mc, ngx_cycle_t *cycle)
{
    mc->log = cycle->log;
    mc->ac = NULL;
    mc->conn = NULL;
    mc->backoff = NGX_HTTP_MPN_BACKOFF_MIN;
    mc->connected = 0;
    mc->was_connected = 0;
    mc->exiting = 0;

    /* both timers are cancelable: they never hold up a graceful exit */

    ngx_memzero(&mc->reconnect, sizeof(ngx_event_t));
    mc->reconnect.handler = ngx_http_mpn_conn_connect;
    mc->reconnect.data = mc;
    mc->reconnect.log = cycle->log;
    mc->reconnect.cancelable = 1;

    ngx_memzero(&mc->connect_timer, sizeof(ngx_event_t));
    mc->connect_timer.handler = ngx_http_mpn_conn_connect_timeout;
    mc->connect_timer.data = mc;
    mc->connect_timer.log = cycle->log;
    mc->connect_timer.cancelable = 1;

    ngx_http_mpn_conn_connect(&mc->reconnect);
}


void
ngx_http_mpn_conn_close(ngx_http_mpn_conn_t *mc)
{
    mc->exiting = 1;

    if (mc->reconnect.timer_set) {
        ngx_del_timer(&mc->reconnect);
    }

    if (mc->ac != NULL) {
        /* runs the pending callbacks with no reply, then the cleanup hook */
        redisAsyncFree(mc->ac);
    }
}


static void
ngx_http_mpn_conn_connect(ngx_event_t *ev)
{
    ngx_http_mpn_conn_t        *mc = ev->data;
    ngx_http_mpn_redis_conf_t  *rc = mc->conf;

    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    if (mc->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    /* the address is numeric (resolved at configuration time), so hiredis
     * never waits on a name lookup here */

    if (rc->unix_path.len) {
        ac = redisAsyncConnectUnix((char *) rc->unix_path.data);

    } else {
        ac = redisAsyncConnect((char *) rc->host.data, rc->port);
    }

    if (ac == NULL) {
        ngx_http_mpn_log_limited(&mc->connect_limit, mc->log,
                                 "mpn: redis %V: %sout of memory",
                                 &rc->addr_text, mc->role);
        ngx_http_mpn_conn_schedule(mc);
        return;
    }

    if (ac->err) {
        ngx_http_mpn_log_limited(&mc->connect_limit, mc->log,
                                 "mpn: redis %V: %sconnect failed: %s",
                                 &rc->addr_text, mc->role, ac->errstr);
        redisAsyncFree(ac);
        ngx_http_mpn_conn_schedule(mc);
        return;
    }

    c = ngx_get_connection(ac->c.fd, mc->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_mpn_conn_schedule(mc);
        return;
    }

    c->data = ac;
    c->read->handler = ngx_http_mpn_conn_read_handler;
    c->write->handler = ngx_http_mpn_conn_write_handler;
    c->read->log = mc->log;
    c->write->log = mc->log;

    ac->data = mc;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_mpn_conn_add_read;
    ac->ev.delRead = ngx_http_mpn_conn_del_read;
    ac->ev.addWrite = ngx_http_mpn_conn_add_write;
    ac->ev.delWrite = ngx_http_mpn_conn_del_write;
    ac->ev.cleanup = ngx_http_mpn_conn_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_mpn_conn_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_http_mpn_conn_on_disconnect);

    mc->ac = ac;
    mc->conn = c;
    mc->connected = 0;

    /* queued ahead of any other command, so everything runs authenticated
     * in the right database */

    if (rc->password.len) {
        redisAsyncCommand(ac, ngx_http_mpn_conn_setup_reply, "AUTH",
                          "AUTH %b", rc->password.data, rc->password.len);
    }

    if (rc->db) {
        redisAsyncCommand(ac, ngx_http_mpn_conn_setup_reply, "SELECT",
                          "SELECT %d", (int) rc->db);
    }

    /* the first write event tells hiredis the connect has completed */
    ngx_http_mpn_conn_add_write(c);

    ngx_add_timer(&mc->connect_timer, rc->connect_timeout);
}


static void
ngx_http_mpn_conn_schedule(ngx_http_mpn_conn_t *mc)
{
    if (mc->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (!mc->reconnect.timer_set) {
        ngx_add_timer(&mc->reconnect, mc->backoff);
    }

    mc->backoff = ngx_min(mc->backoff * 2, NGX_HTTP_MPN_BACKOFF_MAX);
}


static void
ngx_http_mpn_conn_connect_timeout(ngx_event_t *ev)
{
    ngx_http_mpn_conn_t  *mc = ev->data;

    if (mc->ac == NULL || mc->connected) {
        return;
    }

    ngx_http_mpn_log_limited(&mc->connect_limit, mc->log,
                             "mpn: redis %V: %sconnect timed out after %M ms",
                             &mc->conf->addr_text, mc->role,
                             mc->conf->connect_timeout);

    redisAsyncFree(mc->ac);
}


static void
ngx_http_mpn_conn_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_mpn_conn_t  *mc = ac->data;

    if (mc->connect_timer.timer_set) {
        ngx_del_timer(&mc->connect_timer);
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context next, and the cleanup hook schedules
         * the next attempt */
        ngx_http_mpn_log_limited(&mc->connect_limit, mc->log,
                                 "mpn: redis %V: %sconnect failed: %s",
                                 &mc->conf->addr_text, mc->role, ac->errstr);
        return;
    }

    mc->connected = 1;
    mc->backoff = NGX_HTTP_MPN_BACKOFF_MIN;

    /* a peer that vanished without a reset (a host gone, a dropped route)
     * is noticed within about 30 s even on a connection that only listens,
     * like the subscriber's */

    if (mc->conf->unix_path.len == 0
        && redisEnableKeepAlive((redisContext *) &ac->c) != REDIS_OK)
    {
        /* hiredis marks the context failed: it is not */
        ((redisAsyncContext *) ac)->c.err = 0;

        ngx_log_error(NGX_LOG_WARN, mc->log, 0,
                      "mpn: redis %V: %scannot enable TCP keepalive",
                      &mc->conf->addr_text, mc->role);
    }

    if (mc->was_connected) {
        ngx_log_error(NGX_LOG_NOTICE, mc->log, 0,
                      "mpn: redis %V: %sreconnected",
                      &mc->conf->addr_text, mc->role);
    }

    if (mc->on_connect) {
        mc->on_connect(mc);
    }

    mc->was_connected = 1;
}


static void
ngx_http_mpn_conn_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_mpn_conn_t  *mc = ac->data;

    if (status != REDIS_OK) {
        ngx_http_mpn_log_limited(&mc->error_limit, mc->log,
                                 "mpn: redis %V: %sconnection lost: %s",
                                 &mc->conf->addr_text, mc->role,
                                 ac->errstr[0] ? ac->errstr : "closed");
    }
}


static void
ngx_http_mpn_conn_setup_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    ngx_http_mpn_conn_t  *mc = ac->data;
    redisReply           *rr = reply;

    if (rr == NULL || rr->type != REDIS_REPLY_ERROR) {
        return;
    }

    /* the reply text is Redis's, never the password */
    ngx_http_mpn_log_limited(&mc->error_limit, mc->log,
                             "mpn: redis %V: %s%s failed: %*s",
                             &mc->conf->addr_text, mc->role, (char *) data,
                             (size_t) ngx_min(rr->len, 200), rr->str);

    /* the commands queued behind fail with NOAUTH; start over later */
    redisAsyncDisconnect(ac);
}


/* event plumbing: level-triggered, so hiredis's bounded reads and writes
 * are called again while data or room remains */

static void
ngx_http_mpn_conn_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    /* may free the context and the connection: touch neither after */
    redisAsyncHandleRead(c->data);
}


static void
ngx_http_mpn_conn_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_http_mpn_conn_add_read(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "mpn: redis: cannot add read event");
        }
    }
}


static void
ngx_http_mpn_conn_del_read(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_mpn_conn_add_write(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "mpn: redis: cannot add write event");
        }
    }
}


static void
ngx_http_mpn_conn_del_write(void *data)
{
    ngx_connection_t  *c = data;

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis is freeing the context: it closes the socket itself afterwards */

static void
ngx_http_mpn_conn_cleanup(void *data)
{
    ngx_connection_t     *c = data;

    redisAsyncContext    *ac;
    ngx_http_mpn_conn_t  *mc;

    ac = c->data;
    mc = ac->data;

    ngx_http_mpn_conn_del_read(c);
    ngx_http_mpn_conn_del_write(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    if (mc->conn != c) {
        return;
    }

    mc->ac = NULL;
    mc->conn = NULL;
    mc->connected = 0;

    if (mc->connect_timer.timer_set) {
        ngx_del_timer(&mc->connect_timer);
    }

    if (mc->on_close) {
        mc->on_close(mc);
    }

    ngx_http_mpn_conn_schedule(mc);
}


/* the lookup connection */

void
ngx_http_mpn_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_mpn_main_conf_t *mcf)
{
    ngx_http_mpn_redis_t  *rs = &ngx_http_mpn_redis;

    ngx_memzero(rs, sizeof(ngx_http_mpn_redis_t));

    rs->conn.conf = mcf->redis;
    rs->conn.role = "";
    rs->conn.on_connect = ngx_http_mpn_redis_on_connect;
    rs->conn.data = rs;

    ngx_http_mpn_conn_start(&rs->conn, cycle);
}


void
ngx_http_mpn_redis_exit_process(void)
{
    ngx_http_mpn_lookup_t  *lk;
    ngx_http_mpn_redis_t   *rs = &ngx_http_mpn_redis;

    ngx_http_mpn_conn_close(&rs->conn);

    while (rs->free != NULL) {
        lk = rs->free;
        rs->free = lk->next;
        ngx_free(lk);
    }
}


ngx_uint_t
ngx_http_mpn_redis_connected(void)
{
    return ngx_http_mpn_redis.conn.connected;
}


static void
ngx_http_mpn_redis_on_connect(ngx_http_mpn_conn_t *mc)
{
    if (mc->was_connected) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_RECONNECTS);
    }
}


ngx_http_mpn_lookup_t *
ngx_http_mpn_redis_get(ngx_str_t *key, ngx_http_mpn_reply_pt handler,
    void *data)
{
    ngx_http_mpn_lookup_t  *lk;
    ngx_http_mpn_redis_t   *rs = &ngx_http_mpn_redis;

    if (rs->conn.ac == NULL) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
        return NULL;
    }

    lk = rs->free;

    if (lk != NULL) {
        rs->free = lk->next;

    } else {
        lk = ngx_alloc(sizeof(ngx_http_mpn_lookup_t), rs->conn.log);
        if (lk == NULL) {
            return NULL;
        }
    }

    lk->handler = handler;
    lk->data = data;
    lk->seq = rs->sent + 1;
    lk->answered = rs->answered;
    lk->sent_usec = ngx_http_mpn_usec();

    if (redisAsyncCommand(rs->conn.ac, ngx_http_mpn_redis_reply, lk, "GET %b",
                          key->data, key->len)
        != REDIS_OK)
    {
        /* the context is disconnecting or being freed */
        lk->next = rs->free;
        rs->free = lk;
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
        return NULL;
    }

    rs->sent = lk->seq;

    ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_REQUESTS);

    return lk;
}


/*
 * A wait ran out.  When nothing at all has been answered since that GET was
 * sent, the connection is stalled (e.g. a stopped server): drop it, which
 * fails every pending lookup now and reconnects with backoff, instead of
 * letting lookups pile up on a dead socket.  A server that is slow but
 * still answering the GETs queued before keeps its connection.
 */

void
ngx_http_mpn_redis_timed_out(ngx_http_mpn_lookup_t *lk)
{
    ngx_http_mpn_redis_t  *rs = &ngx_http_mpn_redis;

    ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_TIMEOUTS);

    ngx_http_mpn_log_limited(&ngx_http_mpn_redis_timeout_limit, rs->conn.log,
                             "mpn: redis %V: no reply within %M ms",
                             &rs->conn.conf->addr_text,
                             rs->conn.conf->timeout);

    if (rs->conn.ac != NULL && rs->answered == lk->answered) {
        redisAsyncFree(rs->conn.ac);
    }
}


static void
ngx_http_mpn_redis_reply(redisAsyncContext *ac, void *reply, void *data)
{
    ngx_http_mpn_lookup_t  *lk = data;
    ngx_http_mpn_redis_t   *rs = &ngx_http_mpn_redis;

    ngx_http_mpn_reply_pt   handler;
    void                   *hdata;

    if (reply != NULL) {
        rs->answered = lk->seq;
        ngx_http_mpn_status_latency(ngx_http_mpn_usec() - lk->sent_usec);

        if (((redisReply *) reply)->type == REDIS_REPLY_ERROR) {
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
        }

    } else {
        /* the connection failed with the GET pending */
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
    }

    handler = lk->handler;
    hdata = lk->data;

    lk->next = rs->free;
    rs->free = lk;

    handler(hdata, reply);
}
