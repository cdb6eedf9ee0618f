/*
 * mpn_cache: a shared-memory zone of parsed partner records.
 *
 * An entry holds the flat record blob (mpn_record.h) as parsed, so a hit
 * costs a copy and no JSON parse, or nothing at all for a partner without
 * a record.  Entries carry the time their GET was sent; an entry is fresh
 * for ttl (negative_ttl without a record) from then, unless it was read
 * before the last gap in the invalidation subscription or while an
 * invalidation went by.  Expired entries stay, to answer as STALE within
 * ttl + stale when Redis cannot (never with stale=0), until the LRU evicts
 * them.
 *
 * The zone keeps a description of its source (server, database, key
 * prefix).  A reload that reuses the zone with another source empties it
 * and bumps its generation; workers of the old configuration, still
 * finishing their requests, then neither read nor store entries.
 */

#include "ngx_http_mpn_cache.h"
#include "ngx_http_mpn_status.h"
#include "mpn_siphash.h"


/* buckets of the index: one per this many bytes of zone, a power of two */
#define NGX_HTTP_MPN_CACHE_BYTES_PER_BUCKET  512

/* recently used entries the eviction moves back to the head before it
 * takes the oldest anyway */
#define NGX_HTTP_MPN_CACHE_SECOND_CHANCES  16


/* evictions tried for one record before it is served without caching:
 * the zone mutex is never held for a walk of the whole LRU */
#define NGX_HTTP_MPN_CACHE_EVICT_MAX  8

/*
 * Admission: in a full zone a partner is cached from its second miss on.
 * The misses seen are bits in a filter (four bits per partner, 8 bits per
 * bucket of the index, 16384 at least), emptied after one partner per 8
 * bits, so "seen" means seen within about the last zone's worth of new
 * partners.  A partner asked for once then does not push out the
 * ones asked for again and again (the "doorkeeper" of TinyLFU); in a zone
 * with room everything is cached as it comes.
 */
#define NGX_HTTP_MPN_CACHE_SEEN_BITS_PER_BUCKET  8
#define NGX_HTTP_MPN_CACHE_SEEN_BITS_MIN         16384


/*
 * The entries are found through a hash index (a bucket array sized from
 * the zone, chains of nodes) under a keyed hash of the id, so a lookup
 * costs one bucket and the node found, whatever the number of partners,
 * and nobody can choose ids that share a chain.  The id, then the record,
 * follow the node in the same slab slot, so the id is compared in the
 * node's own cache line and the record is read on from there; only when
 * that would take a larger slot than a node slot and a data slot together
 * (the slab rounds to powers of two) does the data get a block of its own.
 *
 * A hit only marks its node as used; the eviction gives marked entries at
 * the tail of the LRU a second chance at the head (the CLOCK algorithm),
 * so a hit writes to no other entry and LRU order holds for eviction.
 */

typedef struct ngx_http_mpn_cache_node_s  ngx_http_mpn_cache_node_t;

struct ngx_http_mpn_cache_node_s {
    ngx_http_mpn_cache_node_t *next;         /* in its bucket */
    uint32_t                   hash;
    u_char                     negative;     /* the partner has no record */
    u_char                     expired;      /* invalidated while read */
    u_char                     id_len;
    u_char                     used;         /* hit since it was queued */
    uint32_t                   size;         /* of the record blob */
    ngx_queue_t                queue;
    ngx_msec_t                 read;         /* when its GET was sent */
    u_char                    *data;         /* the id, then the record */
};


/* the record follows the id, 8-byte aligned */
#define ngx_http_mpn_cache_record(cn)                                         \
    ((mpn_record_t *) ((cn)->data + ngx_align((cn)->id_len, 8)))


struct ngx_http_mpn_cache_sh_s {
    ngx_http_mpn_cache_node_t **buckets;
    ngx_uint_t                 mask;         /* buckets - 1 */
    mpn_siphash_key_t          key;
    ngx_queue_t                queue;        /* LRU: most recent first */
    ngx_uint_t                 entries;
    ngx_msec_t                 gap;          /* read before: expired */
    ngx_atomic_t               drops;        /* invalidations applied */
    ngx_atomic_t               counter;      /* pid counting invalidations */
    ngx_uint_t                 generation;   /* bumped when source changes */
    ngx_str_t                  source;       /* in the slab */
    ngx_uint_t                 cycles;       /* configurations loaded */
    ngx_pid_t                  subscribers[NGX_MAX_PROCESSES];
    ngx_uint_t                 sub_cycle[NGX_MAX_PROCESSES];
    u_char                    *seen;         /* the admission filter */
    ngx_uint_t                 seen_mask;    /* its bits - 1 */
    ngx_uint_t                 seen_count;   /* partners in it */
};


static ngx_int_t ngx_http_mpn_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static size_t ngx_http_mpn_cache_slot(size_t size);
static ngx_int_t ngx_http_mpn_cache_check_source(ngx_http_mpn_cache_t *cache);
static ngx_uint_t ngx_http_mpn_cache_others(ngx_http_mpn_cache_t *cache);
static uint64_t ngx_http_mpn_cache_hash(ngx_http_mpn_cache_t *cache,
    ngx_str_t *id);
static ngx_uint_t ngx_http_mpn_cache_admit(ngx_http_mpn_cache_t *cache,
    uint64_t hash);
static ngx_http_mpn_cache_node_t *ngx_http_mpn_cache_lookup(
    ngx_http_mpn_cache_t *cache, ngx_str_t *id, uint32_t hash);
static void ngx_http_mpn_cache_evict(ngx_http_mpn_cache_t *cache);
static void ngx_http_mpn_cache_delete(ngx_http_mpn_cache_t *cache,
    ngx_http_mpn_cache_node_t *cn);


/* mpn_cache zone=NAME:SIZE [ttl=T] [negative_ttl=T] [stale=T] */

char *
ngx_http_mpn_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpn_main_conf_t *mcf = conf;

    u_char                *p;
    ssize_t                size;
    ngx_str_t             *value, name, s;
    ngx_msec_t            *t;
    ngx_uint_t             i;
    ngx_shm_zone_t        *shm_zone;
    ngx_http_mpn_cache_t  *cache;

    if (mcf->cache != NULL) {
        return "is duplicate";
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpn_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    cache->ttl = 30000;
    cache->negative_ttl = 5000;
    cache->stale = 0;

    value = cf->args->elts;

    name.len = 0;
    size = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL || p == name.data) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone \"%V\" in \"mpn_cache\", "
                                   "expected zone=NAME:SIZE", &value[i]);
                return NGX_CONF_ERROR;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\" in "
                                   "\"mpn_cache\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small in "
                                   "\"mpn_cache\", the minimum is %uzk",
                                   &value[i], 8 * ngx_pagesize / 1024);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            t = &cache->ttl;

        } else if (ngx_strncmp(value[i].data, "negative_ttl=", 13) == 0) {
            s.data = value[i].data + 13;
            t = &cache->negative_ttl;

        } else if (ngx_strncmp(value[i].data, "stale=", 6) == 0) {
            s.data = value[i].data + 6;
            t = &cache->stale;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"mpn_cache\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        s.len = value[i].data + value[i].len - s.data;

        *t = ngx_parse_time(&s, 0);

        if (*t == (ngx_msec_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time \"%V\" in \"mpn_cache\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mpn_cache\" must have the \"zone\" parameter");
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_mpn_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" of \"mpn_cache\" is already in use",
                           &name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_mpn_cache_init_zone;
    shm_zone->data = cache;

    cache->shm_zone = shm_zone;
    cache->mcf = mcf;
    mcf->cache = cache;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_mpn_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mpn_cache_t  *ocache = data;

    size_t                 len;
    ngx_uint_t             n, bits;
    ngx_http_mpn_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        /* a reload: the entries stay, if they come from the same place */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;

        return ngx_http_mpn_cache_check_source(cache);
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;

        return ngx_http_mpn_cache_check_source(cache);
    }

    for (n = 64;
         n < shm_zone->shm.size / NGX_HTTP_MPN_CACHE_BYTES_PER_BUCKET;
         n <<= 1)
    {
        /* void */
    }

    bits = ngx_max(n * NGX_HTTP_MPN_CACHE_SEEN_BITS_PER_BUCKET,
                   NGX_HTTP_MPN_CACHE_SEEN_BITS_MIN);

    /* the filter follows the header: in the smallest zones it takes the
     * room the header's pages leave */
    cache->sh = ngx_slab_calloc(cache->shpool,
                                sizeof(ngx_http_mpn_cache_sh_t) + bits / 8);
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;
    cache->sh->seen = (u_char *) (cache->sh + 1);
    cache->sh->seen_mask = bits - 1;

    cache->sh->buckets = ngx_slab_calloc(cache->shpool,
                                     n * sizeof(ngx_http_mpn_cache_node_t *));
    if (cache->sh->buckets == NULL) {
        return NGX_ERROR;
    }

    cache->sh->mask = n - 1;

    if (mpn_siphash_key_init(&cache->sh->key) != 0) {
        return NGX_ERROR;
    }

    ngx_queue_init(&cache->sh->queue);

    len = sizeof(" in mpn_cache zone \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in mpn_cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is normal: the LRU makes room */
    cache->shpool->log_nomem = 0;

    return ngx_http_mpn_cache_check_source(cache);
}


/*
 * Empties the zone when its entries were read from another server,
 * database or key prefix (as limit_req refuses a reused zone whose key
 * changed): an entry from another dataset must never decide.
 */

static ngx_int_t
ngx_http_mpn_cache_check_source(ngx_http_mpn_cache_t *cache)
{
    size_t                      len;
    u_char                     *p, *text;
    ngx_uint_t                  flushed;
    ngx_queue_t                *q;
    ngx_slab_pool_t            *shpool = cache->shpool;
    ngx_http_mpn_cache_sh_t    *sh = cache->sh;
    ngx_http_mpn_redis_conf_t  *rc = cache->mcf->redis;

    if (rc == NULL) {
        /* refused by init_main_conf; never used */
        return NGX_OK;
    }

    /* the address as written: a name that moves stays the same source */

    len = rc->addr_text.len + sizeof(" db= prefix=") - 1 + NGX_INT_T_LEN
          + cache->mcf->key_prefix.len;

    text = ngx_alloc(len, ngx_cycle->log);
    if (text == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(text, rc->addr_text.data, rc->addr_text.len);
    p = ngx_sprintf(p, " db=%i prefix=%V", rc->db, &cache->mcf->key_prefix);
    len = p - text;

    ngx_shmtx_lock(&shpool->mutex);

    /* the workers of older configurations hand their subscriptions over
     * to this one's */
    cache->cycle = ++sh->cycles;

    if (sh->source.len == len
        && ngx_memcmp(sh->source.data, text, len) == 0)
    {
        cache->generation = sh->generation;
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_free(text);
        return NGX_OK;
    }

    flushed = sh->entries;

    while (!ngx_queue_empty(&sh->queue)) {
        q = ngx_queue_last(&sh->queue);
        ngx_http_mpn_cache_delete(cache,
                     ngx_queue_data(q, ngx_http_mpn_cache_node_t, queue));
    }

    if (sh->source.data != NULL) {
        ngx_slab_free_locked(shpool, sh->source.data);
    }

    sh->source.data = ngx_slab_alloc_locked(shpool, len);

    if (sh->source.data == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_free(text);
        return NGX_ERROR;
    }

    ngx_memcpy(sh->source.data, text, len);
    sh->source.len = len;

    /* the workers of the configuration before stop using the zone */
    cache->generation = ++sh->generation;

    ngx_shmtx_unlock(&shpool->mutex);

    if (sh->generation > 1) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "mpn_cache zone \"%V\": the records now come from "
                      "%*s, %ui entries read elsewhere were dropped",
                      &cache->shm_zone->shm.name, len, text, flushed);
    }

    ngx_free(text);

    return NGX_OK;
}


ngx_uint_t
ngx_http_mpn_cache_get(ngx_http_mpn_cache_t *cache, ngx_str_t *id,
    ngx_uint_t stale, ngx_pool_t *pool, mpn_record_t **rec,
    ngx_uint_t *result)
{
    uint32_t                    hash;
    ngx_msec_t                  ttl;
    ngx_uint_t                  status;
    ngx_msec_int_t              age;
    ngx_http_mpn_cache_node_t  *cn;

    hash = (uint32_t) ngx_http_mpn_cache_hash(cache, id);

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (cache->generation != cache->sh->generation) {
        /* a reload gave the zone another source */
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_HTTP_MPN_CACHE_MISS;
    }

    cn = ngx_http_mpn_cache_lookup(cache, id, hash);
    if (cn == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_HTTP_MPN_CACHE_MISS;
    }

    age = (ngx_msec_int_t) (ngx_current_msec - cn->read);
    ttl = cn->negative ? cache->negative_ttl : cache->ttl;

    if (age < (ngx_msec_int_t) ttl
        && !cn->expired
        && (ngx_msec_int_t) (cn->read - cache->sh->gap) > 0)
    {
        status = NGX_HTTP_MPN_CACHE_HIT;

    } else if (stale && cache->stale != 0
               && age < (ngx_msec_int_t) (ttl + cache->stale))
    {
        status = NGX_HTTP_MPN_CACHE_STALE;

    } else {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return stale ? NGX_HTTP_MPN_CACHE_MISS : NGX_HTTP_MPN_CACHE_EXPIRED;
    }

    if (!cn->used) {
        cn->used = 1;
    }

    if (cn->negative) {
        *result = NGX_HTTP_MPN_MISSING;
        *rec = NULL;

    } else {
        *result = NGX_HTTP_MPN_FOUND;
        *rec = ngx_palloc(pool, cn->size);

        if (*rec == NULL) {
            status = NGX_HTTP_MPN_CACHE_MISS;

        } else {
            ngx_memcpy(*rec, ngx_http_mpn_cache_record(cn), cn->size);
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return status;
}


ngx_msec_t
ngx_http_mpn_cache_epoch(ngx_http_mpn_cache_t *cache,
    ngx_atomic_uint_t *drops)
{
    *drops = cache->sh->drops;

    return ngx_current_msec;
}


void
ngx_http_mpn_cache_put(ngx_http_mpn_cache_t *cache, ngx_str_t *id,
    mpn_record_t *rec, ngx_msec_t read, ngx_atomic_uint_t drops)
{
    size_t                      size, need, node;
    u_char                     *data;
    uint32_t                    hash;
    uint64_t                    hash64;
    ngx_uint_t                  evicted, merged, admitted;
    ngx_http_mpn_cache_node_t  *cn, **b;

    static time_t               warned;

    size = rec ? rec->size : 0;
    hash64 = ngx_http_mpn_cache_hash(cache, id);
    hash = (uint32_t) hash64;

    node = sizeof(ngx_http_mpn_cache_node_t);
    need = ngx_align(id->len, 8) + size;
    merged = (ngx_http_mpn_cache_slot(node + need)
              <= ngx_http_mpn_cache_slot(node)
                 + ngx_http_mpn_cache_slot(need));

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (cache->generation != cache->sh->generation) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    cn = ngx_http_mpn_cache_lookup(cache, id, hash);

    /* an entry renewed was admitted before */
    admitted = (cn != NULL);

    if (cn != NULL) {
        ngx_http_mpn_cache_delete(cache, cn);
    }

    cn = NULL;
    data = NULL;
    evicted = 0;

    for ( ;; ) {
        if (cn == NULL) {
            cn = ngx_slab_alloc_locked(cache->shpool,
                                       merged ? node + need : node);
        }

        if (cn != NULL) {
            data = merged ? (u_char *) (cn + 1)
                          : ngx_slab_alloc_locked(cache->shpool, need);

            if (data != NULL) {
                break;
            }
        }

        if (!admitted) {
            admitted = 1;

            if (!ngx_http_mpn_cache_admit(cache, hash64)) {
                /* the zone is full and this partner new: not cached */
                if (cn != NULL) {
                    ngx_slab_free_locked(cache->shpool, cn);
                }

                ngx_shmtx_unlock(&cache->shpool->mutex);
                return;
            }
        }

        if (ngx_queue_empty(&cache->sh->queue)
            || evicted == NGX_HTTP_MPN_CACHE_EVICT_MAX)
        {
            /* no room after a few evictions: served, just not cached */
            if (cn != NULL) {
                ngx_slab_free_locked(cache->shpool, cn);
            }

            ngx_shmtx_unlock(&cache->shpool->mutex);

            if (warned != ngx_time()) {
                warned = ngx_time();
                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                              "mpn: record of partner \"%V\" (%uz bytes) "
                              "not cached: no room in mpn_cache zone \"%V\" "
                              "after %ui evictions",
                              id, size, &cache->shm_zone->shm.name, evicted);
            }

            return;
        }

        evicted++;

        ngx_http_mpn_cache_evict(cache);
    }

    cn->hash = hash;
    cn->negative = (rec == NULL);
    cn->expired = (drops != cache->sh->drops);
    cn->id_len = (u_char) id->len;
    cn->size = size;
    cn->read = read;
    cn->used = 0;
    cn->data = data;

    ngx_memcpy(data, id->data, id->len);

    if (rec != NULL) {
        ngx_memcpy(ngx_http_mpn_cache_record(cn), rec, size);
    }

    b = &cache->sh->buckets[hash & cache->sh->mask];
    cn->next = *b;
    *b = cn;

    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);

    cache->sh->entries++;

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


void
ngx_http_mpn_cache_drop(ngx_http_mpn_cache_t *cache, ngx_str_t *id)
{
    uint32_t                    hash;
    ngx_http_mpn_cache_node_t  *cn;

    hash = (uint32_t) ngx_http_mpn_cache_hash(cache, id);

    ngx_shmtx_lock(&cache->shpool->mutex);

    /* a GET in flight in any worker stores its reply as expired */
    cache->sh->drops++;

    cn = ngx_http_mpn_cache_lookup(cache, id, hash);

    if (cn != NULL) {
        ngx_http_mpn_cache_delete(cache, cn);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


void
ngx_http_mpn_cache_mark_gap(ngx_http_mpn_cache_t *cache)
{
    ngx_shmtx_lock(&cache->shpool->mutex);

    cache->sh->gap = ngx_current_msec;

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


ngx_uint_t
ngx_http_mpn_cache_subscribed(ngx_http_mpn_cache_t *cache, ngx_uint_t on,
    ngx_uint_t *died)
{
    ngx_pid_t   *pids, pid;
    ngx_uint_t   others;

    if (died != NULL) {
        *died = 0;
    }

    if (ngx_process_slot < 0 || ngx_process_slot >= NGX_MAX_PROCESSES) {
        return 0;
    }

    pids = cache->sh->subscribers;

    ngx_shmtx_lock(&cache->shpool->mutex);

    pid = pids[ngx_process_slot];

    if (on) {
        /* the worker this one replaces died while subscribed */
        if (died != NULL && pid != 0 && pid != ngx_pid) {
            *died = 1;
        }

        pids[ngx_process_slot] = ngx_pid;
        cache->sh->sub_cycle[ngx_process_slot] = cache->cycle;

    } else if (pid == ngx_pid) {
        pids[ngx_process_slot] = 0;
    }

    others = ngx_http_mpn_cache_others(cache);

    ngx_shmtx_unlock(&cache->shpool->mutex);

    if (!on) {
        /* another subscribed worker counts the messages from now on */
        (void) ngx_atomic_cmp_set(&cache->sh->counter, ngx_pid, 0);
    }

    return others;
}


/* the other workers subscribed now, under the zone mutex */

static ngx_uint_t
ngx_http_mpn_cache_others(ngx_http_mpn_cache_t *cache)
{
    ngx_int_t    i;
    ngx_pid_t   *pids;
    ngx_uint_t   n;

    n = 0;
    pids = cache->sh->subscribers;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        if (i != ngx_process_slot && pids[i] != 0
            && (kill(pids[i], 0) == 0 || ngx_errno == NGX_EPERM))
        {
            n++;
        }
    }

    return n;
}


ngx_int_t
ngx_http_mpn_cache_successor(ngx_http_mpn_cache_t *cache)
{
    ngx_int_t    i, rc;
    ngx_pid_t   *pids;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (cache->sh->cycles == cache->cycle) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    rc = NGX_AGAIN;
    pids = cache->sh->subscribers;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        if (pids[i] != 0 && cache->sh->sub_cycle[i] > cache->cycle
            && (kill(pids[i], 0) == 0 || ngx_errno == NGX_EPERM))
        {
            rc = NGX_OK;
            break;
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


/*
 * Every subscribed worker hears each message; one of them counts it, so
 * that mpn_invalidations_total adds one per message whichever workers are
 * subscribed.  That one gives the task up when it loses its subscription
 * or exits; one that died is replaced at the next message.
 */

ngx_uint_t
ngx_http_mpn_cache_counts(ngx_http_mpn_cache_t *cache)
{
    ngx_atomic_uint_t  pid;

    pid = cache->sh->counter;

    if (pid == (ngx_atomic_uint_t) ngx_pid) {
        return 1;
    }

    if (pid != 0
        && (kill((ngx_pid_t) pid, 0) == 0 || ngx_errno == NGX_EPERM))
    {
        return 0;
    }

    return ngx_atomic_cmp_set(&cache->sh->counter, pid, ngx_pid);
}


void
ngx_http_mpn_cache_usage(ngx_http_mpn_cache_t *cache, ngx_uint_t *entries,
    size_t *used, size_t *total)
{
    size_t            pages;
    ngx_slab_pool_t  *shpool = cache->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    pages = (shpool->end - shpool->start) / ngx_pagesize;

    *entries = cache->sh->entries;
    *used = (pages - shpool->pfree) * ngx_pagesize;
    *total = cache->shm_zone->shm.size;

    ngx_shmtx_unlock(&shpool->mutex);
}


/* the key is the zone's, so every worker finds what another stored */

static uint64_t
ngx_http_mpn_cache_hash(ngx_http_mpn_cache_t *cache, ngx_str_t *id)
{
    return mpn_siphash(&cache->sh->key, id->data, id->len);
}


/*
 * Under the zone mutex: 1 when the partner of this hash missed before in
 * the filter's window (its four bits are set), else it is added (0).  The
 * bits come mostly from the upper half of the hash, the index uses the
 * lower.
 */

static ngx_uint_t
ngx_http_mpn_cache_admit(ngx_http_mpn_cache_t *cache, uint64_t hash)
{
    u_char                   *seen;
    uint32_t                  h1, h2;
    ngx_uint_t                b[4], i, all;
    ngx_http_mpn_cache_sh_t  *sh;

    sh = cache->sh;
    seen = sh->seen;

    h1 = (uint32_t) (hash >> 32);
    h2 = (uint32_t) (hash >> 16) | 1;
    all = 1;

    for (i = 0; i < 4; i++) {
        b[i] = (h1 + i * h2) & sh->seen_mask;

        if (!(seen[b[i] >> 3] & (1 << (b[i] & 7)))) {
            all = 0;
        }
    }

    if (all) {
        return 1;
    }

    if (sh->seen_count
        == (sh->seen_mask + 1) / NGX_HTTP_MPN_CACHE_SEEN_BITS_PER_BUCKET)
    {
        /* a new window */
        ngx_memzero(seen, (sh->seen_mask + 1) / 8);
        sh->seen_count = 0;
    }

    for (i = 0; i < 4; i++) {
        seen[b[i] >> 3] |= (u_char) (1 << (b[i] & 7));
    }

    sh->seen_count++;

    return 0;
}


static ngx_http_mpn_cache_node_t *
ngx_http_mpn_cache_lookup(ngx_http_mpn_cache_t *cache, ngx_str_t *id,
    uint32_t hash)
{
    ngx_http_mpn_cache_node_t  *cn;

    for (cn = cache->sh->buckets[hash & cache->sh->mask];
         cn != NULL;
         cn = cn->next)
    {
        if (cn->hash == hash && cn->id_len == id->len
            && ngx_memcmp(cn->data, id->data, id->len) == 0)
        {
            return cn;
        }
    }

    return NULL;
}


/* the least recently used entry goes; the queue is not empty */

static void
ngx_http_mpn_cache_evict(ngx_http_mpn_cache_t *cache)
{
    ngx_uint_t                  i;
    ngx_queue_t                *q;
    ngx_http_mpn_cache_node_t  *cn;

    for (i = 0; /* void */; i++) {
        q = ngx_queue_last(&cache->sh->queue);
        cn = ngx_queue_data(q, ngx_http_mpn_cache_node_t, queue);

        if (!cn->used || i == NGX_HTTP_MPN_CACHE_SECOND_CHANCES) {
            break;
        }

        /* used since it was queued: its place is at the head */

        cn->used = 0;
        ngx_queue_remove(q);
        ngx_queue_insert_head(&cache->sh->queue, q);
    }

    ngx_http_mpn_cache_delete(cache, cn);

    ngx_http_mpn_stat(NGX_HTTP_MPN_STAT_CACHE_EVICTIONS);
}


static void
ngx_http_mpn_cache_delete(ngx_http_mpn_cache_t *cache,
    ngx_http_mpn_cache_node_t *cn)
{
    ngx_http_mpn_cache_node_t  **p;

    for (p = &cache->sh->buckets[cn->hash & cache->sh->mask];
         *p != cn;
         p = &(*p)->next)
    {
        /* void */
    }

    *p = cn->next;

    ngx_queue_remove(&cn->queue);

    if (cn->data != (u_char *) (cn + 1)) {
        ngx_slab_free_locked(cache->shpool, cn->data);
    }

    ngx_slab_free_locked(cache->shpool, cn);

    cache->sh->entries--;
}


/* what the slab allocator takes for size bytes: a power of two from 8 up
 * to half a page, whole pages above */

static size_t
ngx_http_mpn_cache_slot(size_t size)
{
    size_t  slot;

    if (size > ngx_pagesize / 2) {
        return ngx_align(size, ngx_pagesize);
    }

    for (slot = 8; slot < size; slot <<= 1) {
        /* void */
    }

    return slot;
}
