/*
 * Getting a partner's record for a request.  Concurrent requests for the
 * same partner in one worker share one GET (a "fetch"); each request waits
 * with its own timer and can leave early (timeout, client gone) without
 * disturbing the others.  A fetch lives in malloc()ed memory until its
 * reply arrives, so a late reply never touches a freed request.
 *
 * With mpn_cache, the shared zone is asked first; a reply is stored there
 * before the waiters wake; a waiter whose fetch fails (no connection, lost
 * connection, its own timeout) falls back to an expired entry still inside
 * ttl + stale.
 */

#include <hiredis/hiredis.h>

#include "ngx_http_mpn_module.h"
#include "ngx_http_mpn_cache.h"
#include "ngx_http_mpn_status.h"


struct ngx_http_mpn_fetch_s {
    ngx_str_node_t             sn;           /* crc32 and id (id_data) */
    void                      *lookup;       /* the Redis layer's handle */
    ngx_queue_t                waiters;      /* of ngx_http_mpn_ctx_t */
    ngx_log_t                 *log;
    ngx_http_mpn_cache_t      *cache;        /* NULL: no mpn_cache */
    ngx_msec_t                 read;         /* cache epoch at send time */
    ngx_atomic_uint_t          drops;
    u_char                     id_data[MPN_ID_MAX];
    u_char                     why[160];     /* a bad record's diagnosis */
    size_t                     why_len;
};


static ngx_http_mpn_fetch_t *ngx_http_mpn_fetch_start(ngx_http_request_t *r,
    ngx_http_mpn_main_conf_t *mcf, ngx_str_t *id, uint32_t hash);
static void ngx_http_mpn_fetch_reply(void *data, void *reply);
static ngx_uint_t ngx_http_mpn_fetch_classify(ngx_http_mpn_fetch_t *f,
    redisReply *reply, ngx_log_t *log, mpn_record_t **rec);
static ngx_uint_t ngx_http_mpn_fetch_bad(ngx_http_mpn_fetch_t *f,
    ngx_log_t *log, const char *fmt, ...);
static void ngx_http_mpn_fetch_done(ngx_http_mpn_ctx_t *ctx,
    ngx_uint_t result, mpn_record_t *rec);
static void ngx_http_mpn_fetch_stale(ngx_http_mpn_ctx_t *ctx,
    ngx_http_mpn_cache_t *cache);
static void ngx_http_mpn_fetch_timeout(ngx_event_t *ev);
static void ngx_http_mpn_fetch_cleanup(void *data);


static ngx_rbtree_t          ngx_http_mpn_fetches;
static ngx_rbtree_node_t     ngx_http_mpn_fetches_sentinel;

static ngx_http_mpn_limit_t  ngx_http_mpn_down_limit;
static ngx_http_mpn_limit_t  ngx_http_mpn_bad_record_limit;
static ngx_http_mpn_limit_t  ngx_http_mpn_reply_error_limit;


/*
 * Returns NGX_OK when ctx->result is known now, NGX_AGAIN when the request
 * is woken later with ctx->fetched set, NGX_ERROR on allocation failure.
 */

ngx_int_t
ngx_http_mpn_fetch(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx,
    ngx_http_mpn_main_conf_t *mcf)
{
    uint32_t                   hash;
    ngx_http_cleanup_t        *cln;
    ngx_http_mpn_fetch_t      *f;

    if (ngx_http_mpn_fetches.root == NULL) {
        ngx_rbtree_init(&ngx_http_mpn_fetches,
                        &ngx_http_mpn_fetches_sentinel,
                        ngx_str_rbtree_insert_value);
    }

    if (mcf->cache != NULL) {
        ctx->cache_status = ngx_http_mpn_cache_get(mcf->cache,
                                                   &ctx->partner_id, 0,
                                                   r->pool, &ctx->record,
                                                   &ctx->result);

        switch (ctx->cache_status) {

        case NGX_HTTP_MPN_CACHE_HIT:
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_CACHE_HITS);
            return NGX_OK;

        case NGX_HTTP_MPN_CACHE_EXPIRED:
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_CACHE_EXPIRED);
            break;

        default:
            ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_CACHE_MISSES);
        }
    }

    hash = ngx_crc32_short(ctx->partner_id.data, ctx->partner_id.len);

    f = (ngx_http_mpn_fetch_t *) ngx_str_rbtree_lookup(&ngx_http_mpn_fetches,
                                                       &ctx->partner_id,
                                                       hash);

    if (f == NULL) {
        f = ngx_http_mpn_fetch_start(r, mcf, &ctx->partner_id, hash);

        if (f == NULL) {
            ngx_http_mpn_log_limited(&ngx_http_mpn_down_limit,
                                     r->connection->log,
                                     "mpn: redis %V is unavailable",
                                     &mcf->redis->addr_text);
            ctx->result = NGX_HTTP_MPN_UNAVAILABLE;
            ngx_http_mpn_fetch_stale(ctx, mcf->cache);
            return NGX_OK;
        }
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_mpn_fetch_cleanup;
    cln->data = ctx;

    ctx->fetch = f;
    ngx_queue_insert_tail(&f->waiters, &ctx->queue);

    ngx_http_mpn_wait(r, ctx, ngx_http_mpn_fetch_timeout);

    return NGX_AGAIN;
}


/*
 * The request waits for Redis (a lookup, a consumption): its own timer,
 * the timeout plus the connect time while the connection is still being
 * opened, and a client that goes away is noticed.
 */

void
ngx_http_mpn_wait(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx,
    ngx_event_handler_pt timeout)
{
    ngx_msec_t                 wait;
    ngx_http_mpn_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_mpn_module);

    wait = mcf->redis->timeout;

    if (!ngx_http_mpn_redis_ready()) {
        wait += mcf->redis->connect_timeout;
    }

    ctx->timer.handler = timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;
    ngx_add_timer(&ctx->timer, wait);

    r->read_event_handler = ngx_http_test_reading;
}


/* the wait is over: the request runs its phases again */

void
ngx_http_mpn_wake(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx)
{
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_post_event(r->connection->write, &ngx_posted_events);
}


static ngx_http_mpn_fetch_t *
ngx_http_mpn_fetch_start(ngx_http_request_t *r, ngx_http_mpn_main_conf_t *mcf,
    ngx_str_t *id, uint32_t hash)
{
    u_char                *p;
    ngx_str_t              key;
    ngx_http_mpn_fetch_t  *f;

    key.len = mcf->key_prefix.len + id->len;
    key.data = ngx_pnalloc(r->pool, key.len);
    if (key.data == NULL) {
        return NULL;
    }

    p = ngx_cpymem(key.data, mcf->key_prefix.data, mcf->key_prefix.len);
    ngx_memcpy(p, id->data, id->len);

    /* outlives the request: a reply can come after every waiter left */
    f = ngx_alloc(sizeof(ngx_http_mpn_fetch_t), ngx_cycle->log);
    if (f == NULL) {
        return NULL;
    }

    f->cache = mcf->cache;

    if (f->cache != NULL) {
        f->read = ngx_http_mpn_cache_epoch(f->cache, &f->drops);
    }

    f->lookup = ngx_http_mpn_redis_get(&key, ngx_http_mpn_fetch_reply, f);
    if (f->lookup == NULL) {
        ngx_free(f);
        return NULL;
    }

    ngx_memcpy(f->id_data, id->data, id->len);
    f->sn.str.data = f->id_data;
    f->sn.str.len = id->len;
    f->log = ngx_cycle->log;
    ngx_queue_init(&f->waiters);

    f->sn.node.key = hash;
    ngx_rbtree_insert(&ngx_http_mpn_fetches, &f->sn.node);

    return f;
}


static void
ngx_http_mpn_fetch_reply(void *data, void *reply)
{
    ngx_http_mpn_fetch_t  *f = data;

    ngx_log_t             *log;
    ngx_uint_t             result;
    ngx_queue_t           *q;
    mpn_record_t          *rec;
    ngx_http_mpn_ctx_t    *ctx;

    ngx_rbtree_delete(&ngx_http_mpn_fetches, &f->sn.node);

    /* a diagnosis goes to the log of a request that waits for it, with
     * that request, beside its refusal */

    log = f->log;

    if (!ngx_queue_empty(&f->waiters)) {
        ctx = ngx_queue_data(ngx_queue_head(&f->waiters), ngx_http_mpn_ctx_t,
                             queue);
        log = ctx->request->connection->log;
    }

    rec = NULL;
    f->why_len = 0;
    result = ngx_http_mpn_fetch_classify(f, reply, log, &rec);

    if (f->cache != NULL
        && (result == NGX_HTTP_MPN_FOUND || result == NGX_HTTP_MPN_MISSING))
    {
        ngx_http_mpn_cache_put(f->cache, &f->sn.str, rec, f->read,
                               f->drops);
    }

    while (!ngx_queue_empty(&f->waiters)) {
        q = ngx_queue_head(&f->waiters);
        ctx = ngx_queue_data(q, ngx_http_mpn_ctx_t, queue);

        if (f->why_len) {
            (void) ngx_http_mpn_set_detail(ctx->request, ctx, f->why,
                                           f->why_len);
        }

        ngx_http_mpn_fetch_done(ctx, result, rec);
    }

    free(rec);
    ngx_free(f);
}


static ngx_uint_t
ngx_http_mpn_fetch_classify(ngx_http_mpn_fetch_t *f, redisReply *reply,
    ngx_log_t *log, mpn_record_t **rec)
{
    char  err[128];

    if (reply == NULL) {
        /* the connection failed; the adapter has logged why */
        return NGX_HTTP_MPN_UNAVAILABLE;
    }

    switch (reply->type) {

    case REDIS_REPLY_NIL:
        return NGX_HTTP_MPN_MISSING;

    case REDIS_REPLY_STRING:

        if (reply->len > MPN_RECORD_MAX_JSON) {
            return ngx_http_mpn_fetch_bad(f, log, "%uz bytes, over the %d "
                                          "byte limit", (size_t) reply->len,
                                          MPN_RECORD_MAX_JSON);
        }

        *rec = mpn_record_parse(reply->str, reply->len,
                                (char *) f->sn.str.data, f->sn.str.len,
                                err, sizeof(err));

        if (*rec == NULL) {
            return ngx_http_mpn_fetch_bad(f, log, "%s", err);
        }

        return NGX_HTTP_MPN_FOUND;

    case REDIS_REPLY_ERROR:

        if (ngx_strncmp(reply->str, "WRONGTYPE", 9) == 0) {
            return ngx_http_mpn_fetch_bad(f, log, "the key is not a string");
        }

        ngx_http_mpn_log_limited(&ngx_http_mpn_reply_error_limit, log,
                                 "mpn: redis error for partner \"%V\": %*s",
                                 &f->sn.str, (size_t) ngx_min(reply->len, 200),
                                 reply->str);
        return NGX_HTTP_MPN_UNAVAILABLE;

    default:
        return ngx_http_mpn_fetch_bad(f, log, "unexpected reply type %d",
                                      reply->type);
    }
}


/* a bad record: the diagnosis is kept for each waiter's refusal line, and
 * logged at error at most once a second */

static ngx_uint_t
ngx_http_mpn_fetch_bad(ngx_http_mpn_fetch_t *f, ngx_log_t *log,
    const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    f->why_len = ngx_vslprintf(f->why, f->why + sizeof(f->why), fmt, args)
                 - f->why;
    va_end(args);

    ngx_http_mpn_log_limited(&ngx_http_mpn_bad_record_limit, log,
                             "mpn: bad record for partner \"%V\": %*s",
                             &f->sn.str, f->why_len, f->why);

    return NGX_HTTP_MPN_BAD_RECORD;
}


/* hands the result to one waiting request and wakes it up */

static void
ngx_http_mpn_fetch_done(ngx_http_mpn_ctx_t *ctx, ngx_uint_t result,
    mpn_record_t *rec)
{
    ngx_http_request_t  *r = ctx->request;

    ngx_http_mpn_main_conf_t  *mcf;

    ngx_queue_remove(&ctx->queue);
    ctx->fetch = NULL;

    if (rec != NULL) {
        ctx->record = ngx_palloc(r->pool, rec->size);

        if (ctx->record == NULL) {
            result = NGX_HTTP_MPN_UNAVAILABLE;

        } else {
            ngx_memcpy(ctx->record, rec, rec->size);
        }
    }

    ctx->result = result;
    ctx->fetched = 1;

    if (result == NGX_HTTP_MPN_UNAVAILABLE) {
        mcf = ngx_http_get_module_main_conf(r, ngx_http_mpn_module);
        ngx_http_mpn_fetch_stale(ctx, mcf->cache);
    }

    ngx_http_mpn_wake(r, ctx);
}


/* Redis cannot answer: an expired entry inside ttl + stale will do */

static void
ngx_http_mpn_fetch_stale(ngx_http_mpn_ctx_t *ctx, ngx_http_mpn_cache_t *cache)
{
    ngx_uint_t     status, result;
    mpn_record_t  *rec;

    if (cache == NULL) {
        return;
    }

    status = ngx_http_mpn_cache_get(cache, &ctx->partner_id, 1,
                                    ctx->request->pool, &rec, &result);

    if (status != NGX_HTTP_MPN_CACHE_STALE
        && status != NGX_HTTP_MPN_CACHE_HIT)
    {
        return;
    }

    ctx->record = rec;
    ctx->result = result;
    ctx->cache_status = status;

    if (status == NGX_HTTP_MPN_CACHE_STALE) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_CACHE_STALE);
    }
}


static void
ngx_http_mpn_fetch_timeout(ngx_event_t *ev)
{
    ngx_http_mpn_ctx_t  *ctx = ev->data;

    void  *lk;

    lk = ctx->fetch->lookup;

    ngx_http_mpn_fetch_done(ctx, NGX_HTTP_MPN_UNAVAILABLE, NULL);

    /* may end the fetch (and free it) by dropping a stalled connection */
    ngx_http_mpn_redis_lookup_timed_out(lk);
}


/* the request ends, possibly while it still waits */

static void
ngx_http_mpn_fetch_cleanup(void *data)
{
    ngx_http_mpn_ctx_t  *ctx = data;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    /* the client left (or the request was ended) before the decision */

    if (!ctx->decided) {
        ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_ABORTED);
    }

    if (ctx->fetch != NULL) {
        ngx_queue_remove(&ctx->queue);
        ctx->fetch = NULL;
    }
}
