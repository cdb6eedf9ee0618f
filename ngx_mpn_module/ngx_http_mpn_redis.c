/*
 * hiredis on nginx's event loop: one asynchronous connection per worker,
 * opened in init_process and closed in exit_process.  Lookups are pipelined
 * on it; AUTH and SELECT go first on every connect; connect and reply waits
 * are nginx timers; a lost connection is reopened from a backoff timer.
 */

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_mpn_module.h"


#define NGX_HTTP_MPN_BACKOFF_MIN  50
#define NGX_HTTP_MPN_BACKOFF_MAX  1000


struct ngx_http_mpn_lookup_s {
    ngx_http_mpn_reply_pt      handler;
    void                      *data;
    uint64_t                   seq;          /* order sent */
    ngx_http_mpn_lookup_t     *next;         /* free list */
};


typedef struct {
    ngx_http_mpn_main_conf_t  *mcf;
    ngx_log_t                 *log;
    redisAsyncContext         *ac;           /* NULL while disconnected */
    ngx_connection_t          *conn;
    ngx_event_t                reconnect;
    ngx_event_t                connect_timer;
    ngx_msec_t                 backoff;
    uint64_t                   sent;         /* seq of the last GET sent */
    uint64_t                   answered;     /* seq of the last GET answered */
    ngx_http_mpn_lookup_t     *free;
    unsigned                   connected:1;
    unsigned                   was_connected:1;
    unsigned                   exiting:1;
} ngx_http_mpn_redis_t;


static void ngx_http_mpn_redis_connect(ngx_event_t *ev);
static void ngx_http_mpn_redis_schedule(ngx_http_mpn_redis_t *rs);
static void ngx_http_mpn_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_mpn_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_mpn_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_http_mpn_redis_setup_reply(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_mpn_redis_reply(redisAsyncContext *ac, void *reply,
    void *data);
static void ngx_http_mpn_redis_read_handler(ngx_event_t *ev);
static void ngx_http_mpn_redis_write_handler(ngx_event_t *ev);
static void ngx_http_mpn_redis_add_read(void *data);
static void ngx_http_mpn_redis_del_read(void *data);
static void ngx_http_mpn_redis_add_write(void *data);
static void ngx_http_mpn_redis_del_write(void *data);
static void ngx_http_mpn_redis_cleanup(void *data);


static ngx_http_mpn_redis_t  ngx_http_mpn_redis;

static ngx_http_mpn_limit_t  ngx_http_mpn_redis_connect_limit;
static ngx_http_mpn_limit_t  ngx_http_mpn_redis_error_limit;
static ngx_http_mpn_limit_t  ngx_http_mpn_redis_timeout_limit;


void
ngx_http_mpn_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_mpn_main_conf_t *mcf)
{
    ngx_http_mpn_redis_t  *rs = &ngx_http_mpn_redis;

    ngx_memzero(rs, sizeof(ngx_http_mpn_redis_t));

    rs->mcf = mcf;
    rs->log = cycle->log;
    rs->backoff = NGX_HTTP_MPN_BACKOFF_MIN;

    /* both timers are cancelable: they never hold up a graceful exit */

    rs->reconnect.handler = ngx_http_mpn_redis_connect;
    rs->reconnect.data = rs;
    rs->reconnect.log = cycle->log;
    rs->reconnect.cancelable = 1;

    rs->connect_timer.handler = ngx_http_mpn_redis_connect_timeout;
    rs->connect_timer.data = rs;
    rs->connect_timer.log = cycle->log;
    rs->connect_timer.cancelable = 1;

    ngx_http_mpn_redis_connect(&rs->reconnect);
}


void
ngx_http_mpn_redis_exit_process(void)
{
    ngx_http_mpn_lookup_t  *lk;
    ngx_http_mpn_redis_t   *rs = &ngx_http_mpn_redis;

    rs->exiting = 1;

    if (rs->reconnect.timer_set) {
        ngx_del_timer(&rs->reconnect);
    }

    if (rs->ac != NULL) {
        /* runs the pending callbacks with no reply, then the cleanup hook */
        redisAsyncFree(rs->ac);
    }

    while (rs->free != NULL) {
        lk = rs->free;
        rs->free = lk->next;
        ngx_free(lk);
    }
}


ngx_uint_t
ngx_http_mpn_redis_connected(void)
{
    return ngx_http_mpn_redis.connected;
}


static void
ngx_http_mpn_redis_connect(ngx_event_t *ev)
{
    ngx_http_mpn_redis_t       *rs = ev->data;
    ngx_http_mpn_redis_conf_t  *rc = rs->mcf->redis;

    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    if (rs->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
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
        ngx_http_mpn_log_limited(&ngx_http_mpn_redis_connect_limit, rs->log,
                                 "mpn: redis %V: out of memory",
                                 &rc->addr_text);
        ngx_http_mpn_redis_schedule(rs);
        return;
    }

    if (ac->err) {
        ngx_http_mpn_log_limited(&ngx_http_mpn_redis_connect_limit, rs->log,
                                 "mpn: redis %V: connect failed: %s",
                                 &rc->addr_text, ac->errstr);
        redisAsyncFree(ac);
        ngx_http_mpn_redis_schedule(rs);
        return;
    }

    c = ngx_get_connection(ac->c.fd, rs->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_mpn_redis_schedule(rs);
        return;
    }

    c->data = ac;
    c->read->handler = ngx_http_mpn_redis_read_handler;
    c->write->handler = ngx_http_mpn_redis_write_handler;
    c->read->log = rs->log;
    c->write->log = rs->log;

    ac->data = rs;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_mpn_redis_add_read;
    ac->ev.delRead = ngx_http_mpn_redis_del_read;
    ac->ev.addWrite = ngx_http_mpn_redis_add_write;
    ac->ev.delWrite = ngx_http_mpn_redis_del_write;
    ac->ev.cleanup = ngx_http_mpn_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_mpn_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_http_mpn_redis_on_disconnect);

    rs->ac = ac;
    rs->conn = c;
    rs->connected = 0;

    /* queued ahead of any GET, so every lookup runs authenticated in the
     * right database */

    if (rc->password.len) {
        redisAsyncCommand(ac, ngx_http_mpn_redis_setup_reply, "AUTH",
                          "AUTH %b", rc->password.data, rc->password.len);
    }

    if (rc->db) {
        redisAsyncCommand(ac, ngx_http_mpn_redis_setup_reply, "SELECT",
                          "SELECT %d", (int) rc->db);
    }

    /* the first write event tells hiredis the connect has completed */
    ngx_http_mpn_redis_add_write(c);

    ngx_add_timer(&rs->connect_timer, rc->connect_timeout);
}


static void
ngx_http_mpn_redis_schedule(ngx_http_mpn_redis_t *rs)
{
    if (rs->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (!rs->reconnect.timer_set) {
        ngx_add_timer(&rs->reconnect, rs->backoff);
    }

    rs->backoff = ngx_min(rs->backoff * 2, NGX_HTTP_MPN_BACKOFF_MAX);
}


static void
ngx_http_mpn_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_mpn_redis_t  *rs = ev->data;

    if (rs->ac == NULL || rs->connected) {
        return;
    }

    ngx_http_mpn_log_limited(&ngx_http_mpn_redis_connect_limit, rs->log,
                             "mpn: redis %V: connect timed out after %M ms",
                             &rs->mcf->redis->addr_text,
                             rs->mcf->redis->connect_timeout);

    redisAsyncFree(rs->ac);
}


static void
ngx_http_mpn_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_mpn_redis_t  *rs = ac->data;

    if (rs->connect_timer.timer_set) {
        ngx_del_timer(&rs->connect_timer);
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context next, and the cleanup hook schedules
         * the next attempt */
        ngx_http_mpn_log_limited(&ngx_http_mpn_redis_connect_limit, rs->log,
                                 "mpn: redis %V: connect failed: %s",
                                 &rs->mcf->redis->addr_text, ac->errstr);
        return;
    }

    rs->connected = 1;
    rs->backoff = NGX_HTTP_MPN_BACKOFF_MIN;

    if (rs->was_connected) {
        ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                      "mpn: redis %V: reconnected",
                      &rs->mcf->redis->addr_text);
    }

    rs->was_connected = 1;
}


static void
ngx_http_mpn_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_mpn_redis_t  *rs = ac->data;

    if (status != REDIS_OK) {
        ngx_http_mpn_log_limited(&ngx_http_mpn_redis_error_limit, rs->log,
                                 "mpn: redis %V: connection lost: %s",
                                 &rs->mcf->redis->addr_text,
                                 ac->errstr[0] ? ac->errstr : "closed");
    }
}


static void
ngx_http_mpn_redis_setup_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    ngx_http_mpn_redis_t  *rs = ac->data;
    redisReply            *rr = reply;

    if (rr == NULL || rr->type != REDIS_REPLY_ERROR) {
        return;
    }

    /* the reply text is Redis's, never the password */
    ngx_http_mpn_log_limited(&ngx_http_mpn_redis_error_limit, rs->log,
                             "mpn: redis %V: %s failed: %*s",
                             &rs->mcf->redis->addr_text, (char *) data,
                             (size_t) ngx_min(rr->len, 200), rr->str);

    /* the GETs queued behind fail with NOAUTH; start over later */
    redisAsyncDisconnect(ac);
}


ngx_http_mpn_lookup_t *
ngx_http_mpn_redis_get(ngx_str_t *key, ngx_http_mpn_reply_pt handler,
    void *data)
{
    ngx_http_mpn_lookup_t  *lk;
    ngx_http_mpn_redis_t   *rs = &ngx_http_mpn_redis;

    if (rs->ac == NULL) {
        return NULL;
    }

    lk = rs->free;

    if (lk != NULL) {
        rs->free = lk->next;

    } else {
        lk = ngx_alloc(sizeof(ngx_http_mpn_lookup_t), rs->log);
        if (lk == NULL) {
            return NULL;
        }
    }

    lk->handler = handler;
    lk->data = data;
    lk->seq = rs->sent + 1;

    if (redisAsyncCommand(rs->ac, ngx_http_mpn_redis_reply, lk, "GET %b",
                          key->data, key->len)
        != REDIS_OK)
    {
        /* the context is disconnecting or being freed */
        lk->next = rs->free;
        rs->free = lk;
        return NULL;
    }

    rs->sent = lk->seq;

    return lk;
}


/*
 * A wait ran out.  When nothing at all has been answered since that GET was
 * sent, the connection is stalled (e.g. a stopped server): drop it, which
 * fails every pending lookup now and reconnects with backoff, instead of
 * letting lookups pile up on a dead socket.
 */

void
ngx_http_mpn_redis_timed_out(ngx_http_mpn_lookup_t *lk)
{
    ngx_http_mpn_redis_t  *rs = &ngx_http_mpn_redis;

    ngx_http_mpn_log_limited(&ngx_http_mpn_redis_timeout_limit, rs->log,
                             "mpn: redis %V: no reply within %M ms",
                             &rs->mcf->redis->addr_text,
                             rs->mcf->redis->timeout);

    if (rs->ac != NULL && rs->answered < lk->seq) {
        redisAsyncFree(rs->ac);
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
    }

    handler = lk->handler;
    hdata = lk->data;

    lk->next = rs->free;
    rs->free = lk;

    handler(hdata, reply);
}


/* event plumbing: level-triggered, so hiredis's bounded reads and writes
 * are called again while data or room remains */

static void
ngx_http_mpn_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    /* may free the context and the connection: touch neither after */
    redisAsyncHandleRead(c->data);
}


static void
ngx_http_mpn_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_http_mpn_redis_add_read(void *data)
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
ngx_http_mpn_redis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_mpn_redis_add_write(void *data)
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
ngx_http_mpn_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis is freeing the context: it closes the socket itself afterwards */

static void
ngx_http_mpn_redis_cleanup(void *data)
{
    ngx_connection_t      *c = data;
    ngx_http_mpn_redis_t  *rs = &ngx_http_mpn_redis;

    ngx_http_mpn_redis_del_read(c);
    ngx_http_mpn_redis_del_write(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    if (rs->conn == c) {
        rs->ac = NULL;
        rs->conn = NULL;
        rs->connected = 0;

        if (rs->connect_timer.timer_set) {
            ngx_del_timer(&rs->connect_timer);
        }

        ngx_http_mpn_redis_schedule(rs);
    }
}
