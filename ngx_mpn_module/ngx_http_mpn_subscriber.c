/*
 * The invalidation subscriber: with mpn_cache, every worker keeps its own
 * connection SUBSCRIBEd to mpn_invalidate_channel, so the death of any one
 * worker leaves the others listening; each message is a partner id whose
 * entry is dropped from the shared zone (drops are idempotent).
 *
 * Invalidations are missed only while no worker listens: the zone records
 * which workers are subscribed, and when a loss leaves nobody listening the
 * zone's gap mark is set, at the loss and again once a worker is back;
 * everything read before it counts as expired (still usable as STALE).
 * One worker losing its subscription while another stays subscribed is no
 * gap.  A worker's first subscription marks no gap, so a reload keeps its
 * hits, unless it replaces a worker that died subscribed with nobody else
 * listening: at a reload, an old worker keeps listening until a worker of
 * the new configuration has subscribed (at most 2 s), so there is no
 * moment with nobody listening.  SUBSCRIBE is sent once AUTH and SELECT
 * succeeded.
 */

#include <hiredis/hiredis.h>

#include "ngx_http_mpn_redis.h"
#include "ngx_http_mpn_cluster.h"
#include "ngx_http_mpn_sentinel.h"
#include "ngx_http_mpn_cache.h"
#include "ngx_http_mpn_status.h"


/* how long an exiting worker listens on for a worker of the new
 * configuration to subscribe, and how often it looks */
#define NGX_HTTP_MPN_HANDOVER_MAX   2000
#define NGX_HTTP_MPN_HANDOVER_POLL  10


typedef struct {
    ngx_http_mpn_redis_conn_t  conn;
    ngx_http_mpn_cache_t      *cache;
    ngx_str_t                  channel;
    ngx_event_t                handover;     /* holds the exit meanwhile */
    ngx_msec_t                 exiting_since;
    unsigned                   started:1;
    unsigned                   subscribed:1;
    unsigned                   was_subscribed:1;
    unsigned                   exiting:1;
} ngx_http_mpn_subscriber_t;


static void ngx_http_mpn_subscriber_on_ready(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_subscriber_on_close(ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_subscriber_on_exiting(
    ngx_http_mpn_redis_conn_t *rc);
static void ngx_http_mpn_subscriber_handover(ngx_event_t *ev);
static void ngx_http_mpn_subscriber_reply(void *data, void *reply);
static void ngx_http_mpn_subscriber_subscribed(ngx_http_mpn_subscriber_t *s);
static void ngx_http_mpn_subscriber_message(ngx_http_mpn_subscriber_t *s,
    redisReply *payload);


static ngx_http_mpn_subscriber_t  ngx_http_mpn_subscriber;

static ngx_http_mpn_limit_t  ngx_http_mpn_bad_message_limit;


void
ngx_http_mpn_subscriber_init_process(ngx_cycle_t *cycle,
    ngx_http_mpn_main_conf_t *mcf)
{
    ngx_http_mpn_subscriber_t  *s = &ngx_http_mpn_subscriber;

    ngx_memzero(s, sizeof(ngx_http_mpn_subscriber_t));

    if (mcf->cache == NULL || mcf->redis == NULL) {
        return;
    }

    s->cache = mcf->cache;
    s->channel = mcf->channel;
    s->started = 1;

    s->conn.conf = mcf->redis;
    s->conn.role = "subscriber: ";
    /* in a cluster a PUBLISH reaches every node: listen on any one */
    s->conn.locate = mcf->redis->cluster ? ngx_http_mpn_cluster_locate_any
                                         : ngx_http_mpn_redis_locate;
    s->conn.on_ready = ngx_http_mpn_subscriber_on_ready;
    s->conn.on_close = ngx_http_mpn_subscriber_on_close;
    s->conn.on_exiting = ngx_http_mpn_subscriber_on_exiting;
    s->conn.data = s;

    /* not cancelable: the worker does not exit while it is set */
    s->handover.handler = ngx_http_mpn_subscriber_handover;
    s->handover.data = s;
    s->handover.log = cycle->log;

    if (mcf->redis->sentinel.len) {
        /* PUBLISH is replicated: with read=replica, a replica will do */
        ngx_http_mpn_sentinel_attach(&s->conn, 1);
    }

    ngx_http_mpn_redis_conn_start(&s->conn, cycle);
}


void
ngx_http_mpn_subscriber_exit_process(void)
{
    ngx_http_mpn_subscriber_t  *s = &ngx_http_mpn_subscriber;

    if (!s->started) {
        return;
    }

    if (s->handover.timer_set) {
        ngx_del_timer(&s->handover);
    }

    /* a clean exit: no gap, the other workers keep listening */
    s->subscribed = 0;

    ngx_http_mpn_redis_conn_close(&s->conn);

    (void) ngx_http_mpn_cache_subscribed(s->cache, 0, NULL);
}


static void
ngx_http_mpn_subscriber_on_ready(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_subscriber_t  *s = rc->data;

    size_t       argvlen[2];
    const char  *argv[2];

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    argv[1] = (const char *) s->channel.data;
    argvlen[1] = s->channel.len;

    /* the confirmation, then every message, come to the one command */

    if (ngx_http_mpn_redis_send(rc, 2, argv, argvlen, NGX_HTTP_MPN_REDIS_PUSH,
                                ngx_http_mpn_subscriber_reply, s)
        == NULL)
    {
        ngx_http_mpn_redis_conn_drop(rc, "cannot send SUBSCRIBE");
    }
}


/*
 * The worker is exiting.  When a reload started it, the workers of the new
 * configuration are subscribing now: listen on until one of them has, so
 * that no invalidation goes by while nobody listens.
 */

static void
ngx_http_mpn_subscriber_on_exiting(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_subscriber_t  *s = rc->data;

    if (s->exiting) {
        /* told again (worker_shutdown_timeout): stop now */
        ngx_http_mpn_subscriber_exit_process();
        return;
    }

    s->exiting = 1;
    s->exiting_since = ngx_current_msec;

    ngx_http_mpn_subscriber_handover(&s->handover);
}


static void
ngx_http_mpn_subscriber_handover(ngx_event_t *ev)
{
    ngx_http_mpn_subscriber_t  *s = ev->data;

    ngx_int_t   rc;
    ngx_uint_t  others, listening;

    rc = ngx_http_mpn_cache_successor(s->cache);
    listening = s->subscribed;

    if (rc == NGX_AGAIN && listening
        && ngx_current_msec - s->exiting_since < NGX_HTTP_MPN_HANDOVER_MAX)
    {
        ngx_add_timer(&s->handover, NGX_HTTP_MPN_HANDOVER_POLL);
        return;
    }

    ngx_http_mpn_subscriber_exit_process();

    if (rc != NGX_AGAIN || !listening) {
        return;
    }

    others = ngx_http_mpn_cache_subscribed(s->cache, 0, NULL);

    if (others == 0) {
        ngx_http_mpn_cache_mark_gap(s->cache);
    }

    ngx_log_error(NGX_LOG_WARN, s->conn.log, 0,
                  "mpn: redis %V: subscriber: no worker of the new "
                  "configuration subscribed to \"%V\" within %M ms%s",
                  &s->conn.conf->addr_text, &s->channel,
                  (ngx_msec_t) NGX_HTTP_MPN_HANDOVER_MAX,
                  others ? "" : ", cached entries count as expired");
}


static void
ngx_http_mpn_subscriber_on_close(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_http_mpn_subscriber_t  *s = rc->data;

    ngx_uint_t  others;

    if (!s->subscribed) {
        return;
    }

    s->subscribed = 0;

    others = ngx_http_mpn_cache_subscribed(s->cache, 0, NULL);

    if (others) {
        ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                      "mpn: redis %V: subscriber: lost channel \"%V\", "
                      "%ui other worker%s still listening",
                      &rc->conf->addr_text, &s->channel, others,
                      others == 1 ? " is" : "s are");
        return;
    }

    ngx_http_mpn_cache_mark_gap(s->cache);

    ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                  "mpn: redis %V: subscriber: lost channel \"%V\", "
                  "nobody listens: cached entries count as expired",
                  &rc->conf->addr_text, &s->channel);
}


/* the SUBSCRIBE confirmation, then every message on the channel */

static void
ngx_http_mpn_subscriber_reply(void *data, void *reply)
{
    ngx_http_mpn_subscriber_t  *s = data;
    redisReply                 *rr = reply;

    redisReply  *kind;

    if (rr == NULL) {
        /* the connection is going away: on_close has run */
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_http_mpn_log_limited(&s->conn.error_limit, s->conn.log,
                                 "mpn: redis %V: subscriber: SUBSCRIBE "
                                 "failed: %*s", &s->conn.conf->addr_text,
                                 (size_t) ngx_min(rr->len, 200), rr->str);
        ngx_http_mpn_redis_conn_drop(&s->conn, NULL);
        return;
    }

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements < 3
        || rr->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    kind = rr->element[0];

    if (kind->len == 7 && ngx_strncmp(kind->str, "message", 7) == 0) {
        ngx_http_mpn_subscriber_message(s, rr->element[2]);
        return;
    }

    if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0) {
        ngx_http_mpn_subscriber_subscribed(s);
    }
}


static void
ngx_http_mpn_subscriber_subscribed(ngx_http_mpn_subscriber_t *s)
{
    ngx_uint_t  first, others, died;

    if (s->subscribed) {
        return;
    }

    first = !s->was_subscribed;

    s->subscribed = 1;
    s->was_subscribed = 1;

    /* be told when the worker exits (ngx_close_idle_connections) */
    if (s->conn.peer.connection != NULL) {
        s->conn.peer.connection->idle = 1;
    }

    others = ngx_http_mpn_cache_subscribed(s->cache, 1, &died);

    if (others == 0 && died) {
        ngx_log_error(NGX_LOG_WARN, s->conn.log, 0,
                      "mpn: redis %V: subscriber: a worker died while "
                      "nobody else listened on \"%V\", cached entries "
                      "count as expired",
                      &s->conn.conf->addr_text, &s->channel);
    }

    if (others == 0 && (died || !first)) {
        /* what was read while nobody listened is suspect too */
        ngx_http_mpn_cache_mark_gap(s->cache);
    }

    ngx_log_error(NGX_LOG_INFO, s->conn.log, 0,
                  "mpn: redis %V: subscriber: listening on \"%V\"",
                  &s->conn.conf->addr_text, &s->channel);
}


static void
ngx_http_mpn_subscriber_message(ngx_http_mpn_subscriber_t *s,
    redisReply *payload)
{
    ngx_str_t  id;

    if (payload->type != REDIS_REPLY_STRING
        || !mpn_partner_id_valid(payload->str, payload->len))
    {
        ngx_http_mpn_log_limited(&ngx_http_mpn_bad_message_limit,
                                 s->conn.log,
                                 "mpn: ignored a message on \"%V\" that is "
                                 "not a partner id", &s->channel);
        return;
    }

    id.data = (u_char *) payload->str;
    id.len = payload->len;

    ngx_http_mpn_cache_drop(s->cache, &id);

    /* every subscribed worker hears every message: one of them counts it,
     * whichever is subscribed */

    if (ngx_http_mpn_cache_counts(s->cache)) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_INVALIDATIONS);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, s->conn.log, 0,
                   "mpn: invalidated partner \"%V\"", &id);
}
