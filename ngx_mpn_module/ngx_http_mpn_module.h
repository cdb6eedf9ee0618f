/*
 * Types shared by the nginx glue of ngx_http_mpn_module: configuration,
 * the per-request context and the hooks between the glue files.
 */

#ifndef NGX_HTTP_MPN_MODULE_H
#define NGX_HTTP_MPN_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "mpn_record.h"
#include "mpn_decide.h"
#include "mpn_token.h"


#define NGX_HTTP_MPN_FAIL_CLOSED  0
#define NGX_HTTP_MPN_FAIL_OPEN    1

#define NGX_HTTP_MPN_TOKEN_CACHE_OFF  -1

/* $mpn_cache_status */
#define NGX_HTTP_MPN_CACHE_BYPASS   0
#define NGX_HTTP_MPN_CACHE_MISS     1
#define NGX_HTTP_MPN_CACHE_HIT      2
#define NGX_HTTP_MPN_CACHE_EXPIRED  3
#define NGX_HTTP_MPN_CACHE_STALE    4


/* what a fetch found */
#define NGX_HTTP_MPN_FOUND        0
#define NGX_HTTP_MPN_MISSING      1
#define NGX_HTTP_MPN_UNAVAILABLE  2
#define NGX_HTTP_MPN_BAD_RECORD   3


typedef struct ngx_http_mpn_fetch_s   ngx_http_mpn_fetch_t;
typedef struct ngx_http_mpn_redis_cmd_s  ngx_http_mpn_redis_cmd_t;
typedef struct ngx_http_mpn_cache_s   ngx_http_mpn_cache_t;
typedef struct ngx_http_mpn_keys_src_s  ngx_http_mpn_keys_src_t;
typedef struct ngx_http_mpn_consumption_s  ngx_http_mpn_consumption_t;


typedef struct {
    time_t                     last;
    ngx_uint_t                 suppressed;
} ngx_http_mpn_limit_t;


/* where a directive was written, for checks made after parsing */
typedef struct {
    ngx_str_t                  file;         /* empty: not written */
    ngx_uint_t                 line;
} ngx_http_mpn_conf_pos_t;


/* an address of mpn_redis: the server, or a Cluster seed */
typedef struct {
    ngx_str_t                  text;         /* as written */
    ngx_str_t                  host;
    in_port_t                  port;
    ngx_addr_t                 addr;         /* resolved at conf time */
} ngx_http_mpn_redis_seed_t;


typedef struct {
    ngx_str_t                  addr_text;    /* as written, for logs */
    ngx_addr_t                 addr;         /* resolved at conf time */
    ngx_str_t                  host;         /* the name, resolved again */
    in_port_t                  port;
    ngx_int_t                  db;
    ngx_str_t                  user;         /* ACL user, or none */
    ngx_str_t                  password;     /* never logged */
    ngx_str_t                  marker;       /* dataset marker; empty: off */
    ngx_msec_t                 connect_timeout;
    ngx_msec_t                 timeout;
    ngx_resolver_t            *resolver;     /* NULL: the conf-time addr */
    ngx_msec_t                 resolver_timeout;
#if (NGX_SSL)
    ngx_ssl_t                 *ssl;          /* NULL: no TLS */
#else
    void                      *ssl;          /* always NULL */
#endif
    ngx_str_t                  tls_ca;
    ngx_str_t                  tls_cert;
    ngx_str_t                  tls_key;
    ngx_str_t                  tls_name;     /* NUL-terminated */
    ngx_flag_t                 tls_verify;
    ngx_array_t               *seeds;        /* of ngx_http_mpn_redis_seed_t */
    ngx_str_t                  sentinel;     /* the master's name, or none */
    ngx_str_t                  sentinel_user;
    ngx_str_t                  sentinel_password;  /* never logged */
    unsigned                   cluster:1;
    unsigned                   read_replica:1;
    unsigned                   tls:1;
    unsigned                   is_unix:1;
    unsigned                   numeric:1;    /* a literal address */
    unsigned                   tls_name_set:1;  /* else each host's own */
} ngx_http_mpn_redis_conf_t;


typedef struct {
    ngx_http_mpn_redis_conf_t *redis;        /* NULL: no mpn_redis */
    ngx_str_t                  key_prefix;
    ngx_str_t                  channel;
    ngx_http_mpn_cache_t      *cache;        /* NULL: no mpn_cache */
    ngx_shm_zone_t            *status_zone;  /* the counters */
    ngx_flag_t                 status_used;  /* an mpn_status location */
    ssize_t                    token_cache;  /* bytes; 0 unset, -1 off */
    ngx_http_mpn_conf_pos_t    cache_pos;    /* of mpn_cache */
    ngx_array_t               *key_sources;  /* of ngx_http_mpn_keys_src_t *
                                              * (mpn_token_keys_request) */
    ngx_shm_zone_t            *keys_zone;    /* their fetched key sets */
    ngx_str_t                  usage_prefix; /* mpn_usage_prefix */
    ngx_array_t               *consumed;     /* ngx_str_t: each benefit
                                                an mpn_consume names */
    ngx_uint_t                *consumed_slots;  /* their counters in the
                                                   status zone */
} ngx_http_mpn_main_conf_t;


/* mpn_consume */
typedef struct {
    ngx_str_t                  benefit;
    ngx_uint_t                 index;        /* in mcf->consumed */
    ngx_int_t                  amount;       /* when no variable gives it */
    ngx_http_complex_value_t  *amount_cv;    /* NULL: amount */
    ngx_uint_t                 per;          /* MPN_PER_TERM or _MONTH */
    ngx_http_complex_value_t  *idempotency;  /* NULL: none */
} ngx_http_mpn_consume_conf_t;


typedef struct {
    ngx_flag_t                 enable;
    ngx_http_mpn_conf_pos_t    enable_pos;   /* of the mpn in effect */

    ngx_http_complex_value_t  *partner;      /* mpn_partner */
    ngx_http_complex_value_t  *token;        /* mpn_token */
    mpn_keyset_t              *token_keys;   /* mpn_token_keys */
    ngx_http_mpn_keys_src_t   *keys_src;     /* mpn_token_keys_request */
    time_t                     keys_cache;   /* mpn_token_keys_cache */
    ngx_str_t                  token_claim;
    ngx_str_t                  token_issuer;
    ngx_str_t                  token_audience;
    time_t                     token_leeway;
    mpn_token_opts_t           token_opts;   /* built at merge time */
    void                      *token_scope;  /* verifies alike: the same */

    ngx_uint_t                 require_tier;
    ngx_array_t               *require_benefits;  /* of mpn_str_t */
    ngx_str_t                  competency;
    ngx_uint_t                 competency_level;

    ngx_http_complex_value_t  *signin_url;
    ngx_http_complex_value_t  *upgrade_url;
    ngx_http_complex_value_t  *renew_url;

    time_t                     grace;
    time_t                     remind;
    ngx_uint_t                 fail;
    ngx_uint_t                 log_level;    /* of the refusal line */

    ngx_flag_t                 status;       /* mpn_status given here */

    ngx_http_mpn_consume_conf_t  *consume;   /* NULL: consumes nothing */
    ngx_array_t               *benefits_all; /* require_benefits and the
                                                benefit consumed */

    mpn_require_t              require;      /* built at merge time */
} ngx_http_mpn_loc_conf_t;


typedef struct {
    ngx_http_request_t        *request;
    ngx_http_mpn_loc_conf_t   *lcf;          /* the location last decided */
    ngx_str_t                  partner_id;
    mpn_record_t              *record;       /* in r->pool; NULL if none */
    mpn_decision_t             decision;
    int64_t                    now;
    ngx_uint_t                 result;       /* NGX_HTTP_MPN_FOUND ... */
    ngx_uint_t                 cache_status;
    ngx_http_mpn_fetch_t      *fetch;        /* set while waiting */
    ngx_event_t                timer;        /* the wait's timeout */
    ngx_queue_t                queue;        /* in fetch->waiters */
    ngx_str_t                  detail;       /* for the refusal line: why
                                                a record or token failed */
    ngx_http_mpn_keys_src_t   *keys_wait;    /* the key set waited for */
    ngx_http_mpn_keys_src_t   *keys_fetch;   /* the key set it fetches */
    ngx_queue_t                keys_queue;   /* in keys_wait->waiters */
    ngx_uint_t                 keys_attempts;/* fetches ended, at the wait */
    ngx_http_mpn_consumption_t *consumption; /* set while waiting for it */
    int64_t                    quota_allowance;
    int64_t                    quota_used;   /* after this request */
    int64_t                    quota_reset;
    unsigned                   fetched:1;
    unsigned                   decided:1;
    unsigned                   counted:1;    /* in mpn_decisions_total */
    unsigned                   internal:1;   /* failed inside nginx: 500 */
    unsigned                   keys_waited:1;/* a fetch it waited for ended */
    unsigned                   keys_woken:1; /* identify again */
    unsigned                   keys_cleanup:1;
    unsigned                   consumed:1;   /* mpn_consume ran (once per
                                                request) */
    unsigned                   quota_period:1;    /* quota_reset known */
    unsigned                   quota_answered:1;  /* quota_used known */
} ngx_http_mpn_ctx_t;


extern ngx_module_t  ngx_http_mpn_module;


ngx_http_mpn_ctx_t *ngx_http_mpn_get_ctx(ngx_http_request_t *r);

/* ngx_http_mpn_fetch.c: a request's record, one GET per partner in flight */

ngx_int_t ngx_http_mpn_fetch(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx,
    ngx_http_mpn_main_conf_t *mcf);
/* a request waiting for Redis: its timer, a client leaving noticed */
void ngx_http_mpn_wait(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx,
    ngx_event_handler_pt timeout);
void ngx_http_mpn_wake(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx);

/* ngx_http_mpn_redis.c: each worker's lookup connection */

/* reply is a redisReply, or NULL when the connection failed */
typedef void (*ngx_http_mpn_reply_pt)(void *data, void *reply);

void ngx_http_mpn_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_mpn_main_conf_t *mcf);
void ngx_http_mpn_redis_exit_process(void);
/* connected, set up and the dataset marker seen: lookups can be served */
ngx_uint_t ngx_http_mpn_redis_ready(void);
/* a handle for ngx_http_mpn_redis_lookup_timed_out(), or NULL */
void *ngx_http_mpn_redis_get(ngx_str_t *key, ngx_http_mpn_reply_pt handler,
    void *data);
void ngx_http_mpn_redis_lookup_timed_out(void *lookup);
void ngx_http_mpn_redis_timed_out(ngx_http_mpn_redis_cmd_t *cmd);
/* any command about one key, sent where that key lives, never twice: a
 * handle for ngx_http_mpn_redis_command_timed_out(), or NULL */
void *ngx_http_mpn_redis_command(ngx_str_t *key, int argc, const char **argv,
    const size_t *argvlen, ngx_http_mpn_reply_pt handler, void *data);
void ngx_http_mpn_redis_command_timed_out(void *handle);
/* NGX_OK: not sent yet, so taken back (its handler called with NULL now);
 * NGX_DECLINED: on its way, its reply still comes */
ngx_int_t ngx_http_mpn_redis_command_withdraw(void *handle);

/* ngx_http_mpn_consume.c: mpn_consume, metered benefits */

char *ngx_http_mpn_consume_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_mpn_consume_merge(ngx_conf_t *cf,
    ngx_http_mpn_loc_conf_t *prev, ngx_http_mpn_loc_conf_t *conf);
/* after an allow: NGX_OK when decided now, NGX_AGAIN when the request is
 * woken later, NGX_ERROR */
ngx_int_t ngx_http_mpn_consume(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);

/* ngx_http_mpn_subscriber.c: invalidations, with mpn_cache */

void ngx_http_mpn_subscriber_init_process(ngx_cycle_t *cycle,
    ngx_http_mpn_main_conf_t *mcf);
void ngx_http_mpn_subscriber_exit_process(void);

/* ngx_http_mpn_token.c: mpn_token_keys and verifying a request's token */

char *ngx_http_mpn_token_keys(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_mpn_token_merge(ngx_conf_t *cf, ngx_http_mpn_loc_conf_t *prev,
    ngx_http_mpn_loc_conf_t *conf);
ngx_int_t ngx_http_mpn_token_identify(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);

/* ngx_http_mpn_token_cache.c: verified tokens remembered per worker */

char *ngx_http_mpn_token_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
int ngx_http_mpn_token_cache_verify(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, mpn_keyset_t *ks, ngx_str_t *token,
    char *id, size_t *len, const char **why);
/* call whenever a key set in use is replaced (a reload does it itself) */
void ngx_http_mpn_token_cache_keys_changed(void);
void ngx_http_mpn_token_cache_exit_process(void);

/* ngx_http_mpn_variables.c */

ngx_int_t ngx_http_mpn_add_variables(ngx_conf_t *cf);

/* the ctx's detail for the refusal line, copied with control bytes
 * defused */

ngx_int_t ngx_http_mpn_set_detail(ngx_http_request_t *r,
    ngx_http_mpn_ctx_t *ctx, u_char *text, size_t len);

/* configuration checks made after parsing name the directive's line */

void ngx_http_mpn_conf_pos(ngx_conf_t *cf, ngx_http_mpn_conf_pos_t *pos);
void ngx_http_mpn_conf_error(ngx_conf_t *cf, ngx_http_mpn_conf_pos_t *pos,
    const char *fmt, ...);

/* a file named in a directive, read whole at configuration time */

ngx_int_t ngx_http_mpn_conf_read_file(ngx_conf_t *cf, ngx_str_t *path,
    size_t max, const char *what, const char *directive, ngx_str_t *text);

/* logging that an outage cannot turn into a flood */

void ngx_http_mpn_log_limited(ngx_http_mpn_limit_t *limit, ngx_log_t *log,
    const char *fmt, ...);

#endif /* NGX_HTTP_MPN_MODULE_H */
