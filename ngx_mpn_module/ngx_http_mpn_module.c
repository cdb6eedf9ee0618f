/*
 * ngx_http_mpn_module: gates locations on a partner's membership tier,
 * benefits and competencies, read from Redis without blocking the worker.
 *
 * The access handler takes the partner id (a trusted variable or a signed
 * token), fetches the record, asks the pure decision (mpn_decide.c) and
 * answers: on to the content phase, a redirect, or a refusal.
 */

#include "ngx_http_mpn_module.h"
#include "ngx_http_mpn_redis.h"
#include "ngx_http_mpn_cache.h"
#include "ngx_http_mpn_status.h"
#include "ngx_http_mpn_keys.h"


static ngx_int_t ngx_http_mpn_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_mpn_gate(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);
static void ngx_http_mpn_ctx_marker(void *data);
static ngx_uint_t ngx_http_mpn_same_identity(ngx_http_mpn_loc_conf_t *a,
    ngx_http_mpn_loc_conf_t *b);
static ngx_int_t ngx_http_mpn_identify(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);
static void ngx_http_mpn_decide(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);
static ngx_int_t ngx_http_mpn_decide_answer(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);
static ngx_int_t ngx_http_mpn_internal_error(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);
static ngx_int_t ngx_http_mpn_answer(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);
static void ngx_http_mpn_log_refusal(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx);
static ngx_int_t ngx_http_mpn_location(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *loc);
static ngx_uint_t ngx_http_mpn_wants_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_mpn_send_json(ngx_http_request_t *r,
    ngx_uint_t status, mpn_decision_t *d, ngx_str_t *loc);
static ngx_int_t ngx_http_mpn_set_cache_control(ngx_http_request_t *r);
static ngx_int_t ngx_http_mpn_set_www_authenticate(ngx_http_request_t *r);
static ngx_int_t ngx_http_mpn_set_location(ngx_http_request_t *r,
    ngx_str_t *loc);
static ngx_table_elt_t *ngx_http_mpn_push_header(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *value);

static void *ngx_http_mpn_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_mpn_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_mpn_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_mpn_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_mpn_enable(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpn_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpn_identity(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpn_require_tier(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpn_require_benefit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpn_require_competency(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_mpn_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_mpn_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_mpn_init_process(ngx_cycle_t *cycle);
static void ngx_http_mpn_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_mpn_fail_modes[] = {
    { ngx_string("closed"), NGX_HTTP_MPN_FAIL_CLOSED },
    { ngx_string("open"), NGX_HTTP_MPN_FAIL_OPEN },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_mpn_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_mpn_commands[] = {

    { ngx_string("mpn"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_mpn_enable,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, enable),
      NULL },

    { ngx_string("mpn_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_mpn_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpn_key_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mpn_main_conf_t, key_prefix),
      NULL },

    { ngx_string("mpn_partner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpn_identity,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, partner),
      NULL },

    { ngx_string("mpn_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpn_identity,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, token),
      NULL },

    { ngx_string("mpn_token_keys"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpn_token_keys,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpn_token_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mpn_token_cache_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpn_token_keys_request"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpn_keys_request_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpn_token_keys_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpn_keys_cache_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpn_token_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, token_claim),
      NULL },

    { ngx_string("mpn_token_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, token_issuer),
      NULL },

    { ngx_string("mpn_token_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, token_audience),
      NULL },

    { ngx_string("mpn_token_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, token_leeway),
      NULL },

    { ngx_string("mpn_require_tier"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpn_require_tier,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpn_require_benefit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_mpn_require_benefit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpn_require_competency"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF
                        |NGX_CONF_TAKE12,
      ngx_http_mpn_require_competency,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpn_signin_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpn_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, signin_url),
      NULL },

    { ngx_string("mpn_upgrade_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpn_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, upgrade_url),
      NULL },

    { ngx_string("mpn_renew_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpn_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, renew_url),
      NULL },

    { ngx_string("mpn_grace"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, grace),
      NULL },

    { ngx_string("mpn_remind"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, remind),
      NULL },

    { ngx_string("mpn_fail"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, fail),
      &ngx_http_mpn_fail_modes },

    { ngx_string("mpn_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpn_loc_conf_t, log_level),
      &ngx_http_mpn_log_levels },

    { ngx_string("mpn_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_mpn_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpn_invalidate_channel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mpn_main_conf_t, channel),
      NULL },

    { ngx_string("mpn_consume"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_mpn_consume_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpn_usage_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mpn_main_conf_t, usage_prefix),
      NULL },

    { ngx_string("mpn_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_mpn_status_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_mpn_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_mpn_init,                     /* postconfiguration */

    ngx_http_mpn_create_main_conf,         /* create main configuration */
    ngx_http_mpn_init_main_conf,           /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_mpn_create_loc_conf,          /* create location configuration */
    ngx_http_mpn_merge_loc_conf            /* merge location configuration */
};


ngx_module_t  ngx_http_mpn_module = {
    NGX_MODULE_V1,
    &ngx_http_mpn_module_ctx,              /* module context */
    ngx_http_mpn_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_mpn_init_process,             /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_mpn_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_mpn_cache_control = ngx_string("Cache-Control");
static ngx_str_t  ngx_http_mpn_no_store = ngx_string("no-store");
static ngx_str_t  ngx_http_mpn_location_key = ngx_string("Location");
static ngx_str_t  ngx_http_mpn_none = ngx_string("-");
static ngx_str_t  ngx_http_mpn_www_authenticate =
    ngx_string("WWW-Authenticate");
static ngx_str_t  ngx_http_mpn_bearer = ngx_string("Bearer realm=\"mpn\"");


static ngx_int_t
ngx_http_mpn_handler(ngx_http_request_t *r)
{
    ngx_uint_t                 counted;
    ngx_pool_cleanup_t        *cln;
    ngx_http_mpn_ctx_t        *ctx;
    ngx_http_mpn_loc_conf_t   *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_mpn_module);

    if (!lcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_mpn_get_ctx(r);
    counted = 0;

    if (ctx != NULL && ctx->lcf != lcf
        && !ngx_http_mpn_same_identity(ctx->lcf, lcf))
    {
        /* redirected to a location that identifies partners otherwise:
         * it starts over, but the request has been counted already */
        counted = ctx->counted;
        ctx = NULL;
    }

    if (ctx != NULL) {
        if (ctx->keys_woken) {
            /* the key set it waited for came, or will not come */
            ctx->keys_woken = 0;
            return ngx_http_mpn_gate(r, lcf, ctx);
        }

        if ((!ctx->decided && !ctx->fetched) || ctx->consumption != NULL) {
            /* only a wake-up of the record's fetch or of the consumption
             * (each has a timer) or of a key set's (polled) gets here */
            return NGX_AGAIN;
        }

        /*
         * The record came, or an internal redirect (index, error_page)
         * brought the request to this location after the gate had decided
         * elsewhere: the identity and the record are kept, the decision is
         * this location's.
         */

        if (!ctx->decided || ctx->lcf != lcf) {
            ctx->lcf = lcf;

            if (ctx->partner_id.len && !ctx->internal) {
                return ngx_http_mpn_decide_answer(r, lcf, ctx);
            }
        }

        return ngx_http_mpn_answer(r, lcf, ctx);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_mpn_ctx_t));
    if (ctx == NULL) {
        if (!counted) {
            ngx_http_mpn_status_decision(MPN_ERROR, MPN_R_REDIS_UNAVAILABLE);
        }

        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->lcf = lcf;
    ctx->cache_status = NGX_HTTP_MPN_CACHE_BYPASS;
    ctx->counted = counted;

    ngx_http_set_ctx(r, ctx, ngx_http_mpn_module);

    /* the module's ctx is cleared by an internal redirect: this finds it */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return ngx_http_mpn_internal_error(r, lcf, ctx);
    }

    cln->handler = ngx_http_mpn_ctx_marker;
    cln->data = ctx;

    return ngx_http_mpn_gate(r, lcf, ctx);
}


/* identity, record, decision and answer; again after a wait for keys */

static ngx_int_t
ngx_http_mpn_gate(ngx_http_request_t *r, ngx_http_mpn_loc_conf_t *lcf,
    ngx_http_mpn_ctx_t *ctx)
{
    ngx_int_t                  rc;
    ngx_http_mpn_main_conf_t  *mcf;

    rc = ngx_http_mpn_identify(r, lcf, ctx);

    if (rc == NGX_ERROR) {
        return ngx_http_mpn_internal_error(r, lcf, ctx);
    }

    if (rc == NGX_AGAIN) {
        /* waits for a key set */
        return NGX_AGAIN;
    }

    if (rc == NGX_DECLINED) {
        /* no usable identity: decided already */
        return ngx_http_mpn_answer(r, lcf, ctx);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_mpn_module);

    rc = ngx_http_mpn_fetch(r, ctx, mcf);

    if (rc == NGX_ERROR) {
        return ngx_http_mpn_internal_error(r, lcf, ctx);
    }

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    return ngx_http_mpn_decide_answer(r, lcf, ctx);
}


/* the request's ctx, also after an internal redirect has cleared it */

ngx_http_mpn_ctx_t *
ngx_http_mpn_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;
    ngx_http_mpn_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_mpn_module);

    if (ctx != NULL || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_mpn_ctx_marker) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_mpn_module);
            return ctx;
        }
    }

    return NULL;
}


/* marks the ctx in the pool's cleanups; there is nothing to clean */

static void
ngx_http_mpn_ctx_marker(void *data)
{
}


/* two locations name the partner the same way (inherited from one scope) */

static ngx_uint_t
ngx_http_mpn_same_identity(ngx_http_mpn_loc_conf_t *a,
    ngx_http_mpn_loc_conf_t *b)
{
    return a->partner == b->partner
           && a->token == b->token
           && a->token_keys == b->token_keys
           && a->keys_src == b->keys_src
           && a->token_claim.data == b->token_claim.data
           && a->token_issuer.data == b->token_issuer.data
           && a->token_audience.data == b->token_audience.data
           && a->token_leeway == b->token_leeway;
}


/*
 * NGX_OK with ctx->partner_id set, NGX_DECLINED with a signin decision made,
 * or NGX_ERROR.
 */

static ngx_int_t
ngx_http_mpn_identify(ngx_http_request_t *r, ngx_http_mpn_loc_conf_t *lcf,
    ngx_http_mpn_ctx_t *ctx)
{
    ngx_str_t  id;

    if (lcf->token != NULL) {
        return ngx_http_mpn_token_identify(r, lcf, ctx);
    }

    if (ngx_http_complex_value(r, lcf->partner, &id) != NGX_OK) {
        return NGX_ERROR;
    }

    if (id.len == 0) {
        mpn_decision_set(&ctx->decision, MPN_SIGNIN, MPN_R_NO_IDENTITY);
        ctx->decided = 1;
        return NGX_DECLINED;
    }

    if (!mpn_partner_id_valid((char *) id.data, id.len)) {
        mpn_decision_set(&ctx->decision, MPN_SIGNIN, MPN_R_BAD_IDENTITY);
        ctx->decided = 1;

        /* the id itself may be anything: only its size is logged */
        ctx->detail.data = ngx_pnalloc(r->pool, NGX_SIZE_T_LEN + 40);
        if (ctx->detail.data != NULL) {
            ctx->detail.len = ngx_sprintf(ctx->detail.data,
                                          "an id of %uz bytes that is no "
                                          "partner id", id.len)
                              - ctx->detail.data;
        }

        return NGX_DECLINED;
    }

    ctx->partner_id = id;

    return NGX_OK;
}


static void
ngx_http_mpn_decide(ngx_http_request_t *r, ngx_http_mpn_loc_conf_t *lcf,
    ngx_http_mpn_ctx_t *ctx)
{
    ctx->now = (int64_t) ngx_time();
    ctx->decided = 1;

    switch (ctx->result) {

    case NGX_HTTP_MPN_FOUND:
        mpn_decide(ctx->record, &lcf->require, ctx->now, &ctx->decision);
        break;

    case NGX_HTTP_MPN_MISSING:
        mpn_decide(NULL, &lcf->require, ctx->now, &ctx->decision);
        break;

    case NGX_HTTP_MPN_BAD_RECORD:
        mpn_decision_set(&ctx->decision, MPN_ERROR, MPN_R_BAD_RECORD);
        break;

    default: /* NGX_HTTP_MPN_UNAVAILABLE */

        if (lcf->fail == NGX_HTTP_MPN_FAIL_OPEN) {
            mpn_decision_set(&ctx->decision, MPN_ALLOW, MPN_R_FAIL_OPEN);

        } else {
            mpn_decision_set(&ctx->decision, MPN_ERROR,
                             MPN_R_REDIS_UNAVAILABLE);
        }
    }
}


/*
 * Decides with the record at hand; an allow in a location that consumes
 * (once per request) then waits for Redis to take the units.
 */

static ngx_int_t
ngx_http_mpn_decide_answer(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx)
{
    ngx_int_t  rc;

    ngx_http_mpn_decide(r, lcf, ctx);

    if (lcf->consume != NULL && !ctx->consumed && ctx->record != NULL
        && ctx->decision.decision == MPN_ALLOW)
    {
        rc = ngx_http_mpn_consume(r, lcf, ctx);

        if (rc == NGX_ERROR) {
            return ngx_http_mpn_internal_error(r, lcf, ctx);
        }

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }
    }

    return ngx_http_mpn_answer(r, lcf, ctx);
}


/*
 * Something inside nginx failed (memory): the request is decided as an
 * error, counted, and answered 500, so that an error page in a location
 * with the same identity finds it decided instead of waiting forever.
 */

static ngx_int_t
ngx_http_mpn_internal_error(ngx_http_request_t *r,
    ngx_http_mpn_loc_conf_t *lcf, ngx_http_mpn_ctx_t *ctx)
{
    mpn_decision_set(&ctx->decision, MPN_ERROR, MPN_R_REDIS_UNAVAILABLE);
    ctx->decided = 1;
    ctx->internal = 1;
    ngx_str_set(&ctx->detail, "internal error");

    return ngx_http_mpn_answer(r, lcf, ctx);
}


static ngx_int_t
ngx_http_mpn_answer(ngx_http_request_t *r, ngx_http_mpn_loc_conf_t *lcf,
    ngx_http_mpn_ctx_t *ctx)
{
    ngx_str_t                  loc;
    ngx_uint_t                 status;
    mpn_decision_t            *d;
    ngx_http_complex_value_t  *url;

    d = &ctx->decision;

    /* a request is counted (and a refusal logged) once, however many
     * gated locations internal redirects take it through */

    if (!ctx->counted) {
        ctx->counted = 1;

        ngx_http_mpn_status_decision(d->decision, d->reason);

        if (d->decision != MPN_ALLOW) {
            ngx_http_mpn_log_refusal(r, lcf, ctx);
        }
    }

    if (d->decision == MPN_ALLOW) {
        return NGX_OK;
    }

    url = NULL;

    switch (d->decision) {

    case MPN_SIGNIN:
        status = NGX_HTTP_UNAUTHORIZED;
        url = lcf->signin_url;
        break;

    case MPN_UPGRADE:
        status = NGX_HTTP_FORBIDDEN;
        url = lcf->upgrade_url;
        break;

    case MPN_RENEW:
        status = NGX_HTTP_FORBIDDEN;
        url = lcf->renew_url;
        break;

    case MPN_DENY:
        status = (d->reason == MPN_R_BAD_AMOUNT) ? NGX_HTTP_BAD_REQUEST
                                                 : NGX_HTTP_FORBIDDEN;
        break;

    default: /* MPN_ERROR */
        status = (d->reason == MPN_R_BAD_RECORD || ctx->internal)
                 ? NGX_HTTP_INTERNAL_SERVER_ERROR
                 : NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    loc.len = 0;

    if (url != NULL && ngx_http_mpn_location(r, url, &loc) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_mpn_set_cache_control(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_UNAUTHORIZED && lcf->token != NULL
        && ngx_http_mpn_set_www_authenticate(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_mpn_wants_json(r)) {
        return ngx_http_mpn_send_json(r, status, d, &loc);
    }

    if (loc.len == 0) {
        return status;
    }

    if (ngx_http_mpn_set_location(r, &loc) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_HTTP_MOVED_TEMPORARILY;
}


/*
 * The one line per refusal, at mpn_log_level: the partner, the decision,
 * the reason, and what was missing (the requirement that refused, the
 * grant that lapsed, why a record or a token was refused).
 */

static void
ngx_http_mpn_log_refusal(ngx_http_request_t *r, ngx_http_mpn_loc_conf_t *lcf,
    ngx_http_mpn_ctx_t *ctx)
{
    u_char             *p, *last;
    ngx_str_t          *id;
    mpn_decision_t     *d;
    const mpn_str_t    *b;
    const mpn_grant_t  *g;
    u_char              buf[512];

    if (r->connection->log->log_level < lcf->log_level) {
        return;
    }

    d = &ctx->decision;
    p = buf;
    last = buf + sizeof(buf);

    switch (d->unmet) {

    case MPN_R_TIER:
        p = ngx_slprintf(p, last, ", missing tier \"%s\"",
                         mpn_tier_names[lcf->require.tier]);
        break;

    case MPN_R_BENEFIT:
        b = &lcf->require.benefits[d->unmet_benefit];
        p = ngx_slprintf(p, last, ", missing benefit \"%*s\"", b->len,
                         b->data);
        break;

    case MPN_R_COMPETENCY:
        p = ngx_slprintf(p, last, ", missing competency \"%*s\" at %s",
                         lcf->require.competency.len,
                         lcf->require.competency.data,
                         mpn_tier_names[lcf->require.competency_level]);
        break;
    }

    if ((d->reason == MPN_R_LAPSED || d->reason == MPN_R_CANCELLED)
        && ctx->record != NULL && d->grant >= 0)
    {
        g = &mpn_record_grants(ctx->record)[d->grant];
        p = ngx_slprintf(p, last, " (\"%*s\" %s)", (size_t) g->name_len,
                         mpn_record_str(ctx->record, g->name),
                         mpn_reason_names[d->reason]);
    }

    if (d->reason == MPN_R_NOT_MEMBER) {
        p = ngx_slprintf(p, last, ", %s", (ctx->record == NULL)
                                          ? "no record"
                                          : "not a network member");
    }

    if (ctx->detail.len) {
        p = ngx_slprintf(p, last, ", %V", &ctx->detail);
    }

    id = ctx->partner_id.len ? &ctx->partner_id : &ngx_http_mpn_none;

    ngx_log_error(lcf->log_level, r->connection->log, 0,
                  "mpn: partner \"%V\" refused: %s/%s%*s", id,
                  mpn_decision_names[d->decision],
                  mpn_reason_names[d->reason], (size_t) (p - buf), buf);
}


ngx_int_t
ngx_http_mpn_set_detail(ngx_http_request_t *r, ngx_http_mpn_ctx_t *ctx,
    u_char *text, size_t len)
{
    size_t  i;

    ctx->detail.data = ngx_pnalloc(r->pool, len);
    if (ctx->detail.data == NULL) {
        ctx->detail.len = 0;
        return NGX_ERROR;
    }

    /* a record or a kid must not split or forge a log line */

    for (i = 0; i < len; i++) {
        ctx->detail.data[i] = (text[i] < 0x20 || text[i] == 0x7f)
                              ? '?' : text[i];
    }

    ctx->detail.len = len;

    return NGX_OK;
}


/*
 * Evaluates a target URL.  Control characters and spaces, which no variable
 * should bring but which would split the header, are percent-encoded.
 */

static ngx_int_t
ngx_http_mpn_location(ngx_http_request_t *r, ngx_http_complex_value_t *cv,
    ngx_str_t *loc)
{
    u_char     *p, *s, *end;
    ngx_str_t   v;
    ngx_uint_t  n;
    static u_char  hex[] = "0123456789ABCDEF";

    if (ngx_http_complex_value(r, cv, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    n = 0;
    end = v.data + v.len;

    for (s = v.data; s < end; s++) {
        if (*s <= 0x20 || *s == 0x7f) {
            n++;
        }
    }

    if (n == 0) {
        *loc = v;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, v.len + 2 * n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    loc->data = p;

    for (s = v.data; s < end; s++) {
        if (*s <= 0x20 || *s == 0x7f) {
            *p++ = '%';
            *p++ = hex[*s >> 4];
            *p++ = hex[*s & 0xf];

        } else {
            *p++ = *s;
        }
    }

    loc->len = p - loc->data;

    return NGX_OK;
}


/* a script or an API client: Accept names application/json, not text/html */

static ngx_uint_t
ngx_http_mpn_wants_json(ngx_http_request_t *r)
{
    ngx_str_t  *accept;

#if (NGX_HTTP_HEADERS)
    if (r->headers_in.accept == NULL) {
        return 0;
    }

    accept = &r->headers_in.accept->value;
#else
    return 0;
#endif

    if (ngx_strlcasestrn(accept->data, accept->data + accept->len,
                         (u_char *) "application/json", 16 - 1)
        == NULL)
    {
        return 0;
    }

    return ngx_strlcasestrn(accept->data, accept->data + accept->len,
                            (u_char *) "text/html", 9 - 1)
           == NULL;
}


static ngx_int_t
ngx_http_mpn_send_json(ngx_http_request_t *r, ngx_uint_t status,
    mpn_decision_t *d, ngx_str_t *loc)
{
    size_t        len;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    len = sizeof("{\"decision\":\"\",\"reason\":\"\"}") - 1
          + ngx_strlen(mpn_decision_names[d->decision])
          + ngx_strlen(mpn_reason_names[d->reason]);

    if (loc->len) {
        len += sizeof(",\"location\":\"\"") - 1
               + loc->len + ngx_escape_json(NULL, loc->data, loc->len);
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"decision\":\"%s\",\"reason\":\"%s\"",
                          mpn_decision_names[d->decision],
                          mpn_reason_names[d->reason]);

    if (loc->len) {
        b->last = ngx_cpymem(b->last, ",\"location\":\"", 13);
        b->last = (u_char *) ngx_escape_json(b->last, loc->data, loc->len);
        *b->last++ = '"';
    }

    *b->last++ = '}';

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    out.buf = b;
    out.next = NULL;

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));

    return NGX_DONE;
}


/*
 * The refusal's headers.  Each is set once however many gated locations
 * answer for the request (error_page into a gated location), and through
 * the field nginx itself uses where it has one: WWW-Authenticate in
 * r->headers_out.www_authenticate, which "satisfy any" clears when
 * another access module lets the request in; Location replacing any
 * earlier one.  Cache-Control stays a header of its own: in
 * r->headers_out.cache_control, "expires" would replace the no-store of
 * a refusal's redirect.
 */

static ngx_int_t
ngx_http_mpn_set_cache_control(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].value.data == ngx_http_mpn_no_store.data) {
            h[i].hash = 1;
            return NGX_OK;
        }
    }

    return ngx_http_mpn_push_header(r, &ngx_http_mpn_cache_control,
                                    &ngx_http_mpn_no_store)
           != NULL ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_http_mpn_set_www_authenticate(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = r->headers_out.www_authenticate;

    if (h != NULL && h->value.data == ngx_http_mpn_bearer.data) {
        h->hash = 1;
        return NGX_OK;
    }

    h = ngx_http_mpn_push_header(r, &ngx_http_mpn_www_authenticate,
                                 &ngx_http_mpn_bearer);
    if (h == NULL) {
        return NGX_ERROR;
    }

#if (nginx_version >= 1023000)
    /* another module's challenge (auth_basic under "satisfy any") stays
     * in the list nginx clears */
    h->next = r->headers_out.www_authenticate;
#endif

    r->headers_out.www_authenticate = h;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpn_set_location(ngx_http_request_t *r, ngx_str_t *loc)
{
    ngx_table_elt_t  *h;

    ngx_http_clear_location(r);

    h = ngx_http_mpn_push_header(r, &ngx_http_mpn_location_key, loc);
    if (h == NULL) {
        return NGX_ERROR;
    }

    r->headers_out.location = h;

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_http_mpn_push_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key = *key;
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return h;
}


/* configuration */

static void *
ngx_http_mpn_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_mpn_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpn_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->redis = NULL;
     *     mcf->key_prefix = { 0, NULL };
     *     mcf->channel = { 0, NULL };
     *     mcf->cache = NULL;
     *     mcf->status_zone = NULL;
     *     mcf->status_used = 0;
     *     mcf->token_cache = 0;
     *     mcf->usage_prefix = { 0, NULL };
     *     mcf->consumed = NULL;
     *     mcf->consumed_slots = NULL;
     */

    return mcf;
}


static char *
ngx_http_mpn_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_mpn_main_conf_t  *mcf = conf;

    if (mcf->key_prefix.data == NULL) {
        ngx_str_set(&mcf->key_prefix, "mpn:partner:");
    }

    if (mcf->channel.data == NULL) {
        ngx_str_set(&mcf->channel, "mpn:invalidate");
    }

    if (mcf->usage_prefix.data == NULL) {
        ngx_str_set(&mcf->usage_prefix, "mpn:usage:");
    }

    if (mcf->consumed != NULL) {
        mcf->consumed_slots = ngx_pcalloc(cf->pool, mcf->consumed->nelts
                                                    * sizeof(ngx_uint_t));
        if (mcf->consumed_slots == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (mcf->cache != NULL && mcf->redis == NULL) {
        ngx_http_mpn_conf_error(cf, &mcf->cache_pos,
                                "\"mpn_cache\" is set but \"mpn_redis\" "
                                "is not");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_mpn_keys_add_zone(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* the counters, whenever there is something to count or show */

    if ((mcf->redis != NULL || mcf->status_used)
        && ngx_http_mpn_status_add_zone(cf, mcf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_mpn_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_mpn_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpn_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->enable_pos = { { 0, NULL }, 0 };
     *     conf->competency = { 0, NULL };
     *     conf->token_claim = { 0, NULL };
     *     conf->token_issuer = { 0, NULL };
     *     conf->token_audience = { 0, NULL };
     *     conf->require = { 0 };
     *     conf->benefits_all = NULL;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->partner = NGX_CONF_UNSET_PTR;
    conf->token = NGX_CONF_UNSET_PTR;
    conf->token_keys = NGX_CONF_UNSET_PTR;
    conf->keys_src = NGX_CONF_UNSET_PTR;
    conf->keys_cache = NGX_CONF_UNSET;
    conf->token_leeway = NGX_CONF_UNSET;
    conf->require_tier = NGX_CONF_UNSET_UINT;
    conf->require_benefits = NGX_CONF_UNSET_PTR;
    conf->competency_level = NGX_CONF_UNSET_UINT;
    conf->signin_url = NGX_CONF_UNSET_PTR;
    conf->upgrade_url = NGX_CONF_UNSET_PTR;
    conf->renew_url = NGX_CONF_UNSET_PTR;
    conf->grace = NGX_CONF_UNSET;
    conf->remind = NGX_CONF_UNSET;
    conf->fail = NGX_CONF_UNSET_UINT;
    conf->log_level = NGX_CONF_UNSET_UINT;
    conf->status = NGX_CONF_UNSET;
    conf->consume = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_http_mpn_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_mpn_loc_conf_t *prev = parent;
    ngx_http_mpn_loc_conf_t *conf = child;

    ngx_http_mpn_main_conf_t  *mcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    if (conf->enable_pos.file.len == 0) {
        conf->enable_pos = prev->enable_pos;
    }

    /* the innermost scope that names an identity source decides it */

    if (conf->partner == NGX_CONF_UNSET_PTR
        && conf->token == NGX_CONF_UNSET_PTR)
    {
        conf->partner = prev->partner;
        conf->token = prev->token;
    }

    ngx_conf_merge_ptr_value(conf->partner, NULL, NULL);
    ngx_conf_merge_ptr_value(conf->token, NULL, NULL);

    if (ngx_http_mpn_keys_merge(cf, prev, conf) != NGX_CONF_OK
        || ngx_http_mpn_token_merge(cf, prev, conf) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_uint_value(conf->require_tier, prev->require_tier,
                              MPN_TIER_NETWORK);
    ngx_conf_merge_ptr_value(conf->require_benefits, prev->require_benefits,
                             NULL);

    if (conf->competency_level == NGX_CONF_UNSET_UINT) {
        conf->competency = prev->competency;
        conf->competency_level = prev->competency_level;
    }

    ngx_conf_merge_ptr_value(conf->signin_url, prev->signin_url, NULL);
    ngx_conf_merge_ptr_value(conf->upgrade_url, prev->upgrade_url, NULL);
    ngx_conf_merge_ptr_value(conf->renew_url, prev->renew_url, NULL);

    ngx_conf_merge_sec_value(conf->grace, prev->grace, 0);
    ngx_conf_merge_sec_value(conf->remind, prev->remind, 30 * 86400);
    ngx_conf_merge_uint_value(conf->fail, prev->fail,
                              NGX_HTTP_MPN_FAIL_CLOSED);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level,
                              NGX_LOG_INFO);

    conf->require.tier = conf->require_tier;

    if (conf->require_benefits != NULL) {
        conf->require.benefits = conf->require_benefits->elts;
        conf->require.nbenefits = conf->require_benefits->nelts;
    }

    conf->require.competency.data = (char *) conf->competency.data;
    conf->require.competency.len = conf->competency.len;
    conf->require.competency_level = conf->competency_level;
    conf->require.grace = conf->grace;
    conf->require.remind = conf->remind;

    if (ngx_http_mpn_consume_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    /* checked where the gate is on, named at the "mpn" in effect */

    if (conf->partner == NULL && conf->token == NULL) {
        ngx_http_mpn_conf_error(cf, &conf->enable_pos,
                                "\"mpn\" is on but neither \"mpn_partner\" "
                                "nor \"mpn_token\" is set");
        return NGX_CONF_ERROR;
    }

    if (conf->token != NULL && conf->token_keys == NULL
        && conf->keys_src == NULL)
    {
        ngx_http_mpn_conf_error(cf, &conf->enable_pos,
                                "\"mpn\" is on and \"mpn_token\" is set "
                                "but neither \"mpn_token_keys\" nor "
                                "\"mpn_token_keys_request\" is");
        return NGX_CONF_ERROR;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mpn_module);

    if (mcf->redis == NULL) {
        ngx_http_mpn_conf_error(cf, &conf->enable_pos,
                                "\"mpn\" is on but \"mpn_redis\" is not set");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* mpn on | off, remembering where, for the checks made at merge time */

static char *
ngx_http_mpn_enable(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    char  *rv;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK) {
        ngx_http_mpn_conf_pos(cf, &lcf->enable_pos);
    }

    return rv;
}


/* mpn_cache (ngx_http_mpn_cache.c), remembering where */

static char *
ngx_http_mpn_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpn_main_conf_t *mcf = conf;

    char  *rv;

    rv = ngx_http_mpn_cache_directive(cf, cmd, conf);

    if (rv == NGX_CONF_OK) {
        ngx_http_mpn_conf_pos(cf, &mcf->cache_pos);
    }

    return rv;
}


void
ngx_http_mpn_conf_pos(ngx_conf_t *cf, ngx_http_mpn_conf_pos_t *pos)
{
    pos->file = cf->conf_file->file.name;
    pos->line = cf->conf_file->line;
}


/*
 * An emerg line like ngx_conf_log_error()'s, but naming the line of the
 * directive at fault rather than where the parser is: merge and
 * postconfiguration run after the whole http block was read.
 */

void
ngx_http_mpn_conf_error(ngx_conf_t *cf, ngx_http_mpn_conf_pos_t *pos,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;
    u_char    buf[NGX_MAX_CONF_ERRSTR];

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    if (pos->file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%*s", (size_t) (p - buf),
                           buf);
        return;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "%*s in %V:%ui",
                  (size_t) (p - buf), buf, &pos->file, pos->line);
}


/*
 * Reads a whole file named in a directive into the configuration pool;
 * the emerg line names what the file is, its path and the directive.
 */

ngx_int_t
ngx_http_mpn_conf_read_file(ngx_conf_t *cf, ngx_str_t *path, size_t max,
    const char *what, const char *directive, ngx_str_t *text)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_int_t        rc;
    ngx_str_t        name;
    ngx_file_t       file;
    ngx_file_info_t  fi;

    name = *path;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open %s \"%V\" in \"%s\"",
                           what, &name, directive);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || (size_t) ngx_file_size(&fi) > max)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot read %s \"%V\" in \"%s\": not a file "
                           "of at most %uz bytes", what, &name, directive,
                           max);
        goto done;
    }

    text->data = ngx_pnalloc(cf->pool, ngx_file_size(&fi) + 1);
    if (text->data == NULL) {
        goto done;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = name;
    file.log = cf->log;

    n = ngx_read_file(&file, text->data, ngx_file_size(&fi), 0);

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot read %s \"%V\" in \"%s\"",
                           what, &name, directive);
        goto done;
    }

    text->len = n;
    text->data[n] = '\0';
    rc = NGX_OK;

done:

    ngx_close_file(fd);

    return rc;
}


/* mpn_partner: a complex value, exclusive with mpn_token in one scope */

static char *
ngx_http_mpn_identity(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    ngx_str_t                         *value;
    ngx_http_complex_value_t         **cv, *other;
    ngx_http_compile_complex_value_t   ccv;

    cv = (ngx_http_complex_value_t **) ((char *) conf + cmd->offset);

    if (*cv != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    other = (cv == &lcf->partner) ? lcf->token : lcf->partner;

    if (other != NGX_CONF_UNSET_PTR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mpn_partner\" and \"mpn_token\" cannot both "
                           "be set in one scope");
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    *cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (*cv == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = *cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_mpn_require_tier(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (lcf->require_tier != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->require_tier = mpn_tier_parse((char *) value[1].data, value[1].len);

    if (lcf->require_tier == MPN_TIER_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown tier \"%V\" in \"mpn_require_tier\", "
                           "it must be \"network\", \"action_pack\", "
                           "\"silver\" or \"gold\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_mpn_require_benefit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    ngx_str_t   *value;
    mpn_str_t   *b;
    ngx_uint_t   i;

    if (lcf->require_benefits != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    lcf->require_benefits = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                             sizeof(mpn_str_t));
    if (lcf->require_benefits == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        b = ngx_array_push(lcf->require_benefits);
        if (b == NULL) {
            return NGX_CONF_ERROR;
        }

        b->data = (char *) value[i].data;
        b->len = value[i].len;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_mpn_require_competency(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_mpn_loc_conf_t *lcf = conf;

    ngx_str_t  *value;
    ngx_uint_t  level;

    if (lcf->competency_level != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    level = MPN_TIER_SILVER;

    if (cf->args->nelts == 3) {
        level = mpn_tier_parse((char *) value[2].data, value[2].len);

        if (level != MPN_TIER_SILVER && level != MPN_TIER_GOLD) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown level \"%V\" in "
                               "\"mpn_require_competency\", it must be "
                               "\"silver\" or \"gold\"", &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    lcf->competency = value[1];
    lcf->competency_level = level;

    return NGX_CONF_OK;
}


static char *
ngx_http_mpn_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_complex_value_t  **cv;

    cv = (ngx_http_complex_value_t **) ((char *) conf + cmd->offset);

    if (*cv != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    *cv = NULL;

    return ngx_http_set_complex_value_slot(cf, cmd, conf);
}


static ngx_int_t
ngx_http_mpn_init(ngx_conf_t *cf)
{
    ngx_array_t                *handlers;
    ngx_http_handler_pt        *h;
    ngx_http_mpn_main_conf_t   *mcf;
    ngx_http_core_main_conf_t  *cmcf;

    if (ngx_http_mpn_add_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mpn_module);

    if (mcf->redis != NULL
        && ngx_http_mpn_redis_init_conf(cf, mcf->redis) != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    handlers = &cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers;

    h = ngx_array_push(handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    /*
     * A phase runs its handlers last registered first, and a dynamic module
     * registers after the built-in ones.  The gate goes to the front of the
     * list so that it runs after every other access check, auth_request
     * included: auth_request_set may be what sets the partner id.
     */

    h = handlers->elts;
    ngx_memmove(&h[1], &h[0], (handlers->nelts - 1) * sizeof(*h));
    h[0] = ngx_http_mpn_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpn_init_process(ngx_cycle_t *cycle)
{
    ngx_http_mpn_main_conf_t  *mcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mpn_module);

    if (mcf == NULL) {
        return NGX_OK;
    }

    ngx_http_mpn_status_init_process(mcf);

    if (mcf->redis == NULL) {
        return NGX_OK;
    }

    ngx_http_mpn_redis_init_process(cycle, mcf);
    ngx_http_mpn_subscriber_init_process(cycle, mcf);

    return NGX_OK;
}


static void
ngx_http_mpn_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_mpn_main_conf_t  *mcf;

    ngx_http_mpn_token_cache_exit_process();

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mpn_module);

    if (mcf == NULL || mcf->redis == NULL) {
        return;
    }

    ngx_http_mpn_subscriber_exit_process();
    ngx_http_mpn_redis_exit_process();
}


/* at most one line a second per call site, then a count of the rest */

void
ngx_http_mpn_log_limited(ngx_http_mpn_limit_t *limit, ngx_log_t *log,
    const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;
    u_char    buf[NGX_MAX_ERROR_STR];

    if (log->log_level < NGX_LOG_ERR) {
        return;
    }

    if (limit->last == ngx_time()) {
        limit->suppressed++;
        return;
    }

    limit->last = ngx_time();
    last = buf + sizeof(buf);

    va_start(args, fmt);
    p = ngx_vslprintf(buf, last, fmt, args);
    va_end(args);

    if (limit->suppressed) {
        p = ngx_slprintf(p, last, " (%ui similar messages suppressed)",
                         limit->suppressed);
        limit->suppressed = 0;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0, "%*s", (size_t) (p - buf), buf);
}
