/*
 * Redis connections on nginx's event loop (see ngx_http_mpn_redis.h).
 *
 * A connection goes DOWN -> LOCATING (the topology picks the address,
 * maybe resolving a name) -> CONNECTING -> HANDSHAKE (TLS only) -> SETUP
 * (AUTH, SELECT, ROLE where the owner expects a primary, then the marker
 * check: every reply must be OK, ROLE "master") -> READY,
 * or UNREADY while the marker is missing.  A connect timer bounds the
 * opening: connect_timeout up to the end of the TLS handshake, then
 * timeout for the set-up replies.  Commands are redisFormatCommandArgv()
 * bytes appended to an output buffer and matched, in order, to the
 * replies a redisReader parses; commands given while the connection is
 * being opened wait for READY.  Any failure closes the socket and fails
 * the commands, except that an idempotent command whose time is not up is
 * carried over, once, to the next connection; the next attempt is always
 * made from a backoff timer.
 *
 * Each worker keeps one such connection for lookups, opened in
 * init_process and closed in exit_process: ngx_http_mpn_redis_get().
 */

#include <netinet/tcp.h>

#include <hiredis/hiredis.h>

#include "ngx_http_mpn_redis.h"
#include "ngx_http_mpn_cluster.h"
#include "ngx_http_mpn_sentinel.h"
#include "ngx_http_mpn_status.h"


#define NGX_HTTP_MPN_BACKOFF_MIN     50
#define NGX_HTTP_MPN_BACKOFF_MAX     1000

#define NGX_HTTP_MPN_REDIS_DOWN        0
#define NGX_HTTP_MPN_REDIS_LOCATING    1
#define NGX_HTTP_MPN_REDIS_CONNECTING  2
#define NGX_HTTP_MPN_REDIS_HANDSHAKE   3
#define NGX_HTTP_MPN_REDIS_SETUP       4
#define NGX_HTTP_MPN_REDIS_READY       5
#define NGX_HTTP_MPN_REDIS_UNREADY     6   /* set up, but no marker */

#define NGX_HTTP_MPN_PROBE_INTERVAL    1000  /* ms between marker checks */
#define NGX_HTTP_MPN_UNREADY_LOG_EVERY 60    /* s between repeated lines */

/* a peer gone without a reset is noticed in about 30 s (as hiredis did) */
#define NGX_HTTP_MPN_KEEPIDLE        15
#define NGX_HTTP_MPN_KEEPINTVL       5
#define NGX_HTTP_MPN_KEEPCNT         3


struct ngx_http_mpn_redis_cmd_s {
    ngx_queue_t                queue;        /* in sent or waiting */
    ngx_http_mpn_redis_conn_t *conn;
    ngx_http_mpn_reply_pt      handler;
    void                      *data;
    char                      *buf;          /* the encoded command */
    size_t                     len;
    const char                *setup;        /* "AUTH", "SELECT", "EXISTS" */
    ngx_uint_t                 flags;
    ngx_msec_t                 deadline;     /* for a carry-over */
    ngx_uint_t                 generation;   /* connection it was sent on */
    uint64_t                   seq;          /* order sent */
    uint64_t                   answered;     /* last answered when sent */
    uint64_t                   sent_usec;    /* for the latency histogram */
    unsigned                   retried:1;
    unsigned                   probe:1;      /* the dataset marker check */
};


static void ngx_http_mpn_redis_attempt(ngx_event_t *ev);
static void ngx_http_mpn_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_mpn_redis_connecting_handler(ngx_event_t *ev);
static void ngx_http_mpn_redis_established(ngx_http_mpn_redis_conn_t *rc);
#if (NGX_SSL)
static void ngx_http_mpn_redis_handshake(ngx_http_mpn_redis_conn_t *rc,
    ngx_connection_t *c);
static void ngx_http_mpn_redis_handshaked(ngx_connection_t *c);
#endif
static void ngx_http_mpn_redis_setup(ngx_http_mpn_redis_conn_t *rc);
static ngx_int_t ngx_http_mpn_redis_setup_cmd(ngx_http_mpn_redis_conn_t *rc,
    const char *name, int argc, const char **argv, const size_t *argvlen);
static void ngx_http_mpn_redis_setup_reply(ngx_http_mpn_redis_conn_t *rc,
    ngx_http_mpn_redis_cmd_t *cmd, redisReply *reply);
static ngx_int_t ngx_http_mpn_redis_probe(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_redis_probe_handler(ngx_event_t *ev);
static void ngx_http_mpn_redis_probe_reply(ngx_http_mpn_redis_conn_t *rc,
    redisReply *reply);
static void ngx_http_mpn_redis_unready(ngx_http_mpn_redis_conn_t *rc,
    redisReply *reply);
static void ngx_http_mpn_redis_settle_nils(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_redis_serve(ngx_http_mpn_redis_conn_t *rc);
static ngx_http_mpn_redis_cmd_t *ngx_http_mpn_redis_cmd(
    ngx_http_mpn_redis_conn_t *rc, int argc, const char **argv,
    const size_t *argvlen);
static ngx_int_t ngx_http_mpn_redis_write_cmd(ngx_http_mpn_redis_conn_t *rc,
    ngx_http_mpn_redis_cmd_t *cmd);
static void ngx_http_mpn_redis_read_handler(ngx_event_t *ev);
static void ngx_http_mpn_redis_write_handler(ngx_event_t *ev);
static void ngx_http_mpn_redis_dispatch(ngx_http_mpn_redis_conn_t *rc,
    redisReply *reply);
static void ngx_http_mpn_redis_lost(ngx_http_mpn_redis_conn_t *rc,
    const char *why, ngx_err_t err);
static void ngx_http_mpn_redis_close(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_redis_fail(ngx_http_mpn_redis_conn_t *rc,
    ngx_queue_t *cmds);
static void ngx_http_mpn_redis_schedule(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_redis_free_cmd(ngx_http_mpn_redis_conn_t *rc,
    ngx_http_mpn_redis_cmd_t *cmd);
static void ngx_http_mpn_redis_keepalive(ngx_http_mpn_redis_conn_t *rc,
    ngx_connection_t *c);


static ngx_http_mpn_redis_conn_t  ngx_http_mpn_redis_lookups;

static ngx_http_mpn_limit_t  ngx_http_mpn_redis_timeout_limit;

/* a confirmed "no record", handed on after the original reply was freed */
static redisReply            ngx_http_mpn_redis_nil;


/* a connection */

void
ngx_http_mpn_redis_conn_start(ngx_http_mpn_redis_conn_t *rc,
    ngx_cycle_t *cycle)
{
    rc->log = cycle->log;

    /*
     * ngx_event_connect_peer() logs a refused connect() on every attempt;
     * this connection logs its own failures, at most once a second
     */
    rc->quiet_log = *cycle->log;
    rc->quiet_log.log_level = NGX_LOG_CRIT;

    rc->peer.connection = NULL;
    rc->peer_name.data = rc->peer_name_data;
    rc->reader = NULL;
    rc->state = NGX_HTTP_MPN_REDIS_DOWN;
    rc->backoff = NGX_HTTP_MPN_BACKOFF_MIN;
    rc->was_ready = 0;
    rc->exiting = 0;

    ngx_queue_init(&rc->sent);
    ngx_queue_init(&rc->waiting);
    ngx_queue_init(&rc->nils);
    rc->probes = 0;

    ngx_http_mpn_redis_nil.type = REDIS_REPLY_NIL;

    /* the timers are cancelable: they never hold up a graceful exit */

    ngx_memzero(&rc->reconnect, sizeof(ngx_event_t));
    rc->reconnect.handler = ngx_http_mpn_redis_attempt;
    rc->reconnect.data = rc;
    rc->reconnect.log = cycle->log;
    rc->reconnect.cancelable = 1;

    ngx_memzero(&rc->connect_timer, sizeof(ngx_event_t));
    rc->connect_timer.handler = ngx_http_mpn_redis_connect_timeout;
    rc->connect_timer.data = rc;
    rc->connect_timer.log = cycle->log;
    rc->connect_timer.cancelable = 1;

    ngx_memzero(&rc->probe_timer, sizeof(ngx_event_t));
    rc->probe_timer.handler = ngx_http_mpn_redis_probe_handler;
    rc->probe_timer.data = rc;
    rc->probe_timer.log = cycle->log;
    rc->probe_timer.cancelable = 1;

    ngx_http_mpn_redis_attempt(&rc->reconnect);
}


void
ngx_http_mpn_redis_conn_close(ngx_http_mpn_redis_conn_t *rc)
{
    rc->exiting = 1;

    if (rc->reconnect.timer_set) {
        ngx_del_timer(&rc->reconnect);
    }

    /* the pending commands are answered with NULL, none carried over */
    ngx_http_mpn_redis_close(rc);

    ngx_free(rc->out_start);
    rc->out_start = NULL;
    rc->out_pos = NULL;
    rc->out_last = NULL;
    rc->out_end = NULL;
}


ngx_uint_t
ngx_http_mpn_redis_conn_ready(ngx_http_mpn_redis_conn_t *rc)
{
    return rc->state == NGX_HTTP_MPN_REDIS_READY;
}


ngx_uint_t
ngx_http_mpn_redis_conn_locating(ngx_http_mpn_redis_conn_t *rc)
{
    return rc->state == NGX_HTTP_MPN_REDIS_LOCATING;
}


void
ngx_http_mpn_redis_conn_retry_now(ngx_http_mpn_redis_conn_t *rc)
{
    if (rc->state != NGX_HTTP_MPN_REDIS_DOWN || !rc->reconnect.timer_set) {
        return;
    }

    ngx_del_timer(&rc->reconnect);
    rc->backoff = NGX_HTTP_MPN_BACKOFF_MIN;

    ngx_http_mpn_redis_attempt(&rc->reconnect);
}


static void
ngx_http_mpn_redis_attempt(ngx_event_t *ev)
{
    ngx_http_mpn_redis_conn_t  *rc = ev->data;

    if (rc->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    rc->state = NGX_HTTP_MPN_REDIS_LOCATING;

    ngx_add_timer(&rc->connect_timer, rc->conf->connect_timeout);

    /* calls ngx_http_mpn_redis_conn_connect() or _failed(), now or later */
    rc->locate(rc);
}


void
ngx_http_mpn_redis_conn_failed(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_redis_close(rc);
    ngx_http_mpn_redis_schedule(rc);
}


void
ngx_http_mpn_redis_conn_connect(ngx_http_mpn_redis_conn_t *rc,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *name)
{
    u_char             errstr[NGX_MAX_ERROR_STR], *p;
    ngx_int_t          n;
    ngx_err_t          err;
    ngx_connection_t  *c;

    ngx_memzero(&rc->peer, sizeof(ngx_peer_connection_t));

    rc->peer.sockaddr = sockaddr;
    rc->peer.socklen = socklen;
    rc->peer.name = name;
    rc->peer.get = ngx_event_get_peer;
    rc->peer.log = &rc->quiet_log;
    rc->peer.log_error = NGX_ERROR_ERR;
    rc->peer.tries = 1;

    n = ngx_event_connect_peer(&rc->peer);
    err = ngx_socket_errno;

    if (n == NGX_ERROR || n == NGX_BUSY || n == NGX_DECLINED) {
        p = ngx_strerror(err, errstr, sizeof(errstr));
        ngx_http_mpn_log_limited(&rc->connect_limit, rc->log,
                                 "mpn: redis %V: %sconnect failed: %*s",
                                 &rc->conf->addr_text, rc->role,
                                 (size_t) (p - errstr), errstr);
        rc->peer.connection = NULL;
        ngx_http_mpn_redis_conn_failed(rc);
        return;
    }

    c = rc->peer.connection;

    c->pool = ngx_create_pool(512, rc->log);
    if (c->pool == NULL) {
        ngx_http_mpn_redis_conn_failed(rc);
        return;
    }

    c->data = rc;
    c->read->handler = ngx_http_mpn_redis_connecting_handler;
    c->write->handler = ngx_http_mpn_redis_connecting_handler;

    rc->state = NGX_HTTP_MPN_REDIS_CONNECTING;

    if (n == NGX_OK) {
        /* a unix socket connects at once */
        ngx_http_mpn_redis_established(rc);
    }
}


static void
ngx_http_mpn_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_mpn_redis_conn_t  *rc = ev->data;

    if (rc->state == NGX_HTTP_MPN_REDIS_READY) {
        return;
    }

    if (rc->state == NGX_HTTP_MPN_REDIS_SETUP) {
        ngx_http_mpn_log_limited(&rc->connect_limit, rc->log,
                                 "mpn: redis %V: %sno reply to the set-up "
                                 "commands within %M ms",
                                 &rc->conf->addr_text, rc->role,
                                 rc->conf->connect_timeout
                                 + rc->conf->timeout);

    } else {
        ngx_http_mpn_log_limited(&rc->connect_limit, rc->log,
                                 "mpn: redis %V: %sconnect timed out after "
                                 "%M ms", &rc->conf->addr_text, rc->role,
                                 rc->conf->connect_timeout);
    }

    ngx_http_mpn_redis_conn_failed(rc);
}


static void
ngx_http_mpn_redis_connecting_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c = ev->data;
    ngx_http_mpn_redis_conn_t  *rc = c->data;

    if (rc->state == NGX_HTTP_MPN_REDIS_CONNECTING) {
        ngx_http_mpn_redis_established(rc);
    }
}


static void
ngx_http_mpn_redis_established(ngx_http_mpn_redis_conn_t *rc)
{
    int                err;
    u_char             errstr[NGX_MAX_ERROR_STR], *p;
    socklen_t          len;
    ngx_connection_t  *c;

    c = rc->peer.connection;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        p = ngx_strerror(err, errstr, sizeof(errstr));
        ngx_http_mpn_log_limited(&rc->connect_limit, rc->log,
                                 "mpn: redis %V: %sconnect failed: %*s",
                                 &rc->conf->addr_text, rc->role,
                                 (size_t) (p - errstr), errstr);
        ngx_http_mpn_redis_conn_failed(rc);
        return;
    }

    c->log = rc->log;
    c->read->log = rc->log;
    c->write->log = rc->log;

    ngx_http_mpn_redis_keepalive(rc, c);

#if (NGX_SSL)

    if (rc->conf->ssl != NULL) {
        ngx_http_mpn_redis_handshake(rc, c);
        return;
    }

#endif

    ngx_http_mpn_redis_setup(rc);
}


#if (NGX_SSL)

static void
ngx_http_mpn_redis_handshake(ngx_http_mpn_redis_conn_t *rc,
    ngx_connection_t *c)
{
    ngx_int_t  n;

    rc->state = NGX_HTTP_MPN_REDIS_HANDSHAKE;

    if (ngx_http_mpn_redis_tls_start(rc, c) != NGX_OK) {
        ngx_http_mpn_redis_conn_failed(rc);
        return;
    }

    n = ngx_ssl_handshake(c);

    if (n == NGX_AGAIN) {
        c->ssl->handler = ngx_http_mpn_redis_handshaked;
        return;
    }

    ngx_http_mpn_redis_handshaked(c);
}


/* the TLS handshake has ended, well or not */

static void
ngx_http_mpn_redis_handshaked(ngx_connection_t *c)
{
    ngx_http_mpn_redis_conn_t  *rc = c->data;

    if (!c->ssl->handshaked) {
        ngx_http_mpn_log_limited(&rc->connect_limit, rc->log,
                                 "mpn: redis %V: %sTLS handshake failed",
                                 &rc->conf->addr_text, rc->role);
        ngx_http_mpn_redis_conn_failed(rc);
        return;
    }

    /* the trust and name checks of proxy_ssl_verify */

    if (ngx_http_mpn_redis_tls_check(rc, c) != NGX_OK) {
        ngx_http_mpn_redis_conn_failed(rc);
        return;
    }

    ngx_http_mpn_redis_setup(rc);
}

#endif


/*
 * AUTH and SELECT go first; nothing else is sent until each has answered
 * OK, so no GET ever runs unauthenticated or in another database.
 */

static void
ngx_http_mpn_redis_setup(ngx_http_mpn_redis_conn_t *rc)
{
    int                         argc;
    size_t                      argvlen[3];
    u_char                      db[NGX_INT_T_LEN];
    ngx_connection_t           *c;
    const char                 *argv[3];
    ngx_http_mpn_redis_conf_t  *conf;

    c = rc->peer.connection;
    conf = rc->conf;

    rc->reader = redisReaderCreate();
    if (rc->reader == NULL) {
        ngx_http_mpn_redis_conn_failed(rc);
        return;
    }

    c->read->handler = ngx_http_mpn_redis_read_handler;
    c->write->handler = ngx_http_mpn_redis_write_handler;

    rc->state = NGX_HTTP_MPN_REDIS_SETUP;
    rc->setup = 0;

    /* the set-up replies get as long as a request waiting for them */
    ngx_add_timer(&rc->connect_timer, conf->connect_timeout + conf->timeout);

    if (conf->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (conf->user.len) {
            argv[argc] = (const char *) conf->user.data;
            argvlen[argc++] = conf->user.len;
        }

        argv[argc] = (const char *) conf->password.data;
        argvlen[argc++] = conf->password.len;

        if (ngx_http_mpn_redis_setup_cmd(rc, "AUTH", argc, argv, argvlen)
            != NGX_OK)
        {
            ngx_http_mpn_redis_conn_failed(rc);
            return;
        }
    }

    if (conf->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%i", conf->db) - db;

        if (ngx_http_mpn_redis_setup_cmd(rc, "SELECT", 2, argv, argvlen)
            != NGX_OK)
        {
            ngx_http_mpn_redis_conn_failed(rc);
            return;
        }
    }

    if (rc->expect_primary) {
        /* a primary demoted by a failover still answers: ask it */
        argv[0] = "ROLE";
        argvlen[0] = 4;

        if (ngx_http_mpn_redis_setup_cmd(rc, "ROLE", 1, argv, argvlen)
            != NGX_OK)
        {
            ngx_http_mpn_redis_conn_failed(rc);
            return;
        }
    }

    if (rc->setup == 0 && rc->probe != NULL) {
        /* no AUTH, no SELECT: the marker check goes first */

        if (ngx_http_mpn_redis_probe(rc) != NGX_OK) {
            ngx_http_mpn_redis_conn_failed(rc);
            return;
        }

        rc->setup++;
    }

    if (rc->setup == 0) {
        ngx_http_mpn_redis_serve(rc);
        return;
    }

    ngx_post_event(c->write, &ngx_posted_events);
}


/* a command of the setup: written first, its reply checked here */

static ngx_int_t
ngx_http_mpn_redis_setup_cmd(ngx_http_mpn_redis_conn_t *rc, const char *name,
    int argc, const char **argv, const size_t *argvlen)
{
    ngx_http_mpn_redis_cmd_t  *cmd;

    cmd = ngx_http_mpn_redis_cmd(rc, argc, argv, argvlen);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->setup = name;

    if (ngx_http_mpn_redis_write_cmd(rc, cmd) != NGX_OK) {
        ngx_http_mpn_redis_free_cmd(rc, cmd);
        return NGX_ERROR;
    }

    rc->setup++;

    return NGX_OK;
}


static void
ngx_http_mpn_redis_setup_reply(ngx_http_mpn_redis_conn_t *rc,
    ngx_http_mpn_redis_cmd_t *cmd, redisReply *reply)
{
    ngx_http_mpn_redis_conf_t  *conf = rc->conf;

    if (cmd->probe) {
        ngx_http_mpn_redis_probe_reply(rc, reply);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* the reply text is Redis's, never the password; e.g. a db= out of
         * range, or an ACL user without SELECT */

        if (conf->db && cmd->setup[0] == 'S') {
            ngx_http_mpn_log_limited(&rc->error_limit, rc->log,
                                     "mpn: redis %V: %sSELECT %i failed: "
                                     "%*s; nothing is read until it "
                                     "succeeds", &conf->addr_text, rc->role,
                                     conf->db,
                                     (size_t) ngx_min(reply->len, 200),
                                     reply->str);

        } else {
            ngx_http_mpn_log_limited(&rc->error_limit, rc->log,
                                     "mpn: redis %V: %s%s failed: %*s; "
                                     "nothing is read until it succeeds",
                                     &conf->addr_text, rc->role, cmd->setup,
                                     (size_t) ngx_min(reply->len, 200),
                                     reply->str);
        }

        /* unready: start over later */
        ngx_http_mpn_redis_conn_failed(rc);
        return;
    }

    if (cmd->setup[0] == 'R'
        && (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0
            || reply->element[0]->type != REDIS_REPLY_STRING
            || reply->element[0]->len != 6
            || ngx_strncmp(reply->element[0]->str, "master", 6) != 0))
    {
        ngx_http_mpn_log_limited(&rc->error_limit, rc->log,
                                 "mpn: redis %V: %s%V is no primary (ROLE), "
                                 "not used", &rc->conf->addr_text, rc->role,
                                 &rc->peer_name);

        ngx_http_mpn_redis_conn_failed(rc);
        return;
    }

    if (--rc->setup != 0) {
        return;
    }

    /* the marker is looked for only in the database selected */

    if (rc->probe != NULL) {
        if (ngx_http_mpn_redis_probe(rc) != NGX_OK) {
            ngx_http_mpn_redis_conn_failed(rc);
            return;
        }

        rc->setup++;
        ngx_post_event(rc->peer.connection->write, &ngx_posted_events);
        return;
    }

    ngx_http_mpn_redis_serve(rc);
}


/*
 * The dataset marker check: EXISTS on the connection, in line with the
 * lookups, when it is set up and then every second.  Only one at a time:
 * a slow server does not pile them up.
 */

static ngx_int_t
ngx_http_mpn_redis_probe(ngx_http_mpn_redis_conn_t *rc)
{
    size_t                     argvlen[2];
    const char                *argv[2];
    ngx_http_mpn_redis_cmd_t  *cmd;

    argv[0] = "EXISTS";
    argvlen[0] = 6;
    argv[1] = (const char *) rc->probe->data;
    argvlen[1] = rc->probe->len;

    cmd = ngx_http_mpn_redis_cmd(rc, 2, argv, argvlen);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->setup = "EXISTS";
    cmd->probe = 1;

    if (ngx_http_mpn_redis_write_cmd(rc, cmd) != NGX_OK) {
        ngx_http_mpn_redis_free_cmd(rc, cmd);
        return NGX_ERROR;
    }

    rc->probes++;
    rc->probe_seq = cmd->seq;

    return NGX_OK;
}


static void
ngx_http_mpn_redis_probe_handler(ngx_event_t *ev)
{
    ngx_http_mpn_redis_conn_t  *rc = ev->data;

    if (rc->state != NGX_HTTP_MPN_REDIS_READY
        && rc->state != NGX_HTTP_MPN_REDIS_UNREADY)
    {
        return;
    }

    if (rc->probes == 0) {
        if (ngx_http_mpn_redis_probe(rc) != NGX_OK) {
            ngx_http_mpn_redis_conn_drop(rc, "cannot check the marker");
            return;
        }

        ngx_post_event(rc->peer.connection->write, &ngx_posted_events);
    }

    ngx_add_timer(&rc->probe_timer, NGX_HTTP_MPN_PROBE_INTERVAL);
}


static void
ngx_http_mpn_redis_probe_reply(ngx_http_mpn_redis_conn_t *rc,
    redisReply *reply)
{
    ngx_http_mpn_redis_conf_t  *conf = rc->conf;

    rc->probes--;

    if (reply->type != REDIS_REPLY_INTEGER || reply->integer <= 0) {
        ngx_http_mpn_redis_unready(rc, reply);
        ngx_http_mpn_redis_settle_nils(rc);
        return;
    }

    switch (rc->state) {

    case NGX_HTTP_MPN_REDIS_SETUP:
        if (--rc->setup == 0) {
            ngx_http_mpn_redis_serve(rc);
        }

        break;

    case NGX_HTTP_MPN_REDIS_UNREADY:
        ngx_http_mpn_redis_serve(rc);
        break;

    default:
        break;
    }

    if (rc->unready_said && rc->state == NGX_HTTP_MPN_REDIS_READY) {
        rc->unready_said = 0;
        ngx_log_error(NGX_LOG_NOTICE, rc->log, 0,
                      "mpn: redis %V database %i: dataset marker \"%V\" "
                      "found, lookups are served again",
                      &conf->addr_text, conf->db, rc->probe);
    }

    /* every nil reply waiting was sent before this check */
    ngx_http_mpn_redis_settle_nils(rc);
}


/* nil replies: "no record" if the marker is there, else unavailable */

static void
ngx_http_mpn_redis_settle_nils(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_queue_t               *q;
    redisReply                *reply;
    ngx_http_mpn_redis_cmd_t  *cmd;

    reply = (rc->state == NGX_HTTP_MPN_REDIS_READY)
            ? &ngx_http_mpn_redis_nil : NULL;

    if (reply == NULL) {
        ngx_http_mpn_redis_fail(rc, &rc->nils);
        return;
    }

    while (!ngx_queue_empty(&rc->nils)) {
        q = ngx_queue_head(&rc->nils);
        cmd = ngx_queue_data(q, ngx_http_mpn_redis_cmd_t, queue);
        ngx_queue_remove(q);

        cmd->handler(cmd->data, reply);
        ngx_http_mpn_redis_free_cmd(rc, cmd);
    }
}


/*
 * The marker is missing, or the check got an error reply (NOPERM): the
 * connection stays open and checked every second, but serves nothing, and
 * a reply to a GET sent before is not used.
 */

static void
ngx_http_mpn_redis_unready(ngx_http_mpn_redis_conn_t *rc, redisReply *reply)
{
    u_char                      buf[512];
    ngx_str_t                   option, where;
    ngx_queue_t                 held;
    ngx_http_mpn_redis_seed_t  *seed;
    ngx_http_mpn_redis_conf_t  *conf = rc->conf;

    /* one line when it happens, then one a minute while it lasts */

    if (!rc->unready_said
        || ngx_time() - rc->unready_logged >= NGX_HTTP_MPN_UNREADY_LOG_EVERY)
    {
        rc->unready_said = 1;
        rc->unready_logged = ngx_time();

        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                          "mpn: redis %V database %i: the dataset marker "
                          "check (EXISTS \"%V\") failed: %*s; lookups fail "
                          "until it succeeds",
                          &conf->addr_text, conf->db, rc->probe,
                          (size_t) ngx_min(reply->len, 200), reply->str);

        } else {
            /* the command that writes it, for a marker= of its own too */
            ngx_str_null(&option);

            if (rc->probe->len != 8
                || ngx_strncmp(rc->probe->data, "mpn:meta", 8) != 0)
            {
                ngx_str_set(&option, " --marker ");
            }

            /* mpnctl finds the primary as the module does */

            where.data = buf;

            if (conf->sentinel.len) {
                seed = conf->seeds->elts;
                where.len = ngx_snprintf(buf, sizeof(buf),
                                         "--sentinel %V --redis %V",
                                         &conf->sentinel, &seed[0].text)
                            - buf;

            } else {
                where.len = ngx_snprintf(buf, sizeof(buf), "--redis %V",
                                         &conf->addr_text)
                            - buf;
            }

            ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                          "mpn: redis %V database %i: no dataset marker "
                          "\"%V\", so lookups fail until it exists: is "
                          "this the right server and database, or was its "
                          "data lost?  Once the records are there, write "
                          "the marker with \"mpnctl %V --db %i "
                          "init%V%V\"",
                          &conf->addr_text, conf->db, rc->probe,
                          &where, conf->db, &option,
                          option.len ? rc->probe : &option);
        }
    }

    if (rc->state == NGX_HTTP_MPN_REDIS_SETUP) {
        /* the connection itself is fine */
        rc->setup = 0;
        rc->backoff = NGX_HTTP_MPN_BACKOFF_MIN;

        if (rc->connect_timer.timer_set) {
            ngx_del_timer(&rc->connect_timer);
        }
    }

    rc->state = NGX_HTTP_MPN_REDIS_UNREADY;

    if (!rc->probe_timer.timer_set) {
        ngx_add_timer(&rc->probe_timer, NGX_HTTP_MPN_PROBE_INTERVAL);
    }

    /* what waited for this connection fails now */

    ngx_queue_init(&held);
    ngx_queue_add(&held, &rc->waiting);
    ngx_queue_init(&rc->waiting);

    ngx_http_mpn_redis_fail(rc, &held);
}


static void
ngx_http_mpn_redis_serve(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_queue_t                *q;
    ngx_queue_t                 late;
    ngx_http_mpn_redis_cmd_t   *cmd;

    rc->state = NGX_HTTP_MPN_REDIS_READY;
    rc->backoff = NGX_HTTP_MPN_BACKOFF_MIN;

    if (rc->probe != NULL && !rc->probe_timer.timer_set) {
        ngx_add_timer(&rc->probe_timer, NGX_HTTP_MPN_PROBE_INTERVAL);
    }

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    if (rc->was_ready && !rc->served) {
        ngx_log_error(NGX_LOG_NOTICE, rc->log, 0,
                      "mpn: redis %V: %sreconnected",
                      &rc->conf->addr_text, rc->role);

        if (rc->counted) {
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_RECONNECTS);
        }
    }

    rc->served = 1;

    /* what waited for this connection goes out in the order given */

    ngx_queue_init(&late);

    while (!ngx_queue_empty(&rc->waiting)) {
        q = ngx_queue_head(&rc->waiting);
        cmd = ngx_queue_data(q, ngx_http_mpn_redis_cmd_t, queue);
        ngx_queue_remove(q);

        if (cmd->retried
            && (ngx_msec_int_t) (cmd->deadline - ngx_current_msec) <= 0)
        {
            /* its time ran out while the connection was reopened */
            ngx_queue_insert_tail(&late, q);
            continue;
        }

        if (ngx_http_mpn_redis_write_cmd(rc, cmd) != NGX_OK) {
            ngx_queue_insert_tail(&late, q);
            continue;
        }

        if (cmd->retried && rc->counted) {
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_RETRIES);
        }
    }

    ngx_post_event(rc->peer.connection->write, &ngx_posted_events);

    if (rc->on_ready) {
        rc->on_ready(rc);
    }

    rc->was_ready = 1;

    ngx_http_mpn_redis_fail(rc, &late);
}


/* commands */

ngx_http_mpn_redis_cmd_t *
ngx_http_mpn_redis_send(ngx_http_mpn_redis_conn_t *rc, int argc,
    const char **argv, const size_t *argvlen, ngx_uint_t flags,
    ngx_http_mpn_reply_pt handler, void *data)
{
    ngx_msec_t                 wait;
    ngx_http_mpn_redis_cmd_t  *cmd;

    if (rc->state == NGX_HTTP_MPN_REDIS_DOWN
        || rc->state == NGX_HTTP_MPN_REDIS_UNREADY)
    {
        /* fail at once while the connection is down or has no marker */
        return NULL;
    }

    cmd = ngx_http_mpn_redis_cmd(rc, argc, argv, argvlen);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->flags = flags;

    /* the same allowance as the request waiting for it */

    wait = rc->conf->timeout;

    if (rc->state != NGX_HTTP_MPN_REDIS_READY) {
        wait += rc->conf->connect_timeout;
    }

    cmd->deadline = ngx_current_msec + wait;

    if (rc->state != NGX_HTTP_MPN_REDIS_READY) {
        ngx_queue_insert_tail(&rc->waiting, &cmd->queue);
        return cmd;
    }

    if (ngx_http_mpn_redis_write_cmd(rc, cmd) != NGX_OK) {
        ngx_http_mpn_redis_free_cmd(rc, cmd);
        return NULL;
    }

    /* written after this event: the commands of one turn go together */

    if (!rc->peer.connection->write->posted) {
        ngx_post_event(rc->peer.connection->write, &ngx_posted_events);
    }

    return cmd;
}


static ngx_http_mpn_redis_cmd_t *
ngx_http_mpn_redis_cmd(ngx_http_mpn_redis_conn_t *rc, int argc,
    const char **argv, const size_t *argvlen)
{
    int                        len;
    char                      *buf;
    ngx_http_mpn_redis_cmd_t  *cmd;

    len = redisFormatCommandArgv(&buf, argc, argv, argvlen);
    if (len < 0) {
        return NULL;
    }

    cmd = ngx_alloc(sizeof(ngx_http_mpn_redis_cmd_t), rc->log);
    if (cmd == NULL) {
        redisFreeCommand(buf);
        return NULL;
    }

    ngx_memzero(cmd, sizeof(ngx_http_mpn_redis_cmd_t));

    cmd->conn = rc;
    cmd->buf = buf;
    cmd->len = len;

    return cmd;
}


/* appends the command to the output buffer and to the commands sent */

static ngx_int_t
ngx_http_mpn_redis_write_cmd(ngx_http_mpn_redis_conn_t *rc,
    ngx_http_mpn_redis_cmd_t *cmd)
{
    size_t   size, used;
    u_char  *p;

    if ((size_t) (rc->out_end - rc->out_last) < cmd->len) {
        used = rc->out_last - rc->out_pos;

        if (rc->out_pos != rc->out_start) {
            ngx_memmove(rc->out_start, rc->out_pos, used);
            rc->out_pos = rc->out_start;
            rc->out_last = rc->out_start + used;
        }

        if ((size_t) (rc->out_end - rc->out_last) < cmd->len) {
            size = ngx_max(2 * (size_t) (rc->out_end - rc->out_start),
                           ngx_max(used + cmd->len, 4096));

            p = ngx_alloc(size, rc->log);
            if (p == NULL) {
                return NGX_ERROR;
            }

            if (used) {
                ngx_memcpy(p, rc->out_pos, used);
            }

            ngx_free(rc->out_start);

            rc->out_start = p;
            rc->out_pos = p;
            rc->out_last = p + used;
            rc->out_end = p + size;
        }
    }

    rc->out_last = ngx_cpymem(rc->out_last, cmd->buf, cmd->len);

    cmd->generation = rc->generation;
    cmd->seq = ++rc->seq;
    cmd->answered = rc->answered;
    cmd->sent_usec = ngx_http_mpn_usec();

    ngx_queue_insert_tail(&rc->sent, &cmd->queue);

    if (rc->counted && cmd->setup == NULL
        && !(cmd->flags & NGX_HTTP_MPN_REDIS_QUIET))
    {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_REQUESTS);
    }

    return NGX_OK;
}


static void
ngx_http_mpn_redis_free_cmd(ngx_http_mpn_redis_conn_t *rc,
    ngx_http_mpn_redis_cmd_t *cmd)
{
    redisFreeCommand(cmd->buf);
    ngx_free(cmd);
}


/*
 * seq is set when the command goes into the output buffer: until then it
 * waits in rc->waiting and can still be taken back without Redis ever
 * seeing it.
 */

ngx_int_t
ngx_http_mpn_redis_withdraw(ngx_http_mpn_redis_cmd_t *cmd)
{
    if (cmd->seq != 0) {
        return NGX_DECLINED;
    }

    ngx_queue_remove(&cmd->queue);

    cmd->handler(cmd->data, NULL);
    ngx_http_mpn_redis_free_cmd(cmd->conn, cmd);

    return NGX_OK;
}


void
ngx_http_mpn_redis_conn_drop(ngx_http_mpn_redis_conn_t *rc, const char *why)
{
    if (why != NULL) {
        ngx_http_mpn_log_limited(&rc->error_limit, rc->log,
                                 "mpn: redis %V: %sconnection dropped: %s",
                                 &rc->conf->addr_text, rc->role, why);
    }

    ngx_http_mpn_redis_close(rc);
    ngx_http_mpn_redis_schedule(rc);
}


/* I/O: c->recv and c->send are nginx's plain or TLS ones alike */

static void
ngx_http_mpn_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c = ev->data;
    ngx_http_mpn_redis_conn_t  *rc = c->data;

    void        *reply;
    ssize_t      n;
    ngx_uint_t   generation;
    redisReader *reader;
    u_char       buf[16384];

    if (c->close) {
        /* the worker is exiting (ngx_close_idle_connections) */
        c->close = 0;

        if (rc->on_exiting) {
            rc->on_exiting(rc);
            return;
        }
    }

    generation = rc->generation;
    reader = rc->reader;

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_http_mpn_redis_lost(rc, "closed by the server", 0);
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_mpn_redis_lost(rc, "read failed", ngx_socket_errno);
            return;
        }

        if (redisReaderFeed(reader, (const char *) buf, n) != REDIS_OK) {
            ngx_http_mpn_redis_lost(rc, "out of memory", 0);
            return;
        }

        for ( ;; ) {
            if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
                ngx_http_mpn_redis_lost(rc, reader->errstr, 0);
                return;
            }

            if (reply == NULL) {
                break;
            }

            ngx_http_mpn_redis_dispatch(rc, reply);

            if (rc->generation != generation) {
                /* a handler dropped the connection */
                return;
            }
        }
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_mpn_redis_lost(rc, "cannot wait for a reply", 0);
    }
}


static void
ngx_http_mpn_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c = ev->data;
    ngx_http_mpn_redis_conn_t  *rc = c->data;

    ssize_t  n;

    while (rc->out_pos < rc->out_last) {
        n = c->send(c, rc->out_pos, rc->out_last - rc->out_pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_mpn_redis_lost(rc, "write failed", ngx_socket_errno);
            return;
        }

        rc->out_pos += n;
    }

    if (rc->out_pos == rc->out_last) {
        rc->out_pos = rc->out_start;
        rc->out_last = rc->out_start;
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_http_mpn_redis_lost(rc, "cannot wait to write", 0);
    }
}


/* a reply belongs to the oldest command sent */

static void
ngx_http_mpn_redis_dispatch(ngx_http_mpn_redis_conn_t *rc, redisReply *reply)
{
    ngx_queue_t               *q;
    ngx_http_mpn_redis_cmd_t  *cmd;

    if (ngx_queue_empty(&rc->sent)) {
        freeReplyObject(reply);
        ngx_http_mpn_redis_lost(rc, "a reply to no command", 0);
        return;
    }

    q = ngx_queue_head(&rc->sent);
    cmd = ngx_queue_data(q, ngx_http_mpn_redis_cmd_t, queue);

    rc->answered = cmd->seq;

    if (cmd->setup != NULL) {
        ngx_queue_remove(q);
        ngx_http_mpn_redis_setup_reply(rc, cmd, reply);
        ngx_http_mpn_redis_free_cmd(rc, cmd);
        freeReplyObject(reply);
        return;
    }

    if (rc->counted && !(cmd->flags & NGX_HTTP_MPN_REDIS_QUIET)) {
        ngx_http_mpn_status_latency(ngx_http_mpn_usec() - cmd->sent_usec);

        if ((reply->type == REDIS_REPLY_ERROR
             && !(cmd->flags & NGX_HTTP_MPN_REDIS_ERROR_ANSWERS))
            || rc->state != NGX_HTTP_MPN_REDIS_READY)
        {
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
        }
    }

    if (rc->state != NGX_HTTP_MPN_REDIS_READY
        && !(cmd->flags & NGX_HTTP_MPN_REDIS_PUSH))
    {
        /* sent before a marker check that failed: not used */
        ngx_queue_remove(q);
        freeReplyObject(reply);

        cmd->handler(cmd->data, NULL);
        ngx_http_mpn_redis_free_cmd(rc, cmd);
        return;
    }

    if (reply->type == REDIS_REPLY_NIL
        && (cmd->flags & NGX_HTTP_MPN_REDIS_CONFIRM_NIL)
        && rc->probe != NULL)
    {
        /*
         * "No record" from a Redis that lost its data under a live
         * connection would make a paying partner a stranger: it waits
         * for a marker check sent after it
         */

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&rc->nils, q);
        freeReplyObject(reply);

        if (rc->probe_seq < cmd->seq) {
            if (ngx_http_mpn_redis_probe(rc) != NGX_OK) {
                ngx_http_mpn_redis_conn_drop(rc, "cannot check the marker");
                return;
            }

            ngx_post_event(rc->peer.connection->write, &ngx_posted_events);
        }

        return;
    }

    if (cmd->flags & NGX_HTTP_MPN_REDIS_PUSH) {
        /* stays first: every later reply is its */
        cmd->handler(cmd->data, reply);
        freeReplyObject(reply);
        return;
    }

    ngx_queue_remove(q);

    cmd->handler(cmd->data, reply);

    ngx_http_mpn_redis_free_cmd(rc, cmd);
    freeReplyObject(reply);
}


static void
ngx_http_mpn_redis_lost(ngx_http_mpn_redis_conn_t *rc, const char *why,
    ngx_err_t err)
{
    u_char   errstr[NGX_MAX_ERROR_STR], *p;

    p = errstr;

    if (err) {
        p = ngx_strerror(err, errstr, sizeof(errstr));
    }

    ngx_http_mpn_log_limited(&rc->error_limit, rc->log,
                             "mpn: redis %V: %sconnection lost: %s%s%*s",
                             &rc->conf->addr_text, rc->role, why,
                             err ? ": " : "", (size_t) (p - errstr), errstr);

    ngx_http_mpn_redis_close(rc);
    ngx_http_mpn_redis_schedule(rc);
}


/*
 * Closes the socket, if any, and settles every command: an idempotent one
 * whose time is not up waits for the next connection (once); the others
 * are answered with NULL, after on_close.
 */

static void
ngx_http_mpn_redis_close(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_uint_t                 was;
    ngx_pool_t                *pool;
    ngx_queue_t               *q, all, failed;
    ngx_connection_t          *c;
    ngx_http_mpn_redis_cmd_t  *cmd;

    c = rc->peer.connection;

    if (c != NULL) {
        rc->peer.connection = NULL;

#if (NGX_SSL)
        if (c->ssl) {
            c->ssl->no_wait_shutdown = 1;

            if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
                /* no room for close_notify: skip it */
                c->error = 1;
                (void) ngx_ssl_shutdown(c);
            }
        }
#endif

        pool = c->pool;
        ngx_close_connection(c);

        if (pool != NULL) {
            ngx_destroy_pool(pool);
        }
    }

    if (rc->reader != NULL) {
        redisReaderFree(rc->reader);
        rc->reader = NULL;
    }

    rc->out_pos = rc->out_start;
    rc->out_last = rc->out_start;

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    if (rc->probe_timer.timer_set) {
        ngx_del_timer(&rc->probe_timer);
    }

    rc->probes = 0;
    rc->served = 0;

    if (rc->state == NGX_HTTP_MPN_REDIS_LOCATING) {
        ngx_http_mpn_redis_locate_cancel(rc);
    }

    was = rc->state;
    rc->state = NGX_HTTP_MPN_REDIS_DOWN;
    rc->generation++;

    ngx_queue_init(&all);
    ngx_queue_init(&failed);

    ngx_queue_add(&all, &rc->nils);
    ngx_queue_add(&all, &rc->sent);
    ngx_queue_add(&all, &rc->waiting);
    ngx_queue_init(&rc->nils);
    ngx_queue_init(&rc->sent);
    ngx_queue_init(&rc->waiting);

    while (!ngx_queue_empty(&all)) {
        q = ngx_queue_head(&all);
        cmd = ngx_queue_data(q, ngx_http_mpn_redis_cmd_t, queue);
        ngx_queue_remove(q);

        if (cmd->setup != NULL) {
            ngx_http_mpn_redis_free_cmd(rc, cmd);
            continue;
        }

        if (!rc->exiting
            && (cmd->flags & NGX_HTTP_MPN_REDIS_RETRY)
            && !cmd->retried
            && (ngx_msec_int_t) (cmd->deadline - ngx_current_msec) > 0)
        {
            cmd->retried = 1;
            ngx_queue_insert_tail(&rc->waiting, q);
            continue;
        }

        ngx_queue_insert_tail(&failed, q);
    }

    if (was == NGX_HTTP_MPN_REDIS_READY && rc->on_close) {
        rc->on_close(rc);
    }

    ngx_http_mpn_redis_fail(rc, &failed);
}


/* answers each command of the queue with NULL: no reply will come */

static void
ngx_http_mpn_redis_fail(ngx_http_mpn_redis_conn_t *rc, ngx_queue_t *cmds)
{
    ngx_queue_t               *q;
    ngx_http_mpn_redis_cmd_t  *cmd;

    while (!ngx_queue_empty(cmds)) {
        q = ngx_queue_head(cmds);
        cmd = ngx_queue_data(q, ngx_http_mpn_redis_cmd_t, queue);
        ngx_queue_remove(q);

        if (rc->counted && !(cmd->flags & NGX_HTTP_MPN_REDIS_QUIET)) {
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
        }

        cmd->handler(cmd->data, NULL);
        ngx_http_mpn_redis_free_cmd(rc, cmd);
    }
}


static void
ngx_http_mpn_redis_schedule(ngx_http_mpn_redis_conn_t *rc)
{
    if (rc->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (!rc->reconnect.timer_set) {
        ngx_add_timer(&rc->reconnect, rc->backoff);
    }

    rc->backoff = ngx_min(rc->backoff * 2, NGX_HTTP_MPN_BACKOFF_MAX);
}


/*
 * A peer that vanished without a reset (a host gone, a dropped route) is
 * noticed within about 30 s even on a connection that only listens, like
 * the subscriber's.
 */

static void
ngx_http_mpn_redis_keepalive(ngx_http_mpn_redis_conn_t *rc,
    ngx_connection_t *c)
{
    int  on, idle, intvl, cnt;

    if (rc->peer.sockaddr->sa_family == AF_UNIX) {
        return;
    }

    on = 1;
    idle = NGX_HTTP_MPN_KEEPIDLE;
    intvl = NGX_HTTP_MPN_KEEPINTVL;
    cnt = NGX_HTTP_MPN_KEEPCNT;

    if (setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(int)) == -1
#ifdef TCP_KEEPIDLE
        || setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(int))
           == -1
        || setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(int))
           == -1
        || setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(int))
           == -1
#endif
        )
    {
        ngx_log_error(NGX_LOG_WARN, rc->log, ngx_socket_errno,
                      "mpn: redis %V: %scannot enable TCP keepalive",
                      &rc->conf->addr_text, rc->role);
    }
}


/* the lookup connection */

void
ngx_http_mpn_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_mpn_main_conf_t *mcf)
{
    ngx_http_mpn_redis_conn_t  *rc = &ngx_http_mpn_redis_lookups;

    ngx_memzero(rc, sizeof(ngx_http_mpn_redis_conn_t));

    if (mcf->redis->cluster) {
        /* a connection per node, opened on demand */
        rc->conf = mcf->redis;
        ngx_http_mpn_cluster_init_process(cycle, mcf->redis);
        return;
    }

    rc->conf = mcf->redis;
    rc->role = "";
    rc->locate = ngx_http_mpn_redis_locate;
    rc->probe = mcf->redis->marker.len ? &mcf->redis->marker : NULL;
    rc->counted = 1;

    if (mcf->redis->sentinel.len) {
        /* the primary as the Sentinels name it */
        ngx_http_mpn_sentinel_init_process(cycle, mcf->redis);
        ngx_http_mpn_sentinel_attach(rc, 0);
    }

    ngx_http_mpn_redis_conn_start(rc, cycle);
}


void
ngx_http_mpn_redis_exit_process(void)
{
    ngx_http_mpn_redis_conn_t  *rc = &ngx_http_mpn_redis_lookups;

    if (rc->conf != NULL && rc->conf->cluster) {
        ngx_http_mpn_cluster_exit_process();
        return;
    }

    ngx_http_mpn_redis_conn_close(rc);

    if (rc->conf != NULL && rc->conf->sentinel.len) {
        ngx_http_mpn_sentinel_exit_process();
    }
}


ngx_uint_t
ngx_http_mpn_redis_ready(void)
{
    ngx_http_mpn_redis_conn_t  *rc = &ngx_http_mpn_redis_lookups;

    if (rc->conf == NULL) {
        /* no mpn_redis (an mpn_status page alone) */
        return 0;
    }

    if (rc->conf->cluster) {
        return ngx_http_mpn_cluster_ready();
    }

    if (rc->conf->read_replica && ngx_http_mpn_sentinel_replica() != NULL) {
        return 1;
    }

    return ngx_http_mpn_redis_conn_ready(rc);
}


void *
ngx_http_mpn_redis_get(ngx_str_t *key, ngx_http_mpn_reply_pt handler,
    void *data)
{
    void                       *lookup;
    size_t                      argvlen[2];
    const char                 *argv[2];
    ngx_http_mpn_redis_cmd_t   *cmd;
    ngx_http_mpn_redis_conn_t  *rc, *replica;

    rc = &ngx_http_mpn_redis_lookups;

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = (const char *) key->data;
    argvlen[1] = key->len;

    if (rc->conf->cluster) {
        lookup = ngx_http_mpn_cluster_command(key, 2, argv, argvlen, 0,
                                              handler, data);

        if (lookup == NULL) {
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
        }

        return lookup;
    }

    if (rc->conf->read_replica) {
        /* the nearest replica that answers, else the primary */
        replica = ngx_http_mpn_sentinel_replica();

        if (replica != NULL) {
            rc = replica;
        }
    }

    /* GET is idempotent: it may be sent again after a loss */

    cmd = ngx_http_mpn_redis_send(rc, 2, argv, argvlen,
                                  NGX_HTTP_MPN_REDIS_RETRY
                                  |NGX_HTTP_MPN_REDIS_CONFIRM_NIL,
                                  handler, data);

    if (cmd == NULL) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
    }

    return cmd;
}


/* a request gave up waiting for a lookup (the handle of ..._get()) */

void
ngx_http_mpn_redis_lookup_timed_out(void *lookup)
{
    if (ngx_http_mpn_redis_lookups.conf->cluster) {
        ngx_http_mpn_cluster_timed_out(lookup);
        return;
    }

    ngx_http_mpn_redis_timed_out(lookup);
}


/*
 * A command about one key, on the connection that serves that key: the
 * worker's lookup connection, or in Cluster mode the primary of the key's
 * slot.  It is not sent again after a loss, as a write may not be
 * idempotent.  Returns a handle for ngx_http_mpn_redis_command_timed_out(),
 * or NULL.
 */

void *
ngx_http_mpn_redis_command(ngx_str_t *key, int argc, const char **argv,
    const size_t *argvlen, ngx_http_mpn_reply_pt handler, void *data)
{
    void  *cmd;

    if (ngx_http_mpn_redis_lookups.conf->cluster) {
        cmd = ngx_http_mpn_cluster_command(key, argc, argv, argvlen, 1,
                                           handler, data);

    } else {
        cmd = ngx_http_mpn_redis_send(&ngx_http_mpn_redis_lookups, argc,
                                      argv, argvlen,
                                      NGX_HTTP_MPN_REDIS_ERROR_ANSWERS,
                                      handler, data);
    }

    if (cmd == NULL) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_ERRORS);
    }

    return cmd;
}


/*
 * The request gave up.  A command still queued on a connection being
 * opened is taken back: sent once ready, a write (mpn_consume) would take
 * a unit for a request already answered.  One on its way follows the
 * lookups' rule: the handles are of the same kinds.
 */

void
ngx_http_mpn_redis_command_timed_out(void *handle)
{
    if (ngx_http_mpn_redis_command_withdraw(handle) == NGX_OK) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_TIMEOUTS);
        return;
    }

    ngx_http_mpn_redis_lookup_timed_out(handle);
}


ngx_int_t
ngx_http_mpn_redis_command_withdraw(void *handle)
{
    if (ngx_http_mpn_redis_lookups.conf->cluster) {
        return ngx_http_mpn_cluster_withdraw(handle);
    }

    return ngx_http_mpn_redis_withdraw(handle);
}


/*
 * A wait ran out.  When nothing at all has been answered on this
 * connection since that GET was sent, the connection is stalled (e.g. a
 * stopped server): drop it, which settles every pending lookup now and
 * reconnects with backoff, instead of letting lookups pile up on a dead
 * socket.  A server that is slow but still answering the GETs queued
 * before keeps its connection.
 */

void
ngx_http_mpn_redis_timed_out(ngx_http_mpn_redis_cmd_t *cmd)
{
    ngx_http_mpn_redis_conn_t  *rc = cmd->conn;

    ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_REDIS_TIMEOUTS);

    ngx_http_mpn_log_limited(&ngx_http_mpn_redis_timeout_limit, rc->log,
                             "mpn: redis %V: no reply within %M ms",
                             &rc->conf->addr_text, rc->conf->timeout);

    if (rc->state == NGX_HTTP_MPN_REDIS_READY
        && cmd->generation == rc->generation
        && cmd->seq != 0
        && rc->answered == cmd->answered)
    {
        ngx_http_mpn_redis_conn_drop(rc, NULL);
    }
}


void
ngx_http_mpn_redis_rtt_ping(ngx_http_mpn_redis_conn_t *rc,
    ngx_http_mpn_redis_rtt_t *rtt, ngx_http_mpn_reply_pt handler, void *data)
{
    size_t       len[1];
    const char  *argv[1];

    if (rtt->sent != 0 || !ngx_http_mpn_redis_conn_ready(rc)) {
        return;
    }

    argv[0] = "PING";
    len[0] = 4;

    /* set first: a send that fails at once may call the handler */
    rtt->sent = ngx_http_mpn_usec();

    if (ngx_http_mpn_redis_send(rc, 1, argv, len, NGX_HTTP_MPN_REDIS_QUIET,
                                handler, data)
        == NULL)
    {
        rtt->sent = 0;
    }
}


ngx_uint_t
ngx_http_mpn_redis_rtt_reply(ngx_http_mpn_redis_rtt_t *rtt, void *reply)
{
    uint64_t  t;

    if (reply == NULL || rtt->sent == 0) {
        rtt->sent = 0;
        return 0;
    }

    /* at least 1: 0 means "not measured" */
    t = ngx_http_mpn_usec() - rtt->sent;
    t = ngx_max(t, 1);

    rtt->sent = 0;
    rtt->rtt = rtt->rtt ? (rtt->rtt * 3 + t) / 4 : t;

    return 1;
}
