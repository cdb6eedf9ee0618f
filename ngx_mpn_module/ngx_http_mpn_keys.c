/*
 * Key sets fetched from the identity provider (mpn_token_keys_request).
 *
 * The fetch is a subrequest to a location the operator points at the
 * provider, so TLS, timeouts and the provider's address are ordinary
 * proxy_pass settings; the subrequest carries none of the client's
 * headers, whatever that location says.  The JWKS text lives in a shared
 * zone, one entry per URI, with a generation number that moves with it;
 * it survives reloads.  Each worker parses the text into its own keys
 * when the generation moves.
 *
 * One fetch at a time per key set on the node: the fetching worker's pid
 * in the entry is the lock, taken over when that worker is gone or after
 * NGX_HTTP_MPN_KEYS_LOCK_MAX.  Requests that need keys wait in their
 * worker's queue, woken by the end of a fetch in their own worker, else
 * by a timer that looks at the zone; a request that ends while it waits
 * (or while its fetch runs) leaves through a cleanup handler.
 */

#include "ngx_http_mpn_module.h"
#include "ngx_http_mpn_keys.h"
#include "ngx_http_mpn_status.h"


#define NGX_HTTP_MPN_KEYS_MAX       65536   /* bytes of a fetched JWKS */
#define NGX_HTTP_MPN_KEYS_EARLY     30      /* s between kid-led fetches */
#define NGX_HTTP_MPN_KEYS_RETRY     5       /* s after a failed fetch */
#define NGX_HTTP_MPN_KEYS_LOCK_MAX  180     /* s one fetch may hold the lock */
#define NGX_HTTP_MPN_KEYS_POLL      50      /* ms between looks at the zone */
#define NGX_HTTP_MPN_KEYS_ZONE      (1024 * 1024)
#define NGX_HTTP_MPN_KEYS_PER_SET   (160 * 1024)


/* one key set in the zone */

typedef struct {
    ngx_queue_t                queue;
    u_char                    *text;         /* the JWKS; NULL: none yet */
    size_t                     len;
    ngx_uint_t                 nkeys;
    ngx_uint_t                 generation;   /* moves with text */
    ngx_uint_t                 attempts;     /* fetches ended */
    time_t                     fetched;      /* when text came */
    time_t                     failed;       /* when a fetch last failed */
    time_t                     early;        /* the last kid-led fetch */
    ngx_pid_t                  owner;        /* fetching worker; 0: none */
    time_t                     locked;       /* since when */
    size_t                     name_len;
    u_char                     name[1];
} ngx_http_mpn_keys_node_t;


typedef struct {
    ngx_queue_t                sets;
} ngx_http_mpn_keys_sh_t;


typedef struct {
    ngx_http_mpn_keys_sh_t    *sh;
    ngx_slab_pool_t           *shpool;
} ngx_http_mpn_keys_zone_t;


/* a scope's file key set used together with a fetched one */

typedef struct {
    mpn_keyset_t              *file;
    mpn_keyset_t              *ks;           /* NULL: to be made */
} ngx_http_mpn_keys_join_t;


struct ngx_http_mpn_keys_src_s {
    ngx_str_t                  name;         /* as written: the zone key */
    ngx_str_t                  uri;
    ngx_str_t                  args;
    ngx_http_mpn_keys_zone_t  *zone;
    ngx_http_mpn_keys_node_t  *node;         /* found at first use */

    /* this worker's */
    mpn_keyset_t              *ks;           /* parsed node->text */
    ngx_uint_t                 generation;   /* of ks */
    ngx_array_t                joins;        /* of ngx_http_mpn_keys_join_t */
    ngx_queue_t                waiters;      /* of ngx_http_mpn_ctx_t */
    ngx_event_t                poll;
    ngx_http_request_t        *sr;           /* its fetch, NULL: none */
    ngx_http_request_t        *owner;        /* the fetch's main request */
    ngx_http_post_subrequest_t ps;
};


static ngx_int_t ngx_http_mpn_keys_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_mpn_keys_node_t *ngx_http_mpn_keys_node(
    ngx_http_mpn_keys_src_t *src);
static ngx_uint_t ngx_http_mpn_keys_stale_lock(ngx_http_mpn_keys_node_t *node,
    time_t now);
static void ngx_http_mpn_keys_sync(ngx_http_mpn_keys_src_t *src,
    ngx_log_t *log);
static void ngx_http_mpn_keys_replace(ngx_http_mpn_keys_src_t *src,
    mpn_keyset_t *ks, ngx_uint_t generation);
static mpn_keyset_t *ngx_http_mpn_keys_choose(ngx_http_mpn_keys_src_t *src,
    mpn_keyset_t *file);
static ngx_int_t ngx_http_mpn_keys_start(ngx_http_request_t *r,
    ngx_http_mpn_ctx_t *ctx, ngx_http_mpn_keys_src_t *src);
static ngx_int_t ngx_http_mpn_keys_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static ngx_uint_t ngx_http_mpn_keys_check(ngx_http_request_t *sr,
    ngx_http_mpn_keys_src_t *src, ngx_int_t rc, mpn_keyset_t **ks);
static void ngx_http_mpn_keys_publish(ngx_http_mpn_keys_src_t *src,
    ngx_uint_t result, ngx_str_t *text, mpn_keyset_t *ks, ngx_log_t *log);
static void ngx_http_mpn_keys_warn(void *data, const char *msg);
static ngx_int_t ngx_http_mpn_keys_wait(ngx_http_request_t *r,
    ngx_http_mpn_ctx_t *ctx, ngx_http_mpn_keys_src_t *src,
    ngx_uint_t attempts);
static void ngx_http_mpn_keys_poll(ngx_event_t *ev);
static void ngx_http_mpn_keys_wake_all(ngx_http_mpn_keys_src_t *src,
    ngx_uint_t ended);
static void ngx_http_mpn_keys_wake(ngx_http_mpn_ctx_t *ctx,
    ngx_uint_t ended);
static ngx_int_t ngx_http_mpn_keys_add_cleanup(ngx_http_request_t *r,
    ngx_http_mpn_ctx_t *ctx);
static void ngx_http_mpn_keys_cleanup(void *data);
static void ngx_http_mpn_keys_unavailable(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);


static ngx_str_t  ngx_http_mpn_keys_zone_name =
    ngx_string("ngx_http_mpn_keys");


/* mpn_token_keys_request URI */

char *
ngx_http_mpn_keys_request_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    u_char                    *q;
    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_mpn_keys_src_t  **srcp, *src;
    ngx_http_mpn_main_conf_t  *mcf;

    if (lcf->keys_src != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URI \"%V\" in \"mpn_token_keys_request\","
                           " it must start with \"/\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mpn_module);

    if (mcf->key_sources == NULL) {
        mcf->key_sources = ngx_array_create(cf->pool, 2,
                                            sizeof(ngx_http_mpn_keys_src_t *));
        if (mcf->key_sources == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    /* one key set per URI in the http block, however many scopes use it */

    srcp = mcf->key_sources->elts;

    for (i = 0; i < mcf->key_sources->nelts; i++) {
        if (srcp[i]->name.len == value[1].len
            && ngx_strncmp(srcp[i]->name.data, value[1].data, value[1].len)
               == 0)
        {
            lcf->keys_src = srcp[i];
            return NGX_CONF_OK;
        }
    }

    src = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpn_keys_src_t));
    if (src == NULL) {
        return NGX_CONF_ERROR;
    }

    src->name = value[1];
    src->uri = value[1];

    q = ngx_strlchr(value[1].data, value[1].data + value[1].len, '?');

    if (q != NULL) {
        src->uri.len = q - value[1].data;
        src->args.data = q + 1;
        src->args.len = value[1].data + value[1].len - (q + 1);
    }

    if (ngx_array_init(&src->joins, cf->pool, 1,
                       sizeof(ngx_http_mpn_keys_join_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_queue_init(&src->waiters);

    src->ps.handler = ngx_http_mpn_keys_done;
    src->ps.data = src;

    srcp = ngx_array_push(mcf->key_sources);
    if (srcp == NULL) {
        return NGX_CONF_ERROR;
    }

    *srcp = src;
    lcf->keys_src = src;

    return NGX_CONF_OK;
}


/* mpn_token_keys_cache TIME */

char *
ngx_http_mpn_keys_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    time_t      t;
    ngx_str_t  *value;

    if (lcf->keys_cache != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    t = ngx_parse_time(&value[1], 1);

    if (t == (time_t) NGX_ERROR || t == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"mpn_token_keys_cache\","
                           " it must be a time of at least 1s", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->keys_cache = t;

    return NGX_CONF_OK;
}


char *
ngx_http_mpn_keys_merge(ngx_conf_t *cf, ngx_http_mpn_loc_conf_t *prev,
    ngx_http_mpn_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->keys_src, prev->keys_src, NULL);
    ngx_conf_merge_sec_value(conf->keys_cache, prev->keys_cache, 3600);

    return NGX_CONF_OK;
}


/*
 * The zone is sized by the number of key sets, in steps of 1 MB, so that
 * a reload which adds a key set seldom changes the size (a zone of another
 * size is a new zone: the fetched sets would be fetched again).
 */

ngx_int_t
ngx_http_mpn_keys_add_zone(ngx_conf_t *cf, ngx_http_mpn_main_conf_t *mcf)
{
    size_t                     size;
    ngx_uint_t                 i;
    ngx_shm_zone_t            *shm_zone;
    ngx_http_mpn_keys_src_t  **srcp;
    ngx_http_mpn_keys_zone_t  *zone;

    if (mcf->key_sources == NULL) {
        return NGX_OK;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpn_keys_zone_t));
    if (zone == NULL) {
        return NGX_ERROR;
    }

    size = ngx_align(mcf->key_sources->nelts * NGX_HTTP_MPN_KEYS_PER_SET,
                     NGX_HTTP_MPN_KEYS_ZONE);

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_mpn_keys_zone_name, size,
                                     &ngx_http_mpn_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_mpn_keys_init_zone;
    shm_zone->data = zone;

    mcf->keys_zone = shm_zone;

    srcp = mcf->key_sources->elts;

    for (i = 0; i < mcf->key_sources->nelts; i++) {
        srcp[i]->zone = zone;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpn_keys_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mpn_keys_zone_t  *ozone = data;

    size_t                     len;
    ngx_http_mpn_keys_zone_t  *zone;

    zone = shm_zone->data;

    /* a reload: the fetched key sets go on */

    if (ozone != NULL) {
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_alloc(zone->shpool, sizeof(ngx_http_mpn_keys_sh_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_queue_init(&zone->sh->sets);

    len = sizeof(" in mpn key sets zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in mpn key sets zone \"%V\"%Z",
                &shm_zone->shm.name);

    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


/* the zone's entry for a key set, made at its first use on the node */

static ngx_http_mpn_keys_node_t *
ngx_http_mpn_keys_node(ngx_http_mpn_keys_src_t *src)
{
    ngx_queue_t               *q;
    ngx_slab_pool_t           *shpool;
    ngx_http_mpn_keys_node_t  *node;

    if (src->node != NULL) {
        return src->node;
    }

    if (src->zone == NULL || src->zone->sh == NULL) {
        return NULL;
    }

    shpool = src->zone->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&src->zone->sh->sets);
         q != ngx_queue_sentinel(&src->zone->sh->sets);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_mpn_keys_node_t, queue);

        if (node->name_len == src->name.len
            && ngx_strncmp(node->name, src->name.data, src->name.len) == 0)
        {
            goto found;
        }
    }

    node = ngx_slab_calloc_locked(shpool, sizeof(ngx_http_mpn_keys_node_t)
                                          + src->name.len);
    if (node == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NULL;
    }

    ngx_memcpy(node->name, src->name.data, src->name.len);
    node->name_len = src->name.len;

    ngx_queue_insert_tail(&src->zone->sh->sets, &node->queue);

found:

    ngx_shmtx_unlock(&shpool->mutex);

    src->node = node;

    return node;
}


ngx_int_t
ngx_http_mpn_keys_get(ngx_http_request_t *r, ngx_http_mpn_loc_conf_t *lcf,
    ngx_http_mpn_ctx_t *ctx, ngx_uint_t unknown_kid, mpn_keyset_t **ks)
{
    time_t                     now;
    ngx_uint_t                 have, early, need, busy, fetch, wait, attempts;
    ngx_slab_pool_t           *shpool;
    ngx_http_mpn_keys_src_t   *src;
    ngx_http_mpn_keys_node_t  *node;

    src = lcf->keys_src;

    node = ngx_http_mpn_keys_node(src);

    if (node == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "mpn: no room for key set \"%V\" in the key sets zone",
                      &src->name);
        goto choose;
    }

    now = ngx_time();
    shpool = src->zone->shpool;
    fetch = 0;
    wait = 0;

    ngx_shmtx_lock(&shpool->mutex);

    if (node->owner != 0 && ngx_http_mpn_keys_stale_lock(node, now)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "mpn: fetch of key set \"%V\" by process %P given up",
                      &src->name, node->owner);
        node->owner = 0;
    }

    busy = (node->owner != 0);
    have = (node->text != NULL);

    /* a kid no key names: the provider may have rotated its keys */
    early = unknown_kid && have && now >= node->early + NGX_HTTP_MPN_KEYS_EARLY;

    need = early
           || ((!have || now >= node->fetched + lcf->keys_cache)
               && now >= node->failed + NGX_HTTP_MPN_KEYS_RETRY);

    /* a request waits for at most one fetch */

    if (!ctx->keys_waited) {

        if (need && !busy) {
            node->owner = ngx_pid;
            node->locked = now;

            if (early) {
                node->early = now;
            }

            fetch = 1;
            busy = 1;
        }

        wait = busy && (!have || unknown_kid);
    }

    attempts = node->attempts;

    ngx_shmtx_unlock(&shpool->mutex);

    if (fetch && ngx_http_mpn_keys_start(r, ctx, src) != NGX_OK) {
        /* counted and logged as a failed fetch: on with what there is */
        ctx->keys_waited = 1;
        wait = 0;
    }

    if (wait) {
        return ngx_http_mpn_keys_wait(r, ctx, src, attempts);
    }

    ngx_http_mpn_keys_sync(src, r->connection->log);

choose:

    *ks = ngx_http_mpn_keys_choose(src, lcf->token_keys);

    if (*ks == NULL) {
        ngx_http_mpn_keys_unavailable(r, lcf, ctx);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* the fetching worker is gone, or its fetch has run far too long */

static ngx_uint_t
ngx_http_mpn_keys_stale_lock(ngx_http_mpn_keys_node_t *node, time_t now)
{
    if (now - node->locked >= NGX_HTTP_MPN_KEYS_LOCK_MAX) {
        return 1;
    }

    return node->owner != ngx_pid
           && kill(node->owner, 0) == -1 && ngx_errno == NGX_ESRCH;
}


/* another worker fetched: parse the new text into this worker's keys */

static void
ngx_http_mpn_keys_sync(ngx_http_mpn_keys_src_t *src, ngx_log_t *log)
{
    size_t                     len;
    u_char                    *text;
    ngx_uint_t                 generation;
    mpn_keyset_t              *ks;
    ngx_slab_pool_t           *shpool;
    ngx_http_mpn_keys_node_t  *node;
    char                       err[256];

    node = src->node;
    shpool = src->zone->shpool;
    text = NULL;
    len = 0;

    ngx_shmtx_lock(&shpool->mutex);

    generation = node->generation;

    if (generation != src->generation && node->text != NULL) {
        len = node->len;
        text = ngx_alloc(len, log);

        if (text != NULL) {
            ngx_memcpy(text, node->text, len);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (text == NULL) {
        return;
    }

    ks = mpn_keyset_load((char *) text, len, err, sizeof(err), NULL, NULL);

    ngx_free(text);

    /* loading checks every public key (some ms for an RSA one): the timers
     * set after it must not start from a time taken before it */
    ngx_time_update();

    if (ks == NULL) {
        /* it was checked by the fetching worker: only memory can fail */
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "mpn: key set \"%V\" cannot be loaded: %s",
                      &src->name, err);
        src->generation = generation;
        return;
    }

    ngx_http_mpn_keys_replace(src, ks, generation);
}


/* the joins borrow the old keys: they go first */

static void
ngx_http_mpn_keys_replace(ngx_http_mpn_keys_src_t *src, mpn_keyset_t *ks,
    ngx_uint_t generation)
{
    ngx_uint_t                 i;
    ngx_http_mpn_keys_join_t  *join;

    join = src->joins.elts;

    for (i = 0; i < src->joins.nelts; i++) {
        mpn_keyset_free(join[i].ks);
        join[i].ks = NULL;
    }

    mpn_keyset_free(src->ks);

    src->ks = ks;
    src->generation = generation;

    /* a token verified with a key that is gone must not pass again */
    ngx_http_mpn_token_cache_keys_changed();
}


/* the fetched set, the file set, or both as one */

static mpn_keyset_t *
ngx_http_mpn_keys_choose(ngx_http_mpn_keys_src_t *src, mpn_keyset_t *file)
{
    ngx_uint_t                 i;
    ngx_http_mpn_keys_join_t  *join;

    if (src->ks == NULL) {
        return file;
    }

    if (file == NULL) {
        return src->ks;
    }

    join = src->joins.elts;

    for (i = 0; i < src->joins.nelts; i++) {
        if (join[i].file == file) {
            break;
        }
    }

    if (i == src->joins.nelts) {
        join = ngx_array_push(&src->joins);
        if (join == NULL) {
            return file;
        }

        join->file = file;
        join->ks = NULL;

    } else {
        join = &join[i];
    }

    if (join->ks == NULL) {
        join->ks = mpn_keyset_join(file, src->ks);

        if (join->ks == NULL) {
            return file;
        }
    }

    return join->ks;
}


/*
 * A background subrequest, so that a request which does not need to wait
 * (the keys it has are only old) is not held back by it.  The lock is
 * this worker's already.
 */

static ngx_int_t
ngx_http_mpn_keys_start(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx,
    ngx_http_mpn_keys_src_t *src)
{
    ngx_str_t            *args;
    ngx_http_request_t   *sr;

    if (ngx_http_mpn_keys_add_cleanup(r, ctx) != NGX_OK) {
        goto failed;
    }

    args = src->args.len ? &src->args : NULL;

    if (ngx_http_subrequest(r, &src->uri, args, &sr, &src->ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        goto failed;
    }

    /* the partner's credentials never travel to the provider */

    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 1,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        goto failed;
    }

    sr->headers_in.content_length_n = -1;
    sr->headers_in.keep_alive_n = -1;
    sr->request_body = NULL;

    src->sr = sr;
    src->owner = r;
    ctx->keys_fetch = src;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "mpn: fetching key set \"%V\"", &src->name);

    return NGX_OK;

failed:

    ngx_http_mpn_keys_publish(src, NGX_HTTP_MPN_KEYS_ERROR, NULL, NULL,
                              r->connection->log);
    return NGX_ERROR;
}


static ngx_int_t
ngx_http_mpn_keys_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_mpn_keys_src_t *src = data;

    ngx_str_t      text;
    ngx_uint_t     result;
    mpn_keyset_t  *ks;

    if (src->sr != sr) {
        /* given up on already */
        return rc;
    }

    src->sr = NULL;
    src->owner = NULL;

    ks = NULL;
    result = ngx_http_mpn_keys_check(sr, src, rc, &ks);

    text.len = 0;
    text.data = NULL;

    if (result == NGX_HTTP_MPN_KEYS_OK) {
        text.data = sr->out->buf->pos;
        text.len = sr->out->buf->last - sr->out->buf->pos;
    }

    ngx_http_mpn_keys_publish(src, result, &text, ks, sr->connection->log);

    return rc;
}


static ngx_uint_t
ngx_http_mpn_keys_check(ngx_http_request_t *sr, ngx_http_mpn_keys_src_t *src,
    ngx_int_t rc, mpn_keyset_t **ks)
{
    size_t      len;
    ngx_buf_t  *b;
    char        err[256];

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "mpn: fetching key set \"%V\" failed, see the error "
                      "above (an answer longer than the location's "
                      "subrequest_output_buffer_size is one cause)",
                      &src->name);
        return NGX_HTTP_MPN_KEYS_ERROR;
    }

    if (rc != NGX_OK || sr->headers_out.status != NGX_HTTP_OK) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "mpn: fetching key set \"%V\" failed: status %i",
                      &src->name,
                      rc != NGX_OK ? rc : (ngx_int_t) sr->headers_out.status);
        return NGX_HTTP_MPN_KEYS_ERROR;
    }

    b = (sr->out != NULL) ? sr->out->buf : NULL;
    len = (b != NULL) ? (size_t) (b->last - b->pos) : 0;

    if (len > NGX_HTTP_MPN_KEYS_MAX) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "mpn: invalid key set \"%V\": %uz bytes, over the "
                      "%d byte limit", &src->name, len, NGX_HTTP_MPN_KEYS_MAX);
        return NGX_HTTP_MPN_KEYS_INVALID;
    }

    if (len == 0) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "mpn: invalid key set \"%V\": empty", &src->name);
        return NGX_HTTP_MPN_KEYS_INVALID;
    }

    *ks = mpn_keyset_load((char *) b->pos, len, err, sizeof(err),
                          ngx_http_mpn_keys_warn, src);

    ngx_time_update();

    if (*ks == NULL) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "mpn: invalid key set \"%V\": %s", &src->name, err);
        return NGX_HTTP_MPN_KEYS_INVALID;
    }

    return NGX_HTTP_MPN_KEYS_OK;
}


static void
ngx_http_mpn_keys_warn(void *data, const char *msg)
{
    ngx_http_mpn_keys_src_t *src = data;

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "mpn: key set \"%V\": %s", &src->name, msg);
}


/*
 * The end of a fetch: a good set replaces the text in the zone (a failed
 * or bad one keeps the old), the lock is let go, the waiters wake.
 */

static void
ngx_http_mpn_keys_publish(ngx_http_mpn_keys_src_t *src, ngx_uint_t result,
    ngx_str_t *text, mpn_keyset_t *ks, ngx_log_t *log)
{
    u_char                    *p;
    ngx_uint_t                 generation;
    ngx_slab_pool_t           *shpool;
    ngx_http_mpn_keys_node_t  *node;

    node = src->node;
    shpool = src->zone->shpool;
    generation = 0;

    ngx_shmtx_lock(&shpool->mutex);

    if (result == NGX_HTTP_MPN_KEYS_OK) {
        p = ngx_slab_alloc_locked(shpool, text->len);

        if (p == NULL) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "mpn: no room for key set \"%V\" (%uz bytes) in "
                          "the key sets zone", &src->name, text->len);
            result = NGX_HTTP_MPN_KEYS_ERROR;

        } else {
            ngx_memcpy(p, text->data, text->len);

            if (node->text != NULL) {
                ngx_slab_free_locked(shpool, node->text);
            }

            node->text = p;
            node->len = text->len;
            node->nkeys = mpn_keyset_count(ks);
            node->fetched = ngx_time();
            generation = ++node->generation;
        }
    }

    if (result != NGX_HTTP_MPN_KEYS_OK) {
        node->failed = ngx_time();
    }

    node->attempts++;

    if (node->owner == ngx_pid) {
        node->owner = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (result == NGX_HTTP_MPN_KEYS_OK) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "mpn: key set \"%V\" fetched: %uz keys",
                      &src->name, mpn_keyset_count(ks));

        /* this worker has parsed it already */
        ngx_http_mpn_keys_replace(src, ks, generation);

    } else {
        mpn_keyset_free(ks);
    }

    ngx_http_mpn_status_keys_fetch(result);

    ngx_http_mpn_keys_wake_all(src, 1);
}


static ngx_int_t
ngx_http_mpn_keys_wait(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx,
    ngx_http_mpn_keys_src_t *src, ngx_uint_t attempts)
{
    if (ngx_http_mpn_keys_add_cleanup(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->keys_wait = src;
    ctx->keys_attempts = attempts;
    ngx_queue_insert_tail(&src->waiters, &ctx->keys_queue);

    if (!src->poll.timer_set) {
        src->poll.handler = ngx_http_mpn_keys_poll;
        src->poll.data = src;
        src->poll.log = ngx_cycle->log;
        /* not cancelable: a worker that is shutting down still wakes its
         * waiting requests (the poll stops with the last of them) */
        ngx_add_timer(&src->poll, NGX_HTTP_MPN_KEYS_POLL);
    }

    /* notice a client that goes away while it waits */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


/*
 * While requests wait, a look at the zone now and then: a fetch that
 * ended (in any worker) wakes them; so does a lock let go without a fetch
 * ending (they may fetch themselves) or one held too long.
 */

static void
ngx_http_mpn_keys_poll(ngx_event_t *ev)
{
    ngx_http_mpn_keys_src_t *src = ev->data;

    ngx_uint_t                 attempts, owner, stale;
    ngx_queue_t               *q, *next;
    ngx_slab_pool_t           *shpool;
    ngx_http_mpn_ctx_t        *ctx;
    ngx_http_mpn_keys_node_t  *node;

    node = src->node;
    shpool = src->zone->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    attempts = node->attempts;
    owner = (node->owner != 0);
    stale = owner && ngx_http_mpn_keys_stale_lock(node, ngx_time());

    ngx_shmtx_unlock(&shpool->mutex);

    for (q = ngx_queue_head(&src->waiters);
         q != ngx_queue_sentinel(&src->waiters);
         q = next)
    {
        next = ngx_queue_next(q);
        ctx = ngx_queue_data(q, ngx_http_mpn_ctx_t, keys_queue);

        if (ctx->keys_attempts != attempts || stale) {
            ngx_http_mpn_keys_wake(ctx, 1);

        } else if (!owner) {
            ngx_http_mpn_keys_wake(ctx, 0);
        }
    }

    if (!ngx_queue_empty(&src->waiters)) {
        ngx_add_timer(&src->poll, NGX_HTTP_MPN_KEYS_POLL);
    }
}


static void
ngx_http_mpn_keys_wake_all(ngx_http_mpn_keys_src_t *src, ngx_uint_t ended)
{
    ngx_http_mpn_ctx_t  *ctx;

    while (!ngx_queue_empty(&src->waiters)) {
        ctx = ngx_queue_data(ngx_queue_head(&src->waiters),
                             ngx_http_mpn_ctx_t, keys_queue);
        ngx_http_mpn_keys_wake(ctx, ended);
    }

    if (src->poll.timer_set) {
        ngx_del_timer(&src->poll);
    }
}


/* ended: the fetch waited for is over, so the request waits no more */

static void
ngx_http_mpn_keys_wake(ngx_http_mpn_ctx_t *ctx, ngx_uint_t ended)
{
    ngx_http_request_t  *r = ctx->request;

    ngx_queue_remove(&ctx->keys_queue);
    ctx->keys_wait = NULL;
    ctx->keys_woken = 1;

    if (ended) {
        ctx->keys_waited = 1;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_post_event(r->connection->write, &ngx_posted_events);
}


static ngx_int_t
ngx_http_mpn_keys_add_cleanup(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx)
{
    ngx_http_cleanup_t  *cln;

    if (ctx->keys_cleanup) {
        return NGX_OK;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_mpn_keys_cleanup;
    cln->data = ctx;
    ctx->keys_cleanup = 1;

    return NGX_OK;
}


/*
 * The request ends: it leaves the queue; if its fetch is still running,
 * that fetch dies with it, so the lock is let go and the waiters of this
 * worker wake to fetch again.
 */

static void
ngx_http_mpn_keys_cleanup(void *data)
{
    ngx_http_mpn_ctx_t  *ctx = data;

    ngx_slab_pool_t          *shpool;
    ngx_http_mpn_keys_src_t  *src;

    if (ctx->keys_wait != NULL) {
        ngx_queue_remove(&ctx->keys_queue);
        ctx->keys_wait = NULL;
    }

    src = ctx->keys_fetch;

    if (src == NULL || src->owner != ctx->request) {
        return;
    }

    src->sr = NULL;
    src->owner = NULL;

    shpool = src->zone->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    if (src->node->owner == ngx_pid) {
        src->node->owner = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "mpn: fetch of key set \"%V\" abandoned with its request",
                  &src->name);

    ngx_http_mpn_keys_wake_all(src, 0);
}


static void
ngx_http_mpn_keys_unavailable(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx)
{
    u_char  *p;
    u_char   buf[NGX_MAX_ERROR_STR];

    /* the refusal line names the key set */

    p = ngx_slprintf(buf, buf + sizeof(buf), "no key set from \"%V\" yet",
                     &lcf->keys_src->name);

    (void) ngx_http_mpn_set_detail(r, ctx, buf, p - buf);

    if (lcf->fail == NGX_HTTP_MPN_FAIL_OPEN) {
        mpn_decision_set(&ctx->decision, MPN_ALLOW, MPN_R_FAIL_OPEN);

    } else {
        mpn_decision_set(&ctx->decision, MPN_ERROR, MPN_R_KEYS_UNAVAILABLE);
    }

    ctx->decided = 1;
}


ngx_uint_t
ngx_http_mpn_keys_usable(ngx_http_mpn_main_conf_t *mcf)
{
    ngx_uint_t                 i, n;
    ngx_slab_pool_t           *shpool;
    ngx_http_mpn_keys_src_t  **srcp;
    ngx_http_mpn_keys_node_t  *node;

    if (mcf->key_sources == NULL) {
        return 0;
    }

    n = 0;
    srcp = mcf->key_sources->elts;

    for (i = 0; i < mcf->key_sources->nelts; i++) {
        node = ngx_http_mpn_keys_node(srcp[i]);

        if (node == NULL) {
            continue;
        }

        shpool = srcp[i]->zone->shpool;

        ngx_shmtx_lock(&shpool->mutex);
        n += node->nkeys;
        ngx_shmtx_unlock(&shpool->mutex);
    }

    return n;
}
