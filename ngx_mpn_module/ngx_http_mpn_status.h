/*
 * Counters of ngx_http_mpn_module in a shared-memory zone of their own: a
 * block per worker, summed when read, kept across reloads, served by
 * mpn_status as JSON or Prometheus text (spec section 8, docs/status.md).
 */

#ifndef NGX_HTTP_MPN_STATUS_H
#define NGX_HTTP_MPN_STATUS_H

#include "ngx_http_mpn_module.h"


enum {
    NGX_HTTP_MPN_STAT_CACHE_HITS = 0,
    NGX_HTTP_MPN_STAT_CACHE_MISSES,
    NGX_HTTP_MPN_STAT_CACHE_EXPIRED,
    NGX_HTTP_MPN_STAT_CACHE_STALE,
    NGX_HTTP_MPN_STAT_CACHE_EVICTIONS,
    NGX_HTTP_MPN_STAT_REDIS_REQUESTS,
    NGX_HTTP_MPN_STAT_REDIS_ERRORS,
    NGX_HTTP_MPN_STAT_REDIS_TIMEOUTS,
    NGX_HTTP_MPN_STAT_REDIS_RECONNECTS,
    NGX_HTTP_MPN_STAT_REDIS_RETRIES,
    NGX_HTTP_MPN_STAT_REDIS_FAILOVERS,
    NGX_HTTP_MPN_STAT_REDIS_MOVED,           /* redirects{kind="moved"} */
    NGX_HTTP_MPN_STAT_REDIS_ASK,             /* redirects{kind="ask"} */
    NGX_HTTP_MPN_STAT_INVALIDATIONS,
    NGX_HTTP_MPN_STAT_TOKEN_CACHE_HITS,
    NGX_HTTP_MPN_STAT_TOKEN_CACHE_MISSES,
    NGX_HTTP_MPN_STAT_ABORTED,
    NGX_HTTP_MPN_STAT_N
};


/* upper bounds of the latency histogram buckets, in microseconds */
#define NGX_HTTP_MPN_LATENCY_BUCKETS                                          \
    { 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,       \
      500000, 1000000 }
#define NGX_HTTP_MPN_NLATENCY  12


/* mpn_consumptions_total: per benefit an mpn_consume names (a slot each,
 * kept across reloads by name: ngx_http_mpn_status_slots()) */
#define NGX_HTTP_MPN_CONSUMED_MAX  16

enum {
    NGX_HTTP_MPN_CONSUMED_OK = 0,
    NGX_HTTP_MPN_CONSUMED_QUOTA,
    NGX_HTTP_MPN_CONSUMED_REPEAT,
    NGX_HTTP_MPN_CONSUMED_ERROR,
    NGX_HTTP_MPN_CONSUMED_N
};


typedef struct {
    size_t                     size;         /* of this struct: layout check */
    ngx_atomic_t               decisions[MPN_NDECISIONS][MPN_NREASONS];
    ngx_atomic_t               counters[NGX_HTTP_MPN_STAT_N];
    ngx_atomic_t               latency[NGX_HTTP_MPN_NLATENCY + 1];
    ngx_atomic_t               latency_sum;  /* microseconds */
    ngx_atomic_t               keys_fetches[3];  /* NGX_HTTP_MPN_KEYS_OK.. */
    ngx_atomic_t               consumed[NGX_HTTP_MPN_CONSUMED_MAX]
                                       [NGX_HTTP_MPN_CONSUMED_N];
} ngx_http_mpn_stats_t;


/*
 * This worker's own block of the zone (one per process slot, summed when
 * read); NULL outside workers.  Only its worker writes a block, so counting
 * is a plain add: no locked instruction, which would wait on every load
 * and store before it, on the request path.
 */
extern ngx_http_mpn_stats_t  *ngx_http_mpn_stats;


#define ngx_http_mpn_stat(n)                                                  \
    if (ngx_http_mpn_stats != NULL) {                                         \
        ngx_http_mpn_stats->counters[n]++;                                    \
    }


ngx_int_t ngx_http_mpn_status_add_zone(ngx_conf_t *cf,
    ngx_http_mpn_main_conf_t *mcf);
void ngx_http_mpn_status_init_process(ngx_http_mpn_main_conf_t *mcf);
void ngx_http_mpn_status_decision(ngx_uint_t decision, ngx_uint_t reason);
void ngx_http_mpn_status_latency(uint64_t usec);
void ngx_http_mpn_status_keys_fetch(ngx_uint_t result);
/* slot: mcf->consumed_slots[index]; result: NGX_HTTP_MPN_CONSUMED_* */
void ngx_http_mpn_status_consumption(ngx_uint_t slot, ngx_uint_t result);
uint64_t ngx_http_mpn_usec(void);

char *ngx_http_mpn_status_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

#endif /* NGX_HTTP_MPN_STATUS_H */
