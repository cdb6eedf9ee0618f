/*
 * mpn_status: the module's counters, kept in a shared-memory zone of their
 * own (created whenever the http block configures mpn_redis or mpn_status,
 * with or without mpn_cache), a block per process slot that only its
 * worker adds to, summed when read, reused across reloads.  The location answers JSON, or the
 * Prometheus text exposition format with ?format=prometheus.
 */

#include "ngx_http_mpn_status.h"
#include "ngx_http_mpn_cache.h"
#include "ngx_http_mpn_keys.h"


#define NGX_HTTP_MPN_STATUS_JSON        0
#define NGX_HTTP_MPN_STATUS_PROMETHEUS  1


typedef struct {
    ngx_uint_t                 decision;
    ngx_uint_t                 reason;
} ngx_http_mpn_outcome_t;


typedef struct {
    const char                *json;         /* key in the JSON document */
    const char                *name;         /* Prometheus metric name */
    const char                *help;
} ngx_http_mpn_metric_t;


static ngx_int_t ngx_http_mpn_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_mpn_status_slots(ngx_http_mpn_stats_t *st,
    ngx_http_mpn_main_conf_t *mcf, ngx_http_mpn_main_conf_t *old);
static ngx_int_t ngx_http_mpn_status_handler(ngx_http_request_t *r);
static void ngx_http_mpn_status_snapshot(ngx_http_mpn_stats_t *st);
static u_char *ngx_http_mpn_status_json(u_char *p,
    ngx_http_mpn_stats_t *st, ngx_uint_t *gauges);
static u_char *ngx_http_mpn_status_prometheus(u_char *p,
    ngx_http_mpn_stats_t *st, ngx_uint_t *gauges);
static u_char *ngx_http_mpn_status_consumptions(u_char *p,
    ngx_http_mpn_stats_t *st, ngx_http_mpn_main_conf_t *mcf,
    ngx_uint_t kind);
static ngx_uint_t ngx_http_mpn_status_shown(ngx_http_mpn_stats_t *st,
    ngx_uint_t d, ngx_uint_t r);
static u_char *ngx_http_mpn_status_keys(u_char *p, ngx_http_mpn_stats_t *st,
    ngx_uint_t keys, ngx_uint_t kind);


ngx_http_mpn_stats_t  *ngx_http_mpn_stats;

/* every worker's block, by process slot, for the reader */
static ngx_http_mpn_stats_t  *ngx_http_mpn_stats_blocks;


static ngx_str_t  ngx_http_mpn_status_zone_name =
    ngx_string("ngx_http_mpn_status");

static const uint64_t  ngx_http_mpn_latency_bounds[NGX_HTTP_MPN_NLATENCY] =
    NGX_HTTP_MPN_LATENCY_BUCKETS;

static const char  *ngx_http_mpn_latency_le[NGX_HTTP_MPN_NLATENCY + 1] = {
    "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05", "0.1", "0.25", "0.5", "1", "+Inf"
};


/* the outcomes the decision can reach: always shown, zeros included */

static ngx_http_mpn_outcome_t  ngx_http_mpn_outcomes[] = {
    { MPN_ALLOW, MPN_R_OK },
    { MPN_ALLOW, MPN_R_GRACE },
    { MPN_ALLOW, MPN_R_FAIL_OPEN },
    { MPN_SIGNIN, MPN_R_NO_TOKEN },
    { MPN_SIGNIN, MPN_R_NO_IDENTITY },
    { MPN_SIGNIN, MPN_R_BAD_IDENTITY },
    { MPN_SIGNIN, MPN_R_BAD_TOKEN },
    { MPN_SIGNIN, MPN_R_TOKEN_EXPIRED },
    { MPN_UPGRADE, MPN_R_NOT_MEMBER },
    { MPN_UPGRADE, MPN_R_TIER },
    { MPN_UPGRADE, MPN_R_BENEFIT },
    { MPN_UPGRADE, MPN_R_COMPETENCY },
    { MPN_UPGRADE, MPN_R_CANCELLED },
    { MPN_RENEW, MPN_R_LAPSED },
    { MPN_UPGRADE, MPN_R_QUOTA },
    { MPN_DENY, MPN_R_SUSPENDED },
    { MPN_DENY, MPN_R_BAD_AMOUNT },
    { MPN_ERROR, MPN_R_REDIS_UNAVAILABLE },
    { MPN_ERROR, MPN_R_BAD_RECORD },
    { MPN_ERROR, MPN_R_KEYS_UNAVAILABLE }
};


/* in NGX_HTTP_MPN_STAT_* order */

static ngx_http_mpn_metric_t  ngx_http_mpn_counters[] = {
    { "hits", "mpn_cache_hits_total",
      "Lookups answered by a fresh cache entry." },
    { "misses", "mpn_cache_misses_total",
      "Lookups that found no cache entry." },
    { "expired", "mpn_cache_expired_total",
      "Lookups that found an expired cache entry and refetched it." },
    { "stale", "mpn_cache_stale_total",
      "Requests answered from an expired entry because Redis could not." },
    { "evictions", "mpn_cache_evictions_total",
      "Entries evicted, least recently used first, to make room." },
    { "requests", "mpn_redis_requests_total",
      "GET commands (and FCALL mpn_consume) sent to Redis." },
    { "errors", "mpn_redis_errors_total",
      "Lookups that got no record: no connection, connection lost, "
      "or an error reply." },
    { "timeouts", "mpn_redis_timeouts_total",
      "Requests whose wait for a Redis reply ran out." },
    { "reconnects", "mpn_redis_reconnects_total",
      "Lookup connections to Redis re-established after a loss." },
    { "retries", "mpn_redis_retries_total",
      "GETs sent once more on a new connection after the one they were "
      "sent on was lost." },
    { "failovers", "mpn_redis_failovers_total",
      "Primaries replaced by a replica, as Sentinel announced or the "
      "Cluster slot map showed." },
    { "moved", "mpn_redis_redirects_total",
      "Cluster redirects followed, by kind (MOVED, ASK)." },
    { "ask", "mpn_redis_redirects_total",
      "Cluster redirects followed, by kind (MOVED, ASK)." },
    { "invalidations", "mpn_invalidations_total",
      "Invalidation messages received on the channel." },
    { "hits", "mpn_token_cache_hits_total",
      "Tokens found among those a worker verified before." },
    { "misses", "mpn_token_cache_misses_total",
      "Tokens not found there, so verified." },
    { "aborted", "mpn_aborted_total",
      "Gated requests whose client left before the decision." }
};


static const char  *ngx_http_mpn_consumed_results[NGX_HTTP_MPN_CONSUMED_N] = {
    "ok", "quota", "repeat", "error"
};


#define NGX_HTTP_MPN_GAUGE_ENTRIES  0
#define NGX_HTTP_MPN_GAUGE_USED     1
#define NGX_HTTP_MPN_GAUGE_TOTAL    2

static ngx_http_mpn_metric_t  ngx_http_mpn_gauges[] = {
    { "entries", "mpn_cache_entries",
      "Entries in the cache zone." },
    { "used_bytes", "mpn_cache_used_bytes",
      "Bytes of the cache zone in use (slab pages)." },
    { "size_bytes", "mpn_cache_size_bytes",
      "Size of the cache zone in bytes." }
};


ngx_int_t
ngx_http_mpn_status_add_zone(ngx_conf_t *cf, ngx_http_mpn_main_conf_t *mcf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_mpn_status_zone_name,
                                     NGX_MAX_PROCESSES
                                     * sizeof(ngx_http_mpn_stats_t)
                                     + 8 * ngx_pagesize,
                                     &ngx_http_mpn_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_mpn_status_init_zone;
    shm_zone->data = mcf;

    mcf->status_zone = shm_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpn_status_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t       *shpool;
    ngx_http_mpn_stats_t  *st;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    /* a reload (or a restarted master on Windows): the counters go on */

    if (data != NULL || shm_zone->shm.exists) {
        st = shpool->data;

        if (st != NULL && st->size == sizeof(ngx_http_mpn_stats_t)) {
            ngx_http_mpn_status_slots(st, shm_zone->data, data);
            return NGX_OK;
        }
    }

    /* the first block's size checks the layout of them all */

    st = ngx_slab_calloc(shpool,
                         NGX_MAX_PROCESSES * sizeof(ngx_http_mpn_stats_t));
    if (st == NULL) {
        return NGX_ERROR;
    }

    st->size = sizeof(ngx_http_mpn_stats_t);
    shpool->data = st;

    ngx_http_mpn_status_slots(st, shm_zone->data, NULL);

    return NGX_OK;
}


/*
 * Each benefit an mpn_consume names gets a slot of counters: after a
 * reload, the slot it had in the configuration before (`old`, the
 * previous cycle's, alive while this one is set up), else one that no
 * benefit of this configuration keeps, emptied first.  So counts follow
 * benefits by name, and only a benefit dropped by the reload loses them.
 */

static void
ngx_http_mpn_status_slots(ngx_http_mpn_stats_t *st,
    ngx_http_mpn_main_conf_t *mcf, ngx_http_mpn_main_conf_t *old)
{
    ngx_str_t   *names, *onames;
    ngx_uint_t   b, i, j, k, n, on, *slots, used[NGX_HTTP_MPN_CONSUMED_MAX];

    if (mcf->consumed == NULL) {
        return;
    }

    names = mcf->consumed->elts;
    n = mcf->consumed->nelts;
    slots = mcf->consumed_slots;

    on = (old != NULL && old->consumed != NULL) ? old->consumed->nelts : 0;
    onames = on ? old->consumed->elts : NULL;

    ngx_memzero(used, sizeof(used));

    for (i = 0; i < n; i++) {
        slots[i] = NGX_HTTP_MPN_CONSUMED_MAX;

        for (j = 0; j < on; j++) {
            if (onames[j].len == names[i].len
                && ngx_strncmp(onames[j].data, names[i].data, names[i].len)
                   == 0)
            {
                slots[i] = old->consumed_slots[j];
                used[slots[i]] = 1;
                break;
            }
        }
    }

    /* mpn_consume names at most NGX_HTTP_MPN_CONSUMED_MAX benefits */

    for (i = 0, j = 0; i < n; i++) {
        if (slots[i] != NGX_HTTP_MPN_CONSUMED_MAX) {
            continue;
        }

        while (used[j]) {
            j++;
        }

        used[j] = 1;
        slots[i] = j;

        /* st: every worker's block */

        for (b = 0; b < NGX_MAX_PROCESSES; b++) {
            for (k = 0; k < NGX_HTTP_MPN_CONSUMED_N; k++) {
                st[b].consumed[j][k] = 0;
            }
        }
    }
}


void
ngx_http_mpn_status_init_process(ngx_http_mpn_main_conf_t *mcf)
{
    ngx_slab_pool_t  *shpool;

    ngx_http_mpn_stats = NULL;
    ngx_http_mpn_stats_blocks = NULL;

    if (mcf->status_zone == NULL
        || ngx_process_slot < 0 || ngx_process_slot >= NGX_MAX_PROCESSES)
    {
        return;
    }

    shpool = (ngx_slab_pool_t *) mcf->status_zone->shm.addr;
    ngx_http_mpn_stats_blocks = shpool->data;
    ngx_http_mpn_stats = &ngx_http_mpn_stats_blocks[ngx_process_slot];
}


void
ngx_http_mpn_status_decision(ngx_uint_t decision, ngx_uint_t reason)
{
    ngx_atomic_t  *n;

    if (ngx_http_mpn_stats == NULL
        || decision >= MPN_NDECISIONS || reason >= MPN_NREASONS)
    {
        return;
    }

    n = &ngx_http_mpn_stats->decisions[decision][reason];

    (*n)++;
}


void
ngx_http_mpn_status_consumption(ngx_uint_t slot, ngx_uint_t result)
{
    if (ngx_http_mpn_stats == NULL || slot >= NGX_HTTP_MPN_CONSUMED_MAX
        || result >= NGX_HTTP_MPN_CONSUMED_N)
    {
        return;
    }

    ngx_http_mpn_stats->consumed[slot][result]++;
}


void
ngx_http_mpn_status_latency(uint64_t usec)
{
    ngx_uint_t  i;

    if (ngx_http_mpn_stats == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_MPN_NLATENCY; i++) {
        if (usec <= ngx_http_mpn_latency_bounds[i]) {
            break;
        }
    }

    /* the bucket first: see ngx_http_mpn_status_snapshot() */

    ngx_http_mpn_stats->latency[i]++;
    ngx_http_mpn_stats->latency_sum += usec;
}


void
ngx_http_mpn_status_keys_fetch(ngx_uint_t result)
{
    if (ngx_http_mpn_stats == NULL || result >= NGX_HTTP_MPN_KEYS_NRESULTS) {
        return;
    }

    /* this worker's own block: a plain add */
    ngx_http_mpn_stats->keys_fetches[result]++;
}


uint64_t
ngx_http_mpn_usec(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* mpn_status; */

char *
ngx_http_mpn_status_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_mpn_main_conf_t  *mcf;

    if (lcf->status != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    lcf->status = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_mpn_status_handler;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mpn_module);
    mcf->status_used = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_mpn_status_handler(ngx_http_request_t *r)
{
    size_t                     len;
    ngx_int_t                  rc;
    ngx_str_t                  format;
    ngx_buf_t                 *b;
    ngx_uint_t                 kind, entries, gauges[3], keys;
    ngx_chain_t                out;
    ngx_http_mpn_stats_t       st;
    ngx_http_mpn_main_conf_t  *mcf;
    size_t                     used, total;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    kind = NGX_HTTP_MPN_STATUS_JSON;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {

        if (format.len == 10
            && ngx_strncmp(format.data, "prometheus", 10) == 0)
        {
            kind = NGX_HTTP_MPN_STATUS_PROMETHEUS;

        } else if (format.len != 4
                   || ngx_strncmp(format.data, "json", 4) != 0)
        {
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    ngx_http_mpn_status_snapshot(&st);

    mcf = ngx_http_get_module_main_conf(r, ngx_http_mpn_module);

    ngx_memzero(gauges, sizeof(gauges));

    if (mcf->cache != NULL) {
        ngx_http_mpn_cache_usage(mcf->cache, &entries, &used, &total);
        gauges[NGX_HTTP_MPN_GAUGE_ENTRIES] = entries;
        gauges[NGX_HTTP_MPN_GAUGE_USED] = used;
        gauges[NGX_HTTP_MPN_GAUGE_TOTAL] = total;
    }

    keys = ngx_http_mpn_keys_usable(mcf);

    /* generous: every line is well under 256 bytes */
    len = 256 * (sizeof(ngx_http_mpn_outcomes)
                 / sizeof(ngx_http_mpn_outcome_t)
                 + MPN_NDECISIONS * MPN_NREASONS
                 + NGX_HTTP_MPN_STAT_N + 3 + NGX_HTTP_MPN_NLATENCY + 16
                 + (mcf->consumed ? mcf->consumed->nelts : 0)
                   * (NGX_HTTP_MPN_CONSUMED_N + 1));

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (kind == NGX_HTTP_MPN_STATUS_JSON) {
        b->last = ngx_http_mpn_status_json(b->last, &st, gauges);
        b->last = ngx_http_mpn_status_consumptions(b->last, &st, mcf, kind);
        b->last = ngx_http_mpn_status_keys(b->last, &st, keys, kind);
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        b->last = ngx_http_mpn_status_prometheus(b->last, &st, gauges);
        b->last = ngx_http_mpn_status_consumptions(b->last, &st, mcf, kind);
        b->last = ngx_http_mpn_status_keys(b->last, &st, keys, kind);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static void
ngx_http_mpn_status_snapshot(ngx_http_mpn_stats_t *st)
{
    ngx_uint_t             i, j, k;
    ngx_http_mpn_stats_t  *sh;

    ngx_memzero(st, sizeof(ngx_http_mpn_stats_t));

    if (ngx_http_mpn_stats_blocks == NULL) {
        return;
    }

    for (k = 0; k < NGX_MAX_PROCESSES; k++) {
        sh = &ngx_http_mpn_stats_blocks[k];

        for (i = 0; i < MPN_NDECISIONS; i++) {
            for (j = 0; j < MPN_NREASONS; j++) {
                st->decisions[i][j] += sh->decisions[i][j];
            }
        }

        for (i = 0; i < NGX_HTTP_MPN_STAT_N; i++) {
            st->counters[i] += sh->counters[i];
        }

        /* the sum is read first: a concurrent observation may be in the
         * buckets and not yet in the sum, never the other way round */

        st->latency_sum += sh->latency_sum;

        for (i = 0; i <= NGX_HTTP_MPN_NLATENCY; i++) {
            st->latency[i] += sh->latency[i];
        }

        for (i = 0; i < NGX_HTTP_MPN_KEYS_NRESULTS; i++) {
            st->keys_fetches[i] += sh->keys_fetches[i];
        }

        for (i = 0; i < NGX_HTTP_MPN_CONSUMED_MAX; i++) {
            for (j = 0; j < NGX_HTTP_MPN_CONSUMED_N; j++) {
                st->consumed[i][j] += sh->consumed[i][j];
            }
        }
    }
}


/* a possible outcome, or one that happened anyway */

static ngx_uint_t
ngx_http_mpn_status_shown(ngx_http_mpn_stats_t *st, ngx_uint_t d,
    ngx_uint_t r)
{
    ngx_uint_t  i;

    if (st->decisions[d][r]) {
        return 1;
    }

    for (i = 0;
         i < sizeof(ngx_http_mpn_outcomes) / sizeof(ngx_http_mpn_outcome_t);
         i++)
    {
        if (ngx_http_mpn_outcomes[i].decision == d
            && ngx_http_mpn_outcomes[i].reason == r)
        {
            return 1;
        }
    }

    return 0;
}


static u_char *
ngx_http_mpn_status_json(u_char *p, ngx_http_mpn_stats_t *st,
    ngx_uint_t *gauges)
{
    ngx_uint_t         d, r, i, n, first;
    ngx_atomic_uint_t  count;

    p = ngx_sprintf(p, "{\"decisions\":{");

    for (d = 0; d < MPN_NDECISIONS; d++) {
        p = ngx_sprintf(p, "%s\"%s\":{", d ? "," : "",
                        mpn_decision_names[d]);
        first = 1;

        for (r = 0; r < MPN_NREASONS; r++) {
            if (!ngx_http_mpn_status_shown(st, d, r)) {
                continue;
            }

            p = ngx_sprintf(p, "%s\"%s\":%uA", first ? "" : ",",
                            mpn_reason_names[r], st->decisions[d][r]);
            first = 0;
        }

        *p++ = '}';
    }

    p = ngx_sprintf(p, "},\"cache\":{");

    for (i = NGX_HTTP_MPN_STAT_CACHE_HITS;
         i <= NGX_HTTP_MPN_STAT_CACHE_EVICTIONS;
         i++)
    {
        p = ngx_sprintf(p, "\"%s\":%uA,", ngx_http_mpn_counters[i].json,
                        st->counters[i]);
    }

    for (i = 0; i < 3; i++) {
        p = ngx_sprintf(p, "%s\"%s\":%ui", i ? "," : "",
                        ngx_http_mpn_gauges[i].json, gauges[i]);
    }

    p = ngx_sprintf(p, "},\"redis\":{");

    for (i = NGX_HTTP_MPN_STAT_REDIS_REQUESTS;
         i <= NGX_HTTP_MPN_STAT_REDIS_FAILOVERS;
         i++)
    {
        p = ngx_sprintf(p, "\"%s\":%uA,", ngx_http_mpn_counters[i].json,
                        st->counters[i]);
    }

    /* this worker's lookup connection; every worker checks the marker
     * each second, so they agree within about a second */
    p = ngx_sprintf(p, "\"ready\":%ui,", ngx_http_mpn_redis_ready());

    p = ngx_sprintf(p, "\"redirects\":{\"moved\":%uA,\"ask\":%uA},",
                    st->counters[NGX_HTTP_MPN_STAT_REDIS_MOVED],
                    st->counters[NGX_HTTP_MPN_STAT_REDIS_ASK]);

    p = ngx_sprintf(p, "\"latency_seconds\":{\"buckets\":{");

    count = 0;
    n = NGX_HTTP_MPN_NLATENCY + 1;

    for (i = 0; i < n; i++) {
        count += st->latency[i];
        p = ngx_sprintf(p, "%s\"%s\":%uA", i ? "," : "",
                        ngx_http_mpn_latency_le[i], count);
    }

    p = ngx_sprintf(p, "},\"sum\":%uA.%06uA,\"count\":%uA}},",
                    st->latency_sum / 1000000, st->latency_sum % 1000000,
                    count);

    /* ngx_http_mpn_status_keys() adds its member and closes the document */

    p = ngx_sprintf(p, "\"invalidations\":%uA,\"aborted\":%uA,"
                    "\"token_cache\":{",
                    st->counters[NGX_HTTP_MPN_STAT_INVALIDATIONS],
                    st->counters[NGX_HTTP_MPN_STAT_ABORTED]);

    for (i = NGX_HTTP_MPN_STAT_TOKEN_CACHE_HITS;
         i <= NGX_HTTP_MPN_STAT_TOKEN_CACHE_MISSES;
         i++)
    {
        p = ngx_sprintf(p, "%s\"%s\":%uA",
                        i == NGX_HTTP_MPN_STAT_TOKEN_CACHE_HITS ? "" : ",",
                        ngx_http_mpn_counters[i].json, st->counters[i]);
    }

    p = ngx_sprintf(p, "}");

    return p;
}


static u_char *
ngx_http_mpn_status_prometheus(u_char *p, ngx_http_mpn_stats_t *st,
    ngx_uint_t *gauges)
{
    ngx_uint_t              d, r, i;
    ngx_atomic_uint_t       count;
    ngx_http_mpn_metric_t  *m;

    p = ngx_sprintf(p,
            "# HELP mpn_decisions_total Gated requests by decision and "
            "reason.\n"
            "# TYPE mpn_decisions_total counter\n");

    for (d = 0; d < MPN_NDECISIONS; d++) {
        for (r = 0; r < MPN_NREASONS; r++) {
            if (!ngx_http_mpn_status_shown(st, d, r)) {
                continue;
            }

            p = ngx_sprintf(p, "mpn_decisions_total{decision=\"%s\","
                            "reason=\"%s\"} %uA\n", mpn_decision_names[d],
                            mpn_reason_names[r], st->decisions[d][r]);
        }
    }

    for (i = 0; i < NGX_HTTP_MPN_STAT_N; i++) {
        m = &ngx_http_mpn_counters[i];

        if (i == NGX_HTTP_MPN_STAT_REDIS_ASK) {
            continue;
        }

        if (i == NGX_HTTP_MPN_STAT_REDIS_MOVED) {
            /* one family, one series per kind */
            p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s counter\n"
                            "%s{kind=\"moved\"} %uA\n"
                            "%s{kind=\"ask\"} %uA\n",
                            m->name, m->help, m->name,
                            m->name, st->counters[i],
                            m->name,
                            st->counters[NGX_HTTP_MPN_STAT_REDIS_ASK]);
            continue;
        }

        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s counter\n%s %uA\n",
                        m->name, m->help, m->name, m->name,
                        st->counters[i]);

        if (i == NGX_HTTP_MPN_STAT_CACHE_EVICTIONS) {
            for (d = 0; d < 3; d++) {
                m = &ngx_http_mpn_gauges[d];
                p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s gauge\n%s %ui\n",
                                m->name, m->help, m->name, m->name,
                                gauges[d]);
            }
        }
    }

    p = ngx_sprintf(p,
            "# HELP mpn_redis_ready 1 while lookups can be served: "
            "connected, set up and the dataset marker seen.\n"
            "# TYPE mpn_redis_ready gauge\n"
            "mpn_redis_ready %ui\n", ngx_http_mpn_redis_ready());

    p = ngx_sprintf(p,
            "# HELP mpn_redis_latency_seconds Time from sending a GET to "
            "its reply.\n"
            "# TYPE mpn_redis_latency_seconds histogram\n");

    count = 0;

    for (i = 0; i <= NGX_HTTP_MPN_NLATENCY; i++) {
        count += st->latency[i];
        p = ngx_sprintf(p, "mpn_redis_latency_seconds_bucket{le=\"%s\"} %uA\n",
                        ngx_http_mpn_latency_le[i], count);
    }

    p = ngx_sprintf(p, "mpn_redis_latency_seconds_sum %uA.%06uA\n"
                    "mpn_redis_latency_seconds_count %uA\n",
                    st->latency_sum / 1000000, st->latency_sum % 1000000,
                    count);

    return p;
}


/*
 * mpn_consumptions_total: each benefit an mpn_consume of this
 * configuration names, with its four results (zeros included); in JSON
 * "consumptions", absent from the Prometheus text without mpn_consume.
 * Benefit names are partner-id characters: nothing to escape.
 */

static u_char *
ngx_http_mpn_status_consumptions(u_char *p, ngx_http_mpn_stats_t *st,
    ngx_http_mpn_main_conf_t *mcf, ngx_uint_t kind)
{
    ngx_str_t     *names;
    ngx_uint_t     i, r, n;
    ngx_atomic_t  *cs;

    n = mcf->consumed ? mcf->consumed->nelts : 0;
    names = n ? mcf->consumed->elts : NULL;

    if (kind == NGX_HTTP_MPN_STATUS_JSON) {
        p = ngx_sprintf(p, ",\"consumptions\":{");

        for (i = 0; i < n; i++) {
            cs = st->consumed[mcf->consumed_slots[i]];
            p = ngx_sprintf(p, "%s\"%V\":{", i ? "," : "", &names[i]);

            for (r = 0; r < NGX_HTTP_MPN_CONSUMED_N; r++) {
                p = ngx_sprintf(p, "%s\"%s\":%uA", r ? "," : "",
                                ngx_http_mpn_consumed_results[r], cs[r]);
            }

            *p++ = '}';
        }

        *p++ = '}';

        return p;
    }

    if (n == 0) {
        return p;
    }

    p = ngx_sprintf(p,
            "# HELP mpn_consumptions_total Consumptions of metered "
            "benefits (mpn_consume) by what Redis did: ok, quota, repeat; "
            "error when it did not answer.\n"
            "# TYPE mpn_consumptions_total counter\n");

    for (i = 0; i < n; i++) {
        cs = st->consumed[mcf->consumed_slots[i]];

        for (r = 0; r < NGX_HTTP_MPN_CONSUMED_N; r++) {
            p = ngx_sprintf(p, "mpn_consumptions_total{benefit=\"%V\","
                            "result=\"%s\"} %uA\n", &names[i],
                            ngx_http_mpn_consumed_results[r], cs[r]);
        }
    }

    return p;
}


/*
 * mpn_token_keys_fetches_total{result} and mpn_token_keys; in JSON, the
 * last member, "token_keys", and the end of the document
 */

static u_char *
ngx_http_mpn_status_keys(u_char *p, ngx_http_mpn_stats_t *st,
    ngx_uint_t keys, ngx_uint_t kind)
{
    ngx_uint_t   i;

    static const char  *results[NGX_HTTP_MPN_KEYS_NRESULTS] = {
        "ok", "error", "invalid"
    };

    if (kind == NGX_HTTP_MPN_STATUS_JSON) {
        p = ngx_sprintf(p, ",\"token_keys\":{\"fetches\":{");

        for (i = 0; i < NGX_HTTP_MPN_KEYS_NRESULTS; i++) {
            p = ngx_sprintf(p, "%s\"%s\":%uA", i ? "," : "", results[i],
                            st->keys_fetches[i]);
        }

        return ngx_sprintf(p, "},\"keys\":%ui}}\n", keys);
    }

    p = ngx_sprintf(p,
            "# HELP mpn_token_keys_fetches_total Fetches of key sets from "
            "the identity provider, by result.\n"
            "# TYPE mpn_token_keys_fetches_total counter\n");

    for (i = 0; i < NGX_HTTP_MPN_KEYS_NRESULTS; i++) {
        p = ngx_sprintf(p, "mpn_token_keys_fetches_total{result=\"%s\"} %uA\n",
                        results[i], st->keys_fetches[i]);
    }

    return ngx_sprintf(p,
               "# HELP mpn_token_keys Keys usable now in the fetched key "
               "sets.\n"
               "# TYPE mpn_token_keys gauge\n"
               "mpn_token_keys %ui\n", keys);
}
