/*
 * hiredis on nginx's event loop.  The generic part opens one asynchronous
 * connection (AUTH and SELECT go first on every connect), owns its connect
 * timer and event plumbing, and reopens it from a backoff timer after any
 * loss; the invalidation subscriber uses it too.  On top of it, each worker
 * keeps one lookup connection, opened in init_process and closed in
 * exit_process, on which the GETs are pipelined.
 *
 * The lookup connection is ready only once AUTH and SELECT succeeded and
 * the dataset marker (mpn_redis marker=, default "mpn:meta") exists in its
 * database; the marker is checked again every second.  GETs asked for
 * while the connection is being set up wait here, unsent, and fail if it
 * does not become ready; while the marker is missing they fail at once.  A
 * reply that arrives after a failed check is not used: a Redis that lost
 * its data, or the wrong database, must not turn partners into strangers.
 * For the same reason a nil reply ("no record") is used only once an
 * EXISTS sent after it has found the marker: data flushed under a live
 * connection never reads as not_member, not even before the next check.
 */

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_mpn_redis.h"
#include "ngx_http_mpn_status.h"


#define NGX_HTTP_MPN_BACKOFF_MIN  50
#define NGX_HTTP_MPN_BACKOFF_MAX  1000

#define NGX_HTTP_MPN_CHECK_INTERVAL    1000  /* ms between marker checks */
#define NGX_HTTP_MPN_UNREADY_LOG_EVERY  60   /* s between repeated lines */


struct ngx_http_mpn_lookup_s {
    ngx_http_mpn_reply_pt      handler;
    void                      *data;
    uint64_t                   answered;     /* replies counted when sent */
    uint64_t                   seq;          /* order sent */
    uint64_t                   sent_usec;    /* for the latency histogram */
    ngx_http_mpn_lookup_t     *next;         /* free, held or nil list */
    size_t                     key_len;      /* key of a held lookup */
    u_char                     key[1];
};


typedef struct {
    ngx_http_mpn_conn_t        conn;
    uint64_t                   answered;     /* replies received */
    uint64_t                   seq;          /* commands sent */
    uint64_t                   check_seq;    /* seq of the last EXISTS */
    ngx_uint_t                 checks;       /* EXISTS outstanding */
    size_t                     key_max;      /* prefix + the longest id */
    ngx_http_mpn_lookup_t     *free;
    ngx_http_mpn_lookup_t     *held;         /* waiting for "ready" */
    ngx_http_mpn_lookup_t    **held_last;
    ngx_http_mpn_lookup_t     *nils;         /* nil replies to confirm */
    ngx_http_mpn_lookup_t    **nils_last;
    ngx_event_t                check;        /* the marker check timer */
    time_t                     unready_logged;
    unsigned                   ready:1;      /* lookups can be served */
    unsigned                   checked:1;    /* a check was answered */
    unsigned                   unready:1;    /* said so in the log */
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

static void ngx_http_mpn_conn_set_up(ngx_http_mpn_conn_t *mc);

static void ngx_http_mpn_redis_on_connect(ngx_http_mpn_conn_t *mc);
static void ngx_http_mpn_redis_on_ready(ngx_http_mpn_conn_t *mc);
static void ngx_http_mpn_redis_on_close(ngx_http_mpn_conn_t *mc);
static void ngx_http_mpn_redis_check_handler(ngx_event_t *ev);
static void ngx_http_mpn_redis_check(ngx_http_mpn_redis_t *rs);
static void ngx_http_mpn_redis_send_check(ngx_http_mpn_redis_t *rs);
static void ngx_http_mpn_redis_check_reply(redisAsyncContext *ac,
    void *reply, void *data);
static void ngx_http_mpn_redis_set_ready(ngx_http_mpn_redis_t *rs);
static void ngx_http_mpn_redis_unready(ngx_http_mpn_redis_t *rs,
    redisReply *rr);
static ngx_int_t ngx_http_mpn_redis_send(ngx_http_mpn_redis_t *rs,
    ngx_http_mpn_lookup_t *lk, u_char *key, size_t len);
static void ngx_http_mpn_redis_fail_held(ngx_http_mpn_redis_t *rs);
static void ngx_http_mpn_redis_settle_nils(ngx_http_mpn_redis_t *rs);
static void ngx_http_mpn_redis_reply(redisAsyncContext *ac, void *reply,
    void *data);


static ngx_http_mpn_redis_t  ngx_http_mpn_redis;

/* a confirmed "no record", handed on after the original reply was freed */
static redisReply            ngx_http_mpn_redis_nil;

static ngx_http_mpn_limit_t  ngx_http_mpn_redis_timeout_limit;


/* the generic connection */

void
ngx_http_mpn_conn_start(ngx_http_mpn_conn_t *mc, ngx_cycle_t *cycle)
{
    mc->log = cycle->log;
    mc->ac = NULL;
    mc->conn = NULL;
    mc->backoff = NGX_HTTP_MPN_BACKOFF_MIN;
    mc->setup = 0;
    mc->connected = 0;
    mc->set_up = 0;
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
    mc->set_up = 0;
    mc->setup = 0;

    /* queued ahead of any other command; the users send theirs only once
     * every one of these succeeded (on_ready) */

    if (rc->password.len
        && redisAsyncCommand(ac, ngx_http_mpn_conn_setup_reply, "AUTH",
                             "AUTH %b", rc->password.data, rc->password.len)
           == REDIS_OK)
    {
        mc->setup++;
    }

    if (rc->db
        && redisAsyncCommand(ac, ngx_http_mpn_conn_setup_reply, "SELECT",
                             "SELECT %d", (int) rc->db)
           == REDIS_OK)
    {
        mc->setup++;
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

    if (mc->setup == 0 && mc->ac != NULL) {
        ngx_http_mpn_conn_set_up(mc);
    }
}


static void
ngx_http_mpn_conn_set_up(ngx_http_mpn_conn_t *mc)
{
    mc->set_up = 1;

    if (mc->on_ready) {
        mc->on_ready(mc);
    }
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

    if (rr == NULL) {
        /* the connection is going away */
        return;
    }

    if (rr->type != REDIS_REPLY_ERROR) {
        if (--mc->setup == 0 && mc->connected && !mc->set_up) {
            ngx_http_mpn_conn_set_up(mc);
        }

        return;
    }

    /* the reply text is Redis's, never the password; e.g. a db= out of
     * range, or an ACL user without SELECT */
    if (ngx_strcmp(data, "SELECT") == 0) {
        ngx_http_mpn_log_limited(&mc->error_limit, mc->log,
                                 "mpn: redis %V: %sSELECT %i failed: %*s; "
                                 "nothing is read until it succeeds",
                                 &mc->conf->addr_text, mc->role,
                                 mc->conf->db, (size_t) ngx_min(rr->len, 200),
                                 rr->str);

    } else {
        ngx_http_mpn_log_limited(&mc->error_limit, mc->log,
                                 "mpn: redis %V: %s%s failed: %*s; nothing "
                                 "is read until it succeeds",
                                 &mc->conf->addr_text, mc->role,
                                 (char *) data, (size_t) ngx_min(rr->len, 200),
                                 rr->str);
    }

    /* nothing else was sent: close and start over later */
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
    mc->set_up = 0;

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

    rs->key_max = mcf->key_prefix.len + MPN_ID_MAX;
    rs->held_last = &rs->held;
    rs->nils_last = &rs->nils;

    ngx_http_mpn_redis_nil.type = REDIS_REPLY_NIL;

    rs->check.handler = ngx_http_mpn_redis_check_handler;
    rs->check.data = rs;
    rs->check.log = cycle->log;
    rs->check.cancelable = 1;

    rs->conn.conf = mcf->redis;
    rs->conn.role = "";
    rs->conn.on_connect = ngx_http_mpn_redis_on_connect;
    rs->conn.on_ready = ngx_http_mpn_redis_on_ready;
    rs->conn.on_close = ngx_http_mpn_redis_on_close;
    rs->conn.data = rs;

    ngx_http_mpn_conn_start(&rs->conn, cycle);
}


void
ngx_http_mpn_redis_exit_process(void)
{
    ngx_http_mpn_lookup_t  *lk;
    ngx_http_mpn_redis_t   *rs = &ngx_http_mpn_redis;

    ngx_http_mpn_conn_close(&rs->conn);

    if (rs->check.timer_set) {
        ngx_del_timer(&rs->check);
    }

    while (rs->free != NULL) {
        lk = rs->free;
        rs->free = lk->next;
        ngx_free(lk);
    }
}


ngx_uint_t
ngx_http_mpn_redis_ready(void)
{
    return ngx_http_mpn_redis.ready;
}


static void
ngx_http_mpn_redis_on_connect(ngx_http_mpn_conn_t *mc)
{
    if (mc->was_connected) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_RECONNECTS);
    }
}


static void
ngx_http_mpn_redis_on_ready(ngx_http_mpn_conn_t *mc)
{
    ngx_http_mpn_redis_t  *rs = mc->data;

    if (mc->conf->marker.len == 0) {
        ngx_http_mpn_redis_set_ready(rs);
        return;
    }

    ngx_http_mpn_redis_check(rs);

    ngx_add_timer(&rs->check, NGX_HTTP_MPN_CHECK_INTERVAL);
}


static void
ngx_http_mpn_redis_on_close(ngx_http_mpn_conn_t *mc)
{
    ngx_http_mpn_redis_t  *rs = mc->data;

    rs->ready = 0;
    rs->checked = 0;
    rs->checks = 0;

    if (rs->check.timer_set) {
        ngx_del_timer(&rs->check);
    }

    ngx_http_mpn_redis_fail_held(rs);
    ngx_http_mpn_redis_settle_nils(rs);
}


static void
ngx_http_mpn_redis_check_handler(ngx_event_t *ev)
{
    ngx_http_mpn_redis_t  *rs = ev->data;

    if (rs->conn.ac == NULL || !rs->conn.set_up) {
        return;
    }

    ngx_http_mpn_redis_check(rs);

    ngx_add_timer(&rs->check, NGX_HTTP_MPN_CHECK_INTERVAL);
}


/* the periodic check: a slow server gets one at a time */

static void
ngx_http_mpn_redis_check(ngx_http_mpn_redis_t *rs)
{
    if (rs->checks == 0) {
        ngx_http_mpn_redis_send_check(rs);
    }
}


/* EXISTS on the lookup connection, in line with the GETs */

static void
ngx_http_mpn_redis_send_check(ngx_http_mpn_redis_t *rs)
{
    ngx_str_t  *marker = &rs->conn.conf->marker;

    if (rs->conn.ac == NULL) {
        return;
    }

    if (redisAsyncCommand(rs->conn.ac, ngx_http_mpn_redis_check_reply, rs,
                          "EXISTS %b", marker->data, marker->len)
        == REDIS_OK)
    {
        rs->checks++;
        rs->check_seq = ++rs->seq;
    }
}


static void
ngx_http_mpn_redis_check_reply(redisAsyncContext *ac, void *reply,
    void *data)
{
    ngx_http_mpn_redis_t  *rs = data;
    redisReply            *rr = reply;

    if (rr == NULL) {
        /* the connection is going away: on_close follows */
        return;
    }

    rs->checks--;
    rs->answered++;
    rs->checked = 1;

    if (rr->type == REDIS_REPLY_INTEGER && rr->integer > 0) {
        ngx_http_mpn_redis_set_ready(rs);

    } else {
        ngx_http_mpn_redis_unready(rs, rr);
    }

    /* every nil reply waiting was sent before this check */
    ngx_http_mpn_redis_settle_nils(rs);
}


static void
ngx_http_mpn_redis_set_ready(ngx_http_mpn_redis_t *rs)
{
    ngx_http_mpn_lookup_t  *lk, *next;

    if (rs->ready) {
        return;
    }

    rs->ready = 1;

    if (rs->unready) {
        rs->unready = 0;
        ngx_log_error(NGX_LOG_NOTICE, rs->conn.log, 0,
                      "mpn: redis %V database %i: dataset marker \"%V\" "
                      "found, lookups are served again",
                      &rs->conn.conf->addr_text, rs->conn.conf->db,
                      &rs->conn.conf->marker);
    }

    lk = rs->held;
    rs->held = NULL;
    rs->held_last = &rs->held;

    for ( /* void */ ; lk != NULL; lk = next) {
        next = lk->next;

        if (ngx_http_mpn_redis_send(rs, lk, lk->key, lk->key_len) != NGX_OK) {
            lk->next = rs->free;
            rs->free = lk;
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
            lk->handler(lk->data, NULL);
        }
    }
}


/* the marker is missing, or the check got an error reply (NOPERM) */

static void
ngx_http_mpn_redis_unready(ngx_http_mpn_redis_t *rs, redisReply *rr)
{
    ngx_str_t                   option;
    ngx_http_mpn_redis_conf_t  *rc = rs->conn.conf;

    rs->ready = 0;

    /* one line when it happens, then one a minute while it lasts */

    if (!rs->unready
        || ngx_time() - rs->unready_logged >= NGX_HTTP_MPN_UNREADY_LOG_EVERY)
    {
        rs->unready = 1;
        rs->unready_logged = ngx_time();

        if (rr->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, rs->conn.log, 0,
                          "mpn: redis %V database %i: the dataset marker "
                          "check (EXISTS \"%V\") failed: %*s; lookups fail "
                          "until it succeeds",
                          &rc->addr_text, rc->db, &rc->marker,
                          (size_t) ngx_min(rr->len, 200), rr->str);

        } else {
            /* the command that writes it, for a marker= of its own too */
            ngx_str_null(&option);

            if (rc->marker.len != 8
                || ngx_strncmp(rc->marker.data, "mpn:meta", 8) != 0)
            {
                ngx_str_set(&option, " --marker ");
            }

            ngx_log_error(NGX_LOG_ERR, rs->conn.log, 0,
                          "mpn: redis %V database %i: no dataset marker "
                          "\"%V\", so lookups fail until it exists: is "
                          "this the right server and database, or was its "
                          "data lost?  Once the records are there, write "
                          "the marker with \"mpnctl --redis %V --db %i "
                          "init%V%V\"",
                          &rc->addr_text, rc->db, &rc->marker,
                          &rc->addr_text, rc->db, &option,
                          option.len ? &rc->marker : &option);
        }
    }

    ngx_http_mpn_redis_fail_held(rs);
}


/* nil replies: "no record" if the marker is there, else unavailable */

static void
ngx_http_mpn_redis_settle_nils(ngx_http_mpn_redis_t *rs)
{
    redisReply             *reply;
    ngx_http_mpn_lookup_t  *lk, *next;

    lk = rs->nils;
    rs->nils = NULL;
    rs->nils_last = &rs->nils;

    reply = rs->ready ? &ngx_http_mpn_redis_nil : NULL;

    for ( /* void */ ; lk != NULL; lk = next) {
        next = lk->next;

        lk->next = rs->free;
        rs->free = lk;

        if (reply == NULL) {
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
        }

        lk->handler(lk->data, reply);
    }
}


static void
ngx_http_mpn_redis_fail_held(ngx_http_mpn_redis_t *rs)
{
    ngx_http_mpn_lookup_t  *lk, *next;

    lk = rs->held;
    rs->held = NULL;
    rs->held_last = &rs->held;

    for ( /* void */ ; lk != NULL; lk = next) {
        next = lk->next;

        lk->next = rs->free;
        rs->free = lk;

        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
        lk->handler(lk->data, NULL);
    }
}


ngx_http_mpn_lookup_t *
ngx_http_mpn_redis_get(ngx_str_t *key, ngx_http_mpn_reply_pt handler,
    void *data)
{
    ngx_http_mpn_lookup_t  *lk;
    ngx_http_mpn_redis_t   *rs = &ngx_http_mpn_redis;

    if (rs->conn.ac == NULL || (rs->checked && !rs->ready)
        || key->len > rs->key_max)
    {
        /* no connection, or no marker in its database */
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
        return NULL;
    }

    lk = rs->free;

    if (lk != NULL) {
        rs->free = lk->next;

    } else {
        lk = ngx_alloc(sizeof(ngx_http_mpn_lookup_t) + rs->key_max,
                       rs->conn.log);
        if (lk == NULL) {
            return NULL;
        }
    }

    lk->handler = handler;
    lk->data = data;

    if (!rs->ready) {
        /* the connection is being set up: sent once it is ready */
        ngx_memcpy(lk->key, key->data, key->len);
        lk->key_len = key->len;
        lk->answered = rs->answered;
        lk->next = NULL;

        *rs->held_last = lk;
        rs->held_last = &lk->next;

        return lk;
    }

    if (ngx_http_mpn_redis_send(rs, lk, key->data, key->len) != NGX_OK) {
        lk->next = rs->free;
        rs->free = lk;
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
        return NULL;
    }

    return lk;
}


static ngx_int_t
ngx_http_mpn_redis_send(ngx_http_mpn_redis_t *rs, ngx_http_mpn_lookup_t *lk,
    u_char *key, size_t len)
{
    lk->answered = rs->answered;
    lk->seq = rs->seq + 1;
    lk->sent_usec = ngx_http_mpn_usec();

    if (rs->conn.ac == NULL
        || redisAsyncCommand(rs->conn.ac, ngx_http_mpn_redis_reply, lk,
                             "GET %b", key, len)
           != REDIS_OK)
    {
        /* the context is disconnecting or being freed */
        return NGX_ERROR;
    }

    rs->seq = lk->seq;

    ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_REQUESTS);

    return NGX_OK;
}


/*
 * A wait ran out.  When nothing at all has been answered since that GET was
 * sent (or held, while the connection was being set up), the connection is
 * stalled (e.g. a stopped server): drop it, which fails every pending
 * lookup now and reconnects with backoff, instead of letting lookups pile
 * up on a dead socket.  A server that is slow but still answering the
 * commands queued before keeps its connection.
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
        rs->answered++;
        ngx_http_mpn_status_latency(ngx_http_mpn_usec() - lk->sent_usec);

        if (!rs->ready) {
            /* sent before a marker check that failed: not used */
            reply = NULL;
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);

        } else if (((redisReply *) reply)->type == REDIS_REPLY_NIL
                   && rs->conn.conf->marker.len)
        {
            /* "no record" waits for a check sent after this GET */
            lk->next = NULL;
            *rs->nils_last = lk;
            rs->nils_last = &lk->next;

            if (rs->check_seq < lk->seq) {
                ngx_http_mpn_redis_send_check(rs);
            }

            return;

        } else if (((redisReply *) reply)->type == REDIS_REPLY_ERROR) {
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
